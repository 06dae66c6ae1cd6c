/*
 * What the relay benchmark's sink shares with its generator: a file mapped by both
 * (same machine, so CLOCK_MONOTONIC timestamps compare). The sink only adds; the
 * generator snapshots before a run and subtracts.
 */
#ifndef BENCH_RELAY_SHM_H
#define BENCH_RELAY_SHM_H

#include <stdint.h>

#define RELAY_HIST_US 100000 /* 1 µs buckets up to 100 ms, then one overflow bucket */

struct relay_shm {
    uint64_t magic;
    uint64_t stanzas; /* messages counted by the sink (also the generator's window) */
    uint64_t bytes;   /* bytes read by the sink after the handshake */
    uint64_t bad;     /* messages whose body did not parse */
    uint64_t pings;   /* iq pings answered */
    uint64_t last_ns; /* CLOCK_MONOTONIC of the last message */
    uint64_t lat_max_ns;
    uint64_t hist[RELAY_HIST_US + 1];
};

#define RELAY_SHM_MAGIC 0x72656c6179626e31ULL

#endif
