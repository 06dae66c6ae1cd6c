/*
 * bench_relay: the remote servers' side of the relay benchmark (bench/README.md "Relay").
 *
 * Opens S server-to-server streams to ADDR:PORT as remote domains (RFC 6120: header,
 * STARTTLS, TLS with a client certificate, SASL EXTERNAL per XEP-0178, stream restart)
 * and sends <message/> stanzas of a given size to a JID of the receiving domain, round
 * robin over the streams, each with "SEQ TS " at the start of its body (TS: CLOCK_MONOTONIC
 * ns when the stanza was handed to the socket). bench_sink counts them on the other side
 * of the relay and keeps the latency histogram in the shared file (-m).
 *
 * Modes:
 *   full speed (-r 0): at most -w stanzas in flight (sent, not yet counted by the sink);
 *   fixed rate (-r N): N stanzas/s on a schedule, latency meaningful;
 *   idle (-I): authenticate the streams, print "ready", hold them until stdin closes;
 *   plain (-P): no TLS, no SASL: header, then stanzas (through the TCP relay floor);
 *   receive (-L ADDR:PORT): be the remote servers' receiving side (reverse direction,
 *   below); counts into -m;
 *   -G: after the handshakes print "ready" and wait for a line on stdin before sending
 *   (the caller samples the relay's CPU time around the sending phase only).
 *
 * Written directly on OpenSSL and poll(2) rather than on the engine's conn/tls layers:
 * the load generator must not share the code (or the bugs) it measures.
 *
 * Prints one line: "result key=value ..." (stanzas/s, MB/s, latency percentiles).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <expat.h>

#include "bench/relay/common.h"

#define OUT_CAP   (64 * 1024)
#define WRITE_MAX (16 * 1024)
#define HS_BUF    (32 * 1024)

struct gstream {
    int fd;
    SSL *ssl;
    char from[128];
    char *out;
    size_t off, len;
    bool want_write;
};

static const char *stream_ns = "http://etherx.jabber.org/streams";
static struct gstream *streams;
static int nstreams = 1;
static bool plain;
static const char *to_domain = "a.test";
static const char *to_jid = "user@a.test";
static const char *from_fmt = "r%d.test";
static int from_count = 0; /* 0: as many domains as streams */
static size_t stanza_size = 200;

static void
die(const char *what, struct gstream *s, const char *buf)
{
    fprintf(stderr, "bench_relay: %s%s%s%s%s\n", what, s ? " (stream from " : "", s ? s->from : "",
            s ? ")" : "", buf ? buf : "");
    ERR_print_errors_fp(stderr);
    exit(1);
}

/* Blocking I/O for the handshake phase. */
static void
hs_write(struct gstream *s, const char *text)
{
    size_t len = strlen(text), off = 0;

    while (off < len) {
        int n = s->ssl ? SSL_write(s->ssl, text + off, (int)(len - off))
                       : (int)write(s->fd, text + off, len - off);
        if (n <= 0)
            die("write failed", s, NULL);
        off += (size_t)n;
    }
}

/* Reads until one of the tokens (NULL-terminated list) is seen; returns its index. */
static int
hs_expect(struct gstream *s, const char *const *tokens)
{
    static char buf[HS_BUF];
    size_t len = 0;

    for (;;) {
        for (int i = 0; tokens[i] != NULL; i++)
            if (strstr(buf, tokens[i]) != NULL && len > 0)
                return i;
        if (strstr(buf, "<stream:error") != NULL || strstr(buf, "<failure") != NULL)
            die("refused: ", s, buf);
        if (len + 1 >= sizeof(buf))
            die("handshake overflow: ", s, buf);
        int n = s->ssl ? SSL_read(s->ssl, buf + len, (int)(sizeof(buf) - 1 - len))
                       : (int)read(s->fd, buf + len, sizeof(buf) - 1 - len);
        if (n <= 0) {
            buf[len] = '\0';
            die("closed during handshake: ", s, buf);
        }
        len += (size_t)n;
        buf[len] = '\0';
    }
}

static void
send_header(struct gstream *s)
{
    char hdr[512];

    snprintf(hdr, sizeof(hdr),
             "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='%s' "
             "xmlns:db='jabber:server:dialback' from='%s' to='%s' version='1.0'>",
             stream_ns, s->from, to_domain);
    hs_write(s, hdr);
}

