/*
 * test_crypto.c: known-answer and behaviour tests for src/crypto.
 *
 * Every Wycheproof file is one test that runs all of its cases and stops at the first
 * mismatch, naming the tcId (never the key or plaintext). Valid cases must give exactly the
 * expected output and open/verify; invalid cases must fail to open/verify and leave the
 * plaintext zeroed. "acceptable" cases (none in the files at the pinned commit) may either
 * pass or fail, but if they pass their output must match. Cases the fixed-size API cannot
 * express (XChaCha20 nonces that are not 24 bytes, Ed25519 signatures that are not 64
 * bytes) must be invalid in the file; the XChaCha20 ones are also fed to vl_aead_box_open,
 * which must reject them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "crypto/crypto.h"
#include "crypto/sethash.h"
#include "testutil.h"

enum expect { EXPECT_VALID, EXPECT_INVALID, EXPECT_ACCEPTABLE };

static uint8_t *hexfield(json_t *obj, const char *key, size_t *len)
{
    const char *s = json_string_value(json_object_get(obj, key));
    if (s == NULL) {
        fail_msg("test data: missing hex field %s", key);
    }
    return tu_unhex(s, len);
}

static enum expect result_of(json_t *t)
{
    const char *r = json_string_value(json_object_get(t, "result"));
    if (r != NULL && strcmp(r, "valid") == 0) {
        return EXPECT_VALID;
    }
    if (r != NULL && strcmp(r, "invalid") == 0) {
        return EXPECT_INVALID;
    }
    if (r != NULL && strcmp(r, "acceptable") == 0) {
        return EXPECT_ACCEPTABLE;
    }
    fail_msg("test data: bad result field");
    return EXPECT_INVALID;
}

static int is_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        acc |= p[i];
    }
    return acc == 0;
}

/* Fails the test with the file and tcId when cond is false. */
#define CHECK_TC(cond, file, tc, what)                                                        \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fail_msg("%s tcId %d: %s", (file), (tc), (what));                                \
        }                                                                                     \
    } while (0)

/* Checks that the file declares as many tests as were run. */
static void check_count(json_t *root, int ran, const char *file)
{
    int declared = (int)json_integer_value(json_object_get(root, "numberOfTests"));
    if (declared != ran) {
        fail_msg("%s: ran %d cases, file declares %d", file, ran, declared);
    }
}

/* ---- XChaCha20-Poly1305 ---- */

static void test_xchacha_wycheproof(void **state)
{
    (void)state;
    static const char *file = "vectors/wycheproof/xchacha20_poly1305_test.json";
    json_t *root = tu_load_json(file);
    json_t *groups = json_object_get(root, "testGroups");
    size_t gi, ti;
    json_t *g, *t;
    int ran = 0, valid = 0, rejected = 0;

    json_array_foreach(groups, gi, g) {
        json_array_foreach(json_object_get(g, "tests"), ti, t) {
            int tc = (int)json_integer_value(json_object_get(t, "tcId"));
            enum expect ex = result_of(t);
            size_t klen, ivlen, adlen, mlen, ctlen, taglen;
            uint8_t *key = hexfield(t, "key", &klen), *iv = hexfield(t, "iv", &ivlen);
            uint8_t *ad = hexfield(t, "aad", &adlen), *msg = hexfield(t, "msg", &mlen);
            uint8_t *ct = hexfield(t, "ct", &ctlen), *tag = hexfield(t, "tag", &taglen);
            size_t clen = ctlen + taglen, boxlen = ivlen + clen, outlen = 0;
            uint8_t *c = malloc(clen + 1), *box = malloc(boxlen + 1);
            uint8_t *m = malloc(clen + 1), *sealed = malloc(clen + 1);
            assert_non_null(c);
            assert_non_null(box);
            assert_non_null(m);
            assert_non_null(sealed);
            memcpy(c, ct, ctlen);
            memcpy(c + ctlen, tag, taglen);
            memcpy(box, iv, ivlen);
            memcpy(box + ivlen, c, clen);
            CHECK_TC(klen == VL_AEAD_KEYBYTES, file, tc, "key size");

            if (ivlen != VL_AEAD_NONCEBYTES) {
                /* The API takes a 24-byte nonce by type; such a box must not open. */
                CHECK_TC(ex == EXPECT_INVALID, file, tc, "odd nonce size not invalid");
                memset(m, 0xa5, clen);
                int rc = vl_aead_box_open(m, &outlen, box, boxlen, ad, adlen, key);
                CHECK_TC(rc != 0, file, tc, "box with odd nonce size opened");
                rejected++;
            } else if (ex == EXPECT_VALID) {
                CHECK_TC(taglen == VL_AEAD_ABYTES, file, tc, "tag size");
                CHECK_TC(vl_aead_seal(sealed, msg, mlen, ad, adlen, iv, key) == 0, file, tc,
                         "seal failed");
                CHECK_TC(memcmp(sealed, c, clen) == 0, file, tc, "ct||tag mismatch");
                CHECK_TC(vl_aead_open(m, c, clen, ad, adlen, iv, key) == 0, file, tc,
                         "open failed");
                CHECK_TC(memcmp(m, msg, mlen) == 0, file, tc, "plaintext mismatch");
                memset(m, 0, clen);
                CHECK_TC(vl_aead_box_open(m, &outlen, box, boxlen, ad, adlen, key) == 0, file,
                         tc, "box open failed");
                CHECK_TC(outlen == mlen && memcmp(m, msg, mlen) == 0, file, tc,
                         "box plaintext mismatch");
                valid++;
            } else {
                memset(m, 0xa5, clen);
                int rc = vl_aead_open(m, c, clen, ad, adlen, iv, key);
                if (ex == EXPECT_INVALID) {
                    CHECK_TC(rc != 0, file, tc, "invalid case opened");
                    CHECK_TC(is_zero(m, mlen), file, tc, "output not zeroed");
                    rc = vl_aead_box_open(m, &outlen, box, boxlen, ad, adlen, key);
                    CHECK_TC(rc != 0, file, tc, "invalid box opened");
                    rejected++;
                } else if (rc == 0) {
                    CHECK_TC(memcmp(m, msg, mlen) == 0, file, tc, "acceptable: mismatch");
                }
            }
            ran++;
            free(key);
            free(iv);
            free(ad);
            free(msg);
            free(ct);
            free(tag);
            free(c);
            free(box);
            free(m);
            free(sealed);
        }
    }
    check_count(root, ran, file);
    assert_int_equal(valid, 246);
    assert_int_equal(rejected, 69);
    json_decref(root);
}

