/*
 * The Prometheus exposition: every sample belongs to a family announced by HELP and TYPE
 * lines before it, label values are escaped (\\, \", \n), histograms are cumulative and
 * end in +Inf = count, and per-remote-domain series stay bounded (configured domains plus
 * top_domains busiest) however many domains come and go.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "s2s/conf.h"
#include "s2s/metrics.h"
#include "s2s/ping.h"
#include "s2s/policy.h"
#include "tests/unit/helpers/policytest.h"
#include "s2s/peerauth.h"
#include "s2s/stats.h"

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
static struct peerauth auth = {.method = PEERAUTH_SASL_EXTERNAL, .tls_version = "TLSv1.3"};

static const struct policy *render_policy;

static char *
render(const struct conf_metrics *mc)
{
    struct metrics_env env = {.policy = render_policy};
    struct evbuffer *b = evbuffer_new();
    size_t n;
    char *text;

    metrics_render(&env, mc, b);
    n = evbuffer_get_length(b);
    text = malloc(n + 1);
    evbuffer_remove(b, text, n);
    text[n] = '\0';
    evbuffer_free(b);
    return text;
}

/* Checks the whole text; returns the number of s2sproxy_domain_stanzas_total samples. */
static size_t
check_format(char *text)
{
    char families[128][96];
    size_t nfam = 0, ndomain = 0;
    char *save, *line;

    for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        char name[96], help[96];
        size_t len;
        bool known = false;

        if (sscanf(line, "# HELP %95s", help) == 1) {
            assert_true(nfam < 128);
            snprintf(families[nfam++], sizeof(families[0]), "%s", help);
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            assert_true(nfam > 0);
            /* TYPE names the family its HELP just announced */
            assert_int_equal(strncmp(line + 7, families[nfam - 1], strlen(families[nfam - 1])), 0);
            assert_true(strstr(line, " counter") || strstr(line, " gauge") ||
                        strstr(line, " histogram"));
            continue;
        }
        assert_true(line[0] != '#');
        len = strcspn(line, "{ ");
        assert_true(len > 0 && len < sizeof(name));
        memcpy(name, line, len);
        name[len] = '\0';
        for (size_t i = 0; i < nfam && !known; i++) {
            size_t fl = strlen(families[i]);
            known = strcmp(name, families[i]) == 0 ||
                    (strncmp(name, families[i], fl) == 0 &&
                     (strcmp(name + fl, "_bucket") == 0 || strcmp(name + fl, "_sum") == 0 ||
                      strcmp(name + fl, "_count") == 0));
        }
        if (!known)
            fail_msg("sample without HELP/TYPE: %s", line);
        if (strcmp(name, "s2sproxy_domain_stanzas_total") == 0)
            ndomain++;
    }
    return ndomain;
}

static void
test_label_escape(void **state)
{
    char out[64];

    (void)state;
    metrics_label_escape("a\"b\\c\nd", out, sizeof(out));
    assert_string_equal(out, "a\\\"b\\\\c\\nd");
    /* truncation never leaves half an escape */
    metrics_label_escape("\"\"\"\"\"\"", out, 8);
    assert_string_equal(out, "\\\"\\\"\\\"");
    metrics_label_escape("\"\"\"\"\"\"", out, 6);
    assert_string_equal(out, "\\\"\\\"");
}

static void
test_histogram(void **state)
{
    struct s2s_hist h = {0};

    (void)state;
    s2s_hist_observe(&h, 0.0005); /* first bucket */
    s2s_hist_observe(&h, 0.001);  /* le is inclusive */
    s2s_hist_observe(&h, 0.3);
    s2s_hist_observe(&h, 99); /* +Inf */
    assert_int_equal(h.bucket[0], 2);
    assert_int_equal(h.bucket[8], 1); /* 0.25 < 0.3 <= 0.5 */
    assert_int_equal(h.bucket[S2S_HIST_NBOUNDS], 1);
    assert_int_equal(h.count, 4);
}

static void
test_exposition_format(void **state)
{
    struct s2s_stream st[3] = {0};
    char *conf_domains[] = {"conf.example"};
    struct conf_metrics mc = {.domains = conf_domains, .ndomains = 1, .top_domains = 20};
    char *text;

    (void)state;
    memset(&s2s_stats, 0, sizeof(s2s_stats));
    s2s_stats.out_accepted = 3;
    s2s_stats.bounced_by[XMPP_STANZA_ERR_REMOTE_SERVER_TIMEOUT] = 2;
    s2s_hist_observe(&s2s_stats.tls_handshake, 0.002);
    s2s_hist_observe(&s2s_stats.tls_handshake, 0.2);
    for (int i = 0; i < 3; i++) {
        s2s_stream_register(&st[i], i == 0, &st[i], &fake_ops, &auth, "192.0.2.1:5269");
        s2s_stream_add_pair(&st[i], "a.example", i == 2 ? "we\"ird\\.example" : "b.example");
        st[i].stanzas_out = 5;
    }
    text = render(&mc);
    assert_non_null(strstr(text, "s2sproxy_streams{direction=\"in\",state=\"READY\","
                                 "auth=\"sasl-external\",tls_version=\"TLSv1.3\"} 2\n"));
    assert_non_null(
        strstr(text, "s2sproxy_bounces_total{condition=\"remote-server-timeout\"} 2\n"));
    /* cumulative buckets, +Inf equals count */
    assert_non_null(strstr(text, "s2sproxy_tls_handshake_seconds_bucket{le=\"0.001\"} 0\n"));
    assert_non_null(strstr(text, "s2sproxy_tls_handshake_seconds_bucket{le=\"0.0025\"} 1\n"));
    assert_non_null(strstr(text, "s2sproxy_tls_handshake_seconds_bucket{le=\"10\"} 2\n"));
    assert_non_null(strstr(text, "s2sproxy_tls_handshake_seconds_bucket{le=\"+Inf\"} 2\n"));
    assert_non_null(strstr(text, "s2sproxy_tls_handshake_seconds_count 2\n"));
    /* escaped label value; the configured domain has series even without traffic */
    assert_non_null(strstr(text, "{domain=\"we\\\"ird\\\\.example\",direction=\"out\"} 5\n"));
    assert_non_null(strstr(text, "{domain=\"b.example\",direction=\"out\"} 10\n"));
    assert_non_null(strstr(text, "{domain=\"conf.example\",direction=\"out\"} 0\n"));
    assert_int_equal(check_format(text), 3 * 2);
    free(text);
    for (int i = 0; i < 3; i++)
        s2s_stream_unregister(&st[i]);
}

