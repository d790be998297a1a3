/*
 * value.c: the typed values of policy fields: checking, canonical bytes, order-preserving
 * integers and display masks.
 *
 * Every deterministic token (eq, range, group keys) is computed from the canonical bytes
 * made here, so two values a user would call equal must encode equally (1.5, "1.5" and
 * "1.50" in a decimal(2) field; 2024-01-01T01:00:00+01:00 and 2024-01-01T00:00:00Z) and two
 * different values never do. Numbers, dates and datetimes become one int64 (units of
 * 10^-scale, days since 1970-01-01, microseconds since the epoch in UTC) whose sign bit is
 * flipped, which makes the big-endian bytes and the uint64 sort as the values do.
 *
 * Decimals are exact. JSON strings are parsed digit by digit up to the int64 range. JSON
 * reals (jansson holds them as doubles) are read back through their shortest round-trip
 * decimal form, which equals what the client wrote whenever it wrote at most 15 significant
 * digits; a client that needs more sends a string.
 *
 * Messages name the field and the expected type, never the value (it may be a secret).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

#define VL_VALUE_TAG_NULL 0u
#define VL_DATE_MIN_DAYS (-719162)  /* 0001-01-01 */
#define VL_DATE_MAX_DAYS 2932896    /* 9999-12-31 */
#define VL_USEC_PER_DAY INT64_C(86400000000)
#define VL_USEC_MIN ((int64_t)VL_DATE_MIN_DAYS * VL_USEC_PER_DAY)
#define VL_USEC_MAX ((int64_t)(VL_DATE_MAX_DAYS + 1) * VL_USEC_PER_DAY - 1)
#define VL_MASK_TEXT_MAX 64

static uint8_t type_tag(enum vl_type t)
{
    return (uint8_t)(t + 1);
}

static uint64_t flip(int64_t v)
{
    return (uint64_t)v ^ (UINT64_C(1) << 63);
}

static int64_t unflip(uint64_t u)
{
    u ^= UINT64_C(1) << 63;
    return u > INT64_MAX ? -(int64_t)(~u) - 1 : (int64_t)u;
}

/* ---- calendar (proleptic Gregorian; H. Hinnant's days_from_civil) ---- */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yy + (*m <= 2));
}

static bool leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Exactly n ASCII digits at s, as a number; -1 otherwise. */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* "YYYY-MM-DD" at s (10 characters, no more checked) -> days; -1 if not a real date. */
static int parse_ymd(const char *s, int64_t *days)
{
    static const unsigned mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y = digits(s, 4), m, d;
    if (y < 1 || s[4] != '-' || s[7] != '-') {
        return -1;
    }
    m = digits(s + 5, 2);
    d = digits(s + 8, 2);
    if (m < 1 || m > 12 || d < 1) {
        return -1;
    }
    if ((unsigned)d > mdays[m - 1] + (m == 2 && leap(y))) {
        return -1;
    }
    *days = days_from_civil(y, (unsigned)m, (unsigned)d);
    return 0;
}

int vl_date_parse(const char *s, int64_t *days)
{
    int64_t d;
    if (s == NULL || strlen(s) != 10 || parse_ymd(s, &d) != 0) {
        return -1;
    }
    *days = d;
    return 0;
}

int vl_datetime_parse(const char *s, int64_t *usec)
{
    int64_t days, frac = 0, off = 0, total;
    int h, mi, sec;
    size_t n;
    const char *p;

    if (s == NULL || strlen(s) < 20 || parse_ymd(s, &days) != 0) {
        return -1;
    }
    if ((s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':') {
        return -1;
    }
    h = digits(s + 11, 2);
    mi = digits(s + 14, 2);
    sec = digits(s + 17, 2);
    if (h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 59) {
        return -1;
    }
    p = s + 19;
    if (*p == '.') {
        p++;
        n = 0;
        while (p[n] >= '0' && p[n] <= '9') {
            n++;
        }
        if (n == 0 || n > 6) {
            return -1;
        }
        for (size_t i = 0; i < 6; i++) {
            frac = frac * 10 + (i < n ? p[i] - '0' : 0);
        }
        p += n;
    }
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
        off = 0;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int oh = digits(p + 1, 2), om = digits(p + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59) {
            return -1;
        }
        off = (int64_t)(oh * 60 + om) * 60;
        if (*p == '-') {
            off = -off;
        }
    } else {
        return -1;
    }
    total = ((days * 86400 + h * 3600 + mi * 60 + sec) - off) * 1000000 + frac;
    if (total < VL_USEC_MIN || total > VL_USEC_MAX) {
        return -1;
    }
    *usec = total;
    return 0;
}

