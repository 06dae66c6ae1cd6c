/*
 * The facts policy_check_stream() and policy_check_stanza() want, taken from what the
 * engine has at hand (a struct peerauth, a parsed stanza). Shared by the router (inbound
 * streams, stanzas in both directions) and the pool (outbound streams), so that both
 * describe a peer to the policy the same way. Decides nothing.
 */
#ifndef S2S_POLICY_FACTS_H
#define S2S_POLICY_FACTS_H

#include <stddef.h>

#include "s2s/peerauth.h"
#include "s2s/policy.h"
#include "s2s/stanza.h"

/* Fills f from pa (method, TLS version and cipher, certificate, DNSSEC, DANE). The
 * strings are borrowed: local, remote, address and pa must outlive f. */
void policy_facts_stream(struct policy_stream_facts *f, enum policy_dir dir, const char *local,
                         const char *remote, const char *address, const struct peerauth *pa);

/* Fills f from st: kind, type, the namespaces of the first child elements, size. -1 for
 * anything but message, presence and iq (the policy has no rule for them). */
int policy_facts_stanza(struct policy_stanza_facts *f, enum policy_dir dir, const char *local,
                        const char *remote, const struct stanza *st);

/* The address part of "ip:port" or "[ip6]:port" into buf; NULL when peer is NULL. */
const char *policy_facts_address(const char *peer, char *buf, size_t len);

/* OpenSSL's version number for tls_info's "TLSv1.3" style names; 0 for NULL. */
int policy_facts_tls_version(const char *name);

/* p, or a shared default policy (open federation) when p is NULL: a configuration built
 * by hand (tests) has none. */
struct policy *policy_facts_policy(struct policy *p);

#endif
