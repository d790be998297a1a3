/*
 * test_noise.c: the samplers of src/crypto/noise.c against their exact distributions, and
 * the public-parameter helpers against brute force.
 *
 * Each statistical check rejects only when its statistic has probability below 1e-8
 * under the distribution claimed; with about a hundred checks, a correct sampler fails a
 * run with probability below 1e-6, while a wrong one (a modulo bias, a wrong parity, an
 * off-by-one in a loop, a scale off by a few percent) fails every time. Chi-square
 * critical values come from the Wilson-Hilferty approximation, which errs on the
 * conservative side for the degrees of freedom used here; cells are merged until each
 * expects at least MIN_EXPECTED draws.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <gmp.h>

#define VL_NOISE_TEST_API
#include "crypto/crypto.h"
#include "crypto/noise.h"

#define Z_ONE 5.6120012441 /* P(N(0,1) > Z_ONE) = 1e-8 */
#define Z_TWO 5.7307288719 /* P(|N(0,1)| > Z_TWO) = 1e-8 */
#define MIN_EXPECTED 20.0
#define U128(hi, lo) (((vl_u128)(hi) << 64) | (vl_u128)(lo))

/* The chi-square value exceeded with probability 1e-8 for df degrees of freedom. */
static double chi2_crit(double df)
{
    double h = 2.0 / (9.0 * df);
    double c = 1.0 - h + Z_ONE * sqrt(h);
    return df * c * c * c;
}

/* Goodness of fit of obs[] (total draws in all) to prob[] (summing to 1), both over the
 * same ncells cells, consecutive cells merged until each merged cell expects at least
 * MIN_EXPECTED draws. */
static void chi2_check(const char *what, const double *prob, const uint64_t *obs, size_t ncells,
                       uint64_t total)
{
    double stat = 0, e = 0, o = 0, last_e = 0, last_o = 0, psum = 0;
    size_t bins = 0;
    for (size_t i = 0; i < ncells; i++) {
        psum += prob[i];
        e += prob[i] * (double)total;
        o += (double)obs[i];
        if (e >= MIN_EXPECTED) {
            if (bins > 0) {
                stat += (last_o - last_e) * (last_o - last_e) / last_e;
            }
            last_e = e;
            last_o = o;
            bins++;
            e = o = 0;
        }
    }
    /* the leftover joins the last full cell */
    last_e += e;
    last_o += o;
    if (bins == 0) {
        fail_msg("%s: too few draws for a chi-square test", what);
    }
    stat += (last_o - last_e) * (last_o - last_e) / last_e;
    if (fabs(psum - 1.0) > 1e-9) {
        fail_msg("%s: the test's probabilities sum to %.12f", what, psum);
    }
    if (bins < 2) {
        fail_msg("%s: one cell only", what);
    }
    double crit = chi2_crit((double)(bins - 1));
    if (!(stat <= crit)) {
        fail_msg("%s: chi-square %.1f over %zu cells exceeds %.1f (p < 1e-8)", what, stat, bins,
                 crit);
    }
}

/* count successes of n Bernoulli(p) trials: within the two-sided 1e-8 normal band. */
static void binomial_check(const char *what, uint64_t count, uint64_t n, double p)
{
    double mean = p * (double)n, sd = sqrt((double)n * p * (1 - p));
    if (fabs((double)count - mean) > Z_TWO * sd + 1e-9) {
        fail_msg("%s: %llu of %llu, expected %.1f +- %.1f", what, (unsigned long long)count,
                 (unsigned long long)n, mean, Z_TWO * sd);
    }
}

/* ---- the random source ---- */

static void test_rng_streams_differ(void **state)
{
    (void)state;
    struct vl_rng *a = vl_rng_new(), *b = vl_rng_new();
    assert_non_null(a);
    assert_non_null(b);
    /* 200 words span several refills: none repeats, within or across the two streams */
    enum { N = 200 };
    uint64_t w[2 * N];
    for (size_t i = 0; i < N; i++) {
        w[i] = vl_rng_u64(a);
        w[N + i] = vl_rng_u64(b);
    }
    for (size_t i = 0; i < 2 * N; i++) {
        for (size_t j = i + 1; j < 2 * N; j++) {
            if (w[i] == w[j]) {
                fail_msg("words %zu and %zu are equal", i, j);
            }
        }
    }
    vl_rng_free(a);
    vl_rng_free(b);
    vl_rng_free(NULL);
}

