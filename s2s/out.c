/*
 * Outbound s2s streams: the initiating entity's state machine (see out.h).
 */
#include "s2s/out.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "dialback/key.h"
#include "dialback/state.h"
#include "s2s/log.h"
#include "s2s/stats.h"

#define NS_TLS  "urn:ietf:params:xml:ns:xmpp-tls"
#define NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"

#define DOMAIN_BUF 256

enum out_state {
    OUT_CONNECTED,
    OUT_HEADER,
    OUT_STARTTLS,
    OUT_SASL,
    OUT_DIALBACK,
    OUT_READY,
    OUT_CLOSING,
    OUT_DEAD,
};

static const char *const state_names[] = {"CONNECTED", "HEADER", "STARTTLS", "SASL",
                                          "DIALBACK",  "READY",  "CLOSING",  "DEAD"};

/* A <db:verify/> waiting for TLS and features. */
struct pending_verify {
    struct pending_verify *next;
    char *local, *remote, *id, *key;
};

struct out_session {
    struct event_base *base;
    struct conn *conn;
    struct xmlstream *xs;
    struct out_opts opts;
    struct out_cbs cbs;
    enum out_state state;
    char local[DOMAIN_BUF], remote[DOMAIN_BUF];
    char peer_id[DOMAIN_BUF]; /* the stream id of the peer's current header */
    char srv_target[DOMAIN_BUF];
    char *secret;
    struct dns_tlsa *tlsa;
    bool want_starttls;
    bool sasl_done, sasl_failed;
    bool features_tls; /* features seen on a TLS stream (or TLS not needed) */
    bool reported;     /* cbs->failed ran */
    bool cert_valid;
    bool bidi; /* XEP-0288 requested: the peer may send stanzas back */
    struct dialback_pairs *pairs;
    struct pending_verify *verifies;
    struct peerauth auth;
    struct event *ev_auth, *ev_keepalive, *ev_free;
    struct s2s_stream st; /* registry entry for ctl, metrics, event log */
};

static size_t nsessions;

static void out_fail(struct out_session *s, enum xmpp_stanza_error cond, const char *why);

const char *
out_strstate(const struct out_session *s)
{
    return state_names[s->state];
}

static void
out_enter_state(struct out_session *s, enum out_state st)
{
    log_debug("out: local=%s remote=%s peer=%s %s -> %s", s->local, s->remote,
              s->conn ? conn_peer(s->conn) : "?", state_names[s->state], state_names[st]);
    s->state = st;
}

/* --- output ---------------------------------------------------------------------------- */

static void
send_header(struct out_session *s)
{
    struct xmlstream_header h = {0};

    h.from = s->local;
    h.to = s->remote;
    h.db = true;
    s->peer_id[0] = '\0';
    xmlstream_write_header(conn_output(s->conn), &h);
    out_enter_state(s, OUT_HEADER);
}

static void
send_db(struct out_session *s, const char *name, const char *from, const char *to, const char *id,
        const char *key)
{
    struct stanza *st = stanza_new(DIALBACK_NS, name);
    struct stanza_elem *r;

    if (st == NULL)
        fatal("stanza_new");
    r = stanza_root(st);
    stanza_elem_set_attr(st, r, NULL, "from", from);
    stanza_elem_set_attr(st, r, NULL, "to", to);
    if (id != NULL)
        stanza_elem_set_attr(st, r, NULL, "id", id);
    stanza_elem_add_text(st, r, key, strlen(key));
    stanza_serialize_flags(st, conn_output(s->conn), STANZA_NS_SERVER, STANZA_SER_DB_DECLARED);
    stanza_free(st);
}

/* --- teardown -------------------------------------------------------------------------- */

static void
verify_fail_cb(const char *local, const char *remote, const char *id, void *arg)
{
    struct out_session *s = arg;

    if (id != NULL && s->cbs.verify_result != NULL)
        s->cbs.verify_result(s, local, remote, id, DIALBACK_TYPE_ERROR,
                             DIALBACK_ERR_REMOTE_CONNECTION_FAILED, s->cbs.arg);
}

static void
free_pending(struct out_session *s, bool report)
{
    struct pending_verify *v;

    while ((v = s->verifies) != NULL) {
        s->verifies = v->next;
        if (report && s->cbs.verify_result != NULL)
            s->cbs.verify_result(s, v->local, v->remote, v->id, DIALBACK_TYPE_ERROR,
                                 DIALBACK_ERR_REMOTE_CONNECTION_FAILED, s->cbs.arg);
        free(v->local);
        free(v->remote);
        free(v->id);
        free(v->key);
        free(v);
    }
}

