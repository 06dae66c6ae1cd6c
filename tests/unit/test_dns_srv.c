/*
 * dns/srv.c: RFC 2782 ordering (priority, weighted random with a seeded RNG, weight 0)
 * and the XEP-0368 / RFC 6120 §3.2 decisions over the two SRV answers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dns/srv.h"

static struct dns_srv
srv(uint16_t prio, uint16_t weight, uint16_t port, const char *target)
{
    struct dns_srv s = {.priority = prio, .weight = weight, .port = port};

    snprintf(s.target, sizeof(s.target), "%s", target);
    return s;
}

static struct dns_answer
answer(const char *name, enum dns_status st, struct dns_srv *recs, size_t n)
{
    struct dns_answer a;

    memset(&a, 0, sizeof(a));
    snprintf(a.name, sizeof(a.name), "%s", name);
    a.type = DNS_TYPE_SRV;
    a.status = st;
    a.rr.srv = recs;
    a.n = n;
    return a;
}

static void
test_priority_order(void **state)
{
    struct dns_srv r[4] = {srv(30, 5, 1, "c"), srv(10, 5, 1, "a"), srv(20, 5, 1, "b"),
                           srv(0, 5, 1, "z")};
    struct dns_srv_pick p[4];
    uint64_t rng = 1;

    (void)state;
    for (int i = 0; i < 4; i++)
        p[i] = (struct dns_srv_pick){&r[i], DNS_TLS_STARTTLS};
    dns_srv_order(p, 4, &rng);
    assert_string_equal(p[0].srv->target, "z");
    assert_string_equal(p[1].srv->target, "a");
    assert_string_equal(p[2].srv->target, "b");
    assert_string_equal(p[3].srv->target, "c");
}

/* Over many draws, the first pick follows the weights: P(i) = (w_i + [i first]) / (sum+1). */
static void
test_weight_distribution(void **state)
{
    struct dns_srv r[3] = {srv(10, 10, 1, "w10"), srv(10, 20, 1, "w20"), srv(10, 70, 1, "w70")};
    int first[3] = {0, 0, 0};
    uint64_t rng = 0x5eed;
    const int draws = 20000;

    (void)state;
    for (int d = 0; d < draws; d++) {
        struct dns_srv_pick p[3];
        for (int i = 0; i < 3; i++)
            p[i] = (struct dns_srv_pick){&r[i], DNS_TLS_STARTTLS};
        dns_srv_order(p, 3, &rng);
        first[p[0].srv - r]++;
        /* Every record appears exactly once. */
        assert_true(p[0].srv != p[1].srv && p[1].srv != p[2].srv && p[0].srv != p[2].srv);
    }
    double f0 = (double)first[0] / draws, f1 = (double)first[1] / draws,
           f2 = (double)first[2] / draws;
    assert_true(f0 > 11.0 / 101 - 0.015 && f0 < 11.0 / 101 + 0.015);
    assert_true(f1 > 20.0 / 101 - 0.015 && f1 < 20.0 / 101 + 0.015);
    assert_true(f2 > 70.0 / 101 - 0.015 && f2 < 70.0 / 101 + 0.015);
}

static void
test_weight_zero(void **state)
{
    struct dns_srv r[2] = {srv(10, 100, 1, "heavy"), srv(10, 0, 1, "zero")};
    int zero_first = 0;
    uint64_t rng = 7;
    const int draws = 20000;

    (void)state;
    /* RFC 2782: weight-0 records are rarely chosen first (here 1 in 101). */
    for (int d = 0; d < draws; d++) {
        struct dns_srv_pick p[2] = {{&r[0], DNS_TLS_STARTTLS}, {&r[1], DNS_TLS_STARTTLS}};
        dns_srv_order(p, 2, &rng);
        if (p[0].srv == &r[1])
            zero_first++;
    }
    assert_true(zero_first > 0);
    assert_true((double)zero_first / draws < 0.02);

    /* All weights 0: the answer order is kept. */
    struct dns_srv z[3] = {srv(1, 0, 1, "a"), srv(1, 0, 1, "b"), srv(1, 0, 1, "c")};
    struct dns_srv_pick p[3];
    for (int i = 0; i < 3; i++)
        p[i] = (struct dns_srv_pick){&z[i], DNS_TLS_DIRECT};
    dns_srv_order(p, 3, &rng);
    assert_string_equal(p[0].srv->target, "a");
    assert_string_equal(p[2].srv->target, "c");
}

