/* test_trusted.c: the trusted state's search bookkeeping: per-word counters, holes, the
 * per-field totals BM25 needs, and documents by row sequence number; blocks of row
 * sequence numbers, the mark, and what accepting a rollback changes; differential privacy
 * budgets and kept answers, attacked by concurrent requests, restarts and abandoned ones;
 * the token sets that writes keep and reads check stores' indexes against. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <sqlite3.h>
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


/* ---- differential privacy: budgets and kept answers ---- */

#define EPS 1000000ULL                 /* epsilon 1, in micro-epsilon */
#define DELTA 1000000000000ULL         /* delta 1e-6, in units of 1e-18 */
#define DAY ((int64_t)86400)
#define P0 ((int64_t)1796256000)       /* a day's start (2026-12-03T00:00:00Z) */

static struct vl_dp_ask ask_of(const char *token, int q)
{
    struct vl_dp_ask a;
    memset(&a, 0, sizeof(a));
    a.tenant = 1;
    a.coll = "c";
    a.role = "analyst";
    a.token = token;
    a.period = P0;
    a.query[0] = (uint8_t)(q & 0xff);
    a.query[1] = (uint8_t)(q >> 8);
    a.query[31] = 0x5a;
    a.eps = EPS;
    a.delta = DELTA;
    a.token_budget = 10 * EPS;
    a.role_budget = 20 * EPS;
    a.now = P0 + 100;
    a.stale_after = 60;
    return a;
}

static enum vl_dp_outcome begin_ok(struct vl_trusted *t, const struct vl_dp_ask *a,
                                   struct vl_dp_reply *r)
{
    assert_int_equal(vl_trusted_dp_begin(t, a, r), VEIL_OK);
    return r->outcome;
}

/* Asks and checks the outcome; a KEPT answer's text must be `kept`. Returns the ticket. */
static int64_t ask_expect(struct vl_trusted *t, const struct vl_dp_ask *a,
                          enum vl_dp_outcome want, const char *kept)
{
    struct vl_dp_reply r;
    assert_int_equal(begin_ok(t, a, &r), want);
    if (want == VL_DP_KEPT) {
        assert_non_null(r.answer);
        assert_string_equal(r.answer, kept);
    } else {
        assert_null(r.answer);
    }
    assert_true((want == VL_DP_SPENT) == (r.ticket > 0));
    free(r.answer);
    return r.ticket;
}

struct spent {
    uint64_t eps, delta, answers;
    bool found;
};

/* The usage row of (role, token) in the period; token NULL: the role's total. */
static struct spent spent_of(struct vl_trusted *t, const char *coll, int64_t period,
                             const char *role, const char *token)
{
    struct spent sp;
    json_t *u = NULL;
    size_t i;
    json_t *row;
    memset(&sp, 0, sizeof(sp));
    assert_int_equal(vl_trusted_dp_usage(t, 1, coll, period, role, token, &u), VEIL_OK);
    json_array_foreach(u, i, row) {
        json_t *tk = json_object_get(row, "token");
        if (token == NULL ? json_is_null(tk)
                          : json_is_string(tk) && strcmp(json_string_value(tk), token) == 0) {
            assert_false(sp.found);
            sp.found = true;
            assert_true(json_is_integer(json_object_get(row, "epsilon")));
            sp.eps = (uint64_t)json_integer_value(json_object_get(row, "epsilon"));
            sp.delta = (uint64_t)json_integer_value(json_object_get(row, "delta"));
            sp.answers = (uint64_t)json_integer_value(json_object_get(row, "answers"));
        }
    }
    json_decref(u);
    return sp;
}

static void spent_is(struct vl_trusted *t, const char *token, uint64_t eps, uint64_t delta,
                     uint64_t answers)
{
    struct spent sp = spent_of(t, "c", P0, "analyst", token);
    assert_true(sp.found || (eps == 0 && answers == 0));
    assert_int_equal(sp.eps, eps);
    assert_int_equal(sp.delta, delta);
    assert_int_equal(sp.answers, answers);
}

/* Rows of a table of the trusted state, read by another connection. */
static long rows_in(const char *dir, const char *sql)
{
    char *path = file_in(dir, "trusted.db");
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    long n = (long)sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    free(path);
    return n;
}

enum { NTHREADS = 16, ROUNDS = 6 };

struct racer {
    struct vl_trusted *t;
    pthread_barrier_t *go;
    struct vl_dp_ask a;
    char token[16];
    char text[32];
    enum vl_dp_outcome first;  /* the outcome of its first ask */
    enum vl_dp_outcome last;   /* after waiting out PENDING */
    char *answer;
    veil_err rc;
};

/* Asks at the same moment as the others; a SPENT answer is finished with `text` (after a
 * pause, so the others find it pending); PENDING is asked again until it is not. */
static void *racer_run(void *arg)
{
    struct racer *x = arg;
    struct vl_dp_reply r;
    pthread_barrier_wait(x->go);
    x->rc = vl_trusted_dp_begin(x->t, &x->a, &r);
    x->first = x->last = r.outcome;
    while (x->rc == VEIL_OK) {
        if (r.outcome == VL_DP_SPENT) {
            usleep(20000);
            x->rc = vl_trusted_dp_finish(x->t, r.ticket, x->text);
            break;
        }
        if (r.outcome != VL_DP_PENDING) {
            x->answer = r.answer;
            break;
        }
        usleep(1000);
        x->rc = vl_trusted_dp_begin(x->t, &x->a, &r);
        x->last = r.outcome;
    }
    return NULL;
}

static void race(struct racer *x, size_t n)
{
    pthread_t th[NTHREADS];
    pthread_barrier_t go;
    assert_true(n <= NTHREADS);
    assert_int_equal(pthread_barrier_init(&go, NULL, (unsigned)n), 0);
    for (size_t i = 0; i < n; i++) {
        x[i].go = &go;
        assert_int_equal(pthread_create(&th[i], NULL, racer_run, &x[i]), 0);
    }
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(x[i].rc, VEIL_OK);
    }
    pthread_barrier_destroy(&go);
}

/* The attack: many requests for different answers at once, each checking the budget before
 * another's spend lands. Exactly as many are paid for as the budget allows, and the sums
 * are exact: whether the budget that runs out is one token's or the role's (shared by the
 * tokens). */
