/*
 * mark.c: noticing a trusted state that is behind its stores, and accepting it.
 *
 * The trusted state's mark grows with every block reservation and every write batch
 * (trusted.h). Each store keeps sealed copies of it (engine.h): per collection table, one
 * written in the same store call as each batch's rows; and in an installation table, one
 * written when a block is reserved, before any row of the block. A trusted state restored
 * from a backup (or one that lost its last transactions) no longer knows the writes since:
 * their marks in the stores are above its own. At open, before anything is written, the
 * engine reads every copy and refuses to go on when one is higher, with a message saying
 * what happened, what is at stake and what to do; `veil trusted accept-rollback` records
 * that the operator accepts the loss, moves the mark past the stores' and settles what the
 * stores hold that the trusted state cannot vouch for.
 *
 * What the store learns: which key-value entry of a table is a mark (it is rewritten by
 * every write, and 48 bytes long), and how often a table is written, which it saw anyway.
 * The mark itself is sealed. Keys: a random installation key, wrapped by the root key in
 * the trusted state, from which keyed BLAKE2b derives a label key, a sealing key and the
 * installation table's name. A store can forge no mark; it can hide one (serve an old
 * copy, or none): the check then does not fire, which README.md states.
 *
 * Invariants: copies are read before the trusted mark, so a write finishing meanwhile (it
 * moved the trusted mark before it wrote the copy) is never mistaken for a lost one; a
 * mark that does not open is a store's doing (labels come from the same key, so a copy
 * under another installation's key is never read) and refuses the open too.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "crypto/crypto.h"
#include "engine/engine.h"
#include "engine/write.h"
#include "util/log.h"

#define MARK_KEY_META "mark_key"
#define MARK_KEY_BYTES 32
#define RECONCILE_PAGE 500

static const char mark_key_ad[] = "veil/v1/mark-key";

/* out = BLAKE2b keyed by key of what. */
static void derive(uint8_t *out, size_t outlen, const uint8_t *key, const char *what)
{
    crypto_generichash_blake2b(out, outlen, (const uint8_t *)what, strlen(what), key,
                               MARK_KEY_BYTES);
}

veil_err vl_mark_init(veil_vault *v, veil_status *st)
{
    veil_err rc = VEIL_OK;
    struct vl_buf wrapped;
    uint8_t *key = vl_secret_alloc(MARK_KEY_BYTES);
    uint64_t n = 0;
    vl_buf_init(&wrapped, 4096);
    if (key == NULL || (v->mark_keys = vl_secret_alloc(2 * MARK_KEY_BYTES)) == NULL) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    rc = vl_trusted_meta_get(v->trusted, MARK_KEY_META, &wrapped);
    if (rc == VEIL_ERR_NOT_FOUND) {
        /* The first open by a veil that keeps marks: make the key. */
        vl_random(key, MARK_KEY_BYTES);
        rc = v->keyring->ops->wrap(v->keyring, key, MARK_KEY_BYTES,
                                   (const uint8_t *)mark_key_ad, strlen(mark_key_ad), &wrapped);
        struct vl_bytes b = {wrapped.data, wrapped.len};
        if (rc == VEIL_OK) {
            rc = vl_trusted_meta_put_new(v->trusted, MARK_KEY_META, &b);
        }
        vl_buf_reset(&wrapped);
        if (rc == VEIL_OK) {
            rc = vl_trusted_meta_get(v->trusted, MARK_KEY_META, &wrapped); /* who won */
        }
    }
    if (rc == VEIL_OK) {
        rc = v->keyring->ops->unwrap(v->keyring, wrapped.data, wrapped.len,
                                     (const uint8_t *)mark_key_ad, strlen(mark_key_ad), key,
                                     MARK_KEY_BYTES);
        if (rc != VEIL_OK) {
            rc = vl_status_set(st, VEIL_ERR_INTEGRITY, NULL,
                               "the mark key in the trusted state failed to unwrap");
            goto out;
        }
    }
    if (rc == VEIL_OK) {
        uint8_t name[16];
        derive(v->mark_keys, MARK_KEY_BYTES, key, "veil/v1/mark/label");
        derive(v->mark_keys + MARK_KEY_BYTES, MARK_KEY_BYTES, key, "veil/v1/mark/seal");
        derive(name, sizeof(name), key, "veil/v1/mark/table");
        vl_hex(v->mark_table, name, sizeof(name));
        rc = vl_trusted_rollbacks(v->trusted, &n);
        v->rollback_accepted = n > 0;
    }
    if (rc != VEIL_OK && (st == NULL || st->code == VEIL_OK)) {
        vl_status_set(st, rc, NULL, "the trusted state is unavailable");
    }
out:
    vl_secret_free(key);
    vl_buf_free(&wrapped);
    return rc;
}

