/*
 * test_policy.c: policy parsing: the README's example, YAML and JSON forms,
 * canonical text, descriptions and leakage statements, one test per error rule (code, line
 * and name in the message), and hostile input that must give an error, never a crash.
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

static const char *const stores[] = {"cloud", "eu"};
#define NSTORES 2

static const char spec_yaml[] =
    "collection: invoices\n"
    "fields:\n"
    "  invoice_no:    { type: string,  protect: [eq] }\n"
    "  org_id:        { type: string,  protect: [eq] }\n"
    "  status:        { type: string,  protect: [eq] }\n"
    "  issued_on:     { type: date,    protect: [range] }\n"
    "  amount:        { type: decimal, scale: 2, protect: [sum, range], bounds: [-50000, 50000] }\n"
    "  customer.name: { type: string,  protect: [search], language: dutch }\n"
    "  customer.iban: { type: string,  mask: last4 }\n"
    "  notes:         { type: text,    protect: [search] }\n"
    "  internal_ref:  { type: string,  store: trusted }\n"
    "roles:\n"
    "  clerk:   { read: [\"*\"], write: true }\n"
    "  auditor: { read: [invoice_no, status, amount], masked: [customer.iban] }\n"
    "  analyst: { aggregate: [amount], group_by: [org_id, status], min_group_size: 5 }\n";

static const char spec_json[] =
    "{\"collection\": \"invoices\",\n"
    " \"fields\": {\n"
    "  \"invoice_no\": {\"type\": \"string\", \"protect\": [\"eq\"]},\n"
    "  \"org_id\": {\"type\": \"string\", \"protect\": [\"eq\"]},\n"
    "  \"status\": {\"type\": \"string\", \"protect\": [\"eq\"]},\n"
    "  \"issued_on\": {\"type\": \"date\", \"protect\": [\"range\"]},\n"
    "  \"amount\": {\"type\": \"decimal\", \"scale\": 2, \"protect\": [\"range\", \"sum\"],\n"
    "              \"bounds\": [-50000, \"50000.00\"], \"out_of_bounds\": \"reject\"},\n"
    "  \"customer.name\": {\"type\": \"string\", \"protect\": [\"search\"], "
    "\"language\": \"dutch\"},\n"
    "  \"customer.iban\": {\"type\": \"string\", \"mask\": \"last4\"},\n"
    "  \"notes\": {\"type\": \"text\", \"protect\": [\"aead\", \"search\"], "
    "\"language\": \"english\"},\n"
    "  \"internal_ref\": {\"type\": \"string\", \"store\": \"trusted\", \"plain\": false}\n"
    " },\n"
    " \"roles\": {\n"
    "  \"analyst\": {\"group_by\": [\"status\", \"org_id\"], \"aggregate\": [\"amount\"],\n"
    "              \"min_group_size\": 5, \"write\": false},\n"
    "  \"auditor\": {\"read\": [\"status\", \"invoice_no\", \"amount\"],\n"
    "              \"masked\": [\"customer.iban\"]},\n"
    "  \"clerk\": {\"read\": [\"*\"], \"write\": true}\n"
    " }}\n";

static struct vl_policy *parse_ok(const char *text)
{
    struct vl_policy *p = NULL;
    veil_status st;
    vl_status_clear(&st);
    veil_err rc = vl_policy_parse(text, strlen(text), stores, NSTORES, &p, &st);
    if (rc != VEIL_OK) {
        fail_msg("unexpected error %d: %s", rc, st.message);
    }
    assert_non_null(p);
    return p;
}

/* Parses text expecting `code`, a message starting "line N:" and containing `needle`. */
static void expect_code(const char *text, size_t len, veil_err code, int line,
                        const char *needle)
{
    struct vl_policy *p = (struct vl_policy *)(uintptr_t)1;
    veil_status st;
    char prefix[32];
    vl_status_clear(&st);
    veil_err rc = vl_policy_parse(text, len, stores, NSTORES, &p, &st);
    if (rc != code) {
        fail_msg("expected code %d, got %d (%s) for:\n%s", code, rc, st.message, text);
    }
    assert_int_equal(st.code, code);
    assert_ptr_equal(p, (struct vl_policy *)(uintptr_t)1); /* untouched on failure */
    snprintf(prefix, sizeof(prefix), "line %d: ", line);
    if (strncmp(st.message, prefix, strlen(prefix)) != 0 || strstr(st.message, needle) == NULL) {
        fail_msg("message \"%s\" lacks \"%s\" or \"%s\"", st.message, prefix, needle);
    }
}

static void expect_err(const char *text, int line, const char *needle)
{
    expect_code(text, strlen(text), VEIL_ERR_INVALID_POLICY, line, needle);
}

/* ---- the README's example ---- */

static void test_spec_example(void **state)
{
    (void)state;
    struct vl_policy *p = parse_ok(spec_yaml);
    const struct vl_field *f;
    const struct vl_role *r;

    assert_string_equal(p->collection, "invoices");
    assert_int_equal(p->nfields, 9);
    assert_int_equal(p->nroles, 3);

    f = vl_policy_field(p, "invoice_no");
    assert_non_null(f);
    assert_int_equal(f->type, VL_T_STRING);
    assert_int_equal(f->tactics, VL_TAC_EQ);
    assert_int_equal(f->line, 3);
    f = vl_policy_field(p, "issued_on");
    assert_int_equal(f->type, VL_T_DATE);
    assert_int_equal(f->tactics, VL_TAC_RANGE);
    f = vl_policy_field(p, "amount");
    assert_int_equal(f->type, VL_T_DECIMAL);
    assert_int_equal(f->scale, 2);
    assert_int_equal(f->tactics, VL_TAC_SUM | VL_TAC_RANGE);
    assert_int_equal(f->sum_scheme, VL_SUM_ASHE);
    assert_int_equal(f->sum_bits, 2048);
    assert_null(f->store);
    f = vl_policy_field(p, "customer.name");
    assert_int_equal(f->nparts, 2);
    assert_string_equal(f->parts[0], "customer");
    assert_string_equal(f->parts[1], "name");
    assert_string_equal(f->language, "dutch");
    assert_int_equal(f->tactics, VL_TAC_SEARCH);
    f = vl_policy_field(p, "customer.iban");
    assert_int_equal(f->mask, VL_MASK_LAST4);
    assert_int_equal(f->tactics, 0);
    assert_false(f->plain);
    f = vl_policy_field(p, "notes");
    assert_int_equal(f->type, VL_T_TEXT);
    assert_string_equal(f->language, "english");
    f = vl_policy_field(p, "internal_ref");
    assert_true(f->trusted);
    assert_string_equal(f->store, "trusted");
    assert_null(vl_policy_field(p, "customer"));

    r = vl_policy_role(p, "clerk");
    assert_non_null(r);
    assert_true(r->read_all);
    assert_true(r->write);
    assert_true(vl_role_reads(r, "amount"));
    assert_true(vl_role_reads(r, "not_declared"));
    assert_false(vl_role_masks(r, "amount"));

    r = vl_policy_role(p, "auditor");
    assert_false(r->read_all);
    assert_false(r->write);
    assert_int_equal(r->nread, 3);
    assert_true(vl_role_reads(r, "status"));
    assert_false(vl_role_reads(r, "notes"));
    assert_false(vl_role_reads(r, "customer.iban"));
    assert_true(vl_role_masks(r, "customer.iban"));
    assert_false(vl_role_masks(r, "notes"));

    r = vl_policy_role(p, "analyst");
    assert_int_equal(r->naggregate, 1);
    assert_string_equal(r->aggregate[0], "amount");
    assert_int_equal(r->ngroup_by, 2);
    assert_int_equal(r->min_group_size, 5);
    assert_false(vl_role_reads(r, "amount"));
    assert_false(vl_role_reads(NULL, "amount"));
    assert_null(vl_policy_role(p, "admin"));

    vl_policy_free(p);
    vl_policy_free(NULL);
}

