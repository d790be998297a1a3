/*
 * sethash.h: keyed additive set hashes over the rows a token indexes (docs/design.md
 * "Complete answers").
 *
 * The trusted state keeps, per (collection, column, token), the number of live documents
 * with the token and two sums modulo the prime p = 2^127 - 1 over them:
 *
 *   hq = sum of Q(tk, doc)                 the documents (for queries)
 *   ha = sum of G(tk, seq) - G(tk, seq-1)   their row sequence numbers (for aggregates)
 *
 * where tk is the token's key: a keyed hash of (column, token) under a collection key the
 * store never sees, and Q and G are SipHash-2-4 (128-bit output) keyed by tk. A store that returns
 * a different multiset of members gets a different sum except with probability about 2^-127 (the
 * sums are of pseudorandom values it cannot compute; the multiset hash of Clarke et al.,
 * "Incremental multiset hash functions", MSet-Add-Hash with a secret key). ha telescopes: the
 * sequence numbers of a run [a, b] sum to G(b) - G(a-1), so a store's answer given as runs
 * is checked in time proportional to its runs, not its rows. The difference operator is
 * one to one on finite multisets, so two different multisets of sequence numbers differ in
 * their sums but with that same probability.
 */
#ifndef VL_SETHASH_H
#define VL_SETHASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VL_TK_BYTES 16     /* a token's key (a SipHash key) */
#define VL_SETSUM_BYTES 16 /* a sum, big-endian, < p */

typedef unsigned __int128 vl_u128;

/* A token's key: the class `cls` in two bytes (big-endian), then the last 14 bytes of
 * BLAKE2b-128 of (col || tok) keyed by the collection's 32-byte set key. The trusted state
 * keeps its sets in key order, so a class puts sets that writes touch together (a column's
 * coarse range prefixes, the "all" and "any" sets) on the same few pages: a write then
 * dirties fewer of them. 112 secret bits are left of the key, and nothing outside the
 * trusted state sees it. */
void vl_tk(uint8_t out[VL_TK_BYTES], const uint8_t key[32], uint16_t cls, const uint8_t *col,
           size_t coln, const uint8_t *tok, size_t tokn);

/* Arithmetic modulo p = 2^127 - 1 on values < p. */
vl_u128 vl_set_add(vl_u128 a, vl_u128 b);
vl_u128 vl_set_sub(vl_u128 a, vl_u128 b);

/* Q(tk, doc), a document's contribution to hq. */
vl_u128 vl_set_q(const uint8_t tk[VL_TK_BYTES], const uint8_t *doc, size_t docn);
/* G(tk, x), and a row sequence number's contribution G(seq) - G(seq-1) to ha. */
vl_u128 vl_set_g(const uint8_t tk[VL_TK_BYTES], uint64_t x);
vl_u128 vl_set_a(const uint8_t tk[VL_TK_BYTES], uint64_t seq);
/* The contribution of the run [first, last] (first <= last, first >= 1). */
vl_u128 vl_set_run(const uint8_t tk[VL_TK_BYTES], uint64_t first, uint64_t last);

/* Big-endian storage form; vl_set_load returns false for a value >= p or of another size. */
void vl_set_store(uint8_t out[VL_SETSUM_BYTES], vl_u128 v);
bool vl_set_load(const void *p, size_t n, vl_u128 *out);

#endif