/* Policy decisions by rule (the running policy's hits, refusals by rule), policy
 * actions, drops by reason and ping counters: all present, well formed, right values. */
static void
test_policy_and_drops(void **state)
{
    char tmpl[] = "/tmp/test_metrics.XXXXXX", err[512], file[64];
    struct policy *p;
    struct policy_stanza_facts f = {.dir = POLICY_OUT,
                                    .local = "a.example",
                                    .remote = "spam.example",
                                    .kind = POLICY_KIND_MESSAGE,
                                    .size = 10};
    struct policy_decision d;
    char *text;

    (void)state;
    assert_non_null(mkdtemp(tmpl));
    p = policytest_load_text(
        tmpl, "p.conf",
        "policy = { stanzas = (\n"
        "  { name = \"no-spam\"; remote = \"spam.example\"; action = \"drop\"; },\n"
        "  { name = \"no-spam\"; remote = \"junk.example\"; action = \"drop\"; }\n"
        "); };\n",
        err, sizeof(err));
    if (p == NULL)
        fail_msg("%s", err);
    memset(&s2s_stats, 0, sizeof(s2s_stats));
    for (int i = 0; i < 3; i++)
        assert_int_equal(policy_check_stanza(p, &f, &d), POLICY_DROP);
    f.remote = "junk.example";
    assert_int_equal(policy_check_stanza(p, &f, &d), POLICY_DROP);
    s2s_policy_refusal("stanza", false, "a.example", "junk.example", NULL, 1, &d);
    s2s_stats.policy_dropped = 4;
    s2s_stats.dropped_by[S2S_DROP_POLICY] = 4;
    s2s_stats.in_bounced = 2;
    ping_counts.answered = 7;
    render_policy = p;
    text = render(NULL);
    render_policy = NULL;
    /* two rules of one name: one series, summed */
    assert_non_null(strstr(text, "s2sproxy_policy_rule_hits_total{rule=\"no-spam\"} 4\n"));
    assert_null(
        strstr(strstr(text, "{rule=\"no-spam\"} 4\n") + 1, "_hits_total{rule=\"no-spam\"}"));
    assert_non_null(strstr(text, "s2sproxy_policy_rule_hits_total{rule=\"default\"} 0\n"));
    assert_non_null(
        strstr(text, "s2sproxy_policy_refusals_total{rule=\"no-spam\",kind=\"stanza\"} 1\n"));
    assert_non_null(strstr(text, "s2sproxy_policy_actions_total{action=\"dropped\"} 4\n"));
    assert_non_null(strstr(text, "s2sproxy_dropped_total{reason=\"policy\"} 4\n"));
    assert_non_null(strstr(text, "s2sproxy_dropped_total{reason=\"unbounceable\"} 0\n"));
    assert_non_null(
        strstr(text, "s2sproxy_stanzas_total{direction=\"in\",outcome=\"bounced\"} 2\n"));
    assert_non_null(strstr(text, "s2sproxy_pings_total{result=\"answered\"} 7\n"));
    check_format(text);
    free(text);
    policy_unref(p);
    snprintf(file, sizeof(file), "%s/p.conf", tmpl);
    unlink(file);
    rmdir(tmpl);
}

/* 6000 remote domains come and go: the series stay configured + top_domains. */
static void
test_domain_labels_bounded(void **state)
{
    char *conf_domains[] = {"conf.example"};
    struct conf_metrics mc = {.domains = conf_domains, .ndomains = 1, .top_domains = 5};
    struct s2s_stream st;
    char remote[64], *text;

    (void)state;
    metrics_track_domains();
    for (int i = 0; i < 6000; i++) {
        memset(&st, 0, sizeof(st));
        snprintf(remote, sizeof(remote), "flood%d.example", i);
        s2s_stream_register(&st, false, &st, &fake_ops, &auth, "192.0.2.2:1");
        s2s_stream_add_pair(&st, "a.example", remote);
        st.stanzas_in = (uint64_t)i; /* the last ones tracked are the busiest */
        s2s_stream_unregister(&st);
    }
    text = render(&mc);
    /* top 5 of the tracked (bounded) table: flood4091..4095 */
    assert_non_null(strstr(text, "{domain=\"flood4095.example\",direction=\"in\"} 4095\n"));
    assert_non_null(strstr(text, "{domain=\"flood4091.example\",direction=\"in\"} 4091\n"));
    assert_null(strstr(text, "flood4090.example"));
    assert_null(strstr(text, "flood5999.example")); /* beyond METRICS_MAX_DOMAINS */
    assert_int_equal(check_format(text), (1 + 5) * 2);
    free(text);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_label_escape),      cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_exposition_format), cmocka_unit_test(test_domain_labels_bounded),
        cmocka_unit_test(test_policy_and_drops),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
