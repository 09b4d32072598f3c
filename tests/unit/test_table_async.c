/* test_table_async.c - unit tests for lib/table/table_async: answers come
 * through the callback only after table_async_lookup() has returned
 * (memory tables, cache hits, failures alike), many concurrent remote
 * lookups on the worker pool all get their right answer, a cancelled
 * request never gets its callback, a full queue fails at once with a
 * temporary error, and shutdown with work outstanding is clean (run
 * under ASan with `make unit SANITIZE=1`).
 *
 * Real tables only: inline: and texthash: for the event-thread path, and
 * sqlite: tables on a database file made here for the worker path; a
 * write lock held by the test on that database is what makes a worker
 * wait (SQLite's "database is locked"). Jobs (table_async_job) run in a
 * worker, are answered later, freed exactly once whether answered,
 * refused by a full queue, cancelled or dropped at shutdown; a gate the
 * test opens is what keeps a worker busy with one. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <event2/event.h>

#include <config.h>

#include "base/fs.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/str.h"
#include "base/strv.h"
#include "conf/config.h"
#include "table/table.h"
#include "table/table_async.h"
#include "table/table_cache.h"

#if HAVE_SQLITE
#include <sqlite3.h>
#endif

/* Longest a test waits for answers before it fails. */
#define LOOP_TIMEOUT_SECONDS 20

struct answer {
	int calls;
	enum table_status status;
	str_t value;
	str_t error;
	int order; /* position among the answers of one test */
};

static int answer_counter;

static void answer_init(struct answer *a, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		memset(&a[i], 0, sizeof(a[i]));
		str_init(&a[i].value);
		str_init(&a[i].error);
	}
}

static void answer_free(struct answer *a, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		str_free(&a[i].value);
		str_free(&a[i].error);
	}
}

static void on_answer(const struct table_result *r, void *ctx)
{
	struct answer *a = ctx;

	a->calls++;
	a->status = r->status;
	a->order = answer_counter++;
	str_set(&a->value, str_c(&r->value));
	str_set(&a->error, str_c(&r->error));
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	*(bool *)arg = true;
}

/* Run the loop until every request of pool is answered; fail after
 * LOOP_TIMEOUT_SECONDS. */
static void run_until_done(struct event_base *base, struct table_async *pool)
{
	struct timeval tv = {LOOP_TIMEOUT_SECONDS, 0};
	bool timed_out = false;
	struct event *timer = evtimer_new(base, on_timeout, &timed_out);

	evtimer_add(timer, &tv);
	while (table_async_pending(pool) > 0 && !timed_out)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(timer);
	if (timed_out)
		fail_msg("%zu lookups still unanswered after %d s", table_async_pending(pool),
		         LOOP_TIMEOUT_SECONDS);
}

