/*
 * Probe contexts, handshake facts, and the protocol/cipher enumeration.
 *
 * Version probes set min = max = the version on the SSL; for TLS 1.0 and 1.1 the
 * security level goes to 0 for that probe only (OpenSSL 3 refuses their SHA-1
 * signatures above it) and every cipher OpenSSL knows is offered. Cipher probes offer one
 * cipher at a time (SSL_set_cipher_list for TLS <= 1.2, SSL_set_ciphersuites for 1.3).
 * Every probe goes through the XMPP steps (audit_probe.c).
 */
#include "s2s/audit_tls.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/x509v3.h>

#include "s2s/audit_probe.h"
#include "s2s/certname.h"
#include "s2s/log.h"
#include "s2s/tls.h"

#define LEGACY_CIPHERS "ALL:COMPLEMENTOFALL:!PSK:!SRP"

static const int tlsv_proto[AUDIT_NTLSV] = {TLS1_VERSION, TLS1_1_VERSION, TLS1_2_VERSION,
                                            TLS1_3_VERSION};

static const char *const tls13_suites[] = {
    "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_GCM_SHA256",
    "TLS_AES_128_CCM_SHA256", "TLS_AES_128_CCM_8_SHA256",
};

struct audit_tls {
    SSL_CTX *main;  /* verifying store, DANE, OCSP, our certificate with --as */
    SSL_CTX *probe; /* enumeration: no verification */
    bool as_cert;
    int testable[AUDIT_NTLSV]; /* 0 unknown, 1 yes, -1 no */
};

/* Verification is recorded, never fatal: the audit wants to see everything. */
static int
audit_verify_cb(int ok, X509_STORE_CTX *x)
{
    (void)ok;
    (void)x;
    return 1;
}

/* Accept whatever status the server staples; we only report it. */
static int
audit_ocsp_cb(SSL *ssl, void *arg)
{
    (void)ssl;
    (void)arg;
    return 1;
}

