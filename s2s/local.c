/*
 * The local link (XEP-0114 component connection to the local server); see local.h.
 *
 * States: DOWN (waiting for the retry timer) -> CONNECTING (TCP) -> HEADER (our stream
 * header sent, waiting for the server's and its id) -> HANDSHAKE (digest sent, waiting
 * for <handshake/>) -> UP. Any failure goes back to DOWN with a backoff.
 *
 * Stanzas for the local server live in one of two lists: the queue (waiting for the
 * link) and inflight (serialized into the connection's output and not yet known to be
 * delivered). An inflight stanza records the output offset just past its last byte.
 *
 * XEP-0114 has no acknowledgements, so the link makes its own: after writing stanzas
 * it sends an XEP-0199 ping from the component to the hosted domain and remembers the
 * output offset just past it. The server handles a stream's stanzas in order, so its
 * answer (a result, or any error: RFC 6120 §8.2.3 obliges it to answer) proves that
 * everything before the ping was taken; those stanzas are delivered. One ping is out
 * at a time (one per round trip under load). When the link dies, every inflight
 * stanza goes back to the head of the queue and is written again after the reconnect:
 * delivery is at least once; a stanza the server took after its last answered ping,
 * just before it died, may arrive twice. No answer within ack_timeout means a hung
 * server: the link is dropped and remade.
 *
 * With no_ack_pings, an inflight stanza is delivered once conn_stats()->bytes_out
 * passes it (its last byte is on the socket); when the link dies, only stanzas not yet
 * fully written are requeued, and what sat in socket buffers is lost.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/evp.h>

#include "s2s/conn.h"
#include "s2s/local.h"
#include "s2s/log.h"
#include "s2s/sockaddr.h"

#define LOCAL_TRIM_MS      50 /* no_ack_pings: how often written inflight stanzas are released */
#define LOCAL_ACK_ID       "s2sproxy-ack-"
#define LOCAL_ACK_DELAY_MS 5 /* an ack ping waits this long after a burst: see ack_arm() */

enum local_state {
    LOCAL_DOWN = 0,
    LOCAL_CONNECTING,
    LOCAL_HEADER,
    LOCAL_HANDSHAKE,
    LOCAL_UP,
};

struct qent {
    TAILQ_ENTRY(qent) entry;
    struct stanza *st;
    size_t mem;   /* stanza_mem_bytes, for the queue bound */
    double since; /* accepted at (monotonic seconds) */
    uint64_t end; /* inflight: output offset just past its last byte */
};
TAILQ_HEAD(qlist, qent);

struct local {
    struct event_base *base;
    struct local_options opt; /* strings point at the copies below */
    char *name, *domain, *host, *secret;
    struct local_cbs cbs;
    enum local_state state;
    struct conn *conn;
    struct xmlstream *xs;
    struct qlist queue, inflight;
    struct event *ev_retry, *ev_handshake, *ev_expire, *ev_trim, *ev_ack, *ev_ack_timeout;
    struct event *ev_keepalive;
    bool acks;         /* ping acknowledgements (not opt.no_ack_pings) */
    bool ping_out;     /* an ack ping awaits its answer */
    uint64_t ping_seq; /* numbers ping ids */
    uint64_t ping_end; /* output offset just past the ping out */
    char ping_id[48];
    unsigned failures;  /* consecutive failed attempts, for the backoff */
    bool overflowing;   /* a queue-full warning was logged; reset when it drains */
    char fail_why[256]; /* set inside parser callbacks: the link must go down */
    bool fail_refused;  /* the server refused the handshake (config error) */
    int fail_send;      /* stream error to send before closing, or -1 */
    struct local_stats stats;
};

static const char *const state_names[] = {"down", "connecting", "header", "handshake", "up"};

static void link_connect(struct local *);
static void ack_arm(struct local *);
static void link_fail(struct local *, const char *why);

