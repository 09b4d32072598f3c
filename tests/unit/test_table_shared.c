/* test_table_shared.c - unit tests for lib/table/table_shared (answers of
 * remote tables shared between processes through a mapped file) and its
 * use by table_cache: answers one process stored are seen by another
 * (a forked child here), found and not found, within a maximum age; a
 * full bucket loses its oldest answer; answers too large for a slot,
 * hostile file contents, a writer killed mid-write and a symlink in the
 * file's place are handled; a cache whose backend fails serves what
 * another cache stored, marked stale. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/str.h"
#include "base/strv.h"
#include "table/table.h"
#include "table/table_cache.h"
#include "table/table_shared.h"

#define SPEC "mysql:/etc/postern/virtual_mailboxes.cf"
#define NOW 1800000000u

struct fixture {
	char dir[64];
	strv_t warnings;
};

static void log_hook(enum log_level level, const char *text, void *ctx)
{
	struct fixture *f = ctx;

	if (level == LOG_LEVEL_WARNING)
		strv_add(&f->warnings, text);
}

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/postern-test-shared-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	log_set_hook(log_hook, f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char *cmd = xasprintf("rm -rf '%s'", f->dir);

	log_set_hook(NULL, NULL);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	strv_free(&f->warnings);
	free(f);
	return 0;
}

/* get() at NOW with a one-hour bound; the value into v. */
static bool get(struct table_shared *s, const char *key, enum table_status *st, str_t *v)
{
	uint64_t age;

	return table_shared_get(s, SPEC, key, NOW, 3600, st, v, &age);
}

static void store_found(struct table_shared *s, const char *key, const char *value, uint64_t when)
{
	table_shared_store(s, SPEC, key, TABLE_FOUND, value, strlen(value), when);
}

static void test_store_and_get(void **state)
{
	struct fixture *f = *state;
	struct table_shared *s = table_shared_open(f->dir, 1024);
	enum table_status st;
	uint64_t age;
	str_t v;

	str_init(&v);
	assert_non_null(s);
	assert_false(get(s, "alice@example.com", &st, &v));
	store_found(s, "alice@example.com", "example.com/alice/", NOW - 10);
	table_shared_store(s, SPEC, "nobody@example.com", TABLE_NOTFOUND, NULL, 0, NOW - 5);
	/* A temporary failure is never stored. */
	table_shared_store(s, SPEC, "tmp@example.com", TABLE_TEMPFAIL, NULL, 0, NOW);

	assert_true(table_shared_get(s, SPEC, "alice@example.com", NOW, 3600, &st, &v, &age));
	assert_int_equal(st, TABLE_FOUND);
	assert_string_equal(str_c(&v), "example.com/alice/");
	assert_int_equal(age, 10);
	assert_true(get(s, "nobody@example.com", &st, &v));
	assert_int_equal(st, TABLE_NOTFOUND);
	assert_string_equal(str_c(&v), "");
	assert_false(get(s, "tmp@example.com", &st, &v));
	/* Older than the bound: not given. */
	assert_false(table_shared_get(s, SPEC, "alice@example.com", NOW, 9, &st, &v, &age));
	/* Another table, or spec and key split elsewhere: not the same. */
	assert_false(table_shared_get(s, "mysql:/other.cf", "alice@example.com", NOW, 3600, &st, &v,
	                              &age));
	assert_false(table_shared_get(s, "mysql:/etc/postern/virtual_mailboxes.cfa",
	                              "lice@example.com", NOW, 3600, &st, &v, &age));
	/* A new answer for the key replaces the old one. */
	store_found(s, "alice@example.com", "example.com/alice2/", NOW - 1);
	assert_true(get(s, "alice@example.com", &st, &v));
	assert_string_equal(str_c(&v), "example.com/alice2/");
	assert_non_null(strstr(table_shared_path(s), "/table_cache.1024.map"));
	table_shared_close(&s);
	assert_null(s);
	str_free(&v);
}

static void test_slots(void **state)
{
	(void)state;
	assert_int_equal(table_shared_slots(0), TABLE_SHARED_MIN_SLOTS);
	assert_int_equal(table_shared_slots(10000), 20000);
	assert_int_equal(table_shared_slots(10001) % TABLE_SHARED_WAYS, 0);
	assert_int_equal(table_shared_slots(SIZE_MAX), 1024 * 1024);
}

/* What one process stores another sees: a forked child writes, the parent
 * (its own mapping of the file) reads. */
