/*
 * Configuration loading: libconfig parses, this file checks.
 *
 * Every setting is looked at exactly once against the schema below. Anything the schema
 * does not know is an error (a typo must not silently leave a default in place), and
 * every error names the file, the line and the full key, taken from libconfig's
 * config_setting_source_file()/config_setting_source_line().
 */
#include "s2s/conf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <libconfig.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/ssl.h>
#include <unbound.h>

#include "dialback/key.h"
#include "s2s/cfgread.h"
#include "s2s/policy.h"
#include "s2s/policy_conf.h"
#include "s2s/tls.h"

#define MIB (1024 * 1024)

/* State of one conf_load() call. */
struct loader {
    struct cfgread cr; /* mainfile: the path as given; dir, showdir: the two below */
    char *dir;         /* absolute directory of path */
    char *showdir;     /* dirname(path) as given: included files are shown under it */
    struct conf *conf;
};

static const char *const root_keys[] = {"log",     "hosts",    "tls",      "limits",   "timeouts",
                                        "dns",     "listen",   "dialback", "security", "ctl",
                                        "metrics", "eventlog", "policy",   NULL};
static const char *const ctl_keys[] = {"socket", NULL};
static const char *const metrics_keys[] = {"listen", "domains", "top_domains", NULL};
static const char *const eventlog_keys[] = {"file", "syslog", NULL};
static const char *const log_keys[] = {"level", "syslog", NULL};
static const char *const host_keys[] = {"domain", "certificate", "key", "component", NULL};
static const char *const component_keys[] = {"host", "port", "secret", "name", NULL};
static const char *const listen_keys[] = {"starttls", "direct_tls", NULL};
static const char *const dialback_keys[] = {"enabled", "secret", "secret_file", NULL};
static const char *const security_keys[] = {"require_tls", "default", "secure_domains",
                                            "insecure_domains", NULL};
static const char *const tls_keys[] = {"min_version", "ca_file",      "ca_path",
                                       "ciphers",     "ciphersuites", NULL};
static const char *const limits_keys[] = {
    "stanza_bytes",   "xml_depth",   "xml_attributes",     "stream_header_bytes",
    "queue_stanzas",  "queue_bytes", "connections_per_ip", "unauth_stanza_bytes",
    "dialback_pairs", NULL};
static const char *const timeouts_keys[] = {
    "connect",     "tls_handshake", "idle",  "authenticate", "route_idle",  "keepalive",
    "backoff_min", "backoff_max",   "queue", "ping",         "ping_answer", NULL};
static const char *const dns_keys[] = {"backend",         "servers", "trust_anchor_file",
                                       "unbound_options", "timeout", "cache_min_ttl",
                                       "cache_max_ttl",   NULL};

/* --- error messages ------------------------------------------------------------------ */

/* Reports a missing mandatory member name of group g, at g's line. */
static int
conf_missing(struct loader *l, const config_setting_t *g, const char *name, const char *what)
{
    char file[PATH_MAX], key[256] = "";

    cfg_source_file(&l->cr, config_setting_source_file(g), file, sizeof(file));
    cfg_key_path(g, key, sizeof(key));
    if (config_setting_source_line(g) == 0)
        snprintf(l->cr.err, l->cr.errlen, "%s: %s: missing (%s)", file, name, what);
    else
        snprintf(l->cr.err, l->cr.errlen, "%s:%u: %s.%s: missing (%s)", file,
                 config_setting_source_line(g), key, name, what);
    return -1;
}

/* --- schema and typed getters -------------------------------------------------------- */

/* An optional section: *out = NULL when absent; its members are checked against keys. */
static int
get_group(struct loader *l, const config_setting_t *parent, const char *name,
          const char *const *keys, const config_setting_t **out)
{
    const config_setting_t *s = config_setting_get_member(parent, name);

    *out = NULL;
    if (s == NULL)
        return 0;
    if (!config_setting_is_group(s))
        return cfg_type_error(&l->cr, s, "a group { }");
    *out = s;
    return cfg_check_keys(&l->cr, s, keys);
}

/* The getters of s2s/cfgread.h, with the default conf.c passes explicitly. */
static int
get_string(struct loader *l, const config_setting_t *g, const char *name, const char *def,
           const char **out, const config_setting_t **where)
{
    *out = def;
    return cfg_get_string(&l->cr, g, name, out, where);
}

static int
get_bool(struct loader *l, const config_setting_t *g, const char *name, bool def, bool *out)
{
    *out = def;
    return cfg_get_bool(&l->cr, g, name, out);
}

static int
get_int(struct loader *l, const config_setting_t *g, const char *name, long long def, long long min,
        long long max, long long *out)
{
    *out = def;
    return cfg_get_int(&l->cr, g, name, min, max, out);
}

/* Seconds: an integer or a decimal number in [min, max]. */
static int
get_seconds(struct loader *l, const config_setting_t *g, const char *name, double def, double min,
            double max, double *out)
{
    *out = def;
    return cfg_get_number(&l->cr, g, name, min, max, "seconds", out);
}

/* --- values ---------------------------------------------------------------------------- */

static char *
xstrdup(const char *s)
{
    char *p = strdup(s);

    if (p == NULL)
        fatal("strdup");
    return p;
}

/* NULL for an empty string: "" means "use the default" throughout the file. */
static char *
strdup_or_null(const char *s)
{
    return s == NULL || *s == '\0' ? NULL : xstrdup(s);
}

/*
 * A file option: resolved and checked now, so that a missing key file is reported with
 * its line in the configuration instead of as a TLS error later. dir selects a
 * directory (tls.ca_path) instead of a regular file.
 */
