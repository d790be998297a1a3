/*
 * aggregate.c: SUM, AVG and COUNT, grouped by equality fields, computed by the untrusted
 * store over data it cannot read (the HTTP API's aggregate body).
 *
 * The store filters rows by tokens (as a query does), groups them by the equality tokens of
 * the group_by fields, and adds the ASHE cells of each summed field with its own SUM (or
 * multiplies Paillier cells). The proxy then decrypts each group's key (AES-SIV, so the
 * store cannot invent one), removes the ASHE key stream run by run, turns units into
 * decimals, and leaves out groups smaller than the role's min_group_size.
 *
 * What the store learns: the tokens asked for (as a query), which rows fall in which group
 * (the equality pattern of the group_by fields it already holds), and how many rows each
 * group has; nothing about the summed values. Each cell has a MAC tag the store sums beside
 * it (tactics.h), so a sum the store altered is caught (sums_verified). What it could
 * still do: drop, add or move whole rows, changing counts and totals; which rows a group
 * holds is not checked against trusted state yet, and the answer says so under
 * "explain". What no honest store can answer is refused as an
 * integrity violation (agg_honest): a group with no rows, more cells than rows, groups
 * repeated, more rows than the documents it was given, runs of row sequence numbers that
 * are not ascending, maximal and exactly as many as the cells, limb sums beyond what that
 * many cells can add up to, and sums or averages outside what that many 64-bit values can
 * make.
 *
 * An average is the exact sum divided by the count, rounded half to even to the field's
 * scale plus AVG_EXTRA_PLACES decimal places (an integer field: AVG_EXTRA_PLACES), and
 * written as a JSON number with exactly those digits, trailing zeros dropped (one kept
 * after the point): no binary floating point on the way, so the answer is the same on
 * every machine.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "crypto/noise.h"
#include "engine/engine.h"
#include "tactics/tactics.h"

#define MAX_METRICS 32
#define AVG_EXTRA_PLACES 2 /* decimals of an average beyond the field's scale */
#define AVG_EXTRA_POW 100  /* 10^AVG_EXTRA_PLACES */
#define LIMB_MAX 0xffffffffu

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

/* Differential privacy of one answer (a role with r->dp). Each noisy quantity (a
 * "component") gets epsilon / k of the answer's epsilon, k the number of components: the
 * group count C always; per summed column, S (its sum) when only sum is asked, or A2 (twice
 * its sum minus (lo + hi) times its count, centred so that one document moves it by at most
 * hi - lo) and Cf (its count of values) when avg is asked (sum then comes from A2 and Cf);
 * Cf alone for count(field). Noise of scale sensitivity * k / epsilon on each makes the
 * whole answer epsilon-differentially private for adding or removing one document, which
 * falls in one group. A group is shown only when its noisy count reaches the threshold,
 * chosen so that a group of one document appears with probability at most delta. */
struct dpq {
    bool on;
    unsigned k;
    bool need_s[MAX_METRICS], need_a[MAX_METRICS], need_c[MAX_METRICS];
    vl_u128 c_num, c_den;               /* scale of C and Cf: k * 10^6 / eps */
    vl_u128 s_num[MAX_METRICS];         /* scale of S: max(|lo|,|hi|) * k * 10^6 / eps */
    vl_u128 a_num[MAX_METRICS];         /* scale of A2: (hi - lo) * k * 10^6 / eps */
    double b_c;                         /* the same scales as numbers, for statements */
    double b_s[MAX_METRICS], b_a[MAX_METRICS];
    uint64_t threshold;                 /* 0 without group_by: the one group always shows */
    struct vl_rng *rng;
};

/* Noise never moves a value past +-2^100 units: out there it is only arithmetic risk. */
#define DP_CAP ((vl_i128)1 << 100)

static vl_i128 dp_cap(vl_i128 x)
{
    return x > DP_CAP ? DP_CAP : x < -DP_CAP ? -DP_CAP : x;
}

static vl_u128 u128_abs64(int64_t x)
{
    return x < 0 ? (vl_u128)0 - (vl_u128)(vl_i128)x : (vl_u128)x;
}

static double pow10d(int n)
{
    double p = 1;
    while (n-- > 0) {
        p *= 10;
    }
    return p;
}

static int field_scale(const struct vl_field *f)
{
    return f->type == VL_T_DECIMAL ? f->scale : 0;
}

static void dp_plan(const struct agg *a, const struct vl_role *role, uint64_t eps_micro,
                    struct dpq *d)
{
    memset(d, 0, sizeof(*d));
    d->on = true;
    d->k = 1;
    for (size_t m = 0; m < a->nmetrics; m++) {
        const struct metric *mt = &a->metrics[m];
        if (mt->fc == NULL) {
            continue;
        }
        if (mt->kind == M_AVG) {
            d->need_a[mt->col] = d->need_c[mt->col] = true;
        } else if (mt->kind == M_COUNT) {
            d->need_c[mt->col] = true;
        } else {
            d->need_s[mt->col] = true;
        }
    }
    for (size_t k = 0; k < a->ncols; k++) {
        d->need_s[k] = d->need_s[k] && !d->need_a[k];
        d->k += (unsigned)d->need_s[k] + (unsigned)d->need_a[k] + (unsigned)d->need_c[k];
    }
    vl_u128 kk = (vl_u128)d->k * VL_DP_EPS_UNIT;
    d->c_num = kk;
    d->c_den = eps_micro;
    double eps = (double)eps_micro / VL_DP_EPS_UNIT;
    d->b_c = (double)d->k / eps;
    for (size_t k = 0; k < a->ncols; k++) {
        const struct vl_field *f = a->cols[k]->f;
        vl_u128 lo = u128_abs64(f->lo), hi = u128_abs64(f->hi);
        vl_u128 width = (vl_u128)((vl_i128)f->hi - (vl_i128)f->lo);
        d->s_num[k] = (lo > hi ? lo : hi) * kk;
        d->a_num[k] = width * kk;
        d->b_s[k] = (double)(lo > hi ? lo : hi) * d->k / eps;
        d->b_a[k] = (double)width * d->k / eps;
    }
    if (a->ngroup > 0) {
        d->threshold = vl_dlaplace_threshold(d->b_c, (double)role->privacy.delta /
                                                         (double)VL_DP_DELTA_UNIT);
        if (d->threshold < role->min_group_size) {
            d->threshold = role->min_group_size;
        }
    }
}

