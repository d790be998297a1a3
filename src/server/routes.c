/*
 * routes.c: the route table of the HTTP API (docs/openapi.yaml) and one libveil call per route.
 *
 * Paths arrive still percent-encoded (server.c turns MHD's unescaping off), so that an
 * escaped '/' inside a collection name or document id cannot change which route matches.
 * Literal segments are compared raw; the two variable segments ({c}, {id}) are decoded and
 * must be non-empty, at most VL_SEG_MAX bytes, valid UTF-8 and free of '/' and NUL.
 *
 * JSON bodies are checked (UTF-8, nesting, syntax) before libveil sees them, so that the
 * engine's parsers only ever get well-formed text; the engine still enforces the policy's
 * own limits and types. Handlers never put request values into log lines.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "server/internal.h"
#include "util/status.h"

struct route_info {
    const char *pattern;
    unsigned methods;
    const char *allow;
    int needs_auth;
};

static const struct route_info routes[VL_ROUTE_COUNT] = {
    [VL_ROUTE_NONE] = {"unmatched", 0, NULL, 0},
    [VL_ROUTE_HEALTHZ] = {"/healthz", VL_M_GET, "GET", 0},
    [VL_ROUTE_METRICS] = {"/metrics", VL_M_GET, "GET", 0},
    [VL_ROUTE_COLLECTIONS] = {"/v1/collections", VL_M_GET, "GET", 1},
    [VL_ROUTE_COLLECTION] = {"/v1/collections/{c}", VL_M_GET | VL_M_PUT, "GET, PUT", 1},
    [VL_ROUTE_DOCS] = {"/v1/collections/{c}/docs", VL_M_POST, "POST", 1},
    [VL_ROUTE_DOC] = {"/v1/collections/{c}/docs/{id}", VL_M_GET | VL_M_PUT | VL_M_DELETE,
                      "GET, PUT, DELETE", 1},
    [VL_ROUTE_QUERY] = {"/v1/collections/{c}/query", VL_M_POST, "POST", 1},
    [VL_ROUTE_BULK] = {"/v1/collections/{c}/bulk", VL_M_POST, "POST", 1},
    [VL_ROUTE_AGGREGATE] = {"/v1/collections/{c}/aggregate", VL_M_POST, "POST", 1},
    [VL_ROUTE_PRIVACY] = {"/v1/collections/{c}/privacy", VL_M_GET, "GET", 1},
    [VL_ROUTE_PRIVACY_RESET] = {"/v1/collections/{c}/privacy/reset", VL_M_POST, "POST", 1},
};

/* The most segments any route has; longer paths are 404 before anything is decoded. */
#define MAX_SEGS 5

struct seg {
    const char *p;
    size_t n;
};

const char *vl_route_pattern(enum vl_route_id r)
{
    return (unsigned)r < VL_ROUTE_COUNT ? routes[r].pattern : routes[0].pattern;
}

unsigned vl_route_methods(enum vl_route_id r)
{
    return (unsigned)r < VL_ROUTE_COUNT ? routes[r].methods : 0;
}

const char *vl_route_allow(enum vl_route_id r)
{
    return (unsigned)r < VL_ROUTE_COUNT ? routes[r].allow : NULL;
}

int vl_route_needs_auth(enum vl_route_id r)
{
    return (unsigned)r < VL_ROUTE_COUNT ? routes[r].needs_auth : 1;
}

int vl_route_takes_body(enum vl_route_id r, unsigned method)
{
    switch (r) {
    case VL_ROUTE_COLLECTION:
    case VL_ROUTE_DOC:
        return method == VL_M_PUT;
    case VL_ROUTE_DOCS:
    case VL_ROUTE_QUERY:
    case VL_ROUTE_BULK:
    case VL_ROUTE_AGGREGATE:
    case VL_ROUTE_PRIVACY_RESET:
        return method == VL_M_POST;
    default:
        return 0;
    }
}

static int seg_is(const struct seg *s, const char *lit)
{
    size_t n = strlen(lit);
    return s->n == n && memcmp(s->p, lit, n) == 0;
}