static void test_aead_box(void **state)
{
    (void)state;
    uint8_t key[VL_AEAD_KEYBYTES], m[100], out[100], box1[vl_aead_box_len(100)];
    uint8_t box2[vl_aead_box_len(100)];
    const uint8_t ad[] = "tenant/coll/doc/field/v1";
    size_t outlen = 0;

    vl_random(key, sizeof(key));
    vl_random(m, sizeof(m));
    assert_int_equal(vl_aead_box_len(100), 100 + 24 + 16);
    assert_int_equal(vl_aead_box_seal(box1, m, sizeof(m), ad, sizeof(ad), key), 0);
    assert_int_equal(vl_aead_box_seal(box2, m, sizeof(m), ad, sizeof(ad), key), 0);
    /* Fresh random nonces: two seals of the same value differ. */
    assert_memory_not_equal(box1, box2, VL_AEAD_NONCEBYTES);
    assert_memory_not_equal(box1, box2, sizeof(box1));

    assert_int_equal(vl_aead_box_open(out, &outlen, box1, sizeof(box1), ad, sizeof(ad), key),
                     0);
    assert_int_equal(outlen, sizeof(m));
    assert_memory_equal(out, m, sizeof(m));

    /* Flip each region in turn: nonce, ciphertext, tag. Each must fail and zero out. */
    const size_t flips[] = {0, VL_AEAD_NONCEBYTES + 5, sizeof(box1) - 1};
    for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
        box1[flips[i]] ^= 0x01;
        memset(out, 0xa5, sizeof(out));
        outlen = 12345;
        assert_int_not_equal(
            vl_aead_box_open(out, &outlen, box1, sizeof(box1), ad, sizeof(ad), key), 0);
        assert_true(is_zero(out, sizeof(out)));
        assert_int_equal(outlen, 12345);
        box1[flips[i]] ^= 0x01;
    }
    /* Wrong associated data, wrong key, truncated input. */
    memset(out, 0xa5, sizeof(out));
    assert_int_not_equal(
        vl_aead_box_open(out, &outlen, box1, sizeof(box1), ad, sizeof(ad) - 1, key), 0);
    assert_true(is_zero(out, sizeof(out)));
    key[0] ^= 1;
    assert_int_not_equal(
        vl_aead_box_open(out, &outlen, box1, sizeof(box1), ad, sizeof(ad), key), 0);
    key[0] ^= 1;
    assert_int_not_equal(vl_aead_box_open(out, &outlen, box1, sizeof(box1) - 1, ad, sizeof(ad),
                                          key),
                         0);
    assert_int_not_equal(vl_aead_box_open(out, &outlen, box1, 39, ad, sizeof(ad), key), 0);

    /* Empty plaintext and empty AD round-trip. */
    uint8_t ebox[vl_aead_box_len(0)];
    assert_int_equal(vl_aead_box_seal(ebox, NULL, 0, NULL, 0, key), 0);
    outlen = 99;
    assert_int_equal(vl_aead_box_open(out, &outlen, ebox, sizeof(ebox), NULL, 0, key), 0);
    assert_int_equal(outlen, 0);
}

/* ---- AES-SIV ---- */