/* x + discrete Laplace noise of scale num / den, kept within DP_CAP. */
static vl_i128 dp_noisy(struct dpq *d, vl_i128 x, vl_u128 num, vl_u128 den)
{
    return dp_cap(x + vl_dlaplace(d->rng, num, den));
}

/* round(x / 2), half to even. */
static vl_i128 half_even(vl_i128 x)
{
    vl_i128 q = x / 2, r = x % 2;
    if (r != 0 && (q & 1) != 0) {
        q += x > 0 ? 1 : -1;
    }
    return q;
}

/* What the answer says of each metric's noise: its scale and a 95% error bound in the
 * metric's units (for an average: at a group of `threshold` documents, and per count). */
static json_t *dp_noise_json(const struct agg *a, const struct dpq *d)
{
    json_t *o = json_object();
    double hc = (double)vl_dlaplace_halfwidth(d->b_c, 0.05);
    double hc2 = (double)vl_dlaplace_halfwidth(d->b_c, 0.025);
    for (size_t m = 0; m < a->nmetrics; m++) {
        const struct metric *mt = &a->metrics[m];
        json_t *x = NULL;
        if (mt->kind == M_COUNT) {
            x = json_pack("{s:f, s:f}", "scale", d->b_c, "error95", hc);
        } else {
            const struct vl_field *f = mt->fc->f;
            double unit = pow10d(field_scale(f));
            double mid = ((double)f->lo + (double)f->hi) / 2 / unit;
            double ha = (double)vl_dlaplace_halfwidth(d->b_a[mt->col] / 2, 0.025) / unit;
            if (mt->kind == M_SUM && !d->need_a[mt->col]) {
                x = json_pack("{s:f, s:f}", "scale", d->b_s[mt->col] / unit, "error95",
                              (double)vl_dlaplace_halfwidth(d->b_s[mt->col], 0.05) / unit);
            } else if (mt->kind == M_SUM) {
                x = json_pack("{s:f, s:f}", "scale", d->b_a[mt->col] / 2 / unit, "error95",
                              ha + (mid < 0 ? -mid : mid) * hc2);
            } else {
                double per = ha + ((double)f->hi - (double)f->lo) / 2 / unit * hc2;
                double n = d->threshold > 0 ? (double)d->threshold : 1;
                x = json_pack("{s:f, s:f, s:f}", "scale", d->b_a[mt->col] / 2 / unit,
                              "error95", per / n, "error95_per_count", per);
            }
        }
        json_object_set_new(o, mt->name, x);
    }
    return o;
}

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

/* Orders groups (pointers to them) by their keys, byte-wise, shorter first. */
static int group_keys_cmp(const void *a, const void *b)
{
    const struct vl_agg_group *x = *(const struct vl_agg_group *const *)a;
    const struct vl_agg_group *y = *(const struct vl_agg_group *const *)b;
    for (size_t k = 0; k < VL_AGG_MAX_GROUP; k++) {
        const struct vl_bytes *p = &x->keys[k], *q = &y->keys[k];
        if (p->n != q->n) {
            return p->n < q->n ? -1 : 1;
        }
        int c = p->n > 0 ? memcmp(p->p, q->p, p->n) : 0;
        if (c != 0) {
            return c;
        }
    }
    return 0;
}

/* Could count 64-bit values add up to sum? |sum| <= count * 2^63 holds for every honest
 * sum (ASHE and Paillier sums are exact), and fails for all but a sliver of garbage. */
static bool sum_plausible(vl_i128 sum, uint64_t count)
{
    vl_u128 mag = sum < 0 ? (vl_u128)0 - (vl_u128)sum : (vl_u128)sum;
    return mag <= ((vl_u128)count << 63);
}

/* sum / count (count >= 1, sum_plausible) in units of 10^-AVG_EXTRA_PLACES of sum's units,
 * rounded half to even. No overflow: |sum / count| <= 2^63. */
static vl_i128 avg_units(vl_i128 sum, uint64_t count)
{
    bool neg = sum < 0;
    vl_u128 mag = neg ? (vl_u128)0 - (vl_u128)sum : (vl_u128)sum;
    vl_u128 q = mag / count, r = mag % count;
    vl_u128 num = r * AVG_EXTRA_POW;
    q = q * AVG_EXTRA_POW + num / count;
    r = num % count;
    if (2 * r > count || (2 * r == count && (q & 1) != 0)) {
        q++;
    }
    return neg ? -(vl_i128)q : (vl_i128)q;
}

