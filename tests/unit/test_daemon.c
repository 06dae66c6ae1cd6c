/*
 * The daemon lifecycle without a process boundary: shutdown phases run in order, the
 * loop waits for busy sessions and no longer, a second signal cuts the wait short, and a
 * reload swaps configuration and TLS context only when both build.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "s2s/daemon.h"
#include "s2s/log.h"

static char tmpdir[PATH_MAX];
static char cfg[PATH_MAX + 32];

/* What the hooks saw, in order. */
static char trace[256];
static int reloads;
static const struct conf *reload_old;

static void
append(const char *what)
{
    strncat(trace, what, sizeof(trace) - strlen(trace) - 1);
}

static void
write_conf(const char *level, const char *extra)
{
    FILE *f = fopen(cfg, "w");

    assert_non_null(f);
    fprintf(f,
            "log = { level = \"%s\"; };\n"
            "hosts = ( { domain = \"example.org\"; certificate = \"certs/example.org.crt\";\n"
            "  key = \"certs/example.org.key\"; } );\n%s",
            level, extra);
    fclose(f);
}

static int
setup(void **state)
{
    const char *src = getenv("S2S_SRCDIR");
    char tmpl[] = "/tmp/test_daemon.XXXXXX", cmd[PATH_MAX * 2];

    assert_non_null(mkdtemp(tmpl));
    snprintf(tmpdir, sizeof(tmpdir), "%s", tmpl);
    snprintf(cmd, sizeof(cmd), "cp -r '%s/conf/certs' '%s/certs'", src != NULL ? src : ".", tmpdir);
    assert_int_equal(system(cmd), 0);
    snprintf(cfg, sizeof(cfg), "%s/s2sproxy.conf", tmpdir);
    return 0;
}

