/*
 * The policy wired into the engine, with two proxies in one process (the fixture of
 * test_router.c: router A hosting a.test, router B hosting b.test, real listeners, pools,
 * sessions and TLS, scripted DNS, capturing local sinks). Proves: a remote domain B
 * denies is refused (SASL: stream closed; dialback: only the pair refused) and its
 * sender gets an error; a local user's stanza to a denied domain bounces with
 * not-allowed and no stream is opened; a drop rule drops and counts; an inbound rate
 * limit pauses reading (all delivered, none lost, no faster than the rate); an outbound
 * rate limit holds the route's queue; a reload that denies a live peer closes its
 * stream, one that denies another domain leaves it alone.
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
#include "s2s/policy.h"
#include "s2s/router.h"
#include "s2s/sockaddr.h"
#include "s2s/stats.h"
#include "s2s/tls.h"
#include "tests/unit/helpers/policytest.h"
#include "tests/unit/helpers/testca.h"
#include "tests/unit/helpers/xpeer.h"

static struct testca *ca, *ca2;
static struct tls_ctx *a_ctx, *a_bad, *b_ctx;
static struct event_base *base;
static char tmpdir[64];

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
    uint16_t port = strcmp(q->domain, "a.test") == 0 || strcmp(q->domain, "a2.test") == 0 ? A.port
                    : strcmp(q->domain, "b.test") == 0                                    ? B.port
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
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/s2s-policy-wire.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
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
    {
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
        if (system(cmd) != 0)
            return -1;
    }
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
    policy_unref(A.conf.policy);
    policy_unref(B.conf.policy);
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

static struct policy *
pol(const char *name, const char *text)
{
    char err[512];
    struct policy *p = policytest_load_text(tmpdir, name, text, err, sizeof(err));

    if (p == NULL)
        fail_msg("%s", err);
    return p;
}

static const char deny_a[] = "policy = { domains = ( { name = \"no-a\"; match = \"a.test\"; "
                             "federate = \"deny\"; } ); };\n";
static const char deny_b[] = "policy = { domains = ( { name = \"no-b\"; match = \"b.test\"; "
                             "federate = \"deny\"; } ); };\n";

static bool
no_in_sessions(void *arg)
{
    return router_inbound_sessions(arg) == 0;
}

/* B denies a.test; A authenticates with SASL EXTERNAL: B closes the stream with
 * policy-violation, nothing reaches B's users, A's sender gets an error. */
static void
test_denied_remote_sasl(void **state)
{
    uint64_t refused = s2s_stats.policy_refused, in0 = s2s_stats.in_accepted;

    (void)state;
    B.conf.policy = pol("b1.conf", deny_a);
    side_start(&A, a_ctx);
    side_start(&B, b_ctx);
    router_outbound(A.r, msg("u@a.test/r", "v@b.test"));
    wait_got(&A, 1);
    assert_string_equal(A.last_type, "error");
    assert_string_equal(A.last_to, "u@a.test/r");
    assert_int_equal(B.got, 0);
    assert_int_equal(s2s_stats.in_accepted, in0);
    assert_true(s2s_stats.policy_refused > refused);
    assert_true(xp_run_until(base, no_in_sessions, B.r, 10)); /* the stream was closed */
}

/* The same with dialback: B refuses only the pair (XEP-0220 error), A's sender gets an
 * error, nothing is delivered. */
static void
test_denied_remote_dialback(void **state)
{
    uint64_t refused = s2s_stats.policy_refused;

    (void)state;
    B.conf.policy = pol("b2.conf", deny_a);
    side_start(&A, a_bad);
    side_start(&B, b_ctx);
    router_outbound(A.r, msg("u@a.test/r", "v@b.test"));
    wait_got(&A, 1);
    assert_string_equal(A.last_type, "error");
    assert_int_equal(B.got, 0);
    assert_true(s2s_stats.policy_refused > refused);
}

/* A denies b.test: its user's message bounces with not-allowed, no stream is opened. */
static void
test_local_to_denied_bounces(void **state)
{
    uint64_t acc = s2s_stats.out_accepted, bounced = s2s_stats.out_bounced;

    (void)state;
    A.conf.policy = pol("a1.conf", deny_b);
    side_start(&A, a_ctx);
    side_start(&B, b_ctx);
    router_outbound(A.r, msg("u@a.test/r", "v@b.test"));
    wait_got(&A, 1);
    assert_string_equal(A.last_type, "error");
    assert_string_equal(A.last_cond, "not-allowed");
    assert_int_equal(B.got, 0);
    assert_int_equal(pool_streams(router_pool(A.r)), 0);
    assert_int_equal(s2s_stats.out_accepted, acc + 1);
    assert_int_equal(s2s_stats.out_bounced, bounced + 1);
}

