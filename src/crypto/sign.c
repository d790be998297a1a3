/*
 * sign.c: Ed25519 signatures over libsodium, used to sign audit tree heads so that a
 * verifier holding only the public key can check them.
 *
 * Invariants: verification is libsodium's strict check (canonical s < L, R and A not of
 * small order, no trailing data), so a signature has one accepted encoding.
 */
#include <sodium.h>

#include "crypto/crypto.h"

int vl_sign_keypair(uint8_t pk[VL_SIGN_PUBLICKEYBYTES], uint8_t sk[VL_SIGN_SECRETKEYBYTES])
{
    return crypto_sign_keypair(pk, sk);
}

int vl_sign(uint8_t sig[VL_SIGN_BYTES], const uint8_t *m, size_t mlen,
            const uint8_t sk[VL_SIGN_SECRETKEYBYTES])
{
    return crypto_sign_detached(sig, NULL, m, mlen, sk);
}

int vl_sign_verify(const uint8_t sig[VL_SIGN_BYTES], const uint8_t *m, size_t mlen,
                   const uint8_t pk[VL_SIGN_PUBLICKEYBYTES])
{
    return crypto_sign_verify_detached(sig, m, mlen, pk) == 0 ? 0 : -1;
}