static void test_siv_wycheproof(void **state)
{
    (void)state;
    static const char *file = "vectors/wycheproof/aes_siv_cmac_test.json";
    json_t *root = tu_load_json(file);
    size_t gi, ti;
    json_t *g, *t;
    int ran = 0, valid = 0, rejected = 0, empty_ad = 0, empty_msg = 0;

    json_array_foreach(json_object_get(root, "testGroups"), gi, g) {
        json_array_foreach(json_object_get(g, "tests"), ti, t) {
            int tc = (int)json_integer_value(json_object_get(t, "tcId"));
            enum expect ex = result_of(t);
            size_t klen, adlen, mlen, ctlen;
            uint8_t *key = hexfield(t, "key", &klen), *ad = hexfield(t, "aad", &adlen);
            uint8_t *msg = hexfield(t, "msg", &mlen), *ct = hexfield(t, "ct", &ctlen);
            const uint8_t *ads[1] = {ad};
            uint8_t *out = malloc(mlen + VL_SIV_TAGBYTES + 1), *m = malloc(ctlen + 1);
            assert_non_null(out);
            assert_non_null(m);
            /* aad is always exactly one S2V component, even when empty. */
            if (ex == EXPECT_VALID) {
                CHECK_TC(vl_siv_encrypt(out, key, klen, ads, &adlen, 1, msg, mlen) == 0, file,
                         tc, "encrypt failed");
                CHECK_TC(ctlen == mlen + VL_SIV_TAGBYTES && memcmp(out, ct, ctlen) == 0, file,
                         tc, "siv||ct mismatch");
                CHECK_TC(vl_siv_decrypt(m, key, klen, ads, &adlen, 1, ct, ctlen) == 0, file,
                         tc, "decrypt failed");
                CHECK_TC(memcmp(m, msg, mlen) == 0, file, tc, "plaintext mismatch");
                valid++;
                empty_ad += adlen == 0;
                empty_msg += mlen == 0;
            } else {
                memset(m, 0xa5, ctlen + 1);
                int rc = vl_siv_decrypt(m, key, klen, ads, &adlen, 1, ct, ctlen);
                if (ex == EXPECT_INVALID) {
                    CHECK_TC(rc != 0, file, tc, "invalid case decrypted");
                    CHECK_TC(ctlen < VL_SIV_TAGBYTES || is_zero(m, ctlen - VL_SIV_TAGBYTES),
                             file, tc, "output not zeroed");
                    rejected++;
                } else if (rc == 0) {
                    CHECK_TC(memcmp(m, msg, mlen) == 0, file, tc, "acceptable: mismatch");
                }
            }
            ran++;
            free(key);
            free(ad);
            free(msg);
            free(ct);
            free(out);
            free(m);
        }
    }
    check_count(root, ran, file);
    assert_int_equal(valid, 118);
    assert_int_equal(rejected, 324);
    /* The file must have exercised both OpenSSL quirks. */
    assert_true(empty_ad > 0);
    assert_true(empty_msg > 0);
    json_decref(root);
}

static void test_siv_rfc5297(void **state)
{
    (void)state;
    json_t *root = tu_load_json("vectors/rfc5297_aes_siv.json");
    size_t i;
    json_t *t;
    int ran = 0;

    json_array_foreach(json_object_get(root, "tests"), i, t) {
        size_t klen, mlen, outlen, n = 0;
        const uint8_t *ads[VL_SIV_MAX_AD];
        uint8_t *owned[VL_SIV_MAX_AD];
        size_t adlens[VL_SIV_MAX_AD];
        uint8_t *key = hexfield(t, "key", &klen), *pt = hexfield(t, "plaintext", &mlen);
        uint8_t *want = hexfield(t, "output", &outlen);
        size_t j;
        json_t *a;

        json_array_foreach(json_object_get(t, "ad"), j, a) {
            assert_true(n < VL_SIV_MAX_AD);
            owned[n] = tu_unhex(json_string_value(a), &adlens[n]);
            ads[n] = owned[n];
            n++;
        }
        if (json_is_string(json_object_get(t, "nonce"))) {
            assert_true(n < VL_SIV_MAX_AD);
            owned[n] = hexfield(t, "nonce", &adlens[n]); /* the nonce is the last component */
            ads[n] = owned[n];
            n++;
        }
        assert_int_equal(n, i == 0 ? 1 : 3); /* A.1: one AD; A.2: two ADs and a nonce */

        uint8_t *out = malloc(outlen), *m = malloc(mlen);
        assert_non_null(out);
        assert_non_null(m);
        assert_int_equal(outlen, mlen + VL_SIV_TAGBYTES);
        assert_int_equal(vl_siv_encrypt(out, key, klen, ads, adlens, n, pt, mlen), 0);
        assert_memory_equal(out, want, outlen);
        assert_int_equal(vl_siv_decrypt(m, key, klen, ads, adlens, n, out, outlen), 0);
        assert_memory_equal(m, pt, mlen);

        /* Order of components matters; so does each one. */
        if (n > 1) {
            const uint8_t *swapped[VL_SIV_MAX_AD];
            size_t swlens[VL_SIV_MAX_AD];
            memcpy(swapped, ads, n * sizeof(ads[0]));
            memcpy(swlens, adlens, n * sizeof(adlens[0]));
            swapped[0] = ads[1];
            swlens[0] = adlens[1];
            swapped[1] = ads[0];
            swlens[1] = adlens[0];
            memset(m, 0xa5, mlen);
            assert_int_not_equal(vl_siv_decrypt(m, key, klen, swapped, swlens, n, out, outlen),
                                 0);
            assert_true(is_zero(m, mlen));
        }
        memset(m, 0xa5, mlen);
        assert_int_not_equal(vl_siv_decrypt(m, key, klen, ads, adlens, n - 1, out, outlen), 0);
        assert_true(is_zero(m, mlen));

        for (j = 0; j < n; j++) {
            free(owned[j]);
        }
        free(key);
        free(pt);
        free(want);
        free(out);
        free(m);
        ran++;
    }
    assert_int_equal(ran, 2);
    json_decref(root);
}

