#!/usr/bin/env python3
"""run.py: the end-to-end tests of veil (the HTTP API and docs/threat-model.md), against the real binary.

    python3 tests/e2e/run.py --veil build/veil [-k SUBSTRING]

Prints TAP on stdout ("ok N - name", "not ok N - name", "# diagnostics") and exits 1 if any
test failed. Each test attacks one claim and first checks that the claim is not vacuous
(what it looks for is really there to be found through the API).
"""

import argparse
import base64
import http.client
import json
import os
import random
import re
import signal
import socket
import string
import subprocess
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (INVOICES, Env, Failure, Server, check, doc_path,  # noqa: E402
                     expect_error, new_rows, read_response, seg)

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def rnd(n=10):
    return "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(n))


def invoice(i, org="ACME", status="open", **kw):
    d = {
        "invoice_no": "INV-%05d" % i,
        "org_id": org,
        "status": status,
        "issued_on": "2024-03-%02d" % (1 + i % 28),
        "amount": "%d.%02d" % (100 + i, i % 100),
        "customer": {"name": "Jansen BV %d" % i, "iban": "NL91ABNA041716%04d" % (i % 10000)},
        "notes": "late payment reminder number %d" % i,
        "internal_ref": "REF-%d" % i,
    }
    d.update(kw)
    return d


class Ctx:
    """The shared environment: tenant acme with every role, tenant globex, one server."""

    def __init__(self, veil):
        self.veil = veil
        self.env = Env(veil)
        e = self.env
        self.admin = e.tokens[("acme", "admin")]
        self.clerk = e.token("acme", "clerk")
        self.auditor = e.token("acme", "auditor")
        self.analyst = e.token("acme", "analyst")
        e.run("tenant", "create", "globex")
        self.globex = e.token("globex", "admin")
        e.apply("globex", open(INVOICES, encoding="utf-8").read(), name="globex.yaml")
        self.srv = e.start()

    def req(self, *a, **kw):
        return self.srv.request(*a, **kw)

    def put(self, coll, doc_id, doc, token=None, headers=None):
        return self.req("PUT", doc_path(coll, doc_id), body=doc, token=token or self.admin,
                        headers=headers)

    def get(self, coll, doc_id, token=None):
        return self.req("GET", doc_path(coll, doc_id), token=token or self.admin)

    def query(self, coll, q, token=None):
        return self.req("POST", "/v1/collections/%s/query" % seg(coll), body=q,
                        token=token or self.admin)

    def healthy(self, what):
        r = self.req("GET", "/healthz")
        check(r.status == 200, "%s: /healthz answers %r afterwards" % (what, r))


def ok(r, status, what):
    check(r.status == status, "%s: want %d, got %r" % (what, status, r))
    ct = r.header("Content-Type") or ""
    check(ct.startswith("application/json"), "%s: Content-Type %r" % (what, ct))
    return r.json


def all_pages(ctx, coll, q, token=None, limit_pages=1000):
    """Follows `next` from query q; returns the list of pages' docs lists."""
    pages = []
    cur = None
    for _ in range(limit_pages):
        body = dict(q)
        if cur is not None:
            body["after"] = cur
        j = ok(ctx.query(coll, body, token), 200, "query page %d" % len(pages))
        check(isinstance(j.get("docs"), list) and "next" in j, "query answer shape: %r" % j)
        pages.append(j["docs"])
        cur = j["next"]
        if cur is None:
            return pages
    raise Failure("paging did not end after %d pages" % limit_pages)


# ---------------------------------------------------------------------------------------
# the HTTP surface


@test
def healthz_and_headers(ctx):
    r = ctx.req("GET", "/healthz")
    j = ok(r, 200, "healthz")
    check(j.get("status") == "ok", "healthz status: %r" % j)
    check(j.get("stores", {}).get("cloud") == "ok", "healthz stores: %r" % j)
    check(r.header("X-Content-Type-Options") == "nosniff", "no nosniff header")
    check((r.header("Cache-Control") or "").find("no-store") >= 0, "no Cache-Control: no-store")


@test
def routing_404_405_and_bad_segments(ctx):
    expect_error(ctx.req("GET", "/nope"), 404, "not_found", "unknown route")
    expect_error(ctx.req("GET", "/v1/collections/invoices/docs/x/y", token=ctx.admin), 404,
                 "not_found", "too deep")
    expect_error(ctx.req("GET", "/v1/collections/invoices/aggregate-nope", token=ctx.admin),
                 404, "not_found", "unknown sub-route")
    r = ctx.req("DELETE", "/v1/collections", token=ctx.admin)
    expect_error(r, 405, "bad_request", "wrong method")
    check("GET" in (r.header("Allow") or ""), "405 without Allow: %r" % r.headers)
    expect_error(ctx.req("POST", "/healthz"), 405, "bad_request", "POST /healthz")
    base = "/v1/collections/invoices/docs/"
    for raw, what in [("a%2Fb", "escaped slash"), ("a%00b", "NUL"), ("a%FFb", "bad UTF-8"),
                      ("%C0%AF", "overlong UTF-8"), ("", "empty id"), ("a%zz", "bad escape"),
                      ("x" * 257, "257-byte id"), ("%C3%A9" * 129, "258-byte id")]:
        r = ctx.req("PUT", base + raw, body=invoice(1), token=ctx.admin)
        expect_error(r, 400, "bad_request", what)
    expect_error(ctx.req("GET", "/v1/collections//docs/x", token=ctx.admin), 400,
                 "bad_request", "empty collection")
    # The boundary is exact: 256 bytes are fine, and escapes are decoded.
    long_id = "L" * 250 + rnd(6)
    ok(ctx.put("invoices", long_id, invoice(2)), 201, "256-byte id")
    j = ok(ctx.get("invoices", long_id), 200, "get 256-byte id")
    check(j.get("id") == long_id, "256-byte id came back as %r" % j.get("id"))
    odd = "é ü+%?#&" + rnd(4)
    ok(ctx.put("invoices", odd, invoice(3)), 201, "escaped id")
    check(ok(ctx.get("invoices", odd), 200, "escaped id")["id"] == odd, "escaped id decoded")
    ctx.healthy("routing")


@test
def keep_alive_survives_errors(ctx):
    conn = http.client.HTTPConnection(ctx.srv.host, ctx.srv.port, timeout=30)
    try:
        i = "ka-" + rnd()
        steps = [("PUT", doc_path("invoices", i), json.dumps(invoice(5)), None, 401),
                 ("PUT", doc_path("invoices", i), '{"broken', ctx.admin, 400),
                 ("PATCH", doc_path("invoices", i), "{}", ctx.admin, 405),
                 ("PUT", doc_path("invoices", i), json.dumps(invoice(5)), ctx.admin, 201),
                 ("GET", "/nope", None, None, 404),
                 ("GET", doc_path("invoices", i), None, ctx.admin, 200)]
        for n, (m, p, body, tok, want) in enumerate(steps):
            h = {"Content-Type": "application/json"}
            if tok:
                h["Authorization"] = "Bearer " + tok
            conn.request(m, p, body=body, headers=h)
            r = conn.getresponse()
            data = r.read()
            check(r.status == want, "step %d %s: want %d, got %d %r" % (n, m, want, r.status,
                                                                       data[:200]))
        check(json.loads(data)["doc"] == invoice(5), "doc over keep-alive")
    finally:
        conn.close()


