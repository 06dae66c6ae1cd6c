/* Scripted peers for session tests (see xpeer.h). */
#include "tests/unit/helpers/xpeer.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "s2s/sockaddr.h"

struct guard {
    bool fired;
};

static void
guard_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ((struct guard *)arg)->fired = true;
}

bool
xp_run_until(struct event_base *base, bool (*cond)(void *), void *arg, unsigned secs)
{
    struct guard g = {false};
    struct event *ev = evtimer_new(base, guard_cb, &g);
    struct timeval tv = {(time_t)secs, 0};
    bool ok;

    evtimer_add(ev, &tv);
    while (!(ok = cond(arg)) && !g.fired)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(ev);
    return ok;
}

void
xp_run_for(struct event_base *base, unsigned ms)
{
    struct guard g = {false};
    struct event *ev = evtimer_new(base, guard_cb, &g);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    evtimer_add(ev, &tv);
    while (!g.fired)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(ev);
}

int
xp_listen(struct sockaddr_storage *ss, socklen_t *sslen)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    *sslen = sizeof(*ss);
    if (sockaddr_from_ip("127.0.0.1", 0, ss, sslen) == -1 ||
        bind(fd, (struct sockaddr *)ss, *sslen) == -1 || listen(fd, 64) == -1 ||
        getsockname(fd, (struct sockaddr *)ss, sslen) == -1) {
        close(fd);
        return -1;
    }
    return fd;
}

static void
p_read(struct conn *c, void *arg)
{
    struct xpeer *p = arg;

    evbuffer_add_buffer(p->got, conn_input(c));
}

static void
p_event(struct conn *c, enum conn_event ev, const char *reason, void *arg)
{
    struct xpeer *p = arg;

    (void)c;
    switch (ev) {
    case CONN_EV_CONNECTED:
        p->connected++;
        break;
    case CONN_EV_TLS_UP:
        p->tls_up++;
        break;
    case CONN_EV_EOF:
        p->eof++;
        break;
    case CONN_EV_ERROR:
    case CONN_EV_TIMEOUT_CONN:
    case CONN_EV_TIMEOUT_TLS:
        p->error++;
        snprintf(p->reason, sizeof(p->reason), "%s", reason);
        break;
    default:
        break;
    }
}

static bool
connected_cond(void *arg)
{
    struct xpeer *p = arg;

    return p->connected > 0 || p->error > 0;
}

int
xp_connect(struct event_base *base, struct xpeer *p, int lfd, const struct sockaddr_storage *ss,
           socklen_t sslen)
{
    struct conn_cbs cbs = {p_read, p_event, p};
    char err[256];

    memset(p, 0, sizeof(*p));
    p->got = evbuffer_new();
    p->c = conn_connect(base, (const struct sockaddr *)ss, sslen, &cbs, err, sizeof(err));
    if (p->c == NULL || !xp_run_until(base, connected_cond, p, 10) || p->error)
        return -1;
    return accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

static bool
tls_cond(void *arg)
{
    struct xpeer *p = arg;

    return p->tls_up > 0 || p->error > 0 || p->eof > 0;
}

int
xp_starttls(struct event_base *base, struct xpeer *p, struct tls_ctx *ctx, const char *sni,
            const char *local, bool wait)
{
    char err[256];

    if (conn_starttls(p->c, ctx, TLS_ROLE_CLIENT, sni, local, NULL, err, sizeof(err)) == -1) {
        fprintf(stderr, "xp_starttls: %s\n", err);
        return -1;
    }
    if (!wait)
        return 0;
    return xp_run_until(base, tls_cond, p, 10) && p->tls_up > 0 ? 0 : -1;
}

void
xp_accept(struct event_base *base, struct xpeer *p, int fd)
{
    struct conn_cbs cbs = {p_read, p_event, p};

    memset(p, 0, sizeof(*p));
    p->got = evbuffer_new();
    p->c = conn_new_accepted(base, fd, &cbs);
}

int
xp_starttls_server(struct xpeer *p, struct tls_ctx *ctx)
{
    char err[256];

    return conn_starttls(p->c, ctx, TLS_ROLE_SERVER, NULL, NULL, NULL, err, sizeof(err));
}

void
xp_send(struct xpeer *p, const char *text)
{
    conn_write(p->c, text, strlen(text));
}

bool
xp_has(struct xpeer *p, const char *s)
{
    struct evbuffer_ptr r = evbuffer_search(p->got, s, strlen(s), NULL);

    return r.pos != -1;
}

struct wait_arg {
    struct xpeer *p;
    const char *s;
};

static bool
has_cond(void *arg)
{
    struct wait_arg *w = arg;

    return xp_has(w->p, w->s);
}

bool
xp_wait(struct event_base *base, struct xpeer *p, const char *s)
{
    struct wait_arg w = {p, s};

    if (xp_run_until(base, has_cond, &w, 10))
        return true;
    fprintf(stderr, "xp_wait: no \"%s\" in \"%.*s\"\n", s, (int)evbuffer_get_length(p->got),
            (const char *)evbuffer_pullup(p->got, -1));
    return false;
}

static bool
closed_cond(void *arg)
{
    struct xpeer *p = arg;

    return p->eof > 0 || p->error > 0;
}

bool
xp_wait_closed(struct event_base *base, struct xpeer *p)
{
    return xp_run_until(base, closed_cond, p, 10);
}

void
xp_clear(struct xpeer *p)
{
    evbuffer_drain(p->got, evbuffer_get_length(p->got));
}

void
xp_done(struct xpeer *p)
{
    if (p->c != NULL)
        conn_free(p->c);
    p->c = NULL;
    if (p->got != NULL)
        evbuffer_free(p->got);
    p->got = NULL;
}
