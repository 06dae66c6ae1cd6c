/*
 * conf_load(): the shipped example loads, defaults are filled in, and every kind of
 * mistake is refused with "FILE:LINE: KEY: message" (the exact text is asserted, so a
 * message that loses its file, line or key fails here).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <limits.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "s2s/conf.h"
#include "s2s/tls.h"

/* Line 1 of most test files: one valid host, files relative to the test directory. */
#define HOST1                                                                                      \
    "hosts = ( { domain = \"example.org\"; certificate = \"a.crt\"; key = \"a.key\"; } );\n"

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

/* Writes text as tmpdir/x.conf and loads it. */
static struct conf *
load_text(const char *text)
{
    char path[PATH_MAX * 2];

    write_file("x.conf", text);
    snprintf(path, sizeof(path), "%s/x.conf", tmpdir);
    err[0] = '\0';
    return conf_load(path, err, sizeof(err));
}

/* text must be refused with exactly "TMPDIR/FILE:LINE: REST". */
static void
expect_error_in(const char *text, const char *file, int line, const char *rest)
{
    char expected[PATH_MAX * 2];
    struct conf *c = load_text(text);

    if (c != NULL) {
        conf_free(c);
        fail_msg("accepted, expected error \"%s\"", rest);
    }
    snprintf(expected, sizeof(expected), "%s/%s:%d: %s", tmpdir, file, line, rest);
    assert_string_equal(err, expected);
}

static void
expect_error(const char *text, int line, const char *rest)
{
    expect_error_in(text, "x.conf", line, rest);
}

