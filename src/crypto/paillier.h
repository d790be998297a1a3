/*
 * paillier.h: Paillier encryption with g = n + 1, over GMP: the public-key sums of
 * `sum: {scheme: paillier}`. Anyone holding n can encrypt and add; only the holder of p
 * and q can decrypt.
 *
 *   encrypt  c = (1 + m n) r^n mod n^2, r uniform in Z*_n, m taken mod n
 *   add      E(a) E(b) mod n^2 = E(a + b mod n)
 *   decrypt  by CRT: m_p = L_p(c^(p-1) mod p^2) h_p mod p, L_p(x) = (x - 1) / p,
 *            h_p = L_p(g^(p-1) mod p^2)^-1 mod p; likewise mod q; then m mod n by CRT.
 *
 * Numbers cross this interface as unsigned big-endian byte strings. Ciphertexts are
 * written with exactly vl_paillier_ciphertext_bytes() bytes (the byte length of n^2) and
 * read from 1 to that many bytes, so a store that drops leading zeros is fine.
 *
 * Functions return 0 on success and -1 on any failure, leaving their outputs zeroed (a
 * ciphertext or plaintext is never partially written). A key is immutable once made, so
 * one key may be used from several threads at once.
 *
 * Secrets (p, q, the CRT values, plaintexts and r) never enter GMP's allocator: they are
 * limb arrays in vl_secret_alloc memory (locked, excluded from core dumps, wiped on free),
 * computed on with GMP's mpn_sec_* functions. Public numbers (n, n^2, ciphertexts) are
 * ordinary GMP integers. GMP's process-wide memory functions are left as they are.
 */
#ifndef VL_PAILLIER_H
#define VL_PAILLIER_H

#include <stddef.h>
#include <stdint.h>

#include "crypto/crypto.h"

#define VL_PAILLIER_SEEDBYTES 32
#define VL_PAILLIER_MIN_BITS 2048
#define VL_PAILLIER_MAX_BITS 4096
/* Upper bounds for callers' buffers, for any key this module accepts. */
#define VL_PAILLIER_MAX_NBYTES (VL_PAILLIER_MAX_BITS / 8)
#define VL_PAILLIER_MAX_CIPHERTEXTBYTES (2 * VL_PAILLIER_MAX_NBYTES)

struct vl_paillier;

/*
 * A private key of `bits` bits (VL_PAILLIER_MIN_BITS..VL_PAILLIER_MAX_BITS, a multiple of
 * 1024) derived from a 32-byte seed: the same seed and size always give the same key, so a
 * key need never be stored. The derivation is a stored format (changing it makes existing
 * ciphertexts undecryptable) and is pinned by a golden test:
 *
 *   candidate i = the first bits/16 bytes of ChaCha20 (RFC 8439) keyed by the seed, block
 *   counter 0, nonce "vlpl" || be32(bits) || be32(i); read big-endian, with its top two
 *   and its lowest bit set; then the smallest prime above it (mpz_nextprime). A candidate
 *   whose prime has grown past bits/2 bits is skipped. p is the first candidate, q the next
 *   one with q != p and gcd(pq, (p-1)(q-1)) = 1. So n has exactly `bits` bits.
 *
 * "Prime" is a probable prime by Miller-Rabin (base 2, then 24 random bases), which finds
 * the same primes as mpz_nextprime but keeps every candidate in secret memory.
 *
 * On success *out owns a new key (free with vl_paillier_free); on failure *out is NULL.
 * Takes tens to hundreds of milliseconds.
 */
int vl_paillier_keygen(struct vl_paillier **out, const uint8_t seed[VL_PAILLIER_SEEDBYTES],
                       unsigned bits) VL_WUR;

/*
 * A private key from its primes (big-endian). Checks that p and q are distinct odd
 * probable primes (trial division, then 25 Miller-Rabin rounds), that
 * gcd(pq, (p-1)(q-1)) = 1 and that n = pq has VL_PAILLIER_MIN_BITS - 1 to
 * VL_PAILLIER_MAX_BITS bits (a product of two 1024-bit primes may have 2047). The caller
 * keeps p and q; *out owns a new key, NULL on failure.
 */
int vl_paillier_new_from_primes(struct vl_paillier **out, const uint8_t *p, size_t plen,
                                const uint8_t *q, size_t qlen) VL_WUR;

/*
 * A public key (encrypt, add, scalar multiply; not decrypt) from n (big-endian). n must be
 * odd and have VL_PAILLIER_MIN_BITS - 1 to VL_PAILLIER_MAX_BITS bits; that it is a product
 * of two primes cannot be checked. *out owns a new key, NULL on failure.
 */
int vl_paillier_new_public(struct vl_paillier **out, const uint8_t *n, size_t nlen) VL_WUR;

/* Wipes and frees a key; NULL is fine. */
void vl_paillier_free(struct vl_paillier *k);