static void
free_cb(evutil_socket_t fd, short what, void *arg)
{
    struct out_session *s = arg;

    (void)fd;
    (void)what;
    /* Verifications still waiting get an error answer: their stream is gone. */
    dialback_pairs_fail_pending(s->pairs, verify_fail_cb, s);
    free_pending(s, true);
    if (s->cbs.closed != NULL)
        s->cbs.closed(s, s->cbs.arg);
    s2s_stream_unregister(&s->st);
    xmlstream_free(s->xs);
    dialback_pairs_free(s->pairs);
    event_free(s->ev_auth);
    event_free(s->ev_keepalive);
    event_free(s->ev_free);
    if (s->tlsa != NULL)
        for (size_t i = 0; i < s->opts.ntlsa; i++)
            free(s->tlsa[i].data);
    free(s->tlsa);
    if (s->opts.tls != NULL)
        tls_ctx_unref(s->opts.tls);
    free(s->secret);
    free(s);
    nsessions--;
}

static void
out_finish(struct out_session *s)
{
    struct timeval now = {0, 0};

    if (s->state == OUT_DEAD)
        return;
    out_enter_state(s, OUT_DEAD);
    event_del(s->ev_auth);
    event_del(s->ev_keepalive);
    if (s->conn != NULL) {
        s2s_stream_bytes(&s->st, conn_stats(s->conn));
        conn_close(s->conn);
    }
    s->conn = NULL;
    evtimer_add(s->ev_free, &now);
}

/* Before READY: report once, say goodbye politely, tear down. */
static void
out_fail(struct out_session *s, enum xmpp_stanza_error cond, const char *why)
{
    if (s->state == OUT_DEAD)
        return;
    log_info("out: failed local=%s remote=%s peer=%s state=%s error=%s reason=\"%s\"", s->local,
             s->remote, s->conn ? conn_peer(s->conn) : "?", out_strstate(s),
             xmpp_stanza_error_name(cond), why);
    s2s_stream_reason(&s->st, why);
    if (!s->reported && s->state != OUT_READY) {
        s->reported = true;
        if (s->cbs.failed != NULL)
            s->cbs.failed(s, cond, why, s->cbs.arg);
    }
    if (s->conn != NULL && s->state >= OUT_HEADER)
        xmlstream_write_close(conn_output(s->conn));
    out_finish(s);
}

void
out_close(struct out_session *s, const char *why)
{
    if (s->state == OUT_DEAD || s->state == OUT_CLOSING)
        return;
    log_info("out: closing local=%s remote=%s peer=%s reason=\"%s\"", s->local, s->remote,
             conn_peer(s->conn), why);
    s2s_stream_reason(&s->st, why);
    if (s->state != OUT_READY) {
        out_fail(s, XMPP_STANZA_ERR_REMOTE_SERVER_TIMEOUT, why);
        return;
    }
    xmlstream_write_close(conn_output(s->conn));
    out_finish(s);
}

/* --- authentication -------------------------------------------------------------------- */

static void
keepalive_cb(evutil_socket_t fd, short what, void *arg)
{
    struct out_session *s = arg;

    (void)fd;
    (void)what;
    /* RFC 6120 §4.6.1: whitespace keeps NATs and the peer's idle timer happy. */
    if (s->state == OUT_READY && evbuffer_get_length(conn_output(s->conn)) == 0)
        conn_write(s->conn, " ", 1);
}

static void
enter_ready(struct out_session *s, enum peerauth_method how)
{
    struct timeval tv;

    event_del(s->ev_auth);
    s->auth.method = how;
    out_enter_state(s, OUT_READY);
    s2s_stream_add_pair(&s->st, s->local, s->remote);
    log_info("out: authenticated local=%s remote=%s peer=%s method=%s tls=%s cert=%s%s", s->local,
             s->remote, conn_peer(s->conn), peerauth_method_name(how),
             s->auth.tls_version ? s->auth.tls_version : "none", peerauth_cert_name(s->auth.cert),
             s->auth.dane ? " dane=yes" : "");
    if (s->opts.keepalive_ms > 0) {
        tv.tv_sec = s->opts.keepalive_ms / 1000;
        tv.tv_usec = (s->opts.keepalive_ms % 1000) * 1000;
        event_add(s->ev_keepalive, &tv);
    }
    s->cbs.ready(s, s->cbs.arg);
}

static void
auth_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    out_fail(arg, XMPP_STANZA_ERR_REMOTE_SERVER_TIMEOUT, "not authenticated in time");
}

static void
flush_verifies(struct out_session *s)
{
    struct pending_verify *v, *next;

    for (v = s->verifies; v != NULL; v = next) {
        next = v->next;
        if (dialback_verify_request(s->pairs, v->local, v->remote, v->id) == DIALBACK_STEP_OK)
            send_db(s, "verify", v->local, v->remote, v->id, v->key);
        else if (s->cbs.verify_result != NULL)
            s->cbs.verify_result(s, v->local, v->remote, v->id, DIALBACK_TYPE_ERROR,
                                 DIALBACK_ERR_RESOURCE_CONSTRAINT, s->cbs.arg);
        free(v->local);
        free(v->remote);
        free(v->id);
        free(v->key);
        free(v);
    }
    s->verifies = NULL;
}

