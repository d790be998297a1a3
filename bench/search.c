/*
 * search.c: `bench_core search`, encrypted full-text search (issue 4) against PostgreSQL's
 * full-text search, over a real corpus: the kernel documentation of the Debian package
 * linux-doc-6.1, one document per file.
 *
 *   bench_core search --corpus DIR --data DIR --token T --pg CONNINFO --out R
 *                     [--max-docs N] [--queries Q] [--batch B]
 *
 * Everything runs in this one process; PostgreSQL is a private server that bench/run.sh
 * starts (its CONNINFO names a Unix socket), veil is libveil in process on a data directory
 * that run.sh made with the admin commands (`veil init`, a tenant, bench/kdocs.yaml, a clerk
 * token). Steps:
 *
 *   1. Corpus (not timed): every `*.gz` regular file under DIR, sorted by path, is
 *      decompressed (zlib; `gzip -dc` when built without it); files holding a NUL byte or
 *      invalid UTF-8 (the HTML theme's fonts) and empty ones are left out. With --max-docs N
 *      below the count, N files evenly spaced in path order are kept. A document is
 *      {"path": PATH, "body": TEXT}, its id PATH (relative to DIR, without ".gz").
 *   2. Queries (not timed), deterministic: Q of one, two and three words. A word is a
 *      whitespace-separated chunk of a document that is 3..20 ASCII letters once leading and
 *      trailing punctuation is stripped, lowercased, not an English stop word (PostgreSQL's
 *      list), found in at least two documents. A query picks a document at random, then
 *      distinct words at random positions of that document (so common words come up as
 *      often as they occur, and an AND of two or three words matches at least that
 *      document).
 *   3. PostgreSQL load (timed): COPY of B rows a statement (each its own transaction) into
 *      docs(id text primary key, body text, tsv tsvector generated always as
 *      (to_tsvector('english', body)) stored) with a GIN index on tsv, then VACUUM (ANALYZE),
 *      which also moves the GIN pending list into the index (timed with the load).
 *   4. veil load (timed): veil_bulk of B NDJSON lines a call on the clerk session.
 *   5. Sizes: veil's search index is the store's key-value table k_<table> (SQLite dbstat,
 *      after the vault is closed, so the WAL is checkpointed) plus the trusted state's words
 *      table (a counter per stem) and reserved table (writes in flight); PostgreSQL's is the GIN
 * index plus the stored tsvector column (sum of pg_column_size, i.e. as stored, compressed or not).
 *   6. Queries (timed one by one): a warm-up pass over every query on both sides, then a
 *      timed pass in a fixed shuffled order, veil and PostgreSQL alternating which goes
 *      first. veil: veil_query {"match":{"body":Q},"limit":10,"select":["path"]};
 *      PostgreSQL: the prepared SELECT id ... ORDER BY ts_rank(tsv, q) DESC LIMIT 10.
 *   7. Sanity and breakdown: per query the matching documents on both sides, each count
 *      timed (veil_aggregate count with the same match, in the tenant's admin session: the
 *      match without ranking's top documents; SELECT count(*): the GIN match without
 *      ts_rank), the overlap of the two top-10 lists, and the index entries veil reads (the
 *      sum over the query's stems of their document counts, from veil's own tokenizer run
 *      over the corpus), fitted against veil's matching time. Also each side's tokenizer
 *      alone over the corpus.
 *
 * Results go to --out as "an search_KEY VALUE" lines; `bench_core report` turns them into
 * rows. Progress goes to stderr.
 */
#include <ctype.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <sqlite3.h>
#include <veil/veil.h>

#include "bench.h"

#ifdef BENCH_HAVE_LIBPQ
#include <libpq-fe.h>

#include "tactics/tactics.h"
#include "tactics/words.h"
#ifdef BENCH_HAVE_ZLIB
#include <zlib.h>
#endif

#define SE_MAX_WORDS 3
#define SE_WORD_MIN 3
#define SE_WORD_MAX 20
#define SE_LIMIT 10
#define SE_SEED 1
#define SE_QUERY_MAX 128
#define SE_STEMS_MAX (1u << 20) /* distinct stems counted per document, far above any file */

/* PostgreSQL's english.stop (tsearch_data), the words plainto_tsquery drops. */
static const char *const stop_words[] = {
    "i",       "me",      "my",      "myself",   "we",         "our",    "ours",    "ourselves",
    "you",     "your",    "yours",   "yourself", "yourselves", "he",     "him",     "his",
    "himself", "she",     "her",     "hers",     "herself",    "it",     "its",     "itself",
    "they",    "them",    "their",   "theirs",   "themselves", "what",   "which",   "who",
    "whom",    "this",    "that",    "these",    "those",      "am",     "is",      "are",
    "was",     "were",    "be",      "been",     "being",      "have",   "has",     "had",
    "having",  "do",      "does",    "did",      "doing",      "a",      "an",      "the",
    "and",     "but",     "if",      "or",       "because",    "as",     "until",   "while",
    "of",      "at",      "by",      "for",      "with",       "about",  "against", "between",
    "into",    "through", "during",  "before",   "after",      "above",  "below",   "to",
    "from",    "up",      "down",    "in",       "out",        "on",     "off",     "over",
    "under",   "again",   "further", "then",     "once",       "here",   "there",   "when",
    "where",   "why",     "how",     "all",      "any",        "both",   "each",    "few",
    "more",    "most",    "other",   "some",     "such",       "no",     "nor",     "not",
    "only",    "own",     "same",    "so",       "than",       "too",    "very",    "s",
    "t",       "can",     "will",    "just",     "don",        "should", "now"};

struct sdoc {
    char *id;   /* path under the corpus directory, without ".gz" */
    char *text; /* NUL-terminated */
    size_t len;
    uint32_t *tok; /* the plain words (ids in the vocabulary), in text order */
    size_t ntok;
};

struct corpus {
    struct sdoc *d;
    size_t n;
    size_t files;  /* *.gz files found */
    size_t binary; /* left out: NUL bytes or invalid UTF-8 */
    size_t empty;  /* left out: no text */
    size_t unread; /* left out: could not be decompressed */
    size_t capped; /* left out by --max-docs */
    size_t bytes;  /* of text kept */
};

/* A string -> id table (open addressing, FNV-1a), with a per-id count and a tag. */
struct vocab {
    char **word;
    uint32_t *df;
    uint32_t *last; /* the last document (1-based) counted in df */
    uint32_t *ent;  /* stems: veil's index entries of the word (per batch, 128 docs each) */
    uint32_t *lastb; /* stems: the last batch (1-based) that had the word, and its count */
    uint32_t *inb;
    size_t n, cap;
    uint32_t *slot; /* id + 1, 0 free */
    size_t nslot;   /* a power of two */
};