/* Run the loop for ms milliseconds (to see that nothing more arrives). */
static void run_for(struct event_base *base, long ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

static struct table_async *pool_new(struct event_base *base, unsigned workers, struct config *cfg)
{
	struct table_open_context ctx = {.cfg = cfg, .config_dir = "/tmp"};
	struct table_async *pool;
	str_t error;

	str_init(&error);
	pool = table_async_new(base, workers, &ctx, &error);
	if (pool == NULL)
		fail_msg("table_async_new: %s", str_c(&error));
	str_free(&error);
	return pool;
}

static struct config *config_from(const char *text)
{
	struct config *cfg = NULL;
	strv_t errors = STRV_INIT;

	if (config_parse_text(text, strlen(text), "main.cf", "/tmp", &cfg, &errors) < 0)
		fail_msg("main.cf: %s", errors.v[0]);
	strv_free(&errors);
	return cfg;
}

/* ---- the event-thread path: memory tables ---------------------------- */

static const char *const inline_spec = "inline:{alice@example.com=example.com/alice/, "
                                       "bob@example.com=example.com/bob/}";

static void test_memory_table_answers_later(void **state)
{
	struct event_base *base = event_base_new();
	struct table_async *pool = pool_new(base, 1, NULL);
	struct answer a[3];

	(void)state;
	answer_init(a, 3);
	assert_non_null(
	        table_async_lookup(pool, inline_spec, "alice@example.com", on_answer, &a[0]));
	assert_int_equal(a[0].calls, 0); /* not before the call returned */
	assert_non_null(table_async_lookup(pool, inline_spec, "BOB@example.com", on_answer, &a[1]));
	assert_non_null(
	        table_async_lookup(pool, inline_spec, "carol@example.com", on_answer, &a[2]));
	assert_int_equal(a[1].calls + a[2].calls, 0);
	assert_int_equal(table_async_pending(pool), 3);

	run_until_done(base, pool);
	assert_int_equal(a[0].calls, 1);
	assert_int_equal(a[0].status, TABLE_FOUND);
	assert_string_equal(str_c(&a[0].value), "example.com/alice/");
	assert_int_equal(a[1].status, TABLE_FOUND);
	assert_string_equal(str_c(&a[1].value), "example.com/bob/");
	assert_int_equal(a[2].calls, 1);
	assert_int_equal(a[2].status, TABLE_NOTFOUND);
	/* Delivered in the order asked. */
	assert_true(a[0].order < a[1].order && a[1].order < a[2].order);

	/* And nothing is delivered twice. */
	run_for(base, 50);
	assert_int_equal(a[0].calls + a[1].calls + a[2].calls, 3);
	table_async_destroy(&pool);
	assert_null(pool);
	event_base_free(base);
	answer_free(a, 3);
}

static void test_failures_answer_later(void **state)
{
	struct event_base *base = event_base_new();
	struct table_async *pool = pool_new(base, 1, NULL);
	struct answer a[3];

	(void)state;
	answer_init(a, 3);
	table_async_lookup(pool, "nosuch:/etc/x", "k", on_answer, &a[0]);
	table_async_lookup(pool, "no-colon", "k", on_answer, &a[1]);
	table_async_lookup(pool, "texthash:/nonexistent/postern-test/virtual", "k", on_answer,
	                   &a[2]);
	assert_int_equal(a[0].calls + a[1].calls + a[2].calls, 0);
	run_until_done(base, pool);

	assert_int_equal(a[0].calls, 1);
	assert_int_equal(a[0].status, TABLE_TEMPFAIL);
	assert_non_null(strstr(str_c(&a[0].error), "unsupported table type \"nosuch\""));
	assert_int_equal(a[1].status, TABLE_TEMPFAIL);
	assert_non_null(strstr(str_c(&a[1].error), "expected type:name"));
	/* A table that cannot be opened is a temporary failure naming it. */
	assert_int_equal(a[2].status, TABLE_TEMPFAIL);
	assert_non_null(strstr(str_c(&a[2].error), "/nonexistent/postern-test/virtual"));
	table_async_destroy(&pool);
	event_base_free(base);
	answer_free(a, 3);
}

static void test_texthash_file(void **state)
{
	char dir[] = "/tmp/postern-test-async-XXXXXX";
	struct event_base *base = event_base_new();
	struct table_async *pool = pool_new(base, 1, NULL);
	static const char rows[] = "example.com smtp:[mx.example.com]\n";
	struct answer a;
	str_t error;
	char *path, *spec;

	(void)state;
	str_init(&error);
	answer_init(&a, 1);
	assert_non_null(mkdtemp(dir));
	path = xasprintf("%s/transport", dir);
	spec = xasprintf("texthash:%s", path);
	assert_int_equal(fs_write_durable(path, rows, strlen(rows), 0644, &error), 0);
	table_async_lookup(pool, spec, "example.com", on_answer, &a);
	assert_int_equal(a.calls, 0);
	run_until_done(base, pool);
	assert_int_equal(a.status, TABLE_FOUND);
	assert_string_equal(str_c(&a.value), "smtp:[mx.example.com]");
	table_async_destroy(&pool);
	event_base_free(base);
	unlink(path);
	rmdir(dir);
	free(path);
	free(spec);
	str_free(&error);
	answer_free(&a, 1);
}

static void test_cancel_memory_lookup(void **state)
{
	struct event_base *base = event_base_new();
	struct table_async *pool = pool_new(base, 1, NULL);
	struct table_async_request *req;
	struct answer a[2];

	(void)state;
	answer_init(a, 2);
	req = table_async_lookup(pool, inline_spec, "alice@example.com", on_answer, &a[0]);
	table_async_lookup(pool, inline_spec, "bob@example.com", on_answer, &a[1]);
	table_async_cancel(&req);
	assert_null(req);
	table_async_cancel(&req); /* NULL: no-op */
	assert_int_equal(table_async_pending(pool), 1);
	run_until_done(base, pool);
	run_for(base, 50);
	assert_int_equal(a[0].calls, 0);
	assert_int_equal(a[1].calls, 1);
	table_async_destroy(&pool);
	event_base_free(base);
	answer_free(a, 2);
}

/* A callback that cancels another request and starts a new lookup. */
struct chain {
	struct table_async *pool;
	struct table_async_request *victim;
	struct answer *mine, *next;
	bool in_callback;
	bool nested; /* a callback ran inside this one */
};

static void on_chain(const struct table_result *r, void *ctx)
{
	struct chain *c = ctx;

	if (c->in_callback)
		c->nested = true;
	c->in_callback = true;
	on_answer(r, c->mine);
	table_async_cancel(&c->victim);
	table_async_lookup(c->pool, inline_spec, "bob@example.com", on_answer, c->next);
	assert_int_equal(c->next->calls, 0);
	c->in_callback = false;
}

static void test_cancel_and_lookup_from_callback(void **state)
{
	struct event_base *base = event_base_new();
	struct table_async *pool = pool_new(base, 1, NULL);
	struct answer a[3];
	struct chain c = {.pool = pool, .mine = &a[0], .next = &a[2]};

	(void)state;
	answer_init(a, 3);
	table_async_lookup(pool, inline_spec, "alice@example.com", on_chain, &c);
	/* Answered in the same batch as the first: cancelled from its callback. */
	c.victim = table_async_lookup(pool, inline_spec, "alice@example.com", on_answer, &a[1]);
	run_until_done(base, pool);
	assert_int_equal(a[0].calls, 1);
	assert_int_equal(a[1].calls, 0);
	assert_int_equal(a[2].calls, 1);
	assert_string_equal(str_c(&a[2].value), "example.com/bob/");
	assert_false(c.nested);
	table_async_destroy(&pool);
	event_base_free(base);
	answer_free(a, 3);
}

static void test_destroy_with_pending(void **state)
{
	struct event_base *base = event_base_new();
	struct table_async *pool = pool_new(base, 2, NULL);
	struct answer a[4];

	(void)state;
	answer_init(a, 4);
	for (int i = 0; i < 4; i++)
		table_async_lookup(pool, inline_spec, "alice@example.com", on_answer, &a[i]);
	table_async_destroy(&pool);
	run_for(base, 20);
	for (int i = 0; i < 4; i++)
		assert_int_equal(a[i].calls, 0);
	event_base_free(base);
	answer_free(a, 4);
}

static void test_bad_parameter(void **state)
{
	struct event_base *base = event_base_new();
	struct config *cfg = config_from("table_async_queue_limit = lots\n");
	struct table_open_context ctx = {.cfg = cfg, .config_dir = "/tmp"};
	str_t error;

	(void)state;
	str_init(&error);
	assert_null(table_async_new(base, 1, &ctx, &error));
	assert_non_null(strstr(str_c(&error), "table_async_queue_limit"));
	assert_non_null(strstr(str_c(&error), "main.cf, line 1"));
	config_destroy(&cfg);
	event_base_free(base);
	str_free(&error);
}

/* ---- jobs ------------------------------------------------------------- */

/* A gate a job waits at until the test opens it. */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_open;

struct job {
	bool wait_at_gate;
	bool started; /* the worker took it (under gate_lock) */
	bool ran; /* set by the worker */
	bool in_worker; /* run() was not called in the event thread */
	pthread_t event_thread;
	int done_calls;
	char *error;
	int *freed;
};

static void gate_set(bool open)
{
	pthread_mutex_lock(&gate_lock);
	gate_open = open;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
}

static void job_run(void *arg)
{
	struct job *j = arg;

	if (j->wait_at_gate) {
		pthread_mutex_lock(&gate_lock);
		j->started = true;
		while (!gate_open)
			pthread_cond_wait(&gate_cond, &gate_lock);
		pthread_mutex_unlock(&gate_lock);
	}
	j->in_worker = !pthread_equal(pthread_self(), j->event_thread);
	j->ran = true;
}

static void job_done(void *arg, const char *error, void *cb_ctx)
{
	struct job *j = arg;

	assert_ptr_equal(cb_ctx, j);
	j->done_calls++;
	free(j->error);
	j->error = error != NULL ? xstrdup(error) : NULL;
}

/* The test keeps its struct job; only the count of frees is recorded. */
static void job_free(void *arg)
{
	struct job *j = arg;

	(*j->freed)++;
}

static void job_init(struct job *j, size_t n, int *freed, bool wait)
{
	for (size_t i = 0; i < n; i++) {
		memset(&j[i], 0, sizeof(j[i]));
		j[i].wait_at_gate = wait;
		j[i].event_thread = pthread_self();
		j[i].freed = freed;
	}
}

static void job_cleanup(struct job *j, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(j[i].error);
}

static void test_job_runs_in_a_worker(void **state)
{
	struct event_base *base = event_base_new();
	struct table_async *pool = pool_new(base, 2, NULL);
	struct job j[3];
	int freed = 0;

	(void)state;
	job_init(j, 3, &freed, false);
	for (int i = 0; i < 3; i++)
		table_async_job(pool, job_run, job_done, job_free, &j[i], &j[i]);
	/* Never answered before the call returns. */
	assert_int_equal(j[0].done_calls + j[1].done_calls + j[2].done_calls, 0);
	assert_int_equal(table_async_pending(pool), 3);
	run_until_done(base, pool);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(j[i].done_calls, 1);
		assert_true(j[i].ran);
		assert_true(j[i].in_worker);
		assert_null(j[i].error);
	}
	assert_int_equal(freed, 3);
	table_async_destroy(&pool);
	event_base_free(base);
	job_cleanup(j, 3);
}

