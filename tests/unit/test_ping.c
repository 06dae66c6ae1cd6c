/*
 * XEP-0199 pings on stale outbound streams.
 *
 * s2s/ping.c alone, with an injected clock (the timer is never run; ping_check() is what
 * it would run): no ping without outbound traffic or while the remote talks, a ping
 * after `interval` of one-way traffic with the right shape, result and error answers
 * end the wait and are intercepted, unrelated traffic does not, the stale verdict after
 * `answer`, late answers intercepted, foreign iq responses left alone, 0 = off.
 *
 * Then two proxies in one process (tests/unit/helpers/twoproxy.h: router A hosting a.test,
 * router B hosting b.test) with short timeouts on A: B's local side answers pings -> A keeps
 * its stream, over two ping rounds, and the answer never reaches A's local sink (both
 * when it comes back over A's own stream with XEP-0288 and over B's stream into A);
 * B's local side stays silent -> A closes the stream after ping + ping_answer, says so
 * in the log, and the next stanza opens a new stream and is delivered.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "s2s/log.h"
#include "s2s/ping.h"
#include "s2s/router.h"
#include "s2s/stats.h"
#include "tests/unit/helpers/twoproxy.h"

/* --- ping.c alone ---------------------------------------------------------------------- */

static struct {
    uint64_t now;
    unsigned sent, stale;
    int send_rc;
    char id[64], type[16], from[64], to[64], child_ns[64];
    char why[200];
} u;

static uint64_t
u_now(void *arg)
{
    (void)arg;
    return u.now;
}

static int
u_send(void *arg, struct stanza *st)
{
    struct stanza_elem *c = stanza_elem_first(stanza_root(st));

    (void)arg;
    u.sent++;
    snprintf(u.id, sizeof(u.id), "%s", stanza_attr(st, "id"));
    snprintf(u.type, sizeof(u.type), "%s", stanza_attr(st, "type"));
    snprintf(u.from, sizeof(u.from), "%s", stanza_attr(st, "from"));
    snprintf(u.to, sizeof(u.to), "%s", stanza_attr(st, "to"));
    snprintf(u.child_ns, sizeof(u.child_ns), "%s:%s", c ? c->ns : "", c ? c->name : "");
    stanza_free(st);
    return u.send_rc;
}

static void
u_stale(void *arg, const char *why)
{
    (void)arg;
    u.stale++;
    snprintf(u.why, sizeof(u.why), "%s", why);
}

static struct event_base *ubase;

static struct ping *
u_ping(void)
{
    struct ping_cbs cbs = {u_send, u_stale, u_now, NULL};

    memset(&u, 0, sizeof(u));
    u.now = 1000000;
    return ping_new(ubase, "a.test", "b.test", &cbs);
}

static struct stanza *
iq(const char *type, const char *from, const char *to, const char *id)
{
    struct stanza *st = stanza_new(STANZA_NS_SERVER, "iq");

    stanza_elem_set_attr(st, stanza_root(st), NULL, "type", type);
    stanza_elem_set_attr(st, stanza_root(st), NULL, "from", from);
    stanza_elem_set_attr(st, stanza_root(st), NULL, "to", to);
    stanza_elem_set_attr(st, stanza_root(st), NULL, "id", id);
    return st;
}

static bool
heard(struct ping *pg, struct stanza *st)
{
    bool b = ping_heard(pg, st);

    stanza_free(st);
    return b;
}

static int
u_setup(void **state)
{
    (void)state;
    ubase = event_base_new();
    return ubase != NULL ? 0 : -1;
}

static int
u_teardown(void **state)
{
    (void)state;
    event_base_free(ubase);
    return 0;
}

static void
test_no_traffic_no_ping(void **state)
{
    struct ping *pg = u_ping();

    (void)state;
    u.now += 3600000;
    ping_check(pg);
    assert_int_equal(u.sent, 0);
    assert_false(ping_waiting(pg));
    ping_free(pg);
}

