"""test_privacy.py: the attacks on aggregate-only roles, and the privacy budget, end to end.

An analyst who may aggregate but not read used to recover every amount of a small group:
a range filter on `amount` and the `suppressed` count of the answer make a yes/no oracle
("is there an invoice of this group at or under v?"), and a binary search does the rest.
The same holds for a researcher and the BMI, weight and height of two patients, and
without any filter at all by differencing (an organisation's total minus its visible
cells is the hidden cell). Each attack here is written as an attacker would write it,
through HTTP only, with the analyst's or researcher's token of the example policies, on
generated data plus planted victims. Against a copy of the policy that says `privacy:
exact` every attack must recover every victim exactly (so the attacks work); against the
policy as shipped (differential privacy by default) no victim value may come out exactly
or within 1%. A lucky estimate can land within 1% by chance, so such an attack is run once
more, independently (budget reset, fresh answers), and fails the claim only if the same
victim comes out within 1% again.

Then: noisy answers must be useful (at least 85 of 100 answers within the error bound the
answer states, and unbiased), the budget must hold under concurrency and restarts and be
shared by the tokens of a role, repeating a query must give the kept answer, and nothing
around a noisy answer (explain, errors, `suppressed`) may carry exact data-dependent
numbers. Imported by run.py (tests named privacy_*).
"""

import atexit
import calendar
import datetime
import json
import os
import re
import subprocess
import threading
import time
from decimal import Decimal

from harness import TOP, Env, check, expect_error, seg
from test_analytics import fmt_units
from test_firsthour import generated
from test_rollback import bulk

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def diag(msg):  # replaced by run.py's diag
    pass


INVOICES_YAML = os.path.join(TOP, "examples", "invoices.yaml")
PATIENTS_YAML = os.path.join(TOP, "examples", "patients.yaml")

# ---------------------------------------------------------------------------------------
# the victims, planted among generated documents (values in units of the field's scale)

# a. one (org_id, status) group of ten invoices, and a group of a single invoice
A10_GROUP = {"org_id": "ORG-0003", "status": "disputed"}
A10_CENTS = [12345, 48790, 97713, 153322, 286415, 412980, 731199, 1184450, 2379925, 3861274]
A1_GROUP = {"org_id": "ORG-0004", "status": "refunded"}
A1_CENTS = 1736482
# b. a (city, diagnosis.code, smoker) group of two patients: (bmi, weight_kg, height_cm)
B_GROUP = {"city": "Texel", "diagnosis.code": "J45", "smoker": True}
B_PATIENTS = [(217, 613, 168), (291, 976, 183)]   # bmi and weight in tenths
# c. a hidden (organisation, status) cell of one invoice, and one of three
C1_CELL = {"org_id": "ORG-0006", "status": "cancelled"}
C1_CENTS = [2468013]
C3_CELL = {"org_id": "ORG-0007", "status": "cancelled"}
C3_CENTS = [311250, 87499, 1502377]

# How many times an attack that came within 1% of a victim is run again, independently,
# before that counts as recovery. A guess lands within 1% of a value by chance now and then,
# whatever protects it: the ten-amount attack ends with ten estimates spread over the range,
# and one of them fell within 1% of its victim in about one run in ten (with the defaults,
# four answers of epsilon 0.25 a day; a victim alone, about one in a hundred). Recovery is
# what repeats: a victim counts as recovered only when it comes out within 1% on the first
# run and on each of the reruns, which luck does in about 1e-5 of test runs. (At ten answers
# of epsilon 1 a day, the old defaults, the patient bisection landed within 1% in 18% of
# runs and exactly in 9%: that is what the budget is for.)
RERUNS = 2

N_INVOICES = 5000     # ten organisations of about 500 invoices each
N_PATIENTS = 600


def planted_invoices():
    out = []
    n = 0
    for group, cents in [(A10_GROUP, A10_CENTS), (A1_GROUP, [A1_CENTS]),
                         (C1_CELL, C1_CENTS), (C3_CELL, C3_CENTS)]:
        for c in cents:
            n += 1
            out.append(("VICTIM-%03d" % n, {
                "invoice_no": "V2025-%06d" % n, "org_id": group["org_id"],
                "status": group["status"], "issued_on": "2025-02-%02d" % (n % 28 + 1),
                "amount": fmt_units(c, 2),
                "customer": {"name": "Victim Holding %d" % n, "iban": "NL02ABNA0123456%03d" % n},
                "notes": "Invoice disputed; waiting for the purchase order number.",
                "internal_ref": "REF-V%d" % n}))
    return out


def planted_patients():
    out = []
    for n, (bmi, weight, height) in enumerate(B_PATIENTS, 1):
        out.append(("VICTIM-P%d" % n, {
            "patient_no": "P99%05d" % n, "name": "Victim Patient %d" % n,
            "birth_date": "1961-0%d-14" % n, "city": B_GROUP["city"], "ward": "internal medicine",
            "admitted_at": "2025-01-1%dT08:30:00+01:00" % n, "weight_kg": fmt_units(weight, 1),
            "height_cm": height, "bmi": fmt_units(bmi, 1),
            "diagnosis": {"code": B_GROUP["diagnosis.code"], "name": "Asthma"},
            "clinical_notes": "Patient reports shortness of breath on exertion.",
            "smoker": B_GROUP["smoker"]}))
    return out


def exact_copy(text, role):
    """The example policy text with `privacy: exact` added to ROLE (flow or block style)."""
    check(not re.search(r"^[^#]*\bprivacy:", text, re.M),
          "the example policy already has a privacy setting")
    lines = text.splitlines()
    for i, ln in enumerate(lines):
        m = re.match(r"^(\s+)%s:\s*(\{.*\})?\s*$" % re.escape(role), ln)
        if not m:
            continue
        if m.group(2):
            lines[i] = ln.rstrip()[:-1].rstrip() + ", privacy: exact }"
        else:
            ind = len(lines[i + 1]) - len(lines[i + 1].lstrip())
            lines.insert(i + 1, " " * ind + "privacy: exact")
        return "\n".join(lines) + "\n"
    raise AssertionError("role %s not found in the example policy" % role)


