/*
 * Connections: one TCP stream, its buffers, its timers and its TLS session.
 *
 * The "Foundation" issue asked for a connection on a libevent bufferevent with STARTTLS
 * through bufferevent_openssl_filter_new. The goal stands (a libevent-driven connection,
 * STARTTLS upgrade of a live stream, direct TLS); the mechanism does not (DESIGN.md,
 * FIELD-NOTES.md): libevent 2.1.12's bufferevent_openssl can run the EOF callback before
 * delivering the last record read in the same pass, can stall with decrypted data waiting
 * inside SSL under a read high-water mark, and makes one TLS record per write. So the conn
 * owns the non-blocking socket, two level-triggered events (read, write), an input and an
 * output evbuffer, and calls SSL_read/SSL_write itself:
 *
 * - Reads take up to 64 KiB per read() in plaintext (evbuffer_read caps at 4 KiB), and
 *   SSL_read runs in a loop until OpenSSL wants more from the socket, so nothing stays
 *   decrypted inside SSL unseen. The owner gets one read callback per wakeup, and the
 *   EOF event only after it.
 * - Writes are deferred: appending to the output only schedules one flush per loop
 *   iteration (an event made active), so all the stanzas queued in that iteration leave
 *   in one writev() or in full TLS records (one SSL_write per record).
 * - Events are level-triggered, so a close right behind data is seen on the next wakeup
 *   (EV_CLOSED is only needed with EV_ET).
 *
 * Callbacks never free what called them: conn_free() inside a callback marks the conn and
 * it is destroyed when the callback returns (depth count); conn_close() hands the conn to
 * the close machinery, which frees it itself.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "s2s/conn.h"
#include "s2s/log.h"
#include "s2s/sockaddr.h"
#include "s2s/stats.h"
#include "s2s/tls.h"

#define CONN_PLAIN_READ   (64 * 1024)  /* one read() */
#define CONN_TLS_READ     (16 * 1024)  /* one SSL_read: a full record's plaintext */
#define CONN_TLS_RECORD   (16 * 1024)  /* one SSL_write: one full record */
#define CONN_READ_BUDGET  (256 * 1024) /* per wakeup, then let other conns run */
#define CONN_WRITE_BUDGET (256 * 1024)
#define CONN_LINGER_READ  16384

enum conn_state {
    CS_CONNECTING,  /* TCP connect in progress */
    CS_OPEN,        /* data flows, plain or TLS */
    CS_TLS_FLUSH,   /* STARTTLS asked: writing the plaintext queued before it */
    CS_HANDSHAKE,   /* TLS handshake */
    CS_CLOSE_FLUSH, /* conn_close: writing what is queued */
    CS_CLOSE_TLS,   /* conn_close: sending close_notify */
    CS_LINGER,      /* write side shut; discarding input until the peer closes */
    CS_DEAD,        /* failed; waiting for the owner to free */
};

#define CF_FREED       0x0001 /* conn_free called: destroy when depth is 0 */
#define CF_CLOSING     0x0002 /* conn_close called: no owner, no callbacks */
#define CF_EOF         0x0004 /* the peer finished sending */
#define CF_PAUSED      0x0008 /* the owner paused reading */
#define CF_FULL        0x0010 /* output went past write_high: DRAINED is due */
#define CF_SSL_BROKEN  0x0020 /* fatal SSL error: no SSL_shutdown */
#define CF_WR_BLOCKED  0x0040 /* output waits for the socket to be writable */
#define CF_WR_WANTS_RD 0x0080 /* SSL_write waits for the socket to be readable */
#define CF_RD_WANTS_WR 0x0100 /* SSL_read waits for the socket to be writable */
#define CF_SSL_RD      0x0200 /* handshake/shutdown waits for readable */
#define CF_SSL_WR      0x0400 /* handshake/shutdown waits for writable */
#define CF_TLS_WANTED  0x0800 /* conn_starttls while connecting: TLS once connected */
#define CF_RD_ON       0x1000 /* ev_read is pending */
#define CF_WR_ON       0x2000 /* ev_write is pending */

#define LATER_FLUSH 0x01 /* write what is queued */
#define LATER_READ  0x02 /* read again: SSL may hold data, or reading resumed */
#define LATER_FAIL  0x04 /* report pending_err (found inside an owner's call) */

struct conn {
    struct event_base *base;
    int fd;
    enum conn_state state;
    unsigned flags;
    unsigned later;
    int depth; /* nesting of owner callbacks running for this conn */

    struct conn_cbs cbs;
    struct conn_timeouts to;
    struct conn_limits lim;
    struct conn_stats stats;
    double tls_started; /* s2s_now() when the handshake began: s2s_stats.tls_handshake */

    struct evbuffer *in, *out;
    struct evbuffer_cb_entry *in_cb, *out_cb;
    size_t plain_left; /* STARTTLS: queued bytes that still go out in plaintext */

    struct event *ev_read, *ev_write, *ev_later, *ev_timer, *ev_idle;

