/*
 * Inbound listeners and the per-address connection bound.
 */
#include "s2s/listen.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include <event2/listener.h>

#include "s2s/conn.h"
#include "s2s/log.h"
#include "s2s/sockaddr.h"

/* Streams from one remote address. */
struct listen_slot {
    LIST_ENTRY(listen_slot) entry;
    int family;
    unsigned char addr[16];
    unsigned count;
};

struct lsock {
    struct listen *l;
    struct evconnlistener *ev;
    bool direct_tls;
    char text[SOCKADDR_STRLEN];
};

struct listen {
    struct event_base *base;
    struct lsock *socks;
    size_t nsocks;
    unsigned per_ip;
    listen_accept_fn cb;
    void *arg;
    LIST_HEAD(, listen_slot) slots; /* linear: one entry per remote address with streams */
};

static void
addr_key(const struct sockaddr *sa, int *family, unsigned char addr[16])
{
    memset(addr, 0, 16);
    *family = sa->sa_family;
    if (sa->sa_family == AF_INET)
        memcpy(addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    else if (sa->sa_family == AF_INET6)
        memcpy(addr, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
}

static struct listen_slot *
slot_find(const struct listen *l, const struct sockaddr *sa)
{
    struct listen_slot *s;
    unsigned char addr[16];
    int family;

    addr_key(sa, &family, addr);
    LIST_FOREACH(s, &l->slots, entry)
    if (s->family == family && memcmp(s->addr, addr, 16) == 0)
        return s;
    return NULL;
}

unsigned
listen_count_for(const struct listen *l, const struct sockaddr *sa)
{
    struct listen_slot *s = slot_find(l, sa);

    return s != NULL ? s->count : 0;
}

static void
accept_cb(struct evconnlistener *ev, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    struct lsock *ls = arg;
    struct listen *l = ls->l;
    struct listen_slot *slot = slot_find(l, sa);
    char peer[SOCKADDR_STRLEN];
    struct conn *c;

    (void)ev;
    if (slot != NULL && slot->count >= l->per_ip) {
        log_warn("listen: refused peer=%s on %s reason=\"%u streams from this address "
                 "(limits.connections_per_ip)\"",
                 sockaddr_str(sa, (socklen_t)salen, peer, sizeof(peer)), ls->text, slot->count);
        close(fd);
        return;
    }
    if (slot == NULL) {
        if ((slot = calloc(1, sizeof(*slot))) == NULL)
            fatal("calloc");
        addr_key(sa, &slot->family, slot->addr);
        LIST_INSERT_HEAD(&l->slots, slot, entry);
    }
    slot->count++;
    c = conn_new_accepted(l->base, fd, NULL);
    log_debug("listen: accepted peer=%s on %s", conn_peer(c), ls->text);
    l->cb(c, ls->direct_tls, slot, l->arg);
}

void
listen_slot_release(struct listen *l, struct listen_slot *slot)
{
    if (slot == NULL)
        return;
    if (--slot->count == 0) {
        LIST_REMOVE(slot, entry);
        free(slot);
    }
    (void)l;
}

static int
bind_one(struct listen *l, struct lsock *ls, const struct conf_addr *a, bool direct, char *err,
         size_t errlen)
{
    int fd, one = 1;

    ls->l = l;
    ls->direct_tls = direct;
    snprintf(ls->text, sizeof(ls->text), "%s", a->text);
    fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1)
        goto fail;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (a->sa.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&a->sa, a->salen) == -1 || listen(fd, 511) == -1)
        goto fail;
    ls->ev = evconnlistener_new(l->base, accept_cb, ls, LEV_OPT_CLOSE_ON_FREE, -1, fd);
    if (ls->ev == NULL)
        goto fail;
    log_info("listen: %s on %s", direct ? "direct TLS" : "STARTTLS", a->text);
    return 0;
fail:
    snprintf(err, errlen, "cannot listen on %s: %s", a->text, strerror(errno));
    if (fd != -1)
        close(fd);
    return -1;
}

struct listen *
listen_new(struct event_base *base, const struct conf_listen *li, unsigned per_ip,
           listen_accept_fn cb, void *arg, char *err, size_t errlen)
{
    struct listen *l;
    size_t n = li->nstarttls + li->ndirect_tls;

    if ((l = calloc(1, sizeof(*l))) == NULL ||
        (l->socks = calloc(n + 1, sizeof(*l->socks))) == NULL)
        fatal("calloc");
    l->base = base;
    l->per_ip = per_ip > 0 ? per_ip : 16;
    l->cb = cb;
    l->arg = arg;
    LIST_INIT(&l->slots);
    for (size_t i = 0; i < n; i++) {
        bool direct = i >= li->nstarttls;
        const struct conf_addr *a = direct ? &li->direct_tls[i - li->nstarttls] : &li->starttls[i];

        if (bind_one(l, &l->socks[i], a, direct, err, errlen) == -1) {
            listen_free(l);
            return NULL;
        }
        l->nsocks++;
    }
    return l;
}

void
listen_stop(struct listen *l)
{
    for (size_t i = 0; i < l->nsocks; i++) {
        if (l->socks[i].ev != NULL)
            evconnlistener_free(l->socks[i].ev);
        l->socks[i].ev = NULL;
    }
}

void
listen_free(struct listen *l)
{
    struct listen_slot *s;

    if (l == NULL)
        return;
    listen_stop(l);
    while ((s = LIST_FIRST(&l->slots)) != NULL) {
        LIST_REMOVE(s, entry);
        free(s);
    }
    free(l->socks);
    free(l);
}

void
listen_set_per_ip(struct listen *l, unsigned per_ip)
{
    l->per_ip = per_ip > 0 ? per_ip : 16;
}

int
listen_addr(const struct listen *l, size_t i, struct sockaddr_storage *ss, socklen_t *len)
{
    if (i >= l->nsocks || l->socks[i].ev == NULL)
        return -1;
    *len = sizeof(*ss);
    return getsockname(evconnlistener_get_fd(l->socks[i].ev), (struct sockaddr *)ss, len);
}
