/* sql_sqlite.c - the SQLite driver of the SQL layer (sql_driver.h).
 *
 * Opens the database file with sqlite3_open_v2 (read-write, created if
 * missing, so that `postern db init` can start from nothing; read-only
 * when the settings say so), waits for a lock up to the busy timeout, and
 * keeps every statement prepared once per connection. For postern's own
 * database (sqlite_wal) a read-write connection makes sure the file is in
 * WAL mode. Called only through sql.c.
 *
 * Failures: a busy or locked database, an I/O error or a file that cannot
 * be opened are SQL_TEMPFAIL (a writer holds the lock, the disk is full:
 * try again later); bad SQL and constraint violations are SQL_FAIL. The
 * message is SQLite's own text.
 */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "base/hash.h"
#include "base/mem.h"
#include "sql/sql_driver.h"

/* Lock wait when the settings give no query_timeout. */
#define SQLITE_DEFAULT_BUSY_MS 5000

struct sqlite_state {
	sqlite3 *db;
	hash_t *stmts; /* query text -> sqlite3_stmt */
};

static void stmt_finalize(void *p)
{
	sqlite3_finalize(p);
}

static enum sql_status classify(int rc, bool *lost_r)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_FULL:
	case SQLITE_NOMEM:
	case SQLITE_INTERRUPT:
		return SQL_TEMPFAIL;
	case SQLITE_IOERR:
	case SQLITE_CANTOPEN:
	case SQLITE_PROTOCOL:
		/* Reopen the file: it may have been replaced or remounted. */
		*lost_r = true;
		return SQL_TEMPFAIL;
	default:
		return SQL_FAIL;
	}
}

/* Why WAL for postern's own database: in the default rollback-journal
 * mode a writer killed inside a transaction (a virtual agent updating
 * quota_usage) leaves a hot journal, and the next reader must roll it back,
 * which needs write access to the database file. smtpd's lookups, run as
 * mail_owner, could not, so every RCPT got 451 until some root process
 * wrote again. In WAL mode a killed writer's frames were never committed:
 * readers ignore them, and the only repair, rebuilding the -shm index,
 * needs the -shm file writable (it is: group mail_owner, 0660, db.c).
 *
 * journal_mode=WAL is stored in the file, so this costs one PRAGMA per
 * connection once set. PERSIST_WAL keeps -wal and -shm when the last
 * connection closes: otherwise each close deletes them and the next
 * opener must create them again in the database's directory, and a
 * read-only lookup cannot always do that. Returns the SQLite code. */