/* Each 64-bit word's bits: every bit position set about half the time. */
static void test_rng_bits(void **state)
{
    (void)state;
    enum { N = 20000 };
    struct vl_rng *r = vl_rng_new();
    uint64_t ones[64] = {0};
    for (size_t i = 0; i < N; i++) {
        uint64_t v = vl_rng_u64(r);
        for (int b = 0; b < 64; b++) {
            ones[b] += (v >> b) & 1;
        }
    }
    for (int b = 0; b < 64; b++) {
        char what[32];
        snprintf(what, sizeof(what), "bit %d", b);
        binomial_check(what, ones[b], N, 0.5);
    }
    vl_rng_free(r);
}

/* vl_rng_below(n) sorted into cells by f; every draw must be below n. */
static void below_check(struct vl_rng *r, const char *what, vl_u128 n, size_t cells,
                        size_t (*f)(vl_u128), const double *prob, uint64_t draws)
{
    uint64_t obs[64] = {0};
    assert_true(cells <= 64);
    for (uint64_t i = 0; i < draws; i++) {
        vl_u128 v = vl_rng_below(r, n);
        if (v >= n) {
            fail_msg("%s: a draw not below n", what);
        }
        size_t c = f(v);
        if (c >= cells) {
            fail_msg("%s: a draw outside the cells", what);
        }
        obs[c]++;
    }
    chi2_check(what, prob, obs, cells, draws);
}

static size_t low64(vl_u128 v)
{
    return (size_t)(uint64_t)v;
}
static size_t top2_of_64(vl_u128 v)
{
    return (size_t)((uint64_t)v >> 62);
}
static size_t top3_of_64(vl_u128 v)
{
    return (size_t)((uint64_t)v >> 61);
}
static size_t top3_of_100(vl_u128 v)
{
    return (size_t)(v >> 97);
}
static size_t top4_of_100(vl_u128 v)
{
    return (size_t)(v >> 96);
}
static size_t low4(vl_u128 v)
{
    return (size_t)(v & 15);
}
static size_t top3_of_128(vl_u128 v)
{
    return (size_t)(v >> 125);
}

static void test_rng_below_uniform(void **state)
{
    (void)state;
    struct vl_rng *r = vl_rng_new();
    double p[16];
    for (int n = 3; n <= 10; n += (n == 3 ? 4 : 3)) { /* 3, 7, 10 */
        char what[32];
        for (int i = 0; i < n; i++) {
            p[i] = 1.0 / n;
        }
        snprintf(what, sizeof(what), "below(%d)", n);
        below_check(r, what, (vl_u128)n, (size_t)n, low64, p, 30000);
    }
    for (int i = 0; i < 100; i++) {
        assert_true(vl_rng_below(r, 1) == 0);
    }
    /* 3 * 2^62: the top two bits are 0, 1 or 2, each a third of the time (a modulo
     * reduction of 64 random bits would give 0 half the time) */
    p[0] = p[1] = p[2] = 1.0 / 3;
    below_check(r, "below(3 * 2^62)", (vl_u128)3 << 62, 3, top2_of_64, p, 30000);
    for (int i = 0; i < 8; i++) {
        p[i] = 1.0 / 8;
    }
    below_check(r, "below(2^64 - 1)", (vl_u128)UINT64_MAX, 8, top3_of_64, p, 30000);
    below_check(r, "below(2^64)", (vl_u128)1 << 64, 8, top3_of_64, p, 30000);
    /* 2^64 + 1 takes the two-word path; 2^64 itself comes with probability 2^-64 and
     * would fail the cell check */
    below_check(r, "below(2^64 + 1)", ((vl_u128)1 << 64) + 1, 8, top3_of_64, p, 30000);
    below_check(r, "below(2^128 - 1)", ~(vl_u128)0, 8, top3_of_128, p, 30000);
    for (int i = 0; i < 5; i++) {
        p[i] = 1.0 / 5;
    }
    below_check(r, "below(5 * 2^97)", (vl_u128)5 << 97, 5, top3_of_100, p, 30000);
    for (int i = 0; i < 16; i++) {
        p[i] = 1.0 / 16;
    }
    below_check(r, "below(2^100) top", (vl_u128)1 << 100, 16, top4_of_100, p, 30000);
    below_check(r, "below(2^100) low", (vl_u128)1 << 100, 16, low4, p, 30000);
    vl_rng_free(r);
}

