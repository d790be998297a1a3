/*
 * read.c: get and query.
 *
 * Nothing a store returns is believed until it matches the trusted state: each row's parts
 * must hash to the digest recorded when the document was written (which covers its row
 * sequence number and every part), every value must open under AAD naming this tenant,
 * collection, document, field and version, and every document a query returns must satisfy
 * the query once decrypted. Anything else is an integrity violation: the whole request
 * fails with 502 and no data. A mismatch is read again once before it counts, so a write
 * that lands between our reads is not mistaken for an attack.
 *
 * An answer no honest store gives is an integrity violation too, even where it could not
 * leak or alter data: rows that were not asked for or come twice, document tokens out of
 * order, repeated, beyond the limit asked for, not after the cursor, or unknown to the
 * trusted state. Only a store that cannot be reached is VEIL_ERR_STORE_UNAVAILABLE
 * (vl_store_failed tells the two apart for what drivers report).
 *
 * Cursors: a page's `next` is sealed (XChaCha20-Poly1305 under the collection's cursor key)
 * with associated data naming the tenant, the role, the collection's table and a hash of
 * the query's `where` and `match`; a cursor opens only for the same tenant, role,
 * collection, where and match (select and limit may change from page to page). A plain
 * cursor holds the last document token of its page: the next page's tokens must all come
 * after it, so a store that ignores the cursor cannot make a client page forever.
 *
 * What the store learns from a query: the opaque table, the equality tokens asked for (so,
 * whether two queries ask for the same value), and which rows matched.
 */
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "engine/engine.h"
#include "util/log.h"

#define READ_TRIES 3
#define CURSOR_PLAIN 'P'
#define CURSOR_MATCH 'M'
#define CURSOR_MAX (1 << 16) /* bytes of a cursor's sealed contents */

veil_err vl_store_failed(veil_session *s, const struct vl_coll *c, int store, veil_err rc,
                         veil_status *st)
{
    const char *name = s->v->cfg.store_names[store];
    switch (rc) {
    case VEIL_ERR_INTEGRITY:
        return vl_breach(s->v, s, c->name, "a store returned stored data it cannot have written",
                         st);
    case VEIL_ERR_TOO_LARGE:
        return vl_status_set(st, VEIL_ERR_TOO_LARGE, NULL, "the request is too large for store %s",
                             name);
    case VEIL_ERR_INTERNAL:
        return vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "store %s refused a request", name);
    default:
        return vl_status_set(st, VEIL_ERR_STORE_UNAVAILABLE, NULL, "store %s is unavailable", name);
    }
}

static veil_err may_read(veil_session *s, const char *coll, const struct vl_coll **c,
                         const struct vl_role **role, veil_status *st)
{
    veil_err rc = vl_coll_get(s, coll, c, st);
    if (rc != VEIL_OK) {
        return rc;
    }
    *role = NULL;
    if (s->admin) {
        return VEIL_OK;
    }
    const struct vl_role *r = vl_policy_role((*c)->policy, s->role);
    if (r == NULL || (!r->read_all && r->nread == 0 && r->nmasked == 0)) {
        return vl_status_set(st, VEIL_ERR_FORBIDDEN, NULL,
                             "role %s may not read documents of this collection", s->role);
    }
    *role = r;
    return VEIL_OK;
}

/* A fetched and opened document. */
struct opened {
    char *id;
    int64_t version;
    json_t *doc;
};

static void opened_free(struct opened *o, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(o[i].id);
        json_decref(o[i].doc);
    }
}

/* One token asked for, and its place in the request. */
struct asked {
    const uint8_t *tok;
    size_t pos;
};

