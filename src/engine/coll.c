/*
 * coll.c: registered collections and their working keys.
 *
 * A collection's policy is registered once per tenant (a different policy under the same
 * name is a conflict), so a loaded collection never changes: it is built on first use,
 * with every subkey derived from the tenant key, and cached by the vault until the tenant
 * is shredded. Naming keys (opaque table name, document tokens, column ids) come from key
 * version 1 so that names stay put when data keys rotate.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "crypto/crypto.h"
#include "engine/engine.h"

#define NAMING_KEY_VERSION 1

static void fctx_free(struct vl_fctx *fc)
{
    vl_secret_free(fc->aead_key);
    vl_secret_free(fc->eq_key);
    vl_secret_free(fc->mask_key);
    vl_secret_free(fc->range_key);
    vl_secret_free(fc->sum_key);
    vl_secret_free(fc->mac_key);
    fc->mac_key = NULL;
    vl_secret_free(fc->search_key);
    vl_paillier_field_free(fc);
    fc->aead_key = fc->eq_key = fc->mask_key = fc->range_key = fc->sum_key = NULL;
    fc->search_key = NULL;
}

void vl_coll_free(struct vl_coll *c)
{
    if (c == NULL) {
        return;
    }
    if (c->fields != NULL) {
        for (size_t i = 0; i < c->policy->nfields; i++) {
            fctx_free(&c->fields[i]);
        }
    }
    fctx_free(&c->id);
    fctx_free(&c->rest);
    free(c->fields);
    if (c->seq != NULL) {
        pthread_mutex_destroy(&c->seq->mu);
        free(c->seq);
    }
    vl_secret_free(c->doc_key);
    vl_secret_free(c->cursor_key);
    vl_secret_free(c->set_key);
    vl_policy_free(c->policy);
    free(c->tenant);
    free(c->name);
    free(c);
}

const struct vl_fctx *vl_coll_field(const struct vl_coll *c, const char *path)
{
    for (size_t i = 0; i < c->policy->nfields; i++) {
        if (strcmp(c->fields[i].path, path) == 0) {
            return &c->fields[i];
        }
    }
    return NULL;
}

static int store_index(const veil_vault *v, const struct vl_field *f)
{
    if (f == NULL || f->store == NULL) {
        return 0;
    }
    if (f->trusted) {
        return -1;
    }
    for (size_t i = 0; i < v->nstores; i++) {
        if (strcmp(v->cfg.store_names[i], f->store) == 0) {
            return (int)i;
        }
    }
    return 0; /* the policy parser only lets configured names through */
}

