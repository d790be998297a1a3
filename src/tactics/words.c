/*
 * words.c: normalizing, splitting and stemming text for the `search` tactic (see words.h).
 *
 * Nothing here leaves the proxy: the stems are what the search index is keyed on (through a
 * PRF), so this file decides which spellings meet, not what the store sees. What it must
 * keep is determinism: a document and a query that mean the same words give the same stems,
 * in every thread, on every run.
 *
 * One pass over the text, with memory bounded by the number of distinct stems:
 * - Each code point is decomposed on its own (utf8proc: compatibility decomposition and full
 *   case folding; both are context-free). The code points since the last "safe" one are
 *   kept in a small buffer; a code point is safe when its decomposition starts with a
 *   starter that nothing composes onto (not a mark, not a Hangul vowel or final consonant),
 *   so nothing before it can reorder or compose with anything from it on. At each safe code
 *   point the buffer is put in canonical order and composed: together this is NFKC with
 *   case folding, equal to utf8proc_map(STABLE|COMPOSE|COMPAT|CASEFOLD) of the whole text.
 *   The buffer holds PEND_MAX code points; a run of unsafe ones long enough to overflow it
 *   (some sixty combining marks in a row, never seen in real text) is normalized in pieces,
 *   which bounds the work of canonical ordering.
 * - The normalized code points are split into words by category, and a word keeps its first
 *   WORD_CAP bytes: stemmers only touch a word's last few letters, so cutting the stem of
 *   that prefix to VL_WORD_MAX bytes gives the same bytes as cutting the stem of the word.
 * - Stems are counted in an open-addressing table keyed by SipHash under a per-process
 *   random key, so no text can make the table degrade; it is refused once it would hold
 *   more than max_words stems. At the end the stems are copied into one block and sorted.
 *
 * A Snowball stemmer (not thread-safe) is made per call, on the first word. That costs about
 * as much as stemming one word: a one-word Dutch query takes 0.69 us against 0.49 us with a
 * stemmer cached per thread, a sentence 3.5 against 3.4 us, a megabyte of text 57 ms either
 * way. For that, calls stay independent and threads are left holding nothing.
 */
#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <libstemmer.h>
#include <sodium.h>
#include <utf8proc.h>

#include "tactics/words.h"

/* Bytes of a word kept for stemming; stemmers strip far less than WORD_CAP - VL_WORD_MAX. */
#define WORD_CAP (4 * VL_WORD_MAX)
/* Code points normalized together; a decomposition has at most 18 (U+FDFA). */
#define PEND_MAX 64
#define DECOMPOSE_OPTS (UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT | UTF8PROC_CASEFOLD)
#define TABLE_MIN 16

static const char *const stemmed[] = {"english", "dutch", "french", "german"};

/* A distinct stem: its bytes are pool[off..off+len) (NUL-terminated); tf 0 marks a free
 * slot. */
struct entry {
    uint64_t hash;
    size_t off;
    uint32_t len;
    uint32_t tf;
};

struct tokenizer {
    const char *language; /* NULL: no stemming */
    struct sb_stemmer *stemmer;
    size_t max_words;
    uint32_t total;
    /* decomposed code points since the last safe one */
    int32_t pend[PEND_MAX];
    size_t npend;
    /* the word being read: its first WORD_CAP bytes; `full` once a code point was dropped */
    uint8_t word[WORD_CAP];
    size_t wlen;
    int full;
    /* the stems */
    struct entry *slots;
    size_t cap; /* a power of two, or 0 */
    size_t n;
    char *pool;
    size_t pool_len;
    size_t pool_cap;
};

static uint8_t hash_key[crypto_shorthash_KEYBYTES];
static pthread_once_t hash_once = PTHREAD_ONCE_INIT;

static void hash_key_make(void)
{
    /* On failure the key stays zero: the table still works, it only loses its defence
     * against chosen collisions. */
    if (sodium_init() >= 0) {
        randombytes_buf(hash_key, sizeof(hash_key));
    }
}

static uint64_t hash_of(const uint8_t *s, size_t n)
{
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, s, n, hash_key);
    uint64_t v;
    memcpy(&v, h, sizeof(v));
    return v;
}

