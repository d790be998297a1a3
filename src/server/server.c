/*
 * server.c: the HTTP daemon of `veil server`, its connections and the life of one request.
 *
 * The server is shared by every tenant, so it must fail closed: no client may crash it,
 * hold its memory or its connections, or take more than its share of requests, with or
 * without a token. libmicrohttpd runs a pool of threads, each with its own poll() loop
 * (not epoll: libmicrohttpd 0.9.75 can abort the process when a daemon that runs epoll in
 * its own threads is quiesced, which stopping does: its loop and MHD_quiesce_daemon race to
 * take the listen socket out of the epoll set, and the loser panics). A request is met
 * three ways:
 *
 *   - On its first callback (headers only) it is routed, checked for its method and path
 *     segments, authenticated, charged to its token's rate limit, its announced
 *     Content-Length compared with limits.max_body, and the memory for its body reserved
 *     from limits.max_inflight_bodies, which all bodies in flight share. Whatever fails
 *     there is answered at once; so is a request whose route takes no body. If such a
 *     request announced a body, the body is never read: the connection is closed after the
 *     answer (libmicrohttpd cannot answer in the middle of an upload and keep the
 *     connection). A body is therefore only ever read for an authenticated request, on a
 *     route that takes one, within its rate limit and within the memory reserved for it.
 *   - Its body is accumulated in a buffer bounded by max_body. A chunked body (no
 *     Content-Length) reserves memory as it grows; one that outgrows max_body or the
 *     shared reserve becomes a 413 or a 429, and the rest of it is read and thrown away,
 *     up to discard_max(), so that the client can read the answer; past that the
 *     connection is cut.
 *   - On the last callback it is dispatched to routes.c, and its body freed at once.
 *
 * Connections are bounded in number (limits.max_connections), per client address
 * (limits.max_connections_per_client) and in time: libmicrohttpd closes one idle for
 * limits.idle_timeout, and a watchdog thread shuts down the socket of one whose request
 * (headers and body) has not arrived whole within limits.request_timeout, however slowly
 * its bytes trickle in.
 *
 * Stopping: the daemon is quiesced (no new connections), every request in flight is
 * allowed to finish, and only then is the daemon stopped.
 *
 * One JSON log line per request: tenant, token id, role, method, route pattern, status,
 * duration, and for a refused request the error code and message. Never the raw path (it
 * holds document ids), a header, a token's secret or a body.
 */
#include <arpa/inet.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "server/internal.h"
#include "server/server.h"
#include "util/log.h"
#include "util/status.h"

#define POOL_MIN 4
#define POOL_MAX 16
#define STOP_POLL_NS (100L * 1000L * 1000L)
#define WATCH_POLL_NS (200L * 1000L * 1000L)
#define DRAIN_MAX_S 30
#define ADDR_MAX 300
#define DISCARD_MIN (64u * 1024u * 1024u)
#define CHUNK_FIRST (64u * 1024u)     /* first reservation of a body of unknown size */
#define RATE_BUCKETS_MAX 65536        /* tokens whose rate is tracked at once */
#define BUSY_RETRY_S 1                /* Retry-After when the body reserve is spent */
#define TOKEN_ID_HEX VEIL_TOKEN_ID_LEN

struct vl_server {
    struct vl_srv srv;
    struct MHD_Daemon *d;
    pthread_t watchdog;
    int has_watchdog;
    atomic_int watch_stop;
};

static const struct {
    const char *name;
    enum vl_method m;
} methods[] = {
    {"GET", VL_M_GET}, {"PUT", VL_M_PUT}, {"POST", VL_M_POST},
    {"DELETE", VL_M_DELETE}, {"HEAD", VL_M_HEAD},
};

