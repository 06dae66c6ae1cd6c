/*
 * Outbound routes, queues, bounces and backoff (see pool.h).
 */
#include "s2s/pool.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/event.h>

#include "s2s/conn.h"
#include "s2s/connector.h"
#include "s2s/log.h"
#include "s2s/out.h"
#include "s2s/policy.h"
#include "s2s/policy_facts.h"
#include "s2s/peerauth.h"
#include "s2s/ping.h"
#include "s2s/stats.h"

#define DOMAIN_BUF 256
#define ID_BUF     256

enum route_state {
    R_IDLE,
    R_RESOLVING,
    R_CONNECTING,
    R_NEGOTIATING,
    R_READY,
    R_FAILED, /* failure being handled: callbacks from the dying stream are ignored */
};

static const char *const route_state_names[] = {"IDLE",        "RESOLVING", "CONNECTING",
                                                "NEGOTIATING", "READY",     "FAILED"};

struct qitem {
    TAILQ_ENTRY(qitem) entry;
    struct stanza *st;
    size_t bytes;
    size_t wire; /* bytes for the rate limit */
    bool paid;   /* already counted by policy_rate() */
};

struct route;

struct pool_verify {
    TAILQ_ENTRY(pool_verify) entry;
    struct pool *p;
    struct route *r;
    char local[DOMAIN_BUF], remote[DOMAIN_BUF], id[ID_BUF], key[DIALBACK_MAX_KEY + 1];
    pool_verify_fn fn;
    void *arg;
    bool sent;
    enum dialback_type type; /* the answer, delivered from ev_done */
    enum dialback_cond cond;
    struct event *ev_done;
};

/* Backoff state of one remote domain. */
struct remote {
    LIST_ENTRY(remote) entry;
    char domain[DOMAIN_BUF];
    double backoff;    /* seconds; 0: none */
    uint64_t retry_ms; /* monotonic ms before which nothing is tried */
    enum xmpp_stanza_error cond;
    char why[256];
};

struct route {
    TAILQ_ENTRY(route) entry;
    struct route *hnext; /* next in the pool's index bucket */
    struct pool *p;
    char local[DOMAIN_BUF], remote[DOMAIN_BUF];
    enum route_state state;
    TAILQ_HEAD(, qitem) queue;
    size_t qn, qbytes;
    TAILQ_HEAD(, pool_verify) verifies;
    void *dnsreq;
    struct dns_targets *targets;
    struct dns_targets view; /* the targets after a failed one (shallow copy) */
    size_t tidx;             /* index of the target the current stream went to */
    struct connector *k;
    struct out_session *out;
    unsigned nouts;     /* out sessions alive for this route, closing ones included */
    struct route *host; /* pooling: the route whose stream this one rides on (not owned) */
    bool no_pooling;    /* the host stream refused this pair: use a stream of our own */
    bool via_bidi;      /* READY on a peer's inbound stream (XEP-0288) */
    bool slot_wait;     /* waits for policy max_streams: pooling or a stream closing */
    struct pool_bidi bidi;
    struct event *ev_queue; /* the oldest stanza waited too long */
    struct event *ev_idle;  /* READY without traffic */
    struct event *ev_hold;  /* a rate limit holds the queue until it fires */
    struct ping *ping;      /* XEP-0199 on the stream we write to (not via_bidi) */
    double started;         /* s2s_now() at RESOLVING: DNS and set-up latencies */
};

struct pool {
    struct event_base *base;
    const struct conf *conf;
    struct tls_ctx *tls;
    struct pool_dns dns;
    struct pool_cbs cbs;
    TAILQ_HEAD(, route) routes;
    struct route **index; /* routes by (local, remote): see route_find() */
    size_t nindex, nroutes;
    LIST_HEAD(, remote) remotes;
    size_t nstreams;
    bool shutting_down;
    struct policy_limiter *lim; /* outbound rate state, kept across reloads */
};

static void route_start(struct route *r);
static void route_maybe_free(struct route *r);

static uint64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static struct timeval
tv_of(double secs)
{
    struct timeval tv;

    tv.tv_sec = (time_t)secs;
    tv.tv_usec = (suseconds_t)((secs - (double)tv.tv_sec) * 1e6);
    return tv;
}

static void
route_set_state(struct route *r, enum route_state st)
{
    log_debug("pool: route local=%s remote=%s %s -> %s", r->local, r->remote,
              route_state_names[r->state], route_state_names[st]);
    r->state = st;
    if (st != R_READY)
        ping_stop(r->ping); /* a ping belongs to the stream that carried it */
}

/* --- remotes (backoff) ----------------------------------------------------------------- */

static struct remote *
remote_get(struct pool *p, const char *domain, bool create)
{
    struct remote *rd;

    LIST_FOREACH(rd, &p->remotes, entry)
    if (strcmp(rd->domain, domain) == 0)
        return rd;
    if (!create)
        return NULL;
    if ((rd = calloc(1, sizeof(*rd))) == NULL)
        fatal("calloc");
    snprintf(rd->domain, sizeof(rd->domain), "%s", domain);
    LIST_INSERT_HEAD(&p->remotes, rd, entry);
    return rd;
}

static bool
remote_in_backoff(struct pool *p, const char *domain, struct remote **out)
{
    struct remote *rd = remote_get(p, domain, false);

    *out = rd;
    return rd != NULL && rd->backoff > 0 && now_ms() < rd->retry_ms;
}

static void
remote_failed(struct pool *p, const char *domain, enum xmpp_stanza_error cond, const char *why)
{
    struct remote *rd = remote_get(p, domain, true);
    double min = p->conf->timeouts.backoff_min, max = p->conf->timeouts.backoff_max;

    rd->backoff = rd->backoff == 0 ? min : rd->backoff * 2;
    if (rd->backoff > max)
        rd->backoff = max;
    rd->retry_ms = now_ms() + (uint64_t)(rd->backoff * 1000);
    rd->cond = cond;
    snprintf(rd->why, sizeof(rd->why), "%s", why);
    log_info("pool: remote=%s failed error=%s reason=\"%s\": next try in %.1fs", domain,
             xmpp_stanza_error_name(cond), why, rd->backoff);
}