struct audit_tls *
audit_tls_new(const struct audit_options *o, char *err, size_t errlen)
{
    struct audit_tls *t;
    char ebuf[256];

    if ((t = calloc(1, sizeof(*t))) == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->main = SSL_CTX_new(TLS_client_method());
    t->probe = SSL_CTX_new(TLS_client_method());
    if (t->main == NULL || t->probe == NULL)
        goto fail_ssl;
    if (o->ca_file != NULL || o->ca_path != NULL) {
        if (!SSL_CTX_load_verify_locations(t->main, o->ca_file, o->ca_path)) {
            snprintf(err, errlen, "CA store %s: %s", o->ca_file ? o->ca_file : o->ca_path,
                     tls_error_string(ebuf, sizeof(ebuf), "cannot load"));
            goto fail;
        }
    } else if (!SSL_CTX_set_default_verify_paths(t->main)) {
        goto fail_ssl;
    }
    SSL_CTX_set_verify(t->main, SSL_VERIFY_PEER, audit_verify_cb);
    SSL_CTX_set_min_proto_version(t->main, TLS1_2_VERSION);
    if (SSL_CTX_dane_enable(t->main) <= 0)
        goto fail_ssl;
    SSL_CTX_set_tlsext_status_cb(t->main, audit_ocsp_cb);
    if (o->as_cert_file != NULL) {
        if (SSL_CTX_use_certificate_chain_file(t->main, o->as_cert_file) != 1 ||
            SSL_CTX_use_PrivateKey_file(t->main, o->as_key_file, SSL_FILETYPE_PEM) != 1) {
            snprintf(err, errlen, "certificate for --as %s: %s", o->as_domain,
                     tls_error_string(ebuf, sizeof(ebuf), "cannot load"));
            goto fail;
        }
        t->as_cert = true;
    }
    SSL_CTX_set_verify(t->probe, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_min_proto_version(t->probe, 0);
    SSL_CTX_set_max_proto_version(t->probe, 0);
    return t;
fail_ssl:
    snprintf(err, errlen, "OpenSSL: %s", tls_error_string(ebuf, sizeof(ebuf), "setup failed"));
fail:
    audit_tls_free(t);
    return NULL;
}

void
audit_tls_free(struct audit_tls *t)
{
    if (t == NULL)
        return;
    SSL_CTX_free(t->main);
    SSL_CTX_free(t->probe);
    free(t);
}

static bool
is_ip_literal(const char *name)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

static void
ssl_common(SSL *ssl, const char *domain, enum dns_tls_mode mode)
{
    static const unsigned char alpn[] = "\x0bxmpp-server";

    if (!is_ip_literal(domain))
        SSL_set_tlsext_host_name(ssl, domain);
    if (mode == DNS_TLS_DIRECT)
        SSL_set_alpn_protos(ssl, alpn, sizeof(alpn) - 1); /* XEP-0368 §3 */
}

SSL *
audit_tls_main_ssl(struct audit_tls *t, const char *domain, const char *target,
                   enum dns_tls_mode mode, const struct dns_tlsa *tlsa, size_t ntlsa, bool legacy)
{
    SSL *ssl;

    if ((ssl = SSL_new(t->main)) == NULL)
        return NULL;
    if (legacy) {
        SSL_set_security_level(ssl, 0);
        if (!SSL_set_min_proto_version(ssl, TLS1_VERSION) ||
            !SSL_set_cipher_list(ssl, LEGACY_CIPHERS)) {
            SSL_free(ssl);
            return NULL;
        }
    }
    ssl_common(ssl, domain, mode);
    SSL_set_tlsext_status_type(ssl, TLSEXT_STATUSTYPE_ocsp);
    if (ntlsa > 0) {
        /* RFC 7673 §4: the domain and the secure SRV target are reference identities. */
        if (SSL_dane_enable(ssl, domain) <= 0) {
            SSL_free(ssl);
            return NULL;
        }
        /* RFC 7671 §5.1: DANE-EE(3) binds the key to the service, names do not matter. */
        SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
        if (target != NULL && strcasecmp(target, domain) != 0)
            SSL_add1_host(ssl, target);
        for (size_t i = 0; i < ntlsa; i++)
            SSL_dane_tlsa_add(ssl, tlsa[i].usage, tlsa[i].selector, tlsa[i].mtype, tlsa[i].data,
                              tlsa[i].len);
    }
    return ssl;
}

/* ---- facts ---- */

static void
asn1_time_iso(const ASN1_TIME *t, char *buf, size_t len)
{
    struct tm tm;

    if (t == NULL || !ASN1_TIME_to_tm(t, &tm)) {
        snprintf(buf, len, "?");
        return;
    }
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void
copy_names(char dst[][AUDIT_STR], size_t *n, char **src, size_t nsrc)
{
    for (*n = 0; *n < nsrc && *n < AUDIT_MAX_NAMES; (*n)++)
        snprintf(dst[*n], AUDIT_STR, "%s", src[*n]);
}

static void
key_facts(X509 *x, struct audit_cert *c)
{
    EVP_PKEY *pk = X509_get0_pubkey(x);
    int nid;

    if (pk == NULL)
        return;
    c->key_bits = EVP_PKEY_get_bits(pk);
    c->key_secbits = EVP_PKEY_get_security_bits(pk);
    switch (EVP_PKEY_get_base_id(pk)) {
    case EVP_PKEY_RSA:
        snprintf(c->key_type, sizeof(c->key_type), "RSA");
        break;
    case EVP_PKEY_EC:
        snprintf(c->key_type, sizeof(c->key_type), "EC");
        break;
    case EVP_PKEY_ED25519:
        snprintf(c->key_type, sizeof(c->key_type), "Ed25519");
        break;
    case EVP_PKEY_ED448:
        snprintf(c->key_type, sizeof(c->key_type), "Ed448");
        break;
    default:
        snprintf(c->key_type, sizeof(c->key_type), "%s", EVP_PKEY_get0_type_name(pk));
    }
    nid = X509_get_signature_nid(x);
    snprintf(c->sig_alg, sizeof(c->sig_alg), "%s", OBJ_nid2ln(nid));
}

/* PKIX, apart from DANE (which may have decided the handshake's own verification). */
static void
pkix_verify(SSL_CTX *ctx, SSL *ssl, X509 *leaf, struct audit_cert *c)
{
    X509_STORE_CTX *sctx = X509_STORE_CTX_new();
    int ok = 0;

    if (sctx != NULL && X509_STORE_CTX_init(sctx, SSL_CTX_get_cert_store(ctx), leaf,
                                            SSL_get_peer_cert_chain(ssl))) {
        X509_STORE_CTX_set_purpose(sctx, X509_PURPOSE_SSL_SERVER);
        ok = X509_verify_cert(sctx) == 1;
        c->chain_valid = ok;
        if (!ok)
            snprintf(c->verify_error, sizeof(c->verify_error), "%s",
                     X509_verify_cert_error_string(X509_STORE_CTX_get_error(sctx)));
    } else {
        snprintf(c->verify_error, sizeof(c->verify_error), "verification could not run");
    }
    X509_STORE_CTX_free(sctx);
}

static struct certname_id *
ids_of(char **v, size_t n)
{
    struct certname_id *ids = calloc(n + 1, sizeof(*ids));
    for (size_t i = 0; ids != NULL && i < n; i++) {
        ids[i].name = v[i];
        ids[i].len = strlen(v[i]);
    }
    return ids;
}

static void
name_check(const struct tls_info *ti, const char *domain, const char *srv_target, bool srv_secure,
           struct audit_cert *c)
{
    struct certname_id cn = {ti->subject_cn, ti->subject_cn ? strlen(ti->subject_cn) : 0};
    struct certname_id *dns = ids_of(ti->dns_names, ti->ndns_names);
    struct certname_id *srv = ids_of(ti->srv_ids, ti->nsrv_ids);
    struct certname_id *xa = ids_of(ti->xmpp_addrs, ti->nxmpp_addrs);
    struct certname_presented pr = {dns,  ti->ndns_names,  srv, ti->nsrv_ids,
                                    xa,   ti->nxmpp_addrs, &cn, ti->subject_cn ? 1 : 0,
                                    false};
    struct certname_reference ref = {
        .domain = domain,
        .services = CERTNAME_SVC_XMPP_SERVER | CERTNAME_SVC_XMPPS_SERVER,
        .srv_target = srv_target,
        .srv_secure = srv_secure,
        .cn_fallback = false, /* as the federation engine: RFC 9525 §6.4.4 */
    };
    enum certname_type m = CERTNAME_NONE;

    if (dns != NULL && srv != NULL && xa != NULL)
        m = certname_match(&pr, &ref);
    c->name_valid = m != CERTNAME_NONE;
    snprintf(c->name_match, sizeof(c->name_match), "%s", certname_type_name(m));
    free(dns);
    free(srv);
    free(xa);
}

static void
cert_facts(struct audit_tls *t, SSL *ssl, const char *domain, const char *srv_target,
           bool srv_secure, struct audit_cert *c)
{
    struct tls_info ti;
    X509 *x = SSL_get0_peer_certificate(ssl);
    unsigned char md[32];
    unsigned int mdlen = 0;
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
    int days = 0, secs = 0;

    if (x == NULL)
        return;
    c->present = true;
    memset(&ti, 0, sizeof(ti));
    tls_cert_identities(x, &ti);
    X509_NAME_oneline(X509_get_subject_name(x), c->subject, sizeof(c->subject));
    X509_NAME_oneline(X509_get_issuer_name(x), c->issuer, sizeof(c->issuer));
    copy_names(c->dns_names, &c->ndns_names, ti.dns_names, ti.ndns_names);
    copy_names(c->srv_ids, &c->nsrv_ids, ti.srv_ids, ti.nsrv_ids);
    copy_names(c->xmpp_addrs, &c->nxmpp_addrs, ti.xmpp_addrs, ti.nxmpp_addrs);
    key_facts(x, c);
    asn1_time_iso(X509_get0_notBefore(x), c->not_before, sizeof(c->not_before));
    asn1_time_iso(X509_get0_notAfter(x), c->not_after, sizeof(c->not_after));
    if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x)))
        c->days_left = days - (secs < 0 ? 1 : 0);
    if (X509_digest(x, EVP_sha256(), md, &mdlen))
        for (unsigned i = 0; i < mdlen && i < 32; i++)
            snprintf(c->sha256 + 2 * i, 3, "%02x", md[i]);
    c->chain_len = chain != NULL ? sk_X509_num(chain) : 1;
    pkix_verify(t->main, ssl, x, c);
    name_check(&ti, domain, srv_target, srv_secure, c);
    tls_info_clear(&ti);
}

