/*
 * store_bench.c: bench_store, the SQLite store driver alone (no engine, no HTTP), next to
 * plain SQLite in the same process.
 *
 *   bench_store agg [ROWS [GROUPS [REPS]]]  aggregate: ROWS rows (default 1,000,000) in
 *       GROUPS groups (default 1,000), each with a group token, a filter token (100 values,
 *       so one is a 1% filter), one ASHE cell and a 100-byte blob; timed REPS times (default
 *       3) over all rows and with the 1% filter, against `SELECT org, SUM(amount) ...
 *       GROUP BY org` (and `WHERE cat = ?`) on a plain table of the same rows. The first
 *       full aggregate is checked: every group's sum decrypts to the plaintext sum.
 *   bench_store put [ROWS [BATCH]]  put_rows throughput: ROWS rows (default 100,000) in
 *       batches of BATCH (default 1), each like a realistic invoice: a 700-byte blob, 25
 *       tokens of 16..48 bytes over 4 columns and one sum cell, random document tokens.
 *
 * Each run works in a fresh directory under $TMPDIR (or /tmp), removed at the end; with
 * BENCH_STORE_DIR set, `agg` works in that directory instead, keeps it, and loads the rows
 * only when it holds none yet (for repeated timings of one data set). Result lines are
 * "RESULT <what> <side> <ops> <seconds>", one per timing, for scripts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store/store.h"
#include "tactics/tactics.h"

#define SB_FILTER_VALUES 100
#define SB_AGG_BLOB 100
#define SB_PUT_BLOB 700
#define SB_PUT_TOKENS 25
#define SB_LOAD_BATCH 10000
#define SB_TOK_MAX 48

static const uint8_t sb_key[32] = {42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                   17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* splitmix64: deterministic pseudo-random bytes standing in for keyed hashes. */
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = mix(seed * 1315423911u + i);
        size_t k = n - i < 8 ? n - i : 8;
        memcpy(p + i, &v, k);
    }
}

static void die(const char *what)
{
    fprintf(stderr, "bench_store: %s failed\n", what);
    exit(1);
}

static char *make_dir(void)
{
    const char *tmp = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof(tmpl), "%s/veil-store-bench-XXXXXX", tmp != NULL ? tmp : "/tmp");
    char *d = mkdtemp(tmpl);
    if (d == NULL) {
        die("mkdtemp");
    }
    return strdup(d);
}

static void remove_dir(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "bench_store: could not remove %s\n", dir);
    }
}

static const char *const TABLE = "0123456789abcdef0123456789abcdef";

/* ---- aggregate ---- */

struct agg_data {
    size_t rows, groups;
    uint8_t col_org[VL_COL_BYTES], col_cat[VL_COL_BYTES], col_amt[VL_COL_BYTES];
};

static void org_tok(uint8_t out[16], size_t g)
{
    fill(out, 16, 1000000000ull + g);
}

static void cat_tok(uint8_t out[16], size_t c)
{
    fill(out, 16, 2000000000ull + c);
}

static size_t row_group(const struct agg_data *d, size_t i)
{
    return mix(i * 7 + 3) % d->groups;
}

static size_t row_cat(size_t i)
{
    return mix(i * 11 + 5) % SB_FILTER_VALUES;
}

static int64_t row_amount(size_t i)
{
    return (int64_t)(mix(i * 13 + 1) % 10000000); /* cents, below 100,000.00 */
}