/* XEP-0220 §2.1.1: <db:result from=local to=remote>KEY</db:result>, the key made from the
 * stream id the peer gave us (XEP-0185). */
static void
start_dialback(struct out_session *s)
{
    char key[DIALBACK_KEY_BUFSIZE];

    if (!s->opts.dialback || s->secret == NULL) {
        out_fail(s, XMPP_STANZA_ERR_REMOTE_SERVER_NOT_FOUND,
                 "no usable authentication (SASL EXTERNAL refused, dialback disabled)");
        return;
    }
    if (!s->cert_valid && s->opts.level == CONF_SEC_SECURE) {
        out_fail(s, XMPP_STANZA_ERR_REMOTE_SERVER_NOT_FOUND,
                 "the domain requires a valid certificate");
        return;
    }
    if (dialback_key_make(s->secret, s->remote, s->local, s->peer_id, key) == -1) {
        out_fail(s, XMPP_STANZA_ERR_REMOTE_SERVER_NOT_FOUND, "no usable stream id for dialback");
        return;
    }
    dialback_pair_request(s->pairs, s->local, s->remote);
    send_db(s, "result", s->local, s->remote, NULL, key);
    out_enter_state(s, OUT_DIALBACK);
}

static bool
offers_external(const struct stanza_elem *features)
{
    struct stanza_elem *m = stanza_elem_child(features, NS_SASL, "mechanisms"), *e;

    if (m == NULL)
        return false;
    for (e = stanza_elem_first(m); e != NULL; e = stanza_elem_next(e)) {
        struct stanza_node *t = e->children;

        if (stanza_elem_is(e, NS_SASL, "mechanism") && t != NULL && t->type == STANZA_NODE_TEXT &&
            strcmp(((struct stanza_text *)t)->data, "EXTERNAL") == 0)
            return true;
    }
    return false;
}

static void
handle_features(struct out_session *s, struct stanza *st)
{
    struct stanza_elem *f = stanza_root(st);
    bool tls = conn_is_tls(s->conn);

    if (s->state != OUT_HEADER) {
        out_fail(s, XMPP_STANZA_ERR_REMOTE_SERVER_NOT_FOUND, "unexpected features");
        return;
    }
    if (!tls && stanza_elem_child(f, NS_TLS, "starttls") != NULL && s->opts.tls != NULL) {
        conn_printf(s->conn, "<starttls xmlns='" NS_TLS "'/>");
        out_enter_state(s, OUT_STARTTLS);
        return;
    }
    if (!tls && s->opts.require_tls) {
        out_fail(s, XMPP_STANZA_ERR_REMOTE_SERVER_NOT_FOUND,
                 "the peer does not offer STARTTLS and TLS is required");
        return;
    }
    s->features_tls = true;
    /* XEP-0288 §2: asked for right after TLS, before authentication. */
    if (tls && s->opts.bidi && !s->bidi && s->cert_valid && s->cbs.stanza_take != NULL &&
        stanza_elem_child(f, "urn:xmpp:features:bidi", "bidi") != NULL) {
        conn_printf(s->conn, "<bidi xmlns='urn:xmpp:bidi'/>");
        s->bidi = true;
        log_info("out: bidi requested local=%s remote=%s peer=%s", s->local, s->remote,
                 conn_peer(s->conn));
    }
    flush_verifies(s);
    if (s->opts.verify_only)
        return; /* stays in HEADER: this stream only carries db:verify */
    if (s->sasl_done) {
        enter_ready(s, PEERAUTH_SASL_EXTERNAL);
        return;
    }
    /* XEP-0178 §2: EXTERNAL when offered; a peer whose certificate we do not trust
     * should not be handed our identity on its word alone, so only with a valid one. */
    if (tls && !s->sasl_failed && s->cert_valid && offers_external(f)) {
        conn_printf(s->conn, "<auth xmlns='" NS_SASL "' mechanism='EXTERNAL'>=</auth>");
        out_enter_state(s, OUT_SASL);
        return;
    }
    start_dialback(s);
}

static void
handle_sasl(struct out_session *s, struct stanza *st)
{
    const char *name = stanza_name(st);

    if (s->state != OUT_SASL) {
        out_fail(s, XMPP_STANZA_ERR_REMOTE_SERVER_NOT_FOUND, "unexpected SASL element");
        return;
    }
    if (strcmp(name, "success") == 0) {
        s->sasl_done = true;
        /* RFC 6120 §6.4.6: restart the stream. */
        xmlstream_reset(s->xs);
        send_header(s);
        return;
    }
    log_info("out: SASL EXTERNAL refused local=%s remote=%s peer=%s: trying dialback", s->local,
             s->remote, conn_peer(s->conn));
    s->sasl_failed = true;
    start_dialback(s);
}