static int
get_path(struct loader *l, const config_setting_t *g, const char *name, bool required, bool dir,
         char **out)
{
    const config_setting_t *s;
    const char *v;
    struct stat st;
    char *p;

    *out = NULL;
    if (get_string(l, g, name, NULL, &v, &s) == -1)
        return -1;
    if (v == NULL || *v == '\0') {
        if (!required)
            return 0;
        if (s != NULL)
            return cfg_error(&l->cr, s, "must not be empty");
        return conf_missing(l, g, name, "a file name is required");
    }
    p = cfg_path_resolve(&l->cr, v);
    if (stat(p, &st) == -1)
        goto unreadable;
    if (dir != S_ISDIR(st.st_mode)) {
        cfg_error(&l->cr, s, "\"%s\" is not a %s", p, dir ? "directory" : "regular file");
        free(p);
        return -1;
    }
    if (access(p, dir ? R_OK | X_OK : R_OK) == -1)
        goto unreadable;
    *out = p;
    return 0;

unreadable:
    cfg_error(&l->cr, s, "cannot read \"%s\": %s", p, strerror(errno));
    free(p);
    return -1;
}

/*
 * A hosted domain: an XMPP domainpart that must also be a DNS name we can present a
 * certificate for. Lower-cased in place, one final dot stripped (RFC 7622 §3.2). Returns
 * NULL when valid, else why not.
 */
static const char *
domain_check(char *d, char *why, size_t whylen)
{
    size_t len = strlen(d), label = 0;
    struct in_addr a4;

    if (len > 0 && d[len - 1] == '.')
        d[--len] = '\0';
    if (len == 0)
        return "empty";
    if (len > 253)
        return "longer than 253 characters";
    if (inet_pton(AF_INET, d, &a4) == 1)
        return "an IP address, not a DNS name";
    for (size_t i = 0; i <= len; i++) {
        unsigned char c = (unsigned char)d[i];

        if (c == '.' || c == '\0') {
            if (label == 0)
                return "empty label";
            if (d[i - 1] == '-')
                return "a label ends with '-'";
            label = 0;
            continue;
        }
        if (c >= 0x80)
            return "not ASCII: write an internationalized name in its A-label (xn--) form";
        c = (unsigned char)tolower(c);
        d[i] = (char)c;
        if (!isalnum(c) && c != '-') {
            snprintf(why, whylen, "character '%c' is not allowed in a DNS name", c);
            return why;
        }
        if (c == '-' && label == 0)
            return "a label starts with '-'";
        if (++label > 63)
            return "a label is longer than 63 characters";
    }
    return NULL;
}

/*
 * A DNS server: "192.0.2.1", "192.0.2.1:5353", "2001:db8::1", "[2001:db8::1]:5353".
 * Numeric only: the resolver cannot resolve the name of its own server. Returns NULL
 * when valid, else why not.
 */
static const char *
server_parse(const char *text, struct conf_dns_server *srv, uint16_t defport, bool zero_ok)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *port = NULL, *colon = strchr(text, ':');
    size_t hlen;
    struct sockaddr_in *sin = (struct sockaddr_in *)&srv->sa;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&srv->sa;

    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (end == NULL)
            return "missing ']'";
        if (end[1] != '\0' && end[1] != ':')
            return "expected ':PORT' after ']'";
        if (end[1] == ':')
            port = end + 2;
        text++;
        hlen = (size_t)(end - text);
    } else if (colon != NULL && strchr(colon + 1, ':') == NULL) {
        hlen = (size_t)(colon - text); /* one colon: IPv4 with a port */
        port = colon + 1;
    } else {
        hlen = strlen(text); /* no colon, or a bare IPv6 address */
    }
    if (hlen == 0 || hlen >= sizeof(host))
        return "expected a numeric IP address";
    memcpy(host, text, hlen);
    host[hlen] = '\0';

    memset(&srv->sa, 0, sizeof(srv->sa));
    srv->port = defport;
    if (port != NULL) {
        char *end;
        unsigned long p;

        errno = 0;
        p = strtoul(port, &end, 10);
        if (*port == '\0' || !isdigit((unsigned char)*port) || *end != '\0' || errno != 0 ||
            (p == 0 && !zero_ok) || p > 65535)
            return zero_ok ? "port must be 0..65535" : "port must be 1..65535";
        srv->port = (uint16_t)p;
    }
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        srv->family = AF_INET;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(srv->port);
        srv->salen = sizeof(*sin);
    } else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        srv->family = AF_INET6;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(srv->port);
        srv->salen = sizeof(*sin6);
    } else {
        return "expected a numeric IP address (\"192.0.2.1:53\", \"[2001:db8::1]:53\")";
    }
    srv->address = xstrdup(host);
    return NULL;
}

/* --- sections -------------------------------------------------------------------------- */

static int
load_log(struct loader *l, const config_setting_t *root)
{
    const config_setting_t *g, *s;
    const char *level;
    int lvl;

    if (get_group(l, root, "log", log_keys, &g) == -1 ||
        get_string(l, g, "level", "info", &level, &s) == -1 ||
        get_bool(l, g, "syslog", false, &l->conf->log.syslog) == -1)
        return -1;
    if ((lvl = log_level_parse(level)) == -1)
        return cfg_error(
            &l->cr, s, "expected \"error\", \"warning\", \"info\" or \"debug\", got \"%s\"", level);
    l->conf->log.level = (enum log_level)lvl;
    return 0;
}