static void agg_load(struct vl_store *s, sqlite3 *plain, const struct agg_data *d)
{
    struct vl_row *rows = calloc(SB_LOAD_BATCH, sizeof(*rows));
    uint8_t(*docs)[VL_DOCTOKEN_BYTES] = calloc(SB_LOAD_BATCH, VL_DOCTOKEN_BYTES);
    uint8_t(*toks)[2][16] = calloc(SB_LOAD_BATCH, sizeof(*toks));
    struct vl_token(*tk)[2] = calloc(SB_LOAD_BATCH, sizeof(*tk));
    struct vl_sum_cell *sc = calloc(SB_LOAD_BATCH, sizeof(*sc));
    uint8_t blob[SB_AGG_BLOB];
    sqlite3_stmt *ins = NULL;
    if (!rows || !docs || !toks || !tk || !sc) {
        die("calloc");
    }
    fill(blob, sizeof(blob), 77);
    if (sqlite3_exec(plain,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                     "CREATE TABLE plain(id INTEGER PRIMARY KEY, org BLOB, cat BLOB,"
                     " amount INTEGER, doc BLOB); BEGIN",
                     NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(plain, "INSERT INTO plain VALUES (?, ?, ?, ?, ?)", -1, &ins,
                           NULL) != SQLITE_OK) {
        die("plain setup");
    }
    double t0 = now();
    for (size_t at = 0; at < d->rows; at += SB_LOAD_BATCH) {
        size_t k = d->rows - at < SB_LOAD_BATCH ? d->rows - at : SB_LOAD_BATCH;
        for (size_t j = 0; j < k; j++) {
            size_t i = at + j;
            struct vl_row *r = &rows[j];
            memset(r, 0, sizeof(*r));
            fill(docs[j], VL_DOCTOKEN_BYTES, 3000000000ull + i);
            org_tok(toks[j][0], row_group(d, i));
            cat_tok(toks[j][1], row_cat(i));
            r->doc = (struct vl_bytes){docs[j], VL_DOCTOKEN_BYTES};
            r->seq = i + 1;
            r->blob = (struct vl_bytes){blob, sizeof(blob)};
            memcpy(tk[j][0].col, d->col_org, VL_COL_BYTES);
            tk[j][0].tok = (struct vl_bytes){toks[j][0], 16};
            memcpy(tk[j][1].col, d->col_cat, VL_COL_BYTES);
            tk[j][1].tok = (struct vl_bytes){toks[j][1], 16};
            r->tokens = tk[j];
            r->ntokens = 2;
            memcpy(sc[j].col, d->col_amt, VL_COL_BYTES);
            vl_ashe_limbs(vl_ashe_encrypt(sb_key, r->seq, row_amount(i)), sc[j].limbs);
            r->sums = &sc[j];
            r->nsums = 1;

            sqlite3_bind_int64(ins, 1, (sqlite3_int64)i);
            sqlite3_bind_blob(ins, 2, toks[j][0], 16, SQLITE_STATIC);
            sqlite3_bind_blob(ins, 3, toks[j][1], 16, SQLITE_STATIC);
            sqlite3_bind_int64(ins, 4, row_amount(i));
            sqlite3_bind_blob(ins, 5, blob, sizeof(blob), SQLITE_STATIC);
            if (sqlite3_step(ins) != SQLITE_DONE) {
                die("plain insert");
            }
            sqlite3_reset(ins);
        }
        if (s->ops->put_rows(s, TABLE, rows, k) != VEIL_OK) {
            die("put_rows");
        }
    }
    sqlite3_finalize(ins);
    if (sqlite3_exec(plain, "COMMIT; CREATE INDEX plain_cat ON plain(cat); ANALYZE", NULL, NULL,
                     NULL) != SQLITE_OK) {
        die("plain commit");
    }
    fprintf(stderr, "loaded %zu rows in %.1f s (store and plain)\n", d->rows, now() - t0);
    free(rows);
    free(docs);
    free(toks);
    free(tk);
    free(sc);
}

/* Checks every group of a full aggregate against plaintext sums. */
static void agg_check(const struct agg_data *d, const struct vl_agg_result *res)
{
    int64_t *want = calloc(d->groups, sizeof(*want));
    uint64_t *cnt = calloc(d->groups, sizeof(*cnt));
    uint8_t tok[16];
    for (size_t i = 0; i < d->rows; i++) {
        want[row_group(d, i)] += row_amount(i);
        cnt[row_group(d, i)]++;
    }
    size_t ngroups = 0;
    for (size_t g = 0; g < d->groups; g++) {
        ngroups += cnt[g] > 0;
    }
    if (res->n != ngroups) {
        die("check: group count");
    }
    for (size_t k = 0; k < res->n; k++) {
        const struct vl_agg_group *gr = &res->groups[k];
        size_t g = 0;
        for (; g < d->groups; g++) {
            org_tok(tok, g);
            if (gr->keys[0].n == 16 && memcmp(gr->keys[0].p, tok, 16) == 0) {
                break;
            }
        }
        const struct vl_agg_value *v = &gr->values[0];
        if (g == d->groups || gr->count != cnt[g] || v->count != cnt[g] ||
            vl_ashe_decrypt(sb_key, vl_ashe_join(v->limbs), v->runs, v->nruns, NULL) !=
                (vl_i128)want[g]) {
            die("check: group sum");
        }
    }
    free(want);
    free(cnt);
    fprintf(stderr, "checked %zu groups: sums decrypt to the plaintext sums\n", res->n);
}

static double plain_agg(sqlite3 *plain, int filtered, size_t *ngroups)
{
    sqlite3_stmt *st = NULL;
    uint8_t tok[16];
    cat_tok(tok, 0);
    double t0 = now();
    if (sqlite3_prepare_v2(plain,
                           filtered ? "SELECT org, SUM(amount) FROM plain WHERE cat = ?"
                                      " GROUP BY org"
                                    : "SELECT org, SUM(amount) FROM plain GROUP BY org",
                           -1, &st, NULL) != SQLITE_OK) {
        die("plain prepare");
    }
    if (filtered) {
        sqlite3_bind_blob(st, 1, tok, 16, SQLITE_STATIC);
    }
    size_t n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        n++;
    }
    sqlite3_finalize(st);
    *ngroups = n;
    return now() - t0;
}

