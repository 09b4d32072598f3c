/* test_db_admin.c - lib/db/db_admin: domain names and addresses are
 * checked and lower-cased (table of good and bad ones); on a real SQLite
 * database, domains, alias domains, mailboxes and aliases are added,
 * refused (duplicates, missing domain, alias domain, limits), listed and
 * deleted, the lookups see the changes, and every change has its
 * admin_log row. */
#include "db_test.h"

#include "db/db_admin.h"
#include "table/table.h"

static void test_names(void **state)
{
	static const struct {
		const char *in, *out; /* out NULL: refused, with this text in the error */
		const char *error;
	} domains[] = {
	        {"Example.COM", "example.com", NULL},
	        {"example.com.", "example.com", NULL},
	        {"xn--bcher-kva.example", "xn--bcher-kva.example", NULL},
	        {"a-b.c0", "a-b.c0", NULL},
	        {"localhost", "localhost", NULL},
	        {"", NULL, "empty domain name"},
	        {".", NULL, "empty domain name"},
	        {"a..b", NULL, "empty label"},
	        {".a", NULL, "empty label"},
	        {"-a.com", NULL, "starting or ending with '-'"},
	        {"a-.com", NULL, "starting or ending with '-'"},
	        {"a_b.com", NULL, "only letters"},
	        {"a b.com", NULL, "only letters"},
	        {"b\xc3\xbc"
	         "cher.example",
	         NULL, "IDNA A-label"},
	        {"[192.0.2.1]", NULL, "only letters"},
	};
	static const struct {
		const char *in, *out;
		bool catchall;
		const char *error;
	} addresses[] = {
	        {"Alice@Example.COM", "alice@example.com", false, NULL},
	        {"first.last+tag@example.com", "first.last+tag@example.com", false, NULL},
	        {"o'hara@example.com.", "o'hara@example.com", false, NULL},
	        {"@example.com", "@example.com", true, NULL},
	        {"@example.com", NULL, false, "catch-all"},
	        {"alice", NULL, false, "expected local@domain"},
	        {"alice@", NULL, false, "empty domain name"},
	        {".alice@example.com", NULL, false, "starting or ending with '.'"},
	        {"alice.@example.com", NULL, false, "starting or ending with '.'"},
	        {"al..ice@example.com", NULL, false, "two dots"},
	        {"\"a b\"@example.com", NULL, false, "quoted"},
	        {"a b@example.com", NULL, false, "not allowed"},
	        {"a(b)@example.com", NULL, false, "not allowed"},
	        {"al\xc3\xaf"
	         "ce@example.com",
	         NULL, false, "non-ASCII"},
	        {"alice@exa mple.com", NULL, false, "only letters"},
	        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@example.com",
	         NULL, false, "longer than 64"},
	};
	str_t error;

	(void)state;
	str_init(&error);
	for (size_t i = 0; i < sizeof(domains) / sizeof(domains[0]); i++) {
		char *got;

		str_reset(&error);
		got = db_domain_normalise(domains[i].in, &error);
		if (domains[i].out != NULL) {
			if (got == NULL || strcmp(got, domains[i].out) != 0)
				fail_msg("domain [%s]: expected [%s], got [%s] (%s)", domains[i].in,
				         domains[i].out, got != NULL ? got : "NULL", str_c(&error));
		} else if (got != NULL || strstr(str_c(&error), domains[i].error) == NULL) {
			fail_msg("domain [%s]: expected an error with [%s], got [%s] / [%s]",
			         domains[i].in, domains[i].error, got != NULL ? got : "NULL",
			         str_c(&error));
		}
		free(got);
	}
	for (size_t i = 0; i < sizeof(addresses) / sizeof(addresses[0]); i++) {
		char *got;

		str_reset(&error);
		got = db_address_normalise(addresses[i].in, addresses[i].catchall, &error);
		if (addresses[i].out != NULL) {
			if (got == NULL || strcmp(got, addresses[i].out) != 0)
				fail_msg("address [%s]: expected [%s], got [%s] (%s)",
				         addresses[i].in, addresses[i].out,
				         got != NULL ? got : "NULL", str_c(&error));
		} else if (got != NULL || strstr(str_c(&error), addresses[i].error) == NULL) {
			fail_msg("address [%s]: expected an error with [%s], got [%s] / [%s]",
			         addresses[i].in, addresses[i].error, got != NULL ? got : "NULL",
			         str_c(&error));
		}
		free(got);
	}
	str_free(&error);
}

