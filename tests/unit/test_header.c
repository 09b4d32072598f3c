/* test_header.c - lib/message/header.c: header-line recognition, known
 * names, MIME classification, unfolding with a bound, Content-Type and
 * address-list parsing, table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "base/str.h"
#include "message/header.h"

static void test_name_len(void **state)
{
	static const struct {
		const char *line;
		size_t want;
	} cases[] = {
	        {"Subject: hi", 7},
	        {"Subject:hi", 7},
	        {"Subject \t: hi", 7},
	        {"X-A:", 3},
	        {"Subject hi", 0},
	        {" Subject: folded", 0},
	        {"", 0},
	        {":", 0},
	        {"Sub ject: x", 0},
	        {"Sub\x7fject: x", 0},
	        {"From ", 0},
	        {"From user@example.com Mon Jan 1", 0},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(header_name_len(cases[i].line, strlen(cases[i].line)),
		                 cases[i].want);
	/* the length bounds the scan: no colon within it */
	assert_int_equal(header_name_len("Subject: x", 7), 0);
	assert_true(header_is_continuation(" x", 2));
	assert_true(header_is_continuation("\tx", 2));
	assert_false(header_is_continuation("x", 1));
	assert_false(header_is_continuation("", 0));
}

static void test_ids(void **state)
{
	(void)state;
	assert_int_equal(header_id_of("message-id", 10), HEADER_MESSAGE_ID);
	assert_int_equal(header_id_of("RESENT-BCC", 10), HEADER_RESENT_BCC);
	assert_int_equal(header_id_of("To", 2), HEADER_TO);
	assert_int_equal(header_id_of("Tox", 3), HEADER_OTHER);
	assert_int_equal(header_id_of("T", 1), HEADER_OTHER);
	assert_string_equal(header_id_name(HEADER_MESSAGE_ID), "Message-ID");
	assert_null(header_id_name(HEADER_OTHER));
	assert_true(header_is_mime("Content-Type", 12));
	assert_true(header_is_mime("content-disposition", 19));
	assert_true(header_is_mime("MIME-Version", 12));
	assert_false(header_is_mime("Content-", 8));
	assert_false(header_is_mime("Subject", 7));
	assert_true(header_is_resent(HEADER_RESENT_TO));
	assert_false(header_is_resent(HEADER_TO));
	assert_int_equal(header_value_offset("A: b", 4), 2);
	assert_int_equal(header_value_offset("Ab", 2), 2);
}

static void test_unfold(void **state)
{
	str_t out;
	(void)state;
	str_init(&out);
	const char *h = "Subject: a\n b\r\n\tc\nd";
	header_unfold(h, strlen(h), 100, &out);
	assert_string_equal(str_c(&out), "Subject: a b\tc\nd");
	str_reset(&out);
	header_unfold(h, strlen(h), 5, &out);
	assert_string_equal(str_c(&out), "Subje");
	str_free(&out);
}

static void test_content_type(void **state)
{
	static const struct {
		const char *value;
		int rc;
		const char *type, *subtype, *boundary;
	} cases[] = {
	        {" multipart/mixed; boundary=abc", 0, "multipart", "mixed", "abc"},
	        {" Multipart/Mixed;\n\tBOUNDARY=\"a b\\\"c\"", 0, "multipart", "mixed", "a b\"c"},
	        {" (comment) text / plain ; charset=us-ascii", 0, "text", "plain", ""},
	        {" message/rfc822", 0, "message", "rfc822", ""},
	        {" multipart/mixed; charset=x; boundary=\"q\"; x=y", 0, "multipart", "mixed", "q"},
	        {" multipart/mixed; boundary=\"unterminated", 0, "multipart", "mixed", ""},
	        {" text", -1, "text", "", ""},
	        {"", -1, "", "", ""},
	        {" (open comment", -1, "", "", ""},
	        {" /plain", -1, "", "", ""},
	};
	str_t type, subtype, boundary;
	(void)state;
	str_init(&type);
	str_init(&subtype);
	str_init(&boundary);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = header_content_type(cases[i].value, strlen(cases[i].value), &type,
		                             &subtype, &boundary);
		assert_int_equal(rc, cases[i].rc);
		if (rc == 0) {
			assert_string_equal(str_c(&type), cases[i].type);
			assert_string_equal(str_c(&subtype), cases[i].subtype);
			assert_string_equal(str_c(&boundary), cases[i].boundary);
		}
	}
	/* an overlong boundary is refused */
	char big[400];
	memset(big, 'b', sizeof(big));
	memcpy(big, " multipart/mixed; boundary=", 27);
	assert_int_equal(header_content_type(big, sizeof(big), &type, &subtype, &boundary), -1);
	str_free(&type);
	str_free(&subtype);
	str_free(&boundary);
}

/* All addresses of value joined by "|", or "ERROR". */
static void addresses(const char *value, str_t *out)
{
	size_t pos = 0;
	struct header_address a;
	int rc;
	str_reset(out);
	while ((rc = header_address_next(value, strlen(value), &pos, &a)) == 1) {
		if (out->len > 0)
			str_append_c(out, '|');
		str_append_n(out, value + a.start, a.len);
	}
	if (rc < 0)
		str_set(out, "ERROR");
}

static void test_addresses(void **state)
{
	static const struct {
		const char *value, *want;
	} cases[] = {
	        {" a@example.com", "a@example.com"},
	        {" a@example.com, b@example.com", "a@example.com|b@example.com"},
	        {" \"Doe, John\" <john@example.com>", "john@example.com"},
	        {" John <john@example.com> (comment), bob", "john@example.com|bob"},
	        {" bob (Bob Smith)", "bob"},
	        {" (c) bob", "bob"},
	        {" undisclosed-recipients:;", ""},
	        {" team: a@x, b@y;, c@z", "a@x|b@y|c@z"},
	        {" <@route1,@route2:user@example.com>", "user@example.com"},
	        {" \"quoted local\"@example.com", "\"quoted local\"@example.com"},
	        {" <>", ""},
	        {" ,,, a@b ,", "a@b"},
	        {" a@b,\n c@d", "a@b|c@d"},
	        {" John Smith", "ERROR"},
	        {" user(comment)@x", "ERROR"},
	        {" \"unterminated", "ERROR"},
	        {" <a@b", "ERROR"},
	        {" a@b>", "ERROR"},
	        {" (open", "ERROR"},
	        {" <a@b> <c@d>", "ERROR"},
	        {"", ""},
	};
	str_t out;
	(void)state;
	str_init(&out);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		addresses(cases[i].value, &out);
		if (strcmp(str_c(&out), cases[i].want) != 0)
			fail_msg("%s: got \"%s\", want \"%s\"", cases[i].value, str_c(&out),
			         cases[i].want);
	}
	str_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_name_len),  cmocka_unit_test(test_ids),
	        cmocka_unit_test(test_unfold),    cmocka_unit_test(test_content_type),
	        cmocka_unit_test(test_addresses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
