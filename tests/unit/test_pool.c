/*
 * s2s/pool.c with a scripted DNS step and real streams: the remote side is our inbound
 * session (s2s/in.c) behind a real listener (s2s/listen.c) hosting b.test. Proves:
 * queueing while a route is set up and the flush in order, the queue bound
 * (resource-constraint), bounces with the right condition on DNS failure
 * (remote-server-not-found), connect failure and silence (remote-server-timeout), that
 * errors are never bounced, the backoff doubling per remote domain and immediate bounces
 * while it runs, two routes to one remote, and db:verify through the pool.
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
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "dialback/key.h"
#include "s2s/in.h"
#include "s2s/listen.h"
#include "s2s/out.h"
#include "s2s/pool.h"
#include "s2s/sockaddr.h"
#include "s2s/stats.h"
#include "s2s/tls.h"
#include "tests/unit/helpers/testca.h"
#include "tests/unit/helpers/xpeer.h"

#define SECRET_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SECRET_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static struct testca *ca;
static struct tls_ctx *a_ctx, *b_ctx;

static struct event_base *base;
static struct conf conf;
static struct pool *pool;
static struct listen *lis;
static uint16_t b_port, closed_port, silent_port, eof_port;
static struct evconnlistener *eof_lis;
static int silent_fd;

static struct in_session *ins[8];
static size_t nins;

static struct {
    unsigned bounces, delivered, verdicts, dns_queries;
    char bounce_cond[8][64];
    char got_ids[16][16];
    enum dialback_type vtype;
} ev;

/* --- the remote side: in sessions for b.test ------------------------------------------- */

static bool
i_hosted(const char *d, void *arg)
{
    (void)arg;
    return strcmp(d, "b.test") == 0;
}

static void
i_stanza(struct in_session *s, struct stanza *st, void *arg)
{
    const char *id = stanza_attr(st, "id");

    (void)s;
    (void)arg;
    if (ev.delivered < 16)
        snprintf(ev.got_ids[ev.delivered], sizeof(ev.got_ids[0]), "%s", id ? id : "");
    ev.delivered++;
    stanza_free(st);
}

static void
i_verify(struct in_session *s, const char *local, const char *remote, const char *id,
         const char *key, void *arg)
{
    bool ok = dialback_key_check(SECRET_A, local, remote, id, key, strlen(key));

    (void)arg;
    in_dialback_verdict(s, local, remote, ok ? DIALBACK_TYPE_VALID : DIALBACK_TYPE_INVALID,
                        DIALBACK_OK);
}

static void
i_closed(struct in_session *s, void *arg)
{
    (void)arg;
    for (size_t i = 0; i < nins; i++)
        if (ins[i] == s)
            ins[i] = NULL;
}

static const struct in_cbs icbs = {i_hosted, NULL, i_stanza, i_verify, NULL, i_closed, NULL, NULL};

static void
on_accept(struct conn *c, bool direct, struct listen_slot *slot, void *arg)
{
    struct in_opts o = {0};

    (void)direct;
    (void)arg;
    listen_slot_release(lis, slot); /* the bound is not under test here */
    o.tls = b_ctx;
    o.require_tls = true;
    o.dialback = true;
    o.dialback_secret = SECRET_B;
    assert_true(nins < 8);
    ins[nins++] = in_new(base, c, &o, &icbs);
}

/* --- scripted DNS ---------------------------------------------------------------------- */

struct fake_req {
    struct event *ev;
    dns_targets_fn cb;
    void *arg;
    char domain[64];
};

