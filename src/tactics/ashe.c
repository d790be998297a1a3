/*
 * ashe.c: additively symmetric homomorphic encryption for the `sum` tactic (see tactics.h).
 *
 * F(i) is 128 bits of a ChaCha20 key stream at position i. A value is hidden by F(i) - F(i-1),
 * which is uniformly random to anyone without the key, so a ciphertext alone says nothing;
 * what telescopes away in a sum of consecutive rows is known only to the key holder. Row
 * sequence numbers are never reused (each write gets a new one; they come in blocks at
 * random places, so even a trusted state restored from a backup reuses one only with
 * negligible probability), so no two values share a mask. ChaCha20 leaves its key in
 * vector registers and on the stack: every call is followed by vl_scrub.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "crypto/crypto.h"
#include "tactics/tactics.h"
#include "util/buf.h"

/* F(i) is bytes 16i..16i+15 of the ChaCha20 key stream under the field's sum key (nonce
 * zero): one block gives four consecutive values, and a whole span of them comes at the
 * cipher's streaming speed, which matters when a group's rows are scattered. */
#define F_PER_BLOCK 4

static vl_u128 load_u128(const uint8_t *p)
{
    return ((vl_u128)vl_load_u64(p) << 64) | vl_load_u64(p + 8);
}

vl_u128 vl_ashe_f(const uint8_t key[32], uint64_t i)
{
    static const uint8_t zero[64], nonce[crypto_stream_chacha20_NONCEBYTES];
    uint8_t block[64];
    crypto_stream_chacha20_xor_ic(block, zero, sizeof(block), nonce, i / F_PER_BLOCK, key);
    vl_scrub();
    vl_u128 f = load_u128(block + 16 * (i % F_PER_BLOCK));
    sodium_memzero(block, sizeof(block));
    return f;
}

int vl_ashe_table_fill(struct vl_ashe_table *t, const uint8_t key[32], uint64_t lo,
                       uint64_t hi)
{
    static const uint8_t nonce[crypto_stream_chacha20_NONCEBYTES];
    uint64_t first = lo - lo % F_PER_BLOCK;
    uint64_t blocks = (hi - first) / F_PER_BLOCK + 1;
    t->f = NULL;
    t->n = 0;
    t->seg = NULL;
    t->nseg = 0;
    if (hi < lo || blocks > VL_ASHE_TABLE_MAX / F_PER_BLOCK) {
        return -1;
    }
    uint8_t *ks = calloc(blocks, 64);
    if (ks == NULL) {
        return -1;
    }
    crypto_stream_chacha20_xor_ic(ks, ks, blocks * 64, nonce, first / F_PER_BLOCK, key);
    vl_scrub();
    t->f = malloc(blocks * F_PER_BLOCK * sizeof(*t->f));
    if (t->f != NULL) {
        for (uint64_t k = 0; k < blocks * F_PER_BLOCK; k++) {
            t->f[k] = load_u128(ks + 16 * k);
        }
        t->first = first;
        t->n = blocks * F_PER_BLOCK;
    }
    sodium_memzero(ks, blocks * 64);
    free(ks);
    return t->f != NULL ? 0 : -1;
}

void vl_ashe_table_free(struct vl_ashe_table *t)
{
    if (t->f != NULL) {
        sodium_memzero(t->f, t->n * sizeof(*t->f));
        free(t->f);
    }
    for (size_t k = 0; k < t->nseg; k++) {
        vl_ashe_table_free(&t->seg[k]);
    }
    free(t->seg);
    t->seg = NULL;
    t->nseg = 0;
    t->f = NULL;
    t->n = 0;
}

#define CLUSTER_GAP 4096 /* rows between two runs of one cluster, at most */

static int run_cmp(const void *a, const void *b)
{
    const struct vl_seq_run *x = a, *y = b;
    return x->first < y->first ? -1 : x->first > y->first;
}

