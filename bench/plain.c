/*
 * plain.c: the baselines. The same documents in a plain SQLite table, by a direct client
 * (the sqlite3 C API in this process): no encryption, no HTTP, no trusted state.
 *
 *   CREATE TABLE docs(id TEXT PRIMARY KEY, doc TEXT)   WAL, synchronous=NORMAL
 *
 * put:   one INSERT .. ON CONFLICT DO UPDATE per document, each its own transaction (the
 *        durability veil gives a single PUT). With several threads each has a connection
 *        and writes take a client-side lock: SQLite has one writer at a time, and waiting
 *        on a mutex beats SQLite's sleeping busy handler.
 * get:   SELECT doc FROM docs WHERE id=?, in the same shuffled order as veil's GETs;
 *        readers run in parallel (WAL). Reads are repeated in rounds when one pass is
 *        too short to time well (BENCH_MIN_SECS).
 * bulk:  the same upsert in transactions of --batch documents, into a table that also has
 *        the index the query phase uses (veil maintains its own equality index rows too).
 * query: SELECT id, doc FROM docs WHERE json_extract(doc,'$.org_id')=? LIMIT 100, over the
 *        bulk table and its index on that expression.
 *
 * Besides the rates, each run records its peak RSS and the bytes of the documents it
 * holds, so the report can give SQLite's own footprint.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "bench.h"

enum phase { PH_PUT, PH_GET, PH_BULK, PH_QUERY };

#define UPSERT_SQL                                                                                 \
    "INSERT INTO docs(id, doc) VALUES(?1, ?2) "                                                    \
    "ON CONFLICT(id) DO UPDATE SET doc = excluded.doc"
#define GET_SQL "SELECT doc FROM docs WHERE id = ?1"
#define QUERY_SQL "SELECT id, doc FROM docs WHERE json_extract(doc, '$.org_id') = ?1 LIMIT 100"
#define INDEX_SQL "CREATE INDEX IF NOT EXISTS docs_org ON docs(json_extract(doc, '$.org_id'))"

struct plain_shared {
    enum phase ph;
    const struct bench_opts *o;
    const struct bench_set *set;
    size_t *perm; /* get: the order documents are read in */
    pthread_mutex_t write_lock;
    const char **orgs;
    size_t norgs;
    size_t batch;
};

struct plain_state {
    sqlite3 *db;
    sqlite3_stmt *stmt;
    sqlite3_stmt *begin;
    sqlite3_stmt *commit;
};

static int fail(sqlite3 *db, const char *what)
{
    fprintf(stderr, "bench: sqlite: %s: %s\n", what, db ? sqlite3_errmsg(db) : "out of memory");
    return -1;
}

static int db_open(const char *path, sqlite3 **out)
{
    sqlite3 *db = NULL;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
        fail(db, "open");
        sqlite3_close(db);
        return -1;
    }
    sqlite3_busy_timeout(db, 10000);
    if (sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL, NULL) !=
        SQLITE_OK) {
        fail(db, "pragmas");
        sqlite3_close(db);
        return -1;
    }
    *out = db;
    return 0;
}

static void state_free(void *arg)
{
    struct plain_state *s = arg;
    if (s == NULL) {
        return;
    }
    sqlite3_finalize(s->stmt);
    sqlite3_finalize(s->begin);
    sqlite3_finalize(s->commit);
    sqlite3_close(s->db);
    free(s);
}

static int state_new(void *arg, unsigned thread, void **out)
{
    struct plain_shared *sh = arg;
    struct plain_state *s = calloc(1, sizeof(*s));
    const char *sql = UPSERT_SQL;
    (void)thread;
    if (s == NULL || db_open(sh->o->db, &s->db) != 0) {
        free(s);
        return -1;
    }
    if (sh->ph == PH_GET) {
        sql = GET_SQL;
    } else if (sh->ph == PH_QUERY) {
        sql = QUERY_SQL;
    }
    if (sqlite3_prepare_v2(s->db, sql, -1, &s->stmt, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "BEGIN IMMEDIATE", -1, &s->begin, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "COMMIT", -1, &s->commit, NULL) != SQLITE_OK) {
        fail(s->db, "prepare");
        state_free(s);
        return -1;
    }
    *out = s;
    return 0;
}

static int step_done(sqlite3 *db, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : fail(db, what);
}

static int upsert(struct plain_state *s, const char *id, const struct bench_doc *d)
{
    sqlite3_bind_text(s->stmt, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->stmt, 2, d->json, (int)d->len, SQLITE_STATIC);
    return step_done(s->db, s->stmt, "insert");
}

