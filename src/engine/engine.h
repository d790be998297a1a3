/*
 * engine.h: the inside of libveil shared by the engine's files. The engine is the one
 * place that knows what a request means: it checks the role, plans against the policy,
 * turns values into what the stores hold (through the codec) and back, and keeps the
 * trusted state in step with the stores.
 */
#ifndef VL_ENGINE_H
#define VL_ENGINE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "keys/keys.h"
#include "policy/policy.h"
#include "store/store.h"
#include "trusted/trusted.h"
#include "util/buf.h"
#include "util/status.h"

#define VL_MAX_STORES 8
#define VL_STRIPES 256
#define VL_ID_MAX 256          /* bytes of a document id */
#define VL_QUERY_LIMIT_DEFAULT 100
#define VL_QUERY_LIMIT_MAX 10000
#define VL_MASK_HASH_BYTES 16

/* ---- configuration (veil.yaml) ---- */
/* A token bucket's parameters: `burst` requests, refilled at `per_second` (0: no limit). */
struct vl_rate {
    double per_second;
    double burst;
};
struct vl_rate_role {
    char *role;
    struct vl_rate rate;
};
#define VL_RATE_ROLES_MAX 256
struct vl_config {
    char *listen;
    char *keyring_type;      /* "local" */
    char *keyring_path;      /* local: key file, relative to the data dir */
    char *passphrase_env;    /* local: optional */
    char *trusted_url;
    char *store_names[VL_MAX_STORES];
    char *store_urls[VL_MAX_STORES];
    size_t nstores;
    veil_limits limits;
    struct vl_rate rate_default;
    struct vl_rate_role *rate_roles;
    size_t nrate_roles;
};
veil_err vl_config_load(const char *datadir, struct vl_config *cfg, veil_status *st) VL_WUR;
void vl_config_free(struct vl_config *cfg);

/* ---- per-field working state of a collection ---- */
struct vl_paillier;
struct vl_fctx {
    const struct vl_field *f;      /* NULL for the reserved parts _id and _rest */
    const char *path;              /* f->path, "_id" or "_rest" */
    uint8_t vcol[VL_COL_BYTES];    /* opaque id of the sealed value in a part */
    uint8_t col[VL_COL_BYTES];     /* opaque column of equality tokens */
    uint8_t rcol[VL_COL_BYTES];    /* opaque column of range tokens */
    uint8_t scol[VL_COL_BYTES];    /* opaque column of sum cells */
    uint8_t tcol[VL_COL_BYTES];    /* opaque column of the sum cells' MAC tags */
    int store;                     /* index into the vault's stores; -1: trusted state */
    uint8_t *aead_key;             /* secret, VL_AEAD_KEYBYTES */
    uint8_t *eq_key;               /* secret, VL_SIV_KEYBYTES, only with eq */
    uint8_t *mask_key;             /* secret, 32, only with mask: hash */
    uint8_t *range_key;            /* secret, 32, only with range */
    uint8_t *sum_key;              /* secret, 32, only with sum (ASHE) */
    uint8_t *mac_key;              /* secret, VL_MAC_KEY_BYTES, only with sum (either
                                      scheme): the linear MAC of its cells */
    uint8_t *search_key;           /* secret, VL_SEARCH_KEY_BYTES, only with search */
    uint32_t ordinal;              /* index of the field in the policy */
    struct vl_paillier *paillier;  /* only with sum: {scheme: paillier} */
    struct vl_bytes paillier_n2;   /* its n^2, big-endian, for the store */
};

/* Row sequence numbers handed out from blocks reserved in trusted state, so that a write
 * need not reserve its own in a transaction. Each block starts at a random place; numbers
 * grow within a block only. A restart abandons the rest of a block, which is harmless. */
struct vl_seqblock {
    pthread_mutex_t mu;
    uint64_t next;
    uint64_t end;
};
#define VL_SEQ_BLOCK 1024

