"""test_rollback.py: no nonce and no row number used twice when the trusted state goes back
in time, and the operator told.

trusted.db is backed up (SQLite's online backup, the server running), more is written, the
backup is put back, and more is written again after the operator accepts the rollback. The
store's SQLite file is then read directly, as an attacker holding it would: no row sequence
number may serve two rows, no ASHE cell may share a row number with another, no two search
values may share a nonce, and no label of an entry the lost writes left may be written again.
Between the restore and the acceptance, veil must refuse to start (server and admin
commands alike) with a message saying what happened and what to do; after it, documents the
trusted state never heard of read as absent (never as a breach), a search never returns
them, and totals count only what the trusted state knows.
Imported by run.py (tests named rollback_*).
"""

import json
import os
import shutil
import sqlite3
import subprocess

from harness import Env, check, doc_path, expect_error

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def diag(msg):  # replaced by run.py's diag
    pass


POLICY = """collection: ledger
fields:
  org:    { type: string,  protect: [eq] }
  amount: { type: integer, protect: [sum, range] }
  notes:  { type: text,    protect: [search], language: english }
roles:
  clerk: { read: ["*"], write: true, aggregate: [amount] }
"""

LATER = """collection: later
fields:
  k:     { type: string,  protect: [eq] }
  n:     { type: integer, protect: [sum] }
  text:  { type: text,    protect: [search] }
roles:
  clerk: { read: ["*"], write: true, aggregate: [n] }
"""

DP_POLICY = """collection: stats
fields:
  g: { type: string,  protect: [eq] }
  v: { type: integer, protect: [sum], bounds: [0, 100] }
roles:
  clerk:   { read: ["*"], write: true }
  analyst: { aggregate: [v], group_by: [g], privacy: { epsilon: 1, budget: 2 } }
"""

WORDS = ["amber", "basalt", "cobalt", "dolomite", "emerald", "feldspar"]
MARK_LEN = 48  # a rollback mark's value: nonce, sealed u64, tag (no search value has it)


def doc(i, gen):
    w = [WORDS[(i + k) % len(WORDS)] for k in range(3)]
    return {"org": "org-%d" % (i % 3), "amount": 100 * i + gen,
            "notes": "%s %s %s generation%d" % (w[0], w[1], w[2], gen)}


def put(srv, tok, coll, did, body, status=(200, 201)):
    r = srv.request("PUT", doc_path(coll, did), body=body, token=tok)
    check(r.status in status, "put %s/%s: %r" % (coll, did, r))
    return r


def bulk(srv, tok, coll, items):
    text = "".join(json.dumps({"id": i, "doc": d}) + "\n" for i, d in items)
    r = srv.request("POST", "/v1/collections/%s/bulk" % coll, body=text, token=tok,
                    headers={"Content-Type": "application/x-ndjson"})
    check(r.status == 200, "bulk: %r" % r)
    for line in r.body.decode().splitlines():
        check(json.loads(line)["status"] in (200, 201), "bulk line: %s" % line)


def search(srv, tok, coll, field, words):
    r = srv.request("POST", "/v1/collections/%s/query" % coll, token=tok,
                    body={"match": {field: words}, "limit": 1000})
    check(r.status == 200, "search %r: %r" % (words, r))
    return sorted(d["id"] for d in r.json["docs"])


def total(srv, tok, coll, field):
    r = srv.request("POST", "/v1/collections/%s/aggregate" % coll, token=tok,
                    body={"metrics": {"t": {"sum": field}, "n": {"count": "*"}}})
    check(r.status == 200, "aggregate: %r" % r)
    g = r.json["groups"][0]
    return int(g["t"]), g["n"]


