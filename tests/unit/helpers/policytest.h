/*
 * Loading a policy for a test: a configuration text (or file) read with libconfig, its
 * "policy" section handed to policy_conf_load() as conf.c will hand it.
 */
#ifndef S2S_TEST_POLICYTEST_H
#define S2S_TEST_POLICYTEST_H

#include <stddef.h>

struct policy;

/* Reads path; NULL with err set ("FILE:LINE: ..." for syntax and policy errors). */
struct policy *policytest_load_file(const char *path, char *err, size_t errlen);
/* Writes text to dir/name, then loads it. */
struct policy *policytest_load_text(const char *dir, const char *name, const char *text, char *err,
                                    size_t errlen);

#endif
