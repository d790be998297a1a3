/*
 * noise.h: exact samplers of discrete noise for differentially private answers, and the
 * public-parameter arithmetic that goes with them (tail probabilities, error half-widths,
 * partition selection thresholds). Nothing here knows about policies, budgets or HTTP.
 *
 * The samplers (vl_bernoulli*, vl_dlaplace, vl_dgauss) use integers only: their output
 * distributions are exactly the ones stated, for the rational parameters given, apart from
 * events named in each contract whose probability is below exp(-2^27). The helpers at the
 * end take doubles: they see only public parameters, never a secret.
 *
 * A struct vl_rng is a secret (whoever knows it knows the noise, hence the exact values):
 * make one per answer, use it from one thread, free it when the answer is done.
 */
#ifndef VL_NOISE_H
#define VL_NOISE_H

#include <stdbool.h>
#include <stdint.h>

#include "tactics/tactics.h" /* vl_u128, vl_i128 */

/* Parameter ranges. Each sampler asserts them. */
#define VL_NOISE_LAPLACE_MAX ((vl_u128)1 << 100) /* vl_dlaplace: num, den < this */
#define VL_NOISE_GAUSS_MAX ((vl_u128)1 << 60)    /* vl_dgauss: num, den < this */

/* A random source for one answer: the ChaCha20 key stream under a 32-byte key drawn from
 * the system CSPRNG when the source is made. It lives in vl_secret_alloc memory and is
 * wiped by vl_rng_free. vl_crypto_init must have run. NULL when out of memory. */
struct vl_rng;
struct vl_rng *vl_rng_new(void);
/* Wipes and frees r; accepts NULL. */
void vl_rng_free(struct vl_rng *r);
/* 64 uniformly random bits. */
uint64_t vl_rng_u64(struct vl_rng *r);
/* Uniform in [0, n) for any n >= 1 (rejection sampling on the smallest power-of-two
 * range that holds n - 1: fewer than two tries on average). */
vl_u128 vl_rng_below(struct vl_rng *r, vl_u128 n);

/* true with probability num/den exactly; num <= den, den >= 1. */
bool vl_bernoulli(struct vl_rng *r, vl_u128 num, vl_u128 den);
/* true with probability exp(-num/den) exactly; any num, den >= 1. */
bool vl_bernoulli_exp(struct vl_rng *r, vl_u128 num, vl_u128 den);

/* Discrete Laplace of scale b = num/den: P(Z = z) = (1 - p) / (1 + p) * p^|z|, with
 * p = exp(-1/b). 1 <= num, den < VL_NOISE_LAPLACE_MAX, so that |Z| fits easily: a draw
 * whose magnitude would reach 2^127 (probability below exp(-2^27)) is drawn again.
 * Example: sensitivity 5,000,000 (cents) times 3 components over epsilon 1 given in
 * millionths is num = 5e6 * 3 * 1e6, den = 1e6 (scale 1.5e7). */
vl_i128 vl_dlaplace(struct vl_rng *r, vl_u128 num, vl_u128 den);
/* Discrete Gaussian of variance parameter sigma^2 = num/den: P(Z = z) proportional to
 * exp(-z^2 / (2 sigma^2)). 1 <= num, den < VL_NOISE_GAUSS_MAX (so sigma < 2^30). A
 * candidate too large for 128-bit arithmetic (its acceptance probability is below
 * exp(-2^128)) is rejected outright. */
vl_i128 vl_dgauss(struct vl_rng *r, vl_u128 num, vl_u128 den);

/* ---- public parameters (floating point: nothing secret goes in) ---- */

/* P(Z >= k) for discrete Laplace Z of scale b > 0: p^k / (1 + p), p = exp(-1/b). Holds for
 * any k >= 0 (k = 0 gives 1 / (1 + p)). */
double vl_dlaplace_tail(double b, uint64_t k);
/* The smallest k >= 0 with P(|Z| > k) <= alpha, alpha in (0, 1]: with alpha = 0.05, the
 * half-width of a 95% interval around the true value. UINT64_MAX if none fits in 64 bits. */
uint64_t vl_dlaplace_halfwidth(double b, double alpha);
/* The smallest T >= 1 with P(Z >= T - 1) <= delta, delta in (0, 1]: a count of sensitivity
 * 1 released only when count + Z >= T shows a group of one document with probability at
 * most delta. UINT64_MAX if none fits in 64 bits. */
uint64_t vl_dlaplace_threshold(double b, double delta);

#ifdef VL_NOISE_TEST_API
/* TEST ONLY (declared only under VL_NOISE_TEST_API; never call it from veil): the 256-bit
 * arithmetic of vl_dgauss. (a b) / d = *q_hi 2^128 + *q_lo; returns (a b) mod d. Requires
 * 1 <= d < 2^127. */
vl_u128 vl_noise_test_muldiv(vl_u128 a, vl_u128 b, vl_u128 d, vl_u128 *q_hi, vl_u128 *q_lo);
#endif

#endif
