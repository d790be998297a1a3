"""test_answers.py: what a hostile store answers, cursors, paging and averages (issue 8).

Imported by run.py; its tests are named answers_* (`run.py -k answers` runs only them).
Each test makes a data directory of its own and starts its own server.

    answers_malformed_store_data_is_a_breach
        The store's SQLite file is edited while the server runs, as a hostile operator
        would: index values as text, sum rows with negative, repeated, huge (2^63-1 twice:
        the run finder's overflow) or moved sequence numbers, limbs as text or beyond 32
        bits, a Paillier cell as text, a row's blob or seq as text, an index token of the
        wrong length. Every read that meets them answers 502 integrity_violation (never 503
        store_unavailable, never 500) and the server logs breach_suspected; put back, the
        same read answers 200.
    answers_cursors_are_bound
        A `next` cursor replayed with another where or match, by another role, in another
        collection or another tenant is 400; with the same query (select and limit may
        change) it pages on.
    answers_paging_after_bulk_loads
        Over documents loaded in bulk batches (index entries holding many documents) and
        singly: every page of every query (match all/any, with and without where, plain
        with and without where, several page sizes) pages on to the end, no page is longer
        than its limit, and the pages together are the one-page answer.
    answers_avg_precision
        An average is the exact mean rounded half to even to the field's scale + 2 decimal
        places (integers: 2), written with no more digits than that; explain says so.
"""

import json
import random
import re
import sqlite3
import time
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

from harness import Env, Failure, check, doc_path, expect_error, seg

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def diag(msg):  # replaced by run.py's diag
    pass


POLICY = """collection: books
fields:
  org:    { type: string,  protect: [eq] }
  state:  { type: string,  protect: [eq] }
  amount: { type: decimal, scale: 2, protect: [sum, range] }
  qty:    { type: integer, protect: [sum] }
  notes:  { type: text,    protect: [search] }
roles:
  clerk:   { read: ["*"], write: true }
  auditor: { read: [org, state, amount] }
"""

LEDGER = """collection: ledger
fields:
  org:   { type: string,  protect: [eq] }
  units: { type: integer, protect: [sum], sum: { scheme: paillier, bits: 2048 } }
roles:
  clerk: { read: ["*"], write: true }
"""

WORDS = ["late", "payment", "reminder", "dispute", "refund", "urgent", "credit", "final"]


