/*
 * test_engine.c: libveil in-process, through the public API of include/veil/veil.h, on a
 * real data directory made by veil_init in a temporary directory, with the invoices policy
 * of examples/ and its roles (admin, clerk, auditor, analyst).
 *
 * Covered: exact round trips; versions, If-Match and deletes; equality queries, select and
 * cursor paging; bulk answers in input order; what each role may read, write and filter on;
 * invalid documents naming their field; policy registration (created / identical /
 * conflict); tenant isolation and shredding (no copy of the wrapped key left in the trusted
 * state's files); bearer tokens; start-up recovery of a write a crash interrupted (built
 * through the real write path, stopped by SQLite triggers at the right moment); and
 * integrity: rows of the untrusted store altered, swapped, rolled back or re-indexed by
 * hand with sqlite3 must give VEIL_ERR_INTEGRITY, never wrong data. A hostile store's
 * answers (through a lying driver in front of the real one, and the SQLite file edited):
 * malformed or impossible answers are breaches (VEIL_ERR_INTEGRITY with vl_breach's
 * message), only an unreachable store is VEIL_ERR_STORE_UNAVAILABLE; a store that ignores
 * the cursor is caught. Cursors bound to tenant, role, collection, where and match; search
 * paging over bulk-loaded documents; averages rounded half to even at scale + 2. And a trusted state
 * put back from a copy, which must refuse to open until the loss is accepted.
 *
 * Nothing here prints a key: the wrapped tenant key is only compared, never shown.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <jansson.h>
#include <sqlite3.h>

#include "engine/engine.h"
#include "testutil.h"
#include "veil/veil.h"

#define COLL "invoices"
#define POLICY_FILE "examples/invoices.yaml"
#define PASS_ENV "VEIL_TEST_ENGINE_PASSPHRASE"

/* A full invoice: every listed field, a nested unlisted object, a decimal as a string. */
static const char DOC1[] =
    "{\"invoice_no\":\"INV-0001\",\"org_id\":\"ACME\",\"status\":\"open\","
    "\"issued_on\":\"2024-03-01\",\"amount\":\"1234.50\","
    "\"customer\":{\"name\":\"Jan de Vries\",\"iban\":\"NL91ABNA0417164300\","
    "\"vip\":{\"since\":2019,\"tags\":[\"a\",{\"b\":null}]}},"
    "\"notes\":\"late payment, second reminder\",\"internal_ref\":\"R-77\","
    "\"extra\":{\"deep\":{\"deeper\":[1,2.5,true,null,\"x\"]}}}";

/* Another organisation; the amount a JSON number. */
static const char DOC2[] =
    "{\"invoice_no\":\"INV-0002\",\"org_id\":\"BETA\",\"status\":\"paid\","
    "\"issued_on\":\"2024-04-02\",\"amount\":12.5,"
    "\"customer\":{\"name\":\"Piet Jansen\",\"iban\":\"DE89370400440532013000\"},"
    "\"notes\":\"paid on time\"}";

struct fx {
    char *dir;  /* the temporary directory */
    char *data; /* dir/data: the veil data directory */
    veil_vault *v;
    veil_session *admin, *clerk, *auditor, *analyst;
};

/* ---- helpers ---- */

static char *path_in(const char *dir, const char *rel)
{
    char *p = NULL;
    assert_true(asprintf(&p, "%s/%s", dir, rel) > 0);
    return p;
}

static veil_session *session(veil_vault *v, const char *tenant, const char *role)
{
    veil_session *s = NULL;
    veil_status st;
    assert_int_equal(veil_session_open(v, tenant, role, &s, &st), VEIL_OK);
    assert_non_null(s);
    return s;
}

static void apply_policy(veil_session *admin, int want_created)
{
    size_t len = 0;
    char *text = tu_read_file(POLICY_FILE, &len);
    assert_non_null(text);
    int created = -1;
    veil_status st;
    veil_err rc = veil_collection_apply(admin, COLL, text, len, &created, &st);
    if (rc != VEIL_OK) {
        fprintf(stderr, "apply: %s: %s\n", veil_err_name(rc), st.message);
    }
    assert_int_equal(rc, VEIL_OK);
    assert_int_equal(created, want_created);
    free(text);
}

static void sessions_open(struct fx *f)
{
    f->admin = session(f->v, "acme", "admin");
    f->clerk = session(f->v, "acme", "clerk");
    f->auditor = session(f->v, "acme", "auditor");
    f->analyst = session(f->v, "acme", "analyst");
}

static void sessions_close(struct fx *f)
{
    veil_session_free(f->admin);
    veil_session_free(f->clerk);
    veil_session_free(f->auditor);
    veil_session_free(f->analyst);
    f->admin = f->clerk = f->auditor = f->analyst = NULL;
}

static void vault_reopen(struct fx *f)
{
    sessions_close(f);
    veil_vault_close(f->v);
    f->v = NULL;
    veil_status st;
    veil_err rc = veil_vault_open(f->data, &f->v, &st);
    if (rc != VEIL_OK) {
        fprintf(stderr, "reopen: %s: %s\n", veil_err_name(rc), st.message);
    }
    assert_int_equal(rc, VEIL_OK);
    sessions_open(f);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->dir = tu_tempdir();
    f->data = path_in(f->dir, "data");
    veil_status st;
    assert_int_equal(veil_init(f->data, NULL, &st), VEIL_OK);
    assert_int_equal(veil_vault_open(f->data, &f->v, &st), VEIL_OK);
    assert_int_equal(veil_tenant_create(f->v, "acme", &st), VEIL_OK);
    sessions_open(f);
    apply_policy(f->admin, 1);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    sessions_close(f);
    veil_vault_close(f->v);
    tu_rmtree(f->dir);
    free(f->data);
    free(f->dir);
    free(f);
    return 0;
}

static json_t *parse(const char *text)
{
    json_error_t err;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &err);
    if (j == NULL) {
        fprintf(stderr, "not JSON: %s\n", err.text);
    }
    assert_non_null(j);
    return j;
}

/* Fails the test, showing both, unless a and b are equal JSON values. */
static void assert_json_equal(const json_t *got, const json_t *want)
{
    if (!json_equal((json_t *)got, (json_t *)want)) {
        char *g = json_dumps(got, JSON_SORT_KEYS | JSON_ENCODE_ANY);
        char *w = json_dumps(want, JSON_SORT_KEYS | JSON_ENCODE_ANY);
        fprintf(stderr, "got:  %s\nwant: %s\n", g ? g : "?", w ? w : "?");
        free(g);
        free(w);
        fail();
    }
}

static void assert_json_text(const json_t *got, const char *want)
{
    json_t *w = parse(want);
    assert_json_equal(got, w);
    json_decref(w);
}

/* Puts a document; returns its new version. */
static int64_t put(veil_session *s, const char *id, const char *doc, int want_created)
{
    char *out = NULL;
    int created = -1;
    veil_status st;
    veil_err rc = veil_doc_put(s, COLL, id, doc, strlen(doc), 0, &out, &created, &st);
    if (rc != VEIL_OK) {
        fprintf(stderr, "put %s: %s: %s (%s)\n", id, veil_err_name(rc), st.message, st.field);
    }
    assert_int_equal(rc, VEIL_OK);
    assert_int_equal(created, want_created);
    json_t *a = parse(out);
    assert_string_equal(json_string_value(json_object_get(a, "id")), id);
    int64_t version = json_integer_value(json_object_get(a, "version"));
    assert_true(version >= 1);
    json_decref(a);
    veil_free(out);
    return version;
}

/* Gets a document; returns the answer {"id","version","doc"} (new reference). */
static json_t *get(veil_session *s, const char *id)
{
    char *out = NULL;
    veil_status st;
    veil_err rc = veil_doc_get(s, COLL, id, &out, &st);
    if (rc != VEIL_OK) {
        fprintf(stderr, "get %s: %s: %s\n", id, veil_err_name(rc), st.message);
    }
    assert_int_equal(rc, VEIL_OK);
    json_t *a = parse(out);
    veil_free(out);
    assert_string_equal(json_string_value(json_object_get(a, "id")), id);
    return a;
}

static veil_err get_rc(veil_session *s, const char *id)
{
    char *out = NULL;
    veil_status st;
    veil_err rc = veil_doc_get(s, COLL, id, &out, &st);
    if (rc != VEIL_OK) {
        assert_null(out);
        assert_int_equal(st.code, rc);
    }
    veil_free(out);
    return rc;
}

static veil_err query_rc(veil_session *s, const char *body, json_t **answer, veil_status *st)
{
    char *out = NULL;
    veil_err rc = veil_query(s, COLL, body, strlen(body), &out, st);
    if (rc == VEIL_OK) {
        *answer = parse(out);
    } else {
        assert_null(out);
        *answer = NULL;
    }
    veil_free(out);
    return rc;
}

static json_t *query(veil_session *s, const char *body)
{
    json_t *a = NULL;
    veil_status st;
    veil_err rc = query_rc(s, body, &a, &st);
    if (rc != VEIL_OK) {
        fprintf(stderr, "query %s: %s: %s\n", body, veil_err_name(rc), st.message);
    }
    assert_int_equal(rc, VEIL_OK);
    return a;
}

/* The ids of a query answer, in order, as a JSON array of strings (new reference). */
static json_t *ids_of(const json_t *answer)
{
    json_t *ids = json_array();
    size_t i;
    json_t *d;
    json_array_foreach (json_object_get(answer, "docs"), i, d) {
        json_array_append(ids, json_object_get(d, "id"));
    }
    return ids;
}

/* Sorted set comparison of a query answer's ids against a comma-free list. */
static void assert_ids(const json_t *answer, int n, ...)
{
    json_t *got = ids_of(answer);
    assert_int_equal(json_array_size(got), (size_t)n);
    va_list ap;
    va_start(ap, n);
    for (int k = 0; k < n; k++) {
        const char *want = va_arg(ap, const char *);
        bool seen = false;
        size_t i;
        json_t *id;
        json_array_foreach (got, i, id) {
            seen |= strcmp(json_string_value(id), want) == 0;
        }
        if (!seen) {
            fprintf(stderr, "id %s missing from the answer\n", want);
            fail();
        }
    }
    va_end(ap);
    json_decref(got);
}

/* A document of the paging tests. */
static char *mkdoc(const char *org, const char *status, int i)
{
    char *s = NULL;
    assert_true(asprintf(&s,
                         "{\"invoice_no\":\"INV-%05d\",\"org_id\":\"%s\",\"status\":\"%s\","
                         "\"amount\":\"%d.%02d\",\"customer\":{\"iban\":\"NL00BANK%010d\"}}",
                         i, org, status, i, i % 100, i) > 0);
    return s;
}

/* ---- round trips, versions, deletes ---- */

static void test_put_get_exact(void **state)
{
    struct fx *f = *state;
    assert_int_equal(put(f->clerk, "inv-1", DOC1, 1), 1);
    assert_int_equal(put(f->clerk, "inv-2", DOC2, 1), 1);
    json_t *a = get(f->clerk, "inv-1");
    assert_int_equal(json_integer_value(json_object_get(a, "version")), 1);
    assert_json_text(json_object_get(a, "doc"), DOC1);
    json_decref(a);
    /* The number stays a number, the string a string: decimals come back as given. */
    a = get(f->admin, "inv-2");
    assert_json_text(json_object_get(a, "doc"), DOC2);
    assert_true(json_is_real(json_object_get(json_object_get(a, "doc"), "amount")));
    json_decref(a);
    a = get(f->admin, "inv-1");
    assert_true(json_is_string(json_object_get(json_object_get(a, "doc"), "amount")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(a, "doc"), "amount")),
                        "1234.50");
    json_decref(a);
    /* Unicode and an empty document survive too. */
    const char *uni = "{\"invoice_no\":\"F\\u00e4ktura \\u2603 \\ud83d\\ude00\",\"x\":{}}";
    put(f->clerk, "inv-\xc3\xa9", uni, 1);
    a = get(f->clerk, "inv-\xc3\xa9");
    assert_json_text(json_object_get(a, "doc"), uni);
    json_decref(a);
    put(f->clerk, "empty", "{}", 1);
    a = get(f->clerk, "empty");
    assert_json_text(json_object_get(a, "doc"), "{}");
    json_decref(a);
}

static void test_generated_id(void **state)
{
    struct fx *f = *state;
    char *out = NULL;
    int created = 0;
    veil_status st;
    assert_int_equal(veil_doc_put(f->clerk, COLL, NULL, DOC2, strlen(DOC2), 0, &out, &created, &st),
                     VEIL_OK);
    assert_int_equal(created, 1);
    json_t *a = parse(out);
    veil_free(out);
    const char *id = json_string_value(json_object_get(a, "id"));
    assert_non_null(id);
    assert_true(strlen(id) >= 16);
    json_t *g = get(f->clerk, id);
    assert_json_text(json_object_get(g, "doc"), DOC2);
    json_decref(g);
    json_decref(a);
}

static void test_replace_and_if_match(void **state)
{
    struct fx *f = *state;
    assert_int_equal(put(f->clerk, "inv-1", DOC1, 1), 1);
    assert_int_equal(put(f->clerk, "inv-1", DOC2, 0), 2);
    json_t *a = get(f->clerk, "inv-1");
    assert_int_equal(json_integer_value(json_object_get(a, "version")), 2);
    assert_json_text(json_object_get(a, "doc"), DOC2);
    json_decref(a);

    char *out = NULL;
    int created = -1;
    veil_status st;
    /* If-Match with the wrong version: refused, nothing changes. */
    veil_err rc = veil_doc_put(f->clerk, COLL, "inv-1", DOC1, strlen(DOC1), 1, &out, &created, &st);
    assert_int_equal(rc, VEIL_ERR_VERSION_MISMATCH);
    assert_int_equal(st.code, VEIL_ERR_VERSION_MISMATCH);
    assert_null(out);
    assert_int_equal(veil_err_http_status(rc), 412);
    assert_string_equal(veil_err_name(rc), "version_mismatch");
    a = get(f->clerk, "inv-1");
    assert_int_equal(json_integer_value(json_object_get(a, "version")), 2);
    assert_json_text(json_object_get(a, "doc"), DOC2);
    json_decref(a);
    /* If-Match on a document that does not exist. */
    rc = veil_doc_put(f->clerk, COLL, "nope", DOC1, strlen(DOC1), 1, &out, &created, &st);
    assert_int_equal(rc, VEIL_ERR_VERSION_MISMATCH);
    assert_int_equal(get_rc(f->clerk, "nope"), VEIL_ERR_NOT_FOUND);
    /* The right version: accepted. */
    rc = veil_doc_put(f->clerk, COLL, "inv-1", DOC1, strlen(DOC1), 2, &out, &created, &st);
    assert_int_equal(rc, VEIL_OK);
    assert_int_equal(created, 0);
    json_t *o = parse(out);
    assert_int_equal(json_integer_value(json_object_get(o, "version")), 3);
    json_decref(o);
    veil_free(out);
}

static void test_delete(void **state)
{
    struct fx *f = *state;
    veil_status st;
    put(f->clerk, "inv-1", DOC1, 1);
    put(f->clerk, "inv-2", DOC2, 1);
    assert_int_equal(veil_doc_delete(f->clerk, COLL, "inv-1", &st), VEIL_OK);
    assert_int_equal(get_rc(f->clerk, "inv-1"), VEIL_ERR_NOT_FOUND);
    assert_int_equal(veil_doc_delete(f->clerk, COLL, "inv-1", &st), VEIL_ERR_NOT_FOUND);
    assert_int_equal(veil_doc_delete(f->clerk, COLL, "never", &st), VEIL_ERR_NOT_FOUND);
    /* A deleted document is gone from queries too; the other one stays. */
    json_t *a = query(f->clerk, "{}");
    assert_ids(a, 1, "inv-2");
    json_decref(a);
    a = query(f->clerk, "{\"where\":{\"org_id\":\"ACME\"}}");
    assert_ids(a, 0);
    json_decref(a);
    /* Put again after the delete: created anew, with a higher version than before. */
    int64_t v = put(f->clerk, "inv-1", DOC2, 1);
    assert_true(v > 1);
    a = get(f->clerk, "inv-1");
    assert_int_equal(json_integer_value(json_object_get(a, "version")), v);
    assert_json_text(json_object_get(a, "doc"), DOC2);
    json_decref(a);
    /* And the versions survive a restart. */
    vault_reopen(f);
    assert_int_equal(put(f->clerk, "inv-1", DOC1, 0), v + 1);
}

static void test_bad_ids_and_bodies(void **state)
{
    struct fx *f = *state;
    char *out = NULL;
    veil_status st;
    char longid[VL_ID_MAX + 2];
    memset(longid, 'a', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    const char *ids[] = {"", "a\nb", longid};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        assert_int_equal(
            veil_doc_put(f->clerk, COLL, ids[i], DOC1, strlen(DOC1), 0, &out, NULL, &st),
            VEIL_ERR_BAD_REQUEST);
        assert_null(out);
    }
    const char *bodies[] = {"", "{", "{\"a\":1,\"a\":2}", "{\"a\":\"\xff\"}", "nul\0l"};
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        assert_int_equal(
            veil_doc_put(f->clerk, COLL, "x", bodies[i], strlen(bodies[i]), 0, &out, NULL, &st),
            VEIL_ERR_BAD_REQUEST);
        assert_null(out);
    }
    assert_int_equal(veil_doc_put(f->clerk, COLL, "x", "[1]", 3, 0, &out, NULL, &st),
                     VEIL_ERR_INVALID_DOCUMENT);
    assert_int_equal(veil_doc_put(f->clerk, "nope", "x", DOC1, strlen(DOC1), 0, &out, NULL, &st),
                     VEIL_ERR_NOT_FOUND);
    assert_int_equal(get_rc(f->clerk, "x"), VEIL_ERR_NOT_FOUND);
    /* Too deep for limits.max_depth (32). */
    char deep[256];
    size_t dn = 0;
    for (int i = 0; i < 40; i++) {
        dn += (size_t)snprintf(deep + dn, sizeof(deep) - dn, "{\"a\":");
    }
    dn += (size_t)snprintf(deep + dn, sizeof(deep) - dn, "1");
    for (int i = 0; i < 40; i++) {
        dn += (size_t)snprintf(deep + dn, sizeof(deep) - dn, "}");
    }
    assert_true(dn < sizeof(deep));
    veil_err rc = veil_doc_put(f->clerk, COLL, "x", deep, strlen(deep), 0, &out, NULL, &st);
    assert_true(rc == VEIL_ERR_BAD_REQUEST || rc == VEIL_ERR_TOO_LARGE);
    assert_null(out);
}

