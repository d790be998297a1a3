/*
 * range.c: prefix tokens and interval covers for the `range` tactic (see tactics.h).
 *
 * The store holds, per document and range field, width/4 tokens: keyed hashes of the
 * value's hexadecimal prefixes. A query sends the tokens of the interval's cover. Equal
 * prefixes give equal tokens, so the store learns which documents share a prefix of each
 * length: their rough order, and equality of values. Tokens are HMAC-SHA-256 under a key of
 * the field's own, truncated to 128 bits; the prefix length is part of the input, so a
 * prefix of one length never collides with another.
 */
#include <assert.h>
#include <string.h>

#include "crypto/crypto.h"
#include "tactics/tactics.h"
#include "util/buf.h"

size_t vl_range_prefixes(uint64_t v, unsigned width, struct vl_range_prefix *out)
{
    assert(width % 4 == 0 && width >= 4 && width <= 64);
    unsigned digits = width / 4;
    for (unsigned d = 1; d <= digits; d++) {
        unsigned shift = 4 * (digits - d);
        out[d - 1].digits = d;
        out[d - 1].prefix = shift >= 64 ? 0 : v >> shift;
    }
    return digits;
}

size_t vl_range_cover(uint64_t lo, uint64_t hi, unsigned width, struct vl_range_prefix *out)
{
    assert(width % 4 == 0 && width >= 4 && width <= 64 && lo <= hi);
    unsigned digits = width / 4;
    size_t n = 0;
    uint64_t x = lo;
    for (;;) {
        /* The largest aligned block starting at x and ending at or before hi, keeping at
         * least one digit of prefix. */
        unsigned k = 0; /* block of 16^k values */
        while (k + 1 < digits) {
            unsigned bits = 4 * (k + 1);
            uint64_t size_m1 = bits >= 64 ? UINT64_MAX : ((uint64_t)1 << bits) - 1;
            if ((x & size_m1) != 0 || hi - x < size_m1) {
                break;
            }
            k++;
        }
        unsigned bits = 4 * k;
        out[n].digits = digits - k;
        out[n].prefix = x >> bits;
        n++;
        uint64_t size_m1 = bits == 0 ? 0 : ((uint64_t)1 << bits) - 1;
        if (hi - x <= size_m1) {
            break; /* this block reaches hi (also guards x + size from wrapping) */
        }
        x += size_m1 + 1;
    }
    assert(n <= VL_RANGE_MAX_COVER);
    return n;
}

void vl_range_token(uint8_t out[VL_RANGE_TOKEN_BYTES], const uint8_t key[32],
                    const struct vl_range_prefix *p)
{
    uint8_t m[9], mac[VL_PRF_BYTES];
    m[0] = (uint8_t)p->digits;
    vl_store_u64(m + 1, p->prefix);
    vl_hmac_sha256(mac, key, 32, m, sizeof(m));
    memcpy(out, mac, VL_RANGE_TOKEN_BYTES);
}