static void test_dp_race_different(void **state)
{
    (void)state;
    char *dir;
    struct vl_trusted *t = open_fresh(&dir);
    static struct racer x[NTHREADS];
    for (int round = 0; round < 2 * ROUNDS; round++) {
        bool by_role = round % 2 == 1;
        uint64_t k = 3 + (uint64_t)round;  /* answers the budget pays for */
        int64_t period = P0 + round * DAY;
        for (int i = 0; i < NTHREADS; i++) {
            memset(&x[i], 0, sizeof(x[i]));
            x[i].t = t;
            snprintf(x[i].token, sizeof(x[i].token), "tok-%d", by_role ? i : 0);
            snprintf(x[i].text, sizeof(x[i].text), "answer %d", i);
            x[i].a = ask_of(x[i].token, round * NTHREADS + i);
            x[i].a.period = period;
            x[i].a.now = period + 1;
            x[i].a.token_budget = by_role ? 1000 * EPS : k * EPS;
            x[i].a.role_budget = by_role ? k * EPS : 1000 * EPS;
        }
        race(x, NTHREADS);
        uint64_t spent = 0, exhausted = 0, tokens_eps = 0;
        for (int i = 0; i < NTHREADS; i++) {
            spent += x[i].first == VL_DP_SPENT;
            exhausted += x[i].first == VL_DP_EXHAUSTED;
            free(x[i].answer);
        }
        assert_int_equal(spent, k);
        assert_int_equal(exhausted, NTHREADS - k);
        struct spent role = spent_of(t, "c", period, "analyst", NULL);
        assert_int_equal(role.eps, k * EPS);
        assert_int_equal(role.delta, k * DELTA);
        assert_int_equal(role.answers, k);
        json_t *u = NULL;
        size_t i;
        json_t *row;
        assert_int_equal(vl_trusted_dp_usage(t, 1, "c", period, "analyst", NULL, &u), VEIL_OK);
        json_array_foreach(u, i, row) {
            if (!json_is_null(json_object_get(row, "token"))) {
                tokens_eps += (uint64_t)json_integer_value(json_object_get(row, "epsilon"));
            }
        }
        json_decref(u);
        assert_int_equal(tokens_eps, k * EPS);
    }
    vl_trusted_close(t);
    tu_rmtree(dir);
    free(dir);
}

/* The attack: many requests for the same answer at once, by different tokens, hoping to
 * get it noised (and paid for) several times. One pays; the others wait and get its text. */
static void test_dp_race_same(void **state)
{
    (void)state;
    char *dir;
    struct vl_trusted *t = open_fresh(&dir);
    static struct racer x[NTHREADS];
    for (int round = 0; round < ROUNDS; round++) {
        int64_t period = P0 + round * DAY;
        for (int i = 0; i < NTHREADS; i++) {
            memset(&x[i], 0, sizeof(x[i]));
            x[i].t = t;
            snprintf(x[i].token, sizeof(x[i].token), "tok-%d", i % 4);
            snprintf(x[i].text, sizeof(x[i].text), "answer of %d", i);
            x[i].a = ask_of(x[i].token, 7);
            x[i].a.period = period;
            x[i].a.now = period + 1;
            x[i].a.stale_after = 3600;
        }
        race(x, NTHREADS);
        int spender = -1;
        for (int i = 0; i < NTHREADS; i++) {
            if (x[i].first == VL_DP_SPENT) {
                assert_int_equal(spender, -1);
                spender = i;
            } else {
                assert_int_equal(x[i].first == VL_DP_PENDING || x[i].first == VL_DP_KEPT, 1);
            }
        }
        assert_true(spender >= 0);
        for (int i = 0; i < NTHREADS; i++) {
            if (i != spender) {
                assert_int_equal(x[i].last, VL_DP_KEPT);
                assert_string_equal(x[i].answer, x[spender].text);
            }
            free(x[i].answer);
        }
        struct spent role = spent_of(t, "c", period, "analyst", NULL);
        assert_int_equal(role.eps, EPS);
        assert_int_equal(role.delta, DELTA);
        assert_int_equal(role.answers, 1);
        assert_int_equal(spent_of(t, "c", period, "analyst", x[spender].token).eps, EPS);
    }
    vl_trusted_close(t);
    tu_rmtree(dir);
    free(dir);
}

/* Two tokens of a role share its budget; each has its own too; collections and tenants
 * have their own. An exhausted ask changes nothing. Sums are exact for any eps. */
static void test_dp_token_and_role(void **state)
{
    (void)state;
    char *dir;
    struct vl_trusted *t = open_fresh(&dir);
    struct vl_dp_reply r;
    struct vl_dp_ask a = ask_of("A", 1);
    a.token_budget = 2 * EPS;
    a.role_budget = 3 * EPS;
    ask_expect(t, &a, VL_DP_SPENT, NULL);
    a.query[0] = 2;
    assert_int_equal(begin_ok(t, &a, &r), VL_DP_SPENT);
    assert_true(r.token_spent == 2 * EPS && r.role_spent == 2 * EPS);
    assert_true(r.token_delta == 2 * DELTA && r.role_delta == 2 * DELTA);
    a.query[0] = 3;
    assert_int_equal(begin_ok(t, &a, &r), VL_DP_EXHAUSTED);
    assert_true(r.token_exhausted && !r.role_exhausted);
    assert_true(r.token_spent == 2 * EPS && r.role_spent == 2 * EPS && r.ticket == 0);

    struct vl_dp_ask b = ask_of("B", 4);
    b.token_budget = 2 * EPS;
    b.role_budget = 3 * EPS;
    assert_int_equal(begin_ok(t, &b, &r), VL_DP_SPENT);
    assert_true(r.token_spent == EPS && r.role_spent == 3 * EPS);
    b.query[0] = 5;
    assert_int_equal(begin_ok(t, &b, &r), VL_DP_EXHAUSTED);
    assert_true(!r.token_exhausted && r.role_exhausted);
    /* Both at once: a token over its own budget in a spent role. */
    a.query[0] = 6;
    assert_int_equal(begin_ok(t, &a, &r), VL_DP_EXHAUSTED);
    assert_true(r.token_exhausted && r.role_exhausted);
    spent_is(t, "A", 2 * EPS, 2 * DELTA, 2);
    spent_is(t, "B", EPS, DELTA, 1);
    spent_is(t, NULL, 3 * EPS, 3 * DELTA, 3);
    /* An exhausted query was not recorded: with budget, it is paid for, not pending. */
    b.role_budget = 4 * EPS;
    b.query[0] = 5;
    ask_expect(t, &b, VL_DP_SPENT, NULL);

    /* Another collection, another tenant: their own budgets. */
    a.coll = "d";
    ask_expect(t, &a, VL_DP_SPENT, NULL);
    a.coll = "c";
    a.tenant = 2;
    ask_expect(t, &a, VL_DP_SPENT, NULL);
    spent_is(t, "A", 2 * EPS, 2 * DELTA, 2);

    /* Exact sums: three answers of a third of the budget, less one, fit; a fourth not. */
    struct vl_dp_ask c = ask_of("C", 10);
    c.role = "other";
    c.eps = 333333;
    c.token_budget = 999999;
    c.role_budget = 999999;
    for (int i = 0; i < 3; i++) {
        c.query[0] = (uint8_t)(10 + i);
        ask_expect(t, &c, VL_DP_SPENT, NULL);
    }
    c.query[0] = 13;
    ask_expect(t, &c, VL_DP_EXHAUSTED, NULL);
    assert_int_equal(spent_of(t, "c", P0, "other", NULL).eps, 999999);
    /* A budget already overspent (lowered since) pays for nothing, even a free answer. */
    c.token_budget = 100;
    c.eps = 0;
    ask_expect(t, &c, VL_DP_EXHAUSTED, NULL);
    /* Budgets beyond what a row can hold are no overflow. */
    c.token_budget = c.role_budget = UINT64_MAX;
    c.eps = (uint64_t)INT64_MAX;
    ask_expect(t, &c, VL_DP_EXHAUSTED, NULL);
    c.eps = (uint64_t)INT64_MAX + 1;
    assert_int_equal(vl_trusted_dp_begin(t, &c, &r), VEIL_ERR_INTERNAL);
    /* No token may pose as the role's total. */
    c.eps = 1;
    c.token = "";
    assert_int_equal(vl_trusted_dp_begin(t, &c, &r), VEIL_ERR_INTERNAL);
    assert_int_equal(spent_of(t, "c", P0, "other", NULL).eps, 999999);
    vl_trusted_close(t);
    tu_rmtree(dir);
    free(dir);
}

