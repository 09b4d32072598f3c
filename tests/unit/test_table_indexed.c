/* test_table_indexed.c - hash:, btree:, lmdb:, cdb: built by the postmap
 * builder and read back: postmap's source parsing (comments, continuation
 * lines, case folding, -f, bad lines skipped, duplicates: first wins,
 * -r, -w), the trailing-NUL conventions (-N, -n), -i and -d, the alias
 * trailer, a rebuild seen by an open table, and the errors that name the
 * file. Debian's postmap reading these files is tested in
 * tests/system/test_table_types.py. */
#include "table_test.h"

#include <unistd.h>

#include "table/table_indexed.h"
#include "table/table_postmap.h"

static const char *const types[] = {"hash", "btree", "lmdb", "cdb"};

static const char source[] = "# comment\n"
                             "Alice@Example.com   alice@mail.example.com\n"
                             "bob@example.com     bob@mail.example.com,\n"
                             "    bob-archive@example.com\n"
                             "\n"
                             "novalue\n"
                             "alice@example.com   second\n"
                             "  # indented comment\n"
                             "Upper  Value Kept\n";

static void build(const char *spec, const struct postmap_options *o, size_t want_entries)
{
	size_t entries = 0;
	str_t error;

	str_init(&error);
	if (postmap_build(spec, o, stdin, &entries, &error) < 0)
		fail_msg("build %s: %s", spec, str_c(&error));
	assert_int_equal(entries, want_entries);
	str_free(&error);
}

static void test_build_and_read(void **state)
{
	struct postmap_options o = {.nul = -1, .dup = INDEXED_DUP_WARN};
	char *dir = test_tmpdir();
	char *file = test_write_text(dir, "virtual", source);

	(void)state;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		char *spec = xasprintf("%s:%s", types[i], file);
		struct test_log tl;
		struct table *t;
		char *want;

		test_log_start(&tl, false);
		build(spec, &o, 3);
		want = xasprintf("%s, line 6: expected format: key whitespace value", file);
		assert_non_null(test_log_find(&tl, want));
		free(want);
		assert_non_null(test_log_find(&tl, "duplicate entry: \"alice@example.com\""));
		test_log_stop(&tl);
		t = test_open(spec);
		assert_lookup(t, "ALICE@example.com",
		              "ALICE@example.com -> found "
		              "\"alice@mail.example.com\"");
		assert_lookup(t, "bob@example.com",
		              "bob@example.com -> found "
		              "\"bob@mail.example.com,    "
		              "bob-archive@example.com\"");
		assert_lookup(t, "upper", "upper -> found \"Value Kept\"");
		assert_lookup(t, "novalue", "novalue -> not found");
		table_close(&t);
		free(spec);
	}
	free(file);
	test_rmtree(&dir);
}

static void test_duplicates_and_case(void **state)
{
	struct postmap_options o = {.nul = -1, .dup = INDEXED_DUP_REPLACE};
	char *dir = test_tmpdir();
	char *file = test_write_text(dir, "t", "K one\nk two\n");
	char *spec = xasprintf("hash:%s", file);
	struct table *t;

	(void)state;
	build(spec, &o, 2);
	t = test_open(spec);
	assert_lookup(t, "k", "k -> found \"two\"");
	table_close(&t);
	o.dup = INDEXED_DUP_IGNORE;
	o.no_fold = true;
	build(spec, &o, 2); /* "K" and "k" are two keys now */
	t = test_open(spec);
	assert_lookup(t, "k", "k -> found \"two\""); /* lookups fold: "K" is never asked */
	table_close(&t);
	free(spec);
	free(file);
	test_rmtree(&dir);
}

static void test_nul_conventions(void **state)
{
	char *dir = test_tmpdir();
	char *file = test_write_text(dir, "t", "k v\n");

	(void)state;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		for (int nul = 0; nul <= 1; nul++) {
			struct postmap_options o = {.nul = nul, .dup = INDEXED_DUP_WARN};
			char *spec = xasprintf("%s:%s", types[i], file);
			struct table *t;

			build(spec, &o, 1);
			t = test_open(spec);
			assert_lookup(t, "k", "k -> found \"v\"");
			assert_lookup(t, "x", "x -> not found");
			table_close(&t);
			free(spec);
		}
	}
	free(file);
	test_rmtree(&dir);
}