static double
now_sec(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct timeval
tv_of(double sec)
{
    struct timeval tv;

    if (sec < 0)
        sec = 0;
    tv.tv_sec = (time_t)sec;
    tv.tv_usec = (suseconds_t)((sec - (double)tv.tv_sec) * 1e6);
    return tv;
}

const char *
local_strstate(const struct local *l)
{
    return state_names[l->state];
}

static void
enter_state(struct local *l, enum local_state s)
{
    log_debug("local: domain=%s %s -> %s", l->domain, state_names[l->state], state_names[s]);
    l->state = s;
}

/* ---- JIDs --------------------------------------------------------------------------- */

/* The domainpart of a JID (RFC 7622 §3.2): before the first '/', after the first '@'. */
static void
jid_domain(const char *jid, const char **dom, size_t *len)
{
    const char *slash = strchr(jid, '/');
    size_t n = slash ? (size_t)(slash - jid) : strlen(jid);
    const char *at = memchr(jid, '@', n);

    if (at != NULL) {
        n -= (size_t)(at + 1 - jid);
        jid = at + 1;
    }
    *dom = jid;
    *len = n;
}

/* True when jid's domain is d or a subdomain of d (ASCII case-insensitive). */
static bool
jid_in_domain(const char *jid, const char *d)
{
    const char *dom;
    size_t len, dlen = strlen(d);

    jid_domain(jid, &dom, &len);
    if (len == dlen)
        return strncasecmp(dom, d, dlen) == 0;
    return len > dlen + 1 && dom[len - dlen - 1] == '.' &&
           strncasecmp(dom + len - dlen, d, dlen) == 0;
}

static bool
jid_is_domain(const char *jid, const char *d)
{
    const char *dom;
    size_t len;

    jid_domain(jid, &dom, &len);
    return len == strlen(d) && strncasecmp(dom, d, len) == 0;
}

/* ---- queue and inflight ------------------------------------------------------------- */

static void
expire_arm(struct local *l)
{
    struct qent *e = TAILQ_FIRST(&l->queue);
    struct timeval tv;

    if (e == NULL) {
        evtimer_del(l->ev_expire);
        return;
    }
    tv = tv_of(e->since + l->opt.queue_max_wait - now_sec());
    evtimer_add(l->ev_expire, &tv);
}

static void
queue_remove(struct local *l, struct qent *e)
{
    TAILQ_REMOVE(&l->queue, e, entry);
    l->stats.queued--;
    l->stats.queued_bytes -= e->mem;
    if (l->stats.queued == 0)
        l->overflowing = false;
}

/* Bounces everything queued longer than queue_max_wait (RFC 6120 §8.3.3.16). */
static void
expire_cb(evutil_socket_t fd, short what, void *arg)
{
    struct local *l = arg;
    struct qent *e;
    double now = now_sec();
    char why[128];

    (void)fd;
    (void)what;
    while ((e = TAILQ_FIRST(&l->queue)) != NULL && e->since + l->opt.queue_max_wait <= now) {
        queue_remove(l, e);
        l->stats.bounced_timeout++;
        snprintf(why, sizeof(why), "local server for %s unreachable for %.0f s", l->domain,
                 now - e->since);
        log_warn("local: bounce domain=%s to=%s reason=\"%s\" state=%s", l->domain,
                 stanza_attr(e->st, "to") ? stanza_attr(e->st, "to") : "-", why,
                 state_names[l->state]);
        l->cbs.bounce_take(l->cbs.arg, l, e->st, XMPP_STANZA_ERR_REMOTE_SERVER_TIMEOUT, why);
        free(e);
    }
    expire_arm(l);
}

/* Inflight stanzas that end at or before output offset off are delivered. */
static void
inflight_release(struct local *l, uint64_t off)
{
    struct qent *e;

    while ((e = TAILQ_FIRST(&l->inflight)) != NULL && e->end <= off) {
        TAILQ_REMOVE(&l->inflight, e, entry);
        l->stats.inflight--;
        l->stats.delivered++;
        /* The trace of a stanza known delivered (its id): tests wait for it before
         * stopping the server, so that nothing is written twice or bounced late. */
        if (log_enabled(LOG_LVL_DEBUG))
            log_debug("local: delivered domain=%s %s id=%s to=%s", l->domain, stanza_name(e->st),
                      stanza_attr(e->st, "id") ? stanza_attr(e->st, "id") : "-",
                      stanza_attr(e->st, "to") ? stanza_attr(e->st, "to") : "-");
        stanza_free(e->st);
        free(e);
    }
}

/* no_ack_pings: what has left for the socket counts as delivered. */
static void
inflight_trim(struct local *l)
{
    if (l->conn != NULL && !l->acks)
        inflight_release(l, conn_stats(l->conn)->bytes_out);
}

static void
trim_arm(struct local *l)
{
    struct timeval tv = {0, LOCAL_TRIM_MS * 1000};

    if (!TAILQ_EMPTY(&l->inflight) && !evtimer_pending(l->ev_trim, NULL))
        evtimer_add(l->ev_trim, &tv);
}

static void
trim_cb(evutil_socket_t fd, short what, void *arg)
{
    struct local *l = arg;

    (void)fd;
    (void)what;
    inflight_trim(l);
    trim_arm(l);
}

/*
 * The link is dying: stanzas fully written are delivered; the rest (still in the
 * connection's output, maybe partly) go back to the head of the queue, in order.
 */
static void
inflight_requeue(struct local *l)
{
    struct qent *e;
    size_t n = 0;

    inflight_trim(l);
    while ((e = TAILQ_LAST(&l->inflight, qlist)) != NULL) {
        TAILQ_REMOVE(&l->inflight, e, entry);
        l->stats.inflight--;
        TAILQ_INSERT_HEAD(&l->queue, e, entry);
        l->stats.queued++;
        l->stats.queued_bytes += e->mem;
        l->stats.requeued++;
        n++;
    }
    if (n > 0)
        log_info("local: requeued %zu %s stanzas domain=%s", n,
                 l->acks ? "unacknowledged" : "unwritten", l->domain);
    evtimer_del(l->ev_trim);
}

/*
 * Sends an ack ping a moment after the current burst of writes. The delay lets one ping
 * cover many stanzas at moderate rates: sent at once, a link carrying 10,000 stanzas/s
 * pinged after almost every stanza (0.5-0.86 pings per stanza measured by bench/relay.py),
 * nearly doubling its traffic; a stanza is released from inflight at most this much later.
 */
static void
ack_arm(struct local *l)
{
    struct timeval delay = {0, LOCAL_ACK_DELAY_MS * 1000};

    if (!l->ping_out && !evtimer_pending(l->ev_ack, NULL))
        evtimer_add(l->ev_ack, &delay);
}

/* XEP-0199 ping to the hosted domain: its answer acknowledges what was written before
 * (and shows the server is alive). */
static void
ping_send(struct local *l)
{
    struct evbuffer *out = conn_output(l->conn);
    struct timeval tv = tv_of(l->opt.ack_timeout);

    snprintf(l->ping_id, sizeof(l->ping_id), LOCAL_ACK_ID "%llu",
             (unsigned long long)++l->ping_seq);
    if (evbuffer_add_printf(out, "<iq type='get' id='%s' from='", l->ping_id) == -1 ||
        stanza_escape_attr(out, l->name, strlen(l->name)) == -1 ||
        evbuffer_add_printf(out, "' to='") == -1 ||
        stanza_escape_attr(out, l->domain, strlen(l->domain)) == -1 ||
        evbuffer_add_printf(out, "'><ping xmlns='urn:xmpp:ping'/></iq>") == -1) {
        link_fail(l, "out of memory");
        return;
    }
    l->ping_end = conn_stats(l->conn)->bytes_out + evbuffer_get_length(out);
    l->ping_out = true;
    evtimer_add(l->ev_ack_timeout, &tv);
}

static void
ack_cb(evutil_socket_t fd, short what, void *arg)
{
    struct local *l = arg;

    (void)fd;
    (void)what;
    if (l->state == LOCAL_UP && !l->ping_out && !TAILQ_EMPTY(&l->inflight))
        ping_send(l);
}

/*
 * Every keepalive_interval on an idle link: a ping, so a server that went away
 * without a FIN/RST (host down, half-open TCP, hung process) is found before the next
 * stanza needs it, and middleboxes keep the connection. (Prosody 0.12 never closes an
 * idle component link: it only writes a space when its read timeout fires.)
 */
static void
keepalive_cb(evutil_socket_t fd, short what, void *arg)
{
    struct local *l = arg;

    (void)fd;
    (void)what;
    if (l->state == LOCAL_UP && !l->ping_out && TAILQ_EMPTY(&l->inflight))
        ping_send(l);
}

static void
ack_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct local *l = arg;
    char why[128];

    (void)fd;
    (void)what;
    snprintf(why, sizeof(why), "no answer to the ack ping %s in %.1f s (server hung?)", l->ping_id,
             l->opt.ack_timeout);
    link_fail(l, why);
}

