/*
 * s2sproxy: command line and wiring. The lifecycle lives in s2s/daemon.c.
 *
 *   s2sproxy [-c FILE] [-d] [-t]      run the proxy (or -t: check the configuration)
 *   s2sproxy COMMAND [ARGS...]        operator commands (see commands[] below)
 */
#include <getopt.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns/resolver.h"
#include "s2s/cmd_audit.h"
#include "s2s/cmd_ctl.h"
#include "s2s/cmd_policy_check.h"
#include "s2s/cmd_resolve.h"
#include "s2s/conf.h"
#include "s2s/ctl.h"
#include "s2s/daemon.h"
#include "s2s/dnsconf.h"
#include "s2s/eventlog.h"
#include "s2s/local.h"
#include "s2s/log.h"
#include "s2s/metrics.h"
#include "s2s/pool.h"
#include "s2s/router.h"

#define EXIT_USAGE 2

/*
 * Subcommands: argv[1] not starting with '-' names one. Later work adds here
 *   { "resolve", cmd_resolve, "DOMAIN", "look up a domain's s2s targets" },
 *   { "audit", cmd_audit, ... }, { "ctl", cmd_ctl, ... }
 * each getting argc/argv from the command name on.
 */
struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *args;
    const char *help;
};

static const struct command commands[] = {
    {"audit", cmd_audit,
     "[-c FILE] [--json] [--as DOMAIN] [-4|-6] [--timeout S] [--min-grade G] [-f FILE] [-j N] "
     "DOMAIN...",
     "graded federation security report"},
    {"resolve", cmd_resolve, "[-c FILE] [--json] DOMAIN",
     "the s2s targets of DOMAIN, in try order"},
    {"ctl", cmd_ctl, "[-c FILE] [-s SOCKET] [--json] COMMAND [ARG]",
     "ask the running daemon: streams, domains, stats, close X, reload, policy"},
    {"policy-check", cmd_policy_check, "-c FILE --from JID --to JID [OPTIONS] [--json]",
     "what the policy decides for one stanza, and which rule decided"},
    {NULL, NULL, NULL, NULL},
};

static void
usage(FILE *out)
{
    fprintf(out, "usage: s2sproxy [-c FILE] [-d] [-t]\n"
                 "       s2sproxy -v | --version | -h\n");
    for (const struct command *c = commands; c->name != NULL; c++)
        fprintf(out, "       s2sproxy %s %s\t%s\n", c->name, c->args, c->help);
    fprintf(out, "  -c FILE  configuration file (default " CONF_DEFAULT_PATH ")\n"
                 "  -d       debug: log everything to stderr, whatever the configuration says\n"
                 "  -t       check the configuration and certificates, then exit 0 (ok) or 1\n"
                 "  -v       print the version\n");
}

