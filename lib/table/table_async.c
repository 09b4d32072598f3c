/* table_async.c - asynchronous table lookups on a libevent loop (see
 * table_async.h).
 *
 * Used by the event-driven daemons. The event thread owns the requests
 * and the in-memory tables; N worker threads own one table object per
 * remote table each (backends are single-threaded, so a table object,
 * and the database connection inside it, is only ever used by the
 * thread that opened it). The two sides meet in one mutex-protected
 * structure: the queue of requests waiting for a worker and the list of
 * answers waiting for delivery.
 *
 * Why a pipe and not evthread's thread-safe event_active(): the latter
 * needs evthread_use_pthreads() called once per process before any
 * event_base is made, a process-wide switch that locks every libevent
 * call in every daemon. With a pipe, libevent stays single-threaded: a
 * worker writes one byte when it queues the first undelivered answer,
 * and the event thread's read event collects every answer then queued.
 * Answers that the event thread produces itself (memory tables, cache
 * hits, failures) go on the same list and are delivered by a zero-length
 * timer, on the next turn of the loop; either way delivery happens after
 * table_async_lookup has returned.
 *
 * The pipe's read event is added only while requests are with the
 * workers, so event_base_dispatch() returns once nothing is pending,
 * like any libevent program whose events are all done.
 *
 * A job (table_async_job) is a request whose work is a function instead
 * of a table lookup: it waits in the same queue (so the queue limit
 * bounds all blocking work), is run by the same workers and comes back
 * the same way; only the worker's step and the callback differ.
 *
 * Failure: every lookup gets exactly one answer unless cancelled; what
 * cannot be done (unknown type, table that will not open, full queue,
 * backend down) is a TABLE_TEMPFAIL naming the table. Creation fails
 * only for bad parameters or when the system refuses a pipe or thread.
 */
#include "table/table_async.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include <event2/event.h>

#include "base/hash.h"
#include "base/log.h"
#include "base/mem.h"
#include "conf/config.h"

enum req_state {
	REQ_QUEUED, /* in pool->queue, waiting for a worker */
	REQ_RUNNING, /* a worker is looking it up */
	REQ_DONE, /* answered; in pool->done or being delivered */
};

struct table_async_request {
	struct table_async *pool;
	char *spec;
	char *key;
	struct table_result result;
	table_async_cb *cb;
	void *cb_ctx;
	/* A job instead of a lookup (spec and key are NULL then). */
	table_async_job_run *job_run;
	table_async_job_done *job_done;
	void (*job_free)(void *job);
	void *job;
	const char *job_error; /* static text: why run() was not called */
	enum req_state state; /* changed under pool->lock */
	bool remote; /* handed to the workers (counts in in_flight) */
	bool cancelled; /* event thread only */
	TAILQ_ENTRY(table_async_request) link;
};

TAILQ_HEAD(req_list, table_async_request);

struct worker {
	struct table_async *pool;
	pthread_t thread;
	bool started;
	struct config *cfg; /* this worker's own copy */
	hash_t *tables; /* spec -> struct table *, this worker's own */
};

struct table_async {
	struct event_base *base;
	struct config *cfg; /* the caller's, or own_cfg */
	struct config *own_cfg; /* defaults, when the caller gave none */
	char *config_dir;
	struct table_cache *cache; /* NULL when table_cache_size = 0 */
	hash_t *local_tables; /* spec -> struct table *, event thread only */
	size_t queue_limit;

	pthread_mutex_t lock;
	pthread_cond_t cond; /* signals workers: queue not empty, or stopping */
	struct req_list queue; /* under lock */
	size_t queued; /* under lock */
	struct req_list done; /* under lock */
	bool wake_pending; /* under lock: a byte is in the pipe */
	bool stopping; /* under lock */

	int wake_fd[2];
	struct event *wake_ev; /* pipe read end: worker answers */
	struct event *local_ev; /* zero timer for event-thread answers */
	size_t in_flight; /* event thread: remote requests not yet collected */
	size_t pending; /* event thread: callbacks still owed */

	unsigned nworkers;
	struct worker *workers;
};

static void table_free_value(void *value)
{
	struct table *t = value;

	table_close(&t);
}

static void request_free(struct table_async_request *req)
{
	if (req->job_free != NULL)
		req->job_free(req->job);
	free(req->spec);
	free(req->key);
	table_result_free(&req->result);
	free(req);
}

/* Open spec or find it already open in tables. NULL with the reason in
 * r (TEMPFAIL) when it cannot be opened; the next lookup tries again,
 * so a table file fixed by the administrator is picked up. */
