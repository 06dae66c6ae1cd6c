/*
 * Prometheus metrics (see metrics.h). A scrape reads the counters and walks the live
 * streams once; nothing here runs per stanza. The per-domain traffic table is updated
 * when a stream closes (stream hook), bounded by METRICS_MAX_DOMAINS.
 */
#include "s2s/metrics.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "dns/resolver.h"
#include "s2s/audit.h"
#include "s2s/audit_tls.h"
#include "s2s/conf.h"
#include "s2s/conn.h"
#include "s2s/ctl.h"
#include "s2s/daemon.h"
#include "s2s/local.h"
#include "s2s/log.h"
#include "s2s/peerauth.h"
#include "s2s/ping.h"
#include "s2s/policy.h"
#include "s2s/pool.h"
#include "s2s/stats.h"
#include "s2s/tls.h"

#define MAX_COMBOS 256 /* stream label combinations: 2 x 8 x 4 x 4 at most */

struct metrics {
    struct event_base *base;
    struct evhttp *http;
    struct metrics_env env;
    unsigned nprobes;
};

struct probe {
    struct metrics *m;
    struct evhttp_request *req;
    struct audit_run *run;
    struct audit_tls *tls;
};

/* Stanzas of closed streams per remote domain (the first pair's remote). */
struct domain_traffic {
    char domain[S2S_STREAM_DOMAIN];
    uint64_t in, out;
};
static struct domain_traffic *traffic;
static size_t ntraffic;

/* --- writing the exposition ----------------------------------------------------------- */

