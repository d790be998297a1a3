/*
 * report.c: `bench_core report`, the markdown table from the result lines.
 *
 * One table: each row a veil figure, the baseline measured beside it in the same run, and
 * their ratio (veil / baseline throughput; for memory veil / baseline bytes). Then the
 * set-up and notes on where the gap comes from. No thresholds: nothing here passes or
 * fails on speed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "bench.h"

#define MAX_RESULTS 128
#define MAX_AN 1024 /* "an KEY VALUE" lines of the analytics, search and verify phases */

struct an_kv {
    char key[48];
    char val[64];
};

struct result {
    char phase[16];
    char side[8];
    unsigned threads;
    size_t ops;
    double secs;
    unsigned long long units;
};

struct results {
    struct result r[MAX_RESULTS];
    size_t n;
    long base_hwm;  /* KiB, of the baseline process whose own footprint was largest */
    long base_data; /* KiB of documents that process held */
    struct an_kv an[MAX_AN];
    size_t nan;
};

static const char *const phases[] = {"put", "get", "bulk", "query", "inproc"};

static int results_load(const char *path, struct results *rs)
{
    FILE *f = fopen(path, "r");
    char line[256];
    long best_own = -1;
    if (f == NULL) {
        fprintf(stderr, "bench: report: cannot open %s\n", path);
        return -1;
    }
    memset(rs, 0, sizeof(*rs));
    rs->base_hwm = -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        char side[8];
        long hwm;
        long data;
        if (strncmp(line, "an ", 3) == 0) {
            struct an_kv *kv = &rs->an[rs->nan];
            if (rs->nan < MAX_AN && sscanf(line + 3, "%47s %63s", kv->key, kv->val) == 2) {
                rs->nan++;
            }
            continue;
        }
        if (sscanf(line, "rss %7s %ld %ld", side, &hwm, &data) == 3) {
            if (strcmp(side, "base") == 0 && hwm - data > best_own) {
                best_own = hwm - data;
                rs->base_hwm = hwm;
                rs->base_data = data;
            }
            continue;
        }
        if (rs->n == MAX_RESULTS) {
            break;
        }
        struct result *r = &rs->r[rs->n];
        if (sscanf(line, "%15s %7s %u %zu %lf %llu", r->phase, r->side, &r->threads, &r->ops,
                   &r->secs, &r->units) == 6 &&
            r->secs > 0) {
            rs->n++;
        }
    }
    fclose(f);
    return 0;
}

static const struct result *find(const struct results *rs, const char *phase, const char *side,
                                 unsigned threads)
{
    for (size_t i = 0; i < rs->n; i++) {
        const struct result *r = &rs->r[i];
        if (strcmp(r->phase, phase) == 0 && strcmp(r->side, side) == 0 && r->threads == threads) {
            return r;
        }
    }
    return NULL;
}

static double rate(const struct result *r)
{
    return (double)r->units / r->secs;
}

/* 1234567.8 -> "1,234,568" */
static void fmt_int(double v, char *out, size_t cap)
{
    char digits[32];
    char tmp[48];
    size_t k = 0;
    snprintf(digits, sizeof(digits), "%.0f", v < 0 ? 0 : v);
    size_t n = strlen(digits);
    for (size_t i = 0; i < n && k + 2 < sizeof(tmp); i++) {
        if (i > 0 && (n - i) % 3 == 0) {
            tmp[k++] = ',';
        }
        tmp[k++] = digits[i];
    }
    tmp[k] = '\0';
    snprintf(out, cap, "%s", tmp);
}

static const char *unit_of(const char *phase)
{
    if (strcmp(phase, "query") == 0) {
        return "queries/s";
    }
    if (strcmp(phase, "inproc") == 0) {
        return "fields/s";
    }
    return "docs/s";
}

static void label_of(const struct result *v, char *out, size_t cap)
{
    const char *th = v->threads == 1 ? "thread" : "threads";
    if (strcmp(v->phase, "put") == 0) {
        snprintf(out, cap,
                 "PUT one document over HTTP, %u client %s (vs INSERT, one transaction each)",
                 v->threads, th);
    } else if (strcmp(v->phase, "get") == 0) {
        snprintf(out, cap, "GET one document by id over HTTP, %u client %s (vs SELECT by key)",
                 v->threads, th);
    } else if (strcmp(v->phase, "bulk") == 0) {
        unsigned long long batch = (v->units + v->ops - 1) / v->ops;
        snprintf(out, cap,
                 "Bulk load, POST /bulk with %llu NDJSON lines a request (vs transactions "
                 "of %llu)",
                 batch, batch);
    } else if (strcmp(v->phase, "query") == 0) {
        snprintf(out, cap,
                 "Equality query org_id=X, limit 100, over HTTP, %u client %s (vs SELECT on "
                 "an expression index)",
                 v->threads, th);
    } else {
        snprintf(out, cap,
                 "In process: veil_doc_put in a loop, %.1f fields/doc (vs INSERT in process)",
                 (double)v->units / (double)v->ops);
    }
}

static void gap_of(const struct result *v, const struct result *b, char *out, size_t cap)
{
    /* Time veil adds per document or query, in microseconds (single-thread rows). */
    double us = (v->secs / (double)v->units - b->secs / (double)b->units) * 1e6;
    char add[64] = "";
    if (v->threads == 1 && strcmp(v->phase, "inproc") != 0) {
        snprintf(add, sizeof(add), "; +%.0f us a %s", us,
                 strcmp(v->phase, "query") == 0 ? "query" : "document");
    }
    if (strcmp(v->phase, "put") == 0) {
        snprintf(out, cap,
                 "HTTP and JSON checks; per field AEAD + SIV/index labels; trusted intent and "
                 "finish transactions around the store write%s",
                 add);
    } else if (strcmp(v->phase, "get") == 0) {
        snprintf(out, cap,
                 "HTTP; trusted digest and version check; AEAD open per field; role view and "
                 "JSON re-encoding%s",
                 add);
    } else if (strcmp(v->phase, "bulk") == 0) {
        snprintf(out, cap,
                 "index entries (per eq token, several per range field) keyed by random "
                 "tokens, into the store's small newest partition and merged by level; "
                 "sealing; the trusted token sets; NDJSON answer%s",
                 add);
    } else if (strcmp(v->phase, "query") == 0) {
        snprintf(out, cap,
                 "SIV token lookup, then 100 rows checked against trusted digests, "
                 "opened field by field and re-encoded%s",
                 add);
    } else {
        double per_field = (v->secs - b->secs) / (double)v->units * 1e6;
        snprintf(out, cap, "no HTTP: sealing, index labels, intents; veil adds %.2f us per field",
                 per_field);
    }
}


/* ---- the analytics rows (bench/analytics.c) ---- */

static void cell(char *out, size_t cap, double v, const char *unit);

static const char *an_str(const struct results *rs, const char *key)
{
    for (size_t i = rs->nan; i-- > 0;) {
        if (strcmp(rs->an[i].key, key) == 0) {
            return rs->an[i].val;
        }
    }
    return NULL;
}

/* The value of key, or -1 when absent. */
static double an_num(const struct results *rs, const char *key)
{
    const char *v = an_str(rs, key);
    return v != NULL ? strtod(v, NULL) : -1;
}

static double an_pfx(const struct results *rs, const char *pfx, const char *key)
{
    char k[64];
    snprintf(k, sizeof(k), "%s_%s", pfx, key);
    return an_num(rs, k);
}

/* Seconds as "1,234 ms" or, under 10 ms, "1.23 ms". */
static void fmt_ms(double s, char *out, size_t cap)
{
    if (s * 1e3 < 10) {
        snprintf(out, cap, "%.2f ms", s * 1e3);
    } else {
        char n[48];
        fmt_int(s * 1e3, n, sizeof(n));
        snprintf(out, cap, "%s ms", n);
    }
}

static int dp_rows(const struct results *rs);

