/* test_table_sqlcf.c - unit tests for the Postfix SQL table .cf files
 * (lib/table/table_sqlcf.c) and the sqlite: table type.
 *
 * Two halves. The query-template compiler is table-driven: each Postfix
 * query becomes SQL with '?' and the value templates, or an error that
 * says what is wrong. Then real sqlite: tables over a real SQLite file,
 * with .cf files as the manuals write them: %s %u %d %[1-9] %S %U %D %%,
 * keys that are skipped without a query (checked with a query that would
 * fail if it ran), the domain list (names, negation, files, tables),
 * result_format, expansion_limit, NULL and empty cells, the legacy
 * select_field/table/where_field form, keys holding SQL metacharacters
 * (none may match), keys with CR, LF or NUL (refused), and .cf errors. */
#include "table_test.h"

#include <sqlite3.h>

#include "sql/sql_driver.h"
#include "table/table_sqlcf.h"

/* ---- the query compiler ---------------------------------------------- */

struct compile_case {
	enum sql_type type;
	const char *query;
	const char *sql; /* NULL: an error is expected */
	const char *params; /* the value templates, '|' between them; %x as written */
	const char *error; /* part of the message when sql is NULL */
};

static const struct compile_case compile_cases[] = {
        {SQL_SQLITE, "SELECT destination FROM virtual_aliases WHERE email='%s'",
         "SELECT destination FROM virtual_aliases WHERE email=?", "%s", NULL},
        {SQL_MYSQL, "SELECT goto FROM alias WHERE address = \"%s\" AND active = '1'",
         "SELECT goto FROM alias WHERE address = ? AND active = '1'", "%s", NULL},
        {SQL_PGSQL, "SELECT x FROM t WHERE id = %s", "SELECT x FROM t WHERE id = ?", "%s", NULL},
        {SQL_SQLITE, "SELECT maildir FROM mailbox WHERE local_part='%u' AND domain='%d'",
         "SELECT maildir FROM mailbox WHERE local_part=? AND domain=?", "%u|%d", NULL},
        {SQL_SQLITE, "SELECT a FROM t WHERE address='%u@%d'", "SELECT a FROM t WHERE address=?",
         "%u@%d", NULL},
        {SQL_SQLITE, "SELECT a FROM t WHERE tld='%1' AND sld='%2' AND k='%S%U%D'",
         "SELECT a FROM t WHERE tld=? AND sld=? AND k=?", "%1|%2|%s%u%d", NULL},
        /* %% is a literal %, also inside quotes, and a quoted '' stays one quote. */
        {SQL_SQLITE, "SELECT a FROM t WHERE x LIKE '%%@%d' AND y = 10 %% 3",
         "SELECT a FROM t WHERE x LIKE ? AND y = 10 % 3", "%@%d", NULL},
        {SQL_SQLITE, "SELECT 'it''s %%', a FROM t WHERE k = 'it''s %s'",
         "SELECT 'it''s %', a FROM t WHERE k = ?", "it's %s", NULL},
        {SQL_MYSQL, "SELECT 'a\\'b', x FROM t WHERE k='%s'", "SELECT 'a\\'b', x FROM t WHERE k=?",
         "%s", NULL},
        {SQL_PGSQL, "SELECT x FROM t WHERE k = E'%s'", "SELECT x FROM t WHERE k = ?", "%s", NULL},
        {SQL_SQLITE, "SELECT 1 -- it's '%s' in a comment\nFROM t",
         "SELECT 1 -- it's '%s' in a comment\nFROM t", "", NULL},
        {SQL_MYSQL, "CALL lookup('%s')", "CALL lookup(?)", "%s", NULL},
        {SQL_SQLITE, "SELECT 'constant'", "SELECT 'constant'", "", NULL},
        /* Errors. */
        {SQL_SQLITE, "SELECT a FROM t WHERE x LIKE 'abc%'", NULL, NULL, "unknown expansion \"%'\""},
        {SQL_SQLITE, "SELECT a FROM t WHERE x = '%x'", NULL, NULL, "unknown expansion \"%x\""},
        {SQL_SQLITE, "SELECT a FROM t WHERE x = %", NULL, NULL, "lone '%'"},
        {SQL_SQLITE, "SELECT a FROM %d_aliases WHERE x = '%s'", NULL, NULL, "glued"},
        {SQL_SQLITE, "SELECT a FROM t WHERE x = %u@%d", NULL, NULL, "glued"},
        {SQL_SQLITE, "SELECT a FROM t WHERE x = ?", NULL, NULL, "'?' outside quotes"},
        {SQL_SQLITE, "SELECT a FROM t WHERE x = '%s", NULL, NULL, "unterminated"},
        {SQL_PGSQL, "SELECT \"%s\" FROM t", NULL, NULL, "identifier"},
        {SQL_MYSQL, "SELECT `%s` FROM t", NULL, NULL, "identifier"},
        {SQL_MYSQL, "SELECT a FROM t WHERE x = 'a\\'%s'", NULL, NULL, "backslash"},
};

