/*
 * One outbound s2s stream (RFC 6120 as the initiating entity) for a local domain to a
 * remote domain, on a connection the connector made: [direct TLS] header, features,
 * STARTTLS, certificate verification (RFC 6125, SRV target when DNSSEC-secure, DANE),
 * restart, then SASL EXTERNAL (XEP-0178) when offered and our certificate serves, else
 * dialback as originating server (XEP-0220, XEP-0185 keys). It also carries <db:verify/>
 * requests for the receiving role once TLS is up (authenticated or not).
 *
 * States (out_strstate()):
 *   CONNECTED  TCP is up (direct TLS: handshake running)
 *   HEADER     our header is out, waiting for the peer's header and features
 *   STARTTLS   <starttls/> sent, waiting for <proceed/>; then the TLS handshake
 *   SASL       <auth mechanism='EXTERNAL'/> sent
 *   DIALBACK   <db:result/> sent, waiting for the verdict
 *   READY      authenticated: stanzas flow (out_send)
 *   CLOSING, DEAD
 *
 * Failures before READY are reported once through cbs->failed with the stanza error that
 * fits the queued stanzas (RFC 6120 §8.3.3.15/16): remote-server-timeout for timeouts,
 * remote-server-not-found for everything that says "this is not the server you want"
 * (no STARTTLS when TLS is required, TLS or certificate failure, authentication refused).
 * Certificate policy (security level of the remote domain): SECURE needs a valid
 * certificate; DEFAULT and INSECURE continue with dialback when it is not valid.
 *
 * XEP-0288: with opts.bidi, <bidi/> is requested when the peer offers it and its
 * certificate is valid for the remote domain (that certificate is what authenticates
 * the peer's stanzas coming back); the peer may then send stanzas from the remote
 * domain to our local domain on this stream (anything else closes it: invalid-from,
 * host-unknown). Without a valid certificate no bidi is asked for.
 */
#ifndef S2S_OUT_H
#define S2S_OUT_H

#include <stdbool.h>
#include <stddef.h>

#include "dialback/elem.h"
#include "dns/resolver.h"
#include "s2s/conf.h"
#include "s2s/conn.h"
#include "s2s/peerauth.h"
#include "s2s/stanza.h"
#include "s2s/xmlstream.h"

struct event_base;
struct out_session;

struct out_opts {
    struct tls_ctx *tls;
    bool direct_tls; /* XEP-0368 target */
    bool require_tls;
    bool dialback;
    const char *dialback_secret; /* copied */
    enum conf_sec_level level;   /* of the remote domain */
    const char *srv_target;      /* the SRV target host connected to, NULL for fallback */
    bool srv_secure;             /* the SRV answer was DNSSEC-secure */
    const struct dns_tlsa *tlsa; /* secure TLSA records (RFC 7673), copied; NULL: none */
    size_t ntlsa;
    bool verify_only; /* opened for db:verify: no authentication (XEP-0220 §2.1.2) */
    struct xmlstream_limits xml;
    struct conn_timeouts timeouts;
    unsigned auth_timeout_ms; /* from connect to READY; 0: 30 s */
    unsigned keepalive_ms;    /* whitespace keepalive when READY; 0: off */
    bool bidi; /* XEP-0288: ask for a bidirectional stream when offered (needs stanza_take) */
};

struct out_cbs {
    /* Authenticated: out_send() may be used. */
    void (*ready)(struct out_session *s, void *arg);
    /* Failed before READY or lost later; cond is the stanza error for bounces. */
    void (*failed)(struct out_session *s, enum xmpp_stanza_error cond, const char *why, void *arg);
    /* Answer to an out_verify() request (type ERROR with cond when it could not be had). */
    void (*verify_result)(struct out_session *s, const char *local, const char *remote,
                          const char *id, enum dialback_type type, enum dialback_cond cond,
                          void *arg);
    /* The output fell back under its low-water mark after out_output_full() (optional). */
    void (*drained)(struct out_session *s, void *arg);
    /*
     * XEP-0288: a stanza the peer sent back over our stream (bidi only), checked: from
     * the remote domain, whose certificate we verified, to our local domain. Takes st.
     */
    void (*stanza_take)(struct out_session *s, struct stanza *st, void *arg);
    /* Answer for a pair added with out_add_pair() (optional). */
    void (*pair_result)(struct out_session *s, const char *local, enum dialback_type type,
                        enum dialback_cond cond, void *arg);
    /* Freed after this returns. */
    void (*closed)(struct out_session *s, void *arg);
    void *arg;
};

/* Takes c (connected; TLS not started). */
struct out_session *out_new(struct event_base *base, struct conn *c, const char *local,
                            const char *remote, const struct out_opts *opts,
                            const struct out_cbs *cbs);

/* Serializes st onto the stream (READY only); takes st. -1 when not READY. */
int out_send(struct out_session *s, struct stanza *st);
/*
 * Dialback pooling (XEP-0220 §2.1.1, "multiplexing"): asks the peer to accept another
 * local domain on this READY stream; the answer comes through cbs->pair_result. -1 when
 * the stream cannot do it (not READY, dialback off, a "secure" peer without a valid
 * certificate, no stream id).
 */
int out_add_pair(struct out_session *s, const char *local);
/* Queues a <db:verify/> (sent once TLS is up and the peer's features arrived). */
int out_verify(struct out_session *s, const char *local, const char *remote, const char *id,
               const char *key);
void out_close(struct out_session *s, const char *why);

bool out_ready(const struct out_session *s);
/* TLS is up and features were seen: db:verify goes out at once. */
bool out_can_verify(const struct out_session *s);
bool out_output_full(const struct out_session *s);
const char *out_local(const struct out_session *s);
const char *out_remote(const struct out_session *s);
const char *out_strstate(const struct out_session *s);
const struct peerauth *out_peerauth(const struct out_session *s);
size_t out_count(void);

#endif
