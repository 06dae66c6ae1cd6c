/*
 * Stanza paths, inbound sessions and dialback verifications (see router.h).
 */
#include "s2s/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/event.h>

#include "s2s/in.h"
#include "s2s/listen.h"
#include "s2s/log.h"
#include "s2s/out.h"
#include "s2s/peerauth.h"
#include "s2s/policy.h"
#include "s2s/policy_facts.h"
#include "s2s/stats.h"

#define DOMAIN_BUF 256

struct sink_entry {
    LIST_ENTRY(sink_entry) entry;
    char domain[DOMAIN_BUF];
    struct router_sink sink;
};

struct insess;

/* A domain pair authenticated on an inbound stream, with what authenticated it: the
 * facts a reload checks again against the new policy. */
struct inpair {
    LIST_ENTRY(inpair) entry;
    char local[DOMAIN_BUF], remote[DOMAIN_BUF];
    struct peerauth pa;
};

/* A db:verify asked for an inbound session, waiting for the pool's answer. */
struct waiter {
    LIST_ENTRY(waiter) entry;
    struct insess *is;
    struct pool_verify *pv;
    char local[DOMAIN_BUF], remote[DOMAIN_BUF];
};

/* An inbound stanza waiting for the rate limit (already checked and counted). */
struct held {
    TAILQ_ENTRY(held) entry;
    struct stanza *st;
};

/*
 * Stanzas from a remote domain that came back over one of our outbound streams (XEP-0288)
 * while its inbound rate is exceeded. There is no inbound session to stop reading, so they
 * wait here, bounded: beyond limits.queue_stanzas they bounce to their sender with
 * resource-constraint (type wait), never silently.
 */
struct bidiq {
    LIST_ENTRY(bidiq) entry;
    struct router *r;
    char remote[DOMAIN_BUF];
    TAILQ_HEAD(, held) held;
    size_t n;
    struct event *ev;
};

struct insess {
    LIST_ENTRY(insess) entry;
    struct router *r;
    struct in_session *s;
    struct listen_slot *slot;
    LIST_HEAD(, waiter) waiters;
    LIST_HEAD(, inpair) pairs;
    char address[64];         /* the peer's IP, for per-address limits */
    TAILQ_HEAD(, held) held;  /* read before a rate-limit pause took effect */
    struct event *ev_release; /* the rate allows the next held stanza */
};

struct router {
    struct event_base *base;
    const struct conf *conf;
    struct tls_ctx *tls;
    struct listen *listen;
    struct pool *pool;
    LIST_HEAD(, sink_entry) sinks;
    LIST_HEAD(, insess) sessions;
    size_t nsessions;
    bool shutting_down;
    void (*done)(void *arg);
    void *done_arg;
    struct event *ev_check;     /* polls for "every stream gone" during shutdown */
    struct policy_limiter *lim; /* inbound rate state, kept across reloads */
    LIST_HEAD(, bidiq) bidiqs;  /* rate-held stanzas that came over our own streams */
};

#define LIMITER_DOMAINS   65536
#define LIMITER_ADDRESSES 65536

/* --- paths ----------------------------------------------------------------------------- */

static const struct router_sink *
sink_find(struct router *r, const char *domain)
{
    struct sink_entry *e;

    LIST_FOREACH(e, &r->sinks, entry)
    if (strcmp(e->domain, domain) == 0)
        return e->sink.send != NULL ? &e->sink : NULL;
    return NULL;
}

void
router_set_sink(struct router *r, const char *domain, const struct router_sink *sink)
{
    struct sink_entry *e;

    LIST_FOREACH(e, &r->sinks, entry)
    if (strcmp(e->domain, domain) == 0) {
        e->sink = *sink;
        return;
    }
    if ((e = calloc(1, sizeof(*e))) == NULL)
        fatal("calloc");
    snprintf(e->domain, sizeof(e->domain), "%s", domain);
    e->sink = *sink;
    LIST_INSERT_HEAD(&r->sinks, e, entry);
}

/* An error for a remote sender goes back over our outbound route to it. */
void
router_bounce_to_remote(struct router *r, struct stanza *st, enum xmpp_stanza_error cond,
                        const char *why)
{
    char from[DOMAIN_BUF], to[DOMAIN_BUF];
    struct stanza *b = stanza_bounce_make(st, cond, why, false);

    stanza_free(st);
    if (b == NULL) {
        s2s_stats.out_dropped++;
        s2s_stats.dropped_by[S2S_DROP_UNBOUNCEABLE]++;
        return;
    }
    if (peerauth_jid_domain(stanza_attr(b, "from"), from, sizeof(from)) == -1 ||
        peerauth_jid_domain(stanza_attr(b, "to"), to, sizeof(to)) == -1) {
        stanza_free(b);
        return;
    }
    pool_send(r->pool, from, to, b);
}