/* A stanza rule drops every outbound message: counted (accepted = delivered + bounced +
 * dropped), logged by the policy, nothing sent and no route made. */
static void
test_drop_rule_counted(void **state)
{
    uint64_t acc = s2s_stats.out_accepted, dropped = s2s_stats.out_dropped,
             pdropped = s2s_stats.policy_dropped;

    (void)state;
    A.conf.policy = pol("a2.conf", "policy = { stanzas = ( { name = \"quiet\"; direction = "
                                   "\"out\"; kind = \"message\"; action = \"drop\"; } ); };\n");
    side_start(&A, a_ctx);
    side_start(&B, b_ctx);
    router_outbound(A.r, msg("u@a.test/r", "v@b.test"));
    assert_int_equal(s2s_stats.out_accepted, acc + 1);
    assert_int_equal(s2s_stats.out_dropped, dropped + 1);
    assert_int_equal(s2s_stats.policy_dropped, pdropped + 1);
    assert_int_equal(pool_routes(router_pool(A.r)), 0);
    assert_int_equal(A.got, 0);
}

#define RATE_N 12

/* B limits a.test to 20 stanzas/s (burst 2): B stops reading A's stream when over, so
 * all RATE_N arrive (nothing lost) and no faster than the rate allows. */
static void
test_inbound_rate_pauses(void **state)
{
    uint64_t paused = s2s_stats.policy_paused;
    double t0, dt, expect = (RATE_N - 2) / 20.0 * 1e3;

    (void)state;
    B.conf.policy = pol("b3.conf", "policy = { rate = { stanzas = 20; stanza_burst = 2; }; };\n");
    side_start(&A, a_ctx);
    side_start(&B, b_ctx);
    router_outbound(A.r, msg("u@a.test/r", "v@b.test"));
    wait_got(&B, 1);
    t0 = now_ms();
    for (int i = 1; i < RATE_N; i++)
        router_outbound(A.r, msg("u@a.test/r", "v@b.test"));
    wait_got(&B, RATE_N);
    dt = now_ms() - t0;
    printf("# inbound 20/s burst 2: %d stanzas in %.0f ms (at least %.0f expected)\n", RATE_N, dt,
           expect * 0.8);
    assert_int_equal(B.got, RATE_N);
    assert_true(dt >= expect * 0.8);
    assert_true(dt <= expect * 2.5); /* paused, not stalled */
    assert_true(s2s_stats.policy_paused > paused);
    assert_int_equal(A.got, 0); /* nothing bounced */
}

/* XEP-0288: B's answers come back over A's own stream (no inbound session at A to
 * pause): A's inbound rate for b.test still holds them, and delivers every one. */
static void
test_bidi_inbound_rate(void **state)
{
    uint64_t held = s2s_stats.policy_held;
    double t0, dt, expect = (RATE_N - 2) / 20.0 * 1e3;

    (void)state;
    A.conf.policy = pol("a4.conf", "policy = { rate = { stanzas = 20; stanza_burst = 2; }; };\n");
    side_start(&A, a_ctx);
    side_start(&B, b_ctx);
    router_outbound(A.r, msg("u@a.test/r", "v@b.test"));
    wait_got(&B, 1);
    t0 = now_ms();
    for (int i = 0; i < RATE_N; i++)
        router_outbound(B.r, msg("v@b.test", "u@a.test/r"));
    wait_got(&A, RATE_N);
    dt = now_ms() - t0;
    printf("# bidi inbound 20/s burst 2: %d stanzas in %.0f ms (at least %.0f expected)\n", RATE_N,
           dt, expect * 0.8);
    assert_int_equal(pool_streams(router_pool(B.r)), 0); /* it came over A's stream */
    assert_true(dt >= expect * 0.8);
    assert_true(dt <= expect * 2.5);
    assert_true(s2s_stats.policy_held > held);
    assert_string_equal(A.last_type, ""); /* a message without type, not an error */
}

