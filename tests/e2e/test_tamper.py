"""test_tamper.py: the tampering property test (issue 10, first step).

One server runs over a data directory whose collection `books` (tenant acme) uses every
tactic: equality, range (a decimal and a date), ASHE sums, Paillier sums, text search, a
masked field and a field kept in the trusted state. A second collection of acme and the
same collection of a second tenant give rows of every table kind somewhere else. A few
hundred documents are loaded in bulk batches and singly, some replaced, some deleted.

A fixed set of reads (GETs of live, replaced and deleted documents, with and without a
mask; searches; filtered queries with eq, in, ranges and their combinations, with and
without match, paged with small limits, and the whole collection page by page; count, sum
and avg aggregates, grouped and not, ASHE and Paillier, by an admin) is answered first on
the untouched store: those are the honest answers. Then, N times (VEIL_TAMPER_N, default
250; seeded by VEIL_TAMPER_SEED, default 10), ONE random mutation is committed to the
store's SQLite file (cloud.db) while the server runs, the whole set is read again, and the
mutation is undone from its before-images (the undone tables are compared with their
snapshot; every 25 mutations and at the end the honest answers must come back too). The
mutations: delete a row, insert a copy of a row under another document or key (a
duplicate), flip bytes (or a bit of an integer) in any column of a row, swap one column's
values between two rows, move a row to another table of the same kind (another collection's
or tenant's). A few times (one in a hundred) the whole store is rolled back instead to a
copy taken during loading, with the server stopped and started again. veil starts on it
today (its start-up check catches a trusted.db behind the store, not a store behind
trusted.db), so the set is read as after any other mutation; a refusal to start that names
`veil trusted accept-rollback` would count as detected, any other failure to start fails.

Every answer must equal the honest one, or be 502 integrity_violation with a
breach_suspected line in the server log. For every kind of read (GETs, searches, filtered
queries with any `where`, with or without match, paged or not, the listing of the whole
collection, and aggregates) a different answer with 200 FAILS the test; the failure names
the seed, the mutation, the request and both answers so that it reproduces. So do a 500
(any 5xx but 502 integrity_violation), a 502 without breach_suspected, a crash, a hang (no
answer in 30 s) or a sanitizer report. (Filtered queries and aggregates became guaranteed
with the trusted token sets; the table "wrong 200 answers" must show zeros.)
A failure prints the seed, the mutation, the request and both answers. The same seed on a
new installation draws the same kinds of mutation but other rows and tables (the store's
tokens and table names come from fresh keys), so a failure also keeps a copy of the loaded
data directory and prints its path: VEIL_TAMPER_DATA=that path replays the very same
mutations.
Imported by run.py (the test is named tamper_property).
"""

import json
import os
import random
import shutil
import sqlite3
import tempfile
import time

from harness import Env, Failure, check, doc_path, seg
from test_answers import bulk, put

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def diag(msg):  # replaced by run.py's diag
    pass


POLICY = """collection: %s
fields:
  org:    { type: string,  protect: [eq] }
  state:  { type: string,  protect: [eq] }
  issued: { type: date,    protect: [range] }
  amount: { type: decimal, scale: 2, protect: [sum, range] }
  units:  { type: integer, protect: [sum], sum: { scheme: paillier, bits: 2048 } }
  notes:  { type: text,    protect: [search] }
  iban:   { type: string,  mask: last4 }
  ref:    { type: string,  store: trusted }
roles:
  clerk:   { read: ["*"], write: true }
  auditor: { read: [org, state, amount], masked: [iban] }
"""

WORDS = ["late", "payment", "reminder", "dispute", "refund", "urgent", "credit", "final"]
KINDS = ["delete", "duplicate", "flip", "swap", "move", "rollback"]
# Which kinds of read veil guarantees (a wrong answer fails the test): all of them.
GUARANTEED = ("get", "search", "query", "aggregate")
HTTP_TIMEOUT = 30
UNDO_CHECK_EVERY = 25


