/* test_smtp_cmd.c - table-driven tests of the SMTP command splitter
 * (lib/smtp/smtp_cmd.c): verbs in any case, arguments, MAIL FROM: and
 * RCPT TO: prefixes, white space, NUL bytes, overlong and non-letter
 * verbs, HTTP requests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/smtp_cmd.h"

struct cmd_case {
	const char *line;
	size_t len; /* 0: strlen(line) */
	int rc;
	enum smtp_verb verb;
	const char *arg; /* expected argument, or the reply when rc = -1 */
};

static void test_table(void **state)
{
	static const struct cmd_case cases[] = {
	        {"EHLO client.example", 0, 0, SMTP_VERB_EHLO, "client.example"},
	        {"ehlo   client.example  ", 0, 0, SMTP_VERB_EHLO, "client.example"},
	        {"HeLo x", 0, 0, SMTP_VERB_HELO, "x"},
	        {"EHLO", 0, 0, SMTP_VERB_EHLO, ""},
	        {"MAIL FROM:<a@b.example>", 0, 0, SMTP_VERB_MAIL, "<a@b.example>"},
	        {"mail from:<a@b.example> SIZE=10", 0, 0, SMTP_VERB_MAIL, "<a@b.example> SIZE=10"},
	        {"MAIL FROM: <a@b.example>", 0, 0, SMTP_VERB_MAIL, "<a@b.example>"},
	        {"MAIL FROM:<>", 0, 0, SMTP_VERB_MAIL, "<>"},
	        {"MAIL TO:<a@b.example>", 0, -1, SMTP_VERB_MAIL,
	         "501 5.5.4 Syntax: MAIL FROM:<address>"},
	        {"MAIL", 0, -1, SMTP_VERB_MAIL, "501 5.5.4 Syntax: MAIL FROM:<address>"},
	        {"MAIL FROM", 0, -1, SMTP_VERB_MAIL, "501 5.5.4 Syntax: MAIL FROM:<address>"},
	        {"RCPT TO:<u@d.example> NOTIFY=NEVER", 0, 0, SMTP_VERB_RCPT,
	         "<u@d.example> NOTIFY=NEVER"},
	        {"RCPT <u@d.example>", 0, -1, SMTP_VERB_RCPT,
	         "501 5.5.4 Syntax: RCPT TO:<address>"},
	        {"DATA", 0, 0, SMTP_VERB_DATA, ""},
	        {"BDAT 100 LAST", 0, 0, SMTP_VERB_BDAT, "100 LAST"},
	        {"rset", 0, 0, SMTP_VERB_RSET, ""},
	        {"NOOP anything", 0, 0, SMTP_VERB_NOOP, "anything"},
	        {"QUIT", 0, 0, SMTP_VERB_QUIT, ""},
	        {"VRFY postmaster", 0, 0, SMTP_VERB_VRFY, "postmaster"},
	        {"STARTTLS", 0, 0, SMTP_VERB_STARTTLS, ""},
	        {"FOO bar", 0, 0, SMTP_VERB_UNKNOWN, "bar"},
	        {"", 0, 0, SMTP_VERB_UNKNOWN, ""},
	        {"   ", 0, 0, SMTP_VERB_UNKNOWN, ""},
	        {"MAIL1 FROM:<a@b>", 0, 0, SMTP_VERB_UNKNOWN, "FROM:<a@b>"},
	        {"ABCDEFGHIJKLMNOPQRSTUVWXYZ", 0, 0, SMTP_VERB_UNKNOWN, ""},
	        {"GET / HTTP/1.0", 0, 0, SMTP_VERB_UNKNOWN, "/ HTTP/1.0"},
	        {"EXPN list", 0, 0, SMTP_VERB_UNKNOWN, "list"},
	        {"get / HTTP/1.0", 0, 0, SMTP_VERB_UNKNOWN, "/ HTTP/1.0"},
	        {"NOOP a\0b", 8, 0, SMTP_VERB_NOOP, "a"}, /* a NUL ends the line */
	        {"\0", 1, 0, SMTP_VERB_UNKNOWN, ""},
	        {"MAIL FROM:<a\0b@c>", 18, 0, SMTP_VERB_MAIL, "<a"},
	        {"QUIT\rX", 0, 0, SMTP_VERB_QUIT, "X"}, /* CR, VT, FF: white space */
	        {"\vNOOP\f", 0, 0, SMTP_VERB_NOOP, ""},
	        {"\tQUIT\t", 0, 0, SMTP_VERB_QUIT, ""},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct cmd_case *c = &cases[i];
		size_t len = c->len != 0 ? c->len : strlen(c->line);
		struct smtp_cmd cmd;
		const char *reply = NULL;
		int rc = smtp_cmd_parse(c->line, len, &cmd, &reply);

		if (rc != c->rc || cmd.verb != c->verb)
			fail_msg("case %zu \"%s\": rc %d verb %s, expected rc %d verb %s", i,
			         c->line, rc, cmd.name, c->rc, smtp_verb_name(c->verb));
		if (rc == 0) {
			if (cmd.arg_len != strlen(c->arg) ||
			    memcmp(cmd.arg, c->arg, cmd.arg_len) != 0)
				fail_msg("case %zu \"%s\": argument \"%.*s\", expected \"%s\"", i,
				         c->line, (int)cmd.arg_len, cmd.arg, c->arg);
			/* The argument lies inside the line. */
			assert_true(cmd.arg >= c->line && cmd.arg + cmd.arg_len <= c->line + len);
		} else {
			assert_string_equal(reply, c->arg);
		}
	}
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(smtp_verb_name(SMTP_VERB_EHLO), "EHLO");
	assert_string_equal(smtp_verb_name(SMTP_VERB_UNKNOWN), "UNKNOWN");
	assert_string_equal(smtp_verb_name((enum smtp_verb)999), "UNKNOWN");
	assert_string_equal(smtp_verb_name(SMTP_VERB_BDAT), "BDAT");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_table),
	        cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
