/*
 * Policy: the one place that decides who may federate with us, on what security terms,
 * how fast, and with which stanzas. It answers and says which rule decided; it calls no
 * one (the engine acts on the answer).
 *
 * The engine asks at three moments:
 *   - a stream is authenticated for a domain pair:      policy_check_stream()
 *   - a route to a remote domain is about to be created: policy_check_route()
 *   - a stanza passes, in either direction:             policy_check_stanza()
 * and, per stanza, how long to wait for the rate limits: policy_rate().
 *
 * Who may federate, and on what terms, is decided per remote domain by the most
 * specific matching entry of the "domains" list (policy_terms()):
 *   1. an exact name ("example.org", in the entry or its list file), then
 *   2. the "*.suffix" pattern with the longest suffix ("*.example.org" matches every
 *      subdomain of example.org at any depth, but NOT example.org itself), then
 *   3. the policy's defaults.
 * Between entries that match equally specifically, the one written first wins.
 *
 * Stanza rules are tried in the order written; the first rule whose every given field
 * matches decides. No rule matching means pass.
 *
 * Lifetime: a struct policy never changes once built, except for its rule hit counters
 * and list files re-read by policy_watch(). A reload builds a new policy (all or
 * nothing: policy_conf_load()) and the engine swaps its pointer; streams and routes that
 * keep using the old one hold a reference (policy_ref()/policy_unref()). After a swap,
 * policy_check_stream() with the new policy and a live stream's facts says whether it
 * may stay. Counters, the stanza check's scratch space, list re-reads and the limiter are
 * not thread-safe: a policy and a limiter belong to one event loop thread (load one per
 * loop); only the reference count is atomic.
 *
 * Domains passed in are lower-case A-labels without a trailing dot.
 */
#ifndef S2S_POLICY_H
#define S2S_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dialback/elem.h"
#include "s2s/ratelimit.h"
#include "s2s/xmpperr.h"

struct policy;
struct policy_limiter;
struct event_base;

enum policy_dir {
    POLICY_IN = 1,  /* from a remote server to us */
    POLICY_OUT = 2, /* from the local server to a remote one */
};

enum policy_cert {
    POLICY_CERT_NONE = 0, /* no certificate presented */
    POLICY_CERT_VALID,    /* chain verified and the name matches (RFC 6125, XEP-0178) */
    POLICY_CERT_EXPIRED,
    POLICY_CERT_WRONG_NAME,
    POLICY_CERT_UNTRUSTED,
};

enum policy_auth {
    POLICY_AUTH_NONE = 0,
    POLICY_AUTH_SASL_EXTERNAL,
    POLICY_AUTH_DIALBACK,
};

/* What a remote domain must use to be accepted (the "auth" term). */
enum policy_auth_req {
    POLICY_REQUIRE_DIALBACK = 0, /* any authentication: dialback accepted (default) */
    POLICY_REQUIRE_CERTIFICATE,  /* a valid certificate (SASL EXTERNAL, or dialback over it) */
};

enum policy_kind {
    POLICY_KIND_MESSAGE = 1,
    POLICY_KIND_PRESENCE = 2,
    POLICY_KIND_IQ = 4,
};

enum policy_verdict {
    POLICY_PASS = 0,
    POLICY_LOG,    /* pass; the policy logged it */
    POLICY_BOUNCE, /* answer the sender with stanza_error/error_type and text */
    POLICY_DROP,   /* discard; the policy logged and counted it */
    POLICY_REFUSE, /* a stream or domain pair is not accepted */
};

/* The terms for one remote domain (policy_terms()). */
struct policy_terms {
    bool federate;              /* false: no streams, no routes */
    bool require_tls;           /* default true */
    int min_tls;                /* 0x0303 (TLS 1.2, default) or 0x0304 (TLS 1.3) */
    enum policy_auth_req auth;  /* default POLICY_REQUIRE_DIALBACK */
    bool dnssec;                /* outbound: the SRV answers must be DNSSEC-secure */
    bool dane;                  /* outbound: the certificate must match DANE TLSA records */
    struct ratelimit_spec rate; /* per remote domain and direction; zero: unlimited */
    unsigned max_streams;       /* per remote domain and direction; 0: unlimited */
};

struct policy_stream_facts {
    enum policy_dir dir;
    const char *local;
    const char *remote;
    const char *address; /* remote IP as text; NULL if unknown */
    int tls_version;     /* 0: no TLS; else OpenSSL's TLS1_2_VERSION, TLS1_3_VERSION */
    const char *cipher;  /* for logs; NULL if none */
    enum policy_cert cert;
    enum policy_auth auth;
    bool dnssec; /* outbound: SRV (or the A/AAAA fallback) answers were secure */
    bool dane;   /* outbound: a TLSA record matched the certificate */
};

#define POLICY_STANZA_NS 4

