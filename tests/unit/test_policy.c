/*
 * Policy decisions: which domain entry decides (most specific wins, first written
 * among equals, lists against patterns), each security term refused with the right
 * stream, dialback and stanza errors, routes, every field of a stanza rule, first match
 * wins, actions and counters, rule limits, rates per domain and address, and the reload
 * swap (references, re-checking live streams against the new policy).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <event2/event.h>

#include "s2s/log.h"
#include "s2s/policy.h"
#include "tests/unit/helpers/policytest.h"

#define TLS12 0x0303
#define TLS13 0x0304
#define SEC   RATELIMIT_NS_PER_SEC

static char tmpdir[PATH_MAX];
static char err[1024];

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

static struct policy *
load(const char *text)
{
    struct policy *p = policytest_load_text(tmpdir, "p.conf", text, err, sizeof(err));

    if (p == NULL)
        fail_msg("%s", err);
    return p;
}

static int
setup(void **state)
{
    char tmpl[] = "/tmp/test_policy.XXXXXX";

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

/* A good inbound stream: TLS 1.3, valid certificate, SASL EXTERNAL. */
static struct policy_stream_facts
good_stream(const char *remote)
{
    struct policy_stream_facts f = {
        .dir = POLICY_IN,
        .local = "example.org",
        .remote = remote,
        .address = "192.0.2.1",
        .tls_version = TLS13,
        .cipher = "TLS_AES_256_GCM_SHA384",
        .cert = POLICY_CERT_VALID,
        .auth = POLICY_AUTH_SASL_EXTERNAL,
    };
    return f;
}

static const char *
entry_name(struct policy *p, const char *remote)
{
    static struct policy_rule_info info;

    policy_terms(p, remote, &info);
    return info.name;
}

/* --- who may federate ------------------------------------------------------------------ */

static void
test_default_policy(void **state)
{
    struct policy *p = policy_new_default();
    struct policy_stream_facts f = good_stream("anyone.example");
    struct policy_decision d;
    const struct policy_terms *t = policy_terms(p, "anyone.example", NULL);

    assert_true(t->federate);
    assert_true(t->require_tls);
    assert_int_equal(t->min_tls, TLS12);
    assert_int_equal(policy_check_stream(p, &f, &d), POLICY_PASS);
    assert_string_equal(d.rule, "default");
    assert_null(d.file);
    assert_int_equal(policy_check_route(p, "example.org", "anyone.example", &d), POLICY_PASS);
    policy_unref(p);
}

static void
test_precedence(void **state)
{
    struct policy *p;

    write_file("block.txt", "spam.example\n*.spamfarm.example\nexact.partner.example\n");
    p = load("policy = { federate = \"allow\";\n"
             "  domains = (\n"
             "    { name = \"wild\";    match = \"*.example\"; },\n"
             "    { name = \"partner\"; match = [\"*.partner.example\", \"partner.example\"]; },\n"
             "    { name = \"block\";   list = \"block.txt\"; federate = \"deny\"; },\n"
             "    { name = \"deep\";    match = \"*.a.partner.example\"; },\n"
             "    { name = \"later\";   match = \"spam.example\"; }\n"
             "  ); };\n");
    assert_string_equal(entry_name(p, "other.net"), "default");
    assert_string_equal(entry_name(p, "x.example"), "wild");
    /* "*.example" does not cover "example" itself. */
    assert_string_equal(entry_name(p, "example"), "default");
    assert_string_equal(entry_name(p, "partner.example"), "partner");
    assert_string_equal(entry_name(p, "muc.partner.example"), "partner");
    /* Longest suffix wins over a shorter one written earlier. */
    assert_string_equal(entry_name(p, "b.a.partner.example"), "deep");
    /* An exact name in a list beats any wildcard pattern. */
    assert_string_equal(entry_name(p, "exact.partner.example"), "block");
    /* A list's wildcard against a shorter pattern wildcard: the list's is longer. */
    assert_string_equal(entry_name(p, "x.spamfarm.example"), "block");
    /* Equal specificity (exact in the list and in a later pattern): first written wins. */
    assert_string_equal(entry_name(p, "spam.example"), "block");
    assert_false(policy_terms(p, "spam.example", NULL)->federate);
    assert_true(policy_terms(p, "ham.example", NULL)->federate);
    policy_unref(p);
}