@test
def raw_garbage_requests(ctx):
    """Requests libmicrohttpd or our router must refuse without harm."""
    cases = [b"GARBAGE\r\n\r\n", b"GET\r\n\r\n", b"GET /healthz HTTP/9.9\r\n\r\n",
             b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
             b"GET /v1/collections/%/docs/x HTTP/1.1\r\nHost: x\r\n\r\n",
             b"PUT /v1/collections/invoices/docs/x HTTP/1.1\r\nHost: x\r\n"
             b"Content-Length: -5\r\n\r\n",
             b"PUT /v1/collections/invoices/docs/x HTTP/1.1\r\nHost: x\r\n"
             b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
             b"\x00\xff\xfe" * 100 + b"\r\n\r\n"]
    for n, c in enumerate(cases):
        try:
            status, _, _ = ctx.srv.raw(c, timeout=10)
        except OSError:
            status = None
        check(status is None or 400 <= status < 500 or status == 505,
              "case %d answered %r" % (n, status))
    ctx.healthy("raw garbage")


@test
def server_command_line(ctx):
    env = dict(os.environ)
    p = subprocess.run([ctx.veil, "server", "--help"], capture_output=True, text=True,
                       timeout=30, env=env)
    check(p.returncode == 0 and "usage" in p.stdout.lower(), "server --help: %r" % p)
    p = subprocess.run([ctx.veil, "server", "--bogus"], capture_output=True, text=True,
                       timeout=30, env=env)
    check(p.returncode == 2, "server --bogus exited %d" % p.returncode)
    p = subprocess.run([ctx.veil, "server", "--data", ctx.env.data, "--listen", "nonsense"],
                       capture_output=True, text=True, timeout=30, env=env)
    check(p.returncode == 1 and p.stderr.startswith("veil:"), "bad --listen: %r" % p)
    p = subprocess.run([ctx.veil, "server", "--data", os.path.join(ctx.env.tmp, "nothing"),
                        "--listen", "127.0.0.1:0"], capture_output=True, text=True, timeout=30,
                       env=env)
    check(p.returncode == 1 and p.stderr.startswith("veil:"), "missing data dir: %r" % p)
    # IPv6 loopback, when the machine has it.
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_STREAM).bind(("::1", 0))
    except OSError:
        diag("no IPv6 loopback here: skipped [::1]")
        return
    # A second server on the same data directory: both serve the same vault.
    srv = Server(ctx.veil, ctx.env.data, listen="[::1]:0")
    try:
        check(srv.host == "::1", "listening line names %r" % srv.host)
        r = srv.request("GET", "/healthz")
        check(r.status == 200, "healthz over IPv6: %r" % r)
    finally:
        srv.check_clean_exit(srv.stop())


@test
def put_replace_versions(ctx):
    i = "rt-" + rnd()
    j = ok(ctx.put("invoices", i, invoice(10)), 201, "first put")
    check(j.get("id") == i and j.get("version") == 1, "first put answer %r" % j)
    j = ok(ctx.put("invoices", i, invoice(11)), 200, "replace")
    check(j.get("id") == i and j.get("version") == 2, "replace answer %r" % j)
    j = ok(ctx.put("invoices", i, invoice(12)), 200, "replace again")
    check(j.get("version") == 3, "second replace answer %r" % j)
    j = ok(ctx.get("invoices", i), 200, "get")
    check(j.get("version") == 3 and j.get("doc") == invoice(12), "get after replace: %r" % j)


@test
def get_returns_doc_as_stored(ctx):
    i = "as-" + rnd()
    d = invoice(20, amount="1234.50", extra={"nested": [1, "two", None, True], "unlisted": "v"},
                flag=False)
    ok(ctx.put("invoices", i, d), 201, "put")
    r = ctx.get("invoices", i)
    j = ok(r, 200, "get")
    check(j.get("id") == i and j.get("version") == 1, "get header fields: %r" % j)
    check(j.get("doc") == d, "doc differs:\n got %r\nwant %r" % (j.get("doc"), d))
    check(j["doc"]["amount"] == "1234.50", "decimal changed: %r" % j["doc"]["amount"])
    # A decimal given as a JSON number keeps its value.
    i2 = "asn-" + rnd()
    ok(ctx.put("invoices", i2, invoice(21, amount=99.5)), 201, "put numeric decimal")
    got = ok(ctx.get("invoices", i2), 200, "get numeric decimal")["doc"]["amount"]
    check(float(got) == 99.5, "numeric decimal came back as %r" % got)


@test
def post_generates_id(ctx):
    d = invoice(30)
    r = ctx.req("POST", doc_path("invoices"), body=d, token=ctx.admin)
    j = ok(r, 201, "post")
    gid = j.get("id")
    check(isinstance(gid, str) and gid != "" and j.get("version") == 1, "post answer %r" % j)
    j2 = ok(ctx.req("POST", doc_path("invoices"), body=d, token=ctx.admin), 201, "post 2")
    check(j2["id"] != gid, "two POSTs got the same id %r" % gid)
    g = ok(ctx.get("invoices", gid), 200, "get generated")
    check(g.get("doc") == d, "generated-id doc differs: %r" % g)


@test
def delete_then_404(ctx):
    i = "del-" + rnd()
    ok(ctx.put("invoices", i, invoice(40)), 201, "put")
    ok(ctx.get("invoices", i), 200, "get before delete")
    r = ctx.req("DELETE", doc_path("invoices", i), token=ctx.admin)
    check(r.status == 200, "delete: %r" % r)
    expect_error(ctx.get("invoices", i), 404, "not_found", "get after delete")
    expect_error(ctx.req("DELETE", doc_path("invoices", i), token=ctx.admin), 404, "not_found",
                 "second delete")
    # Re-creating a deleted id is a new document again.
    ok(ctx.put("invoices", i, invoice(41)), 201, "put after delete")
    check(ok(ctx.get("invoices", i), 200, "get")["doc"] == invoice(41), "recreated doc")


@test
def if_match(ctx):
    i = "im-" + rnd()
    ok(ctx.put("invoices", i, invoice(50)), 201, "put")
    ok(ctx.put("invoices", i, invoice(51)), 200, "put v2")
    expect_error(ctx.put("invoices", i, invoice(52), headers={"If-Match": "1"}), 412,
                 "version_mismatch", "stale If-Match")
    check(ok(ctx.get("invoices", i), 200, "get")["doc"] == invoice(51),
          "a failed conditional write changed the document")
    j = ok(ctx.put("invoices", i, invoice(53), headers={"If-Match": "2"}), 200, "If-Match 2")
    check(j.get("version") == 3, "conditional write version %r" % j)
    expect_error(ctx.put("invoices", i, invoice(54), headers={"If-Match": "banana"}), 400,
                 "bad_request", "non-numeric If-Match")
    expect_error(ctx.put("invoices", "im-none-" + rnd(), invoice(55),
                         headers={"If-Match": "1"}), 412, "version_mismatch",
                 "If-Match on a missing document")