static void test_siv_behaviour(void **state)
{
    (void)state;
    uint8_t key[VL_SIV_KEYBYTES], out1[VL_SIV_TAGBYTES + 40], out2[VL_SIV_TAGBYTES + 40];
    uint8_t m[40];
    const uint8_t field[] = "users.email";
    const uint8_t *ads[VL_SIV_MAX_AD + 1];
    size_t adlens[VL_SIV_MAX_AD + 1];
    const uint8_t *adnull[1] = {NULL};
    size_t zero = 0;

    vl_random(key, sizeof(key));
    for (size_t i = 0; i <= VL_SIV_MAX_AD; i++) {
        ads[i] = field;
        adlens[i] = sizeof(field);
    }
    /* Deterministic: the same inputs give the same output; another AD gives another. */
    assert_int_equal(vl_siv_encrypt(out1, key, sizeof(key), ads, adlens, 1,
                                    (const uint8_t *)"alice@example.org", 17),
                     0);
    assert_int_equal(vl_siv_encrypt(out2, key, sizeof(key), ads, adlens, 1,
                                    (const uint8_t *)"alice@example.org", 17),
                     0);
    assert_memory_equal(out1, out2, VL_SIV_TAGBYTES + 17);
    assert_int_equal(vl_siv_encrypt(out2, key, sizeof(key), ads, adlens, 2,
                                    (const uint8_t *)"alice@example.org", 17),
                     0);
    assert_memory_not_equal(out1, out2, VL_SIV_TAGBYTES);

    /* No AD, one empty AD (NULL or not) and two empty ADs are all different S2V inputs. */
    const uint8_t *empties[2] = {field, field};
    size_t elens[2] = {0, 0};
    uint8_t v0[VL_SIV_TAGBYTES + 1], v1[VL_SIV_TAGBYTES + 1], v1n[VL_SIV_TAGBYTES + 1];
    uint8_t v2[VL_SIV_TAGBYTES + 1];
    assert_int_equal(vl_siv_encrypt(v0, key, sizeof(key), NULL, NULL, 0, field, 1), 0);
    assert_int_equal(vl_siv_encrypt(v1, key, sizeof(key), empties, elens, 1, field, 1), 0);
    assert_int_equal(vl_siv_encrypt(v1n, key, sizeof(key), adnull, &zero, 1, field, 1), 0);
    assert_int_equal(vl_siv_encrypt(v2, key, sizeof(key), empties, elens, 2, field, 1), 0);
    assert_memory_equal(v1, v1n, sizeof(v1));
    assert_memory_not_equal(v0, v1, VL_SIV_TAGBYTES);
    assert_memory_not_equal(v1, v2, VL_SIV_TAGBYTES);
    assert_memory_not_equal(v0, v2, VL_SIV_TAGBYTES);

    /* Empty plaintext, for every key size, with and without AD. */
    for (size_t klen = 32; klen <= 64; klen += 16) {
        uint8_t e1[VL_SIV_TAGBYTES], e2[VL_SIV_TAGBYTES], dummy[1] = {0xa5};
        assert_int_equal(vl_siv_encrypt(e1, key, klen, ads, adlens, 1, NULL, 0), 0);
        assert_int_equal(vl_siv_encrypt(e2, key, klen, NULL, NULL, 0, NULL, 0), 0);
        assert_memory_not_equal(e1, e2, VL_SIV_TAGBYTES);
        assert_int_equal(vl_siv_decrypt(dummy, key, klen, ads, adlens, 1, e1, sizeof(e1)), 0);
        assert_int_equal(vl_siv_decrypt(dummy, key, klen, NULL, NULL, 0, e2, sizeof(e2)), 0);
        assert_int_not_equal(vl_siv_decrypt(dummy, key, klen, NULL, NULL, 0, e1, sizeof(e1)),
                             0);
        e1[3] ^= 0x10;
        assert_int_not_equal(vl_siv_decrypt(dummy, key, klen, ads, adlens, 1, e1, sizeof(e1)),
                             0);
    }

    /* Tampering anywhere fails and zeroes the output. */
    memset(m, 0x42, sizeof(m));
    assert_int_equal(vl_siv_encrypt(out1, key, sizeof(key), ads, adlens, 1, m, sizeof(m)), 0);
    for (size_t pos = 0; pos < sizeof(out1); pos += 7) {
        uint8_t got[sizeof(m)];
        out1[pos] ^= 0x80;
        memset(got, 0xa5, sizeof(got));
        assert_int_not_equal(
            vl_siv_decrypt(got, key, sizeof(key), ads, adlens, 1, out1, sizeof(out1)), 0);
        assert_true(is_zero(got, sizeof(got)));
        out1[pos] ^= 0x80;
    }

    /* Argument checks: key sizes, too many AD components, short ciphertext. */
    uint8_t got[sizeof(m)];
    assert_int_not_equal(vl_siv_encrypt(out2, key, 16, ads, adlens, 1, m, sizeof(m)), 0);
    assert_int_not_equal(vl_siv_encrypt(out2, key, 63, ads, adlens, 1, m, sizeof(m)), 0);
    assert_int_not_equal(
        vl_siv_encrypt(out2, key, sizeof(key), ads, adlens, VL_SIV_MAX_AD + 1, m, sizeof(m)), 0);
    assert_int_equal(
        vl_siv_encrypt(out2, key, sizeof(key), ads, adlens, VL_SIV_MAX_AD, m, sizeof(m)), 0);
    assert_int_equal(vl_siv_decrypt(got, key, sizeof(key), ads, adlens, VL_SIV_MAX_AD, out2,
                                    sizeof(out2)),
                     0);
    assert_memory_equal(got, m, sizeof(m));
    assert_int_not_equal(vl_siv_decrypt(got, key, sizeof(key), ads, adlens, 1, out1, 15), 0);
}

/* ---- HKDF, HMAC, SHA-256 ---- */

