/*
 * demo.c: `veil demo`, a guided walk through the two reference use cases (invoices, patients)
 * for a newcomer at a terminal, in this process through libveil on the embedded store (no
 * server, no token).
 *
 * Each step does what an application would (veil_init, veil_tenant_create,
 * veil_collection_apply, veil_bulk, veil_query, veil_aggregate) and prints the answer next
 * to a peek at what the untrusted store holds for it: cloud/cloud.db opened read-only with
 * the SQLite C API, as anyone with access to the database could. The demo never reads keys
 * or engine internals; the store's column ids come from the aggregates' "explain" answers,
 * and the document whose tokens are shown is the one invoice written on its own (the row
 * with the highest sequence number). The example policies are compiled in (demo_policies.h,
 * generated from examples/invoices.yaml and patients.yaml), so an installed `veil demo`
 * works.
 *
 * Without --data the demo works in a fresh temporary directory and removes it at the end;
 * with --data DIR it creates DIR (which must not hold an installation yet) and keeps it.
 * Peeks are best effort: a store layout it does not know is reported, not fatal.
 *
 * What the store is asked during a step is seen from the database's side too: the demo
 * runs in the same process as the store driver, so an SQLite auto-extension hands it every
 * connection opened on cloud/cloud.db, and a trace on those counts the statements the
 * driver runs, the keys they ask for and the rows they return while a watch is on: what
 * the operator of that database could log.
 */
#include <ftw.h>
#include <getopt.h>
#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/demo_policies.h"

#define DEMO_COUNT_DEFAULT 2000u
#define DEMO_COUNT_MAX 1000000u
#define DEMO_SEED 1u
#define DEMO_BATCH 1000u
#define DEMO_WIDTH 96
#define DEMO_ROWS_SHOWN 5
#define HEX_SHOWN 8 /* bytes of a token shown in hex */
#define PATH_MAX_DEMO 4096
#define WATCH_ORG "ORG-0003"
#define WATCH_STATUS "open"

struct demo {
    bool tty;
    const char *dir;
    veil_vault *v;
    veil_session *admin, *clerk, *analyst, *researcher, *clinician;
    sqlite3 *cloud;
    char inv_table[65], pat_table[65];
    char watched[32];       /* the invoice written on its own */
    bool watched_matches;   /* it is an open invoice of WATCH_ORG */
    char watched_tok[2 * 32 + 1];
};

/* ---- output ---- */

static void section(const struct demo *d, int n, const char *title)
{
    char head[DEMO_WIDTH + 1];
    int k = snprintf(head, sizeof(head), "== %d. %s ", n, title);
    k = k < 0 ? 0 : k > DEMO_WIDTH ? DEMO_WIDTH : k; /* a long title is cut */
    while (k < DEMO_WIDTH) {
        head[k++] = '=';
    }
    head[k] = '\0';
    printf("\n%s%s%s\n", d->tty ? "\033[1m" : "", head, d->tty ? "\033[0m" : "");
}

/* Prints text word-wrapped to DEMO_WIDTH, every line starting with `indent`, which takes
 * `indent_cols` columns on the screen (colour codes take none). */
static void wrap_cols(const char *indent, size_t indent_cols, const char *text)
{
    size_t width = DEMO_WIDTH - indent_cols, col = 0;
    const char *p = text;
    fputs(indent, stdout);
    if (strlen(text) <= width) {
        puts(text);
        return;
    }
    while (*p != '\0') {
        while (*p == ' ') {
            p++;
        }
        size_t w = strcspn(p, " ");
        if (w == 0) {
            break;
        }
        if (col > 0 && col + 1 + w > width) {
            printf("\n%s", indent);
            col = 0;
        } else if (col > 0) {
            putchar(' ');
            col++;
        }
        fwrite(p, 1, w, stdout);
        col += w;
        p += w;
    }
    putchar('\n');
}

static void wrap(const char *indent, const char *text)
{
    wrap_cols(indent, strlen(indent), text);
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    wrap("  ", text);
}

