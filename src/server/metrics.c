/*
 * metrics.c: request counters for GET /metrics, in the Prometheus text format.
 *
 * Counters are kept per route pattern and status, in fixed arrays under one mutex: the set
 * of labels is bounded by construction (a route table and a status table), so a client
 * cannot grow memory by inventing paths or statuses. Labels never hold raw paths.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/internal.h"

/* Statuses the server answers with; anything else is counted under "other". */
static const unsigned status_slots[VL_STATUS_SLOTS] = {
    200, 201, 400, 401, 403, 404, 405, 409, 412, 413, 429, 500, 502, 503, 0, 0,
};
#define OTHER_SLOT (VL_STATUS_SLOTS - 1)

#define METRICS_MAX (256u * 1024u)

void vl_metrics_init(struct vl_metrics *mt)
{
    memset(mt, 0, sizeof(*mt));
    pthread_mutex_init(&mt->mu, NULL);
}

void vl_metrics_destroy(struct vl_metrics *mt)
{
    pthread_mutex_destroy(&mt->mu);
}

static int slot_of(unsigned status)
{
    for (int i = 0; i < OTHER_SLOT; i++) {
        if (status_slots[i] != 0 && status_slots[i] == status) {
            return i;
        }
    }
    return OTHER_SLOT;
}

void vl_metrics_record(struct vl_metrics *mt, enum vl_route_id r, unsigned status,
                       double seconds)
{
    if ((unsigned)r >= VL_ROUTE_COUNT) {
        r = VL_ROUTE_NONE;
    }
    int s = slot_of(status);
    pthread_mutex_lock(&mt->mu);
    mt->count[r][s]++;
    mt->dur_sum[r] += seconds;
    mt->dur_count[r]++;
    pthread_mutex_unlock(&mt->mu);
}

static veil_err appendf(struct vl_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static veil_err appendf(struct vl_buf *b, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line)) {
        return VEIL_ERR_INTERNAL;
    }
    return vl_buf_append(b, line, (size_t)n);
}

char *vl_metrics_render(struct vl_metrics *mt, long inflight, size_t body_bytes,
                        size_t connections, size_t *len)
{
    struct vl_metrics snap;
    struct vl_buf b;
    veil_err rc = VEIL_OK;
    char *text = NULL;

    pthread_mutex_lock(&mt->mu);
    memcpy(snap.count, mt->count, sizeof(snap.count));
    memcpy(snap.dur_sum, mt->dur_sum, sizeof(snap.dur_sum));
    memcpy(snap.dur_count, mt->dur_count, sizeof(snap.dur_count));
    pthread_mutex_unlock(&mt->mu);

    vl_buf_init(&b, METRICS_MAX);
    rc = vl_buf_append_str(&b, "# HELP veil_requests_total HTTP requests answered, by route "
                               "pattern and status.\n"
                               "# TYPE veil_requests_total counter\n");
    for (int r = 0; r < VL_ROUTE_COUNT && rc == VEIL_OK; r++) {
        for (int s = 0; s < VL_STATUS_SLOTS && rc == VEIL_OK; s++) {
            if (snap.count[r][s] == 0) {
                continue;
            }
            char status[16];
            if (s == OTHER_SLOT) {
                snprintf(status, sizeof(status), "other");
            } else {
                snprintf(status, sizeof(status), "%u", status_slots[s]);
            }
            rc = appendf(&b, "veil_requests_total{route=\"%s\",status=\"%s\"} %llu\n",
                         vl_route_pattern((enum vl_route_id)r), status,
                         (unsigned long long)snap.count[r][s]);
        }
    }
    if (rc == VEIL_OK) {
        rc = vl_buf_append_str(&b, "# HELP veil_request_duration_seconds Time from a "
                                   "request's headers to its answer.\n"
                                   "# TYPE veil_request_duration_seconds summary\n");
    }
    for (int r = 0; r < VL_ROUTE_COUNT && rc == VEIL_OK; r++) {
        if (snap.dur_count[r] == 0) {
            continue;
        }
        const char *pat = vl_route_pattern((enum vl_route_id)r);
        rc = appendf(&b, "veil_request_duration_seconds_sum{route=\"%s\"} %.6f\n", pat,
                     snap.dur_sum[r]);
        if (rc == VEIL_OK) {
            rc = appendf(&b, "veil_request_duration_seconds_count{route=\"%s\"} %llu\n", pat,
                         (unsigned long long)snap.dur_count[r]);
        }
    }
    if (rc == VEIL_OK) {
        rc = appendf(&b,
                     "# HELP veil_requests_in_flight Requests being answered.\n"
                     "# TYPE veil_requests_in_flight gauge\n"
                     "veil_requests_in_flight %ld\n",
                     inflight);
    }
    if (rc == VEIL_OK) {
        rc = appendf(&b,
                     "# HELP veil_request_body_bytes Bytes held for request bodies being "
                     "received.\n"
                     "# TYPE veil_request_body_bytes gauge\n"
                     "veil_request_body_bytes %zu\n"
                     "# HELP veil_connections Open client connections.\n"
                     "# TYPE veil_connections gauge\n"
                     "veil_connections %zu\n",
                     body_bytes, connections);
    }
    if (rc == VEIL_OK) {
        text = (char *)vl_buf_steal(&b, len);
    }
    vl_buf_free(&b);
    return text;
}