/* The answer to an ack ping (any type: result or error both prove it was handled).
 * True when st was one (it is then freed). */
static bool
ack_answer(struct local *l, struct stanza *st)
{
    const char *id = stanza_attr(st, "id"), *type = stanza_attr(st, "type");

    if (strcmp(stanza_name(st), "iq") != 0 || id == NULL ||
        strncmp(id, LOCAL_ACK_ID, strlen(LOCAL_ACK_ID)) != 0 || type == NULL ||
        (strcmp(type, "result") != 0 && strcmp(type, "error") != 0))
        return false;
    if (l->ping_out && strcmp(id, l->ping_id) == 0) {
        l->ping_out = false;
        l->stats.acks++;
        evtimer_del(l->ev_ack_timeout);
        inflight_release(l, l->ping_end);
        log_debug("local: acked domain=%s ping=%s inflight=%zu", l->domain, l->ping_id,
                  l->stats.inflight);
        if (!TAILQ_EMPTY(&l->inflight))
            ack_arm(l);
    }
    stanza_free(st);
    return true;
}

/* Serializes e into the connection and moves it to inflight. -1: memory. */
static int
write_stanza(struct local *l, struct qent *e)
{
    struct evbuffer *out = conn_output(l->conn);
    size_t before = evbuffer_get_length(out);

    if (stanza_serialize(e->st, out, STANZA_NS_COMPONENT) == -1) {
        evbuffer_drain(out, evbuffer_get_length(out) - before);
        return -1;
    }
    e->end = conn_stats(l->conn)->bytes_out + evbuffer_get_length(out);
    TAILQ_INSERT_TAIL(&l->inflight, e, entry);
    l->stats.inflight++;
    if (l->acks)
        ack_arm(l);
    else
        trim_arm(l);
    return 0;
}

