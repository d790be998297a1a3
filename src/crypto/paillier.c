/*
 * paillier.c: Paillier with g = n + 1 over GMP, for sums that anyone holding the public key
 * can add to (`sum: {scheme: paillier}`). The store sees only ciphertexts, fixed-width
 * integers below n^2 that it multiplies modulo n^2; it learns nothing of the plaintexts
 * beyond their count, under the decisional composite residuosity assumption.
 *
 * Invariants: a key is immutable once made (so it may be shared between threads); every
 * ciphertext written is below n^2 and exactly ciphertext_bytes long; every ciphertext read
 * is checked to lie in Z*_{n^2} before use; outputs are written only on success and zeroed
 * on failure.
 *
 * Speed: with the private key both directions work modulo p^2 and q^2 (half-size moduli).
 * Decryption raises to p - 1 (half-size exponent). Encryption uses that y^p mod p^2
 * depends only on y mod p, so r^n mod p^2 = (r^q mod p)^p mod p^2: one exponentiation
 * modulo p with a half-size exponent and one modulo p^2 with the exponent p.
 *
 * Side channels: every exponentiation with a secret base, exponent or modulus is
 * mpz_powm_sec; the multiplications, reductions and gcds around them are GMP's ordinary
 * variable-time code. Secrets in GMP's heap are wiped on free (vl_paillier_init).
 */
#include <assert.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gmp.h>
#include <sodium.h>

#define VL_PAILLIER_TEST_API
#include "crypto/paillier.h"

#define PRIME_REPS 32            /* mpz_probab_prime_p: BPSW, then 8 Miller-Rabin rounds */
#define KEYGEN_MAX_CANDIDATES 64 /* 2 are used unless one is skipped (negligible odds) */
#define RANDOM_MAX_TRIES 128     /* each try fails with probability < 1/2 */
#define TEST_MIN_BITS 512
#define KEYGEN_NONCE_TAG "vlpl"

struct vl_paillier {
    mpz_t n, n2;
    size_t nbytes, cbytes;
    int priv;
    /* The rest is set only when priv, and is secret. */
    mpz_t p, q, p2, q2, pm1, qm1;
    mpz_t hp, hq;               /* L_p(g^(p-1) mod p^2)^-1 mod p, likewise for q */
    mpz_t q_mod_pm1, p_mod_qm1; /* exponents of r^q mod p and r^p mod q */
    mpz_t qinv_p;               /* q^-1 mod p (decryption CRT) */
    mpz_t q2inv_p2;             /* q^-2 mod p^2 (encryption CRT) */
};

/* ---- GMP memory that is wiped on free ---- */

static void *wipe_alloc(size_t n)
{
    void *p = malloc(n != 0 ? n : 1);
    if (p == NULL) {
        fputs("veil: out of memory in GMP\n", stderr);
        abort();
    }
    return p;
}

/* GMP's size argument is ignored: the whole block malloc gave is wiped, so blocks allocated
 * before vl_paillier_init (by plain malloc) and callers passing odd sizes are both fine. */
static void wipe_free(void *p, size_t n)
{
    (void)n;
    sodium_memzero(p, malloc_usable_size(p));
    free(p);
}

static void *wipe_realloc(void *old, size_t oldn, size_t newn)
{
    void *p = wipe_alloc(newn);
    size_t keep = malloc_usable_size(old);

    if (oldn < keep) {
        keep = oldn;
    }
    if (newn < keep) {
        keep = newn;
    }
    memcpy(p, old, keep);
    wipe_free(old, oldn);
    return p;
}

static pthread_once_t wipe_once = PTHREAD_ONCE_INIT;

static void wipe_install(void)
{
    mp_set_memory_functions(wipe_alloc, wipe_realloc, wipe_free);
}

int vl_paillier_init(void)
{
    void *(*a)(size_t);
    void *(*r)(void *, size_t, size_t);
    void (*f)(void *, size_t);

    pthread_once(&wipe_once, wipe_install);
    mp_get_memory_functions(&a, &r, &f);
    return (a == wipe_alloc && r == wipe_realloc && f == wipe_free) ? 0 : -1;
}

/* ---- numbers <-> big-endian bytes ---- */

static void import_be(mpz_t x, const uint8_t *b, size_t len)
{
    if (len == 0) {
        mpz_set_ui(x, 0);
    } else {
        mpz_import(x, len, 1, 1, 1, 0, b);
    }
}