/* hosts[].component: the XEP-0114 link to the local server (s2s/local.c). */
static int
load_component(struct loader *l, const config_setting_t *hg, struct conf_host *h)
{
    const config_setting_t *g, *s_name, *s_secret;
    const char *host, *secret, *name, *bad;
    long long port;
    char why[128], *n;

    if (get_group(l, hg, "component", component_keys, &g) == -1)
        return -1;
    if (g == NULL)
        return 0;
    if (get_string(l, g, "host", "127.0.0.1", &host, NULL) == -1 ||
        get_int(l, g, "port", 5347, 1, 65535, &port) == -1 ||
        get_string(l, g, "secret", NULL, &secret, &s_secret) == -1 ||
        get_string(l, g, "name", h->domain, &name, &s_name) == -1)
        return -1;
    if (secret == NULL)
        return conf_missing(l, g, "secret", "the component's shared secret");
    if (*secret == '\0')
        return cfg_error(&l->cr, s_secret, "must not be empty");
    n = xstrdup(name);
    if ((bad = domain_check(n, why, sizeof(why))) != NULL) {
        cfg_error(&l->cr, s_name, "\"%s\" is not a valid component name: %s", name, bad);
        free(n);
        return -1;
    }
    if ((h->component = calloc(1, sizeof(*h->component))) == NULL)
        fatal("calloc");
    h->component->host = xstrdup(host);
    h->component->port = (uint16_t)port;
    h->component->secret = xstrdup(secret);
    h->component->name = n;
    return 0;
}

static int
load_host(struct loader *l, const config_setting_t *g, struct conf_host *h)
{
    const config_setting_t *s;
    const char *domain, *bad;
    char why[128];

    if (!config_setting_is_group(g))
        return cfg_type_error(&l->cr, g, "a group { domain = ...; certificate = ...; key = ...; }");
    if (cfg_check_keys(&l->cr, g, host_keys) == -1 ||
        get_string(l, g, "domain", NULL, &domain, &s) == -1)
        return -1;
    if (domain == NULL)
        return conf_missing(l, g, "domain", "the domain this host serves");
    h->domain = xstrdup(domain);
    if ((bad = domain_check(h->domain, why, sizeof(why))) != NULL)
        return cfg_error(&l->cr, s, "\"%s\" is not a valid domain: %s", domain, bad);
    for (struct conf_host *o = l->conf->hosts; o < h; o++)
        if (strcmp(o->domain, h->domain) == 0)
            return cfg_error(&l->cr, s, "duplicate domain \"%s\"", h->domain);
    if (get_path(l, g, "certificate", true, false, &h->certificate) == -1 ||
        get_path(l, g, "key", true, false, &h->key) == -1)
        return -1;
    return load_component(l, g, h);
}

static int
load_hosts(struct loader *l, const config_setting_t *root)
{
    const config_setting_t *list = config_setting_get_member(root, "hosts");
    struct conf *c = l->conf;
    int n;

    if (list == NULL)
        return conf_missing(l, root, "hosts", "at least one hosted domain is required");
    if (!config_setting_is_list(list))
        return cfg_type_error(&l->cr, list, "a list of hosts ( { domain = ...; ... }, ... )");
    if ((n = config_setting_length(list)) == 0)
        return cfg_error(&l->cr, list, "at least one hosted domain is required");
    if ((c->hosts = calloc((size_t)n, sizeof(*c->hosts))) == NULL)
        fatal("calloc");
    for (int i = 0; i < n; i++) {
        c->nhosts++; /* counted first: conf_free() frees what was filled in */
        if (load_host(l, config_setting_get_elem(list, (unsigned)i), &c->hosts[i]) == -1)
            return -1;
    }
    return 0;
}

/*
 * Cipher strings are checked against this OpenSSL now, so that a typo is reported with
 * its line rather than as a TLS context failure.
 */
static int
check_ciphers(struct loader *l, const config_setting_t *s, const char *v, bool suites)
{
    SSL_CTX *ctx;
    int ok;

    if (v == NULL || *v == '\0')
        return 0;
    if ((ctx = SSL_CTX_new(TLS_method())) == NULL)
        fatalx("SSL_CTX_new failed");
    ok = suites ? SSL_CTX_set_ciphersuites(ctx, v) : SSL_CTX_set_cipher_list(ctx, v);
    SSL_CTX_free(ctx);
    if (!ok)
        return cfg_error(&l->cr, s, "OpenSSL accepts none of \"%s\"", v);
    return 0;
}

static int
load_tls(struct loader *l, const config_setting_t *root)
{
    struct conf_tls *t = &l->conf->tls;
    const config_setting_t *g, *s_ver, *s_ciphers, *s_suites;
    const char *ver, *ciphers, *suites;

    if (get_group(l, root, "tls", tls_keys, &g) == -1 ||
        get_string(l, g, "min_version", "1.2", &ver, &s_ver) == -1 ||
        get_path(l, g, "ca_file", false, false, &t->ca_file) == -1 ||
        get_path(l, g, "ca_path", false, true, &t->ca_path) == -1 ||
        get_string(l, g, "ciphers", "", &ciphers, &s_ciphers) == -1 ||
        get_string(l, g, "ciphersuites", "", &suites, &s_suites) == -1)
        return -1;
    /* RFC 7590 §3.1: nothing older than TLS 1.2. */
    if (strcmp(ver, "1.2") == 0)
        t->min_version = TLS1_2_VERSION;
    else if (strcmp(ver, "1.3") == 0)
        t->min_version = TLS1_3_VERSION;
    else
        return cfg_error(&l->cr, s_ver, "expected \"1.2\" or \"1.3\", got \"%s\"", ver);
    if (check_ciphers(l, s_ciphers, ciphers, false) == -1 ||
        check_ciphers(l, s_suites, suites, true) == -1)
        return -1;
    t->ciphers = strdup_or_null(ciphers);
    t->ciphersuites = strdup_or_null(suites);
    return 0;
}

