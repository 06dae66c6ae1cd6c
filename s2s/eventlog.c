/* The JSON event log (see eventlog.h). */
#include "s2s/eventlog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <event2/event.h>

#include "s2s/conn.h"
#include "s2s/ctl.h"
#include "s2s/log.h"
#include "s2s/peerauth.h"
#include "s2s/policy.h"
#include "s2s/tls.h"

/* Stanzas bounced or dropped by one rule, one action and direction in this window. */
struct policy_agg {
    char rule[64], file[256];
    unsigned line;
    bool has_file, inbound;
    const char *action;                                       /* static strings */
    char local[S2S_STREAM_DOMAIN], remote[S2S_STREAM_DOMAIN]; /* the first stanza's */
    uint64_t count;
};

struct eventlog {
    char *file;
    int fd; /* -1: no file */
    bool use_syslog;
    struct policy_agg agg[EVENTLOG_POLICY_SLOTS];
    size_t nagg;
    double window_end; /* s2s_now(): stanza refusals before it wait for the flush */
    struct event *ev_flush;
};

static struct eventlog *installed;

static int
open_file(const char *file, char *err, size_t errlen)
{
    int fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

    if (fd == -1)
        snprintf(err, errlen, "eventlog: %s: %s", file, strerror(errno));
    return fd;
}

struct eventlog *
eventlog_new(const char *file, bool use_syslog, char *err, size_t errlen)
{
    struct eventlog *el;

    if ((el = calloc(1, sizeof(*el))) == NULL)
        fatal("calloc");
    el->fd = -1;
    el->use_syslog = use_syslog;
    if (file != NULL) {
        if ((el->file = strdup(file)) == NULL)
            fatal("strdup");
        if ((el->fd = open_file(file, err, errlen)) == -1) {
            free(el->file);
            free(el);
            return NULL;
        }
    }
    return el;
}

int
eventlog_reopen(struct eventlog *el, char *err, size_t errlen)
{
    int fd;

    if (el->file == NULL)
        return 0;
    if ((fd = open_file(el->file, err, errlen)) == -1)
        return -1;
    close(el->fd);
    el->fd = fd;
    return 0;
}

void
eventlog_free(struct eventlog *el)
{
    if (el == NULL)
        return;
    eventlog_flush(el);
    if (installed == el)
        eventlog_install(NULL);
    if (el->ev_flush != NULL)
        event_free(el->ev_flush);
    if (el->fd != -1)
        close(el->fd);
    free(el->file);
    free(el);
}

