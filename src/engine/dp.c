/*
 * dp.c: the privacy budget around the aggregates of a role answered under differential
 * privacy (README "What an analyst can learn"), and the routes that show and reset it.
 *
 * An answer costs the role's epsilon, paid from two budgets of the period at once: the
 * token's and the role's (all its tokens together), in one durable transaction of the
 * trusted state before anything is computed, so that no race and no crash lets an answer
 * out unpaid. The answer is then kept: the same query (its body with keys sorted, without
 * `explain` and `refresh`) asked again by any token of the role in the same period gets the
 * kept answer and pays nothing, so asking again cannot average the noise away. A query
 * being answered right now is waited for rather than answered twice. An answer that fails
 * before it is released (a store down, a breach) gives its epsilon back: nothing about the
 * data left the proxy. Each spend moves the trusted state's mark, and the new mark is
 * written to the stores before the answer is computed, so a trusted.db restored from a
 * backup that forgot the spend is refused at start (mark.c).
 *
 * The noise itself is added in aggregate.c, which knows the groups.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "engine/engine.h"
#include "util/log.h"

#define DP_WAIT_STEP_US 20000  /* between two looks at an answer another request computes */
#define DP_WAIT_MAX_S 30       /* then give up with 503 */
#define DP_STALE_S 120         /* a pending answer this old was abandoned (a crash) */

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

static json_t *eps_json(uint64_t micro)
{
    return json_real((double)micro / (double)VL_DP_EPS_UNIT);
}

static json_t *delta_json(uint64_t d)
{
    return json_real((double)d / (double)VL_DP_DELTA_UNIT);
}

static json_t *period_json(const struct vl_dp *d, int64_t start)
{
    char a[32], b[32];
    vl_rfc3339(a, start);
    vl_rfc3339(b, vl_period_next(d->period, start));
    return json_pack("{s:s, s:s, s:s}", "unit", vl_period_name(d->period), "start", a, "end", b);
}

static uint64_t left_of(uint64_t budget, uint64_t spent)
{
    return spent >= budget ? 0 : budget - spent;
}

veil_err vl_dp_query_key(const json_t *q, uint8_t out[32])
{
    json_t *copy = json_copy((json_t *)q);
    char *text = NULL;
    if (copy != NULL) {
        json_object_del(copy, "explain");
        json_object_del(copy, "refresh");
        text = json_dumps(copy, JSON_SORT_KEYS | JSON_COMPACT | JSON_REAL_PRECISION(17));
    }
    json_decref(copy);
    if (text == NULL) {
        return VEIL_ERR_INTERNAL;
    }
    crypto_generichash(out, 32, (const uint8_t *)text, strlen(text), NULL, 0);
    free(text);
    return VEIL_OK;
}