/* ---- decimals ---- */

/* value = (int_digits . frac_digits) * 10^exp10, in units of 10^-scale. Exact: fails when a
 * nonzero digit would fall below 10^-scale or the result leaves int64. */
static int decimal_from_digits(bool neg, const char *ip, size_t ni, const char *fp, size_t nf,
                               long exp10, int scale, int64_t *units)
{
    uint64_t limit = neg ? UINT64_C(1) << 63 : (uint64_t)INT64_MAX;
    uint64_t v = 0;
    size_t nd = ni + nf;
    long e = exp10 - (long)nf + scale;

#define DIGIT(k) ((k) < ni ? ip[(k)] : fp[(k) - ni])
    while (nd > 0 && DIGIT(nd - 1) == '0') {
        nd--;
        e++;
    }
    if (nd > 0 && e < 0) {
        return -1;
    }
    for (size_t k = 0; k < nd; k++) {
        unsigned dg = (unsigned)(DIGIT(k) - '0');
        if (v > (limit - dg) / 10) {
            return -1;
        }
        v = v * 10 + dg;
    }
#undef DIGIT
    for (long i = 0; v != 0 && i < e; i++) {
        if (v > limit / 10) {
            return -1;
        }
        v *= 10;
    }
    if (neg) {
        *units = v == (UINT64_C(1) << 63) ? INT64_MIN : -(int64_t)v;
    } else {
        *units = (int64_t)v;
    }
    return 0;
}

static size_t span_digits(const char *s)
{
    size_t n = 0;
    while (s[n] >= '0' && s[n] <= '9') {
        n++;
    }
    return n;
}

/* "-?D+(.D+)?" exactly. */
static int decimal_from_string(const char *s, int scale, int64_t *units)
{
    bool neg = *s == '-';
    const char *ip = s + neg, *fp = "";
    size_t ni = span_digits(ip), nf = 0;
    const char *p = ip + ni;
    if (ni == 0) {
        return -1;
    }
    if (*p == '.') {
        fp = p + 1;
        nf = span_digits(fp);
        if (nf == 0) {
            return -1;
        }
        p = fp + nf;
    }
    if (*p != '\0') {
        return -1;
    }
    return decimal_from_digits(neg, ip, ni, fp, nf, 0, scale, units);
}

/* The shortest "%.*e" text that reads back as d. */
static void shortest_e(double d, char *buf, size_t n)
{
    for (int prec = 0; prec <= 16; prec++) {
        snprintf(buf, n, "%.*e", prec, d);
        if (strtod(buf, NULL) == d) {
            return;
        }
    }
}

static int decimal_from_real(double d, int scale, int64_t *units)
{
    char buf[48];
    const char *ip, *fp = "", *p;
    size_t ni, nf = 0;
    bool neg;
    char *end;
    long e;

    if (!isfinite(d)) {
        return -1;
    }
    shortest_e(d, buf, sizeof(buf));
    neg = buf[0] == '-';
    ip = buf + neg;
    ni = span_digits(ip);
    p = ip + ni;
    if (ni != 1) {
        return -1;
    }
    if (*p != 'e') { /* the radix character, whatever the locale calls it */
        fp = p + 1;
        nf = span_digits(fp);
        p = fp + nf;
    }
    if (*p != 'e') {
        return -1;
    }
    e = strtol(p + 1, &end, 10);
    if (*end != '\0') {
        return -1;
    }
    return decimal_from_digits(neg, ip, ni, fp, nf, e, scale, units);
}

static int64_t pow10_i64(int n)
{
    int64_t v = 1;
    while (n-- > 0) {
        v *= 10;
    }
    return v;
}

