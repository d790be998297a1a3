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
 * Where secrets live: the private numbers (p, q, and the values the CRT needs) are limb
 * arrays in one vl_secret_alloc block: locked, between guard pages, excluded from core
 * dumps (MADV_DONTDUMP) and wiped when the key is freed. Everything computed from them or
 * from a plaintext (key generation, decryption, encryption and its random r) runs on GMP's
 * mpn_sec_* functions, which take all their scratch space from the caller: a workspace
 * vl_secret_alloc'd per call and wiped on return. So no secret goes through GMP's
 * allocator, whose memory is ordinary heap (dumped, freed without wiping); and libveil
 * leaves GMP's process-wide memory functions alone. What the arithmetic leaves on the
 * stack is cleared by vl_scrub before returning. Only public numbers are mpz_t: n,
 * n^2 and ciphertexts.
 *
 * Speed: with the private key both directions work modulo p^2 and q^2 (half-size moduli).
 * Decryption raises to p - 1 (half-size exponent). Encryption uses that y^p mod p^2
 * depends only on y mod p, so r^n mod p^2 = (r^q mod p)^p mod p^2: one exponentiation
 * modulo p with a half-size exponent and one modulo p^2 with the exponent p.
 *
 * Side channels: the mpn_sec_* functions (exponentiation, multiplication, division,
 * inversion) take time and memory accesses that depend only on operand sizes. The
 * primality tests of key generation (trial division, Miller-Rabin rounds) are variable
 * time, as any prime search is; so are the checks on public ciphertexts.
 */
#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <gmp.h>
#include <sodium.h>

#define VL_PAILLIER_TEST_API
#include "crypto/paillier.h"

_Static_assert(GMP_NAIL_BITS == 0 && GMP_NUMB_BITS == 64, "64-bit limbs without nails");
#define LIMB_BITS 64
#define LIMB_BYTES 8

#define MR_ROUNDS 24             /* random-base Miller-Rabin rounds after the base-2 one */
#define SMALL_PRIME_LIMIT 16384  /* trial division and sieving by the odd primes below this */
#define SIEVE_SPAN 4096          /* odd candidates sieved at a time */
#define NEXTPRIME_MAX_SPAN (1u << 24) /* a prime is searched this far at most */
#define KEYGEN_MAX_CANDIDATES 64 /* 2 are used unless one is skipped (negligible odds) */
#define RANDOM_MAX_TRIES 128     /* each try fails with probability < 1/2 */
#define TEST_MIN_BITS 512
#define KEYGEN_NONCE_TAG "vlpl"

/* The private part: limb arrays (least significant limb first, exact lengths, top limb
 * non-zero) in the rest of this vl_secret_alloc block. */
struct priv {
    size_t bytes;                     /* of the whole block */
    mp_size_t pn, qn, p2n, q2n;
    mp_limb_t *p, *q, *p2, *q2, *pm1, *qm1;
    mp_limb_t *hp, *hq;               /* L_p(g^(p-1) mod p^2)^-1 mod p = -q^-1 mod p; for q */
    mp_limb_t *q_mod_pm1, *p_mod_qm1; /* exponents of r^q mod p and r^p mod q */
    mp_limb_t *qinv_p;                /* q^-1 mod p (decryption CRT) */
    mp_limb_t *q2inv_p2;              /* q^-2 mod p^2 (encryption CRT) */
};

struct vl_paillier {
    mpz_t n, n2;                      /* public */
    size_t nbytes, cbytes;
    mp_size_t nn, n2n;                /* limbs of n and n^2 */
    mp_size_t ws_limbs;               /* the workspace one call needs */
    struct priv *s;                   /* NULL for a public key */
};

/* ---- workspace: secret scratch memory for one call ---- */

struct ws {
    mp_limb_t *base;
    mp_size_t cap, used;
};

/* A bug, not bad input: a workspace too small for what a call was sized for. */
static void ws_overflow(void)
{
    abort();
}

/* Scratch limbs enough for every mpn_sec_* call on operands of up to L limbs (dividends
 * of up to 2L + 2), plus room for the values the callers keep. */
static mp_size_t ws_bound(mp_size_t L)
{
    mp_size_t m = mpn_sec_powm_itch(L, (mp_bitcnt_t)L * LIMB_BITS, L), t;
#define KEEP_MAX(x)                                                                            \
    do {                                                                                       \
        t = (x);                                                                               \
        m = t > m ? t : m;                                                                     \
    } while (0)
    KEEP_MAX(mpn_sec_mul_itch(L, L));
    KEEP_MAX(mpn_sec_sqr_itch(L));
    KEEP_MAX(mpn_sec_invert_itch(L));
    for (mp_size_t dn = 1; dn <= L; dn++) {
        KEEP_MAX(mpn_sec_div_r_itch(2 * L + 2, dn));
        KEEP_MAX(mpn_sec_div_qr_itch(2 * L + 2, dn));
    }
#undef KEEP_MAX
    return m + 32 * L + 64;
}

static int ws_open(struct ws *w, mp_size_t limbs)
{
    w->base = vl_secret_alloc((size_t)limbs * LIMB_BYTES);
    w->cap = limbs;
    w->used = 0;
    return w->base != NULL ? 0 : -1;
}

static void ws_close(struct ws *w)
{
    vl_secret_free(w->base); /* wipes */
    w->base = NULL;
}

/* n zeroed limbs, kept until the workspace is reset to an earlier mark. */
static mp_limb_t *ws_take(struct ws *w, mp_size_t n)
{
    if (n < 0 || w->cap - w->used < n) {
        ws_overflow();
    }
    mp_limb_t *p = w->base + w->used;
    w->used += n;
    memset(p, 0, (size_t)n * LIMB_BYTES);
    return p;
}