def book(i, rng, gen=0):
    return {"org": "org-%d" % (i % 5), "state": ["open", "paid", "late"][i % 3],
            "issued": "2024-%02d-%02d" % (1 + i % 12, 1 + (i * 7) % 28),
            "amount": "%d.%02d" % (rng.randint(-500, 5000), rng.randint(0, 99)),
            "units": rng.randint(-20, 300),
            "notes": " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5))) +
                     (" revised%d" % gen if gen else ""),
            "iban": "NL91ABNA04171%05d" % i, "ref": "REF-%d-%d" % (i, gen)}


def post(srv, tok, coll, what, body):
    return srv.request("POST", "/v1/collections/%s/%s" % (seg(coll), what), body=body,
                       token=tok, timeout=HTTP_TIMEOUT)


def delete(srv, tok, coll, did):
    r = srv.request("DELETE", doc_path(coll, did), token=tok)
    check(r.status == 200, "delete %s/%s: %r" % (coll, did, r))


def store_copy(src_path, dst_path):
    """SQLite's online backup of src into dst (safe with the server running on src, and
    into dst with the server stopped: WAL and all)."""
    src = sqlite3.connect(src_path, timeout=30)
    dst = sqlite3.connect(dst_path, timeout=30)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


# ---------------------------------------------------------------------------------------
# The reads


def reads(admin, auditor):
    """[(name, kind, fn(srv) -> normalised answer)]; kind is get, search, query or
    aggregate. An answer is (status, body) with body the JSON (an error: its code only);
    a paged read is the list of its pages' documents, or the first page that was not 200."""

    def one(method, path, body=None, tok=admin):
        def fn(srv):
            r = srv.request(method, path, body=body, token=tok, timeout=HTTP_TIMEOUT)
            return norm(r)
        return fn

    def paged(coll, body, limit, tok=admin):
        def fn(srv):
            out, cur = [], None
            for _ in range(500):
                b = dict(body, limit=limit)
                if cur is not None:
                    b["after"] = cur
                r = post(srv, tok, coll, "query", b)
                if r.status != 200:
                    return norm(r)
                j = r.json
                out.append(j.get("docs"))
                cur = j.get("next")
                if cur is None:
                    return (200, out)
                if not j.get("docs"):
                    return (200, out + ["an empty page with a next cursor"])
            return (200, out + ["paging did not end"])
        return fn

    def q(body, coll="books", tok=admin):
        return one("POST", "/v1/collections/%s/query" % coll, dict(body, limit=10000), tok)

    def agg(body, coll="books"):
        return one("POST", "/v1/collections/%s/aggregate" % coll, body)

    g = lambda did, tok=admin, coll="books": one("GET", doc_path(coll, did), tok=tok)  # noqa
    late_or_open = {"in": ["open", "late"]}
    return [
        ("GET bulk b0003", "get", g("b0003")),
        ("GET bulk b0150", "get", g("b0150")),
        ("GET single s0260", "get", g("s0260")),
        ("GET single s0299", "get", g("s0299")),
        ("GET replaced b0010", "get", g("b0010")),
        ("GET replaced s0270", "get", g("s0270")),
        ("GET deleted b0020", "get", g("b0020")),
        ("GET deleted s0280", "get", g("s0280")),
        ("GET masked b0004 (auditor)", "get", g("b0004", auditor)),
        ("GET ledger l0005", "get", g("l0005", coll="ledger")),
        ("search late", "search", q({"match": {"notes": "late"}})),
        ("search late payment", "search", q({"match": {"notes": "late payment"}})),
        ("search any refund dispute", "search",
         q({"match": {"notes": {"any": "refund dispute"}}})),
        ("search revised1", "search", q({"match": {"notes": "revised1"}})),
        ("search urgent credit, pages of 40", "search",
         paged("books", {"match": {"notes": {"any": "urgent credit"}}}, 40)),
        ("search no match", "search", q({"match": {"notes": "nonexistentword"}})),
        ("search ledger final", "search",
         q({"match": {"notes": "final"}}, coll="ledger")),
        ("query org eq", "query", q({"where": {"org": "org-1"}})),
        ("query state in", "query", q({"where": {"state": late_or_open}})),
        ("query amount range", "query",
         q({"where": {"amount": {"gte": "1000", "lt": "2500.50"}}})),
        ("query issued range", "query",
         q({"where": {"issued": {"gte": "2024-03-01", "lte": "2024-05-15"}}})),
        ("query org and amount", "query",
         q({"where": {"org": "org-2", "amount": {"gt": "0"}}})),
        ("query org and state and issued", "query",
         q({"where": {"org": {"in": ["org-0", "org-3"]}, "state": "paid",
                      "issued": {"lt": "2024-09-01"}}})),
        ("query eq with match", "query",
         q({"where": {"org": "org-4"}, "match": {"notes": "payment"}})),
        ("query range with match any", "query",
         q({"where": {"amount": {"lt": "2000"}},
            "match": {"notes": {"any": "refund final"}}})),
        ("query no match eq", "query", q({"where": {"org": "org-none"}})),
        ("query no match range", "query", q({"where": {"amount": {"gt": "999999"}}})),
        ("query org eq, pages of 9", "query", paged("books", {"where": {"org": "org-3"}}, 9)),
        ("query state in with match, pages of 12", "query",
         paged("books", {"where": {"state": late_or_open}, "match": {"notes": "late"}}, 12)),
        ("query amount range, pages of 11", "query",
         paged("books", {"where": {"amount": {"gte": "-100", "lt": "1500"}}}, 11)),
        ("query ledger eq", "query", q({"where": {"org": "org-2"}}, coll="ledger")),
        ("query everything, pages of 100", "query", paged("books", {}, 100)),
        ("aggregate count", "aggregate", agg({"metrics": {"n": {"count": "*"}}})),
        ("aggregate sum avg count by org", "aggregate",
         agg({"group_by": ["org"], "metrics": {"s": {"sum": "amount"}, "a": {"avg": "amount"},
                                               "n": {"count": "*"}}})),
        ("aggregate by state, where amount", "aggregate",
         agg({"where": {"amount": {"gte": "0"}}, "group_by": ["state"],
              "metrics": {"s": {"sum": "amount"}, "n": {"count": "*"}}})),
        ("aggregate paillier sum", "aggregate",
         agg({"metrics": {"u": {"sum": "units"}, "n": {"count": "*"}}})),
        ("aggregate paillier by state, where state in", "aggregate",
         agg({"where": {"state": late_or_open}, "group_by": ["state"],
              "metrics": {"u": {"sum": "units"}, "v": {"avg": "units"}}})),
        ("aggregate ledger", "aggregate",
         agg({"group_by": ["org"], "metrics": {"s": {"sum": "amount"}}}, coll="ledger")),
        ("aggregate ledger paillier", "aggregate",
         agg({"metrics": {"u": {"sum": "units"}}}, coll="ledger")),
    ]


