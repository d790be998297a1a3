/*
 * test_secrets.c: keys leave no copy behind, and the process can be hardened.
 *
 * Residue: each keyed operation runs in a function of its own, called from the test; then
 * the vector registers are stored on the stack below (as lazy binding, a signal or a core
 * file would show them), and a probe called from the same place looks through the 64 KiB
 * of stack below, where that function and the primitives it called had their frames, for
 * any 16-byte window (every 8 bytes) of the key. The first test shows the probe finds what
 * is there: libsodium's ChaCha20, called bare, leaves its key in the vector registers.
 * Then every wrapper that takes a key (AEAD, AES-SIV, HMAC, HKDF, ASHE, search entries,
 * Paillier) must leave none.
 *
 * Secret memory: vl_secret_alloc'd pages carry VM_DONTDUMP ("dd" in /proc/self/smaps), so
 * no core file holds them. Hardening: veil_harden_process leaves the process non-dumpable
 * with a core size limit of 0 (it runs last, as it changes the test process for good).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <cmocka.h>
#include <sodium.h>

#define VL_PAILLIER_TEST_API
#include "crypto/crypto.h"
#include "crypto/paillier.h"
#include "tactics/tactics.h"
#include "veil/veil.h"

#define PROBE_BYTES (64 * 1024)
#define NOINLINE __attribute__((noinline))

static uint8_t key[64];

/* Zeroes the stack the next call from the same place will use. */
static NOINLINE void stack_clear(void)
{
    volatile uint8_t area[PROBE_BYTES];
    for (size_t i = 0; i < sizeof(area); i++) {
        area[i] = 0;
    }
}

/* Does the stack below the caller hold a 16-byte window of k[0..klen), as it is or with
 * its bytes reversed (how GMP's limbs hold a big-endian number)? */
static NOINLINE int stack_holds(const uint8_t *k, size_t klen)
{
    volatile uint8_t area[PROBE_BYTES];
    uint8_t rev[512];
    assert_true(klen >= 16 && klen <= sizeof(rev));
    for (size_t i = 0; i < klen; i++) {
        rev[i] = k[klen - 1 - i];
    }
    for (size_t i = 0; i + 16 <= sizeof(area); i++) {
        for (size_t w = 0; w + 16 <= klen; w += 8) {
            if (memcmp((const uint8_t *)area + i, k + w, 16) == 0 ||
                memcmp((const uint8_t *)area + i, rev + w, 16) == 0) {
                return 1;
            }
        }
    }
    return 0;
}

/* Stores the vector registers on the stack, as the dynamic linker's lazy binding or a
 * signal would (and as a core file or a debugger shows them): xmm0-15, the upper halves of
 * ymm0-15 where there is AVX, and zmm16-31 where there is AVX-512. */