int vl_ashe_table_fill_runs(struct vl_ashe_table *t, const uint8_t key[32],
                            const struct vl_seq_run *runs, size_t n)
{
    memset(t, 0, sizeof(*t));
    struct vl_seq_run *r = malloc((n ? n : 1) * sizeof(*r));
    if (r == NULL) {
        return -1;
    }
    if (n > 0) {
        memcpy(r, runs, n * sizeof(*r));
    }
    qsort(r, n, sizeof(*r), run_cmp);
    uint64_t budget = VL_ASHE_TABLE_MAX;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0;) {
        uint64_t lo = r[i].first - 1, hi = r[i].last;
        size_t j = i + 1;
        while (j < n && r[j].first - 1 <= hi + CLUSTER_GAP) {
            hi = r[j].last > hi ? r[j].last : hi;
            j++;
        }
        /* Worth a pass when the span holds fewer than 8 values a run (2 F a run). */
        uint64_t span = hi - lo + 1;
        if (j - i > 64 && span / 4 < 2 * (uint64_t)(j - i) && span + 8 <= budget) {
            struct vl_ashe_table *ns = realloc(t->seg, (t->nseg + 1) * sizeof(*ns));
            if (ns == NULL) {
                rc = -1;
                break;
            }
            t->seg = ns;
            memset(&t->seg[t->nseg], 0, sizeof(t->seg[t->nseg]));
            if (vl_ashe_table_fill(&t->seg[t->nseg], key, lo, hi) != 0) {
                rc = -1;
                break;
            }
            budget -= t->seg[t->nseg].n;
            t->nseg++;
        }
        i = j;
    }
    free(r);
    if (rc != 0) {
        vl_ashe_table_free(t);
    }
    return rc;
}

