/* test_sql_sqlite.c - unit tests for lib/sql over a real SQLite file.
 *
 * Each test gets a fresh database in a temporary directory, opened through
 * a DSN as every caller does. Covered: the script runner (comments,
 * multi-line statements, rollback of a failed script, the statement and
 * line named in the error), bound parameters that must come back byte for
 * byte and never act as SQL (injection strings, quotes, backslashes, LIKE
 * wildcards, 64 KiB values), SQL NULL both ways, the max_rows bound, the
 * placeholder count check, result shapes (no result set vs. no rows),
 * error classes (syntax = SQL_FAIL, locked database and unreachable file =
 * SQL_TEMPFAIL), statements re-prepared after a schema change, and the
 * server named in every message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <sqlite3.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/str.h"
#include "sql/sql.h"

struct fixture {
	char dir[64];
	char *path;
	struct sql_conn *c;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	struct sql_settings s;
	str_t error;
	char *dsn;

	snprintf(f->dir, sizeof(f->dir), "/tmp/postern-sql-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	f->path = xasprintf("%s/test.db", f->dir);
	dsn = xasprintf("sqlite:%s", f->path);
	str_init(&error);
	if (sql_dsn_parse(dsn, NULL, &s, &error) < 0) {
		fprintf(stderr, "%s\n", str_c(&error));
		return -1;
	}
	s.query_timeout = 1; /* lock wait: keeps the busy test short */
	f->c = sql_conn_new(&s);
	sql_settings_free(&s);
	str_free(&error);
	free(dsn);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char *journal = xasprintf("%s-journal", f->path);

	sql_conn_destroy(&f->c);
	unlink(f->path);
	unlink(journal);
	rmdir(f->dir);
	free(journal);
	free(f->path);
	free(f);
	return 0;
}

static const char schema[] =
        "-- test schema\n"
        "CREATE TABLE virtual_aliases (\n"
        "    email TEXT NOT NULL,\n"
        "    destination TEXT\n"
        ");\n"
        "\n"
        "-- rows\n"
        "INSERT INTO virtual_aliases VALUES ('info@example.com', 'alice@example.com');\n"
        "INSERT INTO virtual_aliases VALUES ('info@example.com', 'bob@example.com');\n"
        "INSERT INTO virtual_aliases VALUES ('null@example.com', NULL);\n"
        "INSERT INTO virtual_aliases VALUES ('it''s@example.com', 'quote; ok');\n";

static void load_schema(struct fixture *f)
{
	str_t error;

	str_init(&error);
	if (sql_exec_script(f->c, schema, &error) != SQL_OK)
		fail_msg("%s", str_c(&error));
	str_free(&error);
}

/* Run q with one parameter; return the number of rows, failing the test
 * on an error. */
static size_t count_rows(struct fixture *f, const char *q, const char *param)
{
	struct sql_result r;
	str_t error;
	size_t n;

	str_init(&error);
	if (sql_query(f->c, q, &param, 1, 0, &r, &error) != SQL_OK)
		fail_msg("%s: %s", q, str_c(&error));
	n = r.nrows;
	sql_result_free(&r);
	str_free(&error);
	return n;
}

static void test_script_and_query(void **state)
{
	struct fixture *f = *state;
	const char *key = "info@example.com";
	struct sql_result r;
	str_t error;

	str_init(&error);
	load_schema(f);
	assert_int_equal(sql_query(f->c,
	                           "SELECT destination FROM virtual_aliases WHERE email = ? "
	                           "ORDER BY destination",
	                           &key, 1, 0, &r, &error),
	                 SQL_OK);
	assert_int_equal(r.nrows, 2);
	assert_int_equal(r.ncols, 1);
	assert_string_equal(sql_cell(&r, 0, 0), "alice@example.com");
	assert_string_equal(sql_cell(&r, 1, 0), "bob@example.com");
	sql_result_free(&r);
	assert_int_equal(r.nrows, 0);
	assert_null(r.cells);

	/* The ';' inside a literal that does not end the line stays. */
	key = "it's@example.com";
	assert_int_equal(sql_query(f->c, "SELECT destination FROM virtual_aliases WHERE email = ?",
	                           &key, 1, 0, &r, &error),
	                 SQL_OK);
	assert_int_equal(r.nrows, 1);
	assert_string_equal(sql_cell(&r, 0, 0), "quote; ok");
	sql_result_free(&r);
	assert_string_equal(sql_conn_describe(f->c) + strlen("sqlite:"), f->path);
	assert_memory_equal(sql_conn_describe(f->c), "sqlite:", 7);
	str_free(&error);
}

