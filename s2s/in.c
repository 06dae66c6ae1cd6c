/*
 * Inbound s2s streams: the receiving entity's state machine (see in.h for the decisions).
 */
#include "s2s/in.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/evp.h>

#include "dialback/key.h"
#include "dialback/state.h"
#include "s2s/log.h"
#include "s2s/stats.h"

#define NS_TLS          "urn:ietf:params:xml:ns:xmpp-tls"
#define NS_SASL         "urn:ietf:params:xml:ns:xmpp-sasl"
#define NS_BIDI         "urn:xmpp:bidi"
#define NS_BIDI_FEATURE "urn:xmpp:features:bidi"

#define DOMAIN_BUF 256

enum in_state {
    IN_HEADER,
    IN_OPEN,
    IN_TLS,
    IN_CLOSING,
    IN_DEAD,
};

struct in_session {
    struct event_base *base;
    struct conn *conn;
    struct xmlstream *xs;
    struct in_opts opts;
    struct in_cbs cbs;
    enum in_state state;
    char id[PEERAUTH_STREAM_ID_LEN + 1];
    char hdr_to[DOMAIN_BUF];   /* the local domain the peer asked for ("" before) */
    char hdr_from[DOMAIN_BUF]; /* the peer's claimed domain, "" when absent */
    bool header_sent;          /* our header for the current stream is out */
    bool want_starttls;        /* <proceed/> sent: start TLS once the feed returns */
    bool sasl_done;            /* SASL EXTERNAL succeeded on this stream */
    unsigned sasl_failures;
    char sasl_local[DOMAIN_BUF], sasl_remote[DOMAIN_BUF];
    bool authenticated; /* at least one pair: the auth timer is off */
    bool bidi;          /* XEP-0288: the peer asked for a bidirectional stream */
    struct dialback_pairs *pairs;
    char *secret;
    struct peerauth auth;
    struct event *ev_auth;   /* authentication deadline */
    struct event *ev_free;   /* deferred teardown */
    struct event *ev_resume; /* in_pause_read(): read again */
    struct s2s_stream st;    /* registry entry for ctl, metrics, event log */
};

static size_t nsessions;

static void in_finish(struct in_session *s);
static void resume_cb(evutil_socket_t fd, short what, void *arg);
static void in_stream_error(struct in_session *s, enum xmpp_stream_error cond, const char *why);

static const char *const state_names[] = {"HEADER", "OPEN", "TLS", "CLOSING", "DEAD"};

const char *
in_strstate(const struct in_session *s)
{
    return state_names[s->state];
}

static void
in_enter_state(struct in_session *s, enum in_state st)
{
    log_debug("in: id=%s peer=%s %s -> %s", s->id, conn_peer(s->conn), state_names[s->state],
              state_names[st]);
    s->state = st;
}

static bool
hosted(struct in_session *s, const char *domain)
{
    return domain != NULL && *domain != '\0' && s->cbs.hosted(domain, s->cbs.arg);
}

static const struct tls_info *
tls_info_of(struct in_session *s)
{
    return conn_is_tls(s->conn) ? conn_tls_info(s->conn) : NULL;
}

/* --- output ---------------------------------------------------------------------------- */

static void
send_header(struct in_session *s)
{
    struct xmlstream_header h = {0};

    peerauth_stream_id(s->id);
    h.from = s->hdr_to[0] != '\0' ? s->hdr_to : NULL;
    h.to = s->hdr_from[0] != '\0' ? s->hdr_from : NULL;
    h.id = s->id;
    h.db = true;
    xmlstream_write_header(conn_output(s->conn), &h);
    s->header_sent = true;
}

/* Features for the current stream (RFC 6120 §4.3.2). Before TLS when TLS is required only
 * STARTTLS, so that nothing can be negotiated in the clear. */
static void
send_features(struct in_session *s)
{
    struct evbuffer *out = conn_output(s->conn);
    const struct tls_info *ti = tls_info_of(s);
    bool tls = conn_is_tls(s->conn);
    const char *claim = s->hdr_from[0] != '\0' ? s->hdr_from : NULL;

    evbuffer_add_printf(out, "<stream:features>");
    if (!tls && s->opts.tls != NULL)
        evbuffer_add_printf(out, "<starttls xmlns='" NS_TLS "'>%s</starttls>",
                            s->opts.require_tls ? "<required/>" : "");
    if ((tls || !s->opts.require_tls) && !s->sasl_done) {
        /* XEP-0178 §3: EXTERNAL only for a certificate good for the claimed domain (or,
         * without a claim, a trusted one: the authzid then names the domain). */
        bool ext = ti != NULL && ti->peer_cert && ti->chain_valid &&
                   (claim == NULL || peerauth_cert_valid_for(ti, claim));
        if (ext)
            evbuffer_add_printf(out, "<mechanisms xmlns='" NS_SASL
                                     "'><mechanism>EXTERNAL</mechanism></mechanisms>");
        if (s->opts.dialback)
            evbuffer_add_printf(out,
                                "<dialback xmlns='" DIALBACK_FEATURE_NS "'><errors/></dialback>");
    }
    /* XEP-0288 §2: offered on the encrypted stream (we send back only when our own
     * certificate is what the peer checked: the peer decides that, not us). */
    if (tls && s->opts.bidi && !s->bidi)
        evbuffer_add_printf(out, "<bidi xmlns='" NS_BIDI_FEATURE "'/>");
    evbuffer_add_printf(out, "</stream:features>");
}

