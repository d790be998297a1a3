/*
 * test_value.c: typed field values: checks for every type and their edges, canonical
 * encodings (equal values encode equally, and decode back), order preservation of the
 * range map, and display masks (UTF-8 aware). Messages must never echo a value.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policy/policy.h"
#include "testutil.h"

static struct vl_field field(enum vl_type t, int scale)
{
    struct vl_field f;
    memset(&f, 0, sizeof(f));
    f.path = "f";
    f.type = t;
    f.scale = scale;
    return f;
}

/* Parses JSON text (any value) and checks it against a field of type t. */
static veil_err check_json(enum vl_type t, int scale, const char *json, veil_status *st)
{
    struct vl_field f = field(t, scale);
    json_t *v = json_loads(json, JSON_DECODE_ANY, NULL);
    if (v == NULL) {
        fail_msg("bad test JSON: %s", json);
    }
    veil_err rc = vl_value_check(&f, v, st);
    json_decref(v);
    return rc;
}

static void ok(enum vl_type t, int scale, const char *json)
{
    veil_status st;
    vl_status_clear(&st);
    if (check_json(t, scale, json, &st) != VEIL_OK) {
        fail_msg("%s rejected as %s: %s", json, vl_type_name(t), st.message);
    }
}

static void bad(enum vl_type t, int scale, const char *json)
{
    veil_status st;
    vl_status_clear(&st);
    if (check_json(t, scale, json, &st) != VEIL_ERR_INVALID_DOCUMENT) {
        fail_msg("%s accepted as %s", json, vl_type_name(t));
    }
    assert_int_equal(st.code, VEIL_ERR_INVALID_DOCUMENT);
    assert_string_equal(st.field, "f");
    assert_non_null(strstr(st.message, "field f: expected"));
}

/* The canonical bytes of a JSON value in a field, hex-encoded into out. */
static void canon_hex(const struct vl_field *f, const char *json, char *out, size_t outn)
{
    struct vl_buf b;
    json_t *v = json_loads(json, JSON_DECODE_ANY, NULL);
    assert_non_null(v);
    vl_buf_init(&b, 1 << 16);
    if (vl_value_canonical(f, v, &b) != VEIL_OK) {
        fail_msg("no canonical form for %s", json);
    }
    assert_true(2 * b.len + 1 <= outn);
    vl_hex(out, b.data, b.len);
    vl_buf_free(&b);
    json_decref(v);
}

/* Canonical encoding, then decoding: the JSON text of what comes back. */
static char *round_trip(const struct vl_field *f, const char *json)
{
    struct vl_buf b;
    json_t *v = json_loads(json, JSON_DECODE_ANY, NULL);
    assert_non_null(v);
    vl_buf_init(&b, 1 << 16);
    assert_int_equal(vl_value_canonical(f, v, &b), VEIL_OK);
    json_t *back = vl_value_from_canonical(f, b.data, b.len);
    assert_non_null(back);
    char *s = json_dumps(back, JSON_ENCODE_ANY | JSON_COMPACT);
    json_decref(back);
    json_decref(v);
    vl_buf_free(&b);
    return s;
}

static void expect_round_trip(const struct vl_field *f, const char *json, const char *want)
{
    char *got = round_trip(f, json);
    if (strcmp(got, want) != 0) {
        fail_msg("%s came back as %s, not %s", json, got, want);
    }
    free(got);
}

/* ---- checks ---- */

