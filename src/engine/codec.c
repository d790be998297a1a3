/*
 * codec.c: documents to sealed parts and back.
 *
 * A document becomes, per store, one part: a list of (column id, box) entries, where each
 * listed field's value (its JSON text, padded to a length bucket) is sealed with
 * XChaCha20-Poly1305 under the field's own key. Two reserved entries carry the document id
 * (`_id`) and everything the policy does not list (`_rest`), both in the default store.
 * Fields with `store: trusted` go to a part kept in trusted state instead.
 *
 *     part  = u8 1 || u32 count || count * (col[16] || lp(box))
 *     box   = u32 key_version || nonce[24] || ciphertext || tag[16]
 *     AAD   = lp("veil/v1/value") lp(tenant) lp(collection) lp(doc token) lp(field path)
 *             u64 version u32 key_version
 *
 * What a store learns from a part: how many entries it has, and each entry's length rounded
 * up to its padding bucket. The AAD binds every value to its tenant, collection, document,
 * field and version, so a value moved anywhere else, or an older one put back, fails to
 * open. Equality tokens are AES-SIV over the padded canonical value with the column id as
 * associated data: equal values give equal tokens, the proxy can decrypt them, and their
 * length again only shows the bucket.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "crypto/crypto.h"
#include "engine/engine.h"
#include "tactics/tactics.h"

#define PART_FORMAT 1
#define BOX_OVERHEAD (4 + VL_AEAD_NONCEBYTES + VL_AEAD_ABYTES)

char *vl_json_text(const json_t *j)
{
    return json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
}

void vl_doc_token(const struct vl_coll *c, const char *id, uint8_t out[VL_DOCTOKEN_BYTES])
{
    vl_hmac_sha256(out, c->doc_key, 32, (const uint8_t *)id, strlen(id));
}

json_t *vl_json_path_get(const json_t *doc, const struct vl_field *f)
{
    const json_t *cur = doc;
    for (size_t i = 0; i < f->nparts; i++) {
        if (!json_is_object(cur)) {
            return NULL;
        }
        cur = json_object_get(cur, f->parts[i]);
        if (cur == NULL) {
            return NULL;
        }
    }
    return (json_t *)cur;
}

static veil_err value_ad(struct vl_buf *ad, const struct vl_coll *c, const uint8_t *doc,
                         const char *path, int64_t version, uint32_t kv)
{
    veil_err rc = vl_buf_put_lps(ad, "veil/v1/value");
    if (rc == VEIL_OK) {
        rc = vl_buf_put_lps(ad, c->tenant);
    }
    if (rc == VEIL_OK) {
        rc = vl_buf_put_lps(ad, c->name);
    }
    if (rc == VEIL_OK) {
        rc = vl_buf_put_lp(ad, doc, VL_DOCTOKEN_BYTES);
    }
    if (rc == VEIL_OK) {
        rc = vl_buf_put_lps(ad, path);
    }
    if (rc == VEIL_OK) {
        rc = vl_buf_put_u64(ad, (uint64_t)version);
    }
    if (rc == VEIL_OK) {
        rc = vl_buf_put_u32(ad, kv);
    }
    return rc;
}

/* Appends one entry (col || lp(box)) sealing m to part, and counts it. */
static veil_err seal_entry(struct vl_buf *part, uint32_t *count, const struct vl_coll *c,
                           const struct vl_fctx *fc, const uint8_t *doc, int64_t version,
                           const void *m, size_t mlen)
{
    veil_err rc = VEIL_OK;
    struct vl_buf ad;
    vl_buf_init(&ad, 4096);
    size_t plen = vl_pad_len(mlen);
    uint8_t *pad = malloc(plen);
    uint8_t *box = malloc(BOX_OVERHEAD + plen);
    if (pad == NULL || box == NULL) {
        rc = VEIL_ERR_INTERNAL;
        goto out;
    }
    memcpy(pad, m, mlen);
    vl_pad(pad, mlen);
    if ((rc = value_ad(&ad, c, doc, fc->path, version, c->key_version)) != VEIL_OK) {
        goto out;
    }
    vl_store_u32(box, c->key_version);
    if (vl_aead_box_seal(box + 4, pad, plen, ad.data, ad.len, fc->aead_key) != 0) {
        rc = VEIL_ERR_INTERNAL;
        goto out;
    }
    rc = vl_buf_append(part, fc->vcol, VL_COL_BYTES);
    if (rc == VEIL_OK) {
        rc = vl_buf_put_lp(part, box, BOX_OVERHEAD + plen);
    }
    if (rc == VEIL_OK) {
        (*count)++;
    }
out:
    if (pad != NULL) {
        sodium_memzero(pad, plen);
    }
    free(pad);
    free(box);
    vl_buf_free(&ad);
    return rc;
}

