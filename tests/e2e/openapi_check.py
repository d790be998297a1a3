#!/usr/bin/python3
"""openapi_check.py: validates docs/openapi.yaml with Debian's tools, and real answers with it.

Run by Debian's own Python (/usr/bin/python3), which has python3-yaml, python3-jsonschema
and, through dpkg, the OpenAPI schemas of the openapi-specification package (all in the
test step of scripts/deps.sh):

    /usr/bin/python3 tests/e2e/openapi_check.py docs/openapi.yaml              # the document
    /usr/bin/python3 tests/e2e/openapi_check.py docs/openapi.yaml --routes     # its routes
    /usr/bin/python3 tests/e2e/openapi_check.py docs/openapi.yaml --answers F  # answers

The document is checked against the newest OpenAPI schema the package ships. Debian 12's
openapi-specification (3.1.0-1) ships the 3.0 schema only; then the document, which keeps
to what OpenAPI 3.0 and 3.1 have in common, is checked against it with its version
pattern widened to 3.1, and every Schema Object in it is checked against JSON Schema
2020-12, the dialect of OpenAPI 3.1. Every $ref must resolve, and every operation that
needs a token must document 401 and 429 (with Retry-After).

--answers F reads a JSON list of answers the server really gave, each {"path", "method",
"status", "content_type", "headers", "body"}, and checks that each status is documented for
its operation and that each JSON body (each NDJSON line of a bulk answer) fits the schema
documented for it. Prints one line per problem; exits 1 if there is any.
"""

import importlib.metadata
import json
import re
import subprocess
import sys
import warnings

import jsonschema
import yaml

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def fail(problems, msg):
    problems.append(msg)


def debian_schema():
    """The path of the newest OpenAPI JSON schema openapi-specification ships, and its
    version ("3.0", "3.1")."""
    out = subprocess.run(["dpkg", "-L", "openapi-specification"], capture_output=True,
                         text=True, check=True).stdout.split()
    found = []
    for p in out:
        m = re.search(r"/schemas/v(3\.\d+)/schema\.json$", p)
        if m:
            found.append((m.group(1), p))
    if not found:
        raise SystemExit("openapi-specification ships no OpenAPI 3 schema")
    found.sort()
    return found[-1][1], found[-1][0]


