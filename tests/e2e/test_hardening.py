"""test_hardening.py: the HTTP front door fails closed: bad input, memory, connections, time, rate.

Each test attacks a running `veil server` the way an outside review did:
- a tenant admin sends a policy with an empty or broken body (it used to abort the process
  inside libyaml), and every route gets every method, content type and body shape;
- clients with and without tokens announce 16 MiB bodies on 200 connections from 200
  source addresses (Linux lets a client bind any 127/8 address while the server listens
  on 127.0.0.1 only), and many connections from one address: the server's memory stays
  bounded and it keeps answering another address meanwhile;
- a client trickles its request a byte at a time and is cut off;
- a token sends a burst of requests under a tight per-role rate limit;
- refused requests are logged as JSON naming tenant and token id, never the secret or the
  raw path.
Imported by run.py (tests named hardening_*).
"""

import json
import os
import re
import select
import socket
import time

from harness import Env, Failure, check, doc_path, expect_error

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def diag(msg):  # replaced by run.py's diag
    pass


MiB = 1 << 20
LIMITS_RE = re.compile(r"^limits:.*$", re.M)
RATE_RE = re.compile(r"^rate_limits:.*\n", re.M)


def configure(env, limits=None, rate_limits=None):
    """Rewrites the `limits:` line of env's veil.yaml and adds `rate_limits:`."""
    path = os.path.join(env.data, "veil.yaml")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    lim = {"max_body": "16MiB", "max_depth": "32", "max_fields": "1024"}
    lim.update(limits or {})
    line = "limits: { %s }" % ", ".join("%s: %s" % kv for kv in lim.items())
    check(LIMITS_RE.search(text) is not None, "veil.yaml has no limits line:\n" + text)
    text = LIMITS_RE.sub(line, text)
    text = RATE_RE.sub("", text)
    if rate_limits is not None:
        text += "rate_limits: %s\n" % rate_limits
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def status_kib(pid, key):
    with open("/proc/%d/status" % pid, encoding="ascii") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise Failure("no %s in /proc/%d/status" % (key, pid))


def connect_from(srv, src, timeout=10):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((src, 0))
    s.connect((srv.host, srv.port))
    return s


def head(method, path, token=None, length=None, ctype=None, extra=()):
    h = ["%s %s HTTP/1.1" % (method, path), "Host: veil"]
    if token is not None:
        h.append("Authorization: Bearer " + token)
    if ctype is not None:
        h.append("Content-Type: " + ctype)
    if length is not None:
        h.append("Content-Length: %d" % length)
    h.extend(extra)
    return ("\r\n".join(h) + "\r\n\r\n").encode("latin-1")


def parse_response(buf, head_only=False):
    """(status, headers lowercased, body) of one complete response in buf, or None; an
    answer to HEAD has no body, whatever its Content-Length says."""
    if b"\r\n\r\n" not in buf:
        return None
    top, _, rest = buf.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    check(len(parts) >= 2 and parts[0].startswith("HTTP/1."), "not HTTP: %r" % buf[:200])
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    n = 0 if head_only else int(hdrs.get("content-length", "-1"))
    if n < 0 or len(rest) < n:
        return None
    return int(parts[1]), hdrs, rest[:n]


def read_answer(s, wait, head_only=False):
    """Reads until one whole response arrived, the peer closed, or `wait` seconds passed.
    Returns (response or None, closed)."""
    buf = b""
    end = time.time() + wait
    while True:
        r = parse_response(buf, head_only)
        if r is not None:
            return r, False
        left = end - time.time()
        if left <= 0:
            return None, False
        rd, _, _ = select.select([s], [], [], left)
        if not rd:
            return None, False
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            return parse_response(buf, head_only), True
        if not chunk:
            return parse_response(buf, head_only), True
        buf += chunk


def closed_soon(s, wait):
    """True when the peer closes s (EOF or reset) within `wait` seconds, reading and
    discarding whatever else arrives."""
    end = time.time() + wait
    while time.time() < end:
        rd, _, _ = select.select([s], [], [], max(0.0, end - time.time()))
        if not rd:
            continue
        try:
            if not s.recv(65536):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
    return False


