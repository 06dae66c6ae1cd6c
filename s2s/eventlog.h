/*
 * The JSON event log: one JSON object per line for auditors and SIEMs, to a file
 * (O_APPEND; eventlog_reopen() after log rotation: the daemon calls it on reload/SIGHUP)
 * and/or to syslog. Every line has "time" (RFC 3339, UTC, milliseconds) and "event":
 *
 *   stream_opened         id, direction ("in"/"out"), peer
 *   stream_authenticated  id, direction, peer, local, remote, method, tls_version, cipher,
 *                         certificate, fingerprint_sha256 (null without a certificate),
 *                         dnssec, dane
 *   stream_closed         id, direction, peer, pairs [{local, remote}], reason, duration
 *                         (seconds), stanzas_in, stanzas_out, bytes_in, bytes_out
 *   bounce_batch          local, remote, count, condition, reason (a route failed with
 *                         stanzas queued: each was bounced to its sender)
 *   policy_refusal        what ("stream", "route", "stanza"), action ("refuse", "bounce",
 *                         "drop"), direction, local, remote, rule, file and line (null for
 *                         the built-in default), count; stream and route also peer (or
 *                         null), term (the missed security term or null) and reason.
 *                         One line per stream/pair or route refused. Stanzas bounced or
 *                         dropped by a rule are summed per (rule, action, direction): the
 *                         first after a quiet second is written at once, the rest of that
 *                         second in one line when it ends (count: how many; local/remote:
 *                         the first one's), so a flood writes at most one line per rule a
 *                         second (EVENTLOG_POLICY_SLOTS rules at once; more flush early).
 *
 * Events come from the stream registry hooks (s2s/stats.h); writing is one write(2) per
 * line, no buffering, so a crash loses nothing already logged.
 */
#ifndef S2S_EVENTLOG_H
#define S2S_EVENTLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <jansson.h>

#include "s2s/stats.h"

struct eventlog;
struct event_base;

#define EVENTLOG_POLICY_SLOTS 32

/* file NULL: no file. NULL with err set when the file cannot be opened. */
struct eventlog *eventlog_new(const char *file, bool use_syslog, char *err, size_t errlen);
/* Reopens the file (log rotation); the old one stays in use when this fails. */
int eventlog_reopen(struct eventlog *el, char *err, size_t errlen);
void eventlog_free(struct eventlog *el);
/* The loop for the stanza-refusal flush timer; without one, sums wait for the next
 * refusal after their second, eventlog_flush() or eventlog_free(). */
void eventlog_set_base(struct eventlog *el, struct event_base *base);

/* Makes el the target of the stream and bounce hooks (NULL: stop logging events). */
void eventlog_install(struct eventlog *el);

/* Adds "time" and "event", writes ev as one line; steals ev. */
void eventlog_emit(struct eventlog *el, const char *event, json_t *ev);
void eventlog_stream(struct eventlog *el, enum s2s_stream_event what, const struct s2s_stream *st);
void eventlog_bounce(struct eventlog *el, const char *local, const char *remote, size_t count,
                     enum xmpp_stanza_error cond, const char *why);

/* One policy refusal (s2s_policy_refusal(), the policy hook). */
void eventlog_policy(struct eventlog *el, const struct s2s_policy_event *ev);
/* Writes the summed stanza refusals now. */
void eventlog_flush(struct eventlog *el);

/* "2026-11-27T04:31:16.123Z" (RFC 3339 §5.6, UTC); len >= 25. */
void eventlog_time(char *buf, size_t len, const struct timespec *ts);

#endif