static void
test_ping_after_interval_then_result(void **state)
{
    struct ping *pg = u_ping();
    uint64_t answered = ping_counts.answered;
    char id[64];

    (void)state;
    ping_wrote(pg, 60, 15);
    u.now += 30000;
    ping_wrote(pg, 60, 15); /* the clock runs from the first unanswered stanza */
    u.now += 29999;
    ping_check(pg);
    assert_int_equal(u.sent, 0);
    u.now += 1;
    ping_check(pg);
    assert_int_equal(u.sent, 1);
    assert_true(ping_waiting(pg));
    /* XEP-0199 §4.2 */
    assert_string_equal(u.type, "get");
    assert_string_equal(u.from, "a.test");
    assert_string_equal(u.to, "b.test");
    assert_string_equal(u.child_ns, PING_NS ":ping");
    assert_memory_equal(u.id, PING_ID_PREFIX, strlen(PING_ID_PREFIX));
    snprintf(id, sizeof(id), "%s", u.id);
    /* not the answer: wrong type, wrong sender, a full JID, another id */
    assert_false(heard(pg, iq("get", "b.test", "a.test", id)));
    assert_false(heard(pg, iq("result", "b.test", "a.test", "abc")));
    assert_false(heard(pg, iq("result", "u@b.test", "a.test", id)));
    assert_false(heard(pg, iq("result", "b.test", "a.test/r", id)));
    assert_true(ping_waiting(pg));
    /* the answer, a little before the deadline */
    u.now += 14999;
    ping_check(pg);
    assert_int_equal(u.stale, 0);
    assert_true(heard(pg, iq("result", "b.test", "a.test", id)));
    assert_false(ping_waiting(pg));
    assert_int_equal(ping_counts.answered, answered + 1);
    u.now += 3600000;
    ping_check(pg);
    assert_int_equal(u.stale, 0);
    assert_int_equal(u.sent, 1); /* nothing written since: no ping */
    /* the same id again is a late answer: still ours, not the local server's */
    assert_true(heard(pg, iq("result", "b.test", "a.test", id)));
    ping_free(pg);
}

/* A server without XEP-0199 answers with an error (service-unavailable): alive too. */
static void
test_error_answer_counts(void **state)
{
    struct ping *pg = u_ping();

    (void)state;
    ping_wrote(pg, 1, 1);
    u.now += 1000;
    ping_check(pg);
    assert_int_equal(u.sent, 1);
    assert_true(heard(pg, iq("error", "B.test", "a.test", u.id)));
    assert_false(ping_waiting(pg));
    u.now += 5000;
    ping_check(pg);
    assert_int_equal(u.stale, 0);
    ping_free(pg);
}

static void
test_no_answer_is_stale(void **state)
{
    struct ping *pg = u_ping();
    struct stanza *m = stanza_new(STANZA_NS_SERVER, "message");
    uint64_t stale = ping_counts.stale;

    (void)state;
    ping_wrote(pg, 60, 15);
    u.now += 60000;
    ping_check(pg);
    assert_int_equal(u.sent, 1);
    /* other traffic from the remote does not end the wait */
    stanza_elem_set_attr(m, stanza_root(m), NULL, "from", "u@b.test");
    stanza_elem_set_attr(m, stanza_root(m), NULL, "to", "v@a.test");
    assert_false(heard(pg, m));
    ping_wrote(pg, 60, 15);
    u.now += 14999;
    ping_check(pg);
    assert_int_equal(u.stale, 0);
    u.now += 1;
    ping_check(pg);
    assert_int_equal(u.stale, 1);
    assert_non_null(strstr(u.why, "no answer to XEP-0199 ping"));
    assert_int_equal(ping_counts.stale, stale + 1);
    assert_false(ping_waiting(pg));
    /* forgotten: no second verdict */
    u.now += 3600000;
    ping_check(pg);
    assert_int_equal(u.stale, 1);
    assert_int_equal(u.sent, 1);
    ping_free(pg);
}

/* Traffic from the remote before a ping is due: no ping (a busy two-way route). */
static void
test_remote_traffic_resets_clock(void **state)
{
    struct ping *pg = u_ping();
    struct stanza *m = stanza_new(STANZA_NS_SERVER, "message");

    (void)state;
    ping_wrote(pg, 60, 15);
    u.now += 50000;
    stanza_elem_set_attr(m, stanza_root(m), NULL, "from", "u@b.test");
    stanza_elem_set_attr(m, stanza_root(m), NULL, "to", "v@a.test");
    assert_false(heard(pg, m));
    u.now += 10000;
    ping_check(pg);
    assert_int_equal(u.sent, 0);
    ping_wrote(pg, 60, 15); /* the clock starts again here */
    u.now += 59999;
    ping_check(pg);
    assert_int_equal(u.sent, 0);
    u.now += 1;
    ping_check(pg);
    assert_int_equal(u.sent, 1);
    ping_free(pg);
}

static void
test_off_stop_and_unwritable(void **state)
{
    struct ping *pg = u_ping();

    (void)state;
    ping_wrote(pg, 0, 15); /* timeouts.ping = 0 */
    u.now += 3600000;
    ping_check(pg);
    assert_int_equal(u.sent, 0);
    /* the stream went away: the clock is forgotten */
    ping_wrote(pg, 1, 1);
    ping_stop(pg);
    u.now += 5000;
    ping_check(pg);
    assert_int_equal(u.sent, 0);
    /* a ping that cannot be written waits for nothing */
    u.send_rc = -1;
    ping_wrote(pg, 1, 1);
    u.now += 1000;
    ping_check(pg);
    assert_int_equal(u.sent, 1);
    assert_false(ping_waiting(pg));
    u.now += 5000;
    ping_check(pg);
    assert_int_equal(u.stale, 0);
    ping_free(pg);
}