static NOINLINE __attribute__((no_sanitize_address)) void spill_registers(void)
{
    uint8_t area[2048] __attribute__((aligned(64)));
    uint8_t *p = area;
    __asm__ __volatile__("movdqu %%xmm0, 0(%0)\n\tmovdqu %%xmm1, 16(%0)\n\t"
                         "movdqu %%xmm2, 32(%0)\n\tmovdqu %%xmm3, 48(%0)\n\t"
                         "movdqu %%xmm4, 64(%0)\n\tmovdqu %%xmm5, 80(%0)\n\t"
                         "movdqu %%xmm6, 96(%0)\n\tmovdqu %%xmm7, 112(%0)\n\t"
                         "movdqu %%xmm8, 128(%0)\n\tmovdqu %%xmm9, 144(%0)\n\t"
                         "movdqu %%xmm10, 160(%0)\n\tmovdqu %%xmm11, 176(%0)\n\t"
                         "movdqu %%xmm12, 192(%0)\n\tmovdqu %%xmm13, 208(%0)\n\t"
                         "movdqu %%xmm14, 224(%0)\n\tmovdqu %%xmm15, 240(%0)"
                         :
                         : "r"(p)
                         : "memory");
    if (__builtin_cpu_supports("avx")) {
        __asm__ __volatile__("vextracti128 $1, %%ymm0, 256(%0)\n\t"
                             "vextracti128 $1, %%ymm1, 272(%0)\n\t"
                             "vextracti128 $1, %%ymm2, 288(%0)\n\t"
                             "vextracti128 $1, %%ymm3, 304(%0)\n\t"
                             "vextracti128 $1, %%ymm4, 320(%0)\n\t"
                             "vextracti128 $1, %%ymm5, 336(%0)\n\t"
                             "vextracti128 $1, %%ymm6, 352(%0)\n\t"
                             "vextracti128 $1, %%ymm7, 368(%0)\n\t"
                             "vextracti128 $1, %%ymm8, 384(%0)\n\t"
                             "vextracti128 $1, %%ymm9, 400(%0)\n\t"
                             "vextracti128 $1, %%ymm10, 416(%0)\n\t"
                             "vextracti128 $1, %%ymm11, 432(%0)\n\t"
                             "vextracti128 $1, %%ymm12, 448(%0)\n\t"
                             "vextracti128 $1, %%ymm13, 464(%0)\n\t"
                             "vextracti128 $1, %%ymm14, 480(%0)\n\t"
                             "vextracti128 $1, %%ymm15, 496(%0)"
                             :
                             : "r"(p)
                             : "memory");
    }
    if (__builtin_cpu_supports("avx512f")) {
        __asm__ __volatile__("vmovdqu64 %%zmm16, 512(%0)\n\tvmovdqu64 %%zmm17, 576(%0)\n\t"
                             "vmovdqu64 %%zmm18, 640(%0)\n\tvmovdqu64 %%zmm19, 704(%0)\n\t"
                             "vmovdqu64 %%zmm20, 768(%0)\n\tvmovdqu64 %%zmm21, 832(%0)\n\t"
                             "vmovdqu64 %%zmm22, 896(%0)\n\tvmovdqu64 %%zmm23, 960(%0)\n\t"
                             "vmovdqu64 %%zmm24, 1024(%0)\n\tvmovdqu64 %%zmm25, 1088(%0)\n\t"
                             "vmovdqu64 %%zmm26, 1152(%0)\n\tvmovdqu64 %%zmm27, 1216(%0)\n\t"
                             "vmovdqu64 %%zmm28, 1280(%0)\n\tvmovdqu64 %%zmm29, 1344(%0)\n\t"
                             "vmovdqu64 %%zmm30, 1408(%0)\n\tvmovdqu64 %%zmm31, 1472(%0)"
                             :
                             : "r"(p)
                             : "memory");
    }
    __asm__ __volatile__("" : : "r"(p) : "memory");
}

/* Runs op with the stack cleared, spills the registers as they are afterwards, and says
 * whether op left k behind on the stack or in a register. */
#define LEAVES(op, k, klen) (stack_clear(), (op)(), spill_registers(), stack_holds((k), (klen)))

/* ---- the operations ---- */

static uint8_t buf[4096], out[4096 + 64];

static NOINLINE void raw_chacha(void)
{
    static const uint8_t zero[64], nonce[crypto_stream_chacha20_NONCEBYTES];
    uint8_t block[64];
    crypto_stream_chacha20_xor_ic(block, zero, sizeof(block), nonce, 12345 / 4, key);
    memcpy(out, block, sizeof(block));
}

static NOINLINE void op_aead_seal(void)
{
    assert_int_equal(vl_aead_box_seal(out, buf, 100, buf, 10, key), 0);
}

static NOINLINE void op_aead_open(void)
{
    size_t n = 0;
    assert_int_equal(vl_aead_box_seal(out, buf, 100, buf, 10, key), 0);
    assert_int_equal(vl_aead_box_open(buf + 2048, &n, out, vl_aead_box_len(100), buf, 10, key),
                     0);
}

