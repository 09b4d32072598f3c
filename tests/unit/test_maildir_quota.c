/* test_maildir_quota.c - unit tests for lib/delivery/maildir_quota and the
 * quota path of maildir_deliver(): the maildirsize parser against a table
 * of good and malformed files, the limits header, the "would exceed"
 * boundary, deliveries accepted up to the limit and refused past it (5.2.2,
 * or 4.2.2 when soft) with nothing left behind, a byte-exact maildirsize
 * after deliveries, and recalculation from a directory scan when the file
 * is missing, corrupt, too large or carries other limits; smtpd's "already
 * full" test and the read-only maildir_quota_peek(), which never writes. */
#include "maildir_test.h"

struct parse_case {
	const char *in;
	int ret;
	uint64_t lbytes, lcount;
	int64_t bytes, count;
};

static void test_parse(void **state)
{
	static const struct parse_case cases[] = {
	        {"1000S,10C\n", 0, 1000, 10, 0, 0},
	        {"1000S\n100 1\n200 2\n", 0, 1000, 0, 300, 3},
	        {"10C\n5 1\n", 0, 0, 10, 5, 1},
	        {"0S\n", 0, 0, 0, 0, 0},
	        {"1000S,10C\n  300   2\n-100 -1\n", 0, 1000, 10, 200, 1},
	        {"1000S,10C\n100 1\n-500 -5\n", 0, 1000, 10, 0, 0}, /* clamped at 0 */
	        {"", -1, 0, 0, 0, 0},
	        {"1000S,10C", -1, 0, 0, 0, 0}, /* header without newline */
	        {"1000X\n", -1, 0, 0, 0, 0},
	        {"S\n", -1, 0, 0, 0, 0},
	        {"-5S\n", -1, 0, 0, 0, 0},
	        {"1000S,\n", -1, 0, 0, 0, 0},
	        {"1000S\n100\n", -1, 0, 0, 0, 0},
	        {"1000S\n100 1", -1, 0, 0, 0, 0}, /* last line being written */
	        {"1000S\n100 1 x\n", -1, 0, 0, 0, 0},
	        {"1000S\nabc 1\n", -1, 0, 0, 0, 0},
	        {"1000S\n99999999999999999999 1\n", -1, 0, 0, 0, 0},
	        {"1000S\n9223372036854775807 1\n1 0\n", -1, 0, 0, 0, 0}, /* sum overflows */
	        {"1000S\n1 1\n\n", -1, 0, 0, 0, 0},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct parse_case *c = &cases[i];
		struct maildir_quota_usage u;
		int ret = maildir_quota_parse(c->in, strlen(c->in), &u);

		if (ret != c->ret)
			fail_msg("case %zu \"%s\": ret %d", i, c->in, ret);
		if (ret == 0) {
			assert_int_equal(u.limits.bytes, c->lbytes);
			assert_int_equal(u.limits.count, c->lcount);
			assert_int_equal(u.bytes, c->bytes);
			assert_int_equal(u.count, c->count);
		}
	}
}

static void test_format_limits(void **state)
{
	static const struct {
		struct maildir_quota_limits l;
		const char *out;
	} cases[] = {
	        {{0, 0}, "0S\n"},
	        {{1000, 0}, "1000S\n"},
	        {{0, 7}, "7C\n"},
	        {{1048576, 100}, "1048576S,100C\n"},
	};
	str_t s;

	(void)state;
	str_init(&s);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		str_reset(&s);
		maildir_quota_format_limits(&cases[i].l, &s);
		assert_string_equal(str_c(&s), cases[i].out);
	}
	str_free(&s);
}

