/* test_tactics.c: range prefix covers and ASHE sums, checked against brute force. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crypto/crypto.h"
#include "tactics/tactics.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* v lies in the cover iff one of v's prefixes is one of the cover's. */
static int covered(uint64_t v, unsigned width, const struct vl_range_prefix *c, size_t n)
{
    struct vl_range_prefix p[VL_RANGE_MAX_DIGITS];
    size_t np = vl_range_prefixes(v, width, p);
    int hits = 0;
    for (size_t i = 0; i < np; i++) {
        for (size_t k = 0; k < n; k++) {
            hits += p[i].digits == c[k].digits && p[i].prefix == c[k].prefix;
        }
    }
    return hits;
}

static void test_cover_exhaustive_8bit(void **state)
{
    (void)state;
    struct vl_range_prefix c[VL_RANGE_MAX_COVER];
    for (unsigned lo = 0; lo < 256; lo++) {
        for (unsigned hi = lo; hi < 256; hi++) {
            size_t n = vl_range_cover(lo, hi, 8, c);
            assert_true(n >= 1 && n <= 2 * 15 * 2);
            for (unsigned v = 0; v < 256; v++) {
                /* Inside: exactly one block matches (the cover is a partition). */
                assert_int_equal(covered(v, 8, c, n), v >= lo && v <= hi ? 1 : 0);
            }
        }
    }
}

static void test_cover_random_64bit(void **state)
{
    (void)state;
    struct vl_range_prefix c[VL_RANGE_MAX_COVER];
    for (int t = 0; t < 2000; t++) {
        uint64_t a = rnd(), b = rnd();
        if (t % 3 == 0) {
            b = a + (rnd() % 100000); /* narrow ranges too */
            if (b < a) {
                b = UINT64_MAX;
            }
        }
        uint64_t lo = a < b ? a : b, hi = a < b ? b : a;
        size_t n = vl_range_cover(lo, hi, 64, c);
        assert_true(n <= VL_RANGE_MAX_COVER);
        uint64_t probes[] = {lo, hi, lo - 1, hi + 1, lo + (hi - lo) / 2, rnd(), 0, UINT64_MAX};
        for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
            uint64_t v = probes[i];
            assert_int_equal(covered(v, 64, c, n), v >= lo && v <= hi ? 1 : 0);
        }
    }
    /* The whole domain, and single points at its ends. */
    assert_int_equal(vl_range_cover(0, UINT64_MAX, 64, c), 16);
    assert_int_equal(vl_range_cover(UINT64_MAX, UINT64_MAX, 64, c), 1);
    assert_int_equal(c[0].digits, 16);
    assert_int_equal(vl_range_cover(0, 0, 24, c), 1);
}

static void test_tokens_keyed(void **state)
{
    (void)state;
    uint8_t k1[32], k2[32], t1[VL_RANGE_TOKEN_BYTES], t2[VL_RANGE_TOKEN_BYTES];
    memset(k1, 1, sizeof(k1));
    memset(k2, 2, sizeof(k2));
    struct vl_range_prefix p = {3, 0xabc}, q = {4, 0xabc};
    vl_range_token(t1, k1, &p);
    vl_range_token(t2, k2, &p);
    assert_memory_not_equal(t1, t2, sizeof(t1));
    vl_range_token(t2, k1, &q); /* same number, other length */
    assert_memory_not_equal(t1, t2, sizeof(t1));
    vl_range_token(t2, k1, &p);
    assert_memory_equal(t1, t2, sizeof(t1));
}