# ---------------------------------------------------------------------------------------
# the shared environment: tenant acme with the example policies as shipped, tenant exact
# with copies whose analyst and researcher say `privacy: exact`; the same documents in both


class State:
    def __init__(self, veil):
        self.env = Env(veil)
        try:
            self._fill(veil)
        except BaseException:
            self.env.close()
            raise

    def _fill(self, veil):
        e = self.env
        inv = open(INVOICES_YAML, encoding="utf-8").read()
        pat = open(PATIENTS_YAML, encoding="utf-8").read()
        e.apply("acme", pat, name="patients.yaml")
        e.run("tenant", "create", "exact")
        e.token("exact", "admin")
        e.apply("exact", exact_copy(inv, "analyst"), name="exact-invoices.yaml")
        e.apply("exact", exact_copy(pat, "researcher"), name="exact-patients.yaml")
        self.admin = {t: e.tokens[(t, "admin")] for t in ("acme", "exact")}
        self.analyst = {t: e.token(t, "analyst") for t in ("acme", "exact")}
        self.researcher = {t: e.token(t, "researcher") for t in ("acme", "exact")}
        self.srv = e.start()
        invoices = [(d["id"], d["doc"]) for d in
                    map(json.loads, generated(veil, "invoices", N_INVOICES, 9).splitlines())]
        invoices += planted_invoices()
        patients = [(d["id"], d["doc"]) for d in
                    map(json.loads, generated(veil, "patients", N_PATIENTS, 4).splitlines())]
        patients += planted_patients()
        for t in ("acme", "exact"):
            for at in range(0, len(invoices), 1000):
                bulk(self.srv, self.admin[t], "invoices", invoices[at:at + 1000])
            bulk(self.srv, self.admin[t], "patients", patients)

    def alive(self):
        if self.env.server is not None and self.env.server.proc.poll() is not None:
            self.env.server = None
        if self.env.server is None:
            self.srv = self.env.start()

    def policy(self, tenant, coll, token):
        r = self.srv.request("GET", "/v1/collections/" + seg(coll), token=token)
        check(r.status == 200, "GET %s as the attacker: %r" % (coll, r))
        return r.json

    def reset(self, coll, role, tenant="acme"):
        return reset_role(self.srv, self.admin[tenant], coll, role)


def reset_role(srv, admin, coll, role):
    r = srv.request("POST", "/v1/collections/%s/privacy/reset" % seg(coll), token=admin,
                    body={"role": role})
    check(r.status == 200, "admin reset of %s/%s: %r" % (coll, role, r))
    j = r.json
    check(isinstance(j.get("reset"), dict) and j["reset"].get("role") == role,
          "reset answer %r" % j)
    return j


_state = None


def state(ctx):
    global _state
    if _state is None:
        _state = State(ctx.veil)
        atexit.register(_state.env.close)
    _state.alive()
    return _state


# ---------------------------------------------------------------------------------------
# the attacker: HTTP only, its own token, what GET /v1/collections/{c} tells it


class Attacker:
    """Asks aggregates of one collection; finds out from the first answer whether it gets
    exact answers (`suppressed` is a number) or noisy ones (`suppressed` is null), and stops
    at the first 429 privacy_budget_exhausted."""

    def __init__(self, srv, token, policy, refresh=False):
        self.srv = srv
        self.token = token
        self.policy = policy
        self.coll = policy["collection"]
        self.refresh = refresh
        self.queries = 0        # answers received (200)
        self.exhausted = False
        # Free to ask: a role under differential privacy has a budget to show, others 403.
        r = srv.request("GET", "/v1/collections/%s/privacy" % seg(self.coll), token=token)
        self.noisy = True if r.status == 200 else False if r.status == 403 else None

    def ask(self, body):
        if self.exhausted:
            return None
        b = dict(body)
        if self.refresh:
            b["refresh"] = True
        r = self.srv.request("POST", "/v1/collections/%s/aggregate" % seg(self.coll),
                             body=b, token=self.token)
        if r.status == 429 and r.error_code() == "privacy_budget_exhausted":
            self.exhausted = True
            return None
        check(r.status == 200, "attacker's aggregate %s: %r" % (json.dumps(b), r))
        self.queries += 1
        j = r.json
        if self.noisy is None:
            self.noisy = j.get("suppressed") is None
        return j

    # --- fields, as the policy describes them ---
    def scale(self, field):
        f = self.policy["fields"][field]
        return f.get("scale", 0) if f.get("type") == "decimal" else 0

    def domain(self, field):
        """The units an attacker searches: the field's declared bounds, else a wide range."""
        b = self.policy["fields"][field].get("bounds")
        s = self.scale(field)
        if isinstance(b, list) and len(b) == 2:
            lo, hi = (int(Decimal(str(x)) * 10 ** s) for x in b)
            return lo, hi
        return -(10 ** 10), 10 ** 10

    def value(self, field, units):
        return fmt_units(units, self.scale(field)) if self.scale(field) else units

    def units(self, field, v):
        return int(Decimal(str(v)) * 10 ** self.scale(field))

    # --- the oracles ---
    def count_where(self, where, group_by):
        """(kind, n): ("n", exact or noisy count), ("some", None) when the group is hidden
        but exists, ("none", 0), or (None, None) once the budget is gone."""
        if self.noisy:
            j = self.ask({"where": where, "metrics": {"n": {"count": "*"}}})
            if j is None:
                return None, None
            g = j["groups"]
            return ("n", g[0]["n"]) if g else ("none", 0)
        j = self.ask({"where": where, "group_by": group_by, "metrics": {"n": {"count": "*"}}})
        if j is None:
            return None, None
        if j["groups"]:
            return "n", j["groups"][0]["n"]
        if j.get("suppressed") is None:      # answers turned noisy mid-way
            self.noisy = True
            return self.count_where(where, group_by)
        return ("some", None) if j["suppressed"] > 0 else ("none", 0)

    def any_where(self, where, group_by):
        """Is there a document? None once the budget is gone. Noisy: a count of 1 or more."""
        kind, n = self.count_where(where, group_by)
        if kind is None:
            return None
        return kind == "some" or (kind == "n" and n >= 1)


