/*
 * s2s/in.c driven by scripted peers over real loopback TCP (and real TLS with a test CA)
 * inside one event_base: STARTTLS + SASL EXTERNAL, dialback as receiving server (verdicts
 * valid/invalid/error, several pairs on one stream), dialback as authoritative server,
 * and every refusal: bad 'to', unauthenticated 'from', stanza before authentication, no
 * STARTTLS when TLS is required, the authentication timeout, SASL with a certificate for
 * another domain, a "secure" domain without a valid certificate.
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
#include "s2s/stats.h"
#include "s2s/tls.h"
#include "tests/unit/helpers/testca.h"
#include "tests/unit/helpers/xpeer.h"

#define SECRET "0123456789abcdef0123456789abcdef"

#define HDR(to, from)                                                                              \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "                                   \
    "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "           \
    "to='" to "' from='" from "' version='1.0'>"

static struct testca *ca, *ca2;
static struct testca_files fa;
static struct tls_ctx *srv_ctx, *peer_ctx, *untrusted_ctx;

static struct event_base *base;
static struct xpeer peer;
static struct in_session *sess;
static int lfd;
static struct sockaddr_storage lss;
static socklen_t lsslen;

/* What the session handed up. */
static struct {
    unsigned stanzas, verifies, closed, auths;
    char last_from[256];
    char v_local[64], v_remote[64], v_id[64], v_key[256];
    enum conf_sec_level level;
} got;

static bool
cb_hosted(const char *d, void *arg)
{
    (void)arg;
    return strcmp(d, "a.test") == 0 || strcmp(d, "a2.test") == 0;
}

static enum conf_sec_level
cb_security(const char *remote, void *arg)
{
    (void)remote;
    (void)arg;
    return got.level;
}

static void
cb_stanza(struct in_session *s, struct stanza *st, void *arg)
{
    (void)s;
    (void)arg;
    got.stanzas++;
    snprintf(got.last_from, sizeof(got.last_from), "%s", stanza_attr(st, "from"));
    stanza_free(st);
}

static void
cb_verify(struct in_session *s, const char *local, const char *remote, const char *id,
          const char *key, void *arg)
{
    (void)s;
    (void)arg;
    got.verifies++;
    snprintf(got.v_local, sizeof(got.v_local), "%s", local);
    snprintf(got.v_remote, sizeof(got.v_remote), "%s", remote);
    snprintf(got.v_id, sizeof(got.v_id), "%s", id);
    snprintf(got.v_key, sizeof(got.v_key), "%s", key);
}

static void
cb_auth(struct in_session *s, const char *local, const char *remote, enum peerauth_method how,
        void *arg)
{
    (void)s;
    (void)local;
    (void)remote;
    (void)how;
    (void)arg;
    got.auths++;
}

static void
cb_closed(struct in_session *s, void *arg)
{
    (void)arg;
    assert_ptr_equal(s, sess);
    got.closed++;
    sess = NULL;
}

static const struct in_cbs cbs = {cb_hosted, cb_security, cb_stanza, cb_verify,
                                  cb_auth,   cb_closed,   NULL};

static struct in_opts
default_opts(void)
{
    struct in_opts o = {0};

    o.tls = srv_ctx;
    o.require_tls = true;
    o.dialback = true;
    o.dialback_secret = SECRET;
    o.auth_timeout_ms = 10000;
    return o;
}

/* A peer connected to a new inbound session with opts. */
static void
start(const struct in_opts *o)
{
    int fd = xp_connect(base, &peer, lfd, &lss, lsslen);

    assert_true(fd >= 0);
    sess = in_new(base, conn_new_accepted(base, fd, NULL), o, &cbs);
    assert_non_null(sess);
}

static bool
closed_cond(void *arg)
{
    (void)arg;
    return got.closed > 0;
}

static unsigned want_stanzas;

static bool
stanzas_cond(void *arg)
{
    (void)arg;
    return got.stanzas >= want_stanzas || got.closed > 0;
}

static void
wait_stanzas(unsigned n)
{
    want_stanzas = n;
    xp_run_until(base, stanzas_cond, NULL, 10);
    assert_int_equal(got.stanzas, n);
}

static bool
verify_cond(void *arg)
{
    return got.verifies >= *(unsigned *)arg || got.closed > 0;
}

