/* test_db_quota.c - quota_usage upsert (lib/db/db_quota.c) on a real
 * SQLite database with the schema: a new row, the same row updated (not
 * duplicated), an address with a quote in it (bound, not pasted), and a
 * database without the schema (an error naming the mailbox). MariaDB
 * and PostgreSQL run the same function in tests/system/test_virtual.py. */
#include "db_test.h"

#include "db/db_quota.h"

static void assert_row(struct test_db *db, const char *username, const char *bytes,
                       const char *messages)
{
	const char *params[1] = {username};
	struct sql_result res = {0};
	str_t error;

	str_init(&error);
	if (sql_query(db->conn, "SELECT bytes, messages FROM quota_usage WHERE username = ?",
	              params, 1, 0, &res, &error) != SQL_OK)
		fail_msg("select: %s", str_c(&error));
	assert_int_equal(res.nrows, 1);
	assert_string_equal(sql_cell(&res, 0, 0), bytes);
	assert_string_equal(sql_cell(&res, 0, 1), messages);
	sql_result_free(&res);
	str_free(&error);
}

static void test_upsert(void **state)
{
	struct test_db db;
	str_t error;

	(void)state;
	str_init(&error);
	test_db_setup(&db, true, false);
	assert_int_equal(db_quota_usage_set(db.conn, "alice@example.com", 1500, 1, &error), SQL_OK);
	assert_row(&db, "alice@example.com", "1500", "1");
	assert_int_equal(db_quota_usage_set(db.conn, "alice@example.com", 4000, 3, &error), SQL_OK);
	assert_row(&db, "alice@example.com", "4000", "3");
	assert_int_equal(db_quota_usage_set(db.conn, "o'neil@example.com", 7, 1, &error), SQL_OK);
	assert_row(&db, "o'neil@example.com", "7", "1");
	assert_row(&db, "alice@example.com", "4000", "3");
	assert_string_equal(str_c(&error), "");
	test_db_teardown(&db);
	str_free(&error);
}

static void test_no_schema(void **state)
{
	struct test_db db;
	str_t error;

	(void)state;
	str_init(&error);
	test_db_setup(&db, false, false);
	if (db_open_flags(db.cfg, DB_ACCESS_WRITE, DB_OPEN_CREATE, &db.conn, NULL, &error) < 0)
		fail_msg("%s", str_c(&error));
	assert_int_not_equal(db_quota_usage_set(db.conn, "bob@example.com", 1, 1, &error), SQL_OK);
	assert_non_null(strstr(str_c(&error), "quota_usage for bob@example.com: "));
	assert_non_null(strstr(str_c(&error), "no such table"));
	test_db_teardown(&db);
	str_free(&error);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_upsert),
	        cmocka_unit_test(test_no_schema),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
