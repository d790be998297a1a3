"""test_firsthour.py: what a new user meets in the first hour (tests named firsthour_*).

Each test attacks one claim of the README, the man pages, docs/ or --help, the way a newcomer
would find it false:

- `veil import` loads NDJSON and CSV (good files, bad lines, standard input), names every
  failed line by its line number in the input, in order, and exits 1 then; it splits a
  batch the server finds too large; it stops, naming why, when the server refuses a batch;
  it draws a progress bar only on a terminal.
- The README's curl line for the bulk route works as written, and `-d @file` does not.
- Tokens: revoke takes the token or its id, create refuses an unknown role, list shows ids
  and last use but never a secret, and a token's use costs no trusted-state write per
  request.
- `make run` (scripts/run.sh): names who holds a taken port before minting anything, keeps
  and reuses the demo admin token (mode 0600), says Ctrl-C stops it.
- The README's libveil example compiles against the installed library (meson install into
  a temporary prefix, pkg-config) and runs, also on a missing data directory.
- docs/openapi.yaml validates (Debian's jsonschema and openapi-specification), every route
  it names is served, every other method answers 405 with its Allow, and real answers fit
  its schemas.
- Every command has a man page that renders without warnings, installed by meson, naming
  the options --help names; `veil demo` shows what the store was asked.
Imported by run.py.
"""

import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import tempfile
import time
import urllib.parse

from harness import (INVOICES, TOP, Env, Failure, check, doc_path, expect_error,  # noqa: F401
                     seg)

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def diag(msg):  # replaced by run.py's diag
    pass


DEBIAN_PYTHON = "/usr/bin/python3"
OPENAPI = os.path.join(TOP, "docs", "openapi.yaml")
MANDIR = os.path.join(TOP, "docs", "man")
README = os.path.join(TOP, "README.md")
FAILED_RE = re.compile(r"^veil: line (\d+): (\w+): (.*)$")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def client_env(srv, token):
    e = dict(os.environ, VEIL_ADDR=srv.url(), VEIL_TOKEN=token)
    e.pop("VEIL_DATA", None)
    return e


def veil_cli(veil, env, *args, stdin=None, timeout=300):
    return subprocess.run([veil] + list(args), input=stdin, capture_output=True, text=True,
                          env=env, timeout=timeout)


def failed_lines(stderr):
    """[(line, code, message)] of the "veil: line N: CODE: message" lines, in order."""
    out = []
    for ln in stderr.splitlines():
        m = FAILED_RE.match(ln)
        if m:
            out.append((int(m.group(1)), m.group(2), m.group(3)))
    return out


def summary(stdout):
    m = re.search(r"imported (\d+) documents into (\S+) \((\d+) new, (\d+) replaced\), "
                  r"(\d+) failed", stdout)
    check(m is not None, "no summary on stdout: %r" % stdout)
    return {"stored": int(m.group(1)), "new": int(m.group(3)), "replaced": int(m.group(4)),
            "failed": int(m.group(5))}


def count_docs(srv, token, coll):
    r = srv.request("POST", "/v1/collections/%s/aggregate" % seg(coll),
                    body={"metrics": {"n": {"count": "*"}}}, token=token)
    check(r.status == 200, "count %s: %r" % (coll, r))
    return r.json["groups"][0]["n"]


def get_doc(srv, token, coll, doc_id):
    r = srv.request("GET", doc_path(coll, doc_id), token=token)
    check(r.status == 200, "GET %s/%s: %r" % (coll, doc_id, r))
    return r.json["doc"]


