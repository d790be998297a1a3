/*
 * inproc.c: fields protected per second inside one process, libveil against plain SQLite.
 *
 * A fresh data directory is made through the public API (veil_init, a tenant, the
 * invoices policy), then every document goes through veil_doc_put in a tight loop on one
 * clerk session: for each, the engine seals every field (AEAD, plus SIV and index labels
 * per the field's tactics), records an intent in trusted state, writes the store and
 * finishes the intent. The baseline puts the same JSON texts into a plain SQLite table in
 * this process, one transaction per document. Both figures are documents per second times
 * the field values per document. The crypto alone is not reachable through the public API;
 * the report derives the per-field cost veil adds from the two rates instead.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>
#include <veil/veil.h>

#include "bench.h"

#define vfail(what, e, st) bench_vfail("inproc", what, e, st)

static int put_all(veil_session *s, const struct bench_set *set, size_t n, int warm)
{
    veil_status st;
    for (size_t i = 0; i < n; i++) {
        const struct bench_doc *d = &set->docs[i];
        char *out = NULL;
        int created = 0;
        veil_err e = veil_doc_put(s, BENCH_COLL, warm ? d->warm_id : d->id, d->json, d->len, 0,
                                  &out, &created, &st);
        if (e != VEIL_OK) {
            return vfail("put", e, &st);
        }
        veil_free(out);
    }
    return 0;
}

static int plain_all(sqlite3 *db, sqlite3_stmt *ins, const struct bench_set *set, size_t n,
                     int warm)
{
    for (size_t i = 0; i < n; i++) {
        const struct bench_doc *d = &set->docs[i];
        sqlite3_bind_text(ins, 1, warm ? d->warm_id : d->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 2, d->json, (int)d->len, SQLITE_STATIC);
        int rc = sqlite3_step(ins);
        sqlite3_reset(ins);
        if (rc != SQLITE_DONE) {
            fprintf(stderr, "bench: sqlite: insert: %s\n", sqlite3_errmsg(db));
            return -1;
        }
    }
    return 0;
}

static double run_plain(const struct bench_opts *o, const struct bench_set *set, size_t nwarm)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *ins = NULL;
    double secs = -1;
    if (sqlite3_open(o->db, &db) != SQLITE_OK ||
        sqlite3_exec(db,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                     "CREATE TABLE IF NOT EXISTS docs(id TEXT PRIMARY KEY, doc TEXT)",
                     NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "INSERT INTO docs(id, doc) VALUES(?1, ?2) "
                           "ON CONFLICT(id) DO UPDATE SET doc = excluded.doc",
                           -1, &ins, NULL) != SQLITE_OK) {
        fprintf(stderr, "bench: sqlite: %s\n", sqlite3_errmsg(db));
        goto out;
    }
    if (plain_all(db, ins, set, nwarm, 1) != 0) {
        goto out;
    }
    double t0 = bench_now();
    if (plain_all(db, ins, set, set->n, 0) != 0) {
        goto out;
    }
    secs = bench_now() - t0;
out:
    sqlite3_finalize(ins);
    sqlite3_close(db);
    return secs;
}

static double run_veil(const struct bench_opts *o, const struct bench_set *set, size_t nwarm)
{
    veil_init_options io;
    veil_status st;
    veil_vault *v = NULL;
    veil_session *admin = NULL;
    veil_session *clerk = NULL;
    veil_err e;
    double secs = -1;
    size_t plen = 0;
    int created = 0;
    char *policy = bench_slurp(o->policy, &plen);

    memset(&io, 0, sizeof(io));
    memset(&st, 0, sizeof(st));
    if (policy == NULL) {
        fprintf(stderr, "bench: cannot read %s\n", o->policy);
        goto out;
    }
    if ((e = veil_init(o->data, &io, &st)) != VEIL_OK) {
        vfail("init", e, &st);
        goto out;
    }
    if ((e = veil_vault_open(o->data, &v, &st)) != VEIL_OK) {
        vfail("open", e, &st);
        goto out;
    }
    if ((e = veil_tenant_create(v, "bench", &st)) != VEIL_OK ||
        (e = veil_session_open(v, "bench", "admin", &admin, &st)) != VEIL_OK ||
        (e = veil_collection_apply(admin, BENCH_COLL, policy, plen, &created, &st)) != VEIL_OK ||
        (e = veil_session_open(v, "bench", "clerk", &clerk, &st)) != VEIL_OK) {
        vfail("set-up", e, &st);
        goto out;
    }
    if (put_all(clerk, set, nwarm, 1) != 0) {
        goto out;
    }
    double t0 = bench_now();
    if (put_all(clerk, set, set->n, 0) != 0) {
        goto out;
    }
    secs = bench_now() - t0;
out:
    veil_session_free(clerk);
    veil_session_free(admin);
    veil_vault_close(v);
    free(policy);
    return secs;
}

int bench_inproc(const struct bench_opts *o)
{
    struct bench_set set = {0};
    int rc = -1;
    uint64_t fields = 0;

    if (o->docs == NULL || o->db == NULL || o->data == NULL || o->policy == NULL ||
        o->out == NULL) {
        fprintf(stderr, "bench: inproc needs --docs, --db, --data, --policy and --out\n");
        return -1;
    }
    if (bench_set_load(o->docs, 0, &set) != 0) {
        return -1;
    }
    for (size_t i = 0; i < set.n; i++) {
        fields += set.docs[i].fields;
    }
    size_t nwarm = set.n / 10 < BENCH_WARM_MAX ? set.n / 10 : BENCH_WARM_MAX;
    double base = run_plain(o, &set, nwarm);
    double veil = base > 0 ? run_veil(o, &set, nwarm) : -1;
    if (base > 0 && veil > 0) {
        rc = bench_result_write(o->out, "inproc", "base", 1, set.n, base, fields);
        if (rc == 0) {
            rc = bench_result_write(o->out, "inproc", "veil", 1, set.n, veil, fields);
        }
    }
    bench_set_free(&set);
    return rc;
}
