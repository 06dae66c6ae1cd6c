/*
 * The answer cache: a chained hash table with an LRU list. See cache.h.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns/cache.h"
#include "dns/msg.h"

#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)                                                 \
    for ((var) = TAILQ_FIRST((head)); (var) && ((tvar) = TAILQ_NEXT((var), field), 1);             \
         (var) = (tvar))
#endif

TAILQ_HEAD(entry_list, dns_cache_entry);

struct dns_cache {
    struct entry_list *buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
    size_t max_entries;
    uint32_t min_ttl;
    uint32_t max_ttl;
    struct entry_list lru;
};

struct dns_ans_ref *
dns_ans_ref_new(void)
{
    struct dns_ans_ref *r = calloc(1, sizeof(*r));

    if (r != NULL)
        r->refs = 1;
    return r;
}

struct dns_ans_ref *
dns_ans_ref_hold(struct dns_ans_ref *r)
{
    r->refs++;
    return r;
}

void
dns_ans_ref_release(struct dns_ans_ref *r)
{
    if (r == NULL)
        return;
    assert(r->refs > 0);
    if (--r->refs > 0)
        return;
    dns_answer_clear(&r->a);
    free(r);
}

/* FNV-1a over the name and the type. */
static uint32_t
entry_hash(const char *name, uint16_t type)
{
    uint32_t h = 2166136261u;

    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 16777619u;
    h = (h ^ (type & 0xff)) * 16777619u;
    h = (h ^ (type >> 8)) * 16777619u;
    return h;
}

struct dns_cache *
dns_cache_new(size_t max_entries, uint32_t min_ttl, uint32_t max_ttl)
{
    struct dns_cache *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->nbuckets = 64;
    c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
    if (c->buckets == NULL) {
        free(c);
        return NULL;
    }
    for (size_t i = 0; i < c->nbuckets; i++)
        TAILQ_INIT(&c->buckets[i]);
    TAILQ_INIT(&c->lru);
    c->max_entries = max_entries;
    c->min_ttl = min_ttl;
    c->max_ttl = max_ttl < min_ttl ? min_ttl : max_ttl;
    return c;
}

static void
entry_free(struct dns_cache *c, struct dns_cache_entry *e)
{
    struct entry_list *b = &c->buckets[entry_hash(e->name, e->type) & (c->nbuckets - 1)];

    TAILQ_REMOVE(b, e, hlink);
    TAILQ_REMOVE(&c->lru, e, lru);
    c->count--;
    dns_ans_ref_release(e->ans);
    free(e);
}

void
dns_cache_free(struct dns_cache *c)
{
    struct dns_cache_entry *e, *tmp;

    if (c == NULL)
        return;
    TAILQ_FOREACH_SAFE(e, &c->lru, lru, tmp)
    {
        assert(TAILQ_EMPTY(&e->waiters) && e->bq == NULL && e->timer == NULL);
        entry_free(c, e);
    }
    free(c->buckets);
    free(c);
}

struct dns_cache_entry *
dns_cache_get(struct dns_cache *c, const char *name, uint16_t type)
{
    struct entry_list *b = &c->buckets[entry_hash(name, type) & (c->nbuckets - 1)];
    struct dns_cache_entry *e;

    TAILQ_FOREACH(e, b, hlink)
    {
        if (e->type == type && strcmp(e->name, name) == 0) {
            if (e != TAILQ_FIRST(&c->lru)) {
                TAILQ_REMOVE(&c->lru, e, lru);
                TAILQ_INSERT_HEAD(&c->lru, e, lru);
            }
            return e;
        }
    }
    return NULL;
}

/* Doubles the table when it holds more entries than buckets; failure just keeps it. */
static void
cache_grow(struct dns_cache *c)
{
    size_t n = c->nbuckets * 2;
    struct entry_list *nb = calloc(n, sizeof(*nb));
    struct dns_cache_entry *e;

    if (nb == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        TAILQ_INIT(&nb[i]);
    for (size_t i = 0; i < c->nbuckets; i++) {
        while ((e = TAILQ_FIRST(&c->buckets[i])) != NULL) {
            TAILQ_REMOVE(&c->buckets[i], e, hlink);
            TAILQ_INSERT_TAIL(&nb[entry_hash(e->name, e->type) & (n - 1)], e, hlink);
        }
    }
    free(c->buckets);
    c->buckets = nb;
    c->nbuckets = n;
}

/* Drops least recently used entries that nobody waits on until under the bound. */
static void
cache_evict(struct dns_cache *c)
{
    struct dns_cache_entry *e, *prev;

    for (e = TAILQ_LAST(&c->lru, entry_list); e != NULL && c->count >= c->max_entries; e = prev) {
        prev = TAILQ_PREV(e, entry_list, lru);
        if (e->state == DNS_ENTRY_DONE && TAILQ_EMPTY(&e->waiters))
            entry_free(c, e);
    }
}

struct dns_cache_entry *
dns_cache_add(struct dns_cache *c, const char *name, uint16_t type)
{
    struct dns_cache_entry *e;

    if (c->count >= c->max_entries)
        cache_evict(c);
    if (c->count >= c->nbuckets)
        cache_grow(c);
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    snprintf(e->name, sizeof(e->name), "%s", name);
    e->type = type;
    e->state = DNS_ENTRY_NEW;
    TAILQ_INIT(&e->waiters);
    TAILQ_INSERT_HEAD(&c->buckets[entry_hash(name, type) & (c->nbuckets - 1)], e, hlink);
    TAILQ_INSERT_HEAD(&c->lru, e, lru);
    c->count++;
    return e;
}

uint32_t
dns_cache_clamp(const struct dns_cache *c, uint32_t ttl)
{
    if (ttl < c->min_ttl)
        return c->min_ttl;
    if (ttl > c->max_ttl)
        return c->max_ttl;
    return ttl;
}

static bool
cacheable(enum dns_status st)
{
    return st == DNS_OK || st == DNS_NXDOMAIN || st == DNS_NODATA;
}

void
dns_cache_store(struct dns_cache *c, struct dns_cache_entry *e, struct dns_ans_ref *ans,
                uint64_t now)
{
    dns_ans_ref_hold(ans);
    dns_ans_ref_release(e->ans);
    e->ans = ans;
    e->state = DNS_ENTRY_DONE;
    /* Failures (SERVFAIL, timeout, bogus, ...) are not cached: the next lookup asks again. */
    e->expires = cacheable(ans->a.status) ? now + dns_cache_clamp(c, ans->a.ttl) : now;
}

bool
dns_cache_fresh(const struct dns_cache_entry *e, uint64_t now)
{
    return e->state == DNS_ENTRY_DONE && now < e->expires;
}

size_t
dns_cache_count(const struct dns_cache *c)
{
    return c->count;
}

void
dns_cache_foreach(struct dns_cache *c, void (*fn)(struct dns_cache_entry *, void *), void *arg)
{
    struct dns_cache_entry *e;

    TAILQ_FOREACH(e, &c->lru, lru)
    fn(e, arg);
}
