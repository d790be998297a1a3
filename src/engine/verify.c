/*
 * verify.c: complete answers (docs/design.md "Complete answers").
 *
 * A store answers a filtered query with the documents its index lists for the query's
 * tokens. Each document it returns is checked when it is opened, but a store could also
 * leave some out, or list one under a token it does not have. So the trusted state keeps,
 * per token, the number of live documents that have it and a keyed set hash of them
 * (crypto/sethash.h, trusted.h "token sets"), updated by every write in the same
 * transaction that finishes it. Here a condition's members, as the store lists them, are
 * checked against those: per token, the count and the sum of Q(tk, doc) over the listed
 * documents must be the trusted ones. Both are over documents, not versions: a write that
 * keeps a token changes neither.
 *
 * Writes go on meanwhile. A write is in flight from its intent to its finish; the store may
 * show it or not (each store write is atomic), and its document's old and new versions may
 * differ in whether they have a token. So the expected set of a token is the trusted one,
 * plus each document whose write in flight adds the token and that the store lists, minus
 * each whose write removes it and that the store no longer lists. Writes that begin, or
 * finish, between the reads of the trusted state and of the store can still make an honest
 * answer differ: then it is read again, and the last time with the trusted state frozen (no
 * write can begin or finish until the store has answered), where an honest store always
 * agrees. Only a difference then is a breach.
 *
 * The cost is the members of the tokens asked: a query is checked against its most
 * selective condition (the trusted counts say which), and the other conditions whose sets
 * are not much larger; the rest are checked on the opened documents. Aggregates are checked
 * at the end of this file.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "util/log.h"

#define VERIFY_TRIES 3    /* the last one frozen */
#define INTERSECT_RATIO 8 /* conditions up to this many times the smallest are intersected */
#define INTERSECT_SLACK 256

/* A token's class (sethash.h): its column's first byte (a keyed label, so columns spread
 * over the classes), then its range prefix's digits (0 for an equality token). The "all"
 * and "any" sets, which every write touches, share class 0. */
void vl_coll_tk(const struct vl_coll *c, const uint8_t col[VL_COL_BYTES],
                const struct vl_bytes *tok, uint8_t level, uint8_t out[VL_TK_BYTES])
{
    vl_tk(out, c->set_key, (uint16_t)(col[0] << 8 | level), col, VL_COL_BYTES, tok->p, tok->n);
}

void vl_coll_all_tk(const struct vl_coll *c, uint8_t out[VL_TK_BYTES])
{
    static const uint8_t all[] = "all";
    vl_tk(out, c->set_key, 0, NULL, 0, all, sizeof(all) - 1);
}

void vl_coll_any_tk(const struct vl_coll *c, const uint8_t col[VL_COL_BYTES],
                    uint8_t out[VL_TK_BYTES])
{
    vl_tk(out, c->set_key, 0, col, VL_COL_BYTES, NULL, 0);
}

static int tk_cmp(const void *a, const void *b)
{
    return memcmp(a, b, VL_TK_BYTES);
}

/* Is col the equality column, or the MAC tags' column, of a field of c? Only those get an
 * "any" set: group columns, and the cells an aggregate combines. */
static bool any_column(const struct vl_coll *c, const uint8_t *col)
{
    for (size_t f = 0; f < c->policy->nfields; f++) {
        const struct vl_fctx *fc = &c->fields[f];
        if (((fc->f->tactics & VL_TAC_EQ) && memcmp(fc->col, col, VL_COL_BYTES) == 0) ||
            ((fc->f->tactics & VL_TAC_SUM) && memcmp(fc->tcol, col, VL_COL_BYTES) == 0)) {
            return true;
        }
    }
    return false;
}

veil_err vl_sealed_tks(const struct vl_coll *c, const struct vl_sealed *sd, size_t nstores,
                       struct vl_buf *out)
{
    size_t n = 1;
    for (size_t i = 0; i < nstores; i++) {
        n += 2 * sd->ntokens[i] + sd->nsums[i];
    }
    uint8_t(*tks)[VL_TK_BYTES] = malloc(n * VL_TK_BYTES);
    if (tks == NULL) {
        return VEIL_ERR_INTERNAL;
    }
    size_t k = 0;
    vl_coll_all_tk(c, tks[k++]);
    for (size_t i = 0; i < nstores; i++) {
        for (size_t j = 0; j < sd->ntokens[i]; j++) {
            vl_coll_tk(c, sd->tokens[i][j].col, &sd->tokens[i][j].tok, sd->tokens[i][j].level,
                       tks[k++]);
            if (any_column(c, sd->tokens[i][j].col)) {
                vl_coll_any_tk(c, sd->tokens[i][j].col, tks[k++]);
            }
        }
        for (size_t j = 0; j < sd->nsums[i]; j++) { /* ASHE cells and MAC tags */
            if (any_column(c, sd->sums[i][j].col)) {
                vl_coll_any_tk(c, sd->sums[i][j].col, tks[k++]);
            }
        }
    }
    /* A store keeps a (column, token) of a row once: so does the trusted state. */
    qsort(tks, k, VL_TK_BYTES, tk_cmp);
    size_t u = 0;
    for (size_t i = 0; i < k; i++) {
        if (u == 0 || memcmp(tks[u - 1], tks[i], VL_TK_BYTES) != 0) {
            memmove(tks[u++], tks[i], VL_TK_BYTES);
        }
    }
    vl_buf_init(out, SIZE_MAX);
    veil_err rc = vl_buf_append(out, tks, u * VL_TK_BYTES);
    free(tks);
    return rc;
}

void vl_docset_free(struct vl_docset *d)
{
    free(d->docs);
    d->docs = NULL;
    d->n = 0;
}

static int doc_cmp(const void *a, const void *b)
{
    return memcmp(a, b, VL_DOCTOKEN_BYTES);
}

static int member_cmp(const void *a, const void *b)
{
    const struct vl_member *x = a, *y = b;
    if (x->tok != y->tok) {
        return x->tok < y->tok ? -1 : 1;
    }
    return memcmp(x->doc, y->doc, VL_DOCTOKEN_BYTES);
}

/* One token key of a write in flight: its old version has it (OLD), its new one (NEW). */
#define IN_OLD 1
#define IN_NEW 2
struct flight_tk {
    uint8_t tk[VL_TK_BYTES];
    size_t idx;
    int which;
};

