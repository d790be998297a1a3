/*
 * aggregate.c: SUM, AVG and COUNT, grouped by equality fields, computed by the untrusted
 * store over data it cannot read (SPEC section 3, "Aggregate body").
 *
 * The store filters rows by tokens (as a query does), groups them by the equality tokens of
 * the group_by fields, and adds the ASHE cells of each summed field with its own SUM (or
 * multiplies Paillier cells). The proxy then decrypts each group's key (AES-SIV, so the
 * store cannot invent one), removes the ASHE key stream run by run, turns units into
 * decimals, and leaves out groups smaller than the role's min_group_size.
 *
 * What the store learns: the tokens asked for (as a query), which rows fall in which group
 * (the equality pattern of the group_by fields it already holds), and how many rows each
 * group has; nothing about the summed values. What it could do: return wrong sums or
 * counts. Aggregates are not checked against trusted state yet (unlike documents); the
 * answer says so under "explain".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "engine/engine.h"
#include "tactics/tactics.h"

#define MAX_METRICS 32

enum metric_kind { M_SUM, M_AVG, M_COUNT };

struct metric {
    const char *name;
    enum metric_kind kind;
    const struct vl_fctx *fc; /* NULL for count "*" */
    size_t col;               /* index into the request's columns */
};

struct agg {
    const struct vl_fctx *group[VL_AGG_MAX_GROUP];
    size_t ngroup;
    struct metric metrics[MAX_METRICS];
    size_t nmetrics;
    const struct vl_fctx *cols[MAX_METRICS];
    size_t ncols;
    bool explain;
};

static bool role_lists(char *const *list, size_t n, const char *path)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i], path) == 0 || strcmp(list[i], "*") == 0) {
            return true;
        }
    }
    return false;
}

static veil_err parse_group_by(const struct vl_coll *c, const struct vl_role *role,
                               const json_t *gb, struct agg *a, veil_status *st)
{
    if (gb == NULL || json_is_null(gb)) {
        return VEIL_OK;
    }
    if (!json_is_array(gb) || json_array_size(gb) > VL_AGG_MAX_GROUP) {
        return vl_status_set(st, VEIL_ERR_BAD_REQUEST, "group_by",
                             "group_by is a list of at most %d field paths", VL_AGG_MAX_GROUP);
    }
    size_t i;
    json_t *p;
    json_array_foreach(gb, i, p) {
        const char *path = json_string_value(p);
        const struct vl_fctx *fc = path != NULL ? vl_coll_field(c, path) : NULL;
        if (path == NULL) {
            return vl_status_set(st, VEIL_ERR_BAD_REQUEST, "group_by",
                                 "group_by is a list of field paths");
        }
        if (fc == NULL || !(fc->f->tactics & VL_TAC_EQ) || fc->store < 0) {
            return vl_status_set(st, VEIL_ERR_UNSUPPORTED_QUERY, path,
                                 "group_by needs tactic eq; %s has %s", path,
                                 fc != NULL ? vl_tactics_words(fc->f) : "aead only");
        }
        if (role != NULL && !role_lists(role->group_by, role->ngroup_by, path)) {
            return vl_status_set(st, VEIL_ERR_FORBIDDEN, path,
                                 "the role may not group by this field");
        }
        for (size_t k = 0; k < a->ngroup; k++) {
            if (a->group[k] == fc) {
                return vl_status_set(st, VEIL_ERR_BAD_REQUEST, path, "grouped twice");
            }
        }
        a->group[a->ngroup++] = fc;
    }
    return VEIL_OK;
}