def json_error(status, hdrs, body, what):
    check(status is not None, "%s: no answer" % what)
    check(status != 500 and 400 <= status < 500, "%s: answered %r %r" % (what, status, body[:200]))
    check(hdrs.get("content-type", "").startswith("application/json"),
          "%s: error Content-Type %r" % (what, hdrs.get("content-type")))
    j = json.loads(body.decode("utf-8"))
    check(isinstance(j.get("error"), dict) and isinstance(j["error"].get("code"), str) and
          isinstance(j["error"].get("message"), str), "%s: not an error object: %r" % (what, j))
    return j["error"]


def alive(srv, what, src="127.0.0.1"):
    s = connect_from(srv, src)
    try:
        s.sendall(head("GET", "/healthz"))
        r, _ = read_answer(s, 30)
    finally:
        s.close()
    check(r is not None and r[0] == 200, "%s: /healthz from %s answers %r" % (what, src, r))


# ---------------------------------------------------------------------------------------
# 1. Bad input on every route: a JSON error, never a crash.


@test
def hardening_empty_and_broken_policies(ctx):
    srv = ctx.srv
    for ctype in ["application/yaml", "application/x-yaml", "text/yaml", "application/json",
                  None, "text/plain", "application/octet-stream"]:
        h = {"Content-Type": ctype} if ctype else {}
        r = srv.request("PUT", "/v1/collections/emptypol", body=b"", token=ctx.admin, headers=h)
        e = expect_error(r, 400, "invalid_policy", "empty policy as %s" % ctype)
        check(e["message"] == "line 1: the policy is empty",
              "empty policy as %s: %r" % (ctype, e))
        r = srv.request("PUT", "/v1/collections/emptypol", body=b" \n\n  \n", token=ctx.admin,
                        headers=h)
        expect_error(r, 400, "invalid_policy", "blank policy as %s" % ctype)
    alive(srv, "after empty policies")
    y = {"Content-Type": "application/yaml"}
    cases = [
        ("collection: x\nfields:\n  a: {type: string\n  b: c\n", 4, "starts at line 3"),
        ("collection: x\nfields:\n  a: [1, 2\n", 3, "the text ends inside a flow sequence"),
        ("collection: x\nfields:\n  a: \"unterminated\n  b: c\n", 3, "quoted scalar"),
        ("collection: x\nfields: {\n\n\n", 2, "the text ends before the mapping"),
        ("collection: x\n  bad: indent\n", 2, "mapping values are not allowed"),
        ("collection: x\nfields:\n\ta: {type: string}\n", 3, "tab"),
        ("collection: x\nfields:\n  a\xff: {type: string}\n", 3, "UTF-8"),
    ]
    for text, line, needle in cases:
        body = text.encode("latin-1")
        r = srv.request("PUT", "/v1/collections/x", body=body, token=ctx.admin, headers=y)
        if needle == "UTF-8":
            # Invalid UTF-8 is refused before the policy parser, as for every body.
            expect_error(r, 400, "bad_request", "non-UTF-8 YAML")
            continue
        e = expect_error(r, 400, "invalid_policy", "bad YAML %r" % text)
        check(e["message"].startswith("line %d: " % line) and needle in e["message"],
              "bad YAML %r: want line %d and %r, got %r" % (text, line, needle, e["message"]))
    # Malformed JSON policies name a line of their own text too.
    r = srv.request("PUT", "/v1/collections/x", body=b'{"collection": "x",\n "fields": {\n',
                    token=ctx.admin, headers={"Content-Type": "application/json"})
    e = expect_error(r, 400, "invalid_policy", "truncated JSON policy")
    check(re.match(r"line [12]: ", e["message"]), "truncated JSON policy: %r" % e)
    alive(srv, "after broken policies")


ROUTES = ["/healthz", "/metrics", "/v1/collections", "/v1/collections/invoices",
          "/v1/collections/invoices/docs", "/v1/collections/invoices/docs/hx-1",
          "/v1/collections/invoices/query", "/v1/collections/invoices/aggregate",
          "/v1/collections/invoices/bulk", "/v1/collections/invoices/privacy",
          "/v1/collections/invoices/privacy/reset", "/nope", "/v1/collections/%zz/docs/x"]
METHODS = ["GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS", "HEAD"]
BODIES = [None, b"", b"{", b'{"where": {"org_id": ', b"\x00\xff\xfe\x80garbage\x01",
          b"[" * 5000, b"collection: [\n", b'{"id": "a", "doc": {}}\n{"id":\n']
CTYPES = [None, "application/json", "application/yaml", "application/x-ndjson",
          "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"]


