"""test_coredump.py: keys never in core files (README, "Keys and core dumps").

coredump_no_key_in_core: a server works with every kind of key (equality, range, ASHE
and Paillier sums, search, masks, cursors), then a core of the running process is taken
and searched for every key the test can compute: the root key (master.key), the tenant
key, every derived field key, the entry keys of the words searched, and the Paillier
primes p and q, big-endian and as GMP limbs lie in memory (little-endian), whole and by
16-byte windows. The keys come from tests/tools/keydump (libveil's own derivation, run on
the data directory); they stay in this process and are never printed: a failure names
the key and the offset only. The core must hold the Paillier modulus n (public, kept in
ordinary memory), so an empty or partial core cannot pass.

How the core is taken: `gcore` (gdb) when the binary is a plain build; a sanitizer build
(make test) maps terabytes of unreadable shadow and allocator space that gcore would write
out, so there the test copies, with the process stopped, what a core holds: every mapping
readable and not marked "dd" (VM_DONTDUMP, which sodium_malloc memory carries) in
/proc/PID/smaps, and every thread's registers (vector registers included, read by
ptrace). As root both work on a non-dumpable process; otherwise the server is started with
VEIL_ALLOW_CORE_DUMPS=1.

coredump_server_not_dumpable: the server makes itself non-dumpable and sets RLIMIT_CORE
to 0, and so does another command (a client); --allow-core-dumps and
VEIL_ALLOW_CORE_DUMPS=1 leave the server dumpable. A non-dumpable
process's /proc/PID files belong to root whatever its uid, so the server runs under
another uid (setpriv, as root) or as the unprivileged test user.
Imported by run.py (tests named coredump_*).
"""

import ctypes
import json
import os
import pwd
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

from harness import Env, Failure, check, doc_path, seg

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def diag(msg):  # replaced by run.py's diag
    pass


POLICY = """collection: ledger
fields:
  ref:    { type: string,  protect: [eq] }
  day:    { type: date,    protect: [range] }
  cost:   { type: integer, protect: [sum, range] }
  amount: { type: decimal, scale: 2, protect: [sum], sum: { scheme: paillier, bits: 2048 } }
  notes:  { type: text,    protect: [search] }
  iban:   { type: string,  mask: hash }
roles:
  clerk:   { read: ["*"], write: true }
  auditor: { read: [ref, day], masked: [iban] }
  analyst: { aggregate: [cost, amount], group_by: [ref], min_group_size: 1, privacy: exact }
"""

# Words of the notes that are searched; their stems are themselves (English Snowball).
STEMS = ["zebra", "quokka", "walrus", "kumquat"]
CANARY = "ledger-canary-8c1f2e"


def tool_path(veil):
    return os.path.join(os.path.dirname(veil), "tests", "tools", "keydump")


def sanitized(veil):
    with open(veil, "rb") as f:
        return b"__asan_init" in f.read()


def doc(i):
    return {"ref": "R%02d" % (i % 7), "day": "2024-%02d-%02d" % (1 + i % 12, 1 + i % 28),
            "cost": 1000 + 17 * i, "amount": "%d.%02d" % (200 + i, i % 100),
            "notes": "%s %s sighted near the %s, lot %d, %s" % (
                STEMS[i % 4], STEMS[(i + 1) % 4], STEMS[(i + 2) % 4], i, CANARY),
            "iban": "NL91ABNA04171643%02d" % i}


def ok(r, what, status=(200, 201)):
    check(r.status in status, "%s: %r" % (what, r))
    return r.json