static veil_err decode_seg(const struct seg *s, const char *what, char out[VL_SEG_MAX + 1],
                           veil_status *st)
{
    size_t n = 0;
    if (s->n == 0) {
        return vl_status_set(st, VEIL_ERR_BAD_REQUEST, NULL, "the %s in the path is empty",
                             what);
    }
    if (vl_pct_decode(s->p, s->n, out, VL_SEG_MAX, &n) != 0) {
        return vl_status_set(st, VEIL_ERR_BAD_REQUEST, NULL,
                             "the %s in the path is badly escaped or longer than %d bytes",
                             what, VL_SEG_MAX);
    }
    if (n == 0 || memchr(out, '\0', n) != NULL || memchr(out, '/', n) != NULL) {
        return vl_status_set(st, VEIL_ERR_BAD_REQUEST, NULL,
                             "the %s in the path is empty or holds '/' or NUL", what);
    }
    if (!vl_utf8_valid((const uint8_t *)out, n)) {
        return vl_status_set(st, VEIL_ERR_BAD_REQUEST, NULL,
                             "the %s in the path is not valid UTF-8", what);
    }
    return VEIL_OK;
}

veil_err vl_route_match(const char *path, struct vl_match *m, veil_status *st)
{
    struct seg segs[MAX_SEGS];
    size_t nseg = 0;
    veil_err rc = VEIL_OK;

    m->route = VL_ROUTE_NONE;
    m->coll[0] = '\0';
    m->id[0] = '\0';
    if (path == NULL || path[0] != '/') {
        rc = vl_status_set(st, VEIL_ERR_NOT_FOUND, NULL, "no such route");
        goto out;
    }
    const char *p = path + 1;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (nseg == MAX_SEGS) {
            rc = vl_status_set(st, VEIL_ERR_NOT_FOUND, NULL, "no such route");
            goto out;
        }
        segs[nseg].p = p;
        segs[nseg].n = n;
        nseg++;
        if (slash == NULL) {
            break;
        }
        p = slash + 1;
    }

    enum vl_route_id r = VL_ROUTE_NONE;
    if (nseg == 1 && seg_is(&segs[0], "healthz")) {
        r = VL_ROUTE_HEALTHZ;
    } else if (nseg == 1 && seg_is(&segs[0], "metrics")) {
        r = VL_ROUTE_METRICS;
    } else if (nseg >= 2 && seg_is(&segs[0], "v1") && seg_is(&segs[1], "collections")) {
        if (nseg == 2) {
            r = VL_ROUTE_COLLECTIONS;
        } else if (nseg == 3) {
            r = VL_ROUTE_COLLECTION;
        } else if (nseg == 4 && seg_is(&segs[3], "docs")) {
            r = VL_ROUTE_DOCS;
        } else if (nseg == 5 && seg_is(&segs[3], "docs")) {
            r = VL_ROUTE_DOC;
        } else if (nseg == 4 && seg_is(&segs[3], "query")) {
            r = VL_ROUTE_QUERY;
        } else if (nseg == 4 && seg_is(&segs[3], "bulk")) {
            r = VL_ROUTE_BULK;
        } else if (nseg == 4 && seg_is(&segs[3], "aggregate")) {
            r = VL_ROUTE_AGGREGATE;
        } else if (nseg == 4 && seg_is(&segs[3], "privacy")) {
            r = VL_ROUTE_PRIVACY;
        } else if (nseg == 5 && seg_is(&segs[3], "privacy") && seg_is(&segs[4], "reset")) {
            r = VL_ROUTE_PRIVACY_RESET;
        }
    }
    if (r == VL_ROUTE_NONE) {
        rc = vl_status_set(st, VEIL_ERR_NOT_FOUND, NULL, "no such route");
        goto out;
    }
    m->route = r;
    if (nseg >= 3) {
        rc = decode_seg(&segs[2], "collection name", m->coll, st);
    }
    if (rc == VEIL_OK && r == VL_ROUTE_DOC) {
        rc = decode_seg(&segs[4], "document id", m->id, st);
    }
out:
    return rc;
}

/* --- request bodies --- */

