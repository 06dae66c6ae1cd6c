/*
 * One domain's audit: DNS first (the same target lookup as the outbound connector), then
 * every endpoint at once on the loop. Per endpoint two independent chains run together:
 *   TLSA lookup -> main probe (XMPP steps, TLS, facts, features after TLS, SASL EXTERNAL)
 *   protocol/cipher enumeration (audit_tls.c, bounded per address)
 * When every chain has ended the domain is graded and handed back from the loop.
 */
#include "s2s/audit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "s2s/audit_grade.h"
#include "s2s/audit_probe.h"
#include "s2s/audit_tls.h"
#include "s2s/log.h"

struct ep_run {
    struct audit_run *run;
    struct audit_endpoint *ep;
    struct sockaddr_storage sa;
    socklen_t salen;
    bool srv_secure;
    struct dns_request *tlsa_req;
    struct dns_tlsa tlsa[AUDIT_MAX_TLSA]; /* secure TLSA records (data copied), for DANE */
    uint8_t *tlsa_data[AUDIT_MAX_TLSA];
    size_t ntlsa;
    bool legacy_tried; /* the main probe was retried with TLS 1.0/1.1 allowed */
    struct audit_probe *probe;
    struct audit_enum *en;
};

struct audit_run {
    struct event_base *base;
    struct dns_resolver *res;
    struct audit_options opts;
    struct audit_domain *d;
    audit_done_fn done;
    void *arg;
    struct dns_targets_request *targets_req;
    struct ep_run eps[AUDIT_MAX_ENDPOINTS];
    unsigned pending; /* chains still running */
    struct event *fin;
    struct timespec t0;
};

static const char *const tlsv_names[] = {"TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"};

const char *
audit_tlsv_name(enum audit_tlsv v)
{
    return (unsigned)v < AUDIT_NTLSV ? tlsv_names[v] : "?";
}

const char *
audit_vstate_name(enum audit_vstate s)
{
    static const char *const n[] = {"untested", "not testable", "rejected", "accepted"};
    return (unsigned)s <= AUDIT_V_ACCEPTED ? n[s] : "?";
}

const char *
audit_dane_name(enum audit_dane d)
{
    static const char *const n[] = {"none", "insecure", "match", "mismatch", "bogus", "unknown"};
    return (unsigned)d <= AUDIT_DANE_UNKNOWN ? n[d] : "?";
}

const char *
audit_sasl_ext_name(enum audit_sasl_ext e)
{
    static const char *const n[] = {"not tried", "not offered", "success", "failure", "error"};
    return (unsigned)e <= AUDIT_EXT_ERROR ? n[e] : "?";
}

void
audit_endpoint_label(const struct audit_endpoint *ep, char *buf, size_t len)
{
    if (ep->family == AF_INET6)
        snprintf(buf, len, "[%s]:%u", ep->addr, (unsigned)ep->port);
    else
        snprintf(buf, len, "%s:%u", ep->addr, (unsigned)ep->port);
}

static double
ms_since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) * 1e3 + (double)(now.tv_nsec - t0->tv_nsec) / 1e6;
}

/* ---- the end ---- */

static void
run_free(struct audit_run *run)
{
    for (size_t i = 0; i < AUDIT_MAX_ENDPOINTS; i++)
        for (size_t j = 0; j < run->eps[i].ntlsa; j++)
            free(run->eps[i].tlsa_data[j]);
    event_free(run->fin);
    free(run->d);
    free(run);
}

static void
run_fin(evutil_socket_t fd, short what, void *arg)
{
    struct audit_run *run = arg;
    struct audit_domain *d = run->d;
    audit_done_fn done = run->done;
    void *darg = run->arg;

    (void)fd;
    (void)what;
    for (size_t i = 0; i < d->nendpoints; i++) {
        struct audit_endpoint *ep = &d->endpoints[i];
        if (ep->reachable)
            d->reachable = true;
        /* Without TLS at all the version probes learnt nothing about versions. */
        if (!ep->reachable ||
            (ep->mode == DNS_TLS_STARTTLS && ep->pre_tls.seen && !ep->pre_tls.starttls))
            for (int v = 0; v < AUDIT_NTLSV; v++)
                if (ep->versions[v] != AUDIT_V_NOT_TESTABLE)
                    ep->versions[v] = AUDIT_V_UNTESTED;
    }
    if (!d->reachable && d->error[0] == '\0')
        snprintf(d->error, sizeof(d->error), "%s",
                 d->no_service        ? "service not available (SRV \".\")"
                 : d->nendpoints == 0 ? "no address to connect to"
                                      : "no endpoint reachable");
    d->elapsed_ms = ms_since(&run->t0);
    audit_grade_domain(d);
    run->d = NULL;
    run_free(run);
    done(d, darg);
}

