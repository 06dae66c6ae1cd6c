/*
 * Server Dialback elements (XEP-0220): checks of a received <db:result/> or <db:verify/>
 * and the error conditions to answer with. No XML here: the stream code hands over the
 * attributes and the character data as plain strings, and builds the answer from what
 * these functions return.
 *
 * Roles (XEP-0220 §1.3), with "local" always our own domain:
 *   receiving server   gets <db:result from=remote to=local>key</db:result>     (request)
 *   authoritative      gets <db:verify from=remote to=local id=..>key</...>      (request)
 *   initiating server  gets <db:result from=remote to=local type=../>            (response)
 *   receiving server   gets <db:verify from=remote to=local id=.. type=../>      (response)
 * Requests arrive on inbound streams and carry no 'type' (XEP-0220 §2.2: we do not offer
 * XEP-0288); responses arrive on outbound streams and always carry one. Anything else is
 * an unsolicited element (XEP-0220 §7.1) and closes the stream.
 */
#ifndef DIALBACK_ELEM_H
#define DIALBACK_ELEM_H

#include <stdbool.h>
#include <stddef.h>

#define DIALBACK_NS         "jabber:server:dialback"
#define DIALBACK_FEATURE_NS "urn:xmpp:features:dialback" /* <dialback><errors/></dialback> */
#define DIALBACK_STANZAS_NS "urn:ietf:params:xml:ns:xmpp-stanzas"
#define DIALBACK_STREAMS_NS "urn:ietf:params:xml:ns:xmpp-streams"

/* Longest key we accept from a peer to relay in a <db:verify/> (ours have 64 digits). */
#define DIALBACK_MAX_KEY 1023

enum dialback_type {
    DIALBACK_TYPE_NONE = 0, /* no 'type' attribute: a request */
    DIALBACK_TYPE_VALID,
    DIALBACK_TYPE_INVALID,
    DIALBACK_TYPE_ERROR,
    DIALBACK_TYPE_UNKNOWN, /* any other value */
};

enum dialback_cond {
    DIALBACK_OK = 0,
    /*
     * Dialback errors (XEP-0220 §2.4): answered as <db:* type='error'> with
     * <error type='...'><COND xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>.
     * They concern one domain pair: the stream stays open.
     */
    DIALBACK_ERR_ITEM_NOT_FOUND,           /* 'to' is not a domain we host */
    DIALBACK_ERR_REMOTE_CONNECTION_FAILED, /* could not connect to the authoritative server */
    DIALBACK_ERR_REMOTE_SERVER_NOT_FOUND,  /* authoritative server unknown / step 3 error */
    DIALBACK_ERR_REMOTE_SERVER_TIMEOUT,    /* authoritative server went away or timed out */
    DIALBACK_ERR_POLICY_VIOLATION,         /* e.g. TLS required before dialback */
    DIALBACK_ERR_NOT_AUTHORIZED,           /* e.g. a valid certificate is required */
    DIALBACK_ERR_FORBIDDEN,                /* the authoritative server said "invalid" */
    DIALBACK_ERR_NOT_ACCEPTABLE,           /* identity not established (e.g. unusable key) */
    DIALBACK_ERR_RESOURCE_CONSTRAINT,      /* a limit of ours (RFC 6120 §8.3.3.18) */
    DIALBACK_ERR_UNDEFINED,                /* a received condition we do not know */
    /* Stream errors (RFC 6120 §4.9.3): the element breaks the protocol; close the stream. */
    DIALBACK_STREAM_BAD_FORMAT,          /* missing or malformed 'id' or 'type' */
    DIALBACK_STREAM_IMPROPER_ADDRESSING, /* missing 'from'/'to', malformed 'to' */
    DIALBACK_STREAM_INVALID_FROM,        /* malformed 'from' on a request */
    DIALBACK_STREAM_NOT_AUTHORIZED,      /* request/response in the wrong direction */
};

/* An element as received; absent attributes are NULL. text is the character data. */
struct dialback_attrs {
    const char *from;
    const char *to;
    const char *id;
    const char *type;
    const char *text;
    size_t textlen;
};

enum dialback_type dialback_type_parse(const char *type);
/* "valid", "invalid", "error"; NULL for NONE and UNKNOWN. */
const char *dialback_type_name(enum dialback_type type);

/* The condition's element name ("item-not-found", "improper-addressing"); "" for OK. */
const char *dialback_cond_name(enum dialback_cond cond);
/* The 'type' of the <error/> for a dialback error: "wait" for timeouts and limits, else
 * "cancel" (RFC 6120 §8.3.3); NULL for OK and stream errors. */
const char *dialback_cond_error_type(enum dialback_cond cond);
bool dialback_cond_is_stream_error(enum dialback_cond cond);
/* Maps a received stanza-error condition name to a dialback error (DIALBACK_ERR_UNDEFINED
 * for any other name or NULL). */
enum dialback_cond dialback_cond_parse(const char *name);

/*
 * A <db:result/> request (we are the receiving server, XEP-0220 §2.2.1). to_hosted says
 * whether 'to' is one of our domains (the caller knows the configuration). On DIALBACK_OK,
 * *key and *keylen point at the key inside a->text, surrounding whitespace removed: printable
 * ASCII, 1..DIALBACK_MAX_KEY octets, ready to relay in a <db:verify/>.
 */
enum dialback_cond dialback_check_result_request(const struct dialback_attrs *a, bool to_hosted,
                                                 const char **key, size_t *keylen);

/*
 * A <db:verify/> request (we are the authoritative server, XEP-0220 §2.2.2). On DIALBACK_OK,
 * *key and *keylen are the trimmed character data (possibly empty or malformed: it then simply
 * fails dialback_key_check()). The key to compare with is
 * dialback_key_make(secret, a->from, a->to, a->id): the asking receiving server, our
 * domain, the stream id.
 */
enum dialback_cond dialback_check_verify_request(const struct dialback_attrs *a, bool to_hosted,
                                                 const char **key, size_t *keylen);

/*
 * A response on one of our outbound streams: <db:result type=../> (is_verify false,
 * XEP-0220 §2.1.1) or <db:verify id=.. type=../> (is_verify true, §2.1.2). On DIALBACK_OK
 * *type is VALID, INVALID or ERROR; the caller then matches it with the request it sent
 * (dialback/state.h) and drops it if there was none.
 */
enum dialback_cond dialback_check_response(const struct dialback_attrs *a, bool is_verify,
                                           enum dialback_type *type);

#endif