static void test_hkdf_wycheproof(void **state)
{
    (void)state;
    static const char *file = "vectors/wycheproof/hkdf_sha256_test.json";
    json_t *root = tu_load_json(file);
    size_t gi, ti;
    json_t *g, *t;
    int ran = 0, valid = 0, rejected = 0;

    json_array_foreach(json_object_get(root, "testGroups"), gi, g) {
        json_array_foreach(json_object_get(g, "tests"), ti, t) {
            int tc = (int)json_integer_value(json_object_get(t, "tcId"));
            enum expect ex = result_of(t);
            size_t ikmlen, saltlen, infolen, okmlen;
            size_t size = (size_t)json_integer_value(json_object_get(t, "size"));
            uint8_t *ikm = hexfield(t, "ikm", &ikmlen), *salt = hexfield(t, "salt", &saltlen);
            uint8_t *info = hexfield(t, "info", &infolen), *okm = hexfield(t, "okm", &okmlen);
            uint8_t *out = malloc(size + 1);
            assert_non_null(out);
            int rc = vl_hkdf_sha256(out, size, ikm, ikmlen, salt, saltlen, info, infolen);
            if (ex == EXPECT_VALID) {
                CHECK_TC(rc == 0, file, tc, "hkdf failed");
                CHECK_TC(okmlen == size && memcmp(out, okm, size) == 0, file, tc,
                         "okm mismatch");
                valid++;
            } else if (ex == EXPECT_INVALID) {
                CHECK_TC(rc != 0, file, tc, "invalid size accepted");
                rejected++;
            } else if (rc == 0) {
                CHECK_TC(okmlen == size && memcmp(out, okm, size) == 0, file, tc,
                         "acceptable: mismatch");
            }
            ran++;
            free(ikm);
            free(salt);
            free(info);
            free(okm);
            free(out);
        }
    }
    check_count(root, ran, file);
    assert_int_equal(valid, 83);
    assert_int_equal(rejected, 3);
    json_decref(root);
}

static void test_hkdf_limits(void **state)
{
    (void)state;
    const size_t max = 255 * 32;
    uint8_t *big = malloc(max + 64), small[40], prefix[40];
    const uint8_t ikm[] = "input keying material";
    const uint8_t info[] = "veil/field/v1";
    assert_non_null(big);

    assert_int_equal(vl_hkdf_sha256(big, max, ikm, sizeof(ikm), NULL, 0, info, sizeof(info)),
                     0);
    assert_int_not_equal(
        vl_hkdf_sha256(big, max + 1, ikm, sizeof(ikm), NULL, 0, info, sizeof(info)), 0);
    assert_int_not_equal(
        vl_hkdf_sha256(big, max + 32, ikm, sizeof(ikm), NULL, 0, info, sizeof(info)), 0);
    assert_int_not_equal(
        vl_hkdf_sha256(big, SIZE_MAX, ikm, sizeof(ikm), NULL, 0, info, sizeof(info)), 0);
    /* Shorter outputs are prefixes of longer ones (same T(i) chain). */
    assert_int_equal(
        vl_hkdf_sha256(small, sizeof(small), ikm, sizeof(ikm), NULL, 0, info, sizeof(info)), 0);
    assert_memory_equal(small, big, sizeof(small));
    /* Empty salt equals a salt of 32 zero bytes (RFC 5869 section 2.2). */
    uint8_t zeros[32] = {0};
    assert_int_equal(vl_hkdf_sha256(prefix, sizeof(prefix), ikm, sizeof(ikm), zeros,
                                    sizeof(zeros), info, sizeof(info)),
                     0);
    assert_memory_equal(prefix, small, sizeof(small));
    /* Different info, different key. */
    assert_int_equal(
        vl_hkdf_sha256(prefix, sizeof(prefix), ikm, sizeof(ikm), NULL, 0, info, 3), 0);
    assert_memory_not_equal(prefix, small, sizeof(small));
    assert_int_equal(vl_hkdf_sha256(NULL, 0, ikm, sizeof(ikm), NULL, 0, NULL, 0), 0);
    free(big);
}

static void test_hmac_wycheproof(void **state)
{
    (void)state;
    static const char *file = "vectors/wycheproof/hmac_sha256_test.json";
    json_t *root = tu_load_json(file);
    size_t gi, ti;
    json_t *g, *t;
    int ran = 0, valid = 0, rejected = 0, truncated = 0;

    json_array_foreach(json_object_get(root, "testGroups"), gi, g) {
        size_t tagbytes = (size_t)json_integer_value(json_object_get(g, "tagSize")) / 8;
        assert_true(tagbytes > 0 && tagbytes <= VL_PRF_BYTES);
        json_array_foreach(json_object_get(g, "tests"), ti, t) {
            int tc = (int)json_integer_value(json_object_get(t, "tcId"));
            enum expect ex = result_of(t);
            size_t klen, mlen, taglen;
            uint8_t *key = hexfield(t, "key", &klen), *msg = hexfield(t, "msg", &mlen);
            uint8_t *tag = hexfield(t, "tag", &taglen);
            uint8_t mac[VL_PRF_BYTES];
            vl_hmac_sha256(mac, key, klen, msg, mlen);
            /* A truncated tag is compared as the prefix of the full MAC. */
            int ok = taglen == tagbytes && vl_ct_equal(mac, tag, tagbytes);
            if (ex == EXPECT_VALID) {
                CHECK_TC(ok, file, tc, "tag mismatch");
                valid++;
                truncated += tagbytes < VL_PRF_BYTES;
            } else if (ex == EXPECT_INVALID) {
                CHECK_TC(!ok, file, tc, "invalid tag accepted");
                rejected++;
            }
            ran++;
            free(key);
            free(msg);
            free(tag);
        }
    }
    check_count(root, ran, file);
    assert_int_equal(valid, 66);
    assert_int_equal(rejected, 108);
    assert_true(truncated > 0);
    json_decref(root);
}

