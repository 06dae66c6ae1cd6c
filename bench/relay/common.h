/*
 * Helpers shared by bench_relay and bench_sink (both ends count and report the same way).
 */
#ifndef BENCH_RELAY_COMMON_H
#define BENCH_RELAY_COMMON_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "bench/relay/shm.h"

static inline uint64_t
relay_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Maps the counting file; create: make it (the receiving end), else open it. */
static inline struct relay_shm *
relay_shm_map(const char *path, int create)
{
    int fd = open(path, create ? O_RDWR | O_CREAT | O_TRUNC : O_RDWR, 0644);
    struct relay_shm *shm;

    if (fd == -1 || (create && ftruncate(fd, sizeof(*shm)) == -1)) {
        perror(path);
        return NULL;
    }
    shm = mmap(NULL, sizeof(*shm), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (shm == MAP_FAILED)
        return NULL;
    if (create)
        shm->magic = RELAY_SHM_MAGIC;
    return shm->magic == RELAY_SHM_MAGIC ? shm : NULL;
}

static inline uint64_t
relay_count(const struct relay_shm *shm)
{
    return __atomic_load_n(&shm->stanzas, __ATOMIC_ACQUIRE);
}

/* One received message whose body text starts "SEQ TS ". */
static inline void
relay_record(struct relay_shm *shm, const char *body)
{
    unsigned long long seq, ts;
    uint64_t now = relay_now_ns();

    shm->last_ns = now;
    if (sscanf(body, "%llu %llu", &seq, &ts) != 2 || ts > now) {
        shm->bad++;
    } else {
        uint64_t us = (now - ts) / 1000;

        shm->hist[us < RELAY_HIST_US ? us : RELAY_HIST_US]++;
    }
    __atomic_add_fetch(&shm->stanzas, 1, __ATOMIC_RELEASE);
}

/* What a run is measured against: the counters when it started. */
struct relay_snap {
    uint64_t stanzas, bytes, bad, pings;
    uint64_t hist[RELAY_HIST_US + 1];
};

static inline void
relay_snap_take(const struct relay_shm *shm, struct relay_snap *s)
{
    s->stanzas = relay_count(shm);
    s->bytes = shm->bytes;
    s->bad = shm->bad;
    s->pings = shm->pings;
    memcpy(s->hist, shm->hist, sizeof(s->hist));
}

/* Waits (bounded: 20 s without progress) until total messages arrived since snap. */
static inline uint64_t
relay_wait(const struct relay_shm *shm, const struct relay_snap *snap, uint64_t total)
{
    uint64_t last = relay_count(shm), t_last = relay_now_ns();

    while (relay_count(shm) - snap->stanzas < total) {
        struct timespec ts = {0, 1000000};

        nanosleep(&ts, NULL);
        if (relay_count(shm) != last) {
            last = relay_count(shm);
            t_last = relay_now_ns();
        } else if (relay_now_ns() - t_last > 20000000000ULL) {
            break;
        }
    }
    return relay_count(shm) - snap->stanzas;
}

static inline double
relay_percentile(const uint64_t *hist, uint64_t total, double q)
{
    uint64_t want = (uint64_t)(q * (double)total), acc = 0;

    for (size_t i = 0; i <= RELAY_HIST_US; i++) {
        acc += hist[i];
        if (acc > want)
            return (double)i + 0.5;
    }
    return (double)RELAY_HIST_US;
}

/* The "result key=value ..." line for a run that started at t0 (snap taken then). */
static inline void
relay_report(FILE *fp, const char *mode, const struct relay_shm *shm, const struct relay_snap *snap,
             int streams, size_t size, double rate, uint64_t sent, uint64_t t0, double hs_secs)
{
    static uint64_t hist[RELAY_HIST_US + 1];
    uint64_t got = relay_count(shm) - snap->stanzas, bad = shm->bad - snap->bad;
    uint64_t t_end = got ? shm->last_ns : relay_now_ns();
    double secs = (double)(t_end - t0) / 1e9, lat_max = 0;

    for (size_t i = 0; i <= RELAY_HIST_US; i++)
        if ((hist[i] = shm->hist[i] - snap->hist[i]) != 0)
            lat_max = (double)i + 1;
    fprintf(fp,
            "result mode=%s streams=%d size=%zu rate=%.0f sent=%llu received=%llu bad=%llu "
            "secs=%.3f stanzas_per_s=%.0f mb_per_s=%.2f lat_p50_us=%.1f lat_p99_us=%.1f "
            "lat_p999_us=%.1f lat_max_us=%.1f pings=%llu handshake_s=%.2f\n",
            mode, streams, size, rate, (unsigned long long)sent, (unsigned long long)got,
            (unsigned long long)bad, secs, (double)got / secs,
            (double)(shm->bytes - snap->bytes) / secs / 1e6,
            relay_percentile(hist, got - bad, 0.50), relay_percentile(hist, got - bad, 0.99),
            relay_percentile(hist, got - bad, 0.999), lat_max,
            (unsigned long long)(shm->pings - snap->pings), hs_secs);
    fflush(fp);
}

#endif
