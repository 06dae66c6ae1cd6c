/*
 * The admin socket: a UNIX stream socket (mode 0600: only the daemon's user, and root,
 * may connect) answered by the event loop. One request line per connection, one JSON
 * document (and a newline) as the answer, then the daemon closes. `s2sproxy ctl` is the
 * client and renders text from the JSON unless asked for --json.
 *
 *   streams                  every live stream (ids "in-N" / "out-N")
 *   domains                  one entry per remote domain: live posture, counters, errors
 *   stats                    the invariant counters and the local links
 *   close DOMAIN|STREAM-ID   graceful close; queued stanzas go on a new stream or bounce
 *   reload                   what SIGHUP does, with the outcome or the error
 *   policy                   the policy rules and their hit counts
 *
 * Errors are {"error": "..."}; the client exits 1 on them. Requests are bounded
 * (CTL_MAX_LINE bytes, CTL_MAX_CLIENTS at once, CTL_TIMEOUT seconds per client).
 */
#ifndef S2S_CTL_H
#define S2S_CTL_H

#include <stddef.h>

#include <jansson.h>

struct ctl;
struct daemon;
struct dns_resolver;
struct event_base;
struct local;
struct peerauth;
struct policy;
struct pool;
struct s2s_stream;

#define CTL_MAX_LINE    1024
#define CTL_MAX_CLIENTS 16
#define CTL_TIMEOUT     10

/* What ctl reads; every member may be NULL/0 (tests). Borrowed for ctl's lifetime. */
struct ctl_env {
    struct daemon *d; /* reload; NULL: "reload" answers an error */
    struct pool *pool;
    struct dns_resolver *res;
    struct local *const *locals; /* NULL entries are skipped */
    size_t nlocals;
    const struct policy *policy; /* NULL: the running configuration's (d) */
};

/* Listens on path (a stale socket there is replaced); NULL with err set. */
struct ctl *ctl_new(struct event_base *base, const char *path, const struct ctl_env *env, char *err,
                    size_t errlen);
void ctl_free(struct ctl *c);

/* The answer to one request line (new reference): what the socket sends back. */
json_t *ctl_answer(const struct ctl_env *env, const char *line);

/* "valid", "expired", "wrong-name", "untrusted" or "none" (no certificate / no TLS). */
const char *ctl_cert_status(const struct peerauth *pa);
/* "in-3", "out-7" */
void ctl_stream_id(const struct s2s_stream *st, char *buf, size_t len);

#endif