static void test_would_exceed(void **state)
{
	struct maildir_quota_usage u = {.bytes = 900, .count = 9, .limits = {1000, 10}};

	(void)state;
	assert_false(maildir_quota_would_exceed(&u, 100, 1)); /* exactly at the limit */
	assert_true(maildir_quota_would_exceed(&u, 101, 1));
	assert_true(maildir_quota_would_exceed(&u, 1, 2));
	assert_true(maildir_quota_would_exceed(&u, UINT64_MAX, 1));
	u.limits = (struct maildir_quota_limits){0, 0};
	assert_false(maildir_quota_would_exceed(&u, UINT64_MAX, UINT64_MAX));
	u.limits = (struct maildir_quota_limits){0, 10};
	assert_false(maildir_quota_would_exceed(&u, 1000000, 1));
	assert_true(maildir_quota_would_exceed(&u, 1, 2));
}

/* Deliver a message of exactly size bytes; returns maildir_deliver's
 * result, with res filled in. */
static int deliver_size(const char *base, const char *maildir, size_t size,
                        const struct maildir_quota_limits *limits, bool soft,
                        struct maildir_result *res)
{
	char *data = xmalloc(size + 1);
	struct mem_source m = {data, size, 0, 0, false};
	struct maildir_request req = make_request(base, maildir, &m);
	int ret;

	memset(data, 'x', size);
	if (size > 0)
		data[size - 1] = '\n';
	req.quota_enabled = true;
	req.quota = *limits;
	req.quota_soft = soft;
	ret = maildir_deliver(&req, res);
	free(data);
	return ret;
}

static char *read_maildirsize(const char *base, const char *maildir)
{
	char *path = xasprintf("%s/%smaildirsize", base, maildir);
	str_t s, error;
	char *data;

	str_init(&s);
	str_init(&error);
	assert_int_equal(fs_read_file(path, 1 << 20, &s, &error), 0);
	str_free(&error);
	free(path);
	data = str_steal(&s);
	str_free(&s); /* str_steal leaves s empty but initialised */
	return data;
}

static void test_quota_boundary(void **state)
{
	char *base = make_base();
	struct maildir_quota_limits limits = {1000, 0};
	struct maildir_result res;
	char *newdir = xasprintf("%s/box/new", base), *tmpdir = xasprintf("%s/box/tmp", base);
	char *ms;

	(void)state;
	maildir_result_init(&res);
	assert_int_equal(deliver_size(base, "box/", 400, &limits, false, &res), 0);
	assert_int_equal(deliver_size(base, "box/", 600, &limits, false, &res), 0); /* = 1000 */
	ms = read_maildirsize(base, "box/");
	assert_string_equal(ms, "1000S\n0 0\n400 1\n600 1\n");
	free(ms);

	assert_int_equal(deliver_size(base, "box/", 1, &limits, false, &res), -1);
	assert_string_equal(res.status, "5.2.2");
	assert_non_null(strstr(str_c(&res.text), "mailbox full"));
	assert_int_equal(deliver_size(base, "box/", 1, &limits, true, &res), -1);
	assert_string_equal(res.status, "4.2.2");
	assert_int_equal(count_files(newdir), 2);
	assert_int_equal(count_files(tmpdir), 0);
	ms = read_maildirsize(base, "box/");
	assert_string_equal(ms, "1000S\n0 0\n400 1\n600 1\n");
	free(ms);

	/* Raising the limit rewrites the header from a scan. */
	limits.bytes = 2000;
	assert_int_equal(deliver_size(base, "box/", 10, &limits, false, &res), 0);
	ms = read_maildirsize(base, "box/");
	assert_string_equal(ms, "2000S\n1000 2\n10 1\n");
	free(ms);

	/* A message count limit. */
	limits = (struct maildir_quota_limits){0, 3};
	assert_int_equal(deliver_size(base, "box/", 10, &limits, false, &res), -1);
	assert_string_equal(res.status, "5.2.2");
	ms = read_maildirsize(base, "box/");
	assert_string_equal(ms, "3C\n1010 3\n");
	free(ms);

	maildir_result_free(&res);
	free(newdir);
	free(tmpdir);
	remove_tree(base);
	free(base);
}

static void write_file(const char *base, const char *rel, const char *data);

/* A mailbox without a limit: no maildirsize is made, but one that exists
 * (Dovecot made it) is kept current. */