/* Writes queued stanzas in order while the link is up and its output has room. */
static void
queue_flush(struct local *l)
{
    struct qent *e;

    while (l->state == LOCAL_UP && !conn_output_full(l->conn) &&
           (e = TAILQ_FIRST(&l->queue)) != NULL) {
        queue_remove(l, e);
        if (write_stanza(l, e) == -1) {
            TAILQ_INSERT_HEAD(&l->queue, e, entry);
            l->stats.queued++;
            l->stats.queued_bytes += e->mem;
            log_warn("local: out of memory writing to the local server domain=%s", l->domain);
            break;
        }
    }
    expire_arm(l);
}

int
local_send(struct local *l, struct stanza *st)
{
    struct qent *e;
    size_t mem = stanza_mem_bytes(st);

    if (l->state != LOCAL_UP || !TAILQ_EMPTY(&l->queue) || conn_output_full(l->conn)) {
        if (l->stats.queued >= l->opt.queue_stanzas ||
            l->stats.queued_bytes + mem > l->opt.queue_bytes) {
            l->stats.refused++;
            if (!l->overflowing)
                log_warn("local: queue full domain=%s state=%s queued=%zu bytes=%zu: "
                         "refusing stanzas until it drains",
                         l->domain, state_names[l->state], l->stats.queued, l->stats.queued_bytes);
            l->overflowing = true;
            return -1;
        }
    }
    if ((e = calloc(1, sizeof(*e))) == NULL) {
        l->stats.refused++;
        return -1;
    }
    e->st = st;
    e->mem = mem;
    e->since = now_sec();
    l->stats.to_local++;
    if (l->state == LOCAL_UP && TAILQ_EMPTY(&l->queue) && !conn_output_full(l->conn) &&
        write_stanza(l, e) == 0)
        return 0;
    TAILQ_INSERT_TAIL(&l->queue, e, entry);
    l->stats.queued++;
    l->stats.queued_bytes += mem;
    if (TAILQ_FIRST(&l->queue) == e)
        expire_arm(l);
    return 0;
}

/* ---- stanzas from the local server -------------------------------------------------- */

/* Answers st to the local server with a stanza error (RFC 6120 §8.3), or drops it when
 * it must not be answered (an error, an IQ result). Takes st. */
static void
reject(struct local *l, struct stanza *st, enum xmpp_stanza_error cond, const char *why)
{
    const char *from = stanza_attr(st, "from"), *to = stanza_attr(st, "to");
    struct stanza *reply = stanza_bounce_make(st, cond, why, false);

    log_warn("local: refused stanza from the local server domain=%s name=%s from=%s to=%s "
             "condition=%s reason=\"%s\"%s",
             l->domain, stanza_name(st), from ? from : "-", to ? to : "-",
             xmpp_stanza_error_name(cond), why, reply ? "" : " (not answered)");
    if (reply == NULL || stanza_serialize(reply, conn_output(l->conn), STANZA_NS_COMPONENT) == -1)
        l->stats.dropped++;
    else
        l->stats.rejected++;
    stanza_free(reply);
    stanza_free(st);
}

/*
 * A stanza from the local server: it must be message/presence/iq, come from the
 * hosted domain or a subdomain of it (the server's MUC and other components), and go
 * to a domain outside it. The proxy is trusted by remote servers to have checked the
 * 'from' of what it sends (DESIGN: no spoofing).
 */