static void test_strings_and_booleans(void **state)
{
    (void)state;
    ok(VL_T_STRING, 0, "\"\"");
    ok(VL_T_STRING, 0, "\"Zoë\"");
    ok(VL_T_TEXT, 0, "\"late payment, factuur\"");
    bad(VL_T_STRING, 0, "12");
    bad(VL_T_STRING, 0, "true");
    bad(VL_T_STRING, 0, "[\"a\"]");
    bad(VL_T_TEXT, 0, "{\"a\":1}");
    ok(VL_T_BOOLEAN, 0, "true");
    ok(VL_T_BOOLEAN, 0, "false");
    bad(VL_T_BOOLEAN, 0, "1");
    bad(VL_T_BOOLEAN, 0, "\"true\"");
    ok(VL_T_JSON, 0, "{\"a\":[1,2,{\"b\":null}]}");
    ok(VL_T_JSON, 0, "1.5");
    for (int t = VL_T_STRING; t <= VL_T_JSON; t++) {
        ok((enum vl_type)t, 2, "null");
    }
    veil_status st;
    struct vl_field f = field(VL_T_STRING, 0);
    assert_int_equal(vl_value_check(&f, NULL, &st), VEIL_ERR_INVALID_DOCUMENT);
}

static void test_integers(void **state)
{
    (void)state;
    ok(VL_T_INTEGER, 0, "0");
    ok(VL_T_INTEGER, 0, "-1");
    ok(VL_T_INTEGER, 0, "9223372036854775807");
    ok(VL_T_INTEGER, 0, "-9223372036854775808");
    bad(VL_T_INTEGER, 0, "1.0");
    bad(VL_T_INTEGER, 0, "1e3");
    bad(VL_T_INTEGER, 0, "\"12\"");
    bad(VL_T_INTEGER, 0, "false");

    struct vl_field f = field(VL_T_INTEGER, 0);
    expect_round_trip(&f, "9223372036854775807", "9223372036854775807");
    expect_round_trip(&f, "-9223372036854775808", "-9223372036854775808");
    expect_round_trip(&f, "-42", "-42");
    char hex[64];
    canon_hex(&f, "0", hex, sizeof(hex));
    assert_string_equal(hex, "038000000000000000");
    canon_hex(&f, "-1", hex, sizeof(hex));
    assert_string_equal(hex, "037fffffffffffffff");
    canon_hex(&f, "-9223372036854775808", hex, sizeof(hex));
    assert_string_equal(hex, "030000000000000000");
}

