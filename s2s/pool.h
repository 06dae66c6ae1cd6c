/*
 * Outbound routes: one per (local domain, remote domain) pair. The pool decides which
 * stream carries a stanza, queues while a stream is being set up (bounded), bounces on
 * failure, retries with backoff per remote domain, and closes idle streams; out.c runs
 * each stream (OpenSMTPD's mta.c / mta_session.c split).
 *
 * Route life: IDLE -> RESOLVING (dns_targets_resolve) -> CONNECTING (connector) ->
 * NEGOTIATING (out session) -> READY, and back to IDLE when the stream closes.
 *   - pool_send() on a READY route writes at once; otherwise the stanza waits in the
 *     route's queue (limits.queue_stanzas / queue_bytes; beyond: bounced with
 *     resource-constraint) and the route is started.
 *   - Failure (DNS: remote-server-not-found; connect/TLS/auth timeouts:
 *     remote-server-timeout; refused authentication: remote-server-not-found; a stanza
 *     waiting longer than timeouts.queue: remote-server-timeout) bounces every queued
 *     stanza to its sender (stanza_bounce_make: errors are never bounced, they are
 *     counted as dropped) and sets the remote domain's backoff: backoff_min, doubling up
 *     to backoff_max. While it runs, new stanzas for that domain bounce at once with the
 *     same condition. Success clears it.
 *   - A READY route whose stream carried nothing for timeouts.route_idle is closed.
 *   - XEP-0199 (s2s/ping.h): a stream that carried stanzas while nothing came back from
 *     the remote for timeouts.ping gets a ping; no answer within timeouts.ping_answer
 *     closes it as stale (the route restarts when stanzas wait).
 *   - Pooling (XEP-0220 multiplexing): a route that starts while a READY stream of ours
 *     to the same remote domain exists asks that stream to carry its pair too (one more
 *     <db:result/>); if the peer refuses, the route opens a stream of its own. When the
 *     shared stream closes, every route on it goes IDLE (and restarts if stanzas wait).
 *   - A stream that fails TLS, authentication or the stream itself gives way to the next
 *     DNS target before the route fails.
 *   - XEP-0288: outbound streams ask for bidi when the peer offers it and its certificate
 *     is valid; what comes back goes to cbs->inbound_take. Inbound bidi streams are used
 *     through pool_bidi_add().
 *
 * Dialback receiving role: pool_dialback_verify() sends <db:verify/> on the route
 * (local, remote), starting it when needed; identical requests (same pair, id and key)
 * share one <db:verify/>.
 */
#ifndef S2S_POOL_H
#define S2S_POOL_H

#include <stdbool.h>
#include <stddef.h>

#include "dialback/elem.h"
#include "dns/resolver.h"
#include "s2s/conf.h"
#include "s2s/stanza.h"

struct event_base;
struct tls_ctx;
struct pool;
struct pool_verify;

/* The DNS step, replaceable by tests (default: dns_targets_resolve on a resolver). */
struct pool_dns {
    void *(*resolve)(void *ctx, const char *domain, dns_targets_fn cb, void *arg);
    void (*cancel)(void *req);
    void *ctx;
};

struct pool_cbs {
    /* A bounce (an error stanza for a local sender) to hand to the local server. */
    void (*bounce_take)(struct stanza *st, void *arg);
    /* XEP-0288: a checked stanza from a remote domain that came back over one of our
     * outbound streams (NULL: bidi is not asked for). */
    void (*inbound_take)(struct stanza *st, void *arg);
    void *arg;
};

/* conf and tls are borrowed: pool_reconfigure() replaces them after a reload. */
struct pool *pool_new(struct event_base *base, const struct conf *conf, struct tls_ctx *tls,
                      const struct pool_dns *dns, const struct pool_cbs *cbs);
void pool_reconfigure(struct pool *p, const struct conf *conf, struct tls_ctx *tls);
/* The dns_resolver-backed pool_dns. */
struct pool_dns pool_dns_resolver(struct dns_resolver *res, int flags);

/* Takes st: delivered, queued or bounced. local and remote are lower-case domains. */
void pool_send(struct pool *p, const char *local, const char *remote, struct stanza *st);

/*
 * XEP-0288: an inbound stream whose peer asked for bidi and authenticated remote towards
 * local may carry our stanzas for (local, remote). An IDLE route becomes READY on it
 * (a route with a stream of its own keeps it). send takes st and returns 0, or -1
 * leaving st with the pool (the route then goes back to its own stream).
 */
struct pool_bidi {
    int (*send)(void *ctx, const char *local, const char *remote, struct stanza *st);
    void *ctx;
};
void pool_bidi_add(struct pool *p, const char *local, const char *remote,
                   const struct pool_bidi *b);
/* The inbound stream ctx is gone: routes on it go IDLE (and restart if stanzas wait). */
void pool_bidi_remove(struct pool *p, void *ctx);
/* Only the pair (local, remote) of ctx is gone (refused on reload); NULL: any pair. */
void pool_bidi_remove_pair(struct pool *p, void *ctx, const char *local, const char *remote);

/*
 * XEP-0199 (s2s/ping.h): a stanza from a remote server arrived for a local domain, on
 * any stream. It shows the remote alive for the pair; true when it is the answer to one
 * of our pings (the caller drops it: it is not the local server's).
 */
bool pool_heard(struct pool *p, const struct stanza *st);

typedef void (*pool_verify_fn)(enum dialback_type type, enum dialback_cond cond, void *arg);
/* Asks remote's authoritative server about key; fn runs once (from the loop) unless
 * cancelled. NULL when the request cannot even be queued. */
struct pool_verify *pool_dialback_verify(struct pool *p, const char *local, const char *remote,
                                         const char *id, const char *key, pool_verify_fn fn,
                                         void *arg);
void pool_verify_cancel(struct pool *p, struct pool_verify *v);

/* Shutdown: bounce what waits (remote-server-timeout), close every stream. */
void pool_shutdown(struct pool *p);
void pool_free(struct pool *p);

/* For tests and ctl. */
size_t pool_routes(const struct pool *p);
size_t pool_queued(const struct pool *p, const char *local, const char *remote);
bool pool_route_ready(const struct pool *p, const char *local, const char *remote);
/* Current backoff of remote in seconds (0: none). */
double pool_backoff(const struct pool *p, const char *remote);
size_t pool_streams(const struct pool *p); /* out sessions alive */

/* For ctl and metrics: the remote domains that failed (backoff state, last error). */
struct pool_remote_info {
    const char *domain;
    double backoff;  /* current backoff in seconds (0: succeeded since) */
    double retry_in; /* seconds until the next try is allowed (0: now) */
    enum xmpp_stanza_error cond;
    const char *why; /* last failure */
};
typedef void (*pool_remote_fn)(const struct pool_remote_info *ri, void *arg);
void pool_foreach_remote(const struct pool *p, pool_remote_fn fn, void *arg);
/* Every route: its pair, state name and queued stanzas. */
typedef void (*pool_route_fn)(const char *local, const char *remote, const char *state,
                              size_t queued, void *arg);
void pool_foreach_route(const struct pool *p, pool_route_fn fn, void *arg);

#endif
