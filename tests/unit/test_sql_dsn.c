/* test_sql_dsn.c - unit tests for the database-independent parsers of
 * lib/sql: DSNs (sql_dsn_parse, every accepted form and every error),
 * host specifications (sql_host_parse), settings copy/free, and the '?'
 * placeholder scanner with each dialect's quoting rules (the pgsql $n
 * rewrite included). Table-driven; no server needed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "base/str.h"
#include "base/strv.h"
#include "sql/sql.h"
#include "sql/sql_driver.h"

static char *join_hosts(const strv_t *v)
{
	char *text;
	str_t s;

	str_init(&s);
	for (size_t i = 0; i < v->n; i++) {
		if (i > 0)
			str_append_c(&s, ',');
		str_append(&s, v->v[i]);
	}
	text = str_steal(&s);
	str_free(&s);
	return text;
}

struct dsn_ok {
	const char *dsn;
	enum sql_type type;
	const char *hosts; /* joined by ',' */
	const char *user; /* NULL = none */
	const char *dbname;
};

static const struct dsn_ok dsn_ok_cases[] = {
        {"sqlite:/var/lib/postern/postern.db", SQL_SQLITE, "", NULL, "/var/lib/postern/postern.db"},
        {"sqlite:///var/lib/x.db", SQL_SQLITE, "", NULL, "/var/lib/x.db"},
        {"mysql://postern@db.example.com/mail", SQL_MYSQL, "db.example.com", "postern", "mail"},
        {"mysql://postern@db.example.com:3307/mail", SQL_MYSQL, "db.example.com:3307", "postern",
         "mail"},
        {"mariadb://u@h/d", SQL_MYSQL, "h", "u", "d"},
        {"mysql://h/d", SQL_MYSQL, "h", NULL, "d"},
        {"mysql://postern@[::1]:3306/mail", SQL_MYSQL, "[::1]:3306", "postern", "mail"},
        {"mysql://postern@[2001:db8::1]/mail", SQL_MYSQL, "[2001:db8::1]", "postern", "mail"},
        {"mysql://postern@unix:/run/mysqld/mysqld.sock/mail", SQL_MYSQL,
         "unix:/run/mysqld/mysqld.sock", "postern", "mail"},
        {"pgsql://postern@127.0.0.1/postern", SQL_PGSQL, "127.0.0.1", "postern", "postern"},
        {"postgresql://postern@h1:5432,h2:5433/postern", SQL_PGSQL, "h1:5432,h2:5433", "postern",
         "postern"},
        {"postgres://u@db_1.example-2.net/d", SQL_PGSQL, "db_1.example-2.net", "u", "d"},
        {"pgsql://u@unix:/var/run/postgresql/d", SQL_PGSQL, "unix:/var/run/postgresql", "u", "d"},
        {"mysql://user%40corp@h/my%20db", SQL_MYSQL, "h", "user@corp", "my db"},
};

static void test_dsn_ok(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(dsn_ok_cases) / sizeof(dsn_ok_cases[0]); i++) {
		const struct dsn_ok *c = &dsn_ok_cases[i];
		struct sql_settings s;
		str_t error;
		char *hosts;

		str_init(&error);
		if (sql_dsn_parse(c->dsn, "pw", &s, &error) != 0)
			fail_msg("%s: %s", c->dsn, str_c(&error));
		assert_int_equal(s.type, c->type);
		hosts = join_hosts(&s.hosts);
		if (strcmp(hosts, c->hosts) != 0)
			fail_msg("%s: hosts \"%s\", expected \"%s\"", c->dsn, hosts, c->hosts);
		free(hosts);
		if (c->user == NULL)
			assert_null(s.user);
		else
			assert_string_equal(s.user, c->user);
		assert_string_equal(s.dbname, c->dbname);
		/* The password comes from the caller (database_password_file),
		 * except for SQLite, which has none. */
		if (c->type == SQL_SQLITE)
			assert_null(s.password);
		else
			assert_string_equal(s.password, "pw");
		sql_settings_free(&s);
		assert_null(s.dbname);
		str_free(&error);
	}
}

struct dsn_bad {
	const char *dsn;
	const char *why; /* expected in the message */
};

