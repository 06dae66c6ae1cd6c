/*
 * The admin socket (see ctl.h): accept, read one line, answer with JSON built from the
 * live-stream registry (s2s/stats.h), the pool and the local links, then close. Nothing
 * here blocks the loop: the socket is non-blocking, answers are built in memory, and a
 * client that does not send its line or read its answer is dropped after CTL_TIMEOUT.
 */
#include "s2s/ctl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/x509_vfy.h>

#include "dns/resolver.h"
#include "s2s/conn.h"
#include "s2s/daemon.h"
#include "s2s/local.h"
#include "s2s/log.h"
#include "s2s/peerauth.h"
#include "s2s/ping.h"
#include "s2s/policy.h"
#include "s2s/pool.h"
#include "s2s/stats.h"

struct ctl {
    struct event_base *base;
    struct evconnlistener *lis;
    char *path;
    struct ctl_env env;
    unsigned nclients;
};

struct ctl_client {
    struct ctl *c;
    struct bufferevent *bev;
    bool answered;
};

static json_t *error_json(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static json_t *
error_json(const char *fmt, ...)
{
    char buf[1200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return json_pack("{s:s}", "error", buf);
}

/* --- facts --------------------------------------------------------------------------- */

const char *
ctl_cert_status(const struct peerauth *pa)
{
    switch (pa->cert) {
    case PEERAUTH_CERT_VALID:
        return "valid";
    case PEERAUTH_CERT_MISMATCH:
        return "wrong-name";
    case PEERAUTH_CERT_UNTRUSTED:
        return pa->verify_error == X509_V_ERR_CERT_HAS_EXPIRED ? "expired" : "untrusted";
    default:
        return "none";
    }
}

void
ctl_stream_id(const struct s2s_stream *st, char *buf, size_t len)
{
    snprintf(buf, len, "%s-%" PRIu64, st->outbound ? "out" : "in", st->serial);
}

/* TLS version of a stream: from authentication, else from the connection once TLS is up. */
static const char *
stream_tls(const struct s2s_stream *st, const char **cipher)
{
    const struct conn *cn = st->ops->conn(st->session);
    const struct tls_info *ti = cn != NULL ? conn_tls_info(cn) : NULL;

    *cipher = st->auth->cipher;
    if (st->auth->tls_version != NULL)
        return st->auth->tls_version;
    if (ti != NULL) {
        *cipher = ti->cipher;
        return ti->version;
    }
    return NULL;
}

/* The coarse stamp may lag the precise clock by a tick: idle stays within 0..age. */
static double
stream_idle(const struct s2s_stream *st, double now)
{
    double idle = now - st->last_active, age = now - st->started;

    return idle < 0 ? 0 : idle > age ? age : idle;
}

static size_t
stream_queued(const struct ctl_env *env, const struct s2s_stream *st)
{
    size_t n = 0;

    if (!st->outbound || env->pool == NULL)
        return 0;
    for (size_t i = 0; i < st->npairs; i++)
        n += pool_queued(env->pool, st->pairs[i].local, st->pairs[i].remote);
    return n;
}

static json_t *
stream_json(const struct ctl_env *env, const struct s2s_stream *st, double now)
{
    const struct conn *cn = st->ops->conn(st->session);
    const struct conn_stats *cs = cn != NULL ? conn_stats(cn) : NULL;
    const char *tls, *cipher;
    json_t *o, *pairs = json_array();
    char id[32];

    ctl_stream_id(st, id, sizeof(id));
    tls = stream_tls(st, &cipher);
    for (size_t i = 0; i < st->npairs; i++)
        json_array_append_new(pairs, json_pack("{s:s, s:s}", "local", st->pairs[i].local, "remote",
                                               st->pairs[i].remote));
    o = json_pack(
        "{s:s, s:s, s:o, s:s, s:s, s:s?, s:s?, s:s, s:s, s:f, s:f, s:I, s:I, s:I, s:I, "
        "s:I}",
        "id", id, "direction", st->outbound ? "out" : "in", "pairs", pairs, "peer", st->peer,
        "state", st->ops->state(st->session), "tls_version", tls, "cipher", cipher, "certificate",
        ctl_cert_status(st->auth), "auth", peerauth_method_name(st->auth->method), "age",
        now - st->started, "idle", stream_idle(st, now), "stanzas_in", (json_int_t)st->stanzas_in,
        "stanzas_out", (json_int_t)st->stanzas_out, "bytes_in",
        (json_int_t)(cs != NULL ? cs->bytes_in : 0), "bytes_out",
        (json_int_t)(cs != NULL ? cs->bytes_out : 0), "queue", (json_int_t)stream_queued(env, st));
    if (st->outbound) {
        json_object_set_new(o, "dnssec", json_boolean(st->auth->dnssec));
        json_object_set_new(o, "dane", json_boolean(st->auth->dane));
    }
    return o;
}

static json_t *
answer_streams(const struct ctl_env *env)
{
    const struct s2s_stream *st;
    json_t *a = json_array();
    double now = s2s_now();

    TAILQ_FOREACH(st, &s2s_streams, entry)
    json_array_append_new(a, stream_json(env, st, now));
    return json_pack("{s:o}", "streams", a);
}

/* --- domains: the weakest terms among a remote domain's streams ----------------------- */

static int
cert_rank(const char *s)
{
    static const char *const order[] = {"none", "untrusted", "expired", "wrong-name", "valid"};

    for (int i = 0; i < 5; i++)
        if (strcmp(s, order[i]) == 0)
            return i;
    return 0;
}

static int
auth_rank(enum peerauth_method m)
{
    switch (m) {
    case PEERAUTH_SASL_EXTERNAL:
        return 3;
    case PEERAUTH_CERT_DIALBACK:
        return 2;
    case PEERAUTH_DIALBACK:
        return 1;
    default:
        return 0;
    }
}

static json_t *
domain_get(json_t *domains, const char *remote)
{
    json_t *d = json_object_get(domains, remote);

    if (d != NULL)
        return d;
    d = json_pack("{s:i, s:i, s:I, s:I, s:I, s:n, s:n, s:n, s:n, s:b, s:b, s:n, s:n}", "streams_in",
                  0, "streams_out", 0, "stanzas_in", (json_int_t)0, "stanzas_out", (json_int_t)0,
                  "queue", (json_int_t)0, "tls_version", "certificate", "auth", "routes", "dnssec",
                  1, "dane", 1, "last_error", "retry_in");
    json_object_set_new(d, "routes", json_array());
    json_object_set_new(domains, remote, d);
    return d;
}

static void
json_add_int(json_t *o, const char *key, json_int_t v)
{
    json_object_set_new(o, key, json_integer(json_integer_value(json_object_get(o, key)) + v));
}

/* One stream's terms, folded into its remote domain's: the weaker wins. */
static void
domain_fold(json_t *d, const struct s2s_stream *st)
{
    const char *tls, *cipher, *cert = ctl_cert_status(st->auth), *cur;
    json_t *v;

    tls = stream_tls(st, &cipher);
    json_add_int(d, st->outbound ? "streams_out" : "streams_in", 1);
    json_add_int(d, "stanzas_in", (json_int_t)st->stanzas_in);
    json_add_int(d, "stanzas_out", (json_int_t)st->stanzas_out);
    v = json_object_get(d, "tls_version");
    cur = json_string_value(v);
    if (json_is_null(v) || (tls == NULL && strcmp(cur, "none") != 0) ||
        (tls != NULL && strcmp(cur, "none") != 0 && strcmp(tls, cur) < 0))
        json_object_set_new(d, "tls_version", json_string(tls != NULL ? tls : "none"));
    v = json_object_get(d, "certificate");
    if (json_is_null(v) || cert_rank(cert) < cert_rank(json_string_value(v)))
        json_object_set_new(d, "certificate", json_string(cert));
    v = json_object_get(d, "auth");
    if (json_is_null(v) ||
        auth_rank(st->auth->method) < json_integer_value(json_object_get(d, "auth_rank"))) {
        json_object_set_new(d, "auth", json_string(peerauth_method_name(st->auth->method)));
        json_object_set_new(d, "auth_rank", json_integer(auth_rank(st->auth->method)));
    }
    if (st->outbound) {
        if (!st->auth->dnssec)
            json_object_set_new(d, "dnssec", json_false());
        if (!st->auth->dane)
            json_object_set_new(d, "dane", json_false());
    }
}

static void
domain_remote_cb(const struct pool_remote_info *ri, void *arg)
{
    json_t *d = domain_get(arg, ri->domain);

    json_object_set_new(
        d, "last_error",
        json_pack("{s:s, s:s}", "condition", xmpp_stanza_error_name(ri->cond), "reason", ri->why));
    json_object_set_new(d, "retry_in", json_real(ri->retry_in));
}

static void
domain_route_cb(const char *local, const char *remote, const char *state, size_t queued, void *arg)
{
    json_t *d = domain_get(arg, remote);

    json_array_append_new(
        json_object_get(d, "routes"),
        json_pack("{s:s, s:s, s:I}", "local", local, "state", state, "queue", (json_int_t)queued));
    json_add_int(d, "queue", (json_int_t)queued);
}

static json_t *
answer_domains(const struct ctl_env *env)
{
    const struct s2s_stream *st;
    json_t *domains = json_object(), *d;
    const char *k;

    TAILQ_FOREACH(st, &s2s_streams, entry)
    {
        /* one stream counts once per remote domain it carries */
        for (size_t i = 0; i < st->npairs; i++) {
            bool seen = false;

            for (size_t j = 0; j < i; j++)
                seen = seen || strcmp(st->pairs[j].remote, st->pairs[i].remote) == 0;
            if (!seen)
                domain_fold(domain_get(domains, st->pairs[i].remote), st);
        }
    }
    if (env->pool != NULL) {
        pool_foreach_remote(env->pool, domain_remote_cb, domains);
        pool_foreach_route(env->pool, domain_route_cb, domains);
    }
    json_object_foreach(domains, k, d)
    {
        json_object_del(d, "auth_rank");
        if (json_is_null(json_object_get(d, "auth")))
            json_object_set_new(d, "auth", json_string("none"));
        if (json_is_null(json_object_get(d, "certificate")))
            json_object_set_new(d, "certificate", json_string("none"));
    }
    return json_pack("{s:o}", "domains", domains);
}

/* --- stats --------------------------------------------------------------------------- */

static json_t *
link_json(const struct local *l)
{
    const struct local_stats *ls = local_stats(l);

    return json_pack("{s:s, s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "domain",
                     local_domain(l), "state", local_strstate(l), "up", local_is_up(l), "to_local",
                     (json_int_t)ls->to_local, "delivered", (json_int_t)ls->delivered, "bounced",
                     (json_int_t)(ls->bounced_timeout + ls->bounced_shutdown), "refused",
                     (json_int_t)ls->refused, "from_local", (json_int_t)ls->from_local, "queued",
                     (json_int_t)ls->queued, "inflight", (json_int_t)ls->inflight, "disconnects",
                     (json_int_t)ls->disconnects);
}

static json_t *policy_counters_json(void);

/* Inbound policy outcomes, drops by reason, policy and XEP-0199 ping counters. */
static void
stats_more(json_t *o)
{
    const struct s2s_stats *s = &s2s_stats;
    json_t *in = json_object_get(o, "inbound"), *dropped = json_object(), *pol;

    json_object_set_new(in, "bounced", json_integer((json_int_t)s->in_bounced));
    json_object_set_new(in, "dropped", json_integer((json_int_t)s->in_dropped));
    for (int i = 0; i < S2S_DROP_COUNT; i++)
        if (s->dropped_by[i] > 0)
            json_object_set_new(dropped, s2s_drop_reason_name((enum s2s_drop_reason)i),
                                json_integer((json_int_t)s->dropped_by[i]));
    json_object_set_new(o, "dropped_by", dropped);
    pol = policy_counters_json();
    json_object_set(o, "policy", json_object_get(pol, "counters"));
    json_decref(pol);
    json_object_set_new(o, "ping",
                        json_pack("{s:I, s:I, s:I, s:I}", "sent", (json_int_t)ping_counts.sent,
                                  "answered", (json_int_t)ping_counts.answered, "late",
                                  (json_int_t)ping_counts.late, "stale",
                                  (json_int_t)ping_counts.stale));
}

static json_t *
answer_stats(const struct ctl_env *env)
{
    const struct s2s_stats *s = &s2s_stats;
    json_t *bounced = json_object(), *links = json_array(), *o;
    size_t nin = 0, nout = 0;
    const struct s2s_stream *st;

    for (int i = 0; i < XMPP_STANZA_ERR_COUNT; i++)
        if (s->bounced_by[i] > 0)
            json_object_set_new(bounced, xmpp_stanza_error_name((enum xmpp_stanza_error)i),
                                json_integer((json_int_t)s->bounced_by[i]));
    for (size_t i = 0; i < env->nlocals; i++)
        if (env->locals[i] != NULL)
            json_array_append_new(links, link_json(env->locals[i]));
    TAILQ_FOREACH(st, &s2s_streams, entry)
    st->outbound ? nout++ : nin++;
    o = json_pack("{s:{s:I, s:I}, s:{s:I, s:I, s:I, s:I, s:o}, s:{s:I, s:I, s:I}, s:{s:I, s:I, "
                  "s:I, s:I}, s:o}",
                  "inbound", "accepted", (json_int_t)s->in_accepted, "rejected",
                  (json_int_t)s->in_rejected, "outbound", "accepted", (json_int_t)s->out_accepted,
                  "delivered", (json_int_t)s->out_delivered, "bounced", (json_int_t)s->out_bounced,
                  "dropped", (json_int_t)s->out_dropped, "bounced_by", bounced, "auth", "sasl",
                  (json_int_t)s->auth_sasl, "dialback", (json_int_t)s->auth_dialback, "failed",
                  (json_int_t)s->auth_failed, "streams", "opened_in", (json_int_t)s->in_streams,
                  "opened_out", (json_int_t)s->out_streams, "live_in", (json_int_t)nin, "live_out",
                  (json_int_t)nout, "links", links);
    stats_more(o);
    if (env->res != NULL) {
        struct dns_stats ds;

        dns_resolver_stats(env->res, &ds);
        json_object_set_new(
            o, "dns",
            json_pack("{s:I, s:I, s:I, s:I}", "queries", (json_int_t)ds.queries_sent, "cache_hits",
                      (json_int_t)ds.cache_hits, "in_flight", (json_int_t)ds.in_flight,
                      "cache_entries", (json_int_t)ds.entries));
    }
    return o;
}

/* --- actions ------------------------------------------------------------------------- */

static bool
stream_has_remote(const struct s2s_stream *st, const char *domain)
{
    for (size_t i = 0; i < st->npairs; i++)
        if (strcasecmp(st->pairs[i].remote, domain) == 0)
            return true;
    return false;
}

/*
 * Ids are collected first: closing a stream can run pool callbacks that touch other
 * streams, so each one is looked up again before it is closed.
 */
static json_t *
answer_close(const char *target)
{
    struct s2s_stream *st;
    json_t *ids = json_array(), *v;
    size_t i;
    char id[32];

    TAILQ_FOREACH(st, &s2s_streams, entry)
    {
        ctl_stream_id(st, id, sizeof(id));
        if (strcmp(id, target) == 0 || stream_has_remote(st, target))
            json_array_append_new(ids, json_string(id));
    }
    if (json_array_size(ids) == 0) {
        json_decref(ids);
        return error_json("no live stream with id or remote domain \"%s\"", target);
    }
    json_array_foreach(ids, i, v)
    {
        if ((st = s2s_stream_find(json_string_value(v))) == NULL)
            continue;
        log_info("ctl: closing stream id=%s peer=%s (operator request)", json_string_value(v),
                 st->peer);
        st->ops->close(st->session, "closed by the operator (ctl close)");
    }
    return json_pack("{s:o}", "closed", ids);
}

static json_t *
answer_reload(const struct ctl_env *env)
{
    char err[1024];

    if (env->d == NULL)
        return json_pack("{s:s}", "error", "reload: no daemon");
    if (daemon_shutting_down(env->d)) /* as for SIGHUP: it would re-open what just closed */
        return json_pack("{s:s}", "error", "reload refused: shutting down");
    if (daemon_reload_why(env->d, err, sizeof(err)) == -1)
        return error_json("reload refused, running configuration kept: %s", err);
    return json_pack("{s:s}", "reloaded", daemon_conf(env->d)->path);
}

/* The policy the engine runs: the test's, or the running configuration's. */
static const struct policy *
env_policy(const struct ctl_env *env)
{
    if (env->policy != NULL)
        return env->policy;
    if (env->d != NULL)
        return daemon_conf(env->d)->policy;
    return NULL;
}

/* The policy counters and refusals by rule since start (they outlive reloads). */
static json_t *
policy_counters_json(void)
{
    const struct s2s_stats *s = &s2s_stats;
    const struct s2s_policy_count *pc;
    json_t *refusals = json_array(), *row;
    size_t n;

    pc = s2s_policy_counts(&n);
    for (size_t i = 0; i < n; i++) {
        row = json_pack("{s:s}", "rule", pc[i].rule);
        for (size_t w = 0; w < S2S_POLICY_WHATS; w++)
            json_object_set_new(row, s2s_policy_whats[w],
                                json_integer((json_int_t)pc[i].by_what[w]));
        json_array_append_new(refusals, row);
    }
    return json_pack("{s:{s:I, s:I, s:I, s:I, s:I}, s:o}", "counters", "bounced",
                     (json_int_t)s->policy_bounced, "dropped", (json_int_t)s->policy_dropped,
                     "refused", (json_int_t)s->policy_refused, "paused",
                     (json_int_t)s->policy_paused, "held", (json_int_t)s->policy_held, "refusals",
                     refusals);
}

/* Stanza rules in order with their hits (the default last), and the refusal counters. */
static json_t *
answer_policy(const struct ctl_env *env)
{
    const struct policy *p = env_policy(env);
    struct policy_rule_info ri;
    json_t *o = policy_counters_json(), *rules = json_array();
    bool configured = false;

    for (size_t i = 0; p != NULL && policy_rule_info(p, i, &ri); i++) {
        json_array_append_new(rules,
                              json_pack("{s:s, s:s?, s:I, s:I}", "name", ri.name, "file", ri.file,
                                        "line", (json_int_t)ri.line, "hits", (json_int_t)ri.hits));
        configured |= ri.file != NULL;
    }
    json_object_set_new(o, "configured", json_boolean(configured));
    json_object_set_new(o, "rules", rules);
    return o;
}

json_t *
ctl_answer(const struct ctl_env *env, const char *line)
{
    char cmd[32], arg[CTL_MAX_LINE], extra[8];
    int n;

    /* commands, domains (A-labels) and stream ids are printable ASCII; anything else
     * could not even be echoed back in a JSON string (jansson wants UTF-8) */
    for (const unsigned char *p = (const unsigned char *)line; *p != '\0'; p++)
        if ((*p < 0x20 && *p != '\t') || *p > 0x7e)
            return json_pack("{s:s}", "error", "the request must be printable ASCII");
    arg[0] = '\0';
    n = sscanf(line, "%31s %1023s %7s", cmd, arg, extra);
    if (n <= 0)
        return json_pack("{s:s}", "error",
                         "empty command; try: streams, domains, stats, close "
                         "DOMAIN|STREAM-ID, reload, policy");
    if (strcmp(cmd, "close") == 0) {
        if (n != 2)
            return json_pack("{s:s}", "error", "usage: close DOMAIN|STREAM-ID");
        return answer_close(arg);
    }
    if (n != 1)
        return error_json("%s: takes no argument", cmd);
    if (strcmp(cmd, "streams") == 0)
        return answer_streams(env);
    if (strcmp(cmd, "domains") == 0)
        return answer_domains(env);
    if (strcmp(cmd, "stats") == 0)
        return answer_stats(env);
    if (strcmp(cmd, "reload") == 0)
        return answer_reload(env);
    if (strcmp(cmd, "policy") == 0)
        return answer_policy(env);
    return error_json("unknown command \"%s\"; try: streams, domains, stats, close "
                      "DOMAIN|STREAM-ID, reload, policy",
                      cmd);
}

/* --- the socket ---------------------------------------------------------------------- */

static void
client_free(struct ctl_client *cl)
{
    cl->c->nclients--;
    bufferevent_free(cl->bev);
    free(cl);
}

static void
client_write_cb(struct bufferevent *bev, void *arg)
{
    struct ctl_client *cl = arg;

    (void)bev;
    if (cl->answered)
        client_free(cl);
}

static void
client_answer(struct ctl_client *cl, json_t *ans)
{
    char *text = ans != NULL ? json_dumps(ans, JSON_COMPACT) : NULL;

    json_decref(ans);
    if (text == NULL && (text = strdup("{\"error\":\"internal error: no answer\"}")) == NULL)
        fatal("strdup");
    cl->answered = true;
    bufferevent_disable(cl->bev, EV_READ);
    bufferevent_write(cl->bev, text, strlen(text));
    bufferevent_write(cl->bev, "\n", 1);
    free(text);
}

static void
client_read_cb(struct bufferevent *bev, void *arg)
{
    struct ctl_client *cl = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len;
    char *line;

    if (cl->answered)
        return;
    if ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF)) == NULL) {
        if (evbuffer_get_length(in) > CTL_MAX_LINE)
            client_answer(cl, json_pack("{s:s}", "error", "request line too long"));
        return;
    }
    if (len > 0 && line[len - 1] == '\r')
        line[--len] = '\0';
    log_debug("ctl: request \"%s\"", line);
    client_answer(cl, len > CTL_MAX_LINE ? json_pack("{s:s}", "error", "request line too long")
                                         : ctl_answer(&cl->c->env, line));
    free(line);
}