static void test_job_queue_full_and_cancel(void **state)
{
	struct event_base *base = event_base_new();
	struct config *cfg = config_from("table_async_queue_limit = 1\n");
	struct table_async *pool = pool_new(base, 1, cfg);
	struct table_async_request *req[4];
	struct job j[4];
	int freed = 0;

	(void)state;
	job_init(j, 4, &freed, true);
	gate_set(false);
	/* j[0] runs (at the gate), j[1] is queued, j[2] finds the queue
	 * full; j[3] is queued once j[1] is cancelled. */
	req[0] = table_async_job(pool, job_run, job_done, job_free, &j[0], &j[0]);
	for (int turn = 0; turn < 200; turn++) {
		bool started;

		pthread_mutex_lock(&gate_lock);
		started = j[0].started;
		pthread_mutex_unlock(&gate_lock);
		if (started)
			break;
		run_for(base, 10);
	}
	req[1] = table_async_job(pool, job_run, job_done, job_free, &j[1], &j[1]);
	req[2] = table_async_job(pool, job_run, job_done, job_free, &j[2], &j[2]);
	assert_int_equal(j[2].done_calls, 0); /* refused, but answered later */
	for (int turn = 0; turn < 20 && j[2].done_calls == 0; turn++)
		run_for(base, 50);
	assert_int_equal(j[2].done_calls, 1);
	assert_false(j[2].ran);
	assert_non_null(j[2].error);
	assert_non_null(strstr(j[2].error, "lookup queue full"));
	assert_int_equal(freed, 1);
	req[2] = NULL;
	/* Cancel the queued one (freed at once, never run) and the running
	 * one (freed when the worker is done, never answered). */
	table_async_cancel(&req[1]);
	assert_null(req[1]);
	assert_int_equal(freed, 2);
	table_async_cancel(&req[0]);
	req[3] = table_async_job(pool, job_run, job_done, job_free, &j[3], &j[3]);
	gate_set(true);
	run_until_done(base, pool);
	run_for(base, 100);
	assert_int_equal(j[0].done_calls, 0);
	assert_true(j[0].ran);
	assert_int_equal(j[1].done_calls, 0);
	assert_false(j[1].ran);
	assert_int_equal(j[3].done_calls, 1);
	assert_null(j[3].error);
	assert_int_equal(freed, 4);
	table_async_destroy(&pool);
	config_destroy(&cfg);
	event_base_free(base);
	job_cleanup(j, 4);
}