void
eventlog_time(char *buf, size_t len, const struct timespec *ts)
{
    struct tm tm;
    char sec[24];

    gmtime_r(&ts->tv_sec, &tm);
    strftime(sec, sizeof(sec), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%03ldZ", sec, ts->tv_nsec / 1000000L);
}

void
eventlog_emit(struct eventlog *el, const char *event, json_t *ev)
{
    struct timespec ts;
    char t[40], *line;
    size_t n;

    if (ev == NULL) /* a value jansson refused (not UTF-8): nothing to write */
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    eventlog_time(t, sizeof(t), &ts);
    json_object_set_new(ev, "time", json_string(t));
    json_object_set_new(ev, "event", json_string(event));
    line = json_dumps(ev, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(ev);
    if (line == NULL)
        return;
    if (el->use_syslog)
        syslog(LOG_INFO | LOG_DAEMON, "%s", line);
    n = strlen(line);
    line[n] = '\n';
    if (el->fd != -1 && write(el->fd, line, n + 1) != (ssize_t)(n + 1))
        log_warn("eventlog: %s: write failed: %s", el->file, strerror(errno));
    free(line);
}

static void
fingerprint_hex(const struct s2s_stream *st, char *out, size_t len)
{
    const struct conn *cn = st->ops->conn(st->session);
    const struct tls_info *ti = cn != NULL ? conn_tls_info(cn) : NULL;

    out[0] = '\0';
    if (ti == NULL || !ti->peer_cert || len < 65)
        return;
    for (size_t i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", ti->fingerprint[i]);
}

void
eventlog_stream(struct eventlog *el, enum s2s_stream_event what, const struct s2s_stream *st)
{
    const struct s2s_stream_pair *p;
    char id[32], fp[65];
    json_t *ev, *pairs, *more;

    ctl_stream_id(st, id, sizeof(id));
    ev = json_pack("{s:s, s:s, s:s}", "id", id, "direction", st->outbound ? "out" : "in", "peer",
                   st->peer);
    switch (what) {
    case S2S_STREAM_OPENED:
        eventlog_emit(el, "stream_opened", ev);
        return;
    case S2S_STREAM_AUTHENTICATED:
        p = &st->pairs[st->npairs - 1];
        fingerprint_hex(st, fp, sizeof(fp));
        more = json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:s, s:s?, s:b, s:b}", "local", p->local,
                         "remote", p->remote, "method", peerauth_method_name(st->auth->method),
                         "tls_version", st->auth->tls_version, "cipher", st->auth->cipher,
                         "certificate", ctl_cert_status(st->auth), "fingerprint_sha256",
                         fp[0] ? fp : NULL, "dnssec", st->auth->dnssec, "dane", st->auth->dane);
        json_object_update(ev, more);
        json_decref(more);
        eventlog_emit(el, "stream_authenticated", ev);
        return;
    case S2S_STREAM_CLOSED:
        pairs = json_array();
        for (size_t i = 0; i < st->npairs; i++)
            json_array_append_new(pairs, json_pack("{s:s, s:s}", "local", st->pairs[i].local,
                                                   "remote", st->pairs[i].remote));
        json_object_set_new(ev, "pairs", pairs);
        json_object_set_new(ev, "reason", json_string(st->reason[0] ? st->reason : "closed"));
        json_object_set_new(ev, "duration", json_real(s2s_now() - st->started));
        json_object_set_new(ev, "stanzas_in", json_integer((json_int_t)st->stanzas_in));
        json_object_set_new(ev, "stanzas_out", json_integer((json_int_t)st->stanzas_out));
        json_object_set_new(ev, "bytes_in", json_integer((json_int_t)st->bytes_in));
        json_object_set_new(ev, "bytes_out", json_integer((json_int_t)st->bytes_out));
        eventlog_emit(el, "stream_closed", ev);
        return;
    }
    json_decref(ev);
}

void
eventlog_bounce(struct eventlog *el, const char *local, const char *remote, size_t count,
                enum xmpp_stanza_error cond, const char *why)
{
    eventlog_emit(el, "bounce_batch",
                  json_pack("{s:s, s:s, s:I, s:s, s:s}", "local", local, "remote", remote, "count",
                            (json_int_t)count, "condition", xmpp_stanza_error_name(cond), "reason",
                            why));
}

/* --- policy refusals ------------------------------------------------------------------ */

static const char *
action_name(const struct s2s_policy_event *ev)
{
    if (strcmp(ev->what, "route") == 0)
        return "bounce"; /* the stanzas waiting for the route */
    switch (ev->d->verdict) {
    case POLICY_BOUNCE:
        return "bounce";
    case POLICY_DROP:
        return "drop";
    default:
        return "refuse";
    }
}

static json_t *
refusal_json(const char *what, const char *action, bool inbound, const char *local,
             const char *remote, const char *rule, const char *file, unsigned line)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s?, s:s?, s:I}", "what", what, "action", action,
                     "direction", inbound ? "in" : "out", "local", local, "remote", remote, "rule",
                     rule, "file", file, "line", (json_int_t)line);
}

void
eventlog_flush(struct eventlog *el)
{
    for (size_t i = 0; i < el->nagg; i++) {
        const struct policy_agg *a = &el->agg[i];
        json_t *ev = refusal_json("stanza", a->action, a->inbound, a->local, a->remote, a->rule,
                                  a->has_file ? a->file : NULL, a->line);

        json_object_set_new(ev, "count", json_integer((json_int_t)a->count));
        eventlog_emit(el, "policy_refusal", ev);
    }
    el->nagg = 0;
}

