/*
 * The c-ares backend: a stub resolver (no DNSSEC validation, every answer is
 * "indeterminate") driven by libevent. c-ares tells us which sockets to watch through
 * ARES_OPT_SOCK_STATE_CB; we watch them with persistent events and run ares_process_fd,
 * and one timer follows ares_timeout() so c-ares can retransmit.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ares.h>
#include <event2/event.h>

#include "dns/backend.h"

#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)                                                 \
    for ((var) = TAILQ_FIRST((head)); (var) && ((tvar) = TAILQ_NEXT((var), field), 1);             \
         (var) = (tvar))
#endif

#include <sys/queue.h>

#define CARES_TRIES  3
#define CARES_RCVBUF (1024 * 1024)

struct sock_watch {
    TAILQ_ENTRY(sock_watch) link;
    struct cares *be;
    ares_socket_t fd;
    short what; /* EV_READ | EV_WRITE wanted */
    struct event *ev;
};

struct cares {
    struct event_base *base;
    ares_channel channel;
    struct event *timer;
    TAILQ_HEAD(, sock_watch) socks;
    bool destroying;
};

struct cares_query {
    struct cares *be;
    dns_backend_cb cb;
    void *arg;
    bool cancelled;
    bool in_call; /* inside ares_query(): c-ares may answer before it returns */
    bool done;
};

static void timer_update(struct cares *be);

