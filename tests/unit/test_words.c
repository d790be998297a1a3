/* test_words.c: normalization, splitting and stemming of text for the `search` tactic, with
 * whole-text utf8proc_map as the reference for normalization. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <utf8proc.h>

#include "tactics/words.h"

/* The words of s (NUL-terminated) as "stem:tf stem:tf ...", sorted as returned; the test
 * fails unless vl_words_of succeeds. */
static char *words_str(const char *language, const char *s)
{
    struct vl_words w;
    veil_err rc = vl_words_of(language, s, strlen(s), 100000, &w);
    assert_int_equal(rc, VEIL_OK);
    size_t cap = 64 + strlen(s) * 4 + w.n * 16;
    char *out = malloc(cap);
    assert_non_null(out);
    size_t k = 0;
    out[0] = '\0';
    uint32_t sum = 0;
    for (size_t i = 0; i < w.n; i++) {
        assert_true(w.w[i].len >= 1 && w.w[i].len <= VL_WORD_MAX);
        assert_int_equal(strlen(w.w[i].stem), w.w[i].len);
        k += (size_t)snprintf(out + k, cap - k, "%s%s:%u", i ? " " : "", w.w[i].stem, w.w[i].tf);
        sum += w.w[i].tf;
    }
    assert_int_equal(sum, w.total);
    vl_words_free(&w);
    return out;
}

static void expect(const char *language, const char *text, const char *want)
{
    char *got = words_str(language, text);
    if (strcmp(got, want) != 0) {
        print_error("%s: \"%s\"\n  got  \"%s\"\n  want \"%s\"\n", language, text, got, want);
        free(got);
        fail();
    }
    free(got);
}

/* The one stem of a one-word text. */
static char *stem_of(const char *language, const char *word)
{
    struct vl_words w;
    assert_int_equal(vl_words_of(language, word, strlen(word), 10, &w), VEIL_OK);
    assert_int_equal(w.n, 1);
    char *s = strdup(w.w[0].stem);
    vl_words_free(&w);
    return s;
}

static void same_stem(const char *language, const char *a, const char *b)
{
    char *x = stem_of(language, a), *y = stem_of(language, b);
    if (strcmp(x, y) != 0) {
        print_error("%s: \"%s\" -> \"%s\" but \"%s\" -> \"%s\"\n", language, a, x, b, y);
        free(x);
        free(y);
        fail();
    }
    free(x);
    free(y);
}

static void test_dutch(void **state)
{
    (void)state;
    /* Snowball's Dutch stemmer meets both at "factur". */
    expect("dutch", "facturen factuur Factuur", "factur:3");
    same_stem("dutch", "betalingen", "betaling");
    same_stem("dutch", "café", "cafe"); /* it drops accents */
    expect("dutch", "De facturen van de klant", "de:2 factur:1 klant:1 van:1");
}

static void test_english(void **state)
{
    (void)state;
    expect("english", "payments payment paying paid", "paid:1 pay:1 payment:2");
    same_stem("english", "invoices", "invoice");
    same_stem("english", "running", "runs");
    same_stem("english", "Connection", "connections");
}

static void test_french(void **state)
{
    (void)state;
    expect("french", "factures facture facturation", "factur:3");
    same_stem("french", "généralement", "GÉNÉRAL");
    same_stem("french", "payées", "payé");
}

static void test_german(void **state)
{
    (void)state;
    expect("german", "Rechnungen Rechnung", "rechnung:2");
    same_stem("german", "Häuser", "Haus");
    same_stem("german", "Straße", "STRASSEN");
}

static void test_none_keeps_words(void **state)
{
    (void)state;
    expect("none", "Facturen factuur payments", "facturen:1 factuur:1 payments:1");
    expect("none", "ÉTÉ", "été:1");
}

