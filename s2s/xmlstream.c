/*
 * XML stream parser on libexpat, and the stream-level writers (RFC 6120 §4, §11).
 *
 * Expat runs in namespace mode with '\1' between namespace and local name ("\1" cannot
 * occur in XML 1.0 text, so no URI can contain it). Stanzas are built straight into
 * their own arena as expat reports them; a complete top-level element is handed to the
 * owner at once.
 *
 * Handlers never free the parser: errors, resets and closes stop it (XML_StopParser) and
 * are acted on after XML_Parse() returns. Expat may still call a handler after a stop
 * (e.g. the end of an empty element), so each handler first checks xs->stopped.
 */
#include <assert.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <expat.h>

#include "s2s/stanza.h"
#include "s2s/xmlstream.h"
#include "s2s/xmpperr.h"

#define NS_SEP      '\1'
#define STREAM_ROOT XMPP_NS_STREAMS "\1stream"
#define XML_LANG    STANZA_NS_XML "\1lang"

enum xs_state {
    XS_HEADER, /* waiting for <stream:stream> */
    XS_OPEN,
    XS_CLOSED, /* </stream:stream> seen */
    XS_FAILED,
};

struct xmlstream {
    XML_Parser parser;
    struct xmlstream_limits lim;
    struct xmlstream_cb cb;
    void *arg;
    enum xs_state state;

    bool in_parse; /* inside XML_Parse(): handlers may run */
    bool in_feed;  /* inside xmlstream_feed(): callbacks may run */
    bool stopped;  /* XML_StopParser() called: ignore further handlers */
    bool reset_pending;
    bool free_pending;

    int err; /* enum xmpp_stream_error, -1 for none */
    char errtext[160];

    unsigned depth; /* 0 before the header, 1 in the stream, 2 in a stanza's element */
    struct stanza *cur;
    struct stanza_elem *elem;
    const char *content_ns; /* static string: jabber:server or jabber:component:accept */

    XML_Index fed;          /* bytes handed to this parser */
    XML_Index stanza_start; /* offset of the open stanza's '<' */
    XML_Index ev_end;       /* end of the last event reported */
    XML_Index stop_at;      /* end of the event a reset stopped after */

    char *hdr_ns; /* default namespace declared on the root */
    bool hdr_db;
};

static void stream_stop(struct xmlstream *xs);

void
xmlstream_limits_default(struct xmlstream_limits *lim)
{
    lim->max_stanza_bytes = XMLSTREAM_MAX_STANZA_BYTES;
    lim->max_depth = XMLSTREAM_MAX_DEPTH;
    lim->max_attrs = XMLSTREAM_MAX_ATTRS;
    lim->max_header_bytes = XMLSTREAM_MAX_HEADER_BYTES;
}

/* Records the first error and stops the parser; reported once XML_Parse() returns. */
static void __attribute__((format(printf, 3, 4)))
stream_fail(struct xmlstream *xs, enum xmpp_stream_error cond, const char *fmt, ...)
{
    va_list ap;

    if (xs->err != -1)
        return;
    xs->err = (int)cond;
    va_start(ap, fmt);
    vsnprintf(xs->errtext, sizeof(xs->errtext), fmt, ap);
    va_end(ap);
    stream_stop(xs);
}

static void
stream_stop(struct xmlstream *xs)
{
    if (xs->stopped)
        return;
    xs->stopped = true;
    if (xs->in_parse)
        XML_StopParser(xs->parser, XML_FALSE);
}

static XML_Index
event_end(struct xmlstream *xs)
{
    return XML_GetCurrentByteIndex(xs->parser) + XML_GetCurrentByteCount(xs->parser);
}

/* ---- restricted XML (RFC 6120 §11.1) ---- */

static void
on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid, const XML_Char *pubid,
           int has_internal_subset)
{
    struct xmlstream *xs = ud;

    if (!xs->stopped)
        stream_fail(xs, XMPP_STREAM_ERR_RESTRICTED_XML, "document type declaration");
}

