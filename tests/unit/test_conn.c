/*
 * s2s/conn.c over real loopback TCP sockets inside one event_base: plain and TLS
 * exchange, STARTTLS, direct TLS, no data lost at close, backpressure, timeouts, write
 * coalescing, and owners freeing or closing a conn from inside its callbacks.
 * Every wait runs the event loop until a condition holds, bounded by a guard timer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <malloc.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/x509_vfy.h>

#include "s2s/conn.h"
#include "s2s/sockaddr.h"
#include "s2s/tls.h"
#include "tests/unit/helpers/testca.h"

#define NEV (CONN_EV_DRAINED + 1)

struct peer {
    struct conn *c;
    struct evbuffer *got; /* everything consumed */
    bool hold;            /* leave input unconsumed */
    unsigned nev[NEV];
    char reason[256];
    size_t got_at_eof;
    int64_t t_last_read, t_idle; /* ms, monotonic */
    void (*on_read)(struct peer *p);
    void (*on_event)(struct peer *p, enum conn_event ev);
    int step;
};

static struct event_base *base;
static bool guard_fired;
static struct testca *ca, *ca2;
static struct testca_files f_a, f_client, f_other, f_expired;
static struct tls_ctx *srv_ctx, *cli_ctx, *other_ctx, *expired_ctx;

static int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
guard_cb(evutil_socket_t fd, short what, void *arg)
{
    guard_fired = true;
}

/* Runs the loop until cond holds; fails the test after secs seconds. */
#define RUN_UNTIL_T(cond, secs)                                                                    \
    do {                                                                                           \
        struct event *g_ = evtimer_new(base, guard_cb, NULL);                                      \
        struct timeval tv_ = {(secs), 0};                                                          \
        guard_fired = false;                                                                       \
        evtimer_add(g_, &tv_);                                                                     \
        while (!(cond) && !guard_fired)                                                            \
            event_base_loop(base, EVLOOP_ONCE);                                                    \
        event_free(g_);                                                                            \
        if (!(cond))                                                                               \
            fail_msg("timed out waiting for %s", #cond);                                           \
    } while (0)
#define RUN_UNTIL(cond) RUN_UNTIL_T(cond, 10)

/* Runs the loop for ms milliseconds (to show that something does NOT happen). */
static void
run_for(unsigned ms)
{
    struct event *g = evtimer_new(base, guard_cb, NULL);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    guard_fired = false;
    evtimer_add(g, &tv);
    while (!guard_fired)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(g);
}

static void
peer_read(struct conn *c, void *arg)
{
    struct peer *p = arg;

    p->t_last_read = now_ms();
    if (p->on_read) {
        p->on_read(p);
        return;
    }
    if (!p->hold)
        evbuffer_add_buffer(p->got, conn_input(c));
}

static void
peer_event(struct conn *c, enum conn_event ev, const char *reason, void *arg)
{
    struct peer *p = arg;

    assert_non_null(reason);
    p->nev[ev]++;
    if (ev == CONN_EV_EOF)
        p->got_at_eof = evbuffer_get_length(p->got);
    if (ev == CONN_EV_TIMEOUT_IDLE && p->t_idle == 0)
        p->t_idle = now_ms();
    if (ev != CONN_EV_DRAINED && ev != CONN_EV_CONNECTED)
        snprintf(p->reason, sizeof(p->reason), "%s", reason);
    if (p->on_event)
        p->on_event(p, ev);
}

static struct conn_cbs
peer_cbs(struct peer *p)
{
    struct conn_cbs cbs = {peer_read, peer_event, p};

    return cbs;
}

/* Peers of the running test, so a failed test's teardown can still free them. */
static struct peer slots[2]; /* a test's peers live here, not on its stack */
static struct peer *live[2048];
static size_t nlive;

static void
peer_init(struct peer *p)
{
    memset(p, 0, sizeof(*p));
    p->got = evbuffer_new();
    assert_true(nlive < sizeof(live) / sizeof(live[0]));
    live[nlive++] = p;
}

static void
peer_done(struct peer *p)
{
    if (p->c)
        conn_free(p->c);
    p->c = NULL;
    if (p->got)
        evbuffer_free(p->got);
    p->got = NULL;
}

static int
listener(struct sockaddr_storage *ss, socklen_t *sslen, int backlog)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

    assert_true(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    assert_int_equal(sockaddr_from_ip("127.0.0.1", 0, ss, sslen), 0);
    assert_int_equal(bind(fd, (struct sockaddr *)ss, *sslen), 0);
    assert_int_equal(listen(fd, backlog), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)ss, sslen), 0);
    return fd;
}

static void small_socket_buffers(struct conn *c);

enum mode {
    PLAIN,
    DIRECT_TLS,
};

/* Connects cli to srv over loopback; with DIRECT_TLS both start TLS at once. */
static void
pair_ex(struct peer *cli, struct peer *srv, enum mode mode, struct tls_ctx *sctx,
        struct tls_ctx *cctx, const char *sni, const char *alpn)
{
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    struct conn_cbs cb = peer_cbs(cli), sb = peer_cbs(srv);
    char err[256];
    int lfd, fd;

    lfd = listener(&ss, &sslen, 16);
    cli->c = conn_connect(base, (struct sockaddr *)&ss, sslen, &cb, err, sizeof(err));
    assert_non_null(cli->c);
    if (mode == DIRECT_TLS)
        assert_int_equal(
            conn_starttls(cli->c, cctx, TLS_ROLE_CLIENT, sni, "client.test", alpn, err, 256), 0);
    RUN_UNTIL(cli->nev[CONN_EV_CONNECTED] == 1 || cli->nev[CONN_EV_ERROR] > 0);
    assert_int_equal(cli->nev[CONN_EV_ERROR], 0);
    fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    assert_true(fd >= 0);
    close(lfd);
    srv->c = conn_new_accepted(base, fd, &sb);
    if (mode == DIRECT_TLS) {
        assert_int_equal(
            conn_starttls(srv->c, sctx, TLS_ROLE_SERVER, NULL, NULL, NULL, err, sizeof(err)), 0);
        RUN_UNTIL((cli->nev[CONN_EV_TLS_UP] && srv->nev[CONN_EV_TLS_UP]) ||
                  cli->nev[CONN_EV_ERROR] || srv->nev[CONN_EV_ERROR]);
        assert_int_equal(cli->nev[CONN_EV_ERROR] + srv->nev[CONN_EV_ERROR], 0);
    }
}

