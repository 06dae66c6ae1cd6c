/*
 * s2s/out.c over real loopback TCP and TLS. The peer is either our own inbound session
 * (s2s/in.c, tested on its own in test_in.c) hosting b.test, so that both state machines
 * meet as two servers would, or a scripted peer for the error paths: no STARTTLS, a
 * peer that closes mid-negotiation, one that never answers, a certificate that a
 * "secure" domain refuses, dialback refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "dialback/key.h"
#include "s2s/in.h"
#include "s2s/out.h"
#include "s2s/tls.h"
#include "tests/unit/helpers/testca.h"
#include "tests/unit/helpers/xpeer.h"

#define SECRET_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" /* a.test's proxy (us) */
#define SECRET_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb" /* b.test */

static struct testca *ca, *ca2;
static struct tls_ctx *a_ctx, *b_ctx, *a_bad, *b_bad;

static struct event_base *base;
static int lfd;
static struct sockaddr_storage lss;
static socklen_t lsslen;
static struct out_session *out;
static struct in_session *in;
static struct xpeer sp; /* scripted server peer */

static struct {
    unsigned ready, failed, closed, in_stanzas, in_verifies, verify_results, bidi_stanzas;
    enum xmpp_stanza_error cond;
    char why[256];
    char v_local[64], v_remote[64], v_id[64], v_key[256];
    enum dialback_type vr_type;
    enum dialback_type in_verdict; /* what the in side answers db:result with */
    char last_body_from[128];
} ev;

/* --- the out side ---------------------------------------------------------------------- */

static void
o_ready(struct out_session *s, void *arg)
{
    (void)s;
    (void)arg;
    ev.ready++;
}

static void
o_failed(struct out_session *s, enum xmpp_stanza_error cond, const char *why, void *arg)
{
    (void)s;
    (void)arg;
    ev.failed++;
    ev.cond = cond;
    snprintf(ev.why, sizeof(ev.why), "%s", why);
}

static void
o_verify_result(struct out_session *s, const char *local, const char *remote, const char *id,
                enum dialback_type type, enum dialback_cond cond, void *arg)
{
    (void)s;
    (void)local;
    (void)remote;
    (void)id;
    (void)cond;
    (void)arg;
    ev.verify_results++;
    ev.vr_type = type;
}

static void
o_closed(struct out_session *s, void *arg)
{
    (void)arg;
    assert_ptr_equal(s, out);
    ev.closed++;
    out = NULL;
}

static void
o_stanza(struct out_session *s, struct stanza *st, void *arg)
{
    (void)s;
    (void)arg;
    ev.bidi_stanzas++;
    stanza_free(st);
}

static const struct out_cbs ocbs = {
    .ready = o_ready,
    .failed = o_failed,
    .verify_result = o_verify_result,
    .stanza_take = o_stanza,
    .closed = o_closed,
};

static struct out_opts
oopts(struct tls_ctx *ctx)
{
    struct out_opts o = {0};

    o.tls = ctx;
    o.require_tls = true;
    o.dialback = true;
    o.dialback_secret = SECRET_A;
    o.level = CONF_SEC_DEFAULT;
    return o;
}

/* --- the in side (b.test) -------------------------------------------------------------- */

static bool
i_hosted(const char *d, void *arg)
{
    (void)arg;
    return strcmp(d, "b.test") == 0;
}

static void
i_stanza(struct in_session *s, struct stanza *st, void *arg)
{
    (void)s;
    (void)arg;
    ev.in_stanzas++;
    snprintf(ev.last_body_from, sizeof(ev.last_body_from), "%s", stanza_attr(st, "from"));
    stanza_free(st);
}

/* b.test's receiving role: it would ask a.test's authoritative server; here the test
 * plays that server with a.test's secret, as XEP-0185 defines the key. */
