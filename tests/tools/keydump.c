/*
 * keydump.c: TEST ONLY. Prints, in hex, the keys a running veil holds for one collection,
 * so that tests/e2e/test_coredump.py can look for them in a core of the server. It opens
 * the data directory the way the server does (libveil's internals, linked statically) and
 * derives every key again; it never talks to the server.
 *
 *   keydump DATADIR TENANT COLLECTION [STEM...]
 *
 * One line per key on stdout, "NAME HEX": tenant.vN (every key version), coll.doc and
 * coll.cursor, then per field F (policy fields, _id and _rest) F.aead, and as its tactics
 * have them F.eq, F.range, F.sum, F.search, F.mask, F.paillier.p, F.paillier.q and the
 * public F.paillier.n; for each STEM and search field, F.word.STEM.label and .value (the
 * entry keys of that stem). The output is a secret: the test keeps it in memory and never
 * prints it. Exit status 0, or 1 with a message on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "veil/veil.h"

#define VL_PAILLIER_TEST_API
#include "crypto/crypto.h"
#include "crypto/paillier.h"
#include "engine/engine.h"
#include "keys/keys.h"
#include "tactics/tactics.h"

static void put_hex(const char *name, const uint8_t *p, size_t n)
{
    printf("%s ", name);
    for (size_t i = 0; i < n; i++) {
        printf("%02x", p[i]);
    }
    putchar('\n');
}

static void put_key(const char *field, const char *what, const uint8_t *p, size_t n)
{
    char name[512];
    if (p == NULL) {
        return;
    }
    snprintf(name, sizeof(name), "%s.%s", field, what);
    put_hex(name, p, n);
}

static int put_paillier(const struct vl_fctx *fc)
{
    static const char *const parts[] = {"p", "q"};
    uint8_t buf[VL_PAILLIER_MAX_NBYTES];
    size_t nb = vl_paillier_n_bytes(fc->paillier);
    char name[512];
    for (size_t i = 0; i < 2; i++) {
        /* p and q have exactly half the bits of n (keygen). */
        if (vl_paillier_test_export(fc->paillier, parts[i], buf, nb / 2) != 0) {
            return -1;
        }
        snprintf(name, sizeof(name), "%s.paillier.%s", fc->path, parts[i]);
        put_hex(name, buf, nb / 2);
    }
    if (vl_paillier_n_export(fc->paillier, buf, nb) != 0) {
        return -1;
    }
    snprintf(name, sizeof(name), "%s.paillier.n", fc->path);
    put_hex(name, buf, nb);
    return 0;
}

static int put_field(const struct vl_fctx *fc, int nstems, char **stems)
{
    put_key(fc->path, "aead", fc->aead_key, VL_AEAD_KEYBYTES);
    put_key(fc->path, "eq", fc->eq_key, VL_SIV_KEYBYTES);
    put_key(fc->path, "range", fc->range_key, 32);
    put_key(fc->path, "sum", fc->sum_key, 32);
    put_key(fc->path, "search", fc->search_key, VL_SEARCH_KEY_BYTES);
    put_key(fc->path, "mask", fc->mask_key, 32);
    if (fc->paillier != NULL && put_paillier(fc) != 0) {
        return -1;
    }
    for (int i = 0; fc->search_key != NULL && i < nstems; i++) {
        struct vl_search_word w;
        char what[300];
        vl_search_word(&w, fc->search_key, stems[i], strlen(stems[i]), 0);
        snprintf(what, sizeof(what), "word.%s.label", stems[i]);
        put_key(fc->path, what, w.label_key, sizeof(w.label_key));
        snprintf(what, sizeof(what), "word.%s.value", stems[i]);
        put_key(fc->path, what, w.value_key, sizeof(w.value_key));
        vl_search_word_wipe(&w);
    }
    return 0;
}

int main(int argc, char **argv)
{
    veil_vault *v = NULL;
    veil_session *s = NULL;
    veil_status st;
    struct vl_tenant_row tr;
    const struct vl_coll *c = NULL;
    uint8_t *key = NULL;
    int rc = 1;

    if (argc < 4) {
        fputs("usage: keydump DATADIR TENANT COLLECTION [STEM...]\n", stderr);
        return 2;
    }
    memset(&st, 0, sizeof(st));
    if (veil_vault_open(argv[1], &v, &st) != VEIL_OK ||
        veil_session_open(v, argv[2], "admin", &s, &st) != VEIL_OK ||
        vl_coll_get(s, argv[3], &c, &st) != VEIL_OK) {
        fprintf(stderr, "keydump: %s\n", st.message);
        goto out;
    }
    if (vl_trusted_tenant_find(v->trusted, argv[2], &tr) != VEIL_OK ||
        (key = vl_secret_alloc(VL_TENANT_KEYBYTES)) == NULL) {
        fputs("keydump: no tenant key\n", stderr);
        goto out;
    }
    for (uint32_t ver = 1; ver <= tr.key_version; ver++) {
        char name[32];
        if (vl_tenant_key_load(v, tr.id, argv[2], ver, key, &st) != VEIL_OK) {
            fprintf(stderr, "keydump: %s\n", st.message);
            goto out;
        }
        snprintf(name, sizeof(name), "tenant.v%u", ver);
        put_hex(name, key, VL_TENANT_KEYBYTES);
    }
    put_key("coll", "doc", c->doc_key, 32);
    put_key("coll", "cursor", c->cursor_key, VL_AEAD_KEYBYTES);
    for (size_t i = 0; i < c->policy->nfields; i++) {
        if (put_field(&c->fields[i], argc - 4, argv + 4) != 0) {
            fputs("keydump: cannot export a Paillier key\n", stderr);
            goto out;
        }
    }
    if (put_field(&c->id, 0, NULL) != 0 || put_field(&c->rest, 0, NULL) != 0) {
        goto out;
    }
    rc = fflush(stdout) == 0 ? 0 : 1;
out:
    vl_secret_free(key);
    veil_session_free(s);
    if (v != NULL) {
        veil_vault_close(v);
    }
    return rc;
}
