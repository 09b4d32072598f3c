/* test_resolve.c - recipient resolution (lib/delivery/resolve.c) on real
 * texthash tables and a real (unreachable) mysql: table: two targets,
 * duplicate suppression and loops, an address that expands to itself, the
 * @domain catch-all, recipient_delimiter extensions propagated or not, the
 * recursion and expansion limits (TEMPFAIL, as Postfix defers), a table
 * that cannot answer (TEMPFAIL naming it), domain classes, unknown users
 * and transport_maps. */
#include "table_test.h"

#include "conf/config.h"
#include "delivery/resolve.h"

struct fixture {
	char *dir;
	struct config *cfg;
	struct resolve_ctx *ctx;
	struct resolve_result r;
};

static const char aliases[] = "a@v.test b@v.test, c@v.test, b@v.test\n"
                              "b@v.test c@v.test\n"
                              "x@v.test y@v.test\n"
                              "y@v.test x@v.test\n"
                              "s@v.test s@v.test, t@v.test\n"
                              "@c.test catch@v.test\n"
                              "known@c.test known@v.test\n"
                              "e@v.test f@v.test\n"
                              "r1@v.test r2@v.test\n"
                              "r2@v.test r3@v.test\n"
                              "r3@v.test r4@v.test\n"
                              "r4@v.test r5@v.test\n"
                              "big@v.test m1@v.test, m2@v.test, m3@v.test\n";

static const char mailboxes[] = "c@v.test v.test/c/\n"
                                "f@v.test v.test/f/\n";

static const char transports[] = "special.test smtp:[10.0.0.1]:2525\n"
                                 ".sub.test relay:\n"
                                 "u@r.test error:5.1.1 mailbox unavailable\n";

/* Open the resolver on main.cf text extra appended to the common part. */
static void open_with(struct fixture *f, const char *extra)
{
	str_t cf, error;
	strv_t errors = STRV_INIT;

	str_init(&cf);
	str_init(&error);
	str_appendf(&cf,
	            "myhostname = mail.v.test\n"
	            "mydestination = localhost\n"
	            "recipient_delimiter = +\n"
	            "virtual_alias_maps = texthash:%s/aliases\n"
	            "virtual_mailbox_domains = v.test\n"
	            "virtual_mailbox_maps = texthash:%s/mailboxes\n"
	            "virtual_mailbox_base = /var/vmail\n"
	            "relay_domains = r.test\n"
	            "transport_maps = texthash:%s/transport\n%s",
	            f->dir, f->dir, f->dir, extra);
	if (config_parse_text(str_c(&cf), cf.len, "main.cf", f->dir, &f->cfg, &errors) < 0)
		fail_msg("main.cf: %s", errors.n > 0 ? errors.v[0] : "?");
	if (resolve_open(f->cfg, f->dir, &f->ctx, &error) < 0)
		fail_msg("resolve_open: %s", str_c(&error));
	strv_free(&errors);
	str_free(&cf);
	str_free(&error);
}

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));

	f->dir = test_tmpdir();
	free(test_write_text(f->dir, "aliases", aliases));
	free(test_write_text(f->dir, "mailboxes", mailboxes));
	free(test_write_text(f->dir, "transport", transports));
	resolve_result_init(&f->r);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	resolve_result_free(&f->r);
	resolve_close(&f->ctx);
	config_destroy(&f->cfg);
	test_rmtree(&f->dir);
	free(f);
	return 0;
}

/* The final addresses, space-separated, in order. */
static char *finals(const struct resolve_result *r)
{
	str_t out;

	str_init(&out);
	for (size_t i = 0; i < r->nfinals; i++)
		str_appendf(&out, "%s%s", i > 0 ? " " : "", r->finals[i].address);
	return test_steal(&out);
}

#define assert_finals(f, expected) \
	do { \
		char *got_ = finals(&(f)->r); \
		if (strcmp(got_, (expected)) != 0) \
			fail_msg("expected finals [%s], got [%s]", (expected), got_); \
		free(got_); \
	} while (0)

