/*
 * sums.c: the Paillier side of tactic sum (`sum: {scheme: paillier}`).
 *
 * Each such field has its own key pair, generated deterministically from a seed derived
 * from the tenant key (so no Paillier key is stored anywhere, and shredding the tenant key
 * destroys it too). Each value is stored as E(m) = (1 + m n) r^n mod n^2; the store
 * multiplies a group's cells modulo n^2, which adds the values underneath; the proxy
 * decrypts one product per group. Anyone with n could add contributions; only the proxy
 * can read them. Encryption costs milliseconds per value (ASHE costs microseconds).
 */
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "crypto/paillier.h"
#include "engine/engine.h"

veil_err vl_paillier_field_init(struct vl_fctx *fc, const uint8_t *seed)
{
    if (vl_paillier_keygen(&fc->paillier, seed, fc->f->sum_bits) != 0) {
        return VEIL_ERR_INTERNAL;
    }
    size_t n = vl_paillier_ciphertext_bytes(fc->paillier);
    fc->paillier_n2.p = malloc(n);
    fc->paillier_n2.n = n;
    if (fc->paillier_n2.p == NULL ||
        vl_paillier_n2_export(fc->paillier, fc->paillier_n2.p, n) != 0) {
        return VEIL_ERR_INTERNAL;
    }
    return VEIL_OK;
}

void vl_paillier_field_free(struct vl_fctx *fc)
{
    vl_paillier_free(fc->paillier);
    free(fc->paillier_n2.p);
    fc->paillier = NULL;
    fc->paillier_n2.p = NULL;
    fc->paillier_n2.n = 0;
}

veil_err vl_paillier_cell(struct vl_sealed *s, const struct vl_fctx *fc, int64_t m)
{
    size_t n = vl_paillier_ciphertext_bytes(fc->paillier);
    uint8_t *c = malloc(n);
    struct vl_prod_cell *nc = realloc(s->prods[fc->store],
                                      (s->nprods[fc->store] + 1) * sizeof(*nc));
    if (nc != NULL) {
        s->prods[fc->store] = nc;
    }
    if (c == NULL || nc == NULL || vl_paillier_encrypt(fc->paillier, c, n, m) != 0) {
        free(c);
        return VEIL_ERR_INTERNAL;
    }
    struct vl_prod_cell *cell = &nc[s->nprods[fc->store]++];
    memcpy(cell->col, fc->scol, VL_COL_BYTES);
    cell->val.p = c;
    cell->val.n = n;
    return VEIL_OK;
}

struct vl_bytes vl_paillier_modulus(const struct vl_fctx *fc)
{
    return fc->paillier_n2;
}

veil_err vl_paillier_sum(const struct vl_fctx *fc, const struct vl_bytes *product,
                         vl_i128 *out)
{
    if (product->n == 0 ||
        vl_paillier_decrypt(fc->paillier, out, product->p, product->n) != 0) {
        return VEIL_ERR_INTEGRITY;
    }
    return VEIL_OK;
}
