/*
 * policy.c: collection policies (README "Policies"), from text to checked structs and back.
 *
 * A policy is the security contract of a collection, so this file is strict: every key it
 * does not know is an error that names it, every cross-rule (a tactic that does not fit a
 * type, plain with protect, a role naming an undeclared field, ...) is checked before a
 * policy exists, and each message says "line N: field PATH: ..." or "line N: role R: ...".
 * A policy that parses is whole and consistent; nothing downstream re-checks it.
 *
 * It also writes the two JSON forms of a policy: the canonical text (sorted keys, defaults
 * spelled out), which decides whether two policies are the same and parses back to the same
 * policy, and the description of GET /v1/collections/{c}, which states per field what the
 * untrusted store learns (the README's table of tactics, in words, for the field's actual tactics).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy/policy.h"
#include "policy/yaml.h"

#define VL_POLICY_MAX_FIELDS 1024
#define VL_POLICY_MAX_ROLES 256
#define VL_PART_MAX 64
#define VL_ROLE_NAME_MAX 64
#define VL_GROUP_SIZE_MAX 1000000
#define VL_SUM_BITS_MIN 2048
#define VL_SUM_BITS_MAX 4096
#define VL_SUM_BITS_DEFAULT 2048
#define VL_SCALE_MAX 18
#define VL_TAC_AEAD_SEEN (1u << 8) /* local: `aead` listed, to catch duplicates */

/* Differential privacy: the defaults and what a policy may ask for. */
#define DP_EPS_DEFAULT (VL_DP_EPS_UNIT / 4) /* 0.25: four answers a day */
#define DP_EPS_MAX (10 * VL_DP_EPS_UNIT)
#define DP_DELTA_DEFAULT 1000000000000ull /* 1e-6 */
#define DP_DELTA_MIN 1000ull              /* 1e-15 */
#define DP_DELTA_MAX 1000000000000000ull  /* 1e-3 */
#define DP_BUDGET_DEFAULT (1 * VL_DP_EPS_UNIT)
#define DP_BUDGET_MAX (1000000 * VL_DP_EPS_UNIT)
#define DP_ROLE_BUDGET_FACTOR 2 /* role_budget defaults to twice the token's */

static const char *const type_names[] = {
    [VL_T_STRING] = "string",   [VL_T_TEXT] = "text",         [VL_T_INTEGER] = "integer",
    [VL_T_DECIMAL] = "decimal", [VL_T_DATE] = "date",         [VL_T_DATETIME] = "datetime",
    [VL_T_BOOLEAN] = "boolean", [VL_T_JSON] = "json",
};
#define NTYPES (sizeof(type_names) / sizeof(type_names[0]))

/* Which tactics each type admits (aead always, and none besides for json). */
static const unsigned type_tactics[] = {
    [VL_T_STRING] = VL_TAC_EQ | VL_TAC_SEARCH,
    [VL_T_TEXT] = VL_TAC_EQ | VL_TAC_SEARCH,
    [VL_T_INTEGER] = VL_TAC_EQ | VL_TAC_RANGE | VL_TAC_SUM,
    [VL_T_DECIMAL] = VL_TAC_EQ | VL_TAC_RANGE | VL_TAC_SUM,
    [VL_T_DATE] = VL_TAC_EQ | VL_TAC_RANGE,
    [VL_T_DATETIME] = VL_TAC_EQ | VL_TAC_RANGE,
    [VL_T_BOOLEAN] = VL_TAC_EQ,
    [VL_T_JSON] = 0,
};

static const struct {
    const char *name;
    unsigned bit;
    const char *types; /* for messages */
} tactic_table[] = {
    {"eq", VL_TAC_EQ, "string, text, integer, decimal, date, datetime and boolean"},
    {"range", VL_TAC_RANGE, "integer, decimal, date and datetime"},
    {"search", VL_TAC_SEARCH, "string and text"},
    {"sum", VL_TAC_SUM, "integer and decimal"},
};
#define NTACTICS (sizeof(tactic_table) / sizeof(tactic_table[0]))

static const char *const mask_names[] = {
    [VL_MASK_NONE] = "none",     [VL_MASK_LAST4] = "last4", [VL_MASK_FIRST1] = "first1",
    [VL_MASK_REDACT] = "redact", [VL_MASK_HASH] = "hash",
};
#define NMASKS (sizeof(mask_names) / sizeof(mask_names[0]))

static const char *const languages[] = {"english", "dutch", "french", "german", "none"};
#define NLANGUAGES (sizeof(languages) / sizeof(languages[0]))

/* ---- messages ---- */

/* "line N: field PATH: ...", "line N: role R: ..." or "line N: ...". st->field is the
 * field path, "roles.R" for a role, or "" for the policy as a whole. */