static void
pair(struct peer *cli, struct peer *srv, enum mode mode)
{
    pair_ex(cli, srv, mode, srv_ctx, cli_ctx, "a.test", NULL);
}

static int
group_setup(void **state)
{
    static const char *const a_dns[] = {"a.test", NULL};
    static const char *const c_dns[] = {"client.test", NULL};
    const struct testca_leaf a = {
        .dns = a_dns, .xmpp_addr = "a.test", .srv_id = "_xmpp-server.a.test"};
    const struct testca_leaf client = {.dns = c_dns, .xmpp_addr = "client.test"};
    const struct testca_leaf expired = {.dns = a_dns, .expired = true};
    struct tls_settings s = {0};
    struct tls_host h;
    char err[512];

    signal(SIGPIPE, SIG_IGN);
    if ((ca = testca_new("Test CA")) == NULL || (ca2 = testca_new("Other CA")) == NULL ||
        testca_issue(ca, "a", &a, &f_a) == -1 || testca_issue(ca, "client", &client, &f_client) ||
        testca_issue(ca, "expired", &expired, &f_expired) ||
        testca_issue(ca2, "other", &a, &f_other))
        return -1;
    s.ca_file = testca_cert(ca);
    h = (struct tls_host){"a.test", f_a.cert, f_a.key};
    srv_ctx = tls_ctx_new(&s, &h, 1, err, sizeof(err));
    h = (struct tls_host){"client.test", f_client.cert, f_client.key};
    cli_ctx = tls_ctx_new(&s, &h, 1, err, sizeof(err));
    h = (struct tls_host){"a.test", f_other.cert, f_other.key};
    other_ctx = tls_ctx_new(&s, &h, 1, err, sizeof(err));
    h = (struct tls_host){"a.test", f_expired.cert, f_expired.key};
    expired_ctx = tls_ctx_new(&s, &h, 1, err, sizeof(err));
    if (!srv_ctx || !cli_ctx || !other_ctx || !expired_ctx) {
        fprintf(stderr, "tls_ctx_new: %s\n", err);
        return -1;
    }
    return 0;
}

static int
group_teardown(void **state)
{
    tls_ctx_unref(srv_ctx);
    tls_ctx_unref(cli_ctx);
    tls_ctx_unref(other_ctx);
    tls_ctx_unref(expired_ctx);
    testca_free(ca);
    testca_free(ca2);
    return 0;
}

static int
setup(void **state)
{
    base = event_base_new();
    return base ? 0 : -1;
}

/* Every conn, closing ones included, must be gone: none leaks, none outlives its loop. */
static int
teardown(void **state)
{
    for (size_t i = 0; i < nlive; i++)
        peer_done(live[i]);
    nlive = 0;
    RUN_UNTIL(conn_count() == 0);
    event_base_free(base);
    base = NULL;
    return 0;
}

static bool
got_eq(struct peer *p, const char *s)
{
    size_t n = strlen(s);

    return evbuffer_get_length(p->got) == n &&
           memcmp(evbuffer_pullup(p->got, (ev_ssize_t)n), s, n) == 0;
}

static void
test_sockaddr(void **state)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char buf[SOCKADDR_STRLEN];

    assert_int_equal(sockaddr_from_ip("192.0.2.1", 5269, &ss, &len), 0);
    assert_string_equal(sockaddr_str((struct sockaddr *)&ss, len, buf, sizeof(buf)),
                        "192.0.2.1:5269");
    assert_int_equal(sockaddr_from_ip("2001:db8::1", 5270, &ss, &len), 0);
    assert_string_equal(sockaddr_str((struct sockaddr *)&ss, len, buf, sizeof(buf)),
                        "[2001:db8::1]:5270");
    assert_int_equal(sockaddr_from_ip("example.org", 5269, &ss, &len), -1);
    assert_string_equal(sockaddr_str(NULL, 0, buf, sizeof(buf)), "?");
}

/* --- plain --- */

static void
test_plain_exchange(void **state)
{
    struct peer *cli = &slots[0], *srv = &slots[1];

    peer_init(cli);
    peer_init(srv);
    pair(cli, srv, PLAIN);
    assert_false(conn_is_tls(cli->c));
    assert_null(conn_tls_info(cli->c));
    assert_non_null(strstr(conn_peer(cli->c), "127.0.0.1:"));
    assert_non_null(strstr(conn_peer(srv->c), "127.0.0.1:"));
    /* Nagle off on both sides: it stalls s2s handshakes by tens of ms. */
    for (int i = 0; i < 2; i++) {
        int v = 0;
        socklen_t vl = sizeof(v);

        assert_int_equal(
            getsockopt(conn_fd(i ? srv->c : cli->c), IPPROTO_TCP, TCP_NODELAY, &v, &vl), 0);
        assert_int_equal(v, 1);
    }
    conn_write(cli->c, "<stream>", 8);
    conn_printf(cli->c, "<a n='%d'/>", 1);
    RUN_UNTIL(evbuffer_get_length(srv->got) == 18);
    assert_true(got_eq(srv, "<stream><a n='1'/>"));
    conn_write(srv->c, "<ok/>", 5);
    RUN_UNTIL(evbuffer_get_length(cli->got) == 5);
    assert_true(got_eq(cli, "<ok/>"));
    assert_int_equal(conn_stats(cli->c)->bytes_out, 18);
    assert_int_equal(conn_stats(srv->c)->bytes_in, 18);
    peer_done(cli);
    peer_done(srv);
}