static void
client_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    (void)what;
    client_free(arg); /* EOF before the line, error or timeout */
}

static void
accept_cb(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    struct ctl *c = arg;
    struct ctl_client *cl;
    struct timeval tv = {CTL_TIMEOUT, 0};

    (void)lis;
    (void)sa;
    (void)salen;
    if (c->nclients >= CTL_MAX_CLIENTS) {
        log_warn("ctl: %u clients already, connection refused", c->nclients);
        close(fd);
        return;
    }
    if ((cl = calloc(1, sizeof(*cl))) == NULL)
        fatal("calloc");
    cl->c = c;
    if ((cl->bev = bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL)
        fatalx("%s: bufferevent_socket_new", __func__);
    c->nclients++;
    bufferevent_setcb(cl->bev, client_read_cb, client_write_cb, client_event_cb, cl);
    bufferevent_set_timeouts(cl->bev, &tv, &tv);
    bufferevent_enable(cl->bev, EV_READ | EV_WRITE);
}

/* A socket file left by a daemon that died is replaced; a live one is not stolen. */
static int
stale_remove(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct stat st;
    int fd, rc;

    if (lstat(path, &st) == -1)
        return 0;
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "ctl: %s exists and is not a socket", path);
        return -1;
    }
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1)
        return 0;
    rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
    close(fd);
    if (rc == 0) {
        snprintf(err, errlen, "ctl: %s: another daemon answers there", path);
        return -1;
    }
    unlink(path);
    return 0;
}