static void test_ashe_sums(void **state)
{
    (void)state;
    uint8_t key[32];
    memset(key, 7, sizeof(key));
    enum { N = 500 };
    int64_t m[N + 1];
    vl_u128 c[N + 1];
    for (uint64_t i = 1; i <= N; i++) {
        m[i] = (int64_t)rnd() >> (rnd() % 64); /* all magnitudes, both signs */
        c[i] = vl_ashe_encrypt(key, i, m[i]);
        assert_true(c[i] != (vl_u128)(vl_i128)m[i]);
    }
    for (int t = 0; t < 200; t++) {
        /* A random subset, summed limb by limb as a store would. */
        int64_t sums[VL_ASHE_LIMBS] = {0};
        vl_i128 want = 0;
        struct vl_seq_run runs[N];
        size_t nruns = 0;
        for (uint64_t i = 1; i <= N; i++) {
            if (rnd() % 3 == 0) {
                continue;
            }
            int64_t limbs[VL_ASHE_LIMBS];
            vl_ashe_limbs(c[i], limbs);
            for (int k = 0; k < VL_ASHE_LIMBS; k++) {
                assert_true(limbs[k] >= 0 && limbs[k] <= UINT32_MAX);
                sums[k] += limbs[k];
            }
            want += m[i];
            if (nruns > 0 && runs[nruns - 1].last == i - 1) {
                runs[nruns - 1].last = i;
            } else {
                runs[nruns].first = runs[nruns].last = i;
                nruns++;
            }
        }
        assert_true(vl_ashe_decrypt(key, vl_ashe_join(sums), runs, nruns, NULL) == want);
        /* The same through a table of F that covers part of the span. */
        struct vl_ashe_table t;
        assert_int_equal(vl_ashe_table_fill(&t, key, 3 + rnd() % 50, 100 + rnd() % 300), 0);
        assert_true(vl_ashe_decrypt(key, vl_ashe_join(sums), runs, nruns, &t) == want);
        for (uint64_t i = t.first; i < t.first + t.n; i += 7) {
            assert_true(t.f[i - t.first] == vl_ashe_f(key, i));
        }
        vl_ashe_table_free(&t);
    }
    /* Rows in blocks at random places far apart (how row numbers are handed out): a table
     * of one segment per block gives the same sums as F per run. */
    {
        const uint64_t base[3] = {((uint64_t)1 << 61) + 5, ((uint64_t)1 << 40) + 1,
                                  ((uint64_t)3 << 50) + 2};
        enum { PER = 600 };
        static struct vl_seq_run runs[9 * PER];
        static uint64_t rows[9 * PER];
        static int64_t vals[9 * PER];
        int64_t sums[VL_ASHE_LIMBS] = {0};
        vl_i128 want = 0;
        size_t nruns = 0, nrows = 0;
        for (int b = 0; b < 3; b++) {
            for (uint64_t i = 0; i < 3 * PER; i++) {
                if (rnd() % 3 != 0) {
                    continue; /* another group's row */
                }
                rows[nrows] = base[b] + i;
                vals[nrows] = (int64_t)(rnd() % 100000) - 50000;
                int64_t limbs[VL_ASHE_LIMBS];
                vl_ashe_limbs(vl_ashe_encrypt(key, rows[nrows], vals[nrows]), limbs);
                for (int k = 0; k < VL_ASHE_LIMBS; k++) {
                    sums[k] += limbs[k];
                }
                want += vals[nrows];
                if (nruns > 0 && runs[nruns - 1].last == rows[nrows] - 1) {
                    runs[nruns - 1].last = rows[nrows];
                } else {
                    runs[nruns].first = runs[nruns].last = rows[nrows];
                    nruns++;
                }
                nrows++;
            }
        }
        struct vl_ashe_table t;
        assert_int_equal(vl_ashe_table_fill_runs(&t, key, runs, nruns), 0);
        assert_int_equal(t.nseg, 3);
        for (size_t k = 1; k < t.nseg; k++) {
            assert_true(t.seg[k - 1].first + t.seg[k - 1].n <= t.seg[k].first);
        }
        assert_true(vl_ashe_decrypt(key, vl_ashe_join(sums), runs, nruns, NULL) == want);
        assert_true(vl_ashe_decrypt(key, vl_ashe_join(sums), runs, nruns, &t) == want);
        vl_ashe_table_free(&t);
        /* Few runs: no pass is worth it, and the answer is the same. */
        assert_int_equal(vl_ashe_table_fill_runs(&t, key, runs, 10), 0);
        assert_int_equal(t.nseg, 0);
        vl_ashe_table_free(&t);
    }
    /* Extremes do not wrap in the 128-bit ring. */
    vl_u128 a = vl_ashe_encrypt(key, 1, INT64_MAX), b = vl_ashe_encrypt(key, 2, INT64_MAX);
    struct vl_seq_run r = {1, 2};
    assert_true(vl_ashe_decrypt(key, a + b, &r, 1, NULL) == (vl_i128)INT64_MAX * 2);
    a = vl_ashe_encrypt(key, 1, INT64_MIN);
    b = vl_ashe_encrypt(key, 2, INT64_MIN);
    assert_true(vl_ashe_decrypt(key, a + b, &r, 1, NULL) == (vl_i128)INT64_MIN * 2);
}