static int an_rows(const struct results *rs)
{
    int rows = 0;
    char vc[64], bc[64], n1[48], n2[48], n3[48], n4[48], label[400], gap[1400];
    double reps = an_num(rs, "reps"), batch = an_num(rs, "batch");
    const char *lo = an_str(rs, "window_lo"), *hi = an_str(rs, "window_hi");
    double ashe_all_v = an_num(rs, "ashe_all_veil_s");

    for (int pa = 0; pa < 2; pa++) {
        const char *pfx = pa ? "paillier" : "ashe";
        const char *scheme = pa ? "Paillier 2048-bit" : "ASHE";
        double docs = an_pfx(rs, pfx, "docs");
        for (int f = 0; f < 2; f++) {
            char k[32];
            snprintf(k, sizeof(k), "%s_%s", pfx, f ? "filter" : "all");
            double v = an_pfx(rs, k, "veil_s"), b = an_pfx(rs, k, "plain_s");
            double rows_in = an_pfx(rs, k, "rows"), groups = an_pfx(rs, k, "groups");
            double runs = an_pfx(rs, k, "runs"), toks = an_pfx(rs, k, "tokens");
            if (v <= 0 || b <= 0 || docs <= 0) {
                continue;
            }
            fmt_int(docs, n1, sizeof(n1));
            fmt_int(groups, n2, sizeof(n2));
            fmt_int(rows_in, n3, sizeof(n3));
            if (f == 0) {
                snprintf(label, sizeof(label),
                         "Analytics in process: SUM(amount) GROUP BY org over %s invoices "
                         "(%s orgs), %s (vs plaintext SQLite, same rows)",
                         n1, n2, scheme);
            } else {
                snprintf(label, sizeof(label),
                         "Analytics in process: the same with a %.1f%% date filter (issued_on "
                         "in [%s, %s): %s rows, %s orgs), %s (vs plaintext SQLite)",
                         100.0 * rows_in / docs, lo ? lo : "?", hi ? hi : "?", n3, n2, scheme);
            }
            fmt_ms(v, vc, sizeof(vc));
            fmt_ms(b, bc, sizeof(bc));
            int at = snprintf(gap, sizeof(gap), "veil takes %.1fx the plaintext time (+%.1f ms; "
                              "medians of %.0f)", v / b, (v - b) * 1e3, reps);
            if (!pa && f == 0) {
                double st = an_pfx(rs, k, "store_s"), os = an_pfx(rs, k, "opaque_sum_s");
                double sv = an_pfx(rs, k, "split_veil_s");
                fmt_int(runs, n4, sizeof(n4));
                if (st > 0 && os > 0 && sv > 0) {
                    at += snprintf(gap + at, sizeof(gap) - (size_t)at,
                                   ". Steps, timed interleaved (veil_aggregate %.0f ms then): "
                                   "(1) a bare SUM of the ASHE limbs grouped by org token on "
                                   "the opaque tables (s_ joined to y_ by row number, "
                                   "no runs) takes %.0f ms, %.1fx plaintext; "
                                   "(2) the store's aggregate call takes %.0f ms: %+.0f ms for "
                                   "the runs (each group's row numbers gathered, sorted and "
                                   "returned as maximal runs of consecutive numbers: an org's "
                                   "rows are scattered, so %s runs for %s rows); (3) the proxy, "
                                   "veil_aggregate minus the store call, %+.0f ms: the ASHE key "
                                   "stream over the %s runs (one ChaCha20 pass over the span "
                                   "of row numbers), %s group keys decrypted (AES-SIV), JSON",
                                   sv * 1e3, os * 1e3, os / b, st * 1e3, (st - os) * 1e3, n4,
                                   n3, (sv - st) * 1e3, n4, n2);
                }
            } else if (!pa) {
                double sv = an_num(rs, "ashe_all_split_veil_s");
                double st = an_num(rs, "ashe_all_store_s");
                double g_all = an_num(rs, "ashe_all_groups");
                fmt_int(runs, n4, sizeof(n4));
                at += snprintf(gap + at, sizeof(gap) - (size_t)at,
                               ". The filter is %.0f range prefix tokens looked up in x_ (a set "
                               "of %s row numbers, each token sought in every partition), then "
                               "the same joins per row (y_, s_ by row number); %s runs, %s keys "
                               "decrypted; plaintext reads %s rows through its issued_on index",
                               toks, n3, n4, n2, n3);
                if (sv > 0 && st > 0 && g_all > 0) {
                    at += snprintf(gap + at, sizeof(gap) - (size_t)at,
                                   ". The proxy's per-group work (AES-SIV key decryption, "
                                   "decimal, JSON) came to %.0f ms for %.0f groups in the "
                                   "unfiltered split above, so about %.0f ms of this gap; the "
                                   "rest is the store's token lookups and joins",
                                   (sv - st) * 1e3, g_all, (sv - st) * 1e3 * groups / g_all);
                }
            } else {
                double rate = rows_in / v;
                double ashe = f ? an_num(rs, "ashe_filter_veil_s") : ashe_all_v;
                double ashe_docs = an_num(rs, "ashe_docs");
                char r1[48];
                fmt_int(rate, r1, sizeof(r1));
                at += snprintf(gap + at, sizeof(gap) - (size_t)at,
                               "; the store multiplies %s 4096-bit ciphertexts modulo n^2 "
                               "(GMP, inside SQLite), the proxy decrypts one product per group "
                               "(%s, CRT)",
                               n3, n2);
                /* Two measured points (all rows; the filter) give a per-row cost a (the
                 * store's multiplications) and a per-group cost b (one decryption each):
                 * t = rows a + groups b. */
                double v2 = an_num(rs, "paillier_filter_veil_s");
                double r2 = an_num(rs, "paillier_filter_rows");
                double g2 = an_num(rs, "paillier_filter_groups");
                double v1 = an_num(rs, "paillier_all_veil_s");
                double r1n = an_num(rs, "paillier_all_rows");
                double g1 = an_num(rs, "paillier_all_groups");
                double det = r1n * g2 - r2 * g1;
                double pa_a = det != 0 ? (v1 * g2 - v2 * g1) / det : -1;
                double pa_b = det != 0 ? (r1n * v2 - r2 * v1) / det : -1;
                if (f == 0 && ashe > 0 && ashe_docs > 0) {
                    fmt_int(ashe_docs, n4, sizeof(n4));
                    at += snprintf(gap + at, sizeof(gap) - (size_t)at,
                                   ". Extrapolation: %s rows/s aggregated, so %s rows would "
                                   "take ~%.1f s assuming cost linear in rows, vs %.2f s with "
                                   "ASHE measured above (%.0fx)",
                                   r1, n4, ashe_docs / rate, ashe, ashe_docs / rate / ashe);
                    if (pa_a > 0 && pa_b > 0) {
                        double g_full = an_num(rs, "ashe_all_groups");
                        at += snprintf(gap + at, sizeof(gap) - (size_t)at,
                                       "; but the cost is mostly per group: fitting both "
                                       "Paillier rows to rows x a + groups x b gives a = "
                                       "%.1f us a row (multiplication in the store) and b = "
                                       "%.2f ms a group (decryption), so %s rows in %.0f "
                                       "groups would take ~%.1f s (%.0fx ASHE)",
                                       pa_a * 1e6, pa_b * 1e3, n4, g_full,
                                       ashe_docs * pa_a + g_full * pa_b,
                                       (ashe_docs * pa_a + g_full * pa_b) / ashe);
                    }
                } else if (f == 1 && pa_a > 0 && pa_b > 0) {
                    at += snprintf(gap + at, sizeof(gap) - (size_t)at,
                                   "; nearly all of it the %s decryptions (~%.2f ms each, from "
                                   "the fit in the row above)",
                                   n2, pa_b * 1e3);
                }
            }
            printf("| %s | %s | %s | %.2fx | %s |\n", label, vc, bc, b / v, gap);
            rows++;
        }
    }
    rows += dp_rows(rs);
    for (int pa = 0; pa < 2; pa++) {
        const char *pfx = pa ? "paillier" : "ashe";
        double docs = an_pfx(rs, pfx, "docs");
        double v = an_pfx(rs, pfx, "load_veil_s"), b = an_pfx(rs, pfx, "load_plain_s");
        if (docs <= 0 || v <= 0 || b <= 0) {
            continue;
        }
        fmt_int(docs, n1, sizeof(n1));
        cell(vc, sizeof(vc), docs / v, "docs/s");
        cell(bc, sizeof(bc), docs / b, "docs/s");
        if (!pa) {
            double sb = an_num(rs, "ashe_store_bytes"), pb = an_num(rs, "ashe_plain_bytes");
            snprintf(label, sizeof(label),
                     "Analytics load in process: veil_bulk of %.0f lines, %s invoices, eq + "
                     "range + sum (ASHE) tactics (vs plain SQLite INSERTs, org and date "
                     "indexes, transactions of %.0f)",
                     batch, n1, batch);
            snprintf(gap, sizeof(gap),
                     "+%.0f us a document: 3 equality tokens, 12 range prefix tokens (6 for "
                     "the date, 6 for the bounded amount), one ASHE cell and its MAC tag, "
                     "sealed fields, a trusted intent per batch; the store file grows to "
                     "%.2f GB against %.2f GB of plain table; index entries, keyed by random "
                     "tokens, go to a small partition merged into larger ones by level",
                     (v - b) / docs * 1e6, sb / 1e9, pb / 1e9);
        } else {
            snprintf(label, sizeof(label),
                     "Analytics load in process: the same, amount summed with Paillier "
                     "2048-bit, first %s invoices (vs plain SQLite, same rows)",
                     n1);
            snprintf(gap, sizeof(gap),
                     "+%.0f us a document: on top of the tactics above, one Paillier "
                     "encryption (modular exponentiations on 2048/4096-bit numbers) and a "
                     "512-byte cell; at this rate 1,000,000 invoices take ~%.0f min to load",
                     (v - b) / docs * 1e6, 1e6 / (docs / v) / 60);
        }
        printf("| %s | %s | %s | %.2fx | %s |\n", label, vc, bc, b / v, gap);
        rows++;
    }
    return rows;
}