static void
remote_succeeded(struct pool *p, const char *domain)
{
    struct remote *rd = remote_get(p, domain, false);

    if (rd != NULL) {
        LIST_REMOVE(rd, entry);
        free(rd);
    }
}

/* --- bounces --------------------------------------------------------------------------- */

static void
bounce(struct pool *p, struct stanza *st, enum xmpp_stanza_error cond, const char *why)
{
    struct stanza *b = stanza_bounce_make(st, cond, why, true);

    if (b != NULL) {
        s2s_stats.out_bounced++;
        s2s_stats.bounced_by[cond]++;
        p->cbs.bounce_take(b, p->cbs.arg);
    } else {
        /* An error, a result, or no 'from': never bounced (RFC 6120 §8.3.1). */
        s2s_stats.out_dropped++;
        s2s_stats.dropped_by[S2S_DROP_UNBOUNCEABLE]++;
    }
    stanza_free(st);
}

static void
bounce_queue(struct route *r, enum xmpp_stanza_error cond, const char *why)
{
    struct qitem *q;

    while ((q = TAILQ_FIRST(&r->queue)) != NULL) {
        TAILQ_REMOVE(&r->queue, q, entry);
        r->qn--;
        r->qbytes -= q->bytes;
        bounce(r->p, q->st, cond, why);
        free(q);
    }
    event_del(r->ev_queue);
}

/* --- verifications --------------------------------------------------------------------- */

static void
verify_done_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pool_verify *v = arg;
    struct pool *p = v->p;
    pool_verify_fn fn = v->fn;
    void *fnarg = v->arg;
    enum dialback_type type = v->type;
    enum dialback_cond cond = v->cond;

    (void)fd;
    (void)what;
    pool_verify_cancel(p, v);
    fn(type, cond, fnarg);
}

/* The answer goes out from the loop, never inside the call that produced it. */
static void
verify_answer(struct pool_verify *v, enum dialback_type type, enum dialback_cond cond)
{
    struct timeval now = {0, 0};

    v->type = type;
    v->cond = cond;
    evtimer_add(v->ev_done, &now);
}

static bool
verify_answered(const struct pool_verify *v)
{
    return evtimer_pending(v->ev_done, NULL) != 0;
}

static void
fail_verifies(struct route *r, enum dialback_cond cond)
{
    struct pool_verify *v;

    TAILQ_FOREACH(v, &r->verifies, entry)
    if (!verify_answered(v))
        verify_answer(v, DIALBACK_TYPE_ERROR, cond);
}

static void
send_verifies(struct route *r)
{
    struct pool_verify *v, *w;

    TAILQ_FOREACH(v, &r->verifies, entry)
    {
        bool dup = false;

        if (v->sent || verify_answered(v))
            continue;
        /* Merge identical work: one <db:verify/> per (pair, id, key). */
        TAILQ_FOREACH(w, &r->verifies, entry)
        if (w != v && w->sent && strcmp(w->id, v->id) == 0 && strcmp(w->key, v->key) == 0)
            dup = true;
        v->sent = true;
        if (!dup && out_verify(r->out, v->local, v->remote, v->id, v->key) == -1)
            verify_answer(v, DIALBACK_TYPE_ERROR, DIALBACK_ERR_RESOURCE_CONSTRAINT);
    }
}

/* --- route failure and streams --------------------------------------------------------- */

/* close_out false: the stream reported the failure itself and is closing already. */
static void
route_fail_ex(struct route *r, enum xmpp_stanza_error cond, const char *why, bool close_out)
{
    struct pool *p = r->p;

    route_set_state(r, R_FAILED);
    if (r->dnsreq != NULL)
        p->dns.cancel(r->dnsreq);
    r->dnsreq = NULL;
    connector_cancel(r->k);
    r->k = NULL;
    if (r->host != NULL || r->via_bidi) {
        /* riding on another stream: leave that stream alone */
        r->host = NULL;
        r->out = NULL;
        r->via_bidi = false;
    }
    if (r->out != NULL && close_out)
        out_close(r->out, why); /* its callbacks are ignored while FAILED */
    remote_failed(p, r->remote, cond, why);
    if (r->qn > 0 && s2s_bounce_hook != NULL)
        s2s_bounce_hook(r->local, r->remote, r->qn, cond, why);
    bounce_queue(r, cond, why);
    fail_verifies(r, cond == XMPP_STANZA_ERR_REMOTE_SERVER_TIMEOUT
                         ? DIALBACK_ERR_REMOTE_SERVER_TIMEOUT
                         : DIALBACK_ERR_REMOTE_CONNECTION_FAILED);
    dns_targets_free(r->targets);
    r->targets = NULL;
    if (r->out == NULL)
        route_set_state(r, R_IDLE);
    route_maybe_free(r);
}

static void
route_fail(struct route *r, enum xmpp_stanza_error cond, const char *why)
{
    route_fail_ex(r, cond, why, true);
}

static void route_ready(struct route *r);
static void route_start(struct route *r);

static void route_detach(struct route *r, bool restart);

/* A stream that is closing (idle, stale) takes nothing more: stanzas queue until
 * o_closed restarts the route, instead of vanishing into the dying stream. */
static bool
route_writable(const struct route *r)
{
    return r->via_bidi || (out_ready(r->out) && !out_output_full(r->out));
}

/* 0 when written; -1 when a bidi stream refused it (st is still ours). */
static int
route_write(struct route *r, struct stanza *st)
{
    if (r->via_bidi)
        return r->bidi.send(r->bidi.ctx, r->local, r->remote, st);
    if (out_send(r->out, st) == -1)
        return 1;
    ping_wrote(r->ping, r->p->conf->timeouts.ping, r->p->conf->timeouts.ping_answer);
    return 0;
}

static void route_flush(struct route *r);

