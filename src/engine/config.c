/*
 * config.c: veil.yaml, read with the same bounded YAML loader as policies. Unknown keys are
 * errors (a typo in a security configuration must not pass silently); relative paths
 * resolve against the data directory (done by whoever opens them).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "policy/yaml.h"

#define CONFIG_MAX (64 * 1024)

static veil_err bad(veil_status *st, const struct vl_ynode *n, const char *what)
{
    return vl_status_set(st, VEIL_ERR_BAD_REQUEST, "veil.yaml", "veil.yaml line %d: %s",
                         n != NULL ? n->line : 0, what);
}

static veil_err str_of(const struct vl_ynode *n, char **out, veil_status *st)
{
    if (n == NULL || n->kind != VL_YAML_SCALAR) {
        return bad(st, n, "expected a string");
    }
    free(*out);
    *out = strdup(n->str);
    return *out != NULL ? VEIL_OK : VEIL_ERR_INTERNAL;
}

/* "16MiB", "512KiB", "1048576" */
static int parse_size(const char *s, size_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s) {
        return -1;
    }
    unsigned long long mul = 1;
    if (strcmp(end, "") == 0 || strcmp(end, "B") == 0) {
        mul = 1;
    } else if (strcmp(end, "KiB") == 0) {
        mul = 1ull << 10;
    } else if (strcmp(end, "MiB") == 0) {
        mul = 1ull << 20;
    } else if (strcmp(end, "GiB") == 0) {
        mul = 1ull << 30;
    } else {
        return -1;
    }
    if (v == 0 || v > (1ull << 40) / mul) {
        return -1;
    }
    *out = (size_t)(v * mul);
    return 0;
}

static int parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

static veil_err load_keyring(const struct vl_ynode *k, struct vl_config *cfg, veil_status *st)
{
    if (k->kind != VL_YAML_MAP) {
        return bad(st, k, "keyring must be a mapping");
    }
    veil_err rc = VEIL_OK;
    for (size_t i = 0; rc == VEIL_OK && i < k->n; i++) {
        const char *key = k->keys[i];
        const struct vl_ynode *val = k->kids[i];
        if (strcmp(key, "type") == 0) {
            rc = str_of(val, &cfg->keyring_type, st);
        } else if (strcmp(key, "path") == 0) {
            rc = str_of(val, &cfg->keyring_path, st);
        } else if (strcmp(key, "passphrase_env") == 0) {
            rc = str_of(val, &cfg->passphrase_env, st);
        } else {
            rc = bad(st, val, "unknown keyring key (known: type, path, passphrase_env)");
        }
    }
    if (rc == VEIL_OK && (cfg->keyring_type == NULL || strcmp(cfg->keyring_type, "local"))) {
        rc = bad(st, k, "keyring type must be local in this version");
    }
    if (rc == VEIL_OK && cfg->keyring_path == NULL) {
        rc = bad(st, k, "keyring path is missing");
    }
    return rc;
}

static veil_err load_limits(const struct vl_ynode *l, struct vl_config *cfg, veil_status *st)
{
    if (l->kind != VL_YAML_MAP) {
        return bad(st, l, "limits must be a mapping");
    }
    for (size_t i = 0; i < l->n; i++) {
        const char *key = l->keys[i];
        const struct vl_ynode *val = l->kids[i];
        if (val->kind != VL_YAML_SCALAR) {
            return bad(st, val, "limits take numbers");
        }
        if (strcmp(key, "max_body") == 0) {
            if (parse_size(val->str, &cfg->limits.max_body) != 0) {
                return bad(st, val, "max_body must be a size such as 16MiB");
            }
        } else if (strcmp(key, "max_depth") == 0) {
            if (parse_uint(val->str, 2, 256, &cfg->limits.max_depth) != 0) {
                return bad(st, val, "max_depth must be 2..256");
            }
        } else if (strcmp(key, "max_fields") == 0) {
            if (parse_uint(val->str, 1, 1000000, &cfg->limits.max_fields) != 0) {
                return bad(st, val, "max_fields must be 1..1000000");
            }
        } else {
            return bad(st, val, "unknown limit (known: max_body, max_depth, max_fields)");
        }
    }
    return VEIL_OK;
}

