/*
 * audit_report: the JSON document has every key of schema s2sproxy-audit/1 with its type
 * (docs/audit.md), absent facts are null rather than missing, several domains stay
 * separate documents; the text report begins with the domain and its grade.
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
#include "s2s/audit_report.h"

static struct audit_domain *
sample_domain(bool reachable)
{
    struct audit_domain *d = calloc(1, sizeof(*d));
    struct audit_endpoint *ep;
    struct audit_cipher *c;

    assert_non_null(d);
    snprintf(d->domain, sizeof(d->domain), "example.org");
    snprintf(d->dns_backend, sizeof(d->dns_backend), "unbound");
    d->dnssec_validating = true;
    d->srv_xmpp.status = DNS_OK;
    d->srv_xmpp.sec = DNS_SEC_SECURE;
    d->srv_xmpps.status = DNS_NODATA;
    d->ntargets = 1;
    snprintf(d->targets[0].host, sizeof(d->targets[0].host), "xmpp.example.org");
    d->targets[0].port = 5269;
    d->targets[0].naddrs = 1;
    d->nendpoints = 1;
    ep = &d->endpoints[0];
    snprintf(ep->host, sizeof(ep->host), "xmpp.example.org");
    snprintf(ep->addr, sizeof(ep->addr), "2001:db8::1");
    ep->family = AF_INET6;
    ep->port = 5269;
    ep->reachable = reachable;
    d->reachable = reachable;
    if (!reachable) {
        snprintf(ep->error, sizeof(ep->error), "connect: Connection refused");
        snprintf(d->error, sizeof(d->error), "no endpoint reachable");
        audit_grade_domain(d);
        return d;
    }
    snprintf(ep->stream_version, sizeof(ep->stream_version), "1.0");
    snprintf(ep->stream_from, sizeof(ep->stream_from), "example.org");
    ep->pre_tls.seen = ep->pre_tls.starttls = ep->pre_tls.starttls_required = true;
    ep->pre_tls.limit_max_bytes = ep->pre_tls.limit_idle_seconds = -1;
    ep->post_tls.seen = ep->post_tls.sasl = ep->post_tls.sasl_external = true;
    snprintf(ep->post_tls.sasl_mechanisms, sizeof(ep->post_tls.sasl_mechanisms), "EXTERNAL");
    ep->post_tls.limit_max_bytes = 10000;
    ep->post_tls.limit_idle_seconds = -1;
    ep->tls = true;
    snprintf(ep->tls_version, sizeof(ep->tls_version), "TLSv1.3");
    snprintf(ep->tls_cipher, sizeof(ep->tls_cipher), "TLS_AES_256_GCM_SHA384");
    ep->tls_cipher_bits = 256;
    ep->tls_kx_secbits = 128;
    ep->cert.present = ep->cert.chain_valid = ep->cert.name_valid = true;
    snprintf(ep->cert.subject, sizeof(ep->cert.subject), "/CN=example.org");
    snprintf(ep->cert.dns_names[0], AUDIT_STR, "example.org");
    ep->cert.ndns_names = 1;
    snprintf(ep->cert.name_match, sizeof(ep->cert.name_match), "dns-id");
    ep->cert.days_left = 90;
    ep->dane = AUDIT_DANE_MATCH;
    ep->tlsa_status = DNS_OK;
    ep->tlsa_sec = DNS_SEC_SECURE;
    ep->ntlsa = 1;
    snprintf(ep->tlsa[0], sizeof(ep->tlsa[0]), "3 1 1 00ff");
    ep->versions[AUDIT_TLS10] = AUDIT_V_NOT_TESTABLE;
    ep->versions[AUDIT_TLS11] = AUDIT_V_REJECTED;
    ep->versions[AUDIT_TLS12] = ep->versions[AUDIT_TLS13] = AUDIT_V_ACCEPTED;
    c = &ep->ciphers[AUDIT_TLS13][ep->nciphers[AUDIT_TLS13]++];
    snprintf(c->name, sizeof(c->name), "TLS_AES_256_GCM_SHA384");
    c->bits = 256;
    c->kx_secbits = 128;
    c->fs = true;
    snprintf(c->kx, sizeof(c->kx), "ECDHE x25519");
    audit_grade_domain(d);
    return d;
}

/* key -> expected JSON type, checked in obj. */
struct key_type {
    const char *key;
    json_type type;
};

