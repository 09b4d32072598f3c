/* test_mime_downgrade.c - lib/message/mime_downgrade.c: which parts are
 * converted to quoted-printable for a server without 8BITMIME, and how
 * (encoding header replaced or added, =XX, soft breaks, trailing white
 * space), table-driven; what is left alone (non-MIME mail, 7-bit parts,
 * base64 parts, boundaries, preamble and epilogue). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "base/str.h"
#include "message/mime_downgrade.h"

static void check(const char *in, const char *want, bool want_changed)
{
	str_t out;
	bool changed;

	str_init(&out);
	changed = mime_downgrade(in, strlen(in), 100, &out);
	if (strcmp(str_c(&out), want) != 0 || changed != want_changed)
		fail_msg("input:\n%s\ngot (changed=%d):\n%s\nexpected (changed=%d):\n%s", in,
		         changed, str_c(&out), want_changed, want);
	str_free(&out);
}

static void test_leaf_parts(void **state)
{
	(void)state;
	/* Not MIME: left as it is. */
	check("Subject: x\n\ncaf\xc3\xa9\n", "Subject: x\n\ncaf\xc3\xa9\n", false);
	/* MIME, 7-bit: nothing to do. */
	check("MIME-Version: 1.0\nSubject: x\n\nplain\n",
	      "MIME-Version: 1.0\nSubject: x\n\nplain\n", false);
	/* 8bit declared: the header replaced, the body encoded. */
	check("MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
	      "Content-Transfer-Encoding: 8bit\nSubject: x\n\ncaf\xc3\xa9 = ok\n",
	      "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
	      "Content-Transfer-Encoding: quoted-printable\nSubject: x\n\ncaf=C3=A9 =3D ok\n",
	      true);
	/* No encoding header but 8-bit bytes: one is added before the
	 * empty line; trailing white space is encoded. */
	check("MIME-Version: 1.0\nSubject: x\n\n\xe9t\xe9 \nend\t\n",
	      "MIME-Version: 1.0\nSubject: x\nContent-Transfer-Encoding: quoted-printable\n\n"
	      "=E9t=E9=20\nend=09\n",
	      true);
	/* CRLF line ends survive as LF (the queue holds LF). */
	check("MIME-Version: 1.0\nContent-Transfer-Encoding: 8bit\n\n\xe9\r\nx\r\n",
	      "MIME-Version: 1.0\nContent-Transfer-Encoding: quoted-printable\n\n=E9\nx\n", true);
}

static void test_soft_line_breaks(void **state)
{
	char in[400], want[600];
	str_t out;

	(void)state;
	/* 100 'a' then an 8-bit byte: lines of at most 76 characters, the
	 * last of each broken line a '='. */
	(void)snprintf(
	        in, sizeof(in), "MIME-Version: 1.0\n\n%.100s\xff\n",
	        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	(void)snprintf(
	        want, sizeof(want),
	        "MIME-Version: 1.0\nContent-Transfer-Encoding: quoted-printable\n\n%.75s=\n"
	        "%.25s=FF\n",
	        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	        "aaaaaaaaaaaaaaaaaaaaaaaaa");
	check(in, want, true);
	str_init(&out);
	(void)mime_downgrade(in, strlen(in), 100, &out);
	for (const char *p = str_c(&out), *nl; *p != '\0'; p = nl + 1) {
		nl = strchr(p, '\n');
		assert_non_null(nl);
		assert_true(nl - p <= 76);
	}
	str_free(&out);
}

static void test_multipart(void **state)
{
	(void)state;
	check("MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b1\"\n\n"
	      "preamble\n"
	      "--b1\nContent-Type: text/plain\nContent-Transfer-Encoding: 8bit\n\nh\xe9llo\n"
	      "--b1\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n"
	      "AAEC\n"
	      "--b1\nContent-Type: message/rfc822\n\nMIME-Version: 1.0\nSubject: inner\n\n\xe9\n"
	      "--b1--\nepilogue \xe9\n",
	      "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b1\"\n\n"
	      "preamble\n"
	      "--b1\nContent-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\n"
	      "h=E9llo\n"
	      "--b1\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n"
	      "AAEC\n"
	      "--b1\nContent-Type: message/rfc822\n\nMIME-Version: 1.0\nSubject: inner\n"
	      "Content-Transfer-Encoding: quoted-printable\n\n=E9\n"
	      "--b1--\nepilogue \xe9\n",
	      true);
	/* A missing close delimiter: the last part still ends the input. */
	check("MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\n\xe9\n",
	      "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\n"
	      "Content-Transfer-Encoding: quoted-printable\n\n=E9\n",
	      true);
}

static void test_has_8bit(void **state)
{
	(void)state;
	assert_false(mime_has_8bit("plain ascii\n", 12));
	assert_true(mime_has_8bit("caf\xc3\xa9", 5));
	assert_false(mime_has_8bit("caf\xc3\xa9", 3));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_leaf_parts),
	        cmocka_unit_test(test_soft_line_breaks),
	        cmocka_unit_test(test_multipart),
	        cmocka_unit_test(test_has_8bit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
