/*
 * verify.c: `bench_core verify`, what verified answers cost: the same work with the trusted
 * token sets kept and checked, and without them, in one process (no HTTP), in one run.
 *
 * veil keeps, per index token of a collection, the number of live documents that have it
 * and two keyed set hashes of them (trusted.db, table tokset), and each document's token
 * keys (docs.tks); every write updates them in the transaction that finishes it, and a
 * filtered query or an aggregate checks what the store lists against them. The internal
 * switch vl_vault_verify (engine/engine.h, for benchmarks only) turns that off for a vault:
 * writes keep no token sets and reads believe the store's index, as veil did before. Here:
 *
 *  1. veil_bulk of the same documents into two fresh data directories, one verified and
 *     one not, batch by batch in turn (which one goes first alternates), then the size of
 *     trusted.db and of the store a document, each checkpointed first (WAL folded in);
 *  2. veil_doc_put of new documents and of replacements of loaded ones, on and off, in
 *     alternating rounds (each side keeps to its own vault: documents written unverified
 *     would fail verification later);
 *  3. queries over the verified data, switching verification on and off between timed
 *     rounds, the same queries on both sides, their answers compared (the same documents);
 *     a selective query (invoice_no = one value) also on a collection a tenth the size.
 *
 * The aggregates, on and off, are timed in the analytics phase (analytics.c), over its
 * larger collection. Results go to --out as "an vf_KEY VALUE" lines; `bench_core report`
 * turns them into rows. Progress goes to stderr. A failing call or a difference between
 * the verified and the unverified answer fails the run.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>
#include <veil/veil.h>

#include "bench.h"
#include "engine/engine.h"

#define VF_ROUNDS 10    /* timed rounds a side, alternating */
#define VF_WARM 50      /* untimed operations a side before each measurement */
#define VF_WINDOWS 9    /* date windows of ~1% of the rows, at the 10%..90% points */
#define VF_SMALL_DIV 10 /* the small collection of the selective query: a tenth */
#define VF_BODY_MAX 2048
#define VF_DATE 16
#define VF_INV 32

struct vf_ctx {
    const struct bench_opts *o;
    FILE *out;
    struct bench_set set;
    const char **orgs;
    size_t norgs;
    size_t *org_count;     /* documents of each org in the set */
    char (*date)[VF_DATE]; /* issued_on of each document */
    char (*inv)[VF_INV];   /* invoice_no of each document */
    char lo[VF_WINDOWS][VF_DATE], hi[VF_WINDOWS][VF_DATE];
    size_t inwin[VF_WINDOWS];
    veil_vault *von, *voff;
    veil_session *on, *off, *small;
    size_t nsmall;
};

#define progress(...) bench_say("verify", __VA_ARGS__)

#define vfail(what, e, st) bench_vfail("verify", what, e, st)

static void emit(struct vf_ctx *c, const char *key, double v)
{
    bench_emit(c->out, "vf_", key, v);
}

static void emit_s(struct vf_ctx *c, const char *key, const char *v)
{
    bench_emit_s(c->out, "vf_", key, v);
}

/* The string value of "key":"..." in a compact JSON text, into out; -1 when absent. */
static int json_str(const char *json, const char *key, char *out, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":\"", key);
    const char *p = strstr(json, pat);
    if (p == NULL) {
        return -1;
    }
    p += strlen(pat);
    size_t n = strcspn(p, "\"");
    if (n >= cap) {
        return -1;
    }
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

