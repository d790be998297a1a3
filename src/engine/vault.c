/*
 * vault.c: a data directory brought to life: veil init, opening and closing a vault,
 * the start-up check that the trusted state is not behind the stores (mark.c), start-up
 * recovery of unfinished writes, health, tenants, tokens and sessions.
 *
 * Bearer tokens are "veil_" || id (16 hex) || "_" || secret (43 base64url chars, 256
 * bits). Only SHA-256 of the whole token is kept; a presented token is hashed and compared
 * in constant time, so neither its length nor its bytes show in timing. Every failure to
 * authenticate is the same answer.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "crypto/crypto.h"
#include "engine/engine.h"
#include "engine/write.h"
#include "util/log.h"

#define TOKEN_PREFIX "veil_"
#define TOKEN_ID_HEX VEIL_TOKEN_ID_LEN
#define TOKEN_SECRET_BYTES 32

static char *path_join(const char *dir, const char *rel)
{
    char *p = NULL;
    if (rel[0] == '/') {
        return strdup(rel);
    }
    if (asprintf(&p, "%s/%s", dir, rel) < 0) {
        return NULL;
    }
    return p;
}

static bool valid_name(const char *s, size_t max)
{
    size_t n = strlen(s);
    return n > 0 && n <= max && s[0] != '-' &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n;
}

/* ---- init ---- */

veil_err veil_init(const char *datadir, const veil_init_options *opt, veil_status *st)
{
    veil_init_options none;
    memset(&none, 0, sizeof(none));
    if (opt == NULL) {
        opt = &none;
    }
    vl_status_clear(st);
    if (vl_crypto_init() != 0) {
        return vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "cannot initialise the crypto layer");
    }
    if (opt->keyring != NULL && strcmp(opt->keyring, "local") != 0) {
        return vl_status_set(st, VEIL_ERR_BAD_REQUEST, "keyring",
                             "keyring %s is not available in this version; use local",
                             strcmp(opt->keyring, "pkcs11") == 0 ? "pkcs11" : "given");
    }
    char *cfg = path_join(datadir, "veil.yaml");
    char *trusted = path_join(datadir, "trusted.db");
    char *key = path_join(datadir, "master.key");
    char *cloud = path_join(datadir, "cloud");
    veil_err rc = VEIL_OK;
    FILE *f = NULL;
    if (cfg == NULL || trusted == NULL || key == NULL || cloud == NULL) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    if (access(cfg, F_OK) == 0 || access(trusted, F_OK) == 0 || access(key, F_OK) == 0) {
        rc = vl_status_set(st, VEIL_ERR_CONFLICT, "data",
                           "%s already holds a veil data directory; not overwriting it",
                           datadir);
        goto out;
    }
    if (mkdir(datadir, 0700) != 0 && errno != EEXIST) {
        rc = vl_status_set(st, VEIL_ERR_BAD_REQUEST, "data", "cannot create %s: %s", datadir,
                           strerror(errno));
        goto out;
    }
    if (mkdir(cloud, 0700) != 0 && errno != EEXIST) {
        rc = vl_status_set(st, VEIL_ERR_BAD_REQUEST, "data", "cannot create %s: %s", cloud,
                           strerror(errno));
        goto out;
    }
    if ((rc = vl_keyring_local_create(key, opt->passphrase_env, st)) != VEIL_OK) {
        goto out;
    }
    int fd = open(cfg, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
        rc = vl_status_set(st, VEIL_ERR_BAD_REQUEST, "data", "cannot write %s", cfg);
        goto out;
    }
    fprintf(f,
            "# veil configuration (man veil-server). Relative paths are relative to this "
            "directory.\n"
            "listen: %s\n",
            opt->listen != NULL ? opt->listen : "127.0.0.1:8470");
    if (opt->passphrase_env != NULL) {
        fprintf(f, "keyring: { type: local, path: master.key, passphrase_env: %s }\n",
                opt->passphrase_env);
    } else {
        fprintf(f, "keyring: { type: local, path: master.key }\n");
    }
    fprintf(f, "trusted: sqlite:trusted.db\n"
               "stores:                  # named untrusted stores; the first is the default\n"
               "  cloud: sqlite:cloud/cloud.db\n"
               "limits: { max_body: 16MiB, max_depth: 32, max_fields: 1024 }\n");
    if (fclose(f) != 0) {
        f = NULL;
        rc = vl_status_set(st, VEIL_ERR_BAD_REQUEST, "data", "cannot write %s", cfg);
        goto out;
    }
    f = NULL;
    struct vl_trusted *t = NULL;
    if ((rc = vl_trusted_open("sqlite:trusted.db", datadir, true, &t, st)) != VEIL_OK) {
        goto out;
    }
    vl_trusted_close(t);
