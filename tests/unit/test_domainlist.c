/*
 * Domain lists: normalization, exact and "*." precedence, the first writer's value,
 * removal, list files (good, bad lines reported as FILE:LINE, 100,000 entries generated
 * here), re-reading a changed file and keeping the old table when the new one is bad.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "s2s/domainlist.h"

static char tmpdir[PATH_MAX];
static char err[1024];

static void
path_of(const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", tmpdir, name);
}

static void
write_file(const char *name, const char *text)
{
    char path[PATH_MAX * 2];
    FILE *f;

    path_of(name, path, sizeof(path));
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int
setup(void **state)
{
    char tmpl[] = "/tmp/test_domainlist.XXXXXX";

    assert_non_null(mkdtemp(tmpl));
    assert_non_null(realpath(tmpl, tmpdir));
    return 0;
}

static int
teardown(void **state)
{
    char cmd[PATH_MAX + 16];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void
test_normalize(void **state)
{
    char out[DOMAINLIST_NAME_MAX], why[64];

    assert_null(domainlist_normalize("Example.ORG.", false, out, sizeof(out), why, sizeof(why)));
    assert_string_equal(out, "example.org");
    assert_null(domainlist_normalize("*.Example.org", true, out, sizeof(out), why, sizeof(why)));
    assert_string_equal(out, "*.example.org");
    assert_non_null(
        domainlist_normalize("*.example.org", false, out, sizeof(out), why, sizeof(why)));
    assert_non_null(domainlist_normalize("a..b", true, out, sizeof(out), why, sizeof(why)));
    assert_non_null(domainlist_normalize("-a.b", true, out, sizeof(out), why, sizeof(why)));
    assert_non_null(domainlist_normalize("a-.b", true, out, sizeof(out), why, sizeof(why)));
    assert_non_null(domainlist_normalize("a b", true, out, sizeof(out), why, sizeof(why)));
    assert_non_null(domainlist_normalize("a.*.b", true, out, sizeof(out), why, sizeof(why)));
    assert_non_null(domainlist_normalize("*", true, out, sizeof(out), why, sizeof(why)));
    assert_non_null(domainlist_normalize("", true, out, sizeof(out), why, sizeof(why)));
    assert_non_null(
        domainlist_normalize("b\xc3\xa4r.de", true, out, sizeof(out), why, sizeof(why)));
    assert_null(domainlist_normalize("xn--br-via.de", true, out, sizeof(out), why, sizeof(why)));
}

/* Exact beats every wildcard; a longer suffix beats a shorter one; "*.x" is not x. */
static void
test_precedence(void **state)
{
    struct domainlist *dl = domainlist_new();
    uint32_t v = 99;

    assert_int_equal(domainlist_add(dl, "*.example.org", 1), 1);
    assert_int_equal(domainlist_add(dl, "*.chat.example.org", 2), 1);
    assert_int_equal(domainlist_add(dl, "muc.chat.example.org", 3), 1);
    assert_int_equal(domainlist_add(dl, "example.net", 4), 1);

    assert_int_equal(domainlist_lookup(dl, "example.org", &v), 0); /* "*." is not the domain */
    assert_int_equal(domainlist_lookup(dl, "a.example.org", &v), 4);
    assert_int_equal(v, 1);
    assert_int_equal(domainlist_lookup(dl, "x.y.example.org", &v), 4); /* any depth */
    assert_int_equal(v, 1);
    assert_int_equal(domainlist_lookup(dl, "x.chat.example.org", &v), 6);
    assert_int_equal(v, 2);
    assert_int_equal(domainlist_lookup(dl, "muc.chat.example.org", &v), 9);
    assert_int_equal(v, 3);
    assert_int_equal(domainlist_lookup(dl, "a.muc.chat.example.org", &v), 6);
    assert_int_equal(v, 2);
    assert_int_equal(domainlist_lookup(dl, "example.net", &v), 5);
    assert_int_equal(v, 4);
    assert_int_equal(domainlist_lookup(dl, "a.example.net", &v), 0);
    assert_int_equal(domainlist_lookup(dl, "notexample.org", &v), 0);
    assert_int_equal(domainlist_lookup(dl, "org", &v), 0);
    assert_int_equal(domainlist_lookup(dl, "", &v), 0);
    assert_int_equal(domainlist_count(dl), 4);
    domainlist_free(dl);
}

