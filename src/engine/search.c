/*
 * search.c: the `search` tactic in the engine (docs/design.md "Text search").
 *
 * Writing: each search field's text becomes its distinct stems (words.c). Per stem, the
 * documents of a write batch that have it (one, for a single put; up to 128 an entry in a
 * bulk batch) share one index entry (label, sealed value) in the key-value space of the
 * field's store, at the next counter of the word, reserved in the trusted state. The entry
 * names each document's write by its row sequence number, so replacing or deleting a
 * document writes nothing for its old words: a document of an entry counts only while the
 * trusted state says its sequence number is the current one of a live document. The store
 * therefore never learns which words a document held, nor that a replaced document's
 * entries went stale.
 *
 * Searching: per word, the labels of entries 0..count-1 are fetched and opened. An entry
 * that is missing must be a hole (a write still in flight, or one that failed); one that
 * does not open, or any other missing one, means the store dropped, altered or moved
 * entries: an integrity violation. Live entries give per document the word counts, and the
 * trusted state gives each document's length and each field's totals, so documents are
 * ranked by BM25 (k1 = 1.2, b = 0.75) without the store learning anything more.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "engine/engine.h"
#include "tactics/tactics.h"
#include "util/log.h"

#define BM25_K1 1.2
#define BM25_B 0.75
#define MATCH_MAX_TEXT 4096              /* bytes of a match's words */
#define MATCH_MAX_ENTRIES (16u << 20)    /* entries one search may read */

/* ---- writing ---- */

void vl_docwords_free(struct vl_docwords *d)
{
    for (size_t i = 0; i < d->nfields; i++) {
        vl_words_free(&d->words[i]);
    }
    free(d->words);
    free(d->w);
    vl_buf_free(&d->slen);
    memset(d, 0, sizeof(*d));
}

veil_err vl_docwords_of(const struct vl_coll *c, const json_t *doc, struct vl_docwords *out,
                        veil_status *st)
{
    veil_err rc = VEIL_OK;
    const struct vl_policy *p = c->policy;
    memset(out, 0, sizeof(*out));
    vl_buf_init(&out->slen, SIZE_MAX);
    if ((out->words = calloc(p->nfields ? p->nfields : 1, sizeof(*out->words))) == NULL) {
        return vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
    }
    out->nfields = p->nfields;
    size_t total = 0;
    for (size_t i = 0; i < p->nfields && rc == VEIL_OK; i++) {
        const struct vl_fctx *fc = &c->fields[i];
        if (!(fc->f->tactics & VL_TAC_SEARCH)) {
            continue;
        }
        const json_t *val = vl_json_path_get(doc, fc->f);
        if (!json_is_string(val)) {
            continue; /* absent or null: the document has no words here */
        }
        rc = vl_words_of(fc->f->language, json_string_value(val), json_string_length(val),
                         VL_DOC_MAX_WORDS, &out->words[i]);
        if (rc == VEIL_ERR_TOO_LARGE) {
            return vl_status_set(st, VEIL_ERR_TOO_LARGE, fc->path,
                                 "%s holds more than %d distinct words", fc->path,
                                 VL_DOC_MAX_WORDS);
        }
        if (rc != VEIL_OK) {
            return vl_status_set(st, VEIL_ERR_INVALID_DOCUMENT, fc->path,
                                 "%s is not text that can be indexed", fc->path);
        }
        total += out->words[i].n;
        if (out->words[i].total > 0) {
            if ((rc = vl_buf_put_u32(&out->slen, fc->ordinal)) == VEIL_OK) {
                rc = vl_buf_put_u32(&out->slen, out->words[i].total);
            }
        }
    }
    if (rc != VEIL_OK) {
        return vl_status_set(st, rc, NULL, "out of memory");
    }
    if (total > 0 && (out->w = calloc(total, sizeof(*out->w))) == NULL) {
        return vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
    }
    for (size_t i = 0; i < p->nfields; i++) {
        const struct vl_fctx *fc = &c->fields[i];
        for (size_t k = 0; k < out->words[i].n; k++) {
            struct vl_dword *w = &out->w[out->n++];
            w->fc = fc;
            w->stem = out->words[i].w[k].stem;
            w->len = out->words[i].w[k].len;
            w->tf = out->words[i].w[k].tf;
            vl_search_wkey(w->wkey, fc->search_key, w->stem, w->len);
        }
    }
    return VEIL_OK;
}