/* The JSON number text of an average of field f: avg_units at the field's scale plus
 * AVG_EXTRA_PLACES, trailing zeros dropped but one ("12.5", "3.0", "-0.25"). */
static void avg_text(const struct vl_field *f, vl_i128 units, char out[48])
{
    int places = (f->type == VL_T_DECIMAL ? f->scale : 0) + AVG_EXTRA_PLACES;
    vl_i128_to_decimal(units, places, out);
    size_t n = strlen(out);
    while (n >= 2 && out[n - 1] == '0' && out[n - 2] != '.') {
        out[--n] = '\0';
    }
}

/* Is the store's answer one an honest store can give for req? See the file header. 1: yes,
 * 0: no, -1: out of memory (so that no breach is reported for it). */
static int agg_honest(const struct vl_agg_request *req, const struct vl_agg_result *res)
{
    bool ok = res->n == 0 || (res->groups != NULL && res->ncols == req->ncols);
    ok = ok && (req->ngroup > 0 || res->n <= 1);
    uint64_t rows = 0;
    const struct vl_agg_group **sorted = NULL;
    for (size_t g = 0; ok && g < res->n; g++) {
        const struct vl_agg_group *grp = &res->groups[g];
        ok = grp->count > 0 && (req->ncols == 0 || grp->values != NULL);
        if (ok && req->pred != NULL && req->pred->only_docs) {
            ok = grp->count <= req->pred->ndocs - rows;
            rows += ok ? grp->count : 0;
        }
        for (size_t k = 0; ok && k < VL_AGG_MAX_GROUP; k++) {
            ok = grp->keys[k].n == 0 || (k < req->ngroup && grp->keys[k].p != NULL);
        }
        for (size_t j = 0; ok && j < req->ncols; j++) {
            const struct vl_agg_value *v = &grp->values[j];
            ok = v->count <= grp->count;
            if (ok && req->cols[j].paillier) {
                ok = v->nruns == 0 && (v->count == 0) == (v->product.n == 0) &&
                     (v->product.n == 0 || v->product.p != NULL);
                continue;
            }
            ok = ok && v->product.n == 0 && (v->count == 0) == (v->nruns == 0) &&
                 (v->nruns == 0 || v->runs != NULL);
            for (int k = 0; ok && k < VL_SUM_LIMBS; k++) {
                ok = v->limbs[k] >= 0 && (vl_u128)v->limbs[k] <= (vl_u128)v->count * LIMB_MAX;
            }
            uint64_t covered = 0;
            for (size_t r = 0; ok && r < v->nruns; r++) {
                const struct vl_seq_run *run = &v->runs[r];
                ok = run->first >= 1 && run->first <= run->last &&
                     run->last <= (uint64_t)INT64_MAX &&
                     (r == 0 || run->first > v->runs[r - 1].last + 1) &&
                     run->last - run->first < v->count - covered;
                covered += ok ? run->last - run->first + 1 : 0;
            }
            ok = ok && covered == v->count;
        }
    }
    /* Each group once: the keys of two groups never all equal. */
    if (ok && req->ngroup > 0 && res->n > 1) {
        if ((sorted = malloc(res->n * sizeof(*sorted))) == NULL) {
            return -1;
        }
        for (size_t g = 0; g < res->n; g++) {
            sorted[g] = &res->groups[g];
        }
        qsort(sorted, res->n, sizeof(*sorted), group_keys_cmp);
        for (size_t g = 1; ok && g < res->n; g++) {
            ok = group_keys_cmp(&sorted[g - 1], &sorted[g]) != 0;
        }
    }
    free(sorted);
    return ok ? 1 : 0;
}

static json_t *explain_json(const struct vl_coll *c, const struct agg *a,
                            const struct vl_plan *plan, const struct vl_agg_result *res,
                            const struct vl_match *match, const struct vl_hits *hits,
                            const struct dpq *dp)
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
    char line[320];
    if (dp->on) { /* no number that depends on the data: they are not noisy */
        json_array_append_new(proxy, json_string("decrypted the group keys (AES-SIV) and "
                                                 "removed the ASHE key stream run by run"));
        snprintf(line, sizeof(line),
                 "added discrete Laplace noise to %u quantities per group (epsilon / %u "
                 "each), kept groups whose noisy count reached %" PRIu64
                 ", derived sums and averages from the noisy quantities",
                 dp->k, dp->k, dp->threshold);
        json_array_append_new(proxy, json_string(line));
    } else {
        snprintf(line, sizeof(line), "decrypted %zu group keys (AES-SIV)", res->n * a->ngroup);
        json_array_append_new(proxy, json_string(line));
        snprintf(line, sizeof(line),
                 "removed the ASHE key stream over %zu runs of rows (2 values of F per run)",
                 runs);
        json_array_append_new(proxy, json_string(line));
        json_array_append_new(proxy, json_string("turned units into decimals, divided sums "
                                                 "by counts for averages, suppressed small "
                                                 "groups"));
    }
    for (size_t m = 0; m < a->nmetrics; m++) {
        const struct metric *mt = &a->metrics[m];
        if (mt->kind != M_AVG || dp->on) {
            continue;
        }
        int scale = mt->fc->f->type == VL_T_DECIMAL ? mt->fc->f->scale : 0;
        snprintf(line, sizeof(line),
                 "%s (avg of %s): the exact sum divided by the count, rounded half to even to "
                 "%d decimal places (the field's scale %d + %d)",
                 mt->name, mt->fc->path, scale + AVG_EXTRA_PLACES, scale, AVG_EXTRA_PLACES);
        json_array_append_new(proxy, json_string(line));
    }
    json_t *x =
        json_pack("{s:{s:s, s:o, s:o, s:o}, s:o, s:s}", "store", "table", c->table, "where", terms,
                  "group_by", groups, "aggregated", cols, "proxy", proxy, "integrity",
                  "each sum is checked against the MAC tags the store summed beside its "
                  "cells (a linear MAC mod 2^127 - 1); which rows a group holds is not yet "
                  "checked against trusted state; answers no honest store gives "
                  "(impossible counts, runs of rows, limb sums, repeated groups) are refused");
    if (dp->on) { /* the scales of the noise, as the answer's privacy.noise */
        json_object_set_new(x, "noise", dp_noise_json(a, dp));
    }
    if (match->n > 0 && dp->on) {
        json_object_set_new(
            x, "match",
            json_pack("{s:I, s:s}", "words", (json_int_t)match->nwords, "how",
                      "the proxy read and checked every index entry of the words, kept the "
                      "live documents, and sent their tokens to the store, which aggregates "
                      "only those rows"));
    } else if (match->n > 0) {
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

/* A group's answer as JSON text, and the text of its key, to sort groups by key. */
struct answer {
    char *key;
    char *text;
};

/* Appends the JSON text of j (compact) to b. */
static veil_err append_json(struct vl_buf *b, const json_t *j)
{
    char *t = j != NULL ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15))
                        : NULL;
    veil_err rc = t != NULL ? vl_buf_append_str(b, t) : VEIL_ERR_INTERNAL;
    free(t);
    return rc;
}

