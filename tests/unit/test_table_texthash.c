/* test_table_texthash.c - texthash: tables: the golden file, warnings and
 * errors naming file and line, reload on change (and keeping the old
 * contents when a reload fails), dump order, relative paths, and keys that
 * must never be found (too long, CR/LF, NUL). */
#include "table_test.h"

#include <time.h>

static void test_golden_file(void **state)
{
	(void)state;
	test_golden("texthash", "texthash");
}

static void test_warnings_name_file_and_line(void **state)
{
	char *path = test_data_path("texthash.in"), *spec = xasprintf("texthash:%s", path);
	struct test_log tl;
	struct table *t;
	char *expected;

	(void)state;
	test_log_start(&tl, false);
	t = test_open(spec);
	expected = xasprintf("texthash:%s, line 14: duplicate entry \"dup@example.com\": the "
	                     "first one (line 13) wins",
	                     path);
	if (test_log_find(&tl, expected) == NULL)
		fail_msg("no warning [%s] (got %zu log lines)", expected, tl.lines.n);
	assert_int_equal(tl.lines.n, 1);
	test_log_stop(&tl);
	free(expected);

	/* an alias-file style line is a hint, not an error */
	{
		char *dir = test_tmpdir();
		char *file = test_write_text(dir, "aliases", "postmaster: root\n");
		char *aspec = xasprintf("texthash:%s", file);
		struct table *a;

		test_log_start(&tl, false);
		a = test_open(aspec);
		expected = xasprintf("%s, line 1: record is in \"key: value\" format; is this an "
		                     "alias file?",
		                     aspec);
		if (test_log_find(&tl, expected) == NULL)
			fail_msg("no warning [%s]", expected);
		assert_lookup(a, "postmaster:", "postmaster: -> found \"root\"");
		test_log_stop(&tl);
		table_close(&a);
		free(expected);
		free(aspec);
		free(file);
		test_rmtree(&dir);
	}
	table_close(&t);
	assert_null(t);
	free(spec);
	free(path);
}

static void test_malformed(void **state)
{
	static const char text[] = "good value\n"
	                           "novalue\n"
	                           "# comment\n"
	                           "other\tvalue\n"
	                           "nul\0byte here\n"
	                           "also-no-value   \n";
	char *dir = test_tmpdir();
	char *file = test_write(dir, "bad", text, sizeof(text) - 1);
	char *spec = xasprintf("texthash:%s", file);
	char *e1 = xasprintf("texthash:%s, line 2: expected format: key whitespace value", file);
	char *e2 = xasprintf("texthash:%s, line 5: line holds a NUL byte", file);
	char *e3 = xasprintf("texthash:%s, line 6: expected format: key whitespace value", file);
	char *orphan, *ospec, *e4;

	(void)state;
	test_open_fails(spec, e1, e2, e3, NEEDLES_END);
	/* a file that starts with a continuation line */
	orphan = test_write_text(dir, "orphan", "  indented value\nkey value\n");
	ospec = xasprintf("texthash:%s", orphan);
	e4 = xasprintf("texthash:%s, line 1: a line that starts with white space continues the "
	               "previous line, but there is none",
	               orphan);
	test_open_fails(ospec, e4, NEEDLES_END);
	/* a missing file */
	test_open_fails("texthash:/nonexistent/postern/aliases",
	                "texthash:/nonexistent/postern/aliases: open /nonexistent/postern/aliases: "
	                "No such file or directory",
	                NEEDLES_END);
	/* a directory is not a table */
	{
		char *dspec = xasprintf("texthash:%s", dir);

		test_open_fails(dspec, "not a regular file", NEEDLES_END);
		free(dspec);
	}
	free(e1);
	free(e2);
	free(e3);
	free(e4);
	free(ospec);
	free(orphan);
	free(spec);
	free(file);
	test_rmtree(&dir);
}

