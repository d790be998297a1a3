/*
 * buf.c: bounded growable buffers and the length-prefixed canonical encoding. Every
 * structured byte string veil derives a key from, authenticates or hashes is built here, so
 * that two different inputs can never encode to the same bytes.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "util/buf.h"

void vl_buf_init(struct vl_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

static veil_err grow(struct vl_buf *b, size_t need)
{
    if (need > b->max || need < b->len) {
        return VEIL_ERR_TOO_LARGE;
    }
    if (need + 1 <= b->cap) {
        return VEIL_OK;
    }
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need + 1) {
        cap = cap > SIZE_MAX / 2 ? need + 1 : cap * 2;
    }
    uint8_t *p = realloc(b->data, cap);
    if (p == NULL) {
        return VEIL_ERR_INTERNAL;
    }
    b->data = p;
    b->cap = cap;
    return VEIL_OK;
}

veil_err vl_buf_reserve(struct vl_buf *b, size_t n)
{
    if (n > b->max || n == SIZE_MAX) {
        return VEIL_ERR_TOO_LARGE;
    }
    if (n + 1 <= b->cap) {
        return VEIL_OK;
    }
    uint8_t *p = realloc(b->data, n + 1);
    if (p == NULL) {
        return VEIL_ERR_INTERNAL;
    }
    b->data = p;
    b->cap = n + 1;
    return VEIL_OK;
}

veil_err vl_buf_append(struct vl_buf *b, const void *p, size_t n)
{
    if (n > SIZE_MAX - b->len - 1) {
        return VEIL_ERR_TOO_LARGE;
    }
    veil_err rc = grow(b, b->len + n);
    if (rc != VEIL_OK) {
        return rc;
    }
    if (n > 0) {
        memcpy(b->data + b->len, p, n);
    }
    b->len += n;
    b->data[b->len] = '\0';
    return VEIL_OK;
}

veil_err vl_buf_append_str(struct vl_buf *b, const char *s)
{
    return vl_buf_append(b, s, strlen(s));
}

veil_err vl_buf_put_u8(struct vl_buf *b, uint8_t v)
{
    return vl_buf_append(b, &v, 1);
}

veil_err vl_buf_put_u32(struct vl_buf *b, uint32_t v)
{
    uint8_t t[4];
    vl_store_u32(t, v);
    return vl_buf_append(b, t, sizeof(t));
}

veil_err vl_buf_put_u64(struct vl_buf *b, uint64_t v)
{
    uint8_t t[8];
    vl_store_u64(t, v);
    return vl_buf_append(b, t, sizeof(t));
}

veil_err vl_buf_put_lp(struct vl_buf *b, const void *p, size_t n)
{
    if (n > UINT32_MAX) {
        return VEIL_ERR_TOO_LARGE;
    }
    veil_err rc = vl_buf_put_u32(b, (uint32_t)n);
    return rc != VEIL_OK ? rc : vl_buf_append(b, p, n);
}

veil_err vl_buf_put_lps(struct vl_buf *b, const char *s)
{
    return vl_buf_put_lp(b, s, strlen(s));
}

uint8_t *vl_buf_steal(struct vl_buf *b, size_t *len)
{
    if (b->data == NULL) {
        if (grow(b, 0) != VEIL_OK) {
            return NULL;
        }
        b->data[0] = '\0';
    }
    uint8_t *p = b->data;
    if (len != NULL) {
        *len = b->len;
    }
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void vl_buf_reset(struct vl_buf *b)
{
    b->len = 0;
    if (b->data != NULL) {
        b->data[0] = '\0';
    }
}

void vl_buf_free(struct vl_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void vl_buf_wipe(struct vl_buf *b)
{
    if (b->data != NULL) {
        sodium_memzero(b->data, b->cap);
    }
    vl_buf_free(b);
}

int vl_read_bytes(struct vl_reader *r, const uint8_t **p, size_t n)
{
    if (r->n < n) {
        return -1;
    }
    *p = r->p;
    r->p += n;
    r->n -= n;
    return 0;
}

int vl_read_u8(struct vl_reader *r, uint8_t *v)
{
    const uint8_t *p;
    if (vl_read_bytes(r, &p, 1) != 0) {
        return -1;
    }
    *v = p[0];
    return 0;
}

int vl_read_u32(struct vl_reader *r, uint32_t *v)
{
    const uint8_t *p;
    if (vl_read_bytes(r, &p, 4) != 0) {
        return -1;
    }
    *v = vl_load_u32(p);
    return 0;
}

int vl_read_u64(struct vl_reader *r, uint64_t *v)
{
    const uint8_t *p;
    if (vl_read_bytes(r, &p, 8) != 0) {
        return -1;
    }
    *v = vl_load_u64(p);
    return 0;
}

int vl_read_lp(struct vl_reader *r, const uint8_t **p, size_t *n)
{
    struct vl_reader save = *r;
    uint32_t len;
    if (vl_read_u32(r, &len) != 0 || vl_read_bytes(r, p, len) != 0) {
        *r = save;
        return -1;
    }
    *n = len;
    return 0;
}

void vl_store_u32(uint8_t out[4], uint32_t v)
{
    out[0] = (uint8_t)(v >> 24);
    out[1] = (uint8_t)(v >> 16);
    out[2] = (uint8_t)(v >> 8);
    out[3] = (uint8_t)v;
}

void vl_store_u64(uint8_t out[8], uint64_t v)
{
    vl_store_u32(out, (uint32_t)(v >> 32));
    vl_store_u32(out + 4, (uint32_t)v);
}

uint32_t vl_load_u32(const uint8_t in[4])
{
    return ((uint32_t)in[0] << 24) | ((uint32_t)in[1] << 16) | ((uint32_t)in[2] << 8) | in[3];
}

uint64_t vl_load_u64(const uint8_t in[8])
{
    return ((uint64_t)vl_load_u32(in) << 32) | vl_load_u32(in + 4);
}

void vl_hex(char *out, const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static int nibble(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

int vl_unhex(uint8_t *out, size_t outlen, const char *hex)
{
    if (strlen(hex) != 2 * outlen) {
        return -1;
    }
    for (size_t i = 0; i < outlen; i++) {
        int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return -1;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

size_t vl_varint_put(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

size_t vl_varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

int vl_varint_get(const uint8_t *p, size_t n, size_t *at, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; *at < n && shift < 64; shift += 7) {
        uint8_t c = p[(*at)++];
        if (shift == 63 && c > 1) {
            return -1;
        }
        x |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}
