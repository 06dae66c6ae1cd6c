/*
 * Policy decisions. Everything here reads a built struct policy (policy_conf.c builds
 * it) and the facts the engine hands over; the only state written is counters, rule
 * limit buckets and the engine's limiter.
 */
#include "s2s/policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "s2s/log.h"
#include "s2s/policy_impl.h"

#define TLS12 0x0303
#define TLS13 0x0304

struct policy_limiter {
    struct ratelimit_table *in;    /* per remote domain, inbound */
    struct ratelimit_table *out;   /* per remote domain, outbound */
    struct ratelimit_table *addrs; /* per remote address, inbound */
};

/* --- lifetime ------------------------------------------------------------------------- */

static void
terms_default(struct policy_terms *t)
{
    memset(t, 0, sizeof(*t));
    t->federate = true;
    t->require_tls = true;
    t->min_tls = TLS12;
    t->auth = POLICY_REQUIRE_DIALBACK;
}

struct policy *
policy_alloc(void)
{
    struct policy *p = calloc(1, sizeof(*p));

    if (p == NULL)
        fatal("calloc");
    atomic_init(&p->refs, 1);
    terms_default(&p->deflt.terms);
    if ((p->deflt.at.name = strdup("default")) == NULL)
        fatal("strdup");
    p->patterns = domainlist_new();
    return p;
}

struct policy *
policy_new_default(void)
{
    return policy_alloc();
}

static void
origin_free(struct policy_origin *o)
{
    free(o->name);
    free(o->file);
}

static void
strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void
policy_destroy(struct policy *p)
{
    struct policy_list *pl, *next;

    if (p == NULL)
        return;
    origin_free(&p->deflt.at);
    for (size_t i = 0; i < p->ndomains; i++)
        origin_free(&p->domains[i].at);
    free(p->domains);
    free(p->listed);
    domainlist_free(p->patterns);
    for (size_t i = 0; i < p->nrules; i++) {
        struct policy_rule *r = &p->rules[i];

        origin_free(&r->at);
        strv_free(r->types, r->ntypes);
        strv_free(r->ns, r->nns);
        domainlist_free(r->local);
        domainlist_free(r->remote);
        ratelimit_table_free(r->limit_table);
        free(r->text);
    }
    free(p->rules);
    for (pl = p->lists; pl != NULL; pl = next) {
        next = pl->next;
        domainlist_file_free(pl->file);
        free(pl->path);
        free(pl);
    }
    free(p);
}

struct policy *
policy_ref(struct policy *p)
{
    atomic_fetch_add(&p->refs, 1);
    return p;
}

void
policy_unref(struct policy *p)
{
    if (p != NULL && atomic_fetch_sub(&p->refs, 1) == 1)
        policy_destroy(p);
}

/* --- who may federate ------------------------------------------------------------------ */

/* Most specific entry wins; equal scores go to the entry written first (policy.h). */
static const struct policy_domain *
domain_resolve(const struct policy *p, const struct domainlist_key *k)
{
    const struct policy_domain *best = &p->deflt;
    size_t bestidx = SIZE_MAX;
    unsigned bestscore = 0, score;
    uint32_t v;

    if ((score = domainlist_lookup_key(p->patterns, k, &v)) != 0) {
        best = &p->domains[v];
        bestidx = v;
        bestscore = score;
    }
    for (size_t i = 0; i < p->nlisted; i++) {
        size_t idx = p->listed[i];
        const struct policy_domain *e = &p->domains[idx];

        score = domainlist_lookup_key(domainlist_file_list(e->list->file), k, NULL);
        if (score > bestscore || (score != 0 && score == bestscore && idx < bestidx)) {
            best = e;
            bestidx = idx;
            bestscore = score;
        }
    }
    return best;
}

static void
origin_info(const struct policy_origin *o, uint64_t hits, struct policy_rule_info *info)
{
    info->name = o->name;
    info->file = o->file;
    info->line = o->line;
    info->hits = hits;
}

const struct policy_terms *
policy_terms(const struct policy *p, const char *remote, struct policy_rule_info *entry)
{
    const struct policy_domain *e;
    struct domainlist_key k;

    domainlist_key_init(&k, remote);
    e = domain_resolve(p, &k);
    if (entry != NULL)
        origin_info(&e->at, e->hits, entry);
    return &e->terms;
}

