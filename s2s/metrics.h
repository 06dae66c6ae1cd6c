/*
 * Prometheus metrics over HTTP (libevent evhttp), off unless metrics.listen is set:
 *
 *   GET /metrics          the text exposition format (version 0.0.4) of the counters,
 *                         gauges and histograms of s2s/stats.h, the pool, the local links,
 *                         the resolver and the process (resident memory, open fds)
 *   GET /probe?domain=D   runs `s2sproxy audit` of D (no cipher enumeration) and answers
 *                         its result as metrics, the blackbox-exporter way
 *
 * Label sets are bounded: per-remote-domain series exist only for metrics.domains and
 * the metrics.top_domains busiest others (by stanzas since start); hosted domains are
 * configured; every other label takes values from fixed enums.
 */
#ifndef S2S_METRICS_H
#define S2S_METRICS_H

#include <stdbool.h>
#include <stddef.h>

struct conf_addr;
struct conf_metrics;
struct daemon;
struct dns_resolver;
struct evbuffer;
struct event_base;
struct local;
struct metrics;
struct policy;
struct pool;

/* Domains remembered for the top-N choice (the busiest; beyond: not tracked). */
#define METRICS_MAX_DOMAINS 4096
/* /probe runs at once; beyond: 503. */
#define METRICS_MAX_PROBES 4

struct metrics_env {
    struct daemon *d; /* the running configuration (metrics section, CA store) */
    struct pool *pool;
    struct dns_resolver *res;
    struct local *const *locals;
    size_t nlocals;
    const struct policy *policy; /* NULL: the running configuration's (d) */
};

struct metrics *metrics_new(struct event_base *base, const struct conf_addr *addr,
                            const struct metrics_env *env, char *err, size_t errlen);
void metrics_free(struct metrics *m);

/* Starts counting per-domain traffic (stream hook); metrics_new() calls it. */
void metrics_track_domains(void);
/* The exposition of everything; mc chooses the per-domain series (NULL: none). */
void metrics_render(const struct metrics_env *env, const struct conf_metrics *mc,
                    struct evbuffer *out);
/* A label value escaped for the text format (\\, \", \n); truncated to fit len. */
void metrics_label_escape(const char *in, char *out, size_t len);

#endif