@test
def query_eq_in_select(ctx):
    org = "ORG-Q-" + rnd()
    ids = {}
    for n, st in enumerate(["open", "open", "overdue", "paid", "paid", "draft"]):
        i = "q-%d-%s" % (n, rnd(4))
        ids[i] = st
        ok(ctx.put("invoices", i, invoice(60 + n, org=org, status=st)), 201, "put")
    # a decoy in another org with the same status must never match
    ok(ctx.put("invoices", "q-decoy-" + rnd(4), invoice(70, org=org + "X")), 201, "decoy")

    def got(q):
        return {d["id"]: d for p in all_pages(ctx, "invoices", q) for d in p}

    r = got({"where": {"org_id": org}})
    check(set(r) == set(ids), "eq org: got %s want %s" % (sorted(r), sorted(ids)))
    r = got({"where": {"org_id": org, "status": "open"}})
    check(set(r) == {i for i, s in ids.items() if s == "open"}, "org AND status: %s" % sorted(r))
    r = got({"where": {"org_id": org, "status": {"in": ["open", "overdue"]}}})
    check(set(r) == {i for i, s in ids.items() if s in ("open", "overdue")},
          "in: %s" % sorted(r))
    for d in r.values():
        check(d["doc"]["status"] in ("open", "overdue") and d["doc"]["org_id"] == org,
              "in: wrong doc %r" % d)
    r = got({"where": {"org_id": org, "status": "nope"}})
    check(r == {}, "no match expected, got %s" % sorted(r))
    r = got({"where": {"org_id": org}, "select": ["invoice_no", "amount"]})
    check(len(r) == len(ids), "select: %d docs" % len(r))
    for d in r.values():
        check(set(d["doc"]) == {"invoice_no", "amount"}, "select kept %r" % sorted(d["doc"]))


@test
def query_limit_and_cursor(ctx):
    org = "ORG-P-" + rnd()
    want = set()
    for n in range(23):
        i = "p-%02d-%s" % (n, rnd(4))
        want.add(i)
        ok(ctx.put("invoices", i, invoice(100 + n, org=org)), 201, "put")
    pages = all_pages(ctx, "invoices", {"where": {"org_id": org}, "limit": 5})
    seen = [d["id"] for p in pages for d in p]
    check(all(len(p) <= 5 for p in pages), "a page exceeds the limit: %r" % [len(p) for p in pages])
    check(len(pages) >= 5, "23 docs in pages of 5 came in %d pages" % len(pages))
    check(len(seen) == len(set(seen)), "a doc was visited twice")
    check(set(seen) == want, "paging missed %s / added %s" % (sorted(want - set(seen)),
                                                           sorted(set(seen) - want)))
    expect_error(ctx.query("invoices", {"where": {"org_id": org}, "after": "garbage!!"}), 400,
                 "bad_request", "forged cursor")


@test
def bulk_mixed_lines(ctx):
    a, b, c, d = ("bk-%s-%s" % (x, rnd(4)) for x in "abcd")
    lines = [
        json.dumps({"id": a, "doc": invoice(200)}),
        '{"id": "broken", "doc": {',
        json.dumps({"id": b, "doc": invoice(201, amount=True)}),
        json.dumps({"id": c, "doc": invoice(202)}),
        json.dumps({"id": d, "doc": "not an object"}),
    ]
    r = ctx.req("POST", "/v1/collections/invoices/bulk", body="\n".join(lines) + "\n",
                token=ctx.admin, headers={"Content-Type": "application/x-ndjson"})
    check(r.status == 200, "bulk: %r" % r)
    check((r.header("Content-Type") or "").startswith("application/x-ndjson"),
          "bulk Content-Type %r" % r.header("Content-Type"))
    out = [json.loads(x) for x in r.body.decode().splitlines() if x.strip()]
    check(len(out) == len(lines), "bulk answered %d lines for %d" % (len(out), len(lines)))
    by_line = {}
    for o in out:
        check("line" in o and "status" in o, "bulk line shape: %r" % o)
        by_line[o["line"]] = o
    check(sorted(by_line) == [1, 2, 3, 4, 5], "bulk line numbers %r" % sorted(by_line))
    for n, o in by_line.items():
        if n in (1, 4):
            check("error" not in o and o["status"] in (200, 201, "created", "ok"),
                  "good line %d reported an error: %r" % (n, o))
        else:
            check("error" in o and isinstance(o["error"], dict), "bad line %d not reported: %r"
                  % (n, o))
    check(by_line[1].get("id") == a and by_line[4].get("id") == c, "good lines' ids")
    check(by_line[3].get("id") == b, "bad line keeps its id: %r" % by_line[3])
    check(by_line[3]["error"].get("code") == "invalid_document", "line 3: %r" % by_line[3])
    check(ok(ctx.get("invoices", a), 200, "bulk a")["doc"] == invoice(200), "bulk a stored")
    check(ok(ctx.get("invoices", c), 200, "bulk c")["doc"] == invoice(202), "bulk c stored")
    expect_error(ctx.get("invoices", b), 404, "not_found", "bad bulk line stored")
    expect_error(ctx.get("invoices", d), 404, "not_found", "bad bulk line stored")


# ---------------------------------------------------------------------------------------
# isolation and roles


@test
def isolation_between_tenants(ctx):
    i = "iso-" + rnd()
    secret = invoice(300, org="ORG-ISO", notes="acme only")
    ok(ctx.put("invoices", i, secret), 201, "acme put")
    check(ok(ctx.get("invoices", i), 200, "acme get")["doc"] == secret, "acme reads its doc")
    expect_error(ctx.get("invoices", i, token=ctx.globex), 404, "not_found",
                 "globex reads acme's doc")
    expect_error(ctx.req("DELETE", doc_path("invoices", i), token=ctx.globex), 404,
                 "not_found", "globex deletes acme's doc")
    for q in ({"where": {"org_id": "ORG-ISO"}}, {}):
        ids = [d["id"] for p in all_pages(ctx, "invoices", q, token=ctx.globex) for d in p]
        check(i not in ids, "globex query %r sees acme's doc" % q)
    # The same id in globex is a different document; acme's stays as it was.
    ok(ctx.put("invoices", i, invoice(301, org="ORG-ISO"), token=ctx.globex), 201, "globex put")
    check(ok(ctx.get("invoices", i), 200, "acme get")["doc"] == secret, "globex write leaked")
    check(ok(ctx.get("invoices", i, token=ctx.globex), 200, "")["doc"]["invoice_no"] ==
          "INV-00301", "globex reads its own doc")
    ids = [d["id"] for p in all_pages(ctx, "invoices", {"where": {"org_id": "ORG-ISO"}})
           for d in p]
    check(ids.count(i) == 1, "acme query sees globex's doc too: %r" % ids)
    # A clerk is not an admin: no policy changes.
    r = ctx.req("PUT", "/v1/collections/invoices", body=open(INVOICES).read(), token=ctx.clerk,
                headers={"Content-Type": "application/yaml"})
    expect_error(r, 403, "forbidden", "clerk applies a policy")
    # Globex's admin cannot reach acme-only collections either.
    ok(ctx.req("PUT", "/v1/collections/acmeonly",
               body=open(INVOICES).read().replace("collection: invoices",
                                                  "collection: acmeonly"),
               token=ctx.admin, headers={"Content-Type": "application/yaml"}), 201, "acmeonly")
    expect_error(ctx.req("GET", "/v1/collections/acmeonly", token=ctx.globex), 404, "not_found",
                 "globex sees acme's collection")
    expect_error(ctx.put("acmeonly", "x", invoice(1), token=ctx.globex), 404, "not_found",
                 "globex writes into acme's collection")