/* A line about the untrusted store, marked as such. */
static void peek(const struct demo *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void peek(const struct demo *d, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    printf("  %sstore |%s %s\n", d->tty ? "\033[36m" : "", d->tty ? "\033[0m" : "", text);
}

/* A longer line about the untrusted store, word-wrapped. */
static void peek_wrapped(const struct demo *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void peek_wrapped(const struct demo *d, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    wrap_cols(d->tty ? "  \033[36mstore |\033[0m " : "  store | ", 10, text);
}

/* What the store learned, in one sentence. */
static void learned(const struct demo *d, const char *text)
{
    char line[1024];
    snprintf(line, sizeof(line), "learned: %s", text);
    wrap_cols(d->tty ? "  \033[36mstore |\033[0m " : "  store | ", 10, line);
}

/* s padded or cut to `width` characters (UTF-8 aware), into out (4 * width + 1 bytes). */
static const char *cell(char *out, const char *s, int width)
{
    int chars = 0;
    size_t i = 0, o = 0;
    while (s[i] != '\0') {
        size_t len = 1;
        while ((s[i + len] & 0xC0) == 0x80) {
            len++;
        }
        if (chars == width - 1 && s[i + len] != '\0') {
            memcpy(out + o, "~", 1);
            o++;
            chars++;
            break;
        }
        if (chars == width) {
            break;
        }
        memcpy(out + o, s + i, len);
        o += len;
        i += len;
        chars++;
    }
    while (chars < width) {
        out[o++] = ' ';
        chars++;
    }
    out[o] = '\0';
    return out;
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void hex(char *out, const unsigned char *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

/* The first HEX_SHOWN bytes of a blob in hex, "..." when there are more. */
static const char *short_hex(char out[2 * HEX_SHOWN + 4], const void *p, int n)
{
    int k = n < HEX_SHOWN ? n : HEX_SHOWN;
    hex(out, p, k > 0 ? (size_t)k : 0);
    if (n > HEX_SHOWN) {
        memcpy(out + 2 * HEX_SHOWN, "...", 4);
    }
    return out;
}

/* ---- JSON helpers ---- */

static const char *jstr(const json_t *o, const char *path)
{
    char key[64];
    const json_t *j = o;
    while (j != NULL && *path != '\0') {
        size_t k = strcspn(path, ".");
        snprintf(key, sizeof(key), "%.*s", (int)k, path);
        j = json_object_get(j, key);
        path += k + (path[k] == '.');
    }
    return json_is_string(j) ? json_string_value(j) : "";
}

/* Runs an aggregate; *out is the parsed answer. */
static veil_err aggregate(veil_session *s, const char *coll, const char *body, json_t **out,
                          veil_status *st)
{
    char *text = NULL;
    veil_err rc = veil_aggregate(s, coll, body, strlen(body), &text, st);
    if (rc == VEIL_OK) {
        *out = json_loads(text, 0, NULL);
        rc = *out != NULL ? VEIL_OK : VEIL_ERR_INTERNAL;
    }
    veil_free(text);
    return rc;
}

/* The store's column id (hex) of a where term, group or aggregated field in an explain. */
static const char *explain_column(const json_t *answer, const char *part, const char *field)
{
    const json_t *list = json_object_get(json_object_get(json_object_get(answer, "explain"),
                                                         "store"),
                                         part);
    size_t i;
    const json_t *e;
    json_array_foreach(list, i, e) {
        if (strcmp(jstr(e, "field"), field) == 0) {
            return jstr(e, "column");
        }
    }
    return "";
}

/* Runs a query to its end, paging with "next"; *docs gets every document (a new array).
 * `first` is the body without "after". */
static veil_err query_all(veil_session *s, const char *coll, const char *first, json_t **docs,
                          veil_status *st)
{
    json_t *body = json_loads(first, 0, NULL), *all = json_array();
    veil_err rc = body != NULL && all != NULL ? VEIL_OK : VEIL_ERR_INTERNAL;
    while (rc == VEIL_OK) {
        char *text = json_dumps(body, JSON_COMPACT), *ans = NULL;
        rc = text != NULL ? veil_query(s, coll, text, strlen(text), &ans, st)
                          : VEIL_ERR_INTERNAL;
        free(text);
        json_t *a = rc == VEIL_OK ? json_loads(ans, 0, NULL) : NULL;
        veil_free(ans);
        if (rc == VEIL_OK && a == NULL) {
            rc = VEIL_ERR_INTERNAL;
        }
        if (rc == VEIL_OK) {
            json_array_extend(all, json_object_get(a, "docs"));
            json_t *next = json_object_get(a, "next");
            if (json_is_string(next)) {
                json_object_set(body, "after", next);
            } else {
                json_decref(a);
                break;
            }
        }
        json_decref(a);
    }
    json_decref(body);
    if (rc == VEIL_OK) {
        *docs = all;
    } else {
        json_decref(all);
    }
    return rc;
}

/* ---- peeking at the untrusted store ---- */

static sqlite3_stmt *prep(const struct demo *d, const char *fmt, ...)
{
    if (d->cloud == NULL) {
        return NULL;
    }
    va_list ap;
    va_start(ap, fmt);
    char *sql = sqlite3_vmprintf(fmt, ap);
    va_end(ap);
    sqlite3_stmt *stmt = NULL;
    if (sql == NULL || sqlite3_prepare_v2(d->cloud, sql, -1, &stmt, NULL) != SQLITE_OK) {
        peek(d, "(cannot read the store: %s)", sqlite3_errmsg(d->cloud));
        stmt = NULL;
    }
    sqlite3_free(sql);
    return stmt;
}

static void bind_hex(sqlite3_stmt *stmt, int i, const char *hx)
{
    size_t n = strlen(hx) / 2;
    unsigned char buf[64];
    n = n < sizeof(buf) ? n : sizeof(buf);
    for (size_t k = 0; k < n; k++) {
        char pair[3] = {hx[2 * k], hx[2 * k + 1], '\0'};
        buf[k] = (unsigned char)strtoul(pair, NULL, 16);
    }
    sqlite3_bind_blob(stmt, i, buf, (int)n, SQLITE_TRANSIENT);
}

static long long count_rows(const struct demo *d, const char *table)
{
    sqlite3_stmt *stmt = prep(d, "SELECT count(*) FROM \"%w\"", table);
    long long n = stmt != NULL && sqlite3_step(stmt) == SQLITE_ROW ? sqlite3_column_int64(stmt, 0)
                                                                    : -1;
    sqlite3_finalize(stmt);
    return n;
}

static void peek_tables(const struct demo *d)
{
    sqlite3_stmt *stmt =
        prep(d, "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY substr(name, 3),"
                " name");
    if (stmt == NULL) {
        return;
    }
    peek(d, "cloud/cloud.db holds these tables (what each is for is our note, not the store's):");
    while (sqlite3_step(stmt) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(stmt, 0);
        char what[64] = "";
        const char *t = strlen(name) > 2 ? name + 2 : "";
        const char *coll = strcmp(t, d->inv_table) == 0   ? "invoices"
                           : strcmp(t, d->pat_table) == 0 ? "patients"
                                                          : "?";
        switch (name[0]) {
        case 'r': snprintf(what, sizeof(what), "%s: sealed documents", coll); break;
        case 'x': snprintf(what, sizeof(what), "%s: equality and range tokens", coll); break;
        case 's': snprintf(what, sizeof(what), "%s: ASHE sum cells", coll); break;
        case 'p': snprintf(what, sizeof(what), "%s: Paillier sum cells", coll); break;
        case 'k': snprintf(what, sizeof(what), "%s: search index entries", coll); break;
        default: break;
        }
        peek(d, "  %-36s %8lld rows  %s", name, count_rows(d, name), what);
    }
    sqlite3_finalize(stmt);
}

static void peek_rows(const struct demo *d, const char *table)
{
    sqlite3_stmt *stmt =
        prep(d, "SELECT doc, seq, length(blob), substr(blob, 1, 12) FROM \"r_%w\" ORDER BY seq"
                " LIMIT 2", table);
    if (stmt == NULL) {
        return;
    }
    peek(d, "two rows of r_%.8s...:", table);
    peek(d, "  %-22s %6s  %6s  %s", "doc token", "seq", "bytes", "blob starts");
    while (sqlite3_step(stmt) == SQLITE_ROW) {
        char tok[2 * HEX_SHOWN + 4], head[2 * 12 + 1];
        short_hex(tok, sqlite3_column_blob(stmt, 0), sqlite3_column_bytes(stmt, 0));
        hex(head, sqlite3_column_blob(stmt, 3), (size_t)sqlite3_column_bytes(stmt, 3));
        peek(d, "  %-22s %6lld  %6d  %s", tok, sqlite3_column_int64(stmt, 1),
             sqlite3_column_int(stmt, 2), head);
    }
    sqlite3_finalize(stmt);
}

/* The watched invoice: the row with the highest sequence number of the invoices. */
static void peek_watched(struct demo *d, const json_t *cols)
{
    sqlite3_stmt *stmt = prep(d, "SELECT doc, seq, length(blob) FROM \"r_%w\" ORDER BY seq DESC"
                                 " LIMIT 1", d->inv_table);
    if (stmt == NULL) {
        return;
    }
    if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_bytes(stmt, 0) <= 32) {
        char tok[2 * HEX_SHOWN + 4];
        hex(d->watched_tok, sqlite3_column_blob(stmt, 0), (size_t)sqlite3_column_bytes(stmt, 0));
        peek(d, "writing %s added one row: doc token %s, seq %lld, %d bytes,",
             d->watched, short_hex(tok, sqlite3_column_blob(stmt, 0),
                                   sqlite3_column_bytes(stmt, 0)),
             sqlite3_column_int64(stmt, 1), sqlite3_column_int(stmt, 2));
        peek_wrapped(d, "(seq: the row sequence number the proxy reserved for this write, in "
                        "blocks, in trusted state; the sum cell's key stream and the search "
                        "entries are keyed by it. It is not the id and says nothing of the "
                        "content.)");
    }
    sqlite3_finalize(stmt);
    if (d->watched_tok[0] == '\0') {
        return;
    }
    stmt = prep(d, "SELECT col, count(*), min(tok) FROM \"x_%w\" WHERE doc = ? GROUP BY col"
                   " ORDER BY count(*), col", d->inv_table);
    if (stmt == NULL) {
        return;
    }
    bind_hex(stmt, 1, d->watched_tok);
    peek(d, "and these tokens to x_%.8s... (column names are ours, from explain):",
         d->inv_table);
    while (sqlite3_step(stmt) == SQLITE_ROW) {
        char col[2 * 16 + 1], tok[2 * HEX_SHOWN + 4];
        const char *name = "";
        hex(col, sqlite3_column_blob(stmt, 0),
            (size_t)(sqlite3_column_bytes(stmt, 0) <= 16 ? sqlite3_column_bytes(stmt, 0) : 16));
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)cols, k, v) {
            if (strcmp(json_string_value(v), col) == 0) {
                name = k;
            }
        }
        long long n = sqlite3_column_int64(stmt, 1);
        peek(d, "  column %.16s...  %3lld token%s %s%s  %s", col, n, n == 1 ? " " : "s",
             short_hex(tok, sqlite3_column_blob(stmt, 2), sqlite3_column_bytes(stmt, 2)),
             n > 1 ? " ..." : "    ", name);
    }
    sqlite3_finalize(stmt);
}

/* Two sum cells of a column (or the one of document token `doc`, hex): four 32-bit limbs
 * each. */
static void peek_sums(const struct demo *d, const char *table, const char *col,
                      const char *field, const char *doc)
{
    sqlite3_stmt *stmt = prep(d, "SELECT doc, l0, l1, l2, l3 FROM \"s_%w\" WHERE col = ?%s"
                                 " LIMIT 2", table, doc != NULL ? " AND doc = ?" : "");
    if (stmt == NULL) {
        return;
    }
    bind_hex(stmt, 1, col);
    if (doc != NULL) {
        bind_hex(stmt, 2, doc);
    }
    peek(d, "%s of s_%.8s..., column %.8s... (%s): doc token, limbs l0..l3",
         doc != NULL ? "and its cell" : "two cells", table, col, field);
    while (sqlite3_step(stmt) == SQLITE_ROW) {
        char tok[2 * HEX_SHOWN + 4];
        peek(d, "  %-22s %11lld %11lld %11lld %11lld",
             short_hex(tok, sqlite3_column_blob(stmt, 0), sqlite3_column_bytes(stmt, 0)),
             sqlite3_column_int64(stmt, 1), sqlite3_column_int64(stmt, 2),
             sqlite3_column_int64(stmt, 3), sqlite3_column_int64(stmt, 4));
    }
    sqlite3_finalize(stmt);
}

/* The watched document's token in `col`, hex, into out (or ""). */
static void watched_token(const struct demo *d, const char *col, char out[129])
{
    out[0] = '\0';
    sqlite3_stmt *stmt = d->watched_tok[0] != '\0'
                             ? prep(d, "SELECT tok FROM \"x_%w\" WHERE doc = ? AND col = ?",
                                    d->inv_table)
                             : NULL;
    if (stmt == NULL) {
        return;
    }
    bind_hex(stmt, 1, d->watched_tok);
    bind_hex(stmt, 2, col);
    if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_bytes(stmt, 0) <= 64) {
        hex(out, sqlite3_column_blob(stmt, 0), (size_t)sqlite3_column_bytes(stmt, 0));
    }
    sqlite3_finalize(stmt);
}

