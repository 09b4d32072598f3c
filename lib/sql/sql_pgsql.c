/* sql_pgsql.c - the PostgreSQL driver of the SQL layer (sql_driver.h).
 *
 * libpq: PQconnectdbParams (with connect_timeout, client_encoding UTF8 and
 * expand_dbname off, so a database name can never smuggle in connection
 * options), statements prepared once per connection with PQsendPrepare
 * and run with text parameters through PQsendQueryPrepared. The '?'
 * placeholders become $1..$n (sql_scan_placeholders). Every wait for the
 * server is a poll() bounded by query_timeout, so a hung server costs a
 * timeout, never a blocked process. Called only through sql.c.
 *
 * Failures: a bad connection, SQLSTATE class 08 (connection), 57P0x
 * (shutdown), 40001 (serialization), 40P01 (deadlock), 57014 (timeout),
 * class 53 (out of resources) and 55P03 (lock not available) are
 * SQL_TEMPFAIL; everything else is SQL_FAIL. Messages carry the server's
 * text and the SQLSTATE.
 */
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/hash.h"
#include "base/mem.h"
#include "sql/sql_driver.h"

struct pgsql_state {
	PGconn *pg;
	hash_t *stmts; /* query text -> prepared statement name */
	unsigned next_id;
};

/* libpq messages end in a newline; append without it. */
static void append_msg(str_t *error, const char *msg)
{
	size_t len = msg != NULL ? strlen(msg) : 0;

	while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
		len--;
	if (len == 0) {
		str_append(error, "unknown error");
		return;
	}
	/* Multi-line messages (DETAIL, HINT) become one line. */
	for (size_t i = 0; i < len; i++) {
		bool space = msg[i] == '\n' || msg[i] == '\t' || msg[i] == ' ';

		if (space && error->len > 0 && error->buf[error->len - 1] == ' ')
			continue;
		str_append_c(error, space ? ' ' : msg[i]);
	}
}

static enum sql_status classify(PGconn *pg, const PGresult *r, bool *lost_r, str_t *error)
{
	const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

	/* The primary message alone ("relation \"x\" does not exist") reads
	 * better in a log line than the full report with its LINE and caret. */
	const char *msg = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;

	if (msg == NULL)
		msg = r != NULL ? PQresultErrorMessage(r) : "";

	append_msg(error, msg[0] != '\0' ? msg : PQerrorMessage(pg));
	if (state != NULL)
		str_appendf(error, " (SQLSTATE %s)", state);
	if (PQstatus(pg) == CONNECTION_BAD || state == NULL || strncmp(state, "08", 2) == 0 ||
	    strncmp(state, "57P", 3) == 0 || strcmp(state, "26000") == 0) {
		/* 26000: our prepared statement is gone (a pooler reset the
		 * session): start a fresh connection and prepare again. */
		*lost_r = true;
		return SQL_TEMPFAIL;
	}
	if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
	    strcmp(state, "57014") == 0 || strncmp(state, "53", 2) == 0 ||
	    strcmp(state, "55P03") == 0)
		return SQL_TEMPFAIL;
	return SQL_FAIL;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for the answer to what was just sent and return its last result
 * (the first error, if any); NULL with *lost_r set and a message when
 * the connection failed or the server did not answer in time. */
static PGresult *wait_result(struct sql_conn *c, bool *lost_r, str_t *error)
{
	struct pgsql_state *st = c->state;
	/* A second more than the server's statement_timeout, so that a slow
	 * query is cancelled by the server (and the connection kept) before
	 * we give up on a server that does not answer at all. */
	long long deadline =
	        c->set.query_timeout != 0 ? now_ms() + c->set.query_timeout * 1000LL + 1000 : 0;
	PGresult *keep = NULL;

	for (;;) {
		int flush = PQflush(st->pg);
		struct pollfd pfd;
		int wait_ms = -1, rc;

		if (flush < 0)
			goto broken;
		if (flush == 0 && !PQisBusy(st->pg)) {
			PGresult *r = PQgetResult(st->pg);

			if (r == NULL)
				break;
			if (keep == NULL) {
				keep = r;
			} else if (PQresultStatus(keep) == PGRES_FATAL_ERROR) {
				PQclear(r);
			} else {
				PQclear(keep);
				keep = r;
			}
			continue;
		}
		if (deadline != 0) {
			long long left = deadline - now_ms();

			if (left <= 0) {
				str_appendf(error, "no answer within %u seconds",
				            c->set.query_timeout);
				PQclear(keep);
				*lost_r = true;
				return NULL;
			}
			wait_ms = left > 60000 ? 60000 : (int)left;
		}
		pfd.fd = PQsocket(st->pg);
		pfd.events = (short)(POLLIN | (flush == 1 ? POLLOUT : 0));
		pfd.revents = 0;
		if (pfd.fd < 0)
			goto broken;
		rc = poll(&pfd, 1, wait_ms);
		if (rc < 0 && errno != EINTR) {
			str_appendf(error, "poll: %s", strerror(errno));
			PQclear(keep);
			*lost_r = true;
			return NULL;
		}
		if (rc > 0 && PQconsumeInput(st->pg) == 0)
			goto broken;
	}
	if (keep == NULL) {
		str_append(error, "no result from the server");
		*lost_r = true;
	}
	return keep;
broken:
	PQclear(keep);
	append_msg(error, PQerrorMessage(st->pg));
	*lost_r = true;
	return NULL;
}