static int flight_cmp(const void *a, const void *b)
{
    const struct flight_tk *x = a, *y = b;
    int c = memcmp(x->tk, y->tk, VL_TK_BYTES);
    return c != 0 ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

/* The token keys of the writes in flight, sorted. */
static struct flight_tk *flight_index(const struct vl_inflight *f, size_t nf, size_t *n)
{
    size_t k = 0;
    for (size_t i = 0; i < nf; i++) {
        k += f[i].old_tks.n / VL_TK_BYTES + f[i].tks.n / VL_TK_BYTES;
    }
    struct flight_tk *x = malloc((k ? k : 1) * sizeof(*x));
    if (x == NULL) {
        return NULL;
    }
    k = 0;
    for (size_t i = 0; i < nf; i++) {
        for (int w = 0; w < 2; w++) {
            const struct vl_bytes *b = w == 0 ? &f[i].old_tks : &f[i].tks;
            for (size_t j = 0; j + VL_TK_BYTES <= b->n; j += VL_TK_BYTES) {
                memcpy(x[k].tk, b->p + j, VL_TK_BYTES);
                x[k].idx = i;
                x[k].which = w == 0 ? IN_OLD : IN_NEW;
                k++;
            }
        }
    }
    qsort(x, k, sizeof(*x), flight_cmp);
    *n = k;
    return x;
}

enum verdict { AGREES, DIFFERS, LIES };

/* Checks a store's members of tks[0..n) (sorted here) against the trusted sets and the
 * writes in flight. */
static enum verdict check_members(struct vl_members *m, const uint8_t (*tks)[VL_TK_BYTES], size_t n,
                                  const struct vl_tokset *sets, const struct vl_inflight *f,
                                  const struct flight_tk *fx, size_t nfx)
{
    for (size_t i = 0; i < m->n; i++) {
        if (m->m[i].tok >= n) {
            return LIES; /* a token not asked for */
        }
    }
    if (m->n > 0) {
        qsort(m->m, m->n, sizeof(*m->m), member_cmp);
    }
    for (size_t i = 1; i < m->n; i++) {
        if (member_cmp(&m->m[i - 1], &m->m[i]) == 0) {
            return LIES; /* a document twice under one token */
        }
    }
    size_t at = 0;
    for (size_t t = 0; t < n; t++) {
        size_t first = at;
        vl_u128 got = 0;
        while (at < m->n && m->m[at].tok == t) {
            got = vl_set_add(got, vl_set_q(tks[t], m->m[at].doc, VL_DOCTOKEN_BYTES));
            at++;
        }
        uint64_t count = at - first, want_n = sets[t].n;
        vl_u128 want = sets[t].hq;
        /* Writes in flight that add or remove this token: as the store shows them. */
        struct flight_tk key;
        memcpy(key.tk, tks[t], VL_TK_BYTES);
        key.idx = 0;
        key.which = 0;
        size_t lo = 0, hi = nfx;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (flight_cmp(&fx[mid], &key) < 0) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        for (size_t k = lo; k < nfx && memcmp(fx[k].tk, tks[t], VL_TK_BYTES) == 0;) {
            size_t idx = fx[k].idx;
            int which = 0;
            for (; k < nfx && fx[k].idx == idx && memcmp(fx[k].tk, tks[t], VL_TK_BYTES) == 0; k++) {
                which |= fx[k].which;
            }
            if (which == (IN_OLD | IN_NEW)) {
                continue; /* listed either way */
            }
            struct vl_member probe = {.tok = (uint32_t)t};
            memcpy(probe.doc, f[idx].doc, VL_DOCTOKEN_BYTES);
            bool listed = count > 0 &&
                          bsearch(&probe, m->m + first, count, sizeof(probe), member_cmp) != NULL;
            vl_u128 q = vl_set_q(tks[t], f[idx].doc, VL_DOCTOKEN_BYTES);
            if (which == IN_NEW && listed) {
                want_n++;
                want = vl_set_add(want, q);
            } else if (which == IN_OLD && !listed) {
                want_n--;
                want = vl_set_sub(want, q);
            }
        }
        if (count != want_n || got != want) {
            return DIFFERS;
        }
    }
    return AGREES;
}

/* The documents of the members, sorted, each once. */
static veil_err members_docs(const struct vl_members *m, struct vl_docset *out)
{
    out->n = 0;
    out->docs = malloc((m->n ? m->n : 1) * VL_DOCTOKEN_BYTES);
    if (out->docs == NULL) {
        return VEIL_ERR_INTERNAL;
    }
    for (size_t i = 0; i < m->n; i++) {
        memcpy(out->docs[i], m->m[i].doc, VL_DOCTOKEN_BYTES);
    }
    qsort(out->docs, m->n, VL_DOCTOKEN_BYTES, doc_cmp);
    size_t u = 0;
    for (size_t i = 0; i < m->n; i++) {
        if (u == 0 || memcmp(out->docs[u - 1], out->docs[i], VL_DOCTOKEN_BYTES) != 0) {
            memmove(out->docs[u++], out->docs[i], VL_DOCTOKEN_BYTES);
        }
    }
    out->n = u;
    return VEIL_OK;
}

/* A condition's tokens, their keys, and the trusted size of their sets. */
struct vcond {
    const struct vl_cond *cd;
    uint8_t (*tks)[VL_TK_BYTES];
    uint64_t size;
};

/* One check of a condition's members, under sn: the trusted sets and writes in flight as
 * sn sees them, the store's members as it answers now. *vd says how they compare; on
 * AGREES, *out holds the documents. */
static veil_err members_at(veil_session *s, const struct vl_coll *c, struct vl_tsnap *sn, int store,
                           const uint8_t col[VL_COL_BYTES], const struct vl_bytes *toks,
                           const uint8_t (*tks)[VL_TK_BYTES], size_t n, struct vl_docset *out,
                           enum verdict *vd, veil_status *st)
{
    veil_vault *v = s->v;
    struct vl_store *sto = v->stores[store];
    struct vl_tokset *sets = calloc(n ? n : 1, sizeof(*sets));
    struct vl_inflight *f = NULL;
    struct flight_tk *fx = NULL;
    struct vl_members m = {NULL, 0};
    size_t nf = 0, nfx = 0;
    veil_err rc = sets != NULL ? VEIL_OK : VEIL_ERR_INTERNAL;
    *vd = DIFFERS;
    memset(out, 0, sizeof(*out));
    if (rc == VEIL_OK) {
        rc = vl_trusted_toksets(v->trusted, sn, c->tenant_id, c->name, tks, n, sets);
    }
    if (rc == VEIL_OK) {
        rc = vl_trusted_inflight(v->trusted, sn, c->tenant_id, c->name, &f, &nf);
    }
    if (rc != VEIL_OK) {
        rc = vl_status_set(st, rc, NULL, "the trusted state is unavailable");
        goto out;
    }
    if ((rc = sto->ops->members(sto, c->table, col, toks, n, &m)) != VEIL_OK) {
        rc = vl_store_failed(s, c, store, rc, st);
        goto out;
    }
    if ((fx = flight_index(f, nf, &nfx)) == NULL) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    *vd = check_members(&m, tks, n, sets, f, fx, nfx);
    if (*vd == LIES) {
        rc = vl_breach(v, s, c->name,
                       "a store listed an index token not asked for, or a document twice", st);
    } else if (*vd == AGREES && members_docs(&m, out) != VEIL_OK) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
    }
out:
    free(sets);
    free(fx);
    vl_inflight_free(f, nf);
    vl_members_free(&m);
    return rc;
}

