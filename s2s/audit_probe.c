/*
 * One audit connection: a readable state machine in the manner of OpenSMTPD's
 * mta_session.c. probe_enter() starts a state (arms its timeout, sends what the state
 * sends); probe_io() moves bytes; the stanza handler decides what the element that
 * arrived means in the current state.
 *
 *   CONNECT -> [STARTTLS: HEADER -> PROCEED] -> TLS -> [full: HEADER -> SASL] -> DONE
 */
#include "s2s/audit_probe.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/err.h>

#include "s2s/log.h"
#include "s2s/stanza.h"
#include "s2s/tls.h"
#include "s2s/xmlstream.h"

#define NS_TLS         "urn:ietf:params:xml:ns:xmpp-tls"
#define NS_SASL        "urn:ietf:params:xml:ns:xmpp-sasl"
#define NS_DB_FEATURE  "urn:xmpp:features:dialback"
#define NS_BIDI        "urn:xmpp:features:bidi"
#define NS_LIMITS      "urn:xmpp:stream-limits:0"
#define NS_COMPRESS    "http://jabber.org/features/compress"
#define PROBE_READ_MAX (64 * 1024)

enum probe_state {
    P_CONNECT,
    P_HEADER, /* waiting for the stream header and <stream:features/> */
    P_PROCEED,
    P_TLS,
    P_SASL,
    P_DONE,
};

struct audit_probe {
    struct event_base *base;
    enum probe_state state;
    int fd;
    SSL *ssl;
    bool tls_up;
    struct event *ev_io;
    struct event *ev_timer;
    struct xmlstream *xs;
    struct evbuffer *out;
    struct audit_probe_params prm;
    audit_probe_fn cb;
    void *arg;
    struct audit_probe_result res;
    struct timespec t0;
    enum probe_state next; /* decided by a stanza handler, entered after the parse */
};

static void probe_enter(struct audit_probe *p, enum probe_state st);
static void probe_io(struct audit_probe *p);

static const char *
probe_strstate(enum probe_state st)
{
    static const char *const names[] = {"CONNECT", "HEADER", "PROCEED", "TLS", "SASL", "DONE"};
    return names[st];
}

static double
ms_since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) * 1e3 + (double)(now.tv_nsec - t0->tv_nsec) / 1e6;
}

static void
probe_free(struct audit_probe *p)
{
    if (p->ev_io != NULL)
        event_free(p->ev_io);
    if (p->ev_timer != NULL)
        event_free(p->ev_timer);
    if (p->xs != NULL)
        xmlstream_free(p->xs);
    if (p->out != NULL)
        evbuffer_free(p->out);
    if (p->ssl != NULL)
        SSL_free(p->ssl);
    if (p->fd != -1)
        close(p->fd);
    free(p);
}

