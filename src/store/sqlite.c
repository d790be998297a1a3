/*
 * sqlite.c: the embedded untrusted store (veil.yaml "sqlite:cloud/cloud.db"), one SQLite
 * file holding opaque tables.
 *
 * Each opaque table T (1..64 lowercase hex, checked before it is spliced into SQL) becomes
 *     r_T(seq INTEGER PRIMARY KEY, doc BLOB NOT NULL, blob BLOB NOT NULL)
 *         with d_T, a unique index on doc
 *     x_T(col BLOB, part INTEGER, tok BLOB, doc BLOB, seq INTEGER NOT NULL,
 *         PRIMARY KEY(col, part, tok, doc)) WITHOUT ROWID
 *     y_T(seq INTEGER, col BLOB, tok BLOB, PRIMARY KEY(seq, col, tok)) WITHOUT ROWID
 *     q_T(part INTEGER PRIMARY KEY, level INTEGER NOT NULL, n INTEGER NOT NULL)
 *     s_T(seq INTEGER, col BLOB, l0..l3 INTEGER NOT NULL, PRIMARY KEY(seq, col)) WITHOUT ROWID
 *     p_T(seq INTEGER, col BLOB, val BLOB NOT NULL, PRIMARY KEY(seq, col)) WITHOUT ROWID
 *     k_T(key BLOB PRIMARY KEY, val BLOB NOT NULL) WITHOUT ROWID
 * A row is keyed by its sequence number, which the engine takes from trusted state in
 * blocks of consecutive numbers: rows, their cells (s_T: ASHE cells as four 32-bit limbs;
 * p_T: Paillier cells) and their tokens by row (y_T) are written as runs of consecutive
 * keys, a few B-tree pages a batch instead of a page a document. The caller promises
 * numbers of 0..2^63-1 that no other row of the table holds. A replaced row goes whole
 * (found through d_T, its tokens through y_T, its cells by number) and its new version
 * comes with its new number.
 *
 * x_T, the index from (column, token) to documents, is log-structured: its entries are
 * keyed by pseudo-random tokens, so in one B-tree every new document's entries would land on
 * as many pages all over the file, and the commit would write each of them (the rate fell
 * as the store grew). Instead x_T is cut into partitions, listed in q_T: new entries go to
 * the newest partition of level 0 until it holds SQ_PART_ENTRIES (a few MB, whose pages a
 * batch's sorted inserts touch again and again), then to a new one; when SQ_PART_FANOUT
 * partitions of one level exist, the write that made the last one merges them into one of
 * the next level (part_merge: per column, their entries copied in key order, which appends,
 * and deleted), so there are a few partitions per level and few levels. A lookup of a token
 * seeks it in every partition ("part IN (SELECT part FROM q_T)"): one seek each. A merge is
 * part of the write that triggers it, in its transaction, so that write takes longer (the
 * rarer the higher the level).
 * The layout's version is in PRAGMA user_version (SQ_FORMAT); a file of another layout is
 * refused when the store is opened, never read wrongly.
 *
 * kv_get sorts the wanted keys and drops repeats, looks the distinct keys up in batches of
 * SQ_KV_BATCH with one prepared "key IN (?,...,?)" statement (SQLite probes k_T's primary
 * key once per key, in key order, so a large get walks the B-tree from left to right), all
 * in one read transaction, and maps each answer back to every position that asked for it.
 * The values are copied into one allocation (the arena of struct vl_kv_values). Measured
 * (10,000 keys among 1,000,000 entries of 64 bytes, file in the OS cache), the batch size
 * hardly matters from 1 to 500 (each key costs one B-tree descent, about 2 us); larger IN
 * lists were slower.
 *
 * A predicate's `only_docs` set (up to some 100,000 document tokens, far more than SQLite
 * binds at once) goes through temp.vl_docs, a per-connection temporary table loaded, sorted,
 * inside the call's transaction and emptied by its ROLLBACK. Its documents are candidates to
 * be probed, not a set to intersect: find adds "doc IN (SELECT doc FROM temp.vl_docs)", which
 * SQLite uses to walk vl_docs in document order and seek r_T (so after and limit stop it
 * early), and each term becomes a correlated EXISTS that seeks the candidate's tokens in the
 * term's column through y_T (append_probe). The cost then follows the number of candidates,
 * never how many rows a term matches: with 100 candidates and a term matching half of
 * 200,000 rows, 0.3 ms instead of 75 ms when the term's documents were collected first.
 *
 * members (every row having one of some tokens in a column, for the engine to check against
 * its trusted counts and hashes) is one statement in one read transaction: x_T's entries of
 * (col, each token), each a seek of x_T's primary key, and nothing else (joining each entry
 * to its row, which the engine does not need, cost four times as much). The
 * tokens are bound inline, or go through
 * temp.vl_find (as term 0) when there are more than SQLite binds at once. SQLite answers each
 * entry with its token, which this file maps back to every index that asked for it (a token
 * asked twice gets its rows twice), so a row with several of the tokens comes once for each.
 * Measured (100,000 rows of 25 tokens each, file in the OS cache, -O2): 100,000 members of
 * one token in 60-90 ms, as long as a find of them all; sorting the entries by document
 * first, so that r_T is probed in order, gained nothing.
 *
 * Aggregates are computed by SQLite, over the stored cells, in one read transaction and one
 * statement:
 *   - the predicate becomes a MATERIALIZED CTE f(seq): an INTERSECT of one lookup of x_T
 *     per term (an entry carries its row's number); or, with only_docs, the rows of
 *     temp.vl_docs' documents (through d_T) that pass every term's probe of y_T (as in
 *     find). The matching rows are f's (tokens exist only with their row), or, with no
 *     predicate, every row: their numbers read from d_T (a few MB where r_T's pages hold the
 *     blobs) and sorted, so that the probes below walk y_T and s_T in order;
 *   - each is LEFT JOINed to its tokens in the group columns (y_T by (seq, col); a missing
 *     token is the key x'') and to its cells in the aggregated columns (by (seq, col)); one
 *     GROUP BY over the keys (one sort) then gives per group count(*) and veil_runs(seq) of
 *     its rows, and, per column, count, limb SUMs and veil_runs(seq, limbs), or
 *     veil_mulmod(val, n^2);
 *   - veil_runs and veil_mulmod are aggregate SQL functions defined here and registered on
 *     every pooled connection. veil_mulmod multiplies Paillier cells modulo n^2 with GMP:
 *     SQLite has no bignum arithmetic. veil_runs collects a group's sequence numbers, sorts
 *     them and returns their maximal runs as one compact blob (runs_final), which this file
 *     decodes and checks; the proxy needs those runs to remove the ASHE key stream, and SQL
 *     can only express them with a window function and a second sort per column. Both are
 *     supplied to the engine and run inside it over the stored columns, and the caller
 *     receives one answer per group, exactly as from a PostgreSQL driver using its own
 *     aggregates: the database learns nothing it did not already store.
 * A group exists when at least one row matches: no matching row, no group (also with no
 * group columns). A row with several tokens in a group column counts in each of their
 * groups. Groups come in key order (the GROUP BY's sort), which the interface does not
 * promise.
 *
 * Performance: besides x_T's partitions (above), put_rows inserts a call's x_T entries in
 * key order, so that each page is visited once per call. A checkpoint every SQ_WAL_PAGES
 * pages (SQLite's default is 1000) writes a page that several commits touched once, and
 * syncs the file less often. temp_store stays at its default, so a large GROUP BY or a
 * merge sorts in cache-sized runs merged through a temporary file (holding only what the
 * database already holds) instead of in memory one allocation per record.
 *
 * What the store learns: the number of tables and of rows in each; each row's document token,
 * sequence number and sealed blob (its size); every (column, token) pair of each row (with
 * the row's sequence number, which it holds anyway, and the partition it went to, which
 * tells roughly when it was written, which it saw anyway), hence
 * which rows share an equality token and how many range tokens a row has; which columns of a
 * row have sum cells (never their values: ASHE and Paillier ciphertexts); and, from each call,
 * which document tokens were read or written together, which tokens a find, a members call or
 * an aggregate asks for, which documents it is restricted to (only_docs: a text search's
 * candidates), which documents answer it, and which columns are grouped and summed together. Of
 * the key-value space: how many entries a table has and the size of each value; which keys are
 * written, read or deleted together, which of those read exist, and how often the same key is
 * asked for again. It never sees a key, a plaintext or a document id.
 *
 * Invariants: every operation is one transaction (writes BEGIN IMMEDIATE, reads a deferred
 * BEGIN for one snapshot across batches) and is rolled back on any error, so a failed call
 * has written nothing. secure_delete is on, so a deleted row's bytes are zeroed in the
 * database pages (in the file itself at the next checkpoint), and drop_table truncates the
 * WAL so old frames do not linger either.
 *
 * Concurrency: a small pool of connections (at most SQ_POOL_MAX, opened on demand), each
 * used by one thread at a time and therefore opened SQLITE_OPEN_NOMUTEX. In WAL mode readers
 * then run in parallel and never wait for a writer. Writers inside this process take
 * `write_mu` before BEGIN IMMEDIATE, so they queue on a mutex instead of spinning in
 * SQLite's busy handler; busy_timeout is left for other processes (the CLI) sharing the
 * file. Lock order: a connection first, then write_mu; a thread holding write_mu never
 * waits for a connection, so the two cannot deadlock.
 *
 * Behaviour the interface leaves open: reads, finds, members and deletes on a table that does
 * not exist see an empty table, and so do kv_get and kv_delete on a key-value space that does
 * not exist (also a table written before k_T was added); put_rows and kv_put create their table
 * if needed. Repeated keys in one kv_put: the last entry wins; repeated keys in one kv_get
 * share their value's bytes in the arena. A table name that is not 1..64 lowercase hex, a row
 * whose document token is not VL_DOCTOKEN_BYTES long, a sum cell limb outside 0..2^32-1, two
 * cells of one kind in one column of a row, a row whose seq exceeds INT64_MAX (sequence
 * numbers are SQLite integers), an empty product cell, a malformed
 * predicate (an only_docs token that is not VL_DOCTOKEN_BYTES long) or aggregate request, a
 * members token with no bytes behind a non-zero length, a key-value key that is not
 * VL_KV_KEY_BYTES long or a value that is not 1..VL_KV_VAL_MAX bytes is a caller bug:
 * VEIL_ERR_INTERNAL, and nothing is written. Stored data that put_rows and kv_put cannot have
 * written is VEIL_ERR_INTEGRITY (the engine reports it as a breach, never as an outage): in an
 * aggregate, a key that is not a blob, a negative sequence number (the key makes them integers
 * and unique), a limb that is not an integer of 0..2^32-1, limb SUMs that overflow, a Paillier cell
 * that is not a blob, a missing product; in get_rows, a row whose document token is not a blob
 * of VL_DOCTOKEN_BYTES, whose seq is not an integer or whose blob is not a blob; in a find, a
 * stored document token of the wrong length; in members, a document token that is not a blob of
 * VL_DOCTOKEN_BYTES, a seq that is not an integer, a token that is not a blob or was not asked
 * for; in a kv_get, a stored value that is not a blob of 1..VL_KV_VAL_MAX bytes. A second
 * row with a number another row holds fails the call (a constraint of r_T's key) and writes
 * nothing. SQLite failures are logged with the store's name, the operation and SQLite's
 * generic text, never with data.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <gmp.h>
#include <sqlite3.h>

#include "store/store.h"
#include "util/log.h"

#define SQ_POOL_MAX 8         /* connections per store */
#define SQ_BUSY_MS 5000       /* wait for other processes' locks this long */
#define SQ_DOC_BATCH 500      /* document tokens per IN list in get and delete */
#define SQ_KV_BATCH 500       /* keys per IN list in kv_get and kv_delete */
#define SQ_SQL_MAX (1u << 22) /* longest statement text we build */
#define SQ_AGG_MAX_COLS 32    /* aggregated columns per request (SQLite joins <= 64 tables) */
#define SQ_MODULUS_MAX 4096   /* bytes of a Paillier modulus n^2 (n of 16384 bits) */
#define SQ_LIMB_MAX 0xffffffffLL
#define SQ_WAL_PAGES "10000"  /* checkpoint when the WAL holds this many pages (40 MiB) */
#define SQ_FORMAT 3           /* the layout of the file header, in PRAGMA user_version */
#define SQ_FORMAT_S "3"
#define SQ_PART_ENTRIES 65536 /* x_T entries a partition of level 0 takes */
#define SQ_PART_FANOUT 4      /* partitions of a level merged into one of the next */
#define SQ_PART_LEVELS 16
#define SQ_PART_MERGE_MAX 64 /* partitions one merge takes at most (a store may list more) */
#define SQ_PART_SQL 4096
#define SQ_BAD_DATA (-1)      /* not an SQLite code: stored data no honest store holds */
#define SQ_DIR_MODE 0700
#define SQ_FILE_MODE 0600

