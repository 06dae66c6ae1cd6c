/*
 * The resolver front end and its cache, over a test double backend and a fake clock:
 * async delivery (even from the cache, even when the backend answers inside the call),
 * one query for concurrent lookups, TTL expiry and clamping, negative caching, failures
 * not cached, cancel, timeouts, eviction, and the targets walk end to end.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <event2/event.h>
#include <jansson.h>

#include "dns/backend.h"
#include "dns/resolver.h"
#include "test_dns_pkt.h"

/* ---- the test double ---- */

#define FAKE_MAX 64

struct fake_query {
    bool used;
    bool cancelled;
    bool answered;
    char name[DNS_NAME_MAX + 1];
    uint16_t type;
    dns_backend_cb cb;
    void *arg;
};

static struct fake {
    struct fake_query q[FAKE_MAX];
    size_t nq;
    bool sync_servfail; /* answer inside query() */
    int created, destroyed;
} fake;

static void *
fake_create(struct event_base *base, const struct dns_options *opts, char *err, size_t errlen)
{
    (void)base;
    (void)opts;
    (void)err;
    (void)errlen;
    fake.created++;
    return &fake;
}

static void
fake_destroy(void *be)
{
    (void)be;
    fake.destroyed++;
}

static void *
fake_query(void *be, const char *name, uint16_t type, dns_backend_cb cb, void *arg)
{
    struct fake_query *q;

    (void)be;
    assert_true(fake.nq < FAKE_MAX);
    q = &fake.q[fake.nq++];
    memset(q, 0, sizeof(*q));
    q->used = true;
    snprintf(q->name, sizeof(q->name), "%s", name);
    q->type = type;
    q->cb = cb;
    q->arg = arg;
    if (fake.sync_servfail) {
        q->answered = true;
        cb(&(struct dns_backend_result){.status = DNS_SERVFAIL, .why = "sync"}, arg);
        return NULL;
    }
    return q;
}

static void
fake_cancel(void *be, void *qarg)
{
    struct fake_query *q = qarg;

    (void)be;
    assert_false(q->cancelled);
    assert_false(q->answered);
    q->cancelled = true;
}

static const struct dns_backend_ops fake_ops = {
    .name = "fake",
    .create = fake_create,
    .destroy = fake_destroy,
    .query = fake_query,
    .cancel = fake_cancel,
};

static void
fake_answer(size_t i, const struct pkt *p, enum dns_sec sec)
{
    struct fake_query *q = &fake.q[i];

    assert_true(i < fake.nq);
    assert_false(q->cancelled);
    assert_false(q->answered);
    q->answered = true;
    q->cb(&(struct dns_backend_result){.status = DNS_OK, .pkt = p->b, .len = p->len, .sec = sec},
          q->arg);
}

static void
fake_answer_a(size_t i, uint32_t ttl, uint8_t last)
{
    struct pkt p;

    pkt_start(&p, 0, 1, 0, fake.q[i].name, fake.q[i].type);
    if (fake.q[i].type == DNS_TYPE_AAAA) {
        pkt_rr(&p, 28, ttl, 16);
        uint8_t a6[16] = {0x20, 0x01, 0x0d, 0xb8};
        a6[15] = last;
        pkt_bytes(&p, a6, 16);
    } else {
        pkt_a(&p, ttl, 192, 0, 2, last);
    }
    fake_answer(i, &p, DNS_SEC_SECURE);
}

static void
fake_answer_nx(size_t i, unsigned int rcode, uint32_t soa_min, bool with_soa)
{
    struct pkt p;

    pkt_start(&p, rcode, 0, with_soa ? 1 : 0, fake.q[i].name, fake.q[i].type);
    if (with_soa)
        pkt_soa(&p, 3600, soa_min);
    fake_answer(i, &p, DNS_SEC_SECURE);
}

static size_t
fake_find(const char *name, uint16_t type)
{
    for (size_t i = 0; i < fake.nq; i++) {
        if (strcmp(fake.q[i].name, name) == 0 && fake.q[i].type == type && !fake.q[i].answered)
            return i;
    }
    fail_msg("no query for %s/%u", name, type);
    return 0;
}

/* ---- fixtures ---- */

static struct event_base *base;
static struct dns_resolver *res;
static uint64_t clock_now;