void
metrics_label_escape(const char *in, char *out, size_t len)
{
    size_t o = 0;

    for (; *in != '\0' && o + 3 < len; in++) {
        if (*in == '\\' || *in == '"') {
            out[o++] = '\\';
            out[o++] = *in;
        } else if (*in == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else
            out[o++] = *in;
    }
    out[o] = '\0';
}

static void
header(struct evbuffer *out, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
hist(struct evbuffer *out, const char *name, const char *help, const struct s2s_hist *h)
{
    uint64_t cum = 0;

    header(out, name, "histogram", help);
    for (size_t i = 0; i < S2S_HIST_NBOUNDS; i++) {
        cum += h->bucket[i];
        evbuffer_add_printf(out, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name, s2s_hist_bounds[i],
                            cum);
    }
    evbuffer_add_printf(out, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, h->count);
    evbuffer_add_printf(out, "%s_sum %.6f\n%s_count %" PRIu64 "\n", name, h->sum, name, h->count);
}

/* --- streams --------------------------------------------------------------------------- */

struct combo {
    bool outbound;
    const char *state, *auth, *tls;
    unsigned n;
};

static void
render_streams(struct evbuffer *out)
{
    struct combo c[MAX_COMBOS];
    size_t nc = 0, i;
    const struct s2s_stream *st;
    const struct conn *cn;

    TAILQ_FOREACH(st, &s2s_streams, entry)
    {
        const char *state = st->ops->state(st->session);
        const char *auth = peerauth_method_name(st->auth->method);
        const char *tls = st->auth->tls_version;

        if (tls == NULL && (cn = st->ops->conn(st->session)) != NULL && conn_tls_info(cn) != NULL)
            tls = conn_tls_info(cn)->version;
        if (tls == NULL)
            tls = "none";
        for (i = 0; i < nc; i++)
            if (c[i].outbound == st->outbound && strcmp(c[i].state, state) == 0 &&
                strcmp(c[i].auth, auth) == 0 && strcmp(c[i].tls, tls) == 0)
                break;
        if (i == nc) {
            if (nc == MAX_COMBOS)
                continue; /* cannot happen with the enums we have */
            c[nc++] = (struct combo){st->outbound, state, auth, tls, 0};
        }
        c[i].n++;
    }
    header(out, "s2sproxy_streams", "gauge",
           "Live s2s streams by direction, state, authentication method and TLS version.");
    for (i = 0; i < nc; i++)
        evbuffer_add_printf(out,
                            "s2sproxy_streams{direction=\"%s\",state=\"%s\",auth=\"%s\","
                            "tls_version=\"%s\"} %u\n",
                            c[i].outbound ? "out" : "in", c[i].state, c[i].auth, c[i].tls, c[i].n);
}

static void
render_counters(struct evbuffer *out)
{
    const struct s2s_stats *s = &s2s_stats;

    header(out, "s2sproxy_stanzas_total", "counter",
           "Stanzas by direction and outcome (out: accepted = delivered + bounced + dropped + "
           "queued).");
    evbuffer_add_printf(
        out,
        "s2sproxy_stanzas_total{direction=\"in\",outcome=\"accepted\"} %" PRIu64 "\n"
        "s2sproxy_stanzas_total{direction=\"in\",outcome=\"rejected\"} %" PRIu64 "\n"
        "s2sproxy_stanzas_total{direction=\"in\",outcome=\"bounced\"} %" PRIu64 "\n"
        "s2sproxy_stanzas_total{direction=\"in\",outcome=\"dropped\"} %" PRIu64 "\n"
        "s2sproxy_stanzas_total{direction=\"out\",outcome=\"accepted\"} %" PRIu64 "\n"
        "s2sproxy_stanzas_total{direction=\"out\",outcome=\"delivered\"} %" PRIu64 "\n"
        "s2sproxy_stanzas_total{direction=\"out\",outcome=\"bounced\"} %" PRIu64 "\n"
        "s2sproxy_stanzas_total{direction=\"out\",outcome=\"dropped\"} %" PRIu64 "\n",
        s->in_accepted, s->in_rejected, s->in_bounced, s->in_dropped, s->out_accepted,
        s->out_delivered, s->out_bounced, s->out_dropped);
    header(out, "s2sproxy_bounces_total", "counter",
           "Stanzas bounced to their sender, by condition.");
    for (int i = 0; i < XMPP_STANZA_ERR_COUNT; i++)
        if (s->bounced_by[i] > 0)
            evbuffer_add_printf(out, "s2sproxy_bounces_total{condition=\"%s\"} %" PRIu64 "\n",
                                xmpp_stanza_error_name((enum xmpp_stanza_error)i),
                                s->bounced_by[i]);
    header(out, "s2sproxy_dropped_total", "counter",
           "Stanzas dropped (neither delivered nor bounced), both directions, by reason.");
    for (int i = 0; i < S2S_DROP_COUNT; i++)
        evbuffer_add_printf(out, "s2sproxy_dropped_total{reason=\"%s\"} %" PRIu64 "\n",
                            s2s_drop_reason_name((enum s2s_drop_reason)i), s->dropped_by[i]);
    header(out, "s2sproxy_pings_total", "counter",
           "XEP-0199 pings on stale outbound streams: sent, answered, answered late, stale.");
    evbuffer_add_printf(out,
                        "s2sproxy_pings_total{result=\"sent\"} %" PRIu64 "\n"
                        "s2sproxy_pings_total{result=\"answered\"} %" PRIu64 "\n"
                        "s2sproxy_pings_total{result=\"late\"} %" PRIu64 "\n"
                        "s2sproxy_pings_total{result=\"stale\"} %" PRIu64 "\n",
                        ping_counts.sent, ping_counts.answered, ping_counts.late,
                        ping_counts.stale);
    header(out, "s2sproxy_streams_opened_total", "counter", "Streams opened, by direction.");
    evbuffer_add_printf(out,
                        "s2sproxy_streams_opened_total{direction=\"in\"} %" PRIu64 "\n"
                        "s2sproxy_streams_opened_total{direction=\"out\"} %" PRIu64 "\n",
                        s->in_streams, s->out_streams);
    header(out, "s2sproxy_authentications_total", "counter",
           "Peer authentications by result (sasl, dialback, failed).");
    evbuffer_add_printf(out,
                        "s2sproxy_authentications_total{result=\"sasl\"} %" PRIu64 "\n"
                        "s2sproxy_authentications_total{result=\"dialback\"} %" PRIu64 "\n"
                        "s2sproxy_authentications_total{result=\"failed\"} %" PRIu64 "\n",
                        s->auth_sasl, s->auth_dialback, s->auth_failed);
    hist(out, "s2sproxy_dns_latency_seconds", "Route DNS step: targets asked to answered.",
         &s->dns_latency);
    hist(out, "s2sproxy_tls_handshake_seconds", "TLS handshakes, both directions.",
         &s->tls_handshake);
    hist(out, "s2sproxy_route_setup_seconds", "Outbound route start to authenticated stream.",
         &s->route_setup);
}

static void
render_dns(struct evbuffer *out, struct dns_resolver *res)
{
    struct dns_stats ds;

    if (res == NULL)
        return;
    dns_resolver_stats(res, &ds);
    header(out, "s2sproxy_dns_queries_total", "counter", "DNS queries sent to the backend.");
    evbuffer_add_printf(out, "s2sproxy_dns_queries_total %" PRIu64 "\n", ds.queries_sent);
    header(out, "s2sproxy_dns_cache_hits_total", "counter", "DNS lookups answered from cache.");
    evbuffer_add_printf(out, "s2sproxy_dns_cache_hits_total %" PRIu64 "\n", ds.cache_hits);
    header(out, "s2sproxy_dns_in_flight", "gauge", "DNS queries outstanding.");
    evbuffer_add_printf(out, "s2sproxy_dns_in_flight %" PRIu64 "\n", ds.in_flight);
}

struct route_sum {
    size_t queued, n[8];
    const char *names[8];
};

static void
route_cb(const char *local, const char *remote, const char *state, size_t queued, void *arg)
{
    struct route_sum *rs = arg;
    size_t i;

    (void)local;
    (void)remote;
    rs->queued += queued;
    for (i = 0; i < 8 && rs->names[i] != NULL && strcmp(rs->names[i], state) != 0; i++)
        ;
    if (i == 8)
        return;
    rs->names[i] = state;
    rs->n[i]++;
}

static void
render_pool(struct evbuffer *out, const struct pool *p)
{
    struct route_sum rs = {0};

    if (p == NULL)
        return;
    pool_foreach_route(p, route_cb, &rs);
    header(out, "s2sproxy_route_queue_stanzas", "gauge",
           "Stanzas waiting for an outbound route (all routes).");
    evbuffer_add_printf(out, "s2sproxy_route_queue_stanzas %zu\n", rs.queued);
    header(out, "s2sproxy_routes", "gauge", "Outbound routes by state.");
    for (size_t i = 0; i < 8 && rs.names[i] != NULL; i++)
        evbuffer_add_printf(out, "s2sproxy_routes{state=\"%s\"} %zu\n", rs.names[i], rs.n[i]);
}

static void
render_links(struct evbuffer *out, struct local *const *locals, size_t n)
{
    char d[512];

    header(out, "s2sproxy_local_link_up", "gauge",
           "Component link to the local server is up (1) or not (0), per hosted domain.");
    for (size_t i = 0; i < n; i++)
        if (locals[i] != NULL) {
            metrics_label_escape(local_domain(locals[i]), d, sizeof(d));
            evbuffer_add_printf(out, "s2sproxy_local_link_up{domain=\"%s\"} %d\n", d,
                                local_is_up(locals[i]) ? 1 : 0);
        }
    header(out, "s2sproxy_local_link_queue_stanzas", "gauge",
           "Stanzas waiting for the local server, per hosted domain.");
    for (size_t i = 0; i < n; i++)
        if (locals[i] != NULL) {
            metrics_label_escape(local_domain(locals[i]), d, sizeof(d));
            evbuffer_add_printf(out, "s2sproxy_local_link_queue_stanzas{domain=\"%s\"} %zu\n", d,
                                local_stats(locals[i])->queued);
        }
}

static void
render_process(struct evbuffer *out)
{
    unsigned long size = 0, resident = 0;
    unsigned nfds = 0;
    struct dirent *de;
    FILE *fp;
    DIR *dir;

    /* /proc reads are memory reads: they do not block the loop. */
    if ((fp = fopen("/proc/self/statm", "r")) != NULL) {
        if (fscanf(fp, "%lu %lu", &size, &resident) != 2)
            resident = 0;
        fclose(fp);
    }
    if ((dir = opendir("/proc/self/fd")) != NULL) {
        while ((de = readdir(dir)) != NULL)
            if (de->d_name[0] != '.')
                nfds++;
        closedir(dir);
        nfds--; /* the directory itself */
    }
    header(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    evbuffer_add_printf(out, "process_resident_memory_bytes %lu\n",
                        resident * (unsigned long)sysconf(_SC_PAGESIZE));
    header(out, "process_open_fds", "gauge", "Number of open file descriptors.");
    evbuffer_add_printf(out, "process_open_fds %u\n", nfds);
}

/* --- per remote domain ---------------------------------------------------------------- */

static struct domain_traffic *
traffic_find(struct domain_traffic *t, size_t n, const char *domain)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(t[i].domain, domain) == 0)
            return &t[i];
    return NULL;
}

static void
traffic_hook(enum s2s_stream_event ev, const struct s2s_stream *st)
{
    struct domain_traffic *t;

    if (ev != S2S_STREAM_CLOSED || st->npairs == 0)
        return;
    if ((t = traffic_find(traffic, ntraffic, st->pairs[0].remote)) == NULL) {
        if (ntraffic == METRICS_MAX_DOMAINS)
            return; /* bounded: the rest are not tracked per domain */
        t = &traffic[ntraffic++];
        snprintf(t->domain, sizeof(t->domain), "%s", st->pairs[0].remote);
    }
    t->in += st->stanzas_in;
    t->out += st->stanzas_out;
}

void
metrics_track_domains(void)
{
    if (traffic == NULL && (traffic = calloc(METRICS_MAX_DOMAINS, sizeof(*traffic))) == NULL)
        fatal("calloc");
    s2s_stream_hook_add(traffic_hook);
}

static int
traffic_cmp(const void *a, const void *b)
{
    const struct domain_traffic *x = a, *y = b;
    uint64_t tx = x->in + x->out, ty = y->in + y->out;

    return tx < ty ? 1 : tx > ty ? -1 : strcmp(x->domain, y->domain);
}

static bool
configured(const struct conf_metrics *mc, const char *domain)
{
    for (size_t i = 0; i < mc->ndomains; i++)
        if (strcmp(mc->domains[i], domain) == 0)
            return true;
    return false;
}

static void
render_domains(struct evbuffer *out, const struct conf_metrics *mc)
{
    struct domain_traffic *all, *t;
    const struct s2s_stream *st;
    size_t n = ntraffic, nlive = 0, top = 0;
    char d[512];

    TAILQ_FOREACH(st, &s2s_streams, entry)
    nlive++;
    if ((all = calloc(n + nlive + mc->ndomains + 1, sizeof(*all))) == NULL)
        fatal("calloc");
    if (n > 0)
        memcpy(all, traffic, n * sizeof(*all));
    TAILQ_FOREACH(st, &s2s_streams, entry)
    {
        if (st->npairs == 0)
            continue;
        if ((t = traffic_find(all, n, st->pairs[0].remote)) == NULL) {
            t = &all[n++];
            snprintf(t->domain, sizeof(t->domain), "%s", st->pairs[0].remote);
        }
        t->in += st->stanzas_in;
        t->out += st->stanzas_out;
    }
    for (size_t i = 0; i < mc->ndomains; i++)
        if (traffic_find(all, n, mc->domains[i]) == NULL)
            snprintf(all[n++].domain, sizeof(all->domain), "%s", mc->domains[i]);
    qsort(all, n, sizeof(*all), traffic_cmp);
    header(out, "s2sproxy_domain_stanzas_total", "counter",
           "Stanzas per remote domain and direction (configured domains and the busiest "
           "top_domains others).");
    for (size_t i = 0; i < n; i++) {
        bool conf = configured(mc, all[i].domain);

        if (!conf && top >= mc->top_domains)
            continue;
        if (!conf)
            top++;
        metrics_label_escape(all[i].domain, d, sizeof(d));
        evbuffer_add_printf(out,
                            "s2sproxy_domain_stanzas_total{domain=\"%s\",direction=\"in\"} %" PRIu64
                            "\n"
                            "s2sproxy_domain_stanzas_total{domain=\"%s\",direction=\"out\"} "
                            "%" PRIu64 "\n",
                            d, all[i].in, d, all[i].out);
    }
    free(all);
}

/*
 * Policy decisions: the actions taken, the stanza rules' hits (the running policy's; a
 * reload starts them again), refusals by rule since start. Rule names come from the
 * configuration (and "default", "other"): a bounded label set. Rules sharing a name are
 * summed into one series.
 */
static void
render_policy(struct evbuffer *out, const struct policy *p)
{
    const struct s2s_stats *s = &s2s_stats;
    const struct s2s_policy_count *pc;
    struct policy_rule_info ri, rj;
    char name[192];
    size_t n;

    header(out, "s2sproxy_policy_actions_total", "counter",
           "Policy actions: stanzas bounced or dropped, streams refused, inbound reads paused "
           "and outbound queues held by a rate limit.");
    evbuffer_add_printf(out,
                        "s2sproxy_policy_actions_total{action=\"bounced\"} %" PRIu64 "\n"
                        "s2sproxy_policy_actions_total{action=\"dropped\"} %" PRIu64 "\n"
                        "s2sproxy_policy_actions_total{action=\"refused\"} %" PRIu64 "\n"
                        "s2sproxy_policy_actions_total{action=\"paused\"} %" PRIu64 "\n"
                        "s2sproxy_policy_actions_total{action=\"held\"} %" PRIu64 "\n",
                        s->policy_bounced, s->policy_dropped, s->policy_refused, s->policy_paused,
                        s->policy_held);
    header(out, "s2sproxy_policy_rule_hits_total", "counter",
           "Stanzas decided by each stanza rule of the running policy (default: no rule "
           "matched).");
    for (size_t i = 0; p != NULL && policy_rule_info(p, i, &ri); i++) {
        bool seen = false;
        uint64_t hits = ri.hits;

        for (size_t j = 0; j < i && !seen; j++)
            seen = policy_rule_info(p, j, &rj) && strcmp(rj.name, ri.name) == 0;
        if (seen)
            continue;
        for (size_t j = i + 1; policy_rule_info(p, j, &rj); j++)
            if (strcmp(rj.name, ri.name) == 0)
                hits += rj.hits;
        metrics_label_escape(ri.name, name, sizeof(name));
        evbuffer_add_printf(out, "s2sproxy_policy_rule_hits_total{rule=\"%s\"} %" PRIu64 "\n", name,
                            hits);
    }
    header(out, "s2sproxy_policy_refusals_total", "counter",
           "Policy refusals by the rule or domains entry that decided and by what was refused "
           "(stream, route, stanza).");
    pc = s2s_policy_counts(&n);
    for (size_t i = 0; i < n; i++) {
        metrics_label_escape(pc[i].rule, name, sizeof(name));
        for (size_t w = 0; w < S2S_POLICY_WHATS; w++)
            evbuffer_add_printf(
                out, "s2sproxy_policy_refusals_total{rule=\"%s\",kind=\"%s\"} %" PRIu64 "\n", name,
                s2s_policy_whats[w], pc[i].by_what[w]);
    }
}

void
metrics_render(const struct metrics_env *env, const struct conf_metrics *mc, struct evbuffer *out)
{
    render_streams(out);
    render_counters(out);
    render_policy(out, env->policy != NULL ? env->policy
                       : env->d != NULL    ? daemon_conf(env->d)->policy
                                           : NULL);
    render_dns(out, env->res);
    render_pool(out, env->pool);
    render_links(out, env->locals, env->nlocals);
    if (mc != NULL)
        render_domains(out, mc);
    render_process(out);
}

/* --- /probe ---------------------------------------------------------------------------- */

static void
probe_render(struct evbuffer *out, const struct audit_domain *a)
{
    char d[512];
    long days = -1;

    metrics_label_escape(a->domain, d, sizeof(d));
    for (size_t i = 0; i < a->nendpoints; i++)
        if (a->endpoints[i].cert.present && (days == -1 || a->endpoints[i].cert.days_left < days))
            days = a->endpoints[i].cert.days_left;
    header(out, "s2sproxy_probe_success", "gauge", "The domain was reachable over s2s.");
    evbuffer_add_printf(out, "s2sproxy_probe_success{domain=\"%s\"} %d\n", d, a->reachable);
    header(out, "s2sproxy_probe_grade", "gauge",
           "Audit grade as a number: 0 A+, 1 A, 2 B, 3 C, 4 D, 5 E, 6 F, 7 T, 8 none.");
    evbuffer_add_printf(out, "s2sproxy_probe_grade{domain=\"%s\"} %d\n", d,
                        (int)a->score.effective);
    header(out, "s2sproxy_probe_score", "gauge", "Audit total score (0..100).");
    evbuffer_add_printf(out, "s2sproxy_probe_score{domain=\"%s\"} %d\n", d, a->score.total);
    header(out, "s2sproxy_probe_endpoints", "gauge", "Endpoints (target x address) audited.");
    evbuffer_add_printf(out, "s2sproxy_probe_endpoints{domain=\"%s\"} %zu\n", d, a->nendpoints);
    header(out, "s2sproxy_probe_cert_days_left", "gauge",
           "Days until the first certificate expires (negative: expired).");
    if (days != -1)
        evbuffer_add_printf(out, "s2sproxy_probe_cert_days_left{domain=\"%s\"} %ld\n", d, days);
    header(out, "s2sproxy_probe_findings", "gauge", "Weaknesses found.");
    evbuffer_add_printf(out, "s2sproxy_probe_findings{domain=\"%s\"} %zu\n", d, a->nfindings);
    header(out, "s2sproxy_probe_duration_seconds", "gauge", "How long the audit took.");
    evbuffer_add_printf(out, "s2sproxy_probe_duration_seconds{domain=\"%s\"} %.3f\n", d,
                        a->elapsed_ms / 1000.0);
}

static void
probe_free(struct probe *p)
{
    p->m->nprobes--;
    audit_tls_free(p->tls);
    free(p);
}

static void
probe_done(struct audit_domain *a, void *arg)
{
    struct probe *p = arg;
    struct evbuffer *out = evbuffer_new();

    probe_render(out, a);
    free(a);
    evhttp_connection_set_closecb(evhttp_request_get_connection(p->req), NULL, NULL);
    evhttp_add_header(evhttp_request_get_output_headers(p->req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    evhttp_send_reply(p->req, HTTP_OK, "OK", out);
    evbuffer_free(out);
    p->run = NULL;
    probe_free(p);
}

static void
probe_gone_cb(struct evhttp_connection *evcon, void *arg)
{
    struct probe *p = arg;

    (void)evcon;
    if (p->run != NULL)
        audit_cancel(p->run);
    probe_free(p);
}

static void
probe_start(struct metrics *m, struct evhttp_request *req, const char *domain)
{
    const struct conf *conf = daemon_conf(m->env.d);
    struct audit_options o = {0};
    struct probe *p;
    char err[512];

    if (m->nprobes >= METRICS_MAX_PROBES) {
        evhttp_send_error(req, 503, "too many probes running");
        return;
    }
    o.dns_backend = conf->dns.backend == CONF_DNS_UNBOUND ? "unbound" : "c-ares";
    o.dnssec_validating = conf->dns.backend == CONF_DNS_UNBOUND && conf->dns.trust_anchor_file;
    o.ca_file = conf->tls.ca_file;
    o.ca_path = conf->tls.ca_path;
    o.family = AF_UNSPEC;
    if ((p = calloc(1, sizeof(*p))) == NULL)
        fatal("calloc");
    p->m = m;
    p->req = req;
    if ((o.tls = p->tls = audit_tls_new(&o, err, sizeof(err))) == NULL ||
        (p->run = audit_start(m->base, m->env.res, &o, domain, probe_done, p, err, sizeof(err))) ==
            NULL) {
        audit_tls_free(p->tls);
        free(p);
        evhttp_send_error(req, HTTP_INTERNAL, err);
        return;
    }
    m->nprobes++;
    evhttp_connection_set_closecb(evhttp_request_get_connection(req), probe_gone_cb, p);
    log_info("metrics: probe of %s started", domain);
}

/* --- HTTP ------------------------------------------------------------------------------ */

static void
http_cb(struct evhttp_request *req, void *arg)
{
    struct metrics *m = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = evhttp_uri_get_path(uri), *q = evhttp_uri_get_query(uri), *domain;
    struct evkeyvalq params;
    struct evbuffer *out;

    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
        evhttp_send_error(req, 405, "GET only");
        return;
    }
    if (path != NULL && strcmp(path, "/probe") == 0) {
        TAILQ_INIT(&params);
        if (q == NULL || evhttp_parse_query_str(q, &params) == -1 ||
            (domain = evhttp_find_header(&params, "domain")) == NULL || m->env.res == NULL ||
            m->env.d == NULL) {
            evhttp_clear_headers(&params);
            evhttp_send_error(req, HTTP_BADREQUEST, "usage: /probe?domain=DOMAIN");
            return;
        }
        probe_start(m, req, domain);
        evhttp_clear_headers(&params);
        return;
    }
    if (path == NULL || strcmp(path, "/metrics") != 0) {
        evhttp_send_error(req, HTTP_NOTFOUND, "try /metrics or /probe?domain=DOMAIN");
        return;
    }
    out = evbuffer_new();
    metrics_render(&m->env, m->env.d != NULL ? &daemon_conf(m->env.d)->metrics : NULL, out);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    evhttp_send_reply(req, HTTP_OK, "OK", out);
    evbuffer_free(out);
}

struct metrics *
metrics_new(struct event_base *base, const struct conf_addr *addr, const struct metrics_env *env,
            char *err, size_t errlen)
{
    struct metrics *m;
    evutil_socket_t fd;

    if ((m = calloc(1, sizeof(*m))) == NULL)
        fatal("calloc");
    m->base = base;
    m->env = *env;
    if ((m->http = evhttp_new(base)) == NULL)
        fatalx("evhttp_new");
    evhttp_set_gencb(m->http, http_cb, m);
    evhttp_set_timeout(m->http, 30);
    evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET);
    if ((fd = socket(addr->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1 ||
        evutil_make_listen_socket_reuseable(fd) == -1 ||
        bind(fd, (const struct sockaddr *)&addr->sa, addr->salen) == -1 || listen(fd, 16) == -1 ||
        evhttp_accept_socket(m->http, fd) == -1) {
        snprintf(err, errlen, "metrics: cannot listen on %s: %m", addr->text);
        if (fd != -1)
            close(fd);
        evhttp_free(m->http);
        free(m);
        return NULL;
    }
    metrics_track_domains();
    log_info("metrics: listening on %s", addr->text);
    return m;
}

void
metrics_free(struct metrics *m)
{
    if (m == NULL)
        return;
    evhttp_free(m->http);
    free(m);
}
