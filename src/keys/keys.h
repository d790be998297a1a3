/*
 * keys.h: the key hierarchy (docs/design.md "Keys").
 *
 *   root key (keyring: a local file, or a non-extractable key in a PKCS#11 token)
 *     wraps, per tenant and key version, a random 32-byte tenant key (in trusted state)
 *       from which HKDF-SHA256 derives every working key, with info
 *       "veil/v1/" || lp(tenant) || lp(collection) || lp(field) || lp(purpose) || u32(kv)
 *
 * A keyring is a versioned table of functions, so that the PKCS#11 keyring plugs in
 * beside the local one. Secrets live in vl_secret_alloc'd memory and are wiped on free.
 */
#ifndef VL_KEYS_H
#define VL_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/status.h"

#define VL_ROOT_KEYBYTES 32
#define VL_TENANT_KEYBYTES 32

struct vl_keyring;
struct vl_keyring_ops {
    int version; /* 1 */
    const char *type;
    /* Wraps a secret under the root key, bound to `ad`; appends the blob to out. */
    veil_err (*wrap)(struct vl_keyring *k, const uint8_t *secret, size_t n,
                     const uint8_t *ad, size_t adlen, struct vl_buf *out);
    /* Unwraps into secret (n bytes); VEIL_ERR_INTEGRITY if the blob or ad do not match. */
    veil_err (*unwrap)(struct vl_keyring *k, const uint8_t *blob, size_t bloblen,
                       const uint8_t *ad, size_t adlen, uint8_t *secret, size_t n);
    void (*close)(struct vl_keyring *k);
};
struct vl_keyring {
    const struct vl_keyring_ops *ops;
};

/* The local keyring: a 32-byte root key in a file (mode 0600). With passphrase_env set,
 * the file holds the key encrypted under an Argon2id key derived from that variable. */
veil_err vl_keyring_local_create(const char *path, const char *passphrase_env,
                                 veil_status *st) VL_WUR;
veil_err vl_keyring_local_open(const char *path, const char *passphrase_env,
                               struct vl_keyring **out, veil_status *st) VL_WUR;
void vl_keyring_close(struct vl_keyring *k);

/* A subkey of the tenant key (see the header comment). out is n bytes, n <= 64. */
veil_err vl_subkey(uint8_t *out, size_t n, const uint8_t tenant_key[VL_TENANT_KEYBYTES],
                   const char *tenant, const char *collection, const char *field,
                   const char *purpose, uint32_t key_version);

/* The associated data that binds a wrapped tenant key to its tenant and version. */
veil_err vl_tenant_key_ad(struct vl_buf *out, const char *tenant, uint32_t key_version);

#endif
