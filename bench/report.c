/*
 * report.c: `bench_core report`, the markdown of SPEC section 8 from the result lines.
 *
 * One table: each row a veil figure, the baseline measured beside it in the same run, and
 * their ratio (veil / baseline throughput; for memory veil / baseline bytes). Then the
 * set-up and notes on where the gap comes from. No thresholds: nothing here passes or
 * fails on speed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "bench.h"

#define MAX_RESULTS 128

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
                 "index rows (per eq token, many per range field) keyed by random tokens, "
                 "so each lands on its own B-tree page; then sealing; NDJSON answer%s",
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

    printf("\n## Notes\n\n");
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
    return 0;
}
