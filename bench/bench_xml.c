/*
 * bench_xml: what our XML layer costs next to bare expat.
 *
 * A corpus of realistic stanzas (100 B - 10 KiB: messages, presence with caps and
 * vcard-update, iq with disco, vCard and roster payloads) is concatenated into one
 * stream and fed in 16 KiB reads, as a connection would. In the same run:
 *   (a) bare expat: a namespace-aware parser with no-op handlers;
 *   (b) xmlstream: parse, build each stanza's tree, serialize it re-homed into a
 *       jabber:component:accept stream (what the proxy does for inbound traffic), and
 *       drain the output buffer.
 * Each is run several times; the medians are printed with the ratio b/a (throughput of
 * b over throughput of a; 1.0 would mean our layer is free).
 *
 * Usage: bench_xml [megabytes-of-stream (8)] [repetitions (7)] [small]
 * "small" leaves out the three big iq payloads (disco, roster, vCard).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <expat.h>

#include "s2s/stanza.h"
#include "s2s/xmlstream.h"

#define READ_SIZE (16 * 1024)

static const char header[] =
    "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
    "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "
    "from='remote.example' to='example.org' id='b3f1c2d4' version='1.0' xml:lang='en'>";

static const char *const fixed[] = {
    /* ~150 B: the common chat message */
    "<message from='juliet@remote.example/balcony' to='romeo@example.org' type='chat' "
    "id='a1'><body>Art thou not Romeo?</body></message>",
    /* ~450 B: a modern client's message */
    "<message xml:lang='en' to='romeo@example.org/orchard' from='juliet@remote.example/balcony' "
    "type='chat' id='5f2c9c1e-8a7b-4c11-9d0e-3c1a2b4d5e6f'><body>Wherefore art thou, Romeo? "
    "Deny thy father and refuse thy name.</body><active "
    "xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/>"
    "<origin-id xmlns='urn:xmpp:sid:0' id='5f2c9c1e-8a7b-4c11-9d0e-3c1a2b4d5e6f'/>"
    "<markable xmlns='urn:xmpp:chat-markers:0'/></message>",
    /* ~400 B: presence with caps and vcard-update */
    "<presence from='juliet@remote.example/balcony' to='romeo@example.org'><show>away</show>"
    "<status>In the garden</status><priority>5</priority><c "
    "xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://conversations.im' "
    "ver='q07IKJEyjvHSyhy//CH0CxmKi8w='/><x xmlns='vcard-temp:x:update'><photo>"
    "01b87fcd030b72895ff8e88db57ec525450f000d</photo></x><delay xmlns='urn:xmpp:delay' "
    "from='remote.example' stamp='2026-11-27T03:00:00Z'/></presence>",
    /* ~100 B */
    "<presence from='nurse@remote.example/kitchen' to='romeo@example.org' type='unavailable'/>",
    /* ~100 B: ping */
    "<iq from='remote.example' to='example.org' id='p1' type='get'><ping "
    "xmlns='urn:xmpp:ping'/></iq>",
    /* ~300 B: MUC groupchat with delay, escapes */
    "<message from='room@muc.remote.example/Mercutio' to='romeo@example.org/orchard' "
    "type='groupchat' id='g7'><body>A plague o' both your houses! &lt;exit&gt; &amp; "
    "so on</body><delay xmlns='urn:xmpp:delay' from='room@muc.remote.example' "
    "stamp='2026-11-27T02:59:58Z'/><stanza-id xmlns='urn:xmpp:sid:0' id='Zx81' "
    "by='room@muc.remote.example'/></message>",
};

