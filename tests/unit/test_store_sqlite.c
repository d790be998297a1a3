/*
 * test_store_sqlite.c: the store dispatcher and the SQLite driver, against real files in a
 * temporary directory: round trips, token replacement, find with paging, large batches,
 * bad names, threads, unavailability, reopening, and that deleted ciphertext leaves no
 * trace in the database, WAL or shared-memory files. Aggregates are checked against a model
 * of the table: ASHE sums decrypt to the plaintext sums with the returned runs, which must
 * be exactly the maximal runs of current rows' seqs; Paillier products match GMP's. The
 * key-value space: round trips, replacement, absent and repeated keys, a 10,000-key get,
 * all-or-none batches (also when the database refuses an entry midway), drop_table, and
 * tampered values. Stored data put_rows cannot have written (sum rows with repeated,
 * negative, non-integer or 2^63-1-twice sequence numbers, limbs out of range or of another
 * type, rows with a blob or seq of another type, tokens of another length) is
 * VEIL_ERR_INTEGRITY, never an outage. Predicates restricted to a set of documents (only_docs): find with terms
 * and paging, and aggregates equal to the same aggregate over a table holding just that set.
 * members: exactly the rows having each token asked for (once per token), after replacement and deletion, over a missing or dropped table, with tokens inline
 * and through the temp table (either side of SQLite's limit on bound parameters), over 20,000
 * rows; and stored rows it cannot return (document tokens of another length, seqs that are
 * not integers) are VEIL_ERR_INTEGRITY.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <gmp.h>
#include <sqlite3.h>

#include "store/store.h"
#include "tactics/tactics.h"
#include "testutil.h"

#define T1 "0123456789abcdef0123456789abcdef"
#define T2 "fedcba9876543210fedcba9876543210"

struct fx {
    char *dir;
    struct vl_store *s;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->dir = tu_tempdir();
    veil_status st;
    assert_int_equal(vl_store_open("sqlite:cloud/cloud.db", f->dir, &f->s, &st), VEIL_OK);
    *state = f;
    return 0;
}

/* The same with partitions of 5 index entries: every test runs again so (main), and its
 * writes go through many merges of x_T's partitions. */
static int setup_small(void **state)
{
    setup(state);
    vl_store_sqlite_partition(((struct fx *)*state)->s, 5);
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    vl_store_close(f->s);
    tu_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* Document token i: big-endian i first, so numeric order is byte order. */
static void mkdoc(uint8_t d[VL_DOCTOKEN_BYTES], uint32_t i)
{
    memset(d, 0xa5, VL_DOCTOKEN_BYTES);
    d[0] = (uint8_t)(i >> 24);
    d[1] = (uint8_t)(i >> 16);
    d[2] = (uint8_t)(i >> 8);
    d[3] = (uint8_t)i;
}

static void mkcol(uint8_t c[VL_COL_BYTES], uint8_t v)
{
    memset(c, v, VL_COL_BYTES);
}

/* Key i: a scrambled prefix, so that key order is neither i's nor insertion order. */
static void mkkey(uint8_t k[VL_KV_KEY_BYTES], uint32_t i)
{
    uint32_t x = i * 2654435761u;
    memset(k, 0x3c, VL_KV_KEY_BYTES);
    k[0] = (uint8_t)(x >> 24);
    k[1] = (uint8_t)(x >> 16);
    k[2] = (uint8_t)(x >> 8);
    k[3] = (uint8_t)x;
    k[4] = (uint8_t)(i >> 24);
    k[5] = (uint8_t)(i >> 16);
    k[6] = (uint8_t)(i >> 8);
    k[7] = (uint8_t)i;
}

/* The value of key i at version v: 1..VL_KV_VAL_MAX bytes, all derived from (i, v). */
static size_t mkval(uint8_t out[VL_KV_VAL_MAX], uint32_t i, uint32_t v)
{
    size_t n = 1 + (i * 131u + v * 7u) % VL_KV_VAL_MAX;
    for (size_t j = 0; j < n; j++) {
        out[j] = (uint8_t)(i * 31u + v * 17u + j);
    }
    return n;
}

/* A batch of rows built by the tests; every pointer is owned here. */
struct batch {
    struct vl_row *rows;
    uint8_t (*docs)[VL_DOCTOKEN_BYTES];
    size_t n;
};

static void batch_init(struct batch *b, size_t n)
{
    b->rows = calloc(n, sizeof(*b->rows));
    b->docs = calloc(n, sizeof(*b->docs));
    assert_non_null(b->rows);
    assert_non_null(b->docs);
    b->n = n;
}

/* Row i: doc mkdoc(id), blob text, tokens given as (col byte, token string) pairs. */
static void batch_set(struct batch *b, size_t i, uint32_t id, uint64_t seq, const char *blob,
                      size_t ntok, ...)
{
    struct vl_row *r = &b->rows[i];
    mkdoc(b->docs[i], id);
    r->doc.p = b->docs[i];
    r->doc.n = VL_DOCTOKEN_BYTES;
    r->seq = seq;
    r->blob.n = strlen(blob);
    r->blob.p = (uint8_t *)strdup(blob);
    r->tokens = calloc(ntok ? ntok : 1, sizeof(*r->tokens));
    r->ntokens = ntok;
    va_list ap;
    va_start(ap, ntok);
    for (size_t j = 0; j < ntok; j++) {
        int col = va_arg(ap, int);
        const char *tok = va_arg(ap, const char *);
        mkcol(r->tokens[j].col, (uint8_t)col);
        r->tokens[j].tok.p = (uint8_t *)strdup(tok);
        r->tokens[j].tok.n = strlen(tok);
    }
    va_end(ap);
}

static void batch_free(struct batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->rows[i].blob.p);
        for (size_t j = 0; j < b->rows[i].ntokens; j++) {
            free(b->rows[i].tokens[j].tok.p);
        }
        free(b->rows[i].tokens);
    }
    free(b->rows);
    free(b->docs);
}

static struct vl_bytes docref(uint8_t d[VL_DOCTOKEN_BYTES])
{
    struct vl_bytes b = {d, VL_DOCTOKEN_BYTES};
    return b;
}

static veil_err put(struct vl_store *s, const char *t, struct batch *b)
{
    return s->ops->put_rows(s, t, b->rows, b->n);
}

static veil_err put1(struct vl_store *s, const char *t, uint32_t id, uint64_t seq,
                     const char *blob, uint8_t col, const char *tok)
{
    struct batch b;
    batch_init(&b, 1);
    batch_set(&b, 0, id, seq, blob, 1, col, tok);
    veil_err rc = put(s, t, &b);
    batch_free(&b);
    return rc;
}

/* find with one term on `col` over the given NULL-terminated tokens. */
static veil_err find_toks(struct vl_store *s, const char *t, uint8_t col, const char **toks,
                          const uint8_t *after, size_t limit, struct vl_doclist *out)
{
    struct vl_bytes tb[16];
    size_t n = 0;
    for (; toks[n] != NULL; n++) {
        tb[n].p = (uint8_t *)toks[n];
        tb[n].n = strlen(toks[n]);
    }
    struct vl_pred_term term = {.toks = tb, .ntoks = n};
    mkcol(term.col, col);
    struct vl_pred pred = {&term, 1};
    return s->ops->find(s, t, &pred, after, limit, out);
}

static uint32_t docid(const uint8_t d[VL_DOCTOKEN_BYTES])
{
    return (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3];
}

static const struct vl_row *row_of(const struct vl_rows *r, uint32_t id)
{
    for (size_t i = 0; i < r->n; i++) {
        if (r->rows[i].doc.n == VL_DOCTOKEN_BYTES && docid(r->rows[i].doc.p) == id) {
            return &r->rows[i];
        }
    }
    return NULL;
}

static void assert_blob(const struct vl_row *row, const char *blob)
{
    assert_non_null(row);
    assert_int_equal(row->blob.n, strlen(blob));
    assert_memory_equal(row->blob.p, blob, row->blob.n);
}

/* ---- tests ---- */