/* Derives a field's keys: col id from the naming key, data keys from the current one. */
static veil_err fctx_init(struct vl_fctx *fc, const veil_vault *v, const struct vl_coll *c,
                          const struct vl_field *f, const char *path, const uint8_t *naming,
                          const uint8_t *current)
{
    static const char *const purposes[] = {"value-id", "column-eq", "column-range",
                                           "column-sum", "column-sum-mac"};
    uint8_t *cols[] = {fc->vcol, fc->col, fc->rcol, fc->scol, fc->tcol};
    uint8_t col[32];
    veil_err rc = VEIL_OK;
    fc->f = f;
    fc->path = path;
    fc->store = store_index(v, f);
    for (size_t i = 0; rc == VEIL_OK && i < sizeof(cols) / sizeof(cols[0]); i++) {
        rc = vl_subkey(col, sizeof(col), naming, c->tenant, c->name, path, purposes[i],
                       NAMING_KEY_VERSION);
        memcpy(cols[i], col, VL_COL_BYTES);
    }
    sodium_memzero(col, sizeof(col));
    if (rc != VEIL_OK) {
        return rc;
    }
    if ((fc->aead_key = vl_secret_alloc(VL_AEAD_KEYBYTES)) == NULL) {
        return VEIL_ERR_INTERNAL;
    }
    rc = vl_subkey(fc->aead_key, VL_AEAD_KEYBYTES, current, c->tenant, c->name, path, "aead",
                   c->key_version);
    if (rc == VEIL_OK && f != NULL && (f->tactics & VL_TAC_EQ)) {
        if ((fc->eq_key = vl_secret_alloc(VL_SIV_KEYBYTES)) == NULL) {
            return VEIL_ERR_INTERNAL;
        }
        rc = vl_subkey(fc->eq_key, VL_SIV_KEYBYTES, current, c->tenant, c->name, path, "eq",
                       c->key_version);
    }
    if (rc == VEIL_OK && f != NULL && (f->tactics & VL_TAC_RANGE)) {
        if ((fc->range_key = vl_secret_alloc(32)) == NULL) {
            return VEIL_ERR_INTERNAL;
        }
        rc = vl_subkey(fc->range_key, 32, current, c->tenant, c->name, path, "range",
                       c->key_version);
    }
    if (rc == VEIL_OK && f != NULL && (f->tactics & VL_TAC_SEARCH)) {
        if ((fc->search_key = vl_secret_alloc(VL_SEARCH_KEY_BYTES)) == NULL) {
            return VEIL_ERR_INTERNAL;
        }
        rc = vl_subkey(fc->search_key, VL_SEARCH_KEY_BYTES, current, c->tenant, c->name, path,
                       "search", c->key_version);
    }
    if (rc == VEIL_OK && f != NULL && (f->tactics & VL_TAC_SUM) &&
        f->sum_scheme == VL_SUM_ASHE) {
        if ((fc->sum_key = vl_secret_alloc(32)) == NULL) {
            return VEIL_ERR_INTERNAL;
        }
        rc = vl_subkey(fc->sum_key, 32, current, c->tenant, c->name, path, "sum-ashe",
                       c->key_version);
    }
    if (rc == VEIL_OK && f != NULL && (f->tactics & VL_TAC_SUM)) {
        if ((fc->mac_key = vl_secret_alloc(VL_MAC_KEY_BYTES)) == NULL) {
            return VEIL_ERR_INTERNAL;
        }
        rc = vl_subkey(fc->mac_key, VL_MAC_KEY_BYTES, current, c->tenant, c->name, path,
                       "sum-mac", c->key_version);
    }
    if (rc == VEIL_OK && f != NULL && (f->tactics & VL_TAC_SUM) &&
        f->sum_scheme == VL_SUM_PAILLIER) {
        uint8_t *seed = vl_secret_alloc(32);
        if (seed == NULL) {
            return VEIL_ERR_INTERNAL;
        }
        rc = vl_subkey(seed, 32, current, c->tenant, c->name, path, "sum-paillier",
                       c->key_version);
        if (rc == VEIL_OK) {
            rc = vl_paillier_field_init(fc, seed);
        }
        vl_secret_free(seed);
    }
    if (rc == VEIL_OK && f != NULL && f->mask == VL_MASK_HASH) {
        if ((fc->mask_key = vl_secret_alloc(32)) == NULL) {
            return VEIL_ERR_INTERNAL;
        }
        rc = vl_subkey(fc->mask_key, 32, current, c->tenant, c->name, path, "mask",
                       c->key_version);
    }
    return rc;
}

/* The opaque table name of a collection, from the tenant's naming key. */
static veil_err table_name(const uint8_t *naming, const char *tenant, const char *coll,
                           char out[2 * 16 + 1])
{
    uint8_t table[32];
    veil_err rc = vl_subkey(table, sizeof(table), naming, tenant, coll, "", "table",
                            NAMING_KEY_VERSION);
    if (rc == VEIL_OK) {
        vl_hex(out, table, 16);
    }
    sodium_memzero(table, sizeof(table));
    return rc;
}

veil_err vl_coll_table(veil_vault *v, int64_t tenant_id, const char *tenant, const char *coll,
                       char out[2 * 16 + 1], veil_status *st)
{
    uint8_t *naming = vl_secret_alloc(VL_TENANT_KEYBYTES);
    if (naming == NULL) {
        return vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
    }
    veil_err rc = vl_tenant_key_load(v, tenant_id, tenant, NAMING_KEY_VERSION, naming, st);
    if (rc == VEIL_OK && (rc = table_name(naming, tenant, coll, out)) != VEIL_OK) {
        vl_status_set(st, rc, NULL, "cannot derive a table name");
    }
    vl_secret_free(naming);
    return rc;
}