static void
check_keys(const json_t *obj, const struct key_type *keys, size_t n, const char *where,
           bool allow_null)
{
    assert_true(json_is_object(obj));
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_object_get(obj, keys[i].key);
        if (v == NULL)
            fail_msg("%s: key \"%s\" missing", where, keys[i].key);
        if (allow_null && json_is_null(v))
            continue;
        /* JSON_TRUE stands for "a boolean" */
        if (keys[i].type == JSON_TRUE ? !json_is_boolean(v) : json_typeof(v) != keys[i].type)
            fail_msg("%s: key \"%s\" has type %d, want %d", where, keys[i].key, json_typeof(v),
                     keys[i].type);
    }
}

static const struct key_type domain_keys[] = {
    {"schema", JSON_STRING},   {"domain", JSON_STRING},
    {"grade", JSON_STRING},    {"grade_ignoring_trust", JSON_STRING},
    {"trust_mark", JSON_TRUE}, {"score", JSON_OBJECT},
    {"reachable", JSON_TRUE},  {"elapsed_ms", JSON_REAL},
    {"findings", JSON_ARRAY},  {"dns", JSON_OBJECT},
    {"endpoints", JSON_ARRAY},
};

static const struct key_type dns_keys[] = {
    {"backend", JSON_STRING},         {"dnssec_validated", JSON_TRUE}, {"status", JSON_STRING},
    {"srv_xmpps", JSON_OBJECT},       {"srv_xmpp", JSON_OBJECT},       {"fallback", JSON_TRUE},
    {"service_available", JSON_TRUE}, {"targets", JSON_ARRAY},
};

static const struct key_type target_keys[] = {
    {"host", JSON_STRING},       {"port", JSON_INTEGER},
    {"mode", JSON_STRING},       {"cname", JSON_STRING}, /* null unless the target is an alias */
    {"addresses", JSON_INTEGER},
};

static const struct key_type endpoint_keys[] = {
    {"host", JSON_STRING},
    {"port", JSON_INTEGER},
    {"mode", JSON_STRING},
    {"address", JSON_STRING},
    {"family", JSON_INTEGER},
    {"address_dnssec", JSON_STRING},
    {"reachable", JSON_TRUE},
    {"connect_ms", JSON_REAL},
    {"probe_ms", JSON_REAL},
    {"grade", JSON_STRING},
    {"grade_ignoring_trust", JSON_STRING},
    {"trust_mark", JSON_TRUE},
    {"score", JSON_OBJECT},
    {"stream", JSON_OBJECT},
    {"features_before_tls", JSON_OBJECT},
    {"features_after_tls", JSON_OBJECT},
    {"tls", JSON_OBJECT},
    {"certificate", JSON_OBJECT},
    {"dane", JSON_OBJECT},
    {"sasl_external", JSON_OBJECT},
    {"protocols", JSON_OBJECT},
    {"ciphers", JSON_OBJECT},
    {"probes", JSON_INTEGER},
};

static const struct key_type features_keys[] = {
    {"starttls", JSON_TRUE},
    {"starttls_required", JSON_TRUE},
    {"dialback", JSON_TRUE},
    {"dialback_errors", JSON_TRUE},
    {"sasl_mechanisms", JSON_ARRAY},
    {"sasl_external", JSON_TRUE},
    {"bidi", JSON_TRUE},
    {"compression", JSON_TRUE},
    {"limits", JSON_OBJECT},
};

static const struct key_type cert_keys[] = {
    {"subject", JSON_STRING},       {"issuer", JSON_STRING},
    {"dns_names", JSON_ARRAY},      {"srv_ids", JSON_ARRAY},
    {"xmpp_addrs", JSON_ARRAY},     {"key_type", JSON_STRING},
    {"key_bits", JSON_INTEGER},     {"signature_algorithm", JSON_STRING},
    {"not_before", JSON_STRING},    {"not_after", JSON_STRING},
    {"days_left", JSON_INTEGER},    {"sha256", JSON_STRING},
    {"chain_length", JSON_INTEGER}, {"chain_valid", JSON_TRUE},
    {"name_valid", JSON_TRUE},      {"name_match", JSON_STRING},
};

static const struct key_type tls_keys[] = {
    {"ok", JSON_TRUE},
    {"version", JSON_STRING},
    {"cipher", JSON_STRING},
    {"ocsp_stapled", JSON_TRUE},
};

static const struct key_type cipher_keys[] = {
    {"name", JSON_STRING},
    {"bits", JSON_INTEGER},
    {"kx", JSON_STRING},
    {"kx_security_bits", JSON_INTEGER},
    {"forward_secrecy", JSON_TRUE},
};

