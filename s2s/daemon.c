/*
 * Daemon lifecycle: one event loop, the running configuration and TLS context, signals,
 * reload and graceful shutdown (see daemon.h for the contract).
 */
#include "s2s/daemon.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include <event2/event.h>

#include "s2s/log.h"
#include "s2s/tls.h"

#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)                                                 \
    for ((var) = TAILQ_FIRST(head); (var) != NULL && ((tvar) = TAILQ_NEXT(var, field), 1);         \
         (var) = (tvar))
#endif

#define HOOK_RELOAD DAEMON_NPHASES /* hook lists: one per shutdown phase, then reload */

struct daemon_hook {
    TAILQ_ENTRY(daemon_hook) entry;
    int list; /* enum daemon_phase or HOOK_RELOAD */
    daemon_shutdown_fn shutdown_fn;
    daemon_reload_fn reload_fn;
    void *arg;
};
TAILQ_HEAD(daemon_hooks, daemon_hook);

struct daemon {
    struct event_base *base;
    char *conf_path;
    struct conf *conf;   /* running configuration */
    struct tls_ctx *tls; /* reference: daemon (connections take their own) */
    bool debug;          /* -d: debug level on stderr, whatever the configuration says */

    struct event *ev_term, *ev_int, *ev_hup, *ev_grace;
    bool shutting_down;
    unsigned busy; /* daemon_busy() minus daemon_idle() */

    struct daemon_hooks hooks[DAEMON_NPHASES + 1];
};

/* Loads a configuration and its TLS context: both or neither. running: the dialback
 * secret is read, or generated and stored on first start (not for -t, which changes
 * nothing on disk). */
static int
load(const char *path, bool running, struct conf **confp, struct tls_ctx **tlsp, char *err,
     size_t errlen)
{
    const struct tls_settings *settings;
    const struct tls_host *hosts;
    struct conf *conf;
    struct tls_ctx *tls;
    char tlserr[512];

    if ((conf = conf_load(path, err, errlen)) == NULL)
        return -1;
    if (running && conf_dialback_secret_load(conf, err, errlen) == -1) {
        conf_free(conf);
        return -1;
    }
    conf_tls_settings(conf, &settings, &hosts);
    if ((tls = tls_ctx_new(settings, hosts, conf->nhosts, tlserr, sizeof(tlserr))) == NULL) {
        snprintf(err, errlen, "%s: tls: %s", path, tlserr);
        conf_free(conf);
        return -1;
    }
    *confp = conf;
    *tlsp = tls;
    return 0;
}

int
daemon_config_test(const char *path, char *err, size_t errlen)
{
    struct conf *conf;
    struct tls_ctx *tls;

    if (load(path, false, &conf, &tls, err, errlen) == -1)
        return -1;
    tls_ctx_unref(tls);
    conf_free(conf);
    return 0;
}

static void
apply_logging(const struct daemon *d)
{
    if (d->debug)
        log_init("s2sproxy", LOG_LVL_DEBUG, false);
    else
        log_init("s2sproxy", d->conf->log.level, d->conf->log.syslog);
}

static void
run_hooks(struct daemon *d, int list, const struct conf *old)
{
    struct daemon_hook *h, *next;

    TAILQ_FOREACH_SAFE(h, &d->hooks[list], entry, next)
    {
        if (list == HOOK_RELOAD)
            h->reload_fn(d, old, h->arg);
        else
            h->shutdown_fn(d, h->arg);
    }
}

int
daemon_reload(struct daemon *d)
{
    char err[1024];

    return daemon_reload_why(d, err, sizeof(err));
}

int
daemon_reload_why(struct daemon *d, char *err, size_t errlen)
{
    struct conf *conf, *old;
    struct tls_ctx *tls;

    /*
     * Everything new is built before anything changes, so a refused reload leaves the
     * daemon exactly as it was. Later subsystems that need their own preparation (policy
     * files, listeners) add it here, before the swap.
     */
    if (load(d->conf_path, true, &conf, &tls, err, errlen) == -1) {
        log_err("reload refused, keeping the running configuration: %s", err);
        return -1;
    }

    old = d->conf;
    d->conf = conf;
    tls_ctx_unref(d->tls); /* live connections hold their own reference */
    d->tls = tls;
    apply_logging(d);
    run_hooks(d, HOOK_RELOAD, old);
    conf_free(old);
    log_info("reloaded configuration %s (%zu hosts)", d->conf_path, d->conf->nhosts);
    return 0;
}

static void
grace_cb(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *d = arg;

    log_warn("grace time over: %u sessions still closing, exiting", d->busy);
    event_base_loopbreak(d->base);
}

