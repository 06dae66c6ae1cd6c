/*
 * The audit grade (docs/audit.md is the reference for every number here).
 *
 * Scores follow the web TLS rating method: protocol support (best and worst accepted
 * version averaged), key exchange (the weakest accepted), cipher strength (strongest and
 * weakest averaged), weighted 30/30/40. XMPP caps, the trust mark and A+ come after.
 */
#include "s2s/audit_grade.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const grade_names[] = {"A+", "A", "B", "C", "D", "E", "F", "T", "-"};

const char *
audit_grade_name(enum audit_grade g)
{
    if ((unsigned)g > AUDIT_GRADE_NONE)
        return "?";
    return grade_names[g];
}

int
audit_grade_parse(const char *s)
{
    for (int g = AUDIT_GRADE_APLUS; g <= AUDIT_GRADE_T; g++)
        if (strcasecmp(s, grade_names[g]) == 0)
            return g;
    return -1;
}

/* T fails like F: a peer that checks certificates will not federate at all. */
static int
grade_rank(enum audit_grade g)
{
    return g == AUDIT_GRADE_T ? AUDIT_GRADE_F : (int)g;
}

bool
audit_grade_meets(enum audit_grade g, enum audit_grade min)
{
    if (g == AUDIT_GRADE_NONE)
        return false;
    return grade_rank(g) <= grade_rank(min);
}

