/*
 * trusted.c: the trusted state on SQLite (WAL, synchronous=NORMAL: a process crash loses
 * nothing committed; secure_delete=ON: a shredded tenant's wrapped key does not linger in
 * free pages). One connection guarded by a mutex: every function below is one short
 * transaction, so serialising them costs little and keeps the invariants simple.
 *
 * Three kinds of transaction commit with synchronous=FULL instead (the WAL is synced before
 * the commit returns, so a power loss cannot take them back): the reservation of a block of
 * row sequence numbers, the recording of write intents, and the spending of a privacy
 * budget. Nothing reaches a store before the intents of its write are recorded, and every
 * counter a write uses (its block, its search counters) was reserved before that, in the
 * same WAL: so whatever a store holds, the trusted state still knows after a power loss,
 * and a number it handed out to a write that reached a store is never handed out again. A
 * trusted state restored from a backup is another matter: its counters (and the privacy
 * budgets spent) go back. Row sequence numbers then stay unique because each
 * block starts at a random place in a 2^62-wide space (a number reused after a restore
 * needs a new block to land on a lost one); search entries because their nonces are random
 * and each accepted rollback moves words to a new key epoch; and the `mark`, a counter
 * every reservation and every write batch increments and the stores keep a sealed copy of,
 * lets the engine notice at start that the stores have seen more than this state has.
 *
 * Invariants: a document's row in `docs` changes only in vl_trusted_intents_finish, from
 * an intent recorded by vl_trusted_intents_begin; at most one intent per document is
 * unfinished at a time; versions only grow, also across deletes, so an old ciphertext can
 * never become current again; the blocks of a collection never overlap.
 *
 * Differential privacy: the spending of a period is only ever checked and added in one
 * durable transaction (vl_trusted_dp_begin) together with the pending answer it pays for,
 * so no interleaving of requests spends less than their answers cost, and a spend is on
 * disk before its answer can be released. A pending answer whose request died stays paid
 * for (a crash refunds nothing). Spending rows only grow, but for an operator's reset, an
 * explicit refund of an answer that was not released, and their removal 400 days after
 * their period began. Each spend moves the mark, like a write, so that the stores can tell
 * a restored trusted.db that forgot it; a period in which a rollback was accepted counts as
 * spent in full. Kept answers are plaintext aggregates: they are shredded with their
 * tenant.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>

#include "crypto/crypto.h"
#include "trusted/trusted.h"
#include "util/log.h"

#define MAX_READERS 8
#define STMT_CACHE 128 /* prepared statements kept on a connection */

/* A connection and the statements prepared on it that are not in use: parsing a statement
 * costs about as much as running most of those here, so each is prepared once. */
struct conn {
    sqlite3 *db;
    sqlite3_stmt *idle[STMT_CACHE];
    uint32_t hash[STMT_CACHE]; /* of each one's text (sql_hash) */
};

struct vl_trusted {
    sqlite3 *db;
    pthread_mutex_t mu;
    char *path;
    pthread_mutex_t rmu;             /* guards readers */
    struct conn *readers[MAX_READERS]; /* idle connections for snapshots */
    size_t nreaders;
    struct conn main;                  /* db and its statements (under mu) */
};

/* A read snapshot: its own connection, inside one read transaction. */
struct vl_tsnap {
    struct vl_trusted *t;
    struct conn *cn;
    bool frozen; /* cn is &t->main, under t->mu and the write lock */
};

/* Token sets: per token key, its live documents' count and sums (sethash.h). Keyed by the
 * token key alone (it is unique to its collection, being keyed by the collection's set key),
 * so that a lookup compares one 16-byte string; tenant and coll are for removing a
 * tenant's sets, and every read and write still names them. */
#define TOKSET_COLUMNS \
    "tk BLOB PRIMARY KEY, tenant INTEGER NOT NULL, coll TEXT NOT NULL, n INTEGER NOT NULL," \
    " hq BLOB NOT NULL, ha BLOB NOT NULL"

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v BLOB);"
    "CREATE TABLE IF NOT EXISTS tenants(id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL,"
    "  created INTEGER NOT NULL, key_version INTEGER NOT NULL,"
    "  shredded INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS tenant_keys(tenant INTEGER NOT NULL,"
    "  version INTEGER NOT NULL, wrapped BLOB NOT NULL, PRIMARY KEY(tenant, version));"
    "CREATE TABLE IF NOT EXISTS tokens(id TEXT PRIMARY KEY, tenant INTEGER NOT NULL,"
    "  role TEXT NOT NULL, hash BLOB NOT NULL, created INTEGER NOT NULL,"
    "  revoked INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS collections(tenant INTEGER NOT NULL, name TEXT NOT NULL,"
    "  policy TEXT NOT NULL, next_seq INTEGER NOT NULL DEFAULT 1,"
    "  created INTEGER NOT NULL, PRIMARY KEY(tenant, name));"
    "CREATE TABLE IF NOT EXISTS docs(tenant INTEGER NOT NULL, coll TEXT NOT NULL,"
    "  doc BLOB NOT NULL, version INTEGER NOT NULL, seq INTEGER NOT NULL,"
    "  digest BLOB NOT NULL, live INTEGER NOT NULL, part BLOB,"
    "  PRIMARY KEY(tenant, coll, doc)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS intents(id INTEGER PRIMARY KEY, tenant INTEGER NOT NULL,"
    "  coll TEXT NOT NULL, doc BLOB NOT NULL, op INTEGER NOT NULL,"
    "  old_version INTEGER NOT NULL, version INTEGER NOT NULL, seq INTEGER NOT NULL,"
    "  digest BLOB NOT NULL, payload BLOB NOT NULL, part BLOB NOT NULL);"
    "CREATE UNIQUE INDEX IF NOT EXISTS intents_doc ON intents(tenant, coll, doc);"
    /* Search: per-word counters, reserved-but-unwritten index entries, per-field totals. */
    "CREATE TABLE IF NOT EXISTS words(tenant INTEGER NOT NULL, coll TEXT NOT NULL,"
    "  wkey BLOB NOT NULL, count INTEGER NOT NULL, epoch INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY(tenant, coll, wkey)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS reserved(tenant INTEGER NOT NULL, coll TEXT NOT NULL,"
    "  res INTEGER NOT NULL, words BLOB NOT NULL, PRIMARY KEY(tenant, coll, res));"
    "CREATE TABLE IF NOT EXISTS sstats(tenant INTEGER NOT NULL, coll TEXT NOT NULL,"
    "  field INTEGER NOT NULL, ndocs INTEGER NOT NULL, total INTEGER NOT NULL,"
    "  PRIMARY KEY(tenant, coll, field)) WITHOUT ROWID;"

    /* Blocks of row sequence numbers handed out, and the rollbacks an operator accepted. */
    "CREATE TABLE IF NOT EXISTS blocks(tenant INTEGER NOT NULL, coll TEXT NOT NULL,"
    "  start INTEGER NOT NULL, n INTEGER NOT NULL, mark INTEGER NOT NULL,"
    "  created INTEGER NOT NULL, PRIMARY KEY(tenant, coll, start)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS rollbacks(id INTEGER PRIMARY KEY, time INTEGER NOT NULL,"
    "  trusted_mark INTEGER NOT NULL, store_mark INTEGER NOT NULL,"
    "  search_epoch INTEGER NOT NULL);"

    /* Differential privacy: spending per (collection, period, role, token), token '' being
     * the role's total; answers pending (answer NULL) or kept, one per query of a role. */
    "CREATE TABLE IF NOT EXISTS dp_spent(tenant INTEGER NOT NULL, coll TEXT NOT NULL,"
    "  period INTEGER NOT NULL, role TEXT NOT NULL, token TEXT NOT NULL,"
    "  eps INTEGER NOT NULL, delta INTEGER NOT NULL, answers INTEGER NOT NULL,"
    "  PRIMARY KEY(tenant, coll, period, role, token));"
    "CREATE TABLE IF NOT EXISTS dp_answers(ticket INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  tenant INTEGER NOT NULL, coll TEXT NOT NULL, period INTEGER NOT NULL,"
    "  role TEXT NOT NULL, query BLOB NOT NULL, token TEXT NOT NULL, eps INTEGER NOT NULL,"
    "  delta INTEGER NOT NULL, started INTEGER NOT NULL, answer TEXT);"
    "CREATE UNIQUE INDEX IF NOT EXISTS dp_answers_key ON dp_answers(tenant, coll, role,"
    "  period, query);"

    "CREATE TABLE IF NOT EXISTS tokset(" TOKSET_COLUMNS ") WITHOUT ROWID;"

    "INSERT OR IGNORE INTO meta(k, v) VALUES('schema', 1);"
    "INSERT OR IGNORE INTO meta(k, v) VALUES('mark', 0);"
    "INSERT OR IGNORE INTO meta(k, v) VALUES('search_epoch', 0);";

/* After the columns are there: documents by row sequence number, covering what a search
 * needs of them (a WITHOUT ROWID table's index holds its primary key, doc, too). */
static const char schema_indexes[] =
    "DROP INDEX IF EXISTS docs_seq;"
    "CREATE INDEX IF NOT EXISTS docs_live ON docs(tenant, coll, live, seq, version, slen);";

/* Columns added after schema 1; each is added when missing (ALTER TABLE is idempotent
 * this way, and a state written by an older veil opens unchanged otherwise). */
static const char *const added_columns[][2] = {
    {"docs", "slen"},
    {"intents", "slen"},
    {"tokens", "last_used"},
    {"words", "since"}, /* the first counter of the word's current key epoch (NULL: 0) */
    {"words", "hist"},  /* its earlier epochs: "epoch:first " per epoch, oldest first */
    {"docs", "tks"},    /* the token keys of the current version */
    {"intents", "tks"}, /* those of the new version */
};


/* The format of the token sets' keys (sethash.h: a class, then 14 bytes of BLAKE2b). A
 * trusted state with sets or live documents but without this mark predates it: its sets are
 * under other keys (or it has none), so every check would fail as if its store lied. */
#define TK_FORMAT 2

static veil_err tk_format_check(struct vl_trusted *t, veil_status *st)
{
    sqlite3_stmt *s = NULL;
    int r = sqlite3_prepare_v2(t->db,
                               "SELECT (SELECT v FROM meta WHERE k='tk_format'),"
                               " EXISTS(SELECT 1 FROM tokset) OR EXISTS(SELECT 1 FROM docs"
                               " WHERE live=1)",
                               -1, &s, NULL);
    if (r != SQLITE_OK || sqlite3_step(s) != SQLITE_ROW) {
        sqlite3_finalize(s);
        return vl_status_set(st, VEIL_ERR_STORE_UNAVAILABLE, "trusted",
                             "cannot read the trusted state: %s", sqlite3_errmsg(t->db));
    }
    bool marked = sqlite3_column_type(s, 0) != SQLITE_NULL;
    int64_t format = sqlite3_column_int64(s, 0);
    bool used = sqlite3_column_int(s, 1) != 0;
    sqlite3_finalize(s);
    if (marked && format == TK_FORMAT) {
        return VEIL_OK;
    }
    if (marked || used) {
        return vl_status_set(st, VEIL_ERR_STORE_UNAVAILABLE, "trusted",
                             "the trusted state was written by an older pre-release veil: its "
                             "token sets are of another format, so no answer could be checked; "
                             "load the data again into a new data directory");
    }
    /* A new state, or an empty one of an older veil: its token sets table laid out anew. */
    if (sqlite3_exec(t->db,
                     "BEGIN IMMEDIATE; DROP TABLE tokset;"
                     " CREATE TABLE tokset(" TOKSET_COLUMNS ") WITHOUT ROWID;"
                     " INSERT INTO meta(k, v) VALUES('tk_format', 2); COMMIT;",
                     NULL, NULL, NULL) != SQLITE_OK) {
        sqlite3_exec(t->db, "ROLLBACK", NULL, NULL, NULL);
        return vl_status_set(st, VEIL_ERR_STORE_UNAVAILABLE, "trusted",
                             "cannot prepare the trusted state: %s", sqlite3_errmsg(t->db));
    }
    return VEIL_OK;
}

static void addmod_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv);

static veil_err db_err(struct vl_trusted *t, int rc, const char *what)
{
    (void)rc;
    vl_log(VL_LOG_ERROR, "trusted state: %s: %s", what, sqlite3_errmsg(t->db));
    return VEIL_ERR_STORE_UNAVAILABLE;
}

static int64_t now(void)
{
    return (int64_t)time(NULL);
}

static veil_err add_columns(struct vl_trusted *t)
{
    for (size_t i = 0; i < sizeof(added_columns) / sizeof(added_columns[0]); i++) {
        char sql[128];
        sqlite3_stmt *s = NULL;
        int found = 0;
        snprintf(sql, sizeof(sql), "SELECT 1 FROM pragma_table_info('%s') WHERE name='%s'",
                 added_columns[i][0], added_columns[i][1]);
        if (sqlite3_prepare_v2(t->db, sql, -1, &s, NULL) != SQLITE_OK) {
            return VEIL_ERR_STORE_UNAVAILABLE;
        }
        found = sqlite3_step(s) == SQLITE_ROW;
        sqlite3_finalize(s);
        snprintf(sql, sizeof(sql), "ALTER TABLE %s ADD COLUMN %s BLOB", added_columns[i][0],
                 added_columns[i][1]);
        if (!found && sqlite3_exec(t->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
            return VEIL_ERR_STORE_UNAVAILABLE;
        }
    }
    return VEIL_OK;
}

veil_err vl_trusted_open(const char *url, const char *datadir, bool create,
                         struct vl_trusted **out, veil_status *st)
{
    veil_err rc = VEIL_OK;
    struct vl_trusted *t = NULL;
    char path[4096];
    if (strncmp(url, "sqlite:", 7) != 0) {
        return vl_status_set(st, VEIL_ERR_BAD_REQUEST, "trusted",
                             "trusted state: only sqlite: is supported in this version");
    }
    const char *p = url + 7;
    if (p[0] == '/') {
        snprintf(path, sizeof(path), "%s", p);
    } else {
        snprintf(path, sizeof(path), "%s/%s", datadir, p);
    }
    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
    }
    pthread_mutex_init(&t->mu, NULL);
    pthread_mutex_init(&t->rmu, NULL);
    if ((t->path = strdup(path)) == NULL) {
        free(t);
        return vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
    }
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    int opened = sqlite3_open_v2(path, &t->db, flags, NULL);
    t->main.db = t->db;
    if (opened != SQLITE_OK) {
        rc = vl_status_set(st, VEIL_ERR_STORE_UNAVAILABLE, "trusted",
                           "cannot open the trusted state (%s)", p);
        goto out;
    }
    if (create) {
        chmod(path, 0600);
    }
    sqlite3_busy_timeout(t->db, 10000);
    char *err = NULL;
    if (sqlite3_create_function_v2(t->db, "veil_addmod", 2,
                                   SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_DIRECTONLY, NULL,
                                   addmod_fn, NULL, NULL, NULL) != SQLITE_OK) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, "trusted", "cannot prepare the trusted state");
        goto out;
    }
    if (sqlite3_exec(t->db,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                     "PRAGMA secure_delete=ON; PRAGMA foreign_keys=OFF;"
                     "PRAGMA cache_size=-65536; PRAGMA wal_autocheckpoint=8192;",
                     NULL, NULL, &err) != SQLITE_OK ||
        sqlite3_exec(t->db, schema, NULL, NULL, &err) != SQLITE_OK) {
        rc = vl_status_set(st, VEIL_ERR_STORE_UNAVAILABLE, "trusted",
                           "cannot prepare the trusted state: %s", err ? err : "?");
        sqlite3_free(err);
        goto out;
    }
    if (add_columns(t) != VEIL_OK ||
        sqlite3_exec(t->db, schema_indexes, NULL, NULL, NULL) != SQLITE_OK) {
        rc = vl_status_set(st, VEIL_ERR_STORE_UNAVAILABLE, "trusted",
                           "cannot upgrade the trusted state: %s", sqlite3_errmsg(t->db));
        goto out;
    }
    rc = tk_format_check(t, st);
