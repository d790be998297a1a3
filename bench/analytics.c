/*
 * analytics.c: `bench_core analytics`, the analytics benchmark: SUM(amount) GROUP BY org,
 * alone and with a ~1% date-range filter, computed
 *   (a) in plaintext by SQLite over a plain table,
 *   (b) through libveil with ASHE sums (the invoices policy as is), over the same rows,
 *   (c) through libveil with Paillier sums (`sum: {scheme: paillier, bits: 2048}`) over the
 *       first --paillier-rows rows, next to plaintext over the same subset,
 * plus the load rate of each, all in this one process (no HTTP), so that the figures are
 * about the cryptography and the store.
 *
 * Every veil answer is checked against the plaintext answer: the same groups, each sum
 * exactly, as decimal text. A mismatch fails the run. Aggregates run in the tenant's admin
 * session: the invoices policy's analyst role may not filter on issued_on.
 *
 * To explain the gap of the unfiltered ASHE aggregate, three more timings over the same
 * store file: the store driver's own aggregate call (src/store, through its internal
 * interface store.h, with the columns that "explain": true names), and a bare SQL SUM of
 * the ASHE limbs joined to the group tokens on the opaque tables (what grouping over opaque
 * side tables costs before any run bookkeeping). veil_aggregate minus the store call is
 * the proxy's share: group-key decryption, key-stream removal over the runs, JSON.
 *
 * Differential privacy, on the same invoices policy, whose analyst role is answered under
 * it: the cost of noise (count, sum and average by org, an analyst's new answer against the
 * admin's exact one, and the kept answer of a repeat), and the error the noise makes by
 * group size (a tenant of its own with one organisation per size, --dp-reps new answers,
 * relative errors and how often a group is not shown). Private answers are never compared
 * with plaintext (noise makes them anything): only their form is checked, that their groups
 * are real groups, and that a repeat gets exactly the kept answer.
 *
 * Results go to --out as "an KEY VALUE" lines; `bench_core report` turns them into rows.
 * Progress goes to stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <sqlite3.h>
#include <veil/veil.h>

#include "bench.h"
#include "engine/engine.h"
#include "store/store.h"
#include "util/log.h"

#define AN_TENANT_ASHE "ashe"
#define AN_TENANT_PAILLIER "paillier"
#define AN_ORG_MAX 64
#define AN_DATE_MAX 16
#define AN_WINDOW_PERMILLE 10 /* the date filter selects ~1% of rows */

/* One line of the input: where it is in the file buffer. */
struct an_input {
    char *buf;
    size_t len;
    size_t *start; /* nlines + 1 offsets: line i is buf[start[i], start[i+1]) */
    size_t nlines;
};

/* A plaintext group: org, sum in cents, rows. */
struct an_group {
    char org[AN_ORG_MAX];
    long long cents;
    long long n;
};

struct an_answer {
    struct an_group *g;
    size_t n;
};

struct an_ctx {
    const struct bench_opts *o;
    FILE *out;
    struct an_input in;
    int min_group; /* groups under this many rows must be suppressed (0: none) */
    char lo[AN_DATE_MAX];
    char hi[AN_DATE_MAX];
    veil_vault *v;
};

#define progress(...) bench_say("analytics", __VA_ARGS__)

#define vfail(what, e, st) bench_vfail("analytics", what, e, st)

static int sqfail(sqlite3 *db, const char *what)
{
    fprintf(stderr, "bench: analytics: sqlite: %s: %s\n", what, sqlite3_errmsg(db));
    return -1;
}

static void emit(struct an_ctx *c, const char *key, double v)
{
    bench_emit(c->out, "", key, v);
}

static void emit_s(struct an_ctx *c, const char *key, const char *v)
{
    bench_emit_s(c->out, "", key, v);
}

/* Reads the first `max` non-empty lines of an NDJSON file (each ends with '\n'). */
static int input_load(const char *path, size_t max, struct an_input *in)
{
    memset(in, 0, sizeof(*in));
    in->buf = bench_slurp(path, &in->len);
    if (in->buf == NULL) {
        fprintf(stderr, "bench: analytics: cannot read %s\n", path);
        return -1;
    }
    if ((in->start = malloc((max + 1) * sizeof(size_t))) == NULL) {
        return -1;
    }
    size_t pos = 0;
    while (in->nlines < max && pos < in->len) {
        char *nl = memchr(in->buf + pos, '\n', in->len - pos);
        if (nl == NULL) {
            fprintf(stderr, "bench: analytics: %s: the last line has no newline\n", path);
            return -1;
        }
        in->start[in->nlines++] = pos;
        pos = (size_t)(nl - in->buf) + 1;
    }
    in->start[in->nlines] = pos;
    return 0;
}

/* "1234.5" with scale 2 -> 123450; strict: optional '-', digits, optional '.' and at
 * most two digits. 0 on success. */
static int parse_cents(const char *s, long long *out)
{
    int neg = 0, frac = 0;
    long long v = 0;
    const char *p = s;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    if (*p < '0' || *p > '9') {
        return -1;
    }
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (*p++ - '0');
    }
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9' && frac < 2) {
            v = v * 10 + (*p++ - '0');
            frac++;
        }
    }
    if (*p != '\0') {
        return -1;
    }
    for (; frac < 2; frac++) {
        v *= 10;
    }
    *out = neg ? -v : v;
    return 0;
}

static double median(double *t, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        for (size_t j = i; j > 0 && t[j - 1] > t[j]; j--) {
            double x = t[j];
            t[j] = t[j - 1];
            t[j - 1] = x;
        }
    }
    return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

static long long file_bytes(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long long)sb.st_size : 0;
}

/* ---- plaintext ---- */

