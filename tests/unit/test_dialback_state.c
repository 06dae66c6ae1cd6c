/*
 * Dialback state of one stream (dialback/state.c): every transition, the limits, the
 * unsolicited answers XEP-0220 §7.1 warns about, and failing what is pending.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dialback/key.h"
#include "dialback/state.h"

#define L "montague.example"
#define R "capulet.example"

static int
setup(void **state)
{
    *state = dialback_pairs_new(NULL);
    return *state == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
    dialback_pairs_free(*state);
    return 0;
}

/* none -> pending -> valid, and what is refused on the way. */
static void
test_pair_to_valid(void **state)
{
    struct dialback_pairs *p = *state;

    assert_int_equal(dialback_pair_state(p, L, R), DIALBACK_STATE_NONE);
    assert_false(dialback_pair_valid(p, L, R));
    assert_int_equal(dialback_pair_request(p, L, R), DIALBACK_STEP_OK);
    assert_int_equal(dialback_pair_state(p, L, R), DIALBACK_STATE_PENDING);
    assert_false(dialback_pair_valid(p, L, R));
    assert_int_equal(dialback_pairs_pending(p), 1);
    assert_int_equal(dialback_pair_request(p, L, R), DIALBACK_STEP_DUPLICATE);
    assert_int_equal(dialback_pairs_pending(p), 1);
    /* The reverse pair is another pair, still unknown. */
    assert_int_equal(dialback_pair_answer(p, R, L, DIALBACK_STATE_VALID),
                     DIALBACK_STEP_UNSOLICITED);
    assert_int_equal(dialback_pair_answer(p, L, R, DIALBACK_STATE_VALID), DIALBACK_STEP_OK);
    assert_int_equal(dialback_pair_state(p, L, R), DIALBACK_STATE_VALID);
    assert_true(dialback_pair_valid(p, L, R));
    assert_false(dialback_pair_valid(p, R, L));
    assert_int_equal(dialback_pairs_pending(p), 0);
    assert_int_equal(dialback_pairs_count(p), 1);
    /* Asked again, answered again: neither changes a valid pair. */
    assert_int_equal(dialback_pair_request(p, L, R), DIALBACK_STEP_ALREADY_VALID);
    assert_int_equal(dialback_pair_answer(p, L, R, DIALBACK_STATE_INVALID),
                     DIALBACK_STEP_UNSOLICITED);
    assert_true(dialback_pair_valid(p, L, R));
    assert_false(dialback_pairs_condemned(p));
}

/* Domains compare ASCII case-insensitively, one trailing dot ignored (RFC 7622 §3.2). */
static void
test_pair_names(void **state)
{
    struct dialback_pairs *p = *state;

    assert_int_equal(dialback_pair_request(p, "Montague.EXAMPLE.", "capulet.example"),
                     DIALBACK_STEP_OK);
    assert_int_equal(dialback_pair_answer(p, L, "CAPULET.example.", DIALBACK_STATE_VALID),
                     DIALBACK_STEP_OK);
    assert_true(dialback_pair_valid(p, "montague.example", "Capulet.Example"));
    assert_false(dialback_pair_valid(p, "montague.example..", R));
    assert_false(dialback_pair_valid(p, "montague.exampl", R));
    assert_false(dialback_pair_valid(p, "x" L, R));
    assert_false(dialback_pair_valid(p, L, "rooms." R));
}

/* An answer nobody asked for changes nothing (XEP-0220 §7.1). */
static void
test_pair_unsolicited(void **state)
{
    struct dialback_pairs *p = *state;

    assert_int_equal(dialback_pair_answer(p, L, R, DIALBACK_STATE_VALID),
                     DIALBACK_STEP_UNSOLICITED);
    assert_int_equal(dialback_pair_state(p, L, R), DIALBACK_STATE_NONE);
    assert_int_equal(dialback_pairs_count(p), 0);
    assert_false(dialback_pair_valid(p, L, R));
    /* Nor may a verdict be anything but valid, invalid or error. */
    assert_int_equal(dialback_pair_request(p, L, R), DIALBACK_STEP_OK);
    assert_int_equal(dialback_pair_answer(p, L, R, DIALBACK_STATE_PENDING), DIALBACK_STEP_BAD);
    assert_int_equal(dialback_pair_answer(p, L, R, DIALBACK_STATE_NONE), DIALBACK_STEP_BAD);
    assert_int_equal(dialback_pair_state(p, L, R), DIALBACK_STATE_PENDING);
}

