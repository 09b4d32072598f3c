/* test_table_cache.c - unit tests for lib/table/table_cache: positive and
 * negative TTLs, LRU eviction, answers served during a backend outage
 * within the grace time (logged once per key and outage), temporary
 * failures never cached, the table_cache_* parameters, and concurrent use.
 *
 * The backend is a real table: a texthash: file rewritten between lookups
 * stands in for a database whose rows change, and an sqlite: table whose
 * database directory is moved away (SQLite cannot open the file: a
 * temporary failure, as for a database server that is down) gives the
 * outages. The clock is injected so that expiry is tested without
 * sleeping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <config.h>

#include "base/fs.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/str.h"
#include "base/strv.h"
#include "conf/config.h"
#include "table/table.h"
#include "table/table_cache.h"

#if HAVE_SQLITE
#include <sqlite3.h>
#endif

/* ---- fixture: a texthash file, a clock, the warnings logged ---------- */

struct fixture {
	char dir[64];
	char path[128];
	char spec[160];
	struct table *t;
	struct table_cache *cache;
	uint64_t now_ms;
	unsigned fetches; /* times the backend was asked */
	strv_t warnings;
	pthread_mutex_t log_lock;
};

static uint64_t fake_clock(void *ctx)
{
	return ((struct fixture *)ctx)->now_ms;
}

static void log_hook(enum log_level level, const char *text, void *ctx)
{
	struct fixture *f = ctx;

	if (level != LOG_LEVEL_WARNING)
		return;
	pthread_mutex_lock(&f->log_lock);
	strv_add(&f->warnings, text);
	pthread_mutex_unlock(&f->log_lock);
}

/* Replace the table file and reopen the table, as if rows had changed. */
static void set_rows(struct fixture *f, const char *text)
{
	struct table_open_context ctx = {.cfg = NULL, .config_dir = f->dir};
	str_t error;

	str_init(&error);
	assert_int_equal(fs_write_durable(f->path, text, strlen(text), 0644, &error), 0);
	table_close(&f->t);
	f->t = table_open(f->spec, &ctx, &error);
	if (f->t == NULL)
		fail_msg("%s", str_c(&error));
	str_free(&error);
}

static struct fixture *fixture_new(size_t size)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	struct table_cache_settings s;

	snprintf(f->dir, sizeof(f->dir), "/tmp/postern-test-cache-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/virtual", f->dir);
	snprintf(f->spec, sizeof(f->spec), "texthash:%s", f->path);
	set_rows(f, "alice@example.com example.com/alice/\n");
	table_cache_settings_default(&s);
	s.size = size;
	f->cache = table_cache_new(&s);
	f->now_ms = 1000000;
	table_cache_set_clock(f->cache, fake_clock, f);
	pthread_mutex_init(&f->log_lock, NULL);
	log_set_hook(log_hook, f);
	return f;
}

static void fixture_free(struct fixture **fp)
{
	struct fixture *f = *fp;

	log_set_hook(NULL, NULL);
	table_close(&f->t);
	table_cache_destroy(&f->cache);
	unlink(f->path);
	rmdir(f->dir);
	strv_free(&f->warnings);
	pthread_mutex_destroy(&f->log_lock);
	free(f);
	*fp = NULL;
}

/* The fetch function: ask the real table, and count the question. */
static void fetch_table(const char *key, struct table_result *r, void *ctx)
{
	struct fixture *f = ctx;

	f->fetches++;
	table_lookup(f->t, key, r);
}

/* One lookup through the cache; returns the status, value in *value_r. */
static enum table_status lookup(struct fixture *f, const char *key, str_t *value_r)
{
	struct table_result r;
	enum table_status st;

	table_result_init(&r);
	table_cache_lookup(f->cache, f->spec, key, fetch_table, f, &r);
	st = r.status;
	if (value_r != NULL)
		str_set(value_r, str_c(&r.value));
	table_result_free(&r);
	return st;
}

/* ---- TTLs --------------------------------------------------------------- */

