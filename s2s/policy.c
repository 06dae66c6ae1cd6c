/*
 * Policy decisions. Everything here reads a built struct policy (policy_conf.c builds
 * it) and the facts the engine hands over; the only state written is counters, rule
 * limit buckets and the engine's limiter.
 */
#include "s2s/policy.h"

#include <stdarg.h>
#include <stddef.h>
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

static void index_free(struct policy_index *x);

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
    struct policy *p = policy_alloc();

    policy_index_build(p);
    return p;
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
        strv_free(r->local, r->nlocal);
        strv_free(r->remote, r->nremote);
        ratelimit_table_free(r->limit_table);
        free(r->text);
    }
    free(p->rules);
    index_free(p->index);
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
        origin_info(&e->at, 0, entry); /* entries count no hits */
    return &e->terms;
}

static void
decision_init(struct policy_decision *d, const struct policy_origin *o)
{
    /* Field by field, not memset: this runs for every stanza, and text is 200 bytes. */
    d->verdict = POLICY_PASS;
    d->term = NULL;
    d->text[0] = '\0';
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

/*
 * The rule index: each rule is a bit; for each value a field can take (a direction, a
 * kind, a type string, a namespace, a domain pattern, a list) a bitmap of the rules that
 * value satisfies, OR'd with the rules that do not look at the field. A stanza's
 * candidates are the AND of its values' bitmaps, computed with a few hash lookups
 * whatever the number of rules; the first candidate in order whose remaining conditions
 * (size, limit) hold decides. 200 rules cost about as much as 2 (bench/README-policy.md).
 */
struct strmap {
    char **keys;
    uint64_t *hashes;
    uint32_t *rows;
    size_t cap; /* power of two, at most half full */
    size_t n;
};

struct policy_index {
    size_t words;     /* 64-bit words per bitmap */
    uint64_t *all;    /* every rule */
    uint64_t *dir[3]; /* [POLICY_IN], [POLICY_OUT]: rules that allow the direction */
    uint64_t *kind[5];
    uint64_t *no_type, *no_ns, *no_local, *no_remote;
    struct strmap types, nss;
    uint64_t *type_rows, *ns_rows;
    struct domainlist *local_pats, *remote_pats; /* pattern -> row */
    uint64_t *local_rows, *remote_rows;
    size_t nlocal_rows, nremote_rows;
    uint64_t *list_rows; /* per list: the rules whose remote_list it is */
    struct policy_list **lists;
    uint64_t *cand, *mask; /* scratch for one check */
};

#define BIT_SET(m, i)   ((m)[(i) / 64] |= (uint64_t)1 << ((i) % 64))
#define BIT_TEST(m, i)  (((m)[(i) / 64] >> ((i) % 64)) & 1)
#define ROW(rows, r, w) ((rows) + (size_t)(r) * (w))

/*
 * Namespaces are long ("http://jabber.org/protocol/chatstates"): hashed eight bytes at a
 * time, since a byte-at-a-time multiply chain costs about a nanosecond per byte.
 */
static uint64_t
str_hash(const char *s)
{
    size_t len = strlen(s), i = 0;
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ len, w;

    for (; i + 8 <= len; i += 8) {
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }
    w = 0;
    memcpy(&w, s + i, len - i);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 29);
}

static uint64_t *
bitmaps_new(size_t count, size_t words)
{
    uint64_t *m = calloc(count * words + 1, sizeof(*m));

    if (m == NULL)
        fatal("calloc");
    return m;
}

/* The row of key, or -1. */
static long
strmap_get(const struct strmap *m, const char *key)
{
    uint64_t h;

    if (m->n == 0)
        return -1;
    h = str_hash(key);
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == NULL)
            return -1;
        if (m->hashes[i] == h && strcmp(m->keys[i], key) == 0)
            return m->rows[i];
    }
}