static const struct key_type score_keys[] = {
    {"protocol", JSON_INTEGER},
    {"key_exchange", JSON_INTEGER},
    {"cipher", JSON_INTEGER},
    {"total", JSON_INTEGER},
};

#define CHECK(obj, keys, where) check_keys(obj, keys, sizeof(keys) / sizeof(keys[0]), where, false)
/* Facts not learnt (an unreachable endpoint) are null. */
#define CHECK_OR_NULL(obj, keys, where)                                                            \
    check_keys(obj, keys, sizeof(keys) / sizeof(keys[0]), where, true)

static void
test_json_schema(void **state)
{
    struct audit_domain *d = sample_domain(true);
    json_t *doc = audit_report_json(d), *ep, *protos, *v13;

    (void)state;
    assert_non_null(doc);
    CHECK(doc, domain_keys, "domain");
    assert_string_equal(json_string_value(json_object_get(doc, "schema")), "s2sproxy-audit/1");
    assert_string_equal(json_string_value(json_object_get(doc, "grade")), "A+");
    assert_true(json_is_null(json_object_get(doc, "as")));
    assert_true(json_is_null(json_object_get(doc, "error")));
    CHECK(json_object_get(doc, "score"), score_keys, "score");
    CHECK(json_object_get(doc, "dns"), dns_keys, "dns");
    assert_null(json_object_get(json_object_get(doc, "dns"), "note")); /* validated */
    json_t *tg = json_array_get(json_object_get(json_object_get(doc, "dns"), "targets"), 0);
    CHECK_OR_NULL(tg, target_keys, "dns.targets[0]");
    assert_true(json_is_null(json_object_get(tg, "cname")));
    assert_string_equal(json_string_value(json_object_get(tg, "host")), "xmpp.example.org");
    assert_int_equal(json_array_size(json_object_get(doc, "endpoints")), 1);
    ep = json_array_get(json_object_get(doc, "endpoints"), 0);
    CHECK(ep, endpoint_keys, "endpoint");
    assert_int_equal(json_integer_value(json_object_get(ep, "family")), 6);
    assert_string_equal(json_string_value(json_object_get(ep, "mode")), "starttls");
    CHECK(json_object_get(ep, "features_before_tls"), features_keys, "features_before_tls");
    CHECK(json_object_get(ep, "features_after_tls"), features_keys, "features_after_tls");
    assert_int_equal(
        json_integer_value(json_object_get(
            json_object_get(json_object_get(ep, "features_after_tls"), "limits"), "max_bytes")),
        10000);
    assert_true(json_is_null(json_object_get(
        json_object_get(json_object_get(ep, "features_after_tls"), "limits"), "idle_seconds")));
    CHECK(json_object_get(ep, "certificate"), cert_keys, "certificate");
    CHECK(json_object_get(ep, "tls"), tls_keys, "tls");
    assert_string_equal(json_string_value(json_object_get(json_object_get(ep, "dane"), "state")),
                        "match");
    protos = json_object_get(ep, "protocols");
    assert_int_equal(json_object_size(protos), 4);
    assert_string_equal(json_string_value(json_object_get(protos, "TLSv1.0")), "not testable");
    assert_string_equal(json_string_value(json_object_get(protos, "TLSv1.1")), "rejected");
    assert_string_equal(json_string_value(json_object_get(protos, "TLSv1.3")), "accepted");
    v13 = json_object_get(json_object_get(ep, "ciphers"), "TLSv1.3");
    assert_int_equal(json_array_size(v13), 1);
    CHECK(json_array_get(v13, 0), cipher_keys, "cipher");
    json_decref(doc);
    free(d);
}

