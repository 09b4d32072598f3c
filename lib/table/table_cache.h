/* table_cache.h - a cache in front of remote lookup tables.
 *
 * Remote tables (TABLE_F_REMOTE: sqlite:, mysql:, pgsql:, ldap:, db:) are
 * looked up through one cache per process, shared by the threads of
 * table_async.h and by synchronous callers. An entry is keyed by the
 * table spec and the lookup key and holds the last answer the backend
 * gave: found (with its value) or not found.
 *
 *   - A positive answer is served from the cache for positive_ttl seconds
 *     (table_cache_positive_ttl), a negative one for negative_ttl
 *     (table_cache_negative_ttl); after that the backend is asked again.
 *   - A temporary failure is never cached. When the backend fails, the
 *     last known answer for that key, even expired, is served instead if
 *     it is younger than grace_time (table_cache_grace_time), so a database
 *     outage does not reject or bounce mail for known users. This is
 *     logged once per key and outage:
 *       warning: TABLE: serving cached answer for KEY: WHY
 *     and again in the next outage once the backend has answered in
 *     between. A key with no answer younger than the grace time stays a
 *     temporary failure.
 *   - Every answer served in place of a failed backend is marked
 *     (table_result.stale, error: the backend's reason). A stale "not
 *     found" is no proof (a mailbox may have been made since): its
 *     callers go on with it (an address that is no alias may still be a
 *     mailbox) but never turn it into a refusal or a bounce: smtpd's
 *     restrictions make such a 5xx a 451 (restrict.c), resolve.c a
 *     4.3.0 deferral (table_cache_lookup_fresh() counts them per thread:
 *     table_cache_stale_negatives()).
 *   - After a temporary failure of a table, its keys are answered
 *     without asking it for TABLE_CACHE_RETRY_MS: from the grace period,
 *     or as a temporary failure at once; then one lookup tries it again
 *     (so a hung server costs one timeout per interval, not one per
 *     lookup). A found or not-found answer from it ends the outage.
 *   - Answers are also shared with the other smtpd and qmgr processes
 *     through a mapped file (table_shared.h): a backend failure is
 *     answered from what another process saw when this one has nothing.
 *   - At most size entries are kept (table_cache_size); the least recently
 *     used one is evicted first. size 0 turns the cache (and grace) off.
 *
 * All functions are thread-safe (one mutex per cache).
 */
#ifndef POSTERN_TABLE_CACHE_H
#define POSTERN_TABLE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "table/table.h"

struct config;

struct table_cache_settings {
	size_t size; /* entries kept; 0 disables the cache */
	uint64_t positive_ttl; /* seconds a found answer is fresh */
	uint64_t negative_ttl; /* seconds a not-found answer is fresh */
	uint64_t grace_time; /* seconds an answer may stand in for a failed backend */
};

/* The defaults of the table_cache_* parameters. */
void table_cache_settings_default(struct table_cache_settings *s);
/* Read table_cache_size, table_cache_positive_ttl, table_cache_negative_ttl
 * and table_cache_grace_time from cfg (NULL: the defaults). -1 with
 * *error_r (owned by cfg) naming the parameter and where it was set. */
int table_cache_settings_load(struct config *cfg, struct table_cache_settings *s,
                              const char **error_r);

struct table_cache;

/* A new empty cache with settings s (copied). Never fails. */
struct table_cache *table_cache_new(const struct table_cache_settings *s);
/* Free the cache and every entry; *cp set to NULL; no-op on NULL. */
void table_cache_destroy(struct table_cache **cp);

/* The time source, in milliseconds on a clock that never goes back.
 * The default is CLOCK_MONOTONIC; unit tests inject their own so that
 * expiry is tested without sleeping. Set it before sharing the cache. */
typedef uint64_t table_cache_clock_fn(void *ctx);
void table_cache_set_clock(struct table_cache *c, table_cache_clock_fn *clock, void *ctx);

/* The fresh answer for key in table spec: true with r->status and r->value
 * set (r reset first), or false (nothing cached, or expired) leaving r
 * untouched. */
bool table_cache_get(struct table_cache *c, const char *spec, const char *key,
                     struct table_result *r);