static int ctype_is_yaml(struct MHD_Connection *conn)
{
    const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_TYPE);
    if (ct == NULL) {
        return 0;
    }
    while (*ct == ' ' || *ct == '\t') {
        ct++;
    }
    size_t n = strcspn(ct, "; \t");
    static const char *const yaml_types[] = {"application/yaml", "application/x-yaml",
                                             "text/yaml", "text/x-yaml"};
    for (size_t i = 0; i < sizeof(yaml_types) / sizeof(yaml_types[0]); i++) {
        if (strlen(yaml_types[i]) == n && strncasecmp(ct, yaml_types[i], n) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Checks a body that must be text (UTF-8) and, when `json`, one well-formed JSON value. */
static veil_err check_body(struct vl_srv *srv, const struct vl_buf *body, int json,
                           veil_status *st)
{
    const char *text = body->data ? (const char *)body->data : "";
    veil_err rc = VEIL_OK;
    if (!vl_utf8_valid((const uint8_t *)text, body->len)) {
        rc = vl_status_set(st, VEIL_ERR_BAD_REQUEST, NULL, "the body is not valid UTF-8");
        goto out;
    }
    if (!json) {
        goto out;
    }
    /* One level more than max_depth: the engine applies the exact limit to documents. */
    if (!vl_json_depth_ok(text, body->len, srv->limits.max_depth + 1)) {
        rc = vl_status_set(st, VEIL_ERR_BAD_REQUEST, NULL,
                           "the body is nested deeper than %u levels", srv->limits.max_depth);
        goto out;
    }
    /* Documents, queries and aggregates are parsed once, by libveil, which reports bad
     * syntax the same way. A policy is different: libveil reads YAML, of which JSON is a
     * part, so a body declared JSON is held to JSON here. */
out:
    return rc;
}

/* If-Match: a positive version, bare or quoted as an entity tag. 0 when absent. */
static veil_err if_match_of(struct MHD_Connection *conn, int64_t *out, veil_status *st)
{
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_MATCH);
    char tmp[32];
    veil_err rc = VEIL_OK;
    int64_t v = 0;
    if (h == NULL) {
        goto out;
    }
    size_t n = strlen(h);
    if (n >= 2 && h[0] == '"' && h[n - 1] == '"') {
        h++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof(tmp)) {
        rc = vl_status_set(st, VEIL_ERR_BAD_REQUEST, NULL, "If-Match must be a version number");
        goto out;
    }
    memcpy(tmp, h, n);
    tmp[n] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (tmp[i] < '0' || tmp[i] > '9') {
            rc = vl_status_set(st, VEIL_ERR_BAD_REQUEST, NULL,
                               "If-Match must be a version number");
            goto out;
        }
    }
    errno = 0;
    long long ll = strtoll(tmp, NULL, 10);
    if (errno != 0 || ll <= 0) {
        rc = vl_status_set(st, VEIL_ERR_BAD_REQUEST, NULL,
                           "If-Match must be a positive version number");
        goto out;
    }
    v = (int64_t)ll;
out:
    if (rc == VEIL_OK) {
        *out = v;
    }
    return rc;
}

/* Answers with a JSON text produced by libveil (released here). */
static void reply_veil(struct vl_reply *out, unsigned status, const char *ctype, char *text)
{
    vl_reply_copy(out, status, ctype, text, strlen(text));
    veil_free(text);
}

static veil_err do_health(struct vl_srv *srv, struct vl_reply *out)
{
    char *json = NULL;
    veil_err rc = veil_health(srv->vault, &json);
    if (json != NULL) {
        reply_veil(out, rc == VEIL_OK ? 200 : 503, VL_JSON_CTYPE, json);
        return VEIL_OK;
    }
    return rc == VEIL_OK ? VEIL_ERR_INTERNAL : rc;
}

static veil_err do_metrics(struct vl_srv *srv, struct vl_reply *out)
{
    size_t len = 0;
    pthread_mutex_lock(&srv->conns_mu);
    size_t nconns = srv->nconns;
    pthread_mutex_unlock(&srv->conns_mu);
    char *text = vl_metrics_render(&srv->metrics, atomic_load(&srv->inflight),
                                   atomic_load(&srv->body_bytes), nconns, &len);
    if (text == NULL) {
        return VEIL_ERR_INTERNAL;
    }
    vl_reply_copy(out, 200, VL_METRICS_CTYPE, text, len);
    free(text);
    return VEIL_OK;
}