static void test_describe(void **state)
{
    (void)state;
    struct vl_policy *p = parse_ok(spec_yaml);
    json_t *d = vl_policy_describe(p);
    json_t *fields = json_object_get(d, "fields");
    json_t *amount = json_object_get(fields, "amount");
    json_t *iban = json_object_get(fields, "customer.iban");
    json_t *ref = json_object_get(fields, "internal_ref");
    json_t *name = json_object_get(fields, "customer.name");
    const char *leak;

    assert_string_equal(json_string_value(json_object_get(d, "collection")), "invoices");
    assert_int_equal(json_object_size(fields), 9);
    assert_string_equal(json_string_value(json_object_get(amount, "type")), "decimal");
    assert_int_equal(json_integer_value(json_object_get(amount, "scale")), 2);
    assert_int_equal(json_array_size(json_object_get(amount, "protect")), 2);
    assert_string_equal(json_string_value(json_array_get(json_object_get(amount, "protect"), 0)),
                        "range");
    assert_string_equal(json_string_value(json_object_get(amount, "store")), "default");
    assert_null(json_object_get(amount, "plain"));
    leak = json_string_value(json_object_get(amount, "leakage"));
    assert_non_null(leak);
    assert_non_null(strstr(leak, "XChaCha20-Poly1305"));
    assert_non_null(strstr(leak, "padding bucket"));
    assert_non_null(strstr(leak, "roughly their order"));
    assert_non_null(strstr(leak, "nothing about the values"));
    assert_null(strstr(leak, "equality pattern"));

    assert_string_equal(json_string_value(json_object_get(iban, "mask")), "last4");
    leak = json_string_value(json_object_get(iban, "leakage"));
    assert_string_equal(leak, "Stored encrypted (XChaCha20-Poly1305). The store learns its "
                              "length, rounded up to a padding bucket.");

    leak = json_string_value(json_object_get(ref, "leakage"));
    assert_non_null(strstr(leak, "never leaves the trusted domain"));
    assert_string_equal(json_string_value(json_object_get(ref, "store")), "trusted");

    assert_string_equal(json_string_value(json_object_get(name, "language")), "dutch");
    leak = json_string_value(json_object_get(name, "leakage"));
    assert_non_null(strstr(leak, "one search index entry per distinct word of each write"));
    assert_non_null(strstr(leak, "which entries it reads"));
    assert_non_null(strstr(leak, "cannot be linked to it"));
    assert_non_null(strstr(leak, "does not learn which words a replaced or deleted document"));

    leak = vl_field_leakage(vl_policy_field(p, "org_id"));
    assert_string_equal(leak, "Stored encrypted (XChaCha20-Poly1305). The store learns its "
                              "length, rounded up to a padding bucket; which documents share "
                              "a value (equality pattern).");

    json_t *roles = json_object_get(d, "roles");
    json_t *auditor = json_object_get(roles, "auditor");
    assert_int_equal(json_object_size(roles), 3);
    assert_int_equal(json_array_size(json_object_get(auditor, "read")), 3);
    assert_string_equal(json_string_value(json_array_get(json_object_get(auditor, "masked"), 0)),
                        "customer.iban");
    json_decref(d);

    d = vl_policy_describe_stores(p, "cloud");
    amount = json_object_get(json_object_get(d, "fields"), "amount");
    assert_string_equal(json_string_value(json_object_get(amount, "store")), "cloud");
    json_decref(d);
    vl_policy_free(p);
}

static void test_leakage_plain(void **state)
{
    (void)state;
    struct vl_policy *p = parse_ok("collection: c\n"
                                   "fields:\n"
                                   "  country: { type: string, plain: true }\n"
                                   "  total: { type: integer, protect: [eq, range, sum] }\n");
    const struct vl_field *f = vl_policy_field(p, "country");
    assert_true(f->plain);
    assert_non_null(strstr(vl_field_leakage(f), "the value itself"));
    json_t *d = vl_policy_describe(p);
    json_t *c = json_object_get(json_object_get(d, "fields"), "country");
    assert_true(json_is_true(json_object_get(c, "plain")));
    json_decref(d);
    const char *leak = vl_field_leakage(vl_policy_field(p, "total"));
    assert_non_null(strstr(leak, "equality pattern"));
    assert_non_null(strstr(leak, "leading hexadecimal digits"));
    assert_non_null(strstr(leak, "nothing about the values"));
    vl_policy_free(p);
}

/* ---- canonical text ---- */