    SSL *ssl;
    struct tls_info info;
    bool info_ok;

    const char *pending_err;
    char errbuf[256];
    char peer[SOCKADDR_STRLEN];
};

static atomic_size_t conn_alive;

static const struct conn_timeouts conn_default_timeouts = {
    .connect_ms = 10000,
    .tls_ms = 10000,
    .idle_ms = 0,
    .close_ms = 5000,
};

static const struct conn_limits conn_default_limits = {
    .read_high = 256 * 1024,
    .write_high = 1024 * 1024,
    .write_low = 64 * 1024,
};

static void conn_read_ready(struct conn *c);
static void conn_flush(struct conn *c);
static void conn_handshake(struct conn *c);
static void conn_close_tls(struct conn *c);
static void conn_destroy(struct conn *c);

static const char *
conn_strstate(enum conn_state s)
{
    switch (s) {
    case CS_CONNECTING:
        return "connecting";
    case CS_OPEN:
        return "open";
    case CS_TLS_FLUSH:
        return "tls-flush";
    case CS_HANDSHAKE:
        return "handshake";
    case CS_CLOSE_FLUSH:
        return "close-flush";
    case CS_CLOSE_TLS:
        return "close-tls";
    case CS_LINGER:
        return "linger";
    case CS_DEAD:
        return "dead";
    }
    return "?";
}

const char *
conn_event_name(enum conn_event ev)
{
    switch (ev) {
    case CONN_EV_CONNECTED:
        return "connected";
    case CONN_EV_TLS_UP:
        return "tls-up";
    case CONN_EV_EOF:
        return "eof";
    case CONN_EV_ERROR:
        return "error";
    case CONN_EV_TIMEOUT_CONN:
        return "connect-timeout";
    case CONN_EV_TIMEOUT_TLS:
        return "tls-timeout";
    case CONN_EV_TIMEOUT_IDLE:
        return "idle-timeout";
    case CONN_EV_DRAINED:
        return "drained";
    }
    return "?";
}

static void
conn_set_state(struct conn *c, enum conn_state s)
{
    log_debug("conn: peer=%s %s -> %s", c->peer, conn_strstate(c->state), conn_strstate(s));
    c->state = s;
}

static void
conn_timer_add(struct event *ev, unsigned ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    if (ms == 0)
        event_del(ev);
    else
        event_add(ev, &tv);
}

/* Makes ev pending or not, tracking it in flag so unchanged state costs nothing. */
static void
conn_event_want(struct conn *c, struct event *ev, unsigned flag, bool want)
{
    if (want && !(c->flags & flag)) {
        event_add(ev, NULL);
        c->flags |= flag;
    } else if (!want && (c->flags & flag)) {
        event_del(ev);
        c->flags &= ~flag;
    }
}

static bool
conn_read_wanted(const struct conn *c)
{
    return !(c->flags & (CF_EOF | CF_PAUSED)) && evbuffer_get_length(c->in) < c->lim.read_high;
}

/* Waits on the socket for exactly what the current state needs. */
static void
conn_update(struct conn *c)
{
    bool rd = false, wr = false;

    switch (c->state) {
    case CS_CONNECTING:
        wr = true;
        break;
    case CS_OPEN:
        rd = conn_read_wanted(c) || (c->flags & CF_WR_WANTS_RD);
        wr = c->flags & (CF_WR_BLOCKED | CF_RD_WANTS_WR);
        break;
    case CS_TLS_FLUSH:
    case CS_CLOSE_FLUSH:
        rd = c->flags & CF_WR_WANTS_RD;
        wr = c->flags & CF_WR_BLOCKED;
        break;
    case CS_HANDSHAKE:
    case CS_CLOSE_TLS:
        rd = c->flags & CF_SSL_RD;
        wr = c->flags & CF_SSL_WR;
        break;
    case CS_LINGER:
        rd = true;
        break;
    case CS_DEAD:
        break;
    }
    if (c->flags & CF_FREED)
        rd = wr = false;
    conn_event_want(c, c->ev_read, CF_RD_ON, rd);
    conn_event_want(c, c->ev_write, CF_WR_ON, wr);
}

static void
conn_later(struct conn *c, unsigned what)
{
    if (c->flags & CF_FREED)
        return;
    if (c->later == 0)
        event_active(c->ev_later, EV_TIMEOUT, 1);
    c->later |= what;
}

/*
 * Every libevent handler holds c while it runs, so whatever the owner or the close
 * machinery does meanwhile, c is released only when the handler is done.
 */
static void
conn_hold(struct conn *c)
{
    c->depth++;
}

static void
conn_unhold(struct conn *c)
{
    if (--c->depth == 0 && (c->flags & CF_FREED))
        conn_destroy(c);
}

/* After an owner callback: false if the handler must stop (freed or closing). */
static bool
conn_after_cb(struct conn *c)
{
    return !(c->flags & (CF_FREED | CF_CLOSING));
}