out:
    if (f != NULL) {
        fclose(f);
    }
    free(cfg);
    free(trusted);
    free(key);
    free(cloud);
    return rc;
}

/* ---- open, recovery, close ---- */

static veil_err recover_one(void *ctx, int64_t tenant, const char *coll,
                            const struct vl_intent *in)
{
    return vl_intent_recover(ctx, tenant, coll, in);
}

/* behind: skip the check that the trusted state is level with the stores, and recovery. */
static veil_err vault_open(const char *datadir, bool behind, veil_vault **out,
                           veil_status *st)
{
    veil_err rc = VEIL_OK;
    char *keypath = NULL;
    vl_status_clear(st);
    if (vl_crypto_init() != 0) {
        return vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "cannot initialise the crypto layer");
    }
    veil_vault *v = calloc(1, sizeof(*v));
    if (v == NULL || (v->datadir = strdup(datadir)) == NULL) {
        free(v);
        return vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
    }
    pthread_mutex_init(&v->mu, NULL);
    pthread_mutex_init(&v->seen_mu, NULL);
    for (size_t i = 0; i < VL_STRIPES; i++) {
        pthread_mutex_init(&v->stripes[i], NULL);
    }
    if ((rc = vl_config_load(datadir, &v->cfg, st)) != VEIL_OK) {
        goto out;
    }
    if ((keypath = path_join(datadir, v->cfg.keyring_path)) == NULL) {
        rc = vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
        goto out;
    }
    if ((rc = vl_keyring_local_open(keypath, v->cfg.passphrase_env, &v->keyring, st)) !=
        VEIL_OK) {
        goto out;
    }
    if ((rc = vl_trusted_open(v->cfg.trusted_url, datadir, false, &v->trusted, st)) !=
        VEIL_OK) {
        goto out;
    }
    for (size_t i = 0; i < v->cfg.nstores; i++) {
        if ((rc = vl_store_open(v->cfg.store_urls[i], datadir, &v->stores[i], st)) !=
            VEIL_OK) {
            goto out;
        }
        v->nstores = i + 1;
    }
    if ((rc = vl_mark_init(v, st)) != VEIL_OK) {
        goto out;
    }
    /* Before anything is written: finishing the intents of a trusted state that is behind
     * would write its stale view over what the stores hold. */
    if (behind || (rc = vl_mark_check(v, st)) != VEIL_OK) {
        goto out;
    }
    rc = vl_trusted_intents_pending(v->trusted, recover_one, v);
    if (rc != VEIL_OK) {
        rc = vl_status_set(st, rc, NULL,
                           "cannot finish the writes a crash interrupted (is a store down?)");
        goto out;
    }
out:
    free(keypath);
    if (rc == VEIL_OK) {
        *out = v;
    } else {
        veil_vault_close(v);
    }
    return rc;
}

veil_err veil_vault_open(const char *datadir, veil_vault **out, veil_status *st)
{
    return vault_open(datadir, false, out, st);
}

veil_err vl_vault_open_behind(const char *datadir, veil_vault **out, veil_status *st)
{
    return vault_open(datadir, true, out, st);
}

