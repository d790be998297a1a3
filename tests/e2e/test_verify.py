"""test_verify.py: verified answers to filtered queries (issue 10).

A store holds, per document, index rows (column, token, document) that filtered queries
are answered from. A hostile store could drop one (the document silently leaves every
query on that value), add one (a document joins a value it does not have), move one from
one value to another, or roll the whole store back to an older copy. veil's claim: any
query such a change would alter answers 502 integrity_violation and the server logs
breach_suspected; a query it does not alter answers as before; and an honest store under
concurrent writes never gets a 502.

The attacks edit the store's SQLite file (cloud.db) while the server runs, the way a
hostile operator would. They never guess at rows: a probe document is written and its
rows found by the difference it makes to the store, and each field's column by replacing
one field of the probe at a time and seeing which column's rows change.

    verify_drop_index_row     one index row of the probe dropped: eq, in, a decimal range,
                              a date range, eq AND range, paged (every page 502)
    verify_add_index_row      a second probe given the queried eq, in or range token
    verify_move_token         a probe's token changed to another value's
    verify_store_rollback     the store put back to a copy taken before 20 more writes
    verify_concurrent_honest  writers and readers at once: no 5xx, no false alarm, and
                              afterwards every query is the writers' model
    verify_paging_complete    pages of 1, 7 and 100 together are the model, once each

Which answers must be a 502 and which may also be the honest answer: a query whose answer
the change alters must be 502 when the changed index is the one it is answered from (a
single condition; of eq AND range, the eq condition, which has the fewer documents); when
the changed index is one the query may not use at all (the range of eq AND range, the where
of a match), the answer must be the honest one or 502, never a different 200.
Imported by run.py (tests named verify_*).
"""

import decimal
import json
import os
import random
import sqlite3
import threading
import time
from decimal import Decimal

from harness import Env, Failure, check, doc_path, seg

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def diag(msg):  # replaced by run.py's diag
    pass


COLL = "inv"
POLICY = """collection: inv
fields:
  org:    { type: string,  protect: [eq] }
  state:  { type: string,  protect: [eq] }
  amount: { type: decimal, scale: 2, protect: [range, sum] }
  issued: { type: date,    protect: [range] }
  notes:  { type: text,    protect: [search] }
roles:
  clerk: { read: ["*"], write: true }
"""
WORDS = ["late", "payment", "reminder", "dispute", "refund", "urgent", "credit", "final"]
STATES = ["open", "paid", "late"]
HTTP_TIMEOUT = 60
PAGE = 7

# The probes: P matches every query below; P2 (org-3, paid, amount and date outside the
# ranges) is the document the add and move attacks give P's tokens to.
PROBE = {"org": "org-2", "state": "open", "amount": "1500.00", "issued": "2024-04-10",
         "notes": "late payment probe"}
PROBE2 = {"org": "org-3", "state": "paid", "amount": "3500.00", "issued": "2024-11-20",
          "notes": "late final probe"}
# One other value per field: replacing it shows the field's column.
OTHER = {"org": "org-probe", "state": "void", "amount": "1500.01", "issued": "2024-04-11"}

Q_EQ = {"where": {"org": "org-2"}}
Q_EQ3 = {"where": {"org": "org-3"}}
Q_IN = {"where": {"state": {"in": ["open", "late"]}}}
Q_PAID = {"where": {"state": "paid"}}
Q_AMOUNT = {"where": {"amount": {"gte": "1000", "lt": "3000"}}}
Q_ISSUED = {"where": {"issued": {"gte": "2024-03-01", "lte": "2024-06-15"}}}
Q_EQ_RANGE = {"where": {"org": "org-2", "amount": {"gt": "0"}}}
Q_MATCH_WHERE = {"where": {"org": "org-2"}, "match": {"notes": "late"}}
QUERIES = [
    ("eq", Q_EQ), ("eq org-3", Q_EQ3), ("in", Q_IN), ("eq state", Q_PAID),
    ("decimal range", Q_AMOUNT), ("date range", Q_ISSUED), ("eq and range", Q_EQ_RANGE),
    ("in and date range", {"where": {"state": {"in": ["paid", "late"]},
                                     "issued": {"lt": "2024-09-01"}}}),
    ("eq, in and range", {"where": {"org": {"in": ["org-0", "org-3"]}, "state": "paid",
                                    "amount": {"lte": "2500"}}}),
    ("match and where", Q_MATCH_WHERE),
    ("match any and range", {"where": {"amount": {"lt": "2000"}},
                             "match": {"notes": {"any": "refund final"}}}),
    ("match", {"match": {"notes": "late payment"}}),
    ("no where", {}),
    ("eq, nothing", {"where": {"org": "org-none"}}),
]


def inv(i, rng, gen=0):
    return {"org": "org-%d" % (i % 5), "state": STATES[i % 3],
            "amount": "%d.%02d" % (rng.randint(-500, 5000), rng.randint(0, 99)),
            "issued": "2024-%02d-%02d" % (1 + (i * 5) % 12, 1 + (i * 7) % 28),
            "notes": " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5))) +
                     (" revised%d" % gen if gen else "")}


