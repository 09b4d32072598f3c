/* test_str.c - unit tests for lib/base/str, strv and parse: growth, binary
 * data, list splitting with braces, strict number/bool/time parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "base/parse.h"
#include "base/str.h"
#include "base/strv.h"

static void test_str_growth_and_binary(void **state)
{
	str_t s;

	(void)state;
	str_init(&s);
	for (int i = 0; i < 10000; i++)
		str_append_c(&s, (char)('a' + i % 26));
	assert_int_equal(s.len, 10000);
	assert_int_equal(strlen(str_c(&s)), 10000);
	str_reset(&s);
	str_append_n(&s, "a\0b", 3);
	assert_int_equal(s.len, 3);
	assert_int_equal(s.buf[3], '\0');
	str_appendf(&s, "%0*d", 5000, 7);
	assert_int_equal(s.len, 5003);
	assert_int_equal(s.buf[s.len - 1], '7');
	str_free(&s);
}

static void test_str_trim_lower(void **state)
{
	str_t s;

	(void)state;
	str_init(&s);
	str_set(&s, " \t Mixed Case \r\n");
	str_trim(&s);
	str_lower(&s);
	assert_string_equal(str_c(&s), "mixed case");
	str_set(&s, " \t\n");
	assert_true(str_is_blank(&s));
	str_trim(&s);
	assert_int_equal(s.len, 0);
	str_free(&s);
}

static void test_split_list(void **state)
{
	strv_t sv = STRV_INIT;
	const char *error;

	(void)state;
	assert_int_equal(strv_split_list(&sv, " a, b\tc ,,{ x y , z } d", &error), 0);
	assert_int_equal(sv.n, 5);
	assert_string_equal(sv.v[0], "a");
	assert_string_equal(sv.v[2], "c");
	assert_string_equal(sv.v[3], "x y , z");
	assert_string_equal(sv.v[4], "d");
	assert_null(sv.v[5]);
	strv_free(&sv);
	assert_int_equal(strv_split_list(&sv, "a, { b", &error), -1);
	assert_string_equal(error, "missing '}' in list");
	strv_free(&sv);
	assert_int_equal(strv_split_list(&sv, "a }", &error), -1);
	strv_free(&sv);
	assert_int_equal(strv_split_list(&sv, "", &error), 0);
	assert_int_equal(sv.n, 0);
	/* A brace group inside an element keeps the element whole. */
	assert_int_equal(strv_split_list(&sv, "inline:{ a=b, c={d} }, db:x", &error), 0);
	assert_int_equal(sv.n, 2);
	assert_string_equal(sv.v[0], "inline:{ a=b, c={d} }");
	assert_string_equal(sv.v[1], "db:x");
	strv_free(&sv);
	assert_int_equal(strv_split_list(&sv, "inline:{ a=b", &error), -1);
	assert_string_equal(error, "missing '}' in list");
	strv_free(&sv);
	assert_int_equal(strv_split_list(&sv, "inline:a=b}", &error), -1);
	assert_string_equal(error, "unexpected '}' in list");
	strv_free(&sv);
}

static void test_parse_numbers(void **state)
{
	uint64_t u = 42;
	int64_t i;
	bool b;

	(void)state;
	assert_int_equal(parse_uint64("18446744073709551615", 0, UINT64_MAX, &u), 0);
	assert_true(u == UINT64_MAX);
	assert_int_equal(parse_uint64("18446744073709551616", 0, UINT64_MAX, &u), -1);
	assert_int_equal(parse_uint64("", 0, 10, &u), -1);
	assert_int_equal(parse_uint64("12x", 0, 100, &u), -1);
	assert_int_equal(parse_uint64("-1", 0, 100, &u), -1);
	assert_int_equal(parse_uint64("101", 0, 100, &u), -1);
	assert_int_equal(parse_int64("-9223372036854775808", INT64_MIN, 0, &i), 0);
	assert_true(i == INT64_MIN);
	assert_int_equal(parse_int64("-", INT64_MIN, 0, &i), -1);
	assert_int_equal(parse_bool("YES", &b), 0);
	assert_true(b);
	assert_int_equal(parse_bool("true", &b), -1);
}

static void test_parse_time(void **state)
{
	uint64_t t;

	(void)state;
	assert_int_equal(parse_time("300", 's', UINT32_MAX, &t), 0);
	assert_int_equal(t, 300);
	assert_int_equal(parse_time("5d", 's', UINT32_MAX, &t), 0);
	assert_int_equal(t, 5 * 86400);
	assert_int_equal(parse_time("2", 'h', UINT32_MAX, &t), 0);
	assert_int_equal(t, 7200);
	assert_int_equal(parse_time("1W", 's', UINT32_MAX, &t), 0);
	assert_int_equal(t, 604800);
	assert_int_equal(parse_time("5x", 's', UINT32_MAX, &t), -1);
	assert_int_equal(parse_time("5ss", 's', UINT32_MAX, &t), -1);
	assert_int_equal(parse_time("s", 's', UINT32_MAX, &t), -1);
	assert_int_equal(parse_time("99999999999999999999", 's', UINT32_MAX, &t), -1);
	assert_int_equal(parse_time("100000w", 's', 1000, &t), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_str_growth_and_binary),
	        cmocka_unit_test(test_str_trim_lower),
	        cmocka_unit_test(test_split_list),
	        cmocka_unit_test(test_parse_numbers),
	        cmocka_unit_test(test_parse_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
