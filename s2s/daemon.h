/*
 * The daemon's lifecycle: configuration and TLS context, the event loop, signals, reload
 * and graceful shutdown. main.c only parses the command line and calls in here.
 *
 * Signals (handled in the loop through libevent, never in a signal handler):
 *   SIGHUP           reload: load the configuration and build a new TLS context; both
 *                    must succeed or nothing changes (the reason is logged). Live
 *                    connections keep the TLS context they started with (refcounts).
 *   SIGTERM, SIGINT  graceful shutdown (below); a second one exits at once.
 *   SIGPIPE          ignored: a peer that goes away is a write error, not a death.
 *
 * Shutdown runs the shutdown hooks phase by phase (stop accepting, ask sessions to
 * close, then the local link), then waits until every daemon_busy() has been matched by
 * daemon_idle(), or DAEMON_GRACE_SECONDS have passed, and leaves the loop.
 */
#ifndef S2S_DAEMON_H
#define S2S_DAEMON_H

#include <stdbool.h>
#include <stddef.h>

#include "s2s/conf.h"

#define S2S_VERSION "0.1.0"

/* Longest wait, after a shutdown signal, for sessions to close their streams. */
#define DAEMON_GRACE_SECONDS 10

struct daemon;
struct daemon_hook;
struct event_base;
struct tls_ctx;

enum daemon_phase {
    DAEMON_PHASE_ACCEPT,   /* close listeners: no new inbound streams */
    DAEMON_PHASE_SESSIONS, /* ask every stream to close; bounce what is queued */
    DAEMON_PHASE_LINKS,    /* the local component link, last: bounces must reach it */
    DAEMON_NPHASES,
};

typedef void (*daemon_shutdown_fn)(struct daemon *d, void *arg);
/* Runs after a reload swapped the configuration in; old is freed once all hooks ran. */
typedef void (*daemon_reload_fn)(struct daemon *d, const struct conf *old, void *arg);

/*
 * Loads conf_path and builds its TLS context; NULL with the reason in err when either
 * fails. debug forces level debug on stderr whatever the configuration says (-d).
 * Logging is set up from the configuration.
 */
struct daemon *daemon_new(const char *conf_path, bool debug, char *err, size_t errlen);
/* Runs the event loop until shutdown; returns the process exit status. */
int daemon_run(struct daemon *d);
void daemon_free(struct daemon *d);

/* -t: loads path and builds its TLS context, then throws both away. 0 ok, -1 err set. */
int daemon_config_test(const char *path, char *err, size_t errlen);

struct event_base *daemon_base(const struct daemon *d);
/* The running configuration: valid until the next reload hook runs. */
const struct conf *daemon_conf(const struct daemon *d);
/* The current TLS context, borrowed: tls_ctx_ref() it to keep it past a reload. */
struct tls_ctx *daemon_tls(const struct daemon *d);
bool daemon_shutting_down(const struct daemon *d);

/* SIGHUP does this: 0 when the new configuration is in place, -1 when refused. */
int daemon_reload(struct daemon *d);
/* The same, with the reason for a refusal in err (ctl reload). */
int daemon_reload_why(struct daemon *d, char *err, size_t errlen);
/* SIGTERM/SIGINT do this; why goes to the log ("signal SIGTERM"). */
void daemon_shutdown(struct daemon *d, const char *why);

/* Hooks run in registration order; a hook may remove itself (only) while it runs. */
struct daemon_hook *daemon_on_shutdown(struct daemon *d, enum daemon_phase phase,
                                       daemon_shutdown_fn fn, void *arg);
struct daemon_hook *daemon_on_reload(struct daemon *d, daemon_reload_fn fn, void *arg);
void daemon_hook_remove(struct daemon *d, struct daemon_hook *hook);

/* Something is still closing (a stream waiting for the peer's </stream:stream>): the
 * shutdown waits for the matching daemon_idle(), within the grace time. */
void daemon_busy(struct daemon *d);
void daemon_idle(struct daemon *d);

#endif