static void test_yaml_json_same(void **state)
{
    (void)state;
    struct vl_policy *a = parse_ok(spec_yaml), *b = parse_ok(spec_json);
    char *ca = vl_policy_canonical(a), *cb = vl_policy_canonical(b);
    assert_non_null(ca);
    assert_string_equal(ca, cb);

    /* Block YAML, keys in another order, defaults written out. */
    struct vl_policy *c = parse_ok("roles:\n"
                                   "  analyst:\n"
                                   "    min_group_size: 5\n"
                                   "    privacy: {period: day, epsilon: 0.250, delta: 0.000001, "
                                   "budget: 1, role_budget: 2}\n"
                                   "    group_by:\n"
                                   "      - status\n"
                                   "      - org_id\n"
                                   "    aggregate: [amount]\n"
                                   "  auditor:\n"
                                   "    masked: [customer.iban]\n"
                                   "    read: [amount, invoice_no, status]\n"
                                   "    write: false\n"
                                   "  clerk: {write: true, read: ['*']}\n"
                                   "fields:\n"
                                   "  notes: {type: text, protect: [search], language: english}\n"
                                   "  internal_ref: {type: string, store: trusted}\n"
                                   "  customer.iban: {mask: last4, type: string, protect: []}\n"
                                   "  customer.name:\n"
                                   "    type: string\n"
                                   "    protect: [search]\n"
                                   "    language: dutch\n"
                                   "  amount:\n"
                                   "    type: decimal\n"
                                   "    scale: 2\n"
                                   "    protect: [range, sum, aead]\n"
                                   "    sum: {scheme: ashe}\n"
                                   "    bounds:\n"
                                   "      - -50000.0\n"
                                   "      - 50000\n"
                                   "  issued_on: {type: date, protect: [range]}\n"
                                   "  status: {type: string, protect: [eq]}\n"
                                   "  org_id: {type: string, protect: [eq]}\n"
                                   "  invoice_no: {type: string, protect: [eq]}\n"
                                   "collection: invoices\n");
    char *cc = vl_policy_canonical(c);
    assert_string_equal(ca, cc);
    free(ca);
    free(cb);
    free(cc);
    vl_policy_free(a);
    vl_policy_free(b);
    vl_policy_free(c);
}

static void test_canonical_golden(void **state)
{
    (void)state;
    struct vl_policy *p = parse_ok("collection: c\n"
                                   "fields:\n"
                                   "  n: {type: integer, protect: [sum, eq]}\n"
                                   "  p: {type: decimal, scale: 3, protect: [sum], "
                                   "sum: {scheme: paillier, bits: 3072}}\n"
                                   "  t: {type: text, protect: [search], store: eu}\n"
                                   "roles:\n"
                                   "  r: {read: [t, n], write: true}\n");
    char *c = vl_policy_canonical(p);
    assert_string_equal(
        c, "{\"collection\":\"c\",\"fields\":{"
           "\"n\":{\"plain\":false,\"protect\":[\"eq\",\"sum\"],\"sum\":{\"scheme\":\"ashe\"},"
           "\"type\":\"integer\"},"
           "\"p\":{\"plain\":false,\"protect\":[\"sum\"],\"scale\":3,"
           "\"sum\":{\"bits\":3072,\"scheme\":\"paillier\"},\"type\":\"decimal\"},"
           "\"t\":{\"language\":\"english\",\"plain\":false,\"protect\":[\"search\"],"
           "\"store\":\"eu\",\"type\":\"text\"}},"
           "\"roles\":{\"r\":{\"aggregate\":[],\"group_by\":[],\"masked\":[],"
           "\"min_group_size\":0,\"read\":[\"n\",\"t\"],\"write\":true}}}");
    free(c);
    vl_policy_free(p);
}

static void roundtrip(const char *text)
{
    struct vl_policy *a = parse_ok(text);
    char *ca = vl_policy_canonical(a);
    struct vl_policy *b = parse_ok(ca);
    char *cb = vl_policy_canonical(b);
    assert_string_equal(ca, cb);
    free(ca);
    free(cb);
    vl_policy_free(a);
    vl_policy_free(b);
}

static void test_canonical_roundtrip(void **state)
{
    (void)state;
    roundtrip(spec_yaml);
    roundtrip("collection: c\n"
              "fields:\n"
              "  a: {type: string, plain: true, mask: first1}\n"
              "  b: {type: json}\n"
              "  c: {type: boolean, protect: [eq]}\n"
              "  d: {type: datetime, protect: [eq, range], store: eu}\n"
              "  e: {type: decimal, scale: 0, protect: [sum], sum: {scheme: paillier}}\n"
              "  f: {type: string, mask: hash}\n"
              "roles:\n"
              "  all: {read: ['*'], masked: [f], write: true}\n"
              "  none: {}\n");
    roundtrip("collection: only-name\n");

    char *ex = tu_read_file("examples/invoices.yaml", NULL);
    if (ex != NULL) {
        roundtrip(ex);
        free(ex);
    }
}

static void test_examples(void **state)
{
    (void)state;
    const char *const cloud[] = {"cloud"};
    const char *names[] = {"examples/invoices.yaml", "examples/patients.yaml"};
    for (size_t i = 0; i < 2; i++) {
        size_t len;
        char *text = tu_read_file(names[i], &len);
        struct vl_policy *p = NULL;
        veil_status st;
        assert_non_null(text);
        if (vl_policy_parse(text, len, cloud, 1, &p, &st) != VEIL_OK) {
            fail_msg("%s: %s", names[i], st.message);
        }
        if (i == 0) {
            struct vl_policy *q = parse_ok(spec_yaml);
            char *a = vl_policy_canonical(p), *b = vl_policy_canonical(q);
            assert_string_equal(a, b);
            free(a);
            free(b);
            vl_policy_free(q);
        } else {
            const struct vl_role *r = vl_policy_role(p, "researcher");
            assert_non_null(r);
            assert_false(r->read_all);
            assert_int_equal(r->nread, 0);
            assert_int_equal(r->min_group_size, 5);
            assert_true(vl_policy_field(p, "bmi")->tactics & VL_TAC_SUM);
            assert_true(vl_policy_field(p, "city")->tactics & VL_TAC_EQ);
        }
        vl_policy_free(p);
        free(text);
    }
}

static void test_accepts(void **state)
{
    (void)state;
    struct vl_policy *p = parse_ok("collection: A_b-9\n"
                                   "fields:\n"
                                   "  id: {type: string, protect: [eq]}\n"
                                   "  a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p: "
                                   "{type: json, protect: [aead]}\n"
                                   "  x-y_z: {type: string, protect: [eq, search], "
                                   "language: none}\n"
                                   "  cust.name: {type: string}\n"
                                   "  cust.names: {type: string}\n"
                                   "  s: {type: integer, protect: [sum], sum: {scheme: paillier, "
                                   "bits: 4096}}\n"
                                   "  j: {type: json, plain: true}\n"
                                   "  k: {type: string, plain: true, protect: []}\n"
                                   "roles:\n"
                                   "  r1: {read: [], masked: [], aggregate: [], group_by: [], "
                                   "min_group_size: 1000000, write: false}\n"
                                   "  R-2_x: {min_group_size: 0}\n");
    assert_int_equal(vl_policy_field(p, "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p")->nparts, 16);
    assert_int_equal(vl_policy_field(p, "s")->sum_bits, 4096);
    assert_int_equal(vl_policy_field(p, "s")->sum_scheme, VL_SUM_PAILLIER);
    assert_string_equal(vl_policy_field(p, "x-y_z")->language, "none");
    assert_int_equal(vl_policy_role(p, "r1")->min_group_size, 1000000);
    assert_string_equal(vl_type_name(VL_T_DATETIME), "datetime");
    assert_string_equal(vl_mask_name(VL_MASK_FIRST1), "first1");
    vl_policy_free(p);

    /* With read: ["*"], a masked field is shown masked, not in clear. */
    p = parse_ok("collection: c\n"
                 "fields:\n"
                 "  a: {type: string}\n"
                 "  b: {type: string, mask: first1}\n"
                 "roles:\n"
                 "  r: {read: ['*'], masked: [b]}\n");
    assert_true(vl_role_reads(vl_policy_role(p, "r"), "a"));
    assert_false(vl_role_reads(vl_policy_role(p, "r"), "b"));
    assert_true(vl_role_masks(vl_policy_role(p, "r"), "b"));
    vl_policy_free(p);

    /* No fields and no roles; a store named in the list. */
    p = parse_ok("collection: c\nfields: {a: {type: string, store: cloud}}\n");
    assert_string_equal(vl_policy_field(p, "a")->store, "cloud");
    assert_false(vl_policy_field(p, "a")->trusted);
    vl_policy_free(p);
}

