/* `s2sproxy ctl`: send one request line to the admin socket, print the answer. */
#include "s2s/cmd_ctl.h"

#include <errno.h>
#include <getopt.h>
#include <libconfig.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "s2s/conf.h"
#include "s2s/ctl.h"

#define EXIT_USAGE 2

static void
usage(FILE *fp)
{
    fprintf(fp, "usage: s2sproxy ctl [-c FILE] [-s SOCKET] [--json] COMMAND [ARG]\n"
                "commands: streams, domains, stats, close DOMAIN|STREAM-ID, reload, policy\n");
}

/* ctl.socket from the file, relative to its directory; the default when absent. */
static int
socket_path(const char *conf_path, char *out, size_t len)
{
    config_t cfg;
    const char *v = "/run/s2sproxy/ctl.sock";
    char dir[PATH_MAX];
    const char *slash;
    int rc = 0;

    config_init(&cfg);
    if (config_read_file(&cfg, conf_path) != CONFIG_TRUE) {
        fprintf(stderr, "s2sproxy ctl: %s:%d: %s (give the socket with -s)\n", conf_path,
                config_error_line(&cfg), config_error_text(&cfg));
        config_destroy(&cfg);
        return -1;
    }
    config_lookup_string(&cfg, "ctl.socket", &v);
    if (*v == '\0') {
        fprintf(stderr, "s2sproxy ctl: %s: ctl.socket is off\n", conf_path);
        rc = -1;
    } else if (v[0] == '/') {
        snprintf(out, len, "%s", v);
    } else {
        slash = strrchr(conf_path, '/');
        if (slash == NULL)
            snprintf(dir, sizeof(dir), ".");
        else
            snprintf(dir, sizeof(dir), "%.*s", (int)(slash - conf_path), conf_path);
        if ((size_t)snprintf(out, len, "%s/%s", dir, v) >= len)
            rc = -1;
    }
    config_destroy(&cfg);
    return rc;
}

static json_t *
request(const char *path, const char *line)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    char buf[4096];
    size_t cap = 0, used = 0;
    char *all = NULL;
    json_error_t jerr;
    json_t *ans;
    ssize_t n;
    int fd;

    if (strlen(path) >= sizeof(sun.sun_path)) {
        fprintf(stderr, "s2sproxy ctl: %s: path too long\n", path);
        return NULL;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
        connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
        fprintf(stderr, "s2sproxy ctl: %s: %s\n", path, strerror(errno));
        if (fd != -1)
            close(fd);
        return NULL;
    }
    if (write(fd, line, strlen(line)) != (ssize_t)strlen(line) || write(fd, "\n", 1) != 1) {
        fprintf(stderr, "s2sproxy ctl: %s: write: %s\n", path, strerror(errno));
        close(fd);
        return NULL;
    }
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        if (used + (size_t)n + 1 > cap) {
            cap = (used + (size_t)n + 1) * 2;
            if ((all = realloc(all, cap)) == NULL) {
                perror("realloc");
                exit(1);
            }
        }
        memcpy(all + used, buf, (size_t)n);
        used += (size_t)n;
    }
    close(fd);
    if (all == NULL) {
        fprintf(stderr, "s2sproxy ctl: %s: no answer\n", path);
        return NULL;
    }
    all[used] = '\0';
    if ((ans = json_loads(all, 0, &jerr)) == NULL)
        fprintf(stderr, "s2sproxy ctl: bad answer: %s\n", jerr.text);
    free(all);
    return ans;
}

/* --- text rendering ------------------------------------------------------------------- */

static const char *
str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));

    return s != NULL ? s : "-";
}