/* x (>= 0) into exactly len bytes, zero-padded on the left; -1 if it does not fit. */
static int export_fixed(uint8_t *out, size_t len, const mpz_t x)
{
    size_t need = (mpz_sizeinbase(x, 2) + 7) / 8, count = 0;

    if (mpz_sgn(x) < 0 || need > len) {
        return -1;
    }
    memset(out, 0, len);
    if (mpz_sgn(x) != 0) {
        mpz_export(out + len - need, &count, 1, 1, 1, 0, x);
        assert(count == need);
    }
    return 0;
}

static void store_be32(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)(v >> 24);
    b[1] = (uint8_t)(v >> 16);
    b[2] = (uint8_t)(v >> 8);
    b[3] = (uint8_t)v;
}

static int coprime(const mpz_t a, const mpz_t n)
{
    mpz_t g;
    int ok;

    mpz_init(g);
    mpz_gcd(g, a, n);
    ok = mpz_cmp_ui(g, 1) == 0;
    mpz_clear(g);
    return ok;
}

/* ---- keys ---- */

static struct vl_paillier *key_alloc(void)
{
    struct vl_paillier *k;

    if (vl_paillier_init() != 0 || (k = calloc(1, sizeof(*k))) == NULL) {
        return NULL;
    }
    mpz_inits(k->n, k->n2, k->p, k->q, k->p2, k->q2, k->pm1, k->qm1, k->hp, k->hq, k->q_mod_pm1,
              k->p_mod_qm1, k->qinv_p, k->q2inv_p2, NULL);
    return k;
}

void vl_paillier_free(struct vl_paillier *k)
{
    if (k == NULL) {
        return;
    }
    /* The wiping free of vl_paillier_init clears the limbs. */
    mpz_clears(k->n, k->n2, k->p, k->q, k->p2, k->q2, k->pm1, k->qm1, k->hp, k->hq, k->q_mod_pm1,
               k->p_mod_qm1, k->qinv_p, k->q2inv_p2, NULL);
    sodium_memzero(k, sizeof(*k));
    free(k);
}

/* Sets n (odd, within the size limits unless any_size) and what follows from it. */
static int set_public(struct vl_paillier *k, const mpz_t n, int any_size)
{
    size_t bits = mpz_sizeinbase(n, 2);

    if (mpz_cmp_ui(n, 3) < 0 || mpz_even_p(n) || bits > VL_PAILLIER_MAX_BITS ||
        (!any_size && bits < VL_PAILLIER_MIN_BITS - 1)) {
        return -1;
    }
    mpz_set(k->n, n);
    mpz_mul(k->n2, n, n);
    k->nbytes = (bits + 7) / 8;
    k->cbytes = (mpz_sizeinbase(k->n2, 2) + 7) / 8;
    return 0;
}

/* h = L_p(g^(p-1) mod p^2)^-1 mod p with g = n + 1; 0 if it exists. */
static int crt_h(mpz_t h, const mpz_t g, const mpz_t pm1, const mpz_t p, const mpz_t p2)
{
    mpz_powm_sec(h, g, pm1, p2);
    mpz_sub_ui(h, h, 1);
    if (!mpz_divisible_p(h, p)) {
        return -1;
    }
    mpz_divexact(h, h, p);
    return mpz_invert(h, h, p) != 0 ? 0 : -1;
}

/* Checks p and q (primality only if check_primes) and fills in the whole key. */
static int set_private(struct vl_paillier *k, const mpz_t p, const mpz_t q, int any_size,
                       int check_primes)
{
    mpz_t t;
    int rc = -1;

    mpz_init(t);
    if (mpz_cmp_ui(p, 3) < 0 || mpz_cmp_ui(q, 3) < 0 || mpz_even_p(p) || mpz_even_p(q) ||
        mpz_cmp(p, q) == 0) {
        goto out;
    }
    if (check_primes &&
        (mpz_probab_prime_p(p, PRIME_REPS) == 0 || mpz_probab_prime_p(q, PRIME_REPS) == 0)) {
        goto out;
    }
    mpz_mul(t, p, q);
    if (set_public(k, t, any_size) != 0) {
        goto out;
    }
    mpz_set(k->p, p);
    mpz_set(k->q, q);
    mpz_sub_ui(k->pm1, p, 1);
    mpz_sub_ui(k->qm1, q, 1);
    mpz_mul(t, k->pm1, k->qm1);
    if (!coprime(t, k->n)) {
        goto out;
    }
    mpz_mul(k->p2, p, p);
    mpz_mul(k->q2, q, q);
    mpz_add_ui(t, k->n, 1);
    if (crt_h(k->hp, t, k->pm1, p, k->p2) != 0 || crt_h(k->hq, t, k->qm1, q, k->q2) != 0) {
        goto out;
    }
    /* mpz_powm_sec needs positive exponents; q mod (p-1) = 0 would need p - 1 to divide
     * the prime q, which no two distinct odd primes allow. */
    mpz_mod(k->q_mod_pm1, q, k->pm1);
    mpz_mod(k->p_mod_qm1, p, k->qm1);
    if (mpz_sgn(k->q_mod_pm1) == 0 || mpz_sgn(k->p_mod_qm1) == 0 ||
        mpz_invert(k->qinv_p, q, p) == 0 || mpz_invert(k->q2inv_p2, k->q2, k->p2) == 0) {
        goto out;
    }
    k->priv = 1;
    rc = 0;
out:
    mpz_clear(t);
    return rc;
}