/* A limits its own traffic to b.test: the route's queue is held, all delivered. */
static void
test_outbound_rate_holds(void **state)
{
    uint64_t held = s2s_stats.policy_held;
    double t0, dt, expect = (RATE_N - 2) / 20.0 * 1e3;

    (void)state;
    A.conf.policy = pol("a3.conf", "policy = { rate = { stanzas = 20; stanza_burst = 2; }; };\n");
    side_start(&A, a_ctx);
    side_start(&B, b_ctx);
    t0 = now_ms();
    for (int i = 0; i < RATE_N; i++)
        router_outbound(A.r, msg("u@a.test/r", "v@b.test"));
    wait_got(&B, RATE_N);
    dt = now_ms() - t0;
    printf("# outbound 20/s burst 2: %d stanzas in %.0f ms (at least %.0f expected)\n", RATE_N, dt,
           expect * 0.8);
    assert_true(dt >= expect * 0.8);
    assert_true(dt <= expect * 2.5 + 500); /* + route set-up */
    assert_true(s2s_stats.policy_held > held);
    assert_int_equal(A.got, 0);
}

/* A reload on B: a policy that denies another domain leaves A's stream alone; one that
 * denies a.test closes it. */
static void
test_reload_recheck(void **state)
{
    struct conf c1, c2;

    (void)state;
    side_start(&A, a_ctx);
    side_start(&B, b_ctx);
    router_outbound(A.r, msg("u@a.test/r", "v@b.test"));
    wait_got(&B, 1);
    assert_int_equal(router_inbound_sessions(B.r), 1);

    c1 = B.conf;
    c1.policy = pol("b4.conf", "policy = { domains = ( { match = \"spam.test\"; federate = "
                               "\"deny\"; } ); };\n");
    router_reconfigure(B.r, &c1, b_ctx);
    router_outbound(A.r, msg("u@a.test/r", "v@b.test"));
    wait_got(&B, 2);
    assert_int_equal(router_inbound_sessions(B.r), 1);

    c2 = B.conf;
    c2.policy = pol("b5.conf", deny_a);
    router_reconfigure(B.r, &c2, b_ctx);
    assert_true(xp_run_until(base, no_in_sessions, B.r, 10));
    router_reconfigure(B.r, &B.conf, b_ctx);
    policy_unref(c1.policy);
    policy_unref(c2.policy);
}

static bool
a2_not_ready(void *arg)
{
    (void)arg;
    return !pool_route_ready(router_pool(A.r), "a2.test", "b.test");
}

/* Issue 7: A hosts a.test and a2.test and multiplexes both pairs on one dialback stream
 * to B. A reload on B that denies a2.test refuses only that pair (db:result error): the
 * stream lives on and carries a.test; A's a2.test route leaves the stream, and its next
 * stanza bounces to its sender instead of being delivered. */
static void
test_reload_refuses_one_pair(void **state)
{
    static struct conf_host hosts[2];
    static struct conf c1; /* the router may still point at it if an assertion fails */
    struct router_sink sink = {sink_send, &A};
    uint64_t refused;

    (void)state;
    hosts[0].domain = "a.test";
    hosts[1].domain = "a2.test";
    A.conf.hosts = hosts;
    A.conf.nhosts = 2;
    side_start(&A, a_bad); /* no certificate B trusts: dialback */
    side_start(&B, b_ctx);
    router_set_sink(A.r, "a2.test", &sink);
    router_outbound(A.r, msg("u@a.test/r", "v@b.test"));
    wait_got(&B, 1);
    router_outbound(A.r, msg("w@a2.test/r", "v@b.test"));
    wait_got(&B, 2);
    assert_int_equal(pool_streams(router_pool(A.r)), 1); /* both pairs on one stream */
    assert_int_equal(router_inbound_sessions(B.r), 1);

    c1 = B.conf;
    c1.policy = pol("b6.conf", "policy = { domains = ( { name = \"no-a2\"; match = "
                               "\"a2.test\"; federate = \"deny\"; } ); };\n");
    refused = s2s_stats.policy_refused;
    router_reconfigure(B.r, &c1, b_ctx);
    assert_true(s2s_stats.policy_refused > refused);
    assert_true(xp_run_until(base, a2_not_ready, NULL, 10));

    router_outbound(A.r, msg("u@a.test/r", "v@b.test"));
    wait_got(&B, 3);
    assert_int_equal(router_inbound_sessions(B.r), 1); /* the stream lived on */
    assert_int_equal(A.got, 0);

    router_outbound(A.r, msg("w@a2.test/r", "v@b.test"));
    wait_got(&A, 1);
    assert_string_equal(A.last_type, "error");
    assert_string_equal(A.last_to, "w@a2.test/r");
    assert_int_equal(B.got, 3);
    router_reconfigure(B.r, &B.conf, b_ctx);
    policy_unref(c1.policy);
}