/* A <db:result/> or <db:verify/> answer, built as a stanza so every value is escaped. */
static void
send_db(struct in_session *s, const char *name, const char *from, const char *to, const char *id,
        enum dialback_type type, enum dialback_cond cond)
{
    struct stanza *st = stanza_new(DIALBACK_NS, name);
    struct stanza_elem *r, *e;

    if (st == NULL)
        fatal("stanza_new");
    r = stanza_root(st);
    stanza_elem_set_attr(st, r, NULL, "from", from);
    stanza_elem_set_attr(st, r, NULL, "to", to);
    if (id != NULL)
        stanza_elem_set_attr(st, r, NULL, "id", id);
    stanza_elem_set_attr(st, r, NULL, "type", dialback_type_name(type));
    if (type == DIALBACK_TYPE_ERROR) {
        /* XEP-0220 §2.4: <error type='...'><condition xmlns='...stanzas'/></error> */
        e = stanza_elem_add(st, r, STANZA_NS_SERVER, "error");
        stanza_elem_set_attr(st, e, NULL, "type", dialback_cond_error_type(cond));
        stanza_elem_add(st, e, DIALBACK_STANZAS_NS, dialback_cond_name(cond));
    }
    stanza_serialize_flags(st, conn_output(s->conn), STANZA_NS_SERVER, STANZA_SER_DB_DECLARED);
    stanza_free(st);
}

/* --- teardown -------------------------------------------------------------------------- */

static void
free_cb(evutil_socket_t fd, short what, void *arg)
{
    struct in_session *s = arg;

    (void)fd;
    (void)what;
    if (s->cbs.closed != NULL)
        s->cbs.closed(s, s->cbs.arg);
    s2s_stream_unregister(&s->st);
    xmlstream_free(s->xs);
    dialback_pairs_free(s->pairs);
    event_free(s->ev_auth);
    event_free(s->ev_free);
    event_free(s->ev_resume);
    if (s->opts.tls != NULL)
        tls_ctx_unref(s->opts.tls);
    free(s->secret);
    free(s);
    nsessions--;
}

/* The conn is handed to conn_close() (graceful) and the session freed from the loop. */
static void
in_finish(struct in_session *s)
{
    struct timeval now = {0, 0};

    if (s->state == IN_DEAD)
        return;
    in_enter_state(s, IN_DEAD);
    event_del(s->ev_auth);
    event_del(s->ev_resume);
    if (s->conn != NULL) {
        s2s_stream_bytes(&s->st, conn_stats(s->conn));
        conn_close(s->conn);
    }
    s->conn = NULL;
    evtimer_add(s->ev_free, &now);
}

static void
in_stream_error(struct in_session *s, enum xmpp_stream_error cond, const char *why)
{
    if (s->state == IN_DEAD || s->state == IN_CLOSING)
        return;
    log_info("in: stream error id=%s peer=%s local=%s remote=%s error=%s reason=\"%s\"", s->id,
             conn_peer(s->conn), s->hdr_to, s->hdr_from, xmpp_stream_error_name(cond), why);
    if (!s->header_sent)
        send_header(s); /* RFC 6120 §4.9.1.3: a header first */
    xmlstream_write_error(conn_output(s->conn), cond, why);
    s2s_stats.in_rejected++;
    s2s_stream_reason(&s->st, xmpp_stream_error_name(cond));
    in_finish(s);
}

void
in_close(struct in_session *s, int cond, const char *why)
{
    if (s->state == IN_DEAD || s->state == IN_CLOSING)
        return;
    if (cond >= 0) {
        in_stream_error(s, (enum xmpp_stream_error)cond, why);
        return;
    }
    log_info("in: closing id=%s peer=%s reason=\"%s\"", s->id, conn_peer(s->conn), why);
    s2s_stream_reason(&s->st, why);
    if (!s->header_sent)
        send_header(s);
    xmlstream_write_close(conn_output(s->conn));
    in_finish(s);
}

/* --- authentication -------------------------------------------------------------------- */

/* Asks the creator whether (local, remote) may be authenticated by how (cbs->admit). */
static bool
admitted(struct in_session *s, const char *local, const char *remote, enum peerauth_method how,
         struct in_refusal *r)
{
    struct peerauth pa = {0};

