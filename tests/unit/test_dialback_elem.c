/*
 * XEP-0220 element checks (dialback/elem.c): each role's request or response, every
 * error condition it can return, and the names used to build answers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "dialback/elem.h"
#include "dialback/key.h"

#define KEY1 "b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3"
#define KEY5 "225cc5aa6a071133249d25fef42ae516fc7a86c523aa1c6980a7f73e784c972d"

static struct dialback_attrs
attrs(const char *from, const char *to, const char *id, const char *type, const char *text)
{
    struct dialback_attrs a = {from, to, id, type, text, text != NULL ? strlen(text) : 0};
    return a;
}

static enum dialback_cond
result_req(struct dialback_attrs a, bool hosted)
{
    const char *key;
    size_t keylen;

    return dialback_check_result_request(&a, hosted, &key, &keylen);
}

static void
test_types(void **state)
{
    assert_int_equal(dialback_type_parse(NULL), DIALBACK_TYPE_NONE);
    assert_int_equal(dialback_type_parse("valid"), DIALBACK_TYPE_VALID);
    assert_int_equal(dialback_type_parse("invalid"), DIALBACK_TYPE_INVALID);
    assert_int_equal(dialback_type_parse("error"), DIALBACK_TYPE_ERROR);
    assert_int_equal(dialback_type_parse("VALID"), DIALBACK_TYPE_UNKNOWN);
    assert_int_equal(dialback_type_parse(""), DIALBACK_TYPE_UNKNOWN);
    assert_int_equal(dialback_type_parse("valid "), DIALBACK_TYPE_UNKNOWN);
    assert_string_equal(dialback_type_name(DIALBACK_TYPE_VALID), "valid");
    assert_string_equal(dialback_type_name(DIALBACK_TYPE_INVALID), "invalid");
    assert_string_equal(dialback_type_name(DIALBACK_TYPE_ERROR), "error");
    assert_null(dialback_type_name(DIALBACK_TYPE_NONE));
    assert_null(dialback_type_name(DIALBACK_TYPE_UNKNOWN));
}

static void
test_conditions(void **state)
{
    static const struct {
        enum dialback_cond cond;
        const char *name, *errtype;
        bool stream;
    } t[] = {
        {DIALBACK_ERR_ITEM_NOT_FOUND, "item-not-found", "cancel", false},
        {DIALBACK_ERR_REMOTE_CONNECTION_FAILED, "remote-connection-failed", "cancel", false},
        {DIALBACK_ERR_REMOTE_SERVER_NOT_FOUND, "remote-server-not-found", "cancel", false},
        {DIALBACK_ERR_REMOTE_SERVER_TIMEOUT, "remote-server-timeout", "wait", false},
        {DIALBACK_ERR_POLICY_VIOLATION, "policy-violation", "cancel", false},
        {DIALBACK_ERR_NOT_AUTHORIZED, "not-authorized", "cancel", false},
        {DIALBACK_ERR_FORBIDDEN, "forbidden", "cancel", false},
        {DIALBACK_ERR_NOT_ACCEPTABLE, "not-acceptable", "cancel", false},
        {DIALBACK_ERR_RESOURCE_CONSTRAINT, "resource-constraint", "wait", false},
        {DIALBACK_ERR_UNDEFINED, "undefined-condition", "cancel", false},
        {DIALBACK_STREAM_BAD_FORMAT, "bad-format", NULL, true},
        {DIALBACK_STREAM_IMPROPER_ADDRESSING, "improper-addressing", NULL, true},
        {DIALBACK_STREAM_INVALID_FROM, "invalid-from", NULL, true},
        {DIALBACK_STREAM_NOT_AUTHORIZED, "not-authorized", NULL, true},
    };

    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        assert_string_equal(dialback_cond_name(t[i].cond), t[i].name);
        assert_int_equal(dialback_cond_is_stream_error(t[i].cond), t[i].stream);
        if (t[i].errtype == NULL)
            assert_null(dialback_cond_error_type(t[i].cond));
        else
            assert_string_equal(dialback_cond_error_type(t[i].cond), t[i].errtype);
        /* A received dialback error maps back to itself; stream conditions never do. */
        if (!t[i].stream)
            assert_int_equal(dialback_cond_parse(t[i].name), t[i].cond);
    }
    assert_string_equal(dialback_cond_name(DIALBACK_OK), "");
    assert_null(dialback_cond_error_type(DIALBACK_OK));
    assert_false(dialback_cond_is_stream_error(DIALBACK_OK));
    assert_int_equal(dialback_cond_parse("bad-format"), DIALBACK_ERR_UNDEFINED);
    assert_int_equal(dialback_cond_parse("improper-addressing"), DIALBACK_ERR_UNDEFINED);
    assert_int_equal(dialback_cond_parse("gone"), DIALBACK_ERR_UNDEFINED);
    assert_int_equal(dialback_cond_parse(NULL), DIALBACK_ERR_UNDEFINED);
    /* not-authorized parses to the dialback error, not the stream error. */
    assert_int_equal(dialback_cond_parse("not-authorized"), DIALBACK_ERR_NOT_AUTHORIZED);
}