static NOINLINE void op_siv(void)
{
    const uint8_t *ad[1] = {buf};
    size_t adlen[1] = {20};
    assert_int_equal(vl_siv_encrypt(out, key, VL_SIV_KEYBYTES, ad, adlen, 1, buf, 100), 0);
    assert_int_equal(vl_siv_decrypt(buf + 2048, key, VL_SIV_KEYBYTES, ad, adlen, 1, out, 116), 0);
    assert_int_equal(vl_siv_encrypt(out, key, VL_SIV_KEYBYTES, ad, adlen, 1, buf, 0), 0);
}

static NOINLINE void op_hmac(void)
{
    vl_hmac_sha256(out, key, 32, buf, 100);
}

static NOINLINE void op_hkdf(void)
{
    assert_int_equal(vl_hkdf_sha256(out, 64, key, 32, NULL, 0, buf, 20), 0);
}

static NOINLINE void op_ashe(void)
{
    struct vl_ashe_table t;
    vl_u128 c = vl_ashe_encrypt(key, 1000, -5);
    assert_int_equal(vl_ashe_table_fill(&t, key, 990, 1010), 0);
    struct vl_seq_run run = {1000, 1000};
    assert_true(vl_ashe_decrypt(key, c, &run, 1, &t) == -5);
    assert_true(vl_ashe_decrypt(key, c, &run, 1, NULL) == -5);
    vl_ashe_table_free(&t);
}

static struct vl_search_word sw; /* the word's keys; compared against after */

static NOINLINE void op_search(void)
{
    struct vl_search_item items[2] = {{3, 1}, {9, 2}}, back[VL_SEARCH_ITEMS_MAX];
    uint8_t wk[VL_SEARCH_WKEY_BYTES], val[VL_SEARCH_VALUE_MAX];
    size_t vlen = 0, n = 0;
    vl_search_wkey(wk, key, "zebra", 5);
    vl_search_word(&sw, key, "zebra", 5, 0);
    vl_search_labels(&sw, 0, 5, out);
    assert_int_equal(vl_search_seal(&sw, 4, items, 2, val, &vlen), 0);
    assert_int_equal(vl_search_open(&sw, 4, val, vlen, back, &n), 0);
    assert_int_equal(n, 2);
}

/* ---- tests ---- */

static void test_probe_finds_raw_chacha(void **state)
{
    (void)state;
    if (!LEAVES(raw_chacha, key, 32)) {
        fail_msg("bare ChaCha20 left no key behind: the probe cannot tell");
    }
}

static void test_wrappers_leave_no_key(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        void (*op)(void);
        size_t klen;
    } ops[] = {
        {"XChaCha20-Poly1305 seal", op_aead_seal, VL_AEAD_KEYBYTES},
        {"XChaCha20-Poly1305 open", op_aead_open, VL_AEAD_KEYBYTES},
        {"AES-SIV", op_siv, VL_SIV_KEYBYTES},
        {"HMAC-SHA-256", op_hmac, 32},
        {"HKDF-SHA-256", op_hkdf, 32},
        {"ASHE", op_ashe, 32},
        {"search entries", op_search, VL_SEARCH_KEY_BYTES},
    };
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        if (LEAVES(ops[i].op, key, ops[i].klen)) {
            fail_msg("%s left its key on the stack or in a register", ops[i].name);
        }
    }
    /* The per-word keys of the search entries, too. */
    uint8_t wkeys[64];
    memcpy(wkeys, sw.label_key, 32);
    memcpy(wkeys + 32, sw.value_key, 32);
    if (LEAVES(op_search, wkeys, sizeof(wkeys))) {
        fail_msg("search entries left a word key on the stack");
    }
    sodium_memzero(&sw, sizeof(sw));
}

static struct vl_paillier *pk;
static uint8_t pseed[VL_PAILLIER_SEEDBYTES], pct[1024];

static NOINLINE void op_keygen(void)
{
    assert_int_equal(vl_paillier_test_keygen(&pk, pseed, 1024), 0);
}

static NOINLINE void op_pencrypt(void)
{
    assert_int_equal(vl_paillier_encrypt(pk, pct, vl_paillier_ciphertext_bytes(pk), -99), 0);
}