static int from_primes(struct vl_paillier **out, const uint8_t *p, size_t plen, const uint8_t *q,
                       size_t qlen, int any_size)
{
    struct vl_paillier *k = NULL;
    mpz_t a, b;
    int rc = -1;

    *out = NULL;
    if (p == NULL || q == NULL || plen > VL_PAILLIER_MAX_NBYTES || qlen > VL_PAILLIER_MAX_NBYTES ||
        (k = key_alloc()) == NULL) {
        return -1;
    }
    mpz_inits(a, b, NULL);
    import_be(a, p, plen);
    import_be(b, q, qlen);
    rc = set_private(k, a, b, any_size, 1);
    mpz_clears(a, b, NULL);
    if (rc == 0) {
        *out = k;
    } else {
        vl_paillier_free(k);
    }
    return rc;
}

int vl_paillier_new_from_primes(struct vl_paillier **out, const uint8_t *p, size_t plen,
                                const uint8_t *q, size_t qlen)
{
    return from_primes(out, p, plen, q, qlen, 0);
}

int vl_paillier_test_new_from_primes(struct vl_paillier **out, const uint8_t *p, size_t plen,
                                     const uint8_t *q, size_t qlen)
{
    return from_primes(out, p, plen, q, qlen, 1);
}

static int new_public(struct vl_paillier **out, const uint8_t *n, size_t nlen, int any_size)
{
    struct vl_paillier *k = NULL;
    mpz_t a;
    int rc;

    *out = NULL;
    if (n == NULL || nlen > VL_PAILLIER_MAX_CIPHERTEXTBYTES || (k = key_alloc()) == NULL) {
        return -1;
    }
    mpz_init(a);
    import_be(a, n, nlen);
    rc = set_public(k, a, any_size);
    mpz_clear(a);
    if (rc == 0) {
        *out = k;
    } else {
        vl_paillier_free(k);
    }
    return rc;
}

int vl_paillier_new_public(struct vl_paillier **out, const uint8_t *n, size_t nlen)
{
    return new_public(out, n, nlen, 0);
}

int vl_paillier_test_new_public(struct vl_paillier **out, const uint8_t *n, size_t nlen)
{
    return new_public(out, n, nlen, 1);
}

/* The derivation documented at vl_paillier_keygen. */
static int keygen(struct vl_paillier **out, const uint8_t *seed, unsigned bits, int any_size)
{
    struct vl_paillier *k = NULL;
    uint8_t buf[VL_PAILLIER_MAX_BITS / 16];
    uint8_t nonce[crypto_stream_chacha20_ietf_NONCEBYTES];
    size_t half = bits / 16;
    mpz_t p, cand;
    int have_p = 0, rc = -1;

    *out = NULL;
    if (seed == NULL || (k = key_alloc()) == NULL) {
        return -1;
    }
    assert(half >= 1 && half <= sizeof(buf));
    mpz_inits(p, cand, NULL);
    for (uint32_t i = 0; i < KEYGEN_MAX_CANDIDATES && rc != 0; i++) {
        memcpy(nonce, KEYGEN_NONCE_TAG, 4);
        store_be32(nonce + 4, bits);
        store_be32(nonce + 8, i);
        crypto_stream_chacha20_ietf(buf, half, nonce, seed);
        buf[0] |= 0xc0;
        buf[half - 1] |= 0x01;
        import_be(cand, buf, half);
        mpz_nextprime(cand, cand);
        if (mpz_sizeinbase(cand, 2) != bits / 2) {
            continue;
        }
        if (!have_p) {
            mpz_swap(p, cand);
            have_p = 1;
        } else if (set_private(k, p, cand, any_size, 0) == 0) {
            rc = 0;
        }
    }
    sodium_memzero(buf, sizeof(buf));
    mpz_clears(p, cand, NULL);
    if (rc == 0) {
        *out = k;
    } else {
        vl_paillier_free(k);
    }
    return rc;
}