static vl_u128 f_at(const uint8_t key[32], const struct vl_ashe_table *t, uint64_t i)
{
    if (t != NULL && t->f != NULL && i >= t->first && i - t->first < t->n) {
        return t->f[i - t->first];
    }
    if (t != NULL && t->nseg > 0) {
        /* The last segment starting at or before i. */
        size_t lo = 0, hi = t->nseg;
        while (hi - lo > 1) {
            size_t mid = lo + (hi - lo) / 2;
            if (t->seg[mid].first <= i) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        const struct vl_ashe_table *s = &t->seg[lo];
        if (i >= s->first && i - s->first < s->n) {
            return s->f[i - s->first];
        }
    }
    return vl_ashe_f(key, i);
}

vl_u128 vl_ashe_encrypt(const uint8_t key[32], uint64_t i, int64_t m)
{
    vl_u128 v = (vl_u128)(vl_i128)m; /* sign-extended into the ring */
    return v + vl_ashe_f(key, i) - vl_ashe_f(key, i - 1);
}

void vl_ashe_limbs(vl_u128 c, int64_t limbs[VL_ASHE_LIMBS])
{
    for (int k = 0; k < VL_ASHE_LIMBS; k++) {
        limbs[k] = (int64_t)(uint32_t)(c >> (32 * k));
    }
}

vl_u128 vl_ashe_join(const int64_t sums[VL_ASHE_LIMBS])
{
    vl_u128 v = 0;
    for (int k = 0; k < VL_ASHE_LIMBS; k++) {
        v += (vl_u128)(uint64_t)sums[k] << (32 * k);
    }
    return v;
}

vl_i128 vl_ashe_decrypt(const uint8_t key[32], vl_u128 csum, const struct vl_seq_run *runs,
                        size_t nruns, const struct vl_ashe_table *t)
{
    vl_u128 v = csum;
    for (size_t r = 0; r < nruns; r++) {
        v -= f_at(key, t, runs[r].last) - f_at(key, t, runs[r].first - 1);
    }
    return (vl_i128)v;
}

/* ---- the linear MAC (tactics.h) ---- */

#define MAC_P ((((vl_u128)1) << 127) - 1)

/* x mod p for any 128-bit x: 2^127 = 1 mod p. */
static vl_u128 mac_red(vl_u128 x)
{
    x = (x & MAC_P) + (x >> 127);
    return x >= MAC_P ? x - MAC_P : x;
}

static vl_u128 mac_add(vl_u128 a, vl_u128 b)
{
    return mac_red(a + b); /* a, b < p: no overflow */
}

static vl_u128 mac_sub(vl_u128 a, vl_u128 b)
{
    return a >= b ? a - b : a + (MAC_P - b);
}

vl_u128 vl_mac_mulmod(vl_u128 a, vl_u128 b)
{
    uint64_t a0 = (uint64_t)a, a1 = (uint64_t)(a >> 64);
    uint64_t b0 = (uint64_t)b, b1 = (uint64_t)(b >> 64);
    vl_u128 p00 = (vl_u128)a0 * b0, p11 = (vl_u128)a1 * b1;
    vl_u128 mid = (vl_u128)a0 * b1 + (vl_u128)a1 * b0; /* a1, b1 < 2^63: no overflow */
    vl_u128 lo = p00 + (mid << 64);
    vl_u128 hi = p11 + (mid >> 64) + (lo < p00);
    /* a b = hi 2^128 + lo, and 2^128 = 2 mod p; hi < 2^127, so 2 hi fits */
    return mac_add(mac_red(lo), mac_red(hi << 1));
}

/* A signed 128-bit integer mod p. */
static vl_u128 mac_of(vl_i128 v)
{
    vl_u128 mag = v < 0 ? (vl_u128)0 - (vl_u128)v : (vl_u128)v;
    vl_u128 r = mac_red(mag);
    return v < 0 ? mac_sub(0, r) : r;
}

vl_u128 vl_mac_a(const uint8_t key[VL_MAC_KEY_BYTES])
{
    vl_u128 a = 0;
    memcpy(&a, key + 32, 16);
    a = mac_red(a);
    return a == 0 ? 1 : a;
}

static vl_u128 mac_g(const uint8_t key[VL_MAC_KEY_BYTES], const struct vl_ashe_table *t,
                     uint64_t i)
{
    return mac_red(f_at(key, t, i));
}

vl_u128 vl_mac_tag(const uint8_t key[VL_MAC_KEY_BYTES], uint64_t i, int64_t m)
{
    vl_u128 a = vl_mac_a(key);
    return mac_add(vl_mac_mulmod(a, mac_of(m)),
                   mac_sub(mac_g(key, NULL, i), mac_g(key, NULL, i - 1)));
}

vl_u128 vl_mac_join(const int64_t sums[VL_ASHE_LIMBS])
{
    vl_u128 t = 0;
    for (int k = VL_ASHE_LIMBS - 1; k >= 0; k--) { /* Horner in base 2^32 */
        t = mac_add(vl_mac_mulmod(t, (vl_u128)1 << 32), mac_of((vl_i128)sums[k]));
    }
    return t;
}

vl_u128 vl_mac_expect(const uint8_t key[VL_MAC_KEY_BYTES], vl_i128 sum,
                      const struct vl_seq_run *runs, size_t nruns,
                      const struct vl_ashe_table *t)
{
    vl_u128 e = vl_mac_mulmod(vl_mac_a(key), mac_of(sum));
    for (size_t r = 0; r < nruns; r++) {
        e = mac_add(e, mac_sub(mac_g(key, t, runs[r].last), mac_g(key, t, runs[r].first - 1)));
    }
    return e;
}

void vl_i128_to_decimal(vl_i128 v, int scale, char out[48])
{
    char digits[48];
    size_t n = 0;
    int neg = v < 0;
    vl_u128 u = neg ? (vl_u128)0 - (vl_u128)v : (vl_u128)v;
    do {
        digits[n++] = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u != 0);
    while (n <= (size_t)scale) {
        digits[n++] = '0';
    }
    size_t o = 0;
    if (neg) {
        out[o++] = '-';
    }
    for (size_t i = n; i > 0; i--) {
        out[o++] = digits[i - 1];
        if (scale > 0 && i - 1 == (size_t)scale) {
            out[o++] = '.';
        }
    }
    out[o] = '\0';
}
