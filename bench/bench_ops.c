/*
 * What operating (issue 9) adds per relayed stanza, in isolation: the stream's stanza
 * counter and its coarse idle stamp (s2s/in.c, s2s/out.c), against the same loop without
 * them. The rest of ctl/metrics/eventlog runs per stream, per scrape or per request,
 * never per stanza. Compare the difference with the relay's CPU per stanza
 * (bench/README.md, "Relay").
 *
 *   bench_ops [iterations (50M)]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "s2s/stats.h"

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The stand-in for a stanza's work: enough that the loop is not pure overhead. */
static unsigned
work(unsigned x)
{
    for (int i = 0; i < 8; i++)
        x = x * 1103515245u + 12345u;
    return x;
}

int
main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 50000000L;
    static struct s2s_stream st;
    struct s2s_stream *volatile sp = &st;
    volatile unsigned sink = 0;
    double best[3] = {1e9, 1e9, 1e9};

    for (int rep = 0; rep < 5; rep++) {
        double t0, t1, t2, t3;
        unsigned x = 1;

        t0 = now();
        for (long i = 0; i < n; i++)
            x = work(x);
        t1 = now();
        for (long i = 0; i < n; i++) {
            x = work(x);
            sp->stanzas_out++;
            sp->last_active = s2s_now_coarse();
        }
        t2 = now();
        for (long i = 0; i < n; i++) {
            x = work(x);
            sp->stanzas_out++;
            sp->last_active = s2s_now();
        }
        t3 = now();
        sink = x;
        if ((t1 - t0) < best[0])
            best[0] = t1 - t0;
        if ((t2 - t1) < best[1])
            best[1] = t2 - t1;
        if ((t3 - t2) < best[2])
            best[2] = t3 - t2;
    }
    (void)sink;
    printf("base loop              %.2f ns/stanza\n", best[0] / (double)n * 1e9);
    printf("+ counter, coarse clock %.2f ns/stanza (added %.2f ns)\n", best[1] / (double)n * 1e9,
           (best[1] - best[0]) / (double)n * 1e9);
    printf("+ counter, precise clock %.2f ns/stanza (added %.2f ns)\n", best[2] / (double)n * 1e9,
           (best[2] - best[0]) / (double)n * 1e9);
    return 0;
}
