/*
 * TLS contexts: one SSL_CTX for every hosted domain, both roles, certificate picked by SNI.
 *
 * Lifetime: the tls_ctx refcount counts its owners (config, reload in progress); each
 * SSL made from it holds the SSL_CTX through OpenSSL's own refcount, and the host
 * certificates hang off the SSL_CTX's ex_data so they live exactly as long as the last
 * SSL that may still select one. tls_ctx_unref dropping to zero releases only the owners'
 * hold on the SSL_CTX.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "s2s/log.h"
#include "s2s/tls.h"

struct tls_cert {
    char *domain;
    X509 *cert;
    STACK_OF(X509) * chain;
    EVP_PKEY *key;
};

struct tls_ctx {
    atomic_int refs; /* config owners (loops may share it); SSLs hold ssl_ctx instead */
    SSL_CTX *ssl_ctx;
    struct tls_cert *certs; /* certs[0] is the default */
    size_t ncerts;
};

/* ALPN wire format: length-prefixed protocol names (RFC 7301 §3.1). */
static const unsigned char alpn_xmpp_server[] = "\x0bxmpp-server";

static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static int tls_ctx_idx = -1; /* SSL_CTX ex_data: struct tls_ctx * */
static int tls_ssl_idx = -1; /* SSL ex_data: first verify error + 1 */

static void tls_ctx_exfree(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                           void *argp);

static void
tls_init_once(void)
{
    tls_ctx_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, tls_ctx_exfree);
    tls_ssl_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    if (tls_ctx_idx < 0 || tls_ssl_idx < 0)
        fatalx("%s: cannot allocate OpenSSL ex_data indexes", __func__);
}

const char *
tls_error_string(char *buf, size_t len, const char *fallback)
{
    unsigned long e, first = 0;

    /* The first error is the root cause; later ones are the callers reporting it. */
    while ((e = ERR_get_error()) != 0)
        if (first == 0)
            first = e;
    if (first == 0)
        snprintf(buf, len, "%s", fallback);
    else
        ERR_error_string_n(first, buf, len);
    return buf;
}

static void
tls_certs_free(struct tls_cert *certs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(certs[i].domain);
        X509_free(certs[i].cert);
        sk_X509_pop_free(certs[i].chain, X509_free);
        EVP_PKEY_free(certs[i].key);
    }
    free(certs);
}

static void
tls_ctx_exfree(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    struct tls_ctx *ctx = ptr;

    if (ctx == NULL)
        return;
    tls_certs_free(ctx->certs, ctx->ncerts);
    free(ctx);
}

/* Never prompt on a terminal for a passphrase: an encrypted key is a config error. */
static int
tls_no_passphrase(char *buf, int size, int rwflag, void *u)
{
    return -1;
}

static int
tls_load_chain(struct tls_cert *tc, const char *file, char *err, size_t errlen)
{
    FILE *fp;
    X509 *x;
    char ebuf[256];

    if ((fp = fopen(file, "r")) == NULL) {
        snprintf(err, errlen, "%s: %s: %s", tc->domain, file, strerror(errno));
        return -1;
    }
    tc->cert = PEM_read_X509(fp, NULL, tls_no_passphrase, NULL);
    if (tc->cert == NULL) {
        fclose(fp);
        snprintf(err, errlen, "%s: %s: no certificate: %s", tc->domain, file,
                 tls_error_string(ebuf, sizeof(ebuf), "no PEM certificate"));
        return -1;
    }
    if ((tc->chain = sk_X509_new_null()) == NULL)
        fatalx("%s: out of memory", __func__);
    /* Intermediates follow the leaf in the same file (RFC 8446 §4.4.2 order). */
    while ((x = PEM_read_X509(fp, NULL, tls_no_passphrase, NULL)) != NULL)
        if (!sk_X509_push(tc->chain, x))
            fatalx("%s: out of memory", __func__);
    ERR_clear_error(); /* the read that ended the loop reports "no start line" */
    fclose(fp);
    return 0;
}

