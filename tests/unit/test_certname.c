/*
 * Certificate identity matching (s2s/certname.c): a table of presented identities,
 * reference and expected answer, plus bounds, embedded NULs, IDNA and domain validation.
 * IDNA rows have one answer with libidn2 (HAVE_LIBIDN2) and one without (fail closed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "s2s/certname.h"

#define L(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NONE   CERTNAME_NONE
#define DNS    CERTNAME_DNS_ID
#define SRV    CERTNAME_SRV_ID
#define XMPP   CERTNAME_XMPP_ADDR
#define CN     CERTNAME_CN
#define TARGET CERTNAME_SRV_TARGET
#define S_XMPP CERTNAME_SVC_XMPP_SERVER
#define S_XMPS CERTNAME_SVC_XMPPS_SERVER

struct row {
    const char *what;
    const char *const *dns, *const *srv, *const *xmpp, *const *cn;
    bool uri;
    const char *domain;
    unsigned svc;
    const char *target;
    bool secure, cnfb;
    enum certname_type want;
};

static const struct row rows[] = {
    /* exact, case, trailing dots */
    {"exact", .dns = L("example.org"), .domain = "example.org", .want = DNS},
    {"case", .dns = L("EXAMPLE.Org"), .domain = "example.ORG", .want = DNS},
    {"presented dot", .dns = L("example.org."), .domain = "example.org", .want = DNS},
    {"reference dot", .dns = L("example.org"), .domain = "example.org.", .want = DNS},
    {"two dots presented", .dns = L("example.org.."), .domain = "example.org", .want = NONE},
    {"two dots reference", .dns = L("example.org"), .domain = "example.org..", .want = NONE},
    {"second of list", .dns = L("other.org", "example.org"), .domain = "example.org", .want = DNS},
    {"other domain", .dns = L("example.org"), .domain = "example.com", .want = NONE},
    {"ref subdomain", .dns = L("example.org"), .domain = "www.example.org", .want = NONE},
    {"ref parent", .dns = L("www.example.org"), .domain = "example.org", .want = NONE},
    {"suffix only", .dns = L("example.org"), .domain = "xexample.org", .want = NONE},
    {"leading dot", .dns = L(".example.org"), .domain = "example.org", .want = NONE},
    {"empty ref", .dns = L("example.org"), .domain = "", .want = NONE},
    {"empty dns-id", .dns = L(""), .domain = "example.org", .want = NONE},
    {"dot only", .dns = L("."), .domain = ".", .want = NONE},
    {"single label", .dns = L("localhost"), .domain = "LOCALHOST", .want = DNS},
    /* wildcards */
    {"wildcard", .dns = L("*.example.org"), .domain = "a.example.org", .want = DNS},
    {"wildcard case dot", .dns = L("*.EXAMPLE.org"), .domain = "A.example.ORG.", .want = DNS},
    {"wildcard not apex", .dns = L("*.example.org"), .domain = "example.org", .want = NONE},
    {"wildcard one label", .dns = L("*.example.org"), .domain = "a.b.example.org", .want = NONE},
    {"partial f*", .dns = L("f*.example.org"), .domain = "foo.example.org", .want = NONE},
    {"partial *oo", .dns = L("*oo.example.org"), .domain = "foo.example.org", .want = NONE},
    {"partial f*o", .dns = L("f*o.example.org"), .domain = "foo.example.org", .want = NONE},
    {"inner wildcard", .dns = L("a.*.example.org"), .domain = "a.b.example.org", .want = NONE},
    {"two wildcards", .dns = L("*.*.example.org"), .domain = "a.b.example.org", .want = NONE},
    {"double star", .dns = L("**.example.org"), .domain = "a.example.org", .want = NONE},
    {"wildcard tld", .dns = L("*.org"), .domain = "example.org", .want = NONE},
    {"star alone", .dns = L("*"), .domain = "org", .want = NONE},
    {"star dot", .dns = L("*."), .domain = "org", .want = NONE},
    {"right-most star", .dns = L("example.*"), .domain = "example.org", .want = NONE},
    {"wildcard in A-label", .dns = L("xn--*.example.org"), .domain = "xn--bcher-kva.example.org",
     .want = NONE},
    {"partial vs A-label", .dns = L("x*.example.org"), .domain = "xn--bcher-kva.example.org",
     .want = NONE},
    {"whole wildcard vs A-label", .dns = L("*.example.org"), .domain = "xn--bcher-kva.example.org",
     .want = DNS},
    {"wildcard vs empty label", .dns = L("*.example.org"), .domain = ".example.org", .want = NONE},
    {"wildcard reference", .dns = L("*.example.org"), .domain = "*.example.org", .want = NONE},
    /* SRV-ID (RFC 6125 §6.5.1, RFC 4985) */
    {"srv-id", .srv = L("_xmpp-server.example.org"), .domain = "example.org", .svc = S_XMPP,
     .want = SRV},
    {"srv-id xmpps", .srv = L("_xmpps-server.example.org"), .domain = "example.org", .svc = S_XMPS,
     .want = SRV},
    {"srv-id both", .srv = L("_xmpps-server.example.org"), .domain = "example.org",
     .svc = S_XMPP | S_XMPS, .want = SRV},
    {"srv-id xmpps not asked", .srv = L("_xmpps-server.example.org"), .domain = "example.org",
     .svc = S_XMPP, .want = NONE},
    {"srv-id xmpp not asked", .srv = L("_xmpp-server.example.org"), .domain = "example.org",
     .svc = S_XMPS, .want = NONE},
    {"srv-id no service", .srv = L("_xmpp-server.example.org"), .domain = "example.org", .svc = 0,
     .want = NONE},
    {"srv-id case dot", .srv = L("_XMPP-Server.Example.ORG."), .domain = "example.org",
     .svc = S_XMPP, .want = SRV},
    {"srv-id client", .srv = L("_xmpp-client.example.org"), .domain = "example.org",
     .svc = S_XMPP | S_XMPS, .want = NONE},
    {"srv-id wildcard", .srv = L("_xmpp-server.*.example.org"), .domain = "a.example.org",
     .svc = S_XMPP, .want = NONE},
    {"srv-id no underscore", .srv = L("xmpp-server.example.org"), .domain = "example.org",
     .svc = S_XMPP, .want = NONE},
    {"srv-id no domain", .srv = L("_xmpp-server"), .domain = "xmpp-server", .svc = S_XMPP,
     .want = NONE},
    {"srv-id empty domain", .srv = L("_xmpp-server."), .domain = "example.org", .svc = S_XMPP,
     .want = NONE},
    {"srv-id other domain", .srv = L("_xmpp-server.other.org"), .domain = "example.org",
     .svc = S_XMPP, .want = NONE},
    {"srv-id longer service", .srv = L("_xmpp-serverx.example.org"), .domain = "example.org",
     .svc = S_XMPP, .want = NONE},
    {"srv-id shorter service", .srv = L("_xmpp-serve.example.org"), .domain = "example.org",
     .svc = S_XMPP, .want = NONE},
    {"srv-id as dns-id", .dns = L("_xmpp-server.example.org"), .domain = "example.org",
     .svc = S_XMPP, .want = NONE},
    /* XmppAddr (RFC 6120 §13.7.1.4) */
    {"xmppaddr", .xmpp = L("example.org"), .domain = "example.org", .want = XMPP},
    {"xmppaddr case dot", .xmpp = L("Example.Org."), .domain = "example.org", .want = XMPP},
    {"xmppaddr wildcard", .xmpp = L("*.example.org"), .domain = "a.example.org", .want = NONE},
    {"xmppaddr user", .xmpp = L("user@example.org"), .domain = "example.org", .want = NONE},
    {"xmppaddr resource", .xmpp = L("example.org/res"), .domain = "example.org", .want = NONE},
    {"xmppaddr other", .xmpp = L("other.org"), .domain = "example.org", .want = NONE},
    /* CN: off by default (RFC 9525), and only without SAN identities (RFC 6125 §6.4.4) */
    {"cn off", .cn = L("example.org"), .domain = "example.org", .want = NONE},
    {"cn on", .cn = L("example.org"), .domain = "example.org", .cnfb = true, .want = CN},
    {"cn with dns-id", .dns = L("other.org"), .cn = L("example.org"), .domain = "example.org",
     .cnfb = true, .want = NONE},
    {"cn with srv-id", .srv = L("_xmpp-server.other.org"), .cn = L("example.org"),
     .domain = "example.org", .svc = S_XMPP, .cnfb = true, .want = NONE},
    {"cn with xmppaddr", .xmpp = L("other.org"), .cn = L("example.org"), .domain = "example.org",
     .cnfb = true, .want = NONE},
    {"cn with uri-id", .uri = true, .cn = L("example.org"), .domain = "example.org", .cnfb = true,
     .want = NONE},
    {"cn wildcard", .cn = L("*.example.org"), .domain = "a.example.org", .cnfb = true, .want = CN},
    {"cn partial wildcard", .cn = L("a*.example.org"), .domain = "ab.example.org", .cnfb = true,
     .want = NONE},
    {"cn not last", .cn = L("example.org", "other.org"), .domain = "example.org", .cnfb = true,
     .want = NONE},
    {"cn last", .cn = L("example.org", "other.org"), .domain = "other.org", .cnfb = true,
     .want = CN},
    {"dns-id before cn", .dns = L("example.org"), .cn = L("example.org"), .domain = "example.org",
     .cnfb = true, .want = DNS},
    /* SRV target: only when the SRV answer was DNSSEC-secure (RFC 7673) */
    {"target secure", .dns = L("xmpp.hosting.net"), .domain = "example.org",
     .target = "xmpp.hosting.net", .secure = true, .want = TARGET},
    {"target insecure", .dns = L("xmpp.hosting.net"), .domain = "example.org",
     .target = "xmpp.hosting.net", .secure = false, .want = NONE},
    {"target dot", .dns = L("xmpp.hosting.net"), .domain = "example.org",
     .target = "XMPP.hosting.net.", .secure = true, .want = TARGET},
    {"target wildcard", .dns = L("*.hosting.net"), .domain = "example.org",
     .target = "xmpp.hosting.net", .secure = true, .want = TARGET},
    {"target other", .dns = L("xmpp.hosting.net"), .domain = "example.org",
     .target = "xmpp2.hosting.net", .secure = true, .want = NONE},
    {"target vs srv-id", .srv = L("_xmpp-server.xmpp.hosting.net"), .domain = "example.org",
     .svc = S_XMPP, .target = "xmpp.hosting.net", .secure = true, .want = NONE},
    {"target vs xmppaddr", .xmpp = L("xmpp.hosting.net"), .domain = "example.org",
     .target = "xmpp.hosting.net", .secure = true, .want = NONE},
    {"target cn on", .cn = L("xmpp.hosting.net"), .domain = "example.org",
     .target = "xmpp.hosting.net", .secure = true, .cnfb = true, .want = TARGET},
    {"target cn off", .cn = L("xmpp.hosting.net"), .domain = "example.org",
     .target = "xmpp.hosting.net", .secure = true, .want = NONE},
    {"target null", .dns = L("xmpp.hosting.net"), .domain = "example.org", .target = NULL,
     .secure = true, .want = NONE},
    {"target bad", .dns = L("xmpp.hosting.net"), .domain = "example.org",
     .target = "xmpp..hosting.net", .secure = true, .want = NONE},
    {"domain before target", .dns = L("xmpp.hosting.net", "example.org"), .domain = "example.org",
     .target = "xmpp.hosting.net", .secure = true, .want = DNS},
    /* characters and label syntax */
    {"tab", .dns = L("exa\tmple.org"), .domain = "exa\tmple.org", .want = NONE},
    {"newline ref", .dns = L("example.org"), .domain = "example.org\n", .want = NONE},
    {"del", .dns = L("example.org\x7f"), .domain = "example.org\x7f", .want = NONE},
    {"at", .dns = L("a@example.org"), .domain = "a@example.org", .want = NONE},
    {"slash", .dns = L("example.org/x"), .domain = "example.org/x", .want = NONE},
    {"underscore", .dns = L("a_b.example.org"), .domain = "a_b.example.org", .want = NONE},
    {"space", .dns = L("a b.example.org"), .domain = "a b.example.org", .want = NONE},
    {"ip address", .dns = L("192.0.2.1"), .domain = "192.0.2.1", .want = NONE},
    {"numeric label ok", .dns = L("123.example.org"), .domain = "123.example.org", .want = DNS},
    {"leading hyphen", .dns = L("-a.example.org"), .domain = "-a.example.org", .want = NONE},
    {"trailing hyphen", .dns = L("a-.example.org"), .domain = "a-.example.org", .want = NONE},
    {"reserved --", .dns = L("ab--c.example.org"), .domain = "ab--c.example.org", .want = NONE},
    {"a-label exact", .dns = L("XN--bcher-kva.example.org"), .domain = "xn--BCHER-kva.example.org",
     .want = DNS},
    {"non-ascii dns-id",
     .dns = L("b\xc3\xbc"
              "cher.example"),
     .domain = "b\xc3\xbc"
               "cher.example",
     .want = NONE},
};