static void
hold_cb(evutil_socket_t fd, short what, void *arg)
{
    struct route *r = arg;

    (void)fd;
    (void)what;
    if (r->state == R_READY)
        route_flush(r);
}

/*
 * Counts a stanza of bytes against the remote domain's outbound rate (policy_rate). Over
 * the limit: the route's queue is held until the buckets are out of debt (the stanza is
 * paid for and goes first when the hold ends); true.
 */
static bool
route_over_rate(struct route *r, size_t bytes)
{
    uint64_t wait = policy_rate(policy_facts_policy(r->p->conf->policy), r->p->lim, POLICY_OUT,
                                r->remote, NULL, bytes, ratelimit_now());
    struct timeval tv;

    if (wait == 0)
        return false;
    tv.tv_sec = (time_t)(wait / 1000000000ULL);
    tv.tv_usec = (suseconds_t)((wait % 1000000000ULL + 999) / 1000);
    s2s_stats.policy_held++;
    log_debug("pool: rate limit local=%s remote=%s: queue held for %llu us", r->local, r->remote,
              (unsigned long long)(wait / 1000));
    evtimer_add(r->ev_hold, &tv);
    return true;
}

/* Writes queued stanzas while the stream takes them; what is left waits for DRAINED
 * (the queue stays bounded and its timer runs: a peer that stops reading for
 * timeouts.queue fails the route). */
static void
route_flush(struct route *r)
{
    struct qitem *q;

    if (evtimer_pending(r->ev_hold, NULL)) {
        /* held by a rate limit: the hold, not timeouts.queue, bounds the wait */
        event_del(r->ev_queue);
        return;
    }
    while ((q = TAILQ_FIRST(&r->queue)) != NULL && route_writable(r)) {
        int rc;

        if (!q->paid && route_over_rate(r, q->wire)) {
            q->paid = true;
            event_del(r->ev_queue);
            return;
        }
        q->paid = true;
        rc = route_write(r, q->st);

        if (rc == -1) {
            /* the bidi stream is going: the stanza stays first in line */
            route_detach(r, true);
            return;
        }
        TAILQ_REMOVE(&r->queue, q, entry);
        r->qn--;
        r->qbytes -= q->bytes;
        if (rc == 0)
            s2s_stats.out_delivered++;
        free(q);
    }
    if (r->qn == 0)
        event_del(r->ev_queue);
    else if (!evtimer_pending(r->ev_queue, NULL)) {
        struct timeval tv = tv_of(r->p->conf->timeouts.queue);
        evtimer_add(r->ev_queue, &tv);
    }
}

static void
o_stanza(struct out_session *s, struct stanza *st, void *arg)
{
    struct route *r = arg;

    (void)s;
    r->p->cbs.inbound_take(st, r->p->cbs.arg);
}

static void
o_drained(struct out_session *s, void *arg)
{
    struct route *h = arg, *r;

    TAILQ_FOREACH(r, &h->p->routes, entry)
    if (r->out == s && r->state == R_READY)
        route_flush(r);
}

static void
o_ready(struct out_session *s, void *arg)
{
    struct route *r = arg;

    if (r->state == R_FAILED || s != r->out)
        return;
    route_ready(r);
}

/*
 * The policy for the authenticated stream (policy_check_stream: federation, TLS, auth,
 * DNSSEC, DANE terms). Refused: the route fails and every queued stanza bounces with
 * the decision's stanza error; false. A route riding on an inbound XEP-0288 stream was
 * checked when that stream authenticated.
 */
static bool
route_admitted(struct route *r, bool close_out)
{
    struct policy_stream_facts f;
    struct policy_decision d;
    char line[400];

    if (r->via_bidi || r->out == NULL)
        return true;
    policy_facts_stream(&f, POLICY_OUT, r->local, r->remote, NULL, out_peerauth(r->out));
    if (policy_check_stream(policy_facts_policy(r->p->conf->policy), &f, &d) != POLICY_REFUSE)
        return true;
    policy_decision_format(&d, line, sizeof(line));
    log_info("pool: route local=%s remote=%s refused: %s", r->local, r->remote, line);
    s2s_stats.policy_refused++;
    s2s_policy_refusal("stream", false, r->local, r->remote, NULL, r->qn, &d);
    route_fail_ex(r, d.stanza_error, d.text, close_out);
    return false;
}

/*
 * Streams of our own to remote: alive (closing ones included) or being set up. Routes
 * that ride on another route's stream (pooling) or on a peer's inbound stream (XEP-0288)
 * add none: that is how a route gets through when policy max_streams is reached.
 */
static unsigned
own_streams(const struct pool *p, const char *remote)
{
    const struct route *r;
    unsigned n = 0;

    TAILQ_FOREACH(r, &p->routes, entry)
    {
        if (strcmp(r->remote, remote) != 0)
            continue;
        n += r->nouts;
        if (r->host == NULL && (r->state == R_RESOLVING || r->state == R_CONNECTING))
            n++;
    }
    return n;
}

/* A stream to remote closed or came up: routes waiting for a slot try again (pooling
 * first, then a stream of their own if a slot is free). */
static void
slot_waiters_wake(struct pool *p, const char *remote)
{
    struct route *r, *next;

    if (p->shutting_down)
        return;
    for (r = TAILQ_FIRST(&p->routes); r != NULL; r = next) {
        next = TAILQ_NEXT(r, entry);
        if (!r->slot_wait || r->state != R_IDLE || strcmp(r->remote, remote) != 0)
            continue;
        route_start(r);
    }
}

static void
route_ready(struct route *r)
{
    if (!route_admitted(r, true))
        return;
    route_set_state(r, R_READY);
    if (r->started > 0)
        s2s_hist_observe(&s2s_stats.route_setup, s2s_now() - r->started);
    r->started = 0;
    event_del(r->ev_queue);
    remote_succeeded(r->p, r->remote);
    route_flush(r);
    {
        struct timeval tv = tv_of(r->p->conf->timeouts.route_idle);
        evtimer_add(r->ev_idle, &tv);
    }
    if (r->host == NULL && !r->via_bidi)
        slot_waiters_wake(r->p, r->remote); /* they may ride on this stream now */
}