/* The template as written: text and %x. */
static void describe_template(const struct sqlcf_template *t, str_t *out)
{
	static const char letters[] = {
	        [SQLCF_KEY] = 's',   [SQLCF_KEY_USER] = 'u',   [SQLCF_KEY_DOMAIN] = 'd',
	        [SQLCF_VALUE] = 'v', [SQLCF_VALUE_USER] = 'w', [SQLCF_VALUE_DOMAIN] = 'e',
	};

	for (size_t i = 0; i < t->n; i++) {
		if (t->pieces[i].kind == SQLCF_TEXT)
			str_append(out, t->pieces[i].text);
		else if (t->pieces[i].kind == SQLCF_KEY_LABEL)
			str_appendf(out, "%%%u", t->pieces[i].label);
		else
			str_appendf(out, "%%%c", letters[t->pieces[i].kind]);
	}
}

static void test_compile_query(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(compile_cases) / sizeof(compile_cases[0]); i++) {
		const struct compile_case *c = &compile_cases[i];
		struct sqlcf_query q;
		str_t error, params;
		int ret;

		str_init(&error);
		str_init(&params);
		ret = sqlcf_compile_query(c->type, c->query, &q, &error);
		if (c->sql == NULL) {
			if (ret != -1)
				fail_msg("[%s] compiled to [%s]", c->query, q.sql);
			if (strstr(str_c(&error), c->error) == NULL)
				fail_msg("[%s]: error [%s] lacks [%s]", c->query, str_c(&error),
				         c->error);
			if (strncmp(str_c(&error), "query: ", 7) != 0)
				fail_msg("[%s]: error [%s] does not name the query", c->query,
				         str_c(&error));
		} else {
			if (ret != 0)
				fail_msg("[%s]: %s", c->query, str_c(&error));
			if (strcmp(q.sql, c->sql) != 0)
				fail_msg("[%s] compiled to [%s], expected [%s]", c->query, q.sql,
				         c->sql);
			for (size_t j = 0; j < q.nparams; j++) {
				if (j > 0)
					str_append_c(&params, '|');
				describe_template(&q.params[j], &params);
			}
			if (strcmp(str_c(&params), c->params) != 0)
				fail_msg("[%s]: values [%s], expected [%s]", c->query,
				         str_c(&params), c->params);
			/* Exactly one '?' per value, as lib/sql counts them. */
			assert_int_equal(sql_scan_placeholders(c->type, q.sql, NULL), q.nparams);
		}
		sqlcf_query_free(&q);
		str_free(&error);
		str_free(&params);
	}
}

