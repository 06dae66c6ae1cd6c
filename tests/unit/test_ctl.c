/*
 * The admin socket: answers to each command from a registry of fake streams (fields,
 * close by id and by domain, errors for malformed commands), the certificate status
 * names, and the socket itself: mode 0600, one line in and one JSON answer out through
 * the event loop, an over-long line refused, a stale socket replaced, a file in the way
 * refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>
#include <openssl/x509_vfy.h>

#include "s2s/ctl.h"
#include "s2s/peerauth.h"
#include "s2s/ping.h"
#include "s2s/policy.h"
#include "tests/unit/helpers/policytest.h"
#include "s2s/stats.h"

static char dir[64], sock[96];
static int closes;
static char closed_why[128];

static const char *
fake_state(const void *session)
{
    (void)session;
    return "READY";
}

static const struct conn *
fake_conn(const void *session)
{
    (void)session;
    return NULL;
}

static void
fake_close(void *session, const char *why)
{
    (void)session;
    closes++;
    snprintf(closed_why, sizeof(closed_why), "%s", why);
}

static const struct s2s_stream_ops fake_ops = {fake_state, fake_conn, fake_close};

static int
setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/test_ctl.XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(sock, sizeof(sock), "%s/ctl.sock", dir);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    unlink(sock);
    rmdir(dir);
    return 0;
}

static const char *
error_of(json_t *ans)
{
    return json_string_value(json_object_get(ans, "error"));
}

static void
test_cert_status(void **state)
{
    struct peerauth pa = {0};

    (void)state;
    assert_string_equal(ctl_cert_status(&pa), "none");
    pa.cert = PEERAUTH_CERT_VALID;
    assert_string_equal(ctl_cert_status(&pa), "valid");
    pa.cert = PEERAUTH_CERT_MISMATCH;
    assert_string_equal(ctl_cert_status(&pa), "wrong-name");
    pa.cert = PEERAUTH_CERT_UNTRUSTED;
    pa.verify_error = X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY;
    assert_string_equal(ctl_cert_status(&pa), "untrusted");
    pa.verify_error = X509_V_ERR_CERT_HAS_EXPIRED;
    assert_string_equal(ctl_cert_status(&pa), "expired");
}

static void
test_answers(void **state)
{
    struct peerauth strong = {.method = PEERAUTH_SASL_EXTERNAL,
                              .tls_version = "TLSv1.3",
                              .cert = PEERAUTH_CERT_VALID,
                              .dnssec = true,
                              .dane = true};
    struct peerauth weak = {.method = PEERAUTH_DIALBACK, .tls_version = "TLSv1.2"};
    struct ctl_env env = {0};
    struct s2s_stream in = {0}, out = {0};
    json_t *ans, *st, *d;
    char id[32];

    (void)state;
    s2s_stream_register(&in, false, &in, &fake_ops, &weak, "192.0.2.1:4000");
    s2s_stream_register(&out, true, &out, &fake_ops, &strong, "192.0.2.1:5269");
    s2s_stream_add_pair(&in, "a.example", "r.example");
    s2s_stream_add_pair(&out, "a.example", "r.example");
    s2s_stream_add_pair(&out, "b.example", "r.example"); /* multiplexed */
    out.stanzas_out = 7;

    ans = ctl_answer(&env, "streams");
    assert_int_equal(json_array_size(json_object_get(ans, "streams")), 2);
    st = json_array_get(json_object_get(ans, "streams"), 1);
    ctl_stream_id(&out, id, sizeof(id));
    assert_string_equal(json_string_value(json_object_get(st, "id")), id);
    assert_string_equal(json_string_value(json_object_get(st, "direction")), "out");
    assert_string_equal(json_string_value(json_object_get(st, "tls_version")), "TLSv1.3");
    assert_string_equal(json_string_value(json_object_get(st, "auth")), "sasl-external");
    assert_string_equal(json_string_value(json_object_get(st, "certificate")), "valid");
    assert_true(json_is_true(json_object_get(st, "dane")));
    assert_int_equal(json_array_size(json_object_get(st, "pairs")), 2);
    assert_int_equal(json_integer_value(json_object_get(st, "stanzas_out")), 7);
    /* inbound streams have no DNSSEC/DANE of ours to show */
    assert_null(json_object_get(json_array_get(json_object_get(ans, "streams"), 0), "dane"));
    json_decref(ans);

    /* the domain's posture is the weakest of its streams */
    ans = ctl_answer(&env, "domains");
    d = json_object_get(json_object_get(ans, "domains"), "r.example");
    assert_non_null(d);
    assert_string_equal(json_string_value(json_object_get(d, "tls_version")), "TLSv1.2");
    assert_string_equal(json_string_value(json_object_get(d, "auth")), "dialback");
    assert_string_equal(json_string_value(json_object_get(d, "certificate")), "none");
    assert_int_equal(json_integer_value(json_object_get(d, "streams_in")), 1);
    assert_int_equal(json_integer_value(json_object_get(d, "streams_out")), 1);
    assert_int_equal(json_integer_value(json_object_get(d, "stanzas_out")), 7);
    json_decref(ans);

    ans = ctl_answer(&env, "stats");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(ans, "streams"), "live_out")), 1);
    json_decref(ans);

    /* close by id: only that one; by domain: every stream carrying it */
    closes = 0;
    ans = ctl_answer(
        &env, (snprintf(id, sizeof(id), "close in-%llu", (unsigned long long)in.serial), id));
    assert_null(error_of(ans));
    assert_int_equal(closes, 1);
    assert_non_null(strstr(closed_why, "ctl close"));
    json_decref(ans);
    ans = ctl_answer(&env, "close R.EXAMPLE");
    assert_int_equal(json_array_size(json_object_get(ans, "closed")), 2);
    assert_int_equal(closes, 3);
    json_decref(ans);

    s2s_stream_unregister(&in);
    s2s_stream_unregister(&out);
}