static bool
conn_notify(struct conn *c, enum conn_event ev, const char *reason)
{
    if (c->flags & (CF_CLOSING | CF_FREED) || c->cbs.event == NULL)
        return !(c->flags & (CF_CLOSING | CF_FREED));
    c->depth++;
    c->cbs.event(c, ev, reason ? reason : "", c->cbs.arg);
    c->depth--;
    return conn_after_cb(c);
}

static bool
conn_deliver(struct conn *c)
{
    if (c->flags & (CF_CLOSING | CF_FREED))
        return false;
    if (c->cbs.read == NULL) {
        evbuffer_drain(c->in, evbuffer_get_length(c->in));
        return true;
    }
    c->depth++;
    c->cbs.read(c, c->cbs.arg);
    c->depth--;
    return conn_after_cb(c);
}

/*
 * The stream is over: no more I/O. A closing conn has no owner to tell, so it goes now;
 * otherwise the owner hears why and frees it.
 */
static void
conn_fail(struct conn *c, enum conn_event ev, const char *reason)
{
    log_debug("conn: peer=%s state=%s %s: %s", c->peer, conn_strstate(c->state),
              conn_event_name(ev), reason);
    conn_set_state(c, CS_DEAD);
    event_del(c->ev_timer);
    event_del(c->ev_idle);
    conn_update(c);
    if (c->flags & CF_CLOSING) {
        conn_free(c);
        return;
    }
    conn_notify(c, ev, reason);
}

/* Why an SSL call failed, in words, for the owner and the log. */
static const char *
conn_ssl_reason(struct conn *c, int err, const char *what)
{
    char ebuf[200];

    if (err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
        snprintf(c->errbuf, sizeof(c->errbuf), "%s: %s", what,
                 errno ? strerror(errno) : "connection closed by peer");
        return c->errbuf;
    }
    snprintf(c->errbuf, sizeof(c->errbuf), "%s: %s", what,
             tls_error_string(ebuf, sizeof(ebuf), "TLS error"));
    return c->errbuf;
}

static void
conn_idle_arm(struct conn *c)
{
    if (c->to.idle_ms && c->state == CS_OPEN)
        conn_timer_add(c->ev_idle, c->to.idle_ms);
}

/* --- reading --- */

/*
 * Reads land in a per-thread scratch buffer, then only what arrived is appended to the
 * input. Reading straight into evbuffer_reserve_space'd room was tried: it leaves an
 * empty 16-64 KiB chain on every idle conn after a read that found nothing (measured
 * ~30 KiB of heap per idle TLS conn against ~10 KiB this way); the copy costs less than
 * the syscall.
 */
static _Thread_local unsigned char conn_scratch[CONN_PLAIN_READ];

static int
conn_input_add(struct conn *c, const void *data, size_t n)
{
    if (evbuffer_add(c->in, data, n) == -1) {
        snprintf(c->errbuf, sizeof(c->errbuf), "read: out of memory");
        return -1;
    }
    c->stats.reads++;
    c->stats.bytes_in += n;
    return 0;
}

/* One read() into the input; 1 data, 0 nothing now, -1 error, -2 EOF. */
static int
conn_read_plain(struct conn *c)
{
    ssize_t n;

    n = read(c->fd, conn_scratch, sizeof(conn_scratch));
    if (n > 0)
        return conn_input_add(c, conn_scratch, (size_t)n) == -1 ? -1 : 1;
    if (n == 0)
        return -2;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return 0;
    snprintf(c->errbuf, sizeof(c->errbuf), "read: %s", strerror(errno));
    return -1;
}

/*
 * Nothing to read, nothing to write: give back OpenSSL's ~17 KiB record buffers.
 * SSL_MODE_RELEASE_BUFFERS alone left one allocated on a TLS 1.3 client after the
 * session tickets (measured: idle conns held ~30 KiB instead of ~14). SSL_free_buffers
 * does nothing if a buffer still holds data.
 */
static void
conn_tls_quiet(struct conn *c)
{
    if (evbuffer_get_length(c->out) == 0 && !(c->flags & CF_WR_WANTS_RD))
        (void)SSL_free_buffers(c->ssl);
}

/*
 * SSL_read until OpenSSL needs the socket again, the input reaches read_high, or the
 * per-wakeup budget is spent. Stopping early with records left inside SSL or the kernel
 * is safe: the socket stays readable (level-triggered) and resuming reads schedules a
 * pass of its own (libevent issue #854 is exactly this case getting lost).
 * 1 data, 0 nothing now, -1 error, -2 EOF (close_notify), -3 EOF without close_notify.
 */