void vl_batch_entries_free(struct vl_batch_entries *b)
{
    free(b->kv);
    free(b->store);
    free(b->owner);
    free(b->arena);
    memset(b, 0, sizeof(*b));
}

/* One (word, document) of a batch. */
struct bword {
    const struct vl_dword *w;
    size_t doc;
    uint64_t seq;
};

static int bword_cmp(const void *a, const void *b)
{
    const struct bword *x = a, *y = b;
    int c = memcmp(x->w->wkey, y->w->wkey, VL_WKEY_BYTES);
    if (c != 0) {
        return c;
    }
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int res_cmp(const void *a, const void *b)
{
    const struct vl_wordres *x = a, *y = b;
    return x->res < y->res ? -1 : x->res > y->res;
}

veil_err vl_search_batch(veil_vault *v, const struct vl_coll *c,
                         const struct vl_docwords *const *words, const uint64_t *seqs,
                         size_t ndocs, struct vl_batch_entries *out)
{
    veil_err rc = VEIL_OK;
    size_t nw = 0, ne = 0;
    struct bword *bw = NULL;
    size_t *start = NULL, *len = NULL;
    struct vl_wordres *res = NULL;
    struct vl_search_item *items = NULL;
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < ndocs; i++) {
        nw += words[i] != NULL ? words[i]->n : 0;
    }
    if (nw == 0) {
        return VEIL_OK;
    }
    /* Every (word, document), by word, then by sequence number. */
    bw = malloc(nw * sizeof(*bw));
    items = malloc(nw * sizeof(*items));
    start = malloc(nw * sizeof(*start));
    len = malloc(nw * sizeof(*len));
    res = calloc(nw, sizeof(*res));
    if (bw == NULL || items == NULL || start == NULL || len == NULL || res == NULL) {
        rc = VEIL_ERR_INTERNAL;
        goto out;
    }
    nw = 0;
    for (size_t i = 0; i < ndocs; i++) {
        for (size_t k = 0; words[i] != NULL && k < words[i]->n; k++) {
            bw[nw].w = &words[i]->w[k];
            bw[nw].doc = i;
            bw[nw].seq = seqs[i];
            nw++;
        }
    }
    qsort(bw, nw, sizeof(*bw), bword_cmp);
    for (size_t i = 0; i < nw; i++) {
        items[i].seq = bw[i].seq;
        items[i].tf = bw[i].w->tf;
    }
    /* Entries: per word, its documents in runs that fit one entry each. */
    for (size_t i = 0; i < nw;) {
        size_t j = i + 1;
        while (j < nw && memcmp(bw[j].w->wkey, bw[i].w->wkey, VL_WKEY_BYTES) == 0) {
            j++;
        }
        for (size_t at = i; at < j;) {
            size_t k = vl_search_fit(items + at, j - at);
            start[ne] = at;
            len[ne] = k;
            memcpy(res[ne].wkey, bw[at].w->wkey, VL_WKEY_BYTES);
            res[ne].res = bw[at].seq; /* owned by the write of its first document */
            ne++;
            at += k;
        }
        i = j;
    }
    /* The reservation wants each write's entries together; the order of counters within a
     * word does not matter. Keep the entry index alongside. */
    size_t *order = malloc(ne * sizeof(*order));
    struct vl_wordres *sorted = malloc(ne * sizeof(*sorted));
    if (order == NULL || sorted == NULL) {
        free(order);
        free(sorted);
        rc = VEIL_ERR_INTERNAL;
        goto out;
    }
    for (size_t e = 0; e < ne; e++) {
        sorted[e] = res[e];
        sorted[e].counter = e; /* carries the entry index through the sort */
    }
    qsort(sorted, ne, sizeof(*sorted), res_cmp);
    for (size_t e = 0; e < ne; e++) {
        order[e] = (size_t)sorted[e].counter;
    }
    rc = vl_trusted_words_reserve(v->trusted, c->tenant_id, c->name, sorted, ne);
    for (size_t e = 0; rc == VEIL_OK && e < ne; e++) {
        res[order[e]].counter = sorted[e].counter;
        res[order[e]].epoch = sorted[e].epoch;
    }
    free(order);
    free(sorted);
    if (rc != VEIL_OK) {
        goto out;
    }
    out->kv = calloc(ne, sizeof(*out->kv));
    out->store = calloc(ne, sizeof(*out->store));
    out->owner = calloc(ne, sizeof(*out->owner));
    out->arena = malloc(ne * (VL_SEARCH_LABEL_BYTES + VL_SEARCH_VALUE_MAX));
    if (out->kv == NULL || out->store == NULL || out->owner == NULL || out->arena == NULL) {
        rc = VEIL_ERR_INTERNAL;
        goto out;
    }
    for (size_t e = 0; e < ne; e++) {
        const struct vl_dword *w = bw[start[e]].w;
        struct vl_search_word sw;
        uint8_t *label = out->arena + e * (VL_SEARCH_LABEL_BYTES + VL_SEARCH_VALUE_MAX);
        uint8_t *value = label + VL_SEARCH_LABEL_BYTES;
        size_t vlen = 0;
        vl_search_word(&sw, w->fc->search_key, w->stem, w->len, res[e].epoch);
        vl_search_labels(&sw, res[e].counter, 1, label);
        int r = vl_search_seal(&sw, res[e].counter, items + start[e], len[e], value, &vlen);
        vl_search_word_wipe(&sw);
        if (r != 0) {
            rc = VEIL_ERR_INTERNAL;
            goto out;
        }
        out->kv[e].key.p = label;
        out->kv[e].key.n = VL_SEARCH_LABEL_BYTES;
        out->kv[e].val.p = value;
        out->kv[e].val.n = vlen;
        out->store[e] = w->fc->store;
        out->owner[e] = bw[start[e]].doc;
    }
    out->n = ne;
out:
    if (rc != VEIL_OK) {
        vl_batch_entries_free(out);
    }
    free(bw);
    free(items);
    free(start);
    free(len);
    free(res);
    return rc;
}

