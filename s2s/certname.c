/*
 * Certificate identity matching (RFC 6125 / RFC 9525, RFC 6120 §13.7.1.2, XEP-0178,
 * RFC 7673). See certname.h for the rules; every function here is pure.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef HAVE_LIBIDN2
#include <idn2.h>
#endif

#include "s2s/certname.h"

#define NAME_WILDCARD 0x01 /* '*' allowed as the whole left-most label (DNS-ID, CN) */
#define NAME_IDNA     0x02 /* U-labels allowed, converted to A-labels (reference, XmppAddr) */

static char
lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool
is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/*
 * One label of a host name: LDH (RFC 1035 §2.3.1, RFC 1123 §2.1), no hyphen first or
 * last, and no reserved "??--" label unless it is an "xn--" A-label (RFC 5890 §2.3.1).
 * With wildcard set, the label may be "*" and nothing else containing '*'.
 */
static bool
label_ok(const char *l, size_t n, bool wildcard)
{
    if (n == 0 || n > CERTNAME_MAX_LABEL)
        return false;
    if (wildcard && n == 1 && l[0] == '*')
        return true;
    for (size_t i = 0; i < n; i++)
        if (!is_alnum(l[i]) && l[i] != '-')
            return false;
    if (l[0] == '-' || l[n - 1] == '-')
        return false;
    if (n >= 4 && l[2] == '-' && l[3] == '-' && !(lower(l[0]) == 'x' && lower(l[1]) == 'n'))
        return false;
    return true;
}

static bool
all_digits(const char *l, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (l[i] < '0' || l[i] > '9')
            return false;
    return true;
}

/*
 * Checks an ASCII name of len octets without its trailing dot. Returns the number of
 * labels, or -1. A wildcard (when allowed) must be the first label and be followed by at
 * least two labels (RFC 9525 §6.3: no "*.tld", no "*").
 */
static int
name_check_ascii(const char *s, size_t len, int flags)
{
    size_t start = 0, last = 0, lastlen = 0;
    int nlabels = 0;
    bool wild = false;

    if (len == 0 || len > CERTNAME_MAX_NAME)
        return -1;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '.')
            continue;
        if (!label_ok(s + start, i - start, nlabels == 0 && (flags & NAME_WILDCARD)))
            return -1;
        if (nlabels == 0 && i - start == 1 && s[start] == '*')
            wild = true;
        last = start;
        lastlen = i - start;
        nlabels++;
        start = i + 1;
    }
    /* RFC 6125 §1.7.2: an IP address is no DNS-ID; a TLD is never all digits. */
    if (all_digits(s + last, lastlen))
        return -1;
    if (wild && nlabels < 3)
        return -1;
    return nlabels;
}

/* RFC 3629 §4: well-formed UTF-8 (no overlong forms, surrogates or code points > U+10FFFF). */
static bool
utf8_ok(const unsigned char *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else
            return false;
        if (len - i <= n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

/*
 * Converts a name holding U-labels (len octets, no trailing dot) to lower-case A-labels in
 * out. IDNA2008 with TR46 non-transitional mapping (UTS #46 §4), which also folds case.
 * Without libidn2 it fails: such names then match nothing.
 */
static int
idna_to_ascii(const char *in, size_t len, char out[CERTNAME_BUFSIZE])
{
#ifdef HAVE_LIBIDN2
    char buf[CERTNAME_MAX_INPUT + 1];
    char *a = NULL;
    size_t n;
    int rc = -1;

    if (!utf8_ok((const unsigned char *)in, len))
        return -1;
    memcpy(buf, in, len);
    buf[len] = '\0';
    if (idn2_to_ascii_8z(buf, &a, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT) != IDN2_OK)
        return -1;
    n = strlen(a);
    if (n > 0 && n <= CERTNAME_MAX_NAME) {
        for (size_t i = 0; i < n; i++)
            out[i] = lower(a[i]);
        out[n] = '\0';
        /* Whatever libidn2 lets through must still be a plain LDH host name. */
        if (name_check_ascii(out, n, 0) > 0)
            rc = 0;
    }
    idn2_free(a);
    return rc;
#else
    (void)in;
    (void)len;
    (void)out;
    return -1;
#endif
}

/*
 * Brings a presented or reference name (len octets) to its comparable form in out:
 * lower-case ASCII, no trailing dot, A-labels. Returns 0, or -1 if the name is malformed
 * or holds anything the flags do not allow (see certname.h).
 */
static int
name_normalize(const char *in, size_t len, int flags, char out[CERTNAME_BUFSIZE])
{
    bool nonascii = false;

    out[0] = '\0';
    if (in == NULL || len == 0 || len > CERTNAME_MAX_INPUT)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c < 0x20 || c == 0x7f) /* control characters, embedded NUL */
            return -1;
        if (c >= 0x80)
            nonascii = true;
    }
    if (len > 1 && in[len - 1] == '.') /* RFC 6125 §6.4.1, RFC 7622 §3.2 */
        len--;
    if (nonascii) {
        if (!(flags & NAME_IDNA))
            return -1;
        return idna_to_ascii(in, len, out);
    }
    if (len > CERTNAME_MAX_NAME)
        return -1;
    for (size_t i = 0; i < len; i++)
        out[i] = lower(in[i]);
    out[len] = '\0';
    if (name_check_ascii(out, len, flags) < 0) {
        out[0] = '\0';
        return -1;
    }
    return 0;
}