def book(i, rng):
    return {"org": "org-%d" % (i % 4), "state": ["open", "paid", "late"][i % 3],
            "amount": "%d.%02d" % (rng.randint(-500, 5000), rng.randint(0, 99)),
            "qty": rng.randint(-20, 300),
            "notes": " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 6)))}


def post(srv, tok, coll, what, body):
    return srv.request("POST", "/v1/collections/%s/%s" % (seg(coll), what), body=body,
                       token=tok)


def bulk(srv, tok, coll, items):
    lines = "".join(json.dumps({"id": i, "doc": d}) + "\n" for i, d in items)
    r = srv.request("POST", "/v1/collections/%s/bulk" % seg(coll), body=lines, token=tok,
                    headers={"Content-Type": "application/x-ndjson"})
    check(r.status == 200, "bulk: %r" % r)
    out = [json.loads(x) for x in r.body.decode().splitlines() if x.strip()]
    check(len(out) == len(items) and all(o.get("status") in (200, 201) for o in out),
          "bulk lines refused: %r" % [o for o in out if o.get("status") not in (200, 201)][:3])


def put(srv, tok, coll, did, doc):
    r = srv.request("PUT", doc_path(coll, did), body=doc, token=tok)
    check(r.status in (200, 201), "put %s: %r" % (did, r))


def load(env, srv, tok, n_bulk, n_single, seed):
    """Bulk batches of varied sizes, then single puts; returns {id: doc}."""
    rng = random.Random(seed)
    docs = {}
    i = 0
    for size in (n_bulk // 2, n_bulk // 3, n_bulk - n_bulk // 2 - n_bulk // 3):
        items = []
        for _ in range(size):
            did = "b%04d" % i
            docs[did] = book(i, rng)
            items.append((did, docs[did]))
            i += 1
        bulk(srv, tok, "books", items)
    for _ in range(n_single):
        did = "s%04d" % i
        docs[did] = book(i, rng)
        put(srv, tok, "books", did, docs[did])
        i += 1
    return docs


def table_of(env, prefix):
    """The one SQL table of the cloud store whose name starts with prefix (e.g. "s_")."""
    con = sqlite3.connect("file:%s?mode=ro" % env.cloud_db(), uri=True, timeout=30)
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")
                 if r[0].startswith(prefix)]
    finally:
        con.close()
    return names


# ---------------------------------------------------------------------------------------


def breaches(srv):
    return srv.stderr().count("breach_suspected")


def breach_logged(srv, n0, timeout=10):
    """Whether the server logged breach_suspected more than n0 times (its stderr is read
    by a thread: the line may come a moment after the answer)."""
    end = time.time() + timeout
    while breaches(srv) <= n0:
        if time.time() > end:
            return False
        time.sleep(0.05)
    return True


class Store:
    """The cloud store's SQLite file, edited behind the server's back (it keeps running)."""

    def __init__(self, env):
        self.con = sqlite3.connect(env.cloud_db(), timeout=30, isolation_level=None)

    def rows(self, sql, *args):
        return self.con.execute(sql, args).fetchall()

    def run(self, sql, *args):
        c = self.con.execute(sql, args)
        return c.rowcount

    def close(self):
        self.con.close()


@test
def answers_malformed_store_data_is_a_breach(ctx):
    env = Env(ctx.veil, POLICY)
    try:
        env.apply("acme", LEDGER, name="ledger.yaml")
        tok = env.tokens[("acme", "admin")]
        srv = env.start()
        load(env, srv, tok, 30, 6, 808)
        for i in range(6):
            put(srv, tok, "ledger", "l%d" % i, {"org": "o%d" % (i % 2), "units": 10 * i - 7})
        st = Store(env)
        # The installation's rollback marks live in an opaque table of their own, with no
        # rows: the collections' tables are the ones holding rows.
        rtables = [r for r in table_of(env, "r_")
                   if st.rows('SELECT count(*) FROM "%s"' % r)[0][0] > 0]
        check(len(rtables) == 2, "two collections, two row tables: %r" % rtables)
        tables = {}   # the ledger's table is the one with Paillier cells
        for r in rtables:
            n = st.rows('SELECT count(*) FROM "p_%s"' % r[2:])[0][0]
            tables["ledger" if n > 0 else "books"] = r[2:]
        B, L = tables["books"], tables["ledger"]
        first_doc = st.rows('SELECT doc FROM "r_%s" ORDER BY doc LIMIT 1' % B)[0][0]
        reads = {
            "search": lambda: post(srv, tok, "books", "query", {"match": {"notes": "late"}}),
            "aggregate": lambda: post(srv, tok, "books", "aggregate",
                                      {"group_by": ["org"],
                                       "metrics": {"s": {"sum": "amount"}, "q": {"avg": "qty"},
                                                   "n": {"count": "*"}}}),
            "total": lambda: post(srv, tok, "books", "aggregate",
                                  {"metrics": {"s": {"sum": "amount"}}}),
            "paillier": lambda: post(srv, tok, "ledger", "aggregate",
                                     {"metrics": {"u": {"sum": "units"}}}),
            "query": lambda: post(srv, tok, "books", "query", {"limit": 1000}),
            "get": lambda: srv.request("GET", doc_path("books", "b0000"), token=tok),
        }
        for name, fn in reads.items():
            r = fn()
            check(r.status == 200, "%s before any attack: %r" % (name, r))

        # Sum cells are keyed by their row's number: moved off it, a cell is missing from its
        # row; rows renumbered below zero or near 2^63 cannot give faithful runs.
        s_rows = st.rows('SELECT seq, col, l0, l1, l2, l3 FROM "s_%s"' % B)
        seqs = sorted({seq for seq, _, _, _, _, _ in s_rows})
        check(len(seqs) >= 30, "documents with sum cells: %d" % len(seqs))

        def restore_sums():
            st.run('DELETE FROM "s_%s"' % B)
            for row in s_rows:
                st.run('INSERT INTO "s_%s"(seq, col, l0, l1, l2, l3) VALUES (?, ?, ?, ?, ?, ?)'
                       % B, *row)

        def sums(set_sql, *seqs_):
            marks = ",".join("?" * len(seqs_))
            return lambda: st.run('UPDATE "s_%s" SET %s WHERE seq IN (%s)' % (B, set_sql, marks),
                                  *seqs_)

        def rows(set_sql, where, *args):
            return lambda: st.run('UPDATE "r_%s" SET %s WHERE %s' % (B, set_sql, where), *args)

        q0, q1, q2, q3, q4 = seqs[:5]
        huge = 9223372036854775807
        attacks = [
            ("search values as text", "search",
             lambda: st.run('UPDATE "k_%s" SET val = CAST(val AS TEXT)' % B),
             lambda: st.run('UPDATE "k_%s" SET val = CAST(val AS BLOB)' % B)),
            ("a sum cell moved to a negative row number", "aggregate", sums("seq = -5", q0),
             restore_sums),
            ("a sum cell moved to a row number no row has", "total",
             sums("seq = 4611686018427387904", q3), restore_sums),
            ("a sum cell's row number as text", "aggregate", sums("seq = 'seven'", q2),
             restore_sums),
            ("a row renumbered below zero", "aggregate", rows("seq = -seq", "seq = ?", q1),
             rows("seq = -seq", "seq < 0")),
            ("rows renumbered near 2^63", "total",
             rows("seq = %d - seq" % huge, "seq IN (?, ?)", q0, q1),
             rows("seq = %d - seq" % huge, "seq > %d" % (huge // 2))),
            ("a limb as text", "aggregate", sums("l1 = 'x'", q4), restore_sums),
            ("limbs beyond 32 bits", "aggregate",
             lambda: st.run('UPDATE "s_%s" SET l0 = 4611686018427387904' % B), restore_sums),
            ("a Paillier cell as text", "paillier",
             lambda: st.run('UPDATE "p_%s" SET val = CAST(val AS TEXT) WHERE seq = '
                            '(SELECT min(seq) FROM "p_%s")' % (L, L)),
             lambda: st.run('UPDATE "p_%s" SET val = CAST(val AS BLOB)' % L)),
            ("blobs as text", "get",
             lambda: st.run('UPDATE "r_%s" SET blob = CAST(blob AS TEXT)' % B),
             lambda: st.run('UPDATE "r_%s" SET blob = CAST(blob AS BLOB)' % B)),
            ("row numbers shifted", "get", rows("seq = seq + 1000000", "1"),
             rows("seq = seq - 1000000", "1")),
            ("a document token of the wrong length", "query",
             lambda: st.run('UPDATE "r_%s" SET doc = CAST(doc || x\'00\' AS BLOB) '
                            'WHERE doc = ?' % B, first_doc),
             lambda: st.run('UPDATE "r_%s" SET doc = substr(doc, 1, 32) WHERE length(doc) = 33'
                            % B)),
        ]
        for what, read, attack, undo in attacks:
            n0 = breaches(srv)
            changed = attack()
            check(changed >= 1, "%s: the attack changed nothing" % what)
            r = reads[read]()
            check(r.status != 503, "%s: 503 store_unavailable for stored data: %r" % (what, r))
            expect_error(r, 502, "integrity_violation", what)
            check(breach_logged(srv, n0), "%s: no breach_suspected in the server log" % what)
            undo()
            r = reads[read]()
            check(r.status == 200, "%s, put back: %r" % (what, r))
        st.close()
        diag("%d attacks, each a 502 and a breach_suspected" % len(attacks))
        env.stop()
    finally:
        env.close()


# ---------------------------------------------------------------------------------------


def first_next(srv, tok, coll, body):
    r = post(srv, tok, coll, "query", body)
    check(r.status == 200 and isinstance(r.json.get("next"), str),
          "first page of %s: %r" % (json.dumps(body), r))
    return r.json["next"]


@test
def answers_cursors_are_bound(ctx):
    env = Env(ctx.veil, POLICY)
    try:
        env.apply("acme", POLICY.replace("collection: books", "collection: books2"),
                  name="books2.yaml")
        env.run("tenant", "create", "other")
        env.apply("other", POLICY, name="other.yaml")
        admin = env.tokens[("acme", "admin")]
        clerk = env.token("acme", "clerk")
        auditor = env.token("acme", "auditor")
        other = env.token("other", "clerk")
        srv = env.start()
        load(env, srv, admin, 40, 0, 77)
        plain = {"where": {"state": "open"}, "limit": 2}
        match = {"where": {"state": "open"}, "match": {"notes": {"any": "late payment"}},
                 "limit": 2}
        for base in (plain, match):
            cur = first_next(srv, clerk, "books", base)
            # the same list pages on, also with another select or limit
            for b in (base, dict(base, limit=5), dict(base, select=["org"])):
                r = post(srv, clerk, "books", "query", dict(b, after=cur))
                check(r.status == 200 and r.json["docs"], "same query, page 2: %r" % r)
            refused = [
                ("another where", clerk, "books", dict(base, where={"state": "paid"})),
                ("no where", clerk, "books", {k: v for k, v in base.items() if k != "where"}),
                ("another match", clerk, "books", dict(base, match={"notes": "refund"})),
                ("another role", admin, "books", base),
                ("another collection", clerk, "books2", base),
                ("another tenant", other, "books", base),
            ]
            if "match" not in base:
                refused.append(("another role (auditor)", auditor, "books", base))
            else:
                refused.append(("without its match", clerk, "books",
                                {k: v for k, v in base.items() if k != "match"}))
            for what, tok, coll, b in refused:
                r = post(srv, tok, coll, "query", dict(b, after=cur))
                err = expect_error(r, 400, "bad_request", "%s cursor, %s" % (
                    "match" if "match" in base else "plain", what))
                check(err.get("field") == "after", "%s: field %r" % (what, err.get("field")))
        env.stop()
    finally:
        env.close()


# ---------------------------------------------------------------------------------------


def pages(srv, tok, body, limit, what):
    ids, cur = [], None
    for n in range(5000):
        b = dict(body, limit=limit)
        if cur is not None:
            b["after"] = cur
        r = post(srv, tok, "books", "query", b)
        check(r.status == 200, "%s, page %d of %d: %r" % (what, n + 1, limit, r))
        docs = r.json["docs"]
        check(len(docs) <= limit, "%s: %d docs on a page of %d" % (what, len(docs), limit))
        ids += [d["id"] for d in docs]
        cur = r.json["next"]
        if cur is None:
            return ids
        check(docs, "%s: an empty page with a next cursor" % what)
    raise Failure("%s: paging did not end" % what)


@test
def answers_paging_after_bulk_loads(ctx):
    env = Env(ctx.veil, POLICY)
    try:
        tok = env.tokens[("acme", "admin")]
        srv = env.start()
        docs = load(env, srv, tok, 420, 25, 4242)
        queries = [
            {"match": {"notes": "late"}},
            {"match": {"notes": "late payment"}},
            {"match": {"notes": {"any": "refund dispute"}}},
            {"match": {"notes": "payment"}, "where": {"org": "org-1"}},
            {"match": {"notes": {"any": "final credit"}}, "where": {"state": {"in": ["open",
                                                                                    "late"]}}},
            {},
            {"where": {"org": {"in": ["org-0", "org-3"]}}},
        ]
        total, sizes = 0, []
        for q in queries:
            r = post(srv, tok, "books", "query", dict(q, limit=10000))
            check(r.status == 200 and r.json["next"] is None, "one page of %s: %r"
                  % (json.dumps(q), r))
            whole = [d["id"] for d in r.json["docs"]]
            check(len(whole) > 2 * 17, "%s finds only %d" % (json.dumps(q), len(whole)))
            sizes.append(len(whole))
            check(len(set(whole)) == len(whole), "duplicates in the one-page answer")
            if "match" in q:   # bulk-loaded documents are among the hits
                check(any(i.startswith("b") for i in whole), "no bulk document found")
            for limit in (3, 17, 100):
                got = pages(srv, tok, q, limit, json.dumps(q))
                check(got == whole, "%s by %d: %d ids, the one-page answer has %d; first "
                      "difference at %r" % (json.dumps(q), limit, len(got), len(whole),
                                            next((k for k, (a, b) in enumerate(zip(got, whole))
                                                  if a != b), min(len(got), len(whole)))))
                total += 1
        # page by page through a smaller answer
        q = {"match": {"notes": "urgent final credit"}}
        r = post(srv, tok, "books", "query", dict(q, limit=10000))
        whole = [d["id"] for d in r.json["docs"]]
        check(whole, "no document holds all three words")
        check(pages(srv, tok, q, 1, "one by one") == whole, "one by one differs")
        diag("%d documents, %d pagings compared, answers of %r" % (len(docs), total + 1,
                                                                     sizes))
        env.stop()
    finally:
        env.close()


# ---------------------------------------------------------------------------------------


def rounded(units, n, scale):
    """The mean of n values summing to `units` (10^-scale), half to even at scale + 2."""
    q = Fraction(units * 100, n)
    return Decimal(round(q)).scaleb(-(scale + 2))


AVG_RE = re.compile(r'"(a|q)":(-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|null)')


@test
def answers_avg_precision(ctx):
    env = Env(ctx.veil, POLICY)
    try:
        tok = env.tokens[("acme", "admin")]
        srv = env.start()
        docs = load(env, srv, tok, 60, 10, 31337)
        # and a group whose mean is exactly halfway at the last place, both ways
        for k, (a, q) in enumerate([("0.01", 1), ("0", 0), ("0", 0), ("0", 0), ("0", 0),
                                    ("0", 0), ("0", 0), ("0", 0)]):
            docs["h%d" % k] = {"org": "half", "amount": a, "qty": q}
            put(srv, tok, "books", "h%d" % k, docs["h%d" % k])
        body = {"group_by": ["org"], "metrics": {"a": {"avg": "amount"}, "q": {"avg": "qty"}},
                "explain": True}
        r = post(srv, tok, "books", "aggregate", body)
        check(r.status == 200, "aggregate: %r" % r)
        text = r.body.decode()
        got = {}
        for g in json.loads(text, parse_float=Decimal)["groups"]:
            got[g["key"]["org"]] = (g["a"], g["q"])
        for m in AVG_RE.finditer(text):
            v = m.group(2)
            if v != "null":
                places = len(v.split(".")[1]) if "." in v else 0
                check("e" not in v.lower() and places <= (4 if m.group(1) == "a" else 2),
                      "avg written as %s" % v)
        want = {}
        for d in docs.values():
            w = want.setdefault(d["org"], [0, 0, 0])
            w[0] += int(Decimal(d["amount"]) * 100)
            w[1] += d["qty"]
            w[2] += 1
        check(set(got) == set(want), "groups %r, want %r" % (sorted(got), sorted(want)))
        for org, (units, qty, n) in want.items():
            a, q = got[org]
            check(Decimal(a) == rounded(units, n, 2),
                  "%s: avg amount %s, want %s" % (org, a, rounded(units, n, 2)))
            check(Decimal(q) == rounded(qty, n, 0),
                  "%s: avg qty %s, want %s" % (org, q, rounded(qty, n, 0)))
        check(got["half"] == (Decimal("0.0012"), Decimal("0.12")),
              "0.00125 and 0.125 round half to even: %r" % (got["half"],))
        proxy = " ".join(json.loads(text)["explain"]["proxy"])
        check("rounded half to even to 4 decimal places" in proxy and
              "rounded half to even to 2 decimal places" in proxy,
              "explain does not state the precision: %s" % proxy)
        env.stop()
    finally:
        env.close()