int vl_decimal_parse(const json_t *v, int scale, int64_t *units)
{
    int64_t u;
    if (scale < 0 || scale > 18 || v == NULL) {
        return -1;
    }
    if (json_is_integer(v)) {
        if (__builtin_mul_overflow((int64_t)json_integer_value(v), pow10_i64(scale), &u)) {
            return -1;
        }
    } else if (json_is_real(v)) {
        if (decimal_from_real(json_real_value(v), scale, &u) != 0) {
            return -1;
        }
    } else if (json_is_string(v)) {
        if (strlen(json_string_value(v)) != json_string_length(v) ||
            decimal_from_string(json_string_value(v), scale, &u) != 0) {
            return -1;
        }
    } else {
        return -1;
    }
    *units = u;
    return 0;
}

/* ---- checking and encoding ---- */

/* The int64 behind a range-capable value; -1 when v does not fit f. */
static int value_to_i64(const struct vl_field *f, const json_t *v, int64_t *out)
{
    const char *s = json_string_value(v);
    switch (f->type) {
    case VL_T_INTEGER:
        if (!json_is_integer(v)) {
            return -1;
        }
        *out = (int64_t)json_integer_value(v);
        return 0;
    case VL_T_DECIMAL:
        return vl_decimal_parse(v, f->scale, out);
    case VL_T_DATE:
        return s != NULL && strlen(s) == json_string_length(v) ? vl_date_parse(s, out) : -1;
    case VL_T_DATETIME:
        return s != NULL && strlen(s) == json_string_length(v) ? vl_datetime_parse(s, out)
                                                               : -1;
    default:
        return -1;
    }
}

static bool value_fits(const struct vl_field *f, const json_t *v)
{
    int64_t x;
    if (json_is_null(v)) {
        return true;
    }
    switch (f->type) {
    case VL_T_STRING:
    case VL_T_TEXT:
        return json_is_string(v);
    case VL_T_BOOLEAN:
        return json_is_boolean(v);
    case VL_T_JSON:
        return true;
    default:
        return value_to_i64(f, v, &x) == 0;
    }
}

veil_err vl_value_check(const struct vl_field *f, const json_t *v, veil_status *st)
{
    veil_err rc = VEIL_OK;
    if (v == NULL || !value_fits(f, v)) {
        switch (f->type) {
        case VL_T_STRING:
            rc = vl_status_set(st, VEIL_ERR_INVALID_DOCUMENT, f->path,
                               "field %s: expected a string", f->path);
            break;
        case VL_T_TEXT:
            rc = vl_status_set(st, VEIL_ERR_INVALID_DOCUMENT, f->path,
                               "field %s: expected text (a JSON string)", f->path);
            break;
        case VL_T_INTEGER:
            rc = vl_status_set(st, VEIL_ERR_INVALID_DOCUMENT, f->path,
                               "field %s: expected an integer (a JSON integer within 64 bits)",
                               f->path);
            break;
        case VL_T_DECIMAL:
            rc = vl_status_set(st, VEIL_ERR_INVALID_DOCUMENT, f->path,
                               "field %s: expected a decimal with at most %d digit%s after the "
                               "point, as a JSON number or a string such as \"-12.5\"",
                               f->path, f->scale, f->scale == 1 ? "" : "s");
            break;
        case VL_T_DATE:
            rc = vl_status_set(st, VEIL_ERR_INVALID_DOCUMENT, f->path,
                               "field %s: expected a date \"YYYY-MM-DD\" between 0001-01-01 "
                               "and 9999-12-31",
                               f->path);
            break;
        case VL_T_DATETIME:
            rc = vl_status_set(st, VEIL_ERR_INVALID_DOCUMENT, f->path,
                               "field %s: expected an RFC 3339 datetime with an offset, such "
                               "as \"2024-05-01T12:00:00Z\" (at most 6 fraction digits)",
                               f->path);
            break;
        case VL_T_BOOLEAN:
            rc = vl_status_set(st, VEIL_ERR_INVALID_DOCUMENT, f->path,
                               "field %s: expected a boolean (true or false)", f->path);
            break;
        default:
            rc = vl_status_set(st, VEIL_ERR_INVALID_DOCUMENT, f->path,
                               "field %s: expected a JSON value", f->path);
            break;
        }
    }
    return rc;
}

