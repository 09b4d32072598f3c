/* test_queue_file.c - unit tests for lib/queue/queue_file and queue_log:
 * a writer -> reader round trip with many recipients, DSN data, client
 * attributes, recipients after the content and a large body streamed in
 * uneven pieces; bounded memory while streaming 50 MB; in-place recipient
 * status updates that survive a reopen; a writer killed before commit
 * leaves only a temporary file that cleanup removes; a file cut at every
 * byte offset is refused as corrupt; a table of malformed files, each
 * refused with the file name and offset; a full disk (file-size limit)
 * gives ENOSPC-class errors, a 452 reply and no file; status logs. */
#include "queue_test.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "queue/queue_file.h"
#include "queue/queue_id.h"
#include "queue/queue_log.h"

#define MASK_DEFAULT ((1u << QUEUE_DEFERRED) | (1u << QUEUE_DEFER_LOG))

/* Deterministic content with NULs, CR, LF and every byte value. */
static unsigned char content_byte(uint64_t i)
{
	return (unsigned char)((i * 2654435761u) >> 13);
}

static char *rcpt_addr(size_t i)
{
	return xasprintf("user%zu@example%zu.com", i, i % 7);
}

static void test_round_trip(void **state)
{
	struct qtest *t = qtest_new(1, MASK_DEFAULT);
	struct queue_writer *w;
	struct queue_file *f;
	const struct queue_envelope *env;
	struct queue_rcpt r;
	str_t error;
	const size_t nrcpt = 300;
	const uint64_t total = 6 * 1024 * 1024 + 123;
	unsigned char *piece = xmalloc(100000), *back = xmalloc(7777);
	char id[QUEUE_ID_SIZE];
	uint64_t done = 0, step = 1;

	(void)state;
	str_init(&error);
	assert_int_equal(queue_writer_open(t->qd, &w, &error), 0);
	memcpy(id, queue_writer_id(w), sizeof(id));
	assert_true(queue_id_valid(id));
	assert_int_equal(queue_writer_sender(w, "sender@example.org", &error), 0);
	assert_int_equal(queue_writer_dsn(w, "envid+2B1", QUEUE_RET_HDRS, &error), 0);
	assert_int_equal(queue_writer_attr(w, QUEUE_ATTR_CLIENT_NAME, "mail.example.org", &error),
	                 0);
	assert_int_equal(queue_writer_attr(w, QUEUE_ATTR_CLIENT_ADDRESS, "192.0.2.7", &error), 0);
	assert_int_equal(queue_writer_attr(w, QUEUE_ATTR_CLIENT_PORT, "54321", &error), 0);
	assert_int_equal(queue_writer_attr(w, QUEUE_ATTR_HELO_NAME, "[192.0.2.7]", &error), 0);
	assert_int_equal(queue_writer_attr(w, QUEUE_ATTR_PROTOCOL, "ESMTPSA", &error), 0);
	assert_int_equal(queue_writer_attr(w, QUEUE_ATTR_SASL_METHOD, "PLAIN", &error), 0);
	assert_int_equal(queue_writer_attr(w, QUEUE_ATTR_SASL_USERNAME, "", &error), 0);
	for (size_t i = 0; i < nrcpt; i++) {
		char *a = rcpt_addr(i), *o = xasprintf("rfc822;%s", a);

		assert_int_equal(
		        queue_writer_rcpt(w, a, i % 2 ? NULL : o, (unsigned)(i % 16), &error), 0);
		free(a);
		free(o);
	}
	while (done < total) {
		uint64_t n = step % 99991 + 1;

		if (n > total - done)
			n = total - done;
		for (uint64_t k = 0; k < n; k++)
			piece[k] = content_byte(done + k);
		assert_int_equal(queue_writer_content(w, piece, (size_t)n, &error), 0);
		done += n;
		step = step * 31 + 7;
	}
	assert_int_equal(queue_writer_content_size(w), total);
	/* recipients found after the content (sendmail -t) */
	assert_int_equal(queue_writer_rcpt(w, "tail1@example.net", NULL, 0, &error), 0);
	assert_int_equal(queue_writer_attr(w, QUEUE_ATTR_SERVICE, "submission", &error), 0);
	assert_int_equal(queue_writer_rcpt(w, "tail2@example.net", "rfc822;x@y", 0, &error), 0);
	/* the content has ended */
	assert_int_equal(queue_writer_content(w, "x", 1, &error), -1);
	assert_int_equal(errno, EINVAL);
	/* not visible before the commit */
	assert_int_equal(qtest_count_files(t, "incoming"), 1); /* tmp.ID */
	assert_int_equal(queue_writer_commit(w, QUEUE_INCOMING, &error), 0);
	queue_writer_destroy(&w);
	assert_null(w);
	{
		strv_t files = STRV_INIT;
		char *dir = xasprintf("%s/incoming", t->root);

		qtest_list_files(dir, "", &files);
		assert_int_equal(files.n, 1);
		assert_string_equal(files.v[0], id);
		strv_free(&files);
		free(dir);
	}
	str_reset(&error);
	assert_int_equal(queue_file_open(t->qd, QUEUE_INCOMING, id, 0, &f, &error), QUEUE_FILE_OK);
	env = queue_file_envelope(f);
	assert_string_equal(env->id, id);
	assert_string_equal(env->sender, "sender@example.org");
	assert_string_equal(env->envid, "envid+2B1");
	assert_int_equal(env->ret, QUEUE_RET_HDRS);
	assert_int_equal(env->rcpt_count, nrcpt + 2);
	assert_int_equal(env->content_length, total);
	{
		struct timeval tv;

		assert_int_equal(queue_id_time(id, &tv), 0);
		assert_int_equal(env->arrival.tv_sec, tv.tv_sec);
		assert_int_equal(env->arrival.tv_usec, tv.tv_usec);
	}
	assert_string_equal(queue_file_attr(f, QUEUE_ATTR_CLIENT_NAME), "mail.example.org");
	assert_string_equal(queue_file_attr(f, QUEUE_ATTR_CLIENT_ADDRESS), "192.0.2.7");
	assert_string_equal(queue_file_attr(f, QUEUE_ATTR_CLIENT_PORT), "54321");
	assert_string_equal(queue_file_attr(f, QUEUE_ATTR_HELO_NAME), "[192.0.2.7]");
	assert_string_equal(queue_file_attr(f, QUEUE_ATTR_PROTOCOL), "ESMTPSA");
	assert_string_equal(queue_file_attr(f, QUEUE_ATTR_SASL_USERNAME), "");
	assert_string_equal(queue_file_attr(f, QUEUE_ATTR_SERVICE), "submission");
	assert_null(queue_file_attr(f, "nonexistent"));
	{
		size_t pos = 0, n = 0;
		const char *name, *value;

		while (queue_file_attr_next(f, &pos, &name, &value))
			n++;
		assert_int_equal(n, 8);
	}
	queue_rcpt_init(&r);
	for (size_t i = 0; i < nrcpt; i++) {
		char *a = rcpt_addr(i), *o = xasprintf("rfc822;%s", a);

		assert_int_equal(queue_file_read_rcpt(f, i, &r, &error), QUEUE_FILE_OK);
		assert_int_equal(r.index, i);
		assert_string_equal(str_c(&r.address), a);
		assert_string_equal(str_c(&r.orcpt), i % 2 ? "" : o);
		assert_int_equal(r.notify, i % 16);
		assert_int_equal(r.status.state, QUEUE_RCPT_PENDING);
		free(a);
		free(o);
	}
	assert_int_equal(queue_file_read_rcpt(f, nrcpt, &r, &error), QUEUE_FILE_OK);
	assert_string_equal(str_c(&r.address), "tail1@example.net");
	assert_int_equal(queue_file_read_rcpt(f, nrcpt + 1, &r, &error), QUEUE_FILE_OK);
	assert_string_equal(str_c(&r.orcpt), "rfc822;x@y");
	assert_int_equal(queue_file_read_rcpt(f, nrcpt + 2, &r, &error), QUEUE_FILE_ERROR);
	queue_rcpt_free(&r);
	for (done = 0;;) {
		ssize_t n = queue_file_read_content(f, done, back, 7777, &error);

		assert_true(n >= 0);
		if (n == 0)
			break;
		for (ssize_t k = 0; k < n; k++)
			if (back[k] != content_byte(done + (uint64_t)k))
				fail_msg("content differs at byte %llu",
				         (unsigned long long)(done + (uint64_t)k));
		done += (uint64_t)n;
	}
	assert_int_equal(done, total);
	queue_file_close(&f);
	assert_null(f);
	free(piece);
	free(back);
	str_free(&error);
	qtest_destroy(&t);
}

