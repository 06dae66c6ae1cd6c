/*
 * s2s/tls.c: context building, certificate selection by SNI, verification recorded but
 * not enforced, identities, ALPN. Handshakes run over an in-memory BIO pair.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "s2s/tls.h"
#include "tests/unit/helpers/testca.h"

struct fixture {
    struct testca *ca, *ca2;
    struct testca_files a, b, client, other, expired;
};

static struct fixture fx;

static int
group_setup(void **state)
{
    static const char *const a_dns[] = {"a.test", NULL};
    static const char *const b_dns[] = {"b.test", NULL};
    static const char *const c_dns[] = {"client.test", NULL};
    const struct testca_leaf a = {
        .dns = a_dns, .xmpp_addr = "a.test", .srv_id = "_xmpp-server.a.test"};
    const struct testca_leaf b = {.dns = b_dns};
    const struct testca_leaf client = {.dns = c_dns, .xmpp_addr = "client.test"};
    const struct testca_leaf expired = {.dns = a_dns, .expired = true};

    if ((fx.ca = testca_new("Test CA")) == NULL || (fx.ca2 = testca_new("Other CA")) == NULL)
        return -1;
    if (testca_issue(fx.ca, "a", &a, &fx.a) == -1 || testca_issue(fx.ca, "b", &b, &fx.b) == -1 ||
        testca_issue(fx.ca, "client", &client, &fx.client) == -1 ||
        testca_issue(fx.ca, "expired", &expired, &fx.expired) == -1 ||
        testca_issue(fx.ca2, "other", &a, &fx.other) == -1)
        return -1;
    return 0;
}

static int
group_teardown(void **state)
{
    testca_free(fx.ca);
    testca_free(fx.ca2);
    return 0;
}

static struct tls_ctx *
ctx_make(const char *domain, const struct testca_files *f, const char *domain2,
         const struct testca_files *f2, int minv)
{
    struct tls_settings s = {.min_version = minv, .ca_file = testca_cert(fx.ca)};
    struct tls_host h[2] = {{domain, f->cert, f->key},
                            {domain2, f2 ? f2->cert : NULL, f2 ? f2->key : NULL}};
    char err[512];
    struct tls_ctx *ctx;

    ctx = tls_ctx_new(&s, h, domain2 ? 2 : 1, err, sizeof(err));
    if (ctx == NULL)
        fail_msg("tls_ctx_new: %s", err);
    return ctx;
}

/* Runs both ends of a handshake over a BIO pair; 0 when both completed. */
static int
handshake(SSL *cli, SSL *srv)
{
    BIO *b1, *b2;
    int rc = 0, rs = 0, e;

    if (!BIO_new_bio_pair(&b1, 0, &b2, 0))
        return -1;
    SSL_set_bio(cli, b1, b1);
    SSL_set_bio(srv, b2, b2);
    for (int i = 0; i < 50; i++) {
        if (rc != 1 && (rc = SSL_do_handshake(cli)) != 1) {
            e = SSL_get_error(cli, rc);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                return -1;
        }
        if (rs != 1 && (rs = SSL_do_handshake(srv)) != 1) {
            e = SSL_get_error(srv, rs);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                return -1;
        }
        if (rc == 1 && rs == 1)
            return 0;
    }
    return -1;
}

struct hs {
    SSL *cli, *srv;
    struct tls_info ci, si; /* what the client saw of the server, and vice versa */
};

static int
hs_run(struct hs *h, struct tls_ctx *cctx, struct tls_ctx *sctx, const char *sni, const char *alpn)
{
    char err[256];

    memset(h, 0, sizeof(*h));
    h->cli = tls_ssl_new(cctx, TLS_ROLE_CLIENT, sni, "client.test", alpn, err, sizeof(err));
    assert_non_null(h->cli);
    h->srv = tls_ssl_new(sctx, TLS_ROLE_SERVER, NULL, NULL, NULL, err, sizeof(err));
    assert_non_null(h->srv);
    if (handshake(h->cli, h->srv) == -1) {
        ERR_clear_error();
        return -1;
    }
    tls_info_collect(h->cli, &h->ci);
    tls_info_collect(h->srv, &h->si);
    return 0;
}

