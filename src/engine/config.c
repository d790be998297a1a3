/*
 * config.c: veil.yaml, read with the same bounded YAML loader as policies. Unknown keys are
 * errors (a typo in a security configuration must not pass silently); relative paths
 * resolve against the data directory (done by whoever opens them).
 *
 * Limits that protect the shared proxy from its clients (`limits:` and `rate_limits:`) are
 * the operator's: they live here and nowhere a tenant can write, and every one has a
 * default, so that a veil.yaml written before they existed still bounds every client.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "policy/yaml.h"

#define CONFIG_MAX (64 * 1024)

/* Defaults of the limits a veil.yaml may leave out. */
#define DEFAULT_MAX_BODY (16u << 20)
#define DEFAULT_MAX_DEPTH 32
#define DEFAULT_MAX_FIELDS 1024
#define DEFAULT_MAX_INFLIGHT ((size_t)256 << 20)
#define DEFAULT_MAX_CONNECTIONS 1024
#define DEFAULT_MAX_PER_CLIENT 64
#define DEFAULT_REQUEST_TIMEOUT 60
#define DEFAULT_IDLE_TIMEOUT 30
#define DEFAULT_RATE 1000.0
#define DEFAULT_BURST 2000.0
#define RATE_MAX 1000000.0
#define TIMEOUT_MAX 86400u
#define CONNECTIONS_MAX 100000u
#define ROLE_NAME_MAX 64

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

/* "30s", "2min", "1h", or a bare number of seconds; 1..TIMEOUT_MAX. */
static int parse_seconds(const char *s, unsigned *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    unsigned long mul = 0;
    if (errno != 0 || end == s || s[0] == '-') {
        return -1;
    }
    if (strcmp(end, "") == 0 || strcmp(end, "s") == 0) {
        mul = 1;
    } else if (strcmp(end, "min") == 0 || strcmp(end, "m") == 0) {
        mul = 60;
    } else if (strcmp(end, "h") == 0) {
        mul = 3600;
    } else {
        return -1;
    }
    if (v == 0 || v > TIMEOUT_MAX / mul) {
        return -1;
    }
    *out = (unsigned)(v * mul);
    return 0;
}

/* "200/s", "600/min", "1000/h": requests a second, 0 < rate <= RATE_MAX; "off" is 0. */
static int parse_rate(const char *s, double *out)
{
    if (strcmp(s, "off") == 0) {
        *out = 0;
        return 0;
    }
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    double per = 0;
    if (errno != 0 || end == s || s[0] == '-' || v == 0) {
        return -1;
    }
    if (strcmp(end, "/s") == 0) {
        per = 1;
    } else if (strcmp(end, "/min") == 0 || strcmp(end, "/m") == 0) {
        per = 60;
    } else if (strcmp(end, "/h") == 0) {
        per = 3600;
    } else {
        return -1;
    }
    if ((double)v / per > RATE_MAX) {
        return -1;
    }
    *out = (double)v / per;
    return 0;
}

/* A bucket's size when veil.yaml gives none: two seconds' worth, at least one request. */
static double burst_for(double per_second)
{
    double b = 2 * per_second;
    return b < 1 ? 1 : (double)(unsigned long)(b + 0.999999);
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
        } else if (strcmp(key, "max_inflight_bodies") == 0) {
            if (parse_size(val->str, &cfg->limits.max_inflight_bodies) != 0) {
                return bad(st, val, "max_inflight_bodies must be a size such as 256MiB");
            }
        } else if (strcmp(key, "max_connections") == 0) {
            if (parse_uint(val->str, 1, CONNECTIONS_MAX, &cfg->limits.max_connections) != 0) {
                return bad(st, val, "max_connections must be 1..100000");
            }
        } else if (strcmp(key, "max_connections_per_client") == 0) {
            if (parse_uint(val->str, 1, CONNECTIONS_MAX,
                           &cfg->limits.max_connections_per_client) != 0) {
                return bad(st, val, "max_connections_per_client must be 1..100000");
            }
        } else if (strcmp(key, "request_timeout") == 0) {
            if (parse_seconds(val->str, &cfg->limits.request_timeout) != 0) {
                return bad(st, val, "request_timeout must be a duration such as 60s (1s..24h)");
            }
        } else if (strcmp(key, "idle_timeout") == 0) {
            if (parse_seconds(val->str, &cfg->limits.idle_timeout) != 0) {
                return bad(st, val, "idle_timeout must be a duration such as 30s (1s..24h)");
            }
        } else {
            return bad(st, val, "unknown limit (known: max_body, max_depth, max_fields, "
                                "max_inflight_bodies, max_connections, "
                                "max_connections_per_client, request_timeout, idle_timeout)");
        }
    }
    if (cfg->limits.max_inflight_bodies < cfg->limits.max_body) {
        return bad(st, l, "max_inflight_bodies must be at least max_body");
    }
    return VEIL_OK;
}

