/*
 * `s2sproxy audit`: graded reports of remote domains' federation security, -j at a time
 * on one event loop, in the order given.
 */
#include "s2s/cmd_audit.h"

#include <ctype.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "dns/resolver.h"
#include "s2s/audit.h"
#include "s2s/audit_grade.h"
#include "s2s/audit_report.h"
#include "s2s/audit_tls.h"
#include "s2s/conf.h"
#include "s2s/dnsconf.h"

#define EXIT_USAGE      2
#define MAX_DOMAINS     100000
#define MAX_PARALLEL    256
#define MAX_TIMEOUT_SEC 300

struct audit_cli {
    const char *conf_path;
    const char *list_file;
    const char *as_domain;
    bool json;
    int family;
    double timeout;
    int min_grade; /* -1: none */
    unsigned parallel;
    char **domains;
    size_t ndomains;
};

struct audit_sched {
    struct event_base *base;
    struct dns_resolver *res;
    const struct audit_options *opts;
    char **domains;
    size_t ndomains, next, finished;
    struct audit_domain **results;
    unsigned running, parallel;
    bool progress;
};

struct sched_slot {
    struct audit_sched *s;
    size_t idx;
};

static void
audit_usage(FILE *out)
{
    fprintf(out,
            "usage: s2sproxy audit [-c FILE] [--json] [--as DOMAIN] [-4|-6] [--timeout SECONDS]\n"
            "                      [--min-grade GRADE] [-f FILE] [-j N] [DOMAIN...]\n"
            "  -c FILE          DNS settings, CA store and hosted certificates from FILE;\n"
            "                   without it: c-ares on /etc/resolv.conf, no DNSSEC\n"
            "  --json           one JSON document per domain (an array for several)\n"
            "  --as DOMAIN      present DOMAIN's certificate (from -c) and try SASL EXTERNAL\n"
            "  -4, -6           only IPv4 / IPv6 addresses\n"
            "  --timeout SEC    timeout of each step (connect, each XMPP step, handshake); 5\n"
            "  --min-grade G    exit 1 unless every domain gets at least G (A+ A B C D E F)\n"
            "  -f FILE          domains from FILE, one per line, # comments\n"
            "  -j N             audit N domains at once (default 4)\n"
            "exit: 0 all audited (and meeting --min-grade), 1 one fell short or was unreachable,\n"
            "      2 usage or configuration error\n");
}

static int
domains_add(struct audit_cli *cli, const char *name)
{
    char **nd;

    if (cli->ndomains >= MAX_DOMAINS)
        return -1;
    if ((nd = realloc(cli->domains, (cli->ndomains + 1) * sizeof(*nd))) == NULL)
        return -1;
    cli->domains = nd;
    if ((cli->domains[cli->ndomains] = strdup(name)) == NULL)
        return -1;
    cli->ndomains++;
    return 0;
}

static int
domains_read(struct audit_cli *cli, const char *path)
{
    FILE *fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    char line[1024];

    if (fp == NULL) {
        fprintf(stderr, "s2sproxy audit: %s: cannot open\n", path);
        return -1;
    }
    while (fgets(line, sizeof(line), fp) != NULL) {
        char *s = line, *e;
        if ((e = strchr(s, '#')) != NULL)
            *e = '\0';
        while (isspace((unsigned char)*s))
            s++;
        for (e = s + strlen(s); e > s && isspace((unsigned char)e[-1]); e--)
            ;
        *e = '\0';
        if (*s != '\0' && domains_add(cli, s) == -1) {
            fprintf(stderr, "s2sproxy audit: %s: too many domains\n", path);
            break;
        }
    }
    if (fp != stdin)
        fclose(fp);
    return 0;
}