/* ---- differential privacy (bench/analytics.c: dp_cost, dp_error) ---- */

/* The group sizes of the error table, as analytics.c makes them. */
static const unsigned dp_sizes[] = {50, 100, 250, 500, 1000, 5000};

/* A relative error as a percentage: "0.42%", "3.1%", "105%"; "-" when no answer showed the
 * group. */
static void fmt_pct(double v, char *out, size_t cap)
{
    if (v < 0) {
        snprintf(out, cap, "-");
    } else if (v == 0) {
        snprintf(out, cap, "0%%");
    } else if (v * 100 < 1) {
        snprintf(out, cap, "%.2f%%", v * 100);
    } else if (v * 100 < 100) {
        snprintf(out, cap, "%.1f%%", v * 100);
    } else {
        snprintf(out, cap, "%.0f%%", v * 100);
    }
}

static double dp_err(const struct results *rs, unsigned size, const char *what)
{
    char k[48];
    snprintf(k, sizeof(k), "dp_err_%u_%s", size, what);
    return an_num(rs, k);
}

/* The cost of noise: a new private answer, and a repeat's kept answer, each against the
 * exact answer of the same aggregate. */
static int dp_rows(const struct results *rs)
{
    double ex = an_num(rs, "dp_exact_s"), no = an_num(rs, "dp_noisy_s");
    double ke = an_num(rs, "dp_kept_s"), reps = an_num(rs, "reps");
    char vc[64], bc[64], n1[48], n2[48], sc[48], label[400], gap[1400];
    if (ex <= 0 || no <= 0 || ke <= 0) {
        return 0;
    }
    fmt_int(an_num(rs, "dp_scale_total"), sc, sizeof(sc));
    fmt_int(an_num(rs, "dp_rows"), n1, sizeof(n1));
    fmt_int(an_num(rs, "dp_groups"), n2, sizeof(n2));
    fmt_ms(no, vc, sizeof(vc));
    fmt_ms(ex, bc, sizeof(bc));
    snprintf(label, sizeof(label),
             "Analytics: DP noise, SUM+COUNT+AVG GROUP BY org over %s invoices (%s orgs), in "
             "process, analyst session, a new answer each time (`refresh`) (vs the same "
             "aggregate exact, admin session)",
             n1, n2);
    snprintf(gap, sizeof(gap),
             "the private answer takes %.2fx the exact time (%+.1f ms; medians of %.0f, "
             "interleaved with the exact and the kept answers). Both run the same store "
             "aggregate and decrypt the same sums; the private one adds a durable "
             "trusted-state transaction before it (the token's and the role's budgets paid, "
             "the answer marked pending) and one after (the answer kept as text), 3 exact "
             "discrete Laplace draws a group (the count, the centred sum of amounts, the "
             "count of amounts: epsilon %.6g split three ways, scales %.0f and %s) from a "
             "ChaCha20 stream, and partition selection (threshold %.0f; %.1f of %s groups "
             "shown on average). The budget reset before each answer (admin, %.2f ms) is "
             "not timed; these two rows took %.1f s in all",
             no / ex, (no - ex) * 1e3, reps, an_num(rs, "dp_epsilon"),
             an_num(rs, "dp_scale_n"), sc, an_num(rs, "dp_threshold"),
             an_num(rs, "dp_shown"), n2, an_num(rs, "dp_reset_s") * 1e3,
             an_num(rs, "dp_cost_secs"));
    printf("| %s | %s | %s | %.2fx | %s |\n", label, vc, bc, ex / no, gap);
    fmt_ms(ke, vc, sizeof(vc));
    snprintf(label, sizeof(label),
             "Analytics: DP, the same query asked again without `refresh`: the kept answer, "
             "in process, analyst session (vs the same aggregate exact, admin session)");
    snprintf(gap, sizeof(gap),
             "the kept answer takes %.3fx the exact time (medians of %.0f): one trusted-state "
             "transaction reads the answer kept under the query's hash (keys sorted, "
             "`refresh` and `explain` left out) and it is sent again, with no store work, no "
             "new noise and no budget spent; every repeat was checked to equal the answer it "
             "keeps",
             ke / ex, reps);
    printf("| %s | %s | %s | %.2fx | %s |\n", label, vc, bc, ex / ke, gap);
    return 2;
}

/* The error table, after the main one: relative error by group size. */
static void dp_error_table(const struct results *rs)
{
    double reps = an_num(rs, "dp_err_reps");
    char sc[48], nd[48], c[6][24];
    if (reps <= 0) {
        return;
    }
    fmt_int(an_num(rs, "dp_scale_total"), sc, sizeof(sc));
    fmt_int(an_num(rs, "dp_err_docs"), nd, sizeof(nd));
    printf("\n## Differential privacy: error by group size\n\n");
    printf("Relative error |noisy - exact| / |exact| of the analyst's answers to "
           "`{\"group_by\":[\"org_id\"],\"metrics\":{\"total\":{\"sum\":\"amount\"},"
           "\"n\":{\"count\":\"*\"},\"mean\":{\"avg\":\"amount\"}}}` under the defaults of "
           "examples/invoices.yaml (epsilon %.6g an answer, split over 3 noisy quantities: "
           "noise of scale %.0f on the count, %s on the sum of amounts; a group is shown when "
           "its noisy count reaches %.0f). %.0f new answers (`refresh`, the budget reset "
           "before each), in process, over %s generated invoices in a tenant of their own, "
           "one organisation per group size (loading them and the answers took %.0f s). "
           "Median and 95th percentile (nearest rank) over the answers that showed the "
           "group; \"not shown\" is the share of answers that left the group out.\n\n",
           an_num(rs, "dp_epsilon"), an_num(rs, "dp_scale_n"), sc,
           an_num(rs, "dp_err_threshold"), reps, nd, an_num(rs, "dp_err_secs"));
    printf("| documents in the group | not shown | count: median | count: 95%% | sum: median "
           "| sum: 95%% | mean: median | mean: 95%% |\n");
    printf("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (size_t i = 0; i < sizeof(dp_sizes) / sizeof(dp_sizes[0]); i++) {
        unsigned z = dp_sizes[i];
        double shown = dp_err(rs, z, "shown");
        char zs[24], ns[24];
        if (shown < 0) {
            continue;
        }
        const char *w[6] = {"n_med", "n_p95", "total_med", "total_p95", "mean_med", "mean_p95"};
        for (int k = 0; k < 6; k++) {
            fmt_pct(dp_err(rs, z, w[k]), c[k], sizeof(c[k]));
        }
        fmt_int(z, zs, sizeof(zs));
        fmt_pct((reps - shown) / reps, ns, sizeof(ns));
        printf("| %s | %s | %s | %s | %s | %s | %s | %s |\n", zs, ns, c[0], c[1], c[2], c[3],
               c[4], c[5]);
    }
    char a1[24], a2[24], a3[24], b1[24], b2[24], b3[24], zs[24], hidden[256];
    fmt_pct(dp_err(rs, 1000, "n_med"), a1, sizeof(a1));
    fmt_pct(dp_err(rs, 1000, "total_med"), a2, sizeof(a2));
    fmt_pct(dp_err(rs, 1000, "mean_p95"), a3, sizeof(a3));
    /* the sizes mostly left out, and the smallest mostly shown */
    unsigned small = 0;
    size_t at = 0;
    hidden[0] = '\0';
    for (size_t i = 0; i < sizeof(dp_sizes) / sizeof(dp_sizes[0]); i++) {
        double shown = dp_err(rs, dp_sizes[i], "shown");
        char ns[24];
        if (shown < 0) {
            continue;
        }
        if (shown < reps / 2) {
            fmt_pct((reps - shown) / reps, ns, sizeof(ns));
            at += (size_t)snprintf(hidden + at, at < sizeof(hidden) ? sizeof(hidden) - at : 0,
                                   "%s%u invoices in %s of the answers", at ? ", " : "",
                                   dp_sizes[i], ns);
        } else if (small == 0) {
            small = dp_sizes[i];
        }
    }
    fmt_pct(dp_err(rs, small, "total_med"), b1, sizeof(b1));
    fmt_pct(dp_err(rs, small, "total_p95"), b2, sizeof(b2));
    fmt_pct(dp_err(rs, small, "mean_med"), b3, sizeof(b3));
    fmt_int(small, zs, sizeof(zs));
    printf("\nWhat it means: the noise does not depend on a group's size, so the relative "
           "error falls as one over the size. For an organisation with 1,000 invoices, half "
           "of the answers have the count within %s and the total within %s, and 19 in 20 "
           "the mean within %s. For one with %s invoices, the smallest shown in most answers, "
           "the total is off by %s in half of the answers and by up to %s in 19 of 20, the "
           "mean by %s in half: at such sizes the noise is of the order of the figures "
           "themselves, which is what keeps a single invoice (up to 50,000 of amount) from "
           "being seen in them.%s%s%s An analyst who wants sharper figures for one question "
           "can spend a whole day's budget on it (`\"epsilon\": 1`: four times less noise).\n",
           a1, a2, a3, zs, b1, b2, b3, hidden[0] ? " Groups were left out (their noisy count "
                                                   "below the threshold) for " : "",
           hidden, hidden[0] ? "." : "");
}

