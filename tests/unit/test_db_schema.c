/* test_db_schema.c - lib/db: the embedded sql/ files (every dialect has
 * migrations 1..N without gaps, with the same names, and its demo data);
 * init/migrate on a real SQLite file (migrate refuses a database without
 * the schema, init creates it with mode 0640 whatever the umask, and
 * running either again changes nothing); status; the demo needs a
 * current schema; database_password_file (first line only, refused when
 * readable by others, empty, missing or too big); the `database` setting
 * (a DSN password refused, timeouts set, SQLite needs no password file, a
 * missing SQLite file or directory named). */
#include "db_test.h"

#include <sys/stat.h>

static const char *const dialects[] = {"sqlite", "mysql", "pgsql"};

static void test_embedded_files(void **state)
{
	const struct db_sql_file **first = NULL;
	size_t nfirst = 0;

	(void)state;
	assert_true(db_sql_file_count >= 6);
	for (size_t d = 0; d < 3; d++) {
		const struct db_sql_file **list;
		size_t n = db_migrations(dialects[d], &list);

		if (n == 0)
			fail_msg("no migrations embedded for %s", dialects[d]);
		for (size_t i = 0; i < n; i++) {
			if (list[i]->version != i + 1)
				fail_msg("%s: migration %zu is %s (version %u): expected version "
				         "%zu",
				         dialects[d], i, list[i]->name, list[i]->version, i + 1);
			assert_true(strlen(list[i]->text) > 0);
			/* the file records its own version (sql/README.md rule 1) */
			assert_non_null(strstr(list[i]->text, "INSERT INTO schema_version"));
		}
		assert_string_equal(list[0]->name, "0001_initial");
		if (first == NULL) {
			first = list;
			nfirst = n;
			list = NULL;
		} else {
			assert_int_equal(n, nfirst);
			for (size_t i = 0; i < n; i++)
				assert_string_equal(list[i]->name, first[i]->name);
		}
		free(list);
		assert_non_null(db_demo_file(dialects[d]));
		assert_non_null(strstr(db_demo_file(dialects[d])->text, "alice@example.com"));
	}
	free(first);
	assert_null(db_demo_file("oracle"));
}