/* Runs fn until it agrees: under read snapshots first, the last time frozen; a difference
 * then is a breach, reported as `what`. */
typedef veil_err (*attempt_fn)(void *ctx, struct vl_tsnap *sn, enum verdict *vd, veil_status *st);
static veil_err until_agreed(veil_session *s, const struct vl_coll *c, attempt_fn fn, void *ctx,
                             const char *what, veil_status *st)
{
    veil_vault *v = s->v;
    for (int attempt = 0; attempt < VERIFY_TRIES; attempt++) {
        bool frozen = attempt == VERIFY_TRIES - 1;
        struct vl_tsnap *sn = NULL;
        enum verdict vd = DIFFERS;
        veil_err rc = frozen ? vl_trusted_snap_freeze(v->trusted, &sn)
                             : vl_trusted_snap_begin(v->trusted, &sn);
        if (rc != VEIL_OK) {
            return vl_status_set(st, rc, NULL, "the trusted state is unavailable");
        }
        rc = fn(ctx, sn, &vd, st);
        vl_trusted_snap_end(sn);
        if (rc != VEIL_OK || vd == AGREES) {
            return rc;
        }
    }
    return vl_breach(v, s, c->name, what, st);
}

static const char members_differ[] = "a store's index left out, added or moved documents: "
                                     "its members differ from the trusted token sets";

/* Keeps the documents of a that are also in b (both sorted). */
static void docset_intersect(struct vl_docset *a, const struct vl_docset *b)
{
    size_t i = 0, j = 0, k = 0;
    while (i < a->n && j < b->n) {
        int cmp = memcmp(a->docs[i], b->docs[j], VL_DOCTOKEN_BYTES);
        if (cmp == 0) {
            memmove(a->docs[k++], a->docs[i], VL_DOCTOKEN_BYTES);
            i++;
            j++;
        } else if (cmp < 0) {
            i++;
        } else {
            j++;
        }
    }
    a->n = k;
}

static int vcond_cmp(const void *a, const void *b)
{
    const struct vcond *x = a, *y = b;
    return (x->size > y->size) - (x->size < y->size);
}

static void vconds_free(struct vcond *vc, size_t n)
{
    for (size_t i = 0; vc != NULL && i < n; i++) {
        free(vc[i].tks);
    }
    free(vc);
}

/* Each condition's token keys and trusted size, sorted by size (smallest first). A plan
 * of one condition needs no sizes unless `sized` (its size then reads 0). */
static veil_err vconds_of(veil_session *s, const struct vl_coll *c, const struct vl_plan *p,
                          bool sized, struct vcond **out, veil_status *st)
{
    veil_vault *v = s->v;
    veil_err rc = VEIL_OK;
    struct vcond *vc = calloc(p->n ? p->n : 1, sizeof(*vc));
    struct vl_tokset *sets = NULL;
    if (vc == NULL) {
        return vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
    }
    for (size_t i = 0; rc == VEIL_OK && i < p->n; i++) {
        const struct vl_cond *cd = &p->conds[i];
        vc[i].cd = cd;
        vc[i].tks = malloc((cd->ntoks ? cd->ntoks : 1) * VL_TK_BYTES);
        sets = calloc(cd->ntoks ? cd->ntoks : 1, sizeof(*sets));
        if (vc[i].tks == NULL || sets == NULL) {
            rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
            break;
        }
        for (size_t k = 0; k < cd->ntoks; k++) {
            vl_coll_tk(c, cd->term.col, &cd->toks[k], cd->levels != NULL ? cd->levels[k] : 0,
                       vc[i].tks[k]);
        }
        if (!sized && p->n == 1) {
            break;
        }
        if ((rc = vl_trusted_toksets(v->trusted, NULL, c->tenant_id, c->name,
                                     (const uint8_t(*)[VL_TK_BYTES])vc[i].tks, cd->ntoks, sets)) !=
            VEIL_OK) {
            rc = vl_status_set(st, rc, NULL, "the trusted state is unavailable");
            break;
        }
        for (size_t k = 0; k < cd->ntoks; k++) {
            vc[i].size += sets[k].n;
        }
        free(sets);
        sets = NULL;
    }
    free(sets);
    if (rc != VEIL_OK) {
        vconds_free(vc, p->n);
        return rc;
    }
    qsort(vc, p->n, sizeof(*vc), vcond_cmp);
    *out = vc;
    return VEIL_OK;
}

veil_err vl_plan_min_size(veil_session *s, const struct vl_coll *c, const struct vl_plan *p,
                          uint64_t *min, veil_status *st)
{
    struct vcond *vc = NULL;
    veil_err rc = vconds_of(s, c, p, true, &vc, st);
    *min = rc == VEIL_OK && p->n > 0 ? vc[0].size : UINT64_MAX;
    vconds_free(vc, p->n);
    return rc;
}