static void test_dispatch(void **state)
{
    (void)state;
    char *dir = tu_tempdir();
    struct vl_store *s = NULL;
    veil_status st;
    assert_int_equal(vl_store_open("mongodb://h/db", dir, &s, &st), VEIL_ERR_BAD_REQUEST);
    assert_non_null(strstr(st.message, "sqlite"));
    assert_non_null(strstr(st.message, "mongodb"));
    assert_null(s);
    assert_int_equal(vl_store_open("cloud.db", dir, &s, &st), VEIL_ERR_BAD_REQUEST);
    assert_non_null(strstr(st.message, "sqlite"));
    assert_int_equal(vl_store_open("SQLITE:x.db", dir, &s, &st), VEIL_ERR_BAD_REQUEST);
    assert_int_equal(vl_store_open("sqlite:", dir, &s, &st), VEIL_ERR_BAD_REQUEST);

    /* a relative path lands under datadir, with private parent directories */
    assert_int_equal(vl_store_open("sqlite:a/b/c.db", dir, &s, &st), VEIL_OK);
    assert_ptr_equal(s->ops, &vl_store_sqlite_ops);
    assert_int_equal(s->ops->ping(s), VEIL_OK);
    vl_store_close(s);
    char path[1024];
    struct stat sb;
    snprintf(path, sizeof(path), "%s/a/b", dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(sb.st_mode & 0777, 0700);
    snprintf(path, sizeof(path), "%s/a/b/c.db", dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0077, 0);

    /* an absolute path ignores datadir */
    char url[1100];
    snprintf(url, sizeof(url), "sqlite:%s/abs.db", dir);
    assert_int_equal(vl_store_open(url, "/nonexistent-datadir", &s, &st), VEIL_OK);
    vl_store_close(s);
    snprintf(path, sizeof(path), "%s/abs.db", dir);
    assert_int_equal(stat(path, &sb), 0);

    vl_store_close(NULL);
    vl_rows_free(NULL);
    vl_doclist_free(NULL);
    tu_rmtree(dir);
    free(dir);
}

static void test_roundtrip(void **state)
{
    struct fx *f = *state;
    struct vl_store *s = f->s;
    struct batch b;
    struct vl_rows r;
    struct vl_doclist l;
    const char *old_tok[] = {"old", NULL};
    const char *new_tok[] = {"new", NULL};
    const char *two_tok[] = {"two", NULL};

    assert_int_equal(s->ops->ensure_table(s, T1), VEIL_OK);
    assert_int_equal(s->ops->ensure_table(s, T1), VEIL_OK);
    batch_init(&b, 3);
    batch_set(&b, 0, 1, 10, "blob-one", 2, 1, "old", 2, "r1");
    batch_set(&b, 1, 2, (uint64_t)INT64_MAX, "blob-two", 1, 1, "two");
    batch_set(&b, 2, 3, 0, "", 0);
    assert_int_equal(put(s, T1, &b), VEIL_OK);

    uint8_t absent[VL_DOCTOKEN_BYTES];
    mkdoc(absent, 99);
    struct vl_bytes want[4] = {docref(b.docs[0]), docref(b.docs[1]), docref(b.docs[2]),
                               docref(absent)};
    assert_int_equal(s->ops->get_rows(s, T1, want, 4, &r), VEIL_OK);
    assert_int_equal(r.n, 3);
    assert_blob(row_of(&r, 1), "blob-one");
    assert_int_equal(row_of(&r, 1)->seq, 10);
    assert_blob(row_of(&r, 2), "blob-two");
    assert_true(row_of(&r, 2)->seq == (uint64_t)INT64_MAX);
    assert_blob(row_of(&r, 3), "");
    assert_non_null(row_of(&r, 3)->blob.p);
    assert_null(row_of(&r, 1)->tokens);
    vl_rows_free(&r);
    assert_null(r.rows);

    /* replace row 1: new blob, new seq, and its old tokens are gone */
    assert_int_equal(put1(s, T1, 1, 11, "blob-one-v2", 1, "new"), VEIL_OK);
    assert_int_equal(s->ops->get_rows(s, T1, want, 1, &r), VEIL_OK);
    assert_int_equal(r.n, 1);
    assert_blob(row_of(&r, 1), "blob-one-v2");
    assert_int_equal(r.rows[0].seq, 11);
    vl_rows_free(&r);
    assert_int_equal(find_toks(s, T1, 1, old_tok, NULL, 100, &l), VEIL_OK);
    assert_int_equal(l.n, 0);
    vl_doclist_free(&l);
    const char *r1[] = {"r1", NULL};
    assert_int_equal(find_toks(s, T1, 2, r1, NULL, 100, &l), VEIL_OK);
    assert_int_equal(l.n, 0);
    vl_doclist_free(&l);
    assert_int_equal(find_toks(s, T1, 1, new_tok, NULL, 100, &l), VEIL_OK);
    assert_int_equal(l.n, 1);
    assert_int_equal(docid(l.docs[0]), 1);
    vl_doclist_free(&l);

    /* delete row 2 (and an absent one): row and tokens go */
    struct vl_bytes del[2] = {want[1], want[3]};
    assert_int_equal(s->ops->delete_rows(s, T1, del, 2), VEIL_OK);
    assert_int_equal(s->ops->get_rows(s, T1, want, 4, &r), VEIL_OK);
    assert_int_equal(r.n, 2);
    assert_null(row_of(&r, 2));
    vl_rows_free(&r);
    assert_int_equal(find_toks(s, T1, 1, two_tok, NULL, 100, &l), VEIL_OK);
    assert_int_equal(l.n, 0);
    vl_doclist_free(&l);
    assert_int_equal(s->ops->delete_rows(s, T1, del, 2), VEIL_OK);
    assert_int_equal(s->ops->delete_rows(s, T1, del, 0), VEIL_OK);
    assert_int_equal(s->ops->put_rows(s, T1, NULL, 0), VEIL_OK);
    assert_int_equal(s->ops->get_rows(s, T1, want, 0, &r), VEIL_OK);
    assert_int_equal(r.n, 0);

    /* tables are independent */
    assert_int_equal(s->ops->get_rows(s, T2, want, 4, &r), VEIL_OK);
    assert_int_equal(r.n, 0);
    vl_rows_free(&r);
    batch_free(&b);
}

static void test_missing_table(void **state)
{
    struct fx *f = *state;
    struct vl_store *s = f->s;
    struct vl_rows r;
    struct vl_doclist l;
    const char *x[] = {"x", NULL};
    uint8_t d[VL_DOCTOKEN_BYTES];
    mkdoc(d, 1);
    struct vl_bytes want = docref(d);

    assert_int_equal(s->ops->get_rows(s, T2, &want, 1, &r), VEIL_OK);
    assert_int_equal(r.n, 0);
    vl_rows_free(&r);
    assert_int_equal(find_toks(s, T2, 1, x, NULL, 10, &l), VEIL_OK);
    assert_int_equal(l.n, 0);
    vl_doclist_free(&l);
    assert_int_equal(s->ops->delete_rows(s, T2, &want, 1), VEIL_OK);
    assert_int_equal(s->ops->drop_table(s, T2), VEIL_OK);
    /* put creates the table */
    assert_int_equal(put1(s, T2, 1, 1, "b", 1, "x"), VEIL_OK);
    assert_int_equal(find_toks(s, T2, 1, x, NULL, 10, &l), VEIL_OK);
    assert_int_equal(l.n, 1);
    vl_doclist_free(&l);
    /* dropped, then written again: recreated */
    assert_int_equal(s->ops->ensure_table(s, T2), VEIL_OK);
    assert_int_equal(s->ops->drop_table(s, T2), VEIL_OK);
    assert_int_equal(s->ops->get_rows(s, T2, &want, 1, &r), VEIL_OK);
    assert_int_equal(r.n, 0);
    assert_int_equal(put1(s, T2, 1, 1, "b", 1, "x"), VEIL_OK);
    assert_int_equal(s->ops->get_rows(s, T2, &want, 1, &r), VEIL_OK);
    assert_int_equal(r.n, 1);
    vl_rows_free(&r);
}

static void test_find(void **state)
{
    struct fx *f = *state;
    struct vl_store *s = f->s;
    struct batch b;
    struct vl_doclist l;
    /* ids 0..9; column 1: "even"/"odd"; column 2: "lo" for id < 5, "hi" otherwise;
     * column 3: a range-like set with duplicates */
    batch_init(&b, 10);
    for (uint32_t i = 0; i < 10; i++) {
        uint32_t id = 9 - i; /* inserted in reverse to show the order is the store's */
        batch_set(&b, i, id, id, "x", 5, 1, id % 2 ? "odd" : "even", 2, id < 5 ? "lo" : "hi",
                  3, "r", 3, "r", 3, id % 3 == 0 ? "r3" : "r");
    }
    assert_int_equal(put(s, T1, &b), VEIL_OK);
    batch_free(&b);

    /* no terms: every row, in byte order */
    struct vl_pred all = {NULL, 0};
    assert_int_equal(s->ops->find(s, T1, &all, NULL, 100, &l), VEIL_OK);
    assert_int_equal(l.n, 10);
    for (size_t i = 0; i < l.n; i++) {
        assert_int_equal(docid(l.docs[i]), i);
    }
    vl_doclist_free(&l);

    /* one term */
    const char *odd[] = {"odd", NULL};
    assert_int_equal(find_toks(s, T1, 1, odd, NULL, 100, &l), VEIL_OK);
    assert_int_equal(l.n, 5);
    for (size_t i = 0; i < l.n; i++) {
        assert_int_equal(docid(l.docs[i]), 2 * i + 1);
    }
    vl_doclist_free(&l);

    /* OR within a term; an unknown token adds nothing; same token in another column none */
    const char *either[] = {"odd", "even", "nope", NULL};
    assert_int_equal(find_toks(s, T1, 1, either, NULL, 100, &l), VEIL_OK);
    assert_int_equal(l.n, 10);
    vl_doclist_free(&l);
    assert_int_equal(find_toks(s, T1, 2, odd, NULL, 100, &l), VEIL_OK);
    assert_int_equal(l.n, 0);
    vl_doclist_free(&l);

    /* duplicates in a range column: each document once */
    const char *r[] = {"r", NULL};
    assert_int_equal(find_toks(s, T1, 3, r, NULL, 100, &l), VEIL_OK);
    assert_int_equal(l.n, 10);
    vl_doclist_free(&l);

    /* several terms: odd AND hi AND (r3) -> 9 */
    struct vl_bytes t_odd = {(uint8_t *)"odd", 3}, t_hi = {(uint8_t *)"hi", 2},
                    t_r3[2] = {{(uint8_t *)"r3", 2}, {(uint8_t *)"zz", 2}};
    struct vl_pred_term terms[3] = {{.toks = &t_odd, .ntoks = 1}, {.toks = &t_hi, .ntoks = 1},
                                    {.toks = t_r3, .ntoks = 2}};
    mkcol(terms[0].col, 1);
    mkcol(terms[1].col, 2);
    mkcol(terms[2].col, 3);
    struct vl_pred p3 = {terms, 3};
    assert_int_equal(s->ops->find(s, T1, &p3, NULL, 100, &l), VEIL_OK);
    assert_int_equal(l.n, 1);
    assert_int_equal(docid(l.docs[0]), 9);
    vl_doclist_free(&l);
    struct vl_pred p2 = {terms, 2}; /* odd AND hi -> 5, 7, 9 */
    assert_int_equal(s->ops->find(s, T1, &p2, NULL, 100, &l), VEIL_OK);
    assert_int_equal(l.n, 3);
    assert_int_equal(docid(l.docs[0]), 5);
    assert_int_equal(docid(l.docs[2]), 9);
    vl_doclist_free(&l);

    /* a term with no tokens matches nothing */
    struct vl_pred_term none = {.toks = NULL, .ntoks = 0};
    struct vl_pred pn = {&none, 1};
    assert_int_equal(s->ops->find(s, T1, &pn, NULL, 100, &l), VEIL_OK);
    assert_int_equal(l.n, 0);

    /* paging with after and limit */
    uint32_t seen = 0;
    uint8_t after[VL_DOCTOKEN_BYTES];
    const uint8_t *ap = NULL;
    for (int page = 0; page < 10; page++) {
        assert_int_equal(s->ops->find(s, T1, &all, ap, 3, &l), VEIL_OK);
        if (l.n == 0) {
            vl_doclist_free(&l);
            break;
        }
        assert_true(l.n <= 3);
        for (size_t i = 0; i < l.n; i++) {
            assert_int_equal(docid(l.docs[i]), seen++);
        }
        memcpy(after, l.docs[l.n - 1], VL_DOCTOKEN_BYTES);
        ap = after;
        vl_doclist_free(&l);
    }
    assert_int_equal(seen, 10);
    mkdoc(after, 6);
    assert_int_equal(find_toks(s, T1, 1, odd, after, 1, &l), VEIL_OK);
    assert_int_equal(l.n, 1);
    assert_int_equal(docid(l.docs[0]), 7);
    vl_doclist_free(&l);
    assert_int_equal(s->ops->find(s, T1, &all, NULL, 0, &l), VEIL_OK);
    assert_int_equal(l.n, 0);
}

/* Byte order, not insertion or numeric order, over random document tokens. */
static void test_find_byte_order(void **state)
{
    struct fx *f = *state;
    struct vl_store *s = f->s;
    enum { N = 300 };
    struct batch b;
    struct vl_doclist l;
    batch_init(&b, N);
    srand(7);
    for (size_t i = 0; i < N; i++) {
        batch_set(&b, i, 0, i, "x", 1, 1, "k");
        for (size_t j = 0; j < VL_DOCTOKEN_BYTES; j++) {
            b.docs[i][j] = (uint8_t)rand();
        }
        b.docs[i][0] = (uint8_t)(i % 2 ? 0xff : 0x00); /* high bit matters (unsigned) */
    }
    assert_int_equal(put(s, T1, &b), VEIL_OK);
    const char *k[] = {"k", NULL};
    size_t got = 0;
    uint8_t last[VL_DOCTOKEN_BYTES];
    const uint8_t *ap = NULL;
    for (;;) {
        assert_int_equal(find_toks(s, T1, 1, k, ap, 37, &l), VEIL_OK);
        if (l.n == 0) {
            vl_doclist_free(&l);
            break;
        }
        for (size_t i = 0; i < l.n; i++) {
            if (got > 0) {
                assert_true(memcmp(last, l.docs[i], VL_DOCTOKEN_BYTES) < 0);
            }
            memcpy(last, l.docs[i], VL_DOCTOKEN_BYTES);
            got++;
        }
        ap = last;
        vl_doclist_free(&l);
    }
    assert_int_equal(got, N);
    batch_free(&b);
}

static void test_many_rows(void **state)
{
    struct fx *f = *state;
    struct vl_store *s = f->s;
    enum { N = 5000 };
    struct batch b;
    struct vl_rows r;
    struct vl_doclist l;
    batch_init(&b, N);
    for (uint32_t i = 0; i < N; i++) {
        char blob[32];
        snprintf(blob, sizeof(blob), "blob-%u", i);
        batch_set(&b, i, i, i, blob, 3, 1, i % 2 ? "odd" : "even", 2, "all", 3,
                  i % 10 == 0 ? "tenth" : "other");
    }
    assert_int_equal(put(s, T1, &b), VEIL_OK);

    /* 1234 gets cross several IN batches */
    struct vl_bytes *want = calloc(N, sizeof(*want));
    assert_non_null(want);
    for (size_t i = 0; i < 1234; i++) {
        want[i] = docref(b.docs[i * 4]);
    }
    assert_int_equal(s->ops->get_rows(s, T1, want, 1234, &r), VEIL_OK);
    assert_int_equal(r.n, 1234);
    assert_blob(row_of(&r, 4 * 1000), "blob-4000");
    vl_rows_free(&r);

    const char *all[] = {"all", NULL};
    assert_int_equal(find_toks(s, T1, 2, all, NULL, 100000, &l), VEIL_OK);
    assert_int_equal(l.n, N);
    vl_doclist_free(&l);
    const char *tenth[] = {"tenth", NULL};
    assert_int_equal(find_toks(s, T1, 3, tenth, NULL, 100000, &l), VEIL_OK);
    assert_int_equal(l.n, N / 10);
    vl_doclist_free(&l);

    for (size_t i = 0; i < N / 2; i++) {
        want[i] = docref(b.docs[2 * i]); /* the even ones */
    }
    assert_int_equal(s->ops->delete_rows(s, T1, want, N / 2), VEIL_OK);
    assert_int_equal(find_toks(s, T1, 2, all, NULL, 100000, &l), VEIL_OK);
    assert_int_equal(l.n, N / 2);
    vl_doclist_free(&l);
    const char *even[] = {"even", NULL};
    assert_int_equal(find_toks(s, T1, 1, even, NULL, 100000, &l), VEIL_OK);
    assert_int_equal(l.n, 0);
    vl_doclist_free(&l);
    free(want);
    batch_free(&b);
}

/* A term with more tokens than SQLite binds at once goes through the temp table. */
static void test_find_huge_term(void **state)
{
    struct fx *f = *state;
    struct vl_store *s = f->s;
    enum { NT = 40000 };
    struct vl_doclist l;
    assert_int_equal(put1(s, T1, 1, 1, "a", 1, "tok-00017"), VEIL_OK);
    assert_int_equal(put1(s, T1, 2, 2, "b", 1, "tok-39999"), VEIL_OK);
    assert_int_equal(put1(s, T1, 3, 3, "c", 1, "elsewhere"), VEIL_OK);
    char (*txt)[16] = calloc(NT, sizeof(*txt));
    struct vl_bytes *toks = calloc(NT, sizeof(*toks));
    assert_non_null(txt);
    assert_non_null(toks);
    for (size_t i = 0; i < NT; i++) {
        snprintf(txt[i], sizeof(txt[i]), "tok-%05zu", i);
        toks[i].p = (uint8_t *)txt[i];
        toks[i].n = strlen(txt[i]);
    }
    struct vl_bytes two = {(uint8_t *)"tok-39999", 9};
    struct vl_pred_term terms[2] = {{.toks = toks, .ntoks = NT}, {.toks = &two, .ntoks = 1}};
    mkcol(terms[0].col, 1);
    mkcol(terms[1].col, 1);
    struct vl_pred p1 = {terms, 1};
    assert_int_equal(s->ops->find(s, T1, &p1, NULL, 10, &l), VEIL_OK);
    assert_int_equal(l.n, 2);
    assert_int_equal(docid(l.docs[0]), 1);
    assert_int_equal(docid(l.docs[1]), 2);
    vl_doclist_free(&l);
    struct vl_pred p2 = {terms, 2};
    assert_int_equal(s->ops->find(s, T1, &p2, NULL, 10, &l), VEIL_OK);
    assert_int_equal(l.n, 1);
    assert_int_equal(docid(l.docs[0]), 2);
    vl_doclist_free(&l);
    /* and with only_docs, where the term probes each candidate */
    uint8_t cand[3][VL_DOCTOKEN_BYTES];
    mkdoc(cand[0], 3);
    mkdoc(cand[1], 1);
    mkdoc(cand[2], 9);
    struct vl_bytes cb[3] = {docref(cand[0]), docref(cand[1]), docref(cand[2])};
    struct vl_pred p4 = {terms, 1, true, cb, 3};
    assert_int_equal(s->ops->find(s, T1, &p4, NULL, 10, &l), VEIL_OK);
    assert_int_equal(l.n, 1);
    assert_int_equal(docid(l.docs[0]), 1);
    vl_doclist_free(&l);
    /* the temp table does not keep one call's tokens for the next */
    struct vl_bytes other = {(uint8_t *)"elsewhere", 9};
    struct vl_pred_term t3 = {.toks = &other, .ntoks = 1};
    mkcol(t3.col, 1);
    struct vl_pred p3 = {&t3, 1};
    assert_int_equal(s->ops->find(s, T1, &p3, NULL, 10, &l), VEIL_OK);
    assert_int_equal(l.n, 1);
    assert_int_equal(docid(l.docs[0]), 3);
    vl_doclist_free(&l);
    free(toks);
    free(txt);
}

static void test_bad_names(void **state)
{
    struct fx *f = *state;
    struct vl_store *s = f->s;
    const char *bad[] = {"", "ABCDEF", "0123g", "r_01", "01; DROP TABLE x", "01\"", "0 1",
                         "00000000000000000000000000000000000000000000000000000000000000000"};
    uint8_t d[VL_DOCTOKEN_BYTES];
    mkdoc(d, 1);
    struct vl_bytes want = docref(d);
    struct vl_rows r = {NULL, 0};
    struct vl_doclist l = {NULL, 0};
    struct vl_pred all = {NULL, 0};
    struct batch b;
    batch_init(&b, 1);
    batch_set(&b, 0, 1, 1, "x", 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_not_equal(s->ops->ensure_table(s, bad[i]), VEIL_OK);
        assert_int_not_equal(s->ops->drop_table(s, bad[i]), VEIL_OK);
        assert_int_not_equal(put(s, bad[i], &b), VEIL_OK);
        assert_int_not_equal(s->ops->get_rows(s, bad[i], &want, 1, &r), VEIL_OK);
        assert_int_not_equal(s->ops->delete_rows(s, bad[i], &want, 1), VEIL_OK);
        assert_int_not_equal(s->ops->find(s, bad[i], &all, NULL, 10, &l), VEIL_OK);
    }
    assert_int_not_equal(s->ops->ensure_table(s, NULL), VEIL_OK);
    /* 64 hex characters is the longest allowed */
    assert_int_equal(s->ops->ensure_table(s, T1 T1), VEIL_OK);
    /* a document token of the wrong length is refused, and nothing is written */
    struct batch b2;
    batch_init(&b2, 2);
    batch_set(&b2, 0, 1, 1, "x", 0);
    batch_set(&b2, 1, 2, 1, "x", 0);
    b2.rows[1].doc.n = VL_DOCTOKEN_BYTES - 1;
    assert_int_equal(put(s, T1, &b2), VEIL_ERR_INTERNAL);
    assert_int_equal(s->ops->get_rows(s, T1, &want, 1, &r), VEIL_OK);
    assert_int_equal(r.n, 0);
    batch_free(&b2);
    batch_free(&b);
}

struct worker {
    struct vl_store *s;
    uint32_t base;
    int errors;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    struct vl_store *s = w->s;
    char tok[32];
    snprintf(tok, sizeof(tok), "w%u", w->base);
    for (uint32_t i = 0; i < 150; i++) {
        uint32_t id = w->base + i;
        struct batch b;
        batch_init(&b, 2);
        batch_set(&b, 0, id, 2 * (uint64_t)id, "payload", 2, 1, tok, 2, "shared");
        batch_set(&b, 1, id + 100000, 2 * (uint64_t)id + 1, "payload2", 1, 2, "shared");
        w->errors += put(s, T1, &b) != VEIL_OK;
        struct vl_bytes want = docref(b.docs[0]);
        struct vl_rows r;
        if (s->ops->get_rows(s, T1, &want, 1, &r) != VEIL_OK || r.n != 1) {
            w->errors++;
        }
        vl_rows_free(&r);
        struct vl_doclist l;
        const char *toks[] = {tok, NULL};
        if (find_toks(s, T1, 1, toks, NULL, 1000, &l) != VEIL_OK || l.n != i + 1) {
            w->errors++;
        }
        vl_doclist_free(&l);
        const char *sh[] = {"shared", NULL};
        w->errors += find_toks(s, T1, 2, sh, NULL, 50, &l) != VEIL_OK;
        vl_doclist_free(&l);
        struct vl_bytes gone = docref(b.docs[1]);
        w->errors += s->ops->delete_rows(s, T1, &gone, 1) != VEIL_OK;
        w->errors += s->ops->ensure_table(s, T2) != VEIL_OK;
        w->errors += s->ops->ping(s) != VEIL_OK;
        /* this row alone among the two, through temp.vl_docs on whichever connection */
        struct vl_bytes both[2] = {docref(b.docs[0]), gone};
        struct vl_pred only = {NULL, 0, true, both, 2};
        if (s->ops->find(s, T1, &only, NULL, 10, &l) != VEIL_OK || l.n != 1 ||
            docid(l.docs[0]) != id) {
            w->errors++;
        }
        vl_doclist_free(&l);
        /* the key-value space: this thread's key, its previous one deleted */
        uint8_t key[VL_KV_KEY_BYTES], prev[VL_KV_KEY_BYTES], val[VL_KV_VAL_MAX];
        mkkey(key, id);
        mkkey(prev, id - 1);
        struct vl_kv e = {{key, VL_KV_KEY_BYTES}, {val, mkval(val, id, 1)}};
        w->errors += s->ops->kv_put(s, T1, &e, 1) != VEIL_OK;
        struct vl_bytes ks[2] = {{key, VL_KV_KEY_BYTES}, {prev, VL_KV_KEY_BYTES}};
        w->errors += s->ops->kv_delete(s, T1, &ks[1], 1) != VEIL_OK;
        struct vl_kv_values got;
        if (s->ops->kv_get(s, T1, ks, 2, &got) != VEIL_OK || got.vals[1].p != NULL ||
            got.vals[0].n != e.val.n || memcmp(got.vals[0].p, val, e.val.n) != 0) {
            w->errors++;
        }
        vl_kv_values_free(&got);
        batch_free(&b);
    }
    return NULL;
}

static void test_threads(void **state)
{
    struct fx *f = *state;
    enum { NTH = 4 };
    pthread_t th[NTH];
    struct worker w[NTH];
    for (int i = 0; i < NTH; i++) {
        w[i] = (struct worker){f->s, (uint32_t)(i + 1) * 1000, 0};
        assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < NTH; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].errors, 0);
    }
    struct vl_pred all = {NULL, 0};
    struct vl_doclist l;
    assert_int_equal(f->s->ops->find(f->s, T1, &all, NULL, 100000, &l), VEIL_OK);
    assert_int_equal(l.n, NTH * 150);
    vl_doclist_free(&l);
}

