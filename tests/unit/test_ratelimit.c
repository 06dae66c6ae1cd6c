/*
 * Token buckets with a clock the test drives: burst, refill, debt and the wait it
 * implies, both dimensions, try-without-debt, spec changes, bounded tables with LRU
 * eviction and expiry of idle entries.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>

#include "s2s/ratelimit.h"

#define SEC RATELIMIT_NS_PER_SEC
#define MS  (SEC / 1000)

static const uint64_t T0 = 1000 * SEC; /* any origin */

/* 10 stanzas/s, burst 5: five pass at once, the sixth owes 0.1 s. */
static void
test_burst_then_wait(void **state)
{
    struct ratelimit_table *t = ratelimit_table_new(16);
    struct ratelimit_spec spec = {{10, 5}, {0, 0}};

    for (int i = 0; i < 4; i++)
        assert_int_equal(ratelimit_take(t, "a", &spec, 1, 100, T0), 0);
    assert_int_equal(ratelimit_take(t, "a", &spec, 1, 100, T0), 0); /* fifth: exactly empty */
    assert_int_equal(ratelimit_take(t, "a", &spec, 1, 100, T0), 100 * MS);
    assert_int_equal(ratelimit_take(t, "a", &spec, 1, 100, T0), 200 * MS);
    /* After the wait it asked for, the debt is paid. */
    assert_int_equal(ratelimit_take(t, "a", &spec, 0, 0, T0 + 200 * MS), 0);
    /* Another key has its own bucket. */
    assert_int_equal(ratelimit_take(t, "b", &spec, 1, 100, T0), 0);
    ratelimit_table_free(t);
}

/* A steady sender following the waits gets the configured rate, not more. */
static void
test_steady_rate(void **state)
{
    struct ratelimit_table *t = ratelimit_table_new(16);
    struct ratelimit_spec spec = {{100, 10}, {0, 0}};
    uint64_t now = T0;
    int sent = 0;

    while (now < T0 + 10 * SEC) {
        uint64_t w = ratelimit_take(t, "peer", &spec, 1, 0, now);

        sent++;
        now += w;
    }
    /* 10 s at 100/s plus the burst of 10, give or take the last stanza. */
    assert_in_range(sent, 1009, 1011);
    ratelimit_table_free(t);
}

/* Bytes: the larger wait of the two dimensions counts; refill stops at the burst. */
static void
test_bytes_and_refill_cap(void **state)
{
    struct ratelimit_table *t = ratelimit_table_new(16);
    struct ratelimit_spec spec = {{1000, 1000}, {1000, 2000}};

    assert_int_equal(ratelimit_take(t, "a", &spec, 1, 2000, T0), 0);
    assert_int_equal(ratelimit_take(t, "a", &spec, 1, 500, T0), 500 * MS);
    /* An hour idle: refilled to the burst only. */
    assert_int_equal(ratelimit_take(t, "a", &spec, 1, 2000, T0 + 3600 * SEC), 0);
    assert_int_equal(ratelimit_take(t, "a", &spec, 1, 1000, T0 + 3600 * SEC), SEC);
    ratelimit_table_free(t);
}

static void
test_unlimited(void **state)
{
    struct ratelimit_table *t = ratelimit_table_new(16);
    struct ratelimit_spec spec = {{0, 0}, {0, 0}};
    struct ratelimit_stats st;

    assert_false(ratelimit_spec_active(&spec));
    for (int i = 0; i < 1000; i++)
        assert_int_equal(ratelimit_take(t, "a", &spec, 1, 1e6, T0), 0);
    assert_true(ratelimit_try(t, "a", &spec, 1, 1e6, T0));
    ratelimit_table_stats(t, &st);
    assert_int_equal(st.entries, 0); /* nothing stored for an inactive spec */
    ratelimit_table_free(t);
}

/* try never goes into debt: refused stanzas cost nothing. */
static void
test_try(void **state)
{
    struct ratelimit_table *t = ratelimit_table_new(16);
    struct ratelimit_spec spec = {{1, 3}, {0, 0}};

    for (int i = 0; i < 3; i++)
        assert_true(ratelimit_try(t, "a", &spec, 1, 0, T0));
    for (int i = 0; i < 100; i++)
        assert_false(ratelimit_try(t, "a", &spec, 1, 0, T0 + 500 * MS));
    assert_true(ratelimit_try(t, "a", &spec, 1, 0, T0 + SEC));
    assert_false(ratelimit_try(t, "a", &spec, 1, 0, T0 + SEC));
    ratelimit_table_free(t);
}