/*
 * RFC 6125 §6.4.1-§6.4.3: a DNS-ID (or CN) against a normalized reference. "*.rest"
 * stands for exactly one non-empty left-most label followed by ".rest".
 */
static bool
dns_id_matches(const struct certname_id *id, const char *ref)
{
    char pat[CERTNAME_BUFSIZE];
    const char *refrest;

    if (name_normalize(id->name, id->len, NAME_WILDCARD, pat) == -1)
        return false;
    if (pat[0] != '*')
        return strcmp(pat, ref) == 0;
    refrest = strchr(ref, '.');
    if (refrest == NULL || refrest == ref)
        return false;
    return strcmp(refrest, pat + 1) == 0;
}

/*
 * RFC 6125 §6.5.1 and RFC 4985: "_service.domain". The service compares case-insensitively
 * and must be one the caller accepts; the domain part is matched exactly (no wildcard, ASCII).
 */
static bool
srv_id_matches(const struct certname_id *id, unsigned services, const char *ref)
{
    static const struct {
        unsigned bit;
        const char *name;
    } svcs[] = {
        {CERTNAME_SVC_XMPP_SERVER, "xmpp-server"},
        {CERTNAME_SVC_XMPPS_SERVER, "xmpps-server"},
    };
    char dom[CERTNAME_BUFSIZE];
    const char *dot;
    size_t svclen;
    bool svc_ok = false;

    if (id->name == NULL || id->len < 3 || id->name[0] != '_')
        return false;
    if ((dot = memchr(id->name, '.', id->len)) == NULL)
        return false;
    svclen = (size_t)(dot - id->name) - 1;
    for (size_t i = 0; i < sizeof(svcs) / sizeof(svcs[0]); i++) {
        const char *s = svcs[i].name;
        size_t k;

        if (!(services & svcs[i].bit) || strlen(s) != svclen)
            continue;
        for (k = 0; k < svclen && lower(id->name[1 + k]) == s[k]; k++)
            ;
        if (k == svclen)
            svc_ok = true;
    }
    if (!svc_ok)
        return false;
    if (name_normalize(dot + 1, id->len - (size_t)(dot + 1 - id->name), 0, dom) == -1)
        return false;
    return strcmp(dom, ref) == 0;
}

/* RFC 6120 §13.7.1.4: an XmppAddr for a server is its bare domain; U-labels allowed. */
static bool
xmpp_addr_matches(const struct certname_id *id, const char *ref)
{
    char dom[CERTNAME_BUFSIZE];

    if (name_normalize(id->name, id->len, NAME_IDNA, dom) == -1)
        return false;
    return strcmp(dom, ref) == 0;
}

/*
 * RFC 6125 §6.4.4: the CN is looked at only if the certificate has no identifier of a type
 * we know (RFC 9525 drops it entirely: the caller must ask for it).
 */
static bool
cn_allowed(const struct certname_presented *ids, const struct certname_reference *ref)
{
    return ref->cn_fallback && ids->n_cns > 0 && ids->n_dns_ids == 0 && ids->n_srv_ids == 0 &&
           ids->n_xmpp_addrs == 0 && !ids->has_uri_id;
}

static bool
any_dns_id(const struct certname_presented *ids, const char *ref)
{
    for (size_t i = 0; i < ids->n_dns_ids; i++)
        if (dns_id_matches(&ids->dns_ids[i], ref))
            return true;
    return false;
}