static void test_script_rollback(void **state)
{
	struct fixture *f = *state;
	const char *bad = "CREATE TABLE kept (x INTEGER);\n"
	                  "INSERT INTO kept VALUES (1);\n"
	                  "-- the next statement fails\n"
	                  "INSERT INTO\n"
	                  "    missing VALUES (2);\n"
	                  "INSERT INTO kept VALUES (3);\n";
	struct sql_result r;
	str_t error;

	str_init(&error);
	assert_int_equal(sql_exec_script(f->c, bad, &error), SQL_FAIL);
	/* The message names the server, the statement and the line it starts on. */
	assert_non_null(strstr(str_c(&error), f->path));
	assert_non_null(strstr(str_c(&error), "statement 3 (line 4)"));
	assert_non_null(strstr(str_c(&error), "no such table: missing"));
	/* Nothing of the failed script is left: not even the table. */
	str_reset(&error);
	assert_int_equal(sql_query(f->c, "SELECT name FROM sqlite_master WHERE name = 'kept'", NULL,
	                           0, 0, &r, &error),
	                 SQL_OK);
	assert_int_equal(r.nrows, 0);
	sql_result_free(&r);
	/* The connection is usable afterwards, and a good script commits. */
	assert_int_equal(sql_exec_script(f->c, "CREATE TABLE kept (x INTEGER);", &error), SQL_OK);
	assert_int_equal(sql_exec_script(f->c, "  \n-- only a comment\n\n", &error), SQL_OK);
	str_free(&error);
}

/* Values that would change the meaning of a pasted query. */
static const char *const hostile[] = {
        "' OR '1'='1",
        "x' UNION SELECT destination FROM virtual_aliases --",
        "info@example.com' --",
        "info@example.com'; DROP TABLE virtual_aliases; --",
        "\\",
        "\\'",
        "'",
        "\"",
        "%",
        "_",
        "%@example.com",
        "info@example.com\\",
        "?",
        "$1",
        "\x01\x02\x7f\xc3\xa9\xe2\x82\xac\xff",
};

static void test_injection(void **state)
{
	struct fixture *f = *state;
	str_t error;

	str_init(&error);
	load_schema(f);
	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		/* No hostile key matches a row... */
		if (count_rows(f, "SELECT destination FROM virtual_aliases WHERE email = ?",
		               hostile[i]) != 0)
			fail_msg("key \"%s\" matched a row", hostile[i]);
		/* ...LIKE wildcards in a bound value match only as LIKE says... */
		(void)count_rows(f, "SELECT 1 FROM virtual_aliases WHERE email LIKE ?", hostile[i]);
		/* ...and every value comes back byte for byte. */
		{
			struct sql_result r;
			const char *v = hostile[i];

			assert_int_equal(sql_query(f->c, "SELECT ?", &v, 1, 0, &r, &error), SQL_OK);
			assert_int_equal(r.nrows, 1);
			assert_string_equal(sql_cell(&r, 0, 0), hostile[i]);
			sql_result_free(&r);
		}
	}
	/* The table survived. */
	assert_int_equal(
	        count_rows(f, "SELECT 1 FROM virtual_aliases WHERE email = ?", "info@example.com"),
	        2);
	str_free(&error);
}

static void test_large_values(void **state)
{
	struct fixture *f = *state;
	size_t big = 64 * 1024;
	char *value = xmalloc(big + 1);
	const char *params[2];
	struct sql_result r;
	str_t error;

	str_init(&error);
	load_schema(f);
	for (size_t i = 0; i < big; i++)
		value[i] = (char)('a' + i % 26);
	value[big - 1] = '\'';
	value[big] = '\0';
	params[0] = value;
	params[1] = value;
	assert_int_equal(sql_query(f->c, "INSERT INTO virtual_aliases VALUES (?, ?)", params, 2, 0,
	                           &r, &error),
	                 SQL_OK);
	assert_int_equal(r.ncols, 0); /* no result set */
	sql_result_free(&r);
	assert_int_equal(sql_query(f->c, "SELECT destination FROM virtual_aliases WHERE email = ?",
	                           params, 1, 0, &r, &error),
	                 SQL_OK);
	assert_int_equal(r.nrows, 1);
	assert_int_equal(strlen(sql_cell(&r, 0, 0)), big);
	assert_memory_equal(sql_cell(&r, 0, 0), value, big);
	sql_result_free(&r);
	free(value);
	str_free(&error);
}

