/* test_trusted.c: the trusted state's search bookkeeping: per-word counters, holes, the
 * per-field totals BM25 needs, and documents by row sequence number; blocks of row
 * sequence numbers, the mark, and what accepting a rollback changes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <unistd.h>

#include "trusted/trusted.h"
#include "util/buf.h"

#include "testutil.h"

static struct vl_trusted *open_fresh(char **dir)
{
    struct vl_trusted *t = NULL;
    veil_status st;
    *dir = tu_tempdir();
    assert_int_equal(vl_trusted_open("sqlite:trusted.db", *dir, true, &t, &st), VEIL_OK);
    return t;
}

static void wkey(uint8_t out[VL_WKEY_BYTES], int w)
{
    memset(out, 0, VL_WKEY_BYTES);
    out[0] = (uint8_t)w;
}

static bool is_hole(struct vl_trusted *t, int w, uint64_t c)
{
    uint8_t k[VL_WKEY_BYTES];
    bool h = false;
    wkey(k, w);
    assert_int_equal(vl_trusted_holes(t, NULL, 1, "c", k, &c, 1, &h), VEIL_OK);
    return h;
}

static uint64_t count_of(struct vl_trusted *t, int w)
{
    uint8_t k[1][VL_WKEY_BYTES];
    uint64_t n = 99;
    wkey(k[0], w);
    assert_int_equal(vl_trusted_words_count(t, NULL, 1, "c", (const uint8_t(*)[VL_WKEY_BYTES])k, 1,
                                            &n),
                     VEIL_OK);
    return n;
}

/* A put intent of document `d` at seq, with field 0 holding `words` words. */
static struct vl_intent put_intent(int d, int64_t old, int64_t version, uint64_t seq,
                                   uint8_t slen[8], uint32_t words)
{
    struct vl_intent in;
    memset(&in, 0, sizeof(in));
    in.op = VL_INTENT_PUT;
    memset(in.doc, d, sizeof(in.doc));
    in.old_version = old;
    in.version = version;
    in.seq = seq;
    in.payload.p = (uint8_t *)"p";
    in.payload.n = 1;
    vl_store_u32(slen, 0);
    vl_store_u32(slen + 4, words);
    in.slen.p = slen;
    in.slen.n = words > 0 ? 8 : 0;
    return in;
}

static void test_counters_and_holes(void **state)
{
    (void)state;
    char *dir;
    struct vl_trusted *t = open_fresh(&dir);
    /* Two writes (seq 10 and 11) share word 1; write 10 has word 2 too. */
    struct vl_wordres r[3];
    memset(r, 0, sizeof(r));
    wkey(r[0].wkey, 1);
    r[0].res = 10;
    wkey(r[1].wkey, 2);
    r[1].res = 10;
    wkey(r[2].wkey, 1);
    r[2].res = 11;
    assert_int_equal(vl_trusted_words_reserve(t, 1, "c", r, 3), VEIL_OK);
    assert_int_equal(r[0].counter, 0);
    assert_int_equal(r[1].counter, 0);
    assert_int_equal(r[2].counter, 1); /* same word: the next one, in input order */
    assert_int_equal(count_of(t, 1), 2);
    assert_int_equal(count_of(t, 2), 1);
    assert_int_equal(count_of(t, 3), 0);
    assert_true(is_hole(t, 1, 0) && is_hole(t, 1, 1) && is_hole(t, 2, 0));
    assert_false(is_hole(t, 1, 2));
    /* Another tenant or collection has its own counters. */
    uint8_t k[1][VL_WKEY_BYTES];
    uint64_t n = 9;
    wkey(k[0], 1);
    assert_int_equal(vl_trusted_words_count(t, NULL, 2, "c", (const uint8_t(*)[VL_WKEY_BYTES])k, 1,
                                            &n),
                     VEIL_OK);
    assert_int_equal(n, 0);

    /* Write 10 finishes: its holes are filled; write 11's stay until it does. */
    uint8_t slen[8];
    struct vl_intent in = put_intent(0xaa, 0, 1, 10, slen, 7);
    assert_int_equal(vl_trusted_intents_begin(t, 1, "c", &in, 1), VEIL_OK);
    assert_true(is_hole(t, 1, 0));
    assert_int_equal(vl_trusted_intents_finish(t, 1, "c", &in, 1), VEIL_OK);
    assert_false(is_hole(t, 1, 0));
    assert_false(is_hole(t, 2, 0));
    assert_true(is_hole(t, 1, 1));

    /* Write 11 fails: it is aborted, and its hole stays for good. */
    uint8_t slen2[8];
    struct vl_intent in2 = put_intent(0xbb, 0, 1, 11, slen2, 3);
    assert_int_equal(vl_trusted_intents_begin(t, 1, "c", &in2, 1), VEIL_OK);
    assert_int_equal(vl_trusted_intents_abort(t, &in2, 1), VEIL_OK);
    assert_true(is_hole(t, 1, 1));
    vl_trusted_close(t);

    /* Everything survives a reopen. */
    veil_status st;
    assert_int_equal(vl_trusted_open("sqlite:trusted.db", dir, false, &t, &st), VEIL_OK);
    assert_int_equal(count_of(t, 1), 2);
    assert_true(is_hole(t, 1, 1));
    vl_trusted_close(t);
    tu_rmtree(dir);
    free(dir);
}