static void
from_local(struct local *l, struct stanza *st)
{
    const char *name = stanza_name(st), *ns = stanza_ns(st);
    const char *from = stanza_attr(st, "from"), *to = stanza_attr(st, "to");

    l->stats.from_local++;
    if ((strcmp(name, "message") != 0 && strcmp(name, "presence") != 0 &&
         strcmp(name, "iq") != 0) ||
        !stanza_ns_eq(ns, STANZA_NS_COMPONENT)) {
        l->stats.dropped++;
        log_warn("local: dropped unexpected element from the local server domain=%s "
                 "element={%s}%s",
                 l->domain, ns ? ns : "", name);
        stanza_free(st);
        return;
    }
    if (from == NULL) {
        l->stats.dropped++;
        log_warn("local: dropped %s without 'from' from the local server domain=%s to=%s", name,
                 l->domain, to ? to : "-");
        stanza_free(st);
        return;
    }
    if (!jid_in_domain(from, l->domain)) {
        reject(l, st, XMPP_STANZA_ERR_NOT_ALLOWED, "sender not in the hosted domain");
        return;
    }
    if (to == NULL) {
        reject(l, st, XMPP_STANZA_ERR_BAD_REQUEST, "stanza without 'to'");
        return;
    }
    if (jid_in_domain(to, l->domain) || jid_is_domain(to, l->name)) {
        reject(l, st, XMPP_STANZA_ERR_SERVICE_UNAVAILABLE,
               "the federation proxy only routes to remote domains");
        return;
    }
    l->stats.passed_up++;
    l->cbs.stanza_take(l->cbs.arg, l, st);
}

/* ---- the stream ----------------------------------------------------------------------- */

/* XEP-0114 §3: lower-case hex SHA-1 of the stream id followed by the secret. */
static int
handshake_digest(const char *id, const char *secret, char hex[41])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0, i;
    int ok;

    if (ctx == NULL)
        return -1;
    ok = EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
         EVP_DigestUpdate(ctx, id, strlen(id)) == 1 &&
         EVP_DigestUpdate(ctx, secret, strlen(secret)) == 1 &&
         EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 20;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return -1;
    for (i = 0; i < mdlen; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return 0;
}

static void
xs_header(void *arg, const struct xmlstream_header *h)
{
    struct local *l = arg;
    char hex[41];

    if (l->state != LOCAL_HEADER) {
        snprintf(l->fail_why, sizeof(l->fail_why), "unexpected stream header");
        return;
    }
    if (!stanza_ns_eq(h->ns, STANZA_NS_COMPONENT)) {
        snprintf(l->fail_why, sizeof(l->fail_why), "server answered in namespace %s",
                 h->ns ? h->ns : "-");
        l->fail_send = XMPP_STREAM_ERR_INVALID_NAMESPACE;
        return;
    }
    if (h->id == NULL || h->id[0] == '\0') {
        snprintf(l->fail_why, sizeof(l->fail_why), "server stream header without id");
        l->fail_send = XMPP_STREAM_ERR_INVALID_XML;
        return;
    }
    if (handshake_digest(h->id, l->secret, hex) == -1) {
        snprintf(l->fail_why, sizeof(l->fail_why), "SHA-1 failed");
        return;
    }
    evbuffer_add_printf(conn_output(l->conn), "<handshake>%s</handshake>", hex);
    enter_state(l, LOCAL_HANDSHAKE);
}

static void
link_up(struct local *l)
{
    evtimer_del(l->ev_handshake);
    enter_state(l, LOCAL_UP);
    l->failures = 0;
    l->stats.handshakes++;
    if (l->opt.keepalive_interval > 0) {
        struct timeval tv = tv_of(l->opt.keepalive_interval);

        evtimer_add(l->ev_keepalive, &tv);
    }
    log_info("local: link up domain=%s component=%s server=%s queued=%zu", l->domain, l->name,
             conn_peer(l->conn), l->stats.queued);
    queue_flush(l);
    if (l->cbs.state)
        l->cbs.state(l->cbs.arg, l, true);
}

/* <stream:error/> from the server (RFC 6120 §4.9): the stream is over. */
static void
stream_error(struct local *l, struct stanza *st)
{
    struct stanza_elem *root = stanza_root(st), *e, *cond = NULL;
    const char *text = NULL;

    for (e = stanza_elem_first(root); e != NULL; e = stanza_elem_next(e)) {
        if (!stanza_ns_eq(e->ns, XMPP_NS_STREAM_ERRORS))
            continue;
        if (strcmp(e->name, "text") == 0)
            text = stanza_elem_text(st, e, NULL);
        else if (cond == NULL)
            cond = e;
    }
    if (l->state != LOCAL_UP)
        l->fail_refused = true;
    snprintf(l->fail_why, sizeof(l->fail_why), "stream error from the server: %s%s%s%s",
             cond ? cond->name : "(none)", text ? " (" : "", text ? text : "", text ? ")" : "");
}

