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

/* file NULL: no file. NULL with err set when the file cannot be opened. */
struct eventlog *eventlog_new(const char *file, bool use_syslog, char *err, size_t errlen);
/* Reopens the file (log rotation); the old one stays in use when this fails. */
int eventlog_reopen(struct eventlog *el, char *err, size_t errlen);
void eventlog_free(struct eventlog *el);

/* Makes el the target of the stream and bounce hooks (NULL: stop logging events). */
void eventlog_install(struct eventlog *el);

/* Adds "time" and "event", writes ev as one line; steals ev. */
void eventlog_emit(struct eventlog *el, const char *event, json_t *ev);
void eventlog_stream(struct eventlog *el, enum s2s_stream_event what, const struct s2s_stream *st);
void eventlog_bounce(struct eventlog *el, const char *local, const char *remote, size_t count,
                     enum xmpp_stanza_error cond, const char *why);

/* "2026-11-27T04:31:16.123Z" (RFC 3339 §5.6, UTC); len >= 25. */
void eventlog_time(char *buf, size_t len, const struct timespec *ts);

#endif
