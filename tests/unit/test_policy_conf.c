/*
 * policy_conf_load(): every kind of mistake refused with "FILE:LINE: KEY: message" (the
 * exact text is asserted), list file errors with both places, included files named as
 * the operator would open them; and each example policy in conf/policy/ loads and
 * decides as its comments say.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s2s/log.h"
#include "s2s/policy.h"
#include "tests/unit/helpers/policytest.h"

#define TLS12 0x0303
#define TLS13 0x0304
#define SEC   RATELIMIT_NS_PER_SEC

static char tmpdir[PATH_MAX];
static char err[2048];

static void
write_file(const char *name, const char *text)
{
    char path[PATH_MAX * 2];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* text must be refused with exactly "TMPDIR/p.conf:LINE: REST". */
static void
expect_error(const char *text, int line, const char *rest)
{
    /* Room for the longest rest a test passes (PATH_MAX * 4) plus the path prefix. */
    char expected[PATH_MAX * 6];
    struct policy *p = policytest_load_text(tmpdir, "p.conf", text, err, sizeof(err));

    if (p != NULL) {
        policy_unref(p);
        fail_msg("accepted, expected error \"%s\"", rest);
    }
    snprintf(expected, sizeof(expected), "%s/p.conf:%d: %s", tmpdir, line, rest);
    assert_string_equal(err, expected);
}

static int
setup(void **state)
{
    char tmpl[] = "/tmp/test_policy_conf.XXXXXX";

    assert_non_null(mkdtemp(tmpl));
    assert_non_null(realpath(tmpl, tmpdir));
    log_set_level(LOG_LVL_ERR);
    return 0;
}

