/*
 * sqlite.c: the embedded untrusted store (veil.yaml "sqlite:cloud/cloud.db"), one SQLite
 * file holding opaque tables.
 *
 * Each opaque table T (1..64 lowercase hex, checked before it is spliced into SQL) becomes
 *     r_T(doc BLOB PRIMARY KEY, seq INTEGER NOT NULL, blob BLOB NOT NULL) WITHOUT ROWID
 *     x_T(col BLOB, tok BLOB, doc BLOB, PRIMARY KEY(col, tok, doc)) WITHOUT ROWID
 *     i_T ON x_T(doc), so that a row's tokens go quickly when it is replaced or deleted.
 * Every value is bound as a blob; the only things ever formatted into SQL are a validated
 * table name and a count of placeholders.
 *
 * What the store learns: the number of tables and of rows in each; each row's document
 * token, sequence number and sealed blob (its size); every (column, token) pair of each row,
 * hence which rows share an equality token and how many range tokens a row has; and, from
 * each call, which document tokens were read or written together, which tokens a find asks
 * for and which documents answer it. It never sees a key, a plaintext or a document id.
 *
 * Invariants: every operation is one transaction (writes BEGIN IMMEDIATE, reads a deferred
 * BEGIN for one snapshot across batches) and is rolled back on any error, so a failed call
 * has written nothing. secure_delete is on, so a deleted row's bytes are zeroed in the
 * database pages, and drop_table truncates the WAL so old frames do not linger either.
 *
 * Concurrency: a small pool of connections (at most SQ_POOL_MAX, opened on demand), each
 * used by one thread at a time and therefore opened SQLITE_OPEN_NOMUTEX. In WAL mode readers
 * then run in parallel and never wait for a writer. Writers inside this process take
 * `write_mu` before BEGIN IMMEDIATE, so they queue on a mutex instead of spinning in
 * SQLite's busy handler; busy_timeout is left for other processes (the CLI) sharing the
 * file. Lock order: a connection first, then write_mu; a thread holding write_mu never
 * waits for a connection, so the two cannot deadlock.
 *
 * Behaviour the interface leaves open: reads, finds and deletes on a table that does not
 * exist see an empty table; put_rows creates its table if needed. A table name that is not
 * 1..64 lowercase hex, or a row whose document token is not VL_DOCTOKEN_BYTES long, is a
 * caller bug: VEIL_ERR_INTERNAL. A find that meets a stored document token of the wrong
 * length reports VEIL_ERR_INTEGRITY, since it cannot be returned. SQLite failures are
 * logged with the store's name, the operation and SQLite's generic text, never with data.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store/store.h"
#include "util/log.h"

#define SQ_POOL_MAX 8         /* connections per store */
#define SQ_BUSY_MS 5000       /* wait for other processes' locks this long */
#define SQ_DOC_BATCH 500      /* document tokens per IN list in get and delete */
#define SQ_SQL_MAX (1u << 22) /* longest statement text we build */
#define SQ_DIR_MODE 0700
#define SQ_FILE_MODE 0600

/* Per connection; the temp table holds the tokens of terms too large to bind inline. */
static const char sq_setup[] = "PRAGMA synchronous=NORMAL;"
                               "PRAGMA secure_delete=ON;"
                               "PRAGMA foreign_keys=OFF;"
                               "PRAGMA temp_store=MEMORY;"
                               "CREATE TEMP TABLE IF NOT EXISTS vl_find(term INTEGER NOT NULL,"
                               " tok BLOB NOT NULL, PRIMARY KEY(term, tok)) WITHOUT ROWID;"
                               "SELECT count(*) FROM sqlite_schema;";

struct sq_store {
    struct vl_store base; /* first: what callers hold */
    char *path;
    char *name; /* "sqlite:<url>", for messages */
    pthread_mutex_t mu; /* guards the pool and the table cache */
    pthread_cond_t cv;  /* a connection went back to the pool */
    sqlite3 *idle[SQ_POOL_MAX];
    size_t nidle;
    size_t nopen;
    pthread_mutex_t write_mu; /* one write transaction at a time in this process */
    char (*tables)[VL_TABLE_NAME_MAX + 1]; /* sorted names known to exist */
    size_t ntables;
    size_t captables;
};

static struct sq_store *sq(struct vl_store *s)
{
    return (struct sq_store *)s;
}

/* ---- errors ---- */

static veil_err sq_fail(const struct sq_store *s, int rc, const char *op)
{
    veil_err e;
    switch (rc & 0xff) {
    case SQLITE_NOMEM:
    case SQLITE_MISUSE:
    case SQLITE_RANGE:
        e = VEIL_ERR_INTERNAL;
        break;
    case SQLITE_TOOBIG:
        e = VEIL_ERR_TOO_LARGE;
        break;
    default: /* BUSY, LOCKED, CANTOPEN, IOERR, FULL, READONLY, CORRUPT, NOTADB, ERROR, ... */
        e = VEIL_ERR_STORE_UNAVAILABLE;
        break;
    }
    vl_log(VL_LOG_WARN, "store %s: %s failed: %s", s->name, op, sqlite3_errstr(rc));
    return e;
}

