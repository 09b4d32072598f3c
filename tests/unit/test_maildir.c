/* test_maildir.c - unit tests for lib/delivery/maildir: a delivery creates the
 * Maildir and puts the exact bytes (with Return-Path and Delivered-To) in
 * new/ under a spec-shaped name; 1,000 deliveries give 1,000 distinct
 * names; a queue-file style fd source; path attacks (.., absolute, empty
 * components, symlinks anywhere in the path) are refused with nothing
 * written outside; a uid below the minimum is refused; a full disk
 * (RLIMIT_FSIZE) gives 4.3.1 and a failing content source 4.3.0, both
 * leaving tmp/ and new/ empty. */
#include "maildir_test.h"

#include <regex.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "base/hash.h"

static const char MSG[] = "Subject: hi\nFrom: a@example.org\n\nline one\nline two\n";

static void test_deliver_basic(void **state)
{
	char *base = make_base();
	struct mem_source m = {MSG, sizeof(MSG) - 1, 0, 7, false};
	struct maildir_request req = make_request(base, "example.com/alice/", &m);
	struct maildir_result res;
	const char *expect_head =
	        "Return-Path: <bob@example.org>\nDelivered-To: alice@example.com\n";
	str_t path, content, error, want;
	regex_t re;
	struct stat st;

	(void)state;
	req.return_path = "bob@example.org";
	req.delivered_to = "alice@example.com";
	maildir_result_init(&res);
	str_init(&path);
	str_init(&content);
	str_init(&error);
	str_init(&want);
	assert_int_equal(maildir_deliver(&req, &res), 0);
	assert_string_equal(res.status, "2.0.0");
	assert_string_equal(str_c(&res.text), "delivered to maildir");
	str_appendf(&want, "%s%s", expect_head, MSG);
	assert_int_equal(res.size, want.len);

	/* time.M<usec>P<pid>Q<n>.<host>,S=<size>,W=<size+lines> in new/ */
	assert_int_equal(regcomp(&re,
	                         "^example\\.com/alice/new/[0-9]+\\.M[0-9]+P[0-9]+Q[0-9]+\\."
	                         "mx\\.example\\.org,S=[0-9]+,W=[0-9]+$",
	                         REG_EXTENDED | REG_NOSUB),
	                 0);
	assert_int_equal(regexec(&re, str_c(&res.path), 0, NULL, 0), 0);
	regfree(&re);
	{
		char *sw = xasprintf(",S=%zu,W=%zu", want.len, want.len + 7);

		assert_non_null(strstr(str_c(&res.path), sw));
		free(sw);
	}
	str_appendf(&path, "%s/%s", base, str_c(&res.path));
	assert_int_equal(fs_read_file(str_c(&path), 1 << 20, &content, &error), 0);
	assert_int_equal(content.len, want.len);
	assert_memory_equal(content.buf, want.buf, want.len);
	assert_int_equal(stat(str_c(&path), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	/* The three folders exist, 0700, and tmp/ is empty. */
	for (int i = 0; i < 3; i++) {
		static const char *const sub[] = {"tmp", "new", "cur"};
		char *d = xasprintf("%s/example.com/alice/%s", base, sub[i]);

		assert_int_equal(stat(d, &st), 0);
		assert_true(S_ISDIR(st.st_mode));
		assert_int_equal(st.st_mode & 0777, 0700);
		free(d);
	}
	str_reset(&path);
	str_appendf(&path, "%s/example.com/alice/tmp", base);
	assert_int_equal(count_files(str_c(&path)), 0);

	maildir_result_free(&res);
	str_free(&path);
	str_free(&content);
	str_free(&error);
	str_free(&want);
	remove_tree(base);
	free(base);
}

/* A table value with a newline cannot add a header. */
static void test_header_injection(void **state)
{
	char *base = make_base();
	struct mem_source m = {MSG, sizeof(MSG) - 1, 0, 0, false};
	struct maildir_request req = make_request(base, "u/", &m);
	struct maildir_result res;
	const char *want = "Delivered-To: x@y Bcc: evil@example.net\nSubject: hi\n";
	str_t path, content, error;

	(void)state;
	req.delivered_to = "x@y\nBcc: evil@example.net";
	maildir_result_init(&res);
	str_init(&path);
	str_init(&content);
	str_init(&error);
	assert_int_equal(maildir_deliver(&req, &res), 0);
	str_appendf(&path, "%s/%s", base, str_c(&res.path));
	assert_int_equal(fs_read_file(str_c(&path), 1 << 20, &content, &error), 0);
	assert_true(strncmp(content.buf, want, strlen(want)) == 0);
	maildir_result_free(&res);
	str_free(&path);
	str_free(&content);
	str_free(&error);
	remove_tree(base);
	free(base);
}

static void test_unique_names(void **state)
{
	char *base = make_base();
	struct maildir_result res;
	hash_t *seen = hash_new(NULL);
	char *newdir = xasprintf("%s/box/new", base), *tmpdir = xasprintf("%s/box/tmp", base);

	(void)state;
	maildir_result_init(&res);
	for (int i = 0; i < 1000; i++) {
		struct mem_source m = {MSG, sizeof(MSG) - 1, 0, 0, false};
		struct maildir_request req = make_request(base, "box/", &m);

		assert_int_equal(maildir_deliver(&req, &res), 0);
		assert_null(hash_get(seen, str_c(&res.path)));
		hash_put(seen, str_c(&res.path), (void *)1);
	}
	assert_int_equal(count_files(newdir), 1000);
	assert_int_equal(count_files(tmpdir), 0);
	hash_destroy(&seen);
	maildir_result_free(&res);
	free(newdir);
	free(tmpdir);
	remove_tree(base);
	free(base);
}

/* A keyed delivery (once_key) is written once: a second attempt meets the
 * first at link() (EEXIST) and reports its file; a retry with once_search
 * finds it in new/ and, once Dovecot moved it to cur/ with flags, in cur/;
 * a different key (another recipient) is a second file. */
static void test_once_key(void **state)
{
	char *base = make_base();
	char *newdir = xasprintf("%s/box/new", base), *curdir = xasprintf("%s/box/cur", base);
	char *tmpdir = xasprintf("%s/box/tmp", base);
	struct maildir_result res;
	str_t first, from, to;

	(void)state;
	maildir_result_init(&res);
	str_init(&first);
	str_init(&from);
	str_init(&to);
	for (int attempt = 0; attempt < 3; attempt++) {
		struct mem_source m = {MSG, sizeof(MSG) - 1, 0, 0, false};
		struct maildir_request req = make_request(base, "box/", &m);

		req.once_key = "QBCDFGR0123456789abcdef";
		req.once_time = 1700000000;
		req.once_search = attempt == 2;
		assert_int_equal(maildir_deliver(&req, &res), 0);
		assert_string_equal(res.status, "2.0.0");
		assert_int_equal(res.found, attempt > 0);
		if (attempt == 0) {
			assert_string_equal(str_c(&res.path),
			                    "box/new/1700000000.QBCDFGR0123456789abcdef."
			                    "mx.example.org,S=51,W=56");
			str_append(&first, str_c(&res.path));
		} else {
			assert_string_equal(str_c(&res.path), str_c(&first));
		}
		assert_int_equal(count_files(newdir), 1);
		assert_int_equal(count_files(tmpdir), 0);
	}
	/* Dovecot reads it: new/NAME -> cur/NAME:2,S. */
	str_appendf(&from, "%s/%s", base, str_c(&first));
	str_appendf(&to, "%s/box/cur/%s:2,S", base, str_c(&first) + strlen("box/new/"));
	assert_int_equal(rename(str_c(&from), str_c(&to)), 0);
	{
		struct mem_source m = {MSG, sizeof(MSG) - 1, 0, 0, false};
		struct maildir_request req = make_request(base, "box/", &m);

		req.once_key = "QBCDFGR0123456789abcdef";
		req.once_time = 1700000000;
		req.once_search = true;
		assert_int_equal(maildir_deliver(&req, &res), 0);
		assert_true(res.found);
		assert_non_null(strstr(str_c(&res.path), "box/cur/"));
		assert_int_equal(count_files(newdir), 0);
		assert_int_equal(count_files(curdir), 1);
		/* Another recipient of the same message: its own file. */
		m.pos = 0;
		req.once_key = "QBCDFGRfedcba9876543210";
		assert_int_equal(maildir_deliver(&req, &res), 0);
		assert_false(res.found);
		assert_int_equal(count_files(newdir), 1);
	}
	maildir_result_free(&res);
	str_free(&first);
	str_free(&from);
	str_free(&to);
	free(newdir);
	free(curdir);
	free(tmpdir);
	remove_tree(base);
	free(base);
}

/* Content from a file at an offset, as from the queue file. */
static void test_fd_source(void **state)
{
	char *base = make_base();
	char *qf = xasprintf("%s/queuefile", base);
	str_t path, content, error;
	struct maildir_result res;
	struct maildir_fd_source src, short_src;
	struct maildir_request req;
	int fd;

	(void)state;
	str_init(&path);
	str_init(&content);
	str_init(&error);
	maildir_result_init(&res);
	fd = open(qf, O_RDWR | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "HEADERJUNK", 10), 10);
	assert_int_equal(write(fd, MSG, sizeof(MSG) - 1), (ssize_t)(sizeof(MSG) - 1));
	assert_int_equal(write(fd, "TRAILER", 7), 7);
	src = (struct maildir_fd_source){fd, 10, sizeof(MSG) - 1};
	req = make_request(base, "box/", NULL);
	req.read = maildir_read_fd;
	req.read_context = &src;
	assert_int_equal(maildir_deliver(&req, &res), 0);
	str_appendf(&path, "%s/%s", base, str_c(&res.path));
	assert_int_equal(fs_read_file(str_c(&path), 1 << 20, &content, &error), 0);
	assert_string_equal(content.buf, MSG);

	/* A queue file shorter than the length it claims: 4.3.0, no file. */
	short_src = (struct maildir_fd_source){fd, 10, 1000};
	req.read_context = &short_src;
	assert_int_equal(maildir_deliver(&req, &res), -1);
	assert_string_equal(res.status, "4.3.0");
	str_reset(&path);
	str_appendf(&path, "%s/box/new", base);
	assert_int_equal(count_files(str_c(&path)), 1);
	str_reset(&path);
	str_appendf(&path, "%s/box/tmp", base);
	assert_int_equal(count_files(str_c(&path)), 0);
	close(fd);
	free(qf);
	maildir_result_free(&res);
	str_free(&path);
	str_free(&content);
	str_free(&error);
	remove_tree(base);
	free(base);
}

static void test_bad_paths(void **state)
{
	static const char *const bad[] = {
	        "../outside/", "/tmp/abs/", "a/../../outside/", "a//b/",
	        "./a/",        "a/./b/",    "noslash",          "",
	        "a/..",        "..",        "a/b/../",
	};
	char *base = make_base();
	struct maildir_result res;

	(void)state;
	maildir_result_init(&res);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct mem_source m = {MSG, sizeof(MSG) - 1, 0, 0, false};
		struct maildir_request req = make_request(base, bad[i], &m);

		assert_int_equal(maildir_deliver(&req, &res), -1);
		assert_string_equal(res.status, "4.3.5");
		assert_non_null(strstr(str_c(&res.text), "mail system configuration error"));
		m.pos = 0;
	}
	assert_int_equal(count_files(base), 0);
	maildir_result_free(&res);
	remove_tree(base);
	free(base);
}