static void test_decimals(void **state)
{
    (void)state;
    int64_t u;
    json_t *v;

    ok(VL_T_DECIMAL, 2, "\"1234.50\"");
    ok(VL_T_DECIMAL, 2, "1234.5");
    ok(VL_T_DECIMAL, 2, "12");
    ok(VL_T_DECIMAL, 2, "\"-0.5\"");
    ok(VL_T_DECIMAL, 2, "-0.05");
    ok(VL_T_DECIMAL, 2, "\"007.10\"");
    ok(VL_T_DECIMAL, 2, "\"1.500000\"");   /* trailing zeros are not digits too many */
    ok(VL_T_DECIMAL, 2, "1e3");
    ok(VL_T_DECIMAL, 2, "12345678901234.56"); /* 16 significant digits, still exact */
    ok(VL_T_DECIMAL, 0, "\"12\"");
    ok(VL_T_DECIMAL, 0, "\"12.0\"");
    ok(VL_T_DECIMAL, 18, "\"9.223372036854775807\"");
    bad(VL_T_DECIMAL, 2, "\"1234.505\"");
    bad(VL_T_DECIMAL, 2, "1.005");
    bad(VL_T_DECIMAL, 2, "0.30000000000000004");
    bad(VL_T_DECIMAL, 0, "\"12.5\"");
    bad(VL_T_DECIMAL, 0, "0.5");
    bad(VL_T_DECIMAL, 18, "\"10\"");
    bad(VL_T_DECIMAL, 2, "92233720368547759");   /* * 100 leaves int64 */
    bad(VL_T_DECIMAL, 2, "1e300");
    bad(VL_T_DECIMAL, 0, "\"9223372036854775808\"");
    bad(VL_T_DECIMAL, 0, "\"123456789012345678901234567890\"");
    bad(VL_T_DECIMAL, 2, "\"\"");
    bad(VL_T_DECIMAL, 2, "\"-\"");
    bad(VL_T_DECIMAL, 2, "\"1.\"");
    bad(VL_T_DECIMAL, 2, "\".5\"");
    bad(VL_T_DECIMAL, 2, "\"+1\"");
    bad(VL_T_DECIMAL, 2, "\" 1\"");
    bad(VL_T_DECIMAL, 2, "\"1 \"");
    bad(VL_T_DECIMAL, 2, "\"1e3\"");
    bad(VL_T_DECIMAL, 2, "\"0x10\"");
    bad(VL_T_DECIMAL, 2, "\"1,5\"");
    bad(VL_T_DECIMAL, 2, "\"NaN\"");
    bad(VL_T_DECIMAL, 2, "true");
    bad(VL_T_DECIMAL, 2, "[1]");

    v = json_string("-9223372036854775808");
    assert_int_equal(vl_decimal_parse(v, 0, &u), 0);
    assert_true(u == INT64_MIN);
    json_decref(v);
    v = json_real(-0.0);
    assert_int_equal(vl_decimal_parse(v, 2, &u), 0);
    assert_int_equal(u, 0);
    json_decref(v);
    v = json_real(0.1);
    assert_int_equal(vl_decimal_parse(v, 1, &u), 0);
    assert_int_equal(u, 1);
    assert_int_equal(vl_decimal_parse(v, 19, &u), -1);
    assert_int_equal(vl_decimal_parse(v, -1, &u), -1);
    json_decref(v);

    /* 1.5 == "1.5" == "1.50" == "001.500" at scale 2; and not 1.05. */
    struct vl_field f = field(VL_T_DECIMAL, 2);
    char a[64], b[64];
    canon_hex(&f, "1.5", a, sizeof(a));
    canon_hex(&f, "\"1.50\"", b, sizeof(b));
    assert_string_equal(a, b);
    canon_hex(&f, "\"1.5\"", b, sizeof(b));
    assert_string_equal(a, b);
    canon_hex(&f, "\"001.500\"", b, sizeof(b));
    assert_string_equal(a, b);
    assert_string_equal(a, "048000000000000096");
    canon_hex(&f, "1.05", b, sizeof(b));
    assert_string_not_equal(a, b);
    canon_hex(&f, "150", b, sizeof(b));
    assert_string_not_equal(a, b);

    expect_round_trip(&f, "1234.5", "\"1234.50\"");
    expect_round_trip(&f, "\"-0.05\"", "\"-0.05\"");
    expect_round_trip(&f, "\"-0\"", "\"0.00\"");
    expect_round_trip(&f, "12", "\"12.00\"");
    struct vl_field f0 = field(VL_T_DECIMAL, 0);
    expect_round_trip(&f0, "\"-12\"", "\"-12\"");
    expect_round_trip(&f0, "\"-9223372036854775808\"", "\"-9223372036854775808\"");
    struct vl_field f18 = field(VL_T_DECIMAL, 18);
    expect_round_trip(&f18, "\"-1.5\"", "\"-1.500000000000000000\"");
}