/* Record the backend's answer r for key in table spec, after a
 * table_cache_get() miss. TABLE_FOUND and TABLE_NOTFOUND are stored as the
 * fresh answer (ending an outage for that key). TABLE_TEMPFAIL is not
 * stored: when an answer younger than the grace time is known, r is
 * replaced by it, marked stale (and the warning above logged once per
 * outage); else r stays a temporary failure. During a known outage
 * table_cache_get() serves such answers too, marked stale. */
void table_cache_update(struct table_cache *c, const char *spec, const char *key,
                        struct table_result *r);

/* How to ask the backend: fill r (initialised, reset) for key. */
typedef void table_cache_fetch_fn(const char *key, struct table_result *r, void *ctx);

/* table_cache_get(), and on a miss fetch(key, r, ctx) followed by
 * table_cache_update(). r must have been initialised. The mutex is not
 * held while fetch runs, so two threads missing the same key both ask
 * the backend. */
void table_cache_lookup(struct table_cache *c, const char *spec, const char *key,
                        table_cache_fetch_fn *fetch, void *ctx, struct table_result *r);

/* table_lookup(t, key, r) through the cache when t is a remote table,
 * directly otherwise. c may be NULL (no cache). */
void table_cache_lookup_table(struct table_cache *c, struct table *t, const char *key,
                              struct table_result *r);

/* table_lookup(t, key, r) for a remote table, always asking the backend
 * (no TTL: the answer is as fresh as the database), storing each answer,
 * and, when the backend fails, serving the last known answer younger
 * than the grace time, stale "not found" included (each one counted in
 * table_cache_stale_negatives()). During a known outage (above) the
 * backend is not asked for keys the cache can answer. c may be NULL; r
 * is reset first. For resolve.c (qmgr, smtpd's quota check, trace). */
void table_cache_lookup_fresh(struct table_cache *c, struct table *t, const char *key,
                              struct table_result *r);

/* How many stale "not found" answers table_cache_lookup_fresh() has given
 * to the calling thread since it started. A caller that would refuse or
 * bounce an address compares it before and after its lookups: if it
 * grew, the refusal rests on an answer the database could not confirm
 * and must be a temporary failure instead. */
uint64_t table_cache_stale_negatives(void);

/* How long a failed backend is left alone for keys the cache knows. */
#define TABLE_CACHE_RETRY_MS 5000

/* The process's one cache, shared by table_async.c and the synchronous
 * lookups of resolve.c: made from cfg's table_cache_* settings on the
 * first call (later calls share it, whatever their cfg), one reference
 * per call. *cache_r is NULL when table_cache_size = 0. -1 with *error_r
 * on a bad parameter. Thread-safe. */
int table_cache_process(struct config *cfg, struct table_cache **cache_r, const char **error_r);
/* Drop a reference from table_cache_process() (the cache is freed with
 * the last one), or destroy a cache from table_cache_new(). *cp set to
 * NULL; no-op on NULL. */
void table_cache_release(struct table_cache **cp);

/* Share answers with the other processes of this postern (table_shared.h):
 * the process's cache (now or when made) writes every backend answer to
 * the file in dir (queue_directory/pid) and, when a backend fails, falls
 * back on what another process stored there within the grace time. For
 * daemons, after their privilege drop (the file is mail_owner's): smtpd
 * and qmgr. A file that cannot be used is a warning, not an error
 * (table_shared.h); -1 with *error_r only on a bad table_cache_*
 * parameter. Nothing is shared when table_cache_size or
 * table_cache_grace_time is 0. */
struct table_shared;
int table_cache_share_process(struct config *cfg, const char *dir, const char **error_r);
/* The same for one cache (tests); shared may be NULL. Not owned. */
void table_cache_set_shared(struct table_cache *c, struct table_shared *shared);

/* Counters since the cache was made, for tests, benchmarks and logs. */
struct table_cache_stats {
	uint64_t hits; /* fresh answers served */
	uint64_t misses; /* table_cache_get() found nothing fresh */
	uint64_t stale_served; /* answers served in place of a temporary failure */
	uint64_t evictions; /* entries dropped to stay within size */
	size_t entries; /* entries held now */
};
void table_cache_get_stats(struct table_cache *c, struct table_cache_stats *st);

#endif
