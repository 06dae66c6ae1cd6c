/*
 * The policy wired into the engine, with two proxies in one process (helpers/twoproxy.h:
 * router A hosting a.test, router B hosting b.test, real listeners, pools, sessions and
 * TLS, scripted DNS, capturing local sinks). Proves: a remote domain B denies is refused
 * (SASL: stream closed; dialback: only the pair refused) and its sender gets an error; a
 * local user's stanza to a denied domain bounces with not-allowed and no stream is
 * opened; a drop rule drops and counts; an inbound rate limit pauses reading (all
 * delivered, none lost, no faster than the rate); an outbound rate limit holds the
 * route's queue; a reload that denies a live peer closes its stream, one that denies
 * another domain leaves it alone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>

#include "s2s/policy.h"
#include "s2s/pool.h"
#include "s2s/router.h"
#include "s2s/stats.h"
#include "tests/unit/helpers/policytest.h"
#include "tests/unit/helpers/twoproxy.h"

static struct tp_tls tls;
static struct twoproxy tp;
static char tmpdir[64];

/* --- fixtures -------------------------------------------------------------------------- */

static int
group_setup(void **state)
{
    (void)state;
    if (tp_tls_init(&tls, "Fed CA") != 0)
        return -1;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/s2s-policy-wire.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    return 0;
}

static int
group_teardown(void **state)
{
    char cmd[128];

    (void)state;
    tp_tls_free(&tls);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        return -1;
    return 0;
}

static int
setup(void **state)
{
    (void)state;
    tp_init(&tp);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    tp_stop(&tp);
    policy_unref(tp.a.conf.policy);
    policy_unref(tp.b.conf.policy);
    return 0;
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
    tp.b.conf.policy = pol("b1.conf", deny_a);
    tp_start(&tp, &tp.a, tls.a);
    tp_start(&tp, &tp.b, tls.b);
    router_outbound(tp.a.r, tp_msg("u@a.test/r", "v@b.test"));
    tp_wait_got(&tp, &tp.a, 1);
    assert_string_equal(tp.a.last_type, "error");
    assert_string_equal(tp.a.last_to, "u@a.test/r");
    assert_int_equal(tp.b.got, 0);
    assert_int_equal(s2s_stats.in_accepted, in0);
    assert_true(s2s_stats.policy_refused > refused);
    assert_true(tp_run_until(&tp, no_in_sessions, tp.b.r)); /* the stream was closed */
}

/* The same with dialback: B refuses only the pair (XEP-0220 error), A's sender gets an
 * error, nothing is delivered. */
static void
test_denied_remote_dialback(void **state)
{
    uint64_t refused = s2s_stats.policy_refused;

    (void)state;
    tp.b.conf.policy = pol("b2.conf", deny_a);
    tp_start(&tp, &tp.a, tls.a_other);
    tp_start(&tp, &tp.b, tls.b);
    router_outbound(tp.a.r, tp_msg("u@a.test/r", "v@b.test"));
    tp_wait_got(&tp, &tp.a, 1);
    assert_string_equal(tp.a.last_type, "error");
    assert_int_equal(tp.b.got, 0);
    assert_true(s2s_stats.policy_refused > refused);
}

