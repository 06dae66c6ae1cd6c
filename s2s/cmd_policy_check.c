/*
 * `s2sproxy policy-check`: asks the policy of a configuration file what the proxy would
 * do with one stanza, in the order the engine asks:
 *   1. outbound only: may a route to the remote domain be created (policy_check_route)?
 *   2. is a stream with the given security (--tls, --auth) accepted (policy_check_stream)?
 *   3. what happens to the stanza (policy_check_stanza)?
 * The first answer that is not "pass" is the decision. The direction follows from the
 * configuration's hosts: from a hosted domain is outbound, to a hosted domain inbound.
 *
 * The configuration is read with libconfig here (hosts and the policy section only):
 * conf_load() does not know the "policy" section yet. Once s2s/conf.c loads it, this
 * can use conf_load() and conf->policy instead.
 */
#include "s2s/cmd_policy_check.h"

#include <getopt.h>
#include <libconfig.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "s2s/domainlist.h"
#include "s2s/log.h"
#include "s2s/policy.h"
#include "s2s/policy_conf.h"

#define EXIT_USAGE 2
#define TLS12      0x0303
#define TLS13      0x0304

struct check_args {
    const char *conf_path;
    const char *from, *to;
    enum policy_kind kind;
    const char *type;
    const char *ns[POLICY_STANZA_NS];
    size_t nns;
    size_t size;
    enum policy_auth auth;
    int tls;
    bool no_dnssec, no_dane;
    bool json;
};

struct check_conf {
    char **hosts;
    size_t nhosts;
    struct policy *policy;
};

static void
check_usage(FILE *out)
{
    fprintf(
        out,
        "usage: s2sproxy policy-check -c FILE --from JID --to JID [--kind message|presence|iq]\n"
        "           [--type T] [--ns NAMESPACE]... [--size BYTES] [--auth cert|dialback]\n"
        "           [--tls 1.2|1.3|none] [--no-dnssec] [--no-dane] [--json]\n"
        "  From a hosted domain is outbound, to a hosted domain inbound. Defaults: a\n"
        "  message without type, 100 bytes, TLS 1.3, a valid certificate (--auth cert),\n"
        "  DNSSEC-secure DNS and a DANE match (outbound).\n"
        "  Exit status: 0 pass, 1 refuse, bounce or drop, 2 usage or configuration error.\n");
}

/* --- configuration ----------------------------------------------------------------------- */

static void
check_conf_free(struct check_conf *c)
{
    for (size_t i = 0; i < c->nhosts; i++)
        free(c->hosts[i]);
    free(c->hosts);
    policy_unref(c->policy);
}

static int
load_hosts(config_t *cfg, struct check_conf *c, char *err, size_t errlen)
{
    const config_setting_t *hosts = config_lookup(cfg, "hosts");
    char norm[DOMAINLIST_NAME_MAX], why[64];
    int n;

    if (hosts == NULL || !config_setting_is_list(hosts) ||
        (n = config_setting_length(hosts)) == 0) {
        snprintf(err, errlen, "%s: hosts: missing (at least one hosted domain is required)",
                 config_setting_source_file(config_root_setting(cfg)));
        return -1;
    }
    if ((c->hosts = calloc((size_t)n, sizeof(*c->hosts))) == NULL)
        fatal("calloc");
    for (int i = 0; i < n; i++) {
        const char *d = NULL;
        const config_setting_t *h = config_setting_get_elem(hosts, (unsigned)i);

        if (!config_setting_lookup_string(h, "domain", &d) ||
            domainlist_normalize(d, false, norm, sizeof(norm), why, sizeof(why)) != NULL) {
            snprintf(err, errlen, "%s:%u: hosts[%d].domain: missing or not a domain",
                     config_setting_source_file(h), config_setting_source_line(h), i);
            return -1;
        }
        if ((c->hosts[c->nhosts++] = strdup(norm)) == NULL)
            fatal("strdup");
    }
    return 0;
}