/* A registered collection with its keys, cached by the vault; immutable once built but for
 * its sequence block, which has its own lock. */
struct vl_coll {
    struct vl_coll *next;
    int64_t tenant_id;
    char *tenant;
    char *name;
    struct vl_policy *policy;
    char table[2 * 16 + 1];        /* opaque table name in every store */
    uint32_t key_version;
    uint8_t *doc_key;              /* secret: document tokens */
    uint8_t *cursor_key;           /* secret: sealing query cursors */
    uint8_t *set_key;              /* secret, 32: token keys of the token sets (verify.c) */
    struct vl_fctx *fields;        /* one per policy field, same order */
    struct vl_fctx id;             /* the document id */
    struct vl_fctx rest;           /* fields the policy does not list */
    struct vl_seqblock *seq;
};

/* Takes n consecutive row sequence numbers for c; *first is the first. A new block is
 * announced to the stores (vl_mark_global) before any of its numbers is handed out. */
veil_err vl_coll_seq_take(veil_vault *v, const struct vl_coll *c, uint64_t n,
                          uint64_t *first) VL_WUR;

#define VL_TOKEN_SEEN_SLOTS 256
#define VL_TOKEN_TOUCH_S 60 /* a token's last use is recorded at most this often */

struct veil_vault {
    char *datadir;
    struct vl_config cfg;
    struct vl_keyring *keyring;
    struct vl_trusted *trusted;
    struct vl_store *stores[VL_MAX_STORES];
    size_t nstores;
    pthread_mutex_t mu;            /* guards colls */
    struct vl_coll *colls;
    pthread_mutex_t stripes[VL_STRIPES]; /* per-document write locks, by token byte */
    /* When each token's use was last written to the trusted state (vault.c): at most once
     * a minute a token, not once a request. Slots by token id; a collision costs a write. */
    pthread_mutex_t seen_mu;
    struct vl_token_seen {
        char id[16 + 1];
        int64_t at;
    } seen[VL_TOKEN_SEEN_SLOTS];
    uint8_t *mark_keys;            /* secret: label key || sealing key of marks (mark.c) */
    char mark_table[2 * 16 + 1];   /* the opaque table of the installation's marks */
    bool rollback_accepted;        /* an operator accepted a rollback of the trusted state */
    bool unverified;               /* benchmarks only (vl_vault_verify): see verify.c */
};

struct veil_session {
    veil_vault *v;
    int64_t tenant_id;
    char *tenant;
    char *role;
    bool admin;
    char principal[VEIL_TOKEN_ID_LEN + 1]; /* the token's id; "-" for a session an
                                              embedding program opened without one */
};

/* Unwraps the tenant's key of `version` into out (secret memory, VL_TENANT_KEYBYTES). */
veil_err vl_tenant_key_load(veil_vault *v, int64_t tenant_id, const char *tenant,
                            uint32_t version, uint8_t *out, veil_status *st) VL_WUR;

/* The collection `name` of the session's tenant, with keys: VEIL_ERR_NOT_FOUND if it is
 * not registered. The vault owns the result. */
veil_err vl_coll_get(veil_session *s, const char *name, const struct vl_coll **out,
                     veil_status *st) VL_WUR;
/* Forgets every cached collection of a tenant (shred). */
void vl_coll_forget_tenant(veil_vault *v, int64_t tenant_id);
void vl_coll_free(struct vl_coll *c);
const struct vl_fctx *vl_coll_field(const struct vl_coll *c, const char *path);

/* ---- codec: documents to rows and back (codec.c) ---- */

/* The document token of an id. */
void vl_doc_token(const struct vl_coll *c, const char *id, uint8_t out[VL_DOCTOKEN_BYTES]);

/* A document sealed for writing: one part per store (index), plus the trusted part, and
 * per store the tokens it may index and its sum cells. Token and cell bytes are malloc'd,
 * owned here. */
