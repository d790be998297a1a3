/*
 * trusted.h: the trusted state (docs/design.md "Writes, crashes and freshness"). It lives in the
 * trusted domain, next to the keys: the key vault (wrapped tenant keys), tenants, hashed
 * bearer tokens, policies, per-collection row sequence counters, and per document its
 * current version, row sequence number and a digest of what was written for it, plus write
 * intents. Reads check what a store returns against this state; writes go through intents
 * so that a crash at any moment is finished at the next start-up. Reservations, intents
 * and privacy budget spends are durable (synced before they return), the rest survives a
 * crash of the process.
 *
 * It also keeps the differential privacy budgets spent per collection and period, and the
 * answers kept so that the same aggregate is not paid for (nor noised afresh) twice. Those
 * kept answers are plaintext aggregates of a tenant's data: trusted.db is as sensitive with
 * them as it is with its wrapped keys and kept fields, and a tenant's shred removes them.
 *
 * SQLite in WAL mode by default. Every function is one transaction and may be called from
 * several threads.
 */
#ifndef VL_TRUSTED_H
#define VL_TRUSTED_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "crypto/sethash.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/status.h"

struct vl_trusted;

/* Opens (create: creates) the trusted state at url ("sqlite:trusted.db", relative to
 * datadir). */
veil_err vl_trusted_open(const char *url, const char *datadir, bool create,
                         struct vl_trusted **out, veil_status *st) VL_WUR;
void vl_trusted_close(struct vl_trusted *t);

/* ---- tenants and their wrapped keys ---- */
struct vl_tenant_row {
    int64_t id;
    uint32_t key_version;
    bool shredded;
};
veil_err vl_trusted_tenant_create(struct vl_trusted *t, const char *name,
                                  const struct vl_bytes *wrapped_key, veil_status *st);
/* VEIL_ERR_NOT_FOUND when there is no such tenant. */
veil_err vl_trusted_tenant_find(struct vl_trusted *t, const char *name,
                                struct vl_tenant_row *out);
/* The wrapped key of (tenant, version); VEIL_ERR_NOT_FOUND when shredded or absent. */
veil_err vl_trusted_tenant_key(struct vl_trusted *t, int64_t tenant, uint32_t version,
                               struct vl_buf *wrapped);
veil_err vl_trusted_tenant_list(struct vl_trusted *t, json_t **out);
/* Deletes the tenant's wrapped keys, tokens' validity, and its documents' state; wipes the
 * freed pages (secure_delete) and truncates the WAL so no copy of a wrapped key remains. */
veil_err vl_trusted_tenant_shred(struct vl_trusted *t, int64_t tenant);

/* ---- tokens ---- */
veil_err vl_trusted_token_add(struct vl_trusted *t, const char *id, int64_t tenant,
                              const char *role, const uint8_t hash[32]);
/* VEIL_ERR_NOT_FOUND when absent, revoked or its tenant shredded. *tenant_name and *role
 * are malloc'd. */
veil_err vl_trusted_token_find(struct vl_trusted *t, const char *id, int64_t *tenant,
                               char **tenant_name, char **role, uint8_t hash[32]);
veil_err vl_trusted_token_revoke(struct vl_trusted *t, const char *id);
/* Records `at` (seconds since the epoch) as the token's last use, unless the use recorded
 * is less than `every` seconds older. */
veil_err vl_trusted_token_touch(struct vl_trusted *t, const char *id, int64_t at,
                                int64_t every);
/* The valid tokens, of `tenant` only when not NULL, oldest first: [{"id","tenant","role",
 * "created","last_used"}], times in seconds since the epoch, last_used null when never. */
veil_err vl_trusted_token_list(struct vl_trusted *t, const char *tenant, json_t **out);

/* ---- collections ---- */
/* Stores a policy's canonical text: *created 1 if new, 0 if identical; VEIL_ERR_CONFLICT
 * when a different one exists. */
veil_err vl_trusted_collection_put(struct vl_trusted *t, int64_t tenant, const char *name,
                                   const char *canonical, int *created);
/* VEIL_ERR_NOT_FOUND when absent. *canonical is malloc'd. */
veil_err vl_trusted_collection_get(struct vl_trusted *t, int64_t tenant, const char *name,
                                   char **canonical);
/* A malloc'd array of malloc'd names, sorted. */
veil_err vl_trusted_collection_names(struct vl_trusted *t, int64_t tenant, char ***names,
                                     size_t *n);