static void
i_verify(struct in_session *s, const char *local, const char *remote, const char *id,
         const char *key, void *arg)
{
    bool ok = dialback_key_check(SECRET_A, local, remote, id, key, strlen(key));

    (void)arg;
    ev.in_verifies++;
    snprintf(ev.v_key, sizeof(ev.v_key), "%s", key);
    in_dialback_verdict(s, local, remote,
                        ev.in_verdict != DIALBACK_TYPE_NONE ? ev.in_verdict
                        : ok                                ? DIALBACK_TYPE_VALID
                                                            : DIALBACK_TYPE_INVALID,
                        DIALBACK_OK);
}

static void
i_closed(struct in_session *s, void *arg)
{
    (void)s;
    (void)arg;
    in = NULL;
}

static const struct in_cbs icbs = {i_hosted, NULL, i_stanza, i_verify, NULL, i_closed, NULL};

/* Connects an out session for (a.test, b.test) to a fresh in session at b.test. */
static void
start_pair(struct tls_ctx *out_ctx, struct tls_ctx *in_ctx, const struct out_opts *oo)
{
    struct in_opts io = {0};
    struct conn_cbs none = {0};
    struct conn *c;
    char err[256];
    int fd;

    c = conn_connect(base, (struct sockaddr *)&lss, lsslen, &none, err, sizeof(err));
    assert_non_null(c);
    out = out_new(base, c, "a.test", "b.test", oo, &ocbs);
    for (int i = 0; i < 1000 && (fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) < 0;
         i++)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_true(fd >= 0);
    io.tls = in_ctx;
    io.require_tls = true;
    io.dialback = true;
    io.dialback_secret = SECRET_B;
    in = in_new(base, conn_new_accepted(base, fd, NULL), &io, &icbs);
}

/* Connects an out session to the scripted peer sp. */
static void
start_scripted(const struct out_opts *oo)
{
    struct conn_cbs none = {0};
    struct conn *c;
    char err[256];
    int fd = -1;

    c = conn_connect(base, (struct sockaddr *)&lss, lsslen, &none, err, sizeof(err));
    assert_non_null(c);
    out = out_new(base, c, "a.test", "b.test", oo, &ocbs);
    for (int i = 0; i < 1000 && (fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) < 0;
         i++)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    assert_true(fd >= 0);
    xp_accept(base, &sp, fd);
}

static bool
done_cond(void *arg)
{
    (void)arg;
    return ev.ready > 0 || ev.failed > 0 || ev.closed > 0;
}

static void
wait_done(void)
{
    assert_true(xp_run_until(base, done_cond, NULL, 10));
}

static bool
two_stanzas(void *arg)
{
    (void)arg;
    return ev.in_stanzas >= 2;
}

/* --- fixtures -------------------------------------------------------------------------- */

static int
group_setup(void **state)
{
    static const char *const a_dns[] = {"a.test", NULL};
    static const char *const b_dns[] = {"b.test", NULL};
    const struct testca_leaf a = {.dns = a_dns}, b = {.dns = b_dns};
    struct testca_files fa, fb, fao, fbo;
    struct tls_settings s = {0};
    struct tls_host h;
    char err[512];

    (void)state;
    signal(SIGPIPE, SIG_IGN);
    if ((ca = testca_new("Out CA")) == NULL || (ca2 = testca_new("Other CA")) == NULL ||
        testca_issue(ca, "a", &a, &fa) || testca_issue(ca, "b", &b, &fb) ||
        testca_issue(ca2, "ao", &a, &fao) || testca_issue(ca2, "bo", &b, &fbo))
        return -1;
    s.ca_file = testca_cert(ca);
    h = (struct tls_host){"a.test", fa.cert, fa.key};
    a_ctx = tls_ctx_new(&s, &h, 1, err, sizeof(err));
    h = (struct tls_host){"b.test", fb.cert, fb.key};
    b_ctx = tls_ctx_new(&s, &h, 1, err, sizeof(err));
    h = (struct tls_host){"a.test", fao.cert, fao.key};
    a_bad = tls_ctx_new(&s, &h, 1, err, sizeof(err));
    h = (struct tls_host){"b.test", fbo.cert, fbo.key};
    b_bad = tls_ctx_new(&s, &h, 1, err, sizeof(err));
    return a_ctx && b_ctx && a_bad && b_bad ? 0 : -1;
}

