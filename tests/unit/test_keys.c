/*
 * test_keys.c: the key hierarchy of src/keys: the local keyring (plain and passphrase key
 * files, their modes and refusals), wrapping and unwrapping tenant keys (bound to their
 * associated data, tamper-evident, never leaving partial output), and subkey derivation
 * (every input changes the key; a known answer pins the derivation format).
 *
 * Nothing here prints a key. The golden subkeys below derive from a fixed, public test
 * tenant key (bytes 0..31), not from any real key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "crypto/crypto.h"
#include "keys/keys.h"
#include "testutil.h"

#define PASS_ENV "VEIL_TEST_KEYS_PASSPHRASE"
#define SECRET_LEN VL_TENANT_KEYBYTES

struct fx {
    char *dir;
    char *plain;  /* dir/plain.key */
    char *sealed; /* dir/sealed.key (passphrase) */
};

static char *path_in(const char *dir, const char *rel)
{
    char *p = NULL;
    assert_true(asprintf(&p, "%s/%s", dir, rel) > 0);
    return p;
}

static int setup(void **state)
{
    assert_int_equal(vl_crypto_init(), 0);
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->dir = tu_tempdir();
    f->plain = path_in(f->dir, "plain.key");
    f->sealed = path_in(f->dir, "sealed.key");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    unsetenv(PASS_ENV);
    tu_rmtree(f->dir);
    free(f->plain);
    free(f->sealed);
    free(f->dir);
    free(f);
    return 0;
}

static struct vl_keyring *open_ok(const char *path, const char *env)
{
    struct vl_keyring *k = NULL;
    veil_status st;
    veil_err rc = vl_keyring_local_open(path, env, &k, &st);
    if (rc != VEIL_OK) {
        fprintf(stderr, "open: %s: %s\n", veil_err_name(rc), st.message);
    }
    assert_int_equal(rc, VEIL_OK);
    assert_non_null(k);
    assert_non_null(k->ops);
    assert_int_equal(k->ops->version, 1);
    assert_string_equal(k->ops->type, "local");
    return k;
}

static void make_ad(struct vl_buf *ad, const char *tenant, uint32_t version)
{
    vl_buf_init(ad, 4096);
    assert_int_equal(vl_tenant_key_ad(ad, tenant, version), VEIL_OK);
}

/* Wraps `secret` under k for (tenant, version); returns the blob in *out. */
static void wrap(struct vl_keyring *k, const uint8_t *secret, const char *tenant, uint32_t version,
                 struct vl_buf *out)
{
    struct vl_buf ad;
    make_ad(&ad, tenant, version);
    vl_buf_init(out, 4096);
    assert_int_equal(k->ops->wrap(k, secret, SECRET_LEN, ad.data, ad.len, out), VEIL_OK);
    assert_int_equal(out->len, vl_aead_box_len(SECRET_LEN));
    vl_buf_free(&ad);
}

/* Unwraps; on failure the output must be all zero (never partial data). */
static veil_err unwrap(struct vl_keyring *k, const uint8_t *blob, size_t n, const char *tenant,
                       uint32_t version, uint8_t *out)
{
    struct vl_buf ad;
    make_ad(&ad, tenant, version);
    memset(out, 0xee, SECRET_LEN);
    veil_err rc = k->ops->unwrap(k, blob, n, ad.data, ad.len, out, SECRET_LEN);
    if (rc != VEIL_OK) {
        static const uint8_t zero[SECRET_LEN];
        /* Either untouched or zeroed: no byte of a failed decryption may show. */
        bool untouched = true, zeroed = true;
        for (size_t i = 0; i < SECRET_LEN; i++) {
            untouched &= out[i] == 0xee;
        }
        zeroed = memcmp(out, zero, SECRET_LEN) == 0;
        assert_true(untouched || zeroed);
    }
    vl_buf_free(&ad);
    return rc;
}

static off_t file_size(const char *path, mode_t *mode)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    if (mode != NULL) {
        *mode = sb.st_mode & 07777;
    }
    return sb.st_size;
}

/* ---- the local keyring ---- */

