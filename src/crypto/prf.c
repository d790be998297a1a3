/*
 * prf.c: HMAC-SHA-256, SHA-256 and HKDF-SHA-256 (RFC 5869).
 *
 * HMAC keys index labels and blind tokens; HKDF derives every per-tenant, per-field and
 * per-tactic key from a root key, so a stored label reveals nothing about other fields.
 * HKDF is built here on libsodium's HMAC (1.0.18 has no HKDF). Intermediate keys (PRK,
 * T(i), HMAC states) are wiped before return.
 */
#include <string.h>

#include <sodium.h>

#include "crypto/crypto.h"

#define HKDF_MAX_OKM (255 * VL_PRF_BYTES)

void vl_hmac_sha256(uint8_t out[VL_PRF_BYTES], const uint8_t *key, size_t keylen,
                    const uint8_t *m, size_t mlen)
{
    static const uint8_t nokey[1] = {0};
    crypto_auth_hmacsha256_state st;
    /* libsodium declares the key non-NULL even when keylen is 0 (an absent HKDF salt). */
    crypto_auth_hmacsha256_init(&st, keylen > 0 ? key : nokey, keylen);
    crypto_auth_hmacsha256_update(&st, m, mlen);
    crypto_auth_hmacsha256_final(&st, out);
    sodium_memzero(&st, sizeof(st));
}

void vl_sha256(uint8_t out[VL_SHA256_BYTES], const void *m, size_t mlen)
{
    crypto_hash_sha256(out, m, mlen);
}

int vl_hkdf_sha256(uint8_t *okm, size_t okmlen, const uint8_t *ikm, size_t ikmlen,
                   const uint8_t *salt, size_t saltlen, const uint8_t *info, size_t infolen)
{
    crypto_auth_hmacsha256_state st;
    uint8_t prk[VL_PRF_BYTES], t[VL_PRF_BYTES];
    size_t done = 0;
    uint8_t counter = 0;

    if (okmlen > HKDF_MAX_OKM) {
        return -1;
    }
    /* Extract. An absent salt is HashLen zero bytes, which HMAC treats exactly as an empty
     * key (keys are zero-padded to the block size), so salt is used as given. */
    vl_hmac_sha256(prk, salt, saltlen, ikm, ikmlen);
    /* Expand: T(i) = HMAC(PRK, T(i-1) || info || i). */
    while (done < okmlen) {
        size_t n = okmlen - done < VL_PRF_BYTES ? okmlen - done : VL_PRF_BYTES;
        counter++;
        crypto_auth_hmacsha256_init(&st, prk, sizeof(prk));
        if (counter > 1) {
            crypto_auth_hmacsha256_update(&st, t, sizeof(t));
        }
        crypto_auth_hmacsha256_update(&st, info, infolen);
        crypto_auth_hmacsha256_update(&st, &counter, 1);
        crypto_auth_hmacsha256_final(&st, t);
        memcpy(okm + done, t, n);
        done += n;
    }
    sodium_memzero(&st, sizeof(st));
    sodium_memzero(prk, sizeof(prk));
    sodium_memzero(t, sizeof(t));
    return 0;
}
