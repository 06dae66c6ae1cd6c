/*
 * Listening sockets for inbound s2s streams: STARTTLS (5269) and direct TLS (XEP-0368,
 * 5270) on the configured IPv4/IPv6 addresses, with a bound on streams per remote IP
 * address (DESIGN invariant 3). An IPv6 listener is IPv6-only, so "0.0.0.0:5269" and
 * "[::]:5269" can both be bound.
 */
#ifndef S2S_LISTEN_H
#define S2S_LISTEN_H

#include <stdbool.h>
#include <stddef.h>

#include <sys/socket.h>

#include "s2s/conf.h"

struct event_base;
struct conn;
struct listen;
struct listen_slot;

/*
 * A new inbound connection: c is the accepted conn (no callbacks yet), direct_tls says
 * which kind of listener took it, slot counts it against its address until
 * listen_slot_release() (call it when the stream is gone).
 */
typedef void (*listen_accept_fn)(struct conn *c, bool direct_tls, struct listen_slot *slot,
                                 void *arg);

/* Binds every address of li; NULL with err set when one cannot be bound. */
struct listen *listen_new(struct event_base *base, const struct conf_listen *li, unsigned per_ip,
                          listen_accept_fn cb, void *arg, char *err, size_t errlen);
/* Stops accepting (shutdown); live streams keep their slots. */
void listen_stop(struct listen *l);
void listen_free(struct listen *l);
void listen_set_per_ip(struct listen *l, unsigned per_ip);
void listen_slot_release(struct listen *l, struct listen_slot *slot);
/* The bound address of listener i (STARTTLS first, then direct TLS), for tests. */
int listen_addr(const struct listen *l, size_t i, struct sockaddr_storage *ss, socklen_t *len);
/* Streams now counted for the address of sa. */
unsigned listen_count_for(const struct listen *l, const struct sockaddr *sa);

#endif
