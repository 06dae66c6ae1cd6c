/*
 * The two-proxies fixture (see twoproxy.h): scripted DNS, sinks, configuration, start and
 * stop, loop helpers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "s2s/conn.h"
#include "s2s/in.h"
#include "s2s/out.h"
#include "s2s/pool.h"
#include "s2s/router.h"
#include "s2s/sockaddr.h"
#include "s2s/tls.h"
#include "tests/unit/helpers/testca.h"
#include "tests/unit/helpers/twoproxy.h"
#include "tests/unit/helpers/xpeer.h"

#define TP_WAIT_SECS 10

/* --- scripted DNS ---------------------------------------------------------------------- */

struct tp_dns_req {
    struct twoproxy *tp;
    struct event *ev;
    dns_targets_fn cb;
    void *arg;
    char domain[64];
};

/* The port of the side hosting domain (any of its conf.hosts), 0 if none does. */
static uint16_t
tp_dns_port(const struct twoproxy *tp, const char *domain)
{
    const struct tp_side *sides[2] = {&tp->a, &tp->b};

    for (size_t i = 0; i < 2; i++)
        for (size_t h = 0; h < sides[i]->conf.nhosts; h++)
            if (strcmp(domain, sides[i]->conf.hosts[h].domain) == 0)
                return sides[i]->port;
    return 0;
}

/* One target, the hosting side's listener on 127.0.0.1, as an A-record fallback (no
 * SRV); NXDOMAIN for a domain neither side hosts. */
static void
tp_dns_fire(evutil_socket_t fd, short what, void *arg)
{
    struct tp_dns_req *q = arg;
    struct dns_targets *t = calloc(1, sizeof(*t));
    dns_targets_fn cb = q->cb;
    void *cbarg = q->arg;
    uint16_t port = tp_dns_port(q->tp, q->domain);

    (void)fd;
    (void)what;
    if (t == NULL)
        fail_msg("out of memory");
    snprintf(t->domain, sizeof(t->domain), "%s", q->domain);
    if (port == 0) {
        t->status = DNS_NXDOMAIN;
        snprintf(t->error, sizeof(t->error), "%s: NXDOMAIN", q->domain);
    } else {
        t->status = DNS_OK;
        t->fallback = true;
        t->ntargets = 1;
        if ((t->targets = calloc(1, sizeof(*t->targets))) == NULL)
            fail_msg("out of memory");
        snprintf(t->targets[0].host, sizeof(t->targets[0].host), "%s", q->domain);
        t->targets[0].port = port;
        t->targets[0].naddrs = 1;
        t->targets[0].addrs[0].family = AF_INET;
        memcpy(t->targets[0].addrs[0].addr, "\x7f\x00\x00\x01", 4);
    }
    event_free(q->ev);
    free(q);
    cb(t, cbarg);
}

/* Answers from the loop, never from inside the call (as a real resolver would). */
static void *
tp_dns_resolve(void *ctx, const char *domain, dns_targets_fn cb, void *arg)
{
    struct tp_dns_req *q = calloc(1, sizeof(*q));
    struct timeval now = {0, 0};

    if (q == NULL)
        fail_msg("out of memory");
    q->tp = ctx;
    q->cb = cb;
    q->arg = arg;
    snprintf(q->domain, sizeof(q->domain), "%s", domain);
    q->ev = evtimer_new(q->tp->base, tp_dns_fire, q);
    evtimer_add(q->ev, &now);
    return q;
}

static void
tp_dns_cancel(void *req)
{
    struct tp_dns_req *q = req;

    event_free(q->ev);
    free(q);
}

/* --- sinks ----------------------------------------------------------------------------- */

int
tp_sink_record(struct tp_side *s, struct stanza *st)
{
    const char *type = stanza_attr(st, "type");
    struct stanza_elem *e = stanza_elem_child(stanza_root(st), NULL, "error");

    s->got++;
    snprintf(s->last_to, sizeof(s->last_to), "%s", stanza_attr(st, "to"));
    snprintf(s->last_type, sizeof(s->last_type), "%s", type ? type : "");
    snprintf(s->last_cond, sizeof(s->last_cond), "%s",
             e && stanza_elem_first(e) ? stanza_elem_first(e)->name : "");
    stanza_free(st);
    return 0;
}