static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct eventlog *el = arg;

    (void)fd;
    (void)what;
    eventlog_flush(el);
}

void
eventlog_set_base(struct eventlog *el, struct event_base *base)
{
    if (el->ev_flush == NULL && (el->ev_flush = evtimer_new(base, flush_cb, el)) == NULL)
        fatal("evtimer_new");
}

/* A stanza bounced or dropped: counted into its (rule, action, direction) slot. */
static void
policy_stanza(struct eventlog *el, const struct s2s_policy_event *ev, double now)
{
    const struct policy_decision *d = ev->d;
    const char *action = action_name(ev), *rule = d->rule != NULL ? d->rule : "default";
    struct policy_agg *a = NULL;

    for (size_t i = 0; i < el->nagg && a == NULL; i++)
        if (el->agg[i].action == action && el->agg[i].inbound == ev->inbound &&
            el->agg[i].line == d->line && strcmp(el->agg[i].rule, rule) == 0)
            a = &el->agg[i];
    if (a == NULL) {
        if (el->nagg == EVENTLOG_POLICY_SLOTS) /* more rules than slots in one second */
            eventlog_flush(el);
        a = &el->agg[el->nagg++];
        snprintf(a->rule, sizeof(a->rule), "%s", rule);
        snprintf(a->file, sizeof(a->file), "%s", d->file != NULL ? d->file : "");
        a->has_file = d->file != NULL;
        a->line = d->line;
        a->action = action;
        a->inbound = ev->inbound;
        snprintf(a->local, sizeof(a->local), "%s", ev->local);
        snprintf(a->remote, sizeof(a->remote), "%s", ev->remote);
        a->count = 0;
    }
    a->count += ev->count > 0 ? ev->count : 1;
    /* The first refusal after a quiet second goes out at once; the others of the
     * window are summed and written when it ends (at most one line per rule a second). */
    if (now >= el->window_end) {
        el->window_end = now + 1.0;
        eventlog_flush(el);
    } else if (el->ev_flush != NULL && !evtimer_pending(el->ev_flush, NULL)) {
        double left = el->window_end - now;
        struct timeval tv = {(time_t)left, (suseconds_t)((left - (double)(time_t)left) * 1e6)};

        evtimer_add(el->ev_flush, &tv);
    }
}

void
eventlog_policy(struct eventlog *el, const struct s2s_policy_event *ev)
{
    const struct policy_decision *d = ev->d;
    json_t *o;

    if (strcmp(ev->what, "stanza") == 0) {
        policy_stanza(el, ev, s2s_now());
        return;
    }
    o = refusal_json(ev->what, action_name(ev), ev->inbound, ev->local, ev->remote,
                     d->rule != NULL ? d->rule : "default", d->file, d->line);
    json_object_set_new(o, "peer", ev->peer != NULL ? json_string(ev->peer) : json_null());
    json_object_set_new(o, "term", d->term != NULL ? json_string(d->term) : json_null());
    json_object_set_new(o, "reason", json_string(d->text));
    json_object_set_new(o, "count", json_integer((json_int_t)ev->count));
    eventlog_emit(el, "policy_refusal", o);
}

static void
policy_hook(const struct s2s_policy_event *ev)
{
    if (installed != NULL)
        eventlog_policy(installed, ev);
}

static void
stream_hook(enum s2s_stream_event what, const struct s2s_stream *st)
{
    if (installed != NULL)
        eventlog_stream(installed, what, st);
}

static void
bounce_hook(const char *local, const char *remote, size_t count, enum xmpp_stanza_error cond,
            const char *why)
{
    if (installed != NULL)
        eventlog_bounce(installed, local, remote, count, cond, why);
}

void
eventlog_install(struct eventlog *el)
{
    installed = el;
    if (el != NULL) {
        s2s_stream_hook_add(stream_hook);
        s2s_bounce_hook = bounce_hook;
        s2s_policy_hook = policy_hook;
    }
}
