/*
 * Process-wide stanza counters (DESIGN.md invariant 1: nothing is lost silently).
 *
 *   inbound:  in_accepted  = stanzas accepted from remote servers (handed to the router)
 *   outbound: out_accepted = stanzas taken from the local server for remote domains
 *             = out_delivered + out_bounced + out_dropped + (still queued)
 * Plain globals: one loop per process, no locking. ctl/metrics read them later.
 */
#ifndef S2S_STATS_H
#define S2S_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "s2s/xmpperr.h"

struct conn;
struct conn_stats;
struct peerauth;

/*
 * A latency histogram in seconds with fixed bucket bounds (s2s_hist_bounds, the same for
 * every histogram, Prometheus "le" semantics: bucket[i] counts observations <= bound i;
 * bucket[S2S_HIST_NBOUNDS] is +Inf). Not cumulative: the exposition sums them up.
 */
#define S2S_HIST_NBOUNDS 12
extern const double s2s_hist_bounds[S2S_HIST_NBOUNDS];
struct s2s_hist {
    uint64_t bucket[S2S_HIST_NBOUNDS + 1];
    uint64_t count;
    double sum;
};
void s2s_hist_observe(struct s2s_hist *h, double secs);
/* Monotonic seconds (CLOCK_MONOTONIC), for latencies and ages. */
double s2s_now(void);
/* The same clock, coarse (a few ms): for per-stanza time stamps. */
double s2s_now_coarse(void);

/* Why a stanza was dropped (neither delivered nor bounced): s2s_stats.dropped_by. */
enum s2s_drop_reason {
    S2S_DROP_POLICY,        /* a policy rule said drop (or bounce, for an error stanza) */
    S2S_DROP_UNBOUNCEABLE,  /* an error or result, or no 'from': never bounced (RFC 6120 §8.3.1) */
    S2S_DROP_NO_ADDRESS,    /* from the local server without a usable from/to */
    S2S_DROP_NO_LOCAL_LINK, /* a bounce for a local sender found no local link to take it */
    S2S_DROP_COUNT,
};
/* "policy", "unbounceable", "no-address", "no-local-link" */
const char *s2s_drop_reason_name(enum s2s_drop_reason r);

struct s2s_stats {
    uint64_t in_accepted;  /* checked inbound stanzas handed on */
    uint64_t in_rejected;  /* inbound elements refused with a stream error */
    uint64_t out_accepted; /* outbound stanzas entering a route */
    uint64_t out_delivered;
    uint64_t out_bounced;
    uint64_t out_dropped; /* errors that could not be bounced (never bounced twice) */
    uint64_t bounced_by[XMPP_STANZA_ERR_COUNT];
    uint64_t dropped_by[S2S_DROP_COUNT]; /* both directions: sums to in_ + out_dropped */
    uint64_t in_streams, out_streams;    /* streams opened */
    uint64_t auth_sasl, auth_dialback, auth_failed;
    /* Policy (s2s/policy.h), counted by the router and the pool. Inbound: in_accepted =
     * handed to the local link + in_bounced + in_dropped. Outbound policy bounces and
     * drops are also in out_bounced / out_dropped. */
    uint64_t in_bounced, in_dropped;         /* inbound stanzas a policy rule refused */
    uint64_t policy_bounced, policy_dropped; /* both directions */
    uint64_t policy_refused;                 /* streams or domain pairs refused */
    uint64_t policy_paused;                  /* inbound reads paused by a rate limit */
    uint64_t policy_held;                    /* outbound queues held by a rate limit */
    struct s2s_hist dns_latency;             /* route: DNS targets asked -> answered (pool) */
    struct s2s_hist tls_handshake;           /* conn_starttls -> TLS up (conn), both directions */
    struct s2s_hist route_setup;             /* route started -> stream READY (pool) */
};

extern struct s2s_stats s2s_stats;

/*
 * The live streams, for ctl, metrics and the event log (read-only faces: they change
 * nothing on the hot path). Each in/out session embeds one struct s2s_stream, registers
 * it when it starts and unregisters it when it is freed. The sessions keep the counters;
 * ops give what only the session knows.
 */
#define S2S_STREAM_DOMAIN 256