/* The free rest of the workspace, as scratch for one mpn_sec_* call that needs `need`. */
static mp_limb_t *ws_scratch(struct ws *w, mp_size_t need)
{
    if (need < 0 || w->cap - w->used < need) {
        ws_overflow();
    }
    return w->base + w->used;
}

/* ---- limb arithmetic on secret operands ---- */

/* The length of x[0..n) without its zero top limbs (0 for zero). */
static mp_size_t normalized(const mp_limb_t *x, mp_size_t n)
{
    while (n > 0 && x[n - 1] == 0) {
        n--;
    }
    return n;
}

/* Big-endian b[0..len) into r[0..n); -1 (r zeroed) if it does not fit. */
static int limbs_from_be(mp_limb_t *r, mp_size_t n, const uint8_t *b, size_t len)
{
    memset(r, 0, (size_t)n * LIMB_BYTES);
    for (size_t i = 0; i < len; i++) {
        size_t bit = 8 * (len - 1 - i);
        if (bit / LIMB_BITS >= (size_t)n) {
            if (b[i] != 0) {
                memset(r, 0, (size_t)n * LIMB_BYTES);
                return -1;
            }
            continue;
        }
        r[bit / LIMB_BITS] |= (mp_limb_t)b[i] << (bit % LIMB_BITS);
    }
    return 0;
}

/* x[0..n) into exactly len big-endian bytes; -1 (out zeroed) if it does not fit. */
static int limbs_to_be(uint8_t *out, size_t len, const mp_limb_t *x, mp_size_t n)
{
    memset(out, 0, len);
    for (mp_size_t i = 0; i < n; i++) {
        for (unsigned j = 0; j < LIMB_BYTES; j++) {
            size_t at = (size_t)i * LIMB_BYTES + j;
            uint8_t v = (uint8_t)(x[i] >> (8 * j));
            if (at < len) {
                out[len - 1 - at] = v;
            } else if (v != 0) {
                memset(out, 0, len);
                return -1;
            }
        }
    }
    return 0;
}

/* r[0..mn) = a[0..an) mod m[0..mn) (m's top limb non-zero). */
static void mod_into(mp_limb_t *r, const mp_limb_t *a, mp_size_t an, const mp_limb_t *m,
                     mp_size_t mn, struct ws *w)
{
    mp_size_t mark = w->used, tn = an > mn ? an : mn;
    mp_limb_t *t = ws_take(w, tn);
    memcpy(t, a, (size_t)an * LIMB_BYTES);
    mpn_sec_div_r(t, tn, m, mn, ws_scratch(w, mpn_sec_div_r_itch(tn, mn)));
    memcpy(r, t, (size_t)mn * LIMB_BYTES);
    w->used = mark;
}

/* r[0..an+bn) = a b. */
static void mul_into(mp_limb_t *r, const mp_limb_t *a, mp_size_t an, const mp_limb_t *b,
                     mp_size_t bn, struct ws *w)
{
    if (an < bn) {
        const mp_limb_t *tp = a;
        mp_size_t tn = an;
        a = b;
        an = bn;
        b = tp;
        bn = tn;
    }
    mpn_sec_mul(r, a, an, b, bn, ws_scratch(w, mpn_sec_mul_itch(an, bn)));
}

/* r[0..mn) = a b mod m. */
static void mulmod(mp_limb_t *r, const mp_limb_t *a, mp_size_t an, const mp_limb_t *b,
                   mp_size_t bn, const mp_limb_t *m, mp_size_t mn, struct ws *w)
{
    mp_size_t mark = w->used;
    mp_limb_t *t = ws_take(w, an + bn);
    mul_into(t, a, an, b, bn, w);
    mod_into(r, t, an + bn, m, mn, w);
    w->used = mark;
}

/* r[0..mn) = b^e mod m, for b > 0, e < 2^(64 en), m odd. */
static void powmod(mp_limb_t *r, const mp_limb_t *b, mp_size_t bn, const mp_limb_t *e,
                   mp_size_t en, const mp_limb_t *m, mp_size_t mn, struct ws *w)
{
    mp_bitcnt_t enb = (mp_bitcnt_t)en * LIMB_BITS;
    mpn_sec_powm(r, b, bn, e, enb, m, mn, ws_scratch(w, mpn_sec_powm_itch(bn, enb, mn)));
}

/* r = a^-1 mod m (n limbs each, a < m, m odd); 0 if a has no inverse. */
static int invert(mp_limb_t *r, const mp_limb_t *a, const mp_limb_t *m, mp_size_t n,
                  struct ws *w)
{
    mp_size_t mark = w->used;
    mp_limb_t *t = ws_take(w, n);
    memcpy(t, a, (size_t)n * LIMB_BYTES); /* mpn_sec_invert destroys its input */
    int ok = mpn_sec_invert(r, t, m, n, (mp_bitcnt_t)2 * n * LIMB_BITS,
                            ws_scratch(w, mpn_sec_invert_itch(n)));
    w->used = mark;
    return ok;
}

static int is_one(const mp_limb_t *x, mp_size_t n)
{
    return x[0] == 1 && (n == 1 || mpn_zero_p(x + 1, n - 1));
}

/* x[0..xn) == y[0..yn) as integers. */
static int num_eq(const mp_limb_t *x, mp_size_t xn, const mp_limb_t *y, mp_size_t yn)
{
    xn = normalized(x, xn);
    yn = normalized(y, yn);
    return xn == yn && (xn == 0 || mpn_cmp(x, y, xn) == 0);
}

/* ---- primes ---- */

static uint32_t small_primes[SMALL_PRIME_LIMIT / 2];
static size_t nsmall;
static pthread_once_t small_once = PTHREAD_ONCE_INIT;