struct squery {
    char text[SE_QUERY_MAX];
    unsigned k;
    double veil_s, pg_s;
    double veil_match_s, pg_count_s; /* the same match counted, no ranking or documents */
    int veil_hits, pg_hits, overlap;
    long long veil_matches, pg_matches;
    unsigned long long entries; /* index entries veil reads for it */
    unsigned long long entry_docs; /* the documents in them */
    unsigned min_df;            /* of its words, by the bench's own word splitting */
};

struct se_ctx {
    const struct bench_opts *o;
    FILE *out;
    struct corpus c;
    struct vocab v;
    struct vocab stems; /* veil's stems -> documents holding them */
    struct squery *q;
    size_t nq;
    PGconn *pg;
    veil_vault *vault;
    veil_session *clerk, *admin;
    char tenant[128];
    /* NDJSON for veil and COPY text for PostgreSQL, per batch */
    char **nd, **cp;
    size_t *ndlen, *cplen, *nlines;
    size_t nbatch;
};

#define progress(...) bench_say("search", __VA_ARGS__)

#define vfail(what, e, st) bench_vfail("search", what, e, st)

static int pgfail(PGconn *c, const char *what)
{
    fprintf(stderr, "bench: search: postgresql: %s: %s", what, PQerrorMessage(c));
    return -1;
}

static void emit(struct se_ctx *c, const char *key, double v)
{
    bench_emit(c->out, "search_", key, v);
}

static void emit_s(struct se_ctx *c, const char *key, const char *v)
{
    bench_emit_s(c->out, "search_", key, v);
}

static uint64_t rnd(uint64_t *s)
{
    /* splitmix64: the same sequence on every run and machine */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static long long file_bytes(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long long)sb.st_size : 0;
}

/* ---- the corpus ---- */

static int utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char b = s[i];
        if (b == 0) {
            return 0;
        }
        if (b < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint32_t cp;
        if (b >= 0xC2 && b <= 0xDF) {
            k = 1;
            cp = b & 0x1F;
        } else if (b >= 0xE0 && b <= 0xEF) {
            k = 2;
            cp = b & 0x0F;
        } else if (b >= 0xF0 && b <= 0xF4) {
            k = 3;
            cp = b & 0x07;
        } else {
            return 0;
        }
        if (n - i <= k) {
            return 0;
        }
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) {
                return 0;
            }
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF)) {
            return 0;
        }
        i += k + 1;
    }
    return 1;
}

/* Reads everything rd gives (< 0: an error) into a NUL-terminated malloc'd buffer. */
static char *slurp(void *src, long (*rd)(void *src, char *buf, size_t n), size_t *len)
{
    size_t cap = 64 << 10, n = 0;
    char *buf = malloc(cap + 1);
    while (buf != NULL) {
        if (n == cap) {
            char *b = realloc(buf, 2 * cap + 1);
            if (b == NULL) {
                free(buf);
                return NULL;
            }
            buf = b;
            cap *= 2;
        }
        long r = rd(src, buf + n, cap - n);
        if (r < 0) {
            free(buf);
            return NULL;
        }
        if (r == 0) {
            break;
        }
        n += (size_t)r;
    }
    if (buf != NULL) {
        buf[n] = '\0';
        *len = n;
    }
    return buf;
}

#ifdef BENCH_HAVE_ZLIB
static long gz_rd(void *f, char *buf, size_t n)
{
    return gzread((gzFile)f, buf, (unsigned)(n > (1u << 30) ? 1u << 30 : n));
}

static char *read_gz(const char *path, size_t *len)
{
    gzFile f = gzopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    gzbuffer(f, 128 << 10);
    char *buf = slurp(f, gz_rd, len);
    gzclose(f);
    return buf;
}
#else
static long file_rd(void *f, char *buf, size_t n)
{
    size_t r = fread(buf, 1, n, (FILE *)f);
    return r == 0 && ferror((FILE *)f) ? -1 : (long)r;
}

/* Without zlib: `gzip -dc`, the path quoted for the shell. */
static char *read_gz(const char *path, size_t *len)
{
    size_t pl = strlen(path);
    char *cmd = malloc(4 * pl + 32), *buf = NULL, *p;
    if (cmd == NULL) {
        return NULL;
    }
    p = cmd + sprintf(cmd, "gzip -dc -- '");
    for (const char *s = path; *s; s++) {
        if (*s == '\'') {
            p += sprintf(p, "'\\''");
        } else {
            *p++ = *s;
        }
    }
    strcpy(p, "'");
    FILE *f = popen(cmd, "r");
    free(cmd);
    if (f == NULL) {
        return NULL;
    }
    buf = slurp(f, file_rd, len);
    if (pclose(f) != 0) {
        free(buf);
        buf = NULL;
    }
    return buf;
}
#endif

static char **walk_paths;
static size_t walk_n, walk_cap;

static int walk_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    size_t n = strlen(path);
    if (type != FTW_F || n < 4 || strcmp(path + n - 3, ".gz") != 0) {
        return 0;
    }
    if (walk_n == walk_cap) {
        walk_cap = walk_cap ? 2 * walk_cap : 4096;
        char **p = realloc(walk_paths, walk_cap * sizeof(*p));
        if (p == NULL) {
            return -1;
        }
        walk_paths = p;
    }
    if ((walk_paths[walk_n] = strdup(path)) == NULL) {
        return -1;
    }
    walk_n++;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int corpus_load(struct se_ctx *c)
{
    const char *dir = c->o->corpus;
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/') {
        dl--;
    }
    walk_paths = NULL;
    walk_n = walk_cap = 0;
    if (nftw(dir, walk_cb, 32, FTW_PHYS) != 0) {
        fprintf(stderr, "bench: search: cannot read the corpus under %s\n", dir);
        return -1;
    }
    qsort(walk_paths, walk_n, sizeof(*walk_paths), cmp_str);
    c->c.files = walk_n;
    if ((c->c.d = calloc(walk_n + 1, sizeof(*c->c.d))) == NULL) {
        return -1;
    }
    for (size_t i = 0; i < walk_n; i++) {
        size_t len = 0;
        char *text = read_gz(walk_paths[i], &len);
        if (text == NULL) {
            c->c.unread++;
        } else if (len == 0) {
            c->c.empty++;
            free(text);
        } else if (!utf8_ok((const unsigned char *)text, len)) {
            c->c.binary++;
            free(text);
        } else {
            struct sdoc *d = &c->c.d[c->c.n++];
            const char *rel = walk_paths[i] + dl;
            while (*rel == '/') {
                rel++;
            }
            d->id = strndup(rel, strlen(rel) - 3);
            d->text = text;
            d->len = len;
            if (d->id == NULL) {
                return -1;
            }
        }
        free(walk_paths[i]);
    }
    free(walk_paths);
    walk_paths = NULL;
    /* --max-docs: N documents evenly spaced in path order */
    size_t max = c->o->rows;
    if (max > 0 && max < c->c.n) {
        size_t k = 0;
        for (size_t i = 0; i < c->c.n; i++) {
            size_t want = k < max ? k * c->c.n / max : c->c.n;
            if (i == want) {
                c->c.d[k++] = c->c.d[i];
            } else {
                free(c->c.d[i].id);
                free(c->c.d[i].text);
            }
        }
        c->c.capped = c->c.n - k;
        c->c.n = k;
    }
    for (size_t i = 0; i < c->c.n; i++) {
        c->c.bytes += c->c.d[i].len;
    }
    if (c->c.n < 2) {
        fprintf(stderr, "bench: search: fewer than two text files under %s\n", dir);
        return -1;
    }
    return 0;
}