/* ---- every error rule ---- */

struct err_case {
    const char *text;
    int line;
    const char *needle;
};

#define HDR "collection: c\nfields:\n" /* fields start on line 3 */

static const struct err_case error_cases[] = {
    /* top level */
    {"fields: {}\n", 1, "collection"},
    {"collection: -abc\n", 1, "collection must be"},
    {"collection: a b\n", 1, "collection must be"},
    {"collection: [a]\n", 1, "collection must be"},
    {"collection: \"\"\n", 1, "collection must be"},
    {"collection: c\ncolection: d\n", 2, "unknown key 'colection'"},
    {"collection: c\nfields: [a]\n", 2, "fields must be a mapping"},
    {"collection: c\nroles: x\n", 2, "roles must be a mapping"},
    {"- collection\n", 1, "a policy is a mapping"},
    {"just text\n", 1, "a policy is a mapping"},
    {"", 1, "the policy is empty"},
    {"# nothing but a comment\n", 1, "the policy is empty"},
    {"---\n", 1, "the policy is empty"},
    /* field paths */
    {HDR "  a/b: {type: string}\n", 3, "field a/b: path parts use only"},
    {HDR "  a..b: {type: string}\n", 3, "field a..b: each dot-separated part"},
    {HDR "  .a: {type: string}\n", 3, "field .a: each dot-separated part"},
    {HDR "  a.: {type: string}\n", 3, "field a.: each dot-separated part"},
    {HDR "  \"\": {type: string}\n", 3, "a path is 1 to"},
    {HDR "  x.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa: {type: string}\n",
     3, "each dot-separated part is 1 to 64"},
    {HDR "  a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q: {type: string}\n", 3, "at most 16 parts"},
    {HDR "  é: {type: string}\n", 3, "path parts use only"},
    {HDR "  customer: {type: json}\n  x: {type: string}\n  customer.name: {type: string}\n", 5,
     "field customer.name: 'customer' is declared as a field too"},
    {HDR "  a.b.c: {type: string}\n  a.b: {type: string}\n", 3,
     "field a.b.c: 'a.b' is declared"},
    {HDR "  a: [string]\n", 3, "field a: a field is a mapping"},
    {HDR "  a: string\n", 3, "field a: a field is a mapping"},
    /* field keys */
    {HDR "  a: {type: string, protec: [eq]}\n", 3, "field a: unknown key 'protec'"},
    {HDR "  a:\n    type: string\n    masks: last4\n", 5, "field a: unknown key 'masks'"},
    {HDR "  a: {protect: [eq]}\n", 3, "field a: type is required"},
    {HDR "  a: {type: strin}\n", 3, "field a: type must be"},
    {HDR "  a: {type: [string]}\n", 3, "field a: type must be"},
    {HDR "  a: {type: string, scale: 2}\n", 3, "field a: scale applies only to type decimal"},
    {HDR "  a: {type: decimal}\n", 3, "field a: a decimal needs scale"},
    {HDR "  a: {type: decimal, scale: 19}\n", 3, "field a: scale must be an integer from 0"},
    {HDR "  a: {type: decimal, scale: -1}\n", 3, "field a: scale must be"},
    {HDR "  a: {type: decimal, scale: \"2\"}\n", 3, "field a: scale must be"},
    {HDR "  a: {type: decimal, scale: 2.5}\n", 3, "field a: scale must be"},
    {HDR "  a: {type: string, protect: [eqq]}\n", 3, "field a: protect: unknown tactic 'eqq'"},
    {HDR "  a: {type: string, protect: [eq, eq]}\n", 3, "field a: protect: 'eq' is listed twice"},
    {HDR "  a: {type: string, protect: [aead, aead]}\n", 3, "'aead' is listed twice"},
    {HDR "  a: {type: string, protect: eq}\n", 3, "field a: protect must be a list"},
    {HDR "  a: {type: string, protect: [[eq]]}\n", 3, "field a: protect: unknown tactic"},
    {HDR "  a: {type: string, plain: true, protect: [eq]}\n", 3,
     "field a: plain fields are stored in clear and need no protect"},
    {HDR "  a: {type: string, protect: [aead], plain: true}\n", 3, "need no protect"},
    {HDR "  a: {type: string, plain: yes}\n", 3, "field a: plain must be true or false"},
    {HDR "  a: {type: string, plain: \"true\"}\n", 3, "field a: plain must be true or false"},
    {HDR "  a: {type: string, mask: last5}\n", 3, "field a: mask must be"},
    {HDR "  a: {type: string, mask: none}\n", 3, "field a: mask must be"},
    {HDR "  a: {type: string, store: s3}\n", 3, "field a: store 's3' is not a store"},
    {HDR "  a: {type: string, store: [cloud]}\n", 3, "field a: store must be a store name"},
    {HDR "  a: {type: string, store: trusted, protect: [eq]}\n", 3,
     "field a: a field kept in trusted state cannot be indexed in an untrusted store"},
    {HDR "  a: {type: string, language: dutch}\n", 3,
     "field a: language applies only with protect: [search]"},
    {HDR "  a: {type: string, protect: [search], language: klingon}\n", 3,
     "field a: language must be"},
    {HDR "  a: {type: integer, protect: [eq], sum: {scheme: ashe}}\n", 3,
     "field a: sum applies only with protect: [sum]"},
    {HDR "  a: {type: integer, protect: [sum], sum: {scheme: rsa}}\n", 3,
     "field a: sum.scheme must be ashe or paillier"},
    {HDR "  a: {type: integer, protect: [sum], sum: {scheme: paillier, bits: 1024}}\n", 3,
     "field a: sum.bits must be"},
    {HDR "  a: {type: integer, protect: [sum], sum: {scheme: paillier, bits: 2500}}\n", 3,
     "field a: sum.bits must be"},
    {HDR "  a: {type: integer, protect: [sum], sum: {scheme: paillier, bits: 5120}}\n", 3,
     "field a: sum.bits must be"},
    {HDR "  a: {type: integer, protect: [sum], sum: {bits: 3072}}\n", 3,
     "field a: sum.bits applies only to scheme paillier"},
    {HDR "  a: {type: integer, protect: [sum], sum: {scheme: paillier, size: 3072}}\n", 3,
     "field a: sum: unknown key 'size'"},
    {HDR "  a: {type: integer, protect: [sum], sum: paillier}\n", 3,
     "field a: sum must be a mapping"},
    /* type and tactic */
    {HDR "  a: {type: string, protect: [range]}\n", 3,
     "field a: protect: range does not apply to type string"},
    {HDR "  a: {type: text, protect: [sum]}\n", 3, "sum does not apply to type text"},
    {HDR "  a: {type: integer, protect: [search]}\n", 3, "search does not apply to type integer"},
    {HDR "  a: {type: date, protect: [sum]}\n", 3, "sum does not apply to type date"},
    {HDR "  a: {type: datetime, protect: [search]}\n", 3, "search does not apply to type datetime"},
    {HDR "  a: {type: boolean, protect: [range]}\n", 3, "range does not apply to type boolean"},
    {HDR "  a: {type: decimal, scale: 2, protect: [search]}\n", 3,
     "search does not apply to type decimal"},
    {HDR "  a: {type: json, protect: [eq]}\n", 3, "field a: protect: type json is opaque"},
    /* roles */
    {HDR "  a: {type: string, protect: [eq]}\nroles:\n  admin: {read: ['*']}\n", 5,
     "role admin: admin is built in"},
    {HDR "  a: {type: string}\nroles:\n  bad name: {}\n", 5, "role bad name: a role name is"},
    {HDR "  a: {type: string}\nroles:\n  r: {reed: [a]}\n", 5, "role r: unknown key 'reed'"},
    {HDR "  a: {type: string}\nroles:\n  r: {read: [b]}\n", 5,
     "role r: read: 'b' is not a declared field"},
    {HDR "  a: {type: string}\nroles:\n  r: {read: a}\n", 5, "role r: read must be a list"},
    {HDR "  a: {type: string}\nroles:\n  r: {read: [a, a]}\n", 5,
     "role r: read: 'a' is listed twice"},
    {HDR "  a: {type: string}\nroles:\n  r: {read: ['*', a]}\n", 5,
     "role r: read: \"*\" must stand alone"},
    {HDR "  a: {type: string}\nroles:\n  r: {read: [[a]]}\n", 5, "role r: read: items must be"},
    {HDR "  a: {type: string, mask: last4}\nroles:\n  r: {masked: [b]}\n", 5,
     "role r: masked: 'b' is not a declared field"},
    {HDR "  a: {type: string, mask: last4}\nroles:\n  r: {masked: ['*']}\n", 5,
     "role r: masked: '*' is not a declared field"},
    {HDR "  a: {type: string, mask: last4}\nroles:\n  r:\n    read: [a]\n    masked: [a]\n", 7,
     "role r: field 'a' is both read and masked"},
    {HDR "  a: {type: string}\nroles:\n  r: {masked: [a]}\n", 5,
     "role r: masked: field 'a' declares no mask"},
    {HDR "  a: {type: integer, protect: [eq]}\nroles:\n  r: {aggregate: [a]}\n", 5,
     "role r: aggregate: field 'a' has no protect: [sum]"},
    {HDR "  a: {type: integer, protect: [sum]}\nroles:\n  r: {aggregate: ['*']}\n", 5,
     "role r: aggregate: '*' is not a declared field"},
    {HDR "  a: {type: integer, protect: [sum]}\nroles:\n  r: {group_by: [a]}\n", 5,
     "role r: group_by: field 'a' has no protect: [eq]"},
    {HDR "  a: {type: integer}\nroles:\n  r: {min_group_size: 1000001}\n", 5,
     "role r: min_group_size must be"},
    {HDR "  a: {type: integer}\nroles:\n  r: {min_group_size: -1}\n", 5,
     "role r: min_group_size must be"},
    {HDR "  a: {type: integer}\nroles:\n  r: {min_group_size: five}\n", 5,
     "role r: min_group_size must be"},
    {HDR "  a: {type: integer}\nroles:\n  r: {write: yes}\n", 5, "role r: write must be true"},
    {HDR "  a: {type: integer}\nroles:\n  r: [read]\n", 5, "role r: a role is a mapping"},
    /* bounds and privacy */
    {HDR "  a: {type: integer, protect: [eq], bounds: [0, 10]}\n", 3,
     "field a: bounds apply only with protect: [sum]"},
    {HDR "  a: {type: integer, protect: [sum], bounds: [10, 0]}\n", 3,
     "field a: bounds: lo must be below hi"},
    {HDR "  a: {type: integer, protect: [sum], bounds: [5, 5]}\n", 3, "lo must be below hi"},
    {HDR "  a: {type: integer, protect: [sum], bounds: [0.5, 5]}\n", 3,
     "field a: bounds must be [lo, hi]"},
    {HDR "  a: {type: decimal, scale: 1, protect: [sum], bounds: [0.25, 5]}\n", 3,
     "field a: bounds must be [lo, hi]"},
    {HDR "  a: {type: integer, protect: [sum], bounds: [0]}\n", 3, "bounds must be [lo, hi]"},
    {HDR "  a: {type: integer, protect: [sum], bounds: [0, x]}\n", 3, "bounds must be [lo, hi]"},
    {HDR "  a: {type: integer, protect: [sum], bounds: 5}\n", 3, "bounds must be [lo, hi]"},
    {HDR "  a: {type: integer, protect: [sum], bounds: [0, 4611686018427387905]}\n", 3,
     "bounds must be [lo, hi]"},
    {HDR "  a: {type: integer, protect: [sum], out_of_bounds: clamp}\n", 3,
     "field a: out_of_bounds applies only with bounds"},
    {HDR "  a: {type: integer, protect: [sum], bounds: [0, 1], out_of_bounds: wrap}\n", 3,
     "field a: out_of_bounds must be reject or clamp"},
    {HDR "  a: {type: integer, protect: [sum]}\nroles:\n  r: {aggregate: [a]}\n", 5,
     "role r: aggregate: field 'a' needs bounds: [lo, hi]"},
    {HDR "  a: {type: integer, protect: [sum]}\nroles:\n  r:\n    write: true\n"
         "    aggregate: [a]\n", 7, "role r: aggregate: field 'a' needs bounds"},
    {HDR "  a: {type: integer, protect: [sum], bounds: [0, 9]}\nroles:\n"
         "  r: {aggregate: [a], privacy: exakt}\n", 5, "role r: privacy must be exact, or"},
    {HDR "  a: {type: integer, protect: [sum], bounds: [0, 9]}\nroles:\n"
         "  r: {aggregate: [a], privacy: {epsilon: 0}}\n", 5, "role r: privacy.epsilon must be"},
    {HDR "  a: {type: integer, protect: [sum], bounds: [0, 9]}\nroles:\n"
         "  r: {aggregate: [a], privacy: {epsilon: 11}}\n", 5, "privacy.epsilon must be"},
    {HDR "  a: {type: integer, protect: [sum], bounds: [0, 9]}\nroles:\n"
         "  r: {aggregate: [a], privacy: {epsilon: 0.0000001}}\n", 5, "privacy.epsilon must"},
    {HDR "  a: {type: integer, protect: [sum], bounds: [0, 9]}\nroles:\n"
         "  r: {aggregate: [a], privacy: {epsilon: 0.009}}\n", 5, "from 0.01 to 10"},
    {HDR "  a: {type: integer, protect: [sum], bounds: [0, 9]}\nroles:\n"
         "  r: {aggregate: [a], privacy: {epsilon: -1}}\n", 5, "privacy.epsilon must be"},
    {HDR "  a: {type: integer, protect: [sum], bounds: [0, 9]}\nroles:\n"
         "  r: {aggregate: [a], privacy: {delta: 0.5}}\n", 5, "role r: privacy.delta must be"},
    {HDR "  a: {type: integer, protect: [sum], bounds: [0, 9]}\nroles:\n"
         "  r: {aggregate: [a], privacy: {delta: 0}}\n", 5, "privacy.delta must be"},
    {HDR "  a: {type: integer, protect: [sum], bounds: [0, 9]}\nroles:\n"
         "  r: {aggregate: [a], privacy: {delta: nan}}\n", 5, "privacy.delta must be"},
    {HDR "  a: {type: integer, protect: [sum], bounds: [0, 9]}\nroles:\n"
         "  r: {aggregate: [a], privacy: {delta: -1e-6}}\n", 5, "privacy.delta must be"},
    {HDR "  a: {type: integer, protect: [sum], bounds: [0, 9]}\nroles:\n"
         "  r: {aggregate: [a], privacy: {period: year}}\n", 5,
     "role r: privacy.period must be hour, day, week or month"},
    {HDR "  a: {type: integer, protect: [sum], bounds: [0, 9]}\nroles:\n"
         "  r: {aggregate: [a], privacy: {epsilon: 2, budget: 1}}\n", 5,
     "role r: privacy: epsilon <= budget <= role_budget"},
    {HDR "  a: {type: integer, protect: [sum], bounds: [0, 9]}\nroles:\n"
         "  r: {aggregate: [a], privacy: {budget: 5, role_budget: 4}}\n", 5,
     "epsilon <= budget <= role_budget"},
    {HDR "  a: {type: integer, protect: [sum], bounds: [0, 9]}\nroles:\n"
         "  r: {aggregate: [a], privacy: {budgett: 5}}\n", 5,
     "role r: privacy: unknown key 'budgett'"},
    {HDR "  a: {type: integer, protect: [sum], bounds: [0, 9]}\nroles:\n"
         "  r: {read: [a], privacy: exact}\n", 5,
     "role r: privacy applies only to a role that may aggregate"},
};

