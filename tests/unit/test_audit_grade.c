/*
 * audit_grade: a table of endpoint facts and the grade, trust mark, caps and findings
 * each must get (docs/audit.md is the specification), plus the domain's weakest-endpoint
 * rule and the --min-grade order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "s2s/audit_grade.h"

static void
add_cipher(struct audit_endpoint *ep, enum audit_tlsv v, const char *name, int bits, int kx,
           bool fs)
{
    struct audit_cipher *c = &ep->ciphers[v][ep->nciphers[v]++];
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->bits = bits;
    c->kx_secbits = kx;
    c->fs = fs;
}

/* A modern endpoint: TLS 1.2 + 1.3, ECDHE X25519, AES-128/256, valid cert, secure DANE,
 * STARTTLS required. */
static void
good_endpoint(struct audit_endpoint *ep)
{
    memset(ep, 0, sizeof(*ep));
    snprintf(ep->host, sizeof(ep->host), "xmpp.example.org");
    snprintf(ep->addr, sizeof(ep->addr), "2001:db8::1");
    ep->family = AF_INET6;
    ep->port = 5269;
    ep->mode = DNS_TLS_STARTTLS;
    ep->reachable = true;
    ep->pre_tls.seen = ep->pre_tls.starttls = ep->pre_tls.starttls_required = true;
    ep->tls = true;
    snprintf(ep->tls_version, sizeof(ep->tls_version), "TLSv1.3");
    ep->tls_cipher_bits = 256;
    ep->tls_kx_secbits = 128;
    ep->cert.present = ep->cert.chain_valid = ep->cert.name_valid = true;
    ep->cert.days_left = 200;
    ep->cert.key_secbits = 128;
    ep->dane = AUDIT_DANE_MATCH;
    ep->versions[AUDIT_TLS10] = ep->versions[AUDIT_TLS11] = AUDIT_V_REJECTED;
    ep->versions[AUDIT_TLS12] = ep->versions[AUDIT_TLS13] = AUDIT_V_ACCEPTED;
    add_cipher(ep, AUDIT_TLS12, "ECDHE-RSA-AES256-GCM-SHA384", 256, 128, true);
    add_cipher(ep, AUDIT_TLS12, "ECDHE-RSA-AES128-GCM-SHA256", 128, 128, true);
    add_cipher(ep, AUDIT_TLS13, "TLS_AES_256_GCM_SHA384", 256, 128, true);
}

static struct audit_domain *
domain_with(void (*tweak)(struct audit_domain *d, struct audit_endpoint *ep))
{
    struct audit_domain *d = calloc(1, sizeof(*d));

    assert_non_null(d);
    snprintf(d->domain, sizeof(d->domain), "example.org");
    d->srv_xmpp.status = d->srv_xmpps.status = DNS_OK;
    d->srv_xmpp.sec = d->srv_xmpps.sec = DNS_SEC_SECURE;
    d->nendpoints = 1;
    good_endpoint(&d->endpoints[0]);
    if (tweak != NULL)
        tweak(d, &d->endpoints[0]);
    audit_grade_domain(d);
    return d;
}

static bool
has_finding(const struct audit_domain *d, const char *what, const char *cap)
{
    for (size_t i = 0; i < d->nfindings; i++)
        if (strstr(d->findings[i].what, what) != NULL && strcmp(d->findings[i].cap, cap) == 0 &&
            d->findings[i].fix[0] != '\0')
            return true;
    return false;
}

/* ---- the tweaks: one fact changed each ---- */

static void
t_none(struct audit_domain *d, struct audit_endpoint *ep)
{
    (void)d;
    (void)ep;
}

static void
t_srv_insecure(struct audit_domain *d, struct audit_endpoint *ep)
{
    (void)ep;
    d->srv_xmpp.sec = DNS_SEC_INSECURE;
}