/* A denies b.test: its user's message bounces with not-allowed, no stream is opened. */
static void
test_local_to_denied_bounces(void **state)
{
    uint64_t acc = s2s_stats.out_accepted, bounced = s2s_stats.out_bounced;

    (void)state;
    tp.a.conf.policy = pol("a1.conf", deny_b);
    tp_start(&tp, &tp.a, tls.a);
    tp_start(&tp, &tp.b, tls.b);
    router_outbound(tp.a.r, tp_msg("u@a.test/r", "v@b.test"));
    tp_wait_got(&tp, &tp.a, 1);
    assert_string_equal(tp.a.last_type, "error");
    assert_string_equal(tp.a.last_cond, "not-allowed");
    assert_int_equal(tp.b.got, 0);
    assert_int_equal(pool_streams(router_pool(tp.a.r)), 0);
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
    tp.a.conf.policy = pol("a2.conf", "policy = { stanzas = ( { name = \"quiet\"; direction = "
                                      "\"out\"; kind = \"message\"; action = \"drop\"; } ); };\n");
    tp_start(&tp, &tp.a, tls.a);
    tp_start(&tp, &tp.b, tls.b);
    router_outbound(tp.a.r, tp_msg("u@a.test/r", "v@b.test"));
    assert_int_equal(s2s_stats.out_accepted, acc + 1);
    assert_int_equal(s2s_stats.out_dropped, dropped + 1);
    assert_int_equal(s2s_stats.policy_dropped, pdropped + 1);
    assert_int_equal(pool_routes(router_pool(tp.a.r)), 0);
    assert_int_equal(tp.a.got, 0);
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
    tp.b.conf.policy =
        pol("b3.conf", "policy = { rate = { stanzas = 20; stanza_burst = 2; }; };\n");
    tp_start(&tp, &tp.a, tls.a);
    tp_start(&tp, &tp.b, tls.b);
    router_outbound(tp.a.r, tp_msg("u@a.test/r", "v@b.test"));
    tp_wait_got(&tp, &tp.b, 1);
    t0 = tp_now_ms();
    for (int i = 1; i < RATE_N; i++)
        router_outbound(tp.a.r, tp_msg("u@a.test/r", "v@b.test"));
    tp_wait_got(&tp, &tp.b, RATE_N);
    dt = tp_now_ms() - t0;
    printf("# inbound 20/s burst 2: %d stanzas in %.0f ms (at least %.0f expected)\n", RATE_N, dt,
           expect * 0.8);
    assert_int_equal(tp.b.got, RATE_N);
    assert_true(dt >= expect * 0.8);
    assert_true(dt <= expect * 2.5); /* paused, not stalled */
    assert_true(s2s_stats.policy_paused > paused);
    assert_int_equal(tp.a.got, 0); /* nothing bounced */
}

/* XEP-0288: B's answers come back over A's own stream (no inbound session at A to
 * pause): A's inbound rate for b.test still holds them, and delivers every one. */
static void
test_bidi_inbound_rate(void **state)
{
    uint64_t held = s2s_stats.policy_held;
    double t0, dt, expect = (RATE_N - 2) / 20.0 * 1e3;

    (void)state;
    tp.a.conf.policy =
        pol("a4.conf", "policy = { rate = { stanzas = 20; stanza_burst = 2; }; };\n");
    tp_start(&tp, &tp.a, tls.a);
    tp_start(&tp, &tp.b, tls.b);
    router_outbound(tp.a.r, tp_msg("u@a.test/r", "v@b.test"));
    tp_wait_got(&tp, &tp.b, 1);
    t0 = tp_now_ms();
    for (int i = 0; i < RATE_N; i++)
        router_outbound(tp.b.r, tp_msg("v@b.test", "u@a.test/r"));
    tp_wait_got(&tp, &tp.a, RATE_N);
    dt = tp_now_ms() - t0;
    printf("# bidi inbound 20/s burst 2: %d stanzas in %.0f ms (at least %.0f expected)\n", RATE_N,
           dt, expect * 0.8);
    assert_int_equal(pool_streams(router_pool(tp.b.r)), 0); /* it came over A's stream */
    assert_true(dt >= expect * 0.8);
    assert_true(dt <= expect * 2.5);
    assert_true(s2s_stats.policy_held > held);
    assert_string_equal(tp.a.last_type, ""); /* a message without type, not an error */
}

/* A limits its own traffic to b.test: the route's queue is held, all delivered. */
static void
test_outbound_rate_holds(void **state)
{
    uint64_t held = s2s_stats.policy_held;
    double t0, dt, expect = (RATE_N - 2) / 20.0 * 1e3;

    (void)state;
    tp.a.conf.policy =
        pol("a3.conf", "policy = { rate = { stanzas = 20; stanza_burst = 2; }; };\n");
    tp_start(&tp, &tp.a, tls.a);
    tp_start(&tp, &tp.b, tls.b);
    t0 = tp_now_ms();
    for (int i = 0; i < RATE_N; i++)
        router_outbound(tp.a.r, tp_msg("u@a.test/r", "v@b.test"));
    tp_wait_got(&tp, &tp.b, RATE_N);
    dt = tp_now_ms() - t0;
    printf("# outbound 20/s burst 2: %d stanzas in %.0f ms (at least %.0f expected)\n", RATE_N, dt,
           expect * 0.8);
    assert_true(dt >= expect * 0.8);
    assert_true(dt <= expect * 2.5 + 500); /* + route set-up */
    assert_true(s2s_stats.policy_held > held);
    assert_int_equal(tp.a.got, 0);
}