def norm(r):
    if r.status == 200:
        j = r.json
        if isinstance(j, dict) and "next" in j:
            j = dict(j, next=j["next"] is not None)   # cursors are sealed afresh
        return (200, j)
    try:
        code = r.json["error"]["code"]
    except (Failure, KeyError, TypeError):
        code = r.body[:200]
    return (r.status, code)


# ---------------------------------------------------------------------------------------
# The store, edited behind the server's back


class Store:
    """cloud.db through Python's sqlite3 (autocommit: each change is committed at once)."""

    def __init__(self, path):
        self.con = sqlite3.connect(path, timeout=30, isolation_level=None)
        self.cols, self.pk, self.keys = {}, {}, {}
        for (t,) in self.con.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                     "ORDER BY name"):
            if t[:2] not in ("r_", "x_", "y_", "q_", "s_", "p_", "k_"):
                continue
            info = self.con.execute('PRAGMA table_info("%s")' % t).fetchall()
            self.cols[t] = [c[1] for c in info]
            self.pk[t] = [c[1] for c in sorted(info, key=lambda c: c[5]) if c[5] > 0]
            # every key a row must not share with another: the primary key and any unique
            # index (r_T's document tokens)
            self.keys[t] = [self.pk[t]]
            for ix in self.con.execute('PRAGMA index_list("%s")' % t).fetchall():
                if ix[2] and ix[3] == "c":
                    self.keys[t].append([c[2] for c in self.con.execute(
                        'PRAGMA index_info("%s")' % ix[1])])

    def close(self):
        self.con.close()

    def tables(self, kind):
        return [t for t in self.cols if t.startswith(kind + "_")]

    def count(self, t):
        return self.con.execute('SELECT count(*) FROM "%s"' % t).fetchone()[0]

    def dump(self, t):
        return sorted(self.con.execute('SELECT * FROM "%s"' % t).fetchall(), key=repr)

    def nth(self, t, n):
        return self.con.execute('SELECT * FROM "%s" LIMIT 1 OFFSET ?' % t, (n,)).fetchone()

    def exists(self, t, row, removed=()):
        """Whether a row other than those in `removed` shares one of row's keys."""
        for keys in self.keys[t]:
            where = " AND ".join('"%s" = ?' % k for k in keys)
            vals = [row[self.cols[t].index(k)] for k in keys]
            for hit in self.con.execute('SELECT * FROM "%s" WHERE %s' % (t, where), vals):
                if tuple(hit) not in [tuple(r) for r in removed]:
                    return True
        return False

    def in_key(self, t, col):
        return any(col in keys for keys in self.keys[t])

    def apply(self, diff, undo=False):
        """diff: [(table, removed rows, added rows)]; undo swaps the two."""
        self.con.execute("BEGIN IMMEDIATE")
        try:
            for t, removed, added in diff:
                if undo:
                    removed, added = added, removed
                keys = self.pk[t]
                where = " AND ".join('"%s" = ?' % k for k in keys)
                for row in removed:
                    vals = [row[self.cols[t].index(k)] for k in keys]
                    c = self.con.execute('DELETE FROM "%s" WHERE %s' % (t, where), vals)
                    check(c.rowcount == 1, "a mutation's delete hit %d rows" % c.rowcount)
            for t, removed, added in diff:
                if undo:
                    removed, added = added, removed
                marks = ",".join("?" * len(self.cols[t]))
                for row in added:
                    self.con.execute('INSERT INTO "%s" VALUES (%s)' % (t, marks), row)
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise


def flip_value(rng, v, col):
    if isinstance(v, bytes):
        b = bytearray(v)
        if not b:
            return b"\x01"
        for _ in range(rng.randint(1, 3)):
            b[rng.randrange(len(b))] ^= rng.randint(1, 255)
        return bytes(b)
    if isinstance(v, int):
        bits = 32 if col.startswith("l") else 62
        return v ^ (1 << rng.randrange(bits))
    return v + "x" if isinstance(v, str) else v


class Mutator:
    """Draws one mutation of a kind: returns (description, diff) or None when the draw
    found nothing to do (then it is drawn again)."""

    def __init__(self, st, rng, main):
        self.st, self.rng, self.main = st, rng, main   # main: the books table's suffix

    def table(self, kinds="rxyqspk", main_bias=0.7):
        """A random non-empty table; that of acme's books most of the time."""
        st, rng = self.st, self.rng
        kind = rng.choice(kinds)
        ts = [t for t in st.tables(kind) if st.count(t) > 0]
        if not ts:
            return None
        mine = [t for t in ts if t[2:] == self.main]
        if mine and rng.random() < main_bias:
            return mine[0]
        return rng.choice(ts)

    def row(self, t):
        return self.st.nth(t, self.rng.randrange(self.st.count(t)))

    def short(self, t):
        return "%s%s" % (t[:2], "books" if t[2:] == self.main else t[2:10] + "..")

    def draw(self, kind):
        return getattr(self, "m_" + kind)()

    def m_delete(self):
        t = self.table()
        if t is None:
            return None
        return ("delete a row of %s" % self.short(t), [(t, [self.row(t)], [])])

    def m_duplicate(self):
        st, rng = self.st, self.rng
        t = self.table()
        if t is None:
            return None
        row = list(self.row(t))
        cols = st.cols[t]
        # a copy under another document of the table (a token row given to another
        # document), a cell given to another row that lacks it (cells are keyed by their
        # row's number), or a copy under a fresh document, number or key
        col = next(c for c in ("doc", "seq", "key", "part") if c in cols)
        i = cols.index(col)
        fresh_seq = t.startswith("r_")   # a row's number is its key: a copy needs another
        if col in ("doc", "seq") and rng.random() < 0.7:
            src = t if col == "doc" else "r_" + t[2:]
            others = [d for (d,) in st.con.execute('SELECT DISTINCT %s FROM "%s"' % (col, src))]
            rng.shuffle(others)
            for d in others[:20]:
                cand = list(row)
                cand[i] = d
                if fresh_seq:
                    cand[cols.index("seq")] = rng.randrange(1 << 40, 1 << 41)
                if not st.exists(t, cand):
                    return ("copy a row of %s to another %s" % (self.short(t),
                                                                "document" if col == "doc"
                                                                else "row"),
                            [(t, [], [tuple(cand)])])
        cand = list(row)
        if col in ("seq", "part"):
            cand[i] = rng.randrange(1 << 40, 1 << 41)
        else:
            cand[i] = bytes(rng.randrange(256) for _ in range(len(row[i])))
        if fresh_seq:
            cand[cols.index("seq")] = rng.randrange(1 << 40, 1 << 41)
        if st.exists(t, cand):
            return None
        return ("copy a row of %s under a new %s" % (self.short(t), col),
                [(t, [], [tuple(cand)])])

    def m_flip(self):
        st, rng = self.st, self.rng
        t = self.table()
        if t is None:
            return None
        row = self.row(t)
        cols = st.cols[t]
        c = rng.randrange(len(cols))
        new = list(row)
        new[c] = flip_value(rng, row[c], cols[c])
        if st.in_key(t, cols[c]) and st.exists(t, new, [row]):
            return None
        return ("flip %s of a row of %s" % (cols[c], self.short(t)), [(t, [row], [tuple(new)])])

    def m_swap(self):
        st, rng = self.st, self.rng
        t = self.table()
        if t is None or st.count(t) < 2:
            return None
        cols = st.cols[t]
        c = rng.randrange(len(cols))
        a, b = self.row(t), self.row(t)
        if a == b or a[c] == b[c]:
            return None
        a2, b2 = list(a), list(b)
        a2[c], b2[c] = b[c], a[c]
        if st.in_key(t, cols[c]):
            for keys in st.keys[t]:
                if [a2[cols.index(k)] for k in keys] == [b2[cols.index(k)] for k in keys]:
                    return None
            if st.exists(t, a2, [a, b]) or st.exists(t, b2, [a, b]):
                return None
        return ("swap %s between two rows of %s" % (cols[c], self.short(t)),
                [(t, [a, b], [tuple(a2), tuple(b2)])])

    def m_move(self):
        st, rng = self.st, self.rng
        src = self.table()
        if src is None:
            return None
        dsts = [t for t in st.tables(src[0]) if t != src and st.cols[t] == st.cols[src]]
        mine = [t for t in dsts if t[2:] == self.main]
        if not dsts:
            return None
        dst = mine[0] if mine and rng.random() < 0.5 else rng.choice(dsts)
        row = self.row(src)
        if st.exists(dst, row):
            return None
        return ("move a row of %s to %s" % (self.short(src), self.short(dst)),
                [(src, [row], []), (dst, [], [row])])