/* ---- names and the cache of tables known to exist ---- */

static int table_ok(const char *t)
{
    size_t n = 0;
    if (t == NULL) {
        return 0;
    }
    for (; t[n] != '\0'; n++) {
        if (n >= VL_TABLE_NAME_MAX || !((t[n] >= '0' && t[n] <= '9') ||
                                        (t[n] >= 'a' && t[n] <= 'f'))) {
            return 0;
        }
    }
    return n > 0;
}

/* Index of t in the sorted cache, or where it would go; *found says which. */
static size_t cache_find(const struct sq_store *s, const char *t, int *found)
{
    size_t lo = 0, hi = s->ntables;
    *found = 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s->tables[mid], t);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static int cache_has(struct sq_store *s, const char *t)
{
    int found;
    pthread_mutex_lock(&s->mu);
    cache_find(s, t, &found);
    pthread_mutex_unlock(&s->mu);
    return found;
}

/* Best effort: a full cache only costs a repeated CREATE ... IF NOT EXISTS. */
static void cache_add(struct sq_store *s, const char *t)
{
    int found;
    pthread_mutex_lock(&s->mu);
    size_t i = cache_find(s, t, &found);
    if (!found && s->ntables == s->captables) {
        size_t cap = s->captables ? s->captables * 2 : 16;
        void *p = realloc(s->tables, cap * sizeof(*s->tables));
        if (p != NULL) {
            s->tables = p;
            s->captables = cap;
        }
    }
    if (!found && s->ntables < s->captables) {
        memmove(&s->tables[i + 1], &s->tables[i], (s->ntables - i) * sizeof(*s->tables));
        memcpy(s->tables[i], t, strlen(t) + 1);
        s->ntables++;
    }
    pthread_mutex_unlock(&s->mu);
}

static void cache_del(struct sq_store *s, const char *t)
{
    int found;
    pthread_mutex_lock(&s->mu);
    size_t i = cache_find(s, t, &found);
    if (found) {
        memmove(&s->tables[i], &s->tables[i + 1], (s->ntables - i - 1) * sizeof(*s->tables));
        s->ntables--;
    }
    pthread_mutex_unlock(&s->mu);
}

/* ---- connections ---- */

static int journal_cb(void *arg, int ncol, char **vals, char **names)
{
    (void)names;
    int *is_wal = arg;
    *is_wal = ncol > 0 && vals[0] != NULL && strcmp(vals[0], "wal") == 0;
    return 0;
}

/* Opens and configures one connection; returns an SQLite code. */
static int conn_open(const struct sq_store *s, sqlite3 **out)
{
    sqlite3 *db = NULL;
    int is_wal = 0;
    int rc = sqlite3_open_v2(s->path, &db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc == SQLITE_OK) {
        sqlite3_extended_result_codes(db, 1);
        rc = sqlite3_busy_timeout(db, SQ_BUSY_MS);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL", journal_cb, &is_wal, NULL);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_exec(db, sq_setup, NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK && !is_wal) {
        vl_log(VL_LOG_WARN, "store %s: WAL journal not available; readers will wait for writers",
               s->name);
    }
    if (rc == SQLITE_OK) {
        *out = db;
    } else {
        sqlite3_close(db);
    }
    return rc;
}

/* A connection for this thread alone, waiting while all SQ_POOL_MAX are in use. */
static veil_err conn_get(struct sq_store *s, sqlite3 **out)
{
    veil_err rc = VEIL_OK;
    sqlite3 *db = NULL;
    int opening = 0;

    pthread_mutex_lock(&s->mu);
    while (s->nidle == 0 && s->nopen >= SQ_POOL_MAX) {
        pthread_cond_wait(&s->cv, &s->mu);
    }
    if (s->nidle > 0) {
        db = s->idle[--s->nidle];
    } else {
        s->nopen++;
        opening = 1;
    }
    pthread_mutex_unlock(&s->mu);

    if (opening) {
        int src = conn_open(s, &db);
        if (src != SQLITE_OK) {
            rc = sq_fail(s, src, "open");
            pthread_mutex_lock(&s->mu);
            s->nopen--;
            pthread_cond_signal(&s->cv);
            pthread_mutex_unlock(&s->mu);
        }
    }
    if (rc == VEIL_OK) {
        *out = db;
    }
    return rc;
}