/* Per connection; the temp tables hold the tokens of terms too large to bind inline and a
 * predicate's only_docs set. */
static const char sq_setup[] = "PRAGMA synchronous=NORMAL;"
                               "PRAGMA wal_autocheckpoint=" SQ_WAL_PAGES ";"
                               "PRAGMA secure_delete=ON;"
                               "PRAGMA foreign_keys=OFF;"
                               "CREATE TEMP TABLE IF NOT EXISTS vl_find(term INTEGER NOT NULL,"
                               " tok BLOB NOT NULL, PRIMARY KEY(term, tok)) WITHOUT ROWID;"
                               "CREATE TEMP TABLE IF NOT EXISTS vl_docs(doc BLOB PRIMARY KEY)"
                               " WITHOUT ROWID;"
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
    sqlite3_int64 part_entries; /* x_T entries a partition of level 0 takes */
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

/* ---- veil_mulmod: Paillier products inside SQLite ---- */

/* The state of one veil_mulmod(val, modulus) aggregate, in SQLite's aggregate context
 * (zeroed on first use). */
struct sq_mulmod {
    int init;  /* acc and mod are initialised */
    int any;   /* at least one non-NULL val */
    mpz_t acc; /* product so far, reduced modulo mod */
    mpz_t mod;
    mpz_t val; /* scratch for the current cell */
};

static void mulmod_import(mpz_t z, sqlite3_value *v)
{
    int n = sqlite3_value_bytes(v);
    const void *p = sqlite3_value_blob(v);
    if (p == NULL || n <= 0) {
        mpz_set_ui(z, 0);
    } else {
        mpz_import(z, (size_t)n, 1, 1, 1, 0, p);
    }
}

/* Step: multiplies a non-NULL blob `val` into the product modulo `modulus` (the first
 * row's); NULL vals are skipped, like SUM skips NULLs. A modulus below 2 is an error. */
static void mulmod_step(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    struct sq_mulmod *m = sqlite3_aggregate_context(ctx, sizeof(*m));
    if (m == NULL) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    if (!m->init) {
        if (sqlite3_value_type(argv[1]) != SQLITE_BLOB ||
            sqlite3_value_bytes(argv[1]) > SQ_MODULUS_MAX) {
            sqlite3_result_error(ctx, "veil_mulmod: bad modulus", -1);
            return;
        }
        mpz_init_set_ui(m->acc, 1);
        mpz_init(m->mod);
        mpz_init(m->val);
        m->init = 1;
        mulmod_import(m->mod, argv[1]);
        if (mpz_cmp_ui(m->mod, 2) < 0) {
            sqlite3_result_error(ctx, "veil_mulmod: bad modulus", -1);
            return;
        }
    }
    if (sqlite3_value_type(argv[0]) == SQLITE_NULL) {
        return;
    }
    if (sqlite3_value_type(argv[0]) != SQLITE_BLOB) {
        sqlite3_result_error(ctx, "veil_mulmod: cell is not a blob", -1);
        return;
    }
    mulmod_import(m->val, argv[0]);
    mpz_mul(m->acc, m->acc, m->val);
    mpz_mod(m->acc, m->acc, m->mod);
    m->any = 1;
}

/* Final: the product as a minimal big-endian blob (one zero byte for 0), or NULL when no
 * cell was multiplied. Also frees the GMP state, so it runs even after an error. */
static void mulmod_final(sqlite3_context *ctx)
{
    struct sq_mulmod *m = sqlite3_aggregate_context(ctx, 0);
    if (m == NULL || !m->init) {
        sqlite3_result_null(ctx);
        return;
    }
    if (!m->any) {
        sqlite3_result_null(ctx);
    } else {
        size_t n = (mpz_sizeinbase(m->acc, 2) + 7) / 8;
        uint8_t *out = sqlite3_malloc64(n ? n : 1);
        if (out == NULL) {
            sqlite3_result_error_nomem(ctx);
        } else {
            size_t got = 0;
            out[0] = 0;
            mpz_export(out, &got, 1, 1, 1, 0, m->acc);
            sqlite3_result_blob64(ctx, out, got ? got : 1, sqlite3_free);
        }
    }
    mpz_clear(m->acc);
    mpz_clear(m->mod);
    mpz_clear(m->val);
    m->init = 0;
}

/* ---- veil_runs: the runs of a group's sequence numbers inside SQLite ---- */

/* The state of one veil_runs(seq, l0, l1, l2, l3) aggregate: the group's sequence numbers,
 * collected in SQLite's memory (so SQLite's heap limit and soft limits apply) and sorted at
 * the end. */
struct sq_runs {
    sqlite3_int64 *seq;
    size_t n;
    size_t cap;
    int bad; /* a seq that is not a non-negative integer, or a limb outside 0..2^32-1 */
};

/* Step: collects a non-NULL integer seq (NULLs are skipped, like SUM skips them: a row
 * without a cell in the column). The cell's limbs come along only to be checked: each must
 * be an integer of 0..2^32-1, as put_rows wrote it, or the limb SUMs beside this aggregate
 * add something no honest store holds. */
static void runs_step(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    struct sq_runs *r = sqlite3_aggregate_context(ctx, sizeof(*r));
    if (r == NULL) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    int type = sqlite3_value_type(argv[0]);
    if (type == SQLITE_NULL) {
        return;
    }
    sqlite3_int64 v = sqlite3_value_int64(argv[0]);
    if (type != SQLITE_INTEGER || v < 0) {
        r->bad = 1;
        return;
    }
    for (int k = 1; k < argc; k++) {
        sqlite3_int64 limb = sqlite3_value_int64(argv[k]);
        if (sqlite3_value_type(argv[k]) != SQLITE_INTEGER || limb < 0 || limb > SQ_LIMB_MAX) {
            r->bad = 1;
            return;
        }
    }
    if (r->n == r->cap) {
        size_t ncap = r->cap ? r->cap * 2 : 64;
        sqlite3_int64 *p = sqlite3_realloc64(r->seq, ncap * sizeof(*p));
        if (p == NULL) {
            sqlite3_result_error_nomem(ctx);
            return;
        }
        r->seq = p;
        r->cap = ncap;
    }
    r->seq[r->n++] = v;
}

static int seq_cmp(const void *a, const void *b)
{
    sqlite3_int64 x = *(const sqlite3_int64 *)a, y = *(const sqlite3_int64 *)b;
    return (x > y) - (x < y);
}

/* Final: the maximal runs of the sorted sequence numbers as a blob of unsigned LEB128
 * varints, two per run: the first run's start, then each later run's start less the
 * previous run's end less 2 (maximal runs leave a gap of at least one); and each run's
 * length less 1. NULL when no seq was collected; the integer -1 when a seq was not a
 * non-negative integer or came twice, or a limb was out of range (stored data the caller
 * cannot trust). */