/* Ends the probe: the callback sees the SSL (for facts), then everything is freed. */
static void probe_finish(struct audit_probe *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
probe_finish(struct audit_probe *p, const char *fmt, ...)
{
    va_list ap;

    if (fmt != NULL && p->res.error[0] == '\0') {
        va_start(ap, fmt);
        vsnprintf(p->res.error, sizeof(p->res.error), fmt, ap);
        va_end(ap);
    }
    log_debug("audit probe: %s -> DONE tls=%d error=\"%s\"", probe_strstate(p->state), p->res.tls,
              p->res.error);
    p->state = P_DONE;
    p->res.total_ms = ms_since(&p->t0);
    event_del(p->ev_io);
    event_del(p->ev_timer);
    p->cb(p, p->ssl, &p->res, p->arg);
    probe_free(p);
}

static void probe_ev(evutil_socket_t fd, short what, void *arg);

static void
probe_wait(struct audit_probe *p, short what)
{
    event_del(p->ev_io);
    event_assign(p->ev_io, p->base, p->fd, what, probe_ev, p);
    event_add(p->ev_io, NULL);
}

/*
 * From inside an XML callback: record why the probe ends and stop the parser; the
 * probe ends once xmlstream_feed() has returned (never free what called you).
 */
static void probe_done(struct audit_probe *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
probe_done(struct audit_probe *p, const char *fmt, ...)
{
    va_list ap;

    if (fmt != NULL && p->res.error[0] == '\0') {
        va_start(ap, fmt);
        vsnprintf(p->res.error, sizeof(p->res.error), fmt, ap);
        va_end(ap);
    }
    p->next = P_DONE;
    if (p->xs != NULL)
        xmlstream_reset(p->xs);
}

/* ---- output ---- */

/* Writes what is queued; 0 done or would block (then EV_WRITE is armed), -1 failed. */
static int
probe_flush(struct audit_probe *p)
{
    while (evbuffer_get_length(p->out) > 0) {
        size_t len = evbuffer_get_length(p->out);
        unsigned char *data = evbuffer_pullup(p->out, (ssize_t)len);
        int n;

        if (p->tls_up) {
            ERR_clear_error();
            n = SSL_write(p->ssl, data, (int)len);
            if (n <= 0) {
                int e = SSL_get_error(p->ssl, n);
                if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
                    return 0;
                return -1;
            }
        } else {
            n = (int)write(p->fd, data, len);
            if (n < 0)
                return errno == EAGAIN || errno == EINTR ? 0 : -1;
        }
        evbuffer_drain(p->out, (size_t)n);
    }
    return 0;
}

static void
probe_send_header(struct audit_probe *p)
{
    struct xmlstream_header h = {
        .to = p->prm.domain,
        .from = p->prm.from,
        .db = true, /* XEP-0220 §2.1: servers look for it to offer dialback */
    };
    xmlstream_write_header(p->out, &h);
}

/* ---- features (RFC 6120 §4.3.2) ---- */

static void
features_parse(struct stanza *st, struct audit_features *f)
{
    const struct stanza_elem *root = stanza_root(st), *e, *m;

    memset(f, 0, sizeof(*f));
    f->seen = true;
    f->limit_max_bytes = f->limit_idle_seconds = -1;
    for (e = stanza_elem_first(root); e != NULL; e = stanza_elem_next(e)) {
        if (stanza_elem_is(e, NS_TLS, "starttls")) {
            f->starttls = true;
            f->starttls_required = stanza_elem_child(e, NS_TLS, "required") != NULL;
        } else if (stanza_elem_is(e, NS_DB_FEATURE, "dialback")) {
            f->dialback = true;
            f->dialback_errors = stanza_elem_child(e, NS_DB_FEATURE, "errors") != NULL;
        } else if (stanza_elem_is(e, NS_SASL, "mechanisms")) {
            f->sasl = true;
            for (m = stanza_elem_first(e); m != NULL; m = stanza_elem_next(m)) {
                const char *name = stanza_elem_text(st, m, NULL);
                size_t used = strlen(f->sasl_mechanisms);
                if (!stanza_elem_is(m, NS_SASL, "mechanism") || name == NULL)
                    continue;
                if (strcmp(name, "EXTERNAL") == 0)
                    f->sasl_external = true;
                snprintf(f->sasl_mechanisms + used, sizeof(f->sasl_mechanisms) - used, "%s%s",
                         used ? " " : "", name);
            }
        } else if (stanza_elem_is(e, NS_BIDI, "bidi")) {
            f->bidi = true;
        } else if (stanza_elem_is(e, NS_COMPRESS, "compression")) {
            f->compression = true;
        } else if (stanza_elem_is(e, NS_LIMITS, "limits")) {
            const struct stanza_elem *mb = stanza_elem_child(e, NS_LIMITS, "max-bytes");
            const struct stanza_elem *is = stanza_elem_child(e, NS_LIMITS, "idle-seconds");
            const char *t;
            if (mb != NULL && (t = stanza_elem_text(st, mb, NULL)) != NULL)
                f->limit_max_bytes = strtol(t, NULL, 10);
            if (is != NULL && (t = stanza_elem_text(st, is, NULL)) != NULL)
                f->limit_idle_seconds = strtol(t, NULL, 10);
        }
    }
}

/* ---- XML callbacks: record, and decide the next state (entered after the parse) ---- */

static void
xs_header(void *arg, const struct xmlstream_header *h)
{
    struct audit_probe *p = arg;
    struct audit_endpoint *ep = p->prm.ep;

    if (ep == NULL)
        return;
    snprintf(ep->stream_version, sizeof(ep->stream_version), "%s", h->version ? h->version : "");
    snprintf(ep->stream_id, sizeof(ep->stream_id), "%s", h->id ? h->id : "");
    snprintf(ep->stream_from, sizeof(ep->stream_from), "%s", h->from ? h->from : "");
}

static void
on_features(struct audit_probe *p, struct stanza *st)
{
    struct audit_endpoint *ep = p->prm.ep;
    struct audit_features f;

    features_parse(st, &f);
    if (!p->tls_up) {
        if (ep != NULL)
            ep->pre_tls = f;
        if (!f.starttls) {
            probe_done(p, "STARTTLS not offered");
            return;
        }
        evbuffer_add_printf(p->out, "<starttls xmlns='" NS_TLS "'/>");
        p->next = P_PROCEED;
        return;
    }
    if (ep != NULL)
        ep->post_tls = f;
    if (p->prm.sasl_external && ep != NULL) {
        if (!f.sasl_external) {
            ep->sasl_external = AUDIT_EXT_NOT_OFFERED;
        } else {
            /* RFC 6120 §6.4.2: "=" is the empty initial response (authzid from cert). */
            evbuffer_add_printf(p->out, "<auth xmlns='" NS_SASL "' mechanism='EXTERNAL'>=</auth>");
            p->next = P_SASL;
            return;
        }
    }
    probe_done(p, NULL);
}

static void
on_sasl(struct audit_probe *p, struct stanza *st)
{
    struct audit_endpoint *ep = p->prm.ep;
    const struct stanza_elem *root = stanza_root(st), *cond;

    if (stanza_elem_is(root, NS_SASL, "success")) {
        ep->sasl_external = AUDIT_EXT_SUCCESS;
    } else if (stanza_elem_is(root, NS_SASL, "failure")) {
        ep->sasl_external = AUDIT_EXT_FAILURE;
        if ((cond = stanza_elem_first(root)) != NULL)
            snprintf(ep->sasl_external_detail, sizeof(ep->sasl_external_detail), "%s", cond->name);
    } else {
        ep->sasl_external = AUDIT_EXT_ERROR;
        snprintf(ep->sasl_external_detail, sizeof(ep->sasl_external_detail), "unexpected <%s/>",
                 root->name);
    }
    probe_done(p, NULL);
}

static void
xs_stanza(void *arg, struct stanza *st)
{
    struct audit_probe *p = arg;
    const struct stanza_elem *root = stanza_root(st);

    if (p->state == P_HEADER && stanza_elem_is(root, XMPP_NS_STREAMS, "features")) {
        on_features(p, st);
    } else if (p->state == P_PROCEED && stanza_elem_is(root, NS_TLS, "proceed")) {
        p->next = P_TLS;
        xmlstream_reset(p->xs); /* stop here: anything after <proceed/> is not ours */
    } else if (p->state == P_PROCEED && stanza_elem_is(root, NS_TLS, "failure")) {
        probe_done(p, "STARTTLS refused (<failure/>)");
    } else if (p->state == P_SASL) {
        on_sasl(p, st);
    } else if (stanza_elem_is(root, XMPP_NS_STREAMS, "error")) {
        const struct stanza_elem *cond = stanza_elem_first(root);
        probe_done(p, "stream error <%s/> in %s", cond ? cond->name : "?",
                   probe_strstate(p->state));
    } else {
        probe_done(p, "unexpected <%s/> in %s", root->name, probe_strstate(p->state));
    }
    stanza_free(st);
}

static void
xs_close(void *arg)
{
    struct audit_probe *p = arg;
    probe_done(p, "stream closed by the peer in %s", probe_strstate(p->state));
}

static void
xs_error(void *arg, enum xmpp_stream_error cond, const char *text)
{
    struct audit_probe *p = arg;
    probe_done(p, "bad XML from the peer (%s): %s", xmpp_stream_error_name(cond), text);
}

static const struct xmlstream_cb probe_xs_cb = {
    .header = xs_header,
    .stanza_take = xs_stanza,
    .close = xs_close,
    .error = xs_error,
};

/* ---- input ---- */

/*
 * Reads what is available; 1: more may come (wait), 0: the probe ended (freed), 2: a
 * transition is pending in p->next.
 */
static int
probe_read(struct audit_probe *p)
{
    char buf[4096];

    for (size_t total = 0; total < PROBE_READ_MAX;) {
        ssize_t n;
        if (p->tls_up) {
            ERR_clear_error();
            n = SSL_read(p->ssl, buf, sizeof(buf));
            if (n <= 0) {
                int e = SSL_get_error(p->ssl, (int)n);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                    return 1;
                probe_finish(p, "connection closed in %s", probe_strstate(p->state));
                return 0;
            }
        } else {
            n = read(p->fd, buf, sizeof(buf));
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 1;
            if (n <= 0) {
                probe_finish(p, "connection %s in %s", n == 0 ? "closed" : strerror(errno),
                             probe_strstate(p->state));
                return 0;
            }
        }
        total += (size_t)n;
        p->next = p->state;
        if (xmlstream_feed(p->xs, buf, (size_t)n) < 0 && p->next != P_DONE)
            probe_done(p, "bad XML from the peer");
        if (p->next != p->state)
            return 2;
    }
    return 1;
}

/* ---- TLS ---- */

static void
probe_tls_step(struct audit_probe *p)
{
    int r, e;
    char ebuf[AUDIT_STR];

    ERR_clear_error();
    r = SSL_connect(p->ssl);
    if (r == 1) {
        p->tls_up = true;
        p->res.tls = true;
        if (p->prm.mode == AUDIT_PROBE_HANDSHAKE) {
            probe_finish(p, NULL);
            return;
        }
        xmlstream_free(p->xs);
        if ((p->xs = xmlstream_new(NULL, &probe_xs_cb, p)) == NULL) {
            probe_finish(p, "out of memory");
            return;
        }
        probe_send_header(p);
        probe_enter(p, P_HEADER);
        return;
    }
    e = SSL_get_error(p->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        probe_wait(p, EV_READ);
        return;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        probe_wait(p, EV_WRITE);
        return;
    }
    probe_finish(p, "TLS handshake failed: %s",
                 tls_error_string(ebuf, sizeof(ebuf),
                                  e == SSL_ERROR_SYSCALL ? "connection closed" : "refused"));
}

/* ---- the state machine ---- */

static void
probe_enter(struct audit_probe *p, enum probe_state st)
{
    struct timeval tv = {p->prm.timeout_ms / 1000, (p->prm.timeout_ms % 1000) * 1000};

    log_debug("audit probe: %s -> %s", probe_strstate(p->state), probe_strstate(st));
    p->state = st;
    evtimer_add(p->ev_timer, &tv);
    if (probe_flush(p) == -1) {
        probe_finish(p, "write failed in %s", probe_strstate(st));
        return;
    }
    switch (st) {
    case P_DONE:
        probe_finish(p, NULL);
        break;
    case P_CONNECT:
        probe_wait(p, EV_WRITE);
        if (p->res.error[0] != '\0')
            event_active(p->ev_io, EV_WRITE, 0); /* connect() failed at once */
        break;
    case P_TLS:
        p->res.xmpp_ok = true;
        if (!SSL_set_fd(p->ssl, p->fd)) {
            probe_finish(p, "SSL_set_fd failed");
            return;
        }
        probe_tls_step(p);
        break;
    default:
        probe_io(p);
        break;
    }
}

/* Moves bytes in a reading state and enters the next state when one was decided. */
static void
probe_io(struct audit_probe *p)
{
    int r;

    if (evbuffer_get_length(p->out) > 0 && probe_flush(p) == -1) {
        probe_finish(p, "write failed in %s", probe_strstate(p->state));
        return;
    }
    if ((r = probe_read(p)) == 0)
        return;
    if (r == 2) {
        probe_enter(p, p->next);
        return;
    }
    probe_wait(p, evbuffer_get_length(p->out) > 0 ? EV_READ | EV_WRITE : EV_READ);
}

static void
probe_connected(struct audit_probe *p)
{
    int soerr = 0;
    socklen_t len = sizeof(soerr);

    if (p->res.error[0] != '\0') {
        probe_finish(p, NULL);
        return;
    }
    if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == -1)
        soerr = errno;
    if (soerr != 0) {
        probe_finish(p, "connect: %s", strerror(soerr));
        return;
    }
    p->res.connected = true;
    p->res.connect_ms = ms_since(&p->t0);
    if (p->prm.tls_mode == DNS_TLS_DIRECT) {
        probe_enter(p, P_TLS);
        return;
    }
    probe_send_header(p);
    probe_enter(p, P_HEADER);
}

static void
probe_ev(evutil_socket_t fd, short what, void *arg)
{
    struct audit_probe *p = arg;

    (void)fd;
    (void)what;
    switch (p->state) {
    case P_CONNECT:
        probe_connected(p);
        break;
    case P_TLS:
        probe_tls_step(p);
        break;
    default:
        probe_io(p);
        break;
    }
}

static void
probe_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct audit_probe *p = arg;

    (void)fd;
    (void)what;
    p->res.timeout = true;
    probe_finish(p, "timeout in %s after %u ms", probe_strstate(p->state), p->prm.timeout_ms);
}