static void test_nfkc(void **state)
{
    (void)state;
    expect("none", "\xef\xac\x81nancial financial", "financial:2"); /* U+FB01 ligature fi */
    expect("english", "\xef\xac\x81nancial financial", "financi:2");
    expect("none", "Ｆａｃｔｕｕｒ factuur", "factuur:2"); /* fullwidth */
    expect("none", "\xe2\x91\xa0 1", "1:2");               /* circled digit one */
    expect("none", "\xe3\x88\xb1", "株:1");                /* parenthesized ideograph */
    expect("none", "\xef\xbd\xb6\xef\xbe\x9e ガ", "ガ:2"); /* halfwidth ka + voiced mark */
    expect("none", "x\xc2\xb2", "x2:1");                   /* superscript two */
}

static void test_case_folding(void **state)
{
    (void)state;
    expect("none", "STRASSE Straße strasse STRAẞE", "strasse:4");
    expect("none", "ΣΊΣΥΦΟΣ σίσυφος", "σίσυφοσ:2"); /* full folding: final sigma too */
    expect("german", "STRASSE Straße", "strass:2");
    expect("none", "İstanbul", "i̇stanbul:1"); /* dotted capital I folds to i + U+0307 */
}

static void test_combining(void **state)
{
    (void)state;
    expect("none", "e\xcc\x81 \xc3\xa9", "\xc3\xa9:2");
    expect("none", "cafe\xcc\x81 caf\xc3\xa9 CAFE\xcc\x81", "caf\xc3\xa9:3");
    /* Canonical ordering: dot below (220) and acute (230) in either order. */
    expect("none", "a\xcc\xa3\xcc\x81 a\xcc\x81\xcc\xa3 \xe1\xba\xa1\xcc\x81",
           "\xe1\xba\xa1\xcc\x81:3");
    /* Hangul jamo compose into syllables. */
    expect("none", "\xe1\x84\x92\xe1\x85\xa1\xe1\x86\xab 한", "한:2");
    /* A lone mark is a word; a composed symbol is not. */
    expect("none", "a \xcc\x81", "a:1 \xcc\x81:1");
    expect("none", "a=\u0338b", "a:1 b:1"); /* = + long solidus overlay compose to U+2260 */
}

static void test_scripts(void **state)
{
    (void)state;
    expect("none", "invoice счёт 請求書 فاتورة", "invoice:1 счёт:1 فاتورة:1 書:1 求:1 請:1");
    expect("english", "Invoices, СЧЁТ; 請求書!", "invoic:1 счёт:1 書:1 求:1 請:1");
    expect("none", "ひらがなカタカナ", "が:1 な:1 ひ:1 ら:1 カ:2 タ:1 ナ:1");
    expect("none", "한국어 문서", "문서:1 한국어:1");
    expect("none", "ab中cd", "ab:1 cd:1 中:1");
    expect("none", "\xf0\xa0\x80\x80\xf0\xa0\x80\x81", "\xf0\xa0\x80\x80:1 \xf0\xa0\x80\x81:1");
}

static void test_separators(void **state)
{
    (void)state;
    expect("none", "don't don’t e-mail foo_bar x.y a/b@c",
           "a:1 b:1 bar:1 c:1 don:2 e:1 foo:1 mail:1 t:2 x:1 y:1");
    expect("none", "tab\there\nnew\r\nline\xc2\xa0nbsp", "here:1 line:1 nbsp:1 new:1 tab:1");
    expect("none", "a\u2014b\u200bc", "a:1 b:1 c:1"); /* em dash, zero width space */
    expect("none", "emoji\xf0\x9f\x98\x80word", "emoji:1 word:1");
    /* NUL is a separator, not an end. */
    struct vl_words w;
    assert_int_equal(vl_words_of("none", "a\0b", 3, 10, &w), VEIL_OK);
    assert_int_equal(w.n, 2);
    assert_int_equal(w.total, 2);
    vl_words_free(&w);
}