/* Who is answered under differential privacy, with which numbers; bounds; round trips. */
static void test_privacy_policy(void **state)
{
    (void)state;
    static const char text[] =
        "collection: c\n"
        "fields:\n"
        "  g: {type: string, protect: [eq]}\n"
        "  n: {type: integer, protect: [sum], bounds: [-5, 100]}\n"
        "  d: {type: decimal, scale: 2, protect: [sum], bounds: [0.5, \"99.99\"], "
        "out_of_bounds: clamp}\n"
        "  u: {type: integer, protect: [sum]}\n"
        "roles:\n"
        "  dflt: {aggregate: [n], group_by: [g]}\n"
        "  counts: {group_by: [g]}\n"
        "  tuned: {aggregate: [n, d], privacy: {epsilon: 0.25, delta: 1e-9, budget: 2.5, "
        "period: week}}\n"
        "  exact: {aggregate: [u], privacy: exact, min_group_size: 3}\n"
        "  reader: {read: ['*'], aggregate: [u]}\n"
        "  writer: {write: true}\n";
    struct vl_policy *p = parse_ok(text);
    const struct vl_role *r = vl_policy_role(p, "dflt");
    assert_true(r->dp);
    assert_int_equal(r->privacy.eps, 250000);
    assert_int_equal(r->privacy.delta, 1000000000000ull);
    assert_int_equal(r->privacy.budget, 1000000);
    assert_int_equal(r->privacy.role_budget, 2000000);
    assert_int_equal(r->privacy.period, VL_PERIOD_DAY);
    assert_true(vl_policy_role(p, "counts")->dp); /* counting alone is aggregating */
    r = vl_policy_role(p, "tuned");
    assert_true(r->dp);
    assert_int_equal(r->privacy.eps, 250000);
    assert_int_equal(r->privacy.delta, 1000000000ull);
    assert_int_equal(r->privacy.budget, 2500000);
    assert_int_equal(r->privacy.role_budget, 5000000);
    assert_int_equal(r->privacy.period, VL_PERIOD_WEEK);
    assert_false(vl_policy_role(p, "exact")->dp);
    assert_true(vl_policy_role(p, "exact")->exact);
    assert_false(vl_policy_role(p, "reader")->dp); /* reads everything anyway */
    assert_false(vl_policy_role(p, "writer")->dp);
    const struct vl_field *n = vl_policy_field(p, "n"), *d = vl_policy_field(p, "d");
    assert_true(n->bounded && !n->clamp && n->lo == -5 && n->hi == 100);
    assert_true(d->bounded && d->clamp && d->lo == 50 && d->hi == 9999);
    assert_false(vl_policy_field(p, "u")->bounded);

    /* The canonical text parses back to the same policy, numbers and all. */
    char *c1 = vl_policy_canonical(p);
    struct vl_policy *q = parse_ok(c1);
    char *c2 = vl_policy_canonical(q);
    assert_string_equal(c1, c2);
    assert_int_equal(vl_policy_role(q, "tuned")->privacy.delta, 1000000000ull);
    assert_int_equal(vl_policy_field(q, "d")->lo, 50);
    assert_non_null(strstr(c1, "\"privacy\":\"exact\""));

    /* What GET shows: the statements say noise for DP roles and recovery for exact ones. */
    json_t *desc = vl_policy_describe(p);
    json_t *roles = json_object_get(desc, "roles");
    const char *dp_says = json_string_value(
        json_object_get(json_object_get(roles, "dflt"), "statement"));
    const char *ex_says = json_string_value(
        json_object_get(json_object_get(roles, "exact"), "statement"));
    assert_non_null(strstr(dp_says, "Differential privacy"));
    assert_non_null(strstr(dp_says, "epsilon 0.25 (or what the query asks for, up to the budget) of the token's budget of 1 "));
    assert_non_null(strstr(ex_says, "Individual values can be recovered"));
    assert_null(json_object_get(json_object_get(roles, "writer"), "statement"));
    const char *lk = json_string_value(
        json_object_get(json_object_get(json_object_get(desc, "fields"), "d"), "leakage"));
    assert_non_null(strstr(lk, "Bounds [0.50, 99.99]"));
    assert_non_null(strstr(lk, "add the nearest bound"));
    lk = json_string_value(
        json_object_get(json_object_get(json_object_get(desc, "fields"), "n"), "leakage"));
    assert_non_null(strstr(lk, "Bounds [-5, 100]: a write with a value outside them is refused"));
    json_decref(desc);
    free(c1);
    free(c2);
    vl_policy_free(q);
    vl_policy_free(p);

    /* Periods: UTC calendar, weeks from Monday. 2026-12-03 12:34:56 is a Thursday. */
    int64_t t = 1796301296; /* 2026-12-03T12:34:56Z */
    assert_int_equal(vl_period_start(VL_PERIOD_HOUR, t), 1796299200);
    assert_int_equal(vl_period_start(VL_PERIOD_DAY, t), 1796256000);
    assert_int_equal(vl_period_start(VL_PERIOD_WEEK, t), 1796256000 - 3 * 86400);
    assert_int_equal(vl_period_start(VL_PERIOD_MONTH, t), 1796083200); /* 2026-12-01 */
    assert_int_equal(vl_period_next(VL_PERIOD_MONTH, 1796083200), 1798761600); /* 2027-01-01 */
    assert_int_equal(vl_period_next(VL_PERIOD_DAY, 1796256000), 1796342400);
}