# ---------------------------------------------------------------------------------------
# The model: which documents a query must return


def _key(field, v):
    return Decimal(v) if field == "amount" else v


# Aggregates read beside the queries under concurrent writes: the where-less ones are checked
# by margins, the others candidate by candidate (veil's verify.c).
AGGS = [
    ("count and sum by org", {"group_by": ["org"],
                              "metrics": {"n": {"count": "*"}, "s": {"sum": "amount"}}}),
    ("count by state and org", {"group_by": ["state", "org"], "metrics": {"n": {"count": "*"}}}),
    ("sum by state, one org", {"where": {"org": "org-1"}, "group_by": ["state"],
                               "metrics": {"n": {"count": "*"}, "s": {"sum": "amount"}}}),
    ("count by org, a range", {"where": {"amount": {"gte": "100"}}, "group_by": ["org"],
                               "metrics": {"n": {"count": "*"}}}),
    ("count by org, a word", {"match": {"notes": "late"}, "group_by": ["org"],
                              "metrics": {"n": {"count": "*"}}}),
]


def aggregate(srv, tok, body):
    return srv.request("POST", "/v1/collections/%s/aggregate" % seg(COLL), body=body,
                       token=tok, timeout=HTTP_TIMEOUT)


def model_groups(model, q):
    """The exact answer of an aggregate without match, from the model: sorted
    [(key, count, sum)] with sums as veil writes them."""
    groups = {}
    for _, d in model.values():
        if not matches(d, q):
            continue
        key = tuple(d[f] for f in q["group_by"])
        n, t = groups.get(key, (0, decimal.Decimal(0)))
        groups[key] = (n + 1, t + decimal.Decimal(d["amount"]))
    return sorted((k, n, "%.2f" % t) for k, (n, t) in groups.items())


def answer_groups(j, q):
    out = []
    for g in j["groups"]:
        key = tuple(g["key"][f] for f in q["group_by"])
        out.append((key, g.get("n"), g.get("s")))
    return sorted(out)


def matches(doc, q):
    for f, cond in q.get("where", {}).items():
        v = doc.get(f)
        if v is None:
            return False
        if not isinstance(cond, dict):
            cond = {"eq": cond}
        for op, arg in cond.items():
            if op == "eq" and v != arg:
                return False
            if op == "in" and v not in arg:
                return False
            if op in ("gt", "gte", "lt", "lte"):
                a, b = _key(f, v), _key(f, arg)
                if not {"gt": a > b, "gte": a >= b, "lt": a < b, "lte": a <= b}[op]:
                    return False
    for f, m in q.get("match", {}).items():
        have = set(doc.get(f, "").split())
        if isinstance(m, dict):
            if not any(w in have for w in m["any"].split()):
                return False
        elif not all(w in have for w in m.split()):
            return False
    return True


def model_answer(model, q):
    """model: {id: (version, doc)} -> sorted [(id, version)] the query must return."""
    return sorted((i, v) for i, (v, d) in model.items() if matches(d, q))


# ---------------------------------------------------------------------------------------
# Talking to the server


def query(srv, tok, body):
    return srv.request("POST", "/v1/collections/%s/query" % seg(COLL), body=body, token=tok,
                       timeout=HTTP_TIMEOUT)


def norm(r):
    """(200, [(id, version, doc)...]) or (status, error code)."""
    if r.status == 200:
        j = r.json
        check(isinstance(j, dict) and isinstance(j.get("docs"), list) and "next" in j,
              "query answer shape: %r" % (r,))
        return (200, [(d["id"], d["version"], d["doc"]) for d in j["docs"]])
    try:
        return (r.status, r.json["error"]["code"])
    except (Failure, KeyError, TypeError):
        return (r.status, r.body[:200])


def one(srv, tok, body):
    """The whole answer in one page (normalised)."""
    return norm(query(srv, tok, dict(body, limit=10000)))


def pages(srv, tok, body, limit, max_pages=5000):
    """Follows `next` to the end: [(cursor asked with, normalised page)]. Stops at the first
    page that is not a 200."""
    out, cur = [], None
    for _ in range(max_pages):
        b = dict(body, limit=limit)
        if cur is not None:
            b["after"] = cur
        r = query(srv, tok, b)
        out.append((cur, norm(r)))
        if r.status != 200:
            return out
        cur = r.json["next"]
        check(cur is None or isinstance(cur, str), "next is %r" % (cur,))
        if cur is None:
            return out
    raise Failure("%r: paging with limit %d did not end after %d pages" % (body, limit,
                                                                          max_pages))


def put(srv, tok, did, doc):
    r = srv.request("PUT", doc_path(COLL, did), body=doc, token=tok, timeout=HTTP_TIMEOUT)
    check(r.status in (200, 201), "put %s: %r" % (did, r))
    return r.json["version"]