static void conn_put(struct sq_store *s, sqlite3 *db)
{
    pthread_mutex_lock(&s->mu);
    s->idle[s->nidle++] = db;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* ---- small SQL helpers (all return SQLite codes) ---- */

static int bind_bytes(sqlite3_stmt *stmt, int i, const void *p, size_t n)
{
    if (n == 0) {
        return sqlite3_bind_zeroblob(stmt, i, 0); /* a NULL pointer would bind SQL NULL */
    }
    if (n > INT32_MAX) {
        return SQLITE_TOOBIG;
    }
    return sqlite3_bind_blob(stmt, i, p, (int)n, SQLITE_STATIC);
}

static int step_done(sqlite3_stmt *stmt)
{
    int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* Ends the transaction: COMMIT when ok, else ROLLBACK if SQLite has not already done it. */
static int txn_end(sqlite3 *db, int ok)
{
    if (ok) {
        int rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
        if (rc != SQLITE_OK && !sqlite3_get_autocommit(db)) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        }
        return rc;
    }
    if (!sqlite3_get_autocommit(db)) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    }
    return SQLITE_OK;
}

/* Prepares `head` + "?,?,...,?" (k of them) + `tail`. */
static int prepare_in(sqlite3 *db, const char *head, size_t k, const char *tail,
                      sqlite3_stmt **out)
{
    struct vl_buf b;
    int rc = SQLITE_OK;
    vl_buf_init(&b, SQ_SQL_MAX);
    if (vl_buf_append_str(&b, head) != VEIL_OK) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < k; i++) {
        if (vl_buf_append_str(&b, i > 0 ? ",?" : "?") != VEIL_OK) {
            rc = SQLITE_NOMEM;
            goto out;
        }
    }
    if (vl_buf_append_str(&b, tail) != VEIL_OK) {
        rc = SQLITE_NOMEM;
        goto out;
    }
    rc = sqlite3_prepare_v2(db, (const char *)b.data, -1, out, NULL);

out:
    vl_buf_free(&b);
    return rc;
}

/* *exists = whether the opaque table t exists (its rows table, that is). */
static int table_exists(sqlite3 *db, const char *t, int *exists)
{
    char name[VL_TABLE_NAME_MAX + 3];
    sqlite3_stmt *stmt = NULL;
    snprintf(name, sizeof(name), "r_%s", t);
    int rc = sqlite3_prepare_v2(db,
                                "SELECT 1 FROM sqlite_schema WHERE type='table' AND name=?", -1,
                                &stmt, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(stmt);
        *exists = rc == SQLITE_ROW;
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize(stmt);
    return rc;
}

/* A prepare on table t failed with prep_rc: SQLITE_OK (and *absent) when the table is
 * simply missing, otherwise the code to report. */
static int missing_table(sqlite3 *db, const char *t, int prep_rc, int *absent)
{
    int exists = 1;
    *absent = 0;
    if ((prep_rc & 0xff) != SQLITE_ERROR) {
        return prep_rc;
    }
    int rc = table_exists(db, t, &exists);
    if (rc != SQLITE_OK) {
        return rc;
    }
    *absent = !exists;
    return exists ? prep_rc : SQLITE_OK;
}

static int create_tables(sqlite3 *db, const char *t)
{
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "CREATE TABLE IF NOT EXISTS \"r_%s\"(doc BLOB PRIMARY KEY, seq INTEGER NOT NULL,"
             " blob BLOB NOT NULL) WITHOUT ROWID;"
             "CREATE TABLE IF NOT EXISTS \"x_%s\"(col BLOB, tok BLOB, doc BLOB,"
             " PRIMARY KEY(col, tok, doc)) WITHOUT ROWID;"
             "CREATE INDEX IF NOT EXISTS \"i_%s\" ON \"x_%s\"(doc);",
             t, t, t, t);
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

/* ---- operations ---- */

static veil_err sq_ping(struct vl_store *vs)
{
    struct sq_store *s = sq(vs);
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    veil_err rc = conn_get(s, &db);
    if (rc != VEIL_OK) {
        goto out;
    }
    int src = sqlite3_prepare_v2(db, "SELECT 1", -1, &stmt, NULL);
    if (src == SQLITE_OK) {
        src = sqlite3_step(stmt);
        src = src == SQLITE_ROW ? SQLITE_OK : src;
    }
    if (src != SQLITE_OK) {
        rc = sq_fail(s, src, "ping");
    }

out:
    sqlite3_finalize(stmt);
    if (db != NULL) {
        conn_put(s, db);
    }
    return rc;
}

static veil_err sq_ensure_table(struct vl_store *vs, const char *table)
{
    struct sq_store *s = sq(vs);
    sqlite3 *db = NULL;
    int locked = 0;
    veil_err rc = VEIL_OK;
    int src = SQLITE_OK;

    if (!table_ok(table)) {
        rc = VEIL_ERR_INTERNAL;
        goto out;
    }
    if (cache_has(s, table)) {
        goto out;
    }
    rc = conn_get(s, &db);
    if (rc != VEIL_OK) {
        goto out;
    }
    pthread_mutex_lock(&s->write_mu);
    locked = 1;
    src = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (src == SQLITE_OK) {
        src = create_tables(db, table);
        int end = txn_end(db, src == SQLITE_OK);
        src = src == SQLITE_OK ? end : src;
    }
    if (src != SQLITE_OK) {
        rc = sq_fail(s, src, "ensure_table");
        goto out;
    }
    cache_add(s, table);

out:
    if (locked) {
        pthread_mutex_unlock(&s->write_mu);
    }
    if (db != NULL) {
        conn_put(s, db);
    }
    return rc;
}

static veil_err sq_drop_table(struct vl_store *vs, const char *table)
{
    struct sq_store *s = sq(vs);
    sqlite3 *db = NULL;
    int locked = 0;
    veil_err rc = VEIL_OK;
    int src = SQLITE_OK;
    char sql[256];

    if (!table_ok(table)) {
        rc = VEIL_ERR_INTERNAL;
        goto out;
    }
    rc = conn_get(s, &db);
    if (rc != VEIL_OK) {
        goto out;
    }
    pthread_mutex_lock(&s->write_mu);
    locked = 1;
    cache_del(s, table);
    snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS \"x_%s\"; DROP TABLE IF EXISTS \"r_%s\";",
             table, table);
    src = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (src == SQLITE_OK) {
        src = sqlite3_exec(db, sql, NULL, NULL, NULL);
        int end = txn_end(db, src == SQLITE_OK);
        src = src == SQLITE_OK ? end : src;
    }
    if (src != SQLITE_OK) {
        rc = sq_fail(s, src, "drop_table");
        goto out;
    }
    /* The drop is done; a checkpoint that cannot finish now (a reader in another process)
     * is retried by later checkpoints, so it only earns a warning. */
    src = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    if (src != SQLITE_OK) {
        vl_log(VL_LOG_WARN, "store %s: WAL checkpoint after drop_table incomplete: %s",
               s->name, sqlite3_errstr(src));
    }

out:
    if (locked) {
        pthread_mutex_unlock(&s->write_mu);
    }
    if (db != NULL) {
        conn_put(s, db);
    }
    return rc;
}