static sqlite3 *plain_open(const char *path)
{
    sqlite3 *db = NULL;
    remove(path);
    if (sqlite3_open(path, &db) != SQLITE_OK ||
        sqlite3_exec(db,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                     "CREATE TABLE plain(id TEXT PRIMARY KEY, org TEXT NOT NULL,"
                     " issued_on TEXT NOT NULL, amount INTEGER NOT NULL, doc TEXT NOT NULL);"
                     "CREATE INDEX plain_org ON plain(org);"
                     "CREATE INDEX plain_issued ON plain(issued_on);",
                     NULL, NULL, NULL) != SQLITE_OK) {
        sqfail(db, "open");
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

/* Loads lines [0, n) in transactions of `batch`: each line is parsed (the application
 * has documents, not columns), its org_id, issued_on and amount (in cents) extracted, and
 * the row inserted with the document's text. Seconds, or -1. */
static double plain_load(const struct an_input *in, size_t n, size_t batch, sqlite3 *db)
{
    sqlite3_stmt *ins = NULL;
    double t0 = bench_now();
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO plain(id, org, issued_on, amount, doc) "
                           "VALUES(?1, ?2, ?3, ?4, ?5)",
                           -1, &ins, NULL) != SQLITE_OK) {
        return sqfail(db, "prepare");
    }
    for (size_t i = 0; i < n; i++) {
        if (i % batch == 0 && sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
            goto fail;
        }
        const char *line = in->buf + in->start[i];
        size_t len = in->start[i + 1] - in->start[i] - 1;
        json_error_t err;
        json_t *o = json_loadb(line, len, 0, &err);
        json_t *doc = json_object_get(o, "doc");
        const char *id = json_string_value(json_object_get(o, "id"));
        const char *org = json_string_value(json_object_get(doc, "org_id"));
        const char *day = json_string_value(json_object_get(doc, "issued_on"));
        const char *amount = json_string_value(json_object_get(doc, "amount"));
        long long cents = 0;
        /* the document's own text: {"id":..,"doc":{...}} minus the wrapper */
        const char *d = strstr(line, "\"doc\":");
        if (id == NULL || org == NULL || day == NULL || amount == NULL || d == NULL ||
            parse_cents(amount, &cents) != 0 || line[len - 1] != '}') {
            fprintf(stderr, "bench: analytics: line %zu lacks id, org_id, issued_on or amount\n",
                    i + 1);
            json_decref(o);
            goto fail_quiet;
        }
        d += 6;
        sqlite3_bind_text(ins, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(ins, 2, org, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(ins, 3, day, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(ins, 4, cents);
        sqlite3_bind_text(ins, 5, d, (int)(line + len - 1 - d), SQLITE_STATIC);
        int rc = sqlite3_step(ins);
        sqlite3_reset(ins);
        json_decref(o);
        if (rc != SQLITE_DONE) {
            goto fail;
        }
        if ((i % batch == batch - 1 || i == n - 1) &&
            sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
            goto fail;
        }
    }
    sqlite3_finalize(ins);
    return bench_now() - t0;
fail:
    sqfail(db, "load");
fail_quiet:
    sqlite3_finalize(ins);
    return -1;
}

/* Runs the plaintext aggregate (filtered when lo != NULL) once; fills *ans when not NULL.
 * Seconds, or -1. */
static double plain_agg(sqlite3 *db, const char *lo, const char *hi, struct an_answer *ans)
{
    sqlite3_stmt *q = NULL;
    const char *sql = lo != NULL ? "SELECT org, sum(amount), count(*) FROM plain"
                                   " WHERE issued_on >= ?1 AND issued_on < ?2"
                                   " GROUP BY org ORDER BY org"
                                 : "SELECT org, sum(amount), count(*) FROM plain"
                                   " GROUP BY org ORDER BY org";
    size_t cap = 0;
    double t0 = bench_now();
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK) {
        return sqfail(db, "prepare");
    }
    if (lo != NULL) {
        sqlite3_bind_text(q, 1, lo, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, hi, -1, SQLITE_STATIC);
    }
    int rc;
    long long groups = 0;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        groups++;
        if (ans == NULL) {
            continue;
        }
        if (ans->n == cap) {
            cap = cap ? 2 * cap : 1024;
            struct an_group *g = realloc(ans->g, cap * sizeof(*g));
            if (g == NULL) {
                sqlite3_finalize(q);
                return -1;
            }
            ans->g = g;
        }
        struct an_group *g = &ans->g[ans->n++];
        snprintf(g->org, sizeof(g->org), "%s", (const char *)sqlite3_column_text(q, 0));
        g->cents = sqlite3_column_int64(q, 1);
        g->n = sqlite3_column_int64(q, 2);
    }
    double secs = bench_now() - t0;
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE || groups == 0) {
        return groups == 0 ? (fprintf(stderr, "bench: analytics: no group\n"), -1)
                           : sqfail(db, "aggregate");
    }
    return secs;
}

/* The filter window: from the median issue day, whole days until ~1% of the rows. */
static int pick_window(struct an_ctx *c, sqlite3 *db, size_t nrows, long long *inwin)
{
    sqlite3_stmt *q = NULL;
    char (*day)[AN_DATE_MAX] = NULL;
    long long *cnt = NULL;
    size_t n = 0, cap = 0;
    int rc = -1;
    if (sqlite3_prepare_v2(db, "SELECT issued_on, count(*) FROM plain GROUP BY issued_on"
                               " ORDER BY issued_on",
                           -1, &q, NULL) != SQLITE_OK) {
        return sqfail(db, "days");
    }
    while (sqlite3_step(q) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? 2 * cap : 2048;
            void *a = realloc(day, cap * sizeof(*day));
            void *b = a != NULL ? realloc(cnt, cap * sizeof(*cnt)) : NULL;
            if (a != NULL) {
                day = a;
            }
            if (b == NULL) {
                goto out;
            }
            cnt = b;
        }
        snprintf(day[n], AN_DATE_MAX, "%s", (const char *)sqlite3_column_text(q, 0));
        cnt[n++] = sqlite3_column_int64(q, 1);
    }
    long long half = (long long)nrows / 2, want = ((long long)nrows * AN_WINDOW_PERMILLE + 999) / 1000;
    long long acc = 0;
    size_t first = 0;
    while (first < n && acc + cnt[first] < half) {
        acc += cnt[first++];
    }
    size_t last = first;
    acc = 0;
    while (last < n && acc < want) {
        acc += cnt[last++];
    }
    if (first >= n || last >= n) {
        fprintf(stderr, "bench: analytics: too few distinct issue days for a 1%% window\n");
        goto out;
    }
    snprintf(c->lo, sizeof(c->lo), "%s", day[first]);
    snprintf(c->hi, sizeof(c->hi), "%s", day[last]); /* exclusive */
    *inwin = acc;
    rc = 0;
out:
    sqlite3_finalize(q);
    free(day);
    free(cnt);
    return rc;
}

/* ---- veil ---- */

/* Loads lines [0, n) through veil_bulk, `batch` lines a call; every answer line must say
 * 200 or 201. Seconds, or -1. */
static double veil_load(const struct an_input *in, veil_session *s, size_t n, size_t batch,
                        const char *what)
{
    veil_status st;
    double t0 = bench_now(), tick = t0;
    for (size_t i = 0; i < n; i += batch) {
        size_t k = n - i < batch ? n - i : batch;
        char *out = NULL;
        const char *p = in->buf + in->start[i];
        size_t len = in->start[i + k] - in->start[i];
        veil_err e = veil_bulk(s, BENCH_COLL, p, len, &out, &st);
        if (e != VEIL_OK) {
            return vfail("bulk", e, &st);
        }
        size_t good = 0;
        for (const char *q = out; (q = strstr(q, "\"status\":")) != NULL;) {
            q += 9;
            good += strncmp(q, "200", 3) == 0 || strncmp(q, "201", 3) == 0;
        }
        if (good != k) {
            fprintf(stderr, "bench: analytics: bulk: %zu of %zu lines stored: %.300s\n", good, k,
                    out);
            veil_free(out);
            return -1;
        }
        veil_free(out);
        double now = bench_now();
        if (now - tick >= 30 || i + k == n) {
            progress("%s: %zu of %zu documents, %.0f docs/s so far", what, i + k, n,
                     (double)(i + k) / (now - t0));
            tick = now;
        }
    }
    return bench_now() - t0;
}

static char *agg_body(const char *lo, const char *hi, int explain)
{
    char *b = malloc(512);
    if (b == NULL) {
        return NULL;
    }
    char where[160] = "";
    if (lo != NULL) {
        snprintf(where, sizeof(where), "\"where\":{\"issued_on\":{\"gte\":\"%s\",\"lt\":\"%s\"}},",
                 lo, hi);
    }
    snprintf(b, 512, "{%s\"group_by\":[\"org_id\"],\"metrics\":{\"total\":{\"sum\":\"amount\"}}%s}",
             where, explain ? ",\"explain\":true" : "");
    return b;
}

static int cmp_group(const void *a, const void *b)
{
    return strcmp(((const struct an_group *)a)->org, ((const struct an_group *)b)->org);
}