struct vl_sealed {
    struct vl_buf parts[VL_MAX_STORES];
    struct vl_buf trusted;
    struct vl_token *tokens[VL_MAX_STORES];
    size_t ntokens[VL_MAX_STORES];
    struct vl_sum_cell *sums[VL_MAX_STORES];
    size_t nsums[VL_MAX_STORES];
    struct vl_prod_cell *prods[VL_MAX_STORES];
    size_t nprods[VL_MAX_STORES];
    uint8_t digest[VL_DIGEST_BYTES];
};
void vl_sealed_free(struct vl_sealed *s);

/* Checks doc against the policy and limits, then seals it for (id, version, seq).
 * VEIL_ERR_INVALID_DOCUMENT / BAD_REQUEST naming the field on bad input. */
veil_err vl_doc_seal(const veil_vault *v, const struct vl_coll *c, const char *id,
                     const json_t *doc, int64_t version, uint64_t seq, struct vl_sealed *out,
                     veil_status *st) VL_WUR;

/* The digest of what was written for a document: seq and every part, in store order. */
void vl_doc_digest(uint64_t seq, const struct vl_bytes *parts, size_t nparts,
                   const struct vl_bytes *trusted, uint8_t out[VL_DIGEST_BYTES]);

/* Opens a document from its parts (already matched against the trusted digest):
 * *id_out (malloc'd) and *doc_out (new reference). want (NULL: everything) says which
 * fields to open: want[i] for policy field i, want[nfields] for the fields the policy does
 * not list; the others are left out of *doc_out. VEIL_ERR_INTEGRITY when anything opened
 * fails to authenticate, or anything is missing or extra. */
veil_err vl_doc_open(const struct vl_coll *c, const uint8_t doc[VL_DOCTOKEN_BYTES],
                     int64_t version, const struct vl_bytes *parts, size_t nparts,
                     const struct vl_bytes *trusted, const bool *want, char **id_out,
                     json_t **doc_out) VL_WUR;

/* The equality token of a checked value of an eq field; appended to out. */
veil_err vl_eq_token(const struct vl_fctx *fc, const json_t *value, struct vl_buf *out) VL_WUR;

/* The document as `role` may see it: fields left out or masked (new reference). */
json_t *vl_doc_for_role(const struct vl_coll *c, const veil_session *s, const json_t *doc,
                        const json_t *select);

/* Walks a dotted path in a JSON object (borrowed reference or NULL). */
json_t *vl_json_path_get(const json_t *doc, const struct vl_field *f);

/* ---- planning `where` (plan.c) ---- */

/* One condition: equality (values' tokens and canonical encodings) or a range (inclusive
 * bounds in the field's order-preserving domain, and the tokens of their cover). */
struct vl_cond {
    const struct vl_fctx *fc;
    bool range;
    bool empty;                    /* matches nothing (an empty interval) */
    uint64_t lo, hi;
    struct vl_buf *canon;
    size_t ncanon;
    struct vl_bytes *toks;
    uint8_t *levels;               /* each token's range prefix digits (range only) */
    size_t ntoks;
    struct vl_pred_term term;
};
struct vl_plan {
    struct vl_cond *conds;
    size_t n;
    bool empty;                    /* some condition matches nothing */
    struct vl_pred_term *terms;
    struct vl_pred pred;           /* for the store */
};
/* Plans `where` (NULL or an object) for a query or, with `aggregate`, an aggregate. role
 * NULL (admin): no restriction; else a query may filter on fields the role reads, and an
 * aggregate also on those it may group by or aggregate. */
veil_err vl_plan_where(const struct vl_coll *c, const struct vl_role *role, bool aggregate,
                       const json_t *where, struct vl_plan *out, veil_status *st) VL_WUR;
