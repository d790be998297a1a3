/*
 * fuzz_store.c: the boundary between the engine and a hostile store. A real vault
 * (fuzz_vault.h: a temporary data directory, tenant "fuzz", the invoices policy with ASHE
 * sums and search fields, and a ledger collection with Paillier sums) is loaded through the
 * real SQLite store with documents written one by one and in bulk batches (so index entries
 * hold one document or many), some replaced and deleted. Then its store is wrapped in a
 * test-only driver (struct vl_store_ops) whose read answers are decided by the fuzz input:
 * honest (the real store's), unreachable (VEIL_ERR_STORE_UNAVAILABLE), a driver's report of
 * malformed stored data (VEIL_ERR_INTEGRITY), or the real answer with lies worked in: rows,
 * blobs and sequence numbers altered, added, dropped or repeated; document lists reordered,
 * repeated, padded with strange tokens, longer than asked or ignoring the cursor; index
 * members dropped, repeated, moved between tokens, altered or made up; aggregate groups
 * with altered counts, limb sums, runs of row numbers (of cells and of rows), keys and
 * Paillier products;
 * index entries missing, altered, swapped or of odd sizes, and answers of the wrong length.
 *
 * Each input picks one read (a get, a plain query or a search, paged on with their cursors,
 * an ASHE or Paillier aggregate, with or without where and match, as several roles), runs
 * it once against the honest store, which must answer (the baseline), and again with the
 * input's store. Findings (abort) are crashes and sanitizer reports, and any answer but:
 *   - VEIL_OK, or VEIL_ERR_NOT_FOUND for a get;
 *   - VEIL_ERR_INTEGRITY (502) with the message of vl_breach, which logged it;
 *   - VEIL_ERR_STORE_UNAVAILABLE (503) only when the store said it was unreachable;
 *   - VEIL_ERR_BAD_REQUEST only for an aggregate whose integer sum leaves 64 bits.
 * Also: an honest store gets the baseline's answer, and a lie never changes an answer: a
 * get, a query page (with or without where and match) or an aggregate answered VEIL_OK must
 * equal the baseline (index members and aggregate groups are checked against the trusted
 * token sets).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "fuzz_vault.h"
#include "util/log.h"

#define BREACH_MESSAGE "a store returned data that fails its integrity checks"
#define NDOCS 48 /* invoices inv-0 .. inv-47 */
#define NBULK 36 /* of which the last ones come in one bulk batch */
#define NLEDGER 8
#define MAX_PAGES 4
#define BLOB_MAX 96 /* bytes of a made-up blob */

static const char ledger_policy[] =
    "collection: ledger\n"
    "fields:\n"
    "  org:   { type: string,  protect: [eq] }\n"
    "  amt:   { type: decimal, scale: 2, protect: [sum] }\n"
    "  units: { type: integer, protect: [sum], sum: { scheme: paillier, bits: 2048 } }\n"
    "  memo:  { type: text,    protect: [search] }\n"
    "roles:\n"
    "  clerk: { read: [\"*\"], write: true }\n";

static const char *const words[] = {"late",   "payment", "reminder", "dispute",
                                    "refund", "urgent",  "paid",     "credit"};

static veil_session *fz_analyst;

/* ---- the script: what the store answers for the current input ---- */

static struct {
    const uint8_t *p;
    size_t n;
    bool on;               /* consult the script; else every answer is honest */
    bool said_unreachable; /* some call answered VEIL_ERR_STORE_UNAVAILABLE */
    unsigned lies;         /* lies told (driver errors included) */
    bool ignored_cursor;   /* one of them: a find answered as if it had no cursor */
} sc;

static uint8_t take8(void)
{
    if (sc.n == 0) {
        return 0;
    }
    sc.n--;
    return *sc.p++;
}

static uint64_t take64(void)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = v << 8 | take8();
    }
    return v;
}

/* A number worth trying as a row sequence number, count or limb. */
static uint64_t take_num(void)
{
    static const uint64_t special[] = {0,
                                       1,
                                       2,
                                       3,
                                       127,
                                       128,
                                       1024,
                                       0xffffffffu,
                                       0x100000000u,
                                       (uint64_t)INT64_MAX - 1,
                                       (uint64_t)INT64_MAX,
                                       (uint64_t)INT64_MAX + 1,
                                       UINT64_MAX - 1,
                                       UINT64_MAX};
    uint8_t b = take8();
    if (b < 2 * sizeof(special) / sizeof(special[0])) {
        return special[b / 2];
    }
    if (b < 0xc0) {
        return b;
    }
    return take64();
}

static size_t take_idx(size_t n)
{
    return n == 0 ? 0 : take8() % n;
}

enum mode { HONEST, UNREACHABLE, DRIVER_INTEGRITY, LIE };

/* How the store answers this call. An exhausted script is honest. */
static enum mode call_mode(void)
{
    if (!sc.on) {
        return HONEST;
    }
    uint8_t b = take8();
    if (b < 0x80) {
        return HONEST;
    }
    if (b < 0x90) {
        sc.said_unreachable = true;
        return UNREACHABLE;
    }
    sc.lies++;
    return b < 0x98 ? DRIVER_INTEGRITY : LIE;
}