/* Reserves a block of n consecutive row sequence numbers of a collection, durably (the
 * transaction syncs before it returns); *first is the first. The block starts at a
 * uniformly random place in [2^32, 2^62 - n] where it overlaps no block this state knows
 * of, so a state restored from a backup, which no longer knows the blocks reserved since,
 * reuses a number only if a new block lands on a lost one. *mark (may be NULL) receives
 * the mark the reservation moved to. VEIL_ERR_NOT_FOUND for an unknown collection. */
veil_err vl_trusted_seq_reserve(struct vl_trusted *t, int64_t tenant, const char *coll,
                                uint64_t n, uint64_t *first, uint64_t *mark) VL_WUR;

/* ---- the mark, and rollbacks ----
 *
 * The mark is a counter that grows by one with every block reservation and every write
 * batch's intents, in their own (durable) transactions. The engine writes it, sealed,
 * into the stores with each write, so a store that holds a higher mark than this state has
 * seen writes this state does not know of: the state was restored from a backup, or lost
 * its last transactions. */
veil_err vl_trusted_mark(struct vl_trusted *t, uint64_t *mark) VL_WUR;
/* A blob kept in `meta` under k, appended to out; VEIL_ERR_NOT_FOUND when absent. */
veil_err vl_trusted_meta_get(struct vl_trusted *t, const char *k, struct vl_buf *out) VL_WUR;
/* Stores v under k unless k exists (then nothing changes), durably. Read it back with
 * vl_trusted_meta_get: of two processes racing, the first wins. */
veil_err vl_trusted_meta_put_new(struct vl_trusted *t, const char *k,
                                 const struct vl_bytes *v) VL_WUR;
struct vl_rollback {
    uint64_t trusted_mark;  /* the mark before */
    uint64_t store_mark;    /* the highest mark the stores held */
    uint64_t mark;          /* the mark after: past both */
    uint32_t epoch;         /* the new search key epoch */
};
/* Records an operator's acceptance of a rollback, in one durable transaction: the mark
 * moves past store_mark (and its own value), and the search key epoch grows by one, so
 * every word's counters from its current count on get new label and value keys (its
 * earlier entries keep theirs); the lost writes may have used those counters. */
veil_err vl_trusted_rollback_accept(struct vl_trusted *t, uint64_t store_mark,
                                    struct vl_rollback *out) VL_WUR;
/* How many rollbacks were accepted. */
veil_err vl_trusted_rollbacks(struct vl_trusted *t, uint64_t *n) VL_WUR;
/* Every collection of every tenant not shredded. */
struct vl_collref {
    int64_t tenant;
    char *tenant_name;
    char *name;
};
veil_err vl_trusted_collections_all(struct vl_trusted *t, struct vl_collref **out,
                                    size_t *n) VL_WUR;
void vl_collrefs_free(struct vl_collref *c, size_t n);

/* ---- documents ---- */
#define VL_DIGEST_BYTES 32
struct vl_docstate {
    uint8_t doc[VL_DOCTOKEN_BYTES];
    bool exists;   /* ever written (a deleted document still has its last version) */
    bool live;     /* not deleted */
    int64_t version;
    uint64_t seq;
    uint8_t digest[VL_DIGEST_BYTES];
    /* A write still in flight (an unfinished intent): its version and digest. */
    bool pending;
    int64_t pending_version;
    uint64_t pending_seq;
    bool pending_delete;
    uint8_t pending_digest[VL_DIGEST_BYTES];
    /* The fields kept in trusted state, current and in flight; owned (n = 0: none). */
    struct vl_bytes part;
    struct vl_bytes pending_part;
};
/* Fills states[i] for docs[i] (doc copied in); release with vl_docstates_free. */
veil_err vl_trusted_docs_get(struct vl_trusted *t, int64_t tenant, const char *coll,
                             const struct vl_bytes *docs, size_t n,
                             struct vl_docstate *states);
void vl_docstates_free(struct vl_docstate *states, size_t n);
/* Up to `limit` tokens of live documents of a collection, in byte order, after `after`
 * (NULL: from the first); *n of them. */
veil_err vl_trusted_docs_page(struct vl_trusted *t, int64_t tenant, const char *coll,
                              const uint8_t *after, size_t limit,
                              uint8_t (*docs)[VL_DOCTOKEN_BYTES], size_t *n) VL_WUR;

