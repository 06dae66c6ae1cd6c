/*
 * XMPP error condition names and default types (RFC 6120 §4.9.3, §8.3.2, §8.3.3).
 */
#include <stddef.h>
#include <string.h>

#include "s2s/xmpperr.h"

static const char *const stream_names[XMPP_STREAM_ERR_COUNT] = {
    [XMPP_STREAM_ERR_BAD_FORMAT] = "bad-format",
    [XMPP_STREAM_ERR_BAD_NAMESPACE_PREFIX] = "bad-namespace-prefix",
    [XMPP_STREAM_ERR_CONFLICT] = "conflict",
    [XMPP_STREAM_ERR_CONNECTION_TIMEOUT] = "connection-timeout",
    [XMPP_STREAM_ERR_HOST_GONE] = "host-gone",
    [XMPP_STREAM_ERR_HOST_UNKNOWN] = "host-unknown",
    [XMPP_STREAM_ERR_IMPROPER_ADDRESSING] = "improper-addressing",
    [XMPP_STREAM_ERR_INTERNAL_SERVER_ERROR] = "internal-server-error",
    [XMPP_STREAM_ERR_INVALID_FROM] = "invalid-from",
    [XMPP_STREAM_ERR_INVALID_NAMESPACE] = "invalid-namespace",
    [XMPP_STREAM_ERR_INVALID_XML] = "invalid-xml",
    [XMPP_STREAM_ERR_NOT_AUTHORIZED] = "not-authorized",
    [XMPP_STREAM_ERR_NOT_WELL_FORMED] = "not-well-formed",
    [XMPP_STREAM_ERR_POLICY_VIOLATION] = "policy-violation",
    [XMPP_STREAM_ERR_REMOTE_CONNECTION_FAILED] = "remote-connection-failed",
    [XMPP_STREAM_ERR_RESET] = "reset",
    [XMPP_STREAM_ERR_RESOURCE_CONSTRAINT] = "resource-constraint",
    [XMPP_STREAM_ERR_RESTRICTED_XML] = "restricted-xml",
    [XMPP_STREAM_ERR_SEE_OTHER_HOST] = "see-other-host",
    [XMPP_STREAM_ERR_SYSTEM_SHUTDOWN] = "system-shutdown",
    [XMPP_STREAM_ERR_UNDEFINED_CONDITION] = "undefined-condition",
    [XMPP_STREAM_ERR_UNSUPPORTED_ENCODING] = "unsupported-encoding",
    [XMPP_STREAM_ERR_UNSUPPORTED_FEATURE] = "unsupported-feature",
    [XMPP_STREAM_ERR_UNSUPPORTED_STANZA_TYPE] = "unsupported-stanza-type",
    [XMPP_STREAM_ERR_UNSUPPORTED_VERSION] = "unsupported-version",
};

/*
 * Each stanza condition with the type RFC 6120 §8.3.3 uses for it. undefined-condition
 * has no fixed type; "cancel" is the conservative choice for a reply we make ourselves.
 */