static void test_compile_result(void **state)
{
	struct sqlcf_template t;
	unsigned need = 0, labels = 0;
	str_t error, out;
	struct sqlcf_addr key, value;

	(void)state;
	str_init(&error);
	str_init(&out);
	assert_int_equal(sqlcf_compile_result("smtp:[%s]:%%25 %u %d %S %U %D %2", &t, &need,
	                                      &labels, &error),
	                 0);
	assert_int_equal(need, SQLCF_NEED_VALUE_USER | SQLCF_NEED_VALUE_DOMAIN |
	                               SQLCF_NEED_KEY_USER | SQLCF_NEED_KEY_DOMAIN);
	assert_int_equal(labels, 2);
	sqlcf_addr_init(&key, "joe@mail.example.com");
	sqlcf_addr_init(&value, "relay@mx.example.net");
	assert_true(sqlcf_expand(&t, &key, &value, &out));
	assert_string_equal(str_c(&out), "smtp:[relay@mx.example.net]:%25 relay mx.example.net "
	                                 "joe@mail.example.com joe mail.example.com example");
	sqlcf_addr_free(&value);
	/* A value without a domain cannot fill %d: nothing is appended. */
	str_set(&out, "x");
	sqlcf_addr_init(&value, "relay");
	assert_false(sqlcf_expand(&t, &key, &value, &out));
	assert_string_equal(str_c(&out), "x");
	sqlcf_addr_free(&value);
	sqlcf_addr_free(&key);
	sqlcf_template_free(&t);
	assert_int_equal(sqlcf_compile_result("%s%", &t, &need, &labels, &error), -1);
	assert_non_null(strstr(str_c(&error), "result_format: a lone '%'"));
	str_reset(&error);
	assert_int_equal(sqlcf_compile_result("%q", &t, &need, &labels, &error), -1);
	assert_non_null(strstr(str_c(&error), "unknown expansion \"%q\""));
	str_free(&error);
	str_free(&out);
}

/* ---- sqlite: tables ----------------------------------------------------- */

struct fixture {
	char *dir;
	char *db;
	struct test_log log;
};

static const char schema[] =
        "CREATE TABLE virtual_aliases (email TEXT, destination TEXT);"
        "INSERT INTO virtual_aliases VALUES ('info@example.com', 'alice@example.com');"
        "INSERT INTO virtual_aliases VALUES ('info@example.com', 'bob@example.com');"
        "INSERT INTO virtual_aliases VALUES ('postmaster@example.com', 'alice@example.com');"
        "INSERT INTO virtual_aliases VALUES ('null@example.com', NULL);"
        "INSERT INTO virtual_aliases VALUES ('null@example.com', 'carol@example.net');"
        "INSERT INTO virtual_aliases VALUES ('empty@example.com', '');"
        "INSERT INTO virtual_aliases VALUES ('local', 'bare@example.com');"
        "INSERT INTO virtual_aliases VALUES ('joe@mail.example.org', 'joe@example.net');"
        "INSERT INTO virtual_aliases VALUES ('%', 'percent@example.com');"
        "INSERT INTO virtual_aliases VALUES ('_', 'underscore@example.com');"
        "INSERT INTO virtual_aliases VALUES ('x@example.org', 'fromfile@example.com');"
        "INSERT INTO virtual_aliases VALUES ('y@example.net', 'fromtable@example.com');"
        "INSERT INTO virtual_aliases VALUES ('z@example.edu', 'unlisted@example.com');"
        "CREATE TABLE transport (domain TEXT, nexthop TEXT, a TEXT, b TEXT);"
        "INSERT INTO transport VALUES ('example.net', 'mx.example.net', 'x@y', NULL);"
        "CREATE TABLE virtual_domains (name TEXT);"
        "INSERT INTO virtual_domains VALUES ('example.com');";

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	sqlite3 *db;

	f->dir = test_tmpdir();
	f->db = xasprintf("%s/mail.db", f->dir);
	if (sqlite3_open(f->db, &db) != SQLITE_OK ||
	    sqlite3_exec(db, schema, NULL, NULL, NULL) != SQLITE_OK)
		return -1;
	sqlite3_close(db);
	test_log_start(&f->log, false);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	test_log_stop(&f->log);
	test_rmtree(&f->dir);
	free(f->db);
	free(f);
	return 0;
}