static int
load_conf(const char *path, struct check_conf *c, char *err, size_t errlen)
{
    char dir[PATH_MAX], *slash;
    config_t cfg;
    int rc = -1;

    if (realpath(path, dir) == NULL) {
        snprintf(err, errlen, "%s: cannot read", path);
        return -1;
    }
    if ((slash = strrchr(dir, '/')) != NULL)
        *slash = '\0';
    config_init(&cfg);
    config_set_include_dir(&cfg, dir);
    if (config_read_file(&cfg, path) != CONFIG_TRUE) {
        snprintf(err, errlen, "%s:%d: %s",
                 config_error_file(&cfg) != NULL ? config_error_file(&cfg) : path,
                 config_error_line(&cfg), config_error_text(&cfg));
    } else if (load_hosts(&cfg, c, err, errlen) == 0 &&
               (c->policy = policy_conf_load(config_lookup(&cfg, "policy"), dir, err, errlen)) !=
                   NULL) {
        rc = 0;
    }
    config_destroy(&cfg);
    return rc;
}

static bool
hosted(const struct check_conf *c, const char *domain)
{
    for (size_t i = 0; i < c->nhosts; i++)
        if (strcmp(c->hosts[i], domain) == 0)
            return true;
    return false;
}

/* The domain of a JID (RFC 7622 §3.2): after any '@' that precedes the resource. */
static int
jid_domain(const char *jid, char *out, size_t outlen)
{
    char buf[1024], *slash, *at, why[64];

    snprintf(buf, sizeof(buf), "%s", jid);
    if ((slash = strchr(buf, '/')) != NULL)
        *slash = '\0';
    at = strrchr(buf, '@');
    return domainlist_normalize(at != NULL ? at + 1 : buf, false, out, outlen, why, sizeof(why)) ==
                   NULL
               ? 0
               : -1;
}

/* --- the checks --------------------------------------------------------------------------- */

struct check_result {
    enum policy_dir dir;
    char local[DOMAINLIST_NAME_MAX], remote[DOMAINLIST_NAME_MAX];
    const struct policy_terms *terms;
    bool route_checked;
    struct policy_decision route, stream, stanza;
    const struct policy_decision *decisive; /* the first that is not a pass */
};

static bool
passes(const struct policy_decision *d)
{
    return d->verdict == POLICY_PASS || d->verdict == POLICY_LOG;
}

static void
run_checks(const struct check_args *a, struct policy *p, struct check_result *r)
{
    struct policy_stream_facts sf = {0};
    struct policy_stanza_facts st = {0};

    r->terms = policy_terms(p, r->remote, NULL);
    if (r->dir == POLICY_OUT) {
        r->route_checked = true;
        policy_check_route(p, r->local, r->remote, &r->route);
        if (!passes(&r->route)) {
            r->decisive = &r->route;
            return;
        }
    }
    sf.dir = r->dir;
    sf.local = r->local;
    sf.remote = r->remote;
    sf.tls_version = a->tls;
    sf.auth = a->auth;
    sf.cert = a->auth == POLICY_AUTH_SASL_EXTERNAL ? POLICY_CERT_VALID : POLICY_CERT_NONE;
    sf.dnssec = !a->no_dnssec;
    sf.dane = !a->no_dane;
    policy_check_stream(p, &sf, &r->stream);
    if (!passes(&r->stream)) {
        r->decisive = &r->stream;
        return;
    }
    st.dir = r->dir;
    st.local = r->local;
    st.remote = r->remote;
    st.kind = a->kind;
    st.type = a->type;
    memcpy(st.ns, a->ns, sizeof(st.ns));
    st.nns = a->nns;
    st.size = a->size;
    st.now = ratelimit_now();
    policy_check_stanza(p, &st, &r->stanza);
    r->decisive = &r->stanza;
}

/* --- output -------------------------------------------------------------------------------- */

static const char *
tls_text(int v)
{
    return v == TLS13 ? "1.3" : v == TLS12 ? "1.2" : "none";
}