static void test_migrate_sqlite(void **state)
{
	struct db_schema_state st;
	struct test_db db;
	struct stat sb;
	unsigned applied = 99;
	bool created = false;
	mode_t old_umask;
	str_t error;

	(void)state;
	test_db_setup(&db, false, false);
	str_init(&error);

	/* without the file: an error naming it and db init; no file made */
	assert_int_equal(db_open(db.cfg, DB_ACCESS_WRITE, &db.conn, &error), -1);
	assert_non_null(strstr(str_c(&error), db.db_path));
	assert_non_null(strstr(str_c(&error), "run postern db init"));
	assert_null(db.conn);
	assert_int_equal(stat(db.db_path, &sb), -1);

	/* init creates it 0640 even under umask 077 */
	str_reset(&error);
	old_umask = umask(077);
	assert_int_equal(
	        db_open_flags(db.cfg, DB_ACCESS_WRITE, DB_OPEN_CREATE, &db.conn, &created, &error),
	        0);
	umask(old_umask);
	assert_true(created);
	assert_int_equal(stat(db.db_path, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0660);

	/* an empty database: status says so, migrate refuses, demo refuses */
	assert_int_equal(db_schema_state_get(db.conn, &st, &error), SQL_OK);
	assert_false(st.initialised);
	assert_int_equal(st.current, 0);
	assert_true(st.newest >= 1);
	assert_int_equal(st.pending.n, st.newest);
	assert_string_equal(st.pending.v[0], "0001_initial");
	db_schema_state_free(&st);
	assert_int_equal(db_migrate(db.conn, false, &applied, &error), SQL_FAIL);
	assert_non_null(strstr(str_c(&error), "run postern db init"));
	assert_int_equal(applied, 0);
	str_reset(&error);
	assert_int_equal(db_load_demo(db.conn, &error), SQL_FAIL);
	assert_non_null(strstr(str_c(&error), "run postern db init first"));

	/* init applies everything; again applies nothing */
	str_reset(&error);
	assert_int_equal(db_migrate(db.conn, true, &applied, &error), SQL_OK);
	assert_true(applied >= 1);
	assert_int_equal(db_schema_state_get(db.conn, &st, &error), SQL_OK);
	assert_true(st.initialised);
	assert_int_equal(st.current, st.newest);
	assert_int_equal(st.pending.n, 0);
	db_schema_state_free(&st);
	assert_int_equal(db_migrate(db.conn, true, &applied, &error), SQL_OK);
	assert_int_equal(applied, 0);
	assert_int_equal(db_migrate(db.conn, false, &applied, &error), SQL_OK);
	assert_int_equal(applied, 0);

	/* a second DB_OPEN_CREATE keeps the file */
	sql_conn_destroy(&db.conn);
	assert_int_equal(
	        db_open_flags(db.cfg, DB_ACCESS_WRITE, DB_OPEN_CREATE, &db.conn, &created, &error),
	        0);
	assert_false(created);

	/* the demo twice: the same rows */
	assert_int_equal(db_load_demo(db.conn, &error), SQL_OK);
	assert_int_equal(db_load_demo(db.conn, &error), SQL_OK);
	{
		struct sql_result res;

		assert_int_equal(sql_query(db.conn, "SELECT COUNT(*) FROM mailboxes", NULL, 0, 0,
		                           &res, &error),
		                 SQL_OK);
		assert_string_equal(sql_cell(&res, 0, 0), "3");
		sql_result_free(&res);
	}
	assert_int_equal(error.len, 0);
	str_free(&error);
	test_db_teardown(&db);
}

/* Migrations run again harmlessly (a crash before the version row was
 * kept); a database whose schema_version is gone is not postern's. */
static void test_migrate_rerun(void **state)
{
	struct test_db db;
	str_t error;

	(void)state;
	test_db_setup(&db, true, false);
	str_init(&error);
	/* As if migration 1 never finished: it runs again over the tables it
	 * made, and records itself. */
	test_db_sql(&db, "DELETE FROM schema_version");
	assert_int_equal(db_migrate(db.conn, false, NULL, &error), SQL_OK);
	test_db_sql(&db, "DROP TABLE schema_version");
	assert_int_equal(db_migrate(db.conn, false, NULL, &error), SQL_FAIL);
	assert_non_null(strstr(str_c(&error), "no schema_version table"));
	str_free(&error);
	test_db_teardown(&db);
}

static void test_create_needs_directory(void **state)
{
	struct sql_conn *conn = NULL;
	struct config *cfg;
	char *dir = test_tmpdir(), *text;
	str_t error;

	(void)state;
	str_init(&error);
	text = xasprintf("database = sqlite:%s/missing/postern.db\n", dir);
	cfg = test_db_config(text);
	assert_int_equal(db_open_flags(cfg, DB_ACCESS_WRITE, DB_OPEN_CREATE, &conn, NULL, &error),
	                 -1);
	assert_non_null(strstr(str_c(&error), "missing/postern.db"));
	assert_non_null(strstr(str_c(&error), "directory does not exist"));
	assert_null(conn);
	config_destroy(&cfg);
	free(text);
	str_free(&error);
	test_rmtree(&dir);
}

static char *write_mode(const char *dir, const char *name, const char *text, mode_t mode)
{
	char *path = test_write_text(dir, name, text);

	if (chmod(path, mode) < 0)
		fail_msg("chmod %s: %s", path, strerror(errno));
	return path;
}

static void test_password_file(void **state)
{
	static const struct {
		const char *text;
		mode_t mode;
		const char *password, *error;
	} cases[] = {
	        {"s3cret\n", 0600, "s3cret", NULL},
	        {"s3cret\r\nsecond line\n", 0640, "s3cret", NULL},
	        {"with space # and more", 0400, "with space # and more", NULL},
	        {"s3cret\n", 0644, NULL, "is readable by others (mode 0644)"},
	        {"s3cret\n", 0602, NULL, "is writable by others (mode 0602)"},
	        {"\nsecond line\n", 0600, NULL, "the first line is empty"},
	        {"", 0600, NULL, "the first line is empty"},
	};
	char *dir = test_tmpdir(), *big, *path, *password;
	str_t error;

	(void)state;
	str_init(&error);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		path = write_mode(dir, "pw", cases[i].text, cases[i].mode);
		password = NULL;
		str_reset(&error);
		if (cases[i].password != NULL) {
			if (db_read_password_file("database_password_file", path, &password,
			                          &error) < 0)
				fail_msg("case %zu: %s", i, str_c(&error));
			assert_string_equal(password, cases[i].password);
		} else {
			assert_int_equal(db_read_password_file("database_password_file", path,
			                                       &password, &error),
			                 -1);
			if (strstr(str_c(&error), cases[i].error) == NULL ||
			    strstr(str_c(&error), path) == NULL)
				fail_msg("case %zu: expected [%s] naming %s, got [%s]", i,
				         cases[i].error, path, str_c(&error));
			assert_null(password);
		}
		free(password);
		free(path);
	}
	big = xmalloc(DB_PASSWORD_FILE_MAX + 2);
	memset(big, 'x', DB_PASSWORD_FILE_MAX + 1);
	big[DB_PASSWORD_FILE_MAX + 1] = '\0';
	path = write_mode(dir, "big", big, 0600);
	str_reset(&error);
	assert_int_equal(db_read_password_file("database_password_file", path, &password, &error),
	                 -1);
	assert_non_null(strstr(str_c(&error), "larger than 4096 bytes"));
	free(path);
	free(big);
	str_reset(&error);
	assert_int_equal(db_read_password_file("database_password_file", "/nonexistent/pw",
	                                       &password, &error),
	                 -1);
	assert_non_null(strstr(str_c(&error), "/nonexistent/pw"));
	str_free(&error);
	test_rmtree(&dir);
}

