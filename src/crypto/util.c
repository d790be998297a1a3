/*
 * util.c: library start-up, length-hiding padding, randomness, secret memory (and
 * vl_scrub, which clears what primitives leave of a key in registers and on the stack) and
 * passphrase hashing.
 *
 * Padding decides what the store learns about a value's length: only its bucket (see
 * vl_pad_len in crypto.h). The padding is ISO/IEC 7816-4 (0x80 then zeros), written and
 * checked by libsodium's constant-time sodium_pad/sodium_unpad with the whole bucket as the
 * block, and a padded buffer is accepted only if its length is the bucket of its content,
 * so each value has exactly one padded form.
 */
#include <assert.h>
#include <stdint.h>

#include <sodium.h>

#include "crypto/crypto.h"

#define PAD_MIN 16
#define PAD_STEP 4096

int vl_crypto_init(void)
{
    if (sodium_init() < 0) {
        return -1;
    }
    return vl_siv_init();
}

size_t vl_pad_len(size_t len)
{
    size_t need, p;

    if (len > SIZE_MAX - 2 * PAD_STEP) {
        return 0;
    }
    need = len + 1; /* at least one padding byte */
    if (need > PAD_STEP) {
        return (need + PAD_STEP - 1) / PAD_STEP * PAD_STEP;
    }
    p = PAD_MIN;
    while (p < need) {
        p *= 2;
    }
    return p;
}

void vl_pad(uint8_t *buf, size_t len)
{
    size_t bucket = vl_pad_len(len), padded = 0;
    int ok;

    assert(bucket > len);
    ok = sodium_pad(&padded, buf, len, bucket, bucket);
    assert(ok == 0 && padded == bucket);
    (void)ok;
}

int vl_unpad(const uint8_t *buf, size_t padded, size_t *len)
{
    size_t n = 0;

    if (padded < PAD_MIN || sodium_unpad(&n, buf, padded, padded) != 0 ||
        vl_pad_len(n) != padded) {
        return -1;
    }
    *len = n;
    return 0;
}

void vl_random(void *buf, size_t n)
{
    randombytes_buf(buf, n);
}

void *vl_secret_alloc(size_t n)
{
    return sodium_malloc(n);
}

void vl_secret_free(void *p)
{
    sodium_free(p); /* wipes, checks the canary and accepts NULL */
}

#if defined(__x86_64__)
/* 0: SSE2 only, 1: AVX, 2: AVX-512 as well. Racing first calls compute the same value. */
static int simd_level(void)
{
    static volatile int level = -1;
    if (level < 0) {
        __builtin_cpu_init();
        level = __builtin_cpu_supports("avx512f") ? 2 : __builtin_cpu_supports("avx") ? 1 : 0;
    }
    return level;
}
#endif

/* Not inlined, so that its frame starts where the caller's callees had theirs; not
 * instrumented by AddressSanitizer, so that the array is on the real stack (never on a
 * fake one). It calls nothing: a call through the PLT could be bound lazily, and the
 * dynamic linker would save the registers (the key) below this frame, out of reach. */
__attribute__((noinline, no_sanitize_address)) void vl_scrub(void)
{
    uint64_t pad[VL_SCRUB_BYTES / 8];
#if defined(__x86_64__)
    int level = simd_level();
    if (level >= 1) {
        /* all of ymm0-15 (and zmm0-15 where there is AVX-512) */
        __asm__ __volatile__("vzeroall"
                             :
                             :
                             : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
                               "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14",
                               "xmm15", "memory");
    } else {
        __asm__ __volatile__("pxor %%xmm0, %%xmm0\n\tpxor %%xmm1, %%xmm1\n\t"
                             "pxor %%xmm2, %%xmm2\n\tpxor %%xmm3, %%xmm3\n\t"
                             "pxor %%xmm4, %%xmm4\n\tpxor %%xmm5, %%xmm5\n\t"
                             "pxor %%xmm6, %%xmm6\n\tpxor %%xmm7, %%xmm7\n\t"
                             "pxor %%xmm8, %%xmm8\n\tpxor %%xmm9, %%xmm9\n\t"
                             "pxor %%xmm10, %%xmm10\n\tpxor %%xmm11, %%xmm11\n\t"
                             "pxor %%xmm12, %%xmm12\n\tpxor %%xmm13, %%xmm13\n\t"
                             "pxor %%xmm14, %%xmm14\n\tpxor %%xmm15, %%xmm15"
                             :
                             :
                             : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
                               "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14",
                               "xmm15", "memory");
    }
    if (level >= 2) {
        /* zmm16-31, which vzeroall leaves alone (no clobbers: GCC only uses them when it
         * generates AVX-512 code, which veil is not compiled for) */
        __asm__ __volatile__(
            "vpxord %%zmm16, %%zmm16, %%zmm16\n\t"
            "vpxord %%zmm17, %%zmm17, %%zmm17\n\t"
            "vpxord %%zmm18, %%zmm18, %%zmm18\n\t"
            "vpxord %%zmm19, %%zmm19, %%zmm19\n\t"
            "vpxord %%zmm20, %%zmm20, %%zmm20\n\t"
            "vpxord %%zmm21, %%zmm21, %%zmm21\n\t"
            "vpxord %%zmm22, %%zmm22, %%zmm22\n\t"
            "vpxord %%zmm23, %%zmm23, %%zmm23\n\t"
            "vpxord %%zmm24, %%zmm24, %%zmm24\n\t"
            "vpxord %%zmm25, %%zmm25, %%zmm25\n\t"
            "vpxord %%zmm26, %%zmm26, %%zmm26\n\t"
            "vpxord %%zmm27, %%zmm27, %%zmm27\n\t"
            "vpxord %%zmm28, %%zmm28, %%zmm28\n\t"
            "vpxord %%zmm29, %%zmm29, %%zmm29\n\t"
            "vpxord %%zmm30, %%zmm30, %%zmm30\n\t"
            "vpxord %%zmm31, %%zmm31, %%zmm31"
            :
            :
            : "memory");
    }
    /* rep stosq: no call, and fast */
    uint64_t *dst = pad;
    size_t count = sizeof(pad) / 8;
    __asm__ __volatile__("rep stosq" : "+D"(dst), "+c"(count) : "a"((uint64_t)0) : "memory");
#else
    volatile uint64_t *vp = pad;
    for (size_t i = 0; i < sizeof(pad) / 8; i++) {
        vp[i] = 0;
    }
#endif
    __asm__ __volatile__("" : : "r"(pad) : "memory");
}

int vl_ct_equal(const void *a, const void *b, size_t n)
{
    return sodium_memcmp(a, b, n) == 0;
}

int vl_pwhash(uint8_t *out, size_t outlen, const char *pass, size_t passlen,
              const uint8_t salt[VL_PWHASH_SALTBYTES])
{
    if (outlen < crypto_pwhash_BYTES_MIN || outlen > crypto_pwhash_BYTES_MAX ||
        passlen > crypto_pwhash_PASSWD_MAX) {
        return -1;
    }
    int rc = crypto_pwhash(out, outlen, pass, passlen, salt, crypto_pwhash_OPSLIMIT_MODERATE,
                           crypto_pwhash_MEMLIMIT_MODERATE, crypto_pwhash_ALG_ARGON2ID13);
    vl_scrub();
    return rc == 0 ? 0 : -1;
}
