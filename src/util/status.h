/* status.h: filling a veil_status. Messages name fields and collections, never values. */
#ifndef VL_STATUS_H
#define VL_STATUS_H

#include "veil/veil.h"

#define VL_WUR __attribute__((warn_unused_result))

/* Sets st (if not NULL) and returns `code`, so that `return vl_status_set(...)` reads well.
 * `field` may be NULL. */
veil_err vl_status_set(veil_status *st, veil_err code, const char *field, const char *fmt,
                       ...) __attribute__((format(printf, 4, 5)));
void vl_status_clear(veil_status *st);

#endif