static char *
make_disco(void)
{
    static const char *const features[] = {"http://jabber.org/protocol/caps",
                                           "http://jabber.org/protocol/disco#info",
                                           "http://jabber.org/protocol/disco#items",
                                           "http://jabber.org/protocol/muc",
                                           "http://jabber.org/protocol/chatstates",
                                           "urn:xmpp:receipts",
                                           "urn:xmpp:ping",
                                           "urn:xmpp:time",
                                           "jabber:iq:version",
                                           "urn:xmpp:jingle:1",
                                           "urn:xmpp:jingle:apps:rtp:1",
                                           "urn:xmpp:jingle:apps:rtp:audio",
                                           "urn:xmpp:jingle:apps:rtp:video",
                                           "urn:xmpp:jingle:transports:ice-udp:1",
                                           "urn:xmpp:avatar:metadata+notify",
                                           "urn:xmpp:mam:2",
                                           "urn:xmpp:carbons:2",
                                           "eu.siacs.conversations.axolotl.devicelist+notify",
                                           "urn:xmpp:chat-markers:0",
                                           "urn:xmpp:message-correct:0"};
    struct evbuffer *b = evbuffer_new();
    char *s;

    evbuffer_add_printf(b, "<iq from='juliet@remote.example/balcony' to='romeo@example.org/o' "
                           "type='result' id='disco1'><query "
                           "xmlns='http://jabber.org/protocol/disco#info' "
                           "node='https://conversations.im#q07IKJEyjvHSyhy//CH0CxmKi8w='>"
                           "<identity category='client' type='phone' name='Conversations'/>");
    for (size_t i = 0; i < sizeof(features) / sizeof(features[0]); i++)
        evbuffer_add_printf(b, "<feature var='%s'/>", features[i]);
    evbuffer_add_printf(b, "</query></iq>");
    evbuffer_add(b, "", 1);
    s = strdup((char *)evbuffer_pullup(b, -1));
    evbuffer_free(b);
    return s;
}

static char *
make_roster(int items)
{
    struct evbuffer *b = evbuffer_new();
    char *s;

    evbuffer_add_printf(b, "<iq from='romeo@remote.example' to='romeo@example.org/o' "
                           "type='result' id='roster1'><query xmlns='jabber:iq:roster' "
                           "ver='ver14'>");
    for (int i = 0; i < items; i++)
        evbuffer_add_printf(b,
                            "<item jid='contact%d@remote.example' name='Contact %d' "
                            "subscription='both'><group>Friends</group></item>",
                            i, i);
    evbuffer_add_printf(b, "</query></iq>");
    evbuffer_add(b, "", 1);
    s = strdup((char *)evbuffer_pullup(b, -1));
    evbuffer_free(b);
    return s;
}

/* ~10 KiB: a vCard with a base64 photo in 76-column lines. */
static char *
make_vcard(void)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    struct evbuffer *b = evbuffer_new();
    unsigned x = 12345;
    char *s;

    evbuffer_add_printf(b, "<iq from='juliet@remote.example' to='romeo@example.org/o' "
                           "type='result' id='vc1'><vCard xmlns='vcard-temp'><FN>Juliet "
                           "Capulet</FN><N><FAMILY>Capulet</FAMILY><GIVEN>Juliet</GIVEN></N>"
                           "<NICKNAME>jcapulet</NICKNAME><URL>https://remote.example/~juliet</URL>"
                           "<PHOTO><TYPE>image/png</TYPE><BINVAL>\n");
    for (int line = 0; line < 125; line++) {
        char l[78];
        for (int i = 0; i < 76; i++) {
            x = x * 1103515245u + 12345u;
            l[i] = b64[(x >> 16) & 63];
        }
        l[76] = '\n';
        evbuffer_add(b, l, 77);
    }
    evbuffer_add_printf(b, "</BINVAL></PHOTO></vCard></iq>");
    evbuffer_add(b, "", 1);
    s = strdup((char *)evbuffer_pullup(b, -1));
    evbuffer_free(b);
    return s;
}

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- (a) bare expat ---- */

static void
noop_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    (void)ud;
    (void)name;
    (void)atts;
}

static void
noop_end(void *ud, const XML_Char *name)
{
    (void)ud;
    (void)name;
}

static void
noop_text(void *ud, const XML_Char *s, int len)
{
    (void)ud;
    (void)s;
    (void)len;
}

static double
run_expat(const char *s, size_t len)
{
    XML_Parser p = XML_ParserCreateNS("UTF-8", '\1');
    double t0 = now();

    XML_SetReparseDeferralEnabled(p, XML_FALSE);
    XML_SetElementHandler(p, noop_start, noop_end);
    XML_SetCharacterDataHandler(p, noop_text);
    for (size_t off = 0; off < len; off += READ_SIZE) {
        size_t n = len - off < READ_SIZE ? len - off : READ_SIZE;
        if (XML_Parse(p, s + off, (int)n, XML_FALSE) != XML_STATUS_OK) {
            fprintf(stderr, "expat: %s\n", XML_ErrorString(XML_GetErrorCode(p)));
            exit(1);
        }
    }
    t0 = now() - t0;
    XML_ParserFree(p);
    return t0;
}

/* ---- (b) xmlstream + tree + serializer ---- */

