/*
 * s2s/cfgread.c on its own: the exact error texts both configuration readers depend on
 * (with and without ", got TYPE", with a unit), absent settings keeping the caller's
 * default, and file names shown as an operator would open them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "s2s/cfgread.h"

static const char *const keys[] = {"n", "x", "b", "s", "g", NULL};

static config_t cfg;
static char err[512];

/* cfg holds text; g is its group "g". */
static const config_setting_t *
parse(const char *text)
{
    config_init(&cfg);
    assert_int_equal(config_read_string(&cfg, text), CONFIG_TRUE);
    return config_lookup(&cfg, "g");
}

static struct cfgread
reader(bool say_found)
{
    struct cfgread c = {.mainfile = "/etc/s2s/main.conf",
                        .showdir = "etc",
                        .dir = "/etc/s2s",
                        .err = err,
                        .errlen = sizeof(err),
                        .say_found = say_found};

    err[0] = '\0';
    return c;
}

static void
test_absent_keeps_default(void **state)
{
    const config_setting_t *g = parse("g = { other = 1; };");
    const config_setting_t *where = g;
    struct cfgread c = reader(true);
    long long n = 7;
    double x = 2.5;
    bool b = true;
    const char *s = "def";

    (void)state;
    assert_int_equal(cfg_get_int(&c, g, "n", 0, 10, &n), 0);
    assert_int_equal(cfg_get_number(&c, g, "x", 0, 10, NULL, &x), 0);
    assert_int_equal(cfg_get_bool(&c, g, "b", &b), 0);
    assert_int_equal(cfg_get_string(&c, g, "s", &s, &where), 0);
    assert_int_equal(cfg_get_int(&c, NULL, "n", 0, 10, &n), 0); /* no group at all */
    assert_int_equal(n, 7);
    assert_true(x == 2.5);
    assert_true(b);
    assert_string_equal(s, "def");
    assert_null(where);
    assert_string_equal(err, "");
    config_destroy(&cfg);
}

static void
test_values(void **state)
{
    const config_setting_t *g = parse("g = { n = 3; x = 4; b = false; s = \"v\"; };");
    struct cfgread c = reader(true);
    const config_setting_t *where = NULL;
    long long n = 0;
    double x = 0;
    bool b = true;
    const char *s = NULL;

    (void)state;
    assert_int_equal(cfg_check_keys(&c, g, keys), 0);
    assert_int_equal(cfg_get_int(&c, g, "n", 3, 3, &n), 0); /* bounds are inclusive */
    assert_int_equal(cfg_get_number(&c, g, "x", 0, 4, "seconds", &x), 0);
    assert_int_equal(cfg_get_bool(&c, g, "b", &b), 0);
    assert_int_equal(cfg_get_string(&c, g, "s", &s, &where), 0);
    assert_int_equal(n, 3);
    assert_true(x == 4.0);
    assert_false(b);
    assert_string_equal(s, "v");
    assert_ptr_equal(where, config_setting_get_member(g, "s"));
    config_destroy(&cfg);
}

static void
expect(bool say_found, const char *text, int (*call)(struct cfgread *, const config_setting_t *),
       const char *want)
{
    const config_setting_t *g = parse(text);
    struct cfgread c = reader(say_found);

    assert_int_equal(call(&c, g), -1);
    assert_string_equal(err, want);
    config_destroy(&cfg);
}

static int
int_0_10(struct cfgread *c, const config_setting_t *g)
{
    long long n;

    return cfg_get_int(c, g, "n", 0, 10, &n);
}

static int
seconds_1_2(struct cfgread *c, const config_setting_t *g)
{
    double x;

    return cfg_get_number(c, g, "x", 1, 2, "seconds", &x);
}

static int
number_1_2(struct cfgread *c, const config_setting_t *g)
{
    double x;

    return cfg_get_number(c, g, "x", 1, 2, NULL, &x);
}

static int
a_bool(struct cfgread *c, const config_setting_t *g)
{
    bool b;

    return cfg_get_bool(c, g, "b", &b);
}

static int
known_keys(struct cfgread *c, const config_setting_t *g)
{
    return cfg_check_keys(c, g, keys);
}

static void
test_errors(void **state)
{
    (void)state;
    expect(true, "g = {\n n = \"3\"; };", int_0_10,
           "/etc/s2s/main.conf:2: g.n: expected an integer, got a string");
    expect(false, "g = {\n n = \"3\"; };", int_0_10,
           "/etc/s2s/main.conf:2: g.n: expected an integer");
    expect(true, "g = { n = 11; };", int_0_10,
           "/etc/s2s/main.conf:1: g.n: 11 is out of range 0..10");
    expect(true, "g = { x = 2.5; };", seconds_1_2,
           "/etc/s2s/main.conf:1: g.x: 2.5 is out of range 1..2 seconds");
    expect(true, "g = { x = \"1\"; };", seconds_1_2,
           "/etc/s2s/main.conf:1: g.x: expected a number of seconds, got a string");
    expect(false, "g = { x = 0; };", number_1_2,
           "/etc/s2s/main.conf:1: g.x: 0 is out of range 1..2");
    expect(false, "g = { x = true; };", number_1_2, "/etc/s2s/main.conf:1: g.x: expected a number");
    expect(true, "g = { b = 1; };", a_bool,
           "/etc/s2s/main.conf:1: g.b: expected a boolean (true or false), got an integer");
    expect(true, "g = { n = 1;\n\n typo = 2; };", known_keys,
           "/etc/s2s/main.conf:3: g.typo: unknown option");
}

static void
test_places(void **state)
{
    struct cfgread c = reader(true);
    char buf[256], *p;

    (void)state;
    /* An element of a list is named by its index; the root has no line. */
    parse("g = { l = ( 1, { k = 2; } ); };");
    buf[0] = '\0';
    cfg_key_path(
        config_setting_get_member(config_setting_get_elem(config_lookup(&cfg, "g.l"), 1), "k"), buf,
        sizeof(buf));
    assert_string_equal(buf, "g.l[1].k");
    assert_int_equal(cfg_error(&c, config_root_setting(&cfg), "%s", "whole file"), -1);
    assert_string_equal(err, "/etc/s2s/main.conf: whole file");
    config_destroy(&cfg);

    /* @included files are shown under showdir; absolute ones and the main file as is. */
    cfg_source_file(&c, "inc/x.conf", buf, sizeof(buf));
    assert_string_equal(buf, "etc/inc/x.conf");
    cfg_source_file(&c, "/abs/x.conf", buf, sizeof(buf));
    assert_string_equal(buf, "/abs/x.conf");
    cfg_source_file(&c, "/etc/s2s/main.conf", buf, sizeof(buf));
    assert_string_equal(buf, "/etc/s2s/main.conf");
    cfg_source_file(&c, NULL, buf, sizeof(buf));
    assert_string_equal(buf, "/etc/s2s/main.conf");
    c.showdir = NULL;
    cfg_source_file(&c, "inc/x.conf", buf, sizeof(buf));
    assert_string_equal(buf, "inc/x.conf");

    p = cfg_path_resolve(&c, "lists/a.txt");
    assert_string_equal(p, "/etc/s2s/lists/a.txt");
    free(p);
    p = cfg_path_resolve(&c, "/var/a.txt");
    assert_string_equal(p, "/var/a.txt");
    free(p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_absent_keeps_default),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_places),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