static int
setup(void **state)
{
    char tmpl[] = "/tmp/test_conf.XXXXXX";

    assert_non_null(mkdtemp(tmpl));
    assert_non_null(realpath(tmpl, tmpdir));
    write_file("a.crt", "cert\n");
    write_file("a.key", "key\n");
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
test_example_loads(void **state)
{
    const char *srcdir = getenv("S2S_SRCDIR");
    char path[PATH_MAX], real[PATH_MAX], cert[PATH_MAX * 2];
    const struct tls_settings *ts;
    const struct tls_host *th;
    struct conf *c;

    snprintf(path, sizeof(path), "%s/conf/s2sproxy.conf", srcdir != NULL ? srcdir : ".");
    c = conf_load(path, err, sizeof(err));
    if (c == NULL)
        fail_msg("%s", err);
    assert_int_equal(c->nhosts, 1);
    assert_string_equal(c->hosts[0].domain, "example.org");
    /* The certificate path is relative to the file, made absolute. */
    assert_non_null(realpath(srcdir != NULL ? srcdir : ".", real));
    snprintf(cert, sizeof(cert), "%s/conf/certs/example.org.crt", real);
    assert_string_equal(c->hosts[0].certificate, cert);
    assert_int_equal(c->tls.min_version, TLS1_2_VERSION);
    assert_int_equal(c->dns.backend, CONF_DNS_CARES);
    assert_int_equal(c->dns.nservers, 0);
    conf_tls_settings(c, &ts, &th);
    assert_int_equal(ts->min_version, TLS1_2_VERSION);
    assert_null(ts->ca_file);
    assert_string_equal(th[0].domain, "example.org");
    assert_string_equal(th[0].cert_file, cert);
    assert_string_equal(th[0].key_file, c->hosts[0].key);
    conf_free(c);
}

/* From the repository root (where CTest runs us), a relative -c path works too. */
static void
test_relative_config_path(void **state)
{
    char real[PATH_MAX], key[PATH_MAX * 2];
    struct conf *c = conf_load("conf/s2sproxy.conf", err, sizeof(err));

    if (c == NULL)
        fail_msg("%s", err);
    assert_non_null(realpath(".", real));
    snprintf(key, sizeof(key), "%s/conf/certs/example.org.key", real);
    assert_string_equal(c->hosts[0].key, key);
    assert_string_equal(c->path, "conf/s2sproxy.conf");
    conf_free(c);
}

static void
test_defaults(void **state)
{
    char crt[PATH_MAX * 2];
    struct conf *c = load_text(HOST1);

    if (c == NULL)
        fail_msg("%s", err);
    assert_int_equal(c->log.level, LOG_LVL_INFO);
    assert_false(c->log.syslog);
    snprintf(crt, sizeof(crt), "%s/a.crt", tmpdir);
    assert_string_equal(c->hosts[0].certificate, crt);
    assert_int_equal(c->tls.min_version, TLS1_2_VERSION);
    assert_null(c->tls.ca_file);
    assert_null(c->tls.ca_path);
    assert_null(c->tls.ciphers);
    assert_null(c->tls.ciphersuites);
    assert_int_equal(c->limits.stanza_bytes, 262144);
    assert_int_equal(c->limits.xml_depth, 32);
    assert_int_equal(c->limits.xml_attributes, 64);
    assert_int_equal(c->limits.stream_header_bytes, 4096);
    assert_true(c->timeouts.connect == 10.0);
    assert_true(c->timeouts.tls_handshake == 15.0);
    assert_true(c->timeouts.idle == 600.0);
    assert_int_equal(c->dns.backend, CONF_DNS_CARES);
    assert_int_equal(c->dns.nservers, 0);
    assert_null(c->dns.trust_anchor_file);
    assert_int_equal(c->dns.nunbound_options, 0);
    assert_true(c->dns.timeout == 5.0);
    assert_int_equal(c->dns.cache_min_ttl, 0);
    assert_int_equal(c->dns.cache_max_ttl, 86400);
    /* engine additions (issue 4) */
    assert_int_equal(c->limits.queue_stanzas, 1000);
    assert_int_equal(c->limits.connections_per_ip, 16);
    assert_int_equal(c->limits.unauth_stanza_bytes, 16384);
    assert_int_equal(c->limits.dialback_pairs, 64);
    assert_true(c->timeouts.authenticate == 30.0);
    assert_true(c->timeouts.backoff_min == 5.0 && c->timeouts.backoff_max == 300.0);
    assert_true(c->timeouts.queue == 60.0 && c->timeouts.keepalive == 60.0);
    assert_true(c->timeouts.ping == 60.0 && c->timeouts.ping_answer == 15.0);
    assert_int_equal(c->listen.nstarttls, 2);
    assert_string_equal(c->listen.starttls[1].text, "[::]:5269");
    assert_int_equal(c->listen.starttls[1].salen, sizeof(struct sockaddr_in6));
    assert_int_equal(c->listen.ndirect_tls, 0);
    assert_true(c->dialback.enabled);
    assert_null(c->dialback.secret); /* the file does not exist yet */
    assert_true(c->security.require_tls);
    assert_int_equal(c->security.level, CONF_SEC_DEFAULT);
    assert_null(c->hosts[0].component);
    conf_free(c);
}

/* listen, component, dialback, security: values, lookups, the stored secret. */
static void
test_engine_sections(void **state)
{
    struct conf *c;
    char path[PATH_MAX * 2], secret[128];
    struct stat st;
    FILE *fp;

    (void)state;
    c = load_text(
        "hosts = ( { domain = \"example.org\"; certificate = \"a.crt\"; key = \"a.key\";\n"
        "  component = { port = 5348; secret = \"s3\"; name = \"S2S.example.org\"; }; } );\n"
        "listen = { starttls = [ \"127.0.0.1\" ]; direct_tls = [ \"[::1]:5270\" ]; };\n"
        "dialback = { secret_file = \"db.secret\"; };\n"
        "security = { default = \"secure\"; insecure_domains = [ \"Old.example\" ]; };\n");
    if (c == NULL)
        fail_msg("%s", err);
    assert_string_equal(c->hosts[0].component->host, "127.0.0.1");
    assert_int_equal(c->hosts[0].component->port, 5348);
    assert_string_equal(c->hosts[0].component->name, "s2s.example.org");
    assert_int_equal(c->listen.nstarttls, 1);
    assert_int_equal(ntohs(((struct sockaddr_in *)&c->listen.starttls[0].sa)->sin_port), 5269);
    assert_int_equal(c->listen.ndirect_tls, 1);
    assert_int_equal(conf_security_level(c, "old.example"), CONF_SEC_INSECURE);
    assert_int_equal(conf_security_level(c, "other.example"), CONF_SEC_SECURE);

    /* First start: generated, stored 0600, 64 hex digits; the next load reads it. */
    snprintf(path, sizeof(path), "%s/db.secret", tmpdir);
    unlink(path);
    assert_int_equal(conf_dialback_secret_load(c, err, sizeof(err)), 0);
    assert_int_equal(strlen(c->dialback.secret), 64);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    fp = fopen(path, "r");
    assert_non_null(fp);
    assert_non_null(fgets(secret, sizeof(secret), fp));
    fclose(fp);
    secret[strcspn(secret, "\n")] = '\0';
    assert_string_equal(secret, c->dialback.secret);
    conf_free(c);
    c = load_text(HOST1 "dialback = { secret_file = \"db.secret\"; };\n");
    assert_non_null(c);
    assert_string_equal(c->dialback.secret, secret);
    conf_free(c);
    unlink(path);

    expect_error(HOST1 "security = { default = \"paranoid\"; };\n", 2,
                 "security.default: expected \"default\", \"secure\" or \"insecure\", got "
                 "\"paranoid\"");
    expect_error(HOST1 "listen = { starttls = [ \"localhost:5269\" ]; };\n", 2,
                 "listen.starttls[0]: \"localhost:5269\": expected a numeric IP address "
                 "(\"192.0.2.1:53\", \"[2001:db8::1]:53\")");
    expect_error(HOST1 "dialback = { secret = \"short\"; };\n", 2,
                 "dialback.secret: must be one word of at least 16 characters");
    expect_error(HOST1 "timeouts = { backoff_min = 10; backoff_max = 5; };\n", 2,
                 "timeouts.backoff_max: 5 is out of range 10..86400 seconds");
    expect_error(HOST1 "security = { secure_domains = [ \"a.example\" ];\n"
                       "  insecure_domains = [ \"a.example\" ]; };\n",
                 3, "security.insecure_domains: \"a.example\" is also in secure_domains");
}

static void
test_all_values(void **state)
{
    struct conf *c;
    char ta[PATH_MAX * 2];
    const struct sockaddr_in6 *sin6;

    write_file("root.key", ". IN DS 1 2 3 4\n");
    c = load_text(HOST1
                  "log = { level = \"debug\"; syslog = true; };\n"
                  "tls = { min_version = \"1.3\"; ca_file = \"a.crt\"; ca_path = \".\";\n"
                  "  ciphers = \"ECDHE+AESGCM\"; ciphersuites = \"TLS_AES_128_GCM_SHA256\"; };\n"
                  "limits = { stanza_bytes = 1024; xml_depth = 8; xml_attributes = 1024;\n"
                  "  stream_header_bytes = 65536; };\n"
                  "timeouts = { connect = 0.5; tls_handshake = 300; idle = 1; ping = 0;\n"
                  "  ping_answer = 2.5; };\n"
                  "dns = { backend = \"unbound\"; servers = [ \"127.0.0.1:5353\", "
                  "\"[::1]:53\", \"::1\", \"192.0.2.1\" ];\n"
                  "  trust_anchor_file = \"root.key\";\n"
                  "  unbound_options = ( (\"local-zone:\", \"test. transparent\") );\n"
                  "  timeout = 2.5; cache_min_ttl = 60; cache_max_ttl = 60; };\n");
    if (c == NULL)
        fail_msg("%s", err);
    assert_int_equal(c->log.level, LOG_LVL_DEBUG);
    assert_true(c->log.syslog);
    assert_int_equal(c->tls.min_version, TLS1_3_VERSION);
    snprintf(ta, sizeof(ta), "%s/.", tmpdir);
    assert_string_equal(c->tls.ca_path, ta);
    assert_string_equal(c->tls.ciphers, "ECDHE+AESGCM");
    assert_string_equal(c->tls.ciphersuites, "TLS_AES_128_GCM_SHA256");
    assert_int_equal(c->limits.stanza_bytes, 1024);
    assert_int_equal(c->limits.xml_depth, 8);
    assert_int_equal(c->limits.xml_attributes, 1024);
    assert_int_equal(c->limits.stream_header_bytes, 65536);
    assert_true(c->timeouts.connect == 0.5);
    assert_true(c->timeouts.tls_handshake == 300.0);
    assert_true(c->timeouts.idle == 1.0);
    assert_true(c->timeouts.ping == 0.0 && c->timeouts.ping_answer == 2.5);
    assert_int_equal(c->dns.backend, CONF_DNS_UNBOUND);
    assert_int_equal(c->dns.nservers, 4);
    assert_string_equal(c->dns.servers[0].address, "127.0.0.1");
    assert_int_equal(c->dns.servers[0].port, 5353);
    assert_int_equal(c->dns.servers[0].family, AF_INET);
    assert_string_equal(c->dns.servers[1].address, "::1");
    assert_int_equal(c->dns.servers[1].port, 53);
    assert_int_equal(c->dns.servers[1].family, AF_INET6);
    sin6 = (const struct sockaddr_in6 *)&c->dns.servers[1].sa;
    assert_int_equal(ntohs(sin6->sin6_port), 53);
    assert_int_equal(c->dns.servers[1].salen, sizeof(struct sockaddr_in6));
    assert_string_equal(c->dns.servers[2].address, "::1");
    assert_int_equal(c->dns.servers[2].port, 53);
    assert_string_equal(c->dns.servers[3].address, "192.0.2.1");
    assert_int_equal(c->dns.servers[3].port, 53);
    snprintf(ta, sizeof(ta), "%s/root.key", tmpdir);
    assert_string_equal(c->dns.trust_anchor_file, ta);
    assert_int_equal(c->dns.nunbound_options, 1);
    assert_string_equal(c->dns.unbound_options[0].name, "local-zone:");
    assert_string_equal(c->dns.unbound_options[0].value, "test. transparent");
    assert_true(c->dns.timeout == 2.5);
    assert_int_equal(c->dns.cache_min_ttl, 60);
    assert_int_equal(c->dns.cache_max_ttl, 60);
    conf_free(c);
}

static void
test_missing_file(void **state)
{
    char path[PATH_MAX * 2], expected[PATH_MAX * 3];

    snprintf(path, sizeof(path), "%s/nope.conf", tmpdir);
    assert_null(conf_load(path, err, sizeof(err)));
    snprintf(expected, sizeof(expected), "%s: cannot read: No such file or directory", path);
    assert_string_equal(err, expected);
}

static void
test_syntax_error(void **state)
{
    expect_error(HOST1 "\nlog = { level = \"info\" }\ntls = ;\n", 4, "syntax error");
    expect_error(HOST1 "log = { level = \"info\"; level = \"debug\"; };\n", 2,
                 "duplicate setting name");
}

static void
test_unknown_keys(void **state)
{
    expect_error(HOST1 "\n\nlistener = 5;\n", 4, "listener: unknown option");
    expect_error(HOST1 "dns = {\n  backend = \"c-ares\";\n  srevers = [ ];\n};\n", 4,
                 "dns.srevers: unknown option");
    expect_error(HOST1 "log = { level = \"info\"; colour = true; };\n", 2,
                 "log.colour: unknown option");
    expect_error(
        "hosts = (\n { domain = \"example.org\"; certificate = \"a.crt\"; key = \"a.key\"; "
        "},\n { domain = \"b.org\"; certificate = \"a.crt\";\n   key = \"a.key\"; "
        "port = 5269; } );\n",
        4, "hosts[1].port: unknown option");
    expect_error(HOST1 "tls = { min_version = \"1.2\"; limits = { }; };\n", 2,
                 "tls.limits: unknown option");
}

static void
test_wrong_types(void **state)
{
    expect_error(HOST1 "limits = { stanza_bytes = \"big\"; };\n", 2,
                 "limits.stanza_bytes: expected an integer, got a string");
    expect_error(HOST1 "limits = { xml_depth = 32.0; };\n", 2,
                 "limits.xml_depth: expected an integer, got a decimal number");
    expect_error(HOST1 "log = { syslog = 1; };\n", 2,
                 "log.syslog: expected a boolean (true or false), got an integer");
    expect_error(HOST1 "tls = \"1.3\";\n", 2, "tls: expected a group { }, got a string");
    expect_error(HOST1 "timeouts = { idle = \"10\"; };\n", 2,
                 "timeouts.idle: expected a number of seconds, got a string");
    expect_error("hosts = { domain = \"example.org\"; };\n", 1,
                 "hosts: expected a list of hosts ( { domain = ...; ... }, ... ), got a group { }");
    expect_error(HOST1 "dns = { servers = \"127.0.0.1\"; };\n", 2,
                 "dns.servers: expected an array of addresses [ \"127.0.0.1:53\", ... ], got a "
                 "string");
    expect_error(HOST1 "dns = { servers = [ 53 ]; };\n", 2,
                 "dns.servers[0]: expected a string, got an integer");
    expect_error(HOST1 "dns = { backend = \"unbound\"; unbound_options = ( \"local-zone:\" ); };\n",
                 2, "dns.unbound_options[0]: expected a pair of strings (\"option:\", \"value\")");
}

static void
test_enums(void **state)
{
    expect_error(HOST1 "tls = { min_version = \"1.1\"; };\n", 2,
                 "tls.min_version: expected \"1.2\" or \"1.3\", got \"1.1\"");
    expect_error(HOST1 "log = { level = \"verbose\"; };\n", 2,
                 "log.level: expected \"error\", \"warning\", \"info\" or \"debug\", got "
                 "\"verbose\"");
    expect_error(HOST1 "dns = { backend = \"bind\"; };\n", 2,
                 "dns.backend: expected \"c-ares\" or \"unbound\", got \"bind\"");
}

/* ctl, metrics, eventlog (issue 9): defaults, values, errors in the FILE:LINE: KEY style. */
static void
test_operating_sections(void **state)
{
    char path[PATH_MAX * 2];
    struct conf *c;

    c = load_text(HOST1);
    assert_non_null(c);
    assert_string_equal(c->ctl.socket, "/run/s2sproxy/ctl.sock");
    assert_null(c->metrics.listen); /* off by default */
    assert_int_equal(c->metrics.top_domains, 20);
    assert_null(c->eventlog.file);
    assert_false(c->eventlog.syslog);
    conf_free(c);

    c = load_text(HOST1 "ctl = { socket = \"\"; };\n"
                        "metrics = { listen = \"[::1]:9269\"; domains = [ \"B.example\" ];\n"
                        "  top_domains = 0; };\n"
                        "eventlog = { file = \"events.jsonl\"; syslog = true; };\n");
    if (c == NULL)
        fail_msg("%s", err);
    assert_null(c->ctl.socket);
    assert_string_equal(c->metrics.listen->text, "[::1]:9269");
    assert_int_equal(c->metrics.ndomains, 1);
    assert_string_equal(c->metrics.domains[0], "b.example");
    assert_int_equal(c->metrics.top_domains, 0);
    snprintf(path, sizeof(path), "%s/events.jsonl", tmpdir);
    assert_string_equal(c->eventlog.file, path);
    assert_true(c->eventlog.syslog);
    conf_free(c);

    expect_error(HOST1 "ctl = { path = \"x\"; };\n", 2, "ctl.path: unknown option");
    expect_error(HOST1 "metrics = { listen = \"127.0.0.1\"; };\n", 2,
                 "metrics.listen: \"127.0.0.1\": a port is required (\"127.0.0.1:9269\")");
    expect_error(HOST1 "metrics = { listen = \"localhost:9269\"; };\n", 2,
                 "metrics.listen: \"localhost:9269\": expected a numeric IP address "
                 "(\"192.0.2.1:53\", \"[2001:db8::1]:53\")");
    expect_error(HOST1 "metrics = { top_domains = 1001; };\n", 2,
                 "metrics.top_domains: 1001 is out of range 0..1000");
    expect_error(HOST1 "metrics = {\n domains = [ \"bad domain\" ]; };\n", 3,
                 "metrics.domains[0]: \"bad domain\" is not a valid domain: character ' ' is not "
                 "allowed in a DNS name");
    expect_error(HOST1 "eventlog = { syslog = \"yes\"; };\n", 2,
                 "eventlog.syslog: expected a boolean (true or false), got a string");
}

static void
test_ranges(void **state)
{
    expect_error(HOST1 "limits = { stanza_bytes = 1023; };\n", 2,
                 "limits.stanza_bytes: 1023 is out of range 1024..16777216");
    expect_error(HOST1 "limits = { stanza_bytes = 16777217; };\n", 2,
                 "limits.stanza_bytes: 16777217 is out of range 1024..16777216");
    expect_error(HOST1 "limits = { stanza_bytes = 17000000000L; };\n", 2,
                 "limits.stanza_bytes: 17000000000 is out of range 1024..16777216");
    expect_error(HOST1 "limits = { xml_depth = 7; };\n", 2,
                 "limits.xml_depth: 7 is out of range 8..1024");
    expect_error(HOST1 "limits = { stream_header_bytes = -1; };\n", 2,
                 "limits.stream_header_bytes: -1 is out of range 512..65536");
    expect_error(HOST1 "timeouts = { connect = 0.05; };\n", 2,
                 "timeouts.connect: 0.05 is out of range 0.1..300 seconds");
    expect_error(HOST1 "timeouts = { tls_handshake = 301; };\n", 2,
                 "timeouts.tls_handshake: 301 is out of range 0.1..300 seconds");
    expect_error(HOST1 "timeouts = { ping = 0.5; };\n", 2,
                 "timeouts.ping: 0.5: use 0 (off) or 1..86400 seconds");
    expect_error(HOST1 "timeouts = { ping = 86401; };\n", 2,
                 "timeouts.ping: 86401 is out of range 0..86400 seconds");
    expect_error(HOST1 "timeouts = { ping_answer = 0; };\n", 2,
                 "timeouts.ping_answer: 0 is out of range 1..3600 seconds");
    expect_error(HOST1 "timeouts = { ping = \"60\"; };\n", 2,
                 "timeouts.ping: expected a number of seconds, got a string");
    expect_error(HOST1 "dns = { timeout = 61; };\n", 2,
                 "dns.timeout: 61 is out of range 0.1..60 seconds");
    expect_error(HOST1 "dns = { cache_max_ttl = 604801; };\n", 2,
                 "dns.cache_max_ttl: 604801 is out of range 0..604800");
    expect_error(HOST1 "dns = {\n cache_min_ttl = 3600;\n cache_max_ttl = 60; };\n", 4,
                 "dns.cache_max_ttl: cache_min_ttl (3600) is greater than cache_max_ttl (60)");
    /* min above the default max: reported at the only TTL that is set. */
    expect_error(HOST1 "dns = { cache_min_ttl = 90000; };\n", 2,
                 "dns.cache_min_ttl: cache_min_ttl (90000) is greater than cache_max_ttl (86400)");
}

static void
test_hosts(void **state)
{
    char expected[PATH_MAX * 2];

    expect_error("hosts = ( );\n", 1, "hosts: at least one hosted domain is required");
    /* A missing section has no line of its own: the file alone is named. */
    assert_null(load_text("log = { level = \"info\"; };\n"));
    snprintf(expected, sizeof(expected),
             "%s/x.conf: hosts: missing (at least one hosted domain is required)", tmpdir);
    assert_string_equal(err, expected);
    expect_error("hosts = ( { certificate = \"a.crt\"; key = \"a.key\"; } );\n", 1,
                 "hosts[0].domain: missing (the domain this host serves)");
    expect_error("hosts = ( { domain = \"example.org\";\n key = \"a.key\"; } );\n", 1,
                 "hosts[0].certificate: missing (a file name is required)");
    expect_error(
        "hosts = ( { domain = \"example.org\"; certificate = \"a.crt\";\n key = \"\"; } );\n", 2,
        "hosts[0].key: must not be empty");
}

static void
test_hosts_duplicate_and_case(void **state)
{
    struct conf *c;

    expect_error(
        "hosts = (\n { domain = \"example.org\"; certificate = \"a.crt\"; key = \"a.key\"; },\n"
        " { domain = \"EXAMPLE.org.\"; certificate = \"a.crt\"; key = \"a.key\"; } );\n",
        3, "hosts[1].domain: duplicate domain \"example.org\"");
    c = load_text("hosts = ( { domain = \"Chat.Example.ORG.\"; certificate = \"a.crt\"; key = "
                  "\"a.key\"; },\n { domain = \"xn--bcher-kva.example\"; certificate = "
                  "\"a.crt\"; key = \"a.key\"; } );\n");
    if (c == NULL)
        fail_msg("%s", err);
    assert_int_equal(c->nhosts, 2);
    assert_string_equal(c->hosts[0].domain, "chat.example.org");
    assert_non_null(conf_host_find(c, "xn--bcher-kva.example"));
    assert_ptr_equal(conf_host_find(c, "chat.example.org"), &c->hosts[0]);
    assert_null(conf_host_find(c, "example.org"));
    conf_free(c);
}

static void
test_bad_domains(void **state)
{
    static const struct {
        const char *domain, *why;
    } cases[] = {
        {"exa mple.org", "character ' ' is not allowed in a DNS name"},
        {"ex_ample.org", "character '_' is not allowed in a DNS name"},
        {"a..org", "empty label"},
        {".org", "empty label"},
        {"", "empty"},
        {"-a.org", "a label starts with '-'"},
        {"a-.org", "a label ends with '-'"},
        {"b\xc3\xbc"
         "cher.example",
         "not ASCII: write an internationalized name in its A-label (xn--) form"},
        {"192.0.2.1", "an IP address, not a DNS name"},
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.org",
         "a label is longer than 63 characters"},
    };
    char text[512], rest[256];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(text, sizeof(text),
                 "hosts = ( { domain = \"%s\"; certificate = \"a.crt\"; key = \"a.key\"; } );\n",
                 cases[i].domain);
        snprintf(rest, sizeof(rest), "hosts[0].domain: \"%s\" is not a valid domain: %s",
                 cases[i].domain, cases[i].why);
        expect_error(text, 1, rest);
    }
}