static uint64_t
fake_clock(void *arg)
{
    (void)arg;
    return clock_now;
}

static size_t opt_max_in_flight;

static struct dns_resolver *
make(uint32_t min_ttl, uint32_t max_ttl, size_t max_entries, unsigned int timeout)
{
    struct dns_options o = {
        .backend = DNS_BACKEND_CARES,
        .timeout = timeout,
        .cache_min_ttl = min_ttl,
        .cache_max_ttl = max_ttl,
        .negative_ttl = 20,
        .cache_max_entries = max_entries,
        .max_in_flight = opt_max_in_flight,
        .rng_seed = 1,
        .clock = fake_clock,
    };
    char err[128];
    struct dns_resolver *r = dns_resolver_new_ops(base, &o, &fake_ops, err, sizeof(err));

    assert_non_null(r);
    return r;
}

static int
setup(void **state)
{
    (void)state;
    memset(&fake, 0, sizeof(fake));
    opt_max_in_flight = 0;
    clock_now = 1000;
    base = event_base_new();
    res = make(0, 86400, 1000, 30);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    dns_resolver_free(res);
    assert_int_equal(fake.destroyed, fake.created);
    event_base_free(base);
    return 0;
}

static void
run_pending(void)
{
    event_base_loop(base, EVLOOP_NONBLOCK);
}

struct box {
    int calls;
    enum dns_status status;
    uint32_t ttl;
    size_t n;
    uint8_t last;
};

static void
box_cb(const struct dns_answer *a, void *arg)
{
    struct box *b = arg;

    b->calls++;
    b->status = a->status;
    b->ttl = a->ttl;
    b->n = a->n;
    if (a->n > 0 && a->type == DNS_TYPE_A)
        b->last = a->rr.addr[0].addr[3];
}

static struct dns_stats
stats(void)
{
    struct dns_stats st;

    dns_resolver_stats(res, &st);
    return st;
}

/* ---- tests ---- */

static void
test_async_and_merge(void **state)
{
    struct box b1 = {0}, b2 = {0};

    (void)state;
    assert_non_null(dns_query(res, "host.test", DNS_TYPE_A, box_cb, &b1));
    assert_non_null(dns_query(res, "HOST.test.", DNS_TYPE_A, box_cb, &b2));
    assert_int_equal(fake.nq, 1); /* one query in flight for both */
    assert_int_equal(stats().merged, 1);
    assert_int_equal(stats().in_flight, 1);
    fake_answer_a(0, 300, 7);
    /* Not inside the backend's callback either: from the loop. */
    assert_int_equal(b1.calls, 0);
    assert_int_equal(b2.calls, 0);
    run_pending();
    assert_int_equal(b1.calls, 1);
    assert_int_equal(b2.calls, 1);
    assert_int_equal(b1.status, DNS_OK);
    assert_int_equal(b2.last, 7);
    assert_int_equal(stats().in_flight, 0);
    run_pending();
    assert_int_equal(b1.calls, 1); /* once only */
}

static void
test_cache_hit_is_async(void **state)
{
    struct box b = {0};

    (void)state;
    dns_query(res, "host.test", DNS_TYPE_A, box_cb, &b);
    fake_answer_a(0, 300, 9);
    run_pending();
    memset(&b, 0, sizeof(b));
    assert_non_null(dns_query(res, "host.test", DNS_TYPE_A, box_cb, &b));
    assert_int_equal(b.calls, 0); /* STYLE habit 3: never inside the caller's call */
    assert_int_equal(fake.nq, 1);
    run_pending();
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.last, 9);
    assert_int_equal(stats().cache_hits, 1);
    assert_int_equal(stats().queries_sent, 1);
    /* Another type is another entry. */
    dns_query(res, "host.test", DNS_TYPE_AAAA, box_cb, &b);
    assert_int_equal(fake.nq, 2);
}

static void
test_expiry(void **state)
{
    struct box b = {0};

    (void)state;
    dns_query(res, "host.test", DNS_TYPE_A, box_cb, &b);
    fake_answer_a(0, 100, 1);
    run_pending();
    clock_now += 99;
    dns_query(res, "host.test", DNS_TYPE_A, box_cb, &b);
    assert_int_equal(fake.nq, 1);
    clock_now += 1; /* TTL 100 is over */
    dns_query(res, "host.test", DNS_TYPE_A, box_cb, &b);
    assert_int_equal(fake.nq, 2);
    fake_answer_a(1, 100, 2);
    run_pending();
    assert_int_equal(b.calls, 3);
    assert_int_equal(b.last, 2);
}