# ---------------------------------------------------------------------------------------


def breaches(srv):
    return srv.stderr().count("breach_suspected")


def breach_logged(srv, n0, timeout=10):
    end = time.time() + timeout
    while breaches(srv) <= n0:
        if time.time() > end:
            return False
        time.sleep(0.02)
    return True


def show(a):
    s = json.dumps(a, sort_keys=True)
    return s if len(s) <= 1500 else s[:1500] + "...(%d chars)" % len(s)


class Tally:
    def __init__(self, seed):
        self.seed = seed
        self.fails = []      # guaranteed reads answered wrongly, and anything fatal
        self.by_kind = {k: {"n": 0, "detected": 0, "wrong_query": 0, "wrong_aggregate": 0,
                            "refused": 0} for k in KINDS}

    def fail(self, n, what, name, got, want):
        self.fails.append("seed %d, mutation %d (%s), %s: got %s, honest %s"
                          % (self.seed, n, what, name, show(got), show(want)))


def run_set(srv, rset, honest, tally, n, kind, what):
    """Reads the whole set; classifies each answer. Returns the number of 502s."""
    detected, wrong = 0, {"query": 0, "aggregate": 0}
    for name, rk, fn in rset:
        n0 = breaches(srv)
        try:
            got = fn(srv)
        except OSError as e:
            if srv.proc.poll() is not None:
                raise Failure("seed %d, mutation %d (%s), %s: the server died (%r); stderr "
                              "tail:\n%s" % (tally.seed, n, what, name, srv.proc.returncode,
                                             srv.stderr()[-3000:]))
            raise Failure("seed %d, mutation %d (%s), %s: no answer (%s)"
                          % (tally.seed, n, what, name, e))
        want = honest[name]
        if got == want:
            continue
        if got == (502, "integrity_violation"):
            if not breach_logged(srv, n0):
                tally.fail(n, what, name, "502 without breach_suspected in the log", want)
            detected += 1
            continue
        if got[0] >= 500:
            tally.fail(n, what, name, got, want)   # 500, 503: never for stored data
        else:
            if rk in wrong:
                wrong[rk] += 1
            if rk in GUARANTEED:
                tally.fail(n, what, name, got, want)
    if kind is not None:
        k = tally.by_kind[kind]
        k["n"] += 1
        k["detected"] += 1 if detected else 0
        k["wrong_query"] += 1 if wrong["query"] else 0
        k["wrong_aggregate"] += 1 if wrong["aggregate"] else 0
    return detected