/* Write a message of the given size in 64 KB pieces in a child and report
 * how much its peak memory grew. */
static void test_streaming_memory(void **state)
{
	struct qtest *t = qtest_new(1, MASK_DEFAULT);
	int fds[2];
	pid_t pid;
	long growth_kb = -1;
	int status;

	(void)state;
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct queue_writer *w;
		struct rusage before, after;
		static unsigned char piece[65536];
		str_t error;
		long growth = -1;

		str_init(&error);
		memset(piece, 'a', sizeof(piece));
		getrusage(RUSAGE_SELF, &before);
		if (queue_writer_open(t->qd, &w, &error) == 0 &&
		    queue_writer_sender(w, "", &error) == 0 &&
		    queue_writer_rcpt(w, "big@example.com", NULL, 0, &error) == 0) {
			int ok = 1;

			for (int i = 0; i < 50 * 16 && ok; i++)
				ok = queue_writer_content(w, piece, sizeof(piece), &error) == 0;
			if (ok && queue_writer_commit(w, QUEUE_INCOMING, &error) == 0) {
				getrusage(RUSAGE_SELF, &after);
				growth = after.ru_maxrss - before.ru_maxrss;
			}
			queue_writer_destroy(&w);
		}
		if (write(fds[1], &growth, sizeof(growth)) != sizeof(growth))
			_exit(2);
		_exit(0);
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], &growth_kb, sizeof(growth_kb)), sizeof(growth_kb));
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(growth_kb >= 0);
	/* 50 MB went through; memory grew by far less than that */
	if (growth_kb > 8 * 1024)
		fail_msg("writing 50 MB grew the peak memory by %ld KB", growth_kb);
	{
		struct queue_stats st;
		str_t error;

		str_init(&error);
		assert_int_equal(queue_dir_stats(t->qd, QUEUE_INCOMING, &st, &error), 0);
		assert_int_equal(st.count, 1);
		assert_true(st.bytes > 50u * 1024 * 1024);
		str_free(&error);
	}
	qtest_destroy(&t);
}

