/*
 * http.c: answers and raw-input checks of the HTTP front door.
 *
 * Every answer leaves through vl_reply_send(), which adds the security headers
 * (X-Content-Type-Options: nosniff, Cache-Control: no-store, a CSP that forbids
 * everything); every error is the JSON error object of the HTTP API, built with jansson so
 * that a message can never break out of its string. The checks here (percent-escapes,
 * UTF-8, nesting depth) run on bytes before any parser sees them, so that malformed input
 * is a 400 by construction.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "server/internal.h"

static const char fallback_error[] =
    "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";

static const char *generic_message(veil_err rc)
{
    switch (rc) {
    case VEIL_ERR_BAD_REQUEST:
        return "the request is malformed";
    case VEIL_ERR_INVALID_DOCUMENT:
        return "the document does not fit its policy";
    case VEIL_ERR_INVALID_POLICY:
        return "the policy is invalid";
    case VEIL_ERR_UNSUPPORTED_QUERY:
        return "the query is not supported by the fields' tactics";
    case VEIL_ERR_UNAUTHENTICATED:
        return "a valid bearer token is required";
    case VEIL_ERR_FORBIDDEN:
        return "the role may not do this";
    case VEIL_ERR_NOT_FOUND:
        return "not found";
    case VEIL_ERR_CONFLICT:
        return "a different one exists already";
    case VEIL_ERR_VERSION_MISMATCH:
        return "the document's version does not match If-Match";
    case VEIL_ERR_TOO_LARGE:
        return "the request body is over the limit";
    case VEIL_ERR_INTEGRITY:
        return "a store returned data that was altered";
    case VEIL_ERR_STORE_UNAVAILABLE:
        return "a store cannot be reached";
    case VEIL_ERR_RATE_LIMITED:
        return "too many requests; retry later";
    case VEIL_ERR_PRIVACY_BUDGET:
        return "the privacy budget for this period is spent";
    default:
        return "internal error";
    }
}

void vl_reply_free(struct vl_reply *r)
{
    if (r->owned) {
        free(r->body);
    }
    r->body = NULL;
    r->len = 0;
    r->owned = 0;
}

void vl_reply_copy(struct vl_reply *r, unsigned status, const char *ctype, const char *text,
                   size_t len)
{
    vl_reply_free(r);
    r->status = status;
    r->ctype = ctype;
    r->body = malloc(len + 1);
    if (r->body == NULL) {
        r->status = 500;
        r->ctype = VL_JSON_CTYPE;
        r->body = (char *)fallback_error;
        r->len = sizeof(fallback_error) - 1;
        return;
    }
    memcpy(r->body, text, len);
    r->body[len] = '\0';
    r->len = len;
    r->owned = 1;
    r->code = NULL;
    r->message[0] = '\0';
}

void vl_reply_error_raw(struct vl_reply *r, unsigned status, const char *code,
                        const char *message, const char *field)
{
    json_t *err = json_object();
    json_t *root = json_object();
    char *text = NULL;
    if (err == NULL || root == NULL) {
        goto out;
    }
    json_t *msg = json_string(message);
    if (msg == NULL) {
        /* Not valid UTF-8: say nothing rather than something broken. */
        msg = json_string("error");
    }
    if (json_object_set_new(err, "code", json_string(code)) != 0 ||
        json_object_set_new(err, "message", msg) != 0) {
        goto out;
    }
    if (field != NULL && field[0] != '\0') {
        json_t *f = json_string(field);
        if (f != NULL && json_object_set_new(err, "field", f) != 0) {
            goto out;
        }
    }
    if (json_object_set(root, "error", err) != 0) {
        goto out;
    }
    text = json_dumps(root, JSON_COMPACT);
