/*
 * store.h: the opaque-table interface every untrusted store offers (docs/design.md).
 *
 * A store holds opaque tables, each named by a keyed hash (hex) of tenant and collection.
 * A row is keyed by a document token (a keyed hash of the document id) and holds a sealed
 * blob, a row sequence number, and a set of (column, token) pairs the store can index:
 * equality tokens (one per column) and range tokens (many per column). Column ids are keyed
 * hashes of field paths. Beside the rows, each table has a key-value space for the entries
 * of search indexes. Drivers are dumb: they never see a key, a plaintext, a document id
 * or a field name, and every decision about security is taken above this interface.
 *
 * Drivers are reached through a versioned table of functions (SQLite's sqlite3_io_methods);
 * each driver's handle starts with `const struct vl_store_ops *ops`. All operations are
 * safe to call from several threads at once. A driver returns VEIL_ERR_STORE_UNAVAILABLE
 * when its database cannot be reached, and then has written nothing (each call is atomic);
 * VEIL_ERR_INTEGRITY when a read meets stored data it cannot have written (a value of the
 * wrong type or size, sequence numbers it cannot make runs of), which the engine reports as
 * a suspected breach, never as an outage. The engine believes nothing else a driver returns
 * either: rows not asked for, tokens out of order or beyond a cursor, impossible groups.
 */
#ifndef VL_STORE_H
#define VL_STORE_H

#include <stdbool.h>
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
    uint8_t level; /* a range prefix's digits, 0 for other tokens; the proxy's, never stored */
};

#define VL_SUM_LIMBS 4 /* an ASHE ciphertext: 128 bits as four 32-bit limbs */

/* An additively homomorphic cell (tactic sum, ASHE): limbs[k] is bits 32k..32k+31 of the
 * ciphertext, 0..2^32-1. The store adds limbs with its own SUM. */
struct vl_sum_cell {
    uint8_t col[VL_COL_BYTES];
    int64_t limbs[VL_SUM_LIMBS];
};

/* A multiplicatively homomorphic cell (tactic sum, Paillier): a big-endian integer < n^2.
 * The store multiplies cells modulo n^2. */
struct vl_prod_cell {
    uint8_t col[VL_COL_BYTES];
    struct vl_bytes val;
};

struct vl_row {
    struct vl_bytes doc;       /* document token, VL_DOCTOKEN_BYTES */
    uint64_t seq;              /* row sequence number (per write, from trusted state):
                                  0..2^63-1, held by no other row of the table */
    struct vl_bytes blob;      /* the sealed fields this store holds */
    struct vl_token *tokens;   /* indexable tokens; a column may appear many times */
    size_t ntokens;
    struct vl_sum_cell *sums;  /* at most one per column */
    size_t nsums;
    struct vl_prod_cell *prods; /* at most one per column */
    size_t nprods;
};

/* Rows returned by a driver: it owns the memory; free with vl_rows_free(). Tokens and cells
 * are not returned (only doc, seq and blob). */
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
/* The AND of its terms; no terms matches every row. With `only_docs`, a row must also be
 * one of the ndocs document tokens in `docs` (ndocs == 0 then matches nothing): how a text
 * search's candidates are narrowed by `where` or aggregated. */
struct vl_pred {
    const struct vl_pred_term *terms;
    size_t nterms;
    bool only_docs;
    const struct vl_bytes *docs;
    size_t ndocs;
};

/* A list of document tokens, owned (free with vl_doclist_free). */
struct vl_doclist {
    uint8_t (*docs)[VL_DOCTOKEN_BYTES];
    size_t n;
};
void vl_doclist_free(struct vl_doclist *l);

/* A run of consecutive row sequence numbers [first, last]. */
struct vl_seq_run {
    uint64_t first;
    uint64_t last;
};

/* One aggregated column of an aggregate request. */
struct vl_agg_col {
    uint8_t col[VL_COL_BYTES];
    int paillier;              /* 0: sum limbs (ASHE); 1: multiply cells mod `modulus` */
    struct vl_bytes modulus;   /* Paillier: n^2, big-endian */
};

/* Aggregate the rows matching pred, grouped by the tokens of up to VL_AGG_MAX_GROUP
 * columns (a row with no token in a group column falls in the group whose key for that
 * column is empty), over ncols aggregated columns. */
#define VL_AGG_MAX_GROUP 4
struct vl_agg_request {
    const struct vl_pred *pred;
    const uint8_t (*group_cols)[VL_COL_BYTES];
    size_t ngroup;
    const struct vl_agg_col *cols;
    size_t ncols;
};