veil_err vl_eq_token(const struct vl_fctx *fc, const json_t *value, struct vl_buf *out)
{
    struct vl_buf canon;
    vl_buf_init(&canon, 1 << 20);
    veil_err rc = vl_value_canonical(fc->f, value, &canon);
    if (rc != VEIL_OK) {
        vl_buf_wipe(&canon);
        return rc;
    }
    size_t plen = vl_pad_len(canon.len);
    uint8_t *pad = calloc(1, plen);
    uint8_t *tok = malloc(VL_SIV_TAGBYTES + plen);
    const uint8_t *ad[1] = {fc->col};
    const size_t adlen[1] = {VL_COL_BYTES};
    if (pad == NULL || tok == NULL) {
        rc = VEIL_ERR_INTERNAL;
    } else {
        memcpy(pad, canon.data, canon.len);
        vl_pad(pad, canon.len);
        if (vl_siv_encrypt(tok, fc->eq_key, VL_SIV_KEYBYTES, ad, adlen, 1, pad, plen) != 0) {
            rc = VEIL_ERR_INTERNAL;
        } else {
            rc = vl_buf_append(out, tok, VL_SIV_TAGBYTES + plen);
        }
        sodium_memzero(pad, plen);
    }
    free(pad);
    free(tok);
    vl_buf_wipe(&canon);
    return rc;
}

void vl_sealed_free(struct vl_sealed *s)
{
    for (size_t i = 0; i < VL_MAX_STORES; i++) {
        for (size_t k = 0; k < s->nprods[i]; k++) {
            free(s->prods[i][k].val.p);
        }
        free(s->prods[i]);
        free(s->sums[i]);
        s->prods[i] = NULL;
        s->sums[i] = NULL;
        s->nprods[i] = s->nsums[i] = 0;
        vl_buf_free(&s->parts[i]);
        for (size_t k = 0; k < s->ntokens[i]; k++) {
            free(s->tokens[i][k].tok.p);
        }
        free(s->tokens[i]);
        s->tokens[i] = NULL;
        s->ntokens[i] = 0;
    }
    vl_buf_free(&s->trusted);
}

static veil_err add_token(struct vl_sealed *s, int store, const uint8_t *col, uint8_t level,
                          struct vl_buf *tok)
{
    struct vl_token *nt = realloc(s->tokens[store], (s->ntokens[store] + 1) * sizeof(*nt));
    if (nt == NULL) {
        return VEIL_ERR_INTERNAL;
    }
    s->tokens[store] = nt;
    struct vl_token *t = &nt[s->ntokens[store]++];
    memcpy(t->col, col, VL_COL_BYTES);
    t->level = level;
    t->tok.p = vl_buf_steal(tok, &t->tok.n);
    return t->tok.p != NULL ? VEIL_OK : VEIL_ERR_INTERNAL;
}