static void
decision_init(struct policy_decision *d, const struct policy_origin *o)
{
    memset(d, 0, sizeof(*d));
    d->verdict = POLICY_PASS;
    d->stream_error = XMPP_STREAM_ERR_POLICY_VIOLATION;
    d->dialback_error = DIALBACK_ERR_POLICY_VIOLATION;
    d->stanza_error = XMPP_STANZA_ERR_NOT_ALLOWED;
    d->error_type = XMPP_ERR_TYPE_CANCEL;
    d->rule = o->name;
    d->file = o->file;
    d->line = o->line;
}

static const char *
tls_name(int v)
{
    switch (v) {
    case 0:
        return "none";
    case TLS12:
        return "1.2";
    case TLS13:
        return "1.3";
    default:
        return v < TLS12 ? "older than 1.2" : "newer than 1.3";
    }
}

static const char *
cert_name(enum policy_cert c)
{
    switch (c) {
    case POLICY_CERT_VALID:
        return "valid";
    case POLICY_CERT_EXPIRED:
        return "expired";
    case POLICY_CERT_WRONG_NAME:
        return "wrong-name";
    case POLICY_CERT_UNTRUSTED:
        return "untrusted";
    default:
        return "none";
    }
}

/* Sets a refusal: not-authorized for authentication terms (XEP-0220 §2.4 names it for
 * "a valid certificate is required"), policy-violation for everything else. */