static void test_invalid_documents_name_field(void **state)
{
    struct fx *f = *state;
    static const struct {
        const char *doc;
        const char *field;
    } cases[] = {
        {"{\"amount\":\"12.345\"}", "amount"},
        {"{\"amount\":\"lots\"}", "amount"},
        {"{\"amount\":true}", "amount"},
        {"{\"issued_on\":\"2024-13-01\"}", "issued_on"},
        {"{\"issued_on\":20240101}", "issued_on"},
        {"{\"invoice_no\":12}", "invoice_no"},
        {"{\"customer\":{\"iban\":[\"x\"]}}", "customer.iban"},
        {"{\"customer\":\"flat\"}", "customer."}, /* .name or .iban */
        {"{\"notes\":{\"a\":1}}", "notes"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out = NULL;
        veil_status st;
        memset(&st, 0, sizeof(st));
        veil_err rc = veil_doc_put(f->clerk, COLL, "bad", cases[i].doc, strlen(cases[i].doc), 0,
                                   &out, NULL, &st);
        size_t flen = strlen(cases[i].field);
        bool prefix = cases[i].field[flen - 1] == '.';
        if (rc != VEIL_ERR_INVALID_DOCUMENT ||
            (prefix ? strncmp(st.field, cases[i].field, flen) != 0 || st.field[flen] == '\0'
                    : strcmp(st.field, cases[i].field) != 0)) {
            fprintf(stderr, "case %zu: %s field '%s' (want invalid_document '%s')\n", i,
                    veil_err_name(rc), st.field, cases[i].field);
            fail();
        }
        assert_null(out);
        /* The message names the field, never the value. */
        assert_non_null(strstr(st.message, st.field));
        assert_null(strstr(st.message, "lots"));
        assert_null(strstr(st.message, "12.345"));
    }
    assert_int_equal(get_rc(f->clerk, "bad"), VEIL_ERR_NOT_FOUND);
}

/* ---- queries ---- */

static void load_small_set(struct fx *f)
{
    put(f->clerk, "a1", "{\"invoice_no\":\"A1\",\"org_id\":\"ACME\",\"status\":\"open\"}", 1);
    put(f->clerk, "a2", "{\"invoice_no\":\"A2\",\"org_id\":\"ACME\",\"status\":\"overdue\"}", 1);
    put(f->clerk, "a3", "{\"invoice_no\":\"A3\",\"org_id\":\"ACME\",\"status\":\"paid\"}", 1);
    put(f->clerk, "b1", "{\"invoice_no\":\"B1\",\"org_id\":\"BETA\",\"status\":\"open\"}", 1);
    put(f->clerk, "n1", "{\"invoice_no\":\"N1\"}", 1);
}

static void test_query_eq_in_select(void **state)
{
    struct fx *f = *state;
    load_small_set(f);
    json_t *a = query(f->clerk, "{\"where\":{\"org_id\":\"ACME\"}}");
    assert_ids(a, 3, "a1", "a2", "a3");
    assert_true(json_is_null(json_object_get(a, "next")));
    json_decref(a);
    a = query(f->clerk, "{\"where\":{\"org_id\":{\"eq\":\"BETA\"}}}");
    assert_ids(a, 1, "b1");
    json_decref(a);
    a = query(f->clerk, "{\"where\":{\"status\":{\"in\":[\"open\",\"overdue\"]}}}");
    assert_ids(a, 3, "a1", "a2", "b1");
    json_decref(a);
    a = query(f->clerk,
              "{\"where\":{\"org_id\":\"ACME\",\"status\":{\"in\":[\"open\",\"overdue\"]}}}");
    assert_ids(a, 2, "a1", "a2");
    json_decref(a);
    a = query(f->clerk, "{\"where\":{\"org_id\":\"NOBODY\"}}");
    assert_ids(a, 0);
    json_decref(a);
    a = query(f->clerk, "{}");
    assert_ids(a, 5, "a1", "a2", "a3", "b1", "n1");
    json_decref(a);
    /* select keeps only what is asked for; versions and ids come along. */
    a = query(f->clerk, "{\"where\":{\"org_id\":\"BETA\"},\"select\":[\"invoice_no\"]}");
    json_t *d = json_array_get(json_object_get(a, "docs"), 0);
    assert_json_text(json_object_get(d, "doc"), "{\"invoice_no\":\"B1\"}");
    assert_int_equal(json_integer_value(json_object_get(d, "version")), 1);
    json_decref(a);
    /* What the query answers equals what get answers. */
    a = query(f->clerk, "{\"where\":{\"invoice_no\":\"A2\"}}");
    json_t *g = get(f->clerk, "a2");
    assert_json_equal(json_array_get(json_object_get(a, "docs"), 0), g);
    json_decref(g);
    json_decref(a);
}

static void test_query_errors(void **state)
{
    struct fx *f = *state;
    load_small_set(f);
    static const struct {
        const char *body;
        veil_err want;
    } cases[] = {
        {"", VEIL_ERR_BAD_REQUEST},
        {"[]", VEIL_ERR_BAD_REQUEST},
        {"{\"wher\":{}}", VEIL_ERR_BAD_REQUEST},
        {"{\"where\":[]}", VEIL_ERR_BAD_REQUEST},
        {"{\"limit\":0}", VEIL_ERR_BAD_REQUEST},
        {"{\"limit\":10001}", VEIL_ERR_BAD_REQUEST},
        {"{\"limit\":\"7\"}", VEIL_ERR_BAD_REQUEST},
        {"{\"after\":\"00ff\"}", VEIL_ERR_BAD_REQUEST},
        {"{\"after\":17}", VEIL_ERR_BAD_REQUEST},
        {"{\"select\":\"invoice_no\"}", VEIL_ERR_BAD_REQUEST},
        {"{\"where\":{\"status\":{\"in\":[]}}}", VEIL_ERR_BAD_REQUEST},
        {"{\"where\":{\"status\":{\"like\":\"o\"}}}", VEIL_ERR_BAD_REQUEST},
        {"{\"where\":{\"status\":[\"open\"]}}", VEIL_ERR_BAD_REQUEST},
        {"{\"where\":{\"status\":null}}", VEIL_ERR_BAD_REQUEST},
        {"{\"where\":{\"notes\":\"late\"}}", VEIL_ERR_UNSUPPORTED_QUERY},
        {"{\"where\":{\"customer.iban\":\"x\"}}", VEIL_ERR_UNSUPPORTED_QUERY},
        {"{\"where\":{\"internal_ref\":\"R-77\"}}", VEIL_ERR_UNSUPPORTED_QUERY},
        {"{\"where\":{\"unlisted\":\"x\"}}", VEIL_ERR_UNSUPPORTED_QUERY},
        {"{\"where\":{\"invoice_no\":12}}", VEIL_ERR_INVALID_DOCUMENT},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *a = NULL;
        veil_status st;
        veil_err rc = query_rc(f->clerk, cases[i].body, &a, &st);
        if (rc != cases[i].want) {
            fprintf(stderr, "query %s: %s, want %s\n", cases[i].body, veil_err_name(rc),
                    veil_err_name(cases[i].want));
            fail();
        }
        assert_int_equal(st.code, rc);
    }
    /* A cursor of another collection is refused too. */
    json_t *a = query(f->clerk, "{\"limit\":1}");
    const char *next = json_string_value(json_object_get(a, "next"));
    assert_non_null(next);
    size_t len = 0;
    char *text = tu_read_file(POLICY_FILE, &len);
    char *other = NULL;
    assert_true(asprintf(&other, "collection: other\n%s", strstr(text, "fields:")) > 0);
    int created = 0;
    veil_status st;
    assert_int_equal(veil_collection_apply(f->admin, "other", other, strlen(other), &created, &st),
                     VEIL_OK);
    char *body = NULL;
    assert_true(asprintf(&body, "{\"after\":\"%s\"}", next) > 0);
    char *out = NULL;
    assert_int_equal(veil_query(f->clerk, "other", body, strlen(body), &out, &st),
                     VEIL_ERR_BAD_REQUEST);
    assert_string_equal(st.field, "after");
    free(body);
    free(other);
    free(text);
    json_decref(a);
}

/* Pages through a query of limit 7; every matching document exactly once, none other. */
static void test_query_paging(void **state)
{
    struct fx *f = *state;
    enum { NDOCS = 250, NOTHER = 30, LIMIT = 7 };
    char *nd = NULL;
    size_t ndlen = 0;
    FILE *m = open_memstream(&nd, &ndlen);
    assert_non_null(m);
    for (int i = 0; i < NDOCS + NOTHER; i++) {
        char *d = mkdoc(i < NDOCS ? "ACME" : "BETA", i % 3 ? "open" : "paid", i);
        fprintf(m, "{\"id\":\"doc-%04d\",\"doc\":%s}\n", i, d);
        free(d);
    }
    fclose(m);
    char *out = NULL;
    veil_status st;
    assert_int_equal(veil_bulk(f->clerk, COLL, nd, ndlen, &out, &st), VEIL_OK);
    free(nd);
    veil_free(out);

    int seen[NDOCS] = {0};
    char *after = NULL;
    int pages = 0, total = 0;
    for (;;) {
        char *body = NULL;
        if (after != NULL) {
            assert_true(asprintf(&body,
                                 "{\"where\":{\"org_id\":\"ACME\"},\"limit\":%d,"
                                 "\"select\":[\"invoice_no\"],\"after\":\"%s\"}",
                                 LIMIT, after) > 0);
        } else {
            assert_true(asprintf(&body,
                                 "{\"where\":{\"org_id\":\"ACME\"},\"limit\":%d,"
                                 "\"select\":[\"invoice_no\"]}",
                                 LIMIT) > 0);
        }
        json_t *a = query(f->clerk, body);
        free(body);
        free(after);
        after = NULL;
        json_t *docs = json_object_get(a, "docs");
        assert_true(json_array_size(docs) <= LIMIT);
        size_t i;
        json_t *d;
        json_array_foreach (docs, i, d) {
            int k = -1;
            assert_int_equal(sscanf(json_string_value(json_object_get(d, "id")), "doc-%d", &k), 1);
            assert_true(k >= 0 && k < NDOCS);
            assert_int_equal(seen[k], 0);
            seen[k] = 1;
            char want[32];
            snprintf(want, sizeof(want), "INV-%05d", k);
            assert_string_equal(
                json_string_value(json_object_get(json_object_get(d, "doc"), "invoice_no")), want);
            total++;
        }
        pages++;
        json_t *next = json_object_get(a, "next");
        if (json_is_string(next)) {
            assert_int_equal(json_array_size(docs), LIMIT);
            after = strdup(json_string_value(next));
        } else {
            assert_true(json_is_null(next));
        }
        json_decref(a);
        if (after == NULL) {
            break;
        }
        assert_true(pages < NDOCS);
    }
    assert_int_equal(total, NDOCS);
    assert_true(pages >= (NDOCS + LIMIT - 1) / LIMIT);
    for (int k = 0; k < NDOCS; k++) {
        assert_int_equal(seen[k], 1);
    }
    /* The default limit is 100. */
    json_t *a = query(f->clerk, "{\"where\":{\"org_id\":\"ACME\"}}");
    assert_int_equal(json_array_size(json_object_get(a, "docs")), 100);
    assert_true(json_is_string(json_object_get(a, "next")));
    json_decref(a);
    a = query(f->clerk, "{\"where\":{\"org_id\":\"BETA\"},\"limit\":1000}");
    assert_int_equal(json_array_size(json_object_get(a, "docs")), NOTHER);
    json_decref(a);
}

/* ---- bulk ---- */

static void test_bulk(void **state)
{
    struct fx *f = *state;
    put(f->clerk, "old", DOC2, 1);
    const char *in =
        "{\"id\":\"k1\",\"doc\":{\"invoice_no\":\"K1\",\"org_id\":\"ACME\"}}\n"  /* 1 */
        "this is not json\n"                                                     /* 2 */
        "{\"doc\":{\"invoice_no\":\"GEN\"}}\r\n"                                 /* 3 */
        "{\"id\":\"k4\",\"doc\":{\"amount\":\"1.234\"}}\n"                       /* 4 */
        "{\"id\":5,\"doc\":{}}\n"                                                /* 5 */
        "{\"id\":\"k6\",\"doc\":[1]}\n"                                          /* 6 */
        "{\"id\":\"old\",\"doc\":{\"invoice_no\":\"OLD2\"}}\n"                   /* 7 */
        "{\"id\":\"k1\",\"doc\":{\"invoice_no\":\"K1b\",\"org_id\":\"ACME\"}}\n" /* 8 */
        "{\"id\":\"k9\",\"doc\":{\"issued_on\":\"2024-02-30\"}}";                /* 9 */
    char *out = NULL;
    veil_status st;
    assert_int_equal(veil_bulk(f->clerk, COLL, in, strlen(in), &out, &st), VEIL_OK);
    static const struct {
        int status;
        const char *id;
        const char *code;
        const char *field;
    } want[] = {
        {201, "k1", NULL, NULL},
        {400, NULL, "bad_request", NULL},
        {201, NULL, NULL, NULL},
        {400, "k4", "invalid_document", "amount"},
        {400, NULL, "bad_request", NULL},
        {400, "k6", "bad_request", NULL},
        {200, "old", NULL, NULL},
        {200, "k1", NULL, NULL},
        {400, "k9", "invalid_document", "issued_on"},
    };
    size_t n = 0;
    char *save = NULL;
    char *gen = NULL;
    for (char *line = strtok_r(out, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save), n++) {
        assert_true(n < sizeof(want) / sizeof(want[0]));
        json_t *o = parse(line);
        assert_int_equal(json_integer_value(json_object_get(o, "line")), (json_int_t)n + 1);
        if (json_integer_value(json_object_get(o, "status")) != want[n].status) {
            fprintf(stderr, "line %zu: %s\n", n + 1, line);
            fail();
        }
        const char *id = json_string_value(json_object_get(o, "id"));
        if (want[n].id != NULL) {
            assert_non_null(id);
            assert_string_equal(id, want[n].id);
        }
        json_t *e = json_object_get(o, "error");
        if (want[n].code != NULL) {
            assert_non_null(e);
            assert_string_equal(json_string_value(json_object_get(e, "code")), want[n].code);
            if (want[n].field != NULL) {
                assert_string_equal(json_string_value(json_object_get(e, "field")), want[n].field);
            }
        } else {
            assert_null(e);
        }
        if (n == 2) {
            assert_non_null(id);
            gen = strdup(id);
        }
        json_decref(o);
    }
    assert_int_equal(n, sizeof(want) / sizeof(want[0]));
    veil_free(out);
    /* Good lines were stored, the last write of a repeated id wins, bad ones were not. */
    json_t *a = get(f->clerk, "k1");
    assert_json_text(json_object_get(a, "doc"), "{\"invoice_no\":\"K1b\",\"org_id\":\"ACME\"}");
    assert_int_equal(json_integer_value(json_object_get(a, "version")), 2);
    json_decref(a);
    a = get(f->clerk, gen);
    assert_json_text(json_object_get(a, "doc"), "{\"invoice_no\":\"GEN\"}");
    json_decref(a);
    a = get(f->clerk, "old");
    assert_json_text(json_object_get(a, "doc"), "{\"invoice_no\":\"OLD2\"}");
    assert_int_equal(json_integer_value(json_object_get(a, "version")), 2);
    json_decref(a);
    assert_int_equal(get_rc(f->clerk, "k4"), VEIL_ERR_NOT_FOUND);
    assert_int_equal(get_rc(f->clerk, "k6"), VEIL_ERR_NOT_FOUND);
    assert_int_equal(get_rc(f->clerk, "k9"), VEIL_ERR_NOT_FOUND);
    /* The index follows the last write: K1 is gone, K1b found. */
    a = query(f->clerk, "{\"where\":{\"invoice_no\":\"K1\"}}");
    assert_ids(a, 0);
    json_decref(a);
    a = query(f->clerk, "{\"where\":{\"invoice_no\":\"K1b\"}}");
    assert_ids(a, 1, "k1");
    json_decref(a);
    free(gen);
    /* Roles apply to bulk as to put. */
    assert_int_equal(veil_bulk(f->auditor, COLL, in, strlen(in), &out, &st), VEIL_ERR_FORBIDDEN);
    /* An empty body answers nothing. */
    out = NULL;
    assert_int_equal(veil_bulk(f->clerk, COLL, "", 0, &out, &st), VEIL_OK);
    assert_non_null(out);
    /* Only the first byte is read: an unterminated answer fails here, not in ASan. */
    assert_int_equal(out[0], '\0');
    veil_free(out);
}

/* ---- roles ---- */

static void test_roles(void **state)
{
    struct fx *f = *state;
    put(f->clerk, "inv-1", DOC1, 1);
    /* clerk reads everything in clear. */
    json_t *a = get(f->clerk, "inv-1");
    assert_json_text(json_object_get(a, "doc"), DOC1);
    json_decref(a);
    /* auditor: three fields in clear, the IBAN masked to its last four, nothing else. */
    a = get(f->auditor, "inv-1");
    assert_json_text(json_object_get(a, "doc"),
                     "{\"invoice_no\":\"INV-0001\",\"status\":\"open\",\"amount\":\"1234.50\","
                     "\"customer\":{\"iban\":\"****4300\"}}");
    assert_int_equal(json_integer_value(json_object_get(a, "version")), 1);
    json_decref(a);
    a = query(f->auditor, "{\"where\":{\"status\":\"open\"}}");
    assert_ids(a, 1, "inv-1");
    assert_json_text(json_object_get(json_array_get(json_object_get(a, "docs"), 0), "doc"),
                     "{\"invoice_no\":\"INV-0001\",\"status\":\"open\",\"amount\":\"1234.50\","
                     "\"customer\":{\"iban\":\"****4300\"}}");
    json_decref(a);
    /* select cannot widen what a role sees. */
    a = query(f->auditor, "{\"where\":{\"status\":\"open\"},\"select\":[\"notes\",\"org_id\","
                          "\"customer.iban\"]}");
    assert_json_text(json_object_get(json_array_get(json_object_get(a, "docs"), 0), "doc"),
                     "{\"customer\":{\"iban\":\"****4300\"}}");
    json_decref(a);
    /* auditor may not filter on a field it cannot read, nor on a masked one. */
    json_t *q = NULL;
    veil_status st;
    assert_int_equal(query_rc(f->auditor, "{\"where\":{\"org_id\":\"ACME\"}}", &q, &st),
                     VEIL_ERR_FORBIDDEN);
    assert_string_equal(st.field, "org_id");
    assert_int_not_equal(query_rc(f->auditor, "{\"where\":{\"customer.iban\":\"x\"}}", &q, &st),
                         VEIL_OK);
    /* auditor may not write. */
    char *out = NULL;
    assert_int_equal(
        veil_doc_put(f->auditor, COLL, "inv-1", DOC2, strlen(DOC2), 0, &out, NULL, &st),
        VEIL_ERR_FORBIDDEN);
    assert_null(out);
    assert_int_equal(veil_doc_delete(f->auditor, COLL, "inv-1", &st), VEIL_ERR_FORBIDDEN);
    /* analyst may not read documents at all. */
    assert_int_equal(get_rc(f->analyst, "inv-1"), VEIL_ERR_FORBIDDEN);
    assert_int_equal(query_rc(f->analyst, "{}", &q, &st), VEIL_ERR_FORBIDDEN);
    assert_int_equal(
        veil_doc_put(f->analyst, COLL, "inv-9", DOC2, strlen(DOC2), 0, &out, NULL, &st),
        VEIL_ERR_FORBIDDEN);
    /* A role no policy names may do nothing. */
    veil_session *nobody = session(f->v, "acme", "nobody");
    assert_int_equal(get_rc(nobody, "inv-1"), VEIL_ERR_FORBIDDEN);
    assert_int_equal(veil_doc_put(nobody, COLL, "inv-9", DOC2, strlen(DOC2), 0, &out, NULL, &st),
                     VEIL_ERR_FORBIDDEN);
    veil_session_free(nobody);
    /* Nothing was changed by the refused writes. */
    a = get(f->admin, "inv-1");
    assert_int_equal(json_integer_value(json_object_get(a, "version")), 1);
    assert_json_text(json_object_get(a, "doc"), DOC1);
    json_decref(a);
    assert_int_equal(get_rc(f->admin, "inv-9"), VEIL_ERR_NOT_FOUND);
}

/* ---- collections ---- */

static void test_collection_apply(void **state)
{
    struct fx *f = *state;
    size_t len = 0;
    char *text = tu_read_file(POLICY_FILE, &len);
    assert_non_null(text);
    int created = -1;
    veil_status st;
    /* Identical: 200 (created 0), also as JSON-equivalent text with comments gone. */
    assert_int_equal(veil_collection_apply(f->admin, COLL, text, len, &created, &st), VEIL_OK);
    assert_int_equal(created, 0);
    created = -1;
    assert_int_equal(veil_collection_apply(f->admin, NULL, text, len, &created, &st), VEIL_OK);
    assert_int_equal(created, 0);
    /* A different policy under the same name: 409, and the old one stays. */
    const char *diff = "collection: invoices\nfields:\n  invoice_no: { type: string }\n";
    created = -1;
    assert_int_equal(veil_collection_apply(f->admin, COLL, diff, strlen(diff), &created, &st),
                     VEIL_ERR_CONFLICT);
    assert_int_equal(veil_err_http_status(VEIL_ERR_CONFLICT), 409);
    char *out = NULL;
    assert_int_equal(veil_collection_get(f->admin, COLL, &out, &st), VEIL_OK);
    json_t *p = parse(out);
    veil_free(out);
    assert_non_null(json_object_get(json_object_get(p, "fields"), "customer.iban"));
    assert_non_null(json_object_get(json_object_get(p, "roles"), "auditor"));
    assert_string_equal(json_string_value(json_object_get(p, "collection")), COLL);
    json_decref(p);
    /* A new collection: 201. */
    const char *fresh = "{\"collection\":\"notes\",\"fields\":{\"title\":{\"type\":\"string\","
                        "\"protect\":[\"eq\"]}}}";
    created = -1;
    assert_int_equal(veil_collection_apply(f->admin, "notes", fresh, strlen(fresh), &created, &st),
                     VEIL_OK);
    assert_int_equal(created, 1);
    /* The name in the path must match the policy. */
    assert_int_equal(veil_collection_apply(f->admin, "other", fresh, strlen(fresh), &created, &st),
                     VEIL_ERR_INVALID_POLICY);
    /* Broken policies. */
    const char *bad = "collection: x\nfields:\n  a: { type: strnig }\n";
    assert_int_equal(veil_collection_apply(f->admin, NULL, bad, strlen(bad), &created, &st),
                     VEIL_ERR_INVALID_POLICY);
    assert_int_equal(veil_collection_apply(f->admin, NULL, "{", 1, &created, &st),
                     VEIL_ERR_INVALID_POLICY);
    /* Only admin registers. */
    assert_int_equal(veil_collection_apply(f->clerk, NULL, text, len, &created, &st),
                     VEIL_ERR_FORBIDDEN);
    /* The list holds both, and get of an unknown collection is 404. */
    assert_int_equal(veil_collection_list(f->clerk, &out, &st), VEIL_OK);
    p = parse(out);
    veil_free(out);
    assert_int_equal(json_array_size(json_object_get(p, "collections")), 2);
    json_decref(p);
    out = NULL;
    assert_int_equal(veil_collection_get(f->clerk, "nope", &out, &st), VEIL_ERR_NOT_FOUND);
    assert_null(out);
    free(text);
}

/* ---- tenants ---- */

static int count_tables(const char *db_path, const char *prefix)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT count(*) FROM sqlite_master WHERE type='table' "
                                        "AND substr(name, 1, length(?1)) = ?1",
                                        -1, &s, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(s, 1, prefix, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int n = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

static void test_tenant_isolation(void **state)
{
    struct fx *f = *state;
    veil_status st;
    assert_int_equal(veil_tenant_create(f->v, "beta", &st), VEIL_OK);
    assert_int_equal(veil_tenant_create(f->v, "beta", &st), VEIL_ERR_CONFLICT);
    assert_int_equal(veil_tenant_create(f->v, "bad name", &st), VEIL_ERR_BAD_REQUEST);
    veil_session *badmin = session(f->v, "beta", "admin");
    veil_session *bclerk = session(f->v, "beta", "clerk");
    /* beta has no collection yet, although acme has one of that name. */
    assert_int_equal(get_rc(bclerk, "inv-1"), VEIL_ERR_NOT_FOUND);
    apply_policy(badmin, 1);
    put(f->clerk, "inv-1", DOC1, 1);
    put(f->clerk, "only-acme", DOC1, 1);
    put(bclerk, "inv-1", DOC2, 1);
    json_t *a = get(f->clerk, "inv-1");
    assert_json_text(json_object_get(a, "doc"), DOC1);
    json_decref(a);
    a = get(bclerk, "inv-1");
    assert_json_text(json_object_get(a, "doc"), DOC2);
    assert_int_equal(json_integer_value(json_object_get(a, "version")), 1);
    json_decref(a);
    assert_int_equal(get_rc(bclerk, "only-acme"), VEIL_ERR_NOT_FOUND);
    assert_int_equal(veil_doc_delete(bclerk, COLL, "only-acme", &st), VEIL_ERR_NOT_FOUND);
    a = query(bclerk, "{\"where\":{\"org_id\":\"ACME\"}}");
    assert_ids(a, 0);
    json_decref(a);
    a = query(bclerk, "{}");
    assert_ids(a, 1, "inv-1");
    json_decref(a);
    a = query(f->clerk, "{}");
    assert_ids(a, 2, "inv-1", "only-acme");
    json_decref(a);
    /* A cursor of acme means nothing to beta. */
    a = query(f->clerk, "{\"limit\":1}");
    char *body = NULL;
    assert_true(
        asprintf(&body, "{\"after\":\"%s\"}", json_string_value(json_object_get(a, "next"))) > 0);
    json_decref(a);
    json_t *q = NULL;
    assert_int_equal(query_rc(bclerk, body, &q, &st), VEIL_ERR_BAD_REQUEST);
    free(body);
    /* Deleting in beta leaves acme's document of the same id alone. */
    assert_int_equal(veil_doc_delete(bclerk, COLL, "inv-1", &st), VEIL_OK);
    a = get(f->clerk, "inv-1");
    assert_json_text(json_object_get(a, "doc"), DOC1);
    json_decref(a);
    /* Separate opaque tables in the store (and the installation's table of rollback
     * marks). */
    char *cloud = path_in(f->data, "cloud/cloud.db");
    assert_int_equal(count_tables(cloud, "r_"), 2 + 1);
    free(cloud);
    /* A token of beta reaches beta only. */
    char *tok = NULL, *tid = NULL;
    assert_int_equal(veil_token_create(f->v, "beta", "clerk", &tok, &tid, &st), VEIL_OK);
    veil_session *ts = NULL;
    assert_int_equal(veil_session_authenticate(f->v, tok, &ts, &st), VEIL_OK);
    assert_string_equal(veil_session_tenant(ts), "beta");
    assert_int_equal(get_rc(ts, "only-acme"), VEIL_ERR_NOT_FOUND);
    veil_session_free(ts);
    veil_free(tok);
    veil_free(tid);
    veil_session_free(badmin);
    veil_session_free(bclerk);
    /* An unknown tenant has no sessions. */
    assert_int_equal(veil_session_open(f->v, "gamma", "admin", &ts, &st), VEIL_ERR_NOT_FOUND);
}

/* The wrapped key of a tenant as trusted.db holds it (malloc'd, *n bytes). */
static uint8_t *wrapped_key(const char *trusted, const char *tenant, size_t *n)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(trusted, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT wrapped FROM tenant_keys WHERE tenant = "
                                        "(SELECT id FROM tenants WHERE name = ?)",
                                        -1, &s, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(s, 1, tenant, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    *n = (size_t)sqlite3_column_bytes(s, 0);
    assert_true(*n >= 32);
    uint8_t *k = malloc(*n);
    assert_non_null(k);
    memcpy(k, sqlite3_column_blob(s, 0), *n);
    assert_int_equal(sqlite3_step(s), SQLITE_DONE); /* one key version */
    sqlite3_finalize(s);
    sqlite3_close(db);
    return k;
}

/* Does the file hold these bytes anywhere? A missing file holds nothing. */
static bool file_holds(const char *path, const uint8_t *p, size_t n)
{
    size_t len = 0;
    char *data = tu_read_file(path, &len);
    if (data == NULL) {
        return false;
    }
    bool hit = memmem(data, len, p, n) != NULL;
    free(data);
    return hit;
}

static void assert_key_gone(struct fx *f, const uint8_t *key, size_t n)
{
    static const char *const files[] = {"trusted.db", "trusted.db-wal", "trusted.db-journal"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char *p = path_in(f->data, files[i]);
        if (file_holds(p, key, n)) {
            fprintf(stderr, "the shredded tenant's wrapped key is still in %s\n", files[i]);
            fail();
        }
        free(p);
    }
}

static void test_tenant_shred(void **state)
{
    struct fx *f = *state;
    veil_status st;
    assert_int_equal(veil_tenant_create(f->v, "beta", &st), VEIL_OK);
    veil_session *badmin = session(f->v, "beta", "admin");
    apply_policy(badmin, 1);
    put(badmin, "b-1", DOC2, 1);
    put(f->clerk, "inv-1", DOC1, 1);
    put(f->clerk, "inv-2", DOC2, 1);
    char *tok = NULL, *tid = NULL;
    assert_int_equal(veil_token_create(f->v, "acme", "clerk", &tok, &tid, &st), VEIL_OK);

    char *trusted = path_in(f->data, "trusted.db");
    char *wal = path_in(f->data, "trusted.db-wal");
    size_t n = 0, bn = 0;
    uint8_t *key = wrapped_key(trusted, "acme", &n);
    uint8_t *bkey = wrapped_key(trusted, "beta", &bn);
    /* The check below can see the key at all: it is there before the shred. */
    assert_true(file_holds(trusted, key, n) || file_holds(wal, key, n));

    assert_int_equal(veil_tenant_shred(f->v, "acme", &st), VEIL_OK);
    assert_int_equal(veil_tenant_shred(f->v, "acme", &st), VEIL_ERR_NOT_FOUND);
    assert_int_equal(veil_tenant_shred(f->v, "nobody", &st), VEIL_ERR_NOT_FOUND);

    /* Nobody reads acme's documents any more: not the sessions open before, not new ones,
     * not its tokens. */
    assert_int_not_equal(get_rc(f->clerk, "inv-1"), VEIL_OK);
    assert_int_not_equal(get_rc(f->admin, "inv-2"), VEIL_OK);
    json_t *q = NULL;
    assert_int_not_equal(query_rc(f->admin, "{}", &q, &st), VEIL_OK);
    assert_null(q);
    char *out = NULL;
    assert_int_not_equal(
        veil_doc_put(f->clerk, COLL, "inv-3", DOC1, strlen(DOC1), 0, &out, NULL, &st), VEIL_OK);
    assert_null(out);
    veil_session *s = NULL;
    assert_int_equal(veil_session_open(f->v, "acme", "admin", &s, &st), VEIL_ERR_NOT_FOUND);
    assert_null(s);
    assert_int_equal(veil_session_authenticate(f->v, tok, &s, &st), VEIL_ERR_UNAUTHENTICATED);
    assert_null(s);
    char *xid = NULL;
    assert_int_equal(veil_token_create(f->v, "acme", "clerk", &out, &xid, &st), VEIL_ERR_NOT_FOUND);
    assert_null(out);
    assert_null(xid);
    assert_int_equal(veil_tenant_create(f->v, "acme", &st), VEIL_ERR_CONFLICT);
    /* The list shows it shredded. */
    assert_int_equal(veil_tenant_list(f->v, &out, &st), VEIL_OK);
    json_t *l = parse(out);
    veil_free(out);
    size_t i;
    json_t *t;
    int seen = 0;
    json_array_foreach (l, i, t) {
        if (strcmp(json_string_value(json_object_get(t, "name")), "acme") == 0) {
            assert_true(json_is_true(json_object_get(t, "shredded")));
            seen++;
        }
    }
    assert_int_equal(seen, 1);
    json_decref(l);

    /* The wrapped key is in none of the trusted state's files; beta's key still is. */
    assert_key_gone(f, key, n);
    assert_true(file_holds(trusted, bkey, bn) || file_holds(wal, bkey, bn));
    /* acme's tables are gone from the store; beta's stays, and the installation's table
     * of rollback marks. */
    char *cloud = path_in(f->data, "cloud/cloud.db");
    assert_int_equal(count_tables(cloud, "r_"), 1 + 1);
    free(cloud);
    /* beta is untouched. */
    json_t *a = get(badmin, "b-1");
    assert_json_text(json_object_get(a, "doc"), DOC2);
    json_decref(a);
    veil_session_free(badmin);

    /* Still so after a restart. */
    sessions_close(f);
    veil_vault_close(f->v);
    f->v = NULL;
    assert_key_gone(f, key, n);
    assert_int_equal(veil_vault_open(f->data, &f->v, &st), VEIL_OK);
    assert_int_equal(veil_session_open(f->v, "acme", "admin", &s, &st), VEIL_ERR_NOT_FOUND);
    badmin = session(f->v, "beta", "admin");
    a = get(badmin, "b-1");
    assert_json_text(json_object_get(a, "doc"), DOC2);
    json_decref(a);
    veil_session_free(badmin);
    assert_key_gone(f, key, n);

    free(key);
    free(bkey);
    free(trusted);
    free(wal);
    veil_free(tok);
    veil_free(tid);
}

/* ---- tokens ---- */

static void test_tokens(void **state)
{
    struct fx *f = *state;
    veil_status st;
    char *tok = NULL, *tid = NULL;
    assert_int_equal(veil_token_create(f->v, "acme", "auditor", &tok, &tid, &st), VEIL_OK);
    assert_non_null(tok);
    assert_non_null(tid);
    assert_non_null(strstr(tok, tid)); /* the id names the token */
    /* The id a token claims, as logs and rate limits read it; none for a malformed one. */
    char claimed[VEIL_TOKEN_ID_LEN + 1];
    assert_int_equal(veil_token_id(tok, claimed), 0);
    assert_string_equal(claimed, tid);
    static const char *const not_tokens[] = {"", "veil_", "veil_0123456789ABCDEF_x",
                                             "veil_0123456789abcde_x", "Bearer veil_x",
                                             "veil_0123456789abcdefx"};
    for (size_t i = 0; i < sizeof(not_tokens) / sizeof(not_tokens[0]); i++) {
        assert_int_equal(veil_token_id(not_tokens[i], claimed), -1);
        assert_string_equal(claimed, "");
    }
    assert_int_equal(veil_token_id(NULL, claimed), -1);
    char *tok2 = NULL, *tid2 = NULL;
    assert_int_equal(veil_token_create(f->v, "acme", "clerk", &tok2, &tid2, &st), VEIL_OK);
    assert_string_not_equal(tok, tok2);
    assert_string_not_equal(tid, tid2);
    /* Unknown tenant, bad role names. */
    char *x = NULL, *xid = NULL;
    assert_int_equal(veil_token_create(f->v, "nobody", "clerk", &x, &xid, &st), VEIL_ERR_NOT_FOUND);
    assert_int_equal(veil_token_create(f->v, "acme", "", &x, &xid, &st), VEIL_ERR_BAD_REQUEST);
    assert_int_equal(veil_token_create(f->v, "acme", "a b", &x, &xid, &st), VEIL_ERR_BAD_REQUEST);
    assert_null(x);

    /* A good token gives its tenant and role; the role applies. */
    veil_session *s = NULL;
    assert_int_equal(veil_session_authenticate(f->v, tok, &s, &st), VEIL_OK);
    assert_string_equal(veil_session_tenant(s), "acme");
    assert_string_equal(veil_session_role(s), "auditor");
    put(f->clerk, "inv-1", DOC1, 1);
    char *out = NULL;
    assert_int_equal(veil_doc_put(s, COLL, "inv-2", DOC1, strlen(DOC1), 0, &out, NULL, &st),
                     VEIL_ERR_FORBIDDEN);
    json_t *a = get(s, "inv-1");
    assert_string_equal(json_string_value(json_object_get(json_object_get(a, "doc"), "invoice_no")),
                        "INV-0001");
    assert_null(json_object_get(json_object_get(a, "doc"), "org_id"));
    json_decref(a);
    veil_session_free(s);

    /* Malformed, truncated, altered: one answer, and no session. */
    size_t len = strlen(tok);
    char *bad = strdup(tok);
    const char *malformed[] = {"",
                               "veil_",
                               "Bearer x",
                               "veil_0123456789abcdef_",
                               "veil_zzzzzzzzzzzzzzzz_abc",
                               "veil_0123456789abcdef"};
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
        s = NULL;
        assert_int_equal(veil_session_authenticate(f->v, malformed[i], &s, &st),
                         VEIL_ERR_UNAUTHENTICATED);
        assert_null(s);
        assert_int_equal(st.code, VEIL_ERR_UNAUTHENTICATED);
    }
    assert_int_equal(veil_session_authenticate(f->v, NULL, &s, &st), VEIL_ERR_UNAUTHENTICATED);
    for (size_t cut = 1; cut < 8; cut++) {
        bad[len - cut] = '\0';
        assert_int_equal(veil_session_authenticate(f->v, bad, &s, &st), VEIL_ERR_UNAUTHENTICATED);
        assert_null(s);
    }
    memcpy(bad, tok, len + 1);
    bad[len - 1] = bad[len - 1] == 'A' ? 'B' : 'A';
    assert_int_equal(veil_session_authenticate(f->v, bad, &s, &st), VEIL_ERR_UNAUTHENTICATED);
    /* One token's id with another's secret. */
    free(bad);
    assert_true(asprintf(&bad, "veil_%s%s", tid, strrchr(tok2, '_')) > 0);
    assert_int_equal(veil_session_authenticate(f->v, bad, &s, &st), VEIL_ERR_UNAUTHENTICATED);
    /* It holds tok2's secret: wiped, so that freed heap the trusted state's page buffers
     * may reuse cannot carry it into trusted.db, which is checked below. */
    explicit_bzero(bad, strlen(bad));
    free(bad);
    char *longer = NULL;
    assert_true(asprintf(&longer, "%sA", tok) > 0);
    assert_int_equal(veil_session_authenticate(f->v, longer, &s, &st), VEIL_ERR_UNAUTHENTICATED);
    free(longer);
    assert_null(s);

    /* Revoked: the same answer; the other token still works. */
    assert_int_equal(veil_token_revoke(f->v, tid, &st), VEIL_OK);
    assert_int_equal(veil_session_authenticate(f->v, tok, &s, &st), VEIL_ERR_UNAUTHENTICATED);
    assert_null(s);
    assert_int_equal(veil_token_revoke(f->v, tid, &st), VEIL_ERR_NOT_FOUND);
    assert_int_equal(veil_token_revoke(f->v, "0000000000000000", &st), VEIL_ERR_NOT_FOUND);
    assert_int_equal(veil_session_authenticate(f->v, tok2, &s, &st), VEIL_OK);
    assert_string_equal(veil_session_role(s), "clerk");
    veil_session_free(s);
    /* Tokens survive a restart; revocations too. */
    vault_reopen(f);
    s = NULL;
    assert_int_equal(veil_session_authenticate(f->v, tok, &s, &st), VEIL_ERR_UNAUTHENTICATED);
    assert_int_equal(veil_session_authenticate(f->v, tok2, &s, &st), VEIL_OK);
    veil_session_free(s);
    /* No token is kept in clear in the trusted state. */
    char *trusted = path_in(f->data, "trusted.db");
    char *wal = path_in(f->data, "trusted.db-wal");
    const char *secret2 = strrchr(tok2, '_') + 1;
    assert_false(file_holds(trusted, (const uint8_t *)secret2, strlen(secret2)));
    assert_false(file_holds(wal, (const uint8_t *)secret2, strlen(secret2)));
    free(trusted);
    free(wal);
    veil_free(tok);
    veil_free(tid);
    veil_free(tok2);
    veil_free(tid2);
}

/* ---- start-up recovery ---- */

static void sql_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "%s: %s\n", sql, err != NULL ? err : "?");
        sqlite3_free(err);
        fail();
    }
    sqlite3_close(db);
}