/* Checks a veil answer against the plaintext groups (sorted by org). 0 when equal. */
static int verify(const struct an_ctx *c, const char *json, const struct an_answer *plain,
                  const char *what)
{
    json_error_t err;
    json_t *a = json_loads(json, 0, &err);
    json_t *groups = json_object_get(a, "groups");
    json_int_t suppressed = json_integer_value(json_object_get(a, "suppressed"));
    size_t i, present = 0, small = 0;
    json_t *g;
    int rc = -1;
    if (!json_is_array(groups)) {
        fprintf(stderr, "bench: analytics: %s: not an aggregate answer: %.300s\n", what, json);
        goto out;
    }
    for (size_t k = 0; k < plain->n; k++) {
        small += plain->g[k].n < c->min_group;
    }
    json_array_foreach(groups, i, g) {
        const char *org = json_string_value(json_object_get(json_object_get(g, "key"), "org_id"));
        const char *total = json_string_value(json_object_get(g, "total"));
        struct an_group key;
        long long cents = 0;
        if (org == NULL || total == NULL || parse_cents(total, &cents) != 0) {
            fprintf(stderr, "bench: analytics: %s: malformed group %zu\n", what, i);
            goto out;
        }
        snprintf(key.org, sizeof(key.org), "%s", org);
        const struct an_group *p = bsearch(&key, plain->g, plain->n, sizeof(key), cmp_group);
        if (p == NULL || p->cents != cents || p->n < c->min_group) {
            fprintf(stderr,
                    "bench: analytics: %s: MISMATCH for %s: veil says %s, plaintext %lld.%02lld "
                    "(%lld rows)\n",
                    what, org, total, p ? p->cents / 100 : 0, p ? llabs(p->cents % 100) : 0,
                    p ? p->n : 0);
            goto out;
        }
        present++;
    }
    if (present + small != plain->n || (size_t)suppressed != small) {
        fprintf(stderr,
                "bench: analytics: %s: MISMATCH: veil has %zu groups and %lld suppressed, "
                "plaintext %zu groups of which %zu below min_group_size %d\n",
                what, present, (long long)suppressed, plain->n, small, c->min_group);
        goto out;
    }
    rc = 0;
out:
    json_decref(a);
    return rc;
}

/* One veil_aggregate; the answer in *json (caller frees with veil_free). Seconds or -1. */
static double veil_agg(veil_session *s, const char *body, char **json)
{
    veil_status st;
    double t0 = bench_now();
    veil_err e = veil_aggregate(s, BENCH_COLL, body, strlen(body), json, &st);
    double secs = bench_now() - t0;
    return e == VEIL_OK ? secs : vfail("aggregate", e, &st);
}

/* What explain says: the opaque table, group and summed column ids, and the runs. */
struct an_explain {
    char table[VL_TABLE_NAME_MAX + 1];
    uint8_t gcol[VL_COL_BYTES];
    uint8_t scol[VL_COL_BYTES];
    long long runs;
    long long groups;
    long long toks; /* range tokens of the filter, or 0 */
};

static int unhex(const char *h, uint8_t *out, size_t n)
{
    if (h == NULL || strlen(h) != 2 * n) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned x;
        if (sscanf(h + 2 * i, "%2x", &x) != 1) {
            return -1;
        }
        out[i] = (uint8_t)x;
    }
    return 0;
}

static int explain_parse(const char *json, struct an_explain *x)
{
    json_error_t err;
    json_t *a = json_loads(json, 0, &err);
    json_t *ex = json_object_get(a, "explain");
    json_t *store = json_object_get(ex, "store");
    const char *table = json_string_value(json_object_get(store, "table"));
    const char *g = json_string_value(
        json_object_get(json_array_get(json_object_get(store, "group_by"), 0), "column"));
    const char *sc = json_string_value(
        json_object_get(json_array_get(json_object_get(store, "aggregated"), 0), "column"));
    int rc = -1;
    memset(x, 0, sizeof(*x));
    x->runs = -1;
    x->groups = (long long)json_array_size(json_object_get(a, "groups")) +
                json_integer_value(json_object_get(a, "suppressed"));
    size_t i;
    json_t *line;
    json_t *w0 = json_array_get(json_object_get(store, "where"), 0);
    x->toks = w0 != NULL ? (long long)json_integer_value(json_object_get(w0, "tokens")) : 0;
    json_array_foreach(json_object_get(ex, "proxy"), i, line) {
        const char *t = json_string_value(line);
        const char *p = t != NULL ? strstr(t, " over ") : NULL;
        if (p != NULL && strstr(t, "runs") != NULL) {
            x->runs = strtoll(p + 6, NULL, 10);
        }
    }
    if (table != NULL && strlen(table) <= VL_TABLE_NAME_MAX &&
        unhex(g, x->gcol, VL_COL_BYTES) == 0 && unhex(sc, x->scol, VL_COL_BYTES) == 0) {
        snprintf(x->table, sizeof(x->table), "%s", table);
        rc = 0;
    } else {
        fprintf(stderr, "bench: analytics: explain lacks the table or columns: %.400s\n", json);
    }
    json_decref(a);
    return rc;
}

/* Times `reps` runs of the plaintext and the veil aggregate (after one warm-up of each) and
 * checks every veil answer. Writes KEY_plain_s, KEY_veil_s (medians). */
static int agg_pair(struct an_ctx *c, sqlite3 *db, veil_session *s, const char *lo,
                    const char *hi, const char *key, struct an_explain *x)
{
    struct an_answer plain = {0};
    double tp[64], tv[64];
    size_t reps = c->o->reps < 64 ? c->o->reps : 64;
    char *body = agg_body(lo, hi, 0), *xbody = agg_body(lo, hi, 1);
    char *json = NULL;
    char name[64];
    int rc = -1;
    if (body == NULL || xbody == NULL || plain_agg(db, lo, hi, &plain) < 0) {
        goto out;
    }
    qsort(plain.g, plain.n, sizeof(*plain.g), cmp_group);
    for (size_t r = 0; r < reps; r++) {
        if ((tp[r] = plain_agg(db, lo, hi, NULL)) < 0) {
            goto out;
        }
    }
    /* explain once (untimed): the runs and the columns; this is also the warm-up */
    if (veil_agg(s, xbody, &json) < 0 || verify(c, json, &plain, key) != 0 ||
        explain_parse(json, x) != 0) {
        goto out;
    }
    veil_free(json);
    json = NULL;
    for (size_t r = 0; r < reps; r++) {
        if ((tv[r] = veil_agg(s, body, &json)) < 0 || verify(c, json, &plain, key) != 0) {
            goto out;
        }
        veil_free(json);
        json = NULL;
    }
    long long rows = 0;
    for (size_t k = 0; k < plain.n; k++) {
        rows += plain.g[k].n;
    }
    double mp = median(tp, reps), mv = median(tv, reps);
    snprintf(name, sizeof(name), "%s_plain_s", key);
    emit(c, name, mp);
    snprintf(name, sizeof(name), "%s_veil_s", key);
    emit(c, name, mv);
    snprintf(name, sizeof(name), "%s_rows", key);
    emit(c, name, (double)rows);
    snprintf(name, sizeof(name), "%s_groups", key);
    emit(c, name, (double)plain.n);
    snprintf(name, sizeof(name), "%s_runs", key);
    emit(c, name, (double)x->runs);
    snprintf(name, sizeof(name), "%s_tokens", key);
    emit(c, name, (double)x->toks);
    progress("%s: %lld rows in %zu groups, %lld runs: plaintext %.1f ms, veil %.1f ms "
             "(medians of %zu; every answer checked)",
             key, rows, plain.n, x->runs, mp * 1e3, mv * 1e3, reps);
    rc = 0;
out:
    veil_free(json);
    free(body);
    free(xbody);
    free(plain.g);
    return rc;
}