@test
def roles_filter_and_forbid(ctx):
    i = "role-" + rnd()
    d = invoice(400, customer={"name": "Visser", "iban": "NL91ABNA0417164300"})
    ok(ctx.put("invoices", i, d, token=ctx.clerk), 201, "clerk put")
    j = ok(ctx.get("invoices", i, token=ctx.clerk), 200, "clerk get")
    check(j["doc"] == d, "clerk reads everything: %r" % j["doc"])
    j = ok(ctx.get("invoices", i, token=ctx.auditor), 200, "auditor get")
    a = j["doc"]
    check(set(a) == {"invoice_no", "status", "amount", "customer"},
          "auditor sees fields %r" % sorted(a))
    check(a["invoice_no"] == d["invoice_no"] and a["status"] == d["status"] and
          a["amount"] == d["amount"], "auditor's clear fields differ: %r" % a)
    check(set(a["customer"]) == {"iban"}, "auditor sees customer fields %r" % a["customer"])
    iban = a["customer"]["iban"]
    check(isinstance(iban, str) and iban.endswith("4300") and iban.startswith("*") and
          "NL91ABNA" not in iban, "iban not masked last4: %r" % iban)
    body = ctx.get("invoices", i, token=ctx.auditor).body
    for secret in (b"Visser", b"NL91ABNA", d["notes"].encode(), d["internal_ref"].encode()):
        check(secret not in body, "auditor's answer holds %r" % secret)
    q = all_pages(ctx, "invoices", {"where": {"invoice_no": "INV-00400"}},
                  token=ctx.auditor)
    qd = [x for p in q for x in p if x["id"] == i]
    check(len(qd) == 1 and set(qd[0]["doc"]) <= {"invoice_no", "status", "amount", "customer"},
          "auditor query filtered: %r" % qd)
    expect_error(ctx.put("invoices", i, d, token=ctx.auditor), 403, "forbidden", "auditor put")
    expect_error(ctx.req("DELETE", doc_path("invoices", i), token=ctx.auditor), 403,
                 "forbidden", "auditor delete")
    expect_error(ctx.get("invoices", i, token=ctx.analyst), 403, "forbidden", "analyst get")
    expect_error(ctx.query("invoices", {"where": {"org_id": "ACME"}}, token=ctx.analyst), 403,
                 "forbidden", "analyst query")
    expect_error(ctx.put("invoices", i, d, token=ctx.analyst), 403, "forbidden", "analyst put")
    check(ok(ctx.get("invoices", i, token=ctx.clerk), 200, "")["version"] == 1,
          "a forbidden write changed the document")


# ---------------------------------------------------------------------------------------
# bad input


@test
def bad_json_and_utf8(ctx):
    p = doc_path("invoices", "bad-" + rnd())
    for body, what in [(b'{"invoice_no": ', "truncated JSON"), (b"{'a': 1}", "single quotes"),
                       (b"", "empty body"), (b'{"a":1} trailing', "trailing garbage"),
                       (b'{"invoice_no":"INV-\xff\xfe","org_id":"A"}', "invalid UTF-8"),
                       (b'{"notes":"\xc0\xaf"}', "overlong UTF-8"),
                       (b'{"notes":"\xed\xa0\x80"}', "surrogate in UTF-8")]:
        r = ctx.req("PUT", p, body=body, token=ctx.admin,
                    headers={"Content-Type": "application/json"})
        expect_error(r, 400, "bad_request", what)
    expect_error(ctx.get("invoices", p.rsplit("/", 1)[1]), 404, "not_found",
                 "a rejected document was stored")
    r = ctx.query("invoices", b'{"where": [}')
    expect_error(r, 400, "bad_request", "malformed query")
    ctx.healthy("bad JSON")


@test
def deep_nesting(ctx):
    deep = '{"notes_extra": ' + "[" * 200 + "]" * 200 + "}"
    r = ctx.req("PUT", doc_path("invoices", "deep-" + rnd()), body=deep, token=ctx.admin,
                headers={"Content-Type": "application/json"})
    expect_error(r, 400, "bad_request", "200-deep document")
    r = ctx.query("invoices", '{"where": ' + '{"a":' * 200 + "1" + "}" * 201)
    expect_error(r, 400, "bad_request", "200-deep query")
    ctx.healthy("deep nesting")


@test
def oversized_bodies(ctx):
    big = 20 * 1024 * 1024
    path = doc_path("invoices", "big-" + rnd())
    # Announced: the answer comes before the body is sent.
    s = socket.create_connection((ctx.srv.host, ctx.srv.port), timeout=30)
    try:
        s.sendall(("PUT %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                   "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                   % (path, ctx.admin, big)).encode())
        status, hdrs, body = read_response(s)
    finally:
        s.close()
    check(status == 413, "announced 20 MiB: status %r %r" % (status, body[:200]))
    check(json.loads(body)["error"]["code"] == "too_large", "413 body %r" % body[:200])
    # Chunked: the server only finds out while reading.
    conn = http.client.HTTPConnection(ctx.srv.host, ctx.srv.port, timeout=120)
    try:
        chunk = b"[" + b" " * (1024 * 1024 - 2) + b"]"

        def gen():
            for _ in range(20):
                yield chunk
        conn.request("PUT", path, body=gen(), encode_chunked=True,
                     headers={"Authorization": "Bearer " + ctx.admin,
                              "Content-Type": "application/json",
                              "Transfer-Encoding": "chunked"})
        r = conn.getresponse()
        data = r.read()
    finally:
        conn.close()
    check(r.status == 413, "chunked 20 MiB: %r %r" % (r.status, data[:200]))
    check(json.loads(data)["error"]["code"] == "too_large", "413 body %r" % data[:200])
    ctx.healthy("oversized bodies")