static int cmp_date(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Per document its date and invoice number; per org its count; the date windows. */
static int facts(struct vf_ctx *c)
{
    size_t n = c->set.n;
    c->date = calloc(n, sizeof(*c->date));
    c->inv = calloc(n, sizeof(*c->inv));
    c->orgs = bench_set_orgs(&c->set, &c->norgs);
    c->org_count = c->orgs != NULL ? calloc(c->norgs + 1, sizeof(size_t)) : NULL;
    char(*sorted)[VF_DATE] = malloc(n * sizeof(*sorted));
    int rc = -1;
    if (c->date == NULL || c->inv == NULL || c->org_count == NULL || sorted == NULL ||
        c->norgs == 0) {
        fprintf(stderr, "bench: verify: out of memory, or no org_id in the documents\n");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const struct bench_doc *d = &c->set.docs[i];
        if (json_str(d->json, "issued_on", c->date[i], VF_DATE) != 0 ||
            json_str(d->json, "invoice_no", c->inv[i], VF_INV) != 0 || d->org_id == NULL) {
            fprintf(stderr, "bench: verify: document %s lacks issued_on, invoice_no or org_id\n",
                    d->id);
            goto out;
        }
        for (size_t k = 0; k < c->norgs; k++) {
            if (strcmp(c->orgs[k], d->org_id) == 0) {
                c->org_count[k]++;
                break;
            }
        }
    }
    memcpy(sorted, c->date, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), cmp_date);
    /* Whole days from the date at the j-th tenth until at least 1% of the rows. */
    for (size_t j = 0; j < VF_WINDOWS; j++) {
        size_t a = n * (j + 1) / 10, b = a + (n / 100 > 0 ? n / 100 : 1);
        while (a > 0 && strcmp(sorted[a - 1], sorted[a]) == 0) {
            a--;
        }
        while (b < n && strcmp(sorted[b], sorted[b - 1]) == 0) {
            b++;
        }
        if (b >= n) {
            fprintf(stderr, "bench: verify: too few documents for the date windows\n");
            goto out;
        }
        snprintf(c->lo[j], VF_DATE, "%s", sorted[a]);
        snprintf(c->hi[j], VF_DATE, "%s", sorted[b]);
        c->inwin[j] = b - a;
    }
    rc = 0;
out:
    free(sorted);
    return rc;
}

/* ---- set-up and the load ---- */

static int vault_setup(struct vf_ctx *c, const char *dir, const char *tenant, veil_vault **v,
                       veil_session **clerk, bool make)
{
    veil_init_options io;
    veil_status st;
    veil_session *admin = NULL;
    size_t plen = 0;
    int created = 0, rc = -1;
    veil_err e;
    char *policy = bench_slurp(c->o->policy, &plen);
    memset(&io, 0, sizeof(io));
    memset(&st, 0, sizeof(st));
    if (policy == NULL) {
        fprintf(stderr, "bench: verify: cannot read %s\n", c->o->policy);
        return -1;
    }
    if (make && ((e = veil_init(dir, &io, &st)) != VEIL_OK ||
                 (e = veil_vault_open(dir, v, &st)) != VEIL_OK)) {
        vfail("init", e, &st);
        goto out;
    }
    if ((e = veil_tenant_create(*v, tenant, &st)) != VEIL_OK ||
        (e = veil_session_open(*v, tenant, "admin", &admin, &st)) != VEIL_OK ||
        (e = veil_collection_apply(admin, BENCH_COLL, policy, plen, &created, &st)) != VEIL_OK ||
        (e = veil_session_open(*v, tenant, "clerk", clerk, &st)) != VEIL_OK) {
        vfail("set-up", e, &st);
        goto out;
    }
    rc = 0;
out:
    veil_session_free(admin);
    free(policy);
    return rc;
}

/* NDJSON of set lines [i, i + k). */
static char *batch_body(const struct bench_set *set, size_t i, size_t k, size_t *len)
{
    size_t n = 0;
    for (size_t j = i; j < i + k; j++) {
        n += set->docs[j].line_len + 1;
    }
    char *b = malloc(n + 1);
    if (b == NULL) {
        return NULL;
    }
    size_t at = 0;
    for (size_t j = i; j < i + k; j++) {
        memcpy(b + at, set->docs[j].line, set->docs[j].line_len);
        at += set->docs[j].line_len;
        b[at++] = '\n';
    }
    b[at] = '\0';
    *len = at;
    return b;
}

/* One veil_bulk call; every answer line must say 200 or 201. Seconds, or -1. */
static double bulk_once(veil_session *s, const char *body, size_t len, size_t k)
{
    veil_status st;
    char *out = NULL;
    double t0 = bench_now();
    veil_err e = veil_bulk(s, BENCH_COLL, body, len, &out, &st);
    double secs = bench_now() - t0;
    if (e != VEIL_OK) {
        return vfail("bulk", e, &st);
    }
    size_t good = 0;
    for (const char *q = out; (q = strstr(q, "\"status\":")) != NULL;) {
        q += 9;
        good += strncmp(q, "200", 3) == 0 || strncmp(q, "201", 3) == 0;
    }
    if (good != k) {
        fprintf(stderr, "bench: verify: bulk: %zu of %zu lines stored: %.300s\n", good, k, out);
        veil_free(out);
        return -1;
    }
    veil_free(out);
    return secs;
}

