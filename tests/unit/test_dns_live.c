/*
 * The resolver against a real DNS server: the Knot instance tests/integration/test_dns.sh
 * starts (zones in tests/integration/dns/knot.sh). Skipped unless the environment says
 * where it is:
 *   S2S_DNS_SERVER   addr:port of Knot
 *   S2S_DNS_TA       trust anchor file (DS of "test.")
 *   S2S_DNS_BACKEND  "cares" or "unbound"
 *   S2S_DNS_SILENT   addr:port of a UDP socket that never answers (timeout case)
 * c-ares must see the same data as unbound, never "secure"; unbound must say secure for
 * sec.test, insecure for insec.test and bogus for bogus.test.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <event2/event.h>
#include <jansson.h>

#include "dns/resolver.h"

static struct event_base *base;
static struct dns_resolver *res;
static bool unbound;

static const struct dns_option_pair ub_opts[] = {
    /* libunbound answers .test itself unless told (FIELD-NOTES). */
    {"local-zone:", "test. transparent"},
};

static struct dns_resolver *
make_resolver(const char *server, unsigned int timeout)
{
    const char *servers[1] = {server};
    struct dns_options o = {
        .backend = unbound ? DNS_BACKEND_UNBOUND : DNS_BACKEND_CARES,
        .servers = servers,
        .nservers = 1,
        .trust_anchor_file = getenv("S2S_DNS_TA"),
        .unbound_options = ub_opts,
        .nunbound_options = 1,
        .timeout = timeout,
        .rng_seed = 42,
    };
    char err[256] = "";
    struct dns_resolver *r = dns_resolver_new(base, &o, err, sizeof(err));
    if (r == NULL)
        fail_msg("dns_resolver_new: %s", err);
    return r;
}

static int
setup(void **state)
{
    const char *server = getenv("S2S_DNS_SERVER");
    const char *backend = getenv("S2S_DNS_BACKEND");

    (void)state;
    unbound = backend != NULL && strcmp(backend, "unbound") == 0;
    base = event_base_new();
    res = make_resolver(server, 5);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    dns_resolver_free(res);
    event_base_free(base);
    return 0;
}

static void
guard_fired(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    *(bool *)arg = true;
}

/* Runs the loop until *done, at most 15 s. */
static void
run_until(bool *done)
{
    bool expired = false;
    struct event *guard = evtimer_new(base, guard_fired, &expired);
    struct timeval limit = {15, 0};

    evtimer_add(guard, &limit);
    while (!*done && !expired)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(guard);
    assert_false(expired);
}

static void
test_skip_all(void **state)
{
    (void)state;
    skip();
}

struct answer_box {
    bool done;
    enum dns_status status;
    enum dns_sec sec;
    uint32_t ttl;
    size_t n;
    struct dns_srv srv[DNS_MAX_RECORDS];
    struct dns_addr addr[DNS_MAX_RECORDS];
    struct dns_tlsa tlsa[DNS_MAX_RECORDS];
    uint8_t tlsa_data[DNS_MAX_RECORDS][64];
};

static void
answer_cb(const struct dns_answer *ans, void *arg)
{
    struct answer_box *b = arg;

    b->done = true;
    b->status = ans->status;
    b->sec = ans->sec;
    b->ttl = ans->ttl;
    b->n = ans->n;
    for (size_t i = 0; i < ans->n; i++) {
        if (ans->type == DNS_TYPE_SRV)
            b->srv[i] = ans->rr.srv[i];
        else if (ans->type == DNS_TYPE_TLSA) {
            b->tlsa[i] = ans->rr.tlsa[i];
            memcpy(b->tlsa_data[i], ans->rr.tlsa[i].data,
                   ans->rr.tlsa[i].len < 64 ? ans->rr.tlsa[i].len : 64);
        } else
            b->addr[i] = ans->rr.addr[i];
    }
}

static void
query(const char *name, uint16_t type, struct answer_box *b)
{
    memset(b, 0, sizeof(*b));
    assert_non_null(dns_query(res, name, type, answer_cb, b));
    assert_false(b->done); /* never called back inside the call */
    run_until(&b->done);
}

static enum dns_sec
expect_sec(enum dns_sec with_unbound)
{
    return unbound ? with_unbound : DNS_SEC_INDETERMINATE;
}