def check_answer(r, method, path, what):
    status, hdrs, body = r
    check(status != 500, "%s: 500 %r" % (what, body[:300]))
    check(hdrs.get("x-content-type-options") == "nosniff", "%s: no security headers" % what)
    if method == "HEAD":
        return
    ct = hdrs.get("content-type", "")
    if status < 400 and path == "/metrics":
        check(ct.startswith("text/plain"), "%s: metrics Content-Type %r" % (what, ct))
        return
    if status < 400 and path.endswith("/bulk"):
        check(ct.startswith("application/x-ndjson"), "%s: bulk Content-Type %r" % (what, ct))
        for line in body.decode("utf-8").splitlines():
            json.loads(line)
        return
    check(ct.startswith("application/json"), "%s: Content-Type %r (%r)" % (what, ct, body[:100]))
    j = json.loads(body.decode("utf-8"))
    if status >= 400:
        check(isinstance(j.get("error"), dict) and "code" in j["error"],
              "%s: error shape %r" % (what, j))


@test
def hardening_every_route_method_body(ctx):
    srv = ctx.srv
    n = 0
    for path in ROUTES:
        for method in METHODS:
            for bi, body in enumerate(BODIES):
                ctype = CTYPES[(bi + len(path) + len(method)) % len(CTYPES)]
                for token in (None, ctx.clerk, ctx.admin if bi % 2 else ctx.analyst):
                    what = "%s %s body#%d %s token=%s" % (method, path, bi, ctype, token is not None)
                    s = connect_from(srv, "127.0.0.1")
                    try:
                        length = None if body is None else len(body)
                        s.sendall(head(method, path, token, length, ctype) + (body or b""))
                        r, _ = read_answer(s, 60, head_only=method == "HEAD")
                    finally:
                        s.close()
                    check(r is not None, "%s: no answer" % what)
                    check_answer(r, method, path, what)
                    n += 1
        alive(srv, "after %s" % path)
    # Truncated bodies: announced, partly sent, then the client goes away.
    for path in ROUTES:
        for method in ("PUT", "POST"):
            s = connect_from(srv, "127.0.0.1")
            s.sendall(head(method, path, ctx.admin, 5000, "application/json") + b'{"a": 1')
            s.close()
    # Chunked bodies, one broken.
    for chunked in (b"5\r\n{\"a\":\r\n0\r\n\r\n", b"zz\r\n", b"ffffffffffffffffff\r\n"):
        s = connect_from(srv, "127.0.0.1")
        try:
            s.sendall(head("POST", "/v1/collections/invoices/query", ctx.admin,
                           extra=["Transfer-Encoding: chunked"]) + chunked)
            r, _ = read_answer(s, 30)
        finally:
            s.close()
        if r is not None:
            check(r[0] != 500, "chunked %r: %r" % (chunked, r))
    alive(srv, "after truncated and chunked bodies")
    diag("every route: %d requests, none answered 500, all JSON" % n)


# ---------------------------------------------------------------------------------------
# 2. Memory: bodies are read only after authentication, within a shared reserve.


def open_many(srv, sources, req):
    socks = []
    for src in sources:
        s = connect_from(srv, src, timeout=30)
        s.sendall(req(src))
        socks.append(s)
    return socks


def early_answers(socks, wait):
    """Waits `wait` seconds, then sorts sockets into answered (status) and silent ones."""
    time.sleep(wait)
    answered, silent = {}, []
    for s in socks:
        r, closed = read_answer(s, 0.05)
        if r is not None:
            answered[s] = r
        elif closed:
            answered[s] = (None, {}, b"")
        else:
            silent.append(s)
    return answered, silent