static void
test_first_value_wins_and_both_kinds(void **state)
{
    struct domainlist *dl = domainlist_new();
    uint32_t v = 0;

    assert_int_equal(domainlist_add(dl, "example.org", 7), 1);
    assert_int_equal(domainlist_add(dl, "EXAMPLE.org.", 8), 0);
    assert_int_equal(domainlist_add(dl, "*.example.org", 9), 1);
    assert_int_equal(domainlist_add(dl, "bad domain", 1), -1);
    assert_int_equal(domainlist_lookup(dl, "example.org", &v), 5);
    assert_int_equal(v, 7);
    assert_int_equal(domainlist_lookup(dl, "a.example.org", &v), 4);
    assert_int_equal(v, 9);
    assert_int_equal(domainlist_count(dl), 2);
    domainlist_free(dl);
}

/* Run-time feeding: add and remove, with tombstones that must not break probe chains. */
static void
test_add_remove_many(void **state)
{
    struct domainlist *dl = domainlist_new();
    char name[64];

    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof(name), "d%d.example", i);
        assert_int_equal(domainlist_add(dl, name, (uint32_t)i), 1);
    }
    for (int i = 0; i < 5000; i += 2) {
        snprintf(name, sizeof(name), "d%d.example", i);
        assert_int_equal(domainlist_remove(dl, name), 1);
        assert_int_equal(domainlist_remove(dl, name), 0);
    }
    assert_int_equal(domainlist_count(dl), 2500);
    for (int i = 0; i < 5000; i++) {
        uint32_t v = 0;

        snprintf(name, sizeof(name), "d%d.example", i);
        if (i % 2 == 0) {
            assert_false(domainlist_contains(dl, name));
        } else {
            assert_int_equal(domainlist_lookup(dl, name, &v), 5);
            assert_int_equal(v, (uint32_t)i);
        }
    }
    /* Re-adding after removal reuses tombstones and grows past them. */
    for (int i = 0; i < 20000; i++) {
        snprintf(name, sizeof(name), "e%d.example", i);
        assert_int_equal(domainlist_add(dl, name, 1), 1);
    }
    assert_int_equal(domainlist_count(dl), 22500);
    assert_true(domainlist_contains(dl, "e19999.example"));
    assert_true(domainlist_contains(dl, "d4999.example"));
    assert_int_equal(domainlist_remove(dl, "*.example"), 0);
    domainlist_free(dl);
}

/* A prepared key answers exactly as a plain lookup, for every suffix depth. */
static void
test_key_matches_lookup(void **state)
{
    struct domainlist *dl = domainlist_new();
    struct domainlist_key k;
    const char *names[] = {"a.b.c.d.e", "b.c.d.e", "c.d.e", "d.e", "e", "x.c.d.e", "a.b.c.d.x"};

    domainlist_add(dl, "*.c.d.e", 1);
    domainlist_add(dl, "d.e", 2);
    domainlist_add(dl, "*.e", 3);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        uint32_t v1 = 0, v2 = 0;

        domainlist_key_init(&k, names[i]);
        assert_int_equal(domainlist_lookup_key(dl, &k, &v1), domainlist_lookup(dl, names[i], &v2));
        assert_int_equal(v1, v2);
    }
    domainlist_key_init(&k, "a.b.c.d.e");
    assert_int_equal(k.nlabels, 5);
    assert_int_equal(domainlist_lookup_key(dl, &k, NULL), 6); /* *.c.d.e: 3 labels */
    domainlist_key_init(&k, "...");
    assert_int_equal(k.nlabels, 0);
    domainlist_free(dl);
}