static void
test_closed_federation(void **state)
{
    struct policy *p = load("policy = { federate = \"deny\";\n"
                            "  domains = ( { name = \"partners\"; match = [\"partner.example\"];\n"
                            "                federate = \"allow\"; } ); };\n");
    struct policy_stream_facts f = good_stream("stranger.example");
    struct policy_decision d;

    assert_int_equal(policy_check_stream(p, &f, &d), POLICY_REFUSE);
    assert_string_equal(d.term, "federate");
    assert_int_equal(d.stream_error, XMPP_STREAM_ERR_POLICY_VIOLATION);
    assert_int_equal(d.dialback_error, DIALBACK_ERR_POLICY_VIOLATION);
    assert_string_equal(d.rule, "default");
    assert_non_null(strstr(d.text, "stranger.example"));
    assert_int_equal(policy_check_route(p, "example.org", "stranger.example", &d), POLICY_BOUNCE);
    assert_int_equal(d.stanza_error, XMPP_STANZA_ERR_NOT_ALLOWED);
    assert_int_equal(d.error_type, XMPP_ERR_TYPE_CANCEL);
    assert_string_equal(d.text, "federation with stranger.example is not allowed by policy");

    f.remote = "partner.example";
    assert_int_equal(policy_check_stream(p, &f, &d), POLICY_PASS);
    assert_string_equal(d.rule, "partners");
    assert_int_equal(d.line, 2);
    assert_int_equal(policy_check_route(p, "example.org", "partner.example", &d), POLICY_PASS);
    policy_unref(p);
}

/* --- security terms --------------------------------------------------------------------- */

static void
test_terms(void **state)
{
    struct policy *p =
        load("policy = {\n"
             "  domains = (\n"
             "    { name = \"strict\"; match = \"bank.example\"; min_tls = \"1.3\";\n"
             "      auth = \"certificate\"; dnssec = true; dane = true; },\n"
             "    { name = \"lax\"; match = \"old.example\"; require_tls = false; }\n"
             "  ); };\n");
    struct policy_stream_facts f = good_stream("bank.example");
    struct policy_decision d;

    assert_int_equal(policy_check_stream(p, &f, &d), POLICY_PASS); /* inbound: no DNSSEC term */

    f.tls_version = TLS12;
    assert_int_equal(policy_check_stream(p, &f, &d), POLICY_REFUSE);
    assert_string_equal(d.term, "min_tls");
    assert_int_equal(d.stream_error, XMPP_STREAM_ERR_POLICY_VIOLATION);
    assert_string_equal(d.text, "TLS 1.2 is below the TLS 1.3 required for bank.example");

    f.tls_version = TLS13;
    f.auth = POLICY_AUTH_DIALBACK;
    f.cert = POLICY_CERT_EXPIRED;
    assert_int_equal(policy_check_stream(p, &f, &d), POLICY_REFUSE);
    assert_string_equal(d.term, "auth");
    assert_int_equal(d.stream_error, XMPP_STREAM_ERR_NOT_AUTHORIZED);
    assert_int_equal(d.dialback_error, DIALBACK_ERR_NOT_AUTHORIZED);
    assert_non_null(strstr(d.text, "certificate: expired"));
    /* Dialback over a stream with a valid certificate meets "certificate". */
    f.cert = POLICY_CERT_VALID;
    assert_int_equal(policy_check_stream(p, &f, &d), POLICY_PASS);

    /* Outbound: DNSSEC, then DANE. */
    f.dir = POLICY_OUT;
    assert_int_equal(policy_check_stream(p, &f, &d), POLICY_REFUSE);
    assert_string_equal(d.term, "dnssec");
    f.dnssec = true;
    assert_int_equal(policy_check_stream(p, &f, &d), POLICY_REFUSE);
    assert_string_equal(d.term, "dane");
    f.dane = true;
    assert_int_equal(policy_check_stream(p, &f, &d), POLICY_PASS);

    /* TLS required by default; not for "lax". */
    f = good_stream("other.example");
    f.tls_version = 0;
    assert_int_equal(policy_check_stream(p, &f, &d), POLICY_REFUSE);
    assert_string_equal(d.term, "tls");
    f.remote = "old.example";
    assert_int_equal(policy_check_stream(p, &f, &d), POLICY_PASS);
    f.auth = POLICY_AUTH_NONE;
    assert_int_equal(policy_check_stream(p, &f, &d), POLICY_REFUSE);
    assert_string_equal(d.term, "auth");
    policy_unref(p);
}

