/*
 * The local link: one XEP-0114 component connection from the proxy to the local XMPP
 * server (Prosody, ejabberd) for one hosted domain.
 *
 * The proxy connects OUT to the server's component port, opens a
 * jabber:component:accept stream to the component name, answers the server's stream id
 * with <handshake>hex(SHA-1(id + secret))</handshake> (XEP-0114 §3) and, once the server
 * says <handshake/>, carries stanzas both ways:
 *
 * - local_send(): a stanza from a remote domain for the hosted domain, written re-homed
 *   in the component namespace. While the link is down (or its output is full) it waits
 *   in a bounded queue and is written, in order, after the (re)connect. A stanza the
 *   link cannot deliver is handed back through bounce_take with the condition the
 *   remote sender should see: remote-server-timeout when it waited longer than
 *   queue_max_wait or when the link is freed with it still queued. When the queue is
 *   full local_send() refuses the stanza at once (the caller bounces it with
 *   service-unavailable).
 * - stanza_take: a stanza from the local server for a remote domain, checked first:
 *   message/presence/iq only; 'from' in the hosted domain or one of its subdomains
 *   (MUC and other components of the local server, e.g. conference.a.test); 'to'
 *   present and outside the hosted domain. A bad one is answered to the local server
 *   with a stanza error (RFC 6120 §8.3.3) and not passed up.
 *
 * The link reconnects by itself with exponential backoff (backoff_min .. backoff_max,
 * jittered) whenever the server goes away or refuses the handshake (a refusal is a
 * configuration error: wrong secret or component name; it is logged at error level
 * and retried all the same, so fixing the server's configuration heals the link).
 *
 * Delivery: XEP-0114 has no acknowledgements, so the link pings the hosted domain
 * (XEP-0199) after writing stanzas; the server handles a stream in order, so its
 * answer acknowledges everything written before the ping. A stanza counts as
 * delivered once acknowledged. When the link dies, unacknowledged stanzas go back to
 * the head of the queue and are written again after the reconnect: nothing is lost,
 * but a stanza the server took just before it died (after its last answered ping) may
 * arrive twice. A ping unanswered for ack_timeout drops the link (hung server).
 * With no_ack_pings the link counts a stanza delivered once its last byte is on the
 * socket and requeues only what it had not written: what sat in socket buffers when
 * the server died (up to megabytes when the server had stopped reading) is lost.
 *
 * Callbacks run from the event loop, never inside a local_* call. They may call
 * local_send(); they must not call local_free() on the link that called them.
 */
#ifndef S2S_LOCAL_H
#define S2S_LOCAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "s2s/stanza.h"
#include "s2s/xmlstream.h"
#include "s2s/xmpperr.h"

struct event_base;
struct local;

struct local_options {
    const char *name;   /* component name the local server knows us as ("s2s.a.test") */
    const char *domain; /* hosted domain served through this link ("a.test") */
    const char *host;   /* the server's component port address: a numeric IPv4/IPv6 */
    uint16_t port;
    const char *secret;
    double connect_timeout;         /* seconds, TCP connect (0: 10) */
    double handshake_timeout;       /* seconds, connected -> <handshake/> (0: 10) */
    double backoff_min;             /* seconds before the first reconnect (0: 0.5) */
    double backoff_max;             /* cap of the doubling delay (0: 30) */
    size_t queue_stanzas;           /* at most this many stanzas wait (0: 10000) */
    size_t queue_bytes;             /* at most this many bytes (stanza memory) wait (0: 16 MiB) */
    double queue_max_wait;          /* seconds a stanza may wait before it is bounced (0: 60) */
    double ack_timeout;             /* seconds an ack ping may go unanswered (0: 10) */
    bool no_ack_pings;              /* count written stanzas as delivered (see above) */
    double keepalive_interval;      /* seconds between pings on an idle link (0: 60, <0: none) */
    struct xmlstream_limits limits; /* for the server's stream; zeroes: the defaults */
};

struct local_cbs {
    /* A checked stanza from the local server for a remote domain; the owner takes it. */
    void (*stanza_take)(void *arg, struct local *l, struct stanza *st);
    /* A stanza given to local_send() that cannot be delivered; the owner takes it and
     * bounces it to its remote sender with cond (why is for the <text/> and the log). */
    void (*bounce_take)(void *arg, struct local *l, struct stanza *st, enum xmpp_stanza_error cond,
                        const char *why);
    /* The link came up (handshake accepted) or went down. */
    void (*state)(void *arg, struct local *l, bool up);
    void *arg;
};

/*
 * Every accepted stanza is in exactly one place:
 *   to_local = delivered + bounced_timeout + bounced_shutdown + queued + inflight
 * (refused stanzas were never accepted: the caller bounced them).
 *   from_local = passed_up + rejected + dropped
 */
struct local_stats {
    uint64_t to_local;           /* stanzas accepted by local_send() */
    uint64_t delivered;          /* acknowledged by the server (no_ack_pings: written) */
    uint64_t refused;            /* local_send() returned -1: queue full */
    uint64_t bounced_timeout;    /* bounced: waited longer than queue_max_wait */
    uint64_t bounced_shutdown;   /* bounced: still queued at local_free() */
    uint64_t requeued;           /* taken back from a dead link (unacknowledged) */
    uint64_t acks;               /* ack pings answered */
    uint64_t from_local;         /* stanzas read from the local server after the handshake */
    uint64_t passed_up;          /* handed to stanza_take */
    uint64_t rejected;           /* answered to the local server with a stanza error */
    uint64_t dropped;            /* neither (no answer possible, e.g. an error stanza), logged */
    uint64_t connects;           /* connection attempts */
    uint64_t handshakes;         /* handshakes accepted */
    uint64_t handshake_failures; /* refused or timed out */
    uint64_t disconnects;        /* a link that was up went down */
    size_t queued;               /* waiting now */
    size_t queued_bytes;
    size_t inflight; /* written into the connection, not yet known to be delivered */
};

/* Starts connecting at once. NULL on bad options (logged) or when memory runs out. */
struct local *local_new(struct event_base *base, const struct local_options *opt,
                        const struct local_cbs *cbs);
/*
 * Takes st (a stanza for a JID of the hosted domain, any stream namespace). Written now
 * if the link is up, else queued. Returns 0 when accepted (it will be delivered or
 * handed to bounce_take later, from the loop), -1 when it was refused at once (queue
 * full): then bounce_take has NOT been called and the caller still owns st and bounces
 * it with service-unavailable itself.
 */
int local_send(struct local *l, struct stanza *st);
/* Closes the stream gracefully: stanzas already written still leave (they are counted
 * delivered, acknowledged or not); what is queued is bounced with remote-server-timeout,
 * from inside this call (the owner's bounce path must still work). */
void local_free(struct local *l);

bool local_is_up(const struct local *l);
const char *local_domain(const struct local *l);
const struct local_stats *local_stats(const struct local *l);
/* Current state name ("down", "connecting", "header", "handshake", "up"), for logs. */
const char *local_strstate(const struct local *l);

#endif
