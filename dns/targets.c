/*
 * The connection targets of a remote XMPP domain:
 *   1. _xmpps-server._tcp.DOMAIN and _xmpp-server._tcp.DOMAIN, asked together
 *      (XEP-0368 §3, RFC 6120 §3.2.1); srv.c decides and orders;
 *   2. AAAA and A of every target, asked together; addresses in Happy Eyeballs order
 *      (RFC 8305 §4);
 *   3. optionally TLSA of _PORT._tcp.HOST, only where the SRV and address answers are
 *      DNSSEC-secure (RFC 7673 §3).
 * Every step goes through the cache, so targets shared by both services are asked once.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "dns/backend.h"
#include "dns/msg.h"
#include "dns/resolver.h"
#include "dns/srv.h"

enum { SRV_XMPPS = 0, SRV_XMPP = 1 };

/* What one target is waiting for, beside its public dns_target. */
struct target_work {
    struct dns_targets_request *req;
    size_t idx;
    struct dns_request *aaaa_q, *a_q, *tlsa_q;
    bool aaaa_done, a_done;
    size_t n6, n4;
    struct dns_addr v6[DNS_MAX_TARGET_ADDRS], v4[DNS_MAX_TARGET_ADDRS];
    enum dns_sec srv_sec; /* of the SRV answer this target came from */
};

struct dns_targets_request {
    struct dns_resolver *res;
    int flags;
    dns_targets_fn cb;
    void *arg;
    struct dns_targets *out;
    struct dns_request *srv_q[2];
    bool srv_done[2];
    struct dns_answer srv_ans[2]; /* copies: answers live only during their callback */
    struct target_work *work;     /* nwork of them */
    size_t nwork;
    size_t pending; /* targets not finished */
};

static void
info_from(struct dns_lookup_info *i, const struct dns_answer *a)
{
    i->status = a->status;
    i->sec = a->sec;
    i->ttl = a->ttl;
}

void
dns_targets_free(struct dns_targets *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->ntargets; i++) {
        for (size_t j = 0; j < t->targets[i].ntlsa; j++)
            free(t->targets[i].tlsa_rr[j].data);
        free(t->targets[i].tlsa_rr);
    }
    free(t->targets);
    free(t);
}

static void
request_free(struct dns_targets_request *req)
{
    for (int i = 0; i < 2; i++) {
        dns_request_cancel(req->srv_q[i]);
        dns_answer_clear(&req->srv_ans[i]);
    }
    if (req->work != NULL) {
        for (size_t i = 0; i < req->nwork; i++) {
            dns_request_cancel(req->work[i].aaaa_q);
            dns_request_cancel(req->work[i].a_q);
            dns_request_cancel(req->work[i].tlsa_q);
        }
        free(req->work);
    }
    dns_targets_free(req->out);
    free(req);
}

void
dns_targets_cancel(struct dns_targets_request *req)
{
    if (req != NULL)
        request_free(req);
}

/* Hands the result over and frees the request. Runs from a dns_query callback only. */
static void
finish(struct dns_targets_request *req)
{
    struct dns_targets *out = req->out;
    dns_targets_fn cb = req->cb;
    void *arg = req->arg;

    req->out = NULL;
    request_free(req);
    cb(out, arg);
}

static void
fail(struct dns_targets_request *req, enum dns_status st, const char *why)
{
    req->out->status = st;
    snprintf(req->out->error, sizeof(req->out->error), "%s", why);
    finish(req);
}

/* All targets are done: OK if any has an address, else the first target's failure. */
static void
targets_done(struct dns_targets_request *req)
{
    struct dns_targets *out = req->out;

    for (size_t i = 0; i < out->ntargets; i++) {
        if (out->targets[i].naddrs > 0) {
            out->status = DNS_OK;
            finish(req);
            return;
        }
    }
    const struct dns_target *t = &out->targets[0];
    enum dns_status st =
        t->aaaa.status != DNS_OK && t->aaaa.status != DNS_NODATA ? t->aaaa.status : t->a.status;
    if (st == DNS_OK)
        st = DNS_NODATA;
    char why[DNS_NAME_MAX + 64];
    snprintf(why, sizeof(why), "no target has an address (%s: AAAA %s, A %s)", t->host,
             dns_status_str(t->aaaa.status), dns_status_str(t->a.status));
    fail(req, st, why);
}

static void
target_done(struct target_work *w)
{
    struct dns_targets_request *req = w->req;

    if (--req->pending == 0)
        targets_done(req);
}