/* A kept answer is given to every token of the role without spending; refresh pays again
 * and replaces it; finish and abort take only a pending ticket. */
static void test_dp_kept_and_refresh(void **state)
{
    (void)state;
    char *dir;
    struct vl_trusted *t = open_fresh(&dir);
    struct vl_dp_ask a = ask_of("A", 1), b = ask_of("B", 1);
    int64_t t1 = ask_expect(t, &a, VL_DP_SPENT, NULL);
    ask_expect(t, &b, VL_DP_PENDING, NULL);
    assert_int_equal(vl_trusted_dp_finish(t, t1, "{\"n\":1}"), VEIL_OK);
    ask_expect(t, &b, VL_DP_KEPT, "{\"n\":1}");
    ask_expect(t, &a, VL_DP_KEPT, "{\"n\":1}");
    spent_is(t, NULL, EPS, DELTA, 1);
    spent_is(t, "B", 0, 0, 0);
    /* Another role has its own answers. */
    struct vl_dp_ask o = ask_of("O", 1);
    o.role = "other";
    ask_expect(t, &o, VL_DP_SPENT, NULL);

    b.refresh = true;
    int64_t t2 = ask_expect(t, &b, VL_DP_SPENT, NULL);
    assert_true(t2 > t1);
    spent_is(t, NULL, 2 * EPS, 2 * DELTA, 2);
    spent_is(t, "B", EPS, DELTA, 1);
    ask_expect(t, &a, VL_DP_PENDING, NULL);  /* the refreshed answer is being computed */
    assert_int_equal(vl_trusted_dp_finish(t, t1, "old again"), VEIL_ERR_NOT_FOUND);
    assert_int_equal(vl_trusted_dp_finish(t, t2, "{\"n\":2}"), VEIL_OK);
    ask_expect(t, &a, VL_DP_KEPT, "{\"n\":2}");
    /* A finished ticket, an unknown one: nothing changes. */
    assert_int_equal(vl_trusted_dp_finish(t, t2, "{\"n\":3}"), VEIL_ERR_NOT_FOUND);
    assert_int_equal(vl_trusted_dp_abort(t, t2, true), VEIL_ERR_NOT_FOUND);
    assert_int_equal(vl_trusted_dp_finish(t, 999999, "x"), VEIL_ERR_NOT_FOUND);
    assert_int_equal(vl_trusted_dp_abort(t, 999999, true), VEIL_ERR_NOT_FOUND);
    assert_int_equal(vl_trusted_dp_abort(t, -1, false), VEIL_ERR_NOT_FOUND);
    ask_expect(t, &a, VL_DP_KEPT, "{\"n\":2}");
    spent_is(t, NULL, 2 * EPS, 2 * DELTA, 2);
    /* refresh with no budget left: exhausted, and the kept answer stays. */
    b.role_budget = 2 * EPS;
    ask_expect(t, &b, VL_DP_EXHAUSTED, NULL);
    ask_expect(t, &a, VL_DP_KEPT, "{\"n\":2}");
    vl_trusted_close(t);
    tu_rmtree(dir);
    free(dir);
}

/* An answer not released: abort forgets it, and gives the spend back only when asked to,
 * once. */
static void test_dp_abort(void **state)
{
    (void)state;
    char *dir;
    struct vl_trusted *t = open_fresh(&dir);
    struct vl_dp_ask a = ask_of("A", 1), b = ask_of("B", 2);
    ask_expect(t, &b, VL_DP_SPENT, NULL);
    int64_t k = ask_expect(t, &a, VL_DP_SPENT, NULL);
    assert_int_equal(vl_trusted_dp_abort(t, k, false), VEIL_OK);
    spent_is(t, "A", EPS, DELTA, 1);
    spent_is(t, NULL, 2 * EPS, 2 * DELTA, 2);
    assert_int_equal(vl_trusted_dp_finish(t, k, "late"), VEIL_ERR_NOT_FOUND);
    k = ask_expect(t, &a, VL_DP_SPENT, NULL);  /* not pending any more: paid again */
    spent_is(t, "A", 2 * EPS, 2 * DELTA, 2);
    assert_int_equal(vl_trusted_dp_abort(t, k, true), VEIL_OK);
    spent_is(t, "A", EPS, DELTA, 1);
    spent_is(t, NULL, 2 * EPS, 2 * DELTA, 2);
    assert_int_equal(vl_trusted_dp_abort(t, k, true), VEIL_ERR_NOT_FOUND); /* not twice */
    spent_is(t, "A", EPS, DELTA, 1);
    spent_is(t, "B", EPS, DELTA, 1);
    /* A refund after a reset goes no lower than 0. */
    size_t n = 0;
    k = ask_expect(t, &a, VL_DP_SPENT, NULL);
    assert_int_equal(vl_trusted_dp_reset(t, 1, "c", P0, "analyst", NULL, &n), VEIL_OK);
    assert_int_equal(vl_trusted_dp_abort(t, k, true), VEIL_OK);
    spent_is(t, "A", 0, 0, 0);
    spent_is(t, NULL, 0, 0, 0);
    vl_trusted_close(t);
    tu_rmtree(dir);
    free(dir);
}

