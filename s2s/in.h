/*
 * One inbound s2s stream (RFC 6120 as the receiving entity): stream header checks,
 * STARTTLS, SASL EXTERNAL (XEP-0178), dialback as receiving and as authoritative server
 * (XEP-0220), then every stanza checked before it is handed up.
 *
 * States (in_strstate() names them in logs):
 *   HEADER      waiting for the peer's stream header (again after each restart)
 *   OPEN        header answered, features sent: STARTTLS, auth, dialback, stanzas
 *   TLS         <proceed/> sent, the TLS handshake runs (the restart follows)
 *   CLOSING     our </stream:stream> or stream error is on its way
 *   DEAD        the conn is gone; the session is freed from the loop, after cbs->closed
 *
 * Decisions (RFC 6120, documented here once):
 * - `to` missing or not hosted: our header, then <host-unknown/> (§4.9.1.3, §4.9.3.6).
 * - version other than 1.0 (or none): <unsupported-version/> (§4.7.5): we need features.
 * - TLS required and the peer sends anything but <starttls/> before TLS: <policy-violation/>
 *   (§5.3.1: TLS is mandatory-to-negotiate here); a stanza (message/presence/iq) before the
 *   stream is authenticated, TLS or not: <not-authorized/> (§4.3.2, §6.4.1 spirit).
 * - A stanza whose `from` domain is not authenticated on this stream: <invalid-from/>
 *   (§4.9.3.9); whose `to` is not hosted: <host-unknown/> (§4.9.3.6: we relay nowhere);
 *   without from or to: <improper-addressing/> (§4.9.3.7); anything but
 *   message/presence/iq in jabber:server: <unsupported-stanza-type/> (§4.9.3.23).
 * - Before authentication an element may not exceed unauth_stanza_bytes
 *   (<policy-violation/>); the parser's own limit (xml) bounds it while it is read.
 * - Dialback: offered after TLS (when TLS is required), per security level of the remote
 *   domain: SECURE needs a valid certificate, so dialback alone gets <not-authorized/>
 *   (a dialback error, XEP-0220 §2.4); a db:result from a peer whose certificate is
 *   valid for its `from` is answered valid at once (XEP-0344 §2.4); otherwise the key is
 *   verified through cbs->dialback_verify and answered when the owner calls
 *   in_dialback_verdict(). INSECURE also allows dialback without TLS (when not required).
 * - db:verify (authoritative role) is answered from the dialback secret on any stream,
 *   before authentication, but after TLS when TLS is required.
 * - Not authenticated within auth_timeout_ms: <connection-timeout/>.
 * - XEP-0288: with opts.bidi, <bidi xmlns='urn:xmpp:features:bidi'/> is offered after TLS;
 *   a <bidi/> request makes in_bidi() true (the owner may then send with in_send()).
 */
#ifndef S2S_IN_H
#define S2S_IN_H

#include <stdbool.h>
#include <stddef.h>

#include "dialback/elem.h"
#include "s2s/conf.h"
#include "s2s/conn.h"
#include "s2s/peerauth.h"
#include "s2s/stanza.h"
#include "s2s/xmlstream.h"

struct event_base;
struct in_session;

struct in_opts {
    struct tls_ctx *tls;         /* for STARTTLS and direct TLS; NULL: no TLS offered */
    bool direct_tls;             /* XEP-0368: the stream starts with a TLS handshake */
    bool require_tls;            /* default true */
    bool dialback;               /* dialback (receiving and authoritative) enabled */
    const char *dialback_secret; /* authoritative role; copied; NULL: every key invalid */
    struct xmlstream_limits xml;
    size_t unauth_stanza_bytes; /* 0: 16 KiB */
    unsigned dialback_pairs;    /* 0: DIALBACK_DEFAULT_MAX_PAIRS */
    unsigned auth_timeout_ms;   /* 0: 30 s */
    struct conn_timeouts timeouts;
    bool bidi; /* XEP-0288: offer bidirectional streams */
};

struct in_refusal {
    int stream_error; /* enum xmpp_stream_error */
    enum dialback_cond dialback_error;
    char text[200];
};