/* ---- Bernoulli draws ---- */

static void test_bernoulli(void **state)
{
    (void)state;
    enum { N = 50000 };
    static const struct {
        vl_u128 num, den;
    } cases[] = {
        {1, 2},
        {1, 3},
        {2, 7},
        {999, 1000},
        {U128(0, 1) << 99, U128(0, 3) << 98},
        {U128(1, 0), U128(1, 0) + 7},
    };
    struct vl_rng *r = vl_rng_new();
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        uint64_t k = 0;
        for (int i = 0; i < N; i++) {
            k += vl_bernoulli(r, cases[c].num, cases[c].den);
        }
        char what[48];
        snprintf(what, sizeof(what), "bernoulli case %zu", c);
        binomial_check(what, k, N, (double)cases[c].num / (double)cases[c].den);
    }
    for (int i = 0; i < 1000; i++) {
        assert_false(vl_bernoulli(r, 0, 5));
        assert_true(vl_bernoulli(r, 5, 5));
        assert_true(vl_bernoulli(r, 1, 1));
        assert_false(vl_bernoulli(r, 0, ~(vl_u128)0));
    }
    vl_rng_free(r);
}

static void test_bernoulli_exp(void **state)
{
    (void)state;
    enum { N = 50000 };
    static const struct {
        vl_u128 num, den;
        double gamma;
    } cases[] = {
        {1, 3, 1.0 / 3},
        {1, 1, 1.0},
        {7, 7, 1.0},
        {5, 2, 2.5},
        {3, 2, 1.5},
        {4, 1, 4.0},
        {2, 3, 2.0 / 3},
        /* 2/3 with a denominator near 2^127: den * K overflows from K = 3 on */
        {(vl_u128)1 << 126, (vl_u128)3 << 125, 2.0 / 3},
        /* 1 + 2^-127 */
        {((vl_u128)1 << 127) + 1, (vl_u128)1 << 127, 1.0},
        /* 5/2 with a 100-bit denominator */
        {(vl_u128)5 << 99, (vl_u128)2 << 99, 2.5},
    };
    struct vl_rng *r = vl_rng_new();
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        uint64_t k = 0;
        for (int i = 0; i < N; i++) {
            k += vl_bernoulli_exp(r, cases[c].num, cases[c].den);
        }
        char what[48];
        snprintf(what, sizeof(what), "bernoulli_exp case %zu", c);
        binomial_check(what, k, N, exp(-cases[c].gamma));
    }
    for (int i = 0; i < 2000; i++) {
        assert_true(vl_bernoulli_exp(r, 0, 1));
        assert_true(vl_bernoulli_exp(r, 0, ~(vl_u128)0));
        /* exp(-1000) and exp(-2^100): a true here has probability below 1e-400 */
        assert_false(vl_bernoulli_exp(r, 1000, 1));
        assert_false(vl_bernoulli_exp(r, (vl_u128)1 << 100, 1));
        assert_false(vl_bernoulli_exp(r, ~(vl_u128)0, 3));
    }
    vl_rng_free(r);
}

/* ---- discrete Laplace ---- */

static size_t cell_of(vl_i128 z, long m)
{
    if (z <= -m) {
        return 0;
    }
    if (z >= m) {
        return (size_t)(2 * m);
    }
    return (size_t)(z + m);
}

/* draws from vl_dlaplace(num/den) against P(Z = z) = (1 - p) / (1 + p) p^|z|, p =
 * exp(-1/b), over the cells z <= -m, -m < z < m (one each), z >= m */
static void dlaplace_fit(struct vl_rng *r, const char *what, vl_u128 num, vl_u128 den,
                         uint64_t draws)
{
    double b = (double)num / (double)den, p = exp(-1.0 / b);
    long m = (long)ceil(40 * b) + 2;
    size_t ncells = (size_t)(2 * m + 1);
    double *prob = calloc(ncells, sizeof(*prob));
    uint64_t *obs = calloc(ncells, sizeof(*obs));
    assert_non_null(prob);
    assert_non_null(obs);
    for (long z = -m + 1; z < m; z++) {
        prob[z + m] = (1 - p) / (1 + p) * pow(p, (double)labs(z));
    }
    prob[0] = prob[ncells - 1] = pow(p, (double)m) / (1 + p);
    for (uint64_t i = 0; i < draws; i++) {
        obs[cell_of(vl_dlaplace(r, num, den), m)]++;
    }
    chi2_check(what, prob, obs, ncells, draws);
    free(prob);
    free(obs);
}

