/* test_maildrop.c - the maildrop file: writer/reader round trip, and the
 * reader's bounds against truncated, damaged and hostile files. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "base/fs.h"
#include "base/mem.h"
#include "base/str.h"
#include "queue/maildrop.h"

static char *make_dir(void)
{
	char *dir = xstrdup("/tmp/postern-maildrop-XXXXXX");

	if (mkdtemp(dir) == NULL)
		fail_msg("mkdtemp: %s", strerror(errno));
	return dir;
}

static void remove_dir(char **dirp)
{
	DIR *d = opendir(*dirp);
	struct dirent *e;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		char *path = xasprintf("%s/%s", *dirp, e->d_name);
		unlink(path);
		free(path);
	}
	closedir(d);
	rmdir(*dirp);
	free(*dirp);
	*dirp = NULL;
}

static size_t count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] != '.')
			n++;
	}
	closedir(d);
	return n;
}

/* Write a message with the writer; returns the committed path. */
static char *write_message(const char *dir, const char *sender, const char *const *rcpts,
                           const char *content, size_t content_len)
{
	struct maildrop_writer *w = NULL;
	str_t error;
	char *path;

	str_init(&error);
	assert_int_equal(maildrop_writer_open(dir, &w, &error), 0);
	assert_int_equal(maildrop_writer_sender(w, sender, &error), 0);
	for (size_t i = 0; rcpts != NULL && rcpts[i] != NULL; i++)
		assert_int_equal(maildrop_writer_rcpt(w, rcpts[i], &error), 0);
	assert_int_equal(maildrop_writer_attr(w, MAILDROP_ATTR_FULL_NAME, "Jo User", &error), 0);
	assert_int_equal(maildrop_writer_attr(w, MAILDROP_ATTR_EXTRACT_RCPT, "yes", &error), 0);
	/* in uneven pieces, to cross the chunk boundary at odd places */
	for (size_t off = 0; off < content_len;) {
		size_t n = content_len - off < 7777 ? content_len - off : 7777;

		assert_int_equal(maildrop_writer_content(w, content + off, n, &error), 0);
		off += n;
	}
	assert_int_equal(maildrop_writer_content_size(w), content_len);
	assert_int_equal(maildrop_writer_commit(w, &error), 0);
	path = xasprintf("%s/%s", dir, maildrop_writer_id(w));
	maildrop_writer_destroy(&w);
	assert_null(w);
	str_free(&error);
	return path;
}

static enum maildrop_status open_path(const char *path, uint64_t max, struct maildrop **m_r,
                                      int *fd_r, str_t *error)
{
	*fd_r = open(path, O_RDONLY);
	assert_true(*fd_r >= 0);
	return maildrop_open_fd(*fd_r, max, m_r, error);
}

static void read_all(struct maildrop *m, str_t *out)
{
	char buf[1000];
	ssize_t n;
	str_t error;

	str_init(&error);
	while ((n = maildrop_read_content(m, buf, sizeof(buf), &error)) > 0)
		str_append_n(out, buf, (size_t)n);
	assert_int_equal(n, 0);
	str_free(&error);
}

static void test_round_trip(void **state)
{
	const char *rcpts[] = {"bob@example.com", "carol", NULL};
	char *dir = make_dir();
	str_t content, got, error;
	struct maildrop *m = NULL;
	const char *name, *value;
	size_t pos = 0;
	struct stat st;
	char *path;
	int fd;

	(void)state;
	str_init(&content);
	str_init(&got);
	str_init(&error);
	str_append(&content, "Subject: hi\n\n");
	/* 200 KB: several content records */
	for (int i = 0; i < 4000; i++)
		str_appendf(&content, "line %d of the body, padded to some length....\n", i);
	path = write_message(dir, "alice", rcpts, content.buf, content.len);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, MAILDROP_FILE_MODE);
	assert_int_equal(count_files(dir), 1); /* no temporary file left */

	assert_int_equal(open_path(path, 0, &m, &fd, &error), MAILDROP_OK);
	assert_string_equal(maildrop_sender(m), "alice");
	assert_int_equal(maildrop_rcpt_count(m), 2);
	assert_string_equal(maildrop_rcpt(m, 0), "bob@example.com");
	assert_string_equal(maildrop_rcpt(m, 1), "carol");
	assert_null(maildrop_rcpt(m, 2));
	assert_string_equal(maildrop_attr(m, MAILDROP_ATTR_FULL_NAME), "Jo User");
	assert_string_equal(maildrop_attr(m, MAILDROP_ATTR_EXTRACT_RCPT), "yes");
	assert_null(maildrop_attr(m, "nope"));
	assert_true(maildrop_attr_next(m, &pos, &name, &value));
	assert_string_equal(name, MAILDROP_ATTR_FULL_NAME);
	assert_true(maildrop_attr_next(m, &pos, &name, &value));
	assert_false(maildrop_attr_next(m, &pos, &name, &value));
	assert_int_equal(maildrop_content_size(m), content.len);
	read_all(m, &got);
	assert_int_equal(got.len, content.len);
	assert_memory_equal(got.buf, content.buf, content.len);
	maildrop_close(&m);
	assert_null(m);

	/* the size limit: envelope still readable, status TOO_BIG */
	assert_int_equal(maildrop_open_fd(fd, content.len - 1, &m, &error), MAILDROP_TOO_BIG);
	assert_non_null(m);
	assert_string_equal(maildrop_sender(m), "alice");
	maildrop_close(&m);
	assert_int_equal(maildrop_open_fd(fd, content.len, &m, &error), MAILDROP_OK);
	maildrop_close(&m);
	close(fd);

	free(path);
	str_free(&content);
	str_free(&got);
	str_free(&error);
	remove_dir(&dir);
}