/* pending -> error -> pending -> valid: a dialback error is per pair (XEP-0220 §2.4). */
static void
test_pair_error_retry(void **state)
{
    struct dialback_pairs *p = *state;

    assert_int_equal(dialback_pair_request(p, L, R), DIALBACK_STEP_OK);
    assert_int_equal(dialback_pair_answer(p, L, R, DIALBACK_STATE_ERROR), DIALBACK_STEP_OK);
    assert_int_equal(dialback_pair_state(p, L, R), DIALBACK_STATE_ERROR);
    assert_false(dialback_pair_valid(p, L, R));
    assert_false(dialback_pairs_condemned(p));
    assert_int_equal(dialback_pair_answer(p, L, R, DIALBACK_STATE_VALID),
                     DIALBACK_STEP_UNSOLICITED);
    assert_false(dialback_pair_valid(p, L, R));
    assert_int_equal(dialback_pair_request(p, L, R), DIALBACK_STEP_OK);
    assert_int_equal(dialback_pair_state(p, L, R), DIALBACK_STATE_PENDING);
    assert_int_equal(dialback_pair_answer(p, L, R, DIALBACK_STATE_VALID), DIALBACK_STEP_OK);
    assert_true(dialback_pair_valid(p, L, R));
    assert_int_equal(dialback_pairs_count(p), 1);
}

/* pending -> invalid condemns the stream: no pair is valid any more (XEP-0220 §2.2.1). */
static void
test_pair_invalid_condemns(void **state)
{
    struct dialback_pairs *p = *state;

    assert_int_equal(dialback_pair_request(p, L, R), DIALBACK_STEP_OK);
    assert_int_equal(dialback_pair_answer(p, L, R, DIALBACK_STATE_VALID), DIALBACK_STEP_OK);
    assert_int_equal(dialback_pair_request(p, L, "rooms." R), DIALBACK_STEP_OK);
    assert_int_equal(dialback_pair_request(p, L, "evil.example"), DIALBACK_STEP_OK);
    assert_int_equal(dialback_pair_answer(p, L, "evil.example", DIALBACK_STATE_INVALID),
                     DIALBACK_STEP_OK);
    assert_true(dialback_pairs_condemned(p));
    assert_int_equal(dialback_pair_state(p, L, "evil.example"), DIALBACK_STATE_INVALID);
    assert_int_equal(dialback_pair_state(p, L, R), DIALBACK_STATE_VALID);
    assert_false(dialback_pair_valid(p, L, R));
    assert_int_equal(dialback_pair_request(p, L, "new.example"), DIALBACK_STEP_CLOSED);
    assert_int_equal(dialback_pair_request(p, L, "evil.example"), DIALBACK_STEP_CLOSED);
    assert_int_equal(dialback_verify_request(p, L, R, "id1"), DIALBACK_STEP_CLOSED);
    /* A late verdict for another pending pair still cannot make it usable. */
    assert_int_equal(dialback_pair_answer(p, L, "rooms." R, DIALBACK_STATE_VALID),
                     DIALBACK_STEP_OK);
    assert_false(dialback_pair_valid(p, L, "rooms." R));
}