static int asked_cmp(const void *a, const void *b)
{
    const struct asked *x = a, *y = b;
    int c = memcmp(x->tok, y->tok, VL_DOCTOKEN_BYTES);
    return c != 0 ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

/* Matches a store's get_rows answer to the n tokens asked for: out[i] is the row of
 * want[i], or NULL. false when the answer is one no honest store gives: a row with a
 * malformed token, a row not asked for, or one twice. `sorted` has room for n. */
static bool rows_match(const struct vl_rows *rows, const struct vl_bytes *want, size_t n,
                       struct asked *sorted, const struct vl_row **out)
{
    memset(out, 0, n * sizeof(*out));
    if (rows->n > n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        sorted[i].tok = want[i].p;
        sorted[i].pos = i;
    }
    qsort(sorted, n, sizeof(*sorted), asked_cmp);
    for (size_t r = 0; r < rows->n; r++) {
        const struct vl_row *row = &rows->rows[r];
        if (row->doc.n != VL_DOCTOKEN_BYTES || row->doc.p == NULL) {
            return false;
        }
        size_t lo = 0, hi = n; /* the first asked token >= the row's */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (memcmp(sorted[mid].tok, row->doc.p, VL_DOCTOKEN_BYTES) < 0) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if (lo == n || memcmp(sorted[lo].tok, row->doc.p, VL_DOCTOKEN_BYTES) != 0) {
            return false;
        }
        for (size_t k = lo; k < n && memcmp(sorted[k].tok, row->doc.p, VL_DOCTOKEN_BYTES) == 0;
             k++) {
            if (out[sorted[k].pos] != NULL) {
                return false;
            }
            out[sorted[k].pos] = row;
        }
    }
    return true;
}

/* Does what the stores returned for one document (rows[i]: store i's row, or NULL) match
 * its trusted state? On a match, opens it into *o. Returns VEIL_OK, VEIL_ERR_NOT_FOUND (not
 * live), or VEIL_ERR_INTEGRITY. */
static veil_err check_open(const veil_vault *v, const struct vl_coll *c,
                           const struct vl_docstate *ds, const struct vl_row *const *rows,
                           const bool *want, struct opened *o)
{
    struct vl_bytes parts[VL_MAX_STORES] = {{0}};
    bool any_row = false;
    if (!ds->exists && !ds->pending && v->rollback_accepted) {
        return VEIL_ERR_NOT_FOUND; /* a write the trusted state lost in an accepted rollback */
    }
    for (size_t i = 0; i < v->nstores; i++) {
        const struct vl_row *r = rows[i];
        parts[i].p = r != NULL ? r->blob.p : NULL;
        parts[i].n = r != NULL ? r->blob.n : 0;
        any_row |= r != NULL;
        if (r != NULL && !ds->pending && r->seq != ds->seq) {
            return VEIL_ERR_INTEGRITY;
        }
    }
    uint8_t digest[VL_DIGEST_BYTES];
    if (ds->live) {
        vl_doc_digest(ds->seq, parts, v->nstores, &ds->part, digest);
        if (vl_ct_equal(digest, ds->digest, VL_DIGEST_BYTES)) {
            return vl_doc_open(c, ds->doc, ds->version, parts, v->nstores, &ds->part, want,
                               &o->id, &o->doc) == VEIL_OK
                       ? (o->version = ds->version, VEIL_OK)
                       : VEIL_ERR_INTEGRITY;
        }
    }
    if (ds->pending) {
        /* A write in flight: the stores may already hold it. */
        vl_doc_digest(ds->pending_seq, parts, v->nstores, &ds->pending_part, digest);
        if (any_row && vl_ct_equal(digest, ds->pending_digest, VL_DIGEST_BYTES)) {
            return vl_doc_open(c, ds->doc, ds->pending_version, parts, v->nstores,
                               &ds->pending_part, want, &o->id, &o->doc) == VEIL_OK
                       ? (o->version = ds->pending_version, VEIL_OK)
                       : VEIL_ERR_INTEGRITY;
        }
    }
    if (!any_row && (!ds->live || (ds->pending && ds->pending_delete))) {
        return VEIL_ERR_NOT_FOUND; /* deleted, or being deleted */
    }
    return VEIL_ERR_INTEGRITY;
}

/* Fetches and opens documents by token (only the fields in `fields`, NULL: all). out[i] is
 * filled for each found; *found[i] says which were (missing: not live, or deleted
 * meanwhile). With from_store, the tokens are a store's answer (a find), so a token the
 * trusted state has never known is the store's invention: an integrity violation. */
static veil_err fetch(veil_session *s, const struct vl_coll *c, const struct vl_bytes *toks,
                      size_t n, const bool *fields, bool from_store, struct opened *out,
                      bool *found, veil_status *st)
{
    veil_vault *v = s->v;
    veil_err rc = VEIL_OK;
    size_t nn = n ? n : 1;
    struct vl_docstate *states = calloc(nn, sizeof(*states));
    struct vl_rows rows[VL_MAX_STORES];
    bool *done = calloc(nn, sizeof(*done));
    struct vl_bytes *want = calloc(nn, sizeof(*want));
    struct asked *sorted = calloc(nn, sizeof(*sorted));
    const struct vl_row **byrow = calloc(nn * VL_MAX_STORES, sizeof(*byrow));
    memset(rows, 0, sizeof(rows));
    memset(out, 0, n * sizeof(*out));
    if (states == NULL || done == NULL || want == NULL || sorted == NULL || byrow == NULL) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    for (int attempt = 0; attempt < READ_TRIES; attempt++) {
        size_t left = 0;
        for (size_t i = 0; i < n; i++) {
            if (!done[i]) {
                want[left++] = toks[i];
            }
        }
        vl_docstates_free(states, n);
        rc = vl_trusted_docs_get(v->trusted, c->tenant_id, c->name, want, left, states);
        if (rc != VEIL_OK) {
            rc = vl_status_set(st, rc, NULL, "the trusted state is unavailable");
            goto out;
        }
        for (size_t i = 0; i < v->nstores; i++) {
            vl_rows_free(&rows[i]);
            rc = v->stores[i]->ops->get_rows(v->stores[i], c->table, want, left, &rows[i]);
            if (rc != VEIL_OK) {
                rc = vl_store_failed(s, c, (int)i, rc, st);
                goto out;
            }
            if (!rows_match(&rows[i], want, left, sorted, byrow + i * nn)) {
                rc = vl_breach(v, s, c->name, "a store returned rows not asked for, or twice", st);
                goto out;
            }
        }
        size_t k = 0, bad = 0;
        for (size_t i = 0; i < n; i++) {
            if (done[i]) {
                continue;
            }
            const struct vl_row *r[VL_MAX_STORES] = {NULL};
            for (size_t j = 0; j < v->nstores; j++) {
                r[j] = byrow[j * nn + k];
            }
            const struct vl_docstate *ds = &states[k++];
            veil_err e = check_open(v, c, ds, r, fields, &out[i]);
            if (e == VEIL_ERR_NOT_FOUND && from_store && !ds->exists && !ds->pending) {
                e = VEIL_ERR_INTEGRITY; /* asked again: a write may have begun meanwhile */
            }
            if (e == VEIL_OK || e == VEIL_ERR_NOT_FOUND) {
                done[i] = true;
                found[i] = e == VEIL_OK;
            } else {
                bad++;
            }
        }
        if (bad == 0) {
            goto out;
        }
    }
    rc = vl_breach(v, s, c->name, "a row failed its digest or AEAD check, or is unknown", st);
out:
    if (states != NULL) {
        vl_docstates_free(states, n);
    }
    for (size_t i = 0; i < VL_MAX_STORES; i++) {
        vl_rows_free(&rows[i]);
    }
    if (rc != VEIL_OK) {
        opened_free(out, n);
        memset(out, 0, n * sizeof(*out));
    }
    free(states);
    free(done);
    free(want);
    free(sorted);
    free(byrow);
    return rc;
}

/* Is one dotted path at, under or over another? */
static bool paths_meet(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b), n = na < nb ? na : nb;
    return strncmp(a, b, n) == 0 && (na == nb || (na < nb ? b[n] : a[n]) == '.');
}

