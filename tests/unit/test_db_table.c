/* test_db_table.c - the db:NAME tables (lib/table/table_db.c) on a real
 * SQLite database holding the demo data plus tests/system/test_db_extra.sql:
 * every answer of tests/system/test_db_tables.ref (aliases, catch-all,
 * alias domains, inactive rows, quota defaults, uid/gid, transport,
 * sender logins; the same file is checked on MariaDB and PostgreSQL by
 * tests/system/test_db_tables.py); a missing database file or a database
 * without the schema is a temporary failure naming the cause, never "not
 * found", and the missing file is not created; bad table names. */
#include "db_test.h"

#include "table/table.h"

/* Look up every line of the .ref file and compare. */
static void test_golden_answers(void **state)
{
	struct table_open_context ctx = {.config_dir = "."};
	char *ref = test_read("tests/system/test_db_tables.ref");
	struct table_result r;
	struct test_db db;
	str_t got, error;
	unsigned lineno = 0, checked = 0;

	(void)state;
	test_db_setup(&db, true, true);
	test_db_run_file(&db, "tests/system/test_db_extra.sql");
	ctx.cfg = db.cfg;
	table_result_init(&r);
	str_init(&got);
	str_init(&error);
	for (char *line = ref, *next; *line != '\0'; line = next) {
		char *nl = strchr(line, '\n'), *spec, *key, *expect;
		struct table *t;

		next = nl != NULL ? nl + 1 : line + strlen(line);
		if (nl != NULL)
			*nl = '\0';
		lineno++;
		if (line[0] == '#' || line[0] == '\0')
			continue;
		spec = line;
		key = strchr(spec, ' ');
		assert_non_null(key);
		*key++ = '\0';
		expect = strstr(key, " -> ");
		assert_non_null(expect);
		*expect = '\0';
		expect += 4;
		t = table_open(spec, &ctx, &error);
		if (t == NULL)
			fail_msg("line %u: opening %s: %s", lineno, spec, str_c(&error));
		table_lookup(t, key, &r);
		str_reset(&got);
		if (r.status == TABLE_FOUND)
			str_appendf(&got, "found \"%s\"", str_c(&r.value));
		else if (r.status == TABLE_NOTFOUND)
			str_append(&got, "not found");
		else
			str_appendf(&got, "temporary failure: %s", str_c(&r.error));
		if (strcmp(str_c(&got), expect) != 0)
			fail_msg("test_db_tables.ref line %u: %s %s: expected [%s], got [%s]",
			         lineno, spec, key, expect, str_c(&got));
		table_close(&t);
		checked++;
	}
	assert_true(checked > 70);
	table_result_free(&r);
	str_free(&got);
	str_free(&error);
	free(ref);
	test_db_teardown(&db);
}

/* Database problems are TEMPFAIL with the reason, and no file appears. */
static void test_tempfail(void **state)
{
	struct table_open_context ctx = {.config_dir = "."};
	struct table_result r;
	struct test_db db;
	struct table *t;
	struct stat st;
	str_t error;

	(void)state;
	test_db_setup(&db, false, false);
	ctx.cfg = db.cfg;
	str_init(&error);
	table_result_init(&r);
	t = table_open("db:mailboxes", &ctx, &error);
	assert_non_null(t); /* opening does not need the database yet */
	table_lookup(t, "alice@example.com", &r);
	assert_int_equal(r.status, TABLE_TEMPFAIL);
	assert_non_null(strstr(str_c(&r.error), "db:mailboxes"));
	assert_non_null(strstr(str_c(&r.error), "does not exist (run postern db init)"));
	assert_int_equal(stat(db.db_path, &st), -1); /* not created by a lookup */

	/* An empty file: there is no schema to ask. */
	fclose(fopen(db.db_path, "w"));
	table_lookup(t, "alice@example.com", &r);
	assert_int_equal(r.status, TABLE_TEMPFAIL);
	assert_non_null(strstr(str_c(&r.error), "no such table"));
	table_close(&t);
	table_result_free(&r);
	str_free(&error);
	test_db_teardown(&db);
}

static void test_open_errors(void **state)
{
	struct table_open_context ctx = {.config_dir = "."};
	struct test_db db;
	struct config *bad;
	struct table *t;
	str_t error;

	(void)state;
	test_db_setup(&db, false, false);
	str_init(&error);
	t = table_open("db:mailbox", &ctx, &error); /* unknown name comes first */
	assert_null(t);
	assert_non_null(strstr(str_c(&error), "unknown table \"db:mailbox\""));
	assert_non_null(strstr(str_c(&error), "aliases, alias_domains, domains"));
	str_reset(&error);
	assert_null(table_open("db:domains", &ctx, &error)); /* no config */
	assert_non_null(strstr(str_c(&error), "no configuration"));
	str_reset(&error);
	bad = test_db_config("database = mysql://user:secret@db.example/postern\n");
	ctx.cfg = bad;
	assert_null(table_open("db:domains", &ctx, &error));
	assert_non_null(strstr(str_c(&error), "main.cf, line 1"));
	assert_non_null(strstr(str_c(&error), "database_password_file"));
	assert_null(strstr(str_c(&error), "secret"));
	config_destroy(&bad);
	str_free(&error);
	test_db_teardown(&db);
}

/* Tables of one config share a connection: many tables, one file. */
static void test_many_tables(void **state)
{
	static const char *const names[] = {"db:domains", "db:aliases", "db:mailboxes",
	                                    "db:quota",   "db:uid",     "db:transport"};
	struct table_open_context ctx = {.config_dir = "."};
	struct table *t[sizeof(names) / sizeof(names[0])];
	struct table_result r;
	struct test_db db;
	str_t error;

	(void)state;
	test_db_setup(&db, true, true);
	ctx.cfg = db.cfg;
	str_init(&error);
	table_result_init(&r);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		t[i] = table_open(names[i], &ctx, &error);
		assert_non_null(t[i]);
	}
	/* close some, the others keep working */
	table_close(&t[0]);
	table_close(&t[3]);
	table_lookup(t[1], "info@example.com", &r);
	assert_int_equal(r.status, TABLE_FOUND);
	assert_string_equal(str_c(&r.value), "alice@example.com,bob@example.com");
	table_lookup(t[2], "bob@example.com", &r);
	assert_int_equal(r.status, TABLE_FOUND);
	assert_string_equal(str_c(&r.value), "example.com/bob/");
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		table_close(&t[i]);
	table_result_free(&r);
	str_free(&error);
	test_db_teardown(&db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_golden_answers),
	        cmocka_unit_test(test_tempfail),
	        cmocka_unit_test(test_open_errors),
	        cmocka_unit_test(test_many_tables),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