struct ctl *
ctl_new(struct event_base *base, const char *path, const struct ctl_env *env, char *err,
        size_t errlen)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct ctl *c;
    mode_t old;
    int fd;

    if (strlen(path) >= sizeof(sun.sun_path)) {
        snprintf(err, errlen, "ctl: %s: path too long", path);
        return NULL;
    }
    if (stale_remove(path, err, errlen) == -1)
        return NULL;
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1) {
        snprintf(err, errlen, "ctl: socket: %s", strerror(errno));
        return NULL;
    }
    /* 0600 from the start: no window in which another user could connect. */
    old = umask(0177);
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
        umask(old);
        snprintf(err, errlen, "ctl: bind %s: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    umask(old);
    if (chmod(path, 0600) == -1) {
        snprintf(err, errlen, "ctl: chmod %s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return NULL;
    }
    if ((c = calloc(1, sizeof(*c))) == NULL || (c->path = strdup(path)) == NULL)
        fatal("calloc");
    c->base = base;
    c->env = *env;
    c->lis = evconnlistener_new(base, accept_cb, c, LEV_OPT_CLOSE_ON_FREE, 16, fd);
    if (c->lis == NULL) {
        snprintf(err, errlen, "ctl: listen %s failed", path);
        close(fd);
        unlink(path);
        free(c->path);
        free(c);
        return NULL;
    }
    log_info("ctl: listening on %s", path);
    return c;
}

void
ctl_free(struct ctl *c)
{
    if (c == NULL)
        return;
    evconnlistener_free(c->lis);
    unlink(c->path);
    free(c->path);
    free(c);
}