static void
hs_done(struct hs *h)
{
    tls_info_clear(&h->ci);
    tls_info_clear(&h->si);
    SSL_free(h->cli);
    SSL_free(h->srv);
}

static void
test_ctx_good(void **state)
{
    struct tls_ctx *ctx = ctx_make("a.test", &fx.a, "b.test", &fx.b, 0);

    assert_ptr_equal(tls_ctx_ref(ctx), ctx);
    tls_ctx_unref(ctx);
    tls_ctx_unref(ctx);
}

static void
test_ctx_missing_file(void **state)
{
    struct tls_host h = {"a.test", "/nonexistent/a.pem", fx.a.key};
    char err[512] = "";

    assert_null(tls_ctx_new(NULL, &h, 1, err, sizeof(err)));
    assert_non_null(strstr(err, "a.test: /nonexistent/a.pem: No such file"));
    h.cert_file = fx.a.cert;
    h.key_file = "/nonexistent/a.key";
    assert_null(tls_ctx_new(NULL, &h, 1, err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/a.key"));
}

static void
test_ctx_key_mismatch(void **state)
{
    struct tls_host h[2] = {{"a.test", fx.a.cert, fx.a.key}, {"b.test", fx.b.cert, fx.a.key}};
    char err[512] = "", want[PATH_MAX + 64];

    assert_null(tls_ctx_new(NULL, h, 2, err, sizeof(err)));
    snprintf(want, sizeof(want), "b.test: %s: key does not match certificate", fx.a.key);
    assert_string_equal(err, want);
}

static void
test_ctx_not_pem(void **state)
{
    /* A key file given as the certificate: named, with the reason. */
    struct tls_host h = {"a.test", fx.a.key, fx.a.key};
    char err[512] = "";

    assert_null(tls_ctx_new(NULL, &h, 1, err, sizeof(err)));
    assert_non_null(strstr(err, fx.a.key));
    assert_non_null(strstr(err, "no certificate"));
}

static void
test_ctx_bad_settings(void **state)
{
    struct tls_host h = {"a.test", fx.a.cert, fx.a.key};
    struct tls_settings s = {.min_version = TLS1_1_VERSION};
    char err[512] = "";

    assert_null(tls_ctx_new(&s, &h, 1, err, sizeof(err)));
    assert_non_null(strstr(err, "min_version"));
    s.min_version = 0;
    s.ca_file = "/nonexistent/ca.pem";
    assert_null(tls_ctx_new(&s, &h, 1, err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/ca.pem"));
    s.ca_file = NULL;
    s.ciphers = "NO-SUCH-CIPHER";
    assert_null(tls_ctx_new(&s, &h, 1, err, sizeof(err)));
    assert_non_null(strstr(err, "NO-SUCH-CIPHER"));
    assert_null(tls_ctx_new(&s, &h, 0, err, sizeof(err)));
}

static const char *
first_dns(const struct tls_info *i)
{
    return i->ndns_names > 0 ? i->dns_names[0] : "(none)";
}

static void
test_sni_picks_certificate(void **state)
{
    struct tls_ctx *sctx = ctx_make("a.test", &fx.a, "b.test", &fx.b, 0);
    struct tls_ctx *cctx = ctx_make("client.test", &fx.client, NULL, NULL, 0);
    /* sent: what the server saw; an IP literal is never sent (RFC 6066 §3). */
    static const struct {
        const char *sni, *want, *sent;
    } cases[] = {{"b.test", "b.test", "b.test"}, {"B.Test", "b.test", "B.Test"},
                 {"a.test", "a.test", "a.test"}, {"unknown.test", "a.test", "unknown.test"},
                 {"192.0.2.1", "a.test", NULL},  {"2001:db8::1", "a.test", NULL},
                 {NULL, "a.test", NULL}};
    struct hs h;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(hs_run(&h, cctx, sctx, cases[i].sni, NULL), 0);
        assert_string_equal(first_dns(&h.ci), cases[i].want);
        if (cases[i].sent)
            assert_string_equal(h.si.sni, cases[i].sent);
        else
            assert_null(h.si.sni);
        hs_done(&h);
    }
    tls_ctx_unref(sctx);
    tls_ctx_unref(cctx);
}

static void
fingerprint_of(const char *pem, unsigned char md[32])
{
    FILE *f = fopen(pem, "r");
    X509 *x;
    unsigned n;

    assert_non_null(f);
    x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(x);
    assert_true(X509_digest(x, EVP_sha256(), md, &n));
    X509_free(x);
}

static void
test_identities_and_client_cert(void **state)
{
    struct tls_ctx *sctx = ctx_make("a.test", &fx.a, NULL, NULL, 0);
    struct tls_ctx *cctx = ctx_make("client.test", &fx.client, NULL, NULL, 0);
    unsigned char md[32];
    struct hs h;

    assert_int_equal(hs_run(&h, cctx, sctx, "a.test", NULL), 0);
    /* Client's view of the server. */
    assert_string_equal(h.ci.version, "TLSv1.3");
    assert_non_null(h.ci.cipher);
    assert_non_null(h.ci.group);
    assert_true(h.ci.peer_cert);
    assert_true(h.ci.chain_valid);
    assert_int_equal(h.ci.verify_error, X509_V_OK);
    assert_int_equal(h.ci.ndns_names, 1);
    assert_string_equal(h.ci.dns_names[0], "a.test");
    assert_int_equal(h.ci.nxmpp_addrs, 1);
    assert_string_equal(h.ci.xmpp_addrs[0], "a.test");
    assert_int_equal(h.ci.nsrv_ids, 1);
    assert_string_equal(h.ci.srv_ids[0], "_xmpp-server.a.test");
    assert_string_equal(h.ci.subject_cn, "a.test");
    assert_non_null(h.ci.peer);
    fingerprint_of(fx.a.cert, md);
    assert_memory_equal(h.ci.fingerprint, md, 32);
    assert_null(h.ci.alpn);
    /* Server's view of the client: the certificate was requested and checked. */
    assert_true(h.si.peer_cert);
    assert_true(h.si.chain_valid);
    assert_int_equal(h.si.ndns_names, 1);
    assert_string_equal(h.si.dns_names[0], "client.test");
    assert_int_equal(h.si.nxmpp_addrs, 1);
    assert_string_equal(h.si.xmpp_addrs[0], "client.test");
    assert_int_equal(h.si.nsrv_ids, 0);
    fingerprint_of(fx.client.cert, md);
    assert_memory_equal(h.si.fingerprint, md, 32);
    hs_done(&h);
    tls_ctx_unref(sctx);
    tls_ctx_unref(cctx);
}

static void
test_verify_recorded_not_enforced(void **state)
{
    struct tls_ctx *untrusted = ctx_make("a.test", &fx.other, NULL, NULL, 0);
    struct tls_ctx *expired = ctx_make("a.test", &fx.expired, NULL, NULL, 0);
    struct tls_ctx *cctx = ctx_make("client.test", &fx.client, NULL, NULL, 0);
    struct hs h;

    assert_int_equal(hs_run(&h, cctx, untrusted, "a.test", NULL), 0);
    assert_true(h.ci.peer_cert);
    assert_false(h.ci.chain_valid);
    assert_int_equal(h.ci.verify_error, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
    assert_non_null(h.ci.verify_text);
    assert_true(h.si.chain_valid); /* the client's own chain is fine */
    hs_done(&h);

    assert_int_equal(hs_run(&h, cctx, expired, "a.test", NULL), 0);
    assert_false(h.ci.chain_valid);
    assert_int_equal(h.ci.verify_error, X509_V_ERR_CERT_HAS_EXPIRED);
    assert_string_equal(h.ci.verify_text, "certificate has expired");
    hs_done(&h);

    /* The server's view of an untrusted client certificate. */
    assert_int_equal(hs_run(&h, untrusted, cctx, NULL, NULL), 0);
    assert_true(h.si.peer_cert);
    assert_false(h.si.chain_valid);
    hs_done(&h);
    tls_ctx_unref(untrusted);
    tls_ctx_unref(expired);
    tls_ctx_unref(cctx);
}

static void
test_alpn(void **state)
{
    struct tls_ctx *sctx = ctx_make("a.test", &fx.a, NULL, NULL, 0);
    struct tls_ctx *cctx = ctx_make("client.test", &fx.client, NULL, NULL, 0);
    struct hs h;

    assert_int_equal(hs_run(&h, cctx, sctx, "a.test", TLS_ALPN_XMPP_SERVER), 0);
    assert_string_equal(h.ci.alpn, "xmpp-server");
    assert_string_equal(h.si.alpn, "xmpp-server");
    hs_done(&h);
    /* Something else offered: no ALPN, the handshake still completes. */
    assert_int_equal(hs_run(&h, cctx, sctx, "a.test", "h2"), 0);
    assert_null(h.ci.alpn);
    assert_null(h.si.alpn);
    hs_done(&h);
    tls_ctx_unref(sctx);
    tls_ctx_unref(cctx);
}

static void
test_min_version(void **state)
{
    struct tls_ctx *sctx = ctx_make("a.test", &fx.a, NULL, NULL, TLS1_3_VERSION);
    struct tls_ctx *cctx = ctx_make("client.test", &fx.client, NULL, NULL, 0);
    struct hs h;
    char err[256];

    /* A TLS 1.2-only client is refused by a 1.3-only server. */
    memset(&h, 0, sizeof(h));
    h.cli = tls_ssl_new(cctx, TLS_ROLE_CLIENT, "a.test", NULL, NULL, err, sizeof(err));
    h.srv = tls_ssl_new(sctx, TLS_ROLE_SERVER, NULL, NULL, NULL, err, sizeof(err));
    assert_true(SSL_set_max_proto_version(h.cli, TLS1_2_VERSION));
    assert_int_equal(handshake(h.cli, h.srv), -1);
    ERR_clear_error();
    SSL_free(h.cli);
    SSL_free(h.srv);
    /* Default client against the 1.3 server; then a 1.2 handshake against default. */
    assert_int_equal(hs_run(&h, cctx, sctx, "a.test", NULL), 0);
    assert_string_equal(h.ci.version, "TLSv1.3");
    hs_done(&h);
    tls_ctx_unref(sctx);
    sctx = ctx_make("a.test", &fx.a, NULL, NULL, 0);
    h.cli = tls_ssl_new(cctx, TLS_ROLE_CLIENT, "a.test", NULL, NULL, err, sizeof(err));
    h.srv = tls_ssl_new(sctx, TLS_ROLE_SERVER, NULL, NULL, NULL, err, sizeof(err));
    assert_true(SSL_set_max_proto_version(h.cli, TLS1_2_VERSION));
    assert_int_equal(handshake(h.cli, h.srv), 0);
    assert_string_equal(SSL_get_version(h.srv), "TLSv1.2");
    SSL_free(h.cli);
    SSL_free(h.srv);
    tls_ctx_unref(sctx);
    tls_ctx_unref(cctx);
}

static void
test_unref_while_in_use(void **state)
{
    /* A reload drops the old context while sessions made from it still handshake. */
    struct tls_ctx *sctx = ctx_make("a.test", &fx.a, "b.test", &fx.b, 0);
    struct tls_ctx *cctx = ctx_make("client.test", &fx.client, NULL, NULL, 0);
    struct hs h;
    char err[256];

    memset(&h, 0, sizeof(h));
    h.cli = tls_ssl_new(cctx, TLS_ROLE_CLIENT, "b.test", NULL, NULL, err, sizeof(err));
    h.srv = tls_ssl_new(sctx, TLS_ROLE_SERVER, NULL, NULL, NULL, err, sizeof(err));
    tls_ctx_unref(sctx);
    tls_ctx_unref(cctx);
    assert_int_equal(handshake(h.cli, h.srv), 0);
    tls_info_collect(h.cli, &h.ci);
    assert_string_equal(first_dns(&h.ci), "b.test");
    tls_info_clear(&h.ci);
    SSL_free(h.cli);
    SSL_free(h.srv);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ctx_good),
        cmocka_unit_test(test_ctx_missing_file),
        cmocka_unit_test(test_ctx_key_mismatch),
        cmocka_unit_test(test_ctx_not_pem),
        cmocka_unit_test(test_ctx_bad_settings),
        cmocka_unit_test(test_sni_picks_certificate),
        cmocka_unit_test(test_identities_and_client_cert),
        cmocka_unit_test(test_verify_recorded_not_enforced),
        cmocka_unit_test(test_alpn),
        cmocka_unit_test(test_min_version),
        cmocka_unit_test(test_unref_while_in_use),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