static int
parse_addr(const char *str, struct sockaddr_in *sin)
{
    char host[64];
    const char *colon = strrchr(str, ':');

    if (colon == NULL || (size_t)(colon - str) >= sizeof(host))
        return -1;
    memcpy(host, str, (size_t)(colon - str));
    host[colon - str] = '\0';
    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)atoi(colon + 1));
    return inet_pton(AF_INET, host, &sin->sin_addr) == 1 ? 0 : -1;
}

static void
stream_open(struct gstream *s, const struct sockaddr_in *sin, SSL_CTX *ctx)
{
    static const char *const features[] = {"</stream:features>", "<stream:features/>", NULL};
    static const char *const proceed[] = {"<proceed", NULL};
    static const char *const success[] = {"<success", NULL};
    static const char *const header[] = {"<stream:stream", NULL};
    int one = 1;
    char auth[512];
    unsigned char b64[256];

    if ((s->fd = socket(AF_INET, SOCK_STREAM, 0)) == -1 ||
        connect(s->fd, (const struct sockaddr *)sin, sizeof(*sin)) == -1)
        die("connect failed", s, strerror(errno));
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    send_header(s);
    if (plain) {
        hs_expect(s, header);
        return;
    }
    hs_expect(s, features);
    hs_write(s, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    hs_expect(s, proceed);
    s->ssl = SSL_new(ctx);
    SSL_set_fd(s->ssl, s->fd);
    SSL_set_tlsext_host_name(s->ssl, to_domain);
    SSL_set1_host(s->ssl, to_domain);
    if (SSL_connect(s->ssl) != 1)
        die("TLS handshake failed", s, NULL);
    send_header(s);
    if (hs_expect(s, features) != 0)
        die("no SASL offered after TLS", s, NULL);
    /* XEP-0178 §3: the authzid is our domain, base64 */
    EVP_EncodeBlock(b64, (const unsigned char *)s->from, (int)strlen(s->from));
    snprintf(auth, sizeof(auth),
             "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>%s</auth>", b64);
    hs_write(s, auth);
    hs_expect(s, success);
    send_header(s); /* RFC 6120 §6.4.6: restart after SASL success */
    hs_expect(s, features);
}

/* One stanza at the end of s->out: exactly stanza_size bytes when the size allows. */
static void
add_stanza(struct gstream *s, uint64_t seq, uint64_t ts)
{
    char *p = s->out + s->len;
    int n =
        snprintf(p, OUT_CAP - s->len,
                 "<message from='u@%s/b' to='%s' id='m%llu' type='chat'><body>%llu %llu ", s->from,
                 to_jid, (unsigned long long)seq, (unsigned long long)seq, (unsigned long long)ts);
    static const char tail[] = "</body></message>";
    size_t pad = stanza_size > (size_t)n + sizeof(tail) - 1
                     ? stanza_size - (size_t)n - (sizeof(tail) - 1)
                     : 0;

    memset(p + n, 'x', pad);
    memcpy(p + n + pad, tail, sizeof(tail) - 1);
    s->len += (size_t)n + pad + sizeof(tail) - 1;
}

static void
stream_flush(struct gstream *s)
{
    s->want_write = false;
    while (s->off < s->len) {
        size_t chunk = s->len - s->off < WRITE_MAX ? s->len - s->off : WRITE_MAX;
        int n;

        if (s->ssl) {
            n = SSL_write(s->ssl, s->out + s->off, (int)chunk);
            if (n <= 0) {
                int err = SSL_get_error(s->ssl, n);

                if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
                    s->want_write = true;
                    return;
                }
                die("TLS write failed", s, NULL);
            }
        } else {
            n = (int)write(s->fd, s->out + s->off, chunk);
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR) {
                    s->want_write = true;
                    return;
                }
                die("write failed", s, strerror(errno));
            }
        }
        s->off += (size_t)n;
    }
    s->off = s->len = 0;
}