def exercise(srv, admin, clerk, auditor, analyst):
    """Ordinary reads and writes, range and equality queries with paging, searches, and
    Paillier and ASHE aggregates: every key of the collection is used."""
    for i in range(24):
        ok(srv.request("PUT", doc_path("ledger", "D%03d" % i), body=doc(i), token=clerk),
           "put D%03d" % i)
    ok(srv.request("PUT", doc_path("ledger", "D003"), body=doc(50), token=clerk), "replace")
    ok(srv.request("DELETE", doc_path("ledger", "D004"), token=clerk), "delete", (200,))
    for i in (0, 1, 2, 5):
        got = ok(srv.request("GET", doc_path("ledger", "D%03d" % i), token=clerk), "get")
        check(CANARY in got["doc"]["notes"], "get D%03d: notes %r" % (i, got["doc"]))
    got = ok(srv.request("GET", doc_path("ledger", "D001"), token=auditor), "masked get")
    check(got["doc"].get("iban", "").find("NL91") < 0, "auditor sees the iban: %r" % got)
    # Equality and range queries, paged (cursors are sealed under the cursor key).
    for q in ({"where": {"ref": "R03"}, "limit": 1},
              {"where": {"day": {"gte": "2024-03-01", "lt": "2024-09-01"}}, "limit": 4},
              {"where": {"cost": {"gt": 1100}}, "limit": 5}):
        body, pages = dict(q), 0
        while True:
            j = ok(srv.request("POST", "/v1/collections/ledger/query", body=body, token=clerk),
                   "query %r" % q)
            pages += 1
            if j.get("next") is None or pages > 30:
                break
            body = dict(q, after=j["next"])
        check(pages >= 2, "query %r: no second page, so no cursor was used" % q)
    # Searches (entry keys of each word), paged as well.
    for m in ({"notes": "zebra"}, {"notes": {"any": "quokka walrus"}}, {"notes": "kumquat zebra"}):
        j = ok(srv.request("POST", "/v1/collections/ledger/query",
                           body={"match": m, "limit": 3}, token=clerk), "match %r" % m)
        check(len(j["docs"]) > 0, "match %r found nothing" % m)
        if j.get("next") is not None:
            ok(srv.request("POST", "/v1/collections/ledger/query",
                           body={"match": m, "limit": 3, "after": j["next"]}, token=clerk),
               "match page 2")
    # A bulk write (entries shared by its documents), then one more search over it. (Paging
    # a match after a bulk write is refused today, "the cursor is not one this query gave
    # out"; that is not what this test is about, so it pages before.)
    lines = "".join('{"id":"B%03d","doc":%s}\n' % (i, json.dumps(doc(100 + i)))
                    for i in range(16))
    r = srv.request("POST", "/v1/collections/ledger/bulk", body=lines, token=clerk,
                    headers={"Content-Type": "application/x-ndjson"})
    check(r.status == 200 and b'"error"' not in r.body, "bulk: %r" % r)
    j = ok(srv.request("POST", "/v1/collections/ledger/query",
                       body={"match": {"notes": "walrus"}, "limit": 100}, token=clerk), "match")
    check(any(d["id"].startswith("B") for d in j["docs"]), "match misses the bulk documents")
    # Aggregates: Paillier (decrypts with p and q) and ASHE sums, grouped and filtered.
    for tok in (admin, analyst):
        j = ok(srv.request("POST", "/v1/collections/ledger/aggregate", token=tok, body={
            "group_by": ["ref"], "metrics": {"total": {"sum": "amount"}, "c": {"sum": "cost"},
                                             "n": {"count": "*"}}}), "aggregate")
        check(len(j["groups"]) >= 5, "aggregate: %r" % j)
    j = ok(srv.request("POST", "/v1/collections/ledger/aggregate", token=admin, body={
        "where": {"ref": "R02"}, "match": {"notes": "zebra"},
        "metrics": {"total": {"sum": "amount"}}}), "aggregate with match")


def keys_of(env, veil):
    """{name: bytes} of every key keydump derives, plus the root key; kept in memory."""
    p = subprocess.run([tool_path(veil), env.data, "acme", "ledger"] + STEMS,
                       capture_output=True, text=True, timeout=300)
    check(p.returncode == 0, "keydump failed (%d): %s" % (p.returncode, p.stderr[-500:]))
    keys = {}
    for line in p.stdout.splitlines():
        name, _, hexval = line.partition(" ")
        keys[name] = bytes.fromhex(hexval)
    with open(os.path.join(env.data, "master.key"), "rb") as f:
        root = f.read()
    check(len(root) == 32, "master.key is not a plain 32-byte key")
    keys["root"] = root
    return keys


def needles(keys):
    """[(label, bytes)]: each secret whole, and its 16-byte windows every 8 bytes; the
    Paillier primes also as little-endian limbs (their bytes reversed)."""
    out = []
    for name, k in sorted(keys.items()):
        if name.endswith(".paillier.n"):
            continue
        forms = [("", k)]
        if ".paillier." in name:
            forms.append((" (GMP limbs)", k[::-1]))
        for tag, b in forms:
            out.append((name + tag, b))
            for i in range(0, len(b) - 15, 8):
                out.append(("%s%s window %d" % (name, tag, i), b[i:i + 16]))
    return out


