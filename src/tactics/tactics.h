/*
 * tactics.h: the pure functions behind the `range` and `sum` tactics. They take keys and
 * numbers and give tokens and ciphertexts; no I/O, no policy, no store.
 *
 * range: a value, mapped order-preservingly to a W-bit unsigned integer, gets one token per
 * hexadecimal prefix (W/4 tokens: the first digit, the first two, ..., all of them). An
 * interval becomes its minimal cover by aligned hexadecimal blocks, at most 2*15*(W/4)
 * prefixes, and a document matches iff one of its tokens is one of the cover's. The store
 * learns which documents share value prefixes, hence roughly their order; not the values.
 *
 * sum (ASHE, Seabed OSDI 2016): c_i = m_i + F(i) - F(i-1) mod 2^128, where i is the row
 * sequence number and F a PRF. The store adds ciphertexts with its own SUM (over 32-bit
 * limbs); the sum of rows whose sequence numbers form runs [a,b] is recovered by subtracting
 * F(b) - F(a-1) per run. A 128-bit ring means sums of 64-bit values never wrap. The store
 * learns nothing about the values.
 */
#ifndef VL_TACTICS_H
#define VL_TACTICS_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define VL_RANGE_TOKEN_BYTES 16
#define VL_RANGE_MAX_DIGITS 16            /* 64 bits */
#define VL_RANGE_MAX_COVER (2 * 15 * VL_RANGE_MAX_DIGITS)

/* A prefix of `digits` hexadecimal digits (1..width/4) with value `prefix`. */
struct vl_range_prefix {
    unsigned digits;
    uint64_t prefix;
};

/* The prefixes of v in a domain of `width` bits (a multiple of 4, 4..64), coarsest first;
 * returns their number, width / 4. */
size_t vl_range_prefixes(uint64_t v, unsigned width, struct vl_range_prefix *out);

/* The minimal cover of [lo, hi] (inclusive, lo <= hi < 2^width) by aligned hexadecimal
 * blocks, each of at least one digit of prefix. Returns the count (<= VL_RANGE_MAX_COVER). */
size_t vl_range_cover(uint64_t lo, uint64_t hi, unsigned width, struct vl_range_prefix *out);

/* The token of a prefix under a field's range key (32 bytes). */
void vl_range_token(uint8_t out[VL_RANGE_TOKEN_BYTES], const uint8_t key[32],
                    const struct vl_range_prefix *p);

/* ---- ASHE ---- */
typedef unsigned __int128 vl_u128;
typedef __int128 vl_i128;

#define VL_ASHE_LIMBS 4 /* 32-bit limbs of a 128-bit ciphertext */

/* F(i) under a field's sum key (32 bytes). F(0) is defined like any other. */
vl_u128 vl_ashe_f(const uint8_t key[32], uint64_t i);
/* The ciphertext of m for row i (i >= 1). */
vl_u128 vl_ashe_encrypt(const uint8_t key[32], uint64_t i, int64_t m);
/* Splits a ciphertext into limbs (least significant first), and joins limb sums back
 * (mod 2^128). Each limb sum is the SUM of up to 2^31 limbs, so it fits an int64. */
void vl_ashe_limbs(vl_u128 c, int64_t limbs[VL_ASHE_LIMBS]);
vl_u128 vl_ashe_join(const int64_t sums[VL_ASHE_LIMBS]);

/* F over a span of rows, computed in one pass: worth it when many runs fall in the span.
 * A table holds one span (first, n, f), or several (seg, sorted by first, not
 * overlapping): row numbers come in blocks at random places, far apart. */
#define VL_ASHE_TABLE_MAX ((uint64_t)1 << 26) /* values: 1 GiB of key stream at most */
struct vl_ashe_table {
    uint64_t first;
    size_t n;
    vl_u128 *f;
    struct vl_ashe_table *seg;
    size_t nseg;
};
/* Fills F(lo..hi) (a little more, to block boundaries); -1 if the span is too large. */
int vl_ashe_table_fill(struct vl_ashe_table *t, const uint8_t key[32], uint64_t lo,
                       uint64_t hi);
/* Fills F over each cluster of runs[0..n) (in any order; runs closer than 4096 rows form
 * one) where one pass beats two F per run, within VL_ASHE_TABLE_MAX values in all. The
 * table may end up empty (then every F is computed per run); -1 only when out of memory. */
int vl_ashe_table_fill_runs(struct vl_ashe_table *t, const uint8_t key[32],
                            const struct vl_seq_run *runs, size_t n);
void vl_ashe_table_free(struct vl_ashe_table *t);
/* The plaintext sum of the rows in runs, from the sum of their ciphertexts; t (may be
 * NULL) serves the F values it holds. */
vl_i128 vl_ashe_decrypt(const uint8_t key[32], vl_u128 csum, const struct vl_seq_run *runs,
                        size_t nruns, const struct vl_ashe_table *t);

/* ---- a linear MAC beside each sum cell, modulo the prime p = 2^127 - 1 ----
 *
 * Per field a MAC key: a (nonzero mod p) and a key for G(i) = F(i) mod p. The tag of value
 * m at row i is t_i = a m + G(i) - G(i-1) mod p; the store sums tags as it sums cells, and
 * over runs of rows sum t = a S + sum over runs of (G(last) - G(first - 1)) mod p. A store
 * that changes S by d must change the tag sum by a d without knowing a: it succeeds with
 * probability 1/p. (Modulo 2^128 a shift by 2^127 would pass for every odd a.) */