static void test_unlimited_mailbox(void **state)
{
	char *base = make_base();
	char data[100];
	struct mem_source m = {data, sizeof(data), 0, 0, false};
	struct maildir_request req = make_request(base, "box/", &m);
	struct maildir_result res;
	char *path = xasprintf("%s/box/maildirsize", base), *ms;

	(void)state;
	memset(data, 'x', sizeof(data));
	data[sizeof(data) - 1] = '\n';
	maildir_result_init(&res);
	assert_int_equal(maildir_deliver(&req, &res), 0);
	assert_int_equal(access(path, F_OK), -1);
	write_file(base, "box/maildirsize", "0S\n");
	m.pos = 0;
	assert_int_equal(maildir_deliver(&req, &res), 0);
	ms = read_maildirsize(base, "box/");
	assert_string_equal(ms, "0S\n100 1\n");
	free(ms);
	maildir_result_free(&res);
	free(path);
	remove_tree(base);
	free(base);
}

static void write_file(const char *base, const char *rel, const char *data)
{
	char *path = xasprintf("%s/%s", base, rel);
	str_t error;

	str_init(&error);
	if (fs_write_durable(path, data, strlen(data), 0600, &error) < 0)
		fail_msg("%s", str_c(&error));
	str_free(&error);
	free(path);
}

static void make_dirs(const char *base, const char *rel)
{
	char *cmd = xasprintf("mkdir -p '%s/%s'", base, rel);

	assert_int_equal(system(cmd), 0);
	free(cmd);
}

/* Recalculation: files with ,S= (trusted) and without (stat), in INBOX
 * new/ and cur/ and in a Maildir++ folder; other files ignored. */
static void test_recalc(void **state)
{
	char *base = make_base(), *md = xasprintf("%s/m", base);
	struct maildir_quota_limits limits = {100000, 50};
	struct maildir_quota_usage u;
	str_t error, big;
	char *ms;

	(void)state;
	str_init(&error);
	str_init(&big);
	make_dirs(base, "m/tmp");
	make_dirs(base, "m/new");
	make_dirs(base, "m/cur");
	make_dirs(base, "m/.Sent/cur");
	make_dirs(base, "m/.Sent/new");
	write_file(base, "m/new/1.M1P1Q1.h,S=1234,W=1240", "short");
	write_file(base, "m/cur/2.M1P1Q2.h,S=100:2,S", "tiny");
	write_file(base, "m/cur/3.M1P1Q3.h", "0123456789"); /* no ,S=: 10 by stat */
	write_file(base, "m/.Sent/cur/4.M1P1Q4.h,S=50,W=52:2,", "x");
	write_file(base, "m/tmp/5.M1P1Q5.h,S=99999", "not counted");
	write_file(base, "m/.Sent/dovecot-uidlist", "not counted");

	/* Missing file. */
	assert_int_equal(maildir_quota_usage(base, "m/", &limits, &u, &error), 0);
	assert_true(u.recalculated);
	assert_int_equal(u.bytes, 1234 + 100 + 10 + 50);
	assert_int_equal(u.count, 4);
	ms = read_maildirsize(base, "m/");
	assert_string_equal(ms, "100000S,50C\n1394 4\n");
	free(ms);

	/* Now read from the file, not recalculated. */
	assert_int_equal(maildir_quota_usage(base, "m/", &limits, &u, &error), 0);
	assert_false(u.recalculated);
	assert_int_equal(u.bytes, 1394);

	/* Corrupt file: recalculated. */
	write_file(base, "m/maildirsize", "100000S,50C\ngarbage here\n");
	assert_int_equal(maildir_quota_usage(base, "m/", &limits, &u, &error), 0);
	assert_true(u.recalculated);
	assert_int_equal(u.bytes, 1394);
	assert_int_equal(u.count, 4);

	/* Over 5120 bytes: recalculated (the deltas claim much more). */
	str_append(&big, "100000S,50C\n");
	while (big.len <= MAILDIR_QUOTA_MAX_FILE)
		str_append(&big, "1000 1\n");
	write_file(base, "m/maildirsize", str_c(&big));
	assert_int_equal(maildir_quota_usage(base, "m/", &limits, &u, &error), 0);
	assert_true(u.recalculated);
	assert_int_equal(u.bytes, 1394);

	/* Without caller limits, the file's own header is kept. */
	write_file(base, "m/maildirsize", "777S\n5 1\n");
	assert_int_equal(maildir_quota_usage(base, "m/", NULL, &u, &error), 0);
	assert_false(u.recalculated);
	assert_int_equal(u.limits.bytes, 777);
	assert_int_equal(u.bytes, 5);

	/* Appending a delta. */
	assert_int_equal(maildir_quota_add_at(AT_FDCWD, 0, 0, &error), 0); /* no file here */
	{
		int fd = open(md, O_RDONLY | O_DIRECTORY);

		assert_true(fd >= 0);
		assert_int_equal(maildir_quota_add_at(fd, -5, -1, &error), 0);
		close(fd);
	}
	ms = read_maildirsize(base, "m/");
	assert_string_equal(ms, "777S\n5 1\n-5 -1\n");
	free(ms);
	{
		/* Rebuilds left no temporary file: only the planted one. */
		char *tmp = xasprintf("%s/tmp", md);

		assert_int_equal(count_files(tmp), 1);
		free(tmp);
	}

	str_free(&error);
	str_free(&big);
	free(md);
	remove_tree(base);
	free(base);
}

