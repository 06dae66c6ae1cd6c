/*
 * s2s/connector.c on loopback: targets in order, a failed address starts the next at
 * once, a hanging address is overtaken after the attempt delay (Happy Eyeballs, RFC 8305
 * §5), the winner's target is reported, and failures carry the right stanza error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "s2s/conn.h"
#include "s2s/connector.h"
#include "tests/unit/helpers/xpeer.h"

static struct event_base *base;
static struct {
    unsigned calls;
    struct conn *c;
    const struct dns_target *t;
    enum xmpp_stanza_error cond;
    char why[512];
} res;

static void
on_result(struct conn *c, const struct dns_target *t, enum xmpp_stanza_error cond, const char *why,
          void *arg)
{
    (void)arg;
    res.calls++;
    res.c = c;
    res.t = t;
    res.cond = cond;
    snprintf(res.why, sizeof(res.why), "%s", why);
}

static bool
called(void *arg)
{
    (void)arg;
    return res.calls > 0;
}

static uint16_t
port_of(int fd)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);

    getsockname(fd, (struct sockaddr *)&sin, &len);
    return ntohs(sin.sin_port);
}

static void
target(struct dns_target *t, const char *host, uint16_t port, int naddrs)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->host, sizeof(t->host), "%s", host);
    t->port = port;
    t->naddrs = (size_t)naddrs;
    for (int i = 0; i < naddrs; i++) {
        t->addrs[i].family = AF_INET;
        memcpy(t->addrs[i].addr, "\x7f\x00\x00\x01", 4);
    }
}

static double
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int
setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    memset(&res, 0, sizeof(res));
    base = event_base_new();
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    if (res.c != NULL)
        conn_free(res.c);
    for (int i = 0; i < 100 && conn_count() > 0; i++)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_int_equal(conn_count(), 0);
    event_base_free(base);
    return 0;
}

/* Target 0 refuses on both addresses; target 1 answers: it wins. */
static void
test_next_target_after_failures(void **state)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int lfd = xp_listen(&ss, &len), dead = xp_listen(&ss, &len);
    uint16_t dead_port = port_of(dead);
    struct dns_target tg[2];
    struct dns_targets ts = {0};

    (void)state;
    close(dead);
    target(&tg[0], "first.test", dead_port, 2);
    target(&tg[1], "second.test", port_of(lfd), 1);
    snprintf(ts.domain, sizeof(ts.domain), "x.test");
    ts.ntargets = 2;
    ts.targets = tg;
    connector_start(base, &ts, 2000, 5000, on_result, NULL);
    assert_true(xp_run_until(base, called, NULL, 10));
    assert_non_null(res.c);
    assert_ptr_equal(res.t, &tg[1]);
    close(lfd);
}

static void
test_all_fail(void **state)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int dead = xp_listen(&ss, &len);
    struct dns_target tg[1];
    struct dns_targets ts = {0};

    (void)state;
    target(&tg[0], "dead.test", port_of(dead), 1);
    close(dead);
    ts.ntargets = 1;
    ts.targets = tg;
    connector_start(base, &ts, 2000, 250, on_result, NULL);
    assert_true(xp_run_until(base, called, NULL, 10));
    assert_null(res.c);
    assert_int_equal(res.cond, XMPP_STANZA_ERR_REMOTE_SERVER_TIMEOUT);
    assert_non_null(strstr(res.why, "dead.test"));
}

static void
test_no_address(void **state)
{
    struct dns_targets ts = {0};

    (void)state;
    connector_start(base, &ts, 2000, 250, on_result, NULL);
    assert_int_equal(res.calls, 0); /* never from inside the call */
    assert_true(xp_run_until(base, called, NULL, 10));
    assert_null(res.c);
    assert_int_equal(res.cond, XMPP_STANZA_ERR_REMOTE_SERVER_NOT_FOUND);
}

/* A listener on ip:port (port 0: any) whose accept queue is full, so that a new SYN is
 * dropped and a connect to it hangs; fill[] keeps the queue full. */
static int
hanging_listener(const char *ip, uint16_t port, int fill[4])
{
    struct sockaddr_in sin = {0};
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    inet_pton(AF_INET, ip, &sin.sin_addr);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, len), 0);
    assert_int_equal(listen(fd, 0), 0);
    getsockname(fd, (struct sockaddr *)&sin, &len);
    for (int i = 0; i < 4; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fill[i], (struct sockaddr *)&sin, len);
    }
    return fd;
}

/*
 * RFC 8305 §5: the first address (127.0.0.1) hangs; after the attempt delay the second
 * (127.0.0.2, same port) starts and wins, long before the connect timeout.
 */
static void
test_happy_eyeballs_overtakes(void **state)
{
    int fill[4], hang = hanging_listener("127.0.0.1", 0, fill), good;
    struct sockaddr_in sin = {0};
    socklen_t len = sizeof(sin);
    struct dns_target tg[1];
    struct dns_targets ts = {0};
    double t0, took;

    (void)state;
    getsockname(hang, (struct sockaddr *)&sin, &len);
    good = socket(AF_INET, SOCK_STREAM, 0);
    inet_pton(AF_INET, "127.0.0.2", &sin.sin_addr);
    assert_int_equal(bind(good, (struct sockaddr *)&sin, len), 0);
    assert_int_equal(listen(good, 16), 0);
    target(&tg[0], "he.test", ntohs(sin.sin_port), 2);
    memcpy(tg[0].addrs[1].addr, "\x7f\x00\x00\x02", 4);
    ts.ntargets = 1;
    ts.targets = tg;
    t0 = now_ms();
    connector_start(base, &ts, 3000, 100, on_result, NULL);
    assert_true(xp_run_until(base, called, NULL, 10));
    took = now_ms() - t0;
    assert_non_null(res.c);
    assert_non_null(strstr(conn_peer(res.c), "127.0.0.2:"));
    assert_true(took >= 90 && took < 2500);
    printf("# Happy Eyeballs: second address won after %.0f ms (delay 100 ms)\n", took);
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(hang);
    close(good);
}

/* One hanging address alone: the connect timeout ends it with remote-server-timeout. */
static void
test_connect_timeout(void **state)
{
    int fill[4], hang = hanging_listener("127.0.0.1", 0, fill);
    struct sockaddr_in sin = {0};
    socklen_t len = sizeof(sin);
    struct dns_target tg[1];
    struct dns_targets ts = {0};

    (void)state;
    getsockname(hang, (struct sockaddr *)&sin, &len);
    target(&tg[0], "slow.test", ntohs(sin.sin_port), 1);
    ts.ntargets = 1;
    ts.targets = tg;
    connector_start(base, &ts, 300, 100, on_result, NULL);
    assert_true(xp_run_until(base, called, NULL, 10));
    assert_null(res.c);
    assert_int_equal(res.cond, XMPP_STANZA_ERR_REMOTE_SERVER_TIMEOUT);
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(hang);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_next_target_after_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_all_fail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_address, setup, teardown),
        cmocka_unit_test_setup_teardown(test_happy_eyeballs_overtakes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_timeout, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