static int
conn_read_tls(struct conn *c)
{
    size_t total = 0;
    int r, err;

    c->flags &= ~CF_RD_WANTS_WR;
    for (;;) {
        if (!conn_read_wanted(c))
            return total > 0;
        if (total >= CONN_READ_BUDGET) {
            conn_later(c, LATER_READ);
            return 1;
        }
        ERR_clear_error();
        errno = 0;
        r = SSL_read(c->ssl, conn_scratch, CONN_TLS_READ);
        if (r > 0) {
            if (conn_input_add(c, conn_scratch, (size_t)r) == -1)
                return -1;
            total += (size_t)r;
            continue;
        }
        switch ((err = SSL_get_error(c->ssl, r))) {
        case SSL_ERROR_WANT_READ:
            /* A pass that read a full record or more is a bulk stream: keep buffers. */
            if (total < CONN_TLS_READ)
                conn_tls_quiet(c);
            return total > 0;
        case SSL_ERROR_WANT_WRITE:
            c->flags |= CF_RD_WANTS_WR;
            return total > 0;
        case SSL_ERROR_ZERO_RETURN:
            return -2;
        case SSL_ERROR_SSL:
            /* OpenSSL 3 reports a TCP FIN without close_notify this way. */
            if (ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
                ERR_clear_error();
                c->flags |= CF_SSL_BROKEN;
                return -3;
            }
            break;
        case SSL_ERROR_SYSCALL:
            if (ERR_peek_error() == 0 && errno == 0) {
                c->flags |= CF_SSL_BROKEN;
                return -3;
            }
            break;
        default:
            break;
        }
        c->flags |= CF_SSL_BROKEN;
        conn_ssl_reason(c, err, "TLS read");
        return -1;
    }
}

/*
 * The socket is readable (or SSL may hold data): read, hand everything read to the
 * owner, and only then report EOF or an error, so a final record is never lost.
 */
static void
conn_read_ready(struct conn *c)
{
    size_t before;
    int r;

    if (c->state != CS_OPEN || !conn_read_wanted(c))
        return;
    before = evbuffer_get_length(c->in);
    r = c->ssl ? conn_read_tls(c) : conn_read_plain(c);
    if (evbuffer_get_length(c->in) > before) {
        conn_idle_arm(c);
        if (!conn_deliver(c))
            return;
    }
    if (r == -1) {
        conn_fail(c, CONN_EV_ERROR, c->errbuf);
        return;
    }
    if (r <= -2) {
        c->flags |= CF_EOF;
        conn_update(c);
        conn_notify(c, CONN_EV_EOF,
                    r == -3 ? "closed without TLS close_notify"
                            : (c->ssl ? "TLS close_notify" : "closed by peer"));
        return;
    }
    conn_update(c);
}

/* Input callback: the owner drained below read_high, so reading resumes. */
static void
conn_input_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct conn *c = arg;

    if (info->n_deleted == 0 || c->state != CS_OPEN)
        return;
    if (info->orig_size >= c->lim.read_high && conn_read_wanted(c)) {
        conn_update(c);
        conn_later(c, LATER_READ);
    }
}

/* --- writing --- */

/* 0 written or blocked, -1 error. */
static int
conn_write_plain(struct conn *c, size_t max)
{
    size_t len = evbuffer_get_length(c->out);
    int n;

    if (max < len)
        len = max;
    if (len == 0)
        return 0;
    n = evbuffer_write_atmost(c->out, c->fd, (ev_ssize_t)len);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            c->flags |= CF_WR_BLOCKED;
            return 0;
        }
        snprintf(c->errbuf, sizeof(c->errbuf), "write: %s", strerror(errno));
        return -1;
    }
    c->stats.writes++;
    c->stats.bytes_out += (uint64_t)n;
    if (c->state == CS_TLS_FLUSH)
        c->plain_left -= (size_t)n;
    /* A short write means the socket buffer is full: wait instead of trying again. */
    if ((size_t)n < len)
        c->flags |= CF_WR_BLOCKED;
    return 0;
}

/*
 * One SSL_write per full record (SSL_MODE_ENABLE_PARTIAL_WRITE). A blocked write is
 * retried with the same leading bytes and at least the same length, which holds because
 * the output only grows at its tail (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER covers the
 * pointer moving).
 */
static int
conn_write_tls(struct conn *c)
{
    size_t len, total = 0;
    unsigned char *p;
    int r, err;

    while ((len = evbuffer_get_length(c->out)) > 0) {
        if (total >= CONN_WRITE_BUDGET) {
            conn_later(c, LATER_FLUSH);
            return 0;
        }
        if (len > CONN_TLS_RECORD)
            len = CONN_TLS_RECORD;
        if ((p = evbuffer_pullup(c->out, (ev_ssize_t)len)) == NULL) {
            snprintf(c->errbuf, sizeof(c->errbuf), "write: out of memory");
            return -1;
        }
        ERR_clear_error();
        errno = 0;
        r = SSL_write(c->ssl, p, (int)len);
        if (r > 0) {
            evbuffer_drain(c->out, (size_t)r);
            total += (size_t)r;
            c->stats.ssl_writes++;
            c->stats.bytes_out += (uint64_t)r;
            continue;
        }
        switch ((err = SSL_get_error(c->ssl, r))) {
        case SSL_ERROR_WANT_WRITE:
            c->flags |= CF_WR_BLOCKED;
            return 0;
        case SSL_ERROR_WANT_READ:
            c->flags |= CF_WR_WANTS_RD;
            return 0;
        default:
            c->flags |= CF_SSL_BROKEN;
            conn_ssl_reason(c, err, "TLS write");
            return -1;
        }
    }
    return 0;
}

