/*
 * write.c: put, delete and bulk (docs/design.md "Writes, crashes and freshness").
 *
 * A batch of writes to one collection goes: (1) lock the documents' stripes, read their
 * trusted state, check versions and If-Match; (2) reserve row sequence numbers and seal
 * every document; (3) record intents (one trusted transaction, synced to disk, which also
 * moves the trusted state's mark on); (4) apply the payloads to the stores, batched per
 * store, each store's call carrying the batch's mark (mark.c); (5) finish the intents (one
 * trusted transaction). A crash after (3) is finished by start-up recovery from the
 * intents; a store that fails in (4) has written nothing (each driver call is atomic), so
 * the intents are dropped and the client gets 503 with nothing half-written.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "crypto/crypto.h"
#include "engine/write.h"
#include "util/log.h"

#define PAYLOAD_FORMAT_V1 1 /* as written before search entries existed: no kv section */
#define PAYLOAD_BRIEF 2
#define PAYLOAD_FORMAT 3    /* with search-index entries */
#define OP_PUT 1
#define OP_DELETE 2
#define BULK_BATCH 256
#define GENERATED_ID_BYTES 16

struct item {
    char *id;
    const json_t *doc;        /* NULL: a delete */
    int64_t if_match;
    uint8_t token[VL_DOCTOKEN_BYTES];
    veil_err rc;
    veil_status st;
    bool created;
    int64_t version;
    uint64_t seq;
    struct vl_sealed sealed;
    struct vl_docwords words; /* its search fields' words */
    struct vl_buf payload;
    struct vl_buf brief;
    struct vl_buf tks;        /* its token keys (verify.c), for the trusted token sets */
    struct vl_intent intent;
};

/* ---- payloads ---- */

/* be: the batch's search entries, of which this write carries those it owns (idx). */
static veil_err payload_build(const veil_vault *v, const struct vl_coll *c, struct item *it,
                              uint64_t seq, const struct vl_batch_entries *be, size_t idx)
{
    struct vl_buf *b = &it->payload;
    vl_buf_init(b, SIZE_MAX);
    veil_err rc = vl_buf_put_u8(b, PAYLOAD_FORMAT);
    if (rc == VEIL_OK) {
        rc = vl_buf_put_lps(b, c->table);
    }
    if (rc == VEIL_OK) {
        rc = vl_buf_put_lp(b, it->token, VL_DOCTOKEN_BYTES);
    }
    if (rc == VEIL_OK) {
        rc = vl_buf_put_u64(b, seq);
    }
    if (rc == VEIL_OK) {
        rc = vl_buf_put_u8(b, (uint8_t)v->nstores);
    }
    for (size_t i = 0; rc == VEIL_OK && i < v->nstores; i++) {
        const struct vl_sealed *s = &it->sealed;
        bool put = it->doc != NULL && s->parts[i].len > 0;
        rc = vl_buf_put_u8(b, (uint8_t)i);
        if (rc == VEIL_OK) {
            rc = vl_buf_put_u8(b, put ? OP_PUT : OP_DELETE);
        }
        if (rc == VEIL_OK) {
            rc = vl_buf_put_lp(b, put ? s->parts[i].data : NULL, put ? s->parts[i].len : 0);
        }
        if (rc == VEIL_OK) {
            rc = vl_buf_put_u32(b, put ? (uint32_t)s->ntokens[i] : 0);
        }
        for (size_t k = 0; put && rc == VEIL_OK && k < s->ntokens[i]; k++) {
            rc = vl_buf_append(b, s->tokens[i][k].col, VL_COL_BYTES);
            if (rc == VEIL_OK) {
                rc = vl_buf_put_lp(b, s->tokens[i][k].tok.p, s->tokens[i][k].tok.n);
            }
        }
        if (rc == VEIL_OK) {
            rc = vl_buf_put_u32(b, put ? (uint32_t)s->nsums[i] : 0);
        }
        for (size_t k = 0; put && rc == VEIL_OK && k < s->nsums[i]; k++) {
            rc = vl_buf_append(b, s->sums[i][k].col, VL_COL_BYTES);
            for (int l = 0; rc == VEIL_OK && l < VL_SUM_LIMBS; l++) {
                rc = vl_buf_put_u64(b, (uint64_t)s->sums[i][k].limbs[l]);
            }
        }
        if (rc == VEIL_OK) {
            rc = vl_buf_put_u32(b, put ? (uint32_t)s->nprods[i] : 0);
        }
        for (size_t k = 0; put && rc == VEIL_OK && k < s->nprods[i]; k++) {
            rc = vl_buf_append(b, s->prods[i][k].col, VL_COL_BYTES);
            if (rc == VEIL_OK) {
                rc = vl_buf_put_lp(b, s->prods[i][k].val.p, s->prods[i][k].val.n);
            }
        }
        /* Search entries of the fields this store holds. */
        uint32_t nkv = 0;
        for (size_t k = 0; it->doc != NULL && k < be->n; k++) {
            nkv += be->owner[k] == idx && be->store[k] == (int)i;
        }
        if (rc == VEIL_OK) {
            rc = vl_buf_put_u32(b, nkv);
        }
        for (size_t k = 0; nkv > 0 && rc == VEIL_OK && k < be->n; k++) {
            if (be->owner[k] == idx && be->store[k] == (int)i) {
                rc = vl_buf_append(b, be->kv[k].key.p, VL_SEARCH_LABEL_BYTES);
                if (rc == VEIL_OK) {
                    rc = vl_buf_put_lp(b, be->kv[k].val.p, be->kv[k].val.n);
                }
            }
        }
    }
    return rc;
}

