/*
 * http.c: the veil side of the HTTP phases, as a client program sees veil.
 *
 * Each client thread keeps one libcurl easy handle, so one keep-alive connection, for the
 * whole phase. Every answer is checked (status, and for bulk every line's status) so that
 * a benchmark can never count failures as throughput; checks are a scan of the answer, the
 * same small cost on every request.
 *
 * Phases: put (PUT /docs/{id}), get (GET /docs/{id}), bulk (POST /bulk, NDJSON batches),
 * query (POST /query {"where":{"org_id":X},"limit":100}).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "bench.h"

enum phase { PH_PUT, PH_GET, PH_BULK, PH_QUERY };

struct http_shared {
    enum phase ph;
    const struct bench_opts *o;
    const struct bench_set *set;
    size_t *perm; /* get: the order documents are read in */
    /* bulk: prebuilt request bodies */
    char **bodies;
    size_t *body_len;
    size_t *body_lines;
    size_t nbodies;
    char *warm_body;
    size_t warm_len;
    size_t warm_lines;
    /* query */
    char **qbodies;
    size_t nq;
};

struct http_state {
    CURL *h;
    struct curl_slist *hdrs;
    char *resp;
    size_t len;
    size_t cap;
    char url[BENCH_URL_MAX];
    size_t base_len; /* url up to and including ".../docs/" */
};

static size_t on_data(char *p, size_t size, size_t nmemb, void *arg)
{
    struct http_state *s = arg;
    size_t n = size * nmemb;
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + n + 1) {
            cap *= 2;
        }
        char *r = realloc(s->resp, cap);
        if (r == NULL) {
            return 0;
        }
        s->resp = r;
        s->cap = cap;
    }
    memcpy(s->resp + s->len, p, n);
    s->len += n;
    s->resp[s->len] = '\0';
    return n;
}

static const char *route_of(enum phase ph)
{
    switch (ph) {
    case PH_PUT:
    case PH_GET: return "/v1/collections/" BENCH_COLL "/docs/";
    case PH_BULK: return "/v1/collections/" BENCH_COLL "/bulk";
    case PH_QUERY: return "/v1/collections/" BENCH_COLL "/query";
    }
    return "";
}

static void state_free(void *arg)
{
    struct http_state *s = arg;
    if (s == NULL) {
        return;
    }
    if (s->h != NULL) {
        curl_easy_cleanup(s->h);
    }
    curl_slist_free_all(s->hdrs);
    free(s->resp);
    free(s);
}