/* The associated data of a mark: table and slot. */
static size_t mark_ad(const char *table, uint8_t slot, uint8_t *out)
{
    static const char tag[] = "veil/v1/mark";
    size_t tl = strlen(table), n = 0;
    memcpy(out, tag, sizeof(tag) - 1);
    n += sizeof(tag) - 1;
    vl_store_u32(out + n, (uint32_t)tl);
    n += 4;
    memcpy(out + n, table, tl);
    n += tl;
    out[n++] = slot;
    return n;
}

static void mark_label(const veil_vault *v, const char *table, uint8_t slot,
                       uint8_t out[VL_KV_KEY_BYTES])
{
    uint8_t ad[16 + 4 + VL_TABLE_NAME_MAX + 1];
    size_t n = mark_ad(table, slot, ad);
    crypto_generichash_blake2b(out, VL_KV_KEY_BYTES, ad, n, v->mark_keys, MARK_KEY_BYTES);
}

/* Seals `mark` into slot `slot` of `table`. */
static void mark_seal(const veil_vault *v, const char *table, uint8_t slot, uint64_t mark,
                      struct vl_mark_entry *e)
{
    uint8_t ad[16 + 4 + VL_TABLE_NAME_MAX + 1], m[8];
    size_t n = mark_ad(table, slot, ad);
    vl_store_u64(m, mark);
    mark_label(v, table, slot, e->label);
    (void)vl_aead_box_seal(e->value, m, sizeof(m), ad, n, v->mark_keys + MARK_KEY_BYTES);
    e->kv.key.p = e->label;
    e->kv.key.n = sizeof(e->label);
    e->kv.val.p = e->value;
    e->kv.val.n = sizeof(e->value);
}

void vl_mark_entry(const veil_vault *v, const char *table, uint64_t mark,
                   struct vl_mark_entry *e)
{
    mark_seal(v, table, (uint8_t)(mark % VL_MARK_SLOTS), mark, e);
}

veil_err vl_mark_global(veil_vault *v, uint64_t mark)
{
    struct vl_mark_entry e;
    vl_mark_entry(v, v->mark_table, mark, &e);
    for (size_t i = 0; i < v->nstores; i++) {
        if (v->stores[i]->ops->kv_put(v->stores[i], v->mark_table, &e.kv, 1) != VEIL_OK) {
            vl_log(VL_LOG_WARN, "store %s failed to take a mark", v->cfg.store_names[i]);
            return VEIL_ERR_STORE_UNAVAILABLE;
        }
    }
    return VEIL_OK;
}

/* The highest mark of `table` in store i: *max (kept when higher than what it holds);
 * *bad set when a copy does not open. */
