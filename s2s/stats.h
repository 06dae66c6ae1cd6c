/*
 * Process-wide stanza counters (DESIGN.md invariant 1: nothing is lost silently).
 *
 *   inbound:  in_accepted  = stanzas accepted from remote servers (handed to the router)
 *   outbound: out_accepted = stanzas taken from the local server for remote domains
 *             = out_delivered + out_bounced + out_dropped + (still queued)
 * Plain globals: one loop per process, no locking. ctl/metrics read them later.
 */
#ifndef S2S_STATS_H
#define S2S_STATS_H

#include <stdint.h>

#include "s2s/xmpperr.h"

struct s2s_stats {
    uint64_t in_accepted;  /* checked inbound stanzas handed on */
    uint64_t in_rejected;  /* inbound elements refused with a stream error */
    uint64_t out_accepted; /* outbound stanzas entering a route */
    uint64_t out_delivered;
    uint64_t out_bounced;
    uint64_t out_dropped; /* errors that could not be bounced (never bounced twice) */
    uint64_t bounced_by[XMPP_STANZA_ERR_COUNT];
    uint64_t in_streams, out_streams; /* streams opened */
    uint64_t auth_sasl, auth_dialback, auth_failed;
    /* Policy (s2s/policy.h), counted by the router and the pool. Inbound: in_accepted =
     * handed to the local link + in_bounced + in_dropped. Outbound policy bounces and
     * drops are also in out_bounced / out_dropped. */
    uint64_t in_bounced, in_dropped;         /* inbound stanzas a policy rule refused */
    uint64_t policy_bounced, policy_dropped; /* both directions */
    uint64_t policy_refused;                 /* streams or domain pairs refused */
    uint64_t policy_paused;                  /* inbound reads paused by a rate limit */
    uint64_t policy_held;                    /* outbound queues held by a rate limit */
};

extern struct s2s_stats s2s_stats;

#endif
