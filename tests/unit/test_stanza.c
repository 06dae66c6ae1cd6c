/*
 * stanza: building and reading trees, the serializer's escaping, namespace declarations
 * and re-homing between jabber:server and jabber:component:accept, parse -> serialize
 * -> parse round trips, and error replies (RFC 6120 §8.3).
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

#define HDR_SERVER                                                                                 \
    "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "        \
    "xmlns:db='jabber:server:dialback' version='1.0'>"
#define HDR_COMPONENT                                                                              \
    "<stream:stream xmlns='jabber:component:accept' "                                              \
    "xmlns:stream='http://etherx.jabber.org/streams'>"

struct got {
    struct stanza *st[8];
    int n;
    int err;
};

static void
got_stanza(void *arg, struct stanza *st)
{
    struct got *g = arg;

    assert_true(g->n < 8);
    g->st[g->n++] = st;
}

static void
got_error(void *arg, enum xmpp_stream_error cond, const char *text)
{
    struct got *g = arg;

    g->err = (int)cond;
    print_message("stream error %s: %s\n", xmpp_stream_error_name(cond), text);
}

/* Parses one stanza inside a stream with the given header; fails the test if not one. */
static struct stanza *
parse_in(const char *header, const char *xml)
{
    struct xmlstream_cb cb = {.stanza_take = got_stanza, .error = got_error};
    struct got g = {.err = -1};
    struct xmlstream *xs = xmlstream_new(NULL, &cb, &g);

    assert_non_null(xs);
    assert_int_equal(xmlstream_feed(xs, header, strlen(header)), (ssize_t)strlen(header));
    assert_int_equal(xmlstream_feed(xs, xml, strlen(xml)), (ssize_t)strlen(xml));
    assert_int_equal(g.err, -1);
    assert_int_equal(g.n, 1);
    xmlstream_free(xs);
    return g.st[0];
}

static struct stanza *
parse(const char *xml)
{
    return parse_in(HDR_SERVER, xml);
}

/* Serializes into a string the test frees. */
static char *
ser_flags(const struct stanza *st, const char *stream_ns, unsigned flags)
{
    struct evbuffer *b = evbuffer_new();
    size_t len;
    char *s;

    assert_non_null(b);
    assert_int_equal(stanza_serialize_flags(st, b, stream_ns, flags), 0);
    len = evbuffer_get_length(b);
    s = malloc(len + 1);
    assert_non_null(s);
    evbuffer_remove(b, s, len);
    s[len] = '\0';
    evbuffer_free(b);
    return s;
}

static char *
ser(const struct stanza *st, const char *stream_ns)
{
    return ser_flags(st, stream_ns, 0);
}

static void
assert_ser(const struct stanza *st, const char *stream_ns, const char *want)
{
    char *s = ser(st, stream_ns);

    assert_string_equal(s, want);
    free(s);
}

/* Structural equality: names, namespaces, attributes (in order), text runs joined. */
static bool
elem_equal(struct stanza *sa, const struct stanza_elem *a, struct stanza *sb,
           const struct stanza_elem *b)
{
    const struct stanza_elem *ca, *cb;
    size_t la, lb;
    const char *ta, *tb;

    if (strcmp(a->name, b->name) != 0 || !stanza_ns_eq(a->ns, b->ns) || a->nattrs != b->nattrs)
        return false;
    for (uint32_t i = 0; i < a->nattrs; i++) {
        if (strcmp(a->attrs[i].name, b->attrs[i].name) != 0 ||
            !stanza_ns_eq(a->attrs[i].ns, b->attrs[i].ns) ||
            strcmp(a->attrs[i].value, b->attrs[i].value) != 0)
            return false;
    }
    ta = stanza_elem_text(sa, a, &la);
    tb = stanza_elem_text(sb, b, &lb);
    if (la != lb || memcmp(ta, tb, la) != 0)
        return false;
    for (ca = stanza_elem_first(a), cb = stanza_elem_first(b); ca && cb;
         ca = stanza_elem_next(ca), cb = stanza_elem_next(cb))
        if (!elem_equal(sa, ca, sb, cb))
            return false;
    return ca == NULL && cb == NULL;
}