#define VL_MAC_KEY_BYTES 48 /* G's key (32), then a (16) */
vl_u128 vl_mac_a(const uint8_t key[VL_MAC_KEY_BYTES]);
/* The tag of m at row i. */
vl_u128 vl_mac_tag(const uint8_t key[VL_MAC_KEY_BYTES], uint64_t i, int64_t m);
/* The sum of tags, modulo p, from the store's limb sums. */
vl_u128 vl_mac_join(const int64_t sums[VL_ASHE_LIMBS]);
/* What the tags of the rows in runs must sum to when their values sum to `sum`; t (may be
 * NULL) serves the F values of G's key it holds. */
vl_u128 vl_mac_expect(const uint8_t key[VL_MAC_KEY_BYTES], vl_i128 sum,
                      const struct vl_seq_run *runs, size_t nruns,
                      const struct vl_ashe_table *t);
/* a * b mod p, for a, b < p (exposed for tests). */
vl_u128 vl_mac_mulmod(vl_u128 a, vl_u128 b);

/* ---- search (forward-private index entries) ----
 *
 * Per field a search key K. A stem w is named in trusted state by BLAKE2b-128 keyed by K of
 * 0 || w, and has, per epoch e, two secret keys: (K_label, K_value) = BLAKE2b-512 keyed by K
 * of 1 || e || w. The c-th entry of w lives under label L_c = bytes 16c..16c+15 of the
 * ChaCha20 key stream of K_label (a PRF of c), and holds, sealed under K_value, the list
 * of the documents of one write batch that hold the word: per document the row sequence
 * number of its write and the word's count in it, padded to a power of two. Without
 * K_label, labels are random strings: the store cannot tell which entries belong to one
 * word, nor link an entry written after a search to it (the search revealed L_0..L_{n-1}
 * only). The value is XChaCha20-Poly1305(K_value, random nonce, AD = L_c || c), stored as
 * nonce || ciphertext || tag: the associated data binds an entry to its position, the key
 * to its word, so a value moved to another label fails to open; and since the nonce is
 * random, a counter handed out twice never reuses a (key, nonce) pair. */
#define VL_SEARCH_KEY_BYTES 32
#define VL_SEARCH_WKEY_BYTES 16
#define VL_SEARCH_LABEL_BYTES 16
#define VL_SEARCH_ITEMS_MAX 128 /* documents in one entry */
#define VL_SEARCH_PLAIN_MAX 512 /* bytes of an entry's padded plaintext */
#define VL_SEARCH_VALUE_MAX (VL_SEARCH_PLAIN_MAX + 24 + 16) /* nonce, plaintext, tag */

struct vl_search_word {
    uint8_t label_key[32];              /* secret */
    uint8_t value_key[32];              /* secret */
};
/* The name in trusted state of stem[0..len) under field key `key`. */
void vl_search_wkey(uint8_t out[VL_SEARCH_WKEY_BYTES], const uint8_t key[VL_SEARCH_KEY_BYTES],
                    const char *stem, size_t len);
/* The entry keys of stem[0..len) under field key `key`, in epoch `epoch`. Wipe with
 * vl_search_word_wipe. */
void vl_search_word(struct vl_search_word *out, const uint8_t key[VL_SEARCH_KEY_BYTES],
                    const char *stem, size_t len, uint32_t epoch);
void vl_search_word_wipe(struct vl_search_word *w);
/* Labels of entries first..first+n-1, into out (n * VL_SEARCH_LABEL_BYTES bytes). */
void vl_search_labels(const struct vl_search_word *w, uint64_t first, size_t n, uint8_t *out);
/* One document of an entry: the row sequence number of its write, the word's count. */
struct vl_search_item {
    uint64_t seq;
    uint32_t tf;
};
/* How many of items[0..n) (n >= 1) fit one entry: at least 1, at most VL_SEARCH_ITEMS_MAX. */
size_t vl_search_fit(const struct vl_search_item *items, size_t n);
/* The value of entry c holding items[0..n) (sequence numbers strictly increasing, counts
 * >= 1, as many as vl_search_fit allows): out receives *outlen <= VL_SEARCH_VALUE_MAX
 * bytes. -1 for items that break those rules. */
int vl_search_seal(const struct vl_search_word *w, uint64_t c, const struct vl_search_item *items,
                   size_t n, uint8_t *out, size_t *outlen);
/* Opens entry c's value into out (room for VL_SEARCH_ITEMS_MAX), *n items; -1 when it is
 * not one sealed for this word and position, or is malformed. */
int vl_search_open(const struct vl_search_word *w, uint64_t c, const uint8_t *val, size_t len,
                   struct vl_search_item *out, size_t *n) VL_WUR;

/* Writes a signed 128-bit integer in units of 10^-scale as decimal text ("-12.50");
 * out must hold 48 bytes. */
void vl_i128_to_decimal(vl_i128 v, int scale, char out[48]);

#endif