static void
test_ttl_clamp(void **state)
{
    struct box b = {0};

    (void)state;
    dns_resolver_free(res);
    res = make(50, 1000, 1000, 30);
    dns_query(res, "short.test", DNS_TYPE_A, box_cb, &b);
    dns_query(res, "long.test", DNS_TYPE_A, box_cb, &b);
    fake_answer_a(0, 10, 1);   /* raised to 50 */
    fake_answer_a(1, 5000, 1); /* lowered to 1000 */
    run_pending();
    clock_now += 49;
    dns_query(res, "short.test", DNS_TYPE_A, box_cb, &b);
    assert_int_equal(fake.nq, 2);
    clock_now += 1;
    dns_query(res, "short.test", DNS_TYPE_A, box_cb, &b);
    assert_int_equal(fake.nq, 3);
    clock_now += 949;
    dns_query(res, "long.test", DNS_TYPE_A, box_cb, &b);
    assert_int_equal(fake.nq, 3);
    clock_now += 1;
    dns_query(res, "long.test", DNS_TYPE_A, box_cb, &b);
    assert_int_equal(fake.nq, 4);
}

static void
test_negative_caching(void **state)
{
    struct box b = {0};

    (void)state;
    dns_query(res, "gone.test", DNS_TYPE_A, box_cb, &b);
    dns_query(res, "empty.test", DNS_TYPE_A, box_cb, &b);
    fake_answer_nx(0, 3, 30, true); /* NXDOMAIN, SOA minimum 30 */
    fake_answer_nx(1, 0, 0, false); /* NODATA, no SOA: the option's 20 */
    run_pending();
    assert_int_equal(b.calls, 2);
    memset(&b, 0, sizeof(b));
    clock_now += 19;
    dns_query(res, "gone.test", DNS_TYPE_A, box_cb, &b);
    dns_query(res, "empty.test", DNS_TYPE_A, box_cb, &b);
    assert_int_equal(fake.nq, 2);
    run_pending();
    assert_int_equal(b.status, DNS_NODATA);
    clock_now += 1;
    dns_query(res, "empty.test", DNS_TYPE_A, box_cb, &b);
    assert_int_equal(fake.nq, 3);
    dns_query(res, "gone.test", DNS_TYPE_A, box_cb, &b);
    assert_int_equal(fake.nq, 3);
    run_pending();
    assert_int_equal(b.status, DNS_NXDOMAIN);
    clock_now += 10;
    dns_query(res, "gone.test", DNS_TYPE_A, box_cb, &b);
    assert_int_equal(fake.nq, 4);
}

static void
test_failures_not_cached(void **state)
{
    struct box b = {0};

    (void)state;
    dns_query(res, "broken.test", DNS_TYPE_A, box_cb, &b);
    fake_answer_nx(0, 2, 0, false);
    run_pending();
    assert_int_equal(b.status, DNS_SERVFAIL);
    dns_query(res, "broken.test", DNS_TYPE_A, box_cb, &b);
    assert_int_equal(fake.nq, 2);

    /* A bogus answer: no records, status bogus, not cached. */
    struct pkt p;
    pkt_start(&p, 2, 0, 0, "broken.test", 1);
    fake.q[1].answered = true;
    fake.q[1].cb(&(struct dns_backend_result){.status = DNS_OK,
                                              .pkt = p.b,
                                              .len = p.len,
                                              .sec = DNS_SEC_BOGUS,
                                              .why = "signature expired"},
                 fake.q[1].arg);
    run_pending();
    assert_int_equal(b.status, DNS_BOGUS);
    assert_int_equal(b.calls, 2);
    dns_query(res, "broken.test", DNS_TYPE_A, box_cb, &b);
    assert_int_equal(fake.nq, 3);
}