static void *memdup(const void *p, size_t n)
{
    uint8_t *q = malloc(n ? n : 1);
    if (q == NULL) {
        abort();
    }
    if (n > 0) {
        memcpy(q, p, n);
    }
    return q;
}

static void *grow(void *p, size_t n, size_t size)
{
    void *q = realloc(p, (n ? n : 1) * size);
    if (q == NULL) {
        abort();
    }
    return q;
}

/* Bytes of the script as a made-up value of up to max bytes (malloc'd). */
static struct vl_bytes take_bytes(size_t max)
{
    struct vl_bytes b;
    b.n = take_idx(max + 1);
    b.p = malloc(b.n ? b.n : 1);
    if (b.p == NULL) {
        abort();
    }
    for (size_t i = 0; i < b.n; i++) {
        b.p[i] = take8();
    }
    return b;
}

/* ---- the driver ---- */

struct fk_store {
    struct vl_store base;
    struct vl_store *real;
};

static struct vl_store *real_of(struct vl_store *s)
{
    return ((struct fk_store *)s)->real;
}

static void fk_close(struct vl_store *s)
{
    vl_store_close(real_of(s));
    free(s);
}

static veil_err fk_ping(struct vl_store *s)
{
    return real_of(s)->ops->ping(real_of(s));
}

static veil_err fk_ensure_table(struct vl_store *s, const char *t)
{
    return real_of(s)->ops->ensure_table(real_of(s), t);
}

static veil_err fk_drop_table(struct vl_store *s, const char *t)
{
    return real_of(s)->ops->drop_table(real_of(s), t);
}

static veil_err fk_put_rows(struct vl_store *s, const char *t, const struct vl_row *rows, size_t n)
{
    return real_of(s)->ops->put_rows(real_of(s), t, rows, n);
}

static veil_err fk_delete_rows(struct vl_store *s, const char *t, const struct vl_bytes *docs,
                               size_t n)
{
    return real_of(s)->ops->delete_rows(real_of(s), t, docs, n);
}

static veil_err fk_kv_put(struct vl_store *s, const char *t, const struct vl_kv *kv, size_t n)
{
    return real_of(s)->ops->kv_put(real_of(s), t, kv, n);
}

static veil_err fk_kv_delete(struct vl_store *s, const char *t, const struct vl_bytes *keys,
                             size_t n)
{
    return real_of(s)->ops->kv_delete(real_of(s), t, keys, n);
}

static veil_err fk_put(struct vl_store *s, const char *t, const struct vl_row *rows, size_t n,
                       const struct vl_kv *kv, size_t nkv)
{
    struct vl_store *r = real_of(s);
    if (r->ops->put == NULL) {
        veil_err rc = r->ops->kv_put(r, t, kv, nkv);
        return rc != VEIL_OK ? rc : r->ops->put_rows(r, t, rows, n);
    }
    return r->ops->put(r, t, rows, n, kv, nkv);
}

/* Honest for now: the real store's answer. */
static veil_err fk_members(struct vl_store *s, const char *t, const uint8_t col[VL_COL_BYTES],
                           const struct vl_bytes *toks, size_t ntoks, struct vl_members *out)
{
    enum mode m = call_mode();
    if (m == UNREACHABLE) {
        return VEIL_ERR_STORE_UNAVAILABLE;
    }
    if (m == DRIVER_INTEGRITY) {
        return VEIL_ERR_INTEGRITY;
    }
    struct vl_members l = {NULL, 0};
    veil_err rc = real_of(s)->ops->members(real_of(s), t, col, toks, ntoks, &l);
    if (rc != VEIL_OK || m == HONEST) {
        *out = l;
        return rc;
    }
    for (int k = 1 + take8() % 2; k > 0; k--) {
        size_t i = take_idx(l.n);
        switch (take8() % 7) {
        case 0: /* one dropped */
            if (l.n > 0) {
                l.m[i] = l.m[l.n - 1];
                l.n--;
            }
            break;
        case 1: /* one twice */
            if (l.n > 0) {
                l.m = grow(l.m, l.n + 1, sizeof(*l.m));
                l.m[l.n] = l.m[i];
                l.n++;
            }
            break;
        case 2: /* one under another token, maybe one not asked for */
            if (l.n > 0) {
                l.m[i].tok = take8() % 2 ? (uint32_t)take_idx(ntoks + 1) : (uint32_t)take_num();
            }
            break;
        case 3: /* a document token's byte changed */
            if (l.n > 0) {
                l.m[i].doc[take_idx(VL_DOCTOKEN_BYTES)] ^= (uint8_t)(1 + take8() % 255);
            }
            break;
        case 4: /* the same token's entry twice */
            if (l.n > 0) {
                l.m = grow(l.m, l.n + 1, sizeof(*l.m));
                l.m[l.n++] = l.m[i];
            }
            break;
        case 5: { /* one made up */
            l.m = grow(l.m, l.n + 1, sizeof(*l.m));
            struct vl_member *mm = &l.m[l.n++];
            mm->tok = (uint32_t)take_idx(ntoks);
            for (size_t q = 0; q < VL_DOCTOKEN_BYTES; q++) {
                mm->doc[q] = take8();
            }
            break;
        }
        default: /* nothing at all */
            l.n = 0;
            break;
        }
    }
    *out = l;
    return VEIL_OK;
}