static void test_digits(void **state)
{
    (void)state;
    expect("none", "2024 invoice 42 ４２ a1b2", "2024:1 42:2 a1b2:1 invoice:1");
    expect("english", "invoice 2024-03 #17", "03:1 17:1 2024:1 invoic:1");
    expect("none", "٣٤ 3.14", "14:1 3:1 ٣٤:1"); /* Arabic-Indic digits are digits */
}

static void test_counts(void **state)
{
    (void)state;
    struct vl_words w;
    const char *t = "the cat, The hat; THE end";
    assert_int_equal(vl_words_of("none", t, strlen(t), 10, &w), VEIL_OK);
    assert_int_equal(w.n, 4);
    assert_int_equal(w.total, 6);
    assert_string_equal(w.w[0].stem, "cat");
    assert_int_equal(w.w[0].tf, 1);
    assert_string_equal(w.w[3].stem, "the");
    assert_int_equal(w.w[3].tf, 3);
    assert_int_equal(w.w[3].len, 3);
    vl_words_free(&w);
    vl_words_free(&w); /* twice, and NULL, are fine */
    vl_words_free(NULL);
}

static void test_sorting(void **state)
{
    (void)state;
    /* By bytes, a prefix before its extensions; é (0xC3 0xA9) after z. */
    expect("none", "b é z ab a aa zz é a", "a:2 aa:1 ab:1 b:1 z:1 zz:1 é:2");
    /* Many distinct stems: strictly increasing. */
    char text[20000];
    size_t k = 0;
    for (int i = 0; i < 2000; i++) {
        k += (size_t)snprintf(text + k, sizeof(text) - k, "w%d ", (i * 7919) % 2000);
    }
    struct vl_words w;
    assert_int_equal(vl_words_of("none", text, k, 2000, &w), VEIL_OK);
    assert_int_equal(w.n, 2000);
    assert_int_equal(w.total, 2000);
    for (size_t i = 1; i < w.n; i++) {
        const struct vl_word *a = &w.w[i - 1], *b = &w.w[i];
        int c = memcmp(a->stem, b->stem, a->len < b->len ? a->len : b->len);
        assert_true(c < 0 || (c == 0 && a->len < b->len));
    }
    vl_words_free(&w);
}

static char *repeat(const char *head, const char *unit, size_t times, const char *tail)
{
    size_t hn = strlen(head), un = strlen(unit), tn = strlen(tail);
    char *s = malloc(hn + un * times + tn + 1);
    assert_non_null(s);
    memcpy(s, head, hn);
    for (size_t i = 0; i < times; i++) {
        memcpy(s + hn + i * un, unit, un);
    }
    memcpy(s + hn + un * times, tail, tn + 1);
    return s;
}

static void expect_one(const char *language, const char *text, const char *want)
{
    char *w = repeat(want, "", 0, ":1");
    expect(language, text, w);
    free(w);
}

static void test_cut(void **state)
{
    (void)state;
    char *t, *w;
    /* ASCII: 70 letters keep 64. */
    t = repeat("", "a", 70, "");
    w = repeat("", "a", VL_WORD_MAX, "");
    expect_one("none", t, w);
    free(t);
    /* Far past the bytes kept for stemming, stemmed or not. */
    t = repeat("", "a", 5000, "ing");
    expect_one("none", t, w);
    expect_one("english", t, w);
    free(t);
    free(w);
    /* Two-byte letters: 64 bytes hold 32 of them; after one ASCII letter, only 31. */
    t = repeat("", "é", 40, "");
    w = repeat("", "é", 32, "");
    expect_one("none", t, w);
    free(t);
    free(w);
    t = repeat("x", "é", 40, "");
    w = repeat("x", "é", 31, "");
    expect_one("none", t, w);
    free(t);
    free(w);
    /* Four-byte letters (Gothic): 16 fit; after "xy", 15 (62 bytes). */
    t = repeat("", "\xf0\x90\x8c\xb0", 17, "");
    w = repeat("", "\xf0\x90\x8c\xb0", 16, "");
    expect_one("none", t, w);
    free(t);
    free(w);
    t = repeat("xy", "\xf0\x90\x8c\xb0", 17, "");
    w = repeat("xy", "\xf0\x90\x8c\xb0", 15, "");
    expect_one("none", t, w);
    free(t);
    free(w);
    /* A stem of exactly 64 bytes is kept whole. */
    t = repeat("", "b", 64, "");
    expect_one("none", t, t);
    free(t);
}