static void
xs_stanza(void *arg, struct stanza *st)
{
    struct local *l = arg;
    const char *name = stanza_name(st), *ns = stanza_ns(st);

    if (l->fail_why[0] != '\0') { /* already going down: nothing more is read */
        stanza_free(st);
        return;
    }
    if (stanza_ns_eq(ns, XMPP_NS_STREAMS) && strcmp(name, "error") == 0) {
        stream_error(l, st);
        stanza_free(st);
        return;
    }
    if (l->state == LOCAL_UP) {
        if (!ack_answer(l, st))
            from_local(l, st);
        return;
    }
    if (l->state == LOCAL_HANDSHAKE && stanza_ns_eq(ns, STANZA_NS_COMPONENT) &&
        strcmp(name, "handshake") == 0) {
        stanza_free(st);
        link_up(l);
        return;
    }
    snprintf(l->fail_why, sizeof(l->fail_why), "unexpected <%s/> in state %s", name,
             state_names[l->state]);
    l->fail_send = XMPP_STREAM_ERR_UNSUPPORTED_STANZA_TYPE;
    stanza_free(st);
}

static void
xs_close(void *arg)
{
    struct local *l = arg;

    if (l->fail_why[0] == '\0')
        snprintf(l->fail_why, sizeof(l->fail_why), "stream closed by the server");
}

static void
xs_error(void *arg, enum xmpp_stream_error cond, const char *text)
{
    struct local *l = arg;

    if (l->fail_why[0] == '\0') {
        snprintf(l->fail_why, sizeof(l->fail_why), "bad XML from the server: %s (%s)",
                 xmpp_stream_error_name(cond), text ? text : "");
        l->fail_send = (int)cond;
    }
}

static const struct xmlstream_cb xs_cbs = {xs_header, xs_stanza, xs_close, xs_error};

static void
conn_read_cb(struct conn *c, void *arg)
{
    struct local *l = arg;
    struct evbuffer *in = conn_input(c);
    struct evbuffer_iovec v;

    while (l->conn == c && l->xs != NULL && l->fail_why[0] == '\0' &&
           evbuffer_peek(in, -1, NULL, &v, 1) > 0) {
        ssize_t n = xmlstream_feed(l->xs, v.iov_base, v.iov_len);

        if (n < 0)
            break;
        evbuffer_drain(in, (size_t)n);
    }
    if (l->conn == c && l->fail_why[0] != '\0')
        link_fail(l, l->fail_why);
    else if (l->conn == c)
        inflight_trim(l);
}

static void
conn_event_cb(struct conn *c, enum conn_event ev, const char *reason, void *arg)
{
    struct local *l = arg;
    struct xmlstream_header h = {.to = l->name, .version = "", .ns = STANZA_NS_COMPONENT};
    char why[300];

    (void)c;
    switch (ev) {
    case CONN_EV_CONNECTED:
        if ((l->xs = xmlstream_new(&l->opt.limits, &xs_cbs, l)) == NULL ||
            xmlstream_write_header(conn_output(c), &h) == -1) {
            link_fail(l, "out of memory");
            return;
        }
        enter_state(l, LOCAL_HEADER);
        return;
    case CONN_EV_DRAINED:
        inflight_trim(l);
        queue_flush(l);
        return;
    case CONN_EV_TIMEOUT_IDLE:
    case CONN_EV_TLS_UP:
        return;
    case CONN_EV_EOF:
        link_fail(l, l->state == LOCAL_UP ? "the server closed the connection"
                                          : "the server closed the connection (handshake "
                                            "refused? check the component name and secret)");
        return;
    default:
        snprintf(why, sizeof(why), "%s: %s", conn_event_name(ev), reason);
        link_fail(l, why);
        return;
    }
}

static double
backoff_delay(struct local *l)
{
    double d = l->opt.backoff_min;
    unsigned i;

    for (i = 1; i < l->failures && d < l->opt.backoff_max; i++)
        d *= 2;
    if (d > l->opt.backoff_max)
        d = l->opt.backoff_max;
    /* Jitter in [d/2, d]: several proxies do not reconnect in step (herd after restart). */
    return d / 2 + d / 2 * (double)arc4random_uniform(1001) / 1000.0;
}

/*
 * Takes the link down: requeues what was not written, closes the connection (with a
 * stream error when we have one to say), schedules the reconnect.
 */