static double mono_s(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

static double elapsed_s(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

/* How much of a refused body is read and thrown away, so that the client can read the
 * answer (libmicrohttpd cannot answer in the middle of an upload), before the connection is
 * cut instead. */
static size_t discard_max(const struct vl_srv *srv)
{
    size_t m = srv->limits.max_body > SIZE_MAX / 4 ? SIZE_MAX : srv->limits.max_body * 4;
    return m > DISCARD_MIN ? m : DISCARD_MIN;
}

static void method_of(const char *name, struct vl_req *rq)
{
    rq->m.method = VL_M_OTHER;
    rq->method_name = "OTHER";
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if (strcmp(name, methods[i].name) == 0) {
            rq->m.method = methods[i].m;
            rq->method_name = methods[i].name;
            return;
        }
    }
}

/* Keeps the raw path: routes.c decodes segments itself, after splitting on '/'. */
static size_t keep_escapes(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

/* --- memory for bodies --- */

/* Takes n bytes from the reserve all bodies share; 0 when there are not that many left. */
static int reserve_bytes(struct vl_srv *srv, size_t n)
{
    size_t cur = atomic_load(&srv->body_bytes);
    do {
        if (n > srv->limits.max_inflight_bodies || cur > srv->limits.max_inflight_bodies - n) {
            return 0;
        }
    } while (!atomic_compare_exchange_weak(&srv->body_bytes, &cur, cur + n));
    return 1;
}

/* Frees the body and gives back what it held. */
static void body_release(struct vl_srv *srv, struct vl_req *rq)
{
    vl_buf_free(&rq->body);
    atomic_fetch_sub(&srv->body_bytes, rq->reserved);
    rq->reserved = 0;
}

/* Room for `need` bytes of body, reserved before it is allocated: exactly `need` when the
 * size is known (`exact`), else by doubling, as far as max_body, so that a chunked upload
 * reserves O(log n) times. The bytes held are exactly the bytes reserved.
 * VEIL_ERR_TOO_LARGE past max_body, VEIL_ERR_RATE_LIMITED when the shared reserve cannot
 * cover it. */
static veil_err body_room(struct vl_srv *srv, struct vl_req *rq, size_t need, int exact)
{
    size_t max = srv->limits.max_body;
    if (need > max) {
        return VEIL_ERR_TOO_LARGE;
    }
    if (need + 1 <= rq->body.cap) {
        return VEIL_OK;
    }
    size_t want = need;
    if (!exact) {
        want = rq->body.len > max / 2 ? max : rq->body.len * 2;
        want = want < CHUNK_FIRST ? (CHUNK_FIRST < max ? CHUNK_FIRST : max) : want;
        want = want < need ? need : want;
    }
    size_t delta = want + 1 - rq->body.cap;
    if (!reserve_bytes(srv, delta)) {
        return VEIL_ERR_RATE_LIMITED;
    }
    if (vl_buf_reserve(&rq->body, want) != VEIL_OK) {
        atomic_fetch_sub(&srv->body_bytes, delta);
        return VEIL_ERR_RATE_LIMITED;
    }
    rq->reserved += delta;
    return VEIL_OK;
}

/* --- connections and the watchdog --- */

static struct vl_conn *conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci != NULL ? ci->socket_context : NULL;
}

/* The request of `conn` has arrived whole (or will not be read): its deadline is over. */
static void conn_received(struct vl_srv *srv, struct MHD_Connection *conn)
{
    struct vl_conn *c = conn_of(conn);
    if (c != NULL) {
        pthread_mutex_lock(&srv->conns_mu);
        c->receiving = 0;
        pthread_mutex_unlock(&srv->conns_mu);
    }
}

/* An answer was sent: the next request's deadline starts now. */
static void conn_rearm(struct vl_srv *srv, struct MHD_Connection *conn)
{
    struct vl_conn *c = conn_of(conn);
    if (c != NULL) {
        pthread_mutex_lock(&srv->conns_mu);
        clock_gettime(CLOCK_MONOTONIC, &c->since);
        c->receiving = 1;
        pthread_mutex_unlock(&srv->conns_mu);
    }
}

/* libmicrohttpd calls "closed" before it closes the socket, and the watchdog only touches
 * sockets of connections on the list, under the same lock: it never shuts down a socket
 * number that has been closed and reused. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct vl_srv *srv = cls;
    struct vl_conn *c = *socket_context;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        c = calloc(1, sizeof(*c));
        if (c == NULL) {
            return; /* untracked: libmicrohttpd's idle timeout still applies */
        }
        c->fd = ci != NULL ? ci->connect_fd : -1;
        c->receiving = 1;
        clock_gettime(CLOCK_MONOTONIC, &c->since);
        pthread_mutex_lock(&srv->conns_mu);
        c->next = srv->conns;
        if (srv->conns != NULL) {
            srv->conns->prev = c;
        }
        srv->conns = c;
        srv->nconns++;
        pthread_mutex_unlock(&srv->conns_mu);
        *socket_context = c;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && c != NULL) {
        pthread_mutex_lock(&srv->conns_mu);
        if (c->prev != NULL) {
            c->prev->next = c->next;
        } else {
            srv->conns = c->next;
        }
        if (c->next != NULL) {
            c->next->prev = c->prev;
        }
        srv->nconns--;
        pthread_mutex_unlock(&srv->conns_mu);
        free(c);
        *socket_context = NULL;
    }
}