static void test_decimal_text(void **state)
{
    (void)state;
    char out[48];
    vl_i128_to_decimal(123450, 2, out);
    assert_string_equal(out, "1234.50");
    vl_i128_to_decimal(-5, 2, out);
    assert_string_equal(out, "-0.05");
    vl_i128_to_decimal(0, 0, out);
    assert_string_equal(out, "0");
    vl_i128_to_decimal(0, 3, out);
    assert_string_equal(out, "0.000");
    vl_i128_to_decimal((vl_i128)INT64_MIN * 2, 0, out);
    assert_string_equal(out, "-18446744073709551616");
    vl_i128_to_decimal(-7, 0, out);
    assert_string_equal(out, "-7");
}

/* Search entries: labels are a PRF of (word, counter), the same however they are computed;
 * values open only for their own word and position. */
static void test_search_entries(void **state)
{
    (void)state;
    uint8_t key[VL_SEARCH_KEY_BYTES], other[VL_SEARCH_KEY_BYTES];
    memset(key, 7, sizeof(key));
    memset(other, 8, sizeof(other));
    struct vl_search_word w, w2, w3, w0;
    vl_search_word(&w, key, "factur", 6, 0);
    vl_search_word(&w2, key, "betal", 5, 0);
    vl_search_word(&w3, other, "factur", 6, 0);
    vl_search_word(&w0, key, "factur", 6, 1);
    /* The trusted-state name is per word and field key (there is no epoch in it). */
    uint8_t k1[VL_SEARCH_WKEY_BYTES], k2[VL_SEARCH_WKEY_BYTES], k3[VL_SEARCH_WKEY_BYTES];
    uint8_t k1b[VL_SEARCH_WKEY_BYTES];
    vl_search_wkey(k1, key, "factur", 6);
    vl_search_wkey(k1b, key, "factur", 6);
    vl_search_wkey(k2, key, "betal", 5);
    vl_search_wkey(k3, other, "factur", 6);
    assert_memory_equal(k1, k1b, VL_SEARCH_WKEY_BYTES);
    assert_memory_not_equal(k1, k2, VL_SEARCH_WKEY_BYTES);
    assert_memory_not_equal(k1, k3, VL_SEARCH_WKEY_BYTES);
    /* Entry keys differ per word, field key and epoch; label and value keys differ. */
    assert_memory_not_equal(w.label_key, w0.label_key, 32);
    assert_memory_not_equal(w.label_key, w2.label_key, 32);
    assert_memory_not_equal(w.label_key, w3.label_key, 32);
    assert_memory_not_equal(w.label_key, w.value_key, 32);
    assert_memory_not_equal(k1, w.label_key, VL_SEARCH_WKEY_BYTES);

    /* 300 labels in one pass equal each computed alone, from any offset. */
    enum { N = 300 };
    uint8_t all[N * VL_SEARCH_LABEL_BYTES], one[VL_SEARCH_LABEL_BYTES];
    vl_search_labels(&w, 0, N, all);
    for (size_t c = 0; c < N; c++) {
        vl_search_labels(&w, c, 1, one);
        assert_memory_equal(one, all + c * VL_SEARCH_LABEL_BYTES, VL_SEARCH_LABEL_BYTES);
        for (size_t d = 0; d < c; d++) {
            assert_memory_not_equal(all + d * VL_SEARCH_LABEL_BYTES,
                                    all + c * VL_SEARCH_LABEL_BYTES, VL_SEARCH_LABEL_BYTES);
        }
    }
    uint8_t mid[7 * VL_SEARCH_LABEL_BYTES];
    vl_search_labels(&w, 101, 7, mid);
    assert_memory_equal(mid, all + 101 * VL_SEARCH_LABEL_BYTES, sizeof(mid));
    vl_search_labels(&w2, 0, 1, one);
    assert_memory_not_equal(one, all, VL_SEARCH_LABEL_BYTES);

    /* Values: the documents of an entry, and nothing else, come back; only for their own
     * word, key epoch and position. */
    struct vl_search_item in[3] = {{5, 1}, {6, 300}, {123456789, 17}}, out[VL_SEARCH_ITEMS_MAX];
    uint8_t val[VL_SEARCH_VALUE_MAX], val2[VL_SEARCH_VALUE_MAX];
    size_t vlen = 0, vlen2 = 0, k = 0;
    assert_int_equal(vl_search_seal(&w, 42, in, 3, val, &vlen), 0);
    assert_int_equal(vlen, 24 + 16 + 16); /* nonce, 10 bytes of items padded to 16, tag */
    assert_int_equal(vl_search_open(&w, 42, val, vlen, out, &k), 0);
    assert_int_equal(k, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(out[i].seq, in[i].seq);
        assert_int_equal(out[i].tf, in[i].tf);
    }
    assert_int_equal(vl_search_open(&w, 43, val, vlen, out, &k), -1);  /* moved */
    assert_int_equal(vl_search_open(&w2, 42, val, vlen, out, &k), -1); /* other word */
    assert_int_equal(vl_search_open(&w0, 42, val, vlen, out, &k), -1); /* other epoch */
    assert_int_equal(vl_search_open(&w, 42, val, vlen - 1, out, &k), -1);
    for (size_t i = 0; i < vlen; i++) {
        memcpy(val2, val, vlen);
        val2[i] ^= 0x01;
        assert_int_equal(vl_search_open(&w, 42, val2, vlen, out, &k), -1);
    }
    /* The same (word, counter) sealed again, as after a trusted state restored from a
     * backup hands the counter out a second time: a fresh nonce, so no (key, nonce) pair
     * seals two values (with a counter as nonce, the two key streams were equal and the
     * XOR of the ciphertexts gave the XOR of the plaintexts). Both open at their place. */
    struct vl_search_item in2[3] = {{5, 2}, {6, 300}, {123456789, 17}};
    assert_int_equal(vl_search_seal(&w, 42, in2, 3, val2, &vlen2), 0);
    assert_int_equal(vlen2, vlen);
    assert_memory_not_equal(val, val2, 24);
    uint8_t x[VL_SEARCH_VALUE_MAX];
    for (size_t i = 0; i < vlen; i++) {
        x[i] = val[i] ^ val2[i];
    }
    /* The plaintexts differ in one byte (the first count): equal key streams would leave
     * every other byte of the ciphertexts equal. */
    size_t same = 0;
    for (size_t i = 24; i < vlen - 16; i++) {
        same += x[i] == 0;
    }
    assert_true(same < 8);
    assert_int_equal(vl_search_open(&w, 42, val2, vlen2, out, &k), 0);
    assert_int_equal(out[0].tf, 2);
    for (int rep = 0; rep < 64; rep++) {
        uint8_t v3[VL_SEARCH_VALUE_MAX];
        size_t l3 = 0;
        assert_int_equal(vl_search_seal(&w, 42, in, 3, v3, &l3), 0);
        assert_memory_not_equal(v3, val, 24);
    }
    /* Items must be in increasing order of sequence number, with counts. */
    struct vl_search_item bad[2] = {{6, 1}, {6, 1}};
    assert_int_equal(vl_search_seal(&w, 1, bad, 2, val2, &vlen2), -1);
    bad[1].seq = 7;
    bad[1].tf = 0;
    assert_int_equal(vl_search_seal(&w, 1, bad, 2, val2, &vlen2), -1);
    assert_int_equal(vl_search_seal(&w, 1, bad, 0, val2, &vlen2), -1);

    /* Full entries: what vl_search_fit allows seals, in at most VL_SEARCH_VALUE_MAX bytes,
     * and lengths come in power-of-two buckets only. */
    static struct vl_search_item many[1000];
    for (size_t i = 0; i < 1000; i++) {
        many[i].seq = (uint64_t)1 << 40 | (i * 997);
        many[i].tf = (uint32_t)(i % 3 == 0 ? 100000 + i : 1 + i % 5);
    }
    size_t at = 0, entries = 0;
    while (at < 1000) {
        size_t fit = vl_search_fit(many + at, 1000 - at);
        assert_true(fit >= 1 && fit <= VL_SEARCH_ITEMS_MAX);
        assert_int_equal(vl_search_seal(&w, 7 + entries, many + at, fit, val, &vlen), 0);
        assert_true(vlen <= VL_SEARCH_VALUE_MAX);
        assert_int_equal((vlen - 40) & (vlen - 41), 0);
        assert_int_equal(vl_search_open(&w, 7 + entries, val, vlen, out, &k), 0);
        assert_int_equal(k, fit);
        assert_int_equal(out[fit - 1].seq, many[at + fit - 1].seq);
        at += fit;
        entries++;
    }
    assert_true(entries > 1000 / VL_SEARCH_ITEMS_MAX);
    vl_search_word_wipe(&w);
    uint8_t zero[sizeof(w)];
    memset(zero, 0, sizeof(zero));
    assert_memory_equal(&w, zero, sizeof(w));
    vl_search_word_wipe(&w2);
    vl_search_word_wipe(&w3);
    vl_search_word_wipe(&w0);
}