/* Write NAME.cf holding "dbpath = <db>" and body; open it. */
static struct table *open_cf(struct fixture *f, const char *name, const char *body)
{
	char *text = xasprintf("dbpath = %s\n%s", f->db, body);
	char *file = xasprintf("%s.cf", name);
	char *path = test_write_text(f->dir, file, text);
	char *spec = xasprintf("sqlite:%s", path);
	struct table *t = test_open(spec);

	free(text);
	free(file);
	free(path);
	free(spec);
	return t;
}

static void test_basic_query(void **state)
{
	struct fixture *f = *state;
	struct table *t = open_cf(f, "aliases",
	                          "# from sqlite_table(5)\n"
	                          "query = SELECT destination FROM virtual_aliases\n"
	                          "    WHERE email='%s'\n");

	assert_int_equal(t->flags, TABLE_F_FIXED_KEYS | TABLE_F_REMOTE);
	assert_lookup(t, "info@example.com",
	              "info@example.com -> found \"alice@example.com,bob@example.com\"");
	/* Keys are folded to lower case (fixed-key table). */
	assert_lookup(t, "Info@EXAMPLE.com",
	              "Info@EXAMPLE.com -> found \"alice@example.com,bob@example.com\"");
	assert_lookup(t, "nobody@example.com", "nobody@example.com -> not found");
	/* NULL cells are skipped; the other row still counts. */
	assert_lookup(t, "null@example.com", "null@example.com -> found \"carol@example.net\"");
	/* An empty cell is skipped with a warning; nothing left is not found. */
	assert_lookup(t, "empty@example.com", "empty@example.com -> not found");
	assert_non_null(test_log_find(&f->log, "empty lookup result for \"empty@example.com\""));
	assert_lookup(t, "local", "local -> found \"bare@example.com\"");
	/* An empty key is never looked up. */
	assert_lookup(t, "", " -> not found");
	table_close(&t);
}

static const char *const hostile[] = {
        "' OR '1'='1",
        "' or '1'='1",
        "x' UNION SELECT destination FROM virtual_aliases --",
        "info@example.com' --",
        "info@example.com'; DROP TABLE virtual_aliases; --",
        "\\'",
        "\\",
        "%",
        "_",
        "%@example.com",
        "info@example.co_",
        "info@example.com%",
        "\"info@example.com\"",
        "info@example.com\\",
        "info@example.com\t",
        "info@example.com ",
        " info@example.com",
};