veil_err vl_dp_begin(veil_session *s, const struct vl_coll *c, const struct vl_role *r,
                     const json_t *q, uint64_t eps, bool refresh, struct vl_dp_answer *out,
                     veil_status *st)
{
    const struct vl_dp *d = &r->privacy;
    struct vl_dp_ask ask;
    struct vl_dp_reply rep;
    memset(out, 0, sizeof(*out));
    memset(&ask, 0, sizeof(ask));
    out->eps = eps;
    ask.tenant = s->tenant_id;
    ask.coll = c->name;
    ask.role = r->name;
    ask.token = s->principal;
    ask.eps = eps;
    ask.delta = d->delta;
    ask.token_budget = d->budget;
    ask.role_budget = d->role_budget;
    ask.refresh = refresh;
    ask.stale_after = DP_STALE_S;
    if (vl_dp_query_key(q, ask.query) != VEIL_OK) {
        return vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
    }
    int64_t started = now_s();
    for (;;) {
        ask.now = now_s();
        ask.period = vl_period_start(d->period, ask.now);
        memset(&rep, 0, sizeof(rep));
        veil_err rc = vl_trusted_dp_begin(s->v->trusted, &ask, &rep);
        if (rc != VEIL_OK) {
            return vl_status_set(st, rc == VEIL_ERR_STORE_UNAVAILABLE ? rc : VEIL_ERR_INTERNAL,
                                 NULL, "the trusted state could not record the privacy budget");
        }
        out->period = ask.period;
        out->token_spent = rep.token_spent;
        out->role_spent = rep.role_spent;
        switch (rep.outcome) {
        case VL_DP_SPENT:
            out->ticket = rep.ticket;
            out->spent = true;
            /* The stores keep the mark this spend moved to: a trusted.db restored from a
             * backup taken before it is refused at start, so no budget comes back. */
            if (vl_mark_global(s->v, rep.mark) != VEIL_OK) {
                return vl_status_set(st, VEIL_ERR_STORE_UNAVAILABLE, NULL,
                                     "a store cannot be reached");
            }
            return VEIL_OK;
        case VL_DP_KEPT:
            out->kept = rep.answer;
            return VEIL_OK;
        case VL_DP_EXHAUSTED: {
            char until[32];
            int64_t next = vl_period_next(d->period, ask.period);
            vl_rfc3339(until, next);
            vl_status_set(st, VEIL_ERR_PRIVACY_BUDGET, NULL,
                          "the privacy budget of %s %s for %s is spent for this %s (an answer "
                          "costs epsilon %.6g; spent %.6g of %.6g); it starts again at %s",
                          rep.token_exhausted ? "this token of role" : "role", r->name,
                          c->name, vl_period_name(d->period), (double)eps / VL_DP_EPS_UNIT,
                          (double)(rep.token_exhausted ? rep.token_spent : rep.role_spent) /
                              VL_DP_EPS_UNIT,
                          (double)(rep.token_exhausted ? d->budget : d->role_budget) /
                              VL_DP_EPS_UNIT,
                          until);
            st->retry_after = (long)(next - ask.now > 0 ? next - ask.now : 1);
            return VEIL_ERR_PRIVACY_BUDGET;
        }
        case VL_DP_PENDING:
        default:
            free(rep.answer);
            if (now_s() - started > DP_WAIT_MAX_S) {
                return vl_status_set(st, VEIL_ERR_STORE_UNAVAILABLE, NULL,
                                     "the same query is still being answered; retry later");
            }
            usleep(DP_WAIT_STEP_US);
            break;
        }
    }
}

void vl_dp_end(veil_session *s, struct vl_dp_answer *a, const char *kept)
{
    if (!a->spent) {
        return;
    }
    veil_err rc = kept != NULL ? vl_trusted_dp_finish(s->v->trusted, a->ticket, kept)
                               : vl_trusted_dp_abort(s->v->trusted, a->ticket, true);
    if (rc != VEIL_OK) {
        /* Not kept: the next ask waits until the answer counts as abandoned, then pays
         * again. Spending too much is safe; too little never happens. */
        vl_log_event(VL_LOG_WARN, "privacy_answer_not_kept",
                     json_pack("{s:s}", "tenant", s->tenant));
    }
    a->spent = false;
}

void vl_dp_answer_free(struct vl_dp_answer *a)
{
    free(a->kept);
    a->kept = NULL;
}

json_t *vl_dp_privacy_json(const struct vl_role *r, const struct vl_dp_answer *a, bool cached)
{
    const struct vl_dp *d = &r->privacy;
    json_t *o = json_object();
    json_object_set_new(o, "mechanism", json_string("discrete Laplace"));
    json_object_set_new(o, "epsilon", eps_json(a->eps));
    json_object_set_new(o, "delta", delta_json(d->delta));
    json_object_set_new(o, "cached", json_boolean(cached));
    json_object_set_new(o, "spent", json_pack("{s:o, s:o}", "epsilon", eps_json(cached ? 0 : a->eps),
                                              "delta", delta_json(cached ? 0 : d->delta)));
    json_object_set_new(o, "left",
                        json_pack("{s:o, s:o}", "token", eps_json(left_of(d->budget, a->token_spent)),
                                  "role", eps_json(left_of(d->role_budget, a->role_spent))));
    json_object_set_new(o, "period", period_json(d, a->period));
    return o;
}

/* ---- GET /v1/collections/{c}/privacy and POST .../privacy/reset ---- */

/* The period's spending of (role, token) from vl_trusted_dp_usage rows; token NULL: the
 * role's total. */