static void
test_file_good(void **state)
{
    char path[PATH_MAX * 2];
    struct domainlist *dl;

    write_file("good.txt", "# community block list\n"
                           "\n"
                           "spam.example\n"
                           "  Spam2.EXAMPLE.  # trailing comment\n"
                           "*.spamfarm.example\n"
                           "\t\n");
    path_of("good.txt", path, sizeof(path));
    dl = domainlist_load(path, 0, err, sizeof(err));
    if (dl == NULL)
        fail_msg("%s", err);
    assert_int_equal(domainlist_count(dl), 3);
    assert_true(domainlist_contains(dl, "spam.example"));
    assert_true(domainlist_contains(dl, "spam2.example"));
    assert_false(domainlist_contains(dl, "muc.spam.example"));
    assert_true(domainlist_contains(dl, "a.spamfarm.example"));
    assert_false(domainlist_contains(dl, "spamfarm.example"));
    domainlist_free(dl);

    /* DOMAINLIST_SUBTREE: every plain entry covers its subdomains too. */
    dl = domainlist_load(path, DOMAINLIST_SUBTREE, err, sizeof(err));
    assert_non_null(dl);
    assert_true(domainlist_contains(dl, "muc.spam.example"));
    assert_true(domainlist_contains(dl, "spam.example"));
    domainlist_free(dl);
}

static void
test_file_bad_line(void **state)
{
    char path[PATH_MAX * 2], expected[PATH_MAX * 3];

    write_file("bad.txt", "ok.example\n# fine\n\nnot a domain\nok2.example\n");
    path_of("bad.txt", path, sizeof(path));
    assert_null(domainlist_load(path, 0, err, sizeof(err)));
    snprintf(expected, sizeof(expected),
             "%s:4: \"not a domain\" is not a domain: character ' ' is not allowed in a domain",
             path);
    assert_string_equal(err, expected);

    write_file("bad2.txt", "ok.example\nfoo..example\n");
    path_of("bad2.txt", path, sizeof(path));
    assert_null(domainlist_load(path, 0, err, sizeof(err)));
    snprintf(expected, sizeof(expected), "%s:2: \"foo..example\" is not a domain: empty label",
             path);
    assert_string_equal(err, expected);

    path_of("missing.txt", path, sizeof(path));
    assert_null(domainlist_load(path, 0, err, sizeof(err)));
    assert_non_null(strstr(err, "missing.txt: cannot read: No such file"));
}

static double
elapsed_ms(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) * 1e3 + (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}

/* 100,000 entries generated here: all found, near misses not, load time reported. */
static void
test_file_100k(void **state)
{
    char path[PATH_MAX * 2], name[64];
    struct domainlist *dl;
    struct timespec t0, t1;
    FILE *f;

    path_of("big.txt", path, sizeof(path));
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "# generated block list\n");
    for (int i = 0; i < 100000; i++)
        fprintf(f, "spam-%d.example%d.net\n", i, i % 97);
    fclose(f);

    clock_gettime(CLOCK_MONOTONIC, &t0);
    dl = domainlist_load(path, 0, err, sizeof(err));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (dl == NULL)
        fail_msg("%s", err);
    print_message("loaded 100000 entries in %.1f ms (this build)\n", elapsed_ms(&t0, &t1));
    assert_int_equal(domainlist_count(dl), 100000);
    for (int i = 0; i < 100000; i++) {
        snprintf(name, sizeof(name), "spam-%d.example%d.net", i, i % 97);
        assert_true(domainlist_contains(dl, name));
        snprintf(name, sizeof(name), "spam-%d.example%d.net", i, (i + 1) % 97);
        assert_false(domainlist_contains(dl, name));
    }
    domainlist_free(dl);
}