/* Key exchange strength of the current session in security bits; 0 anonymous. */
static int
kx_facts(SSL *ssl, char *kx, size_t len, bool *fs)
{
    const SSL_CIPHER *ci = SSL_get_current_cipher(ssl);
    int kx_nid = ci ? SSL_CIPHER_get_kx_nid(ci) : NID_undef;
    int auth_nid = ci ? SSL_CIPHER_get_auth_nid(ci) : NID_undef;
    EVP_PKEY *tmp = NULL;
    int bits = -1;

    *fs = kx_nid == NID_kx_ecdhe || kx_nid == NID_kx_dhe || kx_nid == NID_kx_any ||
          kx_nid == NID_kx_ecdhe_psk || kx_nid == NID_kx_dhe_psk;
    if (SSL_get_peer_tmp_key(ssl, &tmp) && tmp != NULL) {
        int nid = SSL_get_negotiated_group(ssl);
        bits = EVP_PKEY_get_security_bits(tmp);
        if (EVP_PKEY_get_base_id(tmp) == EVP_PKEY_DH)
            snprintf(kx, len, "DHE %d", EVP_PKEY_get_bits(tmp));
        else
            snprintf(kx, len, "ECDHE %s",
                     nid > 0 ? SSL_group_to_name(ssl, nid) : EVP_PKEY_get0_type_name(tmp));
        EVP_PKEY_free(tmp);
    } else if (kx_nid == NID_kx_rsa) {
        X509 *x = SSL_get0_peer_certificate(ssl);
        EVP_PKEY *pk = x ? X509_get0_pubkey(x) : NULL;
        bits = pk ? EVP_PKEY_get_security_bits(pk) : -1;
        snprintf(kx, len, "RSA %d", pk ? EVP_PKEY_get_bits(pk) : 0);
    } else {
        snprintf(kx, len, "%s", ci ? OBJ_nid2sn(kx_nid) : "?");
    }
    if (auth_nid == NID_auth_null)
        bits = 0;
    return bits;
}

