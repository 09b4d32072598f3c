/* table_async.h - asynchronous table lookups for event-driven daemons.
 *
 * A daemon built on libevent (smtpd, qmgr, ...) must not stall on a slow
 * database: it hands a lookup to a pool and gets the answer in a
 * callback on its event loop, serving other sessions meanwhile.
 *
 * Contract:
 *   - The callback is NEVER called before table_async_lookup() returns,
 *     whatever the table: in-memory tables and cache hits are delivered
 *     on a later turn of the event loop, like database answers.
 *   - A request that is cancelled (table_async_cancel, e.g. the session
 *     closed) never gets its callback.
 *   - Remote tables (TABLE_F_REMOTE) are looked up through the process's
 *     table cache (table_cache.h: TTLs and grace answers during an
 *     outage) and, on a miss, by a pool of worker threads, each with its
 *     own table object (and database connection) per table, opened on
 *     first use. Other tables are memory lookups done in the event
 *     thread.
 *   - At most table_async_queue_limit remote lookups wait for a worker;
 *     beyond that a lookup fails at once (still through the callback)
 *     with TABLE_TEMPFAIL "lookup queue full", unless the cache holds an
 *     answer within its grace time.
 *   - Every failure (unknown table type, table that cannot be opened,
 *     server down) is a TABLE_TEMPFAIL with a message naming the table.
 *   - A job (table_async_job) is any blocking work run by the same
 *     workers, in the same queue and under the same limit as remote
 *     lookups, with the same delivery and cancel rules.
 *
 * Every function is called from the event thread (the one running the
 * event_base); the callbacks run there too.
 */
#ifndef POSTERN_TABLE_ASYNC_H
#define POSTERN_TABLE_ASYNC_H

#include "table/table.h"
#include "table/table_cache.h"

struct event_base;
struct table_async;
struct table_async_request;

/* The answer; r is valid only during the call (the callee copies what it
 * keeps). After the callback the request handle is gone. */
typedef void table_async_cb(const struct table_result *r, void *cb_ctx);

/* A pool delivering answers on base. workers is the number of threads
 * for remote tables (0: the table_async_workers parameter). ctx is
 * copied; ctx->cfg (may be NULL: the parameter defaults) must outlive
 * the pool: it gives table_async_queue_limit and the table_cache_*
 * settings, and each worker gets its own copy for opening tables, so
 * no config object is shared between threads. Fails (NULL, message in
 * error) only on a bad parameter value or when threads or the wake-up
 * pipe cannot be created. */
struct table_async *table_async_new(struct event_base *base, unsigned workers,
                                    const struct table_open_context *ctx, str_t *error);

/* Stop the workers (each finishes the lookup it is running, bounded by
 * the backends' timeouts), join them, close every table and free the
 * pool. Requests not yet delivered are dropped without their callbacks.
 * *poolp set to NULL; no-op on NULL. Not from within a callback. */
void table_async_destroy(struct table_async **poolp);

/* Look key up in the table named spec ("mysql:/etc/postern/x.cf") and
 * call cb(result, cb_ctx) later from the event loop. Returns the request
 * handle, valid until the callback has been called or the request is
 * cancelled; never NULL. */
struct table_async_request *table_async_lookup(struct table_async *pool, const char *spec,
                                               const char *key, table_async_cb *cb, void *cb_ctx);

/* Cancel a request whose callback has not run yet: the callback will not
 * be called. A lookup already running in a worker completes (and its
 * answer is cached) but is not delivered. *reqp set to NULL; no-op on
 * NULL. */
void table_async_cancel(struct table_async_request **reqp);

/* A job: run(job) is called in a worker thread and may block (e.g. a
 * synchronous lib/delivery/resolve.c resolution with its own tables); it
 * must touch nothing the event thread uses without its own locking. Then
 * done(job, error, cb_ctx) is called from the event loop: error is NULL
 * when run() was called, else why it was not (the queue is full). After
 * done, or after a cancel, free_job(job) is called (from the event
 * thread, or from table_async_destroy): the request owns job from the
 * call on, whatever happens. */
typedef void table_async_job_run(void *job);
typedef void table_async_job_done(void *job, const char *error, void *cb_ctx);

/* Queue a job; the handle is used and cancelled like a lookup's. */
struct table_async_request *table_async_job(struct table_async *pool, table_async_job_run *run,
                                            table_async_job_done *done, void (*free_job)(void *job),
                                            void *job, void *cb_ctx);

/* The pool's cache (for statistics), or NULL when table_cache_size = 0. */
struct table_cache *table_async_cache(struct table_async *pool);

/* Requests handed to table_async_lookup() and not yet delivered or
 * cancelled. */
size_t table_async_pending(const struct table_async *pool);

#endif