static void small_primes_fill(void)
{
    static uint8_t composite[SMALL_PRIME_LIMIT];
    for (uint32_t i = 3; i < SMALL_PRIME_LIMIT; i += 2) {
        if (!composite[i]) {
            small_primes[nsmall++] = i;
            for (uint32_t j = i * i; j < SMALL_PRIME_LIMIT; j += 2 * i) {
                composite[j] = 1;
            }
        }
    }
}

/* One strong probable-prime round: x odd (xn limbs, > 3), xm1 = x - 1 = d 2^s with d odd
 * (dn limbs), a in [2, x - 2]. 1 if x passes. */
static int mr_round(const mp_limb_t *x, mp_size_t xn, const mp_limb_t *xm1, const mp_limb_t *d,
                    mp_size_t dn, mp_bitcnt_t s, const mp_limb_t *a, struct ws *w)
{
    mp_size_t mark = w->used;
    mp_limb_t *y = ws_take(w, xn), *sq = ws_take(w, 2 * xn);
    int pass = 0;
    powmod(y, a, xn, d, dn, x, xn, w);
    if (is_one(y, xn) || mpn_cmp(y, xm1, xn) == 0) {
        pass = 1;
    }
    for (mp_bitcnt_t i = 1; !pass && i < s; i++) {
        mpn_sec_sqr(sq, y, xn, ws_scratch(w, mpn_sec_sqr_itch(xn)));
        mod_into(y, sq, 2 * xn, x, xn, w);
        if (mpn_cmp(y, xm1, xn) == 0) {
            pass = 1;
        } else if (is_one(y, xn)) {
            break;
        }
    }
    w->used = mark;
    return pass;
}

/* Miller-Rabin on x (odd, xn limbs normalized, above every small prime): base 2, then
 * MR_ROUNDS random bases. 1 for a probable prime. */
static int mr_test(const mp_limb_t *x, mp_size_t xn, struct ws *w)
{
    mp_size_t mark = w->used;
    mp_limb_t *xm1 = ws_take(w, xn), *d = ws_take(w, xn), *a = ws_take(w, xn);
    mp_limb_t *xm3 = ws_take(w, xn), *rnd = ws_take(w, xn);
    int prime = 1;

    mpn_sub_1(xm1, x, xn, 1);
    mp_bitcnt_t s = mpn_scan1(xm1, 0);
    mp_size_t skip = (mp_size_t)(s / LIMB_BITS), dn = xn - skip;
    if (s % LIMB_BITS != 0) {
        mpn_rshift(d, xm1 + skip, dn, (unsigned)(s % LIMB_BITS));
    } else {
        memcpy(d, xm1 + skip, (size_t)dn * LIMB_BYTES);
    }
    dn = normalized(d, dn);
    mpn_sub_1(xm3, x, xn, 3);
    mp_size_t x3n = normalized(xm3, xn);

    a[0] = 2;
    prime = mr_round(x, xn, xm1, d, dn, s, a, w);
    for (int i = 0; prime && i < MR_ROUNDS; i++) {
        /* a = 2 + (random mod (x - 3)), in [2, x - 2] */
        vl_random(rnd, (size_t)xn * LIMB_BYTES);
        memset(a, 0, (size_t)xn * LIMB_BYTES);
        mod_into(a, rnd, xn, xm3, x3n, w);
        mpn_add_1(a, a, xn, 2);
        prime = mr_round(x, xn, xm1, d, dn, s, a, w);
    }
    w->used = mark;
    return prime;
}

/* Is x (xn limbs) a probable prime? Exact below SMALL_PRIME_LIMIT^2. */
static int is_prime(const mp_limb_t *x, mp_size_t xn, struct ws *w)
{
    pthread_once(&small_once, small_primes_fill);
    xn = normalized(x, xn);
    if (xn == 0 || (xn == 1 && x[0] < 4)) {
        return xn == 1 && x[0] >= 2;
    }
    if ((x[0] & 1) == 0) {
        return 0;
    }
    for (size_t i = 0; i < nsmall; i++) {
        if (xn == 1 && x[0] == small_primes[i]) {
            return 1;
        }
        if (mpn_mod_1(x, xn, small_primes[i]) == 0) {
            return 0;
        }
    }
    if (xn == 1 && x[0] < (mp_limb_t)SMALL_PRIME_LIMIT * SMALL_PRIME_LIMIT) {
        return 1;
    }
    return mr_test(x, xn, w);
}

/*
 * The smallest probable prime above x (xn limbs, odd, at least 2^64), written over x; -1
 * when it has more than `bits` bits. That is mpz_nextprime's result, found without GMP's
 * allocator: the odd numbers above x are sieved by the small primes SIEVE_SPAN at a time,
 * and the survivors tested in order with Miller-Rabin.
 */
