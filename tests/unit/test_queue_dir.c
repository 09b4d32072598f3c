/* test_queue_dir.c - unit tests for lib/queue/queue_dir: the tree is created
 * with its modes; hash_queue_names parsing; hashed paths; moves between
 * queues (and refusals: missing file, name clash); finding a message in
 * any queue and at any hash depth; unordered and ordered scans that return
 * every message once (ordered ones in arrival order, also with a tiny
 * window that forces many passes) and skip temporary and stray files;
 * per-queue counts and sizes; cleanup of stale temporary files; removal
 * with the status log. */
#include "queue_test.h"

#include <sys/time.h>

#include "base/hash.h"
#include "queue/queue_id.h"
#include "queue/queue_log.h"

#define MASK_DEFAULT ((1u << QUEUE_DEFERRED) | (1u << QUEUE_DEFER_LOG))

static void make_id(unsigned n, char id[QUEUE_ID_SIZE])
{
	/* spread over seconds and microseconds so hash characters vary */
	struct timeval tv = {1700000000 + (time_t)(n * 7919 % 5000),
	                     (suseconds_t)(n * 104729u % 1000000u)};

	queue_id_make(&tv, (pid_t)(1000 + n), id);
}

/* Put a message file with some bytes into queue where it belongs. */
static void put_message(struct qtest *t, enum queue_name queue, const char *id, size_t size)
{
	str_t path, error;
	char *data = xmalloc(size + 1);

	str_init(&path);
	str_init(&error);
	memset(data, 'x', size);
	assert_int_equal(queue_dir_prepare(t->qd, queue, id, &error), 0);
	queue_dir_path(t->qd, queue, id, &path);
	assert_int_equal(fs_write_durable(str_c(&path), data, size, 0600, &error), 0);
	free(data);
	str_free(&path);
	str_free(&error);
}

static void test_create_tree(void **state)
{
	struct qtest *t = qtest_new(1, MASK_DEFAULT);
	str_t error;

	(void)state;
	str_init(&error);
	for (int q = 0; q < QUEUE_NAME_COUNT; q++) {
		char *dir = xasprintf("%s/%s", t->root, queue_name_str((enum queue_name)q));
		struct stat st;

		assert_int_equal(stat(dir, &st), 0);
		assert_true(S_ISDIR(st.st_mode));
		assert_int_equal(st.st_mode & 07777, QUEUE_DIR_MODE);
		assert_int_equal(chmod(dir, 0700), 0);
		free(dir);
	}
	/* idempotent, and it repairs modes */
	assert_int_equal(queue_dir_create(t->qd, (uid_t)-1, (gid_t)-1, &error), 0);
	{
		char *dir = xasprintf("%s/hold", t->root);
		struct stat st;

		assert_int_equal(stat(dir, &st), 0);
		assert_int_equal(st.st_mode & 07777, QUEUE_DIR_MODE);
		free(dir);
	}
	/* as root, owner is set (to ourselves here: works as non-root too) */
	assert_int_equal(queue_dir_create(t->qd, getuid(), getgid(), &error), 0);
	str_free(&error);
	qtest_destroy(&t);
}

static void test_queue_names(void **state)
{
	unsigned mask;
	enum queue_name q;
	str_t error;

	(void)state;
	str_init(&error);
	assert_int_equal(queue_dir_hash_names(QUEUE_HASH_NAMES_DEFAULT, &mask, &error), 0);
	assert_int_equal(mask, MASK_DEFAULT);
	assert_int_equal(queue_dir_hash_names("bounce, trace flush", &mask, &error), 0);
	assert_int_equal(mask, 1u << QUEUE_DEFER_LOG);
	assert_int_equal(queue_dir_hash_names("", &mask, &error), 0);
	assert_int_equal(mask, 0);
	assert_int_equal(queue_dir_hash_names("incoming, active, hold, corrupt", &mask, &error), 0);
	assert_int_equal(mask, (1u << QUEUE_INCOMING) | (1u << QUEUE_ACTIVE) | (1u << QUEUE_HOLD) |
	                               (1u << QUEUE_CORRUPT));
	assert_int_equal(queue_dir_hash_names("deferred, spool", &mask, &error), -1);
	assert_non_null(strstr(str_c(&error), "unknown queue \"spool\""));
	assert_int_equal(queue_name_parse("deferred", &q), 0);
	assert_int_equal(q, QUEUE_DEFERRED);
	assert_int_equal(queue_name_parse("Deferred", &q), -1);
	assert_string_equal(queue_name_str(QUEUE_HOLD), "hold");
	str_free(&error);
}