void vl_plan_free(struct vl_plan *p);
/* Does a decrypted document satisfy every condition? */
bool vl_plan_satisfied(const struct vl_plan *p, const json_t *doc);
/* A value of a range field in its order-preserving domain of *width bits. A bounded field
 * that refuses values outside its bounds has the domain lo..hi: a value beyond it sets *side
 * to -1 (below) or 1 (above) and *out to the nearest end, or with side NULL is
 * VEIL_ERR_INVALID_DOCUMENT (no such value is stored); *side is 0 for every other value. */
veil_err vl_range_value(const struct vl_field *f, const json_t *v, uint64_t *out,
                        unsigned *width, int *side) VL_WUR;
/* "aead, eq, range", for messages. */
const char *vl_tactics_words(const struct vl_field *f);

/* May the role (NULL: admin) filter a query or aggregate on path? */
bool vl_plan_may_filter(const struct vl_role *role, bool aggregate, const char *path);

/* ---- text search (search.c) ---- */
#include "tactics/words.h"
#define VL_MATCH_MAX_WORDS 32       /* distinct stems in one match */
#define VL_DOC_MAX_WORDS 100000     /* distinct stems in one field of a document */

/* The words of a document's search fields, ready to become index entries. */
struct vl_dword {
    const struct vl_fctx *fc;
    const char *stem;               /* into words[] */
    size_t len;
    uint32_t tf;
    uint8_t wkey[VL_WKEY_BYTES];
};
struct vl_docwords {
    struct vl_words *words;         /* one per search field of the policy */
    size_t nfields;
    struct vl_dword *w;
    size_t n;
    struct vl_buf slen;             /* (u32 field, u32 words) pairs: the intent's slen */
};
/* Words of the (already checked) document's search fields. */
veil_err vl_docwords_of(const struct vl_coll *c, const json_t *doc, struct vl_docwords *out,
                        veil_status *st) VL_WUR;
void vl_docwords_free(struct vl_docwords *d);
/* The index entries of a batch of writes: words[i] (NULL: none) of the document written
 * with row sequence number seqs[i]. Per word, the documents that have it go into entries of
 * up to VL_SEARCH_ITEMS_MAX (so a bulk load writes one entry per word and batch, not per
 * word and document); each entry takes the next counter of its word, reserved in one
 * trusted transaction, and belongs to the write of its first document (owner). */
struct vl_batch_entries {
    struct vl_kv *kv;               /* into arena */
    int *store;                     /* the store of each entry (its field's) */
    size_t *owner;                  /* index of the document whose write carries it */
    size_t n;
    uint8_t *arena;
};
veil_err vl_search_batch(veil_vault *v, const struct vl_coll *c,
                         const struct vl_docwords *const *words, const uint64_t *seqs,
                         size_t ndocs, struct vl_batch_entries *out) VL_WUR;
void vl_batch_entries_free(struct vl_batch_entries *b);

/* A planned `match`: per key (a search field), its distinct stems and how they combine. */
struct vl_mterm {
    const struct vl_fctx *fc;
    bool any;                       /* {"any": ...}: one word is enough; else all */
    struct vl_words words;
    size_t first;                   /* index of its first word among all the match's words */
};
struct vl_match {
    struct vl_mterm *t;
    size_t n;
    size_t nwords;
    uint8_t hash[16];               /* of the query it belongs to (set by the query, which
                                       ties its cursors to it) */
};
veil_err vl_match_plan(const struct vl_coll *c, const struct vl_role *role, bool aggregate,
                       const json_t *match, struct vl_match *out, veil_status *st) VL_WUR;
void vl_match_free(struct vl_match *m);

/* What a search counted, so that later pages of it rank exactly as the first did: per
 * word the entries looked at and how many were live; per term the field's totals. */
struct vl_match_snap {
    bool set;
    uint64_t count[VL_MATCH_MAX_WORDS];
    uint64_t df[VL_MATCH_MAX_WORDS];
    uint64_t ndocs[VL_MATCH_MAX_WORDS];
    uint64_t total[VL_MATCH_MAX_WORDS];
};
veil_err vl_match_snap_put(const struct vl_match *m, const struct vl_match_snap *snap,
                           struct vl_buf *b) VL_WUR;