void veil_vault_close(veil_vault *v)
{
    if (v == NULL) {
        return;
    }
    while (v->colls != NULL) {
        struct vl_coll *c = v->colls;
        v->colls = c->next;
        vl_coll_free(c);
    }
    for (size_t i = 0; i < v->nstores; i++) {
        vl_store_close(v->stores[i]);
    }
    vl_trusted_close(v->trusted);
    vl_secret_free(v->mark_keys);
    vl_keyring_close(v->keyring);
    vl_config_free(&v->cfg);
    pthread_mutex_destroy(&v->mu);
    pthread_mutex_destroy(&v->seen_mu);
    for (size_t i = 0; i < VL_STRIPES; i++) {
        pthread_mutex_destroy(&v->stripes[i]);
    }
    free(v->datadir);
    free(v);
}

void veil_vault_limits(const veil_vault *v, veil_limits *out)
{
    *out = v->cfg.limits;
}

const char *veil_vault_listen(const veil_vault *v)
{
    return v->cfg.listen;
}

veil_err veil_health(veil_vault *v, char **json_out)
{
    veil_err rc = VEIL_OK;
    json_t *stores = json_object();
    for (size_t i = 0; i < v->nstores; i++) {
        bool ok = v->stores[i]->ops->ping(v->stores[i]) == VEIL_OK;
        json_object_set_new(stores, v->cfg.store_names[i],
                            json_string(ok ? "ok" : "unavailable"));
        if (!ok) {
            rc = VEIL_ERR_STORE_UNAVAILABLE;
        }
    }
    json_t *o = json_pack("{s:s, s:o}", "status", rc == VEIL_OK ? "ok" : "degraded", "stores",
                          stores);
    *json_out = vl_json_text(o);
    json_decref(o);
    return rc;
}

/* Outputs may hold tokens or decrypted documents: wiped before the memory goes back to the
 * allocator, where a later page buffer of a database file could pick it up unwritten. */
void veil_free(void *p)
{
    if (p != NULL) {
        sodium_memzero(p, malloc_usable_size(p));
    }
    free(p);
}

/* ---- tenants ---- */

veil_err vl_tenant_key_load(veil_vault *v, int64_t tenant_id, const char *tenant,
                            uint32_t version, uint8_t *out, veil_status *st)
{
    struct vl_buf wrapped, ad;
    vl_buf_init(&wrapped, 4096);
    vl_buf_init(&ad, 4096);
    veil_err rc = vl_trusted_tenant_key(v->trusted, tenant_id, version, &wrapped);
    if (rc == VEIL_ERR_NOT_FOUND) {
        rc = vl_status_set(st, rc, NULL, "no such tenant");
    } else if (rc != VEIL_OK) {
        rc = vl_status_set(st, rc, NULL, "the trusted state is unavailable");
    } else if ((rc = vl_tenant_key_ad(&ad, tenant, version)) == VEIL_OK) {
        rc = v->keyring->ops->unwrap(v->keyring, wrapped.data, wrapped.len, ad.data, ad.len,
                                     out, VL_TENANT_KEYBYTES);
        if (rc != VEIL_OK) {
            vl_log(VL_LOG_ERROR, "a wrapped tenant key failed to unwrap (tenant %s)", tenant);
            rc = vl_status_set(st, VEIL_ERR_INTEGRITY, NULL,
                               "a tenant key in the trusted state failed to unwrap");
        }
    }
    vl_buf_free(&wrapped);
    vl_buf_free(&ad);
    return rc;
}