/* Sized for every key up front (keys <= max): no rehashing. Returns the key's row. */
static uint32_t
strmap_put(struct strmap *m, const char *key, size_t max)
{
    uint64_t h = str_hash(key);
    size_t i;

    if (m->cap == 0) {
        for (m->cap = 8; m->cap < 2 * max + 2; m->cap *= 2)
            ;
        if ((m->keys = calloc(m->cap, sizeof(*m->keys))) == NULL ||
            (m->hashes = calloc(m->cap, sizeof(*m->hashes))) == NULL ||
            (m->rows = calloc(m->cap, sizeof(*m->rows))) == NULL)
            fatal("calloc");
    }
    for (i = h & (m->cap - 1); m->keys[i] != NULL; i = (i + 1) & (m->cap - 1))
        if (m->hashes[i] == h && strcmp(m->keys[i], key) == 0)
            return m->rows[i];
    m->keys[i] = (char *)key; /* borrowed from the rule */
    m->hashes[i] = h;
    m->rows[i] = (uint32_t)m->n++;
    return m->rows[i];
}

static void
strmap_free(struct strmap *m)
{
    free(m->keys);
    free(m->hashes);
    free(m->rows);
}

static size_t
count_strings(const struct policy *p, size_t off_n)
{
    size_t n = 0;

    for (size_t i = 0; i < p->nrules; i++)
        n += *(const size_t *)((const char *)&p->rules[i] + off_n);
    return n;
}

/* Distinct strings of one field into map, each with the bitmap of the rules naming it. */
static uint64_t *
index_strings(const struct policy *p, size_t words, struct strmap *m, size_t off_v, size_t off_n,
              uint64_t *none)
{
    size_t total = count_strings(p, off_n);
    uint64_t *rows = bitmaps_new(total, words);

    for (size_t i = 0; i < p->nrules; i++) {
        const struct policy_rule *r = &p->rules[i];
        char **v = *(char **const *)((const char *)r + off_v);
        size_t n = *(const size_t *)((const char *)r + off_n);

        if (n == 0)
            BIT_SET(none, i);
        for (size_t j = 0; j < n; j++)
            BIT_SET(ROW(rows, strmap_put(m, v[j], total), words), i);
    }
    return rows;
}

/* Domain patterns of one field into a domainlist whose values are rows. */
static uint64_t *
index_patterns(const struct policy *p, size_t words, struct domainlist **dlp, size_t off_v,
               size_t off_n, uint64_t *none, size_t *nrows)
{
    size_t total = count_strings(p, off_n);
    uint64_t *rows = bitmaps_new(total, words);
    struct domainlist *dl = domainlist_new();
    uint32_t row;

    *nrows = 0;
    for (size_t i = 0; i < p->nrules; i++) {
        const struct policy_rule *r = &p->rules[i];
        char **v = *(char **const *)((const char *)r + off_v);
        size_t n = *(const size_t *)((const char *)r + off_n);

        if (n == 0)
            BIT_SET(none, i);
        for (size_t j = 0; j < n; j++) {
            if (!domainlist_get(dl, v[j], &row)) {
                row = (uint32_t)(*nrows)++;
                domainlist_add(dl, v[j], row);
            }
            BIT_SET(ROW(rows, row, words), i);
        }
    }
    *dlp = dl;
    return rows;
}