static veil_err fk_get_rows(struct vl_store *s, const char *t, const struct vl_bytes *docs,
                            size_t n, struct vl_rows *out)
{
    enum mode m = call_mode();
    if (m == UNREACHABLE) {
        return VEIL_ERR_STORE_UNAVAILABLE;
    }
    if (m == DRIVER_INTEGRITY) {
        return VEIL_ERR_INTEGRITY;
    }
    struct vl_rows r = {NULL, 0};
    veil_err rc = real_of(s)->ops->get_rows(real_of(s), t, docs, n, &r);
    if (rc != VEIL_OK || m == HONEST) {
        *out = r;
        return rc;
    }
    for (int k = 1 + take8() % 3; k > 0; k--) {
        struct vl_row *row = r.n > 0 ? &r.rows[take_idx(r.n)] : NULL;
        switch (take8() % 8) {
        case 0: /* a flipped bit in a blob */
            if (row != NULL && row->blob.n > 0) {
                row->blob.p[take_idx(row->blob.n)] ^= (uint8_t)(1u << (take8() % 8));
            }
            break;
        case 1: /* another sequence number */
            if (row != NULL) {
                row->seq = take_num();
            }
            break;
        case 2: /* a row twice */
            if (row != NULL) {
                struct vl_row copy = *row;
                copy.doc.p = memdup(row->doc.p, row->doc.n);
                copy.blob.p = memdup(row->blob.p, row->blob.n);
                r.rows = grow(r.rows, r.n + 1, sizeof(*r.rows));
                r.rows[r.n++] = copy;
            }
            break;
        case 3: /* a row dropped */
            if (row != NULL) {
                free(row->doc.p);
                free(row->blob.p);
                *row = r.rows[--r.n];
            }
            break;
        case 4: /* blobs exchanged */
            if (r.n > 1) {
                struct vl_row *o = &r.rows[take_idx(r.n)];
                struct vl_bytes b = row->blob;
                row->blob = o->blob;
                o->blob = b;
            }
            break;
        case 5: { /* a document token of another length or value */
            if (row != NULL) {
                free(row->doc.p);
                row->doc = take_bytes(2 * VL_DOCTOKEN_BYTES);
            }
            break;
        }
        case 6: { /* a row made up: for a token asked for, or any */
            struct vl_row nr;
            memset(&nr, 0, sizeof(nr));
            if (n > 0 && take8() % 2 == 0) {
                const struct vl_bytes *d = &docs[take_idx(n)];
                nr.doc.p = memdup(d->p, d->n);
                nr.doc.n = d->n;
            } else {
                nr.doc = take_bytes(VL_DOCTOKEN_BYTES);
            }
            nr.seq = take_num();
            nr.blob = take_bytes(BLOB_MAX);
            r.rows = grow(r.rows, r.n + 1, sizeof(*r.rows));
            r.rows[r.n++] = nr;
            break;
        }
        default: /* a blob cut short or made longer */
            if (row != NULL) {
                size_t len = take_idx(row->blob.n + 8);
                row->blob.p = grow(row->blob.p, len, 1);
                for (size_t i = row->blob.n; i < len; i++) {
                    row->blob.p[i] = take8();
                }
                row->blob.n = len;
            }
            break;
        }
    }
    *out = r;
    return VEIL_OK;
}

static veil_err fk_find(struct vl_store *s, const char *t, const struct vl_pred *pred,
                        const uint8_t *after, size_t limit, struct vl_doclist *out)
{
    enum mode m = call_mode();
    if (m == UNREACHABLE) {
        return VEIL_ERR_STORE_UNAVAILABLE;
    }
    if (m == DRIVER_INTEGRITY) {
        return VEIL_ERR_INTEGRITY;
    }
    struct vl_store *real = real_of(s);
    uint8_t op = m == LIE ? take8() % 8 : 0;
    struct vl_doclist l = {NULL, 0};
    veil_err rc;
    if (m == LIE && op == 4) { /* ignores the cursor: always the first page */
        rc = real->ops->find(real, t, pred, NULL, limit, &l);
        sc.ignored_cursor |= after != NULL;
    } else if (m == LIE && op == 5) { /* more than asked for */
        rc = real->ops->find(real, t, pred, after, limit + 1 + take8() % 4, &l);
    } else {
        rc = real->ops->find(real, t, pred, after, limit, &l);
    }
    if (rc != VEIL_OK || m == HONEST || op == 4 || op == 5) {
        *out = l;
        return rc;
    }
    size_t i = take_idx(l.n);
    switch (op) {
    case 0: /* two exchanged */
        if (l.n > 1) {
            size_t j = take_idx(l.n);
            uint8_t tmp[VL_DOCTOKEN_BYTES];
            memcpy(tmp, l.docs[i], VL_DOCTOKEN_BYTES);
            memcpy(l.docs[i], l.docs[j], VL_DOCTOKEN_BYTES);
            memcpy(l.docs[j], tmp, VL_DOCTOKEN_BYTES);
        }
        break;
    case 1: /* one twice, in place */
        if (l.n > 0) {
            l.docs = grow(l.docs, l.n + 1, VL_DOCTOKEN_BYTES);
            memmove(l.docs[i + 1], l.docs[i], (l.n - i) * VL_DOCTOKEN_BYTES);
            l.n++;
        }
        break;
    case 2: /* one dropped */
        if (l.n > 0) {
            memmove(l.docs[i], l.docs[i + 1], (l.n - i - 1) * VL_DOCTOKEN_BYTES);
            l.n--;
        }
        break;
    case 3: { /* a token made up, or one of the candidates the store was given */
        uint8_t tok[VL_DOCTOKEN_BYTES];
        if (pred->only_docs && pred->ndocs > 0 && take8() % 2 == 0) {
            memcpy(tok, pred->docs[take_idx(pred->ndocs)].p, VL_DOCTOKEN_BYTES);
        } else {
            for (size_t k = 0; k < sizeof(tok); k++) {
                tok[k] = take8();
            }
        }
        size_t at = take_idx(l.n + 1);
        l.docs = grow(l.docs, l.n + 1, VL_DOCTOKEN_BYTES);
        memmove(l.docs[at + 1], l.docs[at], (l.n - at) * VL_DOCTOKEN_BYTES);
        memcpy(l.docs[at], tok, VL_DOCTOKEN_BYTES);
        l.n++;
        break;
    }
    case 6: /* a token's byte changed */
        if (l.n > 0) {
            l.docs[i][take_idx(VL_DOCTOKEN_BYTES)] ^= (uint8_t)(1 + take8() % 255);
        }
        break;
    default: /* nothing at all */ l.n = 0; break;
    }
    *out = l;
    return VEIL_OK;
}

