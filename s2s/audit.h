/*
 * `s2sproxy audit`: the facts gathered about a remote domain's federation security, and
 * the run that gathers them (DNS, then every endpoint concurrently on one event loop).
 *
 * The facts are plain data (fixed-size strings, no pointers to free) so that the grading
 * (audit_grade.h) and the report (audit_report.h) are pure functions of them and can be
 * tested from a table, without sockets.
 */
#ifndef S2S_AUDIT_H
#define S2S_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns/resolver.h"

struct event_base;
struct audit_tls;

#define AUDIT_MAX_ENDPOINTS 16 /* addresses x targets audited per domain */
#define AUDIT_MAX_NAMES     16 /* SAN entries kept per kind */
#define AUDIT_MAX_CIPHERS   96 /* accepted ciphers kept per version */
#define AUDIT_MAX_FINDINGS  32
#define AUDIT_MAX_TLSA      8
#define AUDIT_STR           256
#define AUDIT_MAX_TARGETS   DNS_MAX_TARGETS

/* TLS protocol versions probed, in this order (the index into the arrays below). */
enum audit_tlsv {
    AUDIT_TLS10 = 0,
    AUDIT_TLS11,
    AUDIT_TLS12,
    AUDIT_TLS13,
    AUDIT_NTLSV,
};

enum audit_vstate {
    AUDIT_V_UNTESTED = 0, /* not probed (no TLS at all, or the run ended first) */
    AUDIT_V_NOT_TESTABLE, /* the local OpenSSL cannot speak it: nothing is known */
    AUDIT_V_REJECTED,
    AUDIT_V_ACCEPTED,
};

/* XMPP <stream:features/> as announced (RFC 6120 §4.3.2). */
struct audit_features {
    bool seen;
    bool starttls;
    bool starttls_required;
    bool dialback;        /* urn:xmpp:features:dialback (XEP-0220 §2.4) */
    bool dialback_errors; /* its <errors/> child (XEP-0220 §2.4.2) */
    bool sasl;
    bool sasl_external;
    char sasl_mechanisms[AUDIT_STR]; /* space-separated */
    bool bidi;                       /* urn:xmpp:features:bidi (XEP-0288) */
    bool compression;                /* http://jabber.org/features/compress (XEP-0138) */
    long limit_max_bytes;            /* urn:xmpp:stream-limits:0 (XEP-0478); -1: none */
    long limit_idle_seconds;         /* -1: none */
};

struct audit_cipher {
    char name[64];  /* OpenSSL name */
    int bits;       /* symmetric strength (SSL_CIPHER_get_bits) */
    int kx_secbits; /* security bits of the key exchange; 0 anonymous; -1 unknown */
    bool fs;        /* forward secret key exchange */
    char kx[32];    /* "ECDHE X25519", "DHE 2048", "RSA" */
};

struct audit_cert {
    bool present;
    char subject[AUDIT_STR];
    char issuer[AUDIT_STR];
    char dns_names[AUDIT_MAX_NAMES][AUDIT_STR];
    size_t ndns_names;
    char srv_ids[AUDIT_MAX_NAMES][AUDIT_STR];
    size_t nsrv_ids;
    char xmpp_addrs[AUDIT_MAX_NAMES][AUDIT_STR];
    size_t nxmpp_addrs;
    char key_type[16]; /* "RSA", "EC", "ED25519" */
    int key_bits;
    int key_secbits;
    char sig_alg[64];
    char not_before[32]; /* ISO 8601 UTC */
    char not_after[32];
    long days_left; /* negative once expired */
    char sha256[65];
    int chain_len;
    bool chain_valid;             /* verifies against the CA store (PKIX) */
    char verify_error[AUDIT_STR]; /* why not */
    bool name_valid;              /* names the domain (certname_match) */
    char name_match[16];          /* certname_type_name() of the match */
};

enum audit_dane {
    AUDIT_DANE_NONE = 0, /* no TLSA records */
    AUDIT_DANE_INSECURE, /* TLSA records that are not DNSSEC-secure: unusable */
    AUDIT_DANE_MATCH,    /* secure TLSA, the chain matches one */
    AUDIT_DANE_MISMATCH, /* secure TLSA, nothing matches */
    AUDIT_DANE_BOGUS,    /* the TLSA answer failed validation */
    AUDIT_DANE_UNKNOWN,  /* not looked up, or the lookup failed */
};

enum audit_sasl_ext {
    AUDIT_EXT_NOT_TRIED = 0,
    AUDIT_EXT_NOT_OFFERED,
    AUDIT_EXT_SUCCESS,
    AUDIT_EXT_FAILURE,
    AUDIT_EXT_ERROR, /* no answer, or the stream broke */
};

/* One endpoint: an address of a target, in one TLS mode. */
struct audit_endpoint {
    char host[DNS_NAME_MAX + 1]; /* the SRV target (or the domain, fallback) */
    uint16_t port;
    enum dns_tls_mode mode;
    char cname[DNS_NAME_MAX + 1]; /* host is an alias (CNAME) of this; "" when not */
    char addr[64];                /* numeric address */
    int family;

    bool reachable;        /* TCP connected and the XMPP stream began */
    char error[AUDIT_STR]; /* why not, when !reachable */
    double connect_ms;     /* TCP connect time */
    double probe_ms;       /* the main probe, connect to the end */

    /* The stream header the endpoint answered with (RFC 6120 §4.7). */
    char stream_version[16];
    char stream_id[128];
    char stream_from[AUDIT_STR];
    char stream_error[AUDIT_STR]; /* what ended the XMPP steps early, "" when all went well */

    struct audit_features pre_tls;  /* STARTTLS endpoints only */
    struct audit_features post_tls; /* after the TLS restart */