/* One bucket: "20/s", or { rate: 20/s, burst: 40 }. */
static veil_err load_rate(const struct vl_ynode *n, struct vl_rate *out, veil_status *st)
{
    struct vl_rate r = {0, 0};
    int have_burst = 0;
    if (n->kind == VL_YAML_SCALAR) {
        if (parse_rate(n->str, &r.per_second) != 0) {
            return bad(st, n, "a rate is N/s, N/min or N/h (N from 1), or off");
        }
    } else if (n->kind == VL_YAML_MAP) {
        int have_rate = 0;
        for (size_t i = 0; i < n->n; i++) {
            const struct vl_ynode *val = n->kids[i];
            unsigned b = 0;
            if (strcmp(n->keys[i], "rate") == 0 && val->kind == VL_YAML_SCALAR &&
                parse_rate(val->str, &r.per_second) == 0) {
                have_rate = 1;
            } else if (strcmp(n->keys[i], "burst") == 0 && val->kind == VL_YAML_SCALAR &&
                       parse_uint(val->str, 1, (unsigned)RATE_MAX, &b) == 0) {
                r.burst = b;
                have_burst = 1;
            } else {
                return bad(st, val, "a role's limit is { rate: N/s, burst: N } (burst 1..1000000)");
            }
        }
        if (!have_rate) {
            return bad(st, n, "a role's limit needs a rate");
        }
    } else {
        return bad(st, n, "a rate is N/s, N/min or N/h, or { rate: N/s, burst: N }");
    }
    if (!have_burst) {
        r.burst = burst_for(r.per_second);
    }
    *out = r;
    return VEIL_OK;
}

static veil_err load_rate_limits(const struct vl_ynode *l, struct vl_config *cfg,
                                 veil_status *st)
{
    int have_burst = 0;
    veil_err rc = VEIL_OK;
    if (l->kind != VL_YAML_MAP) {
        return bad(st, l, "rate_limits must be a mapping");
    }
    for (size_t i = 0; rc == VEIL_OK && i < l->n; i++) {
        const char *key = l->keys[i];
        const struct vl_ynode *val = l->kids[i];
        unsigned b = 0;
        if (strcmp(key, "default") == 0) {
            if (val->kind != VL_YAML_SCALAR || parse_rate(val->str, &cfg->rate_default.per_second)) {
                rc = bad(st, val, "default must be a rate such as 200/s, or off");
            }
        } else if (strcmp(key, "burst") == 0) {
            if (val->kind != VL_YAML_SCALAR || parse_uint(val->str, 1, (unsigned)RATE_MAX, &b)) {
                rc = bad(st, val, "burst must be a number of requests, 1..1000000");
            }
            cfg->rate_default.burst = b;
            have_burst = 1;
        } else if (strcmp(key, "roles") == 0) {
            if (val->kind != VL_YAML_MAP || val->n > VL_RATE_ROLES_MAX) {
                rc = bad(st, val, "roles must map at most 256 role names to rates");
                break;
            }
            cfg->rate_roles = calloc(val->n ? val->n : 1, sizeof(*cfg->rate_roles));
            if (cfg->rate_roles == NULL) {
                rc = VEIL_ERR_INTERNAL;
                break;
            }
            for (size_t k = 0; rc == VEIL_OK && k < val->n; k++) {
                size_t len = strlen(val->keys[k]);
                if (len == 0 || len > ROLE_NAME_MAX) {
                    rc = bad(st, val->kids[k], "a role name is 1..64 characters");
                    break;
                }
                rc = load_rate(val->kids[k], &cfg->rate_roles[k].rate, st);
                if (rc == VEIL_OK && (cfg->rate_roles[k].role = strdup(val->keys[k])) == NULL) {
                    rc = VEIL_ERR_INTERNAL;
                }
                if (rc == VEIL_OK) {
                    cfg->nrate_roles = k + 1;
                }
            }
        } else {
            rc = bad(st, val, "unknown rate_limits key (known: default, burst, roles)");
        }
    }
    if (rc == VEIL_OK && !have_burst) {
        cfg->rate_default.burst = burst_for(cfg->rate_default.per_second);
    }
    return rc;
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
    cfg->limits.max_body = DEFAULT_MAX_BODY;
    cfg->limits.max_depth = DEFAULT_MAX_DEPTH;
    cfg->limits.max_fields = DEFAULT_MAX_FIELDS;
    cfg->limits.max_inflight_bodies = DEFAULT_MAX_INFLIGHT;
    cfg->limits.max_connections = DEFAULT_MAX_CONNECTIONS;
    cfg->limits.max_connections_per_client = DEFAULT_MAX_PER_CLIENT;
    cfg->limits.request_timeout = DEFAULT_REQUEST_TIMEOUT;
    cfg->limits.idle_timeout = DEFAULT_IDLE_TIMEOUT;
    cfg->rate_default.per_second = DEFAULT_RATE;
    cfg->rate_default.burst = DEFAULT_BURST;

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
        } else if (strcmp(key, "rate_limits") == 0) {
            rc = load_rate_limits(val, cfg, st);
        } else {
            rc = bad(st, val, "unknown key (known: listen, keyring, trusted, stores, limits, "
                              "rate_limits)");
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
    for (size_t i = 0; i < cfg->nrate_roles; i++) {
        free(cfg->rate_roles[i].role);
    }
    free(cfg->rate_roles);
    memset(cfg, 0, sizeof(*cfg));
}

void veil_vault_rate_limit(const veil_vault *v, const char *role, double *per_second,
                           double *burst)
{
    struct vl_rate r = v->cfg.rate_default;
    for (size_t i = 0; role != NULL && i < v->cfg.nrate_roles; i++) {
        if (strcmp(v->cfg.rate_roles[i].role, role) == 0) {
            r = v->cfg.rate_roles[i].rate;
            break;
        }
    }
    *per_second = r.per_second;
    *burst = r.burst;
}
