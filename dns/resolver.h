/*
 * Asynchronous DNS for s2sproxy: SRV, A, AAAA and TLSA lookups through one cache, and the
 * ordered connection targets of a remote XMPP domain (RFC 6120 §3.2, XEP-0368, RFC 7673).
 *
 * Two backends behind the same interface: c-ares (a stub resolver; never reports
 * "secure") and libunbound (validating; DNSSEC status per answer). Both run on the
 * caller's libevent loop and never block it.
 *
 * Rules every caller can rely on:
 * - Results are always delivered from the event loop, never inside the call that asked
 *   (even when the answer is cached).
 * - A request handle stays valid until its callback has run or it is cancelled; cancelling
 *   guarantees the callback will not run. Do not cancel a handle from its own callback,
 *   and do not free the resolver from any of its callbacks.
 * - Concurrent lookups of one (name, type) share one query; at most max_in_flight queries
 *   are outstanding, the rest wait in order (their timeout already running).
 * - Every answer carries a TTL and a DNSSEC status; failures are distinct outcomes.
 * - Everything an answer controls is bounded (records taken, name lengths, addresses).
 *
 * This library includes nothing from s2s/: the daemon hands it a plain dns_options and
 * may give it a log callback.
 *
 * libunbound notes (seen with 1.17 against Knot 3.2): forwarding (ub_ctx_set_fwd) to an
 * authoritative server that answers AA without RA works, validation included (DS asked
 * of the parent zone on the same server). libunbound answers special-use names such as
 * .test itself: give it {"local-zone:", "test. transparent"} to ask the server instead.
 * It reads the trust anchor file at the first query; dns_resolver_new checks it exists.
 */
#ifndef DNS_RESOLVER_H
#define DNS_RESOLVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct event_base;
struct json_t;

#define DNS_NAME_MAX         253  /* presentation form, without the trailing dot */
#define DNS_MAX_RECORDS      32   /* records taken from one answer */
#define DNS_MAX_TARGETS      32   /* SRV targets kept for one domain (both services) */
#define DNS_MAX_TARGET_ADDRS 16   /* addresses kept per target (both families) */
#define DNS_TLSA_DATA_MAX    2048 /* longer TLSA association data is skipped */
#define DNS_XMPP_PORT        5269 /* RFC 6120 §3.2.2 fallback port */

#define DNS_TYPE_A    1
#define DNS_TYPE_AAAA 28
#define DNS_TYPE_SRV  33
#define DNS_TYPE_TLSA 52

enum dns_backend_kind {
    DNS_BACKEND_CARES = 0,
    DNS_BACKEND_UNBOUND,
};

/* Outcome of one lookup. Everything but DNS_OK is a failure with no records. */
enum dns_status {
    DNS_OK = 0,
    DNS_NXDOMAIN,  /* the name does not exist (RCODE 3) */
    DNS_NODATA,    /* the name exists, no record of that type */
    DNS_SERVFAIL,  /* the server failed (or refused) */
    DNS_TIMEOUT,   /* no answer within the configured timeout */
    DNS_BOGUS,     /* DNSSEC validation failed (unbound) */
    DNS_FORMERR,   /* the answer was malformed */
    DNS_NOSERVICE, /* targets: the domain says XMPP s2s is not offered (SRV ".") */
    DNS_ERROR,     /* anything else: bad name, out of memory, network error */
};

/* DNSSEC status of one answer (RFC 4035 §4.3). c-ares does not validate: indeterminate. */
enum dns_sec {
    DNS_SEC_INDETERMINATE = 0,
    DNS_SEC_INSECURE,
    DNS_SEC_SECURE,
    DNS_SEC_BOGUS,
};

enum dns_tls_mode {
    DNS_TLS_STARTTLS = 0, /* _xmpp-server._tcp: RFC 6120 STARTTLS */
    DNS_TLS_DIRECT,       /* _xmpps-server._tcp: XEP-0368 direct TLS */
};

struct dns_option_pair {
    const char *key;   /* e.g. "local-zone:" */
    const char *value; /* e.g. "test. transparent" */
};

/* Returns seconds of a monotonic clock. Tests inject a fake one. */
typedef uint64_t (*dns_clock_fn)(void *arg);
/* Receives one log line (no newline). level: 0 error, 1 warning, 2 info, 3 debug. */
typedef void (*dns_log_fn)(int level, const char *line, void *arg);

struct dns_options {
    enum dns_backend_kind backend;
    const char *const *servers; /* "addr:port" or "[v6]:port"; nservers 0: resolv.conf */
    size_t nservers;
    const char *trust_anchor_file; /* unbound: DS or DNSKEY lines; NULL: none */
    const struct dns_option_pair *unbound_options;
    size_t nunbound_options;
    unsigned int timeout;     /* seconds per lookup; 0: 5 */
    uint32_t cache_min_ttl;   /* seconds; answers are cached at least this long */
    uint32_t cache_max_ttl;   /* seconds; 0: 86400 */
    uint32_t negative_ttl;    /* NXDOMAIN/NODATA without an SOA; 0: 60 (then clamped) */
    size_t cache_max_entries; /* 0: 65536 */
    size_t max_in_flight;     /* backend queries outstanding at once, more wait; 0: 256 */
    uint64_t rng_seed;        /* weighted SRV choice; 0: random */
    dns_clock_fn clock;       /* NULL: CLOCK_MONOTONIC */
    void *clock_arg;
    dns_log_fn log; /* NULL: silent */
    void *log_arg;
};