static int next_prime(mp_limb_t *x, mp_size_t xn, size_t bits, struct ws *w)
{
    static const size_t span = SIEVE_SPAN;
    uint32_t *res;
    uint8_t *hit;
    mp_size_t mark = w->used;
    mp_limb_t *y = ws_take(w, xn);
    int rc = -1;

    pthread_once(&small_once, small_primes_fill);
    res = (uint32_t *)ws_take(w, (mp_size_t)((nsmall * sizeof(*res) + 7) / LIMB_BYTES));
    hit = (uint8_t *)ws_take(w, (mp_size_t)((span + LIMB_BYTES - 1) / LIMB_BYTES));
    for (size_t j = 0; j < nsmall; j++) {
        res[j] = (uint32_t)mpn_mod_1(x, xn, small_primes[j]);
    }
    /* Candidate i of the window starting at offset `base` is x + base + 2 (i + 1). */
    for (uint64_t base = 0; rc != 0 && base < NEXTPRIME_MAX_SPAN; base += 2 * span) {
        memset(hit, 0, span);
        for (size_t j = 0; j < nsmall; j++) {
            uint64_t p = small_primes[j];
            uint64_t d0 = (p - res[j]) % p; /* x + d0 is a multiple of p */
            if (d0 % 2 != 0) {
                d0 += p; /* only even offsets keep x + d odd */
            }
            uint64_t first = d0;
            if (first <= base) {
                first += (base - d0) / (2 * p) * (2 * p) + 2 * p;
            }
            for (uint64_t dd = first; dd <= base + 2 * span; dd += 2 * p) {
                hit[(dd - base) / 2 - 1] = 1;
            }
        }
        for (size_t i = 0; i < span; i++) {
            if (hit[i]) {
                continue;
            }
            if (mpn_add_1(y, x, xn, (mp_limb_t)(base + 2 * (i + 1))) != 0 ||
                mpn_sizeinbase(y, xn, 2) > bits) {
                goto out; /* grown past `bits`: rc stays -1 */
            }
            if (mr_test(y, xn, w)) {
                memcpy(x, y, (size_t)xn * LIMB_BYTES);
                rc = 0;
                break;
            }
        }
    }
out:
    w->used = mark;
    return rc;
}

/* ---- keys ---- */

static struct vl_paillier *key_alloc(void)
{
    struct vl_paillier *k = calloc(1, sizeof(*k));
    if (k != NULL) {
        mpz_inits(k->n, k->n2, NULL);
    }
    return k;
}

void vl_paillier_free(struct vl_paillier *k)
{
    if (k == NULL) {
        return;
    }
    mpz_clears(k->n, k->n2, NULL);
    vl_secret_free(k->s); /* wipes */
    free(k);
}

/* Sets n (odd, within the size limits unless any_size) and what follows from it. */
static int set_public(struct vl_paillier *k, mpz_srcptr n, int any_size)
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
    k->nn = (mp_size_t)mpz_size(k->n);
    k->n2n = (mp_size_t)mpz_size(k->n2);
    k->ws_limbs = ws_bound(k->n2n + 1); /* 1 + m n may have one limb more than n^2 */
    return 0;
}

/* A private block for primes of pn and qn limbs whose squares have p2n and q2n. */
static struct priv *priv_alloc(mp_size_t pn, mp_size_t qn, mp_size_t p2n, mp_size_t q2n)
{
    mp_size_t limbs = 5 * pn + 4 * qn + 2 * p2n + q2n;
    size_t head = (sizeof(struct priv) + 15) / 16 * 16;
    size_t bytes = head + (size_t)limbs * LIMB_BYTES;
    struct priv *s = vl_secret_alloc(bytes);
    if (s == NULL) {
        return NULL;
    }
    memset(s, 0, bytes);
    s->bytes = bytes;
    s->pn = pn;
    s->qn = qn;
    s->p2n = p2n;
    s->q2n = q2n;
    mp_limb_t *l = (mp_limb_t *)((uint8_t *)s + head);
#define CARVE(f, n)                                                                            \
    do {                                                                                       \
        s->f = l;                                                                              \
        l += (n);                                                                              \
    } while (0)
    CARVE(p, pn);
    CARVE(q, qn);
    CARVE(p2, p2n);
    CARVE(q2, q2n);
    CARVE(pm1, pn);
    CARVE(qm1, qn);
    CARVE(hp, pn);
    CARVE(hq, qn);
    CARVE(q_mod_pm1, pn);
    CARVE(p_mod_qm1, qn);
    CARVE(qinv_p, pn);
    CARVE(q2inv_p2, p2n);
#undef CARVE
    assert(l == (mp_limb_t *)((uint8_t *)s + bytes));
    return s;
}

/* -q^-1 mod p into h (pn limbs), which is h_p: (1 + n)^(p-1) = 1 + (p - 1) n mod p^2, so
 * L_p of it is (p - 1) q = -q mod p. 0 if q has no inverse mod p. */
static int crt_h(mp_limb_t *h, mp_limb_t *inv, const mp_limb_t *p, mp_size_t pn,
                 const mp_limb_t *q, mp_size_t qn, struct ws *w)
{
    mp_size_t mark = w->used;
    mp_limb_t *a = ws_take(w, pn);
    int ok;
    mod_into(a, q, qn, p, pn, w);
    ok = invert(inv, a, p, pn, w);
    if (ok) {
        mpn_sub_n(h, p, inv, pn); /* inv is in [1, p - 1] */
    }
    w->used = mark;
    return ok;
}

/*
 * Checks p and q (pn and qn limbs; primality only if check_primes) and gives k its private
 * part. Needs at least ws_bound(2 max(pn, qn) + 1) workspace limbs.
 */
static int set_private(struct vl_paillier *k, const mp_limb_t *p, mp_size_t pn,
                       const mp_limb_t *q, mp_size_t qn, int any_size, int check_primes,
                       struct ws *w)
{
    mp_size_t mark = w->used;
    struct priv *s = NULL;
    mpz_t view;
    int rc = -1;