/* A small committed message; its ID in id. */
static void write_small(struct qtest *t, enum queue_name queue, size_t nrcpt,
                        char id[QUEUE_ID_SIZE])
{
	struct queue_writer *w;
	str_t error;
	static const char body[] = "Received: from x\r\nSubject: hi\r\n\r\nbody\r\n";

	str_init(&error);
	assert_int_equal(queue_writer_open(t->qd, &w, &error), 0);
	memcpy(id, queue_writer_id(w), QUEUE_ID_SIZE);
	assert_int_equal(queue_writer_sender(w, "s@example.com", &error), 0);
	for (size_t i = 0; i < nrcpt; i++) {
		char *a = rcpt_addr(i);

		assert_int_equal(queue_writer_rcpt(w, a, NULL, QUEUE_NOTIFY_FAILURE, &error), 0);
		free(a);
	}
	assert_int_equal(queue_writer_content(w, body, sizeof(body) - 1, &error), 0);
	if (queue_writer_commit(w, queue, &error) < 0)
		fail_msg("commit: %s", str_c(&error));
	queue_writer_destroy(&w);
	str_free(&error);
}

static void test_status_in_place(void **state)
{
	struct qtest *t = qtest_new(1, MASK_DEFAULT);
	struct queue_file *f;
	struct queue_rcpt r;
	struct queue_rcpt_status done = {.state = QUEUE_RCPT_DELIVERED, .changed = 1700000000},
	                         later = {.state = QUEUE_RCPT_DEFERRED,
	                                  .flags = QUEUE_RCPT_F_DELAY_WARNED,
	                                  .attempts = 3,
	                                  .next_retry = 1700003600,
	                                  .changed = 1700000001},
	                         gone = {.state = QUEUE_RCPT_BOUNCED, .attempts = 70000};
	char id[QUEUE_ID_SIZE];
	str_t error, text;

	(void)state;
	str_init(&error);
	str_init(&text);
	queue_rcpt_init(&r);
	write_small(t, QUEUE_INCOMING, 10, id);
	assert_int_equal(queue_dsn_parse("2.0.0", &done.dsn), 0);
	assert_int_equal(queue_dsn_parse("4.4.1", &later.dsn), 0);
	assert_int_equal(queue_dsn_parse("5.1.1", &gone.dsn), 0);
	/* read-only handles refuse updates */
	assert_int_equal(queue_file_open(t->qd, QUEUE_INCOMING, id, 0, &f, &error), QUEUE_FILE_OK);
	assert_int_equal(queue_file_update_rcpt(f, 0, &done, true, &error), -1);
	assert_int_equal(errno, EINVAL);
	queue_file_close(&f);
	assert_int_equal(queue_file_open(t->qd, QUEUE_INCOMING, id, QUEUE_FILE_RDWR, &f, &error),
	                 QUEUE_FILE_OK);
	assert_int_equal(queue_file_update_rcpt(f, 5, &done, true, &error), 0);
	assert_int_equal(queue_file_update_rcpt(f, 7, &later, false, &error), 0);
	assert_int_equal(queue_file_update_rcpt(f, 9, &gone, false, &error), 0);
	assert_int_equal(queue_file_sync(f, &error), 0);
	assert_int_equal(queue_file_update_rcpt(f, 10, &done, true, &error), -1);
	/* the same handle sees its own updates */
	assert_int_equal(queue_file_read_rcpt(f, 7, &r, &error), QUEUE_FILE_OK);
	assert_int_equal(r.status.state, QUEUE_RCPT_DEFERRED);
	queue_file_close(&f);
	/* and a fresh open after close: still a valid, complete file */
	assert_int_equal(queue_file_open(t->qd, QUEUE_INCOMING, id, 0, &f, &error), QUEUE_FILE_OK);
	for (size_t i = 0; i < 10; i++) {
		assert_int_equal(queue_file_read_rcpt(f, i, &r, &error), QUEUE_FILE_OK);
		switch (i) {
		case 5:
			assert_int_equal(r.status.state, QUEUE_RCPT_DELIVERED);
			assert_true(queue_rcpt_state_final(r.status.state));
			queue_dsn_format(&r.status.dsn, &text);
			assert_string_equal(str_c(&text), "2.0.0");
			assert_int_equal(r.status.changed, 1700000000);
			break;
		case 7:
			assert_int_equal(r.status.state, QUEUE_RCPT_DEFERRED);
			assert_false(queue_rcpt_state_final(r.status.state));
			assert_int_equal(r.status.flags, QUEUE_RCPT_F_DELAY_WARNED);
			assert_int_equal(r.status.attempts, 3);
			assert_int_equal(r.status.next_retry, 1700003600);
			queue_dsn_format(&r.status.dsn, &text);
			assert_string_equal(str_c(&text), "4.4.1");
			break;
		case 9:
			assert_int_equal(r.status.state, QUEUE_RCPT_BOUNCED);
			assert_int_equal(r.status.attempts, 65535); /* saturates */
			break;
		default:
			assert_int_equal(r.status.state, QUEUE_RCPT_PENDING);
		}
		assert_int_equal(r.notify, QUEUE_NOTIFY_FAILURE);
	}
	assert_string_equal(queue_rcpt_state_str(QUEUE_RCPT_BOUNCED), "bounced");
	queue_file_close(&f);
	queue_rcpt_free(&r);
	str_free(&error);
	str_free(&text);
	qtest_destroy(&t);
}