static void
on_entity_decl(void *ud, const XML_Char *name, int is_pe, const XML_Char *value, int value_len,
               const XML_Char *base, const XML_Char *sysid, const XML_Char *pubid,
               const XML_Char *notation)
{
    struct xmlstream *xs = ud;

    if (!xs->stopped)
        stream_fail(xs, XMPP_STREAM_ERR_RESTRICTED_XML, "entity declaration");
}

static void
on_pi(void *ud, const XML_Char *target, const XML_Char *data)
{
    struct xmlstream *xs = ud;

    if (!xs->stopped)
        stream_fail(xs, XMPP_STREAM_ERR_RESTRICTED_XML, "processing instruction");
}

static void
on_comment(void *ud, const XML_Char *data)
{
    struct xmlstream *xs = ud;

    if (!xs->stopped)
        stream_fail(xs, XMPP_STREAM_ERR_RESTRICTED_XML, "comment");
}

/* The XML declaration is allowed; its encoding must be UTF-8 (RFC 6120 §11.6). */
static void
on_xmldecl(void *ud, const XML_Char *version, const XML_Char *encoding, int standalone)
{
    struct xmlstream *xs = ud;

    if (xs->stopped)
        return;
    if (encoding != NULL && strcasecmp(encoding, "UTF-8") != 0) {
        stream_fail(xs, XMPP_STREAM_ERR_UNSUPPORTED_ENCODING, "encoding %.40s", encoding);
        return;
    }
    xs->ev_end = event_end(xs);
}

/* ---- the stream header ---- */

static void
on_ns_decl(void *ud, const XML_Char *prefix, const XML_Char *uri)
{
    struct xmlstream *xs = ud;

    if (xs->stopped || xs->depth != 0)
        return;
    if (prefix == NULL) {
        free(xs->hdr_ns);
        if ((xs->hdr_ns = strdup(uri != NULL ? uri : "")) == NULL)
            stream_fail(xs, XMPP_STREAM_ERR_RESOURCE_CONSTRAINT, "out of memory");
    } else if (strcmp(prefix, "db") == 0) {
        xs->hdr_db = uri != NULL && strcmp(uri, STANZA_NS_DIALBACK) == 0;
    }
}

static void
stream_start(struct xmlstream *xs, const XML_Char *name, const XML_Char **atts)
{
    struct xmlstream_header h;
    const char *sep = strchr(name, NS_SEP);
    unsigned n;

    if ((size_t)XML_GetCurrentByteCount(xs->parser) > xs->lim.max_header_bytes) {
        stream_fail(xs, XMPP_STREAM_ERR_POLICY_VIOLATION, "stream header exceeds %zu bytes",
                    xs->lim.max_header_bytes);
        return;
    }
    if (strcmp(name, STREAM_ROOT) != 0) {
        /* RFC 6120 §4.9.3.10: the stream namespace must be the streams one. */
        if (sep == NULL || (size_t)(sep - name) != strlen(XMPP_NS_STREAMS) ||
            strncmp(name, XMPP_NS_STREAMS, (size_t)(sep - name)) != 0)
            stream_fail(xs, XMPP_STREAM_ERR_INVALID_NAMESPACE,
                        "root element not in " XMPP_NS_STREAMS);
        else
            stream_fail(xs, XMPP_STREAM_ERR_BAD_FORMAT, "root element is not <stream:stream/>");
        return;
    }
    if (xs->hdr_ns != NULL && strcmp(xs->hdr_ns, STANZA_NS_SERVER) == 0)
        xs->content_ns = STANZA_NS_SERVER;
    else if (xs->hdr_ns != NULL && strcmp(xs->hdr_ns, STANZA_NS_COMPONENT) == 0)
        xs->content_ns = STANZA_NS_COMPONENT;
    else {
        stream_fail(xs, XMPP_STREAM_ERR_INVALID_NAMESPACE, "content namespace '%.60s' unsupported",
                    xs->hdr_ns != NULL ? xs->hdr_ns : "");
        return;
    }

    memset(&h, 0, sizeof(h));
    for (n = 0; atts[n] != NULL; n += 2) {
        const char *an = atts[n], *av = atts[n + 1];
        if (strcmp(an, "to") == 0)
            h.to = av;
        else if (strcmp(an, "from") == 0)
            h.from = av;
        else if (strcmp(an, "id") == 0)
            h.id = av;
        else if (strcmp(an, "version") == 0)
            h.version = av;
        else if (strcmp(an, XML_LANG) == 0)
            h.lang = av;
    }
    if (n / 2 > xs->lim.max_attrs) {
        stream_fail(xs, XMPP_STREAM_ERR_POLICY_VIOLATION,
                    "stream header has more than %u attributes", xs->lim.max_attrs);
        return;
    }
    h.ns = xs->content_ns;
    h.db = xs->hdr_db;
    xs->depth = 1;
    xs->state = XS_OPEN;
    xs->ev_end = xs->stop_at = event_end(xs);
    /* Declarations inside stanzas need no handler: expat resolves them. */
    XML_SetNamespaceDeclHandler(xs->parser, NULL, NULL);
    if (xs->cb.header != NULL)
        xs->cb.header(xs->arg, &h);
}