/* Shuts down the sockets whose request is late; libmicrohttpd then sees the connection
 * end and closes it the ordinary way (its callbacks run, its memory is freed). */
static void *watchdog_main(void *arg)
{
    struct vl_server *s = arg;
    struct vl_srv *srv = &s->srv;
    double limit = (double)srv->limits.request_timeout;
    struct timespec ts = {0, WATCH_POLL_NS};
    while (!atomic_load(&s->watch_stop)) {
        nanosleep(&ts, NULL);
        unsigned cut = 0;
        pthread_mutex_lock(&srv->conns_mu);
        for (struct vl_conn *c = srv->conns; c != NULL; c = c->next) {
            if (c->receiving && !c->cut && c->fd >= 0 && elapsed_s(&c->since) > limit) {
                shutdown(c->fd, SHUT_RDWR);
                c->cut = 1;
                cut++;
            }
        }
        pthread_mutex_unlock(&srv->conns_mu);
        if (cut > 0) {
            vl_log_event(VL_LOG_WARN, "slow_clients_cut",
                         json_pack("{s:I, s:I}", "connections", (json_int_t)cut,
                                   "request_timeout_s", (json_int_t)srv->limits.request_timeout));
        }
    }
    return NULL;
}

/* --- the request --- */

static void set_pending(struct vl_req *rq, veil_err rc, const veil_status *st)
{
    vl_reply_error(&rq->pending, rc, st);
    rq->has_pending = 1;
}

static void set_busy(struct vl_req *rq, unsigned retry, const char *message)
{
    vl_reply_error_raw(&rq->pending, 429, veil_err_name(VEIL_ERR_RATE_LIMITED), message, NULL);
    rq->pending.retry_after = retry;
    rq->has_pending = 1;
}

static uint64_t token_key(const char *id)
{
    uint64_t k = 0;
    for (size_t i = 0; i < TOKEN_ID_HEX && id[i] != '\0'; i++) {
        char c = id[i];
        k = (k << 4) | (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
    }
    return k;
}

/* Reads "Bearer TOKEN" (scheme case-insensitive) and opens the session. */
static veil_err authenticate(struct vl_srv *srv, struct MHD_Connection *conn,
                             struct vl_req *rq, veil_status *st)
{
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_AUTHORIZATION);
    veil_session *s = NULL;
    veil_err rc = VEIL_OK;
    if (h == NULL) {
        rc = vl_status_set(st, VEIL_ERR_UNAUTHENTICATED, NULL,
                           "missing Authorization: Bearer token");
        goto out;
    }
    if (strncasecmp(h, "Bearer ", 7) != 0) {
        rc = vl_status_set(st, VEIL_ERR_UNAUTHENTICATED, NULL,
                           "the Authorization header must be \"Bearer TOKEN\"");
        goto out;
    }
    h += 7;
    while (*h == ' ') {
        h++;
    }
    veil_token_id(h, rq->token_id);
    rc = veil_session_authenticate(srv->vault, h, &s, st);
    if (rc != VEIL_OK && rc != VEIL_ERR_STORE_UNAVAILABLE && rc != VEIL_ERR_INTERNAL) {
        /* One answer for every unknown, revoked or malformed token. */
        rc = vl_status_set(st, VEIL_ERR_UNAUTHENTICATED, NULL, "invalid or revoked token");
    }
out:
    if (rc == VEIL_OK) {
        rq->sess = s;
    }
    return rc;
}