/* ---- words of the bench's own (for drawing queries) ---- */

static uint64_t fnv(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    }
    return h;
}

/* The id of word s[0..n), added when new; -1 when out of memory. */
static long vocab_id(struct vocab *v, const char *s, size_t n)
{
    if (2 * (v->n + 1) > v->nslot) {
        size_t ns = v->nslot ? 2 * v->nslot : 1 << 16;
        uint32_t *sl = calloc(ns, sizeof(*sl));
        if (sl == NULL) {
            return -1;
        }
        for (size_t i = 0; i < v->n; i++) {
            size_t h = (size_t)fnv(v->word[i], strlen(v->word[i])) & (ns - 1);
            while (sl[h] != 0) {
                h = (h + 1) & (ns - 1);
            }
            sl[h] = (uint32_t)i + 1;
        }
        free(v->slot);
        v->slot = sl;
        v->nslot = ns;
    }
    size_t h = (size_t)fnv(s, n) & (v->nslot - 1);
    while (v->slot[h] != 0) {
        const char *w = v->word[v->slot[h] - 1];
        if (strncmp(w, s, n) == 0 && w[n] == '\0') {
            return (long)v->slot[h] - 1;
        }
        h = (h + 1) & (v->nslot - 1);
    }
    if (v->n == v->cap) {
        size_t nc = v->cap ? 2 * v->cap : 1 << 15;
        char **w = realloc(v->word, nc * sizeof(*w));
        if (w == NULL) {
            return -1;
        }
        v->word = w;
        uint32_t *df = realloc(v->df, nc * sizeof(*df));
        if (df == NULL) {
            return -1;
        }
        v->df = df;
        uint32_t *last = realloc(v->last, nc * sizeof(*last));
        if (last == NULL) {
            return -1;
        }
        v->last = last;
        uint32_t *ent = realloc(v->ent, nc * sizeof(*ent));
        uint32_t *lastb = realloc(v->lastb, nc * sizeof(*lastb));
        uint32_t *inb = realloc(v->inb, nc * sizeof(*inb));
        v->ent = ent != NULL ? ent : v->ent;
        v->lastb = lastb != NULL ? lastb : v->lastb;
        v->inb = inb != NULL ? inb : v->inb;
        if (ent == NULL || lastb == NULL || inb == NULL) {
            return -1;
        }
        v->cap = nc;
    }
    if ((v->word[v->n] = strndup(s, n)) == NULL) {
        return -1;
    }
    v->df[v->n] = 0;
    v->last[v->n] = 0;
    v->ent[v->n] = 0;
    v->lastb[v->n] = 0;
    v->inb[v->n] = 0;
    v->slot[h] = (uint32_t)v->n + 1;
    return (long)v->n++;
}

static void vocab_free(struct vocab *v)
{
    for (size_t i = 0; i < v->n; i++) {
        free(v->word[i]);
    }
    free(v->word);
    free(v->df);
    free(v->last);
    free(v->ent);
    free(v->lastb);
    free(v->inb);
    free(v->slot);
    memset(v, 0, sizeof(*v));
}