static void
t_no_dane(struct audit_domain *d, struct audit_endpoint *ep)
{
    (void)d;
    ep->dane = AUDIT_DANE_NONE;
}

static void
t_fallback(struct audit_domain *d, struct audit_endpoint *ep)
{
    (void)ep;
    d->fallback = true;
}

static void
t_tls11(struct audit_domain *d, struct audit_endpoint *ep)
{
    (void)d;
    ep->versions[AUDIT_TLS11] = AUDIT_V_ACCEPTED;
}

static void
t_tls10(struct audit_domain *d, struct audit_endpoint *ep)
{
    (void)d;
    ep->versions[AUDIT_TLS10] = AUDIT_V_ACCEPTED;
}

static void
t_not_required(struct audit_domain *d, struct audit_endpoint *ep)
{
    (void)d;
    ep->pre_tls.starttls_required = false;
}

static void
t_no_starttls(struct audit_domain *d, struct audit_endpoint *ep)
{
    (void)d;
    ep->pre_tls.starttls = ep->pre_tls.starttls_required = false;
    ep->tls = false;
    for (int v = 0; v < AUDIT_NTLSV; v++) {
        ep->versions[v] = AUDIT_V_UNTESTED;
        ep->nciphers[v] = 0;
    }
}

static void
t_expired(struct audit_domain *d, struct audit_endpoint *ep)
{
    (void)d;
    ep->cert.chain_valid = false;
    ep->cert.days_left = -3;
    snprintf(ep->cert.verify_error, sizeof(ep->cert.verify_error), "certificate has expired");
}

static void
t_wrong_name(struct audit_domain *d, struct audit_endpoint *ep)
{
    (void)d;
    ep->cert.name_valid = false;
}

static void
t_dane_mismatch(struct audit_domain *d, struct audit_endpoint *ep)
{
    (void)d;
    ep->dane = AUDIT_DANE_MISMATCH;
}

static void
t_3des(struct audit_domain *d, struct audit_endpoint *ep)
{
    (void)d;
    add_cipher(ep, AUDIT_TLS12, "ECDHE-RSA-DES-CBC3-SHA", 112, 128, true);
}

static void
t_rsa_kx(struct audit_domain *d, struct audit_endpoint *ep)
{
    (void)d;
    add_cipher(ep, AUDIT_TLS12, "AES128-GCM-SHA256", 128, 112, false);
}

static void
t_anon(struct audit_domain *d, struct audit_endpoint *ep)
{
    (void)d;
    add_cipher(ep, AUDIT_TLS12, "AECDH-AES256-SHA", 256, 0, true);
}

static void
t_compression(struct audit_domain *d, struct audit_endpoint *ep)
{
    (void)d;
    ep->post_tls.seen = ep->post_tls.compression = true;
}

static void
t_weak_dh(struct audit_domain *d, struct audit_endpoint *ep)
{
    (void)d;
    add_cipher(ep, AUDIT_TLS12, "DHE-RSA-AES128-GCM-SHA256", 128, 80, true); /* DH 1024 */
}

static void
t_unreachable(struct audit_domain *d, struct audit_endpoint *ep)
{
    (void)d;
    ep->reachable = false;
    snprintf(ep->error, sizeof(ep->error), "connect: Connection refused");
}

static void
t_tls_fails(struct audit_domain *d, struct audit_endpoint *ep)
{
    (void)d;
    ep->tls = false;
    snprintf(ep->tls_error, sizeof(ep->tls_error), "TLS handshake failed: refused");
    for (int v = 0; v < AUDIT_NTLSV; v++) {
        ep->versions[v] = AUDIT_V_REJECTED;
        ep->nciphers[v] = 0;
    }
}

static void
t_expiring(struct audit_domain *d, struct audit_endpoint *ep)
{
    (void)d;
    ep->cert.days_left = 10;
}