static void test_nulls(void **state)
{
	struct fixture *f = *state;
	const char *params[2] = {NULL, "x"};
	const char *key = "null@example.com";
	struct sql_result r;
	str_t error;

	str_init(&error);
	load_schema(f);
	assert_int_equal(sql_query(f->c, "SELECT destination FROM virtual_aliases WHERE email = ?",
	                           &key, 1, 0, &r, &error),
	                 SQL_OK);
	assert_int_equal(r.nrows, 1);
	assert_null(sql_cell(&r, 0, 0)); /* SQL NULL is NULL, not "" */
	sql_result_free(&r);
	assert_int_equal(
	        sql_query(f->c, "SELECT ? IS NULL, ? IS NULL, ''", params, 2, 0, &r, &error),
	        SQL_OK);
	assert_string_equal(sql_cell(&r, 0, 0), "1");
	assert_string_equal(sql_cell(&r, 0, 1), "0");
	assert_string_equal(sql_cell(&r, 0, 2), ""); /* empty is "", not NULL */
	sql_result_free(&r);
	str_free(&error);
}

static void test_max_rows(void **state)
{
	struct fixture *f = *state;
	const char *key = "info@example.com";
	const char *q = "SELECT destination FROM virtual_aliases WHERE email = ?";
	struct sql_result r;
	str_t error;

	str_init(&error);
	load_schema(f);
	assert_int_equal(sql_query(f->c, q, &key, 1, 2, &r, &error), SQL_OK);
	assert_int_equal(r.nrows, 2);
	sql_result_free(&r);
	assert_int_equal(sql_query(f->c, q, &key, 1, 1, &r, &error), SQL_FAIL);
	assert_non_null(strstr(str_c(&error), "more than 1 row"));
	assert_int_equal(r.nrows, 0); /* zeroed on failure */
	assert_null(r.cells);
	/* The statement is usable again after the early stop. */
	assert_int_equal(sql_query(f->c, q, &key, 1, 0, &r, &error), SQL_OK);
	assert_int_equal(r.nrows, 2);
	sql_result_free(&r);
	/* A SELECT that matches nothing still has its columns. */
	key = "nobody@example.com";
	assert_int_equal(sql_query(f->c,
	                           "SELECT email, destination FROM virtual_aliases WHERE email = ?",
	                           &key, 1, 1, &r, &error),
	                 SQL_OK);
	assert_int_equal(r.nrows, 0);
	assert_int_equal(r.ncols, 2);
	sql_result_free(&r);
	/* res may be NULL when the caller wants no rows. */
	assert_int_equal(sql_query(f->c, q, &key, 1, 0, NULL, &error), SQL_OK);
	str_free(&error);
}

static void test_placeholder_mismatch(void **state)
{
	struct fixture *f = *state;
	const char *params[2] = {"a", "b"};
	struct sql_result r;
	str_t error;

	str_init(&error);
	assert_int_equal(sql_query(f->c, "SELECT ?", params, 2, 0, &r, &error), SQL_FAIL);
	assert_non_null(strstr(str_c(&error), "1 '?' placeholder but 2 values were given"));
	str_reset(&error);
	/* A '?' inside a literal is not a placeholder. */
	assert_int_equal(sql_query(f->c, "SELECT '?', ?", params, 1, 0, &r, &error), SQL_OK);
	assert_string_equal(sql_cell(&r, 0, 0), "?");
	assert_string_equal(sql_cell(&r, 0, 1), "a");
	sql_result_free(&r);
	str_free(&error);
}

static void test_errors(void **state)
{
	struct fixture *f = *state;
	struct sql_result r;
	str_t error;

	str_init(&error);
	assert_int_equal(sql_query(f->c, "SELEC 1", NULL, 0, 0, &r, &error), SQL_FAIL);
	assert_non_null(strstr(str_c(&error), f->path));
	assert_non_null(strstr(str_c(&error), "syntax error"));
	str_reset(&error);
	assert_int_equal(sql_query(f->c, "SELECT 1; SELECT 2", NULL, 0, 0, &r, &error), SQL_FAIL);
	assert_non_null(strstr(str_c(&error), "more than one statement"));
	str_reset(&error);
	load_schema(f);
	/* A constraint violation is a data problem, not a temporary one. */
	assert_int_equal(sql_query(f->c, "INSERT INTO virtual_aliases VALUES (NULL, 'x')", NULL, 0,
	                           0, &r, &error),
	                 SQL_FAIL);
	assert_non_null(strstr(str_c(&error), "NOT NULL"));
	str_free(&error);
}

