/*
 * Targets -> Happy Eyeballs -> a connected conn (see connector.h).
 */
#include "s2s/connector.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "s2s/conn.h"
#include "s2s/log.h"

#define MAX_ATTEMPTS DNS_MAX_TARGET_ADDRS

struct attempt {
    struct connector *k;
    struct conn *c;
};

struct connector {
    struct event_base *base;
    const struct dns_targets *targets;
    unsigned connect_ms, delay_ms;
    connector_fn cb;
    void *arg;
    size_t target; /* index being tried */
    size_t next_addr;
    struct attempt att[MAX_ATTEMPTS];
    size_t live; /* attempts in flight */
    unsigned tried;
    char last_why[512];
    struct event *ev_next; /* Happy Eyeballs "Connection Attempt Delay" */
    struct event *ev_done; /* delivers the result from the loop */
    struct conn *winner;
    bool done;
};

static void start_next(struct connector *k);

static void
addr_to_sa(const struct dns_addr *a, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    if (a->family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        memcpy(&s6->sin6_addr, a->addr, 16);
        *len = sizeof(*s6);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        memcpy(&s4->sin_addr, a->addr, 4);
        *len = sizeof(*s4);
    }
}

static void
drop_attempts(struct connector *k)
{
    for (size_t i = 0; i < MAX_ATTEMPTS; i++) {
        if (k->att[i].c != NULL)
            conn_free(k->att[i].c);
        k->att[i].c = NULL;
    }
    k->live = 0;
}

static void
finish(struct connector *k)
{
    struct timeval now = {0, 0};

    k->done = true;
    event_del(k->ev_next);
    evtimer_add(k->ev_done, &now);
}

static void
done_cb(evutil_socket_t fd, short what, void *arg)
{
    struct connector *k = arg;
    const struct dns_target *t = k->winner != NULL ? &k->targets->targets[k->target] : NULL;
    struct conn *c = k->winner;
    enum xmpp_stanza_error cond = k->tried == 0 ? XMPP_STANZA_ERR_REMOTE_SERVER_NOT_FOUND
                                                : XMPP_STANZA_ERR_REMOTE_SERVER_TIMEOUT;
    connector_fn cb = k->cb;
    void *cbarg = k->arg;
    char why[512];

    (void)fd;
    (void)what;
    snprintf(why, sizeof(why), "%s", k->tried == 0 ? "no address to connect to" : k->last_why);
    k->winner = NULL;
    connector_cancel(k);
    cb(c, t, cond, why, cbarg);
}

static void
att_event(struct conn *c, enum conn_event ev, const char *reason, void *arg)
{
    struct attempt *a = arg;
    struct connector *k = a->k;
    struct conn_cbs none = {0};

    if (ev == CONN_EV_CONNECTED) {
        /* Handed over right here, inside the conn's own callback, so that the new owner's
         * callbacks are in place before anything else (data, EOF) can arrive. */
        connector_fn cb = k->cb;
        void *cbarg = k->arg;
        const struct dns_target *t = &k->targets->targets[k->target];

        log_debug("connector: %s connected to %s", k->targets->domain, conn_peer(c));
        a->c = NULL;
        k->live--;
        conn_set_cbs(c, &none);
        connector_cancel(k);
        cb(c, t, XMPP_STANZA_ERR_UNDEFINED_CONDITION, "", cbarg);
        return;
    }
    if (ev != CONN_EV_ERROR && ev != CONN_EV_TIMEOUT_CONN && ev != CONN_EV_EOF)
        return;
    snprintf(k->last_why, sizeof(k->last_why), "%.253s %.64s: %.160s",
             k->targets->targets[k->target].host, conn_peer(c), reason);
    log_debug("connector: %s", k->last_why);
    conn_free(c);
    a->c = NULL;
    k->live--;
    start_next(k); /* RFC 8305 §5: a failure starts the next attempt at once */
}

static void
att_read(struct conn *c, void *arg)
{
    (void)c;
    (void)arg;
}

static void
delay_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    start_next(arg);
}

/* Starts the next address (of this target, else the next target); when nothing is left
 * and nothing is in flight, reports failure. */
static void
start_next(struct connector *k)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char err[128];

    if (k->done)
        return;
    for (;;) {
        const struct dns_target *t;

        if (k->target >= k->targets->ntargets) {
            if (k->live == 0)
                finish(k);
            return;
        }
        t = &k->targets->targets[k->target];
        if (k->next_addr < t->naddrs)
            break;
        if (k->live > 0)
            return; /* let this target's attempts finish before moving on */
        k->target++;
        k->next_addr = 0;
    }
    {
        const struct dns_target *t = &k->targets->targets[k->target];
        struct conn_cbs cbs = {att_read, att_event, NULL};
        struct conn_timeouts to = {.connect_ms = k->connect_ms};
        struct attempt *a = NULL;
        struct timeval tv;

        for (size_t i = 0; i < MAX_ATTEMPTS; i++)
            if (k->att[i].c == NULL) {
                a = &k->att[i];
                break;
            }
        if (a == NULL)
            return;
        addr_to_sa(&t->addrs[k->next_addr++], t->port, &ss, &len);
        a->k = k;
        cbs.arg = a;
        k->tried++;
        a->c = conn_connect(k->base, (struct sockaddr *)&ss, len, &cbs, err, sizeof(err));
        if (a->c == NULL) {
            snprintf(k->last_why, sizeof(k->last_why), "%.253s: %.127s", t->host, err);
            start_next(k);
            return;
        }
        conn_set_timeouts(a->c, &to);
        k->live++;
        tv.tv_sec = k->delay_ms / 1000;
        tv.tv_usec = (k->delay_ms % 1000) * 1000;
        evtimer_add(k->ev_next, &tv);
    }
}

struct connector *
connector_start(struct event_base *base, const struct dns_targets *targets,
                unsigned connect_timeout_ms, unsigned attempt_delay_ms, connector_fn cb, void *arg)
{
    struct connector *k;

    if ((k = calloc(1, sizeof(*k))) == NULL)
        fatal("calloc");
    k->base = base;
    k->targets = targets;
    k->connect_ms = connect_timeout_ms ? connect_timeout_ms : 10000;
    k->delay_ms = attempt_delay_ms ? attempt_delay_ms : 250; /* RFC 8305 §8 */
    k->cb = cb;
    k->arg = arg;
    k->ev_next = evtimer_new(base, delay_cb, k);
    k->ev_done = evtimer_new(base, done_cb, k);
    start_next(k);
    return k;
}

void
connector_cancel(struct connector *k)
{
    if (k == NULL)
        return;
    drop_attempts(k);
    if (k->winner != NULL)
        conn_free(k->winner);
    event_free(k->ev_next);
    event_free(k->ev_done);
    free(k);
}
