/*
 * noise.c: the noise of differentially private answers, drawn exactly with integers (see
 * noise.h), and the floating-point arithmetic on public parameters that goes with it.
 *
 * Why no floating point on the sampling path: Mironov (CCS 2012, "On significance of the
 * least significant bits for differential privacy") showed that Laplace noise computed in
 * doubles, as -b * log(u) for a uniform double u, takes only some of the representable
 * values near each answer, and which ones depends on the true value: the low bits of a
 * noisy answer can give the exact value back, whatever epsilon says. So the samplers here
 * follow Canonne, Kamath and Steinke (NeurIPS 2020, "The Discrete Gaussian for Differential
 * Privacy"): Algorithm 1 draws Bernoulli(exp(-gamma)) for a rational gamma, Algorithm 2 the
 * discrete Laplace, Algorithm 3 the discrete Gaussian, with their loops as written, on
 * exact rationals in 128-bit integers (256-bit for one product in Algorithm 3). Their
 * outputs are integers with exactly the stated distribution; the only departures are named
 * in noise.h, each with probability below exp(-2^27), where a draw whose result would not
 * fit the arithmetic is drawn again.
 *
 * Why a ChaCha20 stream per answer: the algorithms consume many small uniform draws (about
 * a dozen 64-bit words for one discrete Laplace). Asking the kernel for each would cost a
 * system call per draw; one getrandom per answer gives a 32-byte key, and the ChaCha20 key
 * stream under it (a PRF, libsodium's) gives the rest. That state is as secret as the
 * noise itself: it lives in vl_secret_alloc memory (locked, out of core dumps) together
 * with the buffered key stream, every word is wiped from the buffer as it is handed out,
 * the whole is wiped when freed, and vl_scrub clears what ChaCha20 leaves of the key in
 * registers and on the stack after each refill.
 *
 * Not constant time: the number of loop iterations depends on the draws. What it tells
 * about one noise value through the time of an answer is small next to the store's round
 * trips, but it is not nothing.
 */
#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <sodium.h>

#define VL_NOISE_TEST_API
#include "crypto/crypto.h"
#include "crypto/noise.h"

#define RNG_BUF_BYTES 512 /* 8 ChaCha20 blocks per refill */
#define U128_MAX (~(vl_u128)0)
#define I128_MAX ((vl_i128)(U128_MAX >> 1))

struct vl_rng {
    uint8_t key[crypto_stream_chacha20_KEYBYTES];
    uint64_t block; /* the ChaCha20 block counter of the next refill */
    size_t pos;     /* the next unread byte of buf; RNG_BUF_BYTES when empty */
    uint8_t buf[RNG_BUF_BYTES];
};

/* ---- the random source ---- */

struct vl_rng *vl_rng_new(void)
{
    struct vl_rng *r = vl_secret_alloc(sizeof(*r));
    if (r != NULL) {
        vl_random(r->key, sizeof(r->key));
        r->block = 0;
        r->pos = RNG_BUF_BYTES;
    }
    return r;
}

void vl_rng_free(struct vl_rng *r)
{
    vl_secret_free(r); /* wipes */
}

static void rng_refill(struct vl_rng *r)
{
    static const uint8_t nonce[crypto_stream_chacha20_NONCEBYTES];
    memset(r->buf, 0, sizeof(r->buf));
    crypto_stream_chacha20_xor_ic(r->buf, r->buf, sizeof(r->buf), nonce, r->block, r->key);
    vl_scrub();
    r->block += sizeof(r->buf) / 64; /* 2^64 blocks are never reached */
    r->pos = 0;
}

uint64_t vl_rng_u64(struct vl_rng *r)
{
    uint64_t v;
    if (r->pos > RNG_BUF_BYTES - sizeof(v)) {
        rng_refill(r);
    }
    memcpy(&v, r->buf + r->pos, sizeof(v));
    sodium_memzero(r->buf + r->pos, sizeof(v));
    r->pos += sizeof(v);
    return v;
}

vl_u128 vl_rng_below(struct vl_rng *r, vl_u128 n)
{
    assert(n >= 1);
    vl_u128 top = n - 1, v;
    if (top == 0) {
        return 0;
    }
    if (top >> 64 == 0) {
        uint64_t mask = UINT64_MAX >> __builtin_clzll((uint64_t)top);
        do {
            v = vl_rng_u64(r) & mask;
        } while (v > top);
    } else {
        uint64_t mask = UINT64_MAX >> __builtin_clzll((uint64_t)(top >> 64));
        do {
            v = ((vl_u128)(vl_rng_u64(r) & mask) << 64) | vl_rng_u64(r);
        } while (v > top);
    }
    return v;
}

/* ---- Bernoulli draws (Canonne, Kamath and Steinke, Algorithm 1) ---- */

bool vl_bernoulli(struct vl_rng *r, vl_u128 num, vl_u128 den)
{
    assert(den >= 1 && num <= den);
    return vl_rng_below(r, den) < num;
}

/* Bernoulli(n / (d k)), n <= d, k >= 1. When d k does not fit in 128 bits, the product of
 * the independent Bernoulli(n / d) and Bernoulli(1 / k), which has the same law. */