static int op(void *arg, void *st, size_t i, int warm)
{
    struct plain_shared *sh = arg;
    struct plain_state *s = st;
    int rc = 0;

    switch (sh->ph) {
    case PH_PUT: {
        const struct bench_doc *d = &sh->set->docs[i];
        pthread_mutex_lock(&sh->write_lock);
        rc = upsert(s, warm ? d->warm_id : d->id, d); /* autocommit: one transaction */
        pthread_mutex_unlock(&sh->write_lock);
        return rc;
    }
    case PH_GET: {
        const struct bench_doc *d = &sh->set->docs[sh->perm[i % sh->set->n]];
        sqlite3_bind_text(s->stmt, 1, d->id, -1, SQLITE_STATIC);
        if (sqlite3_step(s->stmt) != SQLITE_ROW || sqlite3_column_bytes(s->stmt, 0) <= 0 ||
            sqlite3_column_text(s->stmt, 0) == NULL) {
            sqlite3_reset(s->stmt);
            fprintf(stderr, "bench: sqlite: get: %s not found\n", d->id);
            return -1;
        }
        sqlite3_reset(s->stmt);
        return 0;
    }
    case PH_BULK: {
        size_t lo = warm ? 0 : i * sh->batch;
        size_t hi = lo + sh->batch < sh->set->n ? lo + sh->batch : sh->set->n;
        if (step_done(s->db, s->begin, "begin") != 0) {
            return -1;
        }
        for (size_t k = lo; k < hi && rc == 0; k++) {
            const struct bench_doc *d = &sh->set->docs[k];
            rc = upsert(s, warm ? d->warm_id : d->id, d);
        }
        if (rc != 0) {
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
        return step_done(s->db, s->commit, "commit");
    }
    case PH_QUERY: {
        const char *org = sh->orgs[i % sh->norgs];
        size_t rows = 0;
        int r;
        sqlite3_bind_text(s->stmt, 1, org, -1, SQLITE_STATIC);
        while ((r = sqlite3_step(s->stmt)) == SQLITE_ROW) {
            if (sqlite3_column_text(s->stmt, 0) == NULL ||
                sqlite3_column_text(s->stmt, 1) == NULL) {
                break;
            }
            rows++;
        }
        sqlite3_reset(s->stmt);
        if (r != SQLITE_DONE || rows == 0) {
            return fail(s->db, "query");
        }
        return 0;
    }
    }
    return -1;
}

/* Creates the table (and for bulk the expression index) before anything is timed. */
static int prepare_db(const struct plain_shared *sh)
{
    sqlite3 *db = NULL;
    int rc = -1;
    if (db_open(sh->o->db, &db) != 0) {
        return -1;
    }
    if (sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS docs(id TEXT PRIMARY KEY, doc TEXT)", NULL,
                     NULL, NULL) != SQLITE_OK) {
        fail(db, "create table");
        goto out;
    }
    if ((sh->ph == PH_BULK || sh->ph == PH_QUERY) &&
        sqlite3_exec(db, INDEX_SQL, NULL, NULL, NULL) != SQLITE_OK) {
        fail(db, "create index");
        goto out;
    }
    rc = 0;
out:
    sqlite3_close(db);
    return rc;
}

int bench_plain(const char *phase, const struct bench_opts *o)
{
    struct bench_set set = {0};
    struct plain_shared sh;
    int rc = -1;
    size_t n = 0;
    size_t nwarm = 0;
    unsigned threads = o->threads;

    memset(&sh, 0, sizeof(sh));
    if (strcmp(phase, "put") == 0) {
        sh.ph = PH_PUT;
    } else if (strcmp(phase, "get") == 0) {
        sh.ph = PH_GET;
    } else if (strcmp(phase, "bulk") == 0) {
        sh.ph = PH_BULK;
    } else if (strcmp(phase, "query") == 0) {
        sh.ph = PH_QUERY;
    } else {
        fprintf(stderr, "bench: sqlite: unknown phase %s\n", phase);
        return -1;
    }
    if (o->db == NULL || o->docs == NULL || o->out == NULL) {
        fprintf(stderr, "bench: sqlite %s needs --db, --docs and --out\n", phase);
        return -1;
    }
    long rss_before = bench_proc_kib(0, "VmRSS");
    if (bench_set_load(o->docs, 0, &set) != 0) {
        return -1;
    }
    long rss_loaded = bench_proc_kib(0, "VmRSS");
    sh.o = o;
    sh.set = &set;
    sh.batch = o->batch;
    pthread_mutex_init(&sh.write_lock, NULL);
    if (sqlite3_config(SQLITE_CONFIG_MULTITHREAD) != SQLITE_OK || prepare_db(&sh) != 0) {
        goto out;
    }
    nwarm = set.n / 10 < BENCH_WARM_MAX ? set.n / 10 : BENCH_WARM_MAX;
    switch (sh.ph) {
    case PH_PUT:
    case PH_GET:
        n = set.n;
        sh.perm = bench_perm(set.n, BENCH_PERM_SEED);
        if (sh.perm == NULL) {
            goto out;
        }
        break;
    case PH_BULK:
        if (sh.batch == 0) {
            goto out;
        }
        n = (set.n + sh.batch - 1) / sh.batch;
        nwarm = 1;
        threads = 1;
        break;
    case PH_QUERY:
        sh.orgs = bench_set_orgs(&set, &sh.norgs);
        if (sh.orgs == NULL || o->queries == 0) {
            goto out;
        }
        n = o->queries;
        nwarm = n / 10 < BENCH_WARM_MAX ? n / 10 : BENCH_WARM_MAX;
        nwarm = nwarm < sh.norgs ? sh.norgs : nwarm;
        break;
    }
    struct bench_worker w = {&sh, state_new, op, state_free};
    double secs = bench_run(&w, threads, nwarm, n);
    if ((sh.ph == PH_GET || sh.ph == PH_QUERY) && secs > 0 && secs < BENCH_MIN_SECS) {
        /* Reads repeat: time enough rounds to last about BENCH_MIN_SECS. */
        size_t rounds = (size_t)(BENCH_MIN_SECS / secs) + 1;
        n *= rounds;
        secs = bench_run(&w, threads, 0, n);
    }
    if (secs <= 0) {
        fprintf(stderr, "bench: sqlite %s failed\n", phase);
        goto out;
    }
    uint64_t units = sh.ph == PH_BULK ? set.n : n;
    rc = bench_result_write(o->out, phase, "base", threads, n, secs, units);
    if (rc == 0) {
        long data = rss_before >= 0 && rss_loaded >= rss_before ? rss_loaded - rss_before : 0;
        rc = bench_rss_write(o->out, "base", bench_proc_kib(0, "VmHWM"), data);
    }
out:
    free(sh.orgs);
    free(sh.perm);
    pthread_mutex_destroy(&sh.write_lock);
    bench_set_free(&set);
    return rc;
}
