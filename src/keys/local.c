/*
 * local.c: the local keyring. The root key is 32 random bytes in a file of mode 0600, or,
 * with a passphrase, that key sealed with XChaCha20-Poly1305 under an Argon2id-derived key:
 *
 *     "VEILKEY1" || u8 1 || salt (16) || box(nonce || ciphertext || tag)
 *
 * The root key stays in locked memory for the life of the keyring and only ever wraps and
 * unwraps tenant keys (XChaCha20-Poly1305, with the tenant and key version as AAD). Every
 * buffer that holds it, or the key file's contents, is vl_secret_alloc'd.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/crypto.h"
#include "keys/keys.h"

#define MAGIC "VEILKEY1"
#define MAGIC_LEN 8
#define SEALED_LEN (MAGIC_LEN + 1 + VL_PWHASH_SALTBYTES + vl_aead_box_len(VL_ROOT_KEYBYTES))
#define MAX_PASSPHRASE 1024

struct local_keyring {
    struct vl_keyring base;
    uint8_t *root; /* VL_ROOT_KEYBYTES, secret memory */
};

static const char wrap_ad_prefix[] = "veil/v1/wrap";

static veil_err wrap_ad(struct vl_buf *b, const uint8_t *ad, size_t adlen)
{
    veil_err rc = vl_buf_put_lps(b, wrap_ad_prefix);
    return rc != VEIL_OK ? rc : vl_buf_put_lp(b, ad, adlen);
}

static veil_err local_wrap(struct vl_keyring *k, const uint8_t *secret, size_t n,
                           const uint8_t *ad, size_t adlen, struct vl_buf *out)
{
    struct local_keyring *lk = (struct local_keyring *)k;
    struct vl_buf a;
    vl_buf_init(&a, 4096);
    veil_err rc = wrap_ad(&a, ad, adlen);
    uint8_t *box = malloc(vl_aead_box_len(n));
    if (rc == VEIL_OK && box == NULL) {
        rc = VEIL_ERR_INTERNAL;
    }
    if (rc == VEIL_OK && vl_aead_box_seal(box, secret, n, a.data, a.len, lk->root) != 0) {
        rc = VEIL_ERR_INTERNAL;
    }
    if (rc == VEIL_OK) {
        rc = vl_buf_append(out, box, vl_aead_box_len(n));
    }
    free(box);
    vl_buf_free(&a);
    return rc;
}

static veil_err local_unwrap(struct vl_keyring *k, const uint8_t *blob, size_t bloblen,
                             const uint8_t *ad, size_t adlen, uint8_t *secret, size_t n)
{
    struct local_keyring *lk = (struct local_keyring *)k;
    if (bloblen != vl_aead_box_len(n)) {
        return VEIL_ERR_INTEGRITY;
    }
    struct vl_buf a;
    vl_buf_init(&a, 4096);
    veil_err rc = wrap_ad(&a, ad, adlen);
    size_t mlen = 0;
    if (rc == VEIL_OK &&
        (vl_aead_box_open(secret, &mlen, blob, bloblen, a.data, a.len, lk->root) != 0 ||
         mlen != n)) {
        rc = VEIL_ERR_INTEGRITY;
    }
    vl_buf_free(&a);
    return rc;
}

static void local_close(struct vl_keyring *k)
{
    struct local_keyring *lk = (struct local_keyring *)k;
    vl_secret_free(lk->root);
    free(lk);
}

static const struct vl_keyring_ops local_ops = {
    .version = 1,
    .type = "local",
    .wrap = local_wrap,
    .unwrap = local_unwrap,
    .close = local_close,
};

/* Derives the key-file encryption key from the passphrase in $env into kek. */
static veil_err passphrase_key(uint8_t *kek, const char *env, const uint8_t *salt,
                               veil_status *st)
{
    const char *pass = getenv(env);
    if (pass == NULL || pass[0] == '\0') {
        return vl_status_set(st, VEIL_ERR_BAD_REQUEST, "passphrase",
                             "the passphrase variable %s is not set", env);
    }
    size_t len = strnlen(pass, MAX_PASSPHRASE + 1);
    if (len > MAX_PASSPHRASE) {
        return vl_status_set(st, VEIL_ERR_BAD_REQUEST, "passphrase",
                             "the passphrase in %s is longer than %d bytes", env,
                             MAX_PASSPHRASE);
    }
    if (vl_pwhash(kek, VL_AEAD_KEYBYTES, pass, len, salt) != 0) {
        return vl_status_set(st, VEIL_ERR_INTERNAL, "passphrase",
                             "cannot derive a key from the passphrase (out of memory?)");
    }
    return VEIL_OK;
}

static veil_err write_file(const char *path, const uint8_t *p, size_t n, veil_status *st)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        return vl_status_set(st, errno == EEXIST ? VEIL_ERR_CONFLICT : VEIL_ERR_BAD_REQUEST,
                             "keyring", "cannot create the key file %s: %s", path,
                             strerror(errno));
    }
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, p + off, n - off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            close(fd);
            unlink(path);
            return vl_status_set(st, VEIL_ERR_INTERNAL, "keyring", "cannot write %s", path);
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        unlink(path);
        return vl_status_set(st, VEIL_ERR_INTERNAL, "keyring", "cannot write %s", path);
    }
    return VEIL_OK;
}