static veil_err add_range_tokens(struct vl_sealed *s, const struct vl_fctx *fc,
                                 const json_t *val)
{
    uint64_t u;
    unsigned width;
    veil_err rc = vl_range_value(fc->f, val, &u, &width, NULL);
    if (rc != VEIL_OK) {
        return rc;
    }
    struct vl_range_prefix p[VL_RANGE_MAX_DIGITS];
    size_t n = vl_range_prefixes(u, width, p);
    for (size_t i = 0; i < n && rc == VEIL_OK; i++) {
        struct vl_buf tok;
        uint8_t t[VL_RANGE_TOKEN_BYTES];
        vl_range_token(t, fc->range_key, &p[i]);
        vl_buf_init(&tok, VL_RANGE_TOKEN_BYTES);
        rc = vl_buf_append(&tok, t, sizeof(t));
        if (rc == VEIL_OK) {
            rc = add_token(s, fc->store, fc->rcol, (uint8_t)p[i].digits, &tok);
        }
        vl_buf_free(&tok);
    }
    return rc;
}

/* The value of a sum field in integer units (decimals in units of 10^-scale). */
static veil_err sum_units(const struct vl_field *f, const json_t *val, int64_t *m)
{
    if (f->type == VL_T_INTEGER) {
        *m = (int64_t)json_integer_value(val);
        return json_is_integer(val) ? VEIL_OK : VEIL_ERR_INVALID_DOCUMENT;
    }
    return vl_decimal_parse(val, f->scale, m) == 0 ? VEIL_OK : VEIL_ERR_INVALID_DOCUMENT;
}

/* A bounded field with out_of_bounds: reject refuses a value outside its bounds. The
 * message names the bounds, never the value. */
static veil_err check_bounds(const struct vl_field *f, const json_t *val, veil_status *st)
{
    int64_t m;
    if (!f->bounded || f->clamp || json_is_null(val) || sum_units(f, val, &m) != VEIL_OK ||
        (m >= f->lo && m <= f->hi)) {
        return VEIL_OK;
    }
    char lo[48], hi[48];
    vl_i128_to_decimal(f->lo, f->type == VL_T_DECIMAL ? f->scale : 0, lo);
    vl_i128_to_decimal(f->hi, f->type == VL_T_DECIMAL ? f->scale : 0, hi);
    return vl_status_set(st, VEIL_ERR_INVALID_DOCUMENT, f->path,
                         "%s is outside its bounds [%s, %s] (the policy refuses such values)",
                         f->path, lo, hi);
}

/* Appends a cell of 128 bits under column col to the field's store's sum cells. */
static veil_err push_cell(struct vl_sealed *s, const struct vl_fctx *fc,
                          const uint8_t col[VL_COL_BYTES], vl_u128 value)
{
    struct vl_sum_cell *nc = realloc(s->sums[fc->store], (s->nsums[fc->store] + 1) * sizeof(*nc));
    if (nc == NULL) {
        return VEIL_ERR_INTERNAL;
    }
    s->sums[fc->store] = nc;
    struct vl_sum_cell *cell = &nc[s->nsums[fc->store]++];
    memcpy(cell->col, col, VL_COL_BYTES);
    vl_ashe_limbs(value, cell->limbs);
    return VEIL_OK;
}

static veil_err add_sum_cell(struct vl_sealed *s, const struct vl_fctx *fc, const json_t *val,
                             uint64_t seq)
{
    int64_t m;
    veil_err rc = sum_units(fc->f, val, &m);
    if (rc != VEIL_OK) {
        return rc;
    }
    if (fc->f->bounded) { /* out_of_bounds: clamp (reject was refused before) */
        m = m < fc->f->lo ? fc->f->lo : m > fc->f->hi ? fc->f->hi : m;
    }
    if (fc->f->sum_scheme == VL_SUM_PAILLIER) {
        rc = vl_paillier_cell(s, fc, m);
    } else {
        rc = push_cell(s, fc, fc->scol, vl_ashe_encrypt(fc->sum_key, seq, m));
    }
    /* Its MAC tag, which the store sums beside it (tactics.h). */
    return rc == VEIL_OK ? push_cell(s, fc, fc->tcol, vl_mac_tag(fc->mac_key, seq, m)) : rc;
}