/* Content-Length > 0, or a Transfer-Encoding (chunked): the client means to send a body.
 * *announced is the Content-Length, or -1 when there is none. */
static int body_announced(struct MHD_Connection *conn, long long *announced)
{
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_TRANSFER_ENCODING);
    *announced = -1;
    if (te != NULL) {
        return 1;
    }
    if (cl == NULL) {
        return 0;
    }
    char *end = NULL;
    unsigned long long n = strtoull(cl, &end, 10);
    if (end == cl || cl[0] == '-' || n > (unsigned long long)LLONG_MAX) {
        return 1; /* unreadable: assume the worst */
    }
    *announced = (long long)n;
    return n > 0;
}

/* First callback: route, method, path segments, token, rate, announced size, memory. An
 * error found here is left in rq->pending. */
static void begin(struct vl_srv *srv, struct MHD_Connection *conn, const char *url,
                  struct vl_req *rq, long long announced)
{
    veil_status st;
    memset(&st, 0, sizeof(st));
    veil_err rc = vl_route_match(url, &rq->m, &st);
    if (rc == VEIL_OK && (vl_route_methods(rq->m.route) & rq->m.method) == 0) {
        vl_reply_error_raw(&rq->pending, 405, veil_err_name(VEIL_ERR_BAD_REQUEST),
                           "method not allowed on this route", NULL);
        rq->pending.allow = vl_route_allow(rq->m.route);
        rq->has_pending = 1;
        return;
    }
    if (rc != VEIL_OK) {
        set_pending(rq, rc, &st);
        return;
    }
    if (!vl_route_needs_auth(rq->m.route)) {
        return;
    }
    rc = authenticate(srv, conn, rq, &st);
    if (rc != VEIL_OK) {
        set_pending(rq, rc, &st);
        return;
    }
    double per_second = 0, burst = 0;
    veil_vault_rate_limit(srv->vault, veil_session_role(rq->sess), &per_second, &burst);
    unsigned wait = vl_ratelimit_take(srv->rate, token_key(rq->token_id), per_second, burst,
                                      mono_s());
    if (wait > 0) {
        char msg[128];
        snprintf(msg, sizeof(msg), "too many requests for this token; retry after %u s", wait);
        set_busy(rq, wait, msg);
        return;
    }
    if (!vl_route_takes_body(rq->m.route, rq->m.method) || announced < 0) {
        return;
    }
    if ((unsigned long long)announced > srv->limits.max_body) {
        vl_status_set(&st, VEIL_ERR_TOO_LARGE, NULL, "the body is over the limit of %zu bytes",
                      srv->limits.max_body);
        set_pending(rq, VEIL_ERR_TOO_LARGE, &st);
        return;
    }
    if (announced > 0 && body_room(srv, rq, (size_t)announced, 1) != VEIL_OK) {
        set_busy(rq, BUSY_RETRY_S, "the server is receiving too many request bodies; retry later");
    }
}

static enum MHD_Result answer(struct vl_srv *srv, struct MHD_Connection *conn,
                              struct vl_req *rq, const struct vl_reply *r)
{
    int closing = atomic_load(&srv->stopping) != 0 || rq->close_after;
    enum MHD_Result ret = vl_reply_send(conn, r, closing);
    if (ret == MHD_YES) {
        rq->status = r->status;
        if (r->code != NULL) {
            rq->reason_code = r->code;
            snprintf(rq->reason, sizeof(rq->reason), "%s", r->message);
        }
    }
    return ret;
}

