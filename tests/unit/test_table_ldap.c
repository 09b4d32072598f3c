/* test_table_ldap.c - unit tests for the ldap: table's parts that need no
 * directory (lib/table/ldap_cf.c, ldap_lookup.c): RFC 4515 and RFC 4514
 * escaping, the .cf file reader (defaults, every error naming file and
 * line, bind_pw_file, refused bind = sasl), and lookups that must end
 * without asking any server (keys outside the domain list, keys lacking
 * a part the templates need) or with a temporary failure (no server
 * listening). Lookups against real directories are in
 * tests/system/test_ldap.py. */
#include "table_test.h"

#include <ldap.h>

#include "table/ldap_cf.h"
#include "table/ldap_client.h"
#include "table/ldap_lookup.h"

static void check_escape(void (*fn)(str_t *, const char *), const char *in, const char *want)
{
	str_t out;

	str_init(&out);
	fn(&out, in);
	if (strcmp(str_c(&out), want) != 0)
		fail_msg("escape(\"%s\") = \"%s\", expected \"%s\"", in, str_c(&out), want);
	str_free(&out);
}

static void test_filter_escape(void **state)
{
	(void)state;
	check_escape(ldap_escape_filter, "alice@example.com", "alice@example.com");
	check_escape(ldap_escape_filter, "*", "\\2a");
	check_escape(ldap_escape_filter, "a)(uid=*", "a\\29\\28uid=\\2a");
	check_escape(ldap_escape_filter, "back\\slash", "back\\5cslash");
	check_escape(ldap_escape_filter, "tab\there", "tab\\09here");
	check_escape(ldap_escape_filter, "caf\xc3\xa9", "caf\\c3\\a9");
}

static void test_dn_escape(void **state)
{
	(void)state;
	check_escape(ldap_escape_dn, "example.com", "example.com");
	check_escape(ldap_escape_dn, "a,b+c=d", "a\\,b\\+c\\=d");
	check_escape(ldap_escape_dn, "#x", "\\23x");
	check_escape(ldap_escape_dn, " x ", "\\20x\\20");
	check_escape(ldap_escape_dn, "q\"<>;\\", "q\\\"\\<\\>\\;\\\\");
}

/* Open a .cf file written in dir; NULL error expected: success. */
static void open_cf(const char *dir, const char *text, struct ldap_cf *cf, str_t *error)
{
	char *path = test_write_text(dir, "t.cf", text);

	(void)ldap_cf_open(cf, path, NULL, error);
	free(path);
}

static void test_cf_defaults(void **state)
{
	char *dir = test_tmpdir();
	struct ldap_cf cf;
	str_t error;

	(void)state;
	str_init(&error);
	open_cf(dir, "search_base = dc=example, dc=com\n", &cf, &error);
	assert_string_equal(str_c(&error), "");
	assert_string_equal(cf.uris, "ldap://localhost:389");
	assert_int_equal(cf.version, 3);
	assert_int_equal(cf.timeout, 10);
	assert_int_equal(cf.scope, LDAP_SCOPE_SUBTREE);
	assert_true(cf.bind);
	assert_int_equal(cf.result_attrs.n, 1);
	assert_string_equal(cf.result_attrs.v[0], "maildrop");
	assert_int_equal(cf.recursion_limit, 1000);
	assert_null(cf.attrs[1]);
	ldap_cf_free(&cf);

	/* The seed guide's file, and several servers in every form. */
	open_cf(dir,
	        "server_host = ldap://dc.example.com ldaps://dc2.example.com:636, dc3, "
	        "dc4:3389 ldapi://%2Frun%2Fslapd%2Fldapi\n"
	        "search_base = dc=example,dc=com\nversion = 3\nbind = yes\n"
	        "bind_dn = cn=postfix,ou=service,dc=example,dc=com\nbind_pw = password123\n"
	        "query_filter = (mail=%s)\nresult_attribute = mail\n"
	        "special_result_attribute = member\nleaf_result_attribute = mail\n"
	        "scope = one\nsize_limit = 50\n",
	        &cf, &error);
	assert_string_equal(str_c(&error), "");
	assert_string_equal(cf.uris,
	                    "ldap://dc.example.com ldaps://dc2.example.com:636 "
	                    "ldap://dc3:389 ldap://dc4:3389 ldapi://%2Frun%2Fslapd%2Fldapi");
	assert_string_equal(cf.bind_pw, "password123");
	assert_int_equal(cf.scope, LDAP_SCOPE_ONELEVEL);
	assert_int_equal(cf.size_limit, 50);
	/* mail asked for once, although named twice. */
	assert_string_equal(cf.attrs[0], "mail");
	assert_string_equal(cf.attrs[1], "member");
	assert_null(cf.attrs[2]);
	ldap_cf_free(&cf);
	test_rmtree(&dir);
	str_free(&error);
}