static void
conn_handshake_start(struct conn *c)
{
    if (SSL_set_fd(c->ssl, c->fd) != 1) {
        c->flags |= CF_SSL_BROKEN;
        conn_fail(c, CONN_EV_ERROR, conn_ssl_reason(c, SSL_ERROR_SSL, "TLS setup"));
        return;
    }
    conn_set_state(c, CS_HANDSHAKE);
    conn_handshake(c);
}

/* Writes what may go out in the current state, then moves the state on. */
static void
conn_flush(struct conn *c)
{
    int r = 0;

    c->flags &= ~(CF_WR_BLOCKED | CF_WR_WANTS_RD);
    switch (c->state) {
    case CS_OPEN:
    case CS_CLOSE_FLUSH:
        r = c->ssl ? conn_write_tls(c) : conn_write_plain(c, SIZE_MAX);
        break;
    case CS_TLS_FLUSH:
        r = conn_write_plain(c, c->plain_left);
        break;
    default:
        return;
    }
    if (r == -1) {
        conn_fail(c, CONN_EV_ERROR, c->errbuf);
        return;
    }
    if (c->state == CS_TLS_FLUSH && c->plain_left == 0) {
        conn_handshake_start(c);
        return;
    }
    if (c->state == CS_CLOSE_FLUSH && evbuffer_get_length(c->out) == 0) {
        conn_close_tls(c);
        return;
    }
    conn_update(c);
    if ((c->flags & CF_FULL) && evbuffer_get_length(c->out) <= c->lim.write_low) {
        c->flags &= ~CF_FULL;
        conn_notify(c, CONN_EV_DRAINED, "output drained");
    }
}

/* Output callback: anything appended leaves at the end of this loop iteration. */
static void
conn_output_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct conn *c = arg;

    if (info->n_added == 0)
        return;
    if (info->orig_size + info->n_added > c->lim.write_high)
        c->flags |= CF_FULL;
    if (!(c->flags & CF_WR_BLOCKED))
        conn_later(c, LATER_FLUSH);
}

/* --- TLS --- */

static void
conn_handshake(struct conn *c)
{
    int r, err;

    c->flags &= ~(CF_SSL_RD | CF_SSL_WR);
    ERR_clear_error();
    errno = 0;
    if ((r = SSL_do_handshake(c->ssl)) != 1) {
        switch ((err = SSL_get_error(c->ssl, r))) {
        case SSL_ERROR_WANT_READ:
            c->flags |= CF_SSL_RD;
            conn_update(c);
            return;
        case SSL_ERROR_WANT_WRITE:
            c->flags |= CF_SSL_WR;
            conn_update(c);
            return;
        default:
            c->flags |= CF_SSL_BROKEN;
            conn_fail(c, CONN_EV_ERROR, conn_ssl_reason(c, err, "TLS handshake"));
            return;
        }
    }
    event_del(c->ev_timer);
    tls_info_collect(c->ssl, &c->info);
    c->info_ok = true;
    log_debug("conn: peer=%s tls=%s cipher=%s cert=%s verify=\"%s\"", c->peer, c->info.version,
              c->info.cipher, c->info.peer_cert ? "yes" : "no", c->info.verify_text);
    conn_set_state(c, CS_OPEN);
    s2s_hist_observe(&s2s_stats.tls_handshake, s2s_now() - c->tls_started);
    conn_idle_arm(c);
    conn_update(c);
    /* Output queued during the handshake, and records that came with its last flight. */
    conn_later(c, LATER_FLUSH | LATER_READ);
    conn_notify(c, CONN_EV_TLS_UP, c->info.version);
}

int
conn_starttls(struct conn *c, struct tls_ctx *ctx, enum tls_role role, const char *sni,
              const char *local_domain, const char *alpn, char *err, size_t errlen)
{
    if (c->ssl != NULL || (c->flags & (CF_CLOSING | CF_FREED | CF_TLS_WANTED)) ||
        (c->state != CS_OPEN && c->state != CS_CONNECTING)) {
        snprintf(err, errlen, "cannot start TLS in state %s%s", conn_strstate(c->state),
                 c->ssl ? " (already TLS)" : "");
        return -1;
    }
    if ((c->ssl = tls_ssl_new(ctx, role, sni, local_domain, alpn, err, errlen)) == NULL)
        return -1;
    /* RFC 6120 §5.4.3.3: what was queued before (<proceed/>) goes out in the clear. */
    c->plain_left = evbuffer_get_length(c->out);
    if (c->state == CS_CONNECTING) {
        c->flags |= CF_TLS_WANTED;
        return 0;
    }
    conn_set_state(c, CS_TLS_FLUSH);
    c->tls_started = s2s_now();
    event_del(c->ev_idle);
    conn_timer_add(c->ev_timer, c->to.tls_ms);
    conn_update(c);
    conn_later(c, LATER_FLUSH);
    return 0;
}

