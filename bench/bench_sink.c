/*
 * bench_sink: the local server's side of the relay benchmark (bench/README.md "Relay").
 *
 * It takes message stanzas from three kinds of streams and counts them, with the
 * latency each one took since the generator (bench_relay) stamped it:
 *   -l ADDR:PORT  an XEP-0114 *server*: the proxy's local link connects here as to a
 *                 local server's component port (XEP-0114 §3: its header, ours with an
 *                 id, its <handshake>hex(SHA-1(id + secret))</handshake> checked, our
 *                 <handshake/>). The link's XEP-0199 ack pings are answered (iq result).
 *   -c ADDR:PORT  an XEP-0114 *component*: connects to Prosody's component port as
 *                 component -n NAME, so Prosody delivers its s2s traffic here.
 *   -r ADDR:PORT  raw: any stream header is answered with ours, then stanzas are
 *                 counted (the plain TCP relay floor: no handshake, no TLS).
 * The counts and a 1-µs latency histogram live in the file given with -m (mapped shared,
 * see bench/relay/shm.h); the generator reads it for its window and its report.
 *
 * With -x FIFO it is also the source of the reverse direction (see source_start).
 *
 * A message's body must start with "SEQ TS " (decimal; TS = CLOCK_MONOTONIC ns when
 * the generator wrote it): both are on the same machine and clock.
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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <expat.h>
#include <openssl/evp.h>

#include "bench/relay/common.h"

#define MAX_CONNS 512
#define READ_SIZE (64 * 1024)
#define TEXT_MAX  128

enum role { ROLE_SERVER, ROLE_COMPONENT, ROLE_RAW };
enum state { ST_HEADER, ST_HANDSHAKE, ST_UP, ST_CLOSED };

struct sconn {
    int fd;
    enum role role;
    enum state state;
    XML_Parser p;
    int depth;
    char name[256]; /* component name (server role: the peer's 'to') */
    char id[64];    /* stream id we sent (server) or got (component) */
    char *out;      /* pending output */
    size_t outlen, outcap;
    /* the stanza being parsed */
    bool in_msg, in_body, in_iq, iq_get, is_ping, in_handshake;
    char iq_id[128], iq_from[256], iq_to[256];
    char text[TEXT_MAX];
    size_t textlen;
};

static struct relay_shm *shm;
static const char *secret = "secret";
static const char *comp_name = "a.test";
static struct sconn *conns[MAX_CONNS];
static size_t nconns;
static uint64_t id_seq;

static void
out_add(struct sconn *c, const char *s, size_t len)
{
    if (c->outlen + len > c->outcap) {
        size_t cap = c->outcap ? c->outcap * 2 : 4096;

        while (cap < c->outlen + len)
            cap *= 2;
        if ((c->out = realloc(c->out, cap)) == NULL) {
            perror("realloc");
            exit(1);
        }
        c->outcap = cap;
    }
    memcpy(c->out + c->outlen, s, len);
    c->outlen += len;
}

static void
out_str(struct sconn *c, const char *s)
{
    out_add(c, s, strlen(s));
}

static void
out_flush(struct sconn *c)
{
    size_t off = 0;

    while (off < c->outlen) {
        ssize_t n = write(c->fd, c->out + off, c->outlen - off);

        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            c->state = ST_CLOSED;
            return;
        }
        off += (size_t)n;
    }
    memmove(c->out, c->out + off, c->outlen - off);
    c->outlen -= off;
}

static const char *
local_name(const char *name)
{
    const char *sp = strrchr(name, ' ');

    return sp ? sp + 1 : name;
}

static const char *
attr(const char **atts, const char *key)
{
    for (size_t i = 0; atts[i] != NULL; i += 2)
        if (strcmp(local_name(atts[i]), key) == 0)
            return atts[i + 1];
    return NULL;
}