static void test_job_destroy_with_pending(void **state)
{
	struct event_base *base = event_base_new();
	struct table_async *pool = pool_new(base, 1, NULL);
	struct job j[3];
	int freed = 0;

	(void)state;
	job_init(j, 3, &freed, true);
	gate_set(false);
	for (int i = 0; i < 3; i++)
		table_async_job(pool, job_run, job_done, job_free, &j[i], &j[i]);
	run_for(base, 50);
	/* The running job is let go so that the worker can be joined; the
	 * rest is dropped: no callback, every job freed once. */
	gate_set(true);
	table_async_destroy(&pool);
	for (int i = 0; i < 3; i++)
		assert_int_equal(j[i].done_calls, 0);
	assert_int_equal(freed, 3);
	event_base_free(base);
	job_cleanup(j, 3);
}

#if HAVE_SQLITE
/* ---- the worker path: sqlite tables ----------------------------------- */

#define USERS 64

struct sqldb {
	char dir[64];
	char db[128];
	char cf[128];
	char spec[160];
	sqlite3 *lock; /* the test's own connection, holding a write lock */
};

static void sqldb_exec(sqlite3 *db, const char *sql)
{
	char *err = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("sqlite: %s: %s", sql, err);
}

/* A database of USERS mailboxes userN@example.com -> example.com/userN/,
 * and its .cf file; query_timeout is how long a lookup waits for a lock. */
