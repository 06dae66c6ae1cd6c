/*
 * The JSON event log: RFC 3339 UTC times, one parseable JSON object per line with the
 * documented fields for each event (driven through the stream registry hooks as the
 * daemon drives it), reopen after rotation, and a clear error for a file it cannot open.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "s2s/eventlog.h"
#include "s2s/policy.h"
#include "s2s/peerauth.h"
#include "s2s/stats.h"

static char dir[PATH_MAX], path[PATH_MAX + 32];

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
    (void)why;
}

static const struct s2s_stream_ops fake_ops = {fake_state, fake_conn, fake_close};

static int
setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/test_eventlog.XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(path, sizeof(path), "%s/events.jsonl", dir);
    return 0;
}

static int
teardown(void **state)
{
    char p[PATH_MAX + 40];

    (void)state;
    unlink(path);
    snprintf(p, sizeof(p), "%s.1", path);
    unlink(p);
    rmdir(dir);
    return 0;
}

/* The lines of a file, each parsed; asserts every line is a JSON object. */
static json_t *
read_lines(const char *file)
{
    json_t *arr = json_array();
    char line[4096];
    FILE *fp = fopen(file, "r");

    assert_non_null(fp);
    while (fgets(line, sizeof(line), fp) != NULL) {
        json_error_t e;
        json_t *o = json_loads(line, 0, &e);

        if (o == NULL)
            fail_msg("not JSON: %s (%s)", line, e.text);
        assert_true(json_is_object(o));
        json_array_append_new(arr, o);
    }
    fclose(fp);
    return arr;
}

static void
has_fields(const json_t *o, const char *const *keys)
{
    for (; *keys != NULL; keys++)
        if (json_object_get(o, *keys) == NULL)
            fail_msg("event %s lacks \"%s\"", json_string_value(json_object_get(o, "event")),
                     *keys);
}

static void
test_time_format(void **state)
{
    struct timespec a = {0, 5000000}, b = {1700000000, 999999999};
    char buf[40];

    (void)state;
    eventlog_time(buf, sizeof(buf), &a);
    assert_string_equal(buf, "1970-01-01T00:00:00.005Z");
    eventlog_time(buf, sizeof(buf), &b);
    assert_string_equal(buf, "2023-11-14T22:13:20.999Z");
}

static void
test_stream_events(void **state)
{
    static const char *const common[] = {"time", "event", "id", "direction", "peer", NULL};
    static const char *const authd[] = {
        "local",       "remote", "method", "tls_version",        "cipher",
        "certificate", "dnssec", "dane",   "fingerprint_sha256", NULL};
    static const char *const closed[] = {"pairs",       "reason",   "duration",  "stanzas_in",
                                         "stanzas_out", "bytes_in", "bytes_out", NULL};
    static const char *const bounce[] = {"time",  "event",     "local",  "remote",
                                         "count", "condition", "reason", NULL};
    struct peerauth pa = {.method = PEERAUTH_DIALBACK,
                          .tls_version = "TLSv1.2",
                          .cipher = "ECDHE-RSA-AES128-GCM-SHA256",
                          .cert = PEERAUTH_CERT_MISMATCH};
    struct s2s_stream st = {0};
    struct eventlog *el;
    char err[256];
    json_t *lines, *o;

    (void)state;
    assert_non_null(el = eventlog_new(path, false, err, sizeof(err)));
    eventlog_install(el);
    s2s_stream_register(&st, false, &st, &fake_ops, &pa, "192.0.2.7:40000");
    s2s_stream_add_pair(&st, "a.example", "remote.example");
    st.stanzas_in = 3;
    s2s_stream_reason(&st, "idle");
    s2s_stream_reason(&st, "ignored: the first reason stays");
    s2s_stream_unregister(&st);
    s2s_bounce_hook("a.example", "down.example", 4, XMPP_STANZA_ERR_REMOTE_SERVER_NOT_FOUND,
                    "DNS: no such domain");
    eventlog_free(el); /* uninstalls: later events go nowhere */
    s2s_bounce_hook("a.example", "x.example", 1, XMPP_STANZA_ERR_REMOTE_SERVER_TIMEOUT, "late");

    lines = read_lines(path);
    assert_int_equal(json_array_size(lines), 4);
    o = json_array_get(lines, 0);
    has_fields(o, common);
    assert_string_equal(json_string_value(json_object_get(o, "event")), "stream_opened");
    assert_string_equal(json_string_value(json_object_get(o, "id")), "in-1");
    o = json_array_get(lines, 1);
    has_fields(o, common);
    has_fields(o, authd);
    assert_string_equal(json_string_value(json_object_get(o, "method")), "dialback");
    assert_string_equal(json_string_value(json_object_get(o, "certificate")), "wrong-name");
    assert_true(json_is_null(json_object_get(o, "fingerprint_sha256"))); /* no conn here */
    o = json_array_get(lines, 2);
    has_fields(o, common);
    has_fields(o, closed);
    assert_string_equal(json_string_value(json_object_get(o, "reason")), "idle");
    assert_int_equal(json_integer_value(json_object_get(o, "stanzas_in")), 3);
    assert_int_equal(json_array_size(json_object_get(o, "pairs")), 1);
    o = json_array_get(lines, 3);
    has_fields(o, bounce);
    assert_int_equal(json_integer_value(json_object_get(o, "count")), 4);
    assert_string_equal(json_string_value(json_object_get(o, "condition")),
                        "remote-server-not-found");
    json_decref(lines);
}