static void
db_attrs(struct stanza *st, struct dialback_attrs *a)
{
    memset(a, 0, sizeof(*a));
    a->from = stanza_attr(st, "from");
    a->to = stanza_attr(st, "to");
    a->id = stanza_attr(st, "id");
    a->type = stanza_attr(st, "type");
    a->text = stanza_elem_text(st, stanza_root(st), &a->textlen);
}

static enum dialback_cond
db_error_cond(struct stanza *st)
{
    struct stanza_elem *e = stanza_elem_child(stanza_root(st), NULL, "error"), *c;

    if (e == NULL || (c = stanza_elem_first(e)) == NULL)
        return DIALBACK_ERR_UNDEFINED;
    return dialback_cond_parse(c->name);
}

static enum dialback_state
verdict_state(enum dialback_type type)
{
    return type == DIALBACK_TYPE_VALID     ? DIALBACK_STATE_VALID
           : type == DIALBACK_TYPE_INVALID ? DIALBACK_STATE_INVALID
                                           : DIALBACK_STATE_ERROR;
}

/* The answer for a pair added with out_add_pair() (XEP-0220 §2.1.1 on a stream that is
 * up already: one connection carries several local domains). invalid condemns the
 * stream (XEP-0220 §2.1.1: nothing more is sent on it). */
static void
handle_extra_pair(struct out_session *s, const struct dialback_attrs *a, enum dialback_type type,
                  enum dialback_cond cond)
{
    if (type == DIALBACK_TYPE_ERROR &&
        dialback_pair_revoke(s->pairs, a->to, a->from) == DIALBACK_STEP_OK) {
        /* The peer withdrew a pair it had accepted (its policy changed, issue 7): nothing
         * more goes out for it here; the stream and its other pairs live on. */
        log_info("out: pair local=%s remote=%s on the stream of %s withdrawn by the peer: %s",
                 a->to, a->from, s->local, dialback_cond_name(cond));
        if (s->cbs.pair_result != NULL)
            s->cbs.pair_result(s, a->to, type, cond, s->cbs.arg);
        return;
    }
    if (dialback_pair_answer(s->pairs, a->to, a->from, verdict_state(type)) != DIALBACK_STEP_OK) {
        log_info("out: unsolicited db:result answer local=%s remote=%s: dropped", a->to, a->from);
        return;
    }
    log_info("out: pair local=%s remote=%s on the stream of %s: %s", a->to, a->from, s->local,
             dialback_type_name(type));
    if (type == DIALBACK_TYPE_VALID)
        s2s_stream_add_pair(&s->st, a->to, a->from);
    if (s->cbs.pair_result != NULL)
        s->cbs.pair_result(s, a->to, type, cond, s->cbs.arg);
    if (type == DIALBACK_TYPE_INVALID)
        out_close(s, "dialback key refused (invalid) for an added pair");
}

static void
handle_db(struct out_session *s, struct stanza *st, bool is_verify)
{
    struct dialback_attrs a;
    enum dialback_type type;
    enum dialback_cond cond;

    db_attrs(st, &a);
    if (s->bidi && a.type == NULL) {
        /* A request for the other direction (XEP-0288 with dialback): not supported;
         * the peer's own stream to us is the place for it. */
        log_info("out: dialback request on a bidi stream local=%s remote=%s: ignored", s->local,
                 s->remote);
        return;
    }
    cond = dialback_check_response(&a, is_verify, &type);
    if (cond != DIALBACK_OK) {
        out_fail(s, XMPP_STANZA_ERR_REMOTE_SERVER_NOT_FOUND, "malformed dialback response");
        return;
    }
    cond = type == DIALBACK_TYPE_ERROR ? db_error_cond(st) : DIALBACK_OK;
    if (is_verify) {
        if (dialback_verify_answer(s->pairs, a.to, a.from, a.id) != DIALBACK_STEP_OK) {
            log_info("out: unsolicited db:verify answer local=%s remote=%s: dropped", a.to, a.from);
            return;
        }
        s->cbs.verify_result(s, a.to, a.from, a.id, type, cond, s->cbs.arg);
        return;
    }
    if (s->state == OUT_READY && strcmp(a.to, s->local) != 0) {
        handle_extra_pair(s, &a, type, cond);
        return;
    }
    if (s->state != OUT_DIALBACK ||
        dialback_pair_answer(s->pairs, a.to, a.from,
                             type == DIALBACK_TYPE_VALID ? DIALBACK_STATE_VALID
                             : type == DIALBACK_TYPE_INVALID
                                 ? DIALBACK_STATE_INVALID
                                 : DIALBACK_STATE_ERROR) != DIALBACK_STEP_OK) {
        log_info("out: unsolicited db:result answer local=%s remote=%s: dropped", a.to, a.from);
        return;
    }
    if (type == DIALBACK_TYPE_VALID) {
        enter_ready(s, PEERAUTH_DIALBACK);
        return;
    }
    s2s_stats.auth_failed++;
    out_fail(s,
             cond == DIALBACK_ERR_REMOTE_SERVER_TIMEOUT ? XMPP_STANZA_ERR_REMOTE_SERVER_TIMEOUT
                                                        : XMPP_STANZA_ERR_REMOTE_SERVER_NOT_FOUND,
             type == DIALBACK_TYPE_INVALID ? "dialback key refused (invalid)"
                                           : "dialback refused with an error");
}