static void
test_connect_refused(void **state)
{
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    struct peer *cli = &slots[0];
    struct conn_cbs cb;
    char err[256];

    peer_init(cli);
    cb = peer_cbs(cli);
    close(listener(&ss, &sslen, 1)); /* a port nobody listens on */
    cli->c = conn_connect(base, (struct sockaddr *)&ss, sslen, &cb, err, sizeof(err));
    assert_non_null(cli->c);
    /* Never a callback from inside the owner's own call. */
    assert_int_equal(cli->nev[CONN_EV_ERROR], 0);
    RUN_UNTIL(cli->nev[CONN_EV_ERROR] == 1);
    assert_int_equal(cli->nev[CONN_EV_CONNECTED], 0);
    assert_non_null(strstr(cli->reason, "Connection refused"));
    peer_done(cli);
}

/*
 * A listener whose accept queue is full drops SYNs (Linux), so a connect to it hangs
 * like one to an address that does not answer.
 */
static void
test_connect_timeout(void **state)
{
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    struct conn_timeouts to = {.connect_ms = 200, .tls_ms = 1000, .close_ms = 1000};
    struct peer *cli = &slots[0];
    struct conn_cbs cb;
    int lfd, fill[4];
    char err[256];
    int64_t t0;

    peer_init(cli);
    cb = peer_cbs(cli);
    lfd = listener(&ss, &sslen, 0);
    for (int i = 0; i < 4; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        (void)connect(fill[i], (struct sockaddr *)&ss, sslen);
    }
    t0 = now_ms();
    cli->c = conn_connect(base, (struct sockaddr *)&ss, sslen, &cb, err, sizeof(err));
    conn_set_timeouts(cli->c, &to);
    RUN_UNTIL(
        cli->nev[CONN_EV_TIMEOUT_CONN] + cli->nev[CONN_EV_ERROR] + cli->nev[CONN_EV_CONNECTED] > 0);
    if (cli->nev[CONN_EV_CONNECTED]) {
        /* The kernel accepted after all (syncookies or a larger queue): nothing to see. */
        peer_done(cli);
        for (int i = 0; i < 4; i++)
            close(fill[i]);
        close(lfd);
        skip();
    }
    assert_int_equal(cli->nev[CONN_EV_TIMEOUT_CONN], 1);
    assert_true(now_ms() - t0 >= 190);
    assert_non_null(strstr(cli->reason, "connect timed out"));
    peer_done(cli);
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(lfd);
}

/* --- TLS --- */

static void
srv_starttls_read(struct peer *p)
{
    struct evbuffer *in = conn_input(p->c);
    char err[256];

    /* <starttls/> (10 bytes) then whatever the client sent after it. */
    if (evbuffer_get_length(in) < 11)
        return;
    evbuffer_drain(in, 11);
    /* step: bytes of whitespace keepalive queued before <proceed/>. */
    for (int i = 0; i < p->step; i += 1024)
        conn_printf(p->c, "%1024s", "");
    conn_write(p->c, "<proceed/>", 10);
    assert_int_equal(
        conn_starttls(p->c, srv_ctx, TLS_ROLE_SERVER, NULL, NULL, NULL, err, sizeof(err)), 0);
    /* A second request is refused. */
    assert_int_equal(
        conn_starttls(p->c, srv_ctx, TLS_ROLE_SERVER, NULL, NULL, NULL, err, sizeof(err)), -1);
    p->on_read = NULL;
}

static void
cli_proceed_read(struct peer *p)
{
    struct evbuffer *in = conn_input(p->c);
    char err[256];

    size_t len = evbuffer_get_length(in), sp;
    const char *d = (const char *)evbuffer_pullup(in, -1);

    sp = strspn(d, " ") < len ? strspn(d, " ") : len;
    evbuffer_drain(in, sp);
    if (evbuffer_get_length(in) < 10)
        return;
    assert_memory_equal(evbuffer_pullup(in, 10), "<proceed/>", 10);
    evbuffer_drain(in, 10);
    assert_int_equal(conn_starttls(p->c, cli_ctx, TLS_ROLE_CLIENT, "a.test", "client.test", NULL,
                                   err, sizeof(err)),
                     0);
    p->on_read = NULL;
}

static void
test_starttls_large_preamble(void **state)
{
    struct peer *cli = &slots[0], *srv = &slots[1];

    /* Plaintext queued before STARTTLS that the kernel cannot take at once must all go
     * out in the clear before the handshake starts. */
    peer_init(cli);
    peer_init(srv);
    pair(cli, srv, PLAIN);
    small_socket_buffers(cli->c);
    small_socket_buffers(srv->c);
    srv->on_read = srv_starttls_read;
    srv->step = 512 * 1024;
    cli->on_read = cli_proceed_read;
    conn_write(cli->c, "<starttls/> ", 12);
    RUN_UNTIL(cli->nev[CONN_EV_TLS_UP] && srv->nev[CONN_EV_TLS_UP]);
    assert_true(conn_stats(srv->c)->bytes_out >= 512 * 1024 + 10);
    conn_write(srv->c, "<features/>", 11);
    RUN_UNTIL(evbuffer_get_length(cli->got) == 11);
    peer_done(cli);
    peer_done(srv);
}