struct policy_stanza_facts {
    enum policy_dir dir;
    const char *local;
    const char *remote;
    enum policy_kind kind;
    const char *type;                 /* the 'type' attribute; NULL when absent */
    const char *ns[POLICY_STANZA_NS]; /* namespaces of the first child elements */
    size_t nns;
    size_t size;  /* serialized bytes */
    uint64_t now; /* ratelimit_now() for rules with a limit; 0: the policy reads the clock */
};

/*
 * The answer. For POLICY_REFUSE of a stream: close it with stream_error (RFC 6120 §4.9.3)
 * or, when only one domain pair of a dialback-multiplexed stream is concerned, answer that
 * pair with dialback_error (XEP-0220 §2.4) and keep the stream. Stanzas queued for a
 * refused route are bounced with stanza_error/error_type. term names the security term
 * that was missed ("federate", "tls", "min_tls", "auth", "dnssec", "dane"), NULL otherwise.
 * rule, file and line name what decided: file is NULL for the built-in default.
 * Pointers stay valid as long as the policy does.
 */
struct policy_decision {
    enum policy_verdict verdict;
    enum xmpp_stream_error stream_error;
    enum dialback_cond dialback_error;
    enum xmpp_stanza_error stanza_error;
    enum xmpp_error_type error_type;
    const char *term;
    const char *rule;
    const char *file;
    unsigned line;
    char text[200]; /* for the <text/> of the error and the log; "" on pass */
};

/* A rule's identity and its hit count (the default counts as rule "default"). */
struct policy_rule_info {
    const char *name;
    const char *file;
    unsigned line;
    uint64_t hits;
};

/* Open federation, TLS required, dialback accepted, no limits, no stanza rules. */
struct policy *policy_new_default(void);
struct policy *policy_ref(struct policy *p);
void policy_unref(struct policy *p);

/* The terms for remote; *entry (may be NULL) gets the entry that decided them (its hits
 * are 0: only stanza rules are counted). The pointer lives as long as the policy. */
const struct policy_terms *policy_terms(const struct policy *p, const char *remote,
                                        struct policy_rule_info *entry);

/*
 * An authenticated stream (inbound: the remote proved its domain; outbound: we proved
 * ours and checked theirs). POLICY_PASS or POLICY_REFUSE. Also the reload check: with
 * the new policy and a live stream's facts, POLICY_REFUSE means close it.
 */
enum policy_verdict policy_check_stream(const struct policy *p, const struct policy_stream_facts *f,
                                        struct policy_decision *d);

/* Before creating an outbound route: POLICY_PASS or POLICY_BOUNCE (<not-allowed/>,
 * cancel, RFC 6120 §8.3.3.10) for every stanza waiting for it. */
enum policy_verdict policy_check_route(const struct policy *p, const char *local,
                                       const char *remote, struct policy_decision *d);

/* A stanza in either direction: PASS, LOG, BOUNCE or DROP (never REFUSE). A rule that
 * says bounce turns into DROP for a stanza of type "error" (RFC 6120 §8.3.1). */
enum policy_verdict policy_check_stanza(struct policy *p, const struct policy_stanza_facts *f,
                                        struct policy_decision *d);

/* "refuse term=min_tls rule=partners (FILE:LINE): TLS 1.2 is below ..." for logs. */
void policy_decision_format(const struct policy_decision *d, char *buf, size_t len);
const char *policy_verdict_name(enum policy_verdict v);

/*
 * Rate state, kept across reloads: one per loop, created by the engine. Tables are
 * bounded (least recently used entries are evicted).
 */
struct policy_limiter *policy_limiter_new(size_t max_domains, size_t max_addresses);
void policy_limiter_free(struct policy_limiter *l);
/*
 * Counts one stanza of bytes against the remote domain's buckets for dir and, inbound,
 * against the remote address's buckets (address may be NULL). Returns 0 to go on, else
 * the nanoseconds to wait: inbound, stop reading that stream for that long; outbound,
 * hold the route's queue (and bounce with resource-constraint, wait, when it is full).
 */
uint64_t policy_rate(const struct policy *p, struct policy_limiter *l, enum policy_dir dir,
                     const char *remote, const char *address, size_t bytes, uint64_t now);
/* Most simultaneous inbound connections from one address; 0: unlimited. The engine
 * counts its connections and refuses (or does not accept) the one over the limit; the
 * same for streams per remote domain with policy_terms()->max_streams. */
unsigned policy_max_connections_per_address(const struct policy *p);

/* Stanza rules in order, then the default as the last one. */
size_t policy_rule_count(const struct policy *p);
bool policy_rule_info(const struct policy *p, size_t i, struct policy_rule_info *info);

/* Re-reads changed list files every interval seconds (policy.list_check_interval) on
 * base; policy_unwatch() stops (the engine unwatches the old policy when it swaps). */
int policy_watch(struct policy *p, struct event_base *base);
void policy_unwatch(struct policy *p);

#endif