static struct dns_targets *
targets_for(const char *domain)
{
    struct dns_targets *t = calloc(1, sizeof(*t));
    uint16_t port = strcmp(domain, "closed.test") == 0   ? closed_port
                    : strcmp(domain, "silent.test") == 0 ? silent_port
                                                         : b_port;

    snprintf(t->domain, sizeof(t->domain), "%s", domain);
    if (strcmp(domain, "two.test") == 0) {
        /* the first target hangs up at once, the second is b.test's server */
        t->status = DNS_OK;
        t->ntargets = 2;
        t->targets = calloc(2, sizeof(*t->targets));
        for (int i = 0; i < 2; i++) {
            snprintf(t->targets[i].host, sizeof(t->targets[i].host), "%s",
                     i ? "b.test" : "eof.test");
            t->targets[i].port = i ? b_port : eof_port;
            t->targets[i].naddrs = 1;
            t->targets[i].addrs[0].family = AF_INET;
            memcpy(t->targets[i].addrs[0].addr, "\x7f\x00\x00\x01", 4);
        }
        return t;
    }
    if (strncmp(domain, "nx", 2) == 0) { /* nx.test, nx17.test, ... */
        t->status = DNS_NXDOMAIN;
        snprintf(t->error, sizeof(t->error), "%s: no such domain", domain);
        return t;
    }
    t->status = DNS_OK;
    t->fallback = true;
    t->ntargets = 1;
    t->targets = calloc(1, sizeof(*t->targets));
    snprintf(t->targets[0].host, sizeof(t->targets[0].host), "%s", domain);
    t->targets[0].port = port;
    t->targets[0].naddrs = 1;
    t->targets[0].addrs[0].family = AF_INET;
    memcpy(t->targets[0].addrs[0].addr, "\x7f\x00\x00\x01", 4);
    return t;
}

static void
fake_fire(evutil_socket_t fd, short what, void *arg)
{
    struct fake_req *r = arg;
    dns_targets_fn cb = r->cb;
    void *cbarg = r->arg;
    struct dns_targets *t = targets_for(r->domain);

    (void)fd;
    (void)what;
    event_free(r->ev);
    free(r);
    cb(t, cbarg);
}

static void *
fake_resolve(void *ctx, const char *domain, dns_targets_fn cb, void *arg)
{
    struct fake_req *r = calloc(1, sizeof(*r));
    struct timeval now = {0, 0};

    (void)ctx;
    ev.dns_queries++;
    r->cb = cb;
    r->arg = arg;
    snprintf(r->domain, sizeof(r->domain), "%s", domain);
    r->ev = evtimer_new(base, fake_fire, r);
    evtimer_add(r->ev, &now);
    return r;
}

static void
fake_cancel(void *req)
{
    struct fake_req *r = req;

    event_free(r->ev);
    free(r);
}

/* --- the local side: bounces ----------------------------------------------------------- */

static void
bounce_take(struct stanza *st, void *arg)
{
    struct stanza_elem *e = stanza_elem_child(stanza_root(st), NULL, "error");
    struct stanza_elem *c = e ? stanza_elem_first(e) : NULL;

    (void)arg;
    assert_string_equal(stanza_attr(st, "type"), "error");
    assert_non_null(c);
    if (ev.bounces < 8)
        snprintf(ev.bounce_cond[ev.bounces], sizeof(ev.bounce_cond[0]), "%s", c->name);
    ev.bounces++;
    stanza_free(st);
}

static struct stanza *
msg(const char *from, const char *to, const char *id)
{
    struct stanza *st = stanza_new(STANZA_NS_COMPONENT, "message");

    stanza_elem_set_attr(st, stanza_root(st), NULL, "from", from);
    stanza_elem_set_attr(st, stanza_root(st), NULL, "to", to);
    if (id != NULL)
        stanza_elem_set_attr(st, stanza_root(st), NULL, "id", id);
    return st;
}

static unsigned want;

static bool
delivered_cond(void *arg)
{
    (void)arg;
    return ev.delivered >= want;
}

static bool
bounced_cond(void *arg)
{
    (void)arg;
    return ev.bounces >= want;
}

static void
wait_delivered(unsigned n)
{
    want = n;
    assert_true(xp_run_until(base, delivered_cond, NULL, 10));
}

static void
wait_bounced(unsigned n)
{
    want = n;
    assert_true(xp_run_until(base, bounced_cond, NULL, 10));
}

/* --- fixtures -------------------------------------------------------------------------- */