struct audit_probe *
audit_probe_start(struct event_base *base, const struct sockaddr *sa, socklen_t salen, SSL *ssl,
                  const struct audit_probe_params *params, audit_probe_fn cb, void *arg, char *err,
                  size_t errlen)
{
    struct audit_probe *p;
    int one = 1;

    if ((p = calloc(1, sizeof(*p))) == NULL) {
        snprintf(err, errlen, "out of memory");
        SSL_free(ssl);
        return NULL;
    }
    p->base = base;
    p->ssl = ssl;
    p->prm = *params;
    p->cb = cb;
    p->arg = arg;
    p->state = P_CONNECT;
    clock_gettime(CLOCK_MONOTONIC, &p->t0);
    p->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p->fd == -1) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        probe_free(p);
        return NULL;
    }
    setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    p->ev_io = event_new(base, p->fd, EV_READ, probe_ev, p);
    p->ev_timer = evtimer_new(base, probe_timeout, p);
    p->out = evbuffer_new();
    p->xs = xmlstream_new(NULL, &probe_xs_cb, p);
    if (p->ev_io == NULL || p->ev_timer == NULL || p->out == NULL || p->xs == NULL) {
        snprintf(err, errlen, "out of memory");
        probe_free(p);
        return NULL;
    }
    if (connect(p->fd, sa, salen) == -1 && errno != EINPROGRESS) {
        /* Reported from the loop like every other outcome. */
        snprintf(p->res.error, sizeof(p->res.error), "connect: %s", strerror(errno));
    }
    probe_enter(p, P_CONNECT);
    return p;
}

void
audit_probe_cancel(struct audit_probe *p)
{
    probe_free(p);
}