static void
fill(struct certname_id *out, size_t *n, const char *const *names)
{
    *n = 0;
    for (; names != NULL && *names != NULL; names++, (*n)++) {
        out[*n].name = *names;
        out[*n].len = strlen(*names);
    }
}

static enum certname_type
run_row(const struct row *r)
{
    struct certname_id dns[8], srv[8], xmpp[8], cn[8];
    struct certname_presented ids = {0};
    struct certname_reference ref = {0};

    fill(dns, &ids.n_dns_ids, r->dns);
    fill(srv, &ids.n_srv_ids, r->srv);
    fill(xmpp, &ids.n_xmpp_addrs, r->xmpp);
    fill(cn, &ids.n_cns, r->cn);
    ids.dns_ids = dns;
    ids.srv_ids = srv;
    ids.xmpp_addrs = xmpp;
    ids.cns = cn;
    ids.has_uri_id = r->uri;
    ref.domain = r->domain;
    ref.services = r->svc;
    ref.srv_target = r->target;
    ref.srv_secure = r->secure;
    ref.cn_fallback = r->cnfb;
    return certname_match(&ids, &ref);
}

static void
test_table(void **state)
{
    int failures = 0;

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        enum certname_type got = run_row(&rows[i]);
        if (got != rows[i].want) {
            fprintf(stderr, "row %zu \"%s\": got %s, want %s\n", i, rows[i].what,
                    certname_type_name(got), certname_type_name(rows[i].want));
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

#ifdef HAVE_LIBIDN2
#define IDN(with, without) (with)
#else
#define IDN(with, without) (without)
#endif

/* U-labels: converted with libidn2, never matching without it. */
static const struct row idna_rows[] = {
    {"u-label ref vs a-label", .dns = L("xn--bcher-kva.example"),
     .domain = "b\xc3\xbc"
               "cher.example",
     .want = IDN(DNS, NONE)},
    {"mixed-case u-label ref", .dns = L("xn--bcher-kva.example"),
     .domain = "B\xc3\x9c"
               "CHER.Example",
     .want = IDN(DNS, NONE)},
    {"u-label ref, trailing dot", .dns = L("xn--bcher-kva.example"),
     .domain = "b\xc3\xbc"
               "cher.example.",
     .want = IDN(DNS, NONE)},
    {"u-label ref vs wildcard", .dns = L("*.example.org"),
     .domain = "b\xc3\xbc"
               "cher.example.org",
     .want = IDN(DNS, NONE)},
    {"u-label ref vs srv-id", .srv = L("_xmpp-server.xn--bcher-kva.example"),
     .domain = "b\xc3\xbc"
               "cher.example",
     .svc = S_XMPP, .want = IDN(SRV, NONE)},
    {"u-label xmppaddr vs a-label ref",
     .xmpp = L("b\xc3\xbc"
               "cher.example"),
     .domain = "xn--bcher-kva.example", .want = IDN(XMPP, NONE)},
    {"u-label xmppaddr vs u-label ref",
     .xmpp = L("b\xc3\xbc"
               "cher.example"),
     .domain = "b\xc3\xbc"
               "cher.example",
     .want = IDN(XMPP, NONE)},
    {"different u-label", .dns = L("xn--bcher-kva.example"),
     .domain = "b\xc3\xa4"
               "cher.example",
     .want = NONE},
    {"bad utf-8 ref", .dns = L("xn--bcher-kva.example"),
     .domain = "b\xc3"
               "(cher.example",
     .want = NONE},
    {"overlong utf-8 ref", .dns = L("xn--bcher-kva.example"),
     .domain = "b\xc0\xaf"
               "cher.example",
     .want = NONE},
    {"u-label with underscore", .dns = L("xn--b_cher-kva.example"),
     .domain = "b\xc3\xbc_cher.example", .want = NONE},
    {"u-label target refused", .dns = L("xn--bcher-kva.example"), .domain = "example.org",
     .target = "b\xc3\xbc"
               "cher.example",
     .secure = true, .want = NONE},
};

static void
test_idna(void **state)
{
    int failures = 0;

    for (size_t i = 0; i < sizeof(idna_rows) / sizeof(idna_rows[0]); i++) {
        enum certname_type got = run_row(&idna_rows[i]);
        if (got != idna_rows[i].want) {
            fprintf(stderr, "idna row %zu \"%s\": got %s, want %s\n", i, idna_rows[i].what,
                    certname_type_name(got), certname_type_name(idna_rows[i].want));
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

/* An embedded NUL must not cut a presented name short ("example.org\0.evil.example"). */
static void
test_embedded_nul(void **state)
{
    static const char dnsname[] = "example.org\0.evil.example";
    static const char srvname[] = "_xmpp-server.example.org\0.evil.example";
    static const char svcnul[] = "_xmpp-server\0.example.org";
    struct certname_id id = {dnsname, sizeof(dnsname) - 1};
    struct certname_id sid = {srvname, sizeof(srvname) - 1};
    struct certname_id snul = {svcnul, sizeof(svcnul) - 1};
    struct certname_id ok = {"example.org", 11};
    struct certname_presented ids = {0};
    struct certname_reference ref = {.domain = "example.org", .services = S_XMPP};

    ids.dns_ids = &id;
    ids.n_dns_ids = 1;
    assert_int_equal(certname_match(&ids, &ref), NONE);
    ids.n_dns_ids = 0;
    ids.xmpp_addrs = &id;
    ids.n_xmpp_addrs = 1;
    assert_int_equal(certname_match(&ids, &ref), NONE);
    ids.n_xmpp_addrs = 0;
    ids.srv_ids = &sid;
    ids.n_srv_ids = 1;
    assert_int_equal(certname_match(&ids, &ref), NONE);
    ids.srv_ids = &snul;
    assert_int_equal(certname_match(&ids, &ref), NONE);
    ids.n_srv_ids = 0;
    ids.cns = &id;
    ids.n_cns = 1;
    ref.cn_fallback = true;
    assert_int_equal(certname_match(&ids, &ref), NONE);
    /* The same identifier with its true length does match: the test can fail. */
    ids.cns = &ok;
    assert_int_equal(certname_match(&ids, &ref), CN);
    /* A zero length is no name. */
    ok.len = 0;
    assert_int_equal(certname_match(&ids, &ref), NONE);
    assert_int_equal(certname_match(NULL, &ref), NONE);
    assert_int_equal(certname_match(&ids, NULL), NONE);
}

/* Builds a name of nlabels labels of lablen 'a's each (plus an optional trailing dot). */
static void
make_name(char *buf, size_t nlabels, size_t lablen, bool dot)
{
    char *p = buf;

    for (size_t i = 0; i < nlabels; i++) {
        if (i > 0)
            *p++ = '.';
        memset(p, 'a' + (char)(i % 26), lablen);
        p += lablen;
    }
    if (dot)
        *p++ = '.';
    *p = '\0';
}

static enum certname_type
match1(const char *dns, const char *domain)
{
    struct certname_id id = {dns, strlen(dns)};
    struct certname_presented ids = {.dns_ids = &id, .n_dns_ids = 1};
    struct certname_reference ref = {.domain = domain};

    return certname_match(&ids, &ref);
}

static void
test_bounds(void **state)
{
    char name[2048], wild[2048];

    /* 63-octet label fits, 64 does not. */
    make_name(name, 2, 63, false);
    assert_int_equal(match1(name, name), DNS);
    make_name(name, 2, 64, false);
    assert_int_equal(match1(name, name), NONE);
    /* 4 x 63 + 3 dots = 255: too long; 3 x 63 + 61 + 3 dots = 253: fits. */
    make_name(name, 4, 63, false);
    assert_int_equal(match1(name, name), NONE);
    make_name(name, 3, 63, false);
    strcat(name, ".");
    memset(name + strlen(name), 'z', 61);
    name[3 * 64 + 61] = '\0';
    assert_int_equal(strlen(name), 253);
    assert_int_equal(match1(name, name), DNS);
    /* ...with its trailing dot too (254 octets written, 253 meant). */
    strcat(name, ".");
    assert_int_equal(match1(name, name), DNS);
    /* 254 octets without a dot: too long. */
    name[253] = 'z';
    name[254] = '\0';
    assert_int_equal(match1(name, name), NONE);
    /* A wildcard pattern cannot be used to smuggle an overlong reference. */
    make_name(name, 4, 63, false);
    snprintf(wild, sizeof(wild), "*%s", strchr(name, '.'));
    assert_int_equal(match1(wild, name), NONE);
    /* Inputs over CERTNAME_MAX_INPUT are refused before any work. */
    memset(name, 'a', 1500);
    name[1500] = '\0';
    assert_int_equal(match1(name, name), NONE);
    assert_false(certname_domain_valid(name));
}

static void
test_domain_valid(void **state)
{
    static const char *const good[] = {
        "example.org",
        "Example.ORG.",
        "localhost",
        "a-b.example",
        "xn--bcher-kva.example",
        ("b\xc3\xbc"
         "cher.example"),
        "123.example.org",
        "a.b.c.d.example",
    };
    static const char *const bad[] = {
        "",
        ".",
        "..",
        ".example.org",
        "example..org",
        "user@example.org",
        "example.org/res",
        "exa mple.org",
        "exa\tmple.org",
        "1.2.3.4",
        "[::1]",
        "*.example.org",
        "-a.example",
        "a-.example",
        "a_b.example",
        "ab--c.example",
        "b\xc3(.example",
        "\xc0\xaf"
        ".example",
        "\xed\xa0\x80.example",
        "\xf4\x90\x80\x80.example",
        "b\xc3\xbc"
        "cher.123",
        "example.org\x7f",
        "b\xc3\xbc_cher.example",
    };
    char buf[CERTNAME_BUFSIZE], label64[160];

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!certname_domain_valid(good[i]))
            fail_msg("should be valid: %s", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (certname_domain_valid(bad[i]))
            fail_msg("should be invalid: %s", bad[i]);
    assert_false(certname_domain_valid(NULL));
    make_name(label64, 2, 64, false);
    assert_false(certname_domain_valid(label64));

    assert_int_equal(certname_domain_normalize("Example.ORG.", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "example.org");
    assert_int_equal(certname_domain_normalize("example.org", buf, 11), -1); /* no room */
    assert_int_equal(certname_domain_normalize("example.org", buf, 12), 0);
    assert_int_equal(certname_domain_normalize("a@b", buf, sizeof(buf)), -1);
    assert_string_equal(buf, "");
    assert_int_equal(certname_domain_normalize("B\xc3\x9c"
                                               "cher.Example.",
                                               buf, sizeof(buf)),
                     0);
#ifdef HAVE_LIBIDN2
    assert_string_equal(buf, "xn--bcher-kva.example");
#else
    assert_string_equal(buf, "b\xc3\x9c"
                             "cher.example");
#endif
}

static void
test_type_names(void **state)
{
    assert_string_equal(certname_type_name(CERTNAME_NONE), "none");
    assert_string_equal(certname_type_name(CERTNAME_DNS_ID), "dns-id");
    assert_string_equal(certname_type_name(CERTNAME_SRV_ID), "srv-id");
    assert_string_equal(certname_type_name(CERTNAME_XMPP_ADDR), "xmppaddr");
    assert_string_equal(certname_type_name(CERTNAME_CN), "cn");
    assert_string_equal(certname_type_name(CERTNAME_SRV_TARGET), "srv-target");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),        cmocka_unit_test(test_idna),
        cmocka_unit_test(test_embedded_nul), cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_domain_valid), cmocka_unit_test(test_type_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