/* The candidates of a plan under sn (vc: its conditions, smallest first). */
static veil_err candidates_at(veil_session *s, const struct vl_coll *c, struct vl_tsnap *sn,
                              const struct vcond *vc, size_t n, struct vl_docset *out, bool *exact,
                              enum verdict *vd, veil_status *st)
{
    veil_err rc = VEIL_OK;
    uint64_t limit = vc[0].size * INTERSECT_RATIO + INTERSECT_SLACK;
    size_t used = 0;
    memset(out, 0, sizeof(*out));
    *vd = AGREES;
    for (size_t i = 0; i < n && (i == 0 || vc[i].size <= limit); i++) {
        const struct vl_cond *cd = vc[i].cd;
        struct vl_docset d;
        int store = cd->fc->store >= 0 ? cd->fc->store : 0;
        rc = members_at(s, c, sn, store, cd->term.col, cd->toks,
                        (const uint8_t(*)[VL_TK_BYTES])vc[i].tks, cd->ntoks, &d, vd, st);
        if (rc != VEIL_OK || *vd != AGREES) {
            break;
        }
        if (i == 0) {
            *out = d;
        } else {
            docset_intersect(out, &d);
            vl_docset_free(&d);
        }
        used++;
    }
    *exact = used == n;
    if (rc != VEIL_OK || *vd != AGREES) {
        vl_docset_free(out);
    }
    return rc;
}

struct cands_args {
    veil_session *s;
    const struct vl_coll *c;
    const struct vcond *vc;
    size_t n;
    struct vl_docset *out;
    bool *exact;
};

static veil_err cands_attempt(void *ctx, struct vl_tsnap *sn, enum verdict *vd, veil_status *st)
{
    struct cands_args *a = ctx;
    return candidates_at(a->s, a->c, sn, a->vc, a->n, a->out, a->exact, vd, st);
}

veil_err vl_plan_candidates(veil_session *s, const struct vl_coll *c, const struct vl_plan *p,
                            struct vl_docset *out, bool *exact, veil_status *st)
{
    struct vcond *vc = NULL;
    memset(out, 0, sizeof(*out));
    *exact = false;
    veil_err rc = p->n > 0 ? vconds_of(s, c, p, false, &vc, st) : VEIL_ERR_INTERNAL;
    if (rc == VEIL_OK) {
        struct cands_args a = {s, c, vc, p->n, out, exact};
        rc = until_agreed(s, c, cands_attempt, &a, members_differ, st);
    }
    vconds_free(vc, p->n);
    return rc;
}

/* ---- aggregates ----
 *
 * A store's aggregate answer gives, per group, its keys, its rows' sequence numbers (as
 * runs) and, per aggregated column, the runs of the cells it combined (the MAC tags' runs:
 * aggregate.c checks the sums against those). Without a where or a match, each group's rows
 * are checked by margins: for every key of every group column, the rows of the groups with
 * that key are the key's token set (ha); the rows of all groups are the collection's "all"
 * set, those with any key in a column its "any" set, the tags of a column its "any" set, and
 * each group's tags lie among its rows. A row is then in exactly one group, the one of its
 * keys, and a cell is counted exactly where its row is. The work is in the runs: two SipHash
 * calls per run and key. With a where or a match the candidates (verified members, or the
 * documents a search found) are checked one by one: their token keys in the trusted state
 * say whether they match the where and which group they belong to, and each group's rows
 * and tags must be exactly those. */

struct run_set {
    struct vl_seq_run *r;
    size_t n, cap;
};

static bool runs_push(struct run_set *rs, const struct vl_seq_run *r, size_t n)
{
    if (rs->n + n > rs->cap) {
        size_t ncap = (rs->n + n) * 2 + 16;
        struct vl_seq_run *nr = realloc(rs->r, ncap * sizeof(*nr));
        if (nr == NULL) {
            return false;
        }
        rs->r = nr;
        rs->cap = ncap;
    }
    if (n > 0) {
        memcpy(rs->r + rs->n, r, n * sizeof(*r));
    }
    rs->n += n;
    return true;
}

static int run_cmp(const void *a, const void *b)
{
    const struct vl_seq_run *x = a, *y = b;
    return (x->first > y->first) - (x->first < y->first);
}

/* Sorts and joins adjacent runs; false when two overlap (a row counted twice). */
static bool runs_merge(struct run_set *rs)
{
    if (rs->n > 0) {
        qsort(rs->r, rs->n, sizeof(*rs->r), run_cmp);
    }
    size_t k = 0;
    for (size_t i = 0; i < rs->n; i++) {
        if (k > 0 && rs->r[i].first <= rs->r[k - 1].last) {
            return false;
        }
        if (k > 0 && rs->r[i].first == rs->r[k - 1].last + 1) {
            rs->r[k - 1].last = rs->r[i].last;
        } else {
            rs->r[k++] = rs->r[i];
        }
    }
    rs->n = k;
    return true;
}

static bool runs_has(const struct vl_seq_run *r, size_t n, uint64_t seq)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r[mid].last < seq) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < n && r[lo].first <= seq;
}

/* Do the runs b (sorted, disjoint) lie within a? */
static bool runs_within(const struct vl_seq_run *b, size_t nb, const struct vl_seq_run *a,
                        size_t na)
{
    size_t i = 0;
    for (size_t j = 0; j < nb; j++) {
        while (i < na && a[i].last < b[j].first) {
            i++;
        }
        if (i == na || a[i].first > b[j].first || a[i].last < b[j].last) {
            return false;
        }
    }
    return true;
}

/* Is tk among the sorted keys of a list? */
static bool tks_have(const struct vl_bytes *list, const uint8_t tk[VL_TK_BYTES])
{
    size_t n = list->n / VL_TK_BYTES;
    return n > 0 && bsearch(tk, list->p, n, VL_TK_BYTES, tk_cmp) != NULL;
}

/* One margin: the rows in ms (merged) against tk's trusted set, with the writes in flight as
 * ms shows them: a write that adds tk counts when its new row is there, one that removes it
 * when its old row is gone. */