/* Removes the value at f's path from rest (a deep copy of the document). */
static void remove_path(json_t *rest, const struct vl_field *f)
{
    json_t *cur = rest;
    for (size_t i = 0; i + 1 < f->nparts; i++) {
        cur = json_object_get(cur, f->parts[i]);
        if (!json_is_object(cur)) {
            return;
        }
    }
    json_object_del(cur, f->parts[f->nparts - 1]);
}

/* Counts members and checks nesting, for the limits of veil.yaml. */
static veil_err check_shape(const json_t *j, unsigned depth, const veil_limits *lim,
                            size_t *members, veil_status *st)
{
    if (depth > lim->max_depth) {
        return vl_status_set(st, VEIL_ERR_BAD_REQUEST, NULL,
                             "the document is nested deeper than %u levels", lim->max_depth);
    }
    if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v) {
            if (++*members > lim->max_fields) {
                return vl_status_set(st, VEIL_ERR_BAD_REQUEST, NULL,
                                     "the document has more than %u fields", lim->max_fields);
            }
            veil_err rc = check_shape(v, depth + 1, lim, members, st);
            if (rc != VEIL_OK) {
                return rc;
            }
        }
    } else if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) {
            veil_err rc = check_shape(v, depth + 1, lim, members, st);
            if (rc != VEIL_OK) {
                return rc;
            }
        }
    }
    return VEIL_OK;
}

static veil_err finish_part(struct vl_buf *entries, uint32_t count, struct vl_buf *out)
{
    vl_buf_init(out, SIZE_MAX);
    if (count == 0) {
        return VEIL_OK;
    }
    veil_err rc = vl_buf_put_u8(out, PART_FORMAT);
    if (rc == VEIL_OK) {
        rc = vl_buf_put_u32(out, count);
    }
    if (rc == VEIL_OK) {
        rc = vl_buf_append(out, entries->data, entries->len);
    }
    return rc;
}