/* --- closing --- */

static void
conn_linger(struct conn *c)
{
    char buf[CONN_LINGER_READ];
    ssize_t n;

    /* Keep reading so unread input does not make close() send a RST, which could
     * destroy what we sent before the peer read it. */
    n = read(c->fd, buf, sizeof(buf));
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)))
        return;
    conn_free(c);
}

static void
conn_close_tcp(struct conn *c)
{
    shutdown(c->fd, SHUT_WR);
    if (c->flags & CF_EOF) {
        conn_free(c);
        return;
    }
    conn_set_state(c, CS_LINGER);
    conn_update(c);
}

/* RFC 8446 §6.1: close_notify before closing the write side. */
static void
conn_close_tls(struct conn *c)
{
    int r;

    if (c->ssl == NULL || (c->flags & CF_SSL_BROKEN)) {
        conn_close_tcp(c);
        return;
    }
    conn_set_state(c, CS_CLOSE_TLS);
    c->flags &= ~(CF_SSL_RD | CF_SSL_WR);
    ERR_clear_error();
    if ((r = SSL_shutdown(c->ssl)) < 0 && SSL_get_error(c->ssl, r) == SSL_ERROR_WANT_WRITE) {
        c->flags |= CF_SSL_WR;
        conn_update(c);
        return;
    }
    ERR_clear_error();
    conn_close_tcp(c);
}

void
conn_close(struct conn *c)
{
    if (c->flags & (CF_CLOSING | CF_FREED))
        return;
    if (c->state != CS_OPEN) {
        /* Nothing graceful to do while connecting, mid-handshake or dead. */
        conn_free(c);
        return;
    }
    c->flags |= CF_CLOSING;
    memset(&c->cbs, 0, sizeof(c->cbs));
    conn_set_state(c, CS_CLOSE_FLUSH);
    event_del(c->ev_idle);
    conn_timer_add(c->ev_timer, c->to.close_ms ? c->to.close_ms : 1);
    conn_update(c);
    conn_later(c, LATER_FLUSH);
}

void
conn_free(struct conn *c)
{
    if (c == NULL || (c->flags & CF_FREED))
        return;
    c->flags |= CF_FREED;
    memset(&c->cbs, 0, sizeof(c->cbs));
    if (c->depth == 0) {
        conn_destroy(c);
        return;
    }
    /* Inside one of c's callbacks: stop all I/O now, release on the way out. */
    event_del(c->ev_timer);
    event_del(c->ev_idle);
    event_del(c->ev_later);
    conn_update(c);
}

static void
conn_destroy(struct conn *c)
{
    log_debug("conn: peer=%s freed state=%s in=%llu out=%llu", c->peer, conn_strstate(c->state),
              (unsigned long long)c->stats.bytes_in, (unsigned long long)c->stats.bytes_out);
    event_free(c->ev_read);
    event_free(c->ev_write);
    event_free(c->ev_later);
    event_free(c->ev_timer);
    event_free(c->ev_idle);
    evbuffer_remove_cb_entry(c->in, c->in_cb);
    evbuffer_remove_cb_entry(c->out, c->out_cb);
    evbuffer_free(c->in);
    evbuffer_free(c->out);
    if (c->info_ok)
        tls_info_clear(&c->info);
    SSL_free(c->ssl);
    if (c->fd != -1)
        close(c->fd);
    free(c);
    atomic_fetch_sub(&conn_alive, 1);
}

/* --- events --- */

static void
conn_connected(struct conn *c)
{
    int soerr = 0;
    socklen_t len = sizeof(soerr);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == -1)
        soerr = errno;
    if (soerr != 0) {
        snprintf(c->errbuf, sizeof(c->errbuf), "connect: %s", strerror(soerr));
        conn_fail(c, CONN_EV_ERROR, c->errbuf);
        return;
    }
    event_del(c->ev_timer);
    conn_set_state(c, CS_OPEN);
    conn_update(c);
    if (c->flags & CF_TLS_WANTED) {
        /* Direct TLS (XEP-0368): the handshake starts once the owner heard of the
         * connect; plaintext queued before conn_starttls goes first, as for STARTTLS. */
        conn_set_state(c, CS_TLS_FLUSH);
        c->tls_started = s2s_now();
        conn_timer_add(c->ev_timer, c->to.tls_ms);
        conn_update(c);
        conn_later(c, LATER_FLUSH);
    } else {
        conn_idle_arm(c);
        conn_later(c, LATER_FLUSH);
    }
    conn_notify(c, CONN_EV_CONNECTED, c->peer);
}

/*
 * The handlers below run from the loop. Each holds c (conn_hold) so that a conn_free by
 * the owner inside a callback, or the close machinery finishing, only marks c: it is
 * destroyed when the handler lets go. After anything that may call the owner, a handler
 * checks the state again before going on.
 */