def delete(srv, tok, did):
    r = srv.request("DELETE", doc_path(COLL, did), token=tok, timeout=HTTP_TIMEOUT)
    check(r.status == 200, "delete %s: %r" % (did, r))


def bulk(srv, tok, items):
    """items: [(id, doc)]; returns {id: version}."""
    text = "".join(json.dumps({"id": i, "doc": d}) + "\n" for i, d in items)
    r = srv.request("POST", "/v1/collections/%s/bulk" % seg(COLL), body=text, token=tok,
                    headers={"Content-Type": "application/x-ndjson"}, timeout=HTTP_TIMEOUT)
    check(r.status == 200, "bulk: %r" % (r,))
    out = [json.loads(x) for x in r.body.decode().splitlines() if x.strip()]
    check(len(out) == len(items), "bulk answered %d lines for %d" % (len(out), len(items)))
    vers = {}
    for o in out:
        check(o.get("status") in (200, 201) and "error" not in o, "bulk line: %r" % (o,))
        vers[o["id"]] = o["version"]
    return vers


def load(srv, tok, n, seed):
    """n documents: most in bulk batches, the rest singly, a few replaced and deleted on the
    way (so that versions differ). Returns the model {id: (version, doc)}."""
    rng = random.Random(seed)
    model = {}
    n_bulk = n * 3 // 4
    items = [("d%04d" % i, inv(i, rng)) for i in range(n_bulk)]
    for lo in range(0, len(items), 64):
        vers = bulk(srv, tok, items[lo:lo + 64])
        for did, d in items[lo:lo + 64]:
            model[did] = (vers[did], d)
    for i in range(n_bulk, n + 6):
        did = "d%04d" % i
        d = inv(i, rng)
        model[did] = (put(srv, tok, did, d), d)
    for i in range(3, n_bulk, 17):           # replaced: versions 2 and more
        did = "d%04d" % i
        d = inv(i, rng, gen=1)
        model[did] = (put(srv, tok, did, d), d)
    for i in range(n, n + 6):                 # deleted again: n remain
        delete(srv, tok, "d%04d" % i)
        del model["d%04d" % i]
    return model


def breaches(srv):
    return srv.stderr().count("breach_suspected")


def breach_logged(srv, n0, timeout=10):
    end = time.time() + timeout
    while breaches(srv) <= n0:
        if time.time() > end:
            return False
        time.sleep(0.02)
    return True


def ids(ans):
    return [(i, v) for i, v, _ in ans[1]] if ans[0] == 200 else ans


def describe(got, honest):
    """A short account of how an answer differs from the honest one."""
    if got[0] != 200:
        return "%d %s" % got
    if got == honest:
        return "the honest store's answer, as if nothing had changed"
    if honest[0] != 200:
        return "200 with %d documents (honest: %d %s)" % (len(got[1]), honest[0], honest[1])
    g = {(i, v) for i, v, _ in got[1]}
    h = {(i, v) for i, v, _ in honest[1]}
    return ("200 with %d documents instead of %d (missing %s, extra %s%s)"
            % (len(got[1]), len(honest[1]), sorted(h - g)[:5], sorted(g - h)[:5],
               ", same ids, other bodies or order" if g == h else ""))


def want_breach(srv, got, n0, what, honest=None):
    """got must be 502 integrity_violation, with a breach_suspected line logged."""
    if got != (502, "integrity_violation"):
        if honest is None:
            said = "200 with %d documents" % len(got[1]) if got[0] == 200 else "%d %s" % got
        else:
            said = describe(got, honest)
        raise Failure("%s: want 502 integrity_violation, got %s" % (what, said))
    check(breach_logged(srv, n0), "%s: 502 without breach_suspected in the log" % what)


def honest_or_breach(srv, got, honest, n0, what):
    """got must be the honest answer, or 502 integrity_violation with breach_suspected.
    Returns whether it was the 502."""
    if got == honest:
        return False
    want_breach(srv, got, n0, what + " (honest answer or 502)", honest)
    return True


# ---------------------------------------------------------------------------------------
# The store, edited behind the server's back


