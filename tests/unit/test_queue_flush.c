/* test_queue_flush.c - unit tests for lib/queue/queue_flush: which
 * recipient is in which domain (a table), a domain flush that makes only
 * that domain's recipients due and moves only the messages that have
 * one, a whole flush, done recipients left alone, a message that
 * vanished or is corrupt, and requeue's queue_reschedule. */
#include "queue_test.h"

#include <time.h>

#include "queue/queue_file.h"
#include "queue/queue_flush.h"

#define MASK_DEFAULT ((1u << QUEUE_DEFERRED) | (1u << QUEUE_DEFER_LOG))
#define LATER ((time_t)4000000000) /* a retry time far ahead */

static void test_rcpt_in(void **state)
{
	static const struct {
		const char *address;
		bool in;
	} cases[] = {
	        {"a@example.com", true},   {"a@EXAMPLE.com", true},
	        {"a@b@example.net", true}, {"a@sub.example.com", false},
	        {"a@xexample.com", false}, {"a@example.com.", false},
	        {"example.com", false},    {"a@", false},
	        {"a@[192.0.2.1]", true},   {"a@example.org", false},
	};
	strv_t domains = STRV_INIT;

	(void)state;
	strv_add(&domains, "example.com");
	strv_add(&domains, "example.net");
	strv_add(&domains, "[192.0.2.1]");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (queue_flush_rcpt_in(cases[i].address, &domains) != cases[i].in)
			fail_msg("%s: expected %s", cases[i].address, cases[i].in ? "in" : "out");
	strv_free(&domains);
}

/* A deferred message to rcpts (NULL-terminated), every one of them
 * deferred until LATER; the first done_index recipients, when >= 0, one
 * of them delivered. */
static void write_deferred(struct qtest *t, const char *const *rcpts, int done_index,
                           char id[QUEUE_ID_SIZE])
{
	static const char body[] = "Subject: hi\r\n\r\nbody\r\n";
	struct queue_rcpt_status later = {.state = QUEUE_RCPT_DEFERRED, .next_retry = LATER},
	                         done = {.state = QUEUE_RCPT_DELIVERED};
	struct queue_writer *w;
	struct queue_file *f;
	size_t n = 0;
	str_t error;

	str_init(&error);
	assert_int_equal(queue_writer_open(t->qd, &w, &error), 0);
	memcpy(id, queue_writer_id(w), QUEUE_ID_SIZE);
	assert_int_equal(queue_writer_sender(w, "s@example.org", &error), 0);
	for (; rcpts[n] != NULL; n++)
		assert_int_equal(queue_writer_rcpt(w, rcpts[n], NULL, 0, &error), 0);
	assert_int_equal(queue_writer_content(w, body, sizeof(body) - 1, &error), 0);
	if (queue_writer_commit(w, QUEUE_INCOMING, &error) < 0)
		fail_msg("commit: %s", str_c(&error));
	queue_writer_destroy(&w);
	assert_int_equal(queue_dir_move(t->qd, id, QUEUE_INCOMING, QUEUE_DEFERRED, &error), 0);
	assert_int_equal(queue_file_open(t->qd, QUEUE_DEFERRED, id, QUEUE_FILE_RDWR, &f, &error),
	                 QUEUE_FILE_OK);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(queue_file_update_rcpt(f, i, (int)i == done_index ? &done : &later,
		                                        false, &error),
		                 0);
	assert_int_equal(queue_file_sync(f, &error), 0);
	queue_file_close(&f);
	str_free(&error);
}

/* The queue holding id, and each recipient's next retry in retry[]. */
static enum queue_name where(struct qtest *t, const char *id, time_t retry[], size_t n)
{
	enum queue_name q;
	struct queue_file *f;
	struct queue_rcpt r;
	str_t error;

	str_init(&error);
	assert_int_equal(queue_dir_find(t->qd, id, &q, NULL, &error), 1);
	assert_int_equal(queue_file_open(t->qd, q, id, 0, &f, &error), QUEUE_FILE_OK);
	assert_int_equal(queue_file_envelope(f)->rcpt_count, n);
	queue_rcpt_init(&r);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(queue_file_read_rcpt(f, i, &r, &error), QUEUE_FILE_OK);
		retry[i] = r.status.next_retry;
	}
	queue_rcpt_free(&r);
	queue_file_close(&f);
	str_free(&error);
	return q;
}

