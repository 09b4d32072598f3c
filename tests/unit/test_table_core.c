/* test_table_core.c - the table registry and lookup path (table.c): names
 * and their errors, the proxy: prefix, case folding only for exact-key
 * tables, keys refused as "not found" (over TABLE_KEY_MAX, CR, LF, NUL)
 * at the exact boundary, and the one trace line per lookup at -v -v. */
#include "table_test.h"

static void test_names(void **state)
{
	struct table *t;

	(void)state;
	assert_non_null(table_backend_find("texthash"));
	assert_non_null(table_backend_find("regexp"));
	assert_non_null(table_backend_find("pcre"));
	assert_non_null(table_backend_find("cidr"));
	assert_non_null(table_backend_find("static"));
	assert_non_null(table_backend_find("inline"));
	assert_null(table_backend_find("nosuch"));
	test_open_fails("no-colon", "bad table name \"no-colon\": expected type:name", NEEDLES_END);
	test_open_fails(":x", "bad table name \":x\": expected type:name", NEEDLES_END);
	test_open_fails("Bad Type:x", "bad table name \"Bad Type:x\"", NEEDLES_END);
	test_open_fails("nosuch:x", "unsupported table type \"nosuch\" in \"nosuch:x\"",
	                NEEDLES_END);
	test_open_fails("dbm:/etc/postfix/virtual",
	                "unsupported table type \"dbm\" in \"dbm:/etc/postfix/virtual\"; use "
	                "texthash:/etc/postfix/virtual (postern reads the text file itself, no "
	                "postmap needed)",
	                NEEDLES_END);
	/* proxy: is accepted and dropped */
	t = test_open("proxy:static:OK");
	assert_string_equal(t->spec, "static:OK");
	assert_string_equal(t->name, "OK");
	assert_ptr_equal(t->backend, table_backend_find("static"));
	table_close(&t);
	assert_null(t);
	table_close(&t); /* no-op on NULL */
}

static void test_key_bounds(void **state)
{
	struct table *t = test_open("static:OK");
	struct table_result r;
	char *key = xmalloc(TABLE_KEY_MAX + 2);

	(void)state;
	table_result_init(&r);
	memset(key, 'k', TABLE_KEY_MAX);
	key[TABLE_KEY_MAX] = '\0';
	table_lookup(t, key, &r);
	assert_int_equal(r.status, TABLE_FOUND); /* exactly the limit: looked up */
	key[TABLE_KEY_MAX] = 'k';
	key[TABLE_KEY_MAX + 1] = '\0';
	table_lookup(t, key, &r);
	assert_int_equal(r.status, TABLE_NOTFOUND); /* one more: refused */
	assert_int_equal(r.value.len, 0);
	table_lookup(t, "user@example.com\r", &r);
	assert_int_equal(r.status, TABLE_NOTFOUND);
	table_lookup(t, "user@example.com\nDATA", &r);
	assert_int_equal(r.status, TABLE_NOTFOUND);
	table_lookup_n(t, "user\0@example.com", 17, &r);
	assert_int_equal(r.status, TABLE_NOTFOUND);
	table_lookup(t, "tab\tis fine", &r);
	assert_int_equal(r.status, TABLE_FOUND);
	table_lookup(t, "", &r);
	assert_int_equal(r.status, TABLE_FOUND);
	table_result_free(&r);
	free(key);
	table_close(&t);
}

static void test_folding(void **state)
{
	char *dir = test_tmpdir();
	char *file = test_write_text(dir, "re", "/^A$/i upper only\n");
	char *spec = xasprintf("regexp:%s", file);
	struct table *t;

	(void)state;
	/* exact-key tables fold the key ... */
	t = test_open("inline:{ mixed@example.com=yes }");
	assert_lookup(t, "MiXeD@Example.COM", "MiXeD@Example.COM -> found \"yes\"");
	table_close(&t);
	/* ... pattern tables see it as it is */
	t = test_open(spec);
	assert_lookup(t, "A", "A -> found \"upper only\"");
	assert_lookup(t, "a", "a -> not found");
	table_close(&t);
	free(spec);
	free(file);
	test_rmtree(&dir);
}

/* Is line "lookup KEY in SPEC: RESULT (N ms)"? */
static void assert_trace(const struct test_log *tl, const char *prefix)
{
	const char *line = test_log_find(tl, prefix);
	size_t len;

	if (line == NULL)
		fail_msg("no trace line starting [%s]", prefix);
	assert_int_equal(strncmp(line, prefix, strlen(prefix)), 0);
	len = strlen(line);
	assert_true(len >= strlen(prefix) + 5);
	assert_string_equal(line + len - 4, " ms)");
	/* only the number of milliseconds between the prefix and " ms)" */
	for (const char *p = line + strlen(prefix); p < line + len - 4; p++)
		if (*p < '0' || *p > '9')
			fail_msg("trace line [%s]: expected a number of ms", line);
}

static void test_trace(void **state)
{
	char *dir = test_tmpdir();
	char *file = test_write_text(dir, "re", "/^(a+)+$/ hit\n");
	char *spec = xasprintf("regexp:%s", file), *prefix;
	struct table *t = test_open("inline:{ alice@example.com=alice@mail }"), *re;
	struct test_log tl;
	char *got;

	(void)state;
	re = test_open(spec);
	test_log_start(&tl, true);
	log_set_verbose(1);
	free(test_lookup(t, "alice@example.com"));
	assert_null(test_log_find(&tl, "lookup "));
	log_set_verbose(2);
	got = test_lookup(t, "Alice@Example.com");
	free(got);
	assert_trace(&tl, "lookup alice@example.com in inline:{ alice@example.com=alice@mail }: "
	                  "found \"alice@mail\" (");
	free(test_lookup(t, "bob@example.com"));
	assert_trace(&tl, "lookup bob@example.com in inline:{ alice@example.com=alice@mail }: "
	                  "not found (");
	free(test_lookup(re, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab"));
	prefix =
	        xasprintf("lookup aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab in %s: temporary failure: "
	                  "%s, line 1: pattern too complex for this key (PCRE2: match limit "
	                  "exceeded) (",
	                  spec, spec);
	assert_trace(&tl, prefix);
	free(prefix);
	log_set_verbose(0);
	test_log_stop(&tl);
	table_close(&t);
	table_close(&re);
	free(spec);
	free(file);
	test_rmtree(&dir);
}

static void test_result_helpers(void **state)
{
	struct table_result r;

	(void)state;
	table_result_init(&r);
	assert_int_equal(r.status, TABLE_NOTFOUND);
	r.status = TABLE_TEMPFAIL;
	str_set(&r.error, "x");
	str_set(&r.value, "y");
	table_result_reset(&r);
	assert_int_equal(r.status, TABLE_NOTFOUND);
	assert_int_equal(r.value.len, 0);
	assert_int_equal(r.error.len, 0);
	table_result_free(&r);
	table_result_free(&r); /* twice is harmless */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_names),          cmocka_unit_test(test_key_bounds),
	        cmocka_unit_test(test_folding),        cmocka_unit_test(test_trace),
	        cmocka_unit_test(test_result_helpers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