static void
touch_later(const char *name, const char *text)
{
    char path[PATH_MAX * 2];
    struct timespec ts[2];

    write_file(name, text);
    /* A different mtime even within the file system's timestamp granularity. */
    path_of(name, path, sizeof(path));
    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec += 10;
    ts[1] = ts[0];
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static void
test_file_check(void **state)
{
    char path[PATH_MAX * 2];
    struct domainlist_file *f;

    write_file("w.txt", "a.example\n");
    path_of("w.txt", path, sizeof(path));
    f = domainlist_file_open(path, 0, err, sizeof(err));
    assert_non_null(f);
    assert_string_equal(domainlist_file_path(f), path);
    assert_true(domainlist_contains(domainlist_file_list(f), "a.example"));
    assert_int_equal(domainlist_file_check(f, err, sizeof(err)), 0); /* unchanged */

    touch_later("w.txt", "a.example\nb.example\n");
    assert_int_equal(domainlist_file_check(f, err, sizeof(err)), 1);
    assert_true(domainlist_contains(domainlist_file_list(f), "b.example"));

    /* A broken file keeps the old table, and says where it is broken. */
    write_file("w.txt", "c.example\nbad_name\n");
    assert_int_equal(domainlist_file_check(f, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "w.txt:2: \"bad_name\""));
    assert_true(domainlist_contains(domainlist_file_list(f), "b.example"));
    assert_false(domainlist_contains(domainlist_file_list(f), "c.example"));

    /* Replaced by rename (a new inode), as tools that write lists do. */
    write_file("w2.txt", "d.example\n");
    {
        char p2[PATH_MAX * 2];

        path_of("w2.txt", p2, sizeof(p2));
        assert_int_equal(rename(p2, path), 0);
    }
    assert_int_equal(domainlist_file_check(f, err, sizeof(err)), 1);
    assert_true(domainlist_contains(domainlist_file_list(f), "d.example"));
    assert_false(domainlist_contains(domainlist_file_list(f), "b.example"));
    domainlist_file_free(f);
}

/* The timer re-reads a changed file in a thread: one loop pass runs the timer, the next
 * the completion. No sleeping: each pass blocks until its event. */
static void
test_file_watch_timer(void **state)
{
    char path[PATH_MAX * 2];
    struct domainlist_file *f;
    struct event_base *base = event_base_new();

    write_file("t.txt", "a.example\n");
    path_of("t.txt", path, sizeof(path));
    f = domainlist_file_open(path, 0, err, sizeof(err));
    assert_non_null(f);
    touch_later("t.txt", "z.example\n");
    assert_int_equal(domainlist_file_watch(f, base, 0.01), 0);
    assert_int_equal(event_base_loop(base, EVLOOP_ONCE), 0); /* timer: thread started */
    assert_true(domainlist_contains(domainlist_file_list(f), "a.example"));
    assert_int_equal(event_base_loop(base, EVLOOP_ONCE), 0); /* thread done: swapped */
    assert_true(domainlist_contains(domainlist_file_list(f), "z.example"));
    assert_false(domainlist_contains(domainlist_file_list(f), "a.example"));

    /* A broken version: the old table stays. */
    touch_later("t.txt", "ok.example\nnot ok\n");
    assert_int_equal(event_base_loop(base, EVLOOP_ONCE), 0);
    assert_int_equal(event_base_loop(base, EVLOOP_ONCE), 0);
    assert_true(domainlist_contains(domainlist_file_list(f), "z.example"));
    assert_false(domainlist_contains(domainlist_file_list(f), "ok.example"));

    /* A timer pass can be followed by a synchronous check: the thread is waited for. */
    write_file("t.txt", "y.example\n");
    assert_int_equal(event_base_loop(base, EVLOOP_ONCE), 0);
    assert_int_equal(domainlist_file_check(f, err, sizeof(err)), 1);
    assert_true(domainlist_contains(domainlist_file_list(f), "y.example"));

    assert_int_equal(domainlist_file_watch(f, base, 0), 0); /* stops: nothing pending */
    assert_int_equal(event_base_loop(base, EVLOOP_NONBLOCK), 1);
    domainlist_file_free(f);
    event_base_free(base);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_first_value_wins_and_both_kinds),
        cmocka_unit_test(test_add_remove_many),
        cmocka_unit_test(test_key_matches_lookup),
        cmocka_unit_test(test_file_good),
        cmocka_unit_test(test_file_bad_line),
        cmocka_unit_test(test_file_100k),
        cmocka_unit_test(test_file_check),
        cmocka_unit_test(test_file_watch_timer),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