static const struct dsn_bad dsn_bad_cases[] = {
        {"", "expected sqlite:/path"},
        {"oracle://u@h/d", "expected sqlite:/path"},
        {"mysql:/u@h/d", "expected sqlite:/path"},
        {"sqlite:", "absolute file path"},
        {"sqlite:relative.db", "absolute file path"},
        {"sqlite:/", "absolute file path"},
        {"mysql://u:secret@h/d", "password in the DSN is refused"},
        {"pgsql://u:@h/d", "password in the DSN is refused"},
        {"mysql://@h/d", "expected a user name"},
        {"mysql://u@/d", "expected a host name"},
        {"mysql://u@h", "expected /dbname"},
        {"mysql://u@h/", "expected a database name"},
        {"mysql://u@h:/d", "port number from 1 to 65535"},
        {"mysql://u@h:0/d", "port number from 1 to 65535"},
        {"mysql://u@h:65536/d", "port number from 1 to 65535"},
        {"mysql://u@h:99999999999999999999/d", "port number from 1 to 65535"},
        {"mysql://u@h:abc/d", "port number from 1 to 65535"},
        {"mysql://u@[::1/d", "IPv6 address and ']'"},
        {"mysql://u@[]/d", "IPv6 address and ']'"},
        {"mysql://u@h/d?ssl=1", "options are not supported"},
        {"mysql://u@h/d/e", "options are not supported"},
        {"mysql://u@h/d#x", "options are not supported"},
        {"mysql://u@unix:relative/d", "unix:/path/to/socket/dbname"},
        {"mysql://u@unix:/sock", "unix:/path/to/socket/dbname"},
        {"mysql://u@h!x/d", "unexpected character after the host"},
        {"mysql://u@h,/d", "expected a host name"},
        {"mysql://u@h/d%zz", "two hex digits"},
        {"mysql://u@h/d%4", "two hex digits"},
        {"mysql://u@h/d%00", "encoded NUL"},
        {"mysql://u%@h/d", "bad user name"},
};

static void test_dsn_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(dsn_bad_cases) / sizeof(dsn_bad_cases[0]); i++) {
		const struct dsn_bad *c = &dsn_bad_cases[i];
		struct sql_settings s;
		str_t error;

		str_init(&error);
		if (sql_dsn_parse(c->dsn, NULL, &s, &error) != -1)
			fail_msg("%s: accepted", c->dsn);
		if (strstr(str_c(&error), c->why) == NULL)
			fail_msg("%s: message \"%s\" lacks \"%s\"", c->dsn, str_c(&error), c->why);
		if (strstr(str_c(&error), "database DSN") == NULL)
			fail_msg("%s: message \"%s\" does not say what it is about", c->dsn,
			         str_c(&error));
		/* Failure leaves nothing allocated. */
		assert_null(s.dbname);
		assert_null(s.user);
		assert_int_equal(s.hosts.n, 0);
		str_free(&error);
	}
}

static void test_dsn_password_never_shown(void **state)
{
	struct sql_settings s;
	str_t error;

	(void)state;
	str_init(&error);
	assert_int_equal(sql_dsn_parse("pgsql://mail:Tr0ub4dor@db/mail", NULL, &s, &error), -1);
	assert_null(strstr(str_c(&error), "Tr0ub4dor"));
	assert_non_null(strstr(str_c(&error), "mail:****@db"));
	assert_non_null(strstr(str_c(&error), "database_password_file"));
	str_free(&error);
}

static void test_settings_copy(void **state)
{
	struct sql_settings a, b;
	str_t error;

	(void)state;
	str_init(&error);
	assert_int_equal(sql_dsn_parse("mysql://u@h1,h2:3307/d", "pw", &a, &error), 0);
	a.connect_timeout = 7;
	a.query_timeout = 9;
	a.retry_interval = 11;
	a.charset = strdup("latin1");
	a.option_group = strdup("client");
	a.tls_ca_file = strdup("/etc/ssl/ca.pem");
	a.tls_verify_cert = true;
	sql_settings_copy(&b, &a);
	sql_settings_free(&a);
	assert_int_equal(b.type, SQL_MYSQL);
	assert_int_equal(b.hosts.n, 2);
	assert_string_equal(b.hosts.v[1], "h2:3307");
	assert_string_equal(b.user, "u");
	assert_string_equal(b.password, "pw");
	assert_string_equal(b.dbname, "d");
	assert_int_equal(b.connect_timeout, 7);
	assert_int_equal(b.query_timeout, 9);
	assert_int_equal(b.retry_interval, 11);
	assert_string_equal(b.charset, "latin1");
	assert_string_equal(b.option_group, "client");
	assert_null(b.option_file);
	assert_string_equal(b.tls_ca_file, "/etc/ssl/ca.pem");
	assert_true(b.tls_verify_cert);
	sql_settings_free(&b);
	sql_settings_free(&b); /* a freed (zeroed) settings can be freed again */
	str_free(&error);
}