/* Leaves a write of `doc` (NULL: a delete) to `id` half done, as a crash would, through the
 * real write path: triggers in trusted.db stop the intent from ever being finished or
 * dropped, and, unless `stores_written`, triggers in cloud.db make the store write fail
 * first. The intent recorded is then exactly what a real write records. */
static void half_write(struct fx *f, const char *id, const char *doc, bool stores_written)
{
    veil_status st;
    const struct vl_coll *c = NULL;
    assert_int_equal(vl_coll_get(f->admin, COLL, &c, &st), VEIL_OK);
    char *trusted = path_in(f->data, "trusted.db");
    char *cloud = path_in(f->data, "cloud/cloud.db");
    char sql[1024];
    sql_exec(trusted, "CREATE TRIGGER test_crash BEFORE DELETE ON intents "
                      "BEGIN SELECT RAISE(ABORT, 'simulated crash'); END;");
    if (!stores_written) {
        snprintf(sql, sizeof(sql),
                 "CREATE TRIGGER test_down_i BEFORE INSERT ON \"r_%s\" "
                 "BEGIN SELECT RAISE(ABORT, 'store down'); END;"
                 "CREATE TRIGGER test_down_u BEFORE UPDATE ON \"r_%s\" "
                 "BEGIN SELECT RAISE(ABORT, 'store down'); END;"
                 "CREATE TRIGGER test_down_d BEFORE DELETE ON \"r_%s\" "
                 "BEGIN SELECT RAISE(ABORT, 'store down'); END;",
                 c->table, c->table, c->table);
        sql_exec(cloud, sql);
    }
    char *out = NULL;
    veil_err rc = doc != NULL
                      ? veil_doc_put(f->clerk, COLL, id, doc, strlen(doc), 0, &out, NULL, &st)
                      : veil_doc_delete(f->clerk, COLL, id, &st);
    /* The writer is told it did not work (the crash, as its client sees it). */
    assert_int_not_equal(rc, VEIL_OK);
    assert_null(out);
    sql_exec(trusted, "DROP TRIGGER test_crash;");
    if (!stores_written) {
        sql_exec(cloud, "DROP TRIGGER test_down_i; DROP TRIGGER test_down_u; "
                        "DROP TRIGGER test_down_d;");
    }
    /* An intent is left behind. */
    assert_int_equal(tu_sql_int(trusted, "SELECT count(*) FROM intents"), 1);
    free(trusted);
    free(cloud);
}