/* 1 if k can decrypt. */
int vl_paillier_has_private(const struct vl_paillier *k);
/* The byte length of n, and of n^2 (every ciphertext written has exactly this length). */
size_t vl_paillier_n_bytes(const struct vl_paillier *k);
size_t vl_paillier_ciphertext_bytes(const struct vl_paillier *k);
/* n (the public key) into out[0..vl_paillier_n_bytes), and n^2 (the modulus under which
 * the store multiplies ciphertexts) into out[0..vl_paillier_ciphertext_bytes), big-endian.
 * -1 if outlen is not that length. */
int vl_paillier_n_export(const struct vl_paillier *k, uint8_t *out, size_t outlen);
int vl_paillier_n2_export(const struct vl_paillier *k, uint8_t *out, size_t outlen);

/*
 * Encrypts m (a negative m as n + m) with a fresh random r into c, which must be exactly
 * vl_paillier_ciphertext_bytes(k) long (clen). With a private key the n-th power r^n is
 * computed by CRT, which is several times faster; the result has the same distribution.
 * -1 (c zeroed) for a wrong clen.
 */
int vl_paillier_encrypt(const struct vl_paillier *k, uint8_t *c, size_t clen, int64_t m);

/*
 * Decrypts c (1..vl_paillier_ciphertext_bytes(k) bytes) into the signed *m: plaintexts
 * above n/2 are read as negative, so sums of up to 2^63 int64_t values decrypt
 * exactly. -1 (*m = 0) for a public-only key, for c >= n^2 or c not coprime to n, and for
 * a plaintext whose signed value does not fit in 127 bits (not a sum of int64 values).
 */
int vl_paillier_decrypt(const struct vl_paillier *k, __int128 *m, const uint8_t *c,
                        size_t clen) VL_WUR;

/*
 * out = c1 c2 mod n^2, a ciphertext of the sum of the plaintexts (mod n). Inputs are
 * checked as in vl_paillier_decrypt (below n^2, coprime to n); outlen must be
 * vl_paillier_ciphertext_bytes(k). out may be c1 or c2 (a running sum), as the inputs are
 * read before out is written. -1 (out zeroed, even if it is an input) otherwise.
 */
int vl_paillier_add(const struct vl_paillier *k, uint8_t *out, size_t outlen, const uint8_t *c1,
                    size_t c1len, const uint8_t *c2, size_t c2len) VL_WUR;

/*
 * out = c^s mod n^2, a ciphertext of s times the plaintext, s a non-negative big-endian
 * integer of slen (1..VL_PAILLIER_MAX_CIPHERTEXTBYTES) bytes. Variable time in s: for
 * public scalars (tests, vectors). Checks and failure as vl_paillier_add.
 */
int vl_paillier_scalar_mul(const struct vl_paillier *k, uint8_t *out, size_t outlen,
                           const uint8_t *c, size_t clen, const uint8_t *s, size_t slen) VL_WUR;

#ifdef VL_PAILLIER_TEST_API
/*
 * TEST ONLY: hooks for known-answer vectors and benchmarks; never call them from veil.
 * They exist in the library but are declared only when VL_PAILLIER_TEST_API is defined.
 */
/* As vl_paillier_new_from_primes / _new_public / _keygen without the size limits (the
 * python-paillier vector has p = 293); keygen takes bits 512..4096, a multiple of 512. */
int vl_paillier_test_new_from_primes(struct vl_paillier **out, const uint8_t *p, size_t plen,
                                     const uint8_t *q, size_t qlen) VL_WUR;
int vl_paillier_test_new_public(struct vl_paillier **out, const uint8_t *n, size_t nlen) VL_WUR;
int vl_paillier_test_keygen(struct vl_paillier **out, const uint8_t seed[32], unsigned bits) VL_WUR;
/* Encrypts the big-endian m (< n) with the given r (0 < r < n, coprime to n); by CRT when
 * crt is non-zero (needs the private key), else by r^n mod n^2. */
int vl_paillier_test_encrypt_raw(const struct vl_paillier *k, uint8_t *c, size_t clen,
                                 const uint8_t *m, size_t mlen, const uint8_t *r, size_t rlen,
                                 int crt) VL_WUR;
/* Decrypts into the unsigned m mod n, written with exactly mlen bytes (>= n's length). */
int vl_paillier_test_decrypt_raw(const struct vl_paillier *k, uint8_t *m, size_t mlen,
                                 const uint8_t *c, size_t clen) VL_WUR;
/* Exports a private value, zero-padded to outlen bytes: "p", "q", "hp", "hq" (the CRT
 * h_p, h_q above), "lambda" = lcm(p-1, q-1) or "mu" = L(g^lambda mod n^2)^-1 mod n. */
int vl_paillier_test_export(const struct vl_paillier *k, const char *name, uint8_t *out,
                            size_t outlen) VL_WUR;
#endif

#endif