def walk_schemas(node, where, out):
    """Every Schema Object of the document, with where it is."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "schema" and isinstance(v, dict):
                out.append((where + "/schema", v))
            elif k == "schemas" and where.endswith("/components") and isinstance(v, dict):
                for name, s in v.items():
                    out.append((where + "/schemas/" + name, s))
            else:
                walk_schemas(v, where + "/" + str(k), out)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            walk_schemas(v, "%s/%d" % (where, i), out)


def resolve(doc, ref):
    if not ref.startswith("#/"):
        return None
    node = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def all_refs(node, out):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                out.append(v)
            else:
                all_refs(v, out)
    elif isinstance(node, list):
        for v in node:
            all_refs(v, out)


def deref(doc, node):
    while isinstance(node, dict) and "$ref" in node:
        node = resolve(doc, node["$ref"])
    return node


def check_document(doc, problems):
    path, version = debian_schema()
    with open(path, encoding="utf-8") as f:
        meta = json.load(f)
    if not str(doc.get("openapi", "")).startswith("3.1."):
        fail(problems, "openapi is %r, not 3.1.x" % doc.get("openapi"))
    if version == "3.0":
        # The 3.0 schema with its version pattern widened: the document keeps to what 3.0
        # and 3.1 share, so this checks its structure; its schemas are checked below
        # against 2020-12, 3.1's dialect.
        meta["properties"]["openapi"]["pattern"] = r"^3\.[01]\.\d+(-.+)?$"
        validator = jsonschema.Draft4Validator(meta)
    else:
        validator = jsonschema.Draft202012Validator(meta)
    for e in sorted(validator.iter_errors(doc), key=lambda e: list(e.path)):
        fail(problems, "OpenAPI %s schema: at /%s: %s" % (
            version, "/".join(str(p) for p in e.path), e.message[:300]))
    schemas = []
    walk_schemas(doc, "#", schemas)
    if not schemas:
        fail(problems, "no Schema Object found")
    for where, s in schemas:
        try:
            jsonschema.Draft202012Validator.check_schema(s)
        except jsonschema.exceptions.SchemaError as e:
            fail(problems, "%s is not a JSON Schema 2020-12 schema: %s" % (where, e.message))
    refs = []
    all_refs(doc, refs)
    for r in refs:
        if resolve(doc, r) is None:
            fail(problems, "$ref %s does not resolve" % r)
    # Every operation that needs a token documents 401 and 429 with Retry-After.
    for p, item in doc.get("paths", {}).items():
        for m in METHODS:
            op = item.get(m)
            if op is None:
                continue
            sec = op.get("security", doc.get("security"))
            if not sec:
                continue
            codes = op.get("responses", {})
            for want in ("401", "429"):
                if want not in codes:
                    fail(problems, "%s %s needs a token but documents no %s" % (
                        m.upper(), p, want))
            r429 = deref(doc, codes.get("429", {})) or {}
            if "Retry-After" not in r429.get("headers", {}):
                fail(problems, "%s %s: its 429 has no Retry-After header" % (m.upper(), p))
    return version


def routes(doc):
    return {p: sorted(m.upper() for m in METHODS if m in item)
            for p, item in doc.get("paths", {}).items()}


def match_path(doc, path):
    """The documented path template that `path` (raw, percent-encoded) is an instance of."""
    segs = path.split("?")[0].split("/")
    for tmpl in doc.get("paths", {}):
        t = tmpl.split("/")
        if len(t) == len(segs) and all(a == b or (a.startswith("{") and a.endswith("}") and b)
                                      for a, b in zip(t, segs)):
            return tmpl
    return None


def check_answers(doc, answers, problems):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        resolver = jsonschema.RefResolver.from_schema(doc)

    def validate(instance, schema, what):
        v = jsonschema.Draft202012Validator(schema, resolver=resolver)
        for e in v.iter_errors(instance):
            fail(problems, "%s: at /%s: %s" % (what, "/".join(str(p) for p in e.path),
                                                e.message[:300]))

    for a in answers:
        what = "%s %s -> %d" % (a["method"], a["path"], a["status"])
        tmpl = match_path(doc, a["path"])
        if tmpl is None:
            fail(problems, "%s: the path is not documented" % what)
            continue
        op = doc["paths"][tmpl].get(a["method"].lower())
        if op is None:
            fail(problems, "%s: the method is not documented for %s" % (what, tmpl))
            continue
        resp = op.get("responses", {}).get(str(a["status"]))
        if resp is None:
            fail(problems, "%s: status %d is not documented for %s %s" % (
                what, a["status"], a["method"], tmpl))
            continue
        resp = deref(doc, resp)
        hdrs = {k.lower(): v for k, v in a.get("headers", {}).items()}
        for h in resp.get("headers", {}):
            if h.lower() not in hdrs:
                fail(problems, "%s: the documented header %s is missing" % (what, h))
        content = resp.get("content", {})
        ctype = (a.get("content_type") or "").split(";")[0].strip()
        if content and ctype not in content:
            fail(problems, "%s: Content-Type %r is not one of %s" % (
                what, ctype, sorted(content)))
            continue
        media = content.get(ctype, {})
        if ctype == "application/json" and "schema" in media:
            validate(a["body"], media["schema"], what)
        elif ctype == "application/x-ndjson" and tmpl.endswith("/bulk"):
            for i, line in enumerate(a["body"] or []):
                validate(line, {"$ref": "#/components/schemas/BulkLine"},
                         "%s, line %d" % (what, i + 1))


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    with open(sys.argv[1], encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    if "--routes" in sys.argv:
        print(json.dumps(routes(doc)))
        return 0
    problems = []
    version = check_document(doc, problems)
    if "--answers" in sys.argv:
        with open(sys.argv[sys.argv.index("--answers") + 1], encoding="utf-8") as f:
            check_answers(doc, json.load(f), problems)
    for p in problems:
        print("problem: " + p)
    print("checked against the OpenAPI %s schema of openapi-specification and JSON Schema "
          "2020-12 (jsonschema %s): %d problem%s" % (
              version, importlib.metadata.version("jsonschema"), len(problems),
              "" if len(problems) == 1 else "s"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