static void test_settings(void **state)
{
	struct sql_settings s;
	struct config *cfg;
	char *dir = test_tmpdir(), *pw, *text;
	str_t error;

	(void)state;
	str_init(&error);
	pw = write_mode(dir, "pw", "hunter2\n", 0640);

	/* mysql with a password file */
	text = xasprintf("database = mysql://postern@db1.example:3307/mail\n"
	                 "database_password_file = %s\n",
	                 pw);
	cfg = test_db_config(text);
	assert_int_equal(db_settings(cfg, DB_ACCESS_WRITE, &s, &error), 0);
	assert_int_equal(s.type, SQL_MYSQL);
	assert_string_equal(s.user, "postern");
	assert_string_equal(s.password, "hunter2");
	assert_string_equal(s.dbname, "mail");
	assert_int_equal(s.connect_timeout, 5); /* database_connect_timeout */
	assert_int_equal(s.query_timeout, 5); /* database_query_timeout */
	sql_settings_free(&s);
	config_destroy(&cfg);
	free(text);

	/* a password in the DSN is refused, naming the line, never echoed */
	cfg = test_db_config("\ndatabase = pgsql://postern:hunter2@db1.example/mail\n");
	assert_int_equal(db_settings(cfg, DB_ACCESS_WRITE, &s, &error), -1);
	assert_non_null(strstr(str_c(&error), "main.cf, line 2"));
	assert_non_null(strstr(str_c(&error), "database_password_file"));
	assert_null(strstr(str_c(&error), "hunter2"));
	config_destroy(&cfg);

	/* a bad password file stops it */
	str_reset(&error);
	cfg = test_db_config("database = pgsql://postern@db1.example/mail\n"
	                     "database_password_file = /nonexistent/pw\n");
	assert_int_equal(db_settings(cfg, DB_ACCESS_WRITE, &s, &error), -1);
	assert_non_null(strstr(str_c(&error), "database_password_file /nonexistent/pw"));
	config_destroy(&cfg);

	/* sqlite: no password needed, none read, no timeouts imposed */
	str_reset(&error);
	cfg = test_db_config("database = sqlite:/var/lib/x.db\n"
	                     "database_password_file = /nonexistent/pw\n");
	assert_int_equal(db_settings(cfg, DB_ACCESS_WRITE, &s, &error), 0);
	assert_int_equal(s.type, SQL_SQLITE);
	assert_string_equal(s.dbname, "/var/lib/x.db");
	assert_null(s.password);
	sql_settings_free(&s);
	config_destroy(&cfg);

	/* the default: $data_directory/postern.db */
	cfg = test_db_config("data_directory = /srv/postern\n");
	assert_int_equal(db_settings(cfg, DB_ACCESS_WRITE, &s, &error), 0);
	assert_string_equal(s.dbname, "/srv/postern/postern.db");
	sql_settings_free(&s);
	config_destroy(&cfg);

	/* empty */
	cfg = test_db_config("database =\n");
	assert_int_equal(db_settings(cfg, DB_ACCESS_WRITE, &s, &error), -1);
	assert_non_null(strstr(str_c(&error), "database is empty"));
	config_destroy(&cfg);

	free(pw);
	str_free(&error);
	test_rmtree(&dir);
}

