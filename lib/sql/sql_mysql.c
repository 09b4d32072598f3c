/* sql_mysql.c - the MariaDB/MySQL driver of the SQL layer (sql_driver.h).
 *
 * libmariadb with server-side prepared statements (mysql_stmt_*): values
 * are sent as string binds, never pasted into the text. Statements are
 * prepared once per connection and cached; a reconnect starts a new cache,
 * so they are prepared again. The session uses utf8mb4 (or the configured
 * charset) and time_zone '+00:00' (sql/README.md). Connect, read and write
 * timeouts come from the settings. Called only through sql.c.
 *
 * Why no MYSQL_OPT_RECONNECT: the library's silent reconnect would drop
 * the prepared statements and session settings behind our back; sql.c
 * reconnects itself and retries once.
 *
 * Failures: a lost or refused connection, a server shutdown, a deadlock or
 * a lock wait timeout are SQL_TEMPFAIL; everything else (bad SQL, unknown
 * column, constraint violation) is SQL_FAIL. Messages carry the server's
 * text and error number.
 */
#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/hash.h"
#include "base/mem.h"
#include "sql/sql_driver.h"

struct mysql_state {
	MYSQL *m;
	hash_t *stmts; /* query text -> MYSQL_STMT */
};

static pthread_once_t library_once = PTHREAD_ONCE_INIT;

/* Why: mysql_init() would initialise the library on first use, but not
 * safely when two worker threads connect at the same moment. */
static void library_init(void)
{
	mysql_library_init(0, NULL, NULL);
}

static enum sql_status classify(unsigned err, bool *lost_r)
{
	switch (err) {
	case CR_SERVER_GONE_ERROR:
	case CR_SERVER_LOST:
	case CR_SERVER_LOST_EXTENDED:
	case CR_CONNECTION_ERROR:
	case CR_CONN_HOST_ERROR:
	case CR_COMMANDS_OUT_OF_SYNC: /* the session is unusable: start over */
	case ER_SERVER_SHUTDOWN:
	case ER_CONNECTION_KILLED:
	case ER_UNKNOWN_STMT_HANDLER: /* server forgot our statements */
		*lost_r = true;
		return SQL_TEMPFAIL;
	case ER_LOCK_DEADLOCK:
	case ER_LOCK_WAIT_TIMEOUT:
	case ER_CON_COUNT_ERROR:
	case ER_TOO_MANY_USER_CONNECTIONS:
	case ER_QUERY_INTERRUPTED:
	case ER_STATEMENT_TIMEOUT:
		return SQL_TEMPFAIL;
	default:
		return SQL_FAIL;
	}
}

static void stmt_close(void *p)
{
	mysql_stmt_close(p);
}