struct host_case {
	enum sql_type type;
	const char *spec;
	int ret;
	const char *name, *socket, *uri;
	unsigned port;
};

static const struct host_case host_cases[] = {
        {SQL_MYSQL, "db.example.com", 0, "db.example.com", NULL, NULL, 0},
        {SQL_MYSQL, "db.example.com:3307", 0, "db.example.com", NULL, NULL, 3307},
        {SQL_MYSQL, "inet:10.0.0.1:3306", 0, "10.0.0.1", NULL, NULL, 3306},
        {SQL_MYSQL, "[::1]:3306", 0, "::1", NULL, NULL, 3306},
        {SQL_MYSQL, "[::1]", 0, "::1", NULL, NULL, 0},
        {SQL_MYSQL, "inet:[fe80::1%eth0]:3306", 0, "fe80::1%eth0", NULL, NULL, 3306},
        {SQL_MYSQL, "2001:db8::5", 0, "2001:db8::5", NULL, NULL, 0},
        {SQL_MYSQL, "unix:/run/mysqld/mysqld.sock", 0, NULL, "/run/mysqld/mysqld.sock", NULL, 0},
        {SQL_PGSQL, "/var/run/postgresql", 0, NULL, "/var/run/postgresql", NULL, 0},
        {SQL_PGSQL, "postgresql://u@h/d?sslmode=require", 0, NULL, NULL,
         "postgresql://u@h/d?sslmode=require", 0},
        {SQL_PGSQL, "postgres://u:secret@localhost", 0, NULL, NULL, "postgres://u:secret@localhost",
         0},
        {SQL_MYSQL, "postgresql://u@h/d", -1, NULL, NULL, NULL, 0},
        {SQL_MYSQL, "", -1, NULL, NULL, NULL, 0},
        {SQL_MYSQL, "h:", -1, NULL, NULL, NULL, 0},
        {SQL_MYSQL, "h:0", -1, NULL, NULL, NULL, 0},
        {SQL_MYSQL, "h:70000", -1, NULL, NULL, NULL, 0},
        {SQL_MYSQL, "h:12x", -1, NULL, NULL, NULL, 0},
        {SQL_MYSQL, "[::1", -1, NULL, NULL, NULL, 0},
        {SQL_MYSQL, "[]:3", -1, NULL, NULL, NULL, 0},
        {SQL_MYSQL, "[::1]x", -1, NULL, NULL, NULL, 0},
        {SQL_MYSQL, "unix:relative.sock", -1, NULL, NULL, NULL, 0},
        {SQL_MYSQL, "unix:", -1, NULL, NULL, NULL, 0},
        {SQL_MYSQL, "inet:", -1, NULL, NULL, NULL, 0},
};

static void check_str(const char *what, const char *spec, const char *got, const char *want)
{
	if (want == NULL && got == NULL)
		return;
	if (want == NULL || got == NULL || strcmp(got, want) != 0)
		fail_msg("%s: %s is \"%s\", expected \"%s\"", spec, what, got ? got : "(null)",
		         want ? want : "(null)");
}

static void test_host_parse(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(host_cases) / sizeof(host_cases[0]); i++) {
		const struct host_case *c = &host_cases[i];
		struct sql_host h;
		str_t error;
		int ret;

		str_init(&error);
		ret = sql_host_parse(c->type, c->spec, &h, &error);
		if (ret != c->ret)
			fail_msg("%s: returned %d (%s)", c->spec, ret, str_c(&error));
		if (ret == 0) {
			check_str("name", c->spec, h.name, c->name);
			check_str("socket", c->spec, h.socket, c->socket);
			check_str("uri", c->spec, h.uri, c->uri);
			assert_int_equal(h.port, c->port);
		} else if (strstr(str_c(&error), "bad host") == NULL) {
			fail_msg("%s: message \"%s\"", c->spec, str_c(&error));
		}
		sql_host_free(&h);
		str_free(&error);
	}
}

struct scan_case {
	enum sql_type type;
	const char *query;
	size_t count;
	const char *pg; /* the $n rewrite (pgsql cases) */
};