/* ---- stanzas ---- */

static const char *
elem_ns(struct xmlstream *xs, const char *name, size_t nslen)
{
    const struct stanza_elem *p = xs->elem;

    if (nslen == 0)
        return "";
    /* Most elements share their parent's namespace, and stanzas the stream's. */
    if (p != NULL && strncmp(p->ns, name, nslen) == 0 && p->ns[nslen] == '\0')
        return p->ns;
    if (strncmp(xs->content_ns, name, nslen) == 0 && xs->content_ns[nslen] == '\0')
        return xs->content_ns;
    return stanza_ns_intern(xs->cur, name, nslen);
}

static bool
add_attrs(struct xmlstream *xs, struct stanza_elem *e, const XML_Char **atts, unsigned n)
{
    struct stanza *st = xs->cur;

    for (unsigned i = 0; i < n; i++) {
        const char *an = atts[2 * i], *av = atts[2 * i + 1];
        const char *sep = strchr(an, NS_SEP);
        struct stanza_attr *a = &e->attrs[i];

        a->ns = NULL;
        if (sep != NULL) {
            if ((a->ns = stanza_ns_intern(st, an, (size_t)(sep - an))) == NULL)
                return false;
            an = sep + 1;
        }
        a->name = stanza_strdup(st, an, strlen(an));
        a->value = stanza_strdup(st, av, strlen(av));
        if (a->name == NULL || a->value == NULL)
            return false;
        e->nattrs++;
    }
    return true;
}

static void
on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    struct xmlstream *xs = ud;
    const char *sep, *local, *ns;
    struct stanza_elem *e;
    unsigned n;

    if (xs->stopped)
        return;
    if (xs->depth == 0) {
        stream_start(xs, name, atts);
        return;
    }
    for (n = 0; atts[n] != NULL; n += 2)
        ;
    n /= 2;
    if (n > xs->lim.max_attrs) {
        stream_fail(xs, XMPP_STREAM_ERR_POLICY_VIOLATION, "element has more than %u attributes",
                    xs->lim.max_attrs);
        return;
    }
    if (xs->depth >= xs->lim.max_depth + 1) {
        stream_fail(xs, XMPP_STREAM_ERR_POLICY_VIOLATION, "stanza nesting exceeds %u levels",
                    xs->lim.max_depth);
        return;
    }
    if (xs->depth == 1) {
        if ((xs->cur = stanza_new_empty()) == NULL)
            goto nomem;
        xs->elem = NULL;
        xs->stanza_start = XML_GetCurrentByteIndex(xs->parser);
    }
    sep = strchr(name, NS_SEP);
    local = sep != NULL ? sep + 1 : name;
    ns = elem_ns(xs, name, sep != NULL ? (size_t)(sep - name) : 0);
    if (ns == NULL)
        goto nomem;
    if ((local = stanza_strdup(xs->cur, local, strlen(local))) == NULL)
        goto nomem;
    if ((e = stanza_elem_new_raw(xs->cur, xs->elem, ns, local, n)) == NULL)
        goto nomem;
    if (n > 0 && !add_attrs(xs, e, atts, n))
        goto nomem;
    xs->elem = e;
    xs->depth++;
    return;