/* A maildirsize that is a symlink is not followed: rebuilt in its place. */
static void test_symlinked_maildirsize(void **state)
{
	char *base = make_base(), *md = xasprintf("%s/m", base);
	char *target = xasprintf("%s/secret", base),
	     *link_path = xasprintf("%s/m/maildirsize", base);
	struct maildir_quota_limits limits = {1000, 0};
	struct maildir_quota_usage u;
	str_t error;
	char *s;

	(void)state;
	str_init(&error);
	make_dirs(base, "m/tmp");
	write_file(base, "secret", "1000S\n999999 1\n");
	assert_int_equal(symlink(target, link_path), 0);
	assert_int_equal(maildir_quota_usage(base, "m/", &limits, &u, &error), 0);
	assert_true(u.recalculated);
	assert_int_equal(u.bytes, 0);
	{
		str_t data;

		str_init(&data);
		assert_int_equal(fs_read_file(target, 4096, &data, &error), 0);
		assert_string_equal(str_c(&data), "1000S\n999999 1\n"); /* untouched */
		str_free(&data);
	}
	s = read_maildirsize(base, "m/");
	assert_string_equal(s, "1000S\n0 0\n");
	free(s);
	str_free(&error);
	free(md);
	free(target);
	free(link_path);
	remove_tree(base);
	free(base);
}

/* "Already over quota" (smtpd at RCPT): at a limit counts, a SIZE= that
 * would go over counts, a limit of 0 never refuses. */
static void test_full(void **state)
{
	static const struct {
		int64_t bytes, count;
		uint64_t lbytes, lcount, size;
		bool full;
	} cases[] = {
	        {999, 9, 1000, 10, 0, false},
	        {1000, 9, 1000, 10, 0, true}, /* bytes at the limit */
	        {1500, 0, 1000, 0, 0, true},
	        {999, 10, 1000, 10, 0, true}, /* messages at the limit */
	        {999, 9, 1000, 10, 1, false}, /* exactly fills it */
	        {999, 9, 1000, 10, 2, true}, /* SIZE= would go over */
	        {0, 0, 1000, 0, UINT64_MAX, true},
	        {0, 0, 1000, 0, 1000, false},
	        {999999, 99999, 0, 0, UINT64_MAX, false}, /* no limits */
	        {5, 10, 0, 10, 0, true}, /* message limit only */
	        {5, 9, 0, 10, 1000000, false},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct maildir_quota_usage u = {.bytes = cases[i].bytes,
		                                .count = cases[i].count,
		                                .limits = {cases[i].lbytes, cases[i].lcount}};

		if (maildir_quota_full(&u, cases[i].size) != cases[i].full)
			fail_msg("case %zu: expected %s", i, cases[i].full ? "full" : "not full");
	}
}

