/*
 * Dialback state of one XML stream (XEP-0220): the domain pairs negotiated on it and the
 * verification requests sent on it, as a plain data structure. The session owns one
 * table per stream and drives it; this file sends nothing and knows no timers.
 *
 * A domain pair is (local, remote): local is always our domain, remote the peer's.
 *   inbound stream (we receive):   <db:result from=remote to=local>  request, we answer
 *   outbound stream (we initiate): <db:result from=local to=remote>  we ask, peer answers
 * Pair states: none -> pending -> valid | invalid | error; error -> pending again (a
 * dialback error is per pair and non-fatal, XEP-0220 §2.4). invalid is final and condemns
 * the whole stream: the receiving server MUST close it (XEP-0220 §2.2.1), and the
 * initiating server SHOULD NOT send more on it (§2.1.1); from then on no pair is valid.
 *
 * Verification requests (<db:verify/> we sent as receiving server to an authoritative
 * server, XEP-0220 §2.1.2) are kept as (local, remote, id) until answered: an answer
 * with no matching request is unsolicited and must be dropped (§2.1.2, §7.1).
 *
 * Domains compare ASCII case-insensitively with one trailing dot ignored (RFC 7622 §3.2);
 * callers normalize U-labels first (s2s/certname.h). Lookups are linear: a stream carries
 * few pairs, and the limits bound them.
 */
#ifndef DIALBACK_STATE_H
#define DIALBACK_STATE_H

#include <stdbool.h>
#include <stddef.h>

#define DIALBACK_DEFAULT_MAX_PAIRS   64
#define DIALBACK_DEFAULT_MAX_PENDING 16

enum dialback_state {
    DIALBACK_STATE_NONE = 0, /* never asked on this stream */
    DIALBACK_STATE_PENDING,  /* asked, no verdict yet */
    DIALBACK_STATE_VALID,    /* stanzas may flow for this pair */
    DIALBACK_STATE_INVALID,  /* spoofing attempt: the stream is condemned */
    DIALBACK_STATE_ERROR,    /* failed for this pair only; may be asked again */
};

/* What a step did, or why it did not. */
enum dialback_step {
    DIALBACK_STEP_OK = 0,        /* the transition was made */
    DIALBACK_STEP_DUPLICATE,     /* the same request is pending: wait for its answer */
    DIALBACK_STEP_ALREADY_VALID, /* the pair is valid already */
    DIALBACK_STEP_LIMIT,         /* a limit is reached: answer resource-constraint */
    DIALBACK_STEP_UNSOLICITED,   /* an answer to no pending request: drop and log it */
    DIALBACK_STEP_CLOSED,        /* the stream is condemned (a pair was invalid): close it */
    DIALBACK_STEP_BAD,           /* bad argument: NULL/empty/overlong name, wrong verdict */
};

struct dialback_limits {
    size_t max_pairs;   /* pairs on one stream, any state (0: DIALBACK_DEFAULT_MAX_PAIRS) */
    size_t max_pending; /* pending pairs + pending verifications (0: the default) */
};

struct dialback_pairs;

/* NULL limits means the defaults. Returns NULL when out of memory. */
struct dialback_pairs *dialback_pairs_new(const struct dialback_limits *limits);
void dialback_pairs_free(struct dialback_pairs *pairs);

/* A <db:result/> request was sent or received for (local, remote): none/error -> pending. */
enum dialback_step dialback_pair_request(struct dialback_pairs *pairs, const char *local,
                                         const char *remote);
/*
 * The verdict for a pending pair: pending -> valid | invalid | error (verdict must be one
 * of those). UNSOLICITED if the pair is not pending; the state is then unchanged.
 */
enum dialback_step dialback_pair_answer(struct dialback_pairs *pairs, const char *local,
                                        const char *remote, enum dialback_state verdict);
enum dialback_state dialback_pair_state(const struct dialback_pairs *pairs, const char *local,
                                        const char *remote);
/* A valid pair is withdrawn (a reloaded policy refuses it): valid -> error, so stanzas no
 * longer pass for it and it may be asked again. UNSOLICITED if the pair is not valid. */
enum dialback_step dialback_pair_revoke(struct dialback_pairs *pairs, const char *local,
                                        const char *remote);
/* The check for every stanza (RFC 6120 §13.5, DESIGN invariant 2): is this pair valid on
 * this stream, and the stream not condemned? */
bool dialback_pair_valid(const struct dialback_pairs *pairs, const char *local, const char *remote);

/* A <db:verify/> request was sent on this stream. */
enum dialback_step dialback_verify_request(struct dialback_pairs *pairs, const char *local,
                                           const char *remote, const char *id);
/* Its answer arrived (any type): the request is forgotten. UNSOLICITED if none matched. */
enum dialback_step dialback_verify_answer(struct dialback_pairs *pairs, const char *local,
                                          const char *remote, const char *id);

/*
 * The stream is closing or timed out: every pending pair becomes error and every pending
 * verification is forgotten, each reported to fn (id is NULL for a pair) so the caller can
 * bounce queued stanzas or answer waiting streams (XEP-0220 §2.1.1, §2.1.2). fn must not
 * call back into this table. Returns how many were failed.
 */
typedef void (*dialback_pending_fn)(const char *local, const char *remote, const char *id,
                                    void *arg);
size_t dialback_pairs_fail_pending(struct dialback_pairs *pairs, dialback_pending_fn fn, void *arg);

size_t dialback_pairs_count(const struct dialback_pairs *pairs);   /* pairs, any state */
size_t dialback_pairs_pending(const struct dialback_pairs *pairs); /* pairs + verifies */
bool dialback_pairs_condemned(const struct dialback_pairs *pairs);

const char *dialback_state_name(enum dialback_state state);
const char *dialback_step_name(enum dialback_step step);

#endif
