/*
 * xmlstream: good streams as Prosody and ejabberd send them, restricted XML (RFC 6120
 * §11.1), malformed XML, bad namespaces, every limit at and just past its value, close,
 * restarts (STARTTLS, SASL), the writers, and that the split of the input into chunks
 * never changes what comes out (every split point, and byte by byte).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "s2s/stanza.h"
#include "s2s/xmlstream.h"

#define NS_DECLS                                                                                   \
    "xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "                       \
    "xmlns:db='jabber:server:dialback'"
#define HDR "<stream:stream " NS_DECLS " version='1.0'>"

/* What a Prosody 0.12 peer sends first. */
static const char prosody_stream[] =
    "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
    "xmlns:db='jabber:server:dialback' xmlns:stream='http://etherx.jabber.org/streams' "
    "from='remote.example' to='example.org' id='8a1c3f42-5d2b-4c1e-9c0e-2f7a1b2c3d4e' "
    "version='1.0' xml:lang='en'>"
    "<stream:features><dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>"
    "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
    "</stream:features>";

/* ejabberd-like: double quotes, other attribute order, dialback, traffic, close. */
static const char ejabberd_stream[] =
    "<?xml version=\"1.0\"?>\n<stream:stream xmlns:stream=\"http://etherx.jabber.org/streams\" "
    "xmlns=\"jabber:server\" xmlns:db=\"jabber:server:dialback\" id=\"14395383216547\" "
    "from=\"ejabberd.example\" to=\"example.org\" version=\"1.0\" xml:lang=\"de\">\n"
    "<db:result from=\"ejabberd.example\" to=\"example.org\">"
    "b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3</db:result>\n"
    "<message xml:lang=\"de\" to=\"b@example.org\" from=\"a@ejabberd.example/x\" "
    "type=\"chat\" id=\"m1\"><body>Gr\xc3\xbc\xc3\x9f"
    "e \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 &amp; &lt;tags&gt; &#x41;&#66;</body>"
    "<body xml:lang='en'><![CDATA[<raw> & ]]>ok</body>"
    "<request xmlns=\"urn:xmpp:receipts\"/></message>\n"
    "<presence from=\"a@ejabberd.example/x\" to=\"b@example.org\"><c "
    "xmlns=\"http://jabber.org/protocol/caps\" hash=\"sha-1\" node=\"https://ejabberd.im\" "
    "ver=\"1Q2Vt/K9DpA=\"/><x xmlns=\"vcard-temp:x:update\"><photo/></x></presence>\n"
    "<iq type=\"get\" id=\"d1\" from=\"ejabberd.example\" to=\"example.org\"><query "
    "xmlns=\"http://jabber.org/protocol/disco#info\" node=\"n\"><x xmlns=\"jabber:x:data\" "
    "type=\"result\"><field var=\"FORM_TYPE\"><value>urn:x</value></field></x></query></iq>\n"
    " \n</stream:stream>";

struct rec {
    struct evbuffer *log;
    struct xmlstream *xs;
    int headers, stanzas, closes, errors;
    int err;
    char errtext[256];
    const char *reset_on; /* stanza name whose arrival resets the stream */
    bool free_on_stanza;
    struct stanza *keep[8];
    int nkeep;
};

static void
rec_header(void *arg, const struct xmlstream_header *h)
{
    struct rec *r = arg;

    r->headers++;
    evbuffer_add_printf(r->log, "H to=%s from=%s id=%s version=%s lang=%s ns=%s db=%d\n",
                        h->to ? h->to : "-", h->from ? h->from : "-", h->id ? h->id : "-",
                        h->version ? h->version : "-", h->lang ? h->lang : "-", h->ns, h->db);
}

static void
rec_stanza(void *arg, struct stanza *st)
{
    struct rec *r = arg;
    const char *name = stanza_name(st);

    r->stanzas++;
    evbuffer_add_printf(r->log, "S %zu ", stanza_wire_bytes(st));
    assert_int_equal(stanza_serialize(st, r->log, STANZA_NS_SERVER), 0);
    evbuffer_add(r->log, "\n", 1);
    if (r->nkeep < 8)
        r->keep[r->nkeep++] = st;
    else
        stanza_free(st);
    if (r->reset_on != NULL && strcmp(name, r->reset_on) == 0)
        xmlstream_reset(r->xs);
    if (r->free_on_stanza) {
        xmlstream_free(r->xs);
        r->xs = NULL;
    }
}