/* Empty content, null sender, no recipients (sendmail -t style). */
static void test_minimal(void **state)
{
	char *dir = make_dir();
	struct maildrop *m = NULL;
	str_t got, error;
	char *path;
	int fd;

	(void)state;
	str_init(&got);
	str_init(&error);
	path = write_message(dir, "", NULL, "", 0);
	assert_int_equal(open_path(path, 10, &m, &fd, &error), MAILDROP_OK);
	assert_string_equal(maildrop_sender(m), "");
	assert_int_equal(maildrop_rcpt_count(m), 0);
	assert_int_equal(maildrop_content_size(m), 0);
	read_all(m, &got);
	assert_int_equal(got.len, 0);
	maildrop_close(&m);
	close(fd);
	free(path);
	str_free(&got);
	str_free(&error);
	remove_dir(&dir);
}

/* Every truncation of a valid file is CORRUPT, never OK, never a crash. */
static void test_truncated_everywhere(void **state)
{
	const char *rcpts[] = {"bob@example.com", NULL};
	char *dir = make_dir();
	str_t file, error;
	char *path;

	(void)state;
	str_init(&file);
	str_init(&error);
	path = write_message(dir, "alice", rcpts, "Subject: x\n\nbody\n", 17);
	assert_int_equal(fs_read_file(path, 1 << 20, &file, &error), 0);
	for (size_t cut = 0; cut < file.len; cut++) {
		struct maildrop *m = NULL;
		int fd;

		assert_int_equal(fs_write_durable(path, file.buf, cut, 0600, &error), 0);
		str_reset(&error);
		assert_int_equal(open_path(path, 0, &m, &fd, &error), MAILDROP_CORRUPT);
		assert_null(m);
		assert_non_null(strstr(str_c(&error), "corrupt maildrop file at offset"));
		close(fd);
	}
	free(path);
	str_free(&file);
	str_free(&error);
	remove_dir(&dir);
}

/* Build a file from a layout: header, then records given as type + payload. */
static void put_header(str_t *out)
{
	static const unsigned char head[MAILDROP_HEADER_SIZE] = {'P', 'O', 'S', 'T', 'E',
	                                                         'R', 'N', 'M', 0,   1};

	str_append_n(out, head, sizeof(head));
}

static void put_record(str_t *out, char type, const void *data, uint32_t len)
{
	unsigned char h[MAILDROP_RECORD_HEADER_SIZE] = {
	        (unsigned char)type, (unsigned char)(len >> 24), (unsigned char)(len >> 16),
	        (unsigned char)(len >> 8), (unsigned char)len};

	str_append_n(out, h, sizeof(h));
	str_append_n(out, data, len);
}

static void put_end(str_t *out, uint64_t total)
{
	unsigned char t[8];

	for (int i = 7; i >= 0; i--, total >>= 8)
		t[i] = (unsigned char)total;
	put_record(out, 'E', t, 8);
}

static enum maildrop_status check_bytes(const char *dir, const str_t *file, const char *what)
{
	char *path = xasprintf("%s/f", dir);
	struct maildrop *m = NULL;
	enum maildrop_status status;
	str_t error;
	int fd;

