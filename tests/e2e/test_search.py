"""test_search.py: end-to-end tests of encrypted full-text search (issue 4).

Imported by run.py; its @test functions run in the same TAP stream (all are named search_*,
so `run.py -k search` runs only them). Every answer is compared with a plaintext reference
index kept here in Python:

    words   NFKC + full case folding, then words = maximal runs of code points of Unicode
            categories L*, M*, N*; ideographs and kana (Han, Hiragana, Katakana) are words
            of one character each; everything else separates words. Each word is stemmed
            with the Snowball stemmer of the field's language (python3-snowballstemmer,
            the same algorithms as libstemmer); "none" keeps the word; a stem is cut to
            64 bytes at a character boundary.
    match   "words": documents holding every stem; {"any": "words"}: any stem; several
            fields are ANDed, and so is `where`.
    rank    BM25 per matched field, summed: k1 = 1.2, b = 0.75,
            idf = ln(1 + (N - df + 0.5) / (df + 0.5)), N = live documents with at least one
            word in the field, df = those holding the stem, tf = the stem's count in the
            document's field, dl = its number of words, avgdl = total words / N.
            Ties are broken by an opaque token: any order among equal scores is accepted
            (relative tolerance 1e-9).

The shared data directory of these tests (not run.py's) holds several collections, one per
test; tampering, opacity and kill -9 get a fresh data directory each. The cloud store is
the embedded SQLite file; a collection's search index is its key-value table "k_<table>"
there (found by listing tables), edited only while the server is stopped.

Tests: the reference index (English and Dutch, PUT and bulk, all/any, where, aggregates,
then replaces and deletes); stemming per language; Unicode normalization and scripts; long
words and large texts; query errors and roles; updates and deletes, also seen from the
store (a delete writes nothing, a replace only adds entries); paging; searches during
writes; four tampering attacks on the index; the leakage statement and the opacity of the
words; kill -9 during writes.

Needs python3-snowballstemmer (Debian; scripts/deps.sh test), which installs into
/usr/lib/python3/dist-packages: that directory is appended to sys.path here.
"""

import atexit
import base64
import http.client
import json
import math
import os
import random
import signal
import sqlite3
import sys
import threading
import time
import unicodedata
from collections import Counter

from harness import Env, Failure, check, doc_path, expect_error, seg

DIST = "/usr/lib/python3/dist-packages"
if os.path.isdir(DIST) and DIST not in sys.path:
    sys.path.append(DIST)
try:
    import snowballstemmer
    _STEMMER_ERROR = None
except ImportError as _e:  # reported by every test, instead of breaking run.py
    snowballstemmer = None
    _STEMMER_ERROR = "python3-snowballstemmer is not installed (%s); " \
                     "run scripts/deps.sh test" % _e

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def diag(msg):  # replaced by run.py's diag, which prints "# msg" after the test's line
    pass


# ---------------------------------------------------------------------------------------
# the reference: words, stems, BM25

WORD_MAX = 64
K1, B = 1.2, 0.75
REL_TOL = 1e-9
# Ideographs and kana as words.c has them (a superset of U+3040-30FF, 3400-4DBF, 4E00-9FFF,
# F900-FAFF, 20000-2FFFF); a code point must also be a letter, mark or digit.
IDEO = ((0x3005, 0x3007), (0x3021, 0x3029), (0x3040, 0x30FF), (0x31F0, 0x31FF),
        (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x1AFF0, 0x1B16F),
        (0x20000, 0x3FFFF))

_stemmers = {}


def need_stemmer():
    check(_STEMMER_ERROR is None, _STEMMER_ERROR or "")


def stemmer(lang):
    need_stemmer()
    if lang not in _stemmers:
        _stemmers[lang] = snowballstemmer.stemmer(lang)
    return _stemmers[lang]


def normalize(text):
    t = unicodedata.normalize("NFKC", text).casefold()
    return unicodedata.normalize("NFKC", t)


def split_words(text):
    out, cur = [], []
    for ch in normalize(text):
        cp = ord(ch)
        if unicodedata.category(ch)[0] not in "LMN":
            if cur:
                out.append("".join(cur))
                cur = []
        elif any(a <= cp <= b for a, b in IDEO):
            if cur:
                out.append("".join(cur))
                cur = []
            out.append(ch)
        else:
            cur.append(ch)
    if cur:
        out.append("".join(cur))
    return out


def cut(stem):
    b = stem.encode("utf-8")
    if len(b) <= WORD_MAX:
        return stem
    return b[:WORD_MAX].decode("utf-8", "ignore")


def stem(word, lang):
    if lang == "none":
        return cut(word)
    return cut(stemmer(lang).stemWord(word))


def words_of(text, lang):
    """The stems of a text, one per word (repeats kept)."""
    return [stem(w, lang) for w in split_words(text)]


def get_path(doc, path):
    v = doc
    for p in path.split("."):
        if not isinstance(v, dict):
            return None
        v = v.get(p)
    return v


def bm25(idf, tf, dl, avgdl):
    return idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * dl / avgdl))


class Ref:
    """The plaintext index of one collection: its live documents and their stems."""

    def __init__(self, fields):
        self.fields = dict(fields)      # path -> language
        self.docs = {}                  # id -> document
        self.stems = {}                 # id -> {path: Counter of stems}
        self.dl = {}                    # id -> {path: number of words}

    def put(self, did, doc):
        self.docs[did] = doc
        self.stems[did], self.dl[did] = {}, {}
        for f, lang in self.fields.items():
            v = get_path(doc, f)
            if isinstance(v, str):
                ws = words_of(v, lang)
                self.stems[did][f] = Counter(ws)
                self.dl[did][f] = len(ws)

    def delete(self, did):
        del self.docs[did], self.stems[did], self.dl[did]

    def query_stems(self, f, text):
        return sorted(set(words_of(text, self.fields[f])))

    def field_stats(self, f):
        dls = [d[f] for d in self.dl.values() if d.get(f, 0) > 0]
        return len(dls), (sum(dls) / len(dls) if dls else 1.0)

    def search(self, match, where=None):
        """{id: score} of the documents a query must return."""
        terms = []
        for f, spec in match.items():
            anyof = isinstance(spec, dict)
            text = spec["any"] if anyof else spec
            qs = self.query_stems(f, text)
            n, avgdl = self.field_stats(f)
            idf = {}
            for s in qs:
                df = sum(1 for st in self.stems.values() if st.get(f, {}).get(s, 0) > 0)
                idf[s] = math.log(1 + (n - df + 0.5) / (df + 0.5))
            terms.append((f, anyof, qs, idf, avgdl))
        out = {}
        for did, st in self.stems.items():
            if where and not self.where_ok(self.docs[did], where):
                continue
            score, ok = 0.0, True
            for f, anyof, qs, idf, avgdl in terms:
                c = st.get(f, Counter())
                have = [s for s in qs if c.get(s, 0) > 0]
                if not (have if anyof else len(have) == len(qs)):
                    ok = False
                    break
                for s in have:
                    score += bm25(idf[s], c[s], self.dl[did][f], avgdl)
            if ok:
                out[did] = score
        return out

    @staticmethod
    def where_ok(doc, where):
        for f, cond in where.items():
            v = get_path(doc, f)
            if isinstance(cond, dict):
                if v not in cond["in"]:
                    return False
            elif v != cond:
                return False
        return True


def compare_ranked(what, got, want):
    """got: ids in answer order; want: {id: reference score}."""
    dup = sorted({i for i in got if got.count(i) > 1})
    check(not dup, "%s: ids returned twice: %r" % (what, dup[:5]))
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    check(not missing and not extra,
          "%s: %d hits, want %d; missing %r, unexpected %r"
          % (what, len(got), len(want), missing[:6], extra[:6]))
    for k in range(len(got) - 1):
        a, b = want[got[k]], want[got[k + 1]]
        check(b <= a * (1 + REL_TOL) + 1e-12,
              "%s: rank %d is %s (reference score %.12g), rank %d is %s (%.12g): "
              "not best first; reference order %r"
              % (what, k, got[k], a, k + 1, got[k + 1], b,
                 sorted(want, key=lambda i: -want[i])[:8]))


# ---------------------------------------------------------------------------------------
# HTTP helpers (work on any Server)


def query(srv, tok, coll, body, timeout=60):
    return srv.request("POST", "/v1/collections/%s/query" % seg(coll), body=body, token=tok,
                       timeout=timeout)


def search_ids(srv, tok, coll, match, where=None, limit=1000, what=""):
    """(ids in order, None), following `next`; or (None, Resp) for an answer that is not
    200."""
    ids, cur = [], None
    for _ in range(10000):
        b = {"match": match, "limit": limit}
        if where:
            b["where"] = where
        if cur is not None:
            b["after"] = cur
        r = query(srv, tok, coll, b)
        if r.status != 200:
            check(not ids, "%s: page %d failed after earlier pages: %r" % (what, len(ids), r))
            return None, r
        j = r.json
        check(isinstance(j, dict) and isinstance(j.get("docs"), list) and "next" in j,
              "%s: answer shape %r" % (what, r))
        check(len(j["docs"]) <= limit, "%s: %d docs on a page of limit %d"
              % (what, len(j["docs"]), limit))
        for d in j["docs"]:
            check(isinstance(d, dict) and isinstance(d.get("id"), str) and "doc" in d,
                  "%s: hit shape %r" % (what, d))
            ids.append(d["id"])
        cur = j["next"]
        if cur is None:
            return ids, None
        check(j["docs"], "%s: an empty page with a next cursor" % what)
    raise Failure("%s: paging did not end" % what)


def check_search(srv, tok, coll, ref, match, where=None, what="", docs=True):
    """Runs a match query and compares it with the reference; returns the reference."""
    want = ref.search(match, where)
    tag = "%s %s%s" % (what, json.dumps(match, ensure_ascii=False),
                       (" where " + json.dumps(where, ensure_ascii=False)) if where else "")
    b = {"match": match, "limit": 1000}
    if where:
        b["where"] = where
    r = query(srv, tok, coll, b)
    check(r.status == 200, "%s: %r" % (tag, r))
    j = r.json
    got = [d["id"] for d in j["docs"]]
    check(j.get("next") is None, "%s: a next cursor on a page of %d < limit" % (tag, len(got)))
    compare_ranked(tag, got, want)
    if docs:
        for d in j["docs"]:
            check(d["doc"] == ref.docs[d["id"]],
                  "%s: hit %s carries %r, want %r" % (tag, d["id"], d["doc"],
                                                      ref.docs[d["id"]]))
    return want