static veil_err fail(veil_status *st, int line, const char *kind, const char *name,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static veil_err fail(veil_status *st, int line, const char *kind, const char *name,
                     const char *fmt, ...)
{
    char msg[256];
    char field[VL_NAME_MAX + 8];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    field[0] = '\0';
    if (kind != NULL && strcmp(kind, "role") == 0) {
        snprintf(field, sizeof(field), "roles.%.64s", name);
    } else if (kind != NULL) {
        snprintf(field, sizeof(field), "%.128s", name);
    }
    if (kind == NULL) {
        return vl_status_set(st, VEIL_ERR_INVALID_POLICY, NULL, "line %d: %s", line, msg);
    }
    return vl_status_set(st, VEIL_ERR_INVALID_POLICY, field, "line %d: %s %.128s: %s", line,
                         kind, name, msg);
}

static veil_err oom(veil_status *st)
{
    return vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
}

/* ---- small readers of tree nodes ---- */

static bool name_chars_ok(const char *s, size_t min, size_t max)
{
    size_t n = strlen(s);
    if (n < min || n > max) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

static bool is_scalar(const struct vl_ynode *n)
{
    return n != NULL && n->kind == VL_YAML_SCALAR;
}

/* A plain `true` or `false` (JSON's literals are plain scalars too). */
static int read_bool(const struct vl_ynode *n, bool *out)
{
    if (!is_scalar(n) || !n->plain) {
        return -1;
    }
    if (strcmp(n->str, "true") == 0) {
        *out = true;
        return 0;
    }
    if (strcmp(n->str, "false") == 0) {
        *out = false;
        return 0;
    }
    return -1;
}

/* A plain decimal integer in [min, max]. */
static int read_uint(const struct vl_ynode *n, unsigned long min, unsigned long max,
                     unsigned long *out)
{
    unsigned long v = 0;
    if (!is_scalar(n) || !n->plain || n->len == 0 || n->len > 9) {
        return -1;
    }
    for (size_t i = 0; i < n->len; i++) {
        if (n->str[i] < '0' || n->str[i] > '9') {
            return -1;
        }
        v = v * 10 + (unsigned long)(n->str[i] - '0');
    }
    if (v < min || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

static int lookup(const char *const *names, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++) {
        if (names[i] != NULL && strcmp(names[i], s) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static void free_list(char **list, size_t n)
{
    for (size_t i = 0; list != NULL && i < n; i++) {
        free(list[i]);
    }
    free(list);
}

/* ---- fields ---- */

struct pctx {
    veil_status *st;
    const char *const *stores;
    size_t nstores;
    struct vl_policy *p;
};

static void field_clear(struct vl_field *f)
{
    free(f->path);
    for (size_t i = 0; i < f->nparts; i++) {
        free(f->parts[i]);
    }
    free(f->store);
    free(f->language);
    memset(f, 0, sizeof(*f));
}

static veil_err parse_path(struct pctx *c, const char *path, int line, struct vl_field *f)
{
    veil_err rc = VEIL_OK;
    const char *s = path;
    size_t len = strlen(path);

    if (len == 0 || len > VL_NAME_MAX) {
        rc = fail(c->st, line, "field", path, "a path is 1 to %d characters", VL_NAME_MAX);
        goto out;
    }
    f->path = strdup(path);
    if (f->path == NULL) {
        rc = oom(c->st);
        goto out;
    }
    for (;;) {
        const char *dot = strchr(s, '.');
        size_t n = dot != NULL ? (size_t)(dot - s) : strlen(s);
        char part[VL_PART_MAX + 1];
        if (f->nparts == VL_PATH_MAX_PARTS) {
            rc = fail(c->st, line, "field", path, "a path has at most %d parts",
                      VL_PATH_MAX_PARTS);
            goto out;
        }
        if (n == 0 || n > VL_PART_MAX) {
            rc = fail(c->st, line, "field", path,
                      "each dot-separated part is 1 to %d characters", VL_PART_MAX);
            goto out;
        }
        memcpy(part, s, n);
        part[n] = '\0';
        if (!name_chars_ok(part, 1, VL_PART_MAX)) {
            rc = fail(c->st, line, "field", path,
                      "path parts use only letters, digits, '_' and '-'");
            goto out;
        }
        f->parts[f->nparts] = strdup(part);
        if (f->parts[f->nparts] == NULL) {
            rc = oom(c->st);
            goto out;
        }
        f->nparts++;
        if (dot == NULL) {
            break;
        }
        s = dot + 1;
    }
out:
    return rc;
}

static veil_err parse_protect(struct pctx *c, const struct vl_field *f,
                              const struct vl_ynode *n, unsigned *out)
{
    veil_err rc = VEIL_OK;
    unsigned seen = 0;

    if (n->kind != VL_YAML_SEQ) {
        rc = fail(c->st, n->line, "field", f->path,
                  "protect must be a list, e.g. [eq] or [sum, range]");
        goto out;
    }
    for (size_t i = 0; i < n->n; i++) {
        const struct vl_ynode *t = n->kids[i];
        unsigned bit = 0;
        if (is_scalar(t) && strcmp(t->str, "aead") == 0) {
            bit = VL_TAC_AEAD_SEEN;
        }
        for (size_t k = 0; bit == 0 && is_scalar(t) && k < NTACTICS; k++) {
            if (strcmp(t->str, tactic_table[k].name) == 0) {
                bit = tactic_table[k].bit;
            }
        }
        if (bit == 0) {
            rc = fail(c->st, t->line, "field", f->path,
                      "protect: unknown tactic%s%.32s%s (use aead, eq, range, search, sum)",
                      is_scalar(t) ? " '" : "", is_scalar(t) ? t->str : "",
                      is_scalar(t) ? "'" : "");
            goto out;
        }
        if (seen & bit) {
            rc = fail(c->st, t->line, "field", f->path, "protect: '%s' is listed twice",
                      t->str);
            goto out;
        }
        seen |= bit;
    }
    *out = seen;
out:
    return rc;
}

static veil_err parse_sum(struct pctx *c, struct vl_field *f, const struct vl_ynode *n)
{
    veil_err rc = VEIL_OK;
    const struct vl_ynode *bits = NULL;

    if (n->kind != VL_YAML_MAP) {
        rc = fail(c->st, n->line, "field", f->path,
                  "sum must be a mapping such as {scheme: paillier, bits: 3072}");
        goto out;
    }
    for (size_t i = 0; i < n->n; i++) {
        const char *k = n->keys[i];
        const struct vl_ynode *v = n->kids[i];
        if (strcmp(k, "scheme") == 0) {
            if (is_scalar(v) && strcmp(v->str, "ashe") == 0) {
                f->sum_scheme = VL_SUM_ASHE;
            } else if (is_scalar(v) && strcmp(v->str, "paillier") == 0) {
                f->sum_scheme = VL_SUM_PAILLIER;
            } else {
                rc = fail(c->st, v->line, "field", f->path,
                          "sum.scheme must be ashe or paillier");
                goto out;
            }
        } else if (strcmp(k, "bits") == 0) {
            unsigned long b;
            if (read_uint(v, VL_SUM_BITS_MIN, VL_SUM_BITS_MAX, &b) != 0 || b % 1024 != 0) {
                rc = fail(c->st, v->line, "field", f->path,
                          "sum.bits must be 2048, 3072 or 4096");
                goto out;
            }
            f->sum_bits = (unsigned)b;
            bits = v;
        } else {
            rc = fail(c->st, n->key_lines[i], "field", f->path,
                      "sum: unknown key '%.64s' (known: scheme, bits)", k);
            goto out;
        }
    }
    if (bits != NULL && f->sum_scheme != VL_SUM_PAILLIER) {
        rc = fail(c->st, bits->line, "field", f->path,
                  "sum.bits applies only to scheme paillier (ashe has no modulus)");
        goto out;
    }
out:
    return rc;
}

/* Where each key of a field spec was, for cross-checks that point at the right line. */
struct field_lines {
    int type, scale, protect, plain, mask, store, language, sum, oob;
    const struct vl_ynode *bounds;
};

/* A bound, in the field's units: a decimal with at most `scale` digits after the point
 * (an integer field: none), within VL_BOUND_MAX. */
static int read_bound(const struct vl_field *f, const struct vl_ynode *n, int64_t *out)
{
    if (!is_scalar(n) || n->len == 0 || strlen(n->str) != n->len) {
        return -1;
    }
    json_t *j = json_string(n->str);
    int64_t u = 0;
    int rc = j != NULL ? vl_decimal_parse(j, f->type == VL_T_DECIMAL ? f->scale : 0, &u) : -1;
    json_decref(j);
    if (rc != 0 || u > VL_BOUND_MAX || u < -VL_BOUND_MAX) {
        return -1;
    }
    *out = u;
    return 0;
}

static veil_err parse_bounds(struct pctx *c, struct vl_field *f, const struct vl_ynode *n)
{
    if (n->kind != VL_YAML_SEQ || n->n != 2 || read_bound(f, n->kids[0], &f->lo) != 0 ||
        read_bound(f, n->kids[1], &f->hi) != 0) {
        return fail(c->st, n->line, "field", f->path,
                    "bounds must be [lo, hi], two numbers of the field's type (at most %d "
                    "digits after the point, magnitude below 2^62 units)",
                    f->type == VL_T_DECIMAL ? f->scale : 0);
    }
    if (f->lo >= f->hi) {
        return fail(c->st, n->line, "field", f->path, "bounds: lo must be below hi");
    }
    f->bounded = true;
    return VEIL_OK;
}

static veil_err check_field(struct pctx *c, struct vl_field *f, const struct field_lines *ln)
{
    veil_err rc = VEIL_OK;

    if (ln->type == 0) {
        rc = fail(c->st, f->line, "field", f->path,
                  "type is required (string, text, integer, decimal, date, datetime, "
                  "boolean or json)");
        goto out;
    }
    if (f->type == VL_T_DECIMAL && ln->scale == 0) {
        rc = fail(c->st, f->line, "field", f->path,
                  "a decimal needs scale (digits after the point, 0 to %d)", VL_SCALE_MAX);
        goto out;
    }
    if (f->type != VL_T_DECIMAL && ln->scale != 0) {
        rc = fail(c->st, ln->scale, "field", f->path, "scale applies only to type decimal");
        goto out;
    }
    for (size_t k = 0; k < NTACTICS; k++) {
        if ((f->tactics & tactic_table[k].bit) && !(type_tactics[f->type] & tactic_table[k].bit)) {
            if (f->type == VL_T_JSON) {
                rc = fail(c->st, ln->protect, "field", f->path,
                          "protect: type json is opaque and allows only aead (or plain)");
            } else {
                rc = fail(c->st, ln->protect, "field", f->path,
                          "protect: %s does not apply to type %s (it works on %s)",
                          tactic_table[k].name, type_names[f->type], tactic_table[k].types);
            }
            goto out;
        }
    }
    if (f->trusted && f->tactics != 0) {
        rc = fail(c->st, ln->store, "field", f->path,
                  "a field kept in trusted state cannot be indexed in an untrusted store");
        goto out;
    }
    if (ln->language != 0 && !(f->tactics & VL_TAC_SEARCH)) {
        rc = fail(c->st, ln->language, "field", f->path,
                  "language applies only with protect: [search]");
        goto out;
    }
    if (ln->sum != 0 && !(f->tactics & VL_TAC_SUM)) {
        rc = fail(c->st, ln->sum, "field", f->path, "sum applies only with protect: [sum]");
        goto out;
    }
    if (ln->bounds != NULL && !(f->tactics & VL_TAC_SUM)) {
        rc = fail(c->st, ln->bounds->line, "field", f->path,
                  "bounds apply only with protect: [sum] (they bound what sums add up)");
        goto out;
    }
    if (ln->bounds != NULL && (rc = parse_bounds(c, f, ln->bounds)) != VEIL_OK) {
        goto out;
    }
    if (ln->oob != 0 && ln->bounds == NULL) {
        rc = fail(c->st, ln->oob, "field", f->path, "out_of_bounds applies only with bounds");
        goto out;
    }
    if ((f->tactics & VL_TAC_SEARCH) && f->language == NULL) {
        f->language = strdup("english");
        if (f->language == NULL) {
            rc = oom(c->st);
            goto out;
        }
    }
out:
    return rc;
}

static veil_err parse_field(struct pctx *c, const char *path, int line,
                            const struct vl_ynode *spec, struct vl_field *f)
{
    veil_err rc = VEIL_OK;
    struct field_lines ln = {0};
    unsigned listed = 0;

    memset(f, 0, sizeof(*f));
    f->line = line;
    f->sum_scheme = VL_SUM_ASHE;
    f->sum_bits = VL_SUM_BITS_DEFAULT;
    rc = parse_path(c, path, line, f);
    if (rc != VEIL_OK) {
        goto out;
    }
    if (spec->kind != VL_YAML_MAP) {
        rc = fail(c->st, spec->line, "field", path,
                  "a field is a mapping such as { type: string, protect: [eq] }");
        goto out;
    }
    for (size_t i = 0; i < spec->n; i++) {
        const char *k = spec->keys[i];
        const struct vl_ynode *v = spec->kids[i];
        int kl = spec->key_lines[i];
        if (strcmp(k, "type") == 0) {
            int t = is_scalar(v) ? lookup(type_names, NTYPES, v->str) : -1;
            if (t < 0) {
                rc = fail(c->st, v->line, "field", path,
                          "type must be string, text, integer, decimal, date, datetime, "
                          "boolean or json");
                goto out;
            }
            f->type = (enum vl_type)t;
            ln.type = kl;
        } else if (strcmp(k, "scale") == 0) {
            unsigned long s;
            if (read_uint(v, 0, VL_SCALE_MAX, &s) != 0) {
                rc = fail(c->st, v->line, "field", path,
                          "scale must be an integer from 0 to %d", VL_SCALE_MAX);
                goto out;
            }
            f->scale = (int)s;
            ln.scale = kl;
        } else if (strcmp(k, "protect") == 0) {
            rc = parse_protect(c, f, v, &listed);
            if (rc != VEIL_OK) {
                goto out;
            }
            f->tactics = listed & ~VL_TAC_AEAD_SEEN;
            ln.protect = listed != 0 ? kl : 0;
        } else if (strcmp(k, "plain") == 0) {
            if (read_bool(v, &f->plain) != 0) {
                rc = fail(c->st, v->line, "field", path, "plain must be true or false");
                goto out;
            }
            ln.plain = kl;
        } else if (strcmp(k, "mask") == 0) {
            int m = is_scalar(v) ? lookup(mask_names, NMASKS, v->str) : -1;
            if (m <= 0) {
                rc = fail(c->st, v->line, "field", path,
                          "mask must be last4, first1, redact or hash");
                goto out;
            }
            f->mask = (enum vl_mask)m;
            ln.mask = kl;
        } else if (strcmp(k, "store") == 0) {
            if (!is_scalar(v)) {
                rc = fail(c->st, v->line, "field", path, "store must be a store name");
                goto out;
            }
            if (strcmp(v->str, "trusted") == 0) {
                f->trusted = true;
            } else if (c->stores == NULL || lookup(c->stores, c->nstores, v->str) < 0) {
                rc = fail(c->st, v->line, "field", path,
                          "store '%.64s' is not a store of veil.yaml (nor 'trusted')",
                          v->str);
                goto out;
            }
            f->store = strdup(v->str);
            if (f->store == NULL) {
                rc = oom(c->st);
                goto out;
            }
            ln.store = kl;
        } else if (strcmp(k, "language") == 0) {
            if (!is_scalar(v) || lookup(languages, NLANGUAGES, v->str) < 0) {
                rc = fail(c->st, v->line, "field", path,
                          "language must be english, dutch, french, german or none");
                goto out;
            }
            f->language = strdup(v->str);
            if (f->language == NULL) {
                rc = oom(c->st);
                goto out;
            }
            ln.language = kl;
        } else if (strcmp(k, "sum") == 0) {
            rc = parse_sum(c, f, v);
            if (rc != VEIL_OK) {
                goto out;
            }
            ln.sum = kl;
        } else if (strcmp(k, "bounds") == 0) {
            ln.bounds = v; /* read once type and scale are known */
        } else if (strcmp(k, "out_of_bounds") == 0) {
            if (!is_scalar(v) || (strcmp(v->str, "reject") != 0 && strcmp(v->str, "clamp") != 0)) {
                rc = fail(c->st, v->line, "field", path, "out_of_bounds must be reject or clamp");
                goto out;
            }
            f->clamp = strcmp(v->str, "clamp") == 0;
            ln.oob = kl;
        } else {
            rc = fail(c->st, kl, "field", path,
                      "unknown key '%.64s' (known: type, scale, protect, plain, mask, store, "
                      "language, sum, bounds, out_of_bounds)",
                      k);
            goto out;
        }
    }
    if (f->plain && listed != 0) {
        rc = fail(c->st, ln.protect, "field", path,
                  "plain fields are stored in clear and need no protect");
        goto out;
    }
    rc = check_field(c, f, &ln);
out:
    return rc;
}

static veil_err parse_fields(struct pctx *c, const struct vl_ynode *n)
{
    veil_err rc = VEIL_OK;
    struct vl_policy *p = c->p;

    if (n->kind != VL_YAML_MAP) {
        rc = fail(c->st, n->line, NULL, NULL, "fields must be a mapping of path to spec");
        goto out;
    }
    if (n->n > VL_POLICY_MAX_FIELDS) {
        rc = fail(c->st, n->line, NULL, NULL, "more than %d fields", VL_POLICY_MAX_FIELDS);
        goto out;
    }
    p->fields = calloc(n->n > 0 ? n->n : 1, sizeof(*p->fields));
    if (p->fields == NULL) {
        rc = oom(c->st);
        goto out;
    }
    for (size_t i = 0; i < n->n; i++) {
        rc = parse_field(c, n->keys[i], n->key_lines[i], n->kids[i], &p->fields[i]);
        p->nfields = i + 1; /* so that vl_policy_free clears a half-parsed field too */
        if (rc != VEIL_OK) {
            goto out;
        }
    }
    /* A path that is a prefix of another would make one value both a leaf and an object. */
    for (size_t i = 0; i < p->nfields; i++) {
        for (size_t j = 0; j < p->nfields; j++) {
            const struct vl_field *a = &p->fields[i], *b = &p->fields[j];
            size_t la = strlen(a->path);
            if (i != j && strncmp(a->path, b->path, la) == 0 && b->path[la] == '.') {
                rc = fail(c->st, b->line, "field", b->path,
                          "'%s' is declared as a field too; a path cannot be both a value "
                          "and an object",
                          a->path);
                goto out;
            }
        }
    }
out:
    return rc;
}

/* ---- roles ---- */

static void role_clear(struct vl_role *r)
{
    free(r->name);
    free_list(r->read, r->nread);
    free_list(r->masked, r->nmasked);
    free_list(r->aggregate, r->naggregate);
    free_list(r->group_by, r->ngroup_by);
    memset(r, 0, sizeof(*r));
}

static bool in_list(char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i], s) == 0) {
            return true;
        }
    }
    return false;
}

/* Reads a list of declared field paths into *out. `need` is a tactic bit each field must
 * have (0: none); `star` allows ["*"], which sets *all instead. */
static veil_err parse_field_list(struct pctx *c, const char *role, const char *key,
                                 const struct vl_ynode *n, unsigned need, bool star,
                                 bool *all, char ***out, size_t *nout)
{
    veil_err rc = VEIL_OK;
    char **list = NULL;
    size_t cnt = 0;

    if (n->kind != VL_YAML_SEQ) {
        rc = fail(c->st, n->line, "role", role, "%s must be a list of field paths%s", key,
                  star ? " or [\"*\"]" : "");
        goto out;
    }
    list = calloc(n->n > 0 ? n->n : 1, sizeof(*list));
    if (list == NULL) {
        rc = oom(c->st);
        goto out;
    }
    for (size_t i = 0; i < n->n; i++) {
        const struct vl_ynode *v = n->kids[i];
        const struct vl_field *f;
        if (!is_scalar(v)) {
            rc = fail(c->st, v->line, "role", role, "%s: items must be field paths", key);
            goto out;
        }
        if (star && strcmp(v->str, "*") == 0) {
            if (n->n != 1) {
                rc = fail(c->st, v->line, "role", role, "%s: \"*\" must stand alone", key);
                goto out;
            }
            *all = true;
            continue;
        }
        f = vl_policy_field(c->p, v->str);
        if (f == NULL) {
            rc = fail(c->st, v->line, "role", role, "%s: '%.128s' is not a declared field",
                      key, v->str);
            goto out;
        }
        if (in_list(list, cnt, v->str)) {
            rc = fail(c->st, v->line, "role", role, "%s: '%.128s' is listed twice", key,
                      v->str);
            goto out;
        }
        if (need == VL_TAC_SUM && !(f->tactics & VL_TAC_SUM)) {
            rc = fail(c->st, v->line, "role", role,
                      "aggregate: field '%.128s' has no protect: [sum]", v->str);
            goto out;
        }
        if (need == VL_TAC_EQ && !(f->tactics & VL_TAC_EQ)) {
            rc = fail(c->st, v->line, "role", role,
                      "group_by: field '%.128s' has no protect: [eq]", v->str);
            goto out;
        }
        list[cnt] = strdup(v->str);
        if (list[cnt] == NULL) {
            rc = oom(c->st);
            goto out;
        }
        cnt++;
    }
out:
    if (rc == VEIL_OK) {
        *out = list;
        *nout = cnt;
    } else {
        free_list(list, cnt);
    }
    return rc;
}

static const char *const period_names[] = {
    [VL_PERIOD_HOUR] = "hour", [VL_PERIOD_DAY] = "day", [VL_PERIOD_WEEK] = "week",
    [VL_PERIOD_MONTH] = "month",
};
#define NPERIODS (sizeof(period_names) / sizeof(period_names[0]))

/* An epsilon or a budget: a positive decimal with at most 6 digits after the point, in
 * micro-units, up to max. */
static int read_micro(const struct vl_ynode *n, uint64_t max, uint64_t *out)
{
    if (!is_scalar(n) || n->len == 0 || strlen(n->str) != n->len) {
        return -1;
    }
    json_t *j = json_string(n->str);
    int64_t u = 0;
    int rc = j != NULL ? vl_decimal_parse(j, 6, &u) : -1;
    json_decref(j);
    if (rc != 0 || u <= 0 || (uint64_t)u > max) {
        return -1;
    }
    *out = (uint64_t)u;
    return 0;
}

/* A delta: a number such as 1e-6 or 0.000001, in units of 1e-18. */
static int read_delta(const struct vl_ynode *n, uint64_t *out)
{
    if (!is_scalar(n) || n->len == 0 || n->len > 32 || strlen(n->str) != n->len ||
        !((n->str[0] >= '0' && n->str[0] <= '9') || n->str[0] == '.')) {
        return -1;
    }
    char *end = NULL;
    double d = strtod(n->str, &end);
    if (end == NULL || *end != '\0' || !isfinite(d)) {
        return -1;
    }
    double u = nearbyint(d * (double)VL_DP_DELTA_UNIT);
    if (!(u >= (double)DP_DELTA_MIN && u <= (double)DP_DELTA_MAX)) {
        return -1;
    }
    *out = (uint64_t)u;
    return 0;
}

/* `privacy: exact`, or `privacy: {epsilon, delta, budget, role_budget, period}`. */
static veil_err parse_privacy(struct pctx *c, const char *name, const struct vl_ynode *n,
                              struct vl_role *r, bool *given_role_budget)
{
    struct vl_dp *d = &r->privacy;
    if (is_scalar(n) && strcmp(n->str, "exact") == 0) {
        r->exact = true;
        return VEIL_OK;
    }
    if (n->kind != VL_YAML_MAP) {
        return fail(c->st, n->line, "role", name,
                    "privacy must be exact, or a mapping such as {epsilon: 1, budget: 10, "
                    "period: day}");
    }
    r->dp = true;
    for (size_t i = 0; i < n->n; i++) {
        const char *k = n->keys[i];
        const struct vl_ynode *v = n->kids[i];
        if (strcmp(k, "epsilon") == 0) {
            if (read_micro(v, DP_EPS_MAX, &d->eps) != 0 || d->eps < VL_DP_EPS_MIN) {
                return fail(c->st, v->line, "role", name,
                            "privacy.epsilon must be a number from 0.01 to 10, with at most 6 "
                            "digits after the point");
            }
        } else if (strcmp(k, "delta") == 0) {
            if (read_delta(v, &d->delta) != 0) {
                return fail(c->st, v->line, "role", name,
                            "privacy.delta must be a number from 1e-15 to 1e-3");
            }
        } else if (strcmp(k, "budget") == 0 || strcmp(k, "role_budget") == 0) {
            uint64_t *b = strcmp(k, "budget") == 0 ? &d->budget : &d->role_budget;
            if (read_micro(v, DP_BUDGET_MAX, b) != 0) {
                return fail(c->st, v->line, "role", name,
                            "privacy.%s must be a number above 0 and at most 1000000, with "
                            "at most 6 digits after the point",
                            k);
            }
            *given_role_budget |= b == &d->role_budget;
        } else if (strcmp(k, "period") == 0) {
            int pi = is_scalar(v) ? lookup(period_names, NPERIODS, v->str) : -1;
            if (pi < 0) {
                return fail(c->st, v->line, "role", name,
                            "privacy.period must be hour, day, week or month");
            }
            d->period = (enum vl_period)pi;
        } else {
            return fail(c->st, n->key_lines[i], "role", name,
                        "privacy: unknown key '%.64s' (known: epsilon, delta, budget, "
                        "role_budget, period)",
                        k);
        }
    }
    return VEIL_OK;
}

/* Settles whether the role is answered under differential privacy, fills in the defaults,
 * and checks that every field it sums is bounded. */
static veil_err settle_privacy(struct pctx *c, struct vl_role *r, int line, int privacy_line,
                               int aggregate_line, bool given_role_budget)
{
    bool aggregates = r->naggregate > 0 || r->ngroup_by > 0;
    struct vl_dp *d = &r->privacy;
    if (privacy_line != 0 && !aggregates) {
        return fail(c->st, privacy_line, "role", r->name,
                    "privacy applies only to a role that may aggregate");
    }
    if (!r->exact && aggregates && !r->read_all) {
        r->dp = true;
    }
    if (!r->dp) {
        return VEIL_OK;
    }
    d->eps = d->eps != 0 ? d->eps : DP_EPS_DEFAULT;
    d->delta = d->delta != 0 ? d->delta : DP_DELTA_DEFAULT;
    d->budget = d->budget != 0 ? d->budget : DP_BUDGET_DEFAULT;
    if (!given_role_budget) {
        d->role_budget = d->budget * DP_ROLE_BUDGET_FACTOR;
    }
    if (d->budget < d->eps || d->role_budget < d->budget) {
        return fail(c->st, privacy_line != 0 ? privacy_line : line, "role", r->name,
                    "privacy: epsilon <= budget <= role_budget must hold (an answer spends "
                    "epsilon from both)");
    }
    for (size_t i = 0; i < r->naggregate; i++) {
        const struct vl_field *f = vl_policy_field(c->p, r->aggregate[i]);
        if (!f->bounded) {
            return fail(c->st, aggregate_line, "role", r->name,
                        "aggregate: field '%.128s' needs bounds: [lo, hi] (the role is answered "
                        "under differential privacy, which bounds what one document adds; or "
                        "say privacy: exact)",
                        f->path);
        }
    }
    return VEIL_OK;
}

static veil_err parse_role(struct pctx *c, const char *name, int line,
                           const struct vl_ynode *spec, struct vl_role *r)
{
    veil_err rc = VEIL_OK;
    int masked_line = 0, privacy_line = 0, aggregate_line = line;
    bool given_role_budget = false;

    memset(r, 0, sizeof(*r));
    if (!name_chars_ok(name, 1, VL_ROLE_NAME_MAX)) {
        rc = fail(c->st, line, "role", name,
                  "a role name is 1 to %d letters, digits, '_' or '-'", VL_ROLE_NAME_MAX);
        goto out;
    }
    if (strcmp(name, "admin") == 0) {
        rc = fail(c->st, line, "role", name, "admin is built in and cannot be redefined");
        goto out;
    }
    r->name = strdup(name);
    if (r->name == NULL) {
        rc = oom(c->st);
        goto out;
    }
    if (spec->kind != VL_YAML_MAP) {
        rc = fail(c->st, spec->line, "role", name,
                  "a role is a mapping such as { read: [\"*\"], write: true }");
        goto out;
    }
    for (size_t i = 0; i < spec->n; i++) {
        const char *k = spec->keys[i];
        const struct vl_ynode *v = spec->kids[i];
        if (strcmp(k, "read") == 0) {
            rc = parse_field_list(c, name, k, v, 0, true, &r->read_all, &r->read, &r->nread);
        } else if (strcmp(k, "masked") == 0) {
            rc = parse_field_list(c, name, k, v, 0, false, NULL, &r->masked, &r->nmasked);
            masked_line = v->line;
        } else if (strcmp(k, "aggregate") == 0) {
            rc = parse_field_list(c, name, k, v, VL_TAC_SUM, false, NULL, &r->aggregate,
                                  &r->naggregate);
            aggregate_line = v->line;
        } else if (strcmp(k, "group_by") == 0) {
            rc = parse_field_list(c, name, k, v, VL_TAC_EQ, false, NULL, &r->group_by,
                                  &r->ngroup_by);
        } else if (strcmp(k, "write") == 0) {
            if (read_bool(v, &r->write) != 0) {
                rc = fail(c->st, v->line, "role", name, "write must be true or false");
            }
        } else if (strcmp(k, "min_group_size") == 0) {
            unsigned long m = 0;
            if (read_uint(v, 0, VL_GROUP_SIZE_MAX, &m) != 0) {
                rc = fail(c->st, v->line, "role", name,
                          "min_group_size must be an integer from 0 to %d", VL_GROUP_SIZE_MAX);
            }
            r->min_group_size = rc == VEIL_OK ? (unsigned)m : 0;
        } else if (strcmp(k, "privacy") == 0) {
            rc = parse_privacy(c, name, v, r, &given_role_budget);
            privacy_line = spec->key_lines[i];
        } else {
            rc = fail(c->st, spec->key_lines[i], "role", name,
                      "unknown key '%.64s' (known: read, masked, write, aggregate, group_by, "
                      "min_group_size, privacy)",
                      k);
        }
        if (rc != VEIL_OK) {
            goto out;
        }
    }
    for (size_t i = 0; i < r->nmasked; i++) {
        const struct vl_field *f = vl_policy_field(c->p, r->masked[i]);
        if (in_list(r->read, r->nread, r->masked[i])) {
            rc = fail(c->st, masked_line, "role", name,
                      "field '%.128s' is both read and masked; list it in one of them",
                      r->masked[i]);
            goto out;
        }
        if (f->mask == VL_MASK_NONE) {
            rc = fail(c->st, masked_line, "role", name,
                      "masked: field '%.128s' declares no mask (last4, first1, redact, hash)",
                      r->masked[i]);
            goto out;
        }
    }
    rc = settle_privacy(c, r, line, privacy_line, aggregate_line, given_role_budget);
out:
    return rc;
}

static veil_err parse_roles(struct pctx *c, const struct vl_ynode *n)
{
    veil_err rc = VEIL_OK;
    struct vl_policy *p = c->p;

    if (n->kind != VL_YAML_MAP) {
        rc = fail(c->st, n->line, NULL, NULL, "roles must be a mapping of name to spec");
        goto out;
    }
    if (n->n > VL_POLICY_MAX_ROLES) {
        rc = fail(c->st, n->line, NULL, NULL, "more than %d roles", VL_POLICY_MAX_ROLES);
        goto out;
    }
    p->roles = calloc(n->n > 0 ? n->n : 1, sizeof(*p->roles));
    if (p->roles == NULL) {
        rc = oom(c->st);
        goto out;
    }
    for (size_t i = 0; i < n->n; i++) {
        rc = parse_role(c, n->keys[i], n->key_lines[i], n->kids[i], &p->roles[i]);
        p->nroles = i + 1;
        if (rc != VEIL_OK) {
            goto out;
        }
    }
out:
    return rc;
}

/* ---- the policy ---- */

static veil_err parse_tree(struct pctx *c, const struct vl_ynode *root)
{
    veil_err rc = VEIL_OK;
    const struct vl_ynode *coll = NULL, *fields = NULL, *roles = NULL;

    if (root == NULL || (root->kind == VL_YAML_SCALAR && root->plain && root->len == 0)) {
        rc = fail(c->st, 1, NULL, NULL, "the policy is empty");
        goto out;
    }
    if (root->kind != VL_YAML_MAP) {
        rc = fail(c->st, root->line, NULL, NULL,
                  "a policy is a mapping with collection, fields and roles");
        goto out;
    }
    for (size_t i = 0; i < root->n; i++) {
        const char *k = root->keys[i];
        if (strcmp(k, "collection") == 0) {
            coll = root->kids[i];
        } else if (strcmp(k, "fields") == 0) {
            fields = root->kids[i];
        } else if (strcmp(k, "roles") == 0) {
            roles = root->kids[i];
        } else {
            rc = fail(c->st, root->key_lines[i], NULL, NULL,
                      "unknown key '%.64s' (known: collection, fields, roles)", k);
            goto out;
        }
    }
    if (coll == NULL) {
        rc = fail(c->st, root->line, NULL, NULL, "collection (the collection's name) is required");
        goto out;
    }
    if (!is_scalar(coll) || !name_chars_ok(coll->str, 1, VL_NAME_MAX) || coll->str[0] == '-') {
        rc = fail(c->st, coll->line, NULL, NULL,
                  "collection must be 1 to %d letters, digits, '_' or '-', not starting "
                  "with '-'",
                  VL_NAME_MAX);
        goto out;
    }
    c->p->collection = strdup(coll->str);
    if (c->p->collection == NULL) {
        rc = oom(c->st);
        goto out;
    }
    if (fields != NULL) {
        rc = parse_fields(c, fields);
        if (rc != VEIL_OK) {
            goto out;
        }
    }
    if (roles != NULL) {
        rc = parse_roles(c, roles);
    }
out:
    return rc;
}

veil_err vl_policy_parse(const char *text, size_t len, const char *const *stores,
                         size_t nstores, struct vl_policy **out, veil_status *st)
{
    veil_err rc = VEIL_OK;
    struct vl_ynode *root = NULL;
    struct pctx c = {.st = st, .stores = stores, .nstores = nstores, .p = NULL};

    rc = vl_yaml_load(text, len, &root, st);
    if (rc == VEIL_ERR_BAD_REQUEST) {
        /* Text that is not a YAML document is a wrong policy: same code, same "line N". */
        rc = VEIL_ERR_INVALID_POLICY;
        if (st != NULL) {
            st->code = rc;
        }
    }
    if (rc != VEIL_OK) {
        goto out;
    }
    c.p = calloc(1, sizeof(*c.p));
    if (c.p == NULL) {
        rc = oom(st);
        goto out;
    }
    rc = parse_tree(&c, root);
out:
    vl_ynode_free(root);
    if (rc == VEIL_OK) {
        *out = c.p;
    } else {
        vl_policy_free(c.p);
    }
    return rc;
}

void vl_policy_free(struct vl_policy *p)
{
    if (p == NULL) {
        return;
    }
    for (size_t i = 0; i < p->nfields; i++) {
        field_clear(&p->fields[i]);
    }
    for (size_t i = 0; i < p->nroles; i++) {
        role_clear(&p->roles[i]);
    }
    free(p->fields);
    free(p->roles);
    free(p->collection);
    free(p);
}

const struct vl_field *vl_policy_field(const struct vl_policy *p, const char *path)
{
    for (size_t i = 0; p != NULL && i < p->nfields; i++) {
        if (p->fields[i].path != NULL && strcmp(p->fields[i].path, path) == 0) {
            return &p->fields[i];
        }
    }
    return NULL;
}

const struct vl_role *vl_policy_role(const struct vl_policy *p, const char *name)
{
    for (size_t i = 0; p != NULL && i < p->nroles; i++) {
        if (p->roles[i].name != NULL && strcmp(p->roles[i].name, name) == 0) {
            return &p->roles[i];
        }
    }
    return NULL;
}

const char *vl_type_name(enum vl_type t)
{
    return (unsigned)t < NTYPES ? type_names[t] : "unknown";
}

const char *vl_mask_name(enum vl_mask m)
{
    return (unsigned)m < NMASKS ? mask_names[m] : "none";
}

bool vl_role_masks(const struct vl_role *r, const char *path)
{
    return r != NULL && in_list(r->masked, r->nmasked, path);
}

bool vl_role_reads(const struct vl_role *r, const char *path)
{
    if (r == NULL || vl_role_masks(r, path)) {
        return false;
    }
    return r->read_all || in_list(r->read, r->nread, path);
}

/* ---- leakage ---- */

#define LK_AEAD                                                                              \
    "Stored encrypted (XChaCha20-Poly1305). The store learns its length, rounded up to a "   \
    "padding bucket"
#define LK_EQ "; which documents share a value (equality pattern)"
#define LK_RANGE                                                                             \
    "; which documents share leading hexadecimal digits of the value, hence roughly their "  \
    "order and which are equal"
#define LK_SEARCH                                                                            \
    "; for its words, one search index entry per distinct word of each write, written "     \
    "along with it (a bulk batch shares one entry per word among its documents, and the "   \
    "entry's size, padded to a power of two, tells roughly how many of them hold the "      \
    "word). A search shows the store which entries it reads, hence how often each "         \
    "searched word was written and whether two searches share words, and which documents "  \
    "it returns. Entries written after a search cannot be linked to it, and no entry is "   \
    "ever removed, so the store does not learn which words a replaced or deleted document " \
    "held"
#define LK_SUM                                                                               \
    " Its homomorphic cells (for sums) tell the store which documents have a value, and "    \
    "nothing about the values."

/* Indexed by the tactic bits (eq 1, range 2, search 4, sum 8). */
static const char *const leakage_table[16] = {
    LK_AEAD ".",
    LK_AEAD LK_EQ ".",
    LK_AEAD LK_RANGE ".",
    LK_AEAD LK_EQ LK_RANGE ".",
    LK_AEAD LK_SEARCH ".",
    LK_AEAD LK_EQ LK_SEARCH ".",
    LK_AEAD LK_RANGE LK_SEARCH ".",
    LK_AEAD LK_EQ LK_RANGE LK_SEARCH ".",
    LK_AEAD "." LK_SUM,
    LK_AEAD LK_EQ "." LK_SUM,
    LK_AEAD LK_RANGE "." LK_SUM,
    LK_AEAD LK_EQ LK_RANGE "." LK_SUM,
    LK_AEAD LK_SEARCH "." LK_SUM,
    LK_AEAD LK_EQ LK_SEARCH "." LK_SUM,
    LK_AEAD LK_RANGE LK_SEARCH "." LK_SUM,
    LK_AEAD LK_EQ LK_RANGE LK_SEARCH "." LK_SUM,
};

const char *vl_field_leakage(const struct vl_field *f)
{
    if (f->trusted) {
        return "Kept in the trusted state: the untrusted stores learn nothing; the value "
               "never leaves the trusted domain.";
    }
    if (f->plain) {
        return "Stored in clear: the store learns the value itself.";
    }
    return leakage_table[f->tactics & 15u];
}

/* ---- JSON forms ---- */

static json_t *tactics_json(unsigned tactics)
{
    json_t *a = json_array();
    for (size_t k = 0; a != NULL && k < NTACTICS; k++) {
        if (tactics & tactic_table[k].bit) {
            json_array_append_new(a, json_string(tactic_table[k].name));
        }
    }
    return a;
}

static json_t *list_json(char *const *list, size_t n, bool sorted)
{
    json_t *a = json_array();
    const char **tmp = NULL;
    if (a == NULL || n == 0) {
        goto out;
    }
    tmp = malloc(n * sizeof(*tmp));
    if (tmp == NULL) {
        json_decref(a);
        a = NULL;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        tmp[i] = list[i];
    }
    for (size_t i = 1; sorted && i < n; i++) {
        for (size_t j = i; j > 0 && strcmp(tmp[j - 1], tmp[j]) > 0; j--) {
            const char *t = tmp[j];
            tmp[j] = tmp[j - 1];
            tmp[j - 1] = t;
        }
    }
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(a, json_string(tmp[i]));
    }
out:
    free(tmp);
    return a;
}

/* units as a decimal with the field's scale: -123456 at scale 2 is "-1234.56". */
static void bound_text(const struct vl_field *f, int64_t units, char out[48])
{
    int scale = f->type == VL_T_DECIMAL ? f->scale : 0;
    uint64_t mag = units < 0 ? (uint64_t)0 - (uint64_t)units : (uint64_t)units, pow = 1;
    for (int i = 0; i < scale; i++) {
        pow *= 10;
    }
    if (scale == 0) {
        snprintf(out, 48, "%s%llu", units < 0 ? "-" : "", (unsigned long long)mag);
    } else {
        snprintf(out, 48, "%s%llu.%0*llu", units < 0 ? "-" : "",
                 (unsigned long long)(mag / pow), scale, (unsigned long long)(mag % pow));
    }
}

json_t *vl_bound_json(const struct vl_field *f, int64_t units)
{
    char text[48];
    if (f->type != VL_T_DECIMAL) {
        return json_integer(units);
    }
    bound_text(f, units, text);
    return json_string(text);
}

/* Micro-units as the shortest decimal text: 1000000 -> "1", 1500000 -> "1.5". */
static void micro_text(uint64_t micro, char out[32])
{
    int n = snprintf(out, 32, "%llu.%06llu", (unsigned long long)(micro / VL_DP_EPS_UNIT),
                     (unsigned long long)(micro % VL_DP_EPS_UNIT));
    while (n > 0 && out[n - 1] == '0') {
        out[--n] = '\0';
    }
    if (n > 0 && out[n - 1] == '.') {
        out[--n] = '\0';
    }
}

static json_t *micro_json(uint64_t micro, bool canonical)
{
    char text[32];
    if (!canonical) {
        return json_real((double)micro / (double)VL_DP_EPS_UNIT);
    }
    micro_text(micro, text);
    return json_string(text);
}

static json_t *delta_json(uint64_t delta, bool canonical)
{
    char text[32];
    double d = (double)delta / (double)VL_DP_DELTA_UNIT;
    if (!canonical) {
        return json_real(d);
    }
    snprintf(text, sizeof(text), "%.15g", d);
    return json_string(text);
}

const char *vl_period_name(enum vl_period p)
{
    return (unsigned)p < NPERIODS ? period_names[p] : "day";
}

int64_t vl_period_start(enum vl_period p, int64_t now)
{
    int64_t day = now >= 0 ? now / 86400 : -((-now + 86399) / 86400);
    switch (p) {
    case VL_PERIOD_HOUR:
        return now - (((now % 3600) + 3600) % 3600);
    case VL_PERIOD_WEEK: /* 1970-01-01 was a Thursday: Monday is 3 days before */
        return (day - (((day + 3) % 7) + 7) % 7) * 86400;
    case VL_PERIOD_MONTH: {
        time_t t = (time_t)now;
        struct tm tm;
        gmtime_r(&t, &tm);
        tm.tm_mday = 1;
        tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
        return (int64_t)timegm(&tm);
    }
    case VL_PERIOD_DAY:
    default:
        return day * 86400;
    }
}

int64_t vl_period_next(enum vl_period p, int64_t start)
{
    switch (p) {
    case VL_PERIOD_HOUR:
        return start + 3600;
    case VL_PERIOD_WEEK:
        return start + 7 * 86400;
    case VL_PERIOD_MONTH:
        return vl_period_start(p, start + 32 * 86400);
    case VL_PERIOD_DAY:
    default:
        return start + 86400;
    }
}

void vl_role_privacy_statement(const struct vl_role *r, char *out, size_t n)
{
    char eps[32], budget[32], role_budget[32];
    out[0] = '\0';
    if (r->naggregate == 0 && r->ngroup_by == 0) {
        return;
    }
    if (!r->dp) {
        snprintf(out, n,
                 "Exact answers: counts, sums and averages are the true ones, and groups "
                 "smaller than %u are left out. Individual values can be recovered by "
                 "combining aggregates (a range filter, or the difference of two totals), "
                 "so this role must be trusted with every value it may aggregate.",
                 r->min_group_size);
        return;
    }
    micro_text(r->privacy.eps, eps);
    micro_text(r->privacy.budget, budget);
    micro_text(r->privacy.role_budget, role_budget);
    snprintf(out, n,
             "Differential privacy: every count, sum and average carries random noise (discrete "
             "Laplace, from exact integer samplers seeded by the system's random generator), "
             "sized so that one document's presence or value changes what an answer shows "
             "only a little; a group appears only when its noisy count clears a threshold. "
             "Each answer spends epsilon %s (or what the query asks for, up to the budget) "
             "of the token's budget of %s and the role's of %s per %s; the same query asked "
             "again in the period gets the same answer and spends nothing. Statistics of large groups come out close to the truth; no "
             "sequence of answers within the budget pins down one document's value. Over "
             "many %ss the budgets add up: what is spent is not given back.",
             eps, budget, role_budget, vl_period_name(r->privacy.period),
             vl_period_name(r->privacy.period));
}

/* The field as the canonical text has it (canonical) or as GET shows it (!canonical; adds
 * leakage, and names the store even when it is the default one). */
static json_t *field_json(const struct vl_field *f, bool canonical, const char *default_store)
{
    json_t *o = json_object();
    if (o == NULL) {
        goto out;
    }
    json_object_set_new(o, "type", json_string(type_names[f->type]));
    if (f->type == VL_T_DECIMAL) {
        json_object_set_new(o, "scale", json_integer(f->scale));
    }
    json_object_set_new(o, "protect", tactics_json(f->tactics));
    if (canonical || f->plain) {
        json_object_set_new(o, "plain", json_boolean(f->plain));
    }
    if (f->mask != VL_MASK_NONE) {
        json_object_set_new(o, "mask", json_string(mask_names[f->mask]));
    }
    if (f->store != NULL) {
        json_object_set_new(o, "store", json_string(f->store));
    } else if (!canonical) {
        json_object_set_new(o, "store", json_string(default_store != NULL ? default_store
                                                                          : "default"));
    }
    if (f->tactics & VL_TAC_SEARCH) {
        json_object_set_new(o, "language", json_string(f->language));
    }
    if (f->tactics & VL_TAC_SUM) {
        json_t *s = json_object();
        if (s != NULL) {
            json_object_set_new(s, "scheme", json_string(f->sum_scheme == VL_SUM_PAILLIER
                                                              ? "paillier"
                                                              : "ashe"));
            if (f->sum_scheme == VL_SUM_PAILLIER) {
                json_object_set_new(s, "bits", json_integer(f->sum_bits));
            }
        }
        json_object_set_new(o, "sum", s);
    }
    if (f->bounded) {
        json_object_set_new(o, "bounds",
                            json_pack("[o, o]", vl_bound_json(f, f->lo), vl_bound_json(f, f->hi)));
        json_object_set_new(o, "out_of_bounds", json_string(f->clamp ? "clamp" : "reject"));
    }
    if (!canonical) {
        char text[1536], lo[48], hi[48];
        const char *lk = vl_field_leakage(f);
        if (f->bounded) {
            bound_text(f, f->lo, lo);
            bound_text(f, f->hi, hi);
            snprintf(text, sizeof(text),
                     "%s Bounds [%s, %s]: %s", lk, lo, hi,
                     f->clamp ? "a value outside them is stored as written, and sums and "
                                "averages add the nearest bound instead."
                              : "a write with a value outside them is refused.");
            lk = text;
        }
        json_object_set_new(o, "leakage", json_string(lk));
    }
out:
    return o;
}

/* The noise of a role's answers at its default epsilon, for one noisy quantity; an answer
 * that needs k of them (the group count, and per field a sum, or a centred sum and a count
 * of values for an average) has k times these scales. */
static json_t *noise_scale_json(const struct vl_policy *p, const struct vl_role *r)
{
    double eps = (double)r->privacy.eps / VL_DP_EPS_UNIT;
    json_t *o = json_object(), *fields = json_object();
    json_object_set_new(o, "count", json_real(1 / eps));
    for (size_t i = 0; i < r->naggregate; i++) {
        const struct vl_field *f = vl_policy_field(p, r->aggregate[i]);
        double unit = 1;
        for (int k = 0; f->type == VL_T_DECIMAL && k < f->scale; k++) {
            unit *= 10;
        }
        double lo = (double)f->lo / unit, hi = (double)f->hi / unit;
        double mag = lo < 0 ? -lo : lo;
        mag = mag > (hi < 0 ? -hi : hi) ? mag : (hi < 0 ? -hi : hi);
        json_object_set_new(fields, f->path,
                            json_pack("{s:f, s:f}", "sum", mag / eps, "centred_sum",
                                      (hi - lo) / 2 / eps));
    }
    json_object_set_new(o, "fields", fields);
    json_object_set_new(o, "per", json_string("one noisy quantity at the role's epsilon; an "
                                              "answer with k quantities has k times these"));
    return o;
}

static json_t *role_json(const struct vl_policy *pol, const struct vl_role *r, bool canonical)
{
    json_t *o = json_object();
    if (o == NULL) {
        goto out;
    }
    if (r->read_all) {
        json_object_set_new(o, "read", json_pack("[s]", "*"));
    } else {
        json_object_set_new(o, "read", list_json(r->read, r->nread, true));
    }
    json_object_set_new(o, "masked", list_json(r->masked, r->nmasked, true));
    json_object_set_new(o, "write", json_boolean(r->write));
    json_object_set_new(o, "aggregate", list_json(r->aggregate, r->naggregate, true));
    json_object_set_new(o, "group_by", list_json(r->group_by, r->ngroup_by, true));
    json_object_set_new(o, "min_group_size", json_integer(r->min_group_size));
    if (r->dp) {
        const struct vl_dp *d = &r->privacy;
        json_t *p = json_object();
        json_object_set_new(p, canonical ? "epsilon" : "epsilon_per_answer",
                            micro_json(d->eps, canonical));
        json_object_set_new(p, canonical ? "delta" : "delta_per_answer",
                            delta_json(d->delta, canonical));
        json_object_set_new(p, "budget", micro_json(d->budget, canonical));
        json_object_set_new(p, "role_budget", micro_json(d->role_budget, canonical));
        json_object_set_new(p, "period", json_string(vl_period_name(d->period)));
        if (!canonical) {
            json_object_set_new(p, "mechanism", json_string("discrete Laplace"));
            json_object_set_new(p, "noise_scale", noise_scale_json(pol, r));
        }
        json_object_set_new(o, "privacy", p);
    } else if (r->exact) {
        json_object_set_new(o, "privacy", json_string("exact"));
    }
    if (!canonical && (r->naggregate > 0 || r->ngroup_by > 0)) {
        char text[1024];
        vl_role_privacy_statement(r, text, sizeof(text));
        json_object_set_new(o, "statement", json_string(text));
    }
out:
    return o;
}

static json_t *policy_json(const struct vl_policy *p, bool canonical, const char *default_store)
{
    json_t *o = json_object(), *fields = json_object(), *roles = json_object();
    if (o == NULL || fields == NULL || roles == NULL) {
        json_decref(fields);
        json_decref(roles);
        json_decref(o);
        o = NULL;
        goto out;
    }
    for (size_t i = 0; i < p->nfields; i++) {
        json_object_set_new(fields, p->fields[i].path,
                            field_json(&p->fields[i], canonical, default_store));
    }
    for (size_t i = 0; i < p->nroles; i++) {
        json_object_set_new(roles, p->roles[i].name, role_json(p, &p->roles[i], canonical));
    }
    json_object_set_new(o, "collection", json_string(p->collection));
    json_object_set_new(o, "fields", fields);
    json_object_set_new(o, "roles", roles);
out:
    return o;
}

char *vl_policy_canonical(const struct vl_policy *p)
{
    char *text = NULL;
    json_t *j = policy_json(p, true, NULL);
    if (j != NULL) {
        text = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    }
    json_decref(j);
    return text;
}

json_t *vl_policy_describe_stores(const struct vl_policy *p, const char *default_store)
{
    return policy_json(p, false, default_store);
}

json_t *vl_policy_describe(const struct vl_policy *p)
{
    return policy_json(p, false, NULL);
}