static void connector_cb(struct conn *c, const struct dns_target *t, enum xmpp_stanza_error cond,
                         const char *why, void *arg);

/* RFC 6120 §3.2.1 step 9 spirit: a target that fails TLS or authentication is not the
 * end; the next one in DNS order is tried before the route fails. */
static bool
try_next_target(struct route *r, const char *why)
{
    const struct conf *c = r->p->conf;

    if (r->targets == NULL || r->tidx + 1 >= r->targets->ntargets || r->p->shutting_down)
        return false;
    log_info("pool: route local=%s remote=%s: target %s failed (%s): trying the next one", r->local,
             r->remote, r->targets->targets[r->tidx].host, why);
    r->out = NULL; /* the failed stream closes by itself */
    r->view = *r->targets;
    r->view.targets += r->tidx + 1;
    r->view.ntargets -= r->tidx + 1;
    route_set_state(r, R_CONNECTING);
    r->k = connector_start(r->p->base, &r->view, (unsigned)(c->timeouts.connect * 1000), 250,
                           connector_cb, r);
    return true;
}

static void
o_failed(struct out_session *s, enum xmpp_stanza_error cond, const char *why, void *arg)
{
    struct route *r = arg;

    if (r->state == R_FAILED || s != r->out)
        return;
    if (try_next_target(r, why))
        return;
    route_fail_ex(r, cond, why, false);
}

static void
o_verify_result(struct out_session *s, const char *local, const char *remote, const char *id,
                enum dialback_type type, enum dialback_cond cond, void *arg)
{
    struct route *r = arg, *rr;
    struct pool_verify *v;

    /* The request may have come from a route riding on this stream. */
    TAILQ_FOREACH(rr, &r->p->routes, entry)
    {
        if (rr != r && (rr->host != r || rr->out != s))
            continue;
        TAILQ_FOREACH(v, &rr->verifies, entry)
        if (v->sent && !verify_answered(v) && strcmp(v->local, local) == 0 &&
            strcmp(v->remote, remote) == 0 && strcmp(v->id, id) == 0)
            verify_answer(v, type, cond);
    }
}

/* A route riding on another's stream goes back to IDLE (the stream went away, or
 * refused the pair, or the route is idle); it starts again if stanzas wait. */
static void
route_detach(struct route *r, bool restart)
{
    r->host = NULL;
    r->out = NULL;
    r->via_bidi = false;
    event_del(r->ev_idle);
    route_set_state(r, R_IDLE);
    fail_verifies(r, DIALBACK_ERR_REMOTE_CONNECTION_FAILED);
    if (restart && r->qn > 0 && !r->p->shutting_down)
        route_start(r);
}

static void
o_pair_result(struct out_session *s, const char *local, enum dialback_type type,
              enum dialback_cond cond, void *arg)
{
    struct route *h = arg, *r;

    (void)cond;
    TAILQ_FOREACH(r, &h->p->routes, entry)
    if (r->host == h && r->out == s && strcmp(r->local, local) == 0)
        break;
    if (r == NULL)
        return;
    if (r->state == R_READY && type != DIALBACK_TYPE_VALID) {
        /* Withdrawn by the peer (a reloaded policy): stanzas must not go on riding here;
         * a stream of our own gets the peer's answer (and our senders their bounces). */
        log_info("pool: route local=%s remote=%s withdrawn from the stream of %s", r->local,
                 r->remote, h->local);
        r->no_pooling = true;
        route_detach(r, true);
        route_maybe_free(r);
        return;
    }
    if (r->state != R_NEGOTIATING)
        return;
    if (type == DIALBACK_TYPE_VALID) {
        log_info("pool: route local=%s remote=%s rides on the stream of %s", r->local, r->remote,
                 h->local);
        route_ready(r);
        return;
    }
    /* Refused on this stream: try a stream of our own (the peer may want SASL or a
     * separate connection per domain). */
    r->no_pooling = true;
    route_detach(r, true);
    route_maybe_free(r);
}

static void o_closed_route(struct out_session *s, struct route *r);

static void
o_closed(struct out_session *s, void *arg)
{
    struct route *r = arg;
    struct pool *p = r->p;
    char remote[DOMAIN_BUF];

    snprintf(remote, sizeof(remote), "%s", r->remote);
    o_closed_route(s, r);
    slot_waiters_wake(p, remote); /* a stream slot is free */
}

static void
o_closed_route(struct out_session *s, struct route *r)
{
    struct route *rr, *next;

    r->nouts--;
    r->p->nstreams--;
    for (rr = TAILQ_FIRST(&r->p->routes); rr != NULL; rr = next) {
        next = TAILQ_NEXT(rr, entry);
        if (rr->host == r && rr->out == s) {
            route_detach(rr, true);
            route_maybe_free(rr);
        }
    }
    if (s != r->out) {
        /* a stream given up for the next target */
        route_maybe_free(r);
        return;
    }
    r->out = NULL;
    event_del(r->ev_idle);
    dns_targets_free(r->targets);
    r->targets = NULL;
    fail_verifies(r, DIALBACK_ERR_REMOTE_CONNECTION_FAILED);
    route_set_state(r, R_IDLE);
    /* Stanzas that arrived while the stream was closing start it again. */
    if (r->qn > 0 && !r->p->shutting_down)
        route_start(r);
    route_maybe_free(r);
}

static const struct out_cbs ocbs = {
    .ready = o_ready,
    .failed = o_failed,
    .verify_result = o_verify_result,
    .drained = o_drained,
    .stanza_take = o_stanza,
    .pair_result = o_pair_result,
    .closed = o_closed,
};