static void
wait_verifies(unsigned n)
{
    xp_run_until(base, verify_cond, &n, 10);
    assert_int_equal(got.verifies, n);
}

static void
wait_session_closed(void)
{
    assert_true(xp_run_until(base, closed_cond, NULL, 10));
}

/* Header, STARTTLS, TLS with ctx, the second header; features of the TLS stream left in
 * peer.got. */
static void
open_tls(struct tls_ctx *ctx, const char *header)
{
    xp_send(&peer, header);
    assert_true(xp_wait(base, &peer, "</stream:features>"));
    assert_true(xp_has(&peer, "<required/></starttls>"));
    assert_false(xp_has(&peer, "urn:xmpp:features:dialback"));
    assert_false(xp_has(&peer, "mechanisms"));
    xp_send(&peer, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    assert_true(xp_wait(base, &peer, "<proceed"));
    xp_clear(&peer);
    assert_int_equal(xp_starttls(base, &peer, ctx, "a.test", "b.test", true), 0);
    xp_send(&peer, header);
    assert_true(xp_wait(base, &peer, "</stream:features>"));
}

/* --- fixtures -------------------------------------------------------------------------- */

static int
group_setup(void **state)
{
    static const char *const a_dns[] = {"a.test", "a2.test", NULL};
    static const char *const b_dns[] = {"b.test", NULL};
    const struct testca_leaf a = {.dns = a_dns};
    const struct testca_leaf b = {.dns = b_dns};
    struct testca_files fb, fo;
    struct tls_settings s = {0};
    struct tls_host h;
    char err[512];

    (void)state;
    signal(SIGPIPE, SIG_IGN);
    if ((ca = testca_new("In CA")) == NULL || (ca2 = testca_new("Other CA")) == NULL ||
        testca_issue(ca, "a", &a, &fa) || testca_issue(ca, "b", &b, &fb) ||
        testca_issue(ca2, "bo", &b, &fo))
        return -1;
    s.ca_file = testca_cert(ca);
    h = (struct tls_host){"a.test", fa.cert, fa.key};
    srv_ctx = tls_ctx_new(&s, &h, 1, err, sizeof(err));
    h = (struct tls_host){"b.test", fb.cert, fb.key};
    peer_ctx = tls_ctx_new(&s, &h, 1, err, sizeof(err));
    h = (struct tls_host){"b.test", fo.cert, fo.key};
    untrusted_ctx = tls_ctx_new(&s, &h, 1, err, sizeof(err));
    if (srv_ctx == NULL || peer_ctx == NULL || untrusted_ctx == NULL) {
        fprintf(stderr, "tls_ctx_new: %s\n", err);
        return -1;
    }
    return 0;
}

static int
group_teardown(void **state)
{
    (void)state;
    tls_ctx_unref(srv_ctx);
    tls_ctx_unref(peer_ctx);
    tls_ctx_unref(untrusted_ctx);
    testca_free(ca);
    testca_free(ca2);
    return 0;
}

static bool
all_gone(void *arg)
{
    (void)arg;
    return in_count() == 0 && conn_count() == 0;
}

static int
setup(void **state)
{
    (void)state;
    memset(&got, 0, sizeof(got));
    base = event_base_new();
    lfd = xp_listen(&lss, &lsslen);
    return base != NULL && lfd >= 0 ? 0 : -1;
}

static int
teardown(void **state)
{
    (void)state;
    xp_done(&peer);
    if (sess != NULL)
        in_close(sess, -1, "test over");
    xp_run_until(base, all_gone, NULL, 10);
    assert_int_equal(in_count(), 0);
    assert_int_equal(conn_count(), 0);
    close(lfd);
    event_base_free(base);
    return 0;
}

/* --- tests ----------------------------------------------------------------------------- */

static void
test_sasl_external(void **state)
{
    struct in_opts o = default_opts();
    uint64_t accepted = s2s_stats.in_accepted;

    (void)state;
    start(&o);
    open_tls(peer_ctx, HDR("a.test", "b.test"));
    assert_true(xp_has(&peer, "<mechanism>EXTERNAL</mechanism>"));
    assert_true(xp_has(&peer, "urn:xmpp:features:dialback"));
    assert_false(xp_has(&peer, "starttls"));
    xp_clear(&peer);
    xp_send(&peer, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>"
                   "Yi50ZXN0</auth>"); /* base64("b.test") */
    assert_true(xp_wait(base, &peer, "<success"));
    xp_send(&peer, HDR("a.test", "b.test"));
    assert_true(xp_wait(base, &peer, "</stream:features>"));
    assert_false(xp_has(&peer, "mechanisms"));
    assert_int_equal(got.auths, 1);
    assert_int_equal(in_peerauth(sess)->method, PEERAUTH_SASL_EXTERNAL);
    assert_int_equal(in_peerauth(sess)->cert, PEERAUTH_CERT_VALID);
    assert_true(in_authorized(sess, "a.test", "b.test"));
    xp_send(&peer, "<message from='u@b.test/r' to='v@a.test' id='1'><body>hi</body></message>");
    xp_send(&peer, "<presence from='b.test' to='a.test'/>");
    wait_stanzas(2);
    assert_int_equal(s2s_stats.in_accepted, accepted + 2);
    assert_string_equal(got.last_from, "b.test");

    /* A domain the stream never authenticated: invalid-from, and the stream ends. */
    xp_send(&peer, "<message from='u@c.test' to='v@a.test'/>");
    assert_true(xp_wait(base, &peer, "<invalid-from"));
    assert_true(xp_wait(base, &peer, "</stream:stream>"));
    wait_session_closed();
    assert_int_equal(got.stanzas, 2);
}

/* Receiving role: the key goes to the verify callback with (local, remote, stream id);
 * a valid verdict authenticates the pair; a second pair on the same stream (XEP-0220
 * multiplexing) does too; a stanza for a pair not verified is refused. */
static void
test_dialback_valid_multiplex(void **state)
{
    struct in_opts o = default_opts();
    char want[128];

    (void)state;
    start(&o);
    open_tls(untrusted_ctx, HDR("a.test", "b.test"));
    assert_false(xp_has(&peer, "EXTERNAL")); /* the chain does not verify */
    assert_true(xp_has(&peer, "<dialback xmlns='urn:xmpp:features:dialback'><errors/>"));
    xp_clear(&peer);
    xp_send(&peer, "<db:result from='b.test' to='a.test'>abcdef0123</db:result>");
    wait_verifies(1);
    assert_string_equal(got.v_local, "a.test");
    assert_string_equal(got.v_remote, "b.test");
    assert_string_equal(got.v_id, in_id(sess));
    assert_string_equal(got.v_key, "abcdef0123");
    assert_false(in_authorized(sess, "a.test", "b.test"));
    in_dialback_verdict(sess, "a.test", "b.test", DIALBACK_TYPE_VALID, DIALBACK_OK);
    snprintf(want, sizeof(want), "<db:result from='a.test' to='b.test' type='valid'/>");
    assert_true(xp_wait(base, &peer, want));
    assert_int_equal(in_peerauth(sess)->method, PEERAUTH_DIALBACK);
    assert_int_equal(in_peerauth(sess)->cert, PEERAUTH_CERT_UNTRUSTED);

    xp_send(&peer, "<db:result from='c.test' to='a2.test'>k2</db:result>");
    wait_verifies(2);
    in_dialback_verdict(sess, "a2.test", "c.test", DIALBACK_TYPE_VALID, DIALBACK_OK);
    assert_true(xp_wait(base, &peer, "<db:result from='a2.test' to='c.test' type='valid'/>"));
    xp_send(&peer, "<message from='x@b.test' to='y@a.test'/>"
                   "<message from='x@c.test' to='y@a2.test'/>");
    wait_stanzas(2);
    /* c.test is authenticated towards a2.test only. */
    xp_send(&peer, "<message from='x@c.test' to='y@a.test'/>");
    assert_true(xp_wait(base, &peer, "<invalid-from"));
    wait_session_closed();
    assert_int_equal(got.stanzas, 2);
}

/* XEP-0220 §2.2.1: invalid is answered, then the stream is closed. */
static void
test_dialback_invalid(void **state)
{
    struct in_opts o = default_opts();

    (void)state;
    start(&o);
    open_tls(untrusted_ctx, HDR("a.test", "b.test"));
    xp_send(&peer, "<db:result from='b.test' to='a.test'>bad</db:result>");
    wait_verifies(1);
    in_dialback_verdict(sess, "a.test", "b.test", DIALBACK_TYPE_INVALID, DIALBACK_OK);
    assert_true(xp_wait(base, &peer, "type='invalid'/>"));
    assert_true(xp_wait(base, &peer, "</stream:stream>"));
    assert_true(xp_wait_closed(base, &peer));
    wait_session_closed();
}

/* A dialback error is per pair (XEP-0220 §2.4): answered with the condition, the stream
 * stays up and the pair may be asked again. */
static void
test_dialback_error(void **state)
{
    struct in_opts o = default_opts();

    (void)state;
    start(&o);
    open_tls(untrusted_ctx, HDR("a.test", "b.test"));
    xp_send(&peer, "<db:result from='b.test' to='a.test'>k</db:result>");
    wait_verifies(1);
    in_dialback_verdict(sess, "a.test", "b.test", DIALBACK_TYPE_ERROR,
                        DIALBACK_ERR_REMOTE_SERVER_NOT_FOUND);
    assert_true(xp_wait(base, &peer,
                        "type='error'><error type='cancel'><remote-server-not-found "
                        "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>"));
    xp_send(&peer, "<db:result from='b.test' to='a.test'>k</db:result>");
    wait_verifies(2);
    assert_int_equal(got.closed, 0);
    /* A db:result for a domain we do not host: item-not-found, no verification. */
    xp_send(&peer, "<db:result from='b.test' to='z.test'>k</db:result>");
    assert_true(xp_wait(base, &peer, "<item-not-found"));
    assert_int_equal(got.verifies, 2);
    assert_int_equal(got.closed, 0);
}

/* XEP-0344 §2.4: a db:result from a peer whose certificate is valid for its domain is
 * answered valid without asking anyone. */
static void
test_dialback_cert_shortcut(void **state)
{
    struct in_opts o = default_opts();

    (void)state;
    start(&o);
    open_tls(peer_ctx, HDR("a.test", "b.test"));
    xp_send(&peer, "<db:result from='b.test' to='a.test'>whatever</db:result>");
    assert_true(xp_wait(base, &peer, "type='valid'/>"));
    assert_int_equal(got.verifies, 0);
    assert_int_equal(in_peerauth(sess)->method, PEERAUTH_CERT_DIALBACK);
}

/* "secure": a valid certificate is required; dialback alone gets not-authorized. */
static void
test_secure_domain_refuses_dialback(void **state)
{
    struct in_opts o = default_opts();

    (void)state;
    got.level = CONF_SEC_SECURE;
    start(&o);
    open_tls(untrusted_ctx, HDR("a.test", "b.test"));
    xp_send(&peer, "<db:result from='b.test' to='a.test'>k</db:result>");
    assert_true(
        xp_wait(base, &peer, "<not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'"));
    assert_int_equal(got.verifies, 0);
    assert_false(in_authorized(sess, "a.test", "b.test"));
}

/* Authoritative role: keys we issued (dialback_key_make with our secret) are valid,
 * anything else invalid; allowed before the stream is authenticated. */
static void
test_db_verify_authoritative(void **state)
{
    struct in_opts o = default_opts();
    char key[DIALBACK_KEY_BUFSIZE], req[512];

    (void)state;
    start(&o);
    open_tls(untrusted_ctx, HDR("a.test", "b.test"));
    assert_int_equal(dialback_key_make(SECRET, "b.test", "a.test", "S1", key), 0);
    snprintf(req, sizeof(req), "<db:verify from='b.test' to='a.test' id='S1'>%s</db:verify>", key);
    xp_send(&peer, req);
    assert_true(
        xp_wait(base, &peer, "<db:verify from='a.test' to='b.test' id='S1' type='valid'/>"));
    snprintf(req, sizeof(req), "<db:verify from='b.test' to='a.test' id='S2'>%s</db:verify>", key);
    xp_send(&peer, req);
    assert_true(
        xp_wait(base, &peer, "<db:verify from='a.test' to='b.test' id='S2' type='invalid'/>"));
    assert_int_equal(got.closed, 0);
    assert_int_equal(got.auths, 0);
}

/* RFC 6120 §4.9.1.3: our header, then host-unknown. */
static void
test_bad_to(void **state)
{
    struct in_opts o = default_opts();

    (void)state;
    start(&o);
    xp_send(&peer, HDR("nothere.test", "b.test"));
    assert_true(xp_wait(base, &peer, "<stream:stream"));
    assert_true(
        xp_wait(base, &peer, "<host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"));
    assert_false(xp_has(&peer, "<stream:features>"));
    assert_true(xp_wait_closed(base, &peer));
    wait_session_closed();
}

/* After TLS, a stanza before any authentication: not-authorized. */
static void
test_stanza_before_auth(void **state)
{
    struct in_opts o = default_opts();

    (void)state;
    start(&o);
    open_tls(peer_ctx, HDR("a.test", "b.test"));
    xp_send(&peer, "<message from='u@b.test' to='v@a.test'/>");
    assert_true(
        xp_wait(base, &peer, "<not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"));
    wait_session_closed();
    assert_int_equal(got.stanzas, 0);
}

/* TLS required: dialback in the clear is a policy violation. */
static void
test_tls_required(void **state)
{
    struct in_opts o = default_opts();

    (void)state;
    start(&o);
    xp_send(&peer, HDR("a.test", "b.test"));
    assert_true(xp_wait(base, &peer, "</stream:features>"));
    xp_send(&peer, "<db:result from='b.test' to='a.test'>k</db:result>");
    assert_true(xp_wait(base, &peer, "<policy-violation"));
    wait_session_closed();
    assert_int_equal(got.verifies, 0);
}

static void
test_auth_timeout(void **state)
{
    struct in_opts o = default_opts();

    (void)state;
    o.auth_timeout_ms = 300;
    start(&o);
    xp_send(&peer, HDR("a.test", "b.test"));
    assert_true(xp_wait(base, &peer, "<connection-timeout"));
    wait_session_closed();
}

/* The certificate is valid, but for b.test: claiming c.test gets no EXTERNAL, and
 * insisting gets a SASL failure (the peer may still try dialback). */
static void
test_sasl_wrong_domain(void **state)
{
    struct in_opts o = default_opts();

    (void)state;
    start(&o);
    open_tls(peer_ctx, HDR("a.test", "c.test"));
    assert_false(xp_has(&peer, "EXTERNAL"));
    xp_send(&peer, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>");
    assert_true(xp_wait(base, &peer,
                        "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/>"));
    assert_int_equal(got.auths, 0);
    assert_int_equal(got.closed, 0);
}

/* Elements other than stanzas after authentication; oversized elements before it. */
static void
test_unsupported_and_oversized(void **state)
{
    struct in_opts o = default_opts();
    char big[2048];

    (void)state;
    o.unauth_stanza_bytes = 1024;
    start(&o);
    open_tls(untrusted_ctx, HDR("a.test", "b.test"));
    memset(big, 'k', sizeof(big));
    memcpy(big, "<db:result from='b.test' to='a.test'>", 37);
    strcpy(big + sizeof(big) - 20, "</db:result>");
    xp_send(&peer, big);
    assert_true(xp_wait(base, &peer, "<policy-violation"));
    wait_session_closed();
}

/* After authentication: a stanza for a domain we do not host, one without 'to', and an
 * element that is no stanza each end the stream with their own condition. */
static void
authenticated_peer(void)
{
    struct in_opts o = default_opts();

    start(&o);
    open_tls(peer_ctx, HDR("a.test", "b.test"));
    xp_send(&peer, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>");
    assert_true(xp_wait(base, &peer, "<success"));
    xp_send(&peer, HDR("a.test", "b.test"));
    assert_true(xp_wait(base, &peer, "</stream:features>"));
}

static void
test_to_not_hosted(void **state)
{
    (void)state;
    authenticated_peer();
    xp_send(&peer, "<message from='u@b.test' to='v@elsewhere.test'/>");
    assert_true(xp_wait(base, &peer, "<host-unknown"));
    wait_session_closed();
    assert_int_equal(got.stanzas, 0);
}

static void
test_missing_to(void **state)
{
    (void)state;
    authenticated_peer();
    xp_send(&peer, "<message from='u@b.test'/>");
    assert_true(xp_wait(base, &peer, "<improper-addressing"));
    wait_session_closed();
}

static void
test_unsupported_stanza_type(void **state)
{
    (void)state;
    authenticated_peer();
    xp_send(&peer, "<foo xmlns='jabber:server' from='b.test' to='a.test'/>");
    assert_true(xp_wait(base, &peer, "<unsupported-stanza-type"));
    wait_session_closed();
}

/* The peer answers <proceed/> with something that is not a TLS handshake. */
static void
test_tls_failure(void **state)
{
    struct in_opts o = default_opts();

    (void)state;
    start(&o);
    xp_send(&peer, HDR("a.test", "b.test"));
    assert_true(xp_wait(base, &peer, "</stream:features>"));
    xp_send(&peer, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    assert_true(xp_wait(base, &peer, "<proceed"));
    xp_send(&peer, "GET / HTTP/1.0\r\n\r\n this is not a ClientHello, not at all\r\n");
    wait_session_closed();
    assert_int_equal(got.auths, 0);
}

/* A reload drops the daemon's reference to the TLS context while a session has not
 * started TLS yet: the session holds its own (ASan would catch a use after free). */
static void
test_tls_ctx_outlives_reload(void **state)
{
    struct in_opts o = default_opts();
    struct tls_settings ts = {0};
    struct tls_host h = {"a.test", fa.cert, fa.key};
    char err[256];

    (void)state;
    ts.ca_file = testca_cert(ca);
    o.tls = tls_ctx_new(&ts, &h, 1, err, sizeof(err));
    assert_non_null(o.tls);
    start(&o);
    tls_ctx_unref(o.tls); /* the "reload" */
    open_tls(peer_ctx, HDR("a.test", "b.test"));
    assert_true(xp_has(&peer, "EXTERNAL"));
}

/* Hostile or broken input after TLS: each gets the named answer, none crashes (ASan). */
static void
test_hostile_inputs(void **state)
{
    static const struct {
        const char *send, *expect;
    } cases[] = {
        {"<db:verify from='b.test' to='a.test'>k</db:verify>", "<bad-format"},
        {"<db:result to='a.test'>k</db:result>", "<improper-addressing"},
        {"<db:result from='b.test' to='a.test'></db:result>", "type='error'"},
        {"<db:result from='b.test' to='a.test' type='valid'/>", "<not-authorized"},
        {"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>!!notbase64</auth>",
         "<incorrect-encoding/>"},
        {"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>",
         "<invalid-mechanism/>"},
        {"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>Yy50ZXN0</auth>",
         "<invalid-authzid/>"}, /* c.test while the header said b.test */
        {"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", "<policy-violation"},
        {"<iq type='get' id='1' from='b.test' to='a.test'/>", "<not-authorized"},
        {"<!-- comment -->", "<restricted-xml"},
        {"<a><b></a>", "<not-well-formed"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct in_opts o = default_opts();

        memset(&got, 0, sizeof(got));
        start(&o);
        open_tls(untrusted_ctx, HDR("a.test", "b.test"));
        xp_clear(&peer);
        xp_send(&peer, cases[i].send);
        if (!xp_wait(base, &peer, cases[i].expect))
            fail_msg("case %zu: %s", i, cases[i].send);
        assert_int_equal(got.stanzas, 0);
        assert_int_equal(got.auths, 0);
        xp_done(&peer);
        if (sess != NULL)
            in_close(sess, -1, "next case");
        xp_run_until(base, all_gone, NULL, 10);
        assert_int_equal(in_count(), 0);
    }
}

/* XEP-0368: TLS from the first byte, then SASL EXTERNAL. */
static void
test_direct_tls(void **state)
{
    struct in_opts o = default_opts();

    (void)state;
    o.direct_tls = true;
    start(&o);
    assert_int_equal(xp_starttls(base, &peer, peer_ctx, "a.test", "b.test", true), 0);
    xp_send(&peer, HDR("a.test", "b.test"));
    assert_true(xp_wait(base, &peer, "</stream:features>"));
    assert_false(xp_has(&peer, "starttls"));
    assert_true(xp_has(&peer, "EXTERNAL"));
    xp_send(&peer, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>");
    assert_true(xp_wait(base, &peer, "<success"));
    assert_true(in_authorized(sess, "a.test", "b.test"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sasl_external, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dialback_valid_multiplex, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dialback_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dialback_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dialback_cert_shortcut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secure_domain_refuses_dialback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db_verify_authoritative, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_to, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stanza_before_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_required, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sasl_wrong_domain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsupported_and_oversized, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_tls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_to_not_hosted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_to, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsupported_stanza_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_ctx_outlives_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_inputs, setup, teardown),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
