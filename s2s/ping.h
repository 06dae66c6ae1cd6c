/*
 * XEP-0199 pings on stale outbound streams (XEP-0199 §4.2, server-to-server ping).
 *
 * One struct ping per outbound route (local domain -> remote domain). The pool tells it
 * when a stanza of the route went out on the route's stream (ping_wrote) and when the
 * stream went away (ping_stop); the router shows it every stanza that arrives from the
 * remote domain for the local domain, on any stream (ping_heard).
 *
 * Staleness: the stream carried stanzas and nothing came back from remote to local for
 * `interval` seconds since the first of them. Then
 *   <iq type='get' from='LOCAL' to='REMOTE' id='s2sproxy-ping-N'><ping xmlns='urn:xmpp:ping'/></iq>
 * goes out on the stream (cbs->send). The answer — type result, or any error: a server
 * without XEP-0199 answers service-unavailable (XEP-0199 §4.2), which proves as much —
 * normally comes back on the remote's stream into us (or on ours with XEP-0288); only
 * that answer ends the wait, because only it proves that what we write on this stream
 * arrives (other traffic from the remote may come over a fresh stream of its own while
 * ours is half-dead). No answer within `answer` seconds: cbs->stale, and the owner closes
 * the stream. A busy two-way route is never pinged; a one-way route at most once per
 * interval.
 *
 * Answers are ours, not the local server's: ping_heard() returns true for them (the
 * caller drops the stanza), also for a late answer to an earlier ping of this process.
 */
#ifndef S2S_PING_H
#define S2S_PING_H

#include <stdbool.h>
#include <stdint.h>

#include "s2s/stanza.h"

struct event_base;
struct ping;

#define PING_NS        "urn:xmpp:ping"
#define PING_ID_PREFIX "s2sproxy-ping-"

struct ping_cbs {
    /* Write st (the ping) on the route's stream; takes st. 0, or -1 when there is no
     * stream to write it on (the ping is then forgotten). */
    int (*send)(void *arg, struct stanza *st);
    /* No answer in time: the stream is stale (why says so); close it. */
    void (*stale)(void *arg, const char *why);
    /* Monotonic milliseconds; NULL: CLOCK_MONOTONIC (tests inject their own). */
    uint64_t (*now_ms)(void *arg);
    void *arg;
};

/* local and remote are copied (lower-case domains). */
struct ping *ping_new(struct event_base *base, const char *local, const char *remote,
                      const struct ping_cbs *cbs);
void ping_free(struct ping *pg);

/*
 * A stanza of the route went out on its stream. interval: seconds of staleness before a
 * ping (0: pings off); answer: seconds the answer may take. Read at each call, so a
 * reload applies to the next ping.
 */
void ping_wrote(struct ping *pg, double interval, double answer);
/*
 * A stanza from the remote domain to the local domain arrived (pg NULL: the pair has no
 * route). True when st is an answer to one of our pings: the caller drops it.
 */
bool ping_heard(struct ping *pg, const struct stanza *st);
/* The stream went away (or the route left READY): forget the ping and the clock. */
void ping_stop(struct ping *pg);
/* What the timer runs: send the ping or declare the stream stale when due (tests). */
void ping_check(struct ping *pg);

/* Is a ping waiting for its answer? */
bool ping_waiting(const struct ping *pg);

/* Process counters (tests, ctl). */
struct ping_counts {
    uint64_t sent, answered, late, stale;
};
extern struct ping_counts ping_counts;

#endif