static void
test_limits(void **state)
{
    struct dialback_limits lim = {.max_pairs = 2, .max_pending = 1};
    struct dialback_pairs *p = dialback_pairs_new(&lim);

    assert_non_null(p);
    assert_int_equal(dialback_pair_request(p, L, "a.example"), DIALBACK_STEP_OK);
    /* One pending at a time: pairs and verifications alike. */
    assert_int_equal(dialback_pair_request(p, L, "b.example"), DIALBACK_STEP_LIMIT);
    assert_int_equal(dialback_verify_request(p, L, "b.example", "id"), DIALBACK_STEP_LIMIT);
    assert_int_equal(dialback_pair_state(p, L, "b.example"), DIALBACK_STATE_NONE);
    assert_int_equal(dialback_pair_answer(p, L, "a.example", DIALBACK_STATE_VALID),
                     DIALBACK_STEP_OK);
    assert_int_equal(dialback_pair_request(p, L, "b.example"), DIALBACK_STEP_OK);
    assert_int_equal(dialback_pair_answer(p, L, "b.example", DIALBACK_STATE_ERROR),
                     DIALBACK_STEP_OK);
    assert_int_equal(dialback_pairs_count(p), 2);
    /* Full, but b failed: it makes room for c. */
    assert_int_equal(dialback_pair_request(p, L, "c.example"), DIALBACK_STEP_OK);
    assert_int_equal(dialback_pair_state(p, L, "b.example"), DIALBACK_STATE_NONE);
    assert_int_equal(dialback_pairs_count(p), 2);
    assert_int_equal(dialback_pair_answer(p, L, "c.example", DIALBACK_STATE_VALID),
                     DIALBACK_STEP_OK);
    /* Full of valid pairs: no room. */
    assert_int_equal(dialback_pair_request(p, L, "d.example"), DIALBACK_STEP_LIMIT);
    assert_int_equal(dialback_pairs_count(p), 2);
    assert_true(dialback_pair_valid(p, L, "a.example"));
    assert_true(dialback_pair_valid(p, L, "c.example"));
    assert_int_equal(dialback_verify_request(p, L, "b.example", "id"), DIALBACK_STEP_OK);
    assert_int_equal(dialback_verify_request(p, L, "b.example", "id2"), DIALBACK_STEP_LIMIT);
    dialback_pairs_free(p);

    /* Zero limits mean the defaults. */
    lim.max_pairs = 0;
    lim.max_pending = 0;
    p = dialback_pairs_new(&lim);
    for (size_t i = 0; i < DIALBACK_DEFAULT_MAX_PENDING; i++) {
        char name[32];
        snprintf(name, sizeof(name), "r%zu.example", i);
        assert_int_equal(dialback_pair_request(p, L, name), DIALBACK_STEP_OK);
    }
    assert_int_equal(dialback_pair_request(p, L, "one-more.example"), DIALBACK_STEP_LIMIT);
    dialback_pairs_free(p);
}

/* XEP-0220 §2.1.2: from, to and id must all match a request sent on this stream. */
static void
test_verify(void **state)
{
    struct dialback_pairs *p = *state;

    assert_int_equal(dialback_verify_request(p, R, "montague.example", "417GAF25"),
                     DIALBACK_STEP_OK);
    assert_int_equal(dialback_verify_request(p, R, "montague.example", "417GAF25"),
                     DIALBACK_STEP_DUPLICATE);
    assert_int_equal(dialback_verify_request(p, R, "montague.example", "OTHER"), DIALBACK_STEP_OK);
    assert_int_equal(dialback_pairs_pending(p), 2);
    assert_int_equal(dialback_pairs_count(p), 0); /* verifications are no pairs */
    assert_int_equal(dialback_verify_answer(p, R, "montague.example", "417gaf25"),
                     DIALBACK_STEP_UNSOLICITED); /* ids are case-sensitive */
    assert_int_equal(dialback_verify_answer(p, R, "verona.example", "417GAF25"),
                     DIALBACK_STEP_UNSOLICITED);
    assert_int_equal(dialback_verify_answer(p, "verona.example", "montague.example", "417GAF25"),
                     DIALBACK_STEP_UNSOLICITED);
    assert_int_equal(dialback_verify_answer(p, "Capulet.Example.", "montague.example", "417GAF25"),
                     DIALBACK_STEP_OK);
    assert_int_equal(dialback_verify_answer(p, R, "montague.example", "417GAF25"),
                     DIALBACK_STEP_UNSOLICITED);
    assert_int_equal(dialback_pairs_pending(p), 1);
    assert_int_equal(dialback_verify_answer(p, R, "montague.example", "OTHER"), DIALBACK_STEP_OK);
    assert_int_equal(dialback_pairs_pending(p), 0);
}

struct seen {
    int pairs, verifies;
    char last[64];
};

static void
record(const char *local, const char *remote, const char *id, void *arg)
{
    struct seen *s = arg;

    if (id == NULL)
        s->pairs++;
    else
        s->verifies++;
    snprintf(s->last, sizeof(s->last), "%s %s %s", local, remote, id != NULL ? id : "-");
}

