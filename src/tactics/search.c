/*
 * search.c: keys, labels and values of search-index entries (see tactics.h).
 *
 * Keys come from keyed BLAKE2b (a PRF, and half the compressions of HMAC-SHA-512): the
 * word's name in trusted state from 0 || stem, its two entry keys from 1 || epoch || stem.
 * Labels come from the ChaCha20 key stream of the word's label key, four to a 64-byte block,
 * so the labels of a whole word are one pass of the stream. Values are XChaCha20-Poly1305
 * under the word's value key with a random 192-bit nonce, stored in front of the ciphertext,
 * and the entry's position (its label and counter) as associated data. No counter value is
 * ever a nonce, so a counter handed out twice (a trusted state restored from a backup) can
 * never make two values share a (key, nonce) pair; and a value opens only at the position
 * it was sealed for. A value holds the documents of one write batch that have the word:
 * varint-coded deltas of their sequence numbers and their counts, padded (ISO/IEC 7816-4)
 * to a power of two.
 */
#include <string.h>

#include <sodium.h>

#include "crypto/crypto.h"
#include "tactics/tactics.h"
#include "util/buf.h"

#define LABELS_PER_BLOCK 4

void vl_search_wkey(uint8_t out[VL_SEARCH_WKEY_BYTES], const uint8_t key[VL_SEARCH_KEY_BYTES],
                    const char *stem, size_t len)
{
    crypto_generichash_blake2b_state h;
    static const uint8_t zero = 0;
    crypto_generichash_blake2b_init(&h, key, VL_SEARCH_KEY_BYTES, VL_SEARCH_WKEY_BYTES);
    crypto_generichash_blake2b_update(&h, &zero, 1);
    crypto_generichash_blake2b_update(&h, (const uint8_t *)stem, len);
    crypto_generichash_blake2b_final(&h, out, VL_SEARCH_WKEY_BYTES);
    sodium_memzero(&h, sizeof(h));
    vl_scrub(); /* the primitives here leave their keys in registers and on the stack */
}

void vl_search_word(struct vl_search_word *out, const uint8_t key[VL_SEARCH_KEY_BYTES],
                    const char *stem, size_t len, uint32_t epoch)
{
    uint8_t mac[64];
    uint8_t head[5] = {1};
    crypto_generichash_blake2b_state h;
    vl_store_u32(head + 1, epoch);
    crypto_generichash_blake2b_init(&h, key, VL_SEARCH_KEY_BYTES, sizeof(mac));
    crypto_generichash_blake2b_update(&h, head, sizeof(head));
    crypto_generichash_blake2b_update(&h, (const uint8_t *)stem, len);
    crypto_generichash_blake2b_final(&h, mac, sizeof(mac));
    memcpy(out->label_key, mac, 32);
    memcpy(out->value_key, mac + 32, 32);
    sodium_memzero(mac, sizeof(mac));
    sodium_memzero(&h, sizeof(h));
    vl_scrub();
}

void vl_search_word_wipe(struct vl_search_word *w)
{
    sodium_memzero(w, sizeof(*w));
}

void vl_search_labels(const struct vl_search_word *w, uint64_t first, size_t n, uint8_t *out)
{
    static const uint8_t nonce[crypto_stream_chacha20_NONCEBYTES];
    uint8_t block[64 * 16];
    uint64_t c = first;
    size_t done = 0;
    while (done < n) {
        /* Blocks covering labels c.. as far as this buffer goes. */
        uint64_t b0 = c / LABELS_PER_BLOCK;
        size_t skip = (size_t)(c % LABELS_PER_BLOCK);
        size_t want = n - done + skip;
        size_t nblocks = (want + LABELS_PER_BLOCK - 1) / LABELS_PER_BLOCK;
        if (nblocks > sizeof(block) / 64) {
            nblocks = sizeof(block) / 64;
        }
        memset(block, 0, nblocks * 64);
        crypto_stream_chacha20_xor_ic(block, block, nblocks * 64, nonce, b0, w->label_key);
        vl_scrub();
        size_t avail = nblocks * LABELS_PER_BLOCK - skip;
        size_t take = avail < n - done ? avail : n - done;
        memcpy(out + done * VL_SEARCH_LABEL_BYTES, block + skip * VL_SEARCH_LABEL_BYTES,
               take * VL_SEARCH_LABEL_BYTES);
        done += take;
        c += take;
    }
    sodium_memzero(block, sizeof(block));
}