static void test_error_rules(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
        expect_err(error_cases[i].text, error_cases[i].line, error_cases[i].needle);
    }
}

static void test_error_names_field(void **state)
{
    (void)state;
    struct vl_policy *p = NULL;
    veil_status st;
    const char *t = HDR "  customer.name: {type: string, protect: [range]}\n";
    assert_int_equal(vl_policy_parse(t, strlen(t), stores, NSTORES, &p, &st),
                     VEIL_ERR_INVALID_POLICY);
    assert_string_equal(st.field, "customer.name");
    t = HDR "  a: {type: string}\nroles:\n  r: {read: [b]}\n";
    assert_int_equal(vl_policy_parse(t, strlen(t), stores, NSTORES, &p, &st),
                     VEIL_ERR_INVALID_POLICY);
    assert_string_equal(st.field, "roles.r");
    /* No stores at all: only `trusted` is a valid store. */
    t = HDR "  a: {type: string, store: cloud}\n";
    assert_int_equal(vl_policy_parse(t, strlen(t), NULL, 0, &p, &st), VEIL_ERR_INVALID_POLICY);
    /* A NULL status is allowed. */
    assert_int_equal(vl_policy_parse(t, strlen(t), NULL, 0, &p, NULL), VEIL_ERR_INVALID_POLICY);
}

