/*
 * Engine state to policy facts (see policy_facts.h).
 */
#include "s2s/policy_facts.h"

#include <stdio.h>
#include <string.h>

int
policy_facts_tls_version(const char *name)
{
    if (name == NULL)
        return 0;
    if (strcmp(name, "TLSv1.3") == 0)
        return 0x0304;
    if (strcmp(name, "TLSv1.2") == 0)
        return 0x0303;
    if (strcmp(name, "TLSv1.1") == 0)
        return 0x0302;
    return 0x0301; /* "TLSv1" or older: below every minimum */
}

static enum policy_cert
cert_of(enum peerauth_cert c)
{
    switch (c) {
    case PEERAUTH_CERT_VALID:
        return POLICY_CERT_VALID;
    case PEERAUTH_CERT_MISMATCH:
        return POLICY_CERT_WRONG_NAME;
    case PEERAUTH_CERT_UNTRUSTED:
        return POLICY_CERT_UNTRUSTED;
    default:
        return POLICY_CERT_NONE;
    }
}

static enum policy_auth
auth_of(enum peerauth_method m)
{
    switch (m) {
    case PEERAUTH_SASL_EXTERNAL:
        return POLICY_AUTH_SASL_EXTERNAL;
    case PEERAUTH_DIALBACK:
    case PEERAUTH_CERT_DIALBACK:
        return POLICY_AUTH_DIALBACK;
    default:
        return POLICY_AUTH_NONE;
    }
}

void
policy_facts_stream(struct policy_stream_facts *f, enum policy_dir dir, const char *local,
                    const char *remote, const char *address, const struct peerauth *pa)
{
    memset(f, 0, sizeof(*f));
    f->dir = dir;
    f->local = local;
    f->remote = remote;
    f->address = address;
    f->tls_version = policy_facts_tls_version(pa->tls_version);
    f->cipher = pa->cipher;
    f->cert = cert_of(pa->cert);
    f->auth = auth_of(pa->method);
    f->dnssec = pa->dnssec;
    f->dane = pa->dane;
}

int
policy_facts_stanza(struct policy_stanza_facts *f, enum policy_dir dir, const char *local,
                    const char *remote, const struct stanza *st)
{
    const char *name = stanza_name(st);
    const struct stanza_elem *e;

    if (strcmp(name, "message") == 0)
        f->kind = POLICY_KIND_MESSAGE;
    else if (strcmp(name, "presence") == 0)
        f->kind = POLICY_KIND_PRESENCE;
    else if (strcmp(name, "iq") == 0)
        f->kind = POLICY_KIND_IQ;
    else
        return -1;
    f->dir = dir;
    f->local = local;
    f->remote = remote;
    f->type = stanza_attr(st, "type");
    f->nns = 0;
    for (e = stanza_elem_first(stanza_root(st)); e != NULL && f->nns < POLICY_STANZA_NS;
         e = stanza_elem_next(e))
        if (e->ns != NULL && e->ns[0] != '\0')
            f->ns[f->nns++] = e->ns;
    f->size = stanza_wire_bytes(st);
    if (f->size == 0)
        f->size = stanza_mem_bytes(st);
    f->now = 0;
    return 0;
}

const char *
policy_facts_address(const char *peer, char *buf, size_t len)
{
    const char *colon;

    if (peer == NULL)
        return NULL;
    if (peer[0] == '[') {
        const char *end = strchr(peer, ']');

        snprintf(buf, len, "%.*s", end != NULL ? (int)(end - peer - 1) : (int)strlen(peer + 1),
                 peer + 1);
        return buf;
    }
    colon = strrchr(peer, ':');
    snprintf(buf, len, "%.*s", colon != NULL ? (int)(colon - peer) : (int)strlen(peer), peer);
    return buf;
}

struct policy *
policy_facts_policy(struct policy *p)
{
    static struct policy *deflt;

    if (p != NULL)
        return p;
    if (deflt == NULL)
        deflt = policy_new_default();
    return deflt;
}