/* What verification costs an aggregate: one body timed with verification on and off
 * (vl_vault_verify) in turn, `reps` rounds after a warm-up of each, which one goes first
 * alternating; medians. The unverified answer must be the verified one, text for text.
 * Writes vagg_KEY_on_s and vagg_KEY_off_s. */
static int verify_cost1(struct an_ctx *c, veil_session *s, const char *key, const char *body)
{
    size_t reps = c->o->reps < 64 ? c->o->reps : 64;
    char *json[2] = {NULL, NULL}; /* [1]: verified */
    double t[2][64];
    char name[64];
    int rc = -1;
    for (size_t r = 0; r <= reps; r++) {
        for (int side = 0; side < 2; side++) {
            int on = (side == 0) == (r % 2 == 0);
            vl_vault_verify(c->v, on);
            veil_free(json[on]);
            json[on] = NULL;
            double secs = veil_agg(s, body, &json[on]);
            if (secs < 0) {
                goto out;
            }
            if (r > 0) {
                t[on][r - 1] = secs;
            }
        }
        if (strcmp(json[0], json[1]) != 0) {
            fprintf(stderr, "bench: analytics: %s: the verified answer differs from the "
                    "unverified one:\n  %.300s\n  %.300s\n", key, json[1], json[0]);
            goto out;
        }
    }
    double on = median(t[1], reps), off = median(t[0], reps);
    snprintf(name, sizeof(name), "vagg_%s_on_s", key);
    emit(c, name, on);
    snprintf(name, sizeof(name), "vagg_%s_off_s", key);
    emit(c, name, off);
    progress("verification, %s: verified %.1f ms, unverified %.1f ms (medians of %zu)", key,
             on * 1e3, off * 1e3, reps);
    rc = 0;
out:
    vl_vault_verify(c->v, true);
    veil_free(json[0]);
    veil_free(json[1]);
    return rc;
}

/* A selective query, invoice_no = one value, on and off in turn over this large collection
 * (the verify phase times it on two smaller ones): does its cost grow with the collection?
 * 100 queries a side a round, `reps` rounds after a warm-up round. Writes vsel_on_s,
 * vsel_off_s (totals) and vsel_n. */
static int verify_select(struct an_ctx *c, veil_session *s, size_t n)
{
    size_t reps = c->o->reps, per = 100;
    double t[2] = {0, 0};
    char body[160];
    veil_status st;
    int rc = -1;
    for (size_t r = 0; r <= reps; r++) {
        for (int side = 0; side < 2; side++) {
            int on = (side == 0) == (r % 2 == 0);
            vl_vault_verify(c->v, on);
            double t0 = bench_now();
            for (size_t i = 0; i < per; i++) {
                size_t d = ((r * per + i) * 7919u) % n;
                const char *line = c->in.buf + c->in.start[d];
                const char *p = strstr(line, "\"invoice_no\":\"");
                size_t len = p != NULL ? strcspn(p + 14, "\"") : 0;
                char *out = NULL;
                if (p == NULL || len > 64) {
                    fprintf(stderr, "bench: analytics: line %zu has no invoice_no\n", d);
                    goto out;
                }
                snprintf(body, sizeof(body), "{\"where\":{\"invoice_no\":\"%.*s\"},\"limit\":100}",
                         (int)len, p + 14);
                veil_err e = veil_query(s, BENCH_COLL, body, strlen(body), &out, &st);
                if (e != VEIL_OK) {
                    vfail("query", e, &st);
                    goto out;
                }
                int found = strstr(out, "{\"id\":") != NULL;
                veil_free(out);
                if (!found) {
                    fprintf(stderr, "bench: analytics: %s found nothing\n", body);
                    goto out;
                }
            }
            if (r > 0) {
                t[on] += bench_now() - t0;
            }
        }
    }
    emit(c, "vsel_on_s", t[1]);
    emit(c, "vsel_off_s", t[0]);
    emit(c, "vsel_n", (double)(reps * per));
    progress("verification, invoice_no = one value over %zu documents: verified %.3f ms, "
             "unverified %.3f ms a query", n, t[1] * 1e3 / (double)(reps * per),
             t[0] * 1e3 / (double)(reps * per));
    rc = 0;
out:
    vl_vault_verify(c->v, true);
    return rc;
}

/* The unfiltered sum by org (checked by margins), the same with the date filter (candidate
 * by candidate) and a count by status (margins). */
static int verify_cost(struct an_ctx *c, veil_session *s)
{
    char *all = agg_body(NULL, NULL, 0), *filter = agg_body(c->lo, c->hi, 0);
    int rc = -1;
    if (all != NULL && filter != NULL && verify_cost1(c, s, "all", all) == 0 &&
        verify_cost1(c, s, "filter", filter) == 0 &&
        verify_cost1(c, s, "status",
                     "{\"group_by\":[\"status\"],\"metrics\":{\"n\":{\"count\":\"*\"}}}") == 0) {
        rc = 0;
    }
    free(all);
    free(filter);
    return rc;
}

/* The unfiltered ASHE aggregate, taken apart: the store driver's aggregate call alone, and
 * a bare SUM of the limbs grouped by the tokens on the opaque tables. */
static int breakdown(struct an_ctx *c, veil_session *vs, const struct an_explain *x,
                     const char *key)
{
    double tv[64];
    char *body = agg_body(NULL, NULL, 0);
    if (body == NULL) {
        return -1;
    }
    struct vl_store *store = NULL;
    veil_status st;
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    double ts[64], tq[64];
    size_t reps = c->o->reps < 64 ? c->o->reps : 64;
    char path[4096], sql[512], name[64];
    int rc = -1;
    veil_err e = vl_store_open("sqlite:cloud/cloud.db", c->o->data, &store, &st);
    if (e != VEIL_OK) {
        free(body);
        return vfail("store open", e, &st);
    }
    const uint8_t(*gcols)[VL_COL_BYTES] = &x->gcol;
    struct vl_agg_col col;
    memset(&col, 0, sizeof(col));
    memcpy(col.col, x->scol, VL_COL_BYTES);
    struct vl_pred pred = {NULL, 0};
    struct vl_agg_request req = {&pred, gcols, 1, &col, 1};
    long long runs = 0, groups = 0, qgroups = 0;
    snprintf(path, sizeof(path), "%s/cloud/cloud.db", c->o->data);
    snprintf(sql, sizeof(sql),
             "SELECT g.tok, count(*), sum(s.l0), sum(s.l1), sum(s.l2), sum(s.l3)"
             " FROM \"s_%s\" s JOIN \"y_%s\" g ON g.seq = s.seq AND g.col = ?1"
             " WHERE s.col = ?2 GROUP BY g.tok",
             x->table, x->table);
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK) {
        sqfail(db, "opaque tables");
        goto out;
    }
    /* The three timings interleaved, so that other work on the machine weighs on each
     * alike; r == 0 is a warm-up. */
    for (size_t r = 0; r <= reps; r++) {
        char *json = NULL;
        double tv0 = veil_agg(vs, body, &json);
        veil_free(json);
        if (tv0 < 0) {
            goto out;
        }
        if (r > 0) {
            tv[r - 1] = tv0;
        }
        struct vl_agg_result res;
        memset(&res, 0, sizeof(res));
        double t0 = bench_now();
        e = store->ops->aggregate(store, x->table, &req, &res);
        double t = bench_now() - t0;
        if (e != VEIL_OK) {
            fprintf(stderr, "bench: analytics: store aggregate: %s\n", veil_err_name(e));
            goto out;
        }
        runs = 0;
        groups = (long long)res.n;
        for (size_t g = 0; g < res.n; g++) {
            runs += (long long)res.groups[g].values[0].nruns;
        }
        vl_agg_result_free(&res);
        if (r > 0) {
            ts[r - 1] = t;
        }
        sqlite3_reset(q);
        sqlite3_bind_blob(q, 1, x->gcol, VL_COL_BYTES, SQLITE_STATIC);
        sqlite3_bind_blob(q, 2, x->scol, VL_COL_BYTES, SQLITE_STATIC);
        t0 = bench_now();
        int src;
        qgroups = 0;
        while ((src = sqlite3_step(q)) == SQLITE_ROW) {
            qgroups++;
        }
        t = bench_now() - t0;
        if (src != SQLITE_DONE) {
            sqfail(db, "opaque sum");
            goto out;
        }
        if (r > 0) {
            tq[r - 1] = t;
        }
    }
    double mv = median(tv, reps), ms = median(ts, reps), mq = median(tq, reps);
    snprintf(name, sizeof(name), "%s_split_veil_s", key);
    emit(c, name, mv);
    snprintf(name, sizeof(name), "%s_store_s", key);
    emit(c, name, ms);
    snprintf(name, sizeof(name), "%s_store_runs", key);
    emit(c, name, (double)runs);
    snprintf(name, sizeof(name), "%s_opaque_sum_s", key);
    emit(c, name, mq);
    progress("%s breakdown (interleaved medians): veil_aggregate %.1f ms; the store's aggregate "
             "call %.1f ms (%lld groups, %lld runs); bare SUM of limbs grouped by token on the "
             "opaque tables %.1f ms (%lld groups)",
             key, mv * 1e3, ms * 1e3, groups, runs, mq * 1e3, qgroups);
    rc = 0;