static NOINLINE void op_pdecrypt(void)
{
    __int128 v = 0;
    assert_int_equal(vl_paillier_decrypt(pk, &v, pct, vl_paillier_ciphertext_bytes(pk)), 0);
    assert_true(v == -99);
}

static void test_paillier_leaves_no_prime(void **state)
{
    (void)state;
    uint8_t *pq = malloc(128);
    assert_non_null(pq);
    vl_random(pseed, sizeof(pseed));
    if (LEAVES(op_keygen, pseed, sizeof(pseed))) {
        fail_msg("Paillier key generation left its seed on the stack");
    }
    assert_int_equal(vl_paillier_test_export(pk, "p", pq, 64), 0);
    assert_int_equal(vl_paillier_test_export(pk, "q", pq + 64, 64), 0);
    vl_paillier_free(pk);
    /* the same key again, now that p and q are known */
    if (LEAVES(op_keygen, pq, 64) || stack_holds(pq + 64, 64)) {
        fail_msg("Paillier key generation left a prime on the stack");
    }
    if (LEAVES(op_pencrypt, pq, 64) || stack_holds(pq + 64, 64)) {
        fail_msg("Paillier encryption left a prime on the stack");
    }
    if (LEAVES(op_pdecrypt, pq, 64) || stack_holds(pq + 64, 64)) {
        fail_msg("Paillier decryption left a prime on the stack");
    }
    vl_paillier_free(pk);
    sodium_memzero(pq, 128);
    free(pq);
}

/* The VmFlags of the mapping of /proc/self/smaps that holds address a ("" if none). */
static void smaps_flags(const void *a, char *flags, size_t cap)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    int in = 0;
    flags[0] = '\0';
    assert_non_null(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned long lo, hi;
        size_t tok = strcspn(line, " ");
        if (memchr(line, '-', tok) != NULL && sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
            in = (uintptr_t)a >= lo && (uintptr_t)a < hi;
        } else if (in && strncmp(line, "VmFlags:", 8) == 0) {
            size_t n = strnlen(line + 8, cap - 1);
            memcpy(flags, line + 8, n);
            flags[n] = '\0';
            break;
        }
    }
    fclose(f);
}

static void test_secret_memory_not_dumped(void **state)
{
    (void)state;
    char flags[256];
    uint8_t *s = vl_secret_alloc(32), *plain = malloc(32);
    assert_non_null(s);
    assert_non_null(plain);
    smaps_flags(s, flags, sizeof(flags));
    if (strstr(flags, " dd") == NULL) {
        fail_msg("secret memory is not excluded from core dumps (VmFlags:%s)", flags);
    }
    smaps_flags(plain, flags, sizeof(flags));
    assert_true(flags[0] != '\0');
    assert_null(strstr(flags, " dd")); /* the check tells the two apart */
    vl_secret_free(s);
    free(plain);
}

static void test_harden_process(void **state)
{
    (void)state;
    struct rlimit rl;
    veil_status st;
    assert_int_equal(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 1);
    memset(&st, 0, sizeof(st));
    assert_int_equal(veil_harden_process(&st), VEIL_OK);
    assert_int_equal(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 0);
    assert_int_equal(getrlimit(RLIMIT_CORE, &rl), 0);
    assert_true(rl.rlim_cur == 0 && rl.rlim_max == 0);
    /* Once more is fine. */
    assert_int_equal(veil_harden_process(&st), VEIL_OK);
}

static int setup(void **state)
{
    (void)state;
    if (vl_crypto_init() != 0) {
        return -1;
    }
    vl_random(key, sizeof(key));
    vl_random(buf, sizeof(buf));
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe_finds_raw_chacha),
        cmocka_unit_test(test_wrappers_leave_no_key),
        cmocka_unit_test(test_paillier_leaves_no_prime),
        cmocka_unit_test(test_secret_memory_not_dumped),
        cmocka_unit_test(test_harden_process),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