@test
def mistyped_fields(ctx):
    for field, value in [("amount", True), ("amount", "12.345"), ("amount", {"x": 1}),
                         ("issued_on", "2024-13-45"), ("issued_on", 20240101),
                         ("invoice_no", 12)]:
        i = "type-" + rnd()
        err = expect_error(ctx.put("invoices", i, invoice(500, **{field: value})), 400,
                           "invalid_document", "%s=%r" % (field, value))
        check(err.get("field") == field, "%s=%r: error field %r" % (field, value,
                                                                  err.get("field")))
        check(repr(value) not in err.get("message", "") or len(repr(value)) < 3,
              "the message echoes the value: %r" % err)
        expect_error(ctx.get("invoices", i), 404, "not_found", "a mistyped doc was stored")
    err = expect_error(ctx.put("invoices", "type-" + rnd(),
                               invoice(501, customer={"name": "x", "iban": 5})), 400,
                       "invalid_document", "customer.iban=5")
    check(err.get("field") == "customer.iban", "nested field named %r" % err.get("field"))
    r = ctx.put("invoices", "type-" + rnd(), [1, 2])
    check(r.status == 400 and r.error_code() in ("bad_request", "invalid_document"),
          "array document: %r" % r)
    ctx.healthy("mistyped fields")


@test
def unknown_collection(ctx):
    expect_error(ctx.get("nosuchcoll", "x"), 404, "not_found", "get")
    expect_error(ctx.put("nosuchcoll", "x", invoice(1)), 404, "not_found", "put")
    expect_error(ctx.query("nosuchcoll", {}), 404, "not_found", "query")
    expect_error(ctx.req("GET", "/v1/collections/nosuchcoll", token=ctx.admin), 404,
                 "not_found", "policy")
    ctx.healthy("unknown collection")


@test
def unsupported_queries(ctx):
    for q, what in [({"where": {"customer.iban": "NL91"}}, "eq on aead-only field"),
                    ({"where": {"internal_ref": "REF-1"}}, "eq on a trusted aead field"),
                    ({"where": {"notes": "late"}}, "eq on a search-only field"),
                    ({"where": {"amount": {"in": ["1.00"]}}}, "in on a sum/range field")]:
        expect_error(ctx.query("invoices", q), 400, "unsupported_query", what)
    ctx.healthy("unsupported queries")


@test
def tokens_missing_bad_revoked(ctx):
    p = doc_path("invoices", "x")
    for hdrs, what in [({}, "no token"), ({"Authorization": "Bearer nope"}, "bad token"),
                       ({"Authorization": "Basic YTpi"}, "basic auth"),
                       ({"Authorization": "Bearer " + ctx.admin + "x"}, "extended token"),
                       ({"Authorization": "Bearer"}, "empty bearer")]:
        r = ctx.req("GET", p, headers=hdrs)
        expect_error(r, 401, "unauthenticated", what)
        check((r.header("WWW-Authenticate") or "").startswith("Bearer"),
              "%s: no WWW-Authenticate: Bearer" % what)
    tok = ctx.env.token("acme", "clerk")
    tid = token_id(ctx.env, tok)
    i = "rev-" + rnd()
    ok(ctx.put("invoices", i, invoice(600), token=tok), 201, "token works before revoke")
    ctx.env.run("token", "revoke", tid)
    expect_error(ctx.get("invoices", i, token=tok), 401, "unauthenticated", "revoked token")
    expect_error(ctx.put("invoices", i, invoice(601), token=tok), 401, "unauthenticated",
                 "revoked token write")
    ok(ctx.get("invoices", i), 200, "other tokens still work")
    ctx.healthy("tokens")


def token_id(env, tok):
    """The id of a token for `veil token revoke`: printed on stderr by token create."""
    err = env.last_token_stderr
    m = re.search(r"veil: token (\S+) for tenant", err)
    check(m is not None, "token create printed no token id on stderr: %r" % err)
    check(tok not in err, "token create printed the token on stderr")
    return m.group(1)


@test
def policies_apply_conflict_invalid(ctx):
    text = open(INVOICES, encoding="utf-8").read()
    name = "pol" + rnd(6)
    mine = text.replace("collection: invoices", "collection: " + name)
    y = {"Content-Type": "application/yaml"}
    r = ctx.req("PUT", "/v1/collections/" + name, body=mine, token=ctx.admin, headers=y)
    check(r.status == 201, "new policy: %r" % r)
    r = ctx.req("PUT", "/v1/collections/" + name, body=mine, token=ctx.admin, headers=y)
    check(r.status == 200, "identical policy: %r" % r)
    other = mine.replace("customer.iban: { type: string,  mask: last4 }",
                         "customer.iban: { type: string,  mask: first1 }")
    check(other != mine, "policy edit did not apply")
    expect_error(ctx.req("PUT", "/v1/collections/" + name, body=other, token=ctx.admin,
                         headers=y), 409, "conflict", "different policy, same name")
    expect_error(ctx.req("PUT", "/v1/collections/invoices", body=other.replace(name, "invoices"),
                         token=ctx.admin, headers=y), 409, "conflict", "invoices redefined")
    j = ok(ctx.req("GET", "/v1/collections/" + name, token=ctx.admin), 200, "get policy")
    check(j.get("collection") == name and "leakage" in json.dumps(j), "policy answer %r" % j)
    lst = ok(ctx.req("GET", "/v1/collections", token=ctx.clerk), 200, "list policies")
    check(name in json.dumps(lst), "list lacks %s" % name)
    bad = "collection: %s\nfields:\n  a: { type: strng }\n" % ("bad" + rnd(5))
    expect_error(ctx.req("PUT", "/v1/collections/" + bad.split()[1], body=bad,
                         token=ctx.admin, headers=y), 400, "invalid_policy", "unknown type")
    bad2 = "collection: x%s\nfields:\n  a: { type: string, protect: [telepathy] }\n" % rnd(5)
    expect_error(ctx.req("PUT", "/v1/collections/" + bad2.split()[1], body=bad2,
                         token=ctx.admin, headers=y), 400, "invalid_policy", "unknown tactic")
    # JSON is the default content type: YAML sent as JSON is malformed JSON, a wrong policy
    # like malformed YAML, on its first line.
    e = expect_error(ctx.req("PUT", "/v1/collections/" + name, body=mine, token=ctx.admin,
                             headers={"Content-Type": "application/json"}), 400,
                     "invalid_policy", "YAML as JSON")
    check(e["message"].startswith("line 1: "), "YAML as JSON: %r" % e)
    pj = {"collection": "js" + name, "fields": {"a": {"type": "string", "protect": ["eq"]}},
          "roles": {"r": {"read": ["*"]}}}
    r = ctx.req("PUT", "/v1/collections/js" + name, body=pj, token=ctx.admin)
    check(r.status == 201, "JSON policy: %r" % r)
    r = ctx.req("PUT", "/v1/collections/other" + name, body=pj, token=ctx.admin)
    check(r.status == 400, "policy name differs from the path: %r" % r)
    ctx.healthy("policies")


