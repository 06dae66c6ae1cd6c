/*
 * XML streams (RFC 6120 §4): an incremental, namespace-aware parser on libexpat that
 * turns bytes into a stream header, one stanza per top-level element, and a close; and
 * the writers for the stream-level markup (header, error, close).
 *
 * Restricted XML (RFC 6120 §11.1) is refused: a DOCTYPE, an entity declaration, a
 * processing instruction or a comment ends the stream with restricted-xml (the XML
 * declaration is allowed); malformed XML, invalid UTF-8, undeclared prefixes and unknown
 * entities with not-well-formed; a root other than <stream:stream/> in
 * http://etherx.jabber.org/streams, or a content namespace other than jabber:server or
 * jabber:component:accept, with invalid-namespace. Limits end it with policy-violation.
 * After an error the parser takes nothing more: its owner writes the error with
 * xmlstream_write_error() (which also closes the stream) and closes the connection.
 */
#ifndef S2S_XMLSTREAM_H
#define S2S_XMLSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "s2s/stanza.h"
#include "s2s/xmpperr.h"

struct evbuffer;
struct xmlstream;

struct xmlstream_limits {
    size_t max_stanza_bytes; /* raw bytes of one top-level element (256 KiB) */
    unsigned max_depth;      /* elements nested in a stanza, the stanza's own counted (32) */
    unsigned max_attrs;      /* attributes of one element, xmlns declarations not counted (64) */
    size_t max_header_bytes; /* the stream header's start tag, and bytes before it (4 KiB) */
};

#define XMLSTREAM_MAX_STANZA_BYTES (256 * 1024)
#define XMLSTREAM_MAX_DEPTH        32
#define XMLSTREAM_MAX_ATTRS        64
#define XMLSTREAM_MAX_HEADER_BYTES 4096

/* A stream header: what the parser saw, or what xmlstream_write_header() writes. Strings
 * (NULL when absent) are valid only during the callback. */
struct xmlstream_header {
    const char *to;
    const char *from;
    const char *id;
    const char *version; /* writer: NULL means "1.0", "" means no version attribute */
    const char *lang;    /* xml:lang */
    const char *ns;      /* content namespace: jabber:server or jabber:component:accept */
    bool db;             /* xmlns:db='jabber:server:dialback' declared (XEP-0220) */
};

/*
 * Callbacks run from inside xmlstream_feed(). They may call xmlstream_reset() (the
 * reset happens once the current element is done, see xmlstream_feed()) and
 * xmlstream_free() (deferred until xmlstream_feed() returns).
 */
struct xmlstream_cb {
    void (*header)(void *arg, const struct xmlstream_header *h);
    /* One complete top-level element; the callback takes the stanza (stanza_free()). */
    void (*stanza_take)(void *arg, struct stanza *st);
    /* </stream:stream> arrived. */
    void (*close)(void *arg);
    /* The stream is broken: cond and a text for the peer and the log. */
    void (*error)(void *arg, enum xmpp_stream_error cond, const char *text);
};

void xmlstream_limits_default(struct xmlstream_limits *lim);

/* lim NULL: the defaults. NULL when memory runs out. */
struct xmlstream *xmlstream_new(const struct xmlstream_limits *lim, const struct xmlstream_cb *cb,
                                void *arg);
void xmlstream_free(struct xmlstream *xs);

/*
 * Parses len more bytes of the stream. Returns the number of bytes consumed: len, or
 * fewer when a callback called xmlstream_reset(), in which case parsing stopped right
 * after the element that callback handled. The caller decides what the rest means:
 * after SASL success it is the new stream (feed it again); after STARTTLS it is
 * plaintext injected before the TLS handshake and must be discarded (RFC 6120 §5.4.3.3).
 * Returns -1 once the stream had an error (the error callback ran, once).
 */
ssize_t xmlstream_feed(struct xmlstream *xs, const void *data, size_t len);

/* A new parser expecting a new stream header (RFC 6120 §4.3.3 restart after STARTTLS or
 * SASL). Inside a callback it takes effect when the element being handled is complete. */
void xmlstream_reset(struct xmlstream *xs);

/* The error that ended the stream, or -1. */
int xmlstream_error(const struct xmlstream *xs);
bool xmlstream_header_seen(const struct xmlstream *xs);
bool xmlstream_closed(const struct xmlstream *xs);

/* <?xml version='1.0'?><stream:stream xmlns=… xmlns:stream=… [xmlns:db=…] to= from= id=
 * version= xml:lang=>; h->ns NULL means jabber:server. */
int xmlstream_write_header(struct evbuffer *out, const struct xmlstream_header *h);
/* <stream:error><cond xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>[<text …>text</text>]
 * </stream:error></stream:stream> (RFC 6120 §4.9.1.1: an error closes the stream). If
 * no header was sent yet, the caller sends one first (§4.9.1.3). */
int xmlstream_write_error(struct evbuffer *out, enum xmpp_stream_error cond, const char *text);
int xmlstream_write_close(struct evbuffer *out);

#endif