veil_err vl_value_canonical(const struct vl_field *f, const json_t *v, struct vl_buf *out)
{
    veil_err rc = VEIL_OK;
    int64_t x;
    char *text = NULL;

    if (v == NULL || !value_fits(f, v)) {
        rc = VEIL_ERR_INVALID_DOCUMENT;
        goto out;
    }
    if (json_is_null(v)) {
        rc = vl_buf_put_u8(out, VL_VALUE_TAG_NULL);
        goto out;
    }
    rc = vl_buf_put_u8(out, type_tag(f->type));
    if (rc != VEIL_OK) {
        goto out;
    }
    switch (f->type) {
    case VL_T_STRING:
    case VL_T_TEXT:
        rc = vl_buf_append(out, json_string_value(v), json_string_length(v));
        break;
    case VL_T_BOOLEAN:
        rc = vl_buf_put_u8(out, json_is_true(v) ? 1 : 0);
        break;
    case VL_T_JSON:
        text = json_dumps(v, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
        rc = text != NULL ? vl_buf_append_str(out, text) : VEIL_ERR_INTERNAL;
        break;
    default:
        if (value_to_i64(f, v, &x) != 0) {
            rc = VEIL_ERR_INVALID_DOCUMENT;
            break;
        }
        rc = vl_buf_put_u64(out, flip(x));
        break;
    }
out:
    free(text);
    return rc;
}

veil_err vl_value_to_u64(const struct vl_field *f, const json_t *v, uint64_t *out)
{
    veil_err rc = VEIL_OK;
    int64_t x = 0;
    if (f->type != VL_T_INTEGER && f->type != VL_T_DECIMAL && f->type != VL_T_DATE &&
        f->type != VL_T_DATETIME) {
        rc = VEIL_ERR_UNSUPPORTED_QUERY;
        goto out;
    }
    if (v == NULL || value_to_i64(f, v, &x) != 0) {
        rc = VEIL_ERR_INVALID_DOCUMENT;
        goto out;
    }
out:
    if (rc == VEIL_OK) {
        *out = flip(x);
    }
    return rc;
}

/* Units of 10^-scale as text with exactly `scale` fraction digits. */
static void format_decimal(int64_t units, int scale, char *buf, size_t n)
{
    uint64_t mag = units < 0 ? (uint64_t)0 - (uint64_t)units : (uint64_t)units;
    uint64_t p = (uint64_t)pow10_i64(scale);
    if (scale == 0) {
        snprintf(buf, n, "%s%llu", units < 0 ? "-" : "", (unsigned long long)mag);
    } else {
        snprintf(buf, n, "%s%llu.%0*llu", units < 0 ? "-" : "", (unsigned long long)(mag / p),
                 scale, (unsigned long long)(mag % p));
    }
}

static void format_datetime(int64_t usec, char *buf, size_t n)
{
    int64_t days = usec / VL_USEC_PER_DAY, rem = usec % VL_USEC_PER_DAY;
    int y;
    unsigned m, d;
    if (rem < 0) {
        rem += VL_USEC_PER_DAY;
        days--;
    }
    civil_from_days(days, &y, &m, &d);
    int64_t secs = rem / 1000000, frac = rem % 1000000;
    int len = snprintf(buf, n, "%04d-%02u-%02uT%02d:%02d:%02d", y, m, d, (int)(secs / 3600),
                       (int)(secs / 60 % 60), (int)(secs % 60));
    if (len > 0 && (size_t)len < n) {
        if (frac != 0) {
            snprintf(buf + len, n - (size_t)len, ".%06dZ", (int)frac);
        } else {
            snprintf(buf + len, n - (size_t)len, "Z");
        }
    }
}

json_t *vl_value_from_canonical(const struct vl_field *f, const uint8_t *p, size_t n)
{
    json_t *v = NULL;
    char buf[64];
    int64_t x;
    int y;
    unsigned m, d;

    if (p == NULL || n == 0) {
        goto out;
    }
    if (p[0] == VL_VALUE_TAG_NULL) {
        v = n == 1 ? json_null() : NULL;
        goto out;
    }
    if (p[0] != type_tag(f->type)) {
        goto out;
    }
    p++;
    n--;
    switch (f->type) {
    case VL_T_STRING:
    case VL_T_TEXT:
        v = json_stringn((const char *)p, n); /* NULL for invalid UTF-8 */
        break;
    case VL_T_BOOLEAN:
        v = n == 1 && p[0] <= 1 ? json_boolean(p[0]) : NULL;
        break;
    case VL_T_JSON:
        v = json_loadb((const char *)p, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
        break;
    default:
        if (n != 8) {
            break;
        }
        x = unflip(vl_load_u64(p));
        if (f->type == VL_T_INTEGER) {
            v = json_integer((json_int_t)x);
        } else if (f->type == VL_T_DECIMAL) {
            if (f->scale >= 0 && f->scale <= 18) {
                format_decimal(x, f->scale, buf, sizeof(buf));
                v = json_string(buf);
            }
        } else if (f->type == VL_T_DATE) {
            if (x >= VL_DATE_MIN_DAYS && x <= VL_DATE_MAX_DAYS) {
                civil_from_days(x, &y, &m, &d);
                snprintf(buf, sizeof(buf), "%04d-%02u-%02u", y, m, d);
                v = json_string(buf);
            }
        } else if (x >= VL_USEC_MIN && x <= VL_USEC_MAX) {
            format_datetime(x, buf, sizeof(buf));
            v = json_string(buf);
        }
        break;
    }
out:
    return v;
}

/* ---- masks ---- */

static size_t utf8_count(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) {
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    }
    return c;
}

/* Byte offset of code point number k (0-based) in s. */
static size_t utf8_offset(const char *s, size_t n, size_t k)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            if (c == k) {
                return i;
            }
            c++;
        }
    }
    return n;
}