static int is_stop(const char *w)
{
    for (size_t i = 0; i < sizeof(stop_words) / sizeof(stop_words[0]); i++) {
        if (strcmp(w, stop_words[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Splits every document into its plain words and counts the documents of each. */
static int words_split(struct se_ctx *c)
{
    for (size_t di = 0; di < c->c.n; di++) {
        struct sdoc *d = &c->c.d[di];
        size_t cap = 0;
        const char *p = d->text, *end = d->text + d->len;
        while (p < end) {
            while (p < end && isspace((unsigned char)*p)) {
                p++;
            }
            const char *s = p;
            while (p < end && !isspace((unsigned char)*p)) {
                p++;
            }
            const char *e = p;
            while (s < e && ispunct((unsigned char)*s)) {
                s++;
            }
            while (e > s && ispunct((unsigned char)e[-1])) {
                e--;
            }
            size_t n = (size_t)(e - s);
            if (n < SE_WORD_MIN || n > SE_WORD_MAX) {
                continue;
            }
            char w[SE_WORD_MAX + 1];
            size_t k = 0;
            for (; k < n && isalpha((unsigned char)s[k]) && (unsigned char)s[k] < 0x80; k++) {
                w[k] = (char)tolower((unsigned char)s[k]);
            }
            if (k != n) {
                continue;
            }
            w[n] = '\0';
            if (is_stop(w)) {
                continue;
            }
            long id = vocab_id(&c->v, w, n);
            if (id < 0) {
                return -1;
            }
            if (c->v.last[id] != di + 1) {
                c->v.last[id] = (uint32_t)di + 1;
                c->v.df[id]++;
            }
            if (d->ntok == cap) {
                cap = cap ? 2 * cap : 256;
                uint32_t *t = realloc(d->tok, cap * sizeof(*t));
                if (t == NULL) {
                    return -1;
                }
                d->tok = t;
            }
            d->tok[d->ntok++] = (uint32_t)id;
        }
    }
    return 0;
}

/* Q queries of each size 1..SE_MAX_WORDS. */
static int queries_make(struct se_ctx *c)
{
    size_t per = c->o->queries;
    uint64_t s = SE_SEED;
    c->nq = per * SE_MAX_WORDS;
    if ((c->q = calloc(c->nq, sizeof(*c->q))) == NULL) {
        return -1;
    }
    for (unsigned k = 1; k <= SE_MAX_WORDS; k++) {
        for (size_t i = 0; i < per; i++) {
            struct squery *q = &c->q[(k - 1) * per + i];
            uint32_t pick[SE_MAX_WORDS];
            unsigned got = 0;
            for (unsigned tries = 0; got < k; tries++) {
                if (tries > 1000000) {
                    fprintf(stderr, "bench: search: cannot draw %u-word queries\n", k);
                    return -1;
                }
                const struct sdoc *d = &c->c.d[rnd(&s) % c->c.n];
                got = 0;
                for (unsigned a = 0; d->ntok > 0 && got < k && a < 64; a++) {
                    uint32_t t = d->tok[rnd(&s) % d->ntok];
                    int dup = c->v.df[t] < 2;
                    for (unsigned j = 0; j < got && !dup; j++) {
                        dup = pick[j] == t;
                    }
                    if (!dup) {
                        pick[got++] = t;
                    }
                }
            }
            q->k = k;
            q->min_df = UINT32_MAX;
            size_t at = 0;
            for (unsigned j = 0; j < k; j++) {
                at += (size_t)snprintf(q->text + at, sizeof(q->text) - at, "%s%s", j ? " " : "",
                                       c->v.word[pick[j]]);
                if (c->v.df[pick[j]] < q->min_df) {
                    q->min_df = c->v.df[pick[j]];
                }
            }
        }
    }
    return 0;
}

/* veil's own tokenizer over the corpus: its time alone, the (document, stem) pairs it makes
 * and each stem's documents; and the index entries veil writes for them when the documents
 * come `batch` to a write: per stem, one entry per batch for every 128 of its documents
 * (VL_SEARCH_ITEMS_MAX; an entry also ends at 512 bytes of plaintext, which 128 documents
 * of one batch do not reach here). */
static int stems_count(struct se_ctx *c, size_t batch, double *secs, unsigned long long *pairs,
                       unsigned long long *entries)
{
    double t = 0;
    *pairs = *entries = 0;
    for (size_t di = 0; di < c->c.n; di++) {
        struct vl_words w;
        const struct sdoc *d = &c->c.d[di];
        uint32_t b = (uint32_t)(di / batch) + 1;
        double t0 = bench_now();
        veil_err e = vl_words_of("english", d->text, d->len, SE_STEMS_MAX, &w);
        t += bench_now() - t0;
        if (e != VEIL_OK) {
            fprintf(stderr, "bench: search: veil's tokenizer refused %s: %s\n", d->id,
                    veil_err_name(e));
            vl_words_free(&w);
            return -1;
        }
        *pairs += w.n;
        for (size_t i = 0; i < w.n; i++) {
            long id = vocab_id(&c->stems, w.w[i].stem, w.w[i].len);
            if (id < 0) {
                vl_words_free(&w);
                return -1;
            }
            c->stems.df[id]++;
            if (c->stems.lastb[id] != b) {
                c->stems.lastb[id] = b;
                c->stems.inb[id] = 0;
            }
            if (c->stems.inb[id]++ % VL_SEARCH_ITEMS_MAX == 0) {
                c->stems.ent[id]++;
                (*entries)++;
            }
        }
        vl_words_free(&w);
    }
    *secs = t;
    return 0;
}

/* The index entries a veil search for q reads (every entry of each of its stems), and the
 * documents they hold in all (*docs). */
static unsigned long long query_entries(struct se_ctx *c, const char *q, unsigned long long *docs)
{
    struct vl_words w;
    unsigned long long n = 0;
    *docs = 0;
    if (vl_words_of("english", q, strlen(q), 64, &w) == VEIL_OK) {
        for (size_t i = 0; i < w.n; i++) {
            size_t h = (size_t)fnv(w.w[i].stem, w.w[i].len) & (c->stems.nslot - 1);
            while (c->stems.slot[h] != 0) {
                uint32_t id = c->stems.slot[h] - 1;
                if (strcmp(c->stems.word[id], w.w[i].stem) == 0) {
                    n += c->stems.ent[id];
                    *docs += c->stems.df[id];
                    break;
                }
                h = (h + 1) & (c->stems.nslot - 1);
            }
        }
    }
    vl_words_free(&w);
    return n;
}

/* ---- the loads' input, made before any timing ---- */

static int append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t nc = *cap ? *cap : 1 << 16;
        while (*len + n + 1 > nc) {
            nc *= 2;
        }
        char *b = realloc(*buf, nc);
        if (b == NULL) {
            return -1;
        }
        *buf = b;
        *cap = nc;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 0;
}

/* COPY text format: backslash, newline, carriage return and tab escaped. */
static int copy_field(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && s[j] != '\\' && s[j] != '\n' && s[j] != '\r' && s[j] != '\t') {
            j++;
        }
        if (j > i && append(buf, len, cap, s + i, j - i) != 0) {
            return -1;
        }
        if (j < n) {
            const char *esc = s[j] == '\\'   ? "\\\\"
                              : s[j] == '\n' ? "\\n"
                              : s[j] == '\r' ? "\\r"
                                             : "\\t";
            if (append(buf, len, cap, esc, 2) != 0) {
                return -1;
            }
            j++;
        }
        i = j;
    }
    return 0;
}

static int inputs_make(struct se_ctx *c)
{
    size_t b = c->o->batch;
    c->nbatch = (c->c.n + b - 1) / b;
    c->nd = calloc(c->nbatch, sizeof(*c->nd));
    c->cp = calloc(c->nbatch, sizeof(*c->cp));
    c->ndlen = calloc(c->nbatch, sizeof(size_t));
    c->cplen = calloc(c->nbatch, sizeof(size_t));
    c->nlines = calloc(c->nbatch, sizeof(size_t));
    if (c->nd == NULL || c->cp == NULL || c->ndlen == NULL || c->cplen == NULL ||
        c->nlines == NULL) {
        return -1;
    }
    for (size_t k = 0; k < c->nbatch; k++) {
        size_t ndcap = 0, cpcap = 0;
        for (size_t i = k * b; i < c->c.n && i < (k + 1) * b; i++) {
            const struct sdoc *d = &c->c.d[i];
            json_t *line = json_pack("{s:s, s:{s:s, s:s#}}", "id", d->id, "doc", "path", d->id,
                                     "body", d->text, (int)d->len);
            char *s = line != NULL ? json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
            json_decref(line);
            if (s == NULL || append(&c->nd[k], &c->ndlen[k], &ndcap, s, strlen(s)) != 0 ||
                append(&c->nd[k], &c->ndlen[k], &ndcap, "\n", 1) != 0) {
                free(s);
                fprintf(stderr, "bench: search: cannot encode %s as JSON\n", d->id);
                return -1;
            }
            free(s);
            if (copy_field(&c->cp[k], &c->cplen[k], &cpcap, d->id, strlen(d->id)) != 0 ||
                append(&c->cp[k], &c->cplen[k], &cpcap, "\t", 1) != 0 ||
                copy_field(&c->cp[k], &c->cplen[k], &cpcap, d->text, d->len) != 0 ||
                append(&c->cp[k], &c->cplen[k], &cpcap, "\n", 1) != 0) {
                return -1;
            }
            c->nlines[k]++;
        }
    }
    return 0;
}

/* ---- PostgreSQL ---- */

static int pg_cmd(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    return ok ? 0 : pgfail(pg, sql);
}

/* The first column of the first row of sql as a number, or -1. */
static double pg_num(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    double v = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0)) {
        v = strtod(PQgetvalue(r, 0, 0), NULL);
    } else {
        pgfail(pg, sql);
    }
    PQclear(r);
    return v;
}