static veil_err coll_build(veil_session *s, const char *name, const char *canonical,
                           struct vl_coll **out, veil_status *st)
{
    veil_vault *v = s->v;
    veil_err rc = VEIL_OK;
    struct vl_tenant_row tr;
    uint8_t *naming = vl_secret_alloc(VL_TENANT_KEYBYTES);
    uint8_t *current = vl_secret_alloc(VL_TENANT_KEYBYTES);
    struct vl_coll *c = calloc(1, sizeof(*c));
    if (c == NULL || naming == NULL || current == NULL) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    c->tenant_id = s->tenant_id;
    c->tenant = strdup(s->tenant);
    c->name = strdup(name);
    if (c->tenant == NULL || c->name == NULL) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    rc = vl_policy_parse(canonical, strlen(canonical), (const char *const *)v->cfg.store_names,
                         v->nstores, &c->policy, st);
    if (rc != VEIL_OK) {
        /* A stored policy that no longer parses (e.g. a store removed from veil.yaml). */
        goto out;
    }
    if ((rc = vl_trusted_tenant_find(v->trusted, s->tenant, &tr)) != VEIL_OK || tr.shredded) {
        rc = vl_status_set(st, VEIL_ERR_NOT_FOUND, NULL, "no such collection");
        goto out;
    }
    c->key_version = tr.key_version;
    if ((rc = vl_tenant_key_load(v, tr.id, s->tenant, NAMING_KEY_VERSION, naming, st)) !=
            VEIL_OK ||
        (rc = vl_tenant_key_load(v, tr.id, s->tenant, c->key_version, current, st)) !=
            VEIL_OK) {
        goto out;
    }
    if ((rc = table_name(naming, c->tenant, c->name, c->table)) != VEIL_OK) {
        goto out;
    }
    c->doc_key = vl_secret_alloc(32);
    c->cursor_key = vl_secret_alloc(VL_AEAD_KEYBYTES);
    c->set_key = vl_secret_alloc(32);
    c->fields = calloc(c->policy->nfields ? c->policy->nfields : 1, sizeof(*c->fields));
    c->seq = calloc(1, sizeof(*c->seq));
    if (c->seq != NULL) {
        pthread_mutex_init(&c->seq->mu, NULL);
    }
    if (c->doc_key == NULL || c->cursor_key == NULL || c->set_key == NULL ||
        c->fields == NULL || c->seq == NULL) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    rc = vl_subkey(c->doc_key, 32, naming, c->tenant, c->name, "", "document",
                   NAMING_KEY_VERSION);
    if (rc == VEIL_OK) {
        rc = vl_subkey(c->cursor_key, VL_AEAD_KEYBYTES, current, c->tenant, c->name, "",
                       "cursor", c->key_version);
    }
    if (rc == VEIL_OK) {
        rc = vl_subkey(c->set_key, 32, naming, c->tenant, c->name, "", "token-set",
                       NAMING_KEY_VERSION);
    }
    for (size_t i = 0; rc == VEIL_OK && i < c->policy->nfields; i++) {
        const struct vl_field *f = &c->policy->fields[i];
        rc = fctx_init(&c->fields[i], v, c, f, f->path, naming, current);
        c->fields[i].ordinal = (uint32_t)i;
    }
    if (rc == VEIL_OK) {
        rc = fctx_init(&c->id, v, c, NULL, "_id", naming, current);
    }
    if (rc == VEIL_OK) {
        rc = fctx_init(&c->rest, v, c, NULL, "_rest", naming, current);
    }
    if (rc != VEIL_OK && st != NULL && st->code != rc) {
        vl_status_set(st, rc, NULL, "cannot derive the collection's keys");
    }
out:
    vl_secret_free(naming);
    vl_secret_free(current);
    if (rc == VEIL_OK) {
        *out = c;
    } else {
        vl_coll_free(c);
    }
    return rc;
}