enum { PUT_DEL_TOKS, PUT_ROW, PUT_TOK, PUT_NSTMT };

static int prepare_put(sqlite3 *db, const char *t, sqlite3_stmt *stmt[PUT_NSTMT])
{
    char sql[256];
    int rc;
    snprintf(sql, sizeof(sql), "DELETE FROM \"x_%s\" WHERE doc = ?", t);
    rc = sqlite3_prepare_v2(db, sql, -1, &stmt[PUT_DEL_TOKS], NULL);
    if (rc == SQLITE_OK) {
        snprintf(sql, sizeof(sql),
                 "INSERT OR REPLACE INTO \"r_%s\"(doc, seq, blob) VALUES (?, ?, ?)", t);
        rc = sqlite3_prepare_v2(db, sql, -1, &stmt[PUT_ROW], NULL);
    }
    if (rc == SQLITE_OK) {
        snprintf(sql, sizeof(sql), "INSERT OR IGNORE INTO \"x_%s\"(col, tok, doc) VALUES (?, ?, ?)",
                 t);
        rc = sqlite3_prepare_v2(db, sql, -1, &stmt[PUT_TOK], NULL);
    }
    if (rc != SQLITE_OK) {
        for (int i = 0; i < PUT_NSTMT; i++) {
            sqlite3_finalize(stmt[i]);
            stmt[i] = NULL;
        }
    }
    return rc;
}

static int put_one(sqlite3_stmt *stmt[PUT_NSTMT], const struct vl_row *row)
{
    int rc = bind_bytes(stmt[PUT_DEL_TOKS], 1, row->doc.p, row->doc.n);
    if (rc == SQLITE_OK) {
        rc = step_done(stmt[PUT_DEL_TOKS]);
    }
    if (rc == SQLITE_OK) {
        rc = bind_bytes(stmt[PUT_ROW], 1, row->doc.p, row->doc.n);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(stmt[PUT_ROW], 2, (sqlite3_int64)row->seq);
    }
    if (rc == SQLITE_OK) {
        rc = bind_bytes(stmt[PUT_ROW], 3, row->blob.p, row->blob.n);
    }
    if (rc == SQLITE_OK) {
        rc = step_done(stmt[PUT_ROW]);
    }
    for (size_t j = 0; rc == SQLITE_OK && j < row->ntokens; j++) {
        const struct vl_token *tk = &row->tokens[j];
        rc = bind_bytes(stmt[PUT_TOK], 1, tk->col, VL_COL_BYTES);
        if (rc == SQLITE_OK) {
            rc = bind_bytes(stmt[PUT_TOK], 2, tk->tok.p, tk->tok.n);
        }
        if (rc == SQLITE_OK) {
            rc = bind_bytes(stmt[PUT_TOK], 3, row->doc.p, row->doc.n);
        }
        if (rc == SQLITE_OK) {
            rc = step_done(stmt[PUT_TOK]);
        }
    }
    return rc;
}

