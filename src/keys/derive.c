/*
 * derive.c: working keys from a tenant key, by HKDF-SHA256 with an info string that names
 * exactly what the key is for. Two purposes never share a key: every name in the info is
 * length-prefixed, so no two distinct tuples encode alike.
 */
#include "crypto/crypto.h"
#include "keys/keys.h"

veil_err vl_subkey(uint8_t *out, size_t n, const uint8_t tenant_key[VL_TENANT_KEYBYTES],
                   const char *tenant, const char *collection, const char *field,
                   const char *purpose, uint32_t key_version)
{
    struct vl_buf info;
    vl_buf_init(&info, 4096);
    veil_err rc = vl_buf_append_str(&info, "veil/v1/");
    if (rc == VEIL_OK) {
        rc = vl_buf_put_lps(&info, tenant);
    }
    if (rc == VEIL_OK) {
        rc = vl_buf_put_lps(&info, collection);
    }
    if (rc == VEIL_OK) {
        rc = vl_buf_put_lps(&info, field);
    }
    if (rc == VEIL_OK) {
        rc = vl_buf_put_lps(&info, purpose);
    }
    if (rc == VEIL_OK) {
        rc = vl_buf_put_u32(&info, key_version);
    }
    if (rc == VEIL_OK && vl_hkdf_sha256(out, n, tenant_key, VL_TENANT_KEYBYTES, NULL, 0,
                                        info.data, info.len) != 0) {
        rc = VEIL_ERR_INTERNAL;
    }
    vl_buf_free(&info);
    return rc;
}

veil_err vl_tenant_key_ad(struct vl_buf *out, const char *tenant, uint32_t key_version)
{
    veil_err rc = vl_buf_put_lps(out, "tenant-key");
    if (rc == VEIL_OK) {
        rc = vl_buf_put_lps(out, tenant);
    }
    return rc != VEIL_OK ? rc : vl_buf_put_u32(out, key_version);
}