def aggregate(srv, tok, coll, body):
    return srv.request("POST", "/v1/collections/%s/aggregate" % seg(coll), body=body,
                       token=tok)


def bulk(srv, tok, coll, items):
    """items: [(id, doc)]; every line must be stored."""
    lines = "".join(json.dumps({"id": i, "doc": d}) + "\n" for i, d in items)
    r = srv.request("POST", "/v1/collections/%s/bulk" % seg(coll), body=lines, token=tok,
                    headers={"Content-Type": "application/x-ndjson"})
    check(r.status == 200, "bulk into %s: %r" % (coll, r))
    out = [json.loads(x) for x in r.body.decode().splitlines() if x.strip()]
    check(len(out) == len(items), "bulk answered %d lines for %d" % (len(out), len(items)))
    for o in out:
        check("error" not in o and o.get("status") in (200, 201, "created", "ok", "replaced"),
              "bulk line refused: %r" % (o,))


def put(srv, tok, coll, did, doc, status=None):
    r = srv.request("PUT", doc_path(coll, did), body=doc, token=tok)
    check(r.status in ((status,) if status else (200, 201)),
          "put %s/%s: want %s, got %r" % (coll, did, status or "200/201", r))
    return r


def delete(srv, tok, coll, did):
    r = srv.request("DELETE", doc_path(coll, did), token=tok)
    check(r.status == 200, "delete %s/%s: %r" % (coll, did, r))


def kv_tables(env):
    """{table name: {key: value}} of every key-value table (k_*) of the cloud store."""
    con = sqlite3.connect("file:%s?mode=ro" % env.cloud_db(), uri=True, timeout=30)
    try:
        names = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name LIKE 'k\\_%' "
            "ESCAPE '\\'")]
        out = {}
        for t in names:
            # Rollback marks (48-byte values, rewritten by every write) are not entries.
            out[t] = {bytes(k): bytes(v) for k, v in con.execute('SELECT key, val FROM "%s"'
                                                                  % t) if len(v) != 48}
        return out
    finally:
        con.close()


# ---------------------------------------------------------------------------------------
# policies and data of the shared environment

MEMOS = """collection: memos
fields:
  org:          { type: string, protect: [eq] }
  title:        { type: string, protect: [search] }
  notes:        { type: text,   protect: [search], language: english }
  meta.subject: { type: string, protect: [search] }
  amount:       { type: integer, protect: [sum] }
roles:
  reader:  { read: [org, title] }
  analyst: { aggregate: [amount], group_by: [org], min_group_size: 1, privacy: exact }
"""
MEMO_FIELDS = {"title": "english", "notes": "english", "meta.subject": "english"}

FACTUREN = """collection: facturen
fields:
  org:          { type: string, protect: [eq] }
  omschrijving: { type: text,   protect: [search], language: dutch }
roles:
  boekhouder: { read: ["*"], write: true }
"""
NL_FIELDS = {"omschrijving": "dutch"}

STEMS = """collection: stems
fields:
  en:   { type: text, protect: [search], language: english }
  dflt: { type: text, protect: [search] }
  nl:   { type: text, protect: [search], language: dutch }
  de:   { type: text, protect: [search], language: german }
  fr:   { type: text, protect: [search], language: french }
  raw:  { type: text, protect: [search], language: none }
roles:
  r: { read: ["*"] }
"""
STEM_FIELDS = {"en": "english", "dflt": "english", "nl": "dutch", "de": "german",
               "fr": "french", "raw": "none"}

UNI = """collection: uni
fields:
  en:  { type: text, protect: [search] }
  de:  { type: text, protect: [search], language: german }
  raw: { type: text, protect: [search], language: none }
roles:
  r: { read: ["*"] }
"""
UNI_FIELDS = {"en": "english", "de": "german", "raw": "none"}

UPD = """collection: upd
fields:
  tag:   { type: string, protect: [eq] }
  notes: { type: text,   protect: [search] }
  title: { type: string, protect: [search], language: none }
roles:
  r: { read: ["*"] }
"""
UPD_FIELDS = {"notes": "english", "title": "none"}

PAGES = """collection: pages
fields:
  kind:  { type: string, protect: [eq] }
  notes: { type: text,   protect: [search] }
roles:
  r: { read: ["*"] }
"""
PAGE_FIELDS = {"notes": "english"}

EN_VOCAB = ("pay pays paid paying payment payments late later lately invoice invoices "
            "invoiced invoicing remind reminder reminders reminded connect connected "
            "connection connections generous generously happy happiness deliver delivered "
            "delivery deliveries ship shipped shipping shipment shipments account accounts "
            "accounting accountant overdue urgent urgently customer customers supplier "
            "refund refunded credit credits discount discounts the of and to in "
            "2024 q3").split()
NL_VOCAB = ("factuur facturen betaling betalingen betalen betaald herinnering herinneringen "
            "klant klanten bedrag bedragen laat late levering leveringen leveren geleverd "
            "rekening rekeningen de het een van te").split()
ORGS = ["acme", "globex", "initech", "umbrella"]
SEPS = [" ", " ", " ", ", ", ". ", " - ", "\n", "; ", "/", " (", ") ", "!", "\t", "…"]
UNKNOWN = ["zebra", "xylophone", "quokka"]


def zipf_weights(n):
    return [1.0 / (i + 1) ** 0.7 for i in range(n)]


def spell(rng, w):
    r = rng.random()
    if r < 0.1:
        return w.upper()
    if r < 0.25:
        return w.capitalize()
    return w


def gen_text(rng, vocab, lo, hi):
    n = rng.randint(lo, hi)
    ws = rng.choices(vocab, weights=zipf_weights(len(vocab)), k=n)
    out = []
    for w in ws:
        out.append(spell(rng, w))
        out.append(rng.choice(SEPS))
    return "".join(out).strip() if rng.random() < 0.8 else "".join(out)


def gen_memo(rng):
    d = {"org": rng.choice(ORGS), "amount": rng.randint(1, 1000)}
    r = rng.random()
    if r < 0.08:
        pass                                    # no notes at all
    elif r < 0.13:
        d["notes"] = rng.choice(["", "— !!", "...", " \t"])   # notes without words
    else:
        d["notes"] = gen_text(rng, EN_VOCAB, 1, 30)
    if rng.random() < 0.7:
        d["title"] = gen_text(rng, EN_VOCAB, 1, 5)
    if rng.random() < 0.4:
        d["meta"] = {"subject": gen_text(rng, EN_VOCAB, 1, 4), "other": "x"}
    return d


def gen_factuur(rng):
    d = {"org": rng.choice(ORGS)}
    if rng.random() < 0.92:
        d["omschrijving"] = gen_text(rng, NL_VOCAB, 1, 20)
    return d


def gen_query_text(rng, vocab, n):
    ws = [rng.choice(UNKNOWN) if rng.random() < 0.04 else spell(rng, rng.choice(vocab))
          for _ in range(n)]
    return rng.choice([" ", ", ", " - "]).join(ws)


def gen_match(rng, fields, vocab):
    match = {}
    k = 1 if len(fields) == 1 or rng.random() < 0.85 else 2
    for f in rng.sample(fields, k):
        text = gen_query_text(rng, vocab, rng.choice([1, 1, 2, 2, 3]))
        match[f] = {"any": text} if rng.random() < 0.4 else text
    return match


def gen_where(rng):
    r = rng.random()
    if r < 0.75:
        return None
    if r < 0.9:
        return {"org": rng.choice(ORGS)}
    return {"org": {"in": rng.sample(ORGS, 2)}}


# ---------------------------------------------------------------------------------------
# the shared environment


class State:
    def __init__(self, veil):
        need_stemmer()
        self.veil = veil
        self.env = Env(veil, MEMOS)
        for name, text in (("facturen", FACTUREN), ("stems", STEMS), ("uni", UNI),
                           ("upd", UPD), ("pages", PAGES)):
            self.env.apply("acme", text, name=name + ".yaml")
        self.admin = self.env.tokens[("acme", "admin")]
        self.reader = self.env.token("acme", "reader")
        self.analyst = self.env.token("acme", "analyst")
        self.srv = self.env.start()

    def alive(self):
        """Restarts the server if an earlier test killed it (its data stays)."""
        if self.env.server is not None and self.env.server.proc.poll() is not None:
            self.env.server = None
        if self.env.server is None:
            self.srv = self.env.start()

    def close(self):
        self.env.close()


_state = None


def state(ctx):
    global _state
    need_stemmer()
    if _state is None:
        _state = State(ctx.veil)
        atexit.register(_state.close)
    _state.alive()
    return _state


# ---------------------------------------------------------------------------------------
# 1. property test against the reference