static void test_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "\xff",
        "abc \xc3",              /* truncated */
        "\xc0\xaf",              /* overlong */
        "\xe0\x80\xaf",          /* overlong */
        "\xed\xa0\x80",          /* surrogate */
        "\xf4\x90\x80\x80",      /* past U+10FFFF */
        "\x80",                  /* lone continuation */
        "valid words then \xfe", /* after good words */
        "\xe2\x82",              /* truncated three-byte */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct vl_words w;
        assert_int_equal(vl_words_of("english", bad[i], strlen(bad[i]), 100, &w),
                         VEIL_ERR_BAD_REQUEST);
        assert_null(w.w);
        assert_int_equal(w.n, 0);
        assert_int_equal(w.total, 0);
        vl_words_free(&w);
    }
    /* Bad UTF-8 past the limit on stems is still bad UTF-8. */
    struct vl_words w;
    assert_int_equal(vl_words_of("none", "a b c d \xff", 9, 2, &w), VEIL_ERR_BAD_REQUEST);
    assert_int_equal(vl_words_of("none", "a b c d \xc3\xa9", 10, 2, &w), VEIL_ERR_TOO_LARGE);
    /* The length is what counts: a valid prefix of a longer buffer is fine. */
    assert_int_equal(vl_words_of("none", "ok \xc3\xa9", 4, 10, &w), VEIL_ERR_BAD_REQUEST);
    assert_int_equal(vl_words_of("none", "ok \xc3\xa9", 5, 10, &w), VEIL_OK);
    assert_int_equal(w.n, 2);
    vl_words_free(&w);
    /* Languages. */
    static const char *const langs[] = {"english", "dutch", "french", "german", "none"};
    for (size_t i = 0; i < sizeof(langs) / sizeof(langs[0]); i++) {
        assert_true(vl_words_language_ok(langs[i]));
    }
    assert_false(vl_words_language_ok("English"));
    assert_false(vl_words_language_ok("porter"));
    assert_false(vl_words_language_ok("en"));
    assert_false(vl_words_language_ok(""));
    assert_false(vl_words_language_ok(NULL));
    assert_int_equal(vl_words_of("klingon", "a", 1, 10, &w), VEIL_ERR_BAD_REQUEST);
    assert_int_equal(vl_words_of("nl", "a", 1, 10, &w), VEIL_ERR_BAD_REQUEST);
    assert_int_equal(vl_words_of(NULL, "a", 1, 10, &w), VEIL_ERR_BAD_REQUEST);
    assert_int_equal(vl_words_of("none", NULL, 1, 10, &w), VEIL_ERR_BAD_REQUEST);
    assert_null(w.w);
}

static void test_max_words(void **state)
{
    (void)state;
    struct vl_words w;
    assert_int_equal(vl_words_of("none", "a b c a", 7, 3, &w), VEIL_OK);
    assert_int_equal(w.n, 3);
    vl_words_free(&w);
    assert_int_equal(vl_words_of("none", "a b c a", 7, 2, &w), VEIL_ERR_TOO_LARGE);
    assert_null(w.w);
    assert_int_equal(w.n, 0);
    assert_int_equal(w.total, 0);
    vl_words_free(&w);
    assert_int_equal(vl_words_of("none", "a a a", 5, 1, &w), VEIL_OK);
    assert_int_equal(w.n, 1);
    assert_int_equal(w.total, 3);
    vl_words_free(&w);
    /* The limit is on stems, not on words. */
    assert_int_equal(vl_words_of("english", "payment payments", 16, 1, &w), VEIL_OK);
    assert_int_equal(w.n, 1);
    assert_int_equal(w.w[0].tf, 2);
    vl_words_free(&w);
    assert_int_equal(vl_words_of("none", "", 0, 0, &w), VEIL_OK);
    assert_int_equal(vl_words_of("none", "a", 1, 0, &w), VEIL_ERR_TOO_LARGE);
    vl_words_free(&w);
}