veil_err vl_doc_seal(const veil_vault *v, const struct vl_coll *c, const char *id,
                     const json_t *doc, int64_t version, uint64_t seq, struct vl_sealed *out,
                     veil_status *st)
{
    veil_err rc = VEIL_OK;
    struct vl_sealed s;
    struct vl_buf entries[VL_MAX_STORES + 1];
    uint32_t counts[VL_MAX_STORES + 1] = {0};
    const size_t nparts = v->nstores + 1; /* the last one is the trusted part */
    uint8_t token[VL_DOCTOKEN_BYTES];
    json_t *rest = NULL;
    char *text = NULL;
    size_t members = 0;

    memset(&s, 0, sizeof(s));
    for (size_t i = 0; i < VL_MAX_STORES + 1; i++) {
        vl_buf_init(&entries[i], SIZE_MAX);
    }
    if (!json_is_object(doc)) {
        rc = vl_status_set(st, VEIL_ERR_INVALID_DOCUMENT, NULL, "a document is a JSON object");
        goto out;
    }
    if ((rc = check_shape(doc, 1, &v->cfg.limits, &members, st)) != VEIL_OK) {
        goto out;
    }
    vl_doc_token(c, id, token);
    if ((rest = json_deep_copy(doc)) == NULL) {
        rc = VEIL_ERR_INTERNAL;
        goto out;
    }
    for (size_t i = 0; i < c->policy->nfields; i++) {
        const struct vl_fctx *fc = &c->fields[i];
        const struct vl_field *f = fc->f;
        /* Every object on the way to a listed field must be an object. */
        const json_t *cur = doc;
        for (size_t k = 0; k + 1 < f->nparts && cur != NULL; k++) {
            cur = json_object_get(cur, f->parts[k]);
            if (cur != NULL && !json_is_object(cur)) {
                rc = vl_status_set(st, VEIL_ERR_INVALID_DOCUMENT, f->path,
                                   "%s must sit in an object, but %s is not one", f->path,
                                   f->parts[k]);
                goto out;
            }
        }
        const json_t *val = vl_json_path_get(doc, f);
        if (val == NULL) {
            continue;
        }
        if ((rc = vl_value_check(f, val, st)) != VEIL_OK ||
            (rc = check_bounds(f, val, st)) != VEIL_OK) {
            goto out;
        }
        size_t slot = fc->store < 0 ? nparts - 1 : (size_t)fc->store;
        free(text);
        if ((text = vl_json_text(val)) == NULL) {
            rc = VEIL_ERR_INTERNAL;
            goto out;
        }
        rc = seal_entry(&entries[slot], &counts[slot], c, fc, token, version, text,
                        strlen(text));
        if (rc != VEIL_OK) {
            goto out;
        }
        if ((f->tactics & VL_TAC_EQ) && !json_is_null(val) && fc->store >= 0) {
            struct vl_buf tok;
            vl_buf_init(&tok, 1 << 20);
            rc = vl_eq_token(fc, val, &tok);
            if (rc == VEIL_OK) {
                rc = add_token(&s, fc->store, fc->col, 0, &tok);
            }
            vl_buf_free(&tok);
            if (rc != VEIL_OK) {
                goto out;
            }
        }
        if ((f->tactics & VL_TAC_RANGE) && !json_is_null(val) && fc->store >= 0 &&
            (rc = add_range_tokens(&s, fc, val)) != VEIL_OK) {
            goto out;
        }
        if ((f->tactics & VL_TAC_SUM) && !json_is_null(val) && fc->store >= 0 &&
            (rc = add_sum_cell(&s, fc, val, seq)) != VEIL_OK) {
            goto out;
        }
        remove_path(rest, f);
    }
    rc = seal_entry(&entries[0], &counts[0], c, &c->id, token, version, id, strlen(id));
    if (rc != VEIL_OK) {
        goto out;
    }
    free(text);
    if ((text = vl_json_text(rest)) == NULL) {
        rc = VEIL_ERR_INTERNAL;
        goto out;
    }
    rc = seal_entry(&entries[0], &counts[0], c, &c->rest, token, version, text, strlen(text));
    for (size_t i = 0; rc == VEIL_OK && i < v->nstores; i++) {
        rc = finish_part(&entries[i], counts[i], &s.parts[i]);
    }
    if (rc == VEIL_OK) {
        rc = finish_part(&entries[nparts - 1], counts[nparts - 1], &s.trusted);
    }
    if (rc != VEIL_OK) {
        goto out;
    }
    struct vl_bytes views[VL_MAX_STORES];
    for (size_t i = 0; i < v->nstores; i++) {
        views[i].p = s.parts[i].data;
        views[i].n = s.parts[i].len;
    }
    struct vl_bytes tv = {s.trusted.data, s.trusted.len};
    vl_doc_digest(seq, views, v->nstores, &tv, s.digest);
out:
    for (size_t i = 0; i < VL_MAX_STORES + 1; i++) {
        vl_buf_free(&entries[i]);
    }
    free(text);
    json_decref(rest);
    if (rc == VEIL_OK) {
        *out = s;
    } else {
        vl_sealed_free(&s);
        if (st != NULL && st->code != rc) {
            vl_status_set(st, rc, NULL, "cannot seal the document");
        }
    }
    return rc;
}