veil_err vl_keyring_local_create(const char *path, const char *passphrase_env,
                                 veil_status *st)
{
    veil_err rc = VEIL_OK;
    uint8_t *root = vl_secret_alloc(VL_ROOT_KEYBYTES);
    uint8_t *kek = vl_secret_alloc(VL_AEAD_KEYBYTES);
    uint8_t file[SEALED_LEN];
    if (root == NULL || kek == NULL) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "cannot lock memory for keys");
        goto out;
    }
    vl_random(root, VL_ROOT_KEYBYTES);
    if (passphrase_env == NULL) {
        rc = write_file(path, root, VL_ROOT_KEYBYTES, st);
        goto out;
    }
    memcpy(file, MAGIC, MAGIC_LEN);
    file[MAGIC_LEN] = 1;
    uint8_t *salt = file + MAGIC_LEN + 1;
    vl_random(salt, VL_PWHASH_SALTBYTES);
    if ((rc = passphrase_key(kek, passphrase_env, salt, st)) != VEIL_OK) {
        goto out;
    }
    if (vl_aead_box_seal(salt + VL_PWHASH_SALTBYTES, root, VL_ROOT_KEYBYTES, file,
                         MAGIC_LEN + 1 + VL_PWHASH_SALTBYTES, kek) != 0) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "cannot seal the root key");
        goto out;
    }
    rc = write_file(path, file, sizeof(file), st);
out:
    vl_secret_free(root);
    vl_secret_free(kek);
    vl_scrub();
    return rc;
}

veil_err vl_keyring_local_open(const char *path, const char *passphrase_env,
                               struct vl_keyring **out, veil_status *st)
{
    veil_err rc = VEIL_OK;
    struct local_keyring *lk = calloc(1, sizeof(*lk));
    uint8_t *kek = vl_secret_alloc(VL_AEAD_KEYBYTES);
    uint8_t *file = vl_secret_alloc(SEALED_LEN + 1);
    if (lk == NULL || kek == NULL || file == NULL ||
        (lk->root = vl_secret_alloc(VL_ROOT_KEYBYTES)) == NULL) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "cannot lock memory for keys");
        goto out;
    }
    lk->base.ops = &local_ops;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = vl_status_set(st, VEIL_ERR_NOT_FOUND, "keyring", "cannot open the key file %s: %s",
                           path, strerror(errno));
        goto out;
    }
    struct stat sb;
    if (fstat(fd, &sb) == 0 && (sb.st_mode & 077) != 0) {
        close(fd);
        rc = vl_status_set(st, VEIL_ERR_FORBIDDEN, "keyring",
                           "the key file %s is readable by others; chmod 600 it", path);
        goto out;
    }
    size_t n = 0;
    ssize_t r;
    while (n <= SEALED_LEN && (r = read(fd, file + n, SEALED_LEN + 1 - n)) != 0) {
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            break;
        }
        n += (size_t)r;
    }
    close(fd);
    if (n == VL_ROOT_KEYBYTES && passphrase_env == NULL) {
        memcpy(lk->root, file, VL_ROOT_KEYBYTES);
    } else if (n == SEALED_LEN && memcmp(file, MAGIC, MAGIC_LEN) == 0 && file[MAGIC_LEN] == 1) {
        if (passphrase_env == NULL) {
            rc = vl_status_set(st, VEIL_ERR_BAD_REQUEST, "keyring",
                               "the key file is passphrase-protected; set passphrase_env in "
                               "veil.yaml");
            goto out;
        }
        const uint8_t *salt = file + MAGIC_LEN + 1;
        if ((rc = passphrase_key(kek, passphrase_env, salt, st)) != VEIL_OK) {
            goto out;
        }
        size_t mlen = 0;
        if (vl_aead_box_open(lk->root, &mlen, salt + VL_PWHASH_SALTBYTES,
                             vl_aead_box_len(VL_ROOT_KEYBYTES), file,
                             MAGIC_LEN + 1 + VL_PWHASH_SALTBYTES, kek) != 0 ||
            mlen != VL_ROOT_KEYBYTES) {
            rc = vl_status_set(st, VEIL_ERR_UNAUTHENTICATED, "keyring",
                               "wrong passphrase, or the key file was altered");
            goto out;
        }
    } else {
        rc = vl_status_set(st, VEIL_ERR_BAD_REQUEST, "keyring",
                           "%s is not a veil key file of the expected kind", path);
        goto out;
    }
out:
    vl_secret_free(kek);
    vl_secret_free(file);
    vl_scrub(); /* the copies of the root key made above went through vector registers */
    if (rc == VEIL_OK) {
        *out = &lk->base;
    } else if (lk != NULL) {
        vl_secret_free(lk->root);
        free(lk);
    }
    return rc;
}

void vl_keyring_close(struct vl_keyring *k)
{
    if (k != NULL) {
        k->ops->close(k);
    }
}