/* Symlinks at every level of the path: the domain, the Maildir itself and
 * its new/ and tmp/ folders. Nothing may appear in the target. */
static void test_symlinks(void **state)
{
	char *base = make_base(), *outside = make_base();
	struct maildir_result res;
	static const char *const cases[][2] = {
	        /* link created, maildir to deliver to */
	        {"evil.com", "evil.com/alice/"}, {"d/bob", "d/bob/"},
	        {"e/carol/new", "e/carol/"},     {"f/dave/tmp", "f/dave/"},
	        {"g/erin/cur", "g/erin/"},
	};

	(void)state;
	maildir_result_init(&res);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mem_source m = {MSG, sizeof(MSG) - 1, 0, 0, false};
		struct maildir_request req = make_request(base, cases[i][1], &m);
		char *link_path = xasprintf("%s/%s", base, cases[i][0]);
		char *cmd = xasprintf("mkdir -p \"$(dirname '%s')\"", link_path);

		assert_int_equal(system(cmd), 0);
		assert_int_equal(symlink(outside, link_path), 0);
		assert_int_equal(maildir_deliver(&req, &res), -1);
		assert_string_equal(res.status, "4.3.5");
		assert_non_null(strstr(str_c(&res.text), "symlink"));
		assert_int_equal(count_files(outside), 0);
		free(cmd);
		free(link_path);
	}
	maildir_result_free(&res);
	remove_tree(base);
	remove_tree(outside);
	free(base);
	free(outside);
}