static veil_err payload_brief(const struct vl_coll *c, struct item *it)
{
    struct vl_buf *b = &it->brief;
    vl_buf_init(b, 256);
    veil_err rc = vl_buf_put_u8(b, PAYLOAD_BRIEF);
    if (rc == VEIL_OK) {
        rc = vl_buf_put_lps(b, c->table);
    }
    return rc != VEIL_OK ? rc : vl_buf_put_lp(b, it->token, VL_DOCTOKEN_BYTES);
}

veil_err vl_intent_recover(veil_vault *v, int64_t tenant, const char *coll,
                           const struct vl_intent *in)
{
    struct vl_reader r = {in->payload.p, in->payload.n};
    const uint8_t *table, *doc;
    size_t tablelen, doclen;
    uint8_t fmt;
    if (vl_read_u8(&r, &fmt) != 0) {
        return VEIL_ERR_INTERNAL;
    }
    if (fmt == PAYLOAD_FORMAT || fmt == PAYLOAD_FORMAT_V1) {
        veil_err rc = vl_payload_apply(v, &in->payload, 1, 0);
        return rc != VEIL_OK ? rc : vl_trusted_intents_finish(v->trusted, tenant, coll, in, 1);
    }
    if (fmt != PAYLOAD_BRIEF || v->nstores != 1 || vl_read_lp(&r, &table, &tablelen) != 0 ||
        tablelen >= VL_TABLE_NAME_MAX || vl_read_lp(&r, &doc, &doclen) != 0 ||
        doclen != VL_DOCTOKEN_BYTES) {
        vl_log(VL_LOG_ERROR, "an unfinished write has a malformed intent");
        return VEIL_ERR_INTERNAL;
    }
    char name[VL_TABLE_NAME_MAX];
    memcpy(name, table, tablelen);
    name[tablelen] = '\0';
    struct vl_bytes key = {(uint8_t *)doc, VL_DOCTOKEN_BYTES};
    struct vl_rows rows = {0};
    struct vl_store *s = v->stores[0];
    veil_err rc = s->ops->get_rows(s, name, &key, 1, &rows);
    if (rc != VEIL_OK) {
        return rc;
    }
    bool done;
    if (in->op == VL_INTENT_DELETE) {
        done = rows.n == 0;
    } else {
        uint8_t digest[VL_DIGEST_BYTES];
        struct vl_bytes part = rows.n == 1 ? rows.rows[0].blob : (struct vl_bytes){NULL, 0};
        vl_doc_digest(in->seq, &part, 1, &in->trusted_part, digest);
        done = rows.n == 1 && rows.rows[0].seq == in->seq &&
               vl_ct_equal(digest, in->digest, VL_DIGEST_BYTES);
    }
    vl_rows_free(&rows);
    return done ? vl_trusted_intents_finish(v->trusted, tenant, coll, in, 1)
                : vl_trusted_intents_abort(v->trusted, in, 1);
}

/* A parsed payload: views into its bytes. */
struct parsed {
    const uint8_t *table;
    size_t tablelen;
    const uint8_t *doc;
    uint64_t seq;
    uint8_t nstores;
    struct {
        uint8_t op;
        struct vl_bytes part;
        struct vl_token *tokens;
        uint32_t ntok;
        struct vl_sum_cell *sums;
        uint32_t nsum;
        struct vl_prod_cell *prods;
        uint32_t nprod;
        struct vl_kv *kv;
        uint32_t nkv;
    } s[VL_MAX_STORES];
};

static void parsed_free(struct parsed *p)
{
    for (size_t i = 0; i < VL_MAX_STORES; i++) {
        free(p->s[i].tokens);
        free(p->s[i].sums);
        free(p->s[i].prods);
        free(p->s[i].kv);
        p->s[i].tokens = NULL;
        p->s[i].sums = NULL;
        p->s[i].prods = NULL;
        p->s[i].kv = NULL;
    }
}