static void
copy(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

/* hex(SHA-1(id + secret)), XEP-0114 §3 */
static void
handshake_digest(const char *id, char hex[41])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char buf[512];

    snprintf(buf, sizeof(buf), "%s%s", id, secret);
    EVP_Digest(buf, strlen(buf), md, &mdlen, EVP_sha1(), NULL);
    for (unsigned int i = 0; i < mdlen && i < 20; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

static void
stream_start(struct sconn *c, const char **atts)
{
    char buf[1024];

    if (c->role == ROLE_COMPONENT) {
        copy(c->id, sizeof(c->id), attr(atts, "id"));
        char hex[41] = "";

        handshake_digest(c->id, hex);
        snprintf(buf, sizeof(buf), "<handshake>%s</handshake>", hex);
        out_str(c, buf);
        c->state = ST_HANDSHAKE;
        return;
    }
    copy(c->name, sizeof(c->name), attr(atts, "to"));
    snprintf(c->id, sizeof(c->id), "sink%llu", (unsigned long long)++id_seq);
    snprintf(buf, sizeof(buf),
             "<?xml version='1.0'?><stream:stream xmlns='%s' "
             "xmlns:stream='http://etherx.jabber.org/streams' id='%s' from='%s'>",
             c->role == ROLE_RAW ? "jabber:server" : "jabber:component:accept", c->id, c->name);
    out_str(c, buf);
    c->state = c->role == ROLE_RAW ? ST_UP : ST_HANDSHAKE;
}

static void XMLCALL
on_start(void *arg, const char *name, const char **atts)
{
    struct sconn *c = arg;
    const char *ln = local_name(name);

    c->depth++;
    if (c->depth == 1) {
        stream_start(c, atts);
        return;
    }
    if (c->depth == 2) {
        c->in_msg = strcmp(ln, "message") == 0;
        c->in_iq = strcmp(ln, "iq") == 0;
        c->in_handshake = strcmp(ln, "handshake") == 0;
        c->is_ping = false;
        c->textlen = 0;
        if (c->in_iq) {
            const char *type = attr(atts, "type");

            c->iq_get = type != NULL && strcmp(type, "get") == 0;
            copy(c->iq_id, sizeof(c->iq_id), attr(atts, "id"));
            copy(c->iq_from, sizeof(c->iq_from), attr(atts, "from"));
            copy(c->iq_to, sizeof(c->iq_to), attr(atts, "to"));
        }
        return;
    }
    if (c->depth == 3) {
        if (c->in_msg && strcmp(ln, "body") == 0)
            c->in_body = true;
        if (c->in_iq && strcmp(ln, "ping") == 0)
            c->is_ping = true;
    }
}

static void XMLCALL
on_text(void *arg, const char *s, int len)
{
    struct sconn *c = arg;

    if (!(c->in_body || (c->in_handshake && c->depth == 2)))
        return;
    size_t room = TEXT_MAX - 1 - c->textlen;
    size_t n = (size_t)len < room ? (size_t)len : room;

    memcpy(c->text + c->textlen, s, n);
    c->textlen += n;
}

static void
count_message(struct sconn *c)
{
    c->text[c->textlen] = '\0';
    relay_record(shm, c->text);
}

static void
handshake_end(struct sconn *c)
{
    char hex[41] = "";

    if (c->role == ROLE_COMPONENT) {
        c->state = ST_UP;
        fprintf(stderr, "bench_sink: component %s accepted by the server\n", comp_name);
        return;
    }
    c->text[c->textlen] = '\0';
    handshake_digest(c->id, hex);
    if (strcmp(hex, c->text) != 0) {
        fprintf(stderr, "bench_sink: bad handshake from %s\n", c->name);
        out_str(c, "<stream:error><not-authorized "
                   "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>");
        c->state = ST_CLOSED;
        return;
    }
    out_str(c, "<handshake/>");
    c->state = ST_UP;
    fprintf(stderr, "bench_sink: component link up (%s)\n", c->name);
}

static void XMLCALL
on_end(void *arg, const char *name)
{
    struct sconn *c = arg;
    char buf[1024];

    (void)name;
    if (c->depth == 3)
        c->in_body = false;
    if (c->depth == 2) {
        if (c->in_handshake && c->state == ST_HANDSHAKE)
            handshake_end(c);
        else if (c->in_msg)
            count_message(c);
        else if (c->in_iq && c->iq_get) {
            /* XEP-0199 §4: a ping (any get, in fact) is answered with an empty result */
            snprintf(buf, sizeof(buf), "<iq type='result' id='%s' from='%s' to='%s'/>", c->iq_id,
                     c->iq_to, c->iq_from);
            out_str(c, buf);
            if (c->is_ping)
                shm->pings++;
        }
        c->in_msg = c->in_iq = c->in_handshake = false;
    }
    if (c->depth == 1) {
        out_str(c, "</stream:stream>");
        c->state = ST_CLOSED;
    }
    c->depth--;
}

static struct sconn *
conn_new(int fd, enum role role)
{
    struct sconn *c = calloc(1, sizeof(*c));
    int one = 1;

    if (c == NULL || nconns == MAX_CONNS) {
        fprintf(stderr, "bench_sink: too many connections\n");
        close(fd);
        free(c);
        return NULL;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->fd = fd;
    c->role = role;
    c->p = XML_ParserCreateNS(NULL, ' ');
    XML_SetUserData(c->p, c);
    XML_SetElementHandler(c->p, on_start, on_end);
    XML_SetCharacterDataHandler(c->p, on_text);
    conns[nconns++] = c;
    return c;
}

static void
conn_free(size_t i)
{
    struct sconn *c = conns[i];

    close(c->fd);
    XML_ParserFree(c->p);
    free(c->out);
    free(c);
    conns[i] = conns[--nconns];
}

static int
parse_addr(const char *s, struct sockaddr_in *sin)
{
    char host[64];
    const char *colon = strrchr(s, ':');

    if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)atoi(colon + 1));
    return inet_pton(AF_INET, host, &sin->sin_addr) == 1 ? 0 : -1;
}

static int
listen_on(const char *addr)
{
    struct sockaddr_in sin;
    int fd, one = 1;

    if (parse_addr(addr, &sin) == -1) {
        fprintf(stderr, "bench_sink: bad address %s\n", addr);
        exit(2);
    }
    fd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 || listen(fd, 128) == -1) {
        perror(addr);
        exit(1);
    }
    return fd;
}