static void
test_srv_secure(void **state)
{
    struct answer_box b;

    (void)state;
    query("_xmpp-server._tcp.sec.test", DNS_TYPE_SRV, &b);
    assert_int_equal(b.status, DNS_OK);
    assert_int_equal(b.sec, expect_sec(DNS_SEC_SECURE));
    assert_int_equal(b.n, 3);
    assert_true(b.ttl > 0 && b.ttl <= 300);
    int seen = 0;
    for (size_t i = 0; i < b.n; i++) {
        if (strcmp(b.srv[i].target, "xmpp1.sec.test") == 0 && b.srv[i].weight == 60 &&
            b.srv[i].priority == 10 && b.srv[i].port == 5269)
            seen |= 1;
        if (strcmp(b.srv[i].target, "backup.sec.test") == 0 && b.srv[i].priority == 20)
            seen |= 2;
    }
    assert_int_equal(seen, 3);
}

static void
test_srv_insecure(void **state)
{
    struct answer_box b;

    (void)state;
    query("_xmpp-server._tcp.insec.test", DNS_TYPE_SRV, &b);
    assert_int_equal(b.status, DNS_OK);
    assert_int_equal(b.sec, expect_sec(DNS_SEC_INSECURE));
    assert_int_equal(b.n, 3);
}

static void
test_srv_bogus(void **state)
{
    struct answer_box b;

    (void)state;
    query("_xmpp-server._tcp.bogus.test", DNS_TYPE_SRV, &b);
    if (unbound) {
        assert_int_equal(b.status, DNS_BOGUS);
        assert_int_equal(b.sec, DNS_SEC_BOGUS);
        assert_int_equal(b.n, 0);
    } else {
        /* A stub resolver does not validate: it sees the data, never "secure". */
        assert_int_equal(b.status, DNS_OK);
        assert_int_equal(b.sec, DNS_SEC_INDETERMINATE);
        assert_int_equal(b.n, 3);
    }
}

static void
test_nxdomain_nodata(void **state)
{
    struct answer_box b;

    (void)state;
    query("nope.sec.test", DNS_TYPE_A, &b);
    assert_int_equal(b.status, DNS_NXDOMAIN);
    assert_int_equal(b.sec, expect_sec(DNS_SEC_SECURE)); /* denial proven by NSEC */
    assert_true(b.ttl > 0 && b.ttl <= 30);               /* RFC 2308: SOA minimum 30 */
    query("txtonly.sec.test", DNS_TYPE_A, &b);
    assert_int_equal(b.status, DNS_NODATA);
    assert_true(b.ttl > 0 && b.ttl <= 30);
    query("nope.insec.test", DNS_TYPE_AAAA, &b);
    assert_int_equal(b.status, DNS_NXDOMAIN);
    assert_int_equal(b.sec, expect_sec(DNS_SEC_INSECURE));
}

static void
test_addresses(void **state)
{
    struct answer_box b;
    char buf[64];

    (void)state;
    query("xmpp1.sec.test", DNS_TYPE_AAAA, &b);
    assert_int_equal(b.status, DNS_OK);
    assert_int_equal(b.n, 1);
    assert_int_equal(b.addr[0].family, AF_INET6);
    assert_string_equal(inet_ntop(AF_INET6, b.addr[0].addr, buf, sizeof(buf)), "2001:db8::1");
    query("XMPP1.Sec.Test.", DNS_TYPE_A, &b);
    assert_int_equal(b.status, DNS_OK);
    assert_int_equal(b.n, 1);
    assert_string_equal(inet_ntop(AF_INET, b.addr[0].addr, buf, sizeof(buf)), "192.0.2.1");
}

static void
test_tlsa(void **state)
{
    struct answer_box b;

    (void)state;
    memset(&b, 0, sizeof(b));
    assert_non_null(dns_tlsa_resolve(res, "xmpp1.sec.test", 5270, answer_cb, &b));
    run_until(&b.done);
    assert_int_equal(b.status, DNS_OK);
    assert_int_equal(b.sec, expect_sec(DNS_SEC_SECURE));
    assert_int_equal(b.n, 1);
    assert_int_equal(b.tlsa[0].usage, 3);
    assert_int_equal(b.tlsa[0].selector, 1);
    assert_int_equal(b.tlsa[0].mtype, 1);
    assert_int_equal(b.tlsa[0].len, 32);
    assert_int_equal(b.tlsa_data[0][0], 0x01);
    assert_int_equal(b.tlsa_data[0][31], 0x20);
}