static int
run_command(int argc, char **argv)
{
    for (const struct command *c = commands; c->name != NULL; c++)
        if (strcmp(c->name, argv[1]) == 0)
            return c->run(argc - 1, argv + 1);
    fprintf(stderr, "s2sproxy: unknown command \"%s\"\n", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}

/*
 * glibc gives freed heap back to the kernel (trim) and serves big blocks with mmap, so a
 * relay that allocates and frees a buffer per stanza page-faults the same memory back in
 * every time: 0.12-0.23 us per stanza measured (FIELD-NOTES.md). Fixed thresholds keep
 * that memory in the heap; only blocks above 4 MiB (a few huge stanzas) still use mmap.
 */
static void
tune_malloc(void)
{
#ifdef __GLIBC__
    mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
    mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
#endif
}

/*
 * The federation engine: resolver, router (listeners, inbound sessions, pool), and the
 * daemon hooks that close it gracefully and hand it a reloaded configuration. DNS
 * settings are read once at start (a reload does not rebuild the resolver): a private
 * copy of the configuration keeps the strings the resolver was given alive.
 */
struct federation {
    struct daemon *d;
    struct conf *dns_conf;
    struct dnsconf dc;
    struct dns_resolver *res;
    struct router *router;
    struct local **locals; /* one per host with a component link, NULL entries otherwise */
    size_t nlocals;
    struct ctl *ctl;           /* admin socket, NULL: off */
    struct metrics *metrics;   /* Prometheus endpoint, NULL: off */
    struct eventlog *eventlog; /* JSON event log, NULL: off */
};

/* local -> router: a stanza from the local server for a remote domain. */
static void
link_stanza_take(void *arg, struct local *l, struct stanza *st)
{
    struct federation *f = arg;

    (void)l;
    router_outbound(f->router, st);
}

/* local -> router: a stanza from a remote sender the local server never got. */
static void
link_bounce_take(void *arg, struct local *l, struct stanza *st, enum xmpp_stanza_error cond,
                 const char *why)
{
    struct federation *f = arg;

    (void)l;
    router_bounce_to_remote(f->router, st, cond, why);
}

static void
link_state(void *arg, struct local *l, bool up)
{
    (void)arg;
    log_info("local link for %s is %s", local_domain(l), up ? "up" : "down");
}

static int
link_send(void *ctx, struct stanza *st)
{
    return local_send(ctx, st);
}

/* The component links of the hosts that have one (hosts[].component). */
static void
links_start(struct federation *f, const struct conf *conf)
{
    static const struct local_cbs cbs_tmpl = {link_stanza_take, link_bounce_take, link_state, NULL};

    if ((f->locals = calloc(conf->nhosts, sizeof(*f->locals))) == NULL)
        fatal("calloc");
    f->nlocals = conf->nhosts;
    for (size_t i = 0; i < conf->nhosts; i++) {
        const struct conf_host *h = &conf->hosts[i];
        const struct conf_component *cc = h->component;
        struct local_options lo = {0};
        struct local_cbs cbs = cbs_tmpl;
        struct router_sink sink;

        if (cc == NULL) {
            log_warn("host %s has no component link: stanzas for it will bounce", h->domain);
            continue;
        }
        lo.name = cc->name;
        lo.domain = h->domain;
        lo.host = cc->host;
        lo.port = cc->port;
        lo.secret = cc->secret;
        lo.connect_timeout = conf->timeouts.connect;
        lo.handshake_timeout = conf->timeouts.tls_handshake;
        lo.queue_stanzas = conf->limits.queue_stanzas;
        lo.queue_bytes = conf->limits.queue_bytes;
        lo.queue_max_wait = conf->timeouts.queue;
        lo.limits.max_stanza_bytes = conf->limits.stanza_bytes;
        lo.limits.max_depth = conf->limits.xml_depth;
        lo.limits.max_attrs = conf->limits.xml_attributes;
        lo.limits.max_header_bytes = conf->limits.stream_header_bytes;
        cbs.arg = f;
        if ((f->locals[i] = local_new(daemon_base(f->d), &lo, &cbs)) == NULL)
            fatalx("host %s: cannot set up the component link", h->domain);
        sink.send = link_send;
        sink.ctx = f->locals[i];
        router_set_sink(f->router, h->domain, &sink);
    }
}

static void
links_stop(struct federation *f)
{
    const struct router_sink none = {NULL, NULL};

    for (size_t i = 0; i < f->nlocals; i++) {
        if (f->locals[i] == NULL)
            continue;
        router_set_sink(f->router, local_domain(f->locals[i]), &none);
        local_free(f->locals[i]);
        f->locals[i] = NULL;
    }
}

/* Last phase: the links close after the sessions, so bounces still reach them. */
static void
fed_links_shutdown(struct daemon *d, void *arg)
{
    (void)d;
    links_stop(arg);
}

static void
fed_closed(void *arg)
{
    struct federation *f = arg;

    daemon_idle(f->d);
}

static void
fed_shutdown(struct daemon *d, void *arg)
{
    struct federation *f = arg;

    daemon_busy(d);
    router_shutdown(f->router, fed_closed, f);
}

static void
fed_reload(struct daemon *d, const struct conf *old, void *arg)
{
    struct federation *f = arg;

    char err[512];

    (void)old;
    router_reconfigure(f->router, daemon_conf(d), daemon_tls(d));
    /* log rotation: the event log file is reopened (the path is read at start) */
    if (f->eventlog != NULL && eventlog_reopen(f->eventlog, err, sizeof(err)) == -1)
        log_warn("%s: still writing to the old file", err);
}

/*
 * The operator faces: admin socket, metrics, event log. Their addresses are read at
 * start (a reload does not move them). A socket that cannot be made is logged, not
 * fatal: the proxy keeps federating without its admin face.
 */
static int
operating_start(struct federation *f, const struct conf *conf, char *err, size_t errlen)
{
    struct ctl_env ce = {f->d, router_pool(f->router), f->res, f->locals, f->nlocals, NULL};
    struct metrics_env me = {f->d, router_pool(f->router), f->res, f->locals, f->nlocals, NULL};
    char why[512];

    if (conf->eventlog.file != NULL || conf->eventlog.syslog) {
        if ((f->eventlog = eventlog_new(conf->eventlog.file, conf->eventlog.syslog, err, errlen)) ==
            NULL)
            return -1;
        eventlog_set_base(f->eventlog, daemon_base(f->d));
        eventlog_install(f->eventlog);
    }
    if (conf->metrics.listen != NULL &&
        (f->metrics = metrics_new(daemon_base(f->d), conf->metrics.listen, &me, err, errlen)) ==
            NULL)
        return -1;
    if (conf->ctl.socket != NULL &&
        (f->ctl = ctl_new(daemon_base(f->d), conf->ctl.socket, &ce, why, sizeof(why))) == NULL)
        log_err("%s: admin socket off", why);
    return 0;
}

static void
operating_stop(struct federation *f)
{
    ctl_free(f->ctl);
    f->ctl = NULL;
    metrics_free(f->metrics);
    f->metrics = NULL;
}

static int
federation_start(struct federation *f, struct daemon *d, char *err, size_t errlen)
{
    const struct conf *conf = daemon_conf(d);
    struct pool_dns dns;

    f->d = d;
    if ((f->dns_conf = conf_load(conf->path, err, errlen)) == NULL)
        return -1;
    if (dnsconf_init(&f->dc, &f->dns_conf->dns) == -1) {
        snprintf(err, errlen, "dns: out of memory");
        return -1;
    }
    if ((f->res = dns_resolver_new(daemon_base(d), &f->dc.opts, err, errlen)) == NULL)
        return -1;
    /* TLSA only where a validating resolver can say "secure" (RFC 7673 §3). */
    dns = pool_dns_resolver(f->res, conf->dns.backend == CONF_DNS_UNBOUND ? DNS_TARGETS_TLSA : 0);
    if ((f->router = router_new(daemon_base(d), conf, daemon_tls(d), &dns, err, errlen)) == NULL)
        return -1;
    links_start(f, conf);
    if (operating_start(f, conf, err, errlen) == -1)
        return -1;
    daemon_on_shutdown(d, DAEMON_PHASE_SESSIONS, fed_shutdown, f);
    daemon_on_shutdown(d, DAEMON_PHASE_LINKS, fed_links_shutdown, f);
    daemon_on_reload(d, fed_reload, f);
    return 0;
}

static void
federation_stop(struct federation *f)
{
    operating_stop(f);
    if (f->router != NULL)
        links_stop(f);
    free(f->locals);
    router_free(f->router);
    if (f->res != NULL)
        dns_resolver_free(f->res);
    if (f->dns_conf != NULL) {
        dnsconf_clear(&f->dc);
        conf_free(f->dns_conf);
    }
    eventlog_free(f->eventlog); /* last: the streams freed above log their close */
    f->eventlog = NULL;
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"version", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *conf_path = CONF_DEFAULT_PATH;
    bool debug = false, test = false;
    char err[1024];
    struct daemon *d;
    struct federation fed = {0};
    int ch, rc;

    tune_malloc();
    log_init("s2sproxy", LOG_LVL_INFO, false);
    if (argc > 1 && argv[1][0] != '-')
        return run_command(argc, argv);

    while ((ch = getopt_long(argc, argv, "c:dthv", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            conf_path = optarg;
            break;
        case 'd':
            debug = true;
            break;
        case 't':
            test = true;
            break;
        case 'v':
            printf("s2sproxy %s\n", S2S_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "s2sproxy: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return EXIT_USAGE;
    }

    if (test) {
        if (daemon_config_test(conf_path, err, sizeof(err)) == -1) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        printf("configuration %s ok\n", conf_path);
        return 0;
    }

    if ((d = daemon_new(conf_path, debug, err, sizeof(err))) == NULL)
        fatalx("%s", err);
    if (federation_start(&fed, d, err, sizeof(err)) == -1)
        fatalx("%s", err);
    rc = daemon_run(d);
    federation_stop(&fed);
    daemon_free(d);
    return rc;
}