class ImportEnv:
    """Tenant acme with the invoices policy, a clerk token, a running server."""

    def __init__(self, veil, policy=None, max_body=None):
        self.veil = veil
        self.env = Env(veil, policy)
        if max_body is not None:
            cfg = os.path.join(self.env.data, "veil.yaml")
            with open(cfg, encoding="utf-8") as f:
                text = f.read()
            check("max_body: 16MiB" in text, "veil.yaml has no max_body to change")
            with open(cfg, "w", encoding="utf-8") as f:
                f.write(text.replace("max_body: 16MiB", "max_body: " + max_body))
        self.admin = self.env.tokens[("acme", "admin")]
        self.clerk = self.env.token("acme", "clerk")
        self.srv = self.env.start()
        self.cenv = client_env(self.srv, self.clerk)

    def path(self, name, text):
        p = os.path.join(self.env.tmp, name)
        with open(p, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        return p

    def imp(self, *args, stdin=None, token=None):
        e = dict(self.cenv)
        if token is not None:
            e["VEIL_TOKEN"] = token
        return veil_cli(self.veil, e, "import", *args, stdin=stdin)

    def close(self):
        self.env.close()


def generated(veil, kind, count, seed):
    p = subprocess.run([veil, "generate", kind, "--count", str(count), "--seed", str(seed)],
                       capture_output=True, text=True, timeout=60)
    check(p.returncode == 0, "generate: %s" % p.stderr)
    return p.stdout


# ---------------------------------------------------------------------------------------
# veil import


@test
def firsthour_import_ndjson(ctx):
    ie = ImportEnv(ctx.veil)
    try:
        text = generated(ctx.veil, "invoices", 500, 7)
        lines = text.splitlines()
        check(len(lines) == 500, "generate gave %d lines" % len(lines))
        f = ie.path("inv.ndjson", text)
        p = ie.imp("invoices", f, "--batch", "64")
        check(p.returncode == 0, "import: %d %s" % (p.returncode, p.stderr[-2000:]))
        s = summary(p.stdout)
        check(s == {"stored": 500, "new": 500, "replaced": 0, "failed": 0}, "summary %r" % s)
        check(failed_lines(p.stderr) == [], "failures reported: %s" % p.stderr[-1000:])
        check("\r" not in p.stderr, "a progress bar was drawn with no terminal")
        check(count_docs(ie.srv, ie.admin, "invoices") == 500, "not every document stored")
        for i in (0, 250, 499):
            want = json.loads(lines[i])
            got = get_doc(ie.srv, ie.clerk, "invoices", want["id"])
            check(got == want["doc"], "line %d reads back as %r, not %r" % (i + 1, got,
                                                                         want["doc"]))
        p = ie.imp("invoices", f)
        check(p.returncode == 0, "import again: %s" % p.stderr[-1000:])
        s = summary(p.stdout)
        check(s["new"] == 0 and s["replaced"] == 500, "second import: %r" % s)
    finally:
        ie.close()


@test
def firsthour_import_bad_lines(ctx):
    ie = ImportEnv(ctx.veil)
    try:
        good = [json.loads(ln) for ln in generated(ctx.veil, "invoices", 6, 3).splitlines()]
        noid = dict(good[4]["doc"], invoice_no="NOID-" + good[4]["id"])
        lines = [
            json.dumps(good[0]),                                       # 1 stored
            "",                                                        # 2 blank
            json.dumps(good[1]),                                       # 3 stored
            '{"id": "broken", "doc": {',                               # 4 not JSON
            json.dumps(good[2]),                                       # 5 stored
            json.dumps({"id": "bad-amount", "doc": {"amount": True}}),  # 6 mistyped
            json.dumps({"id": 5, "doc": {}}),                          # 7 id not a string
            json.dumps(good[3]) + "\r",                                # 8 stored (CRLF)
            json.dumps({"doc": noid}),                                 # 9 stored, new id
            "   ",                                                     # 10 blank
            json.dumps(good[5]),                                       # 11 stored
        ]
        f = ie.path("mixed.ndjson", "\n".join(lines) + "\n")
        p = ie.imp("invoices", f, "--batch", "2")
        check(p.returncode == 1, "a file with bad lines exits %d, not 1" % p.returncode)
        fl = failed_lines(p.stderr)
        check([n for n, _, _ in fl] == [4, 6, 7],
              "failed lines named %r, want [4, 6, 7] in order:\n%s" % (fl, p.stderr))
        check(fl[1][1] == "invalid_document" and "amount" in fl[1][2],
              "line 6's report does not name the field: %r" % (fl[1],))
        s = summary(p.stdout)
        check(s["stored"] == 6 and s["failed"] == 3, "summary %r" % s)
        for g in (good[0], good[1], good[2], good[3], good[5]):
            check(get_doc(ie.srv, ie.clerk, "invoices", g["id"]) == g["doc"],
                  "%s not stored as sent" % g["id"])
        r = ie.srv.request("POST", "/v1/collections/invoices/query",
                           body={"where": {"invoice_no": noid["invoice_no"]}}, token=ie.clerk)
        check(r.status == 200 and len(r.json["docs"]) == 1, "the line without id: %r" % r)
        r = ie.srv.request("GET", doc_path("invoices", "bad-amount"), token=ie.clerk)
        check(r.status == 404, "the mistyped line was stored: %r" % r)
    finally:
        ie.close()


PEOPLE = """collection: people
fields:
  name:         { type: string,  protect: [eq] }
  age:          { type: integer, protect: [range] }
  balance:      { type: decimal, scale: 2, protect: [sum] }
  active:       { type: boolean }
  born:         { type: date }
  tags:         { type: json }
  address.city: { type: string,  protect: [eq] }
roles:
  clerk: { read: ["*"], write: true }
"""

PEOPLE_CSV = (
    'id,name,age,balance,active,born,tags,address.city,address.street,note\r\n'
    'p1,"Doe, Jane",42,1234.50,true,1982-03-04,"[""a"",""b""]",Utrecht,Main 1,"multi\r\n'
    'line"\r\n'
    'p2,Bob,x41,10.00,false,1983-01-01,{},Delft,,\r\n'
    'p3,Ann,39,0.10,TRUE,1984-02-02,"{""k"":1}",Leiden,Side 2,ok,EXTRA\r\n'
    'p4,Kim,,7.5,,,,Gouda,,\r\n'
    '\r\n'
    'p5,"Quote ""Q"" Smith",7,-3.25,FALSE,2000-12-31,12,Zeist,,"a,b"\r\n'
)


@test
def firsthour_import_csv(ctx):
    ie = ImportEnv(ctx.veil)
    try:
        ie.env.apply("acme", PEOPLE, name="people.yaml")
        f = ie.path("people.csv", PEOPLE_CSV)
        p = ie.imp("people", f, "--batch", "2")
        check(p.returncode == 1, "CSV with bad records exits %d" % p.returncode)
        fl = failed_lines(p.stderr)
        check([n for n, _, _ in fl] == [4, 5],
              "failed records named %r, want lines [4, 5]:\n%s" % (fl, p.stderr))
        check(fl[0][1] == "invalid_document" and "age" in fl[0][2], "p2: %r" % (fl[0],))
        check("cells" in fl[1][2], "p3's report does not say the cells: %r" % (fl[1],))
        s = summary(p.stdout)
        check(s["stored"] == 3 and s["failed"] == 2, "summary %r" % s)
        want = {
            "p1": {"name": "Doe, Jane", "age": 42, "balance": "1234.50", "active": True,
                   "born": "1982-03-04", "tags": ["a", "b"],
                   "address": {"city": "Utrecht", "street": "Main 1"},
                   "note": "multi\r\nline"},
            "p4": {"name": "Kim", "balance": "7.5", "address": {"city": "Gouda"}},
            "p5": {"name": 'Quote "Q" Smith', "age": 7, "balance": "-3.25", "active": False,
                   "born": "2000-12-31", "tags": 12, "address": {"city": "Zeist"},
                   "note": "a,b"},
        }
        for i, d in want.items():
            got = get_doc(ie.srv, ie.clerk, "people", i)
            check(got == d, "%s reads back as %r, want %r" % (i, got, d))
        # Cells were typed: the equality and range tokens of the typed values work.
        r = ie.srv.request("POST", "/v1/collections/people/query",
                           body={"where": {"age": {"gte": 40}}}, token=ie.clerk)
        check(r.status == 200 and [x["id"] for x in r.json["docs"]] == ["p1"],
              "range over an imported integer: %r" % r)
        # Header mistakes stop before anything is sent.
        for head, what in (("id,name,name\nx,a,b\n", "twice"),
                           ("id,address,address.city\nx,a,b\n", "inside"),
                           ("id,,name\nx,a,b\n", "not a field name")):
            p = ie.imp("people", ie.path("h.csv", head))
            check(p.returncode == 1 and what in p.stderr,
                  "header %r: %d %r" % (head, p.returncode, p.stderr))
    finally:
        ie.close()


@test
def firsthour_import_stdin_and_format(ctx):
    ie = ImportEnv(ctx.veil)
    try:
        text = generated(ctx.veil, "invoices", 40, 11)
        p = ie.imp("invoices", "-", stdin=text)
        check(p.returncode == 0 and summary(p.stdout)["new"] == 40,
              "NDJSON from stdin: %r %r" % (p.stdout, p.stderr[-500:]))
        csv = "id,invoice_no,amount,customer.name\nS1,F-S1,12.30,Ann\nS2,F-S2,bad,Bob\n"
        p = ie.imp("invoices", "-", "--format", "csv", stdin=csv)
        check(p.returncode == 1 and [n for n, _, _ in failed_lines(p.stderr)] == [3],
              "CSV from stdin: %d %r" % (p.returncode, p.stderr))
        check(get_doc(ie.srv, ie.clerk, "invoices", "S1") ==
              {"invoice_no": "F-S1", "amount": "12.30", "customer": {"name": "Ann"}},
              "S1 from CSV on stdin")
        # The format follows the file name unless --format says.
        f = ie.path("x.csv", "id,invoice_no\nS3,F-S3\n")
        p = ie.imp("invoices", f)
        check(p.returncode == 0, ".csv read as CSV: %r" % p.stderr)
        p = ie.imp("invoices", f, "--format", "ndjson")
        check(p.returncode == 1 and [n for n, _, _ in failed_lines(p.stderr)] == [1, 2],
              "--format ndjson over a CSV file: %r" % p.stderr)
        for bad in (["--format", "xml"], ["--batch", "0"], ["--batch", "x"], []):
            p = ie.imp("invoices", *(bad or []), *([] if not bad else [f]))
            check(p.returncode == 2, "usage error %r exits %d" % (bad, p.returncode))
        p = ie.imp("invoices", os.path.join(ie.env.tmp, "nonexistent.ndjson"))
        check(p.returncode == 1 and "nonexistent.ndjson" in p.stderr, "missing file: %r" %
              p.stderr)
    finally:
        ie.close()


@test
def firsthour_import_refusals_and_splits(ctx):
    ie = ImportEnv(ctx.veil, max_body="8KiB")
    try:
        text = generated(ctx.veil, "invoices", 60, 5)
        big = json.dumps({"id": "BIG", "doc": {"notes": "x" * 20000}})
        more = generated(ctx.veil, "invoices", 5, 6).replace("INV-", "J-")
        f = ie.path("split.ndjson", text + big + "\n" + more)
        p = ie.imp("invoices", f, "--batch", "60")
        check(p.returncode == 1, "a line over max_body: exit %d" % p.returncode)
        check([n for n, c, _ in failed_lines(p.stderr)] == [61] and "too_large" in p.stderr,
              "the oversized line is not named alone: %r" % p.stderr)
        check(summary(p.stdout)["stored"] == 65, "batches over max_body were not split: %r"
              % p.stdout)
        # A collection that is not there: refused before anything is read.
        p = ie.imp("nosuch", f)
        check(p.returncode == 1 and "not_found" in p.stderr, "unknown collection: %r" %
              p.stderr)
        # A role that may not write: the first batch is refused, the import stops.
        aud = ie.env.token("acme", "auditor")
        p = ie.imp("invoices", f, token=aud)
        check(p.returncode == 1 and "forbidden" in p.stderr and "stopped" in p.stderr,
              "auditor import: %d %r" % (p.returncode, p.stderr))
        check(aud not in p.stderr + p.stdout, "the token was printed")
        # No server: the address tried is named.
        e = dict(ie.cenv, VEIL_ADDR="http://127.0.0.1:1")
        p = veil_cli(ctx.veil, e, "import", "invoices", f)
        check(p.returncode == 1 and "127.0.0.1:1" in p.stderr, "unreachable: %r" % p.stderr)
        p = veil_cli(ctx.veil, e, "get", "invoices", "x")
        check(p.returncode == 1 and "http://127.0.0.1:1" in p.stderr and
              "veil server" in p.stderr, "get, unreachable: %r" % p.stderr)
    finally:
        ie.close()


@test
def firsthour_import_progress_on_a_terminal(ctx):
    ie = ImportEnv(ctx.veil)
    try:
        f = ie.path("inv.ndjson", generated(ctx.veil, "invoices", 300, 9))
        master, slave = pty.openpty()
        proc = subprocess.Popen([ctx.veil, "import", "invoices", f, "--batch", "50"],
                                env=ie.cenv, stdout=subprocess.PIPE, stderr=slave,
                                stdin=subprocess.DEVNULL)
        os.close(slave)
        err = b""
        deadline = time.time() + 120
        while time.time() < deadline:
            r, _, _ = select.select([master], [], [], 1)
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                err += chunk
            elif proc.poll() is not None:
                break
        out = proc.stdout.read().decode()
        rc = proc.wait(60)
        os.close(master)
        text = err.decode("utf-8", "replace")
        check(rc == 0, "import on a terminal: %d %r" % (rc, text[-500:]))
        check("\r" in text and "documents/s" in text and "100%" in text,
              "no progress bar on the terminal: %r" % text[-600:])
        check(summary(out)["stored"] == 300, "summary %r" % out)
    finally:
        ie.close()


@test
def firsthour_readme_curl_bulk(ctx):
    """The README's bulk line works as written; -d @file does not (as it says)."""
    text = open(README, encoding="utf-8").read()
    m = re.search(r"^(\s*curl -s --data-binary @(\S+) .*?\\\n.*?/bulk)\s*$", text, re.M | re.S)
    check(m is not None, "the README shows no curl --data-binary line for the bulk route")
    cmd = m.group(1).replace("\\\n", " ")
    ie = ImportEnv(ctx.veil)
    try:
        data = generated(ctx.veil, "invoices", 30, 4)
        ie.path(m.group(2), data)
        cmd = cmd.replace("localhost:8470", "%s:%d" % (ie.srv.host, ie.srv.port))
        e = dict(os.environ, VEIL_TOKEN=ie.clerk)
        p = subprocess.run(cmd, shell=True, cwd=ie.env.tmp, env=e, capture_output=True,
                           text=True, timeout=60)
        check(p.returncode == 0, "the README's curl line failed: %r" % p.stderr)
        ans = [json.loads(x) for x in p.stdout.splitlines() if x.strip()]
        check(len(ans) == 30 and all(a["status"] == 201 for a in ans),
              "the README's curl line did not store every line: %r" % p.stdout[:500])
        p = subprocess.run(cmd.replace("--data-binary", "-d"), shell=True, cwd=ie.env.tmp,
                           env=e, capture_output=True, text=True, timeout=60)
        ans = [json.loads(x) for x in p.stdout.splitlines() if x.strip()]
        check(len(ans) == 1 and "error" in ans[0],
              "-d @file did not collapse the lines as the README says: %r" % p.stdout[:300])
    finally:
        ie.close()


# ---------------------------------------------------------------------------------------
# tokens


def token_list(env, *args):
    p = env.run("token", "list", *args)
    return json.loads(p.stdout)


@test
def firsthour_tokens(ctx):
    env = Env(ctx.veil)
    try:
        env.run("tenant", "create", "other")
        other = env.token("other", "admin")
        p = env.run("token", "create", "--tenant", "acme", "--role", "nosuchrole",
                    check_rc=False)
        check(p.returncode == 1 and "nosuchrole" in p.stderr and "clerk" in p.stderr,
              "an unknown role: %d %r" % (p.returncode, p.stderr))
        check(p.stdout == "", "a token was printed for an unknown role")
        clerk = env.token("acme", "clerk")
        cid = re.search(r"veil: token (\S+) for", env.last_token_stderr).group(1)
        aud = env.token("acme", "auditor")
        lst = token_list(env, "--tenant", "acme")
        check(all(set(t) == {"id", "tenant", "role", "created", "last_used"} for t in lst),
              "token list fields: %r" % lst)
        check(sorted(t["role"] for t in lst) == ["admin", "auditor", "clerk"],
              "acme's tokens: %r" % lst)
        raw = json.dumps(token_list(env))
        for tok in (clerk, aud, other, env.tokens[("acme", "admin")]):
            check(tok not in raw and tok[22:] not in raw, "token list shows a secret")
        check("other" in raw, "token list without --tenant lacks tenant other")
        p = env.run("token", "list", "--tenant", "nobody", check_rc=False)
        check(p.returncode == 1, "list of an unknown tenant: %d" % p.returncode)

        srv = env.start()
        mine = [t for t in token_list(env) if t["id"] == cid][0]
        check(mine["last_used"] is None, "last_used before any use: %r" % mine)
        check(srv.request("GET", "/v1/collections", token=clerk).status == 200, "clerk works")
        first = [t for t in token_list(env) if t["id"] == cid][0]["last_used"]
        check(first is not None, "last_used not recorded after a use")
        # No trusted-state write per request: a reader's data_version does not move
        # while the same token is used again and again.
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(env.data, "trusted.db"),
                             uri=True, timeout=30)
        try:
            v0 = db.execute("PRAGMA data_version").fetchone()[0]
            time.sleep(1.1)
            for _ in range(25):
                check(srv.request("GET", "/v1/collections", token=clerk).status == 200, "use")
            v1 = db.execute("PRAGMA data_version").fetchone()[0]
            check(v1 == v0, "25 requests of one token wrote the trusted state")
            # The check can see a write: a token's first use is one.
            check(srv.request("GET", "/v1/collections", token=aud).status == 200, "auditor")
            v2 = db.execute("PRAGMA data_version").fetchone()[0]
            check(v2 != v1, "a first use wrote nothing: the check above proves nothing")
        finally:
            db.close()
        again = [t for t in token_list(env) if t["id"] == cid][0]["last_used"]
        check(again == first, "last_used moved within a minute: %s, %s" % (first, again))

        # revoke: the token itself, not a forged one with the same id.
        forged = clerk[:-4] + ("AAAA" if not clerk.endswith("AAAA") else "BBBB")
        p = env.run("token", "revoke", forged, check_rc=False)
        check(p.returncode == 1, "a forged token was revoked")
        check(srv.request("GET", "/v1/collections", token=clerk).status == 200,
              "the real token stopped working after a forged revoke")
        p = env.run("token", "revoke", clerk, check_rc=False)
        check(p.returncode == 0 and cid in p.stderr and clerk not in p.stderr,
              "revoke by token: %d %r" % (p.returncode, p.stderr))
        expect_error(srv.request("GET", "/v1/collections", token=clerk), 401,
                     "unauthenticated", "revoked by token")
        p = env.run("token", "revoke", clerk, check_rc=False)
        check(p.returncode == 1 and "no such token" in p.stderr, "revoked twice: %r" %
              p.stderr)
        check(cid not in json.dumps(token_list(env)), "a revoked token is listed")
        p = env.run("token", "revoke", "not-a-token", check_rc=False)
        check(p.returncode == 1, "revoke of garbage: %d" % p.returncode)
        env.stop()
    finally:
        env.close()