@test
def search_matches_reference_index(ctx):
    st = state(ctx)
    srv, tok = st.srv, st.admin
    rng = random.Random(4004)
    # English: 150 memos, 60 by PUT, the rest by bulk
    en = Ref(MEMO_FIELDS)
    items = [("m%03d" % i, gen_memo(rng)) for i in range(150)]
    for did, d in items[:60]:
        put(srv, tok, "memos", did, d, 201)
        en.put(did, d)
    for at in range(60, 150, 45):
        bulk(srv, tok, "memos", items[at:at + 45])
        for did, d in items[at:at + 45]:
            en.put(did, d)
    # Dutch: 70 invoices, half by PUT, half by bulk
    nl = Ref(NL_FIELDS)
    nitems = [("f%03d" % i, gen_factuur(rng)) for i in range(70)]
    for did, d in nitems[:35]:
        put(srv, tok, "facturen", did, d, 201)
        nl.put(did, d)
    bulk(srv, tok, "facturen", nitems[35:])
    for did, d in nitems[35:]:
        nl.put(did, d)
    # Non-vacuous: the reference finds a fair share of documents, the stemmer merges words.
    check(en.search({"notes": "payment"}) and en.search({"notes": "late"}),
          "the generated memos lack common words")
    check(words_of("payments", "english") == words_of("payment", "english") and
          words_of("facturen", "dutch") == words_of("factuur", "dutch"),
          "the reference stemmer does not merge inflections")

    stats = Counter()
    fields = ["notes", "notes", "notes", "notes", "title", "meta.subject"]
    for n in range(150):
        match = gen_match(rng, fields, EN_VOCAB)
        if len(match) == 1 and rng.random() < 0.1:
            match = dict(match, title=gen_query_text(rng, EN_VOCAB, 1))
        where = gen_where(rng)
        want = check_search(srv, tok, "memos", en, match, where, "memos query %d" % n)
        stats["hits"] += len(want)
        stats["empty"] += not want
        stats["multi"] += len(want) > 1 and len(set(round(s, 6) for s in want.values())) > 1
        if n % 5 == 0:
            body = {"match": match, "metrics": {"n": {"count": "*"}, "s": {"sum": "amount"}}}
            if where:
                body["where"] = where
            r = aggregate(srv, tok, "memos", body)
            check(r.status == 200, "aggregate %s: %r" % (json.dumps(body), r))
            exp = [{"key": {}, "n": len(want),
                    "s": sum(en.docs[i]["amount"] for i in want)}]
            check(r.json.get("groups") == exp,
                  "aggregate %s: %r, want %r" % (json.dumps(body), r.json, exp))
            stats["aggregates"] += 1
        if n % 25 == 0:
            body = {"match": match, "group_by": ["org"], "metrics": {"n": {"count": "*"}}}
            r = aggregate(srv, tok, "memos", body)
            check(r.status == 200, "aggregate %s: %r" % (json.dumps(body), r))
            all_want = en.search(match)
            exp = Counter(en.docs[i]["org"] for i in all_want)
            got = {g["key"]["org"]: g["n"] for g in r.json["groups"]}
            check(got == dict(exp), "aggregate by org %s: %r, want %r"
                  % (json.dumps(match), got, dict(exp)))
    for n in range(40):
        match = gen_match(rng, ["omschrijving"], NL_VOCAB)
        where = gen_where(rng)
        want = check_search(srv, tok, "facturen", nl, match, where, "facturen query %d" % n)
        stats["nl hits"] += len(want)
        if n % 4 == 0:
            r = aggregate(srv, tok, "facturen", {"match": match,
                                                 "metrics": {"n": {"count": "*"}}})
            check(r.status == 200 and r.json["groups"] == [{"key": {}, "n": len(
                nl.search(match))}], "facturen aggregate %s: %r" % (json.dumps(match), r))
    # The statistics follow replaces and deletes (N, df, avgdl of every field).
    ids = sorted(en.docs)
    for did in rng.sample(ids, 25):
        d = gen_memo(rng)
        put(srv, tok, "memos", did, d, 200)
        en.put(did, d)
    dels = rng.sample(sorted(en.docs), 15)
    for did in dels:
        delete(srv, tok, "memos", did)
        en.delete(did)
    items = [(did, gen_memo(rng)) for did in rng.sample(sorted(en.docs), 20)]
    items += [("m2%02d" % i, gen_memo(rng)) for i in range(10)]
    bulk(srv, tok, "memos", items)
    for did, d in items:
        en.put(did, d)
    for n in range(60):
        match = gen_match(rng, fields, EN_VOCAB)
        where = gen_where(rng)
        want = check_search(srv, tok, "memos", en, match, where, "after writes, query %d" % n)
        check(not set(dels) & set(want), "unreachable")
        stats["hits after writes"] += len(want)
        if n % 6 == 0:
            r = aggregate(srv, tok, "memos", {"match": match, "metrics": {"n": {"count": "*"}}})
            check(r.status == 200 and r.json["groups"] == [{"key": {}, "n": len(
                en.search(match))}], "aggregate after writes %s: %r" % (json.dumps(match), r))
    ids, r = search_ids(srv, tok, "memos", {"notes": {"any": " ".join(EN_VOCAB[:30])}})
    check(r is None and not set(dels) & set(ids), "deleted memos come back: %r"
          % (r or sorted(set(dels) & set(ids))))
    check(stats["hits"] > 1000 and stats["empty"] >= 5 and stats["multi"] >= 50 and
          stats["hits after writes"] > 300, "the queries are too weak: %r" % dict(stats))
    diag("reference: %s" % dict(stats))
    st.memos, st.facturen = en, nl


# ---------------------------------------------------------------------------------------
# 2. stemming per language


@test
def search_stemming_per_language(ctx):
    st = state(ctx)
    srv, tok = st.srv, st.admin
    ref = Ref(STEM_FIELDS)
    docs = {
        "e-paying": {"en": "We are paying the bill", "dflt": "paying", "raw": "paying"},
        "e-payment": {"en": "one payment received", "dflt": "payment", "raw": "payment"},
        "e-payments": {"en": "Two PAYMENTS received", "dflt": "payments", "raw": "payments"},
        "e-paid": {"en": "paid in full", "dflt": "paid"},
        "e-invoicing": {"en": "invoicing and invoices", "raw": "invoices"},
        "n-factuur": {"nl": "De factuur is te laat"},
        "n-facturen": {"nl": "Alle facturen zijn betaald"},
        "n-betalingen": {"nl": "betalingen en herinneringen"},
        "n-en": {"en": "factuur", "nl": "invoice"},
        "d-rechnung": {"de": "Die Rechnung ist offen"},
        "d-rechnungen": {"de": "Rechnungen und Zahlungen"},
        "d-haus": {"de": "Das Haus"},
        "d-haeuser": {"de": "Die Häuser"},
        "f-facture": {"fr": "La facture est en retard"},
        "f-paiements": {"fr": "les paiements reçus"},
        "f-paye": {"fr": "Tout est payé"},
    }
    for did, d in docs.items():
        put(srv, tok, "stems", did, d, 201)
        ref.put(did, d)

    def ids(match):
        got, r = search_ids(srv, tok, "stems", match, what=json.dumps(match))
        check(r is None, "%s: %r" % (json.dumps(match), r))
        return set(got)

    # What the stemmers say (the reference must agree, or these claims are moot).
    facts = [("english", "payments", "payment", True), ("english", "paying", "pay", True),
             ("english", "payments", "paying", False), ("english", "invoicing", "invoice", True),
             ("dutch", "facturen", "factuur", True), ("dutch", "betaling", "betalingen", True),
             ("german", "rechnungen", "rechnung", True), ("german", "häuser", "haus", True),
             ("french", "factures", "facture", True), ("french", "paiements", "payé", True),
             ("french", "paiement", "payer", True)]
    for lang, a, b, same in facts:
        check((words_of(a, lang) == words_of(b, lang)) == same,
              "reference stemmer (%s): %s -> %r, %s -> %r" % (lang, a, words_of(a, lang), b,
                                                              words_of(b, lang)))
    claims = [
        ({"en": "payments"}, {"e-payment", "e-payments"}),
        ({"en": "payment"}, {"e-payment", "e-payments"}),
        ({"en": "pays"}, {"e-paying"}),
        ({"en": {"any": "payment paying"}}, {"e-paying", "e-payment", "e-payments"}),
        ({"en": "invoice"}, {"e-invoicing"}),
        ({"dflt": "payments"}, {"e-payment", "e-payments"}),    # default language: english
        ({"raw": "payments"}, {"e-payments"}),                  # none: no stemming
        ({"raw": "payment"}, {"e-payment"}),
        ({"raw": "invoice"}, set()),
        ({"nl": "facturen"}, {"n-factuur", "n-facturen"}),
        ({"nl": "factuur"}, {"n-factuur", "n-facturen"}),
        ({"nl": "betaling herinnering"}, {"n-betalingen"}),
        ({"nl": "laat"}, {"n-factuur"}),
        ({"en": "factuur"}, {"n-en"}),
        ({"nl": "invoices"}, set()),                            # dutch stem of "invoices"
        ({"de": "Rechnungen"}, {"d-rechnung", "d-rechnungen"}),
        ({"de": "rechnung zahlung"}, {"d-rechnungen"}),
        ({"de": "Haus"}, {"d-haus", "d-haeuser"}),
        ({"de": "HÄUSER"}, {"d-haus", "d-haeuser"}),
        ({"fr": "factures"}, {"f-facture"}),
        ({"fr": "paiement"}, {"f-paiements", "f-paye"}),
        ({"fr": "retards"}, {"f-facture"}),
    ]
    for match, want in claims:
        got = ids(match)
        check(got == want, "%s: found %s, want %s" % (json.dumps(match, ensure_ascii=False),
                                                      sorted(got), sorted(want)))
        check_search(srv, tok, "stems", ref, match, what="stems")
    # the stems of every word of every document, in every field, against the reference
    for f in STEM_FIELDS:
        vocab = sorted({w for d in docs.values() if f in d for w in split_words(d[f])})
        for w in vocab:
            check_search(srv, tok, "stems", ref, {f: w}, what="stems")


# ---------------------------------------------------------------------------------------
# 3. Unicode


MIXED = "Invoice счёт-фактура 請求書 فاتورة 송장 ありがとう ΣΟΦΊΑ"


