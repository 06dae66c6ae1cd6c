/*
 * xmpperr: every RFC 6120 condition name maps to its enum and back, unknown names are
 * refused, and stanza conditions carry the RFC's error type.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "s2s/xmpperr.h"

static void
test_stream_names_round_trip(void **state)
{
    (void)state;
    assert_int_equal(XMPP_STREAM_ERR_COUNT, 25); /* RFC 6120 §4.9.3.1 - §4.9.3.25 */
    for (int i = 0; i < XMPP_STREAM_ERR_COUNT; i++) {
        const char *name = xmpp_stream_error_name(i);
        assert_non_null(name);
        assert_int_equal(xmpp_stream_error_parse(name), i);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(name, xmpp_stream_error_name(j));
    }
    assert_string_equal(xmpp_stream_error_name(XMPP_STREAM_ERR_NOT_WELL_FORMED), "not-well-formed");
    assert_string_equal(xmpp_stream_error_name(XMPP_STREAM_ERR_RESTRICTED_XML), "restricted-xml");
    assert_string_equal(xmpp_stream_error_name(XMPP_STREAM_ERR_UNSUPPORTED_VERSION),
                        "unsupported-version");
    assert_string_equal(xmpp_stream_error_name(XMPP_STREAM_ERR_COUNT), "undefined-condition");
    assert_int_equal(xmpp_stream_error_parse("no-such-condition"), -1);
    assert_int_equal(xmpp_stream_error_parse(NULL), -1);
    assert_int_equal(xmpp_stream_error_parse("remote-server-not-found"), -1); /* stanza only */
}

static void
test_stanza_names_round_trip(void **state)
{
    (void)state;
    assert_int_equal(XMPP_STANZA_ERR_COUNT, 22); /* RFC 6120 §8.3.3.1 - §8.3.3.22 */
    for (int i = 0; i < XMPP_STANZA_ERR_COUNT; i++) {
        const char *name = xmpp_stanza_error_name(i);
        assert_int_equal(xmpp_stanza_error_parse(name), i);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(name, xmpp_stanza_error_name(j));
    }
    assert_string_equal(xmpp_stanza_error_name(XMPP_STANZA_ERR_REMOTE_SERVER_NOT_FOUND),
                        "remote-server-not-found");
    assert_int_equal(xmpp_stanza_error_parse("bad-format"), -1); /* stream only */
    assert_int_equal(xmpp_stanza_error_parse(""), -1);
}

static void
test_default_types(void **state)
{
    (void)state;
    static const struct {
        enum xmpp_stanza_error cond;
        const char *type;
    } want[] = {
        {XMPP_STANZA_ERR_BAD_REQUEST, "modify"},
        {XMPP_STANZA_ERR_CONFLICT, "cancel"},
        {XMPP_STANZA_ERR_FEATURE_NOT_IMPLEMENTED, "cancel"},
        {XMPP_STANZA_ERR_FORBIDDEN, "auth"},
        {XMPP_STANZA_ERR_GONE, "cancel"},
        {XMPP_STANZA_ERR_INTERNAL_SERVER_ERROR, "cancel"},
        {XMPP_STANZA_ERR_ITEM_NOT_FOUND, "cancel"},
        {XMPP_STANZA_ERR_JID_MALFORMED, "modify"},
        {XMPP_STANZA_ERR_NOT_ACCEPTABLE, "modify"},
        {XMPP_STANZA_ERR_NOT_ALLOWED, "cancel"},
        {XMPP_STANZA_ERR_NOT_AUTHORIZED, "auth"},
        {XMPP_STANZA_ERR_POLICY_VIOLATION, "modify"},
        {XMPP_STANZA_ERR_RECIPIENT_UNAVAILABLE, "wait"},
        {XMPP_STANZA_ERR_REDIRECT, "modify"},
        {XMPP_STANZA_ERR_REGISTRATION_REQUIRED, "auth"},
        {XMPP_STANZA_ERR_REMOTE_SERVER_NOT_FOUND, "cancel"},
        {XMPP_STANZA_ERR_REMOTE_SERVER_TIMEOUT, "wait"},
        {XMPP_STANZA_ERR_RESOURCE_CONSTRAINT, "wait"},
        {XMPP_STANZA_ERR_SERVICE_UNAVAILABLE, "cancel"},
        {XMPP_STANZA_ERR_SUBSCRIPTION_REQUIRED, "auth"},
        {XMPP_STANZA_ERR_UNDEFINED_CONDITION, "cancel"},
        {XMPP_STANZA_ERR_UNEXPECTED_REQUEST, "wait"},
    };
    assert_int_equal(sizeof(want) / sizeof(want[0]), XMPP_STANZA_ERR_COUNT);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        assert_string_equal(xmpp_error_type_name(xmpp_stanza_error_default_type(want[i].cond)),
                            want[i].type);
}

static void
test_type_names(void **state)
{
    (void)state;
    for (int i = 0; i < XMPP_ERR_TYPE_COUNT; i++)
        assert_int_equal(xmpp_error_type_parse(xmpp_error_type_name(i)), i);
    assert_int_equal(xmpp_error_type_parse("continue"), XMPP_ERR_TYPE_CONTINUE);
    assert_int_equal(xmpp_error_type_parse("later"), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_names_round_trip),
        cmocka_unit_test(test_stanza_names_round_trip),
        cmocka_unit_test(test_default_types),
        cmocka_unit_test(test_type_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