/* ---- watching what the store is asked ---- */

/* Statements the store driver ran on cloud.db while the watch was on, by the kind of table
 * they read: their number, the keys they were given (bound parameters) and the rows they
 * returned. */
struct watch_kind {
    unsigned long stmts, keys, rows;
};
static struct {
    pthread_mutex_t mu;
    bool on;
    bool opening_peek;          /* our own read-only connection is being opened */
    struct watch_kind kv, rows; /* k_ (search index entries), r_ (sealed documents) */
    char label[2 * HEX_SHOWN + 4];
} watch = {.mu = PTHREAD_MUTEX_INITIALIZER};

static struct watch_kind *watch_kind_of(const char *sql)
{
    if (sql == NULL || strncmp(sql, "SELECT", 6) != 0) {
        return NULL;
    }
    if (strstr(sql, "\"k_") != NULL) {
        return &watch.kv;
    }
    if (strstr(sql, "\"r_") != NULL) {
        return &watch.rows;
    }
    return NULL;
}

static int watch_trace(unsigned type, void *ctx, void *p, void *x)
{
    (void)ctx;
    (void)x;
    sqlite3_stmt *stmt = p;
    pthread_mutex_lock(&watch.mu);
    struct watch_kind *k = watch.on ? watch_kind_of(sqlite3_sql(stmt)) : NULL;
    if (k != NULL && type == SQLITE_TRACE_ROW) {
        k->rows++;
    } else if (k != NULL && type == SQLITE_TRACE_STMT) {
        k->stmts++;
        k->keys += (unsigned long)sqlite3_bind_parameter_count(stmt);
        if (k == &watch.kv && watch.label[0] == '\0') {
            /* The first label asked for, as the database saw it: x'...' in the SQL. */
            char *full = sqlite3_expanded_sql(stmt);
            const char *h = full != NULL ? strstr(full, "x'") : NULL;
            if (full != NULL && h == NULL) {
                h = strstr(full, "X'");
            }
            if (h != NULL && strlen(h + 2) > 2 * HEX_SHOWN) {
                snprintf(watch.label, sizeof(watch.label), "%.*s...", 2 * HEX_SHOWN, h + 2);
            }
            sqlite3_free(full);
        }
    }
    pthread_mutex_unlock(&watch.mu);
    return 0;
}

/* Called by SQLite for every connection this process opens: traces the store driver's
 * connections to cloud/cloud.db (not trusted.db, not the demo's own). */
