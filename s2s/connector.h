/*
 * From DNS targets to one connected TCP stream: the targets are tried in the order
 * dns/ gives them (SRV priority and weight, direct TLS and STARTTLS interleaved as
 * resolved), and the addresses of one target with Happy Eyeballs (RFC 8305 §5): the
 * first address (IPv6 first, then the families alternate, as dns/ ordered them) is
 * tried, the next one starts after attempt_delay_ms or as soon as one fails, and the
 * first to connect wins; the others are dropped. When every address of a target has
 * failed, the next target is tried.
 *
 * The callback runs once, from the loop: with the connected conn (the caller takes it
 * and must set its callbacks before returning: the call is made from inside that conn's
 * CONNECTED event, so no data or EOF can be missed) and the target it belongs to, or with NULL and
 * why (every target failed: the stanza error is remote-server-timeout, RFC 6120 §8.3.3.16, or
 * remote-server-not-found when there was no address to try at all).
 */
#ifndef S2S_CONNECTOR_H
#define S2S_CONNECTOR_H

#include <stddef.h>

#include "dns/resolver.h"
#include "s2s/xmpperr.h"

struct event_base;
struct conn;
struct connector;

typedef void (*connector_fn)(struct conn *c, const struct dns_target *t,
                             enum xmpp_stanza_error cond, const char *why, void *arg);

/* targets must stay valid until the callback ran or the connector is cancelled. */
struct connector *connector_start(struct event_base *base, const struct dns_targets *targets,
                                  unsigned connect_timeout_ms, unsigned attempt_delay_ms,
                                  connector_fn cb, void *arg);
/* Stops every attempt; the callback will not run. Not from inside the callback. */
void connector_cancel(struct connector *k);

#endif