/* Replaces a value's runs by made-up ones. */
static void fake_runs(struct vl_agg_value *v)
{
    free(v->runs);
    v->nruns = take8() % 5;
    v->runs = v->nruns > 0 ? calloc(v->nruns, sizeof(*v->runs)) : NULL;
    for (size_t r = 0; r < v->nruns; r++) {
        v->runs[r].first = take_num();
        v->runs[r].last = take8() % 2 ? v->runs[r].first + take8() % 4 : take_num();
    }
}

static veil_err fk_aggregate(struct vl_store *s, const char *t, const struct vl_agg_request *req,
                             struct vl_agg_result *out)
{
    enum mode m = call_mode();
    if (m == UNREACHABLE) {
        return VEIL_ERR_STORE_UNAVAILABLE;
    }
    if (m == DRIVER_INTEGRITY) {
        return VEIL_ERR_INTEGRITY;
    }
    struct vl_agg_result r = {NULL, 0, 0};
    veil_err rc = real_of(s)->ops->aggregate(real_of(s), t, req, &r);
    if (rc != VEIL_OK || m == HONEST) {
        *out = r;
        return rc;
    }
    for (int k = 1 + take8() % 3; k > 0; k--) {
        struct vl_agg_group *g = r.n > 0 ? &r.groups[take_idx(r.n)] : NULL;
        struct vl_agg_value *v = g != NULL && r.ncols > 0 ? &g->values[take_idx(r.ncols)] : NULL;
        switch (take8() % 9) {
        case 0:
            if (g != NULL) {
                g->count = take_num();
            }
            break;
        case 8: /* a group's rows made up */
            if (g != NULL) {
                free(g->runs);
                g->nruns = take8() % 5;
                g->runs = g->nruns > 0 ? calloc(g->nruns, sizeof(*g->runs)) : NULL;
                for (size_t q = 0; q < g->nruns; q++) {
                    g->runs[q].first = take_num();
                    g->runs[q].last =
                        take8() % 2 ? g->runs[q].first + take8() % 4 : take_num();
                }
            }
            break;
        case 1:
            if (v != NULL) {
                v->count = take_num();
            }
            break;
        case 2:
            if (v != NULL) {
                v->limbs[take_idx(VL_SUM_LIMBS)] = (int64_t)take_num();
            }
            break;
        case 3:
            if (v != NULL) {
                fake_runs(v);
            }
            break;
        case 4: /* a key altered, cut, made up, or another group's */
            if (g != NULL) {
                size_t kk = take_idx(VL_AGG_MAX_GROUP);
                const struct vl_agg_group *o = &r.groups[take_idx(r.n)];
                free(g->keys[kk].p);
                if (take8() % 2 == 0) {
                    for (size_t q = 0; q < VL_AGG_MAX_GROUP; q++) {
                        if (q != kk) {
                            free(g->keys[q].p);
                        }
                        g->keys[q].p =
                            o == g || o->keys[q].n == 0 ? NULL : memdup(o->keys[q].p, o->keys[q].n);
                        g->keys[q].n = g->keys[q].p != NULL ? o->keys[q].n : 0;
                    }
                } else {
                    g->keys[kk] = take_bytes(64);
                    if (g->keys[kk].n == 0) {
                        free(g->keys[kk].p);
                        g->keys[kk].p = NULL;
                    }
                }
            }
            break;
        case 5: /* a product altered, cut or made up */
            if (v != NULL) {
                if (v->product.n > 0 && take8() % 2 == 0) {
                    v->product.p[take_idx(v->product.n)] ^= (uint8_t)(1 + take8() % 255);
                } else {
                    free(v->product.p);
                    v->product = take_bytes(300);
                    if (v->product.n == 0) {
                        free(v->product.p);
                        v->product.p = NULL;
                    }
                }
            }
            break;
        case 6: /* a group twice */
            if (g != NULL) {
                struct vl_agg_group copy = *g;
                for (size_t q = 0; q < VL_AGG_MAX_GROUP; q++) {
                    copy.keys[q].p = g->keys[q].n > 0 ? memdup(g->keys[q].p, g->keys[q].n) : NULL;
                }
                copy.values = r.ncols > 0 ? memdup(g->values, r.ncols * sizeof(*g->values)) : NULL;
                copy.runs = g->nruns > 0 ? memdup(g->runs, g->nruns * sizeof(*g->runs)) : NULL;
                for (size_t j = 0; j < r.ncols; j++) {
                    struct vl_agg_value *cv = &copy.values[j];
                    cv->runs =
                        cv->nruns > 0 ? memdup(cv->runs, cv->nruns * sizeof(*cv->runs)) : NULL;
                    cv->product.p = cv->product.n > 0 ? memdup(cv->product.p, cv->product.n) : NULL;
                }
                r.groups = grow(r.groups, r.n + 1, sizeof(*r.groups));
                r.groups[r.n++] = copy;
            }
            break;
        default: /* a group dropped */
            if (g != NULL) {
                struct vl_agg_result one = {g, 1, r.ncols};
                struct vl_agg_group last = r.groups[r.n - 1];
                struct vl_agg_group *keep = malloc(sizeof(*keep));
                if (keep == NULL) {
                    abort();
                }
                /* free g's parts through a one-group result, then fill its place */
                *keep = *g;
                one.groups = keep;
                vl_agg_result_free(&one);
                *g = last;
                r.n--;
            }
            break;
        }
    }
    *out = r;
    return VEIL_OK;
}

