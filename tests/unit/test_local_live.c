/*
 * s2s/local.c against a real local server (Prosody, ejabberd): the driver of the
 * integration tests tests/integration/test_local_*.py. Skipped unless the environment
 * names the server:
 *
 *   S2S_LOCAL_HOST, S2S_LOCAL_PORT   the component port (numeric address)
 *   S2S_LOCAL_NAME, S2S_LOCAL_SECRET the component name and secret
 *   S2S_LOCAL_DOMAIN                 the hosted domain
 *   S2S_LOCAL_FIFO                   a named pipe the test writes commands into
 *   S2S_LOCAL_TIMEOUT                seconds before the driver gives up (default 300)
 *
 * Commands, one per line on the pipe:
 *   send FROM TO ID BODY...   local_send() a chat message (built in jabber:server, as
 *                             the inbound side hands it over)
 *   stats                     print the counters
 *   quit                      local_free(), check the counters' invariant, exit
 * Output, one line per event on stdout (flushed): "up", "down",
 * "take name=… from=… to=… id=… type=… body=…", "bounce id=… cond=…",
 * "accepted id=… up=0|1", "refused id=…", "stats key=value …".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "s2s/local.h"
#include "s2s/log.h"
#include "s2s/stanza.h"

static struct event_base *base;
static struct local *L;
static struct evbuffer *cmdbuf;
static bool quit, timed_out;

static void
out(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static const char *
nz(const char *s)
{
    return s ? s : "-";
}

static void
take(void *arg, struct local *l, struct stanza *st)
{
    struct stanza_elem *body = stanza_elem_child(stanza_root(st), NULL, "body");

    (void)arg;
    (void)l;
    out("take name=%s from=%s to=%s id=%s type=%s body=%s", stanza_name(st),
        nz(stanza_attr(st, "from")), nz(stanza_attr(st, "to")), nz(stanza_attr(st, "id")),
        nz(stanza_attr(st, "type")), body ? stanza_elem_text(st, body, NULL) : "-");
    stanza_free(st);
}

static void
bounce(void *arg, struct local *l, struct stanza *st, enum xmpp_stanza_error cond, const char *why)
{
    (void)arg;
    (void)l;
    out("bounce id=%s cond=%s why=%s", nz(stanza_attr(st, "id")), xmpp_stanza_error_name(cond),
        why);
    stanza_free(st);
}

static void
link_state(void *arg, struct local *l, bool up)
{
    (void)arg;
    (void)l;
    out(up ? "up" : "down");
}

static void
print_stats(void)
{
    const struct local_stats *s = local_stats(L);

    out("stats to_local=%llu delivered=%llu bounced_timeout=%llu bounced_shutdown=%llu "
        "refused=%llu requeued=%llu acks=%llu queued=%zu inflight=%zu from_local=%llu "
        "passed_up=%llu "
        "rejected=%llu dropped=%llu connects=%llu handshakes=%llu handshake_failures=%llu "
        "disconnects=%llu",
        (unsigned long long)s->to_local, (unsigned long long)s->delivered,
        (unsigned long long)s->bounced_timeout, (unsigned long long)s->bounced_shutdown,
        (unsigned long long)s->refused, (unsigned long long)s->requeued,
        (unsigned long long)s->acks, s->queued, s->inflight, (unsigned long long)s->from_local,
        (unsigned long long)s->passed_up, (unsigned long long)s->rejected,
        (unsigned long long)s->dropped, (unsigned long long)s->connects,
        (unsigned long long)s->handshakes, (unsigned long long)s->handshake_failures,
        (unsigned long long)s->disconnects);
}

static void
cmd_send(char *args)
{
    char *from = strtok(args, " "), *to = strtok(NULL, " "), *id = strtok(NULL, " ");
    char *body = strtok(NULL, "");
    struct stanza *st;
    struct stanza_elem *b;

    if (from == NULL || to == NULL || id == NULL || body == NULL) {
        out("error bad send command");
        return;
    }
    st = stanza_new(STANZA_NS_SERVER, "message");
    assert_non_null(st);
    stanza_elem_set_attr(st, stanza_root(st), NULL, "from", from);
    stanza_elem_set_attr(st, stanza_root(st), NULL, "to", to);
    stanza_elem_set_attr(st, stanza_root(st), NULL, "id", id);
    stanza_elem_set_attr(st, stanza_root(st), NULL, "type", "chat");
    b = stanza_elem_add(st, stanza_root(st), NULL, "body");
    stanza_elem_add_text(st, b, body, strlen(body));
    if (local_send(L, st) == -1) {
        out("refused id=%s", id);
        stanza_free(st);
        return;
    }
    out("accepted id=%s up=%d", id, local_is_up(L));
}

static void
command(char *line)
{
    if (strncmp(line, "send ", 5) == 0)
        cmd_send(line + 5);
    else if (strcmp(line, "stats") == 0)
        print_stats();
    else if (strcmp(line, "quit") == 0)
        quit = true;
    else
        out("error unknown command %s", line);
}

static void
fifo_cb(evutil_socket_t fd, short what, void *arg)
{
    char *line;

    (void)what;
    (void)arg;
    while (evbuffer_read(cmdbuf, fd, 4096) > 0)
        ;
    while (!quit && (line = evbuffer_readln(cmdbuf, NULL, EVBUFFER_EOL_LF)) != NULL) {
        command(line);
        free(line);
    }
}

static void
timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    timed_out = true;
}

static const char *
env(const char *name)
{
    const char *v = getenv(name);

    return v && v[0] ? v : NULL;
}

static void
test_live(void **state)
{
    struct local_options o = {0};
    struct local_cbs cbs = {take, bounce, link_state, NULL};
    const char *fifo = env("S2S_LOCAL_FIFO");
    struct event *ev_fifo, *ev_to;
    struct timeval tv = {300, 0};
    const struct local_stats *s;
    int fd;

    (void)state;
    if (!env("S2S_LOCAL_PORT") || !fifo) {
        print_message("S2S_LOCAL_* not set: skipped (run by tests/integration/test_local_*)\n");
        skip();
    }
    o.host = env("S2S_LOCAL_HOST") ? env("S2S_LOCAL_HOST") : "127.0.0.1";
    o.port = (uint16_t)atoi(env("S2S_LOCAL_PORT"));
    o.name = env("S2S_LOCAL_NAME");
    o.domain = env("S2S_LOCAL_DOMAIN");
    o.secret = env("S2S_LOCAL_SECRET");
    o.backoff_min = 0.1;
    o.backoff_max = 1;
    if (env("S2S_LOCAL_TIMEOUT"))
        tv.tv_sec = atoi(env("S2S_LOCAL_TIMEOUT"));

    base = event_base_new();
    cmdbuf = evbuffer_new();
    /* O_RDWR: the pipe never reports EOF while the test reopens it for each command. */
    fd = open(fifo, O_RDWR | O_NONBLOCK);
    assert_true(fd >= 0);
    ev_fifo = event_new(base, fd, EV_READ | EV_PERSIST, fifo_cb, NULL);
    event_add(ev_fifo, NULL);
    ev_to = evtimer_new(base, timeout_cb, NULL);
    evtimer_add(ev_to, &tv);
    L = local_new(base, &o, &cbs);
    assert_non_null(L);
    out("started");
    while (!quit && !timed_out)
        event_base_loop(base, EVLOOP_ONCE);
    assert_false(timed_out);

    print_stats();
    s = local_stats(L);
    assert_int_equal(s->to_local, s->delivered + s->bounced_timeout + s->bounced_shutdown +
                                      s->queued + s->inflight);
    assert_int_equal(s->from_local, s->passed_up + s->rejected + s->dropped);
    local_free(L);
    /* Lets the graceful close run (bounded by the link's close timeout). */
    tv.tv_sec = 0;
    tv.tv_usec = 300000;
    timed_out = false;
    evtimer_add(ev_to, &tv);
    while (!timed_out)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(ev_fifo);
    event_free(ev_to);
    close(fd);
    evbuffer_free(cmdbuf);
    event_base_free(base);
    out("done");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_live),
    };

    signal(SIGPIPE, SIG_IGN);
    log_init("test_local_live", LOG_LVL_DEBUG, false);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