static void test_dates(void **state)
{
    (void)state;
    int64_t d;
    ok(VL_T_DATE, 0, "\"2024-02-29\"");
    ok(VL_T_DATE, 0, "\"2000-02-29\"");
    ok(VL_T_DATE, 0, "\"0001-01-01\"");
    ok(VL_T_DATE, 0, "\"9999-12-31\"");
    bad(VL_T_DATE, 0, "\"2023-02-29\"");
    bad(VL_T_DATE, 0, "\"1900-02-29\"");
    bad(VL_T_DATE, 0, "\"2024-04-31\"");
    bad(VL_T_DATE, 0, "\"2024-13-01\"");
    bad(VL_T_DATE, 0, "\"2024-00-10\"");
    bad(VL_T_DATE, 0, "\"2024-01-00\"");
    bad(VL_T_DATE, 0, "\"0000-01-01\"");
    bad(VL_T_DATE, 0, "\"2024-1-01\"");
    bad(VL_T_DATE, 0, "\"2024/01/01\"");
    bad(VL_T_DATE, 0, "\"2024-01-01T00:00:00Z\"");
    bad(VL_T_DATE, 0, "\"+2024-01-01\"");
    bad(VL_T_DATE, 0, "20240101");

    assert_int_equal(vl_date_parse("1970-01-01", &d), 0);
    assert_int_equal(d, 0);
    assert_int_equal(vl_date_parse("1969-12-31", &d), 0);
    assert_int_equal(d, -1);
    assert_int_equal(vl_date_parse("2000-03-01", &d), 0);
    assert_int_equal(d, 11017);
    assert_int_equal(vl_date_parse("0001-01-01", &d), 0);
    assert_int_equal(d, -719162);
    assert_int_equal(vl_date_parse("2024-02-30", &d), -1);

    struct vl_field f = field(VL_T_DATE, 0);
    expect_round_trip(&f, "\"2024-02-29\"", "\"2024-02-29\"");
    expect_round_trip(&f, "\"0001-01-01\"", "\"0001-01-01\"");
    expect_round_trip(&f, "\"9999-12-31\"", "\"9999-12-31\"");
    expect_round_trip(&f, "\"1969-07-20\"", "\"1969-07-20\"");
}

static void test_datetimes(void **state)
{
    (void)state;
    int64_t us;
    ok(VL_T_DATETIME, 0, "\"2024-05-01T12:00:00Z\"");
    ok(VL_T_DATETIME, 0, "\"2024-05-01t12:00:00z\"");
    ok(VL_T_DATETIME, 0, "\"2024-05-01T12:00:00.5+02:00\"");
    ok(VL_T_DATETIME, 0, "\"2024-05-01T12:00:00.123456-00:30\"");
    ok(VL_T_DATETIME, 0, "\"9999-12-31T23:59:59.999999Z\"");
    ok(VL_T_DATETIME, 0, "\"0001-01-01T00:00:00Z\"");
    bad(VL_T_DATETIME, 0, "\"0001-01-01T00:00:00+01:00\""); /* before year 1 in UTC */
    bad(VL_T_DATETIME, 0, "\"9999-12-31T23:00:00-01:00\""); /* after 9999 in UTC */
    bad(VL_T_DATETIME, 0, "\"2024-05-01T12:00:00\"");
    bad(VL_T_DATETIME, 0, "\"2024-05-01 12:00:00Z\"");
    bad(VL_T_DATETIME, 0, "\"2024-05-01T12:00Z\"");
    bad(VL_T_DATETIME, 0, "\"2024-05-01T24:00:00Z\"");
    bad(VL_T_DATETIME, 0, "\"2024-05-01T12:60:00Z\"");
    bad(VL_T_DATETIME, 0, "\"2024-05-01T12:00:60Z\"");
    bad(VL_T_DATETIME, 0, "\"2024-05-01T12:00:00.1234567Z\"");
    bad(VL_T_DATETIME, 0, "\"2024-05-01T12:00:00.Z\"");
    bad(VL_T_DATETIME, 0, "\"2024-05-01T12:00:00+0200\"");
    bad(VL_T_DATETIME, 0, "\"2024-05-01T12:00:00+24:00\"");
    bad(VL_T_DATETIME, 0, "\"2024-05-01T12:00:00Zjunk\"");
    bad(VL_T_DATETIME, 0, "\"2023-02-29T12:00:00Z\"");
    bad(VL_T_DATETIME, 0, "1714564800");

    assert_int_equal(vl_datetime_parse("1970-01-01T00:00:00Z", &us), 0);
    assert_int_equal(us, 0);
    assert_int_equal(vl_datetime_parse("1970-01-01T01:00:00.000001+01:00", &us), 0);
    assert_int_equal(us, 1);
    assert_int_equal(vl_datetime_parse("1969-12-31T23:59:59.9Z", &us), 0);
    assert_int_equal(us, -100000);

    struct vl_field f = field(VL_T_DATETIME, 0);
    char a[64], b[64];
    canon_hex(&f, "\"2024-05-01T14:00:00+02:00\"", a, sizeof(a));
    canon_hex(&f, "\"2024-05-01T12:00:00Z\"", b, sizeof(b));
    assert_string_equal(a, b);
    canon_hex(&f, "\"2024-05-01T11:30:00.000000-00:30\"", b, sizeof(b));
    assert_string_equal(a, b);
    expect_round_trip(&f, "\"2024-05-01T14:00:00+02:00\"", "\"2024-05-01T12:00:00Z\"");
    expect_round_trip(&f, "\"2024-01-01T00:30:00.5+01:00\"", "\"2023-12-31T23:30:00.500000Z\"");
    expect_round_trip(&f, "\"1969-12-31T23:59:59.999999Z\"", "\"1969-12-31T23:59:59.999999Z\"");
    expect_round_trip(&f, "\"9999-12-31T23:59:59.999999Z\"", "\"9999-12-31T23:59:59.999999Z\"");
    expect_round_trip(&f, "\"0001-01-01T00:00:00Z\"", "\"0001-01-01T00:00:00Z\"");
}

