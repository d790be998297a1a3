/*
 * write.h: the write path's pieces used elsewhere (start-up recovery).
 *
 * A write is described by a payload that needs no key to carry out: the opaque table, and
 * per store the row to put (part and tokens) or the order to delete. The same payload is
 * recorded in the trusted intent before the stores are touched, so that recovery after a
 * crash simply applies it again (every store operation is idempotent).
 *
 *     payload = u8 1 || lp(table) || lp(doc token) || u64 seq || u8 n ||
 *               n * (u8 store || u8 op || lp(part) || u32 ntok || ntok * (col[16] lp(tok)))
 */
#ifndef VL_WRITE_H
#define VL_WRITE_H

#include "engine/engine.h"

/* Applies payloads to the stores, batching rows per store and table. mark (0: none) is the
 * batch's mark (vl_trusted_intents_begin), written with it to every store it touches. */
veil_err vl_payload_apply(veil_vault *v, const struct vl_bytes *payloads, size_t n,
                          uint64_t mark) VL_WUR;

/* Finishes an unfinished intent found at start-up: rolls a full payload forward, or settles
 * a brief one by what the store holds. */
veil_err vl_intent_recover(veil_vault *v, int64_t tenant, const char *coll,
                           const struct vl_intent *in) VL_WUR;

#endif
