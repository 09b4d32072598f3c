/* db_test.h - helpers shared by tests/unit/test_db_*.c: a configuration
 * whose `database` is an SQLite file in a private temporary directory,
 * and running SQL files against it. Builds on table_test.h (temporary
 * directories, log capture). SQLite is the real database here, not a
 * mock; the same code runs against MariaDB and PostgreSQL in
 * tests/system/test_db_*.py.
 */
#ifndef POSTERN_DB_TEST_H
#define POSTERN_DB_TEST_H

#include "table_test.h"

#include "db/db.h"
#include "db/db_migrate.h"
#include "conf/config.h"
#include "sql/sql.h"

/* A test database: dir holds main.cf's idea of it (db_path). */
struct test_db {
	char *dir;
	char *db_path;
	struct config *cfg;
	struct sql_conn *conn;
};

/* A config for text (main.cf content; "%s" is replaced by the database
 * path when present). */
static inline struct config *test_db_config(const char *text)
{
	strv_t errors = STRV_INIT;
	struct config *cfg = NULL;

	if (config_parse_text(text, strlen(text), "main.cf", ".", &cfg, &errors) < 0)
		fail_msg("main.cf [%s]: %s", text, errors.n > 0 ? errors.v[0] : "?");
	strv_free(&errors);
	return cfg;
}

/* A fresh directory and config; with init, the database file created
 * and the schema applied (and with demo, the demo data loaded). */
static inline void test_db_setup(struct test_db *db, bool init, bool demo)
{
	char *text;
	str_t error;

	memset(db, 0, sizeof(*db));
	db->dir = test_tmpdir();
	db->db_path = xasprintf("%s/postern.db", db->dir);
	text = xasprintf("database = sqlite:%s\n", db->db_path);
	db->cfg = test_db_config(text);
	free(text);
	if (!init)
		return;
	str_init(&error);
	if (db_open_flags(db->cfg, DB_ACCESS_WRITE, DB_OPEN_CREATE, &db->conn, NULL, &error) < 0 ||
	    db_migrate(db->conn, true, NULL, &error) != SQL_OK ||
	    (demo && db_load_demo(db->conn, &error) != SQL_OK))
		fail_msg("setting up %s: %s", db->db_path, str_c(&error));
	str_free(&error);
}

static inline void test_db_teardown(struct test_db *db)
{
	sql_conn_destroy(&db->conn);
	config_destroy(&db->cfg);
	test_rmtree(&db->dir);
	free(db->db_path);
}

/* Run the SQL file path (relative to the top of the source tree). */
static inline void test_db_run_file(struct test_db *db, const char *path)
{
	char *text = test_read(path);
	str_t error;

	str_init(&error);
	if (sql_exec_script(db->conn, text, &error) != SQL_OK)
		fail_msg("%s: %s", path, str_c(&error));
	str_free(&error);
	free(text);
}

/* One statement, no parameters; fails the test on error. */
static inline void test_db_sql(struct test_db *db, const char *query)
{
	str_t error;

	str_init(&error);
	if (sql_query(db->conn, query, NULL, 0, 0, NULL, &error) != SQL_OK)
		fail_msg("%s: %s", query, str_c(&error));
	str_free(&error);
}

#endif