static void test_killed_writer(void **state)
{
	struct qtest *t = qtest_new(1, MASK_DEFAULT);
	char id[QUEUE_ID_SIZE] = "";
	int fds[2], status;
	pid_t pid;

	(void)state;
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct queue_writer *w;
		static char piece[100000];
		str_t error;

		str_init(&error);
		if (queue_writer_open(t->qd, &w, &error) < 0 ||
		    queue_writer_sender(w, "a@b", &error) < 0 ||
		    queue_writer_rcpt(w, "c@d", NULL, 0, &error) < 0 ||
		    queue_writer_content(w, piece, sizeof(piece), &error) < 0)
			_exit(1);
		if (write(fds[1], queue_writer_id(w), QUEUE_ID_SIZE) != QUEUE_ID_SIZE)
			_exit(1);
		kill(getpid(), SIGKILL); /* crash before commit */
		_exit(1);
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], id, QUEUE_ID_SIZE), QUEUE_ID_SIZE);
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	{
		strv_t files = STRV_INIT;
		char *dir = xasprintf("%s/incoming", t->root), *tmp = xasprintf("tmp.%s", id);
		struct queue_scan *scan;
		enum queue_name q;
		const char *got;
		unsigned removed;
		str_t error;

		str_init(&error);
		qtest_list_files(dir, "", &files);
		assert_int_equal(files.n, 1);
		assert_string_equal(files.v[0], tmp);
		/* no queue holds the message, and no scan returns it */
		assert_int_equal(queue_dir_find(t->qd, id, &q, NULL, &error), 0);
		assert_int_equal(queue_scan_open(t->qd, QUEUE_INCOMING, 0, &scan, &error), 0);
		assert_int_equal(queue_scan_next(scan, &got, &error), 0);
		queue_scan_close(&scan);
		/* a recent temporary file is left to a possibly live writer */
		assert_int_equal(queue_dir_cleanup(t->qd, 3600, &removed, &error), 0);
		assert_int_equal(removed, 0);
		assert_int_equal(queue_dir_cleanup(t->qd, 0, &removed, &error), 0);
		assert_int_equal(removed, 1);
		assert_int_equal(qtest_count_files(t, "incoming"), 0);
		strv_free(&files);
		free(dir);
		free(tmp);
		str_free(&error);
	}
	qtest_destroy(&t);
}

static void test_abort_and_usage(void **state)
{
	struct qtest *t = qtest_new(1, MASK_DEFAULT);
	struct queue_writer *w;
	str_t error;

	(void)state;
	str_init(&error);
	/* destroy before commit removes the temporary file */
	assert_int_equal(queue_writer_open(t->qd, &w, &error), 0);
	assert_int_equal(queue_writer_sender(w, "a@b", &error), 0);
	assert_int_equal(queue_writer_content(w, "x", 1, &error), 0);
	assert_int_equal(qtest_count_files(t, "incoming"), 1);
	queue_writer_destroy(&w);
	assert_int_equal(qtest_count_files(t, "incoming"), 0);
	queue_writer_destroy(&w); /* no-op on NULL */

	assert_int_equal(queue_writer_open(t->qd, &w, &error), 0);
	assert_int_equal(queue_writer_commit(w, QUEUE_INCOMING, &error), -1); /* no sender */
	assert_int_equal(errno, EINVAL);
	assert_int_equal(queue_writer_sender(w, "a@b", &error), 0);
	assert_int_equal(queue_writer_sender(w, "a@b", &error), -1);
	assert_int_equal(queue_writer_commit(w, QUEUE_INCOMING, &error), -1); /* no rcpt */
	assert_int_equal(queue_writer_rcpt(w, "", NULL, 0, &error), -1);
	assert_int_equal(queue_writer_rcpt(w, "x@y", NULL, 0x100, &error), -1);
	assert_int_equal(queue_writer_attr(w, "Bad-Name", "v", &error), -1);
	assert_int_equal(queue_writer_rcpt(w, "x@y", NULL, 0, &error), 0);
	assert_int_equal(queue_writer_commit(w, QUEUE_DEFERRED, &error), -1);
	str_reset(&error);
	/* an empty body is still a message; hold is a valid target */
	assert_int_equal(queue_writer_commit(w, QUEUE_HOLD, &error), 0);
	assert_int_equal(queue_writer_commit(w, QUEUE_HOLD, &error), -1);
	queue_writer_destroy(&w);
	assert_int_equal(qtest_count_files(t, "incoming"), 0);
	assert_int_equal(qtest_count_files(t, "hold"), 1);
	str_free(&error);
	qtest_destroy(&t);
}

static char *read_whole(const char *path, size_t *len_r)
{
	str_t text, error;

	str_init(&text);
	str_init(&error);
	if (fs_read_file(path, 1 << 20, &text, &error) < 0)
		fail_msg("%s", str_c(&error));
	str_free(&error);
	*len_r = text.len;
	{
		char *data = str_steal(&text);

		str_free(&text); /* str_steal leaves a fresh empty buffer */
		return data;
	}
}

static void write_bytes(const char *path, const void *data, size_t len)
{
	str_t error;

	str_init(&error);
	if (fs_write_durable(path, data, len, 0600, &error) < 0)
		fail_msg("%s", str_c(&error));
	str_free(&error);
}

