/* log.c - Postfix-format logging to syslog, a file or stderr (see log.h).
 *
 * Used by every program. Formatting happens into a bounded stack buffer:
 * this module must work while memory is exhausted (mem.c panics through
 * it). A write error on the log file is not reported anywhere else: there
 * is nowhere else to report it.
 */
#include "base/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static char log_ident_buf[128] = "postern";
static enum log_target log_target_now = LOG_TARGET_STDERR;
static int log_file_fd = -1;
static int log_verbosity;
static int log_facility = LOG_MAIL;
static log_hook_fn *log_hook;
static void *log_hook_context;

int log_open(const char *ident, enum log_target target, const char *path, const char **error_r)
{
	snprintf(log_ident_buf, sizeof(log_ident_buf), "%s", ident);
	if (log_file_fd >= 0) {
		close(log_file_fd);
		log_file_fd = -1;
	}
	closelog();
	log_target_now = LOG_TARGET_STDERR;
	switch (target) {
	case LOG_TARGET_STDERR:
		break;
	case LOG_TARGET_SYSLOG:
		openlog(log_ident_buf, LOG_PID | LOG_NDELAY, log_facility);
		log_target_now = LOG_TARGET_SYSLOG;
		break;
	case LOG_TARGET_FILE:
		log_file_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (log_file_fd < 0) {
			static char error_buf[512];

			snprintf(error_buf, sizeof(error_buf), "open maillog_file %s: %s", path,
			         strerror(errno));
			*error_r = error_buf;
			return -1;
		}
		log_target_now = LOG_TARGET_FILE;
		break;
	}
	return 0;
}

int log_set_facility(const char *name)
{
	static const struct {
		const char *name;
		int facility;
	} facilities[] = {
	        {"mail", LOG_MAIL},     {"daemon", LOG_DAEMON}, {"user", LOG_USER},
	        {"local0", LOG_LOCAL0}, {"local1", LOG_LOCAL1}, {"local2", LOG_LOCAL2},
	        {"local3", LOG_LOCAL3}, {"local4", LOG_LOCAL4}, {"local5", LOG_LOCAL5},
	        {"local6", LOG_LOCAL6}, {"local7", LOG_LOCAL7},
	};

	for (size_t i = 0; i < sizeof(facilities) / sizeof(facilities[0]); i++) {
		if (strcmp(name, facilities[i].name) == 0) {
			log_facility = facilities[i].facility;
			return 0;
		}
	}
	return -1;
}

const char *log_ident(void)
{
	return log_ident_buf;
}

void log_set_verbose(int verbosity)
{
	log_verbosity = verbosity;
}

int log_verbose(void)
{
	return log_verbosity;
}

void log_set_hook(log_hook_fn *hook, void *context)
{
	log_hook = hook;
	log_hook_context = context;
}

static const char *severity_prefix(enum log_level level)
{
	switch (level) {
	case LOG_LEVEL_WARNING:
		return "warning: ";
	case LOG_LEVEL_ERROR:
		return "error: ";
	case LOG_LEVEL_FATAL:
		return "fatal: ";
	case LOG_LEVEL_PANIC:
		return "panic: ";
	default:
		return "";
	}
}

static int syslog_priority(enum log_level level)
{
	switch (level) {
	case LOG_LEVEL_DEBUG:
	case LOG_LEVEL_INFO:
		return LOG_INFO;
	case LOG_LEVEL_WARNING:
		return LOG_WARNING;
	case LOG_LEVEL_ERROR:
		return LOG_ERR;
	default:
		return LOG_CRIT;
	}
}

/* Replace control characters so a client cannot start a new log line. */
static void sanitize(char *text)
{
	for (unsigned char *p = (unsigned char *)text; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f)
			*p = '?';
}

static void write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char text[LOG_LINE_MAX + 4];
	char line[LOG_LINE_MAX + 512];
	int saved_errno = errno;
	int n;

	if (level == LOG_LEVEL_DEBUG && log_verbosity <= 0)
		return;
	errno = saved_errno; /* for %m */
	n = vsnprintf(text, LOG_LINE_MAX + 1, fmt, ap);
	if (n < 0)
		snprintf(text, sizeof(text), "(unformattable log message)");
	else if (n > LOG_LINE_MAX)
		memcpy(text + LOG_LINE_MAX - 3, "...", 4);
	sanitize(text);

	switch (log_target_now) {
	case LOG_TARGET_SYSLOG:
		syslog(syslog_priority(level), "%s%s", severity_prefix(level), text);
		break;
	case LOG_TARGET_FILE: {
		char stamp[32], host[256];
		time_t now = time(NULL);
		struct tm tm;

		localtime_r(&now, &tm);
		strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm);
		if (gethostname(host, sizeof(host)) != 0)
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		n = snprintf(line, sizeof(line), "%s %s %s[%ld]: %s%s\n", stamp, host,
		             log_ident_buf, (long)getpid(), severity_prefix(level), text);
		write_all(log_file_fd, line,
		          (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
		break;
	}
	case LOG_TARGET_STDERR:
		n = snprintf(line, sizeof(line), "%s: %s%s\n", log_ident_buf,
		             severity_prefix(level), text);
		write_all(STDERR_FILENO, line,
		          (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
		break;
	}
	if (log_hook != NULL)
		log_hook(level, text, log_hook_context);
	errno = saved_errno;
}

#define LOG_WRAPPER(name, level) \
	void name(const char *fmt, ...) \
	{ \
		va_list ap; \
		va_start(ap, fmt); \
		log_vmsg(level, fmt, ap); \
		va_end(ap); \
	}

LOG_WRAPPER(log_info, LOG_LEVEL_INFO)
LOG_WRAPPER(log_warning, LOG_LEVEL_WARNING)
LOG_WRAPPER(log_error, LOG_LEVEL_ERROR)

void log_debug(int level, const char *fmt, ...)
{
	va_list ap;

	if (level > log_verbosity)
		return;
	va_start(ap, fmt);
	log_vmsg(LOG_LEVEL_INFO, fmt, ap);
	va_end(ap);
}

void log_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LEVEL_FATAL, fmt, ap);
	va_end(ap);
	exit(1);
}

void log_panic(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LEVEL_PANIC, fmt, ap);
	va_end(ap);
	abort();
}