/* ---- planning ---- */

void vl_match_free(struct vl_match *m)
{
    for (size_t i = 0; i < m->n; i++) {
        vl_words_free(&m->t[i].words);
    }
    free(m->t);
    memset(m, 0, sizeof(*m));
}

veil_err vl_match_plan(const struct vl_coll *c, const struct vl_role *role, bool aggregate,
                       const json_t *match, struct vl_match *out, veil_status *st)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(match) || json_object_size(match) == 0) {
        return vl_status_set(st, VEIL_ERR_BAD_REQUEST, "match",
                             "match is an object of search fields and their words");
    }
    if ((out->t = calloc(json_object_size(match), sizeof(*out->t))) == NULL) {
        return vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
    }
    const char *path;
    json_t *spec;
    json_object_foreach((json_t *)match, path, spec) {
        const struct vl_fctx *fc = vl_coll_field(c, path);
        struct vl_mterm *t = &out->t[out->n];
        if (fc == NULL || fc->f == NULL) {
            return vl_status_set(st, VEIL_ERR_UNSUPPORTED_QUERY, path,
                                 "%s is not a field of the policy; match needs tactic search",
                                 path);
        }
        if (!vl_plan_may_filter(role, aggregate, path)) {
            return vl_status_set(st, VEIL_ERR_FORBIDDEN, path,
                                 aggregate ? "the role may not search a field it may neither "
                                             "read, group by nor aggregate"
                                           : "the role may not search a field it cannot read");
        }
        if (!(fc->f->tactics & VL_TAC_SEARCH)) {
            return vl_status_set(st, VEIL_ERR_UNSUPPORTED_QUERY, path,
                                 "%s has tactics %s; match needs tactic search", path,
                                 vl_tactics_words(fc->f));
        }
        const json_t *text = spec;
        if (json_is_object(spec)) {
            text = json_object_get(spec, "any");
            t->any = true;
            if (json_object_size(spec) != 1 || text == NULL) {
                return vl_status_set(st, VEIL_ERR_BAD_REQUEST, path,
                                     "a match is \"words\" (all of them) or "
                                     "{\"any\": \"words\"}");
            }
        }
        if (!json_is_string(text) || json_string_length(text) > MATCH_MAX_TEXT) {
            return vl_status_set(st, VEIL_ERR_BAD_REQUEST, path,
                                 "a match is \"words\" (all of them) or {\"any\": \"words\"}, "
                                 "at most %d bytes",
                                 MATCH_MAX_TEXT);
        }
        t->fc = fc;
        t->first = out->nwords;
        out->n++;
        veil_err rc = vl_words_of(fc->f->language, json_string_value(text),
                                  json_string_length(text), VL_MATCH_MAX_WORDS, &t->words);
        if (rc != VEIL_OK || out->nwords + t->words.n > VL_MATCH_MAX_WORDS) {
            return vl_status_set(st, VEIL_ERR_BAD_REQUEST, path,
                                 rc == VEIL_ERR_BAD_REQUEST
                                     ? "the words are not valid text"
                                     : "a match takes at most %d distinct words",
                                 VL_MATCH_MAX_WORDS);
        }
        if (t->words.n == 0) {
            return vl_status_set(st, VEIL_ERR_BAD_REQUEST, path,
                                 "the match for %s holds no words", path);
        }
        out->nwords += t->words.n;
    }
    return VEIL_OK;
}