/* The same batches into both vaults in turn, the first of each pair alternating. */
static int load_both(struct vf_ctx *c)
{
    size_t n = c->set.n, batch = c->o->batch;
    double ton = 0, toff = 0, tick = bench_now();
    for (size_t i = 0, r = 0; i < n; i += batch, r++) {
        size_t k = n - i < batch ? n - i : batch, len = 0;
        char *body = batch_body(&c->set, i, k, &len);
        if (body == NULL) {
            return -1;
        }
        for (int side = 0; side < 2; side++) {
            bool on = (side == 0) == (r % 2 == 0);
            double s = bulk_once(on ? c->on : c->off, body, len, k);
            if (s < 0) {
                free(body);
                return -1;
            }
            *(on ? &ton : &toff) += s;
        }
        free(body);
        if (bench_now() - tick >= 30 || i + k == n) {
            progress("load: %zu of %zu documents a side; verified %.0f docs/s, unverified "
                     "%.0f docs/s",
                     i + k, n, (double)(i + k) / ton, (double)(i + k) / toff);
            tick = bench_now();
        }
    }
    emit(c, "load_on_s", ton);
    emit(c, "load_off_s", toff);
    emit(c, "docs", (double)n);
    emit(c, "batch", (double)batch);
    return 0;
}

static long long file_bytes(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long long)sb.st_size : 0;
}

/* Folds the WAL of an SQLite file into it (another connection than the vault's, which is
 * idle), then its size; also the bytes of the named tables and their indexes (dbstat)
 * when asked. -1 on failure. */
static long long db_bytes(const char *path, const char *const *tables, long long *tbytes,
                          size_t ntables)
{
    sqlite3 *db = NULL;
    long long size = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
        sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "bench: verify: checkpoint of %s: %s\n", path, sqlite3_errmsg(db));
        goto out;
    }
    for (size_t i = 0; i < ntables; i++) {
        sqlite3_stmt *q = NULL;
        tbytes[i] = 0;
        /* a WITHOUT ROWID table is its own index; other indexes are named after nothing,
         * so ask sqlite_schema which belong to the table */
        if (sqlite3_prepare_v2(db,
                               "SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name IN "
                               "(SELECT name FROM sqlite_schema WHERE tbl_name = ?1)",
                               -1, &q, NULL) != SQLITE_OK) {
            fprintf(stderr, "bench: verify: dbstat: %s\n", sqlite3_errmsg(db));
            goto out;
        }
        sqlite3_bind_text(q, 1, tables[i], -1, SQLITE_STATIC);
        if (sqlite3_step(q) == SQLITE_ROW) {
            tbytes[i] = sqlite3_column_int64(q, 0);
        }
        sqlite3_finalize(q);
    }
    size = file_bytes(path);
out:
    sqlite3_close(db);
    return size;
}

/* One number from a query on an SQLite file; -1 on failure. */
static double db_num(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    double v = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW) {
        v = sqlite3_column_double(q, 0);
    }
    sqlite3_finalize(q);
    sqlite3_close(db);
    return v;
}

static int sizes(struct vf_ctx *c)
{
    static const char *const tables[] = {"tokset", "docs"};
    char path[4096];
    for (int side = 0; side < 2; side++) {
        const char *sfx = side == 0 ? "on" : "off";
        long long tb[2] = {0, 0};
        char key[64];
        snprintf(path, sizeof(path), "%s/%s/trusted.db", c->o->data, sfx);
        long long trusted = db_bytes(path, tables, tb, 2);
        if (trusted < 0) {
            return -1;
        }
        snprintf(key, sizeof(key), "trusted_%s_bytes", sfx);
        emit(c, key, (double)trusted);
        snprintf(key, sizeof(key), "tokset_%s_bytes", sfx);
        emit(c, key, (double)tb[0]);
        snprintf(key, sizeof(key), "docs_%s_bytes", sfx);
        emit(c, key, (double)tb[1]);
        if (side == 0) {
            emit(c, "tokset_rows", db_num(path, "SELECT count(*) FROM tokset"));
            emit(c, "tks_per_doc", db_num(path, "SELECT avg(length(tks)) / 16.0 FROM docs"));
        }
        snprintf(path, sizeof(path), "%s/%s/cloud/cloud.db", c->o->data, sfx);
        long long store = db_bytes(path, NULL, NULL, 0);
        if (store < 0) {
            return -1;
        }
        snprintf(key, sizeof(key), "store_%s_bytes", sfx);
        emit(c, key, (double)store);
        progress("%s: trusted.db %lld bytes (token sets %lld, docs %lld), store %lld bytes", sfx,
                 trusted, tb[0], tb[1], store);
    }
    return 0;
}