out:
    sqlite3_finalize(q);
    sqlite3_close(db);
    vl_store_close(store);
    free(body);
    return rc;
}

/* ---- differential privacy: what the noise costs, and how far it moves an answer ---- */

/* The policy's analyst role is answered under differential privacy (the defaults: epsilon 1
 * an answer, split over the noisy quantities of the query). */
#define AN_TENANT_DP "dperror"
#define AN_DP_ROLE "analyst"
#define AN_DP_METRICS                                                                      \
    "{\"group_by\":[\"org_id\"],\"metrics\":{\"total\":{\"sum\":\"amount\"},"              \
    "\"n\":{\"count\":\"*\"},\"mean\":{\"avg\":\"amount\"}}"
static const char an_dp_body[] = AN_DP_METRICS "}";
static const char an_dp_refresh[] = AN_DP_METRICS ",\"refresh\":true}";
static const char an_dp_reset[] = "{\"role\":\"" AN_DP_ROLE "\"}";
/* The group sizes of the error table, one organisation each. */
static const size_t an_dp_sizes[] = {50, 100, 250, 500, 1000, 5000};
#define AN_DP_NSIZES (sizeof(an_dp_sizes) / sizeof(an_dp_sizes[0]))
#define AN_DP_NMETRICS 3 /* n, total, mean */
static const char *const an_dp_metric[AN_DP_NMETRICS] = {"n", "total", "mean"};

static double dabs(double x)
{
    return x < 0 ? -x : x;
}

/* The role's spending of the current period back to 0 (admin session), so that every
 * answer asked for can be a new one. Seconds, or -1. */
static double dp_reset(veil_session *admin)
{
    veil_status st;
    char *out = NULL;
    double t0 = bench_now();
    veil_err e =
        veil_privacy_reset(admin, BENCH_COLL, an_dp_reset, strlen(an_dp_reset), &out, &st);
    double secs = bench_now() - t0;
    veil_free(out);
    return e == VEIL_OK ? secs : vfail("privacy reset", e, &st);
}

/* Checks an exact answer of the three metrics (admin session) against plaintext: the same
 * groups in key order, each count and sum exactly, each mean to within its printed
 * precision. 0 when equal. */
static int verify3(const char *json, const struct an_answer *plain, const char *what)
{
    json_error_t err;
    json_t *a = json_loads(json, 0, &err);
    json_t *groups = json_object_get(a, "groups");
    size_t i;
    json_t *g;
    int rc = -1;
    if (!json_is_array(groups) || json_array_size(groups) != plain->n) {
        fprintf(stderr, "bench: analytics: %s: %zu groups, plaintext has %zu: %.300s\n", what,
                json_array_size(groups), plain->n, json);
        goto out;
    }
    json_array_foreach(groups, i, g) {
        const struct an_group *p = &plain->g[i];
        const char *org = json_string_value(json_object_get(json_object_get(g, "key"), "org_id"));
        const char *total = json_string_value(json_object_get(g, "total"));
        json_t *n = json_object_get(g, "n"), *mean = json_object_get(g, "mean");
        long long cents = 0;
        if (org == NULL || total == NULL || !json_is_integer(n) || !json_is_number(mean) ||
            parse_cents(total, &cents) != 0) {
            fprintf(stderr, "bench: analytics: %s: malformed group %zu\n", what, i);
            goto out;
        }
        double exact = (double)p->cents / 100.0 / (double)p->n;
        if (strcmp(org, p->org) != 0 || cents != p->cents || json_integer_value(n) != p->n ||
            dabs(json_number_value(mean) - exact) > 0.001) {
            fprintf(stderr,
                    "bench: analytics: %s: MISMATCH for %s: veil says n %lld, total %s, mean "
                    "%.4f; plaintext %s: n %lld, total %lld.%02lld, mean %.4f\n",
                    what, org, (long long)json_integer_value(n), total,
                    json_number_value(mean), p->org, p->n, p->cents / 100,
                    llabs(p->cents % 100), exact);
            goto out;
        }
    }
    rc = 0;
out:
    json_decref(a);
    return rc;
}

/* Checks that an answer under differential privacy is well-formed, without looking at its
 * values (noise makes them anything): groups in key order, each keyed by exactly one org_id
 * among plaintext's (so each at most once), an integer count >= 0, a total as decimal text,
 * a mean that is a number or null; "suppressed" null; privacy.cached as expected. The
 * parsed answer (the caller decrefs it), or NULL. */
static json_t *dp_check(const char *json, const struct an_answer *plain, int cached,
                        const char *what)
{
    json_error_t err;
    json_t *a = json_loads(json, 0, &err);
    json_t *groups = json_object_get(a, "groups");
    json_t *priv = json_object_get(a, "privacy");
    json_t *sup = json_object_get(a, "suppressed");
    const char *prev = "";
    size_t i;
    json_t *g;
    if (!json_is_array(groups) || !json_is_null(sup) || !json_is_object(priv) ||
        !json_is_boolean(json_object_get(priv, "cached")) ||
        json_is_true(json_object_get(priv, "cached")) != cached) {
        fprintf(stderr, "bench: analytics: %s: not a%s private answer: %.400s\n", what,
                cached ? " kept" : " new", json);
        goto fail;
    }
    json_array_foreach(groups, i, g) {
        json_t *key = json_object_get(g, "key");
        const char *org = json_string_value(json_object_get(key, "org_id"));
        const char *total = json_string_value(json_object_get(g, "total"));
        json_t *n = json_object_get(g, "n"), *mean = json_object_get(g, "mean");
        long long cents = 0;
        struct an_group k;
        if (org == NULL || json_object_size(key) != 1 || total == NULL ||
            parse_cents(total, &cents) != 0 || !json_is_integer(n) ||
            json_integer_value(n) < 0 || !(json_is_number(mean) || json_is_null(mean)) ||
            json_object_size(g) != 4) {
            fprintf(stderr, "bench: analytics: %s: malformed group %zu: %.300s\n", what, i,
                    json);
            goto fail;
        }
        snprintf(k.org, sizeof(k.org), "%s", org);
        if (strcmp(prev, org) >= 0 ||
            bsearch(&k, plain->g, plain->n, sizeof(k), cmp_group) == NULL) {
            fprintf(stderr, "bench: analytics: %s: group %s is not a plaintext group, or is "
                            "repeated or out of order\n",
                    what, org);
            goto fail;
        }
        prev = org;
    }
    return a;
fail:
    json_decref(a);
    return NULL;
}

