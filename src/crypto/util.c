/*
 * util.c: library start-up, length-hiding padding, randomness, secret memory and
 * passphrase hashing.
 *
 * Padding decides what the store learns about a value's length: only its bucket (see
 * vl_pad_len in crypto.h). The padding is ISO/IEC 7816-4 (0x80 then zeros), written and
 * checked by libsodium's constant-time sodium_pad/sodium_unpad with the whole bucket as the
 * block, and a padded buffer is accepted only if its length is the bucket of its content,
 * so each value has exactly one padded form.
 */
#include <assert.h>
#include <stdint.h>

#include <sodium.h>

#include "crypto/crypto.h"
#include "crypto/paillier.h"

#define PAD_MIN 16
#define PAD_STEP 4096

int vl_crypto_init(void)
{
    if (sodium_init() < 0) {
        return -1;
    }
    /* Before any thread uses GMP: its memory functions are swapped for wiping ones. */
    if (vl_paillier_init() != 0) {
        return -1;
    }
    return vl_siv_init();
}

size_t vl_pad_len(size_t len)
{
    size_t need, p;

    if (len > SIZE_MAX - 2 * PAD_STEP) {
        return 0;
    }
    need = len + 1; /* at least one padding byte */
    if (need > PAD_STEP) {
        return (need + PAD_STEP - 1) / PAD_STEP * PAD_STEP;
    }
    p = PAD_MIN;
    while (p < need) {
        p *= 2;
    }
    return p;
}

void vl_pad(uint8_t *buf, size_t len)
{
    size_t bucket = vl_pad_len(len), padded = 0;
    int ok;

    assert(bucket > len);
    ok = sodium_pad(&padded, buf, len, bucket, bucket);
    assert(ok == 0 && padded == bucket);
    (void)ok;
}

int vl_unpad(const uint8_t *buf, size_t padded, size_t *len)
{
    size_t n = 0;

    if (padded < PAD_MIN || sodium_unpad(&n, buf, padded, padded) != 0 ||
        vl_pad_len(n) != padded) {
        return -1;
    }
    *len = n;
    return 0;
}

void vl_random(void *buf, size_t n)
{
    randombytes_buf(buf, n);
}

void *vl_secret_alloc(size_t n)
{
    return sodium_malloc(n);
}

void vl_secret_free(void *p)
{
    sodium_free(p); /* wipes, checks the canary and accepts NULL */
}

int vl_ct_equal(const void *a, const void *b, size_t n)
{
    return sodium_memcmp(a, b, n) == 0;
}

int vl_pwhash(uint8_t *out, size_t outlen, const char *pass, size_t passlen,
              const uint8_t salt[VL_PWHASH_SALTBYTES])
{
    if (outlen < crypto_pwhash_BYTES_MIN || outlen > crypto_pwhash_BYTES_MAX ||
        passlen > crypto_pwhash_PASSWD_MAX) {
        return -1;
    }
    return crypto_pwhash(out, outlen, pass, passlen, salt, crypto_pwhash_OPSLIMIT_MODERATE,
                         crypto_pwhash_MEMLIMIT_MODERATE, crypto_pwhash_ALG_ARGON2ID13) == 0
               ? 0
               : -1;
}