static void
test_bad_addresses(void **state)
{
    static const struct {
        const char *addr, *why;
    } cases[] = {
        {"ns.example.org",
         "expected a numeric IP address (\"192.0.2.1:53\", \"[2001:db8::1]:53\")"},
        {"127.0.0.1:0", "port must be 1..65535"},
        {"127.0.0.1:65536", "port must be 1..65535"},
        {"127.0.0.1:", "port must be 1..65535"},
        {"127.0.0.1:5x", "port must be 1..65535"},
        {"127.0.0.1:-53", "port must be 1..65535"},
        {"[::1", "missing ']'"},
        {"[::1]53", "expected ':PORT' after ']'"},
        {"", "expected a numeric IP address"},
        {"300.1.1.1", "expected a numeric IP address (\"192.0.2.1:53\", \"[2001:db8::1]:53\")"},
    };
    char text[512], rest[256];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(text, sizeof(text), HOST1 "dns = { servers = [ \"::1\", \"%s\" ]; };\n",
                 cases[i].addr);
        snprintf(rest, sizeof(rest), "dns.servers[1]: \"%s\": %s", cases[i].addr, cases[i].why);
        expect_error(text, 2, rest);
    }
}

static void
test_files(void **state)
{
    char rest[PATH_MAX * 2], text[PATH_MAX * 2];

    snprintf(rest, sizeof(rest),
             "hosts[0].key: cannot read \"%s/certs/missing.key\": No such file or directory",
             tmpdir);
    expect_error("hosts = ( { domain = \"example.org\"; certificate = \"a.crt\";\n"
                 "  key = \"certs/missing.key\"; } );\n",
                 2, rest);
    snprintf(rest, sizeof(rest), "tls.ca_path: \"%s/a.crt\" is not a directory", tmpdir);
    expect_error(HOST1 "tls = { ca_path = \"a.crt\"; };\n", 2, rest);
    snprintf(rest, sizeof(rest), "tls.ca_file: \"%s\" is not a regular file", tmpdir);
    snprintf(text, sizeof(text), HOST1 "tls = { ca_file = \"%s\"; };\n", tmpdir);
    expect_error(text, 2, rest);
}

