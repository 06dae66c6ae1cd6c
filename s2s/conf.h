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

/* Default path of the configuration file (s2sproxy -c overrides it). */
#define CONF_DEFAULT_PATH "/etc/s2sproxy/s2sproxy.conf"

struct conf_log {
    enum log_level level; /* "log.level", default info */
    bool syslog;          /* "log.syslog", default false (stderr) */
};

/* One hosted domain ("hosts" list): lower-case A-label DNS name, absolute PEM paths. */
struct conf_host {
    char *domain;
    char *certificate;
    char *key;
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
    size_t stanza_bytes;        /* one stanza, serialized; 1024..16 MiB, default 256 KiB */
    unsigned xml_depth;         /* element nesting, stream element = 1; 8..1024, default 32 */
    unsigned xml_attributes;    /* attributes per element; 8..1024, default 64 */
    size_t stream_header_bytes; /* the <stream:stream> open tag; 512..65536, default 4096 */
};

/* Seconds (the file takes integers or decimals). */
struct conf_timeouts {
    double connect;       /* TCP connect per address; 0.1..300, default 10 */
    double tls_handshake; /* 0.1..300, default 15 */
    double idle;          /* stream without traffic is closed; 1..86400, default 600 */
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

/*
 * What tls_ctx_new() takes, derived from conf: *settings and the hosts array (nhosts =
 * conf->nhosts) stay valid as long as conf does.
 */
void conf_tls_settings(const struct conf *conf, const struct tls_settings **settings,
                       const struct tls_host **hosts);

#endif