/* A stanza's (local, remote) domains for the policy: inbound local = to, remote = from. */
static int
stanza_domains(const struct stanza *st, bool inbound, char *local, char *remote)
{
    const char *l = stanza_attr(st, inbound ? "to" : "from");
    const char *rm = stanza_attr(st, inbound ? "from" : "to");

    if (peerauth_jid_domain(l, local, DOMAIN_BUF) == -1 ||
        peerauth_jid_domain(rm, remote, DOMAIN_BUF) == -1)
        return -1;
    return 0;
}

static void pool_bounce_take(struct stanza *st, void *arg);

/*
 * The stanza rules (policy_check_stanza) for either direction. true: go on; false: the
 * stanza was bounced or dropped here (and counted).
 */
static bool
stanza_allowed(struct router *r, struct stanza *st, enum policy_dir dir, const char *local,
               const char *remote)
{
    struct policy_stanza_facts f;
    struct policy_decision d;
    char line[400];

    if (policy_facts_stanza(&f, dir, local, remote, st) == -1)
        return true;
    switch (policy_check_stanza(policy_facts_policy(r->conf->policy), &f, &d)) {
    case POLICY_PASS:
    case POLICY_LOG:
        return true;
    case POLICY_DROP:
        /* policy.c logged it; counted here (DESIGN invariant 1) */
        s2s_stats.policy_dropped++;
        s2s_stats.dropped_by[S2S_DROP_POLICY]++;
        s2s_policy_refusal("stanza", dir == POLICY_IN, local, remote, NULL, 1, &d);
        if (dir == POLICY_IN)
            s2s_stats.in_dropped++;
        else
            s2s_stats.out_dropped++;
        stanza_free(st);
        return false;
    default:
        break;
    }
    policy_decision_format(&d, line, sizeof(line));
    log_info("router: stanza %s local=%s remote=%s bounced: %s", dir == POLICY_IN ? "in" : "out",
             local, remote, line);
    s2s_stats.policy_bounced++;
    s2s_policy_refusal("stanza", dir == POLICY_IN, local, remote, NULL, 1, &d);
    if (dir == POLICY_IN) {
        s2s_stats.in_bounced++;
        router_bounce_to_remote(r, st, d.stanza_error, d.text);
        return false;
    }
    {
        struct stanza *b = stanza_bounce_make(st, d.stanza_error, d.text, true);

        stanza_free(st);
        if (b == NULL) {
            s2s_stats.out_dropped++;
            s2s_stats.dropped_by[S2S_DROP_UNBOUNCEABLE]++;
            return false;
        }
        s2s_stats.out_bounced++;
        s2s_stats.bounced_by[d.stanza_error]++;
        pool_bounce_take(b, r);
    }
    return false;
}

/* Hands a checked inbound stanza to the local link of its 'to' domain. */
static void
deliver_local(struct router *r, struct stanza *st)
{
    char to[DOMAIN_BUF];
    const struct router_sink *sink = NULL;

    /* XEP-0199: the answer to our ping on a stale stream is ours (s2s/ping.h). */
    if (pool_heard(r->pool, st)) {
        stanza_free(st);
        return;
    }
    /* A stanza for a subdomain (conference.a.test) goes through its parent's link. */
    if (peerauth_jid_domain(stanza_attr(st, "to"), to, sizeof(to)) == 0)
        for (const char *d = to; d != NULL && sink == NULL; d = strchr(d + 1, '.'))
            sink = sink_find(r, d[0] == '.' ? d + 1 : d);
    if (sink == NULL || sink->send(sink->ctx, st) == -1) {
        log_info("router: no local delivery for to=%s: bounced", stanza_attr(st, "to"));
        router_bounce_to_remote(r, st, XMPP_STANZA_ERR_SERVICE_UNAVAILABLE,
                                "the local server is unreachable");
    }
}

/*
 * Counts st against the inbound rate of its remote domain and the stream's address. Over
 * the limit (backpressure, policy.h): st is paid for and goes on, the stream is not read
 * until the buckets are out of debt, and what was already read waits in is->held.
 * Returns the wait in nanoseconds (0: none).
 */