/* --- stream ---------------------------------------------------------------------------- */

static void
xs_header(void *arg, const struct xmlstream_header *h)
{
    struct out_session *s = arg;

    if (h->ns == NULL || strcmp(h->ns, STANZA_NS_SERVER) != 0) {
        out_fail(s, XMPP_STANZA_ERR_REMOTE_SERVER_NOT_FOUND, "not a server stream");
        return;
    }
    if (h->version == NULL || strcmp(h->version, "1.0") != 0) {
        out_fail(s, XMPP_STANZA_ERR_REMOTE_SERVER_NOT_FOUND, "peer does not speak version 1.0");
        return;
    }
    snprintf(s->peer_id, sizeof(s->peer_id), "%s", h->id != NULL ? h->id : "");
}

static void
handle_stream_error(struct out_session *s, struct stanza *st)
{
    struct stanza_elem *c = stanza_elem_first(stanza_root(st));
    const char *name = c != NULL ? c->name : "undefined-condition";
    char why[160];

    snprintf(why, sizeof(why), "stream error from the peer: %s", name);
    if (s->state == OUT_READY) {
        log_info("out: local=%s remote=%s %s", s->local, s->remote, why);
        out_finish(s);
        return;
    }
    out_fail(s,
             strcmp(name, "connection-timeout") == 0 ? XMPP_STANZA_ERR_REMOTE_SERVER_TIMEOUT
                                                     : XMPP_STANZA_ERR_REMOTE_SERVER_NOT_FOUND,
             why);
}

static bool
is_server_stanza(struct stanza *st)
{
    const char *n = stanza_name(st);

    return stanza_ns_eq(stanza_ns(st), STANZA_NS_SERVER) &&
           (strcmp(n, "message") == 0 || strcmp(n, "presence") == 0 || strcmp(n, "iq") == 0);
}

/* XEP-0288: a stanza coming back on our stream, authenticated by the peer's
 * certificate for the remote domain: only (remote -> local) is accepted. Takes st. */
static void
handle_bidi_stanza(struct out_session *s, struct stanza *st)
{
    char from[DOMAIN_BUF], to[DOMAIN_BUF];
    enum xmpp_stream_error err;

    if (s->state != OUT_READY)
        err = XMPP_STREAM_ERR_NOT_AUTHORIZED;
    else if (peerauth_jid_domain(stanza_attr(st, "from"), from, sizeof(from)) == -1 ||
             peerauth_jid_domain(stanza_attr(st, "to"), to, sizeof(to)) == -1)
        err = XMPP_STREAM_ERR_IMPROPER_ADDRESSING;
    else if (strcmp(to, s->local) != 0)
        err = XMPP_STREAM_ERR_HOST_UNKNOWN;
    else if (strcmp(from, s->remote) != 0)
        err = XMPP_STREAM_ERR_INVALID_FROM;
    else {
        s2s_stats.in_accepted++;
        s->st.stanzas_in++;
        s->st.last_active = s2s_now_coarse();
        s->cbs.stanza_take(s, st, s->cbs.arg);
        return;
    }
    log_info("out: bidi stanza refused local=%s remote=%s from=%s to=%s error=%s", s->local,
             s->remote, stanza_attr(st, "from"), stanza_attr(st, "to"),
             xmpp_stream_error_name(err));
    stanza_free(st);
    xmlstream_write_error(conn_output(s->conn), err, NULL);
    if (s->state == OUT_READY)
        out_finish(s);
    else
        out_fail(s, XMPP_STANZA_ERR_REMOTE_SERVER_NOT_FOUND, "protocol error by the peer");
}