static void test_empty(void **state)
{
    (void)state;
    static const char *const texts[] = {"", " ", "  ,.;-'_ \t\n", "\xf0\x9f\x98\x80 !"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        struct vl_words w;
        assert_int_equal(vl_words_of("dutch", texts[i], strlen(texts[i]), 10, &w), VEIL_OK);
        assert_int_equal(w.n, 0);
        assert_int_equal(w.total, 0);
        assert_null(w.w);
        vl_words_free(&w);
    }
    struct vl_words w;
    assert_int_equal(vl_words_of("none", NULL, 0, 10, &w), VEIL_OK);
    assert_int_equal(w.n, 0);
}

/* ---- the reference: whole-text utf8proc_map, then the rules of words.h ---- */

struct ref {
    char stem[128][VL_WORD_MAX + 1];
    uint32_t tf[128];
    size_t n;
    uint32_t total;
};

static int ref_ideograph(int32_t cp)
{
    return (cp >= 0x3005 && cp <= 0x3007) || (cp >= 0x3021 && cp <= 0x3029) ||
           (cp >= 0x3040 && cp <= 0x30FF) || (cp >= 0x31F0 && cp <= 0x31FF) ||
           (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x4E00 && cp <= 0x9FFF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x1AFF0 && cp <= 0x1B16F) ||
           (cp >= 0x20000 && cp <= 0x3FFFF);
}

static void ref_add(struct ref *r, const uint8_t *w, size_t n)
{
    if (n == 0) {
        return;
    }
    if (n > VL_WORD_MAX) {
        n = VL_WORD_MAX;
        while ((w[n] & 0xC0) == 0x80) {
            n--;
        }
    }
    r->total++;
    for (size_t i = 0; i < r->n; i++) {
        if (strlen(r->stem[i]) == n && memcmp(r->stem[i], w, n) == 0) {
            r->tf[i]++;
            return;
        }
    }
    assert_true(r->n < 128);
    memcpy(r->stem[r->n], w, n);
    r->stem[r->n][n] = '\0';
    r->tf[r->n++] = 1;
}

static void ref_words(const uint8_t *text, size_t len, struct ref *r)
{
    memset(r, 0, sizeof(*r));
    utf8proc_uint8_t *norm = NULL;
    utf8proc_ssize_t nn =
        utf8proc_map(text, (utf8proc_ssize_t)len, &norm,
                     UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT | UTF8PROC_CASEFOLD);
    assert_true(nn >= 0);
    uint8_t word[4096];
    size_t wl = 0;
    for (utf8proc_ssize_t i = 0; i < nn;) {
        int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(norm + i, nn - i, &cp);
        assert_true(k > 0);
        utf8proc_category_t c = utf8proc_category(cp);
        if (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_NO) {
            if (ref_ideograph(cp)) {
                ref_add(r, word, wl);
                ref_add(r, norm + i, (size_t)k);
                wl = 0;
            } else {
                assert_true(wl + (size_t)k <= sizeof(word));
                memcpy(word + wl, norm + i, (size_t)k);
                wl += (size_t)k;
            }
        } else {
            ref_add(r, word, wl);
            wl = 0;
        }
        i += k;
    }
    ref_add(r, word, wl);
    free(norm);
}

