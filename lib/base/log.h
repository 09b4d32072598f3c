/* log.h - logging in Postfix's line format.
 *
 * Every line is "<syslog_name>/<service>[pid]: [severity: ]text", sent to
 * syslog (facility mail), to a maillog_file with a traditional timestamp
 * and host name in front, or to stderr for command-line programs, so that
 * pflogsumm and other Postfix log tooling read postern's logs unchanged.
 *
 * Severities have fixed consequences: info and warning only log; error logs
 * (the caller decides what to do); fatal logs and exits 1 (broken
 * configuration only); panic logs and aborts (broken internal invariant).
 * "%m" expands to strerror(errno) as in syslog(3). Control characters in
 * the text are replaced by '?' so outside input cannot forge log lines.
 */
#ifndef POSTERN_LOG_H
#define POSTERN_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_LEVEL_DEBUG,
	LOG_LEVEL_INFO,
	LOG_LEVEL_WARNING,
	LOG_LEVEL_ERROR,
	LOG_LEVEL_FATAL,
	LOG_LEVEL_PANIC,
};

enum log_target {
	LOG_TARGET_STDERR,
	LOG_TARGET_SYSLOG,
	LOG_TARGET_FILE,
};

/* Longest text of one log line; longer text is cut and marked "...". */
#define LOG_LINE_MAX 4000

/* Set the program name shown in every line ("postern/smtpd") and where
 * lines go. path is the maillog_file for LOG_TARGET_FILE, else ignored.
 * Returns 0, or -1 with *error_r set when the file cannot be opened (the
 * target then stays stderr). May be called again on reload. Syslog uses
 * facility LOG_MAIL unless log_set_facility() chose another. */
int log_open(const char *ident, enum log_target target, const char *path, const char **error_r);
/* Syslog facility by name ("mail", "daemon", "user", "local0".."local7").
 * -1 for an unknown name. Takes effect at the next log_open. */
int log_set_facility(const char *name);
/* The ident given to log_open ("postern" before any call). */
const char *log_ident(void);
/* 0 = normal; each -v adds one; log_debug(level, ...) prints when level <= verbosity. */
void log_set_verbose(int verbosity);
int log_verbose(void);

/* A hook that receives every line (level, text without prefix) in addition
 * to the normal target; used by unit tests to assert on warnings. NULL
 * removes it. */
typedef void log_hook_fn(enum log_level level, const char *text, void *context);
void log_set_hook(log_hook_fn *hook, void *context);

void log_debug(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void log_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void log_vmsg(enum log_level level, const char *fmt, va_list ap)
        __attribute__((format(printf, 2, 0)));

#endif
