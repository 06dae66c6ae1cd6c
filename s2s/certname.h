/*
 * Certificate identity matching for XMPP servers: RFC 6125 (as tightened by RFC 9525),
 * RFC 6120 §13.7.1.2 and XEP-0178, with the DNSSEC-secured SRV target of RFC 7673.
 *
 * Pure logic, no OpenSSL types: tls.c extracts the presented identifiers from the
 * certificate (as byte strings with their lengths, so an embedded NUL is seen and refused)
 * and asks whether one of them stands for the reference identity.
 *
 * Rules (every one is tested in tests/unit/test_certname.c):
 * - Names compare ASCII case-insensitively; one trailing dot on either side is ignored
 *   (RFC 6125 §6.4.1, RFC 7622 §3.2).
 * - A name is at most 253 octets (without the trailing dot), a label 1..63 octets of
 *   letters, digits and hyphens, not starting or ending with a hyphen, no reserved "??--"
 *   label other than an "xn--" A-label; the right-most label is not all digits (IP
 *   addresses are not DNS-IDs, RFC 6125 §1.7.2). Control characters, NULs, '@', '/', '_' and
 *   anything else make the identifier match nothing.
 * - Wildcards (RFC 6125 §6.4.3, RFC 9525 §6.3), DNS-ID and CN only: '*' must be the whole
 *   left-most label and match exactly one non-empty label; at least two labels must follow it
 *   ("*.org" and "*" match nothing). Partial wildcards ("f*.example.org", "*oo.example.org",
 *   "xn--*.example.org"), a wildcard in any other label, and wildcards in SRV-IDs or
 *   XmppAddrs match nothing.
 *   Choice: "*.example.org" does match "xn--bcher-kva.example.org". RFC 6125 §6.4.3 rule 3
 *   warns against a wildcard *embedded within* an A-label or U-label; such partial
 *   wildcards are rejected outright, and a whole-label wildcard stands for any one label,
 *   IDN or not (as browsers and RFC 9525 do). A public suffix with two or more labels
 *   ("*.co.uk") cannot be told apart without the public suffix list: a CA would not issue it.
 * - IDNA: a reference domain and an XmppAddr (UTF8String) may hold U-labels. With libidn2
 *   (HAVE_LIBIDN2) they are converted to A-labels (IDNA2008 + TR46 non-transitional,
 *   idn2_to_ascii_8z) before comparing, so "bücher.example" matches the DNS-ID
 *   "xn--bcher-kva.example". Without libidn2 a name with any non-ASCII octet matches
 *   nothing (fail closed). DNS-IDs, SRV-IDs and SRV targets are ASCII by definition
 *   (IA5String, DNS wire names): non-ASCII there matches nothing.
 * - CN: RFC 9525 §6.4.4 drops the fall-back to the subject common name; we do not fall
 *   back unless the caller sets cn_fallback, and even then only when the certificate has
 *   no DNS-ID, SRV-ID, URI-ID and no XmppAddr (RFC 6125 §6.4.4: XmppAddr is an
 *   application-specific type we support). Only the last (most specific) CN is used.
 */
#ifndef S2S_CERTNAME_H
#define S2S_CERTNAME_H

#include <stdbool.h>
#include <stddef.h>

#define CERTNAME_MAX_NAME  253  /* octets of a DNS name without the trailing dot */
#define CERTNAME_MAX_LABEL 63   /* octets of a label */
#define CERTNAME_BUFSIZE   254  /* a normalized name and its NUL */
#define CERTNAME_MAX_INPUT 1023 /* octets of any input name (RFC 7622 §3.2 domainpart limit) */

/* Which presented identifier matched (or how the reference was reached). */
enum certname_type {
    CERTNAME_NONE = 0,
    CERTNAME_DNS_ID,     /* SAN dNSName matched the domain */
    CERTNAME_SRV_ID,     /* SAN otherName SRVName "_service.domain" (RFC 4985) */
    CERTNAME_XMPP_ADDR,  /* SAN otherName id-on-xmppAddr (RFC 6120 §13.7.1.4) */
    CERTNAME_CN,         /* subject CN matched the domain (only with cn_fallback) */
    CERTNAME_SRV_TARGET, /* a DNS-ID (or CN) matched the DNSSEC-secure SRV target host */
};

/* A presented identifier: len octets, not necessarily NUL-terminated. */
struct certname_id {
    const char *name;
    size_t len;
};

/* What the certificate presents; any list may be empty (count 0). */
struct certname_presented {
    const struct certname_id *dns_ids; /* SAN dNSName */
    size_t n_dns_ids;
    const struct certname_id *srv_ids; /* SAN otherName id-on-dnsSRV, "_xmpp-server.example" */
    size_t n_srv_ids;
    const struct certname_id *xmpp_addrs; /* SAN otherName id-on-xmppAddr (UTF-8) */
    size_t n_xmpp_addrs;
    const struct certname_id *cns; /* subject CNs, in subject order */
    size_t n_cns;
    bool has_uri_id; /* a SAN uniformResourceIdentifier is present (disables CN fallback) */
};

/* The SRV services whose SRV-ID stands for the domain (a bit set). */
#define CERTNAME_SVC_XMPP_SERVER  0x01 /* "_xmpp-server" (RFC 6120 §13.7.1.2.1) */
#define CERTNAME_SVC_XMPPS_SERVER 0x02 /* "_xmpps-server" (XEP-0368, direct TLS) */

/* What we expect the peer to be. */
struct certname_reference {
    const char *domain;     /* the XMPP domain (UTF-8; U-labels allowed) */
    unsigned services;      /* CERTNAME_SVC_*: 0 means no SRV-ID is accepted */
    const char *srv_target; /* NULL, or the target host of the SRV record connected to */
    bool srv_secure;        /* the SRV answer was DNSSEC-secure (RFC 7673 §4): else no target */
    bool cn_fallback;       /* allow the subject CN when no SAN identity is present */
};

/*
 * Returns how the certificate's identifiers match the reference, or CERTNAME_NONE.
 * The domain is tried first (DNS-ID, SRV-ID, XmppAddr, then CN), then the SRV target.
 */
enum certname_type certname_match(const struct certname_presented *ids,
                                  const struct certname_reference *ref);

/* "dns-id", "srv-id", "xmppaddr", "cn", "srv-target" or "none", for logs and audit. */
const char *certname_type_name(enum certname_type type);

/*
 * Checks that domain is usable as the domainpart of a server JID (RFC 7622 §3.2, kept to
 * DNS names): 1..1023 octets, no control characters, '@', '/', spaces or other non-LDH
 * ASCII, labels as above; a label may be a UTF-8 U-label (with libidn2 it must convert
 * to a valid A-label; without, it must be well-formed UTF-8). IP literals are refused:
 * federation needs DNS names (SRV, certificates).
 */
bool certname_domain_valid(const char *domain);

/*
 * Writes the comparable form of a valid domain into out: lower-case, no trailing dot,
 * U-labels converted to A-labels (with libidn2; without it, left as UTF-8 with ASCII
 * lower-cased). Returns 0, or -1 if the domain is not valid or out is too small.
 */
int certname_domain_normalize(const char *domain, char *out, size_t outsize);

#endif
