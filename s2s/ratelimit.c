/*
 * Token buckets in a chained hash table with an LRU list for eviction.
 */
#include "s2s/ratelimit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "s2s/log.h"

struct bucket {
    double tokens; /* may be negative: debt */
    uint64_t last; /* when tokens was computed */
};

struct entry {
    LIST_ENTRY(entry) chain;
    TAILQ_ENTRY(entry) lru; /* most recently used first */
    uint64_t hash;
    struct ratelimit_spec spec; /* as of the last use: judges idleness */
    struct bucket stanzas, bytes;
    char key[];
};

LIST_HEAD(chain, entry);
TAILQ_HEAD(lru, entry);

struct ratelimit_table {
    struct chain *chains;
    size_t nchains; /* power of two, >= max_entries */
    size_t max_entries;
    struct lru lru;
    struct ratelimit_stats stats;
};

uint64_t
ratelimit_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * RATELIMIT_NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

bool
ratelimit_spec_active(const struct ratelimit_spec *spec)
{
    return spec != NULL && (spec->stanzas.per_second > 0 || spec->bytes.per_second > 0);
}

static double
burst_of(const struct ratelimit_rate *r)
{
    return r->burst < 1 ? 1 : r->burst;
}

static uint64_t
hash_key(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

struct ratelimit_table *
ratelimit_table_new(size_t max_entries)
{
    struct ratelimit_table *t = calloc(1, sizeof(*t));

    if (t == NULL)
        fatal("calloc");
    t->max_entries = max_entries < 1 ? 1 : max_entries;
    t->nchains = 16;
    while (t->nchains < t->max_entries)
        t->nchains *= 2;
    if ((t->chains = calloc(t->nchains, sizeof(*t->chains))) == NULL)
        fatal("calloc");
    TAILQ_INIT(&t->lru);
    return t;
}

static void
entry_remove(struct ratelimit_table *t, struct entry *e)
{
    LIST_REMOVE(e, chain);
    TAILQ_REMOVE(&t->lru, e, lru);
    t->stats.entries--;
    free(e);
}

void
ratelimit_table_free(struct ratelimit_table *t)
{
    struct entry *e;

    if (t == NULL)
        return;
    while ((e = TAILQ_FIRST(&t->lru)) != NULL)
        entry_remove(t, e);
    free(t->chains);
    free(t);
}

/* Refills b up to the burst for the time since it was last computed. */
static void
refill(struct bucket *b, const struct ratelimit_rate *r, uint64_t now)
{
    if (now > b->last) {
        b->tokens += r->per_second * (double)(now - b->last) / (double)RATELIMIT_NS_PER_SEC;
        b->last = now;
    }
    if (b->tokens > burst_of(r))
        b->tokens = burst_of(r);
}

static bool
bucket_full(struct bucket *b, const struct ratelimit_rate *r, uint64_t now)
{
    if (r->per_second <= 0)
        return true;
    refill(b, r, now);
    return b->tokens >= burst_of(r);
}

static bool
entry_idle(struct entry *e, uint64_t now)
{
    return bucket_full(&e->stanzas, &e->spec.stanzas, now) &&
           bucket_full(&e->bytes, &e->spec.bytes, now);
}

/* A full entry is what a new one would be: evicting it forgives nothing. */
static void
evict_one(struct ratelimit_table *t, uint64_t now)
{
    struct entry *e = TAILQ_LAST(&t->lru, lru);

    t->stats.evicted++;
    if (!entry_idle(e, now))
        t->stats.forgiven++;
    entry_remove(t, e);
}

static struct entry *
lookup(struct ratelimit_table *t, const char *key, const struct ratelimit_spec *spec, uint64_t now)
{
    uint64_t h = hash_key(key);
    struct chain *c = &t->chains[h & (t->nchains - 1)];
    struct entry *e;
    size_t len;

    LIST_FOREACH(e, c, chain)
    {
        if (e->hash == h && strcmp(e->key, key) == 0) {
            TAILQ_REMOVE(&t->lru, e, lru);
            TAILQ_INSERT_HEAD(&t->lru, e, lru);
            e->spec = *spec;
            refill(&e->stanzas, &spec->stanzas, now);
            refill(&e->bytes, &spec->bytes, now);
            return e;
        }
    }
    if (t->stats.entries >= t->max_entries)
        evict_one(t, now);
    len = strlen(key);
    if ((e = malloc(sizeof(*e) + len + 1)) == NULL)
        fatal("malloc");
    memcpy(e->key, key, len + 1);
    e->hash = h;
    e->spec = *spec;
    e->stanzas.tokens = burst_of(&spec->stanzas);
    e->bytes.tokens = burst_of(&spec->bytes);
    e->stanzas.last = e->bytes.last = now;
    LIST_INSERT_HEAD(c, e, chain);
    TAILQ_INSERT_HEAD(&t->lru, e, lru);
    t->stats.entries++;
    return e;
}

/* Nanoseconds until b is out of debt. */
static uint64_t
debt_wait(const struct bucket *b, const struct ratelimit_rate *r)
{
    double ns;

    if (r->per_second <= 0 || b->tokens >= 0)
        return 0;
    ns = ceil(-b->tokens / r->per_second * (double)RATELIMIT_NS_PER_SEC);
    return ns < 1 ? 1 : (uint64_t)ns;
}

uint64_t
ratelimit_take(struct ratelimit_table *t, const char *key, const struct ratelimit_spec *spec,
               double stanzas, double bytes, uint64_t now)
{
    struct entry *e;
    uint64_t ws, wb;

    if (!ratelimit_spec_active(spec))
        return 0;
    e = lookup(t, key, spec, now);
    if (spec->stanzas.per_second > 0)
        e->stanzas.tokens -= stanzas;
    if (spec->bytes.per_second > 0)
        e->bytes.tokens -= bytes;
    ws = debt_wait(&e->stanzas, &spec->stanzas);
    wb = debt_wait(&e->bytes, &spec->bytes);
    return ws > wb ? ws : wb;
}

bool
ratelimit_try(struct ratelimit_table *t, const char *key, const struct ratelimit_spec *spec,
              double stanzas, double bytes, uint64_t now)
{
    struct entry *e;

    if (!ratelimit_spec_active(spec))
        return true;
    e = lookup(t, key, spec, now);
    if ((spec->stanzas.per_second > 0 && e->stanzas.tokens < stanzas) ||
        (spec->bytes.per_second > 0 && e->bytes.tokens < bytes))
        return false;
    if (spec->stanzas.per_second > 0)
        e->stanzas.tokens -= stanzas;
    if (spec->bytes.per_second > 0)
        e->bytes.tokens -= bytes;
    return true;
}

size_t
ratelimit_table_expire(struct ratelimit_table *t, uint64_t now)
{
    struct entry *e, *prev;
    size_t n = 0;

    for (e = TAILQ_LAST(&t->lru, lru); e != NULL; e = prev) {
        prev = TAILQ_PREV(e, lru, lru);
        if (!entry_idle(e, now))
            continue;
        entry_remove(t, e);
        n++;
    }
    return n;
}

void
ratelimit_table_stats(const struct ratelimit_table *t, struct ratelimit_stats *st)
{
    *st = t->stats;
}
