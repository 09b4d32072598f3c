/* test_local_parse.c - unit tests for the parsers of the local delivery
 * agent: lib/delivery/alias_list (aliases(5) values, .forward and
 * :include: files: commas, quotes, comments, <angle> addresses, the four
 * destination types, \user, continuation and comment lines, bounds and
 * errors) and lib/delivery/local_expand (forward_path's $name, ${name},
 * ${name?text}, ${name:text}, $$, undefined names, the character filter,
 * names that are not the agent's left for the shell). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "base/str.h"
#include "delivery/alias_list.h"
#include "delivery/local_expand.h"

/* "type:value|type:value..." of a parsed list, or "ERROR: why". */
static char *render(const char *text, bool file, size_t max)
{
	struct alias_list list = {0};
	str_t out, why;
	int rc;

	str_init(&out);
	str_init(&why);
	rc = file ? alias_list_parse_file(text, strlen(text), max, &list, &why)
	          : alias_list_parse(text, strlen(text), max, &list, &why);
	if (rc < 0) {
		assert_int_equal(list.n, 0);
		str_appendf(&out, "ERROR: %s", str_c(&why));
	}
	for (size_t i = 0; i < list.n; i++)
		str_appendf(&out, "%s%s%s:%s", i > 0 ? "|" : "", list.items[i].no_alias ? "\\" : "",
		            alias_item_type_name(list.items[i].type), list.items[i].value);
	alias_list_free(&list);
	str_free(&why);
	{
		char *text_r = str_steal(&out);

		str_free(&out); /* str_steal leaves an empty, allocated string */
		return text_r;
	}
}

static void check(const char *text, bool file, const char *want)
{
	char *got = render(text, file, 100);

	assert_string_equal(got, want);
	free(got);
}

static void test_alias_values(void **state)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
	        {"root", "address:root"},
	        {"  alice ,bob@example.org,, carol ", "address:alice|address:bob@example.org|"
	                                              "address:carol"},
	        {"\"|/usr/bin/procmail -a x, y\"", "command:/usr/bin/procmail -a x, y"},
	        {"| cat > /dev/null", "command:cat > /dev/null"},
	        {"/var/log/mail.copy, /srv/mail/box/",
	         "file:/var/log/mail.copy|file:/srv/mail/box/"},
	        {":include:/etc/mail/team", "include:/etc/mail/team"},
	        {":INCLUDE: /etc/x", "include:/etc/x"},
	        {"\\alice, alice", "\\address:alice|address:alice"},
	        {"Alice Example <alice@example.org>, bob (the boss)",
	         "address:alice@example.org|address:bob"},
	        {"\"a \\\"quoted\\\" word\"@example.org", "address:a \"quoted\" word@example.org"},
	        {"(only a comment)", ""},
	        {"", ""},
	        {"\"unterminated", "ERROR: unterminated quoted string"},
	        {"a, (open comment", "ERROR: unterminated (comment)"},
	        {"<a@b", "ERROR: unterminated <address>"},
	        {"|", "ERROR: empty command in \"|\""},
	        {":include:", "ERROR: empty include in \":include:\""},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check(cases[i].in, false, cases[i].want);
}

static void test_alias_files(void **state)
{
	(void)state;
	check("# my forward\nalice,\n  bob\n\n# done\n\\me\n", true,
	      "address:alice|address:bob|\\address:me");
	check("|\"/usr/bin/vacation me\"\n", true, "command:/usr/bin/vacation me");
	check("no newline at end", true, "address:no newline at end");
	check("ok\n\"broken\n", true, "ERROR: line 2: unterminated quoted string");
	check("", true, "");
}

static void test_alias_bounds(void **state)
{
	char *got, *big;
	const char nul[] = "a\0b";
	struct alias_list list = {0};
	str_t why;

	(void)state;
	got = render("a, b, c", false, 2);
	assert_string_equal(got, "ERROR: more than 2 destinations");
	free(got);
	big = malloc(ALIAS_LIST_ITEM_MAX + 10);
	memset(big, 'x', ALIAS_LIST_ITEM_MAX + 9);
	big[ALIAS_LIST_ITEM_MAX + 9] = '\0';
	got = render(big, false, 10);
	assert_non_null(strstr(got, "ERROR: destination longer than"));
	free(got);
	free(big);
	str_init(&why);
	assert_int_equal(alias_list_parse(nul, sizeof(nul) - 1, 10, &list, &why), -1);
	assert_string_equal(str_c(&why), "NUL byte in the list");
	str_free(&why);
}

static char *expand(const char *pattern, const struct local_expand_vars *v, const char *filter,
                    int *flags_r)
{
	str_t out, why;
	int flags;

	str_init(&out);
	str_init(&why);
	flags = local_expand(pattern, v, filter, &out, &why);
	if (flags < 0) {
		str_reset(&out);
		str_appendf(&out, "ERROR: %s", str_c(&why));
	}
	if (flags_r != NULL)
		*flags_r = flags;
	str_free(&why);
	{
		char *text_r = str_steal(&out);

		str_free(&out); /* str_steal leaves an empty, allocated string */
		return text_r;
	}
}

static void test_expand(void **state)
{
	static const char filter[] =
	        "1234567890!@%-_=+:,./abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
	struct local_expand_vars v = {
	        .user = "alice",
	        .home = "/home/alice",
	        .local = "alice+lists",
	        .extension = "lists",
	        .domain = "example.org",
	        .recipient = "alice+lists@example.org",
	        .recipient_delimiter = "+",
	};
	struct local_expand_vars none = v;
	char *s;
	int flags;

	(void)state;
	none.extension = NULL;
	s = expand("$home/.forward${recipient_delimiter}${extension}", &v, filter, &flags);
	assert_string_equal(s, "/home/alice/.forward+lists");
	assert_int_equal(flags, 0);
	free(s);
	/* No extension: the element is skipped (undefined). */
	s = expand("$home/.forward${recipient_delimiter}${extension}", &none, filter, &flags);
	assert_int_equal(flags, LOCAL_EXPAND_UNDEF);
	free(s);
	s = expand("${extension?+$extension}${extension:none}-$(user)-$$", &v, filter, NULL);
	assert_string_equal(s, "+lists-alice-$");
	free(s);
	s = expand("${extension?{x$extension}}${extension:{no}}", &none, filter, NULL);
	assert_string_equal(s, "no");
	free(s);
	/* Envelope values pass the filter: no "../" or shell characters. */
	v.extension = "../x;rm";
	s = expand("$home/.forward+$extension", &v, filter, NULL);
	assert_string_equal(s, "/home/alice/.forward+../x_rm");
	free(s);
	/* Not the agent's names: left for the shell. */
	s = expand("procmail -a \"$EXTENSION\" ${HOME}", &v, filter, NULL);
	assert_string_equal(s, "procmail -a \"$EXTENSION\" ${HOME}");
	free(s);
	s = expand("${user", &v, filter, NULL);
	assert_non_null(strstr(s, "ERROR: missing '}'"));
	free(s);
	s = expand("a $ b", &v, filter, NULL);
	assert_non_null(strstr(s, "ERROR: '$' without a name"));
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_alias_values),
	        cmocka_unit_test(test_alias_files),
	        cmocka_unit_test(test_alias_bounds),
	        cmocka_unit_test(test_expand),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