static int watch_connection(sqlite3 *db, char **err, const struct sqlite3_api_routines *api)
{
    (void)err;
    (void)api;
    const char *f = sqlite3_db_filename(db, "main");
    const char *tail = "/cloud/cloud.db";
    size_t n = f != NULL ? strlen(f) : 0;
    pthread_mutex_lock(&watch.mu);
    bool mine = watch.opening_peek;
    pthread_mutex_unlock(&watch.mu);
    if (!mine && n >= strlen(tail) && strcmp(f + n - strlen(tail), tail) == 0) {
        sqlite3_trace_v2(db, SQLITE_TRACE_STMT | SQLITE_TRACE_ROW, watch_trace, NULL);
    }
    return SQLITE_OK;
}

static void watch_start(void)
{
    pthread_mutex_lock(&watch.mu);
    memset(&watch.kv, 0, sizeof(watch.kv));
    memset(&watch.rows, 0, sizeof(watch.rows));
    watch.label[0] = '\0';
    watch.on = true;
    pthread_mutex_unlock(&watch.mu);
}

static void watch_stop(struct watch_kind *kv, struct watch_kind *rows, char *label, size_t n)
{
    pthread_mutex_lock(&watch.mu);
    watch.on = false;
    *kv = watch.kv;
    *rows = watch.rows;
    snprintf(label, n, "%s", watch.label);
    pthread_mutex_unlock(&watch.mu);
}

/* ---- the steps ---- */

/* "what BODY", the body with spaces after commas and colons, so that it wraps. */
static void show_call(const char *what, const char *body)
{
    json_t *j = json_loads(body, 0, NULL);
    char *text = j != NULL ? json_dumps(j, JSON_PRESERVE_ORDER) : NULL;
    say("%s %s", what, text != NULL ? text : body);
    free(text);
    json_decref(j);
}

static int fail(const char *what, const veil_status *st)
{
    fprintf(stderr, "veil: demo: %s failed\n", what);
    return vl_cli_fail(st);
}

static void print_leakage(const struct demo *d, const char *coll, const char *field)
{
    char *text = NULL;
    veil_status st;
    if (veil_collection_get(d->admin, coll, &text, &st) != VEIL_OK) {
        return;
    }
    json_t *j = json_loads(text, 0, NULL);
    veil_free(text);
    const char *l = jstr(json_object_get(json_object_get(j, "fields"), field), "leakage");
    if (l[0] != '\0') {
        char line[1024];
        snprintf(line, sizeof(line), "%s.%s, as the policy states it: %s", coll, field, l);
        wrap("    ", line);
    }
    json_decref(j);
}

static int step_setup(struct demo *d)
{
    veil_status st;
    section(d, 1, "Set up: a data directory, a tenant, two policies");
    if (veil_init(d->dir, NULL, &st) != VEIL_OK) {
        return fail("veil_init", &st);
    }
    say("veil_init              %s: root key, veil.yaml, trusted.db, cloud/cloud.db", d->dir);
    if (veil_vault_open(d->dir, &d->v, &st) != VEIL_OK) {
        return fail("veil_vault_open", &st);
    }
    if (veil_tenant_create(d->v, "demo", &st) != VEIL_OK) {
        return fail("veil_tenant_create", &st);
    }
    say("veil_tenant_create     demo: a tenant with its own data key");
    if (veil_session_open(d->v, "demo", "admin", &d->admin, &st) != VEIL_OK) {
        return fail("veil_session_open", &st);
    }
    static const struct {
        const char *name, *text, *roles;
    } policies[] = {
        {"invoices", VL_DEMO_POLICY_INVOICES, "clerk, auditor, analyst"},
        {"patients", VL_DEMO_POLICY_PATIENTS, "clinician, ward_nurse, researcher"},
    };
    for (size_t i = 0; i < 2; i++) {
        int created = 0;
        if (veil_collection_apply(d->admin, policies[i].name, policies[i].text,
                                  strlen(policies[i].text), &created, &st) != VEIL_OK) {
            return fail("veil_collection_apply", &st);
        }
    }
    say("veil_collection_apply  invoices, patients: examples/*.yaml, compiled into veil");
    say("                       roles %s | %s", policies[0].roles, policies[1].roles);
    static const char *const roles[] = {"clerk", "analyst", "researcher", "clinician"};
    veil_session **slots[] = {&d->clerk, &d->analyst, &d->researcher, &d->clinician};
    for (size_t i = 0; i < 4; i++) {
        if (veil_session_open(d->v, "demo", roles[i], slots[i], &st) != VEIL_OK) {
            return fail("veil_session_open", &st);
        }
    }
    say("veil_session_open      clerk, analyst (invoices); clinician, researcher (patients)");
    say("Every field is sealed (XChaCha20-Poly1305) under a key of its own; `protect` adds "
        "what queries need. One field is never sent to the store at all:");
    print_leakage(d, "invoices", "internal_ref");
    return 0;
}

/* Loads `count` generated documents of `kind` into coll with veil_bulk, DEMO_BATCH lines a
 * call. With watch_org set (invoices), the last open invoice of that organisation is held
 * back and written last, on its own, with veil_doc_put; its id goes to d->watched. */
