/*
 * Checked reading of libconfig settings, shared by s2s/conf.c and s2s/policy_conf.c.
 */
#include "s2s/cfgread.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s2s/log.h"

void
cfg_key_path(const config_setting_t *s, char *buf, size_t len)
{
    const config_setting_t *parent = config_setting_parent(s);
    size_t used;

    if (parent == NULL)
        return;
    cfg_key_path(parent, buf, len);
    used = strlen(buf);
    if (config_setting_name(s) != NULL)
        snprintf(buf + used, len - used, "%s%s", used > 0 ? "." : "", config_setting_name(s));
    else
        snprintf(buf + used, len - used, "[%d]", config_setting_index(s));
}

/*
 * libconfig records an @include by the name written in the directive, relative to the
 * include directory: show it under showdir.
 */
void
cfg_source_file(const struct cfgread *c, const char *src, char *buf, size_t len)
{
    if (src == NULL)
        snprintf(buf, len, "%s", c->mainfile);
    else if (src[0] == '/' || strcmp(src, c->mainfile) == 0 || c->showdir == NULL)
        snprintf(buf, len, "%s", src);
    else
        snprintf(buf, len, "%s/%s", c->showdir, src);
}

int
cfg_error(struct cfgread *c, const config_setting_t *s, const char *fmt, ...)
{
    char file[PATH_MAX], key[256] = "", msg[768];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cfg_source_file(c, config_setting_source_file(s), file, sizeof(file));
    cfg_key_path(s, key, sizeof(key));
    if (config_setting_source_line(s) == 0) /* the root: no line */
        snprintf(c->err, c->errlen, "%s: %s", file, msg);
    else
        snprintf(c->err, c->errlen, "%s:%u: %s: %s", file, config_setting_source_line(s), key, msg);
    return -1;
}

static const char *
type_name(const config_setting_t *s)
{
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_GROUP:
        return "a group { }";
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        return "an integer";
    case CONFIG_TYPE_FLOAT:
        return "a decimal number";
    case CONFIG_TYPE_STRING:
        return "a string";
    case CONFIG_TYPE_BOOL:
        return "a boolean";
    case CONFIG_TYPE_ARRAY:
        return "an array [ ]";
    case CONFIG_TYPE_LIST:
        return "a list ( )";
    default:
        return "nothing";
    }
}

int
cfg_type_error(struct cfgread *c, const config_setting_t *s, const char *expected)
{
    if (c->say_found)
        return cfg_error(c, s, "expected %s, got %s", expected, type_name(s));
    return cfg_error(c, s, "expected %s", expected);
}

/* Anything not in keys is a typo or an option this version does not have: both deserve
 * an error rather than a silent default. */
int
cfg_check_keys(struct cfgread *c, const config_setting_t *g, const char *const *keys)
{
    for (int i = 0; i < config_setting_length(g); i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        const char *const *k;

        for (k = keys; *k != NULL; k++)
            if (strcmp(*k, config_setting_name(s)) == 0)
                break;
        if (*k == NULL)
            return cfg_error(c, s, "unknown option");
    }
    return 0;
}

static const config_setting_t *
member(const config_setting_t *g, const char *name)
{
    return g != NULL ? config_setting_get_member(g, name) : NULL;
}

int
cfg_get_string(struct cfgread *c, const config_setting_t *g, const char *name, const char **out,
               const config_setting_t **where)
{
    const config_setting_t *s = member(g, name);

    if (where != NULL)
        *where = s;
    if (s == NULL)
        return 0;
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return cfg_type_error(c, s, "a string");
    *out = config_setting_get_string(s);
    return 0;
}

int
cfg_get_bool(struct cfgread *c, const config_setting_t *g, const char *name, bool *out)
{
    const config_setting_t *s = member(g, name);

    if (s == NULL)
        return 0;
    if (config_setting_type(s) != CONFIG_TYPE_BOOL)
        return cfg_type_error(c, s, "a boolean (true or false)");
    *out = config_setting_get_bool(s) != 0;
    return 0;
}

/*
 * libconfig 1.5 silently wraps integers beyond 64 bits written without the L suffix to
 * 32 bits (docs/configuration.md says so); the range check catches most such mistakes.
 */
int
cfg_get_int(struct cfgread *c, const config_setting_t *g, const char *name, long long min,
            long long max, long long *out)
{
    const config_setting_t *s = member(g, name);
    long long v;

    if (s == NULL)
        return 0;
    if (config_setting_type(s) != CONFIG_TYPE_INT && config_setting_type(s) != CONFIG_TYPE_INT64)
        return cfg_type_error(c, s, "an integer");
    v = config_setting_get_int64(s);
    if (v < min || v > max)
        return cfg_error(c, s, "%lld is out of range %lld..%lld", v, min, max);
    *out = v;
    return 0;
}

int
cfg_get_number(struct cfgread *c, const config_setting_t *g, const char *name, double min,
               double max, const char *unit, double *out)
{
    const config_setting_t *s = member(g, name);
    char expected[64];
    double v;

    if (s == NULL)
        return 0;
    if (!config_setting_is_number(s)) {
        snprintf(expected, sizeof(expected), "a number%s%s", unit != NULL ? " of " : "",
                 unit != NULL ? unit : "");
        return cfg_type_error(c, s, expected);
    }
    if (config_setting_type(s) == CONFIG_TYPE_FLOAT)
        v = config_setting_get_float(s);
    else
        v = (double)config_setting_get_int64(s);
    if (!(v >= min && v <= max)) /* also rejects NaN */
        return cfg_error(c, s, "%g is out of range %g..%g%s%s", v, min, max,
                         unit != NULL ? " " : "", unit != NULL ? unit : "");
    *out = v;
    return 0;
}

char *
cfg_path_resolve(const struct cfgread *c, const char *p)
{
    char *out;

    if (p[0] == '/') {
        if ((out = strdup(p)) == NULL)
            fatal("strdup");
        return out;
    }
    if (asprintf(&out, "%s/%s", c->dir, p) < 0)
        fatal("asprintf");
    return out;
}
