/*
 * rate.c: token buckets per token id, for the request rate limits of veil.yaml.
 *
 * Why here: a tenant's principal must not be able to take the shared proxy for itself, so
 * every authenticated request takes a token from its bucket before its body is read.
 *
 * Invariants: the table never holds more than max_buckets entries, whatever the ids seen
 * (only authenticated token ids reach it, but the bound does not rely on that); buckets
 * dropped to make room are the full ones, which behave exactly like new ones, or, when
 * none is full, the one closest to full, so that a token being held back is the last to
 * get a fresh bucket; all state is under one mutex, held for O(1) work per request except
 * for the sweep that runs when the table is full.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>

#include "server/rate.h"

#define HEADS_MIN 64

struct bucket {
    struct bucket *next;
    uint64_t id;
    double tokens;     /* requests available at `stamp` */
    double stamp;      /* when `tokens` was last brought up to date */
    double per_second; /* the limit it was last used with */
    double burst;
};

struct vl_ratelimit {
    pthread_mutex_t mu;
    struct bucket **heads;
    size_t nheads; /* a power of two */
    size_t count;
    size_t max;
};

struct vl_ratelimit *vl_ratelimit_new(size_t max_buckets)
{
    struct vl_ratelimit *rl = calloc(1, sizeof(*rl));
    size_t n = HEADS_MIN;
    if (rl == NULL) {
        return NULL;
    }
    rl->max = max_buckets > 0 ? max_buckets : 1;
    while (n < rl->max / 2 && n < ((size_t)1 << 20)) {
        n *= 2;
    }
    rl->heads = calloc(n, sizeof(*rl->heads));
    if (rl->heads == NULL) {
        free(rl);
        return NULL;
    }
    rl->nheads = n;
    pthread_mutex_init(&rl->mu, NULL);
    return rl;
}

void vl_ratelimit_free(struct vl_ratelimit *rl)
{
    if (rl == NULL) {
        return;
    }
    for (size_t i = 0; i < rl->nheads; i++) {
        struct bucket *b = rl->heads[i];
        while (b != NULL) {
            struct bucket *next = b->next;
            free(b);
            b = next;
        }
    }
    free(rl->heads);
    pthread_mutex_destroy(&rl->mu);
    free(rl);
}

static size_t slot_of(const struct vl_ratelimit *rl, uint64_t id)
{
    /* Fibonacci hashing: ids are random, but the spread must not depend on it. */
    return (size_t)((id * UINT64_C(0x9e3779b97f4a7c15)) >> 32) & (rl->nheads - 1);
}

static double level_at(const struct bucket *b, double now)
{
    double t = b->tokens + (now - b->stamp) * b->per_second;
    return t > b->burst ? b->burst : t;
}

/* Makes room for one bucket: drops every full one, or else the one closest to full. */
static void evict(struct vl_ratelimit *rl, double now)
{
    struct bucket **fullest = NULL;
    double best = -1;
    for (size_t i = 0; i < rl->nheads; i++) {
        struct bucket **pp = &rl->heads[i];
        while (*pp != NULL) {
            struct bucket *b = *pp;
            double fill = level_at(b, now) / b->burst;
            if (fill >= 1) {
                *pp = b->next;
                free(b);
                rl->count--;
                continue;
            }
            if (fill > best) {
                best = fill;
                fullest = pp;
            }
            pp = &b->next;
        }
    }
    if (rl->count >= rl->max && fullest != NULL) {
        struct bucket *b = *fullest;
        *fullest = b->next;
        free(b);
        rl->count--;
    }
}

unsigned vl_ratelimit_take(struct vl_ratelimit *rl, uint64_t id, double per_second,
                           double burst, double now)
{
    unsigned wait = 0;
    if (per_second <= 0) {
        return 0;
    }
    if (burst < 1) {
        burst = 1;
    }
    pthread_mutex_lock(&rl->mu);
    size_t slot = slot_of(rl, id);
    struct bucket *b = rl->heads[slot];
    while (b != NULL && b->id != id) {
        b = b->next;
    }
    if (b == NULL) {
        if (rl->count >= rl->max) {
            evict(rl, now);
        }
        b = malloc(sizeof(*b));
        if (b == NULL) {
            /* Out of memory: refuse rather than serve without a limit. */
            wait = 1;
            goto out;
        }
        b->id = id;
        b->tokens = burst;
        b->stamp = now;
        b->next = rl->heads[slot];
        rl->heads[slot] = b;
        rl->count++;
    }
    /* A limit changed by a restart applies at once; a clock that went back gives nothing. */
    b->per_second = per_second;
    b->burst = burst;
    if (now > b->stamp) {
        b->tokens = level_at(b, now);
        b->stamp = now;
    } else if (b->tokens > burst) {
        b->tokens = burst;
    }
    if (b->tokens >= 1) {
        b->tokens -= 1;
    } else {
        double secs = ceil((1 - b->tokens) / per_second);
        wait = secs < 1 ? 1 : (secs > 86400 ? 86400 : (unsigned)secs);
    }
out:
    pthread_mutex_unlock(&rl->mu);
    return wait;
}

size_t vl_ratelimit_size(struct vl_ratelimit *rl)
{
    pthread_mutex_lock(&rl->mu);
    size_t n = rl->count;
    pthread_mutex_unlock(&rl->mu);
    return n;
}