/* Whatever the relay sends us now (keepalives) is read and dropped; errors end the run. */
static void
stream_drain(struct gstream *s)
{
    char buf[16384];

    for (;;) {
        int n = s->ssl ? SSL_read(s->ssl, buf, sizeof(buf) - 1)
                       : (int)read(s->fd, buf, sizeof(buf) - 1);
        if (n > 0) {
            buf[n] = '\0';
            if (strstr(buf, "<stream:error") != NULL || strstr(buf, "</stream:stream>") != NULL)
                die("the relay closed the stream: ", s, buf);
            continue;
        }
        if (s->ssl) {
            int err = SSL_get_error(s->ssl, n);

            if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
                return;
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            return;
        }
        die("the relay closed the connection", s, NULL);
    }
}

/*
 * Receive mode (-L): the remote servers as *receiving* entities, for the reverse
 * direction (local server -> relay -> remote). Each accepted stream is taken through
 * STARTTLS (our certificate for the rN.test names), SASL EXTERNAL offered and accepted
 * (the initiator's certificate is not checked: the relay's cost is what is measured)
 * and the stream restart; then its messages are counted into the file given with -m.
 * The handshake is blocking, one stream at a time (the relay opens a handful).
 */
struct rconn {
    int fd;
    SSL *ssl;
    XML_Parser p;
    int depth;
    bool in_msg, in_body;
    char text[128];
    size_t textlen;
    char buf[HS_BUF];
    size_t len;
};

static struct relay_shm *recv_shm;

static int
rc_read(struct rconn *c)
{
    if (c->len + 1 >= sizeof(c->buf))
        return -1;
    int n = c->ssl ? SSL_read(c->ssl, c->buf + c->len, (int)(sizeof(c->buf) - 1 - c->len))
                   : (int)read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
    if (n <= 0)
        return -1;
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    return 0;
}

/* Reads until tok then end after it; returns the offset just past end, or -1. */
static long
rc_wait(struct rconn *c, const char *tok, const char *end)
{
    for (;;) {
        char *t = strstr(c->buf, tok), *e = t ? strstr(t, end) : NULL;

        if (e != NULL)
            return (long)(e - c->buf) + (long)strlen(end);
        if (rc_read(c) == -1)
            return -1;
    }
}

static void
rc_consume(struct rconn *c, long n)
{
    memmove(c->buf, c->buf + n, c->len - (size_t)n + 1);
    c->len -= (size_t)n;
}

static int
rc_write(struct rconn *c, const char *text)
{
    size_t len = strlen(text), off = 0;

    while (off < len) {
        int n = c->ssl ? SSL_write(c->ssl, text + off, (int)(len - off))
                       : (int)write(c->fd, text + off, len - off);
        if (n <= 0)
            return -1;
        off += (size_t)n;
    }
    return 0;
}

/* The initiator's header (complete), answered with ours and the given features. */
static int
rc_header(struct rconn *c, const char *features)
{
    char to[256] = "", from[256] = "", out[1024];
    long end = rc_wait(c, "<stream:stream", ">");

    if (end == -1)
        return -1;
    char *h = strstr(c->buf, "<stream:stream"), *a;

    c->buf[end - 1] = '\0'; /* only within the header */
    if ((a = strstr(h, " to='")) != NULL || (a = strstr(h, " to=\"")) != NULL)
        sscanf(a + 5, "%255[^'\"]", to);
    if ((a = strstr(h, " from='")) != NULL || (a = strstr(h, " from=\"")) != NULL)
        sscanf(a + 7, "%255[^'\"]", from);
    c->buf[end - 1] = '>';
    rc_consume(c, end);
    snprintf(out, sizeof(out),
             "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='%s' "
             "xmlns:db='jabber:server:dialback' id='rcv%d' from='%s' to='%s' "
             "version='1.0'><stream:features>%s</stream:features>",
             stream_ns, c->fd, to, from, features);
    return rc_write(c, out);
}

static void XMLCALL
rc_start(void *arg, const char *name, const char **atts)
{
    struct rconn *c = arg;
    const char *ln = strrchr(name, ' ') ? strrchr(name, ' ') + 1 : name;

    (void)atts;
    c->depth++;
    if (c->depth == 2) {
        c->in_msg = strcmp(ln, "message") == 0;
        c->textlen = 0;
    } else if (c->depth == 3 && c->in_msg && strcmp(ln, "body") == 0) {
        c->in_body = true;
    }
}