static void check_against_ref(const uint8_t *text, size_t len)
{
    struct ref *r = malloc(sizeof(*r));
    assert_non_null(r);
    ref_words(text, len, r);
    struct vl_words w;
    assert_int_equal(vl_words_of("none", (const char *)text, len, 1000, &w), VEIL_OK);
    int ok = w.n == r->n && w.total == r->total;
    for (size_t i = 0; ok && i < w.n; i++) {
        size_t j = 0;
        while (j < r->n && strcmp(r->stem[j], w.w[i].stem) != 0) {
            j++;
        }
        ok = j < r->n && r->tf[j] == w.w[i].tf;
    }
    if (!ok) {
        print_error("differs from utf8proc_map on %zu bytes:", len);
        for (size_t i = 0; i < len; i++) {
            print_error(" %02x", text[i]);
        }
        print_error("\n");
    }
    vl_words_free(&w);
    free(r);
    assert_true(ok);
}

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Random texts from pieces that normalize in interesting ways; compared word for word with
 * normalizing the whole text at once. */
static void test_matches_utf8proc_map(void **state)
{
    (void)state;
    static const char *const pieces[] = {
        "a",
        "E",
        "z",
        "I",
        "s",
        "ß",
        "ẞ",
        " ",
        "-",
        "'",
        "_",
        "=",
        "<",
        "1",
        "Ⅻ",
        "①",
        "\xcc\x81",     /* combining acute (230) */
        "\xcc\xa3",     /* combining dot below (220) */
        "\xcc\xb8",     /* combining long solidus overlay (1) */
        "\xcd\x85",     /* combining ypogegrammeni (240) */
        "\xe3\x82\x99", /* combining kana voiced mark (8) */
        "é",
        "Å",
        "Å" /* angstrom sign */,
        "ﬁ",
        "ﬃ",
        "Ｗ",
        "ｶ",
        "ﾞ",
        "か",
        "カ",
        "漢",
        "丽",
        "\xe1\x84\x80", /* Hangul choseong kiyeok (L) */
        "\xe1\x85\xa1", /* jungseong a (V) */
        "\xe1\x86\xa8", /* jongseong kiyeok (T) */
        "가",
        "각",
        "ά",
        "Σ",
        "ς",
        "ΐ",
        "İ",
        "ǅ",
        "㎏",
        "㈱",
        "ﷺ",
        "ᾳ",
        "ȿ",
        "ா",
        "ொ",
        "\xe0\xaf\x86",     /* Tamil vowel sign e (starter, composes with aa) */
        "\xe0\xae\xbe",     /* Tamil vowel sign aa */
        "\xef\xbc\x8c",     /* fullwidth comma */
        "\xe2\x80\x8d",     /* zero width joiner */
        "\xf0\x9d\x90\x80", /* mathematical bold A */
        "\xf0\xa0\x80\x80", /* CJK extension B */
    };
    const size_t np = sizeof(pieces) / sizeof(pieces[0]);
    uint8_t text[256];
    for (int t = 0; t < 20000; t++) {
        size_t len = 0;
        size_t count = rnd() % 12;
        for (size_t i = 0; i < count; i++) {
            const char *p = pieces[rnd() % np];
            size_t pn = strlen(p);
            memcpy(text + len, p, pn);
            len += pn;
        }
        check_against_ref(text, len);
    }
}

/* words.c cuts the text before any code point whose decomposition starts with a starter
 * that is not a mark and not a Hangul vowel or trailing consonant. That is safe only while
 * every second half of a canonical composition is one of those: checked here against the
 * Unicode tables of the utf8proc we run with. */
