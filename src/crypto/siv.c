/*
 * siv.c: deterministic authenticated encryption, AES-SIV (RFC 5297), over OpenSSL 3 EVP.
 *
 * The `eq` tactic relies on this: equal (key, associated data, plaintext) give equal
 * ciphertexts, so the store learns which stored values are equal and nothing else. The
 * output is SIV || C, where SIV = S2V(K1, AD1, ..., ADn, P) and C = AES-CTR(K2, SIV', P).
 *
 * Invariants and OpenSSL quirks this file works around:
 * - Every associated-data component, even an empty one, is one S2V input. OpenSSL's SIV
 *   takes an EVP_*Update(ctx, NULL, ...) call with a NULL input as "finish" rather than as
 *   an empty component, so an empty component is always passed with a non-NULL pointer.
 * - OpenSSL's SIV provider ignores a zero-length plaintext update and then fails in Final,
 *   so it cannot encrypt the empty string. For mlen == 0 the SIV is computed here by S2V
 *   over AES-CMAC (EVP_MAC "CMAC"); the ciphertext is empty, so no CTR step is needed.
 * - Fetching is slow, so the three ciphers and the CMAC are fetched once (pthread_once) and
 *   kept for the life of the process.
 * - On a failed decryption the plaintext buffer is zeroed and one error is returned.
 * - Nothing keyed outlives a call: each call makes its own cipher context and frees it
 *   (OpenSSL cleanses the key schedule on free), and wipes the stack OpenSSL used.
 */
#include <limits.h>
#include <pthread.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <sodium.h>

#include "crypto/crypto.h"

#define SIV_BLOCK 16

static pthread_once_t siv_once = PTHREAD_ONCE_INIT;
static EVP_CIPHER *siv_ciphers[3]; /* AES-128-SIV, AES-192-SIV, AES-256-SIV */
static EVP_MAC *siv_cmac;
static int siv_ready;

static void siv_fetch(void)
{
    static const char *const names[3] = {"AES-128-SIV", "AES-192-SIV", "AES-256-SIV"};
    int ok = 1;
    for (size_t i = 0; i < 3; i++) {
        siv_ciphers[i] = EVP_CIPHER_fetch(NULL, names[i], NULL);
        if (siv_ciphers[i] == NULL) {
            ok = 0;
        }
    }
    siv_cmac = EVP_MAC_fetch(NULL, "CMAC", NULL);
    if (siv_cmac == NULL) {
        ok = 0;
    }
    siv_ready = ok;
}

int vl_siv_init(void)
{
    if (pthread_once(&siv_once, siv_fetch) != 0) {
        return -1;
    }
    return siv_ready ? 0 : -1;
}

/* The cached cipher for a double key of keylen bytes, or NULL. */
static const EVP_CIPHER *siv_cipher(size_t keylen)
{
    if (vl_siv_init() != 0) {
        return NULL;
    }
    switch (keylen) {
    case 32:
        return siv_ciphers[0];
    case 48:
        return siv_ciphers[1];
    case 64:
        return siv_ciphers[2];
    default:
        return NULL;
    }
}

static int siv_args_ok(size_t keylen, const uint8_t *const *ad, const size_t *adlen, size_t nad,
                       size_t mlen)
{
    if (keylen != 32 && keylen != 48 && keylen != 64) {
        return 0;
    }
    if (nad > VL_SIV_MAX_AD || (nad > 0 && (ad == NULL || adlen == NULL))) {
        return 0;
    }
    for (size_t i = 0; i < nad; i++) {
        if (adlen[i] > INT_MAX || (adlen[i] > 0 && ad[i] == NULL)) {
            return 0;
        }
    }
    return mlen <= (size_t)INT_MAX - SIV_BLOCK;
}

/* dbl() of RFC 5297 section 2.3: multiplication by x in GF(2^128). */
static void siv_dbl(uint8_t b[SIV_BLOCK])
{
    uint8_t carry = (uint8_t)(b[0] >> 7);
    for (size_t i = 0; i < SIV_BLOCK - 1; i++) {
        b[i] = (uint8_t)((b[i] << 1) | (b[i + 1] >> 7));
    }
    b[SIV_BLOCK - 1] = (uint8_t)((b[SIV_BLOCK - 1] << 1) ^ (0x87 & (0 - carry)));
}

/* One AES-CMAC under K1 (klen bytes). */
static int siv_cmac_once(uint8_t out[SIV_BLOCK], const uint8_t *k1, size_t klen,
                         const uint8_t *m, size_t mlen)
{
    static const uint8_t empty[1] = {0};
    const char *cbc = klen == 16 ? "AES-128-CBC" : klen == 24 ? "AES-192-CBC" : "AES-256-CBC";
    OSSL_PARAM params[2] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_CIPHER, (char *)cbc, 0),
        OSSL_PARAM_construct_end(),
    };
    size_t outl = 0;
    int rc = -1;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(siv_cmac);
    if (ctx == NULL) {
        goto out;
    }
    if (EVP_MAC_init(ctx, k1, klen, params) != 1 ||
        EVP_MAC_update(ctx, mlen > 0 ? m : empty, mlen) != 1 ||
        EVP_MAC_final(ctx, out, &outl, SIV_BLOCK) != 1 || outl != SIV_BLOCK) {
        goto out;
    }
    rc = 0;
out:
    EVP_MAC_CTX_free(ctx);
    return rc;
}

/* S2V(K1, AD1, ..., ADn, "") of RFC 5297 section 2.4: the SIV of an empty plaintext. The
 * plaintext is always the last S2V input, so the "no inputs at all" case cannot occur. */