static int cmp_answers(const void *x, const void *y)
{
    return strcmp(((const struct answer *)x)->key, ((const struct answer *)y)->key);
}

/* ---- the answer under differential privacy ---- */

/* A group's noisy quantities (see struct dpq) from its verified sums: noisy_c[k] its count
 * of values of column k, noisy_s[k] its sum S or its centred A2. */
static void dp_group(const struct agg *a, struct dpq *d, const struct vl_agg_group *grp,
                     const vl_i128 *sums, vl_i128 *noisy_c, vl_i128 *noisy_s)
{
    for (size_t k = 0; k < a->ncols; k++) {
        const struct vl_agg_value *av = &grp->values[k];
        const struct vl_field *f = a->cols[k]->f;
        noisy_c[k] = noisy_s[k] = 0;
        if (d->need_c[k]) {
            noisy_c[k] = dp_noisy(d, (vl_i128)av->count, d->c_num, d->c_den);
        }
        if (d->need_s[k]) {
            noisy_s[k] = dp_noisy(d, sums[k], d->s_num[k], d->c_den);
        } else if (d->need_a[k]) {
            vl_i128 a2 = 2 * sums[k] - ((vl_i128)f->lo + f->hi) * (vl_i128)av->count;
            noisy_s[k] = dp_noisy(d, a2, d->a_num[k], d->c_den);
        }
    }
}

/* Do two columns hold the same rows? The runs an honest store gives for a field's cells
 * and for their tags are the same. */
static bool same_runs(const struct vl_agg_value *x, const struct vl_agg_value *y)
{
    if (x->nruns != y->nruns) {
        return false;
    }
    for (size_t r = 0; r < x->nruns; r++) {
        if (x->runs[r].first != y->runs[r].first || x->runs[r].last != y->runs[r].last) {
            return false;
        }
    }
    return true;
}

/* Decrypts every group's sums into sums[g * ncols + k] and checks each against its MAC
 * tags (tactics.h): as many tags as cells, over the same rows (ASHE), summing to a S plus
 * the G terms of their runs. A store that changed, dropped, added or moved a cell or a tag
 * fails it but with probability 1/p. Groups left out later (too small) are checked too. */
static veil_err sums_verified(veil_vault *v, veil_session *s, const struct vl_coll *c,
                              const struct agg *a, const struct vl_agg_group *groups, size_t n,
                              const struct vl_ashe_table *tables, vl_i128 *sums,
                              veil_status *st)
{
    for (size_t g = 0; g < n; g++) {
        for (size_t k = 0; k < a->ncols; k++) {
            const struct vl_fctx *fc = a->cols[k];
            const struct vl_agg_value *av = &groups[g].values[k];
            const struct vl_agg_value *tv = &groups[g].values[a->ncols + k];
            vl_i128 sum = 0;
            bool paillier = fc->f->sum_scheme == VL_SUM_PAILLIER;
            if (tv->count != av->count || (!paillier && !same_runs(av, tv))) {
                return vl_breach(v, s, c->name, "a sum's MAC tags are not those of its cells",
                                 st);
            }
            if (paillier) {
                if (av->count > 0 && vl_paillier_sum(fc, &av->product, &sum) != VEIL_OK) {
                    return vl_breach(v, s, c->name, "a Paillier product failed to decrypt", st);
                }
            } else {
                sum = vl_ashe_decrypt(fc->sum_key, vl_ashe_join(av->limbs), av->runs, av->nruns,
                                      &tables[k]);
            }
            if (!sum_plausible(sum, av->count)) {
                return vl_breach(v, s, c->name, "a sum is more than its cells can add up to", st);
            }
            if (vl_mac_expect(fc->mac_key, sum, tv->runs, tv->nruns, &tables[a->ncols + k]) !=
                vl_mac_join(tv->limbs)) {
                return vl_breach(v, s, c->name, "a sum does not match its MAC tags", st);
            }
            sums[g * a->ncols + k] = sum;
        }
    }
    return VEIL_OK;
}

