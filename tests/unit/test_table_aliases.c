/* test_table_aliases.c - the aliases(5) entry parser, table-driven: each
 * line and what Debian's postalias 3.7 stores for it (key, value, or its
 * warning), taken from postalias -s on the same lines. */
#include "table_test.h"

#include "table/table_aliases.h"

struct alias_case {
	const char *line;
	int rc;
	const char *key; /* rc 1 */
	const char *value; /* rc 1; rc -1: the complaint */
};

static const struct alias_case cases[] = {
        {"Postmaster:    root", 1, "Postmaster", "root"},
        {"root: alice,  bob@Example.COM,\"|/usr/bin/procmail -a x\"", 1, "root",
         "alice, bob@Example.COM, \"|/usr/bin/procmail -a x\""},
        {"list: :include:/etc/mail/list.txt", 1, "list", ":include:/etc/mail/list.txt"},
        {"file: /var/log/mail.copy", 1, "file", "/var/log/mail.copy"},
        {"\"quoted name\": x", 1, "quoted name", "x"},
        {"weird :   a , b", 1, "weird", "a, b"},
        {"multi: a,  b,\tc", 1, "multi", "a, b, c"},
        {"comm: a (comment here), <b@c>, Real Name <d@e>", 1, "comm",
         "a (comment here), <b@c>, Real Name <d@e>"},
        {"emptyq: \"\"", 1, "emptyq", "\"\""},
        {"UPPER: |/usr/bin/foo arg  \"x y\"", 1, "UPPER", "|/usr/bin/foo arg \"x y\""},
        {"two: a:b", 1, "two", "a:b"},
        {"grp: group: a, b;", 1, "grp", "group:a, b;"},
        {"angle: <>", 1, "angle", "<>"},
        {"dom: user@[1.2.3.4], x(c)y", 1, "dom", "user@[1.2.3.4], x (c) y"},
        {"esc: \"a\\\"b\", a\\b", 1, "esc", "\"a\\\"b\", ab"},
        {"k: v # not comment", 1, "k", "v # not comment"},
        {"owner-list: x@y.z", 1, "owner-list", "x@y.z"},
        {"a.b: c.d@e", 1, "a.b", "c.d@e"},
        {"sp: a\\ b", 1, "sp", "\"a b\""},
        {"nest: x (a (b) c)", 1, "nest", "x (a (b) c)"},
        {"open: \"never closed", 1, "open", "\"never closed\""},
        {"   ", 0, NULL, NULL},
        {"bad line", -1, NULL, "need name:value pair"},
        {"empty:", -1, NULL, "need name:value pair"},
        {": x", -1, NULL, "need name:value pair"},
        {"x , y: z", -1, NULL, "need name:value pair"},
        {"at@domain: x", -1, NULL, "name must be local"},
        {"pct%host: x", -1, NULL, "name must be local"},
        {"\"\": x", -1, NULL, "need name:value pair"},
};

static void test_cases(void **state)
{
	str_t key, value;

	(void)state;
	str_init(&key);
	str_init(&value);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct alias_case *c = &cases[i];
		const char *why = NULL;
		int rc = aliases_parse_line(c->line, &key, &value, &why);

		if (rc != c->rc)
			fail_msg("[%s]: rc %d, expected %d", c->line, rc, c->rc);
		if (rc > 0 &&
		    (strcmp(str_c(&key), c->key) != 0 || strcmp(str_c(&value), c->value) != 0))
			fail_msg("[%s]: got [%s] -> [%s], expected [%s] -> [%s]", c->line,
			         str_c(&key), str_c(&value), c->key, c->value);
		if (rc < 0 && strcmp(why, c->value) != 0)
			fail_msg("[%s]: complaint [%s], expected [%s]", c->line, why, c->value);
	}
	str_free(&key);
	str_free(&value);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_cases),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