static void
out_opts_fill(struct route *r, const struct dns_target *t, struct out_opts *o)
{
    const struct conf *c = r->p->conf;
    const struct dns_lookup_info *srv =
        t->tls == DNS_TLS_DIRECT ? &r->targets->srv_xmpps : &r->targets->srv_xmpp;

    memset(o, 0, sizeof(*o));
    o->tls = r->p->tls;
    o->direct_tls = t->tls == DNS_TLS_DIRECT;
    o->require_tls = c->security.require_tls;
    o->dialback = c->dialback.enabled;
    o->dialback_secret = c->dialback.secret;
    o->level = conf_security_level(c, r->remote);
    {
        struct policy_rule_info entry;
        const struct policy_terms *pt =
            policy_terms(policy_facts_policy(c->policy), r->remote, &entry);

        /* A certificate required by the policy: no dialback fallback on this stream (it
         * fails as soon as the certificate is not valid: remote-server-not-found). */
        if (pt->auth == POLICY_REQUIRE_CERTIFICATE && o->level != CONF_SEC_SECURE) {
            log_info("pool: route local=%s remote=%s: policy rule=%s (%s:%u) requires a "
                     "certificate (term=auth)",
                     r->local, r->remote, entry.name, entry.file ? entry.file : "-", entry.line);
            o->level = CONF_SEC_SECURE;
        }
    }
    o->srv_target = r->targets->fallback ? NULL : t->host;
    o->srv_secure = !r->targets->fallback && srv->sec == DNS_SEC_SECURE;
    if (t->tlsa_queried && t->tlsa.status == DNS_OK && t->tlsa.sec == DNS_SEC_SECURE) {
        o->tlsa = t->tlsa_rr;
        o->ntlsa = t->ntlsa;
    }
    o->xml.max_stanza_bytes = c->limits.stanza_bytes;
    o->xml.max_depth = c->limits.xml_depth;
    o->xml.max_attrs = c->limits.xml_attributes;
    o->xml.max_header_bytes = c->limits.stream_header_bytes;
    o->timeouts.connect_ms = (unsigned)(c->timeouts.connect * 1000);
    o->timeouts.tls_ms = (unsigned)(c->timeouts.tls_handshake * 1000);
    o->timeouts.idle_ms = (unsigned)(c->timeouts.idle * 1000);
    o->auth_timeout_ms = (unsigned)(c->timeouts.authenticate * 1000);
    o->keepalive_ms = (unsigned)(c->timeouts.keepalive * 1000);
    o->bidi = r->p->cbs.inbound_take != NULL;
}

static void
connector_cb(struct conn *c, const struct dns_target *t, enum xmpp_stanza_error cond,
             const char *why, void *arg)
{
    struct route *r = arg;
    struct out_cbs cbs = ocbs;
    struct out_opts o;

    r->k = NULL;
    if (c == NULL) {
        route_fail(r, cond, why);
        return;
    }
    r->tidx = (size_t)(t - r->targets->targets);
    out_opts_fill(r, t, &o);
    route_set_state(r, R_NEGOTIATING);
    r->p->nstreams++;
    r->nouts++;
    cbs.arg = r;
    r->out = out_new(r->p->base, c, r->local, r->remote, &o, &cbs);
    send_verifies(r);
}

static void
dns_cb(struct dns_targets *t, void *arg)
{
    struct route *r = arg;
    const struct conf *c = r->p->conf;

    r->dnsreq = NULL;
    s2s_hist_observe(&s2s_stats.dns_latency, s2s_now() - r->started);
    if (t->status != DNS_OK) {
        char why[400];

        snprintf(why, sizeof(why), "DNS: %s", t->error[0] ? t->error : dns_status_str(t->status));
        dns_targets_free(t);
        route_fail(r, XMPP_STANZA_ERR_REMOTE_SERVER_NOT_FOUND, why);
        return;
    }
    r->targets = t;
    route_set_state(r, R_CONNECTING);
    r->k = connector_start(r->p->base, t, (unsigned)(c->timeouts.connect * 1000), 250, connector_cb,
                           r);
}

/* XEP-0220 pooling: a READY stream of ours to the same remote domain carries this pair
 * too, if the peer accepts it by dialback. */
static bool
route_try_pooling(struct route *r)
{
    struct route *h;

    if (r->no_pooling || !r->p->conf->dialback.enabled)
        return false;
    TAILQ_FOREACH(h, &r->p->routes, entry)
    if (h != r && h->host == NULL && h->state == R_READY && h->out != NULL &&
        strcmp(h->remote, r->remote) == 0 && out_add_pair(h->out, r->local) == 0) {
        r->host = h;
        r->out = h->out;
        route_set_state(r, R_NEGOTIATING);
        send_verifies(r);
        return true;
    }
    return false;
}

/*
 * Policy max_streams (issue 7) for outbound routes: with that many streams of ours to
 * the remote domain, a route that could not ride on one of them (pooling) opens none.
 * It stays IDLE with its queue: stanzas wait (bounded by limits.queue_*: beyond, they
 * bounce resource-constraint, type wait, in pool_send) until a stream comes up that it
 * may ride on or one closes; timeouts.queue bounds the wait (remote-server-timeout).
 */
static bool
route_slot_wait(struct route *r)
{
    unsigned max = policy_terms(policy_facts_policy(r->p->conf->policy), r->remote, NULL)
                       ->max_streams,
             n;

    if (max == 0 || (n = own_streams(r->p, r->remote)) < max) {
        r->slot_wait = false;
        return false;
    }
    if (!r->slot_wait) {
        log_info("pool: route local=%s remote=%s waits: %u streams to %s already (policy "
                 "max_streams), queued=%zu",
                 r->local, r->remote, n, r->remote, r->qn);
        s2s_stats.policy_held++;
    }
    r->slot_wait = true;
    return true;
}