@test
def hardening_memory_many_clients(ctx):
    env = Env(ctx.veil)
    socks = []
    try:
        configure(env, limits={"max_inflight_bodies": "64MiB", "request_timeout": "120s",
                               "max_connections_per_client": "8"})
        srv = env.start()
        pid = srv.proc.pid
        tok = env.tokens[("acme", "admin")]
        alive(srv, "start")
        base = status_kib(pid, "VmHWM")
        sources = ["127.0.0.%d" % i for i in range(10, 210)]
        big = 16 * MiB
        doc = "/v1/collections/invoices/docs/mem-%d"

        # Without a token, or with a wrong one, on every kind of route: answered at once,
        # the connection closed, nothing read.
        def unauth(src):
            i = int(src.rsplit(".", 1)[1])
            kind = i % 4
            if kind == 0:
                return head("PUT", doc % i, None, big, "application/json")
            if kind == 1:
                return head("PUT", doc % i, "veil_0123456789abcdef_nope", big, "application/json")
            if kind == 2:
                return head("GET", "/healthz", None, big)
            return head("POST", "/metrics", None, big)

        socks = open_many(srv, sources, unauth)
        answered, silent = early_answers(socks, 2)
        check(not silent, "%d of 200 unauthenticated 16 MiB uploads were not answered at once"
              % len(silent))
        for s, (st, _, body) in answered.items():
            check(st in (200, 401, 405), "unauthenticated upload answered %r %r" % (st, body[:100]))
        # The body is never read: the server closes rather than wait for 16 MiB.
        still_open = [s for s in socks if not closed_soon(s, 0.2)]
        check(not still_open, "%d connections kept open after refusing an unread body"
              % len(still_open))
        for s in socks:
            s.close()
        socks = []
        diag("200 unauthenticated 16 MiB uploads: answered at once and closed")

        # With a valid token: the reserve (64 MiB) admits at most 3 bodies of 16 MiB; the
        # others get 429 with Retry-After at once.
        socks = open_many(srv, sources, lambda src: head(
            "PUT", doc % int(src.rsplit(".", 1)[1]), tok, big, "application/json"))
        answered, silent = early_answers(socks, 3)
        check(len(silent) <= 4, "%d of 200 16 MiB uploads admitted within a 64 MiB reserve"
              % len(silent))
        check(len(silent) >= 1, "no upload admitted at all: the test is vacuous")
        for s, (st, hdrs, body) in answered.items():
            check(st == 429, "refused upload answered %r %r" % (st, body[:100]))
            e = json_error(st, hdrs, body, "refused upload")
            check(e["code"] == "rate_limited", "refused upload: %r" % e)
            check(re.fullmatch(r"[1-9][0-9]*", hdrs.get("retry-after", "")),
                  "refused upload without Retry-After: %r" % hdrs)
        # The admitted ones send all but the last byte and hold.
        chunk = b"x" * MiB
        for s in silent:
            for _ in range(16):
                s.sendall(chunk if _ < 15 else chunk[:-1])
        time.sleep(1)
        hwm = status_kib(pid, "VmHWM")
        held = hwm - base
        diag("200 x 16 MiB uploads: %d admitted and held, %d refused with 429; VmHWM %d KiB "
             "-> %d KiB (+%d KiB)" % (len(silent), len(answered), base, hwm, held))
        # Bounded: the reserve plus room for the sanitizers' bookkeeping, far below the
        # 3.2 GiB the uploads announced.
        check(held < (64 + 96) * 1024, "server memory grew by %d KiB with %d uploads held"
              % (held, len(silent)))
        # Meanwhile another address is served: health, reads, and a small write is told
        # to come back (the reserve is spent) rather than buffered.
        alive(srv, "while uploads are held", src="127.0.0.250")
        s = connect_from(srv, "127.0.0.250")
        try:
            s.sendall(head("GET", doc % 1, tok))
            r, _ = read_answer(s, 30)
            check(r is not None and r[0] == 404, "read while held: %r" % (r,))
            body = json.dumps({"invoice_no": "X"}).encode()
            s.sendall(head("PUT", doc % 999, tok, len(body), "application/json") + body)
            r, _ = read_answer(s, 30)
            check(r is not None and r[0] in (201, 429), "small write while held: %r" % (r,))
        finally:
            s.close()
        for s in socks:
            s.close()
        socks = []
        # Once the uploads are gone, their reserve is back.
        time.sleep(1)
        r = srv.request("PUT", doc % 1000, body={"invoice_no": "Y"}, token=tok)
        check(r.status == 201, "write after the uploads went away: %r" % r)
        m = srv.request("GET", "/metrics")
        check(re.search(rb"\nveil_request_body_bytes 0\n", m.body), "reserve not given back:\n%s"
              % m.body.decode()[-600:])
        env.stop()
    finally:
        for s in socks:
            s.close()
        env.close()