void
policy_index_build(struct policy *p)
{
    struct policy_index *x = calloc(1, sizeof(*x));
    size_t w = (p->nrules + 63) / 64;

    if (x == NULL)
        fatal("calloc");
    x->words = w;
    for (size_t i = 0; i < p->ndomains; i++)
        if (memcmp(&p->domains[i].terms.rate, &p->deflt.terms.rate,
                   sizeof(struct ratelimit_spec)) != 0)
            p->rate_varies = true;
    x->all = bitmaps_new(1, w);
    x->cand = bitmaps_new(1, w);
    x->mask = bitmaps_new(1, w);
    for (int d = 0; d < 3; d++)
        x->dir[d] = bitmaps_new(1, w);
    for (int k = 0; k < 5; k++)
        x->kind[k] = bitmaps_new(1, w);
    x->no_type = bitmaps_new(1, w);
    x->no_ns = bitmaps_new(1, w);
    x->no_local = bitmaps_new(1, w);
    x->no_remote = bitmaps_new(1, w);
    for (size_t i = 0; i < p->nrules; i++) {
        const struct policy_rule *r = &p->rules[i];

        BIT_SET(x->all, i);
        for (unsigned d = POLICY_IN; d <= POLICY_OUT; d++)
            if (r->dirs == 0 || (r->dirs & d))
                BIT_SET(x->dir[d], i);
        for (unsigned k = POLICY_KIND_MESSAGE; k <= POLICY_KIND_IQ; k <<= 1)
            if (r->kinds == 0 || (r->kinds & k))
                BIT_SET(x->kind[k], i);
    }
    x->type_rows = index_strings(p, w, &x->types, offsetof(struct policy_rule, types),
                                 offsetof(struct policy_rule, ntypes), x->no_type);
    x->ns_rows = index_strings(p, w, &x->nss, offsetof(struct policy_rule, ns),
                               offsetof(struct policy_rule, nns), x->no_ns);
    x->local_rows =
        index_patterns(p, w, &x->local_pats, offsetof(struct policy_rule, local),
                       offsetof(struct policy_rule, nlocal), x->no_local, &x->nlocal_rows);
    x->remote_rows =
        index_patterns(p, w, &x->remote_pats, offsetof(struct policy_rule, remote),
                       offsetof(struct policy_rule, nremote), x->no_remote, &x->nremote_rows);
    /* A rule with a list but no patterns does look at the remote domain. */
    x->list_rows = bitmaps_new(p->nlists, w);
    if ((x->lists = calloc(p->nlists + 1, sizeof(*x->lists))) == NULL)
        fatal("calloc");
    for (struct policy_list *pl = p->lists; pl != NULL; pl = pl->next)
        x->lists[pl->index] = pl;
    for (size_t i = 0; i < p->nrules; i++) {
        const struct policy_rule *r = &p->rules[i];

        if (r->remote_list != NULL) {
            x->no_remote[i / 64] &= ~((uint64_t)1 << (i % 64));
            BIT_SET(ROW(x->list_rows, r->remote_list->index, w), i);
        }
    }
    p->index = x;
}

static void
index_free(struct policy_index *x)
{
    if (x == NULL)
        return;
    free(x->all);
    free(x->cand);
    free(x->mask);
    for (int d = 0; d < 3; d++)
        free(x->dir[d]);
    for (int k = 0; k < 5; k++)
        free(x->kind[k]);
    free(x->no_type);
    free(x->no_ns);
    free(x->no_local);
    free(x->no_remote);
    strmap_free(&x->types);
    strmap_free(&x->nss);
    free(x->type_rows);
    free(x->ns_rows);
    domainlist_free(x->local_pats);
    domainlist_free(x->remote_pats);
    free(x->local_rows);
    free(x->remote_rows);
    free(x->list_rows);
    free(x->lists);
    free(x);
}

static void
bits_and(uint64_t *a, const uint64_t *b, size_t w)
{
    for (size_t i = 0; i < w; i++)
        a[i] &= b[i];
}

static void
bits_or(uint64_t *a, const uint64_t *b, size_t w)
{
    for (size_t i = 0; i < w; i++)
        a[i] |= b[i];
}

/* Some candidate is not in none: the field must be looked at. */
static bool
bits_need(const uint64_t *cand, const uint64_t *none, size_t w)
{
    for (size_t i = 0; i < w; i++)
        if (cand[i] & ~none[i])
            return true;
    return false;
}

/* RFC 6120 §5.2.2 / RFC 6121 §4.7.1: no type means "normal" for a message and
 * "available" for a presence. */
static const char *
effective_type(const struct policy_stanza_facts *f)
{
    if (f->type != NULL)
        return f->type;
    return f->kind == POLICY_KIND_MESSAGE    ? "normal"
           : f->kind == POLICY_KIND_PRESENCE ? "available"
                                             : "";
}

