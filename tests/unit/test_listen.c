/*
 * s2s/listen.c: IPv4 and IPv6 listeners on ephemeral ports hand accepted conns to the
 * callback with the right kind (STARTTLS or direct TLS), and the per-address bound
 * refuses the connection beyond it until a slot is released.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <string.h>

#include <event2/event.h>

#include "s2s/conn.h"
#include "s2s/listen.h"
#include "s2s/sockaddr.h"

static struct event_base *base;
static struct conn *accepted[8];
static struct listen_slot *slots[8];
static bool kinds[8];
static unsigned naccepted;
static unsigned eofs;

static void
on_accept(struct conn *c, bool direct, struct listen_slot *slot, void *arg)
{
    (void)arg;
    assert_true(naccepted < 8);
    kinds[naccepted] = direct;
    slots[naccepted] = slot;
    accepted[naccepted++] = c;
}

static void
cli_read(struct conn *c, void *arg)
{
    (void)arg;
    evbuffer_drain(conn_input(c), evbuffer_get_length(conn_input(c)));
}

static void
cli_event(struct conn *c, enum conn_event ev, const char *reason, void *arg)
{
    (void)c;
    (void)reason;
    (void)arg;
    if (ev == CONN_EV_EOF || ev == CONN_EV_ERROR)
        eofs++;
}

static bool
until_accepted(unsigned n)
{
    for (int i = 0; i < 2000 && naccepted < n; i++)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    return naccepted >= n;
}

static bool
until_eofs(unsigned n)
{
    struct timeval tv = {0, 1000};

    for (int i = 0; i < 5000 && eofs < n; i++) {
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
    return eofs >= n;
}

static struct conn *
dial(struct listen *l, size_t i)
{
    struct sockaddr_storage ss;
    socklen_t len;
    struct conn_cbs cbs = {cli_read, cli_event, NULL};
    char err[128];

    assert_int_equal(listen_addr(l, i, &ss, &len), 0);
    return conn_connect(base, (struct sockaddr *)&ss, len, &cbs, err, sizeof(err));
}

static void
test_listen_kinds_and_bound(void **state)
{
    struct conf_addr a[2] = {0};
    struct conf_listen li = {0};
    struct listen *l;
    struct conn *c[4];
    char err[256];
    struct sockaddr_storage ss;
    socklen_t len;

    (void)state;
    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    a[0].text = "127.0.0.1:0";
    assert_int_equal(sockaddr_from_ip("127.0.0.1", 0, &a[0].sa, &a[0].salen), 0);
    a[1].text = "[::1]:0";
    assert_int_equal(sockaddr_from_ip("::1", 0, &a[1].sa, &a[1].salen), 0);
    li.starttls = &a[0];
    li.nstarttls = 1;
    li.direct_tls = &a[1];
    li.ndirect_tls = 1;
    l = listen_new(base, &li, 2, on_accept, NULL, err, sizeof(err));
    if (l == NULL)
        fail_msg("%s", err);

    c[0] = dial(l, 0);
    assert_true(until_accepted(1));
    assert_false(kinds[0]);
    c[1] = dial(l, 1); /* ::1 is another address: its own count */
    assert_true(until_accepted(2));
    assert_true(kinds[1]);
    c[2] = dial(l, 0);
    assert_true(until_accepted(3));
    assert_int_equal(listen_addr(l, 0, &ss, &len), 0);
    ((struct sockaddr_in *)&ss)->sin_port = 0;
    assert_int_equal(listen_count_for(l, (struct sockaddr *)&ss), 2);

    /* The third from 127.0.0.1 is refused: closed at once, no callback. */
    c[3] = dial(l, 0);
    assert_true(until_eofs(1));
    assert_int_equal(naccepted, 3);

    /* A released slot makes room again. */
    listen_slot_release(l, slots[0]);
    conn_free(accepted[0]);
    conn_free(c[3]);
    c[3] = dial(l, 0);
    assert_true(until_accepted(4));

    for (unsigned i = 0; i < 4; i++)
        conn_free(c[i]);
    for (unsigned i = 1; i < naccepted; i++) {
        listen_slot_release(l, slots[i]);
        conn_free(accepted[i]);
    }
    listen_free(l);
    for (int i = 0; i < 1000 && conn_count() > 0; i++)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    event_base_free(base);
}

/* A port in use is an error that names the address. */
static void
test_listen_bind_error(void **state)
{
    struct conf_addr a[2] = {0};
    struct conf_listen li = {0};
    struct listen *l1, *l2;
    char err[256];

    (void)state;
    base = event_base_new();
    a[0].text = "127.0.0.1:0";
    assert_int_equal(sockaddr_from_ip("127.0.0.1", 0, &a[0].sa, &a[0].salen), 0);
    li.starttls = a;
    li.nstarttls = 1;
    l1 = listen_new(base, &li, 2, on_accept, NULL, err, sizeof(err));
    assert_non_null(l1);
    assert_int_equal(listen_addr(l1, 0, &a[1].sa, &a[1].salen), 0);
    a[1].text = "the-same";
    li.starttls = &a[1];
    l2 = listen_new(base, &li, 2, on_accept, NULL, err, sizeof(err));
    assert_null(l2);
    assert_non_null(strstr(err, "cannot listen on the-same: Address already in use"));
    listen_free(l1);
    event_base_free(base);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listen_kinds_and_bound),
        cmocka_unit_test(test_listen_bind_error),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
