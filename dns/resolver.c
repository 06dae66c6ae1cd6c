/*
 * The resolver front end: names checked once, lookups through the cache, one backend
 * query per (name, type) in flight whatever the number of waiters, a timeout per query,
 * and every answer delivered from the event loop (STYLE habits 3 and 4).
 */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "dns/backend.h"
#include "dns/cache.h"
#include "dns/msg.h"
#include "dns/resolver.h"
#include "dns/srv.h"

#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)                                                 \
    for ((var) = TAILQ_FIRST((head)); (var) && ((tvar) = TAILQ_NEXT((var), field), 1);             \
         (var) = (tvar))
#endif

#define DEFAULT_TIMEOUT       5
#define DEFAULT_MAX_TTL       86400
#define DEFAULT_NEG_TTL       60
#define DEFAULT_MAX_ENTRIES   65536
#define DEFAULT_MAX_IN_FLIGHT 256

enum request_state {
    REQ_WAITING, /* on its entry's waiters */
    REQ_READY,   /* on the resolver's ready queue, answer attached */
};

struct dns_request {
    TAILQ_ENTRY(dns_request) link;
    struct dns_resolver *res;
    enum request_state state;
    struct dns_cache_entry *entry; /* REQ_WAITING */
    struct dns_ans_ref *ans;       /* REQ_READY */
    dns_answer_fn cb;
    void *arg;
};

TAILQ_HEAD(request_list, dns_request);

struct dns_resolver {
    struct event_base *base;
    struct dns_options opts; /* copied; strings still belong to the caller until new() returns */
    const struct dns_backend_ops *ops;
    void *be;
    struct dns_cache *cache;
    struct request_list ready;
    struct event *ready_ev;
    /* Entries waiting for an in-flight slot: a burst of lookups must not become a burst
     * of datagrams that overflows a socket buffer and costs retransmissions. */
    TAILQ_HEAD(, dns_cache_entry) queue;
    bool draining;
    uint64_t rng;
    struct dns_stats stats;
};