/* ---- verification on and off (bench/verify.c and the analytics phase) ---- */

/* "the verified path takes 1.23x the time (+0.45 ms a query; limit 1.5x)" */
static int vf_times(char *out, size_t cap, double on, double off, double per, const char *unit,
                    double limit)
{
    double d = (on - off) / per;
    return snprintf(out, cap,
                    "verified takes %.2fx the time without (%s%.*f %s a %s; limit %.1fx%s)",
                    on / off, d >= 0 ? "+" : "-", fabs(d) * 1e3 < 10 ? 2 : 1,
                    fabs(d) * 1e3, "ms", unit, limit, on / off > limit ? ": OVER IT" : "");
}

static void vf_row(const char *label, double on, double off, double n, const char *unit,
                   const char *gap, int rate)
{
    char vc[64], bc[64];
    if (rate) {
        cell(vc, sizeof(vc), n / on, unit);
        cell(bc, sizeof(bc), n / off, unit);
    } else {
        fmt_ms(on / n, vc, sizeof(vc));
        fmt_ms(off / n, bc, sizeof(bc));
    }
    printf("| %s | %s | %s | %.2fx | %s |\n", label, vc, bc, off / on, gap);
}

static int vf_rows(const struct results *rs)
{
    int rows = 0;
    char label[600], gap[1600], n1[48], n2[48], n3[48], n4[48];
    double docs = an_num(rs, "vf_docs"), orgs = an_num(rs, "vf_orgs");
    double tks = an_num(rs, "vf_tks_per_doc"), tsrows = an_num(rs, "vf_tokset_rows");
    double win = an_num(rs, "vf_window_docs"), rounds = an_num(rs, "vf_rounds");
    double lon = an_num(rs, "vf_load_on_s"), loff = an_num(rs, "vf_load_off_s");
    if (docs > 0 && lon > 0 && loff > 0) {
        fmt_int(docs, n1, sizeof(n1));
        fmt_int(tsrows, n2, sizeof(n2));
        snprintf(label, sizeof(label),
                 "Verification, bulk load in process: veil_bulk of %.0f lines, %s invoices, "
                 "verified (vs the same into a data directory without verification, the batches "
                 "in turn)",
                 an_num(rs, "vf_batch"), n1);
        int at = vf_times(gap, sizeof(gap), lon, loff, docs, "document", 1.3);
        snprintf(gap + at, sizeof(gap) - (size_t)at,
                 ". Per document %.1f token keys (keyed BLAKE2b: the collection's `all` set, "
                 "each index token's set, each indexed column's `any` set), kept in docs.tks "
                 "and carried by the intent; the batch's finishing transaction adds each "
                 "document's contributions to the count and the two set hashes of each of its "
                 "keys (%s token sets after the load)",
                 tks, n2);
        vf_row(label, lon, loff, docs, "docs/s", gap, 1);
        rows++;

        double ton = an_num(rs, "vf_trusted_on_bytes"), toff = an_num(rs, "vf_trusted_off_bytes");
        double son = an_num(rs, "vf_store_on_bytes"), soff = an_num(rs, "vf_store_off_bytes");
        double tson = an_num(rs, "vf_tokset_on_bytes");
        double don = an_num(rs, "vf_docs_on_bytes"), doff = an_num(rs, "vf_docs_off_bytes");
        if (ton > 0 && toff > 0) {
            fmt_int(ton / docs, n1, sizeof(n1));
            fmt_int(toff / docs, n2, sizeof(n2));
            snprintf(label, sizeof(label),
                     "Verification, trusted state a document: trusted.db after the load, WAL "
                     "checkpointed, verified (vs without verification)");
            snprintf(gap, sizeof(gap),
                     "size, lower is better. Token sets cost %.0f bytes a document of trusted "
                     "state: the table tokset %.0f B a document (%s rows, one per distinct "
                     "token key: a 16-byte key, a count and two 16-byte set hashes; most are "
                     "tokens of few documents: each invoice_no, the finer range prefixes of "
                     "amount and issued_on) and the docs table %+.0f B a document "
                     "(docs.tks, %.1f keys of 16 bytes, and its B-tree overhead)",
                     (ton - toff) / docs, tson / docs, (fmt_int(tsrows, n3, sizeof(n3)), n3),
                     (don - doff) / docs, tks);
            printf("| %s | %s B | %s B | %.2fx | %s |\n", label, n1, n2, ton / toff, gap);
            rows++;
        }
        if (son > 0 && soff > 0) {
            fmt_int(son / docs, n1, sizeof(n1));
            fmt_int(soff / docs, n2, sizeof(n2));
            printf("| Verification, the store a document: cloud.db after the load, WAL "
                   "checkpointed, verified (vs without verification) | %s B | %s B | %.2fx | "
                   "size, lower is better; the store keeps nothing more for verification (%+.0f "
                   "B a document: page fill) |\n",
                   n1, n2, son / soff, (son - soff) / docs);
            rows++;
        }
    }
    static const struct {
        const char *key;
        const char *label;
        const char *extra;
    } puts_[] = {
        {"put_new", "veil_doc_put of new documents",
         "the new version's token keys computed and written with the intent (docs.tks); the "
         "finishing transaction reads and writes one tokset row a key (count, two set "
         "hashes); the keys' class bytes keep the sets every write touches (coarse range "
         "prefixes, all, any) on a few pages, the rest are on scattered B-tree pages of "
         "trusted.db"},
        {"put_replace", "veil_doc_put replacing loaded documents (another invoice's fields)",
         "as for a new document, and the old version's keys read back (docs.tks) and its "
         "contributions taken out: the finishing transaction updates the union of both "
         "versions' keys (a key in both keeps its count and hq, its ha moves to the new row "
         "number)"},
    };
    for (size_t i = 0; i < sizeof(puts_) / sizeof(puts_[0]); i++) {
        char k[64];
        snprintf(k, sizeof(k), "vf_%s_on_s", puts_[i].key);
        double on = an_num(rs, k);
        snprintf(k, sizeof(k), "vf_%s_off_s", puts_[i].key);
        double off = an_num(rs, k);
        snprintf(k, sizeof(k), "vf_%s_n", puts_[i].key);
        double n = an_num(rs, k);
        if (on <= 0 || off <= 0 || n <= 0) {
            continue;
        }
        fmt_int(n, n1, sizeof(n1));
        snprintf(label, sizeof(label),
                 "Verification, writes in process: %s, %s a side, verified (vs without "
                 "verification, each in its own data directory, %.0f rounds in turn)",
                 puts_[i].label, n1, rounds);
        int at = vf_times(gap, sizeof(gap), on, off, n, "document", 1.3);
        snprintf(gap + at, sizeof(gap) - (size_t)at, ". Extra: %s", puts_[i].extra);
        vf_row(label, on, off, n, "docs/s", gap, 1);
        rows++;
    }
    fmt_int(docs / (orgs > 0 ? orgs : 1), n1, sizeof(n1));
    fmt_int(win, n2, sizeof(n2));
    fmt_int(docs, n3, sizeof(n3));
    fmt_int(an_num(rs, "vf_small_docs"), n4, sizeof(n4));
    const char *lo = an_str(rs, "vf_window_lo"), *hi = an_str(rs, "vf_window_hi");
    struct {
        const char *key;
        char label[300];
        char extra[700];
    } qs[7];
    memset(qs, 0, sizeof(qs));
    qs[0].key = "q_eq";
    snprintf(qs[0].label, sizeof(qs[0].label), "org_id = X, limit 100 (the first page)");
    snprintf(qs[0].extra, sizeof(qs[0].extra),
             "all the org's members (about %s: token index and document token, from the "
             "store's index alone), their count and set hash (a keyed SipHash a member) "
             "checked against the trusted set, sorted; the first 100 fetched and opened as without. Unverified: "
             "the store's index page of 100",
             n1);
    qs[1].key = "q_eq_all";
    snprintf(qs[1].label, sizeof(qs[1].label),
             "org_id = X paged to the end, limit 100 a page (every document of the org)");
    snprintf(qs[1].extra, sizeof(qs[1].extra),
             "each page asks for and checks the org's members again (about %s a page), so the "
             "extra work is pages x members; every page's documents are fetched and opened on "
             "both sides; each paged total was checked against the org's documents",
             n1);
    qs[2].key = "q_in3";
    snprintf(qs[2].label, sizeof(qs[2].label), "org_id in [3 orgs], limit 100");
    snprintf(qs[2].extra, sizeof(qs[2].extra),
             "the members of the 3 tokens (about 3 x %s) checked token by token, merged and "
             "sorted, before the first 100",
             n1);
    qs[3].key = "q_range";
    snprintf(qs[3].label, sizeof(qs[3].label),
             "issued_on in a window of whole days holding about 1%% of the rows (%s; e.g. "
             "[%s, %s)), limit 100",
             n2, lo ? lo : "?", hi ? hi : "?");
    snprintf(qs[3].extra, sizeof(qs[3].extra),
             "the members of the window's range prefix tokens (about %s rows) checked per "
             "token",
             n2);
    qs[4].key = "q_orgrange";
    snprintf(qs[4].label, sizeof(qs[4].label),
             "org_id = X AND the same 1%% window, limit 100");
    {
        double per_org = docs / (orgs > 0 ? orgs : 1);
        double small = win < per_org ? win : per_org, big = win < per_org ? per_org : win;
        if (big <= 8 * small + 256) {
            snprintf(qs[4].extra, sizeof(qs[4].extra),
                     "both conditions' members checked (about %s + %s: the larger set is within "
                     "8 times the smaller plus 256, so it is intersected rather than checked on "
                     "the opened documents), then the intersection fetched",
                     n2, n1);
        } else {
            snprintf(qs[4].extra, sizeof(qs[4].extra),
                     "the smaller condition's members checked (about %.0f); the other "
                     "condition (more than 8 times larger) is checked on the opened documents",
                     small);
        }
    }
    qs[5].key = "q_sel_big";
    snprintf(qs[5].label, sizeof(qs[5].label), "invoice_no = one value, %s documents", n3);
    snprintf(qs[5].extra, sizeof(qs[5].extra),
             "one member checked against its token's trusted set (one trusted-state read); "
             "the work does not depend on the collection's size: compare the next row");
    qs[6].key = "q_sel_small";
    snprintf(qs[6].label, sizeof(qs[6].label),
             "invoice_no = one value, a collection of %s documents (a tenth)", n4);
    snprintf(qs[6].extra, sizeof(qs[6].extra), "as the row above");
    double sel[2] = {0, 0};
    for (size_t i = 0; i < 7; i++) {
        char k[64];
        snprintf(k, sizeof(k), "vf_%s_on_s", qs[i].key);
        double on = an_num(rs, k);
        snprintf(k, sizeof(k), "vf_%s_off_s", qs[i].key);
        double off = an_num(rs, k);
        snprintf(k, sizeof(k), "vf_%s_n", qs[i].key);
        double n = an_num(rs, k);
        snprintf(k, sizeof(k), "vf_%s_docs", qs[i].key);
        double got = an_num(rs, k);
        if (on <= 0 || off <= 0 || n <= 0) {
            continue;
        }
        if (i >= 5) {
            sel[i - 5] = on / n;
        }
        fmt_int(n, n1, sizeof(n1));
        snprintf(label, sizeof(label),
                 "Verification, query in process: %s; %s queries a side, %.1f documents each, "
                 "verified (vs the same with verification off, %.0f rounds in turn)",
                 qs[i].label, n1, got, rounds);
        int at = vf_times(gap, sizeof(gap), on, off, n, "query", 1.5);
        at += snprintf(gap + at, sizeof(gap) - (size_t)at, ". Extra: %s", qs[i].extra);
        if (i == 6 && sel[0] > 0) {
            snprintf(gap + at, sizeof(gap) - (size_t)at,
                     "; verified, the large collection's query takes %.2fx the small one's",
                     sel[0] / sel[1]);
        }
        vf_row(label, on, off, n, "", gap, 0);
        rows++;
    }
    double son = an_num(rs, "vsel_on_s"), soff = an_num(rs, "vsel_off_s");
    double sn = an_num(rs, "vsel_n"), sdocs = an_num(rs, "ashe_docs");
    if (son > 0 && soff > 0 && sn > 0 && sdocs > 0) {
        fmt_int(sdocs, n1, sizeof(n1));
        fmt_int(sn, n2, sizeof(n2));
        snprintf(label, sizeof(label),
                 "Verification, query in process: invoice_no = one value over the analytics "
                 "collection, %s documents; %s queries a side, admin session, verified (vs the "
                 "same with verification off, in turn)",
                 n1, n2);
        int at = vf_times(gap, sizeof(gap), son, soff, sn, "query", 1.5);
        at += snprintf(gap + at, sizeof(gap) - (size_t)at,
                       ". Extra: one member checked, as in the two rows above");
        if (sel[0] > 0 && sel[1] > 0) {
            char a1[48], a2[48];
            fmt_int(docs, a1, sizeof(a1));
            fmt_int(an_num(rs, "vf_small_docs"), a2, sizeof(a2));
            snprintf(gap + at, sizeof(gap) - (size_t)at,
                     "; verified, %.3f ms a query here against %.3f ms over %s documents and "
                     "%.3f ms over %s (another data directory, so the store and trusted.db "
                     "differ in size too)",
                     son / sn * 1e3, sel[0] * 1e3, a1, sel[1] * 1e3, a2);
        }
        vf_row(label, son, soff, sn, "", gap, 0);
        rows++;
    }
    double adocs = an_num(rs, "ashe_docs"), agroups = an_num(rs, "ashe_all_groups");
    double arows = an_num(rs, "ashe_filter_rows");
    const char *alo = an_str(rs, "window_lo"), *ahi = an_str(rs, "window_hi");
    fmt_int(adocs, n1, sizeof(n1));
    fmt_int(agroups, n2, sizeof(n2));
    fmt_int(arows, n3, sizeof(n3));
    fmt_int(an_num(rs, "ashe_all_runs"), n4, sizeof(n4));
    struct {
        const char *key;
        char label[300];
        char extra[700];
    } ag[3];
    ag[0].key = "all";
    snprintf(ag[0].label, sizeof(ag[0].label),
             "SUM(amount) GROUP BY org over %s invoices (%s orgs)", n1, n2);
    snprintf(ag[0].extra, sizeof(ag[0].extra),
             "checked by margins: the runs of row numbers of each group (%s runs) against its "
             "org key's trusted row-sequence hash (ha, telescoping, so a run costs its two "
             "ends), all groups against the collection's `all` set and the column's `any` set, "
             "the summed cells' runs within their group's",
             n4);
    ag[1].key = "filter";
    snprintf(ag[1].label, sizeof(ag[1].label),
             "the same with the 1%% date filter ([%s, %s): %s rows)", alo ? alo : "?",
             ahi ? ahi : "?", n3);
    snprintf(ag[1].extra, sizeof(ag[1].extra),
             "the window's members checked against their tokens' trusted sets, then candidate "
             "by candidate: each row's token keys in trusted state (docs.tks) say whether it "
             "matches and which group it is in, and each group's rows and summed cells must "
             "be exactly those; the members and token keys are read on a second thread while "
             "the store aggregates");
    ag[2].key = "status";
    snprintf(ag[2].label, sizeof(ag[2].label),
             "COUNT(*) GROUP BY status over the same %s invoices (4 groups)", n1);
    snprintf(ag[2].extra, sizeof(ag[2].extra),
             "margins as for the sum by org, over 4 status keys; nearly every row is a run of "
             "its own in each group");
    for (size_t i = 0; i < 3; i++) {
        char k[64];
        snprintf(k, sizeof(k), "vagg_%s_on_s", ag[i].key);
        double on = an_num(rs, k);
        snprintf(k, sizeof(k), "vagg_%s_off_s", ag[i].key);
        double off = an_num(rs, k);
        if (on <= 0 || off <= 0) {
            continue;
        }
        snprintf(label, sizeof(label),
                 "Verification, aggregate in process: %s, ASHE, admin session, verified (vs "
                 "the same with verification off, in turn, medians of %.0f)",
                 ag[i].label, an_num(rs, "reps"));
        int at = vf_times(gap, sizeof(gap), on, off, 1, "query", 1.5);
        snprintf(gap + at, sizeof(gap) - (size_t)at,
                 ". Extra: %s; the two answers were the same text", ag[i].extra);
        vf_row(label, on, off, 1, "", gap, 0);
        rows++;
    }
    return rows;
}