out:
    json_decref(err);
    json_decref(root);
    vl_reply_free(r);
    r->status = status;
    r->ctype = VL_JSON_CTYPE;
    r->code = code;
    if (message != r->message) {
        snprintf(r->message, sizeof(r->message), "%s", message != NULL ? message : "");
    }
    if (text == NULL) {
        r->code = "internal";
        r->body = (char *)fallback_error;
        r->len = sizeof(fallback_error) - 1;
        r->owned = 0;
        return;
    }
    r->body = text;
    r->len = strlen(text);
    r->owned = 1;
}

void vl_reply_error(struct vl_reply *r, veil_err rc, const veil_status *st)
{
    if (rc == VEIL_OK) {
        rc = VEIL_ERR_INTERNAL;
    }
    const char *msg = (st != NULL && st->message[0] != '\0') ? st->message
                                                             : generic_message(rc);
    const char *field = st != NULL ? st->field : NULL;
    vl_reply_error_raw(r, (unsigned)veil_err_http_status(rc), veil_err_name(rc), msg, field);
    r->www_auth = rc == VEIL_ERR_UNAUTHENTICATED;
    if (st != NULL && st->retry_after > 0) {
        r->retry_after = st->retry_after > 86400L * 31 ? 86400u * 31 : (unsigned)st->retry_after;
    }
}

enum MHD_Result vl_reply_send(struct MHD_Connection *conn, const struct vl_reply *r,
                              int closing)
{
    enum MHD_Result ret = MHD_NO;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_COPY);
    if (resp == NULL) {
        goto out;
    }
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                r->ctype ? r->ctype : VL_JSON_CTYPE) != MHD_YES ||
        MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff") != MHD_YES ||
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES ||
        MHD_add_response_header(resp, "Content-Security-Policy",
                                "default-src 'none'; frame-ancestors 'none'") != MHD_YES ||
        MHD_add_response_header(resp, "Referrer-Policy", "no-referrer") != MHD_YES) {
        goto out;
    }
    if (r->allow != NULL &&
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow) != MHD_YES) {
        goto out;
    }
    if (r->www_auth &&
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer") != MHD_YES) {
        goto out;
    }
    if (r->retry_after > 0) {
        char secs[16];
        snprintf(secs, sizeof(secs), "%u", r->retry_after);
        if (MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, secs) != MHD_YES) {
            goto out;
        }
    }
    if (closing &&
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close") != MHD_YES) {
        goto out;
    }
    ret = MHD_queue_response(conn, r->status, resp);
out:
    if (resp != NULL) {
        MHD_destroy_response(resp);
    }
    return ret;
}

int vl_utf8_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint32_t cp;
        uint32_t min;
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
            cp = c & 0x1f;
            min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            cp = c & 0x0f;
            min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            cp = c & 0x07;
            min = 0x10000;
        } else {
            return 0;
        }
        if (n - i <= need) {
            return 0;
        }
        for (size_t k = 1; k <= need; k++) {
            uint8_t cc = p[i + k];
            if ((cc & 0xc0) != 0x80) {
                return 0;
            }
            cp = (cp << 6) | (cc & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return 0;
        }
        i += need + 1;
    }
    return 1;
}

int vl_json_depth_ok(const char *p, size_t n, unsigned max)
{
    unsigned depth = 0;
    int in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (in_str) {
            if (c == '\\') {
                i++;
            } else if (c == '"') {
                in_str = 0;
            }
            continue;
        }
        if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            if (++depth > max) {
                return 0;
            }
        } else if ((c == '}' || c == ']') && depth > 0) {
            depth--;
        }
    }
    return 1;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

int vl_pct_decode(const char *raw, size_t rawlen, char *out, size_t cap, size_t *outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < rawlen; i++) {
        char c = raw[i];
        if (c == '%') {
            if (rawlen - i < 3) {
                return -1;
            }
            int hi = hexval(raw[i + 1]);
            int lo = hexval(raw[i + 2]);
            if (hi < 0 || lo < 0) {
                return -1;
            }
            c = (char)((hi << 4) | lo);
            i += 2;
        }
        if (o >= cap) {
            return -1;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    *outlen = o;
    return 0;
}