static void test_positive_ttl(void **state)
{
	struct fixture *f = fixture_new(100);
	struct table_cache_stats st;
	str_t v;

	(void)state;
	str_init(&v);
	assert_int_equal(lookup(f, "alice@example.com", &v), TABLE_FOUND);
	assert_string_equal(str_c(&v), "example.com/alice/");
	assert_int_equal(f->fetches, 1);

	/* The row changes; within the TTL the cached answer stands. */
	set_rows(f, "alice@example.com example.com/alice2/\n");
	f->now_ms += 59 * 1000;
	assert_int_equal(lookup(f, "alice@example.com", &v), TABLE_FOUND);
	assert_string_equal(str_c(&v), "example.com/alice/");
	assert_int_equal(f->fetches, 1);

	/* 60 s after the answer it has expired: the backend is asked. */
	f->now_ms += 1000;
	assert_int_equal(lookup(f, "alice@example.com", &v), TABLE_FOUND);
	assert_string_equal(str_c(&v), "example.com/alice2/");
	assert_int_equal(f->fetches, 2);

	table_cache_get_stats(f->cache, &st);
	assert_int_equal(st.hits, 1);
	assert_int_equal(st.misses, 2);
	assert_int_equal(st.entries, 1);
	str_free(&v);
	fixture_free(&f);
}

static void test_negative_ttl(void **state)
{
	struct fixture *f = fixture_new(100);
	str_t v;

	(void)state;
	str_init(&v);
	assert_int_equal(lookup(f, "new@example.com", NULL), TABLE_NOTFOUND);
	assert_int_equal(f->fetches, 1);
	/* The mailbox is created: for 10 s the negative answer is reused... */
	set_rows(f, "alice@example.com example.com/alice/\nnew@example.com example.com/new/\n");
	f->now_ms += 9999;
	assert_int_equal(lookup(f, "new@example.com", NULL), TABLE_NOTFOUND);
	assert_int_equal(f->fetches, 1);
	/* ...then the new mailbox is seen. */
	f->now_ms += 1;
	assert_int_equal(lookup(f, "new@example.com", &v), TABLE_FOUND);
	assert_string_equal(str_c(&v), "example.com/new/");
	assert_int_equal(f->fetches, 2);
	str_free(&v);
	fixture_free(&f);
}

static void test_keys_and_specs_are_separate(void **state)
{
	struct fixture *f = fixture_new(100);
	struct table_result r;
	char *tail;

	(void)state;
	table_result_init(&r);
	assert_int_equal(lookup(f, "alice@example.com", NULL), TABLE_FOUND);
	/* Same key, another table: not answered from the first table's entry. */
	assert_false(table_cache_get(f->cache, "texthash:/elsewhere", "alice@example.com", &r));
	/* Spec and key split elsewhere must not collide: "texthash:" with
	 * key "/tmp/.../virtualalice@example.com" has the same bytes. */
	tail = xasprintf("%salice@example.com", f->spec + strlen("texthash:"));
	assert_false(table_cache_get(f->cache, "texthash:", tail, &r));
	free(tail);
	assert_true(table_cache_get(f->cache, f->spec, "alice@example.com", &r));
	assert_int_equal(r.status, TABLE_FOUND);
	assert_string_equal(str_c(&r.value), "example.com/alice/");
	table_result_free(&r);
	fixture_free(&f);
}

static void test_size_zero_disables(void **state)
{
	struct fixture *f = fixture_new(0);
	struct table_cache_stats st;

	(void)state;
	assert_int_equal(lookup(f, "alice@example.com", NULL), TABLE_FOUND);
	assert_int_equal(lookup(f, "alice@example.com", NULL), TABLE_FOUND);
	assert_int_equal(f->fetches, 2);
	table_cache_get_stats(f->cache, &st);
	assert_int_equal(st.entries, 0);
	fixture_free(&f);
}

static void test_long_keys_not_cached(void **state)
{
	struct fixture *f = fixture_new(100);
	char *key = xmalloc(TABLE_KEY_MAX + 2);
	struct table_cache_stats st;

	(void)state;
	memset(key, 'a', TABLE_KEY_MAX + 1);
	key[TABLE_KEY_MAX + 1] = '\0';
	assert_int_equal(lookup(f, key, NULL), TABLE_NOTFOUND);
	table_cache_get_stats(f->cache, &st);
	assert_int_equal(st.entries, 0);
	free(key);
	fixture_free(&f);
}

/* ---- eviction ----------------------------------------------------------- */

