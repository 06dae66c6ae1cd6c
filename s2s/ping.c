/*
 * XEP-0199 pings on stale outbound streams (see ping.h).
 */
#include "s2s/ping.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>

#include "s2s/log.h"

#define DOMAIN_BUF 256
#define ID_BUF     48

struct ping {
    char local[DOMAIN_BUF], remote[DOMAIN_BUF];
    struct ping_cbs cbs;
    uint64_t interval_ms, answer_ms; /* from the last ping_wrote() */
    uint64_t quiet_since;            /* first stanza written since we last heard; 0: none */
    uint64_t sent_at, deadline;      /* the ping out; 0: none */
    char id[ID_BUF];                 /* its id; "" when none */
    struct event *ev;
};

struct ping_counts ping_counts;

/* Ids of this process: s2sproxy-ping-1, -2, ... (a later answer to an earlier one is
 * still recognised as ours). */
static uint64_t ping_seq;

static uint64_t
ping_now(const struct ping *pg)
{
    struct timespec ts;
    uint64_t t;

    if (pg->cbs.now_ms != NULL)
        t = pg->cbs.now_ms(pg->cbs.arg);
    else {
        clock_gettime(CLOCK_MONOTONIC, &ts);
        t = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    }
    return t == 0 ? 1 : t; /* 0 means "none" in the fields above */
}

static void
arm(struct ping *pg, uint64_t now, uint64_t due)
{
    uint64_t ms = due > now ? due - now : 0;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};

    evtimer_add(pg->ev, &tv);
}

static void
reset(struct ping *pg)
{
    pg->quiet_since = 0;
    pg->sent_at = 0;
    pg->deadline = 0;
    pg->id[0] = '\0';
    evtimer_del(pg->ev);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ping_check(arg);
}

struct ping *
ping_new(struct event_base *base, const char *local, const char *remote, const struct ping_cbs *cbs)
{
    struct ping *pg;

    if ((pg = calloc(1, sizeof(*pg))) == NULL)
        fatal("calloc");
    snprintf(pg->local, sizeof(pg->local), "%s", local);
    snprintf(pg->remote, sizeof(pg->remote), "%s", remote);
    pg->cbs = *cbs;
    if ((pg->ev = evtimer_new(base, timer_cb, pg)) == NULL)
        fatal("evtimer_new");
    return pg;
}

void
ping_free(struct ping *pg)
{
    if (pg == NULL)
        return;
    event_free(pg->ev);
    free(pg);
}

void
ping_wrote(struct ping *pg, double interval, double answer)
{
    uint64_t now;

    if (interval <= 0) {
        reset(pg);
        return;
    }
    pg->interval_ms = (uint64_t)(interval * 1000);
    pg->answer_ms = (uint64_t)(answer * 1000);
    if (pg->quiet_since != 0)
        return; /* the clock runs already (and a ping may be out) */
    now = ping_now(pg);
    pg->quiet_since = now;
    if (pg->deadline == 0)
        arm(pg, now, now + pg->interval_ms);
}

/* XEP-0199 §4.2: <iq type='get' from=local to=remote id=...><ping xmlns=.../></iq>. */
static struct stanza *
ping_make(const struct ping *pg)
{
    struct stanza *st = stanza_new(STANZA_NS_SERVER, "iq");
    struct stanza_elem *r;

    if (st == NULL)
        fatal("stanza_new");
    r = stanza_root(st);
    if (stanza_elem_set_attr(st, r, NULL, "type", "get") == -1 ||
        stanza_elem_set_attr(st, r, NULL, "from", pg->local) == -1 ||
        stanza_elem_set_attr(st, r, NULL, "to", pg->remote) == -1 ||
        stanza_elem_set_attr(st, r, NULL, "id", pg->id) == -1 ||
        stanza_elem_add(st, r, PING_NS, "ping") == NULL)
        fatal("ping_make");
    return st;
}