static bool margin_holds(const uint8_t tk[VL_TK_BYTES], const struct vl_tokset *set,
                         const struct vl_inflight *f, size_t nf, const struct run_set *ms)
{
    uint64_t got_n = 0, want_n = set->n;
    vl_u128 got = 0, want = set->ha;
    for (size_t i = 0; i < ms->n; i++) {
        got_n += ms->r[i].last - ms->r[i].first + 1;
        got = vl_set_add(got, vl_set_run(tk, ms->r[i].first, ms->r[i].last));
    }
    for (size_t i = 0; i < nf; i++) {
        bool in_old = f[i].old_live && tks_have(&f[i].old_tks, tk);
        bool in_new = !f[i].del && tks_have(&f[i].tks, tk);
        if (!in_old && !in_new) {
            continue;
        }
        bool shown_new =
            in_new ? runs_has(ms->r, ms->n, f[i].seq) : !runs_has(ms->r, ms->n, f[i].old_seq);
        if (!shown_new) {
            continue;
        }
        if (in_old) {
            want_n--;
            want = vl_set_sub(want, vl_set_a(tk, f[i].old_seq));
        }
        if (in_new) {
            want_n++;
            want = vl_set_add(want, vl_set_a(tk, f[i].seq));
        }
    }
    return got_n == want_n && got == want;
}

struct key_order {
    const struct vl_agg_result *res;
    size_t col;
};

static int group_key_cmp(const void *a, const void *b, void *arg)
{
    const struct key_order *ko = arg;
    const struct vl_agg_group *x = &ko->res->groups[*(const size_t *)a];
    const struct vl_agg_group *y = &ko->res->groups[*(const size_t *)b];
    const struct vl_bytes *kx = &x->keys[ko->col], *ky = &y->keys[ko->col];
    if (kx->n != ky->n) {
        return kx->n < ky->n ? -1 : 1;
    }
    return kx->n == 0 ? 0 : memcmp(kx->p, ky->p, kx->n);
}

/* The rows of the groups order[lo..hi) (or their tags' runs, column tag >= 0) merged into
 * ms; false when a row comes twice. */
static bool collect(const struct vl_agg_check *k, const size_t *order, size_t lo, size_t hi,
                    long tag, struct run_set *ms)
{
    ms->n = 0;
    for (size_t i = lo; i < hi; i++) {
        const struct vl_agg_group *g = &k->res->groups[order != NULL ? order[i] : i];
        const struct vl_seq_run *r = tag < 0 ? g->runs : g->values[k->tag_base + (size_t)tag].runs;
        size_t n = tag < 0 ? g->nruns : g->values[k->tag_base + (size_t)tag].nruns;
        if (!runs_push(ms, r, n)) {
            return false;
        }
    }
    return runs_merge(ms);
}

/* The margins of a where-less aggregate, under sn. */
static veil_err margins_at(veil_session *s, const struct vl_coll *c, struct vl_tsnap *sn,
                           const struct vl_agg_check *k, enum verdict *vd, veil_status *st)
{
    veil_vault *v = s->v;
    const struct vl_agg_result *res = k->res;
    struct vl_inflight *f = NULL;
    size_t nf = 0;
    size_t *order = calloc(res->n + 1, sizeof(*order));
    struct run_set ms = {NULL, 0, 0};
    struct key_order ko = {res, 0};
    veil_err rc = order != NULL ? VEIL_OK : VEIL_ERR_INTERNAL;
    *vd = AGREES;
    if (rc == VEIL_OK) {
        rc = vl_trusted_inflight(v->trusted, sn, c->tenant_id, c->name, &f, &nf);
    }
    /* Each group: its rows are as many as it counts, its tags lie among them. */
    for (size_t g = 0; rc == VEIL_OK && *vd == AGREES && g < res->n; g++) {
        const struct vl_agg_group *grp = &res->groups[g];
        uint64_t rows = 0;
        for (size_t r = 0; r < grp->nruns; r++) {
            rows += grp->runs[r].last - grp->runs[r].first + 1;
            if (r > 0 && grp->runs[r].first <= grp->runs[r - 1].last + 1) {
                *vd = LIES;
            }
        }
        if (rows != grp->count) {
            *vd = LIES;
        }
        for (size_t t = 0; t < k->ntags; t++) {
            const struct vl_agg_value *tv = &grp->values[k->tag_base + t];
            if (!runs_within(tv->runs, tv->nruns, grp->runs, grp->nruns)) {
                *vd = DIFFERS;
            }
        }
    }
    /* The margins: (tk, groups or tags) pairs. */
    for (size_t m = 0; rc == VEIL_OK && *vd == AGREES; m++) {
        uint8_t tk[1][VL_TK_BYTES];
        struct vl_tokset set;
        size_t lo = 0, hi = res->n;
        long tag = -1;
        size_t *ord = NULL;
        if (m == 0) {
            vl_coll_all_tk(c, tk[0]); /* all rows */
        } else if (m <= k->ngroup) {
            size_t j = m - 1; /* rows with a key in column j */
            for (size_t g = 0; g < res->n; g++) {
                order[g] = g;
            }
            ko.col = j;
            qsort_r(order, res->n, sizeof(*order), group_key_cmp, &ko);
            while (lo < res->n && res->groups[order[lo]].keys[j].n == 0) {
                lo++;
            }
            ord = order;
            vl_coll_any_tk(c, k->gcols[j], tk[0]);
        } else if (m <= k->ngroup + k->ntags) {
            tag = (long)(m - 1 - k->ngroup); /* cells of a column */
            vl_coll_any_tk(c, k->tcols[tag], tk[0]);
        } else {
            break;
        }
        if (!collect(k, ord, lo, hi, tag, &ms)) {
            *vd = LIES;
            break;
        }
        if ((rc = vl_trusted_toksets(v->trusted, sn, c->tenant_id, c->name,
                                     (const uint8_t(*)[VL_TK_BYTES])tk, 1, &set)) != VEIL_OK) {
            break;
        }
        if (!margin_holds(tk[0], &set, f, nf, &ms)) {
            *vd = DIFFERS;
            break;
        }
        /* Each key of column j: its groups' rows are its set (order is sorted by it). */
        for (size_t a = lo; m >= 1 && m <= k->ngroup && *vd == AGREES && a < hi;) {
            size_t j = m - 1, b = a + 1;
            while (b < hi && group_key_cmp(&order[a], &order[b], &ko) == 0) {
                b++;
            }
            vl_coll_tk(c, k->gcols[j], &res->groups[order[a]].keys[j], 0, tk[0]);
            if (!collect(k, order, a, b, -1, &ms)) {
                *vd = LIES;
            } else if ((rc = vl_trusted_toksets(v->trusted, sn, c->tenant_id, c->name,
                                                (const uint8_t(*)[VL_TK_BYTES])tk, 1, &set)) !=
                       VEIL_OK) {
                break;
            } else if (!margin_holds(tk[0], &set, f, nf, &ms)) {
                *vd = DIFFERS;
            }
            a = b;
        }
    }
    if (rc != VEIL_OK) {
        rc = vl_status_set(st, rc == VEIL_ERR_INTERNAL ? rc : VEIL_ERR_STORE_UNAVAILABLE, NULL,
                           rc == VEIL_ERR_INTERNAL ? "out of memory"
                                                   : "the trusted state is unavailable");
    }
    vl_inflight_free(f, nf);
    free(order);
    free(ms.r);
    return rc;
}

