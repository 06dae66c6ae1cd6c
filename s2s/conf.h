/*
 * The configuration file (libconfig syntax), loaded and validated in one go.
 *
 * conf_load() either returns a complete struct conf, every value checked and every
 * default filled in, or NULL with one error line that names the file, the line and the
 * full key ("FILE:LINE: KEY: what is wrong"). A struct conf never changes once loaded: a
 * reload loads a new one and swaps it in (see s2s/daemon.c). Relative file names in the
 * configuration are made absolute against the directory of the configuration file, as
 * are @include paths.
 */
#ifndef S2S_CONF_H
#define S2S_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "s2s/log.h"

struct tls_settings;
struct tls_host;
struct policy;

/* Default path of the configuration file (s2sproxy -c overrides it). */
#define CONF_DEFAULT_PATH "/etc/s2sproxy/s2sproxy.conf"

struct conf_log {
    enum log_level level; /* "log.level", default info */
    bool syslog;          /* "log.syslog", default false (stderr) */
};

/*
 * The XEP-0114 component link to the local server for one hosted domain
 * ("hosts[].component"). name is the component's JID as the local server knows it
 * (e.g. "s2s.example.org"); it defaults to the hosted domain itself.
 */
struct conf_component {
    char *host;    /* numeric address or name of the local server, default "127.0.0.1" */
    uint16_t port; /* default 5347 */
    char *secret;  /* shared secret of the handshake (required) */
    char *name;    /* component JID */
};

/* One hosted domain ("hosts" list): lower-case A-label DNS name, absolute PEM paths. */
struct conf_host {
    char *domain;
    char *certificate;
    char *key;
    struct conf_component *component; /* NULL when not configured */
};

/* A listening address: "127.0.0.1:5269", "[::1]:5269", "0.0.0.0" (default port). */
struct conf_addr {
    char *text; /* as written */
    struct sockaddr_storage sa;
    socklen_t salen;
};

struct conf_listen {
    struct conf_addr *starttls; /* default 0.0.0.0:5269 and [::]:5269 */
    size_t nstarttls;
    struct conf_addr *direct_tls; /* XEP-0368; default none */
    size_t ndirect_tls;
};

struct conf_dialback {
    bool enabled;      /* default true */
    char *secret;      /* from the file, or generated and stored there on first start */
    char *secret_file; /* absolute path; default "dialback.secret" beside the conf */
};

/*
 * How a remote domain must authenticate (security.default and the per-domain lists):
 *   DEFAULT   certificate preferred, dialback accepted on TLS streams;
 *   SECURE    a valid certificate is required (no dialback without one);
 *   INSECURE  dialback accepted even when the certificate is not valid.
 */
enum conf_sec_level {
    CONF_SEC_DEFAULT = 0,
    CONF_SEC_SECURE,
    CONF_SEC_INSECURE,
};

struct conf_security {
    bool require_tls; /* default true, both directions */
    enum conf_sec_level level;
    char **secure_domains;
    size_t nsecure_domains;
    char **insecure_domains;
    size_t ninsecure_domains;
};

struct conf_tls {
    int min_version;    /* TLS1_2_VERSION (0x0303, default) or TLS1_3_VERSION (0x0304) */
    char *ca_file;      /* absolute path, NULL: system store */
    char *ca_path;      /* absolute path, NULL: system store */
    char *ciphers;      /* NULL: OpenSSL defaults */
    char *ciphersuites; /* NULL: OpenSSL defaults */
};

/* Sizes the XML stream parser enforces on every peer (DESIGN.md invariant 3). */
struct conf_limits {
    size_t stanza_bytes;         /* one stanza, serialized; 1024..16 MiB, default 256 KiB */
    unsigned xml_depth;          /* element nesting, stream element = 1; 8..1024, default 32 */
    unsigned xml_attributes;     /* attributes per element; 8..1024, default 64 */
    size_t stream_header_bytes;  /* the <stream:stream> open tag; 512..65536, default 4096 */
    size_t queue_stanzas;        /* stanzas waiting per route; 1..1000000, default 1000 */
    size_t queue_bytes;          /* bytes waiting per route; 4096..1 GiB, default 4 MiB */
    unsigned connections_per_ip; /* inbound streams per remote address; 1..65535, default 16 */
    size_t unauth_stanza_bytes;  /* element before authentication; 1024..stanza_bytes, 16 KiB */
    unsigned dialback_pairs;     /* domain pairs per stream; 1..4096, default 64 */
};