static int
group_teardown(void **state)
{
    (void)state;
    tls_ctx_unref(a_ctx);
    tls_ctx_unref(b_ctx);
    tls_ctx_unref(a_bad);
    tls_ctx_unref(b_bad);
    testca_free(ca);
    testca_free(ca2);
    return 0;
}

static bool
all_gone(void *arg)
{
    (void)arg;
    return in_count() == 0 && out_count() == 0 && conn_count() == 0;
}

static int
setup(void **state)
{
    (void)state;
    memset(&ev, 0, sizeof(ev));
    base = event_base_new();
    lfd = xp_listen(&lss, &lsslen);
    return base != NULL && lfd >= 0 ? 0 : -1;
}

static int
teardown(void **state)
{
    (void)state;
    xp_done(&sp);
    if (out != NULL)
        out_close(out, "test over");
    if (in != NULL)
        in_close(in, -1, "test over");
    xp_run_until(base, all_gone, NULL, 10);
    assert_int_equal(out_count(), 0);
    assert_int_equal(in_count(), 0);
    assert_int_equal(conn_count(), 0);
    close(lfd);
    event_base_free(base);
    return 0;
}

static struct stanza *
message(const char *from, const char *to)
{
    struct stanza *st = stanza_new(STANZA_NS_COMPONENT, "message");

    stanza_elem_set_attr(st, stanza_root(st), NULL, "from", from);
    stanza_elem_set_attr(st, stanza_root(st), NULL, "to", to);
    return st;
}

/* --- tests ----------------------------------------------------------------------------- */

/* Both certificates valid: STARTTLS, SASL EXTERNAL, restart, stanzas flow. */
static void
test_sasl_external(void **state)
{
    struct out_opts o = oopts(a_ctx);

    (void)state;
    start_pair(a_ctx, b_ctx, &o);
    wait_done();
    assert_int_equal(ev.ready, 1);
    assert_int_equal(out_peerauth(out)->method, PEERAUTH_SASL_EXTERNAL);
    assert_int_equal(out_peerauth(out)->cert, PEERAUTH_CERT_VALID);
    assert_int_equal(in_peerauth(in)->method, PEERAUTH_SASL_EXTERNAL);
    assert_int_equal(ev.in_verifies, 0);
    assert_int_equal(out_send(out, message("u@a.test/r", "v@b.test")), 0);
    assert_int_equal(out_send(out, message("a.test", "b.test")), 0);
    assert_true(xp_run_until(base, two_stanzas, NULL, 10));
    assert_string_equal(ev.last_body_from, "a.test");
}

/* Our certificate is not trusted by b.test: no EXTERNAL there, dialback instead, with a
 * XEP-0185 key for (b.test, a.test, b.test's stream id). */
static void
test_dialback_valid(void **state)
{
    struct out_opts o = oopts(a_bad);

    (void)state;
    start_pair(a_bad, b_ctx, &o);
    wait_done();
    assert_int_equal(ev.ready, 1);
    assert_int_equal(ev.in_verifies, 1);
    assert_int_equal(strlen(ev.v_key), DIALBACK_KEY_HEXLEN);
    assert_int_equal(out_peerauth(out)->method, PEERAUTH_DIALBACK);
    assert_int_equal(in_peerauth(in)->method, PEERAUTH_DIALBACK);
    assert_int_equal(out_send(out, message("u@a.test", "v@b.test")), 0);
}