/* Reset of one token, then of a whole role: spending back to 0, kept answers stay. */
static void test_dp_reset(void **state)
{
    (void)state;
    char *dir;
    struct vl_trusted *t = open_fresh(&dir);
    struct vl_dp_ask a = ask_of("A", 1), b = ask_of("B", 2), o = ask_of("O", 3);
    o.role = "other";
    a.token_budget = EPS;
    int64_t k = ask_expect(t, &a, VL_DP_SPENT, NULL);
    assert_int_equal(vl_trusted_dp_finish(t, k, "kept"), VEIL_OK);
    ask_expect(t, &b, VL_DP_SPENT, NULL);
    ask_expect(t, &o, VL_DP_SPENT, NULL);
    a.query[0] = 9;
    ask_expect(t, &a, VL_DP_EXHAUSTED, NULL);
    size_t n = 99;
    assert_int_equal(vl_trusted_dp_reset(t, 1, "c", P0, NULL, "A", &n), VEIL_OK);
    assert_int_equal(n, 1);
    spent_is(t, "A", 0, 0, 0);
    spent_is(t, "B", EPS, DELTA, 1);
    spent_is(t, NULL, 2 * EPS, 2 * DELTA, 2);  /* the role's total stays */
    ask_expect(t, &a, VL_DP_SPENT, NULL);
    spent_is(t, NULL, 3 * EPS, 3 * DELTA, 3);
    /* A token of another role, another period, another collection: nothing to reset. */
    assert_int_equal(vl_trusted_dp_reset(t, 1, "c", P0, "other", "A", &n), VEIL_OK);
    assert_int_equal(n, 0);
    assert_int_equal(vl_trusted_dp_reset(t, 1, "c", P0 - DAY, "analyst", NULL, &n), VEIL_OK);
    assert_int_equal(n, 0);
    assert_int_equal(vl_trusted_dp_reset(t, 1, "d", P0, "analyst", NULL, &n), VEIL_OK);
    assert_int_equal(n, 0);
    spent_is(t, "A", EPS, DELTA, 1);

    assert_int_equal(vl_trusted_dp_reset(t, 1, "c", P0, "analyst", NULL, &n), VEIL_OK);
    assert_int_equal(n, 2);
    spent_is(t, "A", 0, 0, 0);
    spent_is(t, "B", 0, 0, 0);
    spent_is(t, NULL, 0, 0, 0);
    assert_int_equal(spent_of(t, "c", P0, "other", NULL).eps, EPS);
    assert_int_equal(spent_of(t, "c", P0, "other", "O").eps, EPS);
    a.query[0] = 1;
    ask_expect(t, &a, VL_DP_KEPT, "kept");
    assert_int_equal(vl_trusted_dp_reset(t, 1, "c", P0, NULL, NULL, &n), VEIL_ERR_INTERNAL);
    assert_int_equal(vl_trusted_dp_reset(t, 1, "c", P0, NULL, "", &n), VEIL_ERR_INTERNAL);
    vl_trusted_close(t);
    tu_rmtree(dir);
    free(dir);
}

/* The usage listing: its shape, order and filters. */
static void test_dp_usage(void **state)
{
    (void)state;
    char *dir;
    struct vl_trusted *t = open_fresh(&dir);
    struct vl_dp_ask a = ask_of("tok-b", 1), b = ask_of("tok-a", 2), o = ask_of("tok-c", 3);
    o.role = "aaa";
    o.eps = 250000;
    o.delta = 7;
    ask_expect(t, &a, VL_DP_SPENT, NULL);
    a.query[0] = 4;
    ask_expect(t, &a, VL_DP_SPENT, NULL);
    ask_expect(t, &b, VL_DP_SPENT, NULL);
    ask_expect(t, &o, VL_DP_SPENT, NULL);
    a.coll = "d";
    ask_expect(t, &a, VL_DP_SPENT, NULL);
    json_t *u = NULL;
    assert_int_equal(vl_trusted_dp_usage(t, 1, "c", P0, NULL, NULL, &u), VEIL_OK);
    json_t *want = json_pack(
        "[{s:s,s:n,s:I,s:I,s:I},{s:s,s:s,s:I,s:I,s:I},"
        " {s:s,s:n,s:I,s:I,s:I},{s:s,s:s,s:I,s:I,s:I},{s:s,s:s,s:I,s:I,s:I}]",
        "role", "aaa", "token", "epsilon", (json_int_t)250000, "delta", (json_int_t)7,
        "answers", (json_int_t)1,
        "role", "aaa", "token", "tok-c", "epsilon", (json_int_t)250000, "delta", (json_int_t)7,
        "answers", (json_int_t)1,
        "role", "analyst", "token", "epsilon", (json_int_t)(3 * EPS), "delta",
        (json_int_t)(3 * DELTA), "answers", (json_int_t)3,
        "role", "analyst", "token", "tok-a", "epsilon", (json_int_t)EPS, "delta",
        (json_int_t)DELTA, "answers", (json_int_t)1,
        "role", "analyst", "token", "tok-b", "epsilon", (json_int_t)(2 * EPS), "delta",
        (json_int_t)(2 * DELTA), "answers", (json_int_t)2);
    assert_non_null(want);
    assert_true(json_equal(u, want));
    json_decref(u);
    /* Filters: a role (its total and tokens), a token (no totals). */
    assert_int_equal(vl_trusted_dp_usage(t, 1, "c", P0, "aaa", NULL, &u), VEIL_OK);
    assert_int_equal(json_array_size(u), 2);
    assert_true(json_equal(json_array_get(u, 1), json_array_get(want, 1)));
    json_decref(u);
    assert_int_equal(vl_trusted_dp_usage(t, 1, "c", P0, NULL, "tok-b", &u), VEIL_OK);
    assert_int_equal(json_array_size(u), 1);
    assert_true(json_equal(json_array_get(u, 0), json_array_get(want, 4)));
    json_decref(u);
    assert_int_equal(vl_trusted_dp_usage(t, 1, "c", P0, "aaa", "tok-b", &u), VEIL_OK);
    assert_int_equal(json_array_size(u), 0);
    json_decref(u);
    assert_int_equal(vl_trusted_dp_usage(t, 1, "c", P0 + DAY, NULL, NULL, &u), VEIL_OK);
    assert_int_equal(json_array_size(u), 0);
    json_decref(u);
    assert_int_equal(vl_trusted_dp_usage(t, 2, "c", P0, NULL, NULL, &u), VEIL_OK);
    assert_int_equal(json_array_size(u), 0);
    json_decref(u);
    json_decref(want);
    vl_trusted_close(t);
    tu_rmtree(dir);
    free(dir);
}

/* A new period starts from zero and the old period's answers go (a few per ask); another
 * role's answers stay whatever its period; spending rows go after 400 days. */