/* ---- writes ---- */

/* Puts on one side: documents [i, i + k) of the set, each under id "PFX-ID" (new) or, with
 * pfx NULL, under the id of document (j + half) % n (a replacement: the other document's
 * fields, so its tokens change). Seconds, or -1. */
static double put_run(struct vf_ctx *c, veil_session *s, const char *pfx, size_t i, size_t k)
{
    veil_status st;
    char id[64];
    size_t n = c->set.n;
    double t0 = bench_now();
    for (size_t j = i; j < i + k; j++) {
        const struct bench_doc *d = &c->set.docs[j % n];
        if (pfx != NULL) {
            snprintf(id, sizeof(id), "%s-%s", pfx, d->id);
        } else {
            snprintf(id, sizeof(id), "%s", c->set.docs[(j + n / 2) % n].id);
        }
        char *out = NULL;
        int created = 0;
        veil_err e = veil_doc_put(s, BENCH_COLL, id, d->json, d->len, 0, &out, &created, &st);
        if (e != VEIL_OK) {
            return vfail("put", e, &st);
        }
        veil_free(out);
    }
    return bench_now() - t0;
}

/* new: PFX-prefixed new documents; else replacements. m a side, in VF_ROUNDS rounds. */
static int writes(struct vf_ctx *c, const char *key, bool isnew, size_t m)
{
    double t[2] = {0, 0};
    if (put_run(c, c->on, isnew ? "W" : NULL, 0, VF_WARM) < 0 ||
        put_run(c, c->off, isnew ? "W" : NULL, 0, VF_WARM) < 0) {
        return -1;
    }
    for (size_t r = 0; r < VF_ROUNDS; r++) {
        size_t a = m * r / VF_ROUNDS, b = m * (r + 1) / VF_ROUNDS;
        for (int side = 0; side < 2; side++) {
            bool on = (side == 0) == (r % 2 == 0);
            double s = put_run(c, on ? c->on : c->off, isnew ? "N" : NULL, VF_WARM + a, b - a);
            if (s < 0) {
                return -1;
            }
            t[on ? 0 : 1] += s;
        }
    }
    char k[64];
    snprintf(k, sizeof(k), "%s_on_s", key);
    emit(c, k, t[0]);
    snprintf(k, sizeof(k), "%s_off_s", key);
    emit(c, k, t[1]);
    snprintf(k, sizeof(k), "%s_n", key);
    emit(c, k, (double)m);
    progress("%s: %zu a side, verified %.0f/s, unverified %.0f/s", key, m, (double)m / t[0],
             (double)m / t[1]);
    return 0;
}

/* ---- queries ---- */

enum vf_kind { Q_EQ, Q_EQ_ALL, Q_IN3, Q_RANGE, Q_ORG_RANGE, Q_SEL_BIG, Q_SEL_SMALL, Q_KINDS };
static const char *const kind_key[Q_KINDS] = {"q_eq",       "q_eq_all",  "q_in3",      "q_range",
                                              "q_orgrange", "q_sel_big", "q_sel_small"};

/* The body of query i of a kind (after: the cursor of the page before, or NULL). */
static void query_body(const struct vf_ctx *c, enum vf_kind kind, size_t i, const char *after,
                       char *b, size_t cap)
{
    size_t w = i % VF_WINDOWS, no = c->norgs;
    char tail[VF_BODY_MAX / 2 + 16] = "";
    if (after != NULL) {
        snprintf(tail, sizeof(tail), ",\"after\":\"%s\"", after);
    }
    switch (kind) {
    case Q_EQ:
    case Q_EQ_ALL:
        snprintf(b, cap, "{\"where\":{\"org_id\":\"%s\"},\"limit\":100%s}", c->orgs[i % no], tail);
        break;
    case Q_IN3:
        snprintf(b, cap, "{\"where\":{\"org_id\":{\"in\":[\"%s\",\"%s\",\"%s\"]}},\"limit\":100}",
                 c->orgs[i % no], c->orgs[(i + 1) % no], c->orgs[(i + 2) % no]);
        break;
    case Q_RANGE:
        snprintf(b, cap, "{\"where\":{\"issued_on\":{\"gte\":\"%s\",\"lt\":\"%s\"}},\"limit\":100}",
                 c->lo[w], c->hi[w]);
        break;
    case Q_ORG_RANGE:
        snprintf(b, cap,
                 "{\"where\":{\"org_id\":\"%s\",\"issued_on\":{\"gte\":\"%s\",\"lt\":\"%s\"}},"
                 "\"limit\":100}",
                 c->orgs[i % no], c->lo[w], c->hi[w]);
        break;
    case Q_SEL_BIG:
    case Q_SEL_SMALL: {
        /* a document spread over the collection, the same for both sizes' turn */
        size_t m = kind == Q_SEL_BIG ? c->set.n : c->nsmall;
        size_t d = (i * 7919u) % m;
        snprintf(b, cap, "{\"where\":{\"invoice_no\":\"%s\"},\"limit\":100}", c->inv[d]);
        break;
    }
    default: b[0] = '\0';
    }
}