static int pg_open(struct se_ctx *c)
{
    c->pg = PQconnectdb(c->o->pg);
    if (PQstatus(c->pg) != CONNECTION_OK) {
        return pgfail(c->pg, "connect");
    }
    int v = PQserverVersion(c->pg);
    char ver[32];
    snprintf(ver, sizeof(ver), "%d.%d", v / 10000, v % 10000);
    emit_s(c, "pg_version", ver);
    /* quiet: plainto_tsquery of stop words only says so in a NOTICE */
    if (pg_cmd(c->pg, "SET client_min_messages = warning") != 0 ||
        pg_cmd(c->pg, "DROP TABLE IF EXISTS docs") != 0 ||
        pg_cmd(c->pg,
               "CREATE TABLE docs(id text PRIMARY KEY, body text NOT NULL,"
               " tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', body)) STORED)") != 0 ||
        pg_cmd(c->pg, "CREATE INDEX docs_tsv ON docs USING gin(tsv)") != 0) {
        return -1;
    }
    char sc[64] = "?", fs[64] = "?";
    PGresult *r = PQexec(c->pg, "SELECT current_setting('synchronous_commit'),"
                                " current_setting('fsync')");
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        snprintf(sc, sizeof(sc), "%s", PQgetvalue(r, 0, 0));
        snprintf(fs, sizeof(fs), "%s", PQgetvalue(r, 0, 1));
    }
    PQclear(r);
    emit_s(c, "pg_synchronous_commit", sc);
    emit_s(c, "pg_fsync", fs);
    return 0;
}

static double pg_load(struct se_ctx *c, double *copy_s, double *vacuum_s)
{
    double t0 = bench_now();
    for (size_t k = 0; k < c->nbatch; k++) {
        PGresult *r = PQexec(c->pg, "COPY docs(id, body) FROM STDIN");
        if (PQresultStatus(r) != PGRES_COPY_IN) {
            PQclear(r);
            return pgfail(c->pg, "COPY");
        }
        PQclear(r);
        if (PQputCopyData(c->pg, c->cp[k], (int)c->cplen[k]) != 1 ||
            PQputCopyEnd(c->pg, NULL) != 1) {
            return pgfail(c->pg, "COPY data");
        }
        int bad = 0;
        while ((r = PQgetResult(c->pg)) != NULL) {
            bad |= PQresultStatus(r) != PGRES_COMMAND_OK;
            PQclear(r);
        }
        if (bad) {
            return pgfail(c->pg, "COPY end");
        }
    }
    double t1 = bench_now();
    if (pg_cmd(c->pg, "VACUUM (ANALYZE) docs") != 0) {
        return -1;
    }
    double t2 = bench_now();
    *copy_s = t1 - t0;
    *vacuum_s = t2 - t1;
    return t2 - t0;
}

static int pg_prepare(struct se_ctx *c)
{
    PGresult *r = PQprepare(c->pg, "q",
                            "SELECT id FROM docs, plainto_tsquery('english', $1) q"
                            " WHERE tsv @@ q ORDER BY ts_rank(tsv, q) DESC LIMIT 10",
                            1, NULL);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    r = PQprepare(c->pg, "n",
                  "SELECT count(*) FROM docs WHERE tsv @@ plainto_tsquery('english', $1)", 1, NULL);
    ok = ok && PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok ? 0 : pgfail(c->pg, "prepare");
}

/* ---- veil ---- */

static int veil_open(struct se_ctx *c)
{
    veil_status st;
    veil_err e;
    if ((e = veil_vault_open(c->o->data, &c->vault, &st)) != VEIL_OK) {
        return vfail("open", e, &st);
    }
    if ((e = veil_session_authenticate(c->vault, c->o->token, &c->clerk, &st)) != VEIL_OK) {
        return vfail("token", e, &st);
    }
    snprintf(c->tenant, sizeof(c->tenant), "%s", veil_session_tenant(c->clerk));
    if ((e = veil_session_open(c->vault, c->tenant, "admin", &c->admin, &st)) != VEIL_OK) {
        return vfail("admin session", e, &st);
    }
    return 0;
}

static void veil_close(struct se_ctx *c)
{
    veil_session_free(c->admin);
    veil_session_free(c->clerk);
    veil_vault_close(c->vault);
    c->admin = c->clerk = NULL;
    c->vault = NULL;
}

static double veil_load(struct se_ctx *c)
{
    veil_status st;
    double t0 = bench_now(), tick = t0;
    size_t done = 0;
    for (size_t k = 0; k < c->nbatch; k++) {
        char *out = NULL;
        veil_err e = veil_bulk(c->clerk, "kdocs", c->nd[k], c->ndlen[k], &out, &st);
        if (e != VEIL_OK) {
            return vfail("bulk", e, &st);
        }
        size_t good = 0;
        for (const char *q = out; (q = strstr(q, "\"status\":")) != NULL;) {
            q += 9;
            good += strncmp(q, "200", 3) == 0 || strncmp(q, "201", 3) == 0;
        }
        if (good != c->nlines[k]) {
            fprintf(stderr, "bench: search: bulk: %zu of %zu lines stored: %.400s\n", good,
                    c->nlines[k], out);
            veil_free(out);
            return -1;
        }
        veil_free(out);
        done += c->nlines[k];
        double now = bench_now();
        if (now - tick >= 30) {
            progress("veil: %zu of %zu documents, %.0f docs/s so far", done, c->c.n,
                     (double)done / (now - t0));
            tick = now;
        }
    }
    return bench_now() - t0;
}