struct sink {
    struct evbuffer *out;
    size_t stanzas;
};

static void
sink_stanza(void *arg, struct stanza *st)
{
    struct sink *k = arg;

    if (stanza_serialize(st, k->out, STANZA_NS_COMPONENT) == -1) {
        fprintf(stderr, "serialize failed\n");
        exit(1);
    }
    stanza_free(st);
    k->stanzas++;
}

static void
sink_error(void *arg, enum xmpp_stream_error cond, const char *text)
{
    fprintf(stderr, "stream error %s: %s\n", xmpp_stream_error_name(cond), text);
    exit(1);
}

static double
run_xmlstream(const char *s, size_t len, size_t *stanzas, size_t *out_bytes)
{
    struct sink k = {.out = evbuffer_new()};
    struct xmlstream_cb cb = {.stanza_take = sink_stanza, .error = sink_error};
    struct xmlstream *xs = xmlstream_new(NULL, &cb, &k);
    double t0 = now();

    *out_bytes = 0;
    for (size_t off = 0; off < len; off += READ_SIZE) {
        size_t n = len - off < READ_SIZE ? len - off : READ_SIZE;
        xmlstream_feed(xs, s + off, n);
        /* What a connection does once per read: hand the output on. */
        *out_bytes += evbuffer_get_length(k.out);
        evbuffer_drain(k.out, evbuffer_get_length(k.out));
    }
    t0 = now() - t0;
    *stanzas = k.stanzas;
    xmlstream_free(xs);
    evbuffer_free(k.out);
    return t0;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double
median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return v[n / 2];
}

int
main(int argc, char **argv)
{
    size_t target = (size_t)(argc > 1 ? atof(argv[1]) : 8) * 1024 * 1024;
    int reps = argc > 2 ? atoi(argv[2]) : 7;
    int ngen = argc > 3 && strcmp(argv[3], "small") == 0 ? 0 : 3;
    char *gen[3] = {make_disco(), make_roster(40), make_vcard()};
    struct evbuffer *b = evbuffer_new();
    size_t per_round = 0, nstanza = 0, len, stanzas = 0, out_bytes = 0;
    double ta[64], tb[64], a, bt;
    const char *s;

    if (reps < 1 || reps > 64)
        reps = 7;
    printf("corpus:");
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        printf(" %zu", strlen(fixed[i]));
    for (int i = 0; i < ngen; i++)
        printf(" %zu", strlen(gen[i]));
    printf(" bytes\n");

    evbuffer_add(b, header, strlen(header));
    while (evbuffer_get_length(b) < target) {
        /* Small stanzas dominate real traffic: each round has 4x each small one. */
        for (int rep = 0; rep < 4; rep++)
            for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
                evbuffer_add(b, fixed[i], strlen(fixed[i]));
                nstanza++;
            }
        for (int i = 0; i < ngen; i++) {
            evbuffer_add(b, gen[i], strlen(gen[i]));
            nstanza++;
        }
        per_round++;
    }
    len = evbuffer_get_length(b);
    s = (const char *)evbuffer_pullup(b, -1);
    printf("stream: %zu bytes, %zu stanzas (avg %zu B), %zu-byte reads, %d repetitions\n", len,
           nstanza, len / nstanza, (size_t)READ_SIZE, reps);

    for (int r = 0; r < reps; r++) {
        ta[r] = run_expat(s, len);
        tb[r] = run_xmlstream(s, len, &stanzas, &out_bytes);
        if (stanzas != nstanza) {
            fprintf(stderr, "got %zu stanzas, want %zu\n", stanzas, nstanza);
            return 1;
        }
    }
    a = median(ta, reps);
    bt = median(tb, reps);
    printf("(a) expat, no-op handlers:        %9.0f stanzas/s %8.1f MB/s  %.3f us/stanza\n",
           nstanza / a, len / a / 1e6, a / nstanza * 1e6);
    printf("(b) xmlstream+tree+serialize:     %9.0f stanzas/s %8.1f MB/s  %.3f us/stanza\n",
           nstanza / bt, len / bt / 1e6, bt / nstanza * 1e6);
    printf("    serialized %zu bytes (re-homed to jabber:component:accept)\n", out_bytes);
    printf("ratio b/a (throughput): %.2f\n", a / bt);
    for (int i = 0; i < 3; i++)
        free(gen[i]);
    evbuffer_free(b);
    return 0;
}