static veil_err sq_put_rows(struct vl_store *vs, const char *table, const struct vl_row *rows,
                            size_t n)
{
    struct sq_store *s = sq(vs);
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt[PUT_NSTMT] = {NULL};
    int locked = 0, in_txn = 0, created = 0;
    veil_err rc = VEIL_OK;
    int src = SQLITE_OK;

    if (!table_ok(table)) {
        rc = VEIL_ERR_INTERNAL;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (rows[i].doc.n != VL_DOCTOKEN_BYTES || (rows[i].ntokens > 0 && !rows[i].tokens)) {
            rc = VEIL_ERR_INTERNAL;
            goto out;
        }
    }
    if (n == 0) {
        goto out;
    }
    rc = conn_get(s, &db);
    if (rc != VEIL_OK) {
        goto out;
    }
    pthread_mutex_lock(&s->write_mu);
    locked = 1;
    src = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (src != SQLITE_OK) {
        goto out;
    }
    in_txn = 1;
    if (!cache_has(s, table)) {
        src = create_tables(db, table);
        created = 1;
    }
    if (src == SQLITE_OK) {
        src = prepare_put(db, table, stmt);
    }
    if (src != SQLITE_OK && !created) {
        /* Dropped behind our back (another process); make it again. */
        src = create_tables(db, table);
        created = 1;
        if (src == SQLITE_OK) {
            src = prepare_put(db, table, stmt);
        }
    }
    for (size_t i = 0; src == SQLITE_OK && i < n; i++) {
        src = put_one(stmt, &rows[i]);
    }

out:
    for (int i = 0; i < PUT_NSTMT; i++) {
        sqlite3_finalize(stmt[i]);
    }
    if (in_txn) {
        int end = txn_end(db, src == SQLITE_OK);
        src = src == SQLITE_OK ? end : src;
    }
    if (src != SQLITE_OK) {
        rc = sq_fail(s, src, "put_rows");
    } else if (created) {
        cache_add(s, table);
    }
    if (locked) {
        pthread_mutex_unlock(&s->write_mu);
    }
    if (db != NULL) {
        conn_put(s, db);
    }
    return rc;
}

/* Appends the rows of one executed SELECT doc, seq, blob to *out (capacity *cap). */
static int collect_rows(sqlite3_stmt *stmt, struct vl_rows *out, size_t *cap)
{
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (out->n == *cap) {
            size_t ncap = *cap ? *cap * 2 : 64;
            struct vl_row *p = realloc(out->rows, ncap * sizeof(*p));
            if (p == NULL) {
                rc = SQLITE_NOMEM;
                break;
            }
            out->rows = p;
            *cap = ncap;
        }
        struct vl_row *row = &out->rows[out->n];
        memset(row, 0, sizeof(*row));
        size_t dn = (size_t)sqlite3_column_bytes(stmt, 0);
        const void *dp = sqlite3_column_blob(stmt, 0);
        row->seq = (uint64_t)sqlite3_column_int64(stmt, 1);
        size_t bn = (size_t)sqlite3_column_bytes(stmt, 2);
        const void *bp = sqlite3_column_blob(stmt, 2);
        row->doc.p = malloc(dn ? dn : 1);
        row->blob.p = malloc(bn ? bn : 1);
        out->n++; /* counted now so that vl_rows_free releases a half-built row */
        if (row->doc.p == NULL || row->blob.p == NULL) {
            rc = SQLITE_NOMEM;
            break;
        }
        if (dn > 0) {
            memcpy(row->doc.p, dp, dn);
        }
        if (bn > 0) {
            memcpy(row->blob.p, bp, bn);
        }
        row->doc.n = dn;
        row->blob.n = bn;
    }
    sqlite3_reset(stmt);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static veil_err sq_get_rows(struct vl_store *vs, const char *table, const struct vl_bytes *docs,
                            size_t n, struct vl_rows *out)
{
    struct sq_store *s = sq(vs);
    sqlite3 *db = NULL;
    sqlite3_stmt *full = NULL, *part = NULL;
    struct vl_rows r = {NULL, 0};
    size_t cap = 0;
    int in_txn = 0, absent = 0;
    veil_err rc = VEIL_OK;
    int src = SQLITE_OK;
    char head[256];

    if (!table_ok(table)) {
        rc = VEIL_ERR_INTERNAL;
        goto out;
    }
    if (n == 0) {
        goto out;
    }
    rc = conn_get(s, &db);
    if (rc != VEIL_OK) {
        goto out;
    }
    src = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    if (src != SQLITE_OK) {
        goto out;
    }
    in_txn = 1;
    snprintf(head, sizeof(head), "SELECT doc, seq, blob FROM \"r_%s\" WHERE doc IN (", table);
    for (size_t at = 0; src == SQLITE_OK && at < n; at += SQ_DOC_BATCH) {
        size_t k = n - at < SQ_DOC_BATCH ? n - at : SQ_DOC_BATCH;
        sqlite3_stmt **stmt = k == SQ_DOC_BATCH ? &full : &part;
        if (*stmt == NULL) {
            src = prepare_in(db, head, k, ")", stmt);
            if (src != SQLITE_OK) {
                src = missing_table(db, table, src, &absent);
                break;
            }
        }
        for (size_t i = 0; src == SQLITE_OK && i < k; i++) {
            src = bind_bytes(*stmt, (int)i + 1, docs[at + i].p, docs[at + i].n);
        }
        if (src == SQLITE_OK) {
            src = collect_rows(*stmt, &r, &cap);
        }
    }

out:
    sqlite3_finalize(full);
    sqlite3_finalize(part);
    if (in_txn) {
        int end = txn_end(db, src == SQLITE_OK);
        src = src == SQLITE_OK ? end : src;
    }
    if (src != SQLITE_OK) {
        rc = sq_fail(s, src, "get_rows");
    }
    if (db != NULL) {
        conn_put(s, db);
    }
    if (rc == VEIL_OK) {
        *out = r;
    } else {
        vl_rows_free(&r);
    }
    return rc;
}