static int load(struct demo *d, veil_session *s, enum vl_gen_kind kind, const char *coll,
                unsigned count, bool watch)
{
    struct vl_gen g;
    char *lines = malloc((size_t)count * VL_GEN_LINE_MAX / 4 + VL_GEN_LINE_MAX);
    size_t *start = malloc(((size_t)count + 1) * sizeof(*start));
    char *out = NULL;
    veil_status st;
    int r = 0;
    size_t cap = (size_t)count * VL_GEN_LINE_MAX / 4 + VL_GEN_LINE_MAX, n = 0;
    if (lines == NULL || start == NULL) {
        r = vl_cli_error(1, "out of memory");
        goto out;
    }
    vl_gen_init(&g, kind, count, DEMO_SEED);
    long held = -1;
    char line[VL_GEN_LINE_MAX];
    for (unsigned i = 0; i < count; i++) {
        size_t k = vl_gen_line(&g, i + 1, line);
        if (n + k + 1 > cap) {
            char *bigger = realloc(lines, 2 * cap);
            if (bigger == NULL) {
                r = vl_cli_error(1, "out of memory");
                goto out;
            }
            lines = bigger;
            cap *= 2;
        }
        start[i] = n;
        memcpy(lines + n, line, k);
        n += k;
        if (watch && strstr(line, "\"org_id\":\"" WATCH_ORG "\",\"status\":\"" WATCH_STATUS
                                  "\"") != NULL) {
            held = (long)i;
        }
    }
    start[count] = n;
    if (watch && held < 0 && count > 0) {
        held = (long)count - 1;
    }
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    unsigned stored = 0, bad = 0;
    char first_error[256] = "";
    for (unsigned b = 0; b < count; b += DEMO_BATCH) {
        unsigned e = b + DEMO_BATCH < count ? b + DEMO_BATCH : count;
        /* the held line is cut out of its batch: two calls around it */
        for (int part = 0; part < 2; part++) {
            unsigned lo = b, hi = e;
            if (held >= (long)b && held < (long)e) {
                lo = part == 0 ? b : (unsigned)held + 1;
                hi = part == 0 ? (unsigned)held : e;
            } else if (part == 1) {
                break;
            }
            if (lo >= hi) {
                continue;
            }
            if (veil_bulk(s, coll, lines + start[lo], start[hi] - start[lo], &out, &st) !=
                VEIL_OK) {
                r = fail("veil_bulk", &st);
                goto out;
            }
            for (char *p = out; p != NULL && *p != '\0';) {
                char *nl = strchr(p, '\n');
                json_t *o = json_loadb(p, nl != NULL ? (size_t)(nl - p) : strlen(p), 0, NULL);
                json_t *err = json_object_get(o, "error");
                if (o != NULL && err == NULL) {
                    stored++;
                } else if (o != NULL) {
                    if (bad++ == 0) {
                        snprintf(first_error, sizeof(first_error), "%s: %s",
                                 jstr(err, "code"), jstr(err, "message"));
                    }
                }
                json_decref(o);
                p = nl != NULL ? nl + 1 : NULL;
            }
            veil_free(out);
            out = NULL;
        }
    }
    double secs = seconds_since(&t0);
    say("veil_bulk %s     %u stored in %.2f s (veil generate %s --count %u --seed %u)", coll,
        stored, secs, coll, count, DEMO_SEED);
    if (bad > 0) {
        r = vl_cli_error(1, "demo: %u documents were refused; the first: %s", bad, first_error);
        goto out;
    }
    if (held >= 0) {
        json_t *rec = json_loadb(lines + start[held], start[held + 1] - start[held], 0, NULL);
        char *doc = json_dumps(json_object_get(rec, "doc"), JSON_COMPACT);
        snprintf(d->watched, sizeof(d->watched), "%s", jstr(rec, "id"));
        d->watched_matches = strcmp(jstr(rec, "doc.org_id"), WATCH_ORG) == 0 &&
                             strcmp(jstr(rec, "doc.status"), WATCH_STATUS) == 0;
        int created = 0;
        veil_err rc = doc != NULL ? veil_doc_put(s, coll, d->watched, doc, strlen(doc), 0, &out,
                                                 &created, &st)
                                  : VEIL_ERR_INTERNAL;
        say("veil_doc_put %s  (%s, %s) on its own, written last, to watch one write", d->watched,
            jstr(rec, "doc.org_id"), jstr(rec, "doc.status"));
        free(doc);
        json_decref(rec);
        if (rc != VEIL_OK) {
            r = fail("veil_doc_put", &st);
        }
    }
out:
    veil_free(out);
    free(lines);
    free(start);
    return r;
}

static int step_load(struct demo *d, unsigned ninv, unsigned npat)
{
    veil_status st;
    section(d, 2, "Load sample data (veil generate, veil_bulk)");
    int r = load(d, d->clerk, VL_GEN_INVOICES, "invoices", ninv, true);
    if (r == 0) {
        r = load(d, d->clinician, VL_GEN_PATIENTS, "patients", npat, false);
    }
    if (r != 0) {
        return r;
    }
    /* The opaque table names and column ids, from the proxy's own explain answers. */
    json_t *ai = NULL, *ap = NULL;
    if (aggregate(d->admin, "invoices",
                  "{\"where\":{\"invoice_no\":\"-\",\"org_id\":\"-\",\"status\":\"-\","
                  "\"issued_on\":{\"gte\":\"2024-01-01\"},\"amount\":{\"gte\":\"0.00\"}},"
                  "\"metrics\":{\"t\":{\"sum\":\"amount\"}},\"explain\":true}",
                  &ai, &st) != VEIL_OK ||
        aggregate(d->admin, "patients",
                  "{\"metrics\":{\"n\":{\"count\":\"*\"}},\"explain\":true}", &ap, &st) !=
            VEIL_OK) {
        json_decref(ai);
        return fail("veil_aggregate (explain)", &st);
    }
    snprintf(d->inv_table, sizeof(d->inv_table), "%s", jstr(ai, "explain.store.table"));
    snprintf(d->pat_table, sizeof(d->pat_table), "%s", jstr(ap, "explain.store.table"));
    json_t *cols = json_object();
    static const char *const eq[] = {"invoice_no", "org_id", "status"};
    for (size_t i = 0; i < 3; i++) {
        json_object_set_new(cols, eq[i], json_string(explain_column(ai, "where", eq[i])));
    }
    json_object_set_new(cols, "issued_on (range)",
                        json_string(explain_column(ai, "where", "issued_on")));
    json_object_set_new(cols, "amount (range)",
                        json_string(explain_column(ai, "where", "amount")));
    json_object_set_new(cols, "amount (sum cell)",
                        json_string(explain_column(ai, "aggregated", "amount")));
    peek_tables(d);
    peek_rows(d, d->inv_table);
    peek_watched(d, cols);
    if (d->watched_tok[0] != '\0') {
        peek_sums(d, d->inv_table, explain_column(ai, "aggregated", "amount"), "amount",
                  d->watched_tok);
    }
    learned(d, "opaque table names, how many rows each holds and how long each sealed blob "
               "is; per row a random-looking token, equality and range tokens in unnamed "
               "columns and sum cells it cannot read: no id, no field name, no value.");
    json_decref(cols);
    json_decref(ai);
    json_decref(ap);
    return 0;
}

static void print_invoices(const json_t *docs)
{
    char c1[64], c2[64], c3[64], c4[64], c5[128];
    if (json_array_size(docs) == 0) {
        return;
    }
    printf("    %s %s %s %s %s\n", cell(c1, "id", 11), cell(c2, "invoice_no", 13),
           cell(c3, "issued_on", 11), cell(c4, "amount", 10), cell(c5, "customer.name", 24));
    size_t i;
    const json_t *e;
    json_array_foreach(docs, i, e) {
        if (i == DEMO_ROWS_SHOWN) {
            printf("    ... %zu more\n", json_array_size(docs) - DEMO_ROWS_SHOWN);
            break;
        }
        const json_t *doc = json_object_get(e, "doc");
        char amount[32];
        snprintf(amount, sizeof(amount), "%10s", jstr(doc, "amount"));
        printf("    %s %s %s %s %s\n", cell(c1, jstr(e, "id"), 11),
               cell(c2, jstr(doc, "invoice_no"), 13), cell(c3, jstr(doc, "issued_on"), 11),
               amount, cell(c5, jstr(doc, "customer.name"), 24));
    }
}