/* A document version as the store may show it: its token keys and row. */
struct version {
    const struct vl_bytes *tks;
    uint64_t seq;
    bool live;
};

/* Does a version with these token keys match every condition of the plan? */
static bool plan_match(const struct vcond *vc, size_t n, const struct vl_bytes *tks)
{
    for (size_t i = 0; i < n; i++) {
        bool hit = false;
        for (size_t t = 0; t < vc[i].cd->ntoks && !hit; t++) {
            hit = tks_have(tks, vc[i].tks[t]);
        }
        if (!hit) {
            return false;
        }
    }
    return true;
}

struct expect {
    size_t g;
    uint64_t seq;
    uint32_t tags; /* bit t: it has a cell in tag column t */
};

static int expect_cmp(const void *a, const void *b)
{
    const struct expect *x = a, *y = b;
    if (x->g != y->g) {
        return x->g < y->g ? -1 : 1;
    }
    return (x->seq > y->seq) - (x->seq < y->seq);
}

static int tuple_cmp(const void *a, const void *b, void *arg)
{
    size_t n = *(const size_t *)arg;
    return memcmp(a, b, n);
}

/* Do the sequence numbers of e[0..n) with tag bit `bit` (0: all) make exactly the runs r? */
static bool runs_are(const struct expect *e, size_t n, uint32_t bit, const struct vl_seq_run *r,
                     size_t nr)
{
    size_t k = 0;
    bool open = false;
    uint64_t first = 0, last = 0;
    for (size_t i = 0; i <= n; i++) {
        bool take = i < n && (bit == 0 || (e[i].tags & bit) != 0);
        if (i < n && !take) {
            continue;
        }
        if (take && open && e[i].seq == last + 1) {
            last = e[i].seq;
            continue;
        }
        if (open) {
            if (k == nr || r[k].first != first || r[k].last != last) {
                return false;
            }
            k++;
        }
        if (take) {
            open = true;
            first = last = e[i].seq;
        }
    }
    return k == nr;
}

#define TUPLE_MAX (VL_AGG_MAX_GROUP * VL_TK_BYTES)