static void
test_cancel(void **state)
{
    struct box b1 = {0}, b2 = {0}, b3 = {0};
    struct dns_request *r1, *r3;

    (void)state;
    r1 = dns_query(res, "host.test", DNS_TYPE_A, box_cb, &b1);
    dns_query(res, "host.test", DNS_TYPE_A, box_cb, &b2);
    dns_request_cancel(r1); /* waiting */
    fake_answer_a(0, 300, 1);
    r3 = dns_query(res, "host.test", DNS_TYPE_A, box_cb, &b3);
    dns_request_cancel(r3); /* ready, not yet delivered */
    run_pending();
    assert_int_equal(b1.calls, 0);
    assert_int_equal(b2.calls, 1);
    assert_int_equal(b3.calls, 0);
}

static void
test_sync_backend_answer(void **state)
{
    struct box b = {0};

    (void)state;
    fake.sync_servfail = true;
    assert_non_null(dns_query(res, "sync.test", DNS_TYPE_A, box_cb, &b));
    assert_int_equal(b.calls, 0);
    run_pending();
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.status, DNS_SERVFAIL);
    assert_int_equal(stats().in_flight, 0);
}

static void
test_timeout(void **state)
{
    struct box b = {0};

    (void)state;
    dns_resolver_free(res);
    res = make(0, 86400, 1000, 1);
    dns_query(res, "slow.test", DNS_TYPE_A, box_cb, &b);
    for (int i = 0; i < 30 && b.calls == 0; i++) {
        struct timeval tv = {0, 100000};
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.status, DNS_TIMEOUT);
    assert_true(fake.q[0].cancelled);
    assert_int_equal(stats().in_flight, 0);
}

static void
test_invalid_and_free_pending(void **state)
{
    struct box b = {0};

    (void)state;
    assert_null(dns_query(res, "bad..name", DNS_TYPE_A, box_cb, &b));
    assert_null(dns_query(res, "", DNS_TYPE_A, box_cb, &b));
    assert_null(dns_query(res, "ok.test", 16 /* TXT: not ours to parse */, box_cb, &b));
    dns_query(res, "pending.test", DNS_TYPE_A, box_cb, &b);
    dns_query(res, "other.test", DNS_TYPE_A, box_cb, &b);
    fake_answer_a(1, 300, 1); /* a ready request, undelivered */
    dns_resolver_free(res);   /* no callback, no leak (ASan) */
    assert_true(fake.q[0].cancelled);
    assert_int_equal(b.calls, 0);
    res = make(0, 86400, 1000, 30);
}

static void
test_eviction_bound(void **state)
{
    struct box b = {0};
    char name[32];

    (void)state;
    dns_resolver_free(res);
    res = make(0, 86400, 4, 30);
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "h%d.test", i);
        dns_query(res, name, DNS_TYPE_A, box_cb, &b);
        fake_answer_a((size_t)i, 300, (uint8_t)i);
        run_pending();
        assert_true(stats().entries <= 4);
    }
    /* The most recent ones are still cached, the oldest are gone. */
    dns_query(res, "h9.test", DNS_TYPE_A, box_cb, &b);
    assert_int_equal(fake.nq, 10);
    dns_query(res, "h0.test", DNS_TYPE_A, box_cb, &b);
    assert_int_equal(fake.nq, 11);
}

static void
test_in_flight_bound(void **state)
{
    struct box b = {0};
    char name[32];

    (void)state;
    dns_resolver_free(res);
    opt_max_in_flight = 2;
    res = make(0, 86400, 1000, 1);
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof(name), "q%d.test", i);
        assert_non_null(dns_query(res, name, DNS_TYPE_A, box_cb, &b));
    }
    assert_int_equal(fake.nq, 2); /* the rest wait for a slot */
    assert_int_equal(stats().queued, 3);
    fake_answer_a(0, 300, 0);
    assert_int_equal(fake.nq, 3); /* a slot freed: the next goes out, in order */
    assert_string_equal(fake.q[2].name, "q2.test");
    /* A failure inside the backend call frees its slot at once: the queue drains. */
    fake.sync_servfail = true;
    fake_answer_a(1, 300, 1);
    assert_int_equal(fake.nq, 5);
    assert_int_equal(stats().queued, 0);
    assert_int_equal(stats().max_in_flight, 2);
    run_pending();
    assert_int_equal(b.calls, 4);
    /* Waiting in the queue counts against the timeout too. */
    fake.sync_servfail = false;
    for (int i = 5; i < 9; i++) {
        snprintf(name, sizeof(name), "q%d.test", i);
        dns_query(res, name, DNS_TYPE_A, box_cb, &b);
    }
    assert_int_equal(stats().queued, 3); /* q2 still holds a slot */
    for (int i = 0; i < 30 && b.calls < 9; i++) {
        struct timeval tv = {0, 100000};
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
    assert_int_equal(b.calls, 9);
    assert_int_equal(b.status, DNS_TIMEOUT);
    assert_int_equal(stats().queued, 0);
    assert_int_equal(stats().in_flight, 0);
}