static void test_local_plain(void **state)
{
    struct fx *f = *state;
    veil_status st;
    assert_int_equal(vl_keyring_local_create(f->plain, NULL, &st), VEIL_OK);
    mode_t mode;
    assert_int_equal(file_size(f->plain, &mode), VL_ROOT_KEYBYTES);
    assert_int_equal(mode, 0600);
    /* Never overwritten. */
    size_t n0 = 0;
    char *before = tu_read_file(f->plain, &n0);
    assert_int_equal(vl_keyring_local_create(f->plain, NULL, &st), VEIL_ERR_CONFLICT);
    size_t n1 = 0;
    char *after = tu_read_file(f->plain, &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(before, after, n0);
    free(before);
    free(after);

    /* Round trip, across two openings of the same file. */
    uint8_t secret[SECRET_LEN], out[SECRET_LEN];
    vl_random(secret, sizeof(secret));
    struct vl_keyring *k = open_ok(f->plain, NULL);
    struct vl_buf blob, blob2;
    wrap(k, secret, "acme", 1, &blob);
    wrap(k, secret, "acme", 1, &blob2);
    /* Randomized: the same secret wraps differently each time, and never shows. */
    assert_memory_not_equal(blob.data, blob2.data, blob.len);
    assert_null(memmem(blob.data, blob.len, secret, sizeof(secret)));
    vl_keyring_close(k);
    k = open_ok(f->plain, NULL);
    assert_int_equal(unwrap(k, blob.data, blob.len, "acme", 1, out), VEIL_OK);
    assert_memory_equal(out, secret, sizeof(secret));
    assert_int_equal(unwrap(k, blob2.data, blob2.len, "acme", 1, out), VEIL_OK);
    assert_memory_equal(out, secret, sizeof(secret));
    vl_keyring_close(k);
    vl_keyring_close(NULL);
    vl_buf_free(&blob);
    vl_buf_free(&blob2);
}

static void test_local_refusals(void **state)
{
    struct fx *f = *state;
    veil_status st;
    struct vl_keyring *k = NULL;
    /* Missing file. */
    assert_int_equal(vl_keyring_local_open(f->plain, NULL, &k, &st), VEIL_ERR_NOT_FOUND);
    assert_null(k);
    assert_string_equal(st.field, "keyring");
    /* Readable by others. */
    assert_int_equal(vl_keyring_local_create(f->plain, NULL, &st), VEIL_OK);
    static const mode_t modes[] = {0644, 0640, 0604, 0700 | 0004, 0660};
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        assert_int_equal(chmod(f->plain, modes[i]), 0);
        assert_int_equal(vl_keyring_local_open(f->plain, NULL, &k, &st), VEIL_ERR_FORBIDDEN);
        assert_null(k);
    }
    assert_int_equal(chmod(f->plain, 0400), 0);
    k = open_ok(f->plain, NULL);
    vl_keyring_close(k);
    k = NULL;
    /* Wrong sizes. */
    char *odd = path_in(f->dir, "odd.key");
    static const size_t sizes[] = {0, 1, 31, 33, 200};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        unlink(odd);
        FILE *fp = fopen(odd, "wb");
        assert_non_null(fp);
        for (size_t b = 0; b < sizes[i]; b++) {
            fputc((int)b, fp);
        }
        fclose(fp);
        assert_int_equal(chmod(odd, 0600), 0);
        assert_int_equal(vl_keyring_local_open(odd, NULL, &k, &st), VEIL_ERR_BAD_REQUEST);
        assert_null(k);
    }
    free(odd);
    /* A plain key file opened as a passphrase one is refused, not misread. */
    setenv(PASS_ENV, "pw", 1);
    assert_int_not_equal(vl_keyring_local_open(f->plain, PASS_ENV, &k, &st), VEIL_OK);
    assert_null(k);
    /* A directory that does not exist. */
    char *nodir = path_in(f->dir, "no/such/dir.key");
    assert_int_not_equal(vl_keyring_local_create(nodir, NULL, &st), VEIL_OK);
    free(nodir);
}

