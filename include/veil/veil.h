/*
 * veil.h: the public API of libveil.
 *
 * libveil is everything veil does, without HTTP: open a vault on a data directory, register
 * collection policies, and put, get, delete and query protected documents. The `veil` CLI
 * and `veil server` are two thin front doors onto these functions; a C program can link
 * libveil (pkg-config veil) and use a vault with no server at all.
 *
 * Conventions
 *   - Every function that can fail returns a veil_err and, when `st` is not NULL, fills it
 *     with a message meant for the user. Messages name fields and collections, never the
 *     values that were given (a value may be a secret).
 *   - Documents, queries and results travel as JSON text (UTF-8). Output strings are
 *     allocated by libveil and released with veil_free(); on failure no output is set.
 *   - A veil_vault may be shared by many threads. A veil_session is a (tenant, role) pair
 *     bound to a vault; it may also be shared, and is freed with veil_session_free().
 */
#ifndef VEIL_H
#define VEIL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VEIL_VERSION "0.1.0"

/* One error code per error of the HTTP API; veil_err_name() gives the JSON `code`,
 * veil_err_http_status() the HTTP status. */
typedef enum veil_err {
    VEIL_OK = 0,
    VEIL_ERR_BAD_REQUEST,       /* 400 bad_request */
    VEIL_ERR_INVALID_DOCUMENT,  /* 400 invalid_document */
    VEIL_ERR_INVALID_POLICY,    /* 400 invalid_policy */
    VEIL_ERR_UNSUPPORTED_QUERY, /* 400 unsupported_query */
    VEIL_ERR_UNAUTHENTICATED,   /* 401 unauthenticated */
    VEIL_ERR_FORBIDDEN,         /* 403 forbidden */
    VEIL_ERR_NOT_FOUND,         /* 404 not_found */
    VEIL_ERR_CONFLICT,          /* 409 conflict */
    VEIL_ERR_VERSION_MISMATCH,  /* 412 version_mismatch */
    VEIL_ERR_TOO_LARGE,         /* 413 too_large */
    VEIL_ERR_INTEGRITY,         /* 502 integrity_violation */
    VEIL_ERR_STORE_UNAVAILABLE, /* 503 store_unavailable */
    VEIL_ERR_INTERNAL,          /* 500 internal */
    VEIL_ERR_RATE_LIMITED,      /* 429 rate_limited */
    VEIL_ERR_PRIVACY_BUDGET,    /* 429 privacy_budget_exhausted */
} veil_err;

/* What went wrong, in words. `field` is the document or policy path concerned, or "". */
typedef struct veil_status {
    veil_err code;
    char message[320];
    char field[160];
    long retry_after; /* seconds until it is worth asking again (a 429), 0 when not said */
} veil_status;

const char *veil_err_name(veil_err e);
int veil_err_http_status(veil_err e);

typedef struct veil_vault veil_vault;
typedef struct veil_session veil_session;

/* Options of veil_init(). Zero-initialise and set what applies. */
typedef struct veil_init_options {
    const char *passphrase_env; /* local keyring: encrypt master.key under this variable's
                                   passphrase (Argon2id); NULL: a plain 0600 key file */
    const char *listen;         /* written to veil.yaml; NULL: 127.0.0.1:8470 */
    const char *keyring;        /* "local" (default) or "pkcs11" */
    const char *pkcs11_module;  /* pkcs11 only */
    const char *pkcs11_token;
    const char *pkcs11_pin_env;
    const char *pkcs11_key_label;
} veil_init_options;

/* Creates a new data directory: veil.yaml, the root key, trusted.db and cloud/. Refuses
 * (VEIL_ERR_CONFLICT) when `datadir` already holds a veil.yaml or trusted.db. */
veil_err veil_init(const char *datadir, const veil_init_options *opt, veil_status *st);

/* Opens the vault of an initialised data directory: reads veil.yaml, unlocks the root key,
 * opens trusted state and every store, and finishes writes a crash left half-done. Refuses
 * (VEIL_ERR_CONFLICT, the message saying what to do) when a store holds writes the trusted
 * state does not know of: trusted.db was restored from a backup or lost transactions. */