static int
group_setup(void **state)
{
    static const char *const a_dns[] = {"a.test", "a2.test", NULL};
    static const char *const b_dns[] = {"b.test", NULL};
    const struct testca_leaf a = {.dns = a_dns}, b = {.dns = b_dns};
    struct testca_files fa, fb;
    struct tls_settings s = {0};
    struct tls_host h[2];
    char err[512];

    (void)state;
    signal(SIGPIPE, SIG_IGN);
    if ((ca = testca_new("Pool CA")) == NULL || testca_issue(ca, "a", &a, &fa) ||
        testca_issue(ca, "b", &b, &fb))
        return -1;
    s.ca_file = testca_cert(ca);
    h[0] = (struct tls_host){"a.test", fa.cert, fa.key};
    h[1] = (struct tls_host){"a2.test", fa.cert, fa.key};
    a_ctx = tls_ctx_new(&s, h, 2, err, sizeof(err));
    h[0] = (struct tls_host){"b.test", fb.cert, fb.key};
    b_ctx = tls_ctx_new(&s, h, 1, err, sizeof(err));
    return a_ctx && b_ctx ? 0 : -1;
}

static int
group_teardown(void **state)
{
    (void)state;
    tls_ctx_unref(a_ctx);
    tls_ctx_unref(b_ctx);
    testca_free(ca);
    return 0;
}

static void
eof_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    (void)l;
    (void)sa;
    (void)salen;
    (void)arg;
    close(fd);
}

static uint16_t
port_of(const struct sockaddr_storage *ss)
{
    return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

static int
setup(void **state)
{
    struct conf_addr a = {0};
    struct conf_listen li = {0};
    struct sockaddr_storage ss;
    socklen_t len;
    struct pool_dns dns = {fake_resolve, fake_cancel, NULL};
    struct pool_cbs cbs = {bounce_take, NULL, NULL};
    char err[256];
    int fd;

    (void)state;
    memset(&ev, 0, sizeof(ev));
    nins = 0;
    base = event_base_new();
    a.text = "127.0.0.1:0";
    sockaddr_from_ip("127.0.0.1", 0, &a.sa, &a.salen);
    li.starttls = &a;
    li.nstarttls = 1;
    lis = listen_new(base, &li, 100, on_accept, NULL, err, sizeof(err));
    assert_non_null(lis);
    listen_addr(lis, 0, &ss, &len);
    b_port = port_of(&ss);
    /* A port nobody listens on, and a listener that never accepts nor talks. */
    fd = xp_listen(&ss, &len);
    closed_port = port_of(&ss);
    close(fd);
    silent_fd = xp_listen(&ss, &len);
    silent_port = port_of(&ss);
    fd = xp_listen(&ss, &len);
    eof_port = port_of(&ss);
    evutil_make_socket_nonblocking(fd);
    eof_lis = evconnlistener_new(base, eof_accept, NULL, LEV_OPT_CLOSE_ON_FREE, -1, fd);

    memset(&conf, 0, sizeof(conf));
    conf.security.require_tls = true;
    conf.security.level = CONF_SEC_DEFAULT;
    conf.dialback.enabled = true;
    conf.dialback.secret = SECRET_A;
    conf.limits.stanza_bytes = 65536;
    conf.limits.xml_depth = 32;
    conf.limits.xml_attributes = 64;
    conf.limits.stream_header_bytes = 4096;
    conf.limits.queue_stanzas = 100;
    conf.limits.queue_bytes = 1 << 20;
    conf.timeouts.connect = 2;
    conf.timeouts.tls_handshake = 2;
    conf.timeouts.idle = 600;
    conf.timeouts.authenticate = 5;
    conf.timeouts.route_idle = 600;
    conf.timeouts.keepalive = 60;
    conf.timeouts.backoff_min = 0.2;
    conf.timeouts.backoff_max = 0.4;
    conf.timeouts.queue = 5;
    pool = pool_new(base, &conf, a_ctx, &dns, &cbs);
    return 0;
}

static bool
all_gone(void *arg)
{
    (void)arg;
    return out_count() == 0 && in_count() == 0 && conn_count() == 0;
}

static int
teardown(void **state)
{
    (void)state;
    pool_shutdown(pool);
    for (size_t i = 0; i < nins; i++)
        if (ins[i] != NULL)
            in_close(ins[i], -1, "test over");
    xp_run_until(base, all_gone, NULL, 10);
    assert_int_equal(out_count(), 0);
    assert_int_equal(in_count(), 0);
    pool_free(pool);
    listen_free(lis);
    evconnlistener_free(eof_lis);
    close(silent_fd);
    assert_int_equal(conn_count(), 0);
    event_base_free(base);
    return 0;
}

/* --- tests ----------------------------------------------------------------------------- */

static void
test_queue_and_flush_in_order(void **state)
{
    char id[16];

    (void)state;
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof(id), "m%d", i);
        pool_send(pool, "a.test", "b.test", msg("u@a.test", "v@b.test", id));
    }
    assert_int_equal(pool_queued(pool, "a.test", "b.test"), 5);
    assert_false(pool_route_ready(pool, "a.test", "b.test"));
    wait_delivered(5);
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof(id), "m%d", i);
        assert_string_equal(ev.got_ids[i], id);
    }
    assert_true(pool_route_ready(pool, "a.test", "b.test"));
    assert_int_equal(pool_queued(pool, "a.test", "b.test"), 0);
    /* READY: the next one goes straight out on the same stream. */
    pool_send(pool, "a.test", "b.test", msg("u@a.test", "v@b.test", "m5"));
    wait_delivered(6);
    assert_int_equal(pool_streams(pool), 1);
    assert_int_equal(ev.dns_queries, 1);
    assert_int_equal(ev.bounces, 0);
}