/* The document reads back wholly as `doc` (NULL: not found) at `version`. */
static void assert_reads(veil_session *s, const char *id, const char *doc, int64_t version)
{
    if (doc == NULL) {
        assert_int_equal(get_rc(s, id), VEIL_ERR_NOT_FOUND);
        return;
    }
    json_t *a = get(s, id);
    assert_int_equal(json_integer_value(json_object_get(a, "version")), version);
    assert_json_text(json_object_get(a, "doc"), doc);
    json_decref(a);
}

static void assert_query_ids(veil_session *s, const char *body, int n, const char *id)
{
    json_t *a = query(s, body);
    if (n == 0) {
        assert_ids(a, 0);
    } else {
        assert_ids(a, 1, id);
    }
    json_decref(a);
}

static void recovery_case(struct fx *f, const char *newdoc, bool apply)
{
    put(f->clerk, "inv-1", DOC1, 1);
    put(f->clerk, "other", DOC2, 1);
    half_write(f, "inv-1", newdoc, apply);
    /* While the write is in flight, readers see one whole version, and writers wait. */
    char *out = NULL;
    veil_status st;
    veil_err rc = veil_doc_get(f->clerk, COLL, "inv-1", &out, &st);
    if (apply && newdoc == NULL) {
        /* The rows are gone already: either not found or, at most, the old version. */
        assert_true(rc == VEIL_ERR_NOT_FOUND || rc == VEIL_OK);
    } else {
        assert_int_equal(rc, VEIL_OK);
    }
    if (rc == VEIL_OK) {
        json_t *a = parse(out);
        int64_t ver = json_integer_value(json_object_get(a, "version"));
        assert_true(ver == 1 || ver == 2);
        assert_json_text(json_object_get(a, "doc"), ver == 1 ? DOC1 : newdoc);
        if (!apply) {
            assert_int_equal(ver, 1);
        }
        json_decref(a);
        veil_free(out);
    }
    out = NULL;
    assert_int_equal(veil_doc_put(f->clerk, COLL, "inv-1", DOC2, strlen(DOC2), 0, &out, NULL, &st),
                     VEIL_ERR_CONFLICT);
    assert_null(out);

    /* The crash. At start-up an intent whose rows reached the store is finished (the
     * document is wholly new); one whose rows never did is dropped (wholly old, as the
     * writer, who was told it failed, expects). */
    vault_reopen(f);
    const char *now = apply ? newdoc : DOC1;
    int64_t ver = apply ? 2 : 1;
    assert_reads(f->clerk, "inv-1", now, ver);
    assert_reads(f->clerk, "other", DOC2, 1);
    /* No stray index entries: each invoice number finds exactly what is there. */
    assert_query_ids(f->clerk, "{\"where\":{\"invoice_no\":\"INV-0001\"}}", now == DOC1,
                     now == DOC1 ? "inv-1" : NULL);
    assert_query_ids(f->clerk, "{\"where\":{\"invoice_no\":\"INV-0009\"}}",
                     now != NULL && now != DOC1, now != NULL && now != DOC1 ? "inv-1" : NULL);
    /* And writing goes on from there. */
    int64_t v = put(f->clerk, "inv-1", DOC1, now == NULL);
    assert_int_equal(v, ver + 1);
    assert_reads(f->clerk, "inv-1", DOC1, ver + 1);
    /* A second restart has nothing left to do. */
    vault_reopen(f);
    assert_reads(f->clerk, "inv-1", DOC1, ver + 1);
}

static const char NEWDOC[] =
    "{\"invoice_no\":\"INV-0009\",\"org_id\":\"ACME\",\"status\":\"paid\","
    "\"amount\":\"99.99\",\"internal_ref\":\"R-78\",\"customer\":{\"iban\":\"X1234\"}}";

static void test_recovery_before_store_write(void **state)
{
    recovery_case(*state, NEWDOC, false);
}

static void test_recovery_after_store_write(void **state)
{
    recovery_case(*state, NEWDOC, true);
}

static void test_recovery_delete(void **state)
{
    recovery_case(*state, NULL, false);
}

static void test_recovery_delete_applied(void **state)
{
    recovery_case(*state, NULL, true);
}

/* ---- integrity of what the untrusted store returns ---- */

struct cloud {
    sqlite3 *db;
    char table[VL_TABLE_NAME_MAX + 1];
};

static void cloud_open(struct fx *f, struct cloud *cl)
{
    veil_status st;
    const struct vl_coll *c = NULL;
    assert_int_equal(vl_coll_get(f->admin, COLL, &c, &st), VEIL_OK);
    snprintf(cl->table, sizeof(cl->table), "%s", c->table);
    char *p = path_in(f->data, "cloud/cloud.db");
    assert_int_equal(sqlite3_open(p, &cl->db), SQLITE_OK);
    sqlite3_busy_timeout(cl->db, 5000);
    free(p);
}

static void doc_token(struct fx *f, const char *id, uint8_t tok[VL_DOCTOKEN_BYTES])
{
    veil_status st;
    const struct vl_coll *c = NULL;
    assert_int_equal(vl_coll_get(f->admin, COLL, &c, &st), VEIL_OK);
    vl_doc_token(c, id, tok);
}

/* Runs sql (with %s for the table) binding up to two document tokens as ?1 and ?2, and a
 * blob as ?3; asserts it changed `want_changes` rows (-1: any number). */
static void cloud_exec(struct cloud *cl, const char *fmt, const uint8_t *d1, const uint8_t *d2,
                       const void *blob, size_t bloblen, int want_changes)
{
    char sql[512];
    snprintf(sql, sizeof(sql), fmt, cl->table, cl->table, cl->table);
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(cl->db, sql, -1, &s, NULL) != SQLITE_OK) {
        fprintf(stderr, "%s: %s\n", sql, sqlite3_errmsg(cl->db));
        fail();
    }
    if (d1 != NULL) {
        sqlite3_bind_blob(s, 1, d1, VL_DOCTOKEN_BYTES, SQLITE_TRANSIENT);
    }
    if (d2 != NULL) {
        sqlite3_bind_blob(s, 2, d2, VL_DOCTOKEN_BYTES, SQLITE_TRANSIENT);
    }
    if (blob != NULL) {
        sqlite3_bind_blob(s, 3, blob, (int)bloblen, SQLITE_TRANSIENT);
    }
    int r = sqlite3_step(s);
    if (r != SQLITE_DONE) {
        fprintf(stderr, "%s: %s\n", sql, sqlite3_errmsg(cl->db));
        fail();
    }
    sqlite3_finalize(s);
    if (want_changes >= 0) {
        assert_int_equal(sqlite3_changes(cl->db), want_changes);
    }
}

/* A row's (seq, blob) as the store holds it; *blob malloc'd. */
static void cloud_row(struct cloud *cl, const uint8_t *doc, int64_t *seq, uint8_t **blob, size_t *n)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT seq, blob FROM \"r_%s\" WHERE doc = ?", cl->table);
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(cl->db, sql, -1, &s, NULL), SQLITE_OK);
    sqlite3_bind_blob(s, 1, doc, VL_DOCTOKEN_BYTES, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    *seq = sqlite3_column_int64(s, 0);
    *n = (size_t)sqlite3_column_bytes(s, 1);
    *blob = malloc(*n ? *n : 1);
    assert_non_null(*blob);
    memcpy(*blob, sqlite3_column_blob(s, 1), *n);
    sqlite3_finalize(s);
}

/* Three documents: a and b of ACME, c of BETA, which every tamper test leaves alone. */
static void integrity_setup(struct fx *f, struct cloud *cl, uint8_t *ta, uint8_t *tb)
{
    put(f->clerk, "a", DOC1, 1);
    put(f->clerk, "b",
        "{\"invoice_no\":\"INV-B\",\"org_id\":\"ACME\",\"status\":\"open\","
        "\"customer\":{\"iban\":\"NL02BANK0000000002\"},\"internal_ref\":\"R-B\"}",
        1);
    put(f->clerk, "c", DOC2, 1);
    cloud_open(f, cl);
    doc_token(f, "a", ta);
    doc_token(f, "b", tb);
}

static void assert_breach(struct fx *f, const char *id, const char *qbody)
{
    char *out = NULL;
    veil_status st;
    veil_err rc = veil_doc_get(f->clerk, COLL, id, &out, &st);
    if (rc != VEIL_ERR_INTEGRITY) {
        fprintf(stderr, "get %s: %s, want integrity_violation\n", id, veil_err_name(rc));
        fail();
    }
    assert_null(out);
    assert_int_equal(veil_err_http_status(rc), 502);
    assert_string_equal(veil_err_name(rc), "integrity_violation");
    if (qbody != NULL) {
        json_t *a = NULL;
        rc = query_rc(f->clerk, qbody, &a, &st);
        if (rc != VEIL_ERR_INTEGRITY) {
            fprintf(stderr, "query %s: %s, want integrity_violation\n", qbody, veil_err_name(rc));
            fail();
        }
        assert_null(a);
    }
}

/* The untouched document reads fine, alone and through a query that only it answers. */
static void assert_c_fine(struct fx *f)
{
    assert_reads(f->clerk, "c", DOC2, 1);
    assert_query_ids(f->clerk, "{\"where\":{\"org_id\":\"BETA\"}}", 1, "c");
}

static void test_integrity_bit_flip(void **state)
{
    struct fx *f = *state;
    struct cloud cl;
    uint8_t ta[VL_DOCTOKEN_BYTES], tb[VL_DOCTOKEN_BYTES];
    integrity_setup(f, &cl, ta, tb);
    int64_t seq;
    uint8_t *blob;
    size_t n;
    cloud_row(&cl, ta, &seq, &blob, &n);
    /* Every tenth byte position, one at a time, restored after each. */
    for (size_t pos = 0; pos < n; pos += n / 10 + 1) {
        blob[pos] ^= 0x01;
        cloud_exec(&cl, "UPDATE \"r_%s\" SET blob = ?3 WHERE doc = ?1", ta, NULL, blob, n, 1);
        assert_breach(f, "a", "{\"where\":{\"invoice_no\":\"INV-0001\"}}");
        blob[pos] ^= 0x01;
    }
    /* Truncated and extended blobs. */
    cloud_exec(&cl, "UPDATE \"r_%s\" SET blob = ?3 WHERE doc = ?1", ta, NULL, blob, n - 1, 1);
    assert_breach(f, "a", NULL);
    cloud_exec(&cl, "UPDATE \"r_%s\" SET blob = ?3 || x'00' WHERE doc = ?1", ta, NULL, blob, n, 1);
    assert_breach(f, "a", NULL);
    assert_c_fine(f);
    /* Put back, it reads again. */
    cloud_exec(&cl, "UPDATE \"r_%s\" SET blob = ?3 WHERE doc = ?1", ta, NULL, blob, n, 1);
    assert_reads(f->clerk, "a", DOC1, 1);
    free(blob);
    sqlite3_close(cl.db);
}