static int
teardown(void **state)
{
    char cmd[PATH_MAX + 16];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void
test_no_section_is_default(void **state)
{
    struct policy *p = policytest_load_text(tmpdir, "p.conf", "hosts = ();\n", err, sizeof(err));
    const struct policy_terms *t;

    assert_non_null(p);
    t = policy_terms(p, "any.example", NULL);
    assert_true(t->federate);
    assert_true(t->require_tls);
    assert_int_equal(t->min_tls, TLS12);
    assert_int_equal(policy_rule_count(p), 1);
    policy_unref(p);
}

static void
test_section_errors(void **state)
{
    expect_error("policy = 1;\n", 1, "policy: expected a group { ... }");
    expect_error("policy = {\n  federal = \"allow\"; };\n", 2, "policy.federal: unknown option");
    expect_error("policy = { federate = \"maybe\"; };\n", 1,
                 "policy.federate: expected \"allow\" or \"deny\", got \"maybe\"");
    expect_error("policy = { min_tls = \"1.1\"; };\n", 1,
                 "policy.min_tls: expected \"1.2\" or \"1.3\", got \"1.1\"");
    expect_error("policy = { min_tls = 1.2; };\n", 1, "policy.min_tls: expected a string");
    expect_error("policy = { auth = \"password\"; };\n", 1,
                 "policy.auth: expected \"certificate\" or \"dialback\", got \"password\"");
    expect_error("policy = { require_tls = \"yes\"; };\n", 1,
                 "policy.require_tls: expected a boolean (true or false)");
    expect_error("policy = { max_streams = -1; };\n", 1,
                 "policy.max_streams: -1 is out of range 0..100000");
    expect_error("policy = { list_check_interval = 100000; };\n", 1,
                 "policy.list_check_interval: 100000 is out of range 0..86400");
    expect_error("policy = {\n rate = { };\n};\n", 2,
                 "policy.rate: give \"stanzas\" (per second), \"bytes\" (per second) or both");
    expect_error("policy = { rate = { stanzas = 10; burst = 5; }; };\n", 1,
                 "policy.rate.burst: unknown option");
    expect_error("policy = { rate = { stanzas = -1; }; };\n", 1,
                 "policy.rate.stanzas: -1 is out of range 0..1e+09");
}

static void
test_domain_errors(void **state)
{
    expect_error("policy = { domains = { }; };\n", 1,
                 "policy.domains: expected a list of entries ( { match = ...; ... }, ... )");
    expect_error("policy = { domains = (\n  { federate = \"deny\"; } ); };\n", 2,
                 "policy.domains[0]: give \"match\" (domain patterns), \"list\" (a list file) "
                 "or both");
    expect_error("policy = { domains = (\n { match = \"ok.example\"; },\n"
                 " { match = [\"fine.example\", \"bad domain\"]; } ); };\n",
                 3,
                 "policy.domains[1].match[1]: \"bad domain\" is not a domain pattern: character "
                 "' ' is not allowed in a domain");
    expect_error("policy = { domains = ( { match = \"a.*.example\"; } ); };\n", 1,
                 "policy.domains[0].match: \"a.*.example\" is not a domain pattern: '*' is only "
                 "allowed as a whole first label (\"*.example.org\")");
    expect_error("policy = { domains = ( { match = [ ]; } ); };\n", 1,
                 "policy.domains[0].match: empty: leave the option out to match anything");
    expect_error("policy = { domains = ( { match = \"a.example\"; subdomains = true; } ); };\n", 1,
                 "policy.domains[0].subdomains: only used with \"list\"");
    expect_error("policy = { domains = ( { match = \"a.example\"; dane = 1; } ); };\n", 1,
                 "policy.domains[0].dane: expected a boolean (true or false)");
}

/* A list file error names the list file's line and the configuration's. */
static void
test_list_errors(void **state)
{
    char expected[PATH_MAX * 4];

    snprintf(expected, sizeof(expected),
             "policy.domains[0].list: %s/missing.txt: cannot read: No such file or directory",
             tmpdir);
    expect_error("policy = { domains = (\n { list = \"missing.txt\"; } ); };\n", 2, expected);

    write_file("bad.txt", "good.example\n\n# comment\nbad..example\n");
    snprintf(expected, sizeof(expected),
             "policy.stanzas[0].remote_list: %s/bad.txt:4: \"bad..example\" is not a domain: "
             "empty label",
             tmpdir);
    expect_error("policy = { stanzas = (\n"
                 "  { remote_list = \"bad.txt\"; action = \"drop\"; } ); };\n",
                 2, expected);
}

static void
test_rule_errors(void **state)
{
    expect_error("policy = { stanzas = (\n { kind = \"iq\"; } ); };\n", 2,
                 "policy.stanzas[0]: missing \"action\" (pass, bounce, drop or log)");
    expect_error("policy = { stanzas = ( { action = \"reject\"; } ); };\n", 1,
                 "policy.stanzas[0].action: expected \"pass\", \"bounce\", \"drop\" or \"log\", "
                 "got \"reject\"");
    expect_error("policy = { stanzas = ( { action = \"drop\"; condition = \"forbidden\"; } ); };\n",
                 1, "policy.stanzas[0].condition: only used with action \"bounce\"");
    expect_error("policy = { stanzas = ( { action = \"bounce\"; condition = \"nope\"; } ); };\n", 1,
                 "policy.stanzas[0].condition: \"nope\" is not an RFC 6120 stanza error "
                 "condition");
    expect_error(
        "policy = { stanzas = ( { action = \"bounce\"; error_type = \"later\"; } ); };\n", 1,
        "policy.stanzas[0].error_type: expected \"auth\", \"cancel\", \"continue\", \"modify\" or "
        "\"wait\"");
    expect_error("policy = { stanzas = ( { action = \"log\"; text = \"hi\"; } ); };\n", 1,
                 "policy.stanzas[0].text: only used with action \"bounce\"");
    expect_error("policy = { stanzas = ( { kind = \"mesage\"; action = \"drop\"; } ); };\n", 1,
                 "policy.stanzas[0].kind: expected \"message\", \"presence\" or \"iq\", got "
                 "\"mesage\"");
    expect_error("policy = { stanzas = ( { direction = \"inbound\"; action = \"drop\"; } ); };\n",
                 1,
                 "policy.stanzas[0].direction: expected \"in\", \"out\" or \"any\", got "
                 "\"inbound\"");
    expect_error("policy = { stanzas = ( { type = ( \"chat\", 3 ); action = \"drop\"; } ); };\n", 1,
                 "policy.stanzas[0].type[1]: expected a string");
    expect_error("policy = { stanzas = ( { larger_than = \"1k\"; action = \"drop\"; } ); };\n", 1,
                 "policy.stanzas[0].larger_than: expected an integer");
    expect_error("policy = { stanzas = ( { ns = \"\"; action = \"drop\"; } ); };\n", 1,
                 "policy.stanzas[0].ns: empty string");
    expect_error("policy = { stanzas = ( { local = \"*.\"; action = \"drop\"; } ); };\n", 1,
                 "policy.stanzas[0].local: \"*.\" is not a domain pattern: '*' is only allowed as "
                 "a whole first label (\"*.example.org\")");
}

/* Rules written in an @included file are reported, and named, by that file. */
static void
test_include(void **state)
{
    char expected[PATH_MAX * 3];
    struct policy *p;
    struct policy_stanza_facts f = {
        .dir = POLICY_IN, .local = "example.org", .remote = "r.example", .kind = POLICY_KIND_IQ};
    struct policy_decision d;

    write_file("rules.conf", "stanzas = (\n  { name = \"no-iq\"; kind = \"iq\";\n"
                             "    action = \"drop\"; }\n);\n");
    p = policytest_load_text(tmpdir, "p.conf",
                             "policy = {\n  federate = \"allow\";\n"
                             "  @include \"rules.conf\"\n};\n",
                             err, sizeof(err));
    if (p == NULL)
        fail_msg("%s", err);
    assert_int_equal(policy_check_stanza(p, &f, &d), POLICY_DROP);
    snprintf(expected, sizeof(expected), "%s/rules.conf", tmpdir);
    assert_string_equal(d.file, expected);
    assert_int_equal(d.line, 2);
    policy_unref(p);

    write_file("rules.conf", "stanzas = (\n  { kind = \"iq\"; action = \"explode\"; }\n);\n");
    assert_null(policytest_load_text(
        tmpdir, "p.conf", "policy = {\n  @include \"rules.conf\"\n};\n", err, sizeof(err)));
    snprintf(expected, sizeof(expected),
             "%s/rules.conf:2: policy.stanzas[0].action: expected \"pass\", \"bounce\", \"drop\" "
             "or \"log\", got \"explode\"",
             tmpdir);
    assert_string_equal(err, expected);
}

/* --- the examples in conf/policy/ ------------------------------------------------------- */

static struct policy *
example(const char *name)
{
    const char *srcdir = getenv("S2S_SRCDIR");
    char path[PATH_MAX * 2];
    struct policy *p;

    snprintf(path, sizeof(path), "%s/conf/policy/%s", srcdir != NULL ? srcdir : ".", name);
    if ((p = policytest_load_file(path, err, sizeof(err))) == NULL)
        fail_msg("%s", err);
    return p;
}

static struct policy_stream_facts
stream(enum policy_dir dir, const char *remote, int tls, enum policy_auth auth)
{
    struct policy_stream_facts f = {
        .dir = dir,
        .local = "example.org",
        .remote = remote,
        .tls_version = tls,
        .auth = auth,
        .cert = auth == POLICY_AUTH_SASL_EXTERNAL ? POLICY_CERT_VALID : POLICY_CERT_NONE,
        .dnssec = true,
        .dane = true,
    };
    return f;
}

#define IN_CERT(r)     stream(POLICY_IN, r, TLS13, POLICY_AUTH_SASL_EXTERNAL)
#define IN_DIALBACK(r) stream(POLICY_IN, r, TLS13, POLICY_AUTH_DIALBACK)

static void
expect_stream(struct policy *p, struct policy_stream_facts f, enum policy_verdict v,
              const char *rule, const char *term)
{
    struct policy_decision d;

    assert_int_equal(policy_check_stream(p, &f, &d), v);
    assert_string_equal(d.rule, rule);
    if (term != NULL)
        assert_string_equal(d.term, term);
}

static void
test_example_spam_blocklist(void **state)
{
    struct policy *p = example("spam-blocklist.conf");
    struct policy_decision d;

    expect_stream(p, IN_CERT("spam.example"), POLICY_REFUSE, "spam-list", "federate");
    expect_stream(p, IN_CERT("muc.spam.example"), POLICY_REFUSE, "spam-list", "federate");
    expect_stream(p, IN_CERT("x.throwaway.example"), POLICY_REFUSE, "spam-list", "federate");
    expect_stream(p, IN_CERT("abuse.example"), POLICY_REFUSE, "abuse", "federate");
    expect_stream(p, IN_DIALBACK("friends.example"), POLICY_PASS, "default", NULL);
    assert_int_equal(policy_check_route(p, "example.org", "botfarm.example", &d), POLICY_BOUNCE);
    assert_int_equal(d.stanza_error, XMPP_STANZA_ERR_NOT_ALLOWED);
    assert_int_equal(d.error_type, XMPP_ERR_TYPE_CANCEL);
    assert_string_equal(d.rule, "spam-list");
    policy_unref(p);
}

static void
test_example_closed_federation(void **state)
{
    struct policy *p = example("closed-federation.conf");
    struct policy_stream_facts f;
    struct policy_decision d;

    expect_stream(p, IN_CERT("partner-a.example"), POLICY_PASS, "partner-a-dnssec", NULL);
    expect_stream(p, IN_CERT("partner-b.example"), POLICY_PASS, "partners", NULL);
    expect_stream(p, stream(POLICY_IN, "partner-b.example", TLS12, POLICY_AUTH_SASL_EXTERNAL),
                  POLICY_REFUSE, "partners", "min_tls");
    expect_stream(p, IN_DIALBACK("partner-b.example"), POLICY_REFUSE, "partners", "auth");
    expect_stream(p, IN_CERT("lab.partner-c.example"), POLICY_PASS, "partner-c", NULL);
    expect_stream(p, IN_CERT("partner-c.example"), POLICY_REFUSE, "default", "federate");
    expect_stream(p, IN_CERT("stranger.example"), POLICY_REFUSE, "default", "federate");
    assert_int_equal(policy_check_route(p, "example.org", "stranger.example", &d), POLICY_BOUNCE);
    f = stream(POLICY_OUT, "partner-a.example", TLS13, POLICY_AUTH_SASL_EXTERNAL);
    f.dnssec = false;
    expect_stream(p, f, POLICY_REFUSE, "partner-a-dnssec", "dnssec");
    policy_unref(p);
}

static void
test_example_require_certificates(void **state)
{
    struct policy *p = example("require-certificates.conf");
    struct policy_stream_facts f;

    expect_stream(p, IN_CERT("bank.example"), POLICY_PASS, "bank", NULL);
    expect_stream(p, IN_DIALBACK("bank.example"), POLICY_REFUSE, "bank", "auth");
    f = stream(POLICY_OUT, "bank.example", TLS13, POLICY_AUTH_SASL_EXTERNAL);
    f.dane = false;
    expect_stream(p, f, POLICY_REFUSE, "bank", "dane");
    expect_stream(p, IN_DIALBACK("tax.gov.example"), POLICY_REFUSE, "government", "auth");
    expect_stream(p, IN_DIALBACK("gov.example"), POLICY_PASS, "default", NULL);
    expect_stream(p, IN_DIALBACK("other.example"), POLICY_PASS, "default", NULL);
    policy_unref(p);
}

static struct policy_stanza_facts
stanza(enum policy_dir dir, const char *remote, enum policy_kind kind, const char *type,
       const char *ns)
{
    struct policy_stanza_facts f = {
        .dir = dir,
        .local = "example.org",
        .remote = remote,
        .kind = kind,
        .type = type,
        .ns = {ns},
        .nns = ns != NULL ? 1 : 0,
        .size = 200,
        .now = 1000 * SEC,
    };
    return f;
}

static void
expect_stanza(struct policy *p, struct policy_stanza_facts f, enum policy_verdict v,
              const char *rule)
{
    struct policy_decision d;

    assert_int_equal(policy_check_stanza(p, &f, &d), v);
    assert_string_equal(d.rule, rule);
}

static void
test_example_no_file_transfer(void **state)
{
    struct policy *p = example("no-file-transfer.conf");
    struct policy_stanza_facts f;
    struct policy_decision d;

    f = stanza(POLICY_IN, "stranger.example", POLICY_KIND_IQ, "set",
               "http://jabber.org/protocol/si");
    assert_int_equal(policy_check_stanza(p, &f, &d), POLICY_BOUNCE);
    assert_string_equal(d.rule, "no-ft-in");
    assert_int_equal(d.stanza_error, XMPP_STANZA_ERR_NOT_ACCEPTABLE);
    assert_int_equal(d.error_type, XMPP_ERR_TYPE_MODIFY);
    assert_string_equal(d.text, "file transfer from outside example.org is not allowed");
    expect_stanza(p,
                  stanza(POLICY_IN, "stranger.example", POLICY_KIND_MESSAGE, NULL, "jabber:x:oob"),
                  POLICY_BOUNCE, "no-ft-in");
    expect_stanza(p,
                  stanza(POLICY_IN, "partner-a.example", POLICY_KIND_IQ, "set",
                         "http://jabber.org/protocol/si"),
                  POLICY_PASS, "partners-may");
    expect_stanza(
        p, stanza(POLICY_OUT, "stranger.example", POLICY_KIND_IQ, "set", "urn:xmpp:jingle:1"),
        POLICY_LOG, "log-ft-out");
    f = stanza(POLICY_IN, "stranger.example", POLICY_KIND_MESSAGE, "chat", NULL);
    expect_stanza(p, f, POLICY_PASS, "default");
    f.size = 100000;
    expect_stanza(p, f, POLICY_BOUNCE, "big");
    policy_unref(p);
}

static void
test_example_subscription_limit(void **state)
{
    struct policy *p = example("subscription-limit.conf");
    struct policy_stanza_facts f;

    f = stanza(POLICY_IN, "unknown.example", POLICY_KIND_PRESENCE, "subscribe", NULL);
    for (int i = 0; i < 5; i++)
        expect_stanza(p, f, POLICY_PASS, "default");
    expect_stanza(p, f, POLICY_BOUNCE, "unknown-subscribe");
    f.now += 61 * SEC; /* one per minute */
    expect_stanza(p, f, POLICY_PASS, "default");
    expect_stanza(p, f, POLICY_BOUNCE, "unknown-subscribe");
    f = stanza(POLICY_IN, "friends.example", POLICY_KIND_PRESENCE, "subscribe", NULL);
    for (int i = 0; i < 20; i++)
        expect_stanza(p, f, POLICY_PASS, "known-subscribe");
    f = stanza(POLICY_IN, "unknown.example", POLICY_KIND_PRESENCE, "subscribe", NULL);
    f.local = "muc.example.org"; /* services are not limited */
    for (int i = 0; i < 20; i++)
        expect_stanza(p, f, POLICY_PASS, "default");
    expect_stanza(p, stanza(POLICY_IN, "unknown.example", POLICY_KIND_MESSAGE, "chat", NULL),
                  POLICY_PASS, "default");
    policy_unref(p);
}

/* The snippet in conf/policy/README (for conf/s2sproxy.conf) loads as written. */
static void
test_readme_snippet(void **state)
{
    const char *srcdir = getenv("S2S_SRCDIR");
    char path[PATH_MAX * 2], *text, *cut;
    struct policy *p;
    long len;
    FILE *f;

    snprintf(path, sizeof(path), "%s/conf/policy/README", srcdir != NULL ? srcdir : ".");
    f = fopen(path, "r");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    rewind(f);
    text = calloc(1, (size_t)len + 1);
    assert_non_null(text);
    assert_int_equal(fread(text, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    cut = strstr(text, "8<--");
    assert_non_null(cut);
    cut = strchr(cut, '\n');
    assert_non_null(cut);
    p = policytest_load_text(tmpdir, "snippet.conf", cut + 1, err, sizeof(err));
    free(text);
    if (p == NULL)
        fail_msg("%s", err);
    assert_true(policy_terms(p, "x.example", NULL)->federate);
    assert_int_equal(policy_rule_count(p), 1);
    policy_unref(p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_section_is_default),
        cmocka_unit_test(test_section_errors),
        cmocka_unit_test(test_domain_errors),
        cmocka_unit_test(test_list_errors),
        cmocka_unit_test(test_rule_errors),
        cmocka_unit_test(test_include),
        cmocka_unit_test(test_example_spam_blocklist),
        cmocka_unit_test(test_example_closed_federation),
        cmocka_unit_test(test_example_require_certificates),
        cmocka_unit_test(test_example_no_file_transfer),
        cmocka_unit_test(test_example_subscription_limit),
        cmocka_unit_test(test_readme_snippet),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