/* Is there a trace line at depth holding text? */
static bool has_line(const struct resolve_result *r, unsigned depth, const char *text)
{
	for (size_t i = 0; i < r->nlines; i++)
		if (r->lines[i].depth == depth && strstr(r->lines[i].text, text) != NULL)
			return true;
	return false;
}

static void test_two_targets_and_duplicates(void **state)
{
	struct fixture *f = *state;

	open_with(f, "");
	assert_int_equal(resolve_recipient(f->ctx, "a@v.test", &f->r), RESOLVE_OK);
	/* b expands to c; the c and b that follow are duplicates. */
	assert_finals(f, "c@v.test");
	assert_true(has_line(&f->r, 1, "alias: virtual_alias_maps texthash:"));
	assert_true(has_line(&f->r, 1, "key a@v.test -> b@v.test, c@v.test, b@v.test"));
	assert_true(has_line(&f->r, 1, "c@v.test (duplicate: dropped)"));
	assert_true(has_line(&f->r, 1, "b@v.test (duplicate: dropped)"));
	assert_true(has_line(&f->r, 3, "mailbox: virtual_mailbox_maps texthash:"));
	assert_true(has_line(&f->r, 3, "-> v.test/c/ (maildir /var/vmail/v.test/c/)"));
	assert_string_equal(f->r.finals[0].maildir, "/var/vmail/v.test/c/");
	assert_string_equal(f->r.finals[0].transport, "virtual");
	assert_int_equal(f->r.finals[0].class, RESOLVE_CLASS_VIRTUAL);
}

static void test_loop_and_self(void **state)
{
	struct fixture *f = *state;

	open_with(f, "");
	/* x -> y -> x: x was met already, so the loop ends there. */
	assert_int_equal(resolve_recipient(f->ctx, "x@v.test", &f->r), RESOLVE_OK);
	assert_int_equal(f->r.nfinals, 0);
	assert_true(has_line(&f->r, 2, "x@v.test (duplicate: dropped)"));
	/* s -> s, t: s is delivered to itself (t is unknown in v.test). */
	assert_int_equal(resolve_recipient(f->ctx, "S@v.test", &f->r), RESOLVE_UNDELIVERABLE);
	assert_finals(f, "s@v.test t@v.test");
	assert_true(has_line(&f->r, 1, "s@v.test (itself: final)"));
	assert_true(f->r.finals[0].deliverable == false); /* no mailbox s@v.test */
	assert_string_equal(f->r.finals[1].reason, "User unknown in virtual mailbox table");
	assert_string_equal(f->r.finals[1].transport, "error");
}

static void test_catch_all(void **state)
{
	struct fixture *f = *state;

	open_with(f, "");
	(void)resolve_recipient(f->ctx, "anyone@c.test", &f->r);
	assert_finals(f, "catch@v.test");
	assert_true(has_line(&f->r, 1, "key @c.test -> catch@v.test"));
	/* An exact entry wins over the catch-all. */
	(void)resolve_recipient(f->ctx, "known@c.test", &f->r);
	assert_finals(f, "known@v.test");
}

static void test_extension(void **state)
{
	struct fixture *f = *state;

	open_with(f, "");
	assert_int_equal(resolve_recipient(f->ctx, "e+news@v.test", &f->r), RESOLVE_OK);
	assert_finals(f, "f+news@v.test");
	assert_true(
	        has_line(&f->r, 1, "key e@v.test -> f+news@v.test (extension +news propagated)"));
	/* The mailbox is found without the extension. */
	assert_true(has_line(&f->r, 2, "key f@v.test -> v.test/f/"));
	resolve_close(&f->ctx);
	config_destroy(&f->cfg);
	open_with(f, "propagate_unmatched_extensions = canonical\n");
	(void)resolve_recipient(f->ctx, "e+news@v.test", &f->r);
	assert_finals(f, "f@v.test");
}