static void test_other_process(void **state)
{
	struct fixture *f = *state;
	struct table_shared *s;
	enum table_status st;
	int status;
	pid_t pid;
	str_t v;

	str_init(&v);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct table_shared *c = table_shared_open(f->dir, 1024);

		if (c == NULL)
			_exit(2);
		for (int i = 0; i < 500; i++) {
			char key[64], value[64];

			snprintf(key, sizeof(key), "user%d@example.com", i);
			snprintf(value, sizeof(value), "example.com/user%d/", i);
			table_shared_store(c, SPEC, key, TABLE_FOUND, value, strlen(value), NOW);
		}
		table_shared_close(&c);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	s = table_shared_open(f->dir, 1024);
	assert_non_null(s);
	/* 500 keys in 256 buckets of 4: a few buckets may have overflowed,
	 * most answers are there and every answer given is right. */
	{
		int seen = 0;

		for (int i = 0; i < 500; i++) {
			char key[64], value[64];

			snprintf(key, sizeof(key), "user%d@example.com", i);
			snprintf(value, sizeof(value), "example.com/user%d/", i);
			if (get(s, key, &st, &v)) {
				assert_int_equal(st, TABLE_FOUND);
				assert_string_equal(str_c(&v), value);
				seen++;
			}
		}
		assert_true(seen >= 450);
	}
	table_shared_close(&s);
	str_free(&v);
}

/* One bucket (4 slots): the fifth key replaces the oldest answer. */
static void test_full_bucket_loses_oldest(void **state)
{
	struct fixture *f = *state;
	struct table_shared *s = table_shared_open(f->dir, TABLE_SHARED_WAYS);
	enum table_status st;
	str_t v;

	str_init(&v);
	assert_non_null(s);
	store_found(s, "b@x.test", "B", NOW - 40);
	store_found(s, "a@x.test", "A", NOW - 50);
	store_found(s, "c@x.test", "C", NOW - 30);
	store_found(s, "d@x.test", "D", NOW - 20);
	store_found(s, "e@x.test", "E", NOW - 10);
	assert_false(get(s, "a@x.test", &st, &v));
	assert_true(get(s, "b@x.test", &st, &v));
	assert_true(get(s, "e@x.test", &st, &v));
	assert_string_equal(str_c(&v), "E");
	table_shared_close(&s);
	str_free(&v);
}

static void test_too_large_not_stored(void **state)
{
	struct fixture *f = *state;
	struct table_shared *s = table_shared_open(f->dir, 1024);
	char *big = xmalloc(TABLE_SHARED_SLOT + 1);
	enum table_status st;
	str_t v;

	str_init(&v);
	memset(big, 'x', TABLE_SHARED_SLOT);
	big[TABLE_SHARED_SLOT] = '\0';
	store_found(s, "alice@example.com", "example.com/alice/", NOW);
	/* Too large for a slot: not stored, and the older answer stays. */
	store_found(s, "alice@example.com", big, NOW);
	assert_true(get(s, "alice@example.com", &st, &v));
	assert_string_equal(str_c(&v), "example.com/alice/");
	store_found(s, big + 10, "v", NOW);
	assert_false(get(s, big + 10, &st, &v));
	free(big);
	table_shared_close(&s);
	str_free(&v);
}

/* The whole file, mapped, to be damaged as a crash or a hostile writer
 * would. */
static unsigned char *map_raw(struct table_shared *s, size_t *len_r)
{
	int fd = open(table_shared_path(s), O_RDWR);
	struct stat st;
	void *p;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(p != MAP_FAILED);
	close(fd);
	*len_r = (size_t)st.st_size;
	return p;
}

static void test_hostile_contents(void **state)
{
	struct fixture *f = *state;
	struct table_shared *s = table_shared_open(f->dir, TABLE_SHARED_WAYS);
	enum table_status st;
	unsigned char *raw;
	size_t len;
	str_t v;

	str_init(&v);
	store_found(s, "a@x.test", "A", NOW);
	raw = map_raw(s, &len);
	assert_int_equal(len, 5 * TABLE_SHARED_SLOT);
	/* Every byte of every slot but the counters garbage: lengths past the
	 * slot, missing NULs, unknown status. Nothing is given, nothing
	 * crashes. */
	for (size_t i = TABLE_SHARED_SLOT; i < len; i++)
		if (i % TABLE_SHARED_SLOT >= 4)
			raw[i] = 0xff;
	assert_false(get(s, "a@x.test", &st, &v));
	/* A writer after it makes the bucket usable again. */
	store_found(s, "a@x.test", "A2", NOW);
	assert_true(get(s, "a@x.test", &st, &v));
	assert_string_equal(str_c(&v), "A2");
	/* A writer killed mid-write leaves an odd counter: skipped, then
	 * rewritten by the next writer. */
	for (size_t i = 0; i < TABLE_SHARED_WAYS; i++)
		raw[(i + 1) * TABLE_SHARED_SLOT] |= 1;
	assert_false(get(s, "a@x.test", &st, &v));
	store_found(s, "a@x.test", "A3", NOW);
	assert_true(get(s, "a@x.test", &st, &v));
	assert_string_equal(str_c(&v), "A3");
	/* A header that does not match is reset by the next process. */
	memset(raw, 0xff, 16);
	table_shared_close(&s);
	s = table_shared_open(f->dir, TABLE_SHARED_WAYS);
	assert_non_null(s);
	assert_false(get(s, "a@x.test", &st, &v));
	store_found(s, "a@x.test", "A4", NOW);
	assert_true(get(s, "a@x.test", &st, &v));
	munmap(raw, len);
	table_shared_close(&s);
	str_free(&v);
}

