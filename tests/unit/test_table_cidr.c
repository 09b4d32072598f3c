/* test_table_cidr.c - cidr: tables: the golden file (first match, IPv4
 * and IPv6, brackets, negation, nested if/endif), prefix boundaries /0,
 * /32, /128 and odd prefixes, and every kind of bad line reported at open
 * with file and line. */
#include "table_test.h"

static void test_golden_file(void **state)
{
	(void)state;
	test_golden("cidr", "cidr");
}

/* Open a cidr table holding text; caller closes and removes dir. */
static struct table *open_text(char **dir_r, const char *text, char **spec_r)
{
	char *file;
	struct table *t;

	*dir_r = test_tmpdir();
	file = test_write(*dir_r, "t.cidr", text, strlen(text));
	*spec_r = xasprintf("cidr:%s", file);
	t = test_open(*spec_r);
	free(file);
	return t;
}

static void test_boundaries(void **state)
{
	char *dir, *spec;
	struct table *t = open_text(&dir,
	                            "192.0.2.1/32 host32\n"
	                            "192.0.2.0/31 pair\n"
	                            "192.0.2.128/26 odd\n"
	                            "2001:db8::1/128 host128\n"
	                            "2001:db8::/127 pair6\n"
	                            "2001:db8:0:0:8000::/65 half\n"
	                            "0.0.0.0/0 all4\n"
	                            "::/0 all6\n",
	                            &spec);

	(void)state;
	assert_lookup(t, "192.0.2.1", "192.0.2.1 -> found \"host32\"");
	assert_lookup(t, "192.0.2.0", "192.0.2.0 -> found \"pair\"");
	assert_lookup(t, "192.0.2.2", "192.0.2.2 -> found \"all4\"");
	assert_lookup(t, "192.0.2.127", "192.0.2.127 -> found \"all4\"");
	assert_lookup(t, "192.0.2.128", "192.0.2.128 -> found \"odd\"");
	assert_lookup(t, "192.0.2.191", "192.0.2.191 -> found \"odd\"");
	assert_lookup(t, "192.0.2.192", "192.0.2.192 -> found \"all4\"");
	assert_lookup(t, "2001:db8::1", "2001:db8::1 -> found \"host128\"");
	assert_lookup(t, "2001:db8::", "2001:db8:: -> found \"pair6\"");
	assert_lookup(t, "2001:db8::2", "2001:db8::2 -> found \"all6\"");
	assert_lookup(t, "2001:db8::8000:0:0:0", "2001:db8::8000:0:0:0 -> found \"half\"");
	assert_lookup(t, "2001:db8::ffff:ffff:ffff:ffff",
	              "2001:db8::ffff:ffff:ffff:ffff -> found \"half\"");
	assert_lookup(t, "2001:db8::7fff:ffff:ffff:ffff",
	              "2001:db8::7fff:ffff:ffff:ffff -> found \"all6\"");
	assert_lookup(t, "::", ":: -> found \"all6\"");
	assert_lookup(t, "0.0.0.0", "0.0.0.0 -> found \"all4\"");
	assert_lookup(t, "256.0.0.1", "256.0.0.1 -> not found");
	assert_lookup(t, "", " -> not found");
	assert_lookup(t, "1.2.3", "1.2.3 -> not found");
	/* the table is a pattern table: keys are not case-folded or bounded
	 * to TABLE_KEY_MAX, but a key that is no address is not found */
	assert_true(t->flags & TABLE_F_PATTERN);
	assert_false(t->flags & TABLE_F_FIXED_KEYS);
	table_close(&t);
	free(spec);
	test_rmtree(&dir);
}

static void test_negated_rule(void **state)
{
	char *dir, *spec;
	struct table *t = open_text(&dir, "!10.0.0.0/8 outside\n!::1 not-loopback\n", &spec);

	(void)state;
	assert_lookup(t, "10.9.9.9", "10.9.9.9 -> not found");
	assert_lookup(t, "11.0.0.1", "11.0.0.1 -> found \"outside\"");
	/* a rule never matches an address of the other family, negated or not */
	assert_lookup(t, "::1", "::1 -> not found");
	assert_lookup(t, "::2", "::2 -> found \"not-loopback\"");
	table_close(&t);
	free(spec);
	test_rmtree(&dir);
}

static void test_bad_lines(void **state)
{
	static const char text[] = "10.0.0.0/33 too-long-prefix\n" /* 1 */
	                           "10.1.2.3/8 host-bits\n" /* 2 */
	                           "10.0.0.300 bad-address\n" /* 3 */
	                           "10.0.0.1\n" /* 4 */
	                           "endif\n" /* 5 */
	                           "if 10.0.0.0/8\n" /* 6 */
	                           "  10.0.0.1 indented\n" /* 7 (continues 6) */
	                           "[10.0.0.1 missing-bracket\n" /* 8 */
	                           "2001:db8::/x bad-mask\n" /* 9 */
	                           "if 192.168.0.0/16\n" /* 10 */
	                           "192.168.1.1 ok\n" /* 11 */
	                           "2001:db8::1/129 too-long-v6\n" /* 12 */
	                           "[10.0.0.0]x junk\n"; /* 13 */
	char *dir = test_tmpdir(), *file = test_write(dir, "bad.cidr", text, sizeof(text) - 1);
	char *spec = xasprintf("cidr:%s", file), *l[14];

	(void)state;
	for (int i = 1; i <= 13; i++)
		l[i] = xasprintf("cidr:%s, line %d: ", file, i);
	{
		char *e1 = xasprintf("%sbad net/mask pattern \"10.0.0.0/33\": the prefix length "
		                     "must be 0 to 32",
		                     l[1]);
		char *e2 = xasprintf("%snon-null host address bits in \"10.1.2.3/8\", perhaps you "
		                     "should use \"10.0.0.0/8\" instead",
		                     l[2]);
		char *e3 = xasprintf("%sbad address \"10.0.0.300\"", l[3]);
		char *e4 = xasprintf("%sno lookup result after \"10.0.0.1\"", l[4]);
		char *e5 = xasprintf("%sendif without matching if", l[5]);
		char *e6 = xasprintf(
		        "%stext after if pattern: \"10.0.0.1 indented\" (do not indent", l[6]);
		char *e8 = xasprintf("%smissing ']' in \"[10.0.0.1\"", l[8]);
		char *e9 = xasprintf("%sbad net/mask pattern \"2001:db8::/x\"", l[9]);
		char *e10 = xasprintf("%sif has no matching endif", l[10]);
		char *e12 =
		        xasprintf("%sbad net/mask pattern \"2001:db8::1/129\": the prefix length "
		                  "must be 0 to 128",
		                  l[12]);
		char *e13 = xasprintf("%stext after ']' in \"[10.0.0.0]x\"", l[13]);

		test_open_fails(spec, e1, e2, e3, e4, e5, e6, e8, e9, e10, e12, e13, NEEDLES_END);
		free(e1);
		free(e2);
		free(e3);
		free(e4);
		free(e5);
		free(e6);
		free(e8);
		free(e9);
		free(e10);
		free(e12);
		free(e13);
	}
	for (int i = 1; i <= 13; i++)
		free(l[i]);
	test_open_fails("cidr:/nonexistent/x.cidr",
	                "cidr:/nonexistent/x.cidr: open /nonexistent/x.cidr: No such file",
	                NEEDLES_END);
	free(spec);
	free(file);
	test_rmtree(&dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_golden_file),
	        cmocka_unit_test(test_boundaries),
	        cmocka_unit_test(test_negated_rule),
	        cmocka_unit_test(test_bad_lines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
