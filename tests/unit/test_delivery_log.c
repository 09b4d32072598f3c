/* test_delivery_log.c - unit tests for lib/delivery/delivery_log: Postfix's
 * delay format and the field order of the delivery line that pflogsumm
 * parses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/strv.h"
#include "delivery/delivery_log.h"

static void test_format_usec(void **state)
{
	static const struct {
		uint64_t usec;
		const char *text;
	} cases[] = {
	        {0, "0"},           {9999, "0"},
	        {10000, "0.01"},    {44000, "0.04"},
	        {380000, "0.38"},   {500000, "0.5"},
	        {999999, "1"},      {1000000, "1"},
	        {3440000, "3.4"},   {5500000, "5.5"},
	        {9960000, "10"},    {42000000, "42"},
	        {124400000, "124"}, {86400000000, "86400"},
	};
	str_t out;

	(void)state;
	str_init(&out);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		str_reset(&out);
		delivery_format_usec(cases[i].usec, &out);
		if (strcmp(str_c(&out), cases[i].text) != 0)
			fail_msg("%llu us: got \"%s\", want \"%s\"",
			         (unsigned long long)cases[i].usec, str_c(&out), cases[i].text);
	}
	str_free(&out);
}

static void capture(enum log_level level, const char *text, void *context)
{
	(void)level;
	strv_add((strv_t *)context, text);
}

static void test_line(void **state)
{
	strv_t lines = STRV_INIT;
	/* arrival, active +0.14, agent +0.01, connected = agent (0 -> same),
	 * done +0.29 */
	struct delivery_times t = {
	        1000000000000000, 1000000000140000, 1000000000150000, 0, 1000000000440000, 0};

	(void)state;
	log_set_hook(capture, &lines);
	delivery_log("4jYlpF3Hwf05Gw", "bob@example.com", "info@example.com", "virtual", &t,
	             "2.0.0", "sent", "delivered to maildir");
	delivery_log("4jYlpF3Hwf05Gw", "bob@example.com", "BOB@example.com", "none", &t, "5.1.1",
	             "bounced", NULL);
	/* A reused smtp connection: conn_use= after relay=, as Postfix. */
	t.conn_use = 2;
	delivery_log("4jYlpF3Hwf05Gw", "a@example.net", NULL, "mx.example.net[192.0.2.1]:25", &t,
	             "2.0.0", "sent", "250 2.0.0 Ok");
	log_set_hook(NULL, NULL);
	assert_int_equal(lines.n, 3);
	assert_string_equal(lines.v[2], "4jYlpF3Hwf05Gw: to=<a@example.net>, "
	                                "relay=mx.example.net[192.0.2.1]:25, conn_use=2, "
	                                "delay=0.44, delays=0.14/0.01/0/0.29, dsn=2.0.0, "
	                                "status=sent (250 2.0.0 Ok)");
	assert_string_equal(lines.v[0], "4jYlpF3Hwf05Gw: to=<bob@example.com>, "
	                                "orig_to=<info@example.com>, relay=virtual, delay=0.44, "
	                                "delays=0.14/0.01/0/0.29, dsn=2.0.0, "
	                                "status=sent (delivered to maildir)");
	/* orig_to equal but for case is left out; no reason, no parenthesis */
	assert_string_equal(lines.v[1], "4jYlpF3Hwf05Gw: to=<bob@example.com>, relay=none, "
	                                "delay=0.44, delays=0.14/0.01/0/0.29, dsn=5.1.1, "
	                                "status=bounced");
	strv_free(&lines);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_format_usec),
	        cmocka_unit_test(test_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