    pn = normalized(p, pn);
    qn = normalized(q, qn);
    if (pn == 0 || qn == 0 || (p[0] & 1) == 0 || (q[0] & 1) == 0 || (pn == 1 && p[0] < 3) ||
        (qn == 1 && q[0] < 3) || num_eq(p, pn, q, qn)) {
        goto out;
    }
    if (check_primes && (!is_prime(p, pn, w) || !is_prime(q, qn, w))) {
        goto out;
    }
    mp_limb_t *n = ws_take(w, pn + qn), *p2 = ws_take(w, 2 * pn), *q2 = ws_take(w, 2 * qn);
    mp_limb_t *t = ws_take(w, pn > qn ? pn : qn);
    mul_into(n, p, pn, q, qn, w);
    if (set_public(k, mpz_roinit_n(view, n, normalized(n, pn + qn)), any_size) != 0) {
        goto out;
    }
    mpn_sec_sqr(p2, p, pn, ws_scratch(w, mpn_sec_sqr_itch(pn)));
    mpn_sec_sqr(q2, q, qn, ws_scratch(w, mpn_sec_sqr_itch(qn)));
    if ((s = priv_alloc(pn, qn, normalized(p2, 2 * pn), normalized(q2, 2 * qn))) == NULL) {
        goto out;
    }
    memcpy(s->p, p, (size_t)pn * LIMB_BYTES);
    memcpy(s->q, q, (size_t)qn * LIMB_BYTES);
    memcpy(s->p2, p2, (size_t)s->p2n * LIMB_BYTES);
    memcpy(s->q2, q2, (size_t)s->q2n * LIMB_BYTES);
    mpn_sub_1(s->pm1, p, pn, 1); /* p odd: the top limb stays non-zero */
    mpn_sub_1(s->qm1, q, qn, 1);
    /* gcd(pq, (p-1)(q-1)) = 1: for distinct primes, neither divides the other minus 1. */
    mod_into(t, s->qm1, qn, p, pn, w);
    if (mpn_zero_p(t, pn)) {
        goto out;
    }
    mod_into(t, s->pm1, pn, q, qn, w);
    if (mpn_zero_p(t, qn)) {
        goto out;
    }
    /* The encryption exponents must be positive (q mod (p-1) = 0 would need p - 1 to
     * divide the prime q, which no two distinct odd primes allow). */
    mod_into(s->q_mod_pm1, q, qn, s->pm1, pn, w);
    mod_into(s->p_mod_qm1, p, pn, s->qm1, qn, w);
    if (mpn_zero_p(s->q_mod_pm1, pn) || mpn_zero_p(s->p_mod_qm1, qn) ||
        !crt_h(s->hp, s->qinv_p, p, pn, q, qn, w) || !crt_h(s->hq, t, q, qn, p, pn, w)) {
        goto out;
    }
    mp_limb_t *a = ws_take(w, s->p2n);
    mod_into(a, s->q2, s->q2n, s->p2, s->p2n, w);
    if (!invert(s->q2inv_p2, a, s->p2, s->p2n, w)) {
        goto out;
    }
    k->s = s;
    s = NULL;
    rc = 0;
out:
    vl_secret_free(s);
    w->used = mark;
    return rc;
}

static int from_primes(struct vl_paillier **out, const uint8_t *p, size_t plen, const uint8_t *q,
                       size_t qlen, int any_size)
{
    struct vl_paillier *k = NULL;
    struct ws w = {0};
    mp_size_t pn = (mp_size_t)((plen + LIMB_BYTES - 1) / LIMB_BYTES);
    mp_size_t qn = (mp_size_t)((qlen + LIMB_BYTES - 1) / LIMB_BYTES);
    mp_size_t big = pn > qn ? pn : qn;
    int rc = -1;

    *out = NULL;
    if (p == NULL || q == NULL || plen == 0 || qlen == 0 || plen > VL_PAILLIER_MAX_NBYTES ||
        qlen > VL_PAILLIER_MAX_NBYTES || (k = key_alloc()) == NULL ||
        ws_open(&w, ws_bound(2 * big + 1) + pn + qn) != 0) {
        goto out;
    }
    mp_limb_t *a = ws_take(&w, pn), *b = ws_take(&w, qn);
    limbs_from_be(a, pn, p, plen);
    limbs_from_be(b, qn, q, qlen);
    rc = set_private(k, a, pn, b, qn, any_size, 1, &w);
out:
    ws_close(&w);
    vl_scrub();
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
    if (nlen > 0) {
        mpz_import(a, nlen, 1, 1, 1, 0, n);
    }
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

static void store_be32(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)(v >> 24);
    b[1] = (uint8_t)(v >> 16);
    b[2] = (uint8_t)(v >> 8);
    b[3] = (uint8_t)v;
}

/* The derivation documented at vl_paillier_keygen. */
static int keygen(struct vl_paillier **out, const uint8_t *seed, unsigned bits, int any_size)
{
    struct vl_paillier *k = NULL;
    struct ws w = {0};
    uint8_t nonce[crypto_stream_chacha20_ietf_NONCEBYTES];
    size_t half = bits / 16;
    mp_size_t pn = (mp_size_t)((half + LIMB_BYTES - 1) / LIMB_BYTES);
    int have_p = 0, rc = -1;

    *out = NULL;
    if (seed == NULL || (k = key_alloc()) == NULL ||
        ws_open(&w, ws_bound(2 * pn + 1) + 3 * pn + SIEVE_SPAN / LIMB_BYTES +
                        (mp_size_t)(SMALL_PRIME_LIMIT * 2 / LIMB_BYTES) + 8) != 0) {
        goto out;
    }
    mp_limb_t *p = ws_take(&w, pn), *cand = ws_take(&w, pn);
    uint8_t *buf = (uint8_t *)ws_take(&w, pn);
    for (uint32_t i = 0; i < KEYGEN_MAX_CANDIDATES && rc != 0; i++) {
        memcpy(nonce, KEYGEN_NONCE_TAG, 4);
        store_be32(nonce + 4, bits);
        store_be32(nonce + 8, i);
        crypto_stream_chacha20_ietf(buf, half, nonce, seed);
        vl_scrub(); /* ChaCha20 leaves its key (the seed) on the stack */
        buf[0] |= 0xc0;
        buf[half - 1] |= 0x01;
        limbs_from_be(cand, pn, buf, half);
        if (next_prime(cand, pn, bits / 2, &w) != 0) {
            continue;
        }
        if (!have_p) {
            memcpy(p, cand, (size_t)pn * LIMB_BYTES);
            have_p = 1;
        } else if (set_private(k, p, pn, cand, pn, any_size, 0, &w) == 0) {
            rc = 0;
        }
    }
out:
    ws_close(&w);
    vl_scrub();
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
    return k->s != NULL;
}

