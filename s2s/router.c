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
#include "s2s/stats.h"

#define DOMAIN_BUF 256

struct sink_entry {
    LIST_ENTRY(sink_entry) entry;
    char domain[DOMAIN_BUF];
    struct router_sink sink;
};

struct insess;

/* A db:verify asked for an inbound session, waiting for the pool's answer. */
struct waiter {
    LIST_ENTRY(waiter) entry;
    struct insess *is;
    struct pool_verify *pv;
    char local[DOMAIN_BUF], remote[DOMAIN_BUF];
};

struct insess {
    LIST_ENTRY(insess) entry;
    struct router *r;
    struct in_session *s;
    struct listen_slot *slot;
    LIST_HEAD(, waiter) waiters;
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
    struct event *ev_check; /* polls for "every stream gone" during shutdown */
};

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
        return;
    }
    if (peerauth_jid_domain(stanza_attr(b, "from"), from, sizeof(from)) == -1 ||
        peerauth_jid_domain(stanza_attr(b, "to"), to, sizeof(to)) == -1) {
        stanza_free(b);
        return;
    }
    pool_send(r->pool, from, to, b);
}

/* in -> local: the 'to' domain was checked hosted and 'from' authenticated by in.c. */
static void
router_inbound(struct router *r, struct stanza *st)
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

void
router_outbound(struct router *r, struct stanza *st)
{
    char from[DOMAIN_BUF], to[DOMAIN_BUF];

    if (peerauth_jid_domain(stanza_attr(st, "from"), from, sizeof(from)) == -1 ||
        peerauth_jid_domain(stanza_attr(st, "to"), to, sizeof(to)) == -1) {
        log_info("router: outbound stanza without from/to: dropped");
        s2s_stats.out_dropped++;
        stanza_free(st);
        return;
    }
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
        stanza_free(st);
    }
}

/* XEP-0288: a stanza from a remote server over our own outbound stream, checked by
 * out.c like in.c checks its own. */
static void
pool_inbound_take(struct stanza *st, void *arg)
{
    router_inbound(arg, st);
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

    return conf_security_level(is->r->conf, remote);
}

static void
in_stanza(struct in_session *s, struct stanza *st, void *arg)
{
    struct insess *is = arg;

    (void)s;
    router_inbound(is->r, st);
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

    (void)how;
    if (in_bidi(s))
        pool_bidi_add(is->r->pool, local, remote, &b);
}

static void
in_closed(struct in_session *s, void *arg)
{
    struct insess *is = arg;
    struct router *r = is->r;
    struct waiter *w;

    (void)s;
    pool_bidi_remove(r->pool, is);
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
    static const struct in_cbs cbs_tmpl = {in_hosted,        in_security, in_stanza, in_verify,
                                           in_authenticated, in_closed,   NULL};
    struct router *r = arg;
    struct in_cbs cbs = cbs_tmpl;
    struct in_opts o;
    struct insess *is;

    if ((is = calloc(1, sizeof(*is))) == NULL)
        fatal("calloc");
    is->r = r;
    is->slot = slot;
    LIST_INIT(&is->waiters);
    LIST_INSERT_HEAD(&r->sessions, is, entry);
    r->nsessions++;
    in_opts_fill(r, direct, &o);
    cbs.arg = is;
    is->s = in_new(r->base, c, &o, &cbs);
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
    r->listen =
        listen_new(base, &conf->listen, conf->limits.connections_per_ip, on_accept, r, err, errlen);
    if (r->listen == NULL) {
        free(r);
        return NULL;
    }
    pcbs.bounce_take = pool_bounce_take;
    pcbs.inbound_take = pool_inbound_take;
    pcbs.arg = r;
    r->pool = pool_new(base, conf, tls, dns, &pcbs);
    return r;
}

void
router_reconfigure(struct router *r, const struct conf *conf, struct tls_ctx *tls)
{
    r->conf = conf;
    r->tls = tls;
    pool_reconfigure(r->pool, conf, tls);
    listen_set_per_ip(r->listen, conf->limits.connections_per_ip);
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