static int stem_cmp(const void *key, const void *elt)
{
    const struct vl_word *a = key, *b = elt;
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->stem, b->stem, n);
    return c != 0 ? c : (a->len > b->len) - (a->len < b->len);
}

bool vl_match_doc(const struct vl_match *m, const json_t *doc)
{
    for (size_t t = 0; t < m->n; t++) {
        const struct vl_mterm *mt = &m->t[t];
        const json_t *val = vl_json_path_get(doc, mt->fc->f);
        struct vl_words w = {0};
        size_t have = 0;
        if (!json_is_string(val) ||
            vl_words_of(mt->fc->f->language, json_string_value(val), json_string_length(val),
                        VL_DOC_MAX_WORDS, &w) != VEIL_OK) {
            vl_words_free(&w);
            return false;
        }
        for (size_t k = 0; k < mt->words.n; k++) {
            have += bsearch(&mt->words.w[k], w.w, w.n, sizeof(*w.w), stem_cmp) != NULL;
        }
        vl_words_free(&w);
        if (mt->any ? have == 0 : have < mt->words.n) {
            return false;
        }
    }
    return true;
}

/* ---- snapshots (inside sealed cursors) ---- */

veil_err vl_match_snap_put(const struct vl_match *m, const struct vl_match_snap *snap,
                           struct vl_buf *b)
{
    veil_err rc = vl_buf_append(b, m->hash, sizeof(m->hash));
    for (size_t i = 0; rc == VEIL_OK && i < m->nwords; i++) {
        if ((rc = vl_buf_put_u64(b, snap->count[i])) == VEIL_OK) {
            rc = vl_buf_put_u64(b, snap->df[i]);
        }
    }
    for (size_t i = 0; rc == VEIL_OK && i < m->n; i++) {
        if ((rc = vl_buf_put_u64(b, snap->ndocs[i])) == VEIL_OK) {
            rc = vl_buf_put_u64(b, snap->total[i]);
        }
    }
    return rc;
}

int vl_match_snap_get(const struct vl_match *m, struct vl_reader *r, struct vl_match_snap *snap)
{
    const uint8_t *h;
    memset(snap, 0, sizeof(*snap));
    if (vl_read_bytes(r, &h, sizeof(m->hash)) != 0 || memcmp(h, m->hash, sizeof(m->hash))) {
        return -1;
    }
    for (size_t i = 0; i < m->nwords; i++) {
        /* df counts documents, count entries: a bulk entry holds up to
         * VL_SEARCH_ITEMS_MAX documents */
        if (vl_read_u64(r, &snap->count[i]) != 0 || vl_read_u64(r, &snap->df[i]) != 0 ||
            snap->count[i] > MATCH_MAX_ENTRIES ||
            snap->df[i] > snap->count[i] * VL_SEARCH_ITEMS_MAX) {
            return -1;
        }
    }
    for (size_t i = 0; i < m->n; i++) {
        if (vl_read_u64(r, &snap->ndocs[i]) != 0 || vl_read_u64(r, &snap->total[i]) != 0) {
            return -1;
        }
    }
    snap->set = true;
    return 0;
}

