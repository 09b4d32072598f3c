/* test_utf8.c - unit tests for lib/base/utf8: strict UTF-8 validation
 * (overlong forms, surrogates, code points above U+10FFFF, truncated
 * sequences, C1 controls with and without allow_c1) and printable_fix()
 * as smtpd applies it to HELO names (controls, DEL, white space and
 * invalid 8-bit bytes become the replacement; valid UTF-8 stays). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "base/utf8.h"

static bool valid(const char *s, bool allow_c1)
{
	return utf8_valid(s, strlen(s), allow_c1);
}

static void test_utf8_valid(void **state)
{
	(void)state;
	assert_true(valid("plain ascii", false));
	assert_true(valid("caf\xc3\xa9", false));
	assert_true(valid("\xe2\x82\xac \xf0\x9f\x93\xa8", false)); /* euro, envelope */
	assert_false(valid("\xc0\xaf", true)); /* overlong '/' */
	assert_false(valid("\xe0\x80\xaf", true)); /* overlong */
	assert_false(valid("\xed\xa0\x80", true)); /* surrogate U+D800 */
	assert_false(valid("\xf4\x90\x80\x80", true)); /* above U+10FFFF */
	assert_false(valid("\xc3", true)); /* truncated */
	assert_false(valid("\xe2\x82", true));
	assert_false(valid("\xff", true));
	assert_false(valid("a\x80"
	                   "b",
	                   true)); /* lone continuation byte */
	assert_true(valid("\xc2\x85", true)); /* C1 NEL: valid UTF-8 */
	assert_false(valid("\xc2\x85", false));
	/* Length-bounded: the NUL is not looked past. */
	assert_true(utf8_valid("\xc3\xa9\xff", 2, false));
}

static void test_printable_fix(void **state)
{
	char a[] = "probe.invalid\rX-Injected: y";
	char b[] = "a\x01"
	           "b\x7f"
	           "c\td";
	char c[] = "caf\xc3\xa9\xff";
	char d[] = "caf\xc3\xa9";
	char e[] = "x\xc2\x85y";
	char f[] = "a b";

	(void)state;
	assert_string_equal(printable_fix(a, PRINTABLE_UTF8 | PRINTABLE_NO_SPACE, '?'),
	                    "probe.invalid?X-Injected:?y");
	assert_string_equal(printable_fix(b, PRINTABLE_UTF8, '?'), "a?b?c?d");
	assert_string_equal(printable_fix(c, PRINTABLE_UTF8, '?'), "caf\xc3\xa9?");
	/* Without UTF-8 every 8-bit byte goes. */
	assert_string_equal(printable_fix(d, 0, '?'), "caf??");
	/* A C1 control is replaced byte by byte. */
	assert_string_equal(printable_fix(e, PRINTABLE_UTF8, '?'), "x??y");
	/* Spaces stay unless asked. */
	assert_string_equal(printable_fix(f, PRINTABLE_UTF8, '?'), "a b");
	assert_true(text_has_no_control("a b~", 4));
	assert_false(text_has_no_control("a\x7f", 2));
	assert_false(text_has_no_control("a\0b", 3));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_utf8_valid),
	        cmocka_unit_test(test_printable_fix),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
