/*
 * util.c: loading the sample documents, the clock, /proc readings, the thread runner and
 * result lines. Nothing here is timed except what bench_run() times.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "bench.h"

void bench_say(const char *phase, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench: %s: ", phase);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

int bench_vfail(const char *phase, const char *what, veil_err e, const veil_status *st)
{
    fprintf(stderr, "bench: %s: libveil: %s: %s: %s\n", phase, what, veil_err_name(e),
            st->message);
    return -1;
}

void bench_emit(FILE *out, const char *prefix, const char *key, double v)
{
    fprintf(out, "an %s%s %.9g\n", prefix, key, v);
    fflush(out);
}

void bench_emit_s(FILE *out, const char *prefix, const char *key, const char *v)
{
    fprintf(out, "an %s%s %s\n", prefix, key, v);
    fflush(out);
}

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

long bench_proc_kib(int pid, const char *key)
{
    char path[64];
    char line[256];
    long kib = -1;
    size_t klen = strlen(key);
    if (pid > 0) {
        snprintf(path, sizeof(path), "/proc/%d/status", pid);
    } else {
        snprintf(path, sizeof(path), "/proc/self/status");
    }
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            kib = strtol(line + klen + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kib;
}

static unsigned count_fields(const json_t *j)
{
    if (!json_is_object(j)) {
        return 1;
    }
    unsigned n = 0;
    for (void *it = json_object_iter((json_t *)j); it != NULL;
         it = json_object_iter_next((json_t *)j, it)) {
        n += count_fields(json_object_iter_value(it));
    }
    return n;
}

static char *dup_prefixed(const char *prefix, const char *s)
{
    size_t a = strlen(prefix);
    size_t b = strlen(s);
    char *r = malloc(a + b + 1);
    if (r != NULL) {
        memcpy(r, prefix, a);
        memcpy(r + a, s, b + 1);
    }
    return r;
}

int bench_set_load(const char *path, int keep_lines, struct bench_set *out)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    size_t lineno = 0;
    struct bench_set s = {0};
    size_t scap = 0;
    int rc = -1;

    if (f == NULL) {
        fprintf(stderr, "bench: cannot open %s\n", path);
        return -1;
    }
    while ((got = getline(&line, &cap, f)) > 0) {
        lineno++;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) {
            line[--got] = '\0';
        }
        if (got == 0) {
            continue;
        }
        json_error_t err;
        json_t *j = json_loadb(line, (size_t)got, JSON_PRESERVE_ORDER, &err);
        json_t *id = json_object_get(j, "id");
        json_t *doc = json_object_get(j, "doc");
        if (!json_is_string(id) || !json_is_object(doc)) {
            fprintf(stderr, "bench: %s line %zu is not {\"id\":..,\"doc\":{..}}\n", path, lineno);
            json_decref(j);
            goto out;
        }
        if (s.n == scap) {
            scap = scap ? scap * 2 : 1024;
            struct bench_doc *nd = realloc(s.docs, scap * sizeof(*nd));
            if (nd == NULL) {
                json_decref(j);
                goto out;
            }
            s.docs = nd;
        }
        struct bench_doc *d = &s.docs[s.n];
        memset(d, 0, sizeof(*d));
        s.n++;
        d->id = strdup(json_string_value(id));
        d->warm_id = dup_prefixed("W-", json_string_value(id));
        d->json = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
        d->fields = count_fields(doc);
        json_t *org = json_object_get(doc, "org_id");
        d->org_id = json_is_string(org) ? strdup(json_string_value(org)) : NULL;
        if (keep_lines) {
            d->line = strdup(line);
            d->line_len = (size_t)got;
        }
        json_decref(j);
        if (d->id == NULL || d->warm_id == NULL || d->json == NULL ||
            (keep_lines && d->line == NULL)) {
            goto out;
        }
        d->len = strlen(d->json);
        s.bytes += d->len + d->line_len + strlen(d->id) * 2 + 2;
    }
    if (s.n == 0) {
        fprintf(stderr, "bench: %s holds no documents\n", path);
        goto out;
    }
    rc = 0;
out:
    free(line);
    fclose(f);
    if (rc == 0) {
        *out = s;
    } else {
        bench_set_free(&s);
    }
    return rc;
}

void bench_set_free(struct bench_set *s)
{
    for (size_t i = 0; s->docs != NULL && i < s->n; i++) {
        free(s->docs[i].id);
        free(s->docs[i].warm_id);
        free(s->docs[i].json);
        free(s->docs[i].line);
        free(s->docs[i].org_id);
    }
    free(s->docs);
    memset(s, 0, sizeof(*s));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const char **bench_set_orgs(const struct bench_set *s, size_t *n)
{
    const char **all = malloc((s->n + 1) * sizeof(*all));
    size_t k = 0;
    if (all == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < s->n; i++) {
        if (s->docs[i].org_id != NULL) {
            all[k++] = s->docs[i].org_id;
        }
    }
    qsort(all, k, sizeof(*all), cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < k; i++) {
        if (u == 0 || strcmp(all[u - 1], all[i]) != 0) {
            all[u++] = all[i];
        }
    }
    if (u == 0) {
        free(all);
        return NULL;
    }
    *n = u;
    return all;
}

size_t *bench_perm(size_t n, uint64_t seed)
{
    size_t *p = malloc((n ? n : 1) * sizeof(*p));
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    if (p == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        p[i] = i;
    }
    for (size_t i = n; i > 1; i--) {
        x ^= x << 13; /* xorshift64: the same order on every run and machine */
        x ^= x >> 7;
        x ^= x << 17;
        size_t j = (size_t)(x % i);
        size_t t = p[i - 1];
        p[i - 1] = p[j];
        p[j] = t;
    }
    return p;
}