	str_init(&error);
	assert_int_equal(fs_write_durable(path, file->buf, file->len, 0600, &error), 0);
	status = open_path(path, 1000, &m, &fd, &error);
	if (status == MAILDROP_CORRUPT && what != NULL && strstr(str_c(&error), what) == NULL)
		fail_msg("expected \"%s\" in \"%s\"", what, str_c(&error));
	maildrop_close(&m);
	close(fd);
	unlink(path);
	free(path);
	str_free(&error);
	return status;
}

static void test_corrupt_table(void **state)
{
	char *dir = make_dir();
	str_t f;
	char big[2 * MAILDROP_FIELD_MAX];

	(void)state;
	str_init(&f);
	memset(big, 'a', sizeof(big));

	/* a valid baseline */
	put_header(&f);
	put_record(&f, 'S', "a", 1);
	put_record(&f, 'R', "b", 1);
	put_record(&f, 'C', "x\n", 2);
	put_end(&f, 2);
	assert_int_equal(check_bytes(dir, &f, NULL), MAILDROP_OK);

	struct {
		const char *what;
		const char *layout; /* interpreted below */
	} cases[] = {
	        {"bad magic", "magic"},
	        {"unsupported version", "version"},
	        {"reserved header", "reserved"},
	        {"first record is not the sender", "rcpt-first"},
	        {"second sender", "two-senders"},
	        {"bad recipient", "empty-rcpt"},
	        {"bad recipient", "ctl-rcpt"},
	        {"bad sender", "nul-sender"},
	        {"envelope record too long", "long-field"},
	        {"bad recipient", "field-over-max"},
	        {"bad attribute", "bad-attr-name"},
	        {"name terminator", "attr-no-nul"},
	        {"unknown record type", "unknown"},
	        {"envelope record after the content", "rcpt-after-content"},
	        {"bad content record length", "empty-content"},
	        {"content length mismatch", "total-mismatch"},
	        {"data after the end record", "trailing"},
	        {"record extends past", "huge-length"},
	        {"bad end record length", "end-short"},
	        {"content before the sender", "content-first"},
	        {"no sender record", "end-only"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *l = cases[i].layout;

		str_reset(&f);
		if (strcmp(l, "magic") == 0) {
			str_append_n(&f, "POSTERNQ\0\1\0\0\0\0\0\0", 16);
		} else if (strcmp(l, "version") == 0) {
			str_append_n(&f, "POSTERNM\0\2\0\0\0\0\0\0", 16);
		} else if (strcmp(l, "reserved") == 0) {
			str_append_n(&f, "POSTERNM\0\1\0\0\0\0\0\1", 16);
		} else {
			put_header(&f);
			if (strcmp(l, "rcpt-first") == 0) {
				put_record(&f, 'R', "b", 1);
			} else if (strcmp(l, "content-first") == 0) {
				put_record(&f, 'C', "x", 1);
			} else if (strcmp(l, "end-only") == 0) {
				put_end(&f, 0);
			} else if (strcmp(l, "nul-sender") == 0) {
				put_record(&f, 'S', "a\0b", 3);
			} else {
				put_record(&f, 'S', "a", 1);
			}
			if (strcmp(l, "two-senders") == 0)
				put_record(&f, 'S', "a", 1);
			else if (strcmp(l, "empty-rcpt") == 0)
				put_record(&f, 'R', "", 0);
			else if (strcmp(l, "ctl-rcpt") == 0)
				put_record(&f, 'R', "b\r\nX: y", 7);
			else if (strcmp(l, "long-field") == 0)
				put_record(&f, 'R', big, 5000);
			else if (strcmp(l, "field-over-max") == 0)
				put_record(&f, 'R', big, MAILDROP_FIELD_MAX + 1);
			else if (strcmp(l, "bad-attr-name") == 0)
				put_record(&f, 'A', "Bad\0v", 5);
			else if (strcmp(l, "attr-no-nul") == 0)
				put_record(&f, 'A', "name", 4);
			else if (strcmp(l, "unknown") == 0)
				put_record(&f, 'Q', "x", 1);
			if (strcmp(l, "empty-content") == 0)
				put_record(&f, 'C', "", 0);
			else if (strcmp(l, "content-first") != 0)
				put_record(&f, 'C', "x\n", 2);
			if (strcmp(l, "rcpt-after-content") == 0)
				put_record(&f, 'R', "b", 1);
			if (strcmp(l, "huge-length") == 0)
				str_append_n(&f, "C\xff\xff\xff\xf0zz", 7);
			if (strcmp(l, "end-short") == 0)
				put_record(&f, 'E', "\0\0\0\0", 4);
			else if (strcmp(l, "total-mismatch") == 0)
				put_end(&f, 3);
			else if (strcmp(l, "content-first") == 0 || strcmp(l, "end-only") == 0)
				; /* nothing more */
			else
				put_end(&f, strcmp(l, "empty-content") == 0 ? 0 : 2);
			if (strcmp(l, "trailing") == 0)
				str_append_c(&f, 'x');
		}
		if (check_bytes(dir, &f, cases[i].what) != MAILDROP_CORRUPT)
			fail_msg("case %s: not refused", l);
	}

	/* too many recipients: the envelope bound holds */
	str_reset(&f);
	put_header(&f);
	put_record(&f, 'S', "a", 1);
	for (size_t n = 0; n < MAILDROP_ENVELOPE_MAX / 4000 + 2; n++)
		put_record(&f, 'R', big, 3995);
	put_end(&f, 0);
	assert_int_equal(check_bytes(dir, &f, "envelope too large"), MAILDROP_CORRUPT);

	/* a directory or FIFO is not a maildrop file */
	{
		struct maildrop *m = NULL;
		str_t error;
		int fd = open(dir, O_RDONLY | O_DIRECTORY);

		str_init(&error);
		assert_int_equal(maildrop_open_fd(fd, 0, &m, &error), MAILDROP_CORRUPT);
		assert_non_null(strstr(str_c(&error), "not a regular file"));
		close(fd);
		str_free(&error);
	}
	str_free(&f);
	remove_dir(&dir);
}

/* The owner rewrites the file after validation: reading notices. */
static void test_changed_while_read(void **state)
{
	const char *rcpts[] = {"b", NULL};
	char *dir = make_dir();
	struct maildrop *m = NULL;
	str_t content, error;
	char buf[MAILDROP_CHUNK_MAX];
	char *path;
	ssize_t n;
	int fd, wfd;

	(void)state;
	str_init(&content);
	str_init(&error);
	for (int i = 0; i < 3 * MAILDROP_CHUNK_MAX / 10; i++)
		str_append(&content, "123456789\n");
	path = write_message(dir, "a", rcpts, content.buf, content.len);
	assert_int_equal(open_path(path, 0, &m, &fd, &error), MAILDROP_OK);
	assert_int_equal(maildrop_read_content(m, buf, sizeof(buf), &error), MAILDROP_CHUNK_MAX);
	/* shorten the file under the reader */
	wfd = open(path, O_WRONLY);
	assert_true(wfd >= 0);
	assert_int_equal(ftruncate(wfd, 100), 0);
	close(wfd);
	n = maildrop_read_content(m, buf, sizeof(buf), &error);
	assert_int_equal(n, MAILDROP_CORRUPT);
	assert_non_null(strstr(str_c(&error), "changed while read"));
	maildrop_close(&m);
	close(fd);
	free(path);
	str_free(&content);
	str_free(&error);
	remove_dir(&dir);
}

static void test_writer_usage(void **state)
{
	char *dir = make_dir();
	struct maildrop_writer *w = NULL;
	str_t error;

	(void)state;
	str_init(&error);
	/* content before the sender, then everything fails (sticky) */
	assert_int_equal(maildrop_writer_open(dir, &w, &error), 0);
	assert_int_equal(count_files(dir), 1);
	assert_int_equal(maildrop_writer_content(w, "x", 1, &error), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(maildrop_writer_sender(w, "a", &error), -1);
	assert_int_equal(maildrop_writer_commit(w, &error), -1);
	maildrop_writer_destroy(&w);
	assert_int_equal(count_files(dir), 0); /* aborted: nothing left */
	maildrop_writer_destroy(&w); /* NULL is fine */

	/* bad text is refused */
	assert_int_equal(maildrop_writer_open(dir, &w, &error), 0);
	assert_int_equal(maildrop_writer_sender(w, "a\nb", &error), -1);
	maildrop_writer_destroy(&w);
	assert_int_equal(maildrop_writer_open(dir, &w, &error), 0);
	assert_int_equal(maildrop_writer_sender(w, "a", &error), 0);
	assert_int_equal(maildrop_writer_attr(w, "Bad-Name", "v", &error), -1);
	maildrop_writer_destroy(&w);
	assert_int_equal(count_files(dir), 0);

	/* a missing directory is an error with errno */
	str_reset(&error);
	assert_int_equal(maildrop_writer_open("/nonexistent/postern", &w, &error), -1);
	assert_int_equal(errno, ENOENT);
	assert_null(w);
	assert_true(error.len > 0);

	assert_true(maildrop_attr_name_valid("full_name"));
	assert_false(maildrop_attr_name_valid(""));
	assert_false(maildrop_text_valid("a\x7f", 2));
	assert_true(maildrop_text_valid("Jo \xc3\xa9", 5));
	str_free(&error);
	remove_dir(&dir);
}

/* Run maildrop_relay() on input (through a pipe, as postdrop reads it)
 * into a file writer in dir; commit when it says MAILDROP_OK. */
static enum maildrop_status relay_bytes(const char *dir, const str_t *input, uint64_t max,
                                        uid_t uid)
{
	struct maildrop_writer *w = NULL;
	enum maildrop_status status;
	char *path = xasprintf("%s/input", dir);
	str_t error;
	int fd;

	str_init(&error);
	/* A regular file reads like a pipe for read(2): sequential, EOF. */
	assert_int_equal(fs_write_durable(path, input->buf, input->len, 0600, &error), 0);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(maildrop_writer_open(dir, &w, &error), 0);
	status = maildrop_relay(fd, w, uid, max, &error);
	if (status == MAILDROP_OK)
		assert_int_equal(maildrop_writer_commit(w, &error), 0);
	maildrop_writer_destroy(&w);
	close(fd);
	str_free(&error);
	free(path);
	return status;
}

/* postdrop's copy: the caller's submit_uid is replaced by the real one,
 * everything else kept; bad framing, a late envelope record, data after
 * the end and a message over the limit leave no file. */
static void test_relay(void **state)
{
	char *dir = make_dir();
	struct maildrop *m = NULL;
	str_t in, error, content;
	DIR *d;
	struct dirent *e;
	char *path = NULL;
	int fd;

	(void)state;
	str_init(&in);
	str_init(&error);
	str_init(&content);
	put_header(&in);
	put_record(&in, 'S', "alice", 5);
	put_record(&in, 'R', "bob@example.org", 15);
	put_record(&in, 'A', "submit_uid\0000", 12);
	put_record(&in, 'A', "login_name\0alice", 16);
	put_record(&in, 'C', "Subject: x\n\nbody\n", 18);
	put_end(&in, 18);
	assert_int_equal(relay_bytes(dir, &in, 0, 1234), MAILDROP_OK);
	assert_int_equal(count_files(dir), 1);
	d = opendir(dir);
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] != '.')
			path = xasprintf("%s/%s", dir, e->d_name);
	}
	closedir(d);
	assert_non_null(path);
	assert_int_equal(open_path(path, 0, &m, &fd, &error), MAILDROP_OK);
	assert_string_equal(maildrop_sender(m), "alice");
	assert_string_equal(maildrop_rcpt(m, 0), "bob@example.org");
	assert_string_equal(maildrop_attr(m, MAILDROP_ATTR_SUBMIT_UID), "1234");
	assert_string_equal(maildrop_attr(m, MAILDROP_ATTR_LOGIN), "alice");
	{
		size_t pos = 0, n = 0;
		const char *name, *value;

		while (maildrop_attr_next(m, &pos, &name, &value))
			n += strcmp(name, MAILDROP_ATTR_SUBMIT_UID) == 0;
		assert_int_equal(n, 1); /* the claimed one is gone */
	}
	read_all(m, &content);
	assert_string_equal(str_c(&content), "Subject: x\n\nbody\n");
	maildrop_close(&m);
	close(fd);
	assert_int_equal(unlink(path), 0);
	free(path);

	/* Over the limit, truncated, trailing data, envelope after content. */
	assert_int_equal(relay_bytes(dir, &in, 10, 1234), MAILDROP_TOO_BIG);
	in.len -= 3;
	assert_int_equal(relay_bytes(dir, &in, 0, 1234), MAILDROP_CORRUPT);
	in.len += 3;
	str_append(&in, "x");
	assert_int_equal(relay_bytes(dir, &in, 0, 1234), MAILDROP_CORRUPT);
	str_reset(&in);
	put_header(&in);
	put_record(&in, 'S', "alice", 5);
	put_record(&in, 'C', "x\n", 2);
	put_record(&in, 'R', "bob@example.org", 15);
	put_end(&in, 2);
	assert_int_equal(relay_bytes(dir, &in, 0, 1234), MAILDROP_CORRUPT);
	assert_int_equal(count_files(dir), 0);

	str_free(&in);
	str_free(&error);
	str_free(&content);
	remove_dir(&dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_round_trip),
	        cmocka_unit_test(test_minimal),
	        cmocka_unit_test(test_truncated_everywhere),
	        cmocka_unit_test(test_corrupt_table),
	        cmocka_unit_test(test_changed_while_read),
	        cmocka_unit_test(test_writer_usage),
	        cmocka_unit_test(test_relay),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
