/*
 * words.h: the words of a text, as the `search` tactic indexes and queries them
 * (docs/design.md "Text search").
 *
 * A text is normalized with utf8proc (NFKC and full case folding: "ﬁ" becomes "fi", "Straße"
 * becomes "strasse"), split into words, and each word is stemmed with the Snowball stemmer
 * of the field's language (libstemmer: english, dutch, french, german; "none" keeps words
 * as they are). A word is a maximal run of letters, marks and digits (Unicode categories
 * L*, M*, N*); anything else separates words. Ideographs and kana (Han, Hiragana, Katakana)
 * are words of one character each, since those scripts put no spaces between words. A stem
 * longer than VL_WORD_MAX bytes is cut to its longest prefix of whole characters that fits.
 *
 * Documents and queries go through the same function, so "facturen" and "factuur" meet
 * at the stem "factur" in Dutch.
 */
#ifndef VL_WORDS_H
#define VL_WORDS_H

#include <stddef.h>
#include <stdint.h>

#include "util/status.h"

#define VL_WORD_MAX 64 /* bytes of a stem */

struct vl_word {
    const char *stem; /* NUL-terminated UTF-8, owned by the vl_words */
    size_t len;       /* bytes, 1..VL_WORD_MAX */
    uint32_t tf;      /* occurrences in the text */
};

/* The distinct stems of a text, sorted by bytes (memcmp, then shorter first), each with
 * its count; `total` is the number of words in the text (the sum of the counts). */
struct vl_words {
    struct vl_word *w;
    size_t n;
    uint32_t total;
    void *arena; /* private */
};

/* Is `language` one vl_words_of knows (english, dutch, french, german, none)? */
int vl_words_language_ok(const char *language);

/* The words of text[0..len) in `language`. At most max_words distinct stems are kept
 * (VEIL_ERR_TOO_LARGE past that, nothing returned); counts saturate at UINT32_MAX.
 * VEIL_ERR_BAD_REQUEST for invalid UTF-8 (anywhere in the text, even past the limit) or an
 * unknown language; VEIL_ERR_INTERNAL if memory runs out. On error *out is left empty (n 0,
 * total 0, w NULL). Safe to call from several threads at once. Free the result with
 * vl_words_free (also after an error). */
veil_err vl_words_of(const char *language, const char *text, size_t len, size_t max_words,
                     struct vl_words *out) VL_WUR;
void vl_words_free(struct vl_words *w);

#endif