int vl_paillier_keygen(struct vl_paillier **out, const uint8_t seed[VL_PAILLIER_SEEDBYTES],
                       unsigned bits)
{
    if (bits < VL_PAILLIER_MIN_BITS || bits > VL_PAILLIER_MAX_BITS || bits % 1024 != 0) {
        *out = NULL;
        return -1;
    }
    return keygen(out, seed, bits, 0);
}

int vl_paillier_test_keygen(struct vl_paillier **out, const uint8_t seed[32], unsigned bits)
{
    if (bits < TEST_MIN_BITS || bits > VL_PAILLIER_MAX_BITS || bits % 512 != 0) {
        *out = NULL;
        return -1;
    }
    return keygen(out, seed, bits, 1);
}

int vl_paillier_has_private(const struct vl_paillier *k)
{
    return k->priv;
}

size_t vl_paillier_n_bytes(const struct vl_paillier *k)
{
    return k->nbytes;
}

size_t vl_paillier_ciphertext_bytes(const struct vl_paillier *k)
{
    return k->cbytes;
}

int vl_paillier_n_export(const struct vl_paillier *k, uint8_t *out, size_t outlen)
{
    return outlen == k->nbytes ? export_fixed(out, outlen, k->n) : -1;
}

int vl_paillier_n2_export(const struct vl_paillier *k, uint8_t *out, size_t outlen)
{
    return outlen == k->cbytes ? export_fixed(out, outlen, k->n2) : -1;
}

/* ---- encryption ---- */

/* A uniform r in Z*_n, by rejection. */
static int random_unit(mpz_t r, const struct vl_paillier *k)
{
    uint8_t buf[VL_PAILLIER_MAX_NBYTES];
    unsigned topbits = (unsigned)(mpz_sizeinbase(k->n, 2) % 8);
    int rc = -1;

    for (int i = 0; i < RANDOM_MAX_TRIES && rc != 0; i++) {
        vl_random(buf, k->nbytes);
        if (topbits != 0) {
            buf[0] &= (uint8_t)((1u << topbits) - 1);
        }
        import_be(r, buf, k->nbytes);
        if (mpz_sgn(r) > 0 && mpz_cmp(r, k->n) < 0 && coprime(r, k->n)) {
            rc = 0;
        }
    }
    sodium_memzero(buf, sizeof(buf));
    return rc;
}

/* x = r^n mod n^2 by CRT, for r in Z*_n. Modulo p^2: r^n = (r^q)^p, and y^p mod p^2
 * depends only on y mod p, so it is (r^(q mod (p-1)) mod p)^p mod p^2; likewise for q.
 * Then x = x_q + q^2 ((x_p - x_q) q^-2 mod p^2). */
static void rn_crt(mpz_t x, const struct vl_paillier *k, const mpz_t r)
{
    mpz_t xp, xq, t;

    mpz_inits(xp, xq, t, NULL);
    mpz_mod(t, r, k->p);
    mpz_powm_sec(t, t, k->q_mod_pm1, k->p);
    mpz_powm_sec(xp, t, k->p, k->p2);
    mpz_mod(t, r, k->q);
    mpz_powm_sec(t, t, k->p_mod_qm1, k->q);
    mpz_powm_sec(xq, t, k->q, k->q2);
    mpz_sub(t, xp, xq);
    mpz_mul(t, t, k->q2inv_p2);
    mpz_mod(t, t, k->p2);
    mpz_mul(t, t, k->q2);
    mpz_add(x, t, xq);
    mpz_clears(xp, xq, t, NULL);
}

/* c = (1 + m n) r^n mod n^2 into exactly clen bytes, for 0 <= m < n and r in Z*_n. */
static int encrypt_core(const struct vl_paillier *k, uint8_t *c, size_t clen, const mpz_t m,
                        const mpz_t r, int crt)
{
    mpz_t x, t;
    int rc;

    assert(!crt || k->priv);
    mpz_inits(x, t, NULL);
    if (crt) {
        rn_crt(x, k, r);
    } else {
        mpz_powm_sec(x, r, k->n, k->n2);
    }
    mpz_mul(t, m, k->n);
    mpz_add_ui(t, t, 1);
    mpz_mul(t, t, x);
    mpz_mod(t, t, k->n2);
    rc = export_fixed(c, clen, t);
    mpz_clears(x, t, NULL);
    return rc;
}