static void
rec_close(void *arg)
{
    struct rec *r = arg;

    r->closes++;
    evbuffer_add_printf(r->log, "C\n");
}

static void
rec_error(void *arg, enum xmpp_stream_error cond, const char *text)
{
    struct rec *r = arg;

    r->errors++;
    r->err = (int)cond;
    snprintf(r->errtext, sizeof(r->errtext), "%s", text);
    evbuffer_add_printf(r->log, "E %s %s\n", xmpp_stream_error_name(cond), text);
}

static const struct xmlstream_cb rec_cb = {
    .header = rec_header, .stanza_take = rec_stanza, .close = rec_close, .error = rec_error};

static void
rec_init(struct rec *r, const struct xmlstream_limits *lim)
{
    memset(r, 0, sizeof(*r));
    r->err = -1;
    r->log = evbuffer_new();
    assert_non_null(r->log);
    r->xs = xmlstream_new(lim, &rec_cb, r);
    assert_non_null(r->xs);
}

static void
rec_done(struct rec *r)
{
    for (int i = 0; i < r->nkeep; i++)
        stanza_free(r->keep[i]);
    xmlstream_free(r->xs);
    evbuffer_free(r->log);
}

/* The log as a string the caller frees. */
static char *
rec_log(struct rec *r)
{
    size_t len = evbuffer_get_length(r->log);
    char *s = malloc(len + 1);

    assert_non_null(s);
    evbuffer_copyout(r->log, s, len);
    s[len] = '\0';
    return s;
}

static ssize_t
feed(struct rec *r, const char *s, size_t len)
{
    return xmlstream_feed(r->xs, s, len);
}

static ssize_t
feeds(struct rec *r, const char *s)
{
    return feed(r, s, strlen(s));
}

/* Feeds a whole stream and returns the log. */
static char *
run_whole(const char *s, size_t len, const struct xmlstream_limits *lim)
{
    struct rec r;
    char *log;

    rec_init(&r, lim);
    feed(&r, s, len);
    log = rec_log(&r);
    rec_done(&r);
    return log;
}

/* Feeds header + body and expects exactly one stream error. */
static void
expect_error(const char *header, const char *body, enum xmpp_stream_error cond,
             const char *text_prefix, const struct xmlstream_limits *lim)
{
    struct rec r;
    ssize_t n;

    rec_init(&r, lim);
    n = feeds(&r, header);
    if (n != -1)
        n = feeds(&r, body);
    if (r.errors != 1 || r.err != (int)cond)
        print_message("input: %s%s\nerror: %s %s\n", header, body,
                      r.err >= 0 ? xmpp_stream_error_name(r.err) : "none", r.errtext);
    assert_int_equal(n, -1);
    assert_int_equal(r.errors, 1);
    assert_int_equal(r.err, cond);
    assert_int_equal(xmlstream_error(r.xs), cond);
    if (text_prefix != NULL)
        assert_memory_equal(r.errtext, text_prefix, strlen(text_prefix));
    /* After an error the parser takes nothing more, and reports nothing more. */
    assert_int_equal(feeds(&r, "<message><body>more</body></message>"), -1);
    assert_int_equal(r.errors, 1);
    rec_done(&r);
}

/* ---- good streams ---- */

static void
test_prosody_stream(void **state)
{
    (void)state;
    struct rec r;
    struct stanza_elem *f;

    rec_init(&r, NULL);
    assert_false(xmlstream_header_seen(r.xs));
    assert_int_equal(feeds(&r, prosody_stream), (ssize_t)strlen(prosody_stream));
    assert_true(xmlstream_header_seen(r.xs));
    assert_int_equal(r.headers, 1);
    assert_int_equal(r.stanzas, 1);
    f = stanza_root(r.keep[0]);
    assert_true(stanza_elem_is(f, XMPP_NS_STREAMS, "features"));
    assert_non_null(stanza_elem_child(f, "urn:ietf:params:xml:ns:xmpp-tls", "starttls"));
    assert_non_null(stanza_elem_child(f, "urn:xmpp:features:dialback", "dialback"));
    char *log = rec_log(&r);
    assert_string_equal(
        log, "H to=example.org from=remote.example id=8a1c3f42-5d2b-4c1e-9c0e-2f7a1b2c3d4e "
             "version=1.0 lang=en ns=jabber:server db=1\n"
             "S 172 <stream:features><dialback xmlns='urn:xmpp:features:dialback'><errors/>"
             "</dialback><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>"
             "</starttls></stream:features>\n");
    free(log);
    rec_done(&r);
}