static enum sql_status pgsql_connect(struct sql_conn *c, const struct sql_host *host, str_t *error)
{
	const struct sql_settings *s = &c->set;
	const char *kw[16], *val[16];
	char timeout[32], options[64], port[16];
	char *dir = NULL;
	struct pgsql_state *st;
	int n = 0, expand = 0;
	PGconn *pg;

	/* Why these come first: for a URI host, fields of the URI override
	 * entries before it in the arrays (libpq's rule), so the URI can set
	 * its own timeout or encoding. */
	if (s->connect_timeout != 0) {
		snprintf(timeout, sizeof(timeout), "%u", s->connect_timeout);
		kw[n] = "connect_timeout";
		val[n++] = timeout;
	}
	kw[n] = "client_encoding";
	val[n++] = s->charset != NULL ? s->charset : "UTF8";
	kw[n] = "application_name";
	val[n++] = "postern";
	if (s->query_timeout != 0) {
		snprintf(options, sizeof(options), "-c statement_timeout=%u",
		         s->query_timeout * 1000);
		kw[n] = "options";
		val[n++] = options;
	}
	if (host->uri != NULL) {
		kw[n] = "dbname";
		val[n++] = host->uri;
		expand = 1;
	} else {
		if (host->socket != NULL) {
			/* unix:/dir, or unix:/dir/.s.PGSQL.5432 naming the socket. */
			const char *base = strrchr(host->socket, '/') + 1;

			if (strncmp(base, ".s.PGSQL.", 9) == 0 && base[9] != '\0') {
				dir = xstrndup(host->socket, (size_t)(base - 1 - host->socket));
				kw[n] = "host";
				val[n++] = dir[0] != '\0' ? dir : "/";
				kw[n] = "port";
				val[n++] = base + 9;
			} else {
				kw[n] = "host";
				val[n++] = host->socket;
			}
		} else {
			kw[n] = "host";
			val[n++] = host->name;
			if (host->port != 0) {
				snprintf(port, sizeof(port), "%u", host->port);
				kw[n] = "port";
				val[n++] = port;
			}
		}
		if (s->user != NULL) {
			kw[n] = "user";
			val[n++] = s->user;
		}
		if (s->password != NULL) {
			kw[n] = "password";
			val[n++] = s->password;
		}
		if (s->dbname != NULL) {
			kw[n] = "dbname";
			val[n++] = s->dbname;
		}
	}
	kw[n] = NULL;
	val[n] = NULL;
	pg = PQconnectdbParams(kw, val, expand);
	free(dir);
	if (pg == NULL) {
		str_append(error, "out of memory");
		return SQL_TEMPFAIL;
	}
	if (PQstatus(pg) != CONNECTION_OK) {
		append_msg(error, PQerrorMessage(pg));
		PQfinish(pg);
		return SQL_TEMPFAIL;
	}
	st = xcalloc(1, sizeof(*st));
	st->pg = pg;
	st->stmts = hash_new(free);
	c->state = st;
	return SQL_OK;
}

static void pgsql_disconnect(struct sql_conn *c)
{
	struct pgsql_state *st = c->state;

	if (st == NULL)
		return;
	hash_destroy(&st->stmts);
	PQfinish(st->pg);
	free(st);
	c->state = NULL;
}