int vl_words_language_ok(const char *language)
{
    if (language == NULL) {
        return 0;
    }
    if (strcmp(language, "none") == 0) {
        return 1;
    }
    for (size_t i = 0; i < sizeof(stemmed) / sizeof(stemmed[0]); i++) {
        if (strcmp(language, stemmed[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* ---- the stem table ---- */

static struct entry *slot_of(struct entry *slots, size_t cap, const char *pool, uint64_t h,
                             const uint8_t *s, size_t n)
{
    size_t mask = cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        struct entry *e = &slots[i];
        if (e->tf == 0 || (e->hash == h && e->len == n && memcmp(pool + e->off, s, n) == 0)) {
            return e;
        }
    }
}

static veil_err table_grow(struct tokenizer *tk)
{
    size_t cap = tk->cap ? tk->cap * 2 : TABLE_MIN;
    if (cap < tk->cap || cap > SIZE_MAX / sizeof(struct entry)) {
        return VEIL_ERR_TOO_LARGE;
    }
    struct entry *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL) {
        return VEIL_ERR_INTERNAL;
    }
    for (size_t i = 0; i < tk->cap; i++) {
        const struct entry *e = &tk->slots[i];
        if (e->tf != 0) {
            *slot_of(slots, cap, tk->pool, e->hash, (const uint8_t *)tk->pool + e->off, e->len) =
                *e;
        }
    }
    free(tk->slots);
    tk->slots = slots;
    tk->cap = cap;
    return VEIL_OK;
}

static veil_err pool_put(struct tokenizer *tk, const uint8_t *s, size_t n, size_t *off)
{
    if (n + 1 > tk->pool_cap - tk->pool_len) {
        size_t cap = tk->pool_cap ? tk->pool_cap : 1024;
        while (n + 1 > cap - tk->pool_len) {
            if (cap > SIZE_MAX / 2) {
                return VEIL_ERR_TOO_LARGE;
            }
            cap *= 2;
        }
        char *p = realloc(tk->pool, cap);
        if (p == NULL) {
            return VEIL_ERR_INTERNAL;
        }
        tk->pool = p;
        tk->pool_cap = cap;
    }
    *off = tk->pool_len;
    memcpy(tk->pool + tk->pool_len, s, n);
    tk->pool[tk->pool_len + n] = '\0';
    tk->pool_len += n + 1;
    return VEIL_OK;
}

static veil_err table_add(struct tokenizer *tk, const uint8_t *s, size_t n)
{
    uint64_t h = hash_of(s, n);
    struct entry *e = NULL;
    if (tk->cap > 0) {
        e = slot_of(tk->slots, tk->cap, tk->pool, h, s, n);
        if (e->tf != 0) {
            e->tf += e->tf < UINT32_MAX;
            return VEIL_OK;
        }
    }
    if (tk->n >= tk->max_words) {
        return VEIL_ERR_TOO_LARGE;
    }
    veil_err rc;
    if (tk->n + 1 > tk->cap / 4 * 3) { /* at most 3/4 full, so probes end */
        if ((rc = table_grow(tk)) != VEIL_OK) {
            return rc;
        }
        e = slot_of(tk->slots, tk->cap, tk->pool, h, s, n);
    }
    size_t off;
    if ((rc = pool_put(tk, s, n, &off)) != VEIL_OK) {
        return rc;
    }
    e->hash = h;
    e->off = off;
    e->len = (uint32_t)n;
    e->tf = 1;
    tk->n++;
    return VEIL_OK;
}

/* ---- words ---- */

/* The longest prefix of s[0..n) of whole UTF-8 characters within VL_WORD_MAX bytes. */
static size_t cut_len(const uint8_t *s, size_t n)
{
    if (n <= VL_WORD_MAX) {
        return n;
    }
    n = VL_WORD_MAX;
    while (n > 0 && (s[n] & 0xC0) == 0x80) {
        n--;
    }
    return n;
}

static veil_err word_end(struct tokenizer *tk)
{
    if (tk->wlen == 0) {
        return VEIL_OK;
    }
    const uint8_t *s = tk->word;
    size_t n = tk->wlen;
    tk->wlen = 0;
    tk->full = 0;
    if (tk->language != NULL) {
        if (tk->stemmer == NULL) {
            tk->stemmer = sb_stemmer_new(tk->language, "UTF_8");
            if (tk->stemmer == NULL) {
                return VEIL_ERR_INTERNAL;
            }
        }
        const sb_symbol *stem = sb_stemmer_stem(tk->stemmer, s, (int)n);
        if (stem == NULL) {
            return VEIL_ERR_INTERNAL;
        }
        int sn = sb_stemmer_length(tk->stemmer);
        if (sn > 0) { /* an empty stem (never seen) keeps the word */
            s = stem;
            n = (size_t)sn;
        }
    }
    n = cut_len(s, n);
    if (n == 0) {
        return VEIL_OK;
    }
    tk->total += tk->total < UINT32_MAX;
    return table_add(tk, s, n);
}

static void word_put(struct tokenizer *tk, int32_t cp)
{
    size_t need = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    if (tk->full || need > WORD_CAP - tk->wlen) {
        tk->full = 1;
        return;
    }
    utf8proc_ssize_t k = utf8proc_encode_char(cp, tk->word + tk->wlen);
    assert(k == (utf8proc_ssize_t)need);
    tk->wlen += (size_t)k;
}

/* Ideographs and kana: words of one character. */
static int is_ideograph(int32_t cp)
{
    return (cp >= 0x3005 && cp <= 0x3007) || (cp >= 0x3021 && cp <= 0x3029) ||
           (cp >= 0x3040 && cp <= 0x30FF) || (cp >= 0x31F0 && cp <= 0x31FF) ||
           (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x4E00 && cp <= 0x9FFF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x1AFF0 && cp <= 0x1B16F) ||
           (cp >= 0x20000 && cp <= 0x3FFFF);
}

/* Letters, marks and digits: L*, M*, N*. */
static int is_word_char(int32_t cp)
{
    if (cp < 0x80) {
        return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9');
    }
    utf8proc_category_t c = utf8proc_category(cp);
    return c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_NO;
}

/* One normalized code point. */
static veil_err emit(struct tokenizer *tk, int32_t cp)
{
    if (!is_word_char(cp)) {
        return word_end(tk);
    }
    if (is_ideograph(cp)) {
        veil_err rc = word_end(tk);
        if (rc != VEIL_OK) {
            return rc;
        }
        word_put(tk, cp);
        return word_end(tk);
    }
    word_put(tk, cp);
    return VEIL_OK;
}

/* ---- normalization ---- */

static int ccc_of(int32_t cp)
{
    return cp < 0x300 ? 0 : utf8proc_get_property(cp)->combining_class;
}

/* May the text be cut just before a decomposition starting with d? Yes if d is a starter
 * that composes with nothing before it: every second half of a canonical composition is a
 * mark, a non-starter, or a Hangul vowel or trailing consonant (test_words checks this
 * against utf8proc's tables). */
static int is_safe_start(int32_t d)
{
    if (d < 0x300) {
        return 1;
    }
    if ((d >= 0x1160 && d <= 0x11FF) || (d >= 0xD7B0 && d <= 0xD7FF)) {
        return 0;
    }
    const utf8proc_property_t *p = utf8proc_get_property(d);
    return p->combining_class == 0 &&
           !(p->category >= UTF8PROC_CATEGORY_MN && p->category <= UTF8PROC_CATEGORY_ME);
}

/* Canonical ordering (a stable sort of each run of non-starters by combining class), then
 * canonical composition, then the words. */
static veil_err flush(struct tokenizer *tk)
{
    size_t n = tk->npend;
    int32_t *p = tk->pend;
    tk->npend = 0;
    if (n > 1) {
        uint8_t ccc[PEND_MAX];
        for (size_t i = 0; i < n; i++) {
            ccc[i] = (uint8_t)ccc_of(p[i]);
        }
        for (size_t i = 1; i < n; i++) {
            int32_t cp = p[i];
            uint8_t c = ccc[i];
            size_t j = i;
            while (c != 0 && j > 0 && ccc[j - 1] > c) {
                p[j] = p[j - 1];
                ccc[j] = ccc[j - 1];
                j--;
            }
            p[j] = cp;
            ccc[j] = c;
        }
        utf8proc_ssize_t m = utf8proc_normalize_utf32(p, (utf8proc_ssize_t)n, UTF8PROC_COMPOSE);
        assert(m >= 1 && (size_t)m <= n);
        n = (size_t)m;
    }
    for (size_t i = 0; i < n; i++) {
        veil_err rc = emit(tk, p[i]);
        if (rc != VEIL_OK) {
            return rc;
        }
    }
    return VEIL_OK;
}

/* One code point of the text. */
static veil_err feed(struct tokenizer *tk, int32_t cp)
{
    int32_t d[PEND_MAX];
    utf8proc_ssize_t k;
    if (cp < 0x80) {
        d[0] = cp >= 'A' && cp <= 'Z' ? cp + ('a' - 'A') : cp;
        k = 1;
    } else {
        utf8proc_int32_t bound = 0;
        k = utf8proc_decompose_char(cp, d, PEND_MAX, DECOMPOSE_OPTS, &bound);
        if (k < 1 || k > PEND_MAX) {
            /* No code point decomposes to none or to more than 18; were one to, it would
             * separate words. */
            veil_err rc = flush(tk);
            return rc != VEIL_OK ? rc : word_end(tk);
        }
    }
    if (tk->npend > 0 && (is_safe_start(d[0]) || (size_t)k > PEND_MAX - tk->npend)) {
        veil_err rc = flush(tk);
        if (rc != VEIL_OK) {
            return rc;
        }
    }
    memcpy(tk->pend + tk->npend, d, (size_t)k * sizeof(d[0]));
    tk->npend += (size_t)k;
    return VEIL_OK;
}

/* ---- the result ---- */

static int word_cmp(const void *a, const void *b)
{
    const struct vl_word *x = a, *y = b;
    int c = memcmp(x->stem, y->stem, x->len < y->len ? x->len : y->len);
    if (c != 0) {
        return c;
    }
    return x->len < y->len ? -1 : x->len > y->len;
}

/* Copies the stems into one block: the vl_word array, then the pool. */
static veil_err result_of(const struct tokenizer *tk, struct vl_words *out)
{
    if (tk->n == 0) {
        return VEIL_OK;
    }
    size_t head = tk->n * sizeof(struct vl_word);
    if (tk->n > SIZE_MAX / sizeof(struct vl_word) || tk->pool_len > SIZE_MAX - head) {
        return VEIL_ERR_TOO_LARGE;
    }
    uint8_t *block = malloc(head + tk->pool_len);
    if (block == NULL) {
        return VEIL_ERR_INTERNAL;
    }
    struct vl_word *w = (struct vl_word *)(void *)block;
    char *pool = (char *)block + head;
    memcpy(pool, tk->pool, tk->pool_len);
    size_t k = 0;
    for (size_t i = 0; i < tk->cap; i++) {
        const struct entry *e = &tk->slots[i];
        if (e->tf != 0) {
            w[k].stem = pool + e->off;
            w[k].len = e->len;
            w[k].tf = e->tf;
            k++;
        }
    }
    assert(k == tk->n);
    qsort(w, k, sizeof(*w), word_cmp);
    out->w = w;
    out->n = k;
    out->total = tk->total;
    out->arena = block;
    return VEIL_OK;
}

veil_err vl_words_of(const char *language, const char *text, size_t len, size_t max_words,
                     struct vl_words *out)
{
    memset(out, 0, sizeof(*out));
    if (!vl_words_language_ok(language) || (text == NULL && len > 0)) {
        return VEIL_ERR_BAD_REQUEST;
    }
    pthread_once(&hash_once, hash_key_make);

    struct tokenizer t;
    struct tokenizer *tk = &t;
    memset(tk, 0, sizeof(*tk));
    tk->language = strcmp(language, "none") == 0 ? NULL : language;
    tk->max_words = max_words;

    veil_err rc = VEIL_OK;
    const uint8_t *s = (const uint8_t *)text;
    size_t i = 0;
    while (i < len) {
        int32_t cp = s[i];
        utf8proc_ssize_t k = 1;
        if (cp >= 0x80) {
            k = utf8proc_iterate(s + i, len - i < 4 ? (utf8proc_ssize_t)(len - i) : 4, &cp);
            if (k < 1) {
                rc = VEIL_ERR_BAD_REQUEST;
                break;
            }
        }
        i += (size_t)k;
        if (rc == VEIL_OK) {
            rc = feed(tk, cp);
        } else if (rc != VEIL_ERR_TOO_LARGE) {
            break; /* past the limit, read on only to tell bad UTF-8 from too many stems */
        }
    }
    if (rc == VEIL_OK) {
        rc = flush(tk);
    }
    if (rc == VEIL_OK) {
        rc = word_end(tk);
    }
    if (rc == VEIL_OK) {
        rc = result_of(tk, out);
    }
    sb_stemmer_delete(tk->stemmer);
    free(tk->slots);
    free(tk->pool);
    return rc;
}

void vl_words_free(struct vl_words *w)
{
    if (w == NULL) {
        return;
    }
    free(w->arena);
    memset(w, 0, sizeof(*w));
}