veil_err veil_tenant_create(veil_vault *v, const char *name, veil_status *st)
{
    vl_status_clear(st);
    if (!valid_name(name, 64)) {
        return vl_status_set(st, VEIL_ERR_BAD_REQUEST, "tenant",
                             "a tenant name is 1..64 letters, digits, _ or -");
    }
    uint8_t *key = vl_secret_alloc(VL_TENANT_KEYBYTES);
    struct vl_buf wrapped, ad;
    vl_buf_init(&wrapped, 4096);
    vl_buf_init(&ad, 4096);
    veil_err rc = key != NULL ? vl_tenant_key_ad(&ad, name, 1) : VEIL_ERR_INTERNAL;
    if (rc == VEIL_OK) {
        vl_random(key, VL_TENANT_KEYBYTES);
        rc = v->keyring->ops->wrap(v->keyring, key, VL_TENANT_KEYBYTES, ad.data, ad.len,
                                   &wrapped);
    }
    if (rc == VEIL_OK) {
        struct vl_bytes b = {wrapped.data, wrapped.len};
        rc = vl_trusted_tenant_create(v->trusted, name, &b, st);
    } else {
        vl_status_set(st, rc, NULL, "cannot make the tenant key");
    }
    vl_secret_free(key);
    vl_buf_free(&wrapped);
    vl_buf_free(&ad);
    return rc;
}

veil_err veil_tenant_list(veil_vault *v, char **json_out, veil_status *st)
{
    json_t *arr = NULL;
    vl_status_clear(st);
    veil_err rc = vl_trusted_tenant_list(v->trusted, &arr);
    if (rc != VEIL_OK) {
        return vl_status_set(st, rc, NULL, "the trusted state is unavailable");
    }
    *json_out = vl_json_text(arr);
    json_decref(arr);
    return *json_out != NULL ? VEIL_OK : VEIL_ERR_INTERNAL;
}

veil_err veil_tenant_shred(veil_vault *v, const char *name, veil_status *st)
{
    struct vl_tenant_row tr;
    vl_status_clear(st);
    veil_err rc = vl_trusted_tenant_find(v->trusted, name, &tr);
    if (rc != VEIL_OK || tr.shredded) {
        return vl_status_set(st, VEIL_ERR_NOT_FOUND, "tenant", "no such tenant");
    }
    /* Drop the tenant's tables first, while their names can still be derived; then the
     * keys, after which nothing the stores or the trusted state hold can be read. */
    veil_session s = {.v = v, .tenant_id = tr.id, .tenant = (char *)name, .role = "admin",
                      .admin = true};
    char **names = NULL;
    size_t n = 0;
    if (vl_trusted_collection_names(v->trusted, tr.id, &names, &n) == VEIL_OK) {
        for (size_t i = 0; i < n; i++) {
            const struct vl_coll *c = NULL;
            if (vl_coll_get(&s, names[i], &c, NULL) == VEIL_OK) {
                for (size_t k = 0; k < v->nstores; k++) {
                    if (v->stores[k]->ops->drop_table(v->stores[k], c->table) != VEIL_OK) {
                        vl_log(VL_LOG_WARN, "shred: store %s did not drop a table; its "
                                            "rows stay, unreadable",
                               v->cfg.store_names[k]);
                    }
                }
            }
            free(names[i]);
        }
        free(names);
    }
    vl_coll_forget_tenant(v, tr.id);
    rc = vl_trusted_tenant_shred(v->trusted, tr.id);
    if (rc != VEIL_OK) {
        return vl_status_set(st, rc, NULL, "the trusted state is unavailable");
    }
    return VEIL_OK;
}

/* ---- tokens ---- */

/* VEIL_OK when a policy of the tenant defines `role`; else VEIL_ERR_BAD_REQUEST naming the
 * roles there are. */