/* ---- the full-text search rows (bench/search.c) ---- */

/* "1,234 B/doc"-style cell of a byte count a document. */
static void per_doc(char *out, size_t cap, double bytes, double docs)
{
    char n[48];
    fmt_int(bytes / docs, n, sizeof(n));
    snprintf(out, cap, "%s", n);
}

static int search_rows(const struct results *rs)
{
    double docs = an_num(rs, "search_docs");
    double lv = an_num(rs, "search_load_veil_s"), lp = an_num(rs, "search_load_pg_s");
    const char *pgv = an_str(rs, "search_pg_version");
    char vc[64], bc[64], n1[48], n2[48], n3[48], n4[48], n5[48], n6[48], n7[48];
    char label[600], gap[1600];
    int rows = 0;
    if (docs <= 0 || lv <= 0 || lp <= 0) {
        return 0;
    }
    pgv = pgv != NULL ? pgv : "?";
    double batch = an_num(rs, "search_batch"), mb = an_num(rs, "search_text_bytes") / 1e6;
    double tokv = an_num(rs, "search_tok_veil_s"), tokp = an_num(rs, "search_tok_pg_s");
    double ent = an_num(rs, "search_veil_entries"), stems = an_num(rs, "search_veil_stems");
    double pairs = an_num(rs, "search_veil_pairs");
    double copy = an_num(rs, "search_load_pg_copy_s"), vac = an_num(rs, "search_load_pg_vacuum_s");

    fmt_int(docs, n1, sizeof(n1));
    fmt_int(ent, n2, sizeof(n2));
    fmt_int(pairs, n3, sizeof(n3));
    snprintf(label, sizeof(label),
             "Full-text search load in process: veil_bulk of %.0f documents a call, %s files "
             "of kernel documentation (linux-doc-6.1, %.1f MB of text), body `search` "
             "(english) and path `eq` (vs PostgreSQL %s: COPY of %.0f rows a transaction into a "
             "table with a generated tsvector column and a GIN index)",
             batch, n1, mb, pgv, batch);
    cell(vc, sizeof(vc), docs / lv, "docs/s");
    cell(bc, sizeof(bc), docs / lp, "docs/s");
    double per_doc_us = (lv - lp) / docs * 1e6;
    snprintf(gap, sizeof(gap),
             "%s%.0f us a document. veil: its tokenizer alone (NFKC, case folding, Snowball "
             "stems) takes %.1f s of the %.1f s (%.0f%%); then %s (document, stem) pairs "
             "(%.0f a document) in %s index entries: a bulk batch of 256 shares one entry per "
             "stem among up to 128 of its documents, each entry the next counter of its word "
             "from the trusted state (one reservation record per write), a PRF label and a "
             "sealed value, inserted in key order into the store's key-value table at "
             "pseudo-random keys; the two fields sealed; trusted intents per batch. "
             "PostgreSQL: COPY %.1f s, then VACUUM (ANALYZE) %.2f s, which moves the GIN "
             "pending list into the index; its to_tsvector alone takes about %.1f s",
             per_doc_us < 0 ? "" : "+", per_doc_us, tokv, lv, 100 * tokv / lv, n3, pairs / docs, n2,
             copy, vac, tokp);
    printf("| %s | %s | %s | %.2fx | %s |\n", label, vc, bc, lp / lv, gap);
    rows++;

    double kv = an_num(rs, "search_veil_kv_bytes"), wb = an_num(rs, "search_veil_words_bytes");
    double hb = an_num(rs, "search_veil_reserved_bytes");
    double gin = an_num(rs, "search_pg_gin_bytes"), tsv = an_num(rs, "search_pg_tsv_bytes");
    double sg = an_num(rs, "search_veil_store_growth");
    double tg = an_num(rs, "search_veil_trusted_growth");
    double ptot = an_num(rs, "search_pg_total_bytes"), plex = an_num(rs, "search_pg_entries");
    if (kv >= 0 && wb >= 0 && hb >= 0 && gin > 0 && tsv > 0) {
        double v = (kv + wb + hb) / docs, b = (gin + tsv) / docs;
        snprintf(label, sizeof(label),
                 "Full-text search index size a document (veil: the store's key-value table "
                 "of search entries + trusted words and reservations; vs PostgreSQL: GIN "
                 "index + "
                 "stored tsvector column)");
        fmt_int(v, n1, sizeof(n1));
        snprintf(vc, sizeof(vc), "%s bytes", n1);
        fmt_int(b, n1, sizeof(n1));
        snprintf(bc, sizeof(bc), "%s bytes", n1);
        per_doc(n1, sizeof(n1), kv, docs);
        per_doc(n3, sizeof(n3), wb, docs);
        per_doc(n4, sizeof(n4), hb, docs);
        per_doc(n5, sizeof(n5), sg, docs);
        per_doc(n6, sizeof(n6), tg, docs);
        per_doc(n7, sizeof(n7), gin, docs);
        fmt_int(stems, n2, sizeof(n2));
        int at = snprintf(gap, sizeof(gap),
                          "size, lower is better. veil: key-value table %s B (%.0f B an "
                          "entry: a 16-byte label and a sealed value of 56 to 552 bytes, a "
                          "random nonce and its documents' sequence numbers and counts "
                          "varint-coded and padded to a power of two; %.1f B a (document, stem) "
                          "pair), trusted "
                          "words %s B (a counter per distinct stem: %s stems in the corpus), "
                          "reservations of writes in flight %s B; in all the store file grew by %s "
                          "B a document (sealed "
                          "documents, path tokens, search entries) and trusted.db by %s B. "
                          "PostgreSQL: GIN index %s B, tsvector column ",
                          n1, ent > 0 ? kv / ent : 0, pairs > 0 ? kv / pairs : 0, n3, n2, n4,
                          n5, n6, n7);
        per_doc(n1, sizeof(n1), tsv, docs);
        fmt_int(plex, n2, sizeof(n2));
        per_doc(n3, sizeof(n3), ptot, docs);
        snprintf(gap + at, sizeof(gap) - (size_t)at,
                 "%s B (%s lexemes with their positions, as stored); the whole table with "
                 "TOAST and both indexes %s B a document",
                 n1, n2, n3);
        printf("| %s | %s | %s | %.2fx | %s |\n", label, vc, bc, v / b, gap);
        rows++;
    }

    double nq = an_num(rs, "search_queries"), lim = an_num(rs, "search_limit");
    for (unsigned k = 1; k <= 3; k++) {
        char key[48];
#define SK(name) (snprintf(key, sizeof(key), "search_q%u_%s", k, name), an_num(rs, key))
        double vm = SK("veil_med_s"), pm = SK("pg_med_s");
        double v99 = SK("veil_p99_s"), p99 = SK("pg_p99_s");
        double vh = SK("veil_hits"), ph = SK("pg_hits"), vz = SK("veil_zero");
        double pz = SK("pg_zero"), vmt = SK("veil_matches"), pmt = SK("pg_matches");
        double ov = SK("overlap"), qe = SK("entries"), qd = SK("entry_docs");
        double vmm = SK("veil_match_med_s"), pcm = SK("pg_count_med_s");
#undef SK
        if (vm <= 0 || pm <= 0) {
            continue;
        }
        const char *words = k == 1   ? "1-word queries"
                            : k == 2 ? "2-word queries (both words)"
                                     : "3-word queries (all words)";
        snprintf(label, sizeof(label),
                 "Full-text search, %s, limit %.0f, in process, median latency (vs PostgreSQL "
                 "plainto_tsquery, tsv @@ q on the GIN index, ORDER BY ts_rank, over a Unix "
                 "socket)",
                 words, lim);
        fmt_ms(vm, vc, sizeof(vc));
        fmt_ms(pm, bc, sizeof(bc));
        fmt_int(qe, n1, sizeof(n1));
        fmt_ms(vmm, n2, sizeof(n2));
        fmt_ms(pcm, n3, sizeof(n3));
        fmt_int(qd, n4, sizeof(n4));
        snprintf(gap, sizeof(gap),
                 "veil takes %.1fx PostgreSQL's time (median of %.0f queries). The match "
                 "alone, counted without ranking's top documents (medians): veil %s (every "
                 "index entry of each query word read from the store, %s a query on average "
                 "holding %s documents, opened, each document looked up in trusted state, BM25 "
                 "scores), "
                 "PostgreSQL %s (GIN posting lists intersected, count(*)); the rest is veil "
                 "fetching, checking against trusted digests and opening the top %.0f "
                 "documents' fields it answers with and PostgreSQL reading each "
                 "match's tsvector for ts_rank. Sanity, not timed: hits in the top %.0f veil "
                 "%.1f, PostgreSQL %.1f; queries without a hit veil %.0f, PostgreSQL %.0f; "
                 "matching documents veil %.0f, PostgreSQL %.0f on average; %.1f of the top "
                 "%.0f the same (the tokenizers and rankings differ, see the notes)",
                 vm / pm, nq, n2, n1, n4, n3, lim, lim, vh, ph, vz, pz, vmt, pmt, ov, lim);
        printf("| %s | %s | %s | %.2fx | %s |\n", label, vc, bc, pm / vm, gap);
        rows++;
        snprintf(label, sizeof(label),
                 "Full-text search, %s, limit %.0f, in process, 99th percentile latency (vs "
                 "PostgreSQL, the same)",
                 words, lim);
        fmt_ms(v99, vc, sizeof(vc));
        fmt_ms(p99, bc, sizeof(bc));
        snprintf(gap, sizeof(gap),
                 "veil takes %.1fx PostgreSQL's time (nearest rank, %.0f queries); the slowest "
                 "queries hold the most frequent words, and veil's time grows with the "
                 "documents in the index entries it reads (the fit in the notes)",
                 v99 / p99, nq);
        printf("| %s | %s | %s | %.2fx | %s |\n", label, vc, bc, p99 / v99, gap);
        rows++;
    }
    return rows;
}