nomem:
    stream_fail(xs, XMPP_STREAM_ERR_RESOURCE_CONSTRAINT, "out of memory");
}

static void
stanza_done(struct xmlstream *xs)
{
    struct stanza *st = xs->cur;
    XML_Index end = event_end(xs);
    size_t bytes = (size_t)(end - xs->stanza_start);

    if (bytes > xs->lim.max_stanza_bytes) {
        stream_fail(xs, XMPP_STREAM_ERR_POLICY_VIOLATION, "stanza exceeds %zu bytes",
                    xs->lim.max_stanza_bytes);
        return;
    }
    xs->cur = NULL;
    xs->elem = NULL;
    xs->ev_end = xs->stop_at = end;
    stanza_set_wire_bytes(st, bytes);
    if (xs->cb.stanza_take != NULL)
        xs->cb.stanza_take(xs->arg, st);
    else
        stanza_free(st);
}

static void
on_end(void *ud, const XML_Char *name)
{
    struct xmlstream *xs = ud;

    if (xs->stopped)
        return;
    if (xs->depth == 1) {
        xs->depth = 0;
        xs->state = XS_CLOSED;
        xs->ev_end = xs->stop_at = event_end(xs);
        stream_stop(xs);
        if (xs->cb.close != NULL)
            xs->cb.close(xs->arg);
        return;
    }
    xs->depth--;
    if (xs->depth == 1)
        stanza_done(xs);
    else
        xs->elem = xs->elem->parent;
}

static void
on_text(void *ud, const XML_Char *s, int len)
{
    struct xmlstream *xs = ud;

    if (xs->stopped)
        return;
    if (xs->depth < 2) {
        /* Whitespace between stanzas (keepalives): nothing to keep. */
        xs->ev_end = event_end(xs);
        return;
    }
    if (stanza_text_append(xs->cur, xs->elem, s, (size_t)len) == -1)
        stream_fail(xs, XMPP_STREAM_ERR_RESOURCE_CONSTRAINT, "out of memory");
}

/* ---- parser life ---- */

static void
parser_release(struct xmlstream *xs)
{
    if (xs->parser != NULL)
        XML_ParserFree(xs->parser);
    xs->parser = NULL;
    stanza_free(xs->cur);
    xs->cur = NULL;
    xs->elem = NULL;
    free(xs->hdr_ns);
    xs->hdr_ns = NULL;
}

static int
parser_create(struct xmlstream *xs)
{
    XML_Parser p;

    /* "UTF-8" overrides any declared encoding; on_xmldecl refuses other declarations. */
    if ((p = XML_ParserCreateNS("UTF-8", NS_SEP)) == NULL)
        return -1;
    /*
     * Expat >= 2.6 (and Debian's 2.5.0 with the CVE-2023-52425 backport) may defer
     * reparsing a token it saw incomplete until much more input arrives, holding a
     * complete stanza back. A stream must deliver each stanza as soon as its end tag is
     * in: switch the deferral off.
     */
    XML_SetReparseDeferralEnabled(p, XML_FALSE);
    XML_SetUserData(p, xs);
    XML_SetElementHandler(p, on_start, on_end);
    XML_SetCharacterDataHandler(p, on_text);
    XML_SetNamespaceDeclHandler(p, on_ns_decl, NULL);
    XML_SetXmlDeclHandler(p, on_xmldecl);
    XML_SetStartDoctypeDeclHandler(p, on_doctype);
    XML_SetEntityDeclHandler(p, on_entity_decl);
    XML_SetProcessingInstructionHandler(p, on_pi);
    XML_SetCommentHandler(p, on_comment);
    XML_SetParamEntityParsing(p, XML_PARAM_ENTITY_PARSING_NEVER);
    xs->parser = p;
    xs->state = XS_HEADER;
    xs->stopped = false;
    xs->reset_pending = false;
    xs->depth = 0;
    xs->fed = xs->ev_end = xs->stop_at = xs->stanza_start = 0;
    xs->hdr_db = false;
    xs->content_ns = STANZA_NS_SERVER;
    return 0;
}