static veil_err role_defined(veil_vault *v, const struct vl_tenant_row *tr, const char *tenant,
                             const char *role, veil_status *st)
{
    veil_session s = {.v = v, .tenant_id = tr->id, .tenant = (char *)tenant, .role = "admin",
                      .admin = true};
    char **names = NULL;
    size_t n = 0;
    bool found = false;
    char known[200] = "";
    size_t kn = 0;
    veil_err rc = vl_trusted_collection_names(v->trusted, tr->id, &names, &n);
    if (rc != VEIL_OK) {
        return vl_status_set(st, rc, NULL, "the trusted state is unavailable");
    }
    for (size_t i = 0; i < n; i++) {
        const struct vl_coll *c = NULL;
        veil_status cst;
        if (rc == VEIL_OK && (rc = vl_coll_get(&s, names[i], &c, &cst)) != VEIL_OK &&
            st != NULL) {
            *st = cst;
        }
        for (size_t k = 0; rc == VEIL_OK && k < c->policy->nroles; k++) {
            const char *r = c->policy->roles[k].name;
            found |= strcmp(r, role) == 0;
            if (strstr(known, r) == NULL && kn + strlen(r) + 3 < sizeof(known)) {
                kn += (size_t)snprintf(known + kn, sizeof(known) - kn, "%s%s", kn ? ", " : "",
                                       r);
            }
        }
        free(names[i]);
    }
    free(names);
    if (rc != VEIL_OK || found) {
        return rc;
    }
    return vl_status_set(st, VEIL_ERR_BAD_REQUEST, "role",
                         "no policy of tenant %s defines role %s (roles: %s%sadmin)", tenant,
                         role, known, kn ? ", " : "");
}