void vl_doc_digest(uint64_t seq, const struct vl_bytes *parts, size_t nparts,
                   const struct vl_bytes *trusted, uint8_t out[VL_DIGEST_BYTES])
{
    struct vl_iov v[2 + 2 * (VL_MAX_STORES + 1)];
    uint8_t t[VL_MAX_STORES + 2][8];
    size_t n = 0;
    v[n++] = (struct vl_iov){"veil/v1/digest", 14};
    vl_store_u64(t[0], seq);
    v[n++] = (struct vl_iov){t[0], 8};
    for (size_t i = 0; i <= nparts && i <= VL_MAX_STORES; i++) {
        const struct vl_bytes *b = i < nparts ? &parts[i] : trusted;
        vl_store_u64(t[i + 1], b->n);
        v[n++] = (struct vl_iov){t[i + 1], 8};
        v[n++] = (struct vl_iov){b->p, b->n};
    }
    vl_sha256_v(out, v, n);
}

/* One parsed entry of a part. */
struct entry {
    const uint8_t *col;
    const uint8_t *box;
    size_t boxlen;
    bool used;
};

static int parse_part(const struct vl_bytes *b, struct entry **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (b->n == 0) {
        return 0;
    }
    struct vl_reader r = {b->p, b->n};
    uint8_t fmt;
    uint32_t count;
    if (vl_read_u8(&r, &fmt) != 0 || fmt != PART_FORMAT || vl_read_u32(&r, &count) != 0 ||
        count == 0 || count > r.n / (VL_COL_BYTES + 4)) {
        return -1;
    }
    struct entry *e = calloc(count, sizeof(*e));
    if (e == NULL) {
        return -1;
    }
    for (uint32_t i = 0; i < count; i++) {
        if (vl_read_bytes(&r, &e[i].col, VL_COL_BYTES) != 0 ||
            vl_read_lp(&r, &e[i].box, &e[i].boxlen) != 0) {
            free(e);
            return -1;
        }
    }
    if (r.n != 0) {
        free(e);
        return -1;
    }
    *out = e;
    *n = count;
    return 0;
}

/* Marks the entry of fc (if any) as accounted for without opening it; -1 if it is there
 * twice. */
static int claim_entry(const struct vl_fctx *fc, struct entry *e, size_t n)
{
    int seen = 0;
    for (size_t i = 0; i < n; i++) {
        if (memcmp(e[i].col, fc->vcol, VL_COL_BYTES) == 0) {
            if (seen++ || e[i].used) {
                return -1;
            }
            e[i].used = true;
        }
    }
    return 0;
}

/* Opens the entry of fc in entries: *m (malloc'd, NUL-terminated) and *mlen; 1 if the
 * field is absent, -1 on any failure. */
static int open_entry(const struct vl_coll *c, const struct vl_fctx *fc, struct entry *e,
                      size_t n, const uint8_t *doc, int64_t version, char **m, size_t *mlen)
{
    struct entry *hit = NULL;
    for (size_t i = 0; i < n; i++) {
        if (memcmp(e[i].col, fc->vcol, VL_COL_BYTES) == 0) {
            if (hit != NULL || e[i].used) {
                return -1; /* twice */
            }
            hit = &e[i];
        }
    }
    if (hit == NULL) {
        return 1;
    }
    hit->used = true;
    if (hit->boxlen < BOX_OVERHEAD) {
        return -1;
    }
    uint32_t kv = vl_load_u32(hit->box);
    if (kv != c->key_version) {
        return -1;
    }
    int ret = -1;
    struct vl_buf ad;
    vl_buf_init(&ad, 4096);
    size_t plen = hit->boxlen - BOX_OVERHEAD, len = 0;
    uint8_t *pad = malloc(plen + 1);
    if (pad == NULL || value_ad(&ad, c, doc, fc->path, version, kv) != VEIL_OK) {
        goto out;
    }
    if (vl_aead_box_open(pad, &len, hit->box + 4, hit->boxlen - 4, ad.data, ad.len,
                         fc->aead_key) != 0 ||
        vl_unpad(pad, len, &len) != 0) {
        goto out;
    }
    pad[len] = '\0';
    *m = (char *)pad;
    *mlen = len;
    pad = NULL;
    ret = 0;
out:
    free(pad);
    vl_buf_free(&ad);
    return ret;
}