static void
connect_component(const char *addr)
{
    struct sockaddr_in sin;
    char buf[512];
    int fd;

    if (parse_addr(addr, &sin) == -1) {
        fprintf(stderr, "bench_sink: bad address %s\n", addr);
        exit(2);
    }
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
        perror(addr);
        exit(1);
    }
    struct sconn *c = conn_new(fd, ROLE_COMPONENT);

    if (c == NULL)
        exit(1);
    snprintf(buf, sizeof(buf),
             "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "
             "xmlns:stream='http://etherx.jabber.org/streams' to='%s'>",
             comp_name);
    out_str(c, buf);
    out_flush(c);
}

static void
conn_read(struct sconn *c, char *buf)
{
    for (;;) {
        ssize_t n = read(c->fd, buf, READ_SIZE);

        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            c->state = ST_CLOSED;
            return;
        }
        if (n < 0)
            return;
        if (c->state == ST_UP)
            shm->bytes += (uint64_t)n;
        if (XML_Parse(c->p, buf, (int)n, 0) == XML_STATUS_ERROR) {
            fprintf(stderr, "bench_sink: XML error: %s\n", XML_ErrorString(XML_GetErrorCode(c->p)));
            c->state = ST_CLOSED;
            return;
        }
        if (c->state == ST_CLOSED || n < READ_SIZE)
            return;
    }
}

/*
 * Source mode (reverse direction): a line "send ROLE N RATE SIZE DOMAINS WINDOW FILE" on
 * the command FIFO (-x) makes the sink send N messages from user@DOMAIN to u@rK.test
 * (K = 1..DOMAINS, round robin) on its up connection of ROLE ("server": the proxy's
 * local link; "component": its own link into Prosody), at RATE/s (0: as fast as the
 * window allows: at most WINDOW not yet counted in FILE, the receiver's counting file
 * made by "bench_relay -L"). When they have arrived (or 20 s pass without progress) it
 * prints a "result ..." line on stderr.
 */
struct source {
    bool active, draining;
    struct sconn *c;
    uint64_t total, sent, window, t0, t_last, last;
    double rate;
    size_t size;
    int domains;
    struct relay_shm *rshm;
    struct relay_snap snap;
    char rpath[512];
};