/* Runs the request and answers it; the body is freed as soon as it has been used. */
static enum MHD_Result dispatch(struct vl_srv *srv, struct MHD_Connection *conn,
                                struct vl_req *rq)
{
    struct vl_reply r;
    memset(&r, 0, sizeof(r));
    vl_route_dispatch(srv, rq, conn, &r);
    body_release(srv, rq);
    enum MHD_Result ret = answer(srv, conn, rq, &r);
    vl_reply_free(&r);
    return ret;
}

/* A chunk of body: kept if there is room, else the request turns into a 413 or a 429 and
 * the rest of its body is thrown away. Returns MHD_NO to cut the connection. */
static enum MHD_Result take_body(struct vl_srv *srv, struct vl_req *rq, const char *data,
                                 size_t n)
{
    if (rq->has_pending) {
        rq->discarded += n;
        return rq->discarded > discard_max(srv) ? MHD_NO : MHD_YES;
    }
    veil_err rc = n > SIZE_MAX - rq->body.len - 1 ? VEIL_ERR_TOO_LARGE
                                                  : body_room(srv, rq, rq->body.len + n, 0);
    if (rc == VEIL_OK) {
        rc = vl_buf_append(&rq->body, data, n);
    }
    if (rc == VEIL_OK) {
        return MHD_YES;
    }
    if (rc == VEIL_ERR_RATE_LIMITED) {
        set_busy(rq, BUSY_RETRY_S, "the server is receiving too many request bodies; retry later");
    } else {
        veil_status st;
        vl_status_set(&st, VEIL_ERR_TOO_LARGE, NULL, "the body is over the limit of %zu bytes",
                      srv->limits.max_body);
        set_pending(rq, VEIL_ERR_TOO_LARGE, &st);
    }
    rq->discarded = n;
    body_release(srv, rq);
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct vl_srv *srv = cls;
    struct vl_req *rq = *con_cls;
    enum MHD_Result ret = MHD_YES;
    (void)version;

    if (rq == NULL) {
        long long announced = -1;
        rq = calloc(1, sizeof(*rq));
        if (rq == NULL) {
            return MHD_NO;
        }
        clock_gettime(CLOCK_MONOTONIC, &rq->start);
        vl_buf_init(&rq->body, srv->limits.max_body);
        method_of(method, rq);
        atomic_fetch_add(&srv->inflight, 1);
        *con_cls = rq;
        rq->has_body = body_announced(conn, &announced);
        begin(srv, conn, url, rq, announced);
        if (!rq->has_body) {
            goto out; /* answered on the next callback, which keeps the connection */
        }
        if (rq->has_pending) {
            /* Refused before its body: answer now and never read the body. */
            rq->close_after = 1;
            conn_received(srv, conn);
            ret = answer(srv, conn, rq, &rq->pending);
        } else if (!vl_route_takes_body(rq->m.route, rq->m.method)) {
            rq->close_after = 1;
            conn_received(srv, conn);
            ret = dispatch(srv, conn, rq);
        }
        goto out;
    }

    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        ret = take_body(srv, rq, upload_data, n);
        goto out;
    }

    if (rq->status != 0) {
        goto out; /* answered already */
    }
    conn_received(srv, conn);
    if (rq->has_pending) {
        body_release(srv, rq);
        ret = answer(srv, conn, rq, &rq->pending);
        goto out;
    }
    ret = dispatch(srv, conn, rq);
out:
    return ret;
}

static enum vl_log_level level_of(unsigned status)
{
    if (status >= 500 || status == 0) {
        return status == 0 ? VL_LOG_INFO : VL_LOG_ERROR;
    }
    if (status == 401 || status == 403 || status == 429) {
        return VL_LOG_WARN; /* refused: someone may be trying something */
    }
    return VL_LOG_INFO;
}