static veil_err load_stores(const struct vl_ynode *s, struct vl_config *cfg, veil_status *st)
{
    if (s->kind != VL_YAML_MAP || s->n == 0) {
        return bad(st, s, "stores must map at least one name to a URL");
    }
    if (s->n > VL_MAX_STORES) {
        return bad(st, s, "too many stores");
    }
    for (size_t i = 0; i < s->n; i++) {
        const char *name = s->keys[i];
        size_t len = strlen(name);
        if (len == 0 || len > 64 || strcmp(name, "trusted") == 0 ||
            strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
                len) {
            return bad(st, s->kids[i], "a store name is 1..64 letters, digits, _ or -, and "
                                       "not 'trusted'");
        }
        cfg->store_names[i] = strdup(name);
        cfg->store_urls[i] = NULL;
        cfg->nstores = i + 1;
        veil_err rc = str_of(s->kids[i], &cfg->store_urls[i], st);
        if (cfg->store_names[i] == NULL || rc != VEIL_OK) {
            return rc != VEIL_OK ? rc : VEIL_ERR_INTERNAL;
        }
    }
    return VEIL_OK;
}

veil_err vl_config_load(const char *datadir, struct vl_config *cfg, veil_status *st)
{
    char path[4096];
    veil_err rc = VEIL_OK;
    struct vl_ynode *root = NULL;
    char *text = NULL;
    memset(cfg, 0, sizeof(*cfg));
    cfg->limits.max_body = 16u << 20;
    cfg->limits.max_depth = 32;
    cfg->limits.max_fields = 1024;

    snprintf(path, sizeof(path), "%s/veil.yaml", datadir);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return vl_status_set(st, VEIL_ERR_NOT_FOUND, "veil.yaml",
                             "no veil.yaml in %s (run veil init first)", datadir);
    }
    text = malloc(CONFIG_MAX + 1);
    size_t n = text != NULL ? fread(text, 1, CONFIG_MAX + 1, f) : 0;
    fclose(f);
    if (text == NULL || n > CONFIG_MAX) {
        free(text);
        return vl_status_set(st, VEIL_ERR_BAD_REQUEST, "veil.yaml", "veil.yaml is too large");
    }
    if ((rc = vl_yaml_load(text, n, &root, st)) != VEIL_OK) {
        free(text);
        return rc;
    }
    free(text);
    if (root == NULL || root->kind != VL_YAML_MAP) {
        rc = bad(st, root, "veil.yaml must be a mapping");
        goto out;
    }
    for (size_t i = 0; rc == VEIL_OK && i < root->n; i++) {
        const char *key = root->keys[i];
        const struct vl_ynode *val = root->kids[i];
        if (strcmp(key, "listen") == 0) {
            rc = str_of(val, &cfg->listen, st);
        } else if (strcmp(key, "keyring") == 0) {
            rc = load_keyring(val, cfg, st);
        } else if (strcmp(key, "trusted") == 0) {
            rc = str_of(val, &cfg->trusted_url, st);
        } else if (strcmp(key, "stores") == 0) {
            rc = load_stores(val, cfg, st);
        } else if (strcmp(key, "limits") == 0) {
            rc = load_limits(val, cfg, st);
        } else {
            rc = bad(st, val, "unknown key (known: listen, keyring, trusted, stores, limits)");
        }
    }
    if (rc == VEIL_OK && (cfg->keyring_type == NULL || cfg->trusted_url == NULL ||
                          cfg->nstores == 0)) {
        rc = bad(st, root, "veil.yaml needs keyring, trusted and stores");
    }
    if (rc == VEIL_OK && cfg->listen == NULL && (cfg->listen = strdup("127.0.0.1:8470")) == NULL) {
        rc = VEIL_ERR_INTERNAL;
    }
out:
    vl_ynode_free(root);
    if (rc != VEIL_OK) {
        vl_config_free(cfg);
    }
    return rc;
}

void vl_config_free(struct vl_config *cfg)
{
    free(cfg->listen);
    free(cfg->keyring_type);
    free(cfg->keyring_path);
    free(cfg->passphrase_env);
    free(cfg->trusted_url);
    for (size_t i = 0; i < cfg->nstores; i++) {
        free(cfg->store_names[i]);
        free(cfg->store_urls[i]);
    }
    memset(cfg, 0, sizeof(*cfg));
}
