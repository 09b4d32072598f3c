/* test_table_regexp.c - regexp: and pcre: tables (PCRE2): golden files
 * (flags and their defaults, $n substitution, negation, if/endif,
 * delimiters, continuation lines), every kind of bad line reported at open
 * with file, line and PCRE2's message, multi-line keys, and the match
 * limit turning a pathological pattern into a temporary failure; the
 * inline form regexp:{ {rule}, ... }. */
#include "table_test.h"

#include <time.h>

static void test_golden_regexp(void **state)
{
	(void)state;
	test_golden("regexp", "regexp");
}

static void test_golden_pcre(void **state)
{
	(void)state;
	test_golden("pcre", "pcre");
}

struct tmp_table {
	char *dir, *file, *spec;
};

static void tmp_write(struct tmp_table *tt, const char *type, const char *text)
{
	tt->dir = test_tmpdir();
	tt->file = test_write(tt->dir, "table", text, strlen(text));
	tt->spec = xasprintf("%s:%s", type, tt->file);
}

static void tmp_free(struct tmp_table *tt)
{
	free(tt->file);
	free(tt->spec);
	test_rmtree(&tt->dir);
}

static void test_bad_lines_regexp(void **state)
{
	static const char *const expected[] = {
	        "line 1: no closing pattern delimiter \"/\"",
	        "line 2: unknown regexp option \"q\"",
	        "line 3: error in pattern /(abc/ at offset 4: missing closing parenthesis",
	        "line 4: out of range replacement index \"2\": the pattern has 1 groups",
	        "line 5: non-numeric replacement index \"x\" in result",
	        "line 6: \"$\" without a group number in result (write $$ for a literal $)",
	        "line 7: $number in the result of a negated pattern",
	        "line 8: endif without matching if",
	        "line 9: no result after the pattern",
	        "line 10: option \"x\" (basic regular expressions) is not supported",
	        "line 11: unknown regexp option \"s\"",
	        "line 12: expected /pattern/ result, if /pattern/ or endif",
	        "line 13: text after if pattern: \"/b/ indented\" (do not indent rules",
	        "line 15: if has no matching endif",
	        "line 16: missing '}' after \"${\" in result",
	        "line 17: out of range replacement index \"0\" in result",
	        "line 18: bad pattern delimiter \"\\\"",
	};
	struct tmp_table tt;
	struct table *t;
	str_t error;

	(void)state;
	tmp_write(&tt, "regexp",
	          "/abc result\n"
	          "/abc/q result\n"
	          "/(abc/ result\n"
	          "/(a)/ $2\n"
	          "/a/ ${x}\n"
	          "/a/ cost $\n"
	          "!/(a)/ $1\n"
	          "endif\n"
	          "/a/\n"
	          "/a/x result\n"
	          "/a/s result\n"
	          "hello world\n"
	          "if /a/\n"
	          "  /b/ indented\n"
	          "if /c/\n"
	          "/a/ ${1\n"
	          "/a/ $0\n"
	          "!\\a\\ backslash\n");
	str_init(&error);
	t = table_open(tt.spec, NULL, &error);
	assert_null(t);
	for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
		char *needle = xasprintf("%s, %s", tt.spec, expected[i]);

		if (strstr(str_c(&error), needle) == NULL)
			fail_msg("the error does not contain [%s]; it is [%s]", needle,
			         str_c(&error));
		free(needle);
	}
	str_free(&error);
	tmp_free(&tt);
}

static void test_bad_lines_pcre(void **state)
{
	struct tmp_table tt;
	struct test_log tl;
	struct table *t;
	char *e1, *e2, *w;

	(void)state;
	tmp_write(&tt, "pcre", "/a/q r\n/a/!/b/ r\n/x/X obsolete\n");
	e1 = xasprintf("%s, line 1: unknown pcre option \"q\"", tt.spec);
	e2 = xasprintf("%s, line 2: unknown pcre option \"!\"", tt.spec);
	test_open_fails(tt.spec, e1, e2, NEEDLES_END);
	free(e1);
	free(e2);
	tmp_free(&tt);

	/* X is obsolete: a warning, and the rule works */
	tmp_write(&tt, "pcre", "/x/X obsolete\n");
	test_log_start(&tl, false);
	t = test_open(tt.spec);
	w = xasprintf("%s, line 1: ignoring obsolete pcre option \"X\"", tt.spec);
	assert_non_null(test_log_find(&tl, w));
	assert_lookup(t, "X", "X -> found \"obsolete\"");
	test_log_stop(&tl);
	free(w);
	table_close(&t);
	tmp_free(&tt);
	test_open_fails("pcre:/nonexistent/x.pcre",
	                "pcre:/nonexistent/x.pcre: open /nonexistent/x.pcre: No such file",
	                NEEDLES_END);
}