static uint64_t
inbound_rate(struct router *r, struct insess *is, const struct stanza *st, const char *remote)
{
    uint64_t wait;
    unsigned ms;
    struct timeval tv;

    wait = policy_rate(policy_facts_policy(r->conf->policy), r->lim, POLICY_IN, remote,
                       is != NULL && is->address[0] != '\0' ? is->address : NULL,
                       stanza_wire_bytes(st), ratelimit_now());
    if (wait == 0 || is == NULL)
        return 0;
    ms = (unsigned)((wait + 999999) / 1000000);
    if (!in_read_paused(is->s))
        s2s_stats.policy_paused++;
    log_debug("router: rate limit remote=%s address=%s: reading paused for %u ms", remote,
              is->address, ms);
    in_pause_read(is->s, ms + 1);
    tv.tv_sec = (time_t)(wait / 1000000000ULL);
    tv.tv_usec = (suseconds_t)((wait % 1000000000ULL + 999) / 1000);
    evtimer_add(is->ev_release, &tv);
    return wait;
}

/* The rate allows more: stanzas that were read before the pause go on, one by one. */
static void
release_cb(evutil_socket_t fd, short what, void *arg)
{
    struct insess *is = arg;
    struct held *h;

    (void)fd;
    (void)what;
    while ((h = TAILQ_FIRST(&is->held)) != NULL) {
        struct stanza *st = h->st;
        uint64_t wait;

        char local[DOMAIN_BUF], remote[DOMAIN_BUF];

        TAILQ_REMOVE(&is->held, h, entry);
        free(h);
        wait =
            stanza_domains(st, true, local, remote) == 0 ? inbound_rate(is->r, is, st, remote) : 0;
        deliver_local(is->r, st);
        if (wait > 0)
            return;
    }
}

/* Shutdown: what waits is delivered now (checked and accepted: late, not lost). */
static void
bidiq_free(struct bidiq *q)
{
    struct held *h;

    while ((h = TAILQ_FIRST(&q->held)) != NULL) {
        TAILQ_REMOVE(&q->held, h, entry);
        deliver_local(q->r, h->st);
        free(h);
    }
    LIST_REMOVE(q, entry);
    event_free(q->ev);
    free(q);
}

static uint64_t
bidi_rate(struct router *r, const char *remote, const struct stanza *st)
{
    return policy_rate(policy_facts_policy(r->conf->policy), r->lim, POLICY_IN, remote, NULL,
                       stanza_wire_bytes(st), ratelimit_now());
}

static void
bidiq_arm(struct bidiq *q, uint64_t wait)
{
    struct timeval tv = {(time_t)(wait / 1000000000ULL),
                         (suseconds_t)((wait % 1000000000ULL + 999) / 1000)};

    evtimer_add(q->ev, &tv);
}

static void
bidiq_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bidiq *q = arg;
    struct held *h;

    (void)fd;
    (void)what;
    while ((h = TAILQ_FIRST(&q->held)) != NULL) {
        struct stanza *st = h->st;
        uint64_t wait = bidi_rate(q->r, q->remote, st);

        TAILQ_REMOVE(&q->held, h, entry);
        q->n--;
        free(h);
        deliver_local(q->r, st);
        if (wait > 0) {
            bidiq_arm(q, wait);
            return;
        }
    }
    LIST_REMOVE(q, entry);
    event_free(q->ev);
    free(q);
}

/* The inbound rate for a stanza with no inbound session (XEP-0288 over our stream). */
static void
bidi_inbound(struct router *r, struct stanza *st, const char *remote)
{
    struct bidiq *q;
    struct held *h;
    uint64_t wait;

    LIST_FOREACH(q, &r->bidiqs, entry)
    if (strcmp(q->remote, remote) == 0)
        break;
    if (q != NULL) {
        if (q->n >= r->conf->limits.queue_stanzas) {
            router_bounce_to_remote(r, st, XMPP_STANZA_ERR_RESOURCE_CONSTRAINT,
                                    "over the rate limit with too many stanzas waiting");
            return;
        }
        if ((h = calloc(1, sizeof(*h))) == NULL)
            fatal("calloc");
        h->st = st;
        TAILQ_INSERT_TAIL(&q->held, h, entry);
        q->n++;
        return;
    }
    wait = bidi_rate(r, remote, st);
    deliver_local(r, st);
    if (wait == 0)
        return;
    if ((q = calloc(1, sizeof(*q))) == NULL)
        fatal("calloc");
    q->r = r;
    snprintf(q->remote, sizeof(q->remote), "%s", remote);
    TAILQ_INIT(&q->held);
    q->ev = evtimer_new(r->base, bidiq_cb, q);
    LIST_INSERT_HEAD(&r->bidiqs, q, entry);
    s2s_stats.policy_held++;
    bidiq_arm(q, wait);
}