struct in_cbs {
    /* Is domain (lower-case) one we host? */
    bool (*hosted)(const char *domain, void *arg);
    /* Security level for the remote domain (lower-case). */
    enum conf_sec_level (*security)(const char *remote, void *arg);
    /* A checked stanza: from authenticated on this stream, to hosted. Takes st. */
    void (*stanza_take)(struct in_session *s, struct stanza *st, void *arg);
    /*
     * Receiving role: ask remote's authoritative server whether key is valid for
     * (local, remote, stream id); answer later with in_dialback_verdict() on this
     * session (or never, if cbs->closed ran first: then forget the session).
     */
    void (*dialback_verify)(struct in_session *s, const char *local, const char *remote,
                            const char *id, const char *key, void *arg);
    /* (local, remote) became authenticated on this stream (optional). */
    void (*authenticated)(struct in_session *s, const char *local, const char *remote,
                          enum peerauth_method how, void *arg);
    /* The session is finished and will be freed after this returns. */
    void (*closed)(struct in_session *s, void *arg);
    /*
     * May (local, remote) be authenticated here with what pa says (optional; NULL admits)?
     * Asked before <success/> of SASL EXTERNAL and before a dialback pair is answered
     * valid. The creator asks the policy; the session does not decide. Refused: false with
     * *r filled; SASL then closes the stream with r->stream_error, dialback answers only
     * that pair with r->dialback_error (XEP-0220 §2.4: the stream lives on).
     */
    bool (*admit)(struct in_session *s, const char *local, const char *remote,
                  const struct peerauth *pa, struct in_refusal *r, void *arg);
    void *arg;
};

/* Takes the accepted conn (its callbacks are replaced). */
struct in_session *in_new(struct event_base *base, struct conn *c, const struct in_opts *opts,
                          const struct in_cbs *cbs);

/*
 * The authoritative server's answer to a dialback_verify request: type VALID, INVALID or
 * ERROR (cond then says which dialback error, e.g. DIALBACK_ERR_REMOTE_SERVER_NOT_FOUND).
 * Answers <db:result type=.../> on the stream (XEP-0220 §2.2.1); INVALID then closes it.
 */
void in_dialback_verdict(struct in_session *s, const char *local, const char *remote,
                         enum dialback_type verdict, enum dialback_cond cond);

/*
 * XEP-0288: the peer asked for a bidirectional stream, so stanzas for its authenticated
 * pairs may go back over it. in_send() takes st and writes it when (local, remote) is
 * authenticated here and the stream is bidi; -1 otherwise (st is still the caller's).
 */
bool in_bidi(const struct in_session *s);
int in_send(struct in_session *s, const char *local, const char *remote, struct stanza *st);

/* Graceful close (shutdown, idle): a stream error when cond >= 0, then </stream:stream>. */
void in_close(struct in_session *s, int cond, const char *why);
/*
 * Withdraws one dialback-authenticated pair (a reloaded policy refuses it, issue 7): the
 * peer gets <db:result type='error'> with cond (XEP-0220 §2.4), stanzas for the pair are
 * no longer accepted (dropped and logged, not a stream error: the stream and its other
 * pairs live on). -1 if the pair was not authenticated by dialback on this stream (SASL
 * EXTERNAL authenticates the whole stream: the caller closes it instead).
 */
int in_pair_refuse(struct in_session *s, const char *local, const char *remote,
                   enum dialback_cond cond);

/*
 * Stops reading from the stream for ms milliseconds, then reads again (rate limits:
 * backpressure, nothing is dropped). A second call while paused extends the pause.
 */
void in_pause_read(struct in_session *s, unsigned ms);
bool in_read_paused(const struct in_session *s);

const char *in_id(const struct in_session *s);   /* current stream id */
const char *in_peer(const struct in_session *s); /* "ip:port" */
const char *in_strstate(const struct in_session *s);
const struct peerauth *in_peerauth(const struct in_session *s);
/* Is (local, remote) authenticated on this stream? */
bool in_authorized(const struct in_session *s, const char *local, const char *remote);
/* Sessions alive in this process (for tests and stats). */
size_t in_count(void);

#endif
