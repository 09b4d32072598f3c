/* test_mailbox_lookup.c - a virtual mailbox's maildir and quota
 * (lib/delivery/mailbox_lookup.c): texthash mailboxes with user+ext,
 * @domain and upper-case addresses, virtual_mailbox_base joined or not,
 * an unknown user; db:mailboxes on the SQLite demo database with the
 * mailbox's own quota, the domain default and 0 (no limit), a bad quota
 * value (TEMPFAIL naming db:quota), and a table that cannot answer
 * (TEMPFAIL naming virtual_mailbox_maps, never "not found"). */
#include "db_test.h"

#include "delivery/mailbox_lookup.h"

struct fixture {
	char *dir;
	struct config *cfg;
	struct mailbox_lookup *ml;
	struct mailbox_info info;
};

static void open_with(struct fixture *f, const char *text)
{
	str_t error;

	str_init(&error);
	f->cfg = test_db_config(text);
	if (mailbox_lookup_open(f->cfg, f->dir, &f->ml, &error) < 0)
		fail_msg("mailbox_lookup_open: %s", str_c(&error));
	str_free(&error);
}

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));

	f->dir = test_tmpdir();
	free(test_write_text(f->dir, "mailboxes",
	                     "c@v.test v.test/c/\n"
	                     "f@v.test v.test/f\n"
	                     "@w.test w.test/all/\n"));
	mailbox_info_init(&f->info);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	mailbox_info_free(&f->info);
	mailbox_lookup_close(&f->ml);
	mailbox_lookup_close(&f->ml); /* no-op on NULL */
	config_destroy(&f->cfg);
	test_rmtree(&f->dir);
	free(f);
	return 0;
}

static void test_texthash(void **state)
{
	struct fixture *f = *state;
	char *text = xasprintf("recipient_delimiter = +\n"
	                       "virtual_mailbox_base = /var/vmail\n"
	                       "virtual_mailbox_maps = texthash:%s/mailboxes\n",
	                       f->dir);
	char *spec = xasprintf("texthash:%s/mailboxes", f->dir);

	open_with(f, text);
	assert_int_equal(mailbox_lookup(f->ml, "C+lists@V.test", &f->info), TABLE_FOUND);
	assert_string_equal(f->info.table, spec);
	assert_string_equal(f->info.key, "c@v.test");
	assert_string_equal(f->info.value, "v.test/c/");
	assert_string_equal(f->info.path, "/var/vmail/v.test/c/");
	assert_true(f->info.is_maildir);
	assert_null(f->info.quota_table); /* no db:mailboxes: no quota table */
	assert_int_equal(f->info.quota, -1);

	assert_int_equal(mailbox_lookup(f->ml, "f@v.test", &f->info), TABLE_FOUND);
	assert_false(f->info.is_maildir);
	assert_int_equal(mailbox_lookup(f->ml, "anyone@w.test", &f->info), TABLE_FOUND);
	assert_string_equal(f->info.key, "@w.test");
	assert_string_equal(f->info.path, "/var/vmail/w.test/all/");

	assert_int_equal(mailbox_lookup(f->ml, "nobody@v.test", &f->info), TABLE_NOTFOUND);
	assert_null(f->info.path);
	assert_string_equal(str_c(&f->info.error), "");
	free(text);
	free(spec);
}

static void test_no_base(void **state)
{
	struct fixture *f = *state;
	char *text = xasprintf("virtual_mailbox_maps = texthash:%s/mailboxes\n", f->dir);

	open_with(f, text);
	assert_int_equal(mailbox_lookup(f->ml, "c@v.test", &f->info), TABLE_FOUND);
	assert_string_equal(f->info.path, "v.test/c/");
	free(text);
}

static void test_db_quota(void **state)
{
	struct fixture *f = *state;
	struct test_db db;
	char *text;
	struct test_log log;

	test_db_setup(&db, true, true);
	text = xasprintf("database = sqlite:%s\nrecipient_delimiter = +\n"
	                 "virtual_mailbox_base = /vm\nvirtual_mailbox_maps = db:mailboxes\n",
	                 db.db_path);
	open_with(f, text);
	/* Her own quota, found through the extension. */
	assert_int_equal(mailbox_lookup(f->ml, "alice+x@example.com", &f->info), TABLE_FOUND);
	assert_string_equal(f->info.path, "/vm/example.com/alice/");
	assert_string_equal(f->info.quota_table, "db:quota");
	assert_int_equal(f->info.quota, 104857600);
	/* The domain default; 0 = no limit. */
	assert_int_equal(mailbox_lookup(f->ml, "bob@example.com", &f->info), TABLE_FOUND);
	assert_int_equal(f->info.quota, 52428800);
	assert_int_equal(mailbox_lookup(f->ml, "carol@example.net", &f->info), TABLE_FOUND);
	assert_int_equal(f->info.quota, 0);
	assert_int_equal(mailbox_lookup(f->ml, "nobody@example.com", &f->info), TABLE_NOTFOUND);

	mailbox_lookup_close(&f->ml);
	config_destroy(&f->cfg);
	free(text);

	/* A database that cannot answer: TEMPFAIL naming the parameter. */
	text = xasprintf("database = sqlite:%s/missing.db\nvirtual_mailbox_maps = db:mailboxes\n",
	                 db.dir);
	open_with(f, text);
	test_log_start(&log, false);
	assert_int_equal(mailbox_lookup(f->ml, "alice@example.com", &f->info), TABLE_TEMPFAIL);
	test_log_stop(&log);
	assert_non_null(strstr(str_c(&f->info.error), "virtual_mailbox_maps: db:mailboxes"));
	assert_null(f->info.path);
	free(text);
	test_db_teardown(&db);
}

static void test_bad_quota_value(void **state)
{
	struct fixture *f = *state;
	struct test_db db;
	char *text;

	test_db_setup(&db, true, true);
	/* A quota that is not a number (SQLite stores text in any column) is the administrator's data problem,
	 * a deferral until it is fixed. */
	test_db_sql(
	        &db,
	        "UPDATE mailboxes SET quota_bytes = 'lots' WHERE address = 'alice@example.com'");
	text = xasprintf("database = sqlite:%s\nvirtual_mailbox_maps = db:mailboxes\n", db.db_path);
	open_with(f, text);
	assert_int_equal(mailbox_lookup(f->ml, "alice@example.com", &f->info), TABLE_TEMPFAIL);
	assert_string_equal(str_c(&f->info.error),
	                    "db:quota: bad quota \"lots\" for alice@example.com: expected bytes");
	free(text);
	test_db_teardown(&db);
}

static void test_tempfail(void **state)
{
	struct fixture *f = *state;
	char *cf = test_write_text(f->dir, "down.cf",
	                           "hosts = 127.0.0.1:1\nuser = u\npassword = p\ndbname = d\n"
	                           "query = SELECT maildir FROM mailbox WHERE username = '%s'\n");
	char *text = xasprintf("virtual_mailbox_maps = mysql:%s\n", cf);
	struct test_log log;

	test_log_start(&log, false);
	open_with(f, text);
	assert_int_equal(mailbox_lookup(f->ml, "c@v.test", &f->info), TABLE_TEMPFAIL);
	test_log_stop(&log);
	assert_non_null(strstr(str_c(&f->info.error), "virtual_mailbox_maps: "));
	assert_non_null(strstr(str_c(&f->info.error), cf));
	free(text);
	free(cf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_texthash, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_no_base, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_db_quota, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_bad_quota_value, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_tempfail, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