static void test_composition_seconds(void **state)
{
    (void)state;
    size_t composites = 0;
    for (int32_t cp = 0; cp < 0x110000; cp++) {
        if (!utf8proc_codepoint_valid(cp)) {
            continue;
        }
        int32_t d[32], c[32];
        utf8proc_int32_t bound = 0;
        utf8proc_ssize_t k = utf8proc_decompose_char(cp, d, 32, UTF8PROC_DECOMPOSE, &bound);
        assert_true(k >= 1 && k <= 32);
        if (k < 2) {
            continue;
        }
        memcpy(c, d, (size_t)k * sizeof(d[0]));
        if (utf8proc_normalize_utf32(c, k, UTF8PROC_COMPOSE) != 1 || c[0] != cp) {
            continue; /* not a primary composite */
        }
        composites++;
        for (utf8proc_ssize_t i = 1; i < k; i++) {
            const utf8proc_property_t *p = utf8proc_get_property(d[i]);
            int mark = p->category >= UTF8PROC_CATEGORY_MN && p->category <= UTF8PROC_CATEGORY_ME;
            int jamo_vt = d[i] >= 0x1160 && d[i] <= 0x11FF;
            if (!(p->combining_class != 0 || mark || jamo_vt)) {
                print_error("U+%04X composes onto a starter in U+%04X\n", (unsigned)d[i],
                            (unsigned)cp);
                fail();
            }
        }
        /* Full decompositions (with compatibility and folding) stay short. */
        k = utf8proc_decompose_char(
            cp, d, 32, UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT | UTF8PROC_CASEFOLD, &bound);
        assert_true(k >= 1 && k <= 18);
    }
    assert_true(composites > 10000);
}

static void test_long_mark_runs(void **state)
{
    (void)state;
    /* A letter with a thousand accents: one word, cut at 64 bytes, no matter how the
     * run is normalized in pieces. */
    char *t = repeat("a", "\xcc\x81", 1000, " b");
    char *w = repeat("b:1 \xc3\xa1", "\xcc\x81", 31, ":1");
    expect("none", t, w);
    free(t);
    free(w);
    /* Accents in the worst order for canonical ordering: 100k of them stay fast. */
    t = repeat("x", "\xcc\x81\xcc\xa3", 50000, "");
    struct vl_words ws;
    clock_t c0 = clock();
    assert_int_equal(vl_words_of("english", t, strlen(t), 10, &ws), VEIL_OK);
    assert_true((double)(clock() - c0) / CLOCKS_PER_SEC < 5.0);
    assert_int_equal(ws.n, 1);
    assert_int_equal(ws.total, 1);
    vl_words_free(&ws);
    free(t);
    /* Hangul vowels with nothing to compose with, and many long decompositions. */
    t = repeat("", "\xe1\x85\xa1", 3000, "");
    assert_int_equal(vl_words_of("none", t, strlen(t), 10, &ws), VEIL_OK);
    assert_int_equal(ws.n, 1);
    vl_words_free(&ws);
    free(t);
    t = repeat("", "\xef\xb7\xba ", 3000, ""); /* U+FDFA: 18 code points, 4 words */
    assert_int_equal(vl_words_of("none", t, strlen(t), 10, &ws), VEIL_OK);
    assert_int_equal(ws.total, 4 * 3000);
    vl_words_free(&ws);
    free(t);
}

/* A megabyte of text with 100k-odd words. */
static char *big_text(size_t *len)
{
    static const char *const vocab[] = {"facturen", "factuur", "betaling", "klant",
                                        "Straße",   "payé",    "über",     "請求書",
                                        "счёт",     "2024",    "de",       "het"};
    size_t cap = 1 << 20, k = 0;
    char *s = malloc(cap + 64);
    assert_non_null(s);
    for (unsigned i = 0; k < cap; i++) {
        if (i % 7 == 0) {
            k += (size_t)snprintf(s + k, 64, "w%u, ", (unsigned)(rnd() % 5000));
        } else {
            k += (size_t)snprintf(s + k, 64, "%s ", vocab[rnd() % 12]);
        }
    }
    *len = k;
    return s;
}

static void test_big_text(void **state)
{
    (void)state;
    size_t len;
    char *s = big_text(&len);
    struct vl_words w;
    clock_t c0 = clock();
    assert_int_equal(vl_words_of("dutch", s, len, 100000, &w), VEIL_OK);
    double secs = (double)(clock() - c0) / CLOCKS_PER_SEC;
    print_message("# %zu bytes, %u words, %zu stems in %.0f ms\n", len, w.total, w.n, secs * 1000);
    assert_true(w.total > 100000);
    assert_true(w.n > 4000 && w.n < 5100);
    assert_true(secs < 10.0);
    vl_words_free(&w);
    assert_int_equal(vl_words_of("dutch", s, len, 1000, &w), VEIL_ERR_TOO_LARGE);
    vl_words_free(&w);
    free(s);
}