/* Entries inherit the policy-level terms they do not set. */
static void
test_terms_inherit(void **state)
{
    struct policy *p =
        load("policy = { min_tls = \"1.3\"; auth = \"certificate\"; max_streams = 4;\n"
             "  domains = ( { match = \"a.example\"; auth = \"dialback\"; } ); };\n");
    const struct policy_terms *t = policy_terms(p, "a.example", NULL);

    assert_int_equal(t->min_tls, TLS13);
    assert_int_equal(t->auth, POLICY_REQUIRE_DIALBACK);
    assert_int_equal(t->max_streams, 4);
    t = policy_terms(p, "b.example", NULL);
    assert_int_equal(t->auth, POLICY_REQUIRE_CERTIFICATE);
    policy_unref(p);
}

/* --- stanza rules ------------------------------------------------------------------------ */

static struct policy_stanza_facts
msg(enum policy_dir dir, const char *remote)
{
    struct policy_stanza_facts f = {
        .dir = dir,
        .local = "example.org",
        .remote = remote,
        .kind = POLICY_KIND_MESSAGE,
        .type = "chat",
        .size = 300,
        .now = 1000 * SEC,
    };
    return f;
}

static const char *
decide(struct policy *p, const struct policy_stanza_facts *f, enum policy_verdict *v)
{
    static struct policy_decision d;

    *v = policy_check_stanza(p, f, &d);
    return d.rule;
}

/* Each field on its own: the rule matches when the field does and not otherwise. */
static void
test_rule_fields(void **state)
{
    struct policy *p;
    struct policy_stanza_facts f;
    enum policy_verdict v;

    write_file("known.txt", "friend.example\n");
    p = load(
        "policy = { stanzas = (\n"
        "  { name = \"dir\";    direction = \"out\"; action = \"log\"; },\n"
        "  { name = \"local\";  local = \"*.example.org\"; action = \"log\"; },\n"
        "  { name = \"remote\"; remote = [\"r.example\", \"*.r2.example\"]; action = \"log\"; },\n"
        "  { name = \"list\";   remote_list = \"known.txt\"; action = \"log\"; },\n"
        "  { name = \"kind\";   kind = \"iq\"; action = \"log\"; },\n"
        "  { name = \"type\";   type = [\"groupchat\", \"headline\"]; action = \"log\"; },\n"
        "  { name = \"normal\"; kind = \"message\"; type = \"normal\"; action = \"log\"; },\n"
        "  { name = \"ns\";     ns = \"urn:xmpp:jingle:1\"; action = \"log\"; },\n"
        "  { name = \"size\";   larger_than = 1000; action = \"log\"; }\n"
        "); };\n");
    f = msg(POLICY_IN, "nobody.example");
    assert_string_equal(decide(p, &f, &v), "default");
    assert_int_equal(v, POLICY_PASS);

    f.dir = POLICY_OUT;
    assert_string_equal(decide(p, &f, &v), "dir");
    assert_int_equal(v, POLICY_LOG);
    f = msg(POLICY_IN, "nobody.example");
    f.local = "muc.example.org";
    assert_string_equal(decide(p, &f, &v), "local");
    f = msg(POLICY_IN, "r.example");
    assert_string_equal(decide(p, &f, &v), "remote");
    f.remote = "x.r2.example";
    assert_string_equal(decide(p, &f, &v), "remote");
    f.remote = "r2.example";
    assert_string_equal(decide(p, &f, &v), "default");
    f.remote = "friend.example";
    assert_string_equal(decide(p, &f, &v), "list");
    f = msg(POLICY_IN, "nobody.example");
    f.kind = POLICY_KIND_IQ;
    f.type = "get";
    assert_string_equal(decide(p, &f, &v), "kind");
    f = msg(POLICY_IN, "nobody.example");
    f.type = "headline";
    assert_string_equal(decide(p, &f, &v), "type");
    f.type = NULL; /* absent type on a message is "normal" */
    assert_string_equal(decide(p, &f, &v), "normal");
    f.kind = POLICY_KIND_PRESENCE; /* ... but not on a presence */
    assert_string_equal(decide(p, &f, &v), "default");
    f = msg(POLICY_IN, "nobody.example");
    f.ns[0] = "jabber:x:oob";
    f.ns[1] = "urn:xmpp:jingle:1";
    f.nns = 2;
    assert_string_equal(decide(p, &f, &v), "ns");
    f.nns = 1;
    assert_string_equal(decide(p, &f, &v), "default");
    f = msg(POLICY_IN, "nobody.example");
    f.size = 1000;
    assert_string_equal(decide(p, &f, &v), "default");
    f.size = 1001;
    assert_string_equal(decide(p, &f, &v), "size");
    policy_unref(p);
}