static int
tp_sink_send(void *ctx, struct stanza *st)
{
    struct tp_side *s = ctx;

    if (s->sink != NULL)
        return s->sink(s, st);
    if (s->refuse)
        return -1;
    return tp_sink_record(s, st);
}

/* --- TLS ------------------------------------------------------------------------------- */

static struct tls_ctx *
tp_tls_ctx(const char *ca_file, const char *domain, const struct testca_files *f)
{
    struct tls_settings s = {0};
    struct tls_host h = {domain, f->cert, f->key};
    struct tls_ctx *ctx;
    char err[512];

    s.ca_file = ca_file;
    if ((ctx = tls_ctx_new(&s, &h, 1, err, sizeof(err))) == NULL)
        fprintf(stderr, "twoproxy: TLS context for %s: %s\n", domain, err);
    return ctx;
}

int
tp_tls_init(struct tp_tls *t, const char *ca_cn)
{
    static const char *const a_dns[] = {"a.test", NULL};
    static const char *const b_dns[] = {"b.test", NULL};
    const struct testca_leaf a = {.dns = a_dns}, b = {.dns = b_dns};
    struct testca_files fa, fb, fao, fbo;
    const char *ca_file;

    memset(t, 0, sizeof(*t));
    signal(SIGPIPE, SIG_IGN);
    if ((t->ca = testca_new(ca_cn)) == NULL || (t->ca_other = testca_new("Other CA")) == NULL ||
        testca_issue(t->ca, "a", &a, &fa) || testca_issue(t->ca, "b", &b, &fb) ||
        testca_issue(t->ca_other, "ao", &a, &fao) || testca_issue(t->ca_other, "bo", &b, &fbo))
        return -1;
    /* Every context trusts only the first CA. */
    ca_file = testca_cert(t->ca);
    t->a = tp_tls_ctx(ca_file, "a.test", &fa);
    t->b = tp_tls_ctx(ca_file, "b.test", &fb);
    t->a_other = tp_tls_ctx(ca_file, "a.test", &fao);
    t->b_other = tp_tls_ctx(ca_file, "b.test", &fbo);
    return t->a && t->b && t->a_other && t->b_other ? 0 : -1;
}

void
tp_tls_free(struct tp_tls *t)
{
    tls_ctx_unref(t->a);
    tls_ctx_unref(t->b);
    tls_ctx_unref(t->a_other);
    tls_ctx_unref(t->b_other);
    testca_free(t->ca);
    testca_free(t->ca_other);
    memset(t, 0, sizeof(*t));
}

/* --- the two sides --------------------------------------------------------------------- */

static void
tp_side_conf(struct tp_side *s, const char *domain, const char *secret)
{
    struct conf *c = &s->conf;

    memset(s, 0, sizeof(*s));
    s->host.domain = (char *)domain;
    c->hosts = &s->host;
    c->nhosts = 1;
    s->addr.text = "127.0.0.1:0";
    sockaddr_from_ip("127.0.0.1", 0, &s->addr.sa, &s->addr.salen);
    c->listen.starttls = &s->addr;
    c->listen.nstarttls = 1;
    c->security.require_tls = true;
    c->dialback.enabled = true;
    c->dialback.secret = (char *)secret;
    c->limits.stanza_bytes = 65536;
    c->limits.xml_depth = 32;
    c->limits.xml_attributes = 64;
    c->limits.stream_header_bytes = 4096;
    c->limits.queue_stanzas = 100;
    c->limits.queue_bytes = 1 << 20;
    c->limits.connections_per_ip = 16;
    c->limits.unauth_stanza_bytes = 16384;
    c->limits.dialback_pairs = 64;
    c->timeouts.connect = 2;
    c->timeouts.tls_handshake = 2;
    c->timeouts.idle = 600;
    c->timeouts.authenticate = 5;
    c->timeouts.route_idle = 600;
    c->timeouts.keepalive = 60;
    c->timeouts.backoff_min = 1;
    c->timeouts.backoff_max = 2;
    c->timeouts.queue = 5;
}