/* cand &= rules whose patterns match domain, or that have none. */
static void
filter_domain(struct policy_index *x, uint64_t *cand, const uint64_t *none,
              const struct domainlist *pats, const uint64_t *rows, const char *domain,
              bool with_lists)
{
    struct domainlist_key k;
    uint32_t vals[DOMAINLIST_KEY_LABELS];
    size_t n, w = x->words;

    domainlist_key_init(&k, domain != NULL ? domain : "");
    memcpy(x->mask, none, w * sizeof(*x->mask));
    n = domainlist_matches(pats, &k, vals, DOMAINLIST_KEY_LABELS);
    for (size_t i = 0; i < n && i < DOMAINLIST_KEY_LABELS; i++)
        bits_or(x->mask, ROW(rows, vals[i], w), w);
    if (with_lists) {
        /* Each list once, and only if a candidate uses it. */
        for (size_t l = 0; x->lists[l] != NULL; l++) {
            const uint64_t *lr = ROW(x->list_rows, l, w);
            bool used = false;

            for (size_t i = 0; i < w && !used; i++)
                used = (cand[i] & lr[i]) != 0;
            if (used && domainlist_lookup_key(domainlist_file_list(x->lists[l]->file), &k, NULL))
                bits_or(x->mask, lr, w);
        }
    }
    bits_and(cand, x->mask, w);
}

/* The candidates by direction, kind, type and namespaces: cheap, no domain lookups. */
static void
candidates_cheap(struct policy_index *x, const struct policy_stanza_facts *f)
{
    uint64_t *cand = x->cand;
    size_t w = x->words;
    long row;

    memcpy(cand, x->all, w * sizeof(*cand));
    bits_and(cand, x->dir[f->dir == POLICY_OUT ? POLICY_OUT : POLICY_IN], w);
    bits_and(cand, x->kind[f->kind <= POLICY_KIND_IQ ? f->kind : 0], w);
    if (bits_need(cand, x->no_type, w)) {
        memcpy(x->mask, x->no_type, w * sizeof(*cand));
        if ((row = strmap_get(&x->types, effective_type(f))) >= 0)
            bits_or(x->mask, ROW(x->type_rows, row, w), w);
        bits_and(cand, x->mask, w);
    }
    if (bits_need(cand, x->no_ns, w)) {
        memcpy(x->mask, x->no_ns, w * sizeof(*cand));
        for (size_t i = 0; i < f->nns && i < POLICY_STANZA_NS; i++)
            if (f->ns[i] != NULL && (row = strmap_get(&x->nss, f->ns[i])) >= 0)
                bits_or(x->mask, ROW(x->ns_rows, row, w), w);
        bits_and(cand, x->mask, w);
    }
}

/* ... then by the local and remote domains. */
static void
candidates_domains(struct policy_index *x, const struct policy_stanza_facts *f)
{
    if (bits_need(x->cand, x->no_local, x->words))
        filter_domain(x, x->cand, x->no_local, x->local_pats, x->local_rows, f->local, false);
    if (bits_need(x->cand, x->no_remote, x->words))
        filter_domain(x, x->cand, x->no_remote, x->remote_pats, x->remote_rows, f->remote, true);
}

/* What the index does not cover: size, then the rate limit (it takes a token). */
static bool
rule_rest_matches(const struct policy_rule *r, const struct policy_stanza_facts *f)
{
    if (r->has_larger_than && f->size <= r->larger_than)
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

/*
 * Rules in order among the candidates. The domain lookups are put off until the first
 * candidate that needs them: a stanza decided by an earlier rule never pays for them.
 */
static struct policy_rule *
first_match(struct policy *p, const struct policy_stanza_facts *f)
{
    struct policy_index *x = p->index;
    bool domains_done = false;

    if (p->nrules == 0)
        return NULL;
    candidates_cheap(x, f);
    for (size_t i = 0; i < x->words; i++) {
        while (x->cand[i] != 0) {
            size_t r = i * 64 + (size_t)__builtin_ctzll(x->cand[i]);

            if (!domains_done && !(BIT_TEST(x->no_local, r) && BIT_TEST(x->no_remote, r))) {
                candidates_domains(x, f);
                domains_done = true;
                continue; /* cand[i] may have lost r */
            }
            x->cand[i] &= x->cand[i] - 1;
            if (rule_rest_matches(&p->rules[r], f))
                return &p->rules[r];
        }
    }
    return NULL;
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
    struct policy_rule *r = first_match(p, f);

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
    /* The domain lookup only when some entry has a rate of its own. */
    const struct policy_terms *t = p->rate_varies ? policy_terms(p, remote, NULL) : &p->deflt.terms;
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