static void test_paths(void **state)
{
	struct qtest *t = qtest_new(2, MASK_DEFAULT);
	const char *id = "4Zb2Lk0Fqx01Tm";
	str_t path;
	char *want;

	(void)state;
	str_init(&path);
	queue_dir_path(t->qd, QUEUE_DEFERRED, id, &path);
	want = xasprintf("%s/deferred/x/q/%s", t->root, id);
	assert_string_equal(str_c(&path), want);
	free(want);
	queue_dir_path(t->qd, QUEUE_INCOMING, id, &path);
	want = xasprintf("%s/incoming/%s", t->root, id);
	assert_string_equal(str_c(&path), want);
	free(want);
	queue_dir_temp_path(t->qd, id, &path);
	want = xasprintf("%s/incoming/tmp.%s", t->root, id);
	assert_string_equal(str_c(&path), want);
	free(want);
	str_free(&path);
	qtest_destroy(&t);
}

static void test_move_and_find(void **state)
{
	struct qtest *t = qtest_new(1, (1u << QUEUE_NAME_COUNT) - 1);
	char id[QUEUE_ID_SIZE], other[QUEUE_ID_SIZE];
	enum queue_name q;
	str_t error, path;

	(void)state;
	str_init(&error);
	str_init(&path);
	make_id(1, id);
	make_id(2, other);
	assert_int_equal(queue_dir_find(t->qd, id, &q, NULL, &error), 0);
	put_message(t, QUEUE_INCOMING, id, 10);
	assert_int_equal(queue_dir_find(t->qd, id, &q, &path, &error), 1);
	assert_int_equal(q, QUEUE_INCOMING);
	assert_int_equal(access(str_c(&path), F_OK), 0);
	static const enum queue_name route[] = {QUEUE_ACTIVE, QUEUE_DEFERRED, QUEUE_ACTIVE,
	                                        QUEUE_HOLD,   QUEUE_DEFERRED, QUEUE_CORRUPT};
	enum queue_name at = QUEUE_INCOMING;
	for (size_t i = 0; i < sizeof(route) / sizeof(route[0]); i++) {
		assert_int_equal(queue_dir_move(t->qd, id, at, route[i], &error), 0);
		at = route[i];
		assert_int_equal(queue_dir_find(t->qd, id, &q, NULL, &error), 1);
		assert_int_equal(q, at);
		for (int k = 0; k < QUEUE_MESSAGE_QUEUES; k++)
			assert_int_equal(qtest_count_files(t, queue_name_str((enum queue_name)k)),
			                 k == (int)at ? 1 : 0);
	}
	/* not there */
	str_reset(&error);
	assert_int_equal(queue_dir_move(t->qd, other, QUEUE_HOLD, QUEUE_ACTIVE, &error), -1);
	assert_int_equal(errno, ENOENT);
	assert_non_null(strstr(str_c(&error), "not in the hold queue"));
	/* never replaces: the same ID in two queues is refused */
	put_message(t, QUEUE_ACTIVE, id, 3);
	str_reset(&error);
	assert_int_equal(queue_dir_move(t->qd, id, QUEUE_ACTIVE, QUEUE_CORRUPT, &error), -1);
	assert_int_equal(errno, EEXIST);
	assert_int_equal(qtest_count_files(t, "active"), 1);
	assert_int_equal(qtest_count_files(t, "corrupt"), 1);
	str_free(&error);
	str_free(&path);
	qtest_destroy(&t);
}

static void test_find_after_rehash(void **state)
{
	struct qtest *t = qtest_new(2, MASK_DEFAULT);
	struct queue_dir *flat = queue_dir_new(t->root, 1, 0);
	char id[QUEUE_ID_SIZE];
	enum queue_name q;
	str_t error, path;

	(void)state;
	str_init(&error);
	str_init(&path);
	make_id(7, id);
	put_message(t, QUEUE_DEFERRED, id, 5); /* at depth 2 */
	assert_int_equal(queue_dir_find(flat, id, &q, &path, &error), 1);
	assert_int_equal(q, QUEUE_DEFERRED);
	assert_int_equal(queue_dir_locate(flat, QUEUE_DEFERRED, id, &path, &error), 1);
	/* a move under the new setting puts it where that setting says */
	assert_int_equal(queue_dir_move(flat, id, QUEUE_DEFERRED, QUEUE_ACTIVE, &error), 0);
	assert_int_equal(queue_dir_move(flat, id, QUEUE_ACTIVE, QUEUE_DEFERRED, &error), 0);
	queue_dir_path(flat, QUEUE_DEFERRED, id, &path);
	assert_int_equal(access(str_c(&path), F_OK), 0);
	queue_dir_destroy(&flat);
	str_free(&error);
	str_free(&path);
	qtest_destroy(&t);
}

