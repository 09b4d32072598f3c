/* test_table_maps.c - table lists (maps.c): first found wins, a temporary
 * failure ends the search as TEMPFAIL (produced for real by a regexp that
 * hits its match limit), Postfix's address lookup order with recipient
 * delimiters and its exceptions, pattern tables seeing only the full
 * address, domain lookups, and list parsing. */
#include "table_test.h"

#include "table/maps.h"

static struct maps *open_maps(const char *list)
{
	struct maps *m;
	str_t error;

	str_init(&error);
	m = maps_open("test_maps", list, NULL, &error);
	if (m == NULL)
		fail_msg("maps_open %s: %s", list, str_c(&error));
	str_free(&error);
	return m;
}

/* "status value [table key extension]" of an address lookup. */
static char *addr(struct maps *m, const char *address, const char *delims, unsigned options)
{
	struct maps_answer a;
	struct table_result r;
	str_t out;

	table_result_init(&r);
	maps_answer_init(&a);
	str_init(&out);
	switch (maps_lookup_addr(m, address, delims, options, &r, &a)) {
	case TABLE_FOUND:
		str_appendf(&out, "found %s key=%s ext=%s", str_c(&r.value), a.key,
		            a.extension != NULL ? a.extension : "-");
		break;
	case TABLE_NOTFOUND:
		str_append(&out, "not found");
		assert_null(a.table);
		break;
	case TABLE_TEMPFAIL:
		str_appendf(&out, "tempfail %s", a.table->spec);
		break;
	}
	maps_answer_free(&a);
	table_result_free(&r);
	return test_steal(&out);
}

#define assert_addr(m, address, delims, options, expected) \
	do { \
		char *got_ = addr((m), (address), (delims), (options)); \
		if (strcmp(got_, (expected)) != 0) \
			fail_msg("%s: expected [%s], got [%s]", (address), (expected), got_); \
		free(got_); \
	} while (0)

static void test_first_found_wins(void **state)
{
	struct maps *m = open_maps("inline:{ x=1 }, inline:{ k=first }, inline:{ k=second }");
	struct table_result r;
	struct maps_answer a;

	(void)state;
	table_result_init(&r);
	maps_answer_init(&a);
	assert_int_equal(maps_count(m), 3);
	assert_string_equal(maps_title(m), "test_maps");
	assert_int_equal(maps_lookup(m, "k", 0, &r, &a), TABLE_FOUND);
	assert_string_equal(str_c(&r.value), "first");
	assert_ptr_equal(a.table, maps_table(m, 1));
	assert_string_equal(a.key, "k");
	assert_int_equal(maps_lookup(m, "nope", 0, &r, NULL), TABLE_NOTFOUND);
	assert_null(maps_table(m, 3));
	maps_answer_free(&a);
	table_result_free(&r);
	maps_close(&m);
	assert_null(m);
	maps_close(&m);
}

