/* test_hash.c - unit tests for lib/base/hash and lib/base/fs: insertion,
 * replacement with value destructor, deletion, growth past many buckets,
 * full iteration; durable write replaces atomically and leaves no
 * temporary file; bounded reads refuse oversized files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "base/fs.h"
#include "base/hash.h"
#include "base/mem.h"
#include "base/str.h"

static int freed;

static void count_free(void *p)
{
	freed++;
	free(p);
}

static void test_hash_basic(void **state)
{
	hash_t *h = hash_new(count_free);

	(void)state;
	freed = 0;
	hash_put(h, "a", xstrdup("1"));
	hash_put(h, "b", xstrdup("2"));
	hash_put(h, "a", xstrdup("3")); /* replaces, frees the old value */
	assert_int_equal(freed, 1);
	assert_string_equal(hash_get(h, "a"), "3");
	assert_null(hash_get(h, "c"));
	assert_true(hash_delete(h, "b"));
	assert_false(hash_delete(h, "b"));
	assert_int_equal(hash_count(h), 1);
	hash_destroy(&h);
	assert_null(h);
	assert_int_equal(freed, 3);
	hash_destroy(&h);
}

static void test_hash_growth_and_iteration(void **state)
{
	hash_t *h = hash_new(NULL);
	size_t pos = 0, seen = 0;
	const char *key;
	void *value;
	char buf[32];

	(void)state;
	for (long i = 0; i < 50000; i++) {
		snprintf(buf, sizeof(buf), "key%ld", i);
		hash_put(h, buf, (void *)(i + 1));
	}
	assert_int_equal(hash_count(h), 50000);
	for (long i = 0; i < 50000; i += 997) {
		snprintf(buf, sizeof(buf), "key%ld", i);
		assert_true(hash_get(h, buf) == (void *)(i + 1));
	}
	while (hash_next(h, &pos, &key, &value)) {
		assert_true(strncmp(key, "key", 3) == 0);
		seen++;
	}
	assert_int_equal(seen, 50000);
	hash_destroy(&h);
}

static void test_fs_durable_write(void **state)
{
	char dir[] = "/tmp/postern-test-fs-XXXXXX";
	char *path;
	str_t error, text;
	struct stat st;
	DIR *d;
	struct dirent *de;
	int entries = 0;

	(void)state;
	assert_non_null(mkdtemp(dir));
	path = xasprintf("%s/main.cf", dir);
	str_init(&error);
	str_init(&text);
	assert_int_equal(fs_write_durable(path, "one\n", 4, 0640, &error), 0);
	assert_int_equal(fs_write_durable(path, "two\n", 4, 0600, &error), 0);
	assert_int_equal(fs_read_file(path, 100, &text, &error), 0);
	assert_string_equal(str_c(&text), "two\n");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	d = opendir(dir);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			entries++;
	closedir(d);
	assert_int_equal(entries, 1); /* no temporary file left */
	str_reset(&text);
	assert_int_equal(fs_read_file(path, 3, &text, &error), -1);
	assert_non_null(strstr(str_c(&error), "larger than 3 bytes"));
	str_reset(&error);
	assert_int_equal(fs_write_durable("/nonexistent-dir/x", "x", 1, 0600, &error), -1);
	assert_non_null(strstr(str_c(&error), "create /nonexistent-dir/x.tmp."));
	unlink(path);
	rmdir(dir);
	free(path);
	str_free(&error);
	str_free(&text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_hash_basic),
	        cmocka_unit_test(test_hash_growth_and_iteration),
	        cmocka_unit_test(test_fs_durable_write),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
