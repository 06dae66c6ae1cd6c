#include "tests/unit/helpers/policytest.h"

#include <libconfig.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s2s/policy.h"
#include "s2s/policy_conf.h"

struct policy *
policytest_load_file(const char *path, char *err, size_t errlen)
{
    char dir[PATH_MAX], *slash;
    struct policy *p = NULL;
    config_t cfg;

    if (realpath(path, dir) == NULL) {
        snprintf(err, errlen, "%s: cannot read", path);
        return NULL;
    }
    if ((slash = strrchr(dir, '/')) != NULL)
        *slash = '\0';
    config_init(&cfg);
    config_set_include_dir(&cfg, dir);
    if (config_read_file(&cfg, path) != CONFIG_TRUE)
        snprintf(err, errlen, "%s:%d: %s", config_error_file(&cfg) ? config_error_file(&cfg) : path,
                 config_error_line(&cfg), config_error_text(&cfg));
    else
        p = policy_conf_load(config_lookup(&cfg, "policy"), dir, err, errlen);
    config_destroy(&cfg);
    return p;
}

struct policy *
policytest_load_text(const char *dir, const char *name, const char *text, char *err, size_t errlen)
{
    char path[PATH_MAX * 2];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if ((f = fopen(path, "w")) == NULL) {
        snprintf(err, errlen, "%s: cannot write", path);
        return NULL;
    }
    fputs(text, f);
    fclose(f);
    return policytest_load_file(path, err, errlen);
}