/* ---- hostile input ---- */

/* Text the YAML loader refuses is a wrong policy too: invalid_policy, naming its line. */
static void expect_bad(const char *text, size_t len, int line, const char *needle)
{
    expect_code(text, len, VEIL_ERR_INVALID_POLICY, line, needle);
}

static void test_hostile(void **state)
{
    (void)state;
    size_t n = 100000;
    char *buf = malloc(3 * n + 64);
    assert_non_null(buf);

    /* Deep nesting, closed and unclosed, flow and block. */
    memset(buf, '[', n);
    memset(buf + n, ']', n);
    expect_bad(buf, 2 * n, 1, "nested more than 32 levels");
    expect_bad(buf, n, 1, "nested more than 32 levels");
    {
        size_t k = 0;
        for (int d = 0; d < 40; d++) {
            for (int s = 0; s < 2 * d; s++) {
                buf[k++] = ' ';
            }
            k += (size_t)sprintf(buf + k, "k%d:\n", d);
        }
        buf[k] = '\0';
        expect_bad(buf, k, 33, "nested more than 32 levels");
    }
    /* 32 levels are fine for the loader (then the policy checker says no). */
    memset(buf, '[', 31);
    memset(buf + 31, ']', 31);
    buf[62] = '\0';
    expect_err(buf, 1, "a policy is a mapping");

    /* Too many nodes, and too much text. */
    buf[0] = '[';
    for (size_t i = 0; i < 70000; i++) {
        buf[1 + 2 * i] = '1';
        buf[2 + 2 * i] = ',';
    }
    buf[2 * 70000] = ']';
    expect_bad(buf, 2 * 70000 + 1, 1, "more than 65536 nodes");
    free(buf);
    n = (1u << 20) + 1;
    buf = malloc(n);
    assert_non_null(buf);
    memset(buf, 'a', n);
    expect_bad(buf, n, 1, "longer than");
    free(buf);

    /* Aliases and anchors (billion laughs), tags, several documents. */
    expect_bad("collection: &x c\nfields: {}\n", 28, 1, "anchors and aliases");
    const char *laughs = "a: &a [\"lol\",\"lol\"]\nb: &b [*a,*a,*a]\nc: [*b,*b,*b]\n";
    expect_bad(laughs, strlen(laughs), 1, "anchors and aliases");
    const char *alias = "collection: c\nfields:\n  a: {type: string}\nroles:\n  r: *x\n";
    expect_bad(alias, strlen(alias), 5, "");
    const char *tag = "collection: !!str c\n";
    expect_bad(tag, strlen(tag), 1, "tags");
    const char *docs = "collection: c\n---\ncollection: d\n";
    expect_bad(docs, strlen(docs), 2, "only one document");

    /* Not UTF-8, NUL bytes, control characters, tabs. */
    const char bad8[] = "collection: c\nfields:\n  a\xff\xfe: {type: string}\n";
    expect_bad(bad8, sizeof(bad8) - 1, 3, "UTF-8");
    const char overlong[] = "collection: \xc0\xaf\n";
    expect_bad(overlong, sizeof(overlong) - 1, 1, "UTF-8");
    const char nul[] = "collection: c\0fields: {}\n";
    expect_bad(nul, sizeof(nul) - 1, 1, "");
    const char *nulesc = "collection: \"c\\0d\"\n";
    expect_bad(nulesc, strlen(nulesc), 1, "NUL");
    const char *tabs = "collection: c\nfields:\n\ta: {type: string}\n";
    expect_bad(tabs, strlen(tabs), 3, "tab");
    const char *dup = "collection: c\nfields:\n  a: {type: string}\n  a: {type: text}\n";
    expect_bad(dup, strlen(dup), 4, "duplicate key 'a' (first at line 3)");
    const char *dupj = "{\"collection\": \"c\", \"collection\": \"d\"}";
    expect_bad(dupj, strlen(dupj), 1, "duplicate key 'collection'");
    const char *complexkey = "? [a, b]\n: c\n";
    expect_bad(complexkey, strlen(complexkey), 1, "mapping keys must be plain names");
    const char *unclosed = "{\"collection\": \"c\", \"fields\": {\n";
    expect_bad(unclosed, strlen(unclosed), 1, "the text ends before the mapping");
    const char *bom16 = "\xff\xfe" "c\0o\0";
    expect_bad(bom16, 6, 1, "");
}