/* A reload on B: a policy that denies another domain leaves A's stream alone; one that
 * denies a.test closes it. */
static void
test_reload_recheck(void **state)
{
    struct conf c1, c2;

    (void)state;
    tp_start(&tp, &tp.a, tls.a);
    tp_start(&tp, &tp.b, tls.b);
    router_outbound(tp.a.r, tp_msg("u@a.test/r", "v@b.test"));
    tp_wait_got(&tp, &tp.b, 1);
    assert_int_equal(router_inbound_sessions(tp.b.r), 1);

    c1 = tp.b.conf;
    c1.policy = pol("b4.conf", "policy = { domains = ( { match = \"spam.test\"; federate = "
                               "\"deny\"; } ); };\n");
    router_reconfigure(tp.b.r, &c1, tls.b);
    router_outbound(tp.a.r, tp_msg("u@a.test/r", "v@b.test"));
    tp_wait_got(&tp, &tp.b, 2);
    assert_int_equal(router_inbound_sessions(tp.b.r), 1);

    c2 = tp.b.conf;
    c2.policy = pol("b5.conf", deny_a);
    router_reconfigure(tp.b.r, &c2, tls.b);
    assert_true(tp_run_until(&tp, no_in_sessions, tp.b.r));
    router_reconfigure(tp.b.r, &tp.b.conf, tls.b);
    policy_unref(c1.policy);
    policy_unref(c2.policy);
}

static bool
a2_not_ready(void *arg)
{
    (void)arg;
    return !pool_route_ready(router_pool(tp.a.r), "a2.test", "b.test");
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
    uint64_t refused;

    (void)state;
    hosts[0].domain = "a.test";
    hosts[1].domain = "a2.test";
    tp.a.conf.hosts = hosts;
    tp.a.conf.nhosts = 2;
    tp_start(&tp, &tp.a, tls.a_other); /* no certificate B trusts: dialback */
    tp_start(&tp, &tp.b, tls.b);
    router_outbound(tp.a.r, tp_msg("u@a.test/r", "v@b.test"));
    tp_wait_got(&tp, &tp.b, 1);
    router_outbound(tp.a.r, tp_msg("w@a2.test/r", "v@b.test"));
    tp_wait_got(&tp, &tp.b, 2);
    assert_int_equal(pool_streams(router_pool(tp.a.r)), 1); /* both pairs on one stream */
    assert_int_equal(router_inbound_sessions(tp.b.r), 1);

    c1 = tp.b.conf;
    c1.policy = pol("b6.conf", "policy = { domains = ( { name = \"no-a2\"; match = "
                               "\"a2.test\"; federate = \"deny\"; } ); };\n");
    refused = s2s_stats.policy_refused;
    router_reconfigure(tp.b.r, &c1, tls.b);
    assert_true(s2s_stats.policy_refused > refused);
    assert_true(tp_run_until(&tp, a2_not_ready, NULL));

    router_outbound(tp.a.r, tp_msg("u@a.test/r", "v@b.test"));
    tp_wait_got(&tp, &tp.b, 3);
    assert_int_equal(router_inbound_sessions(tp.b.r), 1); /* the stream lived on */
    assert_int_equal(tp.a.got, 0);

    router_outbound(tp.a.r, tp_msg("w@a2.test/r", "v@b.test"));
    tp_wait_got(&tp, &tp.a, 1);
    assert_string_equal(tp.a.last_type, "error");
    assert_string_equal(tp.a.last_to, "w@a2.test/r");
    assert_int_equal(tp.b.got, 3);
    router_reconfigure(tp.b.r, &tp.b.conf, tls.b);
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
    return policy_check_route(tp.b.conf.policy, "b.test", "a2.test", &d) != POLICY_PASS;
}