static void log_request(const struct vl_req *rq, double secs, int cut_short)
{
    enum vl_log_level lvl = level_of(rq->status);
    if (!vl_log_enabled(lvl)) {
        return;
    }
    json_t *o = json_object();
    if (o == NULL) {
        return;
    }
    const char *tenant = rq->sess != NULL ? veil_session_tenant(rq->sess) : NULL;
    const char *role = rq->sess != NULL ? veil_session_role(rq->sess) : NULL;
    json_object_set_new(o, "tenant", tenant != NULL ? json_string(tenant) : json_null());
    json_object_set_new(o, "token", rq->token_id[0] ? json_string(rq->token_id) : json_null());
    json_object_set_new(o, "role", role != NULL ? json_string(role) : json_null());
    json_object_set_new(o, "method", json_string(rq->method_name));
    json_object_set_new(o, "route", json_string(vl_route_pattern(rq->m.route)));
    json_object_set_new(o, "status", rq->status != 0 ? json_integer(rq->status) : json_null());
    json_object_set_new(o, "duration_ms", json_real(round(secs * 1e6) / 1e3));
    if (rq->reason_code != NULL) {
        json_t *reason = json_pack("{s:s}", "code", rq->reason_code);
        json_t *msg = json_string(rq->reason);
        if (reason != NULL && msg != NULL) {
            json_object_set_new(reason, "message", msg);
            msg = NULL;
        }
        json_decref(msg);
        if (reason != NULL) {
            json_object_set_new(o, "reason", reason);
        }
    }
    if (rq->status == 0) {
        json_object_set_new(o, "outcome", json_string("closed before an answer"));
    } else if (cut_short) {
        json_object_set_new(o, "outcome", json_string("answer cut short"));
    }
    vl_log_event(lvl, "request", o);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct vl_srv *srv = cls;
    struct vl_req *rq = *con_cls;
    if (rq == NULL) {
        return;
    }
    double secs = elapsed_s(&rq->start);
    if (rq->status != 0) {
        vl_metrics_record(&srv->metrics, rq->m.route, rq->status, secs);
    }
    log_request(rq, secs, toe != MHD_REQUEST_TERMINATED_COMPLETED_OK);
    if (rq->sess != NULL) {
        veil_session_free(rq->sess);
    }
    body_release(srv, rq);
    vl_reply_free(&rq->pending);
    free(rq);
    *con_cls = NULL;
    conn_rearm(srv, conn);
    atomic_fetch_sub(&srv->inflight, 1);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[256];
    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\r\n")] = '\0';
    vl_log(VL_LOG_DEBUG, "http: %s", msg);
}

/* "HOST:PORT", "[V6]:PORT"; HOST a literal address or a name. */
static int parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *sslen)
{
    char host[ADDR_MAX];
    const char *port;
    size_t hn;
    int ret = -1;
    struct addrinfo hints;
    struct addrinfo *ai = NULL;

    if (listen == NULL || strlen(listen) >= sizeof(host)) {
        goto out;
    }
    if (listen[0] == '[') {
        const char *rb = strchr(listen, ']');
        if (rb == NULL || rb[1] != ':') {
            goto out;
        }
        hn = (size_t)(rb - listen - 1);
        memcpy(host, listen + 1, hn);
        port = rb + 2;
    } else {
        const char *colon = strrchr(listen, ':');
        if (colon == NULL) {
            goto out;
        }
        hn = (size_t)(colon - listen);
        memcpy(host, listen, hn);
        port = colon + 1;
    }
    host[hn] = '\0';
    if (hn == 0 || port[0] == '\0' || strspn(port, "0123456789") != strlen(port) ||
        strlen(port) > 5 || strtoul(port, NULL, 10) > 65535) {
        goto out;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
    if (getaddrinfo(host, port, &hints, &ai) != 0 || ai == NULL ||
        ai->ai_addrlen > sizeof(*ss)) {
        goto out;
    }
    memset(ss, 0, sizeof(*ss));
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *sslen = ai->ai_addrlen;
    ret = 0;
out:
    if (ai != NULL) {
        freeaddrinfo(ai);
    }
    return ret;
}

static unsigned pool_size(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < POOL_MIN) {
        n = POOL_MIN;
    }
    if (n > POOL_MAX) {
        n = POOL_MAX;
    }
    return (unsigned)n;
}