void
dns_log(const struct dns_options *opts, int level, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    if (opts->log == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    opts->log(level, line, opts->log_arg);
}

const char *
dns_status_str(enum dns_status st)
{
    switch (st) {
    case DNS_OK:
        return "ok";
    case DNS_NXDOMAIN:
        return "nxdomain";
    case DNS_NODATA:
        return "nodata";
    case DNS_SERVFAIL:
        return "servfail";
    case DNS_TIMEOUT:
        return "timeout";
    case DNS_BOGUS:
        return "bogus";
    case DNS_FORMERR:
        return "formerr";
    case DNS_NOSERVICE:
        return "no-service";
    case DNS_ERROR:
        return "error";
    }
    return "?";
}

const char *
dns_sec_str(enum dns_sec sec)
{
    switch (sec) {
    case DNS_SEC_INDETERMINATE:
        return "indeterminate";
    case DNS_SEC_INSECURE:
        return "insecure";
    case DNS_SEC_SECURE:
        return "secure";
    case DNS_SEC_BOGUS:
        return "bogus";
    }
    return "?";
}

const char *
dns_tls_mode_str(enum dns_tls_mode mode)
{
    return mode == DNS_TLS_DIRECT ? "direct" : "starttls";
}

static uint64_t
monotonic_seconds(void *arg)
{
    struct timespec ts;

    (void)arg;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec;
}

static uint64_t
now_seconds(const struct dns_resolver *res)
{
    return res->opts.clock(res->opts.clock_arg);
}

/* Delivers what is on the ready queue now; what callbacks add waits for the next turn. */
static void
ready_run(evutil_socket_t fd, short what, void *arg)
{
    struct dns_resolver *res = arg;
    struct dns_request *req, *last = TAILQ_LAST(&res->ready, request_list);

    (void)fd;
    (void)what;
    while (last != NULL && (req = TAILQ_FIRST(&res->ready)) != NULL) {
        bool was_last = req == last;
        TAILQ_REMOVE(&res->ready, req, link);
        req->cb(&req->ans->a, req->arg);
        dns_ans_ref_release(req->ans);
        free(req);
        if (was_last)
            break;
    }
    if (!TAILQ_EMPTY(&res->ready))
        event_active(res->ready_ev, 0, 0);
}

static void
request_make_ready(struct dns_resolver *res, struct dns_request *req, struct dns_ans_ref *ans)
{
    req->state = REQ_READY;
    req->entry = NULL;
    req->ans = dns_ans_ref_hold(ans);
    TAILQ_INSERT_TAIL(&res->ready, req, link);
    event_active(res->ready_ev, 0, 0);
}

static void queue_run(struct dns_resolver *res);

/* The query for e has ended: cache the answer and queue it for every waiter. */
static void
entry_complete(struct dns_resolver *res, struct dns_cache_entry *e, struct dns_ans_ref *ans)
{
    struct dns_request *req;

    e->bq = NULL;
    if (e->timer != NULL) {
        event_free(e->timer);
        e->timer = NULL;
    }
    if (e->queued) {
        TAILQ_REMOVE(&res->queue, e, qlink);
        e->queued = false;
        res->stats.queued--;
    }
    if (e->sent) {
        assert(res->stats.in_flight > 0);
        res->stats.in_flight--;
        e->sent = false;
    }
    dns_log(&res->opts, 3, "dns answer name=%s type=%u status=%s sec=%s ttl=%u n=%zu%s%s", e->name,
            e->type, dns_status_str(ans->a.status), dns_sec_str(ans->a.sec), ans->a.ttl, ans->a.n,
            ans->a.why[0] ? " why=" : "", ans->a.why);
    dns_cache_store(res->cache, e, ans, now_seconds(res));
    while ((req = TAILQ_FIRST(&e->waiters)) != NULL) {
        TAILQ_REMOVE(&e->waiters, req, link);
        e->nwaiters--;
        request_make_ready(res, req, ans);
    }
    queue_run(res);
}

/* An answer that is only a failure, with no packet. */
static struct dns_ans_ref *
failure_answer(const struct dns_cache_entry *e, enum dns_status st, enum dns_sec sec,
               const char *why)
{
    struct dns_ans_ref *ans = dns_ans_ref_new();

    if (ans == NULL)
        return NULL;
    snprintf(ans->a.name, sizeof(ans->a.name), "%s", e->name);
    ans->a.type = e->type;
    ans->a.status = st;
    ans->a.sec = sec;
    snprintf(ans->a.why, sizeof(ans->a.why), "%s", why != NULL ? why : "");
    return ans;
}

static void
backend_done(const struct dns_backend_result *r, void *arg)
{
    struct dns_cache_entry *e = arg;
    struct dns_resolver *res = e->owner;
    struct dns_ans_ref *ans;

    if (r->status != DNS_OK) {
        ans = failure_answer(e, r->status, r->sec, r->why);
    } else {
        ans = dns_ans_ref_new();
        if (ans != NULL) {
            dns_msg_parse_answer(r->pkt, r->len, e->name, e->type, res->opts.negative_ttl, &ans->a);
            ans->a.sec = r->sec;
            /* A validating resolver that says bogus has no answer to give (RFC 4035 §5.5). */
            if (r->sec == DNS_SEC_BOGUS) {
                dns_answer_clear(&ans->a);
                ans->a.status = DNS_BOGUS;
                snprintf(ans->a.why, sizeof(ans->a.why), "%s", r->why ? r->why : "bogus");
            }
        }
    }
    if (ans == NULL) {
        /* Out of memory: a static-free path would be nicer; fail the waiters plainly. */
        dns_log(&res->opts, 0, "dns: out of memory answering name=%s", e->name);
        ans = failure_answer(e, DNS_ERROR, DNS_SEC_INDETERMINATE, "out of memory");
        if (ans == NULL)
            abort();
    }
    entry_complete(res, e, ans);
    dns_ans_ref_release(ans); /* the entry and the ready requests hold theirs */
}

/* The query took longer than the configured timeout: stop it and fail the waiters. */
static void
entry_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct dns_cache_entry *e = arg;
    struct dns_resolver *res = e->owner;
    struct dns_ans_ref *ans;

    (void)fd;
    (void)what;
    if (e->bq != NULL) {
        res->ops->cancel(res->be, e->bq);
        e->bq = NULL;
    }
    ans = failure_answer(e, DNS_TIMEOUT, DNS_SEC_INDETERMINATE, "no answer in time");
    if (ans == NULL)
        abort();
    dns_log(&res->opts, 2, "dns timeout name=%s type=%u after=%us", e->name, e->type,
            res->opts.timeout);
    entry_complete(res, e, ans);
    dns_ans_ref_release(ans);
}