    if (s->cbs.admit == NULL)
        return true;
    pa.method = how;
    peerauth_set_tls(&pa, tls_info_of(s));
    pa.cert = peerauth_cert_check(
        tls_info_of(s),
        &(struct certname_reference){
            .domain = remote, .services = CERTNAME_SVC_XMPP_SERVER | CERTNAME_SVC_XMPPS_SERVER},
        false, false, &pa.matched);
    r->stream_error = XMPP_STREAM_ERR_POLICY_VIOLATION;
    r->dialback_error = DIALBACK_ERR_POLICY_VIOLATION;
    r->text[0] = '\0';
    if (s->cbs.admit(s, local, remote, &pa, r, s->cbs.arg))
        return true;
    log_info("in: refused by policy id=%s peer=%s local=%s remote=%s method=%s reason=\"%s\"",
             s->id, conn_peer(s->conn), local, remote, peerauth_method_name(how), r->text);
    return false;
}

static void
mark_authenticated(struct in_session *s, const char *local, const char *remote,
                   enum peerauth_method how)
{
    if (!s->authenticated) {
        s->authenticated = true;
        event_del(s->ev_auth);
        s->auth.method = how;
        peerauth_set_tls(&s->auth, tls_info_of(s));
        s->auth.cert = peerauth_cert_check(
            tls_info_of(s),
            &(struct certname_reference){
                .domain = remote, .services = CERTNAME_SVC_XMPP_SERVER | CERTNAME_SVC_XMPPS_SERVER},
            false, false, &s->auth.matched);
    }
    if (how == PEERAUTH_SASL_EXTERNAL)
        s2s_stats.auth_sasl++;
    else
        s2s_stats.auth_dialback++;
    log_info("in: authenticated id=%s peer=%s local=%s remote=%s method=%s tls=%s", s->id,
             conn_peer(s->conn), local, remote, peerauth_method_name(how),
             s->auth.tls_version ? s->auth.tls_version : "none");
    s2s_stream_add_pair(&s->st, local, remote);
    if (s->cbs.authenticated != NULL)
        s->cbs.authenticated(s, local, remote, how, s->cbs.arg);
}

static void
auth_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct in_session *s = arg;

    (void)fd;
    (void)what;
    s2s_stats.auth_failed++;
    in_stream_error(s, XMPP_STREAM_ERR_CONNECTION_TIMEOUT, "not authenticated in time");
}

static void
sasl_failure(struct in_session *s, const char *cond, const char *why)
{
    log_info("in: sasl failure id=%s peer=%s claim=%s condition=%s reason=\"%s\"", s->id,
             conn_peer(s->conn), s->hdr_from, cond, why);
    evbuffer_add_printf(conn_output(s->conn), "<failure xmlns='" NS_SASL "'><%s/></failure>", cond);
    /* RFC 6120 §6.4.5: the peer may retry; a bound keeps it from trying forever. */
    if (++s->sasl_failures >= 3)
        in_stream_error(s, XMPP_STREAM_ERR_POLICY_VIOLATION, "too many SASL failures");
}

/* XEP-0178 §3: <auth mechanism='EXTERNAL'>=</auth> (identity = header 'from') or the
 * base64 authzid; the certificate must be valid for that identity. */
static void
handle_sasl_auth(struct in_session *s, struct stanza *st)
{
    const char *mech = stanza_attr(st, "mechanism"), *text, *identity;
    struct in_refusal refusal;
    char authzid[DOMAIN_BUF * 2], norm[CERTNAME_BUFSIZE];
    size_t len;
    int n;

    if (!conn_is_tls(s->conn) || s->sasl_done) {
        in_stream_error(s, XMPP_STREAM_ERR_POLICY_VIOLATION, "SASL was not offered");
        return;
    }
    if (mech == NULL || strcmp(mech, "EXTERNAL") != 0) {
        sasl_failure(s, "invalid-mechanism", "only EXTERNAL is offered");
        return;
    }
    text = stanza_elem_text(st, stanza_root(st), &len);
    if (text == NULL || len == 0 || (len == 1 && text[0] == '=')) {
        identity = s->hdr_from[0] != '\0' ? s->hdr_from : NULL;
    } else {
        if (len >= sizeof(authzid) * 3 / 4 ||
            (n = EVP_DecodeBlock((unsigned char *)authzid, (const unsigned char *)text, (int)len)) <
                0) {
            sasl_failure(s, "incorrect-encoding", "authzid is not base64");
            return;
        }
        /* EVP_DecodeBlock counts the padding's zero bytes: trim them. */
        while (n > 0 && authzid[n - 1] == '\0')
            n--;
        authzid[n] = '\0';
        if ((size_t)n != strlen(authzid) ||
            certname_domain_normalize(authzid, norm, sizeof(norm)) == -1) {
            sasl_failure(s, "invalid-authzid", "authzid is not a domain");
            return;
        }
        if (s->hdr_from[0] != '\0' && strcmp(norm, s->hdr_from) != 0) {
            sasl_failure(s, "invalid-authzid", "authzid differs from the stream's 'from'");
            return;
        }
        identity = norm;
    }
    if (identity == NULL) {
        sasl_failure(s, "invalid-authzid", "no identity: neither 'from' nor authzid");
        return;
    }
    if (!peerauth_cert_valid_for(tls_info_of(s), identity)) {
        sasl_failure(s, "not-authorized", "certificate not valid for the identity");
        return;
    }
    if (!admitted(s, s->hdr_to, identity, PEERAUTH_SASL_EXTERNAL, &refusal)) {
        in_stream_error(s, (enum xmpp_stream_error)refusal.stream_error, refusal.text);
        return;
    }
    snprintf(s->sasl_local, sizeof(s->sasl_local), "%s", s->hdr_to);
    snprintf(s->sasl_remote, sizeof(s->sasl_remote), "%s", identity);
    s->sasl_done = true;
    evbuffer_add_printf(conn_output(s->conn), "<success xmlns='" NS_SASL "'/>");
    mark_authenticated(s, s->sasl_local, s->sasl_remote, PEERAUTH_SASL_EXTERNAL);
    /* RFC 6120 §6.4.6: the stream restarts; what follows <auth/> is the new stream. */
    s->header_sent = false;
    xmlstream_reset(s->xs);
    in_enter_state(s, IN_HEADER);
}