static void test_integrity_swap(void **state)
{
    struct fx *f = *state;
    struct cloud cl;
    uint8_t ta[VL_DOCTOKEN_BYTES], tb[VL_DOCTOKEN_BYTES];
    integrity_setup(f, &cl, ta, tb);
    /* Swap the blobs (and seqs) of a and b. */
    int64_t sa, sb;
    uint8_t *ba, *bb;
    size_t na, nb;
    cloud_row(&cl, ta, &sa, &ba, &na);
    cloud_row(&cl, tb, &sb, &bb, &nb);
    cloud_exec(&cl, "UPDATE \"r_%s\" SET blob = ?3 WHERE doc = ?1", ta, NULL, bb, nb, 1);
    cloud_exec(&cl, "UPDATE \"r_%s\" SET blob = ?3 WHERE doc = ?1", tb, NULL, ba, na, 1);
    assert_breach(f, "a", "{\"where\":{\"org_id\":\"ACME\"}}");
    assert_breach(f, "b", "{\"where\":{\"invoice_no\":\"INV-B\"}}");
    /* and their seqs, through a number neither has (seq is the rows' key) */
    char sql[128];
    cloud_exec(&cl, "UPDATE \"r_%s\" SET seq = -seq WHERE doc = ?1", ta, NULL, NULL, 0, 1);
    snprintf(sql, sizeof(sql), "UPDATE \"r_%%s\" SET seq = %lld WHERE doc = ?1", (long long)sa);
    cloud_exec(&cl, sql, tb, NULL, NULL, 0, 1);
    snprintf(sql, sizeof(sql), "UPDATE \"r_%%s\" SET seq = %lld WHERE doc = ?1", (long long)sb);
    cloud_exec(&cl, sql, ta, NULL, NULL, 0, 1);
    assert_breach(f, "a", NULL);
    assert_breach(f, "b", NULL);
    /* Swap the whole rows: document tokens exchanged. */
    static const uint8_t zero[VL_DOCTOKEN_BYTES] = {0};
    cloud_exec(&cl, "UPDATE \"r_%s\" SET blob = ?3 WHERE doc = ?1", ta, NULL, ba, na, 1);
    cloud_exec(&cl, "UPDATE \"r_%s\" SET blob = ?3 WHERE doc = ?1", tb, NULL, bb, nb, 1);
    cloud_exec(&cl, "UPDATE \"r_%s\" SET doc = ?2 WHERE doc = ?1", ta, zero, NULL, 0, 1);
    cloud_exec(&cl, "UPDATE \"r_%s\" SET doc = ?2 WHERE doc = ?1", tb, ta, NULL, 0, 1);
    cloud_exec(&cl, "UPDATE \"r_%s\" SET doc = ?2 WHERE doc = ?1", zero, tb, NULL, 0, 1);
    assert_breach(f, "a", NULL);
    assert_breach(f, "b", NULL);
    assert_c_fine(f);
    free(ba);
    free(bb);
    sqlite3_close(cl.db);
}

static void test_integrity_rollback(void **state)
{
    struct fx *f = *state;
    struct cloud cl;
    uint8_t ta[VL_DOCTOKEN_BYTES], tb[VL_DOCTOKEN_BYTES];
    integrity_setup(f, &cl, ta, tb);
    int64_t s1;
    uint8_t *b1;
    size_t n1;
    cloud_row(&cl, ta, &s1, &b1, &n1);
    put(f->clerk, "a", DOC2, 0);
    /* Restore version 1's row, with its own seq: an old, authentic row. */
    char sql[128];
    snprintf(sql, sizeof(sql), "UPDATE \"r_%%s\" SET blob = ?3, seq = %lld WHERE doc = ?1",
             (long long)s1);
    cloud_exec(&cl, sql, ta, NULL, b1, n1, 1);
    /* a is of BETA now (DOC2), and so is c. */
    assert_breach(f, "a", "{\"where\":{\"org_id\":\"BETA\"}}");
    /* Only the old blob, with the current seq. */
    int64_t s2;
    uint8_t *b2;
    size_t n2;
    put(f->clerk, "a", DOC2, 0);
    cloud_row(&cl, ta, &s2, &b2, &n2);
    cloud_exec(&cl, "UPDATE \"r_%s\" SET blob = ?3 WHERE doc = ?1", ta, NULL, b1, n1, 1);
    assert_breach(f, "a", NULL);
    /* A deleted document brought back. */
    cloud_exec(&cl, "UPDATE \"r_%s\" SET blob = ?3 WHERE doc = ?1", ta, NULL, b2, n2, 1);
    assert_reads(f->clerk, "a", DOC2, 3);
    int64_t sb;
    uint8_t *bb;
    size_t nb;
    cloud_row(&cl, tb, &sb, &bb, &nb);
    veil_status st;
    assert_int_equal(veil_doc_delete(f->clerk, COLL, "b", &st), VEIL_OK);
    snprintf(sql, sizeof(sql), "INSERT INTO \"r_%%s\"(doc, seq, blob) VALUES (?1, %lld, ?3)",
             (long long)sb);
    cloud_exec(&cl, sql, tb, NULL, bb, nb, 1);
    assert_breach(f, "b", NULL);
    assert_reads(f->clerk, "c", DOC2, 1);
    free(b1);
    free(b2);
    free(bb);
    sqlite3_close(cl.db);
}

static void test_integrity_seq(void **state)
{
    struct fx *f = *state;
    struct cloud cl;
    uint8_t ta[VL_DOCTOKEN_BYTES], tb[VL_DOCTOKEN_BYTES];
    integrity_setup(f, &cl, ta, tb);
    cloud_exec(&cl, "UPDATE \"r_%s\" SET seq = seq + 1000 WHERE doc = ?1", ta, NULL, NULL, 0, 1);
    assert_breach(f, "a", "{\"where\":{\"org_id\":\"ACME\"}}");
    cloud_exec(&cl, "UPDATE \"r_%s\" SET seq = seq - 1000 WHERE doc = ?1", ta, NULL, NULL, 0, 1);
    assert_reads(f->clerk, "a", DOC1, 1);
    assert_c_fine(f);
    sqlite3_close(cl.db);
}

static void test_integrity_dropped_row(void **state)
{
    struct fx *f = *state;
    struct cloud cl;
    uint8_t ta[VL_DOCTOKEN_BYTES], tb[VL_DOCTOKEN_BYTES];
    integrity_setup(f, &cl, ta, tb);
    /* The row vanishes but its index entries stay: the query returns it, the read misses. */
    cloud_exec(&cl, "DELETE FROM \"r_%s\" WHERE doc = ?1", ta, NULL, NULL, 0, 1);
    assert_breach(f, "a", NULL);
    assert_c_fine(f);
    sqlite3_close(cl.db);
}

/* The index rows of a and b exchanged: asked for a's values, the store answers b. */
static void test_integrity_wrong_query_answer(void **state)
{
    struct fx *f = *state;
    struct cloud cl;
    uint8_t ta[VL_DOCTOKEN_BYTES], tb[VL_DOCTOKEN_BYTES];
    integrity_setup(f, &cl, ta, tb);
    static const uint8_t zero[VL_DOCTOKEN_BYTES] = {0};
    cloud_exec(&cl, "UPDATE \"x_%s\" SET doc = ?2 WHERE doc = ?1", ta, zero, NULL, 0, -1);
    cloud_exec(&cl, "UPDATE \"x_%s\" SET doc = ?2 WHERE doc = ?1", tb, ta, NULL, 0, -1);
    cloud_exec(&cl, "UPDATE \"x_%s\" SET doc = ?2 WHERE doc = ?1", zero, tb, NULL, 0, -1);
    /* Each document is intact, so a get is fine... */
    assert_reads(f->clerk, "a", DOC1, 1);
    /* ...but a query answered with the wrong document is caught. */
    json_t *a = NULL;
    veil_status st;
    assert_int_equal(query_rc(f->clerk, "{\"where\":{\"invoice_no\":\"INV-0001\"}}", &a, &st),
                     VEIL_ERR_INTEGRITY);
    assert_null(a);
    assert_int_equal(query_rc(f->clerk, "{\"where\":{\"invoice_no\":\"INV-B\"}}", &a, &st),
                     VEIL_ERR_INTEGRITY);
    /* A token added so that another value's query also returns c. */
    uint8_t tc[VL_DOCTOKEN_BYTES];
    doc_token(f, "c", tc);
    cloud_exec(&cl,
               "INSERT OR IGNORE INTO \"x_%s\"(col, part, tok, doc, seq) SELECT col, part, tok,"
               " ?2, (SELECT seq FROM \"r_%s\" WHERE doc = ?2) FROM \"x_%s\" WHERE doc = ?1",
               tb, tc, NULL, 0, -1);
    assert_int_equal(query_rc(f->clerk, "{\"where\":{\"org_id\":\"ACME\"}}", &a, &st),
                     VEIL_ERR_INTEGRITY);
    assert_reads(f->clerk, "c", DOC2, 1);
    sqlite3_close(cl.db);
}

/* ---- what a hostile store answers: breaches, not outages ---- */

#define BREACH_MESSAGE "a store returned data that fails its integrity checks"

/* A store driver that wraps the real one and lies as `mode` says (unit tests only). */
enum lie {
    LIE_NONE,
    LIE_UNREACHABLE,      /* every read: VEIL_ERR_STORE_UNAVAILABLE */
    LIE_DRIVER_INTEGRITY, /* every read: the driver met malformed stored data */
    LIE_MEMBERS_DROP,     /* members leaves out the last document listed */
    LIE_MEMBERS_EXTRA,    /* members adds a document nobody wrote */
    LIE_MEMBERS_DUP,      /* members lists its first document twice */
    LIE_MEMBERS_MOVE,     /* members lists its first document under another token asked */
    LIE_MEMBERS_BADTOK,   /* members names a token that was not asked for */
    LIE_ROWS_EXTRA,       /* get_rows adds a row that was not asked for */
    LIE_KV_SHORT,         /* kv_get answers one value too few */
    LIE_AGG_DUP_GROUP,    /* aggregate answers a group twice */
    LIE_AGG_BAD_RUNS,     /* aggregate's runs of rows overlap */
    LIE_AGG_SHIFT_SUM,    /* aggregate adds 1000 to the lowest limb sum of the first
                             column (a plausible total, shifted by 10.00) */
    LIE_AGG_SHIFT_BOTH,   /* the same, and the same shift on the first column's MAC tags */
    LIE_AGG_DROP_TAG_RUN, /* the MAC tags' column loses its first run and a count */
    LIE_AGG_SWAP_KEYS,    /* the first two groups swap their first key: rows, cells and
                             tags move together, so every total is one a group could have */
    LIE_AGG_DROP_GROUP,   /* the last group is left out */
    LIE_AGG_DROP_ROW,     /* the first group loses its last row (count and runs) */
    LIE_AGG_EXTRA_ROW,    /* the first group gains a row after its last (count and runs) */
};

struct liar {
    struct vl_store base;
    struct vl_store *real;
    enum lie mode;
};

static struct vl_store *liar_real(struct vl_store *s)
{
    return ((struct liar *)s)->real;
}

static enum lie liar_mode(struct vl_store *s)
{
    return ((struct liar *)s)->mode;
}

static veil_err liar_fails(struct vl_store *s)
{
    return liar_mode(s) == LIE_UNREACHABLE        ? VEIL_ERR_STORE_UNAVAILABLE
           : liar_mode(s) == LIE_DRIVER_INTEGRITY ? VEIL_ERR_INTEGRITY
                                                  : VEIL_OK;
}

static veil_err liar_get_rows(struct vl_store *s, const char *t, const struct vl_bytes *docs,
                              size_t n, struct vl_rows *out)
{
    veil_err rc = liar_fails(s);
    if (rc == VEIL_OK) {
        rc = liar_real(s)->ops->get_rows(liar_real(s), t, docs, n, out);
    }
    if (rc == VEIL_OK && liar_mode(s) == LIE_ROWS_EXTRA && out->n > 0) {
        struct vl_row *rows = realloc(out->rows, (out->n + 1) * sizeof(*rows));
        assert_non_null(rows);
        out->rows = rows;
        struct vl_row *r = &rows[out->n++];
        memset(r, 0, sizeof(*r));
        r->doc.p = calloc(1, VL_DOCTOKEN_BYTES);
        r->doc.n = VL_DOCTOKEN_BYTES;
        r->blob.p = calloc(1, 1);
        assert_true(r->doc.p != NULL && r->blob.p != NULL);
    }
    return rc;
}

static veil_err liar_find(struct vl_store *s, const char *t, const struct vl_pred *pred,
                          const uint8_t *after, size_t limit, struct vl_doclist *out)
{
    veil_err rc = liar_fails(s);
    return rc != VEIL_OK ? rc : liar_real(s)->ops->find(liar_real(s), t, pred, after, limit, out);
}

static veil_err liar_aggregate(struct vl_store *s, const char *t, const struct vl_agg_request *req,
                               struct vl_agg_result *out)
{
    veil_err rc = liar_fails(s);
    if (rc == VEIL_OK) {
        rc = liar_real(s)->ops->aggregate(liar_real(s), t, req, out);
    }
    if (rc != VEIL_OK || out->n == 0) {
        return rc;
    }
    struct vl_agg_group *g = &out->groups[0];
    if (liar_mode(s) == LIE_AGG_DUP_GROUP) {
        struct vl_agg_group *gs = realloc(out->groups, (out->n + 1) * sizeof(*gs));
        assert_non_null(gs);
        out->groups = gs;
        struct vl_agg_group copy = gs[0];
        for (size_t k = 0; k < VL_AGG_MAX_GROUP; k++) {
            copy.keys[k].p = NULL;
            if (gs[0].keys[k].n > 0) {
                copy.keys[k].p = malloc(gs[0].keys[k].n);
                memcpy(copy.keys[k].p, gs[0].keys[k].p, gs[0].keys[k].n);
            }
        }
        copy.values = calloc(out->ncols ? out->ncols : 1, sizeof(*copy.values));
        assert_non_null(copy.values);
        copy.runs = malloc((gs[0].nruns + 1) * sizeof(*copy.runs));
        assert_non_null(copy.runs);
        memcpy(copy.runs, gs[0].runs, gs[0].nruns * sizeof(*copy.runs));
        gs[out->n++] = copy;
    }
    if (liar_mode(s) == LIE_AGG_SHIFT_SUM || liar_mode(s) == LIE_AGG_SHIFT_BOTH) {
        g->values[0].limbs[0] += 1000;
        if (liar_mode(s) == LIE_AGG_SHIFT_BOTH) {
            g->values[out->ncols / 2].limbs[0] += 1000;
        }
    }
    if (liar_mode(s) == LIE_AGG_DROP_TAG_RUN) {
        struct vl_agg_value *v = &g->values[out->ncols / 2];
        if (v->nruns > 1 && v->count > 0) {
            v->count -= v->runs[0].last - v->runs[0].first + 1;
            memmove(v->runs, v->runs + 1, (v->nruns - 1) * sizeof(*v->runs));
            v->nruns--;
        } else if (v->count > 0) {
            v->count--;
            v->runs[0].last--;
        }
    }
    for (size_t j = 1; liar_mode(s) == LIE_AGG_SWAP_KEYS && j < out->n; j++) {
        struct vl_bytes k0 = out->groups[0].keys[0], kj = out->groups[j].keys[0];
        if (k0.n != kj.n || memcmp(k0.p, kj.p, k0.n) != 0) { /* a group of another key */
            out->groups[0].keys[0] = kj;
            out->groups[j].keys[0] = k0;
            break;
        }
    }
    if (liar_mode(s) == LIE_AGG_DROP_GROUP) {
        struct vl_agg_result one = *out;
        one.groups = &out->groups[out->n - 1];
        one.n = 1;
        out->n--;
        struct vl_agg_group *copy = malloc(sizeof(*copy));
        assert_non_null(copy);
        *copy = *one.groups;
        one.groups = copy;
        vl_agg_result_free(&one);
    }
    if (liar_mode(s) == LIE_AGG_DROP_ROW && g->count > 1) {
        g->count--;
        if (g->runs[g->nruns - 1].first == g->runs[g->nruns - 1].last) {
            g->nruns--;
        } else {
            g->runs[g->nruns - 1].last--;
        }
    }
    if (liar_mode(s) == LIE_AGG_EXTRA_ROW) {
        g->count++;
        g->runs[g->nruns - 1].last++;
    }
    if (liar_mode(s) == LIE_AGG_BAD_RUNS) {
        for (size_t j = 0; j < out->ncols; j++) {
            struct vl_agg_value *v = &g->values[j];
            if (v->nruns > 0) { /* the first run reaches back over itself: first > last */
                v->runs[0].first = v->runs[0].last + 1;
            }
        }
    }
    return rc;
}

static veil_err liar_kv_get(struct vl_store *s, const char *t, const struct vl_bytes *keys,
                            size_t n, struct vl_kv_values *out)
{
    veil_err rc = liar_fails(s);
    if (rc == VEIL_OK) {
        rc = liar_real(s)->ops->kv_get(liar_real(s), t, keys, n, out);
    }
    if (rc == VEIL_OK && liar_mode(s) == LIE_KV_SHORT && out->n > 0) {
        out->n--;
    }
    return rc;
}

static veil_err liar_put(struct vl_store *s, const char *t, const struct vl_row *rows, size_t n,
                         const struct vl_kv *kv, size_t nkv)
{
    return liar_real(s)->ops->put(liar_real(s), t, rows, n, kv, nkv);
}

static veil_err liar_members(struct vl_store *s, const char *t, const uint8_t col[VL_COL_BYTES],
                             const struct vl_bytes *toks, size_t ntoks, struct vl_members *out)
{
    veil_err rc = liar_fails(s);
    if (rc == VEIL_OK) {
        rc = liar_real(s)->ops->members(liar_real(s), t, col, toks, ntoks, out);
    }
    if (rc != VEIL_OK || out->n == 0) {
        return rc;
    }
    enum lie m = liar_mode(s);
    if (m == LIE_MEMBERS_EXTRA || m == LIE_MEMBERS_DUP) {
        struct vl_member *mm = realloc(out->m, (out->n + 1) * sizeof(*mm));
        assert_non_null(mm);
        out->m = mm;
        mm[out->n] = mm[0];
        if (m == LIE_MEMBERS_EXTRA) {
            mm[out->n].doc[0] ^= 0x5a;
        }
        out->n++;
    } else if (m == LIE_MEMBERS_DROP) {
        out->n--;
    } else if (m == LIE_MEMBERS_MOVE) {
        out->m[0].tok = (out->m[0].tok + 1) % (uint32_t)ntoks;
    } else if (m == LIE_MEMBERS_BADTOK) {
        out->m[0].tok = (uint32_t)ntoks;
    }
    return rc;
}

