/*
 * Targets for operators: `s2sproxy resolve DOMAIN` prints them for people or as JSON.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <jansson.h>

#include "dns/resolver.h"

static const char *
addr_str(const struct dns_addr *a, char *buf, size_t len)
{
    if (inet_ntop(a->family, a->addr, buf, (socklen_t)len) == NULL)
        snprintf(buf, len, "?");
    return buf;
}

static void
hex(const uint8_t *p, size_t n, char *out, size_t outlen)
{
    static const char digits[] = "0123456789abcdef";
    size_t o = 0;

    for (size_t i = 0; i < n && o + 2 < outlen; i++) {
        out[o++] = digits[p[i] >> 4];
        out[o++] = digits[p[i] & 0xf];
    }
    out[o] = '\0';
}

static void
print_info(FILE *fp, const char *what, const struct dns_lookup_info *i)
{
    fprintf(fp, "%s %s (dnssec %s, ttl %u)", what, dns_status_str(i->status), dns_sec_str(i->sec),
            i->ttl);
}

void
dns_targets_print(FILE *fp, const struct dns_targets *t)
{
    char buf[2 * DNS_TLSA_DATA_MAX + 1];

    fprintf(fp, "domain %s: %s", t->domain, dns_status_str(t->status));
    if (t->error[0])
        fprintf(fp, ": %s", t->error);
    fprintf(fp, "\n  ");
    print_info(fp, "SRV _xmpps-server._tcp", &t->srv_xmpps);
    fprintf(fp, "\n  ");
    print_info(fp, "SRV _xmpp-server._tcp", &t->srv_xmpp);
    fprintf(fp, "\n");
    if (t->fallback)
        fprintf(fp, "  no SRV records: falling back to the domain, port %d (RFC 6120 3.2.2)\n",
                DNS_XMPP_PORT);
    for (size_t i = 0; i < t->ntargets; i++) {
        const struct dns_target *g = &t->targets[i];
        fprintf(fp, "%zu. %s port %u %s (priority %u weight %u)\n", i + 1, g->host, g->port,
                dns_tls_mode_str(g->tls), g->priority, g->weight);
        if (g->cname[0])
            fprintf(fp, "   alias (CNAME) of %s%s\n", g->cname,
                    t->fallback ? "" : ": an SRV target MUST NOT be an alias (RFC 2782)");
        fprintf(fp, "   ");
        print_info(fp, "AAAA", &g->aaaa);
        fprintf(fp, "; ");
        print_info(fp, "A", &g->a);
        fprintf(fp, "\n");
        for (size_t j = 0; j < g->naddrs; j++)
            fprintf(fp, "   %s %s ttl %u\n", g->addrs[j].family == AF_INET6 ? "IPv6" : "IPv4",
                    addr_str(&g->addrs[j], buf, sizeof(buf)), g->addrs[j].ttl);
        if (!g->tlsa_queried) {
            fprintf(fp, "   TLSA not looked up (needs DNSSEC-secure SRV and addresses)\n");
            continue;
        }
        fprintf(fp, "   ");
        print_info(fp, "TLSA", &g->tlsa);
        fprintf(fp, "\n");
        for (size_t j = 0; j < g->ntlsa; j++) {
            hex(g->tlsa_rr[j].data, g->tlsa_rr[j].len, buf, sizeof(buf));
            fprintf(fp, "   TLSA %u %u %u %s\n", g->tlsa_rr[j].usage, g->tlsa_rr[j].selector,
                    g->tlsa_rr[j].mtype, buf);
        }
    }
}

static json_t *
info_json(const struct dns_lookup_info *i)
{
    return json_pack("{s:s, s:s, s:I}", "status", dns_status_str(i->status), "dnssec",
                     dns_sec_str(i->sec), "ttl", (json_int_t)i->ttl);
}

static json_t *
target_json(const struct dns_target *g)
{
    char buf[2 * DNS_TLSA_DATA_MAX + 1];
    json_t *o, *addrs, *tlsa;

    addrs = json_array();
    for (size_t j = 0; j < g->naddrs; j++)
        json_array_append_new(addrs, json_pack("{s:s, s:s, s:I}", "family",
                                               g->addrs[j].family == AF_INET6 ? "ipv6" : "ipv4",
                                               "address", addr_str(&g->addrs[j], buf, sizeof(buf)),
                                               "ttl", (json_int_t)g->addrs[j].ttl));
    o = json_pack("{s:s, s:i, s:s, s:i, s:i, s:o, s:o, s:o}", "host", g->host, "port", g->port,
                  "tls", dns_tls_mode_str(g->tls), "priority", g->priority, "weight", g->weight,
                  "aaaa", info_json(&g->aaaa), "a", info_json(&g->a), "addresses", addrs);
    if (o != NULL)
        json_object_set_new(o, "cname", g->cname[0] ? json_string(g->cname) : json_null());
    if (o == NULL || !g->tlsa_queried)
        return o;
    tlsa = json_array();
    for (size_t j = 0; j < g->ntlsa; j++) {
        hex(g->tlsa_rr[j].data, g->tlsa_rr[j].len, buf, sizeof(buf));
        json_array_append_new(tlsa, json_pack("{s:i, s:i, s:i, s:s}", "usage", g->tlsa_rr[j].usage,
                                              "selector", g->tlsa_rr[j].selector, "mtype",
                                              g->tlsa_rr[j].mtype, "data", buf));
    }
    json_t *ti = info_json(&g->tlsa);
    json_object_set_new(ti, "records", tlsa);
    json_object_set_new(o, "tlsa", ti);
    return o;
}

json_t *
dns_targets_json(const struct dns_targets *t)
{
    json_t *o, *targets = json_array();

    for (size_t i = 0; i < t->ntargets; i++)
        json_array_append_new(targets, target_json(&t->targets[i]));
    o = json_pack("{s:s, s:s, s:o, s:o, s:b, s:o}", "domain", t->domain, "status",
                  dns_status_str(t->status), "srv_xmpps", info_json(&t->srv_xmpps), "srv_xmpp",
                  info_json(&t->srv_xmpp), "fallback", t->fallback, "targets", targets);
    if (o != NULL && t->error[0])
        json_object_set_new(o, "error", json_string(t->error));
    return o;
}
