/*
 * XMPP error conditions: the stream errors of RFC 6120 §4.9.3 and the stanza errors of
 * RFC 6120 §8.3.3, with their names on the wire and, for stanza errors, the error type a
 * reply carries by default (§8.3.2).
 */
#ifndef S2S_XMPPERR_H
#define S2S_XMPPERR_H

#define XMPP_NS_STREAMS       "http://etherx.jabber.org/streams"
#define XMPP_NS_STREAM_ERRORS "urn:ietf:params:xml:ns:xmpp-streams"
#define XMPP_NS_STANZA_ERRORS "urn:ietf:params:xml:ns:xmpp-stanzas"

/* RFC 6120 §4.9.3, in the RFC's order. */
enum xmpp_stream_error {
    XMPP_STREAM_ERR_BAD_FORMAT = 0,
    XMPP_STREAM_ERR_BAD_NAMESPACE_PREFIX,
    XMPP_STREAM_ERR_CONFLICT,
    XMPP_STREAM_ERR_CONNECTION_TIMEOUT,
    XMPP_STREAM_ERR_HOST_GONE,
    XMPP_STREAM_ERR_HOST_UNKNOWN,
    XMPP_STREAM_ERR_IMPROPER_ADDRESSING,
    XMPP_STREAM_ERR_INTERNAL_SERVER_ERROR,
    XMPP_STREAM_ERR_INVALID_FROM,
    XMPP_STREAM_ERR_INVALID_NAMESPACE,
    XMPP_STREAM_ERR_INVALID_XML,
    XMPP_STREAM_ERR_NOT_AUTHORIZED,
    XMPP_STREAM_ERR_NOT_WELL_FORMED,
    XMPP_STREAM_ERR_POLICY_VIOLATION,
    XMPP_STREAM_ERR_REMOTE_CONNECTION_FAILED,
    XMPP_STREAM_ERR_RESET,
    XMPP_STREAM_ERR_RESOURCE_CONSTRAINT,
    XMPP_STREAM_ERR_RESTRICTED_XML,
    XMPP_STREAM_ERR_SEE_OTHER_HOST,
    XMPP_STREAM_ERR_SYSTEM_SHUTDOWN,
    XMPP_STREAM_ERR_UNDEFINED_CONDITION,
    XMPP_STREAM_ERR_UNSUPPORTED_ENCODING,
    XMPP_STREAM_ERR_UNSUPPORTED_FEATURE,
    XMPP_STREAM_ERR_UNSUPPORTED_STANZA_TYPE,
    XMPP_STREAM_ERR_UNSUPPORTED_VERSION,
    XMPP_STREAM_ERR_COUNT
};

/* RFC 6120 §8.3.3, in the RFC's order. */
enum xmpp_stanza_error {
    XMPP_STANZA_ERR_BAD_REQUEST = 0,
    XMPP_STANZA_ERR_CONFLICT,
    XMPP_STANZA_ERR_FEATURE_NOT_IMPLEMENTED,
    XMPP_STANZA_ERR_FORBIDDEN,
    XMPP_STANZA_ERR_GONE,
    XMPP_STANZA_ERR_INTERNAL_SERVER_ERROR,
    XMPP_STANZA_ERR_ITEM_NOT_FOUND,
    XMPP_STANZA_ERR_JID_MALFORMED,
    XMPP_STANZA_ERR_NOT_ACCEPTABLE,
    XMPP_STANZA_ERR_NOT_ALLOWED,
    XMPP_STANZA_ERR_NOT_AUTHORIZED,
    XMPP_STANZA_ERR_POLICY_VIOLATION,
    XMPP_STANZA_ERR_RECIPIENT_UNAVAILABLE,
    XMPP_STANZA_ERR_REDIRECT,
    XMPP_STANZA_ERR_REGISTRATION_REQUIRED,
    XMPP_STANZA_ERR_REMOTE_SERVER_NOT_FOUND,
    XMPP_STANZA_ERR_REMOTE_SERVER_TIMEOUT,
    XMPP_STANZA_ERR_RESOURCE_CONSTRAINT,
    XMPP_STANZA_ERR_SERVICE_UNAVAILABLE,
    XMPP_STANZA_ERR_SUBSCRIPTION_REQUIRED,
    XMPP_STANZA_ERR_UNDEFINED_CONDITION,
    XMPP_STANZA_ERR_UNEXPECTED_REQUEST,
    XMPP_STANZA_ERR_COUNT
};

/* The 'type' attribute of a stanza <error/> (RFC 6120 §8.3.2). */
enum xmpp_error_type {
    XMPP_ERR_TYPE_AUTH = 0,
    XMPP_ERR_TYPE_CANCEL,
    XMPP_ERR_TYPE_CONTINUE,
    XMPP_ERR_TYPE_MODIFY,
    XMPP_ERR_TYPE_WAIT,
    XMPP_ERR_TYPE_COUNT
};

/* Element names ("not-well-formed"); "undefined-condition" for an out-of-range value. */
const char *xmpp_stream_error_name(enum xmpp_stream_error cond);
const char *xmpp_stanza_error_name(enum xmpp_stanza_error cond);
const char *xmpp_error_type_name(enum xmpp_error_type type);

/* Name -> enum; -1 for an unknown name (NULL included). */
int xmpp_stream_error_parse(const char *name);
int xmpp_stanza_error_parse(const char *name);
int xmpp_error_type_parse(const char *name);

/* The type RFC 6120 §8.3.3 gives each condition in its definition and example. */
enum xmpp_error_type xmpp_stanza_error_default_type(enum xmpp_stanza_error cond);

#endif