/* The authoritative server says invalid: the route fails with remote-server-not-found. */
static void
test_dialback_invalid(void **state)
{
    struct out_opts o = oopts(a_bad);

    (void)state;
    ev.in_verdict = DIALBACK_TYPE_INVALID;
    start_pair(a_bad, b_ctx, &o);
    wait_done();
    assert_int_equal(ev.ready, 0);
    assert_int_equal(ev.failed, 1);
    assert_int_equal(ev.cond, XMPP_STANZA_ERR_REMOTE_SERVER_NOT_FOUND);
    assert_non_null(strstr(ev.why, "invalid"));
}

/* A "secure" remote domain with a certificate we cannot verify: fail before dialback. */
static void
test_secure_domain_bad_cert(void **state)
{
    struct out_opts o = oopts(a_ctx);

    (void)state;
    o.level = CONF_SEC_SECURE;
    start_pair(a_ctx, b_bad, &o);
    wait_done();
    assert_int_equal(ev.failed, 1);
    assert_int_equal(ev.in_verifies, 0);
    assert_non_null(strstr(ev.why, "valid one is required"));
}

/* Default level, same certificate: dialback is used and works. */
static void
test_default_domain_bad_cert_dialback(void **state)
{
    struct out_opts o = oopts(a_ctx);

    (void)state;
    start_pair(a_ctx, b_bad, &o);
    wait_done();
    assert_int_equal(ev.ready, 1);
    assert_int_equal(out_peerauth(out)->cert, PEERAUTH_CERT_UNTRUSTED);
    assert_int_equal(out_peerauth(out)->method, PEERAUTH_DIALBACK);
}

/* Receiving role: a db:verify over an outbound stream, answered by b.test as
 * authoritative server from its own secret. */
static void
test_verify_request(void **state)
{
    struct out_opts o = oopts(a_ctx);
    char key[DIALBACK_KEY_BUFSIZE];

    (void)state;
    o.verify_only = true;
    start_pair(a_ctx, b_ctx, &o);
    /* b.test's key for a stream b.test opened to us with id S1 */
    assert_int_equal(dialback_key_make(SECRET_B, "a.test", "b.test", "S1", key), 0);
    assert_int_equal(out_verify(out, "a.test", "b.test", "S1", key), 0);
    assert_int_equal(out_verify(out, "a.test", "b.test", "S2", key), 0);
    for (int i = 0; i < 10000 && ev.verify_results < 2; i++)
        event_base_loop(base, EVLOOP_ONCE);
    assert_int_equal(ev.verify_results, 2);
    assert_int_equal(ev.vr_type, DIALBACK_TYPE_INVALID); /* S2: wrong id */
    assert_int_equal(ev.ready, 0);                       /* verify-only: no auth */
}

/* The peer offers no STARTTLS while TLS is required. */
static void
test_no_starttls(void **state)
{
    struct out_opts o = oopts(a_ctx);

    (void)state;
    start_scripted(&o);
    assert_true(xp_wait(base, &sp, "to='b.test'"));
    xp_send(&sp, "<stream:stream xmlns='jabber:server' "
                 "xmlns:stream='http://etherx.jabber.org/streams' id='x' version='1.0'>"
                 "<stream:features><dialback xmlns='urn:xmpp:features:dialback'/>"
                 "</stream:features>");
    wait_done();
    assert_int_equal(ev.failed, 1);
    assert_int_equal(ev.cond, XMPP_STANZA_ERR_REMOTE_SERVER_NOT_FOUND);
    assert_non_null(strstr(ev.why, "STARTTLS"));
}

/* The peer goes away in the middle of the negotiation. */
static void
test_peer_closes_mid_handshake(void **state)
{
    struct out_opts o = oopts(a_ctx);

    (void)state;
    start_scripted(&o);
    assert_true(xp_wait(base, &sp, "to='b.test'"));
    xp_send(&sp, "<stream:stream xmlns='jabber:server' "
                 "xmlns:stream='http://etherx.jabber.org/streams' id='x' version='1.0'>"
                 "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
                 "</stream:features>");
    assert_true(xp_wait(base, &sp, "<starttls"));
    xp_done(&sp);
    wait_done();
    assert_int_equal(ev.failed, 1);
    assert_int_equal(ev.ready, 0);
}