class Cloud:
    """cloud.db through Python's sqlite3, autocommit: each change is committed at once."""

    def __init__(self, env):
        self.con = sqlite3.connect(env.cloud_db(), timeout=30, isolation_level=None)
        best = None
        for (t,) in self.con.execute("SELECT name FROM sqlite_master WHERE type='table' AND "
                                     "name LIKE 'r\\_%' ESCAPE '\\'"):
            n = self.con.execute('SELECT count(*) FROM "%s"' % t).fetchone()[0]
            if best is None or n > best[1]:
                best = (t, n)
        check(best is not None and best[1] > 0, "no row table holds documents")
        self.r = best[0]
        self.x = "x_" + best[0][2:]

    def close(self):
        self.con.close()

    def docs(self):
        return {bytes(d) for (d,) in self.con.execute('SELECT doc FROM "%s"' % self.r)}

    def by_col(self, doc):
        """{col: frozenset(tok)} of a document's index rows."""
        out = {}
        for c, t in self.con.execute('SELECT col, tok FROM "%s" WHERE doc = ?' % self.x,
                                     (doc,)):
            out.setdefault(bytes(c), set()).add(bytes(t))
        return {c: frozenset(t) for c, t in out.items()}

    def members(self, col, tok):
        return {bytes(d) for (d,) in self.con.execute(
            'SELECT doc FROM "%s" WHERE col = ? AND tok = ?' % self.x, (col, tok))}

    def drop(self, col, tok, doc):
        c = self.con.execute('DELETE FROM "%s" WHERE col = ? AND tok = ? AND doc = ?' % self.x,
                             (col, tok, doc))
        check(c.rowcount == 1, "the drop hit %d rows" % c.rowcount)

    def add(self, col, tok, doc):
        self.con.execute('INSERT INTO "%s"(col, part, tok, doc, seq) VALUES (?,'
                         ' (SELECT max(part) FROM "%s"), ?, ?, (SELECT seq FROM "%s" WHERE doc = ?))'
                         % (self.x, "q_" + self.x[2:], self.r), (col, tok, doc, doc))

    def retok(self, col, tok, doc, new):
        c = self.con.execute('UPDATE "%s" SET tok = ? WHERE col = ? AND tok = ? AND doc = ?'
                             % self.x, (new, col, tok, doc))
        check(c.rowcount == 1, "the move hit %d rows" % c.rowcount)


def learn(srv, tok, cloud, model):
    """Writes the probes; returns (P, P2, cols, rows): their document tokens, each indexed
    field's column, and {doc: {col: tokens}} of both probes."""
    toks = {}
    for did, d in (("probe", PROBE), ("probe2", PROBE2)):
        before = cloud.docs()
        model[did] = (put(srv, tok, did, d), d)
        new = cloud.docs() - before
        check(len(new) == 1, "writing %s added %d rows to %s" % (did, len(new), cloud.r))
        toks[did] = new.pop()
    p, p2 = toks["probe"], toks["probe2"]
    base = cloud.by_col(p)
    cols = {}
    for f, other in OTHER.items():
        put(srv, tok, "probe", dict(PROBE, **{f: other}))
        now = cloud.by_col(p)
        changed = [c for c in set(base) | set(now) if base.get(c) != now.get(c)]
        check(len(changed) == 1, "replacing %s changed %d columns of the probe's index rows"
              % (f, len(changed)))
        cols[f] = changed[0]
        model["probe"] = (put(srv, tok, "probe", PROBE), PROBE)
        check(cloud.by_col(p) == base, "the probe's index rows did not come back")
    check(len(base[cols["org"]]) == 1 and len(base[cols["state"]]) == 1,
          "an eq field has more than one index row per document")
    check(len(base[cols["amount"]]) > 1 and len(base[cols["issued"]]) > 1,
          "a range field has a single index row per document")
    rows = {p: base, p2: cloud.by_col(p2)}
    check(set(rows[p2]) == set(base), "the two probes are indexed under other columns")
    return p, p2, cols, rows


def the(s):
    check(len(s) == 1, "want one token, have %d" % len(s))
    return next(iter(s))