static void nap(void)
{
    struct timespec ts = {0, STOP_POLL_NS};
    nanosleep(&ts, NULL);
}

static struct vl_server *server_new(veil_vault *v)
{
    struct vl_server *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return NULL;
    }
    s->srv.vault = v;
    veil_vault_limits(v, &s->srv.limits);
    atomic_init(&s->srv.inflight, 0);
    atomic_init(&s->srv.stopping, 0);
    atomic_init(&s->srv.body_bytes, 0);
    atomic_init(&s->watch_stop, 0);
    vl_metrics_init(&s->srv.metrics);
    pthread_mutex_init(&s->srv.conns_mu, NULL);
    s->srv.rate = vl_ratelimit_new(RATE_BUCKETS_MAX);
    if (s->srv.rate == NULL) {
        vl_metrics_destroy(&s->srv.metrics);
        pthread_mutex_destroy(&s->srv.conns_mu);
        free(s);
        return NULL;
    }
    return s;
}

static void server_free(struct vl_server *s)
{
    vl_ratelimit_free(s->srv.rate);
    vl_metrics_destroy(&s->srv.metrics);
    pthread_mutex_destroy(&s->srv.conns_mu);
    free(s);
}

/* VEIL_LOG_LEVEL=debug|info|warn|error sets how much the server logs (default info). */
static void log_level_from_env(void)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    const char *want = getenv("VEIL_LOG_LEVEL");
    for (int i = 0; want != NULL && i < 4; i++) {
        if (strcmp(want, names[i]) == 0) {
            vl_log_set_level((enum vl_log_level)i);
        }
    }
}

struct vl_server *vl_server_start(veil_vault *v, const char *listen)
{
    struct sockaddr_storage ss;
    socklen_t sslen = 0;
    char shown[INET6_ADDRSTRLEN];
    struct vl_server *s = NULL;

