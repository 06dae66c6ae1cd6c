/*
 * The router: the one place where a stanza's path is chosen (DESIGN.md).
 *
 *   remote --in--> router_inbound  --> local sink of the 'to' domain (the local link)
 *   local  -------> router_outbound --> pool (route local domain -> remote domain)
 *   pool bounce (error for a local sender)          --> local sink
 *   local link bounce (error for a remote sender)   --> router_bounce_to_remote --> pool
 *
 * It also owns the inbound side: the listeners, the inbound sessions they start (with
 * their options from the configuration) and the dialback verifications those sessions
 * ask for (through the pool, XEP-0220 receiving role). The local link plugs in through
 * struct router_sink, one per hosted domain, so that sessions and tests need no
 * component connection.
 */
#ifndef S2S_ROUTER_H
#define S2S_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "s2s/conf.h"
#include "s2s/pool.h"
#include "s2s/stanza.h"
#include "s2s/xmpperr.h"

struct event_base;
struct tls_ctx;
struct router;

/* Where stanzas for a hosted domain go. send takes st and returns 0, or returns -1 and
 * leaves st with the caller (refused: the router bounces it with service-unavailable). */
struct router_sink {
    int (*send)(void *ctx, struct stanza *st);
    void *ctx;
};

/*
 * Binds the listeners of conf->listen (NULL with err set when one cannot be bound) and
 * makes the pool. conf and tls are borrowed until router_reconfigure() replaces them.
 */
struct router *router_new(struct event_base *base, const struct conf *conf, struct tls_ctx *tls,
                          const struct pool_dns *dns, char *err, size_t errlen);
/* After a reload: new sessions and routes use the new configuration and TLS context. */
void router_reconfigure(struct router *r, const struct conf *conf, struct tls_ctx *tls);
/* A sink whose send is NULL removes the domain's sink (its stanzas then bounce). */
void router_set_sink(struct router *r, const char *domain, const struct router_sink *sink);

/* A stanza from the local server for a remote domain (checked by the local link). */
void router_outbound(struct router *r, struct stanza *st);
/* A stanza from a remote server the local side could not deliver: answered with cond. */
void router_bounce_to_remote(struct router *r, struct stanza *st, enum xmpp_stanza_error cond,
                             const char *why);

/*
 * Graceful shutdown: stop accepting, close every inbound stream (<system-shutdown/>),
 * bounce what waits for a route, close outbound streams. done runs (from the loop) once
 * every stream is gone.
 */
void router_shutdown(struct router *r, void (*done)(void *arg), void *arg);
void router_free(struct router *r);

struct pool *router_pool(struct router *r);
size_t router_inbound_sessions(const struct router *r);
/* The address listener i is bound to (tests use port 0). */
int router_listen_addr(const struct router *r, size_t i, struct sockaddr_storage *ss,
                       socklen_t *len);

#endif