#define AD_BYTES (VL_SEARCH_LABEL_BYTES + 8)

/* The associated data of entry c: its label, then c. */
static void position_ad(const struct vl_search_word *w, uint64_t c, uint8_t ad[AD_BYTES])
{
    vl_search_labels(w, c, 1, ad);
    vl_store_u64(ad + VL_SEARCH_LABEL_BYTES, c);
}

/* Bytes of the encoding of items[0..n): their number, then per item the difference of
 * its sequence number from the previous one's (the first: from 0) and its count. */
static size_t encoded_len(const struct vl_search_item *items, size_t n)
{
    size_t len = vl_varint_len(n);
    uint64_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        len += vl_varint_len(items[i].seq - prev) + vl_varint_len(items[i].tf);
        prev = items[i].seq;
    }
    return len;
}

size_t vl_search_fit(const struct vl_search_item *items, size_t n)
{
    size_t k = 0, len = 2; /* the count, and room for it to grow a byte */
    uint64_t prev = 0;
    while (k < n && k < VL_SEARCH_ITEMS_MAX) {
        size_t more = vl_varint_len(items[k].seq - prev) + vl_varint_len(items[k].tf);
        if (k > 0 && len + more >= VL_SEARCH_PLAIN_MAX) {
            break; /* >=: the padding takes a byte at least */
        }
        len += more;
        prev = items[k].seq;
        k++;
    }
    return k;
}

int vl_search_seal(const struct vl_search_word *w, uint64_t c, const struct vl_search_item *items,
                   size_t n, uint8_t *out, size_t *outlen)
{
    uint8_t m[VL_SEARCH_PLAIN_MAX], ad[AD_BYTES];
    if (n == 0 || n > VL_SEARCH_ITEMS_MAX || encoded_len(items, n) >= VL_SEARCH_PLAIN_MAX) {
        return -1;
    }
    size_t len = vl_varint_put(m, n);
    uint64_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        if ((i > 0 && items[i].seq <= prev) || items[i].tf == 0) {
            sodium_memzero(m, sizeof(m));
            return -1;
        }
        len += vl_varint_put(m + len, items[i].seq - prev);
        len += vl_varint_put(m + len, items[i].tf);
        prev = items[i].seq;
    }
    size_t padded = vl_pad_len(len);
    vl_pad(m, len);
    position_ad(w, c, ad);
    int rc = vl_aead_box_seal(out, m, padded, ad, sizeof(ad), w->value_key);
    *outlen = vl_aead_box_len(padded);
    sodium_memzero(m, sizeof(m));
    return rc == 0 ? 0 : -1;
}

int vl_search_open(const struct vl_search_word *w, uint64_t c, const uint8_t *val, size_t len,
                   struct vl_search_item *out, size_t *n)
{
    uint8_t m[VL_SEARCH_PLAIN_MAX], ad[AD_BYTES];
    size_t mlen = 0, plen = 0, at = 0;
    uint64_t count = 0, prev = 0;
    int rc = -1;
    if (len < vl_aead_box_len(16) || len > VL_SEARCH_VALUE_MAX) {
        return -1;
    }
    position_ad(w, c, ad);
    if (vl_aead_box_open(m, &plen, val, len, ad, sizeof(ad), w->value_key) != 0 ||
        vl_unpad(m, plen, &mlen) != 0 || vl_varint_get(m, mlen, &at, &count) != 0 ||
        count == 0 || count > VL_SEARCH_ITEMS_MAX) {
        goto out;
    }
    for (size_t i = 0; i < count; i++) {
        uint64_t d, tf;
        if (vl_varint_get(m, mlen, &at, &d) != 0 || vl_varint_get(m, mlen, &at, &tf) != 0 ||
            (i > 0 && d == 0) || d > UINT64_MAX - prev || tf == 0 || tf > UINT32_MAX) {
            goto out;
        }
        prev += d;
        out[i].seq = prev;
        out[i].tf = (uint32_t)tf;
    }
    if (at == mlen) {
        *n = (size_t)count;
        rc = 0;
    }
out:
    sodium_memzero(m, sizeof(m));
    vl_scrub();
    return rc;
}