static veil_err sq_delete_rows(struct vl_store *vs, const char *table,
                               const struct vl_bytes *docs, size_t n)
{
    struct sq_store *s = sq(vs);
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt[2][2] = {{NULL, NULL}, {NULL, NULL}}; /* [full, part][x_T, r_T] */
    int locked = 0, in_txn = 0, absent = 0;
    veil_err rc = VEIL_OK;
    int src = SQLITE_OK;
    char head[2][256];

    if (!table_ok(table)) {
        rc = VEIL_ERR_INTERNAL;
        goto out;
    }
    if (n == 0) {
        goto out;
    }
    rc = conn_get(s, &db);
    if (rc != VEIL_OK) {
        goto out;
    }
    pthread_mutex_lock(&s->write_mu);
    locked = 1;
    src = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (src != SQLITE_OK) {
        goto out;
    }
    in_txn = 1;
    snprintf(head[0], sizeof(head[0]), "DELETE FROM \"x_%s\" WHERE doc IN (", table);
    snprintf(head[1], sizeof(head[1]), "DELETE FROM \"r_%s\" WHERE doc IN (", table);
    for (size_t at = 0; src == SQLITE_OK && !absent && at < n; at += SQ_DOC_BATCH) {
        size_t k = n - at < SQ_DOC_BATCH ? n - at : SQ_DOC_BATCH;
        sqlite3_stmt **pair = stmt[k == SQ_DOC_BATCH ? 0 : 1];
        for (int w = 0; src == SQLITE_OK && w < 2; w++) {
            if (pair[w] == NULL) {
                src = prepare_in(db, head[w], k, ")", &pair[w]);
                if (src != SQLITE_OK) {
                    src = missing_table(db, table, src, &absent);
                    break;
                }
            }
            for (size_t i = 0; src == SQLITE_OK && i < k; i++) {
                src = bind_bytes(pair[w], (int)i + 1, docs[at + i].p, docs[at + i].n);
            }
            if (src == SQLITE_OK) {
                src = step_done(pair[w]);
            }
        }
    }

out:
    for (int i = 0; i < 2; i++) {
        sqlite3_finalize(stmt[i][0]);
        sqlite3_finalize(stmt[i][1]);
    }
    if (in_txn) {
        int end = txn_end(db, src == SQLITE_OK);
        src = src == SQLITE_OK ? end : src;
    }
    if (src != SQLITE_OK) {
        rc = sq_fail(s, src, "delete_rows");
    }
    if (locked) {
        pthread_mutex_unlock(&s->write_mu);
    }
    if (db != NULL) {
        conn_put(s, db);
    }
    return rc;
}

/* Builds the find statement. Terms are inline IN lists when all placeholders fit under
 * SQLite's limit, otherwise every term's tokens go through temp.vl_find. */
static veil_err find_sql(const char *t, const struct vl_pred *pred, int has_after, int via_temp,
                         struct vl_buf *b)
{
    veil_err rc = VEIL_OK;
    char part[256];
    snprintf(part, sizeof(part), "SELECT doc FROM \"r_%s\" WHERE 1", t);
    rc = vl_buf_append_str(b, part);
    if (rc == VEIL_OK && has_after) {
        rc = vl_buf_append_str(b, " AND doc > ?");
    }
    for (size_t i = 0; rc == VEIL_OK && i < pred->nterms; i++) {
        snprintf(part, sizeof(part),
                 " AND doc IN (SELECT doc FROM \"x_%s\" WHERE col = ? AND tok IN (", t);
        rc = vl_buf_append_str(b, part);
        if (rc == VEIL_OK && via_temp) {
            rc = vl_buf_append_str(b, "SELECT tok FROM temp.vl_find WHERE term = ?");
        }
        for (size_t j = 0; rc == VEIL_OK && !via_temp && j < pred->terms[i].ntoks; j++) {
            rc = vl_buf_append_str(b, j > 0 ? ",?" : "?");
        }
        if (rc == VEIL_OK) {
            rc = vl_buf_append_str(b, "))");
        }
    }
    if (rc == VEIL_OK) {
        rc = vl_buf_append_str(b, " ORDER BY doc LIMIT ?");
    }
    return rc;
}