static void
test_ejabberd_stream(void **state)
{
    (void)state;
    struct rec r;
    struct stanza *m;
    struct stanza_elem *body;

    rec_init(&r, NULL);
    assert_int_equal(feeds(&r, ejabberd_stream), (ssize_t)strlen(ejabberd_stream));
    assert_int_equal(r.headers, 1);
    assert_int_equal(r.stanzas, 4);
    assert_int_equal(r.closes, 1);
    assert_int_equal(r.errors, 0);
    assert_true(xmlstream_closed(r.xs));

    assert_true(stanza_elem_is(stanza_root(r.keep[0]), STANZA_NS_DIALBACK, "result"));
    assert_string_equal(stanza_attr(r.keep[0], "from"), "ejabberd.example");

    m = r.keep[1];
    assert_true(stanza_elem_is(stanza_root(m), STANZA_NS_SERVER, "message"));
    assert_string_equal(stanza_elem_attr_ns(stanza_root(m), STANZA_NS_XML, "lang"), "de");
    body = stanza_elem_child(stanza_root(m), STANZA_NS_SERVER, "body");
    assert_string_equal(stanza_elem_text(m, body, NULL),
                        "Gr\xc3\xbc\xc3\x9f"
                        "e \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 & <tags> AB");
    body = stanza_elem_next(body);
    assert_string_equal(stanza_elem_attr_ns(body, STANZA_NS_XML, "lang"), "en");
    assert_string_equal(stanza_elem_text(m, body, NULL), "<raw> & ok"); /* CDATA */
    assert_non_null(stanza_elem_child(stanza_root(m), "urn:xmpp:receipts", "request"));

    assert_non_null(stanza_elem_child(stanza_root(r.keep[2]), "vcard-temp:x:update", "x"));
    struct stanza_elem *q =
        stanza_elem_child(stanza_root(r.keep[3]), "http://jabber.org/protocol/disco#info", NULL);
    assert_non_null(q);
    assert_non_null(stanza_elem_child(q, "jabber:x:data", "x"));

    /* After the close, input is ignored. */
    assert_int_equal(feeds(&r, "<message/>"), 10);
    assert_int_equal(r.stanzas, 4);
    rec_done(&r);
}

static void
test_component_stream(void **state)
{
    (void)state;
    struct rec r;
    const char *s = "<stream:stream xmlns='jabber:component:accept' "
                    "xmlns:stream='http://etherx.jabber.org/streams' from='proxy.example.org' "
                    "id='c1'><handshake/><message to='a@remote.example'><body>x</body></message>";

    rec_init(&r, NULL);
    assert_int_equal(feeds(&r, s), (ssize_t)strlen(s));
    assert_int_equal(r.stanzas, 2);
    assert_string_equal(stanza_ns(r.keep[1]), STANZA_NS_COMPONENT);
    char *log = rec_log(&r);
    /* Serialized for the s2s side (jabber:server) it is re-homed. */
    assert_string_equal(log, "H to=- from=proxy.example.org id=c1 version=- lang=- "
                             "ns=jabber:component:accept db=0\n"
                             "S 12 <handshake/>\n"
                             "S 55 <message to='a@remote.example'><body>x</body></message>\n");
    free(log);
    rec_done(&r);
}

static void
test_xml_declaration_allowed(void **state)
{
    (void)state;
    struct rec r;

    rec_init(&r, NULL);
    assert_true(feeds(&r, "\xef\xbb\xbf<?xml version='1.0' encoding='UTF-8'?>" HDR) > 0);
    assert_int_equal(r.headers, 1);
    assert_int_equal(r.errors, 0);
    rec_done(&r);
    expect_error("<?xml version='1.0' encoding='ISO-8859-1'?>", HDR,
                 XMPP_STREAM_ERR_UNSUPPORTED_ENCODING, "encoding", NULL);
}

/* Reparse deferral (expat >= 2.6, and Debian's 2.5.0 security backport) must be off: a
 * stanza whose end arrives is delivered by that very feed. */
