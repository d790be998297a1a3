/*
 * crypto.h: thin, tested wrappers over libsodium and OpenSSL 3. Nothing above this layer
 * calls a cipher directly. Every function that authenticates returns -1 on failure, and
 * then leaves its plaintext output zeroed: never partial data, never which check failed.
 */
#ifndef VL_CRYPTO_H
#define VL_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define VL_WUR __attribute__((warn_unused_result))

/* Calls sodium_init() and checks OpenSSL's AES-SIV is available; 0 on success. Safe to
 * call more than once and from several threads. */
int vl_crypto_init(void);
/* Fetches OpenSSL's AES-128/192/256-SIV ciphers and AES-CMAC once per process (pthread_once)
 * and keeps them for its lifetime; 0 if all are available. Called by vl_crypto_init and
 * lazily by vl_siv_*. */
int vl_siv_init(void);

/* ---- randomized AEAD: XChaCha20-Poly1305 (IETF), libsodium ---- */
#define VL_AEAD_KEYBYTES 32
#define VL_AEAD_NONCEBYTES 24
#define VL_AEAD_ABYTES 16
/* c receives mlen + VL_AEAD_ABYTES bytes (ciphertext then tag). */
int vl_aead_seal(uint8_t *c, const uint8_t *m, size_t mlen, const uint8_t *ad, size_t adlen,
                 const uint8_t nonce[VL_AEAD_NONCEBYTES], const uint8_t key[VL_AEAD_KEYBYTES]);
/* m receives clen - VL_AEAD_ABYTES bytes. */
int vl_aead_open(uint8_t *m, const uint8_t *c, size_t clen, const uint8_t *ad, size_t adlen,
                 const uint8_t nonce[VL_AEAD_NONCEBYTES],
                 const uint8_t key[VL_AEAD_KEYBYTES]) VL_WUR;
/* With a fresh random nonce: out = nonce || ciphertext || tag, vl_aead_box_len(mlen)
 * bytes. */
#define vl_aead_box_len(mlen) ((mlen) + VL_AEAD_NONCEBYTES + VL_AEAD_ABYTES)
int vl_aead_box_seal(uint8_t *out, const uint8_t *m, size_t mlen, const uint8_t *ad,
                     size_t adlen, const uint8_t key[VL_AEAD_KEYBYTES]);
/* in = nonce || ciphertext || tag; m receives inlen - nonce - tag bytes (*mlen). On failure
 * -1, m zeroed, *mlen untouched. */
int vl_aead_box_open(uint8_t *m, size_t *mlen, const uint8_t *in, size_t inlen,
                     const uint8_t *ad, size_t adlen,
                     const uint8_t key[VL_AEAD_KEYBYTES]) VL_WUR;

/* ---- deterministic AEAD: AES-SIV (RFC 5297), OpenSSL 3 EVP ---- */
#define VL_SIV_KEYBYTES 64 /* AES-256-SIV: K1 || K2 */
#define VL_SIV_TAGBYTES 16
#define VL_SIV_MAX_AD 8
/* keylen is 32, 48 or 64 (AES-128/192/256-SIV). The nad associated-data components are
 * passed to S2V in order (a nonce, if any, is simply the last component); an empty
 * component (adlen[i] == 0, ad[i] may be NULL) still counts as one. out receives
 * VL_SIV_TAGBYTES + mlen bytes: SIV || ciphertext. mlen may be 0. Returns -1 (out
 * unspecified) for a bad keylen, nad > VL_SIV_MAX_AD, a component or mlen over INT_MAX - 16
 * (OpenSSL's int lengths), or an OpenSSL failure. */
int vl_siv_encrypt(uint8_t *out, const uint8_t *key, size_t keylen,
                   const uint8_t *const *ad, const size_t *adlen, size_t nad,
                   const uint8_t *m, size_t mlen);
/* m receives clen - VL_SIV_TAGBYTES bytes; -1 (m zeroed) if the SIV does not verify, or for
 * the argument errors of vl_siv_encrypt or clen < VL_SIV_TAGBYTES. */
int vl_siv_decrypt(uint8_t *m, const uint8_t *key, size_t keylen,
                   const uint8_t *const *ad, const size_t *adlen, size_t nad,
                   const uint8_t *c, size_t clen) VL_WUR;