static void sqldb_init(struct sqldb *d, unsigned query_timeout)
{
	sqlite3 *db = NULL;
	str_t text, error;

	memset(d, 0, sizeof(*d));
	snprintf(d->dir, sizeof(d->dir), "/tmp/postern-test-async-XXXXXX");
	assert_non_null(mkdtemp(d->dir));
	snprintf(d->db, sizeof(d->db), "%s/mail.db", d->dir);
	snprintf(d->cf, sizeof(d->cf), "%s/mailboxes.cf", d->dir);
	snprintf(d->spec, sizeof(d->spec), "sqlite:%s", d->cf);
	assert_int_equal(sqlite3_open(d->db, &db), SQLITE_OK);
	sqldb_exec(db, "CREATE TABLE mailboxes (address TEXT PRIMARY KEY, maildir TEXT)");
	str_init(&text);
	str_init(&error);
	for (unsigned i = 0; i < USERS; i++) {
		str_reset(&text);
		str_appendf(&text,
		            "INSERT INTO mailboxes VALUES ('user%u@example.com', "
		            "'example.com/user%u/')",
		            i, i);
		sqldb_exec(db, str_c(&text));
	}
	sqlite3_close(db);
	str_reset(&text);
	str_appendf(&text,
	            "dbpath = %s\n"
	            "query = SELECT maildir FROM mailboxes WHERE address = '%%s'\n"
	            "query_timeout = %u\n",
	            d->db, query_timeout);
	assert_int_equal(fs_write_durable(d->cf, text.buf, text.len, 0644, &error), 0);
	str_free(&text);
	str_free(&error);
}

/* Take the database's write lock (readers then wait, as behind a long
 * transaction of `postern db migrate`), or give it back. */
static void sqldb_lock(struct sqldb *d)
{
	assert_int_equal(sqlite3_open(d->db, &d->lock), SQLITE_OK);
	sqldb_exec(d->lock, "BEGIN EXCLUSIVE");
}

static void sqldb_unlock(struct sqldb *d)
{
	sqldb_exec(d->lock, "COMMIT");
	sqlite3_close(d->lock);
	d->lock = NULL;
}

static void sqldb_free(struct sqldb *d)
{
	if (d->lock != NULL)
		sqldb_unlock(d);
	unlink(d->db);
	unlink(d->cf);
	rmdir(d->dir);
}

