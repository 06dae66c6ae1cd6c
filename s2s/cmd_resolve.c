/*
 * `s2sproxy resolve`: the first tool an operator reaches for when federation with a
 * domain fails. It runs the same lookup as the outbound connector (dns_targets_resolve:
 * XEP-0368 SRV merge, RFC 2782 order, fallback, addresses IPv6 first, TLSA when
 * DNSSEC-secure) with the DNS settings of the configuration, and prints the result.
 */
#include "s2s/cmd_resolve.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>
#include <jansson.h>

#include "dns/resolver.h"
#include "s2s/conf.h"
#include "s2s/dnsconf.h"

#define EXIT_USAGE 2

struct resolve_run {
    struct event_base *base;
    struct dns_targets *result;
};

static void
resolve_done(struct dns_targets *t, void *arg)
{
    struct resolve_run *run = arg;
    run->result = t;
    event_base_loopbreak(run->base);
}

static void
resolve_usage(FILE *out)
{
    fprintf(out, "usage: s2sproxy resolve [-c FILE] [--json] DOMAIN\n"
                 "  -c FILE  take the DNS settings (backend, servers, trust anchor) from FILE;\n"
                 "           without it: c-ares on /etc/resolv.conf, no DNSSEC\n"
                 "  --json   print one JSON object\n");
}

static int
print_result(const struct dns_targets *t, bool json)
{
    if (json) {
        json_t *doc = dns_targets_json(t);
        if (doc == NULL)
            return 1;
        json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
        fputc('\n', stdout);
        json_decref(doc);
    } else {
        dns_targets_print(stdout, t);
    }
    return t->status == DNS_OK ? 0 : 1;
}

static int
resolve_domain(const struct dns_options *opts, const char *domain, bool json)
{
    struct resolve_run run = {0};
    struct dns_resolver *res;
    char err[512];
    int rc = 1;

    if ((run.base = event_base_new()) == NULL) {
        fprintf(stderr, "s2sproxy resolve: cannot create an event loop\n");
        return 1;
    }
    if ((res = dns_resolver_new(run.base, opts, err, sizeof(err))) == NULL) {
        fprintf(stderr, "s2sproxy resolve: %s\n", err);
        event_base_free(run.base);
        return EXIT_USAGE;
    }
    if (dns_targets_resolve(res, domain, DNS_TARGETS_TLSA, resolve_done, &run) == NULL) {
        fprintf(stderr, "s2sproxy resolve: \"%s\" is not a valid domain name\n", domain);
        rc = EXIT_USAGE;
    } else {
        /* The resolver bounds every query by its timeout, so this loop ends. */
        event_base_dispatch(run.base);
        if (run.result != NULL) {
            rc = print_result(run.result, json);
            dns_targets_free(run.result);
        }
    }
    dns_resolver_free(res);
    event_base_free(run.base);
    return rc;
}

int
cmd_resolve(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *conf_path = NULL;
    bool json = false;
    struct conf *conf = NULL;
    struct dnsconf dc;
    char err[1024];
    int ch, rc;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            conf_path = optarg;
            break;
        case 'j':
            json = true;
            break;
        case 'h':
            resolve_usage(stdout);
            return 0;
        default:
            resolve_usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (argc - optind != 1) {
        resolve_usage(stderr);
        return EXIT_USAGE;
    }

    if (conf_path != NULL) {
        if ((conf = conf_load(conf_path, err, sizeof(err))) == NULL) {
            fprintf(stderr, "%s\n", err);
            return EXIT_USAGE;
        }
        if (dnsconf_init(&dc, &conf->dns) == -1) {
            conf_free(conf);
            fprintf(stderr, "s2sproxy resolve: out of memory\n");
            return 1;
        }
    } else {
        dnsconf_init_default(&dc);
    }
    rc = resolve_domain(&dc.opts, argv[optind], json);
    dnsconf_clear(&dc);
    conf_free(conf);
    return rc;
}