/* ---- running ---- */

/* An opened index entry. */
struct entry {
    uint64_t seq;
    uint32_t tf;
    uint16_t word;
};

static int entry_cmp(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    if (x->seq != y->seq) {
        return x->seq < y->seq ? -1 : 1;
    }
    return (int)x->word - (int)y->word;
}

bool vl_hit_before(const struct vl_hit *a, const struct vl_hit *b)
{
    if (a->score != b->score) {
        return a->score > b->score;
    }
    return memcmp(a->doc, b->doc, VL_DOCTOKEN_BYTES) < 0;
}

static int hit_cmp(const void *a, const void *b)
{
    const struct vl_hit *x = a, *y = b;
    return vl_hit_before(x, y) ? -1 : vl_hit_before(y, x) ? 1 : 0;
}

/* The state of one search while it runs. */
struct run {
    veil_session *s;
    const struct vl_coll *c;
    const struct vl_match *m;
    struct vl_tsnap *snap;          /* what the trusted state said when the search began */
    struct vl_search_word *sw;      /* secret: per word, per key epoch of its entries */
    struct vl_wordrange *ranges[VL_MATCH_MAX_WORDS]; /* per word, its key epochs */
    size_t nranges[VL_MATCH_MAX_WORDS];
    size_t first[VL_MATCH_MAX_WORDS]; /* per word, its first keys in sw */
    uint8_t wkeys[VL_MATCH_MAX_WORDS][VL_WKEY_BYTES];
    const struct vl_mterm *term[VL_MATCH_MAX_WORDS]; /* per word, its term */
    uint64_t count[VL_MATCH_MAX_WORDS];
    struct entry *e;               /* a document of an opened entry, per word */
    size_t ne;
    size_t cap;
};

/* The keys of word w's entry c (the key epoch it was written in); *until: the first
 * counter after c that has other keys. */
static const struct vl_search_word *word_keys(const struct run *r, size_t w, uint64_t c,
                                              uint64_t *until)
{
    size_t k = 0;
    while (k + 1 < r->nranges[w] && r->ranges[w][k + 1].first <= c) {
        k++;
    }
    *until = k + 1 < r->nranges[w] ? r->ranges[w][k + 1].first : UINT64_MAX;
    return &r->sw[r->first[w] + k];
}

/* Opens what a store returned for labels of word w at counters[0..n); appends the
 * documents of opened entries; collects the counters that were absent into *missing. -1
 * when an entry does not open. */
static int open_values(struct run *r, size_t w, const uint64_t *counters,
                       const struct vl_bytes *vals, size_t n, uint64_t *missing,
                       size_t *nmissing)
{
    struct vl_search_item items[VL_SEARCH_ITEMS_MAX];
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        if (vals[i].p == NULL) {
            missing[(*nmissing)++] = counters[i];
            continue;
        }
        uint64_t until;
        if (vl_search_open(word_keys(r, w, counters[i], &until), counters[i], vals[i].p,
                           vals[i].n, items, &k) != 0) {
            return -1;
        }
        if (r->ne + k > r->cap) {
            size_t cap = r->cap * 2 > r->ne + k ? r->cap * 2 : r->ne + k;
            struct entry *e = realloc(r->e, cap * sizeof(*e));
            if (e == NULL) {
                return -2;
            }
            r->e = e;
            r->cap = cap;
        }
        for (size_t j = 0; j < k; j++) {
            r->e[r->ne].seq = items[j].seq;
            r->e[r->ne].tf = items[j].tf;
            r->e[r->ne].word = (uint16_t)w;
            r->ne++;
        }
    }
    return 0;
}

