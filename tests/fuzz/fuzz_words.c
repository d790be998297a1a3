/*
 * fuzz_words.c: the tokenizer of the `search` tactic (vl_words_of). The first byte picks the
 * language, the second the limit on distinct stems; the rest is the text.
 *
 * Findings: crashes, leaks; any error other than 400 (exactly when the text is not UTF-8)
 * and 413 (exactly when there are more stems than the limit); a result that is not sorted
 * and distinct, a stem that is empty, longer than VL_WORD_MAX, not NUL-terminated or not
 * UTF-8, counts that do not add up to the total; a second call that answers differently.
 * With language "none" the words must also be those of normalizing the whole text with
 * utf8proc_map and splitting it by the rules of words.h, whenever words.c had no run of
 * combining code points long enough to normalize in pieces.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "tactics/words.h"

#define PEND_MAX 64 /* as in words.c */

static const char *const languages[] = {"none", "english", "dutch", "french", "german"};

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "words: %s (line %d)\n", #cond, __LINE__);                             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static int utf8_ok(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k < 1) {
            return 0;
        }
        i += (size_t)k;
    }
    return 1;
}

/* ---- the reference for "none" ---- */

struct span {
    const uint8_t *p;
    size_t n;
};

static int ideograph(int32_t cp)
{
    return (cp >= 0x3005 && cp <= 0x3007) || (cp >= 0x3021 && cp <= 0x3029) ||
           (cp >= 0x3040 && cp <= 0x30FF) || (cp >= 0x31F0 && cp <= 0x31FF) ||
           (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x4E00 && cp <= 0x9FFF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x1AFF0 && cp <= 0x1B16F) ||
           (cp >= 0x20000 && cp <= 0x3FFFF);
}

/* Would words.c normalize some run of this text in pieces? */
static int pieces(const uint8_t *s, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n;) {
        int32_t cp, d[PEND_MAX];
        utf8proc_int32_t bound = 0;
        i += (size_t)utf8proc_iterate(s + i, (utf8proc_ssize_t)(n - i), &cp);
        utf8proc_ssize_t k = utf8proc_decompose_char(
            cp, d, PEND_MAX, UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT | UTF8PROC_CASEFOLD, &bound);
        const utf8proc_property_t *p = utf8proc_get_property(d[0]);
        int safe = p->combining_class == 0 &&
                   !(p->category >= UTF8PROC_CATEGORY_MN && p->category <= UTF8PROC_CATEGORY_ME) &&
                   !(d[0] >= 0x1160 && d[0] <= 0x11FF) && !(d[0] >= 0xD7B0 && d[0] <= 0xD7FF);
        if (safe) {
            run = (size_t)k;
        } else if ((run += (size_t)k) > PEND_MAX) {
            return 1;
        }
    }
    return 0;
}

static void add(struct span *w, size_t *nw, const uint8_t *p, size_t n)
{
    if (n == 0) {
        return;
    }
    if (n > VL_WORD_MAX) {
        n = VL_WORD_MAX;
        while ((p[n] & 0xC0) == 0x80) {
            n--;
        }
    }
    w[*nw].p = p;
    w[*nw].n = n;
    (*nw)++;
}

static int span_cmp(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    int c = memcmp(x->p, y->p, x->n < y->n ? x->n : y->n);
    return c != 0 ? c : (x->n > y->n) - (x->n < y->n);
}