static void
link_fail(struct local *l, const char *why)
{
    bool was_up = l->state == LOCAL_UP;
    enum local_state old = l->state;
    struct timeval tv;
    double delay;
    char peer[SOCKADDR_STRLEN + 8];

    snprintf(peer, sizeof(peer), "%s", l->conn ? conn_peer(l->conn) : "-");
    evtimer_del(l->ev_handshake);
    evtimer_del(l->ev_ack);
    evtimer_del(l->ev_ack_timeout);
    evtimer_del(l->ev_keepalive);
    l->ping_out = false;
    if (l->conn != NULL) {
        struct evbuffer *out = conn_output(l->conn);

        inflight_requeue(l);
        evbuffer_drain(out, evbuffer_get_length(out));
        if (l->fail_send >= 0 && old >= LOCAL_HEADER)
            xmlstream_write_error(out, (enum xmpp_stream_error)l->fail_send, NULL);
        conn_close(l->conn);
        l->conn = NULL;
    }
    if (l->xs != NULL) {
        xmlstream_free(l->xs);
        l->xs = NULL;
    }
    l->failures++;
    delay = backoff_delay(l);
    if (was_up) {
        l->stats.disconnects++;
        log_warn("local: link down domain=%s server=%s reason=\"%s\" queued=%zu retry=%.1fs",
                 l->domain, peer, why, l->stats.queued, delay);
    } else if (old >= LOCAL_HEADER) {
        l->stats.handshake_failures++;
        if (l->fail_refused)
            log_err("local: handshake refused domain=%s component=%s server=%s reason=\"%s\": "
                    "check the component name and secret on both sides; retry=%.1fs",
                    l->domain, l->name, peer, why, delay);
        else
            log_warn("local: handshake failed domain=%s component=%s server=%s "
                     "reason=\"%s\" retry=%.1fs",
                     l->domain, l->name, peer, why, delay);
    } else {
        log_warn("local: connect failed domain=%s server=%s:%u reason=\"%s\" retry=%.1fs",
                 l->domain, l->host, l->opt.port, why, delay);
    }
    enter_state(l, LOCAL_DOWN);
    l->fail_why[0] = '\0';
    l->fail_refused = false;
    l->fail_send = -1;
    tv = tv_of(delay);
    evtimer_add(l->ev_retry, &tv);
    expire_arm(l);
    if (was_up && l->cbs.state)
        l->cbs.state(l->cbs.arg, l, false);
}

static void
handshake_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct local *l = arg;

    (void)fd;
    (void)what;
    link_fail(l, "no handshake answer in time");
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    link_connect(arg);
}

static void
link_connect(struct local *l)
{
    struct sockaddr_storage ss;
    socklen_t salen;
    struct conn_cbs cbs = {conn_read_cb, conn_event_cb, l};
    struct conn_timeouts to = {.connect_ms = (unsigned)(l->opt.connect_timeout * 1000),
                               .close_ms = 2000};
    struct timeval tv = tv_of(l->opt.connect_timeout + l->opt.handshake_timeout);
    char err[256];

    l->stats.connects++;
    enter_state(l, LOCAL_CONNECTING);
    (void)sockaddr_from_ip(l->host, l->opt.port, &ss, &salen); /* checked in local_new */
    l->conn = conn_connect(l->base, (struct sockaddr *)&ss, salen, &cbs, err, sizeof(err));
    if (l->conn == NULL) {
        link_fail(l, err);
        return;
    }
    conn_set_timeouts(l->conn, &to);
    /* Bounds the whole attempt: connect (conn's own timeout) plus the handshake. */
    evtimer_add(l->ev_handshake, &tv);
}

/* ---- life ----------------------------------------------------------------------------- */

static char *
dup_opt(const char *s, const char *what, bool *ok)
{
    char *d;

    if (s == NULL || s[0] == '\0') {
        log_err("local: option %s missing", what);
        *ok = false;
        return NULL;
    }
    if ((d = strdup(s)) == NULL)
        *ok = false;
    return d;
}