struct targets_box {
    bool done;
    struct dns_targets *t;
};

static void
targets_cb(struct dns_targets *t, void *arg)
{
    struct targets_box *b = arg;

    b->done = true;
    b->t = t;
}

static struct dns_targets *
targets(const char *domain, int flags)
{
    struct targets_box b = {0};

    assert_non_null(dns_targets_resolve(res, domain, flags, targets_cb, &b));
    assert_false(b.done);
    run_until(&b.done);
    return b.t;
}

static void
test_targets_secure(void **state)
{
    struct dns_targets *t;
    char buf[64];

    (void)state;
    t = targets("sec.test", DNS_TARGETS_TLSA);
    dns_targets_print(stderr, t);
    assert_int_equal(t->status, DNS_OK);
    assert_false(t->fallback);
    assert_int_equal(t->ntargets, 4);
    assert_string_equal(t->targets[0].cname, ""); /* not an alias */
    /* Priority 5 (direct TLS) first, then the two of priority 10, then 20. */
    assert_string_equal(t->targets[0].host, "xmpp1.sec.test");
    assert_int_equal(t->targets[0].port, 5270);
    assert_int_equal(t->targets[0].tls, DNS_TLS_DIRECT);
    assert_int_equal(t->targets[1].priority, 10);
    assert_int_equal(t->targets[2].priority, 10);
    assert_string_equal(t->targets[3].host, "backup.sec.test");
    /* xmpp1: IPv6 first (RFC 8305). */
    assert_int_equal(t->targets[0].naddrs, 2);
    assert_int_equal(t->targets[0].addrs[0].family, AF_INET6);
    assert_string_equal(inet_ntop(AF_INET, t->targets[0].addrs[1].addr, buf, sizeof(buf)),
                        "192.0.2.1");
    assert_int_equal(t->srv_xmpp.sec, expect_sec(DNS_SEC_SECURE));
    assert_int_equal(t->targets[0].aaaa.sec, expect_sec(DNS_SEC_SECURE));
    if (unbound) {
        assert_true(t->targets[0].tlsa_queried);
        assert_int_equal(t->targets[0].tlsa.status, DNS_OK);
        assert_int_equal(t->targets[0].ntlsa, 1);
        assert_int_equal(t->targets[0].tlsa_rr[0].usage, 3);
        /* xmpp2 has no TLSA: a secure denial. */
        size_t x2 = strcmp(t->targets[1].host, "xmpp2.sec.test") == 0 ? 1 : 2;
        assert_true(t->targets[x2].tlsa_queried);
        assert_int_equal(t->targets[x2].tlsa.status, DNS_NXDOMAIN);
    } else {
        assert_false(t->targets[0].tlsa_queried);
    }
    json_t *j = dns_targets_json(t);
    assert_non_null(j);
    assert_int_equal(json_array_size(json_object_get(j, "targets")), 4);
    assert_true(
        json_is_null(json_object_get(json_array_get(json_object_get(j, "targets"), 0), "cname")));
    json_decref(j);
    dns_targets_free(t);
}

static void
test_targets_insecure_no_tlsa(void **state)
{
    struct dns_targets *t;

    (void)state;
    t = targets("insec.test", DNS_TARGETS_TLSA);
    assert_int_equal(t->status, DNS_OK);
    assert_int_equal(t->ntargets, 4);
    for (size_t i = 0; i < t->ntargets; i++)
        assert_false(t->targets[i].tlsa_queried);
    dns_targets_free(t);
}

static void
test_targets_bogus(void **state)
{
    struct dns_targets *t;

    (void)state;
    t = targets("bogus.test", 0);
    if (unbound) {
        assert_int_equal(t->status, DNS_BOGUS);
        assert_int_equal(t->ntargets, 0);
    } else {
        assert_int_equal(t->status, DNS_OK);
        assert_int_equal(t->ntargets, 4);
    }
    dns_targets_free(t);
}