# ---------------------------------------------------------------------------------------
# make run


class RunSh:
    """scripts/run.sh on a data directory of its own, on a port of its own."""

    def __init__(self, veil):
        self.veil = veil
        self.tmp = tempfile.mkdtemp(prefix="veil-run-")
        self.data = os.path.join(self.tmp, "data")
        self.port = free_port()
        self.admin("init", "--listen", "127.0.0.1:%d" % self.port)
        self.admin("tenant", "create", "demo")
        for p in sorted(os.listdir(os.path.join(TOP, "examples"))):
            if p.endswith(".yaml"):
                self.admin("collection", "apply", "--tenant", "demo",
                           os.path.join(TOP, "examples", p))
        self.proc = None

    def admin(self, *args, check_rc=True):
        p = subprocess.run([self.veil] + list(args) + ["--data", self.data],
                           capture_output=True, text=True, timeout=120)
        check(not check_rc or p.returncode == 0, "veil %s: %s" % (args, p.stderr))
        return p

    def env(self):
        return dict(os.environ, VEIL_DATA=self.data)

    def run_fail(self):
        return subprocess.run(["sh", "scripts/run.sh", self.veil], cwd=TOP, env=self.env(),
                              capture_output=True, text=True, timeout=60)

    def start(self):
        """Starts run.sh; returns (banner text, token) once the server listens."""
        self.proc = subprocess.Popen(["sh", "scripts/run.sh", self.veil], cwd=TOP,
                                     env=self.env(), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        out, err = b"", b""
        deadline = time.time() + 60
        while time.time() < deadline and b"listening on" not in err:
            r, _, _ = select.select([self.proc.stdout, self.proc.stderr], [], [], 1)
            for f in r:
                chunk = os.read(f.fileno(), 65536)
                if f is self.proc.stdout:
                    out += chunk
                else:
                    err += chunk
            if self.proc.poll() is not None and not r:
                break
        text = out.decode()
        check(b"listening on" in err, "run.sh did not start the server: %r %r" % (text,
                                                                                err[-500:]))
        m = re.search(r"export VEIL_TOKEN=(veil_\S+)", text)
        check(m is not None, "no token in the banner: %r" % text)
        return text, m.group(1)

    def stop(self):
        """Ctrl-C, as the banner says."""
        self.proc.send_signal(signal.SIGINT)
        rc = self.proc.wait(60)
        self.proc.stdout.close()
        self.proc.stderr.close()
        self.proc = None
        return rc

    def request(self, path, token):
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            c.request("GET", path, headers={"Authorization": "Bearer " + token})
            return c.getresponse().status
        finally:
            c.close()

    def admin_tokens(self):
        p = self.admin("token", "list", "--tenant", "demo")
        return [t for t in json.loads(p.stdout) if t["role"] == "admin"]

    def close(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


@test
def firsthour_make_run(ctx):
    rs = RunSh(ctx.veil)
    tokfile = os.path.join(rs.data, "demo-admin.token")
    try:
        # The port is taken by another program: say so, mint nothing.
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", rs.port))
        s.listen(1)
        try:
            p = rs.run_fail()
        finally:
            s.close()
        check(p.returncode != 0 and "127.0.0.1:%d" % rs.port in p.stderr and
              "another program" in p.stderr, "taken port: %d %r" % (p.returncode, p.stderr))
        check("VEIL_TOKEN" not in p.stdout, "a banner was printed for a taken port")
        check(rs.admin_tokens() == [] and not os.path.exists(tokfile),
              "a token was minted although the port was taken")

        banner, tok = rs.start()
        check("Ctrl-C" in banner, "the banner does not say how to stop: %r" % banner)
        check("new" in banner, "the banner does not say the token is new")
        st = os.stat(tokfile)
        check(stat.S_IMODE(st.st_mode) == 0o600, "token file mode %o" % st.st_mode)
        check(open(tokfile).read().strip() == tok, "the token file holds another token")
        check(rs.request("/v1/collections", tok) == 200, "the banner's token does not work")
        # A second make run while the first runs: a veil server holds the port.
        p = rs.run_fail()
        check(p.returncode != 0 and "veil server already runs" in p.stderr,
              "second make run: %d %r" % (p.returncode, p.stderr))
        check(rs.stop() == 0, "Ctrl-C did not stop the server cleanly")

        banner, tok2 = rs.start()
        check(tok2 == tok and "same as last time" in banner,
              "the demo admin token was not reused: %r" % banner)
        check(len(rs.admin_tokens()) == 1, "make run left %d admin tokens" %
              len(rs.admin_tokens()))
        check(rs.stop() == 0, "Ctrl-C (second run)")

        rs.admin("token", "revoke", tok)
        banner, tok3 = rs.start()
        check(tok3 != tok and "new" in banner, "a revoked token was offered again")
        check(rs.request("/v1/collections", tok3) == 200, "the new token does not work")
        check(len(rs.admin_tokens()) == 1, "admin tokens after revoke and rerun: %r" %
              rs.admin_tokens())
        check(rs.stop() == 0, "Ctrl-C (third run)")
    finally:
        rs.close()


# ---------------------------------------------------------------------------------------
# the README's libveil example, against the installed library


def build_dir(veil):
    return os.path.dirname(os.path.abspath(veil))


def sanitized(bdir):
    p = subprocess.run(["meson", "introspect", "--buildoptions", bdir], capture_output=True,
                       text=True, timeout=60)
    if p.returncode != 0:
        return False
    for o in json.loads(p.stdout):
        if o.get("name") == "b_sanitize":
            return o.get("value") not in ("none", "", None)
    return False


def install(veil, dest):
    p = subprocess.run(["meson", "install", "-C", build_dir(veil), "--destdir", dest,
                        "--no-rebuild", "--quiet"], capture_output=True, text=True,
                       timeout=300)
    check(p.returncode == 0, "meson install: %s" % (p.stderr[-2000:] or p.stdout[-2000:]))


@test
def firsthour_readme_libveil(ctx):
    text = open(README, encoding="utf-8").read()
    m = re.search(r"^## libveil\n.*?^```c\n(.*?)^```", text, re.M | re.S)
    check(m is not None, "the README's libveil section has no ```c example")
    src = m.group(1)
    tmp = tempfile.mkdtemp(prefix="veil-lib-")
    env = None
    try:
        dest = os.path.join(tmp, "dest")
        install(ctx.veil, dest)
        pcs = [os.path.join(r, f) for r, _, fs in os.walk(dest) for f in fs if f == "veil.pc"]
        check(len(pcs) == 1, "meson install put %d veil.pc" % len(pcs))
        libdir = os.path.dirname(os.path.dirname(pcs[0]))
        e = dict(os.environ, PKG_CONFIG_PATH=os.path.dirname(pcs[0]),
                 PKG_CONFIG_SYSROOT_DIR=dest)
        p = subprocess.run(["pkg-config", "--cflags", "--libs", "veil"], env=e,
                           capture_output=True, text=True, timeout=60)
        check(p.returncode == 0, "pkg-config veil: %s" % p.stderr)
        flags = p.stdout.split()
        check(any(f.startswith("-I" + dest) for f in flags), "pkg-config points outside "
              "the installed prefix: %r" % flags)
        c = os.path.join(tmp, "invoice.c")
        with open(c, "w") as f:
            f.write(src)
        exe = os.path.join(tmp, "invoice")
        cc = ["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", c, "-o", exe] + flags
        if sanitized(build_dir(ctx.veil)):
            cc[1:1] = ["-fsanitize=address,undefined"]
        p = subprocess.run(cc, capture_output=True, text=True, timeout=120)
        check(p.returncode == 0, "the README's example does not compile:\n%s" % p.stderr)
        renv = dict(os.environ, LD_LIBRARY_PATH=libdir,
                    ASAN_OPTIONS="detect_leaks=1", UBSAN_OPTIONS="halt_on_error=1")
        env = Env(ctx.veil)
        p = subprocess.run([exe, env.data], capture_output=True, text=True, env=renv,
                           timeout=120)
        check(p.returncode == 0, "the example failed: %d %s" % (p.returncode, p.stderr))
        m1 = re.search(r"^stored:\s+(\{.*\})$", p.stdout, re.M)
        m2 = re.search(r"^read back:\s+(\{.*\})$", p.stdout, re.M)
        check(m1 and m2, "the example printed %r" % p.stdout)
        check(json.loads(m1.group(1)) == {"id": "INV-1", "version": 1}, "stored %s" %
              m1.group(1))
        back = json.loads(m2.group(1))
        check(back["doc"]["amount"] == "1234.50" and back["doc"]["org_id"] == "ACME",
              "read back %r" % back)
        missing = os.path.join(tmp, "no-such-dir")
        p = subprocess.run([exe, missing], capture_output=True, text=True, env=renv,
                           timeout=60)
        check(p.returncode == 1, "a missing data directory: exit %d (%s)" % (p.returncode,
                                                                           p.stderr))
        check(p.stderr.startswith("invoice: %s: " % missing) and
              "Sanitizer" not in p.stderr and "runtime error" not in p.stderr,
              "a missing data directory: %r" % p.stderr)
        check(re.search(r": (not_found|bad_request): ", p.stderr),
              "no veil_status code in %r" % p.stderr)
        check(not os.path.exists(missing), "the example created the missing directory")
        # make install also installs the man pages.
        pages = [f for r, _, fs in os.walk(dest) for f in fs if f.endswith(".1")]
        check("veil.1" in pages and "veil-import.1" in pages,
              "meson install put no man pages: %r" % pages)
    finally:
        if env is not None:
            env.close()
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# docs/openapi.yaml


def need_debian_tools():
    p = subprocess.run([DEBIAN_PYTHON, "-c", "import yaml, jsonschema"], capture_output=True,
                       text=True, timeout=60)
    check(p.returncode == 0, "Debian's python3-yaml and python3-jsonschema are needed "
          "(scripts/deps.sh test): %s" % p.stderr[-300:])


def openapi_routes():
    p = subprocess.run([DEBIAN_PYTHON, os.path.join(TOP, "tests", "e2e", "openapi_check.py"),
                        OPENAPI, "--routes"], capture_output=True, text=True, timeout=60)
    check(p.returncode == 0, "openapi_check --routes: %s" % p.stderr)
    return json.loads(p.stdout)


ALL_METHODS = ("GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS")


@test
def firsthour_openapi(ctx):
    need_debian_tools()
    routes = openapi_routes()
    ie = ImportEnv(ctx.veil, max_body="64KiB")
    answers = []
    try:
        srv = ie.srv
        adm = ie.admin
        clerk = ie.clerk
        aud = ie.env.token("acme", "auditor")
        ana = ie.env.token("acme", "analyst")

        def call(method, path, body=None, token=None, headers=None, tmpl=None):
            r = srv.request(method, path, body=body, token=token, headers=headers)
            ct = r.header("Content-Type") or ""
            if ct.startswith("application/json"):
                b = r.json
            elif ct.startswith("application/x-ndjson"):
                b = [json.loads(x) for x in r.body.decode().splitlines() if x.strip()]
            else:
                b = None
            answers.append({"path": path, "method": method, "status": r.status,
                            "content_type": ct, "headers": dict(r.headers), "body": b})
            return r

        inv = json.loads(generated(ctx.veil, "invoices", 1, 2))["doc"]
        pol = {"collection": "oa", "fields": {"a": {"type": "string", "protect": ["eq"]}},
               "roles": {"r": {"read": ["*"]}}}
        call("GET", "/healthz")
        call("GET", "/metrics")
        call("GET", "/v1/collections", token=clerk)
        call("GET", "/v1/collections")
        call("GET", "/v1/collections/invoices", token=clerk)
        call("GET", "/v1/collections/nosuch", token=clerk)
        call("PUT", "/v1/collections/oa", body=pol, token=adm)
        call("PUT", "/v1/collections/oa", body=pol, token=adm)
        pol2 = dict(pol, fields={"a": {"type": "integer"}})
        call("PUT", "/v1/collections/oa", body=pol2, token=adm)
        call("PUT", "/v1/collections/ob", body={"collection": "ob", "fields": {
            "a": {"type": "strng"}}}, token=adm)
        call("PUT", "/v1/collections/oc", body=dict(pol, collection="oc"), token=clerk)
        call("POST", "/v1/collections/invoices/docs", body=inv, token=clerk)
        call("POST", "/v1/collections/invoices/docs", body="{nope", token=clerk)
        call("PUT", doc_path("invoices", "OA-1"), body=inv, token=clerk)
        call("PUT", doc_path("invoices", "OA-1"), body=inv, token=clerk)
        call("PUT", doc_path("invoices", "OA-1"), body=inv, token=clerk,
             headers={"If-Match": "9"})
        call("PUT", doc_path("invoices", "OA-1"), body=dict(inv, amount=True), token=clerk)
        call("PUT", doc_path("invoices", "OA-2"), body=inv, token=aud)
        call("GET", doc_path("invoices", "OA-1"), token=clerk)
        call("GET", doc_path("invoices", "OA-1"), token=aud)
        call("GET", doc_path("invoices", "OA-1"), token=ana)
        call("GET", doc_path("invoices", "none"), token=clerk)
        call("PUT", doc_path("invoices", "OA-3"), body=inv, token=clerk)
        call("DELETE", doc_path("invoices", "OA-3"), token=clerk)
        call("DELETE", doc_path("invoices", "OA-3"), token=clerk)
        r = call("POST", "/v1/collections/invoices/query", body={"limit": 1}, token=clerk)
        check(isinstance(r.json.get("next"), str), "a first page of 1 has no next: %r" % r)
        call("POST", "/v1/collections/invoices/query", body={"after": r.json["next"],
                                                              "limit": 10}, token=clerk)
        call("POST", "/v1/collections/invoices/query",
             body={"match": {"notes": "payment"}, "limit": 2}, token=clerk)
        call("POST", "/v1/collections/invoices/query",
             body={"where": {"notes": "x"}}, token=clerk)
        call("POST", "/v1/collections/invoices/query", body={"limit": 1},
             token=clerk + "x")
        call("POST", "/v1/collections/invoices/query",
             body={"where": {"invoice_no": "x" * 70000}}, token=clerk)
        call("POST", "/v1/collections/invoices/aggregate",
             body={"group_by": ["status"], "metrics": {"t": {"sum": "amount"},
                   "n": {"count": "*"}, "a": {"avg": "amount"}}, "explain": True}, token=ana)
        call("POST", "/v1/collections/invoices/aggregate",
             body={"metrics": {"t": {"sum": "amount"}}}, token=aud)
        call("POST", "/v1/collections/invoices/aggregate",
             body={"metrics": {"n": {"count": "*"}}, "refresh": True}, token=ana)
        call("POST", "/v1/collections/invoices/aggregate",
             body={"group_by": ["org_id"], "metrics": {"t": {"sum": "amount"}}}, token=adm)
        call("GET", "/v1/collections/invoices/privacy", token=ana)
        call("GET", "/v1/collections/invoices/privacy", token=adm)
        call("GET", "/v1/collections/invoices/privacy", token=clerk)
        call("POST", "/v1/collections/invoices/privacy/reset", body={"role": "analyst"},
             token=adm)
        call("POST", "/v1/collections/invoices/privacy/reset", body={"role": "analyst"},
             token=ana)
        call("POST", "/v1/collections/invoices/privacy/reset", body={"roles": "x"},
             token=adm)
        for _ in range(20):  # until the budget is spent: a 429 privacy_budget_exhausted
            r = call("POST", "/v1/collections/invoices/aggregate",
                     body={"metrics": {"n": {"count": "*"}}, "refresh": True}, token=ana)
            if r.status == 429:
                break
        check(r.status == 429 and r.json["error"]["code"] == "privacy_budget_exhausted" and
              int(r.header("Retry-After") or 0) > 0, "the analyst's budget never ran out: %r" % r)
        bulk = "\n".join([json.dumps({"id": "OA-B1", "doc": inv}), "not json",
                          json.dumps({"doc": inv})]) + "\n"
        call("POST", "/v1/collections/invoices/bulk", body=bulk, token=clerk,
             headers={"Content-Type": "application/x-ndjson"})
        call("POST", "/v1/collections/invoices/bulk", body=bulk, token=aud,
             headers={"Content-Type": "application/x-ndjson"})

        # Every documented route and method is served (answered by something other than
        # "no such route" or 405), and was answered above.
        def tmpl_of(path):
            for t in routes:
                ts, ps = t.split("/"), path.split("/")
                if len(ts) == len(ps) and all(a == b or a.startswith("{")
                                              for a, b in zip(ts, ps)):
                    return t
            return None

        seen = set()
        for a in answers:
            t = tmpl_of(a["path"])
            check(t is not None, "answered a path the file lacks: %s" % a["path"])
            check(a["status"] != 405, "%s %s is documented but answers 405" % (a["method"],
                                                                            a["path"]))
            b = a["body"] if isinstance(a["body"], dict) else {}
            check(not (a["status"] == 404 and
                       b.get("error", {}).get("message") == "no such route"),
                  "%s %s is documented but is no route" % (a["method"], a["path"]))
            seen.add((t, a["method"]))
        want = {(t, m) for t, ms in routes.items() for m in ms}
        check(want <= seen, "documented but not exercised: %r" % sorted(want - seen))
        # Every other method answers 405 with an Allow header of the file's methods.
        for t, ms in routes.items():
            path = t.replace("{c}", "invoices").replace("{id}", "OA-1")
            for m in ALL_METHODS:
                if m in ms:
                    continue
                r = srv.request(m, path, token=clerk)
                check(r.status == 405, "%s %s answers %d, not 405" % (m, path, r.status))
                allow = {x.strip() for x in (r.header("Allow") or "").split(",") if x.strip()}
                check(allow == set(ms), "%s %s: Allow %r, the file says %r" % (
                    m, path, r.header("Allow"), ms))
        # Paths the file does not name are no routes.
        for p in ("/v1", "/v1/collections/invoices/other", "/v2/collections",
                  "/v1/collections/invoices/docs/a/b"):
            r = srv.request("GET", p, token=clerk)
            check(r.status == 404, "GET %s answers %d" % (p, r.status))

        f = os.path.join(ie.env.tmp, "answers.json")
        with open(f, "w") as fh:
            json.dump(answers, fh)
        p = subprocess.run([DEBIAN_PYTHON, os.path.join(TOP, "tests", "e2e",
                                                        "openapi_check.py"),
                            OPENAPI, "--answers", f], capture_output=True, text=True,
                           timeout=120)
        for line in p.stdout.splitlines()[-1:]:
            diag(line)
        check(p.returncode == 0, "docs/openapi.yaml and the server disagree:\n%s%s" % (
            p.stdout[-3000:], p.stderr[-1000:]))
        codes = {(a["method"], a["status"]) for a in answers}
        for st in (200, 201, 400, 401, 403, 404, 409, 412, 413):
            check(any(s == st for _, s in codes), "no answer with status %d was checked" % st)
    finally:
        ie.close()


# ---------------------------------------------------------------------------------------
# man pages and help texts


def commands(veil):
    p = subprocess.run([veil, "--help"], capture_output=True, text=True, timeout=60)
    check(p.returncode == 0, "veil --help: %d" % p.returncode)
    return [m.group(1) for m in re.finditer(r"^  ([a-z]+) ", p.stdout, re.M)]


def render(page):
    p = subprocess.run(["groff", "-man", "-Tascii", "-ww", "-P-c", "-P-b", "-P-u",
                        os.path.join(MANDIR, page)], capture_output=True, timeout=60,
                       env=dict(os.environ, LC_ALL="C"))
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8",
                                                                               "replace")


def options(text):
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*[a-z])", text))