static void
test_starttls(void **state)
{
    struct peer *cli = &slots[0], *srv = &slots[1];
    const struct tls_info *ci, *si;

    peer_init(cli);
    peer_init(srv);
    pair(cli, srv, PLAIN);
    srv->on_read = srv_starttls_read;
    cli->on_read = cli_proceed_read;
    /* The client's pipelined "X" after <starttls/> is what RFC 6120 §5.4.3.3 forbids:
     * the conn must not feed it to TLS nor drop it; it stays for the owner to judge. */
    conn_write(cli->c, "<starttls/>X", 12);
    RUN_UNTIL(cli->nev[CONN_EV_TLS_UP] && srv->nev[CONN_EV_TLS_UP]);
    assert_int_equal(evbuffer_get_length(conn_input(srv->c)), 1);
    evbuffer_drain(conn_input(srv->c), 1);
    assert_true(conn_is_tls(cli->c));
    ci = conn_tls_info(cli->c);
    si = conn_tls_info(srv->c);
    assert_non_null(ci);
    assert_non_null(si);
    assert_true(ci->chain_valid);
    assert_string_equal(si->sni, "a.test");
    assert_true(si->peer_cert);
    assert_string_equal(si->xmpp_addrs[0], "client.test");
    assert_null(ci->alpn);
    assert_non_null(conn_ssl(cli->c));
    conn_write(cli->c, "<stream:stream>", 15);
    conn_write(srv->c, "<stream:features/>", 18);
    RUN_UNTIL(evbuffer_get_length(srv->got) == 15 && evbuffer_get_length(cli->got) == 18);
    assert_true(got_eq(srv, "<stream:stream>"));
    assert_true(got_eq(cli, "<stream:features/>"));
    peer_done(cli);
    peer_done(srv);
}

static void
test_direct_tls_alpn(void **state)
{
    struct peer *cli = &slots[0], *srv = &slots[1];
    const struct tls_info *ci, *si;

    peer_init(cli);
    peer_init(srv);
    pair_ex(cli, srv, DIRECT_TLS, srv_ctx, cli_ctx, "a.test", TLS_ALPN_XMPP_SERVER);
    ci = conn_tls_info(cli->c);
    si = conn_tls_info(srv->c);
    assert_string_equal(ci->alpn, "xmpp-server");
    assert_string_equal(si->alpn, "xmpp-server");
    assert_string_equal(ci->version, "TLSv1.3");
    assert_true(ci->chain_valid);
    assert_int_equal(ci->nsrv_ids, 1);
    assert_string_equal(ci->srv_ids[0], "_xmpp-server.a.test");
    assert_string_equal(ci->xmpp_addrs[0], "a.test");
    assert_string_equal(ci->dns_names[0], "a.test");
    assert_string_equal(ci->subject_cn, "a.test");
    assert_true(si->peer_cert);
    assert_true(si->chain_valid);
    assert_string_equal(si->dns_names[0], "client.test");
    /* Nothing went out in the clear before the handshake. */
    assert_int_equal(conn_stats(cli->c)->writes, 0);
    conn_write(srv->c, "<stream:stream>", 15);
    RUN_UNTIL(evbuffer_get_length(cli->got) == 15);
    peer_done(cli);
    peer_done(srv);
}

static void
test_chain_results(void **state)
{
    struct peer *cli = &slots[0], *srv = &slots[1];
    const struct tls_info *ci;

    peer_init(cli);
    peer_init(srv);
    pair_ex(cli, srv, DIRECT_TLS, other_ctx, cli_ctx, "a.test", NULL);
    ci = conn_tls_info(cli->c);
    assert_true(ci->peer_cert);
    assert_false(ci->chain_valid);
    assert_int_equal(ci->verify_error, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
    peer_done(cli);
    peer_done(srv);

    peer_init(cli);
    peer_init(srv);
    pair_ex(cli, srv, DIRECT_TLS, expired_ctx, cli_ctx, "a.test", NULL);
    ci = conn_tls_info(cli->c);
    assert_false(ci->chain_valid);
    assert_int_equal(ci->verify_error, X509_V_ERR_CERT_HAS_EXPIRED);
    peer_done(cli);
    peer_done(srv);
}

/* --- no data lost at close --- */

#define BIG     (1024 * 1024)
#define MARKER  "</stream:stream>"
#define MARKLEN (sizeof(MARKER) - 1)

static void
fill_pattern(struct conn *c, size_t n)
{
    unsigned char buf[4096];

    for (size_t off = 0; off < n;) {
        size_t k = n - off < sizeof(buf) ? n - off : sizeof(buf);
        for (size_t i = 0; i < k; i++)
            buf[i] = (unsigned char)((off + i) * 7 + 3);
        assert_int_equal(conn_write(c, buf, k), 0);
        off += k;
    }
}

static void
check_pattern(struct evbuffer *b, size_t n)
{
    unsigned char *p = evbuffer_pullup(b, -1);

    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(i * 7 + 3))
            fail_msg("byte %zu differs", i);
}

static void
no_loss_at_close(enum mode mode)
{
    struct peer *cli = &slots[0], *srv = &slots[1];

    peer_init(cli);
    peer_init(srv);
    pair(cli, srv, mode);
    /* The peer writes a lot, then its last words, then closes at once. */
    fill_pattern(srv->c, BIG);
    conn_write(srv->c, MARKER, MARKLEN);
    conn_close(srv->c);
    srv->c = NULL;
    RUN_UNTIL(cli->nev[CONN_EV_EOF] || cli->nev[CONN_EV_ERROR]);
    assert_int_equal(cli->nev[CONN_EV_ERROR], 0);
    /* Everything, marker included, was delivered before the EOF event. */
    assert_int_equal(cli->got_at_eof, BIG + MARKLEN);
    check_pattern(cli->got, BIG);
    assert_memory_equal(evbuffer_pullup(cli->got, -1) + BIG, MARKER, MARKLEN);
    if (mode == DIRECT_TLS)
        assert_string_equal(cli->reason, "TLS close_notify");
    peer_done(cli);
    peer_done(srv);
}

static void
test_no_loss_at_close_plain(void **state)
{
    no_loss_at_close(PLAIN);
}

static void
test_no_loss_at_close_tls(void **state)
{
    no_loss_at_close(DIRECT_TLS);
}

