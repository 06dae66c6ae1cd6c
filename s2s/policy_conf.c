/*
 * Building a struct policy from the "policy" section: every setting is checked once,
 * unknown keys are errors (as in s2s/conf.c), list files are read in full.
 */
#include "s2s/policy_conf.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s2s/cfgread.h"
#include "s2s/log.h"
#include "s2s/policy_impl.h"

#define TLS12 0x0303
#define TLS13 0x0304

/* Rule limits keep a bucket per remote domain; this many at most. */
#define RULE_LIMIT_ENTRIES 10000

struct pbuild {
    struct cfgread cr; /* dir, showdir: the main file's absolute directory */
    struct policy *p;
};

static const char *const policy_keys[] = {"federate",
                                          "require_tls",
                                          "min_tls",
                                          "auth",
                                          "dnssec",
                                          "dane",
                                          "rate",
                                          "max_streams",
                                          "address_rate",
                                          "max_connections_per_address",
                                          "list_check_interval",
                                          "domains",
                                          "stanzas",
                                          NULL};
static const char *const domain_keys[] = {
    "name", "match",  "list", "subdomains", "federate",    "require_tls", "min_tls",
    "auth", "dnssec", "dane", "rate",       "max_streams", NULL};
static const char *const rule_keys[] = {
    "name",        "direction", "local",  "remote",    "remote_list", "kind", "type", "ns",
    "larger_than", "limit",     "action", "condition", "error_type",  "text", NULL};
static const char *const rate_keys[] = {"stanzas", "stanza_burst", "bytes", "byte_burst", NULL};

/* --- errors and origins --------------------------------------------------------------- */

static char *
xstrdup(const char *s)
{
    char *p = strdup(s);

    if (p == NULL)
        fatal("strdup");
    return p;
}

static void
origin_set(struct pbuild *b, const config_setting_t *s, const char *name, const char *what,
           struct policy_origin *o)
{
    char file[PATH_MAX], key[256] = "";

    cfg_source_file(&b->cr, config_setting_source_file(s), file, sizeof(file));
    o->file = xstrdup(file);
    o->line = config_setting_source_line(s);
    if (name != NULL) {
        o->name = xstrdup(name);
    } else {
        cfg_key_path(s, key, sizeof(key));
        o->name = xstrdup(key[0] != '\0' ? key : what);
    }
}

/*
 * A string or an array/list of strings, each handed to fn. An empty array is refused:
 * "match nothing" is never what a rule means.
 */
typedef int (*string_fn)(struct pbuild *b, const config_setting_t *s, const char *v, void *arg);

static int
each_string(struct pbuild *b, const config_setting_t *s, string_fn fn, void *arg)
{
    int n;

    if (config_setting_type(s) == CONFIG_TYPE_STRING)
        return fn(b, s, config_setting_get_string(s), arg);
    if (!config_setting_is_array(s) && !config_setting_is_list(s))
        return cfg_error(&b->cr, s, "expected a string or an array of strings [ \"...\", ... ]");
    if ((n = config_setting_length(s)) == 0)
        return cfg_error(&b->cr, s, "empty: leave the option out to match anything");
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);

        if (config_setting_type(e) != CONFIG_TYPE_STRING)
            return cfg_error(&b->cr, e, "expected a string");
        if (fn(b, e, config_setting_get_string(e), arg) == -1)
            return -1;
    }
    return 0;
}

/* --- values ---------------------------------------------------------------------------- */

static int
parse_rate(struct pbuild *b, const config_setting_t *g, const char *name,
           struct ratelimit_spec *out)
{
    const config_setting_t *s = config_setting_get_member(g, name);
    struct ratelimit_spec r = {{0, 0}, {0, 0}};