static void
handle_starttls(struct in_session *s)
{
    if (conn_is_tls(s->conn) || s->opts.tls == NULL) {
        in_stream_error(s, XMPP_STREAM_ERR_POLICY_VIOLATION, "STARTTLS was not offered");
        return;
    }
    evbuffer_add_printf(conn_output(s->conn), "<proceed xmlns='" NS_TLS "'/>");
    s->want_starttls = true;
    s->header_sent = false;
    xmlstream_reset(s->xs);
    in_enter_state(s, IN_TLS);
}

/* --- dialback -------------------------------------------------------------------------- */

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

/* Dialback needs TLS first, unless TLS is optional and the domain is insecure. */
static bool
db_transport_ok(struct in_session *s, const char *remote)
{
    if (conn_is_tls(s->conn))
        return true;
    if (s->opts.require_tls)
        return false;
    return s->cbs.security == NULL || s->cbs.security(remote, s->cbs.arg) == CONF_SEC_INSECURE;
}

/* Receiving role, XEP-0220 §2.2.1. */
static void
handle_db_result(struct in_session *s, struct stanza *st)
{
    struct dialback_attrs a;
    const char *key;
    char keybuf[DIALBACK_MAX_KEY + 1], local[CERTNAME_BUFSIZE], remote[CERTNAME_BUFSIZE];
    size_t keylen;
    enum dialback_cond cond;
    enum conf_sec_level level;
    bool cert_ok;

    db_attrs(st, &a);
    cond = dialback_check_result_request(&a, hosted(s, a.to), &key, &keylen);
    if (dialback_cond_is_stream_error(cond)) {
        in_stream_error(s, xmpp_stream_error_parse(dialback_cond_name(cond)), "bad db:result");
        return;
    }
    if (cond != DIALBACK_OK) {
        send_db(s, "result", a.to, a.from, NULL, DIALBACK_TYPE_ERROR, cond);
        return;
    }
    if (certname_domain_normalize(a.from, remote, sizeof(remote)) == -1 ||
        certname_domain_normalize(a.to, local, sizeof(local)) == -1) {
        in_stream_error(s, XMPP_STREAM_ERR_IMPROPER_ADDRESSING, "bad db:result domains");
        return;
    }
    if (!s->opts.dialback) {
        send_db(s, "result", local, remote, NULL, DIALBACK_TYPE_ERROR,
                DIALBACK_ERR_POLICY_VIOLATION);
        return;
    }
    if (!db_transport_ok(s, remote)) {
        in_stream_error(s, XMPP_STREAM_ERR_POLICY_VIOLATION, "dialback before TLS");
        return;
    }
    switch (dialback_pair_request(s->pairs, local, remote)) {
    case DIALBACK_STEP_OK:
        break;
    case DIALBACK_STEP_DUPLICATE:
        return; /* the first request's answer will come */
    case DIALBACK_STEP_ALREADY_VALID:
        send_db(s, "result", local, remote, NULL, DIALBACK_TYPE_VALID, DIALBACK_OK);
        return;
    case DIALBACK_STEP_LIMIT:
        send_db(s, "result", local, remote, NULL, DIALBACK_TYPE_ERROR,
                DIALBACK_ERR_RESOURCE_CONSTRAINT);
        return;
    default:
        in_close(s, -1, "dialback on a condemned stream");
        return;
    }
    cert_ok = peerauth_cert_valid_for(tls_info_of(s), remote);
    level = s->cbs.security != NULL ? s->cbs.security(remote, s->cbs.arg) : CONF_SEC_DEFAULT;
    if (cert_ok) {
        /* XEP-0344 §2.4: the certificate already proves the domain. */
        in_dialback_verdict(s, local, remote, DIALBACK_TYPE_VALID, DIALBACK_OK);
        return;
    }
    if (level == CONF_SEC_SECURE) {
        in_dialback_verdict(s, local, remote, DIALBACK_TYPE_ERROR, DIALBACK_ERR_NOT_AUTHORIZED);
        return;
    }
    memcpy(keybuf, key, keylen);
    keybuf[keylen] = '\0';
    log_debug("in: dialback verify id=%s local=%s remote=%s", s->id, local, remote);
    s->cbs.dialback_verify(s, local, remote, s->id, keybuf, s->cbs.arg);
}