static struct source src;
static const char *src_from = "user@a.test/s";

static void
source_start(char *line)
{
    char role[32], path[512];
    unsigned long long total, window;
    double rate;
    size_t size;
    int domains;

    if (sscanf(line, "send %31s %llu %lf %zu %d %llu %511s", role, &total, &rate, &size, &domains,
               &window, path) != 7 ||
        domains < 1) {
        fprintf(stderr, "bench_sink: bad command: %s\n", line);
        return;
    }
    enum role want = strcmp(role, "component") == 0 ? ROLE_COMPONENT : ROLE_SERVER;

    src.c = NULL;
    for (size_t i = 0; i < nconns; i++)
        if (conns[i]->role == want && conns[i]->state == ST_UP)
            src.c = conns[i];
    if (src.c == NULL) {
        fprintf(stderr, "bench_sink: no %s connection up\n", role);
        return;
    }
    if (src.rshm == NULL || strcmp(path, src.rpath) != 0) {
        if ((src.rshm = relay_shm_map(path, 0)) == NULL) {
            fprintf(stderr, "bench_sink: cannot map %s\n", path);
            return;
        }
        snprintf(src.rpath, sizeof(src.rpath), "%s", path);
    }
    relay_snap_take(src.rshm, &src.snap);
    src.total = total;
    src.window = window;
    src.rate = rate;
    src.size = size > 4096 ? 4096 : size;
    src.domains = domains;
    src.sent = 0;
    src.active = true;
    src.draining = false;
    src.t0 = relay_now_ns();
}

static void
source_stanza(struct sconn *c, uint64_t seq, uint64_t ts)
{
    static const char tail[] = "</body></message>";
    char buf[4096 + 512];
    int n = snprintf(buf, sizeof(buf),
                     "<message from='%s' to='u@r%d.test' id='s%llu' type='chat'><body>%llu %llu ",
                     src_from, (int)(seq % (uint64_t)src.domains) + 1, (unsigned long long)seq,
                     (unsigned long long)seq, (unsigned long long)ts);
    size_t pad =
        src.size > (size_t)n + sizeof(tail) - 1 ? src.size - (size_t)n - (sizeof(tail) - 1) : 0;

    memset(buf + n, 'x', pad);
    memcpy(buf + n + pad, tail, sizeof(tail) - 1);
    out_add(c, buf, (size_t)n + pad + sizeof(tail) - 1);
}

/* Sends what is due; returns the poll timeout (ns) until something else will be. */
static int64_t
source_run(void)
{
    uint64_t now = relay_now_ns(), got;

    if (!src.active)
        return -1;
    if (src.c->state != ST_UP) {
        fprintf(stderr, "bench_sink: source connection lost\n");
        src.active = false;
        return -1;
    }
    got = relay_count(src.rshm) - src.snap.stanzas;
    if (src.sent < src.total) {
        uint64_t due = src.rate > 0 ? (uint64_t)((double)(now - src.t0) * src.rate / 1e9) + 1
                                    : got + src.window;

        if (due > src.total)
            due = src.total;
        while (src.sent < due && src.c->outlen < 256 * 1024)
            source_stanza(src.c, src.sent++, now);
        out_flush(src.c);
        if (src.rate > 0 && src.sent < src.total) {
            uint64_t next = src.t0 + (uint64_t)((double)src.sent * 1e9 / src.rate);

            return next > now ? (int64_t)(next - now) : 0;
        }
        return 50000;
    }
    if (!src.draining) {
        src.draining = true;
        src.last = got;
        src.t_last = now;
    }
    if (got != src.last) {
        src.last = got;
        src.t_last = now;
    }
    if (got >= src.total || now - src.t_last > 20000000000ULL) {
        relay_report(stderr, src.c->role == ROLE_COMPONENT ? "reverse-component" : "reverse-link",
                     src.rshm, &src.snap, src.domains, src.size, src.rate, src.sent, src.t0, 0);
        src.active = false;
        return -1;
    }
    return 1000000;
}