static long long
num(const json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

static void
render_streams(FILE *fp, const json_t *ans)
{
    const json_t *st, *pr;
    size_t i, j;

    fprintf(fp, "%-8s %-3s %-40s %-22s %-9s %-7s %-10s %-13s %8s %6s %7s %7s %5s\n", "ID", "DIR",
            "PAIRS (local>remote)", "PEER", "STATE", "TLS", "CERT", "AUTH", "AGE", "IDLE", "ST-IN",
            "ST-OUT", "QUEUE");
    json_array_foreach(json_object_get(ans, "streams"), i, st)
    {
        char pairs[512] = "";
        size_t off = 0;

        json_array_foreach(json_object_get(st, "pairs"), j, pr)
        {
            int w = snprintf(pairs + off, sizeof(pairs) - off, "%s%s>%s", j ? "," : "",
                             str(pr, "local"), str(pr, "remote"));
            if (w < 0 || (size_t)w >= sizeof(pairs) - off)
                break;
            off += (size_t)w;
        }
        fprintf(fp, "%-8s %-3s %-40s %-22s %-9s %-7s %-10s %-13s %7.0fs %5.0fs %7lld %7lld %5lld\n",
                str(st, "id"), str(st, "direction"), off ? pairs : "-", str(st, "peer"),
                str(st, "state"), str(st, "tls_version"), str(st, "certificate"), str(st, "auth"),
                json_number_value(json_object_get(st, "age")),
                json_number_value(json_object_get(st, "idle")), num(st, "stanzas_in"),
                num(st, "stanzas_out"), num(st, "queue"));
    }
}

static void
render_domains(FILE *fp, const json_t *ans)
{
    const char *k;
    const json_t *d, *e;

    fprintf(fp, "%-32s %4s %4s %-8s %-10s %-13s %8s %8s %5s %s\n", "DOMAIN", "IN", "OUT", "TLS",
            "CERT", "AUTH", "ST-IN", "ST-OUT", "QUEUE", "LAST ERROR");
    json_object_foreach((json_t *)json_object_get(ans, "domains"), k, d)
    {
        e = json_object_get(d, "last_error");
        fprintf(fp, "%-32s %4lld %4lld %-8s %-10s %-13s %8lld %8lld %5lld", k, num(d, "streams_in"),
                num(d, "streams_out"), str(d, "tls_version"), str(d, "certificate"), str(d, "auth"),
                num(d, "stanzas_in"), num(d, "stanzas_out"), num(d, "queue"));
        if (json_is_object(e))
            fprintf(fp, " %s (%s), retry in %.0fs", str(e, "condition"), str(e, "reason"),
                    json_number_value(json_object_get(d, "retry_in")));
        fputc('\n', fp);
    }
}

static void
render_stats(FILE *fp, const json_t *ans)
{
    const json_t *in = json_object_get(ans, "inbound"), *out = json_object_get(ans, "outbound");
    const json_t *st = json_object_get(ans, "streams"), *v, *l;
    const char *k;
    size_t i;

    fprintf(fp, "inbound:  accepted %lld (bounced %lld, dropped %lld by policy), rejected %lld\n",
            num(in, "accepted"), num(in, "bounced"), num(in, "dropped"), num(in, "rejected"));
    fprintf(fp, "outbound: accepted %lld = delivered %lld + bounced %lld + dropped %lld + queued\n",
            num(out, "accepted"), num(out, "delivered"), num(out, "bounced"), num(out, "dropped"));
    json_object_foreach((json_t *)json_object_get(out, "bounced_by"), k, v)
        fprintf(fp, "  bounced %-28s %lld\n", k, (long long)json_integer_value(v));
    json_object_foreach((json_t *)json_object_get(ans, "dropped_by"), k, v)
        fprintf(fp, "  dropped %-28s %lld\n", k, (long long)json_integer_value(v));
    if ((v = json_object_get(ans, "policy")) != NULL)
        fprintf(fp, "policy:   bounced %lld, dropped %lld, refused %lld, paused %lld, held %lld\n",
                num(v, "bounced"), num(v, "dropped"), num(v, "refused"), num(v, "paused"),
                num(v, "held"));
    if ((v = json_object_get(ans, "ping")) != NULL)
        fprintf(fp, "ping:     sent %lld, answered %lld, late %lld, stale %lld\n", num(v, "sent"),
                num(v, "answered"), num(v, "late"), num(v, "stale"));
    fprintf(fp, "streams:  %lld in, %lld out live; %lld in, %lld out opened\n", num(st, "live_in"),
            num(st, "live_out"), num(st, "opened_in"), num(st, "opened_out"));
    json_array_foreach(json_object_get(ans, "links"), i, l)
        fprintf(fp, "link %s: %s, to local %lld (delivered %lld), from local %lld, queued %lld\n",
                str(l, "domain"), str(l, "state"), num(l, "to_local"), num(l, "delivered"),
                num(l, "from_local"), num(l, "queued"));
}

static void
render_policy(FILE *fp, const json_t *ans)
{
    const json_t *r, *c = json_object_get(ans, "counters");
    size_t i;

    if (!json_is_true(json_object_get(ans, "configured")))
        fprintf(fp, "no policy section: the built-in default (open federation, TLS required)\n");
    fprintf(fp, "%-24s %-32s %12s\n", "RULE", "AT", "HITS");
    json_array_foreach(json_object_get(ans, "rules"), i, r)
    {
        char at[300];

        if (json_is_string(json_object_get(r, "file")))
            snprintf(at, sizeof(at), "%s:%lld", str(r, "file"), num(r, "line"));
        else
            snprintf(at, sizeof(at), "(built-in)");
        fprintf(fp, "%-24s %-32s %12lld\n", str(r, "name"), at, num(r, "hits"));
    }
    fprintf(fp, "refusals by rule (since start):\n");
    fprintf(fp, "%-24s %10s %10s %10s\n", "RULE", "STREAM", "ROUTE", "STANZA");
    json_array_foreach(json_object_get(ans, "refusals"), i, r)
        fprintf(fp, "%-24s %10lld %10lld %10lld\n", str(r, "rule"), num(r, "stream"),
                num(r, "route"), num(r, "stanza"));
    fprintf(fp, "bounced %lld, dropped %lld, refused %lld, paused %lld, held %lld\n",
            num(c, "bounced"), num(c, "dropped"), num(c, "refused"), num(c, "paused"),
            num(c, "held"));
}

void
cmd_ctl_render(FILE *fp, const char *cmd, const json_t *ans)
{
    const json_t *v;
    size_t i;

    if (strcmp(cmd, "streams") == 0)
        render_streams(fp, ans);
    else if (strcmp(cmd, "domains") == 0)
        render_domains(fp, ans);
    else if (strcmp(cmd, "stats") == 0)
        render_stats(fp, ans);
    else if (strcmp(cmd, "policy") == 0)
        render_policy(fp, ans);
    else if (strcmp(cmd, "close") == 0) {
        json_array_foreach(json_object_get(ans, "closed"), i, v)
            fprintf(fp, "closing %s\n", json_string_value(v));
    } else if (strcmp(cmd, "reload") == 0)
        fprintf(fp, "reloaded %s\n", str(ans, "reloaded"));
    else if (json_object_get(ans, "message") != NULL)
        fprintf(fp, "%s\n", str(ans, "message"));
    else
        json_dumpf(ans, fp, JSON_INDENT(2));
}

int
cmd_ctl(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *conf_path = CONF_DEFAULT_PATH, *sock = NULL;
    char path[PATH_MAX], line[CTL_MAX_LINE];
    bool json = false;
    json_t *ans;
    int ch, rc;

    optind = 1;
    while ((ch = getopt_long(argc, argv, "+c:s:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            conf_path = optarg;
            break;
        case 's':
            sock = optarg;
            break;
        case 'j':
            json = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    /* --json may also follow the command */
    if (argc - optind >= 2 && strcmp(argv[argc - 1], "--json") == 0) {
        json = true;
        argc--;
    }
    if (optind >= argc || argc - optind > 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    snprintf(line, sizeof(line), "%s%s%s", argv[optind], argc - optind == 2 ? " " : "",
             argc - optind == 2 ? argv[optind + 1] : "");
    if (sock != NULL)
        snprintf(path, sizeof(path), "%s", sock);
    else if (socket_path(conf_path, path, sizeof(path)) == -1)
        return 1;
    if ((ans = request(path, line)) == NULL)
        return 1;
    rc = json_object_get(ans, "error") != NULL ? 1 : 0;
    if (json) {
        json_dumpf(ans, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
    } else if (rc != 0)
        fprintf(stderr, "s2sproxy ctl: %s\n", str(ans, "error"));
    else
        cmd_ctl_render(stdout, argv[optind], ans);
    json_decref(ans);
    return rc;
}