static void XMLCALL
rc_text(void *arg, const char *s, int len)
{
    struct rconn *c = arg;
    size_t room = sizeof(c->text) - 1 - c->textlen, n = (size_t)len < room ? (size_t)len : room;

    if (!c->in_body)
        return;
    memcpy(c->text + c->textlen, s, n);
    c->textlen += n;
}

static void XMLCALL
rc_end(void *arg, const char *name)
{
    struct rconn *c = arg;

    (void)name;
    if (c->depth == 3)
        c->in_body = false;
    if (c->depth == 2 && c->in_msg) {
        c->text[c->textlen] = '\0';
        relay_record(recv_shm, c->text);
        c->in_msg = false;
    }
    c->depth--;
}

static int
rc_feed(struct rconn *c, const char *data, size_t len)
{
    recv_shm->bytes += len;
    if (XML_Parse(c->p, data, (int)len, 0) == XML_STATUS_ERROR) {
        fprintf(stderr, "bench_relay: receive: XML error %s\n",
                XML_ErrorString(XML_GetErrorCode(c->p)));
        return -1;
    }
    return 0;
}

static struct rconn *
rc_accept(int fd, SSL_CTX *sctx)
{
    static const char root[] = "<stream:stream xmlns='jabber:server' "
                               "xmlns:stream='http://etherx.jabber.org/streams'>";
    struct rconn *c = calloc(1, sizeof(*c));
    int one = 1;
    long end;

    c->fd = fd;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (rc_header(c, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>") ==
            -1 ||
        (end = rc_wait(c, "<starttls", ">")) == -1)
        goto fail;
    rc_consume(c, (long)c->len);
    if (rc_write(c, "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>") == -1)
        goto fail;
    c->ssl = SSL_new(sctx);
    SSL_set_fd(c->ssl, fd);
    if (SSL_accept(c->ssl) != 1)
        goto fail;
    if (rc_header(c, "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                     "<mechanism>EXTERNAL</mechanism></mechanisms>") == -1 ||
        (end = rc_wait(c, "<auth", ">")) == -1)
        goto fail;
    if (c->buf[end - 2] != '/' && (end = rc_wait(c, "<auth", "</auth>")) == -1)
        goto fail;
    rc_consume(c, end);
    if (rc_write(c, "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>") == -1 ||
        rc_header(c, "") == -1)
        goto fail;
    c->p = XML_ParserCreateNS(NULL, ' ');
    XML_SetUserData(c->p, c);
    XML_SetElementHandler(c->p, rc_start, rc_end);
    XML_SetCharacterDataHandler(c->p, rc_text);
    XML_Parse(c->p, root, (int)sizeof(root) - 1, 0);
    c->depth = 1;
    if (c->len > 0 && rc_feed(c, c->buf, c->len) == -1)
        goto fail;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    fprintf(stderr, "bench_relay: receive: stream %d authenticated\n", fd);
    return c;
fail:
    c->buf[c->len] = '\0';
    fprintf(stderr, "bench_relay: receive: handshake failed on stream %d: %s\n", fd, c->buf);
    ERR_print_errors_fp(stderr);
    if (c->ssl)
        SSL_free(c->ssl);
    close(fd);
    free(c);
    return NULL;
}

/* Reads what is there; -1 when the stream is over. */
static int
rc_input(struct rconn *c)
{
    static char buf[64 * 1024];

    for (;;) {
        int n = SSL_read(c->ssl, buf, sizeof(buf));

        if (n > 0) {
            if (rc_feed(c, buf, (size_t)n) == -1)
                return -1;
            continue;
        }
        int err = SSL_get_error(c->ssl, n);

        return err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE ? 0 : -1;
    }
}

static int
accept_any(int ok, X509_STORE_CTX *x)
{
    (void)ok;
    (void)x;
    return 1;
}

static int
receive_mode(const char *laddr, const char *shmfile, SSL_CTX *sctx)
{
    struct sockaddr_in sin;
    struct rconn *conns[256];
    size_t n = 0;
    int lfd, one = 1;

    if ((recv_shm = relay_shm_map(shmfile, 1)) == NULL || parse_addr(laddr, &sin) == -1)
        die("receive: bad -m or -L", NULL, NULL);
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) == -1 || listen(lfd, 128) == -1)
        die("receive: cannot listen", NULL, laddr);
    fprintf(stderr, "bench_relay: receive: ready on %s\n", laddr);
    for (;;) {
        struct pollfd pfd[257];

        pfd[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
        for (size_t i = 0; i < n; i++)
            pfd[i + 1] = (struct pollfd){.fd = conns[i]->fd, .events = POLLIN};
        if (poll(pfd, n + 1, -1) == -1)
            continue;
        for (size_t i = n; i-- > 0;) {
            if (!(pfd[i + 1].revents & (POLLIN | POLLHUP | POLLERR)) && !SSL_pending(conns[i]->ssl))
                continue;
            if (rc_input(conns[i]) == -1) {
                fprintf(stderr, "bench_relay: receive: stream %d closed\n", conns[i]->fd);
                SSL_free(conns[i]->ssl);
                close(conns[i]->fd);
                XML_ParserFree(conns[i]->p);
                free(conns[i]);
                conns[i] = conns[--n];
            }
        }
        if (pfd[0].revents & POLLIN) {
            int fd = accept(lfd, NULL, NULL);
            struct rconn *c;

            if (fd != -1 && n < 256 && (c = rc_accept(fd, sctx)) != NULL)
                conns[n++] = c;
        }
    }
    return 1;
}

static void
usage(void)
{
    fprintf(stderr,
            "usage: bench_relay -a ADDR:PORT -m SHMFILE [-S streams] [-n stanzas] [-r rate/s]\n"
            "       [-s bytes] [-w window] [-t to-domain] [-u to-jid] [-f from-format]\n"
            "       [-F distinct-from-domains] [-C cert -K key -A cafile] [-P] [-I] [-G]\n"
            "       bench_relay -L ADDR:PORT -m SHMFILE -C cert -K key   (receive mode)\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    const char *addr = NULL, *laddr = NULL, *shmfile = NULL, *cert = NULL, *key = NULL,
               *cafile = NULL;
    uint64_t total = 100000, window = 2000;
    double rate = 0;
    bool idle = false, go = false;
    int ch;
    struct sockaddr_in sin;
    SSL_CTX *ctx = NULL;

    while ((ch = getopt(argc, argv, "a:m:S:n:r:s:w:t:u:f:F:C:K:A:PIGL:")) != -1) {
        switch (ch) {
        case 'a':
            addr = optarg;
            break;
        case 'm':
            shmfile = optarg;
            break;
        case 'S':
            nstreams = atoi(optarg);
            break;
        case 'n':
            total = strtoull(optarg, NULL, 10);
            break;
        case 'r':
            rate = atof(optarg);
            break;
        case 's':
            stanza_size = (size_t)atoi(optarg);
            break;
        case 'w':
            window = strtoull(optarg, NULL, 10);
            break;
        case 't':
            to_domain = optarg;
            break;
        case 'u':
            to_jid = optarg;
            break;
        case 'f':
            from_fmt = optarg;
            break;
        case 'F':
            from_count = atoi(optarg);
            break;
        case 'C':
            cert = optarg;
            break;
        case 'K':
            key = optarg;
            break;
        case 'A':
            cafile = optarg;
            break;
        case 'P':
            plain = true;
            break;
        case 'I':
            idle = true;
            break;
        case 'G':
            go = true;
            break;
        case 'L':
            laddr = optarg;
            break;
        default:
            usage();
        }
    }
    if ((addr == NULL && laddr == NULL) || (shmfile == NULL && !idle) || nstreams < 1 ||
        (laddr == NULL && parse_addr(addr, &sin)))
        usage();
    if (stanza_size > 4096)
        stanza_size = 4096;
    signal(SIGPIPE, SIG_IGN);
    if (laddr != NULL) {
        SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());

        if (shmfile == NULL || cert == NULL || key == NULL ||
            SSL_CTX_use_certificate_chain_file(sctx, cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(sctx, key, SSL_FILETYPE_PEM) != 1)
            die("receive mode needs -m, -C and -K (loadable)", NULL, NULL);
        /* ask for the initiator's certificate (so it may use EXTERNAL), accept any */
        SSL_CTX_set_verify(sctx, SSL_VERIFY_PEER, accept_any);
        return receive_mode(laddr, shmfile, sctx);
    }
    if (!plain) {
        ctx = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (cafile == NULL || cert == NULL || key == NULL ||
            SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1 ||
            SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
            die("TLS needs -A, -C and -K (loadable)", NULL, NULL);
        SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }

    streams = calloc((size_t)nstreams, sizeof(*streams));
    uint64_t t_hs = relay_now_ns();

    for (int i = 0; i < nstreams; i++) {
        struct gstream *s = &streams[i];
        int dom = from_count > 0 ? i % from_count : i;

        snprintf(s->from, sizeof(s->from), from_fmt, dom + 1);
        s->out = malloc(OUT_CAP);
        stream_open(s, &sin, ctx);
        fcntl(s->fd, F_SETFL, fcntl(s->fd, F_GETFL) | O_NONBLOCK);
    }
    double hs_secs = (double)(relay_now_ns() - t_hs) / 1e9;

    if (idle) {
        char c;

        printf("ready streams=%d handshake_s=%.2f\n", nstreams, hs_secs);
        fflush(stdout);
        while (read(0, &c, 1) > 0)
            ;
        return 0;
    }

    if (go) {
        char line[16];

        printf("ready streams=%d handshake_s=%.2f\n", nstreams, hs_secs);
        fflush(stdout);
        if (fgets(line, sizeof(line), stdin) == NULL)
            return 0;
    }
    struct relay_shm *shm = relay_shm_map(shmfile, 0);
    struct relay_snap *snap = malloc(sizeof(*snap));

    if (shm == NULL || snap == NULL)
        die("cannot map the sink's file", NULL, shmfile);
    relay_snap_take(shm, snap);
    uint64_t sent = 0, t0 = relay_now_ns();
    struct pollfd *pfd = calloc((size_t)nstreams, sizeof(*pfd));

    while (sent < total) {
        uint64_t now = relay_now_ns();
        uint64_t due;

        if (rate > 0) {
            due = (uint64_t)((double)(now - t0) * rate / 1e9) + 1;
        } else {
            due = relay_count(shm) - snap->stanzas + window;
        }
        if (due > total)
            due = total;
        while (sent < due) {
            struct gstream *s = &streams[sent % (uint64_t)nstreams];

            if (s->len + stanza_size + 256 > OUT_CAP)
                break;
            add_stanza(s, sent, now);
            sent++;
        }
        int waiting = 0;

        for (int i = 0; i < nstreams; i++) {
            if (streams[i].len > streams[i].off)
                stream_flush(&streams[i]);
            pfd[i] = (struct pollfd){.fd = streams[i].fd,
                                     .events = POLLIN | (streams[i].want_write ? POLLOUT : 0)};
            waiting += streams[i].want_write;
        }
        /* wait: for the socket (backpressure), the schedule, or the sink's window */
        struct timespec ts = {0, 50000};

        if (rate > 0 && !waiting) {
            uint64_t next = t0 + (uint64_t)((double)sent * 1e9 / rate);

            now = relay_now_ns();
            ts.tv_nsec = next > now ? (long)(next - now) : 0;
            if (ts.tv_nsec > 999999999)
                ts = (struct timespec){1, 0};
        }
        if (rate > 0 || waiting || sent - (relay_count(shm) - snap->stanzas) >= window) {
            if (ppoll(pfd, (nfds_t)nstreams, &ts, NULL) > 0)
                for (int i = 0; i < nstreams; i++)
                    if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
                        stream_drain(&streams[i]);
        }
    }
    for (int i = 0; i < nstreams; i++)
        while (streams[i].len > streams[i].off) {
            stream_flush(&streams[i]);
            if (streams[i].want_write) {
                struct pollfd p = {.fd = streams[i].fd, .events = POLLOUT | POLLIN};

                poll(&p, 1, 100);
                if (p.revents & POLLIN)
                    stream_drain(&streams[i]);
            }
        }
    uint64_t got = relay_wait(shm, snap, total);

    relay_report(stdout, plain ? "plain" : "tls", shm, snap, nstreams, stanza_size, rate, sent, t0,
                 hs_secs);
    free(snap);
    free(pfd);
    return got == total ? 0 : 1;
}