void
audit_tls_collect(struct audit_tls *t, SSL *ssl, const char *domain, const char *srv_target,
                  bool srv_secure, bool dane_used, struct audit_endpoint *ep)
{
    const unsigned char *alpn = NULL, *ocsp = NULL;
    unsigned int alen = 0;
    const SSL_CIPHER *ci = SSL_get_current_cipher(ssl);
    char kx[32];
    bool fs;
    int nid;

    snprintf(ep->tls_version, sizeof(ep->tls_version), "%s", SSL_get_version(ssl));
    snprintf(ep->tls_cipher, sizeof(ep->tls_cipher), "%s", ci ? SSL_CIPHER_get_name(ci) : "");
    ep->tls_cipher_bits = ci ? SSL_CIPHER_get_bits(ci, NULL) : 0;
    if ((nid = SSL_get_negotiated_group(ssl)) > 0)
        snprintf(ep->tls_group, sizeof(ep->tls_group), "%s", SSL_group_to_name(ssl, nid));
    ep->tls_kx_secbits = kx_facts(ssl, kx, sizeof(kx), &fs);
    SSL_get0_alpn_selected(ssl, &alpn, &alen);
    snprintf(ep->alpn, sizeof(ep->alpn), "%.*s", (int)alen, alpn ? (const char *)alpn : "");
    ep->ocsp_stapled = SSL_get_tlsext_status_ocsp_resp(ssl, &ocsp) > 0 && ocsp != NULL;
    cert_facts(t, ssl, domain, srv_target, srv_secure, &ep->cert);
    if (dane_used)
        ep->dane =
            SSL_get0_dane_authority(ssl, NULL, NULL) >= 0 ? AUDIT_DANE_MATCH : AUDIT_DANE_MISMATCH;
}

/* ---- what the local OpenSSL can offer ---- */

static SSL *
probe_ssl(struct audit_tls *t, enum audit_tlsv v, const char *cipher, const char *domain,
          enum dns_tls_mode mode)
{
    SSL *ssl = SSL_new(t->probe);