# ---- taking a core ----


def smaps(pid):
    """[(start, end, perms, flags, name)] of /proc/PID/smaps."""
    maps = []
    head = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$")
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            m = head.match(line)
            if m:
                maps.append([int(m.group(1), 16), int(m.group(2), 16), m.group(3), set(),
                             m.group(4)])
            elif line.startswith("VmFlags:") and maps:
                maps[-1][3] = set(line.split()[1:])
    return maps


PTRACE_ATTACH, PTRACE_DETACH, PTRACE_GETREGSET = 16, 17, 0x4204
NT_PRSTATUS, NT_X86_XSTATE = 1, 0x202
WALL = 0x40000000


class IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def thread_registers(pid):
    """The registers of every thread of the (stopped) process, as a core's notes hold them:
    general registers and the whole XSAVE area (x87, xmm, ymm, zmm), by ptrace."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    libc.ptrace.restype = ctypes.c_long
    out = []
    for tid in sorted(int(t) for t in os.listdir("/proc/%d/task" % pid)):
        if libc.ptrace(PTRACE_ATTACH, tid, None, None) != 0:
            raise Failure("cannot ptrace thread %d: %s" % (tid, os.strerror(ctypes.get_errno())))
        try:
            os.waitpid(tid, WALL)
            for note in (NT_PRSTATUS, NT_X86_XSTATE):
                buf = ctypes.create_string_buffer(16384)
                iov = IoVec(ctypes.cast(buf, ctypes.c_void_p), len(buf))
                if libc.ptrace(PTRACE_GETREGSET, tid, note, ctypes.byref(iov)) == 0:
                    out.append(buf.raw[:iov.len])
        finally:
            libc.ptrace(PTRACE_DETACH, tid, None, None)
    return out


def snapshot(pid, path):
    """Writes what a core of pid holds: every readable mapping that is not VM_DONTDUMP or
    VM_IO, copied from /proc/PID/mem while the process is stopped, then each thread's
    registers (as the core's notes hold them). Returns [(file offset, address, length)] of
    the memory."""
    segs = []
    os.kill(pid, signal.SIGSTOP)
    try:
        with open("/proc/%d/mem" % pid, "rb", buffering=0) as mem, open(path, "wb") as out:
            for start, end, perms, flags, name in smaps(pid):
                if "r" not in perms or "dd" in flags or "io" in flags:
                    continue
                addr = start
                while addr < end:
                    n = min(end - addr, 1 << 20)
                    try:
                        mem.seek(addr)
                        data = mem.read(n)
                    except OSError:
                        break
                    if not data:
                        break
                    segs.append((out.tell(), addr, len(data)))
                    out.write(data)
                    addr += len(data)
            regs = thread_registers(pid)
            check(len(regs) >= 2, "no thread registers read")
            for r in regs:
                out.write(r)
    finally:
        os.kill(pid, signal.SIGCONT)
    return segs


def take_core(veil, pid, tmp):
    """(path, how, segments) of a core of the running pid."""
    if not sanitized(veil):
        prefix = os.path.join(tmp, "core")
        p = subprocess.run(["gcore", "-o", prefix, str(pid)], capture_output=True, text=True,
                           timeout=600)
        path = "%s.%d" % (prefix, pid)
        check(p.returncode == 0 and os.path.exists(path),
              "gcore failed (%d): %s" % (p.returncode, (p.stdout + p.stderr)[-800:]))
        return path, "gcore", elf_segments(path)
    path = os.path.join(tmp, "core.snapshot")
    segs = snapshot(pid, path)
    return path, "snapshot of the mappings a core holds (sanitizer build)", segs


def find_all(veil, path, items):
    """[(label, offset)] of the items (label, bytes) found in the file, by
    tests/tools/memscan (one pass over the file); the bytes go to it on a pipe."""
    tool = os.path.join(os.path.dirname(veil), "tests", "tools", "memscan")
    feed = "".join("%d %s\n" % (i, b.hex()) for i, (_, b) in enumerate(items))
    p = subprocess.run([tool, path], input=feed, capture_output=True, text=True, timeout=600)
    check(p.returncode == 0, "memscan failed (%d): %s" % (p.returncode, p.stderr[-500:]))
    out = []
    for line in p.stdout.splitlines():
        i, off = line.split()
        out.append((items[int(i)][0], int(off)))
    return sorted(out, key=lambda x: x[1])


def elf_segments(path):
    """[(file offset, address, length)] of the PT_LOAD segments of an ELF64 core."""
    with open(path, "rb") as f:
        h = f.read(64)
        check(h[:4] == b"\x7fELF" and h[4] == 2, "%s is not an ELF64 core" % path)
        phoff, = struct.unpack_from("<Q", h, 32)
        phentsize, phnum = struct.unpack_from("<HH", h, 54)
        f.seek(phoff)
        ph = f.read(phentsize * phnum)
    segs = []
    for i in range(phnum):
        ptype, _, off, vaddr, _, filesz = struct.unpack_from("<IIQQQQ", ph, i * phentsize)
        if ptype == 1 and filesz > 0:
            segs.append((off, vaddr, filesz))
    return segs


def where(segs, maps, off):
    """"address A in MAPPING" for a file offset, from the core's segments."""
    for s_off, addr, length in segs:
        if s_off <= off < s_off + length:
            a = addr + off - s_off
            for start, end, perms, flags, name in maps:
                if start <= a < end:
                    return "address %#x in %s %s [%s]" % (a, perms, name or "anonymous",
                                                         " ".join(sorted(flags)))
            return "address %#x" % a
    return "outside the memory segments: in the notes, a thread's registers"


@test
def coredump_no_key_in_core(ctx):
    veil = ctx.veil
    check(os.path.exists(tool_path(veil)), "the test tool %s is not built" % tool_path(veil))
    root = os.geteuid() == 0
    if not sanitized(veil):
        check(shutil.which("gcore") is not None, "gcore (gdb) is not installed")
    env = Env(veil, POLICY)
    tmp = tempfile.mkdtemp(prefix="veil-core-")
    try:
        admin = env.tokens[("acme", "admin")]
        clerk, auditor, analyst = (env.token("acme", r) for r in ("clerk", "auditor", "analyst"))
        srv = env.start(extra_env=None if root else {"VEIL_ALLOW_CORE_DUMPS": "1"})
        exercise(srv, admin, clerk, auditor, analyst)
        keys = keys_of(env, veil)
        kinds = {n.split(".")[-1] for n in keys}
        for want in ("aead", "eq", "range", "sum", "search", "mask", "doc", "cursor", "p", "q",
                     "label", "value", "v1", "root"):
            check(want in kinds, "keydump gave no %s key" % want)
        t0 = time.time()
        path, how, segs = take_core(veil, srv.proc.pid, tmp)
        maps = smaps(srv.proc.pid)
        size = os.path.getsize(path)
        diag("core: %s, %.1f MiB in %.1fs" % (how, size / 1048576.0, time.time() - t0))
        check(srv.proc.poll() is None, "the server died while its core was taken")
        # Not vacuous: the public modulus n lies in ordinary memory as GMP limbs, and n^2
        # big-endian (what the store is sent); both must be in the core.
        n = keys["amount.paillier.n"]
        control = [("n as GMP limbs", n[::-1]), ("n^2 big-endian", (int.from_bytes(n, "big") ** 2)
                                                  .to_bytes(2 * len(n), "big"))]
        seen = dict(find_all(veil, path, control))
        check(len(seen) == 2, "the core lacks %s: it is not a real core of the server"
              % [c for c, _ in control if c not in seen])
        items = needles(keys)
        t0 = time.time()
        found = find_all(veil, path, items)
        diag("searched %d keys (%d patterns) in %.1fs; the canary text is %sin the core" % (
            len(keys) - 1, len(items), time.time() - t0,
            "" if find_all(veil, path, [("c", CANARY.encode())]) else "not "))
        if found:
            lines = ["key %s found at offset %d (%s)" % (label, at, where(segs, maps, at))
                     for label, at in found[:60]]
            raise Failure("%d key patterns found in the core:\n%s" % (len(found),
                                                                    "\n".join(lines)))
        env.stop()
    finally:
        env.close()
        shutil.rmtree(tmp, ignore_errors=True)


# ---- the process hardening itself ----


def start_as(cmd, env, uid):
    """Starts cmd (optionally under uid via setpriv) and waits for its listening line;
    returns (Popen, lines)."""
    if uid is not None:
        cmd = ["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups"] + cmd
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, env=env)
    lines, ready = [], threading.Event()

    def drain():
        for raw in p.stderr:
            lines.append(raw.decode("utf-8", "replace"))
            if "listening on" in lines[-1]:
                ready.set()
        ready.set()

    threading.Thread(target=drain, daemon=True).start()
    if not ready.wait(60) or p.poll() is not None:
        p.kill()
        p.wait()
        raise Failure("server did not start: %s" % "".join(lines)[-1500:])
    return p, lines