@test
def metrics_counts_routes(ctx):
    ok(ctx.req("GET", "/healthz"), 200, "healthz")
    ok(ctx.put("invoices", "metrics-" + rnd(), invoice(1)), 201, "put")
    r = ctx.req("GET", "/metrics")
    check(r.status == 200, "metrics: %r" % r)
    text = r.body.decode()
    check((r.header("Content-Type") or "").startswith("text/plain"), "metrics Content-Type")
    m = re.search(r'veil_requests_total\{route="/healthz",status="200"\} (\d+)', text)
    check(m and int(m.group(1)) >= 1, "no healthz counter:\n" + text[:1500])
    check(re.search(r'veil_requests_total\{route="/v1/collections/\{c\}/docs/\{id\}",'
                    r'status="201"\} \d+', text), "no doc PUT counter")
    check(re.search(r'veil_request_duration_seconds_count\{route="[^"]+"\} \d+', text),
          "no duration count")
    check(re.search(r'veil_request_duration_seconds_sum\{route="[^"]+"\} [0-9.]+', text),
          "no duration sum")
    check("metrics-" not in text and "/docs/" + "m" not in text, "metrics hold raw paths")


# ---------------------------------------------------------------------------------------
# the command-line client


@test
def cli_client(ctx):
    env = dict(os.environ, VEIL_ADDR=ctx.srv.url(), VEIL_TOKEN=ctx.admin)
    env.pop("VEIL_DATA", None)

    def veil(*args, stdin=None, e=env):
        return subprocess.run([ctx.veil] + list(args), input=stdin, capture_output=True,
                              text=True, env=e, timeout=60)

    i = "cli " + rnd()
    f = os.path.join(ctx.env.tmp, "cli.json")
    d = invoice(700, org="ORG-CLI-" + rnd(4))
    with open(f, "w") as fh:
        json.dump(d, fh)
    p = veil("put", "invoices", i, f)
    check(p.returncode == 0, "put: %d %s" % (p.returncode, p.stderr))
    j = json.loads(p.stdout)
    check(j == {"id": i, "version": 1}, "put printed %r" % p.stdout)
    d2 = dict(d, status="paid")
    p = veil("put", "invoices", i, "-", stdin=json.dumps(d2))
    check(p.returncode == 0 and json.loads(p.stdout)["version"] == 2, "put from stdin: %r" % p)
    p = veil("get", "invoices", i)
    check(p.returncode == 0, "get: %s" % p.stderr)
    check(json.loads(p.stdout)["doc"] == d2, "get printed %r" % p.stdout)
    check('"%s"' % d2["amount"] in p.stdout, "decimal printed as %r" % p.stdout)
    p = veil("query", "invoices", json.dumps({"where": {"org_id": d["org_id"]}}))
    check(p.returncode == 0, "query: %s" % p.stderr)
    check([x["id"] for x in json.loads(p.stdout)["docs"]] == [i], "query printed %r" % p.stdout)
    p = veil("delete", "invoices", i)
    check(p.returncode == 0, "delete: %s" % p.stderr)
    p = veil("get", "invoices", i)
    check(p.returncode == 1 and p.stderr.startswith("veil: not_found:"),
          "get after delete: %d %r" % (p.returncode, p.stderr))
    check(p.stdout == "", "error printed on stdout: %r" % p.stdout)
    p = veil("put", "invoices", "x", "-", stdin='{"amount": true}')
    check(p.returncode == 1 and "invalid_document" in p.stderr, "bad put: %r" % p.stderr)
    p = veil("get", "invoices", i, e=dict(env, VEIL_TOKEN=""))
    check(p.returncode == 1 and "VEIL_TOKEN" in p.stderr, "no token: %d %r" % (p.returncode,
                                                                          p.stderr))
    p = veil("get", "invoices", i, e=dict(env, VEIL_TOKEN="wrong"))
    check(p.returncode == 1 and "unauthenticated" in p.stderr, "bad token: %r" % p.stderr)
    check(ctx.admin not in p.stderr, "the token was echoed")
    p = veil("get", "invoices")
    check(p.returncode == 2, "usage error: %d" % p.returncode)
    for cmd in ("put", "get", "delete", "query"):
        p = veil(cmd, "--help")
        check(p.returncode == 0 and "usage" in p.stdout.lower(), "%s --help: %r" % (cmd, p))
    p = veil("get", "invoices", "x", e=dict(env, VEIL_ADDR="http://127.0.0.1:1"))
    check(p.returncode == 1 and p.stderr.startswith("veil:"), "unreachable: %r" % p.stderr)


# ---------------------------------------------------------------------------------------
# guarantees that need their own data directory


def canary(place):
    return "CANARY" + place + rnd(12)


@test
def opacity_canaries(ctx):
    env = Env(ctx.veil)
    try:
        _opacity(env)
    finally:
        env.close()


def _opacity(env):
    srv = env.start()
    adm = env.tokens[("acme", "admin")]
    coll = "canarycoll" + rnd(8)
    text = open(INVOICES, encoding="utf-8").read().replace("collection: invoices",
                                                           "collection: " + coll)
    r = srv.request("PUT", "/v1/collections/" + coll, body=text, token=adm,
                    headers={"Content-Type": "application/yaml"})
    check(r.status == 201, "canary collection: %r" % r)
    canaries = [coll]
    written = {}

    def mk(tag):
        c = {k: canary(k + tag) for k in ("inv", "org", "st", "name", "iban", "notes", "ref",
                                          "fname", "fval", "nested", "arr")}
        canaries.extend(c.values())
        return {
            "invoice_no": c["inv"], "org_id": c["org"], "status": c["st"],
            "issued_on": "2024-05-01", "amount": "10.00",
            "customer": {"name": c["name"], "iban": "NL91" + c["iban"] + "1234"},
            "notes": "paid late " + c["notes"] + " again",
            "internal_ref": c["ref"],
            c["fname"]: c["fval"],
            "extra": {c["nested"]: [c["arr"], 1]},
        }

    for n in range(6):
        did = canary("id%d" % n)
        canaries.append(did)
        for c in (coll, "invoices"):
            d = mk("%d%s" % (n, c[:3]))
            r = srv.request("PUT", doc_path(c, did), body=d, token=adm)
            check(r.status == 201, "put %d: %r" % (n, r))
            written[(c, did)] = d
    # update two, delete one in each collection
    ids = sorted({k[1] for k in written})
    for c in (coll, "invoices"):
        for did in ids[:2]:
            d = mk("u" + did[-4:] + c[:3])
            check(srv.request("PUT", doc_path(c, did), body=d, token=adm).status == 200,
                  "update")
            written[(c, did)] = d
        check(srv.request("DELETE", doc_path(c, ids[2]), token=adm).status == 200, "delete")
        del written[(c, ids[2])]
    # Non-vacuous: the canaries are there to be read, and queries by them work.
    for (c, did), d in written.items():
        r = srv.request("GET", doc_path(c, did), token=adm)
        check(r.status == 200 and r.json["doc"] == d, "canary doc reads back: %r" % r)
        q = srv.request("POST", "/v1/collections/%s/query" % seg(c),
                        body={"where": {"org_id": d["org_id"]}}, token=adm)
        check(q.status == 200 and [x["id"] for x in q.json["docs"]] == [did],
              "query by canary: %r" % q)
    # While the server runs, the write-ahead log holds the latest pages: look at it too.
    live = {f + " (live)": open(f, "rb").read() for f in env.cloud_files()}
    env.stop()
    files = env.cloud_files()
    check(any(f.endswith("cloud.db") for f in files), "no cloud.db under cloud/: %r" % files)
    rows = env.rows()
    check(len(rows) >= len(written), "cloud holds %d rows for %d docs" % (len(rows),
                                                                        len(written)))
    blobs = {f: open(f, "rb").read() for f in files}
    blobs.update(live)
    check(sum(len(b) for b in blobs.values()) > 4096, "cloud files are nearly empty")
    names = ["invoice_no", "internal_ref", "customer.iban", "org_id", "invoices"]
    # The scanner itself must see what it looks for (a positive control).
    probe = canaries[1].encode()
    planted = {"control": b"x" + probe + b"y" + probe.hex().encode() + b"z"}
    check(len(scan([canaries[1]], planted)) == 2, "the scanner misses planted canaries")
    leaks = scan(canaries + names, blobs)
    check(not leaks, "found in untrusted files: %s" % "; ".join(leaks[:20]))
    diag("opacity: %d canaries, %d files (%s), %d bytes, %d rows" % (
        len(canaries), len(blobs), ", ".join(os.path.basename(f) for f in sorted(blobs)),
        sum(len(b) for b in blobs.values()), len(rows)))


