/*
 * view.c: a document as a role may see it (README "Policies"). `read` fields come back in
 * clear ("*": every field, listed or not), `masked` fields masked with the field's `mask:`
 * (redact when it has none), every other field is left out. The built-in admin role sees
 * everything. `select` then keeps only the paths asked for.
 */
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "engine/engine.h"
#include "util/buf.h"

static json_t *mask_value(const struct vl_fctx *fc, const json_t *v)
{
    enum vl_mask m = fc->f->mask == VL_MASK_NONE ? VL_MASK_REDACT : fc->f->mask;
    if (json_is_null(v)) {
        return json_null();
    }
    if (m != VL_MASK_HASH) {
        return vl_mask_apply(m, v);
    }
    /* A keyed hash: equal values show equal, nobody without the key can test a guess. */
    struct vl_buf canon;
    vl_buf_init(&canon, 1 << 24);
    json_t *out = NULL;
    char *text = NULL;
    veil_err rc = vl_value_canonical(fc->f, v, &canon);
    if (rc != VEIL_OK) {
        vl_buf_reset(&canon);
        text = vl_json_text(v);
        rc = text != NULL ? vl_buf_append_str(&canon, text) : VEIL_ERR_INTERNAL;
    }
    if (rc == VEIL_OK) {
        uint8_t mac[VL_PRF_BYTES];
        char hex[2 * VL_MASK_HASH_BYTES + 1];
        vl_hmac_sha256(mac, fc->mask_key, 32, canon.data, canon.len);
        vl_hex(hex, mac, VL_MASK_HASH_BYTES);
        out = json_string(hex);
    }
    free(text);
    vl_buf_wipe(&canon);
    return out;
}

/* Sets value at the dotted path in obj, creating objects on the way; steals value. */
static void put_path(json_t *obj, const struct vl_field *f, json_t *value)
{
    json_t *cur = obj;
    for (size_t i = 0; i + 1 < f->nparts; i++) {
        json_t *next = json_object_get(cur, f->parts[i]);
        if (!json_is_object(next)) {
            next = json_object();
            json_object_set_new(cur, f->parts[i], next);
        }
        cur = next;
    }
    json_object_set_new(cur, f->parts[f->nparts - 1], value);
}

/* Keeps only the selected dotted paths of doc. */
static json_t *project(const json_t *doc, const json_t *select)
{
    json_t *out = json_object();
    size_t i;
    json_t *p;
    json_array_foreach(select, i, p) {
        const char *path = json_string_value(p);
        struct vl_field f;
        char *copy = strdup(path ? path : "");
        memset(&f, 0, sizeof(f));
        char *save = NULL;
        for (char *tok = strtok_r(copy, ".", &save); tok && f.nparts < VL_PATH_MAX_PARTS;
             tok = strtok_r(NULL, ".", &save)) {
            f.parts[f.nparts++] = tok;
        }
        const json_t *v = f.nparts ? vl_json_path_get(doc, &f) : NULL;
        if (v != NULL) {
            put_path(out, &f, json_deep_copy(v));
        }
        free(copy);
    }
    return out;
}

json_t *vl_doc_for_role(const struct vl_coll *c, const veil_session *s, const json_t *doc,
                        const json_t *select)
{
    json_t *out = NULL;
    const struct vl_role *role = s->admin ? NULL : vl_policy_role(c->policy, s->role);
    if (s->admin) {
        out = json_deep_copy(doc);
    } else if (role == NULL) {
        out = json_object();
    } else if (role->read_all) {
        out = json_deep_copy(doc);
        for (size_t i = 0; i < c->policy->nfields; i++) {
            const struct vl_fctx *fc = &c->fields[i];
            const json_t *v = vl_json_path_get(doc, fc->f);
            if (v != NULL && vl_role_masks(role, fc->path)) {
                put_path(out, fc->f, mask_value(fc, v));
            }
        }
    } else {
        out = json_object();
        for (size_t i = 0; i < c->policy->nfields; i++) {
            const struct vl_fctx *fc = &c->fields[i];
            const json_t *v = vl_json_path_get(doc, fc->f);
            if (v == NULL) {
                continue;
            }
            if (vl_role_reads(role, fc->path)) {
                put_path(out, fc->f, json_deep_copy(v));
            } else if (vl_role_masks(role, fc->path)) {
                put_path(out, fc->f, mask_value(fc, v));
            }
        }
    }
    if (out != NULL && json_is_array(select)) {
        json_t *p = project(out, select);
        json_decref(out);
        out = p;
    }
    return out;
}