    if (s == NULL)
        return 0;
    if (!config_setting_is_group(s))
        return cfg_error(&b->cr, s, "expected a group { stanzas = ...; bytes = ...; }");
    if (cfg_check_keys(&b->cr, s, rate_keys) == -1 ||
        cfg_get_number(&b->cr, s, "stanzas", 0, 1e9, NULL, &r.stanzas.per_second) == -1 ||
        cfg_get_number(&b->cr, s, "stanza_burst", 1, 1e9, NULL, &r.stanzas.burst) == -1 ||
        cfg_get_number(&b->cr, s, "bytes", 0, 1e12, NULL, &r.bytes.per_second) == -1 ||
        cfg_get_number(&b->cr, s, "byte_burst", 1, 1e12, NULL, &r.bytes.burst) == -1)
        return -1;
    if (config_setting_get_member(s, "stanzas") == NULL &&
        config_setting_get_member(s, "bytes") == NULL)
        return cfg_error(&b->cr, s,
                         "give \"stanzas\" (per second), \"bytes\" (per second) or both");
    /* Bursts default to one second's worth. */
    if (config_setting_get_member(s, "stanza_burst") == NULL)
        r.stanzas.burst = r.stanzas.per_second;
    if (config_setting_get_member(s, "byte_burst") == NULL)
        r.bytes.burst = r.bytes.per_second;
    *out = r;
    return 0;
}

static int
parse_terms(struct pbuild *b, const config_setting_t *g, struct policy_terms *t)
{
    const config_setting_t *s;
    const char *v = NULL;
    long long n;

    if (cfg_get_string(&b->cr, g, "federate", &v, &s) == -1)
        return -1;
    if (s != NULL) {
        if (strcmp(v, "allow") == 0)
            t->federate = true;
        else if (strcmp(v, "deny") == 0)
            t->federate = false;
        else
            return cfg_error(&b->cr, s, "expected \"allow\" or \"deny\", got \"%s\"", v);
    }
    if (cfg_get_bool(&b->cr, g, "require_tls", &t->require_tls) == -1 ||
        cfg_get_string(&b->cr, g, "min_tls", &v, &s) == -1)
        return -1;
    if (s != NULL) {
        /* RFC 7590 §3.1: nothing older than TLS 1.2. */
        if (strcmp(v, "1.2") == 0)
            t->min_tls = TLS12;
        else if (strcmp(v, "1.3") == 0)
            t->min_tls = TLS13;
        else
            return cfg_error(&b->cr, s, "expected \"1.2\" or \"1.3\", got \"%s\"", v);
    }
    if (cfg_get_string(&b->cr, g, "auth", &v, &s) == -1)
        return -1;
    if (s != NULL) {
        if (strcmp(v, "certificate") == 0)
            t->auth = POLICY_REQUIRE_CERTIFICATE;
        else if (strcmp(v, "dialback") == 0)
            t->auth = POLICY_REQUIRE_DIALBACK;
        else
            return cfg_error(&b->cr, s, "expected \"certificate\" or \"dialback\", got \"%s\"", v);
    }
    if (cfg_get_bool(&b->cr, g, "dnssec", &t->dnssec) == -1 ||
        cfg_get_bool(&b->cr, g, "dane", &t->dane) == -1 || parse_rate(b, g, "rate", &t->rate) == -1)
        return -1;
    n = t->max_streams;
    if (cfg_get_int(&b->cr, g, "max_streams", 0, 100000, &n) == -1)
        return -1;
    t->max_streams = (unsigned)n;
    return 0;
}

/* The list file at path (absolute), shared by every user in this policy. */
static struct policy_list *
list_get(struct pbuild *b, const config_setting_t *s, const char *name, unsigned flags)
{
    struct policy_list *pl;
    char *path = cfg_path_resolve(&b->cr, name), lerr[768];

    for (pl = b->p->lists; pl != NULL; pl = pl->next)
        if (strcmp(pl->path, path) == 0 && pl->flags == flags) {
            free(path);
            return pl;
        }
    if ((pl = calloc(1, sizeof(*pl))) == NULL)
        fatal("calloc");
    if ((pl->file = domainlist_file_open(path, flags, lerr, sizeof(lerr))) == NULL) {
        free(pl);
        free(path);
        cfg_error(&b->cr, s, "%s", lerr);
        return NULL;
    }
    pl->path = path;
    pl->flags = flags;
    pl->index = b->p->nlists++;
    pl->next = b->p->lists;
    b->p->lists = pl;
    return pl;
}

struct pattern_arg {
    struct domainlist *dl;
    uint32_t value;
};

static int
add_pattern(struct pbuild *b, const config_setting_t *s, const char *v, void *arg)
{
    struct pattern_arg *pa = arg;
    char norm[DOMAINLIST_NAME_MAX], why[96];
    const char *bad;

    if ((bad = domainlist_normalize(v, true, norm, sizeof(norm), why, sizeof(why))) != NULL)
        return cfg_error(&b->cr, s, "\"%s\" is not a domain pattern: %s", v, bad);
    domainlist_add(pa->dl, norm, pa->value);
    return 0;
}