size_t vl_paillier_n_bytes(const struct vl_paillier *k)
{
    return k->nbytes;
}

size_t vl_paillier_ciphertext_bytes(const struct vl_paillier *k)
{
    return k->cbytes;
}

/* x (>= 0) into exactly len bytes, zero-padded on the left; -1 if it does not fit. For
 * public numbers. */
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

int vl_paillier_n_export(const struct vl_paillier *k, uint8_t *out, size_t outlen)
{
    return outlen == k->nbytes ? export_fixed(out, outlen, k->n) : -1;
}

int vl_paillier_n2_export(const struct vl_paillier *k, uint8_t *out, size_t outlen)
{
    return outlen == k->cbytes ? export_fixed(out, outlen, k->n2) : -1;
}

/* ---- encryption ---- */

/* Is r (nn limbs, 0 < r < n) coprime to n? With the private key, r mod p and r mod q are
 * non-zero; otherwise a gcd with n in GMP's heap (a public key holds no secret, and r is
 * no key). */
static int is_unit(const struct vl_paillier *k, const mp_limb_t *r, struct ws *w)
{
    int ok;
    if (k->s != NULL) {
        mp_size_t mark = w->used;
        mp_limb_t *t = ws_take(w, k->s->pn > k->s->qn ? k->s->pn : k->s->qn);
        mod_into(t, r, k->nn, k->s->p, k->s->pn, w);
        ok = !mpn_zero_p(t, k->s->pn);
        mod_into(t, r, k->nn, k->s->q, k->s->qn, w);
        ok = ok && !mpn_zero_p(t, k->s->qn);
        w->used = mark;
        return ok;
    }
    mpz_t view, g;
    mpz_init(g);
    mpz_gcd(g, mpz_roinit_n(view, r, normalized(r, k->nn)), k->n);
    ok = mpz_cmp_ui(g, 1) == 0;
    mpz_clear(g);
    return ok;
}

/* Is 0 < r < n (nn limbs)? */
static int below_n(const struct vl_paillier *k, const mp_limb_t *r)
{
    return !mpn_zero_p(r, k->nn) && mpn_cmp(r, mpz_limbs_read(k->n), k->nn) < 0;
}

/* A uniform r in Z*_n (nn limbs), by rejection. */
static int random_unit(mp_limb_t *r, const struct vl_paillier *k, struct ws *w)
{
    mp_size_t mark = w->used;
    uint8_t *buf = (uint8_t *)ws_take(w, k->nn);
    unsigned topbits = (unsigned)(mpz_sizeinbase(k->n, 2) % 8);
    int rc = -1;

    for (int i = 0; i < RANDOM_MAX_TRIES && rc != 0; i++) {
        vl_random(buf, k->nbytes);
        if (topbits != 0) {
            buf[0] &= (uint8_t)((1u << topbits) - 1);
        }
        limbs_from_be(r, k->nn, buf, k->nbytes);
        if (below_n(k, r) && is_unit(k, r, w)) {
            rc = 0;
        }
    }
    w->used = mark;
    return rc;
}

/* x (n2n limbs) = r^n mod n^2 by CRT, for r in Z*_n (nn limbs). Modulo p^2: r^n = (r^q)^p,
 * and y^p mod p^2 depends only on y mod p, so it is (r^(q mod (p-1)) mod p)^p mod p^2;
 * likewise for q. Then x = x_q + q^2 ((x_p - x_q) q^-2 mod p^2). */
static void rn_crt(mp_limb_t *x, const struct vl_paillier *k, const mp_limb_t *r,
                   struct ws *w)
{
    const struct priv *s = k->s;
    mp_size_t mark = w->used, big = s->pn > s->qn ? s->pn : s->qn;
    mp_limb_t *t = ws_take(w, big), *t2 = ws_take(w, big);
    mp_limb_t *xp = ws_take(w, s->p2n), *xq = ws_take(w, s->q2n), *xq_p = ws_take(w, s->p2n);
    mp_limb_t *h = ws_take(w, s->p2n), *sum = ws_take(w, s->p2n + s->q2n);

    mod_into(t, r, k->nn, s->p, s->pn, w);
    powmod(t2, t, s->pn, s->q_mod_pm1, s->pn, s->p, s->pn, w);
    powmod(xp, t2, s->pn, s->p, s->pn, s->p2, s->p2n, w);
    mod_into(t, r, k->nn, s->q, s->qn, w);
    powmod(t2, t, s->qn, s->p_mod_qm1, s->qn, s->q, s->qn, w);
    powmod(xq, t2, s->qn, s->q, s->qn, s->q2, s->q2n, w);
    /* (x_p - x_q) mod p^2, then times q^-2 mod p^2 */
    mod_into(xq_p, xq, s->q2n, s->p2, s->p2n, w);
    mpn_cnd_add_n(mpn_sub_n(xp, xp, xq_p, s->p2n), xp, xp, s->p2, s->p2n);
    mulmod(h, xp, s->p2n, s->q2inv_p2, s->p2n, s->p2, s->p2n, w);
    mul_into(sum, h, s->p2n, s->q2, s->q2n, w);
    mpn_add(sum, sum, s->p2n + s->q2n, xq, s->q2n); /* below n^2: no carry */
    assert(normalized(sum, s->p2n + s->q2n) <= k->n2n);
    memcpy(x, sum, (size_t)k->n2n * LIMB_BYTES);
    w->used = mark;
}

