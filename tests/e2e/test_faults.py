"""test_faults.py: the faults guarantee (docs/threat-model.md) under kill -9.

Writers hammer a server with puts, replaces and deletes of a small set of documents, each
document's body naming its own generation; the server is killed with SIGKILL at random
moments, many times, and restarted. After every restart each document must read back
wholly as one generation that some client sent (or be absent only if a delete of it was
sent), every query must answer without an integrity alarm, equality queries must find
exactly the documents whose current value matches (no stray index entries), and
aggregates must equal the sum over the documents as they read back.
Imported by run.py (tests named faults_*).
"""

import json
import random
import signal
import threading
import time

from harness import Env, Failure, check, doc_path

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def diag(msg):  # replaced by run.py's diag
    pass


POLICY = """collection: things
fields:
  tag:   { type: string,  protect: [eq] }
  n:     { type: integer, protect: [sum, range] }
  gen:   { type: string,  protect: [eq] }
roles:
  writer: { read: ["*"], write: true }
"""

DOCS = ["t%02d" % i for i in range(12)]
ROUNDS = 8


def body(doc_id, g):
    return {"tag": "tag-%d" % (g % 3), "n": g, "gen": "%s-g%d" % (doc_id, g),
            "pad": "x" * (g % 50)}


@test
def faults_kill9_during_writes(ctx):
    env = Env(ctx.veil, POLICY)
    rng = random.Random(99)
    sent = {d: set() for d in DOCS}      # generations ever sent per document
    deletes = {d: 0 for d in DOCS}       # deletes ever sent
    lock = threading.Lock()
    counter = [0]
    try:
        for rnd in range(ROUNDS):
            srv = env.start()
            tok = env.tokens[("acme", "admin")]
            stop = threading.Event()

            def writer(seed):
                r = random.Random(seed)
                while not stop.is_set():
                    d = r.choice(DOCS)
                    try:
                        if r.random() < 0.15:
                            with lock:
                                deletes[d] += 1
                            srv.request("DELETE", doc_path("things", d), token=tok, timeout=5)
                        else:
                            with lock:
                                counter[0] += 1
                                g = counter[0]
                                sent[d].add(g)
                            srv.request("PUT", doc_path("things", d), body(d, g), token=tok,
                                        timeout=5)
                    except (OSError, ConnectionError, Exception):  # the kill cuts requests
                        if stop.is_set():
                            return
                        time.sleep(0.01)

            ts = [threading.Thread(target=writer, args=(rnd * 10 + k,)) for k in range(3)]
            for t in ts:
                t.start()
            time.sleep(0.2 + rng.random() * 0.6)
            srv.proc.send_signal(signal.SIGKILL)
            srv.proc.wait()
            stop.set()
            for t in ts:
                t.join()
            env.server = None

            # restart: recovery runs; every document is wholly one generation
            srv = env.start()
            current = {}
            for d in DOCS:
                r = srv.request("GET", doc_path("things", d), token=tok)
                check(r.status in (200, 404), "round %d: GET %s answered %r" % (rnd, d, r))
                if r.status == 404:
                    check(deletes[d] > 0 or not sent[d],
                          "round %d: %s is gone but was never deleted" % (rnd, d))
                    continue
                doc = r.json["doc"]
                g = doc["n"]
                check(g in sent[d] and doc == body(d, g),
                      "round %d: %s reads back torn or unknown: %r" % (rnd, d, doc))
                current[d] = g
            # queries agree with the documents: no stray or missing index entries
            for tag in ("tag-0", "tag-1", "tag-2"):
                r = srv.request("POST", "/v1/collections/things/query",
                                {"where": {"tag": tag}, "limit": 1000}, token=tok)
                check(r.status == 200, "round %d: query %s answered %r" % (rnd, tag, r))
                got = sorted(x["id"] for x in r.json["docs"])
                want = sorted(d for d, g in current.items() if "tag-%d" % (g % 3) == tag)
                check(got == want, "round %d: query %s found %r, want %r" % (rnd, tag, got,
                                                                           want))
            r = srv.request("POST", "/v1/collections/things/aggregate",
                            {"metrics": {"s": {"sum": "n"}, "c": {"count": "*"}}}, token=tok)
            check(r.status == 200, "round %d: aggregate answered %r" % (rnd, r))
            grp = r.json["groups"][0]
            check(grp["s"] == sum(current.values()) and grp["c"] == len(current),
                  "round %d: aggregate %r, want sum %d of %d" % (rnd, grp,
                                                                 sum(current.values()),
                                                                 len(current)))
            check("breach_suspected" not in srv.stderr(),
                  "round %d: a false integrity alarm:\n%s" % (rnd, srv.stderr()[-2000:]))
            env.stop()
        diag("%d kill -9 rounds, %d puts sent" % (ROUNDS, counter[0]))
    finally:
        env.close()
