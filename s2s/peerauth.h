/*
 * What authenticated a peer on one stream: the method, the TLS parameters, the status of
 * its certificate and how it matched, DNSSEC and DANE. Filled by the sessions (in.c,
 * out.c), read by logs now and by policy, audit and ctl later.
 *
 * Also the certificate check both sessions share: is the peer's certificate valid for a
 * domain (chain verified, or DANE-matched, and an RFC 6125 identity for the domain)?
 */
#ifndef S2S_PEERAUTH_H
#define S2S_PEERAUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "s2s/certname.h"

struct tls_info;

enum peerauth_method {
    PEERAUTH_NONE = 0,
    PEERAUTH_SASL_EXTERNAL, /* XEP-0178 */
    PEERAUTH_DIALBACK,      /* XEP-0220 (a verified key) */
    PEERAUTH_CERT_DIALBACK, /* XEP-0344 §2.4: db:result answered from a valid certificate */
};

enum peerauth_cert {
    PEERAUTH_CERT_ABSENT = 0, /* no TLS, or no certificate presented */
    PEERAUTH_CERT_UNTRUSTED,  /* the chain does not verify (and no DANE match) */
    PEERAUTH_CERT_MISMATCH,   /* trusted, but no identity for the domain */
    PEERAUTH_CERT_VALID,      /* trusted and an identity matched */
};

struct peerauth {
    enum peerauth_method method;
    const char *tls_version; /* static strings from tls_info, NULL without TLS */
    const char *cipher;
    enum peerauth_cert cert;
    enum certname_type matched; /* which identity matched when cert is VALID */
    long verify_error;          /* X509_V_* of the chain */
    bool dnssec;                /* the DNS data used (SRV, addresses) was DNSSEC-secure */
    bool dane;                  /* the certificate matched a secure TLSA record */
};

/*
 * Checks ti (NULL: no TLS) against ref. dane_ok: a DANE-EE/DANE-TA match already made
 * the certificate trusted (RFC 7673 §5: the name check still applies for DANE-TA, not for
 * DANE-EE — callers pass dane_ee to skip it). Fills *how with the identity that matched.
 */
enum peerauth_cert peerauth_cert_check(const struct tls_info *ti,
                                       const struct certname_reference *ref, bool dane_ok,
                                       bool dane_ee, enum certname_type *how);

/* Shortcut: the peer's certificate valid for domain (services _xmpp(s)-server). */
bool peerauth_cert_valid_for(const struct tls_info *ti, const char *domain);

/* Fills the TLS fields of pa from ti (NULL: none). */
void peerauth_set_tls(struct peerauth *pa, const struct tls_info *ti);

const char *peerauth_method_name(enum peerauth_method m);
const char *peerauth_cert_name(enum peerauth_cert c);

/* A fresh stream id (RFC 6120 §4.7.3: unique, unpredictable): 32 hex digits = 128 bits. */
#define PEERAUTH_STREAM_ID_LEN 32
void peerauth_stream_id(char out[PEERAUTH_STREAM_ID_LEN + 1]);

/* The domainpart of a JID ("user@dom/res" -> "dom"), lower-cased into out; -1 when the
 * JID has no usable domainpart or it does not fit. */
int peerauth_jid_domain(const char *jid, char *out, size_t outsize);

#endif
