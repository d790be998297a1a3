/*
 * fuzz_config.c: the bounded YAML loader (vl_yaml_load) and, on top of it, the veil.yaml
 * reader (vl_config_load), which reads the input back from a file in a temporary
 * directory. Crashes, leaks, and VEIL_ERR_INTERNAL on input are findings; a loaded tree
 * must respect the loader's documented limits.
 */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "policy/yaml.h"

static char dir[4096];
static char file[4200];

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void cleanup(void)
{
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/veil-fuzz-config-XXXXXX", tmp != NULL ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        abort();
    }
    snprintf(file, sizeof(file), "%s/veil.yaml", dir);
    atexit(cleanup);
    return 0;
}

/* Depth and kinds of a loaded tree; aborts on anything the loader promised not to give. */
static size_t walk(const struct vl_ynode *n, unsigned depth)
{
    if (depth > VL_YAML_MAX_DEPTH + 1) {
        fprintf(stderr, "yaml: deeper than VL_YAML_MAX_DEPTH\n");
        abort();
    }
    if (n->kind == VL_YAML_SCALAR) {
        if (n->str == NULL || strlen(n->str) != n->len) {
            fprintf(stderr, "yaml: a scalar's length is wrong\n");
            abort();
        }
        return 1;
    }
    size_t count = 1;
    for (size_t i = 0; i < n->n; i++) {
        if (n->kind == VL_YAML_MAP && n->keys[i] == NULL) {
            abort();
        }
        count += walk(n->kids[i], depth + 1);
    }
    return count;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vl_ynode *root = NULL;
    veil_status st;
    memset(&st, 0, sizeof(st));
    veil_err rc = vl_yaml_load((const char *)data, size, &root, &st);
    if (rc == VEIL_ERR_INTERNAL) {
        fprintf(stderr, "yaml: internal error on input\n");
        abort();
    }
    if (rc == VEIL_OK && root != NULL && walk(root, 1) > VL_YAML_MAX_NODES) {
        fprintf(stderr, "yaml: more than VL_YAML_MAX_NODES nodes\n");
        abort();
    }
    vl_ynode_free(root);

    FILE *f = fopen(file, "wb");
    if (f == NULL) {
        abort();
    }
    if (size > 0 && fwrite(data, 1, size, f) != size) {
        abort();
    }
    fclose(f);
    struct vl_config cfg;
    rc = vl_config_load(dir, &cfg, &st);
    if (rc == VEIL_ERR_INTERNAL) {
        fprintf(stderr, "config: internal error on input\n");
        abort();
    }
    if (rc == VEIL_OK) {
        if (cfg.keyring_type == NULL || cfg.trusted_url == NULL || cfg.nstores == 0 ||
            cfg.nstores > VL_MAX_STORES || cfg.listen == NULL) {
            fprintf(stderr, "config: accepted without what it needs\n");
            abort();
        }
        vl_config_free(&cfg);
    }
    return 0;
}