static void test_cf_errors(void **state)
{
	static const struct {
		const char *text, *needle;
	} cases[] = {
	        {"query_filter = (mail=%s)\n", "no search_base"},
	        {"search_base = o=x\nscope = tree\n",
	         "t.cf, line 2: bad value for scope: \"tree\""},
	        {"search_base = o=x\nbind = sasl\n", "SASL binds are not implemented"},
	        {"search_base = o=x\nserver_host = http://x\n", "expected ldap://"},
	        {"search_base = o=x\nserver_host = /tmp/sock\n", "expected host[:port]"},
	        {"search_base = o=x\nquery_filter = (mail=%x)\n", "unknown expansion \"%x\""},
	        {"search_base = o=x\nresult_attribute = ma(il\n", "not an attribute name"},
	        {"search_base = o=x\nresult_attribute =\n", "no result attributes"},
	        {"search_base = o=x\nversion = 1\n", "bad value for version"},
	        {"search_base = o=x\ntimeout = 0\n", "bad value for timeout"},
	        {"search_base = o=x\nspecial_result_in_chain = yes\n", "needs special_result"},
	        {"search_base = o=x\nbind_pw = a\nbind_pw_file = /nonexistent/pw\n", "not both"},
	        {"search_base = o=x\nbind_pw_file = /nonexistent/pw\n", "/nonexistent/pw"},
	        {"search_base = o=x\nstart_tls = yes\nversion = 2\n", "needs version = 3"},
	};
	char *dir = test_tmpdir();

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ldap_cf cf;
		str_t error;

		str_init(&error);
		open_cf(dir, cases[i].text, &cf, &error);
		if (strstr(str_c(&error), cases[i].needle) == NULL)
			fail_msg("%s: error \"%s\" lacks \"%s\"", cases[i].text, str_c(&error),
			         cases[i].needle);
		ldap_cf_free(&cf);
		str_free(&error);
	}
	test_rmtree(&dir);
}

static void test_cf_warnings_and_password_file(void **state)
{
	char *dir = test_tmpdir();
	char *pw = test_write_text(dir, "pw", "s3cret\nignored\n");
	char *text = xasprintf(
	        "search_base = o=x\nbind_pw_file = %s\nfrobnicate = 1\ncache = yes\n", pw);
	struct test_log tl;
	struct ldap_cf cf;
	str_t error;

	(void)state;
	str_init(&error);
	test_log_start(&tl, false);
	open_cf(dir, text, &cf, &error);
	assert_string_equal(str_c(&error), "");
	assert_string_equal(cf.bind_pw, "s3cret");
	assert_non_null(test_log_find(&tl, "unknown ldap table parameter \"frobnicate\""));
	assert_non_null(test_log_find(&tl, "cache is obsolete and ignored"));
	test_log_stop(&tl);
	ldap_cf_free(&cf);
	free(text);
	free(pw);
	test_rmtree(&dir);
	str_free(&error);
}

/* A table whose server does not exist: a lookup that reaches it fails
 * temporarily; one that must not reach it is "not found". */
static void test_lookups_without_server(void **state)
{
	char *dir = test_tmpdir();
	char *path = test_write_text(dir, "t.cf",
	                             "server_host = ldap://127.0.0.1:1\ntimeout = 2\n"
	                             "search_base = ou=%d, o=x\nquery_filter = (uid=%u)\n"
	                             "result_attribute = mail\ndomain = example.com\n");
	char *spec = xasprintf("ldap:%s", path);
	struct table_result r;
	struct table *t;
	str_t error;

	(void)state;
	str_init(&error);
	t = table_open(spec, NULL, &error);
	assert_non_null(t);
	table_result_init(&r);
	table_lookup(t, "alice@example.org", &r); /* outside the domain list */
	assert_int_equal(r.status, TABLE_NOTFOUND);
	table_result_reset(&r);
	table_lookup(t, "@example.com", &r); /* no local part for %u */
	assert_int_equal(r.status, TABLE_NOTFOUND);
	table_result_reset(&r);
	table_lookup(t, "alice", &r); /* no domain for %d */
	assert_int_equal(r.status, TABLE_NOTFOUND);
	table_result_reset(&r);
	table_lookup(t, "alice@example.com", &r);
	assert_int_equal(r.status, TABLE_TEMPFAIL);
	assert_non_null(strstr(str_c(&r.error), "ldap://127.0.0.1:1"));
	assert_non_null(strstr(str_c(&r.error), "alice@example.com"));
	table_result_free(&r);
	table_close(&t);
	free(spec);
	free(path);
	test_rmtree(&dir);
	str_free(&error);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_filter_escape),
	        cmocka_unit_test(test_dn_escape),
	        cmocka_unit_test(test_cf_defaults),
	        cmocka_unit_test(test_cf_errors),
	        cmocka_unit_test(test_cf_warnings_and_password_file),
	        cmocka_unit_test(test_lookups_without_server),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