static void
test_stanza_delivered_at_once(void **state)
{
    (void)state;
    struct rec r;
    size_t big = 60000;
    char *s = malloc(big + 64);

    rec_init(&r, NULL);
    feeds(&r, HDR);
    assert_int_equal(r.headers, 1);
    feeds(&r, "<message to='a@b'><body>hi</body></message>");
    assert_int_equal(r.stanzas, 1);
    feeds(&r, "<presence/>");
    assert_int_equal(r.stanzas, 2);

    /* A big start tag arriving in pieces, completed by a small one. */
    int n = snprintf(s, big + 64, "<message id='");
    memset(s + n, 'x', big);
    strcpy(s + n + big, "'/>");
    size_t len = strlen(s);
    for (size_t off = 0; off < len - 3; off += 4096)
        feed(&r, s + off, (len - 3 - off) < 4096 ? len - 3 - off : 4096);
    assert_int_equal(r.stanzas, 2);
    feed(&r, s + len - 3, 3);
    assert_int_equal(r.stanzas, 3);
    assert_int_equal(strlen(stanza_attr(r.keep[2], "id")), big);

    /* Same with a long text whose end tag comes alone. */
    feeds(&r, "<message><body>");
    for (int i = 0; i < 100; i++)
        feed(&r, s + n, 500);
    feeds(&r, "</body></message>");
    assert_int_equal(r.stanzas, 4);
    assert_int_equal(r.errors, 0);
    free(s);
    rec_done(&r);
}

static void
test_big_text_in_pieces(void **state)
{
    (void)state;
    struct rec r;
    size_t lines = 12000, len;
    struct evbuffer *b = evbuffer_new();
    char *s;
    const char *t;

    evbuffer_add_printf(b, "<message><body>");
    for (size_t i = 0; i < lines; i++)
        evbuffer_add_printf(b, "line %05zu &amp;\n", i);
    evbuffer_add_printf(b, "</body></message>");
    len = evbuffer_get_length(b);
    s = (char *)evbuffer_pullup(b, -1);

    rec_init(&r, NULL);
    feeds(&r, HDR);
    for (size_t off = 0; off < len; off += 1000)
        feed(&r, s + off, len - off < 1000 ? len - off : 1000);
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.stanzas, 1);
    assert_int_equal(stanza_wire_bytes(r.keep[0]), len);
    size_t tlen;
    t = stanza_elem_text(r.keep[0], stanza_elem_first(stanza_root(r.keep[0])), &tlen);
    assert_int_equal(tlen, lines * 13);
    assert_memory_equal(t, "line 00000 &\nline 00001 &\n", 26);
    assert_memory_equal(t + tlen - 13, "line 11999 &\n", 13);
    /* Pieces were joined in place: memory stays within a small factor of the text. */
    assert_true(stanza_mem_bytes(r.keep[0]) < 3 * tlen);
    rec_done(&r);
    evbuffer_free(b);
}

/* ---- restricted XML, malformed XML, namespaces ---- */

static void
test_restricted_xml(void **state)
{
    (void)state;
    const enum xmpp_stream_error R = XMPP_STREAM_ERR_RESTRICTED_XML;

    expect_error("", "<!DOCTYPE stream:stream>" HDR, R, "document type", NULL);
    expect_error("<?xml version='1.0'?>", "<!DOCTYPE x [<!ENTITY e 'boom'>]>" HDR, R, NULL, NULL);
    expect_error("", "<?php echo 1; ?>" HDR, R, "processing instruction", NULL);
    expect_error(HDR, "<?foo bar?>", R, "processing instruction", NULL);
    expect_error(HDR, "<message><?foo bar?></message>", R, "processing instruction", NULL);
    expect_error("", "<!-- hello -->" HDR, R, "comment", NULL);
    expect_error(HDR, "<!-- hello -->", R, "comment", NULL);
    expect_error(HDR, "<message><body>a<!-- c -->b</body></message>", R, "comment", NULL);
}

static void
test_not_well_formed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "<message><body>x</message>",
        "<message>\xff</message>",
        "<message>\xc0\xaf</message>",         /* overlong '/' */
        "<message>\xed\xa0\x80</message>",     /* UTF-16 surrogate */
        "<message>\xef\xbf\xbf</message>",     /* U+FFFF */
        "<message>\xf4\x90\x80\x80</message>", /* > U+10FFFF */
        "<message>\x01</message>",
        "<message>&#0;</message>",
        "<message>&#xD800;</message>",
        "<foo:bar/>",
        "<message foo:a='1'/>",
        "<message>&foo;</message>",
        "<message>&amp</message>",
        "<message a='1' a='2'/>",
        "<message xmlns:x='u' x:a='1' xmlns:y='u' y:a='2'/>",
        "<?xml version='1.0'?>",
        "</message>",
        "<message a=1/>",
        "<message><</message>",
        "<1message/>",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_error(HDR, bad[i], XMPP_STREAM_ERR_NOT_WELL_FORMED, NULL, NULL);
    expect_error("<stream:stream xmlns='jabber:server' xmlns:stream='", "\xff'>",
                 XMPP_STREAM_ERR_NOT_WELL_FORMED, NULL, NULL);
}