static int payload_parse(const struct vl_bytes *b, struct parsed *p)
{
    struct vl_reader r = {b->p, b->n};
    uint8_t fmt;
    size_t doclen;
    memset(p, 0, sizeof(*p));
    if (vl_read_u8(&r, &fmt) != 0 || (fmt != PAYLOAD_FORMAT && fmt != PAYLOAD_FORMAT_V1) ||
        vl_read_lp(&r, &p->table, &p->tablelen) != 0 || p->tablelen >= VL_TABLE_NAME_MAX ||
        vl_read_lp(&r, &p->doc, &doclen) != 0 || doclen != VL_DOCTOKEN_BYTES ||
        vl_read_u64(&r, &p->seq) != 0 || vl_read_u8(&r, &p->nstores) != 0 ||
        p->nstores > VL_MAX_STORES) {
        return -1;
    }
    for (uint8_t i = 0; i < p->nstores; i++) {
        uint8_t idx;
        const uint8_t *part;
        if (vl_read_u8(&r, &idx) != 0 || idx != i || vl_read_u8(&r, &p->s[i].op) != 0 ||
            vl_read_lp(&r, &part, &p->s[i].part.n) != 0 ||
            vl_read_u32(&r, &p->s[i].ntok) != 0 || p->s[i].ntok > r.n / (VL_COL_BYTES + 4)) {
            goto bad;
        }
        p->s[i].part.p = (uint8_t *)part;
        if (p->s[i].ntok > 0 &&
            (p->s[i].tokens = calloc(p->s[i].ntok, sizeof(struct vl_token))) == NULL) {
            goto bad;
        }
        for (uint32_t k = 0; k < p->s[i].ntok; k++) {
            const uint8_t *col, *tok;
            if (vl_read_bytes(&r, &col, VL_COL_BYTES) != 0 ||
                vl_read_lp(&r, &tok, &p->s[i].tokens[k].tok.n) != 0) {
                goto bad;
            }
            memcpy(p->s[i].tokens[k].col, col, VL_COL_BYTES);
            p->s[i].tokens[k].tok.p = (uint8_t *)tok;
        }
        if (vl_read_u32(&r, &p->s[i].nsum) != 0 ||
            p->s[i].nsum > r.n / (VL_COL_BYTES + 8 * VL_SUM_LIMBS)) {
            goto bad;
        }
        if (p->s[i].nsum > 0 &&
            (p->s[i].sums = calloc(p->s[i].nsum, sizeof(struct vl_sum_cell))) == NULL) {
            goto bad;
        }
        for (uint32_t k = 0; k < p->s[i].nsum; k++) {
            const uint8_t *col;
            if (vl_read_bytes(&r, &col, VL_COL_BYTES) != 0) {
                goto bad;
            }
            memcpy(p->s[i].sums[k].col, col, VL_COL_BYTES);
            for (int l = 0; l < VL_SUM_LIMBS; l++) {
                uint64_t limb;
                if (vl_read_u64(&r, &limb) != 0) {
                    goto bad;
                }
                p->s[i].sums[k].limbs[l] = (int64_t)limb;
            }
        }
        if (vl_read_u32(&r, &p->s[i].nprod) != 0 ||
            p->s[i].nprod > r.n / (VL_COL_BYTES + 4)) {
            goto bad;
        }
        if (p->s[i].nprod > 0 &&
            (p->s[i].prods = calloc(p->s[i].nprod, sizeof(struct vl_prod_cell))) == NULL) {
            goto bad;
        }
        for (uint32_t k = 0; k < p->s[i].nprod; k++) {
            const uint8_t *col, *val;
            if (vl_read_bytes(&r, &col, VL_COL_BYTES) != 0 ||
                vl_read_lp(&r, &val, &p->s[i].prods[k].val.n) != 0) {
                goto bad;
            }
            memcpy(p->s[i].prods[k].col, col, VL_COL_BYTES);
            p->s[i].prods[k].val.p = (uint8_t *)val;
        }
        if (fmt == PAYLOAD_FORMAT_V1) {
            continue;
        }
        if (vl_read_u32(&r, &p->s[i].nkv) != 0 ||
            p->s[i].nkv > r.n / (VL_SEARCH_LABEL_BYTES + 4)) {
            goto bad;
        }
        if (p->s[i].nkv > 0 &&
            (p->s[i].kv = calloc(p->s[i].nkv, sizeof(struct vl_kv))) == NULL) {
            goto bad;
        }
        for (uint32_t k = 0; k < p->s[i].nkv; k++) {
            const uint8_t *key, *val;
            if (vl_read_bytes(&r, &key, VL_SEARCH_LABEL_BYTES) != 0 ||
                vl_read_lp(&r, &val, &p->s[i].kv[k].val.n) != 0) {
                goto bad;
            }
            p->s[i].kv[k].key.p = (uint8_t *)key;
            p->s[i].kv[k].key.n = VL_SEARCH_LABEL_BYTES;
            p->s[i].kv[k].val.p = (uint8_t *)val;
        }
    }
    if (r.n == 0) {
        return 0;
    }
bad:
    parsed_free(p);
    return -1;
}

