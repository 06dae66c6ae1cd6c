/*
 * The real backends without a DNS server: options checked with a clear error, a query to
 * a port where nothing listens fails (never succeeds, never hangs), and freeing a
 * resolver with queries out calls nobody back and leaks nothing (ASan).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>

#include "dns/resolver.h"

static struct dns_resolver *
try_new(struct event_base *base, enum dns_backend_kind kind, const char *server, const char *ta,
        const struct dns_option_pair *opt, char *err, size_t errlen)
{
    const char *servers[1] = {server};
    struct dns_options o = {
        .backend = kind,
        .servers = servers,
        .nservers = 1,
        .trust_anchor_file = ta,
        .unbound_options = opt,
        .nunbound_options = opt ? 1 : 0,
        .timeout = 1,
    };

    err[0] = '\0';
    return dns_resolver_new(base, &o, err, errlen);
}

static void
test_options(void **state)
{
    struct event_base *base = event_base_new();
    struct dns_resolver *r;
    char err[256];
    const struct dns_option_pair bad = {"no-such-option:", "1"};

    (void)state;
    r = try_new(base, DNS_BACKEND_CARES, "127.0.0.1:5353", NULL, NULL, err, sizeof(err));
    assert_non_null(r);
    dns_resolver_free(r);
    r = try_new(base, DNS_BACKEND_CARES, "[::1]:5353", NULL, NULL, err, sizeof(err));
    assert_non_null(r);
    dns_resolver_free(r);
    r = try_new(base, DNS_BACKEND_UNBOUND, "[::1]:5353", NULL, NULL, err, sizeof(err));
    assert_non_null(r);
    dns_resolver_free(r);

    assert_null(try_new(base, DNS_BACKEND_CARES, "not an address", NULL, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "not an address"));
    assert_null(try_new(base, DNS_BACKEND_UNBOUND, "[::1", NULL, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "bad DNS server"));
    assert_null(try_new(base, DNS_BACKEND_UNBOUND, "127.0.0.1:53", "/nonexistent/ta", NULL, err,
                        sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/ta"));
    assert_null(try_new(base, DNS_BACKEND_UNBOUND, "127.0.0.1:53", NULL, &bad, err, sizeof(err)));
    assert_non_null(strstr(err, "no-such-option:"));
    event_base_free(base);
}

struct box {
    int calls;
    enum dns_status status;
};

static void
box_cb(const struct dns_answer *a, void *arg)
{
    struct box *b = arg;

    b->calls++;
    b->status = a->status;
}

static void
guard_fired(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    *(bool *)arg = true;
}

/* Port 1 on loopback: nothing listens (a refusal or a timeout, never an answer). The name
 * is not under .test, which libunbound would answer itself without asking. */
static void
closed_port(enum dns_backend_kind kind)
{
    struct event_base *base = event_base_new();
    char err[256];
    struct dns_resolver *r = try_new(base, kind, "127.0.0.1:1", NULL, NULL, err, sizeof(err));
    struct box b = {0};
    bool expired = false;
    struct event *guard = evtimer_new(base, guard_fired, &expired);
    struct timeval limit = {10, 0};

    assert_non_null(r);
    assert_non_null(dns_query(r, "example.net", DNS_TYPE_A, box_cb, &b));
    assert_int_equal(b.calls, 0);
    evtimer_add(guard, &limit);
    while (b.calls == 0 && !expired)
        event_base_loop(base, EVLOOP_ONCE);
    assert_false(expired);
    assert_int_equal(b.calls, 1);
    assert_int_not_equal(b.status, DNS_OK);
    if (!(b.status == DNS_ERROR || b.status == DNS_TIMEOUT || b.status == DNS_SERVFAIL))
        fail_msg("status %s", dns_status_str(b.status));
    assert_true(b.status == DNS_ERROR || b.status == DNS_TIMEOUT || b.status == DNS_SERVFAIL);

    /* Queries out when the resolver goes: nobody is called back. */
    struct box c = {0};
    assert_non_null(dns_query(r, "other.test", DNS_TYPE_AAAA, box_cb, &c));
    assert_non_null(dns_query(r, "_xmpp-server._tcp.other.test", DNS_TYPE_SRV, box_cb, &c));
    dns_resolver_free(r);
    event_base_loop(base, EVLOOP_NONBLOCK);
    assert_int_equal(c.calls, 0);
    event_free(guard);
    event_base_free(base);
}

static void
test_closed_port_cares(void **state)
{
    (void)state;
    closed_port(DNS_BACKEND_CARES);
}

static void
test_closed_port_unbound(void **state)
{
    (void)state;
    closed_port(DNS_BACKEND_UNBOUND);
}

static void
test_strings(void **state)
{
    (void)state;
    assert_string_equal(dns_status_str(DNS_NXDOMAIN), "nxdomain");
    assert_string_equal(dns_status_str(DNS_NODATA), "nodata");
    assert_string_equal(dns_status_str(DNS_NOSERVICE), "no-service");
    assert_string_equal(dns_sec_str(DNS_SEC_SECURE), "secure");
    assert_string_equal(dns_sec_str(DNS_SEC_INDETERMINATE), "indeterminate");
    assert_string_equal(dns_tls_mode_str(DNS_TLS_DIRECT), "direct");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_closed_port_cares),
        cmocka_unit_test(test_closed_port_unbound),
        cmocka_unit_test(test_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