static void expect_corrupt(const char *path, const char *what)
{
	struct queue_file *f = NULL;
	str_t error;
	enum queue_file_status st;

	str_init(&error);
	st = queue_file_open_path(path, 0, &f, &error);
	if (st != QUEUE_FILE_CORRUPT)
		fail_msg("%s: status %d, want corrupt (%s)", what, st, str_c(&error));
	assert_null(f);
	if (strstr(str_c(&error), path) == NULL ||
	    strstr(str_c(&error), "corrupt queue file at offset") == NULL)
		fail_msg("%s: message \"%s\" lacks file or offset", what, str_c(&error));
	str_free(&error);
}

static void test_truncated_everywhere(void **state)
{
	struct qtest *t = qtest_new(1, MASK_DEFAULT);
	char id[QUEUE_ID_SIZE], *src, *data, *cut = NULL;
	size_t len;

	(void)state;
	write_small(t, QUEUE_INCOMING, 2, id);
	src = xasprintf("%s/incoming/%s", t->root, id);
	data = read_whole(src, &len);
	assert_true(len > 100);
	cut = xasprintf("%s/corrupt/%s", t->root, id);
	for (size_t n = 0; n < len; n++) {
		char what[32];

		snprintf(what, sizeof(what), "cut at %zu", n);
		write_bytes(cut, data, n);
		expect_corrupt(cut, what);
	}
	/* a byte too many is damage too */
	{
		char *more = xmalloc(len + 1);

		memcpy(more, data, len);
		more[len] = '\n';
		write_bytes(cut, more, len + 1);
		expect_corrupt(cut, "one byte appended");
		free(more);
	}
	/* and the whole file is fine */
	{
		struct queue_file *f;
		str_t error;

		str_init(&error);
		write_bytes(cut, data, len);
		assert_int_equal(queue_file_open_path(cut, 0, &f, &error), QUEUE_FILE_OK);
		assert_string_equal(queue_file_envelope(f)->id, id);
		queue_file_close(&f);
		str_free(&error);
	}
	free(src);
	free(data);
	free(cut);
	qtest_destroy(&t);
}

/* Build a queue file from a layout string, one character per record:
 * T S E N A R X Z: valid records of those types (X also writes the content)
 * o: an optional record of an unknown type ('q'), U: an unknown critical
 * type ('Q'), 0: sender with a NUL, 9: recipient with state 9, n: recipient
 * with unknown NOTIFY bits, L: a record whose length is 2^31, M: attribute
 * with a bad name, e: recipient with an empty address, x: end-of-envelope
 * with a payload, l: recipient whose ORCPT length overruns, z: complete
 * with a wrong size, D: recipient with DSN class 3. */
static void build(str_t *out, const char *layout)
{
	static const char content[] = "Subject: t\r\n\r\nbody\r\n";
	uint64_t content_off = QUEUE_FILE_HEADER_SIZE, clen = 0;

	str_reset(out);
	str_append_n(out, QUEUE_FILE_MAGIC, 8);
	str_append_n(out, "\0\1\0\0\0\0\0\0", 8);
	str_append_n(out, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16);
	for (const char *p = layout; *p; p++) {
		str_t pl;
		char type = *p;
		uint32_t len;
		unsigned char head[5];

		str_init(&pl);
		switch (*p) {
		case 'T':
			str_append_n(&pl, "\0\0\0\0\x65\x53\xf1\x00\0\0\0\x07", 12);
			break;
		case 'S':
			str_append(&pl, "s@example.com");
			break;
		case '0':
			type = 'S';
			str_append_n(&pl, "s@ex\0ample.com", 14);
			break;
		case 'E':
			str_append(&pl, "envid");
			break;
		case 'N':
			str_append(&pl, "F");
			break;
		case 'A':
			str_append_n(&pl, "helo_name\0host", 14);
			break;
		case 'M':
			type = 'A';
			str_append_n(&pl, "Bad-Name\0host", 13);
			break;
		case 'R':
		case '9':
		case 'n':
		case 'e':
		case 'l':
		case 'D': {
			unsigned char slot[QUEUE_STATUS_SLOT_SIZE + 3] = {0};
			const char *addr = *p == 'e' ? "" : "r@example.com";
			size_t alen = strlen(addr);

			type = 'R';
			if (*p == '9')
				slot[0] = 9;
			if (*p == 'D')
				slot[20] = 3;
			slot[QUEUE_STATUS_SLOT_SIZE] = *p == 'n' ? 0x10 : 0;
			slot[QUEUE_STATUS_SLOT_SIZE + 1] = 0;
			slot[QUEUE_STATUS_SLOT_SIZE + 2] = (unsigned char)alen;
			str_append_n(&pl, slot, sizeof(slot));
			str_append(&pl, addr);
			str_append_n(&pl, *p == 'l' ? "\0\x40" : "\0\0", 2);
			break;
		}
		case 'X':
		case 'x':
			type = 'X';
			if (*p == 'x')
				str_append_c(&pl, '!');
			break;
		case 'o':
			type = 'q';
			str_append(&pl, "from the future");
			break;
		case 'U':
			type = 'Q';
			str_append(&pl, "critical");
			break;
		case 'Z':
		case 'z':
			type = 'Z';
			str_append_n(&pl, "\0\0\0\0\0\0\0\0", 8);
			break;
		}
		len = *p == 'L' ? 0x80000000u : (uint32_t)pl.len;
		head[0] = (unsigned char)(*p == 'L' ? 'S' : type);
		head[1] = (unsigned char)(len >> 24);
		head[2] = (unsigned char)(len >> 16);
		head[3] = (unsigned char)(len >> 8);
		head[4] = (unsigned char)len;
		str_append_n(out, head, 5);
		if (type == 'Z') {
			uint64_t size = out->len + 8 + (*p == 'z' ? 1 : 0);

			for (int i = 7; i >= 0; i--)
				str_append_c(out, (char)(size >> (8 * i)));
		} else {
			str_append_n(out, pl.buf, pl.len);
		}
		if (type == 'X') {
			content_off = out->len;
			clen = sizeof(content) - 1;
			str_append(out, content);
		}
		str_free(&pl);
	}
	for (int i = 0; i < 8; i++) {
		out->buf[16 + i] = (char)(content_off >> (8 * (7 - i)));
		out->buf[24 + i] = (char)(clen >> (8 * (7 - i)));
	}
}