static bool bern_over_k(struct vl_rng *r, vl_u128 n, vl_u128 d, vl_u128 k)
{
    vl_u128 dk;
    if (!__builtin_mul_overflow(d, k, &dk)) {
        return vl_rng_below(r, dk) < n;
    }
    return vl_rng_below(r, d) < n && vl_rng_below(r, k) == 0;
}

/* Bernoulli(exp(-n/d)) for 0 <= n/d <= 1: the first branch of Algorithm 1. The K at which
 * the chain of Bernoulli(gamma / K) first fails is odd with probability exp(-gamma). */
static bool bern_exp_le1(struct vl_rng *r, vl_u128 n, vl_u128 d)
{
    assert(d >= 1 && n <= d);
    vl_u128 k = 1;
    while (bern_over_k(r, n, d, k)) {
        k++;
    }
    return (k & 1) != 0;
}

/* A 256-bit unsigned integer: hi * 2^128 + lo. */
struct u256 {
    vl_u128 hi, lo;
};

static struct u256 mul_u128(vl_u128 a, vl_u128 b)
{
    uint64_t a0 = (uint64_t)a, a1 = (uint64_t)(a >> 64);
    uint64_t b0 = (uint64_t)b, b1 = (uint64_t)(b >> 64);
    vl_u128 p00 = (vl_u128)a0 * b0, p01 = (vl_u128)a0 * b1;
    vl_u128 p10 = (vl_u128)a1 * b0, p11 = (vl_u128)a1 * b1;
    vl_u128 mid = (p00 >> 64) + (uint64_t)p01 + (uint64_t)p10; /* < 3 * 2^64 */
    struct u256 x = {p11 + (p01 >> 64) + (p10 >> 64) + (mid >> 64), (mid << 64) | (uint64_t)p00};
    return x;
}

/* *q = x / d and returns x mod d, for 1 <= d < 2^127. */
static vl_u128 divmod_u256(struct u256 *q, struct u256 x, vl_u128 d)
{
    assert(d >= 1 && d >> 127 == 0);
    vl_u128 rem = x.hi % d;
    q->hi = x.hi / d;
    q->lo = 0;
    for (int i = 127; i >= 0; i--) {
        rem = (rem << 1) | ((x.lo >> i) & 1); /* rem < d < 2^127: no carry out */
        if (rem >= d) {
            rem -= d;
            q->lo |= (vl_u128)1 << i;
        }
    }
    return rem;
}

vl_u128 vl_noise_test_muldiv(vl_u128 a, vl_u128 b, vl_u128 d, vl_u128 *q_hi, vl_u128 *q_lo)
{
    struct u256 q;
    vl_u128 rem = divmod_u256(&q, mul_u128(a, b), d);
    *q_hi = q.hi;
    *q_lo = q.lo;
    return rem;
}

/* Bernoulli(exp(-gamma)) for gamma = q + n/d >= 0, n < d: Algorithm 1 as written. */
static bool bern_exp_split(struct vl_rng *r, struct u256 q, vl_u128 n, vl_u128 d)
{
    assert(d >= 1 && n < d);
    if (q.hi == 0 && (q.lo == 0 || (q.lo == 1 && n == 0))) {
        return q.lo == 0 ? bern_exp_le1(r, n, d) : bern_exp_le1(r, 1, 1);
    }
    /* gamma > 1: floor(gamma) draws of Bernoulli(exp(-1)), then the fractional part */
    while (q.hi != 0 || q.lo != 0) {
        if (!bern_exp_le1(r, 1, 1)) {
            return false;
        }
        q.hi -= q.lo == 0;
        q.lo--;
    }
    return bern_exp_le1(r, n, d);
}

bool vl_bernoulli_exp(struct vl_rng *r, vl_u128 num, vl_u128 den)
{
    assert(den >= 1);
    struct u256 q = {0, num / den};
    return bern_exp_split(r, q, num % den, den);
}

/* ---- discrete Laplace (Algorithm 2) ---- */

vl_i128 vl_dlaplace(struct vl_rng *r, vl_u128 num, vl_u128 den)
{
    const vl_u128 t = num, s = den; /* scale t / s, as in the paper */
    assert(t >= 1 && t < VL_NOISE_LAPLACE_MAX && s >= 1 && s < VL_NOISE_LAPLACE_MAX);
    /* X = U + t V stays below 2^127 while V <= vmax; vmax >= 2^27 - 1 for t < 2^100, and
     * V > vmax (geometric: probability exp(-(vmax + 1))) restarts the draw. */
    const vl_u128 vmax = ((vl_u128)I128_MAX - (t - 1)) / t;
    for (;;) {
        vl_u128 u = vl_rng_below(r, t);
        if (!bern_exp_le1(r, u, t)) {
            continue;
        }
        vl_u128 v = 0;
        bool too_big = false;
        while (bern_exp_le1(r, 1, 1)) {
            if (v == vmax) {
                too_big = true;
                break;
            }
            v++;
        }
        if (too_big) {
            continue;
        }
        vl_u128 x = u + t * v; /* geometric: P(X = x) proportional to exp(-x / t) */
        vl_u128 y = x / s;     /* geometric: P(Y = y) proportional to exp(-y s / t) */
        bool b = (vl_rng_u64(r) & 1) != 0;
        if (b && y == 0) {
            continue;
        }
        return b ? -(vl_i128)y : (vl_i128)y;
    }
}