def stop(p, lines):
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise Failure("server did not stop")
    check(rc == 0, "server exited %r: %s" % (rc, "".join(lines)[-1500:]))


def core_limits(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max core file size"):
                return line.split()[4:6]
    raise Failure("no core limit in /proc/%d/limits" % pid)


def proc_owner(pid):
    """(owner of /proc/PID/status, the process's real uid)."""
    st = os.stat("/proc/%d/status" % pid)
    with open("/proc/%d/status" % pid) as f:
        uid = int(re.search(r"^Uid:\s+(\d+)", f.read(), re.M).group(1))
    return st.st_uid, uid


@test
def coredump_server_not_dumpable(ctx):
    env = Env(ctx.veil)
    tmp = tempfile.mkdtemp(prefix="veil-dump-")
    try:
        uid = None
        data = env.data
        if os.geteuid() == 0:
            # Run as nobody: a copy of the data directory it owns, in a directory it can
            # reach, and a binary it can run.
            uid = pwd.getpwnam("nobody").pw_uid
            os.chmod(tmp, 0o755)
            data = os.path.join(tmp, "data")
            shutil.copytree(env.data, data)
            for d, dirs, files in os.walk(data):
                os.chown(d, uid, -1)
                for f in files:
                    os.chown(os.path.join(d, f), uid, -1)
            probe = subprocess.run(["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid,
                                    "--clear-groups", ctx.veil, "--version"],
                                   capture_output=True, text=True)
            check(probe.returncode == 0, "nobody cannot run %s: %s" % (ctx.veil, probe.stderr))
        base = dict(os.environ)
        base.pop("VEIL_ALLOW_CORE_DUMPS", None)
        cmd = [ctx.veil, "server", "--data", data, "--listen", "127.0.0.1:0"]
        me = uid if uid is not None else os.getuid()
        check(me != 0, "the server would run as root, where /proc cannot tell")

        p, lines = start_as(cmd, base, uid)
        try:
            owner, puid = proc_owner(p.pid)
            check(puid == me, "the server runs as uid %d, not %d" % (puid, me))
            check(owner == 0, "the server is dumpable (/proc/PID/status belongs to uid %d)"
                  % owner)
            check(core_limits(p.pid) == ["0", "0"],
                  "RLIMIT_CORE is %r, not 0 0" % (core_limits(p.pid),))
        finally:
            stop(p, lines)

        # A command other than the server (here a client waiting for an answer that never
        # comes) hardens its process the same way.
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        e = dict(base, VEIL_ADDR="http://127.0.0.1:%d" % silent.getsockname()[1],
                 VEIL_TOKEN="veil_0000000000000000_x")
        pre = [] if uid is None else ["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid,
                                      "--clear-groups"]
        c = subprocess.Popen(pre + [ctx.veil, "get", "invoices", "X"], env=e,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        try:
            conn, _ = silent.accept()  # the client is connected: past start-up
            owner, puid = proc_owner(c.pid)
            check(puid == me and owner == 0,
                  "veil get is dumpable (/proc/PID/status belongs to uid %d)" % owner)
            check(core_limits(c.pid) == ["0", "0"], "veil get: RLIMIT_CORE is not 0 0")
            conn.close()
        finally:
            c.kill()
            c.wait()
            silent.close()

        for how, extra, env_add in (("--allow-core-dumps", ["--allow-core-dumps"], {}),
                                    ("VEIL_ALLOW_CORE_DUMPS=1", [], {"VEIL_ALLOW_CORE_DUMPS": "1"})):
            e = dict(base)
            e.update(env_add)
            p, lines = start_as(cmd + extra, e, uid)
            try:
                owner, puid = proc_owner(p.pid)
                check(owner == me, "with %s the server is still not dumpable" % how)
                check(any("core dumps" in ln for ln in lines),
                      "with %s the server does not say that core dumps are allowed" % how)
            finally:
                stop(p, lines)
    finally:
        env.close()
        shutil.rmtree(tmp, ignore_errors=True)