static void test_dlaplace_pmf(void **state)
{
    (void)state;
    struct vl_rng *r = vl_rng_new();
    dlaplace_fit(r, "dlaplace b=1/2", 1, 2, 200000);
    dlaplace_fit(r, "dlaplace b=1", 1, 1, 200000);
    dlaplace_fit(r, "dlaplace b=3", 3, 1, 200000);
    dlaplace_fit(r, "dlaplace b=10/3", 10, 3, 200000);
    dlaplace_fit(r, "dlaplace b=100", 100, 1, 200000);
    /* the same scales as wide rationals (the products in the loops use all 128 bits) */
    dlaplace_fit(r, "dlaplace b=3e6/1e6", 3000000, 1000000, 200000);
    dlaplace_fit(r, "dlaplace b=10*2^90/(3*2^90)", (vl_u128)10 << 90, (vl_u128)3 << 90, 200000);
    dlaplace_fit(r, "dlaplace b=1/3", 1, 3, 200000);
    vl_rng_free(r);
}

/* Scale 1e9 given as num ~ 2^90: mean 0, variance 2p/(1-p)^2, symmetry, and the shape over
 * cells of |Z| at multiples of b/4. */
static void test_dlaplace_large(void **state)
{
    (void)state;
    enum { N = 30000, EDGES = 24 };
    const vl_u128 den = (vl_u128)1 << 60, num = (vl_u128)1000000000 * den;
    const double b = 1e9, p = exp(-1.0 / b), q = -expm1(-1.0 / b); /* q = 1 - p */
    const double var = 2 * p / (q * q);
    /* cells: z = 0; and for each sign, |z| in [k_j, k_{j+1}) with k_0 = 1, k_j = j b / 4,
     * and |z| >= k_EDGES */
    double k[EDGES + 1], prob[2 * (EDGES + 1) + 1];
    uint64_t obs[2 * (EDGES + 1) + 1] = {0};
    k[0] = 1;
    for (int j = 1; j <= EDGES; j++) {
        k[j] = j * b / 4;
    }
    double tail[EDGES + 1]; /* P(Z >= k_j) */
    for (int j = 0; j <= EDGES; j++) {
        tail[j] = exp(-k[j] / b) / (1 + p);
    }
    prob[EDGES + 1] = q / (1 + p); /* z = 0 */
    for (int j = 0; j <= EDGES; j++) {
        double c = j < EDGES ? tail[j] - tail[j + 1] : tail[j];
        prob[EDGES + 2 + j] = c; /* positive */
        prob[EDGES - j] = c;     /* negative, mirrored */
    }
    struct vl_rng *r = vl_rng_new();
    double sum = 0, sum2 = 0;
    uint64_t pos = 0, neg = 0;
    for (int i = 0; i < N; i++) {
        vl_i128 z = vl_dlaplace(r, num, den);
        double a = (double)(z < 0 ? -z : z);
        sum += (double)z;
        sum2 += (double)z * (double)z;
        pos += z > 0;
        neg += z < 0;
        int j = 0;
        if (z == 0) {
            obs[EDGES + 1]++;
            continue;
        }
        while (j < EDGES && a >= k[j + 1]) {
            j++;
        }
        obs[z > 0 ? EDGES + 2 + j : EDGES - j]++;
    }
    double mean = sum / N, m2 = sum2 / N;
    /* |Z| / b is nearly Exp(1): E[Z^4] is about 24 b^4, so sd(Z^2) about sqrt(20) b^2 */
    if (fabs(mean) > Z_TWO * sqrt(var / N)) {
        fail_msg("scale 1e9: mean %.4g, expected 0 +- %.4g", mean, Z_TWO * sqrt(var / N));
    }
    if (fabs(m2 - var) > Z_TWO * sqrt(20.0) * b * b / sqrt((double)N)) {
        fail_msg("scale 1e9: variance %.4g, expected %.4g", m2, var);
    }
    binomial_check("scale 1e9: positive among non-zero", pos, pos + neg, 0.5);
    chi2_check("scale 1e9: shape", prob, obs, 2 * (EDGES + 1) + 1, N);
    vl_rng_free(r);
}

/* ---- discrete Gaussian ---- */