static void test_dp_period_change(void **state)
{
    (void)state;
    char *dir;
    struct vl_trusted *t = open_fresh(&dir);
    struct vl_dp_ask a = ask_of("A", 0);
    a.token_budget = 1000 * EPS;
    a.role_budget = 1000 * EPS;
    enum { OLD = 150 };
    for (int q = 0; q < OLD; q++) {
        a.query[0] = (uint8_t)q;
        int64_t k = ask_expect(t, &a, VL_DP_SPENT, NULL);
        assert_int_equal(vl_trusted_dp_finish(t, k, "old"), VEIL_OK);
    }
    /* A role counting hours: its current period began after "analyst"'s. */
    struct vl_dp_ask h = ask_of("H", 1);
    h.role = "hourly";
    h.period = P0 + 13 * 3600;
    h.now = h.period + 5;
    int64_t k = ask_expect(t, &h, VL_DP_SPENT, NULL);
    assert_int_equal(vl_trusted_dp_finish(t, k, "hourly"), VEIL_OK);
    a.query[0] = 1;
    ask_expect(t, &a, VL_DP_KEPT, "old");
    assert_int_equal(rows_in(dir, "SELECT count(*) FROM dp_answers"), OLD + 1);

    a.period = P0 + DAY;
    a.now = a.period + 1;
    a.token_budget = EPS;
    a.query[0] = 1;
    k = ask_expect(t, &a, VL_DP_SPENT, NULL);  /* from zero: the old answer is not kept */
    spent_is(t, "A", OLD * EPS, OLD * DELTA, OLD);
    assert_int_equal(spent_of(t, "c", a.period, "analyst", "A").eps, EPS);
    long left = rows_in(dir, "SELECT count(*) FROM dp_answers WHERE period = 1796256000");
    assert_true(left > 0 && left < OLD);   /* bounded work per ask */
    for (int i = 0; i < OLD && left > 0; i++) {
        ask_expect(t, &a, VL_DP_PENDING, NULL);
        left = rows_in(dir, "SELECT count(*) FROM dp_answers WHERE period = 1796256000");
    }
    assert_int_equal(left, 0);
    assert_int_equal(rows_in(dir, "SELECT count(*) FROM dp_answers"), 2);
    ask_expect(t, &h, VL_DP_KEPT, "hourly");
    /* The old period asked again (a clock gone back): its answers are gone, its spending
     * is not. */
    a.period = P0;
    a.token_budget = OLD * EPS;
    a.query[0] = 2;
    ask_expect(t, &a, VL_DP_EXHAUSTED, NULL);

    /* Spending rows: kept 399 days, gone after 400. */
    a.period = P0 + 399 * DAY;
    a.token_budget = EPS;
    a.query[0] = 3;
    ask_expect(t, &a, VL_DP_SPENT, NULL);
    assert_true(spent_of(t, "c", P0, "analyst", "A").found);
    a.period = P0 + 401 * DAY;
    ask_expect(t, &a, VL_DP_SPENT, NULL);
    assert_false(spent_of(t, "c", P0, "analyst", "A").found);
    assert_false(spent_of(t, "c", P0, "hourly", "H").found);
    assert_true(spent_of(t, "c", P0 + 399 * DAY, "analyst", "A").found);
    vl_trusted_close(t);
    tu_rmtree(dir);
    free(dir);
}

/* Across a restart, spending and kept answers remain; an answer left pending by a crash
 * stays pending until it is stale, and then is paid for again (the abandoned spend stands).
 * A trusted.db from before these tables gets them when opened. */
/* A spend moves the mark (so the stores can tell a restored trusted.db that forgot it),
 * and an accepted rollback counts every budget of the period it falls in as spent. */
static void test_dp_mark_and_rollback(void **state)
{
    (void)state;
    char *dir;
    struct vl_trusted *t = open_fresh(&dir);
    struct vl_dp_ask a = ask_of("A", 1);
    struct vl_dp_reply r;
    uint64_t m0 = 0, m1 = 0;
    assert_int_equal(vl_trusted_mark(t, &m0), VEIL_OK);
    assert_int_equal(begin_ok(t, &a, &r), VL_DP_SPENT);
    assert_int_equal(vl_trusted_mark(t, &m1), VEIL_OK);
    assert_true(r.mark == m1 && m1 == m0 + 1);
    free(r.answer);
    /* a kept answer and an exhausted ask move nothing */
    assert_int_equal(vl_trusted_dp_finish(t, r.ticket, "kept"), VEIL_OK);
    ask_expect(t, &a, VL_DP_KEPT, "kept");
    struct vl_dp_ask poor = ask_of("A", 2);
    poor.token_budget = EPS;
    ask_expect(t, &poor, VL_DP_EXHAUSTED, NULL);
    assert_int_equal(vl_trusted_mark(t, &m0), VEIL_OK);
    assert_true(m0 == m1);

    struct vl_rollback rb;
    assert_int_equal(vl_trusted_rollback_accept(t, m1 + 5, &rb), VEIL_OK);
    /* this period (it began before the rollback was accepted): nothing more is paid */
    struct vl_dp_ask b = ask_of("B", 3);
    assert_int_equal(begin_ok(t, &b, &r), VL_DP_EXHAUSTED);
    assert_true(r.token_exhausted && r.role_exhausted);
    free(r.answer);
    ask_expect(t, &a, VL_DP_KEPT, "kept"); /* what was given stays given */
    /* a period that begins after it: budgets as usual */
    struct vl_dp_ask later = ask_of("B", 3);
    later.period = (int64_t)time(NULL) + 86400;
    later.now = later.period + 10;
    ask_expect(t, &later, VL_DP_SPENT, NULL);
    vl_trusted_close(t);
    tu_rmtree(dir);
    free(dir);
}