/* The fields a query must open (for vl_doc_open): those its select names, or lies under or
 * over, and those its where looks at. NULL without select: all of them. */
static bool *want_fields(const struct vl_coll *c, const json_t *select, const struct vl_plan *plan)
{
    size_t nf = c->policy->nfields;
    if (!json_is_array(select)) {
        return NULL;
    }
    bool *want = calloc(nf + 1, sizeof(*want));
    if (want == NULL) {
        return NULL;
    }
    size_t i;
    json_t *p;
    json_array_foreach(select, i, p) {
        const char *path = json_string_value(p);
        bool exact = false;
        for (size_t f = 0; f < nf; f++) {
            if (paths_meet(path, c->fields[f].path)) {
                want[f] = true;
                exact |= strcmp(path, c->fields[f].path) == 0;
            }
        }
        want[nf] |= !exact; /* the fields the policy does not list may hold it */
    }
    for (size_t f = 0; f < nf; f++) {
        for (size_t k = 0; plan != NULL && k < plan->n; k++) {
            want[f] |= plan->conds[k].fc == &c->fields[f];
        }
    }
    return want;
}

static char *answer_doc(const struct vl_coll *c, const veil_session *s, const struct opened *o,
                        const json_t *select)
{
    json_t *view = vl_doc_for_role(c, s, o->doc, select);
    json_t *a = json_pack("{s:s, s:I, s:o}", "id", o->id, "version", (json_int_t)o->version,
                          "doc", view);
    char *text = vl_json_text(a);
    json_decref(a);
    return text;
}

veil_err veil_doc_get(veil_session *s, const char *coll, const char *id, char **json_out,
                      veil_status *st)
{
    const struct vl_coll *c = NULL;
    const struct vl_role *role = NULL;
    vl_status_clear(st);
    veil_err rc = may_read(s, coll, &c, &role, st);
    if (rc != VEIL_OK) {
        return rc;
    }
    uint8_t tok[VL_DOCTOKEN_BYTES];
    vl_doc_token(c, id, tok);
    struct vl_bytes b = {tok, sizeof(tok)};
    struct opened o;
    bool found = false;
    if ((rc = fetch(s, c, &b, 1, NULL, false, &o, &found, st)) != VEIL_OK) {
        return rc;
    }
    if (!found) {
        return vl_status_set(st, VEIL_ERR_NOT_FOUND, NULL, "no document with this id");
    }
    *json_out = answer_doc(c, s, &o, NULL);
    opened_free(&o, 1);
    return *json_out != NULL ? VEIL_OK : VEIL_ERR_INTERNAL;
}

/* ---- query ---- */