/* A reader slowed by a small high-water mark still gets every byte and then EOF. */
static void
test_no_loss_small_highwater_tls(void **state)
{
    struct peer *cli = &slots[0], *srv = &slots[1];
    struct conn_limits lim = {.read_high = 1000, .write_high = 1 << 20, .write_low = 1 << 16};

    peer_init(cli);
    peer_init(srv);
    pair(cli, srv, DIRECT_TLS);
    conn_set_limits(cli->c, &lim);
    fill_pattern(srv->c, BIG / 4);
    conn_write(srv->c, MARKER, MARKLEN);
    conn_close(srv->c);
    srv->c = NULL;
    RUN_UNTIL(cli->nev[CONN_EV_EOF] || cli->nev[CONN_EV_ERROR]);
    assert_int_equal(cli->got_at_eof, BIG / 4 + MARKLEN);
    check_pattern(cli->got, BIG / 4);
    peer_done(cli);
    peer_done(srv);
}

/*
 * The closing side has unread input: a plain close() would answer it with a RST that
 * can destroy the tail of what it sent before the peer read it. The lingering close
 * reads and discards until the peer closes, so everything arrives.
 */
static void
close_with_unread_input(enum mode mode)
{
    struct peer *cli = &slots[0], *srv = &slots[1];
    struct conn_limits lim = {.read_high = 1, .write_high = 1 << 20, .write_low = 1 << 16};

    peer_init(cli);
    peer_init(srv);
    pair(cli, srv, mode);
    conn_set_limits(srv->c, &lim);
    srv->hold = true;
    fill_pattern(cli->c, 512 * 1024); /* srv will not read most of this */
    conn_pause_read(cli->c);
    run_for(50);
    fill_pattern(srv->c, BIG);
    conn_write(srv->c, MARKER, MARKLEN);
    conn_close(srv->c);
    srv->c = NULL;
    run_for(100); /* srv pushes what the kernel takes while cli is not reading */
    conn_resume_read(cli->c);
    RUN_UNTIL(cli->nev[CONN_EV_EOF] || cli->nev[CONN_EV_ERROR]);
    assert_int_equal(cli->nev[CONN_EV_ERROR], 0);
    assert_int_equal(cli->got_at_eof, BIG + MARKLEN);
    check_pattern(cli->got, BIG);
    peer_done(cli);
    peer_done(srv);
}

static void
test_close_with_unread_input_plain(void **state)
{
    close_with_unread_input(PLAIN);
}

static void
test_close_with_unread_input_tls(void **state)
{
    close_with_unread_input(DIRECT_TLS);
}

/* A peer that never reads cannot hold a closing conn beyond close_ms. */
static void
test_close_timeout(void **state)
{
    struct peer *cli = &slots[0], *srv = &slots[1];
    struct conn_timeouts to = {.connect_ms = 1000, .tls_ms = 1000, .close_ms = 200};
    int64_t t0;

    peer_init(cli);
    peer_init(srv);
    pair(cli, srv, DIRECT_TLS);
    small_socket_buffers(cli->c);
    small_socket_buffers(srv->c);
    conn_pause_read(cli->c);
    conn_set_timeouts(srv->c, &to);
    fill_pattern(srv->c, 4 * BIG);
    t0 = now_ms();
    conn_close(srv->c);
    srv->c = NULL;
    RUN_UNTIL(conn_count() == 1);
    assert_true(now_ms() - t0 >= 190);
    /* The reader then sees the stream cut short: a reset or EOF, never a hang. */
    conn_resume_read(cli->c);
    RUN_UNTIL(cli->nev[CONN_EV_EOF] || cli->nev[CONN_EV_ERROR]);
    assert_true(conn_stats(cli->c)->bytes_in < 4 * BIG);
    peer_done(cli);
    peer_done(srv);
}

static void
test_eof_without_close_notify(void **state)
{
    struct peer *cli = &slots[0], *srv = &slots[1];

    peer_init(cli);
    peer_init(srv);
    pair(cli, srv, DIRECT_TLS);
    conn_free(srv->c); /* immediate teardown: no close_notify */
    srv->c = NULL;
    RUN_UNTIL(cli->nev[CONN_EV_EOF] || cli->nev[CONN_EV_ERROR]);
    assert_int_equal(cli->nev[CONN_EV_EOF], 1);
    assert_string_equal(cli->reason, "closed without TLS close_notify");
    /* A graceful close after that sends nothing through the broken session. */
    conn_close(cli->c);
    cli->c = NULL;
    peer_done(cli);
    peer_done(srv);
}

/* Direct TLS: what the owner queues before the handshake goes out encrypted. */
static void
test_direct_tls_early_output(void **state)
{
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    struct peer *cli = &slots[0], *srv = &slots[1];
    struct conn_cbs cb, sb;
    char err[256];
    int lfd;

    peer_init(cli);
    peer_init(srv);
    cb = peer_cbs(cli);
    sb = peer_cbs(srv);
    lfd = listener(&ss, &sslen, 4);
    cli->c = conn_connect(base, (struct sockaddr *)&ss, sslen, &cb, err, sizeof(err));
    assert_int_equal(conn_starttls(cli->c, cli_ctx, TLS_ROLE_CLIENT, "a.test", NULL,
                                   TLS_ALPN_XMPP_SERVER, err, sizeof(err)),
                     0);
    assert_non_null(conn_ssl(cli->c));
    conn_write(cli->c, "<stream:stream to='a.test'>", 27);
    RUN_UNTIL(cli->nev[CONN_EV_CONNECTED]);
    srv->c = conn_new_accepted(base, accept4(lfd, NULL, NULL, SOCK_NONBLOCK), &sb);
    close(lfd);
    assert_int_equal(
        conn_starttls(srv->c, srv_ctx, TLS_ROLE_SERVER, NULL, NULL, NULL, err, sizeof(err)), 0);
    RUN_UNTIL(evbuffer_get_length(srv->got) == 27);
    assert_true(got_eq(srv, "<stream:stream to='a.test'>"));
    assert_int_equal(conn_stats(cli->c)->writes, 0); /* no plaintext write at all */
    peer_done(cli);
    peer_done(srv);
}