def sections(text, names):
    out, keep = [], False
    for ln in text.splitlines():
        if re.match(r"^[A-Z][A-Z ]+$", ln):
            keep = ln.strip() in names
            continue
        if keep:
            out.append(ln)
    return "\n".join(out)


@test
def firsthour_man_pages(ctx):
    cmds = commands(ctx.veil)
    check(len(cmds) >= 13 and "import" in cmds, "veil --help lists %r" % cmds)
    pages = sorted(f for f in os.listdir(MANDIR) if f.endswith(".1"))
    want = sorted(["veil.1"] + ["veil-%s.1" % c for c in cmds])
    check(pages == want, "man pages %r, commands want %r" % (pages, want))
    mb = open(os.path.join(MANDIR, "meson.build"), encoding="utf-8").read()
    check(sorted(re.findall(r"'(veil[\w-]*\.1)'", mb)) == pages,
          "docs/man/meson.build does not install every page")
    for page in pages:
        rc, text, warn = render(page)
        check(rc == 0 and warn.strip() == "", "%s renders with warnings: %s" % (page, warn))
        check("SEE ALSO" in text and "NAME" in text, "%s lacks sections" % page)
    src = open(os.path.join(MANDIR, "veil.1"), encoding="utf-8").read()
    body = src.split(".SH COMMANDS", 1)[1].split("\n.SH ", 1)[0]
    listed = set(re.findall(r"^\.TP\n\.B ([a-z]+)$", body, re.M))
    check(listed == set(cmds), "veil(1) lists %r, veil --help %r" % (sorted(listed),
                                                                     sorted(cmds)))
    for c in cmds:
        p = subprocess.run([ctx.veil, c, "--help"], capture_output=True, text=True,
                           timeout=60)
        check(p.returncode == 0 and "usage" in p.stdout, "veil %s --help: %r" % (c, p))
        helped = options(p.stdout) - {"--help"}
        _, text, _ = render("veil-%s.1" % c)
        documented = options(sections(text, {"SYNOPSIS", "OPTIONS"})) - {"--help"}
        check(helped <= options(text), "veil-%s(1) lacks %r, which --help names" % (
            c, sorted(helped - options(text))))
        check(documented <= helped, "veil-%s(1) names %r, which --help does not" % (
            c, sorted(documented - helped)))


@test
def firsthour_demo_shows_the_store(ctx):
    p = subprocess.run([ctx.veil, "demo", "--count", "300"], capture_output=True, text=True,
                       timeout=600, env=dict(os.environ, TMPDIR=tempfile.gettempdir()))
    check(p.returncode == 0, "veil demo: %d %s" % (p.returncode, p.stderr[-2000:]))
    out = re.sub(r"\n\s*(store \| )?", " ", p.stdout)
    for k in ("search index entries", "by their 16-byte labels", "seq: the row sequence",
              "rows by document token"):
        check(k in out, "veil demo does not show %r" % k)
    m = re.search(r"asked k_\w+\.\.\. for (\d+) index entries .*? and got (\d+) back", out)
    check(m and int(m.group(1)) > 0 and m.group(1) == m.group(2),
          "the search step's entries: %r" % (m.group(0) if m else out[-1500:]))