static void test_minimum_uid(void **state)
{
	char *base = make_base();
	struct mem_source m = {MSG, sizeof(MSG) - 1, 0, 0, false};
	struct maildir_request req = make_request(base, "box/", &m);
	struct maildir_result res;

	(void)state;
	maildir_result_init(&res);
	req.uid = 5;
	req.minimum_uid = 100;
	assert_int_equal(maildir_deliver(&req, &res), -1);
	assert_string_equal(res.status, "4.3.5");
	assert_non_null(strstr(str_c(&res.text), "virtual_minimum_uid"));
	assert_int_equal(count_files(base), 0);
	maildir_result_free(&res);
	remove_tree(base);
	free(base);
}

static void test_read_error(void **state)
{
	char *base = make_base();
	struct mem_source m = {MSG, sizeof(MSG) - 1, 0, 5, true};
	struct maildir_request req = make_request(base, "box/", &m);
	struct maildir_result res;
	char *tmp = xasprintf("%s/box/tmp", base), *new = xasprintf("%s/box/new", base);

	(void)state;
	maildir_result_init(&res);
	assert_int_equal(maildir_deliver(&req, &res), -1);
	assert_string_equal(res.status, "4.3.0");
	assert_non_null(strstr(str_c(&res.text), "read message content"));
	assert_int_equal(count_files(tmp), 0);
	assert_int_equal(count_files(new), 0);
	maildir_result_free(&res);
	free(tmp);
	free(new);
	remove_tree(base);
	free(base);
}