veil_err vl_coll_get(veil_session *s, const char *name, const struct vl_coll **out,
                     veil_status *st)
{
    veil_vault *v = s->v;
    pthread_mutex_lock(&v->mu);
    for (struct vl_coll *c = v->colls; c != NULL; c = c->next) {
        if (c->tenant_id == s->tenant_id && strcmp(c->name, name) == 0) {
            pthread_mutex_unlock(&v->mu);
            *out = c;
            return VEIL_OK;
        }
    }
    pthread_mutex_unlock(&v->mu);

    char *canonical = NULL;
    veil_err rc = vl_trusted_collection_get(v->trusted, s->tenant_id, name, &canonical);
    if (rc == VEIL_ERR_NOT_FOUND) {
        return vl_status_set(st, rc, NULL, "no collection of that name");
    }
    if (rc != VEIL_OK) {
        return vl_status_set(st, rc, NULL, "the trusted state is unavailable");
    }
    struct vl_coll *c = NULL;
    rc = coll_build(s, name, canonical, &c, st);
    free(canonical);
    if (rc != VEIL_OK) {
        return rc;
    }
    for (size_t i = 0; i < v->nstores; i++) {
        if ((rc = v->stores[i]->ops->ensure_table(v->stores[i], c->table)) != VEIL_OK) {
            vl_coll_free(c);
            return vl_status_set(st, rc, NULL, "store %s is unavailable",
                                 v->cfg.store_names[i]);
        }
    }
    pthread_mutex_lock(&v->mu);
    for (struct vl_coll *o = v->colls; o != NULL; o = o->next) {
        if (o->tenant_id == s->tenant_id && strcmp(o->name, name) == 0) {
            /* Another thread built it meanwhile: keep theirs. */
            pthread_mutex_unlock(&v->mu);
            vl_coll_free(c);
            *out = o;
            return VEIL_OK;
        }
    }
    c->next = v->colls;
    v->colls = c;
    pthread_mutex_unlock(&v->mu);
    *out = c;
    return VEIL_OK;
}

veil_err vl_coll_seq_take(veil_vault *v, const struct vl_coll *c, uint64_t n,
                          uint64_t *first)
{
    veil_err rc = VEIL_OK;
    struct vl_seqblock *b = c->seq;
    pthread_mutex_lock(&b->mu);
    if (b->end - b->next < n) {
        uint64_t want = n > VL_SEQ_BLOCK ? n : VL_SEQ_BLOCK, start = 0, mark = 0;
        rc = vl_trusted_seq_reserve(v->trusted, c->tenant_id, c->name, want, &start, &mark);
        /* The stores learn of the block before any row of it: a trusted state that later
         * forgets the block (restored from a backup) finds their mark above its own. */
        if (rc == VEIL_OK) {
            rc = vl_mark_global(v, mark);
        }
        if (rc == VEIL_OK) {
            b->next = start;
            b->end = start + want;
        }
    }
    if (rc == VEIL_OK) {
        *first = b->next;
        b->next += n;
    }
    pthread_mutex_unlock(&b->mu);
    return rc;
}

void vl_coll_forget_tenant(veil_vault *v, int64_t tenant_id)
{
    pthread_mutex_lock(&v->mu);
    struct vl_coll **pp = &v->colls;
    while (*pp != NULL) {
        struct vl_coll *c = *pp;
        if (c->tenant_id == tenant_id) {
            *pp = c->next;
            vl_coll_free(c);
        } else {
            pp = &c->next;
        }
    }
    pthread_mutex_unlock(&v->mu);
}

/* ---- the collections API ---- */