static veil_err marks_read(veil_vault *v, size_t i, const char *table, uint64_t *max,
                           bool *bad)
{
    uint8_t labels[VL_MARK_SLOTS][VL_KV_KEY_BYTES];
    struct vl_bytes keys[VL_MARK_SLOTS];
    struct vl_kv_values vals = {0};
    for (uint8_t k = 0; k < VL_MARK_SLOTS; k++) {
        mark_label(v, table, k, labels[k]);
        keys[k].p = labels[k];
        keys[k].n = VL_KV_KEY_BYTES;
    }
    struct vl_store *s = v->stores[i];
    veil_err rc = s->ops->kv_get(s, table, keys, VL_MARK_SLOTS, &vals);
    if (rc == VEIL_ERR_INTEGRITY) {
        vl_kv_values_free(&vals);
        *bad = true; /* the store holds something there it cannot even return */
        return VEIL_OK;
    }
    if (rc != VEIL_OK || vals.n != VL_MARK_SLOTS) {
        vl_kv_values_free(&vals);
        return VEIL_ERR_STORE_UNAVAILABLE;
    }
    for (uint8_t k = 0; k < VL_MARK_SLOTS; k++) {
        uint8_t ad[16 + 4 + VL_TABLE_NAME_MAX + 1], m[8];
        size_t adlen = mark_ad(table, k, ad), mlen = 0;
        if (vals.vals[k].p == NULL) {
            continue;
        }
        if (vals.vals[k].n != VL_MARK_VALUE_BYTES ||
            vl_aead_box_open(m, &mlen, vals.vals[k].p, vals.vals[k].n, ad, adlen,
                             v->mark_keys + MARK_KEY_BYTES) != 0) {
            *bad = true;
            continue;
        }
        if (vl_load_u64(m) > *max) {
            *max = vl_load_u64(m);
        }
    }
    vl_kv_values_free(&vals);
    return VEIL_OK;
}

/* Every table the marks may be in: the installation's, then each collection's. */
struct tables {
    char (*names)[2 * 16 + 1];
    size_t n;
    struct vl_collref *refs; /* refs[i] is table i + 1's collection */
    size_t nrefs;
};

static void tables_free(struct tables *t)
{
    free(t->names);
    vl_collrefs_free(t->refs, t->nrefs);
    memset(t, 0, sizeof(*t));
}

static veil_err tables_get(veil_vault *v, struct tables *t, veil_status *st)
{
    memset(t, 0, sizeof(*t));
    veil_err rc = vl_trusted_collections_all(v->trusted, &t->refs, &t->nrefs);
    if (rc != VEIL_OK) {
        return vl_status_set(st, rc, NULL, "the trusted state is unavailable");
    }
    if ((t->names = calloc(t->nrefs + 1, sizeof(*t->names))) == NULL) {
        return vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
    }
    memcpy(t->names[0], v->mark_table, sizeof(t->names[0]));
    t->n = 1;
    for (size_t i = 0; rc == VEIL_OK && i < t->nrefs; i++) {
        rc = vl_coll_table(v, t->refs[i].tenant, t->refs[i].tenant_name, t->refs[i].name,
                           t->names[t->n++], st);
    }
    return rc;
}

/* The highest mark any store holds: *max, and in *store (if any) the store holding it;
 * *bad: the store of a copy that does not open (-1: none). */
static veil_err marks_scan(veil_vault *v, const struct tables *t, uint64_t *max, int *store,
                           int *bad, veil_status *st)
{
    *max = 0;
    *store = -1;
    *bad = -1;
    for (size_t i = 0; i < v->nstores; i++) {
        for (size_t k = 0; k < t->n; k++) {
            uint64_t m = *max;
            bool b = false;
            if (marks_read(v, i, t->names[k], &m, &b) != VEIL_OK) {
                return vl_status_set(st, VEIL_ERR_STORE_UNAVAILABLE, NULL,
                                     "store %s is unavailable: cannot check that it holds "
                                     "no writes the trusted state does not know of",
                                     v->cfg.store_names[i]);
            }
            if (m > *max) {
                *max = m;
                *store = (int)i;
            }
            if (b && *bad < 0) {
                *bad = (int)i;
            }
        }
    }
    return VEIL_OK;
}

