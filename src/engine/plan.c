/*
 * plan.c: a `where` clause turned into what a store can evaluate (an AND of OR-sets of
 * tokens) and what the proxy checks afterwards on decrypted documents.
 *
 *   {"f": v}, {"f": {"eq": v}}, {"f": {"in": [..]}}   tactic eq: the values' SIV tokens
 *   {"f": {"gt"|"gte"|"lt"|"lte": v, ...}}           tactic range: the tokens of the
 *                                                     interval's hexadecimal prefix cover
 *
 * What the store learns from a planned query: the tokens asked for, so whether two queries
 * ask for the same values or the same interval prefixes, and which rows matched.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "tactics/tactics.h"

#define MAX_IN_VALUES 1000
#define DATE_OFFSET ((int64_t)1 << 23)     /* days 0001-01-01..9999-12-31 fit 24 bits */
#define DATETIME_OFFSET ((int64_t)1 << 59) /* microseconds of those years fit 60 bits */

/* The fewest bits, a multiple of 4, that hold 0..span. */
static unsigned range_width(uint64_t span)
{
    unsigned w = 4;
    while (w < 64 && (span >> w) != 0) {
        w += 4;
    }
    return w;
}

veil_err vl_range_value(const struct vl_field *f, const json_t *v, uint64_t *out,
                        unsigned *width, int *side)
{
    uint64_t u;
    veil_err rc = vl_value_to_u64(f, v, &u);
    if (rc != VEIL_OK) {
        return rc;
    }
    int64_t x = (int64_t)(u ^ ((uint64_t)1 << 63));
    if (side != NULL) {
        *side = 0;
    }
    switch (f->type) {
    case VL_T_DATE:
        *out = (uint64_t)(x + DATE_OFFSET);
        *width = 24;
        break;
    case VL_T_DATETIME:
        *out = (uint64_t)(x + DATETIME_OFFSET);
        *width = 60;
        break;
    default:
        if (f->bounded && !f->clamp) {
            /* Bounds that refuse every other value: the domain is lo..hi, moved to start at
             * 0 and only as wide as it needs, so a value has fewer prefixes (amounts of
             * +-50,000.00 take 24 bits: 6 prefixes instead of 16). */
            int s = x < f->lo ? -1 : x > f->hi ? 1 : 0;
            if (s != 0 && side == NULL) {
                return VEIL_ERR_INVALID_DOCUMENT;
            }
            if (side != NULL) {
                *side = s;
            }
            int64_t c = s < 0 ? f->lo : s > 0 ? f->hi : x;
            *out = (uint64_t)c - (uint64_t)f->lo;
            *width = range_width((uint64_t)f->hi - (uint64_t)f->lo);
            break;
        }
        *out = u;
        *width = 64;
        break;
    }
    return VEIL_OK;
}

static const char *tactics_words(const struct vl_field *f)
{
    static const char *const words[] = {
        "aead",          "aead, eq",          "aead, range",          "aead, eq, range",
        "aead, search",  "aead, eq, search",  "aead, range, search",  "aead, eq, range, search",
        "aead, sum",     "aead, eq, sum",     "aead, range, sum",     "aead, eq, range, sum",
        "aead, search, sum", "aead, eq, search, sum", "aead, range, search, sum",
        "aead, eq, range, search, sum",
    };
    if (f->plain) {
        return "plain";
    }
    return words[f->tactics & 15u];
}

const char *vl_tactics_words(const struct vl_field *f)
{
    return tactics_words(f);
}

static veil_err plan_eq(const struct vl_fctx *fc, const json_t *values, struct vl_cond *cd,
                        veil_status *st)
{
    const char *path = fc->path;
    if (!(fc->f->tactics & VL_TAC_EQ)) {
        return vl_status_set(st, VEIL_ERR_UNSUPPORTED_QUERY, path,
                             "%s has tactics %s; equality needs tactic eq", path,
                             tactics_words(fc->f));
    }
    size_t n = json_array_size(values);
    cd->toks = calloc(n, sizeof(*cd->toks));
    cd->canon = calloc(n, sizeof(*cd->canon));
    if (cd->toks == NULL || cd->canon == NULL) {
        return vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
    }
    veil_err rc = VEIL_OK;
    for (size_t i = 0; i < n && rc == VEIL_OK; i++) {
        const json_t *val = json_array_get(values, i);
        struct vl_buf tok;
        vl_buf_init(&tok, 1 << 20);
        vl_buf_init(&cd->canon[i], 1 << 20);
        cd->ntoks = cd->ncanon = i + 1;
        if (json_is_null(val)) {
            rc = vl_status_set(st, VEIL_ERR_BAD_REQUEST, path, "null cannot be matched");
        } else if ((rc = vl_value_check(fc->f, val, st)) == VEIL_OK &&
                   (rc = vl_value_canonical(fc->f, val, &cd->canon[i])) == VEIL_OK &&
                   (rc = vl_eq_token(fc, val, &tok)) == VEIL_OK) {
            cd->toks[i].p = vl_buf_steal(&tok, &cd->toks[i].n);
        }
        vl_buf_free(&tok);
    }
    memcpy(cd->term.col, fc->col, VL_COL_BYTES);
    return rc;
}