def honest_again(srv, rset, honest, what):
    for name, _, fn in rset:
        got = fn(srv)
        check(got == honest[name], "%s: %s no longer answers honestly: %s, was %s"
              % (what, name, show(got), show(honest[name])))


def load(env, srv, toks, seed, dry=False):
    """Loads the three collections; returns {id: doc} of acme's books and the paths of two
    copies of cloud.db taken on the way. dry: only computes the documents."""
    admin, other = toks["admin"], toks["other"]
    drng = random.Random(seed * 7919 + 1)
    docs = {}
    copies = [os.path.join(env.tmp, "cloud.early"), os.path.join(env.tmp, "cloud.loaded")]
    act = (lambda f, *a: None) if dry else (lambda f, *a: f(*a))
    # 250 in bulk batches (one of them loaded before the first rollback copy), 50 singly
    first = [("b%04d" % i, book(i, drng)) for i in range(100)]
    act(bulk, srv, admin, "books", first)
    docs.update(first)
    act(bulk, srv, admin, "ledger", [("l%04d" % i, book(i, drng)) for i in range(30)])
    act(bulk, srv, other, "books", [("o%04d" % i, book(i, drng)) for i in range(30)])
    act(store_copy, env.cloud_db(), copies[0])
    for lo, hi in ((100, 180), (180, 250)):
        items = [("b%04d" % i, book(i, drng)) for i in range(lo, hi)]
        act(bulk, srv, admin, "books", items)
        docs.update(items)
    for i in range(250, 300):
        docs["s%04d" % i] = book(i, drng)
        act(put, srv, admin, "books", "s%04d" % i, docs["s%04d" % i])
    act(store_copy, env.cloud_db(), copies[1])
    for did in ("b0010", "b0011", "b0120", "s0270", "s0271"):  # versions 2 and 3
        for gen in (1, 2):
            docs[did] = book(int(did[1:]), drng, gen)
            act(put, srv, admin, "books", did, docs[did])
    for i in range(40, 300, 37):
        docs["b%04d" % i] = book(i, drng, 1)
        act(put, srv, admin, "books", "b%04d" % i, docs["b%04d" % i])
    for did in ("b0020", "b0021", "b0200", "s0280", "s0281"):
        act(delete, srv, admin, "books", did)
        del docs[did]
    return docs, copies


KEPT = (("pristine", "data"), ("cloud.early", "cloud.early"),
        ("cloud.loaded", "cloud.loaded"), ("tokens.json", "tokens.json"))