/* All given fields must match; first match wins; bounce/drop carry their details. */
static void
test_rule_order_and_actions(void **state)
{
    struct policy *p = load(
        "policy = { stanzas = (\n"
        "  { name = \"ok-partner\"; remote = \"partner.example\"; kind = \"iq\"; action = "
        "\"pass\"; },\n"
        "  { name = \"no-iq\"; direction = \"in\"; kind = \"iq\"; action = \"bounce\";\n"
        "    condition = \"service-unavailable\"; text = \"no iq from outside\"; },\n"
        "  { name = \"quiet\"; kind = \"message\"; type = \"headline\"; action = \"drop\"; },\n"
        "  { name = \"default-cond\"; kind = \"presence\"; type = \"subscribe\"; action = "
        "\"bounce\"; }\n"
        "); };\n");
    struct policy_stanza_facts f = msg(POLICY_IN, "partner.example");
    struct policy_decision d;
    struct policy_rule_info info;
    char line[512];

    f.kind = POLICY_KIND_IQ;
    f.type = "get";
    assert_int_equal(policy_check_stanza(p, &f, &d), POLICY_PASS);
    assert_string_equal(d.rule, "ok-partner");
    f.remote = "other.example";
    assert_int_equal(policy_check_stanza(p, &f, &d), POLICY_BOUNCE);
    assert_string_equal(d.rule, "no-iq");
    assert_int_equal(d.stanza_error, XMPP_STANZA_ERR_SERVICE_UNAVAILABLE);
    assert_int_equal(d.error_type, XMPP_ERR_TYPE_CANCEL);
    assert_string_equal(d.text, "no iq from outside");
    assert_int_equal(d.line, 3);
    assert_non_null(strstr(d.file, "p.conf"));
    policy_decision_format(&d, line, sizeof(line));
    assert_non_null(strstr(line, "bounce condition=service-unavailable type=cancel rule=no-iq ("));
    assert_non_null(strstr(line, "p.conf:3): no iq from outside"));
    /* Outbound iq: "no-iq" is inbound only. */
    f.dir = POLICY_OUT;
    assert_int_equal(policy_check_stanza(p, &f, &d), POLICY_PASS);
    /* An error stanza is never bounced (RFC 6120 §8.3.1): dropped instead. */
    f.dir = POLICY_IN;
    f.type = "error";
    assert_int_equal(policy_check_stanza(p, &f, &d), POLICY_DROP);
    assert_string_equal(d.rule, "no-iq");

    f = msg(POLICY_IN, "x.example");
    f.type = "headline";
    assert_int_equal(policy_check_stanza(p, &f, &d), POLICY_DROP);
    f.kind = POLICY_KIND_PRESENCE;
    f.type = "subscribe";
    assert_int_equal(policy_check_stanza(p, &f, &d), POLICY_BOUNCE);
    assert_int_equal(d.stanza_error, XMPP_STANZA_ERR_POLICY_VIOLATION);
    assert_int_equal(d.error_type, XMPP_ERR_TYPE_MODIFY); /* RFC 6120 §8.3.3.12 */

    /* Hit counters: ok-partner 1, no-iq 2, quiet 1, default-cond 1, default 1. */
    assert_int_equal(policy_rule_count(p), 5);
    assert_true(policy_rule_info(p, 1, &info));
    assert_string_equal(info.name, "no-iq");
    assert_int_equal(info.hits, 2);
    assert_true(policy_rule_info(p, 4, &info));
    assert_string_equal(info.name, "default");
    assert_int_equal(info.hits, 1);
    assert_false(policy_rule_info(p, 5, &info));
    policy_unref(p);
}