static void test_locked_is_tempfail(void **state)
{
	struct fixture *f = *state;
	const char *key = "info@example.com";
	sqlite3 *other;
	struct sql_result r;
	time_t start;
	str_t error;

	str_init(&error);
	load_schema(f);
	/* Another writer holds an exclusive lock. */
	assert_int_equal(sqlite3_open(f->path, &other), SQLITE_OK);
	assert_int_equal(sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
	start = time(NULL);
	assert_int_equal(sql_query(f->c, "SELECT destination FROM virtual_aliases WHERE email = ?",
	                           &key, 1, 0, &r, &error),
	                 SQL_TEMPFAIL);
	assert_true(time(NULL) - start <= 5); /* bounded by the busy timeout */
	assert_non_null(strstr(str_c(&error), "locked"));
	str_reset(&error);
	assert_int_equal(
	        sql_exec_script(f->c, "INSERT INTO virtual_aliases VALUES ('a', 'b');", &error),
	        SQL_TEMPFAIL);
	/* Once the lock is gone the same connection works. */
	assert_int_equal(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(other);
	str_reset(&error);
	assert_int_equal(sql_query(f->c, "SELECT destination FROM virtual_aliases WHERE email = ?",
	                           &key, 1, 0, &r, &error),
	                 SQL_OK);
	assert_int_equal(r.nrows, 2);
	sql_result_free(&r);
	str_free(&error);
}

static void count_warnings(enum log_level level, const char *text, void *ctx)
{
	if (level == LOG_LEVEL_WARNING && strstr(text, "cannot connect") != NULL)
		(*(unsigned *)ctx)++;
}

static void test_unreachable_file(void **state)
{
	struct sql_settings s;
	struct sql_conn *c;
	struct sql_result r;
	unsigned warnings = 0;
	str_t error;

	(void)state;
	str_init(&error);
	log_set_hook(count_warnings, &warnings);
	assert_int_equal(sql_dsn_parse("sqlite:/nonexistent-dir-postern/x.db", NULL, &s, &error),
	                 0);
	c = sql_conn_new(&s);
	sql_settings_free(&s);
	assert_int_equal(sql_query(c, "SELECT 1", NULL, 0, 0, &r, &error), SQL_TEMPFAIL);
	assert_non_null(strstr(str_c(&error), "/nonexistent-dir-postern/x.db"));
	assert_non_null(strstr(str_c(&error), "unable to open"));
	/* One attempt, one warning: a failed host is not tried twice. */
	assert_int_equal(warnings, 1);
	str_reset(&error);
	assert_int_equal(sql_exec_script(c, "SELECT 1;", &error), SQL_TEMPFAIL);
	assert_non_null(strstr(str_c(&error), "unable to open"));
	assert_int_equal(warnings, 2);
	log_set_hook(NULL, NULL);
	sql_conn_destroy(&c);
	str_free(&error);
}

static void test_schema_change(void **state)
{
	struct fixture *f = *state;
	const char *q = "SELECT * FROM virtual_aliases WHERE email = ?";
	const char *key = "info@example.com";
	struct sql_result r;
	str_t error;

	str_init(&error);
	load_schema(f);
	assert_int_equal(sql_query(f->c, q, &key, 1, 0, &r, &error), SQL_OK);
	assert_int_equal(r.ncols, 2);
	sql_result_free(&r);
	assert_int_equal(sql_exec_script(f->c,
	                                 "ALTER TABLE virtual_aliases ADD COLUMN note TEXT "
	                                 "DEFAULT 'n';",
	                                 &error),
	                 SQL_OK);
	/* The cached statement follows the new schema. */
	assert_int_equal(sql_query(f->c, q, &key, 1, 0, &r, &error), SQL_OK);
	assert_int_equal(r.ncols, 3);
	assert_string_equal(sql_cell(&r, 0, 2), "n");
	sql_result_free(&r);
	str_free(&error);
}

static void test_foreign_keys_on(void **state)
{
	struct fixture *f = *state;
	struct sql_result r;
	str_t error;

	str_init(&error);
	assert_int_equal(sql_query(f->c, "PRAGMA foreign_keys", NULL, 0, 0, &r, &error), SQL_OK);
	assert_string_equal(sql_cell(&r, 0, 0), "1");
	sql_result_free(&r);
	str_free(&error);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_script_and_query, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_script_rollback, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_injection, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_large_values, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_nulls, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_max_rows, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_placeholder_mismatch, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_locked_is_tempfail, setup, teardown),
	        cmocka_unit_test(test_unreachable_file),
	        cmocka_unit_test_setup_teardown(test_schema_change, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_foreign_keys_on, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