static void
test_bad_namespace(void **state)
{
    (void)state;
    const enum xmpp_stream_error NS = XMPP_STREAM_ERR_INVALID_NAMESPACE;

    expect_error("", "<stream:stream xmlns='jabber:server' xmlns:stream='http://wrong'>", NS, NULL,
                 NULL);
    expect_error("", "<stream xmlns='jabber:server'>", NS, NULL, NULL);
    expect_error("", "<html><body/></html>", NS, NULL, NULL);
    expect_error("",
                 "<stream:stream xmlns='jabber:client' "
                 "xmlns:stream='http://etherx.jabber.org/streams'>",
                 NS, "content namespace 'jabber:client'", NULL);
    expect_error("", "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>", NS, NULL,
                 NULL);
    expect_error("",
                 "<stream:foo xmlns='jabber:server' "
                 "xmlns:stream='http://etherx.jabber.org/streams'>",
                 XMPP_STREAM_ERR_BAD_FORMAT, NULL, NULL);
}

/* ---- limits ---- */

static char *
make_message(size_t total)
{
    /* <message><body>xxx</body></message>: 32 bytes of markup */
    char *s = malloc(total + 1);

    assert_true(total >= 32);
    memcpy(s, "<message><body>", 15);
    memset(s + 15, 'x', total - 32);
    memcpy(s + total - 17, "</body></message>", 18);
    assert_int_equal(strlen(s), total);
    return s;
}

static void
check_stanza_limit(size_t max, const struct xmlstream_limits *lim, size_t piece)
{
    char text[64];
    struct rec r;
    char *ok = make_message(max), *over = make_message(max + 1);

    snprintf(text, sizeof(text), "stanza exceeds %zu bytes", max);
    rec_init(&r, lim);
    feeds(&r, HDR);
    for (size_t off = 0; off < max; off += piece)
        feed(&r, ok + off, max - off < piece ? max - off : piece);
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.stanzas, 1);
    assert_int_equal(stanza_wire_bytes(r.keep[0]), max);
    rec_done(&r);

    rec_init(&r, lim);
    feeds(&r, HDR);
    for (size_t off = 0; off < max + 1 && r.errors == 0; off += piece)
        feed(&r, over + off, max + 1 - off < piece ? max + 1 - off : piece);
    assert_int_equal(r.errors, 1);
    assert_int_equal(r.err, XMPP_STREAM_ERR_POLICY_VIOLATION);
    assert_string_equal(r.errtext, text);
    assert_int_equal(r.stanzas, 0);
    rec_done(&r);
    free(ok);
    free(over);
}

static void
test_limit_stanza_bytes(void **state)
{
    (void)state;
    struct xmlstream_limits lim;

    check_stanza_limit(262144, NULL, 1 << 20); /* the default, in one piece */
    check_stanza_limit(262144, NULL, 4096);    /* in reads */
    xmlstream_limits_default(&lim);
    lim.max_stanza_bytes = 1000;
    check_stanza_limit(1000, &lim, 1);
    check_stanza_limit(1000, &lim, 7);

    /* A start tag that never ends is cut off too, before it is complete. */
    struct rec r;
    char *junk = malloc(4096);
    rec_init(&r, &lim);
    feeds(&r, HDR "<message id='");
    memset(junk, 'y', 4096);
    for (int i = 0; i < 10 && r.errors == 0; i++)
        feed(&r, junk, 4096);
    assert_int_equal(r.errors, 1);
    assert_string_equal(r.errtext, "stanza exceeds 1000 bytes");
    rec_done(&r);
    free(junk);
}

static char *
make_nested(unsigned levels)
{
    struct evbuffer *b = evbuffer_new();
    char *s;

    for (unsigned i = 0; i < levels; i++)
        evbuffer_add_printf(b, "<e%u>", i);
    for (unsigned i = levels; i-- > 0;)
        evbuffer_add_printf(b, "</e%u>", i);
    evbuffer_add(b, "", 1);
    s = strdup((char *)evbuffer_pullup(b, -1));
    evbuffer_free(b);
    return s;
}