static void
test_build_and_read(void **state)
{
    (void)state;
    struct stanza *st = stanza_new(STANZA_NS_SERVER, "message");
    struct stanza_elem *root = stanza_root(st), *body, *x;
    size_t len;

    assert_non_null(st);
    assert_int_equal(stanza_elem_set_attr(st, root, NULL, "to", "juliet@example.com"), 0);
    assert_int_equal(stanza_elem_set_attr(st, root, NULL, "from", "romeo@example.net"), 0);
    assert_int_equal(stanza_elem_set_attr(st, root, NULL, "to", "nurse@example.com"), 0);
    assert_int_equal(stanza_elem_set_attr(st, root, STANZA_NS_XML, "lang", "en"), 0);
    body = stanza_elem_add(st, root, NULL, "body");
    assert_non_null(body);
    assert_int_equal(stanza_elem_add_text(st, body, "Wherefore ", 10), 0);
    x = stanza_elem_add(st, body, "urn:example:inline", "em");
    assert_int_equal(stanza_elem_add_text(st, x, "art", 3), 0);
    assert_int_equal(stanza_elem_add_text(st, body, " thou", 5), 0);

    assert_string_equal(stanza_name(st), "message");
    assert_string_equal(stanza_ns(st), STANZA_NS_SERVER);
    assert_string_equal(stanza_attr(st, "to"), "nurse@example.com"); /* replaced */
    assert_int_equal(root->nattrs, 3);
    assert_null(stanza_attr(st, "lang")); /* xml:lang is namespaced */
    assert_string_equal(stanza_elem_attr_ns(root, STANZA_NS_XML, "lang"), "en");
    assert_ptr_equal(stanza_elem_child(root, STANZA_NS_SERVER, "body"), body);
    assert_ptr_equal(stanza_elem_child(root, NULL, "body"), body);
    assert_null(stanza_elem_child(root, "jabber:client", "body"));
    assert_string_equal(body->ns, STANZA_NS_SERVER); /* inherited */
    assert_ptr_equal(stanza_elem_child(body, "urn:example:inline", NULL), x);
    assert_string_equal(stanza_elem_text(st, body, &len), "Wherefore  thou");
    assert_int_equal(len, 15);
    assert_string_equal(stanza_elem_text(st, x, NULL), "art");
    assert_string_equal(stanza_elem_text(st, root, &len), "");
    assert_int_equal(len, 0);
    assert_true(stanza_elem_is(body, STANZA_NS_SERVER, "body"));
    assert_int_equal(stanza_wire_bytes(st), 0);
    assert_true(stanza_mem_bytes(st) > 0);

    assert_ser(st, STANZA_NS_SERVER,
               "<message to='nurse@example.com' from='romeo@example.net' xml:lang='en'>"
               "<body>Wherefore <em xmlns='urn:example:inline'>art</em> thou</body></message>");
    stanza_free(st);
}

static void
test_builder_refuses_bad_input(void **state)
{
    (void)state;
    struct stanza *st = stanza_new(NULL, "message");
    struct stanza_elem *r = stanza_root(st);

    assert_null(stanza_new(STANZA_NS_SERVER, ""));
    assert_null(stanza_new(STANZA_NS_SERVER, "a b"));
    assert_null(stanza_elem_add(st, r, NULL, "x:y"));
    assert_int_equal(stanza_elem_set_attr(st, r, NULL, "xmlns", "foo"), -1);
    assert_int_equal(stanza_elem_set_attr(st, r, NULL, "a", "bell\x07"), -1);
    assert_int_equal(stanza_elem_add_text(st, r, "\xff", 1), -1);         /* not UTF-8 */
    assert_int_equal(stanza_elem_add_text(st, r, "\xc0\xaf", 2), -1);     /* overlong */
    assert_int_equal(stanza_elem_add_text(st, r, "\xed\xa0\x80", 3), -1); /* surrogate */
    assert_int_equal(stanza_elem_add_text(st, r, "\xef\xbf\xbe", 3), -1); /* U+FFFE */
    assert_int_equal(stanza_elem_add_text(st, r, "\xf4\x90\x80\x80", 4), -1);
    assert_int_equal(stanza_elem_add_text(st, r, "a\0b", 3), -1);
    assert_int_equal(stanza_elem_add_text(st, r, "\xe6\x97\xa5", 2), -1); /* truncated */
    assert_int_equal(stanza_elem_add_text(st, r,
                                          "Gr\xc3\xbc\xc3\x9f"
                                          "e \xf0\x9f\x98\x80",
                                          12),
                     0);
    assert_int_equal(stanza_elem_add_text(st, r, "\t\r\n", 3), 0);
    stanza_free(st);
}

