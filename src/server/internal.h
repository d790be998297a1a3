/*
 * internal.h: what the files of src/server/ share. server.c owns the daemon, its
 * connections and the life of a request (authenticating it, limiting it, accumulating its
 * body within the limits, logging it); routes.c maps a path onto a route and a route onto
 * one libveil call; http.c builds answers (JSON errors, security headers) and checks raw
 * input (percent-escapes, UTF-8, nesting); metrics.c counts answers for /metrics; rate.c
 * keeps the token buckets of the rate limits.
 *
 * Invariants: route patterns, never raw paths, reach logs and metrics (a path holds
 * document ids); no request body, token secret or document id is ever logged (a token's
 * public id is).
 */
#ifndef VL_SERVER_INTERNAL_H
#define VL_SERVER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

#include "server/rate.h"
#include "util/buf.h"
#include "veil/veil.h"

/* Longest collection name or document id, in bytes after percent-decoding. */
#define VL_SEG_MAX 256

enum vl_route_id {
    VL_ROUTE_NONE = 0, /* no route: 404 */
    VL_ROUTE_HEALTHZ,
    VL_ROUTE_METRICS,
    VL_ROUTE_COLLECTIONS,
    VL_ROUTE_COLLECTION,
    VL_ROUTE_DOCS,
    VL_ROUTE_DOC,
    VL_ROUTE_QUERY,
    VL_ROUTE_BULK,
    VL_ROUTE_AGGREGATE,
    VL_ROUTE_PRIVACY,
    VL_ROUTE_PRIVACY_RESET,
    VL_ROUTE_COUNT
};

enum vl_method {
    VL_M_OTHER = 0,
    VL_M_GET = 1u << 0,
    VL_M_PUT = 1u << 1,
    VL_M_POST = 1u << 2,
    VL_M_DELETE = 1u << 3,
    VL_M_HEAD = 1u << 4,
};

/* The outcome of matching a request line against the route table. */
struct vl_match {
    enum vl_route_id route;
    unsigned method;
    char coll[VL_SEG_MAX + 1]; /* decoded {c}, or "" */
    char id[VL_SEG_MAX + 1];   /* decoded {id}, or "" */
};

/* Bytes of an error's message kept for the log line of a refused request. */
#define VL_REASON_MAX 320

/* An answer being prepared: status, body (owned when `owned`), content type. */
struct vl_reply {
    unsigned status;
    char *body;
    size_t len;
    int owned;
    const char *ctype;
    const char *allow;   /* the Allow header of a 405, or NULL */
    int www_auth;        /* add WWW-Authenticate: Bearer */
    unsigned retry_after; /* seconds for a Retry-After header, 0 for none */
    const char *code;    /* an error answer's code (a constant), else NULL */
    char message[VL_REASON_MAX]; /* an error answer's message, for the log */
};

#define VL_STATUS_SLOTS 16

struct vl_metrics {
    pthread_mutex_t mu;
    uint64_t count[VL_ROUTE_COUNT][VL_STATUS_SLOTS];
    double dur_sum[VL_ROUTE_COUNT];
    uint64_t dur_count[VL_ROUTE_COUNT];
};

/* One TCP connection, from libmicrohttpd's "started" notice to its "closed" one. A request
 * must arrive whole (headers and body) within limits.request_timeout of `since`; the
 * watchdog shuts down the socket of one that does not. */
struct vl_conn {
    struct vl_conn *prev, *next; /* in vl_srv.conns, under conns_mu */
    int fd;
    struct timespec since; /* when the connection opened or its last answer was done */
    int receiving;         /* a request's headers or body are still awaited */
    int cut;               /* the watchdog shut it down */
};

struct vl_srv {
    veil_vault *vault;
    veil_limits limits;
    atomic_long inflight;
    atomic_int stopping;
    atomic_size_t body_bytes; /* bytes reserved for request bodies, all requests together */
    struct vl_metrics metrics;
    struct vl_ratelimit *rate;
    pthread_mutex_t conns_mu;
    struct vl_conn *conns;
    size_t nconns;
};