/* A rule with a limit applies only to stanzas over the rate, per remote domain. */
static void
test_rule_limit(void **state)
{
    struct policy *p =
        load("policy = { stanzas = (\n"
             "  { name = \"sub-flood\"; kind = \"presence\"; type = \"subscribe\";\n"
             "    limit = { stanzas = 0.1; stanza_burst = 3; }; action = \"bounce\";\n"
             "    condition = \"resource-constraint\"; }\n"
             "); };\n");
    struct policy_stanza_facts f = msg(POLICY_IN, "unknown.example");
    struct policy_decision d;

    f.kind = POLICY_KIND_PRESENCE;
    f.type = "subscribe";
    for (int i = 0; i < 3; i++)
        assert_int_equal(policy_check_stanza(p, &f, &d), POLICY_PASS);
    assert_int_equal(policy_check_stanza(p, &f, &d), POLICY_BOUNCE);
    assert_int_equal(d.error_type, XMPP_ERR_TYPE_WAIT);
    f.remote = "other.example"; /* its own bucket */
    assert_int_equal(policy_check_stanza(p, &f, &d), POLICY_PASS);
    f.remote = "unknown.example";
    f.now += 10 * SEC; /* one token back */
    assert_int_equal(policy_check_stanza(p, &f, &d), POLICY_PASS);
    assert_int_equal(policy_check_stanza(p, &f, &d), POLICY_BOUNCE);
    policy_unref(p);
}

/*
 * The rule index against the rules read one by one: random rule sets over small
 * vocabularies (so that fields collide often), random stanzas, and a plain first-match
 * written here; both must name the same rule. Fixed seed: reproducible.
 */
struct naive_rule {
    int dir;            /* 0 any, 1 in, 2 out */
    unsigned kinds;     /* 0 any */
    const char *type;   /* NULL any */
    const char *ns[2];  /* NULL any */
    const char *local;  /* NULL any */
    const char *remote; /* NULL: no patterns */
    bool list;          /* remote_list = "rl.txt" */
    long larger;        /* -1 none */
};

static const char *const types[] = {"chat", "normal", "groupchat", "subscribe",
                                    "get",  "set",    "available", "error"};
static const char *const nss[] = {"urn:a", "urn:b", "urn:c", "jabber:x:oob"};
static const char *const locals[] = {"example.org", "*.example.org", "muc.example.org"};
static const char *const remotes[] = {"a.example", "*.a.example", "b.example", "*.example",
                                      "x.y.b.example"};
static const char *const stanza_remotes[] = {"a.example",     "m.a.example",    "b.example",
                                             "x.y.b.example", "listed.example", "z.listed.example",
                                             "other.net"};
static const char *const stanza_locals[] = {"example.org", "muc.example.org", "x.muc.example.org"};

static bool
naive_domain(const char *pat, const char *d)
{
    size_t lp, ld;

    if (strncmp(pat, "*.", 2) != 0)
        return strcmp(pat, d) == 0;
    lp = strlen(pat + 1); /* ".suffix" */
    ld = strlen(d);
    return ld > lp && strcmp(d + ld - lp, pat + 1) == 0;
}