    if (ssl == NULL)
        return NULL;
    if (!SSL_set_min_proto_version(ssl, tlsv_proto[v]) ||
        !SSL_set_max_proto_version(ssl, tlsv_proto[v]))
        goto fail;
    if (v == AUDIT_TLS13) {
        if (cipher != NULL && !SSL_set_ciphersuites(ssl, cipher))
            goto fail;
    } else {
        /* Security level 0 for this probe only: legacy versions and weak ciphers. */
        SSL_set_security_level(ssl, 0);
        if (!SSL_set_cipher_list(ssl, cipher != NULL ? cipher : LEGACY_CIPHERS))
            goto fail;
    }
    if (domain != NULL)
        ssl_common(ssl, domain, mode);
    return ssl;
fail:
    SSL_free(ssl);
    return NULL;
}

bool
audit_tls_testable(struct audit_tls *t, enum audit_tlsv v)
{
    if (t->testable[v] == 0) {
        SSL *ssl = probe_ssl(t, v, NULL, NULL, DNS_TLS_STARTTLS);
        STACK_OF(SSL_CIPHER) *sk = ssl ? SSL_get1_supported_ciphers(ssl) : NULL;
        t->testable[v] = sk != NULL && sk_SSL_CIPHER_num(sk) > 0 ? 1 : -1;
        sk_SSL_CIPHER_free(sk);
        SSL_free(ssl);
        ERR_clear_error();
    }
    return t->testable[v] > 0;
}

/* ---- enumeration, bounded per remote address ---- */

struct enum_job {
    enum audit_tlsv v;
    char cipher[64]; /* "" for a version probe */
};

struct addr_slot {
    LIST_ENTRY(addr_slot) entry;
    char addr[64];
    unsigned busy;
    unsigned users;
    TAILQ_HEAD(, audit_enum) waiters;
};

struct audit_enum {
    struct event_base *base;
    struct audit_tls *tls;
    struct sockaddr_storage sa;
    socklen_t salen;
    char domain[DNS_NAME_MAX + 1];
    unsigned timeout_ms;
    unsigned per_addr;
    struct audit_endpoint *ep;
    audit_enum_fn done;
    void *arg;

    struct addr_slot *slot;
    bool waiting;
    TAILQ_ENTRY(audit_enum) wait_entry;
    struct event *kick; /* runs the pump from the loop */

    struct enum_job *jobs;
    size_t njobs, cap, next;
    unsigned running;
    bool ciphers_queued;
    struct enum_run **probes; /* running ones, for cancel */
    size_t nprobes;
};

struct enum_run {
    struct audit_enum *e;
    struct audit_probe *probe;
    struct enum_job job;
    size_t idx; /* in e->probes */
};

static LIST_HEAD(, addr_slot) addr_slots = LIST_HEAD_INITIALIZER(addr_slots);

static struct addr_slot *
slot_get(const char *addr)
{
    struct addr_slot *s;

    LIST_FOREACH(s, &addr_slots, entry)
    if (strcmp(s->addr, addr) == 0)
        break;
    if (s == NULL) {
        if ((s = calloc(1, sizeof(*s))) == NULL)
            return NULL;
        snprintf(s->addr, sizeof(s->addr), "%s", addr);
        TAILQ_INIT(&s->waiters);
        LIST_INSERT_HEAD(&addr_slots, s, entry);
    }
    s->users++;
    return s;
}

static void
slot_put(struct addr_slot *s)
{
    if (--s->users == 0) {
        LIST_REMOVE(s, entry);
        free(s);
    }
}

/* A slot came free: let the first waiting enumeration try again (from the loop). */
static void
slot_release(struct addr_slot *s)
{
    struct audit_enum *w;

    s->busy--;
    if ((w = TAILQ_FIRST(&s->waiters)) != NULL) {
        TAILQ_REMOVE(&s->waiters, w, wait_entry);
        w->waiting = false;
        event_active(w->kick, EV_TIMEOUT, 0);
    }
}

