/*
 * store.h: the opaque-table interface every untrusted store offers (DESIGN.md).
 *
 * A store holds opaque tables, each named by a keyed hash (hex) of tenant and collection.
 * A row is keyed by a document token (a keyed hash of the document id) and holds a sealed
 * blob, a row sequence number, and a set of (column, token) pairs the store can index:
 * equality tokens (one per column) and range tokens (many per column). Column ids are keyed
 * hashes of field paths. Drivers are dumb: they never see a key, a plaintext, a document id
 * or a field name, and every decision about security is taken above this interface.
 *
 * Drivers are reached through a versioned table of functions (SQLite's sqlite3_io_methods);
 * each driver's handle starts with `const struct vl_store_ops *ops`. All operations are
 * safe to call from several threads at once. A driver returns VEIL_ERR_STORE_UNAVAILABLE
 * when its database cannot be reached, and then has written nothing (each call is atomic).
 */
#ifndef VL_STORE_H
#define VL_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/status.h"

#define VL_COL_BYTES 16      /* column id */
#define VL_DOCTOKEN_BYTES 32 /* document token */
#define VL_TABLE_NAME_MAX 64 /* opaque table names are [0-9a-f]{32} */

struct vl_token {
    uint8_t col[VL_COL_BYTES];
    struct vl_bytes tok;
};

struct vl_row {
    struct vl_bytes doc;       /* document token, VL_DOCTOKEN_BYTES */
    uint64_t seq;              /* row sequence number (per write, from trusted state) */
    struct vl_bytes blob;      /* the sealed fields this store holds */
    struct vl_token *tokens;   /* indexable tokens; a column may appear many times */
    size_t ntokens;
};

/* Rows returned by a driver: it owns the memory; free with vl_rows_free(). Tokens are not
 * returned (only doc, seq and blob). */
struct vl_rows {
    struct vl_row *rows;
    size_t n;
};
void vl_rows_free(struct vl_rows *r);

/* One term: documents having column `col` equal to any of the `ntoks` tokens. */
struct vl_pred_term {
    uint8_t col[VL_COL_BYTES];
    const struct vl_bytes *toks;
    size_t ntoks;
};
/* The AND of its terms; no terms matches every row. */
struct vl_pred {
    const struct vl_pred_term *terms;
    size_t nterms;
};

/* A list of document tokens, owned (free with vl_doclist_free). */
struct vl_doclist {
    uint8_t (*docs)[VL_DOCTOKEN_BYTES];
    size_t n;
};
void vl_doclist_free(struct vl_doclist *l);

struct vl_store;

struct vl_store_ops {
    int version; /* 1 */
    const char *scheme; /* "sqlite", ... */
    /* url is the part after "scheme:"; relative paths resolve against datadir. */
    veil_err (*open)(const char *url, const char *datadir, struct vl_store **out,
                     veil_status *st);
    void (*close)(struct vl_store *s);
    /* VEIL_OK when the database answers. */
    veil_err (*ping)(struct vl_store *s);
    /* Creates the table if absent (idempotent). */
    veil_err (*ensure_table)(struct vl_store *s, const char *table);
    /* Removes a table and everything in it (idempotent). */
    veil_err (*drop_table)(struct vl_store *s, const char *table);
    /* Inserts or replaces rows by document token, with their tokens (old tokens of a
     * replaced row go). All rows or none. */
    veil_err (*put_rows)(struct vl_store *s, const char *table, const struct vl_row *rows,
                         size_t n);
    /* The rows with these document tokens that exist, in no particular order. */
    veil_err (*get_rows)(struct vl_store *s, const char *table, const struct vl_bytes *docs,
                         size_t n, struct vl_rows *out);
    /* Deletes rows and their tokens; absent ones are ignored. All or none. */
    veil_err (*delete_rows)(struct vl_store *s, const char *table,
                            const struct vl_bytes *docs, size_t n);
    /* Document tokens of rows matching pred, in ascending byte order of token, strictly
     * after `after` (NULL: from the start), at most `limit`. */
    veil_err (*find)(struct vl_store *s, const char *table, const struct vl_pred *pred,
                     const uint8_t *after, size_t limit, struct vl_doclist *out);
};

struct vl_store {
    const struct vl_store_ops *ops;
};

/* Opens a store from a URL of veil.yaml ("sqlite:cloud/cloud.db", ...). */
veil_err vl_store_open(const char *url, const char *datadir, struct vl_store **out,
                       veil_status *st) VL_WUR;
void vl_store_close(struct vl_store *s);

extern const struct vl_store_ops vl_store_sqlite_ops;

#endif
