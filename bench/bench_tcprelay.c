/*
 * bench_tcprelay: the floor of the relay benchmark (bench/README.md "Relay"): accepts
 * TCP connections on LISTEN and copies bytes both ways to a connection of its own to
 * TARGET, nothing else (no TLS, no XML). One thread, poll(2), 64 KiB reads: what
 * relaying the same bytes costs a process with no protocol work at all.
 *
 * Usage: bench_tcprelay LISTEN-ADDR:PORT TARGET-ADDR:PORT
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_PAIRS 256
#define BUF_SIZE  (64 * 1024)

struct half {
    int from, to;
    char buf[BUF_SIZE];
    size_t off, len;
};

struct pair {
    struct half h[2];
    int dead;
};

static struct pair *pairs[MAX_PAIRS];
static size_t npairs;

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

static void
nonblock(int fd)
{
    int one = 1;

    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Moves what it can from h->from to h->to; -1 when either side is gone. */
static int
pump(struct half *h)
{
    for (;;) {
        if (h->off < h->len) {
            ssize_t n = write(h->to, h->buf + h->off, h->len - h->off);

            if (n < 0)
                return errno == EAGAIN || errno == EINTR ? 0 : -1;
            h->off += (size_t)n;
            if (h->off < h->len)
                return 0;
        }
        h->off = h->len = 0;
        ssize_t n = read(h->from, h->buf, BUF_SIZE);

        if (n == 0)
            return -1;
        if (n < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        h->len = (size_t)n;
    }
}

int
main(int argc, char **argv)
{
    struct sockaddr_in lsin, tsin;
    int lfd, one = 1;

    if (argc != 3 || parse_addr(argv[1], &lsin) || parse_addr(argv[2], &tsin)) {
        fprintf(stderr, "usage: bench_tcprelay LISTEN-ADDR:PORT TARGET-ADDR:PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(lfd, (struct sockaddr *)&lsin, sizeof(lsin)) == -1 || listen(lfd, 128) == -1) {
        perror(argv[1]);
        return 1;
    }
    for (;;) {
        struct pollfd pfd[1 + 2 * MAX_PAIRS];
        nfds_t n = 0;

        pfd[n++] = (struct pollfd){.fd = lfd, .events = POLLIN};
        for (size_t i = 0; i < npairs; i++)
            for (int d = 0; d < 2; d++) {
                struct half *h = &pairs[i]->h[d];

                /* wait to read while empty, to write while full */
                pfd[n++] = h->off < h->len ? (struct pollfd){.fd = h->to, .events = POLLOUT}
                                           : (struct pollfd){.fd = h->from, .events = POLLIN};
            }
        if (poll(pfd, n, -1) == -1 && errno != EINTR)
            return 1;
        for (size_t i = 0; i < npairs; i++)
            for (int d = 0; d < 2; d++)
                if (pfd[1 + 2 * i + (size_t)d].revents && pump(&pairs[i]->h[d]) == -1)
                    pairs[i]->dead = 1;
        for (size_t i = npairs; i-- > 0;)
            if (pairs[i]->dead) {
                close(pairs[i]->h[0].from);
                close(pairs[i]->h[0].to);
                free(pairs[i]);
                pairs[i] = pairs[--npairs];
            }
        if (pfd[0].revents & POLLIN) {
            int a = accept(lfd, NULL, NULL), b;

            if (a == -1)
                continue;
            b = socket(AF_INET, SOCK_STREAM, 0);
            if (npairs == MAX_PAIRS || connect(b, (struct sockaddr *)&tsin, sizeof(tsin)) == -1) {
                perror("connect to target");
                close(a);
                close(b);
                continue;
            }
            nonblock(a);
            nonblock(b);
            struct pair *p = calloc(1, sizeof(*p));

            p->h[0].from = p->h[1].to = a;
            p->h[0].to = p->h[1].from = b;
            pairs[npairs++] = p;
        }
    }
}