static void
conn_on_read(struct conn *c)
{
    switch (c->state) {
    case CS_HANDSHAKE:
        conn_handshake(c);
        break;
    case CS_CLOSE_TLS:
        conn_close_tls(c);
        break;
    case CS_LINGER:
        conn_linger(c);
        break;
    case CS_OPEN:
        if (c->flags & CF_WR_WANTS_RD)
            conn_flush(c);
        if (!(c->flags & CF_FREED))
            conn_read_ready(c);
        break;
    case CS_TLS_FLUSH:
    case CS_CLOSE_FLUSH:
        conn_flush(c);
        break;
    default:
        break;
    }
}

static void
conn_on_write(struct conn *c)
{
    switch (c->state) {
    case CS_CONNECTING:
        conn_connected(c);
        break;
    case CS_HANDSHAKE:
        conn_handshake(c);
        break;
    case CS_CLOSE_TLS:
        conn_close_tls(c);
        break;
    case CS_OPEN:
        if (c->flags & CF_RD_WANTS_WR) {
            c->flags &= ~CF_RD_WANTS_WR;
            conn_later(c, LATER_READ);
        }
        conn_flush(c);
        break;
    case CS_TLS_FLUSH:
    case CS_CLOSE_FLUSH:
        conn_flush(c);
        break;
    default:
        break;
    }
}

static void
conn_on_later(struct conn *c)
{
    unsigned later = c->later;

    c->later = 0;
    if (later & LATER_FAIL) {
        conn_fail(c, CONN_EV_ERROR, c->pending_err);
        return;
    }
    if (later & LATER_READ)
        conn_read_ready(c);
    if ((later & LATER_FLUSH) && !(c->flags & CF_FREED))
        conn_flush(c);
}

static void
conn_on_timer(struct conn *c)
{
    char buf[64];

    switch (c->state) {
    case CS_CONNECTING:
        snprintf(buf, sizeof(buf), "connect timed out after %u ms", c->to.connect_ms);
        conn_fail(c, CONN_EV_TIMEOUT_CONN, buf);
        break;
    case CS_TLS_FLUSH:
    case CS_HANDSHAKE:
        snprintf(buf, sizeof(buf), "TLS handshake timed out after %u ms", c->to.tls_ms);
        conn_fail(c, CONN_EV_TIMEOUT_TLS, buf);
        break;
    case CS_CLOSE_FLUSH:
    case CS_CLOSE_TLS:
    case CS_LINGER:
        log_debug("conn: peer=%s close timed out in state %s", c->peer, conn_strstate(c->state));
        conn_free(c);
        break;
    default:
        break;
    }
}

static void
conn_on_idle(struct conn *c)
{
    char buf[64];

    if (c->state != CS_OPEN)
        return;
    conn_idle_arm(c);
    snprintf(buf, sizeof(buf), "nothing read for %u ms", c->to.idle_ms);
    conn_notify(c, CONN_EV_TIMEOUT_IDLE, buf);
}

#define CONN_HANDLER(name, fn)                                                                     \
    static void name(evutil_socket_t fd, short what, void *arg)                                    \
    {                                                                                              \
        struct conn *c = arg;                                                                      \
                                                                                                   \
        conn_hold(c);                                                                              \
        fn(c);                                                                                     \
        conn_unhold(c);                                                                            \
    }
CONN_HANDLER(conn_read_cb, conn_on_read)
CONN_HANDLER(conn_write_cb, conn_on_write)
CONN_HANDLER(conn_later_cb, conn_on_later)
CONN_HANDLER(conn_timer_cb, conn_on_timer)
CONN_HANDLER(conn_idle_cb, conn_on_idle)

/* --- construction --- */

static void
conn_nodelay(int fd)
{
    int one = 1;

    /* Nagle + delayed ACKs add ~40 ms stalls to every s2s handshake round trip. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static struct conn *
conn_new(struct event_base *base, int fd, enum conn_state state, const struct conn_cbs *cbs)
{
    struct conn *c;

    if ((c = calloc(1, sizeof(*c))) == NULL)
        fatalx("%s: out of memory", __func__);
    c->base = base;
    c->fd = fd;
    c->state = state;
    if (cbs != NULL)
        c->cbs = *cbs;
    c->to = conn_default_timeouts;
    c->lim = conn_default_limits;
    snprintf(c->peer, sizeof(c->peer), "?");
    if ((c->in = evbuffer_new()) == NULL || (c->out = evbuffer_new()) == NULL ||
        (c->in_cb = evbuffer_add_cb(c->in, conn_input_cb, c)) == NULL ||
        (c->out_cb = evbuffer_add_cb(c->out, conn_output_cb, c)) == NULL ||
        (c->ev_read = event_new(base, fd, EV_READ | EV_PERSIST, conn_read_cb, c)) == NULL ||
        (c->ev_write = event_new(base, fd, EV_WRITE | EV_PERSIST, conn_write_cb, c)) == NULL ||
        (c->ev_later = event_new(base, -1, 0, conn_later_cb, c)) == NULL ||
        (c->ev_timer = evtimer_new(base, conn_timer_cb, c)) == NULL ||
        (c->ev_idle = evtimer_new(base, conn_idle_cb, c)) == NULL)
        fatalx("%s: out of memory", __func__);
    atomic_fetch_add(&conn_alive, 1);
    return c;
}

struct conn *
conn_connect(struct event_base *base, const struct sockaddr *sa, socklen_t salen,
             const struct conn_cbs *cbs, char *err, size_t errlen)
{
    struct conn *c;
    int fd;

    fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return NULL;
    }
    conn_nodelay(fd);
    c = conn_new(base, fd, CS_CONNECTING, cbs);
    sockaddr_str(sa, salen, c->peer, sizeof(c->peer));
    if (connect(fd, sa, salen) == -1 && errno != EINPROGRESS) {
        /* Reported from the loop: the owner never sees a callback inside its call. */
        snprintf(c->errbuf, sizeof(c->errbuf), "connect: %s", strerror(errno));
        c->pending_err = c->errbuf;
        conn_later(c, LATER_FAIL);
        return c;
    }
    conn_timer_add(c->ev_timer, c->to.connect_ms);
    conn_update(c);
    return c;
}