/* Send sql and wait; SQL_OK for a command or rows (dropped). */
static enum sql_status pgsql_exec(struct sql_conn *c, const char *sql, bool *lost_r, str_t *error)
{
	struct pgsql_state *st = c->state;
	enum sql_status status = SQL_OK;
	PGresult *r;

	if (PQsendQuery(st->pg, sql) == 0)
		return classify(st->pg, NULL, lost_r, error);
	r = wait_result(c, lost_r, error);
	if (r == NULL)
		return SQL_TEMPFAIL;
	switch (PQresultStatus(r)) {
	case PGRES_COMMAND_OK:
	case PGRES_TUPLES_OK:
	case PGRES_EMPTY_QUERY:
		break;
	default:
		status = classify(st->pg, r, lost_r, error);
	}
	PQclear(r);
	return status;
}

/* The name of the prepared statement for query, preparing it if needed. */
static const char *get_stmt(struct sql_conn *c, const char *query, size_t nparams,
                            enum sql_status *status, bool *lost_r, str_t *error)
{
	struct pgsql_state *st = c->state;
	const char *name = hash_get(st->stmts, query);
	char *newname;
	PGresult *r;
	str_t text;

	if (name != NULL)
		return name;
	if (hash_count(st->stmts) >= SQL_STMT_CACHE_MAX) {
		*status = pgsql_exec(c, "DEALLOCATE ALL", lost_r, error);
		if (*status != SQL_OK)
			return NULL;
		hash_destroy(&st->stmts);
		st->stmts = hash_new(free);
	}
	str_init(&text);
	sql_scan_placeholders(SQL_PGSQL, query, &text);
	newname = xasprintf("postern_%u", ++st->next_id);
	if (PQsendPrepare(st->pg, newname, str_c(&text), (int)nparams, NULL) == 0) {
		*status = classify(st->pg, NULL, lost_r, error);
		goto fail;
	}
	r = wait_result(c, lost_r, error);
	if (r == NULL) {
		*status = SQL_TEMPFAIL;
		goto fail;
	}
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		*status = classify(st->pg, r, lost_r, error);
		PQclear(r);
		goto fail;
	}
	PQclear(r);
	str_free(&text);
	hash_put(st->stmts, query, newname);
	return newname;
fail:
	str_free(&text);
	free(newname);
	return NULL;
}

static enum sql_status pgsql_query(struct sql_conn *c, const char *query, const char *const *params,
                                   size_t nparams, size_t max_rows, struct sql_result *res,
                                   bool *lost_r, str_t *error)
{
	struct pgsql_state *st = c->state;
	enum sql_status status = SQL_FAIL;
	const char *name = get_stmt(c, query, nparams, &status, lost_r, error);
	size_t nrows, cap = 0;
	PGresult *r;

	if (name == NULL)
		return status;
	if (PQsendQueryPrepared(st->pg, name, (int)nparams, params, NULL, NULL, 0) == 0)
		return classify(st->pg, NULL, lost_r, error);
	r = wait_result(c, lost_r, error);
	if (r == NULL)
		return SQL_TEMPFAIL;
	switch (PQresultStatus(r)) {
	case PGRES_TUPLES_OK:
		res->ncols = (size_t)PQnfields(r);
		nrows = (size_t)PQntuples(r);
		if (max_rows != 0 && nrows > max_rows) {
			str_appendf(error, "query returned more than %zu row%s", max_rows,
			            max_rows == 1 ? "" : "s");
			status = SQL_FAIL;
			break;
		}
		for (size_t i = 0; i < nrows; i++) {
			char **row = sql_result_add_row(res, &cap);

			for (size_t j = 0; j < res->ncols; j++)
				if (!PQgetisnull(r, (int)i, (int)j))
					row[j] = xstrndup(PQgetvalue(r, (int)i, (int)j),
					                  (size_t)PQgetlength(r, (int)i, (int)j));
		}
		status = SQL_OK;
		break;
	case PGRES_COMMAND_OK:
	case PGRES_EMPTY_QUERY:
		status = SQL_OK;
		break;
	default:
		status = classify(st->pg, r, lost_r, error);
	}
	PQclear(r);
	return status;
}

const struct sql_driver sql_driver_pgsql = {
        .name = "pgsql",
        .connect = pgsql_connect,
        .disconnect = pgsql_disconnect,
        .query = pgsql_query,
        .exec = pgsql_exec,
};
