/*
 * Scripted XMPP peers for session tests: a real loopback TCP connection driven by
 * s2s/conn inside the test's event_base, which records every byte it receives, and
 * loop helpers that wait for a condition under a guard timer (no sleeps).
 */
#ifndef S2S_TEST_XPEER_H
#define S2S_TEST_XPEER_H

#include <stdbool.h>
#include <stddef.h>

#include <sys/socket.h>

#include "s2s/conn.h"

struct event_base;
struct evbuffer;
struct tls_ctx;

struct xpeer {
    struct conn *c;
    struct evbuffer *got; /* everything received, in order */
    unsigned connected, tls_up, eof, error;
    char reason[256];
};

/* Runs base until cond() holds or secs pass; returns whether it holds. */
bool xp_run_until(struct event_base *base, bool (*cond)(void *), void *arg, unsigned secs);
/* Runs base for ms milliseconds. */
void xp_run_for(struct event_base *base, unsigned ms);

/* A listening socket on 127.0.0.1, port chosen by the kernel (filled into ss). */
int xp_listen(struct sockaddr_storage *ss, socklen_t *sslen);

/* Connects p to ss and returns the accepted server-side fd (non-blocking). */
int xp_connect(struct event_base *base, struct xpeer *p, int lfd, const struct sockaddr_storage *ss,
               socklen_t sslen);
/* Client-side TLS on p (STARTTLS upgrade or direct); waits for the handshake when wait. */
int xp_starttls(struct event_base *base, struct xpeer *p, struct tls_ctx *ctx, const char *sni,
                const char *local, bool wait);
/* Server side: p wraps an accepted fd. */
void xp_accept(struct event_base *base, struct xpeer *p, int fd);
/* Server-side TLS on p (after <proceed/>); returns at once. */
int xp_starttls_server(struct xpeer *p, struct tls_ctx *ctx);
void xp_send(struct xpeer *p, const char *text);
/* Waits until the received bytes contain s (from the start of got); true if found. */
bool xp_wait(struct event_base *base, struct xpeer *p, const char *s);
bool xp_has(struct xpeer *p, const char *s);
/* Waits for EOF or an error on p. */
bool xp_wait_closed(struct event_base *base, struct xpeer *p);
/* Forgets what was received so far. */
void xp_clear(struct xpeer *p);
void xp_done(struct xpeer *p);

#endif
