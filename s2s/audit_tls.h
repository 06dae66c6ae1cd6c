/*
 * The audit's TLS side: the probe contexts (made here with OpenSSL directly: tls.c's
 * tls_ctx is the daemon's), the facts read from a completed handshake, and the protocol
 * and cipher enumeration of one endpoint with bounded concurrency per remote address.
 */
#ifndef S2S_AUDIT_TLS_H
#define S2S_AUDIT_TLS_H

#include <stdbool.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "s2s/audit.h"

struct event_base;
struct audit_tls;
struct audit_enum;

/* The contexts of a run. NULL with err set on failure (bad CA or --as files). */
struct audit_tls *audit_tls_new(const struct audit_options *opts, char *err, size_t errlen);
void audit_tls_free(struct audit_tls *t);

/*
 * The SSL of the main probe: verification recorded, never failing the handshake; SNI =
 * domain; ALPN xmpp-server for direct TLS; OCSP stapling requested; our certificate when
 * --as was given; DANE with the given records when they are DNSSEC-secure (ntlsa > 0).
 * TLS >= 1.2 as a modern peer offers, or with legacy every version and cipher OpenSSL
 * knows (security level 0: the retry for servers stuck on TLS 1.0/1.1).
 * NULL when OpenSSL fails.
 */
SSL *audit_tls_main_ssl(struct audit_tls *t, const char *domain, const char *target,
                        enum dns_tls_mode mode, const struct dns_tlsa *tlsa, size_t ntlsa,
                        bool legacy);

/*
 * After the main handshake: version, cipher, group, ALPN, OCSP, the certificate facts,
 * PKIX validity (checked apart from DANE), the name (certname_match with srv_target when
 * the SRV answer was secure) and the DANE outcome into ep.
 */
void audit_tls_collect(struct audit_tls *t, SSL *ssl, const char *domain, const char *srv_target,
                       bool srv_secure, bool dane_used, struct audit_endpoint *ep);

/* Whether the local OpenSSL can speak version v at all (security level 0). */
bool audit_tls_testable(struct audit_tls *t, enum audit_tlsv v);

typedef void (*audit_enum_fn)(struct audit_endpoint *ep, void *arg);

/*
 * Enumerates versions (one handshake per version, min = max) then the ciphers of every
 * accepted version (one handshake per cipher), each through the XMPP STARTTLS steps or
 * direct TLS, at most per_addr connections at once per remote address (shared by every
 * enumeration of the process). Fills ep->versions, ep->ciphers, ep->probes; done is
 * called once from the loop.
 */
struct audit_enum *audit_enum_start(struct event_base *base, struct audit_tls *t,
                                    const struct sockaddr *sa, socklen_t salen, const char *domain,
                                    unsigned timeout_ms, unsigned per_addr,
                                    struct audit_endpoint *ep, audit_enum_fn done, void *arg);
void audit_enum_cancel(struct audit_enum *e);

#endif
