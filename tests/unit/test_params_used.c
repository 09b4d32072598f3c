/* test_params_used.c - the parameter table is honest: every parameter is
 * either read by some code or marked "not yet" (or informational) in
 * lib/conf/params.c, and none marked "not yet" is read.
 *
 * "Read" means the name occurs as a string literal (which covers the typed
 * getters, config_int(cfg, "name") ...) in a .c file under lib/ or server/
 * other than lib/conf/params.c, comments left out; or the parameter is
 * referenced as $name / ${name} / $(name) by the default of a parameter
 * that is read (data_directory through database's default). The tests run
 * from the repository root (tests/unit/run.sh via `make unit`), so the
 * source tree is at ./lib and ./server. Also checked: the scan finds an
 * unread entry in a synthetic table, and the "not yet" warnings compare
 * values, not text. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "base/fs.h"
#include "base/mem.h"
#include "base/str.h"
#include "base/strv.h"
#include "conf/config.h"
#include "conf/params.h"

/* Append text without its C comments (string and character literals kept
 * whole, so "a/ *b" in a string is not a comment). */
static void append_without_comments(str_t *out, const char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		if (s[i] == '/' && i + 1 < len && s[i + 1] == '*') {
			const char *end = strstr(s + i + 2, "*/");

			i = end != NULL ? (size_t)(end - s) + 2 : len;
			str_append(out, " ");
		} else if (s[i] == '/' && i + 1 < len && s[i + 1] == '/') {
			while (i < len && s[i] != '\n')
				i++;
		} else if (s[i] == '"' || s[i] == '\'') {
			char q = s[i];
			size_t start = i++;

			while (i < len && s[i] != q && s[i] != '\n')
				i += s[i] == '\\' && i + 1 < len ? 2 : 1;
			if (i < len)
				i++;
			str_append_n(out, s + start, i - start);
		} else {
			str_append_n(out, s + i, 1);
			i++;
		}
	}
	str_append(out, "\n");
}

/* Every .c file under dir (recursively) but skip, appended to out. */
static void load_sources(const char *dir, const char *skip, str_t *out)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (d == NULL)
		fail_msg("cannot open %s: run the unit tests from the repository root", dir);
	while ((de = readdir(d)) != NULL) {
		char *path;
		struct stat st;
		size_t n = strlen(de->d_name);

		if (de->d_name[0] == '.')
			continue;
		path = xasprintf("%s/%s", dir, de->d_name);
		if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
			load_sources(path, skip, out);
		} else if (n > 2 && strcmp(de->d_name + n - 2, ".c") == 0 &&
		           strcmp(path, skip) != 0) {
			FILE *f = fopen(path, "r");
			str_t text;
			char buf[65536];
			size_t got;

			assert_non_null(f);
			str_init(&text);
			while ((got = fread(buf, 1, sizeof(buf), f)) > 0)
				str_append_n(&text, buf, got);
			fclose(f);
			append_without_comments(out, str_c(&text), text.len);
			str_free(&text);
		}
		free(path);
	}
	closedir(d);
}

static bool literal_in(const char *source, const char *name)
{
	char *quoted = xasprintf("\"%s\"", name);
	bool found = strstr(source, quoted) != NULL;

	free(quoted);
	return found;
}

static size_t index_of(const struct param_def *defs, size_t n, const char *name, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(defs[i].name) == len && strncmp(defs[i].name, name, len) == 0)
			return i;
	return n;
}

/* Mark read[] for each parameter whose name is a string literal in source,
 * then, until nothing changes, for each one referenced as $name, ${name}
 * or $(name) by the default of a parameter already marked. */
static void find_read(const struct param_def *defs, size_t n, const char *source, bool *read)
{
	bool changed = true;

	for (size_t i = 0; i < n; i++)
		read[i] = literal_in(source, defs[i].name);
	while (changed) {
		changed = false;
		for (size_t i = 0; i < n; i++) {
			if (!read[i])
				continue;
			for (const char *p = strchr(defs[i].defval, '$'); p != NULL;
			     p = strchr(p + 1, '$')) {
				const char *name = p + 1;
				size_t len, j;

				if (*name == '{' || *name == '(')
					name++;
				len = strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_");
				j = index_of(defs, n, name, len);
				if (j < n && !read[j]) {
					read[j] = true;
					changed = true;
				}
			}
		}
	}
}

/* Names of implemented parameters nobody reads go to unread; names of
 * parameters marked not yet that are read go to wrongly_marked. */
static void check_table(const struct param_def *defs, size_t n, const char *source, strv_t *unread,
                        strv_t *wrongly_marked)
{
	bool *read = xcalloc(n > 0 ? n : 1, sizeof(*read));

	find_read(defs, n, source, read);
	for (size_t i = 0; i < n; i++) {
		if (!read[i] && defs[i].status == PARAM_IMPLEMENTED)
			strv_add(unread, defs[i].name);
		if (read[i] && defs[i].status == PARAM_NOT_YET)
			strv_add(wrongly_marked, defs[i].name);
	}
	free(read);
}

static char *join(const strv_t *sv)
{
	char *out;
	str_t s;

	str_init(&s);
	for (size_t i = 0; i < sv->n; i++)
		str_appendf(&s, "%s%s", i > 0 ? " " : "", sv->v[i]);
	out = str_steal(&s);
	str_free(&s); /* str_steal leaves s empty but allocated */
	return out;
}