static void
tlsa_answer(const struct dns_answer *ans, void *arg)
{
    struct target_work *w = arg;
    struct dns_target *t = &w->req->out->targets[w->idx];

    w->tlsa_q = NULL;
    info_from(&t->tlsa, ans);
    if (ans->status == DNS_OK && ans->n > 0) {
        t->tlsa_rr = calloc(ans->n, sizeof(*t->tlsa_rr));
        for (size_t i = 0; t->tlsa_rr != NULL && i < ans->n; i++) {
            t->tlsa_rr[i] = ans->rr.tlsa[i];
            t->tlsa_rr[i].data = malloc(ans->rr.tlsa[i].len ? ans->rr.tlsa[i].len : 1);
            if (t->tlsa_rr[i].data == NULL) {
                t->tlsa.status = DNS_ERROR;
                break;
            }
            memcpy(t->tlsa_rr[i].data, ans->rr.tlsa[i].data, ans->rr.tlsa[i].len);
            t->ntlsa++;
        }
        if (t->tlsa_rr == NULL)
            t->tlsa.status = DNS_ERROR;
    }
    target_done(w);
}

/*
 * RFC 7673 §3: TLSA is looked up only if the SRV answer (or, with no SRV, its denial) and
 * the address answers are secure; an insecure link anywhere means no DANE.
 */
static bool
tlsa_wanted(const struct target_work *w, const struct dns_target *t)
{
    if (!(w->req->flags & DNS_TARGETS_TLSA) || t->naddrs == 0)
        return false;
    if (w->srv_sec != DNS_SEC_SECURE)
        return false;
    if (t->aaaa.status == DNS_OK && t->aaaa.sec != DNS_SEC_SECURE)
        return false;
    if (t->a.status == DNS_OK && t->a.sec != DNS_SEC_SECURE)
        return false;
    return true;
}

/* RFC 8305 §4: IPv6 first, then alternate the families. */
static void
addrs_interleave(struct target_work *w, struct dns_target *t)
{
    size_t i6 = 0, i4 = 0;

    t->naddrs = 0;
    while (t->naddrs < DNS_MAX_TARGET_ADDRS && (i6 < w->n6 || i4 < w->n4)) {
        if (i6 < w->n6)
            t->addrs[t->naddrs++] = w->v6[i6++];
        if (t->naddrs < DNS_MAX_TARGET_ADDRS && i4 < w->n4)
            t->addrs[t->naddrs++] = w->v4[i4++];
    }
}

static void
address_answer(struct target_work *w, const struct dns_answer *ans)
{
    struct dns_target *t = &w->req->out->targets[w->idx];
    bool v6 = ans->type == DNS_TYPE_AAAA;
    struct dns_addr *dst = v6 ? w->v6 : w->v4;
    size_t *n = v6 ? &w->n6 : &w->n4;

    info_from(v6 ? &t->aaaa : &t->a, ans);
    if (t->cname[0] == '\0' && ans->cname[0] != '\0')
        snprintf(t->cname, sizeof(t->cname), "%s", ans->cname);
    for (size_t i = 0; ans->status == DNS_OK && i < ans->n && *n < DNS_MAX_TARGET_ADDRS; i++) {
        dst[(*n)++] = ans->rr.addr[i];
        dst[*n - 1].ttl = ans->ttl;
    }
    if (v6) {
        w->aaaa_q = NULL;
        w->aaaa_done = true;
    } else {
        w->a_q = NULL;
        w->a_done = true;
    }
    if (!w->aaaa_done || !w->a_done)
        return;
    addrs_interleave(w, t);
    if (tlsa_wanted(w, t)) {
        t->tlsa_queried = true;
        w->tlsa_q = dns_tlsa_resolve(w->req->res, t->host, t->port, tlsa_answer, w);
        if (w->tlsa_q != NULL)
            return;
        t->tlsa.status = DNS_ERROR;
    }
    target_done(w);
}

static void
aaaa_answer(const struct dns_answer *ans, void *arg)
{
    address_answer(arg, ans);
}

static void
a_answer(const struct dns_answer *ans, void *arg)
{
    address_answer(arg, ans);
}