static void finding_add(struct audit_domain *d, const char *endpoint, const char *cap,
                        const char *fix, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void
finding_add(struct audit_domain *d, const char *endpoint, const char *cap, const char *fix,
            const char *fmt, ...)
{
    struct audit_finding *f;
    va_list ap;

    if (d->nfindings >= AUDIT_MAX_FINDINGS)
        return;
    f = &d->findings[d->nfindings++];
    snprintf(f->endpoint, sizeof(f->endpoint), "%s", endpoint);
    snprintf(f->cap, sizeof(f->cap), "%s", cap);
    snprintf(f->fix, sizeof(f->fix), "%s", fix);
    va_start(ap, fmt);
    vsnprintf(f->what, sizeof(f->what), fmt, ap);
    va_end(ap);
}

static int
protocol_points(enum audit_tlsv v)
{
    switch (v) {
    case AUDIT_TLS10:
        return 90;
    case AUDIT_TLS11:
        return 95;
    default:
        return 100;
    }
}

/* Key exchange strength in security bits (RSA 2048 = 112, X25519 = 128) to points. */
static int
kx_points(int secbits)
{
    if (secbits <= 0)
        return 0; /* anonymous */
    if (secbits >= 140)
        return 100; /* RSA >= 4096 equivalent */
    if (secbits >= 112)
        return 90; /* RSA 2048..4095 */
    if (secbits >= 80)
        return 80; /* RSA 1024..2047 */
    if (secbits >= 56)
        return 40; /* RSA 512..1023 */
    return 20;
}

static int
cipher_points(int bits)
{
    if (bits <= 0)
        return 0;
    if (bits < 128)
        return 20;
    if (bits < 256)
        return 80;
    return 100;
}

static enum audit_tlsv
tlsv_of_name(const char *name)
{
    if (strcmp(name, "TLSv1") == 0)
        return AUDIT_TLS10;
    if (strcmp(name, "TLSv1.1") == 0)
        return AUDIT_TLS11;
    if (strcmp(name, "TLSv1.2") == 0)
        return AUDIT_TLS12;
    return AUDIT_TLS13;
}

static enum audit_grade
letter_of(int total)
{
    if (total >= 80)
        return AUDIT_GRADE_A;
    if (total >= 65)
        return AUDIT_GRADE_B;
    if (total >= 50)
        return AUDIT_GRADE_C;
    if (total >= 35)
        return AUDIT_GRADE_D;
    if (total >= 20)
        return AUDIT_GRADE_E;
    return AUDIT_GRADE_F;
}

static void
cap_at(struct audit_score *s, enum audit_grade cap)
{
    if (s->grade < cap)
        s->grade = cap;
}

/* Accepted versions, or the main handshake's when nothing was enumerated. */
static bool
version_accepted(const struct audit_endpoint *ep, enum audit_tlsv v)
{
    if (ep->versions[v] == AUDIT_V_ACCEPTED)
        return true;
    return ep->tls && ep->versions[v] == AUDIT_V_UNTESTED && ep->tls_version[0] != '\0' &&
           tlsv_of_name(ep->tls_version) == v;
}

static bool
any_tls(const struct audit_endpoint *ep)
{
    for (int v = 0; v < AUDIT_NTLSV; v++)
        if (version_accepted(ep, v))
            return true;
    return false;
}

static void
score_components(const struct audit_endpoint *ep, struct audit_score *s)
{
    int best = -1, worst = 101, kx = 101, cmax = -1, cmin = 101;
    size_t n = 0;

    for (int v = 0; v < AUDIT_NTLSV; v++) {
        if (!version_accepted(ep, v))
            continue;
        best = best < protocol_points(v) ? protocol_points(v) : best;
        worst = worst > protocol_points(v) ? protocol_points(v) : worst;
        for (size_t i = 0; i < ep->nciphers[v]; i++, n++) {
            const struct audit_cipher *c = &ep->ciphers[v][i];
            int cp = cipher_points(c->bits);
            if (c->kx_secbits >= 0 && kx_points(c->kx_secbits) < kx)
                kx = kx_points(c->kx_secbits);
            cmax = cp > cmax ? cp : cmax;
            cmin = cp < cmin ? cp : cmin;
        }
    }
    if (n == 0 && ep->tls) {
        /* No enumeration: what the main handshake negotiated. */
        cmax = cmin = cipher_points(ep->tls_cipher_bits);
        if (ep->tls_kx_secbits >= 0)
            kx = kx_points(ep->tls_kx_secbits);
    }
    s->protocol = best < 0 ? 0 : (best + worst) / 2;
    s->key_exchange = kx > 100 ? 90 : kx; /* unknown: assume the usual ECDHE */
    s->cipher = cmax < 0 ? 0 : (cmax + cmin) / 2;
    s->total = (30 * s->protocol + 30 * s->key_exchange + 40 * s->cipher + 50) / 100;
}

/* Lists up to a few cipher names matching pred, returns how many matched. */
static size_t
ciphers_where(const struct audit_endpoint *ep, bool (*pred)(const struct audit_cipher *), char *buf,
              size_t len)
{
    size_t n = 0, used = 0;

    buf[0] = '\0';
    for (int v = 0; v < AUDIT_NTLSV; v++) {
        for (size_t i = 0; i < ep->nciphers[v]; i++) {
            const struct audit_cipher *c = &ep->ciphers[v][i];
            if (!pred(c))
                continue;
            if (n < 4 && strstr(buf, c->name) == NULL && used < len) {
                int w = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", c->name);
                used += w > 0 ? (size_t)w : 0;
            }
            n++;
        }
    }
    if (n > 4 && used < len)
        snprintf(buf + used, len - used, ", ...");
    return n;
}

static bool
cipher_weak(const struct audit_cipher *c)
{
    return c->bits < 128 && c->bits > 0;
}

static bool
cipher_null(const struct audit_cipher *c)
{
    return c->bits == 0;
}

static bool
cipher_anon(const struct audit_cipher *c)
{
    return c->kx_secbits == 0;
}

static bool
cipher_no_fs(const struct audit_cipher *c)
{
    return !c->fs && c->kx_secbits != 0;
}

static bool
srv_secure_for(const struct audit_domain *d, const struct audit_endpoint *ep)
{
    if (d->fallback)
        return false;
    if (ep->mode == DNS_TLS_DIRECT)
        return d->srv_xmpps.sec == DNS_SEC_SECURE;
    return d->srv_xmpp.sec == DNS_SEC_SECURE;
}

static void
grade_trust(struct audit_domain *d, const struct audit_endpoint *ep, const char *at,
            struct audit_score *s)
{
    const struct audit_cert *c = &ep->cert;

    if (!c->present) {
        finding_add(d, at, "T", "serve a certificate for the domain", "no certificate presented");
        s->trust_mark = true;
        return;
    }
    if (!c->chain_valid) {
        finding_add(d, at, "T",
                    "serve a currently valid certificate from a trusted CA, with its full chain",
                    "certificate chain does not verify: %s", c->verify_error);
        s->trust_mark = true;
    }
    if (!c->name_valid) {
        finding_add(d, at, "T",
                    "get a certificate naming the domain (SAN DNS-ID, SRV-ID or XmppAddr)",
                    "certificate is not valid for %s", d->domain);
        s->trust_mark = true;
    }
    if (ep->dane == AUDIT_DANE_MISMATCH) {
        finding_add(d, at, "T", "publish TLSA records that match the served certificate",
                    "DANE: no TLSA record for _%u._tcp.%s matches the certificate",
                    (unsigned)ep->port, ep->host);
        s->trust_mark = true;
    } else if (ep->dane == AUDIT_DANE_BOGUS) {
        finding_add(d, at, "T", "fix the DNSSEC signatures of the TLSA records",
                    "DANE: the TLSA answer for _%u._tcp.%s fails DNSSEC validation",
                    (unsigned)ep->port, ep->host);
        s->trust_mark = true;
    }
    if (c->days_left >= 0 && c->days_left < 30)
        finding_add(d, at, "", "renew the certificate", "certificate expires in %ld days",
                    c->days_left);
}

static void
grade_caps(struct audit_domain *d, const struct audit_endpoint *ep, const char *at,
           struct audit_score *s)
{
    char list[AUDIT_STR];

    if (ep->mode == DNS_TLS_STARTTLS && ep->pre_tls.seen && !ep->pre_tls.starttls_required) {
        finding_add(d, at, "C",
                    "require TLS on s2s streams (Prosody: s2s_require_encryption = true; "
                    "ejabberd: s2s_use_starttls: required)",
                    "TLS offered but not required%s",
                    ep->pre_tls.dialback ? " (dialback offered in the clear)" : "");
        cap_at(s, AUDIT_GRADE_C);
    }
    if (version_accepted(ep, AUDIT_TLS10) || version_accepted(ep, AUDIT_TLS11)) {
        bool both = version_accepted(ep, AUDIT_TLS10) && version_accepted(ep, AUDIT_TLS11);
        finding_add(d, at, "B", "disable TLS versions below 1.2", "%s accepted",
                    both                                ? "TLS 1.0 and TLS 1.1"
                    : version_accepted(ep, AUDIT_TLS10) ? "TLS 1.0"
                                                        : "TLS 1.1");
        cap_at(s, AUDIT_GRADE_B);
    }
    if (ciphers_where(ep, cipher_anon, list, sizeof(list)) > 0) {
        finding_add(d, at, "F", "disable anonymous cipher suites (aNULL)",
                    "anonymous key exchange accepted: %s", list);
        cap_at(s, AUDIT_GRADE_F);
    }
    if (ciphers_where(ep, cipher_null, list, sizeof(list)) > 0) {
        finding_add(d, at, "F", "disable NULL cipher suites (eNULL)",
                    "unencrypted cipher suites accepted: %s", list);
        cap_at(s, AUDIT_GRADE_F);
    }
    if (ciphers_where(ep, cipher_weak, list, sizeof(list)) > 0) {
        finding_add(d, at, "C", "disable ciphers weaker than 128 bits (3DES, RC4, DES, EXPORT)",
                    "ciphers under 128 bits accepted: %s", list);
        cap_at(s, AUDIT_GRADE_C);
    }
    if (ciphers_where(ep, cipher_no_fs, list, sizeof(list)) > 0) {
        finding_add(d, at, "B", "offer only ECDHE/DHE key exchange (forward secrecy)",
                    "cipher suites without forward secrecy accepted: %s", list);
        cap_at(s, AUDIT_GRADE_B);
    }
    if (ep->pre_tls.compression || ep->post_tls.compression) {
        finding_add(d, at, "B", "disable stream compression (XEP-0138)",
                    "stream compression offered: compressing encrypted data leaks it");
        cap_at(s, AUDIT_GRADE_B);
    }
    if (ep->cert.present && ep->cert.key_secbits > 0 && ep->cert.key_secbits < 112) {
        finding_add(d, at, "B", "use a key of at least RSA 2048 bits or EC P-256",
                    "certificate key too weak: %s %d bits", ep->cert.key_type, ep->cert.key_bits);
        cap_at(s, AUDIT_GRADE_B);
    }
    if (s->key_exchange < 90)
        finding_add(d, at, "A", "use ECDHE (X25519, P-256) or DHE with at least 2048 bits",
                    "weak key exchange (score %d)", s->key_exchange);
}

static void
grade_aplus(struct audit_domain *d, const struct audit_endpoint *ep, const char *at,
            struct audit_score *s)
{
    bool srv = srv_secure_for(d, ep), dane = ep->dane == AUDIT_DANE_MATCH;
    bool old = version_accepted(ep, AUDIT_TLS10) || version_accepted(ep, AUDIT_TLS11);
    /* An alias SRV target breaks RFC 2782; its finding (cap A) is the domain's. */
    bool alias = !d->fallback && ep->cname[0] != '\0';

    if (s->grade != AUDIT_GRADE_A || s->trust_mark)
        return;
    if (srv && dane && !old && !alias && s->key_exchange >= 90) {
        s->grade = AUDIT_GRADE_APLUS;
        return;
    }
    if (!srv)
        finding_add(d, at, "A", "sign the zone with DNSSEC and publish SRV records",
                    "A+ needs a DNSSEC-signed SRV record (%s)",
                    d->fallback ? "no SRV record" : "SRV answer not secure");
    if (!dane)
        finding_add(d, at, "A", "publish DNSSEC-signed TLSA records matching the certificate",
                    "A+ needs matching DANE records (%s)", audit_dane_name(ep->dane));
}

void
audit_grade_endpoint(struct audit_domain *d, size_t i, struct audit_score *s)
{
    const struct audit_endpoint *ep = &d->endpoints[i];
    char at[AUDIT_STR];

    memset(s, 0, sizeof(*s));
    audit_endpoint_label(ep, at, sizeof(at));
    if (!ep->reachable) {
        s->grade = s->effective = AUDIT_GRADE_NONE;
        finding_add(d, at, "", "check that the server runs and that DNS points at it",
                    "unreachable: %s", ep->error);
        return;
    }
    score_components(ep, s);
    s->grade = letter_of(s->total);
    if (!any_tls(ep)) {
        if (ep->mode == DNS_TLS_STARTTLS && ep->pre_tls.seen && !ep->pre_tls.starttls)
            finding_add(d, at, "F", "enable TLS (STARTTLS) for server-to-server streams",
                        "STARTTLS not offered: no TLS at all");
        else
            finding_add(d, at, "F", "fix the TLS configuration of the server",
                        "no TLS handshake succeeded%s%s", ep->tls_error[0] ? ": " : "",
                        ep->tls_error);
        memset(s, 0, sizeof(*s));
        s->grade = s->effective = AUDIT_GRADE_F;
        return;
    }
    grade_caps(d, ep, at, s);
    grade_trust(d, ep, at, s);
    grade_aplus(d, ep, at, s);
    s->effective = s->trust_mark ? AUDIT_GRADE_T : s->grade;
}

/*
 * RFC 2782: the SRV target "MUST NOT be an alias". Peers that follow the CNAME still
 * connect (we do), stricter ones may not, and which name the TLSA records and the
 * certificate are for becomes ambiguous (RFC 7673 §3). One finding per alias target
 * name, capped at A: an endpoint reached through an alias cannot get A+.
 */
static void
alias_findings(struct audit_domain *d)
{
    if (d->fallback)
        return; /* the domain itself on 5269: no SRV, RFC 2782 does not apply */
    for (size_t i = 0; i < d->ntargets; i++) {
        const struct audit_target *t = &d->targets[i];
        bool seen = false;
        if (t->cname[0] == '\0')
            continue;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(d->targets[j].host, t->host) == 0;
        if (seen)
            continue;
        finding_add(d, "", "A", "point the SRV records at the canonical name, not at an alias",
                    "SRV target %s is an alias (CNAME) of %s: RFC 2782 says it MUST NOT be",
                    t->host, t->cname);
    }
}

void
audit_grade_domain(struct audit_domain *d)
{
    struct audit_score *worst = NULL;

    d->nfindings = 0;
    memset(&d->score, 0, sizeof(d->score));
    d->score.grade = d->score.effective = AUDIT_GRADE_NONE;
    if (d->no_service)
        finding_add(d, "", "", "publish SRV records pointing at the server, if it federates",
                    "the domain says it offers no XMPP server-to-server service (SRV \".\")");
    else if (d->nendpoints == 0)
        finding_add(d, "", "", "publish SRV (or A/AAAA) records for the domain",
                    "no endpoint to audit: %s",
                    d->dns_error[0] ? d->dns_error : dns_status_str(d->dns_status));
    alias_findings(d);
    for (size_t i = 0; i < d->nendpoints; i++) {
        struct audit_score *s = &d->scores[i];
        audit_grade_endpoint(d, i, s);
        if (s->effective == AUDIT_GRADE_NONE)
            continue;
        if (worst == NULL || grade_rank(s->effective) > grade_rank(worst->effective) ||
            (grade_rank(s->effective) == grade_rank(worst->effective) && s->grade > worst->grade) ||
            (s->effective == worst->effective && s->total < worst->total))
            worst = s;
    }
    if (worst != NULL)
        d->score = *worst;
}