@test
def search_unicode_normalization(ctx):
    st = state(ctx)
    srv, tok = st.srv, st.admin
    ref = Ref(UNI_FIELDS)
    docs = {
        "u-cafe-nfc": {"raw": "un caf\u00e9 cr\u00e8me", "en": "caf\u00e9"},
        "u-cafe-nfd": {"raw": "un cafe\u0301 cre\u0300me", "en": "cafe\u0301"},
        "u-cafe-plain": {"raw": "cafe", "en": "cafe"},
        "u-finance-lig": {"en": "\ufb01nance report", "raw": "\ufb01nance"},
        "u-finance": {"en": "financing report", "raw": "finance"},
        "u-strasse": {"de": "Hauptstra\u00dfe 1", "raw": "Stra\u00dfe"},
        "u-strasse2": {"de": "STRASSE", "raw": "strasse"},
        "u-mixed": {"raw": MIXED, "en": MIXED},
        "u-fullwidth": {"raw": "\uff29\uff2e\uff36\uff2f\uff29\uff23\uff25 "
                               "\uff12\uff10\uff12\uff14"},  # fullwidth
        "u-greek": {"raw": "\u03c3\u03bf\u03c6\u03af\u03b1"},
        "u-separators": {"raw": "e-mail customer's pay\U0001F4B0ment zero\u200bwidth"},
        "u-turkish": {"raw": "\u0130stanbul istanbul"},
        "u-kelvin": {"raw": "\u212a"},                         # KELVIN SIGN, NFKC -> K -> k
    }
    for did, d in docs.items():
        put(srv, tok, "uni", did, d, 201)
        ref.put(did, d)

    def ids(match):
        got, r = search_ids(srv, tok, "uni", match, what=json.dumps(match))
        check(r is None, "%s: %r" % (json.dumps(match, ensure_ascii=False), r))
        return set(got)

    cafes = {"u-cafe-nfc", "u-cafe-nfd"}
    claims = [
        ({"raw": "caf\u00e9"}, cafes),                       # precomposed query
        ({"raw": "cafe\u0301"}, cafes),                      # combining query
        ({"raw": "CAF\u00c9"}, cafes),
        ({"raw": "CAFE\u0301 cre\u0300me"}, cafes),
        ({"en": "cafe\u0301"}, cafes),
        ({"raw": "cafe"}, {"u-cafe-plain"}),                 # an accent is not dropped
        ({"en": "finance"}, {"u-finance-lig", "u-finance"}),
        ({"raw": "finance"}, {"u-finance-lig", "u-finance"}),
        ({"raw": "\ufb01nance"}, {"u-finance-lig", "u-finance"}),
        ({"de": "STRASSE"}, {"u-strasse2"}),                 # "Hauptstraße" is one word
        ({"de": "Stra\u00dfe"}, {"u-strasse2"}),
        ({"de": "hauptstrasse"}, {"u-strasse"}),
        ({"raw": "STRASSE"}, {"u-strasse", "u-strasse2"}),
        ({"raw": "Stra\u00dfe"}, {"u-strasse", "u-strasse2"}),
        ({"raw": "invoice"}, {"u-mixed", "u-fullwidth"}),
        ({"raw": "2024"}, {"u-fullwidth"}),
        ({"raw": "\u0421\u0427\u0401\u0422"}, {"u-mixed"}),  # СЧЁТ, upper case
        ({"raw": "\u0444\u0430\u043a\u0442\u0443\u0440\u0430"}, {"u-mixed"}),
        ({"raw": "\u8acb\u6c42"}, {"u-mixed"}),              # 請求: two one-character words
        ({"raw": "\u66f8"}, {"u-mixed"}),                    # 書
        ({"raw": "\u8acb\u6c42\u66f8"}, {"u-mixed"}),
        ({"raw": "\u6c42\u8acb"}, {"u-mixed"}),              # any order
        ({"raw": "\u0641\u0627\u062a\u0648\u0631\u0629"}, {"u-mixed"}),   # فاتورة
        ({"raw": "\uc1a1\uc7a5"}, {"u-mixed"}),              # 송장: Hangul is one word
        ({"raw": "\uc1a1"}, set()),
        ({"raw": "\u304c"}, {"u-mixed"}),                    # が
        ({"raw": "\u3042\u308a\u304c\u3068\u3046"}, {"u-mixed"}),
        ({"en": "\u0441\u0447\u0451\u0442"}, {"u-mixed"}),
        ({"raw": "\u03c3\u03bf\u03c6\u03af\u03b1"}, {"u-mixed", "u-greek"}),
        ({"raw": "mail"}, {"u-separators"}),
        ({"raw": "customer"}, {"u-separators"}),
        ({"raw": "ment"}, {"u-separators"}),                 # an emoji separates words
        ({"raw": "payment"}, set()),
        ({"raw": "width"}, {"u-separators"}),                # U+200B (Cf) separates
        ({"raw": "k"}, {"u-kelvin"}),
    ]
    for match, want in claims:
        got = ids(match)
        check(got == want, "%s: found %s, want %s" % (json.dumps(match, ensure_ascii=False),
                                                      sorted(got), sorted(want)))
        check_search(srv, tok, "uni", ref, match, what="unicode")
    # Every word of every document, in each field, written three ways, against the reference.
    n = 0
    for f in UNI_FIELDS:
        vocab = sorted({w for d in docs.values() if f in d for w in split_words(d[f])})
        for w in vocab:
            for form in {w, unicodedata.normalize("NFD", w), w.upper()}:
                if split_words(form):
                    check_search(srv, tok, "uni", ref, {f: form}, what="unicode")
                    n += 1
    # a text of the mixed scripts, searched with "any" and "all" in the other fields
    check_search(srv, tok, "uni", ref, {"raw": {"any": MIXED}}, what="unicode")
    check_search(srv, tok, "uni", ref, {"raw": MIXED}, what="unicode")
    check_search(srv, tok, "uni", ref, {"en": MIXED, "raw": "invoice"}, what="unicode")
    diag("unicode: %d claims, %d word queries" % (len(claims), n))


# ---------------------------------------------------------------------------------------
# long words, large texts, many query words


@test
def search_long_words_and_large_texts(ctx):
    st = state(ctx)
    srv, tok = st.srv, st.admin
    ref = Ref(UNI_FIELDS)
    x70 = "x" * 70
    e40 = "\u00e9" * 40                    # 80 bytes: the stem is cut to 32 characters
    han = "\u00e9" + "\uac00" * 30          # 2 + 90 bytes: cut at a character boundary
    rng = random.Random(4606)
    big_vocab = ["w%04d" % i for i in range(1500)]
    big = " ".join(rng.choice(big_vocab) for _ in range(6000)) + " " + " ".join(big_vocab)
    docs = {
        "l-x": {"raw": x70 + "alpha", "en": x70 + "ing"},
        "l-e": {"raw": e40 + " " + han + "a"},
        "l-300": {"raw": "y" * 300, "en": "z" * 299 + "ing"},
        "l-big": {"raw": big, "en": big},
        "l-small": {"raw": "w0001 w0002", "en": "w0001"},
    }
    for did, d in docs.items():
        put(srv, tok, "uni", "long-" + did, d, 201)
        ref.put("long-" + did, d)
    claims = [
        ({"raw": x70 + "beta"}, {"long-l-x"}),            # the same first 64 bytes
        ({"raw": "x" * 64}, {"long-l-x"}),
        ({"raw": "x" * 63}, set()),
        ({"raw": e40 + "zz"}, {"long-l-e"}),
        ({"raw": "\u00e9" * 32}, {"long-l-e"}),
        ({"raw": "\u00e9" * 31}, set()),
        ({"raw": han + "b"}, {"long-l-e"}),
        ({"raw": "\u00e9" + "\uac00" * 20}, {"long-l-e"}),    # 62 bytes: 65 would not fit
        ({"raw": "\u00e9" + "\uac00" * 19}, set()),
        ({"raw": "y" * 64}, {"long-l-300"}),
        ({"raw": "y" * 1000}, {"long-l-300"}),
        ({"raw": "w0001"}, {"long-l-big", "long-l-small"}),
        ({"raw": "w1499 w0007"}, {"long-l-big"}),
    ]
    for match, want in claims:
        got, r = search_ids(srv, tok, "uni", match)
        check(r is None and set(got) == want, "%s: found %r, want %s"
              % (json.dumps(match)[:80], r or got, sorted(want)))
        check_search(srv, tok, "uni", ref, match, what="long words")
    for m in ({"en": x70 + "ed"}, {"en": "z" * 300}, {"en": "w0001"},
              {"en": {"any": "w0001 w0500 w1000"}}, {"raw": "w0001 w0002"}):
        check_search(srv, tok, "uni", ref, m, what="long words")
    # a query of 30 distinct words; one of 200 is refused or answered right, never a 500
    many = " ".join(big_vocab[:30])
    check_search(srv, tok, "uni", ref, {"raw": {"any": many}}, what="30 words")
    check_search(srv, tok, "uni", ref, {"raw": many}, what="30 words")
    r = query(srv, tok, "uni", {"match": {"raw": {"any": " ".join(big_vocab[:200])}}})
    check(r.status in (200, 400, 413), "a match of 200 words: %r" % r)
    if r.status != 200:
        check(r.error_code() in ("bad_request", "too_large"), "a match of 200 words: %r" % r)
    r = query(srv, tok, "uni", {"match": {"raw": "w " * 5000}})
    check(r.status in (200, 400, 413), "a match of 5000 repeated words: %r" % r)
    # duplicate words in a query count once
    a = search_ids(srv, tok, "uni", {"raw": "w0001 w0001 W0001"})[0]
    check(a == search_ids(srv, tok, "uni", {"raw": "w0001"})[0],
          "a repeated query word changes the answer: %r" % a)


# ---------------------------------------------------------------------------------------
# query errors and roles


@test
def search_query_errors_and_roles(ctx):
    st = state(ctx)
    srv, tok = st.srv, st.admin
    put(srv, tok, "memos", "err-1", {"org": "acme", "title": "late payment",
                                     "notes": "a late payment", "amount": 5})

    def q(body, token=tok):
        return query(srv, token, "memos", body)

    for text in ("!!! --- ...", "", "   ", "\u2014\u00bf?", "\U0001F600"):
        e = expect_error(q({"match": {"notes": text}}), 400, "bad_request",
                         "match with no words %r" % text)
        check(e.get("field") in (None, "notes", "match", "match.notes"),
              "no-word error names field %r" % e.get("field"))
        expect_error(q({"match": {"notes": {"any": text}}}), 400, "bad_request",
                     "any-match with no words %r" % text)
        expect_error(aggregate(srv, tok, "memos", {"match": {"notes": text},
                                                   "metrics": {"n": {"count": "*"}}}),
                     400, "bad_request", "aggregate match with no words %r" % text)
    for bad in ({"notes": 5}, {"notes": None}, {"notes": ["late"]},
                {"notes": {"all": "late"}}, {"notes": {"any": 5}},
                {"notes": {"any": "late", "x": 1}}, "late", ["late"]):
        r = q({"match": bad})
        check(r.status == 400 and r.error_code() in ("bad_request", "unsupported_query"),
              "malformed match %r: %r" % (bad, r))
    e = expect_error(q({"match": {"org": "acme"}}), 400, "unsupported_query",
                     "match on an eq field")
    check("search" in e["message"], "the message does not name the tactic: %r" % e)
    expect_error(q({"match": {"amount": "5"}}), 400, "unsupported_query",
                 "match on a sum field")
    expect_error(aggregate(srv, tok, "memos", {"match": {"org": "acme"},
                                               "metrics": {"n": {"count": "*"}}}),
                 400, "unsupported_query", "aggregate match on an eq field")
    r = q({"match": {"no_such_field": "late"}})
    check(r.status == 400, "match on an unknown field: %r" % r)
    # a role that cannot read the field may not search it; one that can, may
    expect_error(q({"match": {"notes": "late"}}, st.reader), 403, "forbidden",
                 "reader searching notes")
    expect_error(q({"match": {"meta.subject": "late"}}, st.reader), 403, "forbidden",
                 "reader searching meta.subject")
    r = q({"match": {"title": "payment"}}, st.reader)
    check(r.status == 200 and "err-1" in [d["id"] for d in r.json["docs"]],
          "reader searching title: %r" % r)
    for d in r.json["docs"]:
        check(set(d["doc"]) <= {"org", "title"}, "reader sees %r" % sorted(d["doc"]))
    r = q({"match": {"notes": "payment"}, "select": ["org", "amount"]})
    check(r.status == 200 and any(d["id"] == "err-1" for d in r.json["docs"]),
          "match with select: %r" % r)
    for d in r.json["docs"]:
        check(set(d["doc"]) <= {"org", "amount"}, "select gave %r" % sorted(d["doc"]))
    expect_error(aggregate(srv, st.analyst, "memos", {"match": {"notes": "late"},
                                                      "metrics": {"n": {"count": "*"}}}),
                 403, "forbidden", "analyst aggregating over a notes match")
    expect_error(q({"match": {"title": "late"}}, st.analyst), 403, "forbidden",
                 "analyst querying")
    delete(srv, tok, "memos", "err-1")