/* XEP-0220 §2.2.1, Example 9: the receiving server gets a key. */
static void
test_result_request_ok(void **state)
{
    struct dialback_attrs a =
        attrs("capulet.example", "montague.example", NULL, NULL, "\n        " KEY1 "\n      ");
    const char *key;
    size_t keylen;

    assert_int_equal(dialback_check_result_request(&a, true, &key, &keylen), DIALBACK_OK);
    assert_int_equal(keylen, 64);
    assert_memory_equal(key, KEY1, 64);
    assert_true(dialback_key_check("s3cr3tf0rd14lb4ck", a.to, a.from, "D60000229F", key, keylen));

    /* Other servers' keys are opaque: any printable token is relayed. */
    a = attrs("capulet.example.", "montague.example", NULL, NULL, "0123abcdXYZ+/=");
    assert_int_equal(dialback_check_result_request(&a, true, &key, &keylen), DIALBACK_OK);
    assert_int_equal(keylen, 14);
    a = attrs("b\xc3\xbc"
              "cher.example",
              "montague.example", NULL, NULL, KEY1);
    assert_int_equal(result_req(a, true), DIALBACK_OK);
}

static void
test_result_request_errors(void **state)
{
    char longkey[DIALBACK_MAX_KEY + 2];
    const char *key;
    size_t keylen;
    struct dialback_attrs a;

    /* A verdict on an inbound stream: unsolicited (XEP-0220 §7.1). */
    assert_int_equal(
        result_req(attrs("capulet.example", "montague.example", NULL, "valid", NULL), true),
        DIALBACK_STREAM_NOT_AUTHORIZED);
    assert_int_equal(result_req(attrs("capulet.example", "montague.example", NULL, "", KEY1), true),
                     DIALBACK_STREAM_NOT_AUTHORIZED);
    /* Addressing (RFC 6120 §4.9.3.7, §4.9.3.9). */
    assert_int_equal(result_req(attrs(NULL, "montague.example", NULL, NULL, KEY1), true),
                     DIALBACK_STREAM_IMPROPER_ADDRESSING);
    assert_int_equal(result_req(attrs("capulet.example", NULL, NULL, NULL, KEY1), true),
                     DIALBACK_STREAM_IMPROPER_ADDRESSING);
    static const char *const badfrom[] = {
        "",
        ".",
        "user@capulet.example",
        "capulet.example/res",
        "capu let.example",
        "capulet..example",
        ".capulet.example",
        "capulet.example\n",
        "[::1]",
        "a_b.example",
    };
    for (size_t i = 0; i < sizeof(badfrom) / sizeof(badfrom[0]); i++)
        assert_int_equal(result_req(attrs(badfrom[i], "montague.example", NULL, NULL, KEY1), true),
                         DIALBACK_STREAM_INVALID_FROM);
    assert_int_equal(
        result_req(attrs("capulet.example", "user@montague.example", NULL, NULL, KEY1), true),
        DIALBACK_STREAM_IMPROPER_ADDRESSING);
    /* Not our domain: a dialback error (XEP-0220 §2.2.1, Example 12), before the key. */
    assert_int_equal(
        result_req(attrs("capulet.example", "verona.example", NULL, NULL, KEY1), false),
        DIALBACK_ERR_ITEM_NOT_FOUND);
    assert_int_equal(result_req(attrs("capulet.example", "verona.example", NULL, NULL, ""), false),
                     DIALBACK_ERR_ITEM_NOT_FOUND);
    /* Unusable keys. */
    static const char *const badkey[] = {"", " \n\t ", "ab cd",
                                         ("ab\x01"
                                          "cd"),
                                         "\xc3\xbc"};
    for (size_t i = 0; i < sizeof(badkey) / sizeof(badkey[0]); i++) {
        a = attrs("capulet.example", "montague.example", NULL, NULL, badkey[i]);
        assert_int_equal(dialback_check_result_request(&a, true, &key, &keylen),
                         DIALBACK_ERR_NOT_ACCEPTABLE);
        assert_int_equal(keylen, 0);
    }
    assert_int_equal(
        result_req(attrs("capulet.example", "montague.example", NULL, NULL, NULL), true),
        DIALBACK_ERR_NOT_ACCEPTABLE);
    memset(longkey, 'a', sizeof(longkey) - 1);
    longkey[sizeof(longkey) - 1] = '\0';
    assert_int_equal(
        result_req(attrs("capulet.example", "montague.example", NULL, NULL, longkey), true),
        DIALBACK_ERR_NOT_ACCEPTABLE);
    longkey[DIALBACK_MAX_KEY] = '\0';
    assert_int_equal(
        result_req(attrs("capulet.example", "montague.example", NULL, NULL, longkey), true),
        DIALBACK_OK);
    /* Character data is taken by length, not up to a NUL. */
    a = attrs("capulet.example", "montague.example", NULL, NULL, KEY1);
    a.textlen = 10;
    assert_int_equal(dialback_check_result_request(&a, true, &key, &keylen), DIALBACK_OK);
    assert_int_equal(keylen, 10);
}