static void test_stats_and_seq(void **state)
{
    (void)state;
    char *dir;
    struct vl_trusted *t = open_fresh(&dir);
    uint64_t ndocs = 9, total = 9;
    assert_int_equal(vl_trusted_search_stats(t, NULL, 1, "c", 0, &ndocs, &total), VEIL_OK);
    assert_int_equal(ndocs, 0);
    assert_int_equal(total, 0);

    uint8_t s1[8], s2[8], s3[8];
    struct vl_intent a = put_intent(1, 0, 1, 5, s1, 10);
    struct vl_intent b = put_intent(2, 0, 1, 6, s2, 4);
    struct vl_intent ab[2] = {a, b};
    assert_int_equal(vl_trusted_intents_begin(t, 1, "c", ab, 2), VEIL_OK);
    assert_int_equal(vl_trusted_intents_finish(t, 1, "c", ab, 2), VEIL_OK);
    assert_int_equal(vl_trusted_search_stats(t, NULL, 1, "c", 0, &ndocs, &total), VEIL_OK);
    assert_int_equal(ndocs, 2);
    assert_int_equal(total, 14);
    assert_int_equal(vl_trusted_search_stats(t, NULL, 1, "c", 1, &ndocs, &total), VEIL_OK);
    assert_int_equal(ndocs, 0);

    /* Replacing document 1 (10 words) by one of 3: the totals follow. */
    struct vl_intent a2 = put_intent(1, 1, 2, 7, s3, 3);
    assert_int_equal(vl_trusted_intents_begin(t, 1, "c", &a2, 1), VEIL_OK);
    assert_int_equal(vl_trusted_intents_finish(t, 1, "c", &a2, 1), VEIL_OK);
    assert_int_equal(vl_trusted_search_stats(t, NULL, 1, "c", 0, &ndocs, &total), VEIL_OK);
    assert_int_equal(ndocs, 2);
    assert_int_equal(total, 7);

    /* Documents by sequence number: only the current write of a live document. */
    struct vl_seqdoc sd[3];
    memset(sd, 0, sizeof(sd));
    sd[0].seq = 5; /* document 1's old write */
    sd[1].seq = 7; /* its current one */
    sd[2].seq = 6;
    assert_int_equal(vl_trusted_docs_by_seq(t, NULL, 1, "c", sd, 3), VEIL_OK);
    assert_false(sd[0].found);
    assert_true(sd[1].found);
    assert_int_equal(sd[1].doc[0], 1);
    assert_int_equal(sd[1].version, 2);
    assert_int_equal(sd[1].slen.n, 8);
    assert_int_equal(vl_load_u32(sd[1].slen.p + 4), 3);
    assert_true(sd[2].found);
    vl_seqdocs_free(sd, 3);

    /* Deleting document 2: gone from the totals and from lookups by sequence number. */
    struct vl_intent del;
    memset(&del, 0, sizeof(del));
    del.op = VL_INTENT_DELETE;
    memset(del.doc, 2, sizeof(del.doc));
    del.old_version = 1;
    del.version = 2;
    del.seq = 6;
    del.payload.p = (uint8_t *)"p";
    del.payload.n = 1;
    assert_int_equal(vl_trusted_intents_begin(t, 1, "c", &del, 1), VEIL_OK);
    assert_int_equal(vl_trusted_intents_finish(t, 1, "c", &del, 1), VEIL_OK);
    assert_int_equal(vl_trusted_search_stats(t, NULL, 1, "c", 0, &ndocs, &total), VEIL_OK);
    assert_int_equal(ndocs, 1);
    assert_int_equal(total, 3);
    memset(sd, 0, sizeof(sd));
    sd[0].seq = 6;
    assert_int_equal(vl_trusted_docs_by_seq(t, NULL, 1, "c", sd, 1), VEIL_OK);
    assert_false(sd[0].found);
    vl_seqdocs_free(sd, 1);

    /* Shredding the tenant forgets its counters and totals. */
    struct vl_wordres r;
    memset(&r, 0, sizeof(r));
    wkey(r.wkey, 4);
    r.res = 8;
    assert_int_equal(vl_trusted_words_reserve(t, 1, "c", &r, 1), VEIL_OK);
    assert_int_equal(count_of(t, 4), 1);
    assert_int_equal(vl_trusted_tenant_shred(t, 1), VEIL_OK);
    assert_int_equal(count_of(t, 4), 0);
    assert_false(is_hole(t, 4, 0));
    assert_int_equal(vl_trusted_search_stats(t, NULL, 1, "c", 0, &ndocs, &total), VEIL_OK);
    assert_int_equal(ndocs, 0);
    vl_trusted_close(t);
    tu_rmtree(dir);
    free(dir);
}