static enum sql_status mysql_connect_host(struct sql_conn *c, const struct sql_host *host,
                                          str_t *error)
{
	const struct sql_settings *s = &c->set;
	unsigned long flags = CLIENT_MULTI_RESULTS | CLIENT_PS_MULTI_RESULTS;
	my_bool off = 0, on = 1;
	struct mysql_state *st;
	unsigned int timeout;
	MYSQL *m;
	bool ok;

	pthread_once(&library_once, library_init);
	m = mysql_init(NULL);
	if (m == NULL) {
		str_append(error, "mysql_init failed (out of memory)");
		return SQL_TEMPFAIL;
	}
	if (s->connect_timeout != 0) {
		timeout = s->connect_timeout;
		mysql_optionsv(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
	}
	if (s->query_timeout != 0) {
		timeout = s->query_timeout;
		mysql_optionsv(m, MYSQL_OPT_READ_TIMEOUT, &timeout);
		mysql_optionsv(m, MYSQL_OPT_WRITE_TIMEOUT, &timeout);
	}
	mysql_optionsv(m, MYSQL_OPT_RECONNECT, &off);
	mysql_optionsv(m, MYSQL_SET_CHARSET_NAME, s->charset != NULL ? s->charset : "utf8mb4");
	if (s->option_file != NULL)
		mysql_optionsv(m, MYSQL_READ_DEFAULT_FILE, s->option_file);
	if (s->option_group != NULL)
		mysql_optionsv(m, MYSQL_READ_DEFAULT_GROUP, s->option_group);
	if (s->tls_cert_file != NULL || s->tls_key_file != NULL || s->tls_ca_file != NULL ||
	    s->tls_ca_path != NULL || s->tls_ciphers != NULL || s->tls_verify_cert) {
		/* Any tls_* setting asks for TLS: refuse a plaintext session. */
		if (s->tls_key_file != NULL)
			mysql_optionsv(m, MYSQL_OPT_SSL_KEY, s->tls_key_file);
		if (s->tls_cert_file != NULL)
			mysql_optionsv(m, MYSQL_OPT_SSL_CERT, s->tls_cert_file);
		if (s->tls_ca_file != NULL)
			mysql_optionsv(m, MYSQL_OPT_SSL_CA, s->tls_ca_file);
		if (s->tls_ca_path != NULL)
			mysql_optionsv(m, MYSQL_OPT_SSL_CAPATH, s->tls_ca_path);
		if (s->tls_ciphers != NULL)
			mysql_optionsv(m, MYSQL_OPT_SSL_CIPHER, s->tls_ciphers);
		mysql_optionsv(m, MYSQL_OPT_SSL_ENFORCE, &on);
		mysql_optionsv(m, MYSQL_OPT_SSL_VERIFY_SERVER_CERT,
		               s->tls_verify_cert ? &on : &off);
	}
	if (host->socket != NULL)
		ok = mysql_real_connect(m, "localhost", s->user, s->password, s->dbname, 0,
		                        host->socket, flags) != NULL;
	else
		ok = mysql_real_connect(m, host->name, s->user, s->password, s->dbname, host->port,
		                        NULL, flags) != NULL;
	if (ok && mysql_real_query(m, "SET time_zone = '+00:00'", 24) != 0)
		ok = false;
	if (!ok) {
		str_appendf(error, "%s (error %u)", mysql_error(m), mysql_errno(m));
		mysql_close(m);
		return SQL_TEMPFAIL;
	}
	st = xcalloc(1, sizeof(*st));
	st->m = m;
	st->stmts = hash_new(stmt_close);
	c->state = st;
	return SQL_OK;
}

static void mysql_disconnect(struct sql_conn *c)
{
	struct mysql_state *st = c->state;

	if (st == NULL)
		return;
	hash_destroy(&st->stmts); /* closes every statement */
	mysql_close(st->m);
	free(st);
	c->state = NULL;
}

static enum sql_status stmt_error(MYSQL_STMT *stmt, bool *lost_r, str_t *error)
{
	unsigned err = mysql_stmt_errno(stmt);

	str_appendf(error, "%s (error %u)", mysql_stmt_error(stmt), err);
	return classify(err, lost_r);
}

static MYSQL_STMT *get_stmt(struct mysql_state *st, const char *query, enum sql_status *status,
                            bool *lost_r, str_t *error)
{
	MYSQL_STMT *stmt = hash_get(st->stmts, query);

	if (stmt != NULL)
		return stmt;
	stmt = mysql_stmt_init(st->m);
	if (stmt == NULL) {
		str_appendf(error, "%s (error %u)", mysql_error(st->m), mysql_errno(st->m));
		*status = classify(mysql_errno(st->m), lost_r);
		return NULL;
	}
	if (mysql_stmt_prepare(stmt, query, (unsigned long)strlen(query)) != 0) {
		*status = stmt_error(stmt, lost_r, error);
		mysql_stmt_close(stmt);
		return NULL;
	}
	if (hash_count(st->stmts) >= SQL_STMT_CACHE_MAX) {
		hash_destroy(&st->stmts);
		st->stmts = hash_new(stmt_close);
	}
	hash_put(st->stmts, query, stmt);
	return stmt;
}

/* Fetch the rows of the current result set into res. */
static enum sql_status fetch_rows(MYSQL_STMT *stmt, size_t max_rows, struct sql_result *res,
                                  bool *lost_r, str_t *error)
{
	size_t ncols = res->ncols, cap = 0;
	MYSQL_BIND *rb = xcalloc(ncols, sizeof(*rb));
	unsigned long *len = xcalloc(ncols, sizeof(*len));
	my_bool *isnull = xcalloc(ncols, sizeof(*isnull));
	enum sql_status status = SQL_OK;
	int rc;

	if (mysql_stmt_store_result(stmt) != 0) {
		status = stmt_error(stmt, lost_r, error);
		goto out;
	}
	if (max_rows != 0 && mysql_stmt_num_rows(stmt) > max_rows) {
		str_appendf(error, "query returned more than %zu row%s", max_rows,
		            max_rows == 1 ? "" : "s");
		status = SQL_FAIL;
		goto out;
	}
	/* Why zero-length buffers: every value comes back as text of a
	 * length only known after the fetch; each is then read with
	 * mysql_stmt_fetch_column into a buffer of exactly that size. */
	for (size_t j = 0; j < ncols; j++) {
		rb[j].buffer_type = MYSQL_TYPE_STRING;
		rb[j].length = &len[j];
		rb[j].is_null = &isnull[j];
	}
	if (mysql_stmt_bind_result(stmt, rb) != 0) {
		status = stmt_error(stmt, lost_r, error);
		goto out;
	}
	while ((rc = mysql_stmt_fetch(stmt)) == 0 || rc == MYSQL_DATA_TRUNCATED) {
		char **row = sql_result_add_row(res, &cap);

		for (size_t j = 0; j < ncols; j++) {
			MYSQL_BIND b;
			unsigned long got = 0;
			char *cell;

			if (isnull[j])
				continue;
			cell = xmalloc(len[j] + 1);
			cell[0] = '\0';
			row[j] = cell;
			if (len[j] == 0)
				continue;
			memset(&b, 0, sizeof(b));
			b.buffer_type = MYSQL_TYPE_STRING;
			b.buffer = cell;
			b.buffer_length = len[j] + 1;
			b.length = &got;
			if (mysql_stmt_fetch_column(stmt, &b, (unsigned)j, 0) != 0) {
				status = stmt_error(stmt, lost_r, error);
				goto out;
			}
			cell[len[j]] = '\0';
		}
	}
	if (rc != MYSQL_NO_DATA)
		status = stmt_error(stmt, lost_r, error);
out:
	mysql_stmt_free_result(stmt);
	free(rb);
	free(len);
	free(isnull);
	return status;
}

static enum sql_status mysql_run(struct sql_conn *c, const char *query, const char *const *params,
                                 size_t nparams, size_t max_rows, struct sql_result *res,
                                 bool *lost_r, str_t *error)
{
	struct mysql_state *st = c->state;
	enum sql_status status = SQL_FAIL;
	MYSQL_STMT *stmt = get_stmt(st, query, &status, lost_r, error);
	MYSQL_BIND *pb = NULL;
	unsigned long *plen = NULL;
	MYSQL_RES *meta;

	if (stmt == NULL)
		return status;
	if (mysql_stmt_param_count(stmt) != nparams) {
		str_appendf(error, "query has %lu parameters, %zu given",
		            mysql_stmt_param_count(stmt), nparams);
		return SQL_FAIL;
	}
	if (nparams > 0) {
		pb = xcalloc(nparams, sizeof(*pb));
		plen = xcalloc(nparams, sizeof(*plen));
		for (size_t i = 0; i < nparams; i++) {
			if (params[i] == NULL) {
				pb[i].buffer_type = MYSQL_TYPE_NULL;
				continue;
			}
			plen[i] = (unsigned long)strlen(params[i]);
			pb[i].buffer_type = MYSQL_TYPE_STRING;
			pb[i].buffer = (void *)params[i];
			pb[i].buffer_length = plen[i];
			pb[i].length = &plen[i];
		}
		if (mysql_stmt_bind_param(stmt, pb) != 0) {
			status = stmt_error(stmt, lost_r, error);
			goto out;
		}
	}
	if (mysql_stmt_execute(stmt) != 0) {
		status = stmt_error(stmt, lost_r, error);
		goto out;
	}
	status = SQL_OK;
	meta = mysql_stmt_result_metadata(stmt);
	if (meta != NULL) {
		res->ncols = mysql_num_fields(meta);
		mysql_free_result(meta);
		status = fetch_rows(stmt, max_rows, res, lost_r, error);
	} else if (mysql_stmt_errno(stmt) != 0) {
		status = stmt_error(stmt, lost_r, error);
	}
	/* A CALL ends with a status result after its result set (Postfix
	 * allows one result set): read and drop whatever follows. */
	while (status == SQL_OK && mysql_stmt_more_results(stmt)) {
		int rc = mysql_stmt_next_result(stmt);

		if (rc > 0)
			status = stmt_error(stmt, lost_r, error);
		if (rc != 0)
			break;
		mysql_stmt_free_result(stmt);
	}
out:
	if (status != SQL_OK && !*lost_r)
		hash_delete(st->stmts, query); /* never reuse a statement in an odd state */
	free(pb);
	free(plen);
	return status;
}

static enum sql_status mysql_exec(struct sql_conn *c, const char *sql, bool *lost_r, str_t *error)
{
	struct mysql_state *st = c->state;
	MYSQL_RES *r;

	if (mysql_real_query(st->m, sql, (unsigned long)strlen(sql)) != 0)
		goto fail;
	do {
		r = mysql_store_result(st->m);
		if (r != NULL)
			mysql_free_result(r);
		else if (mysql_errno(st->m) != 0)
			goto fail;
	} while (mysql_next_result(st->m) == 0);
	if (mysql_errno(st->m) != 0)
		goto fail;
	return SQL_OK;
fail:
	str_appendf(error, "%s (error %u)", mysql_error(st->m), mysql_errno(st->m));
	return classify(mysql_errno(st->m), lost_r);
}

const struct sql_driver sql_driver_mysql = {
        .name = "mysql",
        .connect = mysql_connect_host,
        .disconnect = mysql_disconnect,
        .query = mysql_run,
        .exec = mysql_exec,
};