/* The answer of one db: lookup, as "found VALUE" or "not found". */
static char *lookup(struct test_db *db, const char *spec, const char *key)
{
	struct table_open_context ctx = {.cfg = db->cfg, .config_dir = "."};
	struct table_result r;
	struct table *t;
	char *out;
	str_t error;

	str_init(&error);
	table_result_init(&r);
	t = table_open(spec, &ctx, &error);
	if (t == NULL)
		fail_msg("%s: %s", spec, str_c(&error));
	table_lookup(t, key, &r);
	out = r.status == TABLE_FOUND      ? xasprintf("found %s", str_c(&r.value))
	      : r.status == TABLE_NOTFOUND ? xstrdup("not found")
	                                   : xasprintf("tempfail %s", str_c(&r.error));
	table_close(&t);
	table_result_free(&r);
	str_free(&error);
	return out;
}

#define expect_lookup(db, spec, key, expect) \
	do { \
		char *got_ = lookup(db, spec, key); \
		if (strcmp(got_, expect) != 0) \
			fail_msg("%s %s: expected [%s], got [%s]", spec, key, expect, got_); \
		free(got_); \
	} while (0)

/* Run one db_admin call expecting status st and, on failure, a message
 * containing needle. */
#define expect(call, st, needle) \
	do { \
		str_reset(&error); \
		enum sql_status got_ = (call); \
		if (got_ != (st) || ((st) != SQL_OK && strstr(str_c(&error), needle) == NULL)) \
			fail_msg("%s: expected status %d with [%s], got %d: [%s]", #call, (st), \
			         needle, got_, str_c(&error)); \
	} while (0)

static void test_domains(void **state)
{
	struct db_domain_spec spec = {.description = "Test",
	                              .default_quota_bytes = 1000,
	                              .transport = "lmtp:unix:private/dovecot-lmtp",
	                              .has_uid = true,
	                              .uid = 5000};
	struct db_domain_spec alias = {.alias_of = "test.example"};
	struct db_domain_spec plain = {0};
	struct sql_result doms, adoms;
	struct test_db db;
	struct db_admin a;
	str_t error;

	(void)state;
	test_db_setup(&db, true, false);
	a.conn = db.conn;
	a.actor = "unit-test";
	str_init(&error);
	expect(db_domain_add(&a, "test.example", &spec, &error), SQL_OK, "");
	expect(db_domain_add(&a, "test.example", &plain, &error), SQL_FAIL, "already exists");
	expect(db_domain_add(&a, "alias.example", &alias, &error), SQL_OK, "");
	expect(db_domain_add(&a, "alias.example", &plain, &error), SQL_FAIL, "already exists");
	alias.alias_of = "nosuch.example";
	expect(db_domain_add(&a, "alias2.example", &alias, &error), SQL_FAIL,
	       "domain nosuch.example does not exist");
	plain.backup_mx = true;
	expect(db_domain_add(&a, "backup.example", &plain, &error), SQL_OK, "");

	expect_lookup(&db, "db:domains", "test.example", "found test.example");
	expect_lookup(&db, "db:alias_domains", "alias.example", "found alias.example");
	expect_lookup(&db, "db:relay_domains", "backup.example", "found backup.example");
	expect_lookup(&db, "db:domains", "backup.example", "not found");
	expect_lookup(&db, "db:transport", "test.example", "found lmtp:unix:private/dovecot-lmtp");
	expect_lookup(&db, "db:uid", "x@test.example", "found 5000");
	expect_lookup(&db, "db:gid", "x@test.example", "not found");

	expect(db_domain_list(&a, &doms, &adoms, &error), SQL_OK, "");
	assert_int_equal(doms.nrows, 2);
	assert_string_equal(sql_cell(&doms, 0, 0), "backup.example");
	assert_string_equal(sql_cell(&doms, 0, 2), "1"); /* backup_mx */
	assert_string_equal(sql_cell(&doms, 1, 0), "test.example");
	assert_string_equal(sql_cell(&doms, 1, 1), "1"); /* active */
	assert_string_equal(sql_cell(&doms, 1, 3), "Test");
	assert_string_equal(sql_cell(&doms, 1, 4), "1000");
	assert_int_equal(adoms.nrows, 1);
	assert_string_equal(sql_cell(&adoms, 0, 0), "alias.example");
	assert_string_equal(sql_cell(&adoms, 0, 1), "test.example");
	sql_result_free(&doms);
	sql_result_free(&adoms);

	/* a domain with mailboxes needs force; its rows go with it */
	expect(db_mailbox_add(&a, "u@test.example", "{PLAIN}x", NULL, NULL, &error), SQL_OK, "");
	expect(db_domain_del(&a, "test.example", false, &error), SQL_FAIL,
	       "still has 1 mailbox and 0 aliases");
	expect(db_domain_del(&a, "test.example", true, &error), SQL_OK, "");
	expect_lookup(&db, "db:mailboxes", "u@test.example", "not found");
	expect_lookup(&db, "db:alias_domains", "alias.example", "not found"); /* cascade */
	expect(db_domain_del(&a, "test.example", false, &error), SQL_FAIL, "does not exist");
	expect(db_domain_del(&a, "backup.example", false, &error), SQL_OK, "");

	{
		struct sql_result res;

		assert_int_equal(sql_query(db.conn,
		                           "SELECT admin, action, data FROM admin_log ORDER BY id",
		                           NULL, 0, 0, &res, &error),
		                 SQL_OK);
		assert_int_equal(res.nrows, 6);
		assert_string_equal(sql_cell(&res, 0, 0), "unit-test");
		assert_string_equal(sql_cell(&res, 0, 1), "create_domain");
		assert_string_equal(sql_cell(&res, 1, 1), "create_alias_domain");
		assert_string_equal(sql_cell(&res, 3, 1), "create_mailbox");
		assert_string_equal(sql_cell(&res, 4, 1), "delete_domain");
		sql_result_free(&res);
	}
	str_free(&error);
	test_db_teardown(&db);
}