veil_err veil_token_create(veil_vault *v, const char *tenant, const char *role,
                           char **token_out, char **token_id_out, veil_status *st)
{
    struct vl_tenant_row tr;
    vl_status_clear(st);
    if (!valid_name(role, 64)) {
        return vl_status_set(st, VEIL_ERR_BAD_REQUEST, "role",
                             "a role name is 1..64 letters, digits, _ or -");
    }
    veil_err rc = vl_trusted_tenant_find(v->trusted, tenant, &tr);
    if (rc != VEIL_OK || tr.shredded) {
        return vl_status_set(st, VEIL_ERR_NOT_FOUND, "tenant", "no such tenant");
    }
    if (strcmp(role, "admin") != 0 && (rc = role_defined(v, &tr, tenant, role, st)) != VEIL_OK) {
        return rc;
    }
    uint8_t idb[TOKEN_ID_HEX / 2], secret[TOKEN_SECRET_BYTES], hash[32];
    char id[TOKEN_ID_HEX + 1];
    char enc[sodium_base64_ENCODED_LEN(TOKEN_SECRET_BYTES,
                                       sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
    vl_random(idb, sizeof(idb));
    vl_random(secret, sizeof(secret));
    vl_hex(id, idb, sizeof(idb));
    sodium_bin2base64(enc, sizeof(enc), secret, sizeof(secret),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(secret, sizeof(secret));
    char *token = NULL;
    if (asprintf(&token, TOKEN_PREFIX "%s_%s", id, enc) < 0) {
        sodium_memzero(enc, sizeof(enc));
        return vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
    }
    sodium_memzero(enc, sizeof(enc));
    vl_sha256(hash, token, strlen(token));
    rc = vl_trusted_token_add(v->trusted, id, tr.id, role, hash);
    if (rc != VEIL_OK) {
        sodium_memzero(token, strlen(token));
        free(token);
        return vl_status_set(st, rc, NULL, "the trusted state is unavailable");
    }
    *token_out = token;
    *token_id_out = strdup(id);
    return VEIL_OK;
}

/* The id inside a bearer token "veil_<id>_<secret>", into id; -1 when `bearer` is not
 * shaped like one. */
static int token_id_of(const char *bearer, char id[TOKEN_ID_HEX + 1])
{
    size_t plen = strlen(TOKEN_PREFIX), n = strlen(bearer);
    if (n > 256 || n < plen + TOKEN_ID_HEX + 1 || strncmp(bearer, TOKEN_PREFIX, plen) != 0 ||
        bearer[plen + TOKEN_ID_HEX] != '_') {
        return -1;
    }
    memcpy(id, bearer + plen, TOKEN_ID_HEX);
    id[TOKEN_ID_HEX] = '\0';
    if (strspn(id, "0123456789abcdef") != TOKEN_ID_HEX) {
        id[0] = '\0';
        return -1;
    }
    return 0;
}

int veil_token_id(const char *bearer, char out[VEIL_TOKEN_ID_LEN + 1])
{
    out[0] = '\0';
    return bearer != NULL ? token_id_of(bearer, out) : -1;
}

veil_err veil_token_revoke(veil_vault *v, const char *token_or_id, veil_status *st)
{
    char id[TOKEN_ID_HEX + 1];
    veil_err rc = VEIL_OK;
    vl_status_clear(st);
    if (strlen(token_or_id) == TOKEN_ID_HEX) {
        memcpy(id, token_or_id, TOKEN_ID_HEX + 1);
    } else if (token_id_of(token_or_id, id) == 0) {
        /* The whole token: revoke it only if it is the one that id names. */
        int64_t tenant = 0;
        char *tname = NULL, *role = NULL;
        uint8_t want[32], got[32];
        rc = vl_trusted_token_find(v->trusted, id, &tenant, &tname, &role, want);
        free(tname);
        free(role);
        vl_sha256(got, token_or_id, strlen(token_or_id));
        if (rc == VEIL_OK && !vl_ct_equal(got, want, sizeof(got))) {
            rc = VEIL_ERR_NOT_FOUND;
        }
    } else {
        return vl_status_set(st, VEIL_ERR_BAD_REQUEST, "token",
                             "give the token (veil_...) or its 16-hex id");
    }
    if (rc == VEIL_OK) {
        rc = vl_trusted_token_revoke(v->trusted, id);
    }
    if (rc == VEIL_ERR_NOT_FOUND) {
        return vl_status_set(st, rc, "token", "no such token, or revoked already");
    }
    if (rc != VEIL_OK) {
        return vl_status_set(st, rc, NULL, "the trusted state is unavailable");
    }
    return VEIL_OK;
}

void vl_rfc3339(char out[32], int64_t t)
{
    struct tm tm;
    time_t tt = (time_t)t;
    if (gmtime_r(&tt, &tm) == NULL || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        snprintf(out, 32, "%lld", (long long)t);
    }
}

veil_err veil_token_list(veil_vault *v, const char *tenant, char **json_out, veil_status *st)
{
    json_t *arr = NULL;
    vl_status_clear(st);
    if (tenant != NULL) {
        struct vl_tenant_row tr;
        if (vl_trusted_tenant_find(v->trusted, tenant, &tr) != VEIL_OK || tr.shredded) {
            return vl_status_set(st, VEIL_ERR_NOT_FOUND, "tenant", "no such tenant");
        }
    }
    veil_err rc = vl_trusted_token_list(v->trusted, tenant, &arr);
    if (rc != VEIL_OK) {
        return vl_status_set(st, rc, NULL, "the trusted state is unavailable");
    }
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) {
        char when[32];
        vl_rfc3339(when, json_integer_value(json_object_get(e, "created")));
        json_object_set_new(e, "created", json_string(when));
        json_t *used = json_object_get(e, "last_used");
        if (json_is_integer(used)) {
            vl_rfc3339(when, json_integer_value(used));
            json_object_set_new(e, "last_used", json_string(when));
        }
    }
    *json_out = vl_json_text(arr);
    json_decref(arr);
    return *json_out != NULL ? VEIL_OK : vl_status_set(st, VEIL_ERR_INTERNAL, NULL,
                                                       "out of memory");
}

/* Records a token's use in the trusted state, at most once every VL_TOKEN_TOUCH_S seconds a
 * token: the vault remembers when it last did, so most requests write nothing. */
static void token_touch(veil_vault *v, const char *id)
{
    int64_t now = (int64_t)time(NULL);
    unsigned slot = 0;
    for (size_t i = 0; i < TOKEN_ID_HEX; i++) {
        slot = slot * 31u + (unsigned char)id[i];
    }
    slot %= VL_TOKEN_SEEN_SLOTS;
    bool due;
    pthread_mutex_lock(&v->seen_mu);
    struct vl_token_seen *e = &v->seen[slot];
    due = strcmp(e->id, id) != 0 || now - e->at >= VL_TOKEN_TOUCH_S || now < e->at;
    if (due) {
        memcpy(e->id, id, sizeof(e->id));
        e->at = now;
    }
    pthread_mutex_unlock(&v->seen_mu);
    if (due && vl_trusted_token_touch(v->trusted, id, now, VL_TOKEN_TOUCH_S) != VEIL_OK) {
        vl_log(VL_LOG_WARN, "trusted state: cannot record a token's last use");
    }
}

/* ---- sessions ---- */

static veil_err session_new(veil_vault *v, int64_t tenant_id, const char *tenant,
                            const char *role, veil_session **out)
{
    veil_session *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->tenant = strdup(tenant)) == NULL || (s->role = strdup(role)) == NULL) {
        veil_session_free(s);
        return VEIL_ERR_INTERNAL;
    }
    s->v = v;
    s->tenant_id = tenant_id;
    s->admin = strcmp(role, "admin") == 0;
    *out = s;
    return VEIL_OK;
}