veil_err vl_mark_check(veil_vault *v, veil_status *st)
{
    struct tables t;
    uint64_t max = 0, mine = 0;
    int store = -1, bad = -1;
    veil_err rc = tables_get(v, &t, st);
    if (rc == VEIL_OK) {
        rc = marks_scan(v, &t, &max, &store, &bad, st);
    }
    tables_free(&t);
    if (rc != VEIL_OK) {
        return rc;
    }
    /* Read after the stores' copies: see the invariants above. */
    if ((rc = vl_trusted_mark(v->trusted, &mine)) != VEIL_OK) {
        return vl_status_set(st, rc, NULL, "the trusted state is unavailable");
    }
    if (bad >= 0) {
        vl_log(VL_LOG_ERROR, "breach_suspected: store %s holds a rollback mark that fails "
                             "its integrity check", v->cfg.store_names[bad]);
        return vl_status_set(st, VEIL_ERR_INTEGRITY, NULL,
                             "store %s holds a rollback mark that fails its integrity check: "
                             "the store altered it. If you trust this trusted.db, "
                             "veil trusted accept-rollback rewrites the marks",
                             v->cfg.store_names[bad]);
    }
    if (max > mine) {
        vl_log(VL_LOG_ERROR,
               "the trusted state is behind store %s (its mark %llu, ours %llu): trusted.db "
               "was restored from a backup or lost its last transactions; documents written "
               "since are unknown to it, and going on could reuse what they used. Put back "
               "the newest trusted.db if it exists, or accept the loss with "
               "`veil trusted accept-rollback`",
               v->cfg.store_names[store], (unsigned long long)max, (unsigned long long)mine);
        return vl_status_set(st, VEIL_ERR_CONFLICT, NULL,
                             "trusted.db is behind store %s: restored from a backup or it lost "
                             "its last transactions, so writes the store holds are unknown to "
                             "it. Put back the newest trusted.db if you have it, or accept "
                             "the loss: veil trusted accept-rollback",
                             v->cfg.store_names[store]);
    }
    return VEIL_OK;
}

/* ---- accepting a rollback ---- */

/* Per collection: rows removed (documents the trusted state never heard of) and
 * documents forgotten (their last version is in no store any more). */
struct settled {
    size_t removed;
    size_t forgotten;
};

/* Does what the stores hold for document ds match its trusted state? */
static bool rows_match(const veil_vault *v, const struct vl_docstate *ds,
                       const struct vl_rows *rows)
{
    struct vl_bytes parts[VL_MAX_STORES] = {{0}};
    uint8_t digest[VL_DIGEST_BYTES];
    bool any = false;
    for (size_t i = 0; i < v->nstores; i++) {
        for (size_t k = 0; k < rows[i].n; k++) {
            if (memcmp(rows[i].rows[k].doc.p, ds->doc, VL_DOCTOKEN_BYTES) == 0) {
                if (rows[i].rows[k].seq != ds->seq) {
                    return false;
                }
                parts[i] = rows[i].rows[k].blob;
                any = true;
            }
        }
    }
    vl_doc_digest(ds->seq, parts, v->nstores, &ds->part, digest);
    return any && vl_ct_equal(digest, ds->digest, VL_DIGEST_BYTES);
}

/* Settles one page of document tokens: rows of documents the trusted state never heard
 * of (or holds as deleted) go; live documents whose rows do not match are forgotten. */
static veil_err settle_page(veil_session *s, const struct vl_coll *c,
                            uint8_t (*toks)[VL_DOCTOKEN_BYTES], size_t n, struct settled *out)
{
    veil_vault *v = s->v;
    struct vl_bytes *docs = calloc(n ? n : 1, sizeof(*docs));
    struct vl_bytes *gone = calloc(n ? n : 1, sizeof(*gone));
    uint8_t (*lost)[VL_DOCTOKEN_BYTES] = calloc(n ? n : 1, sizeof(*lost));
    struct vl_docstate *states = calloc(n ? n : 1, sizeof(*states));
    struct vl_rows rows[VL_MAX_STORES];
    size_t ngone = 0, nlost = 0, done = 0;
    veil_err rc = VEIL_OK;
    memset(rows, 0, sizeof(rows));
    if (docs == NULL || gone == NULL || lost == NULL || states == NULL) {
        rc = VEIL_ERR_INTERNAL;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        docs[i].p = toks[i];
        docs[i].n = VL_DOCTOKEN_BYTES;
    }
    rc = vl_trusted_docs_get(v->trusted, c->tenant_id, c->name, docs, n, states);
    for (size_t i = 0; rc == VEIL_OK && i < v->nstores; i++) {
        rc = v->stores[i]->ops->get_rows(v->stores[i], c->table, docs, n, &rows[i]);
    }
    for (size_t i = 0; rc == VEIL_OK && i < n; i++) {
        const struct vl_docstate *ds = &states[i];
        bool any = false;
        for (size_t k = 0; k < v->nstores; k++) {
            for (size_t r = 0; r < rows[k].n; r++) {
                any |= memcmp(rows[k].rows[r].doc.p, ds->doc, VL_DOCTOKEN_BYTES) == 0;
            }
        }
        if (ds->pending) {
            continue; /* a write in flight: not ours to judge */
        }
        if (!ds->live && any) {
            gone[ngone++] = docs[i];
        } else if (ds->live && !rows_match(v, ds, rows)) {
            memcpy(lost[nlost++], ds->doc, VL_DOCTOKEN_BYTES);
        }
    }
    for (size_t i = 0; rc == VEIL_OK && ngone > 0 && i < v->nstores; i++) {
        rc = v->stores[i]->ops->delete_rows(v->stores[i], c->table, gone, ngone);
    }
    if (rc == VEIL_OK && nlost > 0) {
        rc = vl_write_forget(s, c, (const uint8_t(*)[VL_DOCTOKEN_BYTES])lost, nlost, &done);
    }
    if (rc == VEIL_OK) {
        out->removed += ngone;
        out->forgotten += done;
    }
out:
    if (states != NULL) {
        vl_docstates_free(states, n);
    }
    for (size_t i = 0; i < VL_MAX_STORES; i++) {
        vl_rows_free(&rows[i]);
    }
    free(docs);
    free(gone);
    free(lost);
    free(states);
    return rc;
}