/* Fetches the entries of word w at counters[0..n) from its store. */
static veil_err fetch_word(struct run *r, size_t w, const uint64_t *counters, size_t n,
                           uint64_t *missing, size_t *nmissing, veil_status *st)
{
    veil_vault *v = r->s->v;
    const struct vl_fctx *fc = r->term[w]->fc;
    struct vl_store *store = v->stores[fc->store];
    veil_err rc = VEIL_OK;
    uint8_t *labels = malloc(n * VL_SEARCH_LABEL_BYTES + 1);
    struct vl_bytes *keys = malloc(n * sizeof(*keys) + 1);
    struct vl_kv_values vals = {0};
    if (labels == NULL || keys == NULL) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    /* Runs of consecutive counters (of one key epoch) are one pass of the key stream each. */
    for (size_t i = 0; i < n;) {
        uint64_t until;
        const struct vl_search_word *sw = word_keys(r, w, counters[i], &until);
        size_t j = i + 1;
        while (j < n && counters[j] == counters[j - 1] + 1 && counters[j] < until) {
            j++;
        }
        vl_search_labels(sw, counters[i], j - i, labels + i * VL_SEARCH_LABEL_BYTES);
        i = j;
    }
    for (size_t i = 0; i < n; i++) {
        keys[i].p = labels + i * VL_SEARCH_LABEL_BYTES;
        keys[i].n = VL_SEARCH_LABEL_BYTES;
    }
    if ((rc = store->ops->kv_get(store, r->c->table, keys, n, &vals)) != VEIL_OK) {
        rc = vl_store_failed(r->s, r->c, fc->store, rc, st);
        goto out;
    }
    if (vals.n != n) {
        rc = vl_breach(v, r->s, r->c->name,
                       "a store answered a search with too few or too "
                       "many entries",
                       st);
        goto out;
    }
    int o = open_values(r, w, counters, vals.vals, n, missing, nmissing);
    if (o == -2) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
    } else if (o != 0) {
        rc = vl_breach(v, r->s, r->c->name, "a search index entry failed to open", st);
    }
out:
    vl_kv_values_free(&vals);
    free(labels);
    free(keys);
    return rc;
}

/* Reads every entry of word w below its count; missing ones must be holes. */
static veil_err read_word(struct run *r, size_t w, veil_status *st)
{
    veil_vault *v = r->s->v;
    size_t n = (size_t)r->count[w];
    veil_err rc = VEIL_OK;
    uint64_t *counters = malloc(n * sizeof(*counters) + 1);
    uint64_t *missing = malloc(n * sizeof(*missing) + 1);
    bool *hole = malloc(n * sizeof(*hole) + 1);
    size_t nmissing = 0;
    if (counters == NULL || missing == NULL || hole == NULL) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        counters[i] = i;
    }
    if ((rc = fetch_word(r, w, counters, n, missing, &nmissing, st)) != VEIL_OK ||
        nmissing == 0) {
        goto out;
    }
    /* Missing entries: those of writes in flight or failed (holes) are expected. Any other
     * belongs to a write that finished before the search began, so the store has had it
     * since; asked once more (a store read that lags must not pass for an attack), it is
     * still missing only if the store lost it. */
    rc = vl_trusted_holes(v->trusted, r->snap, r->c->tenant_id, r->c->name, r->wkeys[w],
                          missing, nmissing, hole);
    if (rc != VEIL_OK) {
        rc = vl_status_set(st, rc, NULL, "the trusted state is unavailable");
        goto out;
    }
    size_t k = 0;
    for (size_t i = 0; i < nmissing; i++) {
        if (!hole[i]) {
            counters[k++] = missing[i];
        }
    }
    if (k == 0) {
        goto out;
    }
    nmissing = 0;
    if ((rc = fetch_word(r, w, counters, k, missing, &nmissing, st)) == VEIL_OK &&
        nmissing > 0) {
        rc = vl_breach(v, r->s, r->c->name, "a search index entry is missing", st);
    }
out:
    free(counters);
    free(missing);
    free(hole);
    return rc;
}

/* The number of words of field `ordinal` in a document's slen record (0: none). */
static uint32_t slen_of(const struct vl_bytes *slen, uint32_t ordinal)
{
    for (size_t at = 0; at + 8 <= slen->n; at += 8) {
        if (vl_load_u32(slen->p + at) == ordinal) {
            return vl_load_u32(slen->p + at + 4);
        }
    }
    return 0;
}

static double bm25(double idf, uint32_t tf, double dl, double avgdl)
{
    double f = (double)tf;
    return idf * f * (BM25_K1 + 1) / (f + BM25_K1 * (1 - BM25_B + BM25_B * dl / avgdl));
}

