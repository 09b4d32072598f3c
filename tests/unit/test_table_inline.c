/* test_table_inline.c - inline:{...} and static: tables: Postfix 3.0
 * inline syntax (commas, white space, braced elements with spaces, key
 * folding, duplicates), dump order, static:{ text }, and the syntax
 * errors of both. */
#include "table_test.h"

static void collect(const char *key, const char *value, void *ctx)
{
	str_appendf(ctx, "[%s]=[%s]", key, value);
}

static void test_inline(void **state)
{
	struct table *t;
	struct test_log tl;
	str_t out, error;

	(void)state;
	str_init(&out);
	str_init(&error);
	test_log_start(&tl, false);
	t = test_open("inline:{ alice@Example.com=alice@mail, "
	              "{ carol@example.com = text with  spaces },\tDave=d1 dave=d2, { empty = } }");
	assert_non_null(test_log_find(&tl, "duplicate key \"dave\": the last value wins"));
	test_log_stop(&tl);
	assert_true(t->flags & TABLE_F_FIXED_KEYS);
	assert_lookup(t, "ALICE@example.com", "ALICE@example.com -> found \"alice@mail\"");
	assert_lookup(t, "alice@example.com", "alice@example.com -> found \"alice@mail\"");
	assert_lookup(t, "carol@example.com", "carol@example.com -> found \"text with  spaces\"");
	assert_lookup(t, "dave", "dave -> found \"d2\"");
	assert_lookup(t, "empty", "empty -> found \"\"");
	assert_lookup(t, "bob", "bob -> not found");
	assert_lookup(t, "alice", "alice -> not found");
	assert_int_equal(table_dump(t, collect, &out, &error), 0);
	assert_string_equal(str_c(&out), "[alice@example.com]=[alice@mail]"
	                                 "[carol@example.com]=[text with  spaces]"
	                                 "[dave]=[d2][empty]=[]");
	table_close(&t);
	str_free(&out);
	str_free(&error);
}

static void test_inline_errors(void **state)
{
	(void)state;
	test_open_fails("inline:{ a=b, bob = x }", "bad table \"inline:{ a=b, bob = x }\"",
	                "missing '=' in \"bob\"", "need \"inline:{name=value...}\"", NEEDLES_END);
	test_open_fails("inline:a=b", "the table must be enclosed in {}", NEEDLES_END);
	test_open_fails("inline:{ a=b", "missing '}'", NEEDLES_END);
	test_open_fails("inline:{ a=b }x", "text after '}'", NEEDLES_END);
	test_open_fails("inline:{ }", "empty table", NEEDLES_END);
	test_open_fails("inline:{ =b }", "missing name before '='", NEEDLES_END);
	test_open_fails("inline:{ {a=b}c }", "text after '}' in \"{a=b}c\"", NEEDLES_END);
}

static void test_static(void **state)
{
	struct table *t;
	str_t error;

	(void)state;
	str_init(&error);
	t = test_open("static:5000");
	assert_lookup(t, "anything", "anything -> found \"5000\"");
	assert_lookup(t, "", " -> found \"5000\"");
	/* a static table is not dumpable */
	assert_int_equal(table_dump(t, NULL, NULL, &error), -1);
	assert_string_equal(str_c(&error),
	                    "static:5000: static tables cannot be listed (no fixed keys to show)");
	table_close(&t);
	t = test_open("static:{ text with spaces }");
	assert_lookup(t, "k", "k -> found \"text with spaces\"");
	table_close(&t);
	t = test_open("static:{}");
	assert_lookup(t, "k", "k -> found \"\"");
	table_close(&t);
	test_open_fails("static:{ unbalanced", "bad table name \"static:{ unbalanced\"",
	                "missing '}'", NEEDLES_END);
	test_open_fails("static:{a}b", "text after '}'", NEEDLES_END);
	test_open_fails("static:", "bad table name \"static:\": nothing after \"static:\"",
	                NEEDLES_END);
	str_free(&error);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_inline),
	        cmocka_unit_test(test_inline_errors),
	        cmocka_unit_test(test_static),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