static void test_local_passphrase(void **state)
{
    struct fx *f = *state;
    veil_status st;
    struct vl_keyring *k = NULL;
    /* The variable must be set (and not empty) to create. */
    unsetenv(PASS_ENV);
    assert_int_equal(vl_keyring_local_create(f->sealed, PASS_ENV, &st), VEIL_ERR_BAD_REQUEST);
    assert_int_equal(access(f->sealed, F_OK), -1);
    setenv(PASS_ENV, "", 1);
    assert_int_equal(vl_keyring_local_create(f->sealed, PASS_ENV, &st), VEIL_ERR_BAD_REQUEST);
    assert_int_equal(access(f->sealed, F_OK), -1);

    setenv(PASS_ENV, "correct horse battery staple", 1);
    assert_int_equal(vl_keyring_local_create(f->sealed, PASS_ENV, &st), VEIL_OK);
    mode_t mode;
    off_t size = file_size(f->sealed, &mode);
    assert_int_equal(mode, 0600);
    assert_true(size > VL_ROOT_KEYBYTES);
    size_t n = 0;
    char *file = tu_read_file(f->sealed, &n);
    assert_non_null(file);
    assert_memory_equal(file, "VEILKEY1", 8);

    uint8_t secret[SECRET_LEN], out[SECRET_LEN];
    vl_random(secret, sizeof(secret));
    k = open_ok(f->sealed, PASS_ENV);
    struct vl_buf blob;
    wrap(k, secret, "acme", 1, &blob);
    vl_keyring_close(k);
    k = open_ok(f->sealed, PASS_ENV);
    assert_int_equal(unwrap(k, blob.data, blob.len, "acme", 1, out), VEIL_OK);
    assert_memory_equal(out, secret, sizeof(secret));
    vl_keyring_close(k);
    k = NULL;

    /* Wrong, missing, empty passphrase; no passphrase configured. */
    setenv(PASS_ENV, "correct horse battery stapler", 1);
    assert_int_equal(vl_keyring_local_open(f->sealed, PASS_ENV, &k, &st), VEIL_ERR_UNAUTHENTICATED);
    assert_null(k);
    assert_null(strstr(st.message, "stapler"));
    unsetenv(PASS_ENV);
    assert_int_equal(vl_keyring_local_open(f->sealed, PASS_ENV, &k, &st), VEIL_ERR_BAD_REQUEST);
    assert_null(k);
    setenv(PASS_ENV, "", 1);
    assert_int_equal(vl_keyring_local_open(f->sealed, PASS_ENV, &k, &st), VEIL_ERR_BAD_REQUEST);
    assert_null(k);
    assert_int_equal(vl_keyring_local_open(f->sealed, NULL, &k, &st), VEIL_ERR_BAD_REQUEST);
    assert_null(k);

    /* Any byte of the file altered (version, salt, nonce, ciphertext, tag): refused. */
    setenv(PASS_ENV, "correct horse battery staple", 1);
    for (size_t pos = 8; pos < n; pos += 7) {
        file[pos] ^= 0x20;
        unlink(f->sealed);
        FILE *fp = fopen(f->sealed, "wb");
        assert_non_null(fp);
        assert_int_equal(fwrite(file, 1, n, fp), n);
        fclose(fp);
        assert_int_equal(chmod(f->sealed, 0600), 0);
        veil_err rc = vl_keyring_local_open(f->sealed, PASS_ENV, &k, &st);
        assert_true(rc == VEIL_ERR_UNAUTHENTICATED || rc == VEIL_ERR_BAD_REQUEST);
        assert_null(k);
        file[pos] ^= 0x20;
    }
    free(file);
    vl_buf_free(&blob);
}

/* ---- wrapping ---- */