static int sqlite_wal_setup(sqlite3 *db, str_t *error)
{
	sqlite3_stmt *stmt = NULL;
	int persist = 1, rc;
	bool wal = false;

	rc = sqlite3_file_control(db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
	if (rc != SQLITE_OK) {
		str_appendf(error, "cannot keep the WAL files: %s", sqlite3_errstr(rc));
		return rc;
	}
	rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &stmt, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const unsigned char *mode = sqlite3_column_text(stmt, 0);

		wal = mode != NULL && strcmp((const char *)mode, "wal") == 0;
		rc = SQLITE_OK;
	}
	sqlite3_finalize(stmt);
	if (rc == SQLITE_OK && !wal)
		rc = sqlite3_exec(db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		str_appendf(error, "cannot put the database in WAL mode: %s", sqlite3_errmsg(db));
	return rc;
}

static enum sql_status sqlite_connect(struct sql_conn *c, const struct sql_host *host, str_t *error)
{
	struct sqlite_state *st;
	sqlite3 *db = NULL;
	int rc;

	(void)host;
	/* A reader opens read-only (database_readonly): with SQLite the file
	 * permissions cannot keep smtpd from writing (it must be able to
	 * repair the WAL index, so the files are group-writable), so this is
	 * what keeps its lookups from changing rows. */
	rc = sqlite3_open_v2(c->set.dbname, &db,
	                     (c->set.readonly ? SQLITE_OPEN_READONLY
	                                      : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
	                             SQLITE_OPEN_NOMUTEX,
	                     NULL);
	if (rc != SQLITE_OK) {
		str_append(error, db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return SQL_TEMPFAIL;
	}
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, c->set.query_timeout != 0 ? (int)c->set.query_timeout * 1000
	                                                   : SQLITE_DEFAULT_BUSY_MS);
	/* Why: SQLite enforces foreign keys (and so the schema's ON DELETE
	 * CASCADE) only on connections that ask for it (sql/README.md). */
	rc = sqlite3_exec(db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		str_append(error, sqlite3_errmsg(db));
		sqlite3_close(db);
		return SQL_TEMPFAIL;
	}
	if (c->set.sqlite_wal && !c->set.readonly && sqlite_wal_setup(db, error) != SQLITE_OK) {
		sqlite3_close(db);
		return SQL_TEMPFAIL;
	}
	st = xcalloc(1, sizeof(*st));
	st->db = db;
	st->stmts = hash_new(stmt_finalize);
	c->state = st;
	return SQL_OK;
}

static void sqlite_disconnect(struct sql_conn *c)
{
	struct sqlite_state *st = c->state;

	if (st == NULL)
		return;
	hash_destroy(&st->stmts); /* finalizes every statement */
	sqlite3_close(st->db);
	free(st);
	c->state = NULL;
}

static sqlite3_stmt *get_stmt(struct sqlite_state *st, const char *query, enum sql_status *status,
                              bool *lost_r, str_t *error)
{
	sqlite3_stmt *stmt = hash_get(st->stmts, query);
	const char *tail = NULL;
	int rc;

	if (stmt != NULL)
		return stmt;
	rc = sqlite3_prepare_v3(st->db, query, -1, SQLITE_PREPARE_PERSISTENT, &stmt, &tail);
	if (rc != SQLITE_OK) {
		str_append(error, sqlite3_errmsg(st->db));
		*status = classify(rc, lost_r);
		return NULL;
	}
	if (stmt == NULL) {
		str_append(error, "empty query");
		*status = SQL_FAIL;
		return NULL;
	}
	tail += strspn(tail, " \t\r\n;");
	if (*tail != '\0') {
		str_append(error, "more than one statement in the query");
		sqlite3_finalize(stmt);
		*status = SQL_FAIL;
		return NULL;
	}
	if (hash_count(st->stmts) >= SQL_STMT_CACHE_MAX) {
		hash_destroy(&st->stmts);
		st->stmts = hash_new(stmt_finalize);
	}
	hash_put(st->stmts, query, stmt);
	return stmt;
}

static enum sql_status sqlite_query(struct sql_conn *c, const char *query,
                                    const char *const *params, size_t nparams, size_t max_rows,
                                    struct sql_result *res, bool *lost_r, str_t *error)
{
	struct sqlite_state *st = c->state;
	enum sql_status status = SQL_FAIL;
	sqlite3_stmt *stmt = get_stmt(st, query, &status, lost_r, error);
	size_t cap = 0;
	int rc;

	if (stmt == NULL)
		return status;
	if ((size_t)sqlite3_bind_parameter_count(stmt) != nparams) {
		str_appendf(error, "query has %d parameters, %zu given",
		            sqlite3_bind_parameter_count(stmt), nparams);
		return SQL_FAIL;
	}
	for (size_t i = 0; i < nparams; i++) {
		rc = params[i] == NULL
		             ? sqlite3_bind_null(stmt, (int)i + 1)
		             : sqlite3_bind_text(stmt, (int)i + 1, params[i], -1, SQLITE_TRANSIENT);
		if (rc != SQLITE_OK) {
			str_append(error, sqlite3_errmsg(st->db));
			status = classify(rc, lost_r);
			goto out;
		}
	}
	/* Why after the first step: a statement prepared before a schema
	 * change is prepared again inside sqlite3_step, and only then does
	 * "SELECT *" know its new columns. */
	rc = sqlite3_step(stmt);
	res->ncols = (size_t)sqlite3_column_count(stmt);
	for (; rc == SQLITE_ROW; rc = sqlite3_step(stmt)) {
		char **row;

		if (max_rows != 0 && res->nrows == max_rows) {
			str_appendf(error, "query returned more than %zu row%s", max_rows,
			            max_rows == 1 ? "" : "s");
			status = SQL_FAIL;
			goto out;
		}
		row = sql_result_add_row(res, &cap);
		for (size_t j = 0; j < res->ncols; j++) {
			const unsigned char *text;

			if (sqlite3_column_type(stmt, (int)j) == SQLITE_NULL)
				continue;
			text = sqlite3_column_text(stmt, (int)j);
			row[j] = xstrndup(text != NULL ? (const char *)text : "",
			                  (size_t)sqlite3_column_bytes(stmt, (int)j));
		}
	}
	if (rc != SQLITE_DONE) {
		str_append(error, sqlite3_errmsg(st->db));
		status = classify(rc, lost_r);
		goto out;
	}
	status = SQL_OK;
out:
	sqlite3_reset(stmt);
	sqlite3_clear_bindings(stmt);
	return status;
}

static enum sql_status sqlite_exec(struct sql_conn *c, const char *sql, bool *lost_r, str_t *error)
{
	struct sqlite_state *st = c->state;
	char *msg = NULL;
	int rc = sqlite3_exec(st->db, sql, NULL, NULL, &msg);

	if (rc == SQLITE_OK)
		return SQL_OK;
	str_append(error, msg != NULL ? msg : sqlite3_errstr(rc));
	sqlite3_free(msg);
	return classify(rc, lost_r);
}

const struct sql_driver sql_driver_sqlite = {
        .name = "sqlite",
        .connect = sqlite_connect,
        .disconnect = sqlite_disconnect,
        .query = sqlite_query,
        .exec = sqlite_exec,
};