struct conn *
conn_new_accepted(struct event_base *base, int fd, const struct conn_cbs *cbs)
{
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    struct conn *c;
    int fl;

    if ((fl = fcntl(fd, F_GETFL)) != -1 && !(fl & O_NONBLOCK))
        (void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    conn_nodelay(fd);
    c = conn_new(base, fd, CS_OPEN, cbs);
    if (getpeername(fd, (struct sockaddr *)&ss, &sslen) == 0)
        sockaddr_str((struct sockaddr *)&ss, sslen, c->peer, sizeof(c->peer));
    conn_idle_arm(c);
    conn_update(c);
    return c;
}

void
conn_set_cbs(struct conn *c, const struct conn_cbs *cbs)
{
    if (!(c->flags & (CF_CLOSING | CF_FREED)))
        c->cbs = *cbs;
}

void
conn_set_timeouts(struct conn *c, const struct conn_timeouts *t)
{
    c->to = *t;
    /* Re-arm the timer of the current phase with the new value. */
    if (c->state == CS_CONNECTING)
        conn_timer_add(c->ev_timer, c->to.connect_ms);
    else if (c->state == CS_TLS_FLUSH || c->state == CS_HANDSHAKE)
        conn_timer_add(c->ev_timer, c->to.tls_ms);
    if (c->state == CS_OPEN) {
        if (c->to.idle_ms)
            conn_idle_arm(c);
        else
            event_del(c->ev_idle);
    }
}

void
conn_set_limits(struct conn *c, const struct conn_limits *l)
{
    c->lim = *l;
    if (c->lim.write_low > c->lim.write_high)
        c->lim.write_low = c->lim.write_high;
    if (c->lim.read_high == 0)
        c->lim.read_high = 1;
    conn_update(c);
}

/* --- owner's accessors --- */

struct evbuffer *
conn_input(struct conn *c)
{
    return c->in;
}

struct evbuffer *
conn_output(struct conn *c)
{
    return c->out;
}

int
conn_write(struct conn *c, const void *data, size_t len)
{
    if (c->flags & (CF_CLOSING | CF_FREED) || c->state == CS_DEAD)
        return -1;
    return evbuffer_add(c->out, data, len);
}

int
conn_printf(struct conn *c, const char *fmt, ...)
{
    va_list ap;
    int r;

    if (c->flags & (CF_CLOSING | CF_FREED) || c->state == CS_DEAD)
        return -1;
    va_start(ap, fmt);
    r = evbuffer_add_vprintf(c->out, fmt, ap);
    va_end(ap);
    return r < 0 ? -1 : 0;
}

bool
conn_output_full(const struct conn *c)
{
    return evbuffer_get_length(c->out) > c->lim.write_high;
}

void
conn_pause_read(struct conn *c)
{
    c->flags |= CF_PAUSED;
    conn_update(c);
}

void
conn_resume_read(struct conn *c)
{
    if (!(c->flags & CF_PAUSED))
        return;
    c->flags &= ~CF_PAUSED;
    conn_update(c);
    /* Records may wait decrypted inside SSL: the socket would not say so. */
    if (c->state == CS_OPEN)
        conn_later(c, LATER_READ);
}

bool
conn_is_tls(const struct conn *c)
{
    return c->ssl != NULL;
}

const struct tls_info *
conn_tls_info(const struct conn *c)
{
    return c->info_ok ? &c->info : NULL;
}

SSL *
conn_ssl(const struct conn *c)
{
    return c->ssl;
}

int
conn_fd(const struct conn *c)
{
    return c->fd;
}

const struct conn_stats *
conn_stats(const struct conn *c)
{
    return &c->stats;
}

const char *
conn_peer(const struct conn *c)
{
    return c->peer;
}

size_t
conn_count(void)
{
    return atomic_load(&conn_alive);
}