/* ---- discrete Gaussian (Algorithm 3) ---- */

static uint64_t isqrt_u64(uint64_t x)
{
    uint64_t lo = 0, hi = UINT32_MAX; /* floor(sqrt(x)) <= 2^32 - 1 */
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo + 1) / 2;
        if (mid * mid <= x) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    return lo;
}

vl_i128 vl_dgauss(struct vl_rng *r, vl_u128 num, vl_u128 den)
{
    const vl_u128 n = num, d = den; /* sigma^2 = n / d */
    assert(n >= 1 && n < VL_NOISE_GAUSS_MAX && d >= 1 && d < VL_NOISE_GAUSS_MAX);
    /* t = floor(sigma) + 1 = floor(sqrt(floor(n / d))) + 1 <= 2^30. The acceptance
     * probability exp(-(|Y| - sigma^2 / t)^2 / (2 sigma^2)) is exp(-a^2 / B) with
     * a = | |Y| d t - n | and B = 2 n d t^2; d t^2 <= n + 2 sqrt(n d) + d < 2^62, so
     * B < 2^123. */
    const vl_u128 t = (vl_u128)isqrt_u64((uint64_t)(n / d)) + 1;
    vl_u128 dt, dtt, big_b;
    bool over = __builtin_mul_overflow(d, t, &dt);
    over |= __builtin_mul_overflow(dt, t, &dtt);
    over |= __builtin_mul_overflow(2 * n, dtt, &big_b);
    assert(!over && big_b >> 123 == 0);
    (void)over;
    for (;;) {
        vl_i128 y = vl_dlaplace(r, t, 1);
        vl_u128 x = y < 0 ? -(vl_u128)y : (vl_u128)y, xdt;
        /* x d t >= 2^127 means gamma > 2^128: rejected without a draw */
        if (__builtin_mul_overflow(x, dt, &xdt) || xdt > (vl_u128)I128_MAX) {
            continue;
        }
        vl_u128 a = xdt >= n ? xdt - n : n - xdt;
        struct u256 q;
        vl_u128 rem = divmod_u256(&q, mul_u128(a, a), big_b);
        if (bern_exp_split(r, q, rem, big_b)) {
            return y;
        }
    }
}

/* ---- public parameters ---- */

double vl_dlaplace_tail(double b, uint64_t k)
{
    assert(b > 0);
    return exp(-(double)k / b) / (1.0 + exp(-1.0 / b));
}

/* The smallest m >= lo with pred(m), starting from the estimate m0 (pred is monotone:
 * false then true). UINT64_MAX if pred never holds below it. */
static uint64_t search_from(uint64_t m0, uint64_t lo, bool (*pred)(double, double, uint64_t),
                            double b, double level)
{
    uint64_t m = m0 < lo ? lo : m0;
    while (m > lo && pred(b, level, m - 1)) {
        m--;
    }
    while (m < UINT64_MAX && !pred(b, level, m)) {
        m++;
    }
    return m;
}

/* The estimate ceil(g) + add, saturated to [0, UINT64_MAX]. */
static uint64_t estimate(double g, uint64_t add)
{
    if (!(g > 0)) {
        return add;
    }
    if (g >= 0x1p63) {
        return UINT64_MAX;
    }
    return (uint64_t)ceil(g) + add;
}

static bool halfwidth_ok(double b, double alpha, uint64_t k)
{
    return k == UINT64_MAX || 2.0 * vl_dlaplace_tail(b, k + 1) <= alpha;
}

uint64_t vl_dlaplace_halfwidth(double b, double alpha)
{
    assert(b > 0 && alpha > 0 && alpha <= 1);
    /* 2 p^(k+1) / (1 + p) <= alpha  <=>  k + 1 >= -b log(alpha (1 + p) / 2) */
    double p = exp(-1.0 / b);
    uint64_t k0 = estimate(-b * log(alpha * (1.0 + p) / 2.0), 0);
    if (k0 == UINT64_MAX) {
        return UINT64_MAX;
    }
    return search_from(k0 == 0 ? 0 : k0 - 1, 0, halfwidth_ok, b, alpha);
}

static bool threshold_ok(double b, double delta, uint64_t t)
{
    return vl_dlaplace_tail(b, t - 1) <= delta;
}

uint64_t vl_dlaplace_threshold(double b, double delta)
{
    assert(b > 0 && delta > 0 && delta <= 1);
    /* p^(T-1) / (1 + p) <= delta  <=>  T - 1 >= -b log(delta (1 + p)) */
    double p = exp(-1.0 / b);
    uint64_t t0 = estimate(-b * log(delta * (1.0 + p)), 1);
    return t0 == UINT64_MAX ? UINT64_MAX : search_from(t0, 1, threshold_ok, b, delta);
}