class Attack:
    """Everything an attack needs: the server, the store, the probes, the honest answers."""

    def __init__(self, env, n=200, seed=1010):
        self.env = env
        self.tok = env.tokens[("acme", "admin")]
        self.srv = env.start()
        self.model = load(self.srv, self.tok, n, seed)
        self.cloud = Cloud(env)
        self.p, self.p2, self.cols, self.rows = learn(self.srv, self.tok, self.cloud,
                                                      self.model)
        self.honest = {}
        self.paged = {}
        for name, q in QUERIES:
            self.honest[name] = one(self.srv, self.tok, q)
            want = model_answer(self.model, q)
            check(sorted(ids(self.honest[name])) == want, "honest %s is not the model's: %s"
                  % (name, describe(self.honest[name], (200, [(i, v, None) for i, v in want]))))
        for name, q in QUERIES:
            if name.startswith("match"):
                continue
            self.paged[name] = pages(self.srv, self.tok, q, PAGE)
            flat = [x for _, pg in self.paged[name] for x in pg[1]]
            check(flat == self.honest[name][1],
                  "%s in pages of %d is not the one-page answer" % (name, PAGE))
        check(len(self.honest["eq"][1]) > 3 * PAGE and
              any(i == "probe" for i, _, _ in self.honest["eq"][1]),
              "the eq query is too short to page, or misses the probe")
        self.q = dict(QUERIES)

    def tok_of(self, doc, field):
        return self.rows[doc][self.cols[field]]

    def check_one(self, name, what, strict=True):
        """Asks query `name` once: strict, a 502 with breach; otherwise the honest answer or
        that 502. Returns whether it was a 502."""
        n0 = breaches(self.srv)
        got = one(self.srv, self.tok, self.q[name])
        what = "%s: query %s %s" % (what, name, json.dumps(self.q[name]))
        if strict:
            want_breach(self.srv, got, n0, what, self.honest[name])
            return True
        return honest_or_breach(self.srv, got, self.honest[name], n0, what)

    def check_pages(self, name, what, strict=True):
        """Asks every page of the paged query `name` again with the honest cursors: strict,
        every page is a 502 with breach; otherwise each is its honest page or that 502, and
        at least one is the 502."""
        n502 = 0
        for k, (cur, honest) in enumerate(self.paged[name]):
            b = dict(self.q[name], limit=PAGE)
            if cur is not None:
                b["after"] = cur
            n0 = breaches(self.srv)
            got = norm(query(self.srv, self.tok, b))
            w = "%s: query %s, page %d of %d (limit %d)" % (what, name, k + 1,
                                                           len(self.paged[name]), PAGE)
            if strict:
                want_breach(self.srv, got, n0, w, honest)
                n502 += 1
            else:
                n502 += honest_or_breach(self.srv, got, honest, n0, w)
        check(n502 > 0, "%s: query %s in pages of %d: no page noticed" % (what, name, PAGE))

    def still_honest(self, what):
        for name, q in QUERIES:
            got = one(self.srv, self.tok, q)
            check(got == self.honest[name], "%s, put back: query %s answers %s"
                  % (what, name, describe(got, self.honest[name])))

    def relevant(self, doc, field, name):
        """Of doc's index rows of a range field, the one query `name` is answered from:
        dropped one at a time, the one whose drop changes the answer. Every other drop must
        leave the answer honest; the relevant one must give a 502 (or, where the query may
        not use this index, may leave it honest). Returns the relevant token or None."""
        col = self.cols[field]
        found = None
        for t in sorted(self.rows[doc][col]):
            self.cloud.drop(col, t, doc)
            try:
                n0 = breaches(self.srv)
                got = one(self.srv, self.tok, self.q[name])
            finally:
                self.cloud.add(col, t, doc)
            what = ("drop one %s index row of the probe: query %s %s"
                    % (field, name, json.dumps(self.q[name])))
            if honest_or_breach(self.srv, got, self.honest[name], n0, what):
                check(found is None, "%s: two of the probe's %s rows both matter"
                      % (what, field))
                found = t
        return found


# ---------------------------------------------------------------------------------------


@test
def verify_drop_index_row(ctx):
    env = Env(ctx.veil, POLICY)
    try:
        a = Attack(env)
        cl, p = a.cloud, a.p
        done = []
        # eq, in and eq AND range (whose eq condition has the fewer documents): the eq row
        for field, names, paged in (("org", ("eq", "eq and range"), ("eq", "eq and range")),
                                    ("state", ("in",), ("in",))):
            col, t = a.cols[field], the(a.tok_of(p, field))
            what = "drop the probe's %s index row" % field
            cl.drop(col, t, p)
            try:
                for name in names:
                    a.check_one(name, what)
                for name in paged:
                    a.check_pages(name, what)
                # match AND where: the where may be checked on the opened documents
                if field == "org":
                    a.check_one("match and where", what, strict=False)
            finally:
                cl.add(col, t, p)
            done.append(field)
            a.still_honest(what)
        # ranges: the one prefix row in the query's cover, found by dropping each in turn
        for field, name in (("amount", "decimal range"), ("issued", "date range")):
            t = a.relevant(p, field, name)
            check(t is not None, "no %s index row of the probe answers query %s: nothing was "
                  "noticed" % (field, name))
            what = "drop the probe's %s index row in the cover of %s" % (field, name)
            cl.drop(a.cols[field], t, p)
            try:
                a.check_one(name, what)
                a.check_pages(name, what)
            finally:
                cl.add(a.cols[field], t, p)
            a.still_honest(what)
            done.append(field)
        # eq AND range: the range row may be unused, but never shortens the answer
        t = a.relevant(p, "amount", "eq and range")
        diag("eq and range with the probe's amount row dropped: %s"
             % ("502" if t is not None else "the honest answer (the range is not used)"))
        diag("dropped one index row each of %s: every answer 502 with breach_suspected"
             % ", ".join(done))
        env.stop()
    finally:
        env.close()