static size_t count_docs(const char *json)
{
    size_t n = 0;
    for (const char *p = json; (p = strstr(p, "{\"id\":")) != NULL; p += 6) {
        n++;
    }
    return n;
}

/* Query i of a kind, every page when the kind pages to the end. The documents it got, or
 * -1. */
static long run_query(const struct vf_ctx *c, veil_session *s, enum vf_kind kind, size_t i)
{
    char body[VF_BODY_MAX], cur[VF_BODY_MAX / 2];
    veil_status st;
    long docs = 0;
    bool more = true;
    cur[0] = '\0';
    while (more) {
        char *out = NULL;
        query_body(c, kind, i, cur[0] != '\0' ? cur : NULL, body, sizeof(body));
        veil_err e = veil_query(s, BENCH_COLL, body, strlen(body), &out, &st);
        if (e != VEIL_OK) {
            fprintf(stderr, "bench: verify: query %s\n", body);
            return vfail("query", e, &st);
        }
        docs += (long)count_docs(out);
        more = kind == Q_EQ_ALL && json_str(out, "next", cur, sizeof(cur)) == 0;
        veil_free(out);
    }
    return docs;
}

/* m queries of a kind a side, in VF_ROUNDS rounds, verification switched between them; each
 * query's document count must be the same both ways. */
static int queries(struct vf_ctx *c, enum vf_kind kind, size_t m)
{
    veil_session *s = kind == Q_SEL_SMALL ? c->small : c->on;
    double t[2] = {0, 0};
    long *got = calloc(m, sizeof(long));
    long total = 0;
    int rc = -1;
    if (got == NULL) {
        return -1;
    }
    for (int side = 0; side < 2; side++) {
        vl_vault_verify(c->von, side == 0);
        for (size_t i = 0; i < (m < VF_WARM ? m : VF_WARM); i++) {
            if (run_query(c, s, kind, i) < 0) {
                goto out;
            }
        }
    }
    for (size_t r = 0; r < VF_ROUNDS; r++) {
        size_t a = m * r / VF_ROUNDS, b = m * (r + 1) / VF_ROUNDS;
        for (int side = 0; side < 2; side++) {
            bool on = (side == 0) == (r % 2 == 0);
            vl_vault_verify(c->von, on);
            double t0 = bench_now();
            for (size_t i = a; i < b; i++) {
                long d = run_query(c, s, kind, i);
                if (d < 0) {
                    goto out;
                }
                if (side == 0) {
                    got[i] = d;
                } else if (got[i] != d) {
                    fprintf(stderr,
                            "bench: verify: %s query %zu: %ld documents verified, %ld "
                            "not\n",
                            kind_key[kind], i, on ? d : got[i], on ? got[i] : d);
                    goto out;
                }
            }
            t[on ? 0 : 1] += bench_now() - t0;
        }
    }
    for (size_t i = 0; i < m; i++) {
        total += got[i];
        if (kind == Q_EQ_ALL && (size_t)got[i] != c->org_count[i % c->norgs]) {
            fprintf(stderr, "bench: verify: org %s: %ld documents paged, %zu loaded\n",
                    c->orgs[i % c->norgs], got[i], c->org_count[i % c->norgs]);
            goto out;
        }
        if ((kind == Q_SEL_BIG || kind == Q_SEL_SMALL) && got[i] < 1) {
            fprintf(stderr, "bench: verify: invoice_no query %zu found nothing\n", i);
            goto out;
        }
    }
    char k[64];
    snprintf(k, sizeof(k), "%s_on_s", kind_key[kind]);
    emit(c, k, t[0]);
    snprintf(k, sizeof(k), "%s_off_s", kind_key[kind]);
    emit(c, k, t[1]);
    snprintf(k, sizeof(k), "%s_n", kind_key[kind]);
    emit(c, k, (double)m);
    snprintf(k, sizeof(k), "%s_docs", kind_key[kind]);
    emit(c, k, (double)total / (double)m);
    progress("%s: %zu queries a side, %.1f documents each; verified %.3f ms, unverified %.3f "
             "ms a query",
             kind_key[kind], m, (double)total / (double)m, t[0] * 1e3 / (double)m,
             t[1] * 1e3 / (double)m);
    rc = 0;
out:
    vl_vault_verify(c->von, true);
    free(got);
    return rc;
}