/* RFC 2782: an SRV target MUST NOT be an alias. We still follow it, and say it was one. */
static void
test_targets_cname(void **state)
{
    struct dns_targets *t;

    (void)state;
    t = targets("alias.sec.test", DNS_TARGETS_TLSA);
    dns_targets_print(stderr, t);
    assert_int_equal(t->status, DNS_OK);
    assert_int_equal(t->ntargets, 1);
    assert_string_equal(t->targets[0].host, "cn.sec.test");
    assert_string_equal(t->targets[0].cname, "xmpp1.sec.test");
    assert_int_equal(t->targets[0].naddrs, 2); /* xmpp1's AAAA and A */
    assert_int_equal(t->targets[0].a.sec, expect_sec(DNS_SEC_SECURE));
    json_t *j = dns_targets_json(t);
    json_t *g = json_array_get(json_object_get(j, "targets"), 0);
    assert_string_equal(json_string_value(json_object_get(g, "cname")), "xmpp1.sec.test");
    json_decref(j);
    dns_targets_free(t);
}

static void
test_targets_dot_half_fallback(void **state)
{
    struct dns_targets *t;

    (void)state;
    t = targets("dot.sec.test", 0);
    assert_int_equal(t->status, DNS_NOSERVICE);
    assert_int_equal(t->ntargets, 0);
    dns_targets_free(t);

    t = targets("half.sec.test", 0);
    assert_int_equal(t->status, DNS_OK);
    assert_int_equal(t->ntargets, 1);
    assert_string_equal(t->targets[0].host, "xmpp2.sec.test");
    assert_int_equal(t->targets[0].tls, DNS_TLS_STARTTLS);
    dns_targets_free(t);

    t = targets("nosrv.sec.test", DNS_TARGETS_TLSA);
    assert_int_equal(t->status, DNS_OK);
    assert_true(t->fallback);
    assert_int_equal(t->ntargets, 1);
    assert_string_equal(t->targets[0].host, "nosrv.sec.test");
    assert_int_equal(t->targets[0].port, 5269);
    assert_int_equal(t->targets[0].naddrs, 2);
    assert_int_equal(t->targets[0].addrs[0].family, AF_INET6);
    assert_int_equal(t->targets[0].tlsa_queried, unbound); /* secure denial + secure A/AAAA */
    dns_targets_free(t);

    t = targets("nothing-here.sec.test", 0);
    assert_true(t->fallback);
    assert_int_equal(t->status, DNS_NXDOMAIN);
    dns_targets_free(t);
}

static void
test_cache_counts_queries(void **state)
{
    struct answer_box b1, b2;
    struct dns_stats before, after;

    (void)state;
    dns_resolver_stats(res, &before);
    memset(&b1, 0, sizeof(b1));
    memset(&b2, 0, sizeof(b2));
    assert_non_null(dns_query(res, "nosrv.insec.test", DNS_TYPE_A, answer_cb, &b1));
    assert_non_null(dns_query(res, "nosrv.insec.test", DNS_TYPE_A, answer_cb, &b2));
    run_until(&b1.done);
    run_until(&b2.done);
    query("nosrv.insec.test", DNS_TYPE_A, &b1); /* from the cache */
    dns_resolver_stats(res, &after);
    assert_int_equal(after.queries_sent - before.queries_sent, 1);
    assert_int_equal(b2.status, DNS_OK);
}

static void
test_timeout(void **state)
{
    const char *silent = getenv("S2S_DNS_SILENT");
    struct dns_resolver *saved = res;
    struct answer_box b;

    (void)state;
    if (silent == NULL)
        skip();
    res = make_resolver(silent, 1);
    query("xmpp1.sec.test", DNS_TYPE_A, &b);
    assert_int_equal(b.status, DNS_TIMEOUT);
    dns_resolver_free(res);
    res = saved;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_srv_secure),
        cmocka_unit_test(test_srv_insecure),
        cmocka_unit_test(test_srv_bogus),
        cmocka_unit_test(test_nxdomain_nodata),
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_tlsa),
        cmocka_unit_test(test_targets_secure),
        cmocka_unit_test(test_targets_insecure_no_tlsa),
        cmocka_unit_test(test_targets_bogus),
        cmocka_unit_test(test_targets_cname),
        cmocka_unit_test(test_targets_dot_half_fallback),
        cmocka_unit_test(test_cache_counts_queries),
        cmocka_unit_test(test_timeout),
    };

    if (getenv("S2S_DNS_SERVER") == NULL) {
        /* Not under test_dns.sh: nothing to talk to. */
        const struct CMUnitTest skipped[] = {cmocka_unit_test(test_skip_all)};
        return cmocka_run_group_tests(skipped, NULL, NULL);
    }
    return cmocka_run_group_tests(tests, setup, teardown);
}
