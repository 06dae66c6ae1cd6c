/*
 * Logging: one line per event, to stderr or syslog.
 *
 * Lines read "LEVEL what key=value ...": callers put the peer, the domain pair, the
 * stream id and the reason in the message. fatal()/fatalx() are for start-up errors and
 * broken invariants only, never for anything a peer can cause.
 */
#ifndef S2S_LOG_H
#define S2S_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum log_level {
    LOG_LVL_ERR = 0,
    LOG_LVL_WARN,
    LOG_LVL_INFO,
    LOG_LVL_DEBUG,
};

/* A sink receives every line that passes the level filter (tests capture lines with it). */
typedef void (*log_sink_fn)(enum log_level level, const char *line, void *arg);

void log_init(const char *ident, enum log_level level, bool use_syslog);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
bool log_enabled(enum log_level level);
/* Replaces stderr/syslog output with sink (NULL restores it). */
void log_set_sink(log_sink_fn sink, void *arg);
/* Parses "error", "warning", "info", "debug"; returns -1 for anything else. */
int log_level_parse(const char *name);
const char *log_level_name(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level level, const char *fmt, va_list ap);

#define log_err(...)  log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_enabled(LOG_LVL_DEBUG))                                                            \
            log_msg(LOG_LVL_DEBUG, __VA_ARGS__);                                                   \
    } while (0)

/* Logs with strerror(errno) appended, then exits 1. */
_Noreturn void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Logs, then exits 1. */
_Noreturn void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