static bool
naive_match(const struct naive_rule *r, const struct policy_stanza_facts *f)
{
    const char *type = f->type != NULL                   ? f->type
                       : f->kind == POLICY_KIND_MESSAGE  ? "normal"
                       : f->kind == POLICY_KIND_PRESENCE ? "available"
                                                         : "";
    bool ns_ok = r->ns[0] == NULL, remote_ok;

    if (r->dir != 0 && r->dir != (int)f->dir)
        return false;
    if (r->kinds != 0 && !(r->kinds & (unsigned)f->kind))
        return false;
    if (r->type != NULL && strcmp(r->type, type) != 0)
        return false;
    for (size_t i = 0; i < f->nns && !ns_ok; i++)
        for (int j = 0; j < 2; j++)
            if (r->ns[j] != NULL && strcmp(r->ns[j], f->ns[i]) == 0)
                ns_ok = true;
    if (!ns_ok)
        return false;
    if (r->local != NULL && !naive_domain(r->local, f->local))
        return false;
    remote_ok = r->remote == NULL && !r->list;
    if (r->remote != NULL && naive_domain(r->remote, f->remote))
        remote_ok = true;
    if (r->list &&
        (strcmp(f->remote, "listed.example") == 0 || strcmp(f->remote, "b.example") == 0))
        remote_ok = true;
    if (!remote_ok)
        return false;
    return r->larger < 0 || (long)f->size > r->larger;
}

static void
test_index_matches_naive(void **state)
{
    enum { NRULES = 150, NSTANZAS = 20000 };
    static struct naive_rule rules[NRULES];
    static char text[NRULES * 300];
    size_t off = 0;
    struct policy *p;
    struct policy_decision d;
    unsigned seed = 12345;

    write_file("rl.txt", "listed.example\nb.example\n");
    off += (size_t)snprintf(text + off, sizeof(text) - off, "policy = { stanzas = (\n");
    for (int i = 0; i < NRULES; i++) {
        struct naive_rule *r = &rules[i];

        r->dir = rand_r(&seed) % 3;
        r->kinds = rand_r(&seed) % 3 == 0 ? (unsigned)(1 << (rand_r(&seed) % 3)) : 0;
        r->type = rand_r(&seed) % 3 == 0 ? types[rand_r(&seed) % 8] : NULL;
        r->ns[0] = rand_r(&seed) % 4 == 0 ? nss[rand_r(&seed) % 4] : NULL;
        r->ns[1] = r->ns[0] != NULL && rand_r(&seed) % 2 ? nss[rand_r(&seed) % 4] : NULL;
        r->local = rand_r(&seed) % 4 == 0 ? locals[rand_r(&seed) % 3] : NULL;
        r->remote = rand_r(&seed) % 3 == 0 ? remotes[rand_r(&seed) % 5] : NULL;
        r->list = rand_r(&seed) % 6 == 0;
        r->larger = rand_r(&seed) % 5 == 0 ? rand_r(&seed) % 1000 : -1;
        off += (size_t)snprintf(text + off, sizeof(text) - off,
                                "%s{ name = \"r%d\"; action = \"log\";", i == 0 ? "" : ",\n", i);
        if (r->dir != 0)
            off += (size_t)snprintf(text + off, sizeof(text) - off, " direction = \"%s\";",
                                    r->dir == 1 ? "in" : "out");
        if (r->kinds != 0)
            off += (size_t)snprintf(text + off, sizeof(text) - off, " kind = \"%s\";",
                                    r->kinds == 1   ? "message"
                                    : r->kinds == 2 ? "presence"
                                                    : "iq");
        if (r->type != NULL)
            off += (size_t)snprintf(text + off, sizeof(text) - off, " type = \"%s\";", r->type);
        if (r->ns[0] != NULL)
            off += (size_t)snprintf(text + off, sizeof(text) - off, " ns = [\"%s\"%s%s%s];",
                                    r->ns[0], r->ns[1] ? ", \"" : "", r->ns[1] ? r->ns[1] : "",
                                    r->ns[1] ? "\"" : "");
        if (r->local != NULL)
            off += (size_t)snprintf(text + off, sizeof(text) - off, " local = \"%s\";", r->local);
        if (r->remote != NULL)
            off += (size_t)snprintf(text + off, sizeof(text) - off, " remote = \"%s\";", r->remote);
        if (r->list)
            off += (size_t)snprintf(text + off, sizeof(text) - off, " remote_list = \"rl.txt\";");
        if (r->larger >= 0)
            off +=
                (size_t)snprintf(text + off, sizeof(text) - off, " larger_than = %ld;", r->larger);
        off += (size_t)snprintf(text + off, sizeof(text) - off, " }");
    }
    snprintf(text + off, sizeof(text) - off, "\n); };\n");
    p = load(text);

    for (int n = 0; n < NSTANZAS; n++) {
        struct policy_stanza_facts f = {0};
        const char *expected = "default";
        char name[16];

        f.dir = rand_r(&seed) % 2 ? POLICY_IN : POLICY_OUT;
        f.kind = (enum policy_kind)(1 << (rand_r(&seed) % 3));
        f.type = rand_r(&seed) % 4 == 0 ? NULL : types[rand_r(&seed) % 8];
        f.nns = (size_t)(rand_r(&seed) % 3);
        for (size_t i = 0; i < f.nns; i++)
            f.ns[i] = nss[rand_r(&seed) % 4];
        f.local = stanza_locals[rand_r(&seed) % 3];
        f.remote = stanza_remotes[rand_r(&seed) % 7];
        f.size = (size_t)(rand_r(&seed) % 1200);
        f.now = 1;
        for (int i = 0; i < NRULES; i++) {
            if (naive_match(&rules[i], &f)) {
                snprintf(name, sizeof(name), "r%d", i);
                expected = name;
                break;
            }
        }
        policy_check_stanza(p, &f, &d);
        if (strcmp(d.rule, expected) != 0)
            fail_msg("stanza %d: index says %s, rules in order say %s", n, d.rule, expected);
    }
    policy_unref(p);
}