/* ---- threads ---- */

static const char *const thread_langs[] = {"english", "dutch", "french", "german", "none"};
static const char *const thread_texts[] = {
    "De facturen van de klant zijn betaald; de factuur van maart niet.",
    "Payments received for invoices 2024-03 and 2024-04, paying the rest later.",
    "Les factures payées généralement à la fin du mois.",
    "Die Rechnungen für die Häuser in der Straße sind bezahlt.",
    "ﬁnancial ＷＯＲＤＳ café cafe\xcc\x81 請求書 счёт فاتورة",
};
#define THREAD_CASES (5 * 5)
#define THREAD_ROUNDS 200

static char *thread_want[THREAD_CASES];

static void *thread_run(void *arg)
{
    intptr_t bad = 0;
    for (int r = 0; r < THREAD_ROUNDS; r++) {
        for (int c = 0; c < THREAD_CASES; c++) {
            int i = (c + (int)(intptr_t)arg) % THREAD_CASES;
            const char *lang = thread_langs[i / 5], *text = thread_texts[i % 5];
            struct vl_words w;
            if (vl_words_of(lang, text, strlen(text), 100, &w) != VEIL_OK) {
                bad++;
                continue;
            }
            char got[1024];
            size_t k = 0;
            got[0] = '\0';
            for (size_t j = 0; j < w.n && k < sizeof(got); j++) {
                k += (size_t)snprintf(got + k, sizeof(got) - k, "%s:%u ", w.w[j].stem, w.w[j].tf);
            }
            bad += strcmp(got, thread_want[i]) != 0;
            vl_words_free(&w);
        }
    }
    return (void *)bad;
}

static void test_threads(void **state)
{
    (void)state;
    for (int i = 0; i < THREAD_CASES; i++) {
        const char *lang = thread_langs[i / 5], *text = thread_texts[i % 5];
        struct vl_words w;
        assert_int_equal(vl_words_of(lang, text, strlen(text), 100, &w), VEIL_OK);
        char got[1024];
        size_t k = 0;
        got[0] = '\0';
        for (size_t j = 0; j < w.n; j++) {
            k += (size_t)snprintf(got + k, sizeof(got) - k, "%s:%u ", w.w[j].stem, w.w[j].tf);
        }
        assert_true(k < sizeof(got));
        thread_want[i] = strdup(got);
        vl_words_free(&w);
    }
    pthread_t th[4];
    for (intptr_t i = 0; i < 4; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, thread_run, (void *)(i * 6)), 0);
    }
    intptr_t bad = 0;
    for (int i = 0; i < 4; i++) {
        void *r;
        assert_int_equal(pthread_join(th[i], &r), 0);
        bad += (intptr_t)r;
    }
    for (int i = 0; i < THREAD_CASES; i++) {
        free(thread_want[i]);
    }
    assert_int_equal(bad, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dutch),
        cmocka_unit_test(test_english),
        cmocka_unit_test(test_french),
        cmocka_unit_test(test_german),
        cmocka_unit_test(test_none_keeps_words),
        cmocka_unit_test(test_nfkc),
        cmocka_unit_test(test_case_folding),
        cmocka_unit_test(test_combining),
        cmocka_unit_test(test_scripts),
        cmocka_unit_test(test_separators),
        cmocka_unit_test(test_digits),
        cmocka_unit_test(test_counts),
        cmocka_unit_test(test_sorting),
        cmocka_unit_test(test_cut),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_max_words),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_matches_utf8proc_map),
        cmocka_unit_test(test_composition_seconds),
        cmocka_unit_test(test_long_mark_runs),
        cmocka_unit_test(test_big_text),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
