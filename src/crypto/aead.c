/*
 * aead.c: randomized authenticated encryption, XChaCha20-Poly1305 (IETF), over libsodium.
 *
 * This is the `aead` tactic's cipher and the one that wraps keys. The store sees a random
 * 24-byte nonce, the ciphertext (as long as the padded plaintext) and a 16-byte tag; the
 * associated data binds a ciphertext to its place (tenant, collection, document, field,
 * version, key version) and is not stored by this layer.
 *
 * Invariants: nonces come from randombytes only (192 bits, so random nonces do not
 * collide); a failed open returns -1 and leaves the whole plaintext buffer zeroed; what
 * the cipher left of the key on the stack is wiped before returning.
 */
#include <string.h>

#include <sodium.h>

#include "crypto/crypto.h"

int vl_aead_seal(uint8_t *c, const uint8_t *m, size_t mlen, const uint8_t *ad, size_t adlen,
                 const uint8_t nonce[VL_AEAD_NONCEBYTES], const uint8_t key[VL_AEAD_KEYBYTES])
{
    if (mlen > crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX) {
        return -1;
    }
    int rc = crypto_aead_xchacha20poly1305_ietf_encrypt(c, NULL, m, mlen, ad, adlen, NULL,
                                                        nonce, key);
    vl_scrub();
    return rc;
}

int vl_aead_open(uint8_t *m, const uint8_t *c, size_t clen, const uint8_t *ad, size_t adlen,
                 const uint8_t nonce[VL_AEAD_NONCEBYTES], const uint8_t key[VL_AEAD_KEYBYTES])
{
    if (clen < VL_AEAD_ABYTES) {
        return -1;
    }
    int rc = crypto_aead_xchacha20poly1305_ietf_decrypt(m, NULL, NULL, c, clen, ad, adlen, nonce,
                                                        key);
    vl_scrub();
    if (rc != 0) {
        sodium_memzero(m, clen - VL_AEAD_ABYTES);
        return -1;
    }
    return 0;
}

int vl_aead_box_seal(uint8_t *out, const uint8_t *m, size_t mlen, const uint8_t *ad,
                     size_t adlen, const uint8_t key[VL_AEAD_KEYBYTES])
{
    randombytes_buf(out, VL_AEAD_NONCEBYTES);
    return vl_aead_seal(out + VL_AEAD_NONCEBYTES, m, mlen, ad, adlen, out, key);
}

int vl_aead_box_open(uint8_t *m, size_t *mlen, const uint8_t *in, size_t inlen,
                     const uint8_t *ad, size_t adlen, const uint8_t key[VL_AEAD_KEYBYTES])
{
    if (inlen < VL_AEAD_NONCEBYTES + VL_AEAD_ABYTES) {
        return -1;
    }
    if (vl_aead_open(m, in + VL_AEAD_NONCEBYTES, inlen - VL_AEAD_NONCEBYTES, ad, adlen, in,
                     key) != 0) {
        return -1;
    }
    *mlen = inlen - VL_AEAD_NONCEBYTES - VL_AEAD_ABYTES;
    return 0;
}
