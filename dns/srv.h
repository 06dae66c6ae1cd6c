/*
 * SRV target selection (RFC 2782) and the merging of _xmpps-server and _xmpp-server
 * answers (XEP-0368 §3, RFC 6120 §3.2). Pure functions: the random source is passed in,
 * so tests are deterministic.
 */
#ifndef DNS_SRV_H
#define DNS_SRV_H

#include <stddef.h>
#include <stdint.h>

#include "dns/resolver.h"

/* splitmix64: small, fast, good enough to spread load by SRV weight (not for secrets). */
uint64_t dns_rng_next(uint64_t *state);
/* A seed from the system's entropy (used when the options give none). */
uint64_t dns_rng_seed(void);

/* One SRV record among those being ordered. */
struct dns_srv_pick {
    const struct dns_srv *srv;
    enum dns_tls_mode tls;
};

/*
 * Orders picks in place: ascending priority; within one priority, the weighted random
 * selection of RFC 2782 ("Usage rules"): weight-0 records first, a random number in
 * [0, sum of weights], the first record whose running sum reaches it goes next.
 */
void dns_srv_order(struct dns_srv_pick *picks, size_t n, uint64_t *rng);

enum dns_srv_plan {
    DNS_SRV_TARGETS,  /* connect to the picks, in order */
    DNS_SRV_FALLBACK, /* no SRV records at all: the domain itself, port 5269, STARTTLS */
    DNS_SRV_FAIL,     /* *status and why say why */
};

/*
 * Decides what to do with the two SRV answers and, for DNS_SRV_TARGETS, fills picks
 * (at most max, in try order; records with target "." are left out):
 * - a bogus answer fails the whole lookup: never route around a validation failure;
 * - records in either set are used, the sets merged by priority (XEP-0368 §3);
 * - both NXDOMAIN/NODATA: fall back to the domain (RFC 6120 §3.2.2);
 * - "." in one set (RFC 2782: "decidedly not available") and "." or nothing in the other:
 *   DNS_NOSERVICE, with no fallback;
 * - otherwise (a SERVFAIL or timeout and no records) fail with that error.
 */
enum dns_srv_plan dns_srv_plan(const struct dns_answer *xmpps, const struct dns_answer *xmpp,
                               uint64_t *rng, struct dns_srv_pick *picks, size_t max,
                               size_t *npicks, enum dns_status *status, char *why, size_t whylen);

#endif