static void
test_limit_depth(void **state)
{
    (void)state;
    struct rec r;
    char *ok = make_nested(32), *over = make_nested(33);

    rec_init(&r, NULL);
    feeds(&r, HDR);
    feeds(&r, ok);
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.stanzas, 1);
    rec_done(&r);
    expect_error(HDR, over, XMPP_STREAM_ERR_POLICY_VIOLATION, "stanza nesting exceeds 32 levels",
                 NULL);
    free(ok);
    free(over);
}

static char *
make_attrs(unsigned n)
{
    struct evbuffer *b = evbuffer_new();
    char *s;

    evbuffer_add_printf(b, "<message><x");
    for (unsigned i = 0; i < n; i++)
        evbuffer_add_printf(b, " a%u='%u'", i, i);
    evbuffer_add_printf(b, " xmlns='urn:x' xmlns:p='urn:p'/></message>");
    evbuffer_add(b, "", 1);
    s = strdup((char *)evbuffer_pullup(b, -1));
    evbuffer_free(b);
    return s;
}

static void
test_limit_attrs(void **state)
{
    (void)state;
    struct rec r;
    char *ok = make_attrs(64), *over = make_attrs(65);

    rec_init(&r, NULL);
    feeds(&r, HDR);
    feeds(&r, ok);
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.stanzas, 1);
    assert_int_equal(stanza_elem_first(stanza_root(r.keep[0]))->nattrs, 64);
    rec_done(&r);
    expect_error(HDR, over, XMPP_STREAM_ERR_POLICY_VIOLATION, "element has more than 64 attributes",
                 NULL);
    free(ok);
    free(over);
}

static char *
make_header(size_t total)
{
    const char *pre = "<stream:stream " NS_DECLS " id='";
    size_t plen = strlen(pre);
    char *s = malloc(total + 1);

    memcpy(s, pre, plen);
    memset(s + plen, 'i', total - plen - 2);
    memcpy(s + total - 2, "'>", 3);
    return s;
}

static void
test_limit_header(void **state)
{
    (void)state;
    struct rec r;
    char *ok = make_header(4096), *over = make_header(4097);

    rec_init(&r, NULL);
    for (size_t i = 0; i < 4096; i++) /* byte by byte: the pending check holds too */
        feed(&r, ok + i, 1);
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.headers, 1);
    rec_done(&r);
    expect_error("<?xml version='1.0'?>", over, XMPP_STREAM_ERR_POLICY_VIOLATION,
                 "stream header exceeds 4096 bytes", NULL);
    /* An unfinished header is cut off as soon as it is too long. */
    char *huge = make_header(8000);
    rec_init(&r, NULL);
    feed(&r, huge, 4096);
    assert_int_equal(r.errors, 0);
    feed(&r, huge + 4096, 1);
    assert_int_equal(r.errors, 1);
    assert_string_equal(r.errtext, "stream header exceeds 4096 bytes");
    rec_done(&r);
    free(huge);
    free(ok);
    free(over);
}

/* ---- close, restart, callbacks that reset or free ---- */

static void
test_close(void **state)
{
    (void)state;
    struct rec r;

    rec_init(&r, NULL);
    feeds(&r, HDR "<message/>\n</stream:stream>");
    assert_int_equal(r.closes, 1);
    assert_int_equal(r.stanzas, 1);
    assert_true(xmlstream_closed(r.xs));
    assert_int_equal(feeds(&r, "<junk"), 5);
    assert_int_equal(r.errors, 0);
    rec_done(&r);
}

static void
test_reset_after_starttls(void **state)
{
    (void)state;
    struct rec r;
    const char *starttls = "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
    const char *injected = "<message from='evil@example.org'><body>x</body></message>";
    char buf[512];
    ssize_t n;

    rec_init(&r, NULL);
    r.reset_on = "starttls";
    snprintf(buf, sizeof(buf), "%s%s%s", HDR, starttls, injected);
    n = feeds(&r, buf);
    /* Parsing stops right after <starttls/>: the injected plaintext is not consumed
     * (RFC 6120 §5.4.3.3) and is never delivered. */
    assert_int_equal(n, (ssize_t)(strlen(HDR) + strlen(starttls)));
    assert_int_equal(r.stanzas, 1);
    assert_false(xmlstream_header_seen(r.xs));
    /* After the TLS handshake: a new stream, XML declaration allowed again. */
    r.reset_on = NULL;
    n = feeds(&r, "<?xml version='1.0'?>" HDR "<message><body>tls</body></message>");
    assert_true(n > 0);
    assert_int_equal(r.headers, 2);
    assert_int_equal(r.stanzas, 2);
    assert_int_equal(r.errors, 0);
    assert_string_equal(
        stanza_elem_text(r.keep[1], stanza_elem_first(stanza_root(r.keep[1])), NULL), "tls");
    rec_done(&r);
}