static void test_injection(void **state)
{
	struct fixture *f = *state;
	struct table *t = open_cf(
	        f, "aliases", "query = SELECT destination FROM virtual_aliases WHERE email='%s'\n");
	struct table *like = open_cf(f, "like",
	                             "query = SELECT destination FROM virtual_aliases "
	                             "WHERE email LIKE '%u@%%'\n");
	char *big = xmalloc(64 * 1024 + 1);
	struct table_result r;

	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		table_result_init(&r);
		table_lookup(t, hostile[i], &r);
		/* "%" and "_" are real keys of the table: exact match only. */
		if (strcmp(hostile[i], "%") == 0)
			assert_string_equal(str_c(&r.value), "percent@example.com");
		else if (strcmp(hostile[i], "_") == 0)
			assert_string_equal(str_c(&r.value), "underscore@example.com");
		else if (r.status != TABLE_NOTFOUND)
			fail_msg("key [%s] gave status %d value [%s] error [%s]", hostile[i],
			         r.status, str_c(&r.value), str_c(&r.error));
		table_result_free(&r);
	}
	/* In a LIKE, the bound value's wildcards act as LIKE wildcards (as in
	 * Postfix) but quotes stay data: no error, no row outside the pattern. */
	assert_lookup(like, "info@x", "info@x -> found \"alice@example.com,bob@example.com\"");
	assert_lookup(like, "' OR '1'='1@x", "' OR '1'='1@x -> not found");
	/* A long key is bounded by table_lookup (TABLE_KEY_MAX) before SQL. */
	memset(big, 'a', 64 * 1024);
	big[64 * 1024] = '\0';
	table_result_init(&r);
	table_lookup(t, big, &r);
	assert_int_equal(r.status, TABLE_NOTFOUND);
	table_result_free(&r);
	/* Keys with CR, LF or NUL are refused before any query. */
	{
		static const char crlf[][24] = {"info@example.com\r", "info@example.com\n",
		                                "info@example.com\r\nx"};

		for (size_t i = 0; i < 3; i++) {
			table_result_init(&r);
			table_lookup(t, crlf[i], &r);
			assert_int_equal(r.status, TABLE_NOTFOUND);
			table_result_free(&r);
		}
		table_result_init(&r);
		table_lookup_n(t, "info@example.com\0x", 18, &r);
		assert_int_equal(r.status, TABLE_NOTFOUND);
		table_lookup_n(t, "info@example.com", 16, &r);
		assert_int_equal(r.status, TABLE_FOUND);
		table_result_free(&r);
	}
	/* The table is intact. */
	assert_lookup(t, "postmaster@example.com",
	              "postmaster@example.com -> found \"alice@example.com\"");
	free(big);
	table_close(&t);
	table_close(&like);
}

/* Queries that fail when they run: a lookup that answers "not found"
 * through them was suppressed. */
static void test_suppressed_keys(void **state)
{
	struct fixture *f = *state;
	struct table *user =
	        open_cf(f, "user", "query = SELECT x FROM no_such_table WHERE u='%u'\n");
	struct table *domain =
	        open_cf(f, "domain", "query = SELECT x FROM no_such_table WHERE d='%d'\n");
	struct table *labels =
	        open_cf(f, "labels", "query = SELECT x FROM no_such_table WHERE l='%3'\n");
	struct table *fmt = open_cf(f, "fmt",
	                            "query = SELECT x FROM no_such_table WHERE k='%s'\n"
	                            "result_format = %D\n");

	/* %u: a key "@domain" has an empty local part; "user" (no @) is the
	 * whole key and is looked up (so the query runs and fails). */
	assert_lookup(user, "@example.com", "@example.com -> not found");
	assert_lookup(user, "joe", "joe -> temporary failure");
	/* %d: no domain, or an empty one. */
	assert_lookup(domain, "joe", "joe -> not found");
	assert_lookup(domain, "joe@", "joe@ -> not found");
	assert_lookup(domain, "joe@example.com", "joe@example.com -> temporary failure");
	/* %3: too few labels, or empty ones. */
	assert_lookup(labels, "joe@example.com", "joe@example.com -> not found");
	assert_lookup(labels, "joe@a..com", "joe@a..com -> not found");
	assert_lookup(labels, "joe", "joe -> not found");
	assert_lookup(labels, "joe@mail.example.com", "joe@mail.example.com -> temporary failure");
	/* %D in result_format: keys without a domain are not looked up. */
	assert_lookup(fmt, "joe", "joe -> not found");
	assert_lookup(fmt, "joe@example.com", "joe@example.com -> temporary failure");
	table_close(&user);
	table_close(&domain);
	table_close(&labels);
	table_close(&fmt);
}

