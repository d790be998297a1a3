/*
 * buf.h: a growable byte buffer with a maximum fixed at creation (curl's dynbuf), so that
 * oversized input fails with VEIL_ERR_TOO_LARGE by construction; and the length-prefixed
 * canonical encoding used for AAD, HKDF info and PRF inputs.
 */
#ifndef VL_BUF_H
#define VL_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "veil/veil.h"

struct vl_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    size_t max;
};

/* A view of bytes owned elsewhere, or owned by the struct that holds it (said there). */
struct vl_bytes {
    uint8_t *p;
    size_t n;
};

void vl_buf_init(struct vl_buf *b, size_t max);
veil_err vl_buf_append(struct vl_buf *b, const void *p, size_t n);
/* Room for `n` bytes in all (and the NUL), allocating exactly that when it must grow, so
 * that a caller who counts memory knows what is held: b->cap afterwards. TOO_LARGE past the
 * maximum, INTERNAL when out of memory; the contents are kept either way. */
veil_err vl_buf_reserve(struct vl_buf *b, size_t n);
veil_err vl_buf_append_str(struct vl_buf *b, const char *s);
veil_err vl_buf_put_u8(struct vl_buf *b, uint8_t v);
veil_err vl_buf_put_u32(struct vl_buf *b, uint32_t v); /* big-endian */
veil_err vl_buf_put_u64(struct vl_buf *b, uint64_t v); /* big-endian */
/* u32 big-endian length, then the bytes: unambiguous concatenation of fields. */
veil_err vl_buf_put_lp(struct vl_buf *b, const void *p, size_t n);
veil_err vl_buf_put_lps(struct vl_buf *b, const char *s);
/* Hands the bytes to the caller (NUL-terminated, not counted in *len); the buffer is
 * left empty. */
uint8_t *vl_buf_steal(struct vl_buf *b, size_t *len);
void vl_buf_reset(struct vl_buf *b);
void vl_buf_free(struct vl_buf *b);
/* For buffers that held secrets: zero, then free. */
void vl_buf_wipe(struct vl_buf *b);

/* Reading the same encodings back; each returns -1 (and moves nothing) when short. */
struct vl_reader {
    const uint8_t *p;
    size_t n;
};
int vl_read_u8(struct vl_reader *r, uint8_t *v);
int vl_read_u32(struct vl_reader *r, uint32_t *v);
int vl_read_u64(struct vl_reader *r, uint64_t *v);
int vl_read_lp(struct vl_reader *r, const uint8_t **p, size_t *n);
int vl_read_bytes(struct vl_reader *r, const uint8_t **p, size_t n);

/* Unsigned LEB128 varints. vl_varint_put writes v (at most 10 bytes) and returns how many;
 * vl_varint_len says how many it would; vl_varint_get reads one from p[*at..n) and moves
 * *at past it: 0, or -1 when it is truncated or does not fit 64 bits. */
size_t vl_varint_put(uint8_t *out, uint64_t v);
size_t vl_varint_len(uint64_t v);
int vl_varint_get(const uint8_t *p, size_t n, size_t *at, uint64_t *v);

void vl_store_u32(uint8_t out[4], uint32_t v);
void vl_store_u64(uint8_t out[8], uint64_t v);
uint32_t vl_load_u32(const uint8_t in[4]);
uint64_t vl_load_u64(const uint8_t in[8]);

/* Lowercase hex of n bytes into out (2n+1 bytes). */
void vl_hex(char *out, const uint8_t *p, size_t n);
/* Decodes exactly outlen bytes from hex; -1 on bad or wrong-length input. */
int vl_unhex(uint8_t *out, size_t outlen, const char *hex);

#endif