static int
job_add(struct audit_enum *e, enum audit_tlsv v, const char *cipher)
{
    if (e->njobs == e->cap) {
        size_t ncap = e->cap ? 2 * e->cap : 64;
        struct enum_job *nj = realloc(e->jobs, ncap * sizeof(*nj));
        if (nj == NULL)
            return -1;
        e->jobs = nj;
        e->cap = ncap;
    }
    e->jobs[e->njobs].v = v;
    snprintf(e->jobs[e->njobs].cipher, sizeof(e->jobs[e->njobs].cipher), "%s", cipher);
    e->njobs++;
    return 0;
}

/* Every cipher the local OpenSSL can offer at version v, one job each. */
static void
queue_ciphers(struct audit_enum *e, enum audit_tlsv v)
{
    SSL *ssl;
    STACK_OF(SSL_CIPHER) * sk;

    if (v == AUDIT_TLS13) {
        for (size_t i = 0; i < sizeof(tls13_suites) / sizeof(tls13_suites[0]); i++)
            job_add(e, v, tls13_suites[i]);
        return;
    }
    if ((ssl = probe_ssl(e->tls, v, NULL, NULL, DNS_TLS_STARTTLS)) == NULL)
        return;
    if ((sk = SSL_get1_supported_ciphers(ssl)) != NULL) {
        for (int i = 0; i < sk_SSL_CIPHER_num(sk); i++) {
            const SSL_CIPHER *c = sk_SSL_CIPHER_value(sk, i);
            /* The list already leaves out what version v cannot use; 1.3 suites too. */
            if ((SSL_CIPHER_get_protocol_id(c) >> 8) == 0x13)
                continue;
            job_add(e, v, SSL_CIPHER_get_name(c));
        }
        sk_SSL_CIPHER_free(sk);
    }
    SSL_free(ssl);
}

static void enum_pump(struct audit_enum *e);

static void
enum_record(struct audit_enum *e, const struct enum_job *job, SSL *ssl,
            const struct audit_probe_result *res)
{
    struct audit_endpoint *ep = e->ep;
    struct audit_cipher *c;
    const SSL_CIPHER *ci;

    ep->probes++;
    if (job->cipher[0] == '\0') {
        /* A probe that never got to the handshake learnt nothing about the version. */
        ep->versions[job->v] = res->tls       ? AUDIT_V_ACCEPTED
                               : res->xmpp_ok ? AUDIT_V_REJECTED
                                              : AUDIT_V_UNTESTED;
        if (!res->xmpp_ok)
            log_debug("audit: version probe %s did not reach TLS: %s", audit_tlsv_name(job->v),
                      res->error);
        return;
    }
    if (!res->tls || ep->nciphers[job->v] >= AUDIT_MAX_CIPHERS)
        return;
    c = &ep->ciphers[job->v][ep->nciphers[job->v]++];
    ci = SSL_get_current_cipher(ssl);
    snprintf(c->name, sizeof(c->name), "%s", ci ? SSL_CIPHER_get_name(ci) : job->cipher);
    c->bits = ci ? SSL_CIPHER_get_bits(ci, NULL) : 0;
    c->kx_secbits = kx_facts(ssl, c->kx, sizeof(c->kx), &c->fs);
}

static void
enum_probe_done(struct audit_probe *p, SSL *ssl, const struct audit_probe_result *res, void *arg)
{
    struct enum_run *r = arg;
    struct audit_enum *e = r->e;

    (void)p;
    e->probes[r->idx] = NULL;
    enum_record(e, &r->job, ssl, res);
    free(r);
    e->running--;
    slot_release(e->slot);
    event_active(e->kick, EV_TIMEOUT, 0);
}

static bool
enum_start_job(struct audit_enum *e, const struct enum_job *job)
{
    struct audit_probe_params prm = {
        .mode = AUDIT_PROBE_HANDSHAKE,
        .tls_mode = e->ep->mode,
        .domain = e->domain,
        .timeout_ms = e->timeout_ms,
    };
    struct enum_run *r;
    char err[128];
    SSL *ssl;
    size_t idx;

    for (idx = 0; idx < e->nprobes && e->probes[idx] != NULL; idx++)
        ;
    if (idx == e->nprobes || (r = calloc(1, sizeof(*r))) == NULL)
        return false;
    if ((ssl = probe_ssl(e->tls, job->v, job->cipher[0] ? job->cipher : NULL, e->domain,
                         e->ep->mode)) == NULL) {
        /* The local OpenSSL refuses this cipher at this version: nothing to learn. */
        free(r);
        ERR_clear_error();
        return true;
    }
    r->e = e;
    r->job = *job;
    r->idx = idx;
    r->probe = audit_probe_start(e->base, (struct sockaddr *)&e->sa, e->salen, ssl, &prm,
                                 enum_probe_done, r, err, sizeof(err));
    if (r->probe == NULL) {
        free(r);
        return true;
    }
    e->probes[idx] = r;
    e->running++;
    e->slot->busy++;
    return true;
}