int bench_verify(const struct bench_opts *o)
{
    struct vf_ctx c;
    char dir[4096];
    int rc = -1;

    memset(&c, 0, sizeof(c));
    if (o->docs == NULL || o->data == NULL || o->policy == NULL || o->out == NULL) {
        fprintf(stderr, "bench: verify needs --docs, --data, --policy and --out\n");
        return -1;
    }
    c.o = o;
    if ((c.out = fopen(o->out, "a")) == NULL) {
        fprintf(stderr, "bench: verify: cannot write %s\n", o->out);
        return -1;
    }
    if (bench_set_load(o->docs, 1, &c.set) != 0 || facts(&c) != 0) {
        goto out;
    }
    if (c.set.n < 2 * VF_WARM || c.set.n < 100) {
        fprintf(stderr, "bench: verify: at least %d documents\n", 2 * VF_WARM);
        goto out;
    }
    if (mkdir(o->data, 0700) != 0) {
        fprintf(stderr, "bench: verify: cannot make %s (it must not exist)\n", o->data);
        goto out;
    }
    snprintf(dir, sizeof(dir), "%s/on", o->data);
    if (vault_setup(&c, dir, "bench", &c.von, &c.on, true) != 0) {
        goto out;
    }
    snprintf(dir, sizeof(dir), "%s/off", o->data);
    if (vault_setup(&c, dir, "bench", &c.voff, &c.off, true) != 0) {
        goto out;
    }
    vl_vault_verify(c.voff, false);
    progress("loading %zu documents into a verified and an unverified data directory, %zu a "
             "veil_bulk call, in turn",
             c.set.n, o->batch);
    if (load_both(&c) != 0 || sizes(&c) != 0) {
        goto out;
    }
    /* The selective query's small collection: a tenant of its own in the verified vault,
     * the first tenth of the documents. */
    c.nsmall = c.set.n / VF_SMALL_DIV;
    if (vault_setup(&c, NULL, "small", &c.von, &c.small, false) != 0) {
        goto out;
    }
    for (size_t i = 0; i < c.nsmall; i += o->batch) {
        size_t k = c.nsmall - i < o->batch ? c.nsmall - i : o->batch, len = 0;
        char *body = batch_body(&c.set, i, k, &len);
        double s = body != NULL ? bulk_once(c.small, body, len, k) : -1;
        free(body);
        if (s < 0) {
            goto out;
        }
    }
    emit(&c, "small_docs", (double)c.nsmall);
    emit(&c, "orgs", (double)c.norgs);
    emit(&c, "rounds", VF_ROUNDS);
    size_t win = 0;
    for (size_t j = 0; j < VF_WINDOWS; j++) {
        win += c.inwin[j];
    }
    emit(&c, "window_docs", (double)win / VF_WINDOWS);
    emit_s(&c, "window_lo", c.lo[VF_WINDOWS / 2]);
    emit_s(&c, "window_hi", c.hi[VF_WINDOWS / 2]);

    size_t m = o->queries;
    size_t mall = m / 10 > c.norgs ? m / 10 : c.norgs; /* every org at least once */
    for (int k = 0; k < Q_KINDS; k++) {
        if (queries(&c, (enum vf_kind)k, k == Q_EQ_ALL ? mall : m) != 0) {
            goto out;
        }
    }
    /* writes are noisier than reads (each is two durable transactions): five times as many */
    size_t mw = 5 * m < c.set.n - VF_WARM ? 5 * m : c.set.n - VF_WARM;
    if (writes(&c, "put_new", true, mw) != 0 || writes(&c, "put_replace", false, mw) != 0) {
        goto out;
    }
    rc = 0;
out:
    veil_session_free(c.small);
    veil_session_free(c.on);
    veil_session_free(c.off);
    veil_vault_close(c.von);
    veil_vault_close(c.voff);
    free(c.orgs);
    free(c.org_count);
    free(c.date);
    free(c.inv);
    bench_set_free(&c.set);
    fclose(c.out);
    return rc;
}