/* Hands e's query to the backend. */
static void
entry_send(struct dns_resolver *res, struct dns_cache_entry *e)
{
    void *h;

    e->sent = true;
    res->stats.queries_sent++;
    res->stats.in_flight++;
    if (res->stats.in_flight > res->stats.max_in_flight)
        res->stats.max_in_flight = res->stats.in_flight;
    dns_log(&res->opts, 3, "dns query name=%s type=%u backend=%s", e->name, e->type,
            res->ops->name);
    h = res->ops->query(res->be, e->name, e->type, backend_done, e);
    if (e->state != DNS_ENTRY_PENDING)
        return; /* answered (or failed) inside the call: waiters are ready */
    if (h == NULL) {
        backend_done(&(struct dns_backend_result){.status = DNS_ERROR, .why = "query failed"}, e);
        return;
    }
    e->bq = h;
}

/*
 * Sends queued queries while slots are free. A query that fails inside the backend call
 * completes at once and comes back here: the flag turns that into one more turn of this
 * loop instead of a recursion as deep as the queue.
 */
static void
queue_run(struct dns_resolver *res)
{
    struct dns_cache_entry *e;

    if (res->draining)
        return;
    res->draining = true;
    while (res->stats.in_flight < res->opts.max_in_flight &&
           (e = TAILQ_FIRST(&res->queue)) != NULL) {
        TAILQ_REMOVE(&res->queue, e, qlink);
        e->queued = false;
        res->stats.queued--;
        entry_send(res, e);
    }
    res->draining = false;
}

/* Starts the lookup for an entry with no answer or a stale one: the timeout runs from
 * now, whether the query goes out at once or waits for a slot. */
static int
entry_start(struct dns_resolver *res, struct dns_cache_entry *e)
{
    struct timeval tv = {.tv_sec = res->opts.timeout, .tv_usec = 0};

    e->owner = res;
    e->timer = evtimer_new(res->base, entry_timeout_cb, e);
    if (e->timer == NULL)
        return -1;
    evtimer_add(e->timer, &tv);
    e->state = DNS_ENTRY_PENDING;
    e->bq = NULL;
    e->queued = true;
    TAILQ_INSERT_TAIL(&res->queue, e, qlink);
    res->stats.queued++;
    queue_run(res);
    return 0;
}

struct dns_request *
dns_query(struct dns_resolver *res, const char *name, uint16_t type, dns_answer_fn cb, void *arg)
{
    char canon[DNS_NAME_MAX + 1];
    struct dns_cache_entry *e;
    struct dns_request *req;

    if (type != DNS_TYPE_A && type != DNS_TYPE_AAAA && type != DNS_TYPE_SRV &&
        type != DNS_TYPE_TLSA)
        return NULL;
    if (dns_name_normalize(name, canon, sizeof(canon)) == -1)
        return NULL;
    req = calloc(1, sizeof(*req));
    if (req == NULL)
        return NULL;
    req->res = res;
    req->cb = cb;
    req->arg = arg;
    e = dns_cache_get(res->cache, canon, type);
    if (e != NULL && dns_cache_fresh(e, now_seconds(res))) {
        res->stats.cache_hits++;
        request_make_ready(res, req, e->ans);
        return req;
    }
    if (e != NULL && e->state == DNS_ENTRY_PENDING) {
        res->stats.merged++;
    } else {
        if (e == NULL && (e = dns_cache_add(res->cache, canon, type)) == NULL) {
            free(req);
            return NULL;
        }
        if (entry_start(res, e) == -1) {
            free(req);
            return NULL;
        }
    }
    /* The query may have failed inside entry_start: then the answer is already there. */
    if (e->state == DNS_ENTRY_DONE) {
        request_make_ready(res, req, e->ans);
        return req;
    }
    req->state = REQ_WAITING;
    req->entry = e;
    TAILQ_INSERT_TAIL(&e->waiters, req, link);
    e->nwaiters++;
    return req;
}

struct dns_request *
dns_tlsa_resolve(struct dns_resolver *res, const char *host, uint16_t port, dns_answer_fn cb,
                 void *arg)
{
    char name[DNS_NAME_MAX + 16];

    /* RFC 7673 §3: the TLSA base domain of an SRV target is the target host itself. */
    if ((size_t)snprintf(name, sizeof(name), "_%u._tcp.%s", port, host) >= sizeof(name))
        return NULL;
    return dns_query(res, name, DNS_TYPE_TLSA, cb, arg);
}

void
dns_request_cancel(struct dns_request *req)
{
    struct dns_resolver *res;

    if (req == NULL)
        return;
    res = req->res;
    if (req->state == REQ_WAITING) {
        /* The query goes on: its answer still fills the cache for the next asker. */
        TAILQ_REMOVE(&req->entry->waiters, req, link);
        req->entry->nwaiters--;
    } else {
        TAILQ_REMOVE(&res->ready, req, link);
        dns_ans_ref_release(req->ans);
    }
    free(req);
}