static void test_unavailable(void **state)
{
    (void)state;
    char *dir = tu_tempdir();
    char path[1024];
    struct vl_store *s = NULL;
    veil_status st;
    /* a parent that is a regular file: unopenable even for root */
    snprintf(path, sizeof(path), "%s/plain", dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("not a directory", fp);
    fclose(fp);
    assert_int_equal(vl_store_open("sqlite:plain/cloud.db", dir, &s, &st),
                     VEIL_ERR_STORE_UNAVAILABLE);
    assert_non_null(strstr(st.message, "sqlite:plain/cloud.db"));
    assert_null(s);
    assert_int_equal(vl_store_open("sqlite:plain/sub/cloud.db", dir, &s, &st),
                     VEIL_ERR_STORE_UNAVAILABLE);
    /* a directory where the file should be */
    snprintf(path, sizeof(path), "%s/isdir.db", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(vl_store_open("sqlite:isdir.db", dir, &s, &st),
                     VEIL_ERR_STORE_UNAVAILABLE);
    /* a file that is not a database */
    snprintf(path, sizeof(path), "%s/junk.db", dir);
    fp = fopen(path, "w");
    assert_non_null(fp);
    for (int i = 0; i < 512; i++) {
        fputs("this is not an SQLite database at all ", fp);
    }
    fclose(fp);
    assert_int_equal(vl_store_open("sqlite:junk.db", dir, &s, &st),
                     VEIL_ERR_STORE_UNAVAILABLE);
    assert_null(strstr(st.message, "this is not"));
    tu_rmtree(dir);
    free(dir);
}

/* Another process holding the write lock: writes time out as unavailable (after the busy
 * timeout, a few seconds), reads carry on (WAL). */
static void test_busy(void **state)
{
    struct fx *f = *state;
    struct vl_store *s = f->s;
    char path[1024];
    sqlite3 *other = NULL;
    assert_int_equal(put1(s, T1, 1, 1, "one", 1, "x"), VEIL_OK);
    snprintf(path, sizeof(path), "%s/cloud/cloud.db", f->dir);
    assert_int_equal(sqlite3_open(path, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);

    assert_int_equal(put1(s, T1, 2, 2, "two", 1, "x"), VEIL_ERR_STORE_UNAVAILABLE);
    uint8_t d[2][VL_DOCTOKEN_BYTES];
    mkdoc(d[0], 1);
    mkdoc(d[1], 2);
    struct vl_bytes want[2] = {docref(d[0]), docref(d[1])};
    struct vl_rows r;
    assert_int_equal(s->ops->get_rows(s, T1, want, 2, &r), VEIL_OK);
    assert_int_equal(r.n, 1);
    vl_rows_free(&r);

    assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    assert_int_equal(put1(s, T1, 2, 2, "two", 1, "x"), VEIL_OK);
    assert_int_equal(s->ops->get_rows(s, T1, want, 2, &r), VEIL_OK);
    assert_int_equal(r.n, 2);
    vl_rows_free(&r);
}

static void test_reopen(void **state)
{
    struct fx *f = *state;
    veil_status st;
    struct vl_rows r;
    struct vl_doclist l;
    assert_int_equal(f->s->ops->ensure_table(f->s, T1), VEIL_OK);
    assert_int_equal(put1(f->s, T1, 5, 55, "kept", 1, "tok"), VEIL_OK);
    vl_store_close(f->s);
    f->s = NULL;
    assert_int_equal(vl_store_open("sqlite:cloud/cloud.db", f->dir, &f->s, &st), VEIL_OK);
    uint8_t d[VL_DOCTOKEN_BYTES];
    mkdoc(d, 5);
    struct vl_bytes want = docref(d);
    assert_int_equal(f->s->ops->get_rows(f->s, T1, &want, 1, &r), VEIL_OK);
    assert_int_equal(r.n, 1);
    assert_blob(&r.rows[0], "kept");
    assert_int_equal(r.rows[0].seq, 55);
    vl_rows_free(&r);
    const char *tok[] = {"tok", NULL};
    assert_int_equal(find_toks(f->s, T1, 1, tok, NULL, 10, &l), VEIL_OK);
    assert_int_equal(l.n, 1);
    vl_doclist_free(&l);
}

/* A store file of another layout (an older pre-release veil's, or with no version) is
 * refused at open, saying what to do, and left as it is; an empty file takes this layout. */
static void test_old_layout(void **state)
{
    struct fx *f = *state;
    veil_status st;
    char path[1024];
    assert_int_equal(f->s->ops->ensure_table(f->s, T1), VEIL_OK);
    vl_store_close(f->s);
    f->s = NULL;
    snprintf(path, sizeof(path), "%s/cloud/cloud.db", f->dir);
    static const char *const versions[] = {"2", "0", "99"};
    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
        sqlite3 *db = NULL;
        char sql[64];
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        snprintf(sql, sizeof(sql), "PRAGMA user_version=%s", versions[i]);
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
        struct vl_store *s = NULL;
        assert_int_equal(vl_store_open("sqlite:cloud/cloud.db", f->dir, &s, &st),
                         VEIL_ERR_STORE_UNAVAILABLE);
        assert_null(s);
        assert_non_null(strstr(st.message, "older pre-release veil"));
        assert_non_null(strstr(st.message, "load its data again"));
        assert_int_equal(tu_sql_int(path, "SELECT user_version FROM pragma_user_version"),
                         atoi(versions[i]));
    }
    /* a file with no tables, whatever its version, is taken */
    char other[1024];
    snprintf(other, sizeof(other), "%s/empty.db", f->dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(other, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version=2", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(vl_store_open("sqlite:empty.db", f->dir, &f->s, &st), VEIL_OK);
    assert_int_equal(f->s->ops->ensure_table(f->s, T1), VEIL_OK);
    assert_int_equal(put1(f->s, T1, 1, 1, "one", 1, "tok"), VEIL_OK);
}

/* Whether `pat` occurs in any of the store's files. */
static int on_disk(const char *dir, const uint8_t *pat, size_t n)
{
    static const char *sfx[] = {"", "-wal", "-shm"};
    int found = 0;
    for (size_t i = 0; i < 3; i++) {
        char path[1024];
        size_t len = 0;
        snprintf(path, sizeof(path), "%s/cloud/cloud.db%s", dir, sfx[i]);
        char *data = tu_read_file(path, &len);
        if (data != NULL && memmem(data, len, pat, n) != NULL) {
            found = 1;
        }
        free(data);
    }
    return found;
}

static void mkpattern(uint8_t p[64], uint8_t salt)
{
    for (int i = 0; i < 64; i++) {
        p[i] = (uint8_t)(0x9e ^ (i * 37) ^ salt);
    }
}

static void test_secure_delete(void **state)
{
    struct fx *f = *state;
    struct vl_store *s = f->s;
    uint8_t secret[64], dropped[64];
    mkpattern(secret, 0x11);
    mkpattern(dropped, 0x77);

    /* neighbours that stay, so the pages are reused rather than emptied */
    struct batch b;
    batch_init(&b, 200);
    for (uint32_t i = 0; i < 200; i++) {
        batch_set(&b, i, 1000 + i, i, "a neighbour that stays in the table", 1, 1, "n");
    }
    assert_int_equal(put(s, T1, &b), VEIL_OK);
    assert_int_equal(put(s, T2, &b), VEIL_OK);
    batch_free(&b);

    struct vl_token tk = {.tok = {(uint8_t *)"secret-token", 12}};
    mkcol(tk.col, 1);
    uint8_t d1[VL_DOCTOKEN_BYTES], d2[VL_DOCTOKEN_BYTES];
    mkdoc(d1, 1);
    mkdoc(d2, 2);
    struct vl_row r1 = {docref(d1), 1001, {secret, 64}, &tk, 1};
    struct vl_row r2 = {docref(d2), 1002, {dropped, 64}, &tk, 1};
    assert_int_equal(s->ops->put_rows(s, T1, &r1, 1), VEIL_OK);
    assert_int_equal(s->ops->put_rows(s, T2, &r2, 1), VEIL_OK);
    assert_true(on_disk(f->dir, secret, 64)); /* the probe can see it */
    assert_true(on_disk(f->dir, dropped, 64));

    /* delete the row, and drop a table holding the other */
    struct vl_bytes del = docref(d1);
    assert_int_equal(s->ops->delete_rows(s, T1, &del, 1), VEIL_OK);
    assert_int_equal(s->ops->drop_table(s, T2), VEIL_OK);
    assert_false(on_disk(f->dir, secret, 64));
    assert_false(on_disk(f->dir, dropped, 64));
    /* and the remaining table still works */
    struct vl_doclist l;
    const char *n[] = {"n", NULL};
    assert_int_equal(find_toks(s, T1, 1, n, NULL, 1000, &l), VEIL_OK);
    assert_int_equal(l.n, 200);
    vl_doclist_free(&l);
    vl_store_close(f->s);
    f->s = NULL;
    assert_false(on_disk(f->dir, secret, 64));
    assert_false(on_disk(f->dir, dropped, 64));
}

/* ---- the key-value space ---- */

/* Entries for keys ids[0..n) at version v; every pointer is owned here. */
struct kvbatch {
    struct vl_kv *kv;
    struct vl_bytes *keys; /* the same keys, for get and delete */
    uint8_t (*kb)[VL_KV_KEY_BYTES];
    uint8_t (*vb)[VL_KV_VAL_MAX];
    size_t n;
};

static void kvb_init(struct kvbatch *b, const uint32_t *ids, size_t n, uint32_t v)
{
    b->kv = calloc(n ? n : 1, sizeof(*b->kv));
    b->keys = calloc(n ? n : 1, sizeof(*b->keys));
    b->kb = calloc(n ? n : 1, sizeof(*b->kb));
    b->vb = calloc(n ? n : 1, sizeof(*b->vb));
    assert_true(b->kv && b->keys && b->kb && b->vb);
    b->n = n;
    for (size_t i = 0; i < n; i++) {
        mkkey(b->kb[i], ids[i]);
        b->kv[i].key = (struct vl_bytes){b->kb[i], VL_KV_KEY_BYTES};
        b->kv[i].val = (struct vl_bytes){b->vb[i], mkval(b->vb[i], ids[i], v)};
        b->keys[i] = b->kv[i].key;
    }
}

static void kvb_free(struct kvbatch *b)
{
    free(b->kv);
    free(b->keys);
    free(b->kb);
    free(b->vb);
}

/* ids 0..n-1 times `mul`, plus `add`. */
static uint32_t *ids_seq(size_t n, uint32_t mul, uint32_t add)
{
    uint32_t *ids = calloc(n ? n : 1, sizeof(*ids));
    assert_non_null(ids);
    for (size_t i = 0; i < n; i++) {
        ids[i] = (uint32_t)i * mul + add;
    }
    return ids;
}

static veil_err kv_put_ids(struct vl_store *s, const char *t, const uint32_t *ids, size_t n,
                           uint32_t v)
{
    struct kvbatch b;
    kvb_init(&b, ids, n, v);
    veil_err rc = s->ops->kv_put(s, t, b.kv, n);
    kvb_free(&b);
    return rc;
}

/* Gets keys ids[0..n) and checks each answer: vers[i] is the version key ids[i] should have,
 * 0 for absent (vers NULL: all at version `v`). */
static void kv_expect(struct vl_store *s, const char *t, const uint32_t *ids, size_t n,
                      const uint32_t *vers, uint32_t v)
{
    struct kvbatch b;
    struct vl_kv_values got;
    uint8_t want[VL_KV_VAL_MAX];
    kvb_init(&b, ids, n, 0);
    assert_int_equal(s->ops->kv_get(s, t, b.keys, n, &got), VEIL_OK);
    assert_int_equal(got.n, n);
    for (size_t i = 0; i < n; i++) {
        uint32_t ver = vers != NULL ? vers[i] : v;
        if (ver == 0) {
            assert_null(got.vals[i].p);
            assert_int_equal(got.vals[i].n, 0);
            continue;
        }
        size_t wn = mkval(want, ids[i], ver);
        assert_non_null(got.vals[i].p);
        assert_int_equal(got.vals[i].n, wn);
        assert_memory_equal(got.vals[i].p, want, wn);
        /* every value lies in the one arena */
        assert_non_null(got.arena);
    }
    vl_kv_values_free(&got);
    assert_null(got.vals);
    assert_null(got.arena);
    assert_int_equal(got.n, 0);
    kvb_free(&b);
}

static void test_kv_roundtrip(void **state)
{
    struct fx *f = *state;
    struct vl_store *s = f->s;
    struct vl_kv_values got;
    uint32_t ids[3] = {1, 2, 3};
    uint32_t v1[3] = {1, 1, 1};

    /* no table yet: a get finds nothing, a delete is a no-op */
    kv_expect(s, T1, ids, 3, NULL, 0);
    struct kvbatch b;
    kvb_init(&b, ids, 3, 1);
    assert_int_equal(s->ops->kv_delete(s, T1, b.keys, 3), VEIL_OK);
    /* the put creates the table */
    assert_int_equal(s->ops->kv_put(s, T1, b.kv, 3), VEIL_OK);
    kv_expect(s, T1, ids, 3, v1, 0);

    /* absent keys, repeats and any order in one get */
    uint32_t q[8] = {3, 99, 1, 3, 2, 3, 100, 1};
    uint32_t qv[8] = {1, 0, 1, 1, 1, 1, 0, 1};
    kv_expect(s, T1, q, 8, qv, 0);
    /* repeats share their bytes */
    struct kvbatch qb;
    kvb_init(&qb, q, 8, 0);
    assert_int_equal(s->ops->kv_get(s, T1, qb.keys, 8, &got), VEIL_OK);
    assert_ptr_equal(got.vals[0].p, got.vals[3].p);
    assert_ptr_equal(got.vals[2].p, got.vals[7].p);
    vl_kv_values_free(&got);
    kvb_free(&qb);

    /* replace one, add one; the rest stand */
    uint32_t ids2[2] = {2, 4};
    assert_int_equal(kv_put_ids(s, T1, ids2, 2, 2), VEIL_OK);
    uint32_t all[4] = {1, 2, 3, 4}, allv[4] = {1, 2, 1, 2};
    kv_expect(s, T1, all, 4, allv, 0);

    /* a repeated key in one put: the last entry wins */
    struct kvbatch rb;
    uint32_t rep[2] = {5, 5};
    kvb_init(&rb, rep, 2, 3);
    rb.kv[1].val.n = mkval(rb.vb[1], 5, 4);
    assert_int_equal(s->ops->kv_put(s, T1, rb.kv, 2), VEIL_OK);
    uint32_t five = 5, fivev = 4;
    kv_expect(s, T1, &five, 1, &fivev, 0);
    kvb_free(&rb);

    /* delete two (and an absent one, and one twice) */
    uint32_t del[4] = {1, 3, 77, 3};
    struct kvbatch db;
    kvb_init(&db, del, 4, 0);
    assert_int_equal(s->ops->kv_delete(s, T1, db.keys, 4), VEIL_OK);
    kvb_free(&db);
    uint32_t allv2[4] = {0, 2, 0, 2};
    kv_expect(s, T1, all, 4, allv2, 0);

    /* values of the extreme sizes */
    uint8_t k[VL_KV_KEY_BYTES], big[VL_KV_VAL_MAX];
    mkkey(k, 1000);
    memset(big, 0xee, sizeof(big));
    struct vl_kv e[2] = {{{k, VL_KV_KEY_BYTES}, {big, VL_KV_VAL_MAX}}};
    uint8_t k2[VL_KV_KEY_BYTES];
    mkkey(k2, 1001);
    e[1] = (struct vl_kv){{k2, VL_KV_KEY_BYTES}, {big, 1}};
    assert_int_equal(s->ops->kv_put(s, T1, e, 2), VEIL_OK);
    struct vl_bytes ek[2] = {e[0].key, e[1].key};
    assert_int_equal(s->ops->kv_get(s, T1, ek, 2, &got), VEIL_OK);
    assert_int_equal(got.vals[0].n, VL_KV_VAL_MAX);
    assert_memory_equal(got.vals[0].p, big, VL_KV_VAL_MAX);
    assert_int_equal(got.vals[1].n, 1);
    assert_int_equal(got.vals[1].p[0], 0xee);
    vl_kv_values_free(&got);

    /* empty calls */
    assert_int_equal(s->ops->kv_put(s, T1, NULL, 0), VEIL_OK);
    assert_int_equal(s->ops->kv_delete(s, T1, NULL, 0), VEIL_OK);
    assert_int_equal(s->ops->kv_get(s, T1, NULL, 0, &got), VEIL_OK);
    assert_int_equal(got.n, 0);
    assert_null(got.vals);
    vl_kv_values_free(&got);
    vl_kv_values_free(NULL);

    /* the key-value space is the table's: T2 holds nothing, and rows do not touch it */
    kv_expect(s, T2, all, 4, NULL, 0);
    assert_int_equal(put1(s, T1, 1, 1, "row", 1, "t"), VEIL_OK);
    uint8_t d[VL_DOCTOKEN_BYTES];
    mkdoc(d, 1);
    struct vl_bytes dref = docref(d);
    assert_int_equal(s->ops->delete_rows(s, T1, &dref, 1), VEIL_OK);
    kv_expect(s, T1, all, 4, allv2, 0);
    kvb_free(&b);
}

/* A large get, across many IN batches, with repeats and absent keys. */
static void test_kv_large(void **state)
{
    struct fx *f = *state;
    struct vl_store *s = f->s;
    enum { N = 10000 };
    uint32_t *ids = ids_seq(N, 1, 0);
    assert_int_equal(kv_put_ids(s, T1, ids, N, 1), VEIL_OK);
    kv_expect(s, T1, ids, N, NULL, 1);

    /* multiples of 3 below 12000, each asked for 2 or 3 times; those >= N are absent */
    uint32_t *q = calloc(N, sizeof(*q)), *qv = calloc(N, sizeof(*qv));
    assert_true(q && qv);
    for (size_t j = 0; j < N; j++) {
        q[j] = (uint32_t)(j * 3 % 12000);
        qv[j] = q[j] < N ? 1 : 0;
    }
    kv_expect(s, T1, q, N, qv, 0);

    /* a large delete: the even ids */
    uint32_t *even = ids_seq(N / 2, 2, 0);
    struct kvbatch b;
    kvb_init(&b, even, N / 2, 0);
    assert_int_equal(s->ops->kv_delete(s, T1, b.keys, N / 2), VEIL_OK);
    kvb_free(&b);
    for (size_t i = 0; i < N; i++) {
        qv[i] = ids[i] % 2;
    }
    kv_expect(s, T1, ids, N, qv, 0);
    free(even);
    free(q);
    free(qv);
    free(ids);
}

/* All or none: a malformed entry anywhere refuses the whole batch, and so does a failure
 * of the database in the middle of one. */
/* put: a write's entries and rows go in together, or neither does. */
static void test_put_rows_and_entries(void **state)
{
    struct fx *f = *state;
    struct vl_store *s = f->s;
    enum { N = 20 };
    uint32_t *ids = ids_seq(N, 500, 0);
    uint32_t vers[N] = {0};
    struct batch b;
    struct kvbatch kb;
    struct vl_rows got = {0};
    struct vl_bytes docs[2];
    uint8_t d[2][VL_DOCTOKEN_BYTES];
    mkdoc(d[0], 1);
    mkdoc(d[1], 2);
    docs[0] = docref(d[0]);
    docs[1] = docref(d[1]);

    /* a bad entry: neither the rows nor any entry */
    batch_init(&b, 2);
    batch_set(&b, 0, 1, 10, "row one", 1, 1, "t1");
    batch_set(&b, 1, 2, 11, "row two", 0);
    kvb_init(&kb, ids, N, 1);
    kb.kv[N - 1].val.n = 0;
    assert_int_equal(s->ops->put(s, T1, b.rows, 2, kb.kv, N), VEIL_ERR_INTERNAL);
    assert_int_equal(s->ops->get_rows(s, T1, docs, 2, &got), VEIL_OK);
    assert_int_equal(got.n, 0);
    vl_rows_free(&got);
    kv_expect(s, T1, ids, N, vers, 0);

    /* a bad row: no entry either */
    kb.kv[N - 1].val.n = 4;
    b.rows[1].doc.n = 3;
    assert_int_equal(s->ops->put(s, T1, b.rows, 2, kb.kv, N), VEIL_ERR_INTERNAL);
    kv_expect(s, T1, ids, N, vers, 0);
    b.rows[1].doc.n = VL_DOCTOKEN_BYTES;
    kvb_free(&kb);

    /* all good: both */
    kvb_init(&kb, ids, N, 1);
    assert_int_equal(s->ops->put(s, T1, b.rows, 2, kb.kv, N), VEIL_OK);
    for (size_t i = 0; i < N; i++) {
        vers[i] = 1;
    }
    kv_expect(s, T1, ids, N, vers, 0);
    assert_int_equal(s->ops->get_rows(s, T1, docs, 2, &got), VEIL_OK);
    assert_int_equal(got.n, 2);
    assert_blob(row_of(&got, 1), "row one");
    vl_rows_free(&got);
    kvb_free(&kb);

    /* rows alone and entries alone work through it too, on a table not made yet */
    assert_int_equal(s->ops->put(s, T2, b.rows, 1, NULL, 0), VEIL_OK);
    kvb_init(&kb, ids, N, 2);
    assert_int_equal(s->ops->put(s, T2, NULL, 0, kb.kv, N), VEIL_OK);
    kvb_free(&kb);
    for (size_t i = 0; i < N; i++) {
        vers[i] = 2;
    }
    kv_expect(s, T2, ids, N, vers, 0);
    batch_free(&b);
    free(ids);
}

static void test_kv_atomic(void **state)
{
    struct fx *f = *state;
    struct vl_store *s = f->s;
    enum { N = 100 };
    uint32_t *ids = ids_seq(N, 1, 0);
    assert_int_equal(kv_put_ids(s, T1, ids, N / 2, 1), VEIL_OK); /* 0..49 at version 1 */
    uint32_t vers[N];
    for (size_t i = 0; i < N; i++) {
        vers[i] = i < N / 2 ? 1 : 0;
    }

    struct kvbatch b;
    uint8_t big[VL_KV_VAL_MAX + 1] = {0};
    for (int bad = 0; bad < 6; bad++) {
        kvb_init(&b, ids, N, 2); /* would replace 0..49 and add 50..99 */
        size_t at = bad % 2 ? 0 : N - 1;
        switch (bad) {
        case 0:
        case 1:
            b.kv[at].key.n = VL_KV_KEY_BYTES - 1;
            break;
        case 2:
            b.kv[at].key.n = VL_KV_KEY_BYTES + 1;
            break;
        case 3:
            b.kv[at].val.n = 0;
            break;
        case 4:
            b.kv[at].val = (struct vl_bytes){big, sizeof(big)};
            break;
        default:
            b.kv[at].val.p = NULL;
            break;
        }
        assert_int_equal(s->ops->kv_put(s, T1, b.kv, N), VEIL_ERR_INTERNAL);
        kvb_free(&b);
        kv_expect(s, T1, ids, N, vers, 0);
    }
    assert_int_equal(s->ops->kv_put(s, "NOT-HEX", NULL, 0), VEIL_ERR_INTERNAL);

    /* malformed keys in get and delete are refused too, and delete nothing */
    kvb_init(&b, ids, N, 0);
    b.keys[7].n = 3;
    struct vl_kv_values got = {NULL, 0, NULL};
    assert_int_equal(s->ops->kv_get(s, T1, b.keys, N, &got), VEIL_ERR_INTERNAL);
    assert_null(got.vals);
    assert_int_equal(s->ops->kv_delete(s, T1, b.keys, N), VEIL_ERR_INTERNAL);
    b.keys[7].n = VL_KV_KEY_BYTES;
    b.keys[7].p = NULL;
    assert_int_equal(s->ops->kv_delete(s, T1, b.keys, N), VEIL_ERR_INTERNAL);
    assert_int_equal(s->ops->kv_get(s, "x", b.keys, 1, &got), VEIL_ERR_INTERNAL);
    assert_int_equal(s->ops->kv_delete(s, "", b.keys, 1), VEIL_ERR_INTERNAL);
    kvb_free(&b);
    kv_expect(s, T1, ids, N, vers, 0);

    /* the database refuses the 80th entry (a trigger added behind the driver's back): the
     * 79 before it are rolled back */
    char path[1024], sql[512];
    sqlite3 *db = NULL;
    uint8_t k79[VL_KV_KEY_BYTES];
    mkkey(k79, 79);
    snprintf(path, sizeof(path), "%s/cloud/cloud.db", f->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char hex[2 * VL_KV_KEY_BYTES + 1];
    for (size_t i = 0; i < VL_KV_KEY_BYTES; i++) {
        snprintf(hex + 2 * i, 3, "%02x", k79[i]);
    }
    snprintf(sql, sizeof(sql),
             "CREATE TRIGGER refuse BEFORE INSERT ON \"k_%s\" WHEN NEW.key = x'%s'"
             " BEGIN SELECT RAISE(ABORT, 'refused'); END;",
             T1, hex);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(kv_put_ids(s, T1, ids, N, 3), VEIL_ERR_STORE_UNAVAILABLE);
    kv_expect(s, T1, ids, N, vers, 0);
    assert_int_equal(sqlite3_exec(db, "DROP TRIGGER refuse", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(kv_put_ids(s, T1, ids, N, 3), VEIL_OK);
    kv_expect(s, T1, ids, N, NULL, 3);
    free(ids);
}

/* drop_table takes the key-value space with it; a space removed behind the driver's back
 * (or never created, as in a table written before it existed) reads as empty, and the next
 * put makes it again. */
static void test_kv_drop(void **state)
{
    struct fx *f = *state;
    struct vl_store *s = f->s;
    uint32_t *ids = ids_seq(20, 1, 0);
    uint8_t secret[64];
    mkpattern(secret, 0x42);
    uint8_t k[VL_KV_KEY_BYTES];
    mkkey(k, 500);
    struct vl_kv e = {{k, VL_KV_KEY_BYTES}, {secret, sizeof(secret)}};
    assert_int_equal(kv_put_ids(s, T1, ids, 20, 1), VEIL_OK);
    assert_int_equal(s->ops->kv_put(s, T1, &e, 1), VEIL_OK);
    assert_int_equal(kv_put_ids(s, T2, ids, 20, 2), VEIL_OK);
    assert_true(on_disk(f->dir, secret, sizeof(secret)));

    char path[1024];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    snprintf(path, sizeof(path), "%s/cloud/cloud.db", f->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_schema WHERE name = ?",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_bind_text(st, 1, "k_" T1, -1, SQLITE_STATIC), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 1);
    sqlite3_reset(st);

    assert_int_equal(s->ops->drop_table(s, T1), VEIL_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 0);
    sqlite3_reset(st);
    assert_false(on_disk(f->dir, secret, sizeof(secret)));
    kv_expect(s, T1, ids, 20, NULL, 0);
    kv_expect(s, T2, ids, 20, NULL, 2); /* the other table keeps its entries */
    assert_int_equal(kv_put_ids(s, T1, ids, 5, 3), VEIL_OK);
    kv_expect(s, T1, ids, 5, NULL, 3);

    /* T2's rows stay, its k_T goes: reads see nothing, deletes are no-ops, puts recreate */
    assert_int_equal(put1(s, T2, 1, 1, "row", 1, "t"), VEIL_OK);
    assert_int_equal(sqlite3_exec(db, "DROP TABLE \"k_" T2 "\"", NULL, NULL, NULL), SQLITE_OK);
    kv_expect(s, T2, ids, 20, NULL, 0);
    struct kvbatch b;
    kvb_init(&b, ids, 20, 0);
    assert_int_equal(s->ops->kv_delete(s, T2, b.keys, 20), VEIL_OK);
    kvb_free(&b);
    assert_int_equal(kv_put_ids(s, T2, ids, 20, 4), VEIL_OK);
    kv_expect(s, T2, ids, 20, NULL, 4);
    assert_int_equal(sqlite3_bind_text(st, 1, "k_" T2, -1, SQLITE_STATIC), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
    free(ids);
}

/* Stored values the driver cannot return faithfully: not a blob, empty or too long. */
static void test_kv_tampered(void **state)
{
    struct fx *f = *state;
    struct vl_store *s = f->s;
    uint32_t *ids = ids_seq(10, 1, 0);
    assert_int_equal(kv_put_ids(s, T1, ids, 10, 1), VEIL_OK);
    char path[1024], sql[512];
    sqlite3 *db = NULL;
    snprintf(path, sizeof(path), "%s/cloud/cloud.db", f->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    static const char *const bad[] = {"x''", "'text'", "42", "zeroblob(1025)"};
    struct kvbatch b;
    kvb_init(&b, ids, 10, 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(sql, sizeof(sql),
                 "UPDATE \"k_%s\" SET val = %s WHERE key = (SELECT max(key) FROM \"k_%s\")", T1,
                 bad[i], T1);
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_changes(db), 1);
        struct vl_kv_values got = {NULL, 0, NULL};
        assert_int_equal(s->ops->kv_get(s, T1, b.keys, 10, &got), VEIL_ERR_INTEGRITY);
        assert_null(got.vals);
        assert_null(got.arena);
    }
    kvb_free(&b);
    sqlite3_close(db);
    free(ids);
}

/* ---- find restricted to a set of documents ---- */

static struct vl_bytes *docs_of(const uint32_t *ids, size_t n, uint8_t (**store)[VL_DOCTOKEN_BYTES])
{
    struct vl_bytes *b = calloc(n ? n : 1, sizeof(*b));
    *store = calloc(n ? n : 1, VL_DOCTOKEN_BYTES);
    assert_true(b && *store);
    for (size_t i = 0; i < n; i++) {
        mkdoc((*store)[i], ids[i]);
        b[i] = docref((*store)[i]);
    }
    return b;
}

/* Asserts that l holds exactly the documents ids[0..n). */
static void assert_docs(struct vl_doclist *l, const uint32_t *ids, size_t n)
{
    assert_int_equal(l->n, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(docid(l->docs[i]), ids[i]);
    }
    vl_doclist_free(l);
}

static void test_find_only_docs(void **state)
{
    struct fx *f = *state;
    struct vl_store *s = f->s;
    struct batch b;
    struct vl_doclist l;
    uint8_t(*store)[VL_DOCTOKEN_BYTES] = NULL;

    /* no table yet */
    uint32_t want[] = {8, 3, 42, 1, 3, 5, 2}; /* 42 absent, 3 twice, in no order */
    struct vl_bytes *docs = docs_of(want, 7, &store);
    struct vl_pred only = {.only_docs = true, .docs = docs, .ndocs = 7};
    assert_int_equal(s->ops->find(s, T1, &only, NULL, 100, &l), VEIL_OK);
    assert_int_equal(l.n, 0);
    vl_doclist_free(&l);

    batch_init(&b, 10);
    for (uint32_t i = 0; i < 10; i++) {
        batch_set(&b, i, i, i, "x", 2, 1, i % 2 ? "odd" : "even", 2, i < 5 ? "lo" : "hi");
    }
    assert_int_equal(put(s, T1, &b), VEIL_OK);
    batch_free(&b);

    /* the set alone: its documents that exist, in byte order, each once */
    uint32_t e1[] = {1, 2, 3, 5, 8};
    assert_int_equal(s->ops->find(s, T1, &only, NULL, 100, &l), VEIL_OK);
    assert_docs(&l, e1, 5);

    /* AND the terms */
    struct vl_bytes t_odd = {(uint8_t *)"odd", 3}, t_lo = {(uint8_t *)"lo", 2};
    struct vl_pred_term terms[2] = {{.toks = &t_odd, .ntoks = 1}, {.toks = &t_lo, .ntoks = 1}};
    mkcol(terms[0].col, 1);
    mkcol(terms[1].col, 2);
    struct vl_pred odd = {terms, 1, true, docs, 7};
    uint32_t e2[] = {1, 3, 5};
    assert_int_equal(s->ops->find(s, T1, &odd, NULL, 100, &l), VEIL_OK);
    assert_docs(&l, e2, 3);
    struct vl_pred odd_lo = {terms, 2, true, docs, 7};
    uint32_t e3[] = {1, 3};
    assert_int_equal(s->ops->find(s, T1, &odd_lo, NULL, 100, &l), VEIL_OK);
    assert_docs(&l, e3, 2);

    /* paging: after and limit */
    uint8_t after[VL_DOCTOKEN_BYTES];
    const uint8_t *ap = NULL;
    size_t seen = 0;
    for (int page = 0; page < 5; page++) {
        assert_int_equal(s->ops->find(s, T1, &only, ap, 2, &l), VEIL_OK);
        if (l.n == 0) {
            vl_doclist_free(&l);
            break;
        }
        for (size_t i = 0; i < l.n; i++) {
            assert_int_equal(docid(l.docs[i]), e1[seen++]);
        }
        memcpy(after, l.docs[l.n - 1], VL_DOCTOKEN_BYTES);
        ap = after;
        vl_doclist_free(&l);
    }
    assert_int_equal(seen, 5);
    mkdoc(after, 3);
    assert_int_equal(s->ops->find(s, T1, &odd, after, 1, &l), VEIL_OK);
    uint32_t e4[] = {5};
    assert_docs(&l, e4, 1);
    mkdoc(after, 4); /* not in the set, nor in the table after 8 */
    assert_int_equal(s->ops->find(s, T1, &only, after, 100, &l), VEIL_OK);
    uint32_t e5[] = {5, 8};
    assert_docs(&l, e5, 2);

    /* an empty set matches nothing; the set is ignored without only_docs */
    struct vl_pred none = {NULL, 0, true, NULL, 0};
    assert_int_equal(s->ops->find(s, T1, &none, NULL, 100, &l), VEIL_OK);
    assert_int_equal(l.n, 0);
    assert_null(l.docs);
    struct vl_pred none_t = {terms, 1, true, docs, 0};
    assert_int_equal(s->ops->find(s, T1, &none_t, NULL, 100, &l), VEIL_OK);
    assert_int_equal(l.n, 0);
    struct vl_pred ignored = {NULL, 0, false, docs, 7};
    assert_int_equal(s->ops->find(s, T1, &ignored, NULL, 100, &l), VEIL_OK);
    assert_int_equal(l.n, 10);
    vl_doclist_free(&l);

    /* one call's set is not left for the next on the same connection */
    uint32_t w6[] = {6};
    uint8_t(*store6)[VL_DOCTOKEN_BYTES] = NULL;
    struct vl_bytes *d6 = docs_of(w6, 1, &store6);
    struct vl_pred only6 = {NULL, 0, true, d6, 1};
    assert_int_equal(s->ops->find(s, T1, &only6, NULL, 100, &l), VEIL_OK);
    assert_docs(&l, w6, 1);

    /* a malformed set is a caller bug */
    d6[0].n = VL_DOCTOKEN_BYTES - 1;
    assert_int_equal(s->ops->find(s, T1, &only6, NULL, 100, &l), VEIL_ERR_INTERNAL);
    d6[0].n = VL_DOCTOKEN_BYTES;
    d6[0].p = NULL;
    assert_int_equal(s->ops->find(s, T1, &only6, NULL, 100, &l), VEIL_ERR_INTERNAL);
    struct vl_pred nodocs = {NULL, 0, true, NULL, 3};
    assert_int_equal(s->ops->find(s, T1, &nodocs, NULL, 100, &l), VEIL_ERR_INTERNAL);
    free(d6);
    free(store6);

    /* a large set: 100,000 documents, two of which exist */
    enum { BIG = 100000 };
    uint32_t *ids = ids_seq(BIG, 1, 1000);
    ids[BIG / 3] = 7;
    ids[BIG - 1] = 4;
    uint8_t(*bstore)[VL_DOCTOKEN_BYTES] = NULL;
    struct vl_bytes *bdocs = docs_of(ids, BIG, &bstore);
    struct vl_pred big = {NULL, 0, true, bdocs, BIG};
    uint32_t e7[] = {4, 7};
    assert_int_equal(s->ops->find(s, T1, &big, NULL, 100, &l), VEIL_OK);
    assert_docs(&l, e7, 2);
    struct vl_pred big_odd = {terms, 1, true, bdocs, BIG};
    assert_int_equal(s->ops->find(s, T1, &big_odd, NULL, 100, &l), VEIL_OK);
    assert_docs(&l, e7 + 1, 1);
    free(bdocs);
    free(bstore);
    free(ids);
    free(docs);
    free(store);
}

/* ---- aggregates ---- */

#define AGG_ROWS 240
#define COL_A 0x0a   /* group column A: tokens a0..a4, sometimes missing */
#define COL_B 0x0b   /* group column B: tokens b0..b2, sometimes missing */
#define COL_P 0x0c   /* predicate column: one or two of p0..p5 */
#define COL_SUM 0x30 /* ASHE cells */
#define COL_PROD 0x40 /* Paillier cells */
#define PQ_N 126869u /* 293 * 433 */

static const uint8_t agg_key[32] = {7, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                                    16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30};
static const char *const tok_a[] = {"a0", "a1", "a2", "a3", "a4"};
static const char *const tok_b[] = {"b0", "b1", "b2"};
static const char *const tok_p[] = {"p0", "p1", "p2", "p3", "p4", "p5"};

/* A document of the model: what the store should hold for it while alive. */
struct mrow {
    uint32_t id;
    uint64_t seq;
    int alive;
    int ga, gb, p1, p2; /* token indexes, -1: none */
    int has_sum;
    int64_t amount;
    int has_prod;
    uint64_t pv; /* < n^2 */
};

static uint64_t xs = 0x2545f4914f6cdd1dull;
static uint64_t xrand(void)
{
    xs ^= xs << 13;
    xs ^= xs >> 7;
    xs ^= xs << 17;
    return xs;
}

static uint64_t pq_n2(void)
{
    return (uint64_t)PQ_N * PQ_N;
}

/* n^2 big-endian, minimal. */
static size_t be_bytes(uint64_t v, uint8_t out[8], int minimal)
{
    size_t n = 8;
    for (int i = 7; i >= 0; i--) {
        out[i] = (uint8_t)v;
        v >>= 8;
    }
    if (!minimal) {
        return n;
    }
    size_t at = 0;
    while (at < 7 && out[at] == 0) {
        at++;
    }
    memmove(out, out + at, 8 - at);
    return 8 - at;
}

static void mrow_random(struct mrow *m)
{
    m->ga = xrand() % 6 == 0 ? -1 : (int)(xrand() % 5);
    m->gb = xrand() % 7 == 0 ? -1 : (int)(xrand() % 3);
    m->p1 = (int)(xrand() % 6);
    m->p2 = xrand() % 3 == 0 ? (int)(xrand() % 6) : -1;
    if (m->p2 == m->p1) {
        m->p2 = -1;
    }
    m->has_sum = xrand() % 5 != 0;
    m->amount = (int64_t)(xrand() % 2000001) - 1000000;
    if (xrand() % 10 == 0) {
        m->amount = xrand() % 2 ? INT64_MAX / 4 : INT64_MIN / 4; /* big ones too */
    }
    m->has_prod = xrand() % 4 != 0;
    m->pv = 1 + xrand() % (pq_n2() - 1);
}

/* Writes the model rows idx[0..n) in one put. */
static void mput(struct vl_store *s, const char *t, struct mrow *rows, const size_t *idx,
                 size_t n)
{
    struct vl_row *vr = calloc(n, sizeof(*vr));
    uint8_t(*docs)[VL_DOCTOKEN_BYTES] = calloc(n, VL_DOCTOKEN_BYTES);
    struct vl_token(*tk)[4] = calloc(n, sizeof(*tk));
    struct vl_sum_cell *sc = calloc(n, sizeof(*sc));
    struct vl_prod_cell *pc = calloc(n, sizeof(*pc));
    uint8_t(*pv)[8] = calloc(n, 8);
    assert_true(vr && docs && tk && sc && pc && pv);
    for (size_t i = 0; i < n; i++) {
        struct mrow *m = &rows[idx[i]];
        struct vl_row *r = &vr[i];
        mkdoc(docs[i], m->id);
        r->doc = docref(docs[i]);
        r->seq = m->seq;
        r->blob.p = (uint8_t *)"blob";
        r->blob.n = 4;
        r->tokens = tk[i];
        const struct {
            int ix;
            uint8_t col;
            const char *const *names;
        } want[4] = {{m->ga, COL_A, tok_a}, {m->gb, COL_B, tok_b}, {m->p1, COL_P, tok_p},
                     {m->p2, COL_P, tok_p}};
        for (int k = 0; k < 4; k++) {
            if (want[k].ix >= 0) {
                struct vl_token *t1 = &tk[i][r->ntokens++];
                mkcol(t1->col, want[k].col);
                t1->tok.p = (uint8_t *)want[k].names[want[k].ix];
                t1->tok.n = strlen(want[k].names[want[k].ix]);
            }
        }
        if (m->has_sum) {
            mkcol(sc[i].col, COL_SUM);
            vl_ashe_limbs(vl_ashe_encrypt(agg_key, m->seq, m->amount), sc[i].limbs);
            r->sums = &sc[i];
            r->nsums = 1;
        }
        if (m->has_prod) {
            mkcol(pc[i].col, COL_PROD);
            pc[i].val.p = pv[i];
            pc[i].val.n = be_bytes(m->pv, pv[i], i % 2); /* leading zeros or not */
            r->prods = &pc[i];
            r->nprods = 1;
        }
        m->alive = 1;
    }
    assert_int_equal(s->ops->put_rows(s, t, vr, n), VEIL_OK);
    free(vr);
    free(docs);
    free(tk);
    free(sc);
    free(pc);
    free(pv);
}

/* A predicate of up to two terms over the model: term k holds tokens of COL_P (term 0) or
 * COL_A (term 1) given as bitmasks of token indexes; mask 0 ends the list. only > 0
 * restricts it to the documents whose id is a multiple of `only` (only_docs, listing dead
 * and never written documents too), only < 0 to an empty set of documents. */
struct mpred {
    unsigned p_mask;
    unsigned a_mask;
    int only;
};

static int mrow_matches(const struct mrow *m, const struct mpred *q)
{
    if (q->p_mask != 0 && !((m->p1 >= 0 && (q->p_mask >> m->p1) & 1) ||
                            (m->p2 >= 0 && (q->p_mask >> m->p2) & 1))) {
        return 0;
    }
    if (q->a_mask != 0 && !(m->ga >= 0 && (q->a_mask >> m->ga) & 1)) {
        return 0;
    }
    if (q->only != 0 && (q->only < 0 || m->id % (uint32_t)q->only != 0)) {
        return 0;
    }
    return 1;
}

#define ABSENT_ID 2000000u /* above every id of the model */

/* The only_docs set of q over the model rows (NULL when q has none): every row's document
 * whose id is a multiple of q->only, alive or not, and three that were never written. */
static struct vl_bytes *mpred_docs(const struct mpred *q, const struct mrow *rows, size_t n,
                                   uint8_t (**store)[VL_DOCTOKEN_BYTES], size_t *ndocs)
{
    uint32_t *ids = calloc(n + 3, sizeof(*ids));
    assert_non_null(ids);
    *ndocs = 0;
    for (size_t i = 0; q->only > 0 && i < n; i++) {
        if (rows[i].id % (uint32_t)q->only == 0) {
            ids[(*ndocs)++] = rows[i].id;
        }
    }
    for (uint32_t k = 0; q->only > 0 && k < 3; k++) {
        ids[(*ndocs)++] = ABSENT_ID + k * (uint32_t)q->only;
    }
    struct vl_bytes *docs = docs_of(ids, *ndocs, store);
    free(ids);
    return docs;
}

static int key_is(const struct vl_bytes *k, const char *tok)
{
    if (tok == NULL) {
        return k->n == 0;
    }
    return k->n == strlen(tok) && memcmp(k->p, tok, k->n) == 0;
}

/* Runs the aggregate and checks every group against the model: group counts, cell counts,
 * decrypted ASHE sums, exact runs, and Paillier products (GMP). */
static void check_agg(struct vl_store *s, const char *t, const struct mrow *rows, size_t nrows,
                      size_t ngroup, const struct mpred *q)
{
    struct vl_bytes ptoks[6], atoks[5];
    struct vl_pred_term terms[2];
    size_t nterms = 0, np = 0, na = 0;
    for (int i = 0; i < 6; i++) {
        if ((q->p_mask >> i) & 1) {
            ptoks[np].p = (uint8_t *)tok_p[i];
            ptoks[np++].n = strlen(tok_p[i]);
        }
    }
    for (int i = 0; i < 5; i++) {
        if ((q->a_mask >> i) & 1) {
            atoks[na].p = (uint8_t *)tok_a[i];
            atoks[na++].n = strlen(tok_a[i]);
        }
    }
    if (np > 0) {
        mkcol(terms[nterms].col, COL_P);
        terms[nterms].toks = ptoks;
        terms[nterms++].ntoks = np;
    }
    if (na > 0) {
        mkcol(terms[nterms].col, COL_A);
        terms[nterms].toks = atoks;
        terms[nterms++].ntoks = na;
    }
    uint8_t(*dstore)[VL_DOCTOKEN_BYTES] = NULL;
    size_t ndocs = 0;
    struct vl_bytes *docs = mpred_docs(q, rows, nrows, &dstore, &ndocs);
    struct vl_pred pred = {terms, nterms, q->only != 0, docs, ndocs};
    uint8_t gcols[2][VL_COL_BYTES];
    mkcol(gcols[0], COL_A);
    mkcol(gcols[1], COL_B);
    uint8_t n2[8];
    size_t n2len = be_bytes(pq_n2(), n2, 1);
    struct vl_agg_col cols[2] = {{.paillier = 0}, {.paillier = 1, .modulus = {n2, n2len}}};
    mkcol(cols[0].col, COL_SUM);
    mkcol(cols[1].col, COL_PROD);
    struct vl_agg_request req = {&pred, (const uint8_t(*)[VL_COL_BYTES])gcols, ngroup, cols, 2};
    struct vl_agg_result res;
    assert_int_equal(s->ops->aggregate(s, t, &req, &res), VEIL_OK);
    assert_int_equal(res.ncols, 2);

    /* every model group must be there, with the right numbers */
    size_t seen = 0;
    for (int a = -1; a < 5; a++) {
        for (int b = -1; b < 3; b++) {
            if ((ngroup < 1 && a != -1) || (ngroup < 2 && b != -1)) {
                continue;
            }
            uint64_t count = 0, nsum = 0, nprod = 0;
            vl_i128 sum = 0;
            mpz_t prod, v, mod;
            mpz_init_set_ui(prod, 1);
            mpz_init(v);
            mpz_init_set_ui(mod, (unsigned long)pq_n2());
            uint64_t seqs[AGG_ROWS * 2];
            size_t nseq = 0;
            for (size_t i = 0; i < nrows; i++) {
                const struct mrow *m = &rows[i];
                if (!m->alive || !mrow_matches(m, q) || (ngroup >= 1 && m->ga != a) ||
                    (ngroup >= 2 && m->gb != b)) {
                    continue;
                }
                count++;
                if (m->has_sum) {
                    nsum++;
                    sum += m->amount;
                    seqs[nseq++] = m->seq;
                }
                if (m->has_prod) {
                    nprod++;
                    mpz_set_ui(v, (unsigned long)m->pv);
                    mpz_mul(prod, prod, v);
                    mpz_mod(prod, prod, mod);
                }
            }
            const struct vl_agg_group *g = NULL;
            for (size_t i = 0; i < res.n; i++) {
                if (key_is(&res.groups[i].keys[0], ngroup >= 1 && a >= 0 ? tok_a[a] : NULL) &&
                    key_is(&res.groups[i].keys[1], ngroup >= 2 && b >= 0 ? tok_b[b] : NULL)) {
                    assert_null(g);
                    g = &res.groups[i];
                }
            }
            if (count == 0) {
                assert_null(g); /* no matching row, no group */
            } else {
                assert_non_null(g);
                seen++;
                assert_int_equal(g->count, count);
                assert_int_equal(g->values[0].count, nsum);
                assert_int_equal(g->values[1].count, nprod);
                /* expected runs: sort seqs, split at gaps */
                for (size_t i = 1; i < nseq; i++) {
                    for (size_t j = i; j > 0 && seqs[j - 1] > seqs[j]; j--) {
                        uint64_t tmp = seqs[j];
                        seqs[j] = seqs[j - 1];
                        seqs[j - 1] = tmp;
                    }
                }
                size_t r = 0;
                for (size_t i = 0; i < nseq; i++) {
                    if (i == 0 || seqs[i] != seqs[i - 1] + 1) {
                        assert_true(r < g->values[0].nruns);
                        assert_int_equal(g->values[0].runs[r].first, seqs[i]);
                        r++;
                    }
                    if (i + 1 == nseq || seqs[i + 1] != seqs[i] + 1) {
                        assert_int_equal(g->values[0].runs[r - 1].last, seqs[i]);
                    }
                }
                assert_int_equal(g->values[0].nruns, r);
                vl_i128 got = vl_ashe_decrypt(agg_key, vl_ashe_join(g->values[0].limbs),
                                              g->values[0].runs, g->values[0].nruns, NULL);
                assert_true(got == sum);
                if (nprod == 0) {
                    assert_int_equal(g->values[1].product.n, 0);
                } else {
                    mpz_import(v, g->values[1].product.n, 1, 1, 1, 0, g->values[1].product.p);
                    assert_int_equal(mpz_cmp(v, prod), 0);
                }
                assert_null(g->values[1].runs);
            }
            mpz_clear(prod);
            mpz_clear(v);
            mpz_clear(mod);
        }
    }
    assert_int_equal(res.n, seen);
    vl_agg_result_free(&res);
    assert_null(res.groups);
    free(docs);
    free(dstore);
}

static void check_all(struct vl_store *s, const char *t, const struct mrow *rows, size_t n)
{
    static const struct mpred preds[] = {
        {0, 0},         /* everything */
        {0x06, 0},      /* p1 or p2 */
        {0x2d, 0x13},   /* (p0, p2, p3 or p5) and (a0, a1 or a4) */
        {0x01 << 5, 0}, /* p5 alone */
        {0, 0, 3},      /* documents whose id is a multiple of 3 */
        {0x06, 0, 2},   /* (p1 or p2) and an even id */
        {0x2d, 0x13, 2},
        {0, 0, -1},     /* no document */
        {0x06, 0, -1},
    };
    for (size_t g = 0; g <= 2; g++) {
        for (size_t i = 0; i < sizeof(preds) / sizeof(preds[0]); i++) {
            check_agg(s, t, rows, n, g, &preds[i]);
        }
    }
}

static void test_aggregate(void **state)
{
    struct fx *f = *state;
    struct vl_store *s = f->s;
    static struct mrow rows[AGG_ROWS];
    size_t idx[AGG_ROWS];

    /* no table, then an empty one: no groups, whatever the grouping */
    check_all(s, T1, rows, 0);
    assert_int_equal(s->ops->ensure_table(s, T1), VEIL_OK);
    check_all(s, T1, rows, 0);

    /* seqs with gaps of random length, often consecutive */
    uint64_t seq = 1;
    for (size_t i = 0; i < AGG_ROWS; i++) {
        rows[i].id = (uint32_t)(i * 7919 % 1000003); /* doc order differs from seq order */
        seq += xrand() % 3 == 0 ? 1 + xrand() % 4 : 1;
        rows[i].seq = seq;
        mrow_random(&rows[i]);
        idx[i] = i;
    }
    mput(s, T1, rows, idx, AGG_ROWS / 2);
    mput(s, T1, rows, idx + AGG_ROWS / 2, AGG_ROWS - AGG_ROWS / 2);
    check_all(s, T1, rows, AGG_ROWS);

    /* replace a third of the rows (new seq, tokens and cells; some lose their cells) and
     * delete a sixth: runs and sums must reflect the current rows only */
    size_t nrep = 0, ndel = 0;
    struct vl_bytes del[AGG_ROWS];
    uint8_t deldocs[AGG_ROWS][VL_DOCTOKEN_BYTES];
    for (size_t i = 0; i < AGG_ROWS; i++) {
        uint64_t r = xrand() % 6;
        if (r < 2) {
            seq += 1 + (xrand() % 2);
            rows[i].seq = seq;
            mrow_random(&rows[i]);
            idx[nrep++] = i;
        } else if (r == 2) {
            mkdoc(deldocs[ndel], rows[i].id);
            del[ndel] = docref(deldocs[ndel]);
            ndel++;
            rows[i].alive = 0;
        }
    }
    mput(s, T1, rows, idx, nrep);
    assert_int_equal(s->ops->delete_rows(s, T1, del, ndel), VEIL_OK);
    check_all(s, T1, rows, AGG_ROWS);

    /* a replacement without cells drops the old ones */
    for (size_t i = 0; i < AGG_ROWS; i++) {
        if (rows[i].alive && i % 2 == 0) {
            rows[i].has_sum = 0;
            rows[i].has_prod = 0;
            mput(s, T1, rows, &i, 1);
        }
    }
    check_all(s, T1, rows, AGG_ROWS);

    /* drop_table takes the cells with it */
    assert_int_equal(s->ops->drop_table(s, T1), VEIL_OK);
    for (size_t i = 0; i < AGG_ROWS; i++) {
        rows[i].alive = 0;
    }
    check_all(s, T1, rows, AGG_ROWS);
    struct mrow one = {.id = 5, .seq = 3, .ga = 1, .gb = -1, .p1 = 0, .p2 = -1, .has_sum = 1,
                       .amount = -42};
    size_t zero = 0;
    mput(s, T1, &one, &zero, 1);
    check_all(s, T1, &one, 1);
}

/* Islands of a long run of consecutive seqs, one cut, and ASHE columns only (no Paillier
 * statement), a Paillier column only, and no column at all. */
static void test_aggregate_shapes(void **state)
{
    struct fx *f = *state;
    struct vl_store *s = f->s;
    enum { N = 1000 };
    static struct mrow rows[N];
    static size_t idx[N];
    for (size_t i = 0; i < N; i++) {
        rows[i] = (struct mrow){.id = (uint32_t)i, .seq = 100 + i + (i >= 600 ? 1 : 0),
                                .ga = (int)(i >= 300 && i < 350), .gb = -1, .p1 = 0, .p2 = -1,
                                .has_sum = 1, .amount = (int64_t)i, .has_prod = 1,
                                .pv = 1 + i};
        idx[i] = i;
    }
    mput(s, T1, rows, idx, N);

    uint8_t ga[VL_COL_BYTES];
    mkcol(ga, COL_A);
    uint8_t n2[8];
    size_t n2len = be_bytes(pq_n2(), n2, 1);
    struct vl_agg_col ashe = {.paillier = 0}, pail = {.paillier = 1, .modulus = {n2, n2len}};
    mkcol(ashe.col, COL_SUM);
    mkcol(pail.col, COL_PROD);
    struct vl_pred none = {NULL, 0};
    struct vl_agg_request req = {&none, (const uint8_t(*)[VL_COL_BYTES])ga, 1, &ashe, 1};
    struct vl_agg_result res;
    assert_int_equal(s->ops->aggregate(s, T1, &req, &res), VEIL_OK);
    assert_int_equal(res.n, 2);
    for (size_t i = 0; i < res.n; i++) {
        const struct vl_agg_group *g = &res.groups[i];
        if (key_is(&g->keys[0], "a1")) {
            assert_int_equal(g->count, 50);
            assert_int_equal(g->values[0].nruns, 1);
            assert_int_equal(g->values[0].runs[0].first, 400);
            assert_int_equal(g->values[0].runs[0].last, 449);
        } else {
            assert_true(key_is(&g->keys[0], "a0"));
            assert_int_equal(g->count, 950);
            assert_int_equal(g->values[0].nruns, 3); /* 100..399, 450..699, 701..1100 */
            assert_int_equal(g->values[0].runs[0].first, 100);
            assert_int_equal(g->values[0].runs[0].last, 399);
            assert_int_equal(g->values[0].runs[1].first, 450);
            assert_int_equal(g->values[0].runs[1].last, 699);
            assert_int_equal(g->values[0].runs[2].first, 701);
            assert_int_equal(g->values[0].runs[2].last, 1100);
        }
        vl_i128 want = key_is(&g->keys[0], "a1") ? (300 + 349) * 50 / 2 : (999 * 1000 / 2) -
                                                                             (300 + 349) * 50 / 2;
        assert_true(vl_ashe_decrypt(agg_key, vl_ashe_join(g->values[0].limbs), g->values[0].runs,
                                    g->values[0].nruns, NULL) == want);
    }
    vl_agg_result_free(&res);

    /* Paillier only, no group columns: the product of 1..1000 mod n^2 */
    req.ngroup = 0;
    req.cols = &pail;
    assert_int_equal(s->ops->aggregate(s, T1, &req, &res), VEIL_OK);
    assert_int_equal(res.n, 1);
    assert_int_equal(res.groups[0].count, N);
    assert_int_equal(res.groups[0].values[0].count, N);
    mpz_t want, got;
    mpz_init(want);
    mpz_init(got);
    mpz_fac_ui(want, N);
    mpz_mod_ui(want, want, (unsigned long)pq_n2());
    mpz_import(got, res.groups[0].values[0].product.n, 1, 1, 1, 0,
               res.groups[0].values[0].product.p);
    assert_int_equal(mpz_cmp(want, got), 0);
    mpz_clear(want);
    mpz_clear(got);
    vl_agg_result_free(&res);

    /* no aggregated column: just the groups and their counts */
    req.ngroup = 1;
    req.ncols = 0;
    req.cols = NULL;
    assert_int_equal(s->ops->aggregate(s, T1, &req, &res), VEIL_OK);
    assert_int_equal(res.n, 2);
    assert_int_equal(res.groups[0].count + res.groups[1].count, N);
    vl_agg_result_free(&res);

    /* a term too large to bind inline goes through the temp table: p0 and 39999 others */
    enum { HUGE = 40000 };
    struct vl_bytes *many = calloc(HUGE, sizeof(*many));
    char(*names)[16] = calloc(HUGE, 16);
    assert_true(many && names);
    for (size_t i = 0; i < HUGE; i++) {
        snprintf(names[i], 16, i == HUGE / 2 ? "p0" : "x%zu", i);
        many[i].p = (uint8_t *)names[i];
        many[i].n = strlen(names[i]);
    }
    struct vl_pred_term big = {.toks = many, .ntoks = HUGE};
    mkcol(big.col, COL_P);
    struct vl_pred huge = {&big, 1};
    req.pred = &huge;
    assert_int_equal(s->ops->aggregate(s, T1, &req, &res), VEIL_OK);
    assert_int_equal(res.n, 2);
    assert_int_equal(res.groups[0].count + res.groups[1].count, N);
    vl_agg_result_free(&res);
    free(many);
    free(names);

    /* a term with no tokens matches nothing */
    struct vl_pred_term empty = {.toks = NULL, .ntoks = 0};
    struct vl_pred nothing = {&empty, 1};
    req.pred = &nothing;
    assert_int_equal(s->ops->aggregate(s, T1, &req, &res), VEIL_OK);
    assert_int_equal(res.n, 0);
    vl_agg_result_free(&res);
    vl_agg_result_free(NULL);
}

/* Runs at the ends of the sequence numbers' range, a run per cell, and stored data that
 * cannot give faithful runs (a row renumbered below zero, limbs out of range), which
 * veil_runs reports and the driver turns into VEIL_ERR_INTEGRITY; cells moved away from
 * their row's number are not found. */
static void test_aggregate_runs(void **state)
{
    struct fx *f = *state;
    struct vl_store *s = f->s;
    static const uint64_t seqs[] = {0, 1, 2, 5, 7, 8, 9, 1000000, (uint64_t)INT64_MAX - 1,
                                    (uint64_t)INT64_MAX};
    enum { N = sizeof(seqs) / sizeof(seqs[0]) };
    struct vl_row rows[N];
    uint8_t docs[N][VL_DOCTOKEN_BYTES];
    struct vl_sum_cell sc[N];
    memset(rows, 0, sizeof(rows));
    for (size_t i = 0; i < N; i++) {
        mkdoc(docs[i], (uint32_t)(N - i)); /* doc order is the reverse of seq order */
        memset(&sc[i], 0, sizeof(sc[i]));
        mkcol(sc[i].col, COL_SUM);
        sc[i].limbs[0] = (int64_t)i;
        sc[i].limbs[3] = 0xffffffffLL;
        rows[i] = (struct vl_row){.doc = docref(docs[i]), .seq = seqs[i],
                                  .blob = {(uint8_t *)"b", 1}, .sums = &sc[i], .nsums = 1};
    }
    assert_int_equal(s->ops->put_rows(s, T1, rows, N), VEIL_OK);
    struct vl_agg_col c = {.paillier = 0};
    mkcol(c.col, COL_SUM);
    struct vl_agg_request req = {NULL, NULL, 0, &c, 1};
    struct vl_agg_result res;
    assert_int_equal(s->ops->aggregate(s, T1, &req, &res), VEIL_OK);
    assert_int_equal(res.n, 1);
    const struct vl_agg_value *v = &res.groups[0].values[0];
    assert_int_equal(v->count, N);
    assert_int_equal(v->limbs[0], N * (N - 1) / 2);
    assert_int_equal(v->limbs[3], (int64_t)N * 0xffffffffLL);
    int64_t v0limbs[VL_SUM_LIMBS];
    memcpy(v0limbs, v->limbs, sizeof(v0limbs));
    static const struct vl_seq_run want[] = {{0, 2}, {5, 5}, {7, 9}, {1000000, 1000000},
                                             {(uint64_t)INT64_MAX - 1, (uint64_t)INT64_MAX}};
    assert_int_equal(v->nruns, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < v->nruns; i++) {
        assert_true(v->runs[i].first == want[i].first);
        assert_true(v->runs[i].last == want[i].last);
    }
    vl_agg_result_free(&res);

    /* a column nobody has: the group counts its rows, with no cells and no runs */
    struct vl_agg_col other = {.paillier = 0};
    mkcol(other.col, COL_SUM + 1);
    req.cols = &other;
    assert_int_equal(s->ops->aggregate(s, T1, &req, &res), VEIL_OK);
    assert_int_equal(res.n, 1);
    assert_int_equal(res.groups[0].count, N);
    assert_int_equal(res.groups[0].values[0].count, 0);
    assert_int_equal(res.groups[0].values[0].nruns, 0);
    assert_null(res.groups[0].values[0].runs);
    vl_agg_result_free(&res);

    /* several ASHE columns in one statement, one of them twice */
    struct vl_agg_col three[3] = {c, other, c};
    req.cols = three;
    req.ncols = 3;
    assert_int_equal(s->ops->aggregate(s, T1, &req, &res), VEIL_OK);
    assert_int_equal(res.n, 1);
    assert_int_equal(res.ncols, 3);
    assert_int_equal(res.groups[0].values[1].count, 0);
    for (size_t j = 0; j < 3; j += 2) {
        const struct vl_agg_value *w = &res.groups[0].values[j];
        assert_int_equal(w->count, N);
        assert_memory_equal(w->limbs, v0limbs, sizeof(v0limbs));
        assert_int_equal(w->nruns, sizeof(want) / sizeof(want[0]));
        assert_true(w->runs[4].last == (uint64_t)INT64_MAX);
    }
    vl_agg_result_free(&res);
    req.cols = &c;
    req.ncols = 1;

    /* tampered cells, written behind the driver's back */
    char path[1024], sql[512];
    sqlite3 *db = NULL;
    snprintf(path, sizeof(path), "%s/cloud/cloud.db", f->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    /* a row renumbered below zero: its runs cannot be faithful */
    static const char *const tamper[][2] = {
        {"seq = -1 WHERE seq = 0", "seq = 0 WHERE seq = -1"},
        {"seq = -5 WHERE seq = 5", "seq = 5 WHERE seq = -5"},
    };
    for (size_t i = 0; i < sizeof(tamper) / sizeof(tamper[0]); i++) {
        for (int k = 0; k < 2; k++) {
            snprintf(sql, sizeof(sql), "UPDATE \"r_%s\" SET %s", T1, tamper[i][k]);
            assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
            assert_int_equal(sqlite3_changes(db), 1);
            veil_err rc = s->ops->aggregate(s, T1, &req, &res);
            assert_int_equal(rc, k == 0 ? VEIL_ERR_INTEGRITY : VEIL_OK);
            if (k == 0) {
                assert_null(res.groups);
                continue;
            }
            assert_int_equal(res.groups[0].values[0].nruns, 5);
            vl_agg_result_free(&res);
        }
    }
    /* a cell moved to a sequence number no row has, or given one of another type: cells are
     * found by their row's number, so it is simply not there (the engine's checks against
     * trusted state catch the missing cell) */
    static const char *const detach[][2] = {
        {"seq = 3 WHERE seq = 2", "seq = 2 WHERE seq = 3"},
        {"seq = 'x' WHERE seq = 0", "seq = 0 WHERE seq = 'x'"},
        {"seq = 2.5 WHERE seq = 0", "seq = 0 WHERE seq = 2.5"},
    };
    for (size_t i = 0; i < sizeof(detach) / sizeof(detach[0]); i++) {
        for (int k = 0; k < 2; k++) {
            snprintf(sql, sizeof(sql), "UPDATE \"s_%s\" SET %s", T1, detach[i][k]);
            assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
            assert_int_equal(sqlite3_changes(db), 1);
            assert_int_equal(s->ops->aggregate(s, T1, &req, &res), VEIL_OK);
            assert_int_equal(res.groups[0].count, N);
            assert_int_equal(res.groups[0].values[0].count, k == 0 ? N - 1 : N);
            vl_agg_result_free(&res);
        }
    }
    /* limbs out of 0..2^32-1 or not integers; limbs whose SUM overflows. All stored data no
     * put_rows wrote: VEIL_ERR_INTEGRITY, then put back, VEIL_OK. */
    static const char *const bad[][2] = {
        {"l1 = -1 WHERE seq = 5", "l1 = 0 WHERE seq = 5"},
        {"l2 = 4294967296 WHERE seq = 7", "l2 = 0 WHERE seq = 7"},
        {"l1 = 'x' WHERE seq = 9", "l1 = 0 WHERE seq = 9"},
        {"l2 = 2.5 WHERE seq = 9", "l2 = 0 WHERE seq = 9"},
        {"l2 = 9223372036854775807 WHERE seq IN (1, 2)", "l2 = 0 WHERE seq IN (1, 2)"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        for (int k = 0; k < 2; k++) {
            snprintf(sql, sizeof(sql), "UPDATE \"s_%s\" SET %s", T1, bad[i][k]);
            assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
            assert_true(sqlite3_changes(db) >= 1);
            veil_err rc = s->ops->aggregate(s, T1, &req, &res);
            if (rc != (k == 0 ? VEIL_ERR_INTEGRITY : VEIL_OK)) {
                fprintf(stderr, "%s: %s\n", bad[i][k], veil_err_name(rc));
                fail();
            }
            if (k == 0) {
                assert_null(res.groups);
                continue;
            }
            assert_memory_equal(res.groups[0].values[0].limbs, v0limbs, sizeof(v0limbs));
            vl_agg_result_free(&res);
        }
    }
    sqlite3_close(db);
}

/* Rows that put_rows cannot have written (a blob or seq of another type, a document token
 * of another length) are VEIL_ERR_INTEGRITY from get_rows and find, never an outage. */
static void test_rows_tampered(void **state)
{
    struct fx *f = *state;
    struct vl_store *s = f->s;
    struct batch b;
    batch_init(&b, 3);
    batch_set(&b, 0, 1, 10, "blob-one", 1, 1, "t");
    batch_set(&b, 1, 2, 11, "blob-two", 1, 1, "t");
    batch_set(&b, 2, 3, 12, "blob-three", 1, 1, "t");
    assert_int_equal(put(s, T1, &b), VEIL_OK);
    struct vl_bytes want[3] = {docref(b.docs[0]), docref(b.docs[1]), docref(b.docs[2])};
    char path[1024], sql[512];
    sqlite3 *db = NULL;
    snprintf(path, sizeof(path), "%s/cloud/cloud.db", f->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    static const char *const tamper[][2] = {
        {"blob = CAST(blob AS TEXT) WHERE seq = 11", "blob = CAST(blob AS BLOB)"},
        {"seq = 'eleven' WHERE seq = 11", "seq = 11 WHERE seq = 'eleven'"},
        {"seq = 11.5 WHERE seq = 11", "seq = 11 WHERE seq = 11.5"},
        {"blob = NULL WHERE seq = 11", "blob = 'blob-two' WHERE seq = 11"},
    };
    struct vl_rows r = {NULL, 0};
    for (size_t i = 0; i < sizeof(tamper) / sizeof(tamper[0]); i++) {
        for (int k = 0; k < 2; k++) {
            snprintf(sql, sizeof(sql), "UPDATE \"r_%s\" SET %s", T1, tamper[i][k]);
            if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
                /* NOT NULL: a tamper SQLite itself refuses is no tamper */
                assert_int_equal(k, 0);
                break;
            }
            veil_err rc = s->ops->get_rows(s, T1, want, 3, &r);
            assert_int_equal(rc, k == 0 ? VEIL_ERR_INTEGRITY : VEIL_OK);
            if (k == 0) {
                assert_null(r.rows);
                continue;
            }
            assert_int_equal(r.n, 3);
            vl_rows_free(&r);
        }
    }
    /* a token of 33 bytes: find cannot return it */
    snprintf(sql, sizeof(sql), "UPDATE \"r_%s\" SET doc = CAST(doc || x'00' AS BLOB) WHERE seq = 12",
             T1);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    struct vl_pred all = {NULL, 0, false, NULL, 0};
    struct vl_doclist l = {NULL, 0};
    assert_int_equal(s->ops->find(s, T1, &all, NULL, 10, &l), VEIL_ERR_INTEGRITY);
    assert_null(l.docs);
    sqlite3_close(db);
    batch_free(&b);
}

/* Finds the group of b whose keys are g's (NULL when none). */
static const struct vl_agg_group *group_like(const struct vl_agg_result *b,
                                             const struct vl_agg_group *g, size_t ngroup)
{
    for (size_t i = 0; i < b->n; i++) {
        size_t k = 0;
        for (; k < ngroup; k++) {
            const struct vl_bytes *x = &g->keys[k], *y = &b->groups[i].keys[k];
            if (x->n != y->n || (x->n > 0 && memcmp(x->p, y->p, x->n) != 0)) {
                break;
            }
        }
        if (k == ngroup) {
            return &b->groups[i];
        }
    }
    return NULL;
}

/* Asserts that two aggregate results are the same groups with the same numbers: counts,
 * limb sums, runs and products, byte for byte. */
static void assert_agg_same(const struct vl_agg_result *a, const struct vl_agg_result *b,
                            size_t ngroup)
{
    assert_int_equal(a->n, b->n);
    assert_int_equal(a->ncols, b->ncols);
    for (size_t i = 0; i < a->n; i++) {
        const struct vl_agg_group *g = &a->groups[i], *h = group_like(b, g, ngroup);
        assert_non_null(h);
        assert_int_equal(g->count, h->count);
        for (size_t j = 0; j < a->ncols; j++) {
            const struct vl_agg_value *x = &g->values[j], *y = &h->values[j];
            assert_int_equal(x->count, y->count);
            assert_memory_equal(x->limbs, y->limbs, sizeof(x->limbs));
            assert_int_equal(x->nruns, y->nruns);
            if (x->nruns > 0) {
                assert_memory_equal(x->runs, y->runs, x->nruns * sizeof(*x->runs));
            }
            assert_int_equal(x->product.n, y->product.n);
            if (x->product.n > 0) {
                assert_memory_equal(x->product.p, y->product.p, x->product.n);
            }
        }
    }
}

/* An aggregate restricted by only_docs equals the same aggregate over a table that holds
 * just those rows; with terms, group columns, ASHE and Paillier columns, a set far larger
 * than the table, and a term large enough to go through the temp table. */
static void test_aggregate_only_docs(void **state)
{
    struct fx *f = *state;
    struct vl_store *s = f->s;
    enum { N = 300, BIG = 100000 };
    static struct mrow rows[N];
    size_t idx[N], sub[N], nsub = 0;
    uint64_t seq = 10;
    for (size_t i = 0; i < N; i++) {
        rows[i].id = (uint32_t)(i * 7919 % 1000003);
        seq += xrand() % 4 == 0 ? 2 + xrand() % 3 : 1;
        rows[i].seq = seq;
        mrow_random(&rows[i]);
        idx[i] = i;
        if (xrand() % 3 == 0) {
            sub[nsub++] = i;
        }
    }
    mput(s, T1, rows, idx, N);
    mput(s, T2, rows, sub, nsub);

    /* the subset's documents, then BIG - nsub that do not exist, shuffled in */
    uint32_t *ids = calloc(BIG, sizeof(*ids));
    assert_non_null(ids);
    for (size_t i = 0; i < BIG; i++) {
        ids[i] = i < nsub ? rows[sub[i]].id : ABSENT_ID + (uint32_t)i;
    }
    for (size_t i = BIG - 1; i > 0; i--) {
        size_t j = xrand() % (i + 1);
        uint32_t t = ids[i];
        ids[i] = ids[j];
        ids[j] = t;
    }
    uint8_t(*store)[VL_DOCTOKEN_BYTES] = NULL;
    struct vl_bytes *docs = docs_of(ids, BIG, &store);

    uint8_t gcols[2][VL_COL_BYTES];
    mkcol(gcols[0], COL_A);
    mkcol(gcols[1], COL_B);
    uint8_t n2[8];
    size_t n2len = be_bytes(pq_n2(), n2, 1);
    struct vl_agg_col cols[3] = {{.paillier = 0}, {.paillier = 1, .modulus = {n2, n2len}},
                                 {.paillier = 0}};
    mkcol(cols[0].col, COL_SUM);
    mkcol(cols[1].col, COL_PROD);
    mkcol(cols[2].col, COL_SUM + 1); /* nobody has it */

    struct vl_bytes ptoks[3] = {{(uint8_t *)"p1", 2}, {(uint8_t *)"p2", 2},
                                {(uint8_t *)"p4", 2}};
    struct vl_bytes atoks[2] = {{(uint8_t *)"a0", 2}, {(uint8_t *)"a3", 2}};
    struct vl_pred_term terms[2] = {{.toks = ptoks, .ntoks = 3}, {.toks = atoks, .ntoks = 2}};
    mkcol(terms[0].col, COL_P);
    mkcol(terms[1].col, COL_A);

    /* a term with 40,000 tokens (p1 among them) goes through temp.vl_find */
    enum { HUGE = 40000 };
    struct vl_bytes *many = calloc(HUGE, sizeof(*many));
    char(*names)[16] = calloc(HUGE, 16);
    assert_true(many && names);
    for (size_t i = 0; i < HUGE; i++) {
        snprintf(names[i], 16, i == HUGE / 3 ? "p1" : "y%zu", i);
        many[i].p = (uint8_t *)names[i];
        many[i].n = strlen(names[i]);
    }
    struct vl_pred_term huge = {.toks = many, .ntoks = HUGE};
    mkcol(huge.col, COL_P);

    /* with all 100,000 tokens only for two group columns: the set's size changes how much
     * is loaded and probed, not the statement's shape */
    const struct {
        const struct vl_pred_term *terms;
        size_t nterms;
        size_t ndocs;
    } cases[] = {
        {NULL, 0, nsub},   /* the subset's documents alone */
        {terms, 1, nsub},  /* AND one term */
        {terms, 2, nsub},  /* AND two */
        {&huge, 1, nsub},  /* AND a term through the temp table */
        {NULL, 0, BIG},    /* the subset and 100,000 - nsub documents that do not exist */
        {terms, 2, BIG},
        {terms + 1, 1, 7}, /* a few documents */
    };
    /* the first nsub ids are not the subset after the shuffle: list it in order for the
     * cases that use fewer than BIG tokens */
    uint32_t *subids = calloc(nsub, sizeof(*subids));
    assert_non_null(subids);
    for (size_t i = 0; i < nsub; i++) {
        subids[i] = rows[sub[i]].id;
    }
    uint8_t(*sstore)[VL_DOCTOKEN_BYTES] = NULL;
    struct vl_bytes *sdocs = docs_of(subids, nsub, &sstore);

    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        for (size_t ngroup = cases[c].ndocs == BIG ? 2 : 0; ngroup <= 2; ngroup++) {
            const struct vl_bytes *d = cases[c].ndocs == BIG ? docs : sdocs;
            size_t nd = cases[c].ndocs == BIG ? BIG : (cases[c].ndocs < nsub ? cases[c].ndocs
                                                                             : nsub);
            struct vl_pred restricted = {cases[c].terms, cases[c].nterms, true, d, nd};
            struct vl_pred plain = {cases[c].terms, cases[c].nterms, false, NULL, 0};
            struct vl_agg_request req = {&restricted, (const uint8_t(*)[VL_COL_BYTES])gcols,
                                         ngroup, cols, 3};
            struct vl_agg_result a, b;
            assert_int_equal(s->ops->aggregate(s, T1, &req, &a), VEIL_OK);
            if (nd == nsub || nd == BIG) {
                req.pred = &plain; /* the same over the subset's own table */
                assert_int_equal(s->ops->aggregate(s, T2, &req, &b), VEIL_OK);
            } else {
                /* the first nd of the subset: count them from the model */
                struct vl_agg_request cnt = {&restricted, NULL, 0, NULL, 0};
                assert_int_equal(s->ops->aggregate(s, T1, &cnt, &b), VEIL_OK);
                size_t want = 0;
                for (size_t i = 0; i < nd; i++) {
                    const struct mrow *m = &rows[sub[i]];
                    want += m->ga == 0 || m->ga == 3;
                }
                assert_int_equal(b.n, want > 0);
                if (want > 0) {
                    assert_int_equal(b.groups[0].count, want);
                }
                vl_agg_result_free(&b);
                vl_agg_result_free(&a);
                continue;
            }
            assert_true(a.n > 0);
            assert_agg_same(&a, &b, ngroup);
            vl_agg_result_free(&a);
            vl_agg_result_free(&b);
        }
    }

    /* an empty set: what a predicate matching nothing gives, no group at all */
    struct vl_pred empty = {terms, 1, true, docs, 0};
    uint8_t nodoc[VL_DOCTOKEN_BYTES];
    mkdoc(nodoc, ABSENT_ID - 1);
    struct vl_bytes nd1 = docref(nodoc);
    struct vl_pred nomatch_pred = {NULL, 0, true, &nd1, 1};
    for (size_t ngroup = 0; ngroup <= 2; ngroup++) {
        struct vl_agg_request req = {&empty, (const uint8_t(*)[VL_COL_BYTES])gcols, ngroup,
                                     cols, 3};
        struct vl_agg_result a = {NULL, 0, 0};
        assert_int_equal(s->ops->aggregate(s, T1, &req, &a), VEIL_OK);
        assert_int_equal(a.n, 0);
        assert_null(a.groups);
        vl_agg_result_free(&a);
        req.pred = &nomatch_pred; /* a set that matches no row: the same */
        assert_int_equal(s->ops->aggregate(s, T1, &req, &a), VEIL_OK);
        assert_int_equal(a.n, 0);
        vl_agg_result_free(&a);
    }
    /* a malformed set is a caller bug; a missing table holds nothing */
    struct vl_agg_request req = {&nomatch_pred, NULL, 0, cols, 1};
    struct vl_agg_result a;
    nd1.n = 3;
    assert_int_equal(s->ops->aggregate(s, T1, &req, &a), VEIL_ERR_INTERNAL);
    nd1.n = VL_DOCTOKEN_BYTES;
    struct vl_pred all_sub = {NULL, 0, true, sdocs, nsub};
    req.pred = &all_sub;
    assert_int_equal(s->ops->drop_table(s, T2), VEIL_OK);
    assert_int_equal(s->ops->aggregate(s, T2, &req, &a), VEIL_OK);
    assert_int_equal(a.n, 0);

    free(sdocs);
    free(sstore);
    free(subids);
    free(many);
    free(names);
    free(docs);
    free(store);
    free(ids);
}

/* drop_table leaves no table or index of its own behind. */
static void test_drop_leaves_nothing(void **state)
{
    struct fx *f = *state;
    struct vl_store *s = f->s;
    static struct mrow rows[4];
    size_t idx[4];
    for (size_t i = 0; i < 4; i++) {
        rows[i] = (struct mrow){.id = (uint32_t)i, .seq = 1 + i, .ga = 1, .gb = 0, .p1 = 2,
                                .p2 = -1, .has_sum = 1, .amount = 5, .has_prod = 1, .pv = 3};
        idx[i] = i;
    }
    mput(s, T1, rows, idx, 4);
    mput(s, T2, rows, idx, 4);
    char path[1024];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    snprintf(path, sizeof(path), "%s/cloud/cloud.db", f->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_schema WHERE name LIKE"
                                            " ('%' || ?)", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_bind_text(st, 1, T1, -1, SQLITE_STATIC), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_true(sqlite3_column_int(st, 0) >= 4);
    sqlite3_reset(st);
    assert_int_equal(s->ops->drop_table(s, T1), VEIL_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 0);
    sqlite3_reset(st);
    assert_int_equal(sqlite3_bind_text(st, 1, T2, -1, SQLITE_STATIC), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_true(sqlite3_column_int(st, 0) >= 4); /* the other table is untouched */
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* Caller bugs are refused before anything is written or read. */
static void test_aggregate_bad(void **state)
{
    struct fx *f = *state;
    struct vl_store *s = f->s;
    uint8_t d[VL_DOCTOKEN_BYTES];
    mkdoc(d, 1);
    struct vl_sum_cell sc[2] = {{.limbs = {0, 0xffffffffLL, 1, 2}}};
    mkcol(sc[0].col, COL_SUM);
    struct vl_row r = {.doc = docref(d), .seq = 1, .blob = {(uint8_t *)"b", 1}, .sums = sc,
                       .nsums = 1};
    assert_int_equal(s->ops->put_rows(s, T1, &r, 1), VEIL_OK); /* 2^32-1 is a limb */
    sc[0].limbs[2] = 0x100000000LL;
    assert_int_equal(s->ops->put_rows(s, T1, &r, 1), VEIL_ERR_INTERNAL);
    sc[0].limbs[2] = -1;
    assert_int_equal(s->ops->put_rows(s, T1, &r, 1), VEIL_ERR_INTERNAL);
    sc[0].limbs[2] = 1;
    sc[1] = sc[0];
    r.nsums = 2; /* one column twice */
    assert_int_equal(s->ops->put_rows(s, T1, &r, 1), VEIL_ERR_INTERNAL);
    r.nsums = 1;
    r.seq = (uint64_t)INT64_MAX + 1;
    assert_int_equal(s->ops->put_rows(s, T1, &r, 1), VEIL_ERR_INTERNAL);
    r.seq = 1;
    struct vl_prod_cell pc = {.val = {NULL, 0}};
    r.prods = &pc;
    r.nprods = 1;
    assert_int_equal(s->ops->put_rows(s, T1, &r, 1), VEIL_ERR_INTERNAL);

    /* the first put stands, with its one cell */
    struct vl_agg_col c = {.paillier = 0};
    mkcol(c.col, COL_SUM);
    struct vl_agg_request req = {NULL, NULL, 0, &c, 1};
    struct vl_agg_result res;
    assert_int_equal(s->ops->aggregate(s, T1, &req, &res), VEIL_OK);
    assert_int_equal(res.n, 1);
    assert_int_equal(res.groups[0].values[0].count, 1);
    assert_int_equal(res.groups[0].values[0].limbs[1], 0xffffffffLL);
    vl_agg_result_free(&res);

    uint8_t gc[5][VL_COL_BYTES] = {{0}};
    req.group_cols = (const uint8_t(*)[VL_COL_BYTES])gc;
    req.ngroup = 5;
    assert_int_equal(s->ops->aggregate(s, T1, &req, &res), VEIL_ERR_INTERNAL);
    req.ngroup = 0;
    c.paillier = 1; /* no modulus */
    assert_int_equal(s->ops->aggregate(s, T1, &req, &res), VEIL_ERR_INTERNAL);
    uint8_t zero = 0;
    c.modulus.p = &zero;
    c.modulus.n = 1; /* a modulus of 0 */
    assert_int_equal(s->ops->aggregate(s, T1, &req, &res), VEIL_ERR_INTERNAL);
    assert_int_equal(s->ops->aggregate(s, "NOT-HEX", &req, &res), VEIL_ERR_INTERNAL);
}

/* ---- members ---- */

/* One expected member: the index of the token asked and the document id. */
struct want_member {
    uint32_t tok;
    uint32_t id;
};

/* members on `col` over the NULL-terminated tokens (at most 16). */
static veil_err members_toks(struct vl_store *s, const char *t, uint8_t col, const char **toks,
                             struct vl_members *out)
{
    struct vl_bytes tb[16];
    uint8_t c[VL_COL_BYTES];
    size_t n = 0;
    for (; toks[n] != NULL; n++) {
        assert_true(n < 16);
        tb[n].p = (uint8_t *)toks[n];
        tb[n].n = strlen(toks[n]);
    }
    mkcol(c, col);
    return s->ops->members(s, t, c, tb, n, out);
}

static int member_cmp(const void *a, const void *b)
{
    const struct vl_member *x = a, *y = b;
    if (x->tok != y->tok) {
        return x->tok < y->tok ? -1 : 1;
    }
    return memcmp(x->doc, y->doc, VL_DOCTOKEN_BYTES);
}

/* The answer is exactly the n expected members, in whatever order it came; frees it. */
static void assert_members(struct vl_members *got, const struct want_member *want, size_t n)
{
    assert_int_equal(got->n, n);
    if (n == 0) {
        assert_null(got->m);
        return;
    }
    qsort(got->m, got->n, sizeof(*got->m), member_cmp);
    struct vl_member *exp = calloc(n, sizeof(*exp));
    assert_non_null(exp);
    for (size_t i = 0; i < n; i++) {
        exp[i].tok = want[i].tok;
        mkdoc(exp[i].doc, want[i].id);
    }
    qsort(exp, n, sizeof(*exp), member_cmp);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(got->m[i].tok, exp[i].tok);
        assert_int_equal(docid(got->m[i].doc), docid(exp[i].doc));
        assert_memory_equal(got->m[i].doc, exp[i].doc, VL_DOCTOKEN_BYTES);
    }
    free(exp);
    vl_members_free(got);
}

#define NWANT(a) (sizeof(a) / sizeof((a)[0]))

static void test_members(void **state)
{
    struct fx *f = *state;
    struct vl_store *s = f->s;
    struct vl_members m = {NULL, 0};
    struct batch b;
    /* column 1: 1, 2 "red"; 3 "blue"; 4 both (and "red" twice, stored once); column 2: 5 "red";
     * 6 "redder" (a longer token sharing the prefix) */
    batch_init(&b, 6);
    batch_set(&b, 0, 1, 11, "one", 1, 1, "red");
    batch_set(&b, 1, 2, 12, "two", 2, 1, "red", 2, "x");
    batch_set(&b, 2, 3, 13, "three", 1, 1, "blue");
    batch_set(&b, 3, 4, 14, "four", 3, 1, "red", 1, "blue", 1, "red");
    batch_set(&b, 4, 5, 15, "five", 1, 2, "red");
    batch_set(&b, 5, 6, (uint64_t)INT64_MAX, "six", 1, 1, "redder");
    assert_int_equal(put(s, T1, &b), VEIL_OK);
    batch_free(&b);

    const char *red[] = {"red", NULL};
    static const struct want_member w_red[] = {{0, 1}, {0, 2}, {0, 4}};
    assert_int_equal(members_toks(s, T1, 1, red, &m), VEIL_OK);
    assert_members(&m, w_red, NWANT(w_red));

    /* several tokens: a row with two of them comes once for each; unknown tokens add
     * nothing; the other column's "red" never comes */
    const char *several[] = {"green", "blue", "red", NULL};
    static const struct want_member w_sev[] = {{1, 3}, {1, 4}, {2, 1},
                                               {2, 2}, {2, 4}};
    assert_int_equal(members_toks(s, T1, 1, several, &m), VEIL_OK);
    assert_members(&m, w_sev, NWANT(w_sev));

    /* a token asked twice: each index gets its members */
    const char *twice[] = {"blue", "blue", NULL};
    static const struct want_member w_twice[] = {{0, 3}, {0, 4}, {1, 3}, {1, 4}};
    assert_int_equal(members_toks(s, T1, 1, twice, &m), VEIL_OK);
    assert_members(&m, w_twice, NWANT(w_twice));

    /* a prefix or a longer token is another token */
    const char *re[] = {"re", "redder", NULL};
    static const struct want_member w_re[] = {{1, 6}};
    assert_int_equal(members_toks(s, T1, 1, re, &m), VEIL_OK);
    assert_members(&m, w_re, NWANT(w_re));

    /* an empty token is a token like any other */
    assert_int_equal(put1(s, T1, 7, 17, "seven", 3, ""), VEIL_OK);
    const char *empty[] = {"x", "", NULL};
    static const struct want_member w_empty[] = {{1, 7}};
    assert_int_equal(members_toks(s, T1, 3, empty, &m), VEIL_OK);
    assert_members(&m, w_empty, NWANT(w_empty));

    /* no tokens: none */
    uint8_t c1[VL_COL_BYTES];
    mkcol(c1, 1);
    assert_int_equal(s->ops->members(s, T1, c1, NULL, 0, &m), VEIL_OK);
    assert_members(&m, NULL, 0);

    /* a replaced row's new tokens replace its old ones */
    batch_init(&b, 1);
    batch_set(&b, 0, 4, 24, "four-v2", 1, 1, "green");
    assert_int_equal(put(s, T1, &b), VEIL_OK);
    batch_free(&b);
    static const struct want_member w_red2[] = {{0, 1}, {0, 2}};
    assert_int_equal(members_toks(s, T1, 1, red, &m), VEIL_OK);
    assert_members(&m, w_red2, NWANT(w_red2));
    static const struct want_member w_sev2[] = {{0, 4}, {1, 3}, {2, 1}, {2, 2}};
    assert_int_equal(members_toks(s, T1, 1, several, &m), VEIL_OK);
    assert_members(&m, w_sev2, NWANT(w_sev2));

    /* a deleted row is gone */
    uint8_t d[VL_DOCTOKEN_BYTES];
    mkdoc(d, 2);
    struct vl_bytes del = docref(d);
    assert_int_equal(s->ops->delete_rows(s, T1, &del, 1), VEIL_OK);
    static const struct want_member w_red3[] = {{0, 1}};
    assert_int_equal(members_toks(s, T1, 1, red, &m), VEIL_OK);
    assert_members(&m, w_red3, NWANT(w_red3));

    /* a table never written, or dropped, has none */
    assert_int_equal(members_toks(s, T2, 1, red, &m), VEIL_OK);
    assert_members(&m, NULL, 0);
    assert_int_equal(s->ops->drop_table(s, T1), VEIL_OK);
    assert_int_equal(members_toks(s, T1, 1, red, &m), VEIL_OK);
    assert_members(&m, NULL, 0);

    /* caller bugs */
    struct vl_bytes bad = {NULL, 3};
    assert_int_equal(s->ops->members(s, T1, c1, &bad, 1, &m), VEIL_ERR_INTERNAL);
    assert_int_equal(s->ops->members(s, T1, c1, NULL, 1, &m), VEIL_ERR_INTERNAL);
    assert_int_equal(members_toks(s, "NOT-HEX", 1, red, &m), VEIL_ERR_INTERNAL);
}

/* Puts document 2 with token "tok-<nt-1>" in column 1, then asks members for nt tokens
 * "tok-NNNNNN" (descending, so not in byte order) and "tok-000017" once more at the end:
 * document 1 ("tok-000017") comes for two of them, document 2 for the first, and neither
 * document 3 ("elsewhere") nor 4 (its token is in column 2). Then a call for another token
 * finds nothing of this one's (a temp table keeps none of them). */
static void members_many(struct vl_store *s, size_t nt)
{
    struct vl_members m = {NULL, 0};
    char (*txt)[32] = calloc(nt, sizeof(*txt));
    struct vl_bytes *toks = calloc(nt + 1, sizeof(*toks));
    assert_non_null(txt);
    assert_non_null(toks);
    for (size_t i = 0; i < nt; i++) {
        snprintf(txt[i], sizeof(txt[i]), "tok-%06zu", nt - 1 - i);
        toks[i].p = (uint8_t *)txt[i];
        toks[i].n = strlen(txt[i]);
    }
    toks[nt] = toks[nt - 1 - 17];
    assert_int_equal(put1(s, T1, 2, 2, "b", 1, txt[0]), VEIL_OK);
    uint8_t c1[VL_COL_BYTES];
    mkcol(c1, 1);
    const struct want_member w[] = {{(uint32_t)(nt - 1 - 17), 1}, {(uint32_t)nt, 1},
                                    {0, 2}};
    assert_int_equal(s->ops->members(s, T1, c1, toks, nt + 1, &m), VEIL_OK);
    assert_members(&m, w, NWANT(w));
    struct vl_bytes other = {(uint8_t *)"elsewhere", 9};
    static const struct want_member w_other[] = {{0, 3}};
    assert_int_equal(s->ops->members(s, T1, c1, &other, 1, &m), VEIL_OK);
    assert_members(&m, w_other, NWANT(w_other));
    free(toks);
    free(txt);
}

/* Many tokens: 40,000; then, with the column's, one parameter more than SQLite binds at
 * once (through the temp table) and exactly as many (the longest inline list). A table
 * dropped behind the store's back (by another process) then answers none. */
static void test_members_many_tokens(void **state)
{
    struct fx *f = *state;
    struct vl_store *s = f->s;
    sqlite3 *db = NULL;
    char path[1024], sql[512];
    snprintf(path, sizeof(path), "%s/cloud/cloud.db", f->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    int lim = sqlite3_limit(db, SQLITE_LIMIT_VARIABLE_NUMBER, -1);
    assert_true(lim > 100);
    assert_int_equal(put1(s, T1, 1, 1, "a", 1, "tok-000017"), VEIL_OK);
    assert_int_equal(put1(s, T1, 3, 3, "c", 1, "elsewhere"), VEIL_OK);
    assert_int_equal(put1(s, T1, 4, 4, "d", 2, "tok-000018"), VEIL_OK);
    members_many(s, 40000);
    members_many(s, (size_t)lim);     /* 1 + lim parameters: the temp table */
    members_many(s, (size_t)lim - 1); /* lim parameters: all bound */
    members_many(s, (size_t)lim);

    struct vl_members m = {NULL, 0};
    uint8_t c1[VL_COL_BYTES];
    mkcol(c1, 1);
    struct vl_bytes other = {(uint8_t *)"elsewhere", 9};
    snprintf(sql, sizeof(sql),
             "DROP TABLE \"x_%s\"; DROP TABLE \"r_%s\"; DROP TABLE \"s_%s\"; DROP TABLE \"p_%s\";"
             " DROP TABLE \"k_%s\";",
             T1, T1, T1, T1, T1);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(s->ops->members(s, T1, c1, &other, 1, &m), VEIL_OK);
    assert_members(&m, NULL, 0);
}

/* Stored data put_rows cannot have written is VEIL_ERR_INTEGRITY: an index entry's document
 * token of another length or type. Nothing is returned then. */
static void test_members_tampered(void **state)
{
    struct fx *f = *state;
    struct vl_store *s = f->s;
    struct batch b;
    batch_init(&b, 3);
    batch_set(&b, 0, 1, 10, "blob-one", 1, 1, "t");
    batch_set(&b, 1, 2, 11, "blob-two", 1, 1, "t");
    batch_set(&b, 2, 3, 12, "blob-three", 1, 1, "t");
    assert_int_equal(put(s, T1, &b), VEIL_OK);
    batch_free(&b);
    char path[1024], sql[512];
    sqlite3 *db = NULL;
    snprintf(path, sizeof(path), "%s/cloud/cloud.db", f->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    const char *t[] = {"t", NULL};
    static const struct want_member w[] = {{0, 1}, {0, 2}, {0, 3}};
    static const char *const tamper[][2] = {
        {"UPDATE \"x_%1$s\" SET doc = CAST(doc AS TEXT) WHERE doc IN"
         " (SELECT doc FROM \"r_%1$s\" WHERE seq = 11)",
         "UPDATE \"x_%1$s\" SET doc = CAST(doc AS BLOB) WHERE typeof(doc) = 'text'"},
        {"UPDATE \"x_%1$s\" SET doc = CAST(doc || x'00' AS BLOB) WHERE doc IN"
         " (SELECT doc FROM \"r_%1$s\" WHERE seq = 12);"
         " UPDATE \"r_%1$s\" SET doc = CAST(doc || x'00' AS BLOB) WHERE seq = 12",
         "UPDATE \"x_%1$s\" SET doc = substr(doc, 1, 32) WHERE length(doc) = 33;"
         " UPDATE \"r_%1$s\" SET doc = substr(doc, 1, 32) WHERE seq = 12"},
        {"UPDATE \"x_%1$s\" SET doc = substr(doc, 1, 31) WHERE doc IN"
         " (SELECT doc FROM \"r_%1$s\" WHERE seq = 10);"
         " UPDATE \"r_%1$s\" SET doc = substr(doc, 1, 31) WHERE seq = 10",
         NULL},
    };
    for (size_t i = 0; i < sizeof(tamper) / sizeof(tamper[0]); i++) {
        for (int k = 0; k < 2 && tamper[i][k] != NULL; k++) {
            struct vl_members m = {NULL, 0};
            snprintf(sql, sizeof(sql), tamper[i][k], T1);
            assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
            veil_err rc = members_toks(s, T1, 1, t, &m);
            assert_int_equal(rc, k == 0 ? VEIL_ERR_INTEGRITY : VEIL_OK);
            if (k == 0) {
                assert_null(m.m);
                assert_int_equal(m.n, 0);
                continue;
            }
            assert_members(&m, w, NWANT(w));
        }
    }
    sqlite3_close(db);
}

/* 20,000 rows come back complete, each once per token it has. */
static void test_members_large(void **state)
{
    struct fx *f = *state;
    struct vl_store *s = f->s;
    enum { N = 20000 };
    struct batch b;
    struct vl_members m = {NULL, 0};
    batch_init(&b, N);
    for (uint32_t i = 0; i < N; i++) {
        batch_set(&b, i, i * 7919u % 100003u, 1000u + i, "x", 2, 1, i % 2 ? "odd" : "even", 2,
                  "all");
    }
    assert_int_equal(put(s, T1, &b), VEIL_OK);
    batch_free(&b);
    struct want_member *w = calloc(N, sizeof(*w));
    assert_non_null(w);
    for (uint32_t i = 0; i < N; i++) {
        w[i].tok = 0;
        w[i].id = i * 7919u % 100003u;
    }
    const char *all[] = {"all", NULL};
    assert_int_equal(members_toks(s, T1, 2, all, &m), VEIL_OK);
    assert_members(&m, w, N);
    for (uint32_t i = 0; i < N; i++) {
        w[i].tok = i % 2 ? 1 : 0;
    }
    const char *parity[] = {"even", "odd", NULL};
    assert_int_equal(members_toks(s, T1, 1, parity, &m), VEIL_OK);
    assert_members(&m, w, N);
    free(w);
}

/* x_T's partitions under many small writes, replacements and deletes: they stay few (each
 * level merged into the next at 4), and every token's members, every find and every
 * aggregate group are exactly the live rows', with no entry left behind in x_T or y_T. */
static void test_partitions(void **state)
{
    struct fx *f = *state;
    struct vl_store *s = f->s;
    enum { NROWS = 600, NMOD = 7 };
    int live[NROWS], mod[NROWS]; /* live[i]: row i exists; mod[i]: its col-1 token */
    uint64_t seq = 1;
    vl_store_sqlite_partition(s, 5);
    for (uint32_t i = 0; i < NROWS; i++) {
        char a[16], u[16];
        struct batch b;
        snprintf(a, sizeof(a), "m%u", i % NMOD);
        snprintf(u, sizeof(u), "u%u", i);
        batch_init(&b, 1);
        batch_set(&b, 0, i, seq++, "row", 2, 1, a, 2, u);
        assert_int_equal(put(s, T1, &b), VEIL_OK);
        batch_free(&b);
        live[i] = 1;
        mod[i] = (int)(i % NMOD);
    }
    for (uint32_t i = 0; i < NROWS; i += 3) { /* replaced: another col-1 token, no col 2 */
        char a[16];
        snprintf(a, sizeof(a), "m%u", (i + 1) % NMOD);
        assert_int_equal(put1(s, T1, i, seq++, "again", 1, a), VEIL_OK);
        mod[i] = (int)((i + 1) % NMOD);
    }
    for (uint32_t i = 0; i < NROWS; i += 5) {
        uint8_t d[VL_DOCTOKEN_BYTES];
        mkdoc(d, i);
        struct vl_bytes del = docref(d);
        assert_int_equal(s->ops->delete_rows(s, T1, &del, 1), VEIL_OK);
        live[i] = 0;
    }
    char path[1024], sql[256];
    snprintf(path, sizeof(path), "%s/cloud/cloud.db", f->dir);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM \"q_%s\"", T1);
    int64_t parts = tu_sql_int(path, sql);
    /* about 1,300 entries went in over the writes: 260 partitions unmerged; merged, at
     * most 3 of each level below the top and a few levels */
    assert_true(parts >= 1 && parts <= 3 * 6 + 1);
    /* every entry is a live row's */
    int64_t want_x = 0;
    for (int i = 0; i < NROWS; i++) {
        want_x += live[i] ? (i % 3 == 0 ? 1 : 2) : 0;
    }
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM \"x_%s\"", T1);
    assert_int_equal(tu_sql_int(path, sql), want_x);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM \"y_%s\"", T1);
    assert_int_equal(tu_sql_int(path, sql), want_x);
    /* members and finds of each col-1 token, exactly */
    for (int k = 0; k < NMOD; k++) {
        char a[16];
        snprintf(a, sizeof(a), "m%d", k);
        const char *toks[] = {a, NULL};
        struct vl_members m = {NULL, 0};
        assert_int_equal(members_toks(s, T1, 1, toks, &m), VEIL_OK);
        struct want_member want[NROWS];
        size_t nw = 0;
        for (uint32_t i = 0; i < NROWS; i++) {
            if (live[i] && mod[i] == k) {
                want[nw++] = (struct want_member){0, i};
            }
        }
        assert_members(&m, want, nw);
        vl_members_free(&m);
        struct vl_doclist l;
        assert_int_equal(find_toks(s, T1, 1, toks, NULL, 10000, &l), VEIL_OK);
        assert_int_equal(l.n, nw);
        vl_doclist_free(&l);
    }
    /* a replaced row's old unique token is gone, a kept row's is there */
    const char *gone[] = {"u3", NULL}, *kept[] = {"u4", NULL};
    struct vl_doclist l;
    assert_int_equal(find_toks(s, T1, 2, gone, NULL, 10, &l), VEIL_OK);
    assert_int_equal(l.n, 0);
    vl_doclist_free(&l);
    assert_int_equal(find_toks(s, T1, 2, kept, NULL, 10, &l), VEIL_OK);
    assert_int_equal(l.n, 1);
    vl_doclist_free(&l);
    /* grouped by col 1: each group counts its live rows */
    uint8_t gcol[1][VL_COL_BYTES];
    mkcol(gcol[0], 1);
    struct vl_agg_request req = {NULL, (const uint8_t(*)[VL_COL_BYTES])gcol, 1, NULL, 0};
    struct vl_agg_result res;
    assert_int_equal(s->ops->aggregate(s, T1, &req, &res), VEIL_OK);
    assert_int_equal(res.n, NMOD);
    for (size_t g = 0; g < res.n; g++) {
        assert_int_equal(res.groups[g].keys[0].n, 2); /* "m0".."m6" */
        int k = res.groups[g].keys[0].p[1] - '0';
        uint64_t want = 0;
        for (int i = 0; i < NROWS; i++) {
            want += live[i] && mod[i] == k;
        }
        assert_int_equal(res.groups[g].count, want);
    }
    vl_agg_result_free(&res);

    /* a store that lists a hundred empty partitions of level 0 (and huge numbers): the next
     * write merges a bounded share of them, and answers stay whole */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    snprintf(sql, sizeof(sql),
             "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100)"
             " INSERT INTO \"q_%s\"(part, level, n) SELECT -9223372036854775807 + i, 0, 0 FROM n",
             T1);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM \"q_%s\"", T1);
    int64_t listed = tu_sql_int(path, sql);
    for (int i = 0; i < 6; i++) { /* more than a partition's worth: a new one, a merge */
        assert_int_equal(put1(s, T1, 1, seq++, "after", 1, "m3"), VEIL_OK);
    }
    assert_true(tu_sql_int(path, sql) < listed);
    const char *m3[] = {"m3", NULL};
    size_t n3 = 0;
    mod[1] = 3;
    for (int i = 0; i < NROWS; i++) {
        n3 += live[i] && mod[i] == 3;
    }
    assert_int_equal(find_toks(s, T1, 1, m3, NULL, 10000, &l), VEIL_OK);
    assert_int_equal(l.n, n3);
    vl_doclist_free(&l);

    /* a partition numbered 2^63-1 leaves no number for the next: writes fail, nothing
     * overflows; taken away, they work again */
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    snprintf(sql, sizeof(sql),
             "INSERT INTO \"q_%s\"(part, level, n) VALUES (9223372036854775807, 1, 0)", T1);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    assert_int_not_equal(put1(s, T1, 2, seq++, "blocked", 1, "m3"), VEIL_OK);
    snprintf(sql, sizeof(sql), "DELETE FROM \"q_%s\" WHERE part = 9223372036854775807", T1);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(put1(s, T1, 2, seq++, "again", 1, "m3"), VEIL_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dispatch),
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_find, setup, teardown),
        cmocka_unit_test_setup_teardown(test_find_byte_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_find_huge_term, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
        cmocka_unit_test(test_unavailable),
        cmocka_unit_test_setup_teardown(test_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secure_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aggregate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aggregate_shapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aggregate_bad, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aggregate_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rows_tampered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drop_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kv_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kv_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kv_atomic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_rows_and_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kv_drop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kv_tampered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_find_only_docs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aggregate_only_docs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_members, setup, teardown),
        cmocka_unit_test_setup_teardown(test_members_many_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_members_tampered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_members_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partitions, setup, teardown),
    };
    /* each test again over partitions of 5 entries (setup_small), under its name + " /5" */
    enum { N = sizeof(tests) / sizeof(tests[0]) };
    struct CMUnitTest all[2 * N];
    static char names[N][96];
    for (size_t i = 0; i < N; i++) {
        all[i] = tests[i];
        all[N + i] = tests[i];
        snprintf(names[i], sizeof(names[i]), "%s /5", tests[i].name);
        all[N + i].name = names[i];
        if (tests[i].setup_func == setup) {
            all[N + i].setup_func = setup_small;
        }
    }
    return cmocka_run_group_tests_name("store", all, NULL, NULL);
}