/* What was not learnt is null, never a missing key; findings carry endpoint/what/fix/cap. */
static void
test_json_unreachable(void **state)
{
    struct audit_domain *d = sample_domain(false);
    json_t *doc = audit_report_json(d), *ep, *f;

    (void)state;
    CHECK(doc, domain_keys, "domain");
    assert_string_equal(json_string_value(json_object_get(doc, "grade")), "-");
    assert_false(json_is_true(json_object_get(doc, "reachable")));
    assert_string_equal(json_string_value(json_object_get(doc, "error")), "no endpoint reachable");
    ep = json_array_get(json_object_get(doc, "endpoints"), 0);
    CHECK_OR_NULL(ep, endpoint_keys, "endpoint");
    assert_true(json_is_null(json_object_get(ep, "certificate")));
    assert_true(json_is_null(json_object_get(ep, "features_before_tls")));
    assert_string_equal(json_string_value(json_object_get(ep, "error")),
                        "connect: Connection refused");
    f = json_array_get(json_object_get(doc, "findings"), 0);
    assert_non_null(f);
    assert_true(json_is_string(json_object_get(f, "endpoint")));
    assert_true(json_is_string(json_object_get(f, "what")));
    assert_true(json_is_string(json_object_get(f, "fix")));
    assert_true(json_is_null(json_object_get(f, "cap")));
    json_decref(doc);
    /* Without a validating resolver the report says DNSSEC and DANE were not checked. */
    d->dnssec_validating = false;
    snprintf(d->dns_backend, sizeof(d->dns_backend), "c-ares");
    doc = audit_report_json(d);
    assert_false(json_is_true(json_object_get(json_object_get(doc, "dns"), "dnssec_validated")));
    assert_true(json_is_string(json_object_get(json_object_get(doc, "dns"), "note")));
    json_decref(doc);
    free(d);
}

static char *
text_of(const struct audit_domain *d)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);

    assert_non_null(fp);
    audit_report_text(fp, d);
    fclose(fp);
    return buf;
}

static void
test_text_grade_first(void **state)
{
    struct audit_domain *d = sample_domain(true);
    char *text;

    (void)state;
    text = text_of(d);
    assert_true(strncmp(text, "example.org: grade A+", 21) == 0);
    assert_non_null(strstr(text, "DANE: match"));
    free(text);
    /* A finding comes right after the grade line, before the details. */
    d->endpoints[0].versions[AUDIT_TLS11] = AUDIT_V_ACCEPTED;
    audit_grade_domain(d);
    text = text_of(d);
    assert_true(strncmp(text, "example.org: grade B", 20) == 0);
    assert_true(strstr(text, "findings:") < strstr(text, "DNS ("));
    assert_non_null(strstr(text, "[2001:db8::1]:5269: TLS 1.1 accepted [caps at B]"));
    assert_non_null(strstr(text, "fix: disable TLS versions below 1.2"));
    free(text);
    /* The T mark shows the grade it hides. */
    d->endpoints[0].cert.chain_valid = false;
    audit_grade_domain(d);
    text = text_of(d);
    assert_true(strncmp(text, "example.org: grade T (B if trusted)", 35) == 0);
    free(text);
    free(d);
}

/* An SRV target that is an alias: the fact in dns.targets[] and the endpoint, a finding
 * capped at A (no A+), and the text says it next to the target. */
static void
test_alias(void **state)
{
    struct audit_domain *d = sample_domain(true);
    json_t *doc, *f = NULL;
    char *text;

    (void)state;
    snprintf(d->targets[0].cname, sizeof(d->targets[0].cname), "real.example.org");
    snprintf(d->endpoints[0].cname, sizeof(d->endpoints[0].cname), "real.example.org");
    audit_grade_domain(d);
    doc = audit_report_json(d);
    assert_string_equal(json_string_value(json_object_get(doc, "grade")), "A");
    json_t *tg = json_array_get(json_object_get(json_object_get(doc, "dns"), "targets"), 0);
    CHECK(tg, target_keys, "dns.targets[0]");
    assert_string_equal(json_string_value(json_object_get(tg, "cname")), "real.example.org");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(doc, "endpoints"), 0), "cname")),
                        "real.example.org");
    for (size_t i = 0; i < json_array_size(json_object_get(doc, "findings")); i++) {
        json_t *x = json_array_get(json_object_get(doc, "findings"), i);
        if (strstr(json_string_value(json_object_get(x, "what")), "alias") != NULL)
            f = x;
    }
    assert_non_null(f);
    assert_string_equal(json_string_value(json_object_get(f, "cap")), "A");
    assert_true(json_is_null(json_object_get(f, "endpoint"))); /* the domain's */
    json_decref(doc);
    text = text_of(d);
    assert_non_null(strstr(text, "SRV target xmpp.example.org is an alias (CNAME) of "
                                 "real.example.org: RFC 2782 says it MUST NOT be [caps at A]"));
    assert_non_null(strstr(text, "target xmpp.example.org port 5269 starttls: 1 address, alias "
                                 "(CNAME) of real.example.org"));
    free(text);
    free(d);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_schema),
        cmocka_unit_test(test_json_unreachable),
        cmocka_unit_test(test_text_grade_first),
        cmocka_unit_test(test_alias),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