veil_err vl_payload_apply(veil_vault *v, const struct vl_bytes *payloads, size_t n,
                          uint64_t mark)
{
    struct vl_mark_entry me;
    veil_err rc = VEIL_OK;
    struct parsed *ps = calloc(n ? n : 1, sizeof(*ps));
    struct vl_row *rows = calloc(n ? n : 1, sizeof(*rows));
    struct vl_bytes *dels = calloc(n ? n : 1, sizeof(*dels));
    struct vl_kv *kv = NULL;
    size_t parsed = 0;
    if (ps == NULL || rows == NULL || dels == NULL) {
        rc = VEIL_ERR_INTERNAL;
        goto out;
    }
    for (; parsed < n; parsed++) {
        if (payload_parse(&payloads[parsed], &ps[parsed]) != 0 ||
            ps[parsed].nstores != v->nstores ||
            (parsed > 0 && (ps[parsed].tablelen != ps[0].tablelen ||
                            memcmp(ps[parsed].table, ps[0].table, ps[0].tablelen) != 0))) {
            vl_log(VL_LOG_ERROR, "a write payload is malformed or spans tables");
            rc = VEIL_ERR_INTERNAL;
            goto out;
        }
    }
    if (n == 0) {
        goto out;
    }
    char table[VL_TABLE_NAME_MAX];
    memcpy(table, ps[0].table, ps[0].tablelen);
    table[ps[0].tablelen] = '\0';
    for (size_t i = 0; rc == VEIL_OK && i < v->nstores; i++) {
        struct vl_store *s = v->stores[i];
        size_t nrows = 0, ndels = 0, nkv = 0;
        for (size_t k = 0; k < n; k++) {
            nkv += ps[k].s[i].op == OP_PUT ? ps[k].s[i].nkv : 0;
        }
        free(kv);
        if ((kv = malloc((nkv + 1) * sizeof(*kv))) == NULL) {
            rc = VEIL_ERR_INTERNAL;
            break;
        }
        nkv = 0;
        for (size_t k = 0; k < n; k++) {
            for (uint32_t e = 0; ps[k].s[i].op == OP_PUT && e < ps[k].s[i].nkv; e++) {
                kv[nkv++] = ps[k].s[i].kv[e];
            }
        }
        for (size_t k = 0; k < n; k++) {
            if (ps[k].s[i].op == OP_PUT) {
                rows[nrows].doc.p = (uint8_t *)ps[k].doc;
                rows[nrows].doc.n = VL_DOCTOKEN_BYTES;
                rows[nrows].seq = ps[k].seq;
                rows[nrows].blob = ps[k].s[i].part;
                rows[nrows].tokens = ps[k].s[i].tokens;
                rows[nrows].ntokens = ps[k].s[i].ntok;
                rows[nrows].sums = ps[k].s[i].sums;
                rows[nrows].nsums = ps[k].s[i].nsum;
                rows[nrows].prods = ps[k].s[i].prods;
                rows[nrows].nprods = ps[k].s[i].nprod;
                nrows++;
            } else {
                dels[ndels].p = (uint8_t *)ps[k].doc;
                dels[ndels].n = VL_DOCTOKEN_BYTES;
                ndels++;
            }
        }
        /* The batch's mark goes with its entries: in the store before, or with, its rows. */
        if (mark != 0) {
            vl_mark_entry(v, table, mark, &me);
            kv[nkv++] = me.kv;
        }
        /* The entries go in first, or in the same transaction: a row that is there means
         * its entries are too (what recovery of a single store relies on). */
        if (nkv > 0 && (s->ops->put == NULL || nrows == 0) &&
            (rc = s->ops->kv_put(s, table, kv, nkv)) != VEIL_OK) {
            vl_log(VL_LOG_WARN, "store %s failed a write", v->cfg.store_names[i]);
            rc = VEIL_ERR_STORE_UNAVAILABLE;
            break;
        }
        if (s->ops->put != NULL && nrows > 0) {
            rc = s->ops->put(s, table, rows, nrows, kv, nkv);
        } else if (nrows > 0) {
            rc = s->ops->put_rows(s, table, rows, nrows);
        }
        if (rc == VEIL_OK && ndels > 0) {
            rc = s->ops->delete_rows(s, table, dels, ndels);
        }
        if (rc != VEIL_OK) {
            vl_log(VL_LOG_WARN, "store %s failed a write", v->cfg.store_names[i]);
            rc = VEIL_ERR_STORE_UNAVAILABLE;
        }
    }
out:
    for (size_t i = 0; i < parsed; i++) {
        parsed_free(&ps[i]);
    }
    free(ps);
    free(rows);
    free(dels);
    free(kv);
    return rc;
}

/* ---- locking ---- */

static int cmp_u8(const void *a, const void *b)
{
    return (int)*(const uint8_t *)a - (int)*(const uint8_t *)b;
}

/* The distinct stripes of the items, sorted: taking them in order cannot deadlock. */
static size_t stripes_of(const struct item *items, size_t n, uint8_t *out)
{
    uint8_t seen[VL_STRIPES] = {0};
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t s = items[i].token[0];
        if (!seen[s]) {
            seen[s] = 1;
            out[k++] = s;
        }
    }
    qsort(out, k, 1, cmp_u8);
    return k;
}