struct local *
local_new(struct event_base *base, const struct local_options *opt, const struct local_cbs *cbs)
{
    struct local *l;
    struct sockaddr_storage ss;
    socklen_t salen;
    struct timeval zero = {0, 0};
    bool ok = true;

    if (sockaddr_from_ip(opt->host ? opt->host : "", opt->port, &ss, &salen) == -1) {
        log_err("local: host %s is not a numeric IP address", opt->host ? opt->host : "-");
        return NULL;
    }
    if (cbs->stanza_take == NULL || cbs->bounce_take == NULL) {
        log_err("local: stanza_take and bounce_take callbacks are required");
        return NULL;
    }
    if ((l = calloc(1, sizeof(*l))) == NULL)
        return NULL;
    l->base = base;
    l->opt = *opt;
    l->cbs = *cbs;
    l->fail_send = -1;
    TAILQ_INIT(&l->queue);
    TAILQ_INIT(&l->inflight);
    l->name = dup_opt(opt->name, "name", &ok);
    l->domain = dup_opt(opt->domain, "domain", &ok);
    l->host = dup_opt(opt->host, "host", &ok);
    l->secret = dup_opt(opt->secret, "secret", &ok);
#define DEFAULT(f, v)                                                                              \
    if (l->opt.f <= 0)                                                                             \
    l->opt.f = (v)
    DEFAULT(connect_timeout, 10);
    DEFAULT(handshake_timeout, 10);
    DEFAULT(backoff_min, 0.5);
    DEFAULT(backoff_max, 30);
    DEFAULT(queue_stanzas, 10000);
    DEFAULT(queue_bytes, 16 * 1024 * 1024);
    DEFAULT(queue_max_wait, 60);
    DEFAULT(ack_timeout, 10);
    if (l->opt.keepalive_interval == 0)
        l->opt.keepalive_interval = 60;
#undef DEFAULT
    if (l->opt.backoff_max < l->opt.backoff_min)
        l->opt.backoff_max = l->opt.backoff_min;
    if (l->opt.limits.max_stanza_bytes == 0)
        xmlstream_limits_default(&l->opt.limits);
    l->opt.name = l->name;
    l->opt.domain = l->domain;
    l->opt.host = l->host;
    l->opt.secret = l->secret;
    l->ev_retry = evtimer_new(base, retry_cb, l);
    l->ev_handshake = evtimer_new(base, handshake_timeout_cb, l);
    l->ev_expire = evtimer_new(base, expire_cb, l);
    l->ev_trim = evtimer_new(base, trim_cb, l);
    l->ev_ack = evtimer_new(base, ack_cb, l);
    l->ev_ack_timeout = evtimer_new(base, ack_timeout_cb, l);
    l->ev_keepalive = event_new(base, -1, EV_PERSIST, keepalive_cb, l);
    l->acks = !opt->no_ack_pings;
    if (!ok || !l->ev_retry || !l->ev_handshake || !l->ev_expire || !l->ev_trim || !l->ev_ack ||
        !l->ev_ack_timeout || !l->ev_keepalive) {
        local_free(l);
        return NULL;
    }
    /* The first connect starts from the loop, like every retry. */
    evtimer_add(l->ev_retry, &zero);
    log_info("local: link for domain=%s component=%s server=%s:%u", l->domain, l->name, l->host,
             l->opt.port);
    return l;
}

void
local_free(struct local *l)
{
    struct qent *e;

    if (l == NULL)
        return;
    if (l->conn != NULL) {
        /* A graceful close writes what is in the output: inflight stanzas leave. */
        while ((e = TAILQ_FIRST(&l->inflight)) != NULL) {
            TAILQ_REMOVE(&l->inflight, e, entry);
            l->stats.inflight--;
            l->stats.delivered++;
            stanza_free(e->st);
            free(e);
        }
        if (l->state >= LOCAL_HEADER)
            xmlstream_write_close(conn_output(l->conn));
        conn_close(l->conn);
    }
    while ((e = TAILQ_FIRST(&l->queue)) != NULL) {
        queue_remove(l, e);
        l->stats.bounced_shutdown++;
        l->cbs.bounce_take(l->cbs.arg, l, e->st, XMPP_STANZA_ERR_REMOTE_SERVER_TIMEOUT,
                           "the federation proxy is shutting down");
        free(e);
    }
    if (l->xs != NULL)
        xmlstream_free(l->xs);
    if (l->ev_retry)
        event_free(l->ev_retry);
    if (l->ev_handshake)
        event_free(l->ev_handshake);
    if (l->ev_expire)
        event_free(l->ev_expire);
    if (l->ev_trim)
        event_free(l->ev_trim);
    if (l->ev_ack)
        event_free(l->ev_ack);
    if (l->ev_ack_timeout)
        event_free(l->ev_ack_timeout);
    if (l->ev_keepalive)
        event_free(l->ev_keepalive);
    free(l->name);
    free(l->domain);
    free(l->host);
    free(l->secret);
    free(l);
}

bool
local_is_up(const struct local *l)
{
    return l->state == LOCAL_UP;
}

const char *
local_domain(const struct local *l)
{
    return l->domain;
}

const struct local_stats *
local_stats(const struct local *l)
{
    return &l->stats;
}