static veil_err liar_put_rows(struct vl_store *s, const char *t, const struct vl_row *rows,
                              size_t n)
{
    return liar_real(s)->ops->put_rows(liar_real(s), t, rows, n);
}

static veil_err liar_kv_put(struct vl_store *s, const char *t, const struct vl_kv *kv, size_t n)
{
    return liar_real(s)->ops->kv_put(liar_real(s), t, kv, n);
}

static veil_err liar_ensure(struct vl_store *s, const char *t)
{
    return liar_real(s)->ops->ensure_table(liar_real(s), t);
}

/* Only reached when a failed assertion left the liar in place: the vault's teardown. */
static void liar_close(struct vl_store *s)
{
    vl_store_close(liar_real(s));
    free(s);
}

static const struct vl_store_ops liar_ops = {
    .version = 1,
    .scheme = "liar",
    .close = liar_close,
    .get_rows = liar_get_rows,
    .find = liar_find,
    .aggregate = liar_aggregate,
    .kv_get = liar_kv_get,
    .put = liar_put,
    .members = liar_members,
    .put_rows = liar_put_rows,
    .kv_put = liar_kv_put,
    .ensure_table = liar_ensure,
};

/* Puts a lying driver in front of the vault's store (until liar_remove). */
static struct liar *liar_install(struct fx *f, enum lie mode)
{
    struct liar *l = calloc(1, sizeof(*l));
    assert_non_null(l);
    l->base.ops = &liar_ops;
    l->real = f->v->stores[0];
    l->mode = mode;
    f->v->stores[0] = &l->base;
    return l;
}

static void liar_remove(struct fx *f, struct liar *l)
{
    f->v->stores[0] = l->real;
    free(l);
}

static void bulk_load(struct fx *f, int from, int n, const char *org, const char *notes)
{
    char *nd = NULL;
    size_t ndlen = 0;
    FILE *m = open_memstream(&nd, &ndlen);
    assert_non_null(m);
    for (int i = from; i < from + n; i++) {
        fprintf(m,
                "{\"id\":\"d%04d\",\"doc\":{\"invoice_no\":\"INV-%05d\",\"org_id\":\"%s\","
                "\"status\":\"%s\",\"amount\":\"%d.%02d\",\"notes\":\"%s %s\"}}\n",
                i, i, org, i % 2 ? "open" : "paid", i, i % 100, notes,
                i % 3 ? "payment" : "refund");
    }
    fclose(m);
    char *out = NULL;
    veil_status st;
    assert_int_equal(veil_bulk(f->clerk, COLL, nd, ndlen, &out, &st), VEIL_OK);
    free(nd);
    veil_free(out);
}

/* rc must be a breach: VEIL_ERR_INTEGRITY with vl_breach's message. */
static void assert_breach_rc(veil_err rc, const veil_status *st, const char *what)
{
    if (rc != VEIL_ERR_INTEGRITY || strcmp(st->message, BREACH_MESSAGE) != 0) {
        fprintf(stderr, "%s: %s (%s), want a breach\n", what, veil_err_name(rc), st->message);
        fail();
    }
}

static veil_err agg_rc(veil_session *s, const char *body, char **out, veil_status *st)
{
    *out = NULL;
    return veil_aggregate(s, COLL, body, strlen(body), out, st);
}

/* The cursor of a first page (malloc'd). */
static char *first_cursor(veil_session *s, const char *body)
{
    json_t *a = query(s, body);
    const char *n = json_string_value(json_object_get(a, "next"));
    assert_non_null(n);
    char *c = strdup(n);
    json_decref(a);
    return c;
}

static char *with_after(const char *body, const char *cur)
{
    json_t *q = parse(body);
    json_object_set_new(q, "after", json_string(cur));
    char *t = json_dumps(q, JSON_COMPACT);
    json_decref(q);
    assert_non_null(t);
    return t;
}

static void assert_cursor_refused(veil_session *s, const char *coll, const char *body,
                                  const char *cur, const char *what)
{
    char *b = with_after(body, cur), *out = NULL;
    veil_status st;
    veil_err rc = veil_query(s, coll, b, strlen(b), &out, &st);
    if (rc != VEIL_ERR_BAD_REQUEST) {
        fprintf(stderr, "%s: %s, want bad_request\n", what, veil_err_name(rc));
        fail();
    }
    assert_string_equal(st.field, "after");
    assert_null(out);
    free(b);
}

static void assert_cursor_taken(veil_session *s, const char *body, const char *cur)
{
    char *b = with_after(body, cur);
    json_t *a = query(s, b);
    assert_true(json_array_size(json_object_get(a, "docs")) > 0);
    json_decref(a);
    free(b);
}

/* A cursor pages through one list: its tenant, role, collection, where and match. */
static void test_cursor_binding(void **state)
{
    struct fx *f = *state;
    bulk_load(f, 0, 30, "ACME", "late");
    size_t len = 0;
    char *text = tu_read_file(POLICY_FILE, &len);
    assert_non_null(text);
    veil_status st;
    int created = 0;
    char *text2 = NULL; /* the same policy, under another name */
    char *at = strstr(text, "collection: invoices");
    assert_non_null(at);
    assert_true(asprintf(&text2, "%.*scollection: invoices2%s", (int)(at - text), text,
                         at + strlen("collection: invoices")) > 0);
    assert_int_equal(
        veil_collection_apply(f->admin, "invoices2", text2, strlen(text2), &created, &st), VEIL_OK);
    free(text2);
    assert_int_equal(veil_tenant_create(f->v, "other", &st), VEIL_OK);
    veil_session *oadmin = session(f->v, "other", "admin");
    veil_session *oclerk = session(f->v, "other", "clerk");
    assert_int_equal(veil_collection_apply(oadmin, COLL, text, len, &created, &st), VEIL_OK);
    free(text);

    static const char *const bodies[] = {
        "{\"where\":{\"status\":\"open\"},\"limit\":3}",
        "{\"where\":{\"status\":\"open\"},\"match\":{\"notes\":\"late\"},\"limit\":3}",
    };
    for (size_t k = 0; k < 2; k++) {
        const char *body = bodies[k];
        char *cur = first_cursor(f->clerk, body);
        assert_cursor_taken(f->clerk, body, cur);
        /* select and limit may change from page to page */
        char *b2 = NULL;
        assert_true(asprintf(&b2, "%.*s,\"select\":[\"invoice_no\"],\"limit\":5}",
                             (int)(strstr(body, ",\"limit\"") - body), body) > 0);
        assert_cursor_taken(f->clerk, b2, cur);
        free(b2);
        /* another where, none, another match, or a plain cursor where a match's goes */
        assert_cursor_refused(f->clerk, COLL,
                              k == 0 ? "{\"where\":{\"status\":\"paid\"},\"limit\":3}"
                                     : "{\"where\":{\"status\":\"paid\"},\"match\":{\"notes\":"
                                       "\"late\"},\"limit\":3}",
                              cur, "another where");
        assert_cursor_refused(f->clerk, COLL, "{\"limit\":3}", cur, "no where");
        assert_cursor_refused(f->clerk, COLL,
                              k == 0 ? "{\"where\":{\"status\":\"open\"},\"match\":{\"notes\":"
                                       "\"late\"},\"limit\":3}"
                                     : "{\"where\":{\"status\":\"open\"},\"match\":{\"notes\":"
                                       "\"payment\"},\"limit\":3}",
                              cur, "another match");
        /* another role (the auditor may filter on status and read notes? no: only plain) */
        assert_cursor_refused(f->admin, COLL, body, cur, "another role (admin)");
        if (k == 0) {
            assert_cursor_refused(f->auditor, COLL, body, cur, "another role (auditor)");
        }
        /* another collection of the same tenant, and the same collection of another tenant */
        assert_cursor_refused(f->clerk, "invoices2", body, cur, "another collection");
        assert_cursor_refused(oclerk, COLL, body, cur, "another tenant");
        free(cur);
    }
    veil_session_free(oadmin);
    veil_session_free(oclerk);
}

/* A store whose index lists a condition's documents short, padded, twice, under another
 * token or a token not asked for: 502 and a breach on every query that reads it (eq, in,
 * range, both, every page, and a search's where), never a shorter or longer page. */
static void test_lying_members(void **state)
{
    struct fx *f = *state;
    bulk_load(f, 0, 20, "ACME", "late");
    bulk_load(f, 20, 6, "BETA", "late");
    static const char *const bodies[] = {
        "{\"where\":{\"org_id\":\"ACME\"},\"limit\":4}",
        "{\"where\":{\"org_id\":{\"in\":[\"ACME\",\"BETA\"]}}}",
        "{\"where\":{\"amount\":{\"gte\":\"3\",\"lt\":\"24\"}}}",
        "{\"where\":{\"org_id\":\"BETA\",\"amount\":{\"gte\":\"21\"}}}",
        "{\"match\":{\"notes\":\"late\"},\"where\":{\"org_id\":{\"in\":[\"ACME\","
        "\"BETA\"]}}}",
    };
    static const char paged[] = "{\"where\":{\"org_id\":\"ACME\"},\"limit\":4}";
    char *cur = first_cursor(f->clerk, paged);
    char *page2 = with_after(paged, cur);
    json_t *honest[6];
    for (size_t b = 0; b < 6; b++) {
        honest[b] = query(f->clerk, b < 5 ? bodies[b] : page2);
    }
    static const enum lie lies[] = {LIE_MEMBERS_DROP, LIE_MEMBERS_EXTRA, LIE_MEMBERS_DUP,
                                    LIE_MEMBERS_MOVE, LIE_MEMBERS_BADTOK};
    for (size_t i = 0; i < sizeof(lies) / sizeof(lies[0]); i++) {
        struct liar *l = liar_install(f, lies[i]);
        for (size_t b = 0; b < 6; b++) {
            json_t *a = NULL;
            veil_status st;
            veil_err rc = query_rc(f->clerk, b < 5 ? bodies[b] : page2, &a, &st);
            if (lies[i] == LIE_MEMBERS_MOVE && (b == 0 || b == 5)) {
                /* one token asked: moving is to itself */
                assert_int_equal(rc, VEIL_OK);
                json_decref(a);
                continue;
            }
            if (rc != VEIL_ERR_INTEGRITY) {
                fprintf(stderr, "lie %d, query %zu: %s\n", (int)lies[i], b, veil_err_name(rc));
            }
            assert_breach_rc(rc, &st, "a query from lying members");
            assert_null(a);
        }
        liar_remove(f, l);
    }
    /* the honest store pages on, with the same answers */
    for (size_t b = 0; b < 6; b++) {
        json_t *a = query(f->clerk, b < 5 ? bodies[b] : page2);
        assert_true(json_equal(json_object_get(a, "docs"), json_object_get(honest[b], "docs")));
        json_decref(a);
        json_decref(honest[b]);
    }
    free(page2);
    free(cur);
}

/* A store that moves rows between groups (keys swapped: every total still one a group could
 * have, MAC tags and all), leaves a group or a row out, or adds one: 502 and a breach, with
 * and without a where or a match, counts alone or sums. */
static void test_lying_groups(void **state)
{
    struct fx *f = *state;
    bulk_load(f, 0, 20, "ACME", "late");
    bulk_load(f, 20, 6, "BETA", "late");
    static const char *const bodies[] = {
        "{\"group_by\":[\"status\"],\"metrics\":{\"n\":{\"count\":\"*\"}}}",
        "{\"group_by\":[\"status\"],\"metrics\":{\"s\":{\"sum\":\"amount\"}}}",
        "{\"group_by\":[\"status\",\"org_id\"],\"metrics\":{\"s\":{\"sum\":\"amount\"}}}",
        "{\"where\":{\"org_id\":\"ACME\"},\"group_by\":[\"status\"],\"metrics\":{\"s\":"
        "{\"sum\":\"amount\"},\"n\":{\"count\":\"*\"}}}",
        "{\"match\":{\"notes\":\"late\"},\"group_by\":[\"status\"],\"metrics\":{\"n\":"
        "{\"count\":\"*\"}}}",
        "{\"where\":{\"amount\":{\"gte\":\"2\"}},\"group_by\":[\"org_id\"],\"metrics\":"
        "{\"a\":{\"avg\":\"amount\"}}}",
    };
    size_t nb = sizeof(bodies) / sizeof(bodies[0]);
    char *honest[6];
    veil_status st;
    for (size_t b = 0; b < nb; b++) {
        assert_int_equal(agg_rc(f->admin, bodies[b], &honest[b], &st), VEIL_OK);
    }
    static const enum lie lies[] = {LIE_AGG_SWAP_KEYS, LIE_AGG_DROP_GROUP, LIE_AGG_DROP_ROW,
                                    LIE_AGG_EXTRA_ROW};
    for (size_t i = 0; i < sizeof(lies) / sizeof(lies[0]); i++) {
        struct liar *l = liar_install(f, lies[i]);
        for (size_t b = 0; b < nb; b++) {
            char *out = NULL;
            veil_err rc = agg_rc(f->admin, bodies[b], &out, &st);
            if (rc != VEIL_ERR_INTEGRITY) {
                fprintf(stderr, "lie %d, aggregate %zu: %s %s\n", (int)lies[i], b,
                        veil_err_name(rc), out != NULL ? out : "");
            }
            assert_breach_rc(rc, &st, "an aggregate from a lying store");
            assert_null(out);
        }
        liar_remove(f, l);
    }
    for (size_t b = 0; b < nb; b++) {
        char *out = NULL;
        assert_int_equal(agg_rc(f->admin, bodies[b], &out, &st), VEIL_OK);
        assert_string_equal(out, honest[b]);
        veil_free(out);
        veil_free(honest[b]);
    }
}

/* Malformed answers of every read are breaches; only an unreachable store is a 503. */
static void test_lying_answers(void **state)
{
    struct fx *f = *state;
    bulk_load(f, 0, 12, "ACME", "late");
    static const char q[] = "{\"where\":{\"org_id\":\"ACME\"}}";
    static const char m[] = "{\"match\":{\"notes\":\"late\"}}";
    static const char mw[] = "{\"match\":{\"notes\":\"late\"},\"where\":{\"status\":\"open\"}}";
    static const char ag[] = "{\"group_by\":[\"status\"],\"metrics\":{\"s\":{\"sum\":"
                             "\"amount\"},\"a\":{\"avg\":\"amount\"}}}";
    char *out = NULL;
    veil_status st;
    json_t *a = NULL;
    struct liar *l = liar_install(f, LIE_UNREACHABLE);
    assert_int_equal(get_rc(f->clerk, "d0001"), VEIL_ERR_STORE_UNAVAILABLE);
    assert_int_equal(query_rc(f->clerk, q, &a, &st), VEIL_ERR_STORE_UNAVAILABLE);
    assert_int_equal(query_rc(f->clerk, m, &a, &st), VEIL_ERR_STORE_UNAVAILABLE);
    assert_int_equal(agg_rc(f->admin, ag, &out, &st), VEIL_ERR_STORE_UNAVAILABLE);
    liar_remove(f, l);
    /* the driver reports stored data it cannot return: breaches, every one */
    l = liar_install(f, LIE_DRIVER_INTEGRITY);
    assert_breach_rc(veil_doc_get(f->clerk, COLL, "d0001", &out, &st), &st, "get");
    assert_breach_rc(query_rc(f->clerk, q, &a, &st), &st, "query");
    assert_breach_rc(query_rc(f->clerk, m, &a, &st), &st, "search");
    assert_breach_rc(agg_rc(f->admin, ag, &out, &st), &st, "aggregate");
    liar_remove(f, l);
    l = liar_install(f, LIE_ROWS_EXTRA);
    assert_breach_rc(veil_doc_get(f->clerk, COLL, "d0001", &out, &st), &st, "an extra row");
    liar_remove(f, l);
    l = liar_install(f, LIE_KV_SHORT);
    assert_breach_rc(query_rc(f->clerk, m, &a, &st), &st, "a short kv answer");
    liar_remove(f, l);
    l = liar_install(f, LIE_MEMBERS_EXTRA);
    assert_breach_rc(query_rc(f->clerk, mw, &a, &st), &st, "a search's where, a stranger");
    liar_remove(f, l);
    l = liar_install(f, LIE_AGG_DUP_GROUP);
    assert_breach_rc(agg_rc(f->admin, ag, &out, &st), &st, "a group twice");
    liar_remove(f, l);
    l = liar_install(f, LIE_AGG_BAD_RUNS);
    assert_breach_rc(agg_rc(f->admin, ag, &out, &st), &st, "runs out of order");
    liar_remove(f, l);
    /* A total shifted by a plausible amount: the MAC tags catch it, also when the tags are
     * shifted alike (the store does not know the MAC's multiplier), or when the tags do
     * not cover the same rows as the cells. */
    l = liar_install(f, LIE_AGG_SHIFT_SUM);
    assert_breach_rc(agg_rc(f->admin, ag, &out, &st), &st, "a total shifted by 10.00");
    liar_remove(f, l);
    l = liar_install(f, LIE_AGG_SHIFT_BOTH);
    assert_breach_rc(agg_rc(f->admin, ag, &out, &st), &st, "a total and its tags shifted");
    liar_remove(f, l);
    l = liar_install(f, LIE_AGG_DROP_TAG_RUN);
    assert_breach_rc(agg_rc(f->admin, ag, &out, &st), &st, "tags over other rows");
    liar_remove(f, l);
    assert_null(out);
    /* and honest again */
    assert_int_equal(agg_rc(f->admin, ag, &out, &st), VEIL_OK);
    veil_free(out);
    a = query(f->clerk, mw);
    json_decref(a);
}

/* The store's SQLite file edited: text where a blob belongs, sum rows moved off their rows,
 * rows with negative or huge sequence numbers, limbs of the wrong type: breaches, not
 * outages. */