static int siv_s2v_empty(uint8_t v[SIV_BLOCK], const uint8_t *key, size_t keylen,
                         const uint8_t *const *ad, const size_t *adlen, size_t nad)
{
    static const uint8_t zero[SIV_BLOCK] = {0};
    uint8_t d[SIV_BLOCK], t[SIV_BLOCK];
    size_t klen = keylen / 2;
    int rc = -1;

    if (siv_cmac_once(d, key, klen, zero, sizeof(zero)) != 0) {
        goto out;
    }
    for (size_t i = 0; i < nad; i++) {
        siv_dbl(d);
        if (siv_cmac_once(t, key, klen, ad[i], adlen[i]) != 0) {
            goto out;
        }
        for (size_t j = 0; j < SIV_BLOCK; j++) {
            d[j] ^= t[j];
        }
    }
    /* len(Sn) < 128: T = dbl(D) xor pad(""), with pad("") = 0x80 || 0^120. */
    siv_dbl(d);
    d[0] ^= 0x80;
    if (siv_cmac_once(v, key, klen, d, sizeof(d)) != 0) {
        goto out;
    }
    rc = 0;
out:
    sodium_memzero(d, sizeof(d));
    sodium_memzero(t, sizeof(t));
    return rc;
}

/* Feeds the associated-data components, in order, as S2V inputs. */
static int siv_feed_ad(EVP_CIPHER_CTX *ctx, int enc, const uint8_t *const *ad,
                       const size_t *adlen, size_t nad)
{
    static const uint8_t empty[1] = {0};
    for (size_t i = 0; i < nad; i++) {
        int outl = 0;
        const uint8_t *p = adlen[i] > 0 ? ad[i] : empty; /* NULL would mean "finish" */
        int ok = enc ? EVP_EncryptUpdate(ctx, NULL, &outl, p, (int)adlen[i])
                     : EVP_DecryptUpdate(ctx, NULL, &outl, p, (int)adlen[i]);
        if (ok != 1) {
            return -1;
        }
    }
    return 0;
}

int vl_siv_encrypt(uint8_t *out, const uint8_t *key, size_t keylen,
                   const uint8_t *const *ad, const size_t *adlen, size_t nad,
                   const uint8_t *m, size_t mlen)
{
    EVP_CIPHER_CTX *ctx = NULL;
    const EVP_CIPHER *cipher = siv_cipher(keylen);
    int outl = 0, fin = 0;
    int rc = -1;

    if (cipher == NULL || !siv_args_ok(keylen, ad, adlen, nad, mlen)) {
        goto out;
    }
    if (mlen == 0) {
        rc = siv_s2v_empty(out, key, keylen, ad, adlen, nad);
        goto out;
    }
    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL || EVP_EncryptInit_ex2(ctx, cipher, key, NULL, NULL) != 1 ||
        siv_feed_ad(ctx, 1, ad, adlen, nad) != 0 ||
        EVP_EncryptUpdate(ctx, out + VL_SIV_TAGBYTES, &outl, m, (int)mlen) != 1 ||
        (size_t)outl != mlen ||
        EVP_EncryptFinal_ex(ctx, out + VL_SIV_TAGBYTES + outl, &fin) != 1 || fin != 0 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, VL_SIV_TAGBYTES, out) != 1) {
        goto out;
    }
    rc = 0;
out:
    EVP_CIPHER_CTX_free(ctx); /* cleanses the key schedule */
    vl_scrub();
    return rc;
}

int vl_siv_decrypt(uint8_t *m, const uint8_t *key, size_t keylen,
                   const uint8_t *const *ad, const size_t *adlen, size_t nad,
                   const uint8_t *c, size_t clen)
{
    EVP_CIPHER_CTX *ctx = NULL;
    const EVP_CIPHER *cipher = siv_cipher(keylen);
    uint8_t tag[VL_SIV_TAGBYTES], v[VL_SIV_TAGBYTES];
    size_t mlen = clen >= VL_SIV_TAGBYTES ? clen - VL_SIV_TAGBYTES : 0;
    int outl = 0, fin = 0;
    int rc = -1;

    if (cipher == NULL || clen < VL_SIV_TAGBYTES ||
        !siv_args_ok(keylen, ad, adlen, nad, mlen)) {
        goto out;
    }
    if (mlen == 0) {
        if (siv_s2v_empty(v, key, keylen, ad, adlen, nad) == 0 &&
            sodium_memcmp(v, c, VL_SIV_TAGBYTES) == 0) {
            rc = 0;
        }
        goto out;
    }
    memcpy(tag, c, VL_SIV_TAGBYTES);
    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL || EVP_DecryptInit_ex2(ctx, cipher, key, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, VL_SIV_TAGBYTES, tag) != 1 ||
        siv_feed_ad(ctx, 0, ad, adlen, nad) != 0 ||
        EVP_DecryptUpdate(ctx, m, &outl, c + VL_SIV_TAGBYTES, (int)mlen) != 1 ||
        (size_t)outl != mlen || EVP_DecryptFinal_ex(ctx, m + outl, &fin) != 1 || fin != 0) {
        goto out;
    }
    rc = 0;
out:
    if (rc != 0 && m != NULL && mlen > 0) {
        sodium_memzero(m, mlen);
    }
    sodium_memzero(v, sizeof(v));
    EVP_CIPHER_CTX_free(ctx);
    vl_scrub();
    return rc;
}