@test
def hardening_connections_per_address(ctx):
    env = Env(ctx.veil)
    socks = []
    try:
        configure(env, limits={"max_connections_per_client": "8", "request_timeout": "120s"})
        srv = env.start()
        pid = srv.proc.pid
        base = status_kib(pid, "VmHWM")
        # 100 connections from one address, each holding a half-sent request.
        kept = 0
        for _ in range(100):
            try:
                s = connect_from(srv, "127.0.0.7")
                s.sendall(b"PUT /v1/collections/invoices/docs/x HTTP/1.1\r\nHost: ")
                socks.append(s)
            except OSError:
                pass
        time.sleep(1)
        kept = sum(1 for s in socks if not closed_soon(s, 0.05))
        check(kept <= 8, "%d connections from one address kept open (limit 8)" % kept)
        check(kept >= 1, "no connection kept: the test is vacuous")
        # Another address is served meanwhile.
        alive(srv, "while one address is at its limit", src="127.0.0.8")
        hwm = status_kib(pid, "VmHWM")
        diag("100 connections from one address: %d kept; VmHWM +%d KiB" % (kept, hwm - base))
        check(hwm - base < 32 * 1024, "100 connections from one address cost %d KiB"
              % (hwm - base))
        for s in socks:
            s.close()
        socks = []
        env.stop()
    finally:
        for s in socks:
            s.close()
        env.close()


# ---------------------------------------------------------------------------------------
# 3. Time: a client that trickles its request is cut off.


@test
def hardening_trickle_cut_off(ctx):
    env = Env(ctx.veil)
    try:
        configure(env, limits={"request_timeout": "2s", "idle_timeout": "30s"})
        srv = env.start()
        tok = env.tokens[("acme", "admin")]
        body = json.dumps({"invoice_no": "T"}).encode()
        cases = [
            ("headers", head("GET", "/healthz"), b""),
            ("body", b"", head("PUT", doc_path("invoices", "trickle"), tok, len(body),
                               "application/json") + body[:-1]),
        ]
        for what, trickle, first in cases:
            s = connect_from(srv, "127.0.0.1")
            t0 = time.time()
            cut = False
            try:
                if first:
                    s.sendall(first)
                data = trickle if trickle else b"x" * 40
                for i in range(len(data)):
                    try:
                        s.sendall(data[i:i + 1])
                    except (BrokenPipeError, ConnectionResetError):
                        cut = True
                        break
                    if closed_soon(s, 1.0):
                        cut = True
                        break
                    if i > 30:
                        break
            finally:
                s.close()
            took = time.time() - t0
            check(cut, "%s sent a byte a second for %.0fs and was not cut off" % (what, took))
            diag("trickled %s: cut off after %.1fs (request_timeout 2s)" % (what, took))
            alive(srv, "after the trickle")
        check("slow_clients_cut" in srv.stderr(), "the cut is not logged:\n" + srv.stderr()[-800:])
        env.stop()
    finally:
        env.close()


# ---------------------------------------------------------------------------------------
# 4. Rate limits per token, set by the operator per role.


@test
def hardening_rate_limit_per_token(ctx):
    env = Env(ctx.veil)
    try:
        configure(env, rate_limits="{ default: 1000/s, burst: 2000, "
                                   "roles: { auditor: { rate: 1/s, burst: 5 } } }")
        a1 = env.token("acme", "auditor")
        a2 = env.token("acme", "auditor")
        adm = env.tokens[("acme", "admin")]
        srv = env.start()
        path = doc_path("invoices", "rl-1")
        statuses = []
        retry = None
        for _ in range(20):
            r = srv.request("GET", path, token=a1)
            statuses.append(r.status)
            if r.status == 429:
                e = expect_error(r, 429, "rate_limited", "burst")
                retry = r.header("Retry-After")
        check(statuses[:5] == [404] * 5, "the first 5 requests (the burst): %r" % statuses)
        check(statuses.count(429) >= 14, "a burst of 20 at 1/s: %r" % statuses)
        check(retry is not None and re.fullmatch(r"[1-9][0-9]*", retry),
              "429 without a whole-second Retry-After: %r" % retry)
        # A request with a body is refused before the body is read.
        s = connect_from(srv, "127.0.0.1")
        try:
            s.sendall(head("POST", "/v1/collections/invoices/query", a1, 16 * MiB,
                           "application/json"))
            r, _ = read_answer(s, 10)
            check(r is not None and r[0] == 429, "limited upload: %r" % (r,))
        finally:
            s.close()
        # Other tokens, of the same role or another, are not affected.
        for t, what in ((a2, "another auditor token"), (adm, "the admin token")):
            for _ in range(5):
                r = srv.request("GET", path, token=t)
                check(r.status == 404, "%s: %r" % (what, r))
        # After waiting, the limited token passes again.
        time.sleep(int(retry) + 0.2)
        r = srv.request("GET", path, token=a1)
        check(r.status == 404, "after Retry-After: %r" % r)
        log = srv.stderr()
        check(re.search(r'"level":"warn","event":"request".*"status":429', log),
              "429 not logged as a warning")
        env.stop()
        diag("rate limit 1/s burst 5: %s" % "".join("x" if s == 429 else "." for s in statuses))
    finally:
        env.close()


