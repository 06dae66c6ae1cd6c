/* The counters, histograms and live-stream registry of s2s/stats.h. */
#include "s2s/stats.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "s2s/conn.h"
#include "s2s/log.h"
#include "s2s/policy.h"

#define MAX_HOOKS 4

struct s2s_stats s2s_stats;
struct s2s_streams s2s_streams = TAILQ_HEAD_INITIALIZER(s2s_streams);
s2s_bounce_hook_fn s2s_bounce_hook;

/* From a loopback DNS answer to a slow remote TLS handshake. */
const double s2s_hist_bounds[S2S_HIST_NBOUNDS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                  0.1,   0.25,   0.5,   1,    2.5,   10};

static s2s_stream_hook_fn hooks[MAX_HOOKS];
static size_t nhooks;
static uint64_t serials[2];

double
s2s_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Per stanza (idle times): the coarse clock is a vDSO read without a TSC fence, a few ns;
 * its 1-4 ms resolution is plenty for "idle 12s". */
double
s2s_now_coarse(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void
s2s_hist_observe(struct s2s_hist *h, double secs)
{
    size_t i;

    for (i = 0; i < S2S_HIST_NBOUNDS && secs > s2s_hist_bounds[i]; i++)
        ;
    h->bucket[i]++;
    h->count++;
    h->sum += secs;
}

void
s2s_stream_hook_add(s2s_stream_hook_fn fn)
{
    for (size_t i = 0; i < nhooks; i++)
        if (hooks[i] == fn)
            return;
    if (nhooks == MAX_HOOKS)
        fatalx("%s: too many hooks", __func__);
    hooks[nhooks++] = fn;
}

static void
notify(enum s2s_stream_event ev, const struct s2s_stream *st)
{
    for (size_t i = 0; i < nhooks; i++)
        hooks[i](ev, st);
}

void
s2s_stream_register(struct s2s_stream *st, bool outbound, void *session,
                    const struct s2s_stream_ops *ops, const struct peerauth *auth, const char *peer)
{
    snprintf(st->peer, sizeof(st->peer), "%s", peer != NULL ? peer : "?");
    st->serial = ++serials[outbound];
    st->outbound = outbound;
    st->session = session;
    st->ops = ops;
    st->auth = auth;
    st->started = s2s_now();
    st->last_active = s2s_now_coarse();
    TAILQ_INSERT_TAIL(&s2s_streams, st, entry);
    notify(S2S_STREAM_OPENED, st);
}

void
s2s_stream_add_pair(struct s2s_stream *st, const char *local, const char *remote)
{
    struct s2s_stream_pair *p;

    for (size_t i = 0; i < st->npairs; i++)
        if (strcmp(st->pairs[i].local, local) == 0 && strcmp(st->pairs[i].remote, remote) == 0)
            return;
    if ((p = reallocarray(st->pairs, st->npairs + 1, sizeof(*p))) == NULL)
        fatal("reallocarray");
    st->pairs = p;
    p = &st->pairs[st->npairs++];
    snprintf(p->local, sizeof(p->local), "%s", local);
    snprintf(p->remote, sizeof(p->remote), "%s", remote);
    notify(S2S_STREAM_AUTHENTICATED, st);
}

void
s2s_stream_reason(struct s2s_stream *st, const char *why)
{
    if (st->reason[0] == '\0' && why != NULL)
        snprintf(st->reason, sizeof(st->reason), "%s", why);
}

void
s2s_stream_bytes(struct s2s_stream *st, const struct conn_stats *cs)
{
    st->bytes_in = cs->bytes_in;
    st->bytes_out = cs->bytes_out;
}

void
s2s_stream_unregister(struct s2s_stream *st)
{
    if (st->session == NULL)
        return;
    notify(S2S_STREAM_CLOSED, st);
    TAILQ_REMOVE(&s2s_streams, st, entry);
    free(st->pairs);
    st->pairs = NULL;
    st->npairs = 0;
    st->session = NULL;
}

struct s2s_stream *
s2s_stream_find(const char *id)
{
    struct s2s_stream *st;
    char want[32];

    TAILQ_FOREACH(st, &s2s_streams, entry)
    {
        snprintf(want, sizeof(want), "%s-%" PRIu64, st->outbound ? "out" : "in", st->serial);
        if (strcmp(want, id) == 0)
            return st;
    }
    return NULL;
}

/* --- drops and policy refusals --------------------------------------------------------- */

const char *
s2s_drop_reason_name(enum s2s_drop_reason r)
{
    static const char *const names[S2S_DROP_COUNT] = {
        [S2S_DROP_POLICY] = "policy",
        [S2S_DROP_UNBOUNCEABLE] = "unbounceable",
        [S2S_DROP_NO_ADDRESS] = "no-address",
        [S2S_DROP_NO_LOCAL_LINK] = "no-local-link",
    };

    return (unsigned)r < S2S_DROP_COUNT ? names[r] : "?";
}

s2s_policy_hook_fn s2s_policy_hook;
const char *const s2s_policy_whats[S2S_POLICY_WHATS] = {"stream", "route", "stanza"};
static struct s2s_policy_count policy_counts[S2S_POLICY_RULES];
static size_t npolicy_counts;

/* The row of rule; the last free row is kept for "other". */
static struct s2s_policy_count *
policy_count_row(const char *rule)
{
    if (rule == NULL)
        rule = "default";
    for (;;) {
        for (size_t i = 0; i < npolicy_counts; i++)
            if (strcmp(policy_counts[i].rule, rule) == 0)
                return &policy_counts[i];
        if (npolicy_counts < S2S_POLICY_RULES - 1 || strcmp(rule, "other") == 0)
            break;
        rule = "other";
    }
    snprintf(policy_counts[npolicy_counts].rule, sizeof(policy_counts[0].rule), "%s", rule);
    return &policy_counts[npolicy_counts++];
}

void
s2s_policy_refusal(const char *what, bool inbound, const char *local, const char *remote,
                   const char *peer, size_t count, const struct policy_decision *d)
{
    struct s2s_policy_event ev = {what, inbound, local, remote, peer, count, d};
    struct s2s_policy_count *row = policy_count_row(d->rule);

    for (size_t i = 0; i < S2S_POLICY_WHATS; i++)
        if (strcmp(s2s_policy_whats[i], what) == 0)
            row->by_what[i]++;
    if (s2s_policy_hook != NULL)
        s2s_policy_hook(&ev);
}

const struct s2s_policy_count *
s2s_policy_counts(size_t *n)
{
    *n = npolicy_counts;
    return policy_counts;
}