int vl_paillier_encrypt(const struct vl_paillier *k, uint8_t *c, size_t clen, int64_t m)
{
    uint64_t mag = m < 0 ? 0 - (uint64_t)m : (uint64_t)m;
    uint8_t b[8];
    mpz_t x, r;
    int rc = -1;

    if (clen != k->cbytes) {
        memset(c, 0, clen);
        return -1;
    }
    for (int i = 0; i < 8; i++) {
        b[i] = (uint8_t)(mag >> (56 - 8 * i));
    }
    mpz_inits(x, r, NULL);
    import_be(x, b, sizeof(b));
    if (m < 0) {
        mpz_neg(x, x);
    }
    mpz_mod(x, x, k->n);
    if (random_unit(r, k) == 0) {
        rc = encrypt_core(k, c, clen, x, r, k->priv);
    }
    sodium_memzero(b, sizeof(b));
    mpz_clears(x, r, NULL);
    if (rc != 0) {
        memset(c, 0, clen);
    }
    return rc;
}

int vl_paillier_test_encrypt_raw(const struct vl_paillier *k, uint8_t *c, size_t clen,
                                 const uint8_t *m, size_t mlen, const uint8_t *r, size_t rlen,
                                 int crt)
{
    mpz_t x, y;
    int rc = -1;

    if (clen != k->cbytes) {
        memset(c, 0, clen);
        return -1;
    }
    mpz_inits(x, y, NULL);
    import_be(x, m, mlen);
    import_be(y, r, rlen);
    if ((!crt || k->priv) && mpz_cmp(x, k->n) < 0 && mpz_sgn(y) > 0 && mpz_cmp(y, k->n) < 0 &&
        coprime(y, k->n)) {
        rc = encrypt_core(k, c, clen, x, y, crt);
    }
    mpz_clears(x, y, NULL);
    if (rc != 0) {
        memset(c, 0, clen);
    }
    return rc;
}

/* ---- ciphertexts in, decryption ---- */

/* Reads a ciphertext and checks it is in Z*_{n^2}: 0 < c < n^2 and gcd(c, n) = 1. */
static int load_ct(mpz_t c, const struct vl_paillier *k, const uint8_t *b, size_t len)
{
    if (b == NULL || len == 0 || len > k->cbytes) {
        return -1;
    }
    import_be(c, b, len);
    return mpz_sgn(c) > 0 && mpz_cmp(c, k->n2) < 0 && coprime(c, k->n) ? 0 : -1;
}

/* m_p = L_p(c^(p-1) mod p^2) h_p mod p; c must be coprime to p. */
static void decrypt_half(mpz_t mp, const mpz_t c, const mpz_t p, const mpz_t p2, const mpz_t pm1,
                         const mpz_t hp)
{
    mpz_t t;

    mpz_init(t);
    mpz_mod(t, c, p2);
    mpz_powm_sec(t, t, pm1, p2);
    mpz_sub_ui(t, t, 1);
    mpz_divexact(t, t, p);
    mpz_mul(t, t, hp);
    mpz_mod(mp, t, p);
    mpz_clear(t);
}

/* m in [0, n) from a ciphertext that passed load_ct. */
static void decrypt_core(mpz_t m, const struct vl_paillier *k, const mpz_t c)
{
    mpz_t mp, mq, t;

    assert(k->priv);
    mpz_inits(mp, mq, t, NULL);
    decrypt_half(mp, c, k->p, k->p2, k->pm1, k->hp);
    decrypt_half(mq, c, k->q, k->q2, k->qm1, k->hq);
    /* m = m_q + q ((m_p - m_q) q^-1 mod p) */
    mpz_sub(t, mp, mq);
    mpz_mul(t, t, k->qinv_p);
    mpz_mod(t, t, k->p);
    mpz_mul(t, t, k->q);
    mpz_add(m, t, mq);
    mpz_clears(mp, mq, t, NULL);
}