static void runs_final(sqlite3_context *ctx)
{
    struct sq_runs *r = sqlite3_aggregate_context(ctx, 0);
    if (r == NULL || (r->n == 0 && !r->bad)) {
        sqlite3_result_null(ctx);
        goto out;
    }
    if (r->bad) {
        sqlite3_result_int64(ctx, -1);
        goto out;
    }
    qsort(r->seq, r->n, sizeof(*r->seq), seq_cmp);
    /* two passes: the exact size (and any repeat), then the encoding */
    uint8_t *blob = NULL;
    size_t len = 0;
    for (int pass = 0; pass < 2; pass++) {
        uint8_t tmp[20];
        uint64_t prev_last = 0;
        len = 0;
        for (size_t i = 0, j; i < r->n; i = j + 1) {
            /* unsigned: seq[j] + 1 must not overflow when seq[j] is INT64_MAX */
            for (j = i; j + 1 < r->n && (uint64_t)r->seq[j + 1] == (uint64_t)r->seq[j] + 1; j++) {
            }
            if (j + 1 < r->n && r->seq[j + 1] == r->seq[j]) {
                sqlite3_result_int64(ctx, -1); /* a sequence number used twice */
                goto out;
            }
            uint64_t first = (uint64_t)r->seq[i];
            len += vl_varint_put(pass ? blob + len : tmp,
                                 i == 0 ? first : first - prev_last - 2);
            len += vl_varint_put(pass ? blob + len : tmp, (uint64_t)(j - i));
            prev_last = (uint64_t)r->seq[j];
        }
        if (pass == 0 && (blob = sqlite3_malloc64(len)) == NULL) {
            sqlite3_result_error_nomem(ctx);
            goto out;
        }
    }
    sqlite3_result_blob64(ctx, blob, len, sqlite3_free);

out:
    if (r != NULL) {
        sqlite3_free(r->seq);
        r->seq = NULL;
        r->n = r->cap = 0;
    }
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
    if (rc == SQLITE_OK) {
        /* DIRECTONLY: callable from our statements, never from a schema's triggers or
         * views (the database file is not trusted). */
        rc = sqlite3_create_function_v2(db, "veil_mulmod", 2,
                                        SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_DIRECTONLY,
                                        NULL, NULL, mulmod_step, mulmod_final, NULL);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_create_function_v2(db, "veil_runs", 1 + VL_SUM_LIMBS,
                                        SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_DIRECTONLY,
                                        NULL, NULL, runs_step, runs_final, NULL);
    }
    if (rc == SQLITE_OK) { /* veil_runs(seq): a group's rows, without cells to check */
        rc = sqlite3_create_function_v2(db, "veil_runs", 1,
                                        SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_DIRECTONLY,
                                        NULL, NULL, runs_step, runs_final, NULL);
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

/* *exists = whether the SQL table `kind`_t exists ('r': the opaque table t itself, 'k': its
 * key-value space). */
static int table_exists(sqlite3 *db, char kind, const char *t, int *exists)
{
    char name[VL_TABLE_NAME_MAX + 3];
    sqlite3_stmt *stmt = NULL;
    snprintf(name, sizeof(name), "%c_%s", kind, t);
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

/* A prepare on SQL table `kind`_t failed with prep_rc: SQLITE_OK (and *absent) when that
 * table is simply missing, otherwise the code to report. */
static int missing_sql_table(sqlite3 *db, char kind, const char *t, int prep_rc, int *absent)
{
    int exists = 1;
    *absent = 0;
    if ((prep_rc & 0xff) != SQLITE_ERROR) {
        return prep_rc;
    }
    int rc = table_exists(db, kind, t, &exists);
    if (rc != SQLITE_OK) {
        return rc;
    }
    *absent = !exists;
    return exists ? prep_rc : SQLITE_OK;
}

/* missing_sql_table for the opaque table t (its rows table). */
static int missing_table(sqlite3 *db, const char *t, int prep_rc, int *absent)
{
    return missing_sql_table(db, 'r', t, prep_rc, absent);
}

static int create_tables(sqlite3 *db, const char *t)
{
    char sql[2048];
    snprintf(sql, sizeof(sql),
             "CREATE TABLE IF NOT EXISTS \"r_%s\"(seq INTEGER PRIMARY KEY, doc BLOB NOT NULL,"
             " blob BLOB NOT NULL);"
             "CREATE UNIQUE INDEX IF NOT EXISTS \"d_%s\" ON \"r_%s\"(doc);"
             "CREATE TABLE IF NOT EXISTS \"x_%s\"(col BLOB, part INTEGER, tok BLOB, doc BLOB,"
             " seq INTEGER NOT NULL, PRIMARY KEY(col, part, tok, doc)) WITHOUT ROWID;"
             "CREATE TABLE IF NOT EXISTS \"y_%s\"(seq INTEGER, col BLOB, tok BLOB,"
             " PRIMARY KEY(seq, col, tok)) WITHOUT ROWID;"
             "CREATE TABLE IF NOT EXISTS \"q_%s\"(part INTEGER PRIMARY KEY,"
             " level INTEGER NOT NULL, n INTEGER NOT NULL);"
             "CREATE TABLE IF NOT EXISTS \"s_%s\"(seq INTEGER, col BLOB,"
             " l0 INTEGER NOT NULL, l1 INTEGER NOT NULL, l2 INTEGER NOT NULL,"
             " l3 INTEGER NOT NULL, PRIMARY KEY(seq, col)) WITHOUT ROWID;"
             "CREATE TABLE IF NOT EXISTS \"p_%s\"(seq INTEGER, col BLOB, val BLOB NOT NULL,"
             " PRIMARY KEY(seq, col)) WITHOUT ROWID;"
             "CREATE TABLE IF NOT EXISTS \"k_%s\"(key BLOB PRIMARY KEY, val BLOB NOT NULL)"
             " WITHOUT ROWID;",
             t, t, t, t, t, t, t, t, t);
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

/* The layout's version (PRAGMA user_version): a file with tables and another version was
 * written by an earlier layout, which is refused rather than read wrongly; an empty file
 * takes this one. */
static int format_check(sqlite3 *db, int *old)
{
    sqlite3_stmt *stmt = NULL;
    int version = 0, tables = 0;
    int rc = sqlite3_prepare_v2(db, "SELECT (SELECT user_version FROM pragma_user_version),"
                                    " (SELECT count(*) FROM sqlite_schema WHERE type = 'table')",
                                -1, &stmt, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        version = sqlite3_column_int(stmt, 0);
        tables = sqlite3_column_int(stmt, 1);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(stmt);
    *old = rc == SQLITE_OK && tables > 0 && version != SQ_FORMAT;
    if (rc == SQLITE_OK && tables == 0 && version != SQ_FORMAT) {
        rc = sqlite3_exec(db, "PRAGMA user_version=" SQ_FORMAT_S, NULL, NULL, NULL);
    }
    return rc;
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
    char sql[1024];

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
    snprintf(sql, sizeof(sql),
             "DROP TABLE IF EXISTS \"s_%1$s\"; DROP TABLE IF EXISTS \"p_%1$s\";"
             " DROP TABLE IF EXISTS \"x_%1$s\"; DROP TABLE IF EXISTS \"y_%1$s\";"
             " DROP TABLE IF EXISTS \"q_%1$s\"; DROP TABLE IF EXISTS \"r_%1$s\";"
             " DROP TABLE IF EXISTS \"k_%1$s\";",
             table);
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

static int blob_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    int c = an > 0 && bn > 0 ? memcmp(a, b, an < bn ? an : bn) : 0;
    return c != 0 ? c : (an > bn) - (an < bn);
}

/* Rows by document token, then by position (the pointers are into one array). */
static int row_ptr_cmp(const void *a, const void *b)
{
    const struct vl_row *x = *(const struct vl_row *const *)a;
    const struct vl_row *y = *(const struct vl_row *const *)b;
    int c = memcmp(x->doc.p, y->doc.p, VL_DOCTOKEN_BYTES);
    return c != 0 ? c : (x > y) - (x < y);
}

enum {
    PUT_OLD,
    PUT_TOKS,
    PUT_DEL_X,
    PUT_DEL_Y,
    PUT_DEL_SUMS,
    PUT_DEL_PRODS,
    PUT_DEL_ROW,
    PUT_ROW,
    PUT_TOK_X,
    PUT_TOK_Y,
    PUT_SUM,
    PUT_PROD,
    PUT_PART,
    PUT_PART_NEW,
    PUT_PART_ADD,
    PUT_NSTMT
};

static int prepare_put(sqlite3 *db, const char *t, sqlite3_stmt *stmt[PUT_NSTMT])
{
    static const char *const fmt[PUT_NSTMT] = {
        [PUT_OLD] = "SELECT seq FROM \"r_%1$s\" WHERE doc = ?",
        [PUT_TOKS] = "SELECT col, tok FROM \"y_%1$s\" WHERE seq = ?",
        [PUT_DEL_X] = "DELETE FROM \"x_%1$s\" WHERE col = ?1 AND part IN (SELECT part FROM"
                      " \"q_%1$s\") AND tok = ?2 AND doc = ?3",
        [PUT_DEL_Y] = "DELETE FROM \"y_%1$s\" WHERE seq = ?",
        [PUT_DEL_SUMS] = "DELETE FROM \"s_%1$s\" WHERE seq = ?",
        [PUT_DEL_PRODS] = "DELETE FROM \"p_%1$s\" WHERE seq = ?",
        [PUT_DEL_ROW] = "DELETE FROM \"r_%1$s\" WHERE seq = ?",
        [PUT_ROW] = "INSERT INTO \"r_%1$s\"(seq, doc, blob) VALUES (?, ?, ?)",
        [PUT_TOK_X] = "INSERT OR IGNORE INTO \"x_%1$s\"(col, part, tok, doc, seq)"
                      " VALUES (?, ?, ?, ?, ?)",
        [PUT_TOK_Y] = "INSERT OR IGNORE INTO \"y_%1$s\"(seq, col, tok) VALUES (?, ?, ?)",
        [PUT_SUM] = "INSERT INTO \"s_%1$s\"(seq, col, l0, l1, l2, l3) VALUES (?, ?, ?, ?, ?, ?)",
        [PUT_PROD] = "INSERT INTO \"p_%1$s\"(seq, col, val) VALUES (?, ?, ?)",
        [PUT_PART] = "SELECT part, level, n FROM \"q_%1$s\" ORDER BY part DESC LIMIT 1",
        [PUT_PART_NEW] = "INSERT INTO \"q_%1$s\"(part, level, n) VALUES (?, 0, 0)",
        [PUT_PART_ADD] = "UPDATE \"q_%1$s\" SET n = n + ? WHERE part = ?",
    };
    char sql[512];
    int rc = SQLITE_OK;
    for (int i = 0; rc == SQLITE_OK && i < PUT_NSTMT; i++) {
        snprintf(sql, sizeof(sql), fmt[i], t);
        rc = sqlite3_prepare_v2(db, sql, -1, &stmt[i], NULL);
    }
    if (rc != SQLITE_OK) {
        for (int i = 0; i < PUT_NSTMT; i++) {
            sqlite3_finalize(stmt[i]);
            stmt[i] = NULL;
        }
    }
    return rc;
}

/* Whether a row is well formed: see the file header for what a caller bug is. */
static int row_ok(const struct vl_row *row)
{
    if (row->doc.n != VL_DOCTOKEN_BYTES || row->doc.p == NULL ||
        (row->ntokens > 0 && row->tokens == NULL) || (row->nsums > 0 && row->sums == NULL) ||
        (row->nprods > 0 && row->prods == NULL) || row->seq > (uint64_t)INT64_MAX) {
        return 0;
    }
    for (size_t j = 0; j < row->ntokens; j++) {
        if (row->tokens[j].tok.p == NULL && row->tokens[j].tok.n > 0) {
            return 0;
        }
    }
    for (size_t j = 0; j < row->nsums; j++) {
        for (int k = 0; k < VL_SUM_LIMBS; k++) {
            if (row->sums[j].limbs[k] < 0 || row->sums[j].limbs[k] > SQ_LIMB_MAX) {
                return 0;
            }
        }
        for (size_t i = 0; i < j; i++) {
            if (memcmp(row->sums[i].col, row->sums[j].col, VL_COL_BYTES) == 0) {
                return 0;
            }
        }
    }
    for (size_t j = 0; j < row->nprods; j++) {
        if (row->prods[j].val.n == 0 || row->prods[j].val.p == NULL) {
            return 0;
        }
        for (size_t i = 0; i < j; i++) {
            if (memcmp(row->prods[i].col, row->prods[j].col, VL_COL_BYTES) == 0) {
                return 0;
            }
        }
    }
    return 1;
}

/* Removes the row stored under document token `doc`, if any, with its tokens (found in
 * y_T by its number, each then taken out of whichever partition of x_T holds it) and its
 * cells. */
static int drop_row(sqlite3_stmt *stmt[PUT_NSTMT], const uint8_t *doc)
{
    int rc = bind_bytes(stmt[PUT_OLD], 1, doc, VL_DOCTOKEN_BYTES);
    if (rc != SQLITE_OK) {
        return rc;
    }
    rc = sqlite3_step(stmt[PUT_OLD]);
    if (rc == SQLITE_DONE) { /* a new document: nothing to remove */
        sqlite3_reset(stmt[PUT_OLD]);
        return SQLITE_OK;
    }
    if (rc != SQLITE_ROW) {
        sqlite3_reset(stmt[PUT_OLD]);
        return rc;
    }
    sqlite3_int64 old = sqlite3_column_int64(stmt[PUT_OLD], 0); /* the rowid: an integer */
    sqlite3_reset(stmt[PUT_OLD]);
    rc = sqlite3_bind_int64(stmt[PUT_TOKS], 1, old);
    while (rc == SQLITE_OK && (rc = sqlite3_step(stmt[PUT_TOKS])) == SQLITE_ROW) {
        sqlite3_stmt *del = stmt[PUT_DEL_X];
        rc = sqlite3_bind_value(del, 1, sqlite3_column_value(stmt[PUT_TOKS], 0));
        if (rc == SQLITE_OK) {
            rc = sqlite3_bind_value(del, 2, sqlite3_column_value(stmt[PUT_TOKS], 1));
        }
        if (rc == SQLITE_OK) {
            rc = bind_bytes(del, 3, doc, VL_DOCTOKEN_BYTES);
        }
        if (rc == SQLITE_OK) {
            rc = step_done(del);
        }
    }
    sqlite3_reset(stmt[PUT_TOKS]);
    rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    for (int w = PUT_DEL_Y; rc == SQLITE_OK && w <= PUT_DEL_ROW; w++) {
        rc = sqlite3_bind_int64(stmt[w], 1, old);
        if (rc == SQLITE_OK) {
            rc = step_done(stmt[w]);
        }
    }
    return rc;
}

/* The row and its cells; its tokens go in put_tokens, after every row of the call. */
static int put_one(sqlite3_stmt *stmt[PUT_NSTMT], const struct vl_row *row)
{
    sqlite3_int64 seq = (sqlite3_int64)row->seq;
    int rc = drop_row(stmt, row->doc.p);
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(stmt[PUT_ROW], 1, seq);
    }
    if (rc == SQLITE_OK) {
        rc = bind_bytes(stmt[PUT_ROW], 2, row->doc.p, row->doc.n);
    }
    if (rc == SQLITE_OK) {
        rc = bind_bytes(stmt[PUT_ROW], 3, row->blob.p, row->blob.n);
    }
    if (rc == SQLITE_OK) {
        rc = step_done(stmt[PUT_ROW]);
    }
    for (size_t j = 0; rc == SQLITE_OK && j < row->nsums; j++) {
        const struct vl_sum_cell *c = &row->sums[j];
        rc = sqlite3_bind_int64(stmt[PUT_SUM], 1, seq);
        if (rc == SQLITE_OK) {
            rc = bind_bytes(stmt[PUT_SUM], 2, c->col, VL_COL_BYTES);
        }
        for (int k = 0; rc == SQLITE_OK && k < VL_SUM_LIMBS; k++) {
            rc = sqlite3_bind_int64(stmt[PUT_SUM], 3 + k, c->limbs[k]);
        }
        if (rc == SQLITE_OK) {
            rc = step_done(stmt[PUT_SUM]);
        }
    }
    for (size_t j = 0; rc == SQLITE_OK && j < row->nprods; j++) {
        const struct vl_prod_cell *c = &row->prods[j];
        rc = sqlite3_bind_int64(stmt[PUT_PROD], 1, seq);
        if (rc == SQLITE_OK) {
            rc = bind_bytes(stmt[PUT_PROD], 2, c->col, VL_COL_BYTES);
        }
        if (rc == SQLITE_OK) {
            rc = bind_bytes(stmt[PUT_PROD], 3, c->val.p, c->val.n);
        }
        if (rc == SQLITE_OK) {
            rc = step_done(stmt[PUT_PROD]);
        }
    }
    return rc;
}

/* One token of one row of a put. */
struct put_tok {
    const struct vl_row *row;
    const struct vl_token *tk;
};

static int put_tok_cmp(const void *a, const void *b)
{
    const struct put_tok *x = a, *y = b;
    int c = memcmp(x->tk->col, y->tk->col, VL_COL_BYTES);
    if (c == 0) {
        c = blob_cmp(x->tk->tok.p, x->tk->tok.n, y->tk->tok.p, y->tk->tok.n);
    }
    if (c == 0) {
        c = memcmp(x->row->doc.p, y->row->doc.p, VL_DOCTOKEN_BYTES);
    }
    return c;
}

/* The partition of x_T that new entries go to: the newest, while it is of level 0 and holds
 * fewer than `cap` entries, else a new one. */
static int part_current(sqlite3_stmt *stmt[PUT_NSTMT], sqlite3_int64 cap, sqlite3_int64 *part,
                        int *made)
{
    sqlite3_int64 last = 0;
    int fresh = 1;
    int rc = sqlite3_step(stmt[PUT_PART]);
    if (rc == SQLITE_ROW) {
        last = sqlite3_column_int64(stmt[PUT_PART], 0);
        fresh = sqlite3_column_int64(stmt[PUT_PART], 1) != 0 ||
                sqlite3_column_int64(stmt[PUT_PART], 2) >= cap;
        rc = SQLITE_DONE;
    }
    sqlite3_reset(stmt[PUT_PART]);
    if (rc != SQLITE_DONE) {
        return rc;
    }
    if (fresh && last == INT64_MAX) {
        return SQLITE_CORRUPT; /* no number left: no honest store lists such a partition */
    }
    *part = fresh ? last + 1 : last;
    *made = fresh;
    if (!fresh) {
        return SQLITE_OK;
    }
    rc = sqlite3_bind_int64(stmt[PUT_PART_NEW], 1, *part);
    return rc == SQLITE_OK ? step_done(stmt[PUT_PART_NEW]) : rc;
}

/* The tokens of the rows that stay (keep[i]): into the current partition of x_T in key
 * order, so that they are appended to its few pages of each column, and into y_T by row. */
static int put_tokens(sqlite3_stmt *stmt[PUT_NSTMT], sqlite3_int64 cap, const struct vl_row *rows,
                      size_t n, const unsigned char *keep, int *made)
{
    size_t total = 0, k = 0;
    for (size_t i = 0; i < n; i++) {
        total += keep[i] ? rows[i].ntokens : 0;
    }
    if (total == 0) {
        return SQLITE_OK;
    }
    sqlite3_int64 part = 0;
    int rc = part_current(stmt, cap, &part, made);
    struct put_tok *all = rc == SQLITE_OK ? malloc(total * sizeof(*all)) : NULL;
    if (all == NULL) {
        return rc == SQLITE_OK ? SQLITE_NOMEM : rc;
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; keep[i] && j < rows[i].ntokens; j++) {
            all[k].row = &rows[i];
            all[k++].tk = &rows[i].tokens[j];
        }
    }
    /* y_T first, in row order (each row's numbers are its own run of keys) */
    for (size_t i = 0; rc == SQLITE_OK && i < total; i++) {
        const struct vl_token *tk = all[i].tk;
        sqlite3_stmt *y = stmt[PUT_TOK_Y];
        rc = sqlite3_bind_int64(y, 1, (sqlite3_int64)all[i].row->seq);
        if (rc == SQLITE_OK) {
            rc = bind_bytes(y, 2, tk->col, VL_COL_BYTES);
        }
        if (rc == SQLITE_OK) {
            rc = bind_bytes(y, 3, tk->tok.p, tk->tok.n);
        }
        if (rc == SQLITE_OK) {
            rc = step_done(y);
        }
    }
    qsort(all, total, sizeof(*all), put_tok_cmp);
    for (size_t i = 0; rc == SQLITE_OK && i < total; i++) {
        const struct vl_token *tk = all[i].tk;
        sqlite3_stmt *x = stmt[PUT_TOK_X];
        rc = bind_bytes(x, 1, tk->col, VL_COL_BYTES);
        if (rc == SQLITE_OK) {
            rc = sqlite3_bind_int64(x, 2, part);
        }
        if (rc == SQLITE_OK) {
            rc = bind_bytes(x, 3, tk->tok.p, tk->tok.n);
        }
        if (rc == SQLITE_OK) {
            rc = bind_bytes(x, 4, all[i].row->doc.p, all[i].row->doc.n);
        }
        if (rc == SQLITE_OK) {
            rc = sqlite3_bind_int64(x, 5, (sqlite3_int64)all[i].row->seq);
        }
        if (rc == SQLITE_OK) {
            rc = step_done(x);
        }
    }
    free(all);
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(stmt[PUT_PART_ADD], 1, (sqlite3_int64)total);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(stmt[PUT_PART_ADD], 2, part);
    }
    return rc == SQLITE_OK ? step_done(stmt[PUT_PART_ADD]) : rc;
}

/* Runs one statement of x_T's merge with up to two integer parameters and a column. */
static int merge_step(sqlite3 *db, const char *fmt, const char *t, const char *parts,
                      const void *col, sqlite3_int64 a)
{
    char sql[SQ_PART_SQL];
    sqlite3_stmt *stmt = NULL;
    snprintf(sql, sizeof(sql), fmt, t, parts);
    int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);
    if (rc == SQLITE_OK && col != NULL) {
        rc = bind_bytes(stmt, 1, col, VL_COL_BYTES);
    }
    if (rc == SQLITE_OK && strstr(sql, "?2") != NULL) {
        rc = sqlite3_bind_int64(stmt, 2, a);
    }
    if (rc == SQLITE_OK) {
        rc = step_done(stmt);
    }
    sqlite3_finalize(stmt);
    return rc;
}

/* When SQ_PART_FANOUT partitions of one level exist, merges them into one of the next
 * level, column by column and in key order (so the new partition is written as appends),
 * and again for the level above: a log-structured merge, so that x_T has few partitions
 * (each a seek per token asked for) while new entries land in a small one. Part of the
 * write that completed the level, in its transaction. */
static int part_merge(sqlite3 *db, const char *t)
{
    int rc = SQLITE_OK;
    for (int level = 0; rc == SQLITE_OK && level < SQ_PART_LEVELS; level++) {
        char sql[256], parts[SQ_PART_SQL / 2];
        sqlite3_stmt *stmt = NULL;
        size_t np = 0, at = 0;
        sqlite3_int64 n = 0, top = 0;
        snprintf(sql, sizeof(sql),
                 "SELECT part, n, (SELECT max(part) FROM \"q_%s\") FROM \"q_%s\" WHERE level = ?"
                 " ORDER BY part LIMIT %d",
                 t, t, SQ_PART_MERGE_MAX);
        rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);
        if (rc == SQLITE_OK) {
            rc = sqlite3_bind_int(stmt, 1, level);
        }
        while (rc == SQLITE_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
            at += (size_t)snprintf(parts + at, sizeof(parts) - at, "%s%lld", np ? "," : "",
                                   (long long)sqlite3_column_int64(stmt, 0));
            sqlite3_int64 k = sqlite3_column_int64(stmt, 1);
            n = k > 0 && n <= INT64_MAX - k ? n + k : n; /* a size estimate, never past 2^63 */
            top = sqlite3_column_int64(stmt, 2);
            np++;
            rc = SQLITE_OK;
        }
        sqlite3_finalize(stmt);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
        if (rc != SQLITE_OK || np < SQ_PART_FANOUT) {
            break;
        }
        if (top == INT64_MAX) {
            rc = SQLITE_CORRUPT; /* as in part_current */
            break;
        }
        /* column by column: x_T is keyed by column first */
        uint8_t col[VL_COL_BYTES];
        int have = 0;
        for (;;) {
            snprintf(sql, sizeof(sql),
                     "SELECT col FROM \"x_%s\" WHERE col > ?1 ORDER BY col LIMIT 1", t);
            rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);
            if (rc == SQLITE_OK) {
                rc = have ? bind_bytes(stmt, 1, col, VL_COL_BYTES)
                          : sqlite3_bind_zeroblob(stmt, 1, 0);
            }
            if (rc == SQLITE_OK) {
                rc = sqlite3_step(stmt);
            }
            int found = rc == SQLITE_ROW && sqlite3_column_type(stmt, 0) == SQLITE_BLOB &&
                        sqlite3_column_bytes(stmt, 0) == VL_COL_BYTES;
            if (found) {
                memcpy(col, sqlite3_column_blob(stmt, 0), VL_COL_BYTES);
            }
            rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
            sqlite3_finalize(stmt);
            if (rc != SQLITE_OK || !found) {
                break;
            }
            have = 1;
            rc = merge_step(db,
                            "INSERT OR IGNORE INTO \"x_%1$s\"(col, part, tok, doc, seq)"
                            " SELECT col, ?2, tok, doc, seq FROM \"x_%1$s\""
                            " WHERE col = ?1 AND part IN (%2$s) ORDER BY tok, doc",
                            t, parts, col, top + 1);
            /* The entries deleted are the ones just copied: zeroing them (secure_delete)
             * would hide nothing and double the merge's writes. */
            if (rc == SQLITE_OK) {
                rc = sqlite3_exec(db, "PRAGMA secure_delete=OFF", NULL, NULL, NULL);
            }
            if (rc == SQLITE_OK) {
                rc = merge_step(db, "DELETE FROM \"x_%1$s\" WHERE col = ?1 AND part IN (%2$s)",
                                t, parts, col, 0);
            }
            int on = sqlite3_exec(db, "PRAGMA secure_delete=ON", NULL, NULL, NULL);
            rc = rc == SQLITE_OK ? on : rc;
        }
        if (rc == SQLITE_OK) {
            rc = merge_step(db, "DELETE FROM \"q_%1$s\" WHERE part IN (%2$s)", t, parts, NULL, 0);
        }
        if (rc == SQLITE_OK) {
            snprintf(sql, sizeof(sql), "INSERT INTO \"q_%s\"(part, level, n) VALUES (%lld, %d, %lld)",
                     t, (long long)(top + 1), level + 1, (long long)n);
            rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
        }
    }
    return rc;
}