static veil_err fk_kv_get(struct vl_store *s, const char *t, const struct vl_bytes *keys, size_t n,
                          struct vl_kv_values *out)
{
    enum mode m = call_mode();
    if (m == UNREACHABLE) {
        return VEIL_ERR_STORE_UNAVAILABLE;
    }
    if (m == DRIVER_INTEGRITY) {
        return VEIL_ERR_INTEGRITY;
    }
    struct vl_kv_values r = {NULL, 0, NULL};
    veil_err rc = real_of(s)->ops->kv_get(real_of(s), t, keys, n, &r);
    if (rc != VEIL_OK || m == HONEST) {
        *out = r;
        return rc;
    }
    /* Copy every value out, lie, and lay them out again in one arena. */
    size_t n0 = r.n, nv = r.n;
    struct vl_bytes *v = calloc(n0 + 4, sizeof(*v)); /* up to 3 answers added below */
    if (v == NULL) {
        abort();
    }
    for (size_t i = 0; i < nv; i++) {
        v[i].p = r.vals[i].p != NULL ? memdup(r.vals[i].p, r.vals[i].n) : NULL;
        v[i].n = r.vals[i].p != NULL ? r.vals[i].n : 0;
    }
    vl_kv_values_free(&r);
    for (int k = 1 + take8() % 3; k > 0; k--) {
        size_t i = take_idx(nv);
        switch (take8() % 6) {
        case 0: /* missing */
            if (nv > 0) {
                free(v[i].p);
                v[i].p = NULL;
                v[i].n = 0;
            }
            break;
        case 1: /* a flipped bit */
            if (nv > 0 && v[i].n > 0) {
                v[i].p[take_idx(v[i].n)] ^= (uint8_t)(1u << (take8() % 8));
            }
            break;
        case 2: /* cut short */
            if (nv > 0 && v[i].n > 0) {
                v[i].n = take_idx(v[i].n);
            }
            break;
        case 3: /* two exchanged */
            if (nv > 1) {
                size_t j = take_idx(nv);
                struct vl_bytes tmp = v[i];
                v[i] = v[j];
                v[j] = tmp;
            }
            break;
        case 4: /* made up, of any size up to past the largest */
            if (nv > 0) {
                free(v[i].p);
                v[i] = take_bytes(VL_KV_VAL_MAX + 16);
            }
            break;
        default: /* too few or too many answers */
            if (take8() % 2 == 0 && nv > 0) {
                nv--;
            } else if (nv < n0 + 3) {
                nv++; /* the extra one: missing */
                free(v[nv - 1].p);
                v[nv - 1].p = NULL;
                v[nv - 1].n = 0;
            }
            break;
        }
    }
    size_t total = 0;
    for (size_t i = 0; i < nv; i++) {
        total += v[i].p != NULL ? v[i].n : 0;
    }
    r.vals = calloc(nv + 1, sizeof(*r.vals));
    r.arena = malloc(total + 1);
    if (r.vals == NULL || r.arena == NULL) {
        abort();
    }
    r.n = nv;
    for (size_t i = 0, at = 0; i < nv; i++) {
        if (v[i].p != NULL) {
            memcpy((uint8_t *)r.arena + at, v[i].p, v[i].n);
            r.vals[i].p = (uint8_t *)r.arena + at;
            r.vals[i].n = v[i].n;
            at += v[i].n;
        }
    }
    for (size_t i = 0; i < n0 + 4; i++) {
        free(v[i].p);
    }
    free(v);
    *out = r;
    return VEIL_OK;
}