int vl_paillier_decrypt(const struct vl_paillier *k, __int128 *m, const uint8_t *c, size_t clen)
{
    uint8_t b[16];
    unsigned __int128 u = 0;
    mpz_t x, v;
    int neg, rc = -1;

    *m = 0;
    if (!k->priv) {
        return -1;
    }
    mpz_inits(x, v, NULL);
    if (load_ct(x, k, c, clen) != 0) {
        goto out;
    }
    decrypt_core(v, k, x);
    mpz_tdiv_q_2exp(x, k->n, 1); /* (n - 1) / 2, the largest non-negative value */
    neg = mpz_cmp(v, x) > 0;
    if (neg) {
        mpz_sub(v, k->n, v);
    }
    if (mpz_sizeinbase(v, 2) > 127 || export_fixed(b, sizeof(b), v) != 0) {
        goto out;
    }
    for (size_t i = 0; i < sizeof(b); i++) {
        u = u << 8 | b[i];
    }
    *m = neg ? -(__int128)u : (__int128)u;
    rc = 0;
out:
    sodium_memzero(b, sizeof(b));
    sodium_memzero(&u, sizeof(u));
    mpz_clears(x, v, NULL);
    return rc;
}

int vl_paillier_test_decrypt_raw(const struct vl_paillier *k, uint8_t *m, size_t mlen,
                                 const uint8_t *c, size_t clen)
{
    mpz_t x, v;
    int rc = -1;

    mpz_inits(x, v, NULL);
    if (k->priv && mlen >= k->nbytes && load_ct(x, k, c, clen) == 0) {
        decrypt_core(v, k, x);
        rc = export_fixed(m, mlen, v);
    }
    mpz_clears(x, v, NULL);
    if (rc != 0) {
        memset(m, 0, mlen);
    }
    return rc;
}

/* ---- homomorphic operations ---- */

int vl_paillier_add(const struct vl_paillier *k, uint8_t *out, size_t outlen, const uint8_t *c1,
                    size_t c1len, const uint8_t *c2, size_t c2len)
{
    mpz_t a, b;
    int rc = -1;

    mpz_inits(a, b, NULL);
    if (outlen == k->cbytes && load_ct(a, k, c1, c1len) == 0 && load_ct(b, k, c2, c2len) == 0) {
        mpz_mul(a, a, b);
        mpz_mod(a, a, k->n2);
        rc = export_fixed(out, outlen, a);
    }
    mpz_clears(a, b, NULL);
    if (rc != 0) {
        memset(out, 0, outlen);
    }
    return rc;
}

int vl_paillier_scalar_mul(const struct vl_paillier *k, uint8_t *out, size_t outlen,
                           const uint8_t *c, size_t clen, const uint8_t *s, size_t slen)
{
    mpz_t a, e;
    int rc = -1;

    mpz_inits(a, e, NULL);
    if (outlen == k->cbytes && s != NULL && slen > 0 && slen <= VL_PAILLIER_MAX_CIPHERTEXTBYTES &&
        load_ct(a, k, c, clen) == 0) {
        import_be(e, s, slen);
        mpz_powm(a, a, e, k->n2);
        rc = export_fixed(out, outlen, a);
    }
    mpz_clears(a, e, NULL);
    if (rc != 0) {
        memset(out, 0, outlen);
    }
    return rc;
}

/* ---- test-only access to private values ---- */

int vl_paillier_test_export(const struct vl_paillier *k, const char *name, uint8_t *out,
                            size_t outlen)
{
    mpz_t v, t;
    int rc = -1;

    if (!k->priv) {
        memset(out, 0, outlen);
        return -1;
    }
    mpz_inits(v, t, NULL);
    if (strcmp(name, "p") == 0) {
        mpz_set(v, k->p);
    } else if (strcmp(name, "q") == 0) {
        mpz_set(v, k->q);
    } else if (strcmp(name, "hp") == 0) {
        mpz_set(v, k->hp);
    } else if (strcmp(name, "hq") == 0) {
        mpz_set(v, k->hq);
    } else if (strcmp(name, "lambda") == 0 || strcmp(name, "mu") == 0) {
        mpz_lcm(v, k->pm1, k->qm1);
        if (strcmp(name, "mu") == 0) {
            mpz_add_ui(t, k->n, 1);
            mpz_powm(t, t, v, k->n2);
            mpz_sub_ui(t, t, 1);
            mpz_divexact(t, t, k->n);
            if (mpz_invert(v, t, k->n) == 0) {
                goto out;
            }
        }
    } else {
        goto out;
    }
    rc = export_fixed(out, outlen, v);
out:
    mpz_clears(v, t, NULL);
    if (rc != 0) {
        memset(out, 0, outlen);
    }
    return rc;
}