@test
def verify_add_index_row(ctx):
    env = Env(ctx.veil, POLICY)
    try:
        a = Attack(env)
        cl, p, p2 = a.cloud, a.p, a.p2
        check(p2 not in cl.members(a.cols["org"], the(a.tok_of(p, "org"))),
              "the second probe is already under org-2")
        cases = [("org", a.tok_of(p, "org"), ("eq", "eq and range"), ("eq",)),
                 ("state", a.tok_of(p, "state"), ("in",), ("in",))]
        # the range: each of the probe's amount tokens the second probe (outside the range)
        # does not have, given to it in turn; the one in the query's cover must be noticed,
        # the others change nothing
        col = a.cols["amount"]
        cover = []
        for t in sorted(a.tok_of(p, "amount") - a.tok_of(p2, "amount")):
            cl.add(col, t, p2)
            try:
                if a.check_one("decimal range", "give the second probe one of the probe's "
                               "amount tokens", strict=False):
                    cover.append(t)
            finally:
                cl.drop(col, t, p2)
        check(len(cover) == 1, "%d of the probe's amount tokens were noticed in the decimal "
              "range query, want the one in its cover" % len(cover))
        cases.append(("amount", set(cover), ("decimal range",), ("decimal range",)))
        for field, toks, names, paged in cases:
            col, t = a.cols[field], the(toks)
            check(t not in a.tok_of(p2, field), "the second probe already has the token")
            what = "give the second probe the probe's %s token" % field
            cl.add(col, t, p2)
            try:
                for name in names:
                    a.check_one(name, what)
                for name in paged:
                    a.check_pages(name, what, strict=False)
                if field == "org":
                    a.check_one("match and where", what, strict=False)
            finally:
                cl.drop(col, t, p2)
            a.still_honest(what)
        env.stop()
    finally:
        env.close()


@test
def verify_move_token(ctx):
    env = Env(ctx.veil, POLICY)
    try:
        a = Attack(env)
        cl, p, p2 = a.cloud, a.p, a.p2
        # the second probe moved from org-3 to org-2, and the probe from open to paid, in
        # the index only: the query it left loses it, the one it joins gains it
        for doc, field, to, left, joined in (
                (p2, "org", the(a.tok_of(p, "org")), "eq org-3", "eq"),
                (p, "state", the(a.tok_of(p2, "state")), "in", "eq state")):
            col, t = a.cols[field], the(a.tok_of(doc, field))
            what = "move a probe's %s index row to another value's token" % field
            cl.retok(col, t, doc, to)
            try:
                a.check_one(left, what)
                a.check_one(joined, what)
                a.check_pages(left, what)
                a.check_pages(joined, what, strict=False)
            finally:
                cl.retok(col, to, doc, t)
            a.still_honest(what)
        env.stop()
    finally:
        env.close()


def store_copy(src_path, dst_path):
    """SQLite's online backup of src into dst (WAL and all)."""
    src = sqlite3.connect(src_path, timeout=30)
    dst = sqlite3.connect(dst_path, timeout=30)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


@test
def verify_store_rollback(ctx):
    env = Env(ctx.veil, POLICY)
    try:
        tok = env.tokens[("acme", "admin")]
        srv = env.start()
        model = load(srv, tok, 200, 2020)
        old = os.path.join(env.tmp, "cloud.old")
        store_copy(env.cloud_db(), old)
        rng = random.Random(2021)
        new = {}
        for i in range(500, 520):
            did = "n%04d" % i
            d = inv(i, rng)
            new[did] = (put(srv, tok, did, d), d)
        model.update(new)
        for name, q in QUERIES:
            got = one(srv, tok, q)
            check(got[0] == 200 and sorted(ids(got)) == model_answer(model, q),
                  "before the rollback, %s is not the model's: %s" % (name, describe(got,
                                                                                     (200, []))))
        env.stop()
        store_copy(old, env.cloud_db())
        try:
            srv = env.start()
        except Failure as e:
            check("accept-rollback" in str(e), "veil did not start on a store rolled back, "
                  "and did not say why: %s" % e)
            diag("veil refused to start on the rolled-back store (accept-rollback)")
            return
        n502 = 0
        for name, q in QUERIES:
            want = model_answer(model, q)
            lost = [x for x in want if x[0] in new]
            n0 = breaches(srv)
            got = one(srv, tok, q)
            what = "store rolled back past %d writes: query %s %s" % (len(new), name,
                                                                      json.dumps(q))
            if lost:
                want_breach(srv, got, n0, "%s (the answer has %d of the lost documents)"
                            % (what, len(lost)), (200, [(i, v, None) for i, v in want]))
                n502 += 1
                if name == "no where":
                    # The listing pages through the trusted state's own list: a page with
                    # no lost document is the honest page, one with a lost document a 502.
                    n0 = breaches(srv)
                    first = pages(srv, tok, q, PAGE)[0][1]
                    if first != (502, "integrity_violation"):
                        check(first[0] == 200 and len(first[1]) == PAGE and
                              all((i, v) in want and i not in new for i, v, _ in first[1]),
                              "%s, first page of %d: %s" % (what, PAGE,
                                                           describe(first, (200, []))))
                    else:
                        want_breach(srv, first, n0, what + ", first page of %d" % PAGE)
                elif name != "match":
                    n0 = breaches(srv)
                    first = pages(srv, tok, q, PAGE)[0][1]
                    want_breach(srv, first, n0, what + ", first page of %d" % PAGE)
            elif got != (502, "integrity_violation"):
                check(got[0] == 200 and sorted(ids(got)) == want,
                      "%s: got %s, the model has %d" % (what, describe(got, (200, [])),
                                                        len(want)))
        check(n502 >= 5, "only %d queries would list the lost documents" % n502)
        diag("rolled back past %d new documents: %d queries that list them answered 502"
             % (len(new), n502))
        env.stop()
    finally:
        env.close()


