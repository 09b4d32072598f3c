/* test_attr.c - unit tests for lib/base/attr: typed writers, the parsed
 * list and its getters, and the incremental parser, whose every input is
 * also fed in pieces of 1, 2, 3, 7 and 64 bytes to show that the split
 * does not change the result. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "base/attr.h"
#include "base/mem.h"
#include "base/str.h"
#include "base/strv.h"

static const struct attr_limits default_limits = ATTR_LIMITS_DEFAULT;

/* Parse data fed step bytes at a time and describe what came out, one
 * line per request: "DONE@<stream offset> name=value|name=value" or
 * "ERROR@<offset> message", then "END" when all data was used without an
 * error. */
static void transcript(const char *data, size_t len, const struct attr_limits *limits, size_t step,
                       str_t *out)
{
	struct attr_parser *parser = attr_parser_new(limits);
	size_t off = 0;

	while (off < len) {
		size_t n = len - off < step ? len - off : step, used = 0;
		enum attr_parse_status status = attr_parser_feed(parser, data + off, n, &used);
		struct attr_list *list;

		assert_true(used <= n);
		off += used;
		if (status == ATTR_PARSE_NEED_MORE) {
			assert_int_equal(used, n);
			assert_null(attr_parser_take(parser));
			continue;
		}
		if (status == ATTR_PARSE_ERROR) {
			assert_null(attr_parser_take(parser));
			str_appendf(out, "ERROR@%zu %s\n", off, attr_parser_error(parser));
			attr_parser_destroy(&parser);
			return;
		}
		list = attr_parser_take(parser);
		assert_non_null(list);
		assert_null(attr_parser_take(parser));
		assert_null(attr_parser_error(parser));
		str_appendf(out, "DONE@%zu", off);
		for (size_t i = 0; i < list->n; i++)
			str_appendf(out, "%c%s=%s", i == 0 ? ' ' : '|', list->attrs[i].name,
			            list->attrs[i].value);
		str_append_c(out, '\n');
		attr_list_destroy(&list);
		assert_null(list);
		attr_parser_reset(parser);
	}
	str_append(out, "END\n");
	attr_parser_destroy(&parser);
	assert_null(parser);
}

/* Check the transcript of data for every split against expected. */
static void check_parse_n(const char *data, size_t len, const struct attr_limits *limits,
                          const char *expected)
{
	static const size_t steps[] = {SIZE_MAX, 1, 2, 3, 7, 64};
	str_t out;

	str_init(&out);
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		str_reset(&out);
		transcript(data, len, limits, steps[i], &out);
		if (strcmp(str_c(&out), expected) != 0)
			fail_msg("step %zu: got\n%s\nexpected\n%s", steps[i], str_c(&out),
			         expected);
	}
	str_free(&out);
}

static void check_parse(const char *data, const char *expected)
{
	check_parse_n(data, strlen(data), &default_limits, expected);
}

/* ---- writing ---------------------------------------------------------- */