@test
def hardening_rate_limits_config_refused(ctx):
    env = Env(ctx.veil)
    try:
        for bad in ["{ default: fast }", "{ default: 0/s }", "{ burst: 0 }",
                    "{ roles: { auditor: 20 } }", "{ roles: { auditor: { burst: 3 } } }",
                    "{ dflt: 20/s }", "[20/s]"]:
            configure(env, rate_limits=bad)
            p = env.run("server", "--listen", "127.0.0.1:0", check_rc=False)
            check(p.returncode == 1 and re.search(r"veil\.yaml line [0-9]+: ", p.stderr),
                  "rate_limits %s: exit %d %r" % (bad, p.returncode, p.stderr[-300:]))
        configure(env, limits={"max_inflight_bodies": "1MiB"})
        p = env.run("server", "--listen", "127.0.0.1:0", check_rc=False)
        check(p.returncode == 1 and "max_inflight_bodies" in p.stderr,
              "reserve below max_body: %r" % p.stderr[-300:])
    finally:
        env.close()


# ---------------------------------------------------------------------------------------
# 5. Log lines: JSON, naming who was refused, never the secret or the raw path.


@test
def hardening_log_lines(ctx):
    env = Env(ctx.veil)
    try:
        analyst = env.token("acme", "analyst")
        secret_id = "logsecret-%d" % os.getpid()
        srv = env.start()
        aid = analyst.split("_")[1]
        r = srv.request("GET", doc_path("invoices", secret_id), token=analyst)
        expect_error(r, 403, "forbidden", "analyst read")
        unknown = "veil_00112233445566aa_" + "S" * 43
        r = srv.request("GET", doc_path("invoices", secret_id), token=unknown)
        expect_error(r, 401, "unauthenticated", "unknown token")
        r = srv.request("GET", doc_path("invoices", secret_id), token="veil_zz_" + "Q" * 40)
        expect_error(r, 401, "unauthenticated", "malformed token")
        env.stop()
        lines = [ln for ln in srv.stderr().splitlines() if ln.strip()]
        objs = []
        for ln in lines:
            if ln.startswith("veil: listening on "):
                continue
            try:
                o = json.loads(ln)
            except ValueError:
                raise Failure("a log line is not JSON: %r" % ln)
            check(isinstance(o.get("time"), str) and o.get("level") in
                  ("debug", "info", "warn", "error"), "log line without time/level: %r" % ln)
            objs.append(o)
        check(any(o.get("event") == "start" for o in objs), "no start line")
        check(any(o.get("event") == "stopped" for o in objs), "no stop line")
        reqs = [o for o in objs if o.get("event") == "request" and o.get("route") ==
                "/v1/collections/{c}/docs/{id}"]
        forb = [o for o in reqs if o.get("status") == 403]
        check(len(forb) == 1, "one 403 line expected: %r" % reqs)
        f = forb[0]
        check(f["tenant"] == "acme" and f["token"] == aid and f["role"] == "analyst" and
              f["method"] == "GET" and f["level"] == "warn" and
              isinstance(f.get("duration_ms"), (int, float)) and
              f.get("reason", {}).get("code") == "forbidden" and f["reason"].get("message"),
              "the 403 line: %r" % f)
        un = [o for o in reqs if o.get("status") == 401]
        check(len(un) == 2, "two 401 lines expected: %r" % reqs)
        # A request's line is written as its connection completes, so two requests in a row
        # may log in either order.
        known = [o for o in un if o["token"] == "00112233445566aa"]
        check(len(known) == 1 and known[0]["tenant"] is None, "unknown token line: %r" % un)
        check(sum(1 for o in un if o["token"] is None) == 1,
              "a malformed token's id was logged: %r" % un)
        log = srv.stderr()
        for needle, what in [(secret_id, "the document id (raw path)"),
                             (analyst.split("_", 2)[2], "a token secret"),
                             ("S" * 20, "an unknown token's secret"), ("Q" * 20, "a secret")]:
            check(needle not in log, "the log holds %s" % what)
    finally:
        env.close()