/* Authoritative role, XEP-0220 §2.2.2 (answered on any stream). */
static void
handle_db_verify(struct in_session *s, struct stanza *st)
{
    struct dialback_attrs a;
    const char *key;
    size_t keylen;
    enum dialback_cond cond;
    bool ok;

    db_attrs(st, &a);
    cond = dialback_check_verify_request(&a, hosted(s, a.to), &key, &keylen);
    if (dialback_cond_is_stream_error(cond)) {
        in_stream_error(s, xmpp_stream_error_parse(dialback_cond_name(cond)), "bad db:verify");
        return;
    }
    if (cond == DIALBACK_OK && !s->opts.dialback)
        cond = DIALBACK_ERR_POLICY_VIOLATION;
    if (cond != DIALBACK_OK) {
        send_db(s, "verify", a.to, a.from, a.id, DIALBACK_TYPE_ERROR, cond);
        return;
    }
    if (!db_transport_ok(s, a.from)) {
        in_stream_error(s, XMPP_STREAM_ERR_POLICY_VIOLATION, "dialback before TLS");
        return;
    }
    ok = s->secret != NULL && dialback_key_check(s->secret, a.from, a.to, a.id, key, keylen);
    log_info("in: dialback authoritative id=%s peer=%s receiving=%s originating=%s "
             "stream=%s result=%s",
             s->id, conn_peer(s->conn), a.from, a.to, a.id, ok ? "valid" : "invalid");
    send_db(s, "verify", a.to, a.from, a.id, ok ? DIALBACK_TYPE_VALID : DIALBACK_TYPE_INVALID,
            DIALBACK_OK);
}

void
in_dialback_verdict(struct in_session *s, const char *local, const char *remote,
                    enum dialback_type verdict, enum dialback_cond cond)
{
    enum dialback_state ds;
    enum peerauth_method how;
    struct in_refusal refusal;

    if (s->state != IN_OPEN && s->state != IN_HEADER)
        return;
    how = peerauth_cert_valid_for(tls_info_of(s), remote) ? PEERAUTH_CERT_DIALBACK
                                                          : PEERAUTH_DIALBACK;
    if (verdict == DIALBACK_TYPE_VALID && !admitted(s, local, remote, how, &refusal)) {
        /* Only this pair is refused; the stream and its other pairs live on. */
        verdict = DIALBACK_TYPE_ERROR;
        cond = refusal.dialback_error;
    }
    ds = verdict == DIALBACK_TYPE_VALID     ? DIALBACK_STATE_VALID
         : verdict == DIALBACK_TYPE_INVALID ? DIALBACK_STATE_INVALID
                                            : DIALBACK_STATE_ERROR;
    if (dialback_pair_answer(s->pairs, local, remote, ds) != DIALBACK_STEP_OK)
        return; /* not pending: a late or duplicate answer */
    log_info("in: dialback id=%s peer=%s local=%s remote=%s result=%s%s%s", s->id,
             conn_peer(s->conn), local, remote, dialback_state_name(ds),
             cond != DIALBACK_OK ? " error=" : "", dialback_cond_name(cond));
    send_db(s, "result", local, remote, NULL, verdict, cond);
    if (ds == DIALBACK_STATE_VALID) {
        mark_authenticated(s, local, remote, how);
        return;
    }
    if (ds == DIALBACK_STATE_INVALID) {
        /* XEP-0220 §2.2.1: a spoofing attempt; the stream is closed. */
        s2s_stats.auth_failed++;
        in_close(s, -1, "dialback key invalid");
    }
}

int
in_pair_refuse(struct in_session *s, const char *local, const char *remote, enum dialback_cond cond)
{
    if (s->state != IN_OPEN && s->state != IN_HEADER)
        return -1;
    if (dialback_pair_revoke(s->pairs, local, remote) != DIALBACK_STEP_OK)
        return -1;
    log_info("in: dialback id=%s peer=%s local=%s remote=%s withdrawn error=%s", s->id,
             conn_peer(s->conn), local, remote, dialback_cond_name(cond));
    send_db(s, "result", local, remote, NULL, DIALBACK_TYPE_ERROR, cond);
    return 0;
}

