/*
 * TLS contexts and per-connection TLS state (OpenSSL 3, driven by s2s/conn.c directly on
 * the socket: not bufferevent_openssl, see DESIGN.md).
 *
 * CONTRACT (written before the implementation; the tls/conn work extends this header):
 * a tls_ctx holds one SSL_CTX serving every hosted domain, picking the certificate by
 * SNI, and is reference counted so that a reload can swap contexts while live connections
 * keep the one they started with.
 */
#ifndef S2S_TLS_H
#define S2S_TLS_H

#include <stdbool.h>
#include <stddef.h>

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

#endif