def scan(needles, blobs):
    """Every needle found in any blob, raw or as hex, lowercased or base64."""
    leaks = []
    for cn in needles:
        raw = cn.encode()
        forms = {"raw": raw, "hex": raw.hex().encode(), "HEX": raw.hex().upper().encode(),
                 "lower": raw.lower(), "base64": base64.b64encode(raw)[:-4] if len(raw) > 6
                 else raw}
        for f, b in blobs.items():
            for form, needle in forms.items():
                if needle in b:
                    leaks.append("%s (%s) in %s" % (cn, form, os.path.basename(f)))
    return leaks


@test
def integrity_attacks(ctx):
    env = Env(ctx.veil)
    try:
        _integrity(env)
    finally:
        env.close()


def _integrity(env):
    srv = env.start()
    adm = env.tokens[("acme", "admin")]
    where = {}
    docs = {}

    def put(did, d, status):
        before = env.rows()
        r = srv.request("PUT", doc_path("invoices", did), body=d, token=adm)
        check(r.status == status, "put %s: %r" % (did, r))
        after = env.rows()
        if status == 201:
            nr = new_rows(before, after)
            check(len(nr) == 1, "put %s added %d rows" % (did, len(nr)))
            where[did] = next(iter(nr))
        else:
            k = where[did]
            check(after[k] != before[k], "replace did not change the row of %s" % did)
        docs[did] = d
        return before

    for n, did in enumerate(["A", "B", "C", "D", "E", "S1", "S2"]):
        org = "ORG-SAFE" if did.startswith("S") else "ORG-ATT"
        put(did, invoice(800 + n, org=org, notes="secret note %s zq" % did), 201)
    before_e = put("E", invoice(890, org="ORG-ATT", notes="secret note E2 zq"), 200)
    old_e = before_e[where["E"]]

    def read(did):
        return srv.request("GET", doc_path("invoices", did), token=adm)

    def attacked(did, what):
        r = read(did)
        expect_error(r, 502, "integrity_violation", "%s (%s)" % (what, did))
        check(b"secret note" not in r.body and b"INV-" not in r.body,
              "%s: the 502 carries document data: %r" % (what, r.body))

    def intact(did, what):
        r = read(did)
        check(r.status == 200 and r.json["doc"] == docs[did],
              "%s: untouched %s no longer reads: %r" % (what, did, r))

    for did in docs:
        intact(did, "before")
    q = {"where": {"org_id": "ORG-ATT"}}
    check(srv.request("POST", "/v1/collections/invoices/query", body=q, token=adm).status ==
          200, "query before attacks")

    # 1. a flipped bit
    env.stop()
    t, k = where["A"]
    seq, blob = env.rows()[(t, k)]
    b = bytearray(blob)
    b[len(b) // 2] ^= 0x04
    env.write_row(t, k, blob=bytes(b))
    srv = env.start()
    attacked("A", "bit flip")
    intact("D", "bit flip")
    intact("S1", "bit flip")
    # 2. two rows' blobs swapped
    env.stop()
    rows = env.rows()
    (tb, kb), (tc, kc) = where["B"], where["C"]
    env.write_row(tb, kb, blob=rows[(tc, kc)][1])
    env.write_row(tc, kc, blob=rows[(tb, kb)][1])
    srv = env.start()
    attacked("B", "swap")
    attacked("C", "swap")
    intact("D", "swap")
    # 3. an older version restored (blob and sequence number)
    env.stop()
    te, ke = where["E"]
    env.write_row(te, ke, blob=old_e[1], seq=old_e[0])
    srv = env.start()
    attacked("E", "rollback")
    intact("D", "rollback")
    # 4. a query whose answer includes attacked documents fails whole
    r = srv.request("POST", "/v1/collections/invoices/query", body=q, token=adm)
    expect_error(r, 502, "integrity_violation", "query over attacked docs")
    check(b"secret note" not in r.body, "the query's 502 carries data")
    r = srv.request("POST", "/v1/collections/invoices/query",
                    body={"where": {"org_id": "ORG-SAFE"}}, token=adm)
    check(r.status == 200 and sorted(x["id"] for x in r.json["docs"]) == ["S1", "S2"],
          "query over untouched docs: %r" % r)
    env.stop()


@test
def sigterm_with_requests_in_flight(ctx):
    env = Env(ctx.veil)
    try:
        _sigterm(env)
    finally:
        env.close()


def _sigterm(env):
    adm = env.tokens[("acme", "admin")]
    srv = env.start()
    # 1. One request deterministically in flight: half its body sent before SIGTERM.
    body = json.dumps(invoice(900)).encode()
    half = len(body) // 2
    s = socket.create_connection((srv.host, srv.port), timeout=30)
    s.sendall(("PUT %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
               "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
               % (doc_path("invoices", "slow"), adm, len(body))).encode() + body[:half])
    time.sleep(0.5)
    srv.proc.send_signal(signal.SIGTERM)
    time.sleep(0.7)
    check(srv.proc.poll() is None, "server exited with a request in flight")
    s.sendall(body[half:])
    status, _, rb = read_response(s)
    s.close()
    check(status == 201, "in-flight request after SIGTERM: %r %r" % (status, rb[:200]))
    rc = srv.stop()
    srv.check_clean_exit(rc)
    env.server = None
    try:
        socket.create_connection((srv.host, srv.port), timeout=5).close()
        raise Failure("the port still accepts connections after a stop")
    except ConnectionRefusedError:
        pass
    srv = env.start()
    r = srv.request("GET", doc_path("invoices", "slow"), token=adm)
    check(r.status == 200 and r.json.get("doc") == invoice(900),
          "the in-flight write was lost: %r" % r)
    # 2. A storm of writers; SIGTERM in the middle.
    results = []
    lock = threading.Lock()
    started = threading.Event()

    def writer(w):
        for n in range(40):
            did = "w%d-%d" % (w, n)
            try:
                r = srv.request("PUT", doc_path("invoices", did), body=invoice(n), token=adm,
                                timeout=30)
                res = (did, r.status)
            except (ConnectionError, http.client.HTTPException, OSError) as e:
                res = (did, type(e).__name__)
            with lock:
                results.append(res)
                if len(results) >= 20:
                    started.set()
            if not isinstance(res[1], int):
                return

    ts = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in ts:
        t.start()
    check(started.wait(60), "writers made no progress")
    srv.proc.send_signal(signal.SIGTERM)
    for t in ts:
        t.join(120)
    rc = srv.stop()
    srv.check_clean_exit(rc)
    env.server = None
    bad = [r for r in results if isinstance(r[1], int) and r[1] not in (200, 201)]
    check(not bad, "writes answered badly during shutdown: %r" % bad[:10])
    stored = [d for d, st in results if st in (200, 201)]
    cut = [d for d, st in results if st not in (200, 201)]
    diag("sigterm: %d writes acknowledged, %d cut" % (len(stored), len(cut)))
    check(stored, "no write was acknowledged")
    srv = env.start()
    for did in stored + cut:
        n = int(did.split("-")[1])
        r = srv.request("GET", doc_path("invoices", did), token=adm)
        if did in cut and r.status == 404:
            continue
        check(r.status == 200 and r.json["doc"] == invoice(n),
              "write %s (%s) reads back as %r after shutdown" %
              (did, "acknowledged" if did in stored else "cut", r))
    env.stop()


@test
def shared_server_stops_cleanly(ctx):
    ok(ctx.put("invoices", "last-" + rnd(), invoice(1)), 201, "last put")
    srv = ctx.env.stop()
    log = srv.stderr()
    check(re.search(r'"method":"(PUT|GET)","route":"/v1/collections/\{c\}/docs/\{id\}",'
                    r'"status":20[01],', log),
          "no request lines in the server log:\n" + log[-1000:])
    for secret, what in [(ctx.admin, "a token"), (ctx.clerk, "a token"), ("rt-", "an id"),
                         ("iso-", "an id"), ("role-", "an id"), ("last-", "an id"),
                         ("Jansen BV", "a value"), ("late payment reminder", "a value"),
                         ("NL91ABNA", "a value")]:
        check(secret not in log, "the server log holds %s (%r)" % (what, secret))
    # Keys: no key in the log, in any spelling (the root key file is 32 raw bytes).
    with open(os.path.join(ctx.env.data, "master.key"), "rb") as f:
        root = f.read()
    check(len(root) == 32, "master.key is not a 32-byte key")
    raw = srv.stderr().encode("utf-8", "surrogateescape")
    for form in (root, root.hex().encode(), root.hex().upper().encode(),
                 base64.b64encode(root), base64.urlsafe_b64encode(root).rstrip(b"=")):
        check(form[:16] not in raw, "the server log holds the root key")


# ---------------------------------------------------------------------------------------

_diags = []


def diag(msg):
    _diags.append(msg)


# Range filters and aggregates (their own data directory and policies).
import test_analytics  # noqa: E402

test_analytics.diag = diag
TESTS.extend(test_analytics.TESTS)
import test_faults  # noqa: E402
test_faults.diag = diag
TESTS.extend(test_faults.TESTS)
import test_search  # noqa: E402
test_search.diag = diag
TESTS.extend(test_search.TESTS)
import test_answers  # noqa: E402
test_answers.diag = diag
TESTS.extend(test_answers.TESTS)
import test_hardening  # noqa: E402
test_hardening.diag = diag
TESTS.extend(test_hardening.TESTS)
import test_firsthour  # noqa: E402
test_firsthour.diag = diag
TESTS.extend(test_firsthour.TESTS)
import test_coredump  # noqa: E402
test_coredump.diag = diag
TESTS.extend(test_coredump.TESTS)
import test_rollback  # noqa: E402
test_rollback.diag = diag
TESTS.extend(test_rollback.TESTS)
import test_privacy  # noqa: E402
test_privacy.diag = diag
TESTS.extend(test_privacy.TESTS)
import test_tamper  # noqa: E402
test_tamper.diag = diag
TESTS.extend(test_tamper.TESTS)
import test_verify  # noqa: E402
test_verify.diag = diag
TESTS.extend(test_verify.TESTS)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--veil", required=True)
    ap.add_argument("-k", default=None, help="run only tests whose name holds this")
    args = ap.parse_args()
    veil = os.path.abspath(args.veil)
    tests = [t for t in TESTS if args.k is None or args.k in t.__name__ or
             t.__name__ == "shared_server_stops_cleanly"]
    tests.sort(key=lambda t: t.__name__ == "shared_server_stops_cleanly")  # stable: last
    print("1..%d" % len(tests), flush=True)
    failed = 0
    ctx = None
    try:
        ctx = Ctx(veil)
    except Exception as e:  # noqa: BLE001 - set-up failure fails every test
        for n, t in enumerate(tests, 1):
            print("not ok %d - %s" % (n, t.__name__))
        print("# set-up failed: %s" % str(e).replace("\n", "\n# "))
        traceback.print_exc(file=sys.stderr)
        return 1
    try:
        for n, t in enumerate(tests, 1):
            _diags.clear()
            t0 = time.time()
            try:
                t(ctx)
                print("ok %d - %s" % (n, t.__name__))
            except Exception as e:  # noqa: BLE001 - a test's crash is its failure
                failed += 1
                print("not ok %d - %s" % (n, t.__name__))
                msg = "%s: %s" % (type(e).__name__, e) if not isinstance(e, Failure) else str(e)
                for line in msg.splitlines()[:40]:
                    print("# " + line)
                if not isinstance(e, Failure):
                    traceback.print_exc(file=sys.stderr)
            for d in _diags:
                print("# " + d)
            print("# %s took %.1fs" % (t.__name__, time.time() - t0), flush=True)
            if ctx.env.server is not None and ctx.env.server.proc.poll() is not None:
                print("# the shared server died; stderr tail:")
                for line in ctx.env.server.stderr()[-3000:].splitlines():
                    print("# " + line)
                ctx.env.server = None
                try:
                    ctx.srv = ctx.env.start()
                except Exception:  # noqa: BLE001
                    pass
    finally:
        ctx.env.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