static void
command_read(int fd)
{
    static char line[1024];
    static size_t len;
    ssize_t n = read(fd, line + len, sizeof(line) - 1 - len);
    char *nl;

    if (n <= 0)
        return;
    len += (size_t)n;
    line[len] = '\0';
    while ((nl = strchr(line, '\n')) != NULL) {
        *nl = '\0';
        source_start(line);
        len -= (size_t)(nl + 1 - line);
        memmove(line, nl + 1, len + 1);
    }
    if (len == sizeof(line) - 1)
        len = 0;
}

static void
usage(void)
{
    fprintf(stderr, "usage: bench_sink -m SHMFILE [-l ADDR:PORT] [-r ADDR:PORT] "
                    "[-c ADDR:PORT -n NAME] [-s SECRET] [-x COMMAND-FIFO] [-f FROM-JID]\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    const char *shmfile = NULL, *laddr = NULL, *raddr = NULL, *caddr = NULL;
    const char *xpath = NULL;
    int lfd = -1, rfd = -1, xfd = -1, ch;
    static char buf[READ_SIZE];

    while ((ch = getopt(argc, argv, "m:l:r:c:n:s:x:f:")) != -1) {
        switch (ch) {
        case 'm':
            shmfile = optarg;
            break;
        case 'l':
            laddr = optarg;
            break;
        case 'r':
            raddr = optarg;
            break;
        case 'c':
            caddr = optarg;
            break;
        case 'n':
            comp_name = optarg;
            break;
        case 's':
            secret = optarg;
            break;
        case 'x':
            xpath = optarg;
            break;
        case 'f':
            src_from = optarg;
            break;
        default:
            usage();
        }
    }
    if (shmfile == NULL)
        usage();
    signal(SIGPIPE, SIG_IGN);
    if ((shm = relay_shm_map(shmfile, 1)) == NULL)
        return 1;
    if (laddr)
        lfd = listen_on(laddr);
    if (raddr)
        rfd = listen_on(raddr);
    if (caddr)
        connect_component(caddr);
    if (xpath && ((mkfifo(xpath, 0600) == -1 && errno != EEXIST) ||
                  (xfd = open(xpath, O_RDWR | O_NONBLOCK)) == -1)) {
        perror(xpath);
        return 1;
    }
    fprintf(stderr, "bench_sink: ready\n");

    for (;;) {
        struct pollfd pfd[MAX_CONNS + 2];
        size_t n = 0, base;

        if (lfd != -1)
            pfd[n++] = (struct pollfd){.fd = lfd, .events = POLLIN};
        if (rfd != -1)
            pfd[n++] = (struct pollfd){.fd = rfd, .events = POLLIN};
        if (xfd != -1)
            pfd[n++] = (struct pollfd){.fd = xfd, .events = POLLIN};
        base = n;
        for (size_t i = 0; i < nconns; i++)
            pfd[n++] = (struct pollfd){.fd = conns[i]->fd,
                                       .events = POLLIN | (conns[i]->outlen ? POLLOUT : 0)};
        int64_t wait_ns = source_run();
        struct timespec ts = {(time_t)(wait_ns / 1000000000), (long)(wait_ns % 1000000000)};

        if (ppoll(pfd, n, wait_ns < 0 ? NULL : &ts, NULL) == -1 && errno != EINTR) {
            perror("poll");
            return 1;
        }
        for (size_t i = 0; i < base; i++) {
            if (!(pfd[i].revents & POLLIN))
                continue;
            if (pfd[i].fd == xfd) {
                command_read(xfd);
                continue;
            }
            int cfd = accept(pfd[i].fd, NULL, NULL);

            if (cfd != -1)
                conn_new(cfd, pfd[i].fd == rfd ? ROLE_RAW : ROLE_SERVER);
        }
        /* conns[] may have grown by accepts: only the first n - base were polled */
        for (size_t i = n - base; i-- > 0;) {
            struct sconn *c = conns[i];

            if (pfd[base + i].revents & (POLLIN | POLLHUP | POLLERR))
                conn_read(c, buf);
            if (c->outlen)
                out_flush(c);
            if (c->state == ST_CLOSED) {
                if (c->role == ROLE_COMPONENT)
                    fprintf(stderr, "bench_sink: component connection closed\n");
                if (src.c == c)
                    src.active = false;
                conn_free(i);
            }
        }
    }
}