/* ---- the batch ---- */

static bool item_ok(const struct item *it)
{
    return it->rc == VEIL_OK;
}

static void item_fail(struct item *it, veil_err rc, const char *msg)
{
    if (it->rc == VEIL_OK) {
        it->rc = vl_status_set(&it->st, rc, NULL, "%s", msg);
    }
}

/* Carries out a batch of puts and deletes of distinct documents; each item's rc says how
 * it went (a failure of the whole batch is set on every item). */
static void write_batch(veil_session *s, const struct vl_coll *c, struct item *items, size_t n)
{
    veil_vault *v = s->v;
    uint8_t stripes[VL_STRIPES];
    struct vl_docstate *states = calloc(n, sizeof(*states));
    struct vl_bytes *toks = calloc(n, sizeof(*toks));
    struct vl_intent *intents = calloc(n, sizeof(*intents));
    struct vl_bytes *payloads = calloc(n, sizeof(*payloads));
    const struct vl_docwords **bwords = calloc(n, sizeof(*bwords));
    uint64_t *bseqs = calloc(n, sizeof(*bseqs));
    struct vl_batch_entries be;
    size_t nin = 0, nput = 0;
    uint64_t seq = 0;
    memset(&be, 0, sizeof(be));

    if (states == NULL || toks == NULL || intents == NULL || payloads == NULL ||
        bwords == NULL || bseqs == NULL) {
        for (size_t i = 0; i < n; i++) {
            item_fail(&items[i], VEIL_ERR_INTERNAL, "out of memory");
        }
        goto out_free;
    }
    for (size_t i = 0; i < n; i++) {
        if (items[i].id != NULL) { /* else a delete by token (vl_write_forget) */
            vl_doc_token(c, items[i].id, items[i].token);
        }
        toks[i].p = items[i].token;
        toks[i].n = VL_DOCTOKEN_BYTES;
    }
    size_t ns = stripes_of(items, n, stripes);
    for (size_t i = 0; i < ns; i++) {
        pthread_mutex_lock(&v->stripes[stripes[i]]);
    }
    veil_err rc = vl_trusted_docs_get(v->trusted, c->tenant_id, c->name, toks, n, states);
    if (rc != VEIL_OK) {
        for (size_t i = 0; i < n; i++) {
            item_fail(&items[i], rc, "the trusted state is unavailable");
        }
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        struct item *it = &items[i];
        const struct vl_docstate *ds = &states[i];
        if (ds->pending) {
            item_fail(it, VEIL_ERR_CONFLICT,
                      "an earlier write of this document is unfinished; retry shortly");
        } else if (it->doc == NULL && !ds->live) {
            item_fail(it, VEIL_ERR_NOT_FOUND, "no document with this id");
        } else if (it->doc != NULL && it->if_match > 0 &&
                   (!ds->live || ds->version != it->if_match)) {
            item_fail(it, VEIL_ERR_VERSION_MISMATCH,
                      "the document is not at the version given in If-Match");
        }
        if (item_ok(it)) {
            it->version = ds->exists ? ds->version + 1 : 1;
            it->created = !ds->live;
            nput += it->doc != NULL;
        }
    }
    if (nput > 0 && (rc = vl_coll_seq_take(v, c, nput, &seq)) != VEIL_OK) {
        for (size_t i = 0; i < n; i++) {
            item_fail(&items[i], rc, "the trusted state is unavailable");
        }
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        struct item *it = &items[i];
        if (!item_ok(it) || it->doc == NULL) {
            continue;
        }
        it->seq = seq++;
        it->rc = vl_doc_seal(v, c, it->id, it->doc, it->version, it->seq, &it->sealed,
                             &it->st);
        if (item_ok(it)) {
            it->rc = vl_docwords_of(c, it->doc, &it->words, &it->st);
        }
        if (item_ok(it) && !v->unverified &&
            vl_sealed_tks(c, &it->sealed, v->nstores, &it->tks) != VEIL_OK) {
            item_fail(it, VEIL_ERR_INTERNAL, "out of memory");
        }
    }
    /* The batch's search entries: per word, the documents that have it, together. */
    for (size_t i = 0; i < n; i++) {
        bwords[i] = item_ok(&items[i]) && items[i].doc != NULL ? &items[i].words : NULL;
        bseqs[i] = items[i].seq;
    }
    if (vl_search_batch(v, c, bwords, bseqs, n, &be) != VEIL_OK) {
        for (size_t i = 0; i < n; i++) {
            item_fail(&items[i], VEIL_ERR_STORE_UNAVAILABLE, "the trusted state is unavailable");
        }
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        struct item *it = &items[i];
        if (!item_ok(it)) {
            continue;
        }
        uint64_t myseq = it->doc != NULL ? it->seq : 0;
        /* A write that carries other writes' entries must not drop out alone: encoding
         * fails only when memory runs out, and then the whole batch fails. */
        if ((rc = payload_build(v, c, it, myseq, &be, i)) != VEIL_OK ||
            (v->nstores == 1 && (rc = payload_brief(c, it)) != VEIL_OK)) {
            for (size_t k = 0; k < n; k++) {
                item_fail(&items[k], rc, "cannot encode the write");
            }
            goto out;
        }
        struct vl_intent *in = &intents[nin];
        in->op = it->doc != NULL ? VL_INTENT_PUT : VL_INTENT_DELETE;
        memcpy(in->doc, it->token, VL_DOCTOKEN_BYTES);
        in->old_version = states[i].exists ? states[i].version : 0;
        in->version = it->version;
        in->seq = it->doc != NULL ? myseq : states[i].seq;
        memcpy(in->digest, it->doc != NULL ? it->sealed.digest : states[i].digest,
               VL_DIGEST_BYTES);
        /* What the intent records: the brief form when a single store makes it enough. */
        const struct vl_buf *rec = v->nstores == 1 ? &it->brief : &it->payload;
        in->payload.p = rec->data;
        in->payload.n = rec->len;
        in->trusted_part.p = it->sealed.trusted.data;
        in->trusted_part.n = it->sealed.trusted.len;
        in->slen.p = it->words.slen.data;
        in->slen.n = it->words.slen.len;
        in->tks.p = it->tks.data;
        in->tks.n = it->tks.len;
        payloads[nin].p = it->payload.data;
        payloads[nin].n = it->payload.len;
        nin++;
    }
    if (nin == 0) {
        goto out;
    }
    rc = vl_trusted_intents_begin(v->trusted, c->tenant_id, c->name, intents, nin);
    if (rc == VEIL_OK) {
        rc = vl_payload_apply(v, payloads, nin, intents[0].mark);
        if (rc != VEIL_OK) {
            if (vl_trusted_intents_abort(v->trusted, intents, nin) != VEIL_OK) {
                vl_log(VL_LOG_ERROR, "could not drop failed intents; recovery will finish "
                                     "them at the next start");
            }
        } else {
            rc = vl_trusted_intents_finish(v->trusted, c->tenant_id, c->name, intents, nin);
        }
    }
    if (rc != VEIL_OK) {
        const char *msg = rc == VEIL_ERR_CONFLICT
                              ? "another writer changed this document meanwhile; retry"
                              : "a store is unavailable; nothing was written";
        for (size_t i = 0; i < n; i++) {
            item_fail(&items[i], rc, msg);
        }
    }
out:
    for (size_t i = ns; i > 0; i--) {
        pthread_mutex_unlock(&v->stripes[stripes[i - 1]]);
    }
    vl_docstates_free(states, n);
out_free:
    vl_batch_entries_free(&be);
    free(states);
    free(toks);
    free(intents);
    free(payloads);
    free(bwords);
    free(bseqs);
}