static int state_new(void *arg, unsigned thread, void **out)
{
    struct http_shared *sh = arg;
    struct http_state *s = calloc(1, sizeof(*s));
    char auth[1024];
    (void)thread;
    if (s == NULL) {
        return -1;
    }
    int n = snprintf(s->url, sizeof(s->url), "%s%s", sh->o->url, route_of(sh->ph));
    if (n < 0 || (size_t)n >= sizeof(s->url) - 64) {
        free(s);
        return -1;
    }
    s->base_len = (size_t)n;
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", sh->o->token);
    s->hdrs = curl_slist_append(s->hdrs, auth);
    s->hdrs = curl_slist_append(s->hdrs, sh->ph == PH_BULK ? "Content-Type: application/x-ndjson"
                                                           : "Content-Type: application/json");
    s->hdrs = curl_slist_append(s->hdrs, "Expect:");
    s->h = curl_easy_init();
    if (s->h == NULL || s->hdrs == NULL) {
        state_free(s);
        return -1;
    }
    curl_easy_setopt(s->h, CURLOPT_HTTPHEADER, s->hdrs);
    curl_easy_setopt(s->h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(s->h, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(s->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(s->h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(s->h, CURLOPT_TIMEOUT, 120L);
    if (sh->ph == PH_PUT) {
        curl_easy_setopt(s->h, CURLOPT_CUSTOMREQUEST, "PUT");
    } else if (sh->ph == PH_GET) {
        curl_easy_setopt(s->h, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(s->h, CURLOPT_POST, 1L);
        curl_easy_setopt(s->h, CURLOPT_URL, s->url);
    }
    *out = s;
    return 0;
}

static int perform(struct http_state *s, const char *what, long want1, long want2)
{
    long code = 0;
    s->len = 0;
    CURLcode cc = curl_easy_perform(s->h);
    if (cc != CURLE_OK) {
        fprintf(stderr, "bench: %s: %s\n", what, curl_easy_strerror(cc));
        return -1;
    }
    curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &code);
    if (code != want1 && code != want2) {
        fprintf(stderr, "bench: %s: HTTP %ld: %.300s\n", what, code, s->resp ? s->resp : "");
        return -1;
    }
    return 0;
}

/* Every answer line of a bulk request must say 200 or 201. */
static int bulk_ok(const struct http_state *s, size_t lines)
{
    size_t good = 0;
    const char *p = s->resp ? s->resp : "";
    while ((p = strstr(p, "\"status\":")) != NULL) {
        p += 9;
        if (strncmp(p, "200", 3) == 0 || strncmp(p, "201", 3) == 0) {
            good++;
        }
    }
    if (good != lines) {
        fprintf(stderr, "bench: bulk: %zu of %zu lines stored: %.300s\n", good, lines,
                s->resp ? s->resp : "");
        return -1;
    }
    return 0;
}

static int set_doc_url(struct http_state *s, const char *id)
{
    size_t n = strlen(id);
    if (s->base_len + n + 1 > sizeof(s->url)) {
        return -1;
    }
    memcpy(s->url + s->base_len, id, n + 1);
    curl_easy_setopt(s->h, CURLOPT_URL, s->url);
    return 0;
}

static int op(void *arg, void *st, size_t i, int warm)
{
    struct http_shared *sh = arg;
    struct http_state *s = st;
    const struct bench_doc *d = NULL;

    switch (sh->ph) {
    case PH_PUT:
        d = &sh->set->docs[i];
        if (set_doc_url(s, warm ? d->warm_id : d->id) != 0) {
            return -1;
        }
        curl_easy_setopt(s->h, CURLOPT_POSTFIELDS, d->json);
        curl_easy_setopt(s->h, CURLOPT_POSTFIELDSIZE, (long)d->len);
        return perform(s, "PUT", 200, 201);
    case PH_GET:
        d = &sh->set->docs[sh->perm[i % sh->set->n]];
        if (set_doc_url(s, d->id) != 0) {
            return -1;
        }
        return perform(s, "GET", 200, 200);
    case PH_BULK: {
        const char *body = warm ? sh->warm_body : sh->bodies[i];
        size_t len = warm ? sh->warm_len : sh->body_len[i];
        size_t lines = warm ? sh->warm_lines : sh->body_lines[i];
        curl_easy_setopt(s->h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(s->h, CURLOPT_POSTFIELDSIZE, (long)len);
        if (perform(s, "bulk", 200, 200) != 0) {
            return -1;
        }
        return bulk_ok(s, lines);
    }
    case PH_QUERY: {
        const char *body = sh->qbodies[i % sh->nq];
        curl_easy_setopt(s->h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(s->h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        if (perform(s, "query", 200, 200) != 0) {
            return -1;
        }
        if (warm) {
            /* Outside the timing: the answer must hold documents of that organisation. */
            json_t *j = json_loads(s->resp, 0, NULL);
            size_t nd = json_array_size(json_object_get(j, "docs"));
            json_decref(j);
            if (nd == 0) {
                fprintf(stderr, "bench: query: no documents in the answer: %.300s\n", s->resp);
                return -1;
            }
        }
        return 0;
    }
    }
    return -1;
}

/* Bulk bodies: batches of o->batch lines; the warm-up body is the first batch's documents
 * under warm-up ids. */
static int build_bulk(struct http_shared *sh)
{
    const struct bench_set *set = sh->set;
    size_t batch = sh->o->batch;
    sh->nbodies = (set->n + batch - 1) / batch;
    sh->bodies = calloc(sh->nbodies, sizeof(char *));
    sh->body_len = calloc(sh->nbodies, sizeof(size_t));
    sh->body_lines = calloc(sh->nbodies, sizeof(size_t));
    if (sh->bodies == NULL || sh->body_len == NULL || sh->body_lines == NULL) {
        return -1;
    }
    for (size_t b = 0; b < sh->nbodies; b++) {
        size_t lo = b * batch;
        size_t hi = lo + batch < set->n ? lo + batch : set->n;
        size_t len = 0;
        for (size_t i = lo; i < hi; i++) {
            len += set->docs[i].line_len + 1;
        }
        char *p = malloc(len + 1);
        if (p == NULL) {
            return -1;
        }
        sh->bodies[b] = p;
        for (size_t i = lo; i < hi; i++) {
            memcpy(p, set->docs[i].line, set->docs[i].line_len);
            p += set->docs[i].line_len;
            *p++ = '\n';
        }
        *p = '\0';
        sh->body_len[b] = len;
        sh->body_lines[b] = hi - lo;
    }
    /* {"id":"W-..","doc":...} lines, built from the parsed documents. */
    size_t hi = batch < set->n ? batch : set->n;
    size_t len = 0;
    for (size_t i = 0; i < hi; i++) {
        len += strlen(set->docs[i].warm_id) + set->docs[i].len + 32;
    }
    sh->warm_body = malloc(len + 1);
    if (sh->warm_body == NULL) {
        return -1;
    }
    size_t off = 0;
    for (size_t i = 0; i < hi; i++) {
        int n = snprintf(sh->warm_body + off, len + 1 - off, "{\"id\":\"%s\",\"doc\":%s}\n",
                         set->docs[i].warm_id, set->docs[i].json);
        if (n < 0 || (size_t)n >= len + 1 - off) {
            return -1;
        }
        off += (size_t)n;
    }
    sh->warm_len = off;
    sh->warm_lines = hi;
    return 0;
}

static int build_queries(struct http_shared *sh)
{
    size_t norgs = 0;
    const char **orgs = bench_set_orgs(sh->set, &norgs);
    if (orgs == NULL) {
        fprintf(stderr, "bench: query: the documents have no org_id\n");
        return -1;
    }
    sh->qbodies = calloc(norgs, sizeof(char *));
    sh->nq = norgs;
    for (size_t i = 0; sh->qbodies != NULL && i < norgs; i++) {
        json_t *q = json_pack("{s:{s:s},s:i}", "where", "org_id", orgs[i], "limit", 100);
        sh->qbodies[i] = q ? json_dumps(q, JSON_COMPACT) : NULL;
        json_decref(q);
        if (sh->qbodies[i] == NULL) {
            free(orgs);
            return -1;
        }
    }
    free(orgs);
    return sh->qbodies != NULL ? 0 : -1;
}

static void shared_free(struct http_shared *sh)
{
    for (size_t i = 0; sh->bodies != NULL && i < sh->nbodies; i++) {
        free(sh->bodies[i]);
    }
    free(sh->bodies);
    free(sh->body_len);
    free(sh->body_lines);
    free(sh->warm_body);
    for (size_t i = 0; sh->qbodies != NULL && i < sh->nq; i++) {
        free(sh->qbodies[i]);
    }
    free(sh->qbodies);
    free(sh->perm);
}

int bench_http(const char *phase, const struct bench_opts *o)
{
    struct bench_set set = {0};
    struct http_shared sh;
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
        fprintf(stderr, "bench: http: unknown phase %s\n", phase);
        return -1;
    }
    if (o->url == NULL || o->token == NULL || o->docs == NULL || o->out == NULL) {
        fprintf(stderr, "bench: http %s needs --url, --token, --docs and --out\n", phase);
        return -1;
    }
    if (bench_set_load(o->docs, sh.ph == PH_BULK, &set) != 0) {
        return -1;
    }
    sh.o = o;
    sh.set = &set;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
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
        if (o->batch == 0 || build_bulk(&sh) != 0) {
            goto out;
        }
        n = sh.nbodies;
        nwarm = 1;
        threads = 1;
        break;
    case PH_QUERY:
        if (o->queries == 0 || build_queries(&sh) != 0) {
            goto out;
        }
        n = o->queries;
        nwarm = n / 10 < BENCH_WARM_MAX ? n / 10 : BENCH_WARM_MAX;
        nwarm = nwarm < sh.nq ? sh.nq : nwarm;
        break;
    }
    struct bench_worker w = {&sh, state_new, op, state_free};
    double secs = bench_run(&w, threads, nwarm, n);
    if (secs <= 0) {
        fprintf(stderr, "bench: http %s failed\n", phase);
        goto out;
    }
    uint64_t units = sh.ph == PH_BULK ? set.n : n;
    rc = bench_result_write(o->out, phase, "veil", threads, n, secs, units);
out:
    shared_free(&sh);
    bench_set_free(&set);
    curl_global_cleanup();
    return rc;
}
