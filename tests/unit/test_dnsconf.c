/*
 * dnsconf: the configuration's dns section becomes the dns_options dns/ takes; server
 * addresses keep their port and get brackets for IPv6 (dns/ parses "[v6]:port").
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
#include <unistd.h>

#include "s2s/dnsconf.h"

static struct conf *
load(const char *dns_section)
{
    char dir[] = "/tmp/s2s-dnsconf-XXXXXX";
    char path[PATH_MAX], err[1024];
    const char *src = getenv("S2S_SRCDIR");
    struct conf *conf;
    FILE *f;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/x.conf", dir);
    assert_non_null(f = fopen(path, "w"));
    fprintf(f,
            "hosts = ( { domain = \"example.org\"; certificate = \"%s/conf/certs/example.org.crt\";"
            " key = \"%s/conf/certs/example.org.key\"; } );\n%s\n",
            src ? src : ".", src ? src : ".", dns_section);
    fclose(f);
    conf = conf_load(path, err, sizeof(err));
    if (conf == NULL)
        fail_msg("%s", err);
    unlink(path);
    rmdir(dir);
    return conf;
}

static void
test_unbound_section(void **state)
{
    struct conf *conf = load("dns = { backend = \"unbound\"; servers = [ \"127.0.0.1:5353\", "
                             "\"[::1]:53\", \"127.0.0.2\" ]; timeout = 2.5; cache_min_ttl = 30; "
                             "cache_max_ttl = 600; unbound_options = ( (\"local-zone:\", "
                             "\"test. transparent\") ); };");
    struct dnsconf dc;

    assert_int_equal(dnsconf_init(&dc, &conf->dns), 0);
    assert_int_equal(dc.opts.backend, DNS_BACKEND_UNBOUND);
    assert_int_equal(dc.opts.nservers, 3);
    assert_string_equal(dc.opts.servers[0], "127.0.0.1:5353");
    assert_string_equal(dc.opts.servers[1], "[::1]:53");
    assert_string_equal(dc.opts.servers[2], "127.0.0.2:53");
    assert_int_equal(dc.opts.timeout, 3); /* whole seconds, rounded */
    assert_int_equal(dc.opts.cache_min_ttl, 30);
    assert_int_equal(dc.opts.cache_max_ttl, 600);
    assert_int_equal(dc.opts.nunbound_options, 1);
    assert_string_equal(dc.opts.unbound_options[0].key, "local-zone:");
    assert_string_equal(dc.opts.unbound_options[0].value, "test. transparent");
    dnsconf_clear(&dc);
    conf_free(conf);
}

static void
test_defaults(void **state)
{
    struct conf *conf = load("dns = { timeout = 0.2; };");
    struct dnsconf dc;

    assert_int_equal(dnsconf_init(&dc, &conf->dns), 0);
    assert_int_equal(dc.opts.backend, DNS_BACKEND_CARES);
    assert_int_equal(dc.opts.nservers, 0); /* resolv.conf */
    assert_null(dc.opts.trust_anchor_file);
    assert_int_equal(dc.opts.timeout, 1); /* a sub-second timeout is not zero (= default) */
    dnsconf_clear(&dc);
    conf_free(conf);

    dnsconf_init_default(&dc);
    assert_int_equal(dc.opts.backend, DNS_BACKEND_CARES);
    assert_int_equal(dc.opts.nservers, 0);
    dnsconf_clear(&dc);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unbound_section),
        cmocka_unit_test(test_defaults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