static void test_message_hides_value(void **state)
{
    (void)state;
    static const enum vl_type types[] = {VL_T_STRING, VL_T_INTEGER, VL_T_DECIMAL, VL_T_DATE,
                                         VL_T_DATETIME, VL_T_BOOLEAN};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        struct vl_field f = field(types[i], 2);
        json_t *v = types[i] == VL_T_STRING ? json_integer(987654321)
                                            : json_string("SECRET-987654321");
        veil_status st;
        assert_int_equal(vl_value_check(&f, v, &st), VEIL_ERR_INVALID_DOCUMENT);
        assert_null(strstr(st.message, "SECRET"));
        assert_null(strstr(st.message, "987654321"));
        assert_non_null(strstr(st.message, vl_type_name(types[i])));
        json_decref(v);
    }
}

static void test_canonical_tags(void **state)
{
    (void)state;
    char hex[64];
    struct vl_field s = field(VL_T_STRING, 0), t = field(VL_T_TEXT, 0);
    struct vl_field b = field(VL_T_BOOLEAN, 0), j = field(VL_T_JSON, 0);
    canon_hex(&s, "\"ab\"", hex, sizeof(hex));
    assert_string_equal(hex, "016162");
    canon_hex(&t, "\"ab\"", hex, sizeof(hex));
    assert_string_equal(hex, "026162");
    canon_hex(&b, "true", hex, sizeof(hex));
    assert_string_equal(hex, "0701");
    canon_hex(&s, "null", hex, sizeof(hex));
    assert_string_equal(hex, "00");
    canon_hex(&j, "{\"b\":1,\"a\":[true]}", hex, sizeof(hex));
    assert_string_equal(hex, "087b2261223a5b747275655d2c2262223a317d"); /* {"a":[true],"b":1} */
    expect_round_trip(&s, "\"Zoë €\"", "\"Zoë €\"");
    expect_round_trip(&b, "false", "false");
    expect_round_trip(&j, "{\"b\":1,\"a\":[true]}", "{\"a\":[true],\"b\":1}");
    expect_round_trip(&s, "null", "null");

    /* Values that do not fit have no canonical form. */
    struct vl_buf buf;
    vl_buf_init(&buf, 64);
    json_t *v = json_integer(1);
    assert_int_equal(vl_value_canonical(&s, v, &buf), VEIL_ERR_INVALID_DOCUMENT);
    json_decref(v);
    vl_buf_free(&buf);
}