static void test_many_remote_lookups(void **state)
{
	enum { N = 4 * USERS + 16 };
	struct event_base *base = event_base_new();
	struct table_async *pool = pool_new(base, 4, NULL);
	struct answer *a = xcalloc(N, sizeof(*a));
	char expect[64], key[64];
	struct table_cache_stats st;
	struct sqldb d;
	uint64_t hits;

	(void)state;
	sqldb_init(&d, 10);
	answer_init(a, N);
	for (int round = 0; round < 2; round++) {
		table_cache_get_stats(table_async_cache(pool), &st);
		hits = st.hits;
		for (unsigned i = 0; i < N; i++) {
			/* The last 16 keys are unknown. */
			if (i < 4 * USERS)
				snprintf(key, sizeof(key), "user%u@example.com", i % USERS);
			else
				snprintf(key, sizeof(key), "nobody%u@example.com", i);
			assert_non_null(table_async_lookup(pool, d.spec, key, on_answer, &a[i]));
		}
		/* However quick the workers, no answer before the loop runs. */
		for (unsigned i = 0; i < N; i++)
			assert_int_equal(a[i].calls, round);
		run_until_done(base, pool);
		for (unsigned i = 0; i < N; i++) {
			assert_int_equal(a[i].calls, round + 1);
			if (i < 4 * USERS) {
				snprintf(expect, sizeof(expect), "example.com/user%u/", i % USERS);
				assert_int_equal(a[i].status, TABLE_FOUND);
				assert_string_equal(str_c(&a[i].value), expect);
			} else {
				assert_int_equal(a[i].status, TABLE_NOTFOUND);
			}
		}
	}
	/* The second round was answered by the cache, without the workers. */
	table_cache_get_stats(table_async_cache(pool), &st);
	assert_int_equal(st.hits, hits + N);
	table_async_destroy(&pool);
	event_base_free(base);
	answer_free(a, N);
	free(a);
	sqldb_free(&d);
}

static void test_queue_full(void **state)
{
	struct event_base *base = event_base_new();
	struct config *cfg = config_from("table_async_queue_limit = 1\ntable_cache_size = 0\n");
	struct table_async *pool = pool_new(base, 1, cfg);
	struct answer a[2];
	struct job gate_job;
	struct sqldb d;
	int freed = 0;

	(void)state;
	sqldb_init(&d, 10);
	answer_init(a, 2);
	job_init(&gate_job, 1, &freed, true);
	gate_set(false);
	/* The one worker is held at the gate. Why a job and not a lookup
	 * blocked on a database lock: after queueing a lookup the test cannot
	 * see whether the worker has taken it yet, so which of the next two
	 * lookups found the queue full was a race (the refused one was
	 * answered at once; the other waited behind the lock, 10 s). */
	table_async_job(pool, job_run, job_done, job_free, &gate_job, &gate_job);
	for (int turn = 0; turn < 200; turn++) {
		bool started;

		pthread_mutex_lock(&gate_lock);
		started = gate_job.started;
		pthread_mutex_unlock(&gate_lock);
		if (started)
			break;
		run_for(base, 10);
	}
	/* The queue holds one lookup; the next is refused at once. */
	table_async_lookup(pool, d.spec, "user1@example.com", on_answer, &a[0]);
	table_async_lookup(pool, d.spec, "user1@example.com", on_answer, &a[1]);
	assert_int_equal(a[0].calls + a[1].calls, 0);
	for (int turn = 0; turn < 20 && a[1].calls == 0; turn++)
		run_for(base, 100);
	assert_int_equal(a[0].calls, 0); /* queued behind the gate */
	assert_int_equal(a[1].calls, 1);
	assert_int_equal(a[1].status, TABLE_TEMPFAIL);
	assert_non_null(strstr(str_c(&a[1].error), "lookup queue full"));
	assert_non_null(strstr(str_c(&a[1].error), d.spec));
	/* The worker is free: the queued lookup is answered properly. */
	gate_set(true);
	run_until_done(base, pool);
	assert_int_equal(gate_job.done_calls, 1);
	assert_int_equal(a[0].calls, 1);
	assert_int_equal(a[0].status, TABLE_FOUND);
	assert_string_equal(str_c(&a[0].value), "example.com/user1/");
	table_async_destroy(&pool);
	config_destroy(&cfg);
	event_base_free(base);
	answer_free(a, 2);
	job_cleanup(&gate_job, 1);
	sqldb_free(&d);
}