static void test_round_trip(void **state)
{
	const char *error = NULL;
	str_t out;
	struct attr_parser *parser;
	struct attr_list *list;
	size_t used, iter = 0;
	strv_t all = STRV_INIT;
	int64_t i;
	uint64_t u;

	(void)state;
	str_init(&out);
	assert_int_equal(attr_put_str(&out, ATTR_VERSION, ATTR_PROTOCOL_VERSION, &error), 0);
	assert_int_equal(attr_put_uint(&out, ATTR_REQUEST_ID, UINT64_MAX, &error), 0);
	assert_int_equal(attr_put_str(&out, "recipient", "a@example.org", &error), 0);
	assert_int_equal(attr_put_str(&out, "recipient", "b@example.org", &error), 0);
	assert_int_equal(attr_put_int(&out, "delta", INT64_MIN, &error), 0);
	assert_int_equal(attr_put_str(&out, "empty", "", &error), 0);
	assert_int_equal(attr_put_str(&out, "x.y-z_1", "a=b =c\t\x01\xff", &error), 0);
	attr_end(&out);
	assert_string_equal(str_c(&out), "version=1\n"
	                                 "request_id=18446744073709551615\n"
	                                 "recipient=a@example.org\n"
	                                 "recipient=b@example.org\n"
	                                 "delta=-9223372036854775808\n"
	                                 "empty=\n"
	                                 "x.y-z_1=a=b =c\t\x01\xff\n"
	                                 "\n");

	parser = attr_parser_new(&default_limits);
	assert_int_equal(attr_parser_feed(parser, out.buf, out.len, &used), ATTR_PARSE_DONE);
	assert_int_equal(used, out.len);
	list = attr_parser_take(parser);
	assert_int_equal(list->n, 7);
	assert_string_equal(attr_get(list, ATTR_VERSION), ATTR_PROTOCOL_VERSION);
	assert_string_equal(attr_get(list, "recipient"), "a@example.org");
	assert_string_equal(attr_get_next(list, "recipient", &iter), "a@example.org");
	assert_string_equal(attr_get_next(list, "recipient", &iter), "b@example.org");
	assert_null(attr_get_next(list, "recipient", &iter));
	assert_null(attr_get_next(list, "recipient", &iter));
	assert_int_equal(attr_get_all(list, "recipient", &all), 2);
	assert_string_equal(all.v[1], "b@example.org");
	assert_string_equal(attr_get(list, "empty"), "");
	assert_string_equal(attr_get(list, "x.y-z_1"), "a=b =c\t\x01\xff");
	assert_null(attr_get(list, "Recipient")); /* names are case-sensitive */
	assert_int_equal(attr_get_uint(list, ATTR_REQUEST_ID, 0, UINT64_MAX, &u, &error), 0);
	assert_true(u == UINT64_MAX);
	assert_int_equal(attr_get_int(list, "delta", INT64_MIN, 0, &i, &error), 0);
	assert_true(i == INT64_MIN);

	strv_free(&all);
	attr_list_destroy(&list);
	attr_list_destroy(&list); /* no-op on NULL */
	attr_parser_destroy(&parser);
	attr_parser_destroy(&parser);
	str_free(&out);
}

static void test_put_errors(void **state)
{
	static const char *const bad_names[] = {"", "a b", "a=b", "a\nb", "na:me", "n\xc3\xa9"};
	const char *error = NULL;
	str_t out;

	(void)state;
	str_init(&out);
	str_set(&out, "keep=1\n");
	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		error = NULL;
		assert_int_equal(attr_put_str(&out, bad_names[i], "v", &error), -1);
		assert_string_equal(
		        error, "bad attribute name: expected letters, digits, '_', '.' or '-'");
		assert_int_equal(attr_put_int(&out, bad_names[i], 1, &error), -1);
		assert_int_equal(attr_put_uint(&out, bad_names[i], 1, &error), -1);
		assert_false(attr_name_valid(bad_names[i]));
	}
	assert_int_equal(attr_put_str(&out, "name", "line\nbreak", &error), -1);
	assert_string_equal(error, "bad attribute value: it contains CR or LF");
	assert_int_equal(attr_put_str(&out, "name", "cr\r", &error), -1);
	assert_int_equal(attr_put_str(&out, "name", "\n", &error), -1);
	/* Nothing was appended by any failed put. */
	assert_string_equal(str_c(&out), "keep=1\n");
	str_free(&out);
}

/* ---- getters ---------------------------------------------------------- */