static void
xs_stanza(void *arg, struct stanza *st)
{
    struct out_session *s = arg;
    const char *ns = stanza_ns(st), *name = stanza_name(st);

    if (s->state == OUT_DEAD || s->state == OUT_CLOSING)
        goto out;
    if (stanza_ns_eq(ns, XMPP_NS_STREAMS) && strcmp(name, "features") == 0)
        handle_features(s, st);
    else if (stanza_ns_eq(ns, XMPP_NS_STREAMS) && strcmp(name, "error") == 0)
        handle_stream_error(s, st);
    else if (stanza_ns_eq(ns, NS_TLS) && strcmp(name, "proceed") == 0 && s->state == OUT_STARTTLS) {
        s->want_starttls = true;
        xmlstream_reset(s->xs);
    } else if (stanza_ns_eq(ns, NS_TLS))
        out_fail(s, XMPP_STANZA_ERR_REMOTE_SERVER_NOT_FOUND, "STARTTLS refused by the peer");
    else if (stanza_ns_eq(ns, NS_SASL))
        handle_sasl(s, st);
    else if (stanza_ns_eq(ns, DIALBACK_NS) && strcmp(name, "result") == 0)
        handle_db(s, st, false);
    else if (stanza_ns_eq(ns, DIALBACK_NS) && strcmp(name, "verify") == 0)
        handle_db(s, st, true);
    else if (s->bidi && is_server_stanza(st)) {
        handle_bidi_stanza(s, st); /* takes st */
        return;
    } else {
        /* Without XEP-0288 bidi nothing else may come on our outbound stream. */
        log_info("out: local=%s remote=%s unexpected <%s/> on an outbound stream", s->local,
                 s->remote, name);
        xmlstream_write_error(conn_output(s->conn), XMPP_STREAM_ERR_UNSUPPORTED_STANZA_TYPE, NULL);
        if (s->state == OUT_READY)
            out_finish(s);
        else
            out_fail(s, XMPP_STANZA_ERR_REMOTE_SERVER_NOT_FOUND, "protocol error by the peer");
    }
out:
    stanza_free(st);
}

static void
xs_close(void *arg)
{
    struct out_session *s = arg;

    if (s->state != OUT_READY) {
        out_fail(s, XMPP_STANZA_ERR_REMOTE_SERVER_NOT_FOUND, "the peer closed the stream");
        return;
    }
    log_info("out: peer closed the stream local=%s remote=%s", s->local, s->remote);
    xmlstream_write_close(conn_output(s->conn));
    out_finish(s);
}

static void
xs_error(void *arg, enum xmpp_stream_error cond, const char *text)
{
    struct out_session *s = arg;

    log_info("out: local=%s remote=%s XML error %s: %s", s->local, s->remote,
             xmpp_stream_error_name(cond), text);
    xmlstream_write_error(conn_output(s->conn), cond, text);
    if (s->state == OUT_READY)
        out_finish(s);
    else
        out_fail(s, XMPP_STANZA_ERR_REMOTE_SERVER_NOT_FOUND, "XML error from the peer");
}

static const struct xmlstream_cb xs_cbs = {xs_header, xs_stanza, xs_close, xs_error};

/* RFC 7673 §4: secure TLSA records make DANE the check, before the handshake. */
static int
setup_dane(struct out_session *s)
{
    SSL *ssl = conn_ssl(s->conn);
    const char *base = s->opts.srv_target != NULL ? s->opts.srv_target : s->remote;
    int added = 0;

    if (s->opts.ntlsa == 0 || ssl == NULL)
        return 0;
    if (SSL_dane_enable(ssl, base) <= 0)
        return -1;
    /* Name checks for DANE-TA/PKIX against the domain and the SRV target (RFC 7673 §5). */
    SSL_add1_host(ssl, s->remote);
    for (size_t i = 0; i < s->opts.ntlsa; i++)
        if (SSL_dane_tlsa_add(ssl, s->tlsa[i].usage, s->tlsa[i].selector, s->tlsa[i].mtype,
                              s->tlsa[i].data, s->tlsa[i].len) > 0)
            added++;
    return added > 0 ? 0 : -1;
}

static void
start_tls(struct out_session *s)
{
    char err[256];

    s->want_starttls = false;
    evbuffer_drain(conn_input(s->conn), evbuffer_get_length(conn_input(s->conn)));
    if (conn_starttls(s->conn, s->opts.tls, TLS_ROLE_CLIENT, s->remote, s->local,
                      s->opts.direct_tls ? TLS_ALPN_XMPP_SERVER : NULL, err, sizeof(err)) == -1) {
        out_fail(s, XMPP_STANZA_ERR_REMOTE_SERVER_NOT_FOUND, err);
        return;
    }
    if (setup_dane(s) == -1)
        log_warn("out: local=%s remote=%s: DANE could not be set up; PKIX only", s->local,
                 s->remote);
}