void
daemon_shutdown(struct daemon *d, const char *why)
{
    struct timeval grace = {DAEMON_GRACE_SECONDS, 0};

    if (d->shutting_down) {
        log_warn("%s during shutdown: exiting now", why);
        event_base_loopbreak(d->base);
        return;
    }
    d->shutting_down = true;
    log_info("shutting down (%s), grace %ds", why, DAEMON_GRACE_SECONDS);
    for (int phase = 0; phase < DAEMON_NPHASES; phase++)
        run_hooks(d, phase, NULL);
    if (d->busy == 0) {
        event_base_loopbreak(d->base);
        return;
    }
    log_info("waiting for %u sessions to close", d->busy);
    evtimer_add(d->ev_grace, &grace);
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct daemon *d = arg;

    log_debug("received %s", sig == SIGHUP ? "SIGHUP" : sig == SIGTERM ? "SIGTERM" : "SIGINT");
    if (sig == SIGHUP && d->shutting_down)
        log_info("reload ignored: shutting down"); /* it would re-open what just closed */
    else if (sig == SIGHUP)
        daemon_reload(d);
    else
        daemon_shutdown(d, sig == SIGTERM ? "signal SIGTERM" : "signal SIGINT");
}

struct daemon *
daemon_new(const char *conf_path, bool debug, char *err, size_t errlen)
{
    struct daemon *d;

    if ((d = calloc(1, sizeof(*d))) == NULL)
        fatal("calloc");
    for (int i = 0; i <= DAEMON_NPHASES; i++)
        TAILQ_INIT(&d->hooks[i]);
    d->debug = debug;
    if ((d->conf_path = strdup(conf_path)) == NULL)
        fatal("strdup");
    if (load(conf_path, true, &d->conf, &d->tls, err, errlen) == -1) {
        free(d->conf_path);
        free(d);
        return NULL;
    }
    apply_logging(d);

    if ((d->base = event_base_new()) == NULL)
        fatalx("event_base_new failed");
    d->ev_term = evsignal_new(d->base, SIGTERM, signal_cb, d);
    d->ev_int = evsignal_new(d->base, SIGINT, signal_cb, d);
    d->ev_hup = evsignal_new(d->base, SIGHUP, signal_cb, d);
    d->ev_grace = evtimer_new(d->base, grace_cb, d);
    if (d->ev_term == NULL || d->ev_int == NULL || d->ev_hup == NULL || d->ev_grace == NULL ||
        evsignal_add(d->ev_term, NULL) == -1 || evsignal_add(d->ev_int, NULL) == -1 ||
        evsignal_add(d->ev_hup, NULL) == -1)
        fatalx("cannot install signal events");
    /* RFC 6120 peers vanish mid-write all the time: EPIPE, not a fatal signal. */
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
        fatal("signal(SIGPIPE)");
    return d;
}

int
daemon_run(struct daemon *d)
{
    log_info("started pid=%ld version=%s config=%s hosts=%zu", (long)getpid(), S2S_VERSION,
             d->conf_path, d->conf->nhosts);
    if (event_base_dispatch(d->base) == -1) {
        log_err("event loop failed");
        return 1;
    }
    log_info("stopped");
    return 0;
}

void
daemon_free(struct daemon *d)
{
    struct daemon_hook *h;

    if (d == NULL)
        return;
    for (int i = 0; i <= DAEMON_NPHASES; i++)
        while ((h = TAILQ_FIRST(&d->hooks[i])) != NULL) {
            TAILQ_REMOVE(&d->hooks[i], h, entry);
            free(h);
        }
    event_free(d->ev_term);
    event_free(d->ev_int);
    event_free(d->ev_hup);
    event_free(d->ev_grace);
    event_base_free(d->base);
    tls_ctx_unref(d->tls);
    conf_free(d->conf);
    free(d->conf_path);
    free(d);
}

struct event_base *
daemon_base(const struct daemon *d)
{
    return d->base;
}

const struct conf *
daemon_conf(const struct daemon *d)
{
    return d->conf;
}

struct tls_ctx *
daemon_tls(const struct daemon *d)
{
    return d->tls;
}

bool
daemon_shutting_down(const struct daemon *d)
{
    return d->shutting_down;
}

static struct daemon_hook *
hook_add(struct daemon *d, int list, daemon_shutdown_fn sfn, daemon_reload_fn rfn, void *arg)
{
    struct daemon_hook *h;

    if ((h = calloc(1, sizeof(*h))) == NULL)
        fatal("calloc");
    h->list = list;
    h->shutdown_fn = sfn;
    h->reload_fn = rfn;
    h->arg = arg;
    TAILQ_INSERT_TAIL(&d->hooks[list], h, entry);
    return h;
}

struct daemon_hook *
daemon_on_shutdown(struct daemon *d, enum daemon_phase phase, daemon_shutdown_fn fn, void *arg)
{
    return hook_add(d, (int)phase, fn, NULL, arg);
}

struct daemon_hook *
daemon_on_reload(struct daemon *d, daemon_reload_fn fn, void *arg)
{
    return hook_add(d, HOOK_RELOAD, NULL, fn, arg);
}

void
daemon_hook_remove(struct daemon *d, struct daemon_hook *h)
{
    TAILQ_REMOVE(&d->hooks[h->list], h, entry);
    free(h);
}

void
daemon_busy(struct daemon *d)
{
    d->busy++;
}

void
daemon_idle(struct daemon *d)
{
    if (d->busy == 0)
        fatalx("%s: unbalanced daemon_idle()", __func__);
    if (--d->busy == 0 && d->shutting_down) {
        log_info("all sessions closed");
        event_base_loopbreak(d->base);
    }
}