static const struct {
    const char *name;
    enum xmpp_error_type type;
} stanza_conds[XMPP_STANZA_ERR_COUNT] = {
    [XMPP_STANZA_ERR_BAD_REQUEST] = {"bad-request", XMPP_ERR_TYPE_MODIFY},
    [XMPP_STANZA_ERR_CONFLICT] = {"conflict", XMPP_ERR_TYPE_CANCEL},
    [XMPP_STANZA_ERR_FEATURE_NOT_IMPLEMENTED] = {"feature-not-implemented", XMPP_ERR_TYPE_CANCEL},
    [XMPP_STANZA_ERR_FORBIDDEN] = {"forbidden", XMPP_ERR_TYPE_AUTH},
    [XMPP_STANZA_ERR_GONE] = {"gone", XMPP_ERR_TYPE_CANCEL},
    [XMPP_STANZA_ERR_INTERNAL_SERVER_ERROR] = {"internal-server-error", XMPP_ERR_TYPE_CANCEL},
    [XMPP_STANZA_ERR_ITEM_NOT_FOUND] = {"item-not-found", XMPP_ERR_TYPE_CANCEL},
    [XMPP_STANZA_ERR_JID_MALFORMED] = {"jid-malformed", XMPP_ERR_TYPE_MODIFY},
    [XMPP_STANZA_ERR_NOT_ACCEPTABLE] = {"not-acceptable", XMPP_ERR_TYPE_MODIFY},
    [XMPP_STANZA_ERR_NOT_ALLOWED] = {"not-allowed", XMPP_ERR_TYPE_CANCEL},
    [XMPP_STANZA_ERR_NOT_AUTHORIZED] = {"not-authorized", XMPP_ERR_TYPE_AUTH},
    [XMPP_STANZA_ERR_POLICY_VIOLATION] = {"policy-violation", XMPP_ERR_TYPE_MODIFY},
    [XMPP_STANZA_ERR_RECIPIENT_UNAVAILABLE] = {"recipient-unavailable", XMPP_ERR_TYPE_WAIT},
    [XMPP_STANZA_ERR_REDIRECT] = {"redirect", XMPP_ERR_TYPE_MODIFY},
    [XMPP_STANZA_ERR_REGISTRATION_REQUIRED] = {"registration-required", XMPP_ERR_TYPE_AUTH},
    [XMPP_STANZA_ERR_REMOTE_SERVER_NOT_FOUND] = {"remote-server-not-found", XMPP_ERR_TYPE_CANCEL},
    [XMPP_STANZA_ERR_REMOTE_SERVER_TIMEOUT] = {"remote-server-timeout", XMPP_ERR_TYPE_WAIT},
    [XMPP_STANZA_ERR_RESOURCE_CONSTRAINT] = {"resource-constraint", XMPP_ERR_TYPE_WAIT},
    [XMPP_STANZA_ERR_SERVICE_UNAVAILABLE] = {"service-unavailable", XMPP_ERR_TYPE_CANCEL},
    [XMPP_STANZA_ERR_SUBSCRIPTION_REQUIRED] = {"subscription-required", XMPP_ERR_TYPE_AUTH},
    [XMPP_STANZA_ERR_UNDEFINED_CONDITION] = {"undefined-condition", XMPP_ERR_TYPE_CANCEL},
    [XMPP_STANZA_ERR_UNEXPECTED_REQUEST] = {"unexpected-request", XMPP_ERR_TYPE_WAIT},
};

static const char *const type_names[XMPP_ERR_TYPE_COUNT] = {
    [XMPP_ERR_TYPE_AUTH] = "auth",         [XMPP_ERR_TYPE_CANCEL] = "cancel",
    [XMPP_ERR_TYPE_CONTINUE] = "continue", [XMPP_ERR_TYPE_MODIFY] = "modify",
    [XMPP_ERR_TYPE_WAIT] = "wait",
};

const char *
xmpp_stream_error_name(enum xmpp_stream_error cond)
{
    if ((unsigned)cond >= XMPP_STREAM_ERR_COUNT)
        return "undefined-condition";
    return stream_names[cond];
}

const char *
xmpp_stanza_error_name(enum xmpp_stanza_error cond)
{
    if ((unsigned)cond >= XMPP_STANZA_ERR_COUNT)
        return "undefined-condition";
    return stanza_conds[cond].name;
}

const char *
xmpp_error_type_name(enum xmpp_error_type type)
{
    if ((unsigned)type >= XMPP_ERR_TYPE_COUNT)
        return "cancel";
    return type_names[type];
}

int
xmpp_stream_error_parse(const char *name)
{
    if (name == NULL)
        return -1;
    for (int i = 0; i < XMPP_STREAM_ERR_COUNT; i++)
        if (strcmp(stream_names[i], name) == 0)
            return i;
    return -1;
}

int
xmpp_stanza_error_parse(const char *name)
{
    if (name == NULL)
        return -1;
    for (int i = 0; i < XMPP_STANZA_ERR_COUNT; i++)
        if (strcmp(stanza_conds[i].name, name) == 0)
            return i;
    return -1;
}

int
xmpp_error_type_parse(const char *name)
{
    if (name == NULL)
        return -1;
    for (int i = 0; i < XMPP_ERR_TYPE_COUNT; i++)
        if (strcmp(type_names[i], name) == 0)
            return i;
    return -1;
}

enum xmpp_error_type
xmpp_stanza_error_default_type(enum xmpp_stanza_error cond)
{
    if ((unsigned)cond >= XMPP_STANZA_ERR_COUNT)
        return XMPP_ERR_TYPE_CANCEL;
    return stanza_conds[cond].type;
}