static veil_err parse_metrics(const struct vl_coll *c, const struct vl_role *role,
                              const json_t *ms, struct agg *a, veil_status *st)
{
    if (!json_is_object(ms) || json_object_size(ms) == 0 ||
        json_object_size(ms) > MAX_METRICS) {
        return vl_status_set(st, VEIL_ERR_BAD_REQUEST, "metrics",
                             "metrics maps 1..%d names to {\"sum\"|\"avg\"|\"count\": field}",
                             MAX_METRICS);
    }
    const char *name;
    json_t *spec;
    json_object_foreach((json_t *)ms, name, spec) {
        struct metric *m = &a->metrics[a->nmetrics++];
        m->name = name;
        if (strcmp(name, "key") == 0 || !json_is_object(spec) || json_object_size(spec) != 1) {
            return vl_status_set(st, VEIL_ERR_BAD_REQUEST, name,
                                 "a metric is {\"sum\"|\"avg\"|\"count\": field}, and not "
                                 "named key");
        }
        const char *op = json_object_iter_key(json_object_iter(spec));
        const char *path = json_string_value(json_object_iter_value(json_object_iter(spec)));
        if (strcmp(op, "sum") == 0) {
            m->kind = M_SUM;
        } else if (strcmp(op, "avg") == 0) {
            m->kind = M_AVG;
        } else if (strcmp(op, "count") == 0) {
            m->kind = M_COUNT;
        } else {
            return vl_status_set(st, VEIL_ERR_BAD_REQUEST, name,
                                 "unknown metric (known: sum, avg, count)");
        }
        if (path == NULL) {
            return vl_status_set(st, VEIL_ERR_BAD_REQUEST, name, "a metric names a field");
        }
        if (m->kind == M_COUNT && strcmp(path, "*") == 0) {
            continue;
        }
        const struct vl_fctx *fc = vl_coll_field(c, path);
        if (fc == NULL || !(fc->f->tactics & VL_TAC_SUM)) {
            return vl_status_set(st, VEIL_ERR_UNSUPPORTED_QUERY, path,
                                 "%s needs tactic sum; %s has %s", op, path,
                                 fc != NULL ? vl_tactics_words(fc->f) : "aead only");
        }
        if (role != NULL && !role_lists(role->aggregate, role->naggregate, path)) {
            return vl_status_set(st, VEIL_ERR_FORBIDDEN, path,
                                 "the role may not aggregate this field");
        }
        m->fc = fc;
        size_t k = 0;
        while (k < a->ncols && a->cols[k] != fc) {
            k++;
        }
        if (k == a->ncols) {
            a->cols[a->ncols++] = fc;
        }
        m->col = k;
    }
    return VEIL_OK;
}

/* The decrypted key of one group column, or null when the rows have no value there. */
static json_t *group_key(const struct vl_fctx *fc, const struct vl_bytes *tok)
{
    if (tok->n == 0) {
        return json_null();
    }
    if (tok->n < VL_SIV_TAGBYTES) {
        return NULL;
    }
    size_t plen = tok->n - VL_SIV_TAGBYTES, len = 0;
    uint8_t *pad = malloc(plen ? plen : 1);
    json_t *v = NULL;
    const uint8_t *ad[1] = {fc->col};
    const size_t adlen[1] = {VL_COL_BYTES};
    if (pad != NULL &&
        vl_siv_decrypt(pad, fc->eq_key, VL_SIV_KEYBYTES, ad, adlen, 1, tok->p, tok->n) == 0 &&
        vl_unpad(pad, plen, &len) == 0) {
        v = vl_value_from_canonical(fc->f, pad, len);
    }
    free(pad);
    return v;
}

/* The sum a value holds, as the field's JSON: an integer, or a decimal string. */
static json_t *sum_json(const struct vl_field *f, vl_i128 sum, veil_status *st, bool *overflow)
{
    if (f->type == VL_T_INTEGER) {
        if (sum > INT64_MAX || sum < INT64_MIN) {
            *overflow = true;
            vl_status_set(st, VEIL_ERR_BAD_REQUEST, f->path,
                          "the sum of %s does not fit a 64-bit integer", f->path);
            return NULL;
        }
        return json_integer((json_int_t)sum);
    }
    char text[48];
    vl_i128_to_decimal(sum, f->scale, text);
    return json_string(text);
}

static double units_to_double(const struct vl_field *f, vl_i128 v)
{
    double d = (double)v;
    for (int i = 0; f->type == VL_T_DECIMAL && i < f->scale; i++) {
        d /= 10;
    }
    return d;
}