void
dns_resolver_stats(const struct dns_resolver *res, struct dns_stats *st)
{
    *st = res->stats;
    st->entries = dns_cache_count(res->cache);
}

struct dns_resolver *
dns_resolver_new(struct event_base *base, const struct dns_options *opts, char *err, size_t errlen)
{
    const struct dns_backend_ops *ops;

    switch (opts->backend) {
    case DNS_BACKEND_CARES:
        ops = &dns_backend_cares;
        break;
    case DNS_BACKEND_UNBOUND:
        ops = &dns_backend_unbound;
        break;
    default:
        snprintf(err, errlen, "unknown DNS backend %d", (int)opts->backend);
        return NULL;
    }
    return dns_resolver_new_ops(base, opts, ops, err, errlen);
}

struct dns_resolver *
dns_resolver_new_ops(struct event_base *base, const struct dns_options *opts,
                     const struct dns_backend_ops *ops, char *err, size_t errlen)
{
    struct dns_resolver *res = calloc(1, sizeof(*res));

    if (res == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    res->base = base;
    res->opts = *opts;
    if (res->opts.timeout == 0)
        res->opts.timeout = DEFAULT_TIMEOUT;
    if (res->opts.cache_max_ttl == 0)
        res->opts.cache_max_ttl = DEFAULT_MAX_TTL;
    if (res->opts.negative_ttl == 0)
        res->opts.negative_ttl = DEFAULT_NEG_TTL;
    if (res->opts.cache_max_entries == 0)
        res->opts.cache_max_entries = DEFAULT_MAX_ENTRIES;
    if (res->opts.max_in_flight == 0)
        res->opts.max_in_flight = DEFAULT_MAX_IN_FLIGHT;
    if (res->opts.clock == NULL)
        res->opts.clock = monotonic_seconds;
    res->rng = res->opts.rng_seed != 0 ? res->opts.rng_seed : dns_rng_seed();
    res->ops = ops;
    TAILQ_INIT(&res->ready);
    TAILQ_INIT(&res->queue);
    res->cache = dns_cache_new(res->opts.cache_max_entries, res->opts.cache_min_ttl,
                               res->opts.cache_max_ttl);
    res->ready_ev = event_new(base, -1, 0, ready_run, res);
    if (res->cache == NULL || res->ready_ev == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    res->be = ops->create(base, &res->opts, err, errlen);
    if (res->be == NULL)
        goto fail;
    /* The strings of opts stay the caller's; the backends copied what they keep. */
    res->opts.servers = NULL;
    res->opts.nservers = 0;
    res->opts.trust_anchor_file = NULL;
    res->opts.unbound_options = NULL;
    res->opts.nunbound_options = 0;
    return res;

fail:
    if (res->ready_ev != NULL)
        event_free(res->ready_ev);
    dns_cache_free(res->cache);
    free(res);
    return NULL;
}

/* Stops an entry's query and drops its waiters, without calling anyone back. */
static void
entry_abandon(struct dns_cache_entry *e, void *arg)
{
    struct dns_resolver *res = arg;
    struct dns_request *req, *tmp;

    if (e->bq != NULL) {
        res->ops->cancel(res->be, e->bq);
        e->bq = NULL;
    }
    if (e->queued) {
        TAILQ_REMOVE(&res->queue, e, qlink);
        e->queued = false;
    }
    if (e->timer != NULL) {
        event_free(e->timer);
        e->timer = NULL;
    }
    TAILQ_FOREACH_SAFE(req, &e->waiters, link, tmp)
    {
        TAILQ_REMOVE(&e->waiters, req, link);
        free(req);
    }
    e->nwaiters = 0;
}

void
dns_resolver_free(struct dns_resolver *res)
{
    struct dns_request *req;

    if (res == NULL)
        return;
    dns_cache_foreach(res->cache, entry_abandon, res);
    while ((req = TAILQ_FIRST(&res->ready)) != NULL) {
        TAILQ_REMOVE(&res->ready, req, link);
        dns_ans_ref_release(req->ans);
        free(req);
    }
    res->ops->destroy(res->be);
    event_free(res->ready_ev);
    dns_cache_free(res->cache);
    free(res);
}

uint64_t *
dns_resolver_rng(struct dns_resolver *res)
{
    return &res->rng;
}