int vl_match_snap_get(const struct vl_match *m, struct vl_reader *r,
                      struct vl_match_snap *snap) VL_WUR;

struct vl_hit {
    uint8_t doc[VL_DOCTOKEN_BYTES];
    int64_t version;
    double score;
};
struct vl_hits {
    struct vl_hit *h;
    size_t n;
};
/* Runs a match: the live documents that satisfy every term, best first by BM25 (ties by
 * token). With snap->set, counts as the snapshot says; else fills it. Index entries that
 * are missing (and not holes), altered or moved are an integrity violation. */
veil_err vl_match_run(veil_session *s, const struct vl_coll *c, const struct vl_match *m,
                      struct vl_match_snap *snap, struct vl_hits *out, veil_status *st) VL_WUR;
/* Does a decrypted document satisfy the match (its words, as its fields now hold them)? */
bool vl_match_doc(const struct vl_match *m, const json_t *doc);
/* Does hit a come before b? */
bool vl_hit_before(const struct vl_hit *a, const struct vl_hit *b);

/* ---- sums under Paillier (sums.c) ---- */
#include "tactics/tactics.h"
/* Generates fc's key pair from a 32-byte seed (f->sum_bits), and frees it. */
veil_err vl_paillier_field_init(struct vl_fctx *fc, const uint8_t *seed) VL_WUR;
void vl_paillier_field_free(struct vl_fctx *fc);
/* Adds the Paillier cell of m (units) for fc to the sealed document. */
veil_err vl_paillier_cell(struct vl_sealed *s, const struct vl_fctx *fc, int64_t m) VL_WUR;
/* n^2 of fc's key, big-endian, owned by the key. */
struct vl_bytes vl_paillier_modulus(const struct vl_fctx *fc);
/* Decrypts a product of cells into the sum it hides. */
veil_err vl_paillier_sum(const struct vl_fctx *fc, const struct vl_bytes *product,
                         vl_i128 *out) VL_WUR;

/* ---- marks: noticing a trusted state that is behind the stores (mark.c) ----
 *
 * Every store keeps sealed copies of the trusted state's mark (trusted.h): in the key-value
 * space of each collection's table, one written with every write batch, in the same store
 * call as its rows; and in an installation table of its own, one written whenever a block
 * of row sequence numbers is reserved, before any row of it. A copy sits in slot
 * mark % VL_MARK_SLOTS, so that writes finishing out of order cannot hide a higher mark
 * behind a lower one. Label: BLAKE2b-128 keyed by the label key of lp(table) || slot;
 * value: XChaCha20-Poly1305 box of the mark (u64) under the sealing key, with AAD naming
 * table and slot: 48 bytes, a length no search entry has. */
#define VL_MARK_SLOTS 16
#define VL_MARK_VALUE_BYTES (24 + 8 + 16)
struct vl_mark_entry {
    uint8_t label[VL_KV_KEY_BYTES];
    uint8_t value[VL_MARK_VALUE_BYTES];
    struct vl_kv kv;               /* views of label and value */
};
/* Loads the installation's mark keys (making them, wrapped by the root key, the first
 * time) and whether a rollback was ever accepted. */
veil_err vl_mark_init(veil_vault *v, veil_status *st) VL_WUR;
/* The entry that holds `mark` in `table`. */
void vl_mark_entry(const veil_vault *v, const char *table, uint64_t mark,
                   struct vl_mark_entry *e);
/* Writes `mark` to the installation table of every store. */
veil_err vl_mark_global(veil_vault *v, uint64_t mark) VL_WUR;
/* At open: VEIL_ERR_CONFLICT, with a message saying what happened and what to do, when a
 * store holds a mark above the trusted state's; VEIL_ERR_INTEGRITY when a mark does not
 * open (a store altered it). */