static void search_notes(const struct results *rs, const char *alone)
{
    double docs = an_num(rs, "search_docs");
    if (docs <= 0 || an_num(rs, "search_load_veil_s") <= 0) {
        return;
    }
    char n1[48], n2[48], n3[48];
    const char *pgv = an_str(rs, "search_pg_version");
    const char *sc = an_str(rs, "search_pg_synchronous_commit");
    const char *fs = an_str(rs, "search_pg_fsync");
    fmt_int(docs, n1, sizeof(n1));
    fmt_int(an_num(rs, "search_files"), n2, sizeof(n2));
    fmt_int(an_num(rs, "search_query_words"), n3, sizeof(n3));
    printf("- **Full-text search** (bench/search.c, one process; PostgreSQL a private server "
           "that bench/run.sh starts for the phase).%s%s Corpus: every gzipped file the "
           "Debian package linux-doc-6.1 installs under /usr/share/doc/linux-doc-6.1 (%s "
           "files: the Documentation sources, .rst, .txt, devicetree .yaml and others), one "
           "document each, id and path its path; %.0f binary or non-UTF-8 files (the HTML "
           "theme's fonts) and %.0f empty ones left out, %.0f over VEIL_BENCH_SEARCH_DOCS; %s "
           "documents. Reading and decompressing them is not timed. Queries: %.0f of each "
           "size, drawn with a fixed seed: a random document, then distinct words at random "
           "positions of it (so a word comes up as often as documents use it, and an AND "
           "matches at least that document), among %s plain words (3 to 20 ASCII letters "
           "between spaces, lowercased, found in 2 or more documents, never an English stop "
           "word); a warm-up pass over all of them on both sides, then one timed pass in a "
           "shuffled order, veil and PostgreSQL alternating which goes first. veil: "
           "veil_query `{\"match\":{\"body\":Q},\"limit\":%.0f,\"select\":[\"path\"]}` on a "
           "clerk session; PostgreSQL: the prepared `SELECT id FROM docs, "
           "plainto_tsquery('english', $1) q WHERE tsv @@ q ORDER BY ts_rank(tsv, q) DESC "
           "LIMIT %.0f` over a Unix socket (a round trip veil in process does not pay).\n",
           alone != NULL ? " " : "", alone != NULL ? alone : "", n2, an_num(rs, "search_binary"),
           an_num(rs, "search_empty"), an_num(rs, "search_capped"), n1,
           an_num(rs, "search_queries"), n3, an_num(rs, "search_limit"),
           an_num(rs, "search_limit"));
    printf("- **Full-text search, durability and tokenizers.** PostgreSQL %s runs with "
           "fsync=%s, synchronous_commit=%s, full_page_writes=on, shared_buffers %.0f MB, "
           "everything else as initdb leaves it: a commit returns before its WAL is flushed "
           "(the WAL writer flushes within 200 ms), so a crash may lose the last commits but "
           "leaves the database consistent. That is the promise of veil's SQLite files (store "
           "and trusted state), WAL with synchronous=NORMAL: commits are not fsynced, the WAL "
           "is at checkpoints. Both load in transactions of %.0f documents (veil_bulk commits "
           "every 256). The tokenizers differ, so the sanity figures do: veil keeps every word "
           "(no stop words) and splits at every character that is not a letter, mark or "
           "digit; PostgreSQL's parser keeps e-mail addresses, host names, file paths, "
           "version numbers and hyphenated words as tokens of their own and drops English "
           "stop words; both stem with Snowball english. veil ranks by BM25, PostgreSQL by "
           "ts_rank.\n",
           pgv != NULL ? pgv : "?", fs != NULL ? fs : "?", sc != NULL ? sc : "?",
           an_num(rs, "search_pg_shared_buffers_mb"), an_num(rs, "search_batch"));
    double a = an_num(rs, "search_fit_a_s"), b = an_num(rs, "search_fit_b_s");
    double r2 = an_num(rs, "search_fit_r2");
    double lv = an_num(rs, "search_load_veil_s"), tokv = an_num(rs, "search_tok_veil_s");
    printf("- **Full-text search, where veil's time goes.** Loading: the tokenizer takes "
           "%.0f%% of veil's load time; the rest is per index entry (one per stem and batch "
           "of up to 128 documents: the next counter of its word in the trusted state's words "
           "table, a PRF label, a sealed value, an insert at a pseudo-random key of the "
           "store's B-tree) and per document (sealing, the path's equality token, trusted "
           "intents and the write's reservation record).",
           100 * tokv / lv);
    if (b > 0) {
        printf(" Searching: veil reads all the index entries of every query word, so its "
               "matching time (the count aggregate with the same match, timed per query) "
               "follows the words' document counts: over all the queries, matching = %.2f ms + "
               "%.2f us x documents in the entries read (least squares, r^2 = %.2f): per entry "
               "one probe of the store's B-tree at a pseudo-random key and one decryption, per "
               "document in it one trusted-state lookup (a walk of an index when they are many) "
               "and its BM25 terms. On top of the match, a query "
               "fetches its top documents, checks each against its trusted digest and opens "
               "the fields it answers with (here the path), which costs with the number of "
               "documents asked for, not the words'.",
               a * 1e3, b * 1e6, r2);
    }
    printf("\n");
}

