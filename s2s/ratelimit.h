/*
 * Token buckets: stanzas per second and bytes per second, each with a burst, kept per
 * key (a remote domain, a remote address) in a table of bounded size.
 *
 * ratelimit_take() never refuses: a stanza that has been read is counted, the bucket may
 * go into debt, and the answer is how long to wait until it is out of debt. The engine
 * stops reading from that stream (inbound) or holds the route's queue (outbound) for
 * that long: backpressure, not loss. ratelimit_try() is the refusing kind, for rules that
 * must decide now (a stanza rule with a limit).
 *
 * Time is passed in by the caller (nanoseconds, any monotonic origin): tests drive a
 * clock of their own; the daemon passes ratelimit_now().
 *
 * The table holds at most max_entries keys; when a new key needs room, the least
 * recently used one is evicted. An entry idle long enough to be full again loses
 * nothing when evicted (a new one starts full); ratelimit_table_stats() counts the
 * evictions that forgave a debt.
 */
#ifndef S2S_RATELIMIT_H
#define S2S_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One dimension. per_second 0 means unlimited; burst < 1 is taken as 1 (a full unit). */
struct ratelimit_rate {
    double per_second;
    double burst;
};

struct ratelimit_spec {
    struct ratelimit_rate stanzas;
    struct ratelimit_rate bytes;
};

struct ratelimit_stats {
    size_t entries;
    uint64_t evicted;  /* entries evicted to make room */
    uint64_t forgiven; /* of those, entries that were still in debt or not yet full */
};

struct ratelimit_table;

#define RATELIMIT_NS_PER_SEC 1000000000ULL

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t ratelimit_now(void);

/* A spec limits something when either rate is non-zero. */
bool ratelimit_spec_active(const struct ratelimit_spec *spec);

struct ratelimit_table *ratelimit_table_new(size_t max_entries);
void ratelimit_table_free(struct ratelimit_table *t);

/*
 * Counts stanzas and bytes against key's buckets under spec (the spec may differ from
 * call to call: after a reload the buckets follow the new rates). Returns 0 when the
 * buckets are not in debt, else the nanoseconds until they are.
 */
uint64_t ratelimit_take(struct ratelimit_table *t, const char *key,
                        const struct ratelimit_spec *spec, double stanzas, double bytes,
                        uint64_t now);

/* Takes only if both buckets hold enough tokens: true taken, false over the limit. */
bool ratelimit_try(struct ratelimit_table *t, const char *key, const struct ratelimit_spec *spec,
                   double stanzas, double bytes, uint64_t now);

/* Drops entries that are full again (idle): a timer may call it to give memory back. */
size_t ratelimit_table_expire(struct ratelimit_table *t, uint64_t now);

void ratelimit_table_stats(const struct ratelimit_table *t, struct ratelimit_stats *st);

#endif