/* What jansson found wrong, in words that quote nothing of the input (its own text does). */
static const char *json_problem(const json_error_t *e)
{
    switch (json_error_code(e)) {
    case json_error_premature_end_of_input:
        return "the text ends before the JSON value does";
    case json_error_end_of_input_expected:
        return "more text follows the JSON value";
    case json_error_duplicate_key:
        return "a key appears twice in one object";
    case json_error_null_character:
    case json_error_null_byte_in_key:
        return "NUL characters are not allowed";
    case json_error_numeric_overflow:
        return "a number is too large";
    case json_error_stack_overflow:
        return "nested too deeply";
    default:
        return "malformed JSON";
    }
}

/* A policy sent as JSON must be JSON (libveil reads YAML, of which JSON is a part). Its
 * mistakes are the policy's: invalid_policy, naming a line of the text (jansson may count
 * one past the last). White space alone is left to libveil: "the policy is empty". */
static veil_err check_policy_json(const struct vl_buf *body, veil_status *st)
{
    const char *text = body->data ? (const char *)body->data : "";
    size_t n = body->len, last = 0;
    int lines = 1, last_line = 1;
    json_error_t jerr;
    for (size_t i = 0; i < n; i++) {
        if (text[i] != ' ' && text[i] != '\t' && text[i] != '\r' && text[i] != '\n') {
            last = i + 1;
            last_line = lines;
        }
        lines += text[i] == '\n';
    }
    if (last == 0) {
        return VEIL_OK;
    }
    json_t *j = json_loadb(text, n, JSON_REJECT_DUPLICATES, &jerr);
    if (j != NULL) {
        json_decref(j);
        return VEIL_OK;
    }
    int line = jerr.line < 1 ? 1 : (jerr.line > last_line ? last_line : jerr.line);
    return vl_status_set(st, VEIL_ERR_INVALID_POLICY, NULL, "line %d: %s", line,
                         json_problem(&jerr));
}

static veil_err do_collection_put(struct vl_srv *srv, struct vl_req *rq,
                                  struct MHD_Connection *conn, struct vl_reply *out,
                                  veil_status *st)
{
    int created = 0;
    char *json = NULL;
    veil_err rc = check_body(srv, &rq->body, !ctype_is_yaml(conn), st);
    if (rc == VEIL_OK && !ctype_is_yaml(conn)) {
        rc = check_policy_json(&rq->body, st);
    }
    if (rc != VEIL_OK) {
        goto out;
    }
    rc = veil_collection_apply(rq->sess, rq->m.coll, (const char *)rq->body.data,
                               rq->body.len, &created, st);
    if (rc != VEIL_OK) {
        goto out;
    }
    /* Answer with the policy as stored, leakage statements included. */
    veil_status gst;
    if (veil_collection_get(rq->sess, rq->m.coll, &json, &gst) == VEIL_OK && json != NULL) {
        reply_veil(out, created ? 201 : 200, VL_JSON_CTYPE, json);
    } else {
        const char *body = created ? "{\"created\":true}" : "{\"created\":false}";
        vl_reply_copy(out, created ? 201 : 200, VL_JSON_CTYPE, body, strlen(body));
    }
out:
    return rc;
}

static veil_err do_doc_put(struct vl_srv *srv, struct vl_req *rq, struct MHD_Connection *conn,
                           int generated, struct vl_reply *out, veil_status *st)
{
    int64_t if_match = 0;
    int created = 0;
    char *json = NULL;
    veil_err rc = VEIL_OK;
    if (!generated) {
        rc = if_match_of(conn, &if_match, st);
        if (rc != VEIL_OK) {
            goto out;
        }
    }
    rc = check_body(srv, &rq->body, 1, st);
    if (rc != VEIL_OK) {
        goto out;
    }
    rc = veil_doc_put(rq->sess, rq->m.coll, generated ? NULL : rq->m.id,
                      (const char *)rq->body.data, rq->body.len, if_match, &json, &created, st);
    if (rc != VEIL_OK) {
        goto out;
    }
    reply_veil(out, (generated || created) ? 201 : 200, VL_JSON_CTYPE, json);
out:
    return rc;
}