static void
send_ping(struct ping *pg, uint64_t now)
{
    snprintf(pg->id, sizeof(pg->id), PING_ID_PREFIX "%llu", (unsigned long long)++ping_seq);
    if (pg->cbs.send(pg->cbs.arg, ping_make(pg)) == -1) {
        reset(pg);
        return;
    }
    ping_counts.sent++;
    pg->sent_at = now;
    pg->deadline = now + pg->answer_ms;
    log_debug("ping: local=%s remote=%s nothing heard for %.1fs: ping id=%s sent", pg->local,
              pg->remote, (double)(now - pg->quiet_since) / 1000, pg->id);
    arm(pg, now, pg->deadline);
}

void
ping_check(struct ping *pg)
{
    uint64_t now = ping_now(pg);
    char why[160];

    if (pg->deadline != 0) {
        if (now < pg->deadline) {
            arm(pg, now, pg->deadline);
            return;
        }
        ping_counts.stale++;
        snprintf(why, sizeof(why), "stale: no answer to XEP-0199 ping id=%s within %.1fs", pg->id,
                 (double)pg->answer_ms / 1000);
        /* the owner's close logs the reason (one line per event) */
        log_debug("ping: local=%s remote=%s %s", pg->local, pg->remote, why);
        reset(pg);
        pg->cbs.stale(pg->cbs.arg, why); /* last: it may close the stream */
        return;
    }
    if (pg->quiet_since == 0)
        return;
    if (now - pg->quiet_since < pg->interval_ms) {
        arm(pg, now, pg->quiet_since + pg->interval_ms);
        return;
    }
    send_ping(pg, now);
}

/* A bare domain: no node, no resource (RFC 7622 §3). */
static bool
bare_domain(const char *jid)
{
    return jid != NULL && jid[0] != '\0' && strchr(jid, '@') == NULL && strchr(jid, '/') == NULL;
}

/* One of our ids, s2sproxy-ping-N with 1 <= N <= the last one made. */
static bool
our_id(const char *id)
{
    size_t n = strlen(PING_ID_PREFIX);
    unsigned long long v;
    char *end;

    if (id == NULL || strncmp(id, PING_ID_PREFIX, n) != 0 || id[n] < '1' || id[n] > '9')
        return false;
    v = strtoull(id + n, &end, 10);
    return *end == '\0' && v >= 1 && v <= ping_seq;
}

/* An IQ response (RFC 6120 §8.2.3: result or error) from a bare domain to a bare domain
 * carrying one of our ids. */
static bool
is_answer(const struct stanza *st)
{
    const char *type = stanza_attr(st, "type");

    return strcmp(stanza_name(st), "iq") == 0 && type != NULL &&
           (strcmp(type, "result") == 0 || strcmp(type, "error") == 0) &&
           bare_domain(stanza_attr(st, "from")) && bare_domain(stanza_attr(st, "to")) &&
           our_id(stanza_attr(st, "id"));
}

bool
ping_heard(struct ping *pg, const struct stanza *st)
{
    bool answer = is_answer(st);
    uint64_t now;

    if (pg == NULL) {
        if (answer)
            ping_counts.late++;
        return answer;
    }
    if (pg->deadline == 0) {
        /* No ping out: any stanza from the remote shows it alive; the clock restarts
         * with the next stanza we write. */
        pg->quiet_since = 0;
        if (answer)
            ping_counts.late++;
        return answer;
    }
    if (!answer || strcmp(stanza_attr(st, "id"), pg->id) != 0 ||
        strcasecmp(stanza_attr(st, "from"), pg->remote) != 0 ||
        strcasecmp(stanza_attr(st, "to"), pg->local) != 0) {
        if (answer)
            ping_counts.late++;
        return answer; /* only the answer proves our stream delivers (ping.h) */
    }
    now = ping_now(pg);
    ping_counts.answered++;
    log_debug("ping: local=%s remote=%s ping id=%s answered (%s) after %llu ms", pg->local,
              pg->remote, pg->id, stanza_attr(st, "type"), (unsigned long long)(now - pg->sent_at));
    reset(pg);
    return true;
}

void
ping_stop(struct ping *pg)
{
    if (pg != NULL)
        reset(pg);
}

bool
ping_waiting(const struct ping *pg)
{
    return pg != NULL && pg->deadline != 0;
}