static void test_many_errors_are_capped(void **state)
{
	char *dir = test_tmpdir(), *file, *spec;
	struct table *t;
	str_t text, error;

	(void)state;
	str_init(&text);
	str_init(&error);
	for (int i = 0; i < 50; i++)
		str_appendf(&text, "key%d\n", i);
	file = test_write(dir, "many", text.buf, text.len);
	spec = xasprintf("texthash:%s", file);
	t = table_open(spec, NULL, &error);
	assert_null(t);
	assert_non_null(strstr(str_c(&error), "line 20: expected format"));
	assert_null(strstr(str_c(&error), "line 21:"));
	assert_non_null(strstr(str_c(&error), "; and 30 more errors"));
	str_free(&text);
	str_free(&error);
	free(spec);
	free(file);
	test_rmtree(&dir);
}

/* Look key up until the answer is expected, for at most 5 seconds (the
 * table checks its file at most once per second). */
static void poll_lookup(struct table *t, const char *key, const char *expected)
{
	struct timespec delay = {0, 50 * 1000 * 1000};
	char *got = NULL;

	for (int i = 0; i < 100; i++) {
		free(got);
		got = test_lookup(t, key);
		if (strcmp(got, expected) == 0) {
			free(got);
			return;
		}
		nanosleep(&delay, NULL);
	}
	fail_msg("%s: after 5 s still [%s], expected [%s]", t->spec, got, expected);
}

static void poll_log(struct table *t, struct test_log *tl, const char *needle)
{
	struct timespec delay = {0, 50 * 1000 * 1000};

	for (int i = 0; i < 100; i++) {
		char *got = test_lookup(t, "probe");

		free(got);
		if (test_log_find(tl, needle) != NULL)
			return;
		nanosleep(&delay, NULL);
	}
	fail_msg("%s: no log line containing [%s] after 5 s", t->spec, needle);
}

static void test_reload(void **state)
{
	char *dir = test_tmpdir();
	char *file = test_write_text(dir, "virtual", "alice@example.com alice-1\n");
	char *spec = xasprintf("texthash:%s", file), *expected;
	struct test_log tl;
	struct table *t;

	(void)state;
	t = test_open(spec);
	assert_lookup(t, "alice@example.com", "alice@example.com -> found \"alice-1\"");

	/* a new version (written by rename, as editors and scripts do) */
	test_log_start(&tl, true);
	free(test_write_text(dir, "virtual", "alice@example.com alice-2\nbob@example.com bob\n"));
	poll_lookup(t, "bob@example.com", "bob@example.com -> found \"bob\"");
	assert_lookup(t, "alice@example.com", "alice@example.com -> found \"alice-2\"");
	assert_non_null(test_log_find(&tl, "reloaded, 2 entries"));
	test_log_stop(&tl);

	/* a broken version: the error names file and line, the old contents stay */
	test_log_start(&tl, false);
	free(test_write_text(dir, "virtual", "alice@example.com alice-3\nbroken\n"));
	expected = xasprintf("%s: reload failed: texthash:%s, line 2: expected format: key "
	                     "whitespace value; keeping the 2 entries loaded before",
	                     spec, file);
	poll_log(t, &tl, expected);
	assert_lookup(t, "alice@example.com", "alice@example.com -> found \"alice-2\"");
	assert_lookup(t, "bob@example.com", "bob@example.com -> found \"bob\"");
	/* reported once per version of the file, not at every check */
	{
		struct timespec wait = {1, 200 * 1000 * 1000};
		size_t n = tl.lines.n;

		nanosleep(&wait, NULL);
		free(test_lookup(t, "probe"));
		assert_int_equal(tl.lines.n, n);
	}
	free(expected);
	test_log_stop(&tl);

	/* the file removed: keep answering from memory, say so once */
	test_log_start(&tl, false);
	assert_int_equal(unlink(file), 0);
	poll_log(t, &tl, "cannot check for changes");
	assert_lookup(t, "bob@example.com", "bob@example.com -> found \"bob\"");
	test_log_stop(&tl);

	/* fixed again: picked up */
	free(test_write_text(dir, "virtual", "alice@example.com alice-4\n"));
	poll_lookup(t, "alice@example.com", "alice@example.com -> found \"alice-4\"");
	assert_lookup(t, "bob@example.com", "bob@example.com -> not found");

	table_close(&t);
	free(spec);
	free(file);
	test_rmtree(&dir);
}