/* --- stanzas --------------------------------------------------------------------------- */

bool
in_authorized(const struct in_session *s, const char *local, const char *remote)
{
    if (s->sasl_done && strcmp(local, s->sasl_local) == 0 && strcmp(remote, s->sasl_remote) == 0)
        return true;
    return dialback_pair_valid(s->pairs, local, remote);
}

static bool
is_stanza(struct stanza *st)
{
    const char *n = stanza_name(st);

    return stanza_ns_eq(stanza_ns(st), STANZA_NS_SERVER) &&
           (strcmp(n, "message") == 0 || strcmp(n, "presence") == 0 || strcmp(n, "iq") == 0);
}

/* RFC 6120 §8.1.1.1, §13.5 and DESIGN invariant 2. Takes st. */
static void
handle_stanza(struct in_session *s, struct stanza *st)
{
    char from[DOMAIN_BUF], to[DOMAIN_BUF];

    if (!s->authenticated) {
        in_stream_error(s, XMPP_STREAM_ERR_NOT_AUTHORIZED, "stanza before authentication");
        goto drop;
    }
    if (peerauth_jid_domain(stanza_attr(st, "from"), from, sizeof(from)) == -1 ||
        peerauth_jid_domain(stanza_attr(st, "to"), to, sizeof(to)) == -1) {
        in_stream_error(s, XMPP_STREAM_ERR_IMPROPER_ADDRESSING, "stanza without from or to");
        goto drop;
    }
    if (!hosted(s, to)) {
        in_stream_error(s, XMPP_STREAM_ERR_HOST_UNKNOWN, "stanza for a domain we do not host");
        goto drop;
    }
    if (!in_authorized(s, to, from) &&
        dialback_pair_state(s->pairs, to, from) == DIALBACK_STATE_ERROR) {
        /* A pair refused on this stream (in_pair_refuse, or a failed dialback): the peer
         * was told with a db:result error and may still have stanzas in flight; its other
         * pairs must not pay for them with the stream (XEP-0220 §2.4). */
        log_info("in: id=%s peer=%s dropped a stanza from=%s to=%s: pair not authenticated", s->id,
                 conn_peer(s->conn), from, to);
        s2s_stats.policy_dropped++;
        goto drop;
    }
    if (!in_authorized(s, to, from)) {
        in_stream_error(s, XMPP_STREAM_ERR_INVALID_FROM, "from domain not authenticated here");
        goto drop;
    }
    s2s_stats.in_accepted++;
    s->st.stanzas_in++;
    s->st.last_active = s2s_now_coarse();
    s->cbs.stanza_take(s, st, s->cbs.arg);
    return;
drop:
    stanza_free(st);
}

static void
xs_stanza(void *arg, struct stanza *st)
{
    struct in_session *s = arg;
    const char *ns = stanza_ns(st), *name = stanza_name(st);

    if (s->state != IN_OPEN)
        goto drop;
    if (!s->authenticated && stanza_wire_bytes(st) > s->opts.unauth_stanza_bytes) {
        in_stream_error(s, XMPP_STREAM_ERR_POLICY_VIOLATION,
                        "element too large before authentication");
        goto drop;
    }
    if (stanza_ns_eq(ns, NS_TLS) && strcmp(name, "starttls") == 0) {
        handle_starttls(s);
        goto drop;
    }
    if (!conn_is_tls(s->conn) && s->opts.require_tls && !is_stanza(st)) {
        in_stream_error(s, XMPP_STREAM_ERR_POLICY_VIOLATION, "TLS is required");
        goto drop;
    }
    if (stanza_ns_eq(ns, NS_SASL) && strcmp(name, "auth") == 0) {
        handle_sasl_auth(s, st);
        goto drop;
    }
    if (stanza_ns_eq(ns, DIALBACK_NS) && strcmp(name, "result") == 0) {
        handle_db_result(s, st);
        goto drop;
    }
    if (stanza_ns_eq(ns, DIALBACK_NS) && strcmp(name, "verify") == 0) {
        handle_db_verify(s, st);
        goto drop;
    }
    if (stanza_ns_eq(ns, NS_BIDI) && strcmp(name, "bidi") == 0) {
        if (!s->opts.bidi || !conn_is_tls(s->conn)) {
            in_stream_error(s, XMPP_STREAM_ERR_POLICY_VIOLATION, "bidi was not offered");
            goto drop;
        }
        log_debug("in: id=%s peer=%s asks for a bidirectional stream", s->id, conn_peer(s->conn));
        s->bidi = true;
        goto drop;
    }
    if (!is_stanza(st)) {
        in_stream_error(s,
                        s->authenticated ? XMPP_STREAM_ERR_UNSUPPORTED_STANZA_TYPE
                                         : XMPP_STREAM_ERR_NOT_AUTHORIZED,
                        "unexpected element");
        goto drop;
    }
    handle_stanza(s, st);
    return;
drop:
    stanza_free(st);
}

