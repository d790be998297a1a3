/*
 * test_rate.c: the token buckets behind the per-token rate limits (src/server/rate.c),
 * on a clock the test sets. Attacks: a burst beyond the bucket, a token hiding behind
 * another's bucket, a flood of ids trying to grow the table, threads racing for the last
 * request of a bucket.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "server/rate.h"

static void test_burst_then_refill(void **state)
{
    (void)state;
    struct vl_ratelimit *rl = vl_ratelimit_new(16);
    assert_non_null(rl);
    /* 2 a second, bursts of 5: five pass at once, the sixth waits a whole second. */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(vl_ratelimit_take(rl, 42, 2, 5, 100.0), 0);
    }
    assert_int_equal(vl_ratelimit_take(rl, 42, 2, 5, 100.0), 1);
    assert_int_equal(vl_ratelimit_take(rl, 42, 2, 5, 100.2), 1);
    /* Half a second later one request has refilled, not more. */
    assert_int_equal(vl_ratelimit_take(rl, 42, 2, 5, 100.5), 0);
    assert_int_equal(vl_ratelimit_take(rl, 42, 2, 5, 100.5), 1);
    /* A long pause refills to the burst, never beyond. */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(vl_ratelimit_take(rl, 42, 2, 5, 1000.0), 0);
    }
    assert_int_equal(vl_ratelimit_take(rl, 42, 2, 5, 1000.0), 1);
    /* Slow limits say how long: 1 a minute means up to 60 seconds. */
    assert_int_equal(vl_ratelimit_take(rl, 7, 1.0 / 60, 1, 0.0), 0);
    assert_int_equal(vl_ratelimit_take(rl, 7, 1.0 / 60, 1, 0.0), 60);
    assert_int_equal(vl_ratelimit_take(rl, 7, 1.0 / 60, 1, 30.0), 30);
    /* A clock that goes back gives nothing: still half a request, 30 seconds to wait. */
    assert_int_equal(vl_ratelimit_take(rl, 7, 1.0 / 60, 1, 10.0), 30);
    vl_ratelimit_free(rl);
}

static void test_tokens_are_independent(void **state)
{
    (void)state;
    struct vl_ratelimit *rl = vl_ratelimit_new(16);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(vl_ratelimit_take(rl, 1, 1, 3, 5.0), 0);
    }
    assert_int_not_equal(vl_ratelimit_take(rl, 1, 1, 3, 5.0), 0);
    /* Another token, even one whose id differs in one bit, has its own bucket. */
    assert_int_equal(vl_ratelimit_take(rl, 3, 1, 3, 5.0), 0);
    assert_int_equal(vl_ratelimit_take(rl, 0, 1, 3, 5.0), 0);
    /* No limit keeps no bucket and refuses nothing. */
    size_t before = vl_ratelimit_size(rl);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(vl_ratelimit_take(rl, 1, 0, 0, 5.0), 0);
    }
    assert_int_equal(vl_ratelimit_size(rl), before);
    /* A tighter limit applies at once to a bucket that exists: its two requests left are
     * cut to the new burst of one. */
    assert_int_equal(vl_ratelimit_take(rl, 3, 1, 1, 5.0), 0);
    assert_int_equal(vl_ratelimit_take(rl, 3, 1, 1, 5.0), 1);
    vl_ratelimit_free(rl);
}

static void test_table_is_bounded(void **state)
{
    (void)state;
    struct vl_ratelimit *rl = vl_ratelimit_new(8);
    /* 10,000 distinct ids: the table never holds more than 8 buckets. */
    for (uint64_t id = 1; id <= 10000; id++) {
        assert_int_equal(vl_ratelimit_take(rl, id * 0x10001u, 1, 2, (double)id * 1e-6), 0);
        assert_true(vl_ratelimit_size(rl) <= 8);
    }
    vl_ratelimit_free(rl);

    /* Full buckets go first, then the fullest: a token being held back keeps its empty
     * bucket while 100 others come and go, so eviction never hands it a fresh burst. */
    rl = vl_ratelimit_new(4);
    assert_int_equal(vl_ratelimit_take(rl, 99, 1, 2, 0.0), 0);
    assert_int_equal(vl_ratelimit_take(rl, 99, 1, 2, 0.0), 0);
    assert_int_equal(vl_ratelimit_take(rl, 99, 1, 2, 0.0), 1);
    for (uint64_t id = 1000; id < 1100; id++) {
        vl_ratelimit_take(rl, id, 1, 2, 0.001 * (double)(id - 1000));
    }
    assert_int_equal(vl_ratelimit_take(rl, 99, 1, 2, 0.1), 1);
    vl_ratelimit_free(rl);
}

struct race {
    struct vl_ratelimit *rl;
    int granted;
};

static void *racer(void *arg)
{
    struct race *r = arg;
    for (int i = 0; i < 20000; i++) {
        if (vl_ratelimit_take(r->rl, 5, 1, 100, 1.0) == 0) {
            r->granted++;
        }
    }
    return NULL;
}

static void test_threads_share_one_bucket(void **state)
{
    (void)state;
    struct vl_ratelimit *rl = vl_ratelimit_new(4);
    pthread_t t[4];
    struct race r[4];
    for (int i = 0; i < 4; i++) {
        r[i].rl = rl;
        r[i].granted = 0;
        assert_int_equal(pthread_create(&t[i], NULL, racer, &r[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        total += r[i].granted;
    }
    /* The clock stands still: exactly the burst is granted, whatever the interleaving. */
    assert_int_equal(total, 100);
    vl_ratelimit_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_refill),
        cmocka_unit_test(test_tokens_are_independent),
        cmocka_unit_test(test_table_is_bounded),
        cmocka_unit_test(test_threads_share_one_bucket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