static void
test_queue_limit(void **state)
{
    (void)state;
    conf.limits.queue_stanzas = 2;
    pool_send(pool, "a.test", "b.test", msg("u@a.test", "v@b.test", "1"));
    pool_send(pool, "a.test", "b.test", msg("u@a.test", "v@b.test", "2"));
    pool_send(pool, "a.test", "b.test", msg("u@a.test", "v@b.test", "3"));
    assert_int_equal(ev.bounces, 1); /* at once, from inside pool_send */
    assert_string_equal(ev.bounce_cond[0], "resource-constraint");
    wait_delivered(2);
}

static void
test_dns_failure_bounces_all(void **state)
{
    uint64_t dropped = s2s_stats.out_dropped;
    struct stanza *err;

    (void)state;
    pool_send(pool, "a.test", "nx.test", msg("u@a.test", "v@nx.test", "1"));
    pool_send(pool, "a.test", "nx.test", msg("u@a.test/r", "nx.test", "2"));
    /* An error is never bounced: counted as dropped. */
    err = msg("u@a.test", "v@nx.test", "3");
    stanza_elem_set_attr(err, stanza_root(err), NULL, "type", "error");
    pool_send(pool, "a.test", "nx.test", err);
    wait_bounced(2);
    assert_string_equal(ev.bounce_cond[0], "remote-server-not-found");
    assert_string_equal(ev.bounce_cond[1], "remote-server-not-found");
    assert_int_equal(s2s_stats.out_dropped, dropped + 1);
    assert_true(pool_backoff(pool, "nx.test") > 0);
}

/* Many routes at once (the route index grows and shrinks under them): each stanza finds
 * its own route, so two stanzas for one domain make one DNS query, and every route is
 * forgotten after its bounces. */
static void
test_many_routes(void **state)
{
    enum { N = 300 };
    char to[64], dom[32];

    (void)state;
    for (int i = 0; i < N; i++) {
        snprintf(dom, sizeof(dom), "nx%d.test", i);
        snprintf(to, sizeof(to), "v@%s", dom);
        pool_send(pool, "a.test", dom, msg("u@a.test", to, "1"));
    }
    for (int i = N - 1; i >= 0; i--) {
        snprintf(dom, sizeof(dom), "nx%d.test", i);
        snprintf(to, sizeof(to), "w@%s", dom);
        pool_send(pool, "a.test", dom, msg("u@a.test", to, "2"));
    }
    assert_int_equal(ev.dns_queries, N);
    wait_bounced(2 * N);
    assert_string_equal(ev.bounce_cond[0], "remote-server-not-found");
    /* Later stanzas meet each domain's backoff on a fresh route: again one bounce each. */
    pool_send(pool, "a.test", "nx7.test", msg("u@a.test", "v@nx7.test", "3"));
    wait_bounced(2 * N + 1);
}