static void test_flush_domain_then_all(void **state)
{
	static const char *const m1[] = {"a@example.com", NULL};
	static const char *const m2[] = {"b@example.net", "c@EXAMPLE.COM", NULL};
	static const char *const m3[] = {"d@example.net", NULL};
	static const char *const m4[] = {"e@example.com", "f@example.net", NULL}; /* e done */
	struct qtest *t = qtest_new(1, MASK_DEFAULT);
	char id1[QUEUE_ID_SIZE], id2[QUEUE_ID_SIZE], id3[QUEUE_ID_SIZE], id4[QUEUE_ID_SIZE];
	struct queue_flush_result r;
	strv_t domains = STRV_INIT;
	time_t retry[2], now;
	str_t error;

	(void)state;
	str_init(&error);
	write_deferred(t, m1, -1, id1);
	write_deferred(t, m2, -1, id2);
	write_deferred(t, m3, -1, id3);
	write_deferred(t, m4, 0, id4);
	strv_add(&domains, "Example.COM");
	now = time(NULL);
	assert_int_equal(queue_flush(t->qd, &domains, &r, &error), 0);
	assert_int_equal(r.moved, 2);
	assert_int_equal(r.failed, 0);
	assert_int_equal(where(t, id1, retry, 1), QUEUE_INCOMING);
	assert_true(retry[0] >= now && retry[0] <= time(NULL));
	/* Only the recipient in the domain is due; the other keeps its time. */
	assert_int_equal(where(t, id2, retry, 2), QUEUE_INCOMING);
	assert_int_equal(retry[0], LATER);
	assert_true(retry[1] <= time(NULL));
	assert_int_equal(where(t, id3, retry, 1), QUEUE_DEFERRED);
	assert_int_equal(retry[0], LATER);
	/* e@example.com is done: nothing pending in the domain, not moved. */
	assert_int_equal(where(t, id4, retry, 2), QUEUE_DEFERRED);
	assert_int_equal(retry[1], LATER);

	/* A second flush finds nothing more for the domain. */
	assert_int_equal(queue_flush(t->qd, &domains, &r, &error), 0);
	assert_int_equal(r.moved, 0);

	/* Everything deferred. */
	assert_int_equal(queue_flush(t->qd, NULL, &r, &error), 0);
	assert_int_equal(r.moved, 2);
	assert_int_equal(where(t, id3, retry, 1), QUEUE_INCOMING);
	assert_true(retry[0] <= time(NULL));
	assert_int_equal(where(t, id4, retry, 2), QUEUE_INCOMING);
	assert_true(retry[1] <= time(NULL));
	strv_free(&domains);
	str_free(&error);
	qtest_destroy(&t);
}

static void test_gone_and_corrupt(void **state)
{
	static const char *const m[] = {"a@example.com", NULL};
	struct qtest *t = qtest_new(1, MASK_DEFAULT);
	char id[QUEUE_ID_SIZE], bad[QUEUE_ID_SIZE];
	struct queue_flush_result r;
	str_t error, path, aside;
	FILE *fp;

	(void)state;
	str_init(&error);
	str_init(&path);
	str_init(&aside);
	/* A message that vanished: ENOENT, no failure. */
	assert_int_equal(queue_reschedule(t->qd, QUEUE_DEFERRED, "4Zb2Lk0FqK01Tm", NULL, &error),
	                 -1);
	assert_int_equal(errno, ENOENT);
	/* A corrupt file is counted as failed; the others are flushed. */
	write_deferred(t, m, -1, id);
	write_deferred(t, m, -1, bad);
	queue_dir_path(t->qd, QUEUE_DEFERRED, bad, &path);
	fp = fopen(str_c(&path), "w");
	assert_non_null(fp);
	fputs("POSTERNQ but not a queue file", fp);
	fclose(fp);
	assert_int_equal(queue_flush(t->qd, NULL, &r, &error), 0);
	assert_int_equal(r.moved, 1);
	assert_int_equal(r.failed, 1);
	/* requeue's form: any queue, every recipient. */
	str_reset(&error);
	assert_int_equal(queue_reschedule(t->qd, QUEUE_INCOMING, id, NULL, &error), 1);
	/* A deferred/ that cannot be scanned fails the flush. */
	assert_int_equal(queue_dir_remove(t->qd, QUEUE_DEFERRED, bad, &error), 0);
	str_set(&path, t->root);
	str_append(&path, "/deferred");
	str_set(&aside, str_c(&path));
	str_append(&aside, ".aside");
	assert_int_equal(rename(str_c(&path), str_c(&aside)), 0);
	str_reset(&error);
	assert_int_equal(queue_flush(t->qd, NULL, &r, &error), -1);
	assert_true(error.len > 0);
	assert_int_equal(rename(str_c(&aside), str_c(&path)), 0);
	str_free(&aside);
	str_free(&path);
	str_free(&error);
	qtest_destroy(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_rcpt_in),
	        cmocka_unit_test(test_flush_domain_then_all),
	        cmocka_unit_test(test_gone_and_corrupt),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