veil_err veil_vault_open(const char *datadir, veil_vault **out, veil_status *st);
void veil_vault_close(veil_vault *v);
/* Accepts that the trusted state is behind the stores (the writes it does not know of are
 * lost): records the acceptance, moves its counters past what the stores saw, finishes the
 * writes it had in flight, removes the rows it never heard of and forgets the documents
 * whose last known version no store holds any more. *json_out (veil_free) reports what was
 * done. When the trusted state is not behind: VEIL_ERR_CONFLICT, unless a rollback was
 * accepted before (then the settling is done again, in case it was cut short). No server
 * may run meanwhile. */
veil_err veil_trusted_accept_rollback(const char *datadir, char **json_out, veil_status *st);

/* Limits from veil.yaml (`limits:`), for front doors that read request bodies. */
typedef struct veil_limits {
    size_t max_body;
    unsigned max_depth;
    unsigned max_fields;
    /* For servers: what many clients together may hold. */
    size_t max_inflight_bodies;          /* bytes of request bodies held at once */
    unsigned max_connections;            /* open connections */
    unsigned max_connections_per_client; /* open connections from one client address */
    unsigned request_timeout;            /* seconds for a request's headers and body */
    unsigned idle_timeout;               /* seconds an idle connection is kept open */
} veil_limits;
void veil_vault_limits(const veil_vault *v, veil_limits *out);
/* The request rate veil.yaml's `rate_limits:` allows each token of `role`: a bucket of
 * *burst requests refilled at *per_second; *per_second is 0 when there is no limit. */
void veil_vault_rate_limit(const veil_vault *v, const char *role, double *per_second,
                           double *burst);
/* The `listen:` address of veil.yaml ("127.0.0.1:8470"); owned by the vault. */
const char *veil_vault_listen(const veil_vault *v);

/* {"status":"ok"|"degraded","stores":{"cloud":"ok"|"unavailable",...}}; returns
 * VEIL_ERR_STORE_UNAVAILABLE (with the JSON still set) when a store is down. */
veil_err veil_health(veil_vault *v, char **json_out);

/* --- administration (works on the data directory; no token needed) --- */
veil_err veil_tenant_create(veil_vault *v, const char *name, veil_status *st);
/* [{"name":..,"created":..,"shredded":bool,"key_version":N}, ...] */
veil_err veil_tenant_list(veil_vault *v, char **json_out, veil_status *st);
/* Destroys the tenant's wrapped keys and revokes its tokens: its data in every store is
 * unreadable from then on, by anyone. */
veil_err veil_tenant_shred(veil_vault *v, const char *name, veil_status *st);

/* A new bearer token for (tenant, role). `role` is "admin" or a role that one of the
 * tenant's policies defines (VEIL_ERR_BAD_REQUEST, naming the roles there are, otherwise).
 * The token is returned once; only its hash is kept. *token_id_out is the 16-hex id inside
 * the token, which names it in veil_token_list() and veil_token_revoke(). */
veil_err veil_token_create(veil_vault *v, const char *tenant, const char *role,
                           char **token_out, char **token_id_out, veil_status *st);
/* Revokes a token given by its id or by the token itself; VEIL_ERR_NOT_FOUND when there is
 * no such valid token. */
/* The id a bearer token claims ("veil_<16 hex>_<secret>" gives the 16 hex digits), for
 * logs and per-token accounting: 0 and out set when the token is well-formed, else -1 and
 * out = "". Reads none of the secret and says nothing about whether the token is valid. */
#define VEIL_TOKEN_ID_LEN 16
int veil_token_id(const char *bearer, char out[VEIL_TOKEN_ID_LEN + 1]);
veil_err veil_token_revoke(veil_vault *v, const char *token_or_id, veil_status *st);
/* The valid tokens, of `tenant` only when not NULL, oldest first:
 * [{"id":..,"tenant":..,"role":..,"created":TIME,"last_used":TIME-or-null}], times in
 * RFC 3339 (UTC). Never a token or its hash. The last use is recorded at most once a
 * minute a token, so it may be up to a minute early. */
veil_err veil_token_list(veil_vault *v, const char *tenant, char **json_out, veil_status *st);

/* --- sessions --- */
/* A session for a known tenant and role, as an embedding program trusts itself. */
veil_err veil_session_open(veil_vault *v, const char *tenant, const char *role,
                           veil_session **out, veil_status *st);
/* A session from a bearer token; VEIL_ERR_UNAUTHENTICATED for any unknown, revoked or
 * malformed token (one answer, whatever the reason). */
