/* log.h: one line per event on stderr. Callers pass names, ids and __func__, never values
 * from requests or documents, and never key material. */
#ifndef VL_LOG_H
#define VL_LOG_H

enum vl_log_level { VL_LOG_DEBUG, VL_LOG_INFO, VL_LOG_WARN, VL_LOG_ERROR };

void vl_log_set_level(enum vl_log_level lvl);
void vl_log(enum vl_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