/* A number of the answer's privacy object, by path ("noise", "n", "scale"), or -1. */
static double priv_num(json_t *a, const char *k1, const char *k2, const char *k3)
{
    json_t *x = json_object_get(json_object_get(a, "privacy"), k1);
    if (k2 != NULL) {
        x = json_object_get(x, k2);
    }
    if (k3 != NULL) {
        x = json_object_get(x, k3);
    }
    return json_is_number(x) ? json_number_value(x) : -1;
}

/* The cost of noise, on the tenant the unfiltered ASHE aggregate ran on: count, sum and
 * average by org, timed in the admin session (exact) and in an analyst session with
 * "refresh": true (a new noisy answer each time, the budget reset before it, untimed), and
 * the same query asked again without refresh (the kept answer), interleaved; r == 0 is a
 * warm-up. Every exact answer is checked against plaintext; every private one for its form,
 * and each kept one must equal the answer it keeps. */
static int dp_cost(struct an_ctx *c, sqlite3 *db, const char *tenant, veil_session *admin)
{
    struct an_answer plain = {0};
    veil_session *an = NULL;
    veil_status st;
    veil_err e;
    double te[64], tn[64], tk[64], tr[64], shown = 0;
    size_t reps = c->o->reps < 64 ? c->o->reps : 64;
    json_t *fresh = NULL, *kept = NULL;
    char *json = NULL;
    int rc = -1;
    double t0 = bench_now();
    if (plain_agg(db, NULL, NULL, &plain) < 0) {
        goto out;
    }
    qsort(plain.g, plain.n, sizeof(*plain.g), cmp_group);
    if ((e = veil_session_open(c->v, tenant, AN_DP_ROLE, &an, &st)) != VEIL_OK) {
        vfail("analyst session", e, &st);
        goto out;
    }
    long long rows = 0;
    for (size_t k = 0; k < plain.n; k++) {
        rows += plain.g[k].n;
    }
    for (size_t r = 0; r <= reps; r++) {
        double t_ex = veil_agg(admin, an_dp_body, &json);
        if (t_ex < 0 || verify3(json, &plain, "exact count, sum and mean") != 0) {
            goto out;
        }
        veil_free(json);
        json = NULL;
        double t_re = dp_reset(admin);
        double t_dp = t_re >= 0 ? veil_agg(an, an_dp_refresh, &json) : -1;
        if (t_dp < 0 || (fresh = dp_check(json, &plain, 0, "private answer")) == NULL) {
            goto out;
        }
        veil_free(json);
        json = NULL;
        double t_kp = veil_agg(an, an_dp_body, &json);
        if (t_kp < 0 || (kept = dp_check(json, &plain, 1, "kept private answer")) == NULL) {
            goto out;
        }
        veil_free(json);
        json = NULL;
        if (!json_equal(json_object_get(fresh, "groups"), json_object_get(kept, "groups"))) {
            fprintf(stderr, "bench: analytics: the kept answer differs from the answer it "
                            "keeps\n");
            goto out;
        }
        if (r == 0) {
            emit(c, "dp_threshold", priv_num(fresh, "threshold", NULL, NULL));
            emit(c, "dp_epsilon", priv_num(fresh, "epsilon", NULL, NULL));
            for (size_t m = 0; m < AN_DP_NMETRICS; m++) {
                char k[48];
                snprintf(k, sizeof(k), "dp_scale_%s", an_dp_metric[m]);
                emit(c, k, priv_num(fresh, "noise", an_dp_metric[m], "scale"));
                snprintf(k, sizeof(k), "dp_err95_%s", an_dp_metric[m]);
                emit(c, k, priv_num(fresh, "noise", an_dp_metric[m], "error95"));
            }
        } else {
            te[r - 1] = t_ex;
            tn[r - 1] = t_dp;
            tk[r - 1] = t_kp;
            tr[r - 1] = t_re;
            shown += (double)json_array_size(json_object_get(fresh, "groups"));
        }
        json_decref(fresh);
        json_decref(kept);
        fresh = kept = NULL;
    }
    double me = median(te, reps), mn = median(tn, reps), mk = median(tk, reps);
    double mr = median(tr, reps);
    emit(c, "dp_exact_s", me);
    emit(c, "dp_noisy_s", mn);
    emit(c, "dp_kept_s", mk);
    emit(c, "dp_reset_s", mr);
    emit(c, "dp_rows", (double)rows);
    emit(c, "dp_groups", (double)plain.n);
    emit(c, "dp_shown", shown / (double)reps);
    emit(c, "dp_cost_secs", bench_now() - t0);
    progress("count, sum and mean by org over %lld rows in %zu groups: exact (admin) %.1f ms, "
             "private (analyst, refresh) %.1f ms with %.1f groups shown on average, kept "
             "answer %.1f ms, budget reset %.2f ms (medians of %zu, interleaved)",
             rows, plain.n, me * 1e3, mn * 1e3, shown / (double)reps, mk * 1e3, mr * 1e3,
             reps);
    rc = 0;
out:
    veil_free(json);
    json_decref(fresh);
    json_decref(kept);
    veil_session_free(an);
    free(plain.g);
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile of t[0..n) (sorted in place), nearest rank; -1 when n == 0. */
static double quantile(double *t, size_t n, double q)
{
    if (n == 0) {
        return -1;
    }
    qsort(t, n, sizeof(*t), cmp_double);
    size_t rank = (size_t)(q * (double)n + 0.999999);
    return t[rank > 0 ? rank - 1 : 0];
}

/* The error table's documents: the analytics input's invoices (again from the first when
 * there are fewer), each given a new id and the org_id of its size's group
 * ("SIZE-00050", ...). The exact count and sum of each group into *plain. 0 or -1. */
static int dp_docs(const struct an_ctx *c, struct an_input *in, struct an_answer *plain)
{
    size_t total = 0, cap = 1 << 20, at = 0;
    for (size_t k = 0; k < AN_DP_NSIZES; k++) {
        total += an_dp_sizes[k];
    }
    memset(in, 0, sizeof(*in));
    if ((in->buf = malloc(cap)) == NULL ||
        (in->start = malloc((total + 1) * sizeof(size_t))) == NULL ||
        (plain->g = calloc(AN_DP_NSIZES, sizeof(*plain->g))) == NULL) {
        return -1;
    }
    plain->n = AN_DP_NSIZES;
    for (size_t k = 0, i = 0; k < AN_DP_NSIZES; k++) {
        struct an_group *g = &plain->g[k];
        snprintf(g->org, sizeof(g->org), "SIZE-%05zu", an_dp_sizes[k]);
        for (size_t j = 0; j < an_dp_sizes[k]; j++, i++) {
            size_t src = i % c->in.nlines;
            const char *line = c->in.buf + c->in.start[src];
            size_t len = c->in.start[src + 1] - c->in.start[src] - 1;
            json_error_t err;
            json_t *o = json_loadb(line, len, 0, &err);
            json_t *doc = json_object_get(o, "doc");
            const char *amount = json_string_value(json_object_get(doc, "amount"));
            long long cents = 0;
            char id[32];
            char *text = NULL;
            snprintf(id, sizeof(id), "DP-%06zu", i + 1);
            if (amount == NULL || parse_cents(amount, &cents) != 0 ||
                json_object_set_new(o, "id", json_string(id)) != 0 ||
                json_object_set_new(doc, "org_id", json_string(g->org)) != 0 ||
                (text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER)) == NULL) {
                fprintf(stderr, "bench: analytics: line %zu has no amount\n", src + 1);
                json_decref(o);
                return -1;
            }
            json_decref(o);
            size_t tl = strlen(text);
            if (at + tl + 1 > cap) {
                char *nb = realloc(in->buf, 2 * cap + tl);
                if (nb == NULL) {
                    free(text);
                    return -1;
                }
                in->buf = nb;
                cap = 2 * cap + tl;
            }
            in->start[in->nlines++] = at;
            memcpy(in->buf + at, text, tl);
            in->buf[at + tl] = '\n';
            at += tl + 1;
            free(text);
            g->cents += cents;
            g->n++;
        }
    }
    in->start[in->nlines] = at;
    in->len = at;
    return 0;
}