static void test_dp_restart(void **state)
{
    (void)state;
    char *dir;
    veil_status st;
    struct vl_trusted *t = open_fresh(&dir);
    struct vl_dp_ask a = ask_of("A", 1), b = ask_of("B", 2);
    int64_t k = ask_expect(t, &a, VL_DP_SPENT, NULL);
    assert_int_equal(vl_trusted_dp_finish(t, k, "kept"), VEIL_OK);
    int64_t crashed = ask_expect(t, &b, VL_DP_SPENT, NULL);  /* never finished */
    vl_trusted_close(t);

    assert_int_equal(vl_trusted_open("sqlite:trusted.db", dir, false, &t, &st), VEIL_OK);
    spent_is(t, NULL, 2 * EPS, 2 * DELTA, 2);
    ask_expect(t, &a, VL_DP_KEPT, "kept");
    struct vl_dp_ask c = b;
    c.token = "C";
    c.now = b.now + 59;
    ask_expect(t, &c, VL_DP_PENDING, NULL);
    spent_is(t, "C", 0, 0, 0);
    c.now = b.now + 60;
    int64_t again = ask_expect(t, &c, VL_DP_SPENT, NULL);
    assert_true(again > crashed);
    spent_is(t, NULL, 3 * EPS, 3 * DELTA, 3);
    spent_is(t, "B", EPS, DELTA, 1);  /* not refunded */
    spent_is(t, "C", EPS, DELTA, 1);
    assert_int_equal(vl_trusted_dp_finish(t, crashed, "late"), VEIL_ERR_NOT_FOUND);
    assert_int_equal(vl_trusted_dp_abort(t, crashed, true), VEIL_ERR_NOT_FOUND);
    c.now += 1;
    ask_expect(t, &c, VL_DP_PENDING, NULL);
    assert_int_equal(vl_trusted_dp_finish(t, again, "fresh"), VEIL_OK);
    ask_expect(t, &b, VL_DP_KEPT, "fresh");
    vl_trusted_close(t);

    /* Tickets are not handed out twice, even when the last one is gone. */
    assert_int_equal(vl_trusted_open("sqlite:trusted.db", dir, false, &t, &st), VEIL_OK);
    struct vl_dp_ask d = ask_of("D", 3);
    k = ask_expect(t, &d, VL_DP_SPENT, NULL);
    assert_true(k > again);
    assert_int_equal(vl_trusted_dp_abort(t, k, true), VEIL_OK);
    int64_t k2 = ask_expect(t, &d, VL_DP_SPENT, NULL);
    assert_true(k2 > k);
    assert_int_equal(vl_trusted_dp_finish(t, k, "stale ticket"), VEIL_ERR_NOT_FOUND);
    vl_trusted_close(t);

    /* A state from before: the tables are created when it is opened. */
    char *path = file_in(dir, "trusted.db");
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "DROP TABLE dp_spent; DROP TABLE dp_answers;", NULL,
                                  NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    free(path);
    assert_int_equal(vl_trusted_open("sqlite:trusted.db", dir, false, &t, &st), VEIL_OK);
    ask_expect(t, &a, VL_DP_SPENT, NULL);
    spent_is(t, NULL, EPS, DELTA, 1);
    vl_trusted_close(t);
    tu_rmtree(dir);
    free(dir);
}

/* Shredding a tenant removes its spending and its answers (plaintext aggregates), and
 * nothing of another tenant's. */
static void test_dp_shred(void **state)
{
    (void)state;
    char *dir;
    struct vl_trusted *t = open_fresh(&dir);
    coll_make(t);
    struct vl_dp_ask a = ask_of("A", 1), b = ask_of("B", 1);
    b.tenant = 2;
    int64_t k = ask_expect(t, &a, VL_DP_SPENT, NULL);
    assert_int_equal(vl_trusted_dp_finish(t, k, "secret aggregate"), VEIL_OK);
    a.query[0] = 2;
    ask_expect(t, &a, VL_DP_SPENT, NULL);  /* pending */
    k = ask_expect(t, &b, VL_DP_SPENT, NULL);
    assert_int_equal(vl_trusted_dp_finish(t, k, "other tenant"), VEIL_OK);
    assert_int_equal(rows_in(dir, "SELECT count(*) FROM dp_answers WHERE tenant=1"), 2);
    assert_int_equal(rows_in(dir, "SELECT count(*) FROM dp_spent WHERE tenant=1"), 2);
    assert_int_equal(vl_trusted_tenant_shred(t, 1), VEIL_OK);
    assert_int_equal(rows_in(dir, "SELECT count(*) FROM dp_answers WHERE tenant=1"), 0);
    assert_int_equal(rows_in(dir, "SELECT count(*) FROM dp_spent WHERE tenant=1"), 0);
    assert_int_equal(rows_in(dir, "SELECT count(*) FROM dp_answers WHERE tenant=2"), 1);
    ask_expect(t, &b, VL_DP_KEPT, "other tenant");
    vl_trusted_close(t);
    /* Nothing of the kept text is left in the file (secure_delete, truncated WAL). */
    char *path = file_in(dir, "trusted.db");
    size_t n = 0;
    char *raw = tu_read_file(path, &n);
    assert_non_null(raw);
    assert_null(memmem(raw, n, "secret aggregate", 16));
    free(raw);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

/* A VFS that counts the syncs of WAL files: the default one, with xSync of a WAL file
 * wrapped (its file struct is the default VFS's own, only its methods table swapped). */
static sqlite3_vfs *sync_real_vfs;
static const sqlite3_io_methods *sync_real_io;
static sqlite3_io_methods sync_io;
static int wal_syncs;

static int sync_count(sqlite3_file *f, int flags)
{
    __atomic_add_fetch(&wal_syncs, 1, __ATOMIC_SEQ_CST);
    return sync_real_io->xSync(f, flags);
}

static int sync_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out)
{
    (void)vfs;
    int rc = sync_real_vfs->xOpen(sync_real_vfs, name, f, flags, out);
    if (rc == SQLITE_OK && (flags & SQLITE_OPEN_WAL) && f->pMethods != NULL) {
        assert_true(sync_real_io == NULL || sync_real_io == f->pMethods);
        if (sync_real_io == NULL) {
            sync_real_io = f->pMethods;
            sync_io = *f->pMethods;
            sync_io.xSync = sync_count;
        }
        f->pMethods = &sync_io;
    }
    return rc;
}

/* The attack: a power loss right after an answer is released must not take its spend
 * back: the spending transaction syncs the WAL before it returns (the rest of trusted.db
 * runs with synchronous=NORMAL, which does not sync a commit). */
static void test_dp_durable(void **state)
{
    (void)state;
    static sqlite3_vfs vfs;
    sync_real_vfs = sqlite3_vfs_find(NULL);
    vfs = *sync_real_vfs;
    vfs.zName = "countsync";
    vfs.xOpen = sync_open;
    assert_int_equal(sqlite3_vfs_register(&vfs, 1), SQLITE_OK);
    char *dir;
    struct vl_trusted *t = open_fresh(&dir);
    struct vl_dp_ask a = ask_of("A", 1);
    ask_expect(t, &a, VL_DP_SPENT, NULL); /* the WAL is open from here on */
    a.query[0] = 2;
    __atomic_store_n(&wal_syncs, 0, __ATOMIC_SEQ_CST);
    int64_t k = ask_expect(t, &a, VL_DP_SPENT, NULL);
    assert_true(__atomic_load_n(&wal_syncs, __ATOMIC_SEQ_CST) >= 1);
    assert_int_equal(vl_trusted_dp_finish(t, k, "kept"), VEIL_OK);
    vl_trusted_close(t);
    assert_int_equal(sqlite3_vfs_unregister(&vfs), SQLITE_OK);
    tu_rmtree(dir);
    free(dir);
}


/* ---- token sets ---- */

static void tkey(uint8_t out[VL_TK_BYTES], int k)
{
    memset(out, 0xA0, VL_TK_BYTES);
    out[0] = (uint8_t)k;
}