/* In a child with a 4 KB file size limit, deliver 64 KB: 4.3.1. */
static int full_disk_child(const char *base)
{
	struct rlimit rl = {4096, 4096};
	size_t len = 65536;
	char *big = xmalloc(len);
	struct mem_source m = {big, len, 0, 0, false};
	struct maildir_request req = make_request(base, "box/", &m);
	struct maildir_result res;
	int ok;

	for (size_t i = 0; i < len; i++)
		big[i] = i % 64 == 63 ? '\n' : 'x';
	signal(SIGXFSZ, SIG_IGN);
	if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
		return 10;
	maildir_result_init(&res);
	if (maildir_deliver(&req, &res) != -1)
		return 11;
	ok = strcmp(res.status, "4.3.1") == 0 &&
	     strstr(str_c(&res.text), "insufficient system storage") != NULL;
	maildir_result_free(&res);
	free(big);
	return ok ? 0 : 12;
}

static void test_full_disk(void **state)
{
	char *base = make_base();
	char *tmp = xasprintf("%s/box/tmp", base), *new = xasprintf("%s/box/new", base);
	pid_t pid;
	int status;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(full_disk_child(base));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(count_files(tmp), 0);
	assert_int_equal(count_files(new), 0);
	free(tmp);
	free(new);
	remove_tree(base);
	free(base);
}

static void test_unique_name_host(void **state)
{
	str_t s;

	(void)state;
	str_init(&s);
	maildir_unique_name("a/b:c", &s);
	assert_non_null(strstr(str_c(&s), ".a\\057b\\072c"));
	assert_null(strchr(str_c(&s), '/'));
	assert_null(strchr(str_c(&s), ':'));
	str_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_deliver_basic), cmocka_unit_test(test_header_injection),
	        cmocka_unit_test(test_unique_names),  cmocka_unit_test(test_fd_source),
	        cmocka_unit_test(test_bad_paths),     cmocka_unit_test(test_symlinks),
	        cmocka_unit_test(test_minimum_uid),   cmocka_unit_test(test_read_error),
	        cmocka_unit_test(test_full_disk),     cmocka_unit_test(test_unique_name_host),
	        cmocka_unit_test(test_once_key),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