/* Which account each access uses: database_readonly (and its password
 * file) default to database's, and once set, only DB_ACCESS_READ uses
 * them. */
static void test_access(void **state)
{
	struct sql_settings s;
	struct config *cfg;
	char *dir = test_tmpdir(), *rw, *ro, *text;
	str_t error;

	(void)state;
	str_init(&error);
	rw = write_mode(dir, "rw", "write-secret\n", 0600);
	ro = write_mode(dir, "ro", "read-secret\n", 0640);
	assert_string_equal(db_access_params(DB_ACCESS_WRITE)->dsn, "database");
	assert_string_equal(db_access_params(DB_ACCESS_READ)->dsn, "database_readonly");

	/* nothing set: both accesses are the one account */
	text = xasprintf("database = mysql://postern@db1.example/mail\n"
	                 "database_password_file = %s\n",
	                 rw);
	cfg = test_db_config(text);
	for (int a = DB_ACCESS_READ; a <= DB_ACCESS_WRITE; a++) {
		assert_int_equal(db_settings(cfg, (enum db_access)a, &s, &error), 0);
		assert_string_equal(s.user, "postern");
		assert_string_equal(s.password, "write-secret");
		sql_settings_free(&s);
	}
	config_destroy(&cfg);
	free(text);

	/* both set: read and write are told apart */
	text = xasprintf("database = pgsql://postern@db1.example/mail\n"
	                 "database_password_file = %s\n"
	                 "database_readonly = pgsql://postern_ro@db2.example:5433/mail\n"
	                 "database_readonly_password_file = %s\n",
	                 rw, ro);
	cfg = test_db_config(text);
	assert_int_equal(db_settings(cfg, DB_ACCESS_READ, &s, &error), 0);
	assert_string_equal(s.user, "postern_ro");
	assert_int_equal(s.hosts.n, 1);
	assert_string_equal(s.hosts.v[0], "db2.example:5433");
	assert_string_equal(s.password, "read-secret");
	sql_settings_free(&s);
	assert_int_equal(db_settings(cfg, DB_ACCESS_WRITE, &s, &error), 0);
	assert_string_equal(s.user, "postern");
	assert_string_equal(s.password, "write-secret");
	sql_settings_free(&s);
	config_destroy(&cfg);
	free(text);

	/* errors name the read parameters */
	cfg = test_db_config("database_readonly = pgsql://ro@db2.example/mail\n"
	                     "database_readonly_password_file = /nonexistent/ro\n");
	assert_int_equal(db_settings(cfg, DB_ACCESS_READ, &s, &error), -1);
	assert_non_null(strstr(str_c(&error), "database_readonly_password_file /nonexistent/ro"));
	config_destroy(&cfg);
	str_reset(&error);
	cfg = test_db_config("database_readonly =\n");
	assert_int_equal(db_settings(cfg, DB_ACCESS_READ, &s, &error), -1);
	assert_non_null(strstr(str_c(&error), "database_readonly is empty"));
	config_destroy(&cfg);

	free(rw);
	free(ro);
	str_free(&error);
	test_rmtree(&dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_embedded_files),
	        cmocka_unit_test(test_migrate_sqlite),
	        cmocka_unit_test(test_migrate_rerun),
	        cmocka_unit_test(test_create_needs_directory),
	        cmocka_unit_test(test_password_file),
	        cmocka_unit_test(test_settings),
	        cmocka_unit_test(test_access),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