static void test_symlink_refused(void **state)
{
	struct fixture *f = *state;
	char *path = xasprintf("%s/table_cache.1024.map", f->dir);

	assert_int_equal(symlink("/etc/passwd", path), 0);
	assert_null(table_shared_open(f->dir, 1024));
	assert_true(f->warnings.n >= 1);
	assert_non_null(strstr(f->warnings.v[f->warnings.n - 1], "table_cache.1024.map"));
	assert_non_null(strstr(f->warnings.v[f->warnings.n - 1], "cannot share table answers"));
	free(path);
}

/* ---- table_cache with a shared file ------------------------------------ */

struct backend {
	enum table_status status; /* what it answers */
	const char *value;
	unsigned calls;
};

static void fetch(const char *key, struct table_result *r, void *ctx)
{
	struct backend *b = ctx;

	(void)key;
	b->calls++;
	r->status = b->status;
	if (b->status == TABLE_FOUND)
		str_set(&r->value, b->value);
	else if (b->status == TABLE_TEMPFAIL)
		str_set(&r->error, SPEC ": cannot connect: Connection refused");
}

/* A cache of 100 entries, as a process would make it, sharing through s
 * (NULL: not sharing). */
static struct table_cache *process_cache(struct table_shared *s)
{
	struct table_cache_settings set;
	struct table_cache *c;

	table_cache_settings_default(&set);
	set.size = 100;
	c = table_cache_new(&set);
	table_cache_set_shared(c, s);
	return c;
}

/* Process A looks up alice (found) and nobody (not found); then the
 * database fails and process B, which never looked either up, serves
 * A's answers, marked stale, and logs it. */
static void test_cache_serves_other_process_answer(void **state)
{
	struct fixture *f = *state;
	struct table_shared *s = table_shared_open(f->dir, 1024);
	struct table_cache *a = process_cache(NULL), *b = process_cache(NULL);
	struct backend up = {TABLE_FOUND, "example.com/alice/", 0};
	struct backend none = {TABLE_NOTFOUND, NULL, 0};
	struct backend down = {TABLE_TEMPFAIL, NULL, 0};
	struct table_result r;

	table_result_init(&r);

	/* Without the shared file, B has nothing: a temporary failure. */
	table_cache_lookup(a, SPEC, "alice@example.com", fetch, &up, &r);
	assert_int_equal(r.status, TABLE_FOUND);
	table_result_reset(&r);
	table_cache_lookup(b, SPEC, "alice@example.com", fetch, &down, &r);
	assert_int_equal(r.status, TABLE_TEMPFAIL);
	table_cache_destroy(&a);
	table_cache_destroy(&b);

	a = process_cache(s);
	b = process_cache(s);
	table_result_reset(&r);
	table_cache_lookup(a, SPEC, "alice@example.com", fetch, &up, &r);
	assert_int_equal(r.status, TABLE_FOUND);
	table_result_reset(&r);
	table_cache_lookup(a, SPEC, "nobody@example.com", fetch, &none, &r);
	assert_int_equal(r.status, TABLE_NOTFOUND);

	table_result_reset(&r);
	table_cache_lookup(b, SPEC, "alice@example.com", fetch, &down, &r);
	assert_int_equal(down.calls, 2);
	assert_int_equal(r.status, TABLE_FOUND);
	assert_true(r.stale);
	assert_string_equal(str_c(&r.value), "example.com/alice/");
	assert_non_null(strstr(f->warnings.v[f->warnings.n - 1],
	                       "serving cached answer for alice@example.com"));
	/* The stale "not found" comes marked, so no caller refuses on it. */
	table_result_reset(&r);
	table_cache_lookup(b, SPEC, "nobody@example.com", fetch, &down, &r);
	assert_int_equal(r.status, TABLE_NOTFOUND);
	assert_true(r.stale);
	/* A key nobody looked up stays a temporary failure. */
	table_result_reset(&r);
	table_cache_lookup(b, SPEC, "bob@example.com", fetch, &down, &r);
	assert_int_equal(r.status, TABLE_TEMPFAIL);

	table_result_free(&r);
	table_cache_destroy(&a);
	table_cache_destroy(&b);
	table_shared_close(&s);
}