static void test_cancel_remote_lookup(void **state)
{
	struct event_base *base = event_base_new();
	struct table_async *pool = pool_new(base, 1, NULL);
	struct table_async_request *req[2];
	struct answer a[3];
	struct sqldb d;

	(void)state;
	sqldb_init(&d, 10);
	answer_init(a, 3);
	sqldb_lock(&d);
	/* req[0] is with the worker (waiting for the lock), req[1] queued. */
	req[0] = table_async_lookup(pool, d.spec, "user1@example.com", on_answer, &a[0]);
	run_for(base, 100);
	req[1] = table_async_lookup(pool, d.spec, "user2@example.com", on_answer, &a[1]);
	table_async_lookup(pool, d.spec, "user3@example.com", on_answer, &a[2]);
	table_async_cancel(&req[0]);
	table_async_cancel(&req[1]);
	assert_null(req[0]);
	assert_int_equal(table_async_pending(pool), 1);
	sqldb_unlock(&d);
	run_until_done(base, pool);
	run_for(base, 100);
	assert_int_equal(a[0].calls, 0);
	assert_int_equal(a[1].calls, 0);
	assert_int_equal(a[2].calls, 1);
	assert_string_equal(str_c(&a[2].value), "example.com/user3/");
	table_async_destroy(&pool);
	event_base_free(base);
	answer_free(a, 3);
	sqldb_free(&d);
}

static void test_remote_table_unavailable(void **state)
{
	struct event_base *base = event_base_new();
	struct table_async *pool = pool_new(base, 2, NULL);
	struct answer a;
	struct sqldb d;

	(void)state;
	sqldb_init(&d, 10);
	answer_init(&a, 1);
	unlink(d.db); /* the database is gone: a temporary failure, not "not found" */
	table_async_lookup(pool, d.spec, "user1@example.com", on_answer, &a);
	run_until_done(base, pool);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.status, TABLE_TEMPFAIL);
	assert_non_null(strstr(str_c(&a.error), d.db));
	table_async_destroy(&pool);
	event_base_free(base);
	answer_free(&a, 1);
	sqldb_free(&d);
}

static void test_destroy_while_workers_busy(void **state)
{
	struct event_base *base = event_base_new();
	struct table_async *pool = pool_new(base, 2, NULL);
	struct answer a[6];
	struct sqldb d;

	(void)state;
	sqldb_init(&d, 1); /* a locked lookup gives up after 1 s */
	answer_init(a, 6);
	sqldb_lock(&d);
	for (int i = 0; i < 6; i++)
		table_async_lookup(pool, d.spec, "user1@example.com", on_answer, &a[i]);
	run_for(base, 50);
	/* Workers finish what they run (bounded by query_timeout), the rest
	 * is dropped; no callback, nothing leaked (ASan). */
	table_async_destroy(&pool);
	run_for(base, 50);
	for (int i = 0; i < 6; i++)
		assert_int_equal(a[i].calls, 0);
	event_base_free(base);
	answer_free(a, 6);
	sqldb_free(&d);
}
#endif /* HAVE_SQLITE */

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_memory_table_answers_later),
		cmocka_unit_test(test_failures_answer_later),
		cmocka_unit_test(test_texthash_file),
		cmocka_unit_test(test_cancel_memory_lookup),
		cmocka_unit_test(test_cancel_and_lookup_from_callback),
		cmocka_unit_test(test_destroy_with_pending),
		cmocka_unit_test(test_bad_parameter),
		cmocka_unit_test(test_job_runs_in_a_worker),
		cmocka_unit_test(test_job_queue_full_and_cancel),
		cmocka_unit_test(test_job_destroy_with_pending),
#if HAVE_SQLITE
		cmocka_unit_test(test_many_remote_lookups),
		cmocka_unit_test(test_queue_full),
		cmocka_unit_test(test_cancel_remote_lookup),
		cmocka_unit_test(test_remote_table_unavailable),
		cmocka_unit_test(test_destroy_while_workers_busy),
#endif
	};

	/* TEST_FILTER=test_queue_full runs one test (e.g. a thousand times in
	 * a loop, to show a race is gone). */
	if (getenv("TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