static void
sock_event(evutil_socket_t fd, short what, void *arg)
{
    struct sock_watch *w = arg;
    struct cares *be = w->be;

    ares_process_fd(be->channel, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
                    (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
    timer_update(be);
}

static void
timer_fired(evutil_socket_t fd, short what, void *arg)
{
    struct cares *be = arg;

    (void)fd;
    (void)what;
    ares_process_fd(be->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    timer_update(be);
}

/* Arms the timer for c-ares' next retransmission or timeout, if a query is pending. */
static void
timer_update(struct cares *be)
{
    struct timeval tv, *t;

    if (be->destroying)
        return;
    /* With no maximum, ares_timeout says NULL when no query is pending. */
    t = ares_timeout(be->channel, NULL, &tv);
    if (t == NULL) {
        evtimer_del(be->timer);
        return;
    }
    evtimer_add(be->timer, t);
}

static void
sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct cares *be = data;
    struct sock_watch *w;
    short what = (short)((readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));

    TAILQ_FOREACH(w, &be->socks, link)
    {
        if (w->fd == fd)
            break;
    }
    if (what == 0) {
        if (w != NULL) {
            TAILQ_REMOVE(&be->socks, w, link);
            if (w->ev != NULL)
                event_free(w->ev);
            free(w);
        }
        return;
    }
    if (w == NULL) {
        w = calloc(1, sizeof(*w));
        if (w == NULL)
            return; /* the query then times out */
        w->be = be;
        w->fd = fd;
        TAILQ_INSERT_TAIL(&be->socks, w, link);
    } else if (w->what == what && w->ev != NULL) {
        return;
    } else if (w->ev != NULL) {
        event_free(w->ev);
    }
    w->what = what;
    w->ev = event_new(be->base, fd, what | EV_PERSIST, sock_event, w);
    if (w->ev != NULL)
        event_add(w->ev, NULL);
}

static void *
cares_create(struct event_base *base, const struct dns_options *opts, char *err, size_t errlen)
{
    struct cares *be = calloc(1, sizeof(*be));
    struct ares_options ao;
    int r, mask;
    char *csv = NULL;

    if (be == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r = ares_library_init(ARES_LIB_INIT_ALL);
    if (r != ARES_SUCCESS) {
        snprintf(err, errlen, "c-ares: %s", ares_strerror(r));
        free(be);
        return NULL;
    }
    be->base = base;
    TAILQ_INIT(&be->socks);
    memset(&ao, 0, sizeof(ao));
    ao.sock_state_cb = sock_state;
    ao.sock_state_cb_data = be;
    /* c-ares doubles the wait at each round: T + 2T + 4T = the front end's timeout, so a
     * lost datagram is sent again well before the lookup gives up. */
    ao.timeout = (int)(opts->timeout * 1000 / 7);
    if (ao.timeout < 100)
        ao.timeout = 100;
    ao.tries = CARES_TRIES;
    ao.flags = ARES_FLAG_EDNS; /* TLSA and SRV sets exceed 512 bytes; TCP after TC */
    ao.ednspsz = 1232;
    /* A burst of answers (a restart, a pool refilling) overflows the default 208 KiB
     * socket buffer on loopback and every lost datagram costs a retransmission. */
    ao.socket_receive_buffer_size = CARES_RCVBUF;
    mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS |
           ARES_OPT_EDNSPSZ | ARES_OPT_SOCK_RCVBUF;
    r = ares_init_options(&be->channel, &ao, mask);
    if (r != ARES_SUCCESS) {
        snprintf(err, errlen, "c-ares init: %s", ares_strerror(r));
        goto fail_lib;
    }
    if (opts->nservers > 0) {
        size_t len = 1;
        for (size_t i = 0; i < opts->nservers; i++)
            len += strlen(opts->servers[i]) + 1;
        csv = calloc(1, len);
        if (csv == NULL) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        for (size_t i = 0; i < opts->nservers; i++) {
            if (i > 0)
                strcat(csv, ",");
            strcat(csv, opts->servers[i]);
        }
        r = ares_set_servers_ports_csv(be->channel, csv);
        if (r != ARES_SUCCESS) {
            snprintf(err, errlen, "c-ares servers \"%s\": %s", csv, ares_strerror(r));
            goto fail;
        }
        free(csv);
    }
    be->timer = evtimer_new(base, timer_fired, be);
    if (be->timer == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    return be;

fail:
    free(csv);
    ares_destroy(be->channel);
fail_lib:
    ares_library_cleanup();
    free(be);
    return NULL;
}

static void
cares_destroy(void *arg)
{
    struct cares *be = arg;
    struct sock_watch *w, *tmp;

    /* ares_destroy calls every pending callback with ARES_EDESTRUCTION: all cancelled. */
    be->destroying = true;
    ares_destroy(be->channel);
    TAILQ_FOREACH_SAFE(w, &be->socks, link, tmp)
    {
        if (w->ev != NULL)
            event_free(w->ev);
        free(w);
    }
    event_free(be->timer);
    ares_library_cleanup();
    free(be);
}

static enum dns_status
cares_status(int status)
{
    switch (status) {
    case ARES_ETIMEOUT:
        return DNS_TIMEOUT;
    case ARES_ESERVFAIL:
    case ARES_EREFUSED:
        return DNS_SERVFAIL;
    case ARES_EFORMERR:
    case ARES_EBADRESP:
        return DNS_FORMERR;
    default:
        return DNS_ERROR;
    }
}

static void
query_done(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct cares_query *q = arg;
    struct dns_backend_result r = {.sec = DNS_SEC_INDETERMINATE};

    (void)timeouts;
    if (!q->cancelled) {
        /* ares_query maps RCODEs to ENOTFOUND/ENODATA/ESERVFAIL but keeps the packet: the
         * shared parser reads NXDOMAIN vs NODATA and the SOA's negative TTL from it. */
        if (abuf != NULL && alen > 0) {
            r.status = DNS_OK;
            r.pkt = abuf;
            r.len = (size_t)alen;
        } else {
            r.status = cares_status(status);
            r.why = ares_strerror(status);
        }
        q->cb(&r, q->arg);
    }
    q->done = true;
    if (!q->in_call)
        free(q);
}

static void *
cares_query(void *arg, const char *name, uint16_t type, dns_backend_cb cb, void *cbarg)
{
    struct cares *be = arg;
    struct cares_query *q = calloc(1, sizeof(*q));

    if (q == NULL) {
        cb(&(struct dns_backend_result){.status = DNS_ERROR, .why = "out of memory"}, cbarg);
        return NULL;
    }
    q->be = be;
    q->cb = cb;
    q->arg = cbarg;
    q->in_call = true;
    ares_query(be->channel, name, 1 /* IN */, type, query_done, q);
    q->in_call = false;
    if (q->done) {
        free(q);
        return NULL;
    }
    timer_update(be);
    return q;
}

/* c-ares cannot cancel one query: mark it so its callback frees it quietly. */
static void
cares_cancel(void *arg, void *qarg)
{
    struct cares_query *q = qarg;

    (void)arg;
    q->cancelled = true;
}

const struct dns_backend_ops dns_backend_cares = {
    .name = "c-ares",
    .create = cares_create,
    .destroy = cares_destroy,
    .query = cares_query,
    .cancel = cares_cancel,
};