static void
test_connect_failure_timeout(void **state)
{
    (void)state;
    pool_send(pool, "a.test", "closed.test", msg("u@a.test", "v@closed.test", "1"));
    wait_bounced(1);
    assert_string_equal(ev.bounce_cond[0], "remote-server-timeout");
}

/* A server that accepts TCP and says nothing: the queue timeout bounces. */
static void
test_silent_remote_times_out(void **state)
{
    (void)state;
    conf.timeouts.queue = 0.3;
    pool_send(pool, "a.test", "silent.test", msg("u@a.test", "v@silent.test", "1"));
    wait_bounced(1);
    assert_string_equal(ev.bounce_cond[0], "remote-server-timeout");
}

/* Backoff per remote domain: min, then doubled, capped; bounces at once while it runs. */
static void
test_backoff_doubling(void **state)
{
    (void)state;
    pool_send(pool, "a.test", "nx.test", msg("u@a.test", "v@nx.test", "1"));
    wait_bounced(1);
    assert_true(pool_backoff(pool, "nx.test") == 0.2);
    pool_send(pool, "a.test", "nx.test", msg("u@a.test", "v@nx.test", "2"));
    assert_int_equal(ev.bounces, 2); /* immediate, no DNS query */
    assert_int_equal(ev.dns_queries, 1);
    xp_run_for(base, 250);
    pool_send(pool, "a.test", "nx.test", msg("u@a.test", "v@nx.test", "3"));
    wait_bounced(3);
    assert_int_equal(ev.dns_queries, 2);
    assert_true(pool_backoff(pool, "nx.test") == 0.4);
    xp_run_for(base, 450);
    pool_send(pool, "a.test", "nx.test", msg("u@a.test", "v@nx.test", "4"));
    wait_bounced(4);
    assert_true(pool_backoff(pool, "nx.test") == 0.4); /* backoff_max */
}

static void
test_two_routes_one_remote(void **state)
{
    (void)state;
    pool_send(pool, "a.test", "b.test", msg("u@a.test", "v@b.test", "x"));
    pool_send(pool, "a2.test", "b.test", msg("u@a2.test", "v@b.test", "y"));
    wait_delivered(2);
    assert_int_equal(pool_routes(pool), 2);
    assert_int_equal(pool_streams(pool), 2);
    assert_true(pool_route_ready(pool, "a2.test", "b.test"));
}

/* Backpressure: stanzas beyond the stream's write mark wait in the route's queue (still
 * bounded) instead of piling up in the connection, and leave in order once it drains. */
static void
test_backpressure_queues_in_order(void **state)
{
    static char body[32 * 1024];
    char id[16];
    bool queued = false;

    (void)state;
    memset(body, 'x', sizeof(body) - 1);
    conf.limits.queue_bytes = 64u << 20;
    pool_send(pool, "a.test", "b.test", msg("u@a.test", "v@b.test", "w0"));
    wait_delivered(1);
    for (int i = 1; i <= 96; i++) {
        struct stanza *st = msg("u@a.test", "v@b.test", NULL);

        snprintf(id, sizeof(id), "w%d", i);
        stanza_elem_set_attr(st, stanza_root(st), NULL, "id", id);
        stanza_elem_add_text(st, stanza_elem_add(st, stanza_root(st), NULL, "body"), body,
                             sizeof(body) - 1);
        pool_send(pool, "a.test", "b.test", st);
        queued = queued || pool_queued(pool, "a.test", "b.test") > 0;
    }
    assert_true(queued); /* 3 MiB in one go: the 1 MiB write mark was hit */
    wait_delivered(97);
    assert_string_equal(ev.got_ids[15], "w15");
    assert_int_equal(pool_queued(pool, "a.test", "b.test"), 0);
    assert_int_equal(ev.bounces, 0);
}