static json_t *explain_json(const struct vl_coll *c, const struct agg *a,
                            const struct vl_plan *plan, const struct vl_agg_result *res,
                            const struct vl_match *match, const struct vl_hits *hits)
{
    char hex[2 * VL_COL_BYTES + 1];
    json_t *terms = json_array(), *groups = json_array(), *cols = json_array();
    for (size_t i = 0; i < plan->n; i++) {
        vl_hex(hex, plan->conds[i].term.col, VL_COL_BYTES);
        json_array_append_new(terms, json_pack("{s:s, s:s, s:s, s:I}", "field",
                                               plan->conds[i].fc->path, "column", hex, "kind",
                                               plan->conds[i].range ? "range prefix tokens"
                                                                    : "equality tokens",
                                               "tokens", (json_int_t)plan->conds[i].ntoks));
    }
    for (size_t i = 0; i < a->ngroup; i++) {
        vl_hex(hex, a->group[i]->col, VL_COL_BYTES);
        json_array_append_new(groups, json_pack("{s:s, s:s}", "field", a->group[i]->path,
                                                "column", hex));
    }
    size_t runs = 0;
    for (size_t g = 0; g < res->n; g++) {
        for (size_t k = 0; k < res->ncols; k++) {
            runs += res->groups[g].values[k].nruns;
        }
    }
    for (size_t i = 0; i < a->ncols; i++) {
        bool p = a->cols[i]->f->sum_scheme == VL_SUM_PAILLIER;
        vl_hex(hex, a->cols[i]->scol, VL_COL_BYTES);
        json_array_append_new(
            cols, json_pack("{s:s, s:s, s:s}", "field", a->cols[i]->path, "column", hex,
                            "store computes",
                            p ? "the product of Paillier ciphertexts modulo n^2"
                              : "SUM of the four 32-bit limbs of ASHE ciphertexts, and the "
                                "runs of row sequence numbers"));
    }
    json_t *proxy = json_array();
    char line[256];
    snprintf(line, sizeof(line), "decrypted %zu group keys (AES-SIV)", res->n * a->ngroup);
    json_array_append_new(proxy, json_string(line));
    snprintf(line, sizeof(line),
             "removed the ASHE key stream over %zu runs of rows (2 values of F per run)", runs);
    json_array_append_new(proxy, json_string(line));
    json_array_append_new(proxy, json_string("turned units into decimals, divided sums by "
                                             "counts for averages, suppressed small groups"));
    json_t *x = json_pack("{s:{s:s, s:o, s:o, s:o}, s:o, s:s}", "store", "table", c->table,
                          "where", terms, "group_by", groups, "aggregated", cols, "proxy",
                          proxy, "integrity",
                          "sums and counts come from the store and are not yet checked "
                          "against trusted state");
    if (match->n > 0) {
        json_object_set_new(
            x, "match",
            json_pack("{s:I, s:I, s:s}", "words", (json_int_t)match->nwords, "documents",
                      (json_int_t)hits->n, "how",
                      "the proxy read and checked every index entry of the words, kept the "
                      "live documents, and sent their tokens to the store, which aggregates "
                      "only those rows"));
    }
    return x;
}

/* A group's answer and the text of its key, to sort groups by key. */
struct answer {
    char *key;
    json_t *obj;
};

static int cmp_answers(const void *x, const void *y)
{
    return strcmp(((const struct answer *)x)->key, ((const struct answer *)y)->key);
}