static void test_sha256(void **state)
{
    (void)state;
    uint8_t out[VL_SHA256_BYTES];
    size_t n;
    uint8_t *want = tu_unhex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                             &n);
    vl_sha256(out, "abc", 3); /* FIPS 180-2 B.1 */
    assert_memory_equal(out, want, n);
    free(want);
    want = tu_unhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", &n);
    vl_sha256(out, "", 0);
    assert_memory_equal(out, want, n);
    free(want);
    /* FIPS 180-2 B.2, in pieces of every split, empty pieces included */
    static const char msg[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    want = tu_unhex("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1", &n);
    for (size_t a = 0; a <= sizeof(msg) - 1; a++) {
        struct vl_iov v[4] = {{msg, a}, {"", 0}, {msg + a, sizeof(msg) - 1 - a}, {NULL, 0}};
        memset(out, 0, sizeof(out));
        vl_sha256_v(out, v, 4);
        assert_memory_equal(out, want, n);
    }
    free(want);
}

/* ---- Ed25519 ---- */

static void test_ed25519_wycheproof(void **state)
{
    (void)state;
    static const char *file = "vectors/wycheproof/ed25519_test.json";
    json_t *root = tu_load_json(file);
    size_t gi, ti;
    json_t *g, *t;
    int ran = 0, valid = 0, rejected = 0;

    json_array_foreach(json_object_get(root, "testGroups"), gi, g) {
        size_t pklen;
        uint8_t *pk = hexfield(json_object_get(g, "publicKey"), "pk", &pklen);
        assert_int_equal(pklen, VL_SIGN_PUBLICKEYBYTES);
        json_array_foreach(json_object_get(g, "tests"), ti, t) {
            int tc = (int)json_integer_value(json_object_get(t, "tcId"));
            enum expect ex = result_of(t);
            size_t mlen, siglen;
            uint8_t *msg = hexfield(t, "msg", &mlen), *sig = hexfield(t, "sig", &siglen);
            /* A signature that is not 64 bytes cannot be passed to vl_sign_verify. */
            int ok = siglen == VL_SIGN_BYTES && vl_sign_verify(sig, msg, mlen, pk) == 0;
            if (ex == EXPECT_VALID) {
                CHECK_TC(ok, file, tc, "valid signature rejected");
                valid++;
            } else if (ex == EXPECT_INVALID) {
                CHECK_TC(!ok, file, tc, "invalid signature accepted");
                rejected++;
            }
            ran++;
            free(msg);
            free(sig);
        }
        free(pk);
    }
    check_count(root, ran, file);
    assert_int_equal(valid, 88);
    assert_int_equal(rejected, 63);
    json_decref(root);
}

static void test_sign(void **state)
{
    (void)state;
    /* RFC 8032 section 7.1, TEST 1: sk = seed || pk, empty message. */
    size_t n;
    uint8_t *seed = tu_unhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
                             &n);
    uint8_t *pk1 = tu_unhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
                            &n);
    uint8_t *want = tu_unhex("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
                             "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
                             &n);
    uint8_t *sk1 = vl_secret_alloc(VL_SIGN_SECRETKEYBYTES);
    uint8_t sig[VL_SIGN_BYTES];
    assert_non_null(sk1);
    memcpy(sk1, seed, 32);
    memcpy(sk1 + 32, pk1, 32);
    assert_int_equal(vl_sign(sig, (const uint8_t *)"", 0, sk1), 0);
    assert_memory_equal(sig, want, VL_SIGN_BYTES);
    assert_int_equal(vl_sign_verify(sig, (const uint8_t *)"", 0, pk1), 0);
    vl_secret_free(sk1);
    free(seed);
    free(pk1);
    free(want);

    /* Fresh key pair: sign, verify, and reject a changed message, signature or key. */
    uint8_t pk[VL_SIGN_PUBLICKEYBYTES], pk2[VL_SIGN_PUBLICKEYBYTES];
    uint8_t *sk = vl_secret_alloc(VL_SIGN_SECRETKEYBYTES);
    uint8_t *sk2 = vl_secret_alloc(VL_SIGN_SECRETKEYBYTES);
    const uint8_t head[] = "tree head: size 42, root ...";
    assert_non_null(sk);
    assert_non_null(sk2);
    assert_int_equal(vl_sign_keypair(pk, sk), 0);
    assert_int_equal(vl_sign_keypair(pk2, sk2), 0);
    assert_memory_not_equal(pk, pk2, sizeof(pk));
    assert_int_equal(vl_sign(sig, head, sizeof(head), sk), 0);
    assert_int_equal(vl_sign_verify(sig, head, sizeof(head), pk), 0);
    assert_int_not_equal(vl_sign_verify(sig, head, sizeof(head) - 1, pk), 0);
    assert_int_not_equal(vl_sign_verify(sig, head, sizeof(head), pk2), 0);
    sig[10] ^= 0x04;
    assert_int_not_equal(vl_sign_verify(sig, head, sizeof(head), pk), 0);
    vl_secret_free(sk);
    vl_secret_free(sk2);
}

/* ---- padding ---- */

static void test_pad_len(void **state)
{
    (void)state;
    static const size_t cases[][2] = {
        {0, 16},       {1, 16},       {15, 16},      {16, 32},      {31, 32},
        {32, 64},      {63, 64},      {64, 128},     {127, 128},    {128, 256},
        {255, 256},    {256, 512},    {1000, 1024},  {1023, 1024},  {1024, 2048},
        {2047, 2048},  {2048, 4096},  {4095, 4096},  {4096, 8192},  {4097, 8192},
        {8191, 8192},  {8192, 12288}, {12287, 12288}, {12288, 16384}, {100000, 102400},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (vl_pad_len(cases[i][0]) != cases[i][1]) {
            fail_msg("vl_pad_len(%zu) = %zu, want %zu", cases[i][0], vl_pad_len(cases[i][0]),
                     cases[i][1]);
        }
    }
    /* The rule, checked for every length up to 3 * 4096: at least one padding byte,
     * monotone, powers of two up to 4096 and multiples of 4096 above. */
    size_t prev = 16;
    for (size_t len = 0; len <= 3 * 4096; len++) {
        size_t p = vl_pad_len(len);
        assert_true(p > len && p >= 16 && p >= prev);
        if (p <= 4096) {
            assert_true((p & (p - 1)) == 0);
            assert_true(p == 16 || p / 2 < len + 1);
        } else {
            assert_true(p % 4096 == 0 && p - 4096 < len + 1);
        }
        prev = p;
    }
    assert_int_equal(vl_pad_len(SIZE_MAX), 0);
    /* SIZE_MAX + 1 is a multiple of 4096, so the largest bucket is SIZE_MAX - 8191. */
    assert_true(vl_pad_len(SIZE_MAX - 8192) == SIZE_MAX - 8191);
    assert_int_equal(vl_pad_len(SIZE_MAX - 8191), 0);
}

