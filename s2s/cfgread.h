/*
 * Reading checked settings out of a libconfig tree: the parts s2s/conf.c and
 * s2s/policy_conf.c share.
 *
 * Every error is one line, "FILE:LINE: KEY: what is wrong", written into the caller's
 * buffer; every function that can fail returns -1 after writing it, 0 otherwise. A
 * getter whose setting is absent returns 0 and leaves *out as it was (the caller's
 * default).
 */
#ifndef S2S_CFGREAD_H
#define S2S_CFGREAD_H

#include <stdbool.h>
#include <stddef.h>

#include <libconfig.h>

struct cfgread {
    const char *mainfile; /* the main file's name as given; never NULL */
    const char *showdir;  /* @included files are shown under it; NULL: as recorded */
    const char *dir;      /* absolute: relative file names resolve against it */
    char *err;
    size_t errlen;
    bool say_found; /* type errors also name what was found ("..., got a string") */
};

/* Appends the key of s ("dns.servers[1]") to buf; the root contributes nothing. */
void cfg_key_path(const config_setting_t *s, char *buf, size_t len);

/* The file src (as libconfig recorded it, or NULL: the main file), as an operator would
 * open it. */
void cfg_source_file(const struct cfgread *c, const char *src, char *buf, size_t len);

/* "FILE:LINE: KEY: message" for s ("FILE: message" for the root); returns -1. */
int cfg_error(struct cfgread *c, const config_setting_t *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "expected <expected>" (with say_found: ", got <type of s>"); returns -1. */
int cfg_type_error(struct cfgread *c, const config_setting_t *s, const char *expected);

/* Every member of group g must be one of keys (NULL-terminated): "unknown option". */
int cfg_check_keys(struct cfgread *c, const config_setting_t *g, const char *const *keys);

/*
 * Member name of group g (g may be NULL: absent). cfg_get_string also sets *where to the
 * setting or NULL, for later errors about the value. cfg_get_number takes an integer or
 * a decimal number; unit (NULL or e.g. "seconds") is named in its errors.
 */
int cfg_get_string(struct cfgread *c, const config_setting_t *g, const char *name, const char **out,
                   const config_setting_t **where);
int cfg_get_bool(struct cfgread *c, const config_setting_t *g, const char *name, bool *out);
int cfg_get_int(struct cfgread *c, const config_setting_t *g, const char *name, long long min,
                long long max, long long *out);
int cfg_get_number(struct cfgread *c, const config_setting_t *g, const char *name, double min,
                   double max, const char *unit, double *out);

/* p made absolute against c->dir; allocated, never NULL. */
char *cfg_path_resolve(const struct cfgread *c, const char *p);

#endif
