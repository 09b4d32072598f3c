/* sql.h - one SQL interface over SQLite, MariaDB/MySQL and PostgreSQL.
 *
 * Used by the sqlite:/mysql:/pgsql: lookup tables (table_sql*.c), by the
 * db:NAME built-in tables, by `postern db init|migrate` and by the user /
 * domain commands. Queries are always parameterised: the query text uses
 * '?' placeholders (outside string literals) and values are bound by the
 * driver, never pasted into the text. Each driver prepares a statement
 * once per connection and reuses it.
 *
 * Connections are lazy and self-healing: the first query connects, trying
 * the hosts in order (failover); a query that fails because the
 * connection was lost reconnects and is retried once; a host that failed
 * is skipped for SQL_HOST_RETRY_SECONDS (retry_interval) while another
 * host works; when every host is marked down all are tried again, so a
 * restarted server is used at once. A connection is used by one thread at
 * a time. Each failed connect is logged as a warning naming the server.
 *
 * Every failure is classified: SQL_TEMPFAIL (server down, timeout, lost
 * connection, deadlock: the caller answers 4xx / defers) or SQL_FAIL (bad
 * query, constraint violation: a configuration or data problem). Messages
 * name the server (host or file) and the server's own error text.
 */
#ifndef POSTERN_SQL_H
#define POSTERN_SQL_H

#include <stdbool.h>
#include <stddef.h>

#include "base/str.h"
#include "base/strv.h"

enum sql_type { SQL_SQLITE, SQL_MYSQL, SQL_PGSQL };

enum sql_status {
	SQL_OK = 0,
	SQL_TEMPFAIL = -1,
	SQL_FAIL = -2,
};

/* Seconds a failed host is skipped before it is tried again. */
#define SQL_HOST_RETRY_SECONDS 60

struct sql_settings {
	enum sql_type type;
	/* mysql/pgsql, tried in order: "host", "host:port", "[v6addr]:port",
	 * "unix:/path" or "inet:host:port"; pgsql also a "postgresql://..."
	 * URI (its user, password and dbname then come from the URI). None
	 * means "localhost". */
	strv_t hosts;
	char *user; /* may be NULL */
	char *password; /* may be NULL */
	char *dbname; /* mysql/pgsql database; sqlite: the database file path */
	unsigned connect_timeout; /* seconds; 0 = driver default */
	unsigned query_timeout; /* seconds; 0 = none (sqlite: lock wait, 0 = 5 s) */
	/* The fields below are optional: zero/NULL gives the default. */
	unsigned retry_interval; /* seconds a failed host is skipped; 0 = SQL_HOST_RETRY_SECONDS */
	unsigned idle_interval; /* close a connection idle this long before reuse; 0 = never */
	char *charset; /* mysql charset (utf8mb4), pgsql client_encoding (UTF8) */
	/* mysql only (Postfix mysql_table(5) option_file, option_group, tls_*) */
	char *option_file; /* MYSQL_READ_DEFAULT_FILE */
	char *option_group; /* MYSQL_READ_DEFAULT_GROUP */
	char *tls_cert_file, *tls_key_file, *tls_ca_file, *tls_ca_path, *tls_ciphers;
	bool tls_verify_cert;
	/* sqlite only (mysql/pgsql separate readers by account): open the
	 * file with SQLITE_OPEN_READONLY. A WAL reader can still rebuild the
	 * shared-memory index after a killed writer, but never writes rows. */
	bool readonly;
	/* sqlite only: the file is postern's own database. A read-write
	 * connection puts it in WAL mode (persistent, in the file) when it
	 * is not yet, and keeps the -wal and -shm files when it closes
	 * (sql_sqlite.c says why). Never set for sqlite: tables, whose files
	 * are the administrator's. */
	bool sqlite_wal;
};

/* Parse a DSN: "sqlite:/path/file.db" (or "sqlite:///path"),
 * "mysql://user@host[:port]/db" ("mariadb://" also accepted),
 * "pgsql://user@host[:port]/db" ("postgresql://", "postgres://" also
 * accepted). The host may be "[v6addr]", a list "h1:port,h2" (failover in
 * that order) or a unix socket written as "unix:/path" in place of the
 * host; the user and database name may hold %XX escapes; "user@" may be
 * left out. password (may be NULL) comes from the caller, read from
 * database_password_file: a DSN carrying a password is refused, so
 * secrets never sit in main.cf. -1 with a message naming the DSN (its
 * password masked) on error; s is then left empty. */
int sql_dsn_parse(const char *dsn, const char *password, struct sql_settings *s, str_t *error);
void sql_settings_free(struct sql_settings *s);
/* Check one entry of sql_settings.hosts (the forms listed there) for type,
 * so that configuration errors show when a table opens, not at the first
 * query. -1 with "bad host ..." appended to error. */
int sql_host_check(enum sql_type type, const char *spec, str_t *error);
/* Deep copy. */
void sql_settings_copy(struct sql_settings *dst, const struct sql_settings *src);

/* A query result: nrows x ncols text values (NULL for SQL NULL). ncols is 0
 * when the statement returned no result set (INSERT, UPDATE, DDL); a
 * SELECT that matched nothing has ncols > 0 and nrows 0. */
struct sql_result {
	size_t nrows, ncols;
	char **cells; /* row-major, nrows * ncols */
};

/* Free the cells and zero r; safe on a zeroed result. */
void sql_result_free(struct sql_result *r);
static inline const char *sql_cell(const struct sql_result *r, size_t row, size_t col)
{
	return r->cells[row * r->ncols + col];
}

struct sql_conn;

/* A connection object for settings s (copied); it connects on first use.
 * Never fails: connection errors come back from sql_query. */
struct sql_conn *sql_conn_new(const struct sql_settings *s);
void sql_conn_destroy(struct sql_conn **cp);
/* "mysql:127.0.0.1:3306" style description of the current server, for logs. */
const char *sql_conn_describe(struct sql_conn *c);
enum sql_type sql_conn_type(const struct sql_conn *c);

/* Run one statement with nparams '?' placeholders bound to params (text,
 * NULL for SQL NULL). Rows (if any) go to *res when res is not NULL
 * (caller frees with sql_result_free; zeroed on failure). Returns SQL_OK,
 * SQL_TEMPFAIL or SQL_FAIL, with a message appended to error on failure.
 * max_rows bounds the rows kept (0 = no bound); more rows are an SQL_FAIL
 * "more than N rows" (Postfix's expansion_limit). A query whose number of
 * '?' placeholders differs from nparams is an SQL_FAIL before any server
 * is asked. Why a lost connection is retried once even for a write: the
 * statement may have run before the connection broke, so writers keep
 * their statements idempotent (as the sql/ migrations are). */
enum sql_status sql_query(struct sql_conn *c, const char *query, const char *const *params,
                          size_t nparams, size_t max_rows, struct sql_result *res, str_t *error);

/* Run a script of statements separated by ';' at the end of a line (the
 * sql/ migration rule; lines holding only a "--" comment are skipped), in
 * one transaction where the database allows DDL in transactions (SQLite,
 * PostgreSQL): on failure nothing is kept there. No parameters; the
 * statements go to the server as text (not prepared, not cached), so the
 * script must not hold BEGIN/COMMIT itself. A failure names the statement
 * number and the script line it starts on. */
enum sql_status sql_exec_script(struct sql_conn *c, const char *script, str_t *error);

#endif