static void
test_escaping(void **state)
{
    (void)state;
    struct stanza *st = stanza_new(STANZA_NS_SERVER, "message");
    struct stanza_elem *r = stanza_root(st), *b;
    struct evbuffer *ev = evbuffer_new();
    char out[64];

    assert_int_equal(stanza_elem_set_attr(st, r, NULL, "id", "a'b\"c<d>e&f]]>\tg\nh\ri"), 0);
    b = stanza_elem_add(st, r, NULL, "body");
    assert_int_equal(stanza_elem_add_text(st, b, "a'b\"c<d>e&f]]>\tg\nh\ri", 20), 0);
    assert_ser(st, STANZA_NS_SERVER,
               "<message id='a&apos;b&quot;c&lt;d&gt;e&amp;f]]&gt;&#9;g&#10;h&#13;i'>"
               "<body>a'b\"c&lt;d&gt;e&amp;f]]&gt;\tg\nh&#13;i</body></message>");

    /* Controls XML 1.0 forbids are never emitted, whoever passes them. */
    assert_int_equal(stanza_escape_text(ev,
                                        "a\x01"
                                        "b\x1f"
                                        "c\x0b",
                                        6),
                     0);
    assert_int_equal(stanza_escape_attr(ev, "'\x00'", 3), 0);
    out[evbuffer_remove(ev, out, sizeof(out) - 1)] = '\0';
    assert_string_equal(out, "abc&apos;&apos;");
    evbuffer_free(ev);
    stanza_free(st);
}

static void
test_escaping_round_trip(void **state)
{
    (void)state;
    struct stanza *st = stanza_new(STANZA_NS_SERVER, "message"), *back;
    const char *nasty = "a'b\"c<d>e&f]]>\tg\nh\r\ni \xe6\x97\xa5 &amp;";
    struct stanza_elem *b;
    char *s, *xml;

    assert_int_equal(stanza_elem_set_attr(st, stanza_root(st), NULL, "id", nasty), 0);
    b = stanza_elem_add(st, stanza_root(st), NULL, "body");
    assert_int_equal(stanza_elem_add_text(st, b, nasty, strlen(nasty)), 0);
    s = ser(st, STANZA_NS_SERVER);
    back = parse(s);
    assert_string_equal(stanza_attr(back, "id"), nasty);
    assert_string_equal(
        stanza_elem_text(back, stanza_elem_child(stanza_root(back), NULL, "body"), NULL), nasty);
    assert_true(elem_equal(st, stanza_root(st), back, stanza_root(back)));
    xml = ser(back, STANZA_NS_SERVER);
    assert_string_equal(xml, s);
    free(xml);
    free(s);
    stanza_free(back);
    stanza_free(st);
}