struct xmlstream *
xmlstream_new(const struct xmlstream_limits *lim, const struct xmlstream_cb *cb, void *arg)
{
    struct xmlstream *xs = calloc(1, sizeof(*xs));

    if (xs == NULL)
        return NULL;
    if (lim != NULL)
        xs->lim = *lim;
    else
        xmlstream_limits_default(&xs->lim);
    if (cb != NULL)
        xs->cb = *cb;
    xs->arg = arg;
    xs->err = -1;
    if (parser_create(xs) == -1) {
        free(xs);
        return NULL;
    }
    return xs;
}

void
xmlstream_free(struct xmlstream *xs)
{
    if (xs == NULL)
        return;
    if (xs->in_feed) {
        xs->free_pending = true;
        stream_stop(xs);
        return;
    }
    parser_release(xs);
    free(xs);
}

static void
stream_do_reset(struct xmlstream *xs)
{
    parser_release(xs);
    xs->err = -1;
    xs->errtext[0] = '\0';
    if (parser_create(xs) == -1) {
        xs->state = XS_FAILED;
        xs->err = XMPP_STREAM_ERR_RESOURCE_CONSTRAINT;
        snprintf(xs->errtext, sizeof(xs->errtext), "out of memory");
    }
}

void
xmlstream_reset(struct xmlstream *xs)
{
    if (xs->in_parse) {
        /* Never free expat inside its own handler: stop after this event. */
        xs->reset_pending = true;
        stream_stop(xs);
        return;
    }
    stream_do_reset(xs);
}

/* Bounds what expat holds between events (RFC 6120 §13.12: resource exhaustion). */
static void
check_pending(struct xmlstream *xs)
{
    if (xs->state == XS_HEADER && xs->fed - xs->ev_end > (XML_Index)xs->lim.max_header_bytes)
        stream_fail(xs, XMPP_STREAM_ERR_POLICY_VIOLATION, "stream header exceeds %zu bytes",
                    xs->lim.max_header_bytes);
    else if (xs->state == XS_OPEN && xs->cur != NULL &&
             xs->fed - xs->stanza_start > (XML_Index)xs->lim.max_stanza_bytes)
        stream_fail(xs, XMPP_STREAM_ERR_POLICY_VIOLATION, "stanza exceeds %zu bytes",
                    xs->lim.max_stanza_bytes);
    else if (xs->state == XS_OPEN && xs->cur == NULL &&
             xs->fed - xs->ev_end > (XML_Index)xs->lim.max_stanza_bytes)
        stream_fail(xs, XMPP_STREAM_ERR_POLICY_VIOLATION, "stanza exceeds %zu bytes",
                    xs->lim.max_stanza_bytes);
}

static void
expat_fail(struct xmlstream *xs)
{
    enum XML_Error code = XML_GetErrorCode(xs->parser);
    enum xmpp_stream_error cond = XMPP_STREAM_ERR_NOT_WELL_FORMED;

    if (code == XML_ERROR_UNKNOWN_ENCODING || code == XML_ERROR_INCORRECT_ENCODING)
        cond = XMPP_STREAM_ERR_UNSUPPORTED_ENCODING;
    stream_fail(xs, cond, "%s at line %lu column %lu", XML_ErrorString(code),
                (unsigned long)XML_GetCurrentLineNumber(xs->parser),
                (unsigned long)XML_GetCurrentColumnNumber(xs->parser));
}