static void test_pad_roundtrip(void **state)
{
    (void)state;
    uint8_t *buf = malloc(vl_pad_len(5000));
    uint8_t *orig = malloc(5000);
    assert_non_null(buf);
    assert_non_null(orig);
    vl_random(orig, 5000);
    for (size_t len = 0; len <= 5000; len++) {
        size_t padded = vl_pad_len(len), got = 0;
        memcpy(buf, orig, len);
        memset(buf + len, 0xcc, padded - len);
        vl_pad(buf, len);
        if (buf[len] != 0x80 || !is_zero(buf + len + 1, padded - len - 1) ||
            memcmp(buf, orig, len) != 0) {
            fail_msg("vl_pad: bad padding for length %zu", len);
        }
        if (vl_unpad(buf, padded, &got) != 0 || got != len) {
            fail_msg("vl_unpad: round trip failed for length %zu", len);
        }
    }
    free(buf);
    free(orig);
}

static void test_unpad_malformed(void **state)
{
    (void)state;
    uint8_t buf[8192];
    size_t len = 777;

    /* All zeros: no marker. */
    memset(buf, 0, sizeof(buf));
    assert_int_not_equal(vl_unpad(buf, 16, &len), 0);
    assert_int_not_equal(vl_unpad(buf, 4096, &len), 0);
    /* A non-zero byte after the marker. */
    memset(buf, 'x', 16);
    vl_pad(buf, 5);
    buf[12] = 0x01;
    assert_int_not_equal(vl_unpad(buf, 16, &len), 0);
    /* Last byte neither zero nor the marker. */
    memset(buf, 'x', 16);
    assert_int_not_equal(vl_unpad(buf, 16, &len), 0);
    /* Marker 0x81 / 0x00 instead of 0x80. */
    memset(buf, 'x', 16);
    vl_pad(buf, 5);
    buf[5] = 0x81;
    assert_int_not_equal(vl_unpad(buf, 16, &len), 0);
    /* Too short to be a bucket, or not a bucket length at all. */
    memset(buf, 'x', 16);
    vl_pad(buf, 5);
    assert_int_not_equal(vl_unpad(buf, 0, &len), 0);
    assert_int_not_equal(vl_unpad(buf, 8, &len), 0);
    memset(buf, 'x', 24);
    buf[20] = 0x80;
    memset(buf + 21, 0, 3);
    assert_int_not_equal(vl_unpad(buf, 24, &len), 0);
    /* Well-formed 7816-4 padding but in the wrong bucket: 5 bytes padded to 32. */
    memset(buf, 'x', 32);
    buf[5] = 0x80;
    memset(buf + 6, 0, 26);
    assert_int_not_equal(vl_unpad(buf, 32, &len), 0);
    /* The same content in the right bucket is accepted. */
    assert_int_equal(vl_unpad(buf, 16, &len), 0);
    assert_int_equal(len, 5);
    /* 4096 bytes of content must be in the 8192 bucket, not padded by one byte to 4097. */
    memset(buf, 'x', 8192);
    buf[4096] = 0x80;
    size_t before = len;
    assert_int_not_equal(vl_unpad(buf, 4097, &len), 0);
    assert_int_equal(len, before); /* untouched on failure */
    memset(buf + 4097, 0, 8192 - 4097);
    assert_int_equal(vl_unpad(buf, 8192, &len), 0);
    assert_int_equal(len, 4096);
}

/* ---- randomness, secret memory, comparison, passphrases ---- */

static void test_secret_and_random(void **state)
{
    (void)state;
    uint8_t *s = vl_secret_alloc(100);
    assert_non_null(s);
    memset(s, 0x5a, 100); /* writable over its whole length */
    vl_random(s, 100);
    vl_secret_free(s);
    vl_secret_free(NULL);

    uint8_t *big = vl_secret_alloc(1 << 20);
    assert_non_null(big);
    big[0] = 1;
    big[(1 << 20) - 1] = 2;
    vl_secret_free(big);

    uint8_t a[32], b[32];
    vl_random(a, sizeof(a));
    vl_random(b, sizeof(b));
    assert_memory_not_equal(a, b, sizeof(a));
    assert_false(is_zero(a, sizeof(a)));
    vl_random(a, 0);

    memcpy(b, a, sizeof(a));
    assert_int_equal(vl_ct_equal(a, b, sizeof(a)), 1);
    b[31] ^= 1;
    assert_int_equal(vl_ct_equal(a, b, sizeof(a)), 0);
    assert_int_equal(vl_ct_equal(a, b, 31), 1);
    b[0] ^= 0x80;
    assert_int_equal(vl_ct_equal(a, b, 31), 0);
    assert_int_equal(vl_ct_equal(a, b, 0), 1);
}