/* Without a route (pg NULL): our ids are intercepted, anything else is not. */
static void
test_ids_and_foreign_responses(void **state)
{
    struct ping *pg = u_ping();
    char id1[64];

    (void)state;
    ping_wrote(pg, 1, 1);
    u.now += 1000;
    ping_check(pg);
    snprintf(id1, sizeof(id1), "%s", u.id);
    assert_true(heard(pg, iq("result", "b.test", "a.test", id1)));
    ping_wrote(pg, 1, 1);
    u.now += 1000;
    ping_check(pg);
    assert_string_not_equal(id1, u.id);
    /* a late answer to the first ping does not answer the second one */
    assert_true(heard(pg, iq("result", "b.test", "a.test", id1)));
    assert_true(ping_waiting(pg));
    assert_true(heard(NULL, iq("result", "c.test", "a.test", id1)));
    assert_false(heard(NULL, iq("result", "c.test", "a.test", PING_ID_PREFIX "0")));
    assert_false(heard(NULL, iq("result", "c.test", "a.test", PING_ID_PREFIX "99999999999")));
    assert_false(heard(NULL, iq("result", "c.test", "a.test", PING_ID_PREFIX "1x")));
    assert_false(heard(NULL, iq("result", "c.test", "a.test", "ping-1")));
    ping_free(pg);
}

/* --- two proxies ----------------------------------------------------------------------- */

static struct tp_tls tls;
static struct twoproxy tp;

/* What each side's local sink saw besides tp_side.got, and whether it answers pings. */
struct pside {
    unsigned pings, msgs;
    bool answer_pings;
};
static struct pside pa, pb;

static struct {
    unsigned stale_lines;
    char line[512];
} logs;

static void
log_capture(enum log_level level, const char *line, void *arg)
{
    (void)arg;
    fprintf(stderr, "[%s] %s\n", log_level_name(level), line);
    if (strstr(line, "no answer to XEP-0199 ping") == NULL)
        return;
    if (strstr(line, "out: closing") != NULL) {
        logs.stale_lines++;
        snprintf(logs.line, sizeof(logs.line), "%s", line);
    }
}

/* The local server answering a ping to its domain (XEP-0199 §4.2): from the loop, as the
 * local link would. */
static void
answer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct stanza *q = arg;
    struct stanza *st = stanza_new(STANZA_NS_COMPONENT, "iq");

    (void)fd;
    (void)what;
    stanza_elem_set_attr(st, stanza_root(st), NULL, "type", "result");
    stanza_elem_set_attr(st, stanza_root(st), NULL, "from", stanza_attr(q, "to"));
    stanza_elem_set_attr(st, stanza_root(st), NULL, "to", stanza_attr(q, "from"));
    stanza_elem_set_attr(st, stanza_root(st), NULL, "id", stanza_attr(q, "id"));
    stanza_free(q);
    router_outbound(tp.b.r, st);
}

static int
ping_sink(struct tp_side *s, struct stanza *st)
{
    struct pside *ps = s->arg;
    struct stanza_elem *p = stanza_elem_child(stanza_root(st), PING_NS, "ping");

    s->got++;
    if (p == NULL) {
        ps->msgs++;
        stanza_free(st);
        return 0;
    }
    ps->pings++;
    if (ps->answer_pings)
        event_base_once(tp.base, -1, EV_TIMEOUT, answer_cb, st, NULL);
    else
        stanza_free(st);
    return 0;
}

static int
group_setup(void **state)
{
    (void)state;
    log_set_sink(log_capture, NULL);
    return tp_tls_init(&tls, "Ping CA");
}

static int
group_teardown(void **state)
{
    (void)state;
    log_set_sink(NULL, NULL);
    tp_tls_free(&tls);
    return 0;
}

static int
setup(void **state)
{
    (void)state;
    memset(&logs, 0, sizeof(logs));
    memset(&pa, 0, sizeof(pa));
    memset(&pb, 0, sizeof(pb));
    tp_init(&tp);
    tp.a.sink = tp.b.sink = ping_sink;
    tp.a.arg = &pa;
    tp.b.arg = &pb;
    tp.a.conf.timeouts.ping = 0.2;
    tp.a.conf.timeouts.ping_answer = 0.3;
    tp.b.conf.timeouts.ping = 0; /* B: off */
    tp.b.conf.timeouts.ping_answer = 15;
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    tp_stop(&tp);
    return 0;
}

static bool
cond_msgs(void *arg)
{
    return pb.msgs >= *(unsigned *)arg;
}

static void
wait_msgs(unsigned n)
{
    assert_true(tp_run_until(&tp, cond_msgs, &n));
}