enum vl_intent_op { VL_INTENT_PUT = 1, VL_INTENT_DELETE = 2 };
struct vl_intent {
    int64_t id;                 /* set by begin */
    enum vl_intent_op op;
    uint8_t doc[VL_DOCTOKEN_BYTES];
    int64_t old_version;        /* what the writer saw: 0 = never written */
    int64_t version;            /* the new version */
    uint64_t seq;
    uint8_t digest[VL_DIGEST_BYTES];
    struct vl_bytes payload;    /* what to (re)write to the stores; owned by the caller */
    struct vl_bytes trusted_part; /* the fields kept in trusted state */
    struct vl_bytes slen;       /* search: the new document's word counts per field, as
                                   (u32 field, u32 words) big-endian pairs; n = 0: none */
    struct vl_bytes tks;        /* the keys (VL_TK_BYTES each) of the tokens the new version
                                   has, the collection's "all" key among them; n = 0 for a
                                   delete */
    uint64_t mark;              /* set by begin: the mark of the batch */
};
/* In one durable transaction: checks each document is still at old_version with no write
 * in flight (VEIL_ERR_CONFLICT otherwise, and nothing is recorded), then records the
 * intents and moves the mark on by one (in[i].mark, the same for the whole batch). */
veil_err vl_trusted_intents_begin(struct vl_trusted *t, int64_t tenant, const char *coll,
                                  struct vl_intent *in, size_t n);
/* In one transaction: applies the intents to the document state (new version, seq,
 * digest, trusted part; or deleted) and removes them. The token sets follow: each token
 * of the old version (if live) loses the document, each of the new one's gains it. */
veil_err vl_trusted_intents_finish(struct vl_trusted *t, int64_t tenant, const char *coll,
                                   const struct vl_intent *in, size_t n);
/* Forgets intents whose store writes failed and left nothing behind. */
veil_err vl_trusted_intents_abort(struct vl_trusted *t, const struct vl_intent *in, size_t n);
/* Calls fn for every unfinished intent (start-up recovery). The intent's byte fields are
 * only valid during the call. Stops at the first error fn returns. */
typedef veil_err (*vl_intent_fn)(void *ctx, int64_t tenant, const char *coll,
                                 const struct vl_intent *in);
veil_err vl_trusted_intents_pending(struct vl_trusted *t, vl_intent_fn fn, void *ctx);

/* ---- search: per-word counters (docs/design.md "Text search") ----
 *
 * A word of a search field is known here only by its key, a keyed hash of field and stem.
 * Its counter is how many index entries it has been given: the store must hold entries
 * 0..count-1, except the holes: counters reserved by a write that has not finished (its
 * entries may not be written yet) or that failed (they never will be). Each write's
 * reservations are recorded with it and forgotten when its intent finishes; a crash, a
 * failed write or a conflict leaves them, so a search knows those entries may be missing
 * without anything being wrong.
 *
 * Per field, the number of live documents with words in it and their total count of words
 * (BM25's N and average length) follow the `slen` of finished intents. */
#define VL_WKEY_BYTES 16
struct vl_wordres {
    uint8_t wkey[VL_WKEY_BYTES]; /* in */
    uint64_t res;                /* in: the row sequence number of the write */
    uint64_t counter;            /* out: the reserved counter */
    uint32_t epoch;              /* out: the key epoch to seal its entry in */
};
/* In one transaction: reserves a counter for each item (items of the same word get
 * consecutive ones, in order) and records them as holes of their write (items of one
 * write, one `res`, must be adjacent). */
veil_err vl_trusted_words_reserve(struct vl_trusted *t, int64_t tenant, const char *coll,
                                  struct vl_wordres *w, size_t n) VL_WUR;

/* A read snapshot: every read through it sees the trusted state as it was when it began,
 * however long it stays open (SQLite WAL: writers go on meanwhile). A search reads
 * counters, holes and documents through one, so that it sees each write either finished,
 * with all its entries in the store, or not at all. The reads below take sn = NULL to
 * read the current state instead. */
struct vl_tsnap;
veil_err vl_trusted_snap_begin(struct vl_trusted *t, struct vl_tsnap **out) VL_WUR;
/* A snapshot that also stops every write to the trusted state until it ends (it holds
 * the write lock): what a reader takes when writes keep changing what it checks. Only
 * reads through it are allowed meanwhile, from this thread. */
veil_err vl_trusted_snap_freeze(struct vl_trusted *t, struct vl_tsnap **out) VL_WUR;
void vl_trusted_snap_end(struct vl_tsnap *sn);

/* counts[i]: the counter of wkeys[i] (0 for a word never written). */
veil_err vl_trusted_words_count(struct vl_trusted *t, struct vl_tsnap *sn, int64_t tenant,
                                const char *coll, const uint8_t (*wkeys)[VL_WKEY_BYTES],
                                size_t n, uint64_t *counts) VL_WUR;