/* Appends {"id","version","doc"} of an opened document, as the role sees it. */
static void answer_append(json_t *docs, const struct vl_coll *c, const veil_session *s,
                          const struct opened *o, const json_t *select)
{
    json_t *view = vl_doc_for_role(c, s, o->doc, select);
    json_array_append_new(docs, json_pack("{s:s, s:I, s:o}", "id", o->id, "version",
                                          (json_int_t)o->version, "doc", view));
}

/* {"docs": docs, "next": next or null} as text. */
static veil_err answer_page(json_t *docs, const char *next, char **json_out, veil_status *st)
{
    json_t *a = json_pack("{s:O, s:o}", "docs", docs, "next",
                          next != NULL ? json_string(next) : json_null());
    *json_out = vl_json_text(a);
    json_decref(a);
    return *json_out != NULL ? VEIL_OK
                             : vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
}

/* ---- cursors ---- */

/* The hash of the list a query pages through: its where and match, canonical (sorted keys,
 * compact; an absent, null or empty where counts as none). */
static veil_err query_hash(const json_t *where, const json_t *match, uint8_t out[VL_SHA256_BYTES])
{
    if (json_is_null(where) || (json_is_object(where) && json_object_size(where) == 0)) {
        where = NULL;
    }
    json_t *both = json_pack("{s:O?, s:O?}", "where", where, "match", match);
    char *canon = both != NULL ? json_dumps(both, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(both);
    if (canon == NULL) {
        return VEIL_ERR_INTERNAL;
    }
    vl_sha256(out, canon, strlen(canon));
    free(canon);
    return VEIL_OK;
}

/* What a cursor is bound to: tenant, role, the collection's table and the query's hash. */
static veil_err cursor_ad(const veil_session *s, const struct vl_coll *c,
                          const uint8_t qhash[VL_SHA256_BYTES], struct vl_buf *ad)
{
    veil_err rc = vl_buf_put_lps(ad, "veil/cursor/v1");
    if (rc == VEIL_OK) {
        rc = vl_buf_put_lps(ad, c->tenant);
    }
    if (rc == VEIL_OK) {
        rc = vl_buf_put_lps(ad, s->role);
    }
    if (rc == VEIL_OK) {
        rc = vl_buf_put_lps(ad, c->table);
    }
    if (rc == VEIL_OK) {
        rc = vl_buf_put_lp(ad, qhash, VL_SHA256_BYTES);
    }
    return rc;
}

/* Seals a cursor's contents (plain[0..n)) for this session, collection and query, as hex
 * into *out (malloc'd). */
static veil_err cursor_seal(const veil_session *s, const struct vl_coll *c,
                            const uint8_t qhash[VL_SHA256_BYTES], const uint8_t *plain, size_t n,
                            char **out)
{
    struct vl_buf ad;
    uint8_t *box = malloc(vl_aead_box_len(n));
    char *hex = malloc(2 * vl_aead_box_len(n) + 1);
    vl_buf_init(&ad, 4096);
    veil_err rc = box != NULL && hex != NULL && n <= CURSOR_MAX ? cursor_ad(s, c, qhash, &ad)
                                                                : VEIL_ERR_INTERNAL;
    if (rc == VEIL_OK && vl_aead_box_seal(box, plain, n, ad.data, ad.len, c->cursor_key) != 0) {
        rc = VEIL_ERR_INTERNAL;
    }
    if (rc == VEIL_OK) {
        vl_hex(hex, box, vl_aead_box_len(n));
        *out = hex;
        hex = NULL;
    }
    free(box);
    free(hex);
    vl_buf_free(&ad);
    return rc;
}

/* Opens a cursor of this session, collection and query: its contents into *plain
 * (malloc'd, *n bytes). VEIL_ERR_BAD_REQUEST for anything else. */
static veil_err cursor_open(const veil_session *s, const struct vl_coll *c,
                            const uint8_t qhash[VL_SHA256_BYTES], const char *cur, uint8_t **plain,
                            size_t *n, veil_status *st)
{
    struct vl_buf ad;
    size_t hexlen = strlen(cur), len = hexlen / 2, got = 0;
    bool ok = hexlen % 2 == 0 && len > vl_aead_box_len(0) && len <= vl_aead_box_len(CURSOR_MAX);
    uint8_t *box = ok ? malloc(len) : NULL, *m = ok ? malloc(len) : NULL;
    vl_buf_init(&ad, 4096);
    ok = ok && box != NULL && m != NULL && vl_unhex(box, len, cur) == 0 &&
         cursor_ad(s, c, qhash, &ad) == VEIL_OK &&
         vl_aead_box_open(m, &got, box, len, ad.data, ad.len, c->cursor_key) == 0;
    free(box);
    vl_buf_free(&ad);
    if (!ok) {
        free(m);
        return vl_status_set(st, VEIL_ERR_BAD_REQUEST, "after",
                             "the cursor is not one this query gave out");
    }
    *plain = m;
    *n = got;
    return VEIL_OK;
}

/* A plain cursor: the last document token of its page. */
static veil_err plain_cursor_open(const veil_session *s, const struct vl_coll *c,
                                  const uint8_t qhash[VL_SHA256_BYTES], const char *cur,
                                  uint8_t doc[VL_DOCTOKEN_BYTES], veil_status *st)
{
    uint8_t *m = NULL;
    size_t n = 0;
    veil_err rc = cursor_open(s, c, qhash, cur, &m, &n, st);
    if (rc == VEIL_OK && (n != 1 + VL_DOCTOKEN_BYTES || m[0] != CURSOR_PLAIN)) {
        rc = vl_status_set(st, VEIL_ERR_BAD_REQUEST, "after",
                           "the cursor is not one this query gave out");
    }
    if (rc == VEIL_OK) {
        memcpy(doc, m + 1, VL_DOCTOKEN_BYTES);
    }
    free(m);
    return rc;
}

static veil_err plain_cursor_seal(const veil_session *s, const struct vl_coll *c,
                                  const uint8_t qhash[VL_SHA256_BYTES], const uint8_t *doc,
                                  char **out)
{
    uint8_t m[1 + VL_DOCTOKEN_BYTES];
    m[0] = CURSOR_PLAIN;
    memcpy(m + 1, doc, VL_DOCTOKEN_BYTES);
    return cursor_seal(s, c, qhash, m, sizeof(m), out);
}

/* ---- query with match: ranked, paged by (score, token) ---- */

/* A cursor after hit h: its score and token, and the snapshot that ranks the pages. */
static veil_err match_cursor_seal(const veil_session *s, const struct vl_coll *c,
                                  const uint8_t qhash[VL_SHA256_BYTES], const struct vl_match *m,
                                  const struct vl_match_snap *snap, const struct vl_hit *h,
                                  char **out)
{
    struct vl_buf b;
    uint64_t bits;
    memcpy(&bits, &h->score, sizeof(bits));
    vl_buf_init(&b, CURSOR_MAX);
    veil_err rc = vl_buf_put_u8(&b, CURSOR_MATCH);
    if (rc == VEIL_OK) {
        rc = vl_buf_put_u64(&b, bits);
    }
    if (rc == VEIL_OK) {
        rc = vl_buf_append(&b, h->doc, VL_DOCTOKEN_BYTES);
    }
    if (rc == VEIL_OK) {
        rc = vl_match_snap_put(m, snap, &b);
    }
    if (rc == VEIL_OK) {
        rc = cursor_seal(s, c, qhash, b.data, b.len, out);
    }
    vl_buf_free(&b);
    return rc;
}

static veil_err match_cursor_open(const veil_session *s, const struct vl_coll *c,
                                  const uint8_t qhash[VL_SHA256_BYTES], const struct vl_match *m,
                                  const char *cur, struct vl_match_snap *snap, struct vl_hit *pos,
                                  veil_status *st)
{
    uint8_t *plain = NULL;
    size_t n = 0;
    veil_err rc = cursor_open(s, c, qhash, cur, &plain, &n, st);
    if (rc != VEIL_OK) {
        return rc;
    }
    struct vl_reader r = {plain, n};
    uint8_t kind = 0;
    uint64_t bits = 0;
    const uint8_t *doc = NULL;
    bool ok = vl_read_u8(&r, &kind) == 0 && kind == CURSOR_MATCH && vl_read_u64(&r, &bits) == 0 &&
              vl_read_bytes(&r, &doc, VL_DOCTOKEN_BYTES) == 0 &&
              vl_match_snap_get(m, &r, snap) == 0 && r.n == 0;
    if (ok) {
        memcpy(&pos->score, &bits, sizeof(bits));
        memcpy(pos->doc, doc, VL_DOCTOKEN_BYTES);
    }
    free(plain);
    if (!ok) {
        return vl_status_set(st, VEIL_ERR_BAD_REQUEST, "after",
                             "the cursor is not one this query gave out");
    }
    return VEIL_OK;
}

static int tok_cmp(const void *a, const void *b)
{
    return memcmp(a, b, VL_DOCTOKEN_BYTES);
}

/* Keeps the hits whose documents, opened, match the plan. */
#define FILTER_CHUNK 256
static veil_err hits_filter_open(veil_session *s, const struct vl_coll *c,
                                 const struct vl_plan *plan, struct vl_hits *hits,
                                 veil_status *st)
{
    json_t *none = json_array();
    bool *want = none != NULL ? want_fields(c, none, plan) : NULL;
    struct vl_bytes *toks = calloc(FILTER_CHUNK, sizeof(*toks));
    struct opened *op = calloc(FILTER_CHUNK, sizeof(*op));
    bool *found = calloc(FILTER_CHUNK, sizeof(*found));
    veil_err rc = VEIL_OK;
    size_t k = 0;
    if (want == NULL || toks == NULL || op == NULL || found == NULL) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    for (size_t at = 0; at < hits->n;) {
        size_t chunk = hits->n - at < FILTER_CHUNK ? hits->n - at : FILTER_CHUNK;
        for (size_t i = 0; i < chunk; i++) {
            toks[i].p = hits->h[at + i].doc;
            toks[i].n = VL_DOCTOKEN_BYTES;
        }
        if ((rc = fetch(s, c, toks, chunk, want, false, op, found, st)) != VEIL_OK) {
            goto out;
        }
        for (size_t i = 0; i < chunk; i++) {
            if (found[i] && vl_plan_satisfied(plan, op[i].doc)) {
                hits->h[k++] = hits->h[at + i];
            }
        }
        opened_free(op, chunk);
        at += chunk;
    }
    hits->n = k;
out:
    json_decref(none);
    free(want);
    free(toks);
    free(op);
    free(found);
    return rc;
}

/* Keeps the hits that match the where clause: the search's hits are complete (search.c),
 * so what is left is complete too. Few hits beside the where's smallest set are opened and
 * checked; else they are intersected with the verified candidates of the where (and
 * opened too when not all of its conditions were intersected). */
static veil_err match_where(veil_session *s, const struct vl_coll *c, const struct vl_plan *plan,
                            struct vl_hits *hits, veil_status *st)
{
    struct vl_docset cands = {NULL, 0};
    bool exact = false;
    uint64_t min = 0;
    if (plan->n == 0 || hits->n == 0) {
        return VEIL_OK;
    }
    if (plan->empty) {
        hits->n = 0;
        return VEIL_OK;
    }
    veil_err rc = s->v->unverified ? VEIL_OK : vl_plan_min_size(s, c, plan, &min, st);
    if (rc != VEIL_OK) {
        return rc;
    }
    if (s->v->unverified) {
        return hits_filter_open(s, c, plan, hits, st);
    }
    if ((uint64_t)hits->n * 4 <= min) {
        return hits_filter_open(s, c, plan, hits, st);
    }
    if ((rc = vl_plan_candidates(s, c, plan, &cands, &exact, st)) != VEIL_OK) {
        return rc;
    }
    size_t k = 0;
    for (size_t i = 0; i < hits->n; i++) {
        if (cands.n > 0 &&
            bsearch(hits->h[i].doc, cands.docs, cands.n, VL_DOCTOKEN_BYTES, tok_cmp) != NULL) {
            hits->h[k++] = hits->h[i];
        }
    }
    hits->n = k;
    vl_docset_free(&cands);
    return exact ? VEIL_OK : hits_filter_open(s, c, plan, hits, st);
}

static veil_err query_match(veil_session *s, const struct vl_coll *c,
                            const struct vl_role *role, const struct vl_plan *plan,
                            const json_t *where, const json_t *match, const json_t *select,
                            size_t limit, const char *after, char **json_out, veil_status *st)
{
    struct vl_match m;
    struct vl_match_snap snap;
    struct vl_hits hits = {0};
    struct vl_hit pos;
    struct opened *op = NULL;
    struct vl_bytes *toks = NULL;
    bool *found = NULL, *want = NULL;
    char *next = NULL;
    json_t *docs = NULL;
    size_t start = 0, take = 0;
    memset(&snap, 0, sizeof(snap));
    veil_err rc = vl_match_plan(c, s->admin ? NULL : role, false, match, &m, st);
    if (rc != VEIL_OK) {
        goto out;
    }
    /* A cursor belongs to this where and match: another query must not page with it. */
    uint8_t qhash[VL_SHA256_BYTES];
    if (query_hash(where, match, qhash) != VEIL_OK) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    memcpy(m.hash, qhash, sizeof(m.hash));
    if (after != NULL &&
        (rc = match_cursor_open(s, c, qhash, &m, after, &snap, &pos, st)) != VEIL_OK) {
        goto out;
    }
    if ((rc = vl_match_run(s, c, &m, &snap, &hits, st)) != VEIL_OK ||
        (rc = match_where(s, c, plan, &hits, st)) != VEIL_OK) {
        goto out;
    }
    if (after != NULL) {
        while (start < hits.n && !vl_hit_before(&pos, &hits.h[start])) {
            start++;
        }
    }
    take = hits.n - start < limit ? hits.n - start : limit;
    toks = calloc(take + 1, sizeof(*toks));
    op = calloc(take + 1, sizeof(*op));
    found = calloc(take + 1, sizeof(*found));
    if (toks == NULL || op == NULL || found == NULL) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < take; i++) {
        toks[i].p = hits.h[start + i].doc;
        toks[i].n = VL_DOCTOKEN_BYTES;
    }
    if ((want = want_fields(c, select, plan)) == NULL && select != NULL) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    if ((rc = fetch(s, c, toks, take, want, false, op, found, st)) != VEIL_OK) {
        take = 0;
        goto out;
    }
    docs = json_array();
    for (size_t i = 0; i < take; i++) {
        /* Deleted since the search; or replaced, and kept only if it still matches (the
         * words are looked at again, in the version now current). */
        if (!found[i]) {
            continue;
        }
        bool changed = op[i].version != hits.h[start + i].version;
        if (changed) {
            struct opened whole;
            bool f2 = false, keep = false;
            if ((rc = fetch(s, c, &toks[i], 1, NULL, false, &whole, &f2, st)) != VEIL_OK) {
                goto out;
            }
            if (f2) {
                keep = vl_match_doc(&m, whole.doc);
                /* Answer with the version whose words were checked. */
                opened_free(&op[i], 1);
                op[i] = whole;
            }
            if (!keep) {
                continue;
            }
        }
        if (!vl_plan_satisfied(plan, op[i].doc)) {
            continue; /* written since the where was checked: it no longer passes it */
        }
        answer_append(docs, c, s, &op[i], select);
    }
    if (start + take < hits.n &&
        (rc = match_cursor_seal(s, c, qhash, &m, &snap, &hits.h[start + take - 1], &next)) !=
            VEIL_OK) {
        rc = vl_status_set(st, rc, NULL, "cannot make a cursor");
        goto out;
    }
    rc = answer_page(docs, next, json_out, st);
out:
    if (op != NULL) {
        opened_free(op, take);
    }
    free(op);
    free(toks);
    free(found);
    free(want);
    free(next);
    free(hits.h);
    json_decref(docs);
    vl_match_free(&m);
    return rc;
}