veil_err veil_session_authenticate(veil_vault *v, const char *bearer, veil_session **out,
                                   veil_status *st);
void veil_session_free(veil_session *s);
const char *veil_session_tenant(const veil_session *s);
const char *veil_session_role(const veil_session *s);

/* --- collections --- */
/* Registers a policy (YAML or JSON text). `name`, when not NULL, must equal the policy's
 * `collection`. *created is 1 when new, 0 when an identical policy was there already;
 * a different existing policy is VEIL_ERR_CONFLICT. Admin only. */
veil_err veil_collection_apply(veil_session *s, const char *name, const char *text,
                               size_t len, int *created, veil_status *st);
/* {"collection":..,"fields":{path:{...,"leakage":TEXT}},"roles":{...}} */
veil_err veil_collection_get(veil_session *s, const char *name, char **json_out,
                             veil_status *st);
/* {"collections":[<as veil_collection_get>...]} */
veil_err veil_collection_list(veil_session *s, char **json_out, veil_status *st);

/* --- documents --- */
/* Stores a document (a JSON object). `id` NULL generates one. `if_match` > 0 makes the
 * write conditional on the current version (VEIL_ERR_VERSION_MISMATCH otherwise).
 * *json_out is {"id":..,"version":N}; *created is 1 for a new document. */
veil_err veil_doc_put(veil_session *s, const char *coll, const char *id, const char *json,
                      size_t len, int64_t if_match, char **json_out, int *created,
                      veil_status *st);
/* {"id":..,"version":N,"doc":{...}}, fields filtered and masked for the session's role. */
veil_err veil_doc_get(veil_session *s, const char *coll, const char *id, char **json_out,
                      veil_status *st);
veil_err veil_doc_delete(veil_session *s, const char *coll, const char *id, veil_status *st);
/* Query body and answer as the HTTP API's POST /v1/collections/{c}/query
 * (docs/openapi.yaml). */
veil_err veil_query(veil_session *s, const char *coll, const char *body, size_t len,
                    char **json_out, veil_status *st);
/* Aggregate body and answer as the HTTP API's POST /v1/collections/{c}/aggregate:
 * {"groups":[{"key":{..},METRIC:..}],"suppressed":N}; with "explain": true also how the
 * store and the proxy computed it. */
veil_err veil_aggregate(veil_session *s, const char *coll, const char *body, size_t len,
                        char **json_out, veil_status *st);
/* A differentially private role's budget in collection `coll` for the current period
 * (GET /v1/collections/{c}/privacy): its own token's and its role's; for an admin, every
 * such role's and each of their tokens'. VEIL_ERR_FORBIDDEN for a role not under
 * differential privacy. */
veil_err veil_privacy_status(veil_session *s, const char *coll, char **json_out,
                             veil_status *st);
/* Admin: the current period's spending back to 0, body {"role": NAME} (the role's total
 * and all its tokens) or {"token": TOKEN-ID}. Answers kept stay kept. */
veil_err veil_privacy_reset(veil_session *s, const char *coll, const char *body, size_t len,
                            char **json_out, veil_status *st);
/* NDJSON in ({"id":..,"doc":{..}} a line), NDJSON out ({"line","id","status","error"?} a
 * line per input line). Bad lines are reported, good ones stored. */
veil_err veil_bulk(veil_session *s, const char *coll, const char *ndjson, size_t len,
                   char **ndjson_out, veil_status *st);

void veil_free(void *p);

/* --- process hardening --- */
/* Keeps the calling process's memory from leaving it: makes the process non-dumpable
 * (prctl PR_SET_DUMPABLE 0: the kernel writes no core file, and processes of the same
 * user can no longer attach a debugger or read its memory through /proc) and sets its core
 * file size limit (RLIMIT_CORE) to 0, soft and hard, for it and its children. It cannot be
 * undone. libveil never does this on its own, since it changes the whole process: call it
 * once at start-up, before veil_vault_open(), in a program that holds a vault (veil server
 * and the veil commands do). Keys themselves are kept in locked memory that is excluded
 * from core dumps (MADV_DONTDUMP) whether or not this is called; this also keeps out
 * everything else a core would show (documents, tokens, freed buffers). Linux only. */
veil_err veil_harden_process(veil_status *st);

#ifdef __cplusplus
}
#endif
#endif /* VEIL_H */