veil_err veil_session_open(veil_vault *v, const char *tenant, const char *role,
                           veil_session **out, veil_status *st)
{
    struct vl_tenant_row tr;
    vl_status_clear(st);
    veil_err rc = vl_trusted_tenant_find(v->trusted, tenant, &tr);
    if (rc != VEIL_OK || tr.shredded) {
        return vl_status_set(st, VEIL_ERR_NOT_FOUND, "tenant", "no such tenant");
    }
    if (session_new(v, tr.id, tenant, role, out) != VEIL_OK) {
        return vl_status_set(st, VEIL_ERR_INTERNAL, NULL, "out of memory");
    }
    snprintf((*out)->principal, sizeof((*out)->principal), "-");
    return VEIL_OK;
}

veil_err veil_session_authenticate(veil_vault *v, const char *bearer, veil_session **out,
                                   veil_status *st)
{
    veil_err rc = VEIL_ERR_UNAUTHENTICATED;
    char id[TOKEN_ID_HEX + 1];
    uint8_t want[32], got[32];
    int64_t tenant_id = 0;
    char *role = NULL, *tname = NULL;
    vl_status_clear(st);
    if (bearer == NULL || token_id_of(bearer, id) != 0) {
        goto out;
    }
    veil_err r = vl_trusted_token_find(v->trusted, id, &tenant_id, &tname, &role, want);
    if (r == VEIL_ERR_STORE_UNAVAILABLE) {
        rc = r;
        goto out;
    }
    vl_sha256(got, bearer, strlen(bearer));
    if (r != VEIL_OK || !vl_ct_equal(got, want, sizeof(got))) {
        goto out;
    }
    rc = session_new(v, tenant_id, tname, role, out) == VEIL_OK ? VEIL_OK : VEIL_ERR_INTERNAL;
    if (rc == VEIL_OK) {
        snprintf((*out)->principal, sizeof((*out)->principal), "%s", id);
        token_touch(v, id);
    }
out:
    free(role);
    free(tname);
    if (rc == VEIL_ERR_UNAUTHENTICATED) {
        vl_status_set(st, rc, NULL, "a valid bearer token is needed");
    } else if (rc != VEIL_OK) {
        vl_status_set(st, rc, NULL, "the trusted state is unavailable");
    }
    return rc;
}

void veil_session_free(veil_session *s)
{
    if (s == NULL) {
        return;
    }
    free(s->tenant);
    free(s->role);
    free(s);
}

const char *veil_session_tenant(const veil_session *s)
{
    return s->tenant;
}

const char *veil_session_role(const veil_session *s)
{
    return s->role;
}

veil_err vl_breach(veil_vault *v, const veil_session *s, const char *coll, const char *what,
                   veil_status *st)
{
    (void)v;
    vl_log_event(VL_LOG_ERROR, "breach_suspected",
                 json_pack("{s:s?, s:s?, s:s?}", "tenant", s != NULL ? s->tenant : NULL,
                           "collection", coll, "what", what));
    return vl_status_set(st, VEIL_ERR_INTEGRITY, NULL,
                         "a store returned data that fails its integrity checks");
}