# ---------------------------------------------------------------------------------------
# The honest path


def rand_doc(rng, gen):
    return {"org": "org-%d" % rng.randrange(4), "state": rng.choice(STATES),
            "amount": "%d.%02d" % (rng.randint(-500, 5000), rng.randint(0, 99)),
            "issued": "2024-%02d-%02d" % (rng.randint(1, 12), rng.randint(1, 28)),
            "notes": " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5))) +
                     " gen%d" % gen}


def final_check(srv, tok, model, limits, what):
    """Every query, in one page and in pages of each limit, is exactly the model: the same
    ids and versions and bodies, each once."""
    for name, q in QUERIES:
        want = model_answer(model, q)
        got = one(srv, tok, q)
        check(got[0] == 200, "%s: %s answered %s" % (what, name, got))
        check(sorted(ids(got)) == want, "%s: query %s: %s" % (
            what, name, describe(got, (200, [(i, v, None) for i, v in want]))))
        for i, v, d in got[1]:
            check(d == model[i][1], "%s: query %s: %s reads %r, written %r"
                  % (what, name, i, d, model[i][1]))
        for lim in limits:
            pg = pages(srv, tok, q, lim)
            seen = []
            for k, (_, ans) in enumerate(pg):
                check(ans[0] == 200, "%s: query %s, page %d of limit %d: %s"
                      % (what, name, k + 1, lim, ans))
                check(len(ans[1]) <= lim, "%s: query %s: a page of %d with limit %d"
                      % (what, name, len(ans[1]), lim))
                for i, v, d in ans[1]:
                    check(d == model[i][1], "%s: %s paged reads other data" % (what, i))
                    seen.append((i, v))
            dup = sorted({x for x in seen if seen.count(x) > 1})
            check(not dup, "%s: query %s in pages of %d lists %s twice"
                  % (what, name, lim, dup[:5]))
            check(sorted(seen) == want, "%s: query %s in %d pages of %d: %d documents, "
                  "the model has %d (missing %s, extra %s)"
                  % (what, name, len(pg), lim, len(seen), len(want),
                     sorted(set(want) - set(seen))[:5], sorted(set(seen) - set(want))[:5]))