static void item_clear(struct item *it)
{
    vl_sealed_free(&it->sealed);
    vl_docwords_free(&it->words);
    vl_buf_free(&it->payload);
    vl_buf_free(&it->brief);
    vl_buf_free(&it->tks);
    free(it->id);
    it->id = NULL;
}

veil_err vl_write_forget(veil_session *s, const struct vl_coll *c,
                         const uint8_t (*docs)[VL_DOCTOKEN_BYTES], size_t n, size_t *done)
{
    veil_err rc = VEIL_OK;
    *done = 0;
    for (size_t at = 0; at < n && rc == VEIL_OK; at += BULK_BATCH) {
        size_t k = n - at < BULK_BATCH ? n - at : BULK_BATCH;
        struct item *items = calloc(k, sizeof(*items));
        if (items == NULL) {
            return VEIL_ERR_INTERNAL;
        }
        for (size_t i = 0; i < k; i++) {
            memcpy(items[i].token, docs[at + i], VL_DOCTOKEN_BYTES);
        }
        write_batch(s, c, items, k);
        for (size_t i = 0; i < k; i++) {
            if (items[i].rc == VEIL_OK) {
                (*done)++;
            } else if (items[i].rc != VEIL_ERR_NOT_FOUND && rc == VEIL_OK) {
                rc = items[i].rc; /* not found: deleted meanwhile, nothing to forget */
            }
            item_clear(&items[i]);
        }
        free(items);
    }
    return rc;
}

/* ---- checks shared by the entry points ---- */

static veil_err may_write(veil_session *s, const char *coll, const struct vl_coll **c,
                          veil_status *st)
{
    veil_err rc = vl_coll_get(s, coll, c, st);
    if (rc != VEIL_OK) {
        return rc;
    }
    if (s->admin) {
        return VEIL_OK;
    }
    const struct vl_role *r = vl_policy_role((*c)->policy, s->role);
    if (r == NULL || !r->write) {
        return vl_status_set(st, VEIL_ERR_FORBIDDEN, NULL, "role %s may not write here",
                             s->role);
    }
    return VEIL_OK;
}