static void test_unwrap_refusals(void **state)
{
    struct fx *f = *state;
    veil_status st;
    assert_int_equal(vl_keyring_local_create(f->plain, NULL, &st), VEIL_OK);
    char *other = path_in(f->dir, "other.key");
    assert_int_equal(vl_keyring_local_create(other, NULL, &st), VEIL_OK);
    struct vl_keyring *k = open_ok(f->plain, NULL);
    struct vl_keyring *k2 = open_ok(other, NULL);
    uint8_t secret[SECRET_LEN], out[SECRET_LEN];
    vl_random(secret, sizeof(secret));
    struct vl_buf blob;
    wrap(k, secret, "acme", 1, &blob);

    /* Bound to its tenant and version. */
    assert_int_equal(unwrap(k, blob.data, blob.len, "acme", 2, out), VEIL_ERR_INTEGRITY);
    assert_int_equal(unwrap(k, blob.data, blob.len, "acmf", 1, out), VEIL_ERR_INTEGRITY);
    assert_int_equal(unwrap(k, blob.data, blob.len, "acm", 1, out), VEIL_ERR_INTEGRITY);
    assert_int_equal(unwrap(k, blob.data, blob.len, "", 1, out), VEIL_ERR_INTEGRITY);
    /* Raw AD that is not a tenant-key AD. */
    memset(out, 0xee, sizeof(out));
    assert_int_equal(
        k->ops->unwrap(k, blob.data, blob.len, (const uint8_t *)"x", 1, out, SECRET_LEN),
        VEIL_ERR_INTEGRITY);
    /* Under another root key. */
    assert_int_equal(unwrap(k2, blob.data, blob.len, "acme", 1, out), VEIL_ERR_INTEGRITY);
    /* Every bit of the blob matters. */
    for (size_t i = 0; i < blob.len; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            blob.data[i] ^= (uint8_t)(1u << bit);
            assert_int_equal(unwrap(k, blob.data, blob.len, "acme", 1, out), VEIL_ERR_INTEGRITY);
            blob.data[i] ^= (uint8_t)(1u << bit);
        }
    }
    /* Truncated, extended, empty, or asked for another length. */
    assert_int_equal(unwrap(k, blob.data, blob.len - 1, "acme", 1, out), VEIL_ERR_INTEGRITY);
    assert_int_equal(unwrap(k, blob.data, 0, "acme", 1, out), VEIL_ERR_INTEGRITY);
    uint8_t longer[vl_aead_box_len(SECRET_LEN) + 1];
    memcpy(longer, blob.data, blob.len);
    longer[blob.len] = 0;
    assert_int_equal(unwrap(k, longer, sizeof(longer), "acme", 1, out), VEIL_ERR_INTEGRITY);
    struct vl_buf ad;
    make_ad(&ad, "acme", 1);
    uint8_t small[SECRET_LEN - 1];
    assert_int_equal(k->ops->unwrap(k, blob.data, blob.len, ad.data, ad.len, small, sizeof(small)),
                     VEIL_ERR_INTEGRITY);
    vl_buf_free(&ad);
    /* And intact, it still opens. */
    assert_int_equal(unwrap(k, blob.data, blob.len, "acme", 1, out), VEIL_OK);
    assert_memory_equal(out, secret, sizeof(secret));
    vl_keyring_close(k);
    vl_keyring_close(k2);
    vl_buf_free(&blob);
    free(other);
}

static void test_tenant_key_ad(void **state)
{
    (void)state;
    struct vl_buf a, b;
    make_ad(&a, "acme", 1);
    make_ad(&b, "acme", 2);
    assert_true(a.len != b.len || memcmp(a.data, b.data, a.len) != 0);
    vl_buf_free(&b);
    make_ad(&b, "acme1", 1);
    assert_true(a.len != b.len || memcmp(a.data, b.data, a.len) != 0);
    vl_buf_free(&b);
    make_ad(&b, "acme", 1);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);
    /* Its format: lp("tenant-key") lp(tenant) u32(version). */
    static const uint8_t want[] = {0,   0, 0, 10, 't', 'e', 'n', 'a', 'n', 't', '-', 'k', 'e',
                                   'y', 0, 0, 0,  4,   'a', 'c', 'm', 'e', 0,   0,   0,   1};
    assert_int_equal(a.len, sizeof(want));
    assert_memory_equal(a.data, want, sizeof(want));
    vl_buf_free(&a);
    vl_buf_free(&b);
}

/* ---- subkeys ---- */

static void tenant_key(uint8_t k[VL_TENANT_KEYBYTES])
{
    for (size_t i = 0; i < VL_TENANT_KEYBYTES; i++) {
        k[i] = (uint8_t)i;
    }
}

struct sk_in {
    const char *tenant, *coll, *field, *purpose;
    uint32_t version;
};

static void subkey(const uint8_t *tk, const struct sk_in *in, uint8_t *out, size_t n)
{
    assert_int_equal(
        vl_subkey(out, n, tk, in->tenant, in->coll, in->field, in->purpose, in->version), VEIL_OK);
}