static void
test_seed_deterministic(void **state)
{
    struct dns_srv r[5] = {srv(1, 10, 1, "a"), srv(1, 10, 1, "b"), srv(1, 10, 1, "c"),
                           srv(1, 10, 1, "d"), srv(1, 10, 1, "e")};
    struct dns_srv_pick p1[5], p2[5];
    uint64_t s1 = 99, s2 = 99;

    (void)state;
    for (int i = 0; i < 5; i++)
        p1[i] = p2[i] = (struct dns_srv_pick){&r[i], DNS_TLS_STARTTLS};
    dns_srv_order(p1, 5, &s1);
    dns_srv_order(p2, 5, &s2);
    for (int i = 0; i < 5; i++)
        assert_ptr_equal(p1[i].srv, p2[i].srv);
}

static enum dns_srv_plan
plan(struct dns_answer *s, struct dns_answer *p, struct dns_srv_pick *picks, size_t *n,
     enum dns_status *st)
{
    char why[320];
    uint64_t rng = 3;

    return dns_srv_plan(s, p, &rng, picks, DNS_MAX_TARGETS, n, st, why, sizeof(why));
}

static void
test_merge_by_priority(void **state)
{
    struct dns_srv rs[2] = {srv(5, 0, 5270, "direct.example"), srv(10, 0, 5270, "d2.example")};
    struct dns_srv rp[2] = {srv(10, 0, 5269, "st.example"), srv(1, 0, 5269, "first.example")};
    struct dns_answer s = answer("_xmpps-server._tcp.example", DNS_OK, rs, 2);
    struct dns_answer p = answer("_xmpp-server._tcp.example", DNS_OK, rp, 2);
    struct dns_srv_pick picks[DNS_MAX_TARGETS];
    size_t n;
    enum dns_status st;

    (void)state;
    assert_int_equal(plan(&s, &p, picks, &n, &st), DNS_SRV_TARGETS);
    assert_int_equal(n, 4);
    /* One list ordered by priority across both services (XEP-0368 §3). */
    assert_string_equal(picks[0].srv->target, "first.example");
    assert_int_equal(picks[0].tls, DNS_TLS_STARTTLS);
    assert_string_equal(picks[1].srv->target, "direct.example");
    assert_int_equal(picks[1].tls, DNS_TLS_DIRECT);
    assert_int_equal(picks[2].srv->priority, 10);
    assert_int_equal(picks[3].srv->priority, 10);
}

static void
test_dot_rules(void **state)
{
    struct dns_srv dot[1] = {srv(0, 0, 0, ".")};
    struct dns_srv recs[2] = {srv(0, 0, 5269, "xmpp.example"), srv(0, 0, 0, ".")};
    struct dns_srv_pick picks[DNS_MAX_TARGETS];
    size_t n;
    enum dns_status st;

    (void)state;
    /* "." for direct TLS, records for STARTTLS: STARTTLS only. */
    struct dns_answer s = answer("s", DNS_OK, dot, 1), p = answer("p", DNS_OK, recs, 1);
    assert_int_equal(plan(&s, &p, picks, &n, &st), DNS_SRV_TARGETS);
    assert_int_equal(n, 1);
    assert_int_equal(picks[0].tls, DNS_TLS_STARTTLS);

    /* A "." among other records is ignored. */
    p = answer("p", DNS_OK, recs, 2);
    assert_int_equal(plan(&s, &p, picks, &n, &st), DNS_SRV_TARGETS);
    assert_int_equal(n, 1);

    /* Both ".": decidedly not available, no fallback. */
    p = answer("p", DNS_OK, dot, 1);
    assert_int_equal(plan(&s, &p, picks, &n, &st), DNS_SRV_FAIL);
    assert_int_equal(st, DNS_NOSERVICE);
    assert_int_equal(n, 0);

    /* "." and nothing at all for the other service: not available either way round. */
    p = answer("p", DNS_NXDOMAIN, NULL, 0);
    assert_int_equal(plan(&s, &p, picks, &n, &st), DNS_SRV_FAIL);
    assert_int_equal(st, DNS_NOSERVICE);
    s = answer("s", DNS_NODATA, NULL, 0);
    p = answer("p", DNS_OK, dot, 1);
    assert_int_equal(plan(&s, &p, picks, &n, &st), DNS_SRV_FAIL);
    assert_int_equal(st, DNS_NOSERVICE);
}