/* Walks every row of the collection's table in every store, then every live document of
 * the trusted state, settling each page. */
static veil_err settle(veil_session *s, const struct vl_coll *c, struct settled *out)
{
    veil_vault *v = s->v;
    veil_err rc = VEIL_OK;
    uint8_t (*page)[VL_DOCTOKEN_BYTES] = calloc(RECONCILE_PAGE, VL_DOCTOKEN_BYTES);
    uint8_t after[VL_DOCTOKEN_BYTES];
    if (page == NULL) {
        return VEIL_ERR_INTERNAL;
    }
    for (size_t i = 0; rc == VEIL_OK && i < v->nstores; i++) {
        struct vl_pred all;
        memset(&all, 0, sizeof(all));
        bool first = true;
        for (;;) {
            struct vl_doclist l = {0};
            rc = v->stores[i]->ops->find(v->stores[i], c->table, &all, first ? NULL : after,
                                         RECONCILE_PAGE, &l);
            size_t n = rc == VEIL_OK ? l.n : 0;
            if (n > 0) {
                memcpy(page, l.docs, n * VL_DOCTOKEN_BYTES);
                memcpy(after, l.docs[n - 1], VL_DOCTOKEN_BYTES);
            }
            vl_doclist_free(&l);
            if (rc != VEIL_OK || n == 0) {
                break;
            }
            first = false;
            rc = settle_page(s, c, page, n, out);
        }
    }
    bool first = true;
    while (rc == VEIL_OK) {
        size_t n = 0;
        rc = vl_trusted_docs_page(v->trusted, c->tenant_id, c->name, first ? NULL : after,
                                  RECONCILE_PAGE, page, &n);
        if (rc != VEIL_OK || n == 0) {
            break;
        }
        memcpy(after, page[n - 1], VL_DOCTOKEN_BYTES);
        first = false;
        rc = settle_page(s, c, page, n, out);
    }
    free(page);
    return rc;
}

static veil_err recover_one(void *ctx, int64_t tenant, const char *coll,
                            const struct vl_intent *in)
{
    return vl_intent_recover(ctx, tenant, coll, in);
}

/* Writes `mark` into every slot of every table of every store, over whatever copies the
 * lost writes left there or a store altered. */
static veil_err marks_rewrite(veil_vault *v, const struct tables *t, uint64_t mark)
{
    for (size_t k = 0; k < t->n; k++) {
        struct vl_mark_entry e[VL_MARK_SLOTS];
        struct vl_kv kv[VL_MARK_SLOTS];
        for (size_t j = 0; j < VL_MARK_SLOTS; j++) {
            mark_seal(v, t->names[k], (uint8_t)j, mark, &e[j]);
            kv[j] = e[j].kv;
        }
        for (size_t i = 0; i < v->nstores; i++) {
            if (v->stores[i]->ops->kv_put(v->stores[i], t->names[k], kv, VL_MARK_SLOTS) !=
                VEIL_OK) {
                return VEIL_ERR_STORE_UNAVAILABLE;
            }
        }
    }
    return VEIL_OK;
}