static void test_lru_eviction(void **state)
{
	struct fixture *f = fixture_new(3);
	struct table_cache_stats st;

	(void)state;
	set_rows(f, "a@x.test A\nb@x.test B\nc@x.test C\nd@x.test D\n");
	assert_int_equal(lookup(f, "a@x.test", NULL), TABLE_FOUND);
	assert_int_equal(lookup(f, "b@x.test", NULL), TABLE_FOUND);
	assert_int_equal(lookup(f, "c@x.test", NULL), TABLE_FOUND);
	/* Use a again: b becomes the least recently used. */
	assert_int_equal(lookup(f, "a@x.test", NULL), TABLE_FOUND);
	assert_int_equal(f->fetches, 3);
	assert_int_equal(lookup(f, "d@x.test", NULL), TABLE_FOUND);
	table_cache_get_stats(f->cache, &st);
	assert_int_equal(st.entries, 3);
	assert_int_equal(st.evictions, 1);
	/* a, c, d are cached; b was evicted and is fetched again. */
	f->fetches = 0;
	assert_int_equal(lookup(f, "a@x.test", NULL), TABLE_FOUND);
	assert_int_equal(lookup(f, "c@x.test", NULL), TABLE_FOUND);
	assert_int_equal(lookup(f, "d@x.test", NULL), TABLE_FOUND);
	assert_int_equal(f->fetches, 0);
	assert_int_equal(lookup(f, "b@x.test", NULL), TABLE_FOUND);
	assert_int_equal(f->fetches, 1);
	fixture_free(&f);
}

/* ---- parameters ------------------------------------------------------- */

static void test_settings(void **state)
{
	static const char text[] = "table_cache_size = 5\n"
	                           "table_cache_positive_ttl = 2m\n"
	                           "table_cache_negative_ttl = 0\n"
	                           "table_cache_grace_time = 2h\n";
	struct table_cache_settings s;
	struct config *cfg = NULL;
	strv_t errors = STRV_INIT;
	const char *error = NULL;

	(void)state;
	table_cache_settings_default(&s);
	assert_int_equal(s.size, 10000);
	assert_int_equal(s.positive_ttl, 60);
	assert_int_equal(s.negative_ttl, 10);
	assert_int_equal(s.grace_time, 3600);

	assert_int_equal(config_parse_text(text, strlen(text), "main.cf", "/tmp", &cfg, &errors),
	                 0);
	assert_int_equal(table_cache_settings_load(cfg, &s, &error), 0);
	assert_int_equal(s.size, 5);
	assert_int_equal(s.positive_ttl, 120);
	assert_int_equal(s.negative_ttl, 0);
	assert_int_equal(s.grace_time, 7200);
	config_destroy(&cfg);

	assert_int_equal(config_parse_text("table_cache_grace_time = soon\n", 30, "main.cf", "/tmp",
	                                   &cfg, &errors),
	                 0);
	assert_int_equal(table_cache_settings_load(cfg, &s, &error), -1);
	assert_non_null(strstr(error, "main.cf, line 1"));
	assert_non_null(strstr(error, "table_cache_grace_time"));
	config_destroy(&cfg);
	strv_free(&errors);
}

/* ---- concurrency -------------------------------------------------------- */

struct thread_arg {
	struct table_cache *cache;
	const char *spec;
	const char *dir;
	unsigned found;
};

static void fetch_own_table(const char *key, struct table_result *r, void *ctx)
{
	table_lookup(ctx, key, r);
}

static void *hammer(void *arg)
{
	struct thread_arg *a = arg;
	struct table_open_context ctx = {.cfg = NULL, .config_dir = a->dir};
	struct table_result r;
	struct table *t;
	str_t error;
	char key[64];

	str_init(&error);
	t = table_open(a->spec, &ctx, &error); /* a table object per thread */
	table_result_init(&r);
	for (unsigned i = 0; t != NULL && i < 20000; i++) {
		snprintf(key, sizeof(key), "user%u@x.test", i % 64);
		table_cache_lookup(a->cache, a->spec, key, fetch_own_table, t, &r);
		if (r.status == TABLE_FOUND && strcmp(str_c(&r.value), key + 4) == 0)
			a->found++;
	}
	table_result_free(&r);
	table_close(&t);
	str_free(&error);
	return NULL;
}