static void test_delete_and_incremental(void **state)
{
	struct postmap_options o = {.nul = -1, .dup = INDEXED_DUP_WARN};
	char *dir = test_tmpdir();
	char *file = test_write_text(dir, "t", "a 1\nb 2\n");
	char *spec = xasprintf("lmdb:%s", file);
	strv_t keys = STRV_INIT;
	struct table *t;
	str_t error;

	(void)state;
	str_init(&error);
	build(spec, &o, 2);
	strv_add(&keys, "A");
	strv_add(&keys, "nosuch");
	assert_int_equal(postmap_delete(spec, &keys, &o, &error), 1);
	assert_int_equal(postmap_delete(spec, &keys, &o, &error), 0);
	t = test_open(spec);
	assert_lookup(t, "a", "a -> not found");
	assert_lookup(t, "b", "b -> found \"2\"");
	table_close(&t);
	/* cdb files are only ever rebuilt */
	free(spec);
	spec = xasprintf("cdb:%s", file);
	build(spec, &o, 2);
	assert_int_equal(postmap_delete(spec, &keys, &o, &error), -1);
	assert_non_null(strstr(str_c(&error), "cannot be changed in place"));
	strv_free(&keys);
	str_free(&error);
	free(spec);
	free(file);
	test_rmtree(&dir);
}

static void test_aliases_trailer(void **state)
{
	struct postmap_options o = {
	        .aliases = true, .nul = -1, .dup = INDEXED_DUP_WARN, .hostname = "mx.example"};
	char *dir = test_tmpdir();
	char *file = test_write_text(dir, "aliases", "Postmaster: root\nbad line\nroot: a, b\n");
	char *spec = xasprintf("hash:%s", file);
	struct test_log tl;
	struct table *t;
	char *want;

	(void)state;
	test_log_start(&tl, false);
	build(spec, &o, 2);
	want = xasprintf("%s, line 2: need name:value pair", file);
	assert_non_null(test_log_find(&tl, want));
	free(want);
	test_log_stop(&tl);
	t = test_open(spec);
	assert_lookup(t, "postmaster", "postmaster -> found \"root\"");
	assert_lookup(t, "root", "root -> found \"a, b\"");
	assert_lookup(t, "@", "@ -> found \"@\"");
	table_close(&t);
	free(spec);
	free(file);
	test_rmtree(&dir);
}

static void test_rebuild_is_seen(void **state)
{
	struct postmap_options o = {.nul = -1, .dup = INDEXED_DUP_WARN};
	char *dir = test_tmpdir();
	char *file = test_write_text(dir, "t", "k old\n");
	char *spec = xasprintf("btree:%s", file);
	struct table *t;

	(void)state;
	build(spec, &o, 1);
	t = test_open(spec);
	assert_lookup(t, "k", "k -> found \"old\"");
	free(test_write_text(dir, "t", "k new\n"));
	build(spec, &o, 1);
	/* the path is checked at most once a second */
	sleep(1);
	nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
	assert_lookup(t, "k", "k -> found \"new\"");
	table_close(&t);
	free(spec);
	free(file);
	test_rmtree(&dir);
}

static void test_errors_name_the_file(void **state)
{
	struct postmap_options o = {.nul = -1, .dup = INDEXED_DUP_WARN};
	str_t error;

	(void)state;
	test_open_fails("hash:/nonexistent/postern/virtual",
	                "hash:/nonexistent/postern/virtual: open /nonexistent/postern/virtual.db: ",
	                "postern map build hash:/nonexistent/postern/virtual", NEEDLES_END);
	str_init(&error);
	assert_int_equal(
	        postmap_build("hash:/nonexistent/postern/virtual", &o, stdin, NULL, &error), -1);
	assert_non_null(strstr(str_c(&error), "/nonexistent/postern/virtual"));
	str_reset(&error);
	assert_int_equal(postmap_build("regexp:/x", &o, stdin, NULL, &error), -1);
	assert_non_null(strstr(str_c(&error), "cannot build tables of type \"regexp\""));
	str_free(&error);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_build_and_read),
	        cmocka_unit_test(test_duplicates_and_case),
	        cmocka_unit_test(test_nul_conventions),
	        cmocka_unit_test(test_delete_and_incremental),
	        cmocka_unit_test(test_aliases_trailer),
	        cmocka_unit_test(test_rebuild_is_seen),
	        cmocka_unit_test(test_errors_name_the_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