/* Opens the candidates (sorted, all after the cursor) in order and appends those that
 * match the plan, up to limit; *last: the last one appended; *more: a candidate after it
 * may match too (exact: any is left; else one was opened and matches). A candidate deleted
 * or changed since it was listed is passed over: the answer is of the documents as they
 * are when opened. */
#define PAGE_CHUNK_MIN 16
static veil_err page_from(veil_session *s, const struct vl_coll *c, const struct vl_plan *plan,
                          const uint8_t (*cand)[VL_DOCTOKEN_BYTES], size_t ncand, bool exact,
                          size_t limit, const bool *want, const json_t *select, json_t *docs,
                          uint8_t last[VL_DOCTOKEN_BYTES], bool *more, veil_status *st)
{
    size_t at = 0, kept = 0, cap = limit > PAGE_CHUNK_MIN ? limit : PAGE_CHUNK_MIN;
    struct vl_bytes *toks = calloc(cap, sizeof(*toks));
    struct opened *op = calloc(cap, sizeof(*op));
    bool *found = calloc(cap, sizeof(*found));
    veil_err rc = VEIL_OK;
    *more = false;
    if (toks == NULL || op == NULL || found == NULL) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    while (at < ncand && !*more) {
        if (kept == limit && exact) {
            *more = true; /* every candidate left matches but for a write meanwhile */
            break;
        }
        size_t chunk = kept < limit ? limit - kept : 1;
        if (!exact && chunk < PAGE_CHUNK_MIN) {
            chunk = PAGE_CHUNK_MIN;
        }
        if (chunk > ncand - at) {
            chunk = ncand - at;
        }
        for (size_t i = 0; i < chunk; i++) {
            toks[i].p = (uint8_t *)cand[at + i];
            toks[i].n = VL_DOCTOKEN_BYTES;
        }
        if ((rc = fetch(s, c, toks, chunk, want, true, op, found, st)) != VEIL_OK) {
            goto out;
        }
        for (size_t i = 0; i < chunk; i++) {
            if (!found[i] || !vl_plan_satisfied(plan, op[i].doc)) {
                continue;
            }
            if (kept == limit) {
                *more = true;
                break;
            }
            answer_append(docs, c, s, &op[i], select);
            memcpy(last, cand[at + i], VL_DOCTOKEN_BYTES);
            kept++;
        }
        opened_free(op, chunk);
        at += chunk;
    }
out:
    free(toks);
    free(op);
    free(found);
    return rc;
}