/* A peer that never answers: remote-server-timeout. */
static void
test_auth_timeout(void **state)
{
    struct out_opts o = oopts(a_ctx);

    (void)state;
    o.auth_timeout_ms = 300;
    start_scripted(&o);
    wait_done();
    assert_int_equal(ev.failed, 1);
    assert_int_equal(ev.cond, XMPP_STANZA_ERR_REMOTE_SERVER_TIMEOUT);
}

/* A TLS handshake failure (the peer answers the ClientHello with garbage). */
static void
test_tls_failure(void **state)
{
    struct out_opts o = oopts(a_ctx);

    (void)state;
    start_scripted(&o);
    assert_true(xp_wait(base, &sp, "to='b.test'"));
    xp_send(&sp, "<stream:stream xmlns='jabber:server' "
                 "xmlns:stream='http://etherx.jabber.org/streams' id='x' version='1.0'>"
                 "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
                 "</stream:features>");
    assert_true(xp_wait(base, &sp, "<starttls"));
    xp_send(&sp, "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    xp_run_for(base, 50);
    xp_send(&sp, "this is not TLS at all, not even close to a ServerHello\r\n");
    wait_done();
    assert_int_equal(ev.failed, 1);
    assert_int_equal(ev.cond, XMPP_STANZA_ERR_REMOTE_SERVER_NOT_FOUND);
}

#define PEER_HDR                                                                                   \
    "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "        \
    "from='b.test' to='a.test' id='S1' version='1.0'>"

static bool
bidi_cond(void *arg)
{
    (void)arg;
    return ev.bidi_stanzas > 0 || ev.closed > 0;
}

/* XEP-0288: the peer offers bidi after TLS, we ask for it (its certificate is valid),
 * authenticate by SASL EXTERNAL, and take a stanza from b.test to a.test coming back on
 * our stream; one from another domain closes it with invalid-from. */
static void
test_bidi(void **state)
{
    struct out_opts o = oopts(a_ctx);

    (void)state;
    o.bidi = true;
    start_scripted(&o);
    assert_true(xp_wait(base, &sp, "to='b.test'"));
    xp_send(&sp, PEER_HDR "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>"
                          "<required/></starttls></stream:features>");
    assert_true(xp_wait(base, &sp, "<starttls"));
    xp_clear(&sp);
    xp_send(&sp, "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    assert_int_equal(xp_starttls_server(&sp, b_ctx), 0);
    assert_true(xp_wait(base, &sp, "to='b.test'"));
    xp_send(&sp, PEER_HDR "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                          "<mechanism>EXTERNAL</mechanism></mechanisms>"
                          "<bidi xmlns='urn:xmpp:features:bidi'/></stream:features>");
    assert_true(xp_wait(base, &sp, "<bidi xmlns='urn:xmpp:bidi'/>"));
    assert_true(xp_wait(base, &sp, "mechanism='EXTERNAL'"));
    xp_clear(&sp);
    xp_send(&sp, "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    assert_true(xp_wait(base, &sp, "to='b.test'"));
    xp_send(&sp, PEER_HDR "<stream:features/>");
    wait_done();
    assert_int_equal(ev.ready, 1);
    xp_send(&sp, "<message from='u@b.test' to='v@a.test'><body>back</body></message>");
    assert_true(xp_run_until(base, bidi_cond, NULL, 10));
    assert_int_equal(ev.bidi_stanzas, 1);
    xp_send(&sp, "<message from='u@evil.test' to='v@a.test'/>");
    assert_true(xp_wait(base, &sp, "<invalid-from"));
    assert_int_equal(ev.bidi_stanzas, 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sasl_external, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dialback_valid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dialback_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secure_domain_bad_cert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_domain_bad_cert_dialback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_starttls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_closes_mid_handshake, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bidi, setup, teardown),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