static void
test_relative_paths(void **state)
{
    char sub[PATH_MAX * 2], expected[PATH_MAX * 3];
    struct conf *c;

    snprintf(sub, sizeof(sub), "%s/certs", tmpdir);
    mkdir(sub, 0700);
    write_file("certs/b.crt", "cert\n");
    write_file("certs/b.key", "key\n");
    c = load_text("hosts = ( { domain = \"example.org\"; certificate = \"certs/b.crt\"; key = "
                  "\"certs/../certs/b.key\"; } );\n"
                  "tls = { ca_file = \"certs/b.crt\"; };\n");
    if (c == NULL)
        fail_msg("%s", err);
    snprintf(expected, sizeof(expected), "%s/certs/b.crt", tmpdir);
    assert_string_equal(c->hosts[0].certificate, expected);
    assert_string_equal(c->tls.ca_file, expected);
    snprintf(expected, sizeof(expected), "%s/certs/../certs/b.key", tmpdir);
    assert_string_equal(c->hosts[0].key, expected);
    conf_free(c);

    /* Absolute paths are kept as written. */
    snprintf(expected, sizeof(expected),
             "hosts = ( { domain = \"example.org\"; certificate = \"%s/certs/b.crt\"; key = "
             "\"a.key\"; } );\n",
             tmpdir);
    c = load_text(expected);
    if (c == NULL)
        fail_msg("%s", err);
    snprintf(expected, sizeof(expected), "%s/certs/b.crt", tmpdir);
    assert_string_equal(c->hosts[0].certificate, expected);
    conf_free(c);
}