static veil_err check_id(const char *id, veil_status *st)
{
    size_t n = strlen(id);
    if (n == 0 || n > VL_ID_MAX) {
        return vl_status_set(st, VEIL_ERR_BAD_REQUEST, "id",
                             "a document id is 1..%d bytes", VL_ID_MAX);
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)id[i] < 0x20 || id[i] == 0x7f) {
            return vl_status_set(st, VEIL_ERR_BAD_REQUEST, "id",
                                 "a document id may not hold control characters");
        }
    }
    return VEIL_OK;
}

static char *generate_id(void)
{
    uint8_t b[GENERATED_ID_BYTES];
    char *id = malloc(2 * GENERATED_ID_BYTES + 1);
    if (id != NULL) {
        vl_random(b, sizeof(b));
        vl_hex(id, b, sizeof(b));
    }
    return id;
}

static veil_err parse_doc(const char *json, size_t len, json_t **out, veil_status *st)
{
    json_error_t err;
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
    if (doc == NULL) {
        return vl_status_set(st, VEIL_ERR_BAD_REQUEST, NULL,
                             "the body is not valid JSON (line %d, column %d)", err.line,
                             err.column);
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        return vl_status_set(st, VEIL_ERR_INVALID_DOCUMENT, NULL,
                             "a document is a JSON object");
    }
    *out = doc;
    return VEIL_OK;
}

/* ---- public entry points ---- */

veil_err veil_doc_put(veil_session *s, const char *coll, const char *id, const char *json,
                      size_t len, int64_t if_match, char **json_out, int *created,
                      veil_status *st)
{
    const struct vl_coll *c = NULL;
    json_t *doc = NULL;
    struct item it;
    memset(&it, 0, sizeof(it));
    vl_status_clear(st);
    veil_err rc = may_write(s, coll, &c, st);
    if (rc != VEIL_OK) {
        return rc;
    }
    if (id != NULL && (rc = check_id(id, st)) != VEIL_OK) {
        return rc;
    }
    if ((rc = parse_doc(json, len, &doc, st)) != VEIL_OK) {
        return rc;
    }
    it.id = id != NULL ? strdup(id) : generate_id();
    it.doc = doc;
    it.if_match = if_match;
    if (it.id == NULL) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    write_batch(s, c, &it, 1);
    rc = it.rc;
    if (rc != VEIL_OK) {
        if (st != NULL) {
            *st = it.st;
        }
        goto out;
    }
    json_t *o = json_pack("{s:s, s:I}", "id", it.id, "version", (json_int_t)it.version);
    *json_out = vl_json_text(o);
    json_decref(o);
    if (created != NULL) {
        *created = it.created;
    }
out:
    item_clear(&it);
    json_decref(doc);
    return rc;
}

veil_err veil_doc_delete(veil_session *s, const char *coll, const char *id, veil_status *st)
{
    const struct vl_coll *c = NULL;
    struct item it;
    memset(&it, 0, sizeof(it));
    vl_status_clear(st);
    veil_err rc = may_write(s, coll, &c, st);
    if (rc != VEIL_OK) {
        return rc;
    }
    if ((rc = check_id(id, st)) != VEIL_OK) {
        return rc;
    }
    if ((it.id = strdup(id)) == NULL) {
        return vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
    }
    write_batch(s, c, &it, 1);
    rc = it.rc;
    if (rc != VEIL_OK && st != NULL) {
        *st = it.st;
    }
    item_clear(&it);
    return rc;
}

/* One NDJSON answer line. */
static veil_err bulk_line(struct vl_buf *out, size_t line, const char *id, const struct item *it,
                          veil_err rc, const veil_status *st)
{
    json_t *o = json_object();
    json_object_set_new(o, "line", json_integer((json_int_t)line));
    json_object_set_new(o, "id", id != NULL ? json_string(id) : json_null());
    if (rc == VEIL_OK) {
        json_object_set_new(o, "status", json_integer(it->created ? 201 : 200));
        json_object_set_new(o, "version", json_integer((json_int_t)it->version));
    } else {
        json_t *e = json_pack("{s:s, s:s}", "code", veil_err_name(rc), "message",
                              st != NULL ? st->message : "");
        if (st != NULL && st->field[0] != '\0') {
            json_object_set_new(e, "field", json_string(st->field));
        }
        json_object_set_new(o, "status", json_integer(veil_err_http_status(rc)));
        json_object_set_new(o, "error", e);
    }
    char *text = vl_json_text(o);
    json_decref(o);
    veil_err r = text != NULL ? vl_buf_append_str(out, text) : VEIL_ERR_INTERNAL;
    if (r == VEIL_OK) {
        r = vl_buf_put_u8(out, '\n');
    }
    free(text);
    return r;
}

struct bulk {
    struct item items[BULK_BATCH];
    json_t *docs[BULK_BATCH];
    size_t lines[BULK_BATCH];
    size_t n;
};