static int step_open_invoices(struct demo *d)
{
    veil_status st;
    json_t *docs = NULL, *ex = NULL;
    section(d, 3, "All open invoices of organisation " WATCH_ORG " (clerk)");
    const char *q = "{\"where\":{\"org_id\":\"" WATCH_ORG "\",\"status\":\"" WATCH_STATUS
                    "\"},\"limit\":1000}";
    show_call("veil_query invoices", q);
    if (query_all(d->clerk, "invoices", q, &docs, &st) != VEIL_OK) {
        return fail("veil_query", &st);
    }
    say("%zu invoices:", json_array_size(docs));
    print_invoices(docs);
    if (aggregate(d->admin, "invoices",
                  "{\"where\":{\"org_id\":\"" WATCH_ORG "\",\"status\":\"" WATCH_STATUS "\"},"
                  "\"metrics\":{\"n\":{\"count\":\"*\"}},\"explain\":true}",
                  &ex, &st) != VEIL_OK) {
        json_decref(docs);
        return fail("veil_aggregate (explain)", &st);
    }
    const char *ocol = explain_column(ex, "where", "org_id");
    const char *scol = explain_column(ex, "where", "status");
    char otok[129], stok[129];
    watched_token(d, ocol, otok);
    watched_token(d, scol, stok);
    if (d->watched_matches && otok[0] != '\0' && stok[0] != '\0') {
        peek(d, "the proxy asked x_%.8s... for rows having both", d->inv_table);
        peek(d, "  column %.16s... = token %.16s...   (org_id = " WATCH_ORG ")", ocol, otok);
        peek(d, "  column %.16s... = token %.16s...   (status = " WATCH_STATUS ")", scol, stok);
        peek(d, "the same tokens %s holds in those columns (written in step 2)", d->watched);
        sqlite3_stmt *stmt =
            prep(d, "SELECT count(*) FROM \"x_%w\" a JOIN \"x_%w\" b ON a.doc = b.doc WHERE"
                    " a.col = ? AND a.tok = ? AND b.col = ? AND b.tok = ?",
                 d->inv_table, d->inv_table);
        if (stmt != NULL) {
            bind_hex(stmt, 1, ocol);
            bind_hex(stmt, 2, otok);
            bind_hex(stmt, 3, scol);
            bind_hex(stmt, 4, stok);
            if (sqlite3_step(stmt) == SQLITE_ROW) {
                peek(d, "the store can count them itself: %lld rows, as many as the answer",
                     sqlite3_column_int64(stmt, 0));
            }
            sqlite3_finalize(stmt);
        }
    } else {
        peek(d, "the proxy asked for one token in column %.8s... and one in %.8s...", ocol,
             scol);
    }
    learned(d, "that these rows share two tokens, and that someone asked for them (a repeated "
               "query asks for the same tokens); not which organisation or status they stand "
               "for.");
    print_leakage(d, "invoices", "org_id");
    json_decref(ex);
    json_decref(docs);
    return 0;
}

static void print_explain(const json_t *answer)
{
    const json_t *x = json_object_get(answer, "explain");
    size_t i;
    const json_t *e;
    json_array_foreach(json_object_get(json_object_get(x, "store"), "aggregated"), i, e) {
        char line[512];
        snprintf(line, sizeof(line), "explain: the store computed, for %s: %s",
                 jstr(e, "field"), jstr(e, "store computes"));
        wrap("    ", line);
    }
    json_array_foreach(json_object_get(x, "proxy"), i, e) {
        char line[512];
        snprintf(line, sizeof(line), "explain: the proxy %s", json_string_value(e));
        wrap("    ", line);
    }
    if (jstr(x, "integrity")[0] != '\0') {
        char line[512];
        snprintf(line, sizeof(line), "explain: %s", jstr(x, "integrity"));
        wrap("    ", line);
    }
}

/* What a differentially private answer spent and what its noise is, in a line or two. */
static void print_privacy(const json_t *a, const char *metric_unit)
{
    const json_t *p = json_object_get(a, "privacy");
    char line[512];
    if (p == NULL) {
        return;
    }
    snprintf(line, sizeof(line),
             "privacy: %s; spent epsilon %g, left %g for this token and %g for the role "
             "this %s; a group shows only when its noisy count reaches %lld",
             json_is_true(json_object_get(p, "cached")) ? "the answer kept from before"
                                                         : "a new answer",
             json_number_value(json_object_get(json_object_get(p, "spent"), "epsilon")),
             json_number_value(json_object_get(json_object_get(p, "left"), "token")),
             json_number_value(json_object_get(json_object_get(p, "left"), "role")),
             jstr(p, "period.unit"),
             (long long)json_integer_value(json_object_get(p, "threshold")));
    wrap("    ", line);
    const json_t *n = json_object_get(p, "noise");
    const char *k;
    const json_t *v;
    size_t at = (size_t)snprintf(line, sizeof(line), "noise (95%% of answers within):");
    json_object_foreach((json_t *)n, k, v) {
        if (at < sizeof(line)) {
            const json_t *per = json_object_get(v, "error95_per_count");
            at += (size_t)snprintf(line + at, sizeof(line) - at, " %s +-%.6g%s", k,
                                   json_number_value(per != NULL ? per
                                                                 : json_object_get(v, "error95")),
                                   per != NULL ? metric_unit : "");
        }
    }
    wrap("    ", line);
}