/* The record (of rec bytes, sorted by their first tl) that starts with tuple, or NULL. */
static const uint8_t *tuple_find(const uint8_t *tuple, const uint8_t *recs, size_t n, size_t rec,
                                 size_t tl)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = memcmp(recs + mid * rec, tuple, tl);
        if (cmp == 0) {
            return recs + mid * rec;
        }
        if (cmp < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

/* The candidates of an aggregate with a where or a match, one by one, under sn. */
/* What exact_at checks an aggregate against, read before or while the store aggregates:
 * the candidates (the verified members of the where, or the match's documents, and the
 * documents of writes in flight), and per candidate its live version's token keys and row
 * number from trusted state. */
struct exact_prep {
    struct vl_docset cands;
    struct vl_inflight *f;
    size_t nf;
    struct vl_bytes *tks;
    uint64_t *seqs;
};

static void exact_prep_free(struct exact_prep *p)
{
    for (size_t i = 0; p->tks != NULL && i < p->cands.n; i++) {
        free(p->tks[i].p);
    }
    free(p->tks);
    free(p->seqs);
    vl_inflight_free(p->f, p->nf);
    vl_docset_free(&p->cands);
    memset(p, 0, sizeof(*p));
}

static veil_err exact_prep(veil_session *s, const struct vl_coll *c, struct vl_tsnap *sn,
                           const struct vl_agg_check *k, const struct vcond *vc, size_t nvc,
                           struct exact_prep *p, enum verdict *vd, veil_status *st)
{
    veil_vault *v = s->v;
    bool exact = false;
    veil_err rc = VEIL_OK;
    memset(p, 0, sizeof(*p));
    *vd = AGREES;
    if (k->hits != NULL) {
        p->cands.n = k->hits->n;
        p->cands.docs = malloc((p->cands.n ? p->cands.n : 1) * VL_DOCTOKEN_BYTES);
        if (p->cands.docs == NULL) {
            rc = VEIL_ERR_INTERNAL;
            goto out;
        }
        memcpy(p->cands.docs, k->hits->docs, p->cands.n * VL_DOCTOKEN_BYTES);
    } else if ((rc = candidates_at(s, c, sn, vc, nvc, &p->cands, &exact, vd, st)) != VEIL_OK ||
               *vd != AGREES) {
        return rc;
    }
    /* The documents of writes in flight are candidates too: the store may have shown one
     * version to the aggregate and the other to the members. */
    if ((rc = vl_trusted_inflight(v->trusted, sn, c->tenant_id, c->name, &p->f, &p->nf)) !=
        VEIL_OK) {
        goto out;
    }
    if (p->nf > 0 && k->hits == NULL) {
        uint8_t(*u)[VL_DOCTOKEN_BYTES] =
            realloc(p->cands.docs, (p->cands.n + p->nf) * VL_DOCTOKEN_BYTES);
        if (u == NULL) {
            rc = VEIL_ERR_INTERNAL;
            goto out;
        }
        p->cands.docs = u;
        for (size_t x = 0; x < p->nf; x++) {
            memcpy(p->cands.docs[p->cands.n++], p->f[x].doc, VL_DOCTOKEN_BYTES);
        }
        qsort(p->cands.docs, p->cands.n, VL_DOCTOKEN_BYTES, doc_cmp);
        size_t w = 0;
        for (size_t x = 0; x < p->cands.n; x++) {
            if (w == 0 ||
                memcmp(p->cands.docs[w - 1], p->cands.docs[x], VL_DOCTOKEN_BYTES) != 0) {
                memmove(p->cands.docs[w++], p->cands.docs[x], VL_DOCTOKEN_BYTES);
            }
        }
        p->cands.n = w;
    }
    size_t nc = p->cands.n ? p->cands.n : 1;
    p->tks = calloc(nc, sizeof(*p->tks));
    p->seqs = calloc(nc, sizeof(*p->seqs));
    if (p->tks == NULL || p->seqs == NULL) {
        rc = VEIL_ERR_INTERNAL;
        goto out;
    }
    rc = vl_trusted_docs_tks(v->trusted, sn, c->tenant_id, c->name,
                             (const uint8_t(*)[VL_DOCTOKEN_BYTES])p->cands.docs, p->cands.n,
                             p->tks, p->seqs);
out:
    if (rc != VEIL_OK) {
        rc = vl_status_set(st, rc == VEIL_ERR_INTERNAL ? rc : VEIL_ERR_STORE_UNAVAILABLE, NULL,
                           rc == VEIL_ERR_INTERNAL ? "out of memory"
                                                   : "the trusted state is unavailable");
    }
    return rc;
}

/* Checks the store's aggregate (k->res) against the candidates of exact_prep: every
 * candidate whose live version matches is in the group of its keys, with its row and tags,
 * and nothing else is. */
static veil_err exact_check(const struct vl_coll *c, const struct vl_agg_check *k,
                            const struct vcond *vc, size_t nvc, const struct exact_prep *p,
                            enum verdict *vd, veil_status *st)
{
    const struct vl_agg_result *res = k->res;
    const struct vl_docset cands = p->cands;
    const struct vl_inflight *f = p->f;
    const struct vl_bytes *tks = p->tks;
    const uint64_t *seqs = p->seqs;
    size_t nf = p->nf, ne = 0;
    uint8_t *keys = NULL;    /* per group, its tuple of key token keys (zeros: none) */
    uint8_t *colkeys = NULL; /* per column, the distinct key token keys, sorted */
    size_t *ncolkeys = NULL;
    struct expect *e = NULL;
    struct run_set all = {NULL, 0, 0};
    size_t tl = k->ngroup * VL_TK_BYTES;
    uint8_t anyk[VL_AGG_MAX_GROUP][VL_TK_BYTES], tagk[32][VL_TK_BYTES];
    veil_err rc = VEIL_OK;
    *vd = AGREES;
    if (k->ntags > 32) {
        return vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "too many aggregated columns");
    }
    e = calloc(cands.n ? cands.n : 1, sizeof(*e));
    keys = calloc(res->n + 1, TUPLE_MAX);
    colkeys = calloc((res->n + 1) * (k->ngroup + 1), VL_TK_BYTES);
    ncolkeys = calloc(k->ngroup + 1, sizeof(*ncolkeys));
    if (e == NULL || keys == NULL || colkeys == NULL || ncolkeys == NULL) {
        rc = VEIL_ERR_INTERNAL;
        goto out;
    }
    /* The groups: each as many rows as it counts, none twice; their key tuples. */
    for (size_t g = 0; g < res->n && *vd == AGREES; g++) {
        const struct vl_agg_group *grp = &res->groups[g];
        uint64_t rows = 0;
        for (size_t r = 0; r < grp->nruns; r++) {
            rows += grp->runs[r].last - grp->runs[r].first + 1;
        }
        if (rows != grp->count || !runs_push(&all, grp->runs, grp->nruns)) {
            *vd = LIES;
        }
        for (size_t j = 0; j < k->ngroup; j++) {
            if (grp->keys[j].n > 0) {
                uint8_t *tk = keys + g * TUPLE_MAX + j * VL_TK_BYTES;
                vl_coll_tk(c, k->gcols[j], &grp->keys[j], 0, tk);
                memcpy(colkeys + (j * (res->n + 1) + ncolkeys[j]++) * VL_TK_BYTES, tk, VL_TK_BYTES);
            }
        }
    }
    if (*vd == AGREES && !runs_merge(&all)) {
        *vd = LIES;
    }
    for (size_t j = 0; j < k->ngroup; j++) {
        qsort(colkeys + j * (res->n + 1) * VL_TK_BYTES, ncolkeys[j], VL_TK_BYTES, tk_cmp);
        vl_coll_any_tk(c, k->gcols[j], anyk[j]);
    }
    for (size_t t = 0; t < k->ntags; t++) {
        vl_coll_any_tk(c, k->tcols[t], tagk[t]);
    }
    /* Groups by key tuple, to find a document's. */
    uint8_t *sorted = calloc(res->n + 1, TUPLE_MAX + sizeof(size_t));
    if (sorted == NULL) {
        rc = VEIL_ERR_INTERNAL;
        goto out;
    }
    size_t rec = tl + sizeof(size_t);
    for (size_t g = 0; g < res->n; g++) {
        memcpy(sorted + g * rec, keys + g * TUPLE_MAX, tl);
        memcpy(sorted + g * rec + tl, &g, sizeof(g));
    }
    qsort_r(sorted, res->n, rec, tuple_cmp, &tl);
    /* Writes in flight, by document. */
    for (size_t i = 0; i < cands.n && *vd == AGREES; i++) {
        struct version ver = {&tks[i], seqs[i], seqs[i] != 0};
        for (size_t x = 0; x < nf; x++) {
            if (memcmp(f[x].doc, cands.docs[i], VL_DOCTOKEN_BYTES) != 0) {
                continue;
            }
            struct version nw = {&f[x].tks, f[x].seq, !f[x].del};
            struct version od = {&f[x].old_tks, f[x].old_seq, f[x].old_live};
            if (nw.live && runs_has(all.r, all.n, nw.seq)) {
                ver = nw;
            } else if (od.live && runs_has(all.r, all.n, od.seq)) {
                ver = od;
            } else if (nw.live && od.live && plan_match(vc, nvc, nw.tks) &&
                       plan_match(vc, nvc, od.tks)) {
                *vd = DIFFERS; /* aggregated either way, and shown in neither */
            } else {
                ver.live = false;
            }
            break;
        }
        if (*vd != AGREES || !ver.live || !plan_match(vc, nvc, ver.tks)) {
            continue;
        }
        uint8_t tuple[TUPLE_MAX];
        memset(tuple, 0, sizeof(tuple));
        for (size_t j = 0; j < k->ngroup && *vd == AGREES; j++) {
            bool found = false;
            const uint8_t *ck = colkeys + j * (res->n + 1) * VL_TK_BYTES;
            for (size_t t = 0; t + VL_TK_BYTES <= ver.tks->n && !found; t += VL_TK_BYTES) {
                const uint8_t *hit =
                    ncolkeys[j] > 0 ? bsearch(ver.tks->p + t, ck, ncolkeys[j], VL_TK_BYTES, tk_cmp)
                                    : NULL;
                if (hit != NULL) {
                    memcpy(tuple + j * VL_TK_BYTES, hit, VL_TK_BYTES);
                    found = true;
                }
            }
            if (!found && tks_have(ver.tks, anyk[j])) {
                *vd = DIFFERS; /* its key is in no group the store gave */
            }
        }
        const uint8_t *grec =
            *vd == AGREES && res->n > 0 ? tuple_find(tuple, sorted, res->n, rec, tl) : NULL;
        if (grec == NULL) {
            *vd = DIFFERS; /* its group is missing */
            continue;
        }
        memcpy(&e[ne].g, grec + tl, sizeof(size_t));
        e[ne].seq = ver.seq;
        e[ne].tags = 0;
        for (size_t t = 0; t < k->ntags; t++) {
            e[ne].tags |= tks_have(ver.tks, tagk[t]) ? 1u << t : 0;
        }
        ne++;
    }
    free(sorted);
    /* Each group's rows and tags are exactly those expected. */
    qsort(e, ne, sizeof(*e), expect_cmp);
    for (size_t g = 0, at = 0; g < res->n && *vd == AGREES; g++) {
        size_t end = at;
        while (end < ne && e[end].g == g) {
            end++;
        }
        const struct vl_agg_group *grp = &res->groups[g];
        if (end == at || !runs_are(e + at, end - at, 0, grp->runs, grp->nruns)) {
            *vd = DIFFERS;
        }
        for (size_t t = 0; t < k->ntags && *vd == AGREES; t++) {
            const struct vl_agg_value *tv = &grp->values[k->tag_base + t];
            if (!runs_are(e + at, end - at, 1u << t, tv->runs, tv->nruns)) {
                *vd = DIFFERS;
            }
        }
        at = end;
    }
out:
    if (rc != VEIL_OK) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
    }
    free(e);
    free(keys);
    free(colkeys);
    free(ncolkeys);
    free(all.r);
    return rc;
}