@test
def verify_concurrent_honest(ctx):
    env = Env(ctx.veil, POLICY)
    try:
        tok = env.tokens[("acme", "admin")]
        srv = env.start()
        seconds = float(os.environ.get("VEIL_VERIFY_SECONDS", "15"))
        n_writers, n_readers, per_writer = 4, 4, 30
        models = [{} for _ in range(n_writers)]
        for w in range(n_writers):
            rng = random.Random(w)
            items = [("w%d-%02d" % (w, k), rand_doc(rng, 0)) for k in range(per_writer)]
            vers = bulk(srv, tok, items)
            for did, d in items:
                models[w][did] = (vers[did], d)
        stop = threading.Event()
        errors = []
        counts = {"writes": 0, "reads": 0, "pages": 0, "aggregates": 0, "429": 0}
        lock = threading.Lock()

        def bump(key):
            with lock:
                counts[key] += 1

        def bad(msg):
            with lock:
                errors.append(msg)
            stop.set()

        def writer(w):
            rng = random.Random(100 + w)
            m, gen = models[w], 0
            try:
                while not stop.is_set():
                    gen += 1
                    x = rng.random()
                    did = "w%d-%02d" % (w, rng.randrange(per_writer + 10))
                    if x < 0.5:
                        d = rand_doc(rng, gen)
                        r = srv.request("PUT", doc_path(COLL, did), body=d, token=tok,
                                        timeout=HTTP_TIMEOUT)
                        if r.status in (200, 201):
                            m[did] = (r.json["version"], d)
                        elif r.status == 429:
                            bump("429")
                            time.sleep(0.2)
                        else:
                            return bad("writer %d: PUT %s answered %r" % (w, did, r))
                    elif x < 0.7:
                        r = srv.request("DELETE", doc_path(COLL, did), token=tok,
                                        timeout=HTTP_TIMEOUT)
                        if r.status == (200 if did in m else 404):
                            m.pop(did, None)
                        elif r.status == 429:
                            bump("429")
                            time.sleep(0.2)
                        else:
                            return bad("writer %d: DELETE %s answered %r (the model has it: "
                                       "%s)" % (w, did, r, did in m))
                    else:
                        ks = rng.sample(range(per_writer + 10), rng.randint(2, 8))
                        items = [("w%d-%02d" % (w, k), rand_doc(rng, gen)) for k in ks]
                        text = "".join(json.dumps({"id": i, "doc": d}) + "\n"
                                       for i, d in items)
                        r = srv.request("POST", "/v1/collections/%s/bulk" % COLL, body=text,
                                        token=tok, timeout=HTTP_TIMEOUT,
                                        headers={"Content-Type": "application/x-ndjson"})
                        if r.status == 429:
                            bump("429")
                            time.sleep(0.2)
                            continue
                        if r.status != 200:
                            return bad("writer %d: bulk answered %r" % (w, r))
                        lines = [json.loads(s) for s in r.body.decode().splitlines()
                                 if s.strip()]
                        if len(lines) != len(items):
                            return bad("writer %d: bulk answered %d lines for %d"
                                       % (w, len(lines), len(items)))
                        for (i, d), o in zip(items, lines):
                            if o.get("id") != i or o.get("status") not in (200, 201):
                                return bad("writer %d: bulk line %r" % (w, o))
                            m[i] = (o["version"], d)
                    with lock:
                        counts["writes"] += 1
            except Exception as e:  # noqa: BLE001 - a writer's crash fails the test
                bad("writer %d: %s: %s" % (w, type(e).__name__, e))

        def reader(rd):
            rng = random.Random(200 + rd)
            try:
                while not stop.is_set():
                    if rng.random() < 0.3:
                        name, q = rng.choice(AGGS)
                        r = aggregate(srv, tok, q)
                        if r.status == 429:
                            bump("429")
                            time.sleep(0.2)
                        elif r.status != 200:
                            return bad("reader %d: aggregate %s answered %r" % (rd, name, r))
                        else:
                            bump("aggregates")
                        continue
                    name, q = rng.choice(QUERIES)
                    paged = rng.random() < 0.6
                    lim = rng.randint(5, 50) if paged else 10000
                    cur, k = None, 0
                    while not stop.is_set():
                        b = dict(q, limit=lim)
                        if cur is not None:
                            b["after"] = cur
                        r = query(srv, tok, b)
                        k += 1
                        if r.status == 429:
                            bump("429")
                            time.sleep(0.2)
                            continue
                        if r.status != 200:
                            return bad("reader %d: query %s %s (limit %d, page %d) answered "
                                       "%r" % (rd, name, json.dumps(q), lim, k, r))
                        for doc in r.json["docs"]:
                            if not matches(doc["doc"], q):
                                return bad("reader %d: query %s %s returned %s, which does "
                                           "not match: %r" % (rd, name, json.dumps(q),
                                                              doc["id"], doc["doc"]))
                        with lock:
                            counts["pages"] += 1
                        cur = r.json["next"]
                        if cur is None:
                            break
                        if k > 2000:
                            return bad("reader %d: query %s did not stop paging" % (rd, name))
                    with lock:
                        counts["reads"] += 1
            except Exception as e:  # noqa: BLE001
                bad("reader %d: %s: %s" % (rd, type(e).__name__, e))

        ts = [threading.Thread(target=writer, args=(w,)) for w in range(n_writers)]
        ts += [threading.Thread(target=reader, args=(r,)) for r in range(n_readers)]
        for t in ts:
            t.start()
        stop.wait(seconds)
        stop.set()
        for t in ts:
            t.join(HTTP_TIMEOUT * 2)
        check(not any(t.is_alive() for t in ts), "a client thread hangs")
        check(not errors, "under concurrent honest writes:\n" + "\n".join(errors[:10]))
        check("breach_suspected" not in srv.stderr(), "a false integrity alarm:\n" +
              "\n".join(ln for ln in srv.stderr().splitlines() if "breach" in ln)[:3000])
        check(counts["writes"] > 20 and counts["reads"] > 20,
              "too little happened to tell: %r" % counts)
        model = {}
        for m in models:
            model.update(m)
        final_check(srv, tok, model, (7,), "after the writers stopped")
        for name, q in AGGS:
            r = aggregate(srv, tok, q)
            check(r.status == 200, "after the writers stopped: aggregate %s answered %r"
                  % (name, r))
            if "match" not in q:
                want = model_groups(model, dict(q, metrics=None))
                got = answer_groups(r.json, q)
                if "s" not in q["metrics"]:
                    want = [(k, n, None) for k, n, _ in want]
                check(got == want, "after the writers stopped: aggregate %s: %r, the model "
                      "says %r" % (name, got, want))
        diag("%.0fs: %d writes, %d queries (%d pages) and %d aggregates by %d writers and %d "
             "readers, %d answered 429; %d documents at the end"
             % (seconds, counts["writes"], counts["reads"], counts["pages"],
                counts["aggregates"], n_writers, n_readers, counts["429"], len(model)))
        env.stop()
    finally:
        env.close()


@test
def verify_paging_complete(ctx):
    env = Env(ctx.veil, POLICY)
    try:
        tok = env.tokens[("acme", "admin")]
        srv = env.start()
        model = load(srv, tok, 300, 3030)
        check(len(model) == 300, "loaded %d documents" % len(model))
        final_check(srv, tok, model, (1, 7, 100), "300 documents")
        env.stop()
    finally:
        env.close()
