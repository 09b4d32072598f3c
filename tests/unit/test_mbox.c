/* test_mbox.c - unit tests for lib/delivery/mbox: the copy in Postfix's
 * mail_copy() form (From_ line, Return-Path, X-Original-To, Delivered-To,
 * >From quoting also when "From " is split between two reads, a missing
 * last line end added, the blank line), appends to an existing mbox, a
 * new file made 0600, the dot lock removed afterwards, mailbox_size_limit
 * (5.2.2 and the file cut back to its old size), a symlink and a file
 * with two links refused, a failing content source (4.3.0, file
 * unchanged), and mailbox_delivery_lock parsing. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "base/fs.h"
#include "base/str.h"
#include "delivery/mbox.h"

/* Content from memory, at most chunk bytes per read; fail: error after
 * the first read. */
struct mem {
	const char *data;
	size_t len, pos, chunk;
	bool fail;
};

static ssize_t mem_read(void *ctx, void *buf, size_t size)
{
	struct mem *m = ctx;
	size_t n = m->len - m->pos;

	if (m->fail && m->pos > 0) {
		errno = EIO;
		return -1;
	}
	if (n > size)
		n = size;
	if (n > m->chunk)
		n = m->chunk;
	memcpy(buf, m->data + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

static char *tmpdir(void)
{
	char tmpl[] = "/tmp/test_mbox.XXXXXX";
	char *d = mkdtemp(tmpl);

	assert_non_null(d);
	return strdup(d);
}

static char *slurp(const char *path)
{
	str_t s, e;
	char *text;

	str_init(&s);
	str_init(&e);
	assert_int_equal(fs_read_file(path, 1 << 20, &s, &e), 0);
	str_free(&e);
	text = str_steal(&s);
	str_free(&s); /* str_steal leaves an empty, allocated string */
	return text;
}

static struct mbox_request request(const char *path, struct mem *m)
{
	struct mbox_request r = {
	        .path = path,
	        .locks = MBOX_LOCK_FCNTL | MBOX_LOCK_DOTLOCK,
	        .copy = {.flags = MBOX_COPY_MBOX,
	                 .sender = "bob@example.org",
	                 .orig_rcpt = "alias@example.com",
	                 .delivered = "alice@example.com",
	                 .read = mem_read,
	                 .read_context = m},
	};
	return r;
}

static void test_copy_and_append(void **state)
{
	static const char msg[] = "Subject: x\n\nFrom here\nFrom\n>From kept\nlast";
	char *dir = tmpdir(), *path, *lock, *got;
	struct mem m = {msg, sizeof(msg) - 1, 0, 13, false};
	struct mbox_request req;
	struct mbox_result res;
	struct stat st;
	const char *body;

	(void)state;
	path = malloc(strlen(dir) + 10);
	sprintf(path, "%s/mbox", dir);
	lock = malloc(strlen(path) + 6);
	sprintf(lock, "%s.lock", path);
	str_init(&res.text);
	req = request(path, &m);
	/* chunk 13: the read ends inside "From " of line 3. */
	assert_int_equal(mbox_deliver(&req, &res), 0);
	assert_string_equal(res.status, "2.0.0");
	assert_string_equal(str_c(&res.text), "delivered to mailbox");
	m.pos = 0;
	req.copy.sender = "";
	assert_int_equal(mbox_deliver(&req, &res), 0);
	got = slurp(path);
	assert_int_equal(strncmp(got, "From bob@example.org  ", 22), 0);
	body = strchr(got, '\n') + 1;
	assert_int_equal(
	        strncmp(body,
	                "Return-Path: <bob@example.org>\nX-Original-To: alias@example.com\n"
	                "Delivered-To: alice@example.com\nSubject: x\n\n>From here\nFrom\n"
	                ">From kept\nlast\n\nFrom MAILER-DAEMON  ",
	                strlen("Return-Path: <bob@example.org>\nX-Original-To: "
	                       "alias@example.com\nDelivered-To: alice@example.com\n"
	                       "Subject: x\n\n>From here\nFrom\n>From kept\nlast\n\nFrom "
	                       "MAILER-DAEMON  ")),
	        0);
	assert_non_null(strstr(got, "Return-Path: <>\n"));
	assert_int_equal(got[strlen(got) - 1], '\n');
	assert_int_equal(got[strlen(got) - 2], '\n');
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(access(lock, F_OK), -1);
	free(got);
	unlink(path);
	rmdir(dir);
	free(lock);
	free(path);
	free(dir);
	str_free(&res.text);
}

static void test_limits_and_refusals(void **state)
{
	static const char msg[] = "Subject: big\n\n0123456789012345678901234567890123456789\n";
	char *dir = tmpdir(), path[256], link_path[256], other[256];
	struct mem m = {msg, sizeof(msg) - 1, 0, 4096, false};
	struct mem bad = {msg, sizeof(msg) - 1, 0, 5, true};
	struct mbox_request req;
	struct mbox_result res;
	struct stat st;
	off_t before;

	(void)state;
	snprintf(path, sizeof(path), "%s/mbox", dir);
	snprintf(link_path, sizeof(link_path), "%s/link", dir);
	snprintf(other, sizeof(other), "%s/other", dir);
	str_init(&res.text);
	req = request(path, &m);
	assert_int_equal(mbox_deliver(&req, &res), 0);
	assert_int_equal(stat(path, &st), 0);
	before = st.st_size;
	/* mailbox_size_limit: room for less than a second copy. */
	m.pos = 0;
	req.size_limit = (uint64_t)before + 20;
	assert_int_equal(mbox_deliver(&req, &res), -1);
	assert_string_equal(res.status, "5.2.2");
	assert_string_equal(str_c(&res.text), "error writing message: File too large");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, before);
	/* Already at the limit. */
	m.pos = 0;
	req.size_limit = (uint64_t)before;
	assert_int_equal(mbox_deliver(&req, &res), -1);
	assert_string_equal(res.status, "5.2.2");
	/* A failing content source: 4.3.0, nothing left behind. */
	req.copy.read_context = &bad;
	req.size_limit = 0;
	assert_int_equal(mbox_deliver(&req, &res), -1);
	assert_string_equal(res.status, "4.3.0");
	assert_non_null(strstr(str_c(&res.text), "error reading message"));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, before);
	/* A symlink and a second hard link are refused. */
	assert_int_equal(symlink(path, link_path), 0);
	req.path = link_path;
	req.copy.read_context = &m;
	m.pos = 0;
	assert_int_equal(mbox_deliver(&req, &res), -1);
	assert_string_equal(res.status, "5.2.0");
	assert_non_null(strstr(str_c(&res.text), "symbolic link"));
	assert_int_equal(link(path, other), 0);
	req.path = path;
	assert_int_equal(mbox_deliver(&req, &res), -1);
	assert_string_equal(res.status, "5.2.0");
	assert_non_null(strstr(str_c(&res.text), "too many hard links"));
	unlink(link_path);
	unlink(other);
	unlink(path);
	rmdir(dir);
	free(dir);
	str_free(&res.text);
}

static void test_lock_parse(void **state)
{
	unsigned mask = 0;
	str_t why;

	(void)state;
	str_init(&why);
	assert_int_equal(mbox_lock_parse("fcntl, dotlock", &mask, &why), 0);
	assert_int_equal(mask, MBOX_LOCK_FCNTL | MBOX_LOCK_DOTLOCK);
	assert_int_equal(mbox_lock_parse("dotlock", &mask, &why), 0);
	assert_int_equal(mask, MBOX_LOCK_DOTLOCK);
	assert_int_equal(mbox_lock_parse("", &mask, &why), 0);
	assert_int_equal(mask, 0);
	assert_int_equal(mbox_lock_parse("fcntl flock", &mask, &why), -1);
	assert_non_null(strstr(str_c(&why), "\"flock\""));
	str_free(&why);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_copy_and_append),
	        cmocka_unit_test(test_limits_and_refusals),
	        cmocka_unit_test(test_lock_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