static void test_malformed_store_data(void **state)
{
    struct fx *f = *state;
    bulk_load(f, 0, 6, "ACME", "late");
    struct cloud cl;
    cloud_open(f, &cl);
    static const char ag[] = "{\"metrics\":{\"s\":{\"sum\":\"amount\"},\"n\":{\"count\":\"*\"}}}";
    static const char m[] = "{\"match\":{\"notes\":\"late\"}}";
    char *out = NULL;
    veil_status st;
    json_t *a = NULL;
    /* search values as text */
    cloud_exec(&cl, "UPDATE \"k_%s\" SET val = CAST(val AS TEXT)", NULL, NULL, NULL, 0, -1);
    assert_breach_rc(query_rc(f->clerk, m, &a, &st), &st, "a search value as text");
    cloud_exec(&cl, "UPDATE \"k_%s\" SET val = CAST(val AS BLOB)", NULL, NULL, NULL, 0, -1);
    a = query(f->clerk, m);
    json_decref(a);
    /* sum rows moved off their row's number (negative, or another row's), rows renumbered
     * below zero or near 2^63 (the run finder's signed overflow), limbs as text and beyond
     * 32 bits (their SUM overflows) */
    static const char *const tamper[][2] = {
        {"UPDATE \"s_%s\" SET seq = -seq WHERE seq = (SELECT min(seq) FROM \"s_%s\")",
         "UPDATE \"s_%s\" SET seq = -seq WHERE seq < 0"},
        {"UPDATE \"r_%s\" SET seq = -seq WHERE seq = (SELECT min(seq) FROM \"r_%s\")",
         "UPDATE \"r_%s\" SET seq = -seq WHERE seq < 0"},
        {"UPDATE \"s_%s\" SET l1 = 'x' || l1 WHERE seq = (SELECT min(seq) FROM \"s_%s\")",
         "UPDATE \"s_%s\" SET l1 = CAST(substr(l1, 2) AS INTEGER) WHERE typeof(l1) = 'text'"},
        {"UPDATE \"s_%s\" SET l0 = l0 + 4611686018427387904",
         "UPDATE \"s_%s\" SET l0 = l0 - 4611686018427387904"},
        {"UPDATE \"r_%s\" SET seq = 9223372036854775807 - seq", NULL},
    };
    for (size_t i = 0; i < sizeof(tamper) / sizeof(tamper[0]); i++) {
        cloud_exec(&cl, tamper[i][0], NULL, NULL, NULL, 0, -1);
        veil_err rc = agg_rc(f->admin, ag, &out, &st);
        if (rc != VEIL_ERR_INTEGRITY) {
            fprintf(stderr, "tamper %zu: %s: %s\n", i, veil_err_name(rc), st.message);
        }
        assert_breach_rc(rc, &st, "tampered sum rows");
        assert_null(out);
        if (tamper[i][1] != NULL) {
            cloud_exec(&cl, tamper[i][1], NULL, NULL, NULL, 0, -1);
            assert_int_equal(agg_rc(f->admin, ag, &out, &st), VEIL_OK);
            veil_free(out);
        }
    }
    /* a row's blob as text, its seq as text */
    uint8_t t1[VL_DOCTOKEN_BYTES];
    doc_token(f, "d0001", t1);
    cloud_exec(&cl, "UPDATE \"r_%s\" SET blob = CAST(blob AS TEXT) WHERE doc = ?1", t1, NULL, NULL,
               0, 1);
    assert_breach_rc(veil_doc_get(f->clerk, COLL, "d0001", &out, &st), &st, "a blob as text");
    /* (a seq as text is no longer possible: it is the rows' integer key) */
    sqlite3_close(cl.db);
}

/* Search pages over bulk-loaded documents (an index entry holds many of them) page on to
 * the end, and together equal the one-page answer, with and without where. */
static void test_search_paging_bulk(void **state)
{
    struct fx *f = *state;
    bulk_load(f, 0, 300, "ACME", "late");
    bulk_load(f, 300, 40, "BETA", "late");
    for (int i = 340; i < 350; i++) {
        char id[16];
        char *d = mkdoc("ACME", "open", i);
        json_t *j = parse(d);
        json_object_set_new(j, "notes", json_string("late late"));
        char *t = json_dumps(j, JSON_COMPACT);
        snprintf(id, sizeof(id), "d%04d", i);
        put(f->clerk, id, t, 1);
        free(t);
        free(d);
        json_decref(j);
    }
    static const char *const bodies[] = {
        "{\"match\":{\"notes\":\"late\"}",
        "{\"match\":{\"notes\":{\"any\":\"refund zebra\"}}",
        "{\"match\":{\"notes\":\"late payment\"},\"where\":{\"org_id\":\"ACME\"}",
        "{\"where\":{\"org_id\":\"ACME\"}",
    };
    static const int limits[] = {3, 7, 64};
    for (size_t b = 0; b < sizeof(bodies) / sizeof(bodies[0]); b++) {
        char *whole_body = NULL;
        assert_true(asprintf(&whole_body, "%s,\"limit\":10000}", bodies[b]) > 0);
        json_t *whole = query(f->clerk, whole_body);
        assert_true(json_is_null(json_object_get(whole, "next")));
        json_t *want = ids_of(whole);
        assert_true(json_array_size(want) > 64);
        for (size_t k = 0; k < sizeof(limits) / sizeof(limits[0]); k++) {
            json_t *got = json_array();
            char *after = NULL;
            for (int page = 0;; page++) {
                assert_true(page <= 400);
                char *body = NULL;
                assert_true(asprintf(&body, "%s,\"limit\":%d}", bodies[b], limits[k]) > 0);
                if (after != NULL) {
                    char *t = with_after(body, after);
                    free(body);
                    body = t;
                }
                json_t *a = query(f->clerk, body);
                json_t *ids = ids_of(a);
                json_array_extend(got, ids);
                json_decref(ids);
                free(after);
                const char *n = json_string_value(json_object_get(a, "next"));
                after = n != NULL ? strdup(n) : NULL;
                json_decref(a);
                free(body);
                if (after == NULL) {
                    break;
                }
            }
            if (!json_equal(got, want)) {
                fprintf(stderr, "%s by %d: %zu ids, want %zu\n", bodies[b], limits[k],
                        json_array_size(got), json_array_size(want));
                fail();
            }
            json_decref(got);
        }
        json_decref(want);
        json_decref(whole);
        free(whole_body);
    }
}

/* avg: the exact sum over the count, rounded half to even to the field's scale + 2. */
/* The analyst of the shipped policy is answered under differential privacy: every answer
 * is paid for, a repeat gets the kept answer for free, the budget runs out with 429 and a
 * Retry-After, explain and errors carry no exact number from the data, and an admin sees
 * and resets budgets. */
#define RESET_ANALYST "{\"role\":\"analyst\"}"
static void test_dp_answers(void **state)
{
    struct fx *f = *state;
    for (int i = 0; i < 60; i++) {
        char id[16], doc[128];
        snprintf(id, sizeof(id), "dp-%d", i);
        snprintf(doc, sizeof(doc), "{\"org_id\":\"%s\",\"status\":\"open\",\"amount\":\"%d.50\"}",
                 i < 50 ? "BIG" : "SMALL", 100 + i);
        put(f->clerk, id, doc, 1);
    }
    /* GET /v1/collections/{c} states the parameters, the bounds and the noise scales */
    char *desc = NULL;
    veil_status dst;
    assert_int_equal(veil_collection_get(f->analyst, COLL, &desc, &dst), VEIL_OK);
    json_t *d = parse(desc);
    json_t *dp = json_object_get(json_object_get(json_object_get(d, "roles"), "analyst"), "privacy");
    assert_true(json_number_value(json_object_get(dp, "epsilon_per_answer")) == 0.25);
    assert_true(json_number_value(json_object_get(dp, "budget")) == 1.0);
    json_t *ns = json_object_get(dp, "noise_scale");
    assert_true(json_number_value(json_object_get(ns, "count")) == 4.0);
    json_t *am = json_object_get(json_object_get(ns, "fields"), "amount");
    assert_true(json_number_value(json_object_get(am, "sum")) == 200000.0);
    assert_true(json_number_value(json_object_get(am, "centred_sum")) == 200000.0);
    assert_non_null(strstr(desc, "\"bounds\":[\"-50000.00\",\"50000.00\"]"));
    assert_non_null(strstr(desc, "\"epsilon_per_answer\":0.25,"));
    json_decref(d);
    veil_free(desc);
    /* the whole day's budget (1) on one answer */
    const char *body = "{\"group_by\":[\"org_id\"],\"metrics\":{\"n\":{\"count\":\"*\"},"
                       "\"t\":{\"sum\":\"amount\"}},\"explain\":true,\"epsilon\":1}";
    char *out = NULL;
    veil_status st;
    assert_int_equal(agg_rc(f->analyst, body, &out, &st), VEIL_OK);
    json_t *a = parse(out);
    assert_true(json_is_null(json_object_get(a, "suppressed")));
    json_t *p = json_object_get(a, "privacy");
    assert_false(json_is_true(json_object_get(p, "cached")));
    assert_true(json_number_value(json_object_get(p, "epsilon")) == 1.0);
    assert_true(json_number_value(json_object_get(json_object_get(p, "spent"), "epsilon")) == 1.0);
    assert_true(json_number_value(json_object_get(json_object_get(p, "left"), "token")) == 0.0);
    assert_true(json_number_value(json_object_get(json_object_get(p, "left"), "role")) == 1.0);
    /* count + sum: 2 quantities, scale 2; a group of 10 (SMALL) never reaches 28 */
    assert_int_equal(json_integer_value(json_object_get(p, "threshold")), 28);
    assert_true(json_number_value(json_object_get(json_object_get(json_object_get(p, "noise"), "n"),
                                                  "scale")) == 2.0);
    json_t *groups = json_object_get(a, "groups");
    for (size_t g = 0; g < json_array_size(groups); g++) {
        json_t *k = json_object_get(json_object_get(json_array_get(groups, g), "key"), "org_id");
        assert_string_not_equal(json_string_value(k), "SMALL");
    }
    /* explain names no count, run or group number: only the threshold and the quantities */
    char *x = json_dumps(json_object_get(a, "explain"), JSON_COMPACT);
    assert_null(strstr(x, "decrypted 2"));
    assert_null(strstr(x, "key stream over"));
    assert_non_null(strstr(x, "added discrete Laplace noise to 2 quantities"));
    free(x);
    /* The same query, keys in another order and without explain: the kept answer, free. */
    char *again = NULL;
    const char *body2 = "{\"epsilon\":1,\"metrics\":{\"t\":{\"sum\":\"amount\"},"
                        "\"n\":{\"count\":\"*\"}},\"group_by\":[\"org_id\"]}";
    assert_int_equal(agg_rc(f->analyst, body2, &again, &st), VEIL_OK);
    json_t *b = parse(again);
    assert_true(json_equal(json_object_get(a, "groups"), json_object_get(b, "groups")));
    assert_true(json_is_true(json_object_get(json_object_get(b, "privacy"), "cached")));
    assert_true(json_number_value(json_object_get(json_object_get(json_object_get(b, "privacy"),
                                                                  "spent"), "epsilon")) == 0.0);
    json_decref(b);
    veil_free(again);
    /* The budget is spent: a new query is refused until the next day. */
    char *o = NULL;
    assert_int_equal(agg_rc(f->analyst, "{\"metrics\":{\"n\":{\"count\":\"*\"}}}", &o, &st),
                     VEIL_ERR_PRIVACY_BUDGET);
    assert_null(o);
    assert_true(st.retry_after > 0 && st.retry_after <= 86400);
    assert_non_null(strstr(st.message, "is spent for this day"));
    assert_int_equal(veil_err_http_status(VEIL_ERR_PRIVACY_BUDGET), 429);
    assert_string_equal(veil_err_name(VEIL_ERR_PRIVACY_BUDGET), "privacy_budget_exhausted");
    /* a kept answer is still given */
    assert_int_equal(agg_rc(f->analyst, body, &o, &st), VEIL_OK);
    veil_free(o);
    /* bad requests cost nothing and say what is wrong */
    static const char *const bad[] = {
        "{\"metrics\":{},\"refresh\":1}",
        "{\"metrics\":{\"n\":{\"count\":\"*\"}},\"epsilon\":0}",
        "{\"metrics\":{\"n\":{\"count\":\"*\"}},\"epsilon\":1.5}",  /* over the budget */
        "{\"metrics\":{\"n\":{\"count\":\"*\"}},\"epsilon\":-1}",
        "{\"metrics\":{\"n\":{\"count\":\"*\"}},\"epsilon\":\"a\"}",
        "{\"metrics\":{\"n\":{\"count\":\"*\"}},\"epsilon\":0.0000001}",
        "{\"metrics\":{\"n\":{\"count\":\"*\"}},\"epsilon\":0.009}", /* below 0.01 */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(agg_rc(f->analyst, bad[i], &o, &st), VEIL_ERR_BAD_REQUEST);
    }
    assert_int_equal(agg_rc(f->admin, bad[1], &o, &st), VEIL_OK); /* exact: no epsilon */
    veil_free(o);
    /* the status: spent 1 of 1 for this token ("-": a library session) */
    assert_int_equal(veil_privacy_status(f->analyst, COLL, &o, &st), VEIL_OK);
    json_t *ps = parse(o);
    json_t *tok = json_object_get(json_object_get(ps, "budgets"), "token");
    assert_true(json_number_value(json_object_get(tok, "spent")) == 1.0);
    assert_int_equal(json_integer_value(json_object_get(tok, "answers")), 1);
    assert_string_equal(json_string_value(json_object_get(tok, "id")), "-");
    json_decref(ps);
    veil_free(o);
    assert_int_equal(veil_privacy_status(f->clerk, COLL, &o, &st), VEIL_ERR_FORBIDDEN);
    assert_int_equal(veil_privacy_reset(f->analyst, COLL, RESET_ANALYST, strlen(RESET_ANALYST), &o, &st),
                     VEIL_ERR_FORBIDDEN);
    assert_int_equal(veil_privacy_reset(f->admin, COLL, "{\"role\":\"clerk\"}", 16, &o, &st),
                     VEIL_ERR_BAD_REQUEST);
    assert_int_equal(veil_privacy_reset(f->admin, COLL, RESET_ANALYST, strlen(RESET_ANALYST), &o, &st),
                     VEIL_OK);
    veil_free(o);
    assert_int_equal(veil_privacy_status(f->admin, COLL, &o, &st), VEIL_OK);
    ps = parse(o);
    json_t *r0 = json_array_get(json_object_get(ps, "roles"), 0);
    assert_string_equal(json_string_value(json_object_get(r0, "role")), "analyst");
    assert_true(json_number_value(json_object_get(r0, "spent")) == 0.0);
    json_decref(ps);
    veil_free(o);
    /* refresh pays for a new answer, at the policy's epsilon (0.25) */
    const char *body3 = "{\"group_by\":[\"org_id\"],\"metrics\":{\"n\":{\"count\":\"*\"},"
                        "\"m\":{\"avg\":\"amount\"}},\"refresh\":true}";
    assert_int_equal(agg_rc(f->analyst, body3, &o, &st), VEIL_OK);
    b = parse(o);
    p = json_object_get(b, "privacy");
    assert_false(json_is_true(json_object_get(p, "cached")));
    assert_true(json_number_value(json_object_get(p, "epsilon")) == 0.25);
    /* an average is a number even when noise takes its count below one */
    groups = json_object_get(b, "groups");
    for (size_t g = 0; g < json_array_size(groups); g++) {
        assert_true(json_is_number(json_object_get(json_array_get(groups, g), "m")));
    }
    json_decref(b);
    veil_free(o);
    /* the admin's answers stay exact */
    assert_int_equal(agg_rc(f->admin, "{\"group_by\":[\"org_id\"],\"metrics\":{\"n\":{\"count\":\"*\"}}}",
                            &o, &st), VEIL_OK);
    b = parse(o);
    assert_null(json_object_get(b, "privacy"));
    assert_int_equal(json_integer_value(json_object_get(b, "suppressed")), 0);
    json_decref(b);
    veil_free(o);
    json_decref(a);
    veil_free(out);
}

/* The policy's bounds on amount ([-50000, 50000], reject) hold for every way in: a value
 * outside is refused naming the field and the bounds, never the value, and nothing is
 * written; the bounds themselves are fine. */
static void test_bounds_at_write(void **state)
{
    struct fx *f = *state;
    static const char *const outside[] = {"\"50000.01\"", "-50000.01", "1e9", "\"99999999999\""};
    for (size_t i = 0; i < sizeof(outside) / sizeof(outside[0]); i++) {
        char doc[128], *out = NULL;
        veil_status st;
        snprintf(doc, sizeof(doc), "{\"org_id\":\"B\",\"amount\":%s}", outside[i]);
        assert_int_equal(veil_doc_put(f->clerk, COLL, "oob", doc, strlen(doc), 0, &out, NULL, &st),
                         VEIL_ERR_INVALID_DOCUMENT);
        assert_string_equal(st.field, "amount");
        if (strstr(st.message, "[-50000.00, 50000.00]") == NULL) {
            fail_msg("%s: %s", outside[i], st.message);
        }
        assert_null(strstr(st.message, outside[i]));
        assert_int_equal(get_rc(f->clerk, "oob"), VEIL_ERR_NOT_FOUND);
    }
    put(f->clerk, "edge-hi", "{\"amount\":\"50000.00\"}", 1);
    put(f->clerk, "edge-lo", "{\"amount\":-50000}", 1);
    static const char in[] = "{\"id\":\"b1\",\"doc\":{\"amount\":\"50000.01\"}}\n"
                             "{\"id\":\"b2\",\"doc\":{\"amount\":\"12.50\"}}\n";
    char *out = NULL;
    veil_status st;
    assert_int_equal(veil_bulk(f->clerk, COLL, in, strlen(in), &out, &st), VEIL_OK);
    assert_non_null(strstr(out, "\"line\":1"));
    char *second = strchr(out, '\n');
    assert_non_null(second);
    *second = '\0';
    assert_non_null(strstr(out, "invalid_document"));
    assert_non_null(strstr(second + 1, "\"status\":201"));
    veil_free(out);
    assert_int_equal(get_rc(f->clerk, "b1"), VEIL_ERR_NOT_FOUND);
    assert_int_equal(get_rc(f->clerk, "b2"), VEIL_OK);
}