static void
test_include(void **state)
{
    char sub[PATH_MAX * 2];
    struct conf *c;

    snprintf(sub, sizeof(sub), "%s/conf.d", tmpdir);
    mkdir(sub, 0700);
    write_file("conf.d/dns.conf", "dns = {\n  backend = \"c-ares\";\n  timeout = 3;\n};\n");
    c = load_text(HOST1 "@include \"conf.d/dns.conf\"\nlog = { level = \"warning\"; };\n");
    if (c == NULL)
        fail_msg("%s", err);
    assert_true(c->dns.timeout == 3.0);
    assert_int_equal(c->log.level, LOG_LVL_WARN);
    conf_free(c);

    /* Errors inside an included file name that file and its own line. */
    write_file("conf.d/dns.conf", "dns = {\n  backend = \"c-ares\";\n  timeuot = 3;\n};\n");
    expect_error_in(HOST1 "@include \"conf.d/dns.conf\"\n", "conf.d/dns.conf", 3,
                    "dns.timeuot: unknown option");
    write_file("conf.d/dns.conf", "dns = {\n  timeout = ;\n};\n");
    expect_error_in(HOST1 "@include \"conf.d/dns.conf\"\n", "conf.d/dns.conf", 2, "syntax error");
    expect_error(HOST1 "@include \"conf.d/none.conf\"\n", 2, "cannot open include file");
}