static void
t_only_main(struct audit_domain *d, struct audit_endpoint *ep)
{
    (void)d;
    /* No enumeration ran: the main handshake alone is graded. */
    for (int v = 0; v < AUDIT_NTLSV; v++) {
        ep->versions[v] = AUDIT_V_UNTESTED;
        ep->nciphers[v] = 0;
    }
}

static void
t_tls11_and_expired(struct audit_domain *d, struct audit_endpoint *ep)
{
    t_tls11(d, ep);
    t_expired(d, ep);
}

/* The SRV target is an alias (RFC 2782 forbids it): both services point at it. */
static void
t_alias(struct audit_domain *d, struct audit_endpoint *ep)
{
    d->ntargets = 2;
    for (size_t i = 0; i < 2; i++) {
        struct audit_target *t = &d->targets[i];
        snprintf(t->host, sizeof(t->host), "%s", ep->host);
        snprintf(t->cname, sizeof(t->cname), "real.example.org");
        t->port = i == 0 ? 5270 : 5269;
        t->mode = i == 0 ? DNS_TLS_DIRECT : DNS_TLS_STARTTLS;
        t->naddrs = 1;
    }
    snprintf(ep->cname, sizeof(ep->cname), "real.example.org");
}

static void
t_alias_tls11(struct audit_domain *d, struct audit_endpoint *ep)
{
    t_alias(d, ep);
    t_tls11(d, ep);
}

struct grade_case {
    const char *name;
    void (*tweak)(struct audit_domain *, struct audit_endpoint *);
    enum audit_grade grade; /* before the T mark */
    bool trust_mark;
    enum audit_grade effective; /* what the domain shows */
    const char *finding;        /* a finding that must be listed (NULL: none checked) */
    const char *cap;
};

static const struct grade_case cases[] = {
    {"modern, DNSSEC, DANE", t_none, AUDIT_GRADE_APLUS, false, AUDIT_GRADE_APLUS, NULL, NULL},
    {"SRV insecure", t_srv_insecure, AUDIT_GRADE_A, false, AUDIT_GRADE_A, "DNSSEC-signed SRV", "A"},
    {"no DANE", t_no_dane, AUDIT_GRADE_A, false, AUDIT_GRADE_A, "matching DANE", "A"},
    {"no SRV (fallback)", t_fallback, AUDIT_GRADE_A, false, AUDIT_GRADE_A, "no SRV record", "A"},
    {"TLS 1.1 accepted", t_tls11, AUDIT_GRADE_B, false, AUDIT_GRADE_B, "TLS 1.1 accepted", "B"},
    {"TLS 1.0 accepted", t_tls10, AUDIT_GRADE_B, false, AUDIT_GRADE_B, "TLS 1.0 accepted", "B"},
    {"TLS not required", t_not_required, AUDIT_GRADE_C, false, AUDIT_GRADE_C, "not required", "C"},
    {"no STARTTLS", t_no_starttls, AUDIT_GRADE_F, false, AUDIT_GRADE_F, "STARTTLS not offered",
     "F"},
    {"TLS fails", t_tls_fails, AUDIT_GRADE_F, false, AUDIT_GRADE_F, "no TLS handshake", "F"},
    {"expired", t_expired, AUDIT_GRADE_A, true, AUDIT_GRADE_T, "does not verify", "T"},
    {"wrong name", t_wrong_name, AUDIT_GRADE_A, true, AUDIT_GRADE_T, "not valid for", "T"},
    {"DANE mismatch", t_dane_mismatch, AUDIT_GRADE_A, true, AUDIT_GRADE_T, "DANE", "T"},
    {"3DES", t_3des, AUDIT_GRADE_C, false, AUDIT_GRADE_C, "under 128 bits", "C"},
    {"RSA key exchange", t_rsa_kx, AUDIT_GRADE_B, false, AUDIT_GRADE_B, "forward secrecy", "B"},
    {"anonymous", t_anon, AUDIT_GRADE_F, false, AUDIT_GRADE_F, "anonymous", "F"},
    {"compression", t_compression, AUDIT_GRADE_B, false, AUDIT_GRADE_B, "compression", "B"},
    {"DH 1024", t_weak_dh, AUDIT_GRADE_A, false, AUDIT_GRADE_A, "weak key exchange", "A"},
    {"unreachable", t_unreachable, AUDIT_GRADE_NONE, false, AUDIT_GRADE_NONE, "unreachable", ""},
    {"expires soon", t_expiring, AUDIT_GRADE_APLUS, false, AUDIT_GRADE_APLUS, "expires in 10", ""},
    {"main handshake only", t_only_main, AUDIT_GRADE_APLUS, false, AUDIT_GRADE_APLUS, NULL, NULL},
    {"SRV target is an alias", t_alias, AUDIT_GRADE_A, false, AUDIT_GRADE_A,
     "xmpp.example.org is an alias (CNAME) of real.example.org", "A"},
    {"alias and TLS 1.1", t_alias_tls11, AUDIT_GRADE_B, false, AUDIT_GRADE_B, "is an alias", "A"},
    {"TLS 1.1 and expired", t_tls11_and_expired, AUDIT_GRADE_B, true, AUDIT_GRADE_T, "TLS 1.1",
     "B"},
};