    if (parse_listen(listen, &ss, &sslen) != 0) {
        fprintf(stderr, "veil: cannot use listen address \"%s\" (want HOST:PORT)\n",
                listen ? listen : "");
        return NULL;
    }
    log_level_from_env();
    s = server_new(v);
    if (s == NULL) {
        fprintf(stderr, "veil: out of memory\n");
        return NULL;
    }
    struct vl_srv *srv = &s->srv;
    int v6 = ss.ss_family == AF_INET6;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0);
    /* The pool's threads inherit a mask without SIGTERM and SIGINT, so that those reach
     * the calling thread, which is the one that watches *stop. */
    sigset_t block;
    sigset_t old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, srv,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                            MHD_OPTION_THREAD_POOL_SIZE, pool_size(),
                            MHD_OPTION_CONNECTION_LIMIT, srv->limits.max_connections,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                            srv->limits.max_connections_per_client,
                            MHD_OPTION_CONNECTION_TIMEOUT, srv->limits.idle_timeout,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
                            MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
                            MHD_OPTION_UNESCAPE_CALLBACK, keep_escapes, NULL,
                            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
                            MHD_OPTION_END);
    if (s->d != NULL && pthread_create(&s->watchdog, NULL, watchdog_main, s) == 0) {
        s->has_watchdog = 1;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (s->d == NULL || !s->has_watchdog) {
        fprintf(stderr, "veil: cannot listen on %s\n", listen);
        if (s->d != NULL) {
            MHD_stop_daemon(s->d);
        }
        server_free(s);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    unsigned port = info ? info->port : 0;
    const void *a = v6 ? (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
                       : (const void *)&((struct sockaddr_in *)&ss)->sin_addr;
    if (inet_ntop(ss.ss_family, a, shown, sizeof(shown)) == NULL) {
        snprintf(shown, sizeof(shown), "?");
    }
    char url[INET6_ADDRSTRLEN + 16];
    snprintf(url, sizeof(url), "http://%s%s%s:%u", v6 ? "[" : "", shown, v6 ? "]" : "", port);
    /* The plain line that scripts and `veil server --help` promise, then the log's own. */
    fprintf(stderr, "veil: listening on %s\n", url);
    fflush(stderr);
    vl_log_event(VL_LOG_INFO, "start",
                 json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "listen", url,
                           "version", VEIL_VERSION, "max_body",
                           (json_int_t)srv->limits.max_body, "max_inflight_bodies",
                           (json_int_t)srv->limits.max_inflight_bodies, "max_connections",
                           (json_int_t)srv->limits.max_connections,
                           "max_connections_per_client",
                           (json_int_t)srv->limits.max_connections_per_client,
                           "request_timeout_s", (json_int_t)srv->limits.request_timeout,
                           "idle_timeout_s", (json_int_t)srv->limits.idle_timeout));
    return s;
}

struct vl_server *vl_server_start_external(veil_vault *v)
{
    struct vl_server *s = server_new(v);
    if (s == NULL) {
        return NULL;
    }
    struct vl_srv *srv = &s->srv;
    s->d = MHD_start_daemon(MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                            on_request, srv,
                            MHD_OPTION_CONNECTION_LIMIT, srv->limits.max_connections,
                            MHD_OPTION_CONNECTION_TIMEOUT, srv->limits.idle_timeout,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
                            MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
                            MHD_OPTION_UNESCAPE_CALLBACK, keep_escapes, NULL,
                            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
                            MHD_OPTION_END);
    if (s->d == NULL) {
        server_free(s);
        return NULL;
    }
    return s;
}

int vl_server_add_connection(struct vl_server *s, int fd, const struct sockaddr *addr,
                             socklen_t addrlen)
{
    return MHD_add_connection(s->d, fd, addr, addrlen) == MHD_YES ? 0 : -1;
}

void vl_server_poll(struct vl_server *s)
{
    MHD_run(s->d);
}

size_t vl_server_connections(struct vl_server *s)
{
    pthread_mutex_lock(&s->srv.conns_mu);
    size_t n = s->srv.nconns;
    pthread_mutex_unlock(&s->srv.conns_mu);
    return n;
}

long vl_server_inflight(struct vl_server *s)
{
    return atomic_load(&s->srv.inflight);
}

void vl_server_stop(struct vl_server *s)
{
    if (s == NULL) {
        return;
    }
    struct vl_srv *srv = &s->srv;
    long inflight = atomic_load(&srv->inflight);
    vl_log_event(VL_LOG_INFO, "stopping",
                 json_pack("{s:I}", "requests_in_flight", (json_int_t)inflight));
    atomic_store(&srv->stopping, 1);
    if (s->has_watchdog) {
        MHD_socket lfd = MHD_quiesce_daemon(s->d);
        if (lfd != MHD_INVALID_SOCKET) {
            close(lfd);
        }
        /* Drain: wait until nothing is in flight twice in a row (a request whose headers
         * were being read may just have started). */
        int quiet = 0;
        for (int i = 0; i < DRAIN_MAX_S * 10 && quiet < 2; i++) {
            quiet = atomic_load(&srv->inflight) == 0 ? quiet + 1 : 0;
            if (quiet < 2) {
                nap();
            }
        }
    }
    MHD_stop_daemon(s->d);
    if (s->has_watchdog) {
        atomic_store(&s->watch_stop, 1);
        pthread_join(s->watchdog, NULL);
    }
    vl_log_event(VL_LOG_INFO, "stopped", NULL);
    server_free(s);
}

int vl_server_run(veil_vault *v, const char *listen, volatile sig_atomic_t *stop)
{
    struct vl_server *s = vl_server_start(v, listen);
    if (s == NULL) {
        return 1;
    }
    while (!*stop) {
        nap();
    }
    vl_server_stop(s);
    return 0;
}