static void
test_rehome_server_to_component(void **state)
{
    (void)state;
    struct stanza *st =
        parse("<message from='a@remote.example' to='b@example.org' type='chat' xml:lang='de'>"
              "<body>Hallo</body>"
              "<x xmlns='jabber:x:data' type='form'><field var='v'><value>1</value></field></x>"
              "<echo xmlns='jabber:server'/>"
              "<nons xmlns=''><y/></nons>"
              "</message>");

    assert_string_equal(stanza_ns(st), STANZA_NS_SERVER);
    assert_ser(st, STANZA_NS_COMPONENT,
               "<message from='a@remote.example' to='b@example.org' type='chat' xml:lang='de'>"
               "<body>Hallo</body>"
               "<x xmlns='jabber:x:data' type='form'><field var='v'><value>1</value></field></x>"
               "<echo/><nons xmlns=''><y/></nons></message>");
    /* Same stream namespace: nothing to declare either. */
    assert_ser(st, STANZA_NS_SERVER,
               "<message from='a@remote.example' to='b@example.org' type='chat' xml:lang='de'>"
               "<body>Hallo</body>"
               "<x xmlns='jabber:x:data' type='form'><field var='v'><value>1</value></field></x>"
               "<echo/><nons xmlns=''><y/></nons></message>");
    /* Outside any stream every namespace is declared. */
    assert_ser(st, NULL,
               "<message xmlns='jabber:server' from='a@remote.example' to='b@example.org' "
               "type='chat' xml:lang='de'><body>Hallo</body>"
               "<x xmlns='jabber:x:data' type='form'><field var='v'><value>1</value></field></x>"
               "<echo/><nons xmlns=''><y/></nons></message>");
    stanza_free(st);
}