/* Issue 7: a block list file changed on disk, no SIGHUP, no reload: B's timer re-reads it
 * and new traffic from the domain appended is refused (A's pooled a2.test pair gets a
 * dialback error, its own stream too, and its sender a bounce), while the live stream of
 * a.test is untouched and still delivers. */
static void
test_list_file_watched(void **state)
{
    static struct conf_host hosts[2];

    (void)state;
    list_write("b7.txt", "w", "# community block list\nspam.test\n");
    tp.b.conf.policy = pol("b7.conf", "policy = { list_check_interval = 0.05; domains = ( { name "
                                      "= \"bl\"; list = \"b7.txt\"; federate = \"deny\"; } ); "
                                      "};\n");
    hosts[0].domain = "a.test";
    hosts[1].domain = "a2.test";
    tp.a.conf.hosts = hosts;
    tp.a.conf.nhosts = 2;
    tp_start(&tp, &tp.a, tls.a_other);
    tp_start(&tp, &tp.b, tls.b);
    router_outbound(tp.a.r, tp_msg("u@a.test/r", "v@b.test"));
    tp_wait_got(&tp, &tp.b, 1);
    assert_false(b_denies_a2(NULL));

    list_write("b7.txt", "a", "a2.test\n");
    assert_true(tp_run_until(&tp, b_denies_a2, NULL)); /* the timer re-read it */

    router_outbound(tp.a.r, tp_msg("w@a2.test/r", "v@b.test"));
    tp_wait_got(&tp, &tp.a, 1);
    assert_string_equal(tp.a.last_type, "error");
    assert_string_equal(tp.a.last_to, "w@a2.test/r");
    assert_int_equal(tp.b.got, 1);

    router_outbound(tp.a.r, tp_msg("u@a.test/r", "v@b.test"));
    tp_wait_got(&tp, &tp.b, 2);
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
    return pool_queued(router_pool(tp.a.r), "a2.test", "b.test") == 0;
}

/* Issue 7, policy max_streams outbound: A may have one stream to b.test. B accepts one
 * dialback pair per stream, so a2.test cannot ride on a.test's stream: its stanzas wait
 * (limits.queue_stanzas = 3), the rest bounce resource-constraint, and when a.test's
 * stream goes idle and closes, a2.test gets the slot and delivers what waited. */
static void
test_outbound_max_streams(void **state)
{
    static struct conf_host hosts[2];
    uint64_t held = s2s_stats.policy_held;

    (void)state;
    tp.a.conf.policy = pol("a5.conf", "policy = { domains = ( { match = \"b.test\"; max_streams "
                                      "= 1; } ); };\n");
    hosts[0].domain = "a.test";
    hosts[1].domain = "a2.test";
    tp.a.conf.hosts = hosts;
    tp.a.conf.nhosts = 2;
    tp.a.conf.limits.queue_stanzas = 3;
    tp.a.conf.timeouts.route_idle = 1;
    tp.b.conf.limits.dialback_pairs = 1;
    tp_start(&tp, &tp.a, tls.a_other);
    tp_start(&tp, &tp.b, tls.b);
    router_outbound(tp.a.r, tp_msg("u@a.test/r", "v@b.test"));
    tp_wait_got(&tp, &tp.b, 1);

    for (int i = 0; i < 5; i++)
        router_outbound(tp.a.r, tp_msg("w@a2.test/r", "v@b.test"));
    tp_wait_got(&tp, &tp.a, 2); /* two bounced: the queue holds three */
    assert_string_equal(tp.a.last_cond, "resource-constraint");
    assert_string_equal(tp.a.last_to, "w@a2.test/r");
    held_since = held;
    assert_true(tp_run_until(&tp, held_more, NULL)); /* B refused the pooled pair */
    assert_int_equal(pool_queued(router_pool(tp.a.r), "a2.test", "b.test"), 3);
    assert_int_equal(pool_streams(router_pool(tp.a.r)), 1); /* no second stream */
    assert_int_equal(tp.b.got, 1);

    /* a.test's stream closes when idle: the slot goes to a2.test */
    assert_true(tp_run_until(&tp, a2_queue_empty, NULL));
    tp_wait_got(&tp, &tp.b, 4);
    assert_int_equal(tp.a.got, 2);
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