/* Bytes of the pages of the tables named by `where` (over sqlite_schema) in an SQLite file. */
static double sq_bytes(const char *path, const char *where)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    char sql[512];
    double v = -1;
    snprintf(sql, sizeof(sql),
             "SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name IN"
             " (SELECT name FROM sqlite_schema WHERE %s)",
             where);
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) {
        v = sqlite3_column_double(s, 0);
    } else {
        fprintf(stderr, "bench: search: sqlite: %s: %s\n", path, sqlite3_errmsg(db));
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

static long long db_bytes(const char *path)
{
    char wal[4200];
    snprintf(wal, sizeof(wal), "%s-wal", path);
    return file_bytes(path) + file_bytes(wal);
}

/* ---- queries ---- */

struct answer {
    char *id[SE_LIMIT];
    int n;
};

static void answer_free(struct answer *a)
{
    for (int i = 0; i < a->n; i++) {
        free(a->id[i]);
    }
    a->n = 0;
}

static int veil_q(struct se_ctx *c, const struct squery *q, double *secs, struct answer *a)
{
    char body[SE_QUERY_MAX + 96];
    veil_status st;
    char *out = NULL;
    int n = snprintf(body, sizeof(body),
                     "{\"match\":{\"body\":\"%s\"},\"limit\":%d,\"select\":[\"path\"]}", q->text,
                     SE_LIMIT);
    double t0 = bench_now();
    veil_err e = veil_query(c->clerk, "kdocs", body, (size_t)n, &out, &st);
    *secs = bench_now() - t0;
    if (e != VEIL_OK) {
        fprintf(stderr, "bench: search: query %s\n", body);
        return vfail("query", e, &st);
    }
    if (a != NULL) {
        json_error_t err;
        json_t *j = json_loads(out, 0, &err);
        json_t *docs = json_object_get(j, "docs"), *d;
        size_t i;
        a->n = 0;
        json_array_foreach (docs, i, d) {
            const char *id = json_string_value(json_object_get(d, "id"));
            if (id != NULL && a->n < SE_LIMIT) {
                a->id[a->n++] = strdup(id);
            }
        }
        if (!json_is_array(docs)) {
            fprintf(stderr, "bench: search: veil's answer has no docs: %.300s\n", out);
            json_decref(j);
            veil_free(out);
            return -1;
        }
        json_decref(j);
    }
    veil_free(out);
    return 0;
}

static int pg_q(struct se_ctx *c, const struct squery *q, double *secs, struct answer *a)
{
    const char *v[1] = {q->text};
    double t0 = bench_now();
    PGresult *r = PQexecPrepared(c->pg, "q", 1, v, NULL, NULL, 0);
    *secs = bench_now() - t0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        PQclear(r);
        return pgfail(c->pg, "query");
    }
    if (a != NULL) {
        a->n = 0;
        for (int i = 0; i < PQntuples(r) && i < SE_LIMIT; i++) {
            a->id[a->n++] = strdup(PQgetvalue(r, i, 0));
        }
    }
    PQclear(r);
    return 0;
}

static long long veil_count(struct se_ctx *c, const struct squery *q, double *secs)
{
    char body[SE_QUERY_MAX + 96];
    veil_status st;
    char *out = NULL;
    long long n = -1;
    int len =
        snprintf(body, sizeof(body),
                 "{\"match\":{\"body\":\"%s\"},\"metrics\":{\"n\":{\"count\":\"*\"}}}", q->text);
    double t0 = bench_now();
    veil_err e = veil_aggregate(c->admin, "kdocs", body, (size_t)len, &out, &st);
    *secs = bench_now() - t0;
    if (e != VEIL_OK) {
        return -1;
    }
    json_error_t err;
    json_t *j = json_loads(out, 0, &err);
    json_t *g = json_array_get(json_object_get(j, "groups"), 0);
    if (json_is_integer(json_object_get(g, "n"))) {
        n = json_integer_value(json_object_get(g, "n"));
    } else if (g == NULL && json_is_array(json_object_get(j, "groups"))) {
        n = 0;
    }
    json_decref(j);
    veil_free(out);
    return n;
}

static long long pg_count(struct se_ctx *c, const struct squery *q, double *secs)
{
    const char *v[1] = {q->text};
    double t0 = bench_now();
    PGresult *r = PQexecPrepared(c->pg, "n", 1, v, NULL, NULL, 0);
    *secs = bench_now() - t0;
    long long n = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    }
    PQclear(r);
    return n;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile p (0..100) of t[0..n), sorted in place. */
static double pct(double *t, size_t n, double p)
{
    qsort(t, n, sizeof(*t), cmp_dbl);
    if (p == 50) {
        return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
    }
    size_t r = (size_t)(p / 100 * (double)n + 0.999999);
    return t[r > 0 ? r - 1 : 0];
}

static int queries_run(struct se_ctx *c)
{
    struct answer va = {0}, pa = {0};
    double s;
    size_t *perm = bench_perm(c->nq, SE_SEED);
    int rc = -1;
    if (perm == NULL) {
        return -1;
    }
    progress("warm-up: %zu queries on each side", c->nq);
    for (size_t i = 0; i < c->nq; i++) {
        if (veil_q(c, &c->q[i], &s, NULL) != 0 || pg_q(c, &c->q[i], &s, NULL) != 0) {
            goto out;
        }
    }
    progress("timed: %zu queries on each side, one at a time, alternating", c->nq);
    for (size_t x = 0; x < c->nq; x++) {
        struct squery *q = &c->q[perm[x]];
        int first_veil = x % 2 == 0;
        for (int side = 0; side < 2; side++) {
            int is_veil = side == 0 ? first_veil : !first_veil;
            if (is_veil ? veil_q(c, q, &q->veil_s, &va) : pg_q(c, q, &q->pg_s, &pa)) {
                goto out;
            }
        }
        q->veil_hits = va.n;
        q->pg_hits = pa.n;
        q->overlap = 0;
        for (int i = 0; i < va.n; i++) {
            for (int j = 0; j < pa.n; j++) {
                if (strcmp(va.id[i], pa.id[j]) == 0) {
                    q->overlap++;
                    break;
                }
            }
        }
        answer_free(&va);
        answer_free(&pa);
    }
    /* The matches of each query counted on both sides, each count timed too: veil's count
     * aggregate runs the same match (every entry read and opened, the trusted lookups,
     * BM25) without fetching documents, PostgreSQL's count(*) the same tsv @@ q without
     * ts_rank; what the query takes beyond is ranking and the top documents. */
    progress("counting matches on both sides");
    for (size_t x = 0; x < c->nq; x++) {
        struct squery *q = &c->q[perm[x]];
        q->veil_matches = veil_count(c, q, &q->veil_match_s);
        q->pg_matches = pg_count(c, q, &q->pg_count_s);
        q->entries = query_entries(c, q->text, &q->entry_docs);
    }
    rc = 0;
out:
    answer_free(&va);
    answer_free(&pa);
    free(perm);
    return rc;
}