static int
tls_load_key(struct tls_cert *tc, const char *file, char *err, size_t errlen)
{
    FILE *fp;
    char ebuf[256];

    if ((fp = fopen(file, "r")) == NULL) {
        snprintf(err, errlen, "%s: %s: %s", tc->domain, file, strerror(errno));
        return -1;
    }
    tc->key = PEM_read_PrivateKey(fp, NULL, tls_no_passphrase, NULL);
    fclose(fp);
    if (tc->key == NULL) {
        snprintf(err, errlen, "%s: %s: no private key: %s", tc->domain, file,
                 tls_error_string(ebuf, sizeof(ebuf), "no PEM private key"));
        return -1;
    }
    if (!X509_check_private_key(tc->cert, tc->key)) {
        ERR_clear_error();
        snprintf(err, errlen, "%s: %s: key does not match certificate", tc->domain, file);
        return -1;
    }
    return 0;
}

static int
tls_load_host(struct tls_cert *tc, const struct tls_host *h, char *err, size_t errlen)
{
    if (h->domain == NULL || h->cert_file == NULL || h->key_file == NULL) {
        snprintf(err, errlen, "%s: certificate and key files are required",
                 h->domain ? h->domain : "(no domain)");
        return -1;
    }
    if ((tc->domain = strdup(h->domain)) == NULL)
        fatalx("%s: out of memory", __func__);
    if (tls_load_chain(tc, h->cert_file, err, errlen) == -1)
        return -1;
    return tls_load_key(tc, h->key_file, err, errlen);
}

static const struct tls_cert *
tls_cert_find(const struct tls_ctx *ctx, const char *domain)
{
    if (domain == NULL)
        return NULL;
    for (size_t i = 0; i < ctx->ncerts; i++)
        if (strcasecmp(ctx->certs[i].domain, domain) == 0)
            return &ctx->certs[i];
    return NULL;
}

static int
tls_use_cert(SSL *ssl, const struct tls_cert *tc)
{
    return SSL_use_cert_and_key(ssl, tc->cert, tc->key, tc->chain, 1);
}

/*
 * Server: pick the hosted domain's certificate named by SNI (RFC 6066 §3), exact match
 * ignoring case; no or unknown SNI keeps the default (first host) set on the SSL_CTX.
 * OpenSSL >= 1.1.1 calls this for every ClientHello, with or without SNI.
 */
static int
tls_servername_cb(SSL *ssl, int *alert, void *arg)
{
    const struct tls_ctx *ctx = arg;
    const struct tls_cert *tc;

    tc = tls_cert_find(ctx, SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name));
    if (tc == NULL)
        return SSL_TLSEXT_ERR_NOACK;
    if (tc != &ctx->certs[0] && tls_use_cert(ssl, tc) != 1) {
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    return SSL_TLSEXT_ERR_OK;
}