/* Turns the opened entries into scored hits. */
static veil_err score(struct run *r, struct vl_match_snap *snap, struct vl_hits *out,
                      veil_status *st)
{
    veil_vault *v = r->s->v;
    const struct vl_match *m = r->m;
    veil_err rc = VEIL_OK;
    qsort(r->e, r->ne, sizeof(*r->e), entry_cmp);
    /* The distinct sequence numbers, and which of them are live documents' current ones. */
    size_t nseq = 0;
    for (size_t i = 0; i < r->ne; i++) {
        nseq += i == 0 || r->e[i].seq != r->e[i - 1].seq;
    }
    struct vl_seqdoc *sd = calloc(nseq ? nseq : 1, sizeof(*sd));
    if (sd == NULL) {
        return vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
    }
    for (size_t i = 0, k = 0; i < r->ne; i++) {
        if (i == 0 || r->e[i].seq != r->e[i - 1].seq) {
            sd[k++].seq = r->e[i].seq;
        }
    }
    rc = vl_trusted_docs_by_seq(v->trusted, r->snap, r->c->tenant_id, r->c->name, sd, nseq);
    if (rc != VEIL_OK) {
        free(sd);
        return vl_status_set(st, rc, NULL, "the trusted state is unavailable");
    }
    if (!snap->set) {
        for (size_t i = 0, k = 0; i < r->ne; i++) {
            k += i > 0 && r->e[i].seq != r->e[i - 1].seq;
            if (sd[k].found) {
                snap->df[r->e[i].word]++;
            }
        }
        for (size_t w = 0; w < m->nwords; w++) {
            snap->count[w] = r->count[w];
        }
        snap->set = true;
    }
    double idf[VL_MATCH_MAX_WORDS], avgdl[VL_MATCH_MAX_WORDS];
    for (size_t t = 0; t < m->n; t++) {
        uint64_t ndocs = snap->ndocs[t];
        avgdl[t] = ndocs > 0 && snap->total[t] > 0 ? (double)snap->total[t] / (double)ndocs
                                                  : 1.0;
        for (size_t w = m->t[t].first; w < m->t[t].first + m->t[t].words.n; w++) {
            double n = (double)(ndocs > snap->df[w] ? ndocs : snap->df[w]);
            double df = (double)snap->df[w];
            idf[w] = log(1.0 + (n - df + 0.5) / (df + 0.5));
        }
    }
    out->h = calloc(nseq ? nseq : 1, sizeof(*out->h));
    out->n = 0;
    if (out->h == NULL) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    for (size_t i = 0, k = 0; i < r->ne; k++) {
        size_t j = i;
        while (j < r->ne && r->e[j].seq == r->e[i].seq) {
            j++;
        }
        if (sd[k].found) {
            /* Entries i..j-1 are this document's, one per word at most, by word. */
            size_t have[VL_MATCH_MAX_WORDS] = {0};
            double sc = 0;
            for (size_t x = i; x < j; x++) {
                size_t w = r->e[x].word;
                const struct vl_mterm *t = r->term[w];
                size_t ti = (size_t)(t - m->t);
                double dl = slen_of(&sd[k].slen, t->fc->ordinal);
                have[ti]++;
                sc += bm25(idf[w], r->e[x].tf, dl, avgdl[ti]);
            }
            bool ok = true;
            for (size_t t = 0; t < m->n && ok; t++) {
                ok = m->t[t].any ? have[t] > 0 : have[t] == m->t[t].words.n;
            }
            if (ok) {
                struct vl_hit *h = &out->h[out->n++];
                memcpy(h->doc, sd[k].doc, VL_DOCTOKEN_BYTES);
                h->version = sd[k].version;
                h->score = sc;
            }
        }
        i = j;
    }
    qsort(out->h, out->n, sizeof(*out->h), hit_cmp);
out:
    vl_seqdocs_free(sd, nseq);
    free(sd);
    return rc;
}