static void
test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct grade_case *c = &cases[i];
        struct audit_domain *d = domain_with(c->tweak);
        if (d->score.grade != c->grade || d->score.trust_mark != c->trust_mark ||
            d->score.effective != c->effective ||
            (c->finding != NULL && !has_finding(d, c->finding, c->cap))) {
            fprintf(stderr, "case \"%s\": grade %s trust %d effective %s (want %s %d %s)\n",
                    c->name, audit_grade_name(d->score.grade), d->score.trust_mark,
                    audit_grade_name(d->score.effective), audit_grade_name(c->grade), c->trust_mark,
                    audit_grade_name(c->effective));
            for (size_t j = 0; j < d->nfindings; j++)
                fprintf(stderr, "  finding [%s] %s\n", d->findings[j].cap, d->findings[j].what);
            fail_msg("case \"%s\"", c->name);
        }
        free(d);
    }
}

/* The 30/30/40 arithmetic on the modern endpoint: 100, 90 (X25519 = 128 bits), 90. */
static void
test_scores(void **state)
{
    struct audit_domain *d = domain_with(t_none);

    (void)state;
    assert_int_equal(d->score.protocol, 100);
    assert_int_equal(d->score.key_exchange, 90);
    assert_int_equal(d->score.cipher, 90);
    assert_int_equal(d->score.total, 93);
    free(d);
    d = domain_with(t_tls10); /* protocol (100 + 90) / 2 */
    assert_int_equal(d->score.protocol, 95);
    free(d);
    d = domain_with(t_weak_dh); /* DH 1024 = 80 bits: key exchange 80 */
    assert_int_equal(d->score.key_exchange, 80);
    assert_int_equal(d->score.total, (30 * 100 + 30 * 80 + 40 * 90 + 50) / 100);
    free(d);
    d = domain_with(t_3des); /* weakest 112 bits: (100 + 20) / 2 */
    assert_int_equal(d->score.cipher, 60);
    free(d);
}

/* A fine endpoint and a bad one: the domain gets the bad one's grade. */
static void
t_two_endpoints(struct audit_domain *d, struct audit_endpoint *ep)
{
    d->nendpoints = 2;
    d->endpoints[1] = *ep;
    snprintf(d->endpoints[1].addr, sizeof(d->endpoints[1].addr), "192.0.2.1");
    d->endpoints[1].family = AF_INET;
    d->endpoints[1].versions[AUDIT_TLS11] = AUDIT_V_ACCEPTED;
}