veil_err veil_query(veil_session *s, const char *coll, const char *body, size_t len,
                    char **json_out, veil_status *st)
{
    veil_vault *v = s->v;
    const struct vl_coll *c = NULL;
    const struct vl_role *role = NULL;
    json_t *q = NULL, *docs = NULL;
    struct vl_plan plan;
    struct vl_docset cands = {NULL, 0};
    bool *want = NULL, exact = false;
    uint8_t after[VL_DOCTOKEN_BYTES];
    bool has_after = false;
    char *next = NULL;
    json_int_t limit = VL_QUERY_LIMIT_DEFAULT;
    memset(&plan, 0, sizeof(plan));
    vl_status_clear(st);

    veil_err rc = may_read(s, coll, &c, &role, st);
    if (rc != VEIL_OK) {
        return rc;
    }
    json_error_t err;
    q = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);
    if (!json_is_object(q)) {
        rc = vl_status_set(st, VEIL_ERR_BAD_REQUEST, NULL,
                           "the query is not a JSON object (line %d, column %d)", err.line,
                           err.column);
        goto out;
    }
    const char *key;
    json_t *val;
    json_object_foreach(q, key, val) {
        if (strcmp(key, "where") && strcmp(key, "match") && strcmp(key, "select") &&
            strcmp(key, "limit") && strcmp(key, "after")) {
            rc = vl_status_set(st, VEIL_ERR_BAD_REQUEST, key,
                               "unknown query key (known: where, match, select, limit, "
                               "after)");
            goto out;
        }
    }
    json_t *where = json_object_get(q, "where");
    json_t *match = json_object_get(q, "match");
    json_t *select = json_object_get(q, "select");
    json_t *jlimit = json_object_get(q, "limit");
    json_t *jafter = json_object_get(q, "after");
    if (jlimit != NULL) {
        if (!json_is_integer(jlimit) || json_integer_value(jlimit) < 1 ||
            json_integer_value(jlimit) > VL_QUERY_LIMIT_MAX) {
            rc = vl_status_set(st, VEIL_ERR_BAD_REQUEST, "limit",
                               "limit is an integer from 1 to %d", VL_QUERY_LIMIT_MAX);
            goto out;
        }
        limit = json_integer_value(jlimit);
    }
    if (select != NULL) {
        size_t i;
        json_t *p;
        bool ok = json_is_array(select);
        json_array_foreach(select, i, p) {
            ok &= json_is_string(p) && json_string_length(p) > 0;
        }
        if (!ok) {
            rc = vl_status_set(st, VEIL_ERR_BAD_REQUEST, "select",
                               "select is a list of field paths");
            goto out;
        }
    }
    if (jafter != NULL && !json_is_null(jafter) && !json_is_string(jafter)) {
        rc = vl_status_set(st, VEIL_ERR_BAD_REQUEST, "after", "after is a cursor string");
        goto out;
    }
    if (match != NULL) {
        if ((rc = vl_plan_where(c, s->admin ? NULL : role, false, where, &plan, st)) ==
            VEIL_OK) {
            rc = query_match(s, c, role, &plan, where, match, select, (size_t)limit,
                             json_string_value(jafter), json_out, st);
        }
        goto out;
    }
    uint8_t qhash[VL_SHA256_BYTES];
    if (query_hash(where, NULL, qhash) != VEIL_OK) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    if (json_is_string(jafter)) {
        rc = plain_cursor_open(s, c, qhash, json_string_value(jafter), after, st);
        if (rc != VEIL_OK) {
            goto out;
        }
        has_after = true;
    }
    if ((rc = vl_plan_where(c, s->admin ? NULL : role, false, where, &plan, st)) != VEIL_OK) {
        goto out;
    }
    /* The candidates, complete: from the trusted state's own list of live documents
     * without a where, else the verified members of the plan's conditions (verify.c). */
    if (plan.n == 0) {
        if ((cands.docs = malloc(((size_t)limit + 1) * VL_DOCTOKEN_BYTES)) == NULL) {
            rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
            goto out;
        }
        rc = vl_trusted_docs_page(v->trusted, c->tenant_id, c->name, has_after ? after : NULL,
                                  (size_t)limit + 1, cands.docs, &cands.n);
        if (rc != VEIL_OK) {
            rc = vl_status_set(st, rc, NULL, "the trusted state is unavailable");
            goto out;
        }
        exact = true;
    } else if (!plan.empty && v->unverified) {
        rc = vl_plan_candidates_unverified(s, c, &plan, has_after ? after : NULL,
                                           (size_t)limit + 1, &cands, st);
        exact = true;
        if (rc != VEIL_OK) {
            goto out;
        }
    } else if (!plan.empty &&
               (rc = vl_plan_candidates(s, c, &plan, &cands, &exact, st)) != VEIL_OK) {
        goto out;
    }
    if ((want = want_fields(c, select, &plan)) == NULL && select != NULL) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    size_t from = 0;
    while (has_after && from < cands.n &&
           memcmp(cands.docs[from], after, VL_DOCTOKEN_BYTES) <= 0) {
        from++;
    }
    docs = json_array();
    uint8_t last[VL_DOCTOKEN_BYTES];
    bool more = false;
    if (docs == NULL) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    rc = page_from(s, c, &plan, cands.docs + from, cands.n - from, exact, (size_t)limit, want,
                   select, docs, last, &more, st);
    if (rc != VEIL_OK) {
        goto out;
    }
    if (more && (rc = plain_cursor_seal(s, c, qhash, last, &next)) != VEIL_OK) {
        rc = vl_status_set(st, rc, NULL, "cannot make a cursor");
        goto out;
    }
    rc = answer_page(docs, next, json_out, st);
out:
    free(want);
    free(next);
    vl_docset_free(&cands);
    vl_plan_free(&plan);
    json_decref(docs);
    json_decref(q);
    return rc;
}