veil_err vl_match_run(veil_session *s, const struct vl_coll *c, const struct vl_match *m,
                      struct vl_match_snap *snap, struct vl_hits *out, veil_status *st)
{
    veil_vault *v = s->v;
    veil_err rc = VEIL_OK;
    struct run r;
    memset(&r, 0, sizeof(r));
    memset(out, 0, sizeof(*out));
    r.s = s;
    r.c = c;
    r.m = m;
    for (size_t t = 0; t < m->n; t++) {
        for (size_t k = 0; k < m->t[t].words.n; k++) {
            size_t w = m->t[t].first + k;
            const struct vl_word *word = &m->t[t].words.w[k];
            r.term[w] = &m->t[t];
            vl_search_wkey(r.wkeys[w], m->t[t].fc->search_key, word->stem, word->len);
        }
    }
    /* Every trusted read of this search sees one moment: a write finished before it has
     * all its entries in the store, one finished after it counts as not yet done. */
    if ((rc = vl_trusted_snap_begin(v->trusted, &r.snap)) != VEIL_OK) {
        rc = vl_status_set(st, rc, NULL, "the trusted state is unavailable");
        goto out;
    }
    if (snap->set) {
        memcpy(r.count, snap->count, sizeof(r.count));
    } else {
        rc = vl_trusted_words_count(v->trusted, r.snap, c->tenant_id, c->name,
                                    (const uint8_t(*)[VL_WKEY_BYTES])r.wkeys, m->nwords, r.count);
        for (size_t t = 0; rc == VEIL_OK && t < m->n; t++) {
            rc = vl_trusted_search_stats(v->trusted, r.snap, c->tenant_id, c->name,
                                         m->t[t].fc->ordinal, &snap->ndocs[t],
                                         &snap->total[t]);
        }
    }
    /* Each word's key epochs (one, unless a rollback was accepted since it was first
     * written), then its keys for each. */
    size_t nkeys = 0;
    for (size_t w = 0; rc == VEIL_OK && w < m->nwords; w++) {
        if (r.count[w] > 0) {
            rc = vl_trusted_words_ranges(v->trusted, r.snap, c->tenant_id, c->name, r.wkeys[w],
                                         &r.ranges[w], &r.nranges[w]);
        }
        r.first[w] = nkeys;
        nkeys += r.nranges[w] > 0 ? r.nranges[w] : 1;
    }
    if (rc != VEIL_OK) {
        rc = vl_status_set(st, rc, NULL, "the trusted state is unavailable");
        goto out;
    }
    if ((r.sw = vl_secret_alloc(nkeys * sizeof(*r.sw))) == NULL) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    for (size_t t = 0; t < m->n; t++) {
        for (size_t k = 0; k < m->t[t].words.n; k++) {
            size_t w = m->t[t].first + k;
            const struct vl_word *word = &m->t[t].words.w[k];
            for (size_t e = 0; e < (r.nranges[w] > 0 ? r.nranges[w] : 1); e++) {
                vl_search_word(&r.sw[r.first[w] + e], m->t[t].fc->search_key, word->stem,
                               word->len, r.nranges[w] > 0 ? r.ranges[w][e].epoch : 0);
            }
        }
    }
    size_t total = 0;
    for (size_t w = 0; w < m->nwords; w++) {
        total += (size_t)r.count[w];
    }
    if (total > MATCH_MAX_ENTRIES) {
        rc = vl_status_set(st, VEIL_ERR_TOO_LARGE, "match",
                           "these words have more than %u index entries; add rarer words",
                           MATCH_MAX_ENTRIES);
        goto out;
    }
    r.cap = total > 0 ? total : 1;
    if ((r.e = malloc(r.cap * sizeof(*r.e))) == NULL) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    for (size_t w = 0; w < m->nwords && rc == VEIL_OK; w++) {
        if (r.count[w] > 0) {
            rc = read_word(&r, w, st);
        }
    }
    if (rc == VEIL_OK) {
        rc = score(&r, snap, out, st);
    }
out:
    if (rc != VEIL_OK) {
        free(out->h);
        memset(out, 0, sizeof(*out));
    }
    vl_trusted_snap_end(r.snap);
    free(r.e);
    vl_secret_free(r.sw);
    for (size_t w = 0; w < VL_MATCH_MAX_WORDS; w++) {
        free(r.ranges[w]);
    }
    return rc;
}