#define SCAN_N 600

static void scan_all(struct qtest *t, unsigned flags, size_t window, strv_t *out)
{
	struct queue_scan *scan;
	const char *id;
	str_t error;
	int rc;

	str_init(&error);
	assert_int_equal(queue_scan_open(t->qd, QUEUE_DEFERRED, flags, &scan, &error), 0);
	if (window > 0)
		queue_scan_set_window(scan, window);
	while ((rc = queue_scan_next(scan, &id, &error)) != 0) {
		if (rc < 0)
			fail_msg("scan: %s", str_c(&error));
		strv_add(out, id);
	}
	queue_scan_close(&scan);
	assert_null(scan);
	str_free(&error);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_scans(void **state)
{
	struct qtest *t = qtest_new(2, MASK_DEFAULT);
	strv_t want = STRV_INIT;
	static const size_t windows[] = {0, 1, 7, SCAN_N - 1, SCAN_N, SCAN_N + 1};
	char id[QUEUE_ID_SIZE];

	(void)state;
	for (unsigned i = 0; i < SCAN_N; i++) {
		make_id(i, id);
		put_message(t, QUEUE_DEFERRED, id, 1);
		strv_add(&want, id);
	}
	/* strays a scan must skip: temporary files, junk, a deep directory,
	 * a file named like an ID that is a directory */
	qtest_touch(t, "deferred/tmp.4Zb2Lk0Fqx01Tm", "");
	qtest_touch(t, "deferred/README", "x");
	make_id(SCAN_N + 1, id);
	{
		char *d = xasprintf("%s/deferred/%s", t->root, id);

		assert_int_equal(mkdir(d, 0700), 0);
		free(d);
	}
	qsort(want.v, want.n, sizeof(char *), cmp_str);
	{
		strv_t got = STRV_INIT;
		hash_t *seen = hash_new(NULL);

		scan_all(t, 0, 0, &got);
		assert_int_equal(got.n, SCAN_N);
		for (size_t i = 0; i < got.n; i++) {
			assert_false(hash_contains(seen, got.v[i]));
			hash_put(seen, got.v[i], NULL);
		}
		for (size_t i = 0; i < want.n; i++)
			assert_true(hash_contains(seen, want.v[i]));
		hash_destroy(&seen);
		strv_free(&got);
	}
	for (size_t w = 0; w < sizeof(windows) / sizeof(windows[0]); w++) {
		strv_t got = STRV_INIT;

		scan_all(t, QUEUE_SCAN_ORDERED, windows[w], &got);
		if (got.n != SCAN_N)
			fail_msg("window %zu: %zu IDs, want %d", windows[w], got.n, SCAN_N);
		for (size_t i = 0; i < got.n; i++)
			assert_string_equal(got.v[i], want.v[i]);
		strv_free(&got);
	}
	strv_free(&want);
	qtest_destroy(&t);
}

static void test_scan_missing_and_empty(void **state)
{
	struct qtest *t = qtest_new(1, MASK_DEFAULT);
	struct queue_dir *nowhere = queue_dir_new("/nonexistent/postern", 1, 0);
	struct queue_scan *scan;
	const char *id;
	str_t error;

	(void)state;
	str_init(&error);
	assert_int_equal(queue_scan_open(t->qd, QUEUE_HOLD, QUEUE_SCAN_ORDERED, &scan, &error), 0);
	assert_int_equal(queue_scan_next(scan, &id, &error), 0);
	assert_int_equal(queue_scan_next(scan, &id, &error), 0);
	queue_scan_close(&scan);
	assert_int_equal(queue_scan_open(nowhere, QUEUE_HOLD, 0, &scan, &error), -1);
	assert_int_equal(errno, ENOENT);
	assert_non_null(strstr(str_c(&error), "/nonexistent/postern/hold"));
	queue_dir_destroy(&nowhere);
	str_free(&error);
	qtest_destroy(&t);
}

static void test_stats(void **state)
{
	struct qtest *t = qtest_new(1, MASK_DEFAULT);
	struct queue_stats st;
	char id[QUEUE_ID_SIZE];
	str_t error;

	(void)state;
	str_init(&error);
	for (unsigned i = 0; i < 40; i++) {
		make_id(i, id);
		put_message(t, i % 2 ? QUEUE_DEFERRED : QUEUE_HOLD, id, 100 + i);
	}
	qtest_touch(t, "deferred/tmp.junk", "not counted");
	assert_int_equal(queue_dir_stats(t->qd, QUEUE_DEFERRED, &st, &error), 0);
	assert_int_equal(st.count, 20);
	assert_int_equal(st.bytes, 20 * 100 + (1 + 3 + 5 + 7 + 9 + 11 + 13 + 15 + 17 + 19 + 21 +
	                                       23 + 25 + 27 + 29 + 31 + 33 + 35 + 37 + 39));
	assert_int_equal(queue_dir_stats(t->qd, QUEUE_HOLD, &st, &error), 0);
	assert_int_equal(st.count, 20);
	assert_int_equal(queue_dir_stats(t->qd, QUEUE_ACTIVE, &st, &error), 0);
	assert_int_equal(st.count, 0);
	assert_int_equal(st.bytes, 0);
	str_free(&error);
	qtest_destroy(&t);
}

static void test_cleanup(void **state)
{
	struct qtest *t = qtest_new(1, MASK_DEFAULT);
	char id[QUEUE_ID_SIZE];
	unsigned removed;
	str_t error;
	char *old_path = NULL;
	struct timeval times[2] = {{1000000000, 0}, {1000000000, 0}};

	(void)state;
	str_init(&error);
	make_id(3, id);
	put_message(t, QUEUE_INCOMING, id, 10);
	qtest_touch(t, "incoming/tmp.old", "partial");
	qtest_touch(t, "incoming/tmp.new", "partial");
	old_path = xasprintf("%s/incoming/tmp.old", t->root);
	assert_int_equal(utimes(old_path, times), 0);
	assert_int_equal(queue_dir_cleanup(t->qd, 3600, &removed, &error), 0);
	assert_int_equal(removed, 1);
	assert_int_equal(access(old_path, F_OK), -1);
	assert_int_equal(qtest_count_files(t, "incoming"), 2);
	assert_int_equal(queue_dir_cleanup(t->qd, 0, &removed, &error), 0);
	assert_int_equal(removed, 1);
	assert_int_equal(qtest_count_files(t, "incoming"), 1); /* the message stays */
	free(old_path);
	str_free(&error);
	qtest_destroy(&t);
}

static void test_remove(void **state)
{
	struct qtest *t = qtest_new(1, MASK_DEFAULT);
	struct queue_log_entry e = {.rcpt_index = 0,
	                            .state = QUEUE_RCPT_DEFERRED,
	                            .reason = "connect to example.com: Connection refused"};
	char id[QUEUE_ID_SIZE];
	str_t error;

	(void)state;
	str_init(&error);
	make_id(9, id);
	put_message(t, QUEUE_DEFERRED, id, 10);
	assert_int_equal(queue_log_append(t->qd, id, &e, false, &error), 0);
	assert_int_equal(qtest_count_files(t, "defer"), 1);
	assert_int_equal(queue_dir_remove(t->qd, QUEUE_HOLD, id, &error), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(queue_dir_remove(t->qd, QUEUE_DEFERRED, id, &error), 0);
	assert_int_equal(qtest_count_files(t, "deferred"), 0);
	assert_int_equal(qtest_count_files(t, "defer"), 0);
	str_free(&error);
	qtest_destroy(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_create_tree),
	        cmocka_unit_test(test_queue_names),
	        cmocka_unit_test(test_paths),
	        cmocka_unit_test(test_move_and_find),
	        cmocka_unit_test(test_find_after_rehash),
	        cmocka_unit_test(test_scans),
	        cmocka_unit_test(test_scan_missing_and_empty),
	        cmocka_unit_test(test_stats),
	        cmocka_unit_test(test_cleanup),
	        cmocka_unit_test(test_remove),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
