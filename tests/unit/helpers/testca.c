/*
 * Test CA: runs the openssl command line (it is what operators use, and keeps the tests
 * independent of the code under test), each run waited for by PID.
 */
#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/wait.h>

#include "testca.h"

struct testca {
    char dir[PATH_MAX];
    char cert[PATH_MAX];
    char key[PATH_MAX];
    unsigned serial;
};

/* snprintf that aborts on truncation (paths are short temp names). */
static void
pathf(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= len)
        abort();
}

/* Runs argv (NULL-terminated), output to <dir>/openssl.log; 0 if it exited 0. */
static int
testca_run(const struct testca *ca, char *const argv[])
{
    char log[PATH_MAX];
    pid_t pid;
    int st, fd;

    pathf(log, sizeof(log), "%s/openssl.log", ca->dir);
    if ((pid = fork()) == -1)
        return -1;
    if (pid == 0) {
        FILE *f = freopen(log, "a", stdout);
        if (f == NULL || dup2(fileno(stdout), 2) == -1)
            _exit(126);
        if ((fd = open("/dev/null", 0)) != -1)
            dup2(fd, 0);
        execvp(argv[0], argv);
        _exit(127);
    }
    while (waitpid(pid, &st, 0) == -1)
        if (errno != EINTR)
            return -1;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "testca: %s %s failed, see %s\n", argv[0], argv[1], log);
        return -1;
    }
    return 0;
}

static int
testca_genkey(const struct testca *ca, const char *path)
{
    char *argv[] = {"openssl", "genpkey",    "-algorithm",
                    "EC",      "-pkeyopt",   "ec_paramgen_curve:P-256",
                    "-out",    (char *)path, NULL};

    return testca_run(ca, argv);
}

struct testca *
testca_new(const char *cn)
{
    struct testca *ca;
    const char *tmp = getenv("TMPDIR");
    char subj[256];

    if ((ca = calloc(1, sizeof(*ca))) == NULL)
        return NULL;
    snprintf(ca->dir, sizeof(ca->dir), "%s/s2s-testca-XXXXXX", tmp ? tmp : "/tmp");
    if (mkdtemp(ca->dir) == NULL) {
        fprintf(stderr, "testca: mkdtemp: %s\n", strerror(errno));
        free(ca);
        return NULL;
    }
    pathf(ca->key, sizeof(ca->key), "%s/ca.key", ca->dir);
    pathf(ca->cert, sizeof(ca->cert), "%s/ca.pem", ca->dir);
    snprintf(subj, sizeof(subj), "/CN=%s", cn);
    char *argv[] = {"openssl", "req",
                    "-x509",   "-new",
                    "-key",    ca->key,
                    "-subj",   subj,
                    "-days",   "30",
                    "-addext", "basicConstraints=critical,CA:TRUE",
                    "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                    "-out",    ca->cert,
                    NULL};
    if (testca_genkey(ca, ca->key) == -1 || testca_run(ca, argv) == -1) {
        testca_free(ca);
        return NULL;
    }
    ca->serial = 1;
    return ca;
}

const char *
testca_cert(const struct testca *ca)
{
    return ca->cert;
}

const char *
testca_dir(const struct testca *ca)
{
    return ca->dir;
}

static int
testca_write_ext(const char *path, const struct testca_leaf *leaf)
{
    FILE *f;
    const char *sep = "";

    if ((f = fopen(path, "w")) == NULL)
        return -1;
    fprintf(f, "[ext]\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
               "extendedKeyUsage=serverAuth,clientAuth\n");
    if ((leaf->dns && leaf->dns[0]) || leaf->xmpp_addr || leaf->srv_id) {
        fprintf(f, "subjectAltName=");
        for (size_t i = 0; leaf->dns && leaf->dns[i]; i++, sep = ",")
            fprintf(f, "%sDNS:%s", sep, leaf->dns[i]);
        /* RFC 6120 §13.7.1.4 XmppAddr, RFC 4985 SRVName. */
        if (leaf->xmpp_addr) {
            fprintf(f, "%sotherName:1.3.6.1.5.5.7.8.5;UTF8:%s", sep, leaf->xmpp_addr);
            sep = ",";
        }
        if (leaf->srv_id)
            fprintf(f, "%sotherName:1.3.6.1.5.5.7.8.7;IA5STRING:%s", sep, leaf->srv_id);
        fprintf(f, "\n");
    }
    return fclose(f) == 0 ? 0 : -1;
}

static int
testca_append(const char *dst, const char *src)
{
    FILE *in, *out;
    char buf[4096];
    size_t n;
    int r = 0;

    if ((in = fopen(src, "r")) == NULL)
        return -1;
    if ((out = fopen(dst, "a")) == NULL) {
        fclose(in);
        return -1;
    }
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            r = -1;
    fclose(in);
    if (fclose(out) != 0)
        r = -1;
    return r;
}

int
testca_issue(struct testca *ca, const char *name, const struct testca_leaf *leaf,
             struct testca_files *out)
{
    char csr[PATH_MAX], ext[PATH_MAX], subj[256], serial[32];
    const char *cn = leaf->cn ? leaf->cn : (leaf->dns ? leaf->dns[0] : name);

    pathf(out->key, sizeof(out->key), "%s/%s.key", ca->dir, name);
    pathf(out->cert, sizeof(out->cert), "%s/%s.pem", ca->dir, name);
    pathf(csr, sizeof(csr), "%s/%s.csr", ca->dir, name);
    pathf(ext, sizeof(ext), "%s/%s.ext", ca->dir, name);
    snprintf(subj, sizeof(subj), "/CN=%s", cn);
    snprintf(serial, sizeof(serial), "%u", ++ca->serial);
    char *req[] = {"openssl", "req", "-new", "-key", out->key, "-subj", subj, "-out", csr, NULL};
    /* -days -1 gives notAfter one day before notBefore: expired, and nothing else. */
    char *sign[] = {"openssl",
                    "x509",
                    "-req",
                    "-in",
                    csr,
                    "-CA",
                    ca->cert,
                    "-CAkey",
                    ca->key,
                    "-set_serial",
                    serial,
                    "-days",
                    leaf->expired ? "-1" : "30",
                    "-extfile",
                    ext,
                    "-extensions",
                    "ext",
                    "-out",
                    out->cert,
                    NULL};
    if (testca_genkey(ca, out->key) == -1 || testca_write_ext(ext, leaf) == -1 ||
        testca_run(ca, req) == -1 || testca_run(ca, sign) == -1)
        return -1;
    if (leaf->with_ca && testca_append(out->cert, ca->cert) == -1)
        return -1;
    return 0;
}

void
testca_free(struct testca *ca)
{
    DIR *d;
    struct dirent *de;
    char path[PATH_MAX * 2];

    if (ca == NULL)
        return;
    if ((d = opendir(ca->dir)) != NULL) {
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            pathf(path, sizeof(path), "%s/%s", ca->dir, de->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(ca->dir);
    free(ca);
}