static void
test_malformed(void **state)
{
    static const struct {
        const char *line, *want;
    } cases[] = {
        {"", "empty command"},
        {"   ", "empty command"},
        {"frobnicate", "unknown command \"frobnicate\""},
        {"close", "usage: close"},
        {"close a b", "usage: close"},
        {"stats now", "takes no argument"},
        {"close nobody.example", "no live stream"},
        {"reload", "no daemon"},
        {"\xff\xff", "printable ASCII"}, /* found by fuzz_ctl: jansson refused to echo it */
        {"close \x01", "printable ASCII"},
    };
    struct ctl_env env = {0};

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *ans = ctl_answer(&env, cases[i].line);
        const char *e = error_of(ans);

        if (e == NULL || strstr(e, cases[i].want) == NULL)
            fail_msg("\"%s\": got %s, want an error with \"%s\"", cases[i].line, e ? e : "no error",
                     cases[i].want);
        json_decref(ans);
    }
    {
        json_t *ans = ctl_answer(&env, "policy");

        assert_null(error_of(ans));
        assert_false(json_is_true(json_object_get(ans, "configured")));
        assert_int_equal(json_array_size(json_object_get(ans, "rules")), 0);
        json_decref(ans);
    }
}

/* Connects, sends req, runs the loop (bounded) until the daemon closed; the answer. */
static json_t *
roundtrip(struct event_base *base, const char *req, size_t reqlen)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    char buf[65536];
    size_t used = 0;
    int fd;

    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock);
    assert_true((fd = socket(AF_UNIX, SOCK_STREAM, 0)) >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    assert_int_equal(write(fd, req, reqlen), (ssize_t)reqlen);
    assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
    /* read what is there, else let the daemon side run once (it always has an event
     * pending until it has closed: accept, read, write, free) */
    for (int i = 0; i < 1000; i++) {
        ssize_t n = read(fd, buf + used, sizeof(buf) - 1 - used);

        if (n == 0)
            break;
        if (n > 0) {
            used += (size_t)n;
            continue;
        }
        if (errno != EAGAIN)
            fail_msg("read: %s", strerror(errno));
        event_base_loop(base, EVLOOP_ONCE);
    }
    close(fd);
    buf[used] = '\0';
    assert_true(used > 0 && buf[used - 1] == '\n');
    return json_loads(buf, 0, NULL);
}

/* The rule hits of the running policy and the refusal counters by rule, as the engine
 * counts them (s2s_policy_refusal), in "policy" and "stats". */