static struct table *get_table(hash_t *tables, const char *spec,
                               const struct table_open_context *ctx, struct table_result *r)
{
	struct table *t = hash_get(tables, spec);

	if (t != NULL)
		return t;
	t = table_open(spec, ctx, &r->error);
	if (t == NULL) {
		r->status = TABLE_TEMPFAIL;
		return NULL;
	}
	hash_put(tables, spec, t);
	return t;
}

/* ---- worker threads ---------------------------------------------------- */

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct table_async *pool = w->pool;
	struct table_open_context ctx = {.cfg = w->cfg, .config_dir = pool->config_dir};

	for (;;) {
		struct table_async_request *req;

		pthread_mutex_lock(&pool->lock);
		while (!pool->stopping && TAILQ_EMPTY(&pool->queue))
			pthread_cond_wait(&pool->cond, &pool->lock);
		if (pool->stopping) {
			pthread_mutex_unlock(&pool->lock);
			break;
		}
		req = TAILQ_FIRST(&pool->queue);
		TAILQ_REMOVE(&pool->queue, req, link);
		pool->queued--;
		req->state = REQ_RUNNING;
		pthread_mutex_unlock(&pool->lock);

		/* Only this thread touches req's spec, key, result and job
		 * now. */
		if (req->job_run != NULL) {
			req->job_run(req->job);
		} else {
			struct table *t = get_table(w->tables, req->spec, &ctx, &req->result);

			if (t != NULL)
				table_lookup(t, req->key, &req->result);
			table_cache_update(pool->cache, req->spec, req->key, &req->result);
		}

		pthread_mutex_lock(&pool->lock);
		req->state = REQ_DONE;
		TAILQ_INSERT_TAIL(&pool->done, req, link);
		if (!pool->wake_pending) {
			ssize_t n;

			pool->wake_pending = true;
			/* Cannot block or fill up: at most one byte is
			 * unread, since wake_pending is cleared when the
			 * event thread drains the pipe. */
			do
				n = write(pool->wake_fd[1], "", 1);
			while (n < 0 && errno == EINTR);
			if (n != 1)
				log_panic("%s: write to wake-up pipe: %m", __func__);
		}
		pthread_mutex_unlock(&pool->lock);
	}
	return NULL;
}

/* ---- delivery in the event thread ------------------------------------- */

static void deliver(evutil_socket_t fd, short what, void *arg)
{
	struct table_async *pool = arg;
	struct req_list batch = TAILQ_HEAD_INITIALIZER(batch);
	struct table_async_request *req;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&pool->lock);
	TAILQ_CONCAT(&batch, &pool->done, link);
	if (pool->wake_pending) {
		char drain[64];

		while (read(pool->wake_fd[0], drain, sizeof(drain)) > 0)
			;
		pool->wake_pending = false;
	}
	pthread_mutex_unlock(&pool->lock);

	/* A callback may start new lookups (they go on pool->done, for a
	 * later turn) or cancel requests of this batch (they are marked,
	 * and freed here without a call). */
	while ((req = TAILQ_FIRST(&batch)) != NULL) {
		TAILQ_REMOVE(&batch, req, link);
		if (req->remote && --pool->in_flight == 0)
			event_del(pool->wake_ev);
		if (!req->cancelled) {
			pool->pending--;
			if (req->job_done != NULL)
				req->job_done(req->job, req->job_error, req->cb_ctx);
			else
				req->cb(&req->result, req->cb_ctx);
		}
		request_free(req);
	}
}

/* Queue an answer made in the event thread for delivery on the next turn
 * of the loop. Why a zero timeout and not event_active(): libevent runs
 * events activated from a callback in the same pass, so a callback that
 * gets a cache hit and at once asks again would be served again and
 * again without the loop ever polling sockets or firing timers. Timers
 * that expire are only collected once per turn, after polling. */
static void finish_local(struct table_async *pool, struct table_async_request *req)
{
	static const struct timeval now = {0, 0};

	pthread_mutex_lock(&pool->lock);
	req->state = REQ_DONE;
	TAILQ_INSERT_TAIL(&pool->done, req, link);
	pthread_mutex_unlock(&pool->lock);
	if (!evtimer_pending(pool->local_ev, NULL))
		evtimer_add(pool->local_ev, &now);
}

/* ---- public ------------------------------------------------------------ */

static void set_nonblock_cloexec(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	(void)fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
}