/* keep[i]: row i is not followed by another row of the same document token in the call,
 * which would replace it (so it is not written at all). */
static int put_last_rows(const struct vl_row *rows, size_t n, unsigned char *keep)
{
    const struct vl_row **ord = malloc((n ? n : 1) * sizeof(*ord));
    if (ord == NULL) {
        return SQLITE_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        ord[i] = &rows[i];
        keep[i] = 1;
    }
    qsort(ord, n, sizeof(*ord), row_ptr_cmp);
    for (size_t i = 0; i + 1 < n; i++) {
        if (memcmp(ord[i]->doc.p, ord[i + 1]->doc.p, VL_DOCTOKEN_BYTES) == 0) {
            keep[ord[i] - rows] = 0; /* row_ptr_cmp orders equal tokens by position */
        }
    }
    free(ord);
    return SQLITE_OK;
}

/* Appends the rows of one executed SELECT doc, seq, blob to *out (capacity *cap).
 * SQ_BAD_DATA for a row put_rows cannot have written: a document token that is not a blob
 * of VL_DOCTOKEN_BYTES, a seq that is not an integer (a 64-bit pattern), a blob that is not
 * one. */
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
        if (sqlite3_column_type(stmt, 0) != SQLITE_BLOB ||
            sqlite3_column_bytes(stmt, 0) != VL_DOCTOKEN_BYTES ||
            sqlite3_column_type(stmt, 1) != SQLITE_INTEGER ||
            sqlite3_column_type(stmt, 2) != SQLITE_BLOB) {
            rc = SQ_BAD_DATA;
            break;
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
    if (src == SQ_BAD_DATA) {
        vl_log(VL_LOG_WARN, "store %s: get_rows met a stored row it cannot return", s->name);
        rc = VEIL_ERR_INTEGRITY;
        src = SQLITE_OK;
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
    sqlite3_stmt *stmt[PUT_NSTMT] = {NULL};
    int locked = 0, in_txn = 0, absent = 0;
    veil_err rc = VEIL_OK;
    int src = SQLITE_OK;

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
    src = prepare_put(db, table, stmt);
    if (src != SQLITE_OK) {
        src = missing_table(db, table, src, &absent);
    }
    /* each row with its tokens (y_T, then x_T's partitions) and cells, by its number */
    for (size_t i = 0; src == SQLITE_OK && !absent && i < n; i++) {
        if (docs[i].n == VL_DOCTOKEN_BYTES && docs[i].p != NULL) { /* else no row has it */
            src = drop_row(stmt, docs[i].p);
        }
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

/* Whether a predicate is well formed (file header: otherwise a caller bug). */
static int pred_ok(const struct vl_pred *pred)
{
    if (pred->nterms > 0 && pred->terms == NULL) {
        return 0;
    }
    for (size_t i = 0; i < pred->nterms; i++) {
        if (pred->terms[i].ntoks > 0 && pred->terms[i].toks == NULL) {
            return 0;
        }
    }
    if (!pred->only_docs) {
        return 1;
    }
    if (pred->ndocs > 0 && pred->docs == NULL) {
        return 0;
    }
    for (size_t i = 0; i < pred->ndocs; i++) {
        if (pred->docs[i].p == NULL || pred->docs[i].n != VL_DOCTOKEN_BYTES) {
            return 0;
        }
    }
    return 1;
}

/* Whether pred can match no row whatever the table holds: a term with no tokens (an empty
 * OR is false, and so is the AND) or an empty only_docs set. */
static int pred_empty(const struct vl_pred *pred)
{
    for (size_t i = 0; i < pred->nterms; i++) {
        if (pred->terms[i].ntoks == 0) {
            return 1;
        }
    }
    return pred->only_docs && pred->ndocs == 0;
}

/* Appends formatted text to b (each piece is short: names, aliases and keywords). */
static veil_err appendf(struct vl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static veil_err appendf(struct vl_buf *b, const char *fmt, ...)
{
    char part[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(part, sizeof(part), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(part)) {
        return VEIL_ERR_INTERNAL;
    }
    return vl_buf_append(b, part, (size_t)n);
}

/* Appends a term's tokens as the inside of an IN (...): its index into temp.vl_find, or one
 * placeholder per token. */
static veil_err append_toks(struct vl_buf *b, const struct vl_pred_term *term, int via_temp)
{
    veil_err rc = VEIL_OK;
    if (via_temp) {
        rc = vl_buf_append_str(b, "SELECT tok FROM temp.vl_find WHERE term = ?");
    }
    for (size_t j = 0; rc == VEIL_OK && !via_temp && j < term->ntoks; j++) {
        rc = vl_buf_append_str(b, j > 0 ? ",?" : "?");
    }
    return rc;
}

/* "part IN (SELECT part FROM q_T)": an entry of x_T is looked up in every partition, one
 * seek each (part_merge keeps them few). */
static const char *in_parts(const char *t, char *buf, size_t n)
{
    snprintf(buf, n, "part IN (SELECT part FROM \"q_%s\")", t);
    return buf;
}

/* Appends the test that row `alias`.seq has a token of `term` (placeholders: the column,
 * then append_toks'). Used with only_docs, where each candidate document is probed: SQLite
 * seeks y_T by (seq, col) and checks that document's few tokens in the column against the
 * term's, so the cost follows the candidates, never how many documents the term matches
 * (an IN subquery would collect all of those first). The unary + keeps SQLite from seeking
 * once per token of the term instead. */
static veil_err append_probe(struct vl_buf *b, const char *t, const char *alias,
                             const struct vl_pred_term *term, int via_temp)
{
    veil_err rc = appendf(b, "EXISTS (SELECT 1 FROM \"y_%s\" y WHERE y.seq = %s.seq"
                             " AND y.col = ? AND +y.tok IN (", t, alias);
    if (rc == VEIL_OK) {
        rc = append_toks(b, term, via_temp);
    }
    if (rc == VEIL_OK) {
        rc = vl_buf_append_str(b, "))");
    }
    return rc;
}

/* Builds the find statement. Terms are inline IN lists when all placeholders fit under
 * SQLite's limit, otherwise every term's tokens go through temp.vl_find. Without only_docs
 * each term is an IN subquery (the documents having one of its tokens); with only_docs,
 * whose set always goes through temp.vl_docs, SQLite walks that set in document order and
 * each term is a probe of the candidate (append_probe). */
static veil_err find_sql(const char *t, const struct vl_pred *pred, int has_after, int via_temp,
                         struct vl_buf *b)
{
    char parts[128];
    veil_err rc = appendf(b, "SELECT doc FROM \"r_%s\" r WHERE 1", t);
    if (rc == VEIL_OK && has_after) {
        rc = vl_buf_append_str(b, " AND doc > ?");
    }
    for (size_t i = 0; rc == VEIL_OK && i < pred->nterms; i++) {
        if (pred->only_docs) {
            rc = vl_buf_append_str(b, " AND ");
            if (rc == VEIL_OK) {
                rc = append_probe(b, t, "r", &pred->terms[i], via_temp);
            }
            continue;
        }
        rc = appendf(b, " AND doc IN (SELECT doc FROM \"x_%s\" WHERE col = ? AND %s"
                        " AND tok IN (", t, in_parts(t, parts, sizeof(parts)));
        if (rc == VEIL_OK) {
            rc = append_toks(b, &pred->terms[i], via_temp);
        }
        if (rc == VEIL_OK) {
            rc = vl_buf_append_str(b, "))");
        }
    }
    if (rc == VEIL_OK && pred->only_docs) {
        rc = vl_buf_append_str(b, " AND doc IN (SELECT doc FROM temp.vl_docs)");
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

static int doc_ptr_cmp(const void *a, const void *b)
{
    return memcmp(*(const uint8_t *const *)a, *(const uint8_t *const *)b, VL_DOCTOKEN_BYTES);
}

/* Loads pred's only_docs set into temp.vl_docs (undone by the caller's ROLLBACK; emptied
 * first all the same, so that a connection never carries one call's set into the next). The
 * tokens go in sorted, so each insert lands at the right edge of the B-tree: for 100,000
 * random tokens that took about 60% of the time of inserting them as given. */
static int docs_load_temp(sqlite3 *db, const struct vl_pred *pred)
{
    sqlite3_stmt *stmt = NULL;
    const uint8_t **sorted = malloc((pred->ndocs ? pred->ndocs : 1) * sizeof(*sorted));
    int rc = sorted == NULL ? SQLITE_NOMEM : SQLITE_OK;
    for (size_t i = 0; rc == SQLITE_OK && i < pred->ndocs; i++) {
        sorted[i] = pred->docs[i].p; /* pred_ok: each is VL_DOCTOKEN_BYTES long */
    }
    if (rc == SQLITE_OK) {
        qsort(sorted, pred->ndocs, sizeof(*sorted), doc_ptr_cmp);
        rc = sqlite3_exec(db, "DELETE FROM temp.vl_docs", NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO temp.vl_docs(doc) VALUES (?)", -1,
                                &stmt, NULL);
    }
    for (size_t i = 0; rc == SQLITE_OK && i < pred->ndocs; i++) {
        rc = bind_bytes(stmt, 1, sorted[i], VL_DOCTOKEN_BYTES);
        if (rc == SQLITE_OK) {
            rc = step_done(stmt);
        }
    }
    sqlite3_finalize(stmt);
    free(sorted);
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
    if (!table_ok(table) || pred == NULL || !pred_ok(pred)) {
        rc = VEIL_ERR_INTERNAL;
        goto out;
    }
    if (limit == 0 || pred_empty(pred)) {
        goto out;
    }
    size_t nparams = 2; /* after, limit */
    for (size_t i = 0; i < pred->nterms; i++) {
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
    if (src == SQLITE_OK && pred->only_docs) {
        src = docs_load_temp(db, pred);
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
        txn_end(db, 0); /* read only: ROLLBACK also empties the temp tables */
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

/* ---- members ---- */

/* One asked-for token and its index in the request, sorted by (bytes as SQLite orders
 * blobs, index) so that an answered token finds every index that asked for it. */
struct mem_ask {
    const uint8_t *p;
    size_t n;
    uint32_t i;
};

static int mem_ask_cmp(const void *a, const void *b)
{
    const struct mem_ask *x = a, *y = b;
    int c = blob_cmp(x->p, x->n, y->p, y->n);
    return c != 0 ? c : (x->i > y->i) - (x->i < y->i);
}

/* Appends one member per index that asked for the current answer row (tok, doc) of stmt.
 * SQ_BAD_DATA for a row no honest store holds: a document token that is not a blob of
 * VL_DOCTOKEN_BYTES, a token that is not a blob or was not asked for. */
static int mem_take(sqlite3_stmt *stmt, const struct mem_ask *ask, size_t nask,
                    struct vl_members *out, size_t *cap)
{
    if (sqlite3_column_type(stmt, 0) != SQLITE_BLOB ||
        sqlite3_column_type(stmt, 1) != SQLITE_BLOB ||
        sqlite3_column_bytes(stmt, 1) != VL_DOCTOKEN_BYTES) {
        return SQ_BAD_DATA;
    }
    const uint8_t *tok = sqlite3_column_blob(stmt, 0);
    size_t tn = (size_t)sqlite3_column_bytes(stmt, 0);
    const uint8_t *doc = sqlite3_column_blob(stmt, 1);
    size_t lo = 0, hi = nask;
    while (lo < hi) { /* the first asked token >= tok */
        size_t mid = lo + (hi - lo) / 2;
        if (blob_cmp(ask[mid].p, ask[mid].n, tok, tn) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo == nask || blob_cmp(ask[lo].p, ask[lo].n, tok, tn) != 0) {
        return SQ_BAD_DATA;
    }
    for (; lo < nask && blob_cmp(ask[lo].p, ask[lo].n, tok, tn) == 0; lo++) {
        if (out->n == *cap) {
            size_t ncap = *cap ? *cap * 2 : 256;
            if (ncap > SIZE_MAX / sizeof(*out->m)) {
                return SQLITE_NOMEM;
            }
            void *p = realloc(out->m, ncap * sizeof(*out->m));
            if (p == NULL) {
                return SQLITE_NOMEM;
            }
            out->m = p;
            *cap = ncap;
        }
        struct vl_member *m = &out->m[out->n++];
        m->tok = ask[lo].i;
        memcpy(m->doc, doc, VL_DOCTOKEN_BYTES);
    }
    return SQLITE_OK;
}

/* One statement: the x_T entries of (col, each token), found by seeking x_T's primary key.
 * The tokens are placeholders, or temp.vl_find's term 0 when they are more than SQLite binds at once. */
static veil_err sq_members(struct vl_store *vs, const char *table,
                           const uint8_t col[VL_COL_BYTES], const struct vl_bytes *toks,
                           size_t ntoks, struct vl_members *out)
{
    struct sq_store *s = sq(vs);
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    struct vl_members res = {NULL, 0};
    struct mem_ask *ask = NULL;
    struct vl_pred_term term; /* find's, so that its helpers write and load the tokens */
    struct vl_pred pred = {&term, 1, false, NULL, 0};
    char parts[128];
    struct vl_buf sql;
    size_t cap = 0;
    int in_txn = 0, absent = 0, via_temp = 0, arg = 1;
    veil_err rc = VEIL_OK;
    int src = SQLITE_OK;

    vl_buf_init(&sql, SQ_SQL_MAX);
    if (!table_ok(table) || col == NULL || out == NULL || (ntoks > 0 && toks == NULL)) {
        rc = VEIL_ERR_INTERNAL;
        goto out;
    }
    for (size_t i = 0; i < ntoks; i++) {
        if (toks[i].p == NULL && toks[i].n > 0) {
            rc = VEIL_ERR_INTERNAL;
            goto out;
        }
    }
    if (ntoks == 0) {
        goto out;
    }
    if (ntoks > UINT32_MAX) {
        rc = VEIL_ERR_TOO_LARGE;
        goto out;
    }
    ask = malloc(ntoks * sizeof(*ask));
    if (ask == NULL) {
        rc = VEIL_ERR_INTERNAL;
        goto out;
    }
    for (size_t i = 0; i < ntoks; i++) {
        ask[i].p = toks[i].p;
        ask[i].n = toks[i].n;
        ask[i].i = (uint32_t)i;
    }
    qsort(ask, ntoks, sizeof(*ask), mem_ask_cmp);
    term.toks = toks;
    term.ntoks = ntoks;
    memcpy(term.col, col, VL_COL_BYTES);

    rc = conn_get(s, &db);
    if (rc != VEIL_OK) {
        goto out;
    }
    via_temp = ntoks >= (size_t)sqlite3_limit(db, SQLITE_LIMIT_VARIABLE_NUMBER, -1);
    rc = appendf(&sql, "SELECT x.tok, x.doc FROM \"x_%s\" x"
                       " WHERE x.col = ? AND x.%s AND x.tok IN (",
                 table, in_parts(table, parts, sizeof(parts)));
    if (rc == VEIL_OK) {
        rc = append_toks(&sql, &term, via_temp);
    }
    if (rc == VEIL_OK) {
        rc = vl_buf_append_str(&sql, ")");
    }
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
        src = find_load_temp(db, &pred);
    }
    if (src == SQLITE_OK) {
        src = bind_bytes(stmt, arg++, col, VL_COL_BYTES);
    }
    if (src == SQLITE_OK && via_temp) {
        src = sqlite3_bind_int64(stmt, arg++, 0);
    }
    for (size_t i = 0; src == SQLITE_OK && !via_temp && i < ntoks; i++) {
        src = bind_bytes(stmt, arg++, toks[i].p, toks[i].n);
    }
    while (src == SQLITE_OK && (src = sqlite3_step(stmt)) == SQLITE_ROW) {
        src = mem_take(stmt, ask, ntoks, &res, &cap);
    }
    src = src == SQLITE_DONE ? SQLITE_OK : src;
    if (src == SQ_BAD_DATA) {
        vl_log(VL_LOG_WARN, "store %s: members met a stored entry it cannot return", s->name);
        rc = VEIL_ERR_INTEGRITY;
        src = SQLITE_OK;
    } else if (src != SQLITE_OK) {
        /* dropped since this connection last read the schema: the step fails */
        src = missing_table(db, table, src, &absent);
    }

out:
    sqlite3_finalize(stmt);
    vl_buf_free(&sql);
    if (in_txn) {
        txn_end(db, 0); /* read only: ROLLBACK also empties the temp table */
    }
    if (src != SQLITE_OK) {
        rc = sq_fail(s, src, "members");
    }
    if (db != NULL) {
        conn_put(s, db);
    }
    free(ask);
    if (rc == VEIL_OK && absent) {
        vl_members_free(&res); /* a missing table has no members */
    }
    if (rc == VEIL_OK) {
        *out = res;
    } else {
        vl_members_free(&res);
    }
    return rc;
}

/* ---- aggregate ---- */

/* Builds the aggregate statement (file header). Placeholders, in text order: each term's column
 * and tokens (or its index into temp.vl_find), the Paillier moduli (select list), the group
 * columns, then each aggregated column. */
static veil_err agg_sql(const char *t, const struct vl_agg_request *req, int via_temp,
                        struct vl_buf *b)
{
    char parts[128];
    size_t nterms = req->pred != NULL ? req->pred->nterms : 0;
    int only_docs = req->pred != NULL && req->pred->only_docs;
    veil_err rc = VEIL_OK;

    if (only_docs) {
        /* the candidates that have a row (d_T, in vl_docs' order: CROSS JOIN keeps SQLite
         * from walking all of d_T and probing vl_docs instead), and pass every term's probe */
        rc = appendf(b, "WITH f(seq) AS MATERIALIZED (SELECT r.seq FROM temp.vl_docs d"
                        " CROSS JOIN \"r_%s\" r INDEXED BY \"d_%s\" ON r.doc = d.doc WHERE 1",
                     t, t);
        for (size_t i = 0; rc == VEIL_OK && i < nterms; i++) {
            rc = vl_buf_append_str(b, " AND ");
            if (rc == VEIL_OK) {
                rc = append_probe(b, t, "r", &req->pred->terms[i], via_temp);
            }
        }
        if (rc == VEIL_OK) {
            rc = vl_buf_append_str(b, ") ");
        }
    } else if (nterms > 0) {
        rc = vl_buf_append_str(b, "WITH f(seq) AS MATERIALIZED (");
        for (size_t i = 0; rc == VEIL_OK && i < nterms; i++) {
            /* (col, tok, doc) is a key: one token yields each row once */
            int distinct = nterms == 1 && (via_temp || req->pred->terms[i].ntoks > 1);
            rc = appendf(b, "%sSELECT %sseq FROM \"x_%s\" WHERE col = ? AND %s AND tok IN (",
                         i > 0 ? " INTERSECT " : "", distinct ? "DISTINCT " : "", t,
                         in_parts(t, parts, sizeof(parts)));
            if (rc == VEIL_OK) {
                rc = append_toks(b, &req->pred->terms[i], via_temp);
            }
            if (rc == VEIL_OK) {
                rc = vl_buf_append_str(b, ")");
            }
        }
        if (rc == VEIL_OK) {
            rc = vl_buf_append_str(b, ") ");
        }
    }
    if (rc == VEIL_OK) {
        rc = vl_buf_append_str(b, "SELECT ");
    }
    for (size_t g = 0; rc == VEIL_OK && g < req->ngroup; g++) {
        rc = appendf(b, "coalesce(g%zu.tok, x'') AS k%zu, ", g, g);
    }
    if (rc == VEIL_OK) {
        rc = vl_buf_append_str(b, "count(*), veil_runs(m.seq)");
    }
    for (size_t j = 0; rc == VEIL_OK && j < req->ncols; j++) {
        if (req->cols[j].paillier) {
            rc = appendf(b, ", count(c%zu.val), veil_mulmod(c%zu.val, ?)", j, j);
        } else {
            rc = appendf(b,
                         ", count(c%zu.seq), sum(c%zu.l0), sum(c%zu.l1), sum(c%zu.l2),"
                         " sum(c%zu.l3), veil_runs(c%zu.seq, c%zu.l0, c%zu.l1, c%zu.l2,"
                         " c%zu.l3)",
                         j, j, j, j, j, j, j, j, j, j);
        }
    }
    /* the matching rows' sequence numbers: f's (tokens exist only with their row), or every
     * row's from d_T, sorted: the order of the probes below */
    if (rc == VEIL_OK) {
        rc = nterms > 0 || only_docs ? vl_buf_append_str(b, " FROM f m")
                                     : appendf(b, " FROM (SELECT seq FROM \"r_%s\" INDEXED BY \"d_%s\" ORDER BY seq) m", t, t);
    }
    for (size_t g = 0; rc == VEIL_OK && g < req->ngroup; g++) {
        rc = appendf(b, " LEFT JOIN \"y_%s\" g%zu ON g%zu.seq = m.seq AND g%zu.col = ?", t, g,
                     g, g);
    }
    for (size_t j = 0; rc == VEIL_OK && j < req->ncols; j++) {
        rc = appendf(b, " LEFT JOIN \"%c_%s\" c%zu ON c%zu.seq = m.seq AND c%zu.col = ?",
                     req->cols[j].paillier ? 'p' : 's', t, j, j, j);
    }
    for (size_t g = 0; rc == VEIL_OK && g < req->ngroup; g++) {
        rc = appendf(b, "%sk%zu", g == 0 ? " GROUP BY " : ", ", g);
    }
    return rc;
}

/* Binds agg_sql's placeholders, in its order. */
static int agg_bind(sqlite3_stmt *stmt, const struct vl_agg_request *req, int via_temp)
{
    size_t nterms = req->pred != NULL ? req->pred->nterms : 0;
    int arg = 1, rc = SQLITE_OK;
    for (size_t i = 0; rc == SQLITE_OK && i < nterms; i++) {
        const struct vl_pred_term *term = &req->pred->terms[i];
        rc = bind_bytes(stmt, arg++, term->col, VL_COL_BYTES);
        if (rc == SQLITE_OK && via_temp) {
            rc = sqlite3_bind_int64(stmt, arg++, (sqlite3_int64)i);
        }
        for (size_t j = 0; rc == SQLITE_OK && !via_temp && j < term->ntoks; j++) {
            rc = bind_bytes(stmt, arg++, term->toks[j].p, term->toks[j].n);
        }
    }
    /* the moduli come first in the text (select list), then the join columns */
    for (size_t j = 0; rc == SQLITE_OK && j < req->ncols; j++) {
        if (req->cols[j].paillier) {
            rc = bind_bytes(stmt, arg++, req->cols[j].modulus.p, req->cols[j].modulus.n);
        }
    }
    for (size_t g = 0; rc == SQLITE_OK && g < req->ngroup; g++) {
        rc = bind_bytes(stmt, arg++, req->group_cols[g], VL_COL_BYTES);
    }
    for (size_t j = 0; rc == SQLITE_OK && j < req->ncols; j++) {
        rc = bind_bytes(stmt, arg++, req->cols[j].col, VL_COL_BYTES);
    }
    return rc;
}

/* Appends one group, the current row's keys, to r (capacity *cap). */
static veil_err agg_group_new(struct vl_agg_result *r, size_t *cap, size_t ngroup,
                              sqlite3_stmt *stmt, struct vl_agg_group **out)
{
    for (size_t k = 0; k < ngroup; k++) {
        if (sqlite3_column_type(stmt, (int)k) != SQLITE_BLOB) {
            return VEIL_ERR_INTEGRITY;
        }
    }
    if (r->n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        struct vl_agg_group *p = realloc(r->groups, ncap * sizeof(*p));
        if (p == NULL) {
            return VEIL_ERR_INTERNAL;
        }
        r->groups = p;
        *cap = ncap;
    }
    struct vl_agg_group *g = &r->groups[r->n];
    memset(g, 0, sizeof(*g));
    r->n++; /* counted now so that vl_agg_result_free releases a half-built group */
    if (r->ncols > 0 && (g->values = calloc(r->ncols, sizeof(*g->values))) == NULL) {
        return VEIL_ERR_INTERNAL;
    }
    for (size_t k = 0; k < ngroup; k++) {
        size_t n = (size_t)sqlite3_column_bytes(stmt, (int)k);
        if (n == 0) {
            continue;
        }
        if ((g->keys[k].p = malloc(n)) == NULL) {
            return VEIL_ERR_INTERNAL;
        }
        memcpy(g->keys[k].p, sqlite3_column_blob(stmt, (int)k), n);
        g->keys[k].n = n;
    }
    *out = g;
    return VEIL_OK;
}

/* Decodes veil_runs' blob (runs_final) into v->runs: ascending, maximal, and covering
 * exactly `count` sequence numbers, or VEIL_ERR_INTEGRITY. */
static veil_err agg_runs_decode(struct vl_seq_run **runs, size_t *nruns, const uint8_t *p,
                                size_t n, uint64_t count)
{
    size_t at = 0, cap = 0, k = 0;
    uint64_t covered = 0, prev_last = 0;
    struct vl_seq_run *r = NULL;
    veil_err rc = VEIL_OK;
    while (at < n && rc == VEIL_OK) {
        uint64_t off, len, first = 0;
        if (vl_varint_get(p, n, &at, &off) != 0 || vl_varint_get(p, n, &at, &len) != 0) {
            rc = VEIL_ERR_INTEGRITY;
            break;
        }
        if (k == 0) {
            first = off;
        } else if (prev_last >= (uint64_t)INT64_MAX - 1 ||
                   off > (uint64_t)INT64_MAX - 2 - prev_last) {
            rc = VEIL_ERR_INTEGRITY;
            break;
        } else {
            first = prev_last + 2 + off;
        }
        if (first > (uint64_t)INT64_MAX || len > (uint64_t)INT64_MAX - first ||
            len >= count - covered) {
            rc = VEIL_ERR_INTEGRITY; /* beyond int64 or more numbers than rows */
            break;
        }
        if (k == cap) {
            size_t ncap = cap ? cap * 2 : 4;
            struct vl_seq_run *q = realloc(r, ncap * sizeof(*q));
            if (q == NULL) {
                rc = VEIL_ERR_INTERNAL;
                break;
            }
            r = q;
            cap = ncap;
        }
        r[k].first = first;
        r[k].last = first + len;
        k++;
        covered += len + 1;
        prev_last = first + len;
    }
    if (rc == VEIL_OK && covered != count) {
        rc = VEIL_ERR_INTEGRITY;
    }
    *runs = r; /* the caller frees them, whatever happened */
    *nruns = k;
    return rc;
}

/* One row of the aggregate statement: one group. Columns: keys, count(*), then per ASHE
 * column count, four limb sums and runs; per Paillier column count and product. */
static veil_err agg_row(struct vl_agg_result *r, size_t *cap, sqlite3_stmt *stmt,
                        const struct vl_agg_request *req)
{
    struct vl_agg_group *g = NULL;
    int c = (int)req->ngroup;
    int64_t n = sqlite3_column_int64(stmt, c++);
    if (n <= 0) {
        /* no group columns and no matching row: SQL still answers one row */
        return req->ngroup == 0 && n == 0 ? VEIL_OK : VEIL_ERR_INTEGRITY;
    }
    veil_err rc = agg_group_new(r, cap, req->ngroup, stmt, &g);
    if (rc != VEIL_OK) {
        return rc;
    }
    g->count = (uint64_t)n;
    {
        int type = sqlite3_column_type(stmt, c);
        const uint8_t *bp = sqlite3_column_blob(stmt, c);
        size_t bn = (size_t)sqlite3_column_bytes(stmt, c++);
        if (type != SQLITE_BLOB || bn == 0) {
            return VEIL_ERR_INTEGRITY; /* negative or repeated sequence numbers */
        }
        if ((rc = agg_runs_decode(&g->runs, &g->nruns, bp, bn, (uint64_t)n)) != VEIL_OK) {
            return rc;
        }
    }
    for (size_t j = 0; j < req->ncols; j++) {
        struct vl_agg_value *v = &g->values[j];
        int64_t cnt = sqlite3_column_int64(stmt, c++);
        if (cnt < 0 || cnt > n) {
            return VEIL_ERR_INTEGRITY;
        }
        v->count = (uint64_t)cnt;
        if (!req->cols[j].paillier) {
            for (int k = 0; k < VL_SUM_LIMBS; k++) {
                /* NULL (no cell) reads 0; a REAL would mean a limb SUM over something that
                 * was not an integer */
                if (cnt > 0 && sqlite3_column_type(stmt, c) != SQLITE_INTEGER) {
                    return VEIL_ERR_INTEGRITY;
                }
                v->limbs[k] = sqlite3_column_int64(stmt, c++);
            }
            int type = sqlite3_column_type(stmt, c);
            const uint8_t *bp = sqlite3_column_blob(stmt, c);
            size_t bn = (size_t)sqlite3_column_bytes(stmt, c++);
            if (cnt == 0) {
                continue;
            }
            if (type != SQLITE_BLOB || bn == 0) {
                return VEIL_ERR_INTEGRITY; /* negative or repeated sequence numbers */
            }
            rc = agg_runs_decode(&v->runs, &v->nruns, bp, bn, (uint64_t)cnt);
            if (rc != VEIL_OK) {
                return rc;
            }
            continue;
        }
        int type = sqlite3_column_type(stmt, c);
        const void *bp = sqlite3_column_blob(stmt, c);
        size_t bn = (size_t)sqlite3_column_bytes(stmt, c++);
        if (cnt > 0 && (type != SQLITE_BLOB || bn == 0)) {
            return VEIL_ERR_INTEGRITY;
        }
        if (cnt > 0) {
            if ((v->product.p = malloc(bn)) == NULL) {
                return VEIL_ERR_INTERNAL;
            }
            memcpy(v->product.p, bp, bn);
            v->product.n = bn;
        }
    }
    return VEIL_OK;
}

/* Whether a request is well formed (file header: otherwise a caller bug). */
static int agg_req_ok(const struct vl_agg_request *req)
{
    if (req == NULL || req->ngroup > VL_AGG_MAX_GROUP ||
        (req->ngroup > 0 && req->group_cols == NULL) || (req->ncols > 0 && req->cols == NULL)) {
        return 0;
    }
    if (req->pred != NULL && !pred_ok(req->pred)) {
        return 0;
    }
    for (size_t j = 0; j < req->ncols; j++) {
        const struct vl_agg_col *c = &req->cols[j];
        if (c->paillier != 0 && c->paillier != 1) {
            return 0;
        }
        if (c->paillier && (c->modulus.p == NULL || c->modulus.n == 0 ||
                            c->modulus.n > SQ_MODULUS_MAX)) {
            return 0;
        }
        if (c->paillier) {
            size_t at = 0; /* the modulus must be at least 2 */
            while (at + 1 < c->modulus.n && c->modulus.p[at] == 0) {
                at++;
            }
            if (at + 1 == c->modulus.n && c->modulus.p[at] < 2) {
                return 0;
            }
        }
    }
    return 1;
}

static veil_err sq_aggregate(struct vl_store *vs, const char *table,
                             const struct vl_agg_request *req, struct vl_agg_result *out)
{
    struct sq_store *s = sq(vs);
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    struct vl_agg_result res = {NULL, 0, 0};
    struct vl_buf sql;
    size_t cap = 0;
    int in_txn = 0, absent = 0, via_temp = 0;
    size_t nterms = 0, nprod = 0;
    veil_err rc = VEIL_OK;
    int src = SQLITE_OK;

    vl_buf_init(&sql, SQ_SQL_MAX);
    if (!table_ok(table) || !agg_req_ok(req)) {
        rc = VEIL_ERR_INTERNAL;
        goto out;
    }
    if (req->ncols > SQ_AGG_MAX_COLS) {
        rc = VEIL_ERR_TOO_LARGE;
        goto out;
    }
    res.ncols = req->ncols;
    nterms = req->pred != NULL ? req->pred->nterms : 0;
    for (size_t j = 0; j < req->ncols; j++) {
        nprod += req->cols[j].paillier ? 1 : 0;
    }
    if (req->pred != NULL && pred_empty(req->pred)) {
        goto out; /* no matching row: no group */
    }
    size_t nparams = req->ngroup + req->ncols + nprod;
    for (size_t i = 0; i < nterms; i++) {
        nparams += 1 + req->pred->terms[i].ntoks;
        if (req->pred->terms[i].ntoks > SQ_SQL_MAX) {
            nparams = SIZE_MAX / 2; /* absurd; send it through the temp table */
        }
    }
    rc = conn_get(s, &db);
    if (rc != VEIL_OK) {
        goto out;
    }
    size_t maxvars = (size_t)sqlite3_limit(db, SQLITE_LIMIT_VARIABLE_NUMBER, -1);
    via_temp = nparams > maxvars;
    if (via_temp && 2 * nterms + req->ngroup + req->ncols + nprod > maxvars) {
        rc = VEIL_ERR_TOO_LARGE;
        goto out;
    }
    rc = agg_sql(table, req, via_temp, &sql);
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
        src = find_load_temp(db, req->pred);
    }
    if (src == SQLITE_OK && req->pred != NULL && req->pred->only_docs) {
        src = docs_load_temp(db, req->pred);
    }
    if (src == SQLITE_OK) {
        src = agg_bind(stmt, req, via_temp);
    }
    while (src == SQLITE_OK && (src = sqlite3_step(stmt)) == SQLITE_ROW) {
        rc = agg_row(&res, &cap, stmt, req);
        if (rc != VEIL_OK) {
            if (rc == VEIL_ERR_INTEGRITY) {
                vl_log(VL_LOG_WARN, "store %s: aggregate met inconsistent stored data", s->name);
            }
            src = SQLITE_OK;
            goto out;
        }
        src = SQLITE_OK;
    }
    src = src == SQLITE_DONE ? SQLITE_OK : src;
    if ((src & 0xff) == SQLITE_ERROR) {
        /* The statement prepared, so its text and tables were fine: a run-time error is the
         * stored data's (a limb SUM that overflows, a Paillier cell that is not a blob),
         * unless the table went away meanwhile (then it is empty). */
        src = missing_table(db, table, src, &absent);
        if (src != SQLITE_OK) {
            vl_log(VL_LOG_WARN, "store %s: aggregate met stored data it cannot combine", s->name);
            rc = VEIL_ERR_INTEGRITY;
            src = SQLITE_OK;
        }
        if (absent) {
            vl_agg_result_free(&res);
        }
    }

out:
    sqlite3_finalize(stmt);
    vl_buf_free(&sql);
    if (in_txn) {
        txn_end(db, 0); /* read only: ROLLBACK also empties the temp tables */
    }
    if (src != SQLITE_OK) {
        rc = sq_fail(s, src, "aggregate");
    }
    if (db != NULL) {
        conn_put(s, db);
    }
    if (rc == VEIL_OK) {
        *out = res;
    } else {
        vl_agg_result_free(&res);
    }
    return rc;
}

/* ---- the key-value space ---- */

/* Whether n keys are well formed (file header: otherwise a caller bug). */
static int kv_keys_ok(const struct vl_bytes *keys, size_t n)
{
    if (n > 0 && keys == NULL) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (keys[i].p == NULL || keys[i].n != VL_KV_KEY_BYTES) {
            return 0;
        }
    }
    return 1;
}

static int kv_ptr_cmp(const void *a, const void *b)
{
    const struct vl_kv *x = *(const struct vl_kv *const *)a;
    const struct vl_kv *y = *(const struct vl_kv *const *)b;
    int c = memcmp(x->key.p, y->key.p, VL_KV_KEY_BYTES);
    /* Equal keys keep their input order, so the last one written wins. */
    return c != 0 ? c : (x < y ? -1 : x > y);
}

/* Puts key-value entries, then rows, in one transaction: all or none. */
static veil_err sq_put(struct vl_store *vs, const char *table, const struct vl_row *rows,
                       size_t n, const struct vl_kv *kv, size_t nkv)
{
    const struct vl_kv **ord = NULL;
    unsigned char *keep = NULL;
    int made = 0;
    struct sq_store *s = sq(vs);
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt[PUT_NSTMT] = {NULL};
    sqlite3_stmt *kvs = NULL;
    int locked = 0, in_txn = 0, created = 0;
    veil_err rc = VEIL_OK;
    int src = SQLITE_OK;
    char sql[256];

    if (!table_ok(table) || (nkv > 0 && kv == NULL)) {
        rc = VEIL_ERR_INTERNAL;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (!row_ok(&rows[i])) {
            rc = VEIL_ERR_INTERNAL;
            goto out;
        }
    }
    for (size_t i = 0; i < nkv; i++) {
        if (!kv_keys_ok(&kv[i].key, 1) || kv[i].val.p == NULL || kv[i].val.n == 0 ||
            kv[i].val.n > VL_KV_VAL_MAX) {
            rc = VEIL_ERR_INTERNAL;
            goto out;
        }
    }
    if (n == 0 && nkv == 0) {
        goto out;
    }
    /* Inserted in key order, each B-tree page is visited once per call rather than once
     * per entry: labels are random, so in input order nearly every insert lands on a page
     * of its own. */
    if (nkv > 0 && (ord = malloc(nkv * sizeof(*ord))) == NULL) {
        rc = VEIL_ERR_INTERNAL;
        goto out;
    }
    for (size_t i = 0; i < nkv; i++) {
        ord[i] = &kv[i];
    }
    if (nkv > 0) {
        qsort(ord, nkv, sizeof(*ord), kv_ptr_cmp);
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
    snprintf(sql, sizeof(sql), "INSERT OR REPLACE INTO \"k_%s\"(key, val) VALUES (?, ?)", table);
    for (int attempt = 0; attempt < 2; attempt++) {
        if (src == SQLITE_OK && n > 0) {
            src = prepare_put(db, table, stmt);
        }
        if (src == SQLITE_OK && nkv > 0) {
            src = sqlite3_prepare_v2(db, sql, -1, &kvs, NULL);
        }
        if (src == SQLITE_OK || created) {
            break;
        }
        /* Dropped behind our back (another process); make them again. */
        for (int i = 0; i < PUT_NSTMT; i++) {
            sqlite3_finalize(stmt[i]);
            stmt[i] = NULL;
        }
        src = create_tables(db, table);
        created = 1;
    }
    for (size_t i = 0; src == SQLITE_OK && i < nkv; i++) {
        src = bind_bytes(kvs, 1, ord[i]->key.p, ord[i]->key.n);
        if (src == SQLITE_OK) {
            src = bind_bytes(kvs, 2, ord[i]->val.p, ord[i]->val.n);
        }
        if (src == SQLITE_OK) {
            src = step_done(kvs);
        }
    }
    if (src == SQLITE_OK && n > 0) {
        src = (keep = malloc(n)) == NULL ? SQLITE_NOMEM : put_last_rows(rows, n, keep);
    }
    for (size_t i = 0; src == SQLITE_OK && i < n; i++) {
        src = keep[i] ? put_one(stmt, &rows[i]) : SQLITE_OK;
    }
    if (src == SQLITE_OK && n > 0) {
        src = put_tokens(stmt, s->part_entries, rows, n, keep, &made);
    }
    /* A level can only fill when a partition is made, so only such a write merges. */
    if (src == SQLITE_OK && made) {
        for (int i = 0; i < PUT_NSTMT; i++) { /* the merge may drop and make partitions */
            sqlite3_reset(stmt[i]);
        }
        src = part_merge(db, table);
    }

out:
    free(ord);
    free(keep);
    sqlite3_finalize(kvs);
    for (int i = 0; i < PUT_NSTMT; i++) {
        sqlite3_finalize(stmt[i]);
    }
    if (in_txn) {
        int end = txn_end(db, src == SQLITE_OK);
        src = src == SQLITE_OK ? end : src;
    }
    if (src != SQLITE_OK) {
        rc = sq_fail(s, src, nkv > 0 ? "kv_put" : "put_rows");
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

static veil_err sq_put_rows(struct vl_store *vs, const char *table, const struct vl_row *rows,
                            size_t n)
{
    return sq_put(vs, table, rows, n, NULL, 0);
}

static veil_err sq_kv_put(struct vl_store *vs, const char *table, const struct vl_kv *kv,
                          size_t n)
{
    return sq_put(vs, table, NULL, 0, kv, n);
}

/* One wanted key of a kv_get: the caller's keys[pos]. */
struct kv_want {
    const uint8_t *key;
    size_t pos;
};

/* One distinct wanted key and, once found, where its value lies in the arena. */
struct kv_slot {
    const uint8_t *key;
    size_t off;
    size_t len; /* 0: not found (stored values are never empty) */
};

static int kv_want_cmp(const void *a, const void *b)
{
    const struct kv_want *x = a, *y = b;
    int c = memcmp(x->key, y->key, VL_KV_KEY_BYTES);
    return c != 0 ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

/* Files the current row (key, val) of a batch's statement under its slot among the k sorted
 * slots, copying the value into the arena. VEIL_ERR_INTEGRITY for an answer that was not
 * asked for or a value that is not a blob of 1..VL_KV_VAL_MAX bytes. */
static veil_err kv_take(sqlite3_stmt *stmt, struct kv_slot *slots, size_t k, struct vl_buf *arena)
{
    if (sqlite3_column_type(stmt, 0) != SQLITE_BLOB ||
        sqlite3_column_bytes(stmt, 0) != VL_KV_KEY_BYTES ||
        sqlite3_column_type(stmt, 1) != SQLITE_BLOB) {
        return VEIL_ERR_INTEGRITY;
    }
    const uint8_t *key = sqlite3_column_blob(stmt, 0);
    const uint8_t *val = sqlite3_column_blob(stmt, 1);
    size_t n = (size_t)sqlite3_column_bytes(stmt, 1);
    if (val == NULL || n == 0 || n > VL_KV_VAL_MAX) {
        return VEIL_ERR_INTEGRITY;
    }
    size_t lo = 0, hi = k;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(slots[mid].key, key, VL_KV_KEY_BYTES);
        if (c == 0) {
            if (slots[mid].len != 0) {
                return VEIL_ERR_INTEGRITY; /* answered twice */
            }
            slots[mid].off = arena->len;
            slots[mid].len = n;
            return vl_buf_append(arena, val, n);
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return VEIL_ERR_INTEGRITY;
}

static veil_err sq_kv_get(struct vl_store *vs, const char *table, const struct vl_bytes *keys,
                          size_t n, struct vl_kv_values *out)
{
    struct sq_store *s = sq(vs);
    sqlite3 *db = NULL;
    sqlite3_stmt *full = NULL, *part = NULL;
    struct kv_want *want = NULL;
    struct kv_slot *slots = NULL;
    struct vl_kv_values res = {NULL, 0, NULL};
    struct vl_buf arena;
    size_t nslots = 0;
    int in_txn = 0, absent = 0;
    veil_err rc = VEIL_OK;
    int src = SQLITE_OK;
    char head[256];

    vl_buf_init(&arena, 0);
    if (!table_ok(table) || !kv_keys_ok(keys, n)) {
        rc = VEIL_ERR_INTERNAL;
        goto out;
    }
    if (n == 0) {
        goto out;
    }
    if (n > SIZE_MAX / VL_KV_VAL_MAX) { /* so that no size below overflows */
        rc = VEIL_ERR_TOO_LARGE;
        goto out;
    }
    want = malloc(n * sizeof(*want));
    slots = malloc(n * sizeof(*slots));
    res.vals = calloc(n, sizeof(*res.vals));
    if (want == NULL || slots == NULL || res.vals == NULL) {
        rc = VEIL_ERR_INTERNAL;
        goto out;
    }
    res.n = n;
    for (size_t i = 0; i < n; i++) {
        want[i].key = keys[i].p;
        want[i].pos = i;
    }
    qsort(want, n, sizeof(*want), kv_want_cmp);
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || memcmp(want[i].key, want[i - 1].key, VL_KV_KEY_BYTES) != 0) {
            slots[nslots].key = want[i].key;
            slots[nslots].off = 0;
            slots[nslots].len = 0;
            nslots++;
        }
    }
    vl_buf_init(&arena, nslots * VL_KV_VAL_MAX); /* each distinct key has at most one value */

    rc = conn_get(s, &db);
    if (rc != VEIL_OK) {
        goto out;
    }
    src = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    if (src != SQLITE_OK) {
        goto out;
    }
    in_txn = 1;
    snprintf(head, sizeof(head), "SELECT key, val FROM \"k_%s\" WHERE key IN (", table);
    for (size_t at = 0; src == SQLITE_OK && at < nslots; at += SQ_KV_BATCH) {
        size_t k = nslots - at < SQ_KV_BATCH ? nslots - at : SQ_KV_BATCH;
        sqlite3_stmt **stmt = k == SQ_KV_BATCH ? &full : &part;
        if (*stmt == NULL) {
            src = prepare_in(db, head, k, ")", stmt);
        }
        for (size_t i = 0; src == SQLITE_OK && i < k; i++) {
            src = bind_bytes(*stmt, (int)i + 1, slots[at + i].key, VL_KV_KEY_BYTES);
        }
        while (src == SQLITE_OK && (src = sqlite3_step(*stmt)) == SQLITE_ROW) {
            rc = kv_take(*stmt, slots + at, k, &arena);
            src = SQLITE_OK;
            if (rc != VEIL_OK) {
                if (rc == VEIL_ERR_INTEGRITY) {
                    vl_log(VL_LOG_WARN, "store %s: kv_get met a stored entry it cannot return",
                           s->name);
                }
                sqlite3_reset(*stmt);
                goto out;
            }
        }
        src = src == SQLITE_DONE ? SQLITE_OK : src;
        sqlite3_reset(*stmt);
    }
    if (src != SQLITE_OK) {
        /* no k_T: never made, or dropped since this connection last read the schema (then
         * the prepare succeeds and the step fails) */
        src = missing_sql_table(db, 'k', table, src, &absent);
    }
    if (src != SQLITE_OK || absent || arena.len == 0) {
        goto out;
    }
    res.arena = vl_buf_steal(&arena, NULL);
    for (size_t i = 0, u = 0; i < n; i++) {
        if (i > 0 && memcmp(want[i].key, want[i - 1].key, VL_KV_KEY_BYTES) != 0) {
            u++;
        }
        assert(u < nslots);
        if (slots[u].len > 0) {
            res.vals[want[i].pos].p = (uint8_t *)res.arena + slots[u].off;
            res.vals[want[i].pos].n = slots[u].len;
        }
    }

out:
    sqlite3_finalize(full);
    sqlite3_finalize(part);
    if (in_txn) {
        txn_end(db, 0); /* read only */
    }
    if (src != SQLITE_OK) {
        rc = sq_fail(s, src, "kv_get");
    }
    if (db != NULL) {
        conn_put(s, db);
    }
    vl_buf_free(&arena);
    free(want);
    free(slots);
    if (rc == VEIL_OK) {
        *out = res;
    } else {
        vl_kv_values_free(&res);
    }
    return rc;
}

static veil_err sq_kv_delete(struct vl_store *vs, const char *table, const struct vl_bytes *keys,
                             size_t n)
{
    struct sq_store *s = sq(vs);
    sqlite3 *db = NULL;
    sqlite3_stmt *full = NULL, *part = NULL;
    int locked = 0, in_txn = 0, absent = 0;
    veil_err rc = VEIL_OK;
    int src = SQLITE_OK;
    char head[256];

    if (!table_ok(table) || !kv_keys_ok(keys, n)) {
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
    snprintf(head, sizeof(head), "DELETE FROM \"k_%s\" WHERE key IN (", table);
    for (size_t at = 0; src == SQLITE_OK && at < n; at += SQ_KV_BATCH) {
        size_t k = n - at < SQ_KV_BATCH ? n - at : SQ_KV_BATCH;
        sqlite3_stmt **stmt = k == SQ_KV_BATCH ? &full : &part;
        if (*stmt == NULL) {
            src = prepare_in(db, head, k, ")", stmt);
        }
        for (size_t i = 0; src == SQLITE_OK && i < k; i++) {
            src = bind_bytes(*stmt, (int)i + 1, keys[at + i].p, keys[at + i].n);
        }
        if (src == SQLITE_OK) {
            src = step_done(*stmt);
        }
    }
    if (src != SQLITE_OK) {
        src = missing_sql_table(db, 'k', table, src, &absent); /* as in kv_get */
    }

out:
    sqlite3_finalize(full);
    sqlite3_finalize(part);
    if (in_txn) {
        int end = txn_end(db, src == SQLITE_OK);
        src = src == SQLITE_OK ? end : src;
    }
    if (src != SQLITE_OK) {
        rc = sq_fail(s, src, "kv_delete");
    }
    if (locked) {
        pthread_mutex_unlock(&s->write_mu);
    }
    if (db != NULL) {
        conn_put(s, db);
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
    s->part_entries = SQ_PART_ENTRIES;
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
    int old = 0;
    src = format_check(db, &old);
    if (src != SQLITE_OK || old) {
        sqlite3_close(db);
        rc = src != SQLITE_OK
                 ? vl_status_set(st, VEIL_ERR_STORE_UNAVAILABLE, NULL,
                                 "store %s: cannot read its format: %s", s->name,
                                 sqlite3_errstr(src))
                 : vl_status_set(st, VEIL_ERR_STORE_UNAVAILABLE, NULL,
                                 "store %s was written by an older pre-release veil in a layout "
                                 "this one does not read; load its data again into a new data "
                                 "directory (there is no migration)",
                                 s->name);
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

void vl_store_sqlite_partition(struct vl_store *vs, size_t entries)
{
    if (vs != NULL && vs->ops == &vl_store_sqlite_ops && entries > 0) {
        sq(vs)->part_entries = (sqlite3_int64)entries;
    }
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
    .aggregate = sq_aggregate,
    .kv_put = sq_kv_put,
    .kv_get = sq_kv_get,
    .kv_delete = sq_kv_delete,
    .put = sq_put,
    .members = sq_members,
};