def copy_kept(src_dir, dst_dir, backwards=False):
    for a, b in KEPT:
        src, dst = (os.path.join(src_dir, b), os.path.join(dst_dir, a)) if backwards else \
            (os.path.join(src_dir, a), os.path.join(dst_dir, b))
        if os.path.isdir(src):
            shutil.copytree(src, dst)
        else:
            shutil.copyfile(src, dst)


def keep(env):
    """A copy of the loaded data directory (taken with the server stopped), the store
    copies the rollbacks use and the tokens, for VEIL_TAMPER_DATA to replay the very same
    mutations (the store's tokens and row numbers depend on the installation's keys)."""
    dst = tempfile.mkdtemp(prefix="veil-tamper-kept-")
    copy_kept(env.tmp, dst)
    return dst


@test
def tamper_property(ctx):
    seed = int(os.environ.get("VEIL_TAMPER_SEED", "10"))
    n_mut = int(os.environ.get("VEIL_TAMPER_N", "250"))
    replay = os.environ.get("VEIL_TAMPER_DATA")
    rng = random.Random(seed)
    env = Env(ctx.veil, POLICY % "books")
    try:
        pristine = os.path.join(env.tmp, "pristine")
        if replay:
            copy_kept(replay, env.tmp, backwards=True)
            shutil.rmtree(env.data)
            shutil.copytree(pristine, env.data)
            with open(os.path.join(env.tmp, "tokens.json"), encoding="utf-8") as f:
                toks = json.load(f)
            srv = env.start()
            docs, copies = load(env, srv, toks, seed, dry=True)
            diag("replaying the data directory kept in %s" % replay)
        else:
            env.apply("acme", POLICY % "ledger", name="ledger.yaml")
            env.run("tenant", "create", "other")
            env.apply("other", POLICY % "books", name="other.yaml")
            toks = {"admin": env.tokens[("acme", "admin")],
                    "auditor": env.token("acme", "auditor"), "other": env.token("other", "admin")}
            srv = env.start()
            docs, copies = load(env, srv, toks, seed)
            env.stop()          # the state a failure keeps, for VEIL_TAMPER_DATA
            with open(os.path.join(env.tmp, "tokens.json"), "w", encoding="utf-8") as f:
                json.dump(toks, f)
            shutil.copytree(env.data, pristine)
            srv = env.start()
        admin, auditor = toks["admin"], toks["auditor"]

        rset = reads(admin, auditor)
        honest = {}
        for name, _, fn in rset:
            honest[name] = fn(srv)
            check(honest[name][0] in (200, 404), "honest %s: %s" % (name, show(honest[name])))
        # The honest answers are the model's (so the property is not held against garbage).
        for name in ("bulk b0003", "single s0260", "replaced b0010", "replaced s0270"):
            did = name.split()[1]
            got = honest["GET " + name]
            check(got[0] == 200 and got[1]["doc"] == docs[did],
                  "GET %s: %s, put %s" % (did, show(got), docs[did]))
        check(honest["GET deleted b0020"] == (404, "not_found"), "deleted b0020 reads")
        check(honest["GET masked b0004 (auditor)"][1]["doc"]["iban"] != docs["b0004"]["iban"],
              "the auditor reads the iban unmasked")
        want = sorted(d for d, v in docs.items() if v["org"] == "org-1")
        check(sorted(d["id"] for d in honest["query org eq"][1]["docs"]) == want,
              "query org eq is not the model's")
        want = sorted(d for d, v in docs.items() if "late" in v["notes"].split())
        check(sorted(d["id"] for d in honest["search late"][1]["docs"]) == want,
              "search late is not the model's")
        n_total = honest["aggregate count"][1]["groups"][0]["n"]
        check(n_total == len(docs), "count %d, %d documents" % (n_total, len(docs)))
        units = honest["aggregate paillier sum"][1]["groups"][0]["u"]
        check(int(units) == sum(v["units"] for v in docs.values()), "Paillier total %r" % units)
        nonempty = [n for n, a in honest.items() if a[0] == 200 and "no match" not in n]
        diag("%d documents in books (%d reads in the set, %d with a non-empty answer)"
             % (len(docs), len(rset), len(nonempty)))

        st = Store(env.cloud_db())
        rtabs = [t for t in st.tables("r") if st.count(t) > 0]
        main = None
        for t in rtabs:
            if st.count(t) == len(docs):
                main = t[2:]
        check(main is not None, "no row table holds the %d documents of books" % len(docs))
        snap = {t: st.dump(t) for t in st.cols}
        mut = Mutator(st, rng, main)
        tally = Tally(seed)
        n_roll = max(2, n_mut // 100)
        roll_at = set(rng.sample(range(n_mut), n_roll)) if n_mut >= n_roll else set()
        t0 = time.time()
        for n in range(n_mut):
            if n in roll_at:
                kind = "rollback"
                early = rng.choice(copies)
                what = "roll the store back to %s" % os.path.basename(early)
                env.stop()
                st.close()
                now = os.path.join(env.tmp, "cloud.now")
                store_copy(env.cloud_db(), now)
                store_copy(early, env.cloud_db())
                try:
                    srv = env.start()
                except Failure as e:
                    # veil refused to start: detected, if it says why
                    env.server = None
                    check("accept-rollback" in str(e),
                          "%s: the start failed without saying why: %s" % (what, e))
                    tally.by_kind[kind]["n"] += 1
                    tally.by_kind[kind]["refused"] += 1
                    tally.by_kind[kind]["detected"] += 1
                else:
                    run_set(srv, rset, honest, tally, n, kind, what)
                    env.stop()
                store_copy(now, env.cloud_db())
                srv = env.start()
                st = Store(env.cloud_db())
                mut.st = st
                for t in st.cols:
                    check(st.dump(t) == snap.get(t), "%s: table %s not put back" % (what, t))
                honest_again(srv, rset, honest, "after " + what)
            else:
                kind = rng.choice(KINDS[:-1])
                m = None
                while m is None:
                    m = mut.draw(kind)
                what, diff = m
                st.apply(diff)
                run_set(srv, rset, honest, tally, n, kind, what)
                st.apply(diff, undo=True)
                for t, _, _ in diff:
                    check(st.dump(t) == snap[t], "mutation %d (%s): table %s not put back"
                          % (n, what, t))
                if (n + 1) % UNDO_CHECK_EVERY == 0:
                    honest_again(srv, rset, honest, "after mutation %d (%s)" % (n, what))
            if srv.proc.poll() is not None:
                raise Failure("seed %d, mutation %d (%s): the server died; stderr tail:\n%s"
                              % (seed, n, what, srv.stderr()[-3000:]))
        honest_again(srv, rset, honest, "at the end")
        st.close()
        took = time.time() - t0
        diag("seed %d, %d mutations in %.1fs (VEIL_TAMPER_SEED, VEIL_TAMPER_N)"
             % (seed, n_mut, took))
        diag("%-10s %5s %9s %9s %12s" % ("kind", "n", "detected", "refused", "unnoticed"))
        for k in KINDS:
            b = tally.by_kind[k]
            unnoticed = b["n"] - b["detected"]
            diag("%-10s %5d %9d %9d %12d" % (k, b["n"], b["detected"], b["refused"], unnoticed))
        diag("wrong 200 answers (each also failed the test above)")
        diag("%-10s %5s %15s %18s" % ("kind", "n", "filtered query", "aggregate"))
        for k in KINDS:
            b = tally.by_kind[k]
            diag("%-10s %5d %15d %18d" % (k, b["n"], b["wrong_query"], b["wrong_aggregate"]))
        env.stop()
        if tally.fails:
            raise Failure("%d wrong answers where veil promises a right one or a 502:\n%s"
                          % (len(tally.fails), "\n".join(tally.fails[:12])))
    except Failure as e:
        kept = None
        if os.path.isdir(os.path.join(env.tmp, "pristine")):
            kept = keep(env)
        raise Failure("%s\nreproduce: VEIL_TAMPER_SEED=%d VEIL_TAMPER_N=%d%s" % (
            e, seed, n_mut, "" if kept is None else
            " (a new installation has new keys, so other rows are drawn); the very same "
            "mutations on the very same store: add VEIL_TAMPER_DATA=%s" % kept))
    finally:
        env.close()