static void
chain_done(struct audit_run *run)
{
    if (--run->pending == 0)
        event_active(run->fin, EV_TIMEOUT, 0);
}

/* ---- per endpoint ---- */

static void main_probe_start(struct ep_run *er, bool legacy);

static void
main_probe_done(struct audit_probe *p, SSL *ssl, const struct audit_probe_result *res, void *arg)
{
    struct ep_run *er = arg;
    struct audit_endpoint *ep = er->ep;
    struct audit_run *run = er->run;

    (void)p;
    er->probe = NULL;
    if (res->xmpp_ok && !res->tls && !res->timeout && !er->legacy_tried) {
        /* The handshake a modern peer offers failed: try again as an old peer would, so
         * that a server stuck on TLS 1.0/1.1 still shows its certificate. */
        log_debug("audit: %s %s:%u TLS >= 1.2 failed (%s), retrying with legacy TLS",
                  run->d->domain, ep->addr, (unsigned)ep->port, res->error);
        er->legacy_tried = true;
        main_probe_start(er, true);
        return;
    }
    ep->reachable = res->connected;
    ep->connect_ms = res->connect_ms;
    ep->probe_ms = res->total_ms;
    if (!res->connected)
        snprintf(ep->error, sizeof(ep->error), "%s", res->error);
    ep->tls = res->tls;
    if (res->tls) {
        bool dane_used = ep->tlsa_status == DNS_OK && ep->tlsa_sec == DNS_SEC_SECURE;
        audit_tls_collect(run->opts.tls, ssl, run->d->domain, run->d->fallback ? NULL : ep->host,
                          er->srv_secure, dane_used, ep);
    } else if (res->connected) {
        snprintf(ep->tls_error, sizeof(ep->tls_error), "%s", res->error);
    }
    if (res->connected)
        snprintf(ep->stream_error, sizeof(ep->stream_error), "%s", res->error);
    if (run->opts.as_domain != NULL && ep->sasl_external == AUDIT_EXT_NOT_TRIED) {
        /* --as, but the stream never got to the features after TLS. */
        ep->sasl_external = AUDIT_EXT_ERROR;
        snprintf(ep->sasl_external_detail, sizeof(ep->sasl_external_detail), "%s",
                 res->error[0] ? res->error : "no features after TLS");
    }
    log_debug("audit: %s %s:%u main probe done tls=%d error=\"%s\"", run->d->domain, ep->addr,
              (unsigned)ep->port, res->tls, res->error);
    chain_done(run);
}

static void
main_probe_start(struct ep_run *er, bool legacy)
{
    struct audit_run *run = er->run;
    struct audit_endpoint *ep = er->ep;
    struct audit_probe_params prm = {
        .mode = AUDIT_PROBE_FULL,
        .tls_mode = ep->mode,
        .domain = run->d->domain,
        .from = run->opts.as_domain,
        .sasl_external = run->opts.as_domain != NULL,
        .timeout_ms = run->opts.timeout_ms,
        .ep = ep,
    };
    char err[AUDIT_STR];
    SSL *ssl;

    ssl = audit_tls_main_ssl(run->opts.tls, run->d->domain, run->d->fallback ? NULL : ep->host,
                             ep->mode, er->tlsa, er->ntlsa, legacy);
    if (ssl == NULL) {
        snprintf(ep->error, sizeof(ep->error), "cannot set up TLS");
        chain_done(run);
        return;
    }
    er->probe = audit_probe_start(run->base, (struct sockaddr *)&er->sa, er->salen, ssl, &prm,
                                  main_probe_done, er, err, sizeof(err));
    if (er->probe == NULL) {
        snprintf(ep->error, sizeof(ep->error), "%s", err);
        chain_done(run);
    }
}