veil_err vl_mark_check(veil_vault *v, veil_status *st) VL_WUR;
/* Opens a vault without the check and without finishing writes in flight: only for
 * accepting a rollback, which does both itself once the loss is accepted. */
veil_err vl_vault_open_behind(const char *datadir, veil_vault **out, veil_status *st) VL_WUR;
/* The opaque table name of a collection (what vl_coll_get puts in c->table). */
veil_err vl_coll_table(veil_vault *v, int64_t tenant_id, const char *tenant, const char *coll,
                       char out[2 * 16 + 1], veil_status *st) VL_WUR;
/* Marks documents (by token) deleted in the trusted state and removes their rows from the
 * stores, through intents like any delete: what accepting a rollback does with documents
 * whose last version the stores no longer hold. *done: how many were. */
veil_err vl_write_forget(veil_session *s, const struct vl_coll *c,
                         const uint8_t (*docs)[VL_DOCTOKEN_BYTES], size_t n,
                         size_t *done) VL_WUR;

/* ---- errors worth an audit event ---- */
/* Records that a store returned data that failed a check; returns VEIL_ERR_INTEGRITY with
 * st filled. Never says which check failed. */
/* A time in seconds since the epoch as RFC 3339 UTC ("2026-12-03T00:00:00Z"). */
void vl_rfc3339(char out[32], int64_t t);

/* ---- differential privacy (dp.c) ---- */
struct vl_dp_answer {
    uint64_t eps;          /* what this answer costs (micro-epsilon): the query's or the
                              role's epsilon */
    bool spent;            /* the budget was paid for a new answer: end it with vl_dp_end */
    int64_t ticket;
    char *kept;            /* or the answer kept from earlier in the period (malloc'd) */
    uint64_t token_spent;  /* micro-epsilon spent in the period, after this answer */
    uint64_t role_spent;
    int64_t period;        /* the period's start */
};
/* The key of a query: BLAKE2b-256 of its body, keys sorted, without explain and refresh. */
veil_err vl_dp_query_key(const json_t *q, uint8_t out[32]) VL_WUR;
/* Pays for an answer of role r to query q (or finds it kept; waits for one being
 * computed). VEIL_ERR_PRIVACY_BUDGET, with st->retry_after, when the token's or the role's
 * budget cannot pay. */
veil_err vl_dp_begin(veil_session *s, const struct vl_coll *c, const struct vl_role *r,
                     const json_t *q, uint64_t eps, bool refresh, struct vl_dp_answer *out,
                     veil_status *st) VL_WUR;
/* Keeps the answer (kept: its text) or, kept NULL, gives the epsilon back: nothing was
 * released. Does nothing unless a->spent. */
void vl_dp_end(veil_session *s, struct vl_dp_answer *a, const char *kept);
void vl_dp_answer_free(struct vl_dp_answer *a);
/* The "privacy" object of an answer, without threshold and noise (the caller adds them). */
json_t *vl_dp_privacy_json(const struct vl_role *r, const struct vl_dp_answer *a, bool cached);

veil_err vl_breach(veil_vault *v, const veil_session *s, const char *coll, const char *what,
                   veil_status *st);

/* A call to store `store` of the vault failed with rc: VEIL_ERR_INTEGRITY (the driver met
 * stored data no honest store holds) is a breach, through vl_breach; VEIL_ERR_TOO_LARGE a
 * request too large for the store; VEIL_ERR_INTERNAL a bug; anything else the store cannot
 * be reached (VEIL_ERR_STORE_UNAVAILABLE). Returns that error with st filled. */
veil_err vl_store_failed(veil_session *s, const struct vl_coll *c, int store, veil_err rc,
                         veil_status *st);

/* ---- verify.c: complete answers ---- */

/* The token key of a collection's (column, token), level a range prefix's digits (0 for
 * other tokens); of its set of all live documents; of
 * the set of documents with some token, or a cell, in a column ("any"). */