/* Many sequence numbers close together are read by one walk of the index: the same
 * answers as one lookup each. */
static void test_docs_by_seq_walk(void **state)
{
    (void)state;
    char *dir;
    struct vl_trusted *t = open_fresh(&dir);
    enum { N = 200 };
    static uint8_t slen[N][8];
    struct vl_intent in[N];
    for (int i = 0; i < N; i++) {
        in[i] = put_intent(0, 0, 1, (uint64_t)(1000 + 2 * i), slen[i], (uint32_t)i + 1);
        memset(in[i].doc, 0, sizeof(in[i].doc));
        in[i].doc[0] = (uint8_t)(i & 0xff);
        in[i].doc[1] = (uint8_t)(i >> 8);
    }
    assert_int_equal(vl_trusted_intents_begin(t, 1, "c", in, N), VEIL_OK);
    assert_int_equal(vl_trusted_intents_finish(t, 1, "c", in, N), VEIL_OK);
    /* document 7 deleted, document 9 rewritten (seq 5000) */
    struct vl_intent del = in[7];
    del.op = VL_INTENT_DELETE;
    del.old_version = 1;
    del.version = 2;
    assert_int_equal(vl_trusted_intents_begin(t, 1, "c", &del, 1), VEIL_OK);
    assert_int_equal(vl_trusted_intents_finish(t, 1, "c", &del, 1), VEIL_OK);
    uint8_t s9[8];
    struct vl_intent re = put_intent(0, 1, 2, 5000, s9, 77);
    memcpy(re.doc, in[9].doc, sizeof(re.doc));
    assert_int_equal(vl_trusted_intents_begin(t, 1, "c", &re, 1), VEIL_OK);
    assert_int_equal(vl_trusted_intents_finish(t, 1, "c", &re, 1), VEIL_OK);

    /* every number from 999 to 1400 (odd ones were never used) */
    enum { M = 402 };
    static struct vl_seqdoc a[M], b[1];
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < M; i++) {
            memset(&a[i], 0, sizeof(a[i]));
            a[i].seq = (uint64_t)(999 + i);
        }
        /* k == 0: all at once (a walk); k == 1: one at a time (lookups) */
        for (int i = 0; k == 1 && i < M; i++) {
            memset(b, 0, sizeof(b));
            b[0].seq = a[i].seq;
            assert_int_equal(vl_trusted_docs_by_seq(t, NULL, 1, "c", b, 1), VEIL_OK);
            a[i] = b[0];
        }
        if (k == 0) {
            assert_int_equal(vl_trusted_docs_by_seq(t, NULL, 1, "c", a, M), VEIL_OK);
        }
        for (int i = 0; i < M; i++) {
            uint64_t seq = (uint64_t)(999 + i);
            int d = (int)(seq - 1000) / 2;
            bool want = seq >= 1000 && seq % 2 == 0 && d < N && d != 7 && d != 9;
            assert_int_equal(a[i].found, want);
            if (want) {
                assert_int_equal(a[i].doc[0], d & 0xff);
                assert_int_equal(a[i].doc[1], d >> 8);
                assert_int_equal(a[i].version, 1);
                assert_int_equal(vl_load_u32(a[i].slen.p + 4), (uint32_t)d + 1);
            }
        }
        vl_seqdocs_free(a, M);
    }
    memset(b, 0, sizeof(b));
    b[0].seq = 5000;
    assert_int_equal(vl_trusted_docs_by_seq(t, NULL, 1, "c", b, 1), VEIL_OK);
    assert_true(b[0].found);
    assert_int_equal(b[0].version, 2);
    vl_seqdocs_free(b, 1);
    vl_trusted_close(t);
    tu_rmtree(dir);
    free(dir);
}


