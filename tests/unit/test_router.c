/*
 * Two proxies in one process: router A hosting a.test and router B hosting b.test, each
 * with its real listener, pool, inbound sessions and TLS, finding each other through a
 * scripted DNS step, with a capturing local sink in place of the component link.
 * Proves federation both ways with SASL EXTERNAL and with dialback (B verifies A's key
 * by asking A's authoritative side over a second connection), the bounce back to a
 * remote sender when the local side refuses, remote-server-not-found for a domain
 * without servers, and a shutdown that closes every stream. Also prints the time from a
 * route's first stanza to its delivery (loopback, both methods).
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
#include "s2s/router.h"
#include "s2s/sockaddr.h"
#include "s2s/stats.h"
#include "s2s/tls.h"
#include "tests/unit/helpers/testca.h"
#include "tests/unit/helpers/xpeer.h"

static struct testca *ca, *ca2;
static struct tls_ctx *a_ctx, *a_bad, *b_ctx;
static struct event_base *base;

struct side {
    struct conf conf;
    struct conf_host host;
    struct conf_addr addr;
    struct router *r;
    uint16_t port;
    unsigned got;
    char last_to[128], last_type[32], last_cond[64];
    bool refuse;
};
static struct side A, B;

/* --- sinks ----------------------------------------------------------------------------- */

static int
sink_send(void *ctx, struct stanza *st)
{
    struct side *s = ctx;
    const char *type = stanza_attr(st, "type");
    struct stanza_elem *e = stanza_elem_child(stanza_root(st), NULL, "error");

    if (s->refuse)
        return -1;
    s->got++;
    snprintf(s->last_to, sizeof(s->last_to), "%s", stanza_attr(st, "to"));
    snprintf(s->last_type, sizeof(s->last_type), "%s", type ? type : "");
    snprintf(s->last_cond, sizeof(s->last_cond), "%s",
             e && stanza_elem_first(e) ? stanza_elem_first(e)->name : "");
    stanza_free(st);
    return 0;
}

/* --- scripted DNS ---------------------------------------------------------------------- */

struct fake_req {
    struct event *ev;
    dns_targets_fn cb;
    void *arg;
    char domain[64];
};

