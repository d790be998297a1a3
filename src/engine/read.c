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
 * What the store learns from a query: the opaque table, the equality tokens asked for (so,
 * whether two queries ask for the same value), and which rows matched.
 */
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "engine/engine.h"
#include "util/log.h"

#define READ_TRIES 3

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

/* The row of doc in rows, or NULL. */
static const struct vl_row *row_of(const struct vl_rows *rows, const uint8_t *doc)
{
    for (size_t i = 0; i < rows->n; i++) {
        if (rows->rows[i].doc.n == VL_DOCTOKEN_BYTES &&
            memcmp(rows->rows[i].doc.p, doc, VL_DOCTOKEN_BYTES) == 0) {
            return &rows->rows[i];
        }
    }
    return NULL;
}

/* Does what the stores returned for one document match its trusted state? On a match,
 * opens it into *o. Returns VEIL_OK, VEIL_ERR_NOT_FOUND (not live), or VEIL_ERR_INTEGRITY. */
static veil_err check_open(const veil_vault *v, const struct vl_coll *c,
                           const struct vl_docstate *ds, struct vl_rows *rows,
                           const bool *want, struct opened *o)
{
    struct vl_bytes parts[VL_MAX_STORES] = {{0}};
    bool any_row = false;
    if (!ds->exists && !ds->pending && v->rollback_accepted) {
        return VEIL_ERR_NOT_FOUND; /* a write the trusted state lost in an accepted rollback */
    }
    for (size_t i = 0; i < v->nstores; i++) {
        const struct vl_row *r = row_of(&rows[i], ds->doc);
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
 * meanwhile). */
static veil_err fetch(veil_session *s, const struct vl_coll *c, const struct vl_bytes *toks,
                      size_t n, const bool *fields, struct opened *out, bool *found,
                      veil_status *st)
{
    veil_vault *v = s->v;
    veil_err rc = VEIL_OK;
    struct vl_docstate *states = calloc(n ? n : 1, sizeof(*states));
    struct vl_rows rows[VL_MAX_STORES];
    bool *done = calloc(n ? n : 1, sizeof(*done));
    memset(rows, 0, sizeof(rows));
    memset(out, 0, n * sizeof(*out));
    if (states == NULL || done == NULL) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    for (int attempt = 0; attempt < READ_TRIES; attempt++) {
        size_t left = 0;
        struct vl_bytes *want = calloc(n ? n : 1, sizeof(*want));
        if (want == NULL) {
            rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < n; i++) {
            if (!done[i]) {
                want[left++] = toks[i];
            }
        }
        vl_docstates_free(states, n);
        rc = vl_trusted_docs_get(v->trusted, c->tenant_id, c->name, want, left, states);
        for (size_t i = 0; rc == VEIL_OK && i < v->nstores; i++) {
            vl_rows_free(&rows[i]);
            rc = v->stores[i]->ops->get_rows(v->stores[i], c->table, want, left, &rows[i]);
            if (rc != VEIL_OK) {
                rc = vl_status_set(st, VEIL_ERR_STORE_UNAVAILABLE, NULL,
                                   "store %s is unavailable", v->cfg.store_names[i]);
            }
        }
        free(want);
        if (rc != VEIL_OK) {
            if (st != NULL && st->code != rc) {
                vl_status_set(st, rc, NULL, "the trusted state is unavailable");
            }
            goto out;
        }
        size_t k = 0, bad = 0;
        for (size_t i = 0; i < n; i++) {
            if (done[i]) {
                continue;
            }
            veil_err r = check_open(v, c, &states[k++], rows, fields, &out[i]);
            if (r == VEIL_OK || r == VEIL_ERR_NOT_FOUND) {
                done[i] = true;
                found[i] = r == VEIL_OK;
            } else {
                bad++;
            }
        }
        if (bad == 0) {
            goto out;
        }
    }
    rc = vl_breach(v, s, c->name, "a row failed its digest or AEAD check", st);
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
    if ((rc = fetch(s, c, &b, 1, NULL, &o, &found, st)) != VEIL_OK) {
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

static veil_err cursor_seal(const struct vl_coll *c, const uint8_t *doc, char **out)
{
    uint8_t box[vl_aead_box_len(VL_DOCTOKEN_BYTES)];
    if (vl_aead_box_seal(box, doc, VL_DOCTOKEN_BYTES, (const uint8_t *)c->table,
                         strlen(c->table), c->cursor_key) != 0) {
        return VEIL_ERR_INTERNAL;
    }
    *out = malloc(2 * sizeof(box) + 1);
    if (*out == NULL) {
        return VEIL_ERR_INTERNAL;
    }
    vl_hex(*out, box, sizeof(box));
    return VEIL_OK;
}

static veil_err cursor_open(const struct vl_coll *c, const char *cur, uint8_t *doc,
                            veil_status *st)
{
    uint8_t box[vl_aead_box_len(VL_DOCTOKEN_BYTES)];
    size_t n = 0;
    if (vl_unhex(box, sizeof(box), cur) != 0 ||
        vl_aead_box_open(doc, &n, box, sizeof(box), (const uint8_t *)c->table,
                         strlen(c->table), c->cursor_key) != 0 ||
        n != VL_DOCTOKEN_BYTES) {
        return vl_status_set(st, VEIL_ERR_BAD_REQUEST, "after",
                             "the cursor is not one this collection gave out");
    }
    return VEIL_OK;
}

/* ---- query with match: ranked, paged by (score, token) ---- */

#define MATCH_CURSOR 'M'

/* A cursor after hit h: its score and token, and the snapshot that ranks the pages. */
static veil_err match_cursor_seal(const struct vl_coll *c, const struct vl_match *m,
                                  const struct vl_match_snap *snap, const struct vl_hit *h,
                                  char **out)
{
    struct vl_buf b;
    uint64_t bits;
    uint8_t *box = NULL;
    memcpy(&bits, &h->score, sizeof(bits));
    vl_buf_init(&b, 1 << 16);
    veil_err rc = vl_buf_put_u8(&b, MATCH_CURSOR);
    if (rc == VEIL_OK) {
        rc = vl_buf_put_u64(&b, bits);
    }
    if (rc == VEIL_OK) {
        rc = vl_buf_append(&b, h->doc, VL_DOCTOKEN_BYTES);
    }
    if (rc == VEIL_OK) {
        rc = vl_match_snap_put(m, snap, &b);
    }
    if (rc == VEIL_OK && ((box = malloc(vl_aead_box_len(b.len))) == NULL ||
                          (*out = malloc(2 * vl_aead_box_len(b.len) + 1)) == NULL)) {
        rc = VEIL_ERR_INTERNAL;
    }
    if (rc == VEIL_OK && vl_aead_box_seal(box, b.data, b.len, (const uint8_t *)c->table,
                                          strlen(c->table), c->cursor_key) != 0) {
        free(*out);
        *out = NULL;
        rc = VEIL_ERR_INTERNAL;
    }
    if (rc == VEIL_OK) {
        vl_hex(*out, box, vl_aead_box_len(b.len));
    }
    free(box);
    vl_buf_free(&b);
    return rc;
}

static veil_err match_cursor_open(const struct vl_coll *c, const struct vl_match *m,
                                  const char *cur, struct vl_match_snap *snap,
                                  struct vl_hit *pos, veil_status *st)
{
    size_t len = strlen(cur) / 2, n = 0;
    uint8_t *box = malloc(len + 1), *plain = malloc(len + 1);
    int ok = box != NULL && plain != NULL && len > vl_aead_box_len(0) && len < (1 << 16) &&
             strlen(cur) % 2 == 0 && vl_unhex(box, len, cur) == 0 &&
             vl_aead_box_open(plain, &n, box, len, (const uint8_t *)c->table,
                              strlen(c->table), c->cursor_key) == 0;
    struct vl_reader r = {plain, n};
    uint8_t kind = 0;
    uint64_t bits = 0;
    const uint8_t *doc = NULL;
    ok = ok && vl_read_u8(&r, &kind) == 0 && kind == MATCH_CURSOR &&
         vl_read_u64(&r, &bits) == 0 && vl_read_bytes(&r, &doc, VL_DOCTOKEN_BYTES) == 0 &&
         vl_match_snap_get(m, &r, snap) == 0 && r.n == 0;
    if (ok) {
        memcpy(&pos->score, &bits, sizeof(bits));
        memcpy(pos->doc, doc, VL_DOCTOKEN_BYTES);
    }
    free(box);
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

/* Keeps the hits whose rows the store finds matching the where clause. */
static veil_err match_where(veil_session *s, const struct vl_coll *c, const struct vl_plan *plan,
                            struct vl_hits *hits, veil_status *st)
{
    veil_vault *v = s->v;
    struct vl_doclist list = {0};
    if (plan->n == 0 || hits->n == 0) {
        return VEIL_OK;
    }
    if (plan->empty) {
        hits->n = 0;
        return VEIL_OK;
    }
    struct vl_bytes *toks = calloc(hits->n, sizeof(*toks));
    if (toks == NULL) {
        return vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
    }
    for (size_t i = 0; i < hits->n; i++) {
        toks[i].p = hits->h[i].doc;
        toks[i].n = VL_DOCTOKEN_BYTES;
    }
    struct vl_pred pred = plan->pred;
    pred.only_docs = true;
    pred.docs = toks;
    pred.ndocs = hits->n;
    struct vl_store *store = v->stores[0];
    veil_err rc = store->ops->find(store, c->table, &pred, NULL, hits->n, &list);
    free(toks);
    if (rc != VEIL_OK) {
        return vl_status_set(st, VEIL_ERR_STORE_UNAVAILABLE, NULL, "store %s is unavailable",
                             v->cfg.store_names[0]);
    }
    size_t k = 0;
    for (size_t i = 0; i < hits->n; i++) {
        if (list.n > 0 && bsearch(hits->h[i].doc, list.docs, list.n, VL_DOCTOKEN_BYTES,
                                  tok_cmp) != NULL) {
            hits->h[k++] = hits->h[i];
        }
    }
    hits->n = k;
    vl_doclist_free(&list);
    return VEIL_OK;
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
    json_t *both = json_pack("{s:O?, s:O}", "where", where, "match", match);
    char *canon = both != NULL ? json_dumps(both, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(both);
    if (canon == NULL) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    uint8_t h[VL_SHA256_BYTES];
    vl_sha256(h, canon, strlen(canon));
    memcpy(m.hash, h, sizeof(m.hash));
    free(canon);
    if (after != NULL && (rc = match_cursor_open(c, &m, after, &snap, &pos, st)) != VEIL_OK) {
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
    if ((rc = fetch(s, c, toks, take, want, op, found, st)) != VEIL_OK) {
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
            if ((rc = fetch(s, c, &toks[i], 1, NULL, &whole, &f2, st)) != VEIL_OK) {
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
            if (changed) {
                continue; /* written since the search: it no longer passes the where */
            }
            rc = vl_breach(s->v, s, c->name, "a store returned a row the query does not match",
                           st);
            goto out;
        }
        answer_append(docs, c, s, &op[i], select);
    }
    if (start + take < hits.n &&
        (rc = match_cursor_seal(c, &m, &snap, &hits.h[start + take - 1], &next)) != VEIL_OK) {
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

veil_err veil_query(veil_session *s, const char *coll, const char *body, size_t len,
                    char **json_out, veil_status *st)
{
    veil_vault *v = s->v;
    const struct vl_coll *c = NULL;
    const struct vl_role *role = NULL;
    json_t *q = NULL, *docs = NULL;
    struct vl_plan plan;
    struct vl_doclist list = {0};
    struct opened *op = NULL;
    bool *found = NULL, *want = NULL;
    uint8_t after[VL_DOCTOKEN_BYTES];
    bool has_after = false;
    char *next = NULL;
    json_int_t limit = VL_QUERY_LIMIT_DEFAULT;
    size_t n = 0;
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
    if (jafter != NULL && !json_is_null(jafter)) {
        if (!json_is_string(jafter) ||
            (rc = cursor_open(c, json_string_value(jafter), after, st)) != VEIL_OK) {
            rc = rc != VEIL_OK ? rc
                               : vl_status_set(st, VEIL_ERR_BAD_REQUEST, "after",
                                               "after is a cursor string");
            goto out;
        }
        has_after = true;
    }
    if ((rc = vl_plan_where(c, s->admin ? NULL : role, false, where, &plan, st)) != VEIL_OK) {
        goto out;
    }
    struct vl_store *store = v->stores[0];
    if (plan.empty) {
        list.n = 0;
    } else {
        rc = store->ops->find(store, c->table, &plan.pred, has_after ? after : NULL,
                              (size_t)limit + 1, &list);
    }
    if (rc != VEIL_OK) {
        rc = vl_status_set(st, rc == VEIL_ERR_INTEGRITY ? rc : VEIL_ERR_STORE_UNAVAILABLE,
                           NULL, "store %s is unavailable", v->cfg.store_names[0]);
        goto out;
    }
    n = list.n > (size_t)limit ? (size_t)limit : list.n;
    struct vl_bytes *toks = calloc(n + 1, sizeof(*toks));
    op = calloc(n + 1, sizeof(*op));
    found = calloc(n + 1, sizeof(*found));
    if (toks == NULL || op == NULL || found == NULL) {
        free(toks);
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        toks[i].p = list.docs[i];
        toks[i].n = VL_DOCTOKEN_BYTES;
        if (i > 0 && memcmp(list.docs[i - 1], list.docs[i], VL_DOCTOKEN_BYTES) >= 0) {
            free(toks);
            rc = vl_breach(v, s, c->name, "a store returned rows out of order or twice", st);
            goto out;
        }
    }
    if ((want = want_fields(c, select, &plan)) == NULL && select != NULL) {
        free(toks);
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    rc = fetch(s, c, toks, n, want, op, found, st);
    free(toks);
    if (rc != VEIL_OK) {
        goto out;
    }
    docs = json_array();
    for (size_t i = 0; i < n; i++) {
        if (!found[i]) {
            continue; /* deleted between the find and the fetch */
        }
        if (!vl_plan_satisfied(&plan, op[i].doc)) {
            rc = vl_breach(v, s, c->name, "a store returned a row the query does not match",
                           st);
            goto out;
        }
        answer_append(docs, c, s, &op[i], select);
    }
    if (list.n > (size_t)limit && (rc = cursor_seal(c, list.docs[n - 1], &next)) != VEIL_OK) {
        rc = vl_status_set(st, rc, NULL, "cannot make a cursor");
        goto out;
    }
    rc = answer_page(docs, next, json_out, st);
out:
    if (op != NULL) {
        opened_free(op, n);
    }
    free(op);
    free(found);
    free(want);
    free(next);
    vl_doclist_free(&list);
    vl_plan_free(&plan);
    json_decref(docs);
    json_decref(q);
    return rc;
}