static void test_tempfail_precedence(void **state)
{
	static const char key[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab";
	char *dir = test_tmpdir();
	char *file = test_write_text(dir, "slow.re", "/^(a+)+$/ hit\n");
	char *list;
	struct table_result r;
	struct maps_answer a;
	struct test_log tl;
	struct maps *m;

	(void)state;
	table_result_init(&r);
	maps_answer_init(&a);
	test_log_start(&tl, false);

	/* the failing table comes first: TEMPFAIL, even though a later one has it */
	list = xasprintf("regexp:%s, inline:{ %s=found }", file, key);
	m = open_maps(list);
	assert_int_equal(maps_lookup(m, key, 0, &r, &a), TABLE_TEMPFAIL);
	assert_ptr_equal(a.table, maps_table(m, 0));
	assert_non_null(strstr(str_c(&r.error), "match limit exceeded"));
	assert_int_equal(r.value.len, 0);
	assert_non_null(test_log_find(&tl, "test_maps: regexp:"));
	assert_non_null(test_log_find(&tl, " lookup error for \"aaaa"));
	/* other keys still work through the same list */
	assert_int_equal(maps_lookup(m, "aaa", 0, &r, NULL), TABLE_FOUND);
	maps_close(&m);
	free(list);

	/* an earlier table found it: the failing one is never asked */
	list = xasprintf("inline:{ %s=found }, regexp:%s", key, file);
	m = open_maps(list);
	assert_int_equal(maps_lookup(m, key, 0, &r, &a), TABLE_FOUND);
	assert_string_equal(str_c(&r.value), "found");
	maps_close(&m);
	free(list);

	/* an earlier table did not find it: TEMPFAIL */
	list = xasprintf("inline:{ other=1 }, regexp:%s, static:fallback", file);
	m = open_maps(list);
	assert_int_equal(maps_lookup(m, key, 0, &r, &a), TABLE_TEMPFAIL);
	assert_ptr_equal(a.table, maps_table(m, 1));
	/* the address order stops at the failure too: no @domain fallback */
	{
		char *expected = xasprintf("tempfail regexp:%s", file);

		assert_addr(m, key, "+", 0, expected);
		free(expected);
	}
	maps_close(&m);
	free(list);

	test_log_stop(&tl);
	maps_answer_free(&a);
	table_result_free(&r);
	free(file);
	test_rmtree(&dir);
}

static void test_address_order(void **state)
{
	struct maps *m;

	(void)state;
	m = open_maps("inline:{ user+ext@example.com=full, user@example.com=bare, "
	              "user+ext=local-ext, user=local, @example.com=catchall }");
	assert_addr(m, "user+ext@example.com", "+", MAPS_ADDR_LOCALPART,
	            "found full key=user+ext@example.com ext=-");
	assert_addr(m, "User+Ext@Example.COM", "+", 0, "found full key=User+Ext@Example.COM ext=-");
	assert_addr(m, "user+other@example.com", "+", MAPS_ADDR_LOCALPART,
	            "found bare key=user@example.com ext=+other");
	assert_addr(m, "nobody@example.com", "+", MAPS_ADDR_LOCALPART,
	            "found catchall key=@example.com ext=-");
	assert_addr(m, "nobody@example.com", "+", MAPS_ADDR_NO_AT_DOMAIN, "not found");
	assert_addr(m, "user+ext@example.org", "+", 0, "not found");
	assert_addr(m, "user+ext@example.org", "+", MAPS_ADDR_LOCALPART,
	            "found local-ext key=user+ext ext=-");
	assert_addr(m, "user+more@example.org", "+", MAPS_ADDR_LOCALPART,
	            "found local key=user ext=+more");
	/* without recipient_delimiter there is no extension to strip */
	assert_addr(m, "user+other@example.com", "", MAPS_ADDR_LOCALPART,
	            "found catchall key=@example.com ext=-");
	assert_addr(m, "user+other@example.com", NULL, 0, "found catchall key=@example.com ext=-");
	/* an address without a domain: itself, then without extension */
	assert_addr(m, "user+ext", "+", 0, "found local-ext key=user+ext ext=-");
	assert_addr(m, "user+zzz", "+", 0, "found local key=user ext=+zzz");
	maps_close(&m);

	/* each key is tried in every table before the next key */
	m = open_maps(
	        "inline:{ user@example.com=t1-bare }, inline:{ user+ext@example.com=t2-full }");
	assert_addr(m, "user+ext@example.com", "+", 0,
	            "found t2-full key=user+ext@example.com ext=-");
	maps_close(&m);
}

static void test_pattern_tables_see_full_address(void **state)
{
	char *dir = test_tmpdir();
	char *file = test_write_text(dir, "re",
	                             "/^user@example\\.com$/ re-bare\n/^@example\\.com$/ re-at\n"
	                             "/^user$/ re-local\n");
	char *list = xasprintf("regexp:%s", file);
	struct maps *m = open_maps(list);

	(void)state;
	assert_addr(m, "user@example.com", "+", 0, "found re-bare key=user@example.com ext=-");
	assert_addr(m, "user+ext@example.com", "+", MAPS_ADDR_LOCALPART, "not found");
	assert_addr(m, "other@example.com", "+", MAPS_ADDR_LOCALPART, "not found");
	maps_close(&m);
	free(list);
	free(file);
	test_rmtree(&dir);
}

static void test_delimiters(void **state)
{
	struct maps *m = open_maps("inline:{ user@x=user, owner@x=owner, list@x=list, "
	                           "postmaster@x=pm, mailer-daemon@x=md }");

	(void)state;
	/* any character of the set starts the extension; the first one wins */
	assert_addr(m, "user-a+b@x", "+-", 0, "found user key=user@x ext=-a+b");
	assert_addr(m, "user+a-b@x", "+-", 0, "found user key=user@x ext=+a-b");
	/* owner-* and *-request are never split when '-' is a delimiter */
	assert_addr(m, "owner-list@x", "-", 0, "not found");
	assert_addr(m, "list-request@x", "-", 0, "not found");
	assert_addr(m, "list+request@x", "+", 0, "found list key=list@x ext=+request");
	/* a local part that would become empty is not split */
	assert_addr(m, "+user@x", "+", 0, "not found");
	assert_int_equal(maps_extension_split("+user", 5, "+"), 5);
	assert_int_equal(maps_extension_split("user+", 5, "+"), 4);
	assert_int_equal(maps_extension_split("Postmaster", 10, "+-"), 10);
	assert_int_equal(maps_extension_split("MAILER-DAEMON", 13, "-"), 13);
	assert_int_equal(maps_extension_split("double-bounce", 13, "-"), 13);
	assert_int_equal(maps_extension_split("a-b", 3, NULL), 3);
	maps_close(&m);
}

static void test_domain_lookup(void **state)
{
	struct maps *m = open_maps("inline:{ example.com=OK }");
	struct table_result r;
	struct maps_answer a;

	(void)state;
	table_result_init(&r);
	maps_answer_init(&a);
	assert_int_equal(maps_lookup_domain(m, "Example.COM.", &r, &a), TABLE_FOUND);
	assert_string_equal(a.key, "Example.COM");
	/* no parent-domain matching */
	assert_int_equal(maps_lookup_domain(m, "sub.example.com", &r, NULL), TABLE_NOTFOUND);
	assert_int_equal(maps_lookup_domain(m, "com", &r, NULL), TABLE_NOTFOUND);
	maps_answer_free(&a);
	table_result_free(&r);
	maps_close(&m);
}

static void test_lists(void **state)
{
	struct maps *m;
	str_t error;
	strv_t specs = STRV_INIT;

	(void)state;
	str_init(&error);
	m = open_maps("  inline:{ a=1, { b = two words } },static:x\tstatic:{ y z } ");
	assert_int_equal(maps_count(m), 3);
	assert_string_equal(maps_table(m, 0)->spec, "inline:{ a=1, { b = two words } }");
	assert_string_equal(maps_table(m, 2)->spec, "static:{ y z }");
	maps_close(&m);
	m = open_maps("");
	assert_int_equal(maps_count(m), 0);
	assert_addr(m, "a@b", "+", MAPS_ADDR_LOCALPART, "not found");
	maps_close(&m);

	assert_null(
	        maps_open("virtual_alias_maps", "static:a, texthash:/nonexistent/x", NULL, &error));
	assert_string_equal(str_c(&error), "virtual_alias_maps: texthash:/nonexistent/x: open "
	                                   "/nonexistent/x: No such file or directory");
	str_reset(&error);
	assert_null(maps_open("virtual_alias_maps", "inline:{ a=b", NULL, &error));
	assert_non_null(strstr(str_c(&error), "virtual_alias_maps: missing '}'"));
	str_reset(&error);
	assert_null(maps_open("x", "static:a}", NULL, &error));
	assert_non_null(strstr(str_c(&error), "unexpected '}'"));

	strv_add(&specs, "static:one");
	strv_add(&specs, "inline:{ k=v }");
	str_reset(&error);
	m = maps_open_list("list", &specs, NULL, &error);
	assert_non_null(m);
	assert_int_equal(maps_count(m), 2);
	maps_close(&m);
	strv_free(&specs);
	str_free(&error);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_first_found_wins),
	        cmocka_unit_test(test_tempfail_precedence),
	        cmocka_unit_test(test_address_order),
	        cmocka_unit_test(test_pattern_tables_see_full_address),
	        cmocka_unit_test(test_delimiters),
	        cmocka_unit_test(test_domain_lookup),
	        cmocka_unit_test(test_lists),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