static void test_threads(void **state)
{
	struct fixture *f = fixture_new(16); /* smaller than the key set: evictions */
	struct thread_arg args[4];
	pthread_t th[4];
	struct table_cache_stats st;
	str_t rows;

	(void)state;
	str_init(&rows);
	for (unsigned i = 0; i < 64; i++)
		str_appendf(&rows, "user%u@x.test %u@x.test\n", i, i);
	set_rows(f, str_c(&rows));
	table_cache_set_clock(f->cache, NULL, NULL); /* the real clock */
	for (int i = 0; i < 4; i++) {
		args[i] = (struct thread_arg){.cache = f->cache, .spec = f->spec, .dir = f->dir};
		assert_int_equal(pthread_create(&th[i], NULL, hammer, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(args[i].found, 20000);
	}
	table_cache_get_stats(f->cache, &st);
	assert_int_equal(st.hits + st.misses, 4 * 20000);
	assert_true(st.evictions > 0);
	assert_true(st.entries <= 16);
	str_free(&rows);
	fixture_free(&f);
}

#if HAVE_SQLITE
/* ---- outages: an sqlite: table whose database goes away -------------- */

struct sqlfix {
	char dir[64];
	char dbdir[96]; /* holds the database; renamed away for an outage */
	char downdir[96];
	char db[128];
	char cf[128];
	char spec[160];
	struct table *t;
};

static void sqlite_exec(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	char *err = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("%s: %s", path, err);
	sqlite3_close(db);
}

/* Open the table, as a worker of table_async does on first use: a table
 * that cannot be opened (its database file is gone) is a temporary
 * failure, with the reason, and is tried again on the next lookup. */
static bool sqlfix_open(struct sqlfix *s, struct table_result *r)
{
	struct table_open_context ctx = {.cfg = NULL, .config_dir = s->dir};

	if (s->t == NULL)
		s->t = table_open(s->spec, &ctx, &r->error);
	if (s->t == NULL)
		r->status = TABLE_TEMPFAIL;
	return s->t != NULL;
}

static void sqlfix_init(struct sqlfix *s)
{
	static const char cf_fmt[] =
	        "dbpath = %s\n"
	        "query = SELECT maildir FROM mailboxes WHERE address = '%%s' AND active = '1'\n"
	        "query_timeout = 1\n";
	str_t text, error;

	memset(s, 0, sizeof(*s));
	snprintf(s->dir, sizeof(s->dir), "/tmp/postern-test-cache-XXXXXX");
	assert_non_null(mkdtemp(s->dir));
	snprintf(s->dbdir, sizeof(s->dbdir), "%s/db", s->dir);
	snprintf(s->downdir, sizeof(s->downdir), "%s/db-down", s->dir);
	snprintf(s->db, sizeof(s->db), "%s/mail.db", s->dbdir);
	snprintf(s->cf, sizeof(s->cf), "%s/mailboxes.cf", s->dir);
	snprintf(s->spec, sizeof(s->spec), "sqlite:%s", s->cf);
	assert_int_equal(mkdir(s->dbdir, 0700), 0);
	sqlite_exec(s->db, "CREATE TABLE mailboxes (address TEXT PRIMARY KEY, maildir TEXT,"
	                   " active INTEGER NOT NULL DEFAULT 1);"
	                   "INSERT INTO mailboxes (address, maildir) VALUES"
	                   " ('alice@example.com', 'example.com/alice/'),"
	                   " ('bob@example.com', 'example.com/bob/');");
	str_init(&text);
	str_init(&error);
	str_appendf(&text, cf_fmt, s->db);
	assert_int_equal(fs_write_durable(s->cf, text.buf, text.len, 0644, &error), 0);
	str_free(&text);
	str_free(&error);
}

static void sqlfix_free(struct sqlfix *s)
{
	table_close(&s->t);
	unlink(s->db);
	rmdir(s->dbdir);
	unlink(s->cf);
	rmdir(s->dir);
}

/* The database goes away (its directory is moved: SQLite cannot open the
 * file, nor create a new one) or comes back. The table is closed either
 * way, as when the process holding it restarts; an open connection would
 * go on reading the moved file. */
static void sqlfix_down(struct sqlfix *s)
{
	assert_int_equal(rename(s->dbdir, s->downdir), 0);
	table_close(&s->t);
}

static void sqlfix_up(struct sqlfix *s)
{
	assert_int_equal(rename(s->downdir, s->dbdir), 0);
	table_close(&s->t);
}

struct sql_lookup {
	struct fixture *f;
	struct sqlfix *s;
	bool stale; /* the last answer was table_result.stale */
};

static void fetch_sql(const char *key, struct table_result *r, void *ctx)
{
	struct sql_lookup *l = ctx;

	l->f->fetches++;
	if (sqlfix_open(l->s, r))
		table_lookup(l->s->t, key, r);
}

static enum table_status sql_lookup(struct sql_lookup *l, const char *key, str_t *value_r,
                                    str_t *error_r)
{
	struct table_result r;
	enum table_status st;

	table_result_init(&r);
	table_cache_lookup(l->f->cache, l->s->spec, key, fetch_sql, l, &r);
	st = r.status;
	l->stale = r.stale;
	if (value_r != NULL)
		str_set(value_r, str_c(&r.value));
	if (error_r != NULL)
		str_set(error_r, str_c(&r.error));
	table_result_free(&r);
	return st;
}

static size_t count_warnings(struct fixture *f, const char *spec, const char *key)
{
	char *what = xasprintf("%s: serving cached answer for %s: ", spec, key);
	size_t n = 0;

	for (size_t i = 0; i < f->warnings.n; i++)
		if (strncmp(f->warnings.v[i], what, strlen(what)) == 0)
			n++;
	free(what);
	return n;
}

static void test_grace_during_outage(void **state)
{
	struct fixture *f = fixture_new(100);
	struct sqlfix s;
	struct sql_lookup l = {.f = f, .s = &s};
	struct table_cache_stats st;
	str_t v, why;
	char *moved;

	(void)state;
	str_init(&v);
	str_init(&why);
	sqlfix_init(&s);
	assert_int_equal(sql_lookup(&l, "alice@example.com", &v, NULL), TABLE_FOUND);
	assert_string_equal(str_c(&v), "example.com/alice/");
	assert_int_equal(sql_lookup(&l, "nobody@example.com", NULL, NULL), TABLE_NOTFOUND);
	assert_int_equal(f->fetches, 2);

	/* The database is gone; the answers have expired. */
	sqlfix_down(&s);
	f->now_ms += 61 * 1000;
	assert_int_equal(sql_lookup(&l, "alice@example.com", &v, NULL), TABLE_FOUND);
	assert_string_equal(str_c(&v), "example.com/alice/");
	assert_int_equal(f->fetches, 3); /* the backend was asked, and failed */
	assert_int_equal(count_warnings(f, s.spec, "alice@example.com"), 1);
	/* Logged once per key and outage, not per lookup. */
	assert_int_equal(sql_lookup(&l, "alice@example.com", &v, NULL), TABLE_FOUND);
	assert_int_equal(count_warnings(f, s.spec, "alice@example.com"), 1);
	assert_true(l.stale);
	/* A known "not found" too, marked stale: its callers go on with it
	 * (an address that is no alias may be a mailbox) but must not make
	 * it a 550 "User unknown" (a mailbox may have been made since). */
	assert_int_equal(sql_lookup(&l, "nobody@example.com", NULL, NULL), TABLE_NOTFOUND);
	assert_true(l.stale);
	assert_int_equal(count_warnings(f, s.spec, "nobody@example.com"), 1);
	/* A key never seen: a temporary failure naming the table, never
	 * cached, never warned about; within TABLE_CACHE_RETRY_MS of the
	 * failure at once, without asking the failed backend again. */
	f->fetches = 0;
	assert_int_equal(sql_lookup(&l, "bob@example.com", NULL, &why), TABLE_TEMPFAIL);
	assert_false(l.stale);
	assert_non_null(strstr(str_c(&why), s.spec));
	assert_int_equal(f->fetches, 0);
	f->now_ms += TABLE_CACHE_RETRY_MS;
	assert_int_equal(sql_lookup(&l, "bob@example.com", NULL, NULL), TABLE_TEMPFAIL);
	assert_int_equal(f->fetches, 1);
	assert_int_equal(count_warnings(f, s.spec, "bob@example.com"), 0);
	table_cache_get_stats(f->cache, &st);
	assert_int_equal(st.stale_served, 3);

	/* The row changes meanwhile; the database comes back: fresh answers. */
	moved = xasprintf("%s/mail.db", s.downdir);
	sqlite_exec(moved, "UPDATE mailboxes SET maildir = 'example.com/alice2/'"
	                   " WHERE address = 'alice@example.com'");
	free(moved);
	sqlfix_up(&s);
	/* Keys the cache knows are answered from it, without asking the
	 * failed backend, until TABLE_CACHE_RETRY_MS after its last failure. */
	f->now_ms += 1000;
	assert_int_equal(sql_lookup(&l, "alice@example.com", &v, NULL), TABLE_FOUND);
	assert_string_equal(str_c(&v), "example.com/alice/");
	f->now_ms += TABLE_CACHE_RETRY_MS;
	assert_int_equal(sql_lookup(&l, "alice@example.com", &v, NULL), TABLE_FOUND);
	assert_string_equal(str_c(&v), "example.com/alice2/");
	assert_int_equal(sql_lookup(&l, "bob@example.com", &v, NULL), TABLE_FOUND);

	/* The next outage is logged again. */
	sqlfix_down(&s);
	f->now_ms += 61 * 1000;
	assert_int_equal(sql_lookup(&l, "alice@example.com", &v, NULL), TABLE_FOUND);
	assert_string_equal(str_c(&v), "example.com/alice2/");
	assert_int_equal(count_warnings(f, s.spec, "alice@example.com"), 2);
	sqlfix_up(&s);

	str_free(&v);
	str_free(&why);
	sqlfix_free(&s);
	fixture_free(&f);
}

static void test_grace_time_ends(void **state)
{
	struct fixture *f = fixture_new(100);
	struct sqlfix s;
	struct sql_lookup l = {.f = f, .s = &s};
	struct table_cache_stats st;

	(void)state;
	sqlfix_init(&s);
	assert_int_equal(sql_lookup(&l, "alice@example.com", NULL, NULL), TABLE_FOUND);
	sqlfix_down(&s);
	/* Just within the hour: served. */
	f->now_ms += 3600 * 1000 - 1;
	assert_int_equal(sql_lookup(&l, "alice@example.com", NULL, NULL), TABLE_FOUND);
	/* An hour after the last real answer: a temporary failure, and the
	 * entry is gone. */
	f->now_ms += 1;
	assert_int_equal(sql_lookup(&l, "alice@example.com", NULL, NULL), TABLE_TEMPFAIL);
	table_cache_get_stats(f->cache, &st);
	assert_int_equal(st.entries, 0);
	sqlfix_up(&s);
	sqlfix_free(&s);
	fixture_free(&f);
}

static void test_grace_zero(void **state)
{
	struct fixture *f = fixture_new(100);
	struct table_cache_settings set;
	struct sqlfix s;
	struct sql_lookup l = {.f = f, .s = &s};

	(void)state;
	table_cache_settings_default(&set);
	set.grace_time = 0;
	table_cache_destroy(&f->cache);
	f->cache = table_cache_new(&set);
	table_cache_set_clock(f->cache, fake_clock, f);
	sqlfix_init(&s);
	assert_int_equal(sql_lookup(&l, "alice@example.com", NULL, NULL), TABLE_FOUND);
	sqlfix_down(&s);
	f->now_ms += 60 * 1000;
	assert_int_equal(sql_lookup(&l, "alice@example.com", NULL, NULL), TABLE_TEMPFAIL);
	assert_int_equal(f->warnings.n, 0);
	sqlfix_up(&s);
	sqlfix_free(&s);
	fixture_free(&f);
}

static void test_lookup_table_caches_remote_only(void **state)
{
	struct fixture *f = fixture_new(100);
	struct sqlfix s;
	struct table_result r;
	struct table_cache_stats st;

	(void)state;
	sqlfix_init(&s);
	table_result_init(&r);
	assert_true(sqlfix_open(&s, &r));
	/* texthash is not remote: looked up directly, not cached. */
	table_cache_lookup_table(f->cache, f->t, "alice@example.com", &r);
	assert_int_equal(r.status, TABLE_FOUND);
	table_cache_get_stats(f->cache, &st);
	assert_int_equal(st.entries, 0);
	/* sqlite is: cached. */
	table_cache_lookup_table(f->cache, s.t, "alice@example.com", &r);
	assert_int_equal(r.status, TABLE_FOUND);
	assert_string_equal(str_c(&r.value), "example.com/alice/");
	table_cache_lookup_table(f->cache, s.t, "alice@example.com", &r);
	table_cache_get_stats(f->cache, &st);
	assert_int_equal(st.entries, 1);
	assert_int_equal(st.hits, 1);
	/* No cache at all: straight to the table. */
	table_cache_lookup_table(NULL, s.t, "bob@example.com", &r);
	assert_string_equal(str_c(&r.value), "example.com/bob/");
	table_result_free(&r);
	sqlfix_free(&s);
	fixture_free(&f);
}
#endif /* HAVE_SQLITE */

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_positive_ttl),
		cmocka_unit_test(test_negative_ttl),
		cmocka_unit_test(test_keys_and_specs_are_separate),
		cmocka_unit_test(test_size_zero_disables),
		cmocka_unit_test(test_long_keys_not_cached),
		cmocka_unit_test(test_lru_eviction),
		cmocka_unit_test(test_settings),
		cmocka_unit_test(test_threads),
#if HAVE_SQLITE
		cmocka_unit_test(test_grace_during_outage),
		cmocka_unit_test(test_grace_time_ends),
		cmocka_unit_test(test_grace_zero),
		cmocka_unit_test(test_lookup_table_caches_remote_only),
#endif
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