static int cmd_agg(size_t nrows, size_t ngroups, int reps)
{
    struct agg_data d = {.rows = nrows, .groups = ngroups};
    const char *keep = getenv("BENCH_STORE_DIR");
    char *dir = keep != NULL ? strdup(keep) : make_dir();
    char path[600];
    struct vl_store *s = NULL;
    sqlite3 *plain = NULL;
    veil_status st;
    memset(d.col_org, 0x0a, VL_COL_BYTES);
    memset(d.col_cat, 0x0c, VL_COL_BYTES);
    memset(d.col_amt, 0x30, VL_COL_BYTES);
    if (vl_store_open("sqlite:store.db", dir, &s, &st) != VEIL_OK) {
        die("store open");
    }
    snprintf(path, sizeof(path), "%s/plain.db", dir);
    if (sqlite3_open(path, &plain) != SQLITE_OK) {
        die("plain open");
    }
    if (keep == NULL || sqlite3_exec(plain, "SELECT 1 FROM plain LIMIT 1", NULL, NULL, NULL) !=
                            SQLITE_OK) {
        agg_load(s, plain, &d);
    }

    uint8_t tok0[16];
    cat_tok(tok0, 0);
    struct vl_bytes ftok = {tok0, 16};
    struct vl_pred_term term = {.toks = &ftok, .ntoks = 1};
    memcpy(term.col, d.col_cat, VL_COL_BYTES);
    struct vl_pred all = {NULL, 0}, one = {&term, 1};
    struct vl_agg_col col = {.paillier = 0};
    memcpy(col.col, d.col_amt, VL_COL_BYTES);
    const uint8_t(*gcols)[VL_COL_BYTES] = (const uint8_t(*)[VL_COL_BYTES])d.col_org;

    for (int rep = 0; rep < reps; rep++) {
        for (int filtered = 0; filtered <= 1; filtered++) {
            struct vl_agg_request req = {filtered ? &one : &all, gcols, 1, &col, 1};
            struct vl_agg_result res;
            size_t pg = 0;
            double tp = plain_agg(plain, filtered, &pg);
            double t0 = now();
            if (s->ops->aggregate(s, TABLE, &req, &res) != VEIL_OK) {
                die("aggregate");
            }
            double tv = now() - t0;
            size_t runs = 0;
            for (size_t g = 0; g < res.n; g++) {
                runs += res.groups[g].values[0].nruns;
            }
            printf("agg %-8s rows %zu: veil %.3f s (%zu groups, %zu runs), plain %.3f s"
                   " (%zu groups), ratio %.2fx\n",
                   filtered ? "1%" : "full", nrows, tv, res.n, runs, tp, pg, tv / tp);
            printf("RESULT agg_%s veil %zu %.6f\nRESULT agg_%s plain %zu %.6f\n",
                   filtered ? "filter" : "full", nrows, tv, filtered ? "filter" : "full", nrows,
                   tp);
            if (rep == 0 && !filtered) {
                agg_check(&d, &res);
            }
            vl_agg_result_free(&res);
        }
        fflush(stdout);
    }
    sqlite3_close(plain);
    vl_store_close(s);
    if (keep == NULL) {
        remove_dir(dir);
    }
    free(dir);
    return 0;
}