static int
teardown(void **state)
{
    char cmd[PATH_MAX + 16];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static struct daemon *
new_daemon(void)
{
    char err[1024];
    struct daemon *d;

    trace[0] = '\0';
    reloads = 0;
    reload_old = NULL;
    write_conf("error", "");
    d = daemon_new(cfg, false, err, sizeof(err));
    if (d == NULL)
        fail_msg("%s", err);
    return d;
}

static void
hook_accept(struct daemon *d, void *arg)
{
    append("accept;");
}

static void
hook_sessions(struct daemon *d, void *arg)
{
    append("sessions;");
}

static void
hook_links(struct daemon *d, void *arg)
{
    append("links;");
}

/* Removes itself while the hooks run: the list walk must survive it. */
static void
hook_once(struct daemon *d, void *arg)
{
    struct daemon_hook **self = arg;

    append("once;");
    daemon_hook_remove(d, *self);
}

static void
shutdown_cb(evutil_socket_t fd, short what, void *arg)
{
    daemon_shutdown(arg, "test");
}

static void
signal_cb(evutil_socket_t fd, short what, void *arg)
{
    raise(*(int *)arg);
}

static void
in_loop(struct daemon *d, double seconds, event_callback_fn fn, void *arg)
{
    struct timeval tv = {(time_t)seconds, (suseconds_t)((seconds - (time_t)seconds) * 1e6)};

    assert_int_equal(event_base_once(daemon_base(d), -1, EV_TIMEOUT, fn, arg, &tv), 0);
}

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
test_shutdown_phases_in_order(void **state)
{
    struct daemon *d = new_daemon();
    struct daemon_hook *once;

    /* Registered out of phase order on purpose. */
    daemon_on_shutdown(d, DAEMON_PHASE_LINKS, hook_links, NULL);
    daemon_on_shutdown(d, DAEMON_PHASE_SESSIONS, hook_sessions, NULL);
    once = daemon_on_shutdown(d, DAEMON_PHASE_ACCEPT, hook_once, &once);
    daemon_on_shutdown(d, DAEMON_PHASE_ACCEPT, hook_accept, NULL);
    in_loop(d, 0, shutdown_cb, d);
    assert_int_equal(daemon_run(d), 0);
    assert_string_equal(trace, "once;accept;sessions;links;");
    assert_true(daemon_shutting_down(d));
    daemon_free(d);
}

static void
idle_cb(evutil_socket_t fd, short what, void *arg)
{
    append("idle;");
    daemon_idle(arg);
}

/* A session that needs time to close its stream holds the daemon busy. */
static void
hook_close_later(struct daemon *d, void *arg)
{
    append("closing;");
    daemon_busy(d);
    in_loop(d, 0.05, idle_cb, d);
}

static void
test_shutdown_waits_for_busy(void **state)
{
    struct daemon *d = new_daemon();
    double start;

    daemon_on_shutdown(d, DAEMON_PHASE_SESSIONS, hook_close_later, NULL);
    in_loop(d, 0, shutdown_cb, d);
    start = now();
    assert_int_equal(daemon_run(d), 0);
    assert_string_equal(trace, "closing;idle;");
    /* Left as soon as the last session closed, long before the grace time. */
    assert_true(now() - start < DAEMON_GRACE_SECONDS / 2.0);
    daemon_free(d);
}

/* Stays busy, and a second SIGTERM arrives while it is. */
static void
hook_stay_busy(struct daemon *d, void *arg)
{
    daemon_busy(d);
    in_loop(d, 0, signal_cb, arg);
}

static void
test_second_signal_exits_at_once(void **state)
{
    struct daemon *d = new_daemon();
    static int sig = SIGTERM;
    double start;

    daemon_on_shutdown(d, DAEMON_PHASE_SESSIONS, hook_stay_busy, &sig);
    in_loop(d, 0, signal_cb, &sig); /* a real SIGTERM through libevent */
    start = now();
    assert_int_equal(daemon_run(d), 0);
    assert_true(daemon_shutting_down(d));
    assert_true(now() - start < DAEMON_GRACE_SECONDS / 2.0);
    daemon_free(d);
}

static void
hook_reload(struct daemon *d, const struct conf *old, void *arg)
{
    if (arg != NULL) /* then stop: the SIGHUP is known to be handled */
        in_loop(d, 0, signal_cb, arg);
    reloads++;
    reload_old = old;
    /* The old configuration is still readable while hooks run. */
    assert_int_equal(old->log.level, LOG_LVL_ERR);
    assert_int_equal(daemon_conf(d)->log.level, LOG_LVL_WARN);
}

static void
test_reload_swaps_or_keeps(void **state)
{
    struct daemon *d = new_daemon();
    const struct conf *conf = daemon_conf(d);
    struct tls_ctx *tls = daemon_tls(d);

    daemon_on_reload(d, hook_reload, NULL);

    /* Refused: unknown option. Nothing changes, the hook does not run. */
    write_conf("warning", "bogus = 1;\n");
    assert_int_equal(daemon_reload(d), -1);
    assert_ptr_equal(daemon_conf(d), conf);
    assert_ptr_equal(daemon_tls(d), tls);
    assert_int_equal(reloads, 0);
    assert_int_equal(log_get_level(), LOG_LVL_ERR);

    /* Refused: the configuration is fine but the certificate is not (TLS fails). */
    {
        char crt[PATH_MAX * 2];
        FILE *f;

        snprintf(crt, sizeof(crt), "%s/certs/broken.crt", tmpdir);
        assert_non_null(f = fopen(crt, "w"));
        fputs("garbage\n", f);
        fclose(f);
        assert_non_null(f = fopen(cfg, "w"));
        fputs("log = { level = \"warning\"; };\n"
              "hosts = ( { domain = \"example.org\"; certificate = \"certs/broken.crt\";\n"
              "  key = \"certs/example.org.key\"; } );\n",
              f);
        fclose(f);
    }
    assert_int_equal(daemon_reload(d), -1);
    assert_ptr_equal(daemon_conf(d), conf);
    assert_ptr_equal(daemon_tls(d), tls);
    assert_int_equal(reloads, 0);

    /* Accepted: both swapped, the level applied, the hook saw the old one. */
    write_conf("warning", "");
    assert_int_equal(daemon_reload(d), 0);
    assert_int_equal(reloads, 1);
    assert_ptr_equal(reload_old, conf);
    assert_int_equal(daemon_conf(d)->log.level, LOG_LVL_WARN);
    assert_int_equal(log_get_level(), LOG_LVL_WARN);
    daemon_free(d);
}

/* SIGHUP reaches daemon_reload() through the loop. */
static void
test_sighup_reloads(void **state)
{
    struct daemon *d = new_daemon();
    static int hup = SIGHUP, term = SIGTERM;

    daemon_on_reload(d, hook_reload, &term);
    write_conf("warning", "");
    in_loop(d, 0, signal_cb, &hup);
    assert_int_equal(daemon_run(d), 0);
    assert_int_equal(reloads, 1);
    daemon_free(d);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shutdown_phases_in_order),
        cmocka_unit_test(test_shutdown_waits_for_busy),
        cmocka_unit_test(test_second_signal_exits_at_once),
        cmocka_unit_test(test_reload_swaps_or_keeps),
        cmocka_unit_test(test_sighup_reloads),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