/* The JSON text of one metric from the group's noisy quantities. */
static void dp_metric(const struct dpq *d, const struct metric *mt, vl_i128 noisy_count,
                      const vl_i128 *noisy_c, const vl_i128 *noisy_s, char out[64])
{
    char num[48];
    if (mt->kind == M_COUNT) {
        vl_i128 n = mt->fc == NULL ? noisy_count : noisy_c[mt->col];
        vl_i128_to_decimal(n < 0 ? 0 : n, 0, out);
        return;
    }
    const struct vl_field *f = mt->fc->f;
    vl_i128 mid2 = (vl_i128)f->lo + f->hi; /* twice the middle of the bounds */
    if (mt->kind == M_SUM) {
        vl_i128 sum = d->need_a[mt->col] ? half_even(noisy_s[mt->col] + mid2 * noisy_c[mt->col])
                                         : noisy_s[mt->col];
        if (f->type == VL_T_INTEGER) {
            sum = sum > INT64_MAX ? INT64_MAX : sum < INT64_MIN ? INT64_MIN : sum;
            vl_i128_to_decimal(sum, 0, out);
        } else {
            vl_i128_to_decimal(sum, f->scale, num);
            snprintf(out, 64, "\"%s\"", num);
        }
        return;
    }
    vl_i128 cnt = noisy_c[mt->col];
    if (cnt < 1) { /* noise took the count below one: divide by one, the answer stays a number */
        cnt = 1;
    }
    if (cnt > ((vl_i128)1 << 62)) {
        cnt = (vl_i128)1 << 62;
    }
    vl_i128 units = avg_units(noisy_s[mt->col] + mid2 * cnt, (uint64_t)(2 * cnt));
    vl_i128 lo = (vl_i128)f->lo * AVG_EXTRA_POW, hi = (vl_i128)f->hi * AVG_EXTRA_POW;
    avg_text(f, units < lo ? lo : units > hi ? hi : units, out);
}

/* The answer of a DP role from a kept text (its meta line, then its groups): the groups,
 * what it spent and has left, the noise, and how it was computed when asked. */
static veil_err dp_reply(const struct vl_coll *c, const struct vl_role *role,
                         const struct agg *a, const struct vl_plan *plan,
                         const struct vl_agg_result *res, const struct vl_match *match,
                         const struct vl_hits *hits, const struct dpq *d,
                         const struct vl_dp_answer *dpa, const char *kept, bool cached,
                         char **json_out, veil_status *st)
{
    const char *nl = strchr(kept, '\n');
    json_error_t err;
    json_t *meta = nl != NULL ? json_loadb(kept, (size_t)(nl - kept), 0, &err) : NULL;
    json_t *priv = vl_dp_privacy_json(role, dpa, cached);
    struct vl_buf b;
    vl_buf_init(&b, SIZE_MAX);
    veil_err rc = meta != NULL && priv != NULL ? VEIL_OK : VEIL_ERR_INTERNAL;
    if (rc == VEIL_OK) {
        json_object_update(priv, meta);
        rc = vl_buf_append_str(&b, "{\"groups\":");
    }
    if (rc == VEIL_OK) {
        rc = vl_buf_append_str(&b, nl + 1);
    }
    if (rc == VEIL_OK) {
        rc = vl_buf_append_str(&b, ",\"suppressed\":null,\"privacy\":");
    }
    char *pt = priv != NULL ? json_dumps(priv, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
    if (rc == VEIL_OK) {
        rc = pt != NULL ? vl_buf_append_str(&b, pt) : VEIL_ERR_INTERNAL;
    }
    free(pt);
    if (rc == VEIL_OK && a->explain) {
        json_t *x = explain_json(c, a, plan, res, match, hits, d);
        if ((rc = vl_buf_append_str(&b, ",\"explain\":")) == VEIL_OK) {
            rc = append_json(&b, x);
        }
        json_decref(x);
    }
    if (rc == VEIL_OK) {
        rc = vl_buf_append_str(&b, "}");
    }
    *json_out = rc == VEIL_OK ? (char *)vl_buf_steal(&b, NULL) : NULL;
    vl_buf_free(&b);
    json_decref(meta);
    json_decref(priv);
    if (*json_out == NULL) {
        return vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "the kept answer could not be read");
    }
    return VEIL_OK;
}

/* Keeps the new answer in trusted state (the same query gets it again in the period) and
 * replies with it. */