enum certname_type
certname_match(const struct certname_presented *ids, const struct certname_reference *ref)
{
    char dom[CERTNAME_BUFSIZE], target[CERTNAME_BUFSIZE];

    if (ids == NULL || ref == NULL || ref->domain == NULL)
        return CERTNAME_NONE;
    if (name_normalize(ref->domain, strnlen(ref->domain, CERTNAME_MAX_INPUT + 1), NAME_IDNA, dom) ==
        -1)
        return CERTNAME_NONE;

    if (any_dns_id(ids, dom))
        return CERTNAME_DNS_ID;
    for (size_t i = 0; i < ids->n_srv_ids; i++)
        if (srv_id_matches(&ids->srv_ids[i], ref->services, dom))
            return CERTNAME_SRV_ID;
    for (size_t i = 0; i < ids->n_xmpp_addrs; i++)
        if (xmpp_addr_matches(&ids->xmpp_addrs[i], dom))
            return CERTNAME_XMPP_ADDR;
    if (cn_allowed(ids, ref) && dns_id_matches(&ids->cns[ids->n_cns - 1], dom))
        return CERTNAME_CN;

    /*
     * RFC 7673 §4 (and XEP-0368 §3 for direct TLS): when the SRV answer is DNSSEC-secure,
     * the target host name is a reference identity too. Never when insecure: an attacker
     * who forges the SRV record would choose the target.
     */
    if (!ref->srv_secure || ref->srv_target == NULL)
        return CERTNAME_NONE;
    if (name_normalize(ref->srv_target, strnlen(ref->srv_target, CERTNAME_MAX_INPUT + 1), 0,
                       target) == -1)
        return CERTNAME_NONE;
    if (any_dns_id(ids, target))
        return CERTNAME_SRV_TARGET;
    if (cn_allowed(ids, ref) && dns_id_matches(&ids->cns[ids->n_cns - 1], target))
        return CERTNAME_SRV_TARGET;
    return CERTNAME_NONE;
}

const char *
certname_type_name(enum certname_type type)
{
    switch (type) {
    case CERTNAME_DNS_ID:
        return "dns-id";
    case CERTNAME_SRV_ID:
        return "srv-id";
    case CERTNAME_XMPP_ADDR:
        return "xmppaddr";
    case CERTNAME_CN:
        return "cn";
    case CERTNAME_SRV_TARGET:
        return "srv-target";
    case CERTNAME_NONE:
        break;
    }
    return "none";
}

#ifndef HAVE_LIBIDN2
/*
 * Without libidn2 a U-label cannot be converted: accept it if it is well-formed UTF-8
 * within the label and name limits and holds no ASCII other than LDH (RFC 5891 §5.4 would
 * need the IDNA tables to say more).
 */
static bool
utf8_name_ok(const char *s, size_t len)
{
    size_t start = 0;

    if (len == 0 || len > CERTNAME_MAX_NAME || !utf8_ok((const unsigned char *)s, len))
        return false;
    for (size_t i = 0; i <= len; i++) {
        bool ascii = true;

        if (i < len && s[i] != '.')
            continue;
        for (size_t k = start; k < i; k++)
            if ((unsigned char)s[k] >= 0x80)
                ascii = false;
        if (ascii && !label_ok(s + start, i - start, false))
            return false;
        if (!ascii) {
            if (i - start > CERTNAME_MAX_LABEL)
                return false;
            for (size_t k = start; k < i; k++) {
                char c = s[k];
                if ((unsigned char)c < 0x80 && !is_alnum(c) && c != '-')
                    return false;
            }
        }
        if (i == len && ascii && all_digits(s + start, i - start))
            return false;
        start = i + 1;
    }
    return true;
}
#endif

int
certname_domain_normalize(const char *domain, char *out, size_t outsize)
{
    char buf[CERTNAME_BUFSIZE];
    size_t len, n;

    if (out == NULL || outsize == 0)
        return -1;
    out[0] = '\0';
    if (domain == NULL)
        return -1;
    len = strnlen(domain, CERTNAME_MAX_INPUT + 1);
    if (len == 0 || len > CERTNAME_MAX_INPUT)
        return -1;
    if (name_normalize(domain, len, NAME_IDNA, buf) == 0) {
        n = strlen(buf);
        if (n + 1 > outsize)
            return -1;
        memcpy(out, buf, n + 1);
        return 0;
    }
#ifdef HAVE_LIBIDN2
    return -1;
#else
    /* Non-ASCII without libidn2: keep the UTF-8, fold ASCII case, drop the trailing dot. */
    bool nonascii = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)domain[i];
        if (c < 0x20 || c == 0x7f)
            return -1;
        if (c >= 0x80)
            nonascii = true;
    }
    if (!nonascii) /* an ASCII name the strict check refused */
        return -1;
    if (len > 1 && domain[len - 1] == '.')
        len--;
    if (!utf8_name_ok(domain, len) || len + 1 > outsize)
        return -1;
    for (size_t i = 0; i < len; i++)
        out[i] = lower(domain[i]);
    out[len] = '\0';
    return 0;
#endif
}

bool
certname_domain_valid(const char *domain)
{
    char buf[CERTNAME_MAX_INPUT + 1];

    return certname_domain_normalize(domain, buf, sizeof(buf)) == 0;
}
