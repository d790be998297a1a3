/*
 * policy.h: collection policies (README "Policies") and the typed values of their fields.
 *
 * A policy is parsed from YAML or JSON (JSON is YAML) with libyaml, validated whole, and
 * held as plain structs. Errors are VEIL_ERR_INVALID_POLICY with a message naming the line
 * and the field ("line 4: field amount: ..."), except text that is not YAML at all
 * (malformed, not UTF-8, over the size, depth or node limits), which is
 * VEIL_ERR_BAD_REQUEST as the HTTP API says. Nothing here does I/O or cryptography.
 */
#ifndef VL_POLICY_H
#define VL_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "util/buf.h"
#include "util/status.h"

enum vl_type {
    VL_T_STRING,
    VL_T_TEXT,
    VL_T_INTEGER, /* 64-bit signed */
    VL_T_DECIMAL, /* with `scale` digits after the point, 0..18 */
    VL_T_DATE,    /* YYYY-MM-DD */
    VL_T_DATETIME,/* RFC 3339 */
    VL_T_BOOLEAN,
    VL_T_JSON,    /* any value, opaque */
};

/* Tactics in `protect:`; `aead` is always on and has no bit. */
enum {
    VL_TAC_EQ = 1u << 0,
    VL_TAC_RANGE = 1u << 1,
    VL_TAC_SEARCH = 1u << 2,
    VL_TAC_SUM = 1u << 3,
};

enum vl_mask { VL_MASK_NONE, VL_MASK_LAST4, VL_MASK_FIRST1, VL_MASK_REDACT, VL_MASK_HASH };
enum vl_sum_scheme { VL_SUM_ASHE, VL_SUM_PAILLIER };

#define VL_NAME_MAX 128  /* collection, field path, role and store names */
#define VL_PATH_MAX_PARTS 16

struct vl_field {
    char *path;                       /* "customer.name" */
    char *parts[VL_PATH_MAX_PARTS];   /* {"customer","name"} */
    size_t nparts;
    enum vl_type type;
    int scale;                        /* decimal only */
    unsigned tactics;                 /* VL_TAC_* */
    bool plain;                       /* `plain: true`: stored in clear */
    enum vl_mask mask;                /* `mask:`; NONE if not given */
    char *store;                      /* `store:`; NULL = the default store; "trusted"
                                         when `trusted` is set: test `trusted` first */
    bool trusted;                     /* `store: trusted` (never with a tactic) */
    char *language;                   /* search: english, dutch, french, german, none
                                         ("english" when not given); NULL without search */
    enum vl_sum_scheme sum_scheme;    /* sum: {scheme: ...}; ASHE by default */
    unsigned sum_bits;                /* paillier modulus bits (2048, 3072, 4096), 2048 */
    bool bounded;                     /* `bounds: [lo, hi]` (sum fields only) */
    int64_t lo, hi;                   /* the bounds in units (10^-scale for a decimal),
                                         |lo|, |hi| <= VL_BOUND_MAX, lo < hi */
    bool clamp;                       /* out_of_bounds: clamp (sums add the nearest bound);
                                         otherwise reject (the write is refused) */
    int line;                         /* where it was declared, for messages */
};

#define VL_BOUND_MAX ((int64_t)1 << 62)

/* How often a privacy budget starts again (UTC calendar). */
enum vl_period { VL_PERIOD_DAY, VL_PERIOD_HOUR, VL_PERIOD_WEEK, VL_PERIOD_MONTH }; /* day: 0, the default */

/* Differential privacy of a role's aggregates. Epsilons are in micro-units (1,000,000 is
 * an epsilon of 1) and deltas in units of 1e-18, so that spending adds up exactly. */
struct vl_dp {
    uint64_t eps;                     /* spent by each answer */
    uint64_t delta;                   /* of each answer (which groups appear) */
    uint64_t budget;                  /* per token, per period */
    uint64_t role_budget;             /* all tokens of the role together, per period */
    enum vl_period period;
};
#define VL_DP_EPS_UNIT 1000000ull
#define VL_DP_DELTA_UNIT 1000000000000000000ull
/* The least epsilon an answer may spend: with it, a period's budget B pays for at most
 * 100 B answers, so their deltas add up to at most 100 B delta. */
#define VL_DP_EPS_MIN (VL_DP_EPS_UNIT / 100)

/* Lists hold declared field paths only; `masked` fields have a `mask:`; `aggregate` fields
 * have tactic sum and `group_by` fields tactic eq. With read: ["*"], a field listed in
 * `masked` is shown masked (masked wins); otherwise a field may not be in both lists. */
struct vl_role {
    char *name;
    bool read_all;                    /* read: ["*"] (then read is empty) */
    char **read;
    size_t nread;
    char **masked;
    size_t nmasked;
    bool write;
    char **aggregate;
    size_t naggregate;
    char **group_by;
    size_t ngroup_by;
    unsigned min_group_size;          /* 0 when not given */
    bool dp;                          /* aggregates answered under differential privacy:
                                         the default for a role that may aggregate
                                         without read: ["*"], unless `privacy: exact` */
    bool exact;                       /* `privacy: exact` was said */
    struct vl_dp privacy;             /* when dp */
};

struct vl_policy {
    char *collection;
    struct vl_field *fields;
    size_t nfields;
    struct vl_role *roles;
    size_t nroles;
};

/* Parses and validates a policy. `stores` lists the store names of veil.yaml (a field's
 * `store:` must be one of them or `trusted`). On success *out owns everything; on failure
 * *out is untouched and st says what and where ("line 4: field amount: ..."). */