struct agg_args {
    veil_session *s;
    const struct vl_coll *c;
    struct vl_agg_check *k;
    const struct vcond *vc;
    size_t nvc;
};

/* The store's aggregate, on a thread of its own while exact_prep reads the candidates. */
struct fetch_job {
    struct vl_agg_check *k;
    veil_err rc;
    veil_status st;
};

static void *fetch_run(void *arg)
{
    struct fetch_job *j = arg;
    j->rc = j->k->fetch(j->k->ctx, j->k->res, &j->st);
    return NULL;
}

static veil_err agg_attempt(void *ctx, struct vl_tsnap *sn, enum verdict *vd, veil_status *st)
{
    struct agg_args *a = ctx;
    struct vl_agg_check *k = a->k;
    veil_err rc;
    vl_agg_result_free(k->res);
    if (a->nvc == 0 && k->hits == NULL) {
        if ((rc = k->fetch(k->ctx, k->res, st)) != VEIL_OK) {
            return rc;
        }
        rc = margins_at(a->s, a->c, sn, k, vd, st);
    } else {
        /* The store aggregates while the members and the candidates' token keys are read
         * (two cores at work): the reads are independent, and exact_check accepts either
         * version of a write in flight from each, as when they ran one after the other. */
        struct fetch_job j;
        struct exact_prep p;
        pthread_t th;
        memset(&j, 0, sizeof(j));
        j.k = k;
        bool threaded = pthread_create(&th, NULL, fetch_run, &j) == 0;
        if (!threaded) {
            fetch_run(&j);
        }
        rc = exact_prep(a->s, a->c, sn, k, a->vc, a->nvc, &p, vd, st);
        if (threaded) {
            pthread_join(th, NULL);
        }
        if (j.rc != VEIL_OK) {
            *st = j.st;
            rc = j.rc;
        } else if (rc == VEIL_OK && *vd == AGREES) {
            rc = exact_check(a->c, k, a->vc, a->nvc, &p, vd, st);
        }
        exact_prep_free(&p);
    }
    if (rc == VEIL_OK && *vd == LIES) {
        rc = vl_breach(a->s->v, a->s, a->c->name,
                       "a store's aggregate counted a row twice or gave a group runs it does "
                       "not count",
                       st);
    }
    return rc;
}

veil_err vl_agg_verified(veil_session *s, const struct vl_coll *c, struct vl_agg_check *k,
                         veil_status *st)
{
    struct vcond *vc = NULL;
    size_t nvc = k->plan != NULL ? k->plan->n : 0;
    veil_err rc = nvc > 0 ? vconds_of(s, c, k->plan, false, &vc, st) : VEIL_OK;
    if (rc == VEIL_OK) {
        struct agg_args a = {s, c, k, vc, nvc};
        rc = until_agreed(s, c, agg_attempt, &a,
                          "a store's aggregate left out, added or moved rows or cells, or "
                          "hid a group: it differs from the trusted token sets",
                          st);
    }
    vconds_free(vc, nvc);
    if (rc != VEIL_OK) {
        vl_agg_result_free(k->res);
    }
    return rc;
}

/* ---- unverified, for benchmarks ---- */

void vl_vault_verify(veil_vault *v, bool on)
{
    v->unverified = !on;
}

veil_err vl_plan_candidates_unverified(veil_session *s, const struct vl_coll *c,
                                       const struct vl_plan *p, const uint8_t *after, size_t limit,
                                       struct vl_docset *out, veil_status *st)
{
    struct vl_store *store = s->v->stores[0];
    struct vl_doclist list = {0};
    memset(out, 0, sizeof(*out));
    veil_err rc = store->ops->find(store, c->table, &p->pred, after, limit, &list);
    if (rc != VEIL_OK) {
        return vl_store_failed(s, c, 0, rc, st);
    }
    out->docs = list.docs;
    out->n = list.n;
    return VEIL_OK;
}