void vl_coll_tk(const struct vl_coll *c, const uint8_t col[VL_COL_BYTES],
                const struct vl_bytes *tok, uint8_t level, uint8_t out[VL_TK_BYTES]);
void vl_coll_all_tk(const struct vl_coll *c, uint8_t out[VL_TK_BYTES]);
void vl_coll_any_tk(const struct vl_coll *c, const uint8_t col[VL_COL_BYTES],
                    uint8_t out[VL_TK_BYTES]);
/* The token keys of a sealed document (of each token, "all", and "any" of each equality
 * column and MAC tags' column it has a token or a cell in), sorted and each once, as the
 * trusted state keeps them (out is initialised here). */
veil_err vl_sealed_tks(const struct vl_coll *c, const struct vl_sealed *sd, size_t nstores,
                       struct vl_buf *out) VL_WUR;
/* Document tokens, sorted ascending, each once; owned. */
struct vl_docset {
    uint8_t (*docs)[VL_DOCTOKEN_BYTES];
    size_t n;
};
void vl_docset_free(struct vl_docset *d);
/* For benchmarks only, to measure what verification costs: with on false, writes keep no
 * token sets and filtered queries and aggregates believe the store's index, as before token
 * sets existed, until it is called again with true. Never reachable from a configuration,
 * the API or the command line; documents written meanwhile fail verification afterwards. */
void vl_vault_verify(veil_vault *v, bool on);
/* The candidates of a plan as the store's index lists them, unchecked (v->unverified):
 * from `after`, at most `limit`. */
veil_err vl_plan_candidates_unverified(veil_session *s, const struct vl_coll *c,
                                       const struct vl_plan *p, const uint8_t *after,
                                       size_t limit, struct vl_docset *out,
                                       veil_status *st) VL_WUR;
/* An aggregate to check (verify.c "aggregates"): fetch asks the store and fills *res,
 * already checked for shape (a breach otherwise); res holds the answer once it agrees with
 * the trusted state. */
struct vl_agg_check {
    const struct vl_plan *plan;            /* the where (NULL or n == 0: none) */
    const struct vl_docset *hits;          /* a match's documents (sorted), or NULL */
    const uint8_t (*gcols)[VL_COL_BYTES];  /* the group columns */
    size_t ngroup;
    const uint8_t (*tcols)[VL_COL_BYTES];  /* the MAC tags' columns */
    size_t ntags;
    size_t tag_base;                       /* values[tag_base + t]: tag column t */
    veil_err (*fetch)(void *ctx, struct vl_agg_result *res, veil_status *st);
    void *ctx;
    struct vl_agg_result *res;
};
/* Asks the store until its answer agrees with the trusted token sets (and the writes in
 * flight): every group's rows are exactly the live rows matching the where (or found by
 * the match) that have its keys, and its tags exactly those of its rows with a cell; else
 * a breach (502). */
veil_err vl_agg_verified(veil_session *s, const struct vl_coll *c, struct vl_agg_check *k,
                         veil_status *st) VL_WUR;
/* The trusted size of the plan's smallest condition (the documents having one of its
 * tokens). */
veil_err vl_plan_min_size(veil_session *s, const struct vl_coll *c, const struct vl_plan *p,
                          uint64_t *min, veil_status *st) VL_WUR;
/* The candidates of a plan with at least one condition (and not empty): the verified
 * members of its most selective condition, intersected with those of the conditions whose
 * sets are not much larger. *exact: all conditions were intersected. Every document that
 * matches the plan is a candidate; a candidate matches unless a write changed it since,
 * or, when !*exact, it fails a condition not intersected: the caller checks the opened
 * document. */
veil_err vl_plan_candidates(veil_session *s, const struct vl_coll *c, const struct vl_plan *p,
                            struct vl_docset *out, bool *exact, veil_status *st) VL_WUR;

/* Returns a malloc'd copy of a JSON text (json_dumps), or NULL. */
char *vl_json_text(const json_t *j);

#endif
