/* table_cache.c - the cache in front of remote lookup tables (see
 * table_cache.h).
 *
 * Used by table_async.c (the event-driven daemons' lookups) and by
 * synchronous callers through table_cache_lookup_table(). One hash map
 * from "speclen:spec" + key to an entry, plus a doubly linked list in
 * least-recently-used order for eviction; one mutex guards both.
 *
 * While a table's backend fails, the cache remembers it (outages, by
 * backend: outage_key()) and answers its keys at once for TABLE_CACHE_RETRY_MS
 * before letting one lookup try the backend again: a hung server (one
 * that accepts connections and never answers) then costs one timeout per
 * retry interval, not one per lookup.
 *
 * Failure: nothing here fails. Allocation failure panics (mem.h). A
 * backend's temporary failure is either passed through unchanged or
 * replaced by an answer from the grace period; it is never stored.
 */
#include "table/table_cache.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/hash.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/parse.h"
#include "conf/config.h"
#include "conf/params.h"
#include "table/table_shared.h"

struct cache_entry {
	char *hkey; /* the hash key (our copy, to delete on eviction) */
	enum table_status status;
	char *value; /* TABLE_FOUND: the value; else NULL */
	uint64_t fetched_ms; /* when the backend gave this answer */
	bool outage_logged; /* the grace warning was logged in this outage */
	struct cache_entry *prev, *next; /* LRU list: head = most recent */
};

/* A table whose backend failed: until retry_ms, keys with an answer in
 * the grace period are answered from the cache without asking it. */
struct cache_outage {
	uint64_t retry_ms;
};

struct table_cache {
	struct table_cache_settings set;
	hash_t *outages; /* spec -> struct cache_outage */
	unsigned refs; /* table_cache_process() references */
	table_cache_clock_fn *clock;
	void *clock_ctx;
	pthread_mutex_t lock;
	hash_t *map; /* hkey -> struct cache_entry */
	struct cache_entry *head, *tail;
	struct table_cache_stats stats;
	struct table_shared *shared; /* other processes' answers; may be NULL */
};

