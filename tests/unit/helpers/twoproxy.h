/*
 * Two proxies in one process: router A hosting a.test and router B hosting b.test, each
 * with its real listener, pool, inbound sessions and TLS, finding each other on 127.0.0.1
 * through a scripted DNS step (each side's hosted domains resolve to its listener, any
 * other domain is NXDOMAIN), with a capturing local sink in place of the component link.
 *
 * Use:
 *   group setup     tp_tls_init(&tls, "Fed CA")          certificates and TLS contexts
 *   setup           tp_init(&tp)                          base + both confs filled in
 *                   (tweak tp.a.conf / tp.b.conf: timeouts, policy, ...)
 *   test            tp_start(&tp, &tp.a, tls.a); tp_start(&tp, &tp.b, tls.b);
 *                   router_outbound(tp.a.r, tp_msg("u@a.test", "v@b.test"));
 *                   tp_wait_got(&tp, &tp.b, 1);
 *   teardown        tp_stop(&tp)                          shutdown, frees, leak checks
 *   group teardown  tp_tls_free(&tls)
 *
 * Failures inside the helper are reported with cmocka's fail_msg/assert (every unit test
 * links cmocka).
 */
#ifndef S2S_TEST_TWOPROXY_H
#define S2S_TEST_TWOPROXY_H

#include <stdbool.h>
#include <stdint.h>

#include "s2s/conf.h"
#include "s2s/stanza.h"

struct event_base;
struct router;
struct testca;
struct tls_ctx;

struct tp_side {
    struct conf conf; /* filled by tp_init; the test may change it before tp_start */
    struct conf_host host;
    struct conf_addr addr;
    struct router *r; /* set by tp_start */
    uint16_t port;    /* the listener's port, set by tp_start */

    /*
     * The local sink. Without a hook, each stanza is counted and recorded below and
     * freed; with refuse, the sink refuses it (returns -1: the router bounces it).
     * A test that needs more sets sink: it is called instead, owns st and returns
     * what a router_sink would (tp_sink_record does the default work).
     */
    int (*sink)(struct tp_side *s, struct stanza *st);
    void *arg; /* for the test's sink */
    bool refuse;

    /* What the default sink recorded: count and the last stanza's to, type, and the
     * first child of its <error/> ("" if none). */
    unsigned got;
    char last_to[128], last_type[32], last_cond[64];
};

struct twoproxy {
    struct event_base *base;
    struct tp_side a; /* a.test, dialback secret "a" * 32 */
    struct tp_side b; /* b.test, dialback secret "b" * 32 */
};

/* Certificates from one CA that both sides trust (a, b), and for the same names from
 * another CA (a_other, b_other: the peer cannot verify them, so it uses dialback). */
struct tp_tls {
    struct testca *ca, *ca_other;
    struct tls_ctx *a, *b, *a_other, *b_other;
};

/* Also ignores SIGPIPE. 0, or -1 with a message on stderr. ca_cn names the CA. */
int tp_tls_init(struct tp_tls *t, const char *ca_cn);
void tp_tls_free(struct tp_tls *t);

/* A new event base and both sides' configurations (require TLS, dialback on, roomy
 * limits, short connect/handshake timeouts, ping off). Nothing runs yet. */
void tp_init(struct twoproxy *tp);
/* Makes s's router with tls, listening on 127.0.0.1:0, its sink installed for every
 * domain of s->conf.hosts (a test may point them at more hosts than s->host; the scripted
 * DNS resolves each to s's listener). */
void tp_start(struct twoproxy *tp, struct tp_side *s, struct tls_ctx *tls);
/* Shuts both started routers down (waits up to 10 s), frees them and the base, and
 * asserts that no session, stream or connection is left. */
void tp_stop(struct twoproxy *tp);

/* The default sink's work: counts, records and frees st. Returns 0. */
int tp_sink_record(struct tp_side *s, struct stanza *st);

/* Runs the loop until cond(arg) holds; false after 10 s. */
bool tp_run_until(struct twoproxy *tp, bool (*cond)(void *), void *arg);
/* Runs the loop until s->got >= n; fails the test after 10 s. */
void tp_wait_got(struct twoproxy *tp, struct tp_side *s, unsigned n);
/* Runs the loop until *v >= want; fails the test after 10 s. */
void tp_wait_u64(struct twoproxy *tp, const uint64_t *v, uint64_t want);

/* A component-namespace <message from to><body>hi</body></message>, as from the local
 * server. */
struct stanza *tp_msg(const char *from, const char *to);
/* CLOCK_MONOTONIC in milliseconds. */
double tp_now_ms(void);

#endif