static int start_workers(struct table_async *pool, str_t *error)
{
	sigset_t all, old;
	int rc = 0;

	/* Workers block every signal, so that signals reach the event
	 * thread (libevent's signal events) and never interrupt a
	 * database client library half-way. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (unsigned i = 0; i < pool->nworkers; i++) {
		struct worker *w = &pool->workers[i];
		int err;

		w->pool = pool;
		w->cfg = config_clone(pool->cfg);
		w->tables = hash_new(table_free_value);
		err = pthread_create(&w->thread, NULL, worker_main, w);
		if (err != 0) {
			str_appendf(error, "cannot start table lookup thread: %s", strerror(err));
			rc = -1;
			break;
		}
		w->started = true;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

struct table_async *table_async_new(struct event_base *base, unsigned workers,
                                    const struct table_open_context *ctx, str_t *error)
{
	struct table_async *pool;
	struct table_cache *cache = NULL;
	struct config *own_cfg = NULL, *cfg = ctx->cfg;
	const char *err;
	int64_t limit, nworkers = workers;

	if (cfg == NULL) {
		/* No main.cf (unit tests, tools): an empty one gives every
		 * parameter its default from params.c. */
		strv_t errors = STRV_INIT;

		if (config_parse_text("", 0, "(defaults)",
		                      ctx->config_dir != NULL ? ctx->config_dir : ".", &own_cfg,
		                      &errors) < 0)
			log_panic("%s: cannot make an empty configuration", __func__);
		strv_free(&errors);
		cfg = own_cfg;
	}
	if (config_get_int(cfg, "table_async_queue_limit", &limit, &err) < 0 ||
	    (workers == 0 && config_get_int(cfg, "table_async_workers", &nworkers, &err) < 0) ||
	    table_cache_process(cfg, &cache, &err) < 0) {
		str_append(error, err);
		config_destroy(&own_cfg);
		return NULL;
	}

	pool = xcalloc(1, sizeof(*pool));
	pool->base = base;
	pool->cfg = cfg;
	pool->own_cfg = own_cfg;
	pool->config_dir = ctx->config_dir != NULL ? xstrdup(ctx->config_dir) : NULL;
	/* The process's cache: resolve.c's synchronous lookups share it. */
	pool->cache = cache;
	pool->local_tables = hash_new(table_free_value);
	pool->queue_limit = (size_t)limit;
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->cond, NULL);
	TAILQ_INIT(&pool->queue);
	TAILQ_INIT(&pool->done);
	pool->nworkers = (unsigned)nworkers;
	pool->workers = xcalloc(pool->nworkers, sizeof(*pool->workers));
	pool->wake_fd[0] = pool->wake_fd[1] = -1;
	if (pipe(pool->wake_fd) < 0) {
		str_appendf(error, "cannot create the table lookup wake-up pipe: %s",
		            strerror(errno));
		table_async_destroy(&pool);
		return NULL;
	}
	set_nonblock_cloexec(pool->wake_fd[0]);
	set_nonblock_cloexec(pool->wake_fd[1]);
	pool->wake_ev = event_new(base, pool->wake_fd[0], EV_READ | EV_PERSIST, deliver, pool);
	pool->local_ev = evtimer_new(base, deliver, pool);
	if (pool->wake_ev == NULL || pool->local_ev == NULL) {
		str_append(error, "cannot create libevent events for table lookups");
		table_async_destroy(&pool);
		return NULL;
	}
	if (start_workers(pool, error) < 0) {
		table_async_destroy(&pool);
		return NULL;
	}
	return pool;
}