/* c = (1 + m n) r^n mod n^2 into exactly clen bytes, for m (nn limbs) < n and r in Z*_n. */
static int encrypt_core(const struct vl_paillier *k, uint8_t *c, size_t clen, const mp_limb_t *m,
                        const mp_limb_t *r, int crt, struct ws *w)
{
    mp_size_t mark = w->used, nn = k->nn, n2n = k->n2n;
    mp_limb_t *x = ws_take(w, n2n), *a = ws_take(w, 2 * nn), *ct = ws_take(w, n2n);
    const mp_limb_t *n = mpz_limbs_read(k->n), *n2 = mpz_limbs_read(k->n2);
    int rc;

    assert(!crt || k->s != NULL);
    if (crt) {
        rn_crt(x, k, r, w);
    } else {
        powmod(x, r, nn, n, nn, n2, n2n, w);
    }
    /* 1 + m n <= (n - 1) n + 1 < n^2: no reduction needed before the product */
    mul_into(a, m, nn, n, nn, w);
    mpn_add_1(a, a, 2 * nn, 1);
    mulmod(ct, a, 2 * nn, x, n2n, n2, n2n, w);
    rc = limbs_to_be(c, clen, ct, n2n);
    w->used = mark;
    return rc;
}

int vl_paillier_encrypt(const struct vl_paillier *k, uint8_t *c, size_t clen, int64_t m)
{
    uint64_t mag = m < 0 ? 0 - (uint64_t)m : (uint64_t)m;
    struct ws w = {0};
    int rc = -1;

    if (clen != k->cbytes || ws_open(&w, k->ws_limbs) != 0) {
        goto out;
    }
    mp_limb_t *x = ws_take(&w, k->nn), *r = ws_take(&w, k->nn), *one = ws_take(&w, 1);
    const mp_limb_t *n = mpz_limbs_read(k->n);
    /* x = m mod n (a negative m as n - |m| mod n) */
    one[0] = mag;
    mod_into(x, one, 1, n, k->nn, &w);
    if (m < 0 && !mpn_zero_p(x, k->nn)) {
        mpn_sub_n(x, n, x, k->nn);
    }
    if (random_unit(r, k, &w) == 0) {
        rc = encrypt_core(k, c, clen, x, r, k->s != NULL, &w);
    }
out:
    ws_close(&w);
    vl_scrub();
    if (rc != 0) {
        memset(c, 0, clen);
    }
    return rc;
}

int vl_paillier_test_encrypt_raw(const struct vl_paillier *k, uint8_t *c, size_t clen,
                                 const uint8_t *m, size_t mlen, const uint8_t *r, size_t rlen,
                                 int crt)
{
    struct ws w = {0};
    int rc = -1;

    if (clen != k->cbytes || (crt && k->s == NULL) || ws_open(&w, k->ws_limbs) != 0) {
        goto out;
    }
    mp_limb_t *x = ws_take(&w, k->nn), *y = ws_take(&w, k->nn);
    if (limbs_from_be(x, k->nn, m, mlen) == 0 && limbs_from_be(y, k->nn, r, rlen) == 0 &&
        mpn_cmp(x, mpz_limbs_read(k->n), k->nn) < 0 && below_n(k, y) && is_unit(k, y, &w)) {
        rc = encrypt_core(k, c, clen, x, y, crt, &w);
    }
out:
    ws_close(&w);
    vl_scrub();
    if (rc != 0) {
        memset(c, 0, clen);
    }
    return rc;
}

/* ---- ciphertexts in, decryption ---- */