static void
test_policy_answer(void **state)
{
    char err[512];
    struct policy *p = policytest_load_text(
        dir, "p.conf",
        "policy = { stanzas = ( { name = \"no-spam\"; remote = \"spam.example\"; action = "
        "\"bounce\"; } ); };\n",
        err, sizeof(err));
    struct policy_stanza_facts f = {.dir = POLICY_IN,
                                    .local = "a.example",
                                    .remote = "spam.example",
                                    .kind = POLICY_KIND_MESSAGE,
                                    .type = "chat",
                                    .size = 100};
    struct policy_decision d;
    struct ctl_env env = {0};
    json_t *ans, *rule, *row;
    uint64_t dropped_before = s2s_stats.dropped_by[S2S_DROP_UNBOUNCEABLE];
    char path[160];

    (void)state;
    if (p == NULL)
        fail_msg("%s", err);
    env.policy = p;
    assert_int_equal(policy_check_stanza(p, &f, &d), POLICY_BOUNCE);
    assert_int_equal(policy_check_stanza(p, &f, &d), POLICY_BOUNCE);
    s2s_policy_refusal("stanza", true, "a.example", "spam.example", NULL, 1, &d);
    s2s_stats.policy_bounced++;
    s2s_stats.dropped_by[S2S_DROP_UNBOUNCEABLE]++;
    ping_counts.sent += 3;

    ans = ctl_answer(&env, "policy");
    assert_null(error_of(ans));
    assert_true(json_is_true(json_object_get(ans, "configured")));
    assert_int_equal(json_array_size(json_object_get(ans, "rules")), 2); /* + default */
    rule = json_array_get(json_object_get(ans, "rules"), 0);
    assert_string_equal(json_string_value(json_object_get(rule, "name")), "no-spam");
    assert_int_equal(json_integer_value(json_object_get(rule, "hits")), 2);
    assert_int_equal(json_integer_value(json_object_get(rule, "line")), 1);
    snprintf(path, sizeof(path), "%s/p.conf", dir);
    assert_non_null(strstr(json_string_value(json_object_get(rule, "file")), "p.conf"));
    rule = json_array_get(json_object_get(ans, "rules"), 1);
    assert_string_equal(json_string_value(json_object_get(rule, "name")), "default");
    assert_int_equal(json_integer_value(json_object_get(rule, "hits")), 0);
    row = json_array_get(json_object_get(ans, "refusals"), 0);
    assert_string_equal(json_string_value(json_object_get(row, "rule")), "no-spam");
    assert_int_equal(json_integer_value(json_object_get(row, "stanza")), 1);
    assert_int_equal(json_integer_value(json_object_get(row, "stream")), 0);
    assert_true(json_integer_value(json_object_get(json_object_get(ans, "counters"), "bounced")) >=
                1);
    json_decref(ans);

    ans = ctl_answer(&env, "stats");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(ans, "dropped_by"), "unbounceable")),
        (json_int_t)(dropped_before + 1));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(ans, "ping"), "sent")),
                     (json_int_t)ping_counts.sent);
    assert_non_null(json_object_get(json_object_get(ans, "inbound"), "bounced"));
    assert_non_null(json_object_get(json_object_get(ans, "policy"), "refused"));
    json_decref(ans);
    policy_unref(p);
    unlink(path);
}

static void
test_socket(void **state)
{
    struct event_base *base = event_base_new();
    struct ctl_env env = {0};
    struct ctl *c;
    struct stat st;
    char err[256], big[CTL_MAX_LINE * 3];
    json_t *ans;
    int fd;

    (void)state;
    assert_non_null(c = ctl_new(base, sock, &env, err, sizeof(err)));
    assert_int_equal(stat(sock, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    ans = roundtrip(base, "stats\r\n", 7);
    assert_non_null(ans);
    assert_non_null(json_object_get(ans, "outbound"));
    json_decref(ans);
    memset(big, 'x', sizeof(big));
    ans = roundtrip(base, big, sizeof(big));
    assert_string_equal(error_of(ans), "request line too long");
    json_decref(ans);
    /* a second daemon must not steal a live socket */
    assert_null(ctl_new(base, sock, &env, err, sizeof(err)));
    assert_non_null(strstr(err, "another daemon"));
    ctl_free(c);
    assert_int_equal(stat(sock, &st), -1);

    /* a stale socket (nobody listening) is replaced */
    {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};

        snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
        close(fd);
    }
    assert_non_null(c = ctl_new(base, sock, &env, err, sizeof(err)));
    ctl_free(c);
    /* a regular file in the way is an error, not deleted */
    assert_true((fd = open(sock, O_CREAT | O_WRONLY, 0600)) >= 0);
    close(fd);
    assert_null(ctl_new(base, sock, &env, err, sizeof(err)));
    assert_non_null(strstr(err, "not a socket"));
    assert_int_equal(stat(sock, &st), 0);
    event_base_free(base);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cert_status), cmocka_unit_test(test_answers),
        cmocka_unit_test(test_malformed),   cmocka_unit_test(test_policy_answer),
        cmocka_unit_test(test_socket),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