static void usage_of(const json_t *rows, const char *role, const char *token, uint64_t *eps,
                     uint64_t *answers)
{
    size_t i;
    json_t *row;
    *eps = 0;
    *answers = 0;
    json_array_foreach(rows, i, row) {
        const char *rr = json_string_value(json_object_get(row, "role"));
        const char *tt = json_string_value(json_object_get(row, "token"));
        if (rr == NULL || strcmp(rr, role) != 0 || (token == NULL) != (tt == NULL) ||
            (token != NULL && strcmp(tt, token) != 0)) {
            continue;
        }
        *eps = (uint64_t)json_integer_value(json_object_get(row, "epsilon"));
        *answers = (uint64_t)json_integer_value(json_object_get(row, "answers"));
    }
}

static json_t *budget_json(uint64_t budget, uint64_t spent, uint64_t answers)
{
    return json_pack("{s:o, s:o, s:o, s:I}", "budget", eps_json(budget), "spent", eps_json(spent),
                     "left", eps_json(left_of(budget, spent)), "answers", (json_int_t)answers);
}

static veil_err role_usage(veil_session *s, const struct vl_coll *c, const struct vl_role *r,
                           int64_t period, json_t **rows, veil_status *st)
{
    veil_err rc = vl_trusted_dp_usage(s->v->trusted, s->tenant_id, c->name, period, r->name,
                                      NULL, rows);
    if (rc != VEIL_OK) {
        return vl_status_set(st, rc == VEIL_ERR_STORE_UNAVAILABLE ? rc : VEIL_ERR_INTERNAL, NULL,
                             "the trusted state could not be read");
    }
    return VEIL_OK;
}

static veil_err dump_out(json_t *o, char **json_out, veil_status *st)
{
    char *text = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
    json_decref(o);
    if (text == NULL) {
        return vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
    }
    *json_out = text;
    return VEIL_OK;
}

veil_err veil_privacy_status(veil_session *s, const char *coll, char **json_out, veil_status *st)
{
    const struct vl_coll *c = NULL;
    json_t *rows = NULL;
    vl_status_clear(st);
    veil_err rc = vl_coll_get(s, coll, &c, st);
    if (rc != VEIL_OK) {
        return rc;
    }
    int64_t now = now_s();
    if (!s->admin) {
        const struct vl_role *r = vl_policy_role(c->policy, s->role);
        if (r == NULL || !r->dp) {
            return vl_status_set(st, VEIL_ERR_FORBIDDEN, NULL,
                                 "role %s is not answered under differential privacy in %s",
                                 s->role, c->name);
        }
        const struct vl_dp *d = &r->privacy;
        int64_t period = vl_period_start(d->period, now);
        if ((rc = role_usage(s, c, r, period, &rows, st)) != VEIL_OK) {
            return rc;
        }
        uint64_t te, ta, re, ra;
        usage_of(rows, r->name, s->principal, &te, &ta);
        usage_of(rows, r->name, NULL, &re, &ra);
        json_decref(rows);
        json_t *o = json_pack("{s:s, s:s, s:o, s:o, s:o, s:{s:o, s:o}}", "collection", c->name,
                              "role", r->name, "period", period_json(d, period),
                              "epsilon_per_answer", eps_json(d->eps), "delta_per_answer",
                              delta_json(d->delta), "budgets", "token",
                              budget_json(d->budget, te, ta), "role",
                              budget_json(d->role_budget, re, ra));
        json_object_set_new(json_object_get(json_object_get(o, "budgets"), "token"), "id",
                            json_string(s->principal));
        return dump_out(o, json_out, st);
    }
    json_t *roles = json_array();
    for (size_t i = 0; i < c->policy->nroles; i++) {
        const struct vl_role *r = &c->policy->roles[i];
        if (!r->dp) {
            continue;
        }
        const struct vl_dp *d = &r->privacy;
        int64_t period = vl_period_start(d->period, now);
        if ((rc = role_usage(s, c, r, period, &rows, st)) != VEIL_OK) {
            json_decref(roles);
            return rc;
        }
        uint64_t re, ra;
        usage_of(rows, r->name, NULL, &re, &ra);
        json_t *tokens = json_array();
        size_t k;
        json_t *row;
        json_array_foreach(rows, k, row) {
            const char *tok = json_string_value(json_object_get(row, "token"));
            if (tok == NULL) {
                continue;
            }
            uint64_t e = (uint64_t)json_integer_value(json_object_get(row, "epsilon"));
            json_t *b = budget_json(d->budget, e,
                                    (uint64_t)json_integer_value(json_object_get(row, "answers")));
            json_object_del(b, "budget");
            json_object_set_new(b, "id", json_string(tok));
            json_array_append_new(tokens, b);
        }
        json_decref(rows);
        json_t *ro = budget_json(d->role_budget, re, ra);
        json_object_del(ro, "budget");
        json_object_set_new(ro, "role", json_string(r->name));
        json_object_set_new(ro, "period", period_json(d, period));
        json_object_set_new(ro, "epsilon_per_answer", eps_json(d->eps));
        json_object_set_new(ro, "delta_per_answer", delta_json(d->delta));
        json_object_set_new(ro, "budget", eps_json(d->budget));
        json_object_set_new(ro, "role_budget", eps_json(d->role_budget));
        json_object_set_new(ro, "tokens", tokens);
        json_array_append_new(roles, ro);
    }
    return dump_out(json_pack("{s:s, s:o}", "collection", c->name, "roles", roles), json_out, st);
}

