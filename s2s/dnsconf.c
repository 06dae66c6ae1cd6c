#include "s2s/dnsconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
dnsconf_init_default(struct dnsconf *dc)
{
    memset(dc, 0, sizeof(*dc));
    dc->opts.backend = DNS_BACKEND_CARES;
}

/* "addr:port", with brackets around IPv6 addresses, as dns/ parses it. */
static char *
server_string(const struct conf_dns_server *s)
{
    char buf[128];
    if (s->family == AF_INET6)
        snprintf(buf, sizeof(buf), "[%s]:%u", s->address, (unsigned)s->port);
    else
        snprintf(buf, sizeof(buf), "%s:%u", s->address, (unsigned)s->port);
    return strdup(buf);
}

int
dnsconf_init(struct dnsconf *dc, const struct conf_dns *dns)
{
    dnsconf_init_default(dc);
    dc->opts.backend = dns->backend == CONF_DNS_UNBOUND ? DNS_BACKEND_UNBOUND : DNS_BACKEND_CARES;
    dc->opts.trust_anchor_file = dns->trust_anchor_file;
    /* dns/ counts whole seconds; a sub-second configured timeout still gets one. */
    dc->opts.timeout = dns->timeout < 1 ? 1 : (unsigned)(dns->timeout + 0.5);
    dc->opts.cache_min_ttl = dns->cache_min_ttl;
    dc->opts.cache_max_ttl = dns->cache_max_ttl;

    if (dns->nservers > 0) {
        if ((dc->servers = calloc(dns->nservers, sizeof(*dc->servers))) == NULL)
            goto fail;
        dc->opts.servers = dc->servers;
        dc->opts.nservers = dns->nservers;
        for (size_t i = 0; i < dns->nservers; i++)
            if ((dc->servers[i] = server_string(&dns->servers[i])) == NULL)
                goto fail;
    }
    if (dns->nunbound_options > 0) {
        if ((dc->pairs = calloc(dns->nunbound_options, sizeof(*dc->pairs))) == NULL)
            goto fail;
        for (size_t i = 0; i < dns->nunbound_options; i++) {
            dc->pairs[i].key = dns->unbound_options[i].name;
            dc->pairs[i].value = dns->unbound_options[i].value;
        }
        dc->opts.unbound_options = dc->pairs;
        dc->opts.nunbound_options = dns->nunbound_options;
    }
    return 0;
fail:
    dnsconf_clear(dc);
    return -1;
}

void
dnsconf_clear(struct dnsconf *dc)
{
    if (dc->servers != NULL)
        for (size_t i = 0; i < dc->opts.nservers; i++)
            free((char *)dc->servers[i]);
    free(dc->servers);
    free(dc->pairs);
    memset(dc, 0, sizeof(*dc));
}