veil_err veil_collection_apply(veil_session *s, const char *name, const char *text,
                               size_t len, int *created, veil_status *st)
{
    veil_vault *v = s->v;
    vl_status_clear(st);
    if (!s->admin) {
        return vl_status_set(st, VEIL_ERR_FORBIDDEN, NULL,
                             "only the admin role may register policies");
    }
    struct vl_policy *p = NULL;
    veil_err rc = vl_policy_parse(text, len, (const char *const *)v->cfg.store_names,
                                  v->nstores, &p, st);
    if (rc != VEIL_OK) {
        return rc;
    }
    if (name != NULL && strcmp(name, p->collection) != 0) {
        vl_policy_free(p);
        return vl_status_set(st, VEIL_ERR_INVALID_POLICY, "collection",
                             "the policy's collection differs from the one in the path");
    }
    char *canonical = vl_policy_canonical(p);
    if (canonical == NULL) {
        vl_policy_free(p);
        return vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
    }
    char *old = NULL;
    if (v->rollback_accepted &&
        vl_trusted_collection_get(v->trusted, s->tenant_id, p->collection, &old) ==
            VEIL_ERR_NOT_FOUND) {
        /* A collection registered after the trusted state lost it (a backup restored) may
         * have rows of the lost writes in its table; a new collection has no documents,
         * so whatever its table holds is theirs. */
        char table[2 * 16 + 1];
        rc = vl_coll_table(v, s->tenant_id, s->tenant, p->collection, table, st);
        for (size_t i = 0; rc == VEIL_OK && i < v->nstores; i++) {
            rc = v->stores[i]->ops->drop_table(v->stores[i], table);
            if (rc != VEIL_OK) {
                vl_status_set(st, rc, NULL, "store %s is unavailable", v->cfg.store_names[i]);
            }
        }
    }
    free(old);
    if (rc == VEIL_OK) {
        rc = vl_trusted_collection_put(v->trusted, s->tenant_id, p->collection, canonical,
                                       created);
        if (rc == VEIL_ERR_CONFLICT) {
            vl_status_set(st, rc, "collection",
                          "a different policy is registered under this collection name");
        } else if (rc != VEIL_OK) {
            vl_status_set(st, rc, NULL, "the trusted state is unavailable");
        }
    }
    free(canonical);
    vl_policy_free(p);
    return rc;
}

/* A policy's description as JSON text; its numbers (privacy parameters, noise scales) with
 * 15 significant digits, so 0.1 reads 0.1. */
static char *describe_text(const json_t *d)
{
    return json_dumps(d, JSON_COMPACT | JSON_REAL_PRECISION(15));
}

veil_err veil_collection_get(veil_session *s, const char *name, char **json_out,
                             veil_status *st)
{
    const struct vl_coll *c = NULL;
    vl_status_clear(st);
    veil_err rc = vl_coll_get(s, name, &c, st);
    if (rc != VEIL_OK) {
        return rc;
    }
    json_t *d = vl_policy_describe_stores(c->policy, s->v->cfg.store_names[0]);
    char *text = d != NULL ? describe_text(d) : NULL;
    json_decref(d);
    if (text == NULL) {
        return vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
    }
    *json_out = text;
    return VEIL_OK;
}

veil_err veil_collection_list(veil_session *s, char **json_out, veil_status *st)
{
    char **names = NULL;
    size_t n = 0;
    vl_status_clear(st);
    veil_err rc = vl_trusted_collection_names(s->v->trusted, s->tenant_id, &names, &n);
    if (rc != VEIL_OK) {
        return vl_status_set(st, rc, NULL, "the trusted state is unavailable");
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        const struct vl_coll *c = NULL;
        if (rc == VEIL_OK && (rc = vl_coll_get(s, names[i], &c, st)) == VEIL_OK) {
            json_array_append_new(arr, vl_policy_describe_stores(c->policy, s->v->cfg.store_names[0]));
        }
        free(names[i]);
    }
    free(names);
    if (rc == VEIL_OK) {
        json_t *o = json_pack("{s:o}", "collections", arr);
        *json_out = describe_text(o);
        json_decref(o);
        if (*json_out == NULL) {
            rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
        }
    } else {
        json_decref(arr);
    }
    return rc;
}