static bool
rider_gone(void *arg)
{
    (void)arg;
    return !pool_route_ready(pool, "a2.test", "b.test");
}

/* XEP-0220 pooling: once (a.test, b.test) is up, (a2.test, b.test) rides on its stream
 * (one more db:result, no new connection, no DNS query). */
static void
test_pooling_second_local_domain(void **state)
{
    (void)state;
    pool_send(pool, "a.test", "b.test", msg("u@a.test", "v@b.test", "p1"));
    wait_delivered(1);
    pool_send(pool, "a2.test", "b.test", msg("u@a2.test", "v@b.test", "p2"));
    pool_send(pool, "a2.test", "b.test", msg("u@a2.test", "v@b.test", "p3"));
    wait_delivered(3);
    assert_string_equal(ev.got_ids[1], "p2");
    assert_string_equal(ev.got_ids[2], "p3");
    assert_int_equal(pool_streams(pool), 1);
    assert_int_equal(ev.dns_queries, 1);
    assert_int_equal(nins, 1);
    assert_true(pool_route_ready(pool, "a2.test", "b.test"));
    /* The shared stream goes away: both routes go idle and come back on demand. */
    in_close(ins[0], -1, "test: peer closes");
    assert_true(xp_run_until(base, rider_gone, NULL, 10));
    assert_false(pool_route_ready(pool, "a.test", "b.test"));
    pool_send(pool, "a2.test", "b.test", msg("u@a2.test", "v@b.test", "p4"));
    wait_delivered(4);
    assert_string_equal(ev.got_ids[3], "p4");
    assert_int_equal(ev.bounces, 0);
}

static void
on_verdict(enum dialback_type type, enum dialback_cond cond, void *arg)
{
    (void)cond;
    (void)arg;
    ev.verdicts++;
    ev.vtype = type;
}

static bool
verdicts_cond(void *arg)
{
    return ev.verdicts >= *(unsigned *)arg;
}

static void
test_dialback_verify(void **state)
{
    char key[DIALBACK_KEY_BUFSIZE];
    unsigned n = 2;

    (void)state;
    assert_int_equal(dialback_key_make(SECRET_B, "a.test", "b.test", "S9", key), 0);
    /* Two identical requests share one <db:verify/>; both get the answer. */
    assert_non_null(pool_dialback_verify(pool, "a.test", "b.test", "S9", key, on_verdict, NULL));
    assert_non_null(pool_dialback_verify(pool, "a.test", "b.test", "S9", key, on_verdict, NULL));
    assert_true(xp_run_until(base, verdicts_cond, &n, 10));
    assert_int_equal(ev.vtype, DIALBACK_TYPE_VALID);
    n = 3;
    assert_non_null(pool_dialback_verify(pool, "a.test", "nx.test", "S9", key, on_verdict, NULL));
    assert_true(xp_run_until(base, verdicts_cond, &n, 10));
    assert_int_equal(ev.vtype, DIALBACK_TYPE_ERROR);
}

/* The first target hangs up after connect: the route goes on to the second target
 * (b.test's server, which does not host two.test and says host-unknown: the route then
 * fails with remote-server-not-found, but only after reaching the second target). */
static void
test_next_target_after_stream_failure(void **state)
{
    (void)state;
    pool_send(pool, "a.test", "two.test", msg("u@a.test", "v@two.test", "t1"));
    wait_bounced(1);
    assert_int_equal(ev.dns_queries, 1);
    assert_true(nins >= 1); /* b.test's listener saw the second attempt */
    assert_string_equal(ev.bounce_cond[0], "remote-server-not-found");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_queue_and_flush_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dns_failure_bounces_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_failure_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_silent_remote_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backoff_doubling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_routes_one_remote, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pooling_second_local_domain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backpressure_queues_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dialback_verify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_next_target_after_stream_failure, setup, teardown),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