/* The error table: in a tenant of its own, one organisation per group size, then
 * --dp-reps new private answers of count, sum and mean by org (budget reset before each),
 * each value's relative error |noisy - exact| / |exact| for the groups shown, and how often
 * each group was not shown at all. */
static int dp_error(struct an_ctx *c)
{
    struct an_input in;
    struct an_answer plain = {0};
    veil_session *admin = NULL, *clerk = NULL, *an = NULL;
    veil_status st;
    veil_err e;
    size_t reps = c->o->dpreps, plen = 0;
    double *err = NULL;
    size_t nerr[AN_DP_NSIZES][AN_DP_NMETRICS], shown[AN_DP_NSIZES], nulls[AN_DP_NSIZES];
    char *policy = NULL, *json = NULL;
    json_t *a = NULL;
    int created = 0, rc = -1;
    memset(&in, 0, sizeof(in));
    memset(nerr, 0, sizeof(nerr));
    memset(shown, 0, sizeof(shown));
    memset(nulls, 0, sizeof(nulls));
    double t0 = bench_now();
    if (dp_docs(c, &in, &plain) != 0 ||
        (err = malloc(AN_DP_NSIZES * AN_DP_NMETRICS * reps * sizeof(*err))) == NULL) {
        fprintf(stderr, "bench: analytics: the error table's documents could not be made\n");
        goto out;
    }
    if ((policy = bench_slurp(c->o->policy, &plen)) == NULL) {
        fprintf(stderr, "bench: analytics: cannot read %s\n", c->o->policy);
        goto out;
    }
    if ((e = veil_tenant_create(c->v, AN_TENANT_DP, &st)) != VEIL_OK ||
        (e = veil_session_open(c->v, AN_TENANT_DP, "admin", &admin, &st)) != VEIL_OK ||
        (e = veil_collection_apply(admin, BENCH_COLL, policy, plen, &created, &st)) != VEIL_OK ||
        (e = veil_session_open(c->v, AN_TENANT_DP, "clerk", &clerk, &st)) != VEIL_OK ||
        (e = veil_session_open(c->v, AN_TENANT_DP, AN_DP_ROLE, &an, &st)) != VEIL_OK) {
        vfail("error table set-up", e, &st);
        goto out;
    }
    progress("privacy error table: %zu invoices in groups of %zu to %zu, %zu private answers",
             in.nlines, an_dp_sizes[0], an_dp_sizes[AN_DP_NSIZES - 1], reps);
    if (veil_load(&in, clerk, in.nlines, c->o->batch, "privacy error table") < 0) {
        goto out;
    }
    if (veil_agg(admin, an_dp_body, &json) < 0 ||
        verify3(json, &plain, "error table, exact") != 0) {
        goto out;
    }
    double tick = bench_now();
    for (size_t r = 0; r < reps; r++) {
        veil_free(json);
        json = NULL;
        if (dp_reset(admin) < 0 || veil_agg(an, an_dp_refresh, &json) < 0 ||
            (a = dp_check(json, &plain, 0, "error table, private answer")) == NULL) {
            goto out;
        }
        if (r == 0) {
            emit(c, "dp_err_threshold", priv_num(a, "threshold", NULL, NULL));
        }
        size_t i;
        json_t *g;
        json_array_foreach(json_object_get(a, "groups"), i, g) {
            struct an_group key;
            snprintf(key.org, sizeof(key.org), "%s",
                     json_string_value(json_object_get(json_object_get(g, "key"), "org_id")));
            const struct an_group *p = bsearch(&key, plain.g, plain.n, sizeof(key), cmp_group);
            size_t k = (size_t)(p - plain.g);
            long long cents = 0;
            parse_cents(json_string_value(json_object_get(g, "total")), &cents); /* checked */
            double exact[AN_DP_NMETRICS] = {(double)p->n, (double)p->cents,
                                            (double)p->cents / 100.0 / (double)p->n};
            double noisy[AN_DP_NMETRICS] = {(double)json_integer_value(json_object_get(g, "n")),
                                            (double)cents,
                                            json_number_value(json_object_get(g, "mean"))};
            shown[k]++;
            for (size_t m = 0; m < AN_DP_NMETRICS; m++) {
                if (m == 2 && json_is_null(json_object_get(g, "mean"))) {
                    nulls[k]++; /* no value counted: no mean to compare */
                    continue;
                }
                err[(k * AN_DP_NMETRICS + m) * reps + nerr[k][m]++] =
                    dabs(noisy[m] - exact[m]) / dabs(exact[m]);
            }
        }
        json_decref(a);
        a = NULL;
        double now = bench_now();
        if (now - tick >= 30) {
            progress("privacy error table: %zu of %zu answers", r + 1, reps);
            tick = now;
        }
    }
    emit(c, "dp_err_reps", (double)reps);
    emit(c, "dp_err_docs", (double)in.nlines);
    for (size_t k = 0; k < AN_DP_NSIZES; k++) {
        char key[48];
        size_t z = an_dp_sizes[k];
        snprintf(key, sizeof(key), "dp_err_%zu_shown", z);
        emit(c, key, (double)shown[k]);
        snprintf(key, sizeof(key), "dp_err_%zu_nullmean", z);
        emit(c, key, (double)nulls[k]);
        snprintf(key, sizeof(key), "dp_err_%zu_mean_exact", z);
        emit(c, key, (double)plain.g[k].cents / 100.0 / (double)plain.g[k].n);
        for (size_t m = 0; m < AN_DP_NMETRICS; m++) {
            double *t = err + (k * AN_DP_NMETRICS + m) * reps;
            double med = quantile(t, nerr[k][m], 0.5), p95 = quantile(t, nerr[k][m], 0.95);
            snprintf(key, sizeof(key), "dp_err_%zu_%s_med", z, an_dp_metric[m]);
            emit(c, key, med);
            snprintf(key, sizeof(key), "dp_err_%zu_%s_p95", z, an_dp_metric[m]);
            emit(c, key, p95);
        }
        progress("privacy error, %zu documents: not shown %zu of %zu; relative error median / "
                 "p95: count %.2f%% / %.2f%%, sum %.2f%% / %.2f%%, mean %.2f%% / %.2f%%",
                 z, reps - shown[k], reps,
                 100 * quantile(err + (k * AN_DP_NMETRICS) * reps, nerr[k][0], 0.5),
                 100 * quantile(err + (k * AN_DP_NMETRICS) * reps, nerr[k][0], 0.95),
                 100 * quantile(err + (k * AN_DP_NMETRICS + 1) * reps, nerr[k][1], 0.5),
                 100 * quantile(err + (k * AN_DP_NMETRICS + 1) * reps, nerr[k][1], 0.95),
                 100 * quantile(err + (k * AN_DP_NMETRICS + 2) * reps, nerr[k][2], 0.5),
                 100 * quantile(err + (k * AN_DP_NMETRICS + 2) * reps, nerr[k][2], 0.95));
    }
    emit(c, "dp_err_secs", bench_now() - t0);
    rc = 0;
out:
    json_decref(a);
    veil_free(json);
    veil_session_free(an);
    veil_session_free(clerk);
    veil_session_free(admin);
    free(policy);
    free(err);
    free(plain.g);
    free(in.buf);
    free(in.start);
    return rc;
}