static int
load_limits(struct loader *l, const config_setting_t *root)
{
    struct conf_limits *lim = &l->conf->limits;
    const config_setting_t *g;
    long long stanza, depth, attrs, header, qn, qb, perip, unauth, pairs;

    if (get_group(l, root, "limits", limits_keys, &g) == -1 ||
        get_int(l, g, "stanza_bytes", 256 * 1024, 1024, 16 * MIB, &stanza) == -1 ||
        get_int(l, g, "xml_depth", 32, 8, 1024, &depth) == -1 ||
        get_int(l, g, "xml_attributes", 64, 8, 1024, &attrs) == -1 ||
        get_int(l, g, "stream_header_bytes", 4096, 512, 65536, &header) == -1 ||
        get_int(l, g, "queue_stanzas", 1000, 1, 1000000, &qn) == -1 ||
        get_int(l, g, "queue_bytes", 4 * MIB, 4096, 1024LL * MIB, &qb) == -1 ||
        get_int(l, g, "connections_per_ip", 16, 1, 65535, &perip) == -1 ||
        get_int(l, g, "unauth_stanza_bytes", 16384, 1024, stanza, &unauth) == -1 ||
        get_int(l, g, "dialback_pairs", 64, 1, 4096, &pairs) == -1)
        return -1;
    lim->queue_stanzas = (size_t)qn;
    lim->queue_bytes = (size_t)qb;
    lim->connections_per_ip = (unsigned)perip;
    lim->unauth_stanza_bytes = (size_t)unauth;
    lim->dialback_pairs = (unsigned)pairs;
    lim->stanza_bytes = (size_t)stanza;
    lim->xml_depth = (unsigned)depth;
    lim->xml_attributes = (unsigned)attrs;
    lim->stream_header_bytes = (size_t)header;
    return 0;
}

static int
load_timeouts(struct loader *l, const config_setting_t *root)
{
    struct conf_timeouts *t = &l->conf->timeouts;
    const config_setting_t *g;

    if (get_group(l, root, "timeouts", timeouts_keys, &g) == -1 ||
        get_seconds(l, g, "connect", 10, 0.1, 300, &t->connect) == -1 ||
        get_seconds(l, g, "tls_handshake", 15, 0.1, 300, &t->tls_handshake) == -1 ||
        get_seconds(l, g, "idle", 600, 1, 86400, &t->idle) == -1 ||
        get_seconds(l, g, "authenticate", 30, 1, 600, &t->authenticate) == -1 ||
        get_seconds(l, g, "route_idle", 600, 1, 86400, &t->route_idle) == -1 ||
        get_seconds(l, g, "keepalive", 60, 1, 3600, &t->keepalive) == -1 ||
        get_seconds(l, g, "backoff_min", 5, 0.1, 3600, &t->backoff_min) == -1 ||
        get_seconds(l, g, "backoff_max", 300, t->backoff_min, 86400, &t->backoff_max) == -1 ||
        get_seconds(l, g, "queue", 60, 1, 3600, &t->queue) == -1 ||
        get_seconds(l, g, "ping", 60, 0, 86400, &t->ping) == -1 ||
        get_seconds(l, g, "ping_answer", 15, 1, 3600, &t->ping_answer) == -1)
        return -1;
    if (t->ping > 0 && t->ping < 1)
        return cfg_error(&l->cr, config_setting_get_member(g, "ping"),
                         "%g: use 0 (off) or 1..86400 seconds", t->ping);
    return 0;
}

static int
load_dns_servers(struct loader *l, const config_setting_t *g)
{
    struct conf_dns *d = &l->conf->dns;
    const config_setting_t *list = g != NULL ? config_setting_get_member(g, "servers") : NULL;
    int n;

    if (list == NULL)
        return 0;
    if (!config_setting_is_array(list) && !config_setting_is_list(list))
        return cfg_type_error(&l->cr, list, "an array of addresses [ \"127.0.0.1:53\", ... ]");
    if ((n = config_setting_length(list)) == 0)
        return 0;
    if ((d->servers = calloc((size_t)n, sizeof(*d->servers))) == NULL)
        fatal("calloc");
    for (int i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(list, (unsigned)i);
        const char *bad;

        if (config_setting_type(s) != CONFIG_TYPE_STRING)
            return cfg_type_error(&l->cr, s, "a string");
        if ((bad = server_parse(config_setting_get_string(s), &d->servers[i], 53, false)) != NULL)
            return cfg_error(&l->cr, s, "\"%s\": %s", config_setting_get_string(s), bad);
        d->nservers++;
    }
    return 0;
}

/* One ("name:", "value") pair; the option is tried on a scratch libunbound context so
 * that a misspelt option is reported here, with its line. */
static int
load_unbound_option(struct loader *l, const config_setting_t *p, struct ub_ctx *ub,
                    struct conf_dns_option *o)
{
    const char *name, *value;
    size_t len;

    if ((!config_setting_is_list(p) && !config_setting_is_array(p)) ||
        config_setting_length(p) != 2 ||
        config_setting_type(config_setting_get_elem(p, 0)) != CONFIG_TYPE_STRING ||
        config_setting_type(config_setting_get_elem(p, 1)) != CONFIG_TYPE_STRING)
        return cfg_error(&l->cr, p, "expected a pair of strings (\"option:\", \"value\")");
    name = config_setting_get_string_elem(p, 0);
    value = config_setting_get_string_elem(p, 1);
    len = strlen(name);
    if (len < 2 || name[len - 1] != ':')
        return cfg_error(&l->cr, p, "option name \"%s\" must end with ':' (\"local-zone:\")", name);
    if (ub != NULL && ub_ctx_set_option(ub, name, value) != 0)
        return cfg_error(&l->cr, p, "libunbound refuses \"%s\" \"%s\"", name, value);
    o->name = xstrdup(name);
    o->value = xstrdup(value);
    return 0;
}