/* --- stream ---------------------------------------------------------------------------- */

static int
copy_domain(const char *in, char *out, size_t outsize)
{
    if (in == NULL) {
        out[0] = '\0';
        return 0;
    }
    return certname_domain_normalize(in, out, outsize);
}

static void
xs_header(void *arg, const struct xmlstream_header *h)
{
    struct in_session *s = arg;
    char to[DOMAIN_BUF];

    if (s->state != IN_HEADER)
        return;
    if (h->ns == NULL || strcmp(h->ns, STANZA_NS_SERVER) != 0) {
        in_stream_error(s, XMPP_STREAM_ERR_INVALID_NAMESPACE, "not a server stream");
        return;
    }
    if (copy_domain(h->from, s->hdr_from, sizeof(s->hdr_from)) == -1) {
        s->hdr_from[0] = '\0';
        in_stream_error(s, XMPP_STREAM_ERR_INVALID_FROM, "malformed 'from' in the header");
        return;
    }
    if (h->to == NULL || copy_domain(h->to, to, sizeof(to)) == -1 || !hosted(s, to)) {
        in_stream_error(s, XMPP_STREAM_ERR_HOST_UNKNOWN, "'to' is not a domain we host");
        return;
    }
    /* After a restart the peer talks to the same domain (RFC 6120 §4.3.3). */
    if (s->hdr_to[0] != '\0' && strcmp(s->hdr_to, to) != 0) {
        in_stream_error(s, XMPP_STREAM_ERR_HOST_UNKNOWN, "'to' changed across a restart");
        return;
    }
    snprintf(s->hdr_to, sizeof(s->hdr_to), "%s", to);
    send_header(s);
    if (h->version == NULL || strcmp(h->version, "1.0") != 0) {
        in_stream_error(s, XMPP_STREAM_ERR_UNSUPPORTED_VERSION, "version 1.0 is required");
        return;
    }
    send_features(s);
    in_enter_state(s, IN_OPEN);
}

static void
xs_close(void *arg)
{
    struct in_session *s = arg;

    /* After our stream error in the same read (the conn is gone) there is no one to
     * answer. */
    if (s->state == IN_DEAD)
        return;
    log_info("in: peer closed the stream id=%s peer=%s", s->id, conn_peer(s->conn));
    if (!s->header_sent)
        send_header(s);
    xmlstream_write_close(conn_output(s->conn));
    in_finish(s);
}

static void
xs_error(void *arg, enum xmpp_stream_error cond, const char *text)
{
    in_stream_error(arg, cond, text);
}

static const struct xmlstream_cb xs_cbs = {xs_header, xs_stanza, xs_close, xs_error};

static void
start_tls(struct in_session *s)
{
    struct evbuffer *in = conn_input(s->conn);
    char err[256];

    s->want_starttls = false;
    /* RFC 6120 §5.4.3.3: nothing sent before the handshake may be kept. */
    if (evbuffer_get_length(in) > 0) {
        log_warn("in: id=%s peer=%s sent %zu bytes after <starttls/>: dropped", s->id,
                 conn_peer(s->conn), evbuffer_get_length(in));
        evbuffer_drain(in, evbuffer_get_length(in));
    }
    if (conn_starttls(s->conn, s->opts.tls, TLS_ROLE_SERVER, NULL, NULL, NULL, err, sizeof(err)) ==
        -1) {
        log_warn("in: id=%s peer=%s cannot start TLS: %s", s->id, conn_peer(s->conn), err);
        in_finish(s);
    }
}