/* Direct TLS against a peer that speaks plaintext: an error that says why. */
static void
test_tls_handshake_error(void **state)
{
    struct peer *cli = &slots[0], *srv = &slots[1];
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    struct conn_cbs cb, sb;
    char err[256];
    int lfd;

    peer_init(cli);
    peer_init(srv);
    cb = peer_cbs(cli);
    sb = peer_cbs(srv);
    lfd = listener(&ss, &sslen, 4);
    cli->c = conn_connect(base, (struct sockaddr *)&ss, sslen, &cb, err, sizeof(err));
    assert_int_equal(
        conn_starttls(cli->c, cli_ctx, TLS_ROLE_CLIENT, "a.test", NULL, NULL, err, sizeof(err)), 0);
    RUN_UNTIL(cli->nev[CONN_EV_CONNECTED]);
    srv->c = conn_new_accepted(base, accept4(lfd, NULL, NULL, SOCK_NONBLOCK), &sb);
    close(lfd);
    conn_write(srv->c, "<?xml version='1.0'?><stream:stream>\n", 37);
    RUN_UNTIL(cli->nev[CONN_EV_ERROR]);
    assert_int_equal(cli->nev[CONN_EV_TLS_UP], 0);
    assert_non_null(strstr(cli->reason, "TLS handshake: "));
    assert_null(conn_tls_info(cli->c));
    peer_done(cli);
    peer_done(srv);
}

/* --- backpressure --- */