/* A tenant (id 1) and collection "c", as blocks need. */
static void coll_make(struct vl_trusted *t)
{
    veil_status st;
    int created = 0;
    struct vl_bytes wrapped = {(uint8_t *)"wrapped", 7};
    assert_int_equal(vl_trusted_tenant_create(t, "acme", &wrapped, &st), VEIL_OK);
    assert_int_equal(vl_trusted_collection_put(t, 1, "c", "policy", &created), VEIL_OK);
}

static char *file_in(const char *dir, const char *name)
{
    char *p = NULL;
    assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
    return p;
}

static void copy_file(const char *from, const char *to)
{
    size_t n = 0;
    char *b = tu_read_file(from, &n);
    assert_non_null(b);
    FILE *f = fopen(to, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
    free(b);
}

static bool overlap(uint64_t a, uint64_t an, uint64_t b, uint64_t bn)
{
    return a < b + bn && b < a + an;
}

/* The attack: a trusted state restored from a backup hands out its blocks again. Every
 * block it reserves afterwards must miss the blocks reserved after the backup (which it
 * no longer knows), and the mark goes back (what lets the engine notice). */
static void test_blocks_after_restore(void **state)
{
    (void)state;
    char *dir;
    veil_status st;
    struct vl_trusted *t = open_fresh(&dir);
    coll_make(t);
    uint64_t a = 0, b = 0, c = 0, ma = 0, mb = 0, mc = 0, m = 0;
    assert_int_equal(vl_trusted_seq_reserve(t, 1, "c", 1024, &a, &ma), VEIL_OK);
    assert_true(a >= (uint64_t)1 << 32 && a + 1024 <= (uint64_t)1 << 62);
    assert_int_equal(vl_trusted_mark(t, &m), VEIL_OK);
    assert_int_equal(m, ma);
    assert_int_equal(vl_trusted_seq_reserve(t, 2, "c", 1, &b, NULL), VEIL_ERR_NOT_FOUND);
    vl_trusted_close(t);
    char *db = file_in(dir, "trusted.db"), *saved = file_in(dir, "backup.db");
    char *wal = file_in(dir, "trusted.db-wal"), *shm = file_in(dir, "trusted.db-shm");
    assert_int_equal(access(wal, F_OK), -1); /* closed: everything is in the file */
    copy_file(db, saved);

    assert_int_equal(vl_trusted_open("sqlite:trusted.db", dir, false, &t, &st), VEIL_OK);
    assert_int_equal(vl_trusted_seq_reserve(t, 1, "c", 1024, &b, &mb), VEIL_OK);
    assert_int_equal(vl_trusted_seq_reserve(t, 1, "c", 5000, &c, &mc), VEIL_OK);
    assert_true(mb > ma && mc > mb);
    assert_false(overlap(a, 1024, b, 1024) || overlap(a, 1024, c, 5000) ||
                 overlap(b, 1024, c, 5000));
    /* A write batch moves the mark too. */
    uint8_t slen[8];
    struct vl_intent in = put_intent(0x11, 0, 1, b, slen, 1);
    assert_int_equal(vl_trusted_intents_begin(t, 1, "c", &in, 1), VEIL_OK);
    assert_int_equal(in.mark, mc + 1);
    vl_trusted_close(t);

    copy_file(saved, db);
    unlink(wal);
    unlink(shm);
    assert_int_equal(vl_trusted_open("sqlite:trusted.db", dir, false, &t, &st), VEIL_OK);
    assert_int_equal(vl_trusted_mark(t, &m), VEIL_OK);
    assert_int_equal(m, ma); /* behind the stores, which saw mc + 1 */
    for (int i = 0; i < 200; i++) {
        uint64_t d = 0;
        assert_int_equal(vl_trusted_seq_reserve(t, 1, "c", 1024, &d, NULL), VEIL_OK);
        assert_false(overlap(d, 1024, a, 1024));
        assert_false(overlap(d, 1024, b, 1024));
        assert_false(overlap(d, 1024, c, 5000));
    }
    vl_trusted_close(t);
    free(db);
    free(saved);
    free(wal);
    free(shm);
    tu_rmtree(dir);
    free(dir);
}

/* Blocks this state knows of never overlap: huge blocks fill the space, every one that is
 * granted misses the others, and a full space is an error, not an overlap. */
static void test_blocks_never_overlap(void **state)
{
    (void)state;
    char *dir;
    struct vl_trusted *t = open_fresh(&dir);
    coll_make(t);
    enum { TRIES = 24 };
    const uint64_t n = (uint64_t)1 << 59;
    uint64_t got[TRIES];
    size_t k = 0;
    for (int i = 0; i < TRIES; i++) {
        uint64_t s = 0;
        veil_err rc = vl_trusted_seq_reserve(t, 1, "c", n, &s, NULL);
        assert_true(rc == VEIL_OK || rc == VEIL_ERR_INTERNAL);
        if (rc != VEIL_OK) {
            continue;
        }
        assert_true(s >= (uint64_t)1 << 32 && s + n <= (uint64_t)1 << 62);
        for (size_t j = 0; j < k; j++) {
            assert_false(overlap(s, n, got[j], n));
        }
        got[k++] = s;
    }
    assert_true(k >= 2 && k <= 7);
    vl_trusted_close(t);
    tu_rmtree(dir);
    free(dir);
}

static size_t ranges_of(struct vl_trusted *t, int w, struct vl_wordrange *out, size_t max)
{
    uint8_t k[VL_WKEY_BYTES];
    struct vl_wordrange *r = NULL;
    size_t n = 0;
    wkey(k, w);
    assert_int_equal(vl_trusted_words_ranges(t, NULL, 1, "c", k, &r, &n), VEIL_OK);
    assert_true(n <= max);
    for (size_t i = 0; i < n; i++) {
        out[i] = r[i];
    }
    free(r);
    return n;
}

static struct vl_wordres reserve_one(struct vl_trusted *t, int w, uint64_t res)
{
    struct vl_wordres r;
    memset(&r, 0, sizeof(r));
    wkey(r.wkey, w);
    r.res = res;
    assert_int_equal(vl_trusted_words_reserve(t, 1, "c", &r, 1), VEIL_OK);
    return r;
}

/* Accepting a rollback: the mark moves past the stores' (and its own), and each word's
 * counters from its count on get a new key epoch, its earlier entries keeping theirs. */
static void test_rollback_accept(void **state)
{
    (void)state;
    char *dir;
    veil_status st;
    struct vl_trusted *t = open_fresh(&dir);
    struct vl_wordrange r[8];
    struct vl_rollback rb;
    uint64_t m = 0, n = 9;
    for (int i = 0; i < 3; i++) {
        struct vl_wordres x = reserve_one(t, 1, 10 + (uint64_t)i);
        assert_int_equal(x.counter, (uint64_t)i);
        assert_int_equal(x.epoch, 0);
    }
    assert_int_equal(ranges_of(t, 1, r, 8), 1);
    assert_true(r[0].first == 0 && r[0].epoch == 0);
    assert_int_equal(ranges_of(t, 2, r, 8), 0);
    assert_int_equal(vl_trusted_rollbacks(t, &n), VEIL_OK);
    assert_int_equal(n, 0);

    assert_int_equal(vl_trusted_rollback_accept(t, 100, &rb), VEIL_OK);
    assert_true(rb.trusted_mark == 0 && rb.store_mark == 100 && rb.mark == 101 && rb.epoch == 1);
    assert_int_equal(vl_trusted_mark(t, &m), VEIL_OK);
    assert_int_equal(m, 101);
    assert_int_equal(vl_trusted_rollbacks(t, &n), VEIL_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ranges_of(t, 1, r, 8), 2);
    assert_true(r[0].first == 0 && r[0].epoch == 0 && r[1].first == 3 && r[1].epoch == 1);
    struct vl_wordres x = reserve_one(t, 1, 20);
    assert_true(x.counter == 3 && x.epoch == 1);
    x = reserve_one(t, 2, 21);
    assert_true(x.counter == 0 && x.epoch == 1);
    assert_int_equal(ranges_of(t, 2, r, 8), 1);
    assert_true(r[0].first == 0 && r[0].epoch == 1);

    /* Again, with the stores behind this time: the mark still moves on. */
    assert_int_equal(vl_trusted_rollback_accept(t, 50, &rb), VEIL_OK);
    assert_true(rb.trusted_mark == 101 && rb.mark == 102 && rb.epoch == 2);
    assert_int_equal(ranges_of(t, 1, r, 8), 3);
    assert_true(r[1].first == 3 && r[1].epoch == 1 && r[2].first == 4 && r[2].epoch == 2);
    assert_int_equal(ranges_of(t, 2, r, 8), 2);
    assert_true(r[0].epoch == 1 && r[1].first == 1 && r[1].epoch == 2);
    /* A third, with no writes since: the last epoch is replaced, no empty range kept. */
    assert_int_equal(vl_trusted_rollback_accept(t, 0, &rb), VEIL_OK);
    assert_int_equal(ranges_of(t, 1, r, 8), 3);
    assert_true(r[2].first == 4 && r[2].epoch == 3);
    vl_trusted_close(t);
    assert_int_equal(vl_trusted_open("sqlite:trusted.db", dir, false, &t, &st), VEIL_OK);
    assert_int_equal(ranges_of(t, 1, r, 8), 3);
    assert_int_equal(reserve_one(t, 1, 30).epoch, 3);
    vl_trusted_close(t);
    tu_rmtree(dir);
    free(dir);
}

/* Numbers of several blocks far apart: each block's numbers are walked, the answers are
 * those of one lookup each. */
static void test_docs_by_seq_blocks(void **state)
{
    (void)state;
    char *dir;
    struct vl_trusted *t = open_fresh(&dir);
    enum { N = 300 };
    static uint8_t slen[N][8];
    static struct vl_intent in[N];
    static struct vl_seqdoc a[N + 3];
    const uint64_t base[3] = {(uint64_t)1 << 40, (uint64_t)3 << 50, (uint64_t)5 << 33};
    for (int i = 0; i < N; i++) {
        in[i] = put_intent(0, 0, 1, base[i % 3] + (uint64_t)i, slen[i], (uint32_t)i + 1);
        in[i].doc[0] = (uint8_t)(i & 0xff);
        in[i].doc[1] = (uint8_t)(i >> 8);
    }
    assert_int_equal(vl_trusted_intents_begin(t, 1, "c", in, N), VEIL_OK);
    assert_int_equal(vl_trusted_intents_finish(t, 1, "c", in, N), VEIL_OK);
    size_t k = 0;
    for (int b = 0; b < 3; b++) {
        int order[3] = {2, 0, 1}; /* ascending bases */
        for (int i = 0; i < N; i++) {
            if (i % 3 == order[b]) {
                memset(&a[k], 0, sizeof(a[k]));
                a[k++].seq = base[order[b]] + (uint64_t)i;
            }
        }
        memset(&a[k], 0, sizeof(a[k]));
        a[k++].seq = base[order[b]] + N + 1; /* never used */
    }
    assert_int_equal(vl_trusted_docs_by_seq(t, NULL, 1, "c", a, k), VEIL_OK);
    size_t found = 0;
    for (size_t j = 0; j < k; j++) {
        if (a[j].found) {
            int i = a[j].doc[0] | a[j].doc[1] << 8;
            assert_int_equal(a[j].seq, base[i % 3] + (uint64_t)i);
            assert_int_equal(vl_load_u32(a[j].slen.p + 4), (uint32_t)i + 1);
            found++;
        }
    }
    assert_int_equal(found, N);
    vl_seqdocs_free(a, k);
    vl_trusted_close(t);
    tu_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counters_and_holes),
        cmocka_unit_test(test_stats_and_seq),
        cmocka_unit_test(test_docs_by_seq_walk),
        cmocka_unit_test(test_blocks_after_restore),
        cmocka_unit_test(test_blocks_never_overlap),
        cmocka_unit_test(test_rollback_accept),
        cmocka_unit_test(test_docs_by_seq_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
