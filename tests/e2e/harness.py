"""harness.py: drives a real `veil` binary for the end-to-end tests.

An Env is one data directory made with the real admin commands (init, tenant create,
token create, collection apply) and, when started, one `veil server` on a free port of
127.0.0.1, found from its "listening on" line. Stopping sends SIGTERM and checks that the
server exits 0 and that its stderr holds no sanitizer or runtime error report. Everything
here is Python 3 standard library only.
"""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
INVOICES = os.path.join(TOP, "examples", "invoices.yaml")

LISTEN_RE = re.compile(r"veil: listening on http://(\[[^\]]+\]|[^:\s]+):(\d+)")
SANITIZER_RE = re.compile(
    r"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:|"
    r"ThreadSanitizer|SUMMARY: \w+Sanitizer")
START_TIMEOUT = 30
STOP_TIMEOUT = 60
HTTP_TIMEOUT = 60


class Failure(AssertionError):
    """A test's claim did not hold."""


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def seg(s):
    """One percent-encoded path segment."""
    return urllib.parse.quote(s, safe="")


def doc_path(coll, doc_id=None):
    p = "/v1/collections/" + seg(coll) + "/docs"
    return p if doc_id is None else p + "/" + seg(doc_id)


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        self._json = None

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    @property
    def json(self):
        if self._json is None:
            try:
                self._json = json.loads(self.body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as e:
                raise Failure("answer %d is not JSON (%s): %r" % (self.status, e, self.body[:300]))
        return self._json

    def error_code(self):
        j = self.json
        check(isinstance(j, dict) and isinstance(j.get("error"), dict),
              "answer %d is not an error object: %r" % (self.status, self.body[:300]))
        check(isinstance(j["error"].get("message"), str),
              "error object without a message: %r" % (self.body[:300],))
        return j["error"].get("code")

    def __repr__(self):
        return "<%d %r>" % (self.status, self.body[:200])


def expect_error(r, status, code, what=""):
    check(r.status == status, "%s: want %d %s, got %r" % (what, status, code, r))
    ct = r.header("Content-Type") or ""
    check(ct.startswith("application/json"), "%s: error Content-Type is %r" % (what, ct))
    got = r.error_code()
    check(got == code, "%s: want code %s, got %s (%r)" % (what, code, got, r))
    return r.json["error"]


class Server:
    """A running `veil server`; its stderr is drained by a thread into `lines`."""

    def __init__(self, veil, datadir, listen="127.0.0.1:0", extra_env=None):
        env = dict(os.environ)
        env.update(extra_env or {})
        self.proc = subprocess.Popen(
            [veil, "server", "--data", datadir, "--listen", listen],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.lines = []
        self.host = None
        self.port = None
        self._ready = threading.Event()
        self._t = threading.Thread(target=self._drain, daemon=True)
        self._t.start()
        self._out = threading.Thread(target=self.proc.stdout.read, daemon=True)
        self._out.start()
        if not self._ready.wait(START_TIMEOUT) or self.port is None:
            self.proc.kill()
            self.proc.wait()
            raise Failure("server did not print its listening line; stderr:\n" + self.stderr())

    def _drain(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace")
            self.lines.append(line)
            m = LISTEN_RE.search(line)
            if m and self.port is None:
                self.host = m.group(1).strip("[]")
                self.port = int(m.group(2))
                self._ready.set()
        self._ready.set()

    def stderr(self):
        return "".join(self.lines)

    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    def request(self, method, path, body=None, token=None, headers=None, timeout=HTTP_TIMEOUT):
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = "Bearer " + token
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode("utf-8")
            h.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode("utf-8")
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            return Resp(r.status, r.getheaders(), r.read())
        finally:
            conn.close()

    def raw(self, data, timeout=HTTP_TIMEOUT):
        """Sends raw bytes, returns everything read back until the server closes or
        a complete response arrived."""
        s = socket.create_connection((self.host, self.port), timeout=timeout)
        try:
            s.sendall(data)
            return read_response(s)
        finally:
            s.close()

    def stop(self, sig=signal.SIGTERM):
        """SIGTERM, then wait; returns the exit status (raises if it hangs)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise Failure("server did not stop within %ds of SIGTERM" % STOP_TIMEOUT)
        self._t.join(5)
        return rc

    def check_clean_exit(self, rc):
        check(rc == 0, "server exited with %r; stderr tail:\n%s" % (rc, self.stderr()[-3000:]))
        m = SANITIZER_RE.search(self.stderr())
        check(m is None, "sanitizer report in server stderr:\n" + self.stderr()[-4000:])

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def read_response(s):
    """Reads one HTTP/1.1 response with Content-Length (or until close) from socket s;
    returns (status, headers dict lowercased, body)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines or not lines[0].startswith("HTTP/"):
        return None, {}, buf
    status = int(lines[0].split()[1])
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    n = int(hdrs.get("content-length", "-1"))
    while n < 0 or len(body) < n:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not chunk:
            break
        body += chunk
    return status, hdrs, body[:n] if n >= 0 else body


class Env:
    """A data directory with tenant acme, an admin token and the invoices policy."""

    def __init__(self, veil, policy_text=None):
        self.veil = veil
        self.tmp = tempfile.mkdtemp(prefix="veil-e2e-")
        self.data = os.path.join(self.tmp, "data")
        self.server = None
        self.tokens = {}
        self.run("init")
        self.run("tenant", "create", "acme")
        self.tokens[("acme", "admin")] = self.token("acme", "admin")
        self.apply("acme", policy_text or open(INVOICES, encoding="utf-8").read())

    def run(self, *args, check_rc=True, env=None, stdin=None):
        """Runs `veil ARGS --data D`; returns CompletedProcess (text)."""
        e = dict(os.environ)
        e.update(env or {})
        p = subprocess.run([self.veil] + list(args) + ["--data", self.data], env=e,
                           input=stdin, capture_output=True, text=True, timeout=120)
        if check_rc and p.returncode != 0:
            raise Failure("veil %s failed (%d): %s" % (" ".join(args), p.returncode,
                                                       p.stderr.strip()[-2000:]))
        return p

    def token(self, tenant, role):
        p = self.run("token", "create", "--tenant", tenant, "--role", role)
        tok = p.stdout.strip()
        check(tok and "\n" not in tok, "token create printed %r" % p.stdout)
        self.tokens[(tenant, role)] = tok
        self.last_token_stderr = p.stderr
        return tok

    def apply(self, tenant, text, name="policy.yaml"):
        path = os.path.join(self.tmp, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return self.run("collection", "apply", "--tenant", tenant, path)

    def start(self, **kw):
        check(self.server is None, "server already running")
        self.server = Server(self.veil, self.data, **kw)
        return self.server

    def stop(self):
        """Stops the server, asserting a clean exit."""
        s, self.server = self.server, None
        if s is not None:
            s.check_clean_exit(s.stop())
        return s

    def close(self):
        if self.server is not None:
            self.server.kill()
            self.server = None
        shutil.rmtree(self.tmp, ignore_errors=True)

    # --- the untrusted store, seen as an attacker would ---
    def cloud_files(self):
        out = []
        for root, _, files in os.walk(os.path.join(self.data, "cloud")):
            for f in files:
                out.append(os.path.join(root, f))
        return sorted(out)

    def cloud_db(self):
        return os.path.join(self.data, "cloud", "cloud.db")

    def rows(self):
        """{(table, doc): (seq, blob)} of every r_ table of the cloud store (read-only)."""
        con = sqlite3.connect("file:%s?mode=ro" % self.cloud_db(), uri=True, timeout=30)
        try:
            tables = [r[0] for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name LIKE 'r\\_%' "
                "ESCAPE '\\'")]
            out = {}
            for t in tables:
                for doc, sq, blob in con.execute('SELECT doc, seq, blob FROM "%s"' % t):
                    out[(t, bytes(doc))] = (sq, bytes(blob))
            return out
        finally:
            con.close()

    def write_row(self, table, doc, blob=None, seq=None):
        """Overwrites a row's blob (and seq) while the server is stopped."""
        check(self.server is None, "attacks happen with the server stopped")
        con = sqlite3.connect(self.cloud_db(), timeout=30)
        try:
            if blob is not None:
                c = con.execute('UPDATE "%s" SET blob = ? WHERE doc = ?' % table, (blob, doc))
                check(c.rowcount == 1, "attack on the blob hit %d rows" % c.rowcount)
            if seq is not None:
                c = con.execute('UPDATE "%s" SET seq = ? WHERE doc = ?' % table, (seq, doc))
                check(c.rowcount == 1, "attack on the seq hit %d rows" % c.rowcount)
            con.commit()
        finally:
            con.close()


def new_rows(before, after):
    return {k: v for k, v in after.items() if k not in before}