/* amount's bounds refuse other values, so its range tokens cover only -50000..50000 (24 bits,
 * six prefixes): every query bound, inside, on or beyond the bounds, finds exactly the
 * documents a plaintext comparison finds, in a query and in an aggregate's count. */
static void test_bounded_range(void **state)
{
    struct fx *f = *state;
    static const char *const amounts[] = {"-50000", "-49999.99", "-0.01", "0",
                                          "0.01",   "12.50",     "49999.99", "50000"};
    enum { N = sizeof(amounts) / sizeof(amounts[0]) };
    static const double value[N] = {-50000, -49999.99, -0.01, 0, 0.01, 12.5, 49999.99, 50000};
    for (size_t i = 0; i < N; i++) {
        char id[16], doc[96];
        snprintf(id, sizeof(id), "br-%zu", i);
        snprintf(doc, sizeof(doc), "{\"org_id\":\"BR\",\"amount\":\"%s\"}", amounts[i]);
        put(f->clerk, id, doc, 1);
    }
    static const struct {
        const char *op;
        const char *bound; /* JSON */
    } bounds[] = {
        {"gt", "\"60000\""},   {"gte", "\"60000\""},  {"lt", "\"60000\""},  {"lte", "\"60000\""},
        {"gt", "-60000"},      {"gte", "-60000"},     {"lt", "-60000"},     {"lte", "-60000"},
        {"gt", "\"50000\""},   {"gte", "\"50000\""},  {"lt", "\"50000\""},  {"lte", "\"50000\""},
        {"gt", "-50000"},      {"gte", "-50000"},     {"lt", "-50000"},     {"lte", "-50000"},
        {"gt", "\"50000.01\""}, {"lt", "\"-50000.01\""}, {"gte", "\"-0.01\""}, {"lt", "0"},
        {"lte", "\"0.01\""},   {"gt", "\"99999999999\""}, {"lt", "-99999999999"},      {"gte", "\"12.5\""},
    };
    enum { NB = sizeof(bounds) / sizeof(bounds[0]) };
    /* each bound alone, and every pair of a lower and an upper bound */
    for (size_t a = 0; a < NB; a++) {
        for (size_t b = a; b < NB; b++) {
            if (b != a && (bounds[a].op[0] == bounds[b].op[0])) {
                continue;
            }
            char where[160], body[256];
            if (b == a) {
                snprintf(where, sizeof(where), "{\"%s\":%s}", bounds[a].op, bounds[a].bound);
            } else {
                snprintf(where, sizeof(where), "{\"%s\":%s,\"%s\":%s}", bounds[a].op,
                         bounds[a].bound, bounds[b].op, bounds[b].bound);
            }
            size_t want = 0;
            for (size_t i = 0; i < N; i++) {
                bool hit = true;
                for (size_t k = 0; k < 2; k++) {
                    size_t j = k == 0 ? a : b;
                    const char *q = bounds[j].bound + (bounds[j].bound[0] == '"');
                    double x = strtod(q, NULL), v = value[i];
                    const char *op = bounds[j].op;
                    hit = hit && (strcmp(op, "gt") == 0    ? v > x
                                  : strcmp(op, "gte") == 0 ? v >= x
                                  : strcmp(op, "lt") == 0  ? v < x
                                                           : v <= x);
                }
                want += hit;
            }
            snprintf(body, sizeof(body),
                     "{\"where\":{\"org_id\":\"BR\",\"amount\":%s},\"limit\":100}", where);
            json_t *ans = query(f->admin, body);
            if (json_array_size(json_object_get(ans, "docs")) != want) {
                fail_msg("%s: %zu documents, want %zu", body,
                         json_array_size(json_object_get(ans, "docs")), want);
            }
            json_decref(ans);
            snprintf(body, sizeof(body),
                     "{\"where\":{\"org_id\":\"BR\",\"amount\":%s},"
                     "\"metrics\":{\"n\":{\"count\":\"*\"}}}", where);
            char *out = NULL;
            veil_status st;
            assert_int_equal(agg_rc(f->admin, body, &out, &st), VEIL_OK);
            char n[32];
            snprintf(n, sizeof(n), "\"n\":%zu}", want);
            if (strstr(out, n) == NULL) {
                fail_msg("%s: %s, want %zu", body, out, want);
            }
            veil_free(out);
        }
    }
}

static void test_avg_precision(void **state)
{
    struct fx *f = *state;
    /* amount has scale 2: averages have 4 decimals */
    static const struct {
        const char *org;
        const char *amounts[8];
        const char *want; /* the JSON text of the average */
    } cases[] = {
        {"A", {"1.00", "2.00", "2.00"}, "1.6667"},
        {"B", {"0.01", "0", "0", "0", "0", "0", "0", "0"}, "0.0012"}, /* 0.00125: to even */
        {"C", {"0.03", "0", "0", "0", "0", "0", "0", "0"}, "0.0038"}, /* 0.00375: to even */
        {"D", {"-0.01", "0", "0", "0", "0", "0", "0", "0"}, "-0.0012"},
        {"E", {"7706.25", "7706.27"}, "7706.26"},
        {"F", {"3", "5"}, "4.0"},
        {"G", {"49999.99", "49999.98"}, "49999.985"},          /* at the policy's bound */
        {"H", {"-50000", "-49999.99", "-49999.99"}, "-49999.9933"},
    };
    int n = 0;
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        for (size_t k = 0; k < 8 && cases[c].amounts[k] != NULL; k++) {
            char id[16], doc[160];
            snprintf(id, sizeof(id), "avg-%d", n++);
            snprintf(doc, sizeof(doc), "{\"org_id\":\"%s\",\"amount\":\"%s\"}", cases[c].org,
                     cases[c].amounts[k]);
            put(f->clerk, id, doc, 1);
        }
    }
    char *out = NULL;
    veil_status st;
    assert_int_equal(agg_rc(f->admin,
                            "{\"group_by\":[\"org_id\"],\"metrics\":{\"a\":{\"avg\":\"amount\"}},"
                            "\"explain\":true}",
                            &out, &st),
                     VEIL_OK);
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        char want[128];
        snprintf(want, sizeof(want), "{\"key\":{\"org_id\":\"%s\"},\"a\":%s}", cases[c].org,
                 cases[c].want);
        if (strstr(out, want) == NULL) {
            fprintf(stderr, "%s not in %s\n", want, out);
            fail();
        }
    }
    assert_non_null(strstr(out, "rounded half to even to 4 decimal places"));
    json_t *a = parse(out); /* and it is JSON */
    json_decref(a);
    veil_free(out);
}

/* ---- opening a vault ---- */

static void test_open_failures(void **state)
{
    struct fx *f = *state;
    veil_status st;
    veil_vault *v = NULL;
    char *missing = path_in(f->dir, "missing");
    assert_int_not_equal(veil_vault_open(missing, &v, &st), VEIL_OK);
    assert_null(v);
    assert_true(st.message[0] != '\0');
    /* init refuses to overwrite. */
    assert_int_equal(veil_init(f->data, NULL, &st), VEIL_ERR_CONFLICT);
    /* A key file others can read: refused. */
    char *key = path_in(f->data, "master.key");
    sessions_close(f);
    veil_vault_close(f->v);
    f->v = NULL;
    assert_int_equal(chmod(key, 0644), 0);
    assert_int_equal(veil_vault_open(f->data, &v, &st), VEIL_ERR_FORBIDDEN);
    assert_null(v);
    assert_int_equal(chmod(key, 0600), 0);
    /* A key file of the wrong size. */
    size_t klen = 0;
    char *kbytes = tu_read_file(key, &klen);
    assert_non_null(kbytes);
    FILE *kf = fopen(key, "ab");
    assert_non_null(kf);
    fputc('x', kf);
    fclose(kf);
    assert_int_not_equal(veil_vault_open(f->data, &v, &st), VEIL_OK);
    assert_null(v);
    /* Another root key: the tenant keys do not unwrap. */
    kf = fopen(key, "wb");
    assert_non_null(kf);
    for (size_t i = 0; i < klen; i++) {
        fputc(kbytes[i] ^ 0x5a, kf);
    }
    fclose(kf);
    if (veil_vault_open(f->data, &v, &st) == VEIL_OK) {
        veil_session *s = session(v, "acme", "admin");
        assert_int_equal(get_rc(s, "x"), VEIL_ERR_INTEGRITY);
        veil_session_free(s);
        veil_vault_close(v);
        v = NULL;
    }
    kf = fopen(key, "wb");
    assert_non_null(kf);
    assert_int_equal(fwrite(kbytes, 1, klen, kf), klen);
    fclose(kf);
    free(kbytes);
    assert_int_equal(veil_vault_open(f->data, &f->v, &st), VEIL_OK);
    sessions_open(f);
    free(key);
    free(missing);
}

static void test_passphrase(void **state)
{
    struct fx *f = *state;
    veil_status st;
    veil_vault *v = NULL;
    char *data = path_in(f->dir, "pdata");
    veil_init_options opt;
    memset(&opt, 0, sizeof(opt));
    opt.passphrase_env = PASS_ENV;
    unsetenv(PASS_ENV);
    assert_int_not_equal(veil_init(data, &opt, &st), VEIL_OK);
    tu_rmtree(data);
    setenv(PASS_ENV, "correct horse battery staple", 1);
    assert_int_equal(veil_init(data, &opt, &st), VEIL_OK);
    /* The key file holds no bare 32-byte key. */
    char *key = path_in(data, "master.key");
    struct stat sb;
    assert_int_equal(stat(key, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_true(sb.st_size > 32);
    assert_int_equal(veil_vault_open(data, &v, &st), VEIL_OK);
    assert_int_equal(veil_tenant_create(v, "p", &st), VEIL_OK);
    veil_session *s = session(v, "p", "admin");
    apply_policy(s, 1);
    put(s, "inv-1", DOC1, 1);
    veil_session_free(s);
    veil_vault_close(v);
    v = NULL;
    /* Wrong passphrase, missing passphrase, empty passphrase. */
    setenv(PASS_ENV, "correct horse battery stapler", 1);
    assert_int_equal(veil_vault_open(data, &v, &st), VEIL_ERR_UNAUTHENTICATED);
    assert_null(v);
    assert_null(strstr(st.message, "stapler"));
    unsetenv(PASS_ENV);
    assert_int_not_equal(veil_vault_open(data, &v, &st), VEIL_OK);
    assert_null(v);
    setenv(PASS_ENV, "", 1);
    assert_int_not_equal(veil_vault_open(data, &v, &st), VEIL_OK);
    assert_null(v);
    /* The right one again: the data reads back. */
    setenv(PASS_ENV, "correct horse battery staple", 1);
    assert_int_equal(veil_vault_open(data, &v, &st), VEIL_OK);
    s = session(v, "p", "clerk");
    assert_reads(s, "inv-1", DOC1, 1);
    veil_session_free(s);
    veil_vault_close(v);
    unsetenv(PASS_ENV);
    free(key);
    free(data);
}

static void test_health_and_limits(void **state)
{
    struct fx *f = *state;
    char *out = NULL;
    assert_int_equal(veil_health(f->v, &out), VEIL_OK);
    json_t *h = parse(out);
    veil_free(out);
    assert_string_equal(json_string_value(json_object_get(h, "status")), "ok");
    assert_string_equal(json_string_value(json_object_get(json_object_get(h, "stores"), "cloud")),
                        "ok");
    json_decref(h);
    veil_limits lim;
    veil_vault_limits(f->v, &lim);
    assert_int_equal(lim.max_body, 16u << 20);
    assert_int_equal(lim.max_depth, 32);
    assert_int_equal(lim.max_fields, 1024);
    assert_string_equal(veil_vault_listen(f->v), "127.0.0.1:8470");
}


/* ---- a trusted state behind its stores ---- */

static void file_copy(const char *from, const char *to)
{
    size_t n = 0;
    char *b = tu_read_file(from, &n);
    assert_non_null(b);
    FILE *out = fopen(to, "wb");
    assert_non_null(out);
    assert_int_equal(fwrite(b, 1, n, out), n);
    assert_int_equal(fclose(out), 0);
    free(b);
}

static void vault_close(struct fx *f)
{
    sessions_close(f);
    veil_vault_close(f->v);
    f->v = NULL;
}

/* trusted.db copied aside, more written, the copy put back: the vault refuses to open
 * (and says what to do) until the loss is accepted; then documents the trusted state
 * never heard of are absent, one changed since is forgotten, and the rest reads back. A
 * rollback mark a store altered refuses the open too, until accept-rollback rewrites it. */
static void test_rollback_detected(void **state)
{
    struct fx *f = *state;
    veil_status st;
    char *report = NULL;
    put(f->clerk, "inv-1", DOC1, 1);
    put(f->clerk, "inv-2", DOC2, 1);
    vault_close(f);
    /* Nothing behind, no rollback ever: nothing to accept. */
    assert_int_equal(veil_trusted_accept_rollback(f->data, &report, &st), VEIL_ERR_CONFLICT);
    char *db = path_in(f->data, "trusted.db"), *saved = path_in(f->dir, "saved.db");
    file_copy(db, saved);

    assert_int_equal(veil_vault_open(f->data, &f->v, &st), VEIL_OK);
    sessions_open(f);
    put(f->clerk, "inv-3", DOC2, 1);
    put(f->clerk, "inv-1", DOC2, 0);
    vault_close(f);
    file_copy(saved, db);

    assert_int_equal(veil_vault_open(f->data, &f->v, &st), VEIL_ERR_CONFLICT);
    assert_null(f->v);
    assert_non_null(strstr(st.message, "backup"));
    assert_non_null(strstr(st.message, "accept-rollback"));
    assert_int_equal(veil_trusted_accept_rollback(f->data, &report, &st), VEIL_OK);
    json_t *r = parse(report);
    json_t *c = json_array_get(json_object_get(r, "collections"), 0);
    assert_int_equal(json_integer_value(json_object_get(c, "rows_removed")), 1);
    assert_int_equal(json_integer_value(json_object_get(c, "documents_lost")), 1);
    assert_true(json_is_true(json_object_get(r, "accepted")));
    json_decref(r);
    veil_free(report);
    /* Again: the settling is done again, and finds nothing left. */
    assert_int_equal(veil_trusted_accept_rollback(f->data, &report, &st), VEIL_OK);
    r = parse(report);
    c = json_array_get(json_object_get(r, "collections"), 0);
    assert_true(json_is_false(json_object_get(r, "accepted")));
    assert_int_equal(json_integer_value(json_object_get(c, "rows_removed")), 0);
    assert_int_equal(json_integer_value(json_object_get(c, "documents_lost")), 0);
    json_decref(r);
    veil_free(report);

    assert_int_equal(veil_vault_open(f->data, &f->v, &st), VEIL_OK);
    sessions_open(f);
    assert_int_equal(get_rc(f->clerk, "inv-3"), VEIL_ERR_NOT_FOUND);
    assert_int_equal(get_rc(f->clerk, "inv-1"), VEIL_ERR_NOT_FOUND);
    json_t *a = get(f->clerk, "inv-2");
    assert_json_text(json_object_get(a, "doc"), DOC2);
    json_decref(a);
    put(f->clerk, "inv-3", DOC1, 1);
    vault_close(f);

    /* A store alters a mark: a breach, not a rollback. */
    char *cloud = path_in(f->data, "cloud/cloud.db");
    sqlite3 *cdb = NULL;
    assert_int_equal(sqlite3_open(cloud, &cdb), SQLITE_OK);
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_prepare_v2(cdb, "SELECT name FROM sqlite_master WHERE type='table' "
                                              "AND name LIKE 'k!_%' ESCAPE '!'", -1, &q, NULL),
                     SQLITE_OK);
    int altered = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        char sql[256];
        snprintf(sql, sizeof(sql), "UPDATE \"%s\" SET val = CAST(substr(val, 1, 30) || "
                 "x'ff' || substr(val, 32) AS BLOB) WHERE length(val) = %d",
                 sqlite3_column_text(q, 0), VL_MARK_VALUE_BYTES);
        assert_int_equal(sqlite3_exec(cdb, sql, NULL, NULL, NULL), SQLITE_OK);
        altered += sqlite3_changes(cdb);
    }
    sqlite3_finalize(q);
    sqlite3_close(cdb);
    assert_true(altered > 0);
    assert_int_equal(veil_vault_open(f->data, &f->v, &st), VEIL_ERR_INTEGRITY);
    assert_int_equal(veil_trusted_accept_rollback(f->data, &report, &st), VEIL_OK);
    veil_free(report);
    assert_int_equal(veil_vault_open(f->data, &f->v, &st), VEIL_OK);
    sessions_open(f);
    a = get(f->clerk, "inv-3");
    assert_json_text(json_object_get(a, "doc"), DOC1);
    json_decref(a);
    free(cloud);
    free(db);
    free(saved);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_put_get_exact),
        T(test_generated_id),
        T(test_replace_and_if_match),
        T(test_delete),
        T(test_bad_ids_and_bodies),
        T(test_invalid_documents_name_field),
        T(test_query_eq_in_select),
        T(test_query_errors),
        T(test_query_paging),
        T(test_bulk),
        T(test_roles),
        T(test_collection_apply),
        T(test_tenant_isolation),
        T(test_tenant_shred),
        T(test_tokens),
        T(test_recovery_before_store_write),
        T(test_recovery_after_store_write),
        T(test_recovery_delete),
        T(test_recovery_delete_applied),
        T(test_integrity_bit_flip),
        T(test_integrity_swap),
        T(test_integrity_rollback),
        T(test_integrity_seq),
        T(test_integrity_dropped_row),
        T(test_integrity_wrong_query_answer),
        T(test_cursor_binding),
        T(test_lying_members),
        T(test_lying_groups),
        T(test_lying_answers),
        T(test_malformed_store_data),
        T(test_search_paging_bulk),
        T(test_avg_precision),
        T(test_bounds_at_write),
        T(test_bounded_range),
        T(test_dp_answers),
        T(test_open_failures),
        T(test_passphrase),
        T(test_health_and_limits),
        T(test_rollback_detected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
