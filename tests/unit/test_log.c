/* test_log.c - unit tests for lib/base/log and lib/conf/log_config: the
 * Postfix line format in maillog_file, severity prefixes, control
 * characters replaced, overlong text cut, %m, verbosity, and logging
 * set up from main.cf. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "base/fs.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/str.h"
#include "base/strv.h"
#include "conf/config.h"
#include "conf/log_config.h"

static char *temp_path(void)
{
	char tmpl[] = "/tmp/postern-test-log-XXXXXX";
	int fd = mkstemp(tmpl);

	assert_true(fd >= 0);
	close(fd);
	return xstrdup(tmpl);
}

static void read_log(const char *path, str_t *out)
{
	str_t error;

	str_init(&error);
	str_reset(out);
	assert_int_equal(fs_read_file(path, 1 << 20, out, &error), 0);
	str_free(&error);
}

static void test_file_format(void **state)
{
	char *path = temp_path();
	const char *error;
	str_t text;
	regex_t re;
	char expect[256];

	(void)state;
	str_init(&text);
	assert_int_equal(log_open("postern/test", LOG_TARGET_FILE, path, &error), 0);
	log_info("%s: client=localhost[127.0.0.1]", "4Xk9tF1Zz0");
	log_warning("bad thing at line %d", 7);
	errno = ENOENT;
	log_error("open /nowhere: %m");
	log_debug(1, "hidden at verbosity 0");
	log_set_verbose(1);
	log_debug(1, "shown at verbosity 1");
	log_set_verbose(0);
	read_log(path, &text);
	/* "Nov 24 08:14:44 host postern/test[123]: text" */
	snprintf(expect, sizeof(expect),
	         "^[A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} [^ ]+ "
	         "postern/test\\[%ld\\]: "
	         "4Xk9tF1Zz0: client=localhost\\[127\\.0\\.0\\.1\\]\n",
	         (long)getpid());
	assert_int_equal(regcomp(&re, expect, REG_EXTENDED | REG_NEWLINE), 0);
	assert_int_equal(regexec(&re, str_c(&text), 0, NULL, 0), 0);
	regfree(&re);
	assert_non_null(strstr(str_c(&text), "]: warning: bad thing at line 7\n"));
	assert_non_null(
	        strstr(str_c(&text), "]: error: open /nowhere: No such file or directory\n"));
	assert_null(strstr(str_c(&text), "hidden"));
	assert_non_null(strstr(str_c(&text), "]: shown at verbosity 1\n"));
	(void)log_open("postern/test", LOG_TARGET_STDERR, NULL, &error);
	unlink(path);
	free(path);
	str_free(&text);
}

static void test_sanitize_and_truncate(void **state)
{
	char *path = temp_path();
	const char *error;
	str_t text, big;
	const char *line2;

	(void)state;
	str_init(&text);
	str_init(&big);
	for (int i = 0; i < LOG_LINE_MAX * 2; i++)
		str_append_c(&big, 'x');
	assert_int_equal(log_open("postern/test", LOG_TARGET_FILE, path, &error), 0);
	log_info("forged\nJan  1 00:00:00 host postern/smtpd[1]: fake\r\x1b[31m");
	log_info("%s", str_c(&big));
	read_log(path, &text);
	/* the client's newline did not start a second log line */
	line2 = strchr(str_c(&text), '\n') + 1;
	assert_non_null(
	        strstr(str_c(&text), "forged?Jan  1 00:00:00 host postern/smtpd[1]: fake??[31m\n"));
	assert_non_null(strstr(line2, "xxx...\n"));
	assert_true(strlen(line2) < LOG_LINE_MAX + 200);
	(void)log_open("postern/test", LOG_TARGET_STDERR, NULL, &error);
	unlink(path);
	free(path);
	str_free(&text);
	str_free(&big);
}

struct captured {
	strv_t lines;
};

static void capture(enum log_level level, const char *text, void *context)
{
	struct captured *c = context;

	strv_add_owned(&c->lines, xasprintf("%d %s", (int)level, text));
}

static void test_hook_and_unopenable_file(void **state)
{
	struct captured c = {STRV_INIT};
	const char *error;

	(void)state;
	log_set_hook(capture, &c);
	assert_int_equal(
	        log_open("postern/test", LOG_TARGET_FILE, "/nonexistent-dir/x.log", &error), -1);
	assert_non_null(strstr(error, "open maillog_file /nonexistent-dir/x.log: No such file"));
	log_warning("still logged to stderr");
	assert_int_equal(c.lines.n, 1);
	assert_string_equal(c.lines.v[0], "2 still logged to stderr");
	log_set_hook(NULL, NULL);
	strv_free(&c.lines);
}

static void test_log_config(void **state)
{
	char *path = temp_path();
	char *main_cf = xasprintf("syslog_name = postern-b\nmaillog_file = %s\n", path);
	strv_t errors = STRV_INIT;
	struct config *cfg;
	str_t error, text;

	(void)state;
	str_init(&error);
	str_init(&text);
	config_parse_text(main_cf, strlen(main_cf), "main.cf", "/etc/postern", &cfg, &errors);
	assert_int_equal(log_config_apply(cfg, "smtpd", false, &error), 0);
	log_info("connect from localhost[127.0.0.1]");
	read_log(path, &text);
	assert_non_null(strstr(str_c(&text), " postern-b/smtpd["));
	config_destroy(&cfg);

	config_parse_text("syslog_facility = kernel\n", 25, "main.cf", "/etc/postern", &cfg,
	                  &errors);
	assert_int_equal(log_config_apply(cfg, "smtpd", true, &error), -1);
	assert_non_null(strstr(str_c(&error), "main.cf, line 1: bad syslog_facility \"kernel\""));
	assert_string_equal(log_ident(), "postern/smtpd");
	config_destroy(&cfg);
	unlink(path);
	free(path);
	free(main_cf);
	str_free(&error);
	str_free(&text);
	strv_free(&errors);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_file_format),
	        cmocka_unit_test(test_sanitize_and_truncate),
	        cmocka_unit_test(test_hook_and_unopenable_file),
	        cmocka_unit_test(test_log_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
