/*
 * Policy evaluation cost: a 100,000-domain block list and 200 stanza rules.
 *
 *   bench_policy [ITERATIONS]      (default 2,000,000; build with CMAKE_BUILD_TYPE=Release)
 *
 * Prints nanoseconds per call for:
 *   stanza/all-rules   policy_check_stanza() for a stanza that no rule matches: all 200
 *                      rules are tried (the worst case of first-match), 20 of which look
 *                      the remote domain up in the 100k list and 100 in inline patterns
 *   stanza/early       the same with a stanza that rule 3 decides
 *   route              policy_check_route(): the federation lookup against the 100k
 *                      block list and 20 pattern entries (once per new route/stream)
 *   rate               policy_rate() with per-domain and per-address buckets
 *   list-load          reading the 100,000-line list file into a new table (once)
 *   empty policy       stanza check and rate with no policy section: the floor
 * Remote domains rotate over 4096 names, none of them listed, so lookups miss the way
 * almost all real traffic does.
 */
#include <libconfig.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "s2s/domainlist.h"
#include "s2s/log.h"
#include "s2s/policy.h"
#include "s2s/policy_conf.h"

#define NLIST    100000
#define NREMOTES 4096

static double
now_sec(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
write_list(const char *path)
{
    FILE *f = fopen(path, "w");

    if (f == NULL)
        fatal("%s", path);
    fprintf(f, "# generated block list\n");
    for (int i = 0; i < NLIST; i++)
        fprintf(f, "spam-%d.blocked%d.example\n", i, i % 101);
    fclose(f);
}

/* 200 rules: 100 with a remote pattern on messages (domain lookup each), 50 on a
 * namespace, 29 on a type, 20 on the block list, one that "early" stanzas hit. */
static void
write_conf(const char *path)
{
    FILE *f = fopen(path, "w");
    int n = 0;

    if (f == NULL)
        fatal("%s", path);
    fprintf(f, "hosts = ( { domain = \"example.org\"; } );\npolicy = {\n"
               "  rate = { stanzas = 1e9; bytes = 1e12; };\n"
               "  address_rate = { stanzas = 1e9; };\n  domains = (\n"
               "    { name = \"blocked\"; list = \"block.txt\"; federate = \"deny\"; }");
    for (int i = 0; i < 20; i++)
        fprintf(f,
                ",\n    { match = [\"partner%d.example\", \"*.partner%d.example\"]; "
                "auth = \"certificate\"; }",
                i, i);
    fprintf(f, "\n  );\n  stanzas = (\n");
    fprintf(f, "    { name = \"early\"; kind = \"iq\"; ns = \"urn:early\"; action = \"drop\"; }");
    n++;
    for (int i = 0; n < 200; i++) {
        switch (i % 20) {
        case 0:
        case 1:
            fprintf(f, ",\n    { remote_list = \"block.txt\"; direction = \"in\"; "
                       "action = \"drop\"; }");
            break;
        case 2:
        case 3:
        case 4:
        case 5:
        case 6:
        case 7:
        case 8:
        case 9:
        case 10:
        case 11:
            fprintf(f,
                    ",\n    { kind = \"message\"; remote = [\"r%d.example\", \"*.r%d.example\"]; "
                    "action = \"bounce\"; }",
                    i, i);
            break;
        case 12:
        case 13:
        case 14:
        case 15:
        case 16:
            fprintf(f,
                    ",\n    { ns = [\"urn:example:ns%d\", \"urn:example:other%d\"]; "
                    "action = \"bounce\"; }",
                    i, i);
            break;
        default:
            fprintf(f, ",\n    { type = [\"headline\", \"type%d\"]; action = \"log\"; }", i);
            break;
        }
        n++;
    }
    fprintf(f, "\n  );\n};\n");
    fclose(f);
}

static struct policy *
load(const char *dir, const char *path)
{
    struct policy *p = NULL;
    config_t cfg;
    char err[1024];

    config_init(&cfg);
    config_set_include_dir(&cfg, dir);
    if (config_read_file(&cfg, path) != CONFIG_TRUE)
        fatalx("%s:%d: %s", path, config_error_line(&cfg), config_error_text(&cfg));
    if ((p = policy_conf_load(config_lookup(&cfg, "policy"), dir, err, sizeof(err))) == NULL)
        fatalx("%s", err);
    config_destroy(&cfg);
    return p;
}

int
main(int argc, char **argv)
{
    long iters = argc > 1 ? atol(argv[1]) : 2000000;
    char dir[] = "/tmp/bench_policy.XXXXXX", listpath[PATH_MAX], confpath[PATH_MAX], err[512];
    static char remotes[NREMOTES][64];
    struct policy_stanza_facts f = {0};
    struct policy_decision d;
    struct policy_limiter *lim;
    struct domainlist *dl;
    struct policy *p;
    volatile unsigned sink = 0;
    uint64_t now;
    double t0, t;
    size_t nrules;

    log_init("bench_policy", LOG_LVL_ERR, false);
    if (mkdtemp(dir) == NULL)
        fatal("mkdtemp");
    snprintf(listpath, sizeof(listpath), "%s/block.txt", dir);
    snprintf(confpath, sizeof(confpath), "%s/bench.conf", dir);
    write_list(listpath);
    write_conf(confpath);
    for (int i = 0; i < NREMOTES; i++)
        snprintf(remotes[i], sizeof(remotes[i]), "%s%d.server%d.example", i % 3 == 0 ? "muc." : "",
                 i, i % 53);

    t0 = now_sec();
    dl = domainlist_load(listpath, 0, err, sizeof(err));
    t = now_sec() - t0;
    if (dl == NULL)
        fatalx("%s", err);
    printf("list-load          %8.2f ms for %zu entries\n", t * 1e3, domainlist_count(dl));
    domainlist_free(dl);

    p = load(dir, confpath);
    nrules = policy_rule_count(p) - 1;
    printf("policy: %d-domain block list, %zu stanza rules\n", NLIST, nrules);

    f.dir = POLICY_IN;
    f.local = "example.org";
    f.kind = POLICY_KIND_MESSAGE;
    f.type = "chat";
    f.ns[0] = "urn:xmpp:receipts";
    f.ns[1] = "http://jabber.org/protocol/chatstates";
    f.nns = 2;
    f.size = 300;
    f.now = 1;
    t0 = now_sec();
    for (long i = 0; i < iters; i++) {
        f.remote = remotes[i & (NREMOTES - 1)];
        sink += policy_check_stanza(p, &f, &d);
    }
    t = now_sec() - t0;
    if (sink != 0 || strcmp(d.rule, "default") != 0)
        fatalx("stanza/all-rules: expected a default pass, got rule %s", d.rule);
    printf("stanza/all-rules   %8.1f ns per stanza\n", t * 1e9 / (double)iters);

    f.kind = POLICY_KIND_IQ;
    f.type = "get";
    f.ns[0] = "urn:early";
    t0 = now_sec();
    for (long i = 0; i < iters; i++) {
        f.remote = remotes[i & (NREMOTES - 1)];
        sink += policy_check_stanza(p, &f, &d);
    }
    t = now_sec() - t0;
    printf("stanza/early       %8.1f ns per stanza (rule %s)\n", t * 1e9 / (double)iters, d.rule);

    t0 = now_sec();
    for (long i = 0; i < iters; i++)
        sink += policy_check_route(p, "example.org", remotes[i & (NREMOTES - 1)], &d);
    t = now_sec() - t0;
    printf("route              %8.1f ns per check\n", t * 1e9 / (double)iters);

    lim = policy_limiter_new(NREMOTES * 2, NREMOTES * 2);
    now = 1000000000ULL;
    t0 = now_sec();
    for (long i = 0; i < iters; i++) {
        now += 1000;
        sink += (unsigned)policy_rate(p, lim, POLICY_IN, remotes[i & (NREMOTES - 1)],
                                      remotes[(i + 7) & (NREMOTES - 1)], 300, now);
    }
    t = now_sec() - t0;
    printf("rate               %8.1f ns per stanza\n", t * 1e9 / (double)iters);

    policy_limiter_free(lim);
    policy_unref(p);

    /* The floor: a policy with no rules and no rates, as without a policy section. */
    p = policy_new_default();
    lim = policy_limiter_new(16, 16);
    f.kind = POLICY_KIND_MESSAGE;
    f.type = "chat";
    t0 = now_sec();
    for (long i = 0; i < iters; i++) {
        f.remote = remotes[i & (NREMOTES - 1)];
        sink += policy_check_stanza(p, &f, &d);
        sink += (unsigned)policy_rate(p, lim, POLICY_IN, f.remote, "192.0.2.1", 300, 1);
    }
    t = now_sec() - t0;
    printf("empty policy       %8.1f ns per stanza (stanza check + rate)\n",
           t * 1e9 / (double)iters);
    policy_limiter_free(lim);
    policy_unref(p);
    unlink(listpath);
    unlink(confpath);
    rmdir(dir);
    return sink == 0xdeadbeef;
}