static veil_err plan_range(const struct vl_fctx *fc, const json_t *spec, struct vl_cond *cd,
                           veil_status *st)
{
    const char *path = fc->path;
    if (!(fc->f->tactics & VL_TAC_RANGE)) {
        return vl_status_set(st, VEIL_ERR_UNSUPPORTED_QUERY, path,
                             "%s has tactics %s; gt, gte, lt and lte need tactic range", path,
                             tactics_words(fc->f));
    }
    unsigned width = 64;
    uint64_t lo = 0, hi = UINT64_MAX, max = UINT64_MAX;
    bool have_width = false;
    const char *op;
    json_t *arg;
    json_object_foreach((json_t *)spec, op, arg) {
        uint64_t v;
        unsigned w;
        int side;
        if (json_is_null(arg)) {
            return vl_status_set(st, VEIL_ERR_BAD_REQUEST, path, "a bound cannot be null");
        }
        veil_err rc = vl_value_check(fc->f, arg, st);
        if (rc == VEIL_OK) {
            rc = vl_range_value(fc->f, arg, &v, &w, &side);
        }
        if (rc != VEIL_OK) {
            return rc;
        }
        if (!have_width) {
            hi = max = w == 64 ? UINT64_MAX : ((uint64_t)1 << w) - 1;
            width = w;
            have_width = true;
        }
        /* a bound beyond the field's bounds: every stored value is on one side of it */
        bool lower = op[0] == 'g';
        if (side != 0) {
            if ((side > 0) == lower) {
                cd->empty = true; /* above the bounds from below, or below them from above */
            }
            continue; /* otherwise it holds for every stored value */
        }
        if (strcmp(op, "gte") == 0) {
            lo = v > lo ? v : lo;
        } else if (strcmp(op, "gt") == 0) {
            if (v >= max) {
                cd->empty = true;
            } else if (v + 1 > lo) {
                lo = v + 1;
            }
        } else if (strcmp(op, "lte") == 0) {
            hi = v < hi ? v : hi;
        } else { /* lt */
            if (v == 0) {
                cd->empty = true;
            } else if (v - 1 < hi) {
                hi = v - 1;
            }
        }
    }
    cd->range = true;
    cd->lo = lo;
    cd->hi = hi;
    memcpy(cd->term.col, fc->rcol, VL_COL_BYTES);
    if (lo > hi) {
        cd->empty = true;
    }
    if (cd->empty) {
        return VEIL_OK;
    }
    struct vl_range_prefix cover[VL_RANGE_MAX_COVER];
    size_t n = vl_range_cover(lo, hi, width, cover);
    cd->toks = calloc(n, sizeof(*cd->toks));
    cd->levels = calloc(n, 1);
    if (cd->toks == NULL || cd->levels == NULL) {
        return vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        cd->toks[i].p = malloc(VL_RANGE_TOKEN_BYTES);
        if (cd->toks[i].p == NULL) {
            return vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
        }
        cd->toks[i].n = VL_RANGE_TOKEN_BYTES;
        cd->ntoks = i + 1;
        cd->levels[i] = (uint8_t)cover[i].digits;
        vl_range_token(cd->toks[i].p, fc->range_key, &cover[i]);
    }
    return VEIL_OK;
}

static bool is_range_op(const char *op)
{
    return !strcmp(op, "gt") || !strcmp(op, "gte") || !strcmp(op, "lt") || !strcmp(op, "lte");
}

static bool listed(char *const *list, size_t n, const char *path)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i], path) == 0) {
            return true;
        }
    }
    return false;
}

/* May the role filter on path? A query needs the field readable; an aggregate also takes
 * the fields its role may group by or aggregate (what it may use, and no more). */
bool vl_plan_may_filter(const struct vl_role *role, bool aggregate, const char *path)
{
    return role == NULL || vl_role_reads(role, path) ||
           (aggregate && (listed(role->group_by, role->ngroup_by, path) ||
                          listed(role->aggregate, role->naggregate, path)));
}