/* ---- the targets walk over the double ---- */

struct tbox {
    int calls;
    struct dns_targets *t;
};

static void
targets_cb(struct dns_targets *t, void *arg)
{
    struct tbox *b = arg;

    b->calls++;
    b->t = t;
}

static void
answer_srv(const char *name, const struct dns_srv *recs, size_t n, enum dns_sec sec)
{
    struct pkt p;
    size_t i = fake_find(name, DNS_TYPE_SRV);

    pkt_start(&p, 0, (unsigned int)n, 0, name, DNS_TYPE_SRV);
    for (size_t k = 0; k < n; k++)
        pkt_srv(&p, 600, recs[k].priority, recs[k].weight, recs[k].port, recs[k].target);
    fake_answer(i, &p, sec);
}

static void
test_targets_walk(void **state)
{
    struct tbox tb = {0};
    struct dns_srv xmpps[1] = {
        {.priority = 5, .weight = 0, .port = 5270, .target = "a.example.test"}};
    struct dns_srv xmpp[2] = {
        {.priority = 10, .weight = 1, .port = 5269, .target = "a.example.test"},
        {.priority = 10, .weight = 1, .port = 5269, .target = "b.example.test"}};

    (void)state;
    assert_non_null(dns_targets_resolve(res, "Example.Test", DNS_TARGETS_TLSA, targets_cb, &tb));
    assert_int_equal(fake.nq, 2); /* both SRV at once */
    answer_srv("_xmpps-server._tcp.example.test", xmpps, 1, DNS_SEC_SECURE);
    run_pending();
    assert_int_equal(fake.nq, 2); /* waits for the other SRV answer */
    answer_srv("_xmpp-server._tcp.example.test", xmpp, 2, DNS_SEC_INSECURE);
    run_pending();
    /* a.example.test appears twice (5270 and 5269): asked once per type (merged). */
    assert_int_equal(fake.nq, 6);
    fake_answer_a(fake_find("a.example.test", DNS_TYPE_AAAA), 60, 1);
    fake_answer_a(fake_find("a.example.test", DNS_TYPE_A), 60, 1);
    fake_answer_a(fake_find("b.example.test", DNS_TYPE_A), 60, 2);
    fake_answer_nx(fake_find("b.example.test", DNS_TYPE_AAAA), 0, 30, true);
    run_pending();
    /* The direct-TLS target's SRV and addresses are secure: TLSA asked for it alone. */
    assert_int_equal(fake.nq, 7);
    assert_string_equal(fake.q[6].name, "_5270._tcp.a.example.test");
    assert_int_equal(fake.q[6].type, DNS_TYPE_TLSA);
    assert_int_equal(tb.calls, 0);
    struct pkt p;
    pkt_start(&p, 0, 1, 0, fake.q[6].name, DNS_TYPE_TLSA);
    pkt_rr(&p, 52, 300, 3 + 2);
    pkt_u8(&p, 3);
    pkt_u8(&p, 1);
    pkt_u8(&p, 1);
    pkt_u16(&p, 0xbeef);
    fake_answer(6, &p, DNS_SEC_SECURE);
    assert_int_equal(tb.calls, 0);
    run_pending();
    assert_int_equal(tb.calls, 1);

    struct dns_targets *t = tb.t;
    assert_int_equal(t->status, DNS_OK);
    assert_int_equal(t->ntargets, 3);
    assert_string_equal(t->targets[0].host, "a.example.test");
    assert_int_equal(t->targets[0].tls, DNS_TLS_DIRECT);
    assert_int_equal(t->targets[0].naddrs, 2);
    assert_int_equal(t->targets[0].addrs[0].family, AF_INET6);
    assert_int_equal(t->targets[0].addrs[1].family, AF_INET);
    assert_true(t->targets[0].tlsa_queried);
    assert_int_equal(t->targets[0].ntlsa, 1);
    assert_int_equal(t->targets[0].tlsa_rr[0].data[1], 0xef);
    assert_false(t->targets[1].tlsa_queried); /* insecure SRV set */
    assert_int_equal(t->srv_xmpps.sec, DNS_SEC_SECURE);
    assert_int_equal(t->srv_xmpp.ttl, 600);

    /* The JSON an operator gets carries the same facts. */
    json_t *j = dns_targets_json(t);
    json_t *t0 = json_array_get(json_object_get(j, "targets"), 0);
    assert_string_equal(json_string_value(json_object_get(t0, "tls")), "direct");
    assert_string_equal(json_string_value(json_object_get(json_object_get(t0, "tlsa"), "dnssec")),
                        "secure");
    json_t *rec = json_array_get(json_object_get(json_object_get(t0, "tlsa"), "records"), 0);
    assert_string_equal(json_string_value(json_object_get(rec, "data")), "beef");
    json_decref(j);
    FILE *fp = fopen("/dev/null", "w");
    dns_targets_print(fp, t);
    fclose(fp);
    dns_targets_free(t);
}