/* The text form a mask works on, written into buf unless it is the string itself. */
static const char *mask_text(const json_t *v, char *buf, size_t bufn, size_t *len)
{
    const char *s = NULL;
    if (json_is_string(v)) {
        *len = json_string_length(v);
        return json_string_value(v);
    }
    if (json_is_integer(v)) {
        snprintf(buf, bufn, "%lld", (long long)json_integer_value(v));
        s = buf;
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(buf, bufn, "%.*g", prec, d);
            if (strtod(buf, NULL) == d) {
                break;
            }
        }
        s = buf;
    } else if (json_is_boolean(v)) {
        s = json_is_true(v) ? "true" : "false";
    }
    if (s != NULL) {
        *len = strlen(s);
    }
    return s;
}

json_t *vl_mask_apply(enum vl_mask m, const json_t *v)
{
    json_t *r = NULL;
    char buf[VL_MASK_TEXT_MAX];
    char *out = NULL;
    const char *s;
    size_t len = 0, chars, off;

    if (v == NULL || m == VL_MASK_HASH) {
        goto out;
    }
    if (m == VL_MASK_NONE || json_is_null(v)) {
        r = json_incref((json_t *)v);
        goto out;
    }
    s = mask_text(v, buf, sizeof(buf), &len);
    if (m == VL_MASK_REDACT || s == NULL) {
        r = json_string("[redacted]");
        goto out;
    }
    chars = utf8_count(s, len);
    if (m == VL_MASK_LAST4) {
        off = chars <= 4 ? len : utf8_offset(s, len, chars - 4);
        out = malloc(4 + (len - off) + 1);
        if (out == NULL) {
            goto out;
        }
        memcpy(out, "****", 4);
        memcpy(out + 4, s + off, len - off);
        out[4 + len - off] = '\0';
    } else {
        off = chars == 0 ? 0 : utf8_offset(s, len, 1);
        out = malloc(off + 3 + 1);
        if (out == NULL) {
            goto out;
        }
        memcpy(out, s, off);
        memcpy(out + off, "***", 4);
    }
    r = json_string(out);
out:
    free(out);
    return r;
}
