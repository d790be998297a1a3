/*
 * sethash.c: the keyed additive multiset hashes of sethash.h.
 *
 * Token keys are BLAKE2b-128 under the collection's set key; the values Q and G are
 * SipHash-2-4 (128-bit output) keyed by the token key. Inputs are domain-separated by
 * their first byte ('q' for documents, 'a' for sequence numbers), and the 128-bit output
 * is reduced modulo p = 2^127 - 1 (its bias, at most 2^-126 per value, does not matter
 * here: what protects the sums is that the store cannot compute the values at all).
 */
#include <string.h>

#include <sodium.h>

#include "crypto/sethash.h"

static const vl_u128 P = ((vl_u128)1 << 127) - 1;

static vl_u128 reduce(vl_u128 x)
{
    x = (x & P) + (x >> 127);
    return x >= P ? x - P : x;
}

static vl_u128 from_be(const uint8_t b[16])
{
    vl_u128 v = 0;
    for (int i = 0; i < 16; i++) {
        v = v << 8 | b[i];
    }
    return v;
}

void vl_set_store(uint8_t out[VL_SETSUM_BYTES], vl_u128 v)
{
    for (int i = 15; i >= 0; i--) {
        out[i] = (uint8_t)v;
        v >>= 8;
    }
}

bool vl_set_load(const void *p, size_t n, vl_u128 *out)
{
    if (p == NULL || n != VL_SETSUM_BYTES) {
        return false;
    }
    vl_u128 v = from_be(p);
    if (v >= P) {
        return false;
    }
    *out = v;
    return true;
}

vl_u128 vl_set_add(vl_u128 a, vl_u128 b)
{
    vl_u128 s = a + b; /* < 2^128: both < 2^127 */
    return s >= P ? s - P : s;
}

vl_u128 vl_set_sub(vl_u128 a, vl_u128 b)
{
    return a >= b ? a - b : a + (P - b);
}

void vl_tk(uint8_t out[VL_TK_BYTES], const uint8_t key[32], uint16_t cls, const uint8_t *col,
           size_t coln, const uint8_t *tok, size_t tokn)
{
    crypto_generichash_state h;
    uint8_t len[2] = {(uint8_t)(coln >> 8), (uint8_t)coln};
    crypto_generichash_init(&h, key, 32, VL_TK_BYTES);
    crypto_generichash_update(&h, len, sizeof(len));
    crypto_generichash_update(&h, col, coln);
    crypto_generichash_update(&h, tok, tokn);
    crypto_generichash_final(&h, out, VL_TK_BYTES);
    sodium_memzero(&h, sizeof(h));
    out[0] = (uint8_t)(cls >> 8);
    out[1] = (uint8_t)cls;
}

/* SipHash-2-4 with a 128-bit output, keyed by the token key: a PRF for short inputs, and
 * fast (a query checks one value per document listed, an aggregate two per run). */
static vl_u128 prf(const uint8_t tk[VL_TK_BYTES], const uint8_t *m, size_t n)
{
    uint8_t out[crypto_shorthash_siphashx24_BYTES];
    crypto_shorthash_siphashx24(out, m, n, tk);
    return reduce(from_be(out));
}

vl_u128 vl_set_q(const uint8_t tk[VL_TK_BYTES], const uint8_t *doc, size_t docn)
{
    uint8_t m[1 + 64];
    if (docn > 64) {
        docn = 64;
    }
    m[0] = 'q';
    memcpy(m + 1, doc, docn);
    return prf(tk, m, 1 + docn);
}

vl_u128 vl_set_g(const uint8_t tk[VL_TK_BYTES], uint64_t x)
{
    uint8_t m[9];
    m[0] = 'a';
    for (int i = 0; i < 8; i++) {
        m[1 + i] = (uint8_t)(x >> (56 - 8 * i));
    }
    return prf(tk, m, sizeof(m));
}

vl_u128 vl_set_run(const uint8_t tk[VL_TK_BYTES], uint64_t first, uint64_t last)
{
    return vl_set_sub(vl_set_g(tk, last), vl_set_g(tk, first - 1));
}

vl_u128 vl_set_a(const uint8_t tk[VL_TK_BYTES], uint64_t seq)
{
    return vl_set_run(tk, seq, seq);
}
