/*
 * One audit connection to one endpoint: TCP connect, then the XMPP steps up to TLS
 * (RFC 6120 §5.4: stream header, features, <starttls/>, <proceed/>) or direct TLS
 * (XEP-0368), the handshake with the SSL the caller prepared, and in full mode the
 * restarted stream's features and optionally SASL EXTERNAL (RFC 6120 §6.4, XEP-0178).
 *
 * A small state machine of its own (the outbound session of the federation engine does
 * not exist yet; it may later take this over). Every state has its own timeout. The probe
 * drives OpenSSL directly on its non-blocking socket, like conn.c does, but with SSL
 * objects made by the audit (special versions, ciphers, security levels).
 */
#ifndef S2S_AUDIT_PROBE_H
#define S2S_AUDIT_PROBE_H

#include <stdbool.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "s2s/audit.h"

struct event_base;
struct audit_probe;

enum audit_probe_mode {
    AUDIT_PROBE_FULL,      /* everything: features before and after TLS, SASL EXTERNAL */
    AUDIT_PROBE_HANDSHAKE, /* stop once the TLS handshake completed or failed */
};

/* What every probe reports. */
struct audit_probe_result {
    bool connected; /* TCP connected */
    bool xmpp_ok;   /* got as far as the TLS handshake (STARTTLS accepted, or direct) */
    bool tls;       /* the handshake completed */
    bool timeout;
    char error[AUDIT_STR];
    double connect_ms;
    double total_ms;
};

/* Called once, from the loop; the probe frees itself after it returns. ssl was passed
 * to the probe and is still alive during the callback (facts can be read from it). */
typedef void (*audit_probe_fn)(struct audit_probe *p, SSL *ssl,
                               const struct audit_probe_result *res, void *arg);

struct audit_probe_params {
    enum audit_probe_mode mode;
    enum dns_tls_mode tls_mode;
    const char *domain;        /* stream 'to' */
    const char *from;          /* stream 'from' (--as), NULL: none */
    bool sasl_external;        /* full mode: try <auth mechanism='EXTERNAL'/> */
    unsigned timeout_ms;       /* per step */
    struct audit_endpoint *ep; /* full mode: stream header and features land here */
};

/*
 * Starts a probe to sa; ssl (which the probe takes and frees) must be configured already
 * (SNI, ALPN, versions, DANE). NULL with err set if no socket could be made.
 */
struct audit_probe *audit_probe_start(struct event_base *base, const struct sockaddr *sa,
                                      socklen_t salen, SSL *ssl,
                                      const struct audit_probe_params *params, audit_probe_fn cb,
                                      void *arg, char *err, size_t errlen);
/* Stops a probe without calling back (never from its own callback). */
void audit_probe_cancel(struct audit_probe *p);

#endif