/* After the version probes: one job per cipher of every accepted version. */
static void
enum_queue_cipher_jobs(struct audit_enum *e)
{
    e->ciphers_queued = true;
    for (int v = 0; v < AUDIT_NTLSV; v++)
        if (e->ep->versions[v] == AUDIT_V_ACCEPTED)
            queue_ciphers(e, v);
}

static void
enum_finish(struct audit_enum *e)
{
    audit_enum_fn done = e->done;
    struct audit_endpoint *ep = e->ep;
    void *arg = e->arg;

    audit_enum_cancel(e);
    done(ep, arg);
}

static void
enum_pump(struct audit_enum *e)
{
    while (e->next < e->njobs && e->running < e->per_addr && e->slot->busy < e->per_addr) {
        if (!enum_start_job(e, &e->jobs[e->next]))
            break;
        e->next++;
    }
    if (e->next < e->njobs && e->running == 0 && !e->waiting) {
        /* Every slot of this address is held by other enumerations: wait for one. */
        TAILQ_INSERT_TAIL(&e->slot->waiters, e, wait_entry);
        e->waiting = true;
        return;
    }
    if (e->next < e->njobs || e->running > 0)
        return;
    if (!e->ciphers_queued) {
        enum_queue_cipher_jobs(e);
        if (e->next < e->njobs) {
            enum_pump(e);
            return;
        }
    }
    enum_finish(e);
}

static void
enum_kick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    enum_pump(arg);
}

struct audit_enum *
audit_enum_start(struct event_base *base, struct audit_tls *t, const struct sockaddr *sa,
                 socklen_t salen, const char *domain, unsigned timeout_ms, unsigned per_addr,
                 struct audit_endpoint *ep, audit_enum_fn done, void *arg)
{
    struct audit_enum *e;

    if ((e = calloc(1, sizeof(*e))) == NULL)
        return NULL;
    e->base = base;
    e->tls = t;
    memcpy(&e->sa, sa, salen);
    e->salen = salen;
    snprintf(e->domain, sizeof(e->domain), "%s", domain);
    e->timeout_ms = timeout_ms;
    e->per_addr = per_addr ? per_addr : 4;
    e->ep = ep;
    e->done = done;
    e->arg = arg;
    e->nprobes = e->per_addr;
    e->probes = calloc(e->nprobes, sizeof(*e->probes));
    e->kick = event_new(base, -1, 0, enum_kick, e);
    e->slot = slot_get(ep->addr);
    if (e->probes == NULL || e->kick == NULL || e->slot == NULL) {
        free(e->probes);
        if (e->kick)
            event_free(e->kick);
        if (e->slot)
            slot_put(e->slot);
        free(e);
        return NULL;
    }
    for (int v = 0; v < AUDIT_NTLSV; v++) {
        if (audit_tls_testable(t, v))
            job_add(e, v, "");
        else
            ep->versions[v] = AUDIT_V_NOT_TESTABLE;
    }
    event_active(e->kick, EV_TIMEOUT, 0);
    return e;
}

void
audit_enum_cancel(struct audit_enum *e)
{
    for (size_t i = 0; i < e->nprobes; i++) {
        if (e->probes[i] != NULL) {
            audit_probe_cancel(e->probes[i]->probe);
            free(e->probes[i]);
            e->slot->busy--;
        }
    }
    if (e->waiting)
        TAILQ_REMOVE(&e->slot->waiters, e, wait_entry);
    slot_put(e->slot);
    event_free(e->kick);
    free(e->probes);
    free(e->jobs);
    free(e);
}
