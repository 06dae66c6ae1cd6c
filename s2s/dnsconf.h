/*
 * The configuration's "dns" section as dns/ takes it: dns/ knows nothing of the
 * configuration file (DESIGN.md, Who knows whom), so s2s/ translates.
 */
#ifndef S2S_DNSCONF_H
#define S2S_DNSCONF_H

#include "dns/resolver.h"
#include "s2s/conf.h"

/* dns_options plus the arrays they point to; valid while the conf it was made from lives. */
struct dnsconf {
    struct dns_options opts;
    const char **servers;
    struct dns_option_pair *pairs;
};

/* -1 when memory runs out. */
int dnsconf_init(struct dnsconf *dc, const struct conf_dns *dns);
/* c-ares on /etc/resolv.conf: what commands use without a configuration file. */
void dnsconf_init_default(struct dnsconf *dc);
void dnsconf_clear(struct dnsconf *dc);

#endif
