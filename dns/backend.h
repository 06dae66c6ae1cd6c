/*
 * What a resolver backend (c-ares, libunbound, or a test double) provides to the
 * front end in resolver.c. A backend sends one query per call and hands back the raw
 * answer packet; parsing, caching, timeouts and delivery are the front end's.
 */
#ifndef DNS_BACKEND_H
#define DNS_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "dns/resolver.h"

struct dns_backend_result {
    enum dns_status status; /* DNS_OK: pkt holds the answer, whatever its RCODE */
    const uint8_t *pkt;
    size_t len;
    enum dns_sec sec;
    const char *why; /* e.g. unbound's why_bogus; may be NULL */
};

typedef void (*dns_backend_cb)(const struct dns_backend_result *r, void *arg);

struct dns_backend_ops {
    const char *name;
    void *(*create)(struct event_base *base, const struct dns_options *opts, char *err,
                    size_t errlen);
    /* Pending queries are cancelled first by the front end. */
    void (*destroy)(void *be);
    /*
     * Sends name/type. Either returns a handle and calls cb exactly once later (unless
     * cancelled), or calls cb before returning and returns NULL. The cb must not be
     * called after cancel.
     */
    void *(*query)(void *be, const char *name, uint16_t type, dns_backend_cb cb, void *arg);
    void (*cancel)(void *be, void *q);
};

extern const struct dns_backend_ops dns_backend_cares;
extern const struct dns_backend_ops dns_backend_unbound;

/* dns_resolver_new with a given backend (tests pass a double). */
struct dns_resolver *dns_resolver_new_ops(struct event_base *base, const struct dns_options *opts,
                                          const struct dns_backend_ops *ops, char *err,
                                          size_t errlen);

/* The resolver's random source, seeded by the options (for SRV weights). */
uint64_t *dns_resolver_rng(struct dns_resolver *res);

/* Log through the options' callback (level as in dns_log_fn). */
void dns_log(const struct dns_options *opts, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