/* The handshake is done: decide whether this certificate will do (RFC 6125, RFC 7673). */
static void
tls_up(struct out_session *s)
{
    const struct tls_info *ti = conn_tls_info(s->conn);
    SSL *ssl = conn_ssl(s->conn);
    struct certname_reference ref = {
        .domain = s->remote,
        .services = CERTNAME_SVC_XMPP_SERVER | CERTNAME_SVC_XMPPS_SERVER,
        .srv_target = s->opts.srv_target,
        .srv_secure = s->opts.srv_secure,
    };
    uint8_t usage = 255;
    bool dane = false;

    if (s->opts.ntlsa > 0 && ssl != NULL && SSL_get0_dane_authority(ssl, NULL, NULL) >= 0) {
        dane = true;
        SSL_get0_dane_tlsa(ssl, &usage, NULL, NULL, NULL, NULL);
    }
    peerauth_set_tls(&s->auth, ti);
    s->auth.dane = dane;
    s->auth.dnssec = s->opts.srv_secure;
    s->auth.cert = peerauth_cert_check(ti, &ref, dane, dane && usage == 3, &s->auth.matched);
    s->cert_valid = s->auth.cert == PEERAUTH_CERT_VALID;
    log_info("out: TLS local=%s remote=%s peer=%s tls=%s cipher=%s cert=%s%s%s%s", s->local,
             s->remote, conn_peer(s->conn), ti->version, ti->cipher,
             peerauth_cert_name(s->auth.cert), s->cert_valid ? " via=" : "",
             s->cert_valid ? certname_type_name(s->auth.matched) : "", dane ? " dane=yes" : "");
    if (!s->cert_valid && s->opts.ntlsa > 0) {
        /* RFC 7673 §4: with secure TLSA records, a mismatch is a failure. */
        out_fail(s, XMPP_STANZA_ERR_REMOTE_SERVER_NOT_FOUND, "DANE: no TLSA record matches");
        return;
    }
    if (!s->cert_valid && s->opts.level == CONF_SEC_SECURE) {
        out_fail(s, XMPP_STANZA_ERR_REMOTE_SERVER_NOT_FOUND,
                 "certificate not valid for the domain and a valid one is required");
        return;
    }
    send_header(s);
}

static void
conn_read_cb(struct conn *c, void *arg)
{
    struct out_session *s = arg;
    struct evbuffer *in = conn_input(c);

    while (s->state != OUT_DEAD && evbuffer_get_length(in) > 0) {
        size_t len = evbuffer_get_contiguous_space(in);
        ssize_t n = xmlstream_feed(s->xs, evbuffer_pullup(in, (ev_ssize_t)len), len);

        if (n < 0)
            break;
        evbuffer_drain(in, (size_t)n);
        if (s->want_starttls) {
            start_tls(s);
            break;
        }
    }
    if (s->state == OUT_DEAD)
        evbuffer_drain(in, evbuffer_get_length(in));
}

static void
conn_event_cb(struct conn *c, enum conn_event ev, const char *reason, void *arg)
{
    struct out_session *s = arg;

    (void)c;
    switch (ev) {
    case CONN_EV_TLS_UP:
        tls_up(s);
        return;
    case CONN_EV_DRAINED:
        if (s->state == OUT_READY && s->cbs.drained != NULL)
            s->cbs.drained(s, s->cbs.arg);
        return;
    case CONN_EV_CONNECTED:
        return;
    case CONN_EV_TIMEOUT_IDLE:
        if (s->state == OUT_READY)
            out_close(s, "idle");
        return;
    default:
        if (ev != CONN_EV_EOF) {
            s2s_stream_bytes(&s->st, conn_stats(s->conn));
            conn_free(s->conn);
            s->conn = NULL;
        }
        if (s->state == OUT_READY) {
            log_info("out: connection lost local=%s remote=%s event=%s reason=\"%s\"", s->local,
                     s->remote, conn_event_name(ev), reason);
            s2s_stream_reason(&s->st, ev == CONN_EV_EOF ? "peer closed" : reason);
            out_finish(s);
            return;
        }
        out_fail(s,
                 ev == CONN_EV_TIMEOUT_TLS || ev == CONN_EV_TIMEOUT_CONN
                     ? XMPP_STANZA_ERR_REMOTE_SERVER_TIMEOUT
                     : XMPP_STANZA_ERR_REMOTE_SERVER_NOT_FOUND,
                 reason);
    }
}

static const char *
st_state(const void *session)
{
    return out_strstate(session);
}

static const struct conn *
st_conn(const void *session)
{
    return ((const struct out_session *)session)->conn;
}

static void
st_close(void *session, const char *why)
{
    out_close(session, why);
}

static const struct s2s_stream_ops stream_ops = {st_state, st_conn, st_close};

