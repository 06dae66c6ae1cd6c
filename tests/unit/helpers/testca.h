/*
 * Test certificates made at test time with the openssl command line: a CA (EC P-256) in
 * a temporary directory, and leaf certificates for given names, removed by testca_free.
 */
#ifndef S2S_TEST_TESTCA_H
#define S2S_TEST_TESTCA_H

#include <limits.h>
#include <stdbool.h>

struct testca;

struct testca_leaf {
    const char *cn;         /* subject CN; NULL: the first DNS name */
    const char *const *dns; /* NULL-terminated SAN dNSName list, or NULL */
    const char *xmpp_addr;  /* SAN otherName id-on-xmppAddr (UTF8String), or NULL */
    const char *srv_id;     /* SAN otherName id-on-dnsSRV (IA5String), or NULL */
    bool expired;           /* notAfter a day before notBefore (now) */
    bool with_ca;           /* append the CA certificate to the chain file */
};

struct testca_files {
    char cert[PATH_MAX]; /* PEM chain: leaf (then CA if with_ca) */
    char key[PATH_MAX];  /* PEM private key */
};

/* A new CA named cn in its own temporary directory; NULL (with a message) on failure. */
struct testca *testca_new(const char *cn);
/* The CA certificate (PEM), for ca_file. */
const char *testca_cert(const struct testca *ca);
const char *testca_dir(const struct testca *ca);
/* Issues <dir>/<name>.pem and <name>.key signed by ca. 0 or -1 (message on stderr). */
int testca_issue(struct testca *ca, const char *name, const struct testca_leaf *leaf,
                 struct testca_files *out);
/* Removes the directory and everything in it. */
void testca_free(struct testca *ca);

#endif