static const struct vl_store_ops fk_ops = {
    .version = 1,
    .scheme = "fuzz",
    .open = NULL,
    .close = fk_close,
    .ping = fk_ping,
    .ensure_table = fk_ensure_table,
    .drop_table = fk_drop_table,
    .put_rows = fk_put_rows,
    .get_rows = fk_get_rows,
    .delete_rows = fk_delete_rows,
    .find = fk_find,
    .aggregate = fk_aggregate,
    .kv_put = fk_kv_put,
    .kv_get = fk_kv_get,
    .kv_delete = fk_kv_delete,
    .put = fk_put,
    .members = fk_members,
};

/* ---- set-up ---- */

static void put_doc(const char *coll, const char *id, const char *json)
{
    veil_status st;
    char *out = NULL;
    if (veil_doc_put(fz_clerk, coll, id, json, strlen(json), 0, &out, NULL, &st) != VEIL_OK) {
        fz_die("put", &st);
    }
    veil_free(out);
}

static char *invoice(int i, int version)
{
    char *d = NULL;
    const char *w1 = words[i % 8], *w2 = words[(i * 3 + version) % 8], *w3 = words[(i / 5) % 8];
    if (asprintf(&d,
                 "{\"invoice_no\":\"INV-%04d\",\"org_id\":\"ORG-%d\",\"status\":\"%s\","
                 "\"issued_on\":\"2024-%02d-%02d\",\"amount\":\"%d.%02d\","
                 "\"customer\":{\"name\":\"%s BV\",\"iban\":\"NL91ABNA04171643%02d\"},"
                 "\"notes\":\"%s %s %s %s\",\"count\":%d}",
                 i, i % 3, i % 2 ? "open" : "paid", 1 + i % 12, 1 + i % 28, 100 + 37 * i,
                 (i * 7 + version) % 100, i % 4 ? "Jansen" : "de Vries", i % 100, w1, w2, w3,
                 i % 3 ? "late" : "", i * version) < 0) {
        abort();
    }
    return d;
}