static void
test_fallback_and_errors(void **state)
{
    struct dns_srv recs[1] = {srv(0, 0, 5269, "xmpp.example")};
    struct dns_srv dot[1] = {srv(0, 0, 0, ".")};
    struct dns_srv_pick picks[DNS_MAX_TARGETS];
    size_t n;
    enum dns_status st;

    (void)state;
    struct dns_answer s = answer("s", DNS_NXDOMAIN, NULL, 0), p = answer("p", DNS_NODATA, NULL, 0);
    assert_int_equal(plan(&s, &p, picks, &n, &st), DNS_SRV_FALLBACK);
    /* An OK answer with no records counts as empty. */
    s = answer("s", DNS_OK, NULL, 0);
    assert_int_equal(plan(&s, &p, picks, &n, &st), DNS_SRV_FALLBACK);

    /* A failure with nothing else: no fallback on a transient error. */
    s = answer("s", DNS_SERVFAIL, NULL, 0);
    assert_int_equal(plan(&s, &p, picks, &n, &st), DNS_SRV_FAIL);
    assert_int_equal(st, DNS_SERVFAIL);
    p = answer("p", DNS_OK, dot, 1);
    s = answer("s", DNS_TIMEOUT, NULL, 0);
    assert_int_equal(plan(&s, &p, picks, &n, &st), DNS_SRV_FAIL);
    assert_int_equal(st, DNS_TIMEOUT);

    /* A timeout on one service, records on the other: use what we have. */
    p = answer("p", DNS_OK, recs, 1);
    assert_int_equal(plan(&s, &p, picks, &n, &st), DNS_SRV_TARGETS);
    assert_int_equal(n, 1);

    /* Bogus anywhere fails everything. */
    s = answer("s", DNS_BOGUS, NULL, 0);
    assert_int_equal(plan(&s, &p, picks, &n, &st), DNS_SRV_FAIL);
    assert_int_equal(st, DNS_BOGUS);
    assert_int_equal(plan(&p, &s, picks, &n, &st), DNS_SRV_FAIL);
    assert_int_equal(st, DNS_BOGUS);
}

static void
test_bounded(void **state)
{
    struct dns_srv r[DNS_MAX_RECORDS];
    struct dns_srv_pick picks[DNS_MAX_TARGETS];
    size_t n;
    enum dns_status st;

    (void)state;
    for (int i = 0; i < DNS_MAX_RECORDS; i++)
        r[i] = srv((uint16_t)i, 1, 5269, "h.example");
    struct dns_answer s = answer("s", DNS_OK, r, DNS_MAX_RECORDS);
    struct dns_answer p = answer("p", DNS_OK, r, DNS_MAX_RECORDS);
    assert_int_equal(plan(&s, &p, picks, &n, &st), DNS_SRV_TARGETS);
    assert_int_equal(n, DNS_MAX_TARGETS);
    for (size_t i = 1; i < n; i++)
        assert_true(picks[i - 1].srv->priority <= picks[i].srv->priority);
    /* The best of both services are kept: priorities 0..15, each once per service. */
    assert_int_equal(picks[n - 1].srv->priority, DNS_MAX_TARGETS / 2 - 1);
    size_t direct = 0;
    for (size_t i = 0; i < n; i++)
        direct += picks[i].tls == DNS_TLS_DIRECT;
    assert_int_equal(direct, n / 2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_priority_order),      cmocka_unit_test(test_weight_distribution),
        cmocka_unit_test(test_weight_zero),         cmocka_unit_test(test_seed_deterministic),
        cmocka_unit_test(test_merge_by_priority),   cmocka_unit_test(test_dot_rules),
        cmocka_unit_test(test_fallback_and_errors), cmocka_unit_test(test_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