static void test_corrupt_table(void **state)
{
	static const struct {
		const char *layout;
		bool valid;
		const char *why; /* part of the message */
	} cases[] = {
	        {"TSRXZ", true, NULL},
	        {"TSENARXAZ", true, NULL},
	        {"ToSRXoRZ", true, NULL}, /* optional records are skipped */
	        {"TSRZ", false, "complete marker before the content"},
	        {"TSRX", false, "ends before the complete marker"},
	        {"SRXZ", false, "first record is not the arrival time"},
	        {"TTSRXZ", false, "arrival time given twice"},
	        {"TRXZ", false, "no sender record"},
	        {"TSXZ", false, "no recipient records"},
	        {"TSSRXZ", false, "sender repeated"},
	        {"TSRXSZ", false, "sender repeated or out of place"},
	        {"TSRXEZ", false, "ENVID repeated or out of place"},
	        {"TSNNRXZ", false, "RET repeated"},
	        {"TSURXZ", false, "unknown record type 0x51"},
	        {"T0RXZ", false, "bad sender record"},
	        {"TS9XZ", false, "unknown state"},
	        {"TSDXZ", false, "bad DSN class"},
	        {"TSnXZ", false, "NOTIFY"},
	        {"TSeXZ", false, "address length"},
	        {"TSlXZ", false, "ORCPT length"},
	        {"TSLRXZ", false, "exceeds"},
	        {"TSMRXZ", false, "bad attribute record"},
	        {"TSRxZ", false, "bad or repeated end-of-envelope"},
	        {"TSRXXZ", false, "end-of-envelope"},
	        {"TSRXz", false, "does not match the complete marker"},
	        {"TSRXZZ", false, "does not match the complete marker"},
	};
	struct qtest *t = qtest_new(1, MASK_DEFAULT);
	char *path = xasprintf("%s/corrupt/case", t->root);
	str_t data, error;

	(void)state;
	str_init(&data);
	str_init(&error);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct queue_file *f = NULL;
		enum queue_file_status st;

		build(&data, cases[i].layout);
		write_bytes(path, data.buf, data.len);
		str_reset(&error);
		st = queue_file_open_path(path, 0, &f, &error);
		if (cases[i].valid) {
			if (st != QUEUE_FILE_OK)
				fail_msg("%s: %s", cases[i].layout, str_c(&error));
			assert_string_equal(queue_file_envelope(f)->sender, "s@example.com");
			queue_file_close(&f);
			continue;
		}
		if (st != QUEUE_FILE_CORRUPT || strstr(str_c(&error), cases[i].why) == NULL ||
		    strstr(str_c(&error), path) == NULL)
			fail_msg("%s: status %d, message \"%s\", want corrupt with \"%s\"",
			         cases[i].layout, st, str_c(&error), cases[i].why);
	}
	/* header damage on a valid file */
	{
		static const struct {
			size_t at;
			char byte;
			const char *why;
		} hits[] = {
		        {0, 1, "bad magic"},
		        {9, 2, "unsupported queue file version 3"},
		        {12, 1, "reserved header"},
		        {23, 1, "content does not start"},
		        {24, 1, "content range"},
		        {31, 1, "corrupt queue file"},
		        {32, 'T' ^ 'S', "first record is not"},
		};

		for (size_t i = 0; i < sizeof(hits) / sizeof(hits[0]); i++) {
			struct queue_file *f = NULL;

			build(&data, "TSRXZ");
			data.buf[hits[i].at] ^= hits[i].byte;
			write_bytes(path, data.buf, data.len);
			str_reset(&error);
			if (queue_file_open_path(path, 0, &f, &error) != QUEUE_FILE_CORRUPT ||
			    strstr(str_c(&error), hits[i].why) == NULL)
				fail_msg("byte %zu: \"%s\", want \"%s\"", hits[i].at, str_c(&error),
				         hits[i].why);
		}
	}
	/* not a regular file; a missing file is a system error, not corrupt */
	{
		struct queue_file *f = NULL;
		char *dir = xasprintf("%s/hold", t->root), *none = xasprintf("%s/none", t->root);

		str_reset(&error);
		assert_int_equal(queue_file_open_path(dir, 0, &f, &error), QUEUE_FILE_CORRUPT);
		str_reset(&error);
		assert_int_equal(queue_file_open_path(none, 0, &f, &error), QUEUE_FILE_ERROR);
		assert_int_equal(errno, ENOENT);
		assert_non_null(strstr(str_c(&error), none));
		str_reset(&error);
		assert_int_equal(
		        queue_file_open(t->qd, QUEUE_HOLD, "../../etc/pass", 0, &f, &error),
		        QUEUE_FILE_ERROR);
		assert_non_null(strstr(str_c(&error), "not a valid queue ID"));
		free(dir);
		free(none);
	}
	free(path);
	str_free(&data);
	str_free(&error);
	qtest_destroy(&t);
}

