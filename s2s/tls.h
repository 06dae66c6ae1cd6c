/*
 * TLS contexts and per-connection TLS state (OpenSSL 3, driven by s2s/conn.c directly on
 * the socket: not bufferevent_openssl, see DESIGN.md).
 *
 * CONTRACT (written before the implementation; the tls/conn work extends this header):
 * a tls_ctx holds one SSL_CTX serving every hosted domain, picking the certificate by
 * SNI, and is reference counted so that a reload can swap contexts while live connections
 * keep the one they started with.
 *
 * The chain is verified during the handshake but never fails it: the result is recorded
 * (tls_info.chain_valid, verify_error) and the session decides (RFC 6120 §13.7.2,
 * XEP-0178: a peer without a valid certificate may still use dialback).
 */
#ifndef S2S_TLS_H
#define S2S_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

/* Process-wide settings (the "tls" section of the configuration). */
struct tls_settings {
    int min_version;          /* TLS1_2_VERSION (default) or TLS1_3_VERSION */
    const char *ca_file;      /* NULL: system default store */
    const char *ca_path;      /* NULL: system default store */
    const char *ciphers;      /* TLS <= 1.2 cipher list; NULL: OpenSSL default */
    const char *ciphersuites; /* TLS 1.3 suites; NULL: OpenSSL default */
};

/* One hosted domain and its certificate chain and key (PEM files). */
struct tls_host {
    const char *domain;
    const char *cert_file;
    const char *key_file;
};

struct tls_ctx;

/*
 * Builds a context for all hosts; the first host's certificate is the default when a
 * peer sends no (or an unknown) SNI. On failure returns NULL with a message in err that
 * names the file and the reason.
 */
struct tls_ctx *tls_ctx_new(const struct tls_settings *settings, const struct tls_host *hosts,
                            size_t nhosts, char *err, size_t errlen);
struct tls_ctx *tls_ctx_ref(struct tls_ctx *ctx);
void tls_ctx_unref(struct tls_ctx *ctx);

enum tls_role {
    TLS_ROLE_CLIENT,
    TLS_ROLE_SERVER,
};

/* ALPN protocol id for direct TLS (XEP-0368 §3). */
#define TLS_ALPN_XMPP_SERVER "xmpp-server"

/*
 * Makes the SSL object for one connection (not yet bound to a socket).
 * Client role: sni is the remote domain sent as SNI (NULL or an IP literal: none,
 * RFC 6066 §3), local_domain picks the
 * certificate we present for SASL EXTERNAL (NULL or unknown: the default host's), alpn
 * (NULL: none) is offered. Server role: sni, local_domain and alpn are ignored; the
 * certificate follows the peer's SNI and "xmpp-server" is accepted when offered.
 * The SSL keeps what it needs of ctx alive until SSL_free, even past tls_ctx_unref.
 * DANE is enabled on the context, so SSL_dane_enable/SSL_dane_tlsa_add may be called on
 * the result before the handshake. NULL with err filled on failure.
 */
SSL *tls_ssl_new(struct tls_ctx *ctx, enum tls_role role, const char *sni, const char *local_domain,
                 const char *alpn, char *err, size_t errlen);

/* What the handshake established, collected once it completed (tls_info_collect). */
struct tls_info {
    const char *version;     /* "TLSv1.3" (static string) */
    const char *cipher;      /* "TLS_AES_256_GCM_SHA384" (static string) */
    const char *group;       /* key exchange group ("X25519"), NULL if unknown */
    bool peer_cert;          /* the peer presented a certificate */
    bool chain_valid;        /* its chain verified against our CA store */
    long verify_error;       /* X509_V_OK or the first X509_V_ERR_* seen */
    const char *verify_text; /* X509_verify_cert_error_string(verify_error) */
    char **dns_names;        /* SAN dNSName entries */
    size_t ndns_names;
    char **srv_ids; /* SAN otherName id-on-dnsSRV (RFC 4985), "_xmpp-server.example.org" */
    size_t nsrv_ids;
    char **xmpp_addrs; /* SAN otherName id-on-xmppAddr (RFC 6120 §13.7.1.4) */
    size_t nxmpp_addrs;
    char *subject_cn;              /* subject commonName, NULL if none */
    char *sni;                     /* server role: SNI the peer sent; client: what we sent */
    char *alpn;                    /* negotiated ALPN protocol, NULL if none */
    unsigned char fingerprint[32]; /* SHA-256 of the peer certificate (DER), if peer_cert */
    X509 *peer;                    /* the peer certificate (a reference), NULL if none */
};

/* Fills info from a completed handshake; release it with tls_info_clear. */
void tls_info_collect(SSL *ssl, struct tls_info *info);
void tls_info_clear(struct tls_info *info);

/*
 * Extracts the identities of a certificate (SAN dNSName, SRV-ID, XmppAddr, subject CN)
 * into info; strings with embedded NULs are skipped. Used by tls_info_collect.
 */
void tls_cert_identities(X509 *cert, struct tls_info *info);

/* The current OpenSSL error queue as one line (then cleared), or fallback if empty. */
const char *tls_error_string(char *buf, size_t len, const char *fallback);

#endif