struct s2s_stream_ops {
    const char *(*state)(const void *session);
    const struct conn *(*conn)(const void *session); /* NULL once closing */
    /* Graceful close: queued stanzas go on a new stream or bounce (never lost). */
    void (*close)(void *session, const char *why);
};

struct s2s_stream_pair {
    char local[S2S_STREAM_DOMAIN], remote[S2S_STREAM_DOMAIN];
};

struct s2s_stream {
    TAILQ_ENTRY(s2s_stream) entry;
    uint64_t serial; /* ctl's stream id: "in-N" / "out-N" */
    bool outbound;
    void *session;
    const struct s2s_stream_ops *ops;
    const struct peerauth *auth;   /* in the session */
    struct s2s_stream_pair *pairs; /* authenticated pairs (all of a multiplexed stream) */
    size_t npairs;
    char peer[64];               /* "ip:port" */
    double started, last_active; /* s2s_now() */
    uint64_t stanzas_in, stanzas_out;
    uint64_t bytes_in, bytes_out; /* kept when the connection goes (s2s_stream_bytes) */
    char reason[128];             /* why it closed (first reason given) */
};
TAILQ_HEAD(s2s_streams, s2s_stream);
extern struct s2s_streams s2s_streams;

enum s2s_stream_event {
    S2S_STREAM_OPENED,
    S2S_STREAM_AUTHENTICATED, /* one more pair: the last of st->pairs */
    S2S_STREAM_CLOSED,
};
/* Observers (event log, metrics): set at start, called synchronously, must not block. */
typedef void (*s2s_stream_hook_fn)(enum s2s_stream_event ev, const struct s2s_stream *st);
void s2s_stream_hook_add(s2s_stream_hook_fn fn);

void s2s_stream_register(struct s2s_stream *st, bool outbound, void *session,
                         const struct s2s_stream_ops *ops, const struct peerauth *auth,
                         const char *peer);
void s2s_stream_add_pair(struct s2s_stream *st, const char *local, const char *remote);
void s2s_stream_reason(struct s2s_stream *st, const char *why); /* keeps the first */
/* The connection's byte counters, saved before it is closed or freed. */
void s2s_stream_bytes(struct s2s_stream *st, const struct conn_stats *cs);
void s2s_stream_unregister(struct s2s_stream *st);
/* The live stream with that id ("in-3", "out-7"), or NULL. */
struct s2s_stream *s2s_stream_find(const char *id);

/* A batch of queued stanzas bounced at once (route failure): for the event log. */
typedef void (*s2s_bounce_hook_fn)(const char *local, const char *remote, size_t count,
                                   enum xmpp_stanza_error cond, const char *why);
extern s2s_bounce_hook_fn s2s_bounce_hook;

/*
 * A policy refusal, for the event log and the per-rule counters. what: "stream" (a
 * stream or a domain pair on it refused), "route" (an outbound route not created: its
 * queue bounced, count stanzas), "stanza" (a stanza bounced or dropped by a rule). d names
 * the rule, term and text. peer: the remote address, or NULL.
 */
struct policy_decision;
struct s2s_policy_event {
    const char *what;
    bool inbound;
    const char *local, *remote, *peer;
    size_t count;
    const struct policy_decision *d;
};
typedef void (*s2s_policy_hook_fn)(const struct s2s_policy_event *ev);
extern s2s_policy_hook_fn s2s_policy_hook;
/* Counts ev by rule and what, then calls the hook. */
void s2s_policy_refusal(const char *what, bool inbound, const char *local, const char *remote,
                        const char *peer, size_t count, const struct policy_decision *d);

/* Refusals counted by (rule name, what): at most S2S_POLICY_RULES names since start,
 * further ones under "other" (names come from the configuration, but reloads add). */
#define S2S_POLICY_RULES 64
#define S2S_POLICY_WHATS 3 /* stream, route, stanza */
struct s2s_policy_count {
    char rule[64];
    uint64_t by_what[S2S_POLICY_WHATS];
};
extern const char *const s2s_policy_whats[S2S_POLICY_WHATS];
/* The table; *n gets the number of used rows. */
const struct s2s_policy_count *s2s_policy_counts(size_t *n);

#endif
