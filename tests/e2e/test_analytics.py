"""test_analytics.py: end-to-end property tests of range filters and aggregates.

Imported by run.py; its @test functions run in the same TAP stream (all are named
analytics_*, so `run.py -k analytics` runs only them). They share one data directory of their
own (not run.py's), with two policies written here so that the types are under control:

    ledger   acct, region, kind (eq); qty (integer, sum+range); price (decimal(2),
             sum+range); day (date, range); at (datetime, range); big (integer, sum)
    pledger  region (eq); amt (decimal(3), Paillier sum + range); units (integer, Paillier)

Documents come from random.Random(1234): negative numbers, zero, int64 extremes,
decimals written with fewer digits than the scale or as JSON numbers, dates around leap days
and at 0001-01-01 / 9999-12-31, datetimes with offsets, documents lacking fields, explicit
nulls. Every answer is compared with a plaintext computation of the same question in
Python (exact integers and decimals; datetimes as microseconds since the epoch in UTC).
"""

import atexit
import datetime
import http.client
import json
import os
import random
import re
import sqlite3
import struct
import subprocess
import threading
import time
from fractions import Fraction

from harness import Env, Failure, check, doc_path, expect_error, seg

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def diag(msg):  # replaced by run.py's diag, which prints "# msg" after the test's line
    pass


INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
EPOCH_ORD = datetime.date(1970, 1, 1).toordinal()
DAY_MIN = datetime.date(1, 1, 1).toordinal() - EPOCH_ORD       # 0001-01-01
DAY_MAX = datetime.date(9999, 12, 31).toordinal() - EPOCH_ORD   # 9999-12-31
USEC_DAY = 86400 * 10 ** 6
USEC_MIN = DAY_MIN * USEC_DAY
USEC_MAX = (DAY_MAX + 1) * USEC_DAY - 1

LEDGER = """collection: ledger
fields:
  acct:   { type: string,   protect: [eq] }
  region: { type: string,   protect: [eq] }
  kind:   { type: string,   protect: [eq] }
  qty:    { type: integer,  protect: [sum, range] }
  price:  { type: decimal,  scale: 2, protect: [sum, range] }
  day:    { type: date,     protect: [range] }
  at:     { type: datetime, protect: [range] }
  big:    { type: integer,  protect: [sum] }
  note:   { type: string }
roles:
  analyst: { aggregate: [qty, price], group_by: [region, kind], min_group_size: 3, privacy: exact }
  reader:  { read: ["*"] }
"""

PLEDGER = """collection: pledger
fields:
  region: { type: string,  protect: [eq] }
  amt:    { type: decimal, scale: 3, protect: [sum, range], sum: { scheme: paillier, bits: 2048 } }
  units:  { type: integer, protect: [sum], sum: { scheme: paillier, bits: 2048 } }
roles:
  analyst: { aggregate: [amt, units], group_by: [region], min_group_size: 2, privacy: exact }
"""

# field -> (kind, scale); kind: str (eq strings), int, dec, day, at
LFIELDS = {"acct": ("str", 0), "region": ("str", 0), "kind": ("str", 0), "qty": ("int", 0),
           "price": ("dec", 2), "day": ("day", 0), "at": ("at", 0), "big": ("int", 0)}
PFIELDS = {"region": ("str", 0), "amt": ("dec", 3), "units": ("int", 0)}
RANGE_FIELDS = ["qty", "price", "day", "at"]
EQ_FIELDS = ["acct", "region", "kind"]
REGIONS = ["eu", "us", "apac", "latam", "Zürich"]
KINDS = ["buy", "sell", "fee", ""]
ACCTS = ["A%02d" % i for i in range(14)] + ["ünï-çødé"]
CANARY_QTY = 7777777
CANARY_PRICE = "31337.42"


# ---------------------------------------------------------------------------------------
# values: each generator returns (JSON value as written, normalized value)
#   int: the integer; dec: units of 10^-scale; day: days since 1970-01-01;
#   at: microseconds since 1970-01-01T00:00:00Z