static void
route_start(struct route *r)
{
    struct pool *p = r->p;
    struct timeval tv;
    struct policy_decision d;

    if (r->state != R_IDLE)
        return;
    if (policy_check_route(policy_facts_policy(p->conf->policy), r->local, r->remote, &d) !=
        POLICY_PASS) {
        char line[400];

        policy_decision_format(&d, line, sizeof(line));
        log_info("pool: route local=%s remote=%s not created: %s", r->local, r->remote, line);
        s2s_stats.policy_bounced += r->qn;
        s2s_policy_refusal("route", false, r->local, r->remote, NULL, r->qn, &d);
        route_fail(r, d.stanza_error, d.text);
        return;
    }
    if (r->qn > 0 && !(r->slot_wait && evtimer_pending(r->ev_queue, NULL))) {
        tv = tv_of(p->conf->timeouts.queue);
        evtimer_add(r->ev_queue, &tv);
    }
    r->started = s2s_now();
    if (route_try_pooling(r)) {
        r->slot_wait = false;
        return;
    }
    if (route_slot_wait(r))
        return;
    route_set_state(r, R_RESOLVING);
    r->dnsreq = p->dns.resolve(p->dns.ctx, r->remote, dns_cb, r);
    if (r->dnsreq == NULL)
        route_fail(r, XMPP_STANZA_ERR_REMOTE_SERVER_NOT_FOUND, "DNS: invalid domain");
}

static void
queue_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    route_fail(arg, XMPP_STANZA_ERR_REMOTE_SERVER_TIMEOUT, "no route within timeouts.queue");
}

static void
idle_cb(evutil_socket_t fd, short what, void *arg)
{
    struct route *r = arg;

    (void)fd;
    (void)what;
    if (r->host != NULL || r->via_bidi) {
        route_detach(r, false);
        route_maybe_free(r);
        return;
    }
    if (r->out != NULL)
        out_close(r->out, "route idle");
}

/* XEP-0199 (ping.h): the ping goes on the stream the route writes to. */
static int
ping_send_cb(void *arg, struct stanza *st)
{
    struct route *r = arg;

    if (r->state != R_READY || r->via_bidi || r->out == NULL) {
        stanza_free(st);
        return -1;
    }
    return out_send(r->out, st);
}

/* A stale stream is closed; o_closed restarts the route if stanzas wait (what was
 * written to the stale stream is lost: docs/federation.md). */
static void
ping_stale_cb(void *arg, const char *why)
{
    struct route *r = arg;

    if (r->state == R_READY && !r->via_bidi && r->out != NULL)
        out_close(r->out, why);
}

/* --- routes ---------------------------------------------------------------------------- */

/*
 * route_find() runs for every stanza in both directions (pool_send, pool_heard), so
 * routes are indexed by a hash of (local, remote) rather than found by a walk of the list:
 * a proxy federating with thousands of domains would otherwise pay thousands of string
 * compares per stanza. Chained buckets, doubled when the routes outnumber them.
 */
static size_t
route_hash(const char *local, const char *remote)
{
    uint64_t h = 14695981039346656037ULL; /* FNV-1a */

    for (const char *c = local; *c != '\0'; c++)
        h = (h ^ (unsigned char)*c) * 1099511628211ULL;
    h = (h ^ 0xff) * 1099511628211ULL; /* separator: ("ab", "c") differs from ("a", "bc") */
    for (const char *c = remote; *c != '\0'; c++)
        h = (h ^ (unsigned char)*c) * 1099511628211ULL;
    return (size_t)h;
}

static void
route_index_grow(struct pool *p)
{
    size_t n = p->nindex == 0 ? 64 : p->nindex * 2;
    struct route **b = calloc(n, sizeof(*b));
    struct route *r;

    if (b == NULL)
        fatal("calloc");
    TAILQ_FOREACH(r, &p->routes, entry)
    {
        size_t i = route_hash(r->local, r->remote) & (n - 1);
        r->hnext = b[i];
        b[i] = r;
    }
    free(p->index);
    p->index = b;
    p->nindex = n;
}

/* r is already on p->routes (route_index_grow() rebuilds from that list). */
static void
route_index_add(struct pool *p, struct route *r)
{
    size_t i;

    if (++p->nroutes > p->nindex) {
        route_index_grow(p);
        return;
    }
    i = route_hash(r->local, r->remote) & (p->nindex - 1);
    r->hnext = p->index[i];
    p->index[i] = r;
}

static void
route_index_del(struct pool *p, struct route *r)
{
    struct route **pp = &p->index[route_hash(r->local, r->remote) & (p->nindex - 1)];

    while (*pp != r) {
        assert(*pp != NULL);
        pp = &(*pp)->hnext;
    }
    *pp = r->hnext;
    p->nroutes--;
}

static struct route *
route_find(const struct pool *p, const char *local, const char *remote)
{
    struct route *r;

    if (p->nindex == 0)
        return NULL;
    for (r = p->index[route_hash(local, remote) & (p->nindex - 1)]; r != NULL; r = r->hnext)
        if (strcmp(r->remote, remote) == 0 && strcmp(r->local, local) == 0)
            return r;
    return NULL;
}

static struct route *
route_get(struct pool *p, const char *local, const char *remote)
{
    struct route *r = route_find(p, local, remote);

    if (r != NULL)
        return r;
    if ((r = calloc(1, sizeof(*r))) == NULL)
        fatal("calloc");
    r->p = p;
    snprintf(r->local, sizeof(r->local), "%s", local);
    snprintf(r->remote, sizeof(r->remote), "%s", remote);
    TAILQ_INIT(&r->queue);
    TAILQ_INIT(&r->verifies);
    r->ev_queue = evtimer_new(p->base, queue_timeout_cb, r);
    r->ev_idle = evtimer_new(p->base, idle_cb, r);
    r->ev_hold = evtimer_new(p->base, hold_cb, r);
    r->ping =
        ping_new(p->base, local, remote, &(struct ping_cbs){ping_send_cb, ping_stale_cb, NULL, r});
    TAILQ_INSERT_TAIL(&p->routes, r, entry);
    route_index_add(p, r);
    return r;
}

/* A route with nothing in it and nothing running is forgotten. */
static void
route_maybe_free(struct route *r)
{
    struct route *rr;

    TAILQ_FOREACH(rr, &r->p->routes, entry)
    if (rr->host == r)
        return;
    if (r->state != R_IDLE || r->out != NULL || r->nouts > 0 || r->k != NULL || r->dnsreq != NULL ||
        r->qn > 0 || !TAILQ_EMPTY(&r->verifies))
        return;
    route_index_del(r->p, r);
    TAILQ_REMOVE(&r->p->routes, r, entry);
    event_free(r->ev_queue);
    event_free(r->ev_idle);
    event_free(r->ev_hold);
    ping_free(r->ping);
    free(r);
}

