/*
 * store.c: the one place that turns a store URL of veil.yaml ("sqlite:cloud/cloud.db",
 * "postgresql://...", "redis://...") into a driver, and the frees shared by all drivers.
 *
 * The store learns nothing here: this file only picks the driver by the scheme before the
 * first ':' and hands it the rest. Drivers register by being listed in `drivers` below.
 *
 * Memory convention for what drivers return (so that one vl_rows_free serves them all):
 * in a struct vl_rows, `rows` and, in each row, `doc.p`, `blob.p`, `tokens` and each
 * `tokens[i].tok.p` are separate malloc() blocks or NULL; in a struct vl_doclist, `docs` is
 * one malloc() block or NULL; in a struct vl_agg_result, `groups`, and in each group every
 * `keys[k].p` and `values`, and in each value `runs` and `product.p`, are separate malloc()
 * blocks or NULL; in a struct vl_kv_values, `vals` and `arena` are two malloc() blocks or
 * NULL, and every non-NULL `vals[i].p` points into `arena` (never freed on its own); in a
 * struct vl_members, `m` is one malloc() block or NULL.
 */
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

static const struct vl_store_ops *const drivers[] = {
    &vl_store_sqlite_ops,
};

#define NDRIVERS (sizeof(drivers) / sizeof(drivers[0]))
#define SCHEME_MAX 32

/* "sqlite, postgresql, ..." for error messages. */
static void scheme_names(char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < NDRIVERS; i++) {
        size_t n = strlen(drivers[i]->scheme);
        size_t sep = i > 0 ? 2 : 0;
        if (used + sep + n + 1 > cap) {
            break;
        }
        if (sep > 0) {
            memcpy(out + used, ", ", sep);
        }
        memcpy(out + used + sep, drivers[i]->scheme, n + 1);
        used += sep + n;
    }
}

/* A scheme is echoed in messages only when it looks like one (URLs may carry passwords). */
static int scheme_printable(const char *p, size_t n)
{
    if (n == 0 || n > SCHEME_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '+' ||
              c == '.')) {
            return 0;
        }
    }
    return 1;
}

/*
 * Opens the store named by `url`: the driver whose scheme is the text before the first ':'
 * gets the text after it and `datadir`. Unknown or missing schemes are VEIL_ERR_BAD_REQUEST
 * with a message listing the known ones. On success *out is the caller's, to release with
 * vl_store_close(); on failure *out is untouched and st says why.
 */
veil_err vl_store_open(const char *url, const char *datadir, struct vl_store **out,
                       veil_status *st)
{
    veil_err rc = VEIL_OK;
    struct vl_store *s = NULL;
    char known[256];
    const char *colon = url != NULL ? strchr(url, ':') : NULL;

    scheme_names(known, sizeof(known));
    if (colon == NULL) {
        rc = vl_status_set(st, VEIL_ERR_BAD_REQUEST, NULL,
                           "store URL has no scheme (known schemes: %s)", known);
        goto out;
    }
    size_t n = (size_t)(colon - url);
    const struct vl_store_ops *ops = NULL;
    for (size_t i = 0; i < NDRIVERS; i++) {
        if (strlen(drivers[i]->scheme) == n && memcmp(drivers[i]->scheme, url, n) == 0) {
            ops = drivers[i];
            break;
        }
    }
    if (ops == NULL) {
        if (scheme_printable(url, n)) {
            rc = vl_status_set(st, VEIL_ERR_BAD_REQUEST, NULL,
                               "unknown store scheme '%.*s' (known schemes: %s)", (int)n, url,
                               known);
        } else {
            rc = vl_status_set(st, VEIL_ERR_BAD_REQUEST, NULL,
                               "unknown store scheme (known schemes: %s)", known);
        }
        goto out;
    }
    rc = ops->open(colon + 1, datadir, &s, st);

out:
    if (rc == VEIL_OK) {
        *out = s;
    }
    return rc;
}

/* Closes a store from vl_store_open(); NULL is a no-op. */
void vl_store_close(struct vl_store *s)
{
    if (s != NULL) {
        s->ops->close(s);
    }
}

/* Frees what a driver returned in *r and leaves it empty; NULL is a no-op. */
void vl_rows_free(struct vl_rows *r)
{
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; r->rows != NULL && i < r->n; i++) {
        struct vl_row *row = &r->rows[i];
        free(row->doc.p);
        free(row->blob.p);
        for (size_t j = 0; row->tokens != NULL && j < row->ntokens; j++) {
            free(row->tokens[j].tok.p);
        }
        free(row->tokens);
    }
    free(r->rows);
    r->rows = NULL;
    r->n = 0;
}

/* Frees what a driver returned in *l and leaves it empty; NULL is a no-op. */
void vl_doclist_free(struct vl_doclist *l)
{
    if (l == NULL) {
        return;
    }
    free(l->docs);
    l->docs = NULL;
    l->n = 0;
}

/* Frees what a driver returned in *r and leaves it empty; NULL is a no-op. */
void vl_agg_result_free(struct vl_agg_result *r)
{
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; r->groups != NULL && i < r->n; i++) {
        struct vl_agg_group *g = &r->groups[i];
        for (size_t k = 0; k < VL_AGG_MAX_GROUP; k++) {
            free(g->keys[k].p);
        }
        free(g->runs);
        for (size_t j = 0; g->values != NULL && j < r->ncols; j++) {
            free(g->values[j].runs);
            free(g->values[j].product.p);
        }
        free(g->values);
    }
    free(r->groups);
    r->groups = NULL;
    r->n = 0;
}

/* Frees what a driver returned in *v (the values and the arena they point into) and leaves
 * it empty; NULL is a no-op. */
void vl_kv_values_free(struct vl_kv_values *v)
{
    if (v == NULL) {
        return;
    }
    free(v->vals);
    free(v->arena);
    v->vals = NULL;
    v->arena = NULL;
    v->n = 0;
}

/* Frees what a driver returned in *m and leaves it empty; NULL is a no-op. */
void vl_members_free(struct vl_members *m)
{
    if (m == NULL) {
        return;
    }
    free(m->m);
    m->m = NULL;
    m->n = 0;
}
