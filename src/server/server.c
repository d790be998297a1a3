/*
 * server.c: the HTTP daemon of `veil server` and the life of one request.
 *
 * libmicrohttpd runs a pool of threads, each with its own epoll loop. A request is met
 * three ways: on its first callback (headers only) it is routed, checked for its method and
 * path segments, authenticated, and its announced Content-Length compared with
 * limits.max_body (over it: 413 at once, without reading the body); then its body is
 * accumulated in a buffer bounded by max_body (a chunked body that outgrows it becomes a
 * 413: libmicrohttpd cannot answer in the middle of an upload, so the rest is read and
 * thrown away, up to discard_max(), before the connection is cut instead); on the last
 * callback it is dispatched to routes.c. An error found early is kept and answered once the
 * body has been drained, so that keep-alive connections stay usable.
 *
 * Stopping: when *stop turns non-zero the daemon is quiesced (no new connections), every
 * request in flight is allowed to finish, and only then is the daemon stopped.
 *
 * One log line per request: method, route pattern, status, duration. Never the raw path
 * (it holds document ids), a header, a token or a body.
 */
#include <arpa/inet.h>
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

#include "server/internal.h"
#include "server/server.h"
#include "util/log.h"
#include "util/status.h"

#define POOL_MIN 4
#define POOL_MAX 16
#define CONN_LIMIT 1024
#define CONN_TIMEOUT_S 30
#define STOP_POLL_NS (100L * 1000L * 1000L)
#define DRAIN_MAX_S 30
#define ADDR_MAX 300
#define DISCARD_MIN (64u * 1024u * 1024u)

static const struct {
    const char *name;
    enum vl_method m;
} methods[] = {
    {"GET", VL_M_GET}, {"PUT", VL_M_PUT}, {"POST", VL_M_POST},
    {"DELETE", VL_M_DELETE}, {"HEAD", VL_M_HEAD},
};

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

static void set_pending(struct vl_req *rq, veil_err rc, const veil_status *st)
{
    vl_reply_error(&rq->pending, rc, st);
    rq->has_pending = 1;
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

/* First callback: route, method, path segments, token, announced size. Returns 1 when the
 * error must be answered now (the body will not be read). */
static int begin(struct vl_srv *srv, struct MHD_Connection *conn, const char *url,
                 struct vl_req *rq)
{
    veil_status st;
    memset(&st, 0, sizeof(st));
    veil_err rc = vl_route_match(url, &rq->m, &st);
    if (rc == VEIL_OK && (vl_route_methods(rq->m.route) & rq->m.method) == 0) {
        vl_reply_error_raw(&rq->pending, 405, veil_err_name(VEIL_ERR_BAD_REQUEST),
                           "method not allowed on this route", NULL);
        rq->pending.allow = vl_route_allow(rq->m.route);
        rq->has_pending = 1;
    } else if (rc != VEIL_OK) {
        set_pending(rq, rc, &st);
    } else if (vl_route_needs_auth(rq->m.route)) {
        rc = authenticate(srv, conn, rq, &st);
        if (rc != VEIL_OK) {
            set_pending(rq, rc, &st);
        }
    }

    int now = 0;
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl != NULL) {
        char *end = NULL;
        unsigned long long n = strtoull(cl, &end, 10);
        if (end != cl && n > srv->limits.max_body) {
            if (!rq->has_pending) {
                vl_status_set(&st, VEIL_ERR_TOO_LARGE, NULL,
                              "the body is over the limit of %zu bytes", srv->limits.max_body);
                set_pending(rq, VEIL_ERR_TOO_LARGE, &st);
            }
            now = 1;
        }
    }
    return now;
}

static enum MHD_Result answer(struct vl_srv *srv, struct MHD_Connection *conn,
                              struct vl_req *rq, const struct vl_reply *r)
{
    enum MHD_Result ret = vl_reply_send(conn, r, atomic_load(&srv->stopping) != 0);
    if (ret == MHD_YES) {
        rq->status = r->status;
    }
    return ret;
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
        rq = calloc(1, sizeof(*rq));
        if (rq == NULL) {
            return MHD_NO;
        }
        clock_gettime(CLOCK_MONOTONIC, &rq->start);
        vl_buf_init(&rq->body, srv->limits.max_body);
        method_of(method, rq);
        atomic_fetch_add(&srv->inflight, 1);
        *con_cls = rq;
        if (begin(srv, conn, url, rq)) {
            ret = answer(srv, conn, rq, &rq->pending);
        }
        goto out;
    }

    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (rq->has_pending) {
            rq->discarded += n;
            if (rq->discarded > discard_max(srv)) {
                ret = MHD_NO; /* enough read for nothing: cut the connection */
            }
            goto out;
        }
        if (vl_buf_append(&rq->body, upload_data, n) != VEIL_OK) {
            veil_status st;
            vl_status_set(&st, VEIL_ERR_TOO_LARGE, NULL,
                          "the body is over the limit of %zu bytes", srv->limits.max_body);
            set_pending(rq, VEIL_ERR_TOO_LARGE, &st);
            rq->discarded = n;
            vl_buf_free(&rq->body);
        }
        goto out;
    }

    if (rq->status != 0) {
        goto out; /* answered already */
    }
    if (rq->has_pending) {
        ret = answer(srv, conn, rq, &rq->pending);
        goto out;
    }
    struct vl_reply r;
    memset(&r, 0, sizeof(r));
    vl_route_dispatch(srv, rq, conn, &r);
    ret = answer(srv, conn, rq, &r);
    vl_reply_free(&r);