static veil_err do_doc_delete(struct vl_req *rq, struct vl_reply *out, veil_status *st)
{
    veil_err rc = veil_doc_delete(rq->sess, rq->m.coll, rq->m.id, st);
    char *text = NULL;
    if (rc != VEIL_OK) {
        goto out;
    }
    json_t *j = json_pack("{s:s, s:b}", "id", rq->m.id, "deleted", 1);
    text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (text == NULL) {
        rc = VEIL_ERR_INTERNAL;
        goto out;
    }
    vl_reply_copy(out, 200, VL_JSON_CTYPE, text, strlen(text));
    free(text);
out:
    return rc;
}

void vl_route_dispatch(struct vl_srv *srv, struct vl_req *rq, struct MHD_Connection *conn,
                       struct vl_reply *out)
{
    veil_status st;
    veil_err rc = VEIL_OK;
    char *json = NULL;
    const char *body = rq->body.data ? (const char *)rq->body.data : "";

    memset(&st, 0, sizeof(st));
    switch (rq->m.route) {
    case VL_ROUTE_HEALTHZ:
        rc = do_health(srv, out);
        break;
    case VL_ROUTE_METRICS:
        rc = do_metrics(srv, out);
        break;
    case VL_ROUTE_COLLECTIONS:
        rc = veil_collection_list(rq->sess, &json, &st);
        break;
    case VL_ROUTE_COLLECTION:
        if (rq->m.method == VL_M_PUT) {
            rc = do_collection_put(srv, rq, conn, out, &st);
        } else {
            rc = veil_collection_get(rq->sess, rq->m.coll, &json, &st);
        }
        break;
    case VL_ROUTE_DOCS:
        rc = do_doc_put(srv, rq, conn, 1, out, &st);
        break;
    case VL_ROUTE_DOC:
        if (rq->m.method == VL_M_PUT) {
            rc = do_doc_put(srv, rq, conn, 0, out, &st);
        } else if (rq->m.method == VL_M_DELETE) {
            rc = do_doc_delete(rq, out, &st);
        } else {
            rc = veil_doc_get(rq->sess, rq->m.coll, rq->m.id, &json, &st);
        }
        break;
    case VL_ROUTE_QUERY:
        rc = check_body(srv, &rq->body, 1, &st);
        if (rc == VEIL_OK) {
            rc = veil_query(rq->sess, rq->m.coll, body, rq->body.len, &json, &st);
        }
        break;
    case VL_ROUTE_AGGREGATE:
        rc = check_body(srv, &rq->body, 1, &st);
        if (rc == VEIL_OK) {
            rc = veil_aggregate(rq->sess, rq->m.coll, body, rq->body.len, &json, &st);
        }
        break;
    case VL_ROUTE_PRIVACY:
        rc = veil_privacy_status(rq->sess, rq->m.coll, &json, &st);
        break;
    case VL_ROUTE_PRIVACY_RESET:
        rc = check_body(srv, &rq->body, 1, &st);
        if (rc == VEIL_OK) {
            rc = veil_privacy_reset(rq->sess, rq->m.coll, body, rq->body.len, &json, &st);
        }
        break;
    case VL_ROUTE_BULK:
        /* Lines are judged one by one by libveil: a bad line must not sink the good. */
        rc = veil_bulk(rq->sess, rq->m.coll, body, rq->body.len, &json, &st);
        if (rc == VEIL_OK && json != NULL) {
            reply_veil(out, 200, VL_NDJSON_CTYPE, json);
            json = NULL;
        }
        break;
    default:
        rc = vl_status_set(&st, VEIL_ERR_NOT_FOUND, NULL, "no such route");
        break;
    }
    if (rc != VEIL_OK) {
        if (json != NULL) {
            veil_free(json);
        }
        vl_reply_error(out, rc, &st);
        return;
    }
    if (json != NULL) {
        reply_veil(out, 200, VL_JSON_CTYPE, json);
    } else if (out->body == NULL) {
        vl_reply_error(out, VEIL_ERR_INTERNAL, NULL);
    }
}