static void import_be(mpz_t x, const uint8_t *b, size_t len)
{
    if (len == 0) {
        mpz_set_ui(x, 0);
    } else {
        mpz_import(x, len, 1, 1, 1, 0, b);
    }
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

/* Reads a ciphertext and checks it is in Z*_{n^2}: 0 < c < n^2 and gcd(c, n) = 1. */
static int load_ct(mpz_t c, const struct vl_paillier *k, const uint8_t *b, size_t len)
{
    if (b == NULL || len == 0 || len > k->cbytes) {
        return -1;
    }
    import_be(c, b, len);
    return mpz_sgn(c) > 0 && mpz_cmp(c, k->n2) < 0 && coprime(c, k->n) ? 0 : -1;
}

/* m_p (pn limbs) = L_p(c^(p-1) mod p^2) h_p mod p, with L_p(x) = (x - 1) / p; c (cn limbs)
 * must be coprime to p. */
static void decrypt_half(mp_limb_t *mp, const mp_limb_t *c, mp_size_t cn, const mp_limb_t *p,
                         mp_size_t pn, const mp_limb_t *p2, mp_size_t p2n,
                         const mp_limb_t *pm1, const mp_limb_t *hp, struct ws *w)
{
    mp_size_t mark = w->used, qn = p2n - pn;
    mp_limb_t *t = ws_take(w, p2n), *x = ws_take(w, p2n), *q = ws_take(w, qn + 1);
    mp_limb_t *l = ws_take(w, pn);

    mod_into(t, c, cn, p2, p2n, w);
    powmod(x, t, p2n, pm1, pn, p2, p2n, w);
    mpn_sub_1(x, x, p2n, 1); /* x = 1 mod p, so x >= 1 */
    q[qn] = mpn_sec_div_qr(q, x, p2n, p, pn, ws_scratch(w, mpn_sec_div_qr_itch(p2n, pn)));
    /* the quotient is below p: it fits pn limbs */
    memcpy(l, q, (size_t)(qn + 1 < pn ? qn + 1 : pn) * LIMB_BYTES);
    mulmod(mp, l, pn, hp, pn, p, pn, w);
    w->used = mark;
}

/* m (pn + qn limbs) in [0, n) from a ciphertext that passed load_ct. */
static void decrypt_core(mp_limb_t *m, const struct vl_paillier *k, const mpz_t c,
                         struct ws *w)
{
    const struct priv *s = k->s;
    mp_size_t mark = w->used, cn = (mp_size_t)mpz_size(c);
    const mp_limb_t *cl = mpz_limbs_read(c);
    mp_limb_t *mp = ws_take(w, s->pn), *mq = ws_take(w, s->qn), *mq_p = ws_take(w, s->pn);
    mp_limb_t *h = ws_take(w, s->pn);

    assert(s != NULL);
    decrypt_half(mp, cl, cn, s->p, s->pn, s->p2, s->p2n, s->pm1, s->hp, w);
    decrypt_half(mq, cl, cn, s->q, s->qn, s->q2, s->q2n, s->qm1, s->hq, w);
    /* m = m_q + q ((m_p - m_q) q^-1 mod p) */
    mod_into(mq_p, mq, s->qn, s->p, s->pn, w);
    mpn_cnd_add_n(mpn_sub_n(mp, mp, mq_p, s->pn), mp, mp, s->p, s->pn);
    mulmod(h, mp, s->pn, s->qinv_p, s->pn, s->p, s->pn, w);
    mul_into(m, h, s->pn, s->q, s->qn, w);
    mpn_add(m, m, s->pn + s->qn, mq, s->qn); /* below n: no carry */
    w->used = mark;
}

int vl_paillier_decrypt(const struct vl_paillier *k, __int128 *m, const uint8_t *c, size_t clen)
{
    struct ws w = {0};
    unsigned __int128 u = 0;
    mpz_t x;
    int rc = -1;

    *m = 0;
    if (k->s == NULL) {
        return -1;
    }
    mpz_init(x);
    if (load_ct(x, k, c, clen) != 0 || ws_open(&w, k->ws_limbs) != 0) {
        goto out;
    }
    mp_size_t nn = k->nn, vn = k->s->pn + k->s->qn;
    const mp_limb_t *n = mpz_limbs_read(k->n);
    mp_limb_t *v = ws_take(&w, vn), *half = ws_take(&w, nn);
    decrypt_core(v, k, x, &w);
    assert(normalized(v, vn) <= nn);
    mpn_rshift(half, n, nn, 1); /* (n - 1) / 2, the largest non-negative value */
    int neg = mpn_cmp(v, half, nn) > 0;
    if (neg) {
        mpn_sub_n(v, n, v, nn);
    }
    /* |m| < 2^127: at most two limbs, the top bit of the second clear */
    if (normalized(v, nn) > 2 || (nn >= 2 && (v[1] >> 63) != 0)) {
        goto out;
    }
    u = (unsigned __int128)v[0] | (nn >= 2 ? (unsigned __int128)v[1] << 64 : 0);
    *m = neg ? -(__int128)u : (__int128)u;
    rc = 0;
out:
    ws_close(&w);
    vl_scrub();
    sodium_memzero(&u, sizeof(u));
    mpz_clear(x);
    return rc;
}

int vl_paillier_test_decrypt_raw(const struct vl_paillier *k, uint8_t *m, size_t mlen,
                                 const uint8_t *c, size_t clen)
{
    struct ws w = {0};
    mpz_t x;
    int rc = -1;

    mpz_init(x);
    if (k->s != NULL && mlen >= k->nbytes && load_ct(x, k, c, clen) == 0 &&
        ws_open(&w, k->ws_limbs) == 0) {
        mp_limb_t *v = ws_take(&w, k->s->pn + k->s->qn);
        decrypt_core(v, k, x, &w);
        rc = limbs_to_be(m, mlen, v, k->s->pn + k->s->qn);
    }
    ws_close(&w);
    vl_scrub();
    mpz_clear(x);
    if (rc != 0) {
        memset(m, 0, mlen);
    }
    return rc;
}

/* ---- homomorphic operations (public) ---- */

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

/* Through GMP's heap, unlike everything above: for tests only. */
int vl_paillier_test_export(const struct vl_paillier *k, const char *name, uint8_t *out,
                            size_t outlen)
{
    const struct priv *s = k->s;
    mpz_t v, t, pv, qv;
    int rc = -1;

    if (s == NULL) {
        memset(out, 0, outlen);
        return -1;
    }
    if (strcmp(name, "p") == 0) {
        return limbs_to_be(out, outlen, s->p, s->pn);
    }
    if (strcmp(name, "q") == 0) {
        return limbs_to_be(out, outlen, s->q, s->qn);
    }
    if (strcmp(name, "hp") == 0) {
        return limbs_to_be(out, outlen, s->hp, s->pn);
    }
    if (strcmp(name, "hq") == 0) {
        return limbs_to_be(out, outlen, s->hq, s->qn);
    }
    mpz_inits(v, t, NULL);
    if (strcmp(name, "lambda") == 0 || strcmp(name, "mu") == 0) {
        mpz_lcm(v, mpz_roinit_n(pv, s->pm1, s->pn), mpz_roinit_n(qv, s->qm1, s->qn));
        if (strcmp(name, "mu") == 0) {
            mpz_add_ui(t, k->n, 1);
            mpz_powm(t, t, v, k->n2);
            mpz_sub_ui(t, t, 1);
            mpz_divexact(t, t, k->n);
            if (mpz_invert(v, t, k->n) == 0) {
                goto out;
            }
        }
        rc = export_fixed(out, outlen, v);
    }
out:
    mpz_clears(v, t, NULL);
    if (rc != 0) {
        memset(out, 0, outlen);
    }
    return rc;
}