/* ---- put ---- */

static int cmd_put(size_t nrows, size_t batch)
{
    char *dir = make_dir();
    struct vl_store *s = NULL;
    veil_status st;
    if (vl_store_open("sqlite:store.db", dir, &s, &st) != VEIL_OK) {
        die("store open");
    }
    struct vl_row *rows = calloc(batch, sizeof(*rows));
    uint8_t(*docs)[VL_DOCTOKEN_BYTES] = calloc(batch, VL_DOCTOKEN_BYTES);
    uint8_t(*toks)[SB_PUT_TOKENS][SB_TOK_MAX] = calloc(batch, sizeof(*toks));
    struct vl_token(*tk)[SB_PUT_TOKENS] = calloc(batch, sizeof(*tk));
    struct vl_sum_cell *sc = calloc(batch, sizeof(*sc));
    uint8_t blob[SB_PUT_BLOB];
    if (!rows || !docs || !toks || !tk || !sc) {
        die("calloc");
    }
    fill(blob, sizeof(blob), 99);
    if (s->ops->ensure_table(s, TABLE) != VEIL_OK) {
        die("ensure_table");
    }
    double t0 = now();
    for (size_t at = 0; at < nrows; at += batch) {
        size_t k = nrows - at < batch ? nrows - at : batch;
        for (size_t j = 0; j < k; j++) {
            size_t i = at + j;
            struct vl_row *r = &rows[j];
            memset(r, 0, sizeof(*r));
            fill(docs[j], VL_DOCTOKEN_BYTES, 5000000000ull + i);
            r->doc = (struct vl_bytes){docs[j], VL_DOCTOKEN_BYTES};
            r->seq = i + 1;
            r->blob = (struct vl_bytes){blob, sizeof(blob)};
            /* columns: 2 eq (one each), 1 eq + 16 range, 6 range (a date) */
            for (size_t t = 0; t < SB_PUT_TOKENS; t++) {
                uint8_t c = t < 2 ? (uint8_t)t : t < 19 ? 2 : 3;
                size_t len = c < 2 || t == 2 ? 16 : 16 + mix(i * 31 + t) % 33;
                memset(tk[j][t].col, 0x10 + c, VL_COL_BYTES);
                fill(toks[j][t], len, 7000000000ull + i * 64 + t);
                tk[j][t].tok = (struct vl_bytes){toks[j][t], len};
            }
            r->tokens = tk[j];
            r->ntokens = SB_PUT_TOKENS;
            memset(sc[j].col, 0x30, VL_COL_BYTES);
            vl_ashe_limbs(vl_ashe_encrypt(sb_key, r->seq, (int64_t)i), sc[j].limbs);
            r->sums = &sc[j];
            r->nsums = 1;
        }
        if (s->ops->put_rows(s, TABLE, rows, k) != VEIL_OK) {
            die("put_rows");
        }
    }
    double t = now() - t0;
    printf("put rows %zu batch %zu: %.3f s, %.0f rows/s\n", nrows, batch, t, (double)nrows / t);
    printf("RESULT put_b%zu veil %zu %.6f\n", batch, nrows, t);
    free(rows);
    free(docs);
    free(toks);
    free(tk);
    free(sc);
    vl_store_close(s);
    remove_dir(dir);
    free(dir);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "agg") == 0) {
        size_t rows = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000000;
        size_t groups = argc > 3 ? strtoul(argv[3], NULL, 10) : 1000;
        int reps = argc > 4 ? (int)strtol(argv[4], NULL, 10) : 3;
        if (rows == 0 || groups == 0 || reps <= 0) {
            die("arguments");
        }
        return cmd_agg(rows, groups, reps);
    }
    if (argc >= 2 && strcmp(argv[1], "put") == 0) {
        size_t rows = argc > 2 ? strtoul(argv[2], NULL, 10) : 100000;
        size_t batch = argc > 3 ? strtoul(argv[3], NULL, 10) : 1;
        if (rows == 0 || batch == 0) {
            die("arguments");
        }
        return cmd_put(rows, batch);
    }
    fprintf(stderr, "usage: bench_store agg [ROWS [GROUPS [REPS]]] | put [ROWS [BATCH]]\n");
    return 2;
}