static void test_parts_and_formats(void **state)
{
	struct fixture *f = *state;
	struct table *ud = open_cf(f, "ud",
	                           "query = SELECT destination FROM virtual_aliases "
	                           "WHERE email = '%u@%d'\n"
	                           "result_format = smtp:[%d]\n");
	struct table *labels = open_cf(f, "labels",
	                               "query = SELECT destination FROM virtual_aliases "
	                               "WHERE email = 'joe@%3.%2.%1'\n"
	                               "result_format = %u at %1 for %U\n");
	struct table *tr =
	        open_cf(f, "transport",
	                "query = SELECT nexthop, a, b FROM transport WHERE domain = '%s'\n"
	                "result_format = smtp:[%s]\n");

	assert_lookup(ud, "info@example.com",
	              "info@example.com -> found \"smtp:[example.com],smtp:[example.com]\"");
	assert_lookup(labels, "x@mail.example.org",
	              "x@mail.example.org -> found \"joe at org for x\"");
	/* Every column of every row is a value; NULL columns are skipped. */
	assert_lookup(tr, "example.net",
	              "example.net -> found \"smtp:[mx.example.net],smtp:[x@y]\"");
	table_close(&ud);
	table_close(&labels);
	table_close(&tr);
}

static void test_expansion_limit(void **state)
{
	struct fixture *f = *state;
	struct table *t =
	        open_cf(f, "limit",
	                "query = SELECT destination FROM virtual_aliases WHERE email='%s'\n"
	                "expansion_limit = 1\n");
	struct table_result r;

	assert_lookup(t, "postmaster@example.com",
	              "postmaster@example.com -> found \"alice@example.com\"");
	/* NULL values do not count. */
	assert_lookup(t, "null@example.com", "null@example.com -> found \"carol@example.net\"");
	/* Two values: a temporary failure that names the table. */
	table_result_init(&r);
	table_lookup(t, "info@example.com", &r);
	assert_int_equal(r.status, TABLE_TEMPFAIL);
	assert_non_null(strstr(str_c(&r.error), t->spec));
	assert_non_null(strstr(str_c(&r.error), "expansion_limit = 1"));
	assert_int_equal(r.value.len, 0);
	table_result_free(&r);
	table_close(&t);
}

static void test_domain_list(void **state)
{
	struct fixture *f = *state;
	char *list = test_write_text(f->dir, "domains.txt", "# hosted\nexample.org\n\n");
	char *body = xasprintf("query = SELECT destination FROM virtual_aliases WHERE email='%%s'\n"
	                       "domain = Example.COM, !mail.example.org, %s,\n"
	                       "    inline:{ example.net=yes }\n",
	                       list);
	struct table *t = open_cf(f, "domain", body);
	struct table *any =
	        open_cf(f, "neg",
	                "query = SELECT destination FROM virtual_aliases WHERE email='%s'\n"
	                "domain = !example.com example.com\n");

	assert_lookup(t, "info@example.com",
	              "info@example.com -> found \"alice@example.com,bob@example.com\"");
	/* Not in the list, negated, bare names and @domain: not looked up. */
	assert_lookup(t, "joe@mail.example.org", "joe@mail.example.org -> not found");
	assert_lookup(t, "z@example.edu", "z@example.edu -> not found");
	assert_lookup(t, "local", "local -> not found");
	assert_lookup(t, "example.com", "example.com -> not found");
	assert_lookup(t, "@example.com", "@example.com -> not found");
	/* Domains from the file and from the table. */
	assert_lookup(t, "x@example.org", "x@example.org -> found \"fromfile@example.com\"");
	assert_lookup(t, "y@example.net", "y@example.net -> found \"fromtable@example.com\"");
	/* The first match decides: "!example.com" before "example.com". */
	assert_lookup(any, "info@example.com", "info@example.com -> not found");
	table_close(&t);
	table_close(&any);
	free(body);
	free(list);
}

static void test_legacy_form(void **state)
{
	struct fixture *f = *state;
	struct table *t = open_cf(f, "legacy",
	                          "select_field = destination\n"
	                          "table = virtual_aliases\n"
	                          "where_field = email\n"
	                          "additional_conditions = AND destination LIKE 'a%%'\n");

	assert_lookup(t, "info@example.com", "info@example.com -> found \"alice@example.com\"");
	table_close(&t);
}