/* The key epochs of a word's entries: r[i] covers counters r[i].first up to r[i+1].first
 * (the last, up from its first), r[0].first is 0. One range but after accepted rollbacks.
 * *out is malloc'd; *n = 0 (and *out NULL) for a word never written. */
struct vl_wordrange {
    uint64_t first;
    uint32_t epoch;
};
veil_err vl_trusted_words_ranges(struct vl_trusted *t, struct vl_tsnap *sn, int64_t tenant,
                                 const char *coll, const uint8_t wkey[VL_WKEY_BYTES],
                                 struct vl_wordrange **out, size_t *n) VL_WUR;
/* hole[i]: is (wkey, counters[i]) a hole? */
veil_err vl_trusted_holes(struct vl_trusted *t, struct vl_tsnap *sn, int64_t tenant,
                          const char *coll, const uint8_t wkey[VL_WKEY_BYTES],
                          const uint64_t *counters, size_t n, bool *hole) VL_WUR;

/* The live document whose current row sequence number is `seq`, if any. */
struct vl_seqdoc {
    uint64_t seq;                   /* in */
    bool found;
    uint8_t doc[VL_DOCTOKEN_BYTES];
    int64_t version;
    struct vl_bytes slen;           /* owned; n = 0: none */
};
veil_err vl_trusted_docs_by_seq(struct vl_trusted *t, struct vl_tsnap *sn, int64_t tenant,
                                const char *coll, struct vl_seqdoc *d, size_t n) VL_WUR;
void vl_seqdocs_free(struct vl_seqdoc *d, size_t n);
/* The number of live documents with words in search field `field` (its index in the
 * policy), and their total number of words. */
veil_err vl_trusted_search_stats(struct vl_trusted *t, struct vl_tsnap *sn, int64_t tenant,
                                 const char *coll, uint32_t field, uint64_t *ndocs,
                                 uint64_t *total) VL_WUR;

/* ---- token sets (crypto/sethash.h): what the stores' indexes must hold ----
 *
 * Per (collection, token key): how many live documents have the token in their current
 * version, and the sums hq (over their document tokens) and ha (over their row sequence
 * numbers). A token no live document has has no row: n = 0 and both sums 0. */
struct vl_tokset {
    uint64_t n;
    vl_u128 hq;
    vl_u128 ha;
};
/* out[i]: the set of tks[i]. VEIL_ERR_INTEGRITY for a row the state cannot have written. */
veil_err vl_trusted_toksets(struct vl_trusted *t, struct vl_tsnap *sn, int64_t tenant,
                            const char *coll, const uint8_t (*tks)[VL_TK_BYTES], size_t n,
                            struct vl_tokset *out) VL_WUR;
/* A write in flight (an unfinished intent) of a collection: the document, what it writes
 * (its new sequence number and token keys; none for a delete), and what it replaces. */
struct vl_inflight {
    uint8_t doc[VL_DOCTOKEN_BYTES];
    bool del;
    uint64_t seq;
    struct vl_bytes tks;        /* owned */
    bool old_live;
    uint64_t old_seq;
    struct vl_bytes old_tks;    /* owned */
};
veil_err vl_trusted_inflight(struct vl_trusted *t, struct vl_tsnap *sn, int64_t tenant,
                             const char *coll, struct vl_inflight **out, size_t *n) VL_WUR;
void vl_inflight_free(struct vl_inflight *f, size_t n);
/* The token keys of documents' current versions: tks[i] (owned, n = 0 when not live), and
 * their row sequence numbers seqs[i] (0 when not live). */
veil_err vl_trusted_docs_tks(struct vl_trusted *t, struct vl_tsnap *sn, int64_t tenant,
                             const char *coll, const uint8_t (*docs)[VL_DOCTOKEN_BYTES],
                             size_t n, struct vl_bytes *tks, uint64_t *seqs) VL_WUR;

/* ---- differential privacy: budgets and kept answers ----
 *
 * Spending is in integer micro-epsilon and delta in units of 1e-18, never floating point,
 * so that sums are exact. A period is named by its start (seconds since the epoch). Per
 * (tenant, collection, period) there is one spending row per role (its total, all tokens
 * together) and one per token of the role; per (tenant, collection, role, period, query)
 * at most one answer, pending (being computed, under a ticket) or kept (its text).
 *
 * A budget restored from a backup of trusted.db goes back with it: the spending since the
 * backup is forgotten. */