static void queries_report(struct se_ctx *c)
{
    size_t per = c->o->queries;
    double *tv = malloc(per * sizeof(double)), *tp = malloc(per * sizeof(double));
    double *df = malloc(per * sizeof(double)), *tm = malloc(per * sizeof(double));
    double *tc = malloc(per * sizeof(double));
    if (tv == NULL || tp == NULL || df == NULL || tm == NULL || tc == NULL) {
        free(tv);
        free(tp);
        free(df);
        free(tm);
        free(tc);
        return;
    }
    for (unsigned k = 1; k <= SE_MAX_WORDS; k++) {
        double vh = 0, ph = 0, vm = 0, pm = 0, ov = 0, ent = 0, edocs = 0, mv = 0, mp = 0;
        size_t vz = 0, pz = 0, vmn = 0, pmn = 0;
        char key[48];
        for (size_t i = 0; i < per; i++) {
            const struct squery *q = &c->q[(k - 1) * per + i];
            tv[i] = q->veil_s;
            tp[i] = q->pg_s;
            tm[i] = q->veil_match_s;
            tc[i] = q->pg_count_s;
            df[i] = q->min_df;
            mv += q->veil_s;
            mp += q->pg_s;
            vh += q->veil_hits;
            ph += q->pg_hits;
            vz += q->veil_hits == 0;
            pz += q->pg_hits == 0;
            ov += q->overlap;
            ent += (double)q->entries;
            edocs += (double)q->entry_docs;
            if (q->veil_matches >= 0) {
                vm += (double)q->veil_matches;
                vmn++;
            }
            if (q->pg_matches >= 0) {
                pm += (double)q->pg_matches;
                pmn++;
            }
        }
#define K(name) (snprintf(key, sizeof(key), "q%u_%s", k, name), key)
        emit(c, K("veil_med_s"), pct(tv, per, 50));
        emit(c, K("veil_p99_s"), pct(tv, per, 99));
        emit(c, K("pg_med_s"), pct(tp, per, 50));
        emit(c, K("pg_p99_s"), pct(tp, per, 99));
        emit(c, K("veil_mean_s"), mv / (double)per);
        emit(c, K("pg_mean_s"), mp / (double)per);
        emit(c, K("veil_hits"), vh / (double)per);
        emit(c, K("pg_hits"), ph / (double)per);
        emit(c, K("veil_zero"), (double)vz);
        emit(c, K("pg_zero"), (double)pz);
        emit(c, K("veil_matches"), vmn ? vm / (double)vmn : -1);
        emit(c, K("pg_matches"), pmn ? pm / (double)pmn : -1);
        emit(c, K("overlap"), ov / (double)per);
        emit(c, K("entries"), ent / (double)per);
        emit(c, K("entry_docs"), edocs / (double)per);
        emit(c, K("min_df_med"), pct(df, per, 50));
        emit(c, K("veil_match_med_s"), pct(tm, per, 50));
        emit(c, K("pg_count_med_s"), pct(tc, per, 50));
#undef K
        progress("%u word(s): veil median %.2f ms, p99 %.2f ms; PostgreSQL median %.2f ms, "
                 "p99 %.2f ms; hits (of %d) veil %.1f, PostgreSQL %.1f; matches veil %.0f, "
                 "PostgreSQL %.0f; top-%d overlap %.1f; veil reads %.0f index entries a query; "
                 "counting alone (medians): veil %.2f ms, PostgreSQL %.2f ms",
                 k, pct(tv, per, 50) * 1e3, pct(tv, per, 99) * 1e3, pct(tp, per, 50) * 1e3,
                 pct(tp, per, 99) * 1e3, SE_LIMIT, vh / (double)per, ph / (double)per,
                 vmn ? vm / (double)vmn : -1, pmn ? pm / (double)pmn : -1, SE_LIMIT,
                 ov / (double)per, ent / (double)per, pct(tm, per, 50) * 1e3,
                 pct(tc, per, 50) * 1e3);
    }
    /* veil's matching (the count aggregate) against the documents in the entries it reads
     * (each opened and looked up in trusted state): t = a + b documents (least squares) */
    double sx = 0, sy = 0, sxx = 0, sxy = 0, syy = 0, n = (double)c->nq;
    for (size_t i = 0; i < c->nq; i++) {
        double x = (double)c->q[i].entry_docs, y = c->q[i].veil_match_s;
        sx += x;
        sy += y;
        sxx += x * x;
        sxy += x * y;
        syy += y * y;
    }
    double den = n * sxx - sx * sx;
    if (den > 0) {
        double b = (n * sxy - sx * sy) / den, a = (sy - b * sx) / n;
        double r = (n * sxy - sx * sy) / sqrt(den * (n * syy - sy * sy));
        emit(c, "fit_a_s", a);
        emit(c, "fit_b_s", b);
        emit(c, "fit_r2", r * r);
        progress("veil matching = %.3f ms + %.3f us x documents in the entries read (r^2 %.2f)",
                 a * 1e3, b * 1e6, r * r);
    }
    free(tv);
    free(tp);
    free(df);
    free(tm);
    free(tc);
}

/* ---- the phase ---- */

static void ctx_free(struct se_ctx *c)
{
    for (size_t i = 0; i < c->c.n; i++) {
        free(c->c.d[i].id);
        free(c->c.d[i].text);
        free(c->c.d[i].tok);
    }
    free(c->c.d);
    for (size_t k = 0; k < c->nbatch; k++) {
        free(c->nd ? c->nd[k] : NULL);
        free(c->cp ? c->cp[k] : NULL);
    }
    free(c->nd);
    free(c->cp);
    free(c->ndlen);
    free(c->cplen);
    free(c->nlines);
    free(c->q);
    vocab_free(&c->v);
    vocab_free(&c->stems);
    veil_close(c);
    if (c->pg != NULL) {
        PQfinish(c->pg);
    }
}