/* Sets value at f's path in doc, creating objects on the way; steals value. */
static int set_path(json_t *doc, const struct vl_field *f, json_t *value)
{
    json_t *cur = doc;
    for (size_t i = 0; i + 1 < f->nparts; i++) {
        json_t *next = json_object_get(cur, f->parts[i]);
        if (next == NULL) {
            next = json_object();
            if (next == NULL || json_object_set_new(cur, f->parts[i], next) != 0) {
                json_decref(value);
                return -1;
            }
        } else if (!json_is_object(next)) {
            json_decref(value);
            return -1;
        }
        cur = next;
    }
    return json_object_set_new(cur, f->parts[f->nparts - 1], value);
}

veil_err vl_doc_open(const struct vl_coll *c, const uint8_t doc[VL_DOCTOKEN_BYTES],
                     int64_t version, const struct vl_bytes *parts, size_t nparts,
                     const struct vl_bytes *trusted, const bool *want, char **id_out,
                     json_t **doc_out)
{
    veil_err rc = VEIL_ERR_INTEGRITY;
    struct entry *e[VL_MAX_STORES + 1] = {0};
    size_t ne[VL_MAX_STORES + 1] = {0};
    char *id = NULL, *m = NULL;
    size_t idlen = 0, mlen = 0;
    json_t *out = NULL;
    uint8_t check[VL_DOCTOKEN_BYTES];

    for (size_t i = 0; i <= nparts; i++) {
        if (parse_part(i < nparts ? &parts[i] : trusted, &e[i], &ne[i]) != 0) {
            goto out;
        }
    }
    if (open_entry(c, &c->id, e[0], ne[0], doc, version, &id, &idlen) != 0 ||
        strlen(id) != idlen) {
        goto out;
    }
    vl_doc_token(c, id, check);
    if (!vl_ct_equal(check, doc, VL_DOCTOKEN_BYTES)) {
        goto out;
    }
    /* Fields not wanted are claimed but left sealed: the digest the caller checked covers
     * their bytes already, and opening and parsing a large text nobody asked for is most
     * of the cost of a read. */
    size_t nf = c->policy->nfields;
    if (want != NULL && !want[nf]) {
        if (claim_entry(&c->rest, e[0], ne[0]) != 0 || (out = json_object()) == NULL) {
            goto out;
        }
    } else {
        if (open_entry(c, &c->rest, e[0], ne[0], doc, version, &m, &mlen) != 0) {
            goto out;
        }
        out = json_loadb(m, mlen, 0, NULL);
        free(m);
        m = NULL;
        if (!json_is_object(out)) {
            goto out;
        }
    }
    for (size_t i = 0; i < nf; i++) {
        const struct vl_fctx *fc = &c->fields[i];
        size_t slot = fc->store < 0 ? nparts : (size_t)fc->store;
        if (want != NULL && !want[i]) {
            if (claim_entry(fc, e[slot], ne[slot]) != 0) {
                goto out;
            }
            continue;
        }
        int r = open_entry(c, fc, e[slot], ne[slot], doc, version, &m, &mlen);
        if (r < 0) {
            goto out;
        }
        if (r == 0) {
            json_t *val = json_loadb(m, mlen, JSON_DECODE_ANY, NULL);
            free(m);
            m = NULL;
            if (val == NULL || set_path(out, fc->f, val) != 0) {
                goto out;
            }
        }
    }
    /* Every entry must have been claimed: a store cannot add fields. */
    for (size_t i = 0; i <= nparts; i++) {
        for (size_t k = 0; k < ne[i]; k++) {
            if (!e[i][k].used) {
                goto out;
            }
        }
    }
    rc = VEIL_OK;
out:
    for (size_t i = 0; i <= nparts; i++) {
        free(e[i]);
    }
    free(m);
    if (rc == VEIL_OK) {
        *id_out = id;
        *doc_out = out;
    } else {
        free(id);
        json_decref(out);
    }
    return rc;
}