/* One ping round on A's route to b.test: a stanza, then its ping answered. */
static void
answered_round(unsigned n)
{
    uint64_t answered = ping_counts.answered;

    router_outbound(tp.a.r, tp_msg("u@a.test/r", "v@b.test"));
    wait_msgs(n);
    tp_wait_u64(&tp, &ping_counts.answered, answered + 1);
    assert_int_equal(pb.pings, n);
}

static void
check_answered_rounds(void)
{
    uint64_t stale = ping_counts.stale;

    pb.answer_pings = true;
    answered_round(1);
    /* one stream from A (B answered over it or over its own) */
    assert_true(pool_route_ready(router_pool(tp.a.r), "a.test", "b.test"));
    answered_round(2);
    assert_true(pool_route_ready(router_pool(tp.a.r), "a.test", "b.test"));
    assert_int_equal(pool_streams(router_pool(tp.a.r)), 1);
    assert_int_equal(ping_counts.stale, stale);
    assert_int_equal(logs.stale_lines, 0);
    /* the answers were the proxy's, not the local server's */
    assert_int_equal(tp.a.got, 0);
}

/* XEP-0288: B's answer comes back over A's own stream. */
static void
test_answered_over_bidi(void **state)
{
    uint64_t streams0 = s2s_stats.out_streams;

    (void)state;
    tp_start(&tp, &tp.a, tls.a);
    tp_start(&tp, &tp.b, tls.b);
    check_answered_rounds();
    assert_int_equal(s2s_stats.out_streams, streams0 + 1);
    assert_int_equal(pool_streams(router_pool(tp.b.r)), 0);
}

/* No bidi (A cannot verify B's certificate): B answers over its own stream into A. */
static void
test_answered_over_remote_stream(void **state)
{
    uint64_t streams0 = s2s_stats.out_streams;

    (void)state;
    tp_start(&tp, &tp.a, tls.a);
    tp_start(&tp, &tp.b, tls.b_other);
    check_answered_rounds();
    /* A's stream and B's (which also carried B's db:verify), each made once */
    assert_int_equal(pool_streams(router_pool(tp.b.r)), 1);
    assert_int_equal(s2s_stats.out_streams, streams0 + 2);
}

static void
test_silent_remote_stream_closed(void **state)
{
    uint64_t stale = ping_counts.stale, streams;
    double t0, t1;

    (void)state;
    tp_start(&tp, &tp.a, tls.a);
    tp_start(&tp, &tp.b, tls.b);
    pb.answer_pings = false;
    t0 = tp_now_ms();
    router_outbound(tp.a.r, tp_msg("u@a.test/r", "v@b.test"));
    wait_msgs(1);
    tp_wait_u64(&tp, &ping_counts.stale, stale + 1);
    t1 = tp_now_ms();
    /* the ping went out and reached B's local side, which never answered */
    assert_int_equal(pb.pings, 1);
    assert_true(t1 - t0 >= 500.0 - 1); /* ping 0.2 s + ping_answer 0.3 s */
    assert_int_equal(logs.stale_lines, 1);
    assert_non_null(strstr(logs.line, "local=a.test remote=b.test"));
    printf("# stale stream closed %.0f ms after its stanza (ping 200 ms + answer 300 ms)\n",
           t1 - t0);
    /* A stanza while the stale stream is still closing (same loop pass) waits for the
     * new stream instead of going into the dying one. */
    streams = s2s_stats.out_streams;
    router_outbound(tp.a.r, tp_msg("u@a.test/r", "v@b.test"));
    wait_msgs(2);
    assert_int_equal(s2s_stats.out_streams, streams + 1);
    /* the new stream carries what follows; the stale one is gone */
    router_outbound(tp.a.r, tp_msg("u@a.test/r", "v@b.test"));
    wait_msgs(3);
    assert_int_equal(s2s_stats.out_streams, streams + 1);
    assert_int_equal(pool_streams(router_pool(tp.a.r)), 1);
    assert_int_equal(tp.a.got, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_traffic_no_ping, u_setup, u_teardown),
        cmocka_unit_test_setup_teardown(test_ping_after_interval_then_result, u_setup, u_teardown),
        cmocka_unit_test_setup_teardown(test_error_answer_counts, u_setup, u_teardown),
        cmocka_unit_test_setup_teardown(test_no_answer_is_stale, u_setup, u_teardown),
        cmocka_unit_test_setup_teardown(test_remote_traffic_resets_clock, u_setup, u_teardown),
        cmocka_unit_test_setup_teardown(test_off_stop_and_unwritable, u_setup, u_teardown),
        cmocka_unit_test_setup_teardown(test_ids_and_foreign_responses, u_setup, u_teardown),
        cmocka_unit_test_setup_teardown(test_answered_over_bidi, setup, teardown),
        cmocka_unit_test_setup_teardown(test_answered_over_remote_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_silent_remote_stream_closed, setup, teardown),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
