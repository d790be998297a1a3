/*
 * log.h: the log, one JSON object a line on stderr, so that a machine can read it and a
 * value can never break out of its field. Every line has "time" (RFC 3339, UTC,
 * milliseconds) and "level" (debug, info, warn, error); vl_log adds "msg", vl_log_event an
 * "event" name and the caller's fields.
 *
 * Callers pass names, ids and __func__, never values from requests or documents, never a
 * raw request path (it holds document ids), and never a token's secret or key material.
 */
#ifndef VL_LOG_H
#define VL_LOG_H

#include <jansson.h>

enum vl_log_level { VL_LOG_DEBUG, VL_LOG_INFO, VL_LOG_WARN, VL_LOG_ERROR };

/* Lines below `lvl` are dropped (default: info). */
void vl_log_set_level(enum vl_log_level lvl);
int vl_log_enabled(enum vl_log_level lvl);
/* {"time":..,"level":..,"msg":TEXT}; TEXT is cut at 1 KiB. */
void vl_log(enum vl_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* {"time":..,"level":..,"event":EVENT, FIELDS...}. Takes ownership of `fields` (an object,
 * or NULL), also when the line is dropped. */
void vl_log_event(enum vl_log_level lvl, const char *event, json_t *fields);

#endif