static void test_from_canonical_malformed(void **state)
{
    (void)state;
    struct vl_field s = field(VL_T_STRING, 0), i = field(VL_T_INTEGER, 0);
    struct vl_field b = field(VL_T_BOOLEAN, 0), d = field(VL_T_DATE, 0);
    struct vl_field dt = field(VL_T_DATETIME, 0);
    const uint8_t bad_utf8[] = {0x01, 0xff, 0xfe};
    const uint8_t wrong_tag[] = {0x03, 0x80, 0, 0, 0, 0, 0, 0, 0};
    const uint8_t short_int[] = {0x03, 0x80, 0, 0};
    const uint8_t bool2[] = {0x07, 0x02};
    const uint8_t null_extra[] = {0x00, 0x00};
    const uint8_t far_date[] = {0x05, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    const uint8_t far_time[] = {0x06, 0x00, 0, 0, 0, 0, 0, 0, 0};
    assert_null(vl_value_from_canonical(&s, bad_utf8, sizeof(bad_utf8)));
    assert_null(vl_value_from_canonical(&s, wrong_tag, sizeof(wrong_tag)));
    assert_null(vl_value_from_canonical(&i, short_int, sizeof(short_int)));
    assert_null(vl_value_from_canonical(&b, bool2, sizeof(bool2)));
    assert_null(vl_value_from_canonical(&b, null_extra, sizeof(null_extra)));
    assert_null(vl_value_from_canonical(&d, far_date, sizeof(far_date)));
    assert_null(vl_value_from_canonical(&dt, far_time, sizeof(far_time)));
    assert_null(vl_value_from_canonical(&s, NULL, 0));
    json_t *v = vl_value_from_canonical(&i, wrong_tag, sizeof(wrong_tag));
    assert_int_equal(json_integer_value(v), 0);
    json_decref(v);
}

/* ---- order ---- */

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

struct pair {
    int64_t x;
    uint64_t u;
    uint8_t canon[9];
};

static int by_x(const void *a, const void *b)
{
    const struct pair *p = a, *q = b;
    return p->x < q->x ? -1 : p->x > q->x;
}

static int by_u(const void *a, const void *b)
{
    const struct pair *p = a, *q = b;
    return p->u < q->u ? -1 : p->u > q->u;
}

static int by_canon(const void *a, const void *b)
{
    const struct pair *p = a, *q = b;
    return memcmp(p->canon, q->canon, sizeof(p->canon));
}

/* A JSON value of field f for the int64 x, written as a client would write it. */
static json_t *value_for(const struct vl_field *f, int64_t x)
{
    uint8_t raw[9];
    raw[0] = (uint8_t)(f->type + 1);
    vl_store_u64(raw + 1, (uint64_t)x ^ (UINT64_C(1) << 63));
    if (f->type == VL_T_INTEGER) {
        return json_integer(x);
    }
    return vl_value_from_canonical(f, raw, sizeof(raw)); /* a string, checked below */
}

static void check_order(enum vl_type t, int scale, int64_t lo, int64_t hi)
{
    enum { N = 2000 };
    struct vl_field f = field(t, scale);
    struct pair *a = calloc(N, sizeof(*a)), *b = calloc(N, sizeof(*b)), *c = calloc(N, sizeof(*c));
    assert_non_null(a);
    for (size_t i = 0; i < N; i++) {
        uint64_t span = (uint64_t)hi - (uint64_t)lo;
        int64_t x;
        if (i < 4) {
            int64_t fixed[4] = {lo, hi, 0, -1};
            x = fixed[i] < lo || fixed[i] > hi ? lo : fixed[i];
        } else {
            uint64_t r = rnd();
            /* Half the values near zero, where signs change. */
            x = (int64_t)((uint64_t)lo + (span == UINT64_MAX ? r : r % (span + 1)));
            if (i % 2 == 0 && lo <= -1000 && hi >= 1000) {
                x = (int64_t)(r % 2001) - 1000;
            }
        }
        json_t *v = value_for(&f, x);
        struct vl_buf buf;
        assert_non_null(v);
        assert_int_equal(vl_value_check(&f, v, NULL), VEIL_OK);
        a[i].x = x;
        assert_int_equal(vl_value_to_u64(&f, v, &a[i].u), VEIL_OK);
        vl_buf_init(&buf, 64);
        assert_int_equal(vl_value_canonical(&f, v, &buf), VEIL_OK);
        assert_int_equal(buf.len, 9);
        memcpy(a[i].canon, buf.data, 9);
        vl_buf_free(&buf);
        json_decref(v);
    }
    memcpy(b, a, N * sizeof(*a));
    memcpy(c, a, N * sizeof(*a));
    qsort(a, N, sizeof(*a), by_x);
    qsort(b, N, sizeof(*b), by_u);
    qsort(c, N, sizeof(*c), by_canon);
    for (size_t i = 0; i < N; i++) {
        assert_true(a[i].x == b[i].x);
        assert_true(a[i].x == c[i].x);
        if (i > 0 && a[i].x > a[i - 1].x) {
            assert_true(a[i].u > a[i - 1].u);
        }
    }
    free(a);
    free(b);
    free(c);
}

static void test_order_preserving(void **state)
{
    (void)state;
    check_order(VL_T_INTEGER, 0, INT64_MIN, INT64_MAX);
    check_order(VL_T_DECIMAL, 2, INT64_MIN, INT64_MAX);
    check_order(VL_T_DECIMAL, 0, -1000000, 1000000);
    check_order(VL_T_DATE, 0, -719162, 2932896);
    check_order(VL_T_DATETIME, 0, -719162 * INT64_C(86400000000),
                2932897 * INT64_C(86400000000) - 1);

    /* Independent of the encoder: values written by hand, in order. */
    static const char *const dates[] = {"0001-01-01", "1899-12-31", "1969-12-31", "1970-01-01",
                                        "2023-02-28", "2024-02-29", "2024-03-01", "9999-12-31"};
    static const char *const decs[] = {"-1000000", "-1.5", "-1.05", "-0.01", "0", "0.01",
                                       "1.05", "1.5", "10", "10.01"};
    static const char *const times[] = {"1969-12-31T23:59:59.999999Z", "1970-01-01T00:00:00Z",
                                        "1970-01-01T01:00:00.000001+01:00",
                                        "2024-05-01T12:00:00+02:00", "2024-05-01T10:30:00Z",
                                        "2024-05-01T10:30:00.5Z"};
    struct vl_field fd = field(VL_T_DATE, 0), fx = field(VL_T_DECIMAL, 2);
    struct vl_field ft = field(VL_T_DATETIME, 0);
    uint64_t prev = 0, u;
    for (size_t i = 0; i < sizeof(dates) / sizeof(dates[0]); i++) {
        json_t *v = json_string(dates[i]);
        assert_int_equal(vl_value_to_u64(&fd, v, &u), VEIL_OK);
        assert_true(i == 0 || u > prev);
        prev = u;
        json_decref(v);
    }
    for (size_t i = 0; i < sizeof(decs) / sizeof(decs[0]); i++) {
        json_t *v = json_string(decs[i]);
        assert_int_equal(vl_value_to_u64(&fx, v, &u), VEIL_OK);
        assert_true(i == 0 || u > prev);
        prev = u;
        json_decref(v);
    }
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
        json_t *v = json_string(times[i]);
        assert_int_equal(vl_value_to_u64(&ft, v, &u), VEIL_OK);
        assert_true(i == 0 || u > prev);
        prev = u;
        json_decref(v);
    }

    struct vl_field fs = field(VL_T_STRING, 0);
    json_t *v = json_string("x");
    assert_int_equal(vl_value_to_u64(&fs, v, &u), VEIL_ERR_UNSUPPORTED_QUERY);
    assert_int_equal(vl_value_to_u64(&fd, v, &u), VEIL_ERR_INVALID_DOCUMENT);
    json_decref(v);
    assert_int_equal(vl_value_to_u64(&fd, json_null(), &u), VEIL_ERR_INVALID_DOCUMENT);
}

