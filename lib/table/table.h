/* table.h - the one lookup-table interface (Postfix's "maps").
 *
 * Every lookup in postern goes through this: a table is opened by its
 * Postfix-style name "type:name" (static:, inline:{...}, texthash:,
 * regexp:, pcre:, cidr:, sqlite:, mysql:, pgsql:, ldap:, db:NAME), a key is
 * looked up, and the answer is one of three: found (with a value), not
 * found, or a temporary error. A temporary error (database down, timeout)
 * must reach SMTP as 4xx and a delivery as a deferral, never as "unknown
 * user" (Postfix's DICT_ERR_RETRY).
 *
 * Backends: one file each (table_<type>.c), a const struct table_backend
 * registered in table.c's registry. A backend's table object embeds struct
 * table as its first member. Backends are synchronous and single-threaded:
 * one table object is used by one thread at a time. Asynchronous use (by
 * event-driven daemons) goes through table_async.h, which gives each
 * worker thread its own table objects; remote tables are fronted by the
 * cache in table_cache.h.
 */
#ifndef POSTERN_TABLE_H
#define POSTERN_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/str.h"

struct config;
struct table_cache;

enum table_status {
	TABLE_FOUND,
	TABLE_NOTFOUND,
	TABLE_TEMPFAIL, /* try again later: never "not found" */
};

/* Backend properties. */
enum {
	TABLE_F_FIXED_KEYS =
	        1 << 0, /* exact-key table: keys are case-folded (not regexp/pcre/cidr) */
	TABLE_F_REMOTE = 1 << 1, /* may block on I/O: cached and run on the worker pool */
	TABLE_F_DUMPABLE = 1 << 2, /* table_dump() lists its contents (file tables) */
	TABLE_F_PATTERN =
	        1 << 3, /* pattern table: key is matched, not looked up (regexp, pcre, cidr) */
};

/* The answer to one lookup; the caller owns it (table_result_init/free). */
struct table_result {
	enum table_status status;
	str_t value; /* TABLE_FOUND: the value (several results joined by ",") */
	str_t error; /* TABLE_TEMPFAIL: why, naming the table and the server */
	/* TABLE_FOUND, when the backend can tell: where the answer came from
	 * (ldap: the DN of the entry), for `postern trace`; else empty. */
	str_t source;
	/* The cache's last known answer, given because the backend failed
	 * (error: why). A stale TABLE_NOTFOUND is no proof: a caller must
	 * not refuse or bounce on it (table_cache.h). */
	bool stale;
};

void table_result_init(struct table_result *r);
void table_result_free(struct table_result *r);
void table_result_reset(struct table_result *r);

/* Everything a backend may need when opening: the configuration (for
 * config_directory, recipient_delimiter, database DSN ...). May be NULL in
 * unit tests of file tables. */
struct table_open_context {
	struct config *cfg;
	const char *config_dir; /* relative table paths are resolved here */
	/* maps.h only: look remote tables up through this cache
	 * (table_cache_lookup_fresh: graceful during an outage); NULL: none.
	 * Not owned; must outlive the maps. */
	struct table_cache *cache;
};

struct table;

struct table_backend {
	const char *type; /* "texthash" */
	unsigned flags; /* TABLE_F_* */
	size_t size; /* sizeof the backend's object (embeds struct table first) */
	/* Prepare t (already zeroed, base fields set) for name (the text after
	 * "type:"). -1 with a message naming the table and what was wrong
	 * (file:line for files) appended to error. After a failed open,
	 * close (when set) is still called to free what open set up. */
	int (*open)(struct table *t, const char *name, const struct table_open_context *ctx,
	            str_t *error);
	/* Look key up (already case-folded for TABLE_F_FIXED_KEYS tables).
	 * Sets r->status and r->value or r->error. Never blocks forever:
	 * network backends use timeouts. */
	void (*lookup)(struct table *t, const char *key, struct table_result *r);
	/* Optional: call fn for every key/value in order of the source. */
	int (*dump)(struct table *t, void (*fn)(const char *key, const char *value, void *ctx),
	            void *ctx, str_t *error);
	/* Optional: release backend resources (not t itself). */
	void (*close)(struct table *t);
};

/* The common part of every table object. */
struct table {
	const struct table_backend *backend;
	char *spec; /* "type:name" as opened, for logs and traces */
	char *name; /* the part after "type:" */
	unsigned flags;
};

/* Open "type:name". On error returns NULL and appends a message to error
 * ("unsupported table type \"foo\"" or the backend's message). */
struct table *table_open(const char *spec, const struct table_open_context *ctx, str_t *error);
/* Close and free; *tp set to NULL; no-op on NULL. */
void table_close(struct table **tp);
/* Synchronous lookup: folds the key for exact-key tables, bounds its
 * length (TABLE_KEY_MAX: longer keys are "not found", never sent to a
 * server), calls the backend, and logs one trace line at verbosity 2:
 * key, table, result, time. r must have been initialised.
 * Keys that cannot be a real address are "not found" without asking the
 * backend: longer than TABLE_KEY_MAX, or holding CR or LF. Pattern tables
 * (TABLE_F_PATTERN: regexp, pcre, cidr) also match header and body lines
 * (header_checks), so for them the bound is TABLE_PATTERN_KEY_MAX and CR/LF
 * are allowed, as in Postfix's multi-line header matching.
 * The trace line (log_debug level 2) reads
 *   lookup KEY in TYPE:NAME: found "VALUE" (N ms)
 *   lookup KEY in TYPE:NAME: found "VALUE" from "SOURCE" (N ms)   (ldap: the DN)
 *   lookup KEY in TYPE:NAME: not found (N ms)
 *   lookup KEY in TYPE:NAME: temporary failure: WHY (N ms)
 * and for a refused key "not found (key too long) (0 ms)" with at most
 * 100 bytes of the key. */
void table_lookup(struct table *t, const char *key, struct table_result *r);
/* The same for a key of len bytes that came from outside with a length
 * (a protocol line, standard input): a key holding a NUL byte is "not
 * found" as well. */
void table_lookup_n(struct table *t, const char *key, size_t len, struct table_result *r);
/* List contents of a dumpable table; -1 with a message otherwise. */
int table_dump(struct table *t, void (*fn)(const char *key, const char *value, void *ctx),
               void *ctx, str_t *error);
/* The backend for a type name, or NULL. */
const struct table_backend *table_backend_find(const char *type);

/* Longest key looked up; longer keys cannot match any real address. */
#define TABLE_KEY_MAX 1024
/* Longest key matched by a pattern table: a header (header_size_limit is
 * 102400 by default) or body line. */
#define TABLE_PATTERN_KEY_MAX (1024 * 1024)

#endif
