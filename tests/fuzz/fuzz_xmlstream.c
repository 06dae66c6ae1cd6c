/*
 * Fuzz target for the XML stream parser and the serializer.
 *
 * Input: byte 0 picks options (small limits, reset on <starttls/>/<success/>), byte 1
 * seeds the chunk sizes, the rest is the stream, fed in chunks of 1..64 bytes. Every
 * stanza delivered is serialized for both content namespaces, copied, bounced; the
 * jabber:server serialization is parsed again by a second stream, which must accept it
 * and serialize it to the very same bytes (the serializer's output is well-formed and
 * stable).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "s2s/stanza.h"
#include "s2s/xmlstream.h"

#define HDR                                                                                        \
    "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "        \
    "xmlns:db='jabber:server:dialback'>"

struct ctx {
    struct xmlstream *xs;
    struct evbuffer *first;  /* serialized stanzas, jabber:server */
    struct evbuffer *second; /* the same, parsed again and serialized again */
    struct evbuffer *scratch;
    bool reset_on_restart;
    int errors;
};

static void
on_header(void *arg, const struct xmlstream_header *h)
{
    struct ctx *c = arg;
    struct xmlstream_header w = *h;

    /* Echo the header through the writer: escaping of whatever the peer sent. */
    w.version = NULL;
    if (xmlstream_write_header(c->scratch, &w) == -1)
        abort();
    evbuffer_drain(c->scratch, evbuffer_get_length(c->scratch));
}

static void
on_stanza(void *arg, struct stanza *st)
{
    struct ctx *c = arg;
    struct stanza *cp, *b;

    if (stanza_serialize(st, c->first, STANZA_NS_SERVER) == -1 ||
        stanza_serialize(st, c->scratch, STANZA_NS_COMPONENT) == -1 ||
        stanza_serialize(st, c->scratch, NULL) == -1)
        abort();
    if ((cp = stanza_copy(st)) == NULL || stanza_serialize(cp, c->scratch, NULL) == -1)
        abort();
    stanza_free(cp);
    if ((b = stanza_bounce_make(st, XMPP_STANZA_ERR_SERVICE_UNAVAILABLE, "fuzz", true)) != NULL) {
        if (stanza_serialize(b, c->scratch, STANZA_NS_COMPONENT) == -1)
            abort();
        stanza_free(b);
    }
    (void)stanza_elem_text(st, stanza_root(st), NULL);
    evbuffer_drain(c->scratch, evbuffer_get_length(c->scratch));
    if (c->reset_on_restart &&
        (strcmp(stanza_name(st), "starttls") == 0 || strcmp(stanza_name(st), "success") == 0))
        xmlstream_reset(c->xs);
    stanza_free(st);
}

static void
on_again(void *arg, struct stanza *st)
{
    struct ctx *c = arg;

    if (stanza_serialize(st, c->second, STANZA_NS_SERVER) == -1)
        abort();
    stanza_free(st);
}

static void
on_error(void *arg, enum xmpp_stream_error cond, const char *text)
{
    struct ctx *c = arg;

    c->errors++;
    if (xmlstream_write_error(c->scratch, cond, text) == -1)
        abort();
    evbuffer_drain(c->scratch, evbuffer_get_length(c->scratch));
}

static void
on_again_error(void *arg, enum xmpp_stream_error cond, const char *text)
{
    /* Our own serialization was refused by our own parser: a serializer bug. */
    abort();
}

/* The second pass: what we serialized must parse and serialize to the same bytes. */
static void
check_round_trip(struct ctx *c)
{
    struct xmlstream_limits lim = {.max_stanza_bytes = 64 << 20,
                                   .max_depth = 100000,
                                   .max_attrs = 100000,
                                   .max_header_bytes = 4096};
    struct xmlstream_cb cb = {.stanza_take = on_again, .error = on_again_error};
    struct xmlstream *xs = xmlstream_new(&lim, &cb, c);
    size_t len = evbuffer_get_length(c->first);
    const unsigned char *p;

    if (xs == NULL)
        abort();
    xmlstream_feed(xs, HDR, strlen(HDR));
    p = evbuffer_pullup(c->first, -1);
    if (len > 0 && xmlstream_feed(xs, p, len) != (ssize_t)len)
        abort();
    if (evbuffer_get_length(c->second) != len ||
        (len > 0 && memcmp(evbuffer_pullup(c->second, -1), p, len) != 0))
        abort();
    xmlstream_free(xs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct xmlstream_limits lim;
    struct xmlstream_cb cb = {.header = on_header, .stanza_take = on_stanza, .error = on_error};
    struct ctx c;
    uint32_t rnd;
    size_t off = 0;

    if (size < 2)
        return 0;
    memset(&c, 0, sizeof(c));
    xmlstream_limits_default(&lim);
    if (data[0] & 1) {
        lim.max_stanza_bytes = 512;
        lim.max_depth = 6;
        lim.max_attrs = 5;
        lim.max_header_bytes = 300;
    }
    c.reset_on_restart = (data[0] & 2) != 0;
    rnd = data[1] * 2654435761u + 1;
    data += 2;
    size -= 2;

    c.first = evbuffer_new();
    c.second = evbuffer_new();
    c.scratch = evbuffer_new();
    if ((c.xs = xmlstream_new(&lim, &cb, &c)) == NULL)
        abort();
    while (off < size) {
        size_t n;
        ssize_t used;

        rnd = rnd * 1103515245u + 12345u;
        n = 1 + (rnd >> 16) % 64;
        if (n > size - off)
            n = size - off;
        used = xmlstream_feed(c.xs, data + off, n);
        if (used == -1)
            break;
        if ((size_t)used > n)
            abort();
        if (used == 0)
            break;           /* a reset always follows an element that ended in this chunk */
        off += (size_t)used; /* after a reset, the rest goes to the new stream */
    }
    xmlstream_free(c.xs);
    check_round_trip(&c);
    evbuffer_free(c.first);
    evbuffer_free(c.second);
    evbuffer_free(c.scratch);
    return 0;
}