out:
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct vl_srv *srv = cls;
    struct vl_req *rq = *con_cls;
    (void)conn;
    if (rq == NULL) {
        return;
    }
    double secs = elapsed_s(&rq->start);
    const char *pattern = vl_route_pattern(rq->m.route);
    if (rq->status != 0) {
        vl_metrics_record(&srv->metrics, rq->m.route, rq->status, secs);
        vl_log(VL_LOG_INFO, "%s %s %u %.3fms%s", rq->method_name, pattern, rq->status,
               secs * 1e3, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (cut short)");
    } else {
        vl_log(VL_LOG_INFO, "%s %s - %.3fms (closed before an answer)", rq->method_name,
               pattern, secs * 1e3);
    }
    if (rq->sess != NULL) {
        veil_session_free(rq->sess);
    }
    vl_buf_free(&rq->body);
    vl_reply_free(&rq->pending);
    free(rq);
    *con_cls = NULL;
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

int vl_server_run(veil_vault *v, const char *listen, volatile sig_atomic_t *stop)
{
    struct vl_srv srv;
    struct sockaddr_storage ss;
    socklen_t sslen = 0;
    struct MHD_Daemon *d = NULL;
    int ret = 1;
    char shown[INET6_ADDRSTRLEN];

    memset(&srv, 0, sizeof(srv));
    srv.vault = v;
    veil_vault_limits(v, &srv.limits);
    atomic_init(&srv.inflight, 0);
    atomic_init(&srv.stopping, 0);
    vl_metrics_init(&srv.metrics);

    if (parse_listen(listen, &ss, &sslen) != 0) {
        fprintf(stderr, "veil: cannot use listen address \"%s\" (want HOST:PORT)\n",
                listen ? listen : "");
        goto out;
    }
    int v6 = ss.ss_family == AF_INET6;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC |
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
    d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, &srv,
                         MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                         MHD_OPTION_THREAD_POOL_SIZE, pool_size(),
                         MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONN_LIMIT,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONN_TIMEOUT_S,
                         MHD_OPTION_NOTIFY_COMPLETED, on_completed, &srv,
                         MHD_OPTION_UNESCAPE_CALLBACK, keep_escapes, NULL,
                         MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
                         MHD_OPTION_END);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (d == NULL) {
        fprintf(stderr, "veil: cannot listen on %s\n", listen);
        goto out;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    unsigned port = info ? info->port : 0;
    const void *a = v6 ? (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
                       : (const void *)&((struct sockaddr_in *)&ss)->sin_addr;
    if (inet_ntop(ss.ss_family, a, shown, sizeof(shown)) == NULL) {
        snprintf(shown, sizeof(shown), "?");
    }
    fprintf(stderr, "veil: listening on http://%s%s%s:%u\n", v6 ? "[" : "", shown,
            v6 ? "]" : "", port);
    fflush(stderr);

    while (!*stop) {
        nap();
    }

    vl_log(VL_LOG_INFO, "stopping: finishing %ld request(s) in flight",
           atomic_load(&srv.inflight));
    atomic_store(&srv.stopping, 1);
    MHD_socket lfd = MHD_quiesce_daemon(d);
    if (lfd != MHD_INVALID_SOCKET) {
        close(lfd);
    }
    /* Drain: wait until nothing is in flight twice in a row (a request whose headers were
     * being read may just have started). */
    int quiet = 0;
    for (int i = 0; i < DRAIN_MAX_S * 10 && quiet < 2; i++) {
        quiet = atomic_load(&srv.inflight) == 0 ? quiet + 1 : 0;
        if (quiet < 2) {
            nap();
        }
    }
    ret = 0;
out:
    if (d != NULL) {
        MHD_stop_daemon(d);
        vl_log(VL_LOG_INFO, "stopped");
    }
    vl_metrics_destroy(&srv.metrics);
    return ret;
}