def with_range(where, field, op, v):
    w = dict(where)
    w[field] = dict(w.get(field, {}), **{op: v}) if isinstance(w.get(field), dict) else {op: v}
    return w


def search_min(att, where, group_by, field, lo, hi):
    """The smallest value of FIELD among the documents of WHERE, by bisection on "is there
    one at or under v?" in [lo, hi]. Out of budget: the middle of what is left."""
    a, b = lo - 1, hi          # nothing at or under a; something at or under b
    while b - a > 1:
        m = (a + b) // 2
        yes = att.any_where(with_range(where, field, "lte", att.value(field, m)), group_by)
        if yes is None:
            return (a + 1 + b) // 2
        a, b = (a, m) if yes else (m, b)
    return b


def search_max(att, where, group_by, field, lo, hi):
    a, b = lo, hi + 1          # something at or over a; nothing at or over b
    while b - a > 1:
        m = (a + b) // 2
        yes = att.any_where(with_range(where, field, "gte", att.value(field, m)), group_by)
        if yes is None:
            return (a + b - 1) // 2
        a, b = (m, b) if yes else (a, m)
    return a


def attack_group_amounts(srv, token, policy, group=A10_GROUP, size=len(A10_CENTS),
                         refresh=False):
    """a. Every amount of a group of SIZE invoices, ascending: bisection of the group's
    distribution with counts "at or under v" (a hidden group's count is the group's size
    minus the count over v, which is visible)."""
    att = Attacker(srv, token, policy, refresh)
    gb = sorted(group)
    lo, hi = att.domain("amount")
    known = {lo - 1: 0, hi: size}

    def count_le(v):
        if v in known:
            return known[v]
        kind, n = att.count_where(with_range(group, "amount", "lte", att.value("amount", v)), gb)
        if kind == "some":
            k2, m = att.count_where(with_range(group, "amount", "gt",
                                               att.value("amount", v)), gb)
            if k2 is None:
                return None
            # both sides hidden (a group under twice the minimum size): a guess
            n = size - m if k2 in ("n", "none") else size // 2
        if kind is None:
            return None
        known[v] = n
        return n

    out = []

    def spread(a, b, c):
        out.extend(a + (b - a) * (j + 1) // (c + 1) for j in range(c))

    def solve(a, b, ca, cb):   # ca values at or under a, cb at or under b
        if cb <= ca:
            return
        if b - a == 1:
            out.extend([b] * (cb - ca))
            return
        if att.exhausted:
            spread(a, b, cb - ca)
            return
        m = (a + b) // 2
        cm = count_le(m)
        if cm is None:
            spread(a, b, cb - ca)
            return
        cm = min(max(int(cm), ca), cb)
        solve(a, m, ca, cm)
        solve(m, b, cm, cb)

    solve(lo - 1, hi, 0, size)
    return sorted(out), att


def attack_single_amount(srv, token, policy, group=A1_GROUP, refresh=False):
    """a. The amount of a group's only invoice: bisection on "is it at or under v?"."""
    att = Attacker(srv, token, policy, refresh)
    lo, hi = att.domain("amount")
    return [search_min(att, dict(group), sorted(group), "amount", lo, hi)], att


def attack_patients(srv, token, policy, group=B_GROUP, refresh=False):
    """b. Each of two patients' bmi, weight_kg and height_cm: the lower BMI by bisection on
    "is there one at or under v?", the higher on "at or over v?"; each patient is then singled
    out by a filter on its BMI and its weight and height found the same way. Estimates are in
    the order (bmi, weight, height) of the lower-BMI patient, then of the other."""
    att = Attacker(srv, token, policy, refresh)
    gb = sorted(group)
    where = dict(group)
    blo, bhi = att.domain("bmi")
    b1 = search_min(att, where, gb, "bmi", blo, bhi)
    b2 = search_max(att, where, gb, "bmi", blo, bhi) if not att.exhausted else None
    out = []
    for bmi, op in ((b1, "lte"), (b2, "gte")):
        row = [bmi]
        for f in ("weight_kg", "height_cm"):
            if att.exhausted or bmi is None:
                row.append(None)
                continue
            w = with_range(where, "bmi", op, att.value("bmi", bmi))
            lo, hi = att.domain(f)
            row.append(search_min(att, w, gb, f, lo, hi))
        out.extend(row)
    return out, att


def attack_differencing(srv, token, policy, cells=(C1_CELL, C3_CELL), refresh=False):
    """c. No filter on amounts: an organisation's total minus the sums of its visible
    (organisation, status) cells is the sum of the hidden cell."""
    att = Attacker(srv, token, policy, refresh)
    out = []
    for cell in cells:
        org = {"org_id": cell["org_id"]}
        j = att.ask({"where": org, "metrics": {"s": {"sum": "amount"}}})
        if j is None or not j["groups"]:
            out.append(None)
            continue
        total = att.units("amount", j["groups"][0]["s"])
        j = att.ask({"where": org, "group_by": ["org_id", "status"],
                     "metrics": {"s": {"sum": "amount"}}})
        if j is None:
            out.append(None)
            continue
        seen = sum(att.units("amount", g["s"]) for g in j["groups"]
                   if g["key"].get("status") != cell["status"])
        out.append(total - seen)
    return out, att


def truths():
    """{attack: (the victims' true values in the order its estimates come, what they are)}"""
    ordered = sorted(B_PATIENTS)
    return {
        "a10": (sorted(A10_CENTS), ["amount #%d of %s" % (i + 1, A10_GROUP["status"])
                                    for i in range(len(A10_CENTS))]),
        "a1": ([A1_CENTS], ["the one amount of %s" % A1_GROUP["status"]]),
        "b": ([v for p in ordered for v in p],
              ["patient %d %s" % (i + 1, f) for i in range(2)
               for f in ("bmi", "weight_kg", "height_cm")]),
        "c": ([sum(C1_CENTS), sum(C3_CENTS)], ["hidden cell of 1 invoice (its amount)",
                                               "hidden cell of 3 invoices (their sum)"]),
    }


def run_attacks(st, tenant, refresh=False, only=None):
    """{attack: (estimates, attacker)} for the tenant's analyst and researcher."""
    inv = st.policy(tenant, "invoices", st.analyst[tenant])
    pat = st.policy(tenant, "patients", st.researcher[tenant])
    plan = {
        "a10": (lambda: attack_group_amounts(st.srv, st.analyst[tenant], inv, refresh=refresh),
                "invoices", "analyst"),
        "a1": (lambda: attack_single_amount(st.srv, st.analyst[tenant], inv, refresh=refresh),
               "invoices", "analyst"),
        "b": (lambda: attack_patients(st.srv, st.researcher[tenant], pat, refresh=refresh),
              "patients", "researcher"),
        "c": (lambda: attack_differencing(st.srv, st.analyst[tenant], inv, refresh=refresh),
              "invoices", "analyst"),
    }
    out = {}
    for name, (fn, coll, role) in plan.items():
        if only is not None and name not in only:
            continue
        if tenant == "acme":
            st.reset(coll, role)         # each attack starts with a whole budget
        out[name] = fn()
    return out


def within(est, true, frac):
    return est is not None and abs(est - true) <= frac * abs(true)


def describe(name, est, att, true):
    errs = ["-" if e is None else "%+.2f%%" % (100.0 * (e - t) / t) for e, t in zip(est, true)]
    return "%s: %d answers%s, errors %s" % (name, att.queries,
                                           " then 429" if att.exhausted else "",
                                           " ".join(errs))


# ---------------------------------------------------------------------------------------
# 1. the attacks


@test
def privacy_attacks_recover_exact_answers(ctx):
    """Sanity: with `privacy: exact`, every attack recovers every victim exactly."""
    st = state(ctx)
    want = truths()
    got = run_attacks(st, "exact")
    bad = []
    for name, (est, att) in got.items():
        true, what = want[name]
        diag(describe(name, est, att, true))
        check(att.noisy is False, "%s: the exact policy gave noisy answers" % name)
        check(not att.exhausted, "%s: the exact policy ran out of budget" % name)
        for e, t, w in zip(est, true, what):
            if e != t:
                bad.append("%s: %s estimated %r, is %r" % (name, w, e, t))
    check(not bad, "the attacks do not work, so they prove nothing:\n" + "\n".join(bad))


@test
def privacy_attacks_fail_under_dp(ctx):
    """The claim: as shipped, no victim value comes out exactly or within 1%."""
    st = state(ctx)
    want = truths()
    got = run_attacks(st, "acme")
    near = {}
    for name, (est, att) in got.items():
        true, what = want[name]
        diag(describe(name, est, att, true))
        check(att.noisy is True, "%s: the shipped policy gave exact answers" % name)
        check(att.queries <= 10, "%s: %d answers on a budget of 10" % (name, att.queries))
        check(len(est) == len(true), "%s: %d estimates for %d victims" % (name, len(est),
                                                                      len(true)))
        hits = [i for i, (e, t) in enumerate(zip(est, true)) if within(e, t, 0.01)]
        if hits:
            near[name] = hits
    for run in range(RERUNS):
        if not near:
            break
        diag("within 1%% on run %d: %s; running those attacks again" % (run + 1, ", ".join(
            "%s %s" % (n, [want[n][1][i] for i in h]) for n, h in sorted(near.items()))))
        again = run_attacks(st, "acme", refresh=True, only=set(near))
        still = {}
        for name, hits in sorted(near.items()):
            est, att = again[name]
            true, what = want[name]
            diag("again " + describe(name, est, att, true))
            hits = [i for i in hits if within(est[i], true[i], 0.01)]
            if hits:
                still[name] = hits
        near = still
    bad = ["%s: %s came out within 1%% on every one of %d runs" % (n, want[n][1][i], RERUNS + 1)
           for n, h in sorted(near.items()) for i in h]
    check(not bad, "victims recovered under differential privacy:\n" + "\n".join(bad))


# ---------------------------------------------------------------------------------------
# 2. utility: noisy answers about groups of hundreds of documents are near the truth


def agg(srv, token, coll, body):
    return srv.request("POST", "/v1/collections/%s/aggregate" % seg(coll), body=body,
                       token=token)


def answer(r, what):
    check(r.status == 200, "%s: %r" % (what, r))
    j = r.json
    check(isinstance(j.get("groups"), list), "%s: answer %r" % (what, j))
    return j


def privacy_of(j, what):
    p = j.get("privacy")
    check(isinstance(p, dict), "%s: a noisy answer without its privacy object: %r" % (what, j))
    check(j.get("suppressed", 0) is None, "%s: suppressed is %r, not null" %
          (what, j.get("suppressed")))
    return p


@test
def privacy_noisy_answers_are_useful(ctx):
    st = state(ctx)
    adm, an = st.admin["acme"], st.analyst["acme"]
    metrics = {"n": {"count": "*"}, "total": {"sum": "amount"}, "mean": {"avg": "amount"}}
    truth = answer(agg(st.srv, adm, "invoices", {"group_by": ["org_id"], "metrics": metrics}),
                   "admin totals")
    big = [g for g in truth["groups"] if 400 <= g["n"] <= 600]
    check(big, "no organisation of 400 to 600 invoices: %r" % [g["n"] for g in truth["groups"]])
    g0 = big[0]
    n_true, t_true, m_true = g0["n"], Decimal(g0["total"]), Decimal(str(g0["mean"]))
    body = {"where": {"org_id": g0["key"]["org_id"]}, "metrics": metrics, "refresh": True}
    errs = {"n": [], "total": [], "mean": []}
    inside = {"n": 0, "total": 0, "mean": 0}
    e95 = {}
    for i in range(100):
        if i % 4 == 0:  # the default budget (1) pays for four answers of 0.25
            st.reset("invoices", "analyst")
        j = answer(agg(st.srv, an, "invoices", body), "noisy answer %d" % i)
        p = privacy_of(j, "noisy answer %d" % i)
        check(p.get("cached") is False, "answer %d with refresh is a kept one: %r" % (i, p))
        check(len(j["groups"]) == 1, "answer %d: %r" % (i, j["groups"]))
        g = j["groups"][0]
        noise = p.get("noise", {})
        e95 = {k: float(noise[k]["error95"]) for k in ("n", "total", "mean")}
        # an average's bound is stated for a group of `threshold` documents (one without
        # group_by) and shrinks as the group grows
        t = p.get("threshold")
        e95["mean"] = e95["mean"] * (t if isinstance(t, int) and t > 0 else 1) / n_true
        got = {"n": g["n"] - n_true, "total": float(Decimal(str(g["total"])) - t_true),
               "mean": float(Decimal(str(g["mean"])) - m_true)}
        for k, e in got.items():
            errs[k].append(e)
            if abs(e) <= e95[k]:
                inside[k] += 1
    bad = []
    for k in ("n", "total", "mean"):
        mean_err = sum(errs[k]) / len(errs[k])
        diag("%s: %d of 100 within the stated error95 %.6g, mean error %+.4g (%.1f%% of it)"
             % (k, inside[k], e95[k], mean_err, 100 * mean_err / e95[k] if e95[k] else 0))
        if inside[k] < 85:
            bad.append("%s: only %d of 100 answers within the stated error95" % (k, inside[k]))
        if abs(mean_err) > 0.25 * e95[k]:
            bad.append("%s: mean error %+.6g against error95 %.6g (biased)" %
                       (k, mean_err, e95[k]))
        if e95[k] <= 0:
            bad.append("%s: error95 %r" % (k, e95[k]))
    check(not bad, "noisy answers on %d invoices:\n%s" % (n_true, "\n".join(bad)))


# ---------------------------------------------------------------------------------------
# 3. the budget (its own data directory and a test policy)

LEDGER = """collection: ledger
fields:
  org:    { type: string,  protect: [eq] }
  amount: { type: integer, protect: [sum, range], bounds: [0, 1000] }
roles:
  clerk: { read: ["*"], write: true }
  analyst:
    aggregate: [amount]
    group_by: [org]
    min_group_size: 5
    privacy: { epsilon: 1, budget: 10, role_budget: 100 }
  pair:
    aggregate: [amount]
    group_by: [org]
    privacy: { epsilon: 1, budget: 10, role_budget: 15 }
"""

BIG = """collection: big
fields:
  k: { type: string,  protect: [eq] }
  n: { type: integer, protect: [sum, range], bounds: [0, 4611686018427387904] }
roles:
  counter: { aggregate: [n], group_by: [k], privacy: { budget: 10 } }
"""

LEDGER_ORGS = {"a": 37, "b": 53, "c": 7, "d": 61, "e": 42}


class BudgetState:
    def __init__(self, veil):
        self.env = Env(veil, LEDGER)
        try:
            self._fill()
        except BaseException:
            self.env.close()
            raise

    def _fill(self):
        e = self.env
        e.apply("acme", BIG, name="big.yaml")
        self.admin = e.tokens[("acme", "admin")]
        self.srv = e.start()
        docs, n = [], 0
        for org, count in sorted(LEDGER_ORGS.items()):
            for i in range(count):
                n += 1
                docs.append(("L%04d" % n, {"org": org, "amount": (n * 37) % 1001}))
        bulk(self.srv, self.admin, "ledger", docs)
        big = [("B%d" % i, {"k": "over", "n": 4611686018427387904}) for i in range(3)]
        big += [("F%d" % i, {"k": "fine", "n": 1000 + i}) for i in range(3)]
        bulk(self.srv, self.admin, "big", big)

    def alive(self):
        if self.env.server is not None and self.env.server.proc.poll() is not None:
            self.env.server = None
        if self.env.server is None:
            self.srv = self.env.start()

    def token(self, role):
        return self.env.token("acme", role)

    def agg(self, token, body, coll="ledger"):
        return agg(self.srv, token, coll, body)

    def privacy(self, token, coll="ledger"):
        r = self.srv.request("GET", "/v1/collections/%s/privacy" % seg(coll), token=token)
        check(r.status == 200, "GET privacy: %r" % r)
        return r.json

    def reset(self, role, coll="ledger"):
        return reset_role(self.srv, self.admin, coll, role)


_bstate = None


def bstate(ctx):
    global _bstate
    if _bstate is None:
        _bstate = BudgetState(ctx.veil)
        atexit.register(_bstate.env.close)
    _bstate.alive()
    return _bstate


def count_body(i):
    """A different query for each i."""
    return {"where": {"amount": {"gte": i}}, "metrics": {"n": {"count": "*"}}}


def concurrently(fns):
    out = [None] * len(fns)
    go = threading.Barrier(len(fns))

    def run(k):
        go.wait()
        try:
            out[k] = fns[k]()
        except Exception as e:  # noqa: BLE001 - reported by the caller
            out[k] = e

    ts = [threading.Thread(target=run, args=(k,)) for k in range(len(fns))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    for k, o in enumerate(out):
        check(not isinstance(o, Exception) and o is not None, "request %d: %r" % (k, o))
    return out


def period_end(p):
    end = p["period"]["end"]
    return calendar.timegm(datetime.datetime.strptime(end, "%Y-%m-%dT%H:%M:%SZ").timetuple())


def expect_exhausted(r, what, end=None):
    expect_error(r, 429, "privacy_budget_exhausted", what)
    ra = r.header("Retry-After")
    check(ra is not None and ra.isdigit() and int(ra) > 0, "%s: Retry-After %r" % (what, ra))
    if end is not None:
        left = end - time.time()
        check(abs(int(ra) - left) <= 120,
              "%s: Retry-After %s, the period ends in %d s" % (what, ra, left))


def budgets(j, what):
    b = j.get("budgets")
    check(isinstance(b, dict) and isinstance(b.get("token"), dict) and
          isinstance(b.get("role"), dict), "%s: GET privacy %r" % (what, j))
    return b["token"], b["role"]


@test
def privacy_budget_holds_under_concurrency(ctx):
    bs = bstate(ctx)
    bs.reset("analyst")
    a = bs.token("analyst")
    end = period_end(bs.privacy(a))
    rs = concurrently([lambda i=i: bs.agg(a, count_body(i)) for i in range(40)])
    fresh = [r for r in rs if r.status == 200 and r.json.get("privacy", {}).get("cached") is False]
    other = [r for r in rs if r.status == 200 and r not in fresh]
    refused = [r for r in rs if r.status == 429]
    diag("40 different queries at once, budget for 10: %d answered, %d refused, %d other"
         % (len(fresh), len(refused), len(rs) - len(fresh) - len(refused)))
    check(not other, "kept answers to queries never asked: %r" % other[:2])
    check(len(fresh) == 10 and len(refused) == 30,
          "want 10 answers and 30 refusals, got %d and %d: %r" %
          (len(fresh), len(refused), [r for r in rs if r.status not in (200, 429)][:3]))
    for r in refused:
        expect_exhausted(r, "a query over the budget", end)
    tok, role = budgets(bs.privacy(a), "after 40 queries")
    check(tok.get("spent") == 10 and tok.get("answers") == 10 and tok.get("left") == 0,
          "the token's budget after 10 answers: %r" % tok)
    check(role.get("spent") == 10 and role.get("left") == 90, "the role's budget: %r" % role)
    # 20 identical new queries at once, from another token: answered once, spent once
    b = bs.token("analyst")
    q = {"where": {"org": "a"}, "group_by": ["org"],
         "metrics": {"n": {"count": "*"}, "s": {"sum": "amount"}}}
    rs = concurrently([lambda: bs.agg(b, q) for _ in range(20)])
    check(all(r.status == 200 for r in rs), "identical queries: %r" %
          [r for r in rs if r.status != 200][:3])
    groups = {json.dumps(r.json["groups"], sort_keys=True) for r in rs}
    check(len(groups) == 1, "20 identical queries got %d different answers" % len(groups))
    cached = sorted(r.json["privacy"].get("cached") for r in rs)
    check(cached.count(False) == 1, "identical queries at once: cached flags %r" % cached)
    tok, role = budgets(bs.privacy(b), "after 20 identical queries")
    check(tok.get("spent") == 1 and tok.get("answers") == 1,
          "20 identical queries spent %r" % tok)
    check(role.get("spent") == 11, "the role after 11 answers: %r" % role)


@test
def privacy_budget_survives_restart(ctx):
    bs = bstate(ctx)
    bs.reset("analyst")
    t = bs.token("analyst")
    kept = {}
    for i in range(100, 110):
        kept[i] = answer(bs.agg(t, count_body(i)), "answer %d" % i)
    end = period_end(bs.privacy(t))
    expect_exhausted(bs.agg(t, count_body(110)), "the 11th answer", end)
    bs.env.stop()
    bs.srv = bs.env.start()
    tok, _ = budgets(bs.privacy(t), "after a restart")
    check(tok.get("spent") == 10 and tok.get("left") == 0,
          "a restart gave budget back: %r" % tok)
    j = answer(bs.agg(t, count_body(103)), "a kept answer after the restart")
    check(j["groups"] == kept[103]["groups"], "the kept answer changed over a restart: %r vs %r"
          % (j["groups"], kept[103]["groups"]))
    check(j["privacy"].get("cached") is True, "a kept answer not marked cached: %r"
          % j["privacy"])
    expect_exhausted(bs.agg(t, count_body(111)), "a new query after the restart", end)


@test
def privacy_budget_shared_by_role_and_reset(ctx):
    bs = bstate(ctx)
    bs.reset("pair")
    p1, p2 = bs.token("pair"), bs.token("pair")
    for i in range(10):
        answer(bs.agg(p1, count_body(200 + i)), "first token, answer %d" % i)
    expect_exhausted(bs.agg(p1, count_body(210)), "first token over its budget")
    for i in range(5):
        answer(bs.agg(p2, count_body(220 + i)), "second token, answer %d" % i)
    expect_exhausted(bs.agg(p2, count_body(225)), "second token over the role's budget")
    tok, role = budgets(bs.privacy(p2), "pair")
    check(tok.get("spent") == 5 and role.get("spent") == 15 and role.get("left") == 0,
          "two tokens of one role: token %r, role %r" % (tok, role))
    j = bs.privacy(bs.admin)
    roles = {r.get("role"): r for r in j.get("roles", [])}
    check("pair" in roles and roles["pair"].get("spent") == 15 and
          sorted(x.get("spent") for x in roles["pair"].get("tokens", [])
                 if x.get("spent")) == [5, 10],
          "admin's view of the budgets: %r" % j)
    # only admin resets; a role not under differential privacy has no budget to show
    for who, tok_ in (("a pair token", p1), ("an analyst token", bs.token("analyst")),
                      ("a clerk token", bs.token("clerk"))):
        r = bs.srv.request("POST", "/v1/collections/ledger/privacy/reset", token=tok_,
                           body={"role": "pair"})
        expect_error(r, 403, "forbidden", "reset by %s" % who)
    expect_error(bs.srv.request("GET", "/v1/collections/ledger/privacy",
                                token=bs.token("clerk")), 403, "forbidden", "clerk's budget")
    expect_exhausted(bs.agg(p1, count_body(226)), "after refused resets")
    j = bs.reset("pair")
    check(j["reset"].get("tokens", 0) >= 2, "reset of the role: %r" % j)
    answer(bs.agg(p1, count_body(227)), "first token after the reset")
    answer(bs.agg(p2, count_body(228)), "second token after the reset")
    tok, role = budgets(bs.privacy(p1), "after the reset")
    check(tok.get("spent") == 1 and role.get("spent") == 2, "after the reset: %r %r"
          % (tok, role))
    r = bs.srv.request("POST", "/v1/collections/ledger/privacy/reset", token=bs.admin,
                       body={"token": tok.get("id")})
    check(r.status == 200, "reset of one token: %r" % r)
    tok, role = budgets(bs.privacy(p1), "after the token's reset")
    check(tok.get("spent") == 0, "a token reset left %r" % tok)


@test
def privacy_repeated_query_same_answer(ctx):
    bs = bstate(ctx)
    bs.reset("analyst")
    f1, f2 = bs.token("analyst"), bs.token("analyst")
    q = {"where": {"org": {"in": ["a", "b", "d"]}, "amount": {"gte": 10, "lte": 990}},
         "group_by": ["org"],
         "metrics": {"n": {"count": "*"}, "s": {"sum": "amount"}, "m": {"avg": "amount"}}}
    q2 = {"metrics": {"m": {"avg": "amount"}, "s": {"sum": "amount"}, "n": {"count": "*"}},
          "group_by": ["org"],
          "where": {"amount": {"lte": 990, "gte": 10}, "org": {"in": ["a", "b", "d"]}}}
    first = answer(bs.agg(f1, q), "first")
    check(first["privacy"].get("cached") is False, "a new query came cached: %r" % first)
    for who, tok, body in (("again", f1, q), ("keys in another order", f2, q2),
                           ("with explain", f2, dict(q, explain=True))):
        j = answer(bs.agg(tok, body), who)
        check(j["groups"] == first["groups"],
              "%s: a repeated query got another answer (noise can be averaged away): "
              "%r vs %r" % (who, j["groups"], first["groups"]))
        p = j["privacy"]
        check(p.get("cached") is True and p.get("spent", {}).get("epsilon") == 0,
              "%s: %r" % (who, p))
    tok, _ = budgets(bs.privacy(f1), "f1")
    check(tok.get("spent") == 1, "the first token spent %r for one answer" % tok)
    tok, _ = budgets(bs.privacy(f2), "f2")
    check(tok.get("spent") == 0, "kept answers spent budget: %r" % tok)


# ---------------------------------------------------------------------------------------
# 4. what surrounds a noisy answer


@test
def privacy_no_leaks_around_the_answer(ctx):
    bs = bstate(ctx)
    bs.reset("analyst")
    bs.reset("counter", coll="big")
    t = bs.token("analyst")
    base = {"group_by": ["org"], "metrics": {"n": {"count": "*"}, "s": {"sum": "amount"}},
            "explain": True}
    # the same query shape on data of other sizes: 2 groups and 90 documents, 1 and 7
    e1 = answer(bs.agg(t, dict(base, where={"org": {"in": ["a", "b"]}})), "explain 1")
    e2 = answer(bs.agg(t, dict(base, where={"org": {"in": ["c", "nobody"]}})), "explain 2")
    for j, what in ((e1, "explain 1"), (e2, "explain 2")):
        privacy_of(j, what)
        check(isinstance(j.get("explain"), dict), "%s: no explain object: %r" % (what, j))
    x1 = json.dumps(e1["explain"], sort_keys=True)
    x2 = json.dumps(e2["explain"], sort_keys=True)
    check(not re.search(r"(?<![\w.])90(?![\w.])", x1),
          "explain carries the number of documents (90): %s" % x1)
    check(x1 == x2, "explain differs with the data behind the answer (numbers of groups, "
          "runs or documents):\n%s\n%s" % (x1, x2))
    # errors do not depend on the data: a sum past 64 bits is no error for a noisy role
    r = bs.agg(bs.admin, {"where": {"k": "over"}, "metrics": {"s": {"sum": "n"}}}, coll="big")
    check(r.status == 400, "the exact sum of 'over' should not fit 64 bits: %r" % r)
    c = bs.token("counter")
    for body, what in (({"where": {"k": "over"}, "metrics": {"s": {"sum": "n"}}}, "over"),
                       ({"where": {"k": "fine"}, "metrics": {"s": {"sum": "n"}}}, "fine"),
                       ({"group_by": ["k"], "metrics": {"s": {"sum": "n"}}}, "grouped"),
                       ({"where": {"k": "over"}, "metrics": {"m": {"avg": "n"}}}, "avg"),
                       ({"where": {"k": "nobody"}, "metrics": {"s": {"sum": "n"}}}, "none")):
        j = answer(bs.agg(c, body, coll="big"), "a noisy sum (%s)" % what)
        privacy_of(j, what)
        if "where" in body:
            check(len(j["groups"]) == 1, "%s: without group_by one group is released: %r"
                  % (what, j))
    # an empty selection looks like any other: every metric a number, never null
    shapes = {}
    body = {"metrics": {"n": {"count": "*"}, "c": {"count": "n"}, "s": {"sum": "n"},
                        "m": {"avg": "n"}}}
    for k in ("fine", "nobody"):
        j = answer(bs.agg(c, dict(body, where={"k": k}), coll="big"), "metrics of %s" % k)
        g = j["groups"][0]
        shapes[k] = sorted(g)
        check(all(g[m] is not None for m in body["metrics"]),
              "%s: a metric is null (an average is mid + A / max(C, 1), clamped to the "
              "bounds, always a number): %r" % (k, g))
        check(g["n"] >= 0 and g["c"] >= 0, "%s: a negative noisy count: %r" % (k, g))
    check(shapes["fine"] == shapes["nobody"], "the answer's shape shows emptiness: %r" % shapes)


@test
def privacy_cli_show_and_reset(ctx):
    """veil privacy show / reset over HTTP: what the token sees, the admin's reset, usage
    errors, and no token echoed."""
    bs = bstate(ctx)
    bs.reset("analyst")
    t = bs.token("analyst")
    answer(bs.agg(t, {"metrics": {"n": {"count": "*"}}, "where": {"org": "cli"},
                      "refresh": True}), "an answer to show")
    env = dict(os.environ, VEIL_ADDR=bs.srv.url(), VEIL_TOKEN=t)
    env.pop("VEIL_DATA", None)

    def veil(*args, token=t):
        return subprocess.run([ctx.veil] + list(args), capture_output=True, text=True,
                              env=dict(env, VEIL_TOKEN=token), timeout=60)

    p = veil("privacy", "show", "ledger")
    check(p.returncode == 0, "veil privacy show: %d %s" % (p.returncode, p.stderr[-300:]))
    shown = json.loads(p.stdout)
    check(shown["budgets"]["token"]["spent"] == 1 and shown["role"] == "analyst",
          "veil privacy show printed %r" % shown)
    p = veil("privacy", "reset", "ledger", "--role", "analyst")
    check(p.returncode == 1 and "forbidden" in p.stderr, "a non-admin reset: %r" % p)
    check(t not in p.stderr and t not in p.stdout, "the CLI echoed a token")
    p = veil("privacy", "reset", "ledger", "--role", "analyst", token=bs.admin)
    check(p.returncode == 0 and json.loads(p.stdout)["reset"]["role"] == "analyst",
          "veil privacy reset: %r" % p)
    check(bs.privacy(t)["budgets"]["token"]["spent"] == 0, "the reset did not reset")
    for args in (["privacy"], ["privacy", "show"], ["privacy", "reset", "ledger"],
                 ["privacy", "reset", "ledger", "--everyone", "x"]):
        p = veil(*args)
        check(p.returncode == 2, "%s exited %d, not 2 (usage)" % (" ".join(args), p.returncode))
    p = veil("privacy", "--help")
    check(p.returncode == 0 and "veil privacy show" in p.stdout, "privacy --help: %r" % p)


CLAMP = """collection: clamped
fields:
  v: { type: integer, protect: [sum], bounds: [0, 100], out_of_bounds: clamp }
  w: { type: integer, protect: [sum], bounds: [0, 100] }
roles:
  clerk: { read: ["*"], write: true }
"""


@test
def privacy_bounds_clamp_and_reject(ctx):
    """out_of_bounds: clamp keeps the document as written and sums the nearest bound;
    reject (the default) refuses the write, naming the bounds and not the value."""
    env = Env(ctx.veil, CLAMP)
    try:
        clerk, admin = env.token("acme", "clerk"), env.tokens[("acme", "admin")]
        srv = env.start()
        for did, v in (("c1", 5000), ("c2", -7), ("c3", 40)):
            r = srv.request("PUT", "/v1/collections/clamped/docs/%s" % did, body={"v": v},
                            token=clerk)
            check(r.status == 201, "put %s: %r" % (did, r))
        r = srv.request("GET", "/v1/collections/clamped/docs/c1", token=clerk)
        check(r.status == 200 and r.json["doc"]["v"] == 5000, "c1 as written: %r" % r)
        r = srv.request("POST", "/v1/collections/clamped/aggregate", token=admin,
                        body={"metrics": {"s": {"sum": "v"}}})
        check(r.status == 200 and r.json["groups"][0]["s"] == 100 + 0 + 40,
              "the clamped sum (100 + 0 + 40): %r" % r)
        r = srv.request("PUT", "/v1/collections/clamped/docs/w1", body={"w": 987654},
                        token=clerk)
        expect_error(r, 400, "invalid_document", "a value outside reject bounds")
        check(r.json["error"].get("field") == "w" and "987654" not in r.json["error"]["message"]
              and "[0, 100]" in r.json["error"]["message"], "the refusal: %r" % r.json)
        env.stop()
    finally:
        env.close()


@test
def privacy_servers_stop_cleanly(ctx):
    """The servers of these tests exit 0 with no sanitizer report after all of the above."""
    stopped = 0
    for s in (_state, _bstate):
        if s is not None and s.env.server is not None:
            s.env.stop()
            stopped += 1
    diag("%d server(s) stopped cleanly" % stopped)