/* XEP-0220 §2.2.2, Example 13: the authoritative server gets a verify request. */
static void
test_verify_request(void **state)
{
    struct dialback_attrs a =
        attrs("capulet.example", "montague.example", "417GAF25", NULL, "\n " KEY5 "\n ");
    const char *key;
    size_t keylen;

    assert_int_equal(dialback_check_verify_request(&a, true, &key, &keylen), DIALBACK_OK);
    assert_int_equal(keylen, 64);
    /* The documented argument order gives the XEP's answer: valid. */
    assert_true(dialback_key_check("d14lb4ck43v3r", a.from, a.to, a.id, key, keylen));
    assert_false(dialback_key_check("d14lb4ck43v3r", a.to, a.from, a.id, key, keylen));

    /* An empty key is no protocol error: it is simply invalid. */
    a = attrs("capulet.example", "montague.example", "417GAF25", NULL, "  ");
    assert_int_equal(dialback_check_verify_request(&a, true, &key, &keylen), DIALBACK_OK);
    assert_int_equal(keylen, 0);
    assert_false(dialback_key_check("d14lb4ck43v3r", a.from, a.to, a.id, key, keylen));

    a = attrs("capulet.example", "montague.example", "417GAF25", "valid", KEY5);
    assert_int_equal(dialback_check_verify_request(&a, true, &key, &keylen),
                     DIALBACK_STREAM_NOT_AUTHORIZED);
    a = attrs(NULL, "montague.example", "417GAF25", NULL, KEY5);
    assert_int_equal(dialback_check_verify_request(&a, true, &key, &keylen),
                     DIALBACK_STREAM_IMPROPER_ADDRESSING);
    a = attrs("capulet.example", NULL, "417GAF25", NULL, KEY5);
    assert_int_equal(dialback_check_verify_request(&a, true, &key, &keylen),
                     DIALBACK_STREAM_IMPROPER_ADDRESSING);
    a = attrs("capulet@example", "montague.example", "417GAF25", NULL, KEY5);
    assert_int_equal(dialback_check_verify_request(&a, true, &key, &keylen),
                     DIALBACK_STREAM_INVALID_FROM);
    static const char *const badid[] = {NULL, "", "417 GAF25", "417\tGAF25"};
    for (size_t i = 0; i < sizeof(badid) / sizeof(badid[0]); i++) {
        a = attrs("capulet.example", "montague.example", badid[i], NULL, KEY5);
        assert_int_equal(dialback_check_verify_request(&a, true, &key, &keylen),
                         DIALBACK_STREAM_BAD_FORMAT);
    }
    /* XEP-0220 §2.2.2, Example 14: not our domain. */
    a = attrs("capulet.example", "verona.example", "417GAF25", NULL, KEY5);
    assert_int_equal(dialback_check_verify_request(&a, false, &key, &keylen),
                     DIALBACK_ERR_ITEM_NOT_FOUND);
}