static void test_pwhash(void **state)
{
    (void)state;
    uint8_t salt[VL_PWHASH_SALTBYTES], k1[32], k2[32], k3[32];
    const char pass[] = "correct horse battery staple";
    memset(salt, 7, sizeof(salt));
    assert_int_equal(vl_pwhash(k1, sizeof(k1), pass, strlen(pass), salt), 0);
    assert_int_equal(vl_pwhash(k2, sizeof(k2), pass, strlen(pass), salt), 0);
    assert_memory_equal(k1, k2, sizeof(k1));
    salt[0] ^= 1;
    assert_int_equal(vl_pwhash(k3, sizeof(k3), pass, strlen(pass), salt), 0);
    assert_memory_not_equal(k1, k3, sizeof(k1));
    assert_int_not_equal(vl_pwhash(k3, 8, pass, strlen(pass), salt), 0); /* below BYTES_MIN */
}

static int setup(void **state)
{
    (void)state;
    return vl_crypto_init() == 0 && vl_crypto_init() == 0 ? 0 : -1;
}

/* The set hashes: arithmetic modulo 2^127 - 1, telescoping runs, and what tells sets
 * apart. */
static void test_sethash(void **state)
{
    (void)state;
    const vl_u128 p = ((vl_u128)1 << 127) - 1;
    assert_true(vl_set_add(p - 1, 1) == 0);
    assert_true(vl_set_add(p - 1, p - 1) == p - 2);
    assert_true(vl_set_sub(0, 1) == p - 1);
    assert_true(vl_set_sub(5, 7) == p - 2);
    uint8_t b[VL_SETSUM_BYTES];
    vl_u128 x = 0;
    vl_set_store(b, p - 3);
    assert_true(vl_set_load(b, sizeof(b), &x) && x == p - 3);
    vl_set_store(b, p); /* p itself is no residue */
    assert_false(vl_set_load(b, sizeof(b), &x));
    assert_false(vl_set_load(b, sizeof(b) - 1, &x));

    uint8_t key[32], tk1[VL_TK_BYTES], tk2[VL_TK_BYTES], col[16], tok[8];
    memset(key, 7, sizeof(key));
    memset(col, 1, sizeof(col));
    memset(tok, 2, sizeof(tok));
    vl_tk(tk1, key, 0x0102, col, sizeof(col), tok, sizeof(tok));
    assert_int_equal(tk1[0], 0x01); /* the class leads, for the trusted state's order */
    assert_int_equal(tk1[1], 0x02);
    tok[0] ^= 1;
    vl_tk(tk2, key, 0x0102, col, sizeof(col), tok, sizeof(tok));
    assert_memory_not_equal(tk1 + 2, tk2 + 2, VL_TK_BYTES - 2);
    key[0] ^= 1; /* another collection's key: another token key */
    tok[0] ^= 1;
    vl_tk(tk2, key, 0x0102, col, sizeof(col), tok, sizeof(tok));
    assert_memory_not_equal(tk1 + 2, tk2 + 2, VL_TK_BYTES - 2);
    key[0] ^= 1; /* the same token in another class: the same secret part */
    vl_tk(tk2, key, 0x0300, col, sizeof(col), tok, sizeof(tok));
    assert_int_equal(tk2[0], 0x03);
    assert_int_equal(tk2[1], 0x00);
    assert_memory_equal(tk1 + 2, tk2 + 2, VL_TK_BYTES - 2);

    /* A run sums to its members one by one; overlapping or shifted runs do not. */
    vl_u128 one = 0;
    for (uint64_t q = 1000; q <= 1010; q++) {
        one = vl_set_add(one, vl_set_a(tk1, q));
        assert_true(vl_set_a(tk1, q) < p);
    }
    assert_true(vl_set_run(tk1, 1000, 1010) == one);
    assert_true(vl_set_add(vl_set_run(tk1, 1000, 1004), vl_set_run(tk1, 1005, 1010)) == one);
    assert_false(vl_set_run(tk1, 1001, 1011) == one);
    assert_false(vl_set_add(vl_set_run(tk1, 1000, 1005), vl_set_run(tk1, 1005, 1010)) == one);
    assert_false(vl_set_run(tk2, 1000, 1010) == one);
    /* Document values differ by document and by token key. */
    uint8_t d1[32], d2[32];
    memset(d1, 3, sizeof(d1));
    memcpy(d2, d1, sizeof(d2));
    d2[31] ^= 0x80;
    assert_false(vl_set_q(tk1, d1, 32) == vl_set_q(tk1, d2, 32));
    assert_false(vl_set_q(tk1, d1, 32) == vl_set_q(tk2, d1, 32));
    assert_true(vl_set_q(tk1, d1, 32) == vl_set_q(tk1, d1, 32));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xchacha_wycheproof),
        cmocka_unit_test(test_aead_box),
        cmocka_unit_test(test_siv_wycheproof),
        cmocka_unit_test(test_siv_rfc5297),
        cmocka_unit_test(test_siv_behaviour),
        cmocka_unit_test(test_hkdf_wycheproof),
        cmocka_unit_test(test_hkdf_limits),
        cmocka_unit_test(test_hmac_wycheproof),
        cmocka_unit_test(test_sha256),
        cmocka_unit_test(test_ed25519_wycheproof),
        cmocka_unit_test(test_sign),
        cmocka_unit_test(test_pad_len),
        cmocka_unit_test(test_pad_roundtrip),
        cmocka_unit_test(test_unpad_malformed),
        cmocka_unit_test(test_secret_and_random),
        cmocka_unit_test(test_pwhash),
        cmocka_unit_test(test_sethash),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