static void load(void)
{
    char id[32];
    for (int i = 0; i < NDOCS - NBULK; i++) {
        char *d = invoice(i, 1);
        snprintf(id, sizeof(id), "inv-%d", i);
        put_doc("invoices", id, d);
        free(d);
    }
    /* one bulk batch: its index entries hold many documents each */
    char *nd = NULL;
    size_t ndlen = 0;
    FILE *m = open_memstream(&nd, &ndlen);
    for (int i = NDOCS - NBULK; i < NDOCS && m != NULL; i++) {
        char *d = invoice(i, 1);
        fprintf(m, "{\"id\":\"inv-%d\",\"doc\":%s}\n", i, d);
        free(d);
    }
    if (m == NULL || fclose(m) != 0) {
        abort();
    }
    veil_status st;
    char *out = NULL;
    if (veil_bulk(fz_clerk, "invoices", nd, ndlen, &out, &st) != VEIL_OK) {
        fz_die("bulk", &st);
    }
    free(nd);
    veil_free(out);
    /* replaced and deleted ones: stale index entries, documents no longer live */
    for (int i = 3; i < NDOCS; i += 11) {
        char *d = invoice(i, 2);
        snprintf(id, sizeof(id), "inv-%d", i);
        put_doc("invoices", id, d);
        free(d);
    }
    for (int i = 5; i < NDOCS; i += 13) {
        snprintf(id, sizeof(id), "inv-%d", i);
        if (veil_doc_delete(fz_clerk, "invoices", id, &st) != VEIL_OK) {
            fz_die("delete", &st);
        }
    }
    int created = 0;
    if (veil_collection_apply(fz_admin, "ledger", ledger_policy, strlen(ledger_policy), &created,
                              &st) != VEIL_OK) {
        fz_die("ledger policy", &st);
    }
    for (int i = 0; i < NLEDGER; i++) {
        char doc[256];
        snprintf(doc, sizeof(doc),
                 "{\"org\":\"o%d\",\"amt\":\"%d.%02d\",\"units\":%d,\"memo\":\"%s %s\"}", i % 2,
                 -50 + 31 * i, i * 13 % 100, 1000 - 333 * i, words[i % 8], i % 2 ? "alpha" : "");
        snprintf(id, sizeof(id), "l-%d", i);
        put_doc("ledger", id, doc);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_vault_init(NULL);
    veil_status st;
    if (veil_session_open(fz_v, "fuzz", "analyst", &fz_analyst, &st) != VEIL_OK) {
        fz_die("analyst session", &st);
    }
    load();
    vl_log_set_level(VL_LOG_ERROR); /* every breach would log a warning */
    (void)fz_check;                 /* this harness judges answers itself */
    struct fk_store *fk = calloc(1, sizeof(*fk));
    if (fk == NULL) {
        abort();
    }
    fk->base.ops = &fk_ops;
    fk->real = fz_v->stores[0];
    fz_v->stores[0] = &fk->base;
    return 0;
}

/* ---- the reads ---- */

static const char *const plain_wheres[] = {
    NULL,
    "{\"org_id\":\"ORG-1\"}",
    "{\"status\":{\"in\":[\"open\",\"paid\"]}}",
    "{\"amount\":{\"gte\":\"300\",\"lt\":\"1500\"}}",
    "{\"org_id\":\"ORG-2\",\"issued_on\":{\"gte\":\"2024-03-01\"}}",
    "{\"org_id\":\"NOPE\"}",
};

static const char *const matches[] = {
    "{\"notes\":\"late\"}",
    "{\"notes\":{\"any\":\"late dispute refund\"}}",
    "{\"notes\":\"payment reminder\"}",
    "{\"customer.name\":\"jansen\"}",
    "{\"notes\":\"zebra\"}",
};

static const char *const aggregates[] = {
    "{\"metrics\":{\"n\":{\"count\":\"*\"},\"s\":{\"sum\":\"amount\"},\"a\":{\"avg\":\"amount\"}}}",
    "{\"group_by\":[\"org_id\"],\"metrics\":{\"s\":{\"sum\":\"amount\"},\"a\":{\"avg\":"
    "\"amount\"},\"c\":{\"count\":\"amount\"}}}",
    "{\"group_by\":[\"org_id\",\"status\"],\"where\":{\"amount\":{\"gte\":\"200\"}},"
    "\"metrics\":{\"s\":{\"sum\":\"amount\"}}}",
    "{\"match\":{\"notes\":\"late\"},\"group_by\":[\"status\"],\"metrics\":{\"a\":{\"avg\":"
    "\"amount\"},\"n\":{\"count\":\"*\"}}}",
    "{\"where\":{\"org_id\":\"ORG-0\"},\"metrics\":{\"s\":{\"sum\":\"amount\"}},\"explain\":true}",
};

static const char *const ledger_aggregates[] = {
    "{\"group_by\":[\"org\"],\"metrics\":{\"u\":{\"sum\":\"units\"},\"au\":{\"avg\":\"units\"},"
    "\"a\":{\"sum\":\"amt\"},\"aa\":{\"avg\":\"amt\"}}}",
    "{\"metrics\":{\"u\":{\"sum\":\"units\"},\"n\":{\"count\":\"*\"}}}",
    "{\"match\":{\"memo\":\"alpha\"},\"metrics\":{\"u\":{\"sum\":\"units\"},\"a\":{\"avg\":"
    "\"amt\"}}}",
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

enum kind { K_GET, K_QUERY, K_AGG };

/* One call's answer against the rules of the file header; `lies` were told during it. */
static void judge(enum kind kind, veil_err rc, const veil_status *st, unsigned lies)
{
    const char *why = NULL;
    switch (rc) {
    case VEIL_OK: break;
    case VEIL_ERR_NOT_FOUND: why = kind == K_GET ? NULL : "404 for a query"; break;
    case VEIL_ERR_INTEGRITY:
        why = strcmp(st->message, BREACH_MESSAGE) != 0 ? "a 502 that did not go through vl_breach"
              : lies == 0                              ? "a 502 from an honest store"
                                                       : NULL;
        break;
    case VEIL_ERR_STORE_UNAVAILABLE:
        why = sc.said_unreachable ? NULL : "a 503 though the store was reachable";
        break;
    case VEIL_ERR_BAD_REQUEST:
        why = kind == K_AGG && lies > 0 ? NULL : "a 400 for a valid request";
        break;
    default: why = "an error no store answer may cause"; break;
    }
    if (why != NULL) {
        fprintf(stderr, "fuzz_store: %s (%s: %s)\n", why, veil_err_name(rc), st->message);
        abort();
    }
}

/* Runs one request; *out (malloc'd or NULL) is its answer. */
static veil_err run(enum kind kind, veil_session *s, const char *coll, const char *arg, char **out,
                    veil_status *st)
{
    *out = NULL;
    sc.said_unreachable = false;
    sc.ignored_cursor = false;
    veil_err rc;
    if (kind == K_GET) {
        rc = veil_doc_get(s, coll, arg, out, st);
    } else if (kind == K_QUERY) {
        rc = veil_query(s, coll, arg, strlen(arg), out, st);
    } else {
        rc = veil_aggregate(s, coll, arg, strlen(arg), out, st);
    }
    if (rc != VEIL_OK) {
        veil_free(*out);
        *out = NULL;
    }
    return rc;
}

/* The honest answer, which must come. */
static char *baseline(enum kind kind, veil_session *s, const char *coll, const char *arg)
{
    veil_status st;
    char *out = NULL;
    bool on = sc.on;
    sc.on = false;
    veil_err rc = run(kind, s, coll, arg, &out, &st);
    sc.on = on;
    if (rc != VEIL_OK && !(kind == K_GET && rc == VEIL_ERR_NOT_FOUND)) {
        fprintf(stderr, "fuzz_store: an honest store's answer failed: %s: %s\n", veil_err_name(rc),
                st.message);
        abort();
    }
    return out;
}

/* The query body of page `after` (NULL: the first). */
static char *query_body(const char *where, const char *match, const char *select, int limit,
                        const char *after)
{
    json_t *q = json_pack("{s:i}", "limit", limit);
    if (where != NULL) {
        json_object_set_new(q, "where", json_loads(where, 0, NULL));
    }
    if (match != NULL) {
        json_object_set_new(q, "match", json_loads(match, 0, NULL));
    }
    if (select != NULL) {
        json_object_set_new(q, "select", json_loads(select, 0, NULL));
    }
    if (after != NULL) {
        json_object_set_new(q, "after", json_string(after));
    }
    char *b = json_dumps(q, JSON_COMPACT);
    json_decref(q);
    if (b == NULL) {
        abort();
    }
    return b;
}

/* The `next` cursor of a query answer (malloc'd), or NULL. */
static char *next_of(const char *answer)
{
    json_t *a = json_loads(answer, 0, NULL);
    const char *n = json_string_value(json_object_get(a, "next"));
    char *c = n != NULL ? strdup(n) : NULL;
    json_decref(a);
    return c;
}

/* Aborts unless an answer given (got; NULL: none) is the honest one. Cursors are sealed
 * under a fresh nonce each time: of `next`, only whether there is one is compared. */
static void same_or_die(const char *what, const char *got, const char *want)
{
    if (got == NULL) {
        return;
    }
    json_t *g = json_loads(got, 0, NULL), *w = want != NULL ? json_loads(want, 0, NULL) : NULL;
    bool same = g != NULL && w != NULL;
    if (same && json_object_get(g, "next") != NULL) {
        same = json_is_null(json_object_get(g, "next")) == json_is_null(json_object_get(w, "next"));
        json_object_del(g, "next");
        json_object_del(w, "next");
    }
    same = same && json_equal(g, w);
    json_decref(g);
    json_decref(w);
    if (!same) {
        fprintf(stderr, "fuzz_store: %s answered differently from the honest store\n", what);
        abort();
    }
}

/* Pages through a query: page 1 honest when `honest_first`, then the script's store. */
static void paged(veil_session *s, const char *where, const char *match, const char *select,
                  int limit, bool honest_first)
{
    char *after = NULL;
    (void)where; /* every query is verified: complete and exact, or 502 */
    for (int page = 0; page < MAX_PAGES; page++) {
        char *body = query_body(where, match, select, limit, after);
        char *want = baseline(K_QUERY, s, "invoices", body);
        veil_status st;
        char *got = NULL;
        unsigned lies = sc.lies;
        sc.on = !(honest_first && page == 0);
        veil_err rc = run(K_QUERY, s, "invoices", body, &got, &st);
        judge(K_QUERY, rc, &st, sc.lies - lies);
        if (sc.lies == lies) {
            same_or_die("a query with no lie told", got, want);
        }
        same_or_die("a query", got, want);
        if (sc.ignored_cursor && sc.lies == lies + 1 && rc != VEIL_ERR_INTEGRITY &&
            rc != VEIL_ERR_STORE_UNAVAILABLE) {
            fprintf(stderr, "fuzz_store: a page that ignored its cursor was accepted\n");
            abort();
        }
        free(after);
        after = rc == VEIL_OK ? next_of(got) : NULL;
        free(body);
        free(want);
        veil_free(got);
        if (after == NULL) {
            break;
        }
    }
    free(after);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    memset(&sc, 0, sizeof(sc));
    sc.p = data;
    sc.n = size;
    uint8_t op = take8(), a = take8(), b = take8(), c = take8();
    veil_session *readers[] = {fz_admin, fz_clerk, fz_auditor};
    veil_session *who = readers[c % 3];
    veil_session *searcher = c % 2 ? fz_admin : fz_clerk; /* the auditor reads neither
                                                             org_id nor notes */
    switch (op % 6) {
    case 0: { /* get */
        char id[32];
        snprintf(id, sizeof(id), "inv-%d", a % (NDOCS + 4));
        char *want = baseline(K_GET, who, "invoices", id);
        veil_status st;
        char *got = NULL;
        sc.on = true;
        veil_err rc = run(K_GET, who, "invoices", id, &got, &st);
        judge(K_GET, rc, &st, sc.lies);
        same_or_die("a get", got, want);
        if (rc == VEIL_ERR_NOT_FOUND && want != NULL) {
            /* a live document said absent: only a store can do that, never silently */
            fprintf(stderr, "fuzz_store: a live document read as absent\n");
            abort();
        }
        free(want);
        veil_free(got);
        break;
    }
    case 1: /* plain query, paged */
    case 2: /* the same, page 1 honest: the store lies about a cursor's page */
        paged(searcher, plain_wheres[a % COUNT(plain_wheres)], NULL,
              b % 2 ? "[\"invoice_no\",\"amount\"]" : NULL, 1 + b % 13, op % 6 == 2);
        break;
    case 3: /* search, paged, with or without where */
        paged(searcher, a % 3 == 0 ? plain_wheres[1 + b % (COUNT(plain_wheres) - 1)] : NULL,
              matches[a % COUNT(matches)], NULL, 1 + b % 7, c % 2 == 0);
        break;
    default: { /* aggregates, ASHE and Paillier */
        bool ledger = op % 6 == 5;
        const char *body = ledger ? ledger_aggregates[a % COUNT(ledger_aggregates)]
                                  : aggregates[a % COUNT(aggregates)];
        veil_session *s = ledger ? fz_admin : (b % 2 ? fz_analyst : fz_admin);
        if (s == fz_analyst && strstr(body, "match") != NULL) {
            s = fz_admin; /* the analyst may not search notes */
        }
        char *want = baseline(K_AGG, s, ledger ? "ledger" : "invoices", body);
        veil_status st;
        char *got = NULL;
        sc.on = true;
        veil_err rc = run(K_AGG, s, ledger ? "ledger" : "invoices", body, &got, &st);
        judge(K_AGG, rc, &st, sc.lies);
        same_or_die(sc.lies == 0 ? "an aggregate with no lie told" : "an aggregate", got, want);
        free(want);
        veil_free(got);
        break;
    }
    }
    return 0;
}