/*
 * Policy refusals: a stream refusal is one line with every documented field; a flood of
 * stanza refusals by one rule is one line at once, then the rest of its second summed in
 * one line written by the timer.
 */
static void
test_policy_refusals(void **state)
{
    static const char *const fields[] = {"time",   "event", "what", "action", "direction", "local",
                                         "remote", "rule",  "file", "line",   "count",     NULL};
    static const char *const stream_fields[] = {"peer", "term", "reason", NULL};
    struct policy_decision d = {.verdict = POLICY_REFUSE,
                                .term = "min_tls",
                                .rule = "partners",
                                .file = "/etc/s2sproxy/policy.conf",
                                .line = 12};
    struct event_base *base = event_base_new();
    struct eventlog *el;
    char err[256];
    json_t *lines, *o;

    (void)state;
    unlink(path); /* the file of the tests before */
    assert_non_null(base);
    snprintf(d.text, sizeof(d.text), "TLS 1.2 is below 1.3");
    assert_non_null(el = eventlog_new(path, false, err, sizeof(err)));
    eventlog_set_base(el, base);
    eventlog_install(el);
    s2s_policy_refusal("stream", true, "a.example", "old.example", "192.0.2.9", 0, &d);
    d.verdict = POLICY_DROP;
    d.rule = "no-spam";
    d.term = NULL;
    d.line = 20;
    for (int i = 0; i < 1000; i++)
        s2s_policy_refusal("stanza", true, "a.example", i == 0 ? "spam.example" : "other.example",
                           NULL, 1, &d);
    lines = read_lines(path);
    assert_int_equal(json_array_size(lines), 2); /* the stream, the first stanza */
    json_decref(lines);
    /* the timer writes the sum at the end of the second (bounded: one run) */
    assert_int_equal(event_base_loop(base, EVLOOP_ONCE), 0);
    lines = read_lines(path);
    assert_int_equal(json_array_size(lines), 3);
    o = json_array_get(lines, 0);
    has_fields(o, fields);
    has_fields(o, stream_fields);
    assert_string_equal(json_string_value(json_object_get(o, "event")), "policy_refusal");
    assert_string_equal(json_string_value(json_object_get(o, "what")), "stream");
    assert_string_equal(json_string_value(json_object_get(o, "action")), "refuse");
    assert_string_equal(json_string_value(json_object_get(o, "term")), "min_tls");
    assert_string_equal(json_string_value(json_object_get(o, "rule")), "partners");
    assert_int_equal(json_integer_value(json_object_get(o, "line")), 12);
    assert_string_equal(json_string_value(json_object_get(o, "peer")), "192.0.2.9");
    assert_string_equal(json_string_value(json_object_get(o, "reason")), "TLS 1.2 is below 1.3");
    o = json_array_get(lines, 1);
    has_fields(o, fields);
    assert_string_equal(json_string_value(json_object_get(o, "what")), "stanza");
    assert_string_equal(json_string_value(json_object_get(o, "action")), "drop");
    assert_string_equal(json_string_value(json_object_get(o, "rule")), "no-spam");
    assert_string_equal(json_string_value(json_object_get(o, "remote")), "spam.example");
    assert_int_equal(json_integer_value(json_object_get(o, "count")), 1);
    o = json_array_get(lines, 2);
    has_fields(o, fields);
    assert_string_equal(json_string_value(json_object_get(o, "rule")), "no-spam");
    assert_string_equal(json_string_value(json_object_get(o, "remote")), "other.example");
    assert_int_equal(json_integer_value(json_object_get(o, "count")), 999);
    json_decref(lines);
    eventlog_free(el);
    event_base_free(base);
}

static void
test_reopen_after_rotation(void **state)
{
    char rotated[PATH_MAX + 40], err[256];
    struct eventlog *el;
    json_t *a, *b;

    (void)state;
    unlink(path);
    snprintf(rotated, sizeof(rotated), "%s.1", path);
    assert_non_null(el = eventlog_new(path, false, err, sizeof(err)));
    eventlog_emit(el, "test", json_pack("{s:i}", "n", 1));
    assert_int_equal(rename(path, rotated), 0);
    eventlog_emit(el, "test", json_pack("{s:i}", "n", 2)); /* still the old file */
    assert_int_equal(eventlog_reopen(el, err, sizeof(err)), 0);
    eventlog_emit(el, "test", json_pack("{s:i}", "n", 3));
    eventlog_free(el);
    a = read_lines(rotated);
    b = read_lines(path);
    assert_int_equal(json_array_size(a), 2);
    assert_int_equal(json_array_size(b), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(b, 0), "n")), 3);
    json_decref(a);
    json_decref(b);
}

static void
test_unwritable(void **state)
{
    char err[256];

    (void)state;
    assert_null(eventlog_new("/nonexistent-dir/events.jsonl", false, err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent-dir/events.jsonl"));
    assert_non_null(strstr(err, "No such file"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time_format),     cmocka_unit_test(test_stream_events),
        cmocka_unit_test(test_policy_refusals), cmocka_unit_test(test_reopen_after_rotation),
        cmocka_unit_test(test_unwritable),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