static void cpu_model(char *out, size_t cap)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    snprintf(out, cap, "unknown CPU");
    if (f == NULL) {
        return;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "model name", 10) == 0 || strncmp(line, "Model", 5) == 0) {
            char *p = strchr(line, ':');
            if (p != NULL) {
                p++;
                while (*p == ' ' || *p == '\t') {
                    p++;
                }
                p[strcspn(p, "\n")] = '\0';
                snprintf(out, cap, "%s", p);
                break;
            }
        }
    }
    fclose(f);
}

static void cell(char *out, size_t cap, double v, const char *unit)
{
    char num[48];
    fmt_int(v, num, sizeof(num));
    snprintf(out, cap, "%s %s", num, unit);
}

int bench_report(int argc, char **argv)
{
    const char *path = NULL;
    const char *commit = "unknown";
    const char *build_type = "unknown";
    const char *data_desc = NULL;
    const char *alone = NULL;
    long server_hwm = -1;
    static struct results rs;

    for (int i = 0; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--results") == 0) {
            path = argv[i + 1];
        } else if (strcmp(argv[i], "--commit") == 0) {
            commit = argv[i + 1];
        } else if (strcmp(argv[i], "--build-type") == 0) {
            build_type = argv[i + 1];
        } else if (strcmp(argv[i], "--data-desc") == 0) {
            data_desc = argv[i + 1];
        } else if (strcmp(argv[i], "--search-alone") == 0) {
            /* the search phase ran alone: its rows get merged into the last full report */
            alone = argv[i + 1];
        } else if (strcmp(argv[i], "--server-hwm") == 0) {
            server_hwm = strtol(argv[i + 1], NULL, 10);
        } else {
            fprintf(stderr, "bench: report: unknown option %s\n", argv[i]);
            return -1;
        }
    }
    if (path == NULL || argc % 2 != 0) {
        fprintf(stderr, "bench: report needs --results FILE\n");
        return -1;
    }
    if (results_load(path, &rs) != 0) {
        return -1;
    }

    char date[64];
    char cpu[256];
    struct utsname un;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%Y-%m-%d %H:%M UTC", &tm);
    cpu_model(cpu, sizeof(cpu));
    if (uname(&un) != 0) {
        snprintf(un.sysname, sizeof(un.sysname), "?");
        snprintf(un.release, sizeof(un.release), "?");
        snprintf(un.machine, sizeof(un.machine), "?");
    }

    printf("# veil benchmarks\n\n");
    printf("- date: %s\n", date);
    printf("- machine: %ld CPUs (nproc), %s, %s %s %s\n", sysconf(_SC_NPROCESSORS_ONLN), cpu,
           un.sysname, un.release, un.machine);
    printf("- veil: commit %s, build type %s; `make bench` (bench/run.sh)\n", commit, build_type);
    FILE *lf = fopen("/proc/loadavg", "r");
    char load[128] = "";
    if (lf != NULL) {
        if (fgets(load, sizeof(load), lf) != NULL) {
            load[strcspn(load, "\n")] = '\0';
            /* The first three fields: 1, 5 and 15 minute load averages. */
            char *p = load;
            for (int k = 0; k < 3 && p != NULL; k++) {
                p = strchr(p + 1, ' ');
            }
            if (p != NULL) {
                *p = '\0';
            }
        }
        fclose(lf);
    }
    if (load[0] != '\0') {
        printf("- load average when the report was written: %s (other work on the machine "
               "slows both sides of a row alike only roughly; compare ratios, not rates)\n",
               load);
    }
    if (data_desc != NULL) {
        printf("- data: %s\n", data_desc);
    }
    printf("- baseline: plain SQLite %s, table (id TEXT PRIMARY KEY, doc TEXT), WAL, "
           "synchronous=NORMAL, driven by a direct client through the sqlite3 C API\n",
           sqlite3_libversion());
    printf("\nRatio = veil throughput / baseline throughput, both measured in this run on this "
           "machine (1.00x = as fast); for memory, veil bytes / baseline bytes.\n\n");

    printf("| benchmark | veil | baseline | ratio | what the gap is |\n");
    printf("| --- | ---: | ---: | ---: | --- |\n");
    int rows = 0;
    for (size_t p = 0; p < sizeof(phases) / sizeof(phases[0]); p++) {
        for (unsigned t = 1; t <= BENCH_MAX_THREADS; t++) {
            const struct result *v = find(&rs, phases[p], "veil", t);
            const struct result *b = find(&rs, phases[p], "base", t);
            if (v == NULL || b == NULL) {
                continue;
            }
            char label[256];
            char vc[64];
            char bc[64];
            char gap[320];
            label_of(v, label, sizeof(label));
            cell(vc, sizeof(vc), rate(v), unit_of(v->phase));
            cell(bc, sizeof(bc), rate(b), unit_of(b->phase));
            gap_of(v, b, gap, sizeof(gap));
            printf("| %s | %s | %s | %.2fx | %s |\n", label, vc, bc, rate(v) / rate(b), gap);
            rows++;
        }
    }
    rows += an_rows(&rs);
    rows += vf_rows(&rs);
    rows += search_rows(&rs);
    if (server_hwm > 0 && rs.base_hwm > 0) {
        long base_own = rs.base_hwm - rs.base_data;
        printf("| Peak RSS (VmHWM): veil server process vs plain SQLite client process | "
               "%.1f MiB | %.1f MiB | %.2fx | memory, lower is better; the client's own copy "
               "of the documents (%.1f MiB) is left out of its figure |\n",
               (double)server_hwm / 1024.0, (double)base_own / 1024.0,
               (double)server_hwm / (double)(base_own > 0 ? base_own : 1),
               (double)rs.base_data / 1024.0);
        rows++;
    }
    if (rows == 0) {
        fprintf(stderr, "bench: report: no complete pair of results in %s\n", path);
        return -1;
    }

    if (alone == NULL) {
        dp_error_table(&rs);
    }
    printf("\n## Notes\n\n");
    if (alone != NULL) {
        search_notes(&rs, alone);
        return 0;
    }
    printf("- **Where a PUT goes.** The server parses the HTTP request and checks the JSON "
           "(UTF-8, depth, syntax) before libveil parses it again. The engine then seals every "
           "listed field with XChaCha20-Poly1305 under the field's key (AAD naming tenant, "
           "collection, document, field and version) and computes the index tokens of each "
           "field's tactics, as far as the engine at this commit implements them (AES-SIV "
           "equality tokens for `eq`, prefix tokens for `range`, ASHE for `sum`, word tokens for "
           "`search`). It writes twice durably: a "
           "trusted-state transaction records the intent (versions, row digest) before the store "
           "write, and another finishes it afterwards. The baseline does one INSERT in one "
           "transaction.\n");
    printf("- **GET and query** check every row a store returns against the digest kept in "
           "trusted state, open each field (AEAD), apply the role's view (filtering, masking) "
           "and re-encode JSON; a query returns 100 documents, so it pays that 100 times, "
           "where SQLite hands back the stored text.\n");
    printf("- **Bulk** spreads the trusted transactions over batches of documents, so what "
           "is left is mostly index rows and per-field cryptography. Index rows are keyed by "
           "pseudo-random tokens (by design: they must not show order), so each lands on its "
           "own B-tree page, which SQLite reads and writes back; the baseline appends rows "
           "in key order, nearly free per document in transactions of the same size.\n");
    printf("- **In process** removes HTTP and shows the engine alone: the per-field figure "
           "is (veil time - baseline time) / field values, so it also carries the trusted "
           "transactions spread over the fields of each document. Sealing alone is not "
           "reachable through the public API.\n");
    printf("- **Threads.** The baseline's writers share one lock (SQLite allows one writer); "
           "veil's server runs a thread pool, so with several client threads both sides "
           "are bound by the machine's cores, which the client threads share with the "
           "server.\n");
    printf("- **Memory.** The server holds libmicrohttpd's thread pool, the page caches of "
           "two SQLite databases (trusted state and the store) and its keys in guarded "
           "(sodium_malloc) pages; the baseline client only SQLite's cache.\n");
    if (an_num(&rs, "ashe_docs") > 0) {
        printf("- **Analytics** (bench/analytics.c, one process, no HTTP). Baseline: a plain "
               "SQLite table (id TEXT PRIMARY KEY, org TEXT, issued_on TEXT, amount INTEGER "
               "cents, doc TEXT) with an index on org and one on issued_on, loaded from the same "
               "NDJSON lines (each parsed, its three fields extracted) in transactions of the "
               "same size; SQLite answers `SELECT org, SUM(amount) ... GROUP BY org` by walking "
               "the org index and reading each row, and the filtered query by a range scan of "
               "the issued_on index and a temporary B-tree for the groups. veil: "
               "veil_aggregate in the tenant's admin session (the invoices policy's analyst "
               "role may not filter on issued_on), so no group is suppressed. Every veil answer "
               "is compared with plaintext, the same groups and each group's sum exactly; a "
               "mismatch fails `make bench`.\n");
        printf("- **Where an ASHE aggregate goes.** The store reads every row's number "
               "from its document-token index (narrow) and sorts them, then joins, per row, "
               "its org token (y_: a row's tokens by row number) and its ASHE cell (s_: four "
               "32-bit limbs by row number), so the probes walk both tables in order; at this "
               "size the store file is far larger than SQLite's default page cache (2 MiB), so "
               "pages come from the kernel's page cache, a read() each. Per group it adds the limbs and finds the runs of "
               "consecutive row numbers. Rows are numbered in write order and an org's "
               "invoices are interleaved with all the others', so nearly every row is a run of "
               "one, and the proxy needs F(i) - F(i-1) for each: it gets them from one ChaCha20 "
               "pass over the whole span of row numbers (16 bytes per row). The proxy's other "
               "work is per group: one AES-SIV decryption of the org token, a decimal, a JSON "
               "object. What remains against plaintext is mostly step (1) of the row: grouping "
               "over opaque side tables joined by row number, where plaintext SQLite reads "
               "org and amount from one row.\n");
        if (an_num(&rs, "paillier_docs") > 0) {
            printf("- **Paillier** sums are measured on a subset because each value costs a "
                   "Paillier encryption when written; the aggregate costs one 4096-bit modular "
                   "multiplication per row in the store (veil_mulmod, GMP, inside SQLite) and "
                   "one decryption per group in the proxy. Its row states two extrapolations to "
                   "the full data set: the measured rows/s applied to all rows (linear in "
                   "rows), and a fit of the two Paillier rows to a per-row and a per-group "
                   "cost, which shows the decryptions dominate.\n");
        }
    }
    if (an_num(&rs, "dp_exact_s") > 0 || an_num(&rs, "dp_err_reps") > 0) {
        printf("- **Differential privacy** (bench/analytics.c, in process). The invoices "
               "policy's analyst role is answered under differential privacy with the "
               "defaults. Cost: on the ASHE tenant above, count, sum and average of amount by "
               "org in the admin session (exact, checked against plaintext: each count and "
               "sum exactly, each mean to its printed digits) and in an analyst session with "
               "`\"refresh\": true`, so that each one is a new answer that pays epsilon; "
               "before each, untimed, `veil_privacy_reset` (admin, `{\"role\":\"analyst\"}`) "
               "gives the role its budget back. Then the same body without `refresh`: the "
               "kept answer. The three interleaved, a warm-up first. A private answer is "
               "never compared with plaintext, since noise makes its values anything: it is "
               "checked for its form (groups in key order, each keyed by one real "
               "organisation, a whole count >= 0, a decimal total, a mean or null, "
               "`suppressed` null, `cached` false for a new answer and true for a repeat), "
               "and a repeat's groups must equal the answer it keeps. Error: see the table "
               "above; the exact figures come from the generated documents and are checked "
               "against the admin's answer first.\n");
    }
    if (an_num(&rs, "vf_docs") > 0) {
        printf("- **Verification** (bench/verify.c and the analytics phase, in process). veil "
               "keeps per index token a count and two keyed set hashes of its live documents "
               "in trusted.db (token sets), and checks every filtered query and aggregate "
               "against them; the rows marked Verification set that against the same work "
               "without it (an internal switch for benchmarks only, which makes writes keep no "
               "token sets and reads believe the store's index, as veil did before). Loads go "
               "into two data directories, batch by batch in turn; writes the same, each side "
               "in its own directory (documents written without token sets would fail "
               "verification later); queries and aggregates run on the verified data with the "
               "switch flipped between timed rounds, the same queries both ways, and every "
               "answer must be the same both ways (the number of documents of each query; the "
               "aggregates' text). The limits are those set for verification: writes at most "
               "1.3x the time without, queries and aggregates 1.5x; a row over its limit says "
               "so. A filtered query's verified cost follows the size of the set it is checked "
               "against (the members of its most selective condition), not the limit: a first "
               "page of a large set pays for the whole set, and paging to the end pays it "
               "again on every page; a selective one costs the same over collections of any "
               "size.\n");
    }
    search_notes(&rs, NULL);
    return 0;
}