static veil_err bulk_flush(veil_session *s, const struct vl_coll *c, struct bulk *b,
                           struct vl_buf *out)
{
    veil_err rc = VEIL_OK;
    /* Lines that failed to parse stay in place (so answers keep the input's order) but
     * take no part in the write. */
    struct item *active = calloc(b->n ? b->n : 1, sizeof(*active));
    size_t na = 0;
    if (active == NULL) {
        rc = VEIL_ERR_INTERNAL;
    }
    for (size_t i = 0; active != NULL && i < b->n; i++) {
        if (b->items[i].rc == VEIL_OK) {
            active[na++] = b->items[i];
        }
    }
    if (na > 0) {
        write_batch(s, c, active, na);
    }
    for (size_t i = 0, k = 0; active != NULL && i < b->n; i++) {
        if (b->items[i].rc == VEIL_OK) {
            b->items[i] = active[k++];
        }
    }
    free(active);
    for (size_t i = 0; i < b->n; i++) {
        struct item *it = &b->items[i];
        if (rc == VEIL_OK) {
            rc = bulk_line(out, b->lines[i], it->id, it, it->rc, &it->st);
        }
        item_clear(it);
        json_decref(b->docs[i]);
    }
    memset(b, 0, sizeof(*b));
    return rc;
}

veil_err veil_bulk(veil_session *s, const char *coll, const char *ndjson, size_t len,
                   char **ndjson_out, veil_status *st)
{
    const struct vl_coll *c = NULL;
    struct vl_buf out;
    vl_buf_init(&out, SIZE_MAX);
    vl_status_clear(st);
    veil_err rc = may_write(s, coll, &c, st);
    if (rc != VEIL_OK) {
        return rc;
    }
    struct bulk *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        return vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
    }
    size_t line = 0, pos = 0;
    while (rc == VEIL_OK && pos < len) {
        const char *start = ndjson + pos;
        const char *nl = memchr(start, '\n', len - pos);
        size_t n = nl != NULL ? (size_t)(nl - start) : len - pos;
        pos += n + (nl != NULL);
        line++;
        if (n > 0 && start[n - 1] == '\r') {
            n--;
        }
        bool blank = true;
        for (size_t i = 0; i < n && blank; i++) {
            blank = start[i] == ' ' || start[i] == '\t';
        }
        if (blank) {
            continue;
        }
        veil_status lst;
        vl_status_clear(&lst);
        json_error_t err;
        json_t *o = json_loadb(start, n, JSON_REJECT_DUPLICATES, &err);
        const char *id = json_string_value(json_object_get(o, "id"));
        json_t *doc = json_object_get(o, "doc");
        veil_err lrc = VEIL_OK;
        if (o == NULL) {
            lrc = vl_status_set(&lst, VEIL_ERR_BAD_REQUEST, NULL, "the line is not valid JSON");
        } else if (!json_is_object(o) || !json_is_object(doc) ||
                   (json_object_get(o, "id") != NULL && id == NULL)) {
            lrc = vl_status_set(&lst, VEIL_ERR_BAD_REQUEST, NULL,
                                "a line is {\"id\": STRING, \"doc\": OBJECT}");
        } else if (id != NULL) {
            lrc = check_id(id, &lst);
        }
        if (lrc != VEIL_OK) {
            struct item *it = &b->items[b->n];
            memset(it, 0, sizeof(*it));
            it->id = id != NULL ? strdup(id) : NULL;
            it->rc = lrc;
            it->st = lst;
            b->docs[b->n] = o;
            b->lines[b->n] = line;
            if (++b->n == BULK_BATCH) {
                rc = bulk_flush(s, c, b, &out);
            }
            continue;
        }
        char *myid = id != NULL ? strdup(id) : generate_id();
        /* The same id twice in one batch: write what came first, then go on. */
        for (size_t i = 0; myid != NULL && i < b->n; i++) {
            if (b->items[i].rc == VEIL_OK && strcmp(b->items[i].id, myid) == 0) {
                rc = bulk_flush(s, c, b, &out);
                break;
            }
        }
        if (myid == NULL) {
            json_decref(o);
            rc = VEIL_ERR_INTERNAL;
            break;
        }
        struct item *it = &b->items[b->n];
        memset(it, 0, sizeof(*it));
        it->id = myid;
        it->doc = doc;
        b->docs[b->n] = o;
        b->lines[b->n] = line;
        if (++b->n == BULK_BATCH) {
            rc = bulk_flush(s, c, b, &out);
        }
    }
    if (rc == VEIL_OK) {
        rc = bulk_flush(s, c, b, &out);
    } else {
        for (size_t i = 0; i < b->n; i++) {
            item_clear(&b->items[i]);
            json_decref(b->docs[i]);
        }
    }
    free(b);
    if (rc != VEIL_OK) {
        vl_buf_free(&out);
        return vl_status_set(st, rc, NULL, "cannot answer the bulk request");
    }
    *ndjson_out = (char *)vl_buf_steal(&out, NULL);
    return *ndjson_out != NULL ? VEIL_OK : VEIL_ERR_INTERNAL;
}