static int
load_unbound_options(struct loader *l, const config_setting_t *g)
{
    struct conf_dns *d = &l->conf->dns;
    const config_setting_t *list =
        g != NULL ? config_setting_get_member(g, "unbound_options") : NULL;
    struct ub_ctx *ub;
    int n, rc = 0;

    if (list == NULL || config_setting_length(list) == 0) {
        if (list != NULL && !config_setting_is_list(list) && !config_setting_is_array(list))
            return cfg_type_error(&l->cr, list,
                                  "a list of pairs ( (\"option:\", \"value\"), ... )");
        return 0;
    }
    if (!config_setting_is_list(list))
        return cfg_type_error(&l->cr, list, "a list of pairs ( (\"option:\", \"value\"), ... )");
    if (d->backend != CONF_DNS_UNBOUND)
        return cfg_error(&l->cr, list, "only used with backend \"unbound\"");
    n = config_setting_length(list);
    if ((d->unbound_options = calloc((size_t)n, sizeof(*d->unbound_options))) == NULL)
        fatal("calloc");
    if ((ub = ub_ctx_create()) == NULL)
        fatalx("ub_ctx_create failed");
    for (int i = 0; i < n && rc == 0; i++) {
        rc = load_unbound_option(l, config_setting_get_elem(list, (unsigned)i), ub,
                                 &d->unbound_options[i]);
        if (rc == 0)
            d->nunbound_options++;
    }
    ub_ctx_delete(ub);
    return rc;
}

static int
load_dns(struct loader *l, const config_setting_t *root)
{
    struct conf_dns *d = &l->conf->dns;
    const config_setting_t *g, *s_backend, *s_max;
    const char *backend;
    long long min_ttl, max_ttl;

    if (get_group(l, root, "dns", dns_keys, &g) == -1 ||
        get_string(l, g, "backend", "c-ares", &backend, &s_backend) == -1)
        return -1;
    if (strcmp(backend, "c-ares") == 0)
        d->backend = CONF_DNS_CARES;
    else if (strcmp(backend, "unbound") == 0)
        d->backend = CONF_DNS_UNBOUND;
    else
        return cfg_error(&l->cr, s_backend, "expected \"c-ares\" or \"unbound\", got \"%s\"",
                         backend);

    if (load_dns_servers(l, g) == -1 ||
        get_path(l, g, "trust_anchor_file", false, false, &d->trust_anchor_file) == -1)
        return -1;
    /* c-ares does not validate: a trust anchor there would only give false comfort. */
    if (d->trust_anchor_file != NULL && d->backend != CONF_DNS_UNBOUND)
        return cfg_error(&l->cr, config_setting_get_member(g, "trust_anchor_file"),
                         "only used with backend \"unbound\" (c-ares does not validate DNSSEC)");
    if (load_unbound_options(l, g) == -1 ||
        get_seconds(l, g, "timeout", 5, 0.1, 60, &d->timeout) == -1 ||
        get_int(l, g, "cache_min_ttl", 0, 0, 604800, &min_ttl) == -1 ||
        get_int(l, g, "cache_max_ttl", 86400, 0, 604800, &max_ttl) == -1)
        return -1;
    if (min_ttl > max_ttl) {
        s_max = config_setting_get_member(g, "cache_max_ttl");
        if (s_max == NULL)
            s_max = config_setting_get_member(g, "cache_min_ttl");
        return cfg_error(&l->cr, s_max, "cache_min_ttl (%lld) is greater than cache_max_ttl (%lld)",
                         min_ttl, max_ttl);
    }
    d->cache_min_ttl = (uint32_t)min_ttl;
    d->cache_max_ttl = (uint32_t)max_ttl;
    return 0;
}

/* A list of listening addresses; defaults (NULL-terminated) when the key is absent. */
static int
load_addrs(struct loader *l, const config_setting_t *g, const char *name,
           const char *const *defaults, struct conf_addr **out, size_t *nout)
{
    const config_setting_t *list = g != NULL ? config_setting_get_member(g, name) : NULL;
    size_t n = 0;

    if (list != NULL && !config_setting_is_array(list) && !config_setting_is_list(list))
        return cfg_type_error(&l->cr, list, "an array of addresses [ \"0.0.0.0:5269\", ... ]");
    if (list != NULL)
        n = (size_t)config_setting_length(list);
    else
        while (defaults[n] != NULL)
            n++;
    if (n == 0)
        return 0;
    if ((*out = calloc(n, sizeof(**out))) == NULL)
        fatal("calloc");
    for (size_t i = 0; i < n; i++) {
        const config_setting_t *s = list ? config_setting_get_elem(list, (unsigned)i) : NULL;
        struct conf_dns_server a = {0};
        const char *text = s ? config_setting_get_string(s) : defaults[i], *bad;

        if (s != NULL && config_setting_type(s) != CONFIG_TYPE_STRING)
            return cfg_type_error(&l->cr, s, "a string");
        if ((bad = server_parse(text, &a, 5269, true)) != NULL)
            return cfg_error(&l->cr, s, "\"%s\": %s", text, bad);
        (*out)[i].text = xstrdup(text);
        (*out)[i].sa = a.sa;
        (*out)[i].salen = a.salen;
        free(a.address);
        (*nout)++;
    }
    return 0;
}