/* A model of one token's set: its documents (by byte) and their sequence numbers. */
static struct vl_tokset model_set(const int *docs, const uint64_t *seqs, size_t n, int k)
{
    uint8_t tk[VL_TK_BYTES], doc[VL_DOCTOKEN_BYTES];
    struct vl_tokset m = {0, 0, 0};
    tkey(tk, k);
    for (size_t i = 0; i < n; i++) {
        memset(doc, docs[i], sizeof(doc));
        m.n++;
        m.hq = vl_set_add(m.hq, vl_set_q(tk, doc, sizeof(doc)));
        m.ha = vl_set_add(m.ha, vl_set_a(tk, seqs[i]));
    }
    return m;
}

static struct vl_tokset set_of(struct vl_trusted *t, int k)
{
    uint8_t tk[1][VL_TK_BYTES];
    struct vl_tokset s;
    tkey(tk[0], k);
    assert_int_equal(vl_trusted_toksets(t, NULL, 1, "c", (const uint8_t(*)[VL_TK_BYTES])tk, 1, &s),
                     VEIL_OK);
    return s;
}

static void assert_set(struct vl_tokset got, struct vl_tokset want)
{
    assert_int_equal(got.n, want.n);
    assert_true(got.hq == want.hq);
    assert_true(got.ha == want.ha);
}

/* A put of document d at seq whose new version has the token keys ks[0..nk). */
static struct vl_intent tk_put(int d, int64_t old, uint64_t seq, const int *ks, size_t nk,
                               uint8_t *buf)
{
    uint8_t slen[8];
    struct vl_intent in = put_intent(d, old, old + 1, seq, slen, 0);
    for (size_t i = 0; i < nk; i++) {
        tkey(buf + i * VL_TK_BYTES, ks[i]);
    }
    in.tks.p = buf;
    in.tks.n = nk * VL_TK_BYTES;
    return in;
}