static void test_limits(void **state)
{
	struct fixture *f = *state;

	open_with(f, "virtual_alias_recursion_limit = 3\nvirtual_alias_expansion_limit = 2\n");
	assert_int_equal(resolve_recipient(f->ctx, "r1@v.test", &f->r), RESOLVE_TEMPFAIL);
	assert_string_equal(str_c(&f->r.error),
	                    "unreasonable virtual_alias_maps map nesting for r1@v.test");
	assert_int_equal(resolve_recipient(f->ctx, "big@v.test", &f->r), RESOLVE_TEMPFAIL);
	assert_string_equal(str_c(&f->r.error),
	                    "unreasonable virtual_alias_maps map expansion size for big@v.test");
	/* Within the limits: three lookups deep, one address at a time. */
	assert_int_equal(resolve_recipient(f->ctx, "r3@v.test", &f->r), RESOLVE_UNDELIVERABLE);
	assert_finals(f, "r5@v.test");
}

static void test_tempfail(void **state)
{
	struct fixture *f = *state;
	char *cf = test_write_text(f->dir, "down.cf",
	                           "hosts = 127.0.0.1:1\nuser = u\npassword = p\ndbname = d\n"
	                           "query = SELECT goto FROM alias WHERE address = '%s'\n");
	char *extra = xasprintf("virtual_alias_maps = mysql:%s\n", cf);
	struct test_log log;

	test_log_start(&log, false);
	open_with(f, extra);
	assert_int_equal(resolve_recipient(f->ctx, "a@v.test", &f->r), RESOLVE_TEMPFAIL);
	test_log_stop(&log);
	assert_non_null(strstr(str_c(&f->r.error), "virtual_alias_maps: "));
	assert_non_null(strstr(str_c(&f->r.error), cf));
	assert_int_equal(f->r.nfinals, 0); /* never "unknown" */
	free(extra);
	free(cf);
}

static void test_classes_and_transports(void **state)
{
	struct fixture *f = *state;

	open_with(f, "");
	assert_int_equal(resolve_recipient(f->ctx, "u@localhost", &f->r), RESOLVE_OK);
	assert_int_equal(f->r.finals[0].class, RESOLVE_CLASS_LOCAL);
	assert_string_equal(f->r.finals[0].transport, "local");
	assert_string_equal(f->r.finals[0].nexthop, "mail.v.test");
	assert_true(has_line(&f->r, 1, "class: local domain (mydestination localhost)"));

	assert_int_equal(resolve_recipient(f->ctx, "v@r.test", &f->r), RESOLVE_OK);
	assert_int_equal(f->r.finals[0].class, RESOLVE_CLASS_RELAY);
	assert_true(has_line(&f->r, 1, "transport: relay nexthop r.test (relay_transport)"));

	assert_int_equal(resolve_recipient(f->ctx, "u@r.test", &f->r), RESOLVE_UNDELIVERABLE);
	assert_string_equal(f->r.finals[0].reason, "5.1.1 mailbox unavailable");

	assert_int_equal(resolve_recipient(f->ctx, "w@special.test", &f->r), RESOLVE_OK);
	assert_string_equal(f->r.finals[0].transport, "smtp");
	assert_string_equal(f->r.finals[0].nexthop, "[10.0.0.1]:2525");
	assert_true(has_line(&f->r, 1, "class: remote domain (no domain list matches)"));
	assert_true(has_line(&f->r, 1, "key special.test)"));

	/* .sub.test matches subdomains only; empty nexthop keeps the domain. */
	assert_int_equal(resolve_recipient(f->ctx, "w@a.sub.test", &f->r), RESOLVE_OK);
	assert_string_equal(f->r.finals[0].transport, "relay");
	assert_string_equal(f->r.finals[0].nexthop, "a.sub.test");
	assert_int_equal(resolve_recipient(f->ctx, "w@sub.test", &f->r), RESOLVE_OK);
	assert_string_equal(f->r.finals[0].transport, "smtp");

	assert_int_equal(resolve_recipient(f->ctx, "nobody@v.test", &f->r), RESOLVE_UNDELIVERABLE);
	assert_true(
	        has_line(&f->r, 1, "result: undeliverable: User unknown in virtual mailbox table"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_two_targets_and_duplicates, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_loop_and_self, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_catch_all, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_extension, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_tempfail, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_classes_and_transports, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