/* in -> local: the 'to' domain was checked hosted and 'from' authenticated by in.c.
 * is: the inbound stream it came on (rate limits pause it), NULL for XEP-0288 stanzas
 * that came back over an outbound stream. */
static void
router_inbound(struct router *r, struct stanza *st, struct insess *is)
{
    char local[DOMAIN_BUF], remote[DOMAIN_BUF];
    bool known = stanza_domains(st, true, local, remote) == 0;

    if (known && !stanza_allowed(r, st, POLICY_IN, local, remote))
        return;
    if (is != NULL && (!TAILQ_EMPTY(&is->held) || evtimer_pending(is->ev_release, NULL))) {
        /* read before the pause took effect: it waits its turn (delivered late, not lost) */
        struct held *h;

        if ((h = calloc(1, sizeof(*h))) == NULL)
            fatal("calloc");
        h->st = st;
        TAILQ_INSERT_TAIL(&is->held, h, entry);
        return;
    }
    if (known && is == NULL) {
        bidi_inbound(r, st, remote);
        return;
    }
    if (known)
        inbound_rate(r, is, st, remote);
    deliver_local(r, st);
}

void
router_outbound(struct router *r, struct stanza *st)
{
    char from[DOMAIN_BUF], to[DOMAIN_BUF];

    if (peerauth_jid_domain(stanza_attr(st, "from"), from, sizeof(from)) == -1 ||
        peerauth_jid_domain(stanza_attr(st, "to"), to, sizeof(to)) == -1) {
        log_info("router: outbound stanza without from/to: dropped");
        s2s_stats.out_dropped++;
        s2s_stats.dropped_by[S2S_DROP_NO_ADDRESS]++;
        stanza_free(st);
        return;
    }
    /* Counted as accepted here when the policy stops it before the pool (which counts
     * what it takes itself). */
    s2s_stats.out_accepted++;
    if (!stanza_allowed(r, st, POLICY_OUT, from, to))
        return;
    s2s_stats.out_accepted--;
    pool_send(r->pool, from, to, st);
}

/* pool -> local: a bounce for a local sender. */
static void
pool_bounce_take(struct stanza *st, void *arg)
{
    struct router *r = arg;
    char to[DOMAIN_BUF];
    const struct router_sink *sink = NULL;

    if (peerauth_jid_domain(stanza_attr(st, "to"), to, sizeof(to)) == 0)
        for (const char *d = to; d != NULL && sink == NULL; d = strchr(d + 1, '.'))
            sink = sink_find(r, d[0] == '.' ? d + 1 : d);
    if (sink == NULL || sink->send(sink->ctx, st) == -1) {
        s2s_stats.out_dropped++;
        s2s_stats.dropped_by[S2S_DROP_NO_LOCAL_LINK]++;
        stanza_free(st);
    }
}

/* XEP-0288: a stanza from a remote server over our own outbound stream, checked by
 * out.c like in.c checks its own. */
static void
pool_inbound_take(struct stanza *st, void *arg)
{
    router_inbound(arg, st, NULL);
}

/* --- inbound sessions ------------------------------------------------------------------ */

/* A hosted domain, or a subdomain of one: the local server's components (MUC at
 * conference.a.test) are reached through the hosted domain's link. */
static bool
in_hosted(const char *domain, void *arg)
{
    struct insess *is = arg;

    for (const char *d = domain; d != NULL; d = strchr(d, '.')) {
        if (*d == '.')
            d++;
        if (conf_host_find(is->r->conf, d) != NULL)
            return true;
    }
    return false;
}