veil_err veil_privacy_reset(veil_session *s, const char *coll, const char *body, size_t len,
                            char **json_out, veil_status *st)
{
    const struct vl_coll *c = NULL;
    json_t *q = NULL;
    veil_err rc;
    vl_status_clear(st);
    if (!s->admin) {
        return vl_status_set(st, VEIL_ERR_FORBIDDEN, NULL, "only an admin may reset budgets");
    }
    if ((rc = vl_coll_get(s, coll, &c, st)) != VEIL_OK) {
        return rc;
    }
    json_error_t err;
    q = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);
    const char *role = json_string_value(json_object_get(q, "role"));
    const char *token = json_string_value(json_object_get(q, "token"));
    if (!json_is_object(q) || json_object_size(q) != 1 || (role == NULL && token == NULL)) {
        rc = vl_status_set(st, VEIL_ERR_BAD_REQUEST, NULL,
                           "the body is {\"role\": NAME} or {\"token\": TOKEN-ID}");
        goto out;
    }
    const struct vl_role *r = NULL;
    char tok_role[VL_NAME_MAX + 1] = "";
    if (token != NULL) {
        /* The token's role says which period applies. */
        json_t *rows = NULL;
        for (size_t i = 0; i < c->policy->nroles && tok_role[0] == '\0'; i++) {
            const struct vl_role *x = &c->policy->roles[i];
            if (!x->dp || role_usage(s, c, x, vl_period_start(x->privacy.period, now_s()),
                                     &rows, st) != VEIL_OK) {
                continue;
            }
            uint64_t e, n;
            usage_of(rows, x->name, token, &e, &n);
            json_decref(rows);
            rows = NULL;
            if (n > 0 || e > 0) {
                snprintf(tok_role, sizeof(tok_role), "%s", x->name);
                r = x;
            }
        }
        if (r == NULL) {
            json_t *o = json_pack("{s:{s:n, s:s, s:i}}", "reset", "role", "token", token,
                                  "tokens", 0);
            rc = dump_out(o, json_out, st);
            goto out;
        }
    } else {
        r = vl_policy_role(c->policy, role);
        if (r == NULL || !r->dp) {
            rc = vl_status_set(st, VEIL_ERR_BAD_REQUEST, "role",
                               "%s is not a role answered under differential privacy in %s",
                               role, c->name);
            goto out;
        }
    }
    size_t n = 0;
    rc = vl_trusted_dp_reset(s->v->trusted, s->tenant_id, c->name,
                             vl_period_start(r->privacy.period, now_s()), r->name, token, &n);
    if (rc != VEIL_OK) {
        rc = vl_status_set(st, rc == VEIL_ERR_STORE_UNAVAILABLE ? rc : VEIL_ERR_INTERNAL, NULL,
                           "the trusted state could not reset the budget");
        goto out;
    }
    vl_log_event(VL_LOG_INFO, "privacy_budget_reset",
                 json_pack("{s:s, s:s, s:s, s:s?}", "tenant", s->tenant, "collection", c->name,
                           "role", r->name, "token", token));
    json_t *o = json_pack("{s:{s:s, s:s?, s:I}}", "reset", "role", r->name, "token", token,
                          "tokens", (json_int_t)n);
    rc = dump_out(o, json_out, st);
out:
    json_decref(q);
    return rc;
}