static void
test_responses(void **state)
{
    enum dialback_type type;
    struct dialback_attrs a;

    /* XEP-0220 Examples 2, 3, 4 (db:result) and 6, 7, 8 (db:verify). */
    static const char *const types[] = {"valid", "invalid", "error"};
    static const enum dialback_type want[] = {DIALBACK_TYPE_VALID, DIALBACK_TYPE_INVALID,
                                              DIALBACK_TYPE_ERROR};
    for (size_t i = 0; i < 3; i++) {
        a = attrs("montague.example", "capulet.example", NULL, types[i], NULL);
        assert_int_equal(dialback_check_response(&a, false, &type), DIALBACK_OK);
        assert_int_equal(type, want[i]);
        a = attrs("montague.example", "capulet.example", "417GAF25", types[i], NULL);
        assert_int_equal(dialback_check_response(&a, true, &type), DIALBACK_OK);
        assert_int_equal(type, want[i]);
    }
    /* A request on an outbound stream (no XEP-0288 here). */
    a = attrs("montague.example", "capulet.example", NULL, NULL, KEY1);
    assert_int_equal(dialback_check_response(&a, false, &type), DIALBACK_STREAM_NOT_AUTHORIZED);
    assert_int_equal(type, DIALBACK_TYPE_NONE);
    a = attrs("montague.example", "capulet.example", NULL, "Valid", NULL);
    assert_int_equal(dialback_check_response(&a, false, &type), DIALBACK_STREAM_BAD_FORMAT);
    a = attrs(NULL, "capulet.example", NULL, "valid", NULL);
    assert_int_equal(dialback_check_response(&a, false, &type),
                     DIALBACK_STREAM_IMPROPER_ADDRESSING);
    a = attrs("montague.example", NULL, NULL, "valid", NULL);
    assert_int_equal(dialback_check_response(&a, false, &type),
                     DIALBACK_STREAM_IMPROPER_ADDRESSING);
    a = attrs("montague.example", "capulet example", NULL, "valid", NULL);
    assert_int_equal(dialback_check_response(&a, false, &type),
                     DIALBACK_STREAM_IMPROPER_ADDRESSING);
    a = attrs("montague.example", "capulet.example", NULL, "valid", NULL);
    assert_int_equal(dialback_check_response(&a, true, &type), DIALBACK_STREAM_BAD_FORMAT);
    a = attrs("montague.example", "capulet.example", "", "valid", NULL);
    assert_int_equal(dialback_check_response(&a, true, &type), DIALBACK_STREAM_BAD_FORMAT);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_conditions),
        cmocka_unit_test(test_result_request_ok),
        cmocka_unit_test(test_result_request_errors),
        cmocka_unit_test(test_verify_request),
        cmocka_unit_test(test_responses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