static veil_err dp_keep(const struct vl_coll *c, const struct vl_role *role,
                        const struct agg *a, const struct vl_plan *plan,
                        const struct vl_agg_result *res, const struct vl_match *match,
                        const struct vl_hits *hits, const struct dpq *d,
                        struct vl_dp_answer *dpa, const struct answer *ans, size_t nans,
                        veil_session *s, char **json_out, veil_status *st)
{
    json_t *meta = json_object();
    json_object_set_new(meta, "threshold", a->ngroup > 0 ? json_integer((json_int_t)d->threshold)
                                                         : json_null());
    json_object_set_new(meta, "noise", dp_noise_json(a, d));
    char *mt = json_dumps(meta, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(meta);
    struct vl_buf b;
    vl_buf_init(&b, SIZE_MAX);
    veil_err rc = mt != NULL ? vl_buf_append_str(&b, mt) : VEIL_ERR_INTERNAL;
    free(mt);
    if (rc == VEIL_OK) {
        rc = vl_buf_append_str(&b, "\n[");
    }
    for (size_t i = 0; i < nans && rc == VEIL_OK; i++) {
        if (i > 0) {
            rc = vl_buf_append_str(&b, ",");
        }
        if (rc == VEIL_OK) {
            rc = vl_buf_append_str(&b, ans[i].text);
        }
    }
    if (rc == VEIL_OK) {
        rc = vl_buf_append_str(&b, "]");
    }
    char *kept = rc == VEIL_OK ? (char *)vl_buf_steal(&b, NULL) : NULL;
    vl_buf_free(&b);
    if (kept == NULL) {
        return vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
    }
    vl_dp_end(s, dpa, kept); /* from here on the answer counts as released */
    rc = dp_reply(c, role, a, plan, res, match, hits, d, dpa, kept, false, json_out, st);
    free(kept);
    return rc;
}

/* Asks the store for an aggregate (vl_agg_check's fetch): its answer must have a shape an
 * honest store can give. */
struct fetch_ctx {
    veil_session *s;
    const struct vl_coll *c;
    struct vl_store *store;
    const struct vl_agg_request *req;
};

static veil_err agg_fetch(void *ctx, struct vl_agg_result *res, veil_status *st)
{
    struct fetch_ctx *f = ctx;
    veil_err rc = f->store->ops->aggregate(f->store, f->c->table, f->req, res);
    if (rc != VEIL_OK) {
        return vl_store_failed(f->s, f->c, 0, rc, st);
    }
    int honest = agg_honest(f->req, res);
    if (honest < 0) {
        return vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
    }
    if (honest == 0) {
        return vl_breach(f->s->v, f->s, f->c->name,
                         "a store answered an aggregate no honest store gives", st);
    }
    return VEIL_OK;
}

static int doc_cmp(const void *a, const void *b)
{
    return memcmp(a, b, VL_DOCTOKEN_BYTES);
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
    struct vl_agg_col cols[2 * MAX_METRICS]; /* the summed columns, then their MAC tags */
    uint8_t group_cols[VL_AGG_MAX_GROUP][VL_COL_BYTES];
    json_t *q = NULL;
    struct answer *ans = NULL;
    size_t nans = 0, suppressed = 0;
    struct vl_ashe_table tables[2 * MAX_METRICS]; /* F of each column, then G of its tags */
    vl_i128 *gsum = NULL; /* each group's verified sums, group by group */
    const struct vl_agg_group *res_view = NULL;
    size_t nview = 0;
    memset(&a, 0, sizeof(a));
    memset(&plan, 0, sizeof(plan));
    memset(&res, 0, sizeof(res));
    struct vl_match match;
    struct vl_match_snap snap;
    struct vl_hits hits = {0};
    struct vl_bytes *hit_toks = NULL;
    struct vl_docset hitset = {NULL, 0};
    struct dpq dp;
    struct vl_dp_answer dpa;
    memset(&dp, 0, sizeof(dp));
    memset(&dpa, 0, sizeof(dpa));
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
            strcmp(key, "metrics") && strcmp(key, "explain") && strcmp(key, "refresh") &&
            strcmp(key, "epsilon")) {
            rc = vl_status_set(st, VEIL_ERR_BAD_REQUEST, key,
                               "unknown key (known: where, match, group_by, metrics, "
                               "explain, refresh, epsilon)");
            goto out;
        }
    }
    json_t *jx = json_object_get(q, "explain"), *jr = json_object_get(q, "refresh");
    if ((jx != NULL && !json_is_boolean(jx)) || (jr != NULL && !json_is_boolean(jr))) {
        rc = vl_status_set(st, VEIL_ERR_BAD_REQUEST, jx != NULL && !json_is_boolean(jx)
                                                         ? "explain" : "refresh",
                           "explain and refresh are true or false");
        goto out;
    }
    a.explain = json_is_true(jx);
    if ((rc = parse_group_by(c, role, json_object_get(q, "group_by"), &a, st)) != VEIL_OK ||
        (rc = parse_metrics(c, role, json_object_get(q, "metrics"), &a, st)) != VEIL_OK ||
        (rc = vl_plan_where(c, role, true, json_object_get(q, "where"), &plan, st)) !=
            VEIL_OK) {
        goto out;
    }
    if (json_object_get(q, "match") != NULL &&
        (rc = vl_match_plan(c, role, true, json_object_get(q, "match"), &match, st)) != VEIL_OK) {
        goto out;
    }
    /* Under differential privacy the answer is paid for (or found kept) before any data is
     * touched; a kept one is the answer. */
    json_t *je = json_object_get(q, "epsilon");
    int64_t eps_q = 0;
    if (role == NULL || !role->dp) {
        je = NULL; /* like refresh: only for a role answered under differential privacy */
    }
    if (je != NULL && (vl_decimal_parse(je, 6, &eps_q) != 0 || eps_q < (int64_t)VL_DP_EPS_MIN ||
                       (uint64_t)eps_q > role->privacy.budget)) {
        rc = vl_status_set(st, VEIL_ERR_BAD_REQUEST, "epsilon",
                           "epsilon is a number from 0.01 to the token's budget (%.6g), with at "
                           "most 6 digits after the point",
                           (double)role->privacy.budget / VL_DP_EPS_UNIT);
        goto out;
    }
    if (role != NULL && role->dp) {
        uint64_t eps = je != NULL ? (uint64_t)eps_q : role->privacy.eps;
        dp_plan(&a, role, eps, &dp);
        if ((rc = vl_dp_begin(s, c, role, q, eps, json_is_true(jr), &dpa, st)) != VEIL_OK) {
            goto out;
        }
        if (dpa.kept != NULL) {
            rc = dp_reply(c, role, &a, &plan, &res, &match, &hits, &dp, &dpa, dpa.kept, true,
                          json_out, st);
            goto out;
        }
        if ((dp.rng = vl_rng_new()) == NULL) {
            rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
            goto out;
        }
    }
    /* A match narrows the rows to the documents it finds: the store aggregates those. */
    if (match.n > 0) {
        if ((rc = vl_match_run(s, c, &match, &snap, &hits, st)) != VEIL_OK) {
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
        if ((hitset.docs = malloc((hits.n + 1) * VL_DOCTOKEN_BYTES)) == NULL) {
            rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < hits.n; i++) {
            memcpy(hitset.docs[i], hits.h[i].doc, VL_DOCTOKEN_BYTES);
        }
        hitset.n = hits.n;
        qsort(hitset.docs, hitset.n, VL_DOCTOKEN_BYTES, doc_cmp);
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
        /* and the column of its MAC tags, which the store sums like ASHE cells */
        memcpy(cols[a.ncols + i].col, a.cols[i]->tcol, VL_COL_BYTES);
        cols[a.ncols + i].paillier = false;
        cols[a.ncols + i].modulus.p = NULL;
        cols[a.ncols + i].modulus.n = 0;
    }
    struct vl_agg_request req = {&plan.pred, (const uint8_t(*)[VL_COL_BYTES])group_cols,
                                 a.ngroup, cols, 2 * a.ncols};
    struct vl_store *store = v->stores[0];
    if (store->ops->aggregate == NULL) {
        rc = vl_status_set(st, VEIL_ERR_UNSUPPORTED_QUERY, NULL,
                           "store %s cannot aggregate", v->cfg.store_names[0]);
        goto out;
    }
    if (!plan.empty) {
        /* The store's answer, checked against the trusted token sets: every group's rows
         * and cells are exactly those written for it (verify.c). */
        uint8_t tag_cols[MAX_METRICS][VL_COL_BYTES];
        for (size_t i = 0; i < a.ncols; i++) {
            memcpy(tag_cols[i], a.cols[i]->tcol, VL_COL_BYTES);
        }
        struct fetch_ctx fx = {s, c, store, &req};
        struct vl_agg_check chk = {&plan,
                                   match.n > 0 ? &hitset : NULL,
                                   (const uint8_t(*)[VL_COL_BYTES])group_cols,
                                   a.ngroup,
                                   (const uint8_t(*)[VL_COL_BYTES])tag_cols,
                                   a.ncols,
                                   a.ncols,
                                   agg_fetch,
                                   &fx,
                                   &res};
        if ((rc = v->unverified ? agg_fetch(&fx, &res, st) : vl_agg_verified(s, c, &chk, st)) !=
            VEIL_OK) {
            goto out;
        }
    }
    /* When the runs are many (rows of a group scattered among others), compute F over the
     * spans of row numbers they fall in (one per block of numbers) in one pass of the
     * cipher each, instead of per run. */
    for (size_t k = 0; k < 2 * a.ncols; k++) {
        size_t runs = 0;
        for (size_t g = 0; g < res.n; g++) {
            runs += res.groups[g].values[k].nruns;
        }
        const uint8_t *fkey = k < a.ncols ? a.cols[k]->sum_key : a.cols[k - a.ncols]->mac_key;
        struct vl_seq_run *all = fkey != NULL && runs > 64 ? malloc(runs * sizeof(*all)) : NULL;
        for (size_t g = 0, at = 0; all != NULL && g < res.n; g++) {
            const struct vl_agg_value *av = &res.groups[g].values[k];
            if (av->nruns > 0) {
                memcpy(all + at, av->runs, av->nruns * sizeof(*all));
                at += av->nruns;
            }
        }
        if (all != NULL && vl_ashe_table_fill_runs(&tables[k], fkey, all, runs) != 0) {
            memset(&tables[k], 0, sizeof(tables[k])); /* out of memory: per run, then */
        }
        free(all);
    }
    res_view = res.groups;
    nview = res.n;
    /* Without group_by there is always one group, key {}, even when no row matches. */
    struct vl_agg_value empty_values[2 * MAX_METRICS];
    struct vl_agg_group empty_group;
    if (a.ngroup == 0 && res.n == 0) {
        memset(empty_values, 0, sizeof(empty_values));
        memset(&empty_group, 0, sizeof(empty_group));
        empty_group.values = empty_values;
        res_view = &empty_group;
        nview = 1;
    }
    unsigned min_group = role != NULL ? role->min_group_size : 0;
    if ((gsum = calloc(nview * a.ncols + 1, sizeof(*gsum))) == NULL) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    if ((rc = sums_verified(v, s, c, &a, res_view, nview, tables, gsum, st)) != VEIL_OK) {
        goto out;
    }
    if ((ans = calloc(nview + 1, sizeof(*ans))) == NULL) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    for (size_t g = 0; g < nview; g++) {
        const struct vl_agg_group *grp = &res_view[g];
        vl_i128 noisy_count = 0, noisy_c[MAX_METRICS], noisy_s[MAX_METRICS];
        if (dp.on) {
            noisy_count = dp_noisy(&dp, (vl_i128)grp->count, dp.c_num, dp.c_den);
            if (a.ngroup > 0 && noisy_count < (vl_i128)dp.threshold) {
                continue; /* partition selection: its existence is not shown */
            }
            dp_group(&a, &dp, grp, gsum + g * a.ncols, noisy_c, noisy_s);
        } else if (grp->count < min_group) {
            suppressed++;
            continue;
        }
        struct vl_buf gb;
        json_t *k = json_object();
        vl_buf_init(&gb, SIZE_MAX);
        veil_err brc = vl_buf_append_str(&gb, "{\"key\":");
        for (size_t i = 0; i < a.ngroup; i++) {
            json_t *kv = group_key(a.group[i], &grp->keys[i]);
            if (kv == NULL) {
                json_decref(k);
                vl_buf_free(&gb);
                rc = vl_breach(v, s, c->name, "a group key failed to authenticate", st);
                goto out;
            }
            json_object_set_new(k, a.group[i]->path, kv);
        }
        if (brc == VEIL_OK) {
            brc = append_json(&gb, k);
        }
        for (size_t m = 0; m < a.nmetrics && brc == VEIL_OK; m++) {
            const struct metric *mt = &a.metrics[m];
            json_t *name = json_string(mt->name);
            char num[64];
            brc = vl_buf_append_str(&gb, ",");
            if (brc == VEIL_OK) {
                brc = append_json(&gb, name);
            }
            json_decref(name);
            if (brc == VEIL_OK) {
                brc = vl_buf_append_str(&gb, ":");
            }
            if (brc != VEIL_OK) {
                break;
            }
            if (dp.on) {
                dp_metric(&dp, mt, noisy_count, noisy_c, noisy_s, num);
                brc = vl_buf_append_str(&gb, num);
                continue;
            }
            if (mt->kind == M_COUNT) {
                uint64_t n = mt->fc == NULL ? grp->count : grp->values[mt->col].count;
                snprintf(num, sizeof(num), "%" PRIu64, n);
                brc = vl_buf_append_str(&gb, num);
                continue;
            }
            const struct vl_agg_value *av = &grp->values[mt->col];
            vl_i128 sum = gsum[g * a.ncols + mt->col];
            if (mt->kind == M_SUM) {
                bool overflow = false;
                json_t *mv = sum_json(mt->fc->f, sum, st, &overflow);
                if (overflow) {
                    json_decref(k);
                    vl_buf_free(&gb);
                    rc = VEIL_ERR_BAD_REQUEST;
                    goto out;
                }
                brc = append_json(&gb, mv);
                json_decref(mv);
            } else if (av->count == 0) {
                brc = vl_buf_append_str(&gb, "null");
            } else {
                avg_text(mt->fc->f, avg_units(sum, av->count), num);
                brc = vl_buf_append_str(&gb, num);
            }
        }
        if (brc == VEIL_OK) {
            brc = vl_buf_append_str(&gb, "}");
        }
        /* both freed at out, whichever is NULL */
        ans[nans].key = json_dumps(k, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
        ans[nans].text = brc == VEIL_OK ? (char *)vl_buf_steal(&gb, NULL) : NULL;
        json_decref(k);
        vl_buf_free(&gb);
        if (ans[nans].key == NULL || ans[nans].text == NULL) {
            nans++;
            rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
            goto out;
        }
        nans++;
    }
    qsort(ans, nans, sizeof(*ans), cmp_answers);
    if (dp.on) {
        rc = dp_keep(c, role, &a, &plan, &res, &match, &hits, &dp, &dpa, ans, nans, s, json_out,
                     st);
        goto out;
    }
    struct vl_buf ab;
    char tail[64];
    vl_buf_init(&ab, SIZE_MAX);
    veil_err brc = vl_buf_append_str(&ab, "{\"groups\":[");
    for (size_t i = 0; i < nans && brc == VEIL_OK; i++) {
        if (i > 0) {
            brc = vl_buf_append_str(&ab, ",");
        }
        if (brc == VEIL_OK) {
            brc = vl_buf_append_str(&ab, ans[i].text);
        }
    }
    snprintf(tail, sizeof(tail), "],\"suppressed\":%zu", suppressed);
    if (brc == VEIL_OK) {
        brc = vl_buf_append_str(&ab, tail);
    }
    if (brc == VEIL_OK && a.explain) {
        json_t *x = explain_json(c, &a, &plan, &res, &match, &hits, &dp);
        if ((brc = vl_buf_append_str(&ab, ",\"explain\":")) == VEIL_OK) {
            brc = append_json(&ab, x);
        }
        json_decref(x);
    }
    if (brc == VEIL_OK) {
        brc = vl_buf_append_str(&ab, "}");
    }
    *json_out = brc == VEIL_OK ? (char *)vl_buf_steal(&ab, NULL) : NULL;
    vl_buf_free(&ab);
    if (*json_out == NULL) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
    }
out:
    vl_dp_end(s, &dpa, NULL); /* not kept: nothing was released, the epsilon goes back */
    vl_dp_answer_free(&dpa);
    vl_rng_free(dp.rng);
    for (size_t i = 0; i < nans; i++) {
        free(ans[i].key);
        free(ans[i].text);
    }
    free(ans);
    for (size_t k = 0; k < 2 * MAX_METRICS; k++) {
        vl_ashe_table_free(&tables[k]);
    }
    free(gsum);
    vl_agg_result_free(&res);
    vl_plan_free(&plan);
    vl_match_free(&match);
    free(hits.h);
    free(hit_toks);
    vl_docset_free(&hitset);
    json_decref(q);
    return rc;
}