static void test_peek(void **state)
{
	char *base = make_base(), *md = xasprintf("%s/m", base);
	struct maildir_quota_usage u;
	str_t error, big;
	char *ms;

	(void)state;
	str_init(&error);
	str_init(&big);
	make_dirs(base, "m/new");
	make_dirs(base, "m/cur");
	make_dirs(base, "m/tmp");
	write_file(base, "m/new/1.M1P1Q1.h,S=1234", "x");
	/* No file: known and empty, and still no file afterwards. */
	assert_int_equal(maildir_quota_peek(base, "m/", &u, &error), 0);
	assert_int_equal(u.bytes, 0);
	assert_int_equal(u.count, 0);
	ms = xasprintf("%s/maildirsize", md);
	assert_int_equal(access(ms, F_OK), -1);
	free(ms);
	/* A good file. */
	write_file(base, "m/maildirsize", "5000S,10C\n1000 2\n500 1\n");
	assert_int_equal(maildir_quota_peek(base, "m/", &u, &error), 1);
	assert_int_equal(u.bytes, 1500);
	assert_int_equal(u.count, 3);
	assert_int_equal(u.limits.bytes, 5000);
	assert_int_equal(u.limits.count, 10);
	assert_false(u.recalculated);
	/* Malformed or too large: unknown, and left as it is. */
	write_file(base, "m/maildirsize", "5000S\ngarbage\n");
	assert_int_equal(maildir_quota_peek(base, "m/", &u, &error), -1);
	assert_string_equal(str_c(&error), "maildirsize needs recalculation");
	ms = read_maildirsize(base, "m/");
	assert_string_equal(ms, "5000S\ngarbage\n");
	free(ms);
	str_append(&big, "5000S\n");
	while (big.len <= MAILDIR_QUOTA_MAX_FILE)
		str_append(&big, "1 1\n");
	write_file(base, "m/maildirsize", str_c(&big));
	str_reset(&error);
	assert_int_equal(maildir_quota_peek(base, "m/", &u, &error), -1);
	assert_non_null(strstr(str_c(&error), "needs recalculation"));
	/* A symlink is not followed. */
	ms = xasprintf("%s/maildirsize", md);
	assert_int_equal(unlink(ms), 0);
	assert_int_equal(symlink("/etc/passwd", ms), 0);
	free(ms);
	str_reset(&error);
	assert_int_equal(maildir_quota_peek(base, "m/", &u, &error), -1);
	assert_string_equal(str_c(&error), "maildirsize is a symbolic link: not read");
	str_free(&error);
	str_free(&big);
	remove_tree(base);
	free(md);
	free(base);
}

/* A mailbox owner's traps around maildirsize: a symlink to a file only
 * root may read, a FIFO, a symlinked Maildir component. None is read
 * through, nothing blocks, the target is untouched; the delivery side
 * (maildir_quota_usage, and maildir_deliver's quota check) treats the
 * file as absent and rebuilds it in its place, the read-only side (peek)
 * reports the usage unknown. */