static void test_mailboxes_and_aliases(void **state)
{
	struct db_domain_spec limited = {.max_mailboxes = 1, .max_aliases = 1};
	struct db_domain_spec alias = {.alias_of = "example.com"};
	const char *targets[] = {"alice@example.com", "x@remote.example", "alice@example.com"};
	uint64_t zero = 0;
	struct sql_result res;
	struct test_db db;
	struct db_admin a;
	str_t error;

	(void)state;
	test_db_setup(&db, true, true);
	a.conn = db.conn;
	a.actor = "unit-test";
	str_init(&error);

	expect(db_mailbox_add(&a, "dan@example.com", "{PLAIN}x", "Dan", &zero, &error), SQL_OK, "");
	expect_lookup(&db, "db:mailboxes", "dan@example.com", "found example.com/dan/");
	expect_lookup(&db, "db:quota", "dan@example.com", "found 0");
	expect(db_mailbox_add(&a, "dan@example.com", "{PLAIN}x", NULL, NULL, &error), SQL_FAIL,
	       "mailbox dan@example.com already exists");
	expect(db_mailbox_add(&a, "x@nosuch.example", "{PLAIN}x", NULL, NULL, &error), SQL_FAIL,
	       "domain nosuch.example does not exist (add it first: postern domain add");
	expect(db_mailbox_add(&a, "x@example.org", "{PLAIN}x", NULL, NULL, &error), SQL_FAIL,
	       "example.org is an alias domain");
	expect(db_mailbox_add(&a, "a/b@example.com", "{PLAIN}x", NULL, NULL, &error), SQL_FAIL,
	       "'/' is not allowed");

	expect(db_domain_add(&a, "small.example", &limited, &error), SQL_OK, "");
	expect(db_mailbox_add(&a, "one@small.example", "{PLAIN}x", NULL, NULL, &error), SQL_OK, "");
	expect(db_mailbox_add(&a, "two@small.example", "{PLAIN}x", NULL, NULL, &error), SQL_FAIL,
	       "already has its maximum of 1 mailboxes");
	expect(db_alias_add(&a, "a1@small.example", targets, 1, &error), SQL_OK, "");
	expect(db_alias_add(&a, "a2@small.example", targets, 1, &error), SQL_FAIL,
	       "maximum of 1 aliases");
	/* targets of an existing alias are not limited */
	expect(db_alias_add(&a, "a1@small.example", targets + 1, 1, &error), SQL_OK, "");

	expect(db_mailbox_passwd(&a, "dan@example.com", "{PLAIN}y", &error), SQL_OK, "");
	expect(db_mailbox_passwd(&a, "nobody@example.com", "{PLAIN}y", &error), SQL_FAIL,
	       "mailbox nobody@example.com does not exist");
	assert_int_equal(
	        sql_query(db.conn,
	                  "SELECT password FROM mailboxes WHERE address = 'dan@example.com'", NULL,
	                  0, 0, &res, &error),
	        SQL_OK);
	assert_string_equal(sql_cell(&res, 0, 0), "{PLAIN}y");
	sql_result_free(&res);

	expect(db_mailbox_list(&a, "example.com", &res, &error), SQL_OK, "");
	assert_int_equal(res.nrows, 3);
	assert_string_equal(sql_cell(&res, 0, 0), "alice@example.com");
	assert_string_equal(sql_cell(&res, 1, 0), "bob@example.com");
	assert_null(sql_cell(&res, 1, 2)); /* no quota of its own */
	assert_string_equal(sql_cell(&res, 1, 3), "52428800"); /* the domain's */
	assert_string_equal(sql_cell(&res, 2, 0), "dan@example.com");
	assert_string_equal(sql_cell(&res, 2, 1), "Dan");
	assert_string_equal(sql_cell(&res, 2, 4), "1");
	sql_result_free(&res);

	/* aliases: duplicates kept once, catch-all, delete target by target */
	expect(db_alias_add(&a, "sales@example.com", targets, 3, &error), SQL_OK, "");
	expect_lookup(&db, "db:aliases", "sales@example.com",
	              "found alice@example.com,x@remote.example");
	expect(db_alias_add(&a, "sales@example.com", targets, 2, &error), SQL_OK, "");
	expect_lookup(&db, "db:aliases", "sales@example.com",
	              "found alice@example.com,x@remote.example");
	expect(db_alias_add(&a, "@example.com", targets, 1, &error), SQL_OK, "");
	expect_lookup(&db, "db:aliases", "@example.com", "found alice@example.com");
	expect_lookup(&db, "db:aliases", "bob@example.com", "found bob@example.com");
	expect(db_alias_add(&a, "x@nosuch.example", targets, 1, &error), SQL_FAIL,
	       "domain nosuch.example does not exist");
	expect(db_domain_add(&a, "alias.example", &alias, &error), SQL_OK, "");
	expect(db_alias_add(&a, "x@alias.example", targets, 1, &error), SQL_FAIL,
	       "alias.example is an alias domain");

	expect(db_alias_list(&a, "example.com", &res, &error), SQL_OK, "");
	assert_string_equal(sql_cell(&res, 0, 0), "@example.com");
	sql_result_free(&res);

	expect(db_alias_del(&a, "sales@example.com", "nobody@example.com", &error), SQL_FAIL,
	       "alias sales@example.com has no target nobody@example.com");
	expect(db_alias_del(&a, "sales@example.com", "x@remote.example", &error), SQL_OK, "");
	expect_lookup(&db, "db:aliases", "sales@example.com", "found alice@example.com");
	expect(db_alias_del(&a, "sales@example.com", "alice@example.com", &error), SQL_OK, "");
	expect_lookup(&db, "db:aliases", "sales@example.com", "not found"); /* alias gone */
	expect(db_alias_del(&a, "sales@example.com", NULL, &error), SQL_FAIL,
	       "alias sales@example.com does not exist");
	expect(db_alias_del(&a, "@example.com", NULL, &error), SQL_OK, "");
	expect_lookup(&db, "db:aliases", "@example.com", "not found");

	expect(db_mailbox_del(&a, "dan@example.com", &error), SQL_OK, "");
	expect_lookup(&db, "db:mailboxes", "dan@example.com", "not found");
	expect(db_mailbox_del(&a, "dan@example.com", &error), SQL_FAIL, "does not exist");
	str_free(&error);
	test_db_teardown(&db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_names),
	        cmocka_unit_test(test_domains),
	        cmocka_unit_test(test_mailboxes_and_aliases),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