static void test_table_is_honest(void **state)
{
	size_t n = param_count();
	struct param_def *defs = xcalloc(n, sizeof(*defs));
	strv_t unread = STRV_INIT, wrong = STRV_INIT;
	str_t source;
	char *a, *b;

	(void)state;
	for (size_t i = 0; i < n; i++)
		defs[i] = *param_at(i);
	str_init(&source);
	load_sources("lib", "lib/conf/params.c", &source);
	load_sources("server", "", &source);
	/* a sanity check of the scan itself: these are surely read */
	assert_true(literal_in(str_c(&source), "message_size_limit"));
	assert_true(literal_in(str_c(&source), "virtual_mailbox_maps"));
	check_table(defs, n, str_c(&source), &unread, &wrong);
	a = join(&unread);
	b = join(&wrong);
	if (unread.n > 0)
		print_error("read by no code and not marked NOT_YET in lib/conf/params.c: %s\n", a);
	if (wrong.n > 0)
		print_error("marked NOT_YET in lib/conf/params.c but read by code: %s\n", b);
	assert_string_equal(a, "");
	assert_string_equal(b, "");
	free(a);
	free(b);
	strv_free(&unread);
	strv_free(&wrong);
	str_free(&source);
	free(defs);
}

/* The same scan on a made-up table and source: it must name the unread
 * entry and the wrongly marked one, and follow $name in defaults. */
static void test_scan_finds_offenders(void **state)
{
	static const struct param_def defs[] = {
	        {.name = "fake_read", .type = PARAM_STR, .defval = "${fake_via_default} x"},
	        {.name = "fake_read_twice", .type = PARAM_STR, .defval = "$(fake_chain)"},
	        {.name = "fake_chain", .type = PARAM_STR, .defval = "$fake_chain_end"},
	        {.name = "fake_chain_end", .type = PARAM_STR, .defval = ""},
	        {.name = "fake_via_default", .type = PARAM_STR, .defval = ""},
	        {.name = "fake_unread", .type = PARAM_INT, .defval = "0"},
	        {.name = "fake_only_in_comment", .type = PARAM_INT, .defval = "0"},
	        {.name = "fake_unread_default_ref", .type = PARAM_STR, .defval = "$fake_orphan"},
	        {.name = "fake_orphan", .type = PARAM_STR, .defval = ""},
	        {.name = "fake_not_yet", .type = PARAM_STR, .defval = "", .status = PARAM_NOT_YET},
	        {.name = "fake_not_yet_read",
	         .type = PARAM_STR,
	         .defval = "",
	         .status = PARAM_NOT_YET},
	        {.name = "fake_info", .type = PARAM_STR, .defval = "", .status = PARAM_INFO},
	};
	const char *code = "x = config_str(cfg, \"fake_read\"); /* \"fake_only_in_comment\" */\n"
	                   "// \"fake_unread\"\n"
	                   "y = config_int(cfg, \"fake_read_twice\") + f(\"fake_not_yet_read\");\n";
	strv_t unread = STRV_INIT, wrong = STRV_INIT;
	str_t source;
	char *a, *b;

	(void)state;
	str_init(&source);
	append_without_comments(&source, code, strlen(code));
	check_table(defs, sizeof(defs) / sizeof(defs[0]), str_c(&source), &unread, &wrong);
	a = join(&unread);
	b = join(&wrong);
	assert_string_equal(a,
	                    "fake_unread fake_only_in_comment fake_unread_default_ref fake_orphan");
	assert_string_equal(b, "fake_not_yet_read");
	free(a);
	free(b);
	strv_free(&unread);
	strv_free(&wrong);
	str_free(&source);
}

static struct config *parse(const char *text)
{
	struct config *cfg;
	strv_t errors = STRV_INIT;

	assert_int_equal(config_parse_text(text, strlen(text), "/etc/postern/main.cf",
	                                   "/etc/postern", &cfg, &errors),
	                 0);
	strv_free(&errors);
	return cfg;
}

/* Warnings only for parameters marked not yet whose value differs from the
 * default, compared as values, with file and line. */
static void test_not_yet_warnings(void **state)
{
	struct config *cfg = parse("smtpd_client_message_rate_limit = 5\n"
	                           "smtpd_client_connection_count_limit = 50\n"
	                           "smtpd_client_recipient_rate_limit = 0\n"
	                           "anvil_rate_time_unit = 1m\n"
	                           "smtp_tls_protocols = >=TLSv1\n"
	                           "message_size_limit = 1\n"
	                           "debug_peer_list = 10.0.0.1\n"
	                           "mail_version = 9\n"
	                           "notify_classes = resource, software, bounce\n");
	strv_t warnings = STRV_INIT;

	(void)state;
	config_not_yet_warnings(cfg, &warnings);
	assert_int_equal(warnings.n, 3);
	assert_string_equal(warnings.v[0], "/etc/postern/main.cf, line 7: debug_peer_list is "
	                                   "accepted but not implemented yet");
	assert_string_equal(warnings.v[1], "/etc/postern/main.cf, line 9: notify_classes is "
	                                   "accepted but not implemented yet");
	assert_string_equal(warnings.v[2], "/etc/postern/main.cf, line 1: "
	                                   "smtpd_client_message_rate_limit is accepted but not "
	                                   "implemented yet");
	assert_false(config_not_yet_set(cfg, "message_size_limit"));
	assert_false(config_not_yet_set(cfg, "smtpd_client_auth_rate_limit")); /* not set */
	assert_true(config_not_yet_set(cfg, "debug_peer_list"));
	strv_free(&warnings);
	config_destroy(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_table_is_honest),
	        cmocka_unit_test(test_scan_finds_offenders),
	        cmocka_unit_test(test_not_yet_warnings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