# ---------------------------------------------------------------------------------------
# 4. updates and deletes, seen from the API and from the store


UPD_VOCAB = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
             "november oscar papa").split()


def upd_doc(rng, k, vocab):
    d = {"tag": "t%d" % (k % 3), "notes": gen_text(rng, vocab, 2, 9)}
    if rng.random() < 0.6:
        d["title"] = gen_text(rng, vocab, 1, 3)
    return d


def distinct_entries(ref_fields, doc):
    """The number of (field, stem) pairs of a document: its search index entries."""
    n = 0
    for f, lang in ref_fields.items():
        v = get_path(doc, f)
        if isinstance(v, str):
            n += len(set(words_of(v, lang)))
    return n


def batch_entries(ref_fields, docs):
    """The search index entries of one bulk batch: per distinct (field, stem), one entry
    for every 128 documents that have it."""
    per = Counter()
    for doc in docs:
        for f, lang in ref_fields.items():
            v = get_path(doc, f)
            if isinstance(v, str):
                for w in set(words_of(v, lang)):
                    per[(f, w)] += 1
    return sum((n + 127) // 128 for n in per.values())


@test
def search_updates_and_deletes(ctx):
    st = state(ctx)
    srv, tok, env = st.srv, st.admin, st.env
    rng = random.Random(4404)
    ref = Ref(UPD_FIELDS)
    old_words = UPD_VOCAB[:8]
    new_words = UPD_VOCAB[8:]

    before = kv_tables(env)
    first = {"tag": "t0", "notes": "alpha bravo bravo", "title": "Alpha"}
    put(srv, tok, "upd", "u000", first, 201)
    ref.put("u000", first)
    after = kv_tables(env)
    changed = [t for t in after if after[t] != before.get(t)]
    check(len(changed) == 1, "one put changed %d key-value tables: %r" % (len(changed), changed))
    kt = changed[0]
    added = set(after[kt]) - set(before.get(kt, {}))
    check(len(added) == distinct_entries(UPD_FIELDS, first),
          "a put of %d distinct (field, stem) pairs added %d index entries"
          % (distinct_entries(UPD_FIELDS, first), len(added)))
    for i in range(1, 40):
        d = upd_doc(rng, i, old_words)
        put(srv, tok, "upd", "u%03d" % i, d, 201)
        ref.put("u%03d" % i, d)

    def all_words(what):
        for w in UPD_VOCAB + ["Alpha"]:
            check_search(srv, tok, "upd", ref, {"notes": w}, what=what)
            check_search(srv, tok, "upd", ref, {"title": w}, what=what)
        for m in ({"notes": {"any": "alpha kilo"}}, {"notes": {"any": "bravo lima papa"}},
                  {"title": {"any": "alpha hotel kilo"}}, {"notes": "charlie delta"}):
            check_search(srv, tok, "upd", ref, m, what=what)
        check_search(srv, tok, "upd", ref, {"notes": "alpha", "title": {"any": "bravo lima"}},
                     where={"tag": "t1"}, what=what)

    all_words("before updates")

    # a replace adds entries and changes none; the old words no longer find the document
    kv0 = kv_tables(env)[kt]
    newdoc = {"tag": "t1", "notes": "kilo lima lima mike", "title": "november"}
    put(srv, tok, "upd", "u000", newdoc, 200)
    ref.put("u000", newdoc)
    kv1 = kv_tables(env)[kt]
    changed = sorted(k.hex()[:16] for k in kv0 if kv1.get(k) != kv0[k])
    check(not changed, "a replace altered or removed index entries %r" % changed[:4])
    check(len(kv1) - len(kv0) == distinct_entries(UPD_FIELDS, newdoc),
          "a replace with %d (field, stem) pairs added %d entries"
          % (distinct_entries(UPD_FIELDS, newdoc), len(kv1) - len(kv0)))
    for w in ("alpha", "bravo"):
        ids, r = search_ids(srv, tok, "upd", {"notes": w})
        check(r is None and "u000" not in ids, "old word %r still finds u000: %r" % (w, r or ids))
    for w in ("kilo", "lima", "mike"):
        ids, r = search_ids(srv, tok, "upd", {"notes": w})
        check(r is None and "u000" in ids, "new word %r does not find u000: %r" % (w, r or ids))
    ids, r = search_ids(srv, tok, "upd", {"title": "alpha"})
    check(r is None and "u000" not in ids, "old title still finds u000")

    # refused writes (a stale If-Match, a mistyped value) add no entries and find nothing
    kv0 = kv_tables(env)[kt]
    r = srv.request("PUT", doc_path("upd", "u000"), body={"tag": "t1", "notes": "oscar papa"},
                    token=tok, headers={"If-Match": "999"})
    expect_error(r, 412, "version_mismatch", "a stale If-Match")
    r = srv.request("PUT", doc_path("upd", "u000"), body={"tag": 5, "notes": "oscar papa"},
                    token=tok)
    check(r.status == 400, "a mistyped replace: %r" % r)
    r = srv.request("PUT", doc_path("upd", "u000"), body={"tag": "t1", "notes": ["oscar"]},
                    token=tok)
    check(r.status == 400, "notes that are not a string: %r" % r)
    r = srv.request("PUT", doc_path("upd", "u999"), body={"tag": "t1", "notes": 42},
                    token=tok)
    check(r.status == 400, "notes that are a number: %r" % r)
    for w in ("oscar", "papa"):
        ids, r = search_ids(srv, tok, "upd", {"notes": w})
        check(r is None and "u000" not in ids and "u999" not in ids,
              "a refused write is found by %r: %r" % (w, r or ids))
    check(kv_tables(env)[kt] == kv0, "refused writes added search index entries")
    # a conditional replace that holds
    v = srv.request("GET", doc_path("upd", "u000"), token=tok).json["version"]
    cond = {"tag": "t1", "notes": "kilo lima lima mike juliet", "title": "november"}
    r = srv.request("PUT", doc_path("upd", "u000"), body=cond, token=tok,
                    headers={"If-Match": str(v)})
    check(r.status == 200, "a conditional replace: %r" % r)
    ref.put("u000", cond)
    check_search(srv, tok, "upd", ref, {"notes": "juliet"}, what="after If-Match")

    # a delete changes nothing in the key-value space; the document never comes back
    for did in ("u001", "u002"):
        kv0 = kv_tables(env)[kt]
        delete(srv, tok, "upd", did)
        ref.delete(did)
        check(kv_tables(env)[kt] == kv0, "a delete changed the search index in the store")
    # more replaces (PUT and bulk), deletes, a re-creation, a replace without notes
    for i in range(3, 15):
        d = upd_doc(rng, i, new_words if i % 2 else UPD_VOCAB)
        put(srv, tok, "upd", "u%03d" % i, d, 200)
        ref.put("u%03d" % i, d)
    items = [("u%03d" % i, upd_doc(rng, i, new_words)) for i in range(15, 25)]
    items += [("u%03d" % i, upd_doc(rng, i, UPD_VOCAB)) for i in range(40, 45)]
    kv0 = kv_tables(env)[kt]
    bulk(srv, tok, "upd", items)
    for did, d in items:
        ref.put(did, d)
    kv1 = kv_tables(env)[kt]
    check(all(kv1.get(k) == v for k, v in kv0.items()), "a bulk replace altered old entries")
    # a bulk batch writes one entry per distinct (field, stem) of the whole batch (up to
    # 128 documents an entry), not one per document
    check(len(kv1) - len(kv0) == batch_entries(UPD_FIELDS, [d for _, d in items]),
          "a bulk write added %d entries for %d distinct (field, stem) pairs of its batch"
          % (len(kv1) - len(kv0), batch_entries(UPD_FIELDS, [d for _, d in items])))
    for did in ("u025", "u026", "u027", "u003"):
        delete(srv, tok, "upd", did)
        ref.delete(did)
    again = {"tag": "t2", "notes": "papa oscar"}
    put(srv, tok, "upd", "u001", again, 201)
    ref.put("u001", again)
    nonotes = {"tag": "t2", "title": "hotel"}
    put(srv, tok, "upd", "u028", nonotes, 200)
    ref.put("u028", nonotes)
    empty = {"tag": "t2", "notes": "?!", "title": ""}
    put(srv, tok, "upd", "u029", empty, 200)
    ref.put("u029", empty)
    r = srv.request("DELETE", doc_path("upd", "u002"), token=tok)
    check(r.status == 404, "a second delete: %r" % r)
    all_words("after updates")
    gone = {"u002", "u025", "u026", "u027", "u003"}
    ids, r = search_ids(srv, tok, "upd", {"notes": {"any": " ".join(UPD_VOCAB)}})
    check(r is None and not gone & set(ids), "deleted documents come back: %r"
          % (r or sorted(gone & set(ids))))
    # the index and its statistics survive a restart; writes after it too
    env.stop()
    st.srv = srv = env.start()
    all_words("after a restart")
    for i in range(30, 36):
        d = upd_doc(rng, i, UPD_VOCAB)
        put(srv, tok, "upd", "u%03d" % i, d)
        ref.put("u%03d" % i, d)
    delete(srv, tok, "upd", "u030")
    ref.delete("u030")
    all_words("after a restart and writes")


# ---------------------------------------------------------------------------------------
# 5. paging


@test
def search_paging_is_stable(ctx):
    st = state(ctx)
    srv, tok = st.srv, st.admin
    rng = random.Random(4505)
    ref = Ref(PAGE_FIELDS)
    for i in range(22):
        # varied tf and dl, and four exact duplicates (equal scores: the token decides)
        n = i % 18
        words = ["quartz"] * (1 + n % 4) + ["filler"] * (n % 7) + ["other"] * (n // 6)
        rng.shuffle(words)
        d = {"kind": "k%d" % (i % 2), "notes": " ".join(words)}
        put(srv, tok, "pages", "p%02d" % i, d, 201)
        ref.put("p%02d" % i, d)
    for i in range(8):
        d = {"kind": "k0", "notes": "filler other words"}
        put(srv, tok, "pages", "z%02d" % i, d, 201)
        ref.put("z%02d" % i, d)
    match = {"notes": "quartz"}
    want = ref.search(match)
    check(len(want) == 22, "the reference finds %d" % len(want))
    full, r = search_ids(srv, tok, "pages", match, limit=100)
    check(r is None, "full query: %r" % r)
    compare_ranked("full", full, want)
    for limit in (3, 1, 7):
        paged, r = search_ids(srv, tok, "pages", match, limit=limit, what="limit %d" % limit)
        check(r is None, "paging by %d: %r" % (limit, r))
        check(paged == full, "pages of %d concatenate to %r, the full list is %r"
              % (limit, paged, full))
    # with where, and with an "any" match
    for m, w in (({"notes": {"any": "quartz other"}}, None), (match, {"kind": "k1"})):
        paged, r = search_ids(srv, tok, "pages", m, where=w, limit=3, what="paged")
        check(r is None, "paging %s: %r" % (json.dumps(m), r))
        compare_ranked("paged %s %s" % (json.dumps(m), w), paged, ref.search(m, w))
        whole, r = search_ids(srv, tok, "pages", m, where=w, limit=1000)
        check(paged == whole, "paged %r != whole %r" % (paged, whole))
    # a cursor is tied to its match
    r = query(srv, tok, "pages", {"match": match, "limit": 3})
    check(r.status == 200 and r.json["next"], "first page: %r" % r)
    cur = r.json["next"]
    for other in ({"notes": "filler"}, {"notes": {"any": "quartz"}},
                  {"notes": "quartz filler"}):
        expect_error(query(srv, tok, "pages", {"match": other, "limit": 3, "after": cur}),
                     400, "bad_request", "cursor of %s used with %s" % (match, other))
    r = query(srv, tok, "pages", {"limit": 3, "after": cur})
    check(r.status == 400, "a match cursor used without a match: %r" % r)
    # ... and to its where: another filter would page over a different list
    r = query(srv, tok, "pages", {"match": match, "where": {"kind": "k1"}, "limit": 3,
                                  "after": cur})
    expect_error(r, 400, "bad_request", "a match cursor used with another where")
    r = query(srv, tok, "pages", {"where": {"kind": "k0"}, "limit": 3})
    check(r.status == 200 and r.json["next"], "plain query page: %r" % r)
    r = query(srv, tok, "pages", {"match": match, "limit": 3, "after": r.json["next"]})
    check(r.status == 400, "a plain cursor used with a match: %r" % r)
    for bad in (cur[:-2], cur[:-1] + ("0" if cur[-1] != "0" else "1"), "zz", ""):
        r = query(srv, tok, "pages", {"match": match, "limit": 3, "after": bad})
        check(r.status == 400, "a damaged cursor %r...: %r" % (bad[:20], r))
    # writes between pages: no duplicates, nothing of the first list skipped
    seen, cur = [], None
    for k in range(100):
        b = {"match": match, "limit": 3}
        if cur:
            b["after"] = cur
        r = query(srv, tok, "pages", b)
        check(r.status == 200, "page %d during writes: %r" % (k, r))
        seen += [d["id"] for d in r.json["docs"]]
        cur = r.json["next"]
        if k == 1:
            d = {"kind": "k0", "notes": "quartz quartz quartz quartz quartz"}
            put(srv, tok, "pages", "new-between", d, 201)
            ref.put("new-between", d)
        if cur is None:
            break
    check(len(seen) == len(set(seen)), "duplicates across pages during writes: %r" % seen)
    check(set(full) <= set(seen) and set(seen) - set(full) <= {"new-between"},
          "pages during writes returned %r, before %r" % (seen, full))
    compare_ranked("after the write", search_ids(srv, tok, "pages", match)[0],
                   ref.search(match))


# ---------------------------------------------------------------------------------------
# searches while writers replace documents


@test
def search_during_writes(ctx):
    """Writers flip documents between two texts while searches run: no answer may raise a
    false integrity alarm, every document returned must hold the words searched for in the
    version returned (no stray results), and, as analytics_aggregates_during_writes asks of
    aggregates, each document counts wholly in its old or its new state: "cobalt" is in
    both, so every search and count of it must find every document."""
    st = state(ctx)
    srv, tok = st.srv, st.admin
    texts = ["amber cobalt cobalt", "basalt cobalt dolomite"]
    ndocs = 4
    for w in range(ndocs):
        put(srv, tok, "pages", "race%d" % w, {"kind": "race", "notes": texts[0]})
    stop = threading.Event()
    errors = []
    writes = Counter()

    def writer(w):
        k = 1
        while not stop.is_set() and not errors:
            try:
                r = srv.request("PUT", doc_path("pages", "race%d" % w),
                                body={"kind": "race", "notes": texts[k % 2]}, token=tok)
                if r.status != 200:
                    errors.append("writer %d: %r" % (w, r))
            except (ConnectionError, http.client.HTTPException, OSError) as e:
                errors.append("writer %d: %s" % (w, e))
            k += 1
            writes[w] += 1

    ths = [threading.Thread(target=writer, args=(w,)) for w in range(ndocs)]
    for t in ths:
        t.start()
    seen = Counter()
    short = Counter()
    example = []
    try:
        deadline = time.time() + 4
        while time.time() < deadline and not errors:
            for m, need in (({"notes": "amber"}, "amber"), ({"notes": "basalt"}, "basalt"),
                            ({"notes": "cobalt"}, "cobalt"),
                            ({"notes": {"any": "amber basalt"}}, None)):
                r = query(srv, tok, "pages", {"match": m, "where": {"kind": "race"},
                                              "limit": 100})
                check(r.status == 200, "search %s during writes: %r" % (json.dumps(m), r))
                got = r.json["docs"]
                ids = [d["id"] for d in got]
                check(len(ids) == len(set(ids)) and r.json["next"] is None,
                      "search %s during writes: %r" % (json.dumps(m), ids))
                for d in got:
                    stems = set(words_of(d["doc"].get("notes", ""), "english"))
                    q = [need] if need else ["amber", "basalt"]
                    check(any(words_of(x, "english")[0] in stems for x in q),
                          "search %s returned %s with notes %r: a stray result"
                          % (json.dumps(m), d["id"], d["doc"].get("notes")))
                seen[json.dumps(m)] += 1
                if need in ("cobalt", None) and len(ids) < ndocs:
                    short[json.dumps(m)] += 1
                    example.append("query %s found %s" % (json.dumps(m), sorted(ids)))
                r = aggregate(srv, tok, "pages", {"match": m, "where": {"kind": "race"},
                                                  "metrics": {"n": {"count": "*"}}})
                check(r.status == 200, "aggregate %s during writes: %r" % (json.dumps(m), r))
                n = r.json["groups"][0]["n"]
                check(0 <= n <= ndocs, "aggregate %s during writes counted %d of %d"
                      % (json.dumps(m), n, ndocs))
                if need in ("cobalt", None) and n < ndocs:
                    short["aggregate " + json.dumps(m)] += 1
                    example.append("aggregate %s counted %d" % (json.dumps(m), n))
    finally:
        stop.set()
        for t in ths:
            t.join(60)
    check(not errors, "; ".join(errors[:5]))
    check(sum(writes.values()) >= 20 and sum(seen.values()) >= 20,
          "the race was not run: %d writes, %r searches" % (sum(writes.values()), dict(seen)))
    check("breach_suspected" not in srv.stderr(),
          "a false integrity alarm during writes:\n%s" % srv.stderr()[-2000:])
    diag("during writes: %d writes, %d searches" % (sum(writes.values()),
                                                   sum(seen.values())))
    for w in range(ndocs):
        delete(srv, tok, "pages", "race%d" % w)
    check(not short, "documents whose old and new text both hold the words were left out "
          "of %d of %d answers during writes (%r); e.g. %s"
          % (sum(short.values()), 2 * sum(seen.values()), dict(short), "; ".join(example[:3])))


# ---------------------------------------------------------------------------------------
# 6. tampering with the search index in the store

TAMPER_POLICY = """collection: tdocs
fields:
  org:   { type: string, protect: [eq] }
  notes: { type: text,   protect: [search] }
  title: { type: string, protect: [search], language: none }
  n:     { type: integer, protect: [sum] }
roles:
  w: { read: ["*"], write: true }
"""
T_FIELDS = {"notes": "english", "title": "none"}
T_VOCAB = ("amber basalt cobalt dolomite emerald feldspar garnet hematite iolite jasper "
           "kyanite lazurite malachite").split()


def t_doc(rng, k):
    d = {"org": "o%d" % (k % 3), "notes": gen_text(rng, T_VOCAB, 2, 7), "n": k}
    if rng.random() < 0.5:
        d["title"] = gen_text(rng, T_VOCAB[:6], 1, 2)
    return d


def t_queries():
    qs = []
    for w in T_VOCAB:
        qs.append({"notes": w})
        qs.append({"title": w})
    qs.append({"notes": {"any": " ".join(T_VOCAB)}})
    return qs


def t_sweep(srv, tok, ref, what, allow_502):
    """Searches every word; returns the list of matches that answered 502."""
    bad = []
    for m in t_queries():
        want = ref.search(m)
        got, r = search_ids(srv, tok, "tdocs", m, what=what)
        if r is not None:
            check(allow_502, "%s: %s answered %r" % (what, json.dumps(m), r))
            expect_error(r, 502, "integrity_violation", "%s: %s" % (what, json.dumps(m)))
            check(b"o1" not in r.body and not any(w.encode() in r.body for w in T_VOCAB),
                  "%s: the 502 carries data: %r" % (what, r.body))
            # an aggregate over the same words must not count fewer documents either
            ra = aggregate(srv, tok, "tdocs", {"match": m, "metrics": {"n": {"count": "*"}}})
            expect_error(ra, 502, "integrity_violation", "%s: aggregate %s"
                         % (what, json.dumps(m)))
            bad.append(m)
            continue
        compare_ranked("%s %s" % (what, json.dumps(m)), got, want)
        ra = aggregate(srv, tok, "tdocs", {"match": m, "metrics": {"n": {"count": "*"}}})
        check(ra.status == 200 and ra.json["groups"] == [{"key": {}, "n": len(want)}],
              "%s: aggregate %s: %r, want %d" % (what, json.dumps(m), ra, len(want)))
    return bad


def t_kv(env):
    t = kv_tables(env)
    nonempty = [k for k, v in t.items() if v]
    check(len(nonempty) == 1, "want one key-value table with entries, got %r" % sorted(t))
    return nonempty[0], t[nonempty[0]]


def kv_rewrite(env, table, rows):
    """Replaces the whole key-value table by rows {key: value} (server stopped)."""
    check(env.server is None, "attacks happen with the server stopped")
    con = sqlite3.connect(env.cloud_db(), timeout=30)
    try:
        con.execute('DELETE FROM "%s"' % table)
        con.executemany('INSERT INTO "%s"(key, val) VALUES (?, ?)' % table,
                        list(rows.items()))
        con.commit()
    finally:
        con.close()


def put_entries(env, srv, tok, ref, did, doc, status=None):
    """Puts a document; returns the keys of the index entries it added."""
    before = kv_tables(env)
    put(srv, tok, "tdocs", did, doc, status)
    ref.put(did, doc)
    after = kv_tables(env)
    return sorted(k for t in after for k in after[t] if k not in before.get(t, {}))


def _tamper(ctx, kind):
    """One attack on the search index of a fresh data directory. A few marker documents
    of known words are written alone, so that their entries are known by diffing the
    store: the attack hits those (live documents' entries), then, for swaps, entries of
    the same word, and random entries. Every search of every word must answer exactly
    like the reference or 502 integrity_violation; the words hit must answer 502."""
    need_stemmer()
    env = Env(ctx.veil, TAMPER_POLICY)
    rng = random.Random({"drop": 61, "alter": 62, "swap": 63, "rollback": 64}[kind])
    try:
        srv = env.start()
        tok = env.tokens[("acme", "admin")]
        ref = Ref(T_FIELDS)
        items = [("t%02d" % i, t_doc(rng, i)) for i in range(30)]
        for did, d in items[:10]:
            put(srv, tok, "tdocs", did, d, 201)
        bulk(srv, tok, "tdocs", items[10:])
        for did, d in items:
            ref.put(did, d)
        for i in (3, 4, 11):       # stale entries exist too
            d = t_doc(rng, 100 + i)
            put(srv, tok, "tdocs", "t%02d" % i, d, 200)
            ref.put("t%02d" % i, d)
        for did in ("t05", "t12"):
            delete(srv, tok, "tdocs", did)
            ref.delete(did)
        mark = {w: put_entries(env, srv, tok, ref, "mark-" + w, {"org": "o9", "notes": text})
                for w, text in (("amber", "amber amber"), ("amber2", "Amber"),
                                 ("basalt", "basalt"), ("cobalt", "cobalt cobalt cobalt"))}
        for w, keys in mark.items():
            check(len(keys) == 1, "the one-word document %s added %d entries" % (w, len(keys)))
        check(not t_sweep(srv, tok, ref, "before the attack", False), "unreachable")
        env.stop()
        table, rows = t_kv(env)
        original = dict(rows)
        keys = sorted(rows)

        def attack(new_rows, what, must):
            """Writes new_rows, restarts, sweeps; the `must` words have to answer 502."""
            kv_rewrite(env, table, new_rows)
            srv = env.start()
            bad = t_sweep(srv, tok, ref, what, True)
            for w in must:
                check({"notes": w} in bad, "%s: a search of %r answered as if nothing "
                      "happened" % (what, w))
            check(bad, "%s: every search answered as if nothing happened" % what)
            check("breach_suspected" in srv.stderr(),
                  "%s: no breach_suspected line in the server log:\n%s"
                  % (what, srv.stderr()[-1500:]))
            # the documents themselves still read back (the rows are untouched)
            r = srv.request("GET", doc_path("tdocs", "t01"), token=tok)
            check(r.status == 200 and r.json["doc"] == ref.docs["t01"], "GET t01: %r" % r)
            env.stop()
            return bad

        def restored(what):
            """The honest index again: every answer exact, no 502."""
            kv_rewrite(env, table, original)
            srv = env.start()
            t_sweep(srv, tok, ref, what, False)
            env.stop()

        counts = []
        if kind == "drop":
            rows = dict(original)
            del rows[mark["basalt"][0]]
            counts.append(len(attack(rows, "an entry of a live document dropped",
                                     ["basalt"])))
            restored("after the dropped entry was put back")
            rows = dict(original)
            del rows[rng.choice(keys)]
            counts.append(len(attack(rows, "a random entry dropped", [])))
        elif kind == "alter":
            rows = dict(original)
            k = mark["cobalt"][0]
            v = bytearray(rows[k])
            v[len(v) // 2] ^= 0x01
            rows[k] = bytes(v)
            counts.append(len(attack(rows, "a byte of an entry altered", ["cobalt"])))
            restored("after the altered entry was put back")
            rows = dict(original)
            k = rng.choice(keys)
            rows[k] = rows[k][:-1] + bytes([rows[k][-1] ^ 0x80])
            counts.append(len(attack(rows, "the last byte of a random entry altered", [])))
        elif kind == "swap":
            rows = dict(original)
            a, b = mark["amber"][0], mark["amber2"][0]
            rows[a], rows[b] = rows[b], rows[a]
            counts.append(len(attack(rows, "two entries of one word swapped", ["amber"])))
            restored("after the same-word swap was undone")
            rows = dict(original)
            a, b = mark["basalt"][0], mark["cobalt"][0]
            rows[a], rows[b] = rows[b], rows[a]
            counts.append(len(attack(rows, "entries of two words swapped",
                                     ["basalt", "cobalt"])))
            restored("after the two-word swap was undone")
            rows = dict(original)
            a, b = rng.sample(keys, 2)
            rows[a], rows[b] = rows[b], rows[a]
            counts.append(len(attack(rows, "two random entries swapped", [])))
        else:
            srv = env.start()
            for i in range(30, 40):
                d = t_doc(rng, i)
                put(srv, tok, "tdocs", "t%02d" % i, d, 201)
                ref.put("t%02d" % i, d)
            d = t_doc(rng, 200)
            put(srv, tok, "tdocs", "t00", d, 200)
            ref.put("t00", d)
            later = put_entries(env, srv, tok, ref, "mark-later", {"notes": "dolomite"})
            check(len(later) == 1, "the one-word document added %d entries" % len(later))
            check(not t_sweep(srv, tok, ref, "before the rollback", False), "unreachable")
            env.stop()
            table2, rows2 = t_kv(env)
            check(table2 == table and len(rows2) > len(original), "no entries were added")
            kv_rewrite(env, table, original)      # the older copy
            srv = env.start()
            for i in range(40, 45):               # more writes after the rollback
                d = t_doc(rng, i)
                put(srv, tok, "tdocs", "t%02d" % i, d, 201)
                ref.put("t%02d" % i, d)
            env.stop()
            counts.append(len(attack(kv_tables(env)[table], "the index rolled back",
                                     ["dolomite"])))
        diag("%s: %s of %d searches answered 502" % (kind, "/".join(map(str, counts)),
                                                     len(t_queries())))
    finally:
        env.close()


@test
def search_tamper_dropped_entry(ctx):
    _tamper(ctx, "drop")


@test
def search_tamper_altered_value(ctx):
    _tamper(ctx, "alter")


@test
def search_tamper_swapped_values(ctx):
    _tamper(ctx, "swap")


@test
def search_tamper_rolled_back_index(ctx):
    _tamper(ctx, "rollback")


# ---------------------------------------------------------------------------------------
# 7. leakage statement and opacity of the words


CANARY_POLICY = """collection: vault
fields:
  org:   { type: string, protect: [eq] }
  notes: { type: text,   protect: [search] }
  nl:    { type: string, protect: [search], language: dutch }
  raw:   { type: text,   protect: [search], language: none }
  plain: { type: string }
roles:
  w: { read: ["*"], write: true }
"""


def scan(needles, blobs):
    leaks = []
    for name, nd in needles.items():
        raw = nd.encode("utf-8")
        forms = {"raw": raw, "hex": raw.hex().encode(), "HEX": raw.hex().upper().encode(),
                 "base64": base64.b64encode(raw)[:-4] if len(raw) > 6 else raw}
        for f, b in blobs.items():
            for form, needle in forms.items():
                if needle in b:
                    leaks.append("%s (%s) in %s" % (name, form, os.path.basename(f)))
    return leaks


ISO_POLICY = """collection: notes
fields:
  notes: { type: text, protect: [search] }
roles:
  clerk: { read: ["*"], write: true }
"""


@test
def search_tenants_are_isolated(ctx):
    """Two tenants write the same words: their index entries share no label and no value,
    each finds only its own documents, and a token of one cannot search the other's."""
    need_stemmer()
    env = Env(ctx.veil, ISO_POLICY)
    try:
        env.run("tenant", "create", "beta")
        env.token("beta", "admin")
        env.apply("beta", ISO_POLICY, name="beta.yaml")
        srv = env.start()
        ta, tb = env.tokens[("acme", "admin")], env.tokens[("beta", "admin")]
        text = "shared quartz words in both tenants"
        before = kv_tables(env)
        put(srv, ta, "notes", "a1", {"notes": text}, 201)
        mid = kv_tables(env)
        put(srv, tb, "notes", "b1", {"notes": text}, 201)
        after = kv_tables(env)
        added_a = {k: v for t, kv in mid.items() for k, v in kv.items()
                   if k not in before.get(t, {})}
        added_b = {k: v for t, kv in after.items() for k, v in kv.items()
                   if k not in mid.get(t, {})}
        check(len(added_a) == len(added_b) == 6,
              "entries added: %d and %d for 6 stems" % (len(added_a), len(added_b)))
        check(not set(added_a) & set(added_b), "two tenants' entries share a label")
        check(not set(added_a.values()) & set(added_b.values()),
              "two tenants' entries share a value")
        for tok, want in ((ta, ["a1"]), (tb, ["b1"])):
            r = query(srv, tok, "notes", {"match": {"notes": "quartz"}})
            check(r.status == 200 and [d["id"] for d in r.json["docs"]] == want,
                  "a tenant's search: %r" % r)
        # beta's entries copied over acme's are not acme's: a search notices
        ka = [t for t in after if added_a.keys() & after[t].keys()][0]
        kb = [t for t in after if added_b.keys() & after[t].keys()][0]
        check(ka != kb, "two tenants share a key-value table")
        env.stop()
        con = sqlite3.connect(env.cloud_db(), timeout=30)
        try:
            la = sorted(added_a)
            lb = sorted(added_b)
            for i, k in enumerate(la):
                con.execute('UPDATE "%s" SET val=? WHERE key=?' % ka, (added_b[lb[i]], k))
            con.commit()
        finally:
            con.close()
        srv = env.start()
        r = query(srv, ta, "notes", {"match": {"notes": "quartz"}})
        expect_error(r, 502, "integrity_violation", "another tenant's entries swapped in")
        r = query(srv, tb, "notes", {"match": {"notes": "quartz"}})
        check(r.status == 200 and [d["id"] for d in r.json["docs"]] == ["b1"],
              "the other tenant is unaffected: %r" % r)
    finally:
        env.close()


@test
def search_leakage_and_opacity(ctx):
    need_stemmer()
    env = Env(ctx.veil, CANARY_POLICY)
    rng = random.Random(4707)
    try:
        srv = env.start()
        tok = env.tokens[("acme", "admin")]
        r = srv.request("GET", "/v1/collections/vault", token=tok)
        check(r.status == 200, "GET the policy: %r" % r)
        fields = r.json.get("fields", {})
        for f in ("notes", "nl", "raw"):
            lk = (fields.get(f) or {}).get("leakage", "")
            check("search index entr" in lk.lower(),
                  "the leakage of search field %s does not mention the search index entries:"
                  " %r" % (f, lk))
        for f in ("org", "plain"):
            lk = (fields.get(f) or {}).get("leakage", "")
            check(lk and "search" not in lk.lower(),
                  "the leakage of %s (no search) talks of search: %r" % (f, lk))
        r = srv.request("GET", "/v1/collections", token=tok)
        check(r.status == 200 and "search index entr" in r.body.decode().lower(),
              "the list of policies lacks the search statement: %r" % r)

        def cw():   # a distinctive word, 14 letters
            return "zq" + "".join(rng.choice("bcdfghjklmnpqrstvwxyz") for _ in range(12))

        needles = {}
        docs = {}
        for i in range(12):
            a, b, c = cw(), cw(), cw()
            cyr = "\u0436\u0449\u044a" + "".join(rng.choice(
                "\u0431\u0432\u0433\u0434\u0436\u0437\u043a\u043b\u043c") for _ in range(10))
            nl = "factuurzq" + cw()[2:] + "en"
            d = {"org": "acme", "notes": "The %sing of %ss, %s! %s" % (a, b, c.upper(), cyr),
                 "nl": nl, "raw": "%s %s" % (c, cyr), "plain": "x"}
            docs["v%02d" % i] = d
            for w in (a, b, c, cyr, nl):
                needles[w] = w
                needles[w + " stem"] = words_of(w, "english")[0]
                needles[w + " upper"] = w.upper()
            needles[a + "ing stem"] = words_of(a + "ing", "english")[0]
            needles[nl + " nl stem"] = words_of(nl, "dutch")[0]
        needles = {k: v for k, v in needles.items() if len(v.encode()) >= 8}
        for did, d in docs.items():
            put(srv, tok, "vault", did, d, 201)
        # replace one, delete one
        put(srv, tok, "vault", "v00", dict(docs["v00"], notes="renamed " + cw()), 200)
        delete(srv, tok, "vault", "v01")
        # Non-vacuous: the words are there to be found
        for did in ("v02", "v07", "v11"):
            d = docs[did]
            a = d["notes"].split()[1]
            for f, text in (("notes", a), ("notes", d["raw"].split()[1]), ("nl", d["nl"]),
                            ("raw", d["raw"].split()[0].upper())):
                ids, r = search_ids(srv, tok, "vault", {f: text})
                check(r is None and ids == [did], "canary search %s=%r: %r" % (f, text,
                                                                             r or ids))
        live = {f + " (live)": open(f, "rb").read() for f in env.cloud_files()}
        log = env.stop().stderr()
        check(not [w for w in needles.values() if w in log],
              "the server log holds words of search fields")
        blobs = {f: open(f, "rb").read() for f in env.cloud_files()}
        blobs.update(live)
        check(sum(len(b) for b in blobs.values()) > 4096, "the cloud files are nearly empty")
        probe = next(iter(needles.values()))
        check(len(scan({"p": probe}, {"control": b"x" + probe.encode() + b"y"})) == 1,
              "the scanner misses a planted canary")
        leaks = scan(needles, blobs)
        check(not leaks, "words in the untrusted store: %s" % "; ".join(leaks[:10]))
        kv = {t: v for t, v in kv_tables(env).items() if v}
        check(kv and sum(len(v) for v in kv.values()) >= 12 * 8,
              "the key-value space holds %r entries" % {t: len(v) for t, v in kv.items()})
        diag("opacity: %d needles, %d files, %d bytes, %d index entries"
             % (len(needles), len(blobs), sum(len(b) for b in blobs.values()),
                sum(len(v) for v in kv.values())))
    finally:
        env.close()


# ---------------------------------------------------------------------------------------
# 8. kill -9 during writes with search fields

CRASH_POLICY = """collection: crash
fields:
  gen:   { type: string, protect: [eq] }
  notes: { type: text,   protect: [search] }
  title: { type: string, protect: [search], language: none }
roles:
  w: { read: ["*"], write: true }
"""
C_FIELDS = {"notes": "english", "title": "none"}
C_VOCAB = "red green blue cyan magenta yellow black white orange purple".split()
C_DOCS = ["c%02d" % i for i in range(10)]
C_ROUNDS = 6


def c_body(did, g):
    r = random.Random(g)
    d = {"gen": "%s-g%d" % (did, g), "notes": " ".join(r.choices(C_VOCAB, k=r.randint(1, 8)))}
    if g % 3:
        d["title"] = r.choice(C_VOCAB).upper()
    return d


@test
def search_kill9_during_writes(ctx):
    need_stemmer()
    env = Env(ctx.veil, CRASH_POLICY)
    rng = random.Random(4808)
    sent = {d: set() for d in C_DOCS}
    deletes = {d: 0 for d in C_DOCS}
    lock = threading.Lock()
    counter = [0]
    checked = Counter()
    try:
        tok = env.tokens[("acme", "admin")]
        for rnd in range(C_ROUNDS):
            srv = env.start()
            stop = threading.Event()

            def writer(seed, srv=srv, stop=stop):
                r = random.Random(seed)
                while not stop.is_set():
                    d = r.choice(C_DOCS)
                    try:
                        x = r.random()
                        if x < 0.15:
                            with lock:
                                deletes[d] += 1
                            srv.request("DELETE", doc_path("crash", d), token=tok, timeout=5)
                        elif x < 0.3:
                            lines = []
                            for bd in r.sample(C_DOCS, 3):
                                with lock:
                                    counter[0] += 1
                                    g = counter[0]
                                    sent[bd].add(g)
                                lines.append(json.dumps({"id": bd, "doc": c_body(bd, g)}))
                            srv.request("POST", "/v1/collections/crash/bulk",
                                        body="\n".join(lines) + "\n", token=tok, timeout=5,
                                        headers={"Content-Type": "application/x-ndjson"})
                        else:
                            with lock:
                                counter[0] += 1
                                g = counter[0]
                                sent[d].add(g)
                            srv.request("PUT", doc_path("crash", d), c_body(d, g), token=tok,
                                        timeout=5)
                    except (OSError, http.client.HTTPException, Exception):
                        if stop.is_set():
                            return
                        time.sleep(0.01)

            ts = [threading.Thread(target=writer, args=(rnd * 10 + k,)) for k in range(3)]
            for t in ts:
                t.start()
            time.sleep(0.3 + rng.random() * 0.7)
            srv.proc.send_signal(signal.SIGKILL)
            srv.proc.wait()
            stop.set()
            for t in ts:
                t.join()
            env.server = None

            srv = env.start()
            ref = Ref(C_FIELDS)
            for d in C_DOCS:
                r = srv.request("GET", doc_path("crash", d), token=tok)
                check(r.status in (200, 404), "round %d: GET %s answered %r" % (rnd, d, r))
                if r.status == 404:
                    check(deletes[d] > 0 or not sent[d],
                          "round %d: %s is gone but was never deleted" % (rnd, d))
                    continue
                doc = r.json["doc"]
                g = int(str(doc.get("gen", "")).rpartition("-g")[2] or -1)
                check(g in sent[d] and doc == c_body(d, g),
                      "round %d: %s reads back torn or unknown: %r" % (rnd, d, doc))
                ref.put(d, doc)
            # searches agree with the documents as they read back: no stray results,
            # none missing, no integrity alarm
            qs = [{"notes": w} for w in C_VOCAB] + [{"title": w} for w in C_VOCAB]
            qs += [{"notes": {"any": "red blue"}}, {"notes": "green yellow"},
                   {"notes": "black", "title": {"any": "white orange purple"}}]
            for m in qs:
                want = ref.search(m)
                got, r = search_ids(srv, tok, "crash", m, what="round %d" % rnd)
                check(r is None, "round %d: search %s after the kill answered %r"
                      % (rnd, json.dumps(m), r))
                compare_ranked("round %d: %s" % (rnd, json.dumps(m)), got, want)
                checked["hits"] += len(got)
                ra = aggregate(srv, tok, "crash", {"match": m,
                                                   "metrics": {"n": {"count": "*"}}})
                check(ra.status == 200 and ra.json["groups"] == [{"key": {}, "n": len(want)}],
                      "round %d: aggregate %s: %r, want %d" % (rnd, json.dumps(m), ra,
                                                               len(want)))
            check("breach_suspected" not in srv.stderr(),
                  "round %d: a false integrity alarm:\n%s" % (rnd, srv.stderr()[-2000:]))
            checked["docs"] += len(ref.docs)
            env.stop()
        check(counter[0] >= C_ROUNDS * 5, "too few writes were sent: %d" % counter[0])
        check(checked["hits"] > 0, "the searches found nothing at all")
        diag("%d kill -9 rounds, %d puts sent, %d live docs checked, %d hits compared"
             % (C_ROUNDS, counter[0], checked["docs"], checked["hits"]))
    finally:
        env.close()
