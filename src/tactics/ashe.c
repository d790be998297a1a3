/*
 * ashe.c: additively symmetric homomorphic encryption for the `sum` tactic (see tactics.h).
 *
 * F(i) is the first 128 bits of HMAC-SHA-256(key, i). A value is hidden by F(i) - F(i-1),
 * which is uniformly random to anyone without the key, so a ciphertext alone says nothing;
 * what telescopes away in a sum of consecutive rows is known only to the key holder. Row
 * sequence numbers are never reused (each write gets a new one), so no two values share a
 * mask.
 */
#include <string.h>

#include "crypto/crypto.h"
#include "tactics/tactics.h"
#include "util/buf.h"

vl_u128 vl_ashe_f(const uint8_t key[32], uint64_t i)
{
    uint8_t m[8], mac[VL_PRF_BYTES];
    vl_store_u64(m, i);
    vl_hmac_sha256(mac, key, 32, m, sizeof(m));
    return ((vl_u128)vl_load_u64(mac) << 64) | vl_load_u64(mac + 8);
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
                        size_t nruns)
{
    vl_u128 v = csum;
    for (size_t r = 0; r < nruns; r++) {
        v -= vl_ashe_f(key, runs[r].last) - vl_ashe_f(key, runs[r].first - 1);
    }
    return (vl_i128)v;
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