/* ---- PRF and hashes ---- */
#define VL_PRF_BYTES 32
#define VL_SHA256_BYTES 32
/* HMAC-SHA-256 with a key of any length. */
void vl_hmac_sha256(uint8_t out[VL_PRF_BYTES], const uint8_t *key, size_t keylen,
                    const uint8_t *m, size_t mlen);
void vl_sha256(uint8_t out[VL_SHA256_BYTES], const void *m, size_t mlen);
/* SHA-256 of the concatenation of n pieces. */
struct vl_iov {
    const void *p;
    size_t n;
};
void vl_sha256_v(uint8_t out[VL_SHA256_BYTES], const struct vl_iov *v, size_t n);
/* HKDF-SHA-256 (RFC 5869), extract then expand. okmlen <= 255 * 32; -1 otherwise. */
int vl_hkdf_sha256(uint8_t *okm, size_t okmlen, const uint8_t *ikm, size_t ikmlen,
                   const uint8_t *salt, size_t saltlen, const uint8_t *info, size_t infolen);

/* ---- signatures: Ed25519, libsodium (audit tree heads) ---- */
#define VL_SIGN_PUBLICKEYBYTES 32
#define VL_SIGN_SECRETKEYBYTES 64
#define VL_SIGN_BYTES 64
int vl_sign_keypair(uint8_t pk[VL_SIGN_PUBLICKEYBYTES], uint8_t sk[VL_SIGN_SECRETKEYBYTES]);
int vl_sign(uint8_t sig[VL_SIGN_BYTES], const uint8_t *m, size_t mlen,
            const uint8_t sk[VL_SIGN_SECRETKEYBYTES]);
int vl_sign_verify(const uint8_t sig[VL_SIGN_BYTES], const uint8_t *m, size_t mlen,
                   const uint8_t pk[VL_SIGN_PUBLICKEYBYTES]) VL_WUR;

/* ---- padding to length buckets (ISO/IEC 7816-4, sodium_pad) ---- */
/* The padded length (bucket) for a value of len bytes. With n = len + 1 (there is always
 * at least one padding byte): if n <= 4096, the smallest power of two >= n and >= 16;
 * otherwise the smallest multiple of 4096 >= n. So 0..15 -> 16, 16..31 -> 32, ...,
 * 2048..4095 -> 4096, 4096..8191 -> 8192, 8192..12287 -> 12288, and so on. Returns 0 (no
 * bucket) if len > SIZE_MAX - 8192. */
size_t vl_pad_len(size_t len);
/* Pads buf[0..len) in place to vl_pad_len(len) bytes (0x80 then zeros); buf must have
 * room. */
void vl_pad(uint8_t *buf, size_t len);
/* The unpadded length of buf[0..padded), or -1 (*len untouched) if the padding is malformed:
 * no 0x80 marker followed only by zeros, or padded is not vl_pad_len() of the unpadded
 * length (each value has exactly one padded form). Constant time in the content. */
int vl_unpad(const uint8_t *buf, size_t padded, size_t *len) VL_WUR;

/* ---- randomness and secret memory ---- */
void vl_random(void *buf, size_t n);
/* sodium_malloc'd (guard pages, mlock'd, kept out of core dumps); free with vl_secret_free,
 * which wipes. NULL on failure. */
void *vl_secret_alloc(size_t n);
void vl_secret_free(void *p);
/* Clears what a primitive leaves of its key once it returns: the SIMD registers (xmm, ymm,
 * zmm; a core file or a debugger shows each thread's registers) and VL_SCRUB_BYTES of the
 * stack just below the caller's frame, where the primitive and its callees kept their
 * locals and spills (libsodium's ChaCha20 keeps its key rows in vector registers, which the
 * dynamic linker's lazy binding, among others, saves to the stack). A function that called
 * a primitive with a key calls this before it returns. Costs well under a microsecond. */
#define VL_SCRUB_BYTES 8192
void vl_scrub(void);
/* Constant-time equality of two n-byte strings: 1 if equal. */
int vl_ct_equal(const void *a, const void *b, size_t n);

/* ---- passphrase-based key derivation: Argon2id (libsodium crypto_pwhash) ---- */
#define VL_PWHASH_SALTBYTES 16
int vl_pwhash(uint8_t *out, size_t outlen, const char *pass, size_t passlen,
              const uint8_t salt[VL_PWHASH_SALTBYTES]) VL_WUR;

#endif