static int step_totals(struct demo *d)
{
    veil_status st;
    json_t *a = NULL, *exact = NULL, *again = NULL;
    section(d, 4, "Totals and averages per status (analyst: statistics, never one invoice)");
    const char *q = "{\"group_by\":[\"status\"],\"metrics\":{\"total\":{\"sum\":"
                    "\"amount\"},\"avg\":{\"avg\":\"amount\"},\"n\":{\"count\":\"*\"}},"
                    "\"explain\":true}";
    show_call("veil_aggregate invoices", q);
    if (aggregate(d->analyst, "invoices", q, &a, &st) != VEIL_OK) {
        return fail("veil_aggregate", &st);
    }
    if (aggregate(d->admin, "invoices", q, &exact, &st) != VEIL_OK) {
        json_decref(a);
        return fail("veil_aggregate", &st);
    }
    const json_t *groups = json_object_get(a, "groups");
    say("%zu groups, each with noise (differential privacy); the admin's exact figures "
        "beside them:",
        json_array_size(groups));
    printf("    %-8s %6s %6s %14s %14s %10s %10s\n", "status", "n", "exact", "total", "exact",
           "avg", "exact");
    size_t i, j;
    const json_t *e, *x;
    json_array_foreach(groups, i, e) {
        const json_t *match = NULL;
        json_array_foreach(json_object_get(exact, "groups"), j, x) {
            if (strcmp(jstr(x, "key.status"), jstr(e, "key.status")) == 0) {
                match = x;
            }
        }
        printf("    %-8s %6lld %6lld %14s %14s %10.2f %10.2f\n", jstr(e, "key.status"),
               (long long)json_integer_value(json_object_get(e, "n")),
               (long long)json_integer_value(json_object_get(match, "n")), jstr(e, "total"),
               jstr(match, "total"), json_number_value(json_object_get(e, "avg")),
               json_number_value(json_object_get(match, "avg")));
    }
    print_privacy(a, " / n invoices");
    if (aggregate(d->analyst, "invoices", q, &again, &st) != VEIL_OK) {
        json_decref(a);
        json_decref(exact);
        return fail("veil_aggregate", &st);
    }
    say("Asked again, the same query gets the same answer and spends nothing, so asking "
        "many times cannot average the noise away:");
    print_privacy(again, " / n invoices");
    print_explain(a);
    peek_sums(d, d->inv_table, explain_column(a, "aggregated", "amount"), "amount", NULL);
    learned(d, "which rows fall in the same status group, and how many each group has; it "
               "added cells it cannot read, so its sums are noise until the proxy removes the "
               "key stream. Not one amount. The analyst learned noisy statistics, spent from a "
               "budget, and no invoice's amount.");
    json_decref(a);
    json_decref(exact);
    json_decref(again);
    return 0;
}

static int step_march(struct demo *d)
{
    veil_status st;
    json_t *docs = NULL, *ex = NULL;
    section(d, 5, "Invoices issued in March 2024 (clerk)");
    const char *where = "{\"issued_on\":{\"gte\":\"2024-03-01\",\"lt\":\"2024-04-01\"}}";
    char q[256], body[512];
    snprintf(q, sizeof(q), "{\"where\":%s,\"limit\":1000}", where);
    show_call("veil_query invoices", q);
    if (query_all(d->clerk, "invoices", q, &docs, &st) != VEIL_OK) {
        return fail("veil_query", &st);
    }
    say("%zu invoices:", json_array_size(docs));
    print_invoices(docs);
    snprintf(body, sizeof(body),
             "{\"where\":%s,\"metrics\":{\"n\":{\"count\":\"*\"}},\"explain\":true}", where);
    if (aggregate(d->admin, "invoices", body, &ex, &st) != VEIL_OK) {
        json_decref(docs);
        return fail("veil_aggregate (explain)", &st);
    }
    size_t i;
    const json_t *e;
    json_array_foreach(json_object_get(json_object_get(json_object_get(ex, "explain"), "store"),
                                       "where"),
                       i, e) {
        peek(d, "the proxy asked for %lld %s in column %.8s... (%s)",
             (long long)json_integer_value(json_object_get(e, "tokens")), jstr(e, "kind"),
             jstr(e, "column"), jstr(e, "field"));
    }
    peek(d, "and got back the %lld rows holding one of them",
         (long long)json_integer_value(
             json_object_get(json_array_get(json_object_get(ex, "groups"), 0), "n")));
    learned(d, "which rows fall in a set of prefix blocks of dates, so roughly how the rows "
               "are ordered by date; not the dates.");
    print_leakage(d, "invoices", "issued_on");
    json_decref(ex);
    json_decref(docs);
    return 0;
}

static int step_bmi(struct demo *d)
{
    veil_status st;
    json_t *a = NULL, *b = NULL;
    char *text = NULL;
    section(d, 6, "Average BMI per city (researcher: may aggregate, may not read)");
    veil_err rc = veil_doc_get(d->researcher, "patients", "PAT-000001", &text, &st);
    veil_free(text);
    if (rc == VEIL_OK) {
        return vl_cli_error(1, "demo: the researcher could read a record");
    }
    say("veil_doc_get patients PAT-000001 as researcher: %d %s: %s", veil_err_http_status(rc),
        veil_err_name(rc), st.message);
    const char *q = "{\"group_by\":[\"city\"],\"metrics\":{\"bmi\":{\"avg\":\"bmi\"},"
                    "\"n\":{\"count\":\"*\"}},\"explain\":true}";
    show_call("veil_aggregate patients", q);
    if (aggregate(d->researcher, "patients", q, &a, &st) != VEIL_OK) {
        return fail("veil_aggregate", &st);
    }
    const json_t *groups = json_object_get(a, "groups");
    say("%zu cities shown, with noise (a city shows only when its noisy count of patients "
        "reaches %lld; how many do not is not said):",
        json_array_size(groups),
        (long long)json_integer_value(json_object_get(json_object_get(a, "privacy"),
                                                      "threshold")));
    size_t i;
    const json_t *e;
    json_array_foreach(groups, i, e) {
        char c1[64];
        printf("%s%s %5lld  BMI %5.2f%s", i % 3 == 0 ? "    " : "   ",
               cell(c1, jstr(e, "key.city"), 11),
               (long long)json_integer_value(json_object_get(e, "n")),
               json_number_value(json_object_get(e, "bmi")),
               i % 3 == 2 || i + 1 == json_array_size(groups) ? "\n" : "  |");
    }
    print_privacy(a, " / n patients");
    print_explain(a);
    const char *q2 = "{\"group_by\":[\"city\",\"diagnosis.code\"],\"metrics\":{\"bmi\":"
                     "{\"avg\":\"bmi\"},\"n\":{\"count\":\"*\"}}}";
    if (aggregate(d->researcher, "patients", q2, &b, &st) != VEIL_OK) {
        json_decref(a);
        return fail("veil_aggregate", &st);
    }
    say("Finer: group_by [city, diagnosis.code] shows %zu groups: small groups stay hidden, "
        "and no sequence of such answers within the budget pins down one patient.",
        json_array_size(json_object_get(b, "groups")));
    peek_sums(d, d->pat_table, explain_column(a, "aggregated", "bmi"), "bmi", NULL);
    learned(d, "which records share a city token and how many each city has; no BMI, no "
               "city name, and no record left the proxy: the researcher got averages only.");
    json_decref(a);
    json_decref(b);
    return 0;
}