static enum conf_sec_level
in_security(const char *remote, void *arg)
{
    struct insess *is = arg;
    struct policy_rule_info entry;
    const struct policy_terms *t =
        policy_terms(policy_facts_policy(is->r->conf->policy), remote, &entry);

    /* A policy that wants a certificate for remote makes it a "secure" domain for the
     * session: dialback without a valid certificate is refused at once (not-authorized)
     * instead of after a db:verify round trip. */
    if (t->auth == POLICY_REQUIRE_CERTIFICATE) {
        log_info("router: remote=%s: policy rule=%s requires a certificate (term=auth)", remote,
                 entry.name);
        return CONF_SEC_SECURE;
    }
    return conf_security_level(is->r->conf, remote);
}

static void
in_stanza(struct in_session *s, struct stanza *st, void *arg)
{
    struct insess *is = arg;

    (void)s;
    router_inbound(is->r, st, is);
}

static void
verify_done(enum dialback_type type, enum dialback_cond cond, void *arg)
{
    struct waiter *w = arg;
    struct insess *is = w->is;

    LIST_REMOVE(w, entry);
    in_dialback_verdict(is->s, w->local, w->remote, type,
                        type == DIALBACK_TYPE_ERROR ? cond : DIALBACK_OK);
    free(w);
}

static void
in_verify(struct in_session *s, const char *local, const char *remote, const char *id,
          const char *key, void *arg)
{
    struct insess *is = arg;
    struct waiter *w;
    struct policy_decision d;

    /* A domain we do not federate with: no db:verify goes out, the pair is refused with
     * the policy's dialback error (XEP-0220 §2.4) and the stream lives on. */
    if (policy_check_route(policy_facts_policy(is->r->conf->policy), local, remote, &d) !=
        POLICY_PASS) {
        log_info("router: dialback local=%s remote=%s peer=%s refused: %s", local, remote,
                 is->address, d.text);
        s2s_stats.policy_refused++;
        s2s_policy_refusal("stream", true, local, remote, is->address, 0, &d);
        in_dialback_verdict(s, local, remote, DIALBACK_TYPE_ERROR, d.dialback_error);
        return;
    }
    if ((w = calloc(1, sizeof(*w))) == NULL)
        fatal("calloc");
    w->is = is;
    snprintf(w->local, sizeof(w->local), "%s", local);
    snprintf(w->remote, sizeof(w->remote), "%s", remote);
    LIST_INSERT_HEAD(&is->waiters, w, entry);
    w->pv = pool_dialback_verify(is->r->pool, local, remote, id, key, verify_done, w);
    if (w->pv == NULL) {
        LIST_REMOVE(w, entry);
        free(w);
        in_dialback_verdict(s, local, remote, DIALBACK_TYPE_ERROR,
                            DIALBACK_ERR_RESOURCE_CONSTRAINT);
    }
}

/* Inbound streams of other sessions with remote authenticated on them. */
static unsigned
streams_of(const struct router *r, const struct insess *self, const char *remote)
{
    const struct insess *is;
    const struct inpair *ip;
    unsigned n = 0;

    LIST_FOREACH(is, &r->sessions, entry)
    {
        if (is == self)
            continue;
        LIST_FOREACH(ip, &is->pairs, entry)
        if (strcmp(ip->remote, remote) == 0) {
            n++;
            break;
        }
    }
    return n;
}

/* The policy for a stream and pair (policy_check_stream); also the reload check. */
static bool
pair_allowed(const struct router *r, const char *local, const char *remote, const char *address,
             const struct peerauth *pa, struct policy_decision *d)
{
    struct policy_stream_facts f;

    policy_facts_stream(&f, POLICY_IN, local, remote, address[0] != '\0' ? address : NULL, pa);
    return policy_check_stream(policy_facts_policy(r->conf->policy), &f, d) != POLICY_REFUSE;
}

/* For the event log and the per-rule counters: the domains entry that set max_streams. */
static void
max_streams_refusal(const struct router *r, const char *local, const char *remote,
                    const char *address, unsigned max)
{
    struct policy_decision d = {.verdict = POLICY_REFUSE, .term = "max_streams"};
    struct policy_rule_info entry;

    policy_terms(policy_facts_policy(r->conf->policy), remote, &entry);
    d.rule = entry.name;
    d.file = entry.file;
    d.line = entry.line;
    d.stream_error = XMPP_STREAM_ERR_POLICY_VIOLATION;
    snprintf(d.text, sizeof(d.text), "%u streams already from %s", max, remote);
    s2s_policy_refusal("stream", true, local, remote, address, 0, &d);
}