static void
test_dns_backend_rules(void **state)
{
    write_file("root.key", ". IN DS 1 2 3 4\n");
    expect_error(HOST1 "dns = { trust_anchor_file = \"root.key\"; };\n", 2,
                 "dns.trust_anchor_file: only used with backend \"unbound\" (c-ares does not "
                 "validate DNSSEC)");
    expect_error(HOST1
                 "dns = { unbound_options = ( (\"local-zone:\", \"test. transparent\") ); };\n",
                 2, "dns.unbound_options: only used with backend \"unbound\"");
    expect_error(HOST1 "dns = { backend = \"unbound\";\n unbound_options = ( (\"local-zone\", "
                       "\"test. transparent\") ); };\n",
                 3,
                 "dns.unbound_options[0]: option name \"local-zone\" must end with ':' "
                 "(\"local-zone:\")");
    expect_error(HOST1 "dns = { backend = \"unbound\";\n unbound_options = ( (\"no-such-option:\", "
                       "\"yes\") ); };\n",
                 3, "dns.unbound_options[0]: libunbound refuses \"no-such-option:\" \"yes\"");
}

static void
test_ciphers(void **state)
{
    expect_error(HOST1 "tls = { ciphers = \"NO-SUCH-CIPHER\"; };\n", 2,
                 "tls.ciphers: OpenSSL accepts none of \"NO-SUCH-CIPHER\"");
    expect_error(HOST1 "tls = { ciphersuites = \"TLS_NOPE\"; };\n", 2,
                 "tls.ciphersuites: OpenSSL accepts none of \"TLS_NOPE\"");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_loads),
        cmocka_unit_test(test_relative_config_path),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_all_values),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_syntax_error),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_enums),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_operating_sections),
        cmocka_unit_test(test_hosts),
        cmocka_unit_test(test_hosts_duplicate_and_case),
        cmocka_unit_test(test_bad_domains),
        cmocka_unit_test(test_bad_addresses),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_relative_paths),
        cmocka_unit_test(test_include),
        cmocka_unit_test(test_dns_backend_rules),
        cmocka_unit_test(test_ciphers),
        cmocka_unit_test(test_engine_sections),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