out:
    if (rc == VEIL_OK) {
        *out = t;
    } else {
        vl_trusted_close(t);
    }
    return rc;
}

static void conn_close(struct conn *cn);

void vl_trusted_close(struct vl_trusted *t)
{
    if (t == NULL) {
        return;
    }
    conn_close(&t->main);
    for (size_t i = 0; i < t->nreaders; i++) {
        conn_close(t->readers[i]);
        free(t->readers[i]);
    }
    pthread_mutex_destroy(&t->mu);
    pthread_mutex_destroy(&t->rmu);
    free(t->path);
    free(t);
}

/* ---- small helpers: prepare, bind, step under the lock ---- */

/* FNV-1a of a statement's text: where to look in the cache first. */
static uint32_t sql_hash(const char *sql)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *c = (const unsigned char *)sql; *c != 0; c++) {
        h = (h ^ *c) * 16777619u;
    }
    return h;
}

/* A statement on cn: one kept from an earlier call with the same text when there is one,
 * else a new one. The caller owns cn (holds t->mu for the main connection, or the
 * snapshot). Give it back with conn_unprep, or finalize it. */
static sqlite3_stmt *conn_prep(struct conn *cn, const char *sql)
{
    uint32_t h = sql_hash(sql);
    for (size_t i = 0; i < STMT_CACHE; i++) {
        sqlite3_stmt *c = cn->idle[i];
        if (c != NULL && cn->hash[i] == h && strcmp(sqlite3_sql(c), sql) == 0) {
            cn->idle[i] = NULL;
            return c;
        }
    }
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v3(cn->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK) {
        vl_log(VL_LOG_ERROR, "trusted state: prepare: %s", sqlite3_errmsg(cn->db));
        return NULL;
    }
    return s;
}

/* Keeps a statement from conn_prep for the next call (reset, its bindings cleared), or
 * finalizes it when the cache is full. NULL is ignored. */
