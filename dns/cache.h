/*
 * The answer cache shared by every request of one resolver: (name, type) -> answer, with
 * TTLs clamped to [min, max], negative answers (NXDOMAIN, NODATA) cached like positive
 * ones (RFC 2308), failures not cached. An entry is also where a query in flight lives,
 * so concurrent lookups of one (name, type) wait on one query (STYLE habit 4).
 * Bounded: past max_entries the least recently used idle entry goes.
 */
#ifndef DNS_CACHE_H
#define DNS_CACHE_H

#include <sys/queue.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns/resolver.h"

struct event;
struct dns_request;

/* An answer shared by the cache entry and the requests it is being delivered to. */
struct dns_ans_ref {
    unsigned int refs; /* cache entry, each ready request */
    struct dns_answer a;
};

struct dns_ans_ref *dns_ans_ref_new(void);
struct dns_ans_ref *dns_ans_ref_hold(struct dns_ans_ref *r);
void dns_ans_ref_release(struct dns_ans_ref *r);

enum dns_entry_state {
    DNS_ENTRY_NEW,     /* just added: the caller starts a query */
    DNS_ENTRY_PENDING, /* a query is in flight; waiters wait on it */
    DNS_ENTRY_DONE,    /* ans holds the last answer, fresh until expires */
};

struct dns_cache_entry {
    TAILQ_ENTRY(dns_cache_entry) hlink; /* hash bucket */
    TAILQ_ENTRY(dns_cache_entry) lru;   /* most recently used first */
    char name[DNS_NAME_MAX + 1];
    uint16_t type;
    enum dns_entry_state state;
    uint64_t expires;
    struct dns_ans_ref *ans; /* DONE only */
    /* The front end's, while PENDING: */
    void *owner; /* the resolver */
    void *bq;    /* backend query */
    bool queued; /* waiting for a free in-flight slot (on the resolver's queue) */
    bool sent;   /* handed to the backend */
    TAILQ_ENTRY(dns_cache_entry) qlink;
    struct event *timer; /* lookup timeout */
    TAILQ_HEAD(, dns_request) waiters;
    size_t nwaiters;
};

struct dns_cache;

struct dns_cache *dns_cache_new(size_t max_entries, uint32_t min_ttl, uint32_t max_ttl);
/* Frees every entry; the caller has already stopped their queries and freed waiters. */
void dns_cache_free(struct dns_cache *c);
struct dns_cache_entry *dns_cache_get(struct dns_cache *c, const char *name, uint16_t type);
/* Adds a NEW entry (name already canonical), evicting idle entries past the bound. */
struct dns_cache_entry *dns_cache_add(struct dns_cache *c, const char *name, uint16_t type);
/* Marks e DONE with ans (the entry takes a reference), fresh for the clamped TTL if cacheable. */
void dns_cache_store(struct dns_cache *c, struct dns_cache_entry *e, struct dns_ans_ref *ans,
                     uint64_t now);
bool dns_cache_fresh(const struct dns_cache_entry *e, uint64_t now);
uint32_t dns_cache_clamp(const struct dns_cache *c, uint32_t ttl);
size_t dns_cache_count(const struct dns_cache *c);
/* Calls fn for each entry (fn must not add or remove entries). */
void dns_cache_foreach(struct dns_cache *c, void (*fn)(struct dns_cache_entry *, void *),
                       void *arg);

#endif
