/*
 * prf.c: HMAC-SHA-256, SHA-256 and HKDF-SHA-256 (RFC 5869).
 *
 * HMAC keys index labels and blind tokens; HKDF derives every per-tenant, per-field and
 * per-tactic key from a root key, so a stored label reveals nothing about other fields.
 * HKDF is built here on libsodium's HMAC (1.0.18 has no HKDF). Intermediate keys (PRK,
 * T(i), HMAC states), and what SHA-256 left on the stack, are wiped before return.
 */
#include <string.h>

#include <openssl/evp.h>
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
    vl_scrub();
}

void vl_sha256(uint8_t out[VL_SHA256_BYTES], const void *m, size_t mlen)
{
    struct vl_iov v = {m, mlen};
    vl_sha256_v(out, &v, 1);
}

void vl_sha256_v(uint8_t out[VL_SHA256_BYTES], const struct vl_iov *v, size_t n)
{
    /* OpenSSL's SHA-256 uses the CPU's SHA extensions where there are any: several times
     * libsodium's portable code on the large parts a read hashes. Hashing public data, it
     * cannot fail but for memory; then libsodium's does the same work. */
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
    for (size_t i = 0; ok && i < n; i++) {
        ok = v[i].n == 0 || EVP_DigestUpdate(ctx, v[i].p, v[i].n) == 1;
    }
    unsigned len = 0;
    ok = ok && EVP_DigestFinal_ex(ctx, out, &len) == 1 && len == VL_SHA256_BYTES;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        crypto_hash_sha256_state h;
        crypto_hash_sha256_init(&h);
        for (size_t i = 0; i < n; i++) {
            crypto_hash_sha256_update(&h, v[i].p, v[i].n);
        }
        crypto_hash_sha256_final(&h, out);
    }
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
    vl_scrub();
    return 0;
}
