/*
 * bench.h: what the benchmark program's files share.
 *
 * bench_core runs one phase of one side at a time (veil over HTTP, plain SQLite, libveil in
 * process) so that each side lives in its own process and its memory can be measured on
 * its own; bench/run.sh runs the two sides of every phase one after the other and
 * `bench_core report` turns the collected lines into the benchmark table.
 *
 * A result line is "PHASE SIDE THREADS OPS SECONDS UNITS": UNITS are what the rate counts
 * (documents, queries or, for the in-process phase, field values); OPS the operations that
 * took SECONDS.
 */
#ifndef VEIL_BENCH_H
#define VEIL_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <veil/veil.h>

/* The collection every phase works on (examples/invoices.yaml). */
#define BENCH_COLL "invoices"
/* Warm-up operations before each timed phase, at most (fewer for tiny data sets). */
#define BENCH_WARM_MAX 500
#define BENCH_MAX_THREADS 64
#define BENCH_URL_MAX 512
/* A read-only baseline phase shorter than this is timed again over repeated rounds, so that
 * its figure is not a few milliseconds of clock. */
#define BENCH_MIN_SECS 1.0
#define BENCH_PERM_SEED 1

struct bench_doc {
    char *id;      /* "INV-000001" */
    char *warm_id; /* "W-INV-000001": the id warm-up writes use */
    char *json;    /* the document, compact, keys in input order */
    size_t len;
    char *line; /* the NDJSON line as read (no newline), or NULL when not kept */
    size_t line_len;
    unsigned fields; /* field values in the document (leaves; an array counts once) */
    char *org_id;    /* the document's org_id, or NULL */
};

struct bench_set {
    struct bench_doc *docs;
    size_t n;
    size_t bytes; /* of documents (and lines, when kept) held in memory */
};

/* Loads an NDJSON file of {"id":..,"doc":{..}} lines. keep_lines: also keep each raw line
 * (for bulk bodies). 0 on success; on failure prints why and returns -1. */
int bench_set_load(const char *path, int keep_lines, struct bench_set *out);
void bench_set_free(struct bench_set *s);
/* The distinct org_id values of a set, sorted; *n set. Owned by the caller (strings are
 * the set's own). NULL on failure. */
const char **bench_set_orgs(const struct bench_set *s, size_t *n);

/* A fixed pseudo-random permutation of 0..n-1 (the order GETs visit documents in, the same
 * for both sides). NULL when out of memory. */
size_t *bench_perm(size_t n, uint64_t seed);

/* "bench: PHASE: " and the message, a line on stderr: progress a run shows. */
void bench_say(const char *phase, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A libveil call that failed, said on stderr; returns -1. */
int bench_vfail(const char *phase, const char *what, veil_err e, const veil_status *st);
/* A named figure for `bench_core report`: "an PREFIXKEY VALUE", flushed. */
void bench_emit(FILE *out, const char *prefix, const char *key, double v);
void bench_emit_s(FILE *out, const char *prefix, const char *key, const char *v);
double bench_now(void);
/* A whole file, NUL-terminated (malloc'd), its length in *len; NULL if it cannot be read. */
char *bench_slurp(const char *path, size_t *len);
/* VmHWM / VmRSS of /proc/PID/status (pid 0: self) in KiB; -1 when unknown. */
long bench_proc_kib(int pid, const char *key);

/* One timed phase, run by `nthreads` workers that take operation numbers 0..n-1 from a
 * shared counter. Each worker first runs its share of `nwarm` warm-up operations (warm=1),
 * then all start together; the time is from that start until the last worker is done. */
struct bench_worker {
    void *shared;
    /* Per-thread set-up: returns 0 and a state, or -1. */
    int (*setup)(void *shared, unsigned thread, void **state);
    /* One operation; 0 or -1 (the phase then stops and fails). */
    int (*op)(void *shared, void *state, size_t i, int warm);
    void (*teardown)(void *state);
};
/* Seconds taken by the n timed operations, or -1 on failure. */
double bench_run(const struct bench_worker *w, unsigned nthreads, size_t nwarm, size_t n);

/* Appends a result line to `path`. 0 or -1. */
int bench_result_write(const char *path, const char *phase, const char *side, unsigned threads,
                       size_t ops, double secs, uint64_t units);
int bench_rss_write(const char *path, const char *side, long hwm_kib, long data_kib);

/* Options every phase may get from the command line. */
struct bench_opts {
    const char *docs;   /* NDJSON input */
    const char *out;    /* result lines are appended here */
    const char *url;    /* veil server, http://127.0.0.1:PORT */
    const char *token;  /* bearer token (clerk of the phase's tenant) */
    const char *db;     /* plain SQLite database file */
    const char *data;   /* libveil data directory (created) */
    const char *policy; /* policy file for the in-process and analytics phases */
    const char *policy2; /* analytics: the policy with Paillier sums */
    const char *corpus;  /* search: the directory of *.gz text files */
    const char *pg;      /* search: libpq connection string of the private PostgreSQL */
    unsigned threads;
    size_t batch;   /* bulk: lines per request / per transaction */
    size_t queries; /* query: how many; search: how many of each size (1, 2, 3 words) */
    size_t rows;    /* analytics: documents loaded and aggregated (ASHE, plaintext);
                       search: at most this many documents (0: all) */
    size_t prows;   /* analytics: the first rows loaded with Paillier sums (0: none) */
    size_t reps;    /* analytics: timed repetitions of each aggregate (median) */
    size_t dpreps;  /* analytics: answers per group size of the privacy error table */
};

int bench_http(const char *phase, const struct bench_opts *o);
int bench_plain(const char *phase, const struct bench_opts *o);
int bench_inproc(const struct bench_opts *o);
/* SUM GROUP BY org with and without a date filter: plaintext, ASHE, Paillier; loads; the
 * cost and the error of differentially private answers. */
int bench_analytics(const struct bench_opts *o);
/* Full-text search over a text corpus: veil (in process) against PostgreSQL FTS. */
int bench_search(const struct bench_opts *o);
/* What verified answers cost: loads, writes and queries with the trusted token sets kept
 * and checked, and without (vl_vault_verify), timed in turn. */
int bench_verify(const struct bench_opts *o);

/* `report`: argv after the word "report". Prints the markdown to stdout. */
int bench_report(int argc, char **argv);

#endif /* VEIL_BENCH_H */