/* One request, from its first callback to its completion. */
struct vl_req {
    struct vl_match m;
    const char *method_name; /* a constant from our own table, safe to log */
    char token_id[17];       /* the id a bearer token claims, if well-formed, else "" */
    veil_session *sess;
    struct vl_buf body;
    size_t reserved;         /* bytes of srv->body_bytes this request holds */
    int has_body;            /* the request announced a body (Content-Length > 0, chunked) */
    int close_after;         /* answer with Connection: close (the body is left unread) */
    int has_pending;         /* `pending` is the answer, whatever the body holds */
    struct vl_reply pending;
    size_t discarded;        /* bytes of body read and thrown away */
    unsigned status;         /* the status that was queued, 0 if none */
    const char *reason_code; /* for the log: the code of an error answer, or NULL */
    char reason[VL_REASON_MAX];
    struct timespec start;
};

/* --- routes.c --- */
const char *vl_route_pattern(enum vl_route_id r);
/* Allowed methods of a route, as a bit set, and as an Allow header value. */
unsigned vl_route_methods(enum vl_route_id r);
const char *vl_route_allow(enum vl_route_id r);
int vl_route_needs_auth(enum vl_route_id r);
/* 1 when `method` on route `r` reads a request body (a policy, a document, a query). */
int vl_route_takes_body(enum vl_route_id r, unsigned method);
/* Matches `path` (raw, still percent-encoded). VEIL_OK: m->route set and its segments
 * decoded; VEIL_ERR_NOT_FOUND: no route; VEIL_ERR_BAD_REQUEST: a route matched but a
 * segment is empty, too long, badly escaped, or holds '/', NUL or invalid UTF-8. */
veil_err vl_route_match(const char *path, struct vl_match *m, veil_status *st);
/* Runs a matched, authenticated request whose whole body is in `body`; fills `out`. */
void vl_route_dispatch(struct vl_srv *srv, struct vl_req *rq, struct MHD_Connection *conn,
                       struct vl_reply *out);

/* --- http.c --- */
/* An error answer: status veil_err_http_status(rc), code veil_err_name(rc), the message and
 * field of `st` when given (else a generic message). */
void vl_reply_error(struct vl_reply *r, veil_err rc, const veil_status *st);
/* The same with an explicit status and code (405 has no veil_err of its own). */
void vl_reply_error_raw(struct vl_reply *r, unsigned status, const char *code,
                        const char *message, const char *field);
/* A copy of `len` bytes of `text` as the body. */
void vl_reply_copy(struct vl_reply *r, unsigned status, const char *ctype, const char *text,
                   size_t len);
void vl_reply_free(struct vl_reply *r);
/* Queues `r` on `conn` with the security headers; `closing` adds Connection: close. */
enum MHD_Result vl_reply_send(struct MHD_Connection *conn, const struct vl_reply *r,
                              int closing);

int vl_utf8_valid(const uint8_t *p, size_t n);
/* Nesting of JSON arrays and objects (outside strings) stays within `max`. */
int vl_json_depth_ok(const char *p, size_t n, unsigned max);
/* Decodes %HH escapes of raw[0..rawlen) into out (cap bytes + NUL). -1: bad escape or
 * longer than cap. */
int vl_pct_decode(const char *raw, size_t rawlen, char *out, size_t cap, size_t *outlen);

#define VL_JSON_CTYPE "application/json; charset=utf-8"
#define VL_NDJSON_CTYPE "application/x-ndjson; charset=utf-8"
#define VL_METRICS_CTYPE "text/plain; version=0.0.4; charset=utf-8"

/* --- metrics.c --- */
void vl_metrics_init(struct vl_metrics *mt);
void vl_metrics_destroy(struct vl_metrics *mt);
void vl_metrics_record(struct vl_metrics *mt, enum vl_route_id r, unsigned status,
                       double seconds);
/* The Prometheus text; malloc'd, NULL when out of memory. */
char *vl_metrics_render(struct vl_metrics *mt, long inflight, size_t body_bytes,
                        size_t connections, size_t *len);

#endif