static int
load_listen(struct loader *l, const config_setting_t *root)
{
    static const char *const def_starttls[] = {"0.0.0.0:5269", "[::]:5269", NULL};
    static const char *const def_direct[] = {NULL};
    struct conf_listen *li = &l->conf->listen;
    const config_setting_t *g;

    if (get_group(l, root, "listen", listen_keys, &g) == -1 ||
        load_addrs(l, g, "starttls", def_starttls, &li->starttls, &li->nstarttls) == -1 ||
        load_addrs(l, g, "direct_tls", def_direct, &li->direct_tls, &li->ndirect_tls) == -1)
        return -1;
    return 0;
}

/* A secret file holds one line; surrounding whitespace is not part of the secret. */
static int
secret_read(const char *path, char **out, char *err, size_t errlen)
{
    char buf[1024];
    size_t n;
    FILE *fp;

    if ((fp = fopen(path, "r")) == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    while (n > 0 && isspace((unsigned char)buf[n - 1]))
        buf[--n] = '\0';
    if (n < 16 || strpbrk(buf, " \t\r\n") != NULL) {
        snprintf(err, errlen, "%s: the dialback secret must be one word of 16+ characters", path);
        return -1;
    }
    *out = xstrdup(buf);
    return 0;
}

static int
load_dialback(struct loader *l, const config_setting_t *root)
{
    struct conf_dialback *d = &l->conf->dialback;
    const config_setting_t *g, *s_secret, *s_file;
    const char *secret, *file;
    char why[256];

    if (get_group(l, root, "dialback", dialback_keys, &g) == -1 ||
        get_bool(l, g, "enabled", true, &d->enabled) == -1 ||
        get_string(l, g, "secret", "", &secret, &s_secret) == -1 ||
        get_string(l, g, "secret_file", "dialback.secret", &file, &s_file) == -1)
        return -1;
    if (*secret != '\0') {
        if (strlen(secret) < 16 || strpbrk(secret, " \t\r\n") != NULL)
            return cfg_error(&l->cr, s_secret, "must be one word of at least 16 characters");
        d->secret = xstrdup(secret);
        return 0;
    }
    if (*file == '\0')
        return cfg_error(&l->cr, s_file, "must not be empty when no secret is set");
    d->secret_file = cfg_path_resolve(&l->cr, file);
    /* A missing file is made on first start (conf_dialback_secret_load); one that exists
     * must be readable now, so that a reload never runs without the secret. */
    if (access(d->secret_file, F_OK) == 0 &&
        secret_read(d->secret_file, &d->secret, why, sizeof(why)) == -1)
        return cfg_error(&l->cr, s_file != NULL ? s_file : g, "%s", why);
    return 0;
}

static int
load_domain_list(struct loader *l, const config_setting_t *g, const char *name, char ***out,
                 size_t *nout)
{
    const config_setting_t *list = g != NULL ? config_setting_get_member(g, name) : NULL;
    int n;

    if (list == NULL)
        return 0;
    if (!config_setting_is_array(list) && !config_setting_is_list(list))
        return cfg_type_error(&l->cr, list, "an array of domains [ \"example.net\", ... ]");
    if ((n = config_setting_length(list)) == 0)
        return 0;
    if ((*out = calloc((size_t)n, sizeof(**out))) == NULL)
        fatal("calloc");
    for (int i = 0; i < n; i++) {
        const config_setting_t *s = config_setting_get_elem(list, (unsigned)i);
        const char *bad;
        char why[128];

        if (config_setting_type(s) != CONFIG_TYPE_STRING)
            return cfg_type_error(&l->cr, s, "a string");
        (*out)[i] = xstrdup(config_setting_get_string(s));
        (*nout)++;
        if ((bad = domain_check((*out)[i], why, sizeof(why))) != NULL)
            return cfg_error(&l->cr, s, "\"%s\" is not a valid domain: %s",
                             config_setting_get_string(s), bad);
    }
    return 0;
}

static int
load_security(struct loader *l, const config_setting_t *root)
{
    struct conf_security *sec = &l->conf->security;
    const config_setting_t *g, *s_def;
    const char *def;

    if (get_group(l, root, "security", security_keys, &g) == -1 ||
        get_bool(l, g, "require_tls", true, &sec->require_tls) == -1 ||
        get_string(l, g, "default", "default", &def, &s_def) == -1)
        return -1;
    if (strcmp(def, "default") == 0)
        sec->level = CONF_SEC_DEFAULT;
    else if (strcmp(def, "secure") == 0)
        sec->level = CONF_SEC_SECURE;
    else if (strcmp(def, "insecure") == 0)
        sec->level = CONF_SEC_INSECURE;
    else
        return cfg_error(&l->cr, s_def,
                         "expected \"default\", \"secure\" or \"insecure\", got \"%s\"", def);
    if (load_domain_list(l, g, "secure_domains", &sec->secure_domains, &sec->nsecure_domains) ==
            -1 ||
        load_domain_list(l, g, "insecure_domains", &sec->insecure_domains,
                         &sec->ninsecure_domains) == -1)
        return -1;
    for (size_t i = 0; i < sec->nsecure_domains; i++)
        for (size_t j = 0; j < sec->ninsecure_domains; j++)
            if (strcmp(sec->secure_domains[i], sec->insecure_domains[j]) == 0)
                return cfg_error(&l->cr, config_setting_get_member(g, "insecure_domains"),
                                 "\"%s\" is also in secure_domains", sec->secure_domains[i]);
    return 0;
}

/* The tls_ctx_new() arguments, built once so that callers never copy fields around. */
static void
build_tls_view(struct conf *c)
{
    if ((c->tls_settings = calloc(1, sizeof(*c->tls_settings))) == NULL ||
        (c->tls_hosts = calloc(c->nhosts, sizeof(*c->tls_hosts))) == NULL)
        fatal("calloc");
    c->tls_settings->min_version = c->tls.min_version;
    c->tls_settings->ca_file = c->tls.ca_file;
    c->tls_settings->ca_path = c->tls.ca_path;
    c->tls_settings->ciphers = c->tls.ciphers;
    c->tls_settings->ciphersuites = c->tls.ciphersuites;
    for (size_t i = 0; i < c->nhosts; i++) {
        c->tls_hosts[i].domain = c->hosts[i].domain;
        c->tls_hosts[i].cert_file = c->hosts[i].certificate;
        c->tls_hosts[i].key_file = c->hosts[i].key;
    }
}

/* --- entry points ---------------------------------------------------------------------- */

/* Absolute directory of path (which exists), and its directory as written. */
static int
loader_dirs(struct loader *l)
{
    char *abs, *slash;

    if ((abs = realpath(l->cr.mainfile, NULL)) == NULL) {
        snprintf(l->cr.err, l->cr.errlen, "%s: cannot read: %s", l->cr.mainfile, strerror(errno));
        return -1;
    }
    slash = strrchr(abs, '/');
    if (slash == abs)
        slash[1] = '\0';
    else
        *slash = '\0';
    l->cr.dir = l->dir = abs;
    l->conf->dir = xstrdup(abs);
    if ((slash = strrchr(l->cr.mainfile, '/')) != NULL)
        l->cr.showdir = l->showdir = strndup(l->cr.mainfile, (size_t)(slash - l->cr.mainfile));
    return 0;
}

/* ctl.socket: the directory must exist (the daemon does not create it); "" is off. */
static int
load_ctl(struct loader *l, const config_setting_t *root)
{
    const config_setting_t *g, *s;
    const char *v;

    if (get_group(l, root, "ctl", ctl_keys, &g) == -1 ||
        get_string(l, g, "socket", "/run/s2sproxy/ctl.sock", &v, &s) == -1)
        return -1;
    if (*v == '\0')
        return 0;
    l->conf->ctl.socket = cfg_path_resolve(&l->cr, v);
    if (strlen(l->conf->ctl.socket) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        free(l->conf->ctl.socket);
        l->conf->ctl.socket = NULL;
        return cfg_error(&l->cr, s, "path too long for a UNIX socket");
    }
    return 0;
}

/* metrics: off unless listen is set; an explicit port is required (no default). */
static int
load_metrics(struct loader *l, const config_setting_t *root)
{
    struct conf_metrics *m = &l->conf->metrics;
    const config_setting_t *g, *s;
    struct conf_dns_server a = {0};
    const char *v, *bad;
    long long top;

    if (get_group(l, root, "metrics", metrics_keys, &g) == -1 ||
        get_string(l, g, "listen", "", &v, &s) == -1 ||
        get_int(l, g, "top_domains", 20, 0, 1000, &top) == -1 ||
        load_domain_list(l, g, "domains", &m->domains, &m->ndomains) == -1)
        return -1;
    m->top_domains = (unsigned)top;
    if (*v == '\0')
        return 0;
    if ((bad = server_parse(v, &a, 0, false)) != NULL)
        return cfg_error(&l->cr, s, "\"%s\": %s", v, bad);
    if (a.port == 0) {
        free(a.address);
        return cfg_error(&l->cr, s, "\"%s\": a port is required (\"127.0.0.1:9269\")", v);
    }
    if ((m->listen = calloc(1, sizeof(*m->listen))) == NULL)
        fatal("calloc");
    m->listen->text = xstrdup(v);
    m->listen->sa = a.sa;
    m->listen->salen = a.salen;
    free(a.address);
    return 0;
}

static int
load_eventlog(struct loader *l, const config_setting_t *root)
{
    const config_setting_t *g;
    const char *v;

    if (get_group(l, root, "eventlog", eventlog_keys, &g) == -1 ||
        get_string(l, g, "file", "", &v, NULL) == -1 ||
        get_bool(l, g, "syslog", false, &l->conf->eventlog.syslog) == -1)
        return -1;
    if (*v != '\0')
        l->conf->eventlog.file = cfg_path_resolve(&l->cr, v);
    return 0;
}

static int
parse(struct loader *l, config_t *cfg)
{
    const config_setting_t *root;
    char file[PATH_MAX];

    if (access(l->cr.mainfile, R_OK) == -1) {
        snprintf(l->cr.err, l->cr.errlen, "%s: cannot read: %s", l->cr.mainfile, strerror(errno));
        return -1;
    }
    if (loader_dirs(l) == -1)
        return -1;
    config_set_include_dir(cfg, l->dir);
    if (config_read_file(cfg, l->cr.mainfile) != CONFIG_TRUE) {
        if (config_error_type(cfg) == CONFIG_ERR_FILE_IO) {
            snprintf(l->cr.err, l->cr.errlen, "%s: cannot read", l->cr.mainfile);
            return -1;
        }
        cfg_source_file(&l->cr, config_error_file(cfg), file, sizeof(file));
        snprintf(l->cr.err, l->cr.errlen, "%s:%d: %s", file, config_error_line(cfg),
                 config_error_text(cfg));
        return -1;
    }
    root = config_root_setting(cfg);
    if (cfg_check_keys(&l->cr, root, root_keys) == -1 || load_log(l, root) == -1 ||
        load_hosts(l, root) == -1 || load_tls(l, root) == -1 || load_limits(l, root) == -1 ||
        load_timeouts(l, root) == -1 || load_dns(l, root) == -1 || load_listen(l, root) == -1 ||
        load_dialback(l, root) == -1 || load_security(l, root) == -1 || load_ctl(l, root) == -1 ||
        load_metrics(l, root) == -1 || load_eventlog(l, root) == -1)
        return -1;
    if ((l->conf->policy = policy_conf_load(config_setting_get_member(root, "policy"), l->dir,
                                            l->cr.err, l->cr.errlen)) == NULL)
        return -1;
    build_tls_view(l->conf);
    return 0;
}

struct conf *
conf_load(const char *path, char *err, size_t errlen)
{
    struct loader l = {.cr = {.mainfile = path, .err = err, .errlen = errlen, .say_found = true}};
    config_t cfg;
    int rc;

    if ((l.conf = calloc(1, sizeof(*l.conf))) == NULL)
        fatal("calloc");
    l.conf->path = xstrdup(path);
    config_init(&cfg);
    rc = parse(&l, &cfg);
    config_destroy(&cfg);
    free(l.dir);
    free(l.showdir);
    if (rc == -1) {
        conf_free(l.conf);
        return NULL;
    }
    return l.conf;
}

void
conf_free(struct conf *c)
{
    if (c == NULL)
        return;
    policy_unref(c->policy);
    for (size_t i = 0; i < c->nhosts; i++) {
        free(c->hosts[i].domain);
        free(c->hosts[i].certificate);
        free(c->hosts[i].key);
        if (c->hosts[i].component != NULL) {
            free(c->hosts[i].component->host);
            free(c->hosts[i].component->secret);
            free(c->hosts[i].component->name);
            free(c->hosts[i].component);
        }
    }
    for (size_t i = 0; i < c->listen.nstarttls; i++)
        free(c->listen.starttls[i].text);
    free(c->listen.starttls);
    for (size_t i = 0; i < c->listen.ndirect_tls; i++)
        free(c->listen.direct_tls[i].text);
    free(c->listen.direct_tls);
    free(c->dialback.secret);
    free(c->dialback.secret_file);
    for (size_t i = 0; i < c->security.nsecure_domains; i++)
        free(c->security.secure_domains[i]);
    free(c->security.secure_domains);
    for (size_t i = 0; i < c->security.ninsecure_domains; i++)
        free(c->security.insecure_domains[i]);
    free(c->security.insecure_domains);
    free(c->ctl.socket);
    if (c->metrics.listen != NULL)
        free(c->metrics.listen->text);
    free(c->metrics.listen);
    for (size_t i = 0; i < c->metrics.ndomains; i++)
        free(c->metrics.domains[i]);
    free(c->metrics.domains);
    free(c->eventlog.file);
    free(c->hosts);
    free(c->tls.ca_file);
    free(c->tls.ca_path);
    free(c->tls.ciphers);
    free(c->tls.ciphersuites);
    for (size_t i = 0; i < c->dns.nservers; i++)
        free(c->dns.servers[i].address);
    free(c->dns.servers);
    free(c->dns.trust_anchor_file);
    for (size_t i = 0; i < c->dns.nunbound_options; i++) {
        free(c->dns.unbound_options[i].name);
        free(c->dns.unbound_options[i].value);
    }
    free(c->dns.unbound_options);
    free(c->tls_settings);
    free(c->tls_hosts);
    free(c->path);
    free(c->dir);
    free(c);
}

const struct conf_host *
conf_host_find(const struct conf *c, const char *domain)
{
    for (size_t i = 0; i < c->nhosts; i++)
        if (strcmp(c->hosts[i].domain, domain) == 0)
            return &c->hosts[i];
    return NULL;
}

void
conf_tls_settings(const struct conf *c, const struct tls_settings **settings,
                  const struct tls_host **hosts)
{
    *settings = c->tls_settings;
    *hosts = c->tls_hosts;
}

enum conf_sec_level
conf_security_level(const struct conf *c, const char *domain)
{
    for (size_t i = 0; i < c->security.nsecure_domains; i++)
        if (strcasecmp(c->security.secure_domains[i], domain) == 0)
            return CONF_SEC_SECURE;
    for (size_t i = 0; i < c->security.ninsecure_domains; i++)
        if (strcasecmp(c->security.insecure_domains[i], domain) == 0)
            return CONF_SEC_INSECURE;
    return c->security.level;
}

const char *
conf_sec_level_name(enum conf_sec_level level)
{
    switch (level) {
    case CONF_SEC_SECURE:
        return "secure";
    case CONF_SEC_INSECURE:
        return "insecure";
    default:
        return "default";
    }
}

/* XEP-0185 §2 note 3: a secret generated once and kept, so keys stay valid across
 * restarts (and can be shared by several proxies serving one domain). */
int
conf_dialback_secret_load(struct conf *c, char *err, size_t errlen)
{
    char buf[DIALBACK_SECRET_HEXLEN + 1];
    int fd;

    if (!c->dialback.enabled || c->dialback.secret != NULL)
        return 0;
    if (access(c->dialback.secret_file, F_OK) == 0)
        return secret_read(c->dialback.secret_file, &c->dialback.secret, err, errlen);
    if (dialback_secret_generate(buf, sizeof(buf)) == -1) {
        snprintf(err, errlen, "cannot generate a dialback secret");
        return -1;
    }
    fd = open(c->dialback.secret_file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd == -1 || write(fd, buf, strlen(buf)) != (ssize_t)strlen(buf) ||
        write(fd, "\n", 1) != 1) {
        snprintf(err, errlen, "%s: cannot store the dialback secret: %s", c->dialback.secret_file,
                 strerror(errno));
        if (fd != -1)
            close(fd);
        return -1;
    }
    close(fd);
    c->dialback.secret = xstrdup(buf);
    log_info("dialback: generated a new secret in %s", c->dialback.secret_file);
    return 0;
}