static void test_subkey_distinct(void **state)
{
    (void)state;
    uint8_t tk[VL_TENANT_KEYBYTES];
    tenant_key(tk);
    static const struct sk_in ins[] = {
        {"acme", "invoices", "amount", "aead", 1},
        {"acme2", "invoices", "amount", "aead", 1}, /* tenant */
        {"acme", "invoices2", "amount", "aead", 1}, /* collection */
        {"acme", "invoices", "amount2", "aead", 1}, /* field */
        {"acme", "invoices", "amount", "eq", 1},    /* purpose */
        {"acme", "invoices", "amount", "aead", 2},  /* key version */
        {"acme", "invoices", "", "aead", 1},        /* empty field */
        {"acmei", "nvoices", "amount", "aead", 1},  /* the same bytes, cut elsewhere */
        {"acme", "invoicesamount", "", "aead", 1},
        {"acme", "invoices", "amountaead", "", 1},
        {"", "acmeinvoices", "amount", "aead", 1},
        {"acme", "invoices", "amount", "aead", 0x01000000u}, /* byte order of the version */
        {"acme", "invoices", "customer.iban", "mask", 1},
        {"acme", "invoices", "customer", "iban", 1},
    };
    enum { N = sizeof(ins) / sizeof(ins[0]) };
    uint8_t keys[N][32];
    for (size_t i = 0; i < N; i++) {
        subkey(tk, &ins[i], keys[i], sizeof(keys[i]));
        for (size_t j = 0; j < i; j++) {
            if (memcmp(keys[i], keys[j], sizeof(keys[i])) == 0) {
                fprintf(stderr, "subkeys %zu and %zu are equal\n", j, i);
                fail();
            }
        }
    }
    /* Deterministic. */
    uint8_t again[32];
    subkey(tk, &ins[0], again, sizeof(again));
    assert_memory_equal(again, keys[0], sizeof(again));
    /* Another tenant key, another subkey. */
    uint8_t tk2[VL_TENANT_KEYBYTES];
    memcpy(tk2, tk, sizeof(tk2));
    tk2[31] ^= 1;
    subkey(tk2, &ins[0], again, sizeof(again));
    assert_memory_not_equal(again, keys[0], sizeof(again));
    /* A subkey is not the tenant key. */
    assert_memory_not_equal(keys[0], tk, sizeof(tk));
}

/* Known answers. They pin the derivation format, HKDF-SHA256 (empty salt) with info
 * "veil/v1/" || lp(tenant) || lp(collection) || lp(field) || lp(purpose) || u32(version),
 * lp = u32 big-endian length: every stored key depends on it, so a change here makes all
 * existing data unreadable and must show in a diff. Computed once with an independent
 * implementation (Python hmac/hashlib, RFC 5869) from the tenant key 00 01 02 .. 1f. */
static void test_subkey_known_answer(void **state)
{
    (void)state;
    static const struct {
        struct sk_in in;
        size_t n;
        const char *hex;
    } kat[] = {
        {{"acme", "invoices", "amount", "aead", 1},
         32,
         "71215478a2acb2d3053239b6539d9558e22ca88ff2c89547caeedeee338b2739"},
        {{"acme", "invoices", "", "doc", 7},
         32,
         "b5430575ddb51d354ffdbdabf76cfaa8a5327f61e6678b8c7226055c9395f04d"},
        {{"tenant-b", "patients", "notes.text", "search", 4294967295u},
         64,
         "746e339530d4fa248abfb2d50004bfa12fc2ed15e60baaf15f60cff73c1012fa"
         "6d22ec1316e6994b2c518e2e071b615d1d285d8a023c6d4e6a857138b8aa732c"},
    };
    uint8_t tk[VL_TENANT_KEYBYTES];
    tenant_key(tk);
    for (size_t i = 0; i < sizeof(kat) / sizeof(kat[0]); i++) {
        uint8_t out[64];
        size_t wlen = 0;
        uint8_t *want = tu_unhex(kat[i].hex, &wlen);
        assert_int_equal(wlen, kat[i].n);
        subkey(tk, &kat[i].in, out, kat[i].n);
        if (memcmp(out, want, kat[i].n) != 0) {
            fprintf(stderr, "known answer %zu differs: the subkey derivation changed\n", i);
            fail();
        }
        /* A shorter subkey is a prefix of the longer one (HKDF-Expand). */
        uint8_t shorter[16];
        subkey(tk, &kat[i].in, shorter, sizeof(shorter));
        assert_memory_equal(shorter, want, sizeof(shorter));
        free(want);
    }
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_local_plain),         T(test_local_refusals), T(test_local_passphrase),
        T(test_unwrap_refusals),     T(test_tenant_key_ad),  T(test_subkey_distinct),
        T(test_subkey_known_answer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