static veil_err plan_cond(const struct vl_coll *c, const struct vl_role *role, bool aggregate,
                          const char *path, const json_t *spec, struct vl_cond *cd,
                          veil_status *st)
{
    const struct vl_fctx *fc = vl_coll_field(c, path);
    if (fc == NULL) {
        return vl_status_set(st, VEIL_ERR_UNSUPPORTED_QUERY, path,
                             "%s is not a field of the policy; it is stored under aead only "
                             "and cannot be filtered",
                             path);
    }
    cd->fc = fc;
    if (!vl_plan_may_filter(role, aggregate, path)) {
        return vl_status_set(st, VEIL_ERR_FORBIDDEN, path,
                             aggregate ? "the role may not filter on a field it may neither "
                                         "read, group by nor aggregate"
                                       : "the role may not filter on a field it cannot read");
    }
    if (fc->store < 0) {
        return vl_status_set(st, VEIL_ERR_UNSUPPORTED_QUERY, path,
                             "%s is kept in trusted state and cannot be filtered", path);
    }
    json_t *values = NULL;
    veil_err rc = VEIL_OK;
    if (json_is_object(spec)) {
        size_t nrange = 0, neq = 0;
        const char *op;
        json_t *arg;
        json_object_foreach((json_t *)spec, op, arg) {
            if (is_range_op(op)) {
                nrange++;
            } else if (strcmp(op, "eq") == 0 || strcmp(op, "in") == 0) {
                neq++;
            } else {
                return vl_status_set(st, VEIL_ERR_BAD_REQUEST, path,
                                     "unknown operator (known: eq, in, gt, gte, lt, lte)");
            }
        }
        if (nrange + neq == 0 || neq > 1 || (neq && nrange)) {
            return vl_status_set(st, VEIL_ERR_BAD_REQUEST, path,
                                 "a condition is one of eq or in, or bounds gt/gte/lt/lte");
        }
        if (nrange > 0) {
            return plan_range(fc, spec, cd, st);
        }
        json_t *in = json_object_get(spec, "in");
        if (in != NULL) {
            if (!json_is_array(in) || json_array_size(in) == 0 ||
                json_array_size(in) > MAX_IN_VALUES) {
                return vl_status_set(st, VEIL_ERR_BAD_REQUEST, path,
                                     "in takes a list of 1..%d values", MAX_IN_VALUES);
            }
            values = json_incref(in);
        } else {
            values = json_pack("[O]", json_object_get(spec, "eq"));
        }
    } else if (json_is_array(spec)) {
        return vl_status_set(st, VEIL_ERR_BAD_REQUEST, path,
                             "a list of values needs {\"in\": [...]}");
    } else {
        values = json_pack("[O]", spec);
    }
    if (values == NULL) {
        return vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
    }
    rc = plan_eq(fc, values, cd, st);
    json_decref(values);
    return rc;
}

void vl_plan_free(struct vl_plan *p)
{
    for (size_t i = 0; i < p->n; i++) {
        struct vl_cond *cd = &p->conds[i];
        for (size_t k = 0; k < cd->ntoks; k++) {
            free(cd->toks[k].p);
        }
        for (size_t k = 0; k < cd->ncanon; k++) {
            vl_buf_free(&cd->canon[k]);
        }
        free(cd->toks);
        free(cd->levels);
        free(cd->canon);
    }
    free(p->conds);
    free(p->terms);
    memset(p, 0, sizeof(*p));
}

veil_err vl_plan_where(const struct vl_coll *c, const struct vl_role *role, bool aggregate,
                       const json_t *where, struct vl_plan *out, veil_status *st)
{
    struct vl_plan p;
    memset(&p, 0, sizeof(p));
    if (where != NULL && !json_is_null(where) && !json_is_object(where)) {
        return vl_status_set(st, VEIL_ERR_BAD_REQUEST, "where", "where is an object");
    }
    size_t n = json_object_size(where);
    p.conds = calloc(n + 1, sizeof(*p.conds));
    p.terms = calloc(n + 1, sizeof(*p.terms));
    if (p.conds == NULL || p.terms == NULL) {
        vl_plan_free(&p);
        return vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
    }
    veil_err rc = VEIL_OK;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)where, key, val) {
        struct vl_cond *cd = &p.conds[p.n++];
        if ((rc = plan_cond(c, role, aggregate, key, val, cd, st)) != VEIL_OK) {
            vl_plan_free(&p);
            return rc;
        }
        p.empty |= cd->empty;
        cd->term.toks = cd->toks;
        cd->term.ntoks = cd->ntoks;
        p.terms[p.n - 1] = cd->term;
    }
    p.pred.terms = p.terms;
    p.pred.nterms = p.n;
    *out = p;
    return VEIL_OK;
}

bool vl_plan_satisfied(const struct vl_plan *p, const json_t *doc)
{
    for (size_t i = 0; i < p->n; i++) {
        const struct vl_cond *cd = &p->conds[i];
        const json_t *v = vl_json_path_get(doc, cd->fc->f);
        if (v == NULL || json_is_null(v)) {
            return false;
        }
        bool hit = false;
        if (cd->range) {
            uint64_t u;
            unsigned w;
            int side;
            hit = vl_range_value(cd->fc->f, v, &u, &w, &side) == VEIL_OK && side == 0 &&
                  u >= cd->lo && u <= cd->hi;
        } else {
            struct vl_buf canon;
            vl_buf_init(&canon, 1 << 20);
            if (vl_value_canonical(cd->fc->f, v, &canon) == VEIL_OK) {
                for (size_t k = 0; k < cd->ncanon && !hit; k++) {
                    hit = cd->canon[k].len == canon.len &&
                          memcmp(cd->canon[k].data, canon.data, canon.len) == 0;
                }
            }
            vl_buf_free(&canon);
        }
        if (!hit) {
            return false;
        }
    }
    return true;
}