struct out_session *
out_new(struct event_base *base, struct conn *c, const char *local, const char *remote,
        const struct out_opts *opts, const struct out_cbs *cbs)
{
    struct out_session *s;
    struct conn_cbs ccbs = {conn_read_cb, conn_event_cb, NULL};
    struct timeval tv;

    if ((s = calloc(1, sizeof(*s))) == NULL)
        fatal("calloc");
    nsessions++;
    s->base = base;
    s->conn = c;
    s->opts = *opts;
    s->cbs = *cbs;
    /* Ours until freed: a reload may drop the daemon's reference before STARTTLS. */
    if (s->opts.tls != NULL)
        tls_ctx_ref(s->opts.tls);
    snprintf(s->local, sizeof(s->local), "%s", local);
    snprintf(s->remote, sizeof(s->remote), "%s", remote);
    if (s->opts.xml.max_stanza_bytes == 0)
        xmlstream_limits_default(&s->opts.xml);
    if (s->opts.auth_timeout_ms == 0)
        s->opts.auth_timeout_ms = 30000;
    if (opts->dialback_secret != NULL && (s->secret = strdup(opts->dialback_secret)) == NULL)
        fatal("strdup");
    s->opts.dialback_secret = NULL;
    s->opts.srv_target = NULL;
    if (opts->srv_target != NULL) {
        snprintf(s->srv_target, sizeof(s->srv_target), "%s", opts->srv_target);
        s->opts.srv_target = s->srv_target;
    }
    if (opts->ntlsa > 0) {
        if ((s->tlsa = calloc(opts->ntlsa, sizeof(*s->tlsa))) == NULL)
            fatal("calloc");
        for (size_t i = 0; i < opts->ntlsa; i++) {
            s->tlsa[i] = opts->tlsa[i];
            if ((s->tlsa[i].data = malloc(opts->tlsa[i].len + 1u)) == NULL)
                fatal("malloc");
            memcpy(s->tlsa[i].data, opts->tlsa[i].data, opts->tlsa[i].len);
        }
    }
    s->opts.tlsa = s->tlsa;
    if ((s->xs = xmlstream_new(&s->opts.xml, &xs_cbs, s)) == NULL ||
        (s->pairs = dialback_pairs_new(NULL)) == NULL)
        fatal("out_new");
    s->ev_auth = evtimer_new(base, auth_timeout_cb, s);
    s->ev_keepalive = event_new(base, -1, EV_PERSIST, keepalive_cb, s);
    s->ev_free = evtimer_new(base, free_cb, s);
    s->state = OUT_CONNECTED;
    s2s_stats.out_streams++;
    s2s_stream_register(&s->st, true, s, &stream_ops, &s->auth, conn_peer(c));
    ccbs.arg = s;
    conn_set_cbs(c, &ccbs);
    conn_set_timeouts(c, &s->opts.timeouts);
    tv.tv_sec = s->opts.auth_timeout_ms / 1000;
    tv.tv_usec = (s->opts.auth_timeout_ms % 1000) * 1000;
    evtimer_add(s->ev_auth, &tv);
    log_debug("out: new stream local=%s remote=%s peer=%s direct_tls=%d", s->local, s->remote,
              conn_peer(c), opts->direct_tls);
    if (opts->direct_tls) {
        start_tls(s); /* TLS_UP then sends the header */
        return s;
    }
    send_header(s);
    return s;
}

int
out_send(struct out_session *s, struct stanza *st)
{
    if (s->state != OUT_READY) {
        stanza_free(st);
        return -1;
    }
    stanza_serialize_flags(st, conn_output(s->conn), STANZA_NS_SERVER, STANZA_SER_DB_DECLARED);
    stanza_free(st);
    s->st.stanzas_out++;
    s->st.last_active = s2s_now_coarse();
    return 0;
}

int
out_add_pair(struct out_session *s, const char *local)
{
    char key[DIALBACK_KEY_BUFSIZE];

    if (s->state != OUT_READY || !s->opts.dialback || s->secret == NULL || s->peer_id[0] == '\0' ||
        (!s->cert_valid && s->opts.level == CONF_SEC_SECURE) || strcmp(local, s->local) == 0)
        return -1;
    switch (dialback_pair_request(s->pairs, local, s->remote)) {
    case DIALBACK_STEP_OK:
        break;
    case DIALBACK_STEP_DUPLICATE:
        return 0; /* the answer to the first request serves both */
    default:
        return -1;
    }
    if (dialback_key_make(s->secret, s->remote, local, s->peer_id, key) == -1)
        return -1;
    send_db(s, "result", local, s->remote, NULL, key);
    return 0;
}

int
out_verify(struct out_session *s, const char *local, const char *remote, const char *id,
           const char *key)
{
    struct pending_verify *v, **tail;

    if (s->state == OUT_DEAD || s->state == OUT_CLOSING)
        return -1;
    if (s->features_tls) {
        if (dialback_verify_request(s->pairs, local, remote, id) != DIALBACK_STEP_OK)
            return -1;
        send_db(s, "verify", local, remote, id, key);
        return 0;
    }
    if ((v = calloc(1, sizeof(*v))) == NULL || (v->local = strdup(local)) == NULL ||
        (v->remote = strdup(remote)) == NULL || (v->id = strdup(id)) == NULL ||
        (v->key = strdup(key)) == NULL)
        fatal("out_verify");
    for (tail = &s->verifies; *tail != NULL; tail = &(*tail)->next)
        ;
    *tail = v;
    return 0;
}

bool
out_ready(const struct out_session *s)
{
    return s->state == OUT_READY;
}

bool
out_can_verify(const struct out_session *s)
{
    return s->features_tls && s->state != OUT_DEAD && s->state != OUT_CLOSING;
}

bool
out_output_full(const struct out_session *s)
{
    return s->conn != NULL && conn_output_full(s->conn);
}

const char *
out_local(const struct out_session *s)
{
    return s->local;
}

const char *
out_remote(const struct out_session *s)
{
    return s->remote;
}

const struct peerauth *
out_peerauth(const struct out_session *s)
{
    return &s->auth;
}

size_t
out_count(void)
{
    return nsessions;
}
