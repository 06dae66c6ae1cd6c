/*
 * The libunbound backend: a validating resolver. Queries run in libunbound's own thread
 * (ub_ctx_async(ctx, 1)); its answers arrive on ub_fd(), which we watch with a libevent
 * event and drain with ub_process(), so the loop never blocks. DNSSEC status comes from
 * result->secure and result->bogus (RFC 4035 §4.3); the raw answer packet goes to the
 * shared parser like c-ares' does.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <unbound.h>

#include "dns/backend.h"

struct unbound {
    struct ub_ctx *ctx;
    struct event *ev;
};

struct ub_query {
    struct unbound *be;
    int async_id;
    dns_backend_cb cb;
    void *arg;
};

static void
ub_readable(evutil_socket_t fd, short what, void *arg)
{
    struct unbound *be = arg;

    (void)fd;
    (void)what;
    ub_process(be->ctx);
}

/*
 * "addr:port" and "[v6]:port" (our notation) become unbound's "addr@port".
 * Returns 0, or -1 if the string is not of that form.
 */
static int
server_to_ub(const char *s, char *out, size_t outlen)
{
    const char *colon;
    size_t hostlen;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL)
            return -1;
        hostlen = (size_t)(close - s - 1);
        if (close[1] == '\0')
            return snprintf(out, outlen, "%.*s", (int)hostlen, s + 1) < (int)outlen ? 0 : -1;
        if (close[1] != ':')
            return -1;
        return snprintf(out, outlen, "%.*s@%s", (int)hostlen, s + 1, close + 2) < (int)outlen ? 0
                                                                                              : -1;
    }
    colon = strrchr(s, ':');
    if (colon == NULL || strchr(s, ':') != colon) /* no port, or a bare IPv6 address */
        return snprintf(out, outlen, "%s", s) < (int)outlen ? 0 : -1;
    hostlen = (size_t)(colon - s);
    return snprintf(out, outlen, "%.*s@%s", (int)hostlen, s, colon + 1) < (int)outlen ? 0 : -1;
}

static int
configure(struct unbound *be, const struct dns_options *opts, char *err, size_t errlen)
{
    int r;

    for (size_t i = 0; i < opts->nunbound_options; i++) {
        r = ub_ctx_set_option(be->ctx, opts->unbound_options[i].key,
                              opts->unbound_options[i].value);
        if (r != 0) {
            snprintf(err, errlen, "unbound option %s %s: %s", opts->unbound_options[i].key,
                     opts->unbound_options[i].value, ub_strerror(r));
            return -1;
        }
    }
    if (opts->nservers == 0) {
        r = ub_ctx_resolvconf(be->ctx, NULL);
        if (r != 0) {
            snprintf(err, errlen, "unbound: reading resolv.conf: %s", ub_strerror(r));
            return -1;
        }
    }
    for (size_t i = 0; i < opts->nservers; i++) {
        char addr[128];
        if (server_to_ub(opts->servers[i], addr, sizeof(addr)) == -1) {
            snprintf(err, errlen, "bad DNS server \"%s\" (want addr:port or [v6]:port)",
                     opts->servers[i]);
            return -1;
        }
        r = ub_ctx_set_fwd(be->ctx, addr);
        if (r != 0) {
            snprintf(err, errlen, "unbound forwarder %s: %s", addr, ub_strerror(r));
            return -1;
        }
    }
    if (opts->trust_anchor_file != NULL && opts->trust_anchor_file[0] != '\0') {
        /* libunbound reads the file only at the first query: check it now, at start-up,
         * where the operator sees the error. */
        FILE *fp = fopen(opts->trust_anchor_file, "r");
        if (fp == NULL) {
            snprintf(err, errlen, "unbound trust anchor %s: %s", opts->trust_anchor_file,
                     strerror(errno));
            return -1;
        }
        fclose(fp);
        r = ub_ctx_add_ta_file(be->ctx, opts->trust_anchor_file);
        if (r != 0) {
            snprintf(err, errlen, "unbound trust anchor %s: %s", opts->trust_anchor_file,
                     ub_strerror(r));
            return -1;
        }
    }
    r = ub_ctx_async(be->ctx, 1);
    if (r != 0) {
        snprintf(err, errlen, "unbound async: %s", ub_strerror(r));
        return -1;
    }
    return 0;
}

static void *
unbound_create(struct event_base *base, const struct dns_options *opts, char *err, size_t errlen)
{
    struct unbound *be = calloc(1, sizeof(*be));

    if (be == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    be->ctx = ub_ctx_create();
    if (be->ctx == NULL) {
        snprintf(err, errlen, "unbound: cannot create context");
        free(be);
        return NULL;
    }
    if (configure(be, opts, err, errlen) == -1)
        goto fail;
    be->ev = event_new(base, ub_fd(be->ctx), EV_READ | EV_PERSIST, ub_readable, be);
    if (be->ev == NULL || event_add(be->ev, NULL) == -1) {
        snprintf(err, errlen, "unbound: cannot watch its descriptor");
        goto fail;
    }
    return be;

fail:
    if (be->ev != NULL)
        event_free(be->ev);
    ub_ctx_delete(be->ctx);
    free(be);
    return NULL;
}

static void
unbound_destroy(void *arg)
{
    struct unbound *be = arg;

    event_free(be->ev);
    ub_ctx_delete(be->ctx);
    free(be);
}

static void
ub_done(void *arg, int err, struct ub_result *result)
{
    struct ub_query *q = arg;
    struct dns_backend_result r = {.sec = DNS_SEC_INSECURE};

    if (err != 0 || result == NULL) {
        r.status = DNS_ERROR;
        r.why = ub_strerror(err);
    } else if (result->answer_packet == NULL || result->answer_len <= 0) {
        r.status = DNS_SERVFAIL;
        r.why = "no answer packet";
    } else {
        r.status = DNS_OK;
        r.pkt = result->answer_packet;
        r.len = (size_t)result->answer_len;
        if (result->bogus) {
            r.sec = DNS_SEC_BOGUS;
            r.why = result->why_bogus != NULL ? result->why_bogus : "bogus";
        } else if (result->secure) {
            r.sec = DNS_SEC_SECURE;
        }
    }
    q->cb(&r, q->arg);
    if (result != NULL)
        ub_resolve_free(result);
    free(q);
}

static void *
unbound_query(void *arg, const char *name, uint16_t type, dns_backend_cb cb, void *cbarg)
{
    struct unbound *be = arg;
    struct ub_query *q = calloc(1, sizeof(*q));
    int r;

    if (q == NULL) {
        cb(&(struct dns_backend_result){.status = DNS_ERROR, .why = "out of memory"}, cbarg);
        return NULL;
    }
    q->be = be;
    q->cb = cb;
    q->arg = cbarg;
    r = ub_resolve_async(be->ctx, name, type, 1 /* IN */, q, ub_done, &q->async_id);
    if (r != 0) {
        cb(&(struct dns_backend_result){.status = DNS_ERROR, .why = ub_strerror(r)}, cbarg);
        free(q);
        return NULL;
    }
    return q;
}

static void
unbound_cancel(void *arg, void *qarg)
{
    struct unbound *be = arg;
    struct ub_query *q = qarg;

    /* After ub_cancel the callback is never called: the query is ours to free. */
    ub_cancel(be->ctx, q->async_id);
    free(q);
}

const struct dns_backend_ops dns_backend_unbound = {
    .name = "libunbound",
    .create = unbound_create,
    .destroy = unbound_destroy,
    .query = unbound_query,
    .cancel = unbound_cancel,
};