static int
load_domain(struct pbuild *b, const config_setting_t *g, size_t idx)
{
    struct policy_domain *e = &b->p->domains[idx];
    const config_setting_t *s_match, *s_list, *s_name;
    const char *name = NULL, *list = NULL;
    bool subdomains = false;

    if (!config_setting_is_group(g))
        return cfg_error(&b->cr, g, "expected a group { match = ...; federate = ...; }");
    if (cfg_check_keys(&b->cr, g, domain_keys) == -1 ||
        cfg_get_string(&b->cr, g, "name", &name, &s_name) == -1 ||
        cfg_get_string(&b->cr, g, "list", &list, &s_list) == -1 ||
        cfg_get_bool(&b->cr, g, "subdomains", &subdomains) == -1)
        return -1;
    origin_set(b, g, name, "domains", &e->at);
    e->terms = b->p->deflt.terms; /* what the entry does not say, the defaults say */
    if (parse_terms(b, g, &e->terms) == -1)
        return -1;
    s_match = config_setting_get_member(g, "match");
    if (s_match == NULL && s_list == NULL)
        return cfg_error(&b->cr, g,
                         "give \"match\" (domain patterns), \"list\" (a list file) or both");
    if (s_match != NULL) {
        struct pattern_arg pa = {b->p->patterns, (uint32_t)idx};

        if (each_string(b, s_match, add_pattern, &pa) == -1)
            return -1;
    }
    if (subdomains && s_list == NULL)
        return cfg_error(&b->cr, config_setting_get_member(g, "subdomains"),
                         "only used with \"list\"");
    if (s_list != NULL) {
        if ((e->list = list_get(b, s_list, list, subdomains ? DOMAINLIST_SUBTREE : 0)) == NULL)
            return -1;
        b->p->listed[b->p->nlisted++] = idx;
    }
    return 0;
}

static int
load_domains(struct pbuild *b, const config_setting_t *section)
{
    const config_setting_t *list = config_setting_get_member(section, "domains");
    struct policy *p = b->p;
    int n;

    if (list == NULL)
        return 0;
    if (!config_setting_is_list(list))
        return cfg_error(&b->cr, list, "expected a list of entries ( { match = ...; ... }, ... )");
    if ((n = config_setting_length(list)) == 0)
        return 0;
    if ((p->domains = calloc((size_t)n, sizeof(*p->domains))) == NULL ||
        (p->listed = calloc((size_t)n, sizeof(*p->listed))) == NULL)
        fatal("calloc");
    for (int i = 0; i < n; i++) {
        p->ndomains++; /* counted first: policy_destroy() frees what was filled in */
        if (load_domain(b, config_setting_get_elem(list, (unsigned)i), (size_t)i) == -1)
            return -1;
    }
    return 0;
}

/* --- stanza rules ---------------------------------------------------------------------- */

static int
add_kind(struct pbuild *b, const config_setting_t *s, const char *v, void *arg)
{
    struct policy_rule *r = arg;

    if (strcmp(v, "message") == 0)
        r->kinds |= POLICY_KIND_MESSAGE;
    else if (strcmp(v, "presence") == 0)
        r->kinds |= POLICY_KIND_PRESENCE;
    else if (strcmp(v, "iq") == 0)
        r->kinds |= POLICY_KIND_IQ;
    else
        return cfg_error(&b->cr, s, "expected \"message\", \"presence\" or \"iq\", got \"%s\"", v);
    return 0;
}

struct strv_arg {
    char ***v;
    size_t *n;
};

static int
add_string(struct pbuild *b, const config_setting_t *s, const char *v, void *arg)
{
    struct strv_arg *sa = arg;

    if (*v == '\0')
        return cfg_error(&b->cr, s, "empty string");
    if ((*sa->v = realloc(*sa->v, (*sa->n + 1) * sizeof(**sa->v))) == NULL)
        fatal("realloc");
    (*sa->v)[(*sa->n)++] = xstrdup(v);
    return 0;
}

static int
add_rule_pattern(struct pbuild *b, const config_setting_t *s, const char *v, void *arg)
{
    char norm[DOMAINLIST_NAME_MAX], why[96];
    const char *bad;

    if ((bad = domainlist_normalize(v, true, norm, sizeof(norm), why, sizeof(why))) != NULL)
        return cfg_error(&b->cr, s, "\"%s\" is not a domain pattern: %s", v, bad);
    return add_string(b, s, norm, arg);
}