struct vl_dp_ask {
    int64_t tenant;
    const char *coll;
    const char *role;
    const char *token;          /* the token's id, not empty */
    int64_t period;             /* start of the current period */
    uint8_t query[32];          /* hash of the canonical query */
    uint64_t eps;               /* what a new answer costs, micro-epsilon (<= INT64_MAX) */
    uint64_t delta;             /* its delta, units of 1e-18 (<= INT64_MAX) */
    uint64_t token_budget;      /* micro-epsilon per period, for this token */
    uint64_t role_budget;       /* micro-epsilon per period, all tokens of the role */
    bool refresh;               /* spend for a new answer even when one is kept */
    int64_t now;                /* seconds since the epoch */
    int64_t stale_after;        /* a pending answer older than this many seconds was abandoned */
};
enum vl_dp_outcome {
    VL_DP_SPENT,      /* budget spent (durably) and a pending answer recorded: compute it,
                         then vl_trusted_dp_finish or vl_trusted_dp_abort with the ticket */
    VL_DP_KEPT,       /* an answer for this (tenant, coll, role, period, query) is kept: *answer */
    VL_DP_PENDING,    /* another request is computing that answer right now: wait, ask again */
    VL_DP_EXHAUSTED,  /* the token's or the role's budget cannot pay eps: nothing changed */
};
struct vl_dp_reply {
    enum vl_dp_outcome outcome;
    int64_t ticket;             /* SPENT (0 otherwise) */
    char *answer;               /* KEPT: malloc'd copy of the text given to finish (else NULL) */
    uint64_t token_spent, role_spent;    /* micro-epsilon spent this period, after the call */
    uint64_t token_delta, role_delta;    /* delta spent this period (1e-18) */
    bool token_exhausted, role_exhausted; /* EXHAUSTED: which one (or both); both when a
                                             rollback was accepted in this period */
    uint64_t mark;                        /* SPENT: the mark the spend moved to (the
                                             engine writes it to the stores before it
                                             answers, so a restored trusted.db that
                                             forgot the spend is noticed at start) */
};
/* One durable transaction (synced before it returns, so the spending survives a power
 * loss before the answer is released). Unless a->refresh, a kept answer of the key is KEPT
 * and a pending one younger than a->stale_after is PENDING, nothing spent (whatever is
 * left of the budgets). Otherwise, when both the token's and the role's spending of the
 * period plus a->eps stay within their budgets, adds eps and delta (and one answer) to
 * both and records the answer as pending, replacing a kept or abandoned one of the key:
 * SPENT; else EXHAUSTED, nothing spent. It also forgets some of the role's answers of
 * periods before a->period in this collection, and the collection's spending rows of
 * periods more than 400 days before it. *r is filled on VEIL_OK (the caller frees
 * r->answer); on error it is zeroed and nothing changed. VEIL_ERR_INTERNAL for an invalid
 * ask (a NULL name, an empty token, eps or delta above INT64_MAX, stale_after < 0). */
veil_err vl_trusted_dp_begin(struct vl_trusted *t, const struct vl_dp_ask *a,
                             struct vl_dp_reply *r) VL_WUR;
/* Keeps the answer (text) of a ticket; later asks of the same query in the period get it.
 * VEIL_ERR_NOT_FOUND, nothing changed, when the ticket is not pending: unknown, finished,
 * aborted, taken over after it was abandoned, or its period forgotten (its spend stands). */
veil_err vl_trusted_dp_finish(struct vl_trusted *t, int64_t ticket, const char *answer) VL_WUR;
/* The answer was not released: forget the pending answer; refund: give its eps/delta (and
 * its answer count) back to its token and role, none going below 0. VEIL_ERR_NOT_FOUND as
 * for finish. */
veil_err vl_trusted_dp_abort(struct vl_trusted *t, int64_t ticket, bool refund) VL_WUR;
/* Spending of a collection in a period: [{"role","token" (null for the role's total),
 * "epsilon" (micro, integer),"delta" (1e-18, integer),"answers" (integer)}], by role, each
 * role's total first, then its tokens by id; role or token filter when not NULL (a role's
 * total is listed only when token is NULL). *out is the caller's. */
veil_err vl_trusted_dp_usage(struct vl_trusted *t, int64_t tenant, const char *coll,
                             int64_t period, const char *role, const char *token,
                             json_t **out) VL_WUR;
/* Sets the period's spending (epsilon, delta, answers) back to 0: of the role's total and
 * all its tokens (role set, token NULL), or of one token (token set; of that role only
 * when role is set too), the role's total then staying as it is. *n: how many token rows
 * changed (the role's total is not counted). Kept answers stay. VEIL_ERR_INTERNAL when
 * both role and token are NULL. */
veil_err vl_trusted_dp_reset(struct vl_trusted *t, int64_t tenant, const char *coll,
                             int64_t period, const char *role, const char *token,
                             size_t *n) VL_WUR;

#endif