/* Per group and aggregated column: how many matching rows have a cell in that column,
 * and their combination: the limb sums and, for ASHE, the runs of their row sequence
 * numbers (ascending, maximal: so the proxy can remove the key stream); or, for Paillier,
 * the product. All owned by the result. */
struct vl_agg_value {
    uint64_t count;
    int64_t limbs[VL_SUM_LIMBS];
    struct vl_seq_run *runs;
    size_t nruns;
    struct vl_bytes product;   /* Paillier; n == 0 when count == 0 */
};
struct vl_agg_group {
    struct vl_bytes keys[VL_AGG_MAX_GROUP]; /* one token per group column; n = 0: none */
    uint64_t count;                         /* matching rows in the group */
    struct vl_seq_run *runs;                /* their row sequence numbers (ascending,
                                               maximal): what the proxy checks the group
                                               against */
    size_t nruns;
    struct vl_agg_value *values;            /* ncols */
};
struct vl_agg_result {
    struct vl_agg_group *groups;
    size_t n;
    size_t ncols;
};
void vl_agg_result_free(struct vl_agg_result *r);

/* The key-value space of a table (search-index entries): keys of VL_KV_KEY_BYTES, values
 * of at most VL_KV_VAL_MAX bytes, both opaque. */
#define VL_KV_KEY_BYTES 16
#define VL_KV_VAL_MAX 1024
struct vl_kv {
    struct vl_bytes key;
    struct vl_bytes val;
};
/* What kv_get found: vals[i] answers keys[i]; vals[i].p == NULL when the key is absent.
 * Owned by the driver's allocation; free with vl_kv_values_free. */
struct vl_kv_values {
    struct vl_bytes *vals;
    size_t n;
    void *arena;
};
void vl_kv_values_free(struct vl_kv_values *v);

/* A row having one of the tokens asked for: which token (its index in the request) and the
 * row's document token. */
struct vl_member {
    uint32_t tok;
    uint8_t doc[VL_DOCTOKEN_BYTES];
};
/* What members returned, owned (free with vl_members_free). */
struct vl_members {
    struct vl_member *m;   /* malloc'd */
    size_t n;
};
void vl_members_free(struct vl_members *m);

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
    /* Groups and combines, as struct vl_agg_request says, with the database's own
     * aggregation. Groups come in no particular order. */
    veil_err (*aggregate)(struct vl_store *s, const char *table,
                          const struct vl_agg_request *req, struct vl_agg_result *out);
    /* Key-value space. Puts (insert or replace) all entries or none. */
    veil_err (*kv_put)(struct vl_store *s, const char *table, const struct vl_kv *kv,
                       size_t n);
    /* Looks up n keys (duplicates allowed) in one consistent read. */
    veil_err (*kv_get)(struct vl_store *s, const char *table, const struct vl_bytes *keys,
                       size_t n, struct vl_kv_values *out);
    /* Deletes the entries of these keys; absent ones are ignored. All or none. */
    veil_err (*kv_delete)(struct vl_store *s, const char *table, const struct vl_bytes *keys,
                          size_t n);
    /* put_rows and kv_put at once: the entries, then the rows, all or none (a write's rows
     * and its search entries in one transaction). May be NULL: then kv_put, put_rows. */
    veil_err (*put)(struct vl_store *s, const char *table, const struct vl_row *rows, size_t n,
                    const struct vl_kv *kv, size_t nkv);
    /* Every row having column `col` equal to one of the ntoks tokens, as (token index,
     * document token), in no particular order; an index entry alone answers it; a row having several
     * of the tokens comes once for each. ntoks == 0: none. The engine believes nothing of
     * it: it checks the answer against the trusted state. */
    veil_err (*members)(struct vl_store *s, const char *table, const uint8_t col[VL_COL_BYTES],
                        const struct vl_bytes *toks, size_t ntoks, struct vl_members *out);
};

struct vl_store {
    const struct vl_store_ops *ops;
};

/* Opens a store from a URL of veil.yaml ("sqlite:cloud/cloud.db", ...). */
veil_err vl_store_open(const char *url, const char *datadir, struct vl_store **out,
                       veil_status *st) VL_WUR;
void vl_store_close(struct vl_store *s);

extern const struct vl_store_ops vl_store_sqlite_ops;

/* Tests only: the SQLite store's partitions of level 0 take `entries` index entries (so
 * that a small test merges them often); not in the configuration. */
void vl_store_sqlite_partition(struct vl_store *s, size_t entries);

#endif
