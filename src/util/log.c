/*
 * log.c: JSON lines on stderr. Each line is built whole, with jansson (which escapes
 * quotes and control characters, so a message cannot forge a field or a line), and
 * written with one write(2), so that lines from different threads never interleave.
 * Text that is not UTF-8 is replaced rather than written: the log stays valid JSON.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"

#define MSG_MAX 1024
#define LINE_MAX_BYTES (64 * 1024)

static atomic_int min_level = VL_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void vl_log_set_level(enum vl_log_level lvl)
{
    atomic_store(&min_level, (int)lvl);
}

int vl_log_enabled(enum vl_log_level lvl)
{
    return (int)lvl >= atomic_load(&min_level);
}

static json_t *text_or_placeholder(const char *s)
{
    json_t *j = json_string(s);
    return j != NULL ? j : json_string("(text that is not UTF-8 left out)");
}

static void emit(json_t *line)
{
    char *text = json_dumps(line, JSON_COMPACT | JSON_REAL_PRECISION(6));
    if (text == NULL) {
        return;
    }
    size_t n = strlen(text);
    if (n < LINE_MAX_BYTES) {
        text[n] = '\n'; /* json_dumps leaves room for its NUL; the line keeps no NUL */
        ssize_t w = write(STDERR_FILENO, text, n + 1);
        (void)w;
    }
    free(text);
}

/* {"time":..,"level":..}: the head every line starts with. */
static json_t *head(enum vl_log_level lvl)
{
    char stamp[64];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(ts.tv_nsec / 1000000L));
    json_t *o = json_object();
    if (o != NULL && (json_object_set_new(o, "time", json_string(stamp)) != 0 ||
                      json_object_set_new(o, "level", json_string(level_names[lvl])) != 0)) {
        json_decref(o);
        o = NULL;
    }
    return o;
}

void vl_log(enum vl_log_level lvl, const char *fmt, ...)
{
    char msg[MSG_MAX];
    if ((unsigned)lvl > VL_LOG_ERROR || !vl_log_enabled(lvl)) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *o = head(lvl);
    if (o != NULL && json_object_set_new(o, "msg", text_or_placeholder(msg)) == 0) {
        emit(o);
    }
    json_decref(o);
}

void vl_log_event(enum vl_log_level lvl, const char *event, json_t *fields)
{
    json_t *o = NULL;
    if ((unsigned)lvl > VL_LOG_ERROR || !vl_log_enabled(lvl)) {
        goto out;
    }
    o = head(lvl);
    if (o == NULL || json_object_set_new(o, "event", text_or_placeholder(event)) != 0) {
        goto out;
    }
    if (fields != NULL && json_object_update(o, fields) != 0) {
        goto out;
    }
    emit(o);
out:
    json_decref(o);
    json_decref(fields);
}