static void
fake_fire(evutil_socket_t fd, short what, void *arg)
{
    struct fake_req *q = arg;
    struct dns_targets *t = calloc(1, sizeof(*t));
    dns_targets_fn cb = q->cb;
    void *cbarg = q->arg;
    uint16_t port = strcmp(q->domain, "a.test") == 0   ? A.port
                    : strcmp(q->domain, "b.test") == 0 ? B.port
                                                       : 0;

    (void)fd;
    (void)what;
    snprintf(t->domain, sizeof(t->domain), "%s", q->domain);
    if (port == 0) {
        t->status = DNS_NXDOMAIN;
        snprintf(t->error, sizeof(t->error), "%s: NXDOMAIN", q->domain);
    } else {
        t->status = DNS_OK;
        t->fallback = true;
        t->ntargets = 1;
        t->targets = calloc(1, sizeof(*t->targets));
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

static void *
fake_resolve(void *ctx, const char *domain, dns_targets_fn cb, void *arg)
{
    struct fake_req *q = calloc(1, sizeof(*q));
    struct timeval now = {0, 0};

    (void)ctx;
    q->cb = cb;
    q->arg = arg;
    snprintf(q->domain, sizeof(q->domain), "%s", domain);
    q->ev = evtimer_new(base, fake_fire, q);
    evtimer_add(q->ev, &now);
    return q;
}

static void
fake_cancel(void *req)
{
    struct fake_req *q = req;

    event_free(q->ev);
    free(q);
}

/* --- fixtures -------------------------------------------------------------------------- */

static void
side_conf(struct side *s, const char *domain, const char *secret)
{
    struct conf *c = &s->conf;

    memset(c, 0, sizeof(*c));
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

static void
side_start(struct side *s, struct tls_ctx *tls)
{
    struct pool_dns dns = {fake_resolve, fake_cancel, NULL};
    struct router_sink sink = {sink_send, s};
    struct sockaddr_storage ss;
    socklen_t len;
    char err[256];

    s->r = router_new(base, &s->conf, tls, &dns, err, sizeof(err));
    if (s->r == NULL)
        fail_msg("%s", err);
    router_set_sink(s->r, s->host.domain, &sink);
    assert_int_equal(router_listen_addr(s->r, 0, &ss, &len), 0);
    s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static int
group_setup(void **state)
{
    static const char *const a_dns[] = {"a.test", NULL};
    static const char *const b_dns[] = {"b.test", NULL};
    const struct testca_leaf a = {.dns = a_dns}, b = {.dns = b_dns};
    struct testca_files fa, fb, fao;
    struct tls_settings s = {0};
    struct tls_host h;
    char err[512];

    (void)state;
    signal(SIGPIPE, SIG_IGN);
    if ((ca = testca_new("Fed CA")) == NULL || (ca2 = testca_new("Other CA")) == NULL ||
        testca_issue(ca, "a", &a, &fa) || testca_issue(ca, "b", &b, &fb) ||
        testca_issue(ca2, "ao", &a, &fao))
        return -1;
    s.ca_file = testca_cert(ca);
    h = (struct tls_host){"a.test", fa.cert, fa.key};
    a_ctx = tls_ctx_new(&s, &h, 1, err, sizeof(err));
    h = (struct tls_host){"a.test", fao.cert, fao.key};
    a_bad = tls_ctx_new(&s, &h, 1, err, sizeof(err));
    h = (struct tls_host){"b.test", fb.cert, fb.key};
    b_ctx = tls_ctx_new(&s, &h, 1, err, sizeof(err));
    return a_ctx && a_bad && b_ctx ? 0 : -1;
}

static int
group_teardown(void **state)
{
    (void)state;
    tls_ctx_unref(a_ctx);
    tls_ctx_unref(a_bad);
    tls_ctx_unref(b_ctx);
    testca_free(ca);
    testca_free(ca2);
    return 0;
}

static int
setup(void **state)
{
    (void)state;
    base = event_base_new();
    memset(&A, 0, sizeof(A));
    memset(&B, 0, sizeof(B));
    side_conf(&A, "a.test", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    side_conf(&B, "b.test", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
    return 0;
}

static unsigned shut_done;

static void
on_shut(void *arg)
{
    (void)arg;
    shut_done++;
}

static bool
shut_cond(void *arg)
{
    (void)arg;
    return shut_done == 2 && conn_count() == 0;
}

static int
teardown(void **state)
{
    (void)state;
    shut_done = 0;
    router_shutdown(A.r, on_shut, NULL);
    router_shutdown(B.r, on_shut, NULL);
    xp_run_until(base, shut_cond, NULL, 10);
    assert_int_equal(shut_done, 2);
    router_free(A.r);
    router_free(B.r);
    assert_int_equal(in_count(), 0);
    assert_int_equal(out_count(), 0);
    assert_int_equal(conn_count(), 0);
    event_base_free(base);
    return 0;
}

static struct stanza *
msg(const char *from, const char *to)
{
    struct stanza *st = stanza_new(STANZA_NS_COMPONENT, "message");

    stanza_elem_set_attr(st, stanza_root(st), NULL, "from", from);
    stanza_elem_set_attr(st, stanza_root(st), NULL, "to", to);
    stanza_elem_add_text(st, stanza_elem_add(st, stanza_root(st), NULL, "body"), "hi", 2);
    return st;
}

static struct side *want_side;
static unsigned want_n;

static bool
got_cond(void *arg)
{
    (void)arg;
    return want_side->got >= want_n;
}

static void
wait_got(struct side *s, unsigned n)
{
    want_side = s;
    want_n = n;
    assert_true(xp_run_until(base, got_cond, NULL, 10));
}

static double
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* --- tests ----------------------------------------------------------------------------- */

static void
test_federation_sasl_external(void **state)
{
    uint64_t sasl = s2s_stats.auth_sasl;
    double t0, t1;

    (void)state;
    side_start(&A, a_ctx);
    side_start(&B, b_ctx);
    t0 = now_ms();
    router_outbound(A.r, msg("u@a.test/r", "v@b.test"));
    wait_got(&B, 1);
    t1 = now_ms();
    assert_string_equal(B.last_to, "v@b.test");
    assert_int_equal(s2s_stats.auth_sasl, sasl + 1);
    printf("# new route, SASL EXTERNAL, loopback: first stanza delivered after %.1f ms\n", t1 - t0);
    /* The other direction goes back over A's stream (XEP-0288: A asked for bidi, B's
     * inbound session offered it): B opens no stream of its own. */
    router_outbound(B.r, msg("v@b.test", "u@a.test/r"));
    wait_got(&A, 1);
    assert_string_equal(A.last_to, "u@a.test/r");
    assert_int_equal(s2s_stats.auth_sasl, sasl + 1);
    assert_int_equal(pool_streams(router_pool(B.r)), 0);
    assert_int_equal(pool_streams(router_pool(A.r)), 1);
}

static void
test_federation_dialback(void **state)
{
    uint64_t db = s2s_stats.auth_dialback;
    double t0, t1;

    (void)state;
    side_start(&A, a_bad); /* B cannot verify A's certificate: dialback */
    side_start(&B, b_ctx);
    t0 = now_ms();
    router_outbound(A.r, msg("u@a.test", "v@b.test"));
    wait_got(&B, 1);
    t1 = now_ms();
    assert_true(s2s_stats.auth_dialback >= db + 1);
    printf("# new route, dialback, loopback: first stanza delivered after %.1f ms\n", t1 - t0);
    router_outbound(A.r, msg("u@a.test", "v@b.test"));
    wait_got(&B, 2);
}

/* B's local side refuses: the sender at A gets service-unavailable. */
static void
test_local_refusal_bounces_to_remote(void **state)
{
    (void)state;
    side_start(&A, a_ctx);
    side_start(&B, b_ctx);
    B.refuse = true;
    router_outbound(A.r, msg("u@a.test/r", "v@b.test"));
    wait_got(&A, 1);
    assert_string_equal(A.last_type, "error");
    assert_string_equal(A.last_to, "u@a.test/r");
    assert_string_equal(A.last_cond, "service-unavailable");
}

static void
test_remote_server_not_found(void **state)
{
    (void)state;
    side_start(&A, a_ctx);
    side_start(&B, b_ctx);
    router_outbound(A.r, msg("u@a.test/r", "v@nowhere.test"));
    wait_got(&A, 1);
    assert_string_equal(A.last_type, "error");
    assert_string_equal(A.last_cond, "remote-server-not-found");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_federation_sasl_external, setup, teardown),
        cmocka_unit_test_setup_teardown(test_federation_dialback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_local_refusal_bounces_to_remote, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remote_server_not_found, setup, teardown),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
