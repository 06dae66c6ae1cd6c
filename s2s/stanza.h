/*
 * Stanzas: one top-level XML element of a stream and everything in it, as a small tree
 * of elements, attributes and text with namespaces resolved.
 *
 * Each stanza owns one arena: a block allocated with the stanza and grown in chunks;
 * every element, attribute, string and text of the stanza lives in it, and
 * stanza_free() releases it all at once. No node is allocated on its own.
 *
 * Trees are read through the structures below (read-only for callers) and built with
 * the stanza_new/stanza_elem_* functions. Strings are NUL-terminated UTF-8.
 *
 * stanza_serialize() writes a stanza in one pass into an evbuffer, for a stream whose
 * content namespace is stream_ns: the element of a stanza in jabber:server written
 * into a jabber:component:accept stream (or the other way round) takes the stream's
 * namespace, and so do its descendants that were in the old one; every other namespace
 * is kept. Prefixes: "stream:" for http://etherx.jabber.org/streams (bound by the stream
 * header), "db:" for jabber:server:dialback (XEP-0220 §2.1: some servers accept
 * db:result/db:verify only so), "xml:" for the XML namespace; everything else is written
 * with default-namespace declarations, only where the namespace differs from the
 * parent's.
 */
#ifndef S2S_STANZA_H
#define S2S_STANZA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "s2s/xmpperr.h"

struct evbuffer;

#define STANZA_NS_SERVER    "jabber:server"
#define STANZA_NS_CLIENT    "jabber:client"
#define STANZA_NS_COMPONENT "jabber:component:accept"
#define STANZA_NS_DIALBACK  "jabber:server:dialback"
#define STANZA_NS_XML       "http://www.w3.org/XML/1998/namespace"

enum stanza_node_type {
    STANZA_NODE_ELEM = 1,
    STANZA_NODE_TEXT,
};

/* A child of an element: an element or a run of text, in document order. */
struct stanza_node {
    struct stanza_node *next;
    enum stanza_node_type type;
};

struct stanza_text {
    struct stanza_node node;
    char *data; /* NUL-terminated, len bytes */
    size_t len;
    size_t cap; /* bytes available at data (parser's growth) */
};

struct stanza_attr {
    const char *ns; /* NULL: no namespace (the usual case) */
    const char *name;
    const char *value;
};

struct stanza_elem {
    struct stanza_node node;
    struct stanza_elem *parent; /* NULL for the stanza's element */
    struct stanza_node *children;
    struct stanza_node *last_child;
    const char *ns; /* "" or NULL: no namespace */
    const char *name;
    struct stanza_attr *attrs;
    uint32_t nattrs;
    uint32_t attrs_cap;
};

struct stanza;

/* Building. Every function returns NULL or -1 only when memory runs out or input is bad:
 * names must be non-empty, "xmlns" is never an attribute, text and values must be valid
 * UTF-8 of characters XML 1.0 allows. ns NULL for an element means: the parent's. */
struct stanza *stanza_new(const char *ns, const char *name);
struct stanza_elem *stanza_elem_add(struct stanza *st, struct stanza_elem *parent, const char *ns,
                                    const char *name);
/* Sets (or replaces) an attribute; ns NULL for a plain attribute. */
int stanza_elem_set_attr(struct stanza *st, struct stanza_elem *e, const char *ns, const char *name,
                         const char *value);
int stanza_elem_add_text(struct stanza *st, struct stanza_elem *e, const char *text, size_t len);
/* Copies src (a subtree of any stanza) as the last child of parent in st. */
struct stanza_elem *stanza_elem_copy(struct stanza *st, struct stanza_elem *parent,
                                     const struct stanza_elem *src);
/* A deep copy in a new arena. */
struct stanza *stanza_copy(const struct stanza *st);
void stanza_free(struct stanza *st);

/* Reading. */
struct stanza_elem *stanza_root(const struct stanza *st);
const char *stanza_name(const struct stanza *st);
const char *stanza_ns(const struct stanza *st);
/* Plain (no namespace) attribute of the stanza element, NULL if absent. */
const char *stanza_attr(const struct stanza *st, const char *name);
/* Bytes of the element as received (0 for a stanza built here). */
size_t stanza_wire_bytes(const struct stanza *st);
/* Bytes the stanza holds in memory (its arena), for queue accounting. */
size_t stanza_mem_bytes(const struct stanza *st);

const char *stanza_elem_attr(const struct stanza_elem *e, const char *name);
const char *stanza_elem_attr_ns(const struct stanza_elem *e, const char *ns, const char *name);
/* First child element with that namespace and name; NULL matches any. */
struct stanza_elem *stanza_elem_child(const struct stanza_elem *e, const char *ns,
                                      const char *name);
/* Child elements only (text skipped): first, then next sibling. */
struct stanza_elem *stanza_elem_first(const struct stanza_elem *e);
struct stanza_elem *stanza_elem_next(const struct stanza_elem *e);
/* The text directly inside e, concatenated ("" when none); a single run is returned as
 * is, several are joined in st's arena. NULL only when memory runs out. */
const char *stanza_elem_text(struct stanza *st, const struct stanza_elem *e, size_t *lenp);
/* Namespace-and-name equality ("" and NULL namespaces are the same). */
bool stanza_elem_is(const struct stanza_elem *e, const char *ns, const char *name);
bool stanza_ns_eq(const char *a, const char *b);

/* Writing. stream_ns NULL: outside any stream (every namespace declared). */
#define STANZA_SER_DB_DECLARED 0x01 /* the stream header already declared xmlns:db */
int stanza_serialize(const struct stanza *st, struct evbuffer *out, const char *stream_ns);
int stanza_serialize_flags(const struct stanza *st, struct evbuffer *out, const char *stream_ns,
                           unsigned flags);
/* Escaped character data / attribute value (without quotes), for stream-level writers. */
int stanza_escape_text(struct evbuffer *out, const char *s, size_t len);
int stanza_escape_attr(struct evbuffer *out, const char *s, size_t len);

/*
 * The error reply to st (RFC 6120 §8.3): from and to swapped, same id, type='error',
 * the original children when with_payload, then
 * <error type='…'><cond xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text …>why</text>
 * </error> (no <text/> when why is NULL). NULL (nothing to send) for anything but
 * message/presence/iq, for a stanza without 'from', for type='error' (errors are never
 * answered with errors, §8.3.1) and for type='result' (an IQ response is not answered,
 * §8.2.3), or when memory runs out.
 */
struct stanza *stanza_bounce_make(const struct stanza *st, enum xmpp_stanza_error cond,
                                  const char *why, bool with_payload);

/* Used by the stream parser only: a stanza whose arena it fills itself. */
struct stanza *stanza_new_empty(void);
void *stanza_alloc(struct stanza *st, size_t size);
char *stanza_strdup(struct stanza *st, const char *s, size_t len);
/* A well-known namespace's static string, or a copy in st's arena. */
const char *stanza_ns_intern(struct stanza *st, const char *ns, size_t len);
/* An element with room for nattrs attributes (ns and name already in the arena). */
struct stanza_elem *stanza_elem_new_raw(struct stanza *st, struct stanza_elem *parent,
                                        const char *ns, const char *name, uint32_t nattrs);
int stanza_text_append(struct stanza *st, struct stanza_elem *e, const char *s, size_t len);
void stanza_set_wire_bytes(struct stanza *st, size_t n);

#endif