static int
rule_domains(struct pbuild *b, const config_setting_t *g, const char *name, char ***v, size_t *n)
{
    const config_setting_t *s = config_setting_get_member(g, name);
    struct strv_arg sa = {v, n};

    if (s == NULL)
        return 0;
    return each_string(b, s, add_rule_pattern, &sa);
}

static int
rule_action(struct pbuild *b, const config_setting_t *g, struct policy_rule *r)
{
    const config_setting_t *s_action, *s_cond, *s_type;
    const char *action = NULL, *cond = NULL, *type = NULL;
    int c, t;

    if (cfg_get_string(&b->cr, g, "action", &action, &s_action) == -1 ||
        cfg_get_string(&b->cr, g, "condition", &cond, &s_cond) == -1 ||
        cfg_get_string(&b->cr, g, "error_type", &type, &s_type) == -1)
        return -1;
    if (s_action == NULL)
        return cfg_error(&b->cr, g, "missing \"action\" (pass, bounce, drop or log)");
    if (strcmp(action, "pass") == 0)
        r->action = POLICY_PASS;
    else if (strcmp(action, "bounce") == 0)
        r->action = POLICY_BOUNCE;
    else if (strcmp(action, "drop") == 0)
        r->action = POLICY_DROP;
    else if (strcmp(action, "log") == 0)
        r->action = POLICY_LOG;
    else
        return cfg_error(&b->cr, s_action,
                         "expected \"pass\", \"bounce\", \"drop\" or \"log\", got \"%s\"", action);
    if ((s_cond != NULL || s_type != NULL) && r->action != POLICY_BOUNCE)
        return cfg_error(&b->cr, s_cond != NULL ? s_cond : s_type,
                         "only used with action \"bounce\"");
    r->condition = XMPP_STANZA_ERR_POLICY_VIOLATION;
    if (s_cond != NULL) {
        if ((c = xmpp_stanza_error_parse(cond)) == -1)
            return cfg_error(&b->cr, s_cond, "\"%s\" is not an RFC 6120 stanza error condition",
                             cond);
        r->condition = (enum xmpp_stanza_error)c;
    }
    r->error_type = xmpp_stanza_error_default_type(r->condition);
    if (s_type != NULL) {
        if ((t = xmpp_error_type_parse(type)) == -1)
            return cfg_error(&b->cr, s_type,
                             "expected \"auth\", \"cancel\", \"continue\", \"modify\" or \"wait\"");
        r->error_type = (enum xmpp_error_type)t;
    }
    return 0;
}

static int
rule_direction(struct pbuild *b, const config_setting_t *g, struct policy_rule *r)
{
    const config_setting_t *s;
    const char *v = NULL;

    if (cfg_get_string(&b->cr, g, "direction", &v, &s) == -1 || s == NULL)
        return s == NULL ? 0 : -1;
    if (strcmp(v, "in") == 0)
        r->dirs = POLICY_IN;
    else if (strcmp(v, "out") == 0)
        r->dirs = POLICY_OUT;
    else if (strcmp(v, "any") == 0)
        r->dirs = 0;
    else
        return cfg_error(&b->cr, s, "expected \"in\", \"out\" or \"any\", got \"%s\"", v);
    return 0;
}