static void
tlsa_text(const struct dns_tlsa *t, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%u %u %u ", t->usage, t->selector, t->mtype);
    for (size_t i = 0; i < t->len && n > 0 && (size_t)n + 3 < len; i++)
        n += snprintf(buf + n, len - (size_t)n, "%02x", t->data[i]);
}

static void
tlsa_answer(const struct dns_answer *ans, void *arg)
{
    struct ep_run *er = arg;
    struct audit_endpoint *ep = er->ep;
    bool usable;

    er->tlsa_req = NULL;
    ep->tlsa_status = ans->status;
    ep->tlsa_sec = ans->sec;
    for (ep->ntlsa = 0; ep->ntlsa < ans->n && ep->ntlsa < AUDIT_MAX_TLSA; ep->ntlsa++)
        tlsa_text(&ans->rr.tlsa[ep->ntlsa], ep->tlsa[ep->ntlsa], sizeof(ep->tlsa[0]));
    if (ans->sec == DNS_SEC_BOGUS || ans->status == DNS_BOGUS)
        ep->dane = AUDIT_DANE_BOGUS;
    else if (ans->status == DNS_NXDOMAIN || ans->status == DNS_NODATA)
        ep->dane = AUDIT_DANE_NONE;
    else if (ans->status != DNS_OK)
        ep->dane = AUDIT_DANE_UNKNOWN;
    else if (ans->sec != DNS_SEC_SECURE)
        ep->dane = AUDIT_DANE_INSECURE; /* RFC 7673 §3: unusable without DNSSEC */
    /* else: secure records; the handshake decides match or mismatch */
    usable = ans->status == DNS_OK && ans->sec == DNS_SEC_SECURE;
    for (size_t i = 0; usable && i < ans->n && er->ntlsa < AUDIT_MAX_TLSA; i++) {
        const struct dns_tlsa *t = &ans->rr.tlsa[i];
        uint8_t *data = malloc(t->len ? t->len : 1);
        if (data == NULL)
            break;
        memcpy(data, t->data, t->len);
        er->tlsa[er->ntlsa] = *t;
        er->tlsa[er->ntlsa].data = er->tlsa_data[er->ntlsa] = data;
        er->ntlsa++;
    }
    main_probe_start(er, false);
}

static void
enum_done(struct audit_endpoint *ep, void *arg)
{
    struct ep_run *er = arg;

    (void)ep;
    er->en = NULL;
    chain_done(er->run);
}

static void
endpoint_start(struct audit_run *run, struct ep_run *er)
{
    struct audit_endpoint *ep = er->ep;

    run->pending += 2;
    er->tlsa_req = dns_tlsa_resolve(run->res, ep->host, ep->port, tlsa_answer, er);
    if (er->tlsa_req == NULL) {
        ep->dane = AUDIT_DANE_UNKNOWN;
        main_probe_start(er, false);
    }
    if (run->opts.enumerate)
        er->en = audit_enum_start(run->base, run->opts.tls, (struct sockaddr *)&er->sa, er->salen,
                                  run->d->domain, run->opts.timeout_ms, run->opts.per_addr, ep,
                                  enum_done, er);
    if (er->en == NULL)
        chain_done(run);
}

/* ---- DNS ---- */

static void
endpoint_add(struct audit_run *run, const struct dns_target *t, const struct dns_addr *a,
             bool srv_secure)
{
    struct audit_domain *d = run->d;
    struct ep_run *er;
    struct audit_endpoint *ep;

    if (d->nendpoints >= AUDIT_MAX_ENDPOINTS)
        return;
    if (run->opts.family != AF_UNSPEC && a->family != run->opts.family)
        return;
    er = &run->eps[d->nendpoints];
    ep = &d->endpoints[d->nendpoints++];
    er->run = run;
    er->ep = ep;
    er->srv_secure = srv_secure;
    snprintf(ep->host, sizeof(ep->host), "%s", t->host);
    snprintf(ep->cname, sizeof(ep->cname), "%s", t->cname);
    ep->port = t->port;
    ep->mode = t->tls;
    ep->family = a->family;
    ep->addr_sec = a->family == AF_INET6 ? t->aaaa.sec : t->a.sec;
    ep->tlsa_status = DNS_ERROR;
    ep->dane = AUDIT_DANE_UNKNOWN;
    inet_ntop(a->family, a->addr, ep->addr, sizeof(ep->addr));
    memset(&er->sa, 0, sizeof(er->sa));
    if (a->family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&er->sa;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(t->port);
        memcpy(&s6->sin6_addr, a->addr, 16);
        er->salen = sizeof(*s6);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&er->sa;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(t->port);
        memcpy(&s4->sin_addr, a->addr, 4);
        er->salen = sizeof(*s4);
    }
}