static void
small_socket_buffers(struct conn *c)
{
    int sz = 32 * 1024;

    setsockopt(conn_fd(c), SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    setsockopt(conn_fd(c), SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
}

static void
backpressure(enum mode mode)
{
    struct peer *cli = &slots[0], *srv = &slots[1];
    struct conn_limits rlim = {.read_high = 64 * 1024, .write_high = 1 << 20, .write_low = 0};
    struct conn_limits wlim = {
        .read_high = 64 * 1024, .write_high = 1 << 20, .write_low = 256 * 1024};
    const size_t total = 4 * 1024 * 1024;
    uint64_t reads;
    size_t out1;

    peer_init(cli);
    peer_init(srv);
    pair(cli, srv, mode);
    small_socket_buffers(cli->c);
    small_socket_buffers(srv->c);
    conn_set_limits(cli->c, &rlim);
    conn_set_limits(srv->c, &wlim);
    cli->hold = true; /* the reader does not consume */
    fill_pattern(srv->c, total);
    assert_true(conn_output_full(srv->c));
    /* Let it run well past the point where the socket buffers fill. */
    /* Until nothing moves for 100 ms (bounded, for a loaded machine). */
    reads = UINT64_MAX;
    out1 = 0;
    for (int i = 0; i < 50 && (conn_stats(cli->c)->reads != reads ||
                               evbuffer_get_length(conn_output(srv->c)) != out1);
         i++) {
        reads = conn_stats(cli->c)->reads;
        out1 = evbuffer_get_length(conn_output(srv->c));
        run_for(100);
    }
    /* The reader stopped at its mark: no more reads, input bounded, writer stuck. */
    assert_int_equal(conn_stats(cli->c)->reads, reads);
    assert_true(evbuffer_get_length(conn_input(cli->c)) >= 64 * 1024);
    assert_true(evbuffer_get_length(conn_input(cli->c)) <= 64 * 1024 + 64 * 1024);
    assert_int_equal(evbuffer_get_length(conn_output(srv->c)), out1);
    assert_true(out1 > total / 2);
    assert_true(conn_output_full(srv->c));
    assert_int_equal(srv->nev[CONN_EV_DRAINED], 0);
    /* Drained by the owner (outside a read callback): reading resumes by itself. */
    cli->hold = false;
    evbuffer_add_buffer(cli->got, conn_input(cli->c));
    RUN_UNTIL(evbuffer_get_length(cli->got) == total);
    check_pattern(cli->got, total);
    assert_int_equal(srv->nev[CONN_EV_DRAINED], 1);
    assert_false(conn_output_full(srv->c));
    peer_done(cli);
    peer_done(srv);
}

static void
test_backpressure_plain(void **state)
{
    backpressure(PLAIN);
}

static void
test_backpressure_tls(void **state)
{
    backpressure(DIRECT_TLS);
}

static void
test_pause_resume(void **state)
{
    struct peer *cli = &slots[0], *srv = &slots[1];

    peer_init(cli);
    peer_init(srv);
    pair(cli, srv, DIRECT_TLS);
    conn_pause_read(cli->c);
    conn_write(srv->c, "abc", 3);
    run_for(100);
    assert_int_equal(evbuffer_get_length(cli->got), 0);
    conn_resume_read(cli->c);
    RUN_UNTIL(evbuffer_get_length(cli->got) == 3);
    peer_done(cli);
    peer_done(srv);
}

/* --- timeouts --- */

static void
test_tls_timeout_client(void **state)
{
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    struct conn_timeouts to = {.connect_ms = 1000, .tls_ms = 200, .close_ms = 1000};
    struct peer *cli = &slots[0];
    struct conn_cbs cb;
    char err[256];
    int lfd, fd;
    int64_t t0;

    peer_init(cli);
    cb = peer_cbs(cli);
    lfd = listener(&ss, &sslen, 4);
    cli->c = conn_connect(base, (struct sockaddr *)&ss, sslen, &cb, err, sizeof(err));
    conn_set_timeouts(cli->c, &to);
    assert_int_equal(
        conn_starttls(cli->c, cli_ctx, TLS_ROLE_CLIENT, "a.test", NULL, NULL, err, sizeof(err)), 0);
    RUN_UNTIL(cli->nev[CONN_EV_CONNECTED]);
    t0 = now_ms();
    fd = accept(lfd, NULL, NULL); /* accepts, never speaks */
    RUN_UNTIL(cli->nev[CONN_EV_TIMEOUT_TLS] || cli->nev[CONN_EV_ERROR]);
    assert_int_equal(cli->nev[CONN_EV_TIMEOUT_TLS], 1);
    assert_true(now_ms() - t0 >= 150);
    assert_int_equal(cli->nev[CONN_EV_TLS_UP], 0);
    peer_done(cli);
    close(fd);
    close(lfd);
}

static void
test_tls_timeout_server(void **state)
{
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    struct conn_timeouts to = {.connect_ms = 1000, .tls_ms = 200, .close_ms = 1000};
    struct peer *srv = &slots[1];
    struct conn_cbs cb;
    char err[256];
    int lfd, cfd, fd;

    peer_init(srv);
    cb = peer_cbs(srv);
    lfd = listener(&ss, &sslen, 4);
    cfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(cfd, (struct sockaddr *)&ss, sslen), 0); /* never speaks */
    fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
    srv->c = conn_new_accepted(base, fd, &cb);
    conn_set_timeouts(srv->c, &to);
    assert_int_equal(
        conn_starttls(srv->c, srv_ctx, TLS_ROLE_SERVER, NULL, NULL, NULL, err, sizeof(err)), 0);
    RUN_UNTIL(srv->nev[CONN_EV_TIMEOUT_TLS] || srv->nev[CONN_EV_ERROR]);
    assert_int_equal(srv->nev[CONN_EV_TIMEOUT_TLS], 1);
    assert_non_null(strstr(srv->reason, "TLS handshake timed out"));
    peer_done(srv);
    close(cfd);
    close(lfd);
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct peer *p = arg;

    conn_write(p->c, ".", 1);
    p->step++;
}

static void
test_idle_timeout(void **state)
{
    struct peer *cli = &slots[0], *srv = &slots[1];
    struct conn_timeouts to = {
        .connect_ms = 1000, .tls_ms = 1000, .idle_ms = 150, .close_ms = 1000};
    struct event *tick;
    struct timeval tv = {0, 50 * 1000};

    peer_init(cli);
    peer_init(srv);
    pair(cli, srv, DIRECT_TLS);
    conn_set_timeouts(srv->c, &to);
    /* A byte every 50 ms keeps the stream alive. */
    tick = event_new(base, -1, EV_PERSIST, tick_cb, cli);
    event_add(tick, &tv);
    RUN_UNTIL(cli->step >= 8);
    event_free(tick);
    assert_int_equal(srv->nev[CONN_EV_TIMEOUT_IDLE], 0);
    RUN_UNTIL(evbuffer_get_length(srv->got) == 8);
    /* Then silence: the idle timeout fires once per idle period, counted from the last
     * byte read. */
    RUN_UNTIL(srv->nev[CONN_EV_TIMEOUT_IDLE] == 1);
    assert_true(srv->t_idle - srv->t_last_read >= 140);
    RUN_UNTIL(srv->nev[CONN_EV_TIMEOUT_IDLE] == 2);
    peer_done(cli);
    peer_done(srv);
}

/* --- coalescing --- */

static void
burst_read(struct peer *p)
{
    /* One callback, many stanzas: they must leave as one record / one write. */
    evbuffer_drain(conn_input(p->c), evbuffer_get_length(conn_input(p->c)));
    for (int i = 0; i < 200; i++)
        conn_printf(p->c, "<message id='%03d'>hi</message>", i);
    p->on_read = NULL;
}

static void
coalescing(enum mode mode)
{
    struct peer *cli = &slots[0], *srv = &slots[1];
    uint64_t w0, sw0;
    const size_t each = strlen("<message id='000'>hi</message>");

    peer_init(cli);
    peer_init(srv);
    pair(cli, srv, mode);
    w0 = conn_stats(srv->c)->writes;
    sw0 = conn_stats(srv->c)->ssl_writes;
    srv->on_read = burst_read;
    conn_write(cli->c, "go", 2);
    RUN_UNTIL(evbuffer_get_length(cli->got) == 200 * each);
    if (mode == DIRECT_TLS) {
        assert_int_equal(conn_stats(srv->c)->ssl_writes - sw0, 1);
        assert_int_equal(conn_stats(srv->c)->writes, 0);
    } else {
        assert_int_equal(conn_stats(srv->c)->writes - w0, 1);
    }
    peer_done(cli);
    peer_done(srv);
}

static void
test_coalescing_plain(void **state)
{
    coalescing(PLAIN);
}

static void
test_coalescing_tls(void **state)
{
    coalescing(DIRECT_TLS);
}

/* --- owners freeing or closing from inside callbacks --- */

static void
free_in_read(struct peer *p)
{
    conn_free(p->c);
    p->c = NULL;
    p->step++;
}

static void
test_free_inside_read(void **state)
{
    struct peer *cli = &slots[0], *srv = &slots[1];

    peer_init(cli);
    peer_init(srv);
    pair(cli, srv, DIRECT_TLS);
    cli->on_read = free_in_read;
    /* Several records and a close in flight: the handler must stop after the free. */
    fill_pattern(srv->c, 100000);
    conn_close(srv->c);
    srv->c = NULL;
    RUN_UNTIL(cli->step == 1 && conn_count() == 0);
    assert_int_equal(cli->nev[CONN_EV_EOF], 0);
    peer_done(cli);
    peer_done(srv);
}

static void
free_on_event(struct peer *p, enum conn_event ev)
{
    if (ev == (enum conn_event)p->step) {
        conn_free(p->c);
        p->c = NULL;
    }
}

static void
test_free_inside_events(void **state)
{
    struct peer *cli = &slots[0], *srv = &slots[1];

    /* On TLS up: the handshake handler still has work queued for this conn. */
    peer_init(cli);
    peer_init(srv);
    cli->step = CONN_EV_TLS_UP;
    cli->on_event = free_on_event;
    srv->step = CONN_EV_TLS_UP;
    srv->on_event = free_on_event;
    pair_ex(cli, srv, DIRECT_TLS, srv_ctx, cli_ctx, "a.test", NULL);
    assert_null(cli->c);
    assert_null(srv->c);
    RUN_UNTIL(conn_count() == 0);
    peer_done(cli);
    peer_done(srv);

    /* On EOF, with data delivered in the same pass. */
    peer_init(cli);
    peer_init(srv);
    pair(cli, srv, PLAIN);
    cli->step = CONN_EV_EOF;
    cli->on_event = free_on_event;
    conn_write(srv->c, "bye", 3);
    conn_close(srv->c);
    srv->c = NULL;
    RUN_UNTIL(cli->c == NULL);
    assert_true(got_eq(cli, "bye"));
    peer_done(cli);
    peer_done(srv);

    /* On connect error. */
    peer_init(cli);
    cli->step = CONN_EV_ERROR;
    cli->on_event = free_on_event;
    {
        struct sockaddr_storage ss;
        socklen_t sslen = sizeof(ss);
        struct conn_cbs cb = peer_cbs(cli);
        char err[256];

        close(listener(&ss, &sslen, 1));
        cli->c = conn_connect(base, (struct sockaddr *)&ss, sslen, &cb, err, sizeof(err));
        RUN_UNTIL(cli->c == NULL);
    }
    peer_done(cli);
}

static void
reply_and_close(struct peer *p)
{
    evbuffer_drain(conn_input(p->c), evbuffer_get_length(conn_input(p->c)));
    conn_write(p->c, "</stream:stream>", 16);
    conn_close(p->c);
    p->c = NULL;
}

static void
test_close_inside_read(void **state)
{
    struct peer *cli = &slots[0], *srv = &slots[1];

    peer_init(cli);
    peer_init(srv);
    pair(cli, srv, DIRECT_TLS);
    srv->on_read = reply_and_close;
    conn_write(cli->c, "</stream:stream>", 16);
    RUN_UNTIL(cli->nev[CONN_EV_EOF]);
    assert_true(got_eq(cli, "</stream:stream>"));
    assert_int_equal(cli->got_at_eof, 16);
    assert_string_equal(cli->reason, "TLS close_notify");
    peer_done(cli);
    peer_done(srv);
}

/* --- measurements (S2S_MEASURE=1), not assertions --- */

static void
measure_throughput(void **state)
{
    struct peer *cli = &slots[0], *srv = &slots[1];
    const size_t total = 256u * 1024 * 1024, chunk = 1 << 20;
    size_t sent = 0;
    int64_t t0;

    if (!getenv("S2S_MEASURE"))
        skip();
    peer_init(cli);
    peer_init(srv);
    pair(cli, srv, getenv("S2S_MEASURE_PLAIN") ? PLAIN : DIRECT_TLS);
    cli->on_read = NULL;
    cli->hold = true;
    t0 = now_ms();
    while (sent < total || conn_stats(cli->c)->bytes_in < total) {
        if (sent < total && evbuffer_get_length(conn_output(srv->c)) < chunk) {
            fill_pattern(srv->c, chunk);
            sent += chunk;
        }
        event_base_loop(base, EVLOOP_ONCE);
        evbuffer_drain(conn_input(cli->c), evbuffer_get_length(conn_input(cli->c)));
    }
    fprintf(stderr, "MEASURE throughput: %zu MiB in %lld ms = %.0f MiB/s (%s)\n", total >> 20,
            (long long)(now_ms() - t0),
            (double)(total >> 20) * 1000.0 / (double)(now_ms() - t0 + 1),
            conn_is_tls(cli->c) ? conn_tls_info(cli->c)->cipher : "plain");
    peer_done(cli);
    peer_done(srv);
}

static long
rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;

    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld", &v) == 1)
            break;
    if (f)
        fclose(f);
    return v;
}