static int
parse_args(struct audit_cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'J'},          {"as", required_argument, NULL, 'A'},
        {"timeout", required_argument, NULL, 'T'}, {"min-grade", required_argument, NULL, 'G'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    char *end;
    long n;
    int ch;

    cli->timeout = 5;
    cli->min_grade = -1;
    cli->parallel = 4;
    cli->family = AF_UNSPEC;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:f:j:46h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            cli->conf_path = optarg;
            break;
        case 'f':
            cli->list_file = optarg;
            break;
        case 'j':
            n = strtol(optarg, &end, 10);
            if (*end != '\0' || n < 1 || n > MAX_PARALLEL) {
                fprintf(stderr, "s2sproxy audit: -j takes 1..%d\n", MAX_PARALLEL);
                return -1;
            }
            cli->parallel = (unsigned)n;
            break;
        case '4':
        case '6':
            if (cli->family != AF_UNSPEC) {
                fprintf(stderr, "s2sproxy audit: -4 and -6 exclude each other\n");
                return -1;
            }
            cli->family = ch == '4' ? AF_INET : AF_INET6;
            break;
        case 'J':
            cli->json = true;
            break;
        case 'A':
            cli->as_domain = optarg;
            break;
        case 'T':
            cli->timeout = strtod(optarg, &end);
            if (*end != '\0' || !(cli->timeout >= 0.1 && cli->timeout <= MAX_TIMEOUT_SEC)) {
                fprintf(stderr, "s2sproxy audit: --timeout takes 0.1..%d seconds\n",
                        MAX_TIMEOUT_SEC);
                return -1;
            }
            break;
        case 'G':
            if ((cli->min_grade = audit_grade_parse(optarg)) < 0 ||
                cli->min_grade == AUDIT_GRADE_T) {
                fprintf(stderr, "s2sproxy audit: --min-grade takes A+, A, B, C, D, E or F\n");
                return -1;
            }
            break;
        case 'h':
            audit_usage(stdout);
            exit(0);
        default:
            return -1;
        }
    }
    for (int i = optind; i < argc; i++)
        if (domains_add(cli, argv[i]) == -1)
            return -1;
    if (cli->list_file != NULL && domains_read(cli, cli->list_file) == -1)
        return -1;
    if (cli->ndomains == 0) {
        fprintf(stderr, "s2sproxy audit: no domain given\n");
        return -1;
    }
    if (cli->as_domain != NULL && cli->conf_path == NULL) {
        fprintf(stderr, "s2sproxy audit: --as needs -c (the certificate of the hosted domain)\n");
        return -1;
    }
    return 0;
}

/* ---- scheduling ---- */

static void sched_pump(struct audit_sched *s);

static void
sched_progress(struct audit_sched *s)
{
    if (!s->progress)
        return;
    fprintf(stderr, "\raudit: %zu/%zu done, %u running   ", s->finished, s->ndomains, s->running);
    if (s->finished == s->ndomains)
        fputc('\n', stderr);
}

static void
sched_done(struct audit_domain *d, void *arg)
{
    struct sched_slot *slot = arg;
    struct audit_sched *s = slot->s;

    s->results[slot->idx] = d;
    free(slot);
    s->running--;
    s->finished++;
    sched_progress(s);
    sched_pump(s);
    /* The resolver keeps events of its own: stop the loop once everything is in. */
    if (s->finished == s->ndomains)
        event_base_loopbreak(s->base);
}

/* A domain that could not even be asked about is a result too. */
static struct audit_domain *
result_invalid(const char *domain, const char *why)
{
    struct audit_domain *d = calloc(1, sizeof(*d));

    if (d == NULL)
        return NULL;
    snprintf(d->domain, sizeof(d->domain), "%s", domain);
    snprintf(d->error, sizeof(d->error), "%s", why);
    snprintf(d->dns_error, sizeof(d->dns_error), "%s", why);
    snprintf(d->dns_backend, sizeof(d->dns_backend), "-");
    d->dns_status = DNS_ERROR;
    audit_grade_domain(d);
    return d;
}

static void
sched_pump(struct audit_sched *s)
{
    while (s->running < s->parallel && s->next < s->ndomains) {
        struct sched_slot *slot = calloc(1, sizeof(*slot));
        size_t idx = s->next++;
        char err[AUDIT_STR];

        if (slot == NULL) {
            s->results[idx] = result_invalid(s->domains[idx], "out of memory");
            s->finished++;
            continue;
        }
        slot->s = s;
        slot->idx = idx;
        if (audit_start(s->base, s->res, s->opts, s->domains[idx], sched_done, slot, err,
                        sizeof(err)) == NULL) {
            free(slot);
            s->results[idx] = result_invalid(s->domains[idx], err);
            s->finished++;
            continue;
        }
        s->running++;
    }
}

/* ---- output ---- */