/* Seconds (the file takes integers or decimals). */
struct conf_timeouts {
    double connect;       /* TCP connect per address; 0.1..300, default 10 */
    double tls_handshake; /* 0.1..300, default 15 */
    double idle;          /* stream without traffic is closed; 1..86400, default 600 */
    double authenticate;  /* inbound stream must authenticate within; 1..600, default 30 */
    double route_idle;    /* unused outbound stream is closed; 1..86400, default 600 */
    double keepalive;     /* whitespace keepalive interval; 1..3600, default 60 */
    double backoff_min;   /* first retry delay per remote domain; 0.1..3600, default 5 */
    double backoff_max;   /* largest retry delay; backoff_min..86400, default 300 */
    double queue;         /* a stanza waits this long for a route; 1..3600, default 60 */
    double ping;          /* XEP-0199 ping after this much staleness; 0 (off) or 1..86400, 60 */
    double ping_answer;   /* a ping unanswered this long closes the stream; 1..3600, 15 */
};

enum conf_dns_backend {
    CONF_DNS_CARES = 0,
    CONF_DNS_UNBOUND,
};

/* A DNS server: a numeric IPv4/IPv6 address and a port (53 when not given). */
struct conf_dns_server {
    char *address; /* numeric, no brackets: "127.0.0.1", "::1" */
    uint16_t port;
    int family; /* AF_INET or AF_INET6 */
    struct sockaddr_storage sa;
    socklen_t salen;
};

/* An unbound option as ub_ctx_set_option() takes it: name with its colon, then value. */
struct conf_dns_option {
    char *name; /* "local-zone:" */
    char *value;
};

struct conf_dns {
    enum conf_dns_backend backend; /* default c-ares */
    struct conf_dns_server *servers;
    size_t nservers;         /* 0: /etc/resolv.conf */
    char *trust_anchor_file; /* absolute path or NULL; unbound only */
    struct conf_dns_option *unbound_options;
    size_t nunbound_options;
    double timeout;         /* seconds per query; 0.1..60, default 5 */
    uint32_t cache_min_ttl; /* 0..604800, default 0 */
    uint32_t cache_max_ttl; /* cache_min_ttl..604800, default 86400 */
};

/* The admin socket (s2s/ctl.c): mode 0600, owned by the daemon's user. */
struct conf_ctl {
    char *socket; /* absolute path, default "/run/s2sproxy/ctl.sock"; "" (NULL): off */
};

/* The Prometheus endpoint (s2s/metrics.c). */
struct conf_metrics {
    struct conf_addr *listen; /* NULL: off (default); "127.0.0.1:9269" (port required) */
    char **domains;           /* remote domains that always get their own labels */
    size_t ndomains;
    unsigned top_domains; /* plus the N busiest others; 0..1000, default 20 */
};

/* The JSON event log (s2s/eventlog.c). */
struct conf_eventlog {
    char *file;  /* absolute path, NULL: off; reopened on reload (SIGHUP) */
    bool syslog; /* one JSON line per event to syslog (daemon facility) */
};

struct conf {
    char *path; /* as given to conf_load() */
    char *dir;  /* absolute directory of path: base of relative file names */
    struct conf_log log;
    struct conf_host *hosts; /* at least one; hosts[0] is the TLS default */
    size_t nhosts;
    struct conf_tls tls;
    struct conf_limits limits;
    struct conf_timeouts timeouts;
    struct conf_dns dns;
    struct conf_listen listen;
    struct conf_dialback dialback;
    struct conf_security security;
    /* Never NULL after conf_load(): the "policy" section, or the default policy. Owned by
     * the conf (policy_ref() to keep it longer). */
    struct policy *policy;
    struct conf_ctl ctl;
    struct conf_metrics metrics;
    struct conf_eventlog eventlog;

    /* conf_tls_settings() hands these out; they point into the fields above. */
    struct tls_settings *tls_settings;
    struct tls_host *tls_hosts;
};

/*
 * Loads and validates path. On failure returns NULL and writes one line to err, e.g.
 * "/etc/s2sproxy.conf:12: tls.min_version: expected "1.2" or "1.3", got "1.1"".
 */
struct conf *conf_load(const char *path, char *err, size_t errlen);
void conf_free(struct conf *conf);

/* The host entry for domain (lower-case), or NULL when we do not host it. */
const struct conf_host *conf_host_find(const struct conf *conf, const char *domain);

/* The security level that applies to remote domain (lower-case). */
enum conf_sec_level conf_security_level(const struct conf *conf, const char *domain);
const char *conf_sec_level_name(enum conf_sec_level level);

/*
 * Reads conf->dialback.secret from secret_file, or when the file does not exist,
 * generates one and writes it there (mode 0600). Does nothing when a secret is set in the
 * configuration or dialback is disabled. 0, or -1 with err set.
 */
int conf_dialback_secret_load(struct conf *conf, char *err, size_t errlen);

/*
 * What tls_ctx_new() takes, derived from conf: *settings and the hosts array (nhosts =
 * conf->nhosts) stay valid as long as conf does.
 */
void conf_tls_settings(const struct conf *conf, const struct tls_settings **settings,
                       const struct tls_host **hosts);

#endif