static void
list_write(const char *name, const char *mode, const char *text)
{
    char path[128];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    assert_non_null(f = fopen(path, mode));
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

static bool
b_denies_a2(void *arg)
{
    struct policy_decision d;

    (void)arg;
    return policy_check_route(B.conf.policy, "b.test", "a2.test", &d) != POLICY_PASS;
}

/* Issue 7: a block list file changed on disk, no SIGHUP, no reload: B's timer re-reads it
 * and new traffic from the domain appended is refused (A's pooled a2.test pair gets a
 * dialback error, its own stream too, and its sender a bounce), while the live stream of
 * a.test is untouched and still delivers. */
static void
test_list_file_watched(void **state)
{
    static struct conf_host hosts[2];
    struct router_sink sink = {sink_send, &A};

    (void)state;
    list_write("b7.txt", "w", "# community block list\nspam.test\n");
    B.conf.policy = pol("b7.conf", "policy = { list_check_interval = 0.05; domains = ( { name "
                                   "= \"bl\"; list = \"b7.txt\"; federate = \"deny\"; } ); "
                                   "};\n");
    hosts[0].domain = "a.test";
    hosts[1].domain = "a2.test";
    A.conf.hosts = hosts;
    A.conf.nhosts = 2;
    side_start(&A, a_bad);
    side_start(&B, b_ctx);
    router_set_sink(A.r, "a2.test", &sink);
    router_outbound(A.r, msg("u@a.test/r", "v@b.test"));
    wait_got(&B, 1);
    assert_false(b_denies_a2(NULL));

    list_write("b7.txt", "a", "a2.test\n");
    assert_true(xp_run_until(base, b_denies_a2, NULL, 10)); /* the timer re-read it */

    router_outbound(A.r, msg("w@a2.test/r", "v@b.test"));
    wait_got(&A, 1);
    assert_string_equal(A.last_type, "error");
    assert_string_equal(A.last_to, "w@a2.test/r");
    assert_int_equal(B.got, 1);

    router_outbound(A.r, msg("u@a.test/r", "v@b.test"));
    wait_got(&B, 2);
}

static uint64_t held_since;

static bool
held_more(void *arg)
{
    (void)arg;
    return s2s_stats.policy_held > held_since;
}

static bool
a2_queue_empty(void *arg)
{
    (void)arg;
    return pool_queued(router_pool(A.r), "a2.test", "b.test") == 0;
}

/* Issue 7, policy max_streams outbound: A may have one stream to b.test. B accepts one
 * dialback pair per stream, so a2.test cannot ride on a.test's stream: its stanzas wait
 * (limits.queue_stanzas = 3), the rest bounce resource-constraint, and when a.test's
 * stream goes idle and closes, a2.test gets the slot and delivers what waited. */
static void
test_outbound_max_streams(void **state)
{
    static struct conf_host hosts[2];
    struct router_sink sink = {sink_send, &A};
    uint64_t held = s2s_stats.policy_held;

    (void)state;
    A.conf.policy = pol("a5.conf", "policy = { domains = ( { match = \"b.test\"; max_streams "
                                   "= 1; } ); };\n");
    hosts[0].domain = "a.test";
    hosts[1].domain = "a2.test";
    A.conf.hosts = hosts;
    A.conf.nhosts = 2;
    A.conf.limits.queue_stanzas = 3;
    A.conf.timeouts.route_idle = 1;
    B.conf.limits.dialback_pairs = 1;
    side_start(&A, a_bad);
    side_start(&B, b_ctx);
    router_set_sink(A.r, "a2.test", &sink);
    router_outbound(A.r, msg("u@a.test/r", "v@b.test"));
    wait_got(&B, 1);

    for (int i = 0; i < 5; i++)
        router_outbound(A.r, msg("w@a2.test/r", "v@b.test"));
    wait_got(&A, 2); /* two bounced: the queue holds three */
    assert_string_equal(A.last_cond, "resource-constraint");
    assert_string_equal(A.last_to, "w@a2.test/r");
    held_since = held;
    assert_true(xp_run_until(base, held_more, NULL, 10)); /* B refused the pooled pair */
    assert_int_equal(pool_queued(router_pool(A.r), "a2.test", "b.test"), 3);
    assert_int_equal(pool_streams(router_pool(A.r)), 1); /* no second stream */
    assert_int_equal(B.got, 1);

    /* a.test's stream closes when idle: the slot goes to a2.test */
    assert_true(xp_run_until(base, a2_queue_empty, NULL, 10));
    wait_got(&B, 4);
    assert_int_equal(A.got, 2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_denied_remote_sasl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_denied_remote_dialback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_local_to_denied_bounces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drop_rule_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inbound_rate_pauses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbound_rate_holds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bidi_inbound_rate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_recheck, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_refuses_one_pair, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_file_watched, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbound_max_streams, setup, teardown),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