/* in.c asks before a pair is authenticated: the policy decides, the session acts. */
static bool
in_admit(struct in_session *s, const char *local, const char *remote, const struct peerauth *pa,
         struct in_refusal *why, void *arg)
{
    struct insess *is = arg;
    struct router *r = is->r;
    struct policy_decision d;
    const struct policy_terms *t;
    char line[400];

    (void)s;
    if (!pair_allowed(r, local, remote, is->address, pa, &d)) {
        policy_decision_format(&d, line, sizeof(line));
        log_info("router: inbound local=%s remote=%s peer=%s refused: %s", local, remote,
                 is->address, line);
        s2s_stats.policy_refused++;
        s2s_policy_refusal("stream", true, local, remote, is->address, 0, &d);
        why->stream_error = (int)d.stream_error;
        why->dialback_error = d.dialback_error;
        snprintf(why->text, sizeof(why->text), "%s", d.text);
        return false;
    }
    t = policy_terms(policy_facts_policy(r->conf->policy), remote, NULL);
    if (t->max_streams > 0 && streams_of(r, is, remote) >= t->max_streams) {
        log_info("router: inbound local=%s remote=%s peer=%s refused: %u streams already "
                 "(policy max_streams)",
                 local, remote, is->address, t->max_streams);
        s2s_stats.policy_refused++;
        max_streams_refusal(r, local, remote, is->address, t->max_streams);
        why->stream_error = XMPP_STREAM_ERR_POLICY_VIOLATION;
        why->dialback_error = DIALBACK_ERR_RESOURCE_CONSTRAINT;
        snprintf(why->text, sizeof(why->text), "too many streams from %s", remote);
        return false;
    }
    return true;
}

static int
bidi_send(void *ctx, const char *local, const char *remote, struct stanza *st)
{
    struct insess *is = ctx;

    return in_send(is->s, local, remote, st);
}

/* XEP-0288: a bidi stream authenticated remote -> local carries local -> remote too. */
static void
in_authenticated(struct in_session *s, const char *local, const char *remote,
                 enum peerauth_method how, void *arg)
{
    struct insess *is = arg;
    struct pool_bidi b = {bidi_send, is};
    struct inpair *ip;

    if ((ip = calloc(1, sizeof(*ip))) == NULL)
        fatal("calloc");
    snprintf(ip->local, sizeof(ip->local), "%s", local);
    snprintf(ip->remote, sizeof(ip->remote), "%s", remote);
    ip->pa = *in_peerauth(s);
    ip->pa.method = how;
    ip->pa.cert = how == PEERAUTH_SASL_EXTERNAL || how == PEERAUTH_CERT_DIALBACK
                      ? PEERAUTH_CERT_VALID
                      : ip->pa.cert;
    LIST_INSERT_HEAD(&is->pairs, ip, entry);
    if (in_bidi(s))
        pool_bidi_add(is->r->pool, local, remote, &b);
}

static void
in_closed(struct in_session *s, void *arg)
{
    struct insess *is = arg;
    struct router *r = is->r;
    struct waiter *w;
    struct inpair *ip;

    (void)s;
    pool_bidi_remove(r->pool, is);
    {
        struct held *h;

        /* accepted and checked: they go on even though the stream is gone */
        while ((h = TAILQ_FIRST(&is->held)) != NULL) {
            TAILQ_REMOVE(&is->held, h, entry);
            deliver_local(r, h->st);
            free(h);
        }
        event_free(is->ev_release);
    }
    while ((ip = LIST_FIRST(&is->pairs)) != NULL) {
        LIST_REMOVE(ip, entry);
        free(ip);
    }
    while ((w = LIST_FIRST(&is->waiters)) != NULL) {
        LIST_REMOVE(w, entry);
        pool_verify_cancel(r->pool, w->pv);
        free(w);
    }
    if (r->listen != NULL)
        listen_slot_release(r->listen, is->slot);
    LIST_REMOVE(is, entry);
    r->nsessions--;
    free(is);
}

static void
in_opts_fill(const struct router *r, bool direct, struct in_opts *o)
{
    const struct conf *c = r->conf;

    memset(o, 0, sizeof(*o));
    o->tls = r->tls;
    o->direct_tls = direct;
    o->require_tls = c->security.require_tls;
    o->dialback = c->dialback.enabled;
    o->dialback_secret = c->dialback.secret;
    o->xml.max_stanza_bytes = c->limits.stanza_bytes;
    o->xml.max_depth = c->limits.xml_depth;
    o->xml.max_attrs = c->limits.xml_attributes;
    o->xml.max_header_bytes = c->limits.stream_header_bytes;
    o->unauth_stanza_bytes = c->limits.unauth_stanza_bytes;
    o->dialback_pairs = c->limits.dialback_pairs;
    o->auth_timeout_ms = (unsigned)(c->timeouts.authenticate * 1000);
    o->timeouts.tls_ms = (unsigned)(c->timeouts.tls_handshake * 1000);
    o->timeouts.idle_ms = (unsigned)(c->timeouts.idle * 1000);
    o->bidi = true;
}