static size_t
wire_bytes(const struct stanza *st)
{
    size_t n = stanza_wire_bytes(st);

    return n != 0 ? n : stanza_mem_bytes(st);
}

void
pool_send(struct pool *p, const char *local, const char *remote, struct stanza *st)
{
    const struct conf *c = p->conf;
    struct remote *rd;
    struct route *r;
    struct qitem *q;
    size_t bytes = stanza_mem_bytes(st);

    s2s_stats.out_accepted++;
    if (p->shutting_down) {
        bounce(p, st, XMPP_STANZA_ERR_REMOTE_SERVER_TIMEOUT, "the proxy is shutting down");
        return;
    }
    r = route_find(p, local, remote);
    if (r != NULL && r->state == R_READY && r->qn == 0 && route_writable(r) &&
        !evtimer_pending(r->ev_hold, NULL) && !route_over_rate(r, wire_bytes(st))) {
        struct timeval tv = tv_of(c->timeouts.route_idle);
        int rc = route_write(r, st);

        if (rc == 0)
            s2s_stats.out_delivered++;
        if (rc != -1) {
            evtimer_add(r->ev_idle, &tv);
            return;
        }
        route_detach(r, false); /* the bidi stream is going: queue and start our own */
    }
    if ((r == NULL || r->state == R_IDLE) && remote_in_backoff(p, remote, &rd)) {
        bounce(p, st, rd->cond, rd->why);
        return;
    }
    r = route_get(p, local, remote);
    if (r->qn >= c->limits.queue_stanzas || r->qbytes + bytes > c->limits.queue_bytes) {
        bounce(p, st, XMPP_STANZA_ERR_RESOURCE_CONSTRAINT, "too many stanzas waiting");
        return;
    }
    if ((q = calloc(1, sizeof(*q))) == NULL)
        fatal("calloc");
    q->st = st;
    q->bytes = bytes;
    q->wire = wire_bytes(st);
    /* The fast path above counted it when it found the route over its rate. */
    q->paid = r->state == R_READY && r->qn == 0 && evtimer_pending(r->ev_hold, NULL);
    TAILQ_INSERT_TAIL(&r->queue, q, entry);
    r->qn++;
    r->qbytes += bytes;
    if (r->state == R_IDLE)
        route_start(r);
    else if (!evtimer_pending(r->ev_queue, NULL) && r->state != R_FAILED) {
        struct timeval tv = tv_of(c->timeouts.queue);
        evtimer_add(r->ev_queue, &tv);
    }
}

struct pool_verify *
pool_dialback_verify(struct pool *p, const char *local, const char *remote, const char *id,
                     const char *key, pool_verify_fn fn, void *arg)
{
    struct route *r;
    struct pool_verify *v;

    if (strlen(local) >= DOMAIN_BUF || strlen(remote) >= DOMAIN_BUF || strlen(id) >= ID_BUF ||
        strlen(key) > DIALBACK_MAX_KEY)
        return NULL;
    r = route_get(p, local, remote);
    if ((v = calloc(1, sizeof(*v))) == NULL)
        fatal("calloc");
    v->p = p;
    v->r = r;
    snprintf(v->local, sizeof(v->local), "%s", local);
    snprintf(v->remote, sizeof(v->remote), "%s", remote);
    snprintf(v->id, sizeof(v->id), "%s", id);
    snprintf(v->key, sizeof(v->key), "%s", key);
    v->fn = fn;
    v->arg = arg;
    v->ev_done = evtimer_new(p->base, verify_done_cb, v);
    TAILQ_INSERT_TAIL(&r->verifies, v, entry);
    if (p->shutting_down) {
        verify_answer(v, DIALBACK_TYPE_ERROR, DIALBACK_ERR_REMOTE_CONNECTION_FAILED);
        return v;
    }
    if (r->out != NULL)
        send_verifies(r);
    else if (r->state == R_IDLE)
        route_start(r);
    return v;
}

void
pool_bidi_add(struct pool *p, const char *local, const char *remote, const struct pool_bidi *b)
{
    struct route *r;

    if (p->shutting_down)
        return;
    r = route_get(p, local, remote);
    if (r->state != R_IDLE) {
        route_maybe_free(r);
        return; /* a stream of our own is up or coming: keep it */
    }
    log_info("pool: route local=%s remote=%s uses the peer's bidirectional stream", local, remote);
    r->via_bidi = true;
    r->bidi = *b;
    route_ready(r);
}

void
pool_bidi_remove(struct pool *p, void *ctx)
{
    pool_bidi_remove_pair(p, ctx, NULL, NULL);
}

void
pool_bidi_remove_pair(struct pool *p, void *ctx, const char *local, const char *remote)
{
    struct route *r, *next;

    for (r = TAILQ_FIRST(&p->routes); r != NULL; r = next) {
        next = TAILQ_NEXT(r, entry);
        if (!r->via_bidi || r->bidi.ctx != ctx)
            continue;
        if (local != NULL && (strcmp(r->local, local) != 0 || strcmp(r->remote, remote) != 0))
            continue;
        route_detach(r, true);
        route_maybe_free(r);
    }
}

/* XEP-0199: any stanza from remote to local feeds the route's ping; its answer is ours. */
bool
pool_heard(struct pool *p, const struct stanza *st)
{
    char local[DOMAIN_BUF], remote[DOMAIN_BUF];
    struct route *r;

    if (peerauth_jid_domain(stanza_attr(st, "to"), local, sizeof(local)) == -1 ||
        peerauth_jid_domain(stanza_attr(st, "from"), remote, sizeof(remote)) == -1)
        return false;
    r = route_find(p, local, remote);
    return ping_heard(r != NULL ? r->ping : NULL, st);
}