static void
targets_done(struct dns_targets *t, void *arg)
{
    struct audit_run *run = arg;
    struct audit_domain *d = run->d;

    run->targets_req = NULL;
    d->srv_xmpps = t->srv_xmpps;
    d->srv_xmpp = t->srv_xmpp;
    d->fallback = t->fallback;
    d->dns_status = t->status;
    d->no_service = t->status == DNS_NOSERVICE;
    if (t->status != DNS_OK)
        snprintf(d->dns_error, sizeof(d->dns_error), "%s", t->error);
    for (size_t i = 0; i < t->ntargets && d->ntargets < AUDIT_MAX_TARGETS; i++) {
        struct audit_target *at = &d->targets[d->ntargets++];
        snprintf(at->host, sizeof(at->host), "%s", t->targets[i].host);
        snprintf(at->cname, sizeof(at->cname), "%s", t->targets[i].cname);
        at->port = t->targets[i].port;
        at->mode = t->targets[i].tls;
        at->naddrs = t->targets[i].naddrs;
    }
    for (size_t i = 0; i < t->ntargets; i++) {
        const struct dns_target *tg = &t->targets[i];
        bool secure =
            !t->fallback &&
            (tg->tls == DNS_TLS_DIRECT ? t->srv_xmpps.sec : t->srv_xmpp.sec) == DNS_SEC_SECURE;
        for (size_t j = 0; j < tg->naddrs; j++)
            endpoint_add(run, tg, &tg->addrs[j], secure);
    }
    dns_targets_free(t);
    run->pending = 1; /* held until every endpoint started */
    for (size_t i = 0; i < d->nendpoints; i++)
        endpoint_start(run, &run->eps[i]);
    chain_done(run);
}

struct audit_run *
audit_start(struct event_base *base, struct dns_resolver *res, const struct audit_options *opts,
            const char *domain, audit_done_fn done, void *arg, char *err, size_t errlen)
{
    struct audit_run *run;

    if ((run = calloc(1, sizeof(*run))) == NULL || (run->d = calloc(1, sizeof(*run->d))) == NULL ||
        (run->fin = event_new(base, -1, 0, run_fin, run)) == NULL) {
        snprintf(err, errlen, "out of memory");
        if (run != NULL)
            free(run->d);
        free(run);
        return NULL;
    }
    run->base = base;
    run->res = res;
    run->opts = *opts;
    if (run->opts.timeout_ms == 0)
        run->opts.timeout_ms = 5000;
    run->done = done;
    run->arg = arg;
    clock_gettime(CLOCK_MONOTONIC, &run->t0);
    snprintf(run->d->domain, sizeof(run->d->domain), "%s", domain);
    snprintf(run->d->dns_backend, sizeof(run->d->dns_backend), "%s",
             opts->dns_backend ? opts->dns_backend : "c-ares");
    run->d->dnssec_validating = opts->dnssec_validating;
    if (opts->as_domain != NULL)
        snprintf(run->d->as_domain, sizeof(run->d->as_domain), "%s", opts->as_domain);
    run->targets_req = dns_targets_resolve(res, domain, 0, targets_done, run);
    if (run->targets_req == NULL) {
        snprintf(err, errlen, "\"%s\" is not a valid domain name", domain);
        event_free(run->fin);
        free(run->d);
        free(run);
        return NULL;
    }
    return run;
}

void
audit_cancel(struct audit_run *run)
{
    if (run->targets_req != NULL)
        dns_targets_cancel(run->targets_req);
    for (size_t i = 0; run->d != NULL && i < run->d->nendpoints; i++) {
        struct ep_run *er = &run->eps[i];
        if (er->tlsa_req != NULL)
            dns_request_cancel(er->tlsa_req);
        if (er->probe != NULL)
            audit_probe_cancel(er->probe);
        if (er->en != NULL)
            audit_enum_cancel(er->en);
    }
    run_free(run);
}