/* In a child with RLIMIT_FSIZE = limit, write a message of size bytes;
 * the child exits 0 when every call behaved as a full disk should. */
static int full_disk_child(struct qtest *t, rlim_t limit, size_t size)
{
	struct rlimit rl = {limit, limit};
	struct queue_writer *w;
	static char piece[10000];
	str_t error;
	int failed_errno = 0;

	/* Why this and not a full tmpfs: mounting needs privileges a test
	 * may not have; a file-size limit gives EFBIG at a chosen size, on
	 * any file system, deterministically. */
	signal(SIGXFSZ, SIG_IGN);
	if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
		return 10;
	str_init(&error);
	if (queue_writer_open(t->qd, &w, &error) < 0)
		return errno == EFBIG ? 0 : 11;
	if (queue_writer_sender(w, "a@b", &error) < 0 ||
	    queue_writer_rcpt(w, "c@d", NULL, 0, &error) < 0)
		failed_errno = errno;
	for (size_t done = 0; done < size && failed_errno == 0; done += sizeof(piece))
		if (queue_writer_content(w, piece, sizeof(piece), &error) < 0)
			failed_errno = errno;
	if (failed_errno != 0) {
		/* sticky: the rest fails the same way */
		if (queue_writer_content(w, "x", 1, &error) == 0 || errno != failed_errno)
			return 12;
	}
	if (queue_writer_commit(w, QUEUE_INCOMING, &error) == 0)
		return 13;
	if (failed_errno == 0)
		failed_errno = errno;
	if (failed_errno != EFBIG || !queue_error_is_resource(failed_errno))
		return 14;
	if (strcmp(queue_error_reply(failed_errno), "452 4.3.1 Insufficient system storage") != 0)
		return 15;
	if (strstr(str_c(&error), "incoming/tmp.") == NULL)
		return 16;
	queue_writer_destroy(&w);
	return 0;
}

static void test_full_disk(void **state)
{
	static const struct {
		rlim_t limit;
		size_t size;
	} cases[] = {{10, 1000}, {1000, 1000}, {20000, 30000}, {65536, 300000}, {200000, 300000}};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct qtest *t = qtest_new(1, MASK_DEFAULT);
		pid_t pid = fork();
		int status;

		assert_true(pid >= 0);
		if (pid == 0)
			_exit(full_disk_child(t, cases[i].limit, cases[i].size));
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fail_msg("limit %lu, size %zu: child status %d",
			         (unsigned long)cases[i].limit, cases[i].size, status);
		/* no partial file, no temporary file */
		assert_int_equal(qtest_count_files(t, "incoming"), 0);
		qtest_destroy(&t);
	}
}

static void test_error_helpers(void **state)
{
	struct queue_dsn dsn;
	str_t text;
	static const char *const bad[] = {"",         "4",      "4.",     "4.4",
	                                  "4.4.",     "3.1.1",  "44.1.1", "4.1000.1",
	                                  "4.1.1000", "4.1.1 ", "a.b.c",  "4..1"};

	(void)state;
	str_init(&text);
	assert_true(queue_error_is_resource(ENOSPC));
	assert_true(queue_error_is_resource(EDQUOT));
	assert_true(queue_error_is_resource(EFBIG));
	assert_false(queue_error_is_resource(EIO));
	assert_false(queue_error_is_resource(EACCES));
	assert_string_equal(queue_error_reply(ENOSPC), "452 4.3.1 Insufficient system storage");
	assert_string_equal(queue_error_reply(EIO), "451 4.3.0 Error: queue file write error");
	assert_int_equal(queue_dsn_parse("5.7.1", &dsn), 0);
	queue_dsn_format(&dsn, &text);
	assert_string_equal(str_c(&text), "5.7.1");
	assert_int_equal(queue_dsn_parse("4.999.999", &dsn), 0);
	queue_dsn_format(&dsn, &text);
	assert_string_equal(str_c(&text), "4.999.999");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (queue_dsn_parse(bad[i], &dsn) == 0)
			fail_msg("\"%s\" accepted as a DSN code", bad[i]);
	str_free(&text);
}