static void check_reference(const uint8_t *text, size_t len, const struct vl_words *got)
{
    utf8proc_uint8_t *norm = NULL;
    utf8proc_ssize_t nn =
        utf8proc_map(text, (utf8proc_ssize_t)len, &norm,
                     UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT | UTF8PROC_CASEFOLD);
    CHECK(nn >= 0);
    struct span *w = malloc(((size_t)nn + 1) * sizeof(*w));
    CHECK(w != NULL);
    size_t nw = 0, start = 0, wl = 0;
    for (size_t i = 0; i < (size_t)nn;) {
        int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(norm + i, nn - (utf8proc_ssize_t)i, &cp);
        CHECK(k > 0);
        utf8proc_category_t c = utf8proc_category(cp);
        if (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_NO && !ideograph(cp)) {
            if (wl == 0) {
                start = i;
            }
            wl += (size_t)k;
        } else {
            add(w, &nw, norm + start, wl);
            wl = 0;
            if (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_NO) {
                add(w, &nw, norm + i, (size_t)k);
            }
        }
        i += (size_t)k;
    }
    add(w, &nw, norm + start, wl);
    qsort(w, nw, sizeof(*w), span_cmp);
    size_t d = 0;
    for (size_t i = 0; i < nw; d++) {
        size_t j = i + 1;
        while (j < nw && span_cmp(&w[i], &w[j]) == 0) {
            j++;
        }
        CHECK(d < got->n);
        CHECK(got->w[d].len == w[i].n && memcmp(got->w[d].stem, w[i].p, w[i].n) == 0);
        CHECK(got->w[d].tf == j - i);
        i = j;
    }
    CHECK(d == got->n);
    CHECK(got->total == nw);
    free(w);
    free(norm);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) {
        return 0;
    }
    const char *language = languages[data[0] % 5];
    size_t max_words = data[1] == 255 ? SIZE_MAX : data[1];
    const char *text = (const char *)data + 2;
    size_t len = size - 2;

    struct vl_words w, again;
    veil_err rc = vl_words_of(language, text, len, max_words, &w);
    int valid = utf8_ok((const uint8_t *)text, len);
    CHECK(rc == VEIL_OK || rc == VEIL_ERR_BAD_REQUEST || rc == VEIL_ERR_TOO_LARGE);
    CHECK((rc == VEIL_ERR_BAD_REQUEST) == !valid);
    if (rc != VEIL_OK) {
        CHECK(w.w == NULL && w.n == 0 && w.total == 0);
        if (rc == VEIL_ERR_TOO_LARGE) {
            /* With room enough, the same text succeeds with more stems than the limit. */
            CHECK(vl_words_of(language, text, len, SIZE_MAX, &again) == VEIL_OK);
            CHECK(again.n > max_words);
            vl_words_free(&again);
        }
        vl_words_free(&w);
        return 0;
    }

    CHECK(w.n <= max_words && w.n <= w.total && (w.n == 0) == (w.w == NULL));
    uint64_t sum = 0;
    for (size_t i = 0; i < w.n; i++) {
        const struct vl_word *x = &w.w[i];
        CHECK(x->len >= 1 && x->len <= VL_WORD_MAX && x->stem[x->len] == '\0');
        CHECK(memchr(x->stem, '\0', x->len) == NULL);
        CHECK(utf8_ok((const uint8_t *)x->stem, x->len));
        CHECK(x->tf >= 1);
        sum += x->tf;
        if (i > 0) {
            const struct vl_word *p = &w.w[i - 1];
            int c = memcmp(p->stem, x->stem, p->len < x->len ? p->len : x->len);
            CHECK(c < 0 || (c == 0 && p->len < x->len));
        }
    }
    CHECK(sum == w.total);

    CHECK(vl_words_of(language, text, len, max_words, &again) == VEIL_OK);
    CHECK(again.n == w.n && again.total == w.total);
    for (size_t i = 0; i < w.n; i++) {
        CHECK(again.w[i].len == w.w[i].len && again.w[i].tf == w.w[i].tf);
        CHECK(memcmp(again.w[i].stem, w.w[i].stem, w.w[i].len) == 0);
    }
    vl_words_free(&again);

    if (strcmp(language, "none") == 0 && !pieces((const uint8_t *)text, len)) {
        check_reference((const uint8_t *)text, len, &w);
    }
    vl_words_free(&w);
    return 0;
}