static void
measure_idle_memory(void **state)
{
    enum { N = 500 };
    static struct peer cli[N], srv[N];
    long r0, r1;
    size_t h0, h1;
    struct rlimit rl;

    if (!getenv("S2S_MEASURE"))
        skip();
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 4 * N)
        skip();
    r0 = rss_kib();
    h0 = mallinfo2().uordblks;
    for (int i = 0; i < N; i++) {
        peer_init(&cli[i]);
        peer_init(&srv[i]);
        pair(&cli[i], &srv[i], getenv("S2S_MEASURE_PLAIN") ? PLAIN : DIRECT_TLS);
        conn_write(cli[i].c, "<stream:stream>", 15);
        conn_write(srv[i].c, "<stream:stream>", 15);
        RUN_UNTIL(evbuffer_get_length(srv[i].got) == 15 && evbuffer_get_length(cli[i].got) == 15);
        /* What an owner's parser does: consume, keep nothing. */
        evbuffer_free(srv[i].got);
        evbuffer_free(cli[i].got);
        srv[i].got = cli[i].got = NULL;
    }
    r1 = rss_kib();
    h1 = mallinfo2().uordblks;
    fprintf(stderr,
            "MEASURE idle %s conns: %d pairs, RSS +%ld KiB = %.1f KiB per conn, heap in use "
            "+%zu KiB = %.1f KiB per conn\n",
            getenv("S2S_MEASURE_PLAIN") ? "plain" : "TLS", N, r1 - r0,
            (double)(r1 - r0) / (2.0 * N), (h1 - h0) / 1024,
            (double)(h1 - h0) / 1024.0 / (2.0 * N));
    for (int i = 0; i < N; i++) {
        peer_done(&cli[i]);
        peer_done(&srv[i]);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sockaddr),
        cmocka_unit_test_setup_teardown(test_plain_exchange, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_starttls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_starttls_large_preamble, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_tls_alpn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_results, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_loss_at_close_plain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_loss_at_close_tls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_loss_small_highwater_tls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_with_unread_input_plain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_with_unread_input_tls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eof_without_close_notify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_tls_early_output, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_handshake_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backpressure_plain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backpressure_tls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_timeout_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_timeout_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_coalescing_plain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_coalescing_tls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_inside_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_inside_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_inside_read, setup, teardown),
        cmocka_unit_test_setup_teardown(measure_throughput, setup, teardown),
        cmocka_unit_test_setup_teardown(measure_idle_memory, setup, teardown),
    };

    if (getenv("TEST_FILTER"))
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