/* Loads every term's tokens into temp.vl_find (undone by the caller's ROLLBACK). */
static int find_load_temp(sqlite3 *db, const struct vl_pred *pred)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO temp.vl_find(term, tok) VALUES (?, ?)",
                                -1, &stmt, NULL);
    for (size_t i = 0; rc == SQLITE_OK && i < pred->nterms; i++) {
        const struct vl_pred_term *term = &pred->terms[i];
        for (size_t j = 0; rc == SQLITE_OK && j < term->ntoks; j++) {
            rc = sqlite3_bind_int64(stmt, 1, (sqlite3_int64)i);
            if (rc == SQLITE_OK) {
                rc = bind_bytes(stmt, 2, term->toks[j].p, term->toks[j].n);
            }
            if (rc == SQLITE_OK) {
                rc = step_done(stmt);
            }
        }
    }
    sqlite3_finalize(stmt);
    return rc;
}

static veil_err sq_find(struct vl_store *vs, const char *table, const struct vl_pred *pred,
                        const uint8_t *after, size_t limit, struct vl_doclist *out)
{
    struct sq_store *s = sq(vs);
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    struct vl_doclist l = {NULL, 0};
    struct vl_buf sql;
    size_t cap = 0;
    int in_txn = 0, absent = 0, via_temp = 0, arg = 1;
    veil_err rc = VEIL_OK;
    int src = SQLITE_OK;

    vl_buf_init(&sql, SQ_SQL_MAX);
    if (!table_ok(table) || pred == NULL || (pred->nterms > 0 && pred->terms == NULL)) {
        rc = VEIL_ERR_INTERNAL;
        goto out;
    }
    if (limit == 0) {
        goto out;
    }
    size_t nparams = 2; /* after, limit */
    for (size_t i = 0; i < pred->nterms; i++) {
        if (pred->terms[i].ntoks == 0) {
            goto out; /* an empty OR is false, and so is the AND */
        }
        nparams += 1 + pred->terms[i].ntoks;
        if (pred->terms[i].ntoks > SQ_SQL_MAX) {
            nparams = SIZE_MAX / 2; /* absurd; send it through the temp table */
        }
    }
    rc = conn_get(s, &db);
    if (rc != VEIL_OK) {
        goto out;
    }
    size_t maxvars = (size_t)sqlite3_limit(db, SQLITE_LIMIT_VARIABLE_NUMBER, -1);
    via_temp = nparams > maxvars;
    if (via_temp && 2 + 2 * pred->nterms > maxvars) {
        rc = VEIL_ERR_TOO_LARGE;
        goto out;
    }
    rc = find_sql(table, pred, after != NULL, via_temp, &sql);
    if (rc != VEIL_OK) {
        goto out;
    }
    src = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    if (src != SQLITE_OK) {
        goto out;
    }
    in_txn = 1;
    src = sqlite3_prepare_v2(db, (const char *)sql.data, -1, &stmt, NULL);
    if (src != SQLITE_OK) {
        src = missing_table(db, table, src, &absent);
        goto out;
    }
    if (via_temp) {
        src = find_load_temp(db, pred);
    }
    if (src == SQLITE_OK && after != NULL) {
        src = bind_bytes(stmt, arg++, after, VL_DOCTOKEN_BYTES);
    }
    for (size_t i = 0; src == SQLITE_OK && i < pred->nterms; i++) {
        const struct vl_pred_term *term = &pred->terms[i];
        src = bind_bytes(stmt, arg++, term->col, VL_COL_BYTES);
        if (src == SQLITE_OK && via_temp) {
            src = sqlite3_bind_int64(stmt, arg++, (sqlite3_int64)i);
        }
        for (size_t j = 0; src == SQLITE_OK && !via_temp && j < term->ntoks; j++) {
            src = bind_bytes(stmt, arg++, term->toks[j].p, term->toks[j].n);
        }
    }
    if (src == SQLITE_OK) {
        src = sqlite3_bind_int64(stmt, arg++, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
    }
    while (src == SQLITE_OK && (src = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (sqlite3_column_bytes(stmt, 0) != VL_DOCTOKEN_BYTES) {
            vl_log(VL_LOG_WARN, "store %s: find met a document token of the wrong length",
                   s->name);
            rc = VEIL_ERR_INTEGRITY;
            src = SQLITE_OK;
            goto out;
        }
        if (l.n == cap) {
            size_t ncap = cap ? cap * 2 : (limit < 256 ? limit : 256);
            void *p = realloc(l.docs, ncap * sizeof(*l.docs));
            if (p == NULL) {
                src = SQLITE_NOMEM;
                break;
            }
            l.docs = p;
            cap = ncap;
        }
        memcpy(l.docs[l.n++], sqlite3_column_blob(stmt, 0), VL_DOCTOKEN_BYTES);
        src = SQLITE_OK;
    }
    src = src == SQLITE_DONE ? SQLITE_OK : src;

out:
    sqlite3_finalize(stmt);
    vl_buf_free(&sql);
    if (in_txn) {
        txn_end(db, 0); /* read only: ROLLBACK also empties temp.vl_find */
    }
    if (src != SQLITE_OK) {
        rc = sq_fail(s, src, "find");
    }
    if (db != NULL) {
        conn_put(s, db);
    }
    if (rc == VEIL_OK) {
        *out = l;
    } else {
        vl_doclist_free(&l);
    }
    return rc;
}

/* ---- open and close ---- */

/* mkdir -p of the directories above `path`, mode SQ_DIR_MODE; -1 (errno set) on failure. */
static int make_parents(const char *path)
{
    int ret = 0;
    char *p = strdup(path);
    if (p == NULL) {
        errno = ENOMEM;
        ret = -1;
        goto out;
    }
    for (char *c = p + 1; *c != '\0'; c++) {
        if (*c != '/') {
            continue;
        }
        *c = '\0';
        if (mkdir(p, SQ_DIR_MODE) != 0) {
            struct stat sb;
            if (errno != EEXIST) {
                ret = -1;
            } else if (stat(p, &sb) != 0) {
                ret = -1;
            } else if (!S_ISDIR(sb.st_mode)) {
                errno = ENOTDIR;
                ret = -1;
            }
        }
        *c = '/';
        if (ret != 0) {
            goto out;
        }
    }

out:
    free(p);
    return ret;
}

static void sq_close(struct vl_store *vs)
{
    struct sq_store *s = sq(vs);
    if (s == NULL) {
        return;
    }
    assert(s->nidle == s->nopen); /* no operation may outlive close */
    for (size_t i = 0; i < s->nidle; i++) {
        sqlite3_close(s->idle[i]);
    }
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->write_mu);
    free(s->tables);
    free(s->path);
    free(s->name);
    free(s);
}

static veil_err sq_open(const char *url, const char *datadir, struct vl_store **out,
                        veil_status *st)
{
    veil_err rc = VEIL_OK;
    struct sq_store *s = NULL;
    sqlite3 *db = NULL;
    struct stat sb;

    if (url == NULL || url[0] == '\0') {
        rc = vl_status_set(st, VEIL_ERR_BAD_REQUEST, NULL, "sqlite store URL has no path");
        goto out;
    }
    if (!sqlite3_threadsafe()) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "SQLite was built without threads");
        goto out;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    s->base.ops = &vl_store_sqlite_ops;
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->write_mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    size_t ulen = strlen(url);
    size_t dlen = url[0] != '/' && datadir != NULL && datadir[0] != '\0' ? strlen(datadir) : 0;
    s->path = malloc(dlen + 1 + ulen + 1);
    s->name = malloc(sizeof("sqlite:") + ulen);
    if (s->path == NULL || s->name == NULL) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    if (dlen > 0) {
        snprintf(s->path, dlen + 1 + ulen + 1, "%s/%s", datadir, url);
    } else {
        memcpy(s->path, url, ulen + 1);
    }
    snprintf(s->name, sizeof("sqlite:") + ulen, "sqlite:%s", url);

    if (make_parents(s->path) != 0) {
        rc = vl_status_set(st, VEIL_ERR_STORE_UNAVAILABLE, NULL,
                           "store %s: cannot create its directory: %s", s->name,
                           strerror(errno));
        goto out;
    }
    int existed = stat(s->path, &sb) == 0;
    int src = conn_open(s, &db);
    if (src != SQLITE_OK) {
        vl_log(VL_LOG_WARN, "store %s: open failed: %s", s->name, sqlite3_errstr(src));
        rc = vl_status_set(st, VEIL_ERR_STORE_UNAVAILABLE, NULL, "store %s: cannot open: %s",
                           s->name, sqlite3_errstr(src));
        goto out;
    }
    if (!existed && chmod(s->path, SQ_FILE_MODE) != 0) {
        vl_log(VL_LOG_WARN, "store %s: cannot restrict file mode", s->name);
    }
    s->idle[s->nidle++] = db;
    s->nopen = 1;

out:
    if (rc == VEIL_OK) {
        *out = &s->base;
    } else {
        sq_close(s == NULL ? NULL : &s->base);
    }
    return rc;
}

const struct vl_store_ops vl_store_sqlite_ops = {
    .version = 1,
    .scheme = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .ping = sq_ping,
    .ensure_table = sq_ensure_table,
    .drop_table = sq_drop_table,
    .put_rows = sq_put_rows,
    .get_rows = sq_get_rows,
    .delete_rows = sq_delete_rows,
    .find = sq_find,
};