/* Server: accept "xmpp-server" when the client offers it (XEP-0368 §3), else no ALPN. */
static int
tls_alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    unsigned char *sel;

    if (SSL_select_next_proto(&sel, outlen, alpn_xmpp_server, sizeof(alpn_xmpp_server) - 1, in,
                              inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/*
 * Both roles: let the handshake complete whatever the chain looks like and remember the
 * first problem; the session decides what an invalid chain means (dialback may still
 * authenticate the peer, XEP-0220 §2.4).
 */
static int
tls_verify_cb(int ok, X509_STORE_CTX *xctx)
{
    SSL *ssl;

    if (ok)
        return 1;
    ssl = X509_STORE_CTX_get_ex_data(xctx, SSL_get_ex_data_X509_STORE_CTX_idx());
    if (ssl != NULL && SSL_get_ex_data(ssl, tls_ssl_idx) == NULL)
        SSL_set_ex_data(ssl, tls_ssl_idx, (void *)(intptr_t)(X509_STORE_CTX_get_error(xctx) + 1));
    return 1;
}

static int
tls_ctx_setup(struct tls_ctx *ctx, const struct tls_settings *s, char *err, size_t errlen)
{
    SSL_CTX *sc = ctx->ssl_ctx;
    int minv = s->min_version ? s->min_version : TLS1_2_VERSION;
    char ebuf[256];

    /* RFC 7590 §3.1: TLS 1.2 or later. */
    if (minv != TLS1_2_VERSION && minv != TLS1_3_VERSION) {
        snprintf(err, errlen, "tls: min_version 0x%x unsupported (TLS 1.2 or 1.3)", minv);
        return -1;
    }
    if (!SSL_CTX_set_min_proto_version(sc, minv)) {
        snprintf(err, errlen, "tls: min_version: %s",
                 tls_error_string(ebuf, sizeof(ebuf), "rejected"));
        return -1;
    }
    SSL_CTX_set_options(sc, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* Idle streams dominate an s2s proxy: drop the 2x ~17 KiB record buffers when idle.
     * conn.c retries a blocked SSL_write from an evbuffer that may move, and takes
     * partial writes so one record goes out per SSL_write. */
    SSL_CTX_set_mode(sc, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                             SSL_MODE_ENABLE_PARTIAL_WRITE);
    if (s->ciphers && !SSL_CTX_set_cipher_list(sc, s->ciphers)) {
        snprintf(err, errlen, "tls: ciphers \"%s\": %s", s->ciphers,
                 tls_error_string(ebuf, sizeof(ebuf), "rejected"));
        return -1;
    }
    if (s->ciphersuites && !SSL_CTX_set_ciphersuites(sc, s->ciphersuites)) {
        snprintf(err, errlen, "tls: ciphersuites \"%s\": %s", s->ciphersuites,
                 tls_error_string(ebuf, sizeof(ebuf), "rejected"));
        return -1;
    }
    if (s->ca_file || s->ca_path) {
        if (!SSL_CTX_load_verify_locations(sc, s->ca_file, s->ca_path)) {
            snprintf(err, errlen, "tls: %s: cannot load CA certificates: %s",
                     s->ca_file ? s->ca_file : s->ca_path,
                     tls_error_string(ebuf, sizeof(ebuf), "unreadable"));
            return -1;
        }
    } else if (!SSL_CTX_set_default_verify_paths(sc)) {
        snprintf(err, errlen, "tls: system CA store: %s",
                 tls_error_string(ebuf, sizeof(ebuf), "unreadable"));
        return -1;
    }
    /* Server: ask for a client certificate (SASL EXTERNAL, XEP-0178) but do not require
     * it; client: verify the server. Neither fails the handshake (tls_verify_cb). */
    SSL_CTX_set_verify(sc, SSL_VERIFY_PEER, tls_verify_cb);
    /* Resumption with client certificates needs a session id context. */
    SSL_CTX_set_session_id_context(sc, (const unsigned char *)"s2sproxy", 8);
    SSL_CTX_set_tlsext_servername_callback(sc, tls_servername_cb);
    SSL_CTX_set_tlsext_servername_arg(sc, ctx);
    SSL_CTX_set_alpn_select_cb(sc, tls_alpn_select_cb, ctx);
    /* Lets a session turn DANE on per connection (SSL_dane_enable, RFC 7673). */
    if (SSL_CTX_dane_enable(sc) <= 0) {
        snprintf(err, errlen, "tls: DANE: %s", tls_error_string(ebuf, sizeof(ebuf), "failed"));
        return -1;
    }
    if (SSL_CTX_use_cert_and_key(sc, ctx->certs[0].cert, ctx->certs[0].key, ctx->certs[0].chain,
                                 1) != 1) {
        snprintf(err, errlen, "%s: cannot use certificate: %s", ctx->certs[0].domain,
                 tls_error_string(ebuf, sizeof(ebuf), "rejected"));
        return -1;
    }
    return 0;
}

struct tls_ctx *
tls_ctx_new(const struct tls_settings *settings, const struct tls_host *hosts, size_t nhosts,
            char *err, size_t errlen)
{
    static const struct tls_settings defaults;
    struct tls_ctx *ctx;
    char ebuf[256];

    pthread_once(&tls_once, tls_init_once);
    if (settings == NULL)
        settings = &defaults;
    if (nhosts == 0) {
        snprintf(err, errlen, "tls: no hosted domain with a certificate");
        return NULL;
    }
    if ((ctx = calloc(1, sizeof(*ctx))) == NULL ||
        (ctx->certs = calloc(nhosts, sizeof(*ctx->certs))) == NULL)
        fatalx("%s: out of memory", __func__);
    atomic_init(&ctx->refs, 1);
    ctx->ncerts = nhosts;
    for (size_t i = 0; i < nhosts; i++)
        if (tls_load_host(&ctx->certs[i], &hosts[i], err, errlen) == -1)
            goto fail;
    if ((ctx->ssl_ctx = SSL_CTX_new(TLS_method())) == NULL) {
        snprintf(err, errlen, "tls: SSL_CTX_new: %s",
                 tls_error_string(ebuf, sizeof(ebuf), "failed"));
        goto fail;
    }
    if (tls_ctx_setup(ctx, settings, err, errlen) == -1)
        goto fail;
    /* From here the SSL_CTX owns ctx (freed by tls_ctx_exfree). */
    SSL_CTX_set_ex_data(ctx->ssl_ctx, tls_ctx_idx, ctx);
    return ctx;
fail:
    SSL_CTX_free(ctx->ssl_ctx);
    tls_certs_free(ctx->certs, ctx->ncerts);
    free(ctx);
    return NULL;
}

struct tls_ctx *
tls_ctx_ref(struct tls_ctx *ctx)
{
    atomic_fetch_add(&ctx->refs, 1);
    return ctx;
}

void
tls_ctx_unref(struct tls_ctx *ctx)
{
    if (ctx == NULL || atomic_fetch_sub(&ctx->refs, 1) > 1)
        return;
    /* ctx itself goes when the last SSL made from it is freed (tls_ctx_exfree). */
    SSL_CTX_free(ctx->ssl_ctx);
}

/* RFC 6066 §3: literal IPv4 and IPv6 addresses are not permitted in SNI. */
static bool
tls_is_ip_literal(const char *name)
{
    unsigned char buf[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

SSL *
tls_ssl_new(struct tls_ctx *ctx, enum tls_role role, const char *sni, const char *local_domain,
            const char *alpn, char *err, size_t errlen)
{
    const struct tls_cert *tc;
    unsigned char wire[256];
    size_t alen;
    char ebuf[256];
    SSL *ssl;

    if ((ssl = SSL_new(ctx->ssl_ctx)) == NULL) {
        snprintf(err, errlen, "SSL_new: %s", tls_error_string(ebuf, sizeof(ebuf), "failed"));
        return NULL;
    }
    if (role == TLS_ROLE_SERVER) {
        SSL_set_accept_state(ssl);
        return ssl;
    }
    SSL_set_connect_state(ssl);
    if (sni != NULL && !tls_is_ip_literal(sni) && !SSL_set_tlsext_host_name(ssl, sni)) {
        snprintf(err, errlen, "SNI \"%s\": %s", sni,
                 tls_error_string(ebuf, sizeof(ebuf), "rejected"));
        goto fail;
    }
    /* Present the certificate of the domain we speak for (XEP-0178 §3). */
    if ((tc = tls_cert_find(ctx, local_domain)) != NULL && tc != &ctx->certs[0] &&
        tls_use_cert(ssl, tc) != 1) {
        snprintf(err, errlen, "%s: cannot use certificate: %s", tc->domain,
                 tls_error_string(ebuf, sizeof(ebuf), "rejected"));
        goto fail;
    }
    if (alpn != NULL) {
        alen = strlen(alpn);
        if (alen == 0 || alen > 255) {
            snprintf(err, errlen, "ALPN \"%s\": bad length", alpn);
            goto fail;
        }
        wire[0] = (unsigned char)alen;
        memcpy(wire + 1, alpn, alen);
        if (SSL_set_alpn_protos(ssl, wire, (unsigned int)alen + 1) != 0) {
            snprintf(err, errlen, "ALPN \"%s\": %s", alpn,
                     tls_error_string(ebuf, sizeof(ebuf), "rejected"));
            goto fail;
        }
    }
    return ssl;
fail:
    SSL_free(ssl);
    return NULL;
}

/* Copies an ASN.1 string; NULL if it holds a NUL (a name forged to fool C code). */
static char *
tls_asn1_strdup(const ASN1_STRING *s)
{
    const unsigned char *d = ASN1_STRING_get0_data(s);
    int n = ASN1_STRING_length(s);
    char *p;

    if (d == NULL || n < 0 || memchr(d, '\0', (size_t)n) != NULL)
        return NULL;
    if ((p = strndup((const char *)d, (size_t)n)) == NULL)
        fatalx("%s: out of memory", __func__);
    return p;
}

static void
tls_strv_add(char ***v, size_t *n, char *s)
{
    char **nv;

    if (s == NULL)
        return;
    if ((nv = reallocarray(*v, *n + 1, sizeof(**v))) == NULL)
        fatalx("%s: out of memory", __func__);
    nv[(*n)++] = s;
    *v = nv;
}

static void
tls_strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void
tls_othername(const OTHERNAME *on, struct tls_info *info)
{
    int nid = OBJ_obj2nid(on->type_id);

    /* RFC 4985 §2: SRVName is an IA5String; RFC 6120 §13.7.1.4: XmppAddr a UTF8String. */
    if (nid == NID_SRVName && on->value->type == V_ASN1_IA5STRING)
        tls_strv_add(&info->srv_ids, &info->nsrv_ids, tls_asn1_strdup(on->value->value.ia5string));
    else if (nid == NID_XmppAddr && on->value->type == V_ASN1_UTF8STRING)
        tls_strv_add(&info->xmpp_addrs, &info->nxmpp_addrs,
                     tls_asn1_strdup(on->value->value.utf8string));
}

void
tls_cert_identities(X509 *cert, struct tls_info *info)
{
    GENERAL_NAMES *names;
    const GENERAL_NAME *gn;
    const X509_NAME *subj;
    int i;

    names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    for (i = 0; names != NULL && i < sk_GENERAL_NAME_num(names); i++) {
        gn = sk_GENERAL_NAME_value(names, i);
        if (gn->type == GEN_DNS)
            tls_strv_add(&info->dns_names, &info->ndns_names, tls_asn1_strdup(gn->d.dNSName));
        else if (gn->type == GEN_OTHERNAME)
            tls_othername(gn->d.otherName, info);
    }
    GENERAL_NAMES_free(names);
    subj = X509_get_subject_name(cert);
    i = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
    if (i >= 0 && info->subject_cn == NULL)
        info->subject_cn = tls_asn1_strdup(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i)));
}

void
tls_info_collect(SSL *ssl, struct tls_info *info)
{
    const unsigned char *alpn;
    unsigned int alen, mdlen;
    const char *sni;
    intptr_t first;
    int nid;

    memset(info, 0, sizeof(*info));
    info->version = SSL_get_version(ssl);
    info->cipher = SSL_get_cipher_name(ssl);
    nid = SSL_get_negotiated_group(ssl);
    if (nid > 0)
        info->group = SSL_group_to_name(ssl, nid);
    if ((sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)) != NULL &&
        (info->sni = strdup(sni)) == NULL)
        fatalx("%s: out of memory", __func__);
    SSL_get0_alpn_selected(ssl, &alpn, &alen);
    if (alen > 0 && (info->alpn = strndup((const char *)alpn, alen)) == NULL)
        fatalx("%s: out of memory", __func__);

    first = (intptr_t)SSL_get_ex_data(ssl, tls_ssl_idx);
    info->verify_error = first ? (long)(first - 1) : SSL_get_verify_result(ssl);
    if ((info->peer = SSL_get1_peer_certificate(ssl)) != NULL) {
        info->peer_cert = true;
        info->chain_valid = info->verify_error == X509_V_OK;
        if (!X509_digest(info->peer, EVP_sha256(), info->fingerprint, &mdlen))
            memset(info->fingerprint, 0, sizeof(info->fingerprint));
        tls_cert_identities(info->peer, info);
    } else if (info->verify_error == X509_V_OK) {
        /* No certificate is not a valid chain; say why in the same terms. */
        info->verify_error = X509_V_ERR_UNSPECIFIED;
    }
    info->verify_text =
        info->peer_cert ? X509_verify_cert_error_string(info->verify_error) : "no certificate";
}

void
tls_info_clear(struct tls_info *info)
{
    tls_strv_free(info->dns_names, info->ndns_names);
    tls_strv_free(info->srv_ids, info->nsrv_ids);
    tls_strv_free(info->xmpp_addrs, info->nxmpp_addrs);
    free(info->subject_cn);
    free(info->sni);
    free(info->alpn);
    X509_free(info->peer);
    memset(info, 0, sizeof(*info));
}