static void test_get_int_bounds(void **state)
{
	static const struct {
		const char *value;
		int64_t min, max;
		int ret;
		int64_t expect;
	} cases[] = {
	        {"0", 0, 10, 0, 0},
	        {"10", 0, 10, 0, 10},
	        {"11", 0, 10, -1, 0},
	        {"-1", 0, 10, -1, 0},
	        {"-5", -5, 5, 0, -5},
	        {"-6", -5, 5, -1, 0},
	        {"+5", -5, 5, -1, 0},
	        {" 5", -5, 5, -1, 0},
	        {"5 ", -5, 5, -1, 0},
	        {"", 0, 10, -1, 0},
	        {"0x10", 0, 100, -1, 0},
	        {"9223372036854775807", 0, INT64_MAX, 0, INT64_MAX},
	        {"9223372036854775808", 0, INT64_MAX, -1, 0},
	};
	struct attr_list *list;
	const char *error;
	int64_t v;
	uint64_t u;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		list = attr_list_new();
		attr_list_add(list, "n", cases[i].value);
		v = 4242;
		error = NULL;
		assert_int_equal(attr_get_int(list, "n", cases[i].min, cases[i].max, &v, &error),
		                 cases[i].ret);
		if (cases[i].ret == 0) {
			assert_true(v == cases[i].expect);
		} else {
			assert_true(v == 4242);
			assert_non_null(strstr(error, "attribute \"n\": bad value \""));
		}
		attr_list_destroy(&list);
	}

	list = attr_list_new();
	attr_list_add(list, "size", "abc");
	attr_list_add(list, "size", "12"); /* only the first value counts */
	attr_list_add(list, "big", "18446744073709551615");
	assert_int_equal(attr_get_int(list, "size", 0, 100, &v, &error), -1);
	assert_string_equal(
	        error,
	        "attribute \"size\": bad value \"abc\": expected a whole number from 0 to 100");
	assert_int_equal(attr_get_int(list, "missing", 0, 100, &v, &error), -1);
	assert_string_equal(error, "attribute \"missing\" is missing");
	assert_int_equal(attr_get_uint(list, "missing", 0, 100, &u, &error), -1);
	assert_string_equal(error, "attribute \"missing\" is missing");
	assert_int_equal(attr_get_uint(list, "big", 0, UINT64_MAX, &u, &error), 0);
	assert_true(u == UINT64_MAX);
	assert_int_equal(attr_get_uint(list, "big", 0, UINT64_MAX - 1, &u, &error), -1);
	assert_string_equal(error, "attribute \"big\": bad value \"18446744073709551615\": "
	                           "expected a whole number from 0 to 18446744073709551614");
	assert_int_equal(attr_get_uint(list, "size", 0, 100, &u, &error), -1);
	attr_list_destroy(&list);
}

/* ---- parsing ---------------------------------------------------------- */

static void test_parse_valid(void **state)
{
	(void)state;
	check_parse("a=1\nb=\n\n", "DONE@8 a=1|b=\nEND\n");
	/* '=' in a value; the name ends at the first '='. */
	check_parse("url=http://x/?a=b\n\n", "DONE@19 url=http://x/?a=b\nEND\n");
	/* CRLF line ends, also for the final empty line; mixed. */
	check_parse("a=1\r\nb=2\n\r\n", "DONE@11 a=1|b=2\nEND\n");
	/* An empty request. */
	check_parse("\n", "DONE@1\nEND\n");
	/* White space is data, not syntax. */
	check_parse("a= x \n\n", "DONE@7 a= x \nEND\n");
	/* A partial request is kept for the next feed. */
	check_parse("a=1\nb=2", "END\n");
	check_parse("a=1\n\r", "END\n");
}

static void test_parse_pipelined(void **state)
{
	struct attr_parser *parser;
	struct attr_list *list;
	const char *data = "request_id=1\nq=a\n\nrequest_id=2\nq=b\n\nrequest_id=3\n";
	size_t len = strlen(data), used;

	(void)state;
	check_parse(data, "DONE@18 request_id=1|q=a\nDONE@36 request_id=2|q=b\nEND\n");

	/* The same by hand, as a server loop would do it. */
	parser = attr_parser_new(&default_limits);
	assert_int_equal(attr_parser_feed(parser, data, len, &used), ATTR_PARSE_DONE);
	assert_int_equal(used, 18);
	list = attr_parser_take(parser);
	assert_string_equal(attr_get(list, "q"), "a");
	attr_list_destroy(&list);
	attr_parser_reset(parser);
	data += used;
	len -= used;
	assert_int_equal(attr_parser_feed(parser, data, len, &used), ATTR_PARSE_DONE);
	assert_int_equal(used, 18);
	list = attr_parser_take(parser);
	assert_string_equal(attr_get(list, "q"), "b");
	attr_list_destroy(&list);
	attr_parser_reset(parser);
	data += used;
	len -= used;
	assert_int_equal(attr_parser_feed(parser, data, len, &used), ATTR_PARSE_NEED_MORE);
	assert_int_equal(used, len);
	assert_int_equal(attr_parser_feed(parser, "\n", 1, &used), ATTR_PARSE_DONE);
	list = attr_parser_take(parser);
	assert_string_equal(attr_get(list, ATTR_REQUEST_ID), "3");
	attr_list_destroy(&list);
	attr_parser_destroy(&parser);
}