static int
load_rule(struct pbuild *b, const config_setting_t *g, struct policy_rule *r)
{
    const config_setting_t *s, *s_list, *s_name, *s_text;
    const char *name = NULL, *list = NULL, *text = NULL;
    struct strv_arg types = {&r->types, &r->ntypes}, nss = {&r->ns, &r->nns};
    long long size = 0;

    if (!config_setting_is_group(g))
        return cfg_error(&b->cr, g, "expected a group { kind = ...; action = ...; }");
    if (cfg_check_keys(&b->cr, g, rule_keys) == -1 ||
        cfg_get_string(&b->cr, g, "name", &name, &s_name) == -1)
        return -1;
    origin_set(b, g, name, "stanzas", &r->at);
    if (rule_direction(b, g, r) == -1 || rule_domains(b, g, "local", &r->local, &r->nlocal) == -1 ||
        rule_domains(b, g, "remote", &r->remote, &r->nremote) == -1 ||
        cfg_get_string(&b->cr, g, "remote_list", &list, &s_list) == -1)
        return -1;
    if (s_list != NULL && (r->remote_list = list_get(b, s_list, list, 0)) == NULL)
        return -1;
    if ((s = config_setting_get_member(g, "kind")) != NULL && each_string(b, s, add_kind, r) == -1)
        return -1;
    if ((s = config_setting_get_member(g, "type")) != NULL &&
        each_string(b, s, add_string, &types) == -1)
        return -1;
    if ((s = config_setting_get_member(g, "ns")) != NULL &&
        each_string(b, s, add_string, &nss) == -1)
        return -1;
    if (config_setting_get_member(g, "larger_than") != NULL) {
        if (cfg_get_int(&b->cr, g, "larger_than", 0, 1LL << 40, &size) == -1)
            return -1;
        r->has_larger_than = true;
        r->larger_than = (size_t)size;
    }
    if (parse_rate(b, g, "limit", &r->limit) == -1)
        return -1;
    if (ratelimit_spec_active(&r->limit))
        r->limit_table = ratelimit_table_new(RULE_LIMIT_ENTRIES);
    if (rule_action(b, g, r) == -1 || cfg_get_string(&b->cr, g, "text", &text, &s_text) == -1)
        return -1;
    if (s_text != NULL && r->action != POLICY_BOUNCE)
        return cfg_error(&b->cr, s_text, "only used with action \"bounce\"");
    if (text != NULL && *text != '\0')
        r->text = xstrdup(text);
    return 0;
}

static int
load_rules(struct pbuild *b, const config_setting_t *section)
{
    const config_setting_t *list = config_setting_get_member(section, "stanzas");
    struct policy *p = b->p;
    int n;

    if (list == NULL)
        return 0;
    if (!config_setting_is_list(list))
        return cfg_error(&b->cr, list,
                         "expected a list of rules ( { kind = ...; action = ...; }, ... )");
    if ((n = config_setting_length(list)) == 0)
        return 0;
    if ((p->rules = calloc((size_t)n, sizeof(*p->rules))) == NULL)
        fatal("calloc");
    for (int i = 0; i < n; i++) {
        p->nrules++;
        if (load_rule(b, config_setting_get_elem(list, (unsigned)i), &p->rules[i]) == -1)
            return -1;
    }
    return 0;
}

/* --- entry point ----------------------------------------------------------------------- */

static int
load_section(struct pbuild *b, const config_setting_t *section)
{
    struct policy *p = b->p;
    long long conns = 0;
    const config_setting_t *root = section;

    while (config_setting_parent(root) != NULL)
        root = config_setting_parent(root);
    b->cr.mainfile = config_setting_source_file(root);
    if (b->cr.mainfile == NULL)
        b->cr.mainfile = config_setting_source_file(section);
    if (b->cr.mainfile == NULL)
        b->cr.mainfile = "(policy)";
    if (!config_setting_is_group(section))
        return cfg_error(&b->cr, section, "expected a group { ... }");
    free(p->deflt.at.name);
    free(p->deflt.at.file);
    origin_set(b, section, "default", "default", &p->deflt.at);
    p->list_check_interval = 10;
    if (cfg_check_keys(&b->cr, section, policy_keys) == -1 ||
        parse_terms(b, section, &p->deflt.terms) == -1 ||
        parse_rate(b, section, "address_rate", &p->address_rate) == -1 ||
        cfg_get_int(&b->cr, section, "max_connections_per_address", 0, 100000, &conns) == -1 ||
        cfg_get_number(&b->cr, section, "list_check_interval", 0, 86400, NULL,
                       &p->list_check_interval) == -1)
        return -1;
    p->max_conns_per_address = (unsigned)conns;
    if (load_domains(b, section) == -1 || load_rules(b, section) == -1)
        return -1;
    return 0;
}

struct policy *
policy_conf_load(const config_setting_t *section, const char *conf_dir, char *err, size_t errlen)
{
    struct pbuild b = {.cr = {.dir = conf_dir, .showdir = conf_dir, .err = err, .errlen = errlen}};

    b.p = policy_alloc();
    if (section != NULL && load_section(&b, section) == -1) {
        policy_destroy(b.p);
        return NULL;
    }
    policy_index_build(b.p);
    return b.p;
}