static void
test_rehome_component_to_server(void **state)
{
    (void)state;
    struct stanza *st =
        parse_in(HDR_COMPONENT, "<iq type='get' id='1' from='b@example.org' to='remote.example'>"
                                "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    struct stanza *back;
    char *s;

    assert_string_equal(stanza_ns(st), STANZA_NS_COMPONENT);
    s = ser(st, STANZA_NS_SERVER);
    assert_string_equal(s, "<iq type='get' id='1' from='b@example.org' to='remote.example'>"
                           "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    /* Read back in the server stream, the stanza is in jabber:server now. */
    back = parse(s);
    assert_string_equal(stanza_ns(back), STANZA_NS_SERVER);
    assert_string_equal(stanza_elem_first(stanza_root(back))->ns,
                        "http://jabber.org/protocol/disco#info");
    free(s);
    stanza_free(back);
    stanza_free(st);
}

static void
test_foreign_top_level_not_rehomed(void **state)
{
    (void)state;
    /* A jabber:client stanza (e.g. forwarded) keeps its namespace wherever it goes. */
    struct stanza *st = stanza_new(STANZA_NS_CLIENT, "message");
    stanza_elem_add(st, stanza_root(st), NULL, "body");
    assert_ser(st, STANZA_NS_COMPONENT, "<message xmlns='jabber:client'><body/></message>");
    stanza_free(st);
}

static void
test_stream_and_dialback_prefixes(void **state)
{
    (void)state;
    struct stanza *f = parse("<stream:features>"
                             "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>"
                             "</starttls><dialback xmlns='urn:xmpp:features:dialback'/>"
                             "</stream:features>");
    struct stanza *db = parse("<db:result from='remote.example' to='example.org'>"
                              "b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3"
                              "</db:result>");
    struct stanza *v = parse("<db:verify xmlns:db='jabber:server:dialback' from='a' to='b' "
                             "id='x'>k</db:verify>");
    char *s;

    assert_string_equal(stanza_ns(f), XMPP_NS_STREAMS);
    assert_ser(f, STANZA_NS_SERVER,
               "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>"
               "</starttls><dialback xmlns='urn:xmpp:features:dialback'/></stream:features>");
    assert_string_equal(stanza_ns(db), STANZA_NS_DIALBACK);
    assert_string_equal(stanza_name(db), "result");
    assert_ser(db, STANZA_NS_SERVER,
               "<db:result xmlns:db='jabber:server:dialback' from='remote.example' "
               "to='example.org'>"
               "b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3</db:result>");
    s = ser_flags(v, STANZA_NS_SERVER, STANZA_SER_DB_DECLARED);
    assert_string_equal(s, "<db:verify from='a' to='b' id='x'>k</db:verify>");
    free(s);
    stanza_free(f);
    stanza_free(db);
    stanza_free(v);
}

static void
test_reserved_namespaces(void **state)
{
    (void)state;
    /* Elements in the XML namespace keep the xml: prefix: a default declaration of that
     * namespace is forbidden (XML-NAMES §3), the parser would refuse our output. */
    struct stanza *st = parse("<message><xml:foo xml:lang='en'/><stream:bar/></message>");
    struct stanza *back;
    char *s;

    assert_ser(st, STANZA_NS_SERVER, "<message><xml:foo xml:lang='en'/><stream:bar/></message>");
    s = ser(st, STANZA_NS_SERVER);
    back = parse(s);
    assert_true(elem_equal(st, stanza_root(st), back, stanza_root(back)));
    free(s);
    stanza_free(back);
    assert_null(stanza_elem_add(st, stanza_root(st), "http://www.w3.org/2000/xmlns/", "x"));
    assert_int_equal(
        stanza_elem_set_attr(st, stanza_root(st), "http://www.w3.org/2000/xmlns/", "x", "1"), -1);
    stanza_free(st);
}

static void
test_namespaced_attribute(void **state)
{
    (void)state;
    struct stanza *st =
        parse("<message xmlns:foo='urn:example:foo' foo:bar='1' foo:baz='2'><body/></message>");
    struct stanza *back;
    char *s;

    assert_string_equal(stanza_elem_attr_ns(stanza_root(st), "urn:example:foo", "bar"), "1");
    assert_null(stanza_attr(st, "bar"));
    s = ser(st, STANZA_NS_SERVER);
    back = parse(s);
    assert_true(elem_equal(st, stanza_root(st), back, stanza_root(back)));
    free(s);
    stanza_free(back);
    stanza_free(st);
}

static const char *const round_trip_corpus[] = {
    ("<message from='juliet@example.com/balcony' to='romeo@example.net' type='chat' id='k1' "
     "xml:lang='en'><body>Wherefore art thou, Romeo?</body><thread>e0ffe42b28561960c6b12b944a0"
     "92794b9683a38</thread><active xmlns='http://jabber.org/protocol/chatstates'/></message>"),
    ("<presence from='juliet@example.com/balcony' to='romeo@example.net'><show>away</show>"
     "<status xml:lang='en'>Be right back</status><priority>0</priority>"
     "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='http://psi-im.org' "
     "ver='q07IKJEyjvHSyhy//CH0CxmKi8w='/><x xmlns='vcard-temp:x:update'><photo>01b87fcd030b72"
     "895ff8e88db57ec525450f000d</photo></x></presence>"),
    ("<iq type='result' id='v1' from='a@remote.example' to='b@example.org/r'>"
     "<vCard xmlns='vcard-temp'><FN>Peter Saint-Andre</FN><N><FAMILY>Saint-Andre</FAMILY>"
     "<GIVEN>Peter</GIVEN></N><NICKNAME>stpeter</NICKNAME><URL>http://www.xmpp.org/xsf/"
     "people/stpeter.shtml</URL><DESC>More information &amp; so on &lt;here&gt;</DESC></vCard>"
     "</iq>"),
    ("<message to='x@example.org'><html xmlns='http://jabber.org/protocol/xhtml-im'>"
     "<body xmlns='http://www.w3.org/1999/xhtml'><p>Hello <b>bold</b> and <i>it</i>!</p>"
     "</body></html><body>Gr\xc3\xbc\xc3\x9f"
     "e \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80</body>"
     "</message>"),
    ("<iq type='set' id='r'><query xmlns='jabber:iq:roster'>\n  <item jid='a@b' name='A &amp; B'"
     " subscription='both'>\n    <group>Friends</group>\n  </item>\n</query></iq>"),
    "<message><body><![CDATA[<not markup> & ]]></body><e xmlns=''>no namespace</e></message>",
};

static void
test_parse_serialize_parse(void **state)
{
    (void)state;
    const char *streams[] = {STANZA_NS_SERVER, STANZA_NS_COMPONENT, NULL};

    for (size_t i = 0; i < sizeof(round_trip_corpus) / sizeof(round_trip_corpus[0]); i++) {
        struct stanza *a = parse(round_trip_corpus[i]);
        for (size_t k = 0; k < 3; k++) {
            char *s1 = ser(a, streams[k]), *s2;
            struct stanza *b;
            if (streams[k] == NULL) {
                /* Self-contained: parse it inside a server stream. */
                b = parse(s1);
                assert_true(elem_equal(a, stanza_root(a), b, stanza_root(b)));
            } else if (k == 1) {
                b = parse_in(HDR_COMPONENT, s1);
                /* Re-homed: same tree but the stream namespace. */
                assert_string_equal(stanza_ns(b), STANZA_NS_COMPONENT);
                s2 = ser(b, STANZA_NS_SERVER);
                char *s0 = ser(a, STANZA_NS_SERVER);
                assert_string_equal(s2, s0);
                free(s0);
                free(s2);
            } else {
                b = parse(s1);
                assert_true(elem_equal(a, stanza_root(a), b, stanza_root(b)));
                s2 = ser(b, streams[k]);
                assert_string_equal(s1, s2); /* serializing is stable */
                free(s2);
            }
            stanza_free(b);
            free(s1);
        }
        /* A copy is the same tree. */
        struct stanza *c = stanza_copy(a);
        assert_true(elem_equal(a, stanza_root(a), c, stanza_root(c)));
        assert_int_equal(stanza_wire_bytes(c), stanza_wire_bytes(a));
        assert_int_equal(stanza_wire_bytes(a), strlen(round_trip_corpus[i]));
        stanza_free(c);
        stanza_free(a);
    }
}

static void
test_big_text(void **state)
{
    (void)state;
    struct stanza *st = stanza_new(STANZA_NS_SERVER, "message");
    struct stanza_elem *b = stanza_elem_add(st, stanza_root(st), NULL, "body");
    char piece[97];
    size_t len;
    const char *t;

    for (size_t i = 0; i < sizeof(piece); i++)
        piece[i] = (char)('a' + i % 26);
    for (int i = 0; i < 3000; i++)
        assert_int_equal(stanza_elem_add_text(st, b, piece, sizeof(piece)), 0);
    t = stanza_elem_text(st, b, &len);
    assert_int_equal(len, 3000 * sizeof(piece));
    for (int i = 0; i < 3000; i++)
        assert_memory_equal(t + (size_t)i * sizeof(piece), piece, sizeof(piece));
    /* Growth is amortized: the arena holds less than 4x the text. */
    assert_true(stanza_mem_bytes(st) < 4 * len);
    stanza_free(st);
}

/* ---- bounces ---- */

static void
test_bounce_message(void **state)
{
    (void)state;
    struct stanza *st = parse("<message from='a@remote.example/r' to='b@example.org' id='m1' "
                              "type='chat' xml:lang='en'><body>hi</body></message>");
    struct stanza *b = stanza_bounce_make(st, XMPP_STANZA_ERR_REMOTE_SERVER_NOT_FOUND,
                                          "no route to remote.example", true);
    struct stanza_elem *err, *cond;

    assert_non_null(b);
    assert_string_equal(stanza_attr(b, "from"), "b@example.org");
    assert_string_equal(stanza_attr(b, "to"), "a@remote.example/r");
    assert_string_equal(stanza_attr(b, "id"), "m1");
    assert_string_equal(stanza_attr(b, "type"), "error");
    err = stanza_elem_child(stanza_root(b), STANZA_NS_SERVER, "error");
    assert_non_null(err);
    assert_string_equal(stanza_elem_attr(err, "type"), "cancel");
    cond = stanza_elem_first(err);
    assert_true(stanza_elem_is(cond, XMPP_NS_STANZA_ERRORS, "remote-server-not-found"));
    assert_ser(b, STANZA_NS_COMPONENT,
               "<message from='b@example.org' to='a@remote.example/r' id='m1' type='error' "
               "xml:lang='en'><body>hi</body><error type='cancel'><remote-server-not-found "
               "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text "
               "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no route to remote.example</text>"
               "</error></message>");
    stanza_free(b);

    b = stanza_bounce_make(st, XMPP_STANZA_ERR_REMOTE_SERVER_TIMEOUT, NULL, false);
    assert_ser(b, STANZA_NS_SERVER,
               "<message from='b@example.org' to='a@remote.example/r' id='m1' type='error' "
               "xml:lang='en'><error type='wait'><remote-server-timeout "
               "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>");
    stanza_free(b);
    stanza_free(st);
}

static void
test_bounce_types(void **state)
{
    (void)state;
    struct stanza *st = parse("<iq from='a@remote.example' to='example.org' type='get' id='q'>"
                              "<ping xmlns='urn:xmpp:ping'/></iq>");

    for (int c = 0; c < XMPP_STANZA_ERR_COUNT; c++) {
        struct stanza *b = stanza_bounce_make(st, c, "why", true);
        struct stanza_elem *err = stanza_elem_child(stanza_root(b), NULL, "error");
        assert_non_null(err);
        assert_string_equal(stanza_elem_attr(err, "type"),
                            xmpp_error_type_name(xmpp_stanza_error_default_type(c)));
        assert_non_null(stanza_elem_child(err, XMPP_NS_STANZA_ERRORS, xmpp_stanza_error_name(c)));
        assert_string_equal(
            stanza_elem_text(b, stanza_elem_child(err, XMPP_NS_STANZA_ERRORS, "text"), NULL),
            "why");
        assert_non_null(stanza_elem_child(stanza_root(b), "urn:xmpp:ping", "ping"));
        stanza_free(b);
    }
    stanza_free(st);
}

static void
test_bounce_refusals(void **state)
{
    (void)state;
    static const char *const refused[] = {
        "<message from='a@r' to='b@e' type='error'><error type='cancel'/></message>",
        "<presence from='a@r' to='b@e' type='error'/>",
        "<iq from='a@r' to='b@e' type='error' id='1'/>",
        "<iq from='a@r' to='b@e' type='result' id='1'/>",
        "<message to='b@e'><body>no from</body></message>",
        "<db:result from='r' to='e'>key</db:result>",
        "<stream:features/>",
        "<foo from='a@r' to='b@e'/>",
    };
    static const char *const accepted[] = {
        "<message from='a@r' to='b@e'/>",
        "<message from='a@r' to='b@e' type='groupchat'/>",
        "<presence from='a@r' to='b@e' type='subscribe'/>",
        "<iq from='a@r' to='b@e' type='set' id='1'/>",
    };

    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        struct stanza *st = parse(refused[i]);
        assert_null(stanza_bounce_make(st, XMPP_STANZA_ERR_SERVICE_UNAVAILABLE, NULL, true));
        stanza_free(st);
    }
    for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++) {
        struct stanza *st = parse(accepted[i]);
        struct stanza *b = stanza_bounce_make(st, XMPP_STANZA_ERR_SERVICE_UNAVAILABLE, NULL, true);
        assert_non_null(b);
        /* A bounce is itself never bounced (RFC 6120 §8.3.1). */
        assert_null(stanza_bounce_make(b, XMPP_STANZA_ERR_SERVICE_UNAVAILABLE, NULL, true));
        stanza_free(b);
        stanza_free(st);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_and_read),
        cmocka_unit_test(test_builder_refuses_bad_input),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_escaping_round_trip),
        cmocka_unit_test(test_rehome_server_to_component),
        cmocka_unit_test(test_rehome_component_to_server),
        cmocka_unit_test(test_foreign_top_level_not_rehomed),
        cmocka_unit_test(test_stream_and_dialback_prefixes),
        cmocka_unit_test(test_reserved_namespaces),
        cmocka_unit_test(test_namespaced_attribute),
        cmocka_unit_test(test_parse_serialize_parse),
        cmocka_unit_test(test_big_text),
        cmocka_unit_test(test_bounce_message),
        cmocka_unit_test(test_bounce_types),
        cmocka_unit_test(test_bounce_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