static void
print_text(const struct check_result *r)
{
    const struct policy_terms *t = r->terms;
    char line[1024], streams[32] = "unlimited";

    if (t->max_streams != 0)
        snprintf(streams, sizeof(streams), "%u", t->max_streams);

    printf("direction: %s (%s %s %s)\n", r->dir == POLICY_IN ? "in" : "out", r->local,
           r->dir == POLICY_IN ? "<-" : "->", r->remote);
    printf("terms for %s: federate %s, TLS %s (min %s), auth %s, dnssec %s, dane %s, "
           "max_streams %s\n",
           r->remote, t->federate ? "allow" : "deny", t->require_tls ? "required" : "optional",
           tls_text(t->min_tls),
           t->auth == POLICY_REQUIRE_CERTIFICATE ? "certificate" : "dialback accepted",
           t->dnssec ? "required" : "no", t->dane ? "required" : "no", streams);
    if (r->route_checked) {
        policy_decision_format(&r->route, line, sizeof(line));
        printf("route: %s\n", line);
    }
    if (r->decisive != &r->route) {
        policy_decision_format(&r->stream, line, sizeof(line));
        printf("stream: %s\n", line);
    }
    if (r->decisive == &r->stanza) {
        policy_decision_format(&r->stanza, line, sizeof(line));
        printf("stanza: %s\n", line);
    }
    policy_decision_format(r->decisive, line, sizeof(line));
    printf("decision: %s\n", line);
}

static json_t *
decision_json(const struct policy_decision *d)
{
    json_t *o = json_pack("{s:s, s:s?, s:s?, s:s?}", "verdict", policy_verdict_name(d->verdict),
                          "rule", d->rule, "file", d->file, "term", d->term);

    if (d->file != NULL)
        json_object_set_new(o, "line", json_integer(d->line));
    if (d->verdict == POLICY_BOUNCE) {
        json_object_set_new(o, "condition", json_string(xmpp_stanza_error_name(d->stanza_error)));
        json_object_set_new(o, "error_type", json_string(xmpp_error_type_name(d->error_type)));
    } else if (d->verdict == POLICY_REFUSE) {
        json_object_set_new(o, "stream_error",
                            json_string(xmpp_stream_error_name(d->stream_error)));
        json_object_set_new(o, "dialback_error",
                            json_string(dialback_cond_name(d->dialback_error)));
    }
    if (d->text[0] != '\0')
        json_object_set_new(o, "text", json_string(d->text));
    return o;
}

static void
print_json(const struct check_result *r)
{
    const struct policy_terms *t = r->terms;
    json_t *doc = json_object();

    json_object_set_new(doc, "direction", json_string(r->dir == POLICY_IN ? "in" : "out"));
    json_object_set_new(doc, "local", json_string(r->local));
    json_object_set_new(doc, "remote", json_string(r->remote));
    json_object_set_new(
        doc, "terms",
        json_pack("{s:b, s:b, s:s, s:s, s:b, s:b, s:i}", "federate", t->federate, "require_tls",
                  t->require_tls, "min_tls", tls_text(t->min_tls), "auth",
                  t->auth == POLICY_REQUIRE_CERTIFICATE ? "certificate" : "dialback", "dnssec",
                  t->dnssec, "dane", t->dane, "max_streams", (int)t->max_streams));
    if (r->route_checked)
        json_object_set_new(doc, "route", decision_json(&r->route));
    if (r->decisive != &r->route)
        json_object_set_new(doc, "stream", decision_json(&r->stream));
    if (r->decisive == &r->stanza)
        json_object_set_new(doc, "stanza", decision_json(&r->stanza));
    json_object_set_new(doc, "decision", decision_json(r->decisive));
    json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
    fputc('\n', stdout);
    json_decref(doc);
}

/* --- command line -------------------------------------------------------------------------- */