static void
test_reset_after_sasl(void **state)
{
    (void)state;
    struct rec r;
    const char *success = "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>";
    char buf[512];
    ssize_t n;
    size_t used;

    rec_init(&r, NULL);
    feeds(&r, HDR);
    r.reset_on = "success";
    snprintf(buf, sizeof(buf), "%s%s<presence/>", success, HDR);
    n = feeds(&r, buf);
    used = strlen(success);
    assert_int_equal(n, (ssize_t)used);
    /* The rest is the restarted stream, over the same security layer: feed it. */
    n = feeds(&r, buf + used);
    assert_int_equal(n, (ssize_t)strlen(buf + used));
    assert_int_equal(r.headers, 2);
    assert_int_equal(r.stanzas, 2);
    assert_string_equal(stanza_name(r.keep[1]), "presence");

    /* Reset outside a callback, with a stanza half-parsed: the half is dropped. */
    feeds(&r, "<message><body>half");
    xmlstream_reset(r.xs);
    assert_false(xmlstream_header_seen(r.xs));
    feeds(&r, HDR "<iq type='get' id='1'/>");
    assert_int_equal(r.headers, 3);
    assert_int_equal(r.stanzas, 3);
    assert_string_equal(stanza_name(r.keep[2]), "iq");
    assert_int_equal(r.errors, 0);
    rec_done(&r);
}

static void
test_free_inside_callback(void **state)
{
    (void)state;
    struct rec r;

    rec_init(&r, NULL);
    r.free_on_stanza = true;
    feeds(&r, HDR "<message/><message/><message/>");
    assert_null(r.xs);
    assert_int_equal(r.stanzas, 1);
    rec_done(&r);
}

/* ---- writers ---- */

static void
test_write_header(void **state)
{
    (void)state;
    struct evbuffer *b = evbuffer_new();
    struct xmlstream_header h = {.to = "remote.example",
                                 .from = "example.org",
                                 .id = "a'b&c",
                                 .lang = "en",
                                 .ns = STANZA_NS_SERVER,
                                 .db = true};
    struct rec r;
    char *out, *log;

    assert_int_equal(xmlstream_write_header(b, &h), 0);
    evbuffer_add(b, "", 1);
    out = (char *)evbuffer_pullup(b, -1);
    assert_string_equal(out, "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                             "xmlns:stream='http://etherx.jabber.org/streams' "
                             "xmlns:db='jabber:server:dialback' to='remote.example' "
                             "from='example.org' id='a&apos;b&amp;c' version='1.0' "
                             "xml:lang='en'>");
    rec_init(&r, NULL);
    feeds(&r, out);
    log = rec_log(&r);
    assert_string_equal(log, "H to=remote.example from=example.org id=a'b&c version=1.0 lang=en "
                             "ns=jabber:server db=1\n");
    free(log);
    rec_done(&r);
    evbuffer_free(b);

    /* Component stream (XEP-0114): no version, no db. */
    b = evbuffer_new();
    struct xmlstream_header c = {
        .to = "proxy.example.org", .version = "", .ns = STANZA_NS_COMPONENT};
    xmlstream_write_header(b, &c);
    evbuffer_add(b, "", 1);
    assert_string_equal((char *)evbuffer_pullup(b, -1),
                        "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "
                        "xmlns:stream='http://etherx.jabber.org/streams' to='proxy.example.org'>");
    evbuffer_free(b);
}