def store(env):
    """What the store holds: rows {(table, seq): (doc, blob)}, ASHE cells {(table, col,
    seq): limbs}, key-value entries {(table, key): val}."""
    con = sqlite3.connect("file:%s?mode=ro" % env.cloud_db(), uri=True, timeout=30)
    rows, cells, kv = {}, {}, {}
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for t in names:
            if t.startswith("r_"):
                for d, sq, b in con.execute('SELECT doc, seq, blob FROM "%s"' % t):
                    rows[(t[2:], sq)] = (bytes(d), bytes(b))
            elif t.startswith("s_"):
                for c, sq, *limbs in con.execute(
                        'SELECT col, seq, l0, l1, l2, l3 FROM "%s"' % t):
                    cells[(t[2:], bytes(c), sq)] = tuple(limbs)
            elif t.startswith("k_"):
                for k, v in con.execute('SELECT key, val FROM "%s"' % t):
                    kv[(t[2:], bytes(k))] = bytes(v)
    finally:
        con.close()
    return rows, cells, kv


def backup(env):
    """An online backup of trusted.db (what `sqlite3 trusted.db .backup` does)."""
    dst = os.path.join(env.tmp, "trusted.backup")
    src = sqlite3.connect(os.path.join(env.data, "trusted.db"), timeout=30)
    out = sqlite3.connect(dst)
    try:
        src.backup(out)
    finally:
        out.close()
        src.close()
    return dst


def restore(env, path):
    check(env.server is None, "restore with the server stopped")
    t = os.path.join(env.data, "trusted.db")
    for suffix in ("-wal", "-shm"):
        if os.path.exists(t + suffix):
            os.remove(t + suffix)
    shutil.copyfile(path, t)