static void test_parse_errors(void **state)
{
	static const struct {
		const char *data;
		const char *expected;
	} cases[] = {
	        {"a=1\nnoequals\n\n", "ERROR@13 request line 2: missing '=' in \"noequals\"\n"},
	        {"=value\n\n", "ERROR@7 request line 1: empty attribute name before '='\n"},
	        {"a=1\nb=2\nna me=x\n\n",
	         "ERROR@16 request line 3: bad character in attribute name \"na me\": "
	         "expected letters, digits, '_', '.' or '-'\n"},
	        {"n\xc3\xa9=x\n\n", "ERROR@6 request line 1: bad character in attribute name "
	                            "\"n\xc3\xa9\": expected letters, digits, '_', '.' or '-'\n"},
	        {"a=x\ry\n\n", "ERROR@6 request line 1: CR not followed by LF\n"},
	        {"a=x\r\r\n\n", "ERROR@6 request line 1: CR not followed by LF\n"},
	        /* A good request before a bad one comes out first. */
	        {"a=1\n\nb\n\n", "DONE@5 a=1\nERROR@7 request line 1: missing '=' in \"b\"\n"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_parse(cases[i].data, cases[i].expected);
}

static void test_parse_nul(void **state)
{
	(void)state;
	check_parse_n("a=1\nb=x\0y\n\n", 11, &default_limits,
	              "ERROR@10 request line 2: NUL byte in line\n");
	check_parse_n("\0\n", 2, &default_limits, "ERROR@2 request line 1: NUL byte in line\n");
}

static void test_parse_limits(void **state)
{
	struct attr_limits small = {
	        .max_line_length = 8, .max_attributes = 2, .max_request_size = 20};

	(void)state;
	/* Exactly 8 bytes, also with CRLF; 9 bytes fail, found at the 10th
	 * byte while reading or at the LF. */
	check_parse_n("abc=1234\n\n", 10, &small, "DONE@10 abc=1234\nEND\n");
	check_parse_n("abc=1234\r\n\n", 11, &small, "DONE@11 abc=1234\nEND\n");
	check_parse_n("abc=12345\n\n", 11, &small,
	              "ERROR@10 request line 1: line too long (more than 8 bytes)\n");
	check_parse_n("abc=123456789\n\n", 15, &small,
	              "ERROR@10 request line 1: line too long (more than 8 bytes)\n");
	/* Too many attributes: the third pair. */
	check_parse_n("a=1\nb=2\nc=3\n\n", 13, &small,
	              "ERROR@12 request line 3: too many attributes (more than 2)\n");
	check_parse_n("a=1\nb=2\n\n", 9, &small, "DONE@9 a=1|b=2\nEND\n");
	/* Request size: 20 bytes in all pass, the 21st byte fails, be it an
	 * LF or data. */
	check_parse_n("aaaa=123\nbbbb=123\n\n", 19, &small, "DONE@19 aaaa=123|bbbb=123\nEND\n");
	check_parse_n("aaaa=123\r\nbbbb=123\n\n", 20, &small, "DONE@20 aaaa=123|bbbb=123\nEND\n");
	check_parse_n("aaaa=123\r\nbbbb=123\r\n\n", 21, &small,
	              "ERROR@21 request line 3: request too large (more than 20 bytes)\n");
	check_parse_n("aaaa=123\nbbbb=123\nc=1\n\n", 23, &small,
	              "ERROR@21 request line 3: request too large (more than 20 bytes)\n");
	/* The limit crossed first is named; when the same byte crosses both,
	 * the request limit is. */
	small.max_request_size = 10;
	check_parse_n("abc=123456\n\n", 12, &small,
	              "ERROR@10 request line 1: line too long (more than 8 bytes)\n");
	small.max_request_size = 9;
	check_parse_n("abc=123456\n\n", 12, &small,
	              "ERROR@10 request line 1: request too large (more than 9 bytes)\n");
	/* Limits apply per request: pipelined requests each get the full
	 * budget. */
	small.max_request_size = 10;
	check_parse_n("a=1\nb=2\n\nc=3\nd=4\n\n", 18, &small,
	              "DONE@9 a=1|b=2\nDONE@18 c=3|d=4\nEND\n");
}

/* A 64 KiB value under a 64 KiB (+ "v=") line limit, and one byte over. */
static void test_parse_64k_value(void **state)
{
	const size_t value_len = 64 * 1024;
	const struct attr_limits limits = {.max_line_length = value_len + 2,
	                                   .max_attributes = 10,
	                                   .max_request_size = 1024 * 1024};
	struct attr_parser *parser = attr_parser_new(&limits);
	struct attr_list *list;
	const char *error;
	str_t out, expected;
	char *value = xmalloc(value_len + 2);
	size_t used;

	(void)state;
	memset(value, 'x', value_len + 1);
	value[value_len] = '\0';
	str_init(&out);
	str_init(&expected);
	assert_int_equal(attr_put_str(&out, "v", value, &error), 0);
	attr_end(&out);
	assert_int_equal(attr_parser_feed(parser, out.buf, out.len, &used), ATTR_PARSE_DONE);
	list = attr_parser_take(parser);
	assert_int_equal(strlen(attr_get(list, "v")), value_len);
	attr_list_destroy(&list);
	str_appendf(&expected, "DONE@%zu v=%s\nEND\n", out.len, value);
	check_parse_n(out.buf, out.len, &limits, str_c(&expected));

	/* One byte more: found at the byte after the one that could be a CR. */
	value[value_len] = 'x';
	value[value_len + 1] = '\0';
	str_reset(&out);
	assert_int_equal(attr_put_str(&out, "v", value, &error), 0);
	attr_end(&out);
	attr_parser_reset(parser);
	assert_int_equal(attr_parser_feed(parser, out.buf, out.len, &used), ATTR_PARSE_ERROR);
	assert_int_equal(used, value_len + 4);
	assert_string_equal(attr_parser_error(parser),
	                    "request line 1: line too long (more than 65538 bytes)");
	assert_null(attr_parser_take(parser));
	check_parse_n(out.buf, out.len, &limits,
	              "ERROR@65540 request line 1: line too long (more than 65538 bytes)\n");

	/* The parser is usable again after a reset. */
	attr_parser_reset(parser);
	assert_null(attr_parser_error(parser));
	assert_int_equal(attr_parser_feed(parser, "a=b\n\n", 5, &used), ATTR_PARSE_DONE);
	list = attr_parser_take(parser);
	assert_string_equal(attr_get(list, "a"), "b");
	attr_list_destroy(&list);

	attr_parser_destroy(&parser);
	free(value);
	str_free(&out);
	str_free(&expected);
}

/* Every prefix of a valid stream is NEED_MORE, and reading it one byte at
 * a time gives each request at the byte that ends it. */
static void test_parse_byte_at_a_time(void **state)
{
	const char *data = "version=1\r\nrequest_id=7\nrecipient=a@b\nrecipient=c@d\n\n"
	                   "request_id=8\n\n";
	size_t len = strlen(data), done = 0, used;
	struct attr_parser *parser = attr_parser_new(&default_limits);
	struct attr_list *list;

	(void)state;
	for (size_t i = 0; i < len; i++) {
		enum attr_parse_status status = attr_parser_feed(parser, data + i, 1, &used);

		assert_int_equal(used, 1);
		if (status == ATTR_PARSE_DONE) {
			list = attr_parser_take(parser);
			if (done == 0) {
				assert_int_equal(i + 1, 53);
				assert_int_equal(list->n, 4);
				assert_string_equal(attr_get(list, ATTR_VERSION), "1");
				assert_string_equal(list->attrs[3].value, "c@d");
			} else {
				assert_int_equal(i + 1, len);
				assert_string_equal(attr_get(list, ATTR_REQUEST_ID), "8");
			}
			attr_list_destroy(&list);
			attr_parser_reset(parser);
			done++;
		} else {
			assert_int_equal(status, ATTR_PARSE_NEED_MORE);
		}
	}
	assert_int_equal(done, 2);
	attr_parser_destroy(&parser);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_round_trip),      cmocka_unit_test(test_put_errors),
	        cmocka_unit_test(test_get_int_bounds),  cmocka_unit_test(test_parse_valid),
	        cmocka_unit_test(test_parse_pipelined), cmocka_unit_test(test_parse_errors),
	        cmocka_unit_test(test_parse_nul),       cmocka_unit_test(test_parse_limits),
	        cmocka_unit_test(test_parse_64k_value), cmocka_unit_test(test_parse_byte_at_a_time),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