/* Builds out->targets from the plan and starts their address lookups. */
static void
targets_start(struct dns_targets_request *req, const struct dns_srv_pick *picks, size_t n)
{
    struct dns_targets *out = req->out;

    out->targets = calloc(n, sizeof(*out->targets));
    req->work = calloc(n, sizeof(*req->work));
    if (out->targets == NULL || req->work == NULL) {
        fail(req, DNS_ERROR, "out of memory");
        return;
    }
    out->ntargets = n;
    req->nwork = n;
    for (size_t i = 0; i < n; i++) {
        struct dns_target *t = &out->targets[i];
        struct target_work *w = &req->work[i];
        if (picks != NULL) {
            snprintf(t->host, sizeof(t->host), "%s", picks[i].srv->target);
            t->port = picks[i].srv->port;
            t->tls = picks[i].tls;
            t->priority = picks[i].srv->priority;
            t->weight = picks[i].srv->weight;
            w->srv_sec = picks[i].tls == DNS_TLS_DIRECT ? out->srv_xmpps.sec : out->srv_xmpp.sec;
        } else {
            /* RFC 6120 §3.2.2 fallback: both denials must be secure for DANE. */
            snprintf(t->host, sizeof(t->host), "%s", out->domain);
            t->port = DNS_XMPP_PORT;
            t->tls = DNS_TLS_STARTTLS;
            w->srv_sec =
                out->srv_xmpps.sec == DNS_SEC_SECURE ? out->srv_xmpp.sec : out->srv_xmpps.sec;
        }
        w->req = req;
        w->idx = i;
    }
    req->pending = n;
    /* Start them all; answers come later (never inside dns_query), so work stays valid. */
    for (size_t i = 0; i < n; i++) {
        struct target_work *w = &req->work[i];
        struct dns_target *t = &out->targets[i];
        w->aaaa_q = dns_query(req->res, t->host, DNS_TYPE_AAAA, aaaa_answer, w);
        w->a_q = dns_query(req->res, t->host, DNS_TYPE_A, a_answer, w);
        if (w->aaaa_q == NULL || w->a_q == NULL) {
            fail(req, DNS_ERROR, "cannot start address lookups");
            return;
        }
    }
}

static void
srv_answer(struct dns_targets_request *req, int which, const struct dns_answer *ans)
{
    struct dns_srv_pick picks[DNS_MAX_TARGETS];
    size_t npicks;
    enum dns_status st;
    char why[320];

    req->srv_q[which] = NULL;
    req->srv_done[which] = true;
    info_from(which == SRV_XMPPS ? &req->out->srv_xmpps : &req->out->srv_xmpp, ans);
    if (dns_answer_copy(&req->srv_ans[which], ans) == -1) {
        fail(req, DNS_ERROR, "out of memory");
        return;
    }
    if (!req->srv_done[SRV_XMPPS] || !req->srv_done[SRV_XMPP])
        return;
    switch (dns_srv_plan(&req->srv_ans[SRV_XMPPS], &req->srv_ans[SRV_XMPP],
                         dns_resolver_rng(req->res), picks, DNS_MAX_TARGETS, &npicks, &st, why,
                         sizeof(why))) {
    case DNS_SRV_FAIL:
        fail(req, st, why);
        return;
    case DNS_SRV_FALLBACK:
        req->out->fallback = true;
        targets_start(req, NULL, 1);
        return;
    case DNS_SRV_TARGETS:
        targets_start(req, picks, npicks);
        return;
    }
}

static void
xmpps_answer(const struct dns_answer *ans, void *arg)
{
    srv_answer(arg, SRV_XMPPS, ans);
}

static void
xmpp_answer(const struct dns_answer *ans, void *arg)
{
    srv_answer(arg, SRV_XMPP, ans);
}

struct dns_targets_request *
dns_targets_resolve(struct dns_resolver *res, const char *domain, int flags, dns_targets_fn cb,
                    void *arg)
{
    struct dns_targets_request *req;
    char name[DNS_NAME_MAX + 32];

    req = calloc(1, sizeof(*req));
    if (req == NULL)
        return NULL;
    req->out = calloc(1, sizeof(*req->out));
    if (req->out == NULL ||
        dns_name_normalize(domain, req->out->domain, sizeof(req->out->domain)) == -1) {
        free(req->out);
        free(req);
        return NULL;
    }
    req->res = res;
    req->flags = flags;
    req->cb = cb;
    req->arg = arg;
    snprintf(name, sizeof(name), "_xmpps-server._tcp.%s", req->out->domain);
    req->srv_q[SRV_XMPPS] = dns_query(res, name, DNS_TYPE_SRV, xmpps_answer, req);
    snprintf(name, sizeof(name), "_xmpp-server._tcp.%s", req->out->domain);
    req->srv_q[SRV_XMPP] = dns_query(res, name, DNS_TYPE_SRV, xmpp_answer, req);
    if (req->srv_q[SRV_XMPPS] == NULL || req->srv_q[SRV_XMPP] == NULL) {
        request_free(req);
        return NULL;
    }
    return req;
}