static void
test_fail_pending(void **state)
{
    struct dialback_pairs *p = *state;
    struct seen seen = {0};

    assert_int_equal(dialback_pair_request(p, L, "a.example"), DIALBACK_STEP_OK);
    assert_int_equal(dialback_pair_request(p, L, "b.example"), DIALBACK_STEP_OK);
    assert_int_equal(dialback_pair_request(p, L, "c.example"), DIALBACK_STEP_OK);
    assert_int_equal(dialback_pair_answer(p, L, "c.example", DIALBACK_STATE_VALID),
                     DIALBACK_STEP_OK);
    assert_int_equal(dialback_verify_request(p, L, "d.example", "X1"), DIALBACK_STEP_OK);
    assert_int_equal(dialback_pairs_fail_pending(p, record, &seen), 3);
    assert_int_equal(seen.pairs, 2);
    assert_int_equal(seen.verifies, 1);
    assert_string_equal(seen.last, L " d.example X1");
    assert_int_equal(dialback_pair_state(p, L, "a.example"), DIALBACK_STATE_ERROR);
    assert_int_equal(dialback_pair_state(p, L, "b.example"), DIALBACK_STATE_ERROR);
    assert_true(dialback_pair_valid(p, L, "c.example"));
    assert_int_equal(dialback_pairs_pending(p), 0);
    assert_int_equal(dialback_verify_answer(p, L, "d.example", "X1"), DIALBACK_STEP_UNSOLICITED);
    assert_int_equal(dialback_pair_answer(p, L, "a.example", DIALBACK_STATE_VALID),
                     DIALBACK_STEP_UNSOLICITED);
    assert_int_equal(dialback_pairs_fail_pending(p, NULL, NULL), 0);
}

static void
test_bad_arguments(void **state)
{
    struct dialback_pairs *p = *state;
    char name[DIALBACK_KEY_MAX_DOMAIN + 2];

    assert_int_equal(dialback_pair_request(NULL, L, R), DIALBACK_STEP_BAD);
    assert_int_equal(dialback_pair_request(p, NULL, R), DIALBACK_STEP_BAD);
    assert_int_equal(dialback_pair_request(p, L, NULL), DIALBACK_STEP_BAD);
    assert_int_equal(dialback_pair_request(p, "", R), DIALBACK_STEP_BAD);
    assert_int_equal(dialback_pair_request(p, L, "."), DIALBACK_STEP_BAD);
    assert_int_equal(dialback_verify_request(p, L, R, NULL), DIALBACK_STEP_BAD);
    assert_int_equal(dialback_verify_request(p, L, R, ""), DIALBACK_STEP_BAD);
    assert_int_equal(dialback_verify_answer(p, L, R, NULL), DIALBACK_STEP_BAD);
    assert_int_equal(dialback_pair_answer(NULL, L, R, DIALBACK_STATE_VALID), DIALBACK_STEP_BAD);
    memset(name, 'a', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    assert_int_equal(dialback_pair_request(p, L, name), DIALBACK_STEP_BAD);
    assert_int_equal(dialback_verify_request(p, L, R, name), DIALBACK_STEP_BAD);
    name[DIALBACK_KEY_MAX_DOMAIN] = '\0';
    assert_int_equal(dialback_pair_request(p, L, name), DIALBACK_STEP_OK);
    assert_int_equal(dialback_pair_state(NULL, L, R), DIALBACK_STATE_NONE);
    assert_false(dialback_pair_valid(NULL, L, R));
    assert_int_equal(dialback_pairs_count(NULL), 0);
    assert_int_equal(dialback_pairs_pending(NULL), 0);
    assert_false(dialback_pairs_condemned(NULL));
    dialback_pairs_free(NULL);
}

static void
test_names(void **state)
{
    assert_string_equal(dialback_state_name(DIALBACK_STATE_NONE), "none");
    assert_string_equal(dialback_state_name(DIALBACK_STATE_PENDING), "pending");
    assert_string_equal(dialback_state_name(DIALBACK_STATE_VALID), "valid");
    assert_string_equal(dialback_state_name(DIALBACK_STATE_INVALID), "invalid");
    assert_string_equal(dialback_state_name(DIALBACK_STATE_ERROR), "error");
    assert_string_equal(dialback_step_name(DIALBACK_STEP_OK), "ok");
    assert_string_equal(dialback_step_name(DIALBACK_STEP_DUPLICATE), "duplicate");
    assert_string_equal(dialback_step_name(DIALBACK_STEP_ALREADY_VALID), "already-valid");
    assert_string_equal(dialback_step_name(DIALBACK_STEP_LIMIT), "limit");
    assert_string_equal(dialback_step_name(DIALBACK_STEP_UNSOLICITED), "unsolicited");
    assert_string_equal(dialback_step_name(DIALBACK_STEP_CLOSED), "closed");
    assert_string_equal(dialback_step_name(DIALBACK_STEP_BAD), "bad");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pair_to_valid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pair_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pair_unsolicited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pair_error_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pair_invalid_condemns, setup, teardown),
        cmocka_unit_test(test_limits),
        cmocka_unit_test_setup_teardown(test_verify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