static void
on_accept(struct conn *c, bool direct, struct listen_slot *slot, void *arg)
{
    static const struct in_cbs cbs_tmpl = {
        .hosted = in_hosted,
        .security = in_security,
        .stanza_take = in_stanza,
        .dialback_verify = in_verify,
        .authenticated = in_authenticated,
        .closed = in_closed,
        .admit = in_admit,
    };
    struct router *r = arg;
    struct in_cbs cbs = cbs_tmpl;
    struct in_opts o;
    struct insess *is;

    if ((is = calloc(1, sizeof(*is))) == NULL)
        fatal("calloc");
    is->r = r;
    is->slot = slot;
    LIST_INIT(&is->waiters);
    LIST_INIT(&is->pairs);
    TAILQ_INIT(&is->held);
    is->ev_release = evtimer_new(r->base, release_cb, is);
    policy_facts_address(conn_peer(c), is->address, sizeof(is->address));
    LIST_INSERT_HEAD(&r->sessions, is, entry);
    r->nsessions++;
    in_opts_fill(r, direct, &o);
    cbs.arg = is;
    is->s = in_new(r->base, c, &o, &cbs);
}

/* Connections per address: the smaller of limits.connections_per_ip and the policy's. */
static unsigned
per_ip_limit(const struct conf *c)
{
    unsigned a = c->limits.connections_per_ip,
             b = policy_max_connections_per_address(policy_facts_policy(c->policy));

    if (a == 0 || (b != 0 && b < a))
        return b;
    return a;
}

/* A stream must close on reload when a refused pair was proved by SASL EXTERNAL (it
 * authenticated the whole stream) or when no pair of it would be left. */
static bool
recheck_must_close(const struct router *r, const struct insess *is)
{
    const struct inpair *ip;
    struct policy_decision d;
    bool refused = false, kept = false;

    LIST_FOREACH(ip, &is->pairs, entry)
    {
        if (pair_allowed(r, ip->local, ip->remote, is->address, &ip->pa, &d)) {
            kept = true;
            continue;
        }
        if (ip->pa.method == PEERAUTH_SASL_EXTERNAL)
            return true;
        refused = true;
    }
    return refused && !kept;
}

/*
 * After a reload: every live inbound pair is checked again. Issue 7: on a
 * dialback-multiplexed stream only a refused pair goes (XEP-0220 §2.4 error, the policy's
 * dialback condition) and the stream lives on for its other pairs; a stream whose
 * refused pair was proved by SASL EXTERNAL, or that keeps no pair, is closed with the
 * stream error the policy names. Streams the new policy allows are untouched.
 */
static void
recheck_streams(struct router *r)
{
    struct insess *is;
    struct inpair *ip, *next;
    struct policy_decision d;
    char line[400];
    bool close_it;

    LIST_FOREACH(is, &r->sessions, entry)
    {
        close_it = recheck_must_close(r, is);
        for (ip = LIST_FIRST(&is->pairs); ip != NULL; ip = next) {
            next = LIST_NEXT(ip, entry);
            if (pair_allowed(r, ip->local, ip->remote, is->address, &ip->pa, &d))
                continue;
            policy_decision_format(&d, line, sizeof(line));
            s2s_stats.policy_refused++;
            s2s_policy_refusal("stream", true, ip->local, ip->remote, is->address, 0, &d);
            if (close_it || in_pair_refuse(is->s, ip->local, ip->remote, d.dialback_error) == -1) {
                log_info("router: reload: inbound stream peer=%s local=%s remote=%s closed: %s",
                         is->address, ip->local, ip->remote, line);
                in_close(is->s, (int)d.stream_error, d.text);
                break;
            }
            log_info("router: reload: inbound pair peer=%s local=%s remote=%s refused, "
                     "stream kept: %s",
                     is->address, ip->local, ip->remote, line);
            pool_bidi_remove_pair(r->pool, is, ip->local, ip->remote);
            LIST_REMOVE(ip, entry);
            free(ip);
        }
    }
}