veil_err veil_trusted_accept_rollback(const char *datadir, char **json_out, veil_status *st)
{
    veil_vault *v = NULL;
    struct tables t;
    uint64_t max = 0, mine = 0;
    int store = -1, bad = -1;
    json_t *colls = json_array(), *report = NULL;
    struct vl_rollback rb;
    memset(&t, 0, sizeof(t));
    vl_status_clear(st);
    veil_err rc = colls != NULL ? vl_vault_open_behind(datadir, &v, st) : VEIL_ERR_INTERNAL;
    if (rc == VEIL_OK && (rc = tables_get(v, &t, st)) == VEIL_OK) {
        rc = marks_scan(v, &t, &max, &store, &bad, st);
    }
    if (rc == VEIL_OK && (rc = vl_trusted_mark(v->trusted, &mine)) != VEIL_OK) {
        vl_status_set(st, rc, NULL, "the trusted state is unavailable");
    }
    /* Not behind: nothing to accept, unless an earlier acceptance was cut short (then what
     * follows is done again: it changes nothing that is already settled). */
    bool again = rc == VEIL_OK && max <= mine && bad < 0;
    if (again && !v->rollback_accepted) {
        rc = vl_status_set(st, VEIL_ERR_CONFLICT, NULL,
                           "the trusted state is not behind any store: nothing to accept");
    }
    memset(&rb, 0, sizeof(rb));
    rb.trusted_mark = rb.mark = mine;
    rb.store_mark = max;
    /* From here on the loss is accepted: the trusted state's mark moves past the stores',
     * then the marks there are rewritten, so the next open finds them level. */
    if (rc == VEIL_OK && !again &&
        (rc = vl_trusted_rollback_accept(v->trusted, max, &rb)) != VEIL_OK) {
        vl_status_set(st, rc, NULL, "the trusted state is unavailable");
    }
    if (rc == VEIL_OK && !again) {
        v->rollback_accepted = true;
        if ((rc = marks_rewrite(v, &t, rb.mark)) != VEIL_OK) {
            vl_status_set(st, rc, NULL, "a store is unavailable; run the command again");
        }
    }
    /* Writes the restored state still had in flight, then what the stores hold that the
     * trusted state cannot vouch for. */
    if (rc == VEIL_OK && (rc = vl_trusted_intents_pending(v->trusted, recover_one, v)) !=
                             VEIL_OK) {
        vl_status_set(st, rc, NULL, "cannot finish the writes in flight (is a store down?)");
    }
    for (size_t i = 0; rc == VEIL_OK && i < t.nrefs; i++) {
        veil_session *s = NULL;
        const struct vl_coll *c = NULL;
        struct settled done = {0, 0};
        rc = veil_session_open(v, t.refs[i].tenant_name, "admin", &s, st);
        if (rc == VEIL_OK) {
            rc = vl_coll_get(s, t.refs[i].name, &c, st);
        }
        if (rc == VEIL_OK && (rc = settle(s, c, &done)) != VEIL_OK) {
            vl_status_set(st, rc, NULL, "a store is unavailable; run the command again");
        }
        veil_session_free(s);
        if (rc == VEIL_OK) {
            json_array_append_new(colls, json_pack("{s:s, s:s, s:I, s:I}", "tenant",
                                                   t.refs[i].tenant_name, "collection",
                                                   t.refs[i].name, "rows_removed",
                                                   (json_int_t)done.removed,
                                                   "documents_lost",
                                                   (json_int_t)done.forgotten));
        }
    }
    if (rc == VEIL_OK) {
        report = json_pack("{s:b, s:I, s:I, s:I, s:O}", "accepted", !again, "trusted_mark",
                           (json_int_t)rb.trusted_mark, "store_mark", (json_int_t)rb.store_mark,
                           "mark", (json_int_t)rb.mark, "collections", colls);
        if (report == NULL || (*json_out = vl_json_text(report)) == NULL) {
            rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
        }
    }
    json_decref(report);
    json_decref(colls);
    tables_free(&t);
    veil_vault_close(v);
    return rc;
}