static void
test_targets_fallback_and_noservice(void **state)
{
    struct tbox tb = {0};
    struct dns_srv dot[1] = {{.target = "."}};

    (void)state;
    dns_targets_resolve(res, "plain.test", 0, targets_cb, &tb);
    fake_answer_nx(fake_find("_xmpps-server._tcp.plain.test", DNS_TYPE_SRV), 3, 30, true);
    fake_answer_nx(fake_find("_xmpp-server._tcp.plain.test", DNS_TYPE_SRV), 0, 30, true);
    run_pending();
    fake_answer_a(fake_find("plain.test", DNS_TYPE_A), 60, 5);
    fake_answer_nx(fake_find("plain.test", DNS_TYPE_AAAA), 0, 30, true);
    run_pending();
    assert_int_equal(tb.calls, 1);
    assert_true(tb.t->fallback);
    assert_int_equal(tb.t->ntargets, 1);
    assert_int_equal(tb.t->targets[0].port, 5269);
    assert_int_equal(tb.t->targets[0].tls, DNS_TLS_STARTTLS);
    assert_int_equal(tb.t->targets[0].naddrs, 1);
    dns_targets_free(tb.t);

    memset(&tb, 0, sizeof(tb));
    size_t before = fake.nq;
    dns_targets_resolve(res, "closed.test", 0, targets_cb, &tb);
    answer_srv("_xmpps-server._tcp.closed.test", dot, 1, DNS_SEC_INSECURE);
    fake_answer_nx(fake_find("_xmpp-server._tcp.closed.test", DNS_TYPE_SRV), 3, 30, true);
    run_pending();
    assert_int_equal(tb.calls, 1); /* at once: no address lookups */
    assert_int_equal(fake.nq, before + 2);
    assert_int_equal(tb.t->status, DNS_NOSERVICE);
    dns_targets_free(tb.t);
}

static void
test_targets_cancel(void **state)
{
    struct tbox tb = {0};
    struct dns_srv one[1] = {{.priority = 1, .port = 5269, .target = "x.test"}};
    struct dns_targets_request *r;

    (void)state;
    r = dns_targets_resolve(res, "c.test", 0, targets_cb, &tb);
    answer_srv("_xmpps-server._tcp.c.test", one, 1, DNS_SEC_INSECURE);
    answer_srv("_xmpp-server._tcp.c.test", one, 1, DNS_SEC_INSECURE);
    run_pending();
    dns_targets_cancel(r); /* while the address lookups are out */
    fake_answer_a(fake_find("x.test", DNS_TYPE_A), 60, 1);
    fake_answer_a(fake_find("x.test", DNS_TYPE_AAAA), 60, 1);
    run_pending();
    assert_int_equal(tb.calls, 0);
    /* And a request cancelled at once. */
    r = dns_targets_resolve(res, "d.test", 0, targets_cb, &tb);
    dns_targets_cancel(r);
    run_pending();
    assert_int_equal(tb.calls, 0);
    assert_null(dns_targets_resolve(res, "bad..domain", 0, targets_cb, &tb));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_async_and_merge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_hit_is_async, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttl_clamp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_negative_caching, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failures_not_cached, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_backend_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_and_free_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eviction_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_in_flight_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_targets_walk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_targets_fallback_and_noservice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_targets_cancel, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