void
pool_verify_cancel(struct pool *p, struct pool_verify *v)
{
    struct route *r = v->r;

    (void)p;
    TAILQ_REMOVE(&r->verifies, v, entry);
    event_free(v->ev_done);
    free(v);
    route_maybe_free(r);
}

/* --- pool ------------------------------------------------------------------------------ */

struct resolver_ctx {
    struct dns_resolver *res;
    int flags;
};

static void *
res_resolve(void *ctx, const char *domain, dns_targets_fn cb, void *arg)
{
    struct resolver_ctx *rc = ctx;

    return dns_targets_resolve(rc->res, domain, rc->flags, cb, arg);
}

static void
res_cancel(void *req)
{
    dns_targets_cancel(req);
}

struct pool_dns
pool_dns_resolver(struct dns_resolver *res, int flags)
{
    static struct resolver_ctx rc; /* one resolver per process */
    struct pool_dns d = {res_resolve, res_cancel, &rc};

    rc.res = res;
    rc.flags = flags;
    return d;
}

struct pool *
pool_new(struct event_base *base, const struct conf *conf, struct tls_ctx *tls,
         const struct pool_dns *dns, const struct pool_cbs *cbs)
{
    struct pool *p;

    if ((p = calloc(1, sizeof(*p))) == NULL)
        fatal("calloc");
    p->base = base;
    p->conf = conf;
    p->tls = tls;
    p->dns = *dns;
    p->cbs = *cbs;
    TAILQ_INIT(&p->routes);
    LIST_INIT(&p->remotes);
    p->lim = policy_limiter_new(65536, 1);
    return p;
}

void
pool_reconfigure(struct pool *p, const struct conf *conf, struct tls_ctx *tls)
{
    struct route *r, *next;

    p->conf = conf;
    p->tls = tls;
    /* The new policy applies to live routes: a READY stream it refuses is closed and what
     * waits for it bounces; the others are untouched. */
    for (r = TAILQ_FIRST(&p->routes); r != NULL; r = next) {
        next = TAILQ_NEXT(r, entry);
        if (r->state == R_READY && r->host == NULL)
            route_admitted(r, true);
    }
}

void
pool_shutdown(struct pool *p)
{
    struct route *r, *next;

    p->shutting_down = true;
    for (r = TAILQ_FIRST(&p->routes); r != NULL; r = next) {
        next = TAILQ_NEXT(r, entry);
        if (r->state == R_READY && r->via_bidi) {
            route_detach(r, false); /* the router closes the inbound streams */
            continue;
        }
        if (r->state == R_READY) {
            out_close(r->out, "shutdown");
            continue;
        }
        if (r->state != R_IDLE && r->state != R_FAILED) {
            route_fail(r, XMPP_STANZA_ERR_REMOTE_SERVER_TIMEOUT, "the proxy is shutting down");
            continue;
        }
        bounce_queue(r, XMPP_STANZA_ERR_REMOTE_SERVER_TIMEOUT, "the proxy is shutting down");
    }
}

/* Everything must be idle (after pool_shutdown and the loop ran the closes). */
void
pool_free(struct pool *p)
{
    struct route *r;
    struct remote *rd;

    if (p == NULL)
        return;
    while ((r = TAILQ_FIRST(&p->routes)) != NULL) {
        struct pool_verify *v;

        if (r->dnsreq != NULL)
            p->dns.cancel(r->dnsreq);
        connector_cancel(r->k);
        bounce_queue(r, XMPP_STANZA_ERR_REMOTE_SERVER_TIMEOUT, "the proxy is shutting down");
        while ((v = TAILQ_FIRST(&r->verifies)) != NULL) {
            TAILQ_REMOVE(&r->verifies, v, entry);
            event_free(v->ev_done);
            free(v);
        }
        dns_targets_free(r->targets);
        route_index_del(p, r);
        TAILQ_REMOVE(&p->routes, r, entry);
        event_free(r->ev_queue);
        event_free(r->ev_idle);
        event_free(r->ev_hold);
        ping_free(r->ping);
        free(r);
    }
    while ((rd = LIST_FIRST(&p->remotes)) != NULL) {
        LIST_REMOVE(rd, entry);
        free(rd);
    }
    free(p->index);
    policy_limiter_free(p->lim);
    free(p);
}

size_t
pool_routes(const struct pool *p)
{
    size_t n = 0;
    struct route *r;

    TAILQ_FOREACH(r, &p->routes, entry)
    n++;
    return n;
}

size_t
pool_queued(const struct pool *p, const char *local, const char *remote)
{
    struct route *r = route_find(p, local, remote);

    return r != NULL ? r->qn : 0;
}

bool
pool_route_ready(const struct pool *p, const char *local, const char *remote)
{
    struct route *r = route_find(p, local, remote);

    return r != NULL && r->state == R_READY;
}

double
pool_backoff(const struct pool *p, const char *remote)
{
    struct remote *rd;

    LIST_FOREACH(rd, &p->remotes, entry)
    if (strcmp(rd->domain, remote) == 0)
        return rd->backoff;
    return 0;
}

size_t
pool_streams(const struct pool *p)
{
    return p->nstreams;
}

void
pool_foreach_remote(const struct pool *p, pool_remote_fn fn, void *arg)
{
    const struct remote *rd;
    uint64_t now = now_ms();

    LIST_FOREACH(rd, &p->remotes, entry)
    {
        struct pool_remote_info ri = {0};

        ri.domain = rd->domain;
        ri.backoff = rd->backoff;
        ri.retry_in = rd->retry_ms > now ? (double)(rd->retry_ms - now) / 1000.0 : 0;
        ri.cond = rd->cond;
        ri.why = rd->why;
        fn(&ri, arg);
    }
}

void
pool_foreach_route(const struct pool *p, pool_route_fn fn, void *arg)
{
    const struct route *r;

    TAILQ_FOREACH(r, &p->routes, entry)
    fn(r->local, r->remote, route_state_names[r->state], r->qn, arg);
}