void
tp_init(struct twoproxy *tp)
{
    memset(tp, 0, sizeof(*tp));
    if ((tp->base = event_base_new()) == NULL)
        fail_msg("event_base_new failed");
    tp_side_conf(&tp->a, "a.test", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    tp_side_conf(&tp->b, "b.test", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
}

void
tp_start(struct twoproxy *tp, struct tp_side *s, struct tls_ctx *tls)
{
    struct pool_dns dns = {tp_dns_resolve, tp_dns_cancel, tp};
    struct router_sink sink = {tp_sink_send, s};
    struct sockaddr_storage ss;
    socklen_t len;
    char err[256];

    s->r = router_new(tp->base, &s->conf, tls, &dns, err, sizeof(err));
    if (s->r == NULL)
        fail_msg("router for %s: %s", s->host.domain, err);
    for (size_t h = 0; h < s->conf.nhosts; h++)
        router_set_sink(s->r, s->conf.hosts[h].domain, &sink);
    assert_int_equal(router_listen_addr(s->r, 0, &ss, &len), 0);
    s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

struct tp_shut {
    unsigned want, done;
};

static void
tp_on_shut(void *arg)
{
    struct tp_shut *sh = arg;

    sh->done++;
}

static bool
tp_shut_cond(void *arg)
{
    struct tp_shut *sh = arg;

    return sh->done == sh->want && conn_count() == 0;
}

void
tp_stop(struct twoproxy *tp)
{
    struct tp_side *sides[2] = {&tp->a, &tp->b};
    struct tp_shut sh = {0, 0};

    for (size_t i = 0; i < 2; i++)
        if (sides[i]->r != NULL)
            sh.want++;
    for (size_t i = 0; i < 2; i++)
        if (sides[i]->r != NULL)
            router_shutdown(sides[i]->r, tp_on_shut, &sh);
    xp_run_until(tp->base, tp_shut_cond, &sh, TP_WAIT_SECS);
    assert_int_equal(sh.done, sh.want);
    for (size_t i = 0; i < 2; i++) {
        if (sides[i]->r != NULL)
            router_free(sides[i]->r);
        sides[i]->r = NULL;
    }
    assert_int_equal(in_count(), 0);
    assert_int_equal(out_count(), 0);
    assert_int_equal(conn_count(), 0);
    event_base_free(tp->base);
    tp->base = NULL;
}

/* --- loop helpers ---------------------------------------------------------------------- */

bool
tp_run_until(struct twoproxy *tp, bool (*cond)(void *), void *arg)
{
    return xp_run_until(tp->base, cond, arg, TP_WAIT_SECS);
}

struct tp_got_want {
    const struct tp_side *s;
    unsigned n;
};

static bool
tp_got_cond(void *arg)
{
    const struct tp_got_want *w = arg;

    return w->s->got >= w->n;
}

void
tp_wait_got(struct twoproxy *tp, struct tp_side *s, unsigned n)
{
    struct tp_got_want w = {s, n};

    if (!tp_run_until(tp, tp_got_cond, &w))
        fail_msg("%s's sink got %u of %u stanzas in %d s", s->host.domain, s->got, n, TP_WAIT_SECS);
}

struct tp_u64_want {
    const uint64_t *v;
    uint64_t want;
};

static bool
tp_u64_cond(void *arg)
{
    const struct tp_u64_want *w = arg;

    return *w->v >= w->want;
}

void
tp_wait_u64(struct twoproxy *tp, const uint64_t *v, uint64_t want)
{
    struct tp_u64_want w = {v, want};

    if (!tp_run_until(tp, tp_u64_cond, &w))
        fail_msg("counter at %llu, wanted %llu within %d s", (unsigned long long)*v,
                 (unsigned long long)want, TP_WAIT_SECS);
}

struct stanza *
tp_msg(const char *from, const char *to)
{
    struct stanza *st = stanza_new(STANZA_NS_COMPONENT, "message");

    stanza_elem_set_attr(st, stanza_root(st), NULL, "from", from);
    stanza_elem_set_attr(st, stanza_root(st), NULL, "to", to);
    stanza_elem_add_text(st, stanza_elem_add(st, stanza_root(st), NULL, "body"), "hi", 2);
    return st;
}

double
tp_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}
