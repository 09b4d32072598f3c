/* sql_driver.h - the internal interface between sql.c and the drivers.
 *
 * Only lib/sql includes this. sql.c owns everything that is the same for
 * every database: the connection object, host failover, reconnecting,
 * placeholder checking and the script runner. A driver (sql_sqlite.c,
 * sql_mysql.c, sql_pgsql.c) only connects to one host, runs one
 * statement, and classifies its errors. Drivers are compiled only when
 * configure found their library (HAVE_SQLITE, HAVE_MYSQL, HAVE_PGSQL).
 */
#ifndef POSTERN_SQL_DRIVER_H
#define POSTERN_SQL_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <config.h> /* HAVE_SQLITE, HAVE_MYSQL, HAVE_PGSQL */

#include "base/str.h"
#include "sql/sql.h"

/* Statements kept prepared per connection; when the cache is full it is
 * emptied (the queries of one process are a small fixed set, so this
 * only bounds a caller that builds query text on the fly). */
#define SQL_STMT_CACHE_MAX 128

/* One entry of sql_settings.hosts, parsed. */
struct sql_host {
	char *name; /* host name or address without brackets; NULL for a socket or URI */
	unsigned port; /* 0 = the driver's default */
	char *socket; /* unix socket path, or NULL */
	char *uri; /* pgsql "postgresql://..." connection URI, or NULL */
};

/* Parse "host", "host:port", "[v6]:port", "inet:host:port", "unix:/path"
 * or (pgsql) a postgresql:// or postgres:// URI. -1 with a message. */
int sql_host_parse(enum sql_type type, const char *spec, struct sql_host *h, str_t *error);
void sql_host_free(struct sql_host *h);

struct sql_driver;

struct sql_conn {
	struct sql_settings set;
	const struct sql_driver *driver; /* NULL when postern was built without it */
	void *state; /* the driver's connection; NULL when closed */
	size_t nhosts; /* sqlite: 1 (the file) */
	size_t host; /* index of the host in use or last tried */
	time_t *down_until; /* per host: skipped until then */
	time_t last_used;
	str_t describe;
};

struct sql_driver {
	const char *name; /* "sqlite", "mysql", "pgsql" */
	/* Connect to host (NULL for sqlite: the file is c->set.dbname) and set
	 * c->state. SQL_OK, or SQL_TEMPFAIL/SQL_FAIL with the reason appended
	 * to error (without the server name: sql.c adds it). */
	enum sql_status (*connect)(struct sql_conn *c, const struct sql_host *host, str_t *error);
	/* Close the connection and free c->state (set it to NULL). */
	void (*disconnect)(struct sql_conn *c);
	/* Run one statement with '?' placeholders (their number already checked
	 * against nparams), prepared once per connection and cached. res is
	 * zeroed by the caller. *lost_r = true when the connection can no
	 * longer be used (sql.c then reconnects). */
	enum sql_status (*query)(struct sql_conn *c, const char *query, const char *const *params,
	                         size_t nparams, size_t max_rows, struct sql_result *res,
	                         bool *lost_r, str_t *error);
	/* Run one statement given as text, without parameters or caching
	 * (scripts, BEGIN/COMMIT). */
	enum sql_status (*exec)(struct sql_conn *c, const char *sql, bool *lost_r, str_t *error);
};

#if HAVE_SQLITE
extern const struct sql_driver sql_driver_sqlite;
#endif
#if HAVE_MYSQL
extern const struct sql_driver sql_driver_mysql;
#endif
#if HAVE_PGSQL
extern const struct sql_driver sql_driver_pgsql;
#endif

/* Count the '?' placeholders of query outside quoted literals ('...',
 * "...", `...`) and comments (-- to end of line, and C-style block comments), with the
 * quoting rules of type (MySQL: backslash escapes inside literals;
 * PostgreSQL: only in E'...'). When pg_out is not NULL, the query is
 * copied there with the i-th placeholder written as $i (PostgreSQL). */
size_t sql_scan_placeholders(enum sql_type type, const char *query, str_t *pg_out);

/* Results: set r->ncols first, then add rows. Returns the new row's ncols
 * cells (zeroed) for the driver to fill with xmalloc'ed strings or NULL.
 * *cap tracks the allocated rows (start at 0). */
char **sql_result_add_row(struct sql_result *r, size_t *cap);

#endif