static void test_outage_records(void **state)
{
	struct fixture *f = *state;
	struct table_shared *s = table_shared_open(f->dir, 1024);
	struct table_shared *other = table_shared_open(f->dir, 1024);
	char name[32];

	assert_int_equal(table_shared_outage_until(s, "db:"), 0);
	table_shared_outage_set(s, "db:", 5000);
	/* Another mapping of the file (another process) sees it. */
	assert_int_equal(table_shared_outage_until(other, "db:"), 5000);
	assert_int_equal(table_shared_outage_until(other, SPEC), 0);
	table_shared_outage_set(other, "db:", 9000);
	assert_int_equal(table_shared_outage_until(s, "db:"), 9000);
	table_shared_outage_set(s, "db:", 0);
	assert_int_equal(table_shared_outage_until(other, "db:"), 0);
	/* Full: the record that ends first gives way, the others stay. */
	for (int i = 0; i < TABLE_SHARED_OUTAGES + 1; i++) {
		snprintf(name, sizeof(name), "mysql:/t%d.cf", i);
		table_shared_outage_set(s, name, 10000 + (uint64_t)i);
	}
	assert_int_equal(table_shared_outage_until(s, "mysql:/t16.cf"), 10016);
	assert_int_equal(table_shared_outage_until(s, "mysql:/t15.cf"), 10015);
	table_shared_close(&other);
	table_shared_close(&s);
}

/* A process noted that the database fails: a fresh process (cache B)
 * does not ask it again within the interval (a hung server would cost it
 * a timeout), it answers from the shared answers at once; once the
 * interval is over one lookup asks, and an answer ends the outage for
 * all. */
static void test_cache_shares_outage(void **state)
{
	struct fixture *f = *state;
	struct table_shared *s = table_shared_open(f->dir, 1024);
	struct table_cache *a = process_cache(s), *b = process_cache(s);
	struct backend up = {TABLE_FOUND, "example.com/alice/", 0};
	struct backend down = {TABLE_TEMPFAIL, NULL, 0};
	struct table_result r;

	table_result_init(&r);
	table_cache_lookup(a, "db:mailboxes", "alice@example.com", fetch, &up, &r);
	assert_int_equal(r.status, TABLE_FOUND);
	/* A's next lookup (another key) finds the database down. */
	table_result_reset(&r);
	table_cache_lookup(a, "db:mailboxes", "bob@example.com", fetch, &down, &r);
	assert_int_equal(r.status, TABLE_TEMPFAIL);
	assert_int_equal(down.calls, 1);
	assert_true(table_shared_outage_until(s, "db:") != 0);
	/* B, a db: table of the same database: not asked, answered. */
	table_result_reset(&r);
	table_cache_lookup(b, "db:aliases", "alice@example.com", fetch, &down, &r);
	assert_int_equal(down.calls, 1);
	assert_int_equal(r.status, TABLE_TEMPFAIL);
	assert_non_null(strstr(str_c(&r.error), "recent failure"));
	table_result_reset(&r);
	table_cache_lookup(b, "db:mailboxes", "alice@example.com", fetch, &down, &r);
	assert_int_equal(down.calls, 1);
	assert_int_equal(r.status, TABLE_FOUND);
	assert_true(r.stale);
	/* The interval is over (as if 5 s had passed): B asks, the database
	 * answers, and the outage is over for A too. */
	table_shared_outage_set(s, "db:", 1);
	table_result_reset(&r);
	table_cache_lookup(b, "db:aliases", "carol@example.com", fetch, &up, &r);
	assert_int_equal(up.calls, 2);
	assert_int_equal(r.status, TABLE_FOUND);
	assert_int_equal(table_shared_outage_until(s, "db:"), 0);

	table_result_free(&r);
	table_cache_destroy(&a);
	table_cache_destroy(&b);
	table_shared_close(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_store_and_get, setup, teardown),
	        cmocka_unit_test(test_slots),
	        cmocka_unit_test_setup_teardown(test_other_process, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_full_bucket_loses_oldest, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_too_large_not_stored, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_hostile_contents, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_symlink_refused, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_outage_records, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_cache_shares_outage, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_cache_serves_other_process_answer, setup,
	                                        teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