void table_async_destroy(struct table_async **poolp)
{
	struct table_async *pool = *poolp;
	struct table_async_request *req;

	if (pool == NULL)
		return;
	pthread_mutex_lock(&pool->lock);
	pool->stopping = true;
	pthread_cond_broadcast(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
	for (unsigned i = 0; i < pool->nworkers; i++) {
		struct worker *w = &pool->workers[i];

		if (w->started)
			pthread_join(w->thread, NULL);
		hash_destroy(&w->tables);
		config_destroy(&w->cfg);
	}
	free(pool->workers);
	while ((req = TAILQ_FIRST(&pool->queue)) != NULL) {
		TAILQ_REMOVE(&pool->queue, req, link);
		request_free(req);
	}
	while ((req = TAILQ_FIRST(&pool->done)) != NULL) {
		TAILQ_REMOVE(&pool->done, req, link);
		request_free(req);
	}
	if (pool->wake_ev != NULL)
		event_free(pool->wake_ev);
	if (pool->local_ev != NULL)
		event_free(pool->local_ev);
	for (int i = 0; i < 2; i++)
		if (pool->wake_fd[i] >= 0)
			close(pool->wake_fd[i]);
	hash_destroy(&pool->local_tables);
	table_cache_release(&pool->cache);
	pthread_cond_destroy(&pool->cond);
	pthread_mutex_destroy(&pool->lock);
	config_destroy(&pool->own_cfg);
	free(pool->config_dir);
	free(pool);
	*poolp = NULL;
}

/* The backend of spec ("type:name"), or NULL with the reason in r. */
static const struct table_backend *spec_backend(const char *spec, struct table_result *r)
{
	const char *colon;
	const struct table_backend *b = NULL;

	if (strncmp(spec, "proxy:", 6) == 0)
		spec += 6; /* accepted and ignored, as table_open() does */
	colon = strchr(spec, ':');

	if (colon != NULL && colon > spec) {
		char *type = xstrndup(spec, (size_t)(colon - spec));

		b = table_backend_find(type);
		free(type);
	}
	if (b == NULL) {
		r->status = TABLE_TEMPFAIL;
		if (colon == NULL || colon == spec)
			str_appendf(&r->error, "bad table name \"%s\": expected type:name", spec);
		else
			str_appendf(&r->error, "unsupported table type \"%.*s\" in \"%s\"",
			            (int)(colon - spec), spec, spec);
	}
	return b;
}

/* Hand req to the workers; false (nothing done) when the queue is full. */
static bool enqueue(struct table_async *pool, struct table_async_request *req)
{
	bool full;

	pthread_mutex_lock(&pool->lock);
	full = pool->queued >= pool->queue_limit;
	if (!full) {
		req->state = REQ_QUEUED;
		req->remote = true;
		TAILQ_INSERT_TAIL(&pool->queue, req, link);
		pool->queued++;
		pthread_cond_signal(&pool->cond);
	}
	pthread_mutex_unlock(&pool->lock);
	if (full)
		return false;
	if (pool->in_flight++ == 0)
		event_add(pool->wake_ev, NULL);
	return true;
}

struct table_async_request *table_async_lookup(struct table_async *pool, const char *spec,
                                               const char *key, table_async_cb *cb, void *cb_ctx)
{
	struct table_async_request *req = xcalloc(1, sizeof(*req));
	const struct table_backend *b;

	req->pool = pool;
	req->spec = xstrdup(spec);
	req->key = xstrdup(key);
	req->cb = cb;
	req->cb_ctx = cb_ctx;
	table_result_init(&req->result);
	pool->pending++;

	b = spec_backend(spec, &req->result);
	if (b == NULL) {
		finish_local(pool, req);
		return req;
	}
	if ((b->flags & TABLE_F_REMOTE) == 0) {
		struct table_open_context ctx = {.cfg = pool->cfg, .config_dir = pool->config_dir};
		struct table *t = get_table(pool->local_tables, spec, &ctx, &req->result);

		if (t != NULL)
			table_lookup(t, key, &req->result);
		finish_local(pool, req);
		return req;
	}
	if (table_cache_get(pool->cache, spec, key, &req->result)) {
		finish_local(pool, req);
		return req;
	}

	if (!enqueue(pool, req)) {
		/* Why fail at once: a full queue means the backend is slower
		 * than the mail coming in; waiting longer would only hold
		 * more sessions open. The client gets a 4xx and retries;
		 * a known key may still be answered from the grace cache. */
		req->result.status = TABLE_TEMPFAIL;
		str_appendf(&req->result.error, "%s: lookup queue full (%zu lookups waiting)", spec,
		            pool->queue_limit);
		table_cache_update(pool->cache, spec, key, &req->result);
		finish_local(pool, req);
	}
	return req;
}

struct table_async_request *table_async_job(struct table_async *pool, table_async_job_run *run,
                                            table_async_job_done *done, void (*free_job)(void *job),
                                            void *job, void *cb_ctx)
{
	struct table_async_request *req = xcalloc(1, sizeof(*req));

	req->pool = pool;
	req->job_run = run;
	req->job_done = done;
	req->job_free = free_job;
	req->job = job;
	req->cb_ctx = cb_ctx;
	table_result_init(&req->result);
	pool->pending++;
	if (!enqueue(pool, req)) {
		req->job_error = "lookup queue full";
		finish_local(pool, req);
	}
	return req;
}

void table_async_cancel(struct table_async_request **reqp)
{
	struct table_async_request *req = *reqp;
	struct table_async *pool;
	bool unqueued = false;

	if (req == NULL)
		return;
	*reqp = NULL;
	pool = req->pool;
	if (req->cancelled)
		return;
	req->cancelled = true;
	pool->pending--;
	pthread_mutex_lock(&pool->lock);
	if (req->state == REQ_QUEUED && req->remote) {
		TAILQ_REMOVE(&pool->queue, req, link);
		pool->queued--;
		unqueued = true;
	}
	pthread_mutex_unlock(&pool->lock);
	/* A running or answered request is freed when it is collected. */
	if (unqueued) {
		if (--pool->in_flight == 0)
			event_del(pool->wake_ev);
		request_free(req);
	}
}

struct table_cache *table_async_cache(struct table_async *pool)
{
	return pool->cache;
}

size_t table_async_pending(const struct table_async *pool)
{
	return pool->pending;
}
