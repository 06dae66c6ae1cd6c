/*
 * A TCP stream carrying XMPP, driven by libevent, with TLS done by the connection itself
 * (STARTTLS upgrade of a live stream, or direct TLS per XEP-0368).
 *
 * The owner reads from conn_input() in its read callback and appends to conn_output()
 * (or conn_write) at any time; output queued during one loop iteration leaves in one go
 * (one write(), or one SSL_write per TLS record).
 *
 * Callbacks: the owner may call conn_close() or conn_free() from inside any conn
 * callback; the conn is then released once the callback has returned. No callback is
 * ever run from inside a conn_* call made by the owner.
 *
 * The process must ignore SIGPIPE (writes to a reset socket, by writev or by OpenSSL).
 */
#ifndef S2S_CONN_H
#define S2S_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "s2s/tls.h"

struct conn;

enum conn_event {
    CONN_EV_CONNECTED,    /* outbound TCP connect completed */
    CONN_EV_TLS_UP,       /* TLS handshake done: conn_tls_info() is valid */
    CONN_EV_EOF,          /* the peer closed; all data before it was delivered first */
    CONN_EV_ERROR,        /* I/O, connect or TLS failure; reason says which. Dead. */
    CONN_EV_TIMEOUT_CONN, /* connect timeout. Dead. */
    CONN_EV_TIMEOUT_TLS,  /* TLS handshake timeout. Dead. */
    CONN_EV_TIMEOUT_IDLE, /* nothing read for timeouts.idle_ms; re-armed, still alive */
    CONN_EV_DRAINED,      /* output fell to the low-water mark after conn_output_full() */
};

/*
 * read: new bytes are in conn_input(c); consume (evbuffer_drain/remove) what you can.
 * event: see enum conn_event; reason is a human text (errno string, OpenSSL error, ...),
 * never NULL. After CONN_EV_ERROR and the CONN_EV_TIMEOUT_CONN/TLS events the conn does
 * no more I/O: conn_free() it (conn_close() works too and just frees it).
 */
struct conn_cbs {
    void (*read)(struct conn *c, void *arg);
    void (*event)(struct conn *c, enum conn_event ev, const char *reason, void *arg);
    void *arg;
};

/* Timeouts in milliseconds; 0 disables one. */
struct conn_timeouts {
    unsigned connect_ms; /* default 10000 */
    unsigned tls_ms;     /* handshake, default 10000 */
    unsigned idle_ms;    /* no byte read, default 0 (off) */
    unsigned close_ms;   /* graceful close: flush + close_notify + linger, default 5000 */
};

/* Buffer marks in bytes. */
struct conn_limits {
    size_t read_high;  /* stop reading while conn_input holds more; default 256 KiB */
    size_t write_high; /* conn_output_full() beyond; default 1 MiB */
    size_t write_low;  /* CONN_EV_DRAINED at or below, once full; default 64 KiB */
};

/* Counters, for statistics and tests. */
struct conn_stats {
    uint64_t bytes_in;   /* plaintext delivered to conn_input */
    uint64_t bytes_out;  /* plaintext taken from conn_output */
    uint64_t reads;      /* read()/SSL_read calls that returned data */
    uint64_t writes;     /* write()/writev() calls that sent data (plain) */
    uint64_t ssl_writes; /* SSL_write calls that sent data (= TLS records) */
};

/*
 * Starts a non-blocking connect (TCP_NODELAY set). CONN_EV_CONNECTED, or CONN_EV_ERROR /
 * CONN_EV_TIMEOUT_CONN, follows from the loop. NULL with err set if no socket was made.
 */
struct conn *conn_connect(struct event_base *base, const struct sockaddr *sa, socklen_t salen,
                          const struct conn_cbs *cbs, char *err, size_t errlen);
/* Wraps an accepted socket (made non-blocking, TCP_NODELAY); the conn owns fd. */
struct conn *conn_new_accepted(struct event_base *base, int fd, const struct conn_cbs *cbs);

void conn_set_cbs(struct conn *c, const struct conn_cbs *cbs);
void conn_set_timeouts(struct conn *c, const struct conn_timeouts *t);
void conn_set_limits(struct conn *c, const struct conn_limits *l);

/*
 * Starts TLS. On a live plaintext stream (STARTTLS, RFC 6120 §5.4.3.3): the output
 * already queued (e.g. <proceed/>) is written first, then the handshake runs; from this
 * call on the conn reads no plaintext, so bytes already in conn_input() are exactly what
 * the peer sent before TLS (a well-behaved peer sends none: the owner should treat any
 * as an attack and drop them). Called while connecting, or right after accepting, this
 * is direct TLS (XEP-0368). Client role: sni is the remote domain, local_domain picks our
 * certificate, alpn is offered (TLS_ALPN_XMPP_SERVER for direct TLS). The TLS session
 * keeps what it needs of ctx alive (a reload may unref it). The handshake starts from
 * the loop, never inside this call: conn_ssl() is valid on return, so DANE can be set
 * up on it first. -1 with err set if TLS cannot start (already TLS, closing, dead, or
 * SSL setup failed).
 */
int conn_starttls(struct conn *c, struct tls_ctx *ctx, enum tls_role role, const char *sni,
                  const char *local_domain, const char *alpn, char *err, size_t errlen);

struct evbuffer *conn_input(struct conn *c);
struct evbuffer *conn_output(struct conn *c);
int conn_write(struct conn *c, const void *data, size_t len);
int conn_printf(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* True when conn_output holds more than write_high: stop producing until DRAINED. */
bool conn_output_full(const struct conn *c);

/* Owner-side flow control (e.g. while the route this stream feeds is full). */
void conn_pause_read(struct conn *c);
void conn_resume_read(struct conn *c);

/*
 * Graceful close: writes what is queued, sends close_notify when TLS, shuts the write
 * side, reads and discards until the peer closes, then frees; all bounded by close_ms.
 * The owner gets no more callbacks and must forget c.
 */
void conn_close(struct conn *c);
/* Immediate teardown (deferred while c is inside one of its callbacks). */
void conn_free(struct conn *c);

bool conn_is_tls(const struct conn *c);
/* Valid after CONN_EV_TLS_UP, NULL before. */
const struct tls_info *conn_tls_info(const struct conn *c);
/* The TLS session (for DANE, exporters): NULL without TLS. */
SSL *conn_ssl(const struct conn *c);
int conn_fd(const struct conn *c);
const struct conn_stats *conn_stats(const struct conn *c);
/* "ip:port" of the peer (or "?" when unknown). */
const char *conn_peer(const struct conn *c);
const char *conn_event_name(enum conn_event ev);
/* Conns alive in this process, including closing ones (for tests and stats). */
size_t conn_count(void);

#endif