static void
test_write_error(void **state)
{
    (void)state;
    struct evbuffer *b = evbuffer_new();
    struct rec r;
    char *out;

    assert_int_equal(
        xmlstream_write_error(b, XMPP_STREAM_ERR_POLICY_VIOLATION, "stanza exceeds <262144> bytes"),
        0);
    evbuffer_add(b, "", 1);
    out = (char *)evbuffer_pullup(b, -1);
    assert_string_equal(out, "<stream:error><policy-violation "
                             "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text "
                             "xmlns='urn:ietf:params:xml:ns:xmpp-streams'>stanza exceeds "
                             "&lt;262144&gt; bytes</text></stream:error></stream:stream>");
    /* The peer's parser reads it as a stream:error stanza, then the close. */
    rec_init(&r, NULL);
    feeds(&r, HDR);
    feeds(&r, out);
    assert_int_equal(r.stanzas, 1);
    assert_int_equal(r.closes, 1);
    struct stanza_elem *e = stanza_root(r.keep[0]);
    assert_true(stanza_elem_is(e, XMPP_NS_STREAMS, "error"));
    assert_true(stanza_elem_is(stanza_elem_first(e), XMPP_NS_STREAM_ERRORS, "policy-violation"));
    rec_done(&r);
    evbuffer_free(b);

    b = evbuffer_new();
    xmlstream_write_error(b, XMPP_STREAM_ERR_HOST_UNKNOWN, NULL);
    xmlstream_write_close(b);
    evbuffer_add(b, "", 1);
    assert_string_equal((char *)evbuffer_pullup(b, -1),
                        "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                        "</stream:error></stream:stream></stream:stream>");
    evbuffer_free(b);
}

/* ---- the split of the input never matters ---- */

static const char *split_streams[] = {
    ejabberd_stream,
    prosody_stream,
    ("<stream:stream " NS_DECLS " to='x' xml:lang='ja'>"
     "<message to='a@b' xml:lang='ja'><body>\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e "
     "Gr\xc3\xbc\xc3\x9f"
     "e \xf0\x9f\x98\x80\xf0\x9f\x98\x80</body><subject>&#x1F600;&#233;&lt;&gt;&apos;&quot;"
     "</subject></message>"
     "<iq type='set' id='r'><query xmlns='jabber:iq:roster'>\n <item jid='\xc3\xa9@b'>"
     "<group>G\xc3\xbc</group></item>\n</query></iq><db:verify from='a' to='b' id='1'>k"
     "</db:verify>"),
    /* ends in errors: where they are found must not depend on the split either */
    HDR "<message><body>a</body></message><!-- nope -->",
    HDR "<message><body>a</body></message><message>\xe6\x97</message>",
    HDR "<message><body>a</body></message><a:b/>",
};

static void
test_every_split(void **state)
{
    (void)state;

    for (size_t k = 0; k < sizeof(split_streams) / sizeof(split_streams[0]); k++) {
        const char *s = split_streams[k];
        size_t len = strlen(s);
        char *whole = run_whole(s, len, NULL);
        struct rec r;
        char *log;

        assert_true(strstr(whole, "S ") != NULL);
        for (size_t i = 0; i <= len; i++) {
            rec_init(&r, NULL);
            if (feed(&r, s, i) != -1)
                feed(&r, s + i, len - i);
            log = rec_log(&r);
            if (strcmp(log, whole) != 0)
                print_message("stream %zu split at %zu\n", k, i);
            assert_string_equal(log, whole);
            free(log);
            rec_done(&r);
        }
        rec_init(&r, NULL);
        for (size_t i = 0; i < len; i++)
            if (feed(&r, s + i, 1) == -1)
                break;
        log = rec_log(&r);
        assert_string_equal(log, whole);
        free(log);
        rec_done(&r);
        free(whole);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prosody_stream),
        cmocka_unit_test(test_ejabberd_stream),
        cmocka_unit_test(test_component_stream),
        cmocka_unit_test(test_xml_declaration_allowed),
        cmocka_unit_test(test_stanza_delivered_at_once),
        cmocka_unit_test(test_big_text_in_pieces),
        cmocka_unit_test(test_restricted_xml),
        cmocka_unit_test(test_not_well_formed),
        cmocka_unit_test(test_bad_namespace),
        cmocka_unit_test(test_limit_stanza_bytes),
        cmocka_unit_test(test_limit_depth),
        cmocka_unit_test(test_limit_attrs),
        cmocka_unit_test(test_limit_header),
        cmocka_unit_test(test_close),
        cmocka_unit_test(test_reset_after_starttls),
        cmocka_unit_test(test_reset_after_sasl),
        cmocka_unit_test(test_free_inside_callback),
        cmocka_unit_test(test_write_header),
        cmocka_unit_test(test_write_error),
        cmocka_unit_test(test_every_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