    bool tls; /* the main TLS handshake completed */
    char tls_error[AUDIT_STR];
    char tls_version[16];
    char tls_cipher[64];
    char tls_group[32];
    int tls_cipher_bits; /* symmetric strength of the negotiated cipher */
    int tls_kx_secbits;  /* security bits of its key exchange; -1 unknown */
    char alpn[32];
    bool ocsp_stapled;
    struct audit_cert cert;

    enum dns_sec addr_sec; /* DNSSEC status of the A/AAAA answer */
    enum dns_status tlsa_status;
    enum dns_sec tlsa_sec;
    size_t ntlsa;
    char tlsa[AUDIT_MAX_TLSA][160]; /* "3 1 1 abcd…" (data shortened) */
    enum audit_dane dane;

    enum audit_sasl_ext sasl_external;
    char sasl_external_detail[AUDIT_STR]; /* the failure condition */

    enum audit_vstate versions[AUDIT_NTLSV];
    struct audit_cipher ciphers[AUDIT_NTLSV][AUDIT_MAX_CIPHERS];
    size_t nciphers[AUDIT_NTLSV];
    unsigned probes; /* handshakes made for the enumeration */
};

/* One connection target as DNS gave it: an SRV target, or the domain (fallback). */
struct audit_target {
    char host[DNS_NAME_MAX + 1];
    uint16_t port;
    enum dns_tls_mode mode;
    char cname[DNS_NAME_MAX + 1]; /* host is an alias (CNAME) of this; "" when not */
    size_t naddrs;                /* addresses it resolved to (both families) */
};

struct audit_finding {
    char endpoint[AUDIT_STR]; /* "[2001:db8::1]:5269" or "" for the domain */
    char what[AUDIT_STR];     /* the weakness */
    char fix[AUDIT_STR];      /* what to change */
    char cap[4];              /* the grade it caps to ("B"), "T" or "" for none */
};

/* Grade letters, best first; T and F are both failing (see docs/audit.md). */
enum audit_grade {
    AUDIT_GRADE_APLUS = 0,
    AUDIT_GRADE_A,
    AUDIT_GRADE_B,
    AUDIT_GRADE_C,
    AUDIT_GRADE_D,
    AUDIT_GRADE_E,
    AUDIT_GRADE_F,
    AUDIT_GRADE_T,
    AUDIT_GRADE_NONE, /* nothing could be graded (unreachable) */
};

struct audit_score {
    int protocol; /* 0..100 each */
    int key_exchange;
    int cipher;
    int total;                  /* 30/30/40 */
    enum audit_grade grade;     /* the graded letter, caps applied, before the T mark */
    bool trust_mark;            /* T: chain, name or DANE failure */
    enum audit_grade effective; /* T when trust_mark, else grade */
};

struct audit_domain {
    char domain[DNS_NAME_MAX + 1];
    char dns_backend[16];   /* "c-ares" or "unbound" */
    bool dnssec_validating; /* unbound with a trust anchor */
    struct dns_lookup_info srv_xmpps, srv_xmpp;
    bool fallback;   /* no SRV: the domain itself on 5269 */
    bool no_service; /* SRV "." (RFC 2782, RFC 6120 §3.2.1 step 4) */
    enum dns_status dns_status;
    char dns_error[320];
    size_t ntargets; /* in the order to try */
    struct audit_target targets[AUDIT_MAX_TARGETS];

    bool reachable; /* at least one endpoint reachable */
    char error[AUDIT_STR];
    size_t nendpoints;
    struct audit_endpoint endpoints[AUDIT_MAX_ENDPOINTS];
    struct audit_score scores[AUDIT_MAX_ENDPOINTS];

    struct audit_score score; /* the weakest endpoint's */
    size_t nfindings;
    struct audit_finding findings[AUDIT_MAX_FINDINGS];
    double elapsed_ms;
    char as_domain[DNS_NAME_MAX + 1]; /* --as, "" when not given */
};

/* What a run is given. */
struct audit_options {
    struct audit_tls *tls;   /* the probe contexts (audit_tls_new), shared by runs */
    const char *dns_backend; /* for the report: "c-ares" or "unbound" */
    bool dnssec_validating;  /* unbound with a trust anchor */
    const char *ca_file;     /* NULL: system store */
    const char *ca_path;
    const char *as_domain; /* --as: present this certificate and try SASL EXTERNAL */
    const char *as_cert_file;
    const char *as_key_file;
    int family;          /* AF_UNSPEC, AF_INET (-4) or AF_INET6 (-6) */
    unsigned timeout_ms; /* per step (connect, each XMPP step, handshake); 0: 5000 */
    unsigned per_addr;   /* enumeration connections at a time per address; 0: 4 */
    bool enumerate;      /* probe protocols and ciphers */
};

struct audit_run;
typedef void (*audit_done_fn)(struct audit_domain *d, void *arg);

/*
 * Audits one domain on base; done is called once, from the loop, with the result
 * (already graded; free it with free()). NULL when memory runs out or the probe contexts
 * cannot be made (err says why).
 */
struct audit_run *audit_start(struct event_base *base, struct dns_resolver *res,
                              const struct audit_options *opts, const char *domain,
                              audit_done_fn done, void *arg, char *err, size_t errlen);
/* Stops a run that has not called back yet; it will not call back. */
void audit_cancel(struct audit_run *run);

const char *audit_tlsv_name(enum audit_tlsv v);
const char *audit_vstate_name(enum audit_vstate s);
const char *audit_dane_name(enum audit_dane d);
const char *audit_sasl_ext_name(enum audit_sasl_ext e);
/* "[2001:db8::1]:5269" or "192.0.2.1:5269". */
void audit_endpoint_label(const struct audit_endpoint *ep, char *buf, size_t len);

#endif