static void
test_weakest_endpoint(void **state)
{
    struct audit_domain *d = domain_with(t_two_endpoints);

    (void)state;
    assert_int_equal(d->scores[0].effective, AUDIT_GRADE_APLUS);
    assert_int_equal(d->scores[1].effective, AUDIT_GRADE_B);
    assert_int_equal(d->score.effective, AUDIT_GRADE_B);
    assert_true(has_finding(d, "TLS 1.1 accepted", "B"));
    assert_string_equal(d->findings[0].endpoint, "192.0.2.1:5269");
    free(d);
}

/* One unreachable endpoint does not hide a reachable one; none reachable: no grade. */
static void
t_one_unreachable(struct audit_domain *d, struct audit_endpoint *ep)
{
    t_two_endpoints(d, ep);
    d->endpoints[1].reachable = false;
}

static void
test_unreachable(void **state)
{
    struct audit_domain *d = domain_with(t_one_unreachable);

    (void)state;
    assert_int_equal(d->score.effective, AUDIT_GRADE_APLUS);
    assert_true(has_finding(d, "unreachable", ""));
    free(d);
    d = calloc(1, sizeof(*d));
    assert_non_null(d);
    d->no_service = true;
    d->dns_status = DNS_NOSERVICE;
    audit_grade_domain(d);
    assert_int_equal(d->score.effective, AUDIT_GRADE_NONE);
    assert_true(has_finding(d, "no XMPP server-to-server service", ""));
    free(d);
}

static size_t
count_findings(const struct audit_domain *d, const char *what)
{
    size_t n = 0;

    for (size_t i = 0; i < d->nfindings; i++)
        n += strstr(d->findings[i].what, what) != NULL;
    return n;
}

/* One finding per alias name, for the domain; the fallback (no SRV) is not an SRV target. */
static void
t_alias_fallback(struct audit_domain *d, struct audit_endpoint *ep)
{
    t_alias(d, ep);
    d->ntargets = 1;
    d->fallback = true;
}

static void
test_alias(void **state)
{
    struct audit_domain *d = domain_with(t_alias);

    (void)state;
    assert_int_equal(count_findings(d, "is an alias"), 1); /* two targets, one name */
    for (size_t i = 0; i < d->nfindings; i++)
        if (strstr(d->findings[i].what, "is an alias") != NULL)
            assert_string_equal(d->findings[i].endpoint, "");
    free(d);
    d = domain_with(t_alias_fallback);
    assert_int_equal(count_findings(d, "is an alias"), 0);
    assert_int_equal(d->score.effective, AUDIT_GRADE_A); /* fallback: no A+ anyway */
    free(d);
}

static void
test_names_and_order(void **state)
{
    (void)state;
    assert_string_equal(audit_grade_name(AUDIT_GRADE_APLUS), "A+");
    assert_string_equal(audit_grade_name(AUDIT_GRADE_T), "T");
    assert_string_equal(audit_grade_name(AUDIT_GRADE_NONE), "-");
    assert_int_equal(audit_grade_parse("a+"), AUDIT_GRADE_APLUS);
    assert_int_equal(audit_grade_parse("C"), AUDIT_GRADE_C);
    assert_int_equal(audit_grade_parse("Z"), -1);
    assert_true(audit_grade_meets(AUDIT_GRADE_APLUS, AUDIT_GRADE_A));
    assert_true(audit_grade_meets(AUDIT_GRADE_B, AUDIT_GRADE_B));
    assert_false(audit_grade_meets(AUDIT_GRADE_C, AUDIT_GRADE_B));
    assert_false(audit_grade_meets(AUDIT_GRADE_T, AUDIT_GRADE_E));
    assert_true(audit_grade_meets(AUDIT_GRADE_T, AUDIT_GRADE_F)); /* T fails like F */
    assert_false(audit_grade_meets(AUDIT_GRADE_NONE, AUDIT_GRADE_F));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_scores),
        cmocka_unit_test(test_weakest_endpoint),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_alias),
        cmocka_unit_test(test_names_and_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