int bench_search(const struct bench_opts *o)
{
    struct se_ctx c;
    int rc = -1;
    char cloud[4200], trusted[4200];
    memset(&c, 0, sizeof(c));
    if (o->corpus == NULL || o->data == NULL || o->token == NULL || o->pg == NULL ||
        o->out == NULL) {
        fprintf(stderr, "bench: search needs --corpus, --data, --token, --pg and --out\n");
        return -1;
    }
    c.o = o;
    if ((c.out = fopen(o->out, "a")) == NULL) {
        fprintf(stderr, "bench: search: cannot write %s\n", o->out);
        return -1;
    }
    snprintf(cloud, sizeof(cloud), "%s/cloud/cloud.db", o->data);
    snprintf(trusted, sizeof(trusted), "%s/trusted.db", o->data);

    progress("reading the corpus under %s", o->corpus);
    double t0 = bench_now();
    if (corpus_load(&c) != 0) {
        goto out;
    }
    progress("%zu documents (%.1f MB of text) from %zu .gz files in %.1f s; left out: %zu "
             "binary or not UTF-8, %zu empty, %zu unreadable, %zu over --max-docs",
             c.c.n, (double)c.c.bytes / 1e6, c.c.files, bench_now() - t0, c.c.binary, c.c.empty,
             c.c.unread, c.c.capped);
    emit(&c, "docs", (double)c.c.n);
    emit(&c, "files", (double)c.c.files);
    emit(&c, "binary", (double)c.c.binary);
    emit(&c, "empty", (double)c.c.empty + (double)c.c.unread);
    emit(&c, "capped", (double)c.c.capped);
    emit(&c, "text_bytes", (double)c.c.bytes);
    emit(&c, "batch", (double)o->batch);
    emit(&c, "queries", (double)o->queries);
    emit(&c, "limit", SE_LIMIT);

    if (words_split(&c) != 0 || queries_make(&c) != 0) {
        goto out;
    }
    size_t eligible = 0;
    for (size_t i = 0; i < c.v.n; i++) {
        eligible += c.v.df[i] >= 2;
    }
    emit(&c, "query_words", (double)eligible);
    progress("queries drawn from %zu plain words found in 2+ documents, e.g. \"%s\", \"%s\", "
             "\"%s\"",
             eligible, c.q[0].text, c.q[o->queries].text, c.q[2 * o->queries].text);
    double tokv = 0;
    unsigned long long pairs = 0, entries = 0;
    /* veil_bulk writes a call's lines in batches of 256 (write.c) */
    size_t vbatch = o->batch < 256 ? o->batch : 256;
    if (stems_count(&c, vbatch, &tokv, &pairs, &entries) != 0 || inputs_make(&c) != 0) {
        goto out;
    }
    emit(&c, "tok_veil_s", tokv);
    emit(&c, "veil_entries", (double)entries);
    emit(&c, "veil_pairs", (double)pairs);
    emit(&c, "veil_stems", (double)c.stems.n);

    /* PostgreSQL */
    if (pg_open(&c) != 0) {
        goto out;
    }
    progress("PostgreSQL: COPY of %zu rows a statement, %zu documents", o->batch, c.c.n);
    double copy_s = 0, vac_s = 0, pl = pg_load(&c, &copy_s, &vac_s);
    if (pl < 0) {
        goto out;
    }
    progress("PostgreSQL load %.1f s (COPY %.1f s, VACUUM (ANALYZE) %.2f s): %.0f docs/s", pl,
             copy_s, vac_s, (double)c.c.n / pl);
    emit(&c, "load_pg_s", pl);
    emit(&c, "load_pg_copy_s", copy_s);
    emit(&c, "load_pg_vacuum_s", vac_s);
    emit(&c, "pg_gin_bytes", pg_num(c.pg, "SELECT pg_relation_size('docs_tsv')"));
    emit(&c, "pg_tsv_bytes", pg_num(c.pg, "SELECT sum(pg_column_size(tsv)) FROM docs"));
    emit(&c, "pg_body_bytes", pg_num(c.pg, "SELECT sum(pg_column_size(body)) FROM docs"));
    emit(&c, "pg_total_bytes", pg_num(c.pg, "SELECT pg_total_relation_size('docs')"));
    emit(&c, "pg_shared_buffers_mb",
         pg_num(c.pg, "SELECT setting::bigint * 8 / 1024 FROM pg_settings"
                      " WHERE name = 'shared_buffers'"));
    /* to_tsvector alone: over the stored bodies, less reading them */
    double a0 = bench_now();
    double nlex = pg_num(c.pg, "SELECT sum(length(to_tsvector('english', body))) FROM docs");
    double a1 = bench_now();
    double nch = pg_num(c.pg, "SELECT sum(length(body)) FROM docs");
    double a2 = bench_now();
    if (nlex < 0 || nch < 0) {
        goto out;
    }
    emit(&c, "tok_pg_s", (a1 - a0) - (a2 - a1));
    emit(&c, "pg_entries", nlex);

    /* veil */
    long long store0 = db_bytes(cloud), trusted0 = db_bytes(trusted);
    if (veil_open(&c) != 0) {
        goto out;
    }
    progress("veil: veil_bulk of %zu lines a call, %zu documents", o->batch, c.c.n);
    double vl = veil_load(&c);
    if (vl < 0) {
        goto out;
    }
    progress("veil load %.1f s: %.0f docs/s (its tokenizer alone: %.1f s)", vl, (double)c.c.n / vl,
             tokv);
    emit(&c, "load_veil_s", vl);
    /* sizes, with the WAL checkpointed: the last connection to close does it */
    veil_close(&c);
    emit(&c, "veil_store_growth", (double)(db_bytes(cloud) - store0));
    emit(&c, "veil_trusted_growth", (double)(db_bytes(trusted) - trusted0));
    double kb = sq_bytes(cloud, "name LIKE 'k\\_%' ESCAPE '\\' OR (type = 'index' AND"
                                " tbl_name LIKE 'k\\_%' ESCAPE '\\')");
    double wb = sq_bytes(trusted, "tbl_name = 'words'");
    /* reservations of writes in flight ("holes" in older trusted states) */
    double hb = sq_bytes(trusted, "tbl_name IN ('reserved', 'holes')");
    if (kb < 0 || wb < 0 || hb < 0) {
        goto out;
    }
    emit(&c, "veil_kv_bytes", kb);
    emit(&c, "veil_words_bytes", wb);
    emit(&c, "veil_reserved_bytes", hb);
    progress("index bytes a document: veil %.0f (store key-value table %.0f, trusted words "
             "%.0f, reservations %.0f); PostgreSQL see the report",
             (kb + wb + hb) / (double)c.c.n, kb / (double)c.c.n, wb / (double)c.c.n,
             hb / (double)c.c.n);
    if (veil_open(&c) != 0 || pg_prepare(&c) != 0 || queries_run(&c) != 0) {
        goto out;
    }
    queries_report(&c);
    rc = 0;
out:
    ctx_free(&c);
    fclose(c.out);
    return rc;
}

#else /* !BENCH_HAVE_LIBPQ */

int bench_search(const struct bench_opts *o)
{
    (void)o;
    fprintf(stderr, "bench: search: bench_core was built without libpq (libpq-dev): run "
                    "scripts/deps.sh bench, then meson setup --reconfigure on the build "
                    "directory, or set VEIL_BENCH_SEARCH=0\n");
    return -1;
}

#endif
