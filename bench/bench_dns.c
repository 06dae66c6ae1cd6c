/*
 * DNS benchmark: resolves N distinct names (hNUMBER.ZONE, A records) through a resolver
 * pointed at a local server, keeping at most W lookups outstanding, and reports
 * resolutions per second and the most queries seen in flight. Then times the cached path:
 * dns_query on a fresh cache entry plus its (asynchronous) delivery, in ns per lookup.
 *
 *   bench_dns -s 127.0.0.1:PORT -b cares|unbound [-z ZONE] [-n N] [-w W] [-t TA] [-c CALLS]
 *             [-m MAX_IN_FLIGHT]   (the resolver's bound on backend queries; 0: default)
 *
 * bench/dns.sh starts Knot with the names and runs both backends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "dns/resolver.h"

struct bench {
    struct event_base *base;
    struct dns_resolver *res;
    const char *zone;
    long n, window, started, done, failed, secure;
    long by_status[DNS_ERROR + 1];
    struct dns_stats st;
};

static double
now_sec(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void start_more(struct bench *b);

static void
answer(const struct dns_answer *ans, void *arg)
{
    struct bench *b = arg;

    b->done++;
    if (ans->status != DNS_OK || ans->n != 1)
        b->failed++;
    b->by_status[ans->status]++;
    if (ans->sec == DNS_SEC_SECURE)
        b->secure++;
    start_more(b);
    if (b->done == b->n)
        event_base_loopbreak(b->base);
}

static void
start_more(struct bench *b)
{
    char name[DNS_NAME_MAX + 1];

    while (b->started < b->n && b->started - b->done < b->window) {
        snprintf(name, sizeof(name), "h%ld.%s", b->started, b->zone);
        if (dns_query(b->res, name, DNS_TYPE_A, answer, b) == NULL) {
            fprintf(stderr, "bench_dns: cannot query %s\n", name);
            exit(1);
        }
        b->started++;
    }
}

static void
count_cb(const struct dns_answer *ans, void *arg)
{
    (void)ans;
    (*(long *)arg)++;
}

/* dns_query on a cached name and its delivery from the loop: ns per lookup, and the
 * part spent in dns_query itself (name check, cache lookup, queueing). */
static double
bench_cached(struct bench *b, long calls, double *query_ns)
{
    char name[DNS_NAME_MAX + 1];
    long delivered = 0;
    const long batch = 1000;
    double t0, t1, in_query = 0;

    snprintf(name, sizeof(name), "h0.%s", b->zone);
    t0 = now_sec();
    for (long i = 0; i < calls; i += batch) {
        double q0 = now_sec();
        for (long k = 0; k < batch; k++)
            dns_query(b->res, name, DNS_TYPE_A, count_cb, &delivered);
        in_query += now_sec() - q0;
        event_base_loop(b->base, EVLOOP_NONBLOCK);
    }
    t1 = now_sec();
    *query_ns = in_query * 1e9 / (double)delivered;
    if (delivered != (calls + batch - 1) / batch * batch) {
        fprintf(stderr, "bench_dns: cached: %ld delivered of %ld\n", delivered, calls);
        exit(1);
    }
    return (t1 - t0) * 1e9 / (double)delivered;
}

static void
usage(void)
{
    fprintf(stderr, "usage: bench_dns -s ADDR:PORT -b cares|unbound [-z ZONE] [-n NAMES] "
                    "[-w WINDOW] [-t TRUST_ANCHOR] [-c CACHED_CALLS] [-m MAX_IN_FLIGHT]\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    struct bench b = {.zone = "bench.insec.test", .n = 10000, .window = 10000};
    const char *server = NULL, *backend = "cares", *ta = NULL;
    long calls = 1000000;
    size_t max_in_flight = 0;
    int ch;

    while ((ch = getopt(argc, argv, "s:b:z:n:w:t:c:m:")) != -1) {
        switch (ch) {
        case 's':
            server = optarg;
            break;
        case 'b':
            backend = optarg;
            break;
        case 'z':
            b.zone = optarg;
            break;
        case 'n':
            b.n = atol(optarg);
            break;
        case 'w':
            b.window = atol(optarg);
            break;
        case 't':
            ta = optarg;
            break;
        case 'c':
            calls = atol(optarg);
            break;
        case 'm':
            max_in_flight = (size_t)atol(optarg);
            break;
        default:
            usage();
        }
    }
    if (server == NULL || b.n <= 0 || b.window <= 0 || calls <= 0)
        usage();

    const char *servers[1] = {server};
    const struct dns_option_pair ubo[] = {{"local-zone:", "test. transparent"}};
    struct dns_options o = {
        .backend = strcmp(backend, "unbound") == 0 ? DNS_BACKEND_UNBOUND : DNS_BACKEND_CARES,
        .servers = servers,
        .nservers = 1,
        .trust_anchor_file = ta,
        .unbound_options = ubo,
        .nunbound_options = 1,
        .timeout = 10,
        .cache_max_entries = (size_t)b.n * 2 + 16,
        .max_in_flight = max_in_flight,
    };
    char err[256];

    b.base = event_base_new();
    b.res = dns_resolver_new(b.base, &o, err, sizeof(err));
    if (b.res == NULL) {
        fprintf(stderr, "bench_dns: %s\n", err);
        return 1;
    }
    double t0 = now_sec();
    start_more(&b);
    event_base_dispatch(b.base);
    double t1 = now_sec();
    dns_resolver_stats(b.res, &b.st);
    printf("backend=%s names=%ld window=%ld failed=%ld secure=%ld time=%.3fs "
           "resolutions/s=%.0f max_in_flight=%llu queries_sent=%llu\n",
           backend, b.n, b.window, b.failed, b.secure, t1 - t0, (double)b.n / (t1 - t0),
           (unsigned long long)b.st.max_in_flight, (unsigned long long)b.st.queries_sent);
    for (int st = DNS_NXDOMAIN; st <= DNS_ERROR; st++) {
        if (b.by_status[st] > 0)
            printf("  failures %s: %ld\n", dns_status_str(st), b.by_status[st]);
    }
    double qns, total = bench_cached(&b, calls, &qns);
    printf("backend=%s cached lookup: %.1f ns/call (dns_query %.1f ns + async delivery) over "
           "%ld calls\n",
           backend, total, qns, calls);
    dns_resolver_free(b.res);
    event_base_free(b.base);
    return b.failed == 0 ? 0 : 1;
}