static void
print_results(const struct audit_cli *cli, struct audit_domain **results)
{
    if (cli->json) {
        json_t *doc = cli->ndomains == 1 ? NULL : json_array();
        for (size_t i = 0; i < cli->ndomains; i++) {
            json_t *one = results[i] ? audit_report_json(results[i]) : json_null();
            if (doc == NULL)
                doc = one;
            else
                json_array_append_new(doc, one);
        }
        json_dumpf(doc, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(doc);
        return;
    }
    for (size_t i = 0; i < cli->ndomains; i++) {
        if (i > 0)
            fputc('\n', stdout);
        if (results[i] != NULL)
            audit_report_text(stdout, results[i]);
    }
}

static int
exit_status(const struct audit_cli *cli, struct audit_domain **results)
{
    for (size_t i = 0; i < cli->ndomains; i++) {
        const struct audit_domain *d = results[i];
        if (d == NULL || d->score.effective == AUDIT_GRADE_NONE)
            return 1;
        if (cli->min_grade >= 0 && !audit_grade_meets(d->score.effective, cli->min_grade))
            return 1;
    }
    return 0;
}

static int
run_audits(const struct audit_cli *cli, struct audit_options *opts, const struct dns_options *dns)
{
    struct audit_sched s = {0};
    char err[512];
    int rc = EXIT_USAGE;

    s.base = event_base_new();
    s.results = calloc(cli->ndomains, sizeof(*s.results));
    if (s.base == NULL || s.results == NULL) {
        fprintf(stderr, "s2sproxy audit: out of memory\n");
        goto out;
    }
    if ((s.res = dns_resolver_new(s.base, dns, err, sizeof(err))) == NULL) {
        fprintf(stderr, "s2sproxy audit: %s\n", err);
        goto out;
    }
    if ((opts->tls = audit_tls_new(opts, err, sizeof(err))) == NULL) {
        fprintf(stderr, "s2sproxy audit: %s\n", err);
        goto out;
    }
    s.opts = opts;
    s.domains = cli->domains;
    s.ndomains = cli->ndomains;
    s.parallel = cli->parallel;
    s.progress = cli->ndomains > 1 && isatty(STDERR_FILENO);
    sched_pump(&s);
    /* Every step of every run is bounded by a timeout, so the loop ends. */
    if (s.finished < s.ndomains)
        event_base_dispatch(s.base);
    print_results(cli, s.results);
    rc = exit_status(cli, s.results);
out:
    for (size_t i = 0; s.results != NULL && i < cli->ndomains; i++)
        free(s.results[i]);
    free(s.results);
    audit_tls_free(opts->tls);
    if (s.res != NULL)
        dns_resolver_free(s.res);
    if (s.base != NULL)
        event_base_free(s.base);
    return rc;
}

int
cmd_audit(int argc, char **argv)
{
    struct audit_cli cli = {0};
    struct audit_options opts = {0};
    struct conf *conf = NULL;
    struct dnsconf dc;
    char err[1024];
    int rc = EXIT_USAGE;

    signal(SIGPIPE, SIG_IGN);
    if (parse_args(&cli, argc, argv) == -1) {
        audit_usage(stderr);
        goto out_cli;
    }
    if (cli.conf_path != NULL) {
        if ((conf = conf_load(cli.conf_path, err, sizeof(err))) == NULL) {
            fprintf(stderr, "%s\n", err);
            goto out_cli;
        }
        if (dnsconf_init(&dc, &conf->dns) == -1) {
            fprintf(stderr, "s2sproxy audit: out of memory\n");
            goto out_conf;
        }
        opts.ca_file = conf->tls.ca_file;
        opts.ca_path = conf->tls.ca_path;
        if (cli.as_domain != NULL) {
            const struct conf_host *h = conf_host_find(conf, cli.as_domain);
            if (h == NULL) {
                fprintf(stderr, "s2sproxy audit: --as %s: not a host of %s\n", cli.as_domain,
                        cli.conf_path);
                goto out_dns;
            }
            opts.as_domain = h->domain;
            opts.as_cert_file = h->certificate;
            opts.as_key_file = h->key;
        }
    } else {
        dnsconf_init_default(&dc);
    }
    opts.dns_backend = dc.opts.backend == DNS_BACKEND_UNBOUND ? "unbound" : "c-ares";
    opts.dnssec_validating =
        dc.opts.backend == DNS_BACKEND_UNBOUND && dc.opts.trust_anchor_file != NULL;
    opts.family = cli.family;
    opts.timeout_ms = (unsigned)(cli.timeout * 1000);
    opts.per_addr = 4;
    opts.enumerate = true;
    rc = run_audits(&cli, &opts, &dc.opts);
out_dns:
    dnsconf_clear(&dc);
out_conf:
    conf_free(conf);
out_cli:
    for (size_t i = 0; i < cli.ndomains; i++)
        free(cli.domains[i]);
    free(cli.domains);
    return rc;
}