static void conn_unprep(struct conn *cn, sqlite3_stmt *s)
{
    if (s == NULL) {
        return;
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    for (size_t i = 0; i < STMT_CACHE; i++) {
        if (cn->idle[i] == NULL) {
            cn->idle[i] = s;
            cn->hash[i] = sql_hash(sqlite3_sql(s));
            return;
        }
    }
    sqlite3_finalize(s);
}

static void conn_close(struct conn *cn)
{
    for (size_t i = 0; i < STMT_CACHE; i++) {
        sqlite3_finalize(cn->idle[i]);
        cn->idle[i] = NULL;
    }
    sqlite3_close_v2(cn->db);
    cn->db = NULL;
}

static sqlite3_stmt *prep(struct vl_trusted *t, const char *sql)
{
    return conn_prep(&t->main, sql);
}

static void unprep(struct vl_trusted *t, sqlite3_stmt *s)
{
    conn_unprep(&t->main, s);
}

static int exec(struct vl_trusted *t, const char *sql)
{
    return sqlite3_exec(t->db, sql, NULL, NULL, NULL);
}

/* Takes the lock and opens a write transaction; `durable`: one whose commit syncs the WAL
 * (synchronous=FULL for this transaction alone), so it survives a power loss once
 * committed. */
static veil_err tx_open(struct vl_trusted *t, bool durable)
{
    pthread_mutex_lock(&t->mu);
    if ((durable && exec(t, "PRAGMA synchronous=FULL") != SQLITE_OK) ||
        exec(t, "BEGIN IMMEDIATE") != SQLITE_OK) {
        veil_err rc = db_err(t, 0, "begin");
        if (durable) {
            exec(t, "PRAGMA synchronous=NORMAL");
        }
        pthread_mutex_unlock(&t->mu);
        return rc;
    }
    return VEIL_OK;
}

/* Commits when rc is VEIL_OK, else rolls back; releases the lock. */
static veil_err tx_close(struct vl_trusted *t, veil_err rc, bool durable)
{
    if (rc == VEIL_OK && exec(t, "COMMIT") != SQLITE_OK) {
        rc = db_err(t, 0, "commit");
    }
    if (rc != VEIL_OK) {
        exec(t, "ROLLBACK");
    }
    if (durable) {
        exec(t, "PRAGMA synchronous=NORMAL");
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

static veil_err tx_begin(struct vl_trusted *t)
{
    return tx_open(t, false);
}

static veil_err tx_end(struct vl_trusted *t, veil_err rc)
{
    return tx_close(t, rc, false);
}

/* End with tx_end_durable. */
static veil_err tx_begin_durable(struct vl_trusted *t)
{
    return tx_open(t, true);
}

static veil_err tx_end_durable(struct vl_trusted *t, veil_err rc)
{
    return tx_close(t, rc, true);
}

/* Adds one to the mark (inside a transaction); *mark is the new value. */
static veil_err mark_bump(struct vl_trusted *t, uint64_t *mark)
{
    sqlite3_stmt *s = prep(t, "UPDATE meta SET v = v + 1 WHERE k='mark' RETURNING v");
    veil_err rc = VEIL_OK;
    if (s == NULL || sqlite3_step(s) != SQLITE_ROW) {
        rc = db_err(t, 0, "mark");
    } else {
        *mark = (uint64_t)sqlite3_column_int64(s, 0);
        while (sqlite3_step(s) == SQLITE_ROW) {
        }
    }
    unprep(t, s);
    return rc;
}

/* Steps a statement expected to finish (INSERT, UPDATE, DELETE) and finalizes it. */
static veil_err run(struct vl_trusted *t, sqlite3_stmt *s, const char *what)
{
    if (s == NULL) {
        return db_err(t, 0, what);
    }
    int r = sqlite3_step(s);
    unprep(t, s);
    if (r == SQLITE_CONSTRAINT) {
        return VEIL_ERR_CONFLICT;
    }
    return r == SQLITE_DONE ? VEIL_OK : db_err(t, r, what);
}

static void bind_bytes(sqlite3_stmt *s, int i, const void *p, size_t n)
{
    sqlite3_bind_blob(s, i, n ? p : "", (int)n, SQLITE_TRANSIENT);
}

/* Resets s for another row and binds the (tenant, collection) most statements here start
 * with, as parameters 1 and 2. */
static void bind_tc(sqlite3_stmt *s, int64_t tenant, const char *coll)
{
    sqlite3_reset(s);
    sqlite3_bind_int64(s, 1, tenant);
    sqlite3_bind_text(s, 2, coll, -1, SQLITE_TRANSIENT);
}

/* ---- tenants ---- */

veil_err vl_trusted_tenant_create(struct vl_trusted *t, const char *name,
                                  const struct vl_bytes *wrapped_key, veil_status *st)
{
    veil_err rc = tx_begin(t);
    if (rc != VEIL_OK) {
        return vl_status_set(st, rc, "trusted", "the trusted state is unavailable");
    }
    sqlite3_stmt *s = prep(t, "INSERT INTO tenants(name, created, key_version) VALUES(?,?,1)");
    if (s != NULL) {
        sqlite3_bind_text(s, 1, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(s, 2, now());
    }
    rc = run(t, s, "tenant insert");
    if (rc == VEIL_OK) {
        int64_t id = sqlite3_last_insert_rowid(t->db);
        s = prep(t, "INSERT INTO tenant_keys(tenant, version, wrapped) VALUES(?, 1, ?)");
        if (s != NULL) {
            sqlite3_bind_int64(s, 1, id);
            bind_bytes(s, 2, wrapped_key->p, wrapped_key->n);
        }
        rc = run(t, s, "tenant key insert");
    }
    rc = tx_end(t, rc);
    if (rc == VEIL_ERR_CONFLICT) {
        return vl_status_set(st, rc, "tenant", "tenant %s exists already", name);
    }
    if (rc != VEIL_OK) {
        return vl_status_set(st, rc, "trusted", "the trusted state is unavailable");
    }
    return VEIL_OK;
}

veil_err vl_trusted_tenant_find(struct vl_trusted *t, const char *name,
                                struct vl_tenant_row *out)
{
    veil_err rc = VEIL_ERR_NOT_FOUND;
    pthread_mutex_lock(&t->mu);
    sqlite3_stmt *s = prep(t, "SELECT id, key_version, shredded FROM tenants WHERE name=?");
    if (s == NULL) {
        rc = db_err(t, 0, "tenant find");
        goto out;
    }
    sqlite3_bind_text(s, 1, name, -1, SQLITE_TRANSIENT);
    int r = sqlite3_step(s);
    if (r == SQLITE_ROW) {
        out->id = sqlite3_column_int64(s, 0);
        out->key_version = (uint32_t)sqlite3_column_int64(s, 1);
        out->shredded = sqlite3_column_int(s, 2) != 0;
        rc = VEIL_OK;
    } else if (r != SQLITE_DONE) {
        rc = db_err(t, r, "tenant find");
    }
out:
    unprep(t, s);
    pthread_mutex_unlock(&t->mu);
    return rc;
}

veil_err vl_trusted_tenant_key(struct vl_trusted *t, int64_t tenant, uint32_t version,
                               struct vl_buf *wrapped)
{
    veil_err rc = VEIL_ERR_NOT_FOUND;
    pthread_mutex_lock(&t->mu);
    sqlite3_stmt *s = prep(t, "SELECT wrapped FROM tenant_keys WHERE tenant=? AND version=?");
    if (s == NULL) {
        rc = db_err(t, 0, "tenant key");
        goto out;
    }
    sqlite3_bind_int64(s, 1, tenant);
    sqlite3_bind_int64(s, 2, version);
    int r = sqlite3_step(s);
    if (r == SQLITE_ROW) {
        rc = vl_buf_append(wrapped, sqlite3_column_blob(s, 0),
                           (size_t)sqlite3_column_bytes(s, 0));
    } else if (r != SQLITE_DONE) {
        rc = db_err(t, r, "tenant key");
    }
out:
    unprep(t, s);
    pthread_mutex_unlock(&t->mu);
    return rc;
}

veil_err vl_trusted_tenant_list(struct vl_trusted *t, json_t **out)
{
    veil_err rc = VEIL_OK;
    json_t *arr = json_array();
    pthread_mutex_lock(&t->mu);
    sqlite3_stmt *s = prep(t, "SELECT name, created, key_version, shredded FROM tenants "
                              "ORDER BY name");
    if (s == NULL || arr == NULL) {
        rc = db_err(t, 0, "tenant list");
        goto out;
    }
    int r;
    while ((r = sqlite3_step(s)) == SQLITE_ROW) {
        json_array_append_new(arr, json_pack("{s:s, s:I, s:I, s:b}",
                                             "name", (const char *)sqlite3_column_text(s, 0),
                                             "created", sqlite3_column_int64(s, 1),
                                             "key_version", sqlite3_column_int64(s, 2),
                                             "shredded", sqlite3_column_int(s, 3)));
    }
    if (r != SQLITE_DONE) {
        rc = db_err(t, r, "tenant list");
    }
out:
    unprep(t, s);
    pthread_mutex_unlock(&t->mu);
    if (rc == VEIL_OK) {
        *out = arr;
    } else {
        json_decref(arr);
    }
    return rc;
}

veil_err vl_trusted_tenant_shred(struct vl_trusted *t, int64_t tenant)
{
    static const char *const stmts[] = {
        "DELETE FROM tenant_keys WHERE tenant=?1",
        "UPDATE tokens SET revoked=1 WHERE tenant=?1",
        "DELETE FROM docs WHERE tenant=?1",
        "DELETE FROM intents WHERE tenant=?1",
        "DELETE FROM words WHERE tenant=?1",
        "DELETE FROM reserved WHERE tenant=?1",
        "DELETE FROM sstats WHERE tenant=?1",
        "DELETE FROM blocks WHERE tenant=?1",
        "DELETE FROM dp_spent WHERE tenant=?1",
        "DELETE FROM dp_answers WHERE tenant=?1",
        "DELETE FROM tokset WHERE tenant=?1",
        "UPDATE tenants SET shredded=1 WHERE id=?1",
    };
    veil_err rc = tx_begin(t);
    for (size_t i = 0; rc == VEIL_OK && i < sizeof(stmts) / sizeof(stmts[0]); i++) {
        sqlite3_stmt *s = prep(t, stmts[i]);
        if (s != NULL) {
            sqlite3_bind_int64(s, 1, tenant);
        }
        rc = run(t, s, "shred");
    }
    rc = tx_end(t, rc);
    if (rc == VEIL_OK) {
        /* Move every page out of the WAL and truncate it: with secure_delete the freed
         * pages holding the wrapped key are zeroed in the database file itself. */
        pthread_mutex_lock(&t->mu);
        int r = sqlite3_wal_checkpoint_v2(t->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
        pthread_mutex_unlock(&t->mu);
        if (r != SQLITE_OK) {
            vl_log(VL_LOG_WARN, "trusted state: checkpoint after shred did not complete");
        }
    }
    return rc;
}

/* ---- tokens ---- */

veil_err vl_trusted_token_add(struct vl_trusted *t, const char *id, int64_t tenant,
                              const char *role, const uint8_t hash[32])
{
    veil_err rc = tx_begin(t);
    if (rc != VEIL_OK) {
        return rc;
    }
    sqlite3_stmt *s = prep(t, "INSERT INTO tokens(id, tenant, role, hash, created) "
                              "VALUES(?,?,?,?,?)");
    if (s != NULL) {
        sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(s, 2, tenant);
        sqlite3_bind_text(s, 3, role, -1, SQLITE_TRANSIENT);
        bind_bytes(s, 4, hash, 32);
        sqlite3_bind_int64(s, 5, now());
    }
    rc = run(t, s, "token insert");
    return tx_end(t, rc);
}

veil_err vl_trusted_token_find(struct vl_trusted *t, const char *id, int64_t *tenant,
                               char **tenant_name, char **role, uint8_t hash[32])
{
    veil_err rc = VEIL_ERR_NOT_FOUND;
    pthread_mutex_lock(&t->mu);
    sqlite3_stmt *s = prep(t, "SELECT k.tenant, k.role, k.hash, n.name FROM tokens k "
                              "JOIN tenants n ON n.id = k.tenant "
                              "WHERE k.id=? AND k.revoked=0 AND n.shredded=0");
    if (s == NULL) {
        rc = db_err(t, 0, "token find");
        goto out;
    }
    sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
    int r = sqlite3_step(s);
    if (r == SQLITE_ROW && sqlite3_column_bytes(s, 2) == 32) {
        *tenant = sqlite3_column_int64(s, 0);
        *role = strdup((const char *)sqlite3_column_text(s, 1));
        *tenant_name = strdup((const char *)sqlite3_column_text(s, 3));
        memcpy(hash, sqlite3_column_blob(s, 2), 32);
        rc = *role != NULL && *tenant_name != NULL ? VEIL_OK : VEIL_ERR_INTERNAL;
        if (rc != VEIL_OK) {
            free(*role);
            free(*tenant_name);
        }
    } else if (r != SQLITE_DONE && r != SQLITE_ROW) {
        rc = db_err(t, r, "token find");
    }
out:
    unprep(t, s);
    pthread_mutex_unlock(&t->mu);
    return rc;
}

veil_err vl_trusted_token_revoke(struct vl_trusted *t, const char *id)
{
    veil_err rc = tx_begin(t);
    if (rc != VEIL_OK) {
        return rc;
    }
    sqlite3_stmt *s = prep(t, "UPDATE tokens SET revoked=1 WHERE id=? AND revoked=0");
    if (s != NULL) {
        sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
    }
    rc = run(t, s, "token revoke");
    if (rc == VEIL_OK && sqlite3_changes(t->db) == 0) {
        rc = VEIL_ERR_NOT_FOUND;
    }
    return tx_end(t, rc);
}

veil_err vl_trusted_token_touch(struct vl_trusted *t, const char *id, int64_t at,
                                int64_t every)
{
    veil_err rc = tx_begin(t);
    if (rc != VEIL_OK) {
        return rc;
    }
    sqlite3_stmt *s = prep(t, "UPDATE tokens SET last_used=?2 WHERE id=?1 AND revoked=0 "
                              "AND (last_used IS NULL OR last_used <= ?2 - ?3)");
    if (s != NULL) {
        sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(s, 2, at);
        sqlite3_bind_int64(s, 3, every);
    }
    rc = run(t, s, "token touch");
    return tx_end(t, rc);
}

veil_err vl_trusted_token_list(struct vl_trusted *t, const char *tenant, json_t **out)
{
    veil_err rc = VEIL_OK;
    json_t *arr = json_array();
    pthread_mutex_lock(&t->mu);
    sqlite3_stmt *s = prep(t, "SELECT k.id, n.name, k.role, k.created, k.last_used "
                              "FROM tokens k JOIN tenants n ON n.id = k.tenant "
                              "WHERE k.revoked=0 AND n.shredded=0 AND (?1 IS NULL OR n.name=?1) "
                              "ORDER BY n.name, k.created, k.id");
    if (s == NULL || arr == NULL) {
        rc = db_err(t, 0, "token list");
        goto out;
    }
    if (tenant != NULL) {
        sqlite3_bind_text(s, 1, tenant, -1, SQLITE_TRANSIENT);
    }
    int r;
    while ((r = sqlite3_step(s)) == SQLITE_ROW) {
        json_t *used = sqlite3_column_type(s, 4) == SQLITE_INTEGER
                           ? json_integer(sqlite3_column_int64(s, 4))
                           : json_null();
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:I, s:o}",
                                             "id", (const char *)sqlite3_column_text(s, 0),
                                             "tenant", (const char *)sqlite3_column_text(s, 1),
                                             "role", (const char *)sqlite3_column_text(s, 2),
                                             "created", sqlite3_column_int64(s, 3),
                                             "last_used", used));
    }
    if (r != SQLITE_DONE) {
        rc = db_err(t, r, "token list");
    }
out:
    unprep(t, s);
    pthread_mutex_unlock(&t->mu);
    if (rc == VEIL_OK) {
        *out = arr;
    } else {
        json_decref(arr);
    }
    return rc;
}

/* ---- collections ---- */

veil_err vl_trusted_collection_put(struct vl_trusted *t, int64_t tenant, const char *name,
                                   const char *canonical, int *created)
{
    char *old = NULL;
    veil_err rc = vl_trusted_collection_get(t, tenant, name, &old);
    if (rc == VEIL_OK) {
        rc = strcmp(old, canonical) == 0 ? VEIL_OK : VEIL_ERR_CONFLICT;
        free(old);
        *created = 0;
        return rc;
    }
    if (rc != VEIL_ERR_NOT_FOUND) {
        return rc;
    }
    if ((rc = tx_begin(t)) != VEIL_OK) {
        return rc;
    }
    sqlite3_stmt *s = prep(t, "INSERT INTO collections(tenant, name, policy, created) "
                              "VALUES(?,?,?,?)");
    if (s != NULL) {
        sqlite3_bind_int64(s, 1, tenant);
        sqlite3_bind_text(s, 2, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(s, 3, canonical, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(s, 4, now());
    }
    rc = tx_end(t, run(t, s, "collection insert"));
    if (rc == VEIL_ERR_CONFLICT) {
        /* Another writer registered it between our read and our insert. */
        return vl_trusted_collection_put(t, tenant, name, canonical, created);
    }
    *created = rc == VEIL_OK;
    return rc;
}

veil_err vl_trusted_collection_get(struct vl_trusted *t, int64_t tenant, const char *name,
                                   char **canonical)
{
    veil_err rc = VEIL_ERR_NOT_FOUND;
    pthread_mutex_lock(&t->mu);
    sqlite3_stmt *s = prep(t, "SELECT policy FROM collections WHERE tenant=? AND name=?");
    if (s == NULL) {
        rc = db_err(t, 0, "collection get");
        goto out;
    }
    sqlite3_bind_int64(s, 1, tenant);
    sqlite3_bind_text(s, 2, name, -1, SQLITE_TRANSIENT);
    int r = sqlite3_step(s);
    if (r == SQLITE_ROW) {
        *canonical = strdup((const char *)sqlite3_column_text(s, 0));
        rc = *canonical ? VEIL_OK : VEIL_ERR_INTERNAL;
    } else if (r != SQLITE_DONE) {
        rc = db_err(t, r, "collection get");
    }
out:
    unprep(t, s);
    pthread_mutex_unlock(&t->mu);
    return rc;
}

veil_err vl_trusted_collection_names(struct vl_trusted *t, int64_t tenant, char ***names,
                                     size_t *n)
{
    veil_err rc = VEIL_OK;
    char **v = NULL;
    size_t len = 0;
    pthread_mutex_lock(&t->mu);
    sqlite3_stmt *s = prep(t, "SELECT name FROM collections WHERE tenant=? ORDER BY name");
    if (s == NULL) {
        rc = db_err(t, 0, "collection names");
        goto out;
    }
    sqlite3_bind_int64(s, 1, tenant);
    int r;
    while ((r = sqlite3_step(s)) == SQLITE_ROW) {
        char **nv = realloc(v, (len + 1) * sizeof(*v));
        if (nv == NULL) {
            rc = VEIL_ERR_INTERNAL;
            goto out;
        }
        v = nv;
        v[len] = strdup((const char *)sqlite3_column_text(s, 0));
        if (v[len++] == NULL) {
            rc = VEIL_ERR_INTERNAL;
            goto out;
        }
    }
    if (r != SQLITE_DONE) {
        rc = db_err(t, r, "collection names");
    }
out:
    unprep(t, s);
    pthread_mutex_unlock(&t->mu);
    if (rc == VEIL_OK) {
        *names = v;
        *n = len;
    } else {
        for (size_t i = 0; i < len; i++) {
            free(v[i]);
        }
        free(v);
    }
    return rc;
}

/* Blocks start in [SEQ_LO, SEQ_HI - n]: above every number handed out before blocks were
 * random (those counted up from 1), and low enough that a sequence number, and one past
 * it, are positive SQLite integers. */
#define SEQ_LO ((uint64_t)1 << 32)
#define SEQ_HI ((uint64_t)1 << 62)
#define SEQ_TRIES 64

veil_err vl_trusted_seq_reserve(struct vl_trusted *t, int64_t tenant, const char *coll,
                                uint64_t n, uint64_t *first, uint64_t *mark)
{
    if (n == 0 || n > SEQ_HI / 4) {
        return VEIL_ERR_INTERNAL;
    }
    veil_err rc = tx_begin_durable(t);
    if (rc != VEIL_OK) {
        return rc;
    }
    uint64_t lo = SEQ_LO, start = 0, m = 0;
    sqlite3_stmt *c = prep(t, "SELECT next_seq FROM collections WHERE tenant=? AND name=?");
    sqlite3_stmt *prev = prep(t, "SELECT start + n FROM blocks WHERE tenant=? AND coll=? "
                                 "AND start < ? ORDER BY start DESC LIMIT 1");
    sqlite3_stmt *ins = prep(t, "INSERT INTO blocks(tenant, coll, start, n, mark, created) "
                                "VALUES(?,?,?,?,?,?)");
    if (c == NULL || prev == NULL || ins == NULL) {
        rc = db_err(t, 0, "seq reserve");
        goto out;
    }
    sqlite3_bind_int64(c, 1, tenant);
    sqlite3_bind_text(c, 2, coll, -1, SQLITE_TRANSIENT);
    int r = sqlite3_step(c);
    if (r != SQLITE_ROW) {
        rc = r == SQLITE_DONE ? VEIL_ERR_NOT_FOUND : db_err(t, r, "seq reserve");
        goto out;
    }
    if ((uint64_t)sqlite3_column_int64(c, 0) > lo) {
        lo = (uint64_t)sqlite3_column_int64(c, 0); /* numbers counted up from 1 before */
    }
    /* A uniformly random start that overlaps no block this state knows of. Blocks do not
     * overlap each other, so the one starting last before our end is the only candidate. */
    bool free_spot = false;
    for (int i = 0; i < SEQ_TRIES && !free_spot && lo < SEQ_HI - n; i++) {
        uint64_t x = 0;
        vl_random(&x, sizeof(x));
        start = x & (SEQ_HI - 1);
        if (start < lo || start > SEQ_HI - n) {
            continue;
        }
        bind_tc(prev, tenant, coll);
        sqlite3_bind_int64(prev, 3, (int64_t)(start + n));
        r = sqlite3_step(prev);
        if (r == SQLITE_DONE) {
            free_spot = true;
        } else if (r == SQLITE_ROW) {
            free_spot = (uint64_t)sqlite3_column_int64(prev, 0) <= start;
        } else {
            rc = db_err(t, r, "seq reserve");
            goto out;
        }
    }
    if (!free_spot) {
        vl_log(VL_LOG_ERROR, "trusted state: no free block of row sequence numbers");
        rc = VEIL_ERR_INTERNAL;
        goto out;
    }
    if ((rc = mark_bump(t, &m)) != VEIL_OK) {
        goto out;
    }
    sqlite3_bind_int64(ins, 1, tenant);
    sqlite3_bind_text(ins, 2, coll, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(ins, 3, (int64_t)start);
    sqlite3_bind_int64(ins, 4, (int64_t)n);
    sqlite3_bind_int64(ins, 5, (int64_t)m);
    sqlite3_bind_int64(ins, 6, now());
    if ((r = sqlite3_step(ins)) != SQLITE_DONE) {
        rc = db_err(t, r, "seq reserve");
    }
out:
    unprep(t, c);
    unprep(t, prev);
    unprep(t, ins);
    rc = tx_end_durable(t, rc);
    if (rc == VEIL_OK) {
        *first = start;
        if (mark != NULL) {
            *mark = m;
        }
    }
    return rc;
}

/* ---- the mark, the mark key, rollbacks ---- */

/* The one integer a single-row query answers, read under the lock. */
static veil_err one_u64(struct vl_trusted *t, const char *sql, const char *what, uint64_t *out)
{
    veil_err rc = VEIL_OK;
    pthread_mutex_lock(&t->mu);
    sqlite3_stmt *s = prep(t, sql);
    int r = s != NULL ? sqlite3_step(s) : SQLITE_ERROR;
    if (r == SQLITE_ROW) {
        *out = (uint64_t)sqlite3_column_int64(s, 0);
    } else {
        rc = db_err(t, r, what);
    }
    unprep(t, s);
    pthread_mutex_unlock(&t->mu);
    return rc;
}

veil_err vl_trusted_mark(struct vl_trusted *t, uint64_t *mark)
{
    return one_u64(t, "SELECT v FROM meta WHERE k='mark'", "mark", mark);
}

veil_err vl_trusted_meta_get(struct vl_trusted *t, const char *k, struct vl_buf *out)
{
    veil_err rc = VEIL_ERR_NOT_FOUND;
    pthread_mutex_lock(&t->mu);
    sqlite3_stmt *s = prep(t, "SELECT v FROM meta WHERE k=? AND typeof(v)='blob'");
    if (s == NULL) {
        rc = db_err(t, 0, "meta get");
    } else {
        sqlite3_bind_text(s, 1, k, -1, SQLITE_TRANSIENT);
        int r = sqlite3_step(s);
        if (r == SQLITE_ROW) {
            rc = vl_buf_append(out, sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0));
        } else if (r != SQLITE_DONE) {
            rc = db_err(t, r, "meta get");
        }
    }
    unprep(t, s);
    pthread_mutex_unlock(&t->mu);
    return rc;
}

veil_err vl_trusted_meta_put_new(struct vl_trusted *t, const char *k, const struct vl_bytes *v)
{
    veil_err rc = tx_begin_durable(t);
    if (rc != VEIL_OK) {
        return rc;
    }
    sqlite3_stmt *s = prep(t, "INSERT OR IGNORE INTO meta(k, v) VALUES(?, ?)");
    if (s != NULL) {
        sqlite3_bind_text(s, 1, k, -1, SQLITE_TRANSIENT);
        bind_bytes(s, 2, v->p, v->n);
    }
    return tx_end_durable(t, run(t, s, "meta put"));
}

veil_err vl_trusted_rollback_accept(struct vl_trusted *t, uint64_t store_mark,
                                    struct vl_rollback *out)
{
    static const char *const epochs[] = {
        /* Each word's entries so far keep the keys they were sealed with; the counters
         * from its count on, which the lost writes may have used too, get new ones. */
        "UPDATE words SET hist = coalesce(hist, '') || epoch || ':' || coalesce(since, 0) "
        "|| ' ', since = count, epoch = ?1 WHERE count > coalesce(since, 0) AND epoch != ?1",
        "UPDATE words SET epoch = ?1 WHERE epoch != ?1",
    };
    struct vl_rollback rb;
    memset(&rb, 0, sizeof(rb));
    rb.store_mark = store_mark;
    veil_err rc = tx_begin_durable(t);
    if (rc != VEIL_OK) {
        return rc;
    }
    sqlite3_stmt *s = prep(t, "SELECT (SELECT v FROM meta WHERE k='mark'), "
                              "(SELECT v FROM meta WHERE k='search_epoch')");
    if (s == NULL || sqlite3_step(s) != SQLITE_ROW) {
        rc = db_err(t, 0, "rollback");
    } else {
        rb.trusted_mark = (uint64_t)sqlite3_column_int64(s, 0);
        rb.epoch = (uint32_t)sqlite3_column_int64(s, 1) + 1;
    }
    unprep(t, s);
    rb.mark = (rb.trusted_mark > store_mark ? rb.trusted_mark : store_mark) + 1;
    if (rc == VEIL_OK && (s = prep(t, "UPDATE meta SET v = ? WHERE k='mark'")) != NULL) {
        sqlite3_bind_int64(s, 1, (int64_t)rb.mark);
    }
    if (rc == VEIL_OK) {
        rc = run(t, s, "rollback");
    }
    if (rc == VEIL_OK && (s = prep(t, "UPDATE meta SET v = ? WHERE k='search_epoch'")) != NULL) {
        sqlite3_bind_int64(s, 1, rb.epoch);
    }
    if (rc == VEIL_OK) {
        rc = run(t, s, "rollback");
    }
    for (size_t i = 0; rc == VEIL_OK && i < sizeof(epochs) / sizeof(epochs[0]); i++) {
        if ((s = prep(t, epochs[i])) != NULL) {
            sqlite3_bind_int64(s, 1, rb.epoch);
        }
        rc = run(t, s, "rollback");
    }
    if (rc == VEIL_OK && (s = prep(t, "INSERT INTO rollbacks(time, trusted_mark, store_mark, "
                                      "search_epoch) VALUES(?,?,?,?)")) != NULL) {
        sqlite3_bind_int64(s, 1, now());
        sqlite3_bind_int64(s, 2, (int64_t)rb.trusted_mark);
        sqlite3_bind_int64(s, 3, (int64_t)store_mark);
        sqlite3_bind_int64(s, 4, rb.epoch);
    }
    if (rc == VEIL_OK) {
        rc = run(t, s, "rollback");
    }
    rc = tx_end_durable(t, rc);
    if (rc == VEIL_OK && out != NULL) {
        *out = rb;
    }
    return rc;
}

veil_err vl_trusted_rollbacks(struct vl_trusted *t, uint64_t *n)
{
    return one_u64(t, "SELECT count(*) FROM rollbacks", "rollbacks", n);
}

void vl_collrefs_free(struct vl_collref *c, size_t n)
{
    for (size_t i = 0; c != NULL && i < n; i++) {
        free(c[i].tenant_name);
        free(c[i].name);
    }
    free(c);
}

veil_err vl_trusted_collections_all(struct vl_trusted *t, struct vl_collref **out, size_t *n)
{
    veil_err rc = VEIL_OK;
    struct vl_collref *v = NULL;
    size_t len = 0;
    pthread_mutex_lock(&t->mu);
    sqlite3_stmt *s = prep(t, "SELECT n.id, n.name, c.name FROM collections c "
                              "JOIN tenants n ON n.id = c.tenant WHERE n.shredded = 0 "
                              "ORDER BY n.id, c.name");
    int r = SQLITE_DONE;
    if (s == NULL) {
        rc = db_err(t, 0, "collections");
    }
    while (rc == VEIL_OK && (r = sqlite3_step(s)) == SQLITE_ROW) {
        struct vl_collref *nv = realloc(v, (len + 1) * sizeof(*v));
        if (nv == NULL) {
            rc = VEIL_ERR_INTERNAL;
            break;
        }
        v = nv;
        v[len].tenant = sqlite3_column_int64(s, 0);
        v[len].tenant_name = strdup((const char *)sqlite3_column_text(s, 1));
        v[len].name = strdup((const char *)sqlite3_column_text(s, 2));
        if (v[len++].tenant_name == NULL || v[len - 1].name == NULL) {
            rc = VEIL_ERR_INTERNAL;
        }
    }
    if (rc == VEIL_OK && r != SQLITE_DONE) {
        rc = db_err(t, r, "collections");
    }
    unprep(t, s);
    pthread_mutex_unlock(&t->mu);
    if (rc == VEIL_OK) {
        *out = v;
        *n = len;
    } else {
        vl_collrefs_free(v, len);
    }
    return rc;
}

/* ---- documents ---- */

void vl_docstates_free(struct vl_docstate *states, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(states[i].part.p);
        free(states[i].pending_part.p);
        states[i].part.p = states[i].pending_part.p = NULL;
    }
}

static veil_err copy_col(sqlite3_stmt *s, int col, struct vl_bytes *b)
{
    size_t len = (size_t)sqlite3_column_bytes(s, col);
    b->p = NULL;
    b->n = 0;
    if (len == 0) {
        return VEIL_OK;
    }
    if ((b->p = malloc(len)) == NULL) {
        return VEIL_ERR_INTERNAL;
    }
    memcpy(b->p, sqlite3_column_blob(s, col), len);
    b->n = len;
    return VEIL_OK;
}

veil_err vl_trusted_docs_get(struct vl_trusted *t, int64_t tenant, const char *coll,
                             const struct vl_bytes *docs, size_t n,
                             struct vl_docstate *states)
{
    veil_err rc = VEIL_OK;
    memset(states, 0, n * sizeof(*states));
    pthread_mutex_lock(&t->mu);
    sqlite3_stmt *d = prep(t, "SELECT version, seq, digest, live, part FROM docs "
                              "WHERE tenant=? AND coll=? AND doc=?");
    sqlite3_stmt *p = prep(t, "SELECT version, digest, part, seq, op FROM intents "
                              "WHERE tenant=? AND coll=? AND doc=?");
    if (d == NULL || p == NULL) {
        rc = db_err(t, 0, "docs get");
        goto out;
    }
    exec(t, "BEGIN");
    for (size_t i = 0; i < n && rc == VEIL_OK; i++) {
        struct vl_docstate *ds = &states[i];
        memset(ds, 0, sizeof(*ds));
        memcpy(ds->doc, docs[i].p, VL_DOCTOKEN_BYTES);
        sqlite3_stmt *ss[2] = {d, p};
        for (int k = 0; k < 2 && rc == VEIL_OK; k++) {
            sqlite3_stmt *s = ss[k];
            bind_tc(s, tenant, coll);
            bind_bytes(s, 3, docs[i].p, docs[i].n);
            int r = sqlite3_step(s);
            if (r == SQLITE_ROW && k == 0 && sqlite3_column_bytes(s, 2) == VL_DIGEST_BYTES) {
                ds->exists = true;
                ds->version = sqlite3_column_int64(s, 0);
                ds->seq = (uint64_t)sqlite3_column_int64(s, 1);
                memcpy(ds->digest, sqlite3_column_blob(s, 2), VL_DIGEST_BYTES);
                ds->live = sqlite3_column_int(s, 3) != 0;
                rc = copy_col(s, 4, &ds->part);
            } else if (r == SQLITE_ROW && k == 1 &&
                       sqlite3_column_bytes(s, 1) == VL_DIGEST_BYTES) {
                ds->pending = true;
                ds->pending_version = sqlite3_column_int64(s, 0);
                memcpy(ds->pending_digest, sqlite3_column_blob(s, 1), VL_DIGEST_BYTES);
                ds->pending_seq = (uint64_t)sqlite3_column_int64(s, 3);
                ds->pending_delete = sqlite3_column_int(s, 4) == VL_INTENT_DELETE;
                rc = copy_col(s, 2, &ds->pending_part);
            } else if (r != SQLITE_DONE) {
                rc = db_err(t, r, "docs get");
            }
        }
    }
    exec(t, "COMMIT");
    if (rc != VEIL_OK) {
        vl_docstates_free(states, n);
    }
out:
    unprep(t, d);
    unprep(t, p);
    pthread_mutex_unlock(&t->mu);
    return rc;
}

veil_err vl_trusted_docs_page(struct vl_trusted *t, int64_t tenant, const char *coll,
                              const uint8_t *after, size_t limit,
                              uint8_t (*docs)[VL_DOCTOKEN_BYTES], size_t *n)
{
    veil_err rc = VEIL_OK;
    size_t k = 0;
    static const uint8_t none[1];
    pthread_mutex_lock(&t->mu);
    sqlite3_stmt *s = prep(t, "SELECT doc FROM docs WHERE tenant=? AND coll=? AND live=1 "
                              "AND doc > ? ORDER BY doc LIMIT ?");
    int r = SQLITE_DONE;
    if (s == NULL) {
        rc = db_err(t, 0, "docs page");
    } else {
        sqlite3_bind_int64(s, 1, tenant);
        sqlite3_bind_text(s, 2, coll, -1, SQLITE_TRANSIENT);
        /* Every token sorts after the empty blob. */
        sqlite3_bind_blob(s, 3, after != NULL ? after : none, after != NULL ? VL_DOCTOKEN_BYTES : 0,
                          SQLITE_TRANSIENT);
        sqlite3_bind_int64(s, 4, (int64_t)limit);
    }
    while (rc == VEIL_OK && (r = sqlite3_step(s)) == SQLITE_ROW) {
        if (sqlite3_column_bytes(s, 0) == VL_DOCTOKEN_BYTES && k < limit) {
            memcpy(docs[k++], sqlite3_column_blob(s, 0), VL_DOCTOKEN_BYTES);
        }
    }
    if (rc == VEIL_OK && r != SQLITE_DONE) {
        rc = db_err(t, r, "docs page");
    }
    unprep(t, s);
    pthread_mutex_unlock(&t->mu);
    *n = rc == VEIL_OK ? k : 0;
    return rc;
}

veil_err vl_trusted_intents_begin(struct vl_trusted *t, int64_t tenant, const char *coll,
                                  struct vl_intent *in, size_t n)
{
    uint64_t mark = 0;
    veil_err rc = tx_begin_durable(t);
    if (rc != VEIL_OK) {
        return rc;
    }
    sqlite3_stmt *cur = prep(t, "SELECT version FROM docs WHERE tenant=? AND coll=? AND doc=?");
    sqlite3_stmt *ins = prep(t, "INSERT INTO intents(tenant, coll, doc, op, old_version, "
                                "version, seq, digest, payload, part, slen, tks) "
                                "VALUES(?,?,?,?,?,?,?,?,?,?,?,?)");
    if (cur == NULL || ins == NULL) {
        rc = db_err(t, 0, "intent begin");
        goto out;
    }
    for (size_t i = 0; i < n && rc == VEIL_OK; i++) {
        bind_tc(cur, tenant, coll);
        bind_bytes(cur, 3, in[i].doc, VL_DOCTOKEN_BYTES);
        int r = sqlite3_step(cur);
        int64_t version = 0;
        if (r == SQLITE_ROW) {
            version = sqlite3_column_int64(cur, 0);
        } else if (r != SQLITE_DONE) {
            rc = db_err(t, r, "intent begin");
            break;
        }
        if (version != in[i].old_version) {
            rc = VEIL_ERR_CONFLICT;
            break;
        }
        bind_tc(ins, tenant, coll);
        bind_bytes(ins, 3, in[i].doc, VL_DOCTOKEN_BYTES);
        sqlite3_bind_int(ins, 4, (int)in[i].op);
        sqlite3_bind_int64(ins, 5, in[i].old_version);
        sqlite3_bind_int64(ins, 6, in[i].version);
        sqlite3_bind_int64(ins, 7, (int64_t)in[i].seq);
        bind_bytes(ins, 8, in[i].digest, VL_DIGEST_BYTES);
        bind_bytes(ins, 9, in[i].payload.p, in[i].payload.n);
        bind_bytes(ins, 10, in[i].trusted_part.p, in[i].trusted_part.n);
        bind_bytes(ins, 11, in[i].slen.p, in[i].slen.n);
        bind_bytes(ins, 12, in[i].tks.p, in[i].tks.n);
        r = sqlite3_step(ins);
        if (r == SQLITE_CONSTRAINT) {
            rc = VEIL_ERR_CONFLICT; /* a write of this document is in flight */
        } else if (r != SQLITE_DONE) {
            rc = db_err(t, r, "intent insert");
        } else {
            in[i].id = sqlite3_last_insert_rowid(t->db);
        }
    }
    if (rc == VEIL_OK) {
        rc = mark_bump(t, &mark);
    }
out:
    unprep(t, cur);
    unprep(t, ins);
    rc = tx_end_durable(t, rc);
    for (size_t i = 0; rc == VEIL_OK && i < n; i++) {
        in[i].mark = mark;
    }
    return rc;
}

/* Adds sign * each (field, length) of a search-length record to the per-field totals. */
static veil_err stats_add(struct vl_trusted *t, sqlite3_stmt *up, int64_t tenant,
                          const char *coll, const uint8_t *p, size_t n, int sign)
{
    for (size_t at = 0; at + 8 <= n; at += 8) {
        uint32_t field = (uint32_t)p[at] << 24 | (uint32_t)p[at + 1] << 16 |
                         (uint32_t)p[at + 2] << 8 | p[at + 3];
        uint32_t len = (uint32_t)p[at + 4] << 24 | (uint32_t)p[at + 5] << 16 |
                       (uint32_t)p[at + 6] << 8 | p[at + 7];
        bind_tc(up, tenant, coll);
        sqlite3_bind_int64(up, 3, field);
        sqlite3_bind_int64(up, 4, sign);
        sqlite3_bind_int64(up, 5, sign * (int64_t)len);
        int r = sqlite3_step(up);
        if (r != SQLITE_DONE) {
            return db_err(t, r, "search stats");
        }
    }
    return VEIL_OK;
}

/* ---- token sets ---- */

/* A change to one token's set: documents in or out, and the sums' change. */
struct tsdelta {
    uint8_t tk[VL_TK_BYTES];
    int64_t dn;
    vl_u128 dq;
    vl_u128 da;
};
struct tsdeltas {
    struct tsdelta *d;
    size_t n, cap;
};

/* Adds (sign +1) or removes (-1) a document version's contributions to each token of tks. */
static veil_err tsdelta_add(struct tsdeltas *ds, const uint8_t *tks, size_t ntks,
                            const uint8_t doc[VL_DOCTOKEN_BYTES], uint64_t seq, int sign)
{
    size_t k = ntks / VL_TK_BYTES;
    if (ntks % VL_TK_BYTES != 0) {
        return VEIL_ERR_INTERNAL;
    }
    if (ds->n + k > ds->cap) {
        size_t ncap = (ds->n + k) * 2 + 64;
        struct tsdelta *nd = realloc(ds->d, ncap * sizeof(*nd));
        if (nd == NULL) {
            return VEIL_ERR_INTERNAL;
        }
        ds->d = nd;
        ds->cap = ncap;
    }
    for (size_t i = 0; i < k; i++) {
        struct tsdelta *d = &ds->d[ds->n++];
        const uint8_t *tk = tks + i * VL_TK_BYTES;
        vl_u128 q = vl_set_q(tk, doc, VL_DOCTOKEN_BYTES), a = vl_set_a(tk, seq);
        memcpy(d->tk, tk, VL_TK_BYTES);
        d->dn = sign;
        d->dq = sign > 0 ? q : vl_set_sub(0, q);
        d->da = sign > 0 ? a : vl_set_sub(0, a);
    }
    return VEIL_OK;
}

static int tsdelta_cmp(const void *a, const void *b)
{
    return memcmp(((const struct tsdelta *)a)->tk, ((const struct tsdelta *)b)->tk, VL_TK_BYTES);
}

/* veil_addmod(a, b): (a + b) mod p of two 16-byte sums (crypto/sethash.h), so that a token
 * set's sums change inside one UPDATE. An argument that is no sum is an error. */
static void addmod_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    vl_u128 x, y;
    (void)argc;
    if (!vl_set_load(sqlite3_value_blob(argv[0]), (size_t)sqlite3_value_bytes(argv[0]), &x) ||
        !vl_set_load(sqlite3_value_blob(argv[1]), (size_t)sqlite3_value_bytes(argv[1]), &y)) {
        sqlite3_result_error(ctx, "a malformed token set sum", -1);
        return;
    }
    uint8_t out[VL_SETSUM_BYTES];
    vl_set_store(out, vl_set_add(x, y));
    sqlite3_result_blob(ctx, out, sizeof(out), SQLITE_TRANSIENT);
}

/* Steps s with (tk, tenant, coll, n, q, a) as parameters 1 to 6 (those it has); *changed:
 * whether a row changed. */
static int ts_step(struct vl_trusted *t, sqlite3_stmt *s, const uint8_t *tk, int64_t tenant,
                   const char *coll, int64_t n, const uint8_t *q, const uint8_t *a,
                   bool *changed)
{
    sqlite3_bind_blob(s, 1, tk, VL_TK_BYTES, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, tenant);
    sqlite3_bind_text(s, 3, coll, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, n);
    if (sqlite3_bind_parameter_count(s) >= 6) {
        sqlite3_bind_blob(s, 5, q, VL_SETSUM_BYTES, SQLITE_STATIC);
        sqlite3_bind_blob(s, 6, a, VL_SETSUM_BYTES, SQLITE_STATIC);
    }
    int r = sqlite3_step(s);
    *changed = r == SQLITE_DONE && sqlite3_changes(t->db) > 0;
    sqlite3_reset(s);
    return r;
}

/* Applies the changes, merged per token, inside the caller's transaction, with as few
 * statements as the change allows: a set that documents join or keep is updated in place
 * (inserted when new); one that documents leave is deleted when they were its last (its
 * count is the number leaving), else updated. */
static veil_err tsdelta_apply(struct vl_trusted *t, int64_t tenant, const char *coll,
                              struct tsdeltas *ds)
{
    veil_err rc = VEIL_OK;
    if (ds->n > 0) {
        qsort(ds->d, ds->n, sizeof(*ds->d), tsdelta_cmp);
    }
    sqlite3_stmt *up = prep(t, "UPDATE tokset SET n = n + ?4, hq = veil_addmod(hq, ?5), "
                               "ha = veil_addmod(ha, ?6) WHERE tk=?1 AND tenant=?2 AND coll=?3");
    sqlite3_stmt *ins = prep(t, "INSERT INTO tokset(tk, tenant, coll, n, hq, ha) "
                                "VALUES(?1, ?2, ?3, ?4, ?5, ?6)");
    sqlite3_stmt *del = prep(t, "DELETE FROM tokset WHERE tk=?1 AND tenant=?2 AND coll=?3 AND "
                                "n = -?4");
    if (up == NULL || ins == NULL || del == NULL) {
        rc = db_err(t, 0, "token sets");
    }
    for (size_t i = 0; rc == VEIL_OK && i < ds->n;) {
        int64_t dn = 0;
        vl_u128 dq = 0, da = 0;
        size_t j = i;
        for (; j < ds->n && memcmp(ds->d[j].tk, ds->d[i].tk, VL_TK_BYTES) == 0; j++) {
            dn += ds->d[j].dn;
            dq = vl_set_add(dq, ds->d[j].dq);
            da = vl_set_add(da, ds->d[j].da);
        }
        const uint8_t *tk = ds->d[i].tk;
        i = j;
        if (dn == 0 && dq == 0 && da == 0) {
            continue; /* a document that kept the token and its sequence number */
        }
        uint8_t q[VL_SETSUM_BYTES], a[VL_SETSUM_BYTES];
        vl_set_store(q, dq);
        vl_set_store(a, da);
        bool done = false;
        int r = SQLITE_DONE;
        if (dn < 0) { /* its last documents leaving? then it goes */
            r = ts_step(t, del, tk, tenant, coll, dn, q, a, &done);
        }
        if (r == SQLITE_DONE && !done) {
            r = ts_step(t, up, tk, tenant, coll, dn, q, a, &done);
        }
        if (r == SQLITE_DONE && !done) { /* a new set */
            r = ts_step(t, ins, tk, tenant, coll, dn, q, a, &done);
        }
        if (r != SQLITE_DONE) {
            rc = db_err(t, r, "token set update");
        }
    }
    unprep(t, up);
    unprep(t, ins);
    unprep(t, del);
    return rc;
}

veil_err vl_trusted_intents_finish(struct vl_trusted *t, int64_t tenant, const char *coll,
                                   const struct vl_intent *in, size_t n)
{
    struct tsdeltas ds = {NULL, 0, 0};
    veil_err rc = tx_begin(t);
    if (rc != VEIL_OK) {
        return rc;
    }
    sqlite3_stmt *old = prep(t, "SELECT live, slen, seq, tks FROM docs WHERE tenant=? AND "
                                "coll=? AND doc=?");
    sqlite3_stmt *up = prep(t, "INSERT OR REPLACE INTO docs(tenant, coll, doc, version, seq, "
                               "digest, live, part, slen, tks) VALUES(?,?,?,?,?,?,?,?,?,?)");
    sqlite3_stmt *del = prep(t, "DELETE FROM intents WHERE id=?");
    sqlite3_stmt *holes = prep(t, "DELETE FROM reserved WHERE tenant=? AND coll=? AND res=?");
    sqlite3_stmt *stats = prep(t, "INSERT INTO sstats(tenant, coll, field, ndocs, total) "
                                  "VALUES(?1,?2,?3,?4,?5) ON CONFLICT DO UPDATE SET "
                                  "ndocs = ndocs + ?4, total = total + ?5");
    if (old == NULL || up == NULL || del == NULL || holes == NULL || stats == NULL) {
        rc = db_err(t, 0, "intent finish");
        goto out;
    }
    for (size_t i = 0; i < n && rc == VEIL_OK; i++) {
        bool put = in[i].op == VL_INTENT_PUT;
        /* The search totals and token sets lose the old version and gain the new one. */
        bind_tc(old, tenant, coll);
        bind_bytes(old, 3, in[i].doc, VL_DOCTOKEN_BYTES);
        int r = sqlite3_step(old);
        if (r == SQLITE_ROW && sqlite3_column_int(old, 0) != 0) {
            rc = stats_add(t, stats, tenant, coll, sqlite3_column_blob(old, 1),
                           (size_t)sqlite3_column_bytes(old, 1), -1);
            if (rc == VEIL_OK) {
                rc = tsdelta_add(&ds, sqlite3_column_blob(old, 3),
                                 (size_t)sqlite3_column_bytes(old, 3), in[i].doc,
                                 (uint64_t)sqlite3_column_int64(old, 2), -1);
            }
        } else if (r != SQLITE_ROW && r != SQLITE_DONE) {
            rc = db_err(t, r, "intent finish");
        }
        if (rc == VEIL_OK && put) {
            rc = stats_add(t, stats, tenant, coll, in[i].slen.p, in[i].slen.n, 1);
        }
        if (rc == VEIL_OK && put) {
            rc = tsdelta_add(&ds, in[i].tks.p, in[i].tks.n, in[i].doc, in[i].seq, 1);
        }
        if (rc != VEIL_OK) {
            break;
        }
        bind_tc(up, tenant, coll);
        bind_bytes(up, 3, in[i].doc, VL_DOCTOKEN_BYTES);
        sqlite3_bind_int64(up, 4, in[i].version);
        sqlite3_bind_int64(up, 5, (int64_t)in[i].seq);
        bind_bytes(up, 6, in[i].digest, VL_DIGEST_BYTES);
        sqlite3_bind_int(up, 7, put);
        if (put && in[i].trusted_part.n > 0) {
            bind_bytes(up, 8, in[i].trusted_part.p, in[i].trusted_part.n);
        } else {
            sqlite3_bind_null(up, 8);
        }
        if (put && in[i].slen.n > 0) {
            bind_bytes(up, 9, in[i].slen.p, in[i].slen.n);
        } else {
            sqlite3_bind_null(up, 9);
        }
        if (put && in[i].tks.n > 0) {
            bind_bytes(up, 10, in[i].tks.p, in[i].tks.n);
        } else {
            sqlite3_bind_null(up, 10);
        }
        if ((r = sqlite3_step(up)) != SQLITE_DONE) {
            rc = db_err(t, r, "doc update");
            break;
        }
        /* Its search entries are written: its reservation is no longer a hole. */
        if (put) {
            bind_tc(holes, tenant, coll);
            sqlite3_bind_int64(holes, 3, (int64_t)in[i].seq);
            if ((r = sqlite3_step(holes)) != SQLITE_DONE) {
                rc = db_err(t, r, "holes");
                break;
            }
        }
        sqlite3_reset(del);
        sqlite3_bind_int64(del, 1, in[i].id);
        if ((r = sqlite3_step(del)) != SQLITE_DONE) {
            rc = db_err(t, r, "intent delete");
        }
    }
    if (rc == VEIL_OK) {
        rc = tsdelta_apply(t, tenant, coll, &ds);
    }
out:
    free(ds.d);
    unprep(t, old);
    unprep(t, up);
    unprep(t, del);
    unprep(t, holes);
    unprep(t, stats);
    return tx_end(t, rc);
}

veil_err vl_trusted_intents_abort(struct vl_trusted *t, const struct vl_intent *in, size_t n)
{
    veil_err rc = tx_begin(t);
    if (rc != VEIL_OK) {
        return rc;
    }
    sqlite3_stmt *del = prep(t, "DELETE FROM intents WHERE id=?");
    if (del == NULL) {
        rc = db_err(t, 0, "intent abort");
    }
    for (size_t i = 0; rc == VEIL_OK && i < n; i++) {
        sqlite3_reset(del);
        sqlite3_bind_int64(del, 1, in[i].id);
        int r = sqlite3_step(del);
        if (r != SQLITE_DONE) {
            rc = db_err(t, r, "intent abort");
        }
    }
    unprep(t, del);
    return tx_end(t, rc);
}

veil_err vl_trusted_intents_pending(struct vl_trusted *t, vl_intent_fn fn, void *ctx)
{
    /* Read them all first: fn writes to the trusted state itself. */
    struct pending {
        int64_t tenant;
        char *coll;
        struct vl_intent in;
    } *v = NULL;
    size_t len = 0;
    veil_err rc = VEIL_OK;
    pthread_mutex_lock(&t->mu);
    sqlite3_stmt *s = prep(t, "SELECT id, tenant, coll, doc, op, old_version, version, seq, "
                              "digest, payload, part, slen, tks FROM intents ORDER BY id");
    if (s == NULL) {
        rc = db_err(t, 0, "intents pending");
    }
    int r = SQLITE_DONE;
    while (rc == VEIL_OK && (r = sqlite3_step(s)) == SQLITE_ROW) {
        struct pending *nv = realloc(v, (len + 1) * sizeof(*v));
        if (nv == NULL) {
            rc = VEIL_ERR_INTERNAL;
            break;
        }
        v = nv;
        struct pending *p = &v[len++];
        memset(p, 0, sizeof(*p));
        p->in.id = sqlite3_column_int64(s, 0);
        p->tenant = sqlite3_column_int64(s, 1);
        p->coll = strdup((const char *)sqlite3_column_text(s, 2));
        if (sqlite3_column_bytes(s, 3) == VL_DOCTOKEN_BYTES) {
            memcpy(p->in.doc, sqlite3_column_blob(s, 3), VL_DOCTOKEN_BYTES);
        }
        p->in.op = (enum vl_intent_op)sqlite3_column_int(s, 4);
        p->in.old_version = sqlite3_column_int64(s, 5);
        p->in.version = sqlite3_column_int64(s, 6);
        p->in.seq = (uint64_t)sqlite3_column_int64(s, 7);
        if (sqlite3_column_bytes(s, 8) == VL_DIGEST_BYTES) {
            memcpy(p->in.digest, sqlite3_column_blob(s, 8), VL_DIGEST_BYTES);
        }
        for (int k = 0; k < 4; k++) {
            struct vl_bytes *b = k == 0   ? &p->in.payload
                                 : k == 1 ? &p->in.trusted_part
                                 : k == 2 ? &p->in.slen
                                          : &p->in.tks;
            b->n = (size_t)sqlite3_column_bytes(s, 9 + k);
            b->p = malloc(b->n ? b->n : 1);
            if (b->p != NULL && b->n > 0) {
                memcpy(b->p, sqlite3_column_blob(s, 9 + k), b->n);
            }
        }
        if (p->coll == NULL || p->in.payload.p == NULL || p->in.trusted_part.p == NULL ||
            p->in.slen.p == NULL || p->in.tks.p == NULL) {
            rc = VEIL_ERR_INTERNAL;
        }
    }
    if (rc == VEIL_OK && r != SQLITE_DONE) {
        rc = db_err(t, r, "intents pending");
    }
    unprep(t, s);
    pthread_mutex_unlock(&t->mu);
    for (size_t i = 0; i < len; i++) {
        if (rc == VEIL_OK) {
            rc = fn(ctx, v[i].tenant, v[i].coll, &v[i].in);
        }
        free(v[i].coll);
        free(v[i].in.payload.p);
        free(v[i].in.trusted_part.p);
        free(v[i].in.slen.p);
        free(v[i].in.tks.p);
    }
    free(v);
    return rc;
}


/* ---- read snapshots ---- */

veil_err vl_trusted_snap_begin(struct vl_trusted *t, struct vl_tsnap **out)
{
    struct vl_tsnap *sn = calloc(1, sizeof(*sn));
    if (sn == NULL) {
        return VEIL_ERR_INTERNAL;
    }
    sn->t = t;
    pthread_mutex_lock(&t->rmu);
    if (t->nreaders > 0) {
        sn->cn = t->readers[--t->nreaders];
    }
    pthread_mutex_unlock(&t->rmu);
    if (sn->cn == NULL) {
        if ((sn->cn = calloc(1, sizeof(*sn->cn))) == NULL) {
            free(sn);
            return VEIL_ERR_INTERNAL;
        }
        if (sqlite3_open_v2(t->path, &sn->cn->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                            NULL) != SQLITE_OK) {
            vl_log(VL_LOG_ERROR, "trusted state: cannot open a reader");
            conn_close(sn->cn);
            free(sn->cn);
            free(sn);
            return VEIL_ERR_STORE_UNAVAILABLE;
        }
        sqlite3_busy_timeout(sn->cn->db, 10000);
        /* A snapshot reads many documents' rows (a search's, an aggregate's candidates):
         * through the OS's page cache, mapped, not SQLite's small default cache of its own
         * per connection (every reader would otherwise read trusted.db with pread). */
        sqlite3_exec(sn->cn->db, "PRAGMA mmap_size=1073741824;", NULL, NULL, NULL);
    }
    /* The snapshot is taken at the first read of the transaction: read now. */
    if (sqlite3_exec(sn->cn->db, "BEGIN; SELECT count(*) FROM meta;", NULL, NULL, NULL) !=
        SQLITE_OK) {
        vl_log(VL_LOG_ERROR, "trusted state: snapshot: %s", sqlite3_errmsg(sn->cn->db));
        sqlite3_exec(sn->cn->db, "ROLLBACK", NULL, NULL, NULL);
        conn_close(sn->cn);
        free(sn->cn);
        free(sn);
        return VEIL_ERR_STORE_UNAVAILABLE;
    }
    *out = sn;
    return VEIL_OK;
}

veil_err vl_trusted_snap_freeze(struct vl_trusted *t, struct vl_tsnap **out)
{
    struct vl_tsnap *sn = calloc(1, sizeof(*sn));
    if (sn == NULL) {
        return VEIL_ERR_INTERNAL;
    }
    pthread_mutex_lock(&t->mu);
    if (exec(t, "BEGIN IMMEDIATE") != SQLITE_OK) {
        pthread_mutex_unlock(&t->mu);
        free(sn);
        return db_err(t, 0, "freeze");
    }
    sn->t = t;
    sn->cn = &t->main;
    sn->frozen = true;
    *out = sn;
    return VEIL_OK;
}

void vl_trusted_snap_end(struct vl_tsnap *sn)
{
    if (sn == NULL) {
        return;
    }
    struct vl_trusted *t = sn->t;
    if (sn->frozen) {
        exec(t, "COMMIT");
        pthread_mutex_unlock(&t->mu);
        free(sn);
        return;
    }
    sqlite3_exec(sn->cn->db, "COMMIT", NULL, NULL, NULL);
    pthread_mutex_lock(&t->rmu);
    if (t->nreaders < MAX_READERS) {
        t->readers[t->nreaders++] = sn->cn;
        sn->cn = NULL;
    }
    pthread_mutex_unlock(&t->rmu);
    if (sn->cn != NULL) {
        conn_close(sn->cn);
        free(sn->cn);
    }
    free(sn);
}

/* The connection to read through: the snapshot's, or the main one under its lock (then
 * release with read_done). */
static struct conn *read_db(struct vl_trusted *t, struct vl_tsnap *sn)
{
    if (sn != NULL) {
        return sn->cn;
    }
    pthread_mutex_lock(&t->mu);
    exec(t, "BEGIN");
    return &t->main;
}

static void read_done(struct vl_trusted *t, struct vl_tsnap *sn)
{
    if (sn == NULL) {
        exec(t, "COMMIT");
        pthread_mutex_unlock(&t->mu);
    }
}

static veil_err read_err(sqlite3 *db, const char *what)
{
    vl_log(VL_LOG_ERROR, "trusted state: %s: %s", what, sqlite3_errmsg(db));
    return VEIL_ERR_STORE_UNAVAILABLE;
}

/* ---- search ---- */

static int cmp_wordres(const void *a, const void *b)
{
    const struct vl_wordres *x = *(const struct vl_wordres *const *)a;
    const struct vl_wordres *y = *(const struct vl_wordres *const *)b;
    int c = memcmp(x->wkey, y->wkey, VL_WKEY_BYTES);
    return c != 0 ? c : (x < y ? -1 : x > y);
}

#define RES_ENTRY (VL_WKEY_BYTES + 8) /* a reservation record: wkey, counter */

veil_err vl_trusted_words_reserve(struct vl_trusted *t, int64_t tenant, const char *coll,
                                  struct vl_wordres *w, size_t n)
{
    if (n == 0) {
        return VEIL_OK;
    }
    /* One counter update per distinct word: sort pointers by word, keeping input order. */
    struct vl_wordres **ord = malloc(n * sizeof(*ord));
    uint8_t *rec = malloc(n * RES_ENTRY);
    if (ord == NULL || rec == NULL) {
        free(ord);
        free(rec);
        return VEIL_ERR_INTERNAL;
    }
    for (size_t i = 0; i < n; i++) {
        ord[i] = &w[i];
    }
    qsort(ord, n, sizeof(*ord), cmp_wordres);
    veil_err rc = tx_begin(t);
    if (rc != VEIL_OK) {
        free(ord);
        free(rec);
        return rc;
    }
    sqlite3_stmt *up = prep(t, "INSERT INTO words(tenant, coll, wkey, count, epoch) "
                               "VALUES(?1,?2,?3,?4,(SELECT v FROM meta WHERE k='search_epoch')) "
                               "ON CONFLICT DO UPDATE SET count = count + ?4 "
                               "RETURNING count - ?4, epoch");
    sqlite3_stmt *ins = prep(t, "INSERT INTO reserved(tenant, coll, res, words) "
                                "VALUES(?,?,?,?)");
    if (up == NULL || ins == NULL) {
        rc = db_err(t, 0, "words reserve");
        goto out;
    }
    for (size_t i = 0; i < n && rc == VEIL_OK;) {
        size_t j = i + 1;
        while (j < n && memcmp(ord[j]->wkey, ord[i]->wkey, VL_WKEY_BYTES) == 0) {
            j++;
        }
        bind_tc(up, tenant, coll);
        bind_bytes(up, 3, ord[i]->wkey, VL_WKEY_BYTES);
        sqlite3_bind_int64(up, 4, (int64_t)(j - i));
        int r = sqlite3_step(up);
        if (r != SQLITE_ROW) {
            rc = db_err(t, r, "words reserve");
            break;
        }
        uint64_t first = (uint64_t)sqlite3_column_int64(up, 0);
        uint32_t epoch = (uint32_t)sqlite3_column_int64(up, 1);
        while (sqlite3_step(up) == SQLITE_ROW) {
        }
        for (size_t k = i; k < j; k++) {
            ord[k]->counter = first + (k - i);
            ord[k]->epoch = epoch;
        }
        i = j;
    }
    /* Per write (items of one res are adjacent in input order), one record of what it
     * reserved: until the write finishes, those entries may be missing. */
    for (size_t i = 0; i < n && rc == VEIL_OK;) {
        size_t j = i;
        for (; j < n && w[j].res == w[i].res; j++) {
            memcpy(rec + (j - i) * RES_ENTRY, w[j].wkey, VL_WKEY_BYTES);
            vl_store_u64(rec + (j - i) * RES_ENTRY + VL_WKEY_BYTES, w[j].counter);
        }
        bind_tc(ins, tenant, coll);
        sqlite3_bind_int64(ins, 3, (int64_t)w[i].res);
        bind_bytes(ins, 4, rec, (j - i) * RES_ENTRY);
        int r = sqlite3_step(ins);
        if (r != SQLITE_DONE) {
            rc = db_err(t, r, "reserve");
        }
        i = j;
    }
out:
    unprep(t, up);
    unprep(t, ins);
    free(ord);
    free(rec);
    return tx_end(t, rc);
}

veil_err vl_trusted_words_count(struct vl_trusted *t, struct vl_tsnap *sn, int64_t tenant,
                                const char *coll, const uint8_t (*wkeys)[VL_WKEY_BYTES],
                                size_t n, uint64_t *counts)
{
    veil_err rc = VEIL_OK;
    struct conn *cn = read_db(t, sn);
    sqlite3 *db = cn->db;
    sqlite3_stmt *s = conn_prep(cn, "SELECT count FROM words WHERE tenant=? AND coll=? AND wkey=?");
    if (s == NULL) {
        rc = read_err(db, "words count");
    }
    for (size_t i = 0; i < n && rc == VEIL_OK; i++) {
        bind_tc(s, tenant, coll);
        bind_bytes(s, 3, wkeys[i], VL_WKEY_BYTES);
        int r = sqlite3_step(s);
        if (r == SQLITE_ROW) {
            counts[i] = (uint64_t)sqlite3_column_int64(s, 0);
        } else if (r == SQLITE_DONE) {
            counts[i] = 0;
        } else {
            rc = read_err(db, "words count");
        }
    }
    conn_unprep(cn, s);
    read_done(t, sn);
    return rc;
}

/* Parses a word's history ("epoch:first " per earlier epoch) into r[0..); returns the
 * number of ranges, or -1 when it is malformed. */
static long hist_parse(const char *h, struct vl_wordrange *r, size_t max)
{
    size_t k = 0;
    while (h != NULL && *h != '\0') {
        char *end = NULL;
        unsigned long long e = strtoull(h, &end, 10), f;
        if (end == h || *end != ':' || k == max) {
            return -1;
        }
        h = end + 1;
        f = strtoull(h, &end, 10);
        if (end == h || *end != ' ' || (k > 0 && f < r[k - 1].first) || e > UINT32_MAX) {
            return -1;
        }
        r[k].epoch = (uint32_t)e;
        r[k].first = f;
        k++;
        h = end + 1;
    }
    return (long)k;
}

veil_err vl_trusted_words_ranges(struct vl_trusted *t, struct vl_tsnap *sn, int64_t tenant,
                                 const char *coll, const uint8_t wkey[VL_WKEY_BYTES],
                                 struct vl_wordrange **out, size_t *n)
{
    veil_err rc = VEIL_OK;
    struct vl_wordrange *r = NULL;
    size_t len = 0;
    struct conn *cn = read_db(t, sn);
    sqlite3 *db = cn->db;
    sqlite3_stmt *s = conn_prep(cn, "SELECT epoch, coalesce(since, 0), coalesce(hist, '') "
                                  "FROM words WHERE tenant=? AND coll=? AND wkey=?");
    if (s == NULL) {
        rc = read_err(db, "word epochs");
    } else {
        sqlite3_bind_int64(s, 1, tenant);
        sqlite3_bind_text(s, 2, coll, -1, SQLITE_TRANSIENT);
        bind_bytes(s, 3, wkey, VL_WKEY_BYTES);
        int step = sqlite3_step(s);
        if (step == SQLITE_ROW) {
            const char *h = (const char *)sqlite3_column_text(s, 2);
            size_t max = 1;
            for (const char *p = h; p != NULL && *p != '\0'; p++) {
                max += *p == ' ';
            }
            long k = (r = calloc(max, sizeof(*r))) != NULL ? hist_parse(h, r, max - 1) : -2;
            uint64_t since = (uint64_t)sqlite3_column_int64(s, 1);
            if (k < 0 || (k > 0 && since < r[k - 1].first)) {
                rc = k == -2 ? VEIL_ERR_INTERNAL : read_err(db, "word epochs (malformed)");
            } else {
                r[k].epoch = (uint32_t)sqlite3_column_int64(s, 0);
                r[k].first = since;
                len = (size_t)k + 1;
            }
        } else if (step != SQLITE_DONE) {
            rc = read_err(db, "word epochs");
        }
    }
    conn_unprep(cn, s);
    read_done(t, sn);
    if (rc == VEIL_OK) {
        *out = r;
        *n = len;
    } else {
        free(r);
    }
    return rc;
}

veil_err vl_trusted_holes(struct vl_trusted *t, struct vl_tsnap *sn, int64_t tenant,
                          const char *coll, const uint8_t wkey[VL_WKEY_BYTES],
                          const uint64_t *counters, size_t n, bool *hole)
{
    /* Reservations are few (writes in flight, and those that failed), and this is asked
     * only when entries are missing: a scan of them is cheap enough. */
    veil_err rc = VEIL_OK;
    memset(hole, 0, n * sizeof(*hole));
    struct conn *cn = read_db(t, sn);
    sqlite3 *db = cn->db;
    sqlite3_stmt *s = conn_prep(cn, "SELECT words FROM reserved WHERE tenant=? AND coll=?");
    if (s == NULL) {
        rc = read_err(db, "holes");
    } else {
        sqlite3_bind_int64(s, 1, tenant);
        sqlite3_bind_text(s, 2, coll, -1, SQLITE_TRANSIENT);
    }
    int r = SQLITE_DONE;
    while (rc == VEIL_OK && (r = sqlite3_step(s)) == SQLITE_ROW) {
        const uint8_t *p = sqlite3_column_blob(s, 0);
        size_t len = (size_t)sqlite3_column_bytes(s, 0);
        for (size_t at = 0; p != NULL && at + RES_ENTRY <= len; at += RES_ENTRY) {
            if (memcmp(p + at, wkey, VL_WKEY_BYTES) != 0) {
                continue;
            }
            uint64_t c = vl_load_u64(p + at + VL_WKEY_BYTES);
            for (size_t i = 0; i < n; i++) {
                hole[i] |= counters[i] == c;
            }
        }
    }
    if (rc == VEIL_OK && r != SQLITE_DONE) {
        rc = read_err(db, "holes");
    }
    conn_unprep(cn, s);
    read_done(t, sn);
    return rc;
}

void vl_seqdocs_free(struct vl_seqdoc *d, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(d[i].slen.p);
        d[i].slen.p = NULL;
        d[i].slen.n = 0;
    }
}

/* Fills d (sorted by seq) from rows (seq, doc, version, slen) of s, in seq order. */
static veil_err seq_merge(sqlite3 *db, sqlite3_stmt *s, struct vl_seqdoc *d, size_t n)
{
    size_t i = 0;
    int r;
    while ((r = sqlite3_step(s)) == SQLITE_ROW) {
        uint64_t seq = (uint64_t)sqlite3_column_int64(s, 0);
        while (i < n && d[i].seq < seq) {
            i++;
        }
        if (i == n) {
            break;
        }
        if (d[i].seq == seq && sqlite3_column_bytes(s, 1) == VL_DOCTOKEN_BYTES) {
            d[i].found = true;
            memcpy(d[i].doc, sqlite3_column_blob(s, 1), VL_DOCTOKEN_BYTES);
            d[i].version = sqlite3_column_int64(s, 2);
            if (copy_col(s, 3, &d[i].slen) != VEIL_OK) {
                return VEIL_ERR_INTERNAL;
            }
        }
    }
    return r == SQLITE_ROW || r == SQLITE_DONE ? VEIL_OK : read_err(db, "docs by seq");
}

/* Sequence numbers farther apart than this start a new cluster: they come in blocks at
 * random places, so numbers of one block are close and those of two blocks far apart. */
#define SEQ_CLUSTER_GAP 4096

veil_err vl_trusted_docs_by_seq(struct vl_trusted *t, struct vl_tsnap *sn, int64_t tenant,
                                const char *coll, struct vl_seqdoc *d, size_t n)
{
    veil_err rc = VEIL_OK;
    bool sorted = true;
    for (size_t i = 0; i < n; i++) {
        d[i].found = false;
        d[i].slen.p = NULL;
        d[i].slen.n = 0;
        sorted &= i == 0 || d[i - 1].seq < d[i].seq;
    }
    if (n == 0) {
        return VEIL_OK;
    }
    struct conn *cn = read_db(t, sn);
    sqlite3 *db = cn->db;
    /* INDEXED BY: without statistics the planner would take the primary key's (tenant,
     * coll) prefix and scan the whole collection. The index covers the columns read. */
    sqlite3_stmt *w = conn_prep(cn, "SELECT seq, doc, version, slen FROM docs INDEXED BY "
                                  "docs_live WHERE tenant=? AND coll=? AND live=1 AND "
                                  "seq BETWEEN ? AND ? ORDER BY seq");
    sqlite3_stmt *s = conn_prep(cn, "SELECT seq, doc, version, slen FROM docs INDEXED BY "
                                  "docs_live WHERE tenant=? AND coll=? AND live=1 AND seq=?");
    if (w == NULL || s == NULL) {
        rc = read_err(db, "docs by seq");
    }
    for (size_t i = 0; rc == VEIL_OK && i < n;) {
        /* A cluster d[i..j): many numbers close together are one walk of the index over
         * their span (at most 8 rows a number asked for, since numbers are unique), which
         * beats a lookup each. */
        size_t j = i + 1;
        while (sorted && j < n && d[j].seq - d[j - 1].seq <= SEQ_CLUSTER_GAP) {
            j++;
        }
        if (sorted && j - i >= 64 && d[j - 1].seq - d[i].seq < 8 * (uint64_t)(j - i)) {
            bind_tc(w, tenant, coll);
            sqlite3_bind_int64(w, 3, (int64_t)d[i].seq);
            sqlite3_bind_int64(w, 4, (int64_t)d[j - 1].seq);
            rc = seq_merge(db, w, d + i, j - i);
        } else {
            for (size_t k = i; k < j && rc == VEIL_OK; k++) {
                bind_tc(s, tenant, coll);
                sqlite3_bind_int64(s, 3, (int64_t)d[k].seq);
                rc = seq_merge(db, s, &d[k], 1);
            }
        }
        i = j;
    }
    conn_unprep(cn, w);
    conn_unprep(cn, s);
    read_done(t, sn);
    if (rc != VEIL_OK) {
        vl_seqdocs_free(d, n);
    }
    return rc;
}

veil_err vl_trusted_search_stats(struct vl_trusted *t, struct vl_tsnap *sn, int64_t tenant,
                                 const char *coll, uint32_t field, uint64_t *ndocs,
                                 uint64_t *total)
{
    veil_err rc = VEIL_OK;
    *ndocs = *total = 0;
    struct conn *cn = read_db(t, sn);
    sqlite3 *db = cn->db;
    sqlite3_stmt *s = conn_prep(cn, "SELECT ndocs, total FROM sstats "
                                  "WHERE tenant=? AND coll=? AND field=?");
    if (s == NULL) {
        rc = read_err(db, "search stats");
    } else {
        sqlite3_bind_int64(s, 1, tenant);
        sqlite3_bind_text(s, 2, coll, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(s, 3, field);
        int r = sqlite3_step(s);
        if (r == SQLITE_ROW) {
            int64_t a = sqlite3_column_int64(s, 0), b = sqlite3_column_int64(s, 1);
            *ndocs = a > 0 ? (uint64_t)a : 0;
            *total = b > 0 ? (uint64_t)b : 0;
        } else if (r != SQLITE_DONE) {
            rc = read_err(db, "search stats");
        }
    }
    conn_unprep(cn, s);
    read_done(t, sn);
    return rc;
}

/* ---- token sets: reads ---- */

veil_err vl_trusted_toksets(struct vl_trusted *t, struct vl_tsnap *sn, int64_t tenant,
                            const char *coll, const uint8_t (*tks)[VL_TK_BYTES], size_t n,
                            struct vl_tokset *out)
{
    veil_err rc = VEIL_OK;
    struct conn *cn = read_db(t, sn);
    sqlite3 *db = cn->db;
    sqlite3_stmt *s = conn_prep(cn, "SELECT n, hq, ha FROM tokset WHERE tenant=? AND coll=? "
                                  "AND tk=?");
    if (s == NULL) {
        rc = read_err(db, "token sets");
    }
    for (size_t i = 0; i < n && rc == VEIL_OK; i++) {
        memset(&out[i], 0, sizeof(out[i]));
        bind_tc(s, tenant, coll);
        bind_bytes(s, 3, tks[i], VL_TK_BYTES);
        int r = sqlite3_step(s);
        if (r == SQLITE_ROW) {
            int64_t k = sqlite3_column_int64(s, 0);
            if (k <= 0 ||
                !vl_set_load(sqlite3_column_blob(s, 1), (size_t)sqlite3_column_bytes(s, 1),
                             &out[i].hq) ||
                !vl_set_load(sqlite3_column_blob(s, 2), (size_t)sqlite3_column_bytes(s, 2),
                             &out[i].ha)) {
                vl_log(VL_LOG_ERROR, "trusted state: a malformed token set");
                rc = VEIL_ERR_INTEGRITY;
            }
            out[i].n = (uint64_t)k;
        } else if (r != SQLITE_DONE) {
            rc = read_err(db, "token sets");
        }
    }
    conn_unprep(cn, s);
    read_done(t, sn);
    return rc;
}

void vl_inflight_free(struct vl_inflight *f, size_t n)
{
    for (size_t i = 0; f != NULL && i < n; i++) {
        free(f[i].tks.p);
        free(f[i].old_tks.p);
    }
    free(f);
}

veil_err vl_trusted_inflight(struct vl_trusted *t, struct vl_tsnap *sn, int64_t tenant,
                             const char *coll, struct vl_inflight **out, size_t *n)
{
    veil_err rc = VEIL_OK;
    struct vl_inflight *v = NULL;
    size_t len = 0, cap = 0;
    struct conn *cn = read_db(t, sn);
    sqlite3 *db = cn->db;
    sqlite3_stmt *s = conn_prep(cn, "SELECT i.doc, i.op, i.seq, i.tks, d.live, d.seq, d.tks "
                                  "FROM intents i LEFT JOIN docs d ON d.tenant=i.tenant AND "
                                  "d.coll=i.coll AND d.doc=i.doc "
                                  "WHERE i.tenant=? AND i.coll=?");
    int r = SQLITE_DONE;
    if (s == NULL) {
        rc = read_err(db, "writes in flight");
    } else {
        sqlite3_bind_int64(s, 1, tenant);
        sqlite3_bind_text(s, 2, coll, -1, SQLITE_TRANSIENT);
    }
    while (rc == VEIL_OK && (r = sqlite3_step(s)) == SQLITE_ROW) {
        if (len == cap) {
            size_t ncap = cap * 2 + 16;
            struct vl_inflight *nv = realloc(v, ncap * sizeof(*v));
            if (nv == NULL) {
                rc = VEIL_ERR_INTERNAL;
                break;
            }
            v = nv;
            cap = ncap;
        }
        struct vl_inflight *f = &v[len++];
        memset(f, 0, sizeof(*f));
        if (sqlite3_column_bytes(s, 0) == VL_DOCTOKEN_BYTES) {
            memcpy(f->doc, sqlite3_column_blob(s, 0), VL_DOCTOKEN_BYTES);
        }
        f->del = sqlite3_column_int(s, 1) == VL_INTENT_DELETE;
        f->seq = (uint64_t)sqlite3_column_int64(s, 2);
        f->old_live = sqlite3_column_type(s, 4) != SQLITE_NULL && sqlite3_column_int(s, 4) != 0;
        f->old_seq = (uint64_t)sqlite3_column_int64(s, 5);
        if (copy_col(s, 3, &f->tks) != VEIL_OK || copy_col(s, 6, &f->old_tks) != VEIL_OK) {
            rc = VEIL_ERR_INTERNAL;
        }
        if (f->del) {
            f->tks.n = 0;
        }
        if (!f->old_live) {
            f->old_tks.n = 0;
        }
    }
    if (rc == VEIL_OK && r != SQLITE_DONE) {
        rc = read_err(db, "writes in flight");
    }
    conn_unprep(cn, s);
    read_done(t, sn);
    if (rc != VEIL_OK) {
        vl_inflight_free(v, len);
        v = NULL;
        len = 0;
    }
    *out = v;
    *n = len;
    return rc;
}

veil_err vl_trusted_docs_tks(struct vl_trusted *t, struct vl_tsnap *sn, int64_t tenant,
                             const char *coll, const uint8_t (*docs)[VL_DOCTOKEN_BYTES],
                             size_t n, struct vl_bytes *tks, uint64_t *seqs)
{
    veil_err rc = VEIL_OK;
    memset(tks, 0, n * sizeof(*tks));
    memset(seqs, 0, n * sizeof(*seqs));
    struct conn *cn = read_db(t, sn);
    sqlite3 *db = cn->db;
    sqlite3_stmt *s = conn_prep(cn, "SELECT tks, seq FROM docs WHERE tenant=? AND coll=? AND "
                                  "doc=? AND live=1");
    if (s == NULL) {
        rc = read_err(db, "document tokens");
    }
    for (size_t i = 0; i < n && rc == VEIL_OK; i++) {
        bind_tc(s, tenant, coll);
        bind_bytes(s, 3, docs[i], VL_DOCTOKEN_BYTES);
        int r = sqlite3_step(s);
        if (r == SQLITE_ROW) {
            rc = copy_col(s, 0, &tks[i]);
            seqs[i] = (uint64_t)sqlite3_column_int64(s, 1);
        } else if (r != SQLITE_DONE) {
            rc = read_err(db, "document tokens");
        }
    }
    conn_unprep(cn, s);
    read_done(t, sn);
    if (rc != VEIL_OK) {
        for (size_t i = 0; i < n; i++) {
            free(tks[i].p);
            tks[i].p = NULL;
            tks[i].n = 0;
        }
    }
    return rc;
}

/* ---- differential privacy: budgets and kept answers ---- */

/* At most this many rows of earlier periods are forgotten by one ask, so an ask costs
 * little however many are left; the next asks go on with the rest. */
#define DP_FORGET_MAX 64
/* Spending rows are kept this long after their period starts (every period is shorter). */
#define DP_SPENT_KEEP ((int64_t)400 * 86400)

/* The role's total in dp_spent. */

static const char dp_total[] = "";

struct dp_row {
    uint64_t eps, delta, answers;
};

static uint64_t u64_col(sqlite3_stmt *s, int i)
{
    int64_t v = sqlite3_column_int64(s, i);
    return v < 0 ? 0 : (uint64_t)v;
}

/* The spending of (role, token) in the period (0 when it has no row yet). */
static veil_err dp_row_get(struct vl_trusted *t, const struct vl_dp_ask *a, const char *token,
                           struct dp_row *row)
{
    memset(row, 0, sizeof(*row));
    sqlite3_stmt *s = prep(t, "SELECT eps, delta, answers FROM dp_spent WHERE tenant=? AND "
                              "coll=? AND period=? AND role=? AND token=?");
    if (s == NULL) {
        return db_err(t, 0, "dp spent");
    }
    sqlite3_bind_int64(s, 1, a->tenant);
    sqlite3_bind_text(s, 2, a->coll, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 3, a->period);
    sqlite3_bind_text(s, 4, a->role, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 5, token, -1, SQLITE_TRANSIENT);
    int r = sqlite3_step(s);
    if (r == SQLITE_ROW) {
        row->eps = u64_col(s, 0);
        row->delta = u64_col(s, 1);
        row->answers = u64_col(s, 2);
    }
    unprep(t, s);
    return r == SQLITE_ROW || r == SQLITE_DONE ? VEIL_OK : db_err(t, r, "dp spent");
}

static veil_err dp_row_put(struct vl_trusted *t, const struct vl_dp_ask *a, const char *token,
                           const struct dp_row *row)
{
    sqlite3_stmt *s = prep(t, "INSERT INTO dp_spent(tenant, coll, period, role, token, eps, "
                              "delta, answers) VALUES(?,?,?,?,?,?,?,?) ON CONFLICT DO UPDATE "
                              "SET eps=excluded.eps, delta=excluded.delta, "
                              "answers=excluded.answers");
    if (s != NULL) {
        sqlite3_bind_int64(s, 1, a->tenant);
        sqlite3_bind_text(s, 2, a->coll, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(s, 3, a->period);
        sqlite3_bind_text(s, 4, a->role, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(s, 5, token, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(s, 6, (int64_t)row->eps);
        sqlite3_bind_int64(s, 7, (int64_t)row->delta);
        sqlite3_bind_int64(s, 8, (int64_t)row->answers);
    }
    return run(t, s, "dp spend");
}

/* Can `row` pay eps within budget? Exact integers; a budget above INT64_MAX is INT64_MAX
 * (what a row can hold), so spent + eps never overflows once it passes. */
static bool dp_can_pay(const struct dp_row *row, uint64_t eps, uint64_t budget)
{
    if (budget > (uint64_t)INT64_MAX) {
        budget = (uint64_t)INT64_MAX;
    }
    return row->eps <= budget && eps <= budget - row->eps;
}

static void dp_add(struct dp_row *row, uint64_t eps, uint64_t delta)
{
    row->eps += eps;
    /* Delta has no budget here: its sum only reports, and saturates rather than wraps. */
    row->delta = row->delta > (uint64_t)INT64_MAX - delta ? (uint64_t)INT64_MAX
                                                          : row->delta + delta;
    row->answers++;
}

/* Forgets some answers of the role's earlier periods (the role's: roles may count periods
 * in different units, so another role's current period may start before this one's), and
 * the collection's spending rows more than DP_SPENT_KEEP older. */
static veil_err dp_forget_old(struct vl_trusted *t, const struct vl_dp_ask *a)
{
    static const char *const stmts[] = {
        "DELETE FROM dp_answers WHERE ticket IN (SELECT ticket FROM dp_answers WHERE "
        "tenant=?1 AND coll=?2 AND role=?5 AND period<?3 LIMIT ?4)",
        "DELETE FROM dp_spent WHERE rowid IN (SELECT rowid FROM dp_spent WHERE "
        "tenant=?1 AND coll=?2 AND period<?3 LIMIT ?4)",
    };
    int64_t before[2] = {a->period, a->period - DP_SPENT_KEEP};
    if (a->period < INT64_MIN + DP_SPENT_KEEP) {
        before[1] = INT64_MIN;
    }
    veil_err rc = VEIL_OK;
    for (size_t i = 0; rc == VEIL_OK && i < 2; i++) {
        sqlite3_stmt *s = prep(t, stmts[i]);
        if (s != NULL) {
            sqlite3_bind_int64(s, 1, a->tenant);
            sqlite3_bind_text(s, 2, a->coll, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(s, 3, before[i]);
            sqlite3_bind_int(s, 4, DP_FORGET_MAX);
            if (i == 0) {
                sqlite3_bind_text(s, 5, a->role, -1, SQLITE_TRANSIENT);
            }
        }
        rc = run(t, s, "dp forget");
    }
    return rc;
}

/* The answer of the ask's key, if any: kept (*answer set, malloc'd) or pending (*pending,
 * *started). */
static veil_err dp_answer_get(struct vl_trusted *t, const struct vl_dp_ask *a, bool *found,
                              char **answer, int64_t *started)
{
    *found = false;
    *answer = NULL;
    sqlite3_stmt *s = prep(t, "SELECT started, answer FROM dp_answers WHERE tenant=? AND "
                              "coll=? AND period=? AND role=? AND query=?");
    if (s == NULL) {
        return db_err(t, 0, "dp answer");
    }
    sqlite3_bind_int64(s, 1, a->tenant);
    sqlite3_bind_text(s, 2, a->coll, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 3, a->period);
    sqlite3_bind_text(s, 4, a->role, -1, SQLITE_TRANSIENT);
    bind_bytes(s, 5, a->query, sizeof(a->query));
    veil_err rc = VEIL_OK;
    int r = sqlite3_step(s);
    if (r == SQLITE_ROW) {
        *found = true;
        *started = sqlite3_column_int64(s, 0);
        if (sqlite3_column_type(s, 1) != SQLITE_NULL &&
            (*answer = strdup((const char *)sqlite3_column_text(s, 1))) == NULL) {
            rc = VEIL_ERR_INTERNAL;
        }
    } else if (r != SQLITE_DONE) {
        rc = db_err(t, r, "dp answer");
    }
    unprep(t, s);
    return rc;
}

/* Records the ask's answer as pending, in place of any answer of its key. */
static veil_err dp_answer_pend(struct vl_trusted *t, const struct vl_dp_ask *a, int64_t *ticket)
{
    sqlite3_stmt *s = prep(t, "DELETE FROM dp_answers WHERE tenant=? AND coll=? AND period=? "
                              "AND role=? AND query=?");
    if (s != NULL) {
        sqlite3_bind_int64(s, 1, a->tenant);
        sqlite3_bind_text(s, 2, a->coll, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(s, 3, a->period);
        sqlite3_bind_text(s, 4, a->role, -1, SQLITE_TRANSIENT);
        bind_bytes(s, 5, a->query, sizeof(a->query));
    }
    veil_err rc = run(t, s, "dp answer");
    if (rc != VEIL_OK) {
        return rc;
    }
    s = prep(t, "INSERT INTO dp_answers(tenant, coll, period, role, query, token, eps, delta, "
                "started) VALUES(?,?,?,?,?,?,?,?,?)");
    if (s != NULL) {
        sqlite3_bind_int64(s, 1, a->tenant);
        sqlite3_bind_text(s, 2, a->coll, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(s, 3, a->period);
        sqlite3_bind_text(s, 4, a->role, -1, SQLITE_TRANSIENT);
        bind_bytes(s, 5, a->query, sizeof(a->query));
        sqlite3_bind_text(s, 6, a->token, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(s, 7, (int64_t)a->eps);
        sqlite3_bind_int64(s, 8, (int64_t)a->delta);
        sqlite3_bind_int64(s, 9, a->now);
    }
    if ((rc = run(t, s, "dp answer")) == VEIL_OK) {
        *ticket = sqlite3_last_insert_rowid(t->db);
    }
    return rc;
}

/* Was a pending answer started at `started` abandoned by `now`? */
static bool dp_stale(int64_t started, int64_t now, int64_t stale_after)
{
    int64_t age = 0;
    return !__builtin_sub_overflow(now, started, &age) && age >= stale_after;
}

/* Was a rollback accepted at or after `period` began? */
static veil_err dp_rolled_back(struct vl_trusted *t, int64_t period, bool *out)
{
    sqlite3_stmt *s = prep(t, "SELECT EXISTS(SELECT 1 FROM rollbacks WHERE time >= ?)");
    veil_err rc = VEIL_OK;
    if (s != NULL) {
        sqlite3_bind_int64(s, 1, period);
    }
    if (s == NULL || sqlite3_step(s) != SQLITE_ROW) {
        rc = db_err(t, 0, "dp rollback");
    } else {
        *out = sqlite3_column_int(s, 0) != 0;
    }
    unprep(t, s);
    return rc;
}

veil_err vl_trusted_dp_begin(struct vl_trusted *t, const struct vl_dp_ask *a,
                             struct vl_dp_reply *r)
{
    struct vl_dp_reply res;
    struct dp_row tok, role;
    bool found = false, decided = false;
    int64_t started = 0;
    memset(&res, 0, sizeof(res));
    memset(r, 0, sizeof(*r));
    if (a->coll == NULL || a->role == NULL || a->token == NULL || a->token[0] == '\0' ||
        a->eps > (uint64_t)INT64_MAX || a->delta > (uint64_t)INT64_MAX || a->stale_after < 0) {
        return VEIL_ERR_INTERNAL;
    }
    veil_err rc = tx_begin_durable(t);
    if (rc != VEIL_OK) {
        return rc;
    }
    if ((rc = dp_forget_old(t, a)) != VEIL_OK) {
        goto out;
    }
    if (!a->refresh) {
        if ((rc = dp_answer_get(t, a, &found, &res.answer, &started)) != VEIL_OK) {
            goto out;
        }
        if (res.answer != NULL) {
            res.outcome = VL_DP_KEPT;
            decided = true;
        } else if (found && !dp_stale(started, a->now, a->stale_after)) {
            res.outcome = VL_DP_PENDING;
            decided = true;
        }
    }
    if ((rc = dp_row_get(t, a, a->token, &tok)) != VEIL_OK ||
        (rc = dp_row_get(t, a, dp_total, &role)) != VEIL_OK) {
        goto out;
    }
    if (!decided) {
        /* A rollback accepted in this period (or since it began) may have forgotten what
         * was spent in it: count every budget of the period as spent. */
        bool rolled_back = false;
        if ((rc = dp_rolled_back(t, a->period, &rolled_back)) != VEIL_OK) {
            goto out;
        }
        res.token_exhausted = rolled_back || !dp_can_pay(&tok, a->eps, a->token_budget);
        res.role_exhausted = rolled_back || !dp_can_pay(&role, a->eps, a->role_budget);
        if (res.token_exhausted || res.role_exhausted) {
            res.outcome = VL_DP_EXHAUSTED;
        } else {
            dp_add(&tok, a->eps, a->delta);
            dp_add(&role, a->eps, a->delta);
            if ((rc = dp_row_put(t, a, a->token, &tok)) != VEIL_OK ||
                (rc = dp_row_put(t, a, dp_total, &role)) != VEIL_OK ||
                (rc = dp_answer_pend(t, a, &res.ticket)) != VEIL_OK ||
                (rc = mark_bump(t, &res.mark)) != VEIL_OK) {
                goto out;
            }
            res.outcome = VL_DP_SPENT;
        }
    }
    res.token_spent = tok.eps;
    res.token_delta = tok.delta;
    res.role_spent = role.eps;
    res.role_delta = role.delta;
out:
    rc = tx_end_durable(t, rc);
    if (rc == VEIL_OK) {
        *r = res;
    } else {
        free(res.answer);
    }
    return rc;
}

veil_err vl_trusted_dp_finish(struct vl_trusted *t, int64_t ticket, const char *answer)
{
    if (answer == NULL) {
        return VEIL_ERR_INTERNAL;
    }
    veil_err rc = tx_begin(t);
    if (rc != VEIL_OK) {
        return rc;
    }
    sqlite3_stmt *s = prep(t, "UPDATE dp_answers SET answer=? WHERE ticket=? AND answer IS NULL");
    if (s != NULL) {
        sqlite3_bind_text(s, 1, answer, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(s, 2, ticket);
    }
    rc = run(t, s, "dp finish");
    if (rc == VEIL_OK && sqlite3_changes(t->db) == 0) {
        rc = VEIL_ERR_NOT_FOUND;
    }
    return tx_end(t, rc);
}

veil_err vl_trusted_dp_abort(struct vl_trusted *t, int64_t ticket, bool refund)
{
    veil_err rc = tx_begin(t);
    if (rc != VEIL_OK) {
        return rc;
    }
    sqlite3_stmt *s = prep(t, "DELETE FROM dp_answers WHERE ticket=? AND answer IS NULL "
                              "RETURNING tenant, coll, period, role, token, eps, delta");
    sqlite3_stmt *up = prep(t, "UPDATE dp_spent SET eps=max(eps - ?6, 0), "
                               "delta=max(delta - ?7, 0), answers=max(answers - 1, 0) "
                               "WHERE tenant=?1 AND coll=?2 AND period=?3 AND role=?4 "
                               "AND token IN (?5, '')");
    if (s == NULL || up == NULL) {
        rc = db_err(t, 0, "dp abort");
        goto out;
    }
    sqlite3_bind_int64(s, 1, ticket);
    int r = sqlite3_step(s);
    if (r == SQLITE_DONE) {
        rc = VEIL_ERR_NOT_FOUND;
        goto out;
    }
    if (r != SQLITE_ROW) {
        rc = db_err(t, r, "dp abort");
        goto out;
    }
    for (int i = 1; i <= 7; i++) {
        sqlite3_bind_value(up, i, sqlite3_column_value(s, i - 1));
    }
    while ((r = sqlite3_step(s)) == SQLITE_ROW) {
    }
    if (r != SQLITE_DONE) {
        rc = db_err(t, r, "dp abort");
    } else if (refund && (r = sqlite3_step(up)) != SQLITE_DONE) {
        rc = db_err(t, r, "dp refund");
    }
out:
    unprep(t, s);
    unprep(t, up);
    return tx_end(t, rc);
}

veil_err vl_trusted_dp_usage(struct vl_trusted *t, int64_t tenant, const char *coll,
                             int64_t period, const char *role, const char *token,
                             json_t **out)
{
    veil_err rc = VEIL_OK;
    json_t *arr = json_array();
    pthread_mutex_lock(&t->mu);
    sqlite3_stmt *s = prep(t, "SELECT role, token, eps, delta, answers FROM dp_spent "
                              "WHERE tenant=?1 AND coll=?2 AND period=?3 AND "
                              "(?4 IS NULL OR role=?4) AND (?5 IS NULL OR token=?5) "
                              "ORDER BY role, token");
    if (s == NULL || arr == NULL) {
        rc = s == NULL ? db_err(t, 0, "dp usage") : VEIL_ERR_INTERNAL;
        goto out;
    }
    sqlite3_bind_int64(s, 1, tenant);
    sqlite3_bind_text(s, 2, coll, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 3, period);
    if (role != NULL) {
        sqlite3_bind_text(s, 4, role, -1, SQLITE_TRANSIENT);
    }
    if (token != NULL) {
        sqlite3_bind_text(s, 5, token, -1, SQLITE_TRANSIENT);
    }
    int r;
    while ((r = sqlite3_step(s)) == SQLITE_ROW) {
        const char *tk = (const char *)sqlite3_column_text(s, 1);
        json_t *o = json_pack("{s:s, s:o, s:I, s:I, s:I}",
                              "role", (const char *)sqlite3_column_text(s, 0),
                              "token", tk[0] == '\0' ? json_null() : json_string(tk),
                              "epsilon", (json_int_t)u64_col(s, 2),
                              "delta", (json_int_t)u64_col(s, 3),
                              "answers", (json_int_t)u64_col(s, 4));
        if (o == NULL || json_array_append_new(arr, o) != 0) {
            rc = VEIL_ERR_INTERNAL;
            goto out;
        }
    }
    if (r != SQLITE_DONE) {
        rc = db_err(t, r, "dp usage");
    }
out:
    unprep(t, s);
    pthread_mutex_unlock(&t->mu);
    if (rc == VEIL_OK) {
        *out = arr;
    } else {
        json_decref(arr);
    }
    return rc;
}

veil_err vl_trusted_dp_reset(struct vl_trusted *t, int64_t tenant, const char *coll,
                             int64_t period, const char *role, const char *token,
                             size_t *n)
{
    /* ?5 is the token, or '' with ?6 = 1 for the role's total. */
    static const char sql[] =
        "UPDATE dp_spent SET eps=0, delta=0, answers=0 WHERE tenant=?1 AND coll=?2 AND "
        "period=?3 AND (?4 IS NULL OR role=?4) AND "
        "(CASE WHEN ?6 THEN token='' WHEN ?5 IS NULL THEN token!='' ELSE token=?5 END)";
    size_t changed = 0;
    if (role == NULL && (token == NULL || token[0] == '\0')) {
        return VEIL_ERR_INTERNAL;
    }
    veil_err rc = tx_begin(t);
    if (rc != VEIL_OK) {
        return rc;
    }
    /* Tokens first (counted), then the role's total when the whole role is reset. */
    for (int total = 0; rc == VEIL_OK && total <= (token == NULL); total++) {
        sqlite3_stmt *s = prep(t, sql);
        if (s != NULL) {
            sqlite3_bind_int64(s, 1, tenant);
            sqlite3_bind_text(s, 2, coll, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(s, 3, period);
            if (role != NULL) {
                sqlite3_bind_text(s, 4, role, -1, SQLITE_TRANSIENT);
            }
            if (token != NULL) {
                sqlite3_bind_text(s, 5, token, -1, SQLITE_TRANSIENT);
            }
            sqlite3_bind_int(s, 6, total);
        }
        rc = run(t, s, "dp reset");
        if (rc == VEIL_OK && !total) {
            changed = (size_t)sqlite3_changes(t->db);
        }
    }
    rc = tx_end(t, rc);
    if (rc == VEIL_OK) {
        *n = changed;
    }
    return rc;
}