/* An empty text (an empty HTTP body arrives as NULL) and syntax errors: invalid_policy, on
 * the line the author must fix, never a line past the end of the text. */
static void test_syntax_error_lines(void **state)
{
    (void)state;
    expect_code(NULL, 0, VEIL_ERR_INVALID_POLICY, 1, "the policy is empty");
    expect_code("", 0, VEIL_ERR_INVALID_POLICY, 1, "the policy is empty");
    expect_code(" \n\n  \n", 6, VEIL_ERR_INVALID_POLICY, 1, "the policy is empty");
    static const struct err_case cases[] = {
        /* noticed inside the text: there, naming where the construct began */
        {"collection: x\nfields:\n  a: {type: string\n  b: c\n", 4,
         "did not find expected ',' or '}' while parsing a flow mapping that starts at line 3"},
        {"collection: x\nfields:\n  a: b\n c: d\n", 4, "did not find expected key"},
        {"collection: x\n  bad: indent\n", 2, "mapping values are not allowed"},
        {"collection: x\n- item\n", 2, "did not find expected key"},
        {"collection: x\nfields: {a: {type: string}}}\n", 2, ""},
        {"collection: x\nfields:\n  a: @b\n", 3, "cannot start any token"},
        /* noticed at the end of the text: where the unclosed bracket or quote opens */
        {"collection: x\nfields:\n  a: [1, 2\n", 3,
         "the text ends inside a flow sequence that starts on this line"},
        {"collection: x\nfields:\n  a: \"unterminated\n  b: c\n", 3,
         "the text ends inside a quoted scalar"},
        {"collection: x\nfields: {\n", 2, "the text ends before the mapping"},
        {"collection: x\nfields: [\n\n\n   \n", 2, "the text ends before the list"},
        {"\n\n\n{\n", 4, "the text ends before the mapping"},
        {"{\"collection\": \"c\",\n \"fields\": {\"a\": {\"type\": \"string\"}\n", 2,
         "the text ends inside a flow mapping"},
        /* libyaml counts characters where the text has bytes: "é" is two */
        {"collection: x\nfields:\n  \xc3\xa9\xc3\xa9: [\n", 3,
         "the text ends before the list that starts on this line is closed"},
        {"\xef\xbb\xbf" "collection: x\nfields:\n  a\xc3\xa9: [1,\n", 3,
         "the text ends before the list"}, /* after a byte order mark */
        {"collection: x\nfields:\n  \xc3\xa9\xc3\xa9: @b\n", 3, "cannot start any token"},
        /* line breaks as YAML counts them: CR LF, and CR alone */
        {"collection: x\r\nfields:\r\n  a: [1, 2\r\n\r\n", 3, "flow sequence"},
        {"collection: x\rfields:\r  a: [1, 2\r\r", 3, "flow sequence"},
        {"collection: x\rfields:\r  a: b\r c: d\r", 4, "did not find expected key"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        expect_code(cases[i].text, strlen(cases[i].text), VEIL_ERR_INVALID_POLICY, cases[i].line,
                    cases[i].needle);
    }
}

/* Every prefix of the example and a few thousand random corruptions: errors or policies,
 * never a crash or a leak (the sanitizers watch). */
static void test_truncations_and_mutations(void **state)
{
    (void)state;
    size_t len = strlen(spec_yaml);
    char *buf = malloc(len + 1);
    uint32_t seed = 12345;
    assert_non_null(buf);
    for (size_t cut = 0; cut <= len; cut++) {
        struct vl_policy *p = NULL;
        veil_status st;
        memcpy(buf, spec_yaml, cut);
        buf[cut] = '\0';
        if (vl_policy_parse(buf, cut, stores, NSTORES, &p, &st) == VEIL_OK) {
            vl_policy_free(p);
        } else {
            assert_int_equal(st.code, VEIL_ERR_INVALID_POLICY);
            assert_non_null(strstr(st.message, "line "));
            /* The line named is one of the text's (the empty text's error is on line 1). */
            int named = (int)strtol(st.message + 5, NULL, 10), lines = 1;
            for (size_t i = 0; i + 1 < cut; i++) {
                lines += buf[i] == '\n'; /* the example has LF line ends only */
            }
            if (named < 1 || named > lines) {
                fail_msg("prefix of %zu bytes (%d lines): \"%s\"", cut, lines, st.message);
            }
        }
    }
    for (int round = 0; round < 3000; round++) {
        struct vl_policy *p = NULL;
        veil_status st;
        memcpy(buf, spec_yaml, len + 1);
        for (int k = 0; k < 1 + round % 4; k++) {
            seed = seed * 1103515245u + 12345u;
            size_t at = (seed >> 8) % len;
            seed = seed * 1103515245u + 12345u;
            static const char alphabet[] = "[]{}:,-'\"&*!#|>?. \n\tax0\xc3\xff";
            buf[at] = alphabet[(seed >> 8) % (sizeof(alphabet) - 1)];
        }
        if (vl_policy_parse(buf, len, stores, NSTORES, &p, &st) == VEIL_OK) {
            char *c = vl_policy_canonical(p);
            json_t *d = vl_policy_describe(p);
            assert_non_null(c);
            assert_non_null(d);
            free(c);
            json_decref(d);
            vl_policy_free(p);
        }
    }
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_example),
        cmocka_unit_test(test_describe),
        cmocka_unit_test(test_leakage_plain),
        cmocka_unit_test(test_yaml_json_same),
        cmocka_unit_test(test_canonical_golden),
        cmocka_unit_test(test_canonical_roundtrip),
        cmocka_unit_test(test_examples),
        cmocka_unit_test(test_accepts),
        cmocka_unit_test(test_error_rules),
        cmocka_unit_test(test_error_names_field),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_syntax_error_lines),
        cmocka_unit_test(test_truncations_and_mutations),
        cmocka_unit_test(test_privacy_policy),
    };
    return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
