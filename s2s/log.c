#include "s2s/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

static enum log_level cur_level = LOG_LVL_INFO;
static bool to_syslog;
static const char *log_ident = "s2sproxy";
static log_sink_fn sink;
static void *sink_arg;

static const char *const level_names[] = {"error", "warning", "info", "debug"};

void
log_init(const char *ident, enum log_level level, bool use_syslog)
{
    log_ident = ident;
    cur_level = level;
    if (to_syslog && !use_syslog)
        closelog();
    to_syslog = use_syslog;
    if (use_syslog)
        openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void
log_set_level(enum log_level level)
{
    cur_level = level;
}

enum log_level
log_get_level(void)
{
    return cur_level;
}

bool
log_enabled(enum log_level level)
{
    return level <= cur_level;
}

void
log_set_sink(log_sink_fn fn, void *arg)
{
    sink = fn;
    sink_arg = arg;
}

int
log_level_parse(const char *name)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
        if (strcmp(name, level_names[i]) == 0)
            return (int)i;
    return -1;
}

const char *
log_level_name(enum log_level level)
{
    return level <= LOG_LVL_DEBUG ? level_names[level] : "?";
}

static int
syslog_priority(enum log_level level)
{
    switch (level) {
    case LOG_LVL_ERR:
        return LOG_ERR;
    case LOG_LVL_WARN:
        return LOG_WARNING;
    case LOG_LVL_INFO:
        return LOG_INFO;
    default:
        return LOG_DEBUG;
    }
}

void
log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
    char line[2048];

    if (!log_enabled(level))
        return;
    vsnprintf(line, sizeof(line), fmt, ap);
    if (sink != NULL) {
        sink(level, line, sink_arg);
        return;
    }
    if (to_syslog) {
        syslog(syslog_priority(level), "%s", line);
        return;
    }

    struct timespec ts;
    struct tm tm;
    char stamp[32];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "%s.%03ldZ %s[%s] %s\n", stamp, ts.tv_nsec / 1000000, log_ident,
            log_level_name(level), line);
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, fmt, ap);
    va_end(ap);
}

void
fatal(const char *fmt, ...)
{
    char msg[1024];
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_err("fatal: %s: %s", msg, strerror(saved));
    exit(1);
}

void
fatalx(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_err("fatal: %s", msg);
    exit(1);
}