struct dns_resolver;
struct dns_request;

struct dns_srv {
    uint16_t priority;
    uint16_t weight;
    uint16_t port;
    char target[DNS_NAME_MAX + 1]; /* "." means: service not available (RFC 2782) */
};

struct dns_addr {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* network order; 4 bytes used for AF_INET */
    uint32_t ttl;
};

struct dns_tlsa {
    uint8_t usage;
    uint8_t selector;
    uint8_t mtype;
    uint16_t len;
    uint8_t *data; /* len bytes */
};

/* One answer. Valid only during the callback that receives it. */
struct dns_answer {
    char name[DNS_NAME_MAX + 1];
    uint16_t type;
    enum dns_status status;
    enum dns_sec sec;
    uint32_t ttl;  /* of the records, or of the denial for NXDOMAIN/NODATA */
    char why[128]; /* why it failed (why_bogus for DNSSEC failures); "" otherwise */
    /* The name was an alias: the canonical name the CNAME chain ended at (RFC 1034 §3.6.2),
     * also for NODATA/NXDOMAIN at the end of a chain; "" when no CNAME was followed. */
    char cname[DNS_NAME_MAX + 1];
    size_t n; /* records, in answer order; at most DNS_MAX_RECORDS */
    union {
        struct dns_srv *srv;
        struct dns_addr *addr;
        struct dns_tlsa *tlsa;
    } rr;
};

typedef void (*dns_answer_fn)(const struct dns_answer *ans, void *arg);

struct dns_resolver *dns_resolver_new(struct event_base *base, const struct dns_options *opts,
                                      char *err, size_t errlen);
/* Cancels every pending request without calling back. */
void dns_resolver_free(struct dns_resolver *res);

/* Low level: one name, one type (A, AAAA, SRV or TLSA), through the cache. NULL: the name
 * is invalid or memory ran out (nothing will be called back). */
struct dns_request *dns_query(struct dns_resolver *res, const char *name, uint16_t type,
                              dns_answer_fn cb, void *arg);
/* TLSA for _PORT._tcp.HOST (RFC 7673 §3). */
struct dns_request *dns_tlsa_resolve(struct dns_resolver *res, const char *host, uint16_t port,
                                     dns_answer_fn cb, void *arg);
void dns_request_cancel(struct dns_request *req);

struct dns_stats {
    uint64_t queries_sent; /* queries handed to the backend */
    uint64_t cache_hits;   /* lookups answered from a fresh cache entry */
    uint64_t merged;       /* lookups that joined a query already in flight */
    uint64_t in_flight;    /* backend queries now outstanding */
    uint64_t queued;       /* lookups waiting for an in-flight slot */
    uint64_t max_in_flight;
    uint64_t entries; /* cache entries */
};
void dns_resolver_stats(const struct dns_resolver *res, struct dns_stats *st);

const char *dns_status_str(enum dns_status st);
const char *dns_sec_str(enum dns_sec sec);
const char *dns_tls_mode_str(enum dns_tls_mode mode);

/* ---- Connection targets of a remote XMPP domain ---- */

struct dns_lookup_info {
    enum dns_status status;
    enum dns_sec sec;
    uint32_t ttl;
};

struct dns_target {
    char host[DNS_NAME_MAX + 1];
    uint16_t port;
    enum dns_tls_mode tls;
    uint16_t priority; /* from SRV; 0 for the fallback target */
    uint16_t weight;
    struct dns_lookup_info aaaa, a, tlsa;
    /* host was an alias: the canonical name its AAAA or A answer's CNAME chain ended at;
     * "" when neither followed a CNAME. RFC 2782 says an SRV target MUST NOT be an alias. */
    char cname[DNS_NAME_MAX + 1];
    bool tlsa_queried; /* TLSA was asked for (DNS_TARGETS_TLSA and everything secure) */
    /* Happy Eyeballs order (RFC 8305 §4): IPv6 first, then families interleaved. */
    size_t naddrs;
    struct dns_addr addrs[DNS_MAX_TARGET_ADDRS];
    size_t ntlsa;
    struct dns_tlsa *tlsa_rr;
};

struct dns_targets {
    char domain[DNS_NAME_MAX + 1];
    enum dns_status status;                     /* DNS_OK: at least one target has an address */
    char error[320];                            /* why, when status is not DNS_OK */
    struct dns_lookup_info srv_xmpps, srv_xmpp; /* the two SRV answers */
    bool fallback;   /* no SRV records: the domain itself on port 5269 (RFC 6120 §3.2.2) */
    size_t ntargets; /* in the order to try */
    struct dns_target *targets;
};

/* Flags for dns_targets_resolve. */
#define DNS_TARGETS_TLSA 0x1 /* fetch TLSA where the SRV and address answers are secure */

/* Called once with the result, which now belongs to the callee: free it with
 * dns_targets_free. */
typedef void (*dns_targets_fn)(struct dns_targets *res, void *arg);

struct dns_targets_request;
struct dns_targets_request *dns_targets_resolve(struct dns_resolver *res, const char *domain,
                                                int flags, dns_targets_fn cb, void *arg);
void dns_targets_cancel(struct dns_targets_request *req);
void dns_targets_free(struct dns_targets *t);

/* For operators (`s2sproxy resolve DOMAIN`): a readable listing and a JSON object. */
void dns_targets_print(FILE *fp, const struct dns_targets *t);
struct json_t *dns_targets_json(const struct dns_targets *t);

#endif