veil_err vl_policy_parse(const char *text, size_t len, const char *const *stores,
                         size_t nstores, struct vl_policy **out, veil_status *st) VL_WUR;
void vl_policy_free(struct vl_policy *p);

/* A canonical JSON text (sorted keys, defaults spelled out): two policies are the same iff
 * their canonical texts are equal; parsing the text gives the same policy back. malloc'd. */
char *vl_policy_canonical(const struct vl_policy *p);

/* The policy as GET /v1/collections/{c} shows it: each field with a `leakage`
 * statement in plain words. New reference. */
json_t *vl_policy_describe(const struct vl_policy *p);
/* The same, with fields that name no store shown under `default_store` (the first store
 * of veil.yaml); vl_policy_describe shows them as "default". */
json_t *vl_policy_describe_stores(const struct vl_policy *p, const char *default_store);
/* What the untrusted store learns about this field, in plain words. Static storage. */
const char *vl_field_leakage(const struct vl_field *f);

const struct vl_field *vl_policy_field(const struct vl_policy *p, const char *path);
const struct vl_role *vl_policy_role(const struct vl_policy *p, const char *name);
const char *vl_type_name(enum vl_type t);
const char *vl_period_name(enum vl_period p); /* "hour", "day", "week", "month" */
/* The start of the period holding `now` (seconds since the epoch, UTC), and of the next.
 * Weeks start on Monday. */
int64_t vl_period_start(enum vl_period p, int64_t now);
int64_t vl_period_next(enum vl_period p, int64_t start);
/* A bound of a field as JSON: an integer, or a decimal string with the field's scale. */
json_t *vl_bound_json(const struct vl_field *f, int64_t units);
/* What a role's aggregates reveal, in plain words with its numbers, for GET
 * /v1/collections/{c}; empty for a role that may not aggregate. */
void vl_role_privacy_statement(const struct vl_role *r, char *out, size_t n);
const char *vl_mask_name(enum vl_mask m); /* "none", "last4", ... */
/* Is this field readable in clear / masked / neither, for this role? NULL role: neither. */
bool vl_role_reads(const struct vl_role *r, const char *path);
bool vl_role_masks(const struct vl_role *r, const char *path);

/* ---- values ---- */

/* Checks that v fits the field's type; VEIL_ERR_INVALID_DOCUMENT naming f->path otherwise
 * (the message names the expected type, never the value). JSON null is accepted for every
 * type (an explicit absence). string/text: JSON strings; integer: JSON integers only;
 * decimal: JSON integers, reals (exact through their shortest decimal form, so ~15
 * significant digits) or strings "-?D+(.D+)?" (exact up to int64 units); date: "YYYY-MM-DD"
 * 0001-01-01..9999-12-31; datetime: RFC 3339 with Z or +hh:mm, up to 6 fraction digits;
 * boolean: true/false; json: anything. */
veil_err vl_value_check(const struct vl_field *f, const json_t *v, veil_status *st) VL_WUR;

/* The canonical byte encoding of a checked value, the input of deterministic tokens: equal
 * values (1.5 and "1.50" in a decimal(2) field; "2024-01-02") encode equally. Appends to
 * out. A type tag byte comes first (vl_type + 1; 0 alone for JSON null), then: string/text
 * the UTF-8 bytes; integer/decimal/date/datetime the 8 big-endian bytes of vl_value_to_u64;
 * boolean one byte 0/1; json its compact text with sorted keys. VEIL_ERR_INVALID_DOCUMENT
 * if v does not fit. */
veil_err vl_value_canonical(const struct vl_field *f, const json_t *v, struct vl_buf *out);

/* The inverse of vl_value_canonical, for group keys: a new JSON value. NULL if malformed.
 * Decimals come back as strings with exactly `scale` digits ("1234.50"), dates as
 * "YYYY-MM-DD", datetimes as "YYYY-MM-DDTHH:MM:SS[.ffffff]Z" (UTC). */
json_t *vl_value_from_canonical(const struct vl_field *f, const uint8_t *p, size_t n);

/* An order-preserving map to uint64 for range tactics: an int64 with its sign bit flipped,
 * the int64 being the integer, the decimal in units of 10^-scale, the date in days since
 * 1970-01-01, the datetime in microseconds since the epoch (UTC). VEIL_ERR_UNSUPPORTED_QUERY
 * for other types, VEIL_ERR_INVALID_DOCUMENT for a value that does not fit (or null). */
veil_err vl_value_to_u64(const struct vl_field *f, const json_t *v, uint64_t *out);

/* Masks a value for display: last4 "****1234" (characters, UTF-8 aware; "****" when the
 * value has 4 or fewer), first1 "J***", redact "[redacted]". Numbers and booleans are
 * masked through their text form, objects and arrays are always redacted, null stays null,
 * VL_MASK_NONE returns v itself. hash needs a key and is done by the caller (engine); here
 * it returns NULL. New reference. */
json_t *vl_mask_apply(enum vl_mask m, const json_t *v);

/* Dates: "YYYY-MM-DD" -> days since 1970-01-01 (may be negative); -1 return on bad input. */
int vl_date_parse(const char *s, int64_t *days);
/* RFC 3339 -> microseconds since the epoch, UTC. */
int vl_datetime_parse(const char *s, int64_t *usec);
/* Decimal (JSON number or string) with at most `scale` fraction digits -> integer units of
 * 10^-scale. -1 when it does not fit in int64 or has too many digits. */
int vl_decimal_parse(const json_t *v, int scale, int64_t *units);

#endif