/* --- rates ------------------------------------------------------------------------------- */

static void
test_rates(void **state)
{
    struct policy *p =
        load("policy = { rate = { stanzas = 10; stanza_burst = 2; };\n"
             "  address_rate = { bytes = 1000; byte_burst = 1000; };\n"
             "  max_connections_per_address = 8;\n"
             "  domains = ( { match = \"fast.example\"; rate = { stanzas = 1000; }; } ); };\n");
    struct policy_limiter *l = policy_limiter_new(100, 100);
    uint64_t now = 5 * SEC;

    assert_int_equal(policy_max_connections_per_address(p), 8);
    assert_int_equal(policy_rate(p, l, POLICY_IN, "slow.example", NULL, 10, now), 0);
    assert_int_equal(policy_rate(p, l, POLICY_IN, "slow.example", NULL, 10, now), 0);
    assert_int_equal(policy_rate(p, l, POLICY_IN, "slow.example", NULL, 10, now), SEC / 10);
    /* Outbound has its own bucket. */
    assert_int_equal(policy_rate(p, l, POLICY_OUT, "slow.example", NULL, 10, now), 0);
    /* The address limit: 1500 bytes against a burst of 1000 owes half a second. */
    assert_int_equal(policy_rate(p, l, POLICY_IN, "fast.example", "192.0.2.7", 1500, now), SEC / 2);
    /* Address limits apply inbound only. */
    assert_int_equal(policy_rate(p, l, POLICY_OUT, "fast.example", "192.0.2.7", 1500, now), 0);
    policy_limiter_free(l);
    policy_unref(p);

    /* Entries without a rate of their own take the default's (no per-domain lookup). */
    p = load("policy = { rate = { stanzas = 1; stanza_burst = 1; };\n"
             "  domains = ( { match = \"x.example\"; federate = \"deny\"; } ); };\n");
    l = policy_limiter_new(100, 100);
    assert_int_equal(policy_rate(p, l, POLICY_IN, "x.example", NULL, 10, now), 0);
    assert_int_equal(policy_rate(p, l, POLICY_IN, "x.example", NULL, 10, now), SEC);
    assert_int_equal(policy_rate(p, l, POLICY_IN, "y.example", NULL, 10, now), 0);
    policy_limiter_free(l);
    policy_unref(p);
}