static void test_open_errors(void **state)
{
	struct fixture *f = *state;
	struct {
		const char *name, *body, *needle;
	} cases[] = {
	        {"noquery", "", "no query"},
	        {"halflegacy", "table = t\n", "missing: select_field where_field"},
	        {"badexp", "query = SELECT a FROM t WHERE x LIKE 'a%'\n", "unknown expansion"},
	        {"badlimit", "query = SELECT 1\nexpansion_limit = many\n",
	         "line 3: bad value for expansion_limit: \"many\""},
	        {"badfmt", "query = SELECT 1\nresult_format = %z\n", "result_format"},
	        {"badmode", "query = SELECT 1\nstatement_mode = fast\n", "legacy or prepared"},
	        {"baddomain", "query = SELECT 1\ndomain = nosuch:table\n",
	         "unsupported table type"},
	        {"syntax", "query = SELECT 1\nthis is not a parameter\n", "line 3"},
	};
	char *spec;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *text = xasprintf("dbpath = %s\n%s", f->db, cases[i].body);
		char *file = xasprintf("%s.cf", cases[i].name);
		char *path = test_write_text(f->dir, file, text);

		spec = xasprintf("sqlite:%s", path);
		test_open_fails(spec, spec, cases[i].needle, NEEDLES_END);
		free(spec);
		free(text);
		free(file);
		free(path);
	}
	/* No dbpath, a dbpath that does not exist, a .cf that does not exist. */
	{
		char *p1 = test_write_text(f->dir, "nodb.cf", "query = SELECT 1\n");
		char *p2 = test_write_text(f->dir, "missingdb.cf",
		                           "dbpath = /nonexistent/x.db\nquery = SELECT 1\n");

		spec = xasprintf("sqlite:%s", p1);
		test_open_fails(spec, "no dbpath", NEEDLES_END);
		free(spec);
		spec = xasprintf("sqlite:%s", p2);
		test_open_fails(spec, "/nonexistent/x.db", "No such file", NEEDLES_END);
		free(spec);
		test_open_fails("sqlite:/nonexistent/x.cf", "/nonexistent/x.cf", NEEDLES_END);
		free(p1);
		free(p2);
	}
	/* An unknown parameter is a warning naming file and line. */
	{
		struct table *t = open_cf(f, "unknown", "query = SELECT 1\nhosts = localhost\n");

		assert_non_null(test_log_find(&f->log, "line 3: unknown sqlite table parameter "
		                                       "\"hosts\""));
		table_close(&t);
	}
}

static void test_database_errors_are_tempfail(void **state)
{
	struct fixture *f = *state;
	struct table *t = open_cf(f, "broken",
	                          "query = SELECT nosuchcolumn FROM virtual_aliases "
	                          "WHERE email='%s'\n");
	struct table *noresult = open_cf(f, "noresult",
	                                 "query = UPDATE virtual_aliases SET email = email "
	                                 "WHERE email = '%s'\n");
	struct table_result r;

	table_result_init(&r);
	table_lookup(t, "info@example.com", &r);
	assert_int_equal(r.status, TABLE_TEMPFAIL);
	assert_non_null(strstr(str_c(&r.error), t->spec));
	assert_non_null(strstr(str_c(&r.error), "no such column"));
	assert_non_null(strstr(str_c(&r.error), f->db));
	table_result_reset(&r);
	/* A statement without a result set (require_result_set = yes). */
	table_lookup(noresult, "info@example.com", &r);
	assert_int_equal(r.status, TABLE_TEMPFAIL);
	assert_non_null(strstr(str_c(&r.error), "no result set"));
	table_result_free(&r);
	table_close(&t);
	table_close(&noresult);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_compile_query),
	        cmocka_unit_test(test_compile_result),
	        cmocka_unit_test_setup_teardown(test_basic_query, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_injection, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_suppressed_keys, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_parts_and_formats, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_expansion_limit, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_domain_list, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_legacy_form, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_database_errors_are_tempfail, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