/* After a reload lowers the burst, tokens above it are cut. */
static void
test_spec_change(void **state)
{
    struct ratelimit_table *t = ratelimit_table_new(16);
    struct ratelimit_spec big = {{10, 100}, {0, 0}}, small = {{10, 2}, {0, 0}};

    assert_int_equal(ratelimit_take(t, "a", &big, 1, 0, T0), 0);
    assert_int_equal(ratelimit_take(t, "a", &small, 1, 0, T0), 0);
    assert_int_equal(ratelimit_take(t, "a", &small, 1, 0, T0), 0);
    assert_int_equal(ratelimit_take(t, "a", &small, 1, 0, T0), 100 * MS);
    ratelimit_table_free(t);
}

/* Bounded: the least recently used entry goes; a full one is evicted without forgiving. */
static void
test_eviction(void **state)
{
    struct ratelimit_table *t = ratelimit_table_new(3);
    struct ratelimit_spec spec = {{1, 1}, {0, 0}};
    struct ratelimit_stats st;

    ratelimit_take(t, "a", &spec, 1, 0, T0); /* empty bucket */
    ratelimit_take(t, "b", &spec, 1, 0, T0);
    ratelimit_take(t, "c", &spec, 1, 0, T0);
    ratelimit_take(t, "a", &spec, 0, 0, T0); /* a used again: b is now the oldest */
    ratelimit_take(t, "d", &spec, 1, 0, T0);
    ratelimit_table_stats(t, &st);
    assert_int_equal(st.entries, 3);
    assert_int_equal(st.evicted, 1);
    assert_int_equal(st.forgiven, 1); /* b was empty */
    /* a kept its state (still empty), b starts full again. */
    assert_int_not_equal(ratelimit_take(t, "a", &spec, 1, 0, T0), 0);
    ratelimit_table_stats(t, &st);
    assert_int_equal(st.evicted, 1);
    assert_int_equal(ratelimit_take(t, "b", &spec, 1, 0, T0), 0); /* evicts c */
    /* Much later, every bucket is full: evicting forgives nothing. */
    ratelimit_take(t, "e", &spec, 1, 0, T0 + 100 * SEC);
    ratelimit_table_stats(t, &st);
    assert_int_equal(st.evicted, 3);
    assert_int_equal(st.forgiven, 2);
    ratelimit_table_free(t);
}

static void
test_expire(void **state)
{
    struct ratelimit_table *t = ratelimit_table_new(100);
    struct ratelimit_spec fast = {{100, 1}, {0, 0}}, slow = {{0.01, 1}, {0, 0}};
    struct ratelimit_stats st;

    ratelimit_take(t, "fast", &fast, 1, 0, T0);
    ratelimit_take(t, "slow", &slow, 1, 0, T0);
    /* One second on: fast is full again, slow needs 100 s. */
    assert_int_equal(ratelimit_table_expire(t, T0 + SEC), 1);
    ratelimit_table_stats(t, &st);
    assert_int_equal(st.entries, 1);
    assert_int_equal(ratelimit_table_expire(t, T0 + 200 * SEC), 1);
    ratelimit_table_stats(t, &st);
    assert_int_equal(st.entries, 0);
    ratelimit_table_free(t);
}

/* Many keys in a small table: bounded whatever comes in. */
static void
test_bounded(void **state)
{
    struct ratelimit_table *t = ratelimit_table_new(64);
    struct ratelimit_spec spec = {{10, 10}, {0, 0}};
    struct ratelimit_stats st;
    char key[32];

    for (int i = 0; i < 10000; i++) {
        snprintf(key, sizeof(key), "10.0.%d.%d", i / 256, i % 256);
        ratelimit_take(t, key, &spec, 1, 0, T0 + (uint64_t)i * MS);
    }
    ratelimit_table_stats(t, &st);
    assert_int_equal(st.entries, 64);
    assert_int_equal(st.evicted, 10000 - 64);
    ratelimit_table_free(t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_wait),
        cmocka_unit_test(test_steady_rate),
        cmocka_unit_test(test_bytes_and_refill_cap),
        cmocka_unit_test(test_unlimited),
        cmocka_unit_test(test_try),
        cmocka_unit_test(test_spec_change),
        cmocka_unit_test(test_eviction),
        cmocka_unit_test(test_expire),
        cmocka_unit_test(test_bounded),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