/* --- reload ------------------------------------------------------------------------------ */

/*
 * The engine's swap: the current pointer moves to the new policy, holders of the old one
 * keep it alive until they let go, and live streams are re-checked against the new one.
 */
static void
test_reload_swap(void **state)
{
    struct policy *current = load("policy = { federate = \"allow\"; };\n");
    struct policy *held = policy_ref(current); /* a stream holds it */
    struct policy *next;
    struct policy_stream_facts a = good_stream("a.example"), b = good_stream("b.example");
    struct policy_decision d;

    write_file("block.txt", "b.example\n");
    next = load("policy = { domains = ( { list = \"block.txt\"; federate = \"deny\"; } ); };\n");
    policy_unref(current); /* the engine's reference moves */
    current = next;
    assert_int_equal(policy_check_stream(current, &a, &d), POLICY_PASS);   /* stays */
    assert_int_equal(policy_check_stream(current, &b, &d), POLICY_REFUSE); /* closed */
    assert_int_equal(d.stream_error, XMPP_STREAM_ERR_POLICY_VIOLATION);
    /* The old policy still answers for its holder (ASan catches a use after free). */
    assert_int_equal(policy_check_stream(held, &b, &d), POLICY_PASS);
    policy_unref(held);

    /* A broken candidate is refused as a whole; the current one is untouched. */
    assert_null(policytest_load_text(tmpdir, "bad.conf",
                                     "policy = { domains = ( { list = \"missing.txt\"; } ); };\n",
                                     err, sizeof(err)));
    assert_int_equal(policy_check_stream(current, &b, &d), POLICY_REFUSE);
    policy_unref(current);
}

/* policy_watch(): a list file changed on disk applies to new decisions, no reload. */
static void
test_watch_list(void **state)
{
    struct event_base *base = event_base_new();
    struct policy *p;
    struct policy_decision d;
    char path[PATH_MAX * 2];
    struct timespec ts[2];

    write_file("watched.txt", "old.example\n");
    p = load(
        "policy = { list_check_interval = 0.01;\n"
        "  domains = ( { name = \"bl\"; list = \"watched.txt\"; federate = \"deny\"; } ); };\n");
    assert_int_equal(policy_check_route(p, "example.org", "new.example", &d), POLICY_PASS);
    assert_int_equal(policy_watch(p, base), 0);
    write_file("watched.txt", "old.example\nnew.example\n");
    snprintf(path, sizeof(path), "%s/watched.txt", tmpdir);
    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec += 10;
    ts[1] = ts[0];
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
    /* The timer starts the reader thread; its result is swapped in from the loop. Under
     * load the timer may fire again first, so run the loop until the swap (each pass
     * waits for an event; 1000 passes of the 10 ms timer bound it to ~10 s). */
    for (int i = 0; i < 1000; i++) {
        if (policy_check_route(p, "example.org", "new.example", &d) == POLICY_BOUNCE)
            break;
        assert_int_equal(event_base_loop(base, EVLOOP_ONCE), 0);
    }
    assert_int_equal(policy_check_route(p, "example.org", "new.example", &d), POLICY_BOUNCE);
    assert_string_equal(d.rule, "bl");
    policy_unwatch(p);
    assert_int_equal(event_base_loop(base, EVLOOP_NONBLOCK), 1); /* nothing left */
    policy_unref(p);
    event_base_free(base);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_policy),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_closed_federation),
        cmocka_unit_test(test_terms),
        cmocka_unit_test(test_terms_inherit),
        cmocka_unit_test(test_rule_fields),
        cmocka_unit_test(test_rule_order_and_actions),
        cmocka_unit_test(test_rule_limit),
        cmocka_unit_test(test_index_matches_naive),
        cmocka_unit_test(test_rates),
        cmocka_unit_test(test_reload_swap),
        cmocka_unit_test(test_watch_list),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