static int tenant_setup(struct an_ctx *c, const char *tenant, const char *policy_path,
                        veil_session **clerk, veil_session **agg)
{
    veil_status st;
    veil_session *admin = NULL;
    size_t plen = 0;
    int created = 0;
    char *policy = bench_slurp(policy_path, &plen);
    veil_err e;
    int rc = -1;
    if (policy == NULL) {
        fprintf(stderr, "bench: analytics: cannot read %s\n", policy_path);
        return -1;
    }
    if ((e = veil_tenant_create(c->v, tenant, &st)) != VEIL_OK ||
        (e = veil_session_open(c->v, tenant, "admin", &admin, &st)) != VEIL_OK ||
        (e = veil_collection_apply(admin, BENCH_COLL, policy, plen, &created, &st)) != VEIL_OK ||
        (e = veil_session_open(c->v, tenant, "clerk", clerk, &st)) != VEIL_OK) {
        vfail("set-up", e, &st);
        goto out;
    }
    /* Aggregates run in the admin session: the policy's analyst role may not filter on
     * issued_on (it may only read nothing, group by org_id and status, sum amount). */
    *agg = admin;
    admin = NULL;
    rc = 0;
out:
    veil_session_free(admin);
    free(policy);
    return rc;
}

/* One scheme: plaintext and veil loads of the first n lines, then both aggregates. */
static int scheme(struct an_ctx *c, const char *tenant, const char *policy, size_t n,
                  const char *pfx, const char *plain_db)
{
    veil_session *clerk = NULL, *agg = NULL;
    sqlite3 *db = NULL;
    struct an_explain x;
    char key[64];
    int rc = -1;

    progress("%s: plaintext load of %zu documents into %s", pfx, n, plain_db);
    if ((db = plain_open(plain_db)) == NULL) {
        goto out;
    }
    double pl = plain_load(&c->in, n, c->o->batch, db);
    if (pl < 0) {
        goto out;
    }
    progress("%s: plaintext load %.1f s, %.0f docs/s", pfx, pl, (double)n / pl);
    if (tenant_setup(c, tenant, policy, &clerk, &agg) != 0) {
        goto out;
    }
    double vl = veil_load(&c->in, clerk, n, c->o->batch, pfx);
    if (vl < 0) {
        goto out;
    }
    snprintf(key, sizeof(key), "%s_load_plain_s", pfx);
    emit(c, key, pl);
    snprintf(key, sizeof(key), "%s_load_veil_s", pfx);
    emit(c, key, vl);
    snprintf(key, sizeof(key), "%s_docs", pfx);
    emit(c, key, (double)n);
    if (c->lo[0] == '\0') {
        long long inwin = 0;
        if (pick_window(c, db, n, &inwin) != 0) {
            goto out;
        }
        emit_s(c, "window_lo", c->lo);
        emit_s(c, "window_hi", c->hi);
        progress("date filter: issued_on >= %s and < %s (%lld of %zu rows)", c->lo, c->hi,
                 inwin, n);
    }
    snprintf(key, sizeof(key), "%s_all", pfx);
    if (agg_pair(c, db, agg, NULL, NULL, key, &x) != 0) {
        goto out;
    }
    if (strcmp(pfx, "ashe") == 0 && breakdown(c, agg, &x, key) != 0) {
        goto out;
    }
    snprintf(key, sizeof(key), "%s_filter", pfx);
    if (agg_pair(c, db, agg, c->lo, c->hi, key, &x) != 0) {
        goto out;
    }
    if (strcmp(pfx, "ashe") == 0 && (verify_cost(c, agg) != 0 || verify_select(c, agg, n) != 0)) {
        goto out;
    }
    if (strcmp(pfx, "ashe") == 0) {
        /* libveil logs every budget reset (info): a line for each timed answer here */
        vl_log_set_level(VL_LOG_WARN);
        int dprc = dp_cost(c, db, tenant, agg);
        vl_log_set_level(VL_LOG_INFO);
        if (dprc != 0) {
            goto out;
        }
    }
    rc = 0;
out:
    veil_session_free(agg);
    veil_session_free(clerk);
    sqlite3_close(db);
    return rc;
}

int bench_analytics(const struct bench_opts *o)
{
    struct an_ctx c;
    veil_status st;
    veil_init_options io;
    veil_err e;
    int rc = -1;
    char path[4096];

    memset(&c, 0, sizeof(c));
    memset(&io, 0, sizeof(io));
    if (o->docs == NULL || o->db == NULL || o->data == NULL || o->policy == NULL ||
        o->policy2 == NULL || o->out == NULL || o->rows == 0) {
        fprintf(stderr, "bench: analytics needs --docs, --db, --data, --policy, "
                        "--paillier-policy, --rows and --out\n");
        return -1;
    }
    c.o = o;
    size_t prows = o->prows < o->rows ? o->prows : o->rows;
    /* The admin session has no role, so no min_group_size: every group is answered. */
    c.min_group = 0;
    if ((c.out = fopen(o->out, "a")) == NULL) {
        fprintf(stderr, "bench: analytics: cannot write %s\n", o->out);
        return -1;
    }
    progress("reading %zu documents from %s", o->rows, o->docs);
    if (input_load(o->docs, o->rows, &c.in) != 0) {
        goto out;
    }
    if (c.in.nlines < o->rows) {
        fprintf(stderr, "bench: analytics: %s has %zu lines, fewer than %zu\n", o->docs,
                c.in.nlines, o->rows);
        goto out;
    }
    if ((e = veil_init(o->data, &io, &st)) != VEIL_OK ||
        (e = veil_vault_open(o->data, &c.v, &st)) != VEIL_OK) {
        vfail("init", e, &st);
        goto out;
    }
    emit(&c, "reps", (double)o->reps);
    emit(&c, "batch", (double)o->batch);
    emit(&c, "min_group", (double)c.min_group);
    if (scheme(&c, AN_TENANT_ASHE, o->policy, o->rows, "ashe", o->db) != 0) {
        goto out;
    }
    snprintf(path, sizeof(path), "%s/cloud/cloud.db", o->data);
    long long store_bytes = file_bytes(path);
    strcat(path, "-wal");
    store_bytes += file_bytes(path);
    emit(&c, "ashe_store_bytes", (double)store_bytes);
    emit(&c, "ashe_plain_bytes", (double)file_bytes(o->db));
    snprintf(path, sizeof(path), "%s.paillier", o->db);
    if (prows > 0 && scheme(&c, AN_TENANT_PAILLIER, o->policy2, prows, "paillier", path) != 0) {
        goto out;
    }
    vl_log_set_level(VL_LOG_WARN); /* as above: a budget reset before each answer */
    int dprc = dp_error(&c);
    vl_log_set_level(VL_LOG_INFO);
    if (dprc != 0) {
        goto out;
    }
    rc = 0;
out:
    veil_vault_close(c.v);
    free(c.in.buf);
    free(c.in.start);
    fclose(c.out);
    return rc;
}
