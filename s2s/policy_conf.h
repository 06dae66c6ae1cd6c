/*
 * The "policy" section of the configuration, turned into a struct policy.
 *
 * All or nothing: either every setting is valid and every list file reads, or NULL with
 * one error line in the style of s2s/conf.c, "FILE:LINE: KEY: what is wrong" (a list
 * file error reads "FILE:LINE: KEY: LISTFILE:LINE: what is wrong"). The section is
 * documented in conf/policy/README.
 *
 * Wiring into s2s/conf.c (conf_load): add "policy" to root_keys[], a
 * "struct policy *policy;" member to struct conf, after load_dns() in parse():
 *     if ((l->conf->policy = policy_conf_load(config_setting_get_member(root, "policy"),
 *                                             l->dir, l->err, l->errlen)) == NULL)
 *         return -1;
 * and policy_unref(c->policy) in conf_free().
 */
#ifndef S2S_POLICY_CONF_H
#define S2S_POLICY_CONF_H

#include <stddef.h>

#include <libconfig.h>

struct policy;

/*
 * section: the "policy" group, or NULL for the default policy (open federation, TLS
 * required, dialback accepted, no limits, no stanza rules). conf_dir: absolute directory
 * of the main configuration file; relative list file names and @included file names
 * are taken against it.
 */
struct policy *policy_conf_load(const config_setting_t *section, const char *conf_dir, char *err,
                                size_t errlen);

#endif
