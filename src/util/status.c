/*
 * status.c: error codes and their API names and HTTP statuses. The table is the single
 * place where veil_err meets the HTTP API's errors.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util/status.h"

static const struct {
    const char *name;
    int http;
} err_table[] = {
    [VEIL_OK] = {"ok", 200},
    [VEIL_ERR_BAD_REQUEST] = {"bad_request", 400},
    [VEIL_ERR_INVALID_DOCUMENT] = {"invalid_document", 400},
    [VEIL_ERR_INVALID_POLICY] = {"invalid_policy", 400},
    [VEIL_ERR_UNSUPPORTED_QUERY] = {"unsupported_query", 400},
    [VEIL_ERR_UNAUTHENTICATED] = {"unauthenticated", 401},
    [VEIL_ERR_FORBIDDEN] = {"forbidden", 403},
    [VEIL_ERR_NOT_FOUND] = {"not_found", 404},
    [VEIL_ERR_CONFLICT] = {"conflict", 409},
    [VEIL_ERR_VERSION_MISMATCH] = {"version_mismatch", 412},
    [VEIL_ERR_TOO_LARGE] = {"too_large", 413},
    [VEIL_ERR_INTEGRITY] = {"integrity_violation", 502},
    [VEIL_ERR_STORE_UNAVAILABLE] = {"store_unavailable", 503},
    [VEIL_ERR_INTERNAL] = {"internal", 500},
    [VEIL_ERR_RATE_LIMITED] = {"rate_limited", 429},
    [VEIL_ERR_PRIVACY_BUDGET] = {"privacy_budget_exhausted", 429},
};

const char *veil_err_name(veil_err e)
{
    if ((unsigned)e >= sizeof(err_table) / sizeof(err_table[0])) {
        return "internal";
    }
    return err_table[e].name;
}

int veil_err_http_status(veil_err e)
{
    if ((unsigned)e >= sizeof(err_table) / sizeof(err_table[0])) {
        return 500;
    }
    return err_table[e].http;
}

veil_err vl_status_set(veil_status *st, veil_err code, const char *field, const char *fmt, ...)
{
    if (st != NULL) {
        va_list ap;
        st->code = code;
        st->retry_after = 0;
        va_start(ap, fmt);
        vsnprintf(st->message, sizeof(st->message), fmt, ap);
        va_end(ap);
        snprintf(st->field, sizeof(st->field), "%s", field != NULL ? field : "");
    }
    return code;
}

void vl_status_clear(veil_status *st)
{
    if (st != NULL) {
        st->code = VEIL_OK;
        st->message[0] = '\0';
        st->field[0] = '\0';
        st->retry_after = 0;
    }
}