static int step_search(struct demo *d)
{
    veil_status st;
    char *text = NULL;
    struct watch_kind kv, rows;
    char label[2 * HEX_SHOWN + 4];
    section(d, 7, "Records whose clinical notes mention words (clinician)");
    const char *q = "{\"match\":{\"clinical_notes\":\"chest pain\"},\"select\":[\"patient_no\","
                    "\"clinical_notes\"],\"limit\":3}";
    show_call("veil_query patients", q);
    watch_start();
    veil_err rc = veil_query(d->clinician, "patients", q, strlen(q), &text, &st);
    watch_stop(&kv, &rows, label, sizeof(label));
    if (rc != VEIL_OK) {
        return fail("veil_query", &st);
    }
    json_t *a = json_loads(text, 0, NULL);
    veil_free(text);
    size_t i;
    const json_t *e;
    json_array_foreach(json_object_get(a, "docs"), i, e) {
        char line[1024];
        snprintf(line, sizeof(line), "%s: %s", jstr(e, "id"), jstr(e, "doc.clinical_notes"));
        wrap("    ", line);
    }
    char ktable[70];
    snprintf(ktable, sizeof(ktable), "k_%s", d->pat_table);
    long long entries = count_rows(d, ktable);
    if (kv.stmts > 0) {
        peek_wrapped(d, "the words are stemmed (chest, pain) and each has a counter in trusted "
                        "state; the proxy asked k_%.8s... for %lu index entries by their "
                        "16-byte labels (%s, ...), in %lu statement%s, and got %lu back, out of "
                        "%lld the table holds",
                     d->pat_table, kv.keys, label[0] != '\0' ? label : "random-looking",
                     kv.stmts, kv.stmts == 1 ? "" : "s", kv.rows, entries);
    }
    if (rows.stmts > 0) {
        peek_wrapped(d, "then it asked r_%.8s... for %lu rows by document token and got %lu "
                        "sealed documents; the proxy ranked them (BM25) from the entries' "
                        "counts and the lengths kept in trusted state",
                     d->pat_table, rows.keys, rows.rows);
    }
    learned(d, "which index entries this search read (so how often the searched words were "
               "written, and that a repeat of the search reads the same ones) and which "
               "documents came back; not the words, and nothing about entries written later.");
    print_leakage(d, "patients", "clinical_notes");
    json_decref(a);
    return 0;
}

/* ---- the command ---- */

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static const char demo_usage[] =
    "usage: veil demo [--data DIR] [--count N]\n\n"
    "A guided walk through the two example use cases (invoices, patients), run in this process\n"
    "through libveil on the embedded store: no server, no token. It creates an installation,\n"
    "a tenant `demo` and the example policies (built in), loads N generated invoices and\n"
    "N patients (default 2000 each), and answers the use cases' questions, showing next to\n"
    "each answer what the untrusted store (cloud/cloud.db) holds and learned.\n\n"
    "Without --data it works in a new temporary directory and removes it at the end; with\n"
    "--data DIR it creates DIR (which must not hold an installation yet) and keeps it.\n";

int vl_cmd_demo(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"data", required_argument, NULL, 'd'},
        {"count", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct demo d;
    memset(&d, 0, sizeof(d));
    unsigned count = DEMO_COUNT_DEFAULT;
    const char *data = NULL;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': data = optarg; break;
        case 'n': {
            char *end = NULL;
            unsigned long v = optarg[0] >= '0' && optarg[0] <= '9' ? strtoul(optarg, &end, 10)
                                                                   : 0;
            if (end == NULL || *end != '\0' || v < 1 || v > DEMO_COUNT_MAX) {
                return vl_cli_error(2, "--count is a whole number from 1 to %u",
                                    DEMO_COUNT_MAX);
            }
            count = (unsigned)v;
            break;
        }
        case 'h': fputs(demo_usage, stdout); return 0;
        default: fputs(demo_usage, stderr); return 2;
        }
    }
    if (optind != argc) {
        fputs(demo_usage, stderr);
        return 2;
    }
    char tmp[PATH_MAX_DEMO];
    if (data == NULL) {
        const char *base = getenv("TMPDIR");
        snprintf(tmp, sizeof(tmp), "%s/veil-demo.XXXXXX",
                 base != NULL && base[0] != '\0' ? base : "/tmp");
        if (mkdtemp(tmp) == NULL) {
            return vl_cli_error(1, "cannot create a temporary directory in %s",
                                base != NULL && base[0] != '\0' ? base : "/tmp");
        }
        d.dir = tmp;
    } else {
        d.dir = data;
    }
    d.tty = isatty(STDOUT_FILENO) != 0;
    printf("veil demo: the two example use cases, invoices and patients, run in this process\n"
           "through libveil on the embedded store (no server). Lines marked `store |` show\n"
           "what the untrusted database, cloud/cloud.db, holds: read straight from it.\n"
           "Data directory: %s (%s at the end).\n",
           d.dir, data == NULL ? "removed" : "kept");

    sqlite3_auto_extension((void (*)(void))watch_connection);
    int r = step_setup(&d);
    if (r == 0) {
        char path[PATH_MAX_DEMO];
        snprintf(path, sizeof(path), "%s/cloud/cloud.db", d.dir);
        pthread_mutex_lock(&watch.mu);
        watch.opening_peek = true;
        pthread_mutex_unlock(&watch.mu);
        int orc = sqlite3_open_v2(path, &d.cloud, SQLITE_OPEN_READONLY, NULL);
        pthread_mutex_lock(&watch.mu);
        watch.opening_peek = false;
        pthread_mutex_unlock(&watch.mu);
        if (orc != SQLITE_OK) {
            fprintf(stderr, "veil: demo: cannot open %s read-only: the peeks are left out\n",
                    path);
            sqlite3_close(d.cloud);
            d.cloud = NULL;
        }
        r = step_load(&d, count, count);
    }
    if (r == 0) {
        r = step_open_invoices(&d);
    }
    if (r == 0) {
        r = step_totals(&d);
    }
    if (r == 0) {
        r = step_march(&d);
    }
    if (r == 0) {
        r = step_bmi(&d);
    }
    if (r == 0) {
        r = step_search(&d);
    }
    sqlite3_close(d.cloud);
    veil_session_free(d.clerk);
    veil_session_free(d.analyst);
    veil_session_free(d.researcher);
    veil_session_free(d.clinician);
    veil_session_free(d.admin);
    veil_vault_close(d.v);
    sqlite3_cancel_auto_extension((void (*)(void))watch_connection);
    if (r == 0) {
        section(&d, 8, "Done");
    }
    if (data == NULL) {
        if (nftw(tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0) {
            return vl_cli_error(1, "cannot remove %s", tmp);
        }
        if (r == 0) {
            say("Removed %s. Keep one with `veil demo --data DIR`, then look for yourself: "
                "sqlite3 DIR/cloud/cloud.db .dump", tmp);
        }
    } else if (r == 0) {
        say("Kept %s: look for yourself with sqlite3 %s/cloud/cloud.db .dump, or serve it "
            "with veil server --data %s.", data, data, data);
    }
    return r;
}