static void
conn_read_cb(struct conn *c, void *arg)
{
    struct in_session *s = arg;
    struct evbuffer *in = conn_input(c);

    while (s->state != IN_DEAD && s->state != IN_CLOSING && evbuffer_get_length(in) > 0) {
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
    if (s->state == IN_DEAD || s->state == IN_CLOSING)
        evbuffer_drain(in, evbuffer_get_length(in));
}

static void
conn_event_cb(struct conn *c, enum conn_event ev, const char *reason, void *arg)
{
    struct in_session *s = arg;

    (void)c;
    switch (ev) {
    case CONN_EV_TLS_UP: {
        const struct tls_info *ti = conn_tls_info(s->conn);
        log_debug("in: id=%s peer=%s tls=%s cipher=%s cert=%s chain=%s", s->id, conn_peer(s->conn),
                  ti->version, ti->cipher, ti->peer_cert ? "yes" : "no",
                  ti->chain_valid ? "valid" : ti->verify_text);
        in_enter_state(s, IN_HEADER);
        return;
    }
    case CONN_EV_TIMEOUT_IDLE:
        in_close(s, -1, "idle");
        return;
    case CONN_EV_CONNECTED:
    case CONN_EV_DRAINED:
        return;
    default:
        log_info("in: connection lost id=%s peer=%s local=%s remote=%s state=%s event=%s "
                 "reason=\"%s\"",
                 s->id, conn_peer(s->conn), s->hdr_to, s->hdr_from, in_strstate(s),
                 conn_event_name(ev), reason);
        s2s_stream_reason(&s->st, ev == CONN_EV_EOF ? "peer closed" : reason);
        if (ev != CONN_EV_EOF) {
            s2s_stream_bytes(&s->st, conn_stats(s->conn));
            conn_free(s->conn);
            s->conn = NULL;
        }
        in_finish(s);
    }
}

static const char *
st_state(const void *session)
{
    return in_strstate(session);
}

static const struct conn *
st_conn(const void *session)
{
    return ((const struct in_session *)session)->conn;
}

static void
st_close(void *session, const char *why)
{
    in_close(session, -1, why);
}

static const struct s2s_stream_ops stream_ops = {st_state, st_conn, st_close};

struct in_session *
in_new(struct event_base *base, struct conn *c, const struct in_opts *opts,
       const struct in_cbs *cbs)
{
    struct in_session *s;
    struct conn_cbs ccbs = {conn_read_cb, conn_event_cb, NULL};
    struct dialback_limits dl = {0};
    struct timeval tv;
    char err[256];

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
    if (s->opts.unauth_stanza_bytes == 0)
        s->opts.unauth_stanza_bytes = 16384;
    if (s->opts.auth_timeout_ms == 0)
        s->opts.auth_timeout_ms = 30000;
    if (s->opts.xml.max_stanza_bytes == 0)
        xmlstream_limits_default(&s->opts.xml);
    s->opts.dialback_secret = NULL;
    if (opts->dialback_secret != NULL && (s->secret = strdup(opts->dialback_secret)) == NULL)
        fatal("strdup");
    dl.max_pairs = opts->dialback_pairs;
    if ((s->xs = xmlstream_new(&s->opts.xml, &xs_cbs, s)) == NULL ||
        (s->pairs = dialback_pairs_new(&dl)) == NULL)
        fatal("in_new");
    s->ev_auth = evtimer_new(base, auth_timeout_cb, s);
    s->ev_resume = evtimer_new(base, resume_cb, s);
    s->ev_free = evtimer_new(base, free_cb, s);
    peerauth_stream_id(s->id); /* for logs until our header goes out */
    s->state = IN_HEADER;
    s2s_stats.in_streams++;
    s2s_stream_register(&s->st, false, s, &stream_ops, &s->auth, conn_peer(c));
    ccbs.arg = s;
    conn_set_cbs(c, &ccbs);
    conn_set_timeouts(c, &s->opts.timeouts);
    tv.tv_sec = s->opts.auth_timeout_ms / 1000;
    tv.tv_usec = (s->opts.auth_timeout_ms % 1000) * 1000;
    evtimer_add(s->ev_auth, &tv);
    log_debug("in: new stream id=%s peer=%s direct_tls=%d", s->id, conn_peer(c), opts->direct_tls);
    if (opts->direct_tls) {
        if (opts->tls == NULL || conn_starttls(c, opts->tls, TLS_ROLE_SERVER, NULL, NULL, NULL, err,
                                               sizeof(err)) == -1) {
            log_warn("in: id=%s peer=%s cannot start TLS: %s", s->id, conn_peer(c),
                     opts->tls ? err : "no TLS context");
            in_finish(s);
        } else {
            s->state = IN_TLS;
        }
    }
    return s;
}

bool
in_bidi(const struct in_session *s)
{
    return s->bidi && s->state != IN_DEAD && s->state != IN_CLOSING;
}

int
in_send(struct in_session *s, const char *local, const char *remote, struct stanza *st)
{
    if (!in_bidi(s) || s->conn == NULL || !in_authorized(s, local, remote))
        return -1;
    stanza_serialize_flags(st, conn_output(s->conn), STANZA_NS_SERVER, STANZA_SER_DB_DECLARED);
    stanza_free(st);
    return 0;
}

static void
resume_cb(evutil_socket_t fd, short what, void *arg)
{
    struct in_session *s = arg;

    (void)fd;
    (void)what;
    if (s->conn != NULL && s->state != IN_DEAD)
        conn_resume_read(s->conn);
}

void
in_pause_read(struct in_session *s, unsigned ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    if (s->conn == NULL || s->state == IN_DEAD)
        return;
    conn_pause_read(s->conn);
    evtimer_add(s->ev_resume, &tv);
}

bool
in_read_paused(const struct in_session *s)
{
    return evtimer_pending(s->ev_resume, NULL);
}

const char *
in_id(const struct in_session *s)
{
    return s->id;
}

const char *
in_peer(const struct in_session *s)
{
    return s->conn != NULL ? conn_peer(s->conn) : "?";
}

const struct peerauth *
in_peerauth(const struct in_session *s)
{
    return &s->auth;
}

size_t
in_count(void)
{
    return nsessions;
}
