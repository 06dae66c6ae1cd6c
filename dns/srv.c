/*
 * SRV ordering (RFC 2782) and XEP-0368 merging. See srv.h.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "dns/srv.h"

uint64_t
dns_rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t
dns_rng_seed(void)
{
    uint64_t seed = 0;
    struct timespec ts;

    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) == (ssize_t)sizeof(seed) && seed != 0)
        return seed;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid();
}

static int
pick_cmp(const void *a, const void *b)
{
    const struct dns_srv_pick *x = a, *y = b;

    if (x->srv->priority != y->srv->priority)
        return x->srv->priority < y->srv->priority ? -1 : 1;
    /* Weight 0 first (RFC 2782: "all those with weight 0 are placed at the beginning"). */
    if ((x->srv->weight == 0) != (y->srv->weight == 0))
        return x->srv->weight == 0 ? -1 : 1;
    return 0;
}

/* Orders picks[0..n), all of one priority, by RFC 2782's weighted selection. */
static void
order_group(struct dns_srv_pick *g, size_t n, uint64_t *rng)
{
    for (size_t done = 0; done + 1 < n; done++) {
        uint64_t sum = 0, run = 0, r;
        size_t chosen = n - 1;

        for (size_t i = done; i < n; i++)
            sum += g[i].srv->weight;
        r = dns_rng_next(rng) % (sum + 1);
        for (size_t i = done; i < n; i++) {
            run += g[i].srv->weight;
            if (run >= r) {
                chosen = i;
                break;
            }
        }
        /* Move the chosen one to the front, keeping the rest in order (weight 0 first). */
        struct dns_srv_pick tmp = g[chosen];
        memmove(&g[done + 1], &g[done], (chosen - done) * sizeof(*g));
        g[done] = tmp;
    }
}

void
dns_srv_order(struct dns_srv_pick *picks, size_t n, uint64_t *rng)
{
    size_t start = 0;

    /* A stable insertion sort: n is small (DNS_MAX_TARGETS) and equal records keep the
     * answer order, so a seeded test sees one result. */
    for (size_t i = 1; i < n; i++) {
        for (size_t j = i; j > 0 && pick_cmp(&picks[j - 1], &picks[j]) > 0; j--) {
            struct dns_srv_pick t = picks[j];
            picks[j] = picks[j - 1];
            picks[j - 1] = t;
        }
    }
    while (start < n) {
        size_t end = start + 1;
        while (end < n && picks[end].srv->priority == picks[start].srv->priority)
            end++;
        order_group(&picks[start], end - start, rng);
        start = end;
    }
}

enum set_kind {
    SET_RECORDS, /* at least one usable target */
    SET_DOT,     /* only "." (RFC 2782: decidedly not available) */
    SET_EMPTY,   /* NXDOMAIN or NODATA */
    SET_ERROR,   /* SERVFAIL, timeout, bogus, malformed, ... */
};

static bool
srv_is_dot(const struct dns_srv *s)
{
    return strcmp(s->target, ".") == 0;
}

static enum set_kind
set_kind(const struct dns_answer *a)
{
    if (a->status == DNS_NXDOMAIN || a->status == DNS_NODATA)
        return SET_EMPTY;
    if (a->status != DNS_OK)
        return SET_ERROR;
    for (size_t i = 0; i < a->n; i++) {
        if (!srv_is_dot(&a->rr.srv[i]))
            return SET_RECORDS;
    }
    return a->n > 0 ? SET_DOT : SET_EMPTY;
}

static void
add_picks(const struct dns_answer *a, enum dns_tls_mode tls, struct dns_srv_pick *picks, size_t max,
          size_t *n)
{
    for (size_t i = 0; i < a->n && *n < max; i++) {
        if (srv_is_dot(&a->rr.srv[i]))
            continue;
        picks[*n].srv = &a->rr.srv[i];
        picks[*n].tls = tls;
        (*n)++;
    }
}

enum dns_srv_plan
dns_srv_plan(const struct dns_answer *xmpps, const struct dns_answer *xmpp, uint64_t *rng,
             struct dns_srv_pick *picks, size_t max, size_t *npicks, enum dns_status *status,
             char *why, size_t whylen)
{
    enum set_kind ks = set_kind(xmpps), kp = set_kind(xmpp);

    *npicks = 0;
    *status = DNS_OK;
    why[0] = '\0';
    if (xmpps->status == DNS_BOGUS || xmpp->status == DNS_BOGUS) {
        const struct dns_answer *b = xmpps->status == DNS_BOGUS ? xmpps : xmpp;
        *status = DNS_BOGUS;
        snprintf(why, whylen, "SRV %s: DNSSEC validation failed%s%s", b->name,
                 b->why[0] ? ": " : "", b->why);
        return DNS_SRV_FAIL;
    }
    if (ks == SET_RECORDS || kp == SET_RECORDS) {
        /* Order everything, then keep the first max: the bound must not drop one service's
         * best records because the other came first. */
        struct dns_srv_pick all[2 * DNS_MAX_RECORDS];
        size_t nall = 0;
        if (ks == SET_RECORDS)
            add_picks(xmpps, DNS_TLS_DIRECT, all, DNS_MAX_RECORDS, &nall);
        if (kp == SET_RECORDS)
            add_picks(xmpp, DNS_TLS_STARTTLS, all, 2 * DNS_MAX_RECORDS, &nall);
        dns_srv_order(all, nall, rng);
        *npicks = nall < max ? nall : max;
        memcpy(picks, all, *npicks * sizeof(*picks));
        return DNS_SRV_TARGETS;
    }
    if (ks == SET_EMPTY && kp == SET_EMPTY)
        return DNS_SRV_FALLBACK;
    if ((ks == SET_DOT || ks == SET_EMPTY) && (kp == SET_DOT || kp == SET_EMPTY)) {
        *status = DNS_NOSERVICE;
        snprintf(why, whylen, "service not available: SRV target \".\" (RFC 2782)");
        return DNS_SRV_FAIL;
    }
    const struct dns_answer *e = ks == SET_ERROR ? xmpps : xmpp;
    *status = e->status;
    snprintf(why, whylen, "SRV %s: %s%s%s", e->name, dns_status_str(e->status),
             e->why[0] ? ": " : "", e->why);
    return DNS_SRV_FAIL;
}