static void dgauss_fit(struct vl_rng *r, const char *what, vl_u128 num, vl_u128 den, uint64_t draws)
{
    double s2 = (double)num / (double)den;
    long m = (long)ceil(12 * sqrt(s2)) + 2;
    size_t ncells = (size_t)(2 * m + 1);
    double *prob = calloc(ncells, sizeof(*prob)), norm = 0;
    uint64_t *obs = calloc(ncells, sizeof(*obs));
    assert_non_null(prob);
    assert_non_null(obs);
    for (long z = -m; z <= m; z++) {
        prob[z + m] = exp(-(double)z * (double)z / (2 * s2));
        norm += prob[z + m];
    }
    for (size_t i = 0; i < ncells; i++) {
        prob[i] /= norm;
    }
    for (uint64_t i = 0; i < draws; i++) {
        obs[cell_of(vl_dgauss(r, num, den), m)]++;
    }
    chi2_check(what, prob, obs, ncells, draws);
    free(prob);
    free(obs);
}

static void test_dgauss_pmf(void **state)
{
    (void)state;
    struct vl_rng *r = vl_rng_new();
    dgauss_fit(r, "dgauss s2=1", 1, 1, 100000);
    dgauss_fit(r, "dgauss s2=4", 4, 1, 100000);
    dgauss_fit(r, "dgauss s2=10", 10, 1, 100000);
    dgauss_fit(r, "dgauss s2=5/2", 5, 2, 100000);
    dgauss_fit(r, "dgauss s2=1/4", 1, 4, 100000);
    /* wide rationals: 10 * 2^40 / 2^40, and about 2^20 (sigma about 1024) */
    dgauss_fit(r, "dgauss s2=10*2^40/2^40", (vl_u128)10 << 40, (vl_u128)1 << 40, 100000);
    dgauss_fit(r, "dgauss s2=(2^40+1)/2^20", ((vl_u128)1 << 40) + 1, (vl_u128)1 << 20, 100000);
    vl_rng_free(r);
}

/* The 256-bit product and quotient of vl_dgauss against GMP, on operands of every size
 * (the samples above only reach products below 2^128). */
static void mpz_set_u128(mpz_t z, vl_u128 v)
{
    mpz_set_ui(z, (unsigned long)(uint64_t)(v >> 64));
    mpz_mul_2exp(z, z, 64);
    mpz_add_ui(z, z, (unsigned long)(uint64_t)v);
}

static void test_muldiv(void **state)
{
    (void)state;
    struct vl_rng *r = vl_rng_new();
    mpz_t a, b, d, q, m, got;
    mpz_inits(a, b, d, q, m, got, NULL);
    for (int i = 0; i < 3000; i++) {
        /* random widths, so that small, mixed and full-width operands all come up */
        vl_u128 x = vl_rng_below(r, ~(vl_u128)0) >> vl_rng_below(r, 128);
        vl_u128 y = vl_rng_below(r, ~(vl_u128)0) >> vl_rng_below(r, 128);
        vl_u128 z = (vl_rng_below(r, ~(vl_u128)0) >> (1 + vl_rng_below(r, 127))) | 1;
        if (i == 0) {
            x = y = ~(vl_u128)0;
            z = ((vl_u128)1 << 127) - 1;
        }
        vl_u128 qh, ql, rem = vl_noise_test_muldiv(x, y, z, &qh, &ql);
        mpz_set_u128(a, x);
        mpz_set_u128(b, y);
        mpz_set_u128(d, z);
        mpz_mul(q, a, b);
        mpz_fdiv_qr(q, m, q, d);
        mpz_set_u128(got, qh);
        mpz_mul_2exp(got, got, 128);
        mpz_set_u128(a, ql);
        mpz_add(got, got, a);
        mpz_set_u128(b, rem);
        if (mpz_cmp(got, q) != 0 || mpz_cmp(b, m) != 0) {
            fail_msg("muldiv case %d differs from GMP", i);
        }
    }
    mpz_clears(a, b, d, q, m, got, NULL);
    vl_rng_free(r);
}

/* ---- public parameters ---- */

/* P(Z >= k) for k = 0 .. *n - 1, summed from far out (where the terms are below 1e-30 of
 * those at k <= 1000) back down to k, smallest terms first. malloc'd. */
static double *tail_sums(double b, size_t *n)
{
    double p = exp(-1.0 / b), c = (1 - p) / (1 + p);
    size_t len = (size_t)ceil(70 * b) + 1100;
    double *t = malloc(len * sizeof(*t));
    assert_non_null(t);
    double s = 0;
    for (size_t z = len; z-- > 0;) {
        s += c * exp(-(double)z / b);
        t[z] = s;
    }
    *n = len;
    return t;
}