/* The sets follow every put, replace and delete, and are gone with the tenant. */
static void test_toksets(void **state)
{
    (void)state;
    char *dir;
    struct vl_trusted *t = open_fresh(&dir);
    uint8_t b1[3 * VL_TK_BYTES], b2[3 * VL_TK_BYTES], b3[3 * VL_TK_BYTES];
    struct vl_tokset empty = {0, 0, 0};
    assert_set(set_of(t, 1), empty);

    /* Documents 1 and 2 have keys 1 and 2; document 3 keys 1 and 3. */
    int k12[] = {1, 2}, k13[] = {1, 3}, k3[] = {3};
    struct vl_intent in[3] = {tk_put(1, 0, 100, k12, 2, b1), tk_put(2, 0, 101, k12, 2, b2),
                              tk_put(3, 0, 102, k13, 2, b3)};
    assert_int_equal(vl_trusted_intents_begin(t, 1, "c", in, 3), VEIL_OK);
    /* Begun, not finished: the sets do not have them yet, but the writes are in flight. */
    assert_set(set_of(t, 1), empty);
    struct vl_inflight *f = NULL;
    size_t nf = 0;
    assert_int_equal(vl_trusted_inflight(t, NULL, 1, "c", &f, &nf), VEIL_OK);
    assert_int_equal(nf, 3);
    for (size_t i = 0; i < nf; i++) {
        assert_false(f[i].del);
        assert_false(f[i].old_live);
        assert_int_equal(f[i].old_tks.n, 0);
        assert_int_equal(f[i].tks.n, 2 * VL_TK_BYTES);
        assert_int_equal(f[i].seq, 100 + (uint64_t)(f[i].doc[0] - 1));
    }
    vl_inflight_free(f, nf);
    assert_int_equal(vl_trusted_intents_finish(t, 1, "c", in, 3), VEIL_OK);
    assert_int_equal(vl_trusted_inflight(t, NULL, 1, "c", &f, &nf), VEIL_OK);
    assert_int_equal(nf, 0);
    vl_inflight_free(f, nf);
    int d123[] = {1, 2, 3}, d12[] = {1, 2}, d3[] = {3};
    uint64_t s123[] = {100, 101, 102}, s12[] = {100, 101}, s3[] = {102};
    assert_set(set_of(t, 1), model_set(d123, s123, 3, 1));
    assert_set(set_of(t, 2), model_set(d12, s12, 2, 2));
    assert_set(set_of(t, 3), model_set(d3, s3, 1, 3));

    /* Document 1 replaced by a version with key 3 only, at seq 200: in flight, its old
     * and new keys are both known; finished, it has left 1 and 2 and joined 3. */
    struct vl_intent r = tk_put(1, 1, 200, k3, 1, b1);
    assert_int_equal(vl_trusted_intents_begin(t, 1, "c", &r, 1), VEIL_OK);
    assert_int_equal(vl_trusted_inflight(t, NULL, 1, "c", &f, &nf), VEIL_OK);
    assert_int_equal(nf, 1);
    assert_true(f[0].old_live);
    assert_int_equal(f[0].old_seq, 100);
    assert_int_equal(f[0].old_tks.n, 2 * VL_TK_BYTES);
    assert_int_equal(f[0].seq, 200);
    assert_int_equal(f[0].tks.n, VL_TK_BYTES);
    vl_inflight_free(f, nf);
    assert_int_equal(vl_trusted_intents_finish(t, 1, "c", &r, 1), VEIL_OK);
    int d23[] = {2, 3}, d2[] = {2}, d31[] = {3, 1};
    uint64_t s23[] = {101, 102}, s2[] = {101}, s31[] = {102, 200};
    assert_set(set_of(t, 1), model_set(d23, s23, 2, 1));
    assert_set(set_of(t, 2), model_set(d2, s2, 1, 2));
    assert_set(set_of(t, 3), model_set(d31, s31, 2, 3));

    /* The keys of documents' current versions. */
    uint8_t docs[2][VL_DOCTOKEN_BYTES];
    struct vl_bytes tks[2];
    uint64_t seqs[2];
    memset(docs[0], 1, VL_DOCTOKEN_BYTES);
    memset(docs[1], 9, VL_DOCTOKEN_BYTES);
    assert_int_equal(vl_trusted_docs_tks(t, NULL, 1, "c", (const uint8_t(*)[VL_DOCTOKEN_BYTES])docs,
                                         2, tks, seqs),
                     VEIL_OK);
    assert_int_equal(seqs[0], 200);
    assert_int_equal(seqs[1], 0);
    assert_int_equal(tks[0].n, VL_TK_BYTES);
    assert_int_equal(tks[0].p[0], 3);
    assert_int_equal(tks[1].n, 0);
    free(tks[0].p);
    free(tks[1].p);

    /* Deleting document 2: it leaves 1 and 2, and set 2, now empty, has no row. */
    struct vl_intent del;
    memset(&del, 0, sizeof(del));
    del.op = VL_INTENT_DELETE;
    memset(del.doc, 2, sizeof(del.doc));
    del.old_version = 1;
    del.version = 2;
    del.seq = 101;
    del.payload.p = (uint8_t *)"p";
    del.payload.n = 1;
    assert_int_equal(vl_trusted_intents_begin(t, 1, "c", &del, 1), VEIL_OK);
    assert_int_equal(vl_trusted_inflight(t, NULL, 1, "c", &f, &nf), VEIL_OK);
    assert_int_equal(nf, 1);
    assert_true(f[0].del);
    assert_int_equal(f[0].tks.n, 0);
    assert_int_equal(f[0].old_tks.n, 2 * VL_TK_BYTES);
    vl_inflight_free(f, nf);
    assert_int_equal(vl_trusted_intents_finish(t, 1, "c", &del, 1), VEIL_OK);
    assert_set(set_of(t, 1), model_set(d3, s3, 1, 1));
    assert_set(set_of(t, 2), empty);
    sqlite3 *db = NULL;
    char path[4096];
    snprintf(path, sizeof(path), "%s/trusted.db", dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM tokset", -1, &q, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(q, 0), 2); /* keys 1 and 3 */
    sqlite3_finalize(q);

    /* A sum the state cannot have written (>= p) is not believed. */
    assert_int_equal(sqlite3_exec(db, "UPDATE tokset SET hq = x'ffffffffffffffffffffffffffffffff'",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    uint8_t tk1[1][VL_TK_BYTES];
    struct vl_tokset got;
    tkey(tk1[0], 1);
    assert_int_equal(vl_trusted_toksets(t, NULL, 1, "c", (const uint8_t(*)[VL_TK_BYTES])tk1, 1, &got),
                     VEIL_ERR_INTEGRITY);
    sqlite3_close(db);

    /* Shredding the tenant forgets its sets. */
    assert_int_equal(vl_trusted_tenant_shred(t, 1), VEIL_OK);
    assert_set(set_of(t, 1), empty);
    assert_set(set_of(t, 3), empty);
    vl_trusted_close(t);
    tu_rmtree(dir);
    free(dir);
}

struct freezer {
    struct vl_trusted *t;
    int done;
};

static void *write_one(void *arg)
{
    struct freezer *fz = arg;
    uint8_t b[VL_TK_BYTES];
    int k[] = {5};
    struct vl_intent in = tk_put(7, 0, 300, k, 1, b);
    assert_int_equal(vl_trusted_intents_begin(fz->t, 1, "c", &in, 1), VEIL_OK);
    assert_int_equal(vl_trusted_intents_finish(fz->t, 1, "c", &in, 1), VEIL_OK);
    __atomic_store_n(&fz->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

/* A trusted state written by an older pre-release veil (token sets under keys of another
 * format, or none: its mark `tk_format` missing or another) is refused with a message that
 * says so, not opened to fail every check as a breach; an empty one is marked and opens. */
static void test_tk_format(void **state)
{
    (void)state;
    char *dir = NULL;
    struct vl_trusted *t = open_fresh(&dir);
    vl_trusted_close(t);
    char path[1024];
    snprintf(path, sizeof(path), "%s/trusted.db", dir);
    static const char *const older[] = {
        "DELETE FROM meta WHERE k='tk_format';"
        "INSERT INTO tokset(tenant, coll, tk, n, hq, ha) VALUES(1, 'c', x'00', 1, x'00', x'00')",
        "DELETE FROM meta WHERE k='tk_format';"
        "INSERT INTO docs(tenant, coll, doc, version, seq, digest, live) "
        "VALUES(1, 'c', x'01', 1, 1, x'02', 1)",
        "UPDATE meta SET v = 1 WHERE k='tk_format'",
    };
    for (size_t i = 0; i < sizeof(older) / sizeof(older[0]); i++) {
        veil_status st;
        sqlite3 *db = NULL;
        assert_int_equal(vl_trusted_open("sqlite:trusted.db", dir, false, &t, &st), VEIL_OK);
        vl_trusted_close(t);
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, older[i], NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
        t = NULL;
        memset(&st, 0, sizeof(st));
        assert_int_equal(vl_trusted_open("sqlite:trusted.db", dir, false, &t, &st),
                         VEIL_ERR_STORE_UNAVAILABLE);
        assert_null(t);
        assert_non_null(strstr(st.message, "older pre-release veil"));
        /* back to an empty state without the mark: it gets one */
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, "DELETE FROM tokset; DELETE FROM docs;"
                                          "DELETE FROM meta WHERE k='tk_format'",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
        sqlite3_close(db);
    }
    assert_int_equal(vl_trusted_open("sqlite:trusted.db", dir, false, &t, NULL), VEIL_OK);
    vl_trusted_close(t);
    assert_int_equal(tu_sql_int(path, "SELECT v FROM meta WHERE k='tk_format'"), 2);
    tu_rmtree(dir);
    free(dir);
}

/* A frozen snapshot keeps every write out until it ends. */
static void test_freeze(void **state)
{
    (void)state;
    char *dir;
    struct vl_trusted *t = open_fresh(&dir);
    struct vl_tsnap *sn = NULL;
    struct freezer fz = {t, 0};
    pthread_t th;
    assert_int_equal(vl_trusted_snap_freeze(t, &sn), VEIL_OK);
    assert_int_equal(pthread_create(&th, NULL, write_one, &fz), 0);
    usleep(200 * 1000);
    assert_int_equal(__atomic_load_n(&fz.done, __ATOMIC_SEQ_CST), 0);
    uint8_t tk[1][VL_TK_BYTES];
    struct vl_tokset s;
    tkey(tk[0], 5);
    assert_int_equal(vl_trusted_toksets(t, sn, 1, "c", (const uint8_t(*)[VL_TK_BYTES])tk, 1, &s),
                     VEIL_OK);
    assert_int_equal(s.n, 0);
    vl_trusted_snap_end(sn);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(fz.done, 1);
    assert_int_equal(set_of(t, 5).n, 1);
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
        cmocka_unit_test(test_dp_race_different),
        cmocka_unit_test(test_dp_race_same),
        cmocka_unit_test(test_dp_token_and_role),
        cmocka_unit_test(test_dp_kept_and_refresh),
        cmocka_unit_test(test_dp_abort),
        cmocka_unit_test(test_dp_reset),
        cmocka_unit_test(test_dp_usage),
        cmocka_unit_test(test_dp_period_change),
        cmocka_unit_test(test_dp_restart),
        cmocka_unit_test(test_dp_mark_and_rollback),
        cmocka_unit_test(test_dp_shred),
        cmocka_unit_test(test_dp_durable),
        cmocka_unit_test(test_toksets),
        cmocka_unit_test(test_freeze),
        cmocka_unit_test(test_tk_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