static const struct scan_case scan_cases[] = {
        {SQL_SQLITE, "SELECT 1", 0, NULL},
        {SQL_SQLITE, "SELECT ?", 1, NULL},
        {SQL_SQLITE, "SELECT a FROM t WHERE b = ? AND c = ?", 2, NULL},
        {SQL_SQLITE, "SELECT '?', \"?\", ?", 1, NULL},
        {SQL_SQLITE, "SELECT 'it''s ?' , ?", 1, NULL},
        {SQL_SQLITE, "-- why?\nSELECT ?", 1, NULL},
        {SQL_SQLITE, "/* ? */ SELECT ? /* ?", 1, NULL},
        {SQL_SQLITE, "SELECT '?", 0, NULL},
        {SQL_MYSQL, "SELECT `a?b`, ?", 1, NULL},
        {SQL_MYSQL, "SELECT 'it\\'s ?', ?", 1, NULL},
        {SQL_MYSQL, "SELECT \"x\\\"?\", ?", 1, NULL},
        {SQL_MYSQL, "# ?\nSELECT ?", 1, NULL},
        {SQL_SQLITE, "# ?\nSELECT ?", 2, NULL},
        {SQL_PGSQL, "SELECT a FROM t WHERE b = ? AND c = ?", 2,
         "SELECT a FROM t WHERE b = $1 AND c = $2"},
        {SQL_PGSQL, "SELECT '?', ?", 1, "SELECT '?', $1"},
        /* Standard strings: the backslash does not escape the quote. */
        {SQL_PGSQL, "SELECT 'a\\', ?", 1, "SELECT 'a\\', $1"},
        {SQL_PGSQL, "SELECT E'it\\'s ?', ?", 1, "SELECT E'it\\'s ?', $1"},
        {SQL_PGSQL, "SELECT $$ ? $$, ?", 1, "SELECT $$ ? $$, $1"},
        {SQL_PGSQL, "SELECT $f$ '? $f$, ?", 1, "SELECT $f$ '? $f$, $1"},
        {SQL_PGSQL, "SELECT a$1, ?", 1, "SELECT a$1, $1"},
        {SQL_PGSQL, "SELECT \"?\" FROM t -- ?\nWHERE x = ?", 1,
         "SELECT \"?\" FROM t -- ?\nWHERE x = $1"},
        {SQL_PGSQL, "?,?,?,?,?,?,?,?,?,?", 10, "$1,$2,$3,$4,$5,$6,$7,$8,$9,$10"},
};

static void test_placeholders(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(scan_cases) / sizeof(scan_cases[0]); i++) {
		const struct scan_case *c = &scan_cases[i];
		str_t out;
		size_t n;

		str_init(&out);
		n = sql_scan_placeholders(c->type, c->query, c->pg != NULL ? &out : NULL);
		if (n != c->count)
			fail_msg("%s: %zu placeholders, expected %zu", c->query, n, c->count);
		if (c->pg != NULL && strcmp(str_c(&out), c->pg) != 0)
			fail_msg("%s: rewritten as \"%s\", expected \"%s\"", c->query, str_c(&out),
			         c->pg);
		str_free(&out);
	}
}

static void test_describe(void **state)
{
	struct sql_settings s;
	struct sql_conn *c;
	str_t error;

	(void)state;
	str_init(&error);
	assert_int_equal(sql_dsn_parse("mysql://u@db1:3307,db2/d", "pw", &s, &error), 0);
	c = sql_conn_new(&s);
	sql_settings_free(&s);
	assert_string_equal(sql_conn_describe(c), "mysql:db1:3307");
	assert_int_equal(sql_conn_type(c), SQL_MYSQL);
	sql_conn_destroy(&c);
	assert_null(c);
	sql_conn_destroy(&c);

	/* A URI host's password never shows. */
	memset(&s, 0, sizeof(s));
	s.type = SQL_PGSQL;
	strv_add(&s.hosts, "postgresql://mail:s3cret@db.example.com/mail");
	c = sql_conn_new(&s);
	sql_settings_free(&s);
	assert_string_equal(sql_conn_describe(c),
	                    "pgsql:postgresql://mail:****@db.example.com/mail");
	sql_conn_destroy(&c);
	str_free(&error);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_dsn_ok),
	        cmocka_unit_test(test_dsn_errors),
	        cmocka_unit_test(test_dsn_password_never_shown),
	        cmocka_unit_test(test_settings_copy),
	        cmocka_unit_test(test_host_parse),
	        cmocka_unit_test(test_placeholders),
	        cmocka_unit_test(test_describe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