def fmt_units(u, scale):
    sign = "-" if u < 0 else ""
    a = abs(u)
    if scale == 0:
        return sign + str(a)
    return "%s%d.%0*d" % (sign, a // 10 ** scale, scale, a % 10 ** scale)


def dec_json(rng, u, scale):
    """Units u of a decimal(scale), written in one of the ways a client may write it."""
    r = rng.random()
    p = 10 ** scale
    if u % p == 0 and r < 0.3:
        return u // p if r < 0.12 else str(u // p)           # 5 or "5"
    if u == 0 and r < 0.4:
        return "-0"
    if u % (p // 10) == 0 and r < 0.5:                     # "5.5" for 5.50
        return fmt_units(u // (p // 10), 1)
    if abs(u) < 10 ** 12 and r < 0.65:
        return float(fmt_units(u, scale))                 # a JSON number, e.g. 12.34
    if r < 0.75:
        return fmt_units(u, scale) + "0"                  # "5.500": more digits than the scale
    return fmt_units(u, scale)


def day_text(d):
    return datetime.date.fromordinal(d + EPOCH_ORD).isoformat()


def at_text(rng, usec, off_min=None, digits=None, lower=False):
    """An RFC 3339 text of the instant usec with an offset of off_min minutes (random
    when None, among those that keep the local date within years 1..9999)."""
    offs = [0, 0, 60, -60, 330, -480, 840, -720, 1439, -1439, 345, -210]
    if off_min is None:
        ok_offs = [o for o in offs if USEC_MIN <= usec + o * 60 * 10 ** 6 <= USEC_MAX]
        off_min = rng.choice(ok_offs)
    local = usec + off_min * 60 * 10 ** 6
    days, rem = divmod(local, USEC_DAY)
    secs, frac = divmod(rem, 10 ** 6)
    h, mi, s = secs // 3600, secs // 60 % 60, secs % 60
    if digits is None:
        need = 0
        f = frac
        if f:
            need = 6
            while need > 0 and f % 10 == 0:
                f //= 10
                need -= 1
        digits = rng.randint(need, 6) if rng.random() < 0.5 else need
    t = "T"
    if lower:
        t = "t"
    text = "%s%s%02d:%02d:%02d" % (day_text(days), t, h, mi, s)
    if digits:
        text += "." + ("%06d" % frac)[:digits]
    if off_min == 0 and rng.random() < 0.6:
        text += "z" if lower else "Z"
    else:
        sign = "-" if off_min < 0 or (off_min == 0 and rng.random() < 0.2) else "+"
        text += "%s%02d:%02d" % (sign, abs(off_min) // 60, abs(off_min) % 60)
    return text


def gen_qty(rng):
    r = rng.random()
    if r < 0.1:
        q = 0
    elif r < 0.65:
        q = rng.randint(-1000, 1000)
    elif r < 0.9:
        q = rng.randint(-10 ** 6, 10 ** 6)
    else:
        q = rng.randint(-10 ** 12, 10 ** 12)
    return q, q


def gen_price(rng):
    r = rng.random()
    if r < 0.08:
        u = 0
    elif r < 0.7:
        u = rng.randint(-100000, 100000)
    elif r < 0.85:
        u = rng.randint(-10, 10) * 100 + rng.choice([0, 50])   # 5, 5.5
    else:
        u = rng.randint(-10 ** 14, 10 ** 14)
    return dec_json(rng, u, 2), u


LEAP_DAYS = [(2024, 2, 28), (2024, 2, 29), (2024, 3, 1), (2000, 2, 29), (2000, 3, 1),
             (1900, 2, 28), (1900, 3, 1), (2023, 2, 28), (2023, 3, 1), (1970, 1, 1),
             (1969, 12, 31), (1600, 2, 29), (2100, 2, 28), (2100, 3, 1)]


def gen_day(rng):
    r = rng.random()
    if r < 0.4:
        d = datetime.date(*rng.choice(LEAP_DAYS)).toordinal() - EPOCH_ORD
    elif r < 0.47:
        d = rng.choice([DAY_MIN, DAY_MAX, DAY_MIN + 1, DAY_MAX - 1])
    else:
        d = rng.randint(datetime.date(1890, 1, 1).toordinal(),
                        datetime.date(2110, 1, 1).toordinal()) - EPOCH_ORD
    return day_text(d), d


LEAP_INSTANT = (datetime.date(2024, 2, 29).toordinal() - EPOCH_ORD) * USEC_DAY


def gen_at(rng):
    r = rng.random()
    if r < 0.35:   # around 2024-02-29, whole minutes: many equal instants, other offsets
        u = LEAP_INSTANT + rng.randint(-36, 60) * 3600 * 10 ** 6
    elif r < 0.42:
        u = rng.choice([USEC_MIN, USEC_MAX, USEC_MIN + 1, USEC_MAX - 1, 0, -1])
    else:
        u = rng.randint(-2 * 10 ** 15, 4 * 10 ** 15)   # 1906 .. 2096
        if rng.random() < 0.5:
            u -= u % 10 ** 6
    return at_text(rng, u, lower=rng.random() < 0.05), u


def gen_ledger(rng):
    """{id: JSON doc} and {id: normalized doc} of the ledger collection."""
    docs, norm = {}, {}

    def add(did, d, n):
        docs[did] = d
        norm[did] = n

    for i in range(400):
        d, n = {}, {}
        d["acct"] = n["acct"] = rng.choice(ACCTS)
        for f, pool in (("region", REGIONS), ("kind", KINDS)):
            r = rng.random()
            if r < 0.07:
                continue
            if r < 0.09:
                d[f] = None
                continue
            d[f] = n[f] = rng.choice(pool)
        for f, g in (("qty", gen_qty), ("price", gen_price), ("day", gen_day), ("at", gen_at)):
            r = rng.random()
            if r < 0.08:
                continue
            if r < 0.1:
                d[f] = None
                continue
            d[f], n[f] = g(rng)
        if rng.random() < 0.3:
            d["note"] = "n%d" % i
        add("L%03d" % i, d, n)
    # int64 extremes of qty, in region edge: they cancel out in pairs (sum -2 overall)
    for k, q in enumerate([INT64_MAX, INT64_MIN, INT64_MAX - 1, INT64_MIN + 1]):
        d = {"acct": "edge-%d" % k, "region": "edge", "kind": KINDS[k % 3], "qty": q,
             "price": "0.01"}
        add("E%d" % k, d, {"acct": d["acct"], "region": "edge", "kind": d["kind"], "qty": q,
                           "price": 1})
    # decimal extremes: the sums leave int64 units, which decimals are allowed to do
    for k, u in enumerate([INT64_MAX, INT64_MIN, INT64_MAX]):
        d = {"acct": "dedge-%d" % k, "region": "dedge", "price": fmt_units(u, 2)}
        add("D%d" % k, d, {"acct": d["acct"], "region": "dedge", "price": u})
    # the overflow documents: only big, selected by acct
    for k, b in enumerate([1 << 62, 1 << 62, INT64_MAX, 1, 0, -(1 << 62), -(1 << 62), -1]):
        d = {"acct": "ovf-%d" % k, "region": "ovf", "big": b}
        add("O%d" % k, d, {"acct": d["acct"], "region": "ovf", "big": b})
    # the canaries of the opacity test
    for k in range(3):
        d = {"acct": "canary", "region": "eu", "kind": "buy", "qty": CANARY_QTY,
             "price": CANARY_PRICE}
        add("C%d" % k, d, {"acct": "canary", "region": "eu", "kind": "buy",
                           "qty": CANARY_QTY, "price": 3133742})
    return docs, norm


def gen_pledger(rng):
    docs, norm = {}, {}
    for i in range(60):
        d, n = {}, {}
        if rng.random() < 0.92:
            d["region"] = n["region"] = rng.choice(REGIONS[:4])
        r = rng.random()
        if r < 0.9:
            u = rng.choice([0, rng.randint(-10 ** 6, 10 ** 6), rng.randint(-10 ** 12, 10 ** 12),
                            rng.randint(-20, 20) * 1000 + rng.choice([0, 500])])
            d["amt"], n["amt"] = dec_json(rng, u, 3), u
        if rng.random() < 0.9:
            d["units"] = n["units"] = rng.choice([0, rng.randint(-1000, 1000),
                                                  rng.randint(-10 ** 15, 10 ** 15)])
        docs["P%02d" % i] = d
        norm["P%02d" % i] = n
    # Paillier integers that overflow int64 in region ovf+ and fit exactly in ovf-
    for k, (reg, u) in enumerate([("ovf+", 1 << 62), ("ovf+", 1 << 62), ("ovf-", -(1 << 62)),
                                  ("ovf-", -(1 << 62))]):
        docs["PO%d" % k] = {"region": reg, "units": u}
        norm["PO%d" % k] = {"region": reg, "units": u}
    return docs, norm


# ---------------------------------------------------------------------------------------
# the plaintext model of where, query and aggregate


def dec_bound(rng, fields, f, u):
    return dec_json(rng, u, fields[f][1])


def bound_json(rng, fields, f, v):
    kind = fields[f][0]
    if kind == "int":
        return v
    if kind == "dec":
        return dec_bound(rng, fields, f, v)
    if kind == "day":
        return day_text(v)
    return at_text(rng, v)


def domain(fields, f):
    kind, scale = fields[f]
    if kind in ("int", "dec"):
        return INT64_MIN, INT64_MAX
    if kind == "day":
        return DAY_MIN, DAY_MAX
    return USEC_MIN, USEC_MAX


OPS = {"gt": lambda x, v: x > v, "gte": lambda x, v: x >= v,
       "lt": lambda x, v: x < v, "lte": lambda x, v: x <= v}


def gen_range(rng, fields, f, present):
    """A random range condition on f: (JSON spec, [(op, normalized bound)])."""
    lo_d, hi_d = domain(fields, f)
    present = sorted(present)

    def pick():
        r = rng.random()
        if present and r < 0.6:
            v = rng.choice(present)
        elif present and r < 0.8:
            v = rng.choice(present) + rng.choice([-1, 1])
        elif r < 0.9:
            v = rng.choice([lo_d, hi_d, lo_d + 1, hi_d - 1, 0])
        else:
            v = rng.randint(lo_d, hi_d)
        return min(max(v, lo_d), hi_d)

    shape = rng.random()
    if shape < 0.3:
        conds = [(rng.choice(list(OPS)), pick())]
    elif shape < 0.6:
        a, b = sorted([pick(), pick()])
        if rng.random() < 0.1:
            a, b = b, a                                    # reversed: empty
        conds = [(rng.choice(["gt", "gte"]), a), (rng.choice(["lt", "lte"]), b)]
    elif shape < 0.72:
        v = pick()
        conds = [("gte", v), ("lte", v)]                   # exactly v
    elif shape < 0.8:
        v = pick()
        w = min(v + 1, hi_d)
        conds = rng.choice([[("gt", v), ("lt", v)], [("gt", v), ("lt", w)],
                            [("gte", v), ("lt", v)], [("gt", v), ("lte", v)]])   # empty
    elif shape < 0.9:                                      # bounds outside the data
        if present:
            conds = rng.choice([[("gt", present[-1])], [("lt", present[0])],
                                [("gte", present[0]), ("lte", present[-1])],
                                [("gte", lo_d), ("lte", hi_d)], [("gt", hi_d)],
                                [("lt", lo_d)], [("gte", lo_d)], [("lte", hi_d)]])
        else:
            conds = [("gte", lo_d)]
    else:                                                  # a bound given twice
        a, b = pick(), pick()
        conds = [("gt", a), ("gte", b)] if rng.random() < 0.5 else [("lt", a), ("lte", b)]
    spec = {}
    for op, v in conds:
        spec[op] = bound_json(rng, fields, f, v)
    return spec, conds


def gen_eq(rng, f, pool):
    absent = "nobody-" + f
    if rng.random() < 0.5:
        v = rng.choice(pool + [absent])
        spec = v if rng.random() < 0.7 else {"eq": v}
        return spec, ("in", {v})
    vals = rng.sample(pool + [absent], rng.randint(1, min(4, len(pool) + 1)))
    return {"in": vals}, ("in", set(vals))


def matches(n, cond_model):
    """cond_model: {field: ("in", set) | ("range", [(op, v)])}."""
    for f, (k, arg) in cond_model.items():
        x = n.get(f)
        if x is None:
            return False
        if k == "in":
            if x not in arg:
                return False
        elif not all(OPS[op](x, v) for op, v in arg):
            return False
    return True


def gen_where(rng, fields, norm, eq_fields, range_fields, nrange, neq):
    where, model = {}, {}
    for f in rng.sample(range_fields, nrange):
        present = [n[f] for n in norm.values() if n.get(f) is not None]
        spec, conds = gen_range(rng, fields, f, present)
        where[f] = spec
        model[f] = ("range", conds)
    for f in rng.sample(eq_fields, neq):
        pool = sorted({n[f] for n in norm.values() if n.get(f) is not None})
        spec, m = gen_eq(rng, f, pool)
        where[f] = spec
        model[f] = m
    return where, model


def avg_rounded(units, n, scale):
    """An average as the README states it: the exact sum (in units of 10^-scale) divided by
    the count, rounded half to even to scale + 2 decimal places; a Fraction."""
    q = Fraction(units * 100, n)
    return Fraction(round(q), 10 ** (scale + 2))   # round() of a Fraction: half to even


def expect_aggregate(fields, norm, model, group_by, metrics, min_group=0):
    """The answer a correct engine gives: ({"error": field}, None) when an integer sum
    leaves int64 in a group that is shown, else ({key tuple: {metric: value}}, suppressed)."""
    groups = {}
    for did, n in norm.items():
        if matches(n, model):
            groups.setdefault(tuple(n.get(g) for g in group_by), []).append(n)
    if not group_by:
        # Without group_by there is always one group, key {}, even of no rows.
        groups.setdefault((), [])
    out, suppressed = {}, 0
    for key, rows in groups.items():
        if len(rows) < min_group:
            suppressed += 1
            continue
        res = {}
        for name, spec in metrics.items():
            (op, f), = spec.items()
            if op == "count":
                res[name] = len(rows) if f == "*" else sum(1 for r in rows
                                                           if r.get(f) is not None)
                continue
            vals = [r[f] for r in rows if r.get(f) is not None]
            s = sum(vals)
            kind, scale = fields[f]
            if op == "sum":
                if kind == "int":
                    if not INT64_MIN <= s <= INT64_MAX:
                        return {"error": f}, None
                    res[name] = s
                else:
                    res[name] = fmt_units(s, scale)
            else:
                res[name] = None if not vals else avg_rounded(s, len(vals), scale)
        out[key] = res
    return out, suppressed


def compare_aggregate(what, body, got, want, group_by):
    """Raises Failure naming the first difference between an answer and the model."""
    exp, suppressed = want
    check(isinstance(got, dict) and isinstance(got.get("groups"), list),
          "%s: answer shape %r" % (what, got))
    check(got.get("suppressed") == suppressed and type(got.get("suppressed")) is int,
          "%s: suppressed %r, want %d; body %s" % (what, got.get("suppressed"), suppressed,
                                                   json.dumps(body)))
    seen = {}
    for g in got["groups"]:
        check(isinstance(g, dict) and isinstance(g.get("key"), dict),
              "%s: group shape %r" % (what, g))
        check(sorted(g["key"]) == sorted(group_by),
              "%s: group key fields %r, want %r" % (what, sorted(g["key"]), sorted(group_by)))
        key = tuple(g["key"][f] for f in group_by)
        check(key not in seen, "%s: group %r answered twice" % (what, key))
        seen[key] = g
    missing = sorted(set(exp) - set(seen), key=repr)
    extra = sorted(set(seen) - set(exp), key=repr)
    check(not missing and not extra,
          "%s: groups missing %r, unexpected %r; body %s" % (what, missing[:5], extra[:5],
                                                            json.dumps(body)))
    for key, want_vals in exp.items():
        g = seen[key]
        check(set(g) == set(want_vals) | {"key"},
              "%s: group %r has members %r" % (what, key, sorted(g)))
        for name, w in want_vals.items():
            v = g[name]
            (op, f), = body["metrics"][name].items()
            if op == "avg":
                if w is None:
                    check(v is None, "%s: group %r avg %s = %r, want null" % (what, key, name, v))
                    continue
                check(isinstance(v, (int, float)) and not isinstance(v, bool),
                      "%s: group %r avg %s is %r, not a number" % (what, key, name, v))
                wf = float(w)   # the JSON text holds exactly w's digits
                check(v == wf,
                      "%s: group %r avg %s = %r, want %r (%s); body %s"
                      % (what, key, name, v, wf, w, json.dumps(body)))
            else:
                check(type(v) is type(w) and v == w,
                      "%s: group %r %s %s = %r, want %r; body %s"
                      % (what, key, op, name, v, w, json.dumps(body)))


# ---------------------------------------------------------------------------------------
# the shared environment of these tests


class State:
    def __init__(self, veil):
        self.veil = veil
        self.env = Env(veil, LEDGER)
        self.env.apply("acme", PLEDGER, name="pledger.yaml")
        self.admin = self.env.tokens[("acme", "admin")]
        self.analyst = self.env.token("acme", "analyst")
        self.reader = self.env.token("acme", "reader")
        self.srv = self.env.start()
        self.docs, self.norm = gen_ledger(random.Random(1234))
        for i, d in self.docs.items():   # the model's own check: texts parse back
            for f in ("price", "day", "at"):
                if d.get(f) is not None:
                    check(_norm(LFIELDS, f, d[f]) == self.norm[i][f],
                          "model: %s %s=%r is not %r" % (i, f, d[f], self.norm[i][f]))
        self.pdocs, self.pnorm = gen_pledger(random.Random(4321))
        self.bulk("ledger", self.docs)
        self.bulk("pledger", self.pdocs)

    def alive(self):
        """Restarts the server if an earlier test killed it (its data stays)."""
        if self.env.server is not None and self.env.server.proc.poll() is not None:
            self.env.server = None
        if self.env.server is None:
            self.srv = self.env.start()

    def req(self, method, path, body=None, token=None):
        try:
            return self.srv.request(method, path, body=body, token=token or self.admin)
        except (ConnectionError, http.client.HTTPException, OSError) as e:
            srv = self.srv
            try:
                srv.proc.wait(5)
            except Exception:  # noqa: BLE001 - still running: a plain network error
                pass
            rc = srv.proc.poll()
            lines = [ln.rstrip() for ln in srv.lines
                     if "Sanitizer" in ln or "#" in ln[:8] or "SUMMARY" in ln]
            self.env.server = None
            self.srv = self.env.start()
            raise Failure("%s %s %s: no answer (%s); the server exited with %r\n%s"
                          % (method, path, json.dumps(body)[:300] if body is not None else "",
                             type(e).__name__, rc, "\n".join(lines[:14])))

    def aggregate(self, coll, body, token=None):
        return self.req("POST", "/v1/collections/%s/aggregate" % seg(coll), body, token)

    def query_ids(self, coll, body, token=None, limit=None):
        """Every id a query returns, following `next`; checks page sizes and duplicates."""
        ids, docs, cur = [], {}, None
        for _ in range(10000):
            b = dict(body)
            if limit is not None:
                b["limit"] = limit
            if cur is not None:
                b["after"] = cur
            r = self.req("POST", "/v1/collections/%s/query" % seg(coll), b, token)
            check(r.status == 200, "query %s: %r" % (json.dumps(b), r))
            j = r.json
            check(isinstance(j.get("docs"), list) and "next" in j, "query answer %r" % j)
            check(limit is None or len(j["docs"]) <= limit,
                  "a page of %d docs for limit %s" % (len(j["docs"]), limit))
            for d in j["docs"]:
                ids.append(d["id"])
                docs[d["id"]] = d
            cur = j["next"]
            if cur is None:
                break
            check(j["docs"], "an empty page with a next cursor: %s" % json.dumps(b))
        dup = sorted({i for i in ids if ids.count(i) > 1})
        check(not dup, "query %s returned %r more than once" % (json.dumps(body), dup[:5]))
        return set(ids), docs

    def bulk(self, coll, docs):
        items = sorted(docs.items())
        for at in range(0, len(items), 100):
            chunk = items[at:at + 100]
            lines = "".join(json.dumps({"id": i, "doc": d}) + "\n" for i, d in chunk)
            r = self.srv.request("POST", "/v1/collections/%s/bulk" % seg(coll), body=lines,
                                 token=self.admin,
                                 headers={"Content-Type": "application/x-ndjson"})
            check(r.status == 200, "bulk load of %s: %r" % (coll, r))
            out = [json.loads(x) for x in r.body.decode().splitlines() if x.strip()]
            check(len(out) == len(chunk), "bulk answered %d lines for %d" % (len(out),
                                                                             len(chunk)))
            for o in out:
                check("error" not in o and o.get("status") in (200, 201, "created", "ok"),
                      "bulk line refused: %r (doc %r)" % (o, docs.get(o.get("id"))))

    def put(self, coll, did, doc, status):
        r = self.req("PUT", doc_path(coll, did), doc)
        check(r.status == status, "put %s/%s: want %d, got %r" % (coll, did, status, r))
        return r.json

    def close(self):
        self.env.close()


_state = None


def state(ctx):
    global _state
    if _state is None:
        _state = State(ctx.veil)
        atexit.register(_state.close)
    _state.alive()
    return _state


def show(norm, ids, fields):
    return "; ".join("%s=%s" % (i, {f: norm[i].get(f) for f in fields}) for i in sorted(ids)[:4])


# ---------------------------------------------------------------------------------------
# range filters


@test
def analytics_range_queries_match_plaintext(ctx):
    st = state(ctx)
    rng = random.Random(1234 + 1)
    n_nonempty = n_empty = n_bound_hits = 0
    for n in range(150):
        nrange = 1 if rng.random() < 0.7 else 2
        neq = 1 if rng.random() < 0.4 else 0
        where, model = gen_where(rng, LFIELDS, st.norm, EQ_FIELDS, RANGE_FIELDS, nrange, neq)
        want = {i for i, d in st.norm.items() if matches(d, model)}
        token = st.reader if n % 5 == 0 else None
        limit = rng.choice([None, 7, 50, 50, 1000])
        got, docs = st.query_ids("ledger", {"where": where}, token, limit)
        if got != want:
            fl = list(where)
            raise Failure("range query %d %s (limit %s):\n missing %d: %s\n extra %d: %s"
                          % (n, json.dumps(where), limit, len(want - got),
                             show(st.norm, want - got, fl), len(got - want),
                             show(st.norm, got - want, fl)))
        for i, d in docs.items():
            check(d.get("doc") == st.docs[i], "query %d: doc %s came back as %r, stored %r"
                  % (n, i, d.get("doc"), st.docs[i]))
        if want:
            n_nonempty += 1
        else:
            n_empty += 1
        # how many answers hinge on a bound being inclusive or exclusive
        for f, (k, arg) in model.items():
            if k == "range":
                n_bound_hits += sum(1 for i in want if any(st.norm[i][f] == v for _, v in arg))
    diag("range: 150 queries, %d non-empty, %d empty, %d hits exactly on a bound"
         % (n_nonempty, n_empty, n_bound_hits))
    check(n_nonempty >= 60 and n_empty >= 10 and n_bound_hits >= 30,
          "the random queries are too weak: %d non-empty, %d empty, %d bound hits"
          % (n_nonempty, n_empty, n_bound_hits))


@test
def analytics_range_bounds_exact(ctx):
    """Deterministic edges: each bound kind at a value held by documents, offsets, extremes."""
    st = state(ctx)
    cases = [
        # integers: the int64 extremes and their neighbours
        ({"qty": {"gte": INT64_MAX}}, lambda n: n.get("qty") == INT64_MAX),
        ({"qty": {"gt": INT64_MAX - 1}}, lambda n: n.get("qty") == INT64_MAX),
        ({"qty": {"gt": INT64_MAX}}, lambda n: False),
        ({"qty": {"lt": INT64_MIN}}, lambda n: False),
        ({"qty": {"lte": INT64_MIN}}, lambda n: n.get("qty") == INT64_MIN),
        ({"qty": {"lt": INT64_MIN + 2}}, lambda n: n.get("qty") is not None and
         n["qty"] <= INT64_MIN + 1),
        ({"qty": {"gte": INT64_MIN, "lte": INT64_MAX}}, lambda n: n.get("qty") is not None),
        ({"qty": {"gte": -1, "lte": 1}}, lambda n: n.get("qty") in (-1, 0, 1)),
        ({"qty": {"gt": -1, "lt": 1}}, lambda n: n.get("qty") == 0),
        ({"qty": {"gt": 0, "lt": 1}}, lambda n: False),
        ({"qty": {"gte": CANARY_QTY, "lte": CANARY_QTY}}, lambda n: n.get("qty") == CANARY_QTY),
        # decimals with fewer digits than the scale, as strings and numbers
        ({"price": {"gte": "5", "lte": 5}}, lambda n: n.get("price") == 500),
        ({"price": {"gte": "5.5", "lte": "5.50"}}, lambda n: n.get("price") == 550),
        ({"price": {"gt": 5, "lt": "5.5"}}, lambda n: n.get("price") is not None and
         500 < n["price"] < 550),
        ({"price": {"gte": "-0", "lte": 0.0}}, lambda n: n.get("price") == 0),
        ({"price": {"gt": "-0.01", "lt": "0.01"}}, lambda n: n.get("price") == 0),
        ({"price": {"gte": "92233720368547758.07"}}, lambda n: n.get("price") == INT64_MAX),
        ({"price": {"lte": "-92233720368547758.08"}}, lambda n: n.get("price") == INT64_MIN),
        # dates around leap days and at the ends of the calendar
        ({"day": {"gte": "2024-02-29", "lte": "2024-02-29"}},
         lambda n: n.get("day") == _d(2024, 2, 29)),
        ({"day": {"gt": "2024-02-28", "lt": "2024-03-01"}},
         lambda n: n.get("day") == _d(2024, 2, 29)),
        ({"day": {"gt": "1900-02-28", "lt": "1900-03-01"}}, lambda n: False),
        ({"day": {"gte": "0001-01-01", "lte": "0001-01-01"}}, lambda n: n.get("day") == DAY_MIN),
        ({"day": {"gt": "9999-12-30"}}, lambda n: n.get("day") == DAY_MAX),
        ({"day": {"lt": "0001-01-01"}}, lambda n: False),
        ({"day": {"gt": "9999-12-31"}}, lambda n: False),
        # datetimes: the same instant written with other offsets
        ({"at": {"gte": "2024-02-29T00:00:00Z", "lt": "2024-03-01T00:00:00+00:00"}},
         lambda n: n.get("at") is not None and LEAP_INSTANT <= n["at"] < LEAP_INSTANT + USEC_DAY),
        ({"at": {"gte": "2024-02-29T05:30:00+05:30", "lt": "2024-02-29T16:00:00-08:00"}},
         lambda n: n.get("at") is not None and LEAP_INSTANT <= n["at"] < LEAP_INSTANT + USEC_DAY),
        ({"at": {"gte": "2024-02-28T23:00:00.000000-01:00", "lte": "2024-02-29T00:00:00Z"}},
         lambda n: n.get("at") == LEAP_INSTANT),
        ({"at": {"gt": "9999-12-31T23:59:59.999998Z"}}, lambda n: n.get("at") == USEC_MAX),
        ({"at": {"lte": "0001-01-01T00:00:00Z"}}, lambda n: n.get("at") == USEC_MIN),
        ({"at": {"lt": "0001-01-01T00:00:00.000001Z"}}, lambda n: n.get("at") == USEC_MIN),
        ({"at": {"gt": "9999-12-31T23:59:59.999999Z"}}, lambda n: False),
        # range ANDed with equality
        ({"qty": {"gte": INT64_MIN}, "region": "edge"},
         lambda n: n.get("region") == "edge" and n.get("qty") is not None),
        ({"price": {"gt": "0"}, "kind": {"in": ["fee", ""]}, "day": {"lt": "2000-03-01"}},
         lambda n: n.get("price", 0) > 0 and n.get("kind") in ("fee", "") and
         n.get("day") is not None and n["day"] < _d(2000, 3, 1)),
    ]
    nonempty = 0
    for where, pred in cases:
        want = {i for i, n in st.norm.items() if pred(n)}
        got, _ = st.query_ids("ledger", {"where": where}, limit=1000)
        check(got == want, "%s: missing %s; extra %s" % (
            json.dumps(where), show(st.norm, want - got, list(where)),
            show(st.norm, got - want, list(where))))
        nonempty += bool(want)
    check(nonempty >= 22, "only %d of the edge cases are non-empty" % nonempty)
    diag("range edges: %d cases, %d non-empty" % (len(cases), nonempty))


def _d(y, m, d):
    return datetime.date(y, m, d).toordinal() - EPOCH_ORD


# ---------------------------------------------------------------------------------------
# aggregates


LMETRICS = [{"sum": "qty"}, {"sum": "price"}, {"avg": "qty"}, {"avg": "price"},
            {"count": "*"}, {"count": "qty"}, {"count": "price"}]


def rand_metrics(rng, pool):
    ms = rng.sample(pool, rng.randint(1, min(4, len(pool))))
    return {"m%d_%s" % (k, list(m)[0]): m for k, m in enumerate(ms)}


def run_aggregates(st, rng, coll, fields, norm, n, group_pool, eq_fields, range_fields,
                   metric_pool, token=None, min_group=0, tag="aggregate"):
    stats = {"groups": 0, "errors": 0, "empty": 0, "sums": 0, "suppressed": 0}
    for k in range(n):
        ng = rng.choice([0, 1, 1, 2])
        group_by = rng.sample(group_pool, min(ng, len(group_pool)))
        nrange = rng.choice([0, 0, 1, 1, 2]) if range_fields else 0
        neq = rng.choice([0, 0, 1]) if eq_fields else 0
        where, model = gen_where(rng, fields, norm, eq_fields, range_fields,
                                 min(nrange, len(range_fields)), min(neq, len(eq_fields)))
        body = {"metrics": rand_metrics(rng, metric_pool)}
        if where or rng.random() < 0.5:
            body["where"] = where
        if group_by or rng.random() < 0.3:
            body["group_by"] = group_by
        want = expect_aggregate(fields, norm, model, group_by, body["metrics"], min_group)
        r = st.aggregate(coll, body, token)
        what = "%s %d" % (tag, k)
        if want[1] is None:
            err = expect_error(r, 400, "bad_request", "%s %s (integer sum leaves int64)"
                               % (what, json.dumps(body)))
            check(err.get("field") == want[0]["error"], "%s: error names %r" % (what, err))
            stats["errors"] += 1
            continue
        check(r.status == 200, "%s %s: %r" % (what, json.dumps(body), r))
        compare_aggregate(what, body, r.json, want, group_by)
        stats["groups"] += len(want[0])
        stats["empty"] += not want[0]
        stats["suppressed"] += want[1]
        stats["sums"] += sum(1 for g in want[0].values() for name, m in body["metrics"].items()
                             if "sum" in m and g[name] not in (0, "0.00", "0.000"))
    return stats


@test
def analytics_aggregates_match_plaintext(ctx):
    st = state(ctx)
    rng = random.Random(1234 + 2)
    s = run_aggregates(st, rng, "ledger", LFIELDS, st.norm, 80, ["region", "kind", "acct"],
                       EQ_FIELDS, RANGE_FIELDS, LMETRICS)
    diag("aggregates: 80 queries, %(groups)d groups, %(sums)d nonzero sums, %(empty)d empty "
         "answers, %(errors)d int64 overflows" % s)
    check(s["groups"] >= 150 and s["sums"] >= 80,
          "the random aggregates are too weak: %r" % s)


@test
def analytics_aggregate_edges(ctx):
    """Hand-picked: int64 extremes summing back into range, decimal sums beyond int64
    units, groups with no value of the summed field, null keys, the whole collection."""
    st = state(ctx)
    cases = [
        ({"where": {"region": "edge"}, "metrics": {"s": {"sum": "qty"}, "a": {"avg": "qty"},
                                                    "n": {"count": "*"}}}, []),
        ({"where": {"region": "edge"}, "group_by": ["kind"],
          "metrics": {"s": {"sum": "qty"}}}, ["kind"]),                  # one group overflows
        ({"where": {"acct": {"in": ["edge-0", "edge-2"]}}, "metrics": {"a": {"avg": "qty"}}},
         []),                                                            # avg of 2^64-ish
        ({"where": {"region": "dedge"}, "metrics": {"s": {"sum": "price"},
                                                     "a": {"avg": "price"}}}, []),
        ({"where": {"region": "dedge"}, "group_by": ["acct"],
          "metrics": {"s": {"sum": "price"}}}, ["acct"]),
        ({"where": {"region": "ovf"}, "group_by": ["region", "kind"],
          "metrics": {"s": {"sum": "qty"}, "p": {"sum": "price"}, "a": {"avg": "price"},
                      "c": {"count": "qty"}, "n": {"count": "*"}}}, ["region", "kind"]),
        ({"group_by": ["region"], "metrics": {"n": {"count": "*"}, "c": {"count": "price"},
                                              "p": {"sum": "price"}}}, ["region"]),
        ({"group_by": ["kind", "region"], "metrics": {"n": {"count": "*"},
                                                      "a": {"avg": "price"}}},
         ["kind", "region"]),
        ({"metrics": {"n": {"count": "*"}, "p": {"sum": "price"}, "a": {"avg": "price"}}}, []),
        ({"where": {"qty": {"gt": INT64_MAX}}, "metrics": {"n": {"count": "*"}}}, []),
        ({"where": {"acct": "nobody"}, "metrics": {"n": {"count": "*"},
                                                   "s": {"sum": "qty"}}}, []),
        ({"where": {"price": {"gte": "5", "lte": "5.5"}}, "group_by": ["kind"],
          "metrics": {"p": {"sum": "price"}, "a": {"avg": "price"}}}, ["kind"]),
        # a value repeated in `in` counts once; a field summed under two names
        ({"where": {"region": {"in": ["eu", "eu", "us"]}, "kind": {"in": ["buy", "buy"]}},
          "metrics": {"a": {"sum": "qty"}, "b": {"sum": "qty"}, "c": {"avg": "qty"},
                      "n": {"count": "*"}}}, []),
        ({"where": {}, "group_by": ["region", "kind", "acct"],
          "metrics": {"p": {"sum": "price"}, "n": {"count": "*"}}}, ["region", "kind", "acct"]),
    ]
    for k, (body, gb) in enumerate(cases):
        model = {}
        for f, spec in body.get("where", {}).items():
            if f in EQ_FIELDS:
                model[f] = ("in", set(spec["in"]) if isinstance(spec, dict) else {spec})
            else:
                model[f] = ("range", [(op, _norm(LFIELDS, f, v)) for op, v in spec.items()])
        want = expect_aggregate(LFIELDS, st.norm, model, gb, body["metrics"])
        r = st.aggregate("ledger", body)
        if want[1] is None:
            err = expect_error(r, 400, "bad_request", "edge %d %s" % (k, json.dumps(body)))
            check(err.get("field") == want[0]["error"], "edge %d: error %r" % (k, err))
            continue
        check(r.status == 200, "edge %d %s: %r" % (k, json.dumps(body), r))
        compare_aggregate("edge %d" % k, body, r.json, want, gb)
    # the overflow cases of the brief, spelled out
    big = {"s": {"sum": "big"}}
    for accts, want in [(["ovf-0", "ovf-1"], None), (["ovf-0"], 1 << 62),
                        (["ovf-2", "ovf-4"], INT64_MAX), (["ovf-2", "ovf-3"], None),
                        (["ovf-5", "ovf-6"], INT64_MIN), (["ovf-5", "ovf-6", "ovf-7"], None),
                        (["ovf-0", "ovf-1", "ovf-5", "ovf-6"], 0)]:
        body = {"where": {"acct": {"in": accts}}, "metrics": big}
        r = st.aggregate("ledger", body)
        if want is None:
            err = expect_error(r, 400, "bad_request", "sum of big over %s" % accts)
            check(err.get("field") == "big" and "64" in err.get("message", ""),
                  "overflow error %r" % err)
            check(b"groups" not in r.body, "the overflow error carries groups: %r" % r)
        else:
            check(r.status == 200 and r.json == {"groups": [{"key": {}, "s": want}],
                                                 "suppressed": 0},
                  "sum of big over %s: %r, want %d" % (accts, r, want))
    # grouped: each group fits, so no error
    r = st.aggregate("ledger", {"where": {"acct": {"in": ["ovf-0", "ovf-1"]}},
                                "group_by": ["acct"], "metrics": big})
    check(r.status == 200 and sorted(g["s"] for g in r.json["groups"]) == [1 << 62, 1 << 62],
          "grouped sum of big: %r" % r)


def _norm(fields, f, v):
    kind, scale = fields[f]
    if kind == "int":
        return v
    if kind == "dec":
        s = str(v)
        neg = s.startswith("-")
        ip, _, fp = s.lstrip("-").partition(".")
        u = int(ip) * 10 ** scale + int((fp + "0" * scale)[:scale] or "0")
        return -u if neg else u
    if kind == "day":
        return datetime.date.fromisoformat(v).toordinal() - EPOCH_ORD
    return parse_at(v)


def parse_at(s):
    """Microseconds since the epoch (UTC) of an RFC 3339 text, with its offset removed."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?"
                     r"(?:([Zz])|([+-])(\d\d):(\d\d))", s)
    if m is None:
        raise ValueError(s)
    days = datetime.date.fromisoformat(m.group(1)).toordinal() - EPOCH_ORD
    secs = days * 86400 + int(m.group(2)) * 3600 + int(m.group(3)) * 60 + int(m.group(4))
    if m.group(7):
        off = (int(m.group(8)) * 60 + int(m.group(9))) * 60
        secs -= off if m.group(7) == "+" else -off
    return secs * 10 ** 6 + int((m.group(5) or "").ljust(6, "0"))


@test
def analytics_analyst_suppression(ctx):
    st = state(ctx)
    rng = random.Random(1234 + 3)
    s = run_aggregates(st, rng, "ledger", LFIELDS, st.norm, 30, ["region", "kind"],
                       ["region", "kind"], ["qty", "price"],
                       [m for m in LMETRICS], token=st.analyst, min_group=3, tag="analyst")
    diag("analyst: 30 queries, %(groups)d groups shown, %(suppressed)d suppressed, "
         "%(errors)d overflows" % s)
    check(s["suppressed"] >= 10 and s["groups"] >= 30, "too weak: %r" % s)
    # exactly at the threshold: the three canaries form a group of 3, two of them of 2
    m = {"n": {"count": "*"}, "s": {"sum": "qty"}}
    r = st.aggregate("ledger", {"where": {"qty": {"gte": CANARY_QTY, "lte": CANARY_QTY}},
                                "metrics": m}, st.analyst)
    check(r.status == 200 and r.json == {"groups": [{"key": {}, "n": 3, "s": 3 * CANARY_QTY}],
                                         "suppressed": 0}, "group of exactly 3: %r" % r)
    r = st.aggregate("ledger", {"where": {"qty": {"gte": CANARY_QTY, "lte": CANARY_QTY},
                                          "kind": "buy", "region": "eu",
                                          "price": {"lt": CANARY_PRICE}}, "metrics": m},
                     st.analyst)
    want = expect_aggregate(LFIELDS, st.norm, {
        "qty": ("range", [("gte", CANARY_QTY), ("lte", CANARY_QTY)]),
        "kind": ("in", {"buy"}), "region": ("in", {"eu"}),
        "price": ("range", [("lt", 3133742)])}, [], m, 3)
    check(r.status == 200, "analyst small group: %r" % r)
    compare_aggregate("analyst threshold", {"metrics": m}, r.json, want, [])
    # admin sees what the analyst may not
    # (the analyst's filters use only fields of its own lists: whether it may filter on
    # others is not settled yet)
    one = {"qty": {"gte": INT64_MAX}}
    r = st.aggregate("ledger", {"where": one, "metrics": m})
    check(r.status == 200 and r.json == {"groups": [{"key": {}, "n": 1, "s": INT64_MAX}],
                                         "suppressed": 0}, "admin group of 1: %r" % r)
    r = st.aggregate("ledger", {"where": one, "metrics": m}, st.analyst)
    check(r.status == 200 and r.json == {"groups": [], "suppressed": 1},
          "analyst group of 1: %r" % r)
    check(str(INT64_MAX).encode() not in r.body, "a suppressed group's sum is in the answer")
    # a group whose sum leaves int64: an error for the admin; for the analyst the group
    # (of 2) is suppressed before anything is summed
    body = {"where": {"qty": {"gte": INT64_MAX - 1}}, "metrics": m}
    expect_error(st.aggregate("ledger", body), 400, "bad_request", "admin: MAX + MAX-1")
    r = st.aggregate("ledger", body, st.analyst)
    check(r.status == 200 and r.json == {"groups": [], "suppressed": 1},
          "analyst: MAX + MAX-1 in a suppressed group: %r" % r)


# ---------------------------------------------------------------------------------------
# Paillier


@test
def analytics_paillier_sums(ctx):
    st = state(ctx)
    rng = random.Random(1234 + 4)
    pm = [{"sum": "amt"}, {"avg": "amt"}, {"sum": "units"}, {"avg": "units"}, {"count": "*"},
          {"count": "amt"}, {"count": "units"}]
    s = run_aggregates(st, rng, "pledger", PFIELDS, st.pnorm, 30, ["region"], ["region"],
                       ["amt"], pm, tag="paillier")
    s2 = run_aggregates(st, rng, "pledger", PFIELDS, st.pnorm, 8, ["region"], ["region"],
                        ["amt"], pm, token=st.analyst, min_group=2, tag="paillier analyst")
    diag("paillier: 38 queries, %d groups, %d nonzero sums, %d overflows"
         % (s["groups"] + s2["groups"], s["sums"] + s2["sums"], s["errors"] + s2["errors"]))
    check(s["sums"] >= 20, "too weak: %r" % s)
    for k in range(30):
        where, model = gen_where(rng, PFIELDS, st.pnorm, ["region"], ["amt"], 1,
                                 rng.choice([0, 1]))
        want = {i for i, n in st.pnorm.items() if matches(n, model)}
        got, docs = st.query_ids("pledger", {"where": where}, limit=rng.choice([None, 9]))
        check(got == want, "pledger range %s: missing %s, extra %s"
              % (json.dumps(where), show(st.pnorm, want - got, ["amt"]),
                 show(st.pnorm, got - want, ["amt"])))
        check(all(d["doc"] == st.pdocs[i] for i, d in docs.items()), "pledger docs differ")
    u = {"u": {"sum": "units"}}
    r = st.aggregate("pledger", {"where": {"region": "ovf-"}, "metrics": u})
    check(r.status == 200 and r.json["groups"] == [{"key": {}, "u": INT64_MIN}],
          "Paillier sum exactly INT64_MIN: %r" % r)
    err = expect_error(st.aggregate("pledger", {"where": {"region": "ovf+"}, "metrics": u}),
                       400, "bad_request", "Paillier sum of 2^62 + 2^62")
    check(err.get("field") == "units", "overflow error %r" % err)
    expect_error(st.aggregate("pledger", {"group_by": ["region"], "metrics": u}), 400,
                 "bad_request", "Paillier grouped sums, one overflowing")
    want = sum(n.get("units", 0) for n in st.pnorm.values())
    r = st.aggregate("pledger", {"metrics": u})
    check(r.status == 200 and r.json["groups"] == [{"key": {}, "u": want}],
          "Paillier total (the overflows cancel): %r, want %d" % (r, want))


# ---------------------------------------------------------------------------------------
# roles and unsupported operations


@test
def analytics_roles_and_unsupported(ctx):
    st = state(ctx)
    m = {"n": {"count": "*"}}
    # the analyst aggregates, but reads nothing
    check(st.aggregate("ledger", {"group_by": ["region"], "metrics": m}, st.analyst).status ==
          200, "the analyst cannot aggregate at all")
    for r, what in [
            (st.req("GET", doc_path("ledger", "L000"), token=st.analyst), "analyst GET"),
            (st.req("POST", "/v1/collections/ledger/query", {"where": {"region": "eu"}},
                    st.analyst), "analyst query"),
            (st.req("POST", "/v1/collections/ledger/query", {}, st.analyst),
             "analyst query without where"),
            (st.aggregate("ledger", {"metrics": {"s": {"sum": "big"}}}, st.analyst),
             "analyst sums big"),
            (st.aggregate("ledger", {"metrics": {"s": {"avg": "big"}}}, st.analyst),
             "analyst averages big"),
            (st.aggregate("ledger", {"group_by": ["acct"], "metrics": m}, st.analyst),
             "analyst groups by acct"),
            (st.aggregate("ledger", {"group_by": ["region", "acct"], "metrics": m}, st.analyst),
             "analyst groups by region and acct"),
            (st.aggregate("ledger", {"where": {"acct": st.docs["L000"]["acct"]},
                                     "metrics": m}, st.analyst),
             "analyst filters on acct, which it may not use"),
            (st.aggregate("ledger", {"metrics": m}, st.reader), "reader aggregates"),
            (st.aggregate("pledger", {"metrics": m}, st.reader), "reader aggregates pledger"),
            (st.req("PUT", doc_path("ledger", "L000"), st.docs["L000"], st.analyst),
             "analyst writes")]:
        expect_error(r, 403, "forbidden", what)
        check(b"L000" not in r.body and st.docs["L000"]["acct"].encode() not in r.body,
              "%s: the 403 carries data: %r" % (what, r))
    # the reader reads but may not aggregate; the analyst's 403s changed nothing
    r = st.req("GET", doc_path("ledger", "L000"), token=st.reader)
    check(r.status == 200 and r.json["doc"] == st.docs["L000"], "reader GET: %r" % r)
    # unsupported: the message names the tactics the field has
    for body, field, words, what in [
            ({"where": {"acct": {"gt": "A05"}}}, "acct", ["eq"], "range on an eq-only field"),
            ({"where": {"region": {"gte": "a", "lt": "z"}}}, "region", ["eq"],
             "range on an eq-only field"),
            ({"where": {"big": {"lt": 5}}}, "big", ["sum"], "range on a sum-only field"),
            ({"where": {"note": {"gt": "a"}}}, "note", ["aead"], "range on an aead field"),
            ({"where": {"qty": 5}}, "qty", ["range", "sum"], "eq on a range field"),
            ({"where": {"day": {"in": ["2024-02-29"]}}}, "day", ["range"],
             "in on a range field")]:
        r = st.req("POST", "/v1/collections/ledger/query", body)
        err = expect_error(r, 400, "unsupported_query", what)
        check(err.get("field") == field, "%s: error field %r" % (what, err))
        for w in words:
            check(w in err["message"], "%s: the message %r does not name tactic %s"
                  % (what, err["message"], w))
    for body, field, what in [
            ({"metrics": {"s": {"sum": "day"}}}, "day", "sum on a range-only field"),
            ({"metrics": {"s": {"sum": "acct"}}}, "acct", "sum on an eq field"),
            ({"metrics": {"s": {"avg": "at"}}}, "at", "avg on a datetime"),
            ({"metrics": {"s": {"sum": "note"}}}, "note", "sum on an aead field"),
            ({"metrics": {"s": {"sum": "nosuch"}}}, "nosuch", "sum on an unknown field"),
            ({"group_by": ["qty"], "metrics": m}, "qty", "group_by a sum/range field"),
            ({"group_by": ["day"], "metrics": m}, "day", "group_by a date"),
            ({"group_by": ["note"], "metrics": m}, "note", "group_by an aead field"),
            ({"where": {"acct": {"lt": "B"}}, "metrics": m}, "acct",
             "aggregate with a range on an eq field")]:
        err = expect_error(st.aggregate("ledger", body), 400, "unsupported_query", what)
        check(err.get("field") == field, "%s: error field %r" % (what, err))
        check(("aead" in err["message"]) or ("eq" in err["message"]) or
              ("range" in err["message"]), "%s: no tactics named in %r" % (what, err))
    # malformed aggregate bodies
    for body, what in [({}, "no metrics"), ({"metrics": {}}, "empty metrics"),
                       ({"metrics": {"x": {"median": "qty"}}}, "unknown metric"),
                       ({"metrics": {"key": {"count": "*"}}}, "metric named key"),
                       ({"metrics": {"x": {"sum": "qty", "avg": "qty"}}}, "two ops in one"),
                       ({"metrics": {"x": {"sum": 5}}}, "field not a string"),
                       ({"metrics": m, "group_by": "region"}, "group_by not a list"),
                       ({"metrics": m, "group_by": ["region", "region"]}, "grouped twice"),
                       ({"metrics": m, "explain": "yes"}, "explain not boolean"),
                       ({"metrics": m, "limit": 5}, "unknown key"),
                       ({"metrics": m, "where": {"qty": {"gt": "ten"}}}, "mistyped bound"),
                       ({"metrics": m, "where": {"day": {"gt": "2023-02-29"}}}, "no such day"),
                       ({"metrics": m, "where": {"at": {"gt": "2024-01-01T00:00:00"}}},
                        "datetime without offset"),
                       ({"metrics": m, "where": {"qty": {"gt": 1, "in": [1]}}},
                        "range mixed with in"),
                       ({"metrics": m, "where": {"qty": {"gt": None}}}, "null bound"),
                       ({"metrics": m, "where": {"qty": {"between": [1, 2]}}},
                        "unknown operator"),
                       ({"metrics": m, "where": {"qty": {"gt": 2 ** 63}}}, "bound past int64")]:
        r = st.aggregate("ledger", body)
        check(r.status == 400 and r.error_code() in ("bad_request", "invalid_document"),
              "%s %s: %r" % (what, json.dumps(body), r))
    r = st.aggregate("nosuchcoll", {"metrics": m})
    expect_error(r, 404, "not_found", "aggregate on an unknown collection")
    r = st.req("POST", "/v1/collections/ledger/query", {"where": {"price": {"gt": "1.234"}}})
    check(r.status == 400, "a bound finer than the scale: %r" % r)


# ---------------------------------------------------------------------------------------
# writes after the load


@test
def analytics_updates_and_deletes(ctx):
    st = state(ctx)
    rng = random.Random(1234 + 5)
    plain = [i for i in sorted(st.norm) if i.startswith("L") and
             st.norm[i].get("qty") is not None and abs(st.norm[i]["qty"]) < 10 ** 6 and
             st.norm[i].get("region") is not None]
    x, y, z, v = rng.sample(plain, 4)
    old_x = st.norm[x]["qty"]

    def write(did, doc, status):
        st.put("ledger", did, doc, status)
        write_model(did, doc)

    def write_model(did, doc):
        st.docs[did] = doc
        n = {f: doc[f] for f in ("acct", "region", "kind") if doc.get(f) is not None}
        for f in ("qty", "price", "day", "at"):
            if doc.get(f) is not None:
                n[f] = _norm(LFIELDS, f, doc[f])
        st.norm[did] = n

    # x: a new qty and price; y: rewritten four times; z: deleted; v: deleted and recreated
    write(x, dict(st.docs[x], qty=old_x + 1000003, price="-77.7"), 200)
    for k in range(4):
        write(y, {"acct": st.docs[y]["acct"], "region": st.docs[y]["region"],
                  "kind": "sell", "qty": -k * 11, "price": "%d.0%d" % (k, k)}, 200)
    r = st.req("DELETE", doc_path("ledger", z))
    check(r.status == 200, "delete %s: %r" % (z, r))
    del st.docs[z], st.norm[z]
    r = st.req("DELETE", doc_path("ledger", v))
    check(r.status == 200, "delete %s: %r" % (v, r))
    write(v, {"acct": "reborn", "region": "eu", "kind": "fee", "qty": 424242, "price": "0.5"},
          201)
    write("NEW1", {"acct": "fresh", "region": "us", "kind": "buy", "qty": -5, "price": 2}, 201)
    body = {"group_by": ["region", "kind"],
            "metrics": {"s": {"sum": "qty"}, "p": {"sum": "price"}, "a": {"avg": "qty"},
                        "n": {"count": "*"}, "c": {"count": "qty"}}}
    for token, mg, what in [(None, 0, "admin"), (st.analyst, 3, "analyst")]:
        want = expect_aggregate(LFIELDS, st.norm, {}, ["region", "kind"], body["metrics"], mg)
        r = st.aggregate("ledger", body, token)
        check(r.status == 200, "after writes (%s): %r" % (what, r))
        compare_aggregate("after writes (%s)" % what, body, r.json, want, ["region", "kind"])
    # the range index follows the writes too
    for val, want in [(old_x, {i for i, n in st.norm.items() if n.get("qty") == old_x}),
                      (old_x + 1000003, {i for i, n in st.norm.items()
                                         if n.get("qty") == old_x + 1000003}),
                      (424242, {v}), (-33, {y})]:
        got, _ = st.query_ids("ledger", {"where": {"qty": {"gte": val, "lte": val}}})
        check(got == want, "qty == %d after writes: got %s, want %s" % (val, sorted(got),
                                                                      sorted(want)))
    check(x not in st.query_ids("ledger", {"where": {"qty": {"gte": old_x, "lte": old_x}}})[0],
          "the old qty of %s still matches" % x)
    # the random aggregates once more, over the current data
    s = run_aggregates(st, random.Random(99), "ledger", LFIELDS, st.norm, 15,
                       ["region", "kind"], EQ_FIELDS, RANGE_FIELDS, LMETRICS, tag="after writes")
    check(s["groups"] >= 20, "too weak: %r" % s)
    # after a restart (new blocks of row numbers), more writes, and the same again
    st.env.stop()
    st.srv = st.env.start()
    want = expect_aggregate(LFIELDS, st.norm, {}, ["region", "kind"], body["metrics"])
    r = st.aggregate("ledger", body)
    check(r.status == 200, "after a restart: %r" % r)
    compare_aggregate("after a restart", body, r.json, want, ["region", "kind"])
    write(x, dict(st.docs[x], qty=-1, price="1"), 200)
    write(v, dict(st.docs[v], qty=0), 200)
    write("NEW2", {"acct": "fresh", "region": "us", "kind": "buy", "qty": 17, "price": "0.07",
                   "at": "2024-02-29T12:00:00+12:00", "day": "2024-02-29"}, 201)
    r = st.req("DELETE", doc_path("ledger", "NEW1"))
    check(r.status == 200, "delete NEW1: %r" % r)
    del st.docs["NEW1"], st.norm["NEW1"]
    s = run_aggregates(st, random.Random(98), "ledger", LFIELDS, st.norm, 15,
                       ["region", "kind", "acct"], EQ_FIELDS, RANGE_FIELDS, LMETRICS,
                       tag="after a restart and writes")
    check(s["groups"] >= 20, "too weak: %r" % s)
    # a bulk load with refused lines between stored ones (gaps in the row numbers)
    lines = [{"id": "G1", "doc": {"acct": "gap", "region": "eu", "qty": 11, "price": "1.10"}},
             {"id": "G2", "doc": {"acct": "gap", "region": "eu", "qty": "x"}},
             {"id": "G3", "doc": {"acct": "gap", "region": "eu", "qty": 13, "price": 1.3}},
             {"id": "G4", "doc": {"acct": "gap", "region": "eu", "price": "0.001"}},
             {"id": "G5", "doc": {"acct": "gap", "region": "eu", "qty": -7}}]
    r = st.srv.request("POST", "/v1/collections/ledger/bulk", token=st.admin,
                       body="".join(json.dumps(x) + "\n" for x in lines),
                       headers={"Content-Type": "application/x-ndjson"})
    check(r.status == 200, "bulk with refused lines: %r" % r)
    out = [json.loads(x) for x in r.body.decode().splitlines() if x.strip()]
    check([("error" in o) for o in out] == [False, True, False, True, False],
          "bulk lines: %r" % out)
    for x in (lines[0], lines[2], lines[4]):
        write_model(x["id"], x["doc"])
    gb = {"where": {"acct": "gap"}, "metrics": {"s": {"sum": "qty"}, "p": {"sum": "price"},
                                                "n": {"count": "*"}}}
    r = st.aggregate("ledger", gb)
    check(r.status == 200 and r.json["groups"] == [{"key": {}, "s": 17, "p": "2.40", "n": 3}],
          "sums over a bulk load with refused lines: %r" % r)
    got, _ = st.query_ids("ledger", {"where": {"at": {"gte": "2024-02-29T00:00:00Z",
                                                      "lte": "2024-02-29T00:00:00Z"}}})
    check(got == {i for i, n in st.norm.items() if n.get("at") == LEAP_INSTANT},
          "datetime written after the restart: %s" % sorted(got))


@test
def analytics_aggregates_during_writes(ctx):
    """Writers flip documents between two states while aggregates run: every answer must
    count each document wholly in one state (sums and counts from one snapshot)."""
    st = state(ctx)
    states = [(5, 250), (1000, 100)]                # (qty, price units)
    body = {"where": {"acct": "race"}, "group_by": ["region"],
            "metrics": {"s": {"sum": "qty"}, "p": {"sum": "price"}, "n": {"count": "*"},
                        "a": {"avg": "qty"}}}
    stop = threading.Event()
    errors = []

    def writer(w):
        k = 0
        while not stop.is_set() and not errors:
            q, u = states[k % 2]
            d = {"acct": "race", "region": "us", "qty": q, "price": fmt_units(u, 2)}
            try:
                r = st.srv.request("PUT", doc_path("ledger", "RACE%d" % w), body=d,
                                   token=st.admin)
                if r.status not in (200, 201):
                    errors.append("writer %d: %r" % (w, r))
            except (ConnectionError, http.client.HTTPException, OSError) as e:
                errors.append("writer %d: %s" % (w, e))
            k += 1

    ths = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    for t in ths:
        t.start()
    answers = bad = 0
    seen = set()
    try:
        deadline = time.time() + 3
        while time.time() < deadline and not errors and bad == 0:
            r = st.aggregate("ledger", body)
            check(r.status == 200, "aggregate during writes: %r" % r)
            answers += 1
            for g in r.json["groups"]:
                n, qs, ps = g["n"], g["s"], g["p"]
                fits = [a for a in range(n + 1)
                        if qs == a * 1000 + (n - a) * 5 and
                        ps == fmt_units(a * 100 + (n - a) * 250, 2)]
                if not fits or g["key"] != {"region": "us"} or n > 3:
                    bad += 1
                    errors.append("answer %r is no mix of whole documents" % g)
                seen.add((n, qs))
    finally:
        stop.set()
        for t in ths:
            t.join(60)
    check(not errors, "; ".join(errors[:5]))
    check(answers >= 10 and len(seen) >= 2, "the race was not run: %d answers, states %r"
          % (answers, sorted(seen)))
    diag("during writes: %d aggregates, %d distinct totals" % (answers, len(seen)))
    for w in range(3):   # the model follows the final documents
        r = st.req("GET", doc_path("ledger", "RACE%d" % w))
        check(r.status == 200, "race doc %d: %r" % (w, r))
        d = r.json["doc"]
        st.docs["RACE%d" % w] = d
        st.norm["RACE%d" % w] = {"acct": "race", "region": "us", "qty": d["qty"],
                                 "price": _norm(LFIELDS, "price", d["price"])}
    want = expect_aggregate(LFIELDS, st.norm, {"acct": ("in", {"race"})}, ["region"],
                            body["metrics"])
    r = st.aggregate("ledger", body)
    check(r.status == 200, "after the race: %r" % r)
    compare_aggregate("after the race", body, r.json, want, ["region"])


# ---------------------------------------------------------------------------------------
# explain and the command-line client


@test
def analytics_explain(ctx):
    st = state(ctx)
    bodies = [
        {"group_by": ["region"], "metrics": {"s": {"sum": "qty"}, "p": {"avg": "price"}}},
        {"where": {"kind": {"in": ["buy", "sell"]}, "qty": {"gte": -500, "lt": 800}},
         "group_by": ["region", "kind"],
         "metrics": {"s": {"sum": "qty"}, "n": {"count": "*"}, "p": {"sum": "price"}}},
        {"where": {"day": {"gte": "2024-02-29"}}, "metrics": {"n": {"count": "*"}}},
    ]
    pbody = {"where": {"amt": {"gte": "0"}}, "group_by": ["region"],
             "metrics": {"s": {"sum": "amt"}}}
    schema = cloud_schema(st.env)
    fails = []
    for coll, body in [("ledger", b) for b in bodies] + [("pledger", pbody)]:
        try:
            _explain_one(st, schema, coll, body)
        except Failure as e:
            fails.append(str(e))
    check(not fails, "%d of %d explained aggregates failed:\n%s"
          % (len(fails), len(bodies) + 1, "\n".join(fails)))


def _explain_one(st, schema, coll, body):
    plain = st.aggregate(coll, body)
    check(plain.status == 200, "without explain: %r" % plain)
    check("explain" not in plain.json, "explain without asking: %r" % plain)
    r = st.aggregate(coll, dict(body, explain=True))
    check(r.status == 200, "explain %s: %r" % (json.dumps(body), r))
    j = r.json
    check(j.get("groups") == plain.json["groups"] and
          j.get("suppressed") == plain.json["suppressed"],
          "explain changed the answer: %r vs %r" % (j, plain.json))
    ex = j.get("explain")
    check(isinstance(ex, dict) and isinstance(ex.get("store"), dict),
          "no explain object: %r" % j)
    s = ex["store"]
    table = s.get("table")
    check(isinstance(table, str) and any(t.endswith(table) for t in schema),
          "explain names table %r; the store has %s" % (table, sorted(schema)[:6]))
    cols = cloud_columns(st.env, table)
    wf = sorted(w.get("field") for w in s.get("where", []))
    check(wf == sorted(body.get("where", {})), "explain where fields %r" % wf)
    gf = [g.get("field") for g in s.get("group_by", [])]
    check(gf == body.get("group_by", []), "explain group_by %r" % gf)
    af = sorted({a.get("field") for a in s.get("aggregated", [])})
    want_af = sorted({list(m.values())[0] for m in body["metrics"].values()} - {"*"})
    check(af == want_af, "explain aggregated %r, want %r" % (af, want_af))
    for part in ("where", "group_by", "aggregated"):
        for e in s.get(part, []):
            c = e.get("column")
            check(isinstance(c, str) and c in cols,
                  "explain %s column %r of %s is not in the store's table" %
                  (part, c, e.get("field")))
    text = json.dumps(ex)
    for secret in ("buy", "sell", "-500", "2024-02-29"):
        check(secret not in text.replace('"field"', ""),
              "the explanation echoes a value %r" % secret)


def cloud_schema(env):
    con = sqlite3.connect("file:%s?mode=ro" % env.cloud_db(), uri=True, timeout=30)
    try:
        return [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    finally:
        con.close()


def cloud_columns(env, table):
    """The hex of every `col` value in the store's tables of this collection."""
    out = set()
    con = sqlite3.connect("file:%s?mode=ro" % env.cloud_db(), uri=True, timeout=30)
    try:
        for t in [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]:
            if not t.endswith("_" + table):
                continue
            names = [r[1] for r in con.execute('PRAGMA table_info("%s")' % t)]
            if "col" in names:
                for (c,) in con.execute('SELECT DISTINCT col FROM "%s"' % t):
                    out.add(bytes(c).hex())
    finally:
        con.close()
    return out


@test
def analytics_cli_aggregate(ctx):
    st = state(ctx)
    env = dict(os.environ, VEIL_ADDR=st.srv.url(), VEIL_TOKEN=st.admin)
    env.pop("VEIL_DATA", None)

    def veil(*args, stdin=None, e=env):
        return subprocess.run([st.veil] + list(args), input=stdin, capture_output=True,
                              text=True, env=e, timeout=60)

    body = {"where": {"region": {"in": ["eu", "us"]}}, "group_by": ["region"],
            "metrics": {"s": {"sum": "qty"}, "p": {"sum": "price"}, "n": {"count": "*"}}}
    http_answer = st.aggregate("ledger", body)
    check(http_answer.status == 200, "aggregate over HTTP: %r" % http_answer)
    p = veil("aggregate", "ledger", json.dumps(body))
    check(p.returncode == 0, "veil aggregate: %d %s" % (p.returncode, p.stderr[-500:]))
    check(json.loads(p.stdout) == http_answer.json, "veil aggregate printed %r" % p.stdout[:500])
    for g in json.loads(p.stdout)["groups"]:
        check(('"p":"%s"' % g["p"]) in p.stdout.replace(" ", ""),
              "the decimal sum is not printed as a string: %r" % p.stdout[:300])
    p = veil("aggregate", "ledger", "-", stdin=json.dumps(body))
    check(p.returncode == 0 and json.loads(p.stdout) == http_answer.json,
          "veil aggregate from stdin: %r" % p)
    p = veil("aggregate", "ledger", json.dumps({"metrics": {"s": {"sum": "big"}}}),
             e=dict(env, VEIL_TOKEN=st.analyst))
    check(p.returncode == 1 and p.stderr.startswith("veil: forbidden") and p.stdout == "",
          "forbidden over the CLI: %d %r" % (p.returncode, p.stderr))
    check(st.analyst not in p.stderr and st.admin not in p.stderr, "the CLI echoed a token")
    p = veil("aggregate", "--help")
    check(p.returncode == 0 and "usage" in p.stdout.lower(), "aggregate --help: %r" % p)
    p = veil("aggregate", "ledger")
    check(p.returncode == 2, "aggregate without a body exited %d" % p.returncode)


# ---------------------------------------------------------------------------------------
# opacity of the range and sum tactics (last: it stops the server)


def number_needles(label, n):
    out = {"%s text" % label: str(n).encode()}
    for name, v in (("", n), (" flipped", n ^ (1 << 63))):
        out["%s%s be64" % (label, name)] = struct.pack(">Q", v & (2 ** 64 - 1))
        out["%s%s le64" % (label, name)] = struct.pack("<Q", v & (2 ** 64 - 1))
        out["%s%s hex" % (label, name)] = struct.pack(">Q", v & (2 ** 64 - 1)).hex().encode()
    return out


def find_needles(needles, blobs):
    return ["%s in %s" % (nm, os.path.basename(f)) for nm, nd in needles.items()
            for f, b in blobs.items() if nd in b]


@test
def analytics_opacity_of_numbers(ctx):
    st = state(ctx)
    # Non-vacuous: the canaries are there, found by range and summed.
    got, _ = st.query_ids("ledger", {"where": {"price": {"gte": CANARY_PRICE,
                                                         "lte": CANARY_PRICE}}})
    check(got == {"C0", "C1", "C2"}, "canary price query: %s" % sorted(got))
    r = st.aggregate("ledger", {"where": {"acct": "canary"},
                                "metrics": {"q": {"sum": "qty"}, "p": {"sum": "price"}}})
    check(r.status == 200 and r.json["groups"] == [{"key": {}, "q": 3 * CANARY_QTY,
                                                    "p": "94012.26"}], "canary sums: %r" % r)
    needles = {}
    needles.update(number_needles("qty 7777777", CANARY_QTY))
    needles.update(number_needles("price units 3133742", 3133742))
    needles["price text"] = CANARY_PRICE.encode()
    needles["sum text"] = str(3 * CANARY_QTY).encode()
    ints = {CANARY_QTY: "qty", 3133742: "price units", 3 * CANARY_QTY: "qty sum",
            (CANARY_QTY ^ (1 << 63)) - (1 << 64): "flipped qty",
            (3133742 ^ (1 << 63)) - (1 << 64): "flipped price"}
    live = {f + " (live)": open(f, "rb").read() for f in st.env.cloud_files()}
    st.env.stop()   # asserts a clean exit with no sanitizer report
    files = st.env.cloud_files()
    blobs = {f: open(f, "rb").read() for f in files}
    blobs.update(live)
    check(sum(len(b) for b in blobs.values()) > 100000, "the cloud files are nearly empty")
    # positive control of the byte scanner
    planted = {"control": b"x" + struct.pack(">Q", CANARY_QTY) + b"y" + CANARY_PRICE.encode()}
    check(len(find_needles(needles, planted)) == 2, "the scanner misses planted needles")
    leaks = find_needles(needles, blobs)
    # every cell of the store, as SQLite returns it (integers are stored as varints)
    con = sqlite3.connect("file:%s?mode=ro" % st.env.cloud_db(), uri=True, timeout=30)
    cells = 0
    try:
        for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall():
            for row in con.execute('SELECT * FROM "%s"' % t):
                for c in row:
                    cells += 1
                    if isinstance(c, int) and c in ints:
                        leaks.append("%s as an integer cell of %s" % (ints[c], t))
                    elif isinstance(c, (bytes, str)):
                        b = c.encode() if isinstance(c, str) else bytes(c)
                        for nm, nd in needles.items():
                            if len(nd) >= 7 and nd in b:
                                leaks.append("%s in a cell of %s" % (nm, t))
    finally:
        con.close()
    check(not leaks, "plaintext numbers in the untrusted store: %s" % "; ".join(leaks[:10]))
    diag("opacity: %d needles, %d files, %d bytes, %d cells" % (
        len(needles), len(blobs), sum(len(b) for b in blobs.values()), cells))