static const double scales[] = {0.3, 0.5, 1, 3, 10.0 / 3, 7.25, 100, 1234.5};

static void test_tail(void **state)
{
    (void)state;
    static const uint64_t ks[] = {0, 1, 2, 5, 17, 100, 1000};
    for (size_t i = 0; i < sizeof(scales) / sizeof(scales[0]); i++) {
        size_t n;
        double *t = tail_sums(scales[i], &n);
        for (size_t j = 0; j < sizeof(ks) / sizeof(ks[0]) && ks[j] < n; j++) {
            double want = t[ks[j]], got = vl_dlaplace_tail(scales[i], ks[j]);
            if (fabs(got - want) > 1e-9 * want) {
                fail_msg("tail(b=%g, k=%llu) = %.15g, summed %.15g", scales[i],
                         (unsigned long long)ks[j], got, want);
            }
        }
        free(t);
    }
}

static void test_halfwidth_threshold(void **state)
{
    (void)state;
    static const double levels[] = {1, 0.5, 0.05, 1e-3, 1e-6, 1e-9};
    for (size_t i = 0; i < sizeof(scales) / sizeof(scales[0]); i++) {
        double b = scales[i];
        size_t n;
        double *tail = tail_sums(b, &n);
        for (size_t j = 0; j < sizeof(levels) / sizeof(levels[0]); j++) {
            double a = levels[j];
            uint64_t k = 0, t = 1;
            while (2 * tail[k + 1] > a) { /* P(|Z| > k) */
                k++;
                assert_true(k + 1 < n);
            }
            while (tail[t - 1] > a) {
                t++;
                assert_true(t - 1 < n);
            }
            uint64_t gk = vl_dlaplace_halfwidth(b, a), gt = vl_dlaplace_threshold(b, a);
            if (gk != k || gt != t) {
                fail_msg("b=%g level=%g: halfwidth %llu (brute force %llu), threshold %llu "
                         "(brute force %llu)",
                         b, a, (unsigned long long)gk, (unsigned long long)k,
                         (unsigned long long)gt, (unsigned long long)t);
            }
        }
        free(tail);
    }
    /* by hand: b = 1, delta = 1e-6: e^-13 / (1 + e^-1) = 1.65e-6, e^-14 / (1 + e^-1) =
     * 6.1e-7, so T - 1 = 14; alpha = 0.05: 2 e^-3 / (1 + e^-1) = 0.073, 2 e^-4 / (...) =
     * 0.027, so k + 1 = 4 */
    assert_int_equal(vl_dlaplace_threshold(1, 1e-6), 15);
    assert_int_equal(vl_dlaplace_halfwidth(1, 0.05), 3);
    assert_int_equal(vl_dlaplace_threshold(0.01, 1e-6), 2);
    assert_int_equal(vl_dlaplace_halfwidth(0.01, 1e-6), 0);
    /* large scales: the defining inequalities, at the answer and one below */
    static const double big[] = {4e6, 1.5e7, 1e12};
    for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++) {
        double b = big[i], p = exp(-1.0 / b);
        uint64_t t = vl_dlaplace_threshold(b, 1e-6), k = vl_dlaplace_halfwidth(b, 0.05);
        assert_true(exp(-(double)(t - 1) / b) / (1 + p) <= 1e-6);
        assert_true(exp(-(double)(t - 2) / b) / (1 + p) > 1e-6);
        assert_true(2 * exp(-(double)(k + 1) / b) / (1 + p) <= 0.05);
        assert_true(2 * exp(-(double)k / b) / (1 + p) > 0.05);
    }
}

int main(void)
{
    vl_crypto_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rng_streams_differ),
        cmocka_unit_test(test_rng_bits),
        cmocka_unit_test(test_rng_below_uniform),
        cmocka_unit_test(test_bernoulli),
        cmocka_unit_test(test_bernoulli_exp),
        cmocka_unit_test(test_dlaplace_pmf),
        cmocka_unit_test(test_dlaplace_large),
        cmocka_unit_test(test_dgauss_pmf),
        cmocka_unit_test(test_muldiv),
        cmocka_unit_test(test_tail),
        cmocka_unit_test(test_halfwidth_threshold),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