static ssize_t
feed_parse(struct xmlstream *xs, const char *data, size_t len)
{
    XML_Index start = xs->fed;
    size_t off = 0;

    while (off < len && !xs->stopped) {
        size_t n = len - off > INT_MAX / 2 ? INT_MAX / 2 : len - off;
        enum XML_Status status;

        xs->in_parse = true;
        status = XML_Parse(xs->parser, data + off, (int)n, XML_FALSE);
        xs->in_parse = false;
        if (status == XML_STATUS_ERROR && !xs->stopped)
            expat_fail(xs);
        if (xs->stopped)
            break;
        xs->fed += (XML_Index)n;
        off += n;
        check_pending(xs);
    }
    if (xs->err != -1)
        return -1;
    if (xs->reset_pending) {
        ssize_t used = (ssize_t)(xs->stop_at - start);
        stream_do_reset(xs);
        return used;
    }
    return (ssize_t)len;
}

ssize_t
xmlstream_feed(struct xmlstream *xs, const void *data, size_t len)
{
    ssize_t ret;

    assert(!xs->in_feed); /* not re-entrant: callbacks must not feed */
    if (xs->state == XS_FAILED || xs->err != -1)
        return -1;
    if (xs->state == XS_CLOSED || len == 0)
        return (ssize_t)len;
    xs->in_feed = true;
    ret = feed_parse(xs, data, len);
    if (ret == -1 && xs->state != XS_FAILED) {
        xs->state = XS_FAILED;
        stanza_free(xs->cur);
        xs->cur = NULL;
        if (xs->cb.error != NULL && !xs->free_pending)
            xs->cb.error(xs->arg, (enum xmpp_stream_error)xs->err, xs->errtext);
    }
    if (xs->state == XS_CLOSED)
        ret = (ssize_t)len;
    xs->in_feed = false;
    if (xs->free_pending)
        xmlstream_free(xs);
    return ret;
}

int
xmlstream_error(const struct xmlstream *xs)
{
    return xs->err;
}

bool
xmlstream_header_seen(const struct xmlstream *xs)
{
    return xs->state != XS_HEADER;
}

bool
xmlstream_closed(const struct xmlstream *xs)
{
    return xs->state == XS_CLOSED;
}

/* ---- writers ---- */

static int
put_attr(struct evbuffer *out, const char *name, const char *value)
{
    if (value == NULL)
        return 0;
    if (evbuffer_add_printf(out, " %s='", name) == -1 ||
        stanza_escape_attr(out, value, strlen(value)) == -1 || evbuffer_add(out, "'", 1) == -1)
        return -1;
    return 0;
}

int
xmlstream_write_header(struct evbuffer *out, const struct xmlstream_header *h)
{
    const char *version = h->version != NULL ? h->version : "1.0";

    if (evbuffer_add_printf(out, "<?xml version='1.0'?><stream:stream") == -1 ||
        put_attr(out, "xmlns", h->ns != NULL ? h->ns : STANZA_NS_SERVER) == -1 ||
        put_attr(out, "xmlns:stream", XMPP_NS_STREAMS) == -1 ||
        (h->db && put_attr(out, "xmlns:db", STANZA_NS_DIALBACK) == -1) ||
        put_attr(out, "to", h->to) == -1 || put_attr(out, "from", h->from) == -1 ||
        put_attr(out, "id", h->id) == -1 ||
        put_attr(out, "version", version[0] != '\0' ? version : NULL) == -1 ||
        put_attr(out, "xml:lang", h->lang) == -1 || evbuffer_add(out, ">", 1) == -1)
        return -1;
    return 0;
}

int
xmlstream_write_error(struct evbuffer *out, enum xmpp_stream_error cond, const char *text)
{
    if (evbuffer_add_printf(out, "<stream:error><%s xmlns='" XMPP_NS_STREAM_ERRORS "'/>",
                            xmpp_stream_error_name(cond)) == -1)
        return -1;
    if (text != NULL && text[0] != '\0') {
        if (evbuffer_add_printf(out, "<text xmlns='" XMPP_NS_STREAM_ERRORS "'>") == -1 ||
            stanza_escape_text(out, text, strlen(text)) == -1 ||
            evbuffer_add_printf(out, "</text>") == -1)
            return -1;
    }
    if (evbuffer_add_printf(out, "</stream:error>") == -1)
        return -1;
    return xmlstream_write_close(out);
}

int
xmlstream_write_close(struct evbuffer *out)
{
    return evbuffer_add(out, "</stream:stream>", 16);
}