/* --- life ------------------------------------------------------------------------------ */

struct router *
router_new(struct event_base *base, const struct conf *conf, struct tls_ctx *tls,
           const struct pool_dns *dns, char *err, size_t errlen)
{
    struct router *r;
    struct pool_cbs pcbs;

    if ((r = calloc(1, sizeof(*r))) == NULL)
        fatal("calloc");
    r->base = base;
    r->conf = conf;
    r->tls = tls;
    LIST_INIT(&r->sinks);
    LIST_INIT(&r->sessions);
    LIST_INIT(&r->bidiqs);
    r->listen = listen_new(base, &conf->listen, per_ip_limit(conf), on_accept, r, err, errlen);
    if (r->listen == NULL) {
        free(r);
        return NULL;
    }
    pcbs.bounce_take = pool_bounce_take;
    pcbs.inbound_take = pool_inbound_take;
    pcbs.arg = r;
    r->pool = pool_new(base, conf, tls, dns, &pcbs);
    r->lim = policy_limiter_new(LIMITER_DOMAINS, LIMITER_ADDRESSES);
    if (policy_watch(policy_facts_policy(conf->policy), base) == -1)
        log_warn("router: policy list files will not be watched for changes");
    return r;
}

void
router_reconfigure(struct router *r, const struct conf *conf, struct tls_ctx *tls)
{
    const struct conf *old = r->conf;

    r->conf = conf;
    r->tls = tls;
    if (old->policy != conf->policy) {
        policy_unwatch(policy_facts_policy(old->policy));
        if (policy_watch(policy_facts_policy(conf->policy), r->base) == -1)
            log_warn("router: policy list files will not be watched for changes");
    }
    pool_reconfigure(r->pool, conf, tls);
    listen_set_per_ip(r->listen, per_ip_limit(conf));
    recheck_streams(r);
}

static void
check_cb(evutil_socket_t fd, short what, void *arg)
{
    struct router *r = arg;
    struct timeval tv = {0, 50000};

    (void)fd;
    (void)what;
    if (r->nsessions == 0 && pool_streams(r->pool) == 0) {
        if (r->done != NULL)
            r->done(r->done_arg);
        r->done = NULL;
        return;
    }
    evtimer_add(r->ev_check, &tv);
}

void
router_shutdown(struct router *r, void (*done)(void *arg), void *arg)
{
    struct insess *is;
    struct timeval now = {0, 0};

    r->shutting_down = true;
    while (!LIST_EMPTY(&r->bidiqs))
        bidiq_free(LIST_FIRST(&r->bidiqs));
    r->done = done;
    r->done_arg = arg;
    listen_stop(r->listen);
    LIST_FOREACH(is, &r->sessions, entry)
    in_close(is->s, XMPP_STREAM_ERR_SYSTEM_SHUTDOWN, "the proxy is shutting down");
    pool_shutdown(r->pool);
    if (r->ev_check == NULL)
        r->ev_check = evtimer_new(r->base, check_cb, r);
    evtimer_add(r->ev_check, &now);
}

void
router_free(struct router *r)
{
    struct sink_entry *e;

    if (r == NULL)
        return;
    while (!LIST_EMPTY(&r->bidiqs)) { /* not shut down first: nowhere to deliver */
        struct bidiq *q = LIST_FIRST(&r->bidiqs);
        struct held *h;

        while ((h = TAILQ_FIRST(&q->held)) != NULL) {
            TAILQ_REMOVE(&q->held, h, entry);
            stanza_free(h->st);
            free(h);
        }
        LIST_REMOVE(q, entry);
        event_free(q->ev);
        free(q);
    }
    policy_unwatch(policy_facts_policy(r->conf->policy));
    policy_limiter_free(r->lim);
    pool_free(r->pool);
    listen_free(r->listen);
    while ((e = LIST_FIRST(&r->sinks)) != NULL) {
        LIST_REMOVE(e, entry);
        free(e);
    }
    if (r->ev_check != NULL)
        event_free(r->ev_check);
    free(r);
}

struct pool *
router_pool(struct router *r)
{
    return r->pool;
}

size_t
router_inbound_sessions(const struct router *r)
{
    return r->nsessions;
}

int
router_listen_addr(const struct router *r, size_t i, struct sockaddr_storage *ss, socklen_t *len)
{
    return listen_addr(r->listen, i, ss, len);
}