/* ---- masks ---- */

static void expect_mask(enum vl_mask m, json_t *v, const char *want)
{
    json_t *r = vl_mask_apply(m, v);
    assert_non_null(r);
    if (!json_is_string(r) || strcmp(json_string_value(r), want) != 0) {
        char *got = json_dumps(r, JSON_ENCODE_ANY);
        fail_msg("mask %d gave %s, not %s", m, got, want);
    }
    json_decref(r);
    json_decref(v);
}

static void test_masks(void **state)
{
    (void)state;
    expect_mask(VL_MASK_LAST4, json_string("NL91ABNA0417164300"), "****4300");
    expect_mask(VL_MASK_LAST4, json_string("abcde"), "****bcde");
    expect_mask(VL_MASK_LAST4, json_string("abcd"), "****");
    expect_mask(VL_MASK_LAST4, json_string("ab"), "****");
    expect_mask(VL_MASK_LAST4, json_string(""), "****");
    expect_mask(VL_MASK_LAST4, json_string("Zoë Müller"), "****ller");
    expect_mask(VL_MASK_LAST4, json_string("x€€€€"), "****€€€€");
    expect_mask(VL_MASK_LAST4, json_string("€€€€"), "****");
    expect_mask(VL_MASK_LAST4, json_string("a\xF0\x9F\x98\x80"
                                           "bcd"),
                "****\xF0\x9F\x98\x80"
                "bcd");
    expect_mask(VL_MASK_LAST4, json_integer(123456), "****3456");
    expect_mask(VL_MASK_LAST4, json_integer(-42), "****");
    expect_mask(VL_MASK_LAST4, json_real(1234.5), "****34.5");
    expect_mask(VL_MASK_LAST4, json_true(), "****");
    expect_mask(VL_MASK_FIRST1, json_string("Jan"), "J***");
    expect_mask(VL_MASK_FIRST1, json_string("Émile"), "É***");
    expect_mask(VL_MASK_FIRST1, json_string("\xF0\x9F\x98\x80x"), "\xF0\x9F\x98\x80***");
    expect_mask(VL_MASK_FIRST1, json_string(""), "***");
    expect_mask(VL_MASK_FIRST1, json_integer(987), "9***");
    expect_mask(VL_MASK_REDACT, json_string("anything"), "[redacted]");
    expect_mask(VL_MASK_REDACT, json_integer(5), "[redacted]");
    expect_mask(VL_MASK_LAST4, json_pack("{s:s}", "a", "secret"), "[redacted]");
    expect_mask(VL_MASK_FIRST1, json_pack("[i]", 1), "[redacted]");

    json_t *v = json_string("x");
    assert_null(vl_mask_apply(VL_MASK_HASH, v));
    json_t *same = vl_mask_apply(VL_MASK_NONE, v);
    assert_ptr_equal(same, v);
    json_decref(same);
    json_decref(v);
    json_t *n = vl_mask_apply(VL_MASK_LAST4, json_null());
    assert_true(json_is_null(n));
    assert_null(vl_mask_apply(VL_MASK_LAST4, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strings_and_booleans),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_decimals),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_datetimes),
        cmocka_unit_test(test_message_hides_value),
        cmocka_unit_test(test_canonical_tags),
        cmocka_unit_test(test_from_canonical_malformed),
        cmocka_unit_test(test_order_preserving),
        cmocka_unit_test(test_masks),
    };
    return cmocka_run_group_tests_name("value", tests, NULL, NULL);
}