static void collect(const char *key, const char *value, void *ctx)
{
	str_appendf(ctx, "%s=%s;", key, value);
}

static void test_dump_in_file_order(void **state)
{
	char *dir = test_tmpdir();
	char *file = test_write_text(dir, "t", "Zeta 1\nalpha 2\nMid 3\nalpha 4\n");
	char *spec = xasprintf("texthash:%s", file);
	struct table *t;
	str_t out, error;

	(void)state;
	str_init(&out);
	str_init(&error);
	t = test_open(spec);
	assert_true(t->flags & TABLE_F_DUMPABLE);
	assert_int_equal(table_dump(t, collect, &out, &error), 0);
	assert_string_equal(str_c(&out), "zeta=1;alpha=2;mid=3;");
	table_close(&t);
	str_free(&out);
	str_free(&error);
	free(spec);
	free(file);
	test_rmtree(&dir);
}

static void test_relative_path(void **state)
{
	char *dir = test_tmpdir();
	char *file = test_write_text(dir, "relative", "k v\n");
	struct table_open_context ctx = {.config_dir = dir};
	struct table *t;
	str_t error;

	(void)state;
	str_init(&error);
	t = table_open("texthash:relative", &ctx, &error);
	if (t == NULL)
		fail_msg("%s", str_c(&error));
	assert_lookup(t, "k", "k -> found \"v\"");
	assert_string_equal(t->spec, "texthash:relative");
	table_close(&t);
	/* without a context the name is taken as it is (here: not found) */
	t = table_open("texthash:relative-nonexistent", &ctx, &error);
	assert_null(t);
	assert_non_null(strstr(str_c(&error), dir));
	str_free(&error);
	free(file);
	test_rmtree(&dir);
}

static void test_bad_keys_not_found(void **state)
{
	char *dir = test_tmpdir(), *file, *spec;
	struct table_result r;
	struct table *t;
	char longkey[1501];
	str_t text;

	(void)state;
	memset(longkey, 'k', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	str_init(&text);
	str_appendf(&text, "%s long\na value-a\n", longkey);
	file = test_write(dir, "keys", text.buf, text.len);
	spec = xasprintf("texthash:%s", file);
	{
		struct test_log tl;
		char *warning = xasprintf("%s, line 1: key longer than %d bytes: no lookup can "
		                          "match it",
		                          spec, TABLE_KEY_MAX);

		test_log_start(&tl, false);
		t = test_open(spec);
		assert_non_null(test_log_find(&tl, warning));
		test_log_stop(&tl);
		free(warning);
	}
	table_result_init(&r);

	/* the entry exists, but a key over TABLE_KEY_MAX is never looked up */
	table_lookup(t, longkey, &r);
	assert_int_equal(r.status, TABLE_NOTFOUND);
	/* "a" exists; keys that hold it with CR, LF or NUL do not match it */
	table_lookup(t, "a", &r);
	assert_int_equal(r.status, TABLE_FOUND);
	table_lookup(t, "a\r\n", &r);
	assert_int_equal(r.status, TABLE_NOTFOUND);
	table_lookup(t, "a\nRCPT TO:<x>", &r);
	assert_int_equal(r.status, TABLE_NOTFOUND);
	table_lookup_n(t, "a\0b", 3, &r);
	assert_int_equal(r.status, TABLE_NOTFOUND);
	table_lookup_n(t, "a", 1, &r);
	assert_int_equal(r.status, TABLE_FOUND);
	assert_string_equal(str_c(&r.value), "value-a");

	table_result_free(&r);
	table_close(&t);
	str_free(&text);
	free(spec);
	free(file);
	test_rmtree(&dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_golden_file),
	        cmocka_unit_test(test_warnings_name_file_and_line),
	        cmocka_unit_test(test_malformed),
	        cmocka_unit_test(test_many_errors_are_capped),
	        cmocka_unit_test(test_reload),
	        cmocka_unit_test(test_dump_in_file_order),
	        cmocka_unit_test(test_relative_path),
	        cmocka_unit_test(test_bad_keys_not_found),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