static void test_planted_maildirsize(void **state)
{
	char *base = make_base(), *md = xasprintf("%s/m", base);
	char *ms = xasprintf("%s/m/maildirsize", base);
	struct maildir_quota_limits limits = {100000, 0};
	struct maildir_quota_usage u;
	struct stat before, after;
	str_t error;
	int fd;

	(void)state;
	str_init(&error);
	make_dirs(base, "m/tmp");
	make_dirs(base, "m/new");
	make_dirs(base, "m/cur");
	write_file(base, "m/new/1.M1P1Q1.h,S=300", "x");
	assert_int_equal(stat("/etc/shadow", &before), 0);
	assert_int_equal(symlink("/etc/shadow", ms), 0);

	assert_int_equal(maildir_quota_peek(base, "m/", &u, &error), -1);
	assert_string_equal(str_c(&error), "maildirsize is a symbolic link: not read");
	/* The appender does not write through it either. */
	fd = open(md, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	str_reset(&error);
	assert_int_equal(maildir_quota_add_at(fd, 5, 1, &error), -1);
	close(fd);
	/* The delivery side: absent, rebuilt in place of the link. */
	str_reset(&error);
	assert_int_equal(maildir_quota_usage(base, "m/", &limits, &u, &error), 0);
	assert_true(u.recalculated);
	assert_int_equal(u.bytes, 300);
	assert_int_equal(lstat(ms, &after), 0);
	assert_true(S_ISREG(after.st_mode));
	assert_int_equal(stat("/etc/shadow", &after), 0);
	assert_int_equal(after.st_size, before.st_size);
	assert_int_equal(after.st_mtime, before.st_mtime);

	/* A FIFO: no hang (O_NONBLOCK), never read or appended to. */
	assert_int_equal(unlink(ms), 0);
	assert_int_equal(mkfifo(ms, 0600), 0);
	str_reset(&error);
	assert_int_equal(maildir_quota_peek(base, "m/", &u, &error), -1);
	assert_string_equal(str_c(&error), "maildirsize unreadable");
	fd = open(md, O_RDONLY | O_DIRECTORY);
	str_reset(&error);
	assert_int_equal(maildir_quota_add_at(fd, 5, 1, &error), -1);
	close(fd);
	str_reset(&error);
	assert_int_equal(maildir_quota_usage(base, "m/", &limits, &u, &error), 0);
	assert_true(u.recalculated);
	assert_int_equal(lstat(ms, &after), 0);
	assert_true(S_ISREG(after.st_mode));

	/* A Maildir component that is a symlink: not walked through. */
	{
		char *link_md = xasprintf("%s/l", base);

		assert_int_equal(symlink(md, link_md), 0);
		str_reset(&error);
		assert_int_equal(maildir_quota_peek(base, "l/", &u, &error), -1);
		assert_non_null(strstr(str_c(&error), "maildir l/ unreadable"));
		str_reset(&error);
		assert_int_equal(maildir_quota_usage(base, "l/", &limits, &u, &error), -1);
		assert_non_null(strstr(str_c(&error), "open maildir l/ below"));
		free(link_md);
	}
	/* A delivery with quota through a fresh link: the link is replaced
	 * by a rebuilt file, the message delivered, /etc/shadow untouched. */
	{
		struct maildir_result res;

		assert_int_equal(unlink(ms), 0);
		assert_int_equal(symlink("/etc/shadow", ms), 0);
		maildir_result_init(&res);
		assert_int_equal(deliver_size(base, "m/", 100, &limits, false, &res), 0);
		maildir_result_free(&res);
		assert_int_equal(lstat(ms, &after), 0);
		assert_true(S_ISREG(after.st_mode));
		assert_int_equal(stat("/etc/shadow", &after), 0);
		assert_int_equal(after.st_mtime, before.st_mtime);
	}
	/* And ".." cannot climb out of the base. */
	str_reset(&error);
	assert_int_equal(maildir_quota_peek(base, "m/../m/", &u, &error), -1);

	str_free(&error);
	free(ms);
	free(md);
	remove_tree(base);
	free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_parse),
	        cmocka_unit_test(test_format_limits),
	        cmocka_unit_test(test_would_exceed),
	        cmocka_unit_test(test_quota_boundary),
	        cmocka_unit_test(test_recalc),
	        cmocka_unit_test(test_symlinked_maildirsize),
	        cmocka_unit_test(test_planted_maildirsize),
	        cmocka_unit_test(test_full),
	        cmocka_unit_test(test_peek),
	        cmocka_unit_test(test_unlimited_mailbox),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
