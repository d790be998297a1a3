/*
 * rate.h: request rate limits per token, as token buckets kept in the proxy's memory.
 *
 * A bucket holds up to `burst` requests and refills at `per_second`; a request takes one,
 * and a request that finds less than one is refused with the whole seconds until one is
 * there. The table is bounded: when it is full, buckets that have refilled completely
 * (which behave exactly like new ones) are dropped, and if none has, the one closest to
 * full. Keys are token ids, never secrets.
 */
#ifndef VL_SERVER_RATE_H
#define VL_SERVER_RATE_H

#include <stddef.h>
#include <stdint.h>

struct vl_ratelimit;

/* A table of at most `max_buckets` buckets (at least 1); NULL when out of memory. */
struct vl_ratelimit *vl_ratelimit_new(size_t max_buckets);
void vl_ratelimit_free(struct vl_ratelimit *rl);

/* Takes one request from the bucket of `id`, whose limit is (per_second, burst), at time
 * `now` (seconds on a monotonic clock). Returns 0 when the request may go ahead, else the
 * whole seconds (at least 1) until it would. per_second <= 0 means no limit (and keeps no
 * bucket). Thread-safe. */
unsigned vl_ratelimit_take(struct vl_ratelimit *rl, uint64_t id, double per_second,
                           double burst, double now);

/* Buckets held now. */
size_t vl_ratelimit_size(struct vl_ratelimit *rl);

#endif