static enum policy_verdict refuse(struct policy_decision *d, const char *term, bool auth,
                                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static enum policy_verdict
refuse(struct policy_decision *d, const char *term, bool auth, const char *fmt, ...)
{
    va_list ap;

    d->verdict = POLICY_REFUSE;
    d->term = term;
    if (auth) {
        d->stream_error = XMPP_STREAM_ERR_NOT_AUTHORIZED;
        d->dialback_error = DIALBACK_ERR_NOT_AUTHORIZED;
    }
    va_start(ap, fmt);
    vsnprintf(d->text, sizeof(d->text), fmt, ap);
    va_end(ap);
    return d->verdict;
}

enum policy_verdict
policy_check_stream(const struct policy *p, const struct policy_stream_facts *f,
                    struct policy_decision *d)
{
    const struct policy_domain *e;
    const struct policy_terms *t;
    struct domainlist_key k;

    domainlist_key_init(&k, f->remote);
    e = domain_resolve(p, &k);
    t = &e->terms;
    decision_init(d, &e->at);
    if (!t->federate)
        return refuse(d, "federate", false, "federation with %s is not allowed by policy",
                      f->remote);
    if (f->tls_version == 0 && t->require_tls)
        return refuse(d, "tls", false, "TLS is required for %s", f->remote);
    if (f->tls_version != 0 && f->tls_version < t->min_tls)
        return refuse(d, "min_tls", false, "TLS %s is below the TLS %s required for %s",
                      tls_name(f->tls_version), tls_name(t->min_tls), f->remote);
    if (f->auth == POLICY_AUTH_NONE)
        return refuse(d, "auth", true, "%s is not authenticated", f->remote);
    if (t->auth == POLICY_REQUIRE_CERTIFICATE && f->cert != POLICY_CERT_VALID)
        return refuse(d, "auth", true, "a valid certificate is required for %s (certificate: %s)",
                      f->remote, cert_name(f->cert));
    if (f->dir == POLICY_OUT && t->dnssec && !f->dnssec)
        return refuse(d, "dnssec", false, "DNSSEC-secure DNS is required for %s", f->remote);
    if (f->dir == POLICY_OUT && t->dane && !f->dane)
        return refuse(d, "dane", false, "a DANE-verified certificate is required for %s",
                      f->remote);
    return POLICY_PASS;
}

enum policy_verdict
policy_check_route(const struct policy *p, const char *local, const char *remote,
                   struct policy_decision *d)
{
    const struct policy_domain *e;
    struct domainlist_key k;

    domainlist_key_init(&k, remote);
    e = domain_resolve(p, &k);
    decision_init(d, &e->at);
    if (e->terms.federate)
        return POLICY_PASS;
    /* RFC 6120 §8.3.3.10: not-allowed, cancel. */
    d->verdict = POLICY_BOUNCE;
    d->term = "federate";
    snprintf(d->text, sizeof(d->text), "federation with %s is not allowed by policy", remote);
    return d->verdict;
}

/* --- which stanzas --------------------------------------------------------------------- */

/* Lazily computed keys: most rules never look at a domain. */
struct stanza_keys {
    bool local_ready, remote_ready;
    struct domainlist_key local, remote;
};

static const struct domainlist_key *
key_of(struct domainlist_key *k, bool *ready, const char *domain)
{
    if (!*ready) {
        domainlist_key_init(k, domain != NULL ? domain : "");
        *ready = true;
    }
    return k;
}

static bool
type_matches(const struct policy_rule *r, const struct policy_stanza_facts *f)
{
    const char *type = f->type;

    if (r->ntypes == 0)
        return true;
    /* RFC 6120 §5.2.2 / RFC 6121 §4.7.1: no type means "normal" for a message and
     * "available" for a presence. */
    if (type == NULL)
        type = f->kind == POLICY_KIND_MESSAGE    ? "normal"
               : f->kind == POLICY_KIND_PRESENCE ? "available"
                                                 : "";
    for (size_t i = 0; i < r->ntypes; i++)
        if (strcmp(r->types[i], type) == 0)
            return true;
    return false;
}

static bool
ns_matches(const struct policy_rule *r, const struct policy_stanza_facts *f)
{
    if (r->nns == 0)
        return true;
    for (size_t i = 0; i < f->nns && i < POLICY_STANZA_NS; i++)
        for (size_t j = 0; j < r->nns; j++)
            if (f->ns[i] != NULL && strcmp(r->ns[j], f->ns[i]) == 0)
                return true;
    return false;
}

static bool
remote_matches(const struct policy_rule *r, const struct policy_stanza_facts *f,
               struct stanza_keys *ks)
{
    const struct domainlist_key *k;

    if (r->remote == NULL && r->remote_list == NULL)
        return true;
    k = key_of(&ks->remote, &ks->remote_ready, f->remote);
    if (r->remote != NULL && domainlist_lookup_key(r->remote, k, NULL) != 0)
        return true;
    return r->remote_list != NULL &&
           domainlist_lookup_key(domainlist_file_list(r->remote_list->file), k, NULL) != 0;
}

/* Cheap fields first, domains last, the rate limit only once all else matched. */
static bool
rule_matches(const struct policy_rule *r, const struct policy_stanza_facts *f,
             struct stanza_keys *ks)
{
    if (r->dirs != 0 && !(r->dirs & (unsigned)f->dir))
        return false;
    if (r->kinds != 0 && !(r->kinds & (unsigned)f->kind))
        return false;
    if (r->has_larger_than && f->size <= r->larger_than)
        return false;
    if (!type_matches(r, f) || !ns_matches(r, f))
        return false;
    if (r->local != NULL &&
        domainlist_lookup_key(r->local, key_of(&ks->local, &ks->local_ready, f->local), NULL) == 0)
        return false;
    if (!remote_matches(r, f, ks))
        return false;
    if (r->limit_table != NULL) {
        uint64_t now = f->now != 0 ? f->now : ratelimit_now();

        /* Within the limit: the rule does not apply to this stanza. */
        if (ratelimit_try(r->limit_table, f->remote != NULL ? f->remote : "", &r->limit, 1,
                          (double)f->size, now))
            return false;
    }
    return true;
}

static const char *
kind_name(enum policy_kind k)
{
    switch (k) {
    case POLICY_KIND_MESSAGE:
        return "message";
    case POLICY_KIND_PRESENCE:
        return "presence";
    case POLICY_KIND_IQ:
        return "iq";
    default:
        return "?";
    }
}

static void
log_stanza(const char *what, const struct policy_rule *r, const struct policy_stanza_facts *f)
{
    log_info("policy %s rule=%s at=%s:%u dir=%s local=%s remote=%s kind=%s type=%s size=%zu", what,
             r->at.name, r->at.file != NULL ? r->at.file : "-", r->at.line,
             f->dir == POLICY_IN ? "in" : "out", f->local != NULL ? f->local : "-",
             f->remote != NULL ? f->remote : "-", kind_name(f->kind),
             f->type != NULL ? f->type : "-", f->size);
}

enum policy_verdict
policy_check_stanza(struct policy *p, const struct policy_stanza_facts *f,
                    struct policy_decision *d)
{
    struct stanza_keys ks;
    struct policy_rule *r = NULL;

    ks.local_ready = ks.remote_ready = false;
    for (size_t i = 0; i < p->nrules; i++) {
        if (rule_matches(&p->rules[i], f, &ks)) {
            r = &p->rules[i];
            break;
        }
    }
    if (r == NULL) {
        p->default_hits++;
        decision_init(d, &p->deflt.at);
        return POLICY_PASS;
    }
    r->hits++;
    decision_init(d, &r->at);
    d->verdict = r->action;
    d->stanza_error = r->condition;
    d->error_type = r->error_type;
    if (r->text != NULL)
        snprintf(d->text, sizeof(d->text), "%s", r->text);
    /* RFC 6120 §8.3.1: an error stanza is never answered with an error. */
    if (d->verdict == POLICY_BOUNCE && f->type != NULL && strcmp(f->type, "error") == 0)
        d->verdict = POLICY_DROP;
    if (d->verdict == POLICY_DROP)
        log_stanza("drop", r, f);
    else if (d->verdict == POLICY_LOG)
        log_stanza("log", r, f);
    return d->verdict;
}

const char *
policy_verdict_name(enum policy_verdict v)
{
    switch (v) {
    case POLICY_PASS:
        return "pass";
    case POLICY_LOG:
        return "log";
    case POLICY_BOUNCE:
        return "bounce";
    case POLICY_DROP:
        return "drop";
    case POLICY_REFUSE:
        return "refuse";
    }
    return "?";
}

void
policy_decision_format(const struct policy_decision *d, char *buf, size_t len)
{
    char where[512] = "built-in";
    int n;

    if (d->file != NULL)
        snprintf(where, sizeof(where), "%s:%u", d->file, d->line);
    n = snprintf(buf, len, "%s", policy_verdict_name(d->verdict));
    if (n < 0 || (size_t)n >= len)
        return;
    if (d->verdict == POLICY_BOUNCE)
        n += snprintf(buf + n, len - (size_t)n, " condition=%s type=%s",
                      xmpp_stanza_error_name(d->stanza_error), xmpp_error_type_name(d->error_type));
    else if (d->verdict == POLICY_REFUSE)
        n += snprintf(buf + n, len - (size_t)n, " stream-error=%s dialback-error=%s",
                      xmpp_stream_error_name(d->stream_error),
                      dialback_cond_name(d->dialback_error));
    if (n < 0 || (size_t)n >= len)
        return;
    if (d->term != NULL)
        n += snprintf(buf + n, len - (size_t)n, " term=%s", d->term);
    if (n < 0 || (size_t)n >= len)
        return;
    snprintf(buf + n, len - (size_t)n, " rule=%s (%s)%s%s", d->rule != NULL ? d->rule : "-", where,
             d->text[0] != '\0' ? ": " : "", d->text);
}

/* --- how fast -------------------------------------------------------------------------- */

struct policy_limiter *
policy_limiter_new(size_t max_domains, size_t max_addresses)
{
    struct policy_limiter *l = calloc(1, sizeof(*l));

    if (l == NULL)
        fatal("calloc");
    l->in = ratelimit_table_new(max_domains);
    l->out = ratelimit_table_new(max_domains);
    l->addrs = ratelimit_table_new(max_addresses);
    return l;
}

void
policy_limiter_free(struct policy_limiter *l)
{
    if (l == NULL)
        return;
    ratelimit_table_free(l->in);
    ratelimit_table_free(l->out);
    ratelimit_table_free(l->addrs);
    free(l);
}

uint64_t
policy_rate(const struct policy *p, struct policy_limiter *l, enum policy_dir dir,
            const char *remote, const char *address, size_t bytes, uint64_t now)
{
    const struct policy_terms *t = policy_terms(p, remote, NULL);
    uint64_t wait = 0, w;

    if (ratelimit_spec_active(&t->rate))
        wait = ratelimit_take(dir == POLICY_IN ? l->in : l->out, remote, &t->rate, 1, (double)bytes,
                              now);
    if (dir == POLICY_IN && address != NULL && ratelimit_spec_active(&p->address_rate)) {
        w = ratelimit_take(l->addrs, address, &p->address_rate, 1, (double)bytes, now);
        if (w > wait)
            wait = w;
    }
    return wait;
}

unsigned
policy_max_connections_per_address(const struct policy *p)
{
    return p->max_conns_per_address;
}

/* --- introspection and list files ------------------------------------------------------ */

size_t
policy_rule_count(const struct policy *p)
{
    return p->nrules + 1;
}

bool
policy_rule_info(const struct policy *p, size_t i, struct policy_rule_info *info)
{
    if (i < p->nrules) {
        origin_info(&p->rules[i].at, p->rules[i].hits, info);
        return true;
    }
    if (i == p->nrules) {
        origin_info(&p->deflt.at, p->default_hits, info);
        return true;
    }
    return false;
}

int
policy_watch(struct policy *p, struct event_base *base)
{
    for (struct policy_list *pl = p->lists; pl != NULL; pl = pl->next)
        if (domainlist_file_watch(pl->file, base, p->list_check_interval) == -1)
            return -1;
    return 0;
}

void
policy_unwatch(struct policy *p)
{
    for (struct policy_list *pl = p->lists; pl != NULL; pl = pl->next)
        domainlist_file_watch(pl->file, NULL, 0);
}