static void test_multiline_keys(void **state)
{
	struct tmp_table tt;
	struct table *t;

	(void)state;
	/* header_checks see folded headers with their line breaks */
	tmp_write(&tt, "regexp",
	          "/^\\tsecond/m multi-line\n"
	          "/^x.y$/ dot matches newline (POSIX)\n"
	          "/^p.q$/m dot stops at newline with m\n");
	t = test_open(tt.spec);
	assert_lookup(t, "Subject: first\n\tsecond",
	              "Subject: first\n\tsecond -> found \"multi-line\"");
	assert_lookup(t, "x\ny", "x\ny -> found \"dot matches newline (POSIX)\"");
	assert_lookup(t, "p\nq", "p\nq -> not found");
	assert_lookup(t, "Subject: first\r\n\tsecond",
	              "Subject: first\r\n\tsecond -> found \"multi-line\"");
	table_close(&t);
	tmp_free(&tt);

	tmp_write(&tt, "pcre", "/^x.y$/s no dotall\n/^x.y$/ dotall by default\n");
	t = test_open(tt.spec);
	assert_lookup(t, "x\ny", "x\ny -> found \"dotall by default\"");
	assert_lookup(t, "xzy", "xzy -> found \"no dotall\"");
	table_close(&t);
	tmp_free(&tt);
}

static void test_key_bound(void **state)
{
	struct tmp_table tt;
	struct table_result r;
	struct table *t;
	char *big = xmalloc(TABLE_PATTERN_KEY_MAX + 2);

	(void)state;
	tmp_write(&tt, "regexp", "/^a/ starts with a\n");
	t = test_open(tt.spec);
	table_result_init(&r);
	/* header-sized keys are matched */
	memset(big, 'a', 100000);
	big[100000] = '\0';
	table_lookup(t, big, &r);
	assert_int_equal(r.status, TABLE_FOUND);
	/* beyond TABLE_PATTERN_KEY_MAX, and with NUL, never */
	memset(big, 'a', TABLE_PATTERN_KEY_MAX + 1);
	big[TABLE_PATTERN_KEY_MAX + 1] = '\0';
	table_lookup(t, big, &r);
	assert_int_equal(r.status, TABLE_NOTFOUND);
	table_lookup_n(t, "a\0b", 3, &r);
	assert_int_equal(r.status, TABLE_NOTFOUND);
	table_result_free(&r);
	free(big);
	table_close(&t);
	tmp_free(&tt);
}

static void test_match_limit_is_tempfail(void **state)
{
	struct tmp_table tt;
	struct table_result r;
	struct test_log tl;
	struct timespec t0, t1;
	struct table *t;
	char key[64], *needle;

	(void)state;
	tmp_write(&tt, "regexp", "# catastrophic backtracking\n/^(a+)+$/ hit\n/./ any\n");
	t = test_open(tt.spec);
	table_result_init(&r);
	assert_lookup(t, "aaaa", "aaaa -> found \"hit\"");

	memset(key, 'a', 40);
	strcpy(key + 40, "b");
	test_log_start(&tl, false);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	table_lookup(t, key, &r);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(r.status, TABLE_TEMPFAIL);
	needle = xasprintf("%s, line 2: pattern too complex for this key (PCRE2: match limit "
	                   "exceeded)",
	                   tt.spec);
	assert_string_equal(str_c(&r.error), needle);
	/* the reason is logged, and the lookup did not hang */
	assert_non_null(test_log_find(&tl, needle));
	assert_true(t1.tv_sec - t0.tv_sec < 5);
	/* a later rule is not consulted: the answer is unknown, not "any" */
	assert_int_equal(r.value.len, 0);
	test_log_stop(&tl);
	free(needle);
	table_result_free(&r);
	table_close(&t);
	tmp_free(&tt);
}

/* Postfix 3.7's inline form, as in smtpd_forbidden_commands' default:
 * "regexp:{ {rule}, {rule} }"; a bad rule names its number. */
static void test_inline_rules(void **state)
{
	struct table *t;
	str_t error;

	(void)state;
	str_init(&error);
	t = test_open("regexp:{{/^[^A-Z]/ Bogus}}");
	assert_lookup(t, "1NOOP", "1NOOP -> found \"Bogus\"");
	assert_lookup(t, "NOOP", "NOOP -> not found");
	table_close(&t);
	t = test_open("pcre:{ {/^a(.)/ A$1}, { /^b/ B } }");
	assert_lookup(t, "ax", "ax -> found \"Ax\"");
	assert_lookup(t, "b", "b -> found \"B\"");
	assert_lookup(t, "c", "c -> not found");
	table_close(&t);
	assert_null(table_open("regexp:{ {/^a/ A}, /^b/ B }", NULL, &error));
	assert_non_null(strstr(str_c(&error), "rule 2: \"/^b/\": expected {rule}"));
	str_reset(&error);
	assert_null(table_open("regexp:{ {/^a/ A}, {/(/ B} }", NULL, &error));
	assert_non_null(strstr(str_c(&error), "regexp:{ {/^a/ A}, {/(/ B} }, line 2:"));
	str_reset(&error);
	assert_null(table_open("regexp:{ {/^a/ A}", NULL, &error));
	str_free(&error);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_golden_regexp),
	        cmocka_unit_test(test_golden_pcre),
	        cmocka_unit_test(test_bad_lines_regexp),
	        cmocka_unit_test(test_bad_lines_pcre),
	        cmocka_unit_test(test_multiline_keys),
	        cmocka_unit_test(test_key_bound),
	        cmocka_unit_test(test_match_limit_is_tempfail),
	        cmocka_unit_test(test_inline_rules),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