/* The linear MAC of sum cells: arithmetic mod 2^127 - 1, tags that sum to what the runs
 * and the sum say, and shifts of the sum or of the rows that do not. */
static void test_sum_mac(void **state)
{
    (void)state;
    const vl_u128 p = ((vl_u128)1 << 127) - 1;
    assert_true(vl_mac_mulmod(p - 1, p - 1) == 1);                    /* (-1)^2 */
    assert_true(vl_mac_mulmod((vl_u128)1 << 126, 2) == 1);            /* 2^127 = 1 */
    assert_true(vl_mac_mulmod(12345, 1) == 12345);
    assert_true(vl_mac_mulmod(0, p - 1) == 0);
    /* against plain 128-bit arithmetic where it cannot overflow */
    for (uint64_t x = 1; x < (1ull << 60); x = x * 3 + 7) {
        vl_u128 a = (vl_u128)x, b = (vl_u128)(x ^ 0x5555555555ull);
        assert_true(vl_mac_mulmod(a, b) == (a * b) % p);
    }
    uint8_t key[VL_MAC_KEY_BYTES];
    for (size_t i = 0; i < sizeof(key); i++) {
        key[i] = (uint8_t)(i * 29 + 3);
    }
    /* rows 1000..1009 and 2000..2004 with values -5..., summed as a store would (limbs) */
    int64_t limbs[VL_ASHE_LIMBS] = {0}, one[VL_ASHE_LIMBS];
    vl_i128 sum = 0;
    struct vl_seq_run runs[2] = {{1000, 1009}, {2000, 2004}};
    for (int r = 0; r < 2; r++) {
        for (uint64_t i = runs[r].first; i <= runs[r].last; i++) {
            int64_t m = (int64_t)(i % 17) * 1000003 - 5;
            sum += m;
            vl_ashe_limbs(vl_mac_tag(key, i, m), one);
            for (int k = 0; k < VL_ASHE_LIMBS; k++) {
                limbs[k] += one[k];
            }
        }
    }
    vl_u128 t = vl_mac_join(limbs);
    assert_true(vl_mac_expect(key, sum, runs, 2, NULL) == t);
    assert_true(vl_mac_expect(key, sum + 1, runs, 2, NULL) != t);
    vl_i128 half = (vl_i128)((vl_u128)1 << 126); /* a shift by 2^127, = 1 mod p */
    assert_true(vl_mac_expect(key, sum - half - half, runs, 2, NULL) != t);
    struct vl_seq_run other[2] = {{1000, 1009}, {2001, 2005}};
    assert_true(vl_mac_expect(key, sum, other, 2, NULL) != t);
    assert_true(vl_mac_expect(key, sum, runs, 1, NULL) != t);
    /* the join of one tag's limbs is the tag */
    vl_ashe_limbs(p - 2, one);
    assert_true(vl_mac_join(one) == p - 2);
}

int main(void)
{
    vl_crypto_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cover_exhaustive_8bit),
        cmocka_unit_test(test_cover_random_64bit),
        cmocka_unit_test(test_tokens_keyed),
        cmocka_unit_test(test_ashe_sums),
        cmocka_unit_test(test_decimal_text),
        cmocka_unit_test(test_search_entries),
        cmocka_unit_test(test_sum_mac),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
