/*
 * Peer authentication facts and the certificate identity check shared by the sessions.
 */
#include "s2s/peerauth.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>
#include <openssl/x509_vfy.h>

#include "s2s/log.h"
#include "s2s/tls.h"

/* tls_info keeps NUL-terminated strings; certname wants (name, len) pairs. */
static struct certname_id *
ids_of(char **names, size_t n)
{
    struct certname_id *ids;

    if (n == 0)
        return NULL;
    if ((ids = calloc(n, sizeof(*ids))) == NULL)
        fatal("calloc");
    for (size_t i = 0; i < n; i++) {
        ids[i].name = names[i];
        ids[i].len = strlen(names[i]);
    }
    return ids;
}

enum peerauth_cert
peerauth_cert_check(const struct tls_info *ti, const struct certname_reference *ref, bool dane_ok,
                    bool dane_ee, enum certname_type *how)
{
    struct certname_presented p = {0};
    struct certname_id cn;
    enum certname_type t;

    *how = CERTNAME_NONE;
    if (ti == NULL || !ti->peer_cert)
        return PEERAUTH_CERT_ABSENT;
    if (!ti->chain_valid && !dane_ok)
        return PEERAUTH_CERT_UNTRUSTED;
    if (dane_ok && dane_ee) {
        /* RFC 7672 §3.1.1 / RFC 7673 §5: DANE-EE binds the key itself; names are moot. */
        *how = CERTNAME_DNS_ID;
        return PEERAUTH_CERT_VALID;
    }
    p.dns_ids = ids_of(ti->dns_names, ti->ndns_names);
    p.n_dns_ids = ti->ndns_names;
    p.srv_ids = ids_of(ti->srv_ids, ti->nsrv_ids);
    p.n_srv_ids = ti->nsrv_ids;
    p.xmpp_addrs = ids_of(ti->xmpp_addrs, ti->nxmpp_addrs);
    p.n_xmpp_addrs = ti->nxmpp_addrs;
    if (ti->subject_cn != NULL) {
        cn.name = ti->subject_cn;
        cn.len = strlen(ti->subject_cn);
        p.cns = &cn;
        p.n_cns = 1;
    }
    t = certname_match(&p, ref);
    free((void *)p.dns_ids);
    free((void *)p.srv_ids);
    free((void *)p.xmpp_addrs);
    *how = t;
    return t == CERTNAME_NONE ? PEERAUTH_CERT_MISMATCH : PEERAUTH_CERT_VALID;
}

bool
peerauth_cert_valid_for(const struct tls_info *ti, const char *domain)
{
    struct certname_reference ref = {
        .domain = domain,
        .services = CERTNAME_SVC_XMPP_SERVER | CERTNAME_SVC_XMPPS_SERVER,
    };
    enum certname_type how;

    if (domain == NULL)
        return false;
    return peerauth_cert_check(ti, &ref, false, false, &how) == PEERAUTH_CERT_VALID;
}

void
peerauth_set_tls(struct peerauth *pa, const struct tls_info *ti)
{
    pa->tls_version = ti != NULL ? ti->version : NULL;
    pa->cipher = ti != NULL ? ti->cipher : NULL;
    pa->verify_error = ti != NULL ? ti->verify_error : X509_V_OK;
}

const char *
peerauth_method_name(enum peerauth_method m)
{
    switch (m) {
    case PEERAUTH_SASL_EXTERNAL:
        return "sasl-external";
    case PEERAUTH_DIALBACK:
        return "dialback";
    case PEERAUTH_CERT_DIALBACK:
        return "dialback-cert";
    default:
        return "none";
    }
}

const char *
peerauth_cert_name(enum peerauth_cert c)
{
    switch (c) {
    case PEERAUTH_CERT_UNTRUSTED:
        return "untrusted";
    case PEERAUTH_CERT_MISMATCH:
        return "name-mismatch";
    case PEERAUTH_CERT_VALID:
        return "valid";
    default:
        return "absent";
    }
}

void
peerauth_stream_id(char out[PEERAUTH_STREAM_ID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char r[PEERAUTH_STREAM_ID_LEN / 2];

    if (RAND_bytes(r, sizeof(r)) != 1)
        fatalx("RAND_bytes failed");
    for (size_t i = 0; i < sizeof(r); i++) {
        out[2 * i] = hex[r[i] >> 4];
        out[2 * i + 1] = hex[r[i] & 0xf];
    }
    out[PEERAUTH_STREAM_ID_LEN] = '\0';
}

int
peerauth_jid_domain(const char *jid, char *out, size_t outsize)
{
    const char *slash, *at, *d;
    size_t len;

    if (jid == NULL)
        return -1;
    /* RFC 7622 §3.1: the resource starts at the first '/', the localpart ends at the
     * first '@' before it. */
    slash = strchr(jid, '/');
    len = slash != NULL ? (size_t)(slash - jid) : strlen(jid);
    at = memchr(jid, '@', len);
    d = at != NULL ? at + 1 : jid;
    len -= (size_t)(d - jid);
    if (len > 0 && d[len - 1] == '.')
        len--;
    if (len == 0 || len >= outsize)
        return -1;
    for (size_t i = 0; i < len; i++)
        out[i] = (char)tolower((unsigned char)d[i]);
    out[len] = '\0';
    return 0;
}