/* ---- the thread runner ---- */

struct run {
    const struct bench_worker *w;
    size_t nwarm;
    size_t n;
    unsigned nthreads;
    atomic_size_t next_warm;
    atomic_size_t next;
    atomic_int failed;
    pthread_barrier_t ready;
    pthread_barrier_t go;
};

struct run_thread {
    struct run *r;
    unsigned idx;
    pthread_t tid;
};

static void *run_main(void *arg)
{
    struct run_thread *rt = arg;
    struct run *r = rt->r;
    void *state = NULL;

    if (r->w->setup(r->w->shared, rt->idx, &state) != 0) {
        atomic_store(&r->failed, 1);
    }
    while (!atomic_load(&r->failed)) {
        size_t i = atomic_fetch_add(&r->next_warm, 1);
        if (i >= r->nwarm) {
            break;
        }
        if (r->w->op(r->w->shared, state, i, 1) != 0) {
            atomic_store(&r->failed, 1);
        }
    }
    pthread_barrier_wait(&r->ready);
    pthread_barrier_wait(&r->go);
    while (!atomic_load(&r->failed)) {
        size_t i = atomic_fetch_add(&r->next, 1);
        if (i >= r->n) {
            break;
        }
        if (r->w->op(r->w->shared, state, i, 0) != 0) {
            atomic_store(&r->failed, 1);
        }
    }
    if (state != NULL) {
        r->w->teardown(state);
    }
    return NULL;
}

double bench_run(const struct bench_worker *w, unsigned nthreads, size_t nwarm, size_t n)
{
    struct run r;
    struct run_thread th[BENCH_MAX_THREADS];
    unsigned started = 0;
    double t0 = 0;
    double t1 = 0;

    if (nthreads == 0 || nthreads > BENCH_MAX_THREADS) {
        return -1;
    }
    memset(&r, 0, sizeof(r));
    r.w = w;
    r.nwarm = nwarm;
    r.n = n;
    r.nthreads = nthreads;
    atomic_init(&r.next_warm, 0);
    atomic_init(&r.next, 0);
    atomic_init(&r.failed, 0);
    pthread_barrier_init(&r.ready, NULL, nthreads + 1);
    pthread_barrier_init(&r.go, NULL, nthreads + 1);
    for (unsigned t = 0; t < nthreads; t++) {
        th[t].r = &r;
        th[t].idx = t;
        if (pthread_create(&th[t].tid, NULL, run_main, &th[t]) != 0) {
            /* The barriers count on every thread: without them we cannot go on. */
            fprintf(stderr, "bench: cannot start thread %u\n", t);
            exit(1);
        }
        started++;
    }
    pthread_barrier_wait(&r.ready);
    t0 = bench_now();
    pthread_barrier_wait(&r.go);
    for (unsigned t = 0; t < started; t++) {
        pthread_join(th[t].tid, NULL);
    }
    t1 = bench_now();
    pthread_barrier_destroy(&r.ready);
    pthread_barrier_destroy(&r.go);
    return atomic_load(&r.failed) ? -1 : t1 - t0;
}

/* ---- results ---- */

int bench_result_write(const char *path, const char *phase, const char *side, unsigned threads,
                       size_t ops, double secs, uint64_t units)
{
    FILE *f = fopen(path, "a");
    if (f == NULL) {
        fprintf(stderr, "bench: cannot write %s\n", path);
        return -1;
    }
    fprintf(f, "%s %s %u %zu %.6f %llu\n", phase, side, threads, ops, secs,
            (unsigned long long)units);
    fprintf(stderr, "bench: %-6s %-5s %2u thread(s): %zu ops in %.3f s (%.0f/s)\n", phase, side,
            threads, ops, secs, secs > 0 ? (double)units / secs : 0.0);
    return fclose(f) == 0 ? 0 : -1;
}

int bench_rss_write(const char *path, const char *side, long hwm_kib, long data_kib)
{
    FILE *f = fopen(path, "a");
    if (f == NULL) {
        fprintf(stderr, "bench: cannot write %s\n", path);
        return -1;
    }
    fprintf(f, "rss %s %ld %ld\n", side, hwm_kib, data_kib);
    return fclose(f) == 0 ? 0 : -1;
}

char *bench_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;
    if (f == NULL) {
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n + 1);
        if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
        if (buf != NULL) {
            buf[n] = '\0';
            *len = (size_t)n;
        }
    }
    fclose(f);
    return buf;
}