static void test_status_log(void **state)
{
	struct qtest *t = qtest_new(1, MASK_DEFAULT);
	struct queue_log *log;
	const struct queue_log_entry *e;
	char id[QUEUE_ID_SIZE];
	str_t error, path;
	struct queue_log_entry add = {.rcpt_index = 0,
	                              .state = QUEUE_RCPT_DEFERRED,
	                              .when = 1700000000,
	                              .next_retry = 1700000300,
	                              .reason = "connect to mx.example.com[192.0.2.1]:25: "
	                                        "Connection refused"};

	(void)state;
	str_init(&error);
	str_init(&path);
	write_small(t, QUEUE_INCOMING, 3, id);
	assert_int_equal(queue_dir_move(t->qd, id, QUEUE_INCOMING, QUEUE_DEFERRED, &error), 0);
	/* no log yet: empty */
	assert_int_equal(queue_log_load(t->qd, id, &log, &error), 0);
	assert_null(queue_log_get(log, 0));
	queue_log_destroy(&log);
	assert_int_equal(queue_dsn_parse("4.4.1", &add.dsn), 0);
	assert_int_equal(queue_log_append(t->qd, id, &add, false, &error), 0);
	add.rcpt_index = 2;
	add.reason = "host mx.example.net said: 452 mailbox full";
	assert_int_equal(queue_log_append(t->qd, id, &add, false, &error), 0);
	add.rcpt_index = 0;
	add.state = QUEUE_RCPT_BOUNCED;
	add.next_retry = 0;
	add.reason = "host mx.example.com said: 550 5.1.1 no such user";
	assert_int_equal(queue_dsn_parse("5.1.1", &add.dsn), 0);
	assert_int_equal(queue_log_append(t->qd, id, &add, true, &error), 0);
	assert_int_equal(queue_log_load(t->qd, id, &log, &error), 0);
	assert_int_equal(queue_log_entries(log), 3);
	e = queue_log_get(log, 0);
	assert_non_null(e);
	assert_int_equal(e->state, QUEUE_RCPT_BOUNCED);
	assert_string_equal(e->reason, "host mx.example.com said: 550 5.1.1 no such user");
	assert_int_equal(e->dsn.klass, 5);
	e = queue_log_get(log, 2);
	assert_non_null(e);
	assert_int_equal(e->state, QUEUE_RCPT_DEFERRED);
	assert_int_equal(e->next_retry, 1700000300);
	assert_int_equal(e->when, 1700000000);
	assert_null(queue_log_get(log, 1));
	queue_log_destroy(&log);
	assert_null(log);
	/* a crash in the middle of an append: the cut entry is ignored */
	assert_int_equal(queue_dir_locate(t->qd, QUEUE_DEFER_LOG, id, &path, &error), 1);
	{
		struct stat st;

		assert_int_equal(stat(str_c(&path), &st), 0);
		assert_int_equal(truncate(str_c(&path), st.st_size - 5), 0);
	}
	assert_int_equal(queue_log_load(t->qd, id, &log, &error), 0);
	assert_int_equal(queue_log_entries(log), 2);
	assert_int_equal(queue_log_get(log, 0)->state, QUEUE_RCPT_DEFERRED);
	queue_log_destroy(&log);
	/* a damaged header is an error naming the file */
	write_bytes(str_c(&path), "garbage garbage garbage", 23);
	str_reset(&error);
	assert_int_equal(queue_log_load(t->qd, id, &log, &error), -1);
	assert_non_null(strstr(str_c(&error), str_c(&path)));
	str_free(&error);
	str_free(&path);
	qtest_destroy(&t);
}

/* Final-address records: one recipient's alias targets done one by one. */
static void test_status_log_finals(void **state)
{
	struct qtest *t = qtest_new(1, MASK_DEFAULT);
	struct queue_log *log;
	char id[QUEUE_ID_SIZE];
	str_t error;
	struct queue_log_entry add = {
	        .rcpt_index = 1, .state = QUEUE_RCPT_DEFERRED, .reason = "bob is away"};

	(void)state;
	str_init(&error);
	write_small(t, QUEUE_INCOMING, 3, id);
	assert_int_equal(queue_log_append_final(t->qd, id, 1, QUEUE_RCPT_DELIVERED,
	                                        "alice@example.com", false, &error),
	                 0);
	assert_int_equal(queue_log_append(t->qd, id, &add, false, &error), 0);
	assert_int_equal(queue_log_append_final(t->qd, id, 2, QUEUE_RCPT_BOUNCED,
	                                        "ghost@example.com", true, &error),
	                 0);
	/* Only final states, a non-empty address. */
	assert_int_equal(
	        queue_log_append_final(t->qd, id, 1, QUEUE_RCPT_DEFERRED, "x@y", false, &error),
	        -1);
	assert_int_equal(
	        queue_log_append_final(t->qd, id, 1, QUEUE_RCPT_DELIVERED, "", false, &error), -1);
	assert_int_equal(queue_log_load(t->qd, id, &log, &error), 0);
	assert_int_equal(queue_log_final_state(log, 1, "alice@example.com"), QUEUE_RCPT_DELIVERED);
	assert_int_equal(queue_log_final_state(log, 2, "ghost@example.com"), QUEUE_RCPT_BOUNCED);
	/* Another recipient's index or another address: not done. */
	assert_int_equal(queue_log_final_state(log, 2, "alice@example.com"), QUEUE_RCPT_PENDING);
	assert_int_equal(queue_log_final_state(log, 1, "bob@example.com"), QUEUE_RCPT_PENDING);
	/* The deferral reason is read alongside. */
	assert_string_equal(queue_log_get(log, 1)->reason, "bob is away");
	assert_int_equal(queue_log_entries(log), 3);
	queue_log_destroy(&log);
	str_free(&error);
	qtest_destroy(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_round_trip),
	        cmocka_unit_test(test_streaming_memory),
	        cmocka_unit_test(test_status_in_place),
	        cmocka_unit_test(test_killed_writer),
	        cmocka_unit_test(test_abort_and_usage),
	        cmocka_unit_test(test_truncated_everywhere),
	        cmocka_unit_test(test_corrupt_table),
	        cmocka_unit_test(test_full_disk),
	        cmocka_unit_test(test_error_helpers),
	        cmocka_unit_test(test_status_log),
	        cmocka_unit_test(test_status_log_finals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