static int
parse_args(int argc, char **argv, struct check_args *a)
{
    static const struct option longopts[] = {
        {"from", required_argument, NULL, 'f'},
        {"to", required_argument, NULL, 'T'},
        {"kind", required_argument, NULL, 'k'},
        {"type", required_argument, NULL, 'y'},
        {"ns", required_argument, NULL, 'n'},
        {"size", required_argument, NULL, 's'},
        {"auth", required_argument, NULL, 'a'},
        {"tls", required_argument, NULL, 'L'},
        {"no-dnssec", no_argument, NULL, 'D'},
        {"no-dane", no_argument, NULL, 'N'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char *end;
    int ch;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            a->conf_path = optarg;
            break;
        case 'f':
            a->from = optarg;
            break;
        case 'T':
            a->to = optarg;
            break;
        case 'k':
            if (strcmp(optarg, "message") == 0)
                a->kind = POLICY_KIND_MESSAGE;
            else if (strcmp(optarg, "presence") == 0)
                a->kind = POLICY_KIND_PRESENCE;
            else if (strcmp(optarg, "iq") == 0)
                a->kind = POLICY_KIND_IQ;
            else
                return -1;
            break;
        case 'y':
            a->type = optarg;
            break;
        case 'n':
            if (a->nns == POLICY_STANZA_NS)
                return -1;
            a->ns[a->nns++] = optarg;
            break;
        case 's':
            a->size = strtoul(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || *optarg == '-')
                return -1;
            break;
        case 'a':
            if (strcmp(optarg, "cert") == 0)
                a->auth = POLICY_AUTH_SASL_EXTERNAL;
            else if (strcmp(optarg, "dialback") == 0)
                a->auth = POLICY_AUTH_DIALBACK;
            else
                return -1;
            break;
        case 'L':
            if (strcmp(optarg, "1.2") == 0)
                a->tls = TLS12;
            else if (strcmp(optarg, "1.3") == 0)
                a->tls = TLS13;
            else if (strcmp(optarg, "none") == 0)
                a->tls = 0;
            else
                return -1;
            break;
        case 'D':
            a->no_dnssec = true;
            break;
        case 'N':
            a->no_dane = true;
            break;
        case 'j':
            a->json = true;
            break;
        case 'h':
            check_usage(stdout);
            exit(0);
        default:
            return -1;
        }
    }
    if (optind != argc || a->conf_path == NULL || a->from == NULL || a->to == NULL)
        return -1;
    return 0;
}

int
cmd_policy_check(int argc, char **argv)
{
    struct check_args a = {
        .kind = POLICY_KIND_MESSAGE, .size = 100, .tls = TLS13, .auth = POLICY_AUTH_SASL_EXTERNAL};
    struct check_conf c = {0};
    struct check_result r;
    char from[DOMAINLIST_NAME_MAX], to[DOMAINLIST_NAME_MAX], err[1024];
    bool from_hosted, to_hosted;
    int rc;

    if (parse_args(argc, argv, &a) == -1) {
        check_usage(stderr);
        return EXIT_USAGE;
    }
    if (jid_domain(a.from, from, sizeof(from)) == -1 || jid_domain(a.to, to, sizeof(to)) == -1) {
        fprintf(stderr, "s2sproxy policy-check: \"%s\" is not a valid JID\n",
                jid_domain(a.from, from, sizeof(from)) == -1 ? a.from : a.to);
        return EXIT_USAGE;
    }
    /* The log action writes to the log; keep stdout the answer and stderr quiet. */
    log_set_level(LOG_LVL_WARN);
    if (load_conf(a.conf_path, &c, err, sizeof(err)) == -1) {
        fprintf(stderr, "%s\n", err);
        check_conf_free(&c);
        return EXIT_USAGE;
    }
    from_hosted = hosted(&c, from);
    to_hosted = hosted(&c, to);
    if (from_hosted == to_hosted) {
        fprintf(stderr, "s2sproxy policy-check: %s: exactly one of %s and %s must be hosted\n",
                a.conf_path, from, to);
        check_conf_free(&c);
        return EXIT_USAGE;
    }
    memset(&r, 0, sizeof(r));
    r.dir = from_hosted ? POLICY_OUT : POLICY_IN;
    snprintf(r.local, sizeof(r.local), "%s", from_hosted ? from : to);
    snprintf(r.remote, sizeof(r.remote), "%s", from_hosted ? to : from);
    run_checks(&a, c.policy, &r);
    if (a.json)
        print_json(&r);
    else
        print_text(&r);
    rc = passes(r.decisive) ? 0 : 1;
    check_conf_free(&c);
    return rc;
}