def refused(env, what, *args):
    """veil ARGS must fail with the rollback message; returns it."""
    p = subprocess.Popen([env.veil] + list(args) + ["--data", env.data], text=True,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        _, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
    check(p.returncode == 1, "%s started on a rolled-back trusted state (exit %r): %s"
          % (what, p.returncode, err[-1500:]))
    for want in ("trusted.db", "backup", "accept-rollback"):
        check(want in err, "%s: the message does not say %r: %s" % (what, want, err[-1500:]))
    check("listening on" not in err, "%s listened: %s" % (what, err[-1500:]))
    return err


def no_reuse(snaps, what):
    """Across every store snapshot: no row number serves two rows, no ASHE cell number two
    cells, no search-value nonce two values."""
    seqs, cells, nonces = {}, {}, {}
    for rows, cs, kv in snaps:
        for (t, sq), (d, b) in rows.items():
            prev = seqs.setdefault((t, sq), (d, b))
            check(prev == (d, b), "%s: row sequence number %d serves two rows" % (what, sq))
        for (t, c, sq), v in cs.items():
            prev = cells.setdefault((t, c, sq), v)
            check(prev == v, "%s: ASHE row number %d serves two cells of a column" % (what, sq))
        for (t, k), v in kv.items():
            if len(v) == MARK_LEN:
                continue
            check(len(v) >= 24 + 16 + 16, "%s: a search value of %d bytes" % (what, len(v)))
            prev = nonces.setdefault(v[:24], (t, k, v))
            check(prev == (t, k, v), "%s: two search values share a nonce" % what)
    return len(seqs), len(cells), len(nonces)


@test
def rollback_restored_backup(ctx):
    env = Env(ctx.veil, POLICY)
    try:
        tok = env.token("acme", "clerk")
        srv = env.start()
        for i in range(8):
            put(srv, tok, "ledger", "a%d" % i, doc(i, 0))
        bulk(srv, tok, "ledger", [("ab%d" % i, doc(i, 1)) for i in range(20)])
        saved = backup(env)                     # the server keeps running: same block
        at_backup = store(env)
        known_ids = ["a%d" % i for i in range(8)] + ["ab%d" % i for i in range(20)]
        # Written after the backup: new documents (in the block in use, then, after a
        # restart, in a new one), a replace, a delete, a bulk batch.
        for i in range(3):
            put(srv, tok, "ledger", "b%d" % i, doc(i, 2))
        env.stop()
        srv = env.start()
        for i in range(3, 6):
            put(srv, tok, "ledger", "b%d" % i, doc(i, 2))
        put(srv, tok, "ledger", "a1", doc(1, 3))
        r = srv.request("DELETE", doc_path("ledger", "a2"), token=tok)
        check(r.status == 200, "delete: %r" % r)
        bulk(srv, tok, "ledger", [("bb%d" % i, doc(i, 4)) for i in range(20)])
        env.stop()
        lost = store(env)
        lost_labels = {k: v for k, v in lost[2].items() if k not in at_backup[2]
                       and len(v) != MARK_LEN}
        check(lost_labels, "the writes after the backup added no search entries")

        restore(env, saved)
        msg = refused(env, "veil server", "server", "--listen", "127.0.0.1:0")
        diag("refused: " + msg.strip().splitlines()[-1][:300])
        refused(env, "veil token create", "token", "create", "--tenant", "acme", "--role",
                "clerk")

        p = env.run("trusted", "accept-rollback")
        rep = json.loads(p.stdout)
        check(rep["mark"] > rep["store_mark"] > rep["trusted_mark"],
              "the mark did not move past the store's: %r" % rep)
        (c,) = [c for c in rep["collections"] if c["collection"] == "ledger"]
        check(c["rows_removed"] == 6 + 20,
              "removed %d rows of documents the trusted state never heard of, want 26"
              % c["rows_removed"])
        check(c["documents_lost"] == 2,
              "forgot %d documents changed after the backup, want 2 (a1, a2)"
              % c["documents_lost"])
        # Run again (as after an acceptance cut short): nothing left to settle.
        again = json.loads(env.run("trusted", "accept-rollback").stdout)
        check(not again["accepted"] and all(c["rows_removed"] == c["documents_lost"] == 0
                                            for c in again["collections"]),
              "a second accept-rollback: %r" % again)

        srv = env.start()
        # Documents the trusted state never heard of are absent, not a breach; a1 and a2,
        # whose known versions the store no longer holds, are forgotten.
        for did in ("b0", "b5", "bb3", "a1", "a2"):
            r = srv.request("GET", doc_path("ledger", did), token=tok)
            expect_error(r, 404, "not_found", "GET %s after the accepted rollback" % did)
        model = {did: None for did in known_ids if did not in ("a1", "a2")}
        for did in model:
            r = srv.request("GET", doc_path("ledger", did), token=tok)
            check(r.status == 200, "GET %s: %r" % (did, r))
            model[did] = r.json["doc"]
        for w in WORDS + ["generation2", "generation4"]:
            want = sorted(d for d, v in model.items() if w in v["notes"].split())
            check(search(srv, tok, "ledger", "notes", w) == want,
                  "search %s after the accepted rollback" % w)
        check(total(srv, tok, "ledger", "amount") ==
              (sum(v["amount"] for v in model.values()), len(model)),
              "the total counts rows the trusted state does not know")

        # Written again, under the same ids and words as the lost writes.
        for i in range(6):
            put(srv, tok, "ledger", "b%d" % i, doc(i, 5), status=(201,))
        put(srv, tok, "ledger", "a1", doc(1, 6), status=(201,))
        bulk(srv, tok, "ledger", [("bb%d" % i, doc(i, 7)) for i in range(20)])
        for i in range(6):
            model["b%d" % i] = doc(i, 5)
        model["a1"] = doc(1, 6)
        for i in range(20):
            model["bb%d" % i] = doc(i, 7)
        for w in WORDS + ["generation5", "generation7", "generation2"]:
            want = sorted(d for d, v in model.items() if w in v["notes"].split())
            check(search(srv, tok, "ledger", "notes", w) == want, "search %s at the end" % w)
        check(total(srv, tok, "ledger", "amount") ==
              (sum(v["amount"] for v in model.values()), len(model)), "the final total")
        env.stop()
        final = store(env)

        n = no_reuse([at_backup, lost, final], "before, lost and after")
        diag("distinct row numbers %d, ASHE cells %d, search nonces %d" % n)
        # The lost writes' entries stay where they were: no new entry took their labels
        # (it would tell the store that the two writes share a word).
        diag("%d entries of the lost writes, none overwritten" % len(lost_labels))
        for k, v in lost_labels.items():
            check(final[2].get(k, v) == v, "an entry written after the accepted rollback "
                  "took the label of an entry of a lost write")
        # Nothing the lost writes left is read as a row: their rows are gone.
        lost_rows = {k for k in lost[0] if k not in at_backup[0]}
        check(lost_rows and not lost_rows & set(final[0]),
              "rows of the lost writes are still in the store")
    finally:
        env.close()


@test
def rollback_new_collection(ctx):
    """A collection registered, and written, after the backup: the installation's marks
    catch it (its table is unknown to the restored state); registered again, it starts
    empty. And a server restarted on the same trusted.db, with nothing lost, starts."""
    env = Env(ctx.veil, POLICY)
    try:
        tok = env.token("acme", "clerk")
        p = env.run("trusted", "accept-rollback", check_rc=False)
        check(p.returncode == 1 and "nothing to accept" in p.stderr,
              "accept-rollback with nothing behind: %r" % p.stderr)
        srv = env.start()
        put(srv, tok, "ledger", "x1", doc(1, 0))
        env.stop()
        saved = backup(env)
        env.apply("acme", LATER, name="later.yaml")
        srv = env.start()
        for i in range(5):
            put(srv, tok, "later", "l%d" % i, {"k": "k%d" % (i % 2), "n": i, "text": "quartz"})
        env.stop()
        before = store(env)
        srv = env.start()   # nothing lost: a restart is not a rollback
        check(srv.request("GET", doc_path("later", "l1"), token=tok).status == 200,
              "read after a plain restart")
        env.stop()
        restore(env, saved)
        refused(env, "veil server", "server", "--listen", "127.0.0.1:0")
        rep = json.loads(env.run("trusted", "accept-rollback").stdout)
        check([c["collection"] for c in rep["collections"]] == ["ledger"],
              "the restored state knows of %r" % rep["collections"])
        srv = env.start()
        r = srv.request("GET", doc_path("later", "l1"), token=tok)
        expect_error(r, 404, "not_found", "a collection the trusted state never heard of")
        env.stop()
        env.apply("acme", LATER, name="later.yaml")
        srv = env.start()
        r = srv.request("POST", "/v1/collections/later/query", token=tok,
                        body={"where": {"k": "k1"}})
        check(r.status == 200 and r.json["docs"] == [], "registered again: %r" % r)
        check(search(srv, tok, "later", "text", "quartz") == [], "its old entries came back")
        for i in range(3):
            put(srv, tok, "later", "m%d" % i, {"k": "k1", "n": 10 + i, "text": "quartz"},
                status=(201,))
        check(search(srv, tok, "later", "text", "quartz") == ["m0", "m1", "m2"],
              "search in the collection registered again")
        check(total(srv, tok, "later", "n") == (33, 3), "its total")
        env.stop()
        no_reuse([before, store(env)], "a collection written before and after")
    finally:
        env.close()


@test
def rollback_privacy_budget(ctx):
    """Privacy budgets cannot be given back by restoring trusted.db: every spend moves the
    mark the stores keep, so a backup taken before it is refused at start; once the loss is
    accepted, the period in which that happened counts as spent."""
    env = Env(ctx.veil, DP_POLICY)
    try:
        clerk, ana = env.token("acme", "clerk"), env.token("acme", "analyst")
        srv = env.start()
        put(srv, clerk, "stats", "s1", {"g": "a", "v": 5})
        env.stop()
        saved = backup(env)
        srv = env.start()

        def ask(where):
            return srv.request("POST", "/v1/collections/stats/aggregate", token=ana,
                               body={"where": {"g": where}, "metrics": {"n": {"count": "*"}}})
        for w in ("a", "b"):
            r = ask(w)
            check(r.status == 200 and r.json["privacy"]["spent"]["epsilon"] == 1,
                  "a paid answer: %r" % r)
        expect_error(ask("c"), 429, "privacy_budget_exhausted", "the budget of 2 is spent")
        env.stop()
        restore(env, saved)
        refused(env, "veil server", "server", "--listen", "127.0.0.1:0")
        env.run("trusted", "accept-rollback")
        srv = env.start()
        for w in ("a", "c"):
            expect_error(ask(w), 429, "privacy_budget_exhausted",
                         "after an accepted rollback, this period's budget")
        env.stop()
    finally:
        env.close()