veil_err veil_aggregate(veil_session *s, const char *coll, const char *body, size_t len,
                        char **json_out, veil_status *st)
{
    veil_vault *v = s->v;
    const struct vl_coll *c = NULL;
    const struct vl_role *role = NULL;
    struct agg a;
    struct vl_plan plan;
    struct vl_agg_result res;
    struct vl_agg_col cols[MAX_METRICS];
    uint8_t group_cols[VL_AGG_MAX_GROUP][VL_COL_BYTES];
    json_t *q = NULL;
    struct answer *ans = NULL;
    size_t nans = 0, suppressed = 0;
    struct vl_ashe_table tables[MAX_METRICS];
    const struct vl_agg_group *res_view = NULL;
    size_t nview = 0;
    memset(&a, 0, sizeof(a));
    memset(&plan, 0, sizeof(plan));
    memset(&res, 0, sizeof(res));
    struct vl_match match;
    struct vl_match_snap snap;
    struct vl_hits hits = {0};
    struct vl_bytes *hit_toks = NULL;
    memset(&match, 0, sizeof(match));
    memset(&snap, 0, sizeof(snap));
    memset(tables, 0, sizeof(tables));
    vl_status_clear(st);

    veil_err rc = vl_coll_get(s, coll, &c, st);
    if (rc != VEIL_OK) {
        return rc;
    }
    if (!s->admin) {
        role = vl_policy_role(c->policy, s->role);
        if (role == NULL || (role->naggregate == 0 && role->ngroup_by == 0)) {
            return vl_status_set(st, VEIL_ERR_FORBIDDEN, NULL,
                                 "role %s may not aggregate this collection", s->role);
        }
    }
    json_error_t err;
    q = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);
    if (!json_is_object(q)) {
        rc = vl_status_set(st, VEIL_ERR_BAD_REQUEST, NULL,
                           "the body is not a JSON object (line %d, column %d)", err.line,
                           err.column);
        goto out;
    }
    const char *key;
    json_t *val;
    json_object_foreach(q, key, val) {
        if (strcmp(key, "where") && strcmp(key, "match") && strcmp(key, "group_by") &&
            strcmp(key, "metrics") && strcmp(key, "explain")) {
            rc = vl_status_set(st, VEIL_ERR_BAD_REQUEST, key,
                               "unknown key (known: where, match, group_by, metrics, "
                               "explain)");
            goto out;
        }
    }
    json_t *jx = json_object_get(q, "explain");
    if (jx != NULL && !json_is_boolean(jx)) {
        rc = vl_status_set(st, VEIL_ERR_BAD_REQUEST, "explain", "explain is true or false");
        goto out;
    }
    a.explain = json_is_true(jx);
    if ((rc = parse_group_by(c, role, json_object_get(q, "group_by"), &a, st)) != VEIL_OK ||
        (rc = parse_metrics(c, role, json_object_get(q, "metrics"), &a, st)) != VEIL_OK ||
        (rc = vl_plan_where(c, role, true, json_object_get(q, "where"), &plan, st)) !=
            VEIL_OK) {
        goto out;
    }
    /* A match narrows the rows to the documents it finds: the store aggregates those. */
    if (json_object_get(q, "match") != NULL) {
        if ((rc = vl_match_plan(c, role, true, json_object_get(q, "match"), &match, st)) !=
                VEIL_OK ||
            (rc = vl_match_run(s, c, &match, &snap, &hits, st)) != VEIL_OK) {
            goto out;
        }
        if ((hit_toks = calloc(hits.n + 1, sizeof(*hit_toks))) == NULL) {
            rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < hits.n; i++) {
            hit_toks[i].p = hits.h[i].doc;
            hit_toks[i].n = VL_DOCTOKEN_BYTES;
        }
        plan.pred.only_docs = true;
        plan.pred.docs = hit_toks;
        plan.pred.ndocs = hits.n;
    }
    for (size_t i = 0; i < a.ngroup; i++) {
        memcpy(group_cols[i], a.group[i]->col, VL_COL_BYTES);
    }
    for (size_t i = 0; i < a.ncols; i++) {
        memcpy(cols[i].col, a.cols[i]->scol, VL_COL_BYTES);
        cols[i].paillier = a.cols[i]->f->sum_scheme == VL_SUM_PAILLIER;
        if (cols[i].paillier) {
            cols[i].modulus = vl_paillier_modulus(a.cols[i]);
        } else {
            cols[i].modulus.p = NULL;
            cols[i].modulus.n = 0;
        }
    }
    struct vl_agg_request req = {&plan.pred, (const uint8_t(*)[VL_COL_BYTES])group_cols,
                                 a.ngroup, cols, a.ncols};
    struct vl_store *store = v->stores[0];
    if (store->ops->aggregate == NULL) {
        rc = vl_status_set(st, VEIL_ERR_UNSUPPORTED_QUERY, NULL,
                           "store %s cannot aggregate", v->cfg.store_names[0]);
        goto out;
    }
    if (!plan.empty) {
        rc = store->ops->aggregate(store, c->table, &req, &res);
        if (rc != VEIL_OK) {
            rc = vl_status_set(st, VEIL_ERR_STORE_UNAVAILABLE, NULL, "store %s is unavailable",
                               v->cfg.store_names[0]);
            goto out;
        }
    }
    /* When the runs are many (rows of a group scattered among others), compute F over the
     * spans of row numbers they fall in (one per block of numbers) in one pass of the
     * cipher each, instead of per run. */
    for (size_t k = 0; k < a.ncols; k++) {
        size_t runs = 0;
        for (size_t g = 0; g < res.n; g++) {
            runs += res.groups[g].values[k].nruns;
        }
        struct vl_seq_run *all = a.cols[k]->sum_key != NULL && runs > 64
                                     ? malloc(runs * sizeof(*all))
                                     : NULL;
        for (size_t g = 0, at = 0; all != NULL && g < res.n; g++) {
            const struct vl_agg_value *av = &res.groups[g].values[k];
            if (av->nruns > 0) {
                memcpy(all + at, av->runs, av->nruns * sizeof(*all));
                at += av->nruns;
            }
        }
        if (all != NULL &&
            vl_ashe_table_fill_runs(&tables[k], a.cols[k]->sum_key, all, runs) != 0) {
            memset(&tables[k], 0, sizeof(tables[k])); /* out of memory: per run, then */
        }
        free(all);
    }
    res_view = res.groups;
    nview = res.n;
    /* Without group_by there is always one group, key {}, even when no row matches. */
    struct vl_agg_value empty_values[MAX_METRICS];
    struct vl_agg_group empty_group;
    if (a.ngroup == 0 && res.n == 0) {
        memset(empty_values, 0, sizeof(empty_values));
        memset(&empty_group, 0, sizeof(empty_group));
        empty_group.values = empty_values;
        res_view = &empty_group;
        nview = 1;
    }
    unsigned min_group = role != NULL ? role->min_group_size : 0;
    if ((ans = calloc(nview + 1, sizeof(*ans))) == NULL) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    for (size_t g = 0; g < nview; g++) {
        const struct vl_agg_group *grp = &res_view[g];
        if (grp->count < min_group) {
            suppressed++;
            continue;
        }
        json_t *o = json_object(), *k = json_object();
        json_object_set_new(o, "key", k);
        for (size_t i = 0; i < a.ngroup; i++) {
            json_t *kv = group_key(a.group[i], &grp->keys[i]);
            if (kv == NULL) {
                json_decref(o);
                rc = vl_breach(v, s, c->name, "a group key failed to authenticate", st);
                goto out;
            }
            json_object_set_new(k, a.group[i]->path, kv);
        }
        for (size_t m = 0; m < a.nmetrics; m++) {
            const struct metric *mt = &a.metrics[m];
            json_t *mv = NULL;
            if (mt->kind == M_COUNT) {
                uint64_t n = mt->fc == NULL ? grp->count : grp->values[mt->col].count;
                mv = json_integer((json_int_t)n);
            } else {
                const struct vl_agg_value *av = &grp->values[mt->col];
                vl_i128 sum = 0;
                if (mt->fc->f->sum_scheme == VL_SUM_PAILLIER) {
                    if (av->count > 0 &&
                        vl_paillier_sum(mt->fc, &av->product, &sum) != VEIL_OK) {
                        json_decref(o);
                        rc = vl_breach(v, s, c->name, "a Paillier product failed to decrypt",
                                       st);
                        goto out;
                    }
                } else {
                    sum = vl_ashe_decrypt(mt->fc->sum_key, vl_ashe_join(av->limbs), av->runs,
                                          av->nruns, &tables[mt->col]);
                }
                if (mt->kind == M_SUM) {
                    bool overflow = false;
                    mv = sum_json(mt->fc->f, sum, st, &overflow);
                    if (overflow) {
                        json_decref(o);
                        rc = VEIL_ERR_BAD_REQUEST;
                        goto out;
                    }
                } else {
                    mv = av->count == 0 ? json_null()
                                        : json_real(units_to_double(mt->fc->f, sum) /
                                                    (double)av->count);
                }
            }
            json_object_set_new(o, mt->name, mv);
        }
        ans[nans].obj = o;
        ans[nans].key = json_dumps(k, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
        if (ans[nans++].key == NULL) {
            rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
            goto out;
        }
    }
    qsort(ans, nans, sizeof(*ans), cmp_answers);
    json_t *sorted = json_array();
    for (size_t i = 0; i < nans; i++) {
        json_array_append(sorted, ans[i].obj);
    }
    json_t *answer = json_pack("{s:o, s:I}", "groups", sorted, "suppressed",
                               (json_int_t)suppressed);
    if (a.explain) {
        json_object_set_new(answer, "explain", explain_json(c, &a, &plan, &res, &match, &hits));
    }
    *json_out = vl_json_text(answer);
    json_decref(answer);
    if (*json_out == NULL) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
    }
out:
    for (size_t i = 0; i < nans; i++) {
        free(ans[i].key);
        json_decref(ans[i].obj);
    }
    free(ans);
    for (size_t k = 0; k < MAX_METRICS; k++) {
        vl_ashe_table_free(&tables[k]);
    }
    vl_agg_result_free(&res);
    vl_plan_free(&plan);
    vl_match_free(&match);
    free(hits.h);
    free(hit_toks);
    json_decref(q);
    return rc;
}