static uint64_t monotonic_ms(void *ctx)
{
	struct timespec ts;

	(void)ctx;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Parse the built-in default of a table_cache_* parameter: params.c is
 * the one place that states it. */
static uint64_t param_default(const char *name)
{
	const struct param_def *def = param_find(name);
	uint64_t v;
	int64_t i;

	if (def == NULL)
		log_panic("%s: parameter %s is not in the parameter table", __func__, name);
	if (def->type == PARAM_TIME) {
		if (parse_time(def->defval, def->time_unit, (uint64_t)def->max, &v) < 0)
			log_panic("%s: bad default for %s", __func__, name);
		return v;
	}
	if (parse_int64(def->defval, def->min, def->max, &i) < 0 || i < 0)
		log_panic("%s: bad default for %s", __func__, name);
	return (uint64_t)i;
}

void table_cache_settings_default(struct table_cache_settings *s)
{
	s->size = (size_t)param_default("table_cache_size");
	s->positive_ttl = param_default("table_cache_positive_ttl");
	s->negative_ttl = param_default("table_cache_negative_ttl");
	s->grace_time = param_default("table_cache_grace_time");
}

int table_cache_settings_load(struct config *cfg, struct table_cache_settings *s,
                              const char **error_r)
{
	int64_t size;

	table_cache_settings_default(s);
	if (cfg == NULL)
		return 0;
	if (config_get_int(cfg, "table_cache_size", &size, error_r) < 0 ||
	    config_get_time(cfg, "table_cache_positive_ttl", &s->positive_ttl, error_r) < 0 ||
	    config_get_time(cfg, "table_cache_negative_ttl", &s->negative_ttl, error_r) < 0 ||
	    config_get_time(cfg, "table_cache_grace_time", &s->grace_time, error_r) < 0)
		return -1;
	s->size = (size_t)size; /* the parameter's minimum is 0 */
	return 0;
}

struct table_cache *table_cache_new(const struct table_cache_settings *s)
{
	struct table_cache *c = xcalloc(1, sizeof(*c));

	c->set = *s;
	c->clock = monotonic_ms;
	c->map = hash_new(NULL);
	c->outages = hash_new(free);
	if (pthread_mutex_init(&c->lock, NULL) != 0)
		log_panic("%s: pthread_mutex_init: %m", __func__);
	return c;
}

static void entry_free(struct cache_entry *e)
{
	free(e->hkey);
	free(e->value);
	free(e);
}

void table_cache_destroy(struct table_cache **cp)
{
	struct table_cache *c = *cp;

	if (c == NULL)
		return;
	for (struct cache_entry *e = c->head, *next; e != NULL; e = next) {
		next = e->next;
		entry_free(e);
	}
	hash_destroy(&c->map);
	hash_destroy(&c->outages);
	pthread_mutex_destroy(&c->lock);
	free(c);
	*cp = NULL;
}

void table_cache_set_clock(struct table_cache *c, table_cache_clock_fn *clock, void *ctx)
{
	pthread_mutex_lock(&c->lock);
	c->clock = clock != NULL ? clock : monotonic_ms;
	c->clock_ctx = clock != NULL ? ctx : NULL;
	pthread_mutex_unlock(&c->lock);
}

/* Keys that table_lookup() answers without asking the backend (too long
 * to be any real address) are not worth an entry. */
static bool cacheable(const struct table_cache *c, const char *key)
{
	return c != NULL && c->set.size > 0 && strlen(key) <= TABLE_KEY_MAX;
}

/* The hash key: the spec's length first, so that no spec/key split is
 * ambiguous whatever bytes either holds. */
static char *make_hkey(const char *spec, const char *key)
{
	return xasprintf("%zu:%s%s", strlen(spec), spec, key);
}

/* ---- the LRU list (lock held) ----------------------------------------- */

static void lru_unlink(struct table_cache *c, struct cache_entry *e)
{
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void lru_push_front(struct table_cache *c, struct cache_entry *e)
{
	e->prev = NULL;
	e->next = c->head;
	if (c->head != NULL)
		c->head->prev = e;
	c->head = e;
	if (c->tail == NULL)
		c->tail = e;
}

static void entry_remove(struct table_cache *c, struct cache_entry *e)
{
	lru_unlink(c, e);
	hash_delete(c->map, e->hkey);
	entry_free(e);
}

static uint64_t ttl_ms(const struct table_cache *c, const struct cache_entry *e)
{
	return (e->status == TABLE_FOUND ? c->set.positive_ttl : c->set.negative_ttl) * 1000;
}

static void copy_answer(const struct cache_entry *e, struct table_result *r)
{
	table_result_reset(r);
	r->status = e->status;
	if (e->status == TABLE_FOUND)
		str_set(&r->value, e->value);
}

/* ---- public ------------------------------------------------------------ */

/* Thread-local count of stale "not found" answers given to this thread
 * (table_cache_stale_negatives()). */
static _Thread_local uint64_t stale_negatives;

uint64_t table_cache_stale_negatives(void)
{
	return stale_negatives;
}

/* Serve e in place of a failed backend (lock held), marked stale
 * (r->error keeps the backend's reason): a found answer as it is; a "not
 * found" only when negatives is true (counted in stale_negatives), else
 * r stays a temporary failure. Returns false when r was left a
 * temporary failure. */
static bool serve_stale(struct table_cache *c, struct cache_entry *e, const char *spec,
                        const char *key, bool negatives, struct table_result *r)
{
	str_t why_copy;

	/* Why a stale "not found" only when asked for: it would become 550
	 * "User unknown" or a bounce for a mailbox made since; the backend
	 * cannot confirm it, so only a caller that knows it is stale (and
	 * refuses nothing on it alone) may have it. */
	if (e->status == TABLE_NOTFOUND && !negatives)
		return false;
	/* Why log once per outage: during an outage every lookup of a busy
	 * address would otherwise log a line, drowning the one that says
	 * the database is down. The entry keeps its age, so the grace
	 * period counts from the last real answer, not from this one. */
	if (!e->outage_logged) {
		const char *why = r->error.len > 0 ? str_c(&r->error) : "temporary lookup failure";
		size_t n = strlen(spec);

		/* The reason usually starts by naming the table too. */
		if (strncmp(why, spec, n) == 0 && strncmp(why + n, ": ", 2) == 0)
			why += n + 2;
		e->outage_logged = true;
		log_warning("%s: serving cached answer for %s: %s", spec, key, why);
	}
	if (e->status == TABLE_NOTFOUND)
		stale_negatives++;
	str_init(&why_copy);
	str_set(&why_copy, r->error.len > 0 ? str_c(&r->error) : "temporary lookup failure");
	copy_answer(e, r);
	str_set(&r->error, str_c(&why_copy));
	str_free(&why_copy);
	r->stale = true;
	lru_unlink(c, e);
	lru_push_front(c, e);
	c->stats.stale_served++;
	return true;
}

/* The cached answer for hkey (lock held), or NULL; an entry past even
 * the grace time is dropped. *fresh_r: younger than its TTL. */
static struct cache_entry *find_entry(struct table_cache *c, const char *hkey, uint64_t now,
                                      bool *fresh_r)
{
	struct cache_entry *e = hash_get(c->map, hkey);

	*fresh_r = false;
	if (e == NULL)
		return NULL;
	if (now - e->fetched_ms < ttl_ms(c, e)) {
		*fresh_r = true;
		return e;
	}
	if (now - e->fetched_ms >= c->set.grace_time * 1000) {
		entry_remove(c, e); /* too old even to stand in for a failed backend */
		return NULL;
	}
	return e;
}

/* The wall clock, in milliseconds: what the processes sharing answers and
 * outages (table_shared.h) agree on; the cache's own clock is monotonic
 * and per process. */
static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec > 0 ? (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 : 0;
}

static void store_answer(struct table_cache *c, char *hkey, const struct table_result *r,
                         uint64_t now);

/* When the backend fails and this process has no answer for hkey: the
 * answer another process stored in the shared file within the grace time,
 * taken into this cache with its age (lock held), or NULL. */
static struct cache_entry *shared_entry(struct table_cache *c, const char *spec, const char *key,
                                        const char *hkey, uint64_t now)
{
	struct table_result r;
	uint64_t age;
	enum table_status status;
	struct cache_entry *e = NULL;

	if (c->shared == NULL || c->set.grace_time == 0)
		return NULL;
	table_result_init(&r);
	if (table_shared_get(c->shared, spec, key, wall_ms() / 1000, c->set.grace_time - 1, &status,
	                     &r.value, &age)) {
		uint64_t age_ms = age * 1000;

		r.status = status;
		store_answer(c, xstrdup(hkey), &r, age_ms < now ? now - age_ms : 0);
		e = hash_get(c->map, hkey);
	}
	table_result_free(&r);
	return e;
}

/* What an outage is noted for: the backend behind spec. Every db: table
 * asks the same database, so one failure stands for all of them (else a
 * hung server costs one timeout per db: table per interval). */
static const char *outage_key(const char *spec)
{
	return strncmp(spec, "db:", 3) == 0 ? "db:" : spec;
}

/* Is spec's backend known to be failing, and not yet due for another try
 * (lock held)? When it is due, the caller becomes the one that tries: the
 * next try is pushed TABLE_CACHE_RETRY_MS on, so that one lookup at a
 * time waits for a hung backend's timeout, not every lookup. */
static bool outage_holds(struct table_cache *c, const char *spec, uint64_t now)
{
	const char *backend = outage_key(spec);
	struct cache_outage *o = hash_get(c->outages, backend);
	uint64_t until = c->shared != NULL ? table_shared_outage_until(c->shared, backend) : 0;

	if (o != NULL && now < o->retry_ms)
		return true;
	if (until != 0) {
		/* Recorded in the shared file by another process (or this
		 * one). An end further ahead than one interval is a clock that
		 * went back: ignored. */
		uint64_t wall = wall_ms();

		if (wall < until && until - wall <= TABLE_CACHE_RETRY_MS)
			return true;
	} else if (o == NULL) {
		return false; /* no outage known */
	}
	/* Due: this lookup tries the backend; everybody else waits. */
	if (o != NULL)
		o->retry_ms = now + TABLE_CACHE_RETRY_MS;
	if (c->shared != NULL)
		table_shared_outage_set(c->shared, backend, wall_ms() + TABLE_CACHE_RETRY_MS);
	return false;
}

static bool cache_get(struct table_cache *c, const char *spec, const char *key, bool ttl,
                      bool negatives, struct table_result *r)
{
	struct cache_entry *e;
	char *hkey;
	bool fresh, served = false;
	uint64_t now;

	if (!cacheable(c, key))
		return false;
	hkey = make_hkey(spec, key);
	pthread_mutex_lock(&c->lock);
	now = c->clock(c->clock_ctx);
	e = find_entry(c, hkey, now, &fresh);
	if (e != NULL && fresh && ttl) {
		copy_answer(e, r);
		lru_unlink(c, e);
		lru_push_front(c, e);
		c->stats.hits++;
		served = true;
	} else if ((hash_count(c->outages) > 0 || c->shared != NULL) &&
	           outage_holds(c, spec, now)) {
		/* The backend failed moments ago: answer from the grace
		 * period at once rather than wait for its timeout again; a
		 * key without one is a temporary failure at once, for the
		 * same reason (a hung server must not hold every lookup). */
		table_result_reset(r);
		r->status = TABLE_TEMPFAIL;
		str_appendf(&r->error, "%s: backend unavailable (recent failure)", spec);
		if (e == NULL)
			e = shared_entry(c, spec, key, hkey, now);
		if (e == NULL || !serve_stale(c, e, spec, key, negatives, r))
			c->stats.misses++;
		served = true;
	} else {
		c->stats.misses++;
	}
	pthread_mutex_unlock(&c->lock);
	free(hkey);
	return served;
}

bool table_cache_get(struct table_cache *c, const char *spec, const char *key,
                     struct table_result *r)
{
	return cache_get(c, spec, key, true, true, r);
}

/* Store a found/not-found answer as the fresh one (lock held). */
static void store_answer(struct table_cache *c, char *hkey, const struct table_result *r,
                         uint64_t now)
{
	struct cache_entry *e = hash_get(c->map, hkey);

	if (e == NULL) {
		e = xcalloc(1, sizeof(*e));
		e->hkey = hkey;
		hash_put(c->map, hkey, e);
	} else {
		free(hkey);
		lru_unlink(c, e);
		xfree(&e->value);
	}
	e->status = r->status;
	if (r->status == TABLE_FOUND)
		e->value = xstrndup(r->value.buf, r->value.len);
	e->fetched_ms = now;
	e->outage_logged = false; /* the backend answers: a new outage logs again */
	lru_push_front(c, e);
	while (hash_count(c->map) > c->set.size) {
		entry_remove(c, c->tail);
		c->stats.evictions++;
	}
}

/* Note spec's backend as failing (now) or answering (lock held). */
static void outage_note(struct table_cache *c, const char *spec, bool failing, uint64_t now)
{
	struct cache_outage *o;

	spec = outage_key(spec);
	o = hash_get(c->outages, spec);
	if (c->shared != NULL) {
		/* Read first: a lookup that succeeds writes nothing. */
		if (failing)
			table_shared_outage_set(c->shared, spec, wall_ms() + TABLE_CACHE_RETRY_MS);
		else if (table_shared_outage_until(c->shared, spec) != 0)
			table_shared_outage_set(c->shared, spec, 0);
	}
	if (!failing) {
		if (o != NULL)
			hash_delete(c->outages, spec);
		return;
	}
	if (o == NULL) {
		o = xcalloc(1, sizeof(*o));
		hash_put(c->outages, spec, o);
	}
	o->retry_ms = now + TABLE_CACHE_RETRY_MS;
}

static void cache_update(struct table_cache *c, const char *spec, const char *key, bool negatives,
                         struct table_result *r)
{
	struct cache_entry *e;
	char *hkey;
	uint64_t now;
	bool fresh;

	if (!cacheable(c, key))
		return;
	hkey = make_hkey(spec, key);
	pthread_mutex_lock(&c->lock);
	now = c->clock(c->clock_ctx);
	outage_note(c, spec, r->status == TABLE_TEMPFAIL, now);
	if (r->status != TABLE_TEMPFAIL) {
		store_answer(c, hkey, r, now); /* takes hkey */
		pthread_mutex_unlock(&c->lock);
		if (c->shared != NULL)
			table_shared_store(c->shared, spec, key, r->status, r->value.buf,
			                   r->value.len, wall_ms() / 1000);
		return;
	}
	e = find_entry(c, hkey, now, &fresh);
	if (e == NULL)
		e = shared_entry(c, spec, key, hkey, now);
	free(hkey);
	if (e != NULL)
		(void)serve_stale(c, e, spec, key, negatives, r);
	/* else never seen, or too long ago: the failure stands */
	pthread_mutex_unlock(&c->lock);
}

void table_cache_update(struct table_cache *c, const char *spec, const char *key,
                        struct table_result *r)
{
	cache_update(c, spec, key, true, r);
}

void table_cache_lookup(struct table_cache *c, const char *spec, const char *key,
                        table_cache_fetch_fn *fetch, void *ctx, struct table_result *r)
{
	if (table_cache_get(c, spec, key, r))
		return;
	table_result_reset(r);
	fetch(key, r, ctx);
	table_cache_update(c, spec, key, r);
}

static void fetch_table(const char *key, struct table_result *r, void *ctx)
{
	table_lookup(ctx, key, r);
}

void table_cache_lookup_table(struct table_cache *c, struct table *t, const char *key,
                              struct table_result *r)
{
	if (c == NULL || (t->flags & TABLE_F_REMOTE) == 0) {
		table_result_reset(r);
		table_lookup(t, key, r);
		return;
	}
	table_cache_lookup(c, t->spec, key, fetch_table, t, r);
}

void table_cache_lookup_fresh(struct table_cache *c, struct table *t, const char *key,
                              struct table_result *r)
{
	table_result_reset(r);
	if (c == NULL || (t->flags & TABLE_F_REMOTE) == 0) {
		table_lookup(t, key, r);
		return;
	}
	if (cache_get(c, t->spec, key, false, true, r))
		return;
	table_result_reset(r);
	table_lookup(t, key, r);
	cache_update(c, t->spec, key, true, r);
}

/* ---- the process's cache ------------------------------------------------ */

static pthread_mutex_t process_lock = PTHREAD_MUTEX_INITIALIZER;
static struct table_cache *process_cache;
static struct table_shared *process_shared; /* lives as long as the process */

int table_cache_process(struct config *cfg, struct table_cache **cache_r, const char **error_r)
{
	struct table_cache_settings s;

	*cache_r = NULL;
	pthread_mutex_lock(&process_lock);
	if (process_cache == NULL) {
		if (table_cache_settings_load(cfg, &s, error_r) < 0) {
			pthread_mutex_unlock(&process_lock);
			return -1;
		}
		if (s.size == 0) {
			pthread_mutex_unlock(&process_lock);
			return 0;
		}
		process_cache = table_cache_new(&s);
		process_cache->shared = process_shared;
	}
	process_cache->refs++;
	*cache_r = process_cache;
	pthread_mutex_unlock(&process_lock);
	return 0;
}

void table_cache_release(struct table_cache **cp)
{
	struct table_cache *c = *cp;

	if (c == NULL)
		return;
	*cp = NULL;
	pthread_mutex_lock(&process_lock);
	if (c == process_cache && --c->refs > 0) {
		pthread_mutex_unlock(&process_lock);
		return;
	}
	if (c == process_cache)
		process_cache = NULL;
	pthread_mutex_unlock(&process_lock);
	table_cache_destroy(&c);
}

void table_cache_get_stats(struct table_cache *c, struct table_cache_stats *st)
{
	pthread_mutex_lock(&c->lock);
	*st = c->stats;
	st->entries = hash_count(c->map);
	pthread_mutex_unlock(&c->lock);
}

void table_cache_set_shared(struct table_cache *c, struct table_shared *shared)
{
	pthread_mutex_lock(&c->lock);
	c->shared = shared;
	pthread_mutex_unlock(&c->lock);
}

int table_cache_share_process(struct config *cfg, const char *dir, const char **error_r)
{
	struct table_cache_settings s;

	if (table_cache_settings_load(cfg, &s, error_r) < 0)
		return -1;
	pthread_mutex_lock(&process_lock);
	if (process_shared == NULL && s.size > 0 && s.grace_time > 0) {
		process_shared = table_shared_open(dir, table_shared_slots(s.size));
		if (process_cache != NULL)
			table_cache_set_shared(process_cache, process_shared);
	}
	pthread_mutex_unlock(&process_lock);
	return 0;
}
