/* sql.c - the database-independent half of the SQL layer (see sql.h).
 *
 * Parses DSNs and host specifications, owns the connection object and
 * dispatches to the driver of its type (sql_sqlite.c, sql_mysql.c,
 * sql_pgsql.c through sql_driver.h). Everything the three databases share
 * lives here: host failover in the listed order with a "down until" time
 * per host, reconnect-and-retry-once after a lost connection, the check
 * that a query has as many '?' placeholders as values, and the script
 * runner of `postern db init|migrate`.
 *
 * Used by the sqlite:/mysql:/pgsql: tables, the db:NAME tables and the db
 * and user/domain commands. On failure nothing is half-done from the
 * caller's view: a result is zeroed, a script's transaction is rolled back
 * (SQLite, PostgreSQL), and every message names the server (host or file)
 * and carries the server's own text. A DSN password never appears in a
 * message or a log line.
 */
#include "sql/sql.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/parse.h"
#include "sql/sql_driver.h"

/* ---- settings and DSNs ---------------------------------------------- */

void sql_settings_free(struct sql_settings *s)
{
	strv_free(&s->hosts);
	free(s->user);
	if (s->password != NULL) {
		/* Why: do not leave the secret in freed heap memory. */
		memset(s->password, 0, strlen(s->password));
		free(s->password);
	}
	free(s->dbname);
	free(s->charset);
	free(s->option_file);
	free(s->option_group);
	free(s->tls_cert_file);
	free(s->tls_key_file);
	free(s->tls_ca_file);
	free(s->tls_ca_path);
	free(s->tls_ciphers);
	memset(s, 0, sizeof(*s));
}

static char *dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

void sql_settings_copy(struct sql_settings *dst, const struct sql_settings *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->type = src->type;
	for (size_t i = 0; i < src->hosts.n; i++)
		strv_add(&dst->hosts, src->hosts.v[i]);
	dst->user = dup_or_null(src->user);
	dst->password = dup_or_null(src->password);
	dst->dbname = dup_or_null(src->dbname);
	dst->connect_timeout = src->connect_timeout;
	dst->query_timeout = src->query_timeout;
	dst->retry_interval = src->retry_interval;
	dst->idle_interval = src->idle_interval;
	dst->charset = dup_or_null(src->charset);
	dst->option_file = dup_or_null(src->option_file);
	dst->option_group = dup_or_null(src->option_group);
	dst->tls_cert_file = dup_or_null(src->tls_cert_file);
	dst->tls_key_file = dup_or_null(src->tls_key_file);
	dst->tls_ca_file = dup_or_null(src->tls_ca_file);
	dst->tls_ca_path = dup_or_null(src->tls_ca_path);
	dst->tls_ciphers = dup_or_null(src->tls_ciphers);
	dst->tls_verify_cert = src->tls_verify_cert;
	dst->readonly = src->readonly;
	dst->sqlite_wal = src->sqlite_wal;
}

/* Append text to out with the password of any "scheme://user:password@"
 * replaced by "****", so that messages never show a secret. */
static void append_masked(str_t *out, const char *text)
{
	const char *scheme = strstr(text, "://");
	const char *auth, *end, *at, *colon;

	if (scheme == NULL) {
		str_append(out, text);
		return;
	}
	auth = scheme + 3;
	end = auth + strcspn(auth, "/?#");
	at = NULL;
	for (const char *p = auth; p < end; p++)
		if (*p == '@')
			at = p; /* the last '@' ends the user information */
	colon = at != NULL ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
	if (colon == NULL) {
		str_append(out, text);
		return;
	}
	str_append_n(out, text, (size_t)(colon + 1 - text));
	str_append(out, "****");
	str_append(out, at);
}

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return c - 'A' + 10;
}

/* Decode %XX escapes of a URL part into a new string; -1 with *why_r set
 * for a bad escape or an escaped NUL. */
static int url_decode(const char *s, size_t len, char **out_r, const char **why_r)
{
	str_t out;

	str_init(&out);
	for (size_t i = 0; i < len; i++) {
		if (s[i] != '%') {
			str_append_c(&out, s[i]);
			continue;
		}
		if (i + 2 >= len || !is_hex(s[i + 1]) || !is_hex(s[i + 2])) {
			*why_r = "a '%' not followed by two hex digits";
			str_free(&out);
			return -1;
		}
		char c = (char)(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
		if (c == '\0') {
			*why_r = "an encoded NUL byte (%00)";
			str_free(&out);
			return -1;
		}
		str_append_c(&out, c);
		i += 2;
	}
	*out_r = str_steal(&out);
	str_free(&out);
	return 0;
}

static bool is_host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '-' || c == '_';
}

static bool is_v6_char(char c)
{
	return is_hex(c) || c == ':' || c == '.' || c == '%';
}

/* Parse an optional ":port" at *pp into *port_r (0 when absent). */
static int parse_port(const char **pp, unsigned *port_r, const char **why_r)
{
	const char *p = *pp, *start;
	uint64_t v;
	char *digits;
	int ret;

	*port_r = 0;
	if (*p != ':')
		return 0;
	start = ++p;
	while (*p >= '0' && *p <= '9')
		p++;
	digits = xstrndup(start, (size_t)(p - start));
	ret = parse_uint64(digits, 1, 65535, &v);
	free(digits);
	if (ret < 0) {
		*why_r = "expected a port number from 1 to 65535 after ':'";
		return -1;
	}
	*port_r = (unsigned)v;
	*pp = p;
	return 0;
}

static void dsn_error(str_t *error, const char *dsn, const char *why)
{
	str_append(error, "database DSN \"");
	append_masked(error, dsn);
	str_appendf(error, "\": %s", why);
}

static const char dsn_expected[] =
        "expected sqlite:/path/file.db, mysql://user@host[:port]/dbname or "
        "pgsql://user@host[:port]/dbname";

static int dsn_parse_sqlite(const char *dsn, const char *path, struct sql_settings *s, str_t *error)
{
	/* "sqlite:///var/x.db" is the URL spelling of "sqlite:/var/x.db". */
	if (strncmp(path, "//", 2) == 0)
		path += 2;
	if (path[0] != '/' || path[1] == '\0') {
		dsn_error(error, dsn, "expected an absolute file path after \"sqlite:\"");
		return -1;
	}
	s->type = SQL_SQLITE;
	s->dbname = xstrdup(path);
	return 0;
}

/* One host of a DSN's host list at *pp: "name[:port]" or "[v6][:port]",
 * added to s->hosts in the form sql_host_parse reads. */
static int dsn_parse_host(const char **pp, struct sql_settings *s, const char **why_r)
{
	const char *p = *pp, *start = p, *name_end;
	unsigned port;
	str_t h;

	if (*p == '[') {
		start = ++p;
		while (is_v6_char(*p))
			p++;
		if (*p != ']' || p == start) {
			*why_r = "expected an IPv6 address and ']' after '['";
			return -1;
		}
		name_end = p++;
	} else {
		while (is_host_char(*p))
			p++;
		if (p == start) {
			*why_r = "expected a host name after \"//\", \"@\" or \",\"";
			return -1;
		}
		name_end = p;
	}
	if (parse_port(&p, &port, why_r) < 0)
		return -1;
	str_init(&h);
	if (start > *pp)
		str_appendf(&h, "[%.*s]", (int)(name_end - start), start);
	else
		str_append_n(&h, start, (size_t)(name_end - start));
	if (port != 0)
		str_appendf(&h, ":%u", port);
	strv_add(&s->hosts, str_c(&h));
	str_free(&h);
	*pp = p;
	return 0;
}

int sql_dsn_parse(const char *dsn, const char *password, struct sql_settings *s, str_t *error)
{
	static const struct {
		const char *prefix;
		enum sql_type type;
	} schemes[] = {
	        {"mysql://", SQL_MYSQL},      {"mariadb://", SQL_MYSQL},  {"pgsql://", SQL_PGSQL},
	        {"postgresql://", SQL_PGSQL}, {"postgres://", SQL_PGSQL},
	};
	const char *p = NULL, *why = NULL, *slash, *at, *dbstart;
	size_t i;

	memset(s, 0, sizeof(*s));
	if (strncmp(dsn, "sqlite:", 7) == 0)
		return dsn_parse_sqlite(dsn, dsn + 7, s, error);
	for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		if (strncmp(dsn, schemes[i].prefix, strlen(schemes[i].prefix)) == 0) {
			p = dsn + strlen(schemes[i].prefix);
			s->type = schemes[i].type;
			break;
		}
	}
	if (p == NULL) {
		dsn_error(error, dsn, dsn_expected);
		return -1;
	}

	/* User information: everything before an '@' that comes before the
	 * first '/' (a socket path may hold neither '@' nor ':' before it). */
	slash = strchr(p, '/');
	at = memchr(p, '@', slash != NULL ? (size_t)(slash - p) : strlen(p));
	if (at != NULL) {
		if (memchr(p, ':', (size_t)(at - p)) != NULL) {
			/* Why: main.cf is world-readable; the password belongs in
			 * the DSN's password file (database_password_file or
			 * database_readonly_password_file: root and mail_owner). */
			dsn_error(error, dsn,
			          "a password in the DSN is refused (main.cf is readable by "
			          "everyone): remove \":password\" and put the password in "
			          "its password file (database_password_file, or "
			          "database_readonly_password_file for database_readonly)");
			goto fail;
		}
		if (at == p) {
			dsn_error(error, dsn, "expected a user name before '@'");
			goto fail;
		}
		if (url_decode(p, (size_t)(at - p), &s->user, &why) < 0) {
			str_t w;

			str_init(&w);
			str_appendf(&w, "bad user name: %s", why);
			dsn_error(error, dsn, str_c(&w));
			str_free(&w);
			goto fail;
		}
		p = at + 1;
	}

	if (strncmp(p, "unix:", 5) == 0) {
		/* unix:/run/mysqld/mysqld.sock/dbname: the socket path ends at
		 * the last '/'; the database name follows it. */
		const char *path = p + 5, *last = strrchr(path, '/');
		str_t h;

		if (path[0] != '/' || last == NULL || last == path) {
			dsn_error(error, dsn, "expected unix:/path/to/socket/dbname");
			goto fail;
		}
		str_init(&h);
		str_append(&h, "unix:");
		str_append_n(&h, path, (size_t)(last - path));
		strv_add(&s->hosts, str_c(&h));
		str_free(&h);
		p = last;
	} else {
		for (;;) {
			if (dsn_parse_host(&p, s, &why) < 0) {
				dsn_error(error, dsn, why);
				goto fail;
			}
			if (*p == ',') {
				p++;
				continue;
			}
			break;
		}
		if (*p != '/') {
			dsn_error(error, dsn,
			          *p == '\0' ? "expected /dbname after the host"
			                     : "unexpected character after the host: expected "
			                       "':port', ',' or '/dbname'");
			goto fail;
		}
	}

	dbstart = p + 1;
	if (*dbstart == '\0') {
		dsn_error(error, dsn, "expected a database name after '/'");
		goto fail;
	}
	if (strpbrk(dbstart, "/?#") != NULL) {
		dsn_error(error, dsn,
		          "unexpected '/', '?' or '#' in the database name (options are not "
		          "supported in the DSN)");
		goto fail;
	}
	if (url_decode(dbstart, strlen(dbstart), &s->dbname, &why) < 0) {
		dsn_error(error, dsn, why);
		goto fail;
	}
	s->password = dup_or_null(password);
	return 0;
fail:
	sql_settings_free(s);
	return -1;
}

/* ---- hosts ---------------------------------------------------------- */

void sql_host_free(struct sql_host *h)
{
	free(h->name);
	free(h->socket);
	free(h->uri);
	memset(h, 0, sizeof(*h));
}

int sql_host_parse(enum sql_type type, const char *spec, struct sql_host *h, str_t *error)
{
	const char *p = spec, *why = NULL;

	memset(h, 0, sizeof(*h));
	if (type == SQL_PGSQL &&
	    (strncmp(spec, "postgresql://", 13) == 0 || strncmp(spec, "postgres://", 11) == 0)) {
		h->uri = xstrdup(spec);
		return 0;
	}
	if (strncmp(p, "unix:", 5) == 0 || p[0] == '/') {
		if (p[0] != '/')
			p += 5;
		if (p[0] != '/' || p[1] == '\0') {
			str_appendf(error, "bad host \"%s\": expected unix:/absolute/path", spec);
			return -1;
		}
		h->socket = xstrdup(p);
		return 0;
	}
	if (strncmp(p, "inet:", 5) == 0)
		p += 5;
	if (*p == '[') {
		const char *close = strchr(p, ']');

		if (close == NULL || close == p + 1) {
			str_appendf(error, "bad host \"%s\": expected [IPv6 address]", spec);
			return -1;
		}
		h->name = xstrndup(p + 1, (size_t)(close - p - 1));
		p = close + 1;
	} else {
		const char *end = p + strcspn(p, ":");

		if (*end == ':' && strchr(end + 1, ':') != NULL) {
			/* A bare IPv6 address: no port. */
			h->name = xstrdup(p);
			p += strlen(p);
		} else {
			h->name = xstrndup(p, (size_t)(end - p));
			p = end;
		}
	}
	if (h->name[0] == '\0' || parse_port(&p, &h->port, &why) < 0 || *p != '\0') {
		str_appendf(error, "bad host \"%s\": %s", spec,
		            why != NULL ? why : "expected host, host:port or [address]:port");
		sql_host_free(h);
		return -1;
	}
	return 0;
}

int sql_host_check(enum sql_type type, const char *spec, str_t *error)
{
	struct sql_host h;

	if (sql_host_parse(type, spec, &h, error) < 0)
		return -1;
	sql_host_free(&h);
	return 0;
}

/* ---- results -------------------------------------------------------- */

void sql_result_free(struct sql_result *r)
{
	if (r->cells != NULL)
		for (size_t i = 0; i < r->nrows * r->ncols; i++)
			free(r->cells[i]);
	free(r->cells);
	memset(r, 0, sizeof(*r));
}

char **sql_result_add_row(struct sql_result *r, size_t *cap)
{
	char **row;

	if (r->nrows == *cap) {
		size_t ncap = *cap == 0 ? 8 : *cap * 2;

		r->cells = xreallocarray(r->cells, ncap, r->ncols * sizeof(char *));
		*cap = ncap;
	}
	row = r->cells + r->nrows * r->ncols;
	memset(row, 0, r->ncols * sizeof(char *));
	r->nrows++;
	return row;
}

/* ---- placeholders --------------------------------------------------- */

static bool is_ident_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

/* The end of a PostgreSQL dollar-quoted string starting at p ("$tag$"),
 * or NULL when p does not start one. */
static const char *pg_dollar_end(const char *q, const char *p)
{
	const char *t = p + 1, *close;
	size_t taglen;
	char *tag;

	if (p > q && is_ident_char(p[-1]))
		return NULL; /* part of an identifier or $1 */
	while (is_ident_char(*t) && !(t == p + 1 && *t >= '0' && *t <= '9'))
		t++;
	if (*t != '$')
		return NULL;
	taglen = (size_t)(t - p + 1);
	tag = xstrndup(p, taglen);
	close = strstr(t + 1, tag);
	free(tag);
	return close != NULL ? close + taglen : p + strlen(p);
}

size_t sql_scan_placeholders(enum sql_type type, const char *query, str_t *pg_out)
{
	const char *p = query;
	size_t n = 0;

	while (*p != '\0') {
		const char *start = p;
		char c = *p;

		if (c == '\'' || c == '"' || c == '`') {
			bool backslash = (type == SQL_MYSQL && c != '`') ||
			                 (type == SQL_PGSQL && c == '\'' && p > query &&
			                  (p[-1] == 'E' || p[-1] == 'e') &&
			                  (p - 1 == query || !is_ident_char(p[-2])));

			p++;
			while (*p != '\0') {
				if (backslash && *p == '\\' && p[1] != '\0') {
					p += 2;
				} else if (*p == c && p[1] == c) {
					p += 2;
				} else if (*p == c) {
					p++;
					break;
				} else {
					p++;
				}
			}
		} else if ((c == '-' && p[1] == '-') || (c == '#' && type == SQL_MYSQL)) {
			p += strcspn(p, "\n");
		} else if (c == '/' && p[1] == '*') {
			const char *close = strstr(p + 2, "*/");

			p = close != NULL ? close + 2 : p + strlen(p);
		} else if (c == '$' && type == SQL_PGSQL && pg_dollar_end(query, p) != NULL) {
			p = pg_dollar_end(query, p);
		} else if (c == '?') {
			n++;
			if (pg_out != NULL)
				str_appendf(pg_out, "$%zu", n);
			p++;
			continue;
		} else {
			p++;
		}
		if (pg_out != NULL)
			str_append_n(pg_out, start, (size_t)(p - start));
	}
	return n;
}

/* ---- connections ---------------------------------------------------- */

static const struct sql_driver *driver_for(enum sql_type type)
{
	switch (type) {
	case SQL_SQLITE:
#if HAVE_SQLITE
		return &sql_driver_sqlite;
#else
		return NULL;
#endif
	case SQL_MYSQL:
#if HAVE_MYSQL
		return &sql_driver_mysql;
#else
		return NULL;
#endif
	case SQL_PGSQL:
#if HAVE_PGSQL
		return &sql_driver_pgsql;
#else
		return NULL;
#endif
	}
	return NULL;
}

static const char *type_name(enum sql_type type)
{
	switch (type) {
	case SQL_SQLITE:
		return "sqlite";
	case SQL_MYSQL:
		return "mysql";
	case SQL_PGSQL:
		return "pgsql";
	}
	return "sql";
}

static void set_describe(struct sql_conn *c, size_t host)
{
	const char *h;

	str_reset(&c->describe);
	str_appendf(&c->describe, "%s:", type_name(c->set.type));
	if (c->set.type == SQL_SQLITE) {
		str_append(&c->describe, c->set.dbname != NULL ? c->set.dbname : "(no file)");
		return;
	}
	h = c->set.hosts.v[host];
	if (strncmp(h, "inet:", 5) == 0)
		h += 5;
	append_masked(&c->describe, h);
}

struct sql_conn *sql_conn_new(const struct sql_settings *s)
{
	struct sql_conn *c = xcalloc(1, sizeof(*c));

	sql_settings_copy(&c->set, s);
	c->driver = driver_for(s->type);
	if (c->set.type != SQL_SQLITE && c->set.hosts.n == 0)
		strv_add(&c->set.hosts, "localhost"); /* Postfix's default */
	c->nhosts = c->set.type == SQL_SQLITE ? 1 : c->set.hosts.n;
	c->down_until = xcalloc(c->nhosts, sizeof(*c->down_until));
	str_init(&c->describe);
	set_describe(c, 0);
	return c;
}

void sql_conn_destroy(struct sql_conn **cp)
{
	struct sql_conn *c = *cp;

	if (c == NULL)
		return;
	if (c->state != NULL)
		c->driver->disconnect(c);
	sql_settings_free(&c->set);
	free(c->down_until);
	str_free(&c->describe);
	free(c);
	*cp = NULL;
}

const char *sql_conn_describe(struct sql_conn *c)
{
	return str_c(&c->describe);
}

enum sql_type sql_conn_type(const struct sql_conn *c)
{
	return c->set.type;
}

static void conn_close(struct sql_conn *c)
{
	if (c->state != NULL)
		c->driver->disconnect(c);
	c->state = NULL;
}

/* Connect unless connected: the hosts in order, first those not marked
 * down, then (when all of those failed) the ones marked down.
 *
 * Why the second pass: the "down until" mark exists to skip a dead first
 * host quickly while another one works. When every host is marked down,
 * refusing to try would keep answering "temporary failure" for up to
 * retry_interval after the database came back; trying costs at most one
 * connect timeout per host, and the caller is deferring mail anyway. */
static enum sql_status conn_open(struct sql_conn *c, str_t *error)
{
	unsigned retry =
	        c->set.retry_interval != 0 ? c->set.retry_interval : SQL_HOST_RETRY_SECONDS;
	time_t now = time(NULL);
	bool *was_down;
	str_t all, one;

	if (c->state != NULL)
		return SQL_OK;
	if (c->driver == NULL) {
		str_appendf(error, "%s: postern was built without %s support (see ./configure)",
		            str_c(&c->describe), type_name(c->set.type));
		return SQL_FAIL;
	}
	str_init(&all);
	str_init(&one);
	was_down = xcalloc(c->nhosts, sizeof(*was_down));
	for (size_t i = 0; i < c->nhosts; i++)
		was_down[i] = c->down_until[i] > now;
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < c->nhosts; i++) {
			struct sql_host host;
			enum sql_status st;

			if (was_down[i] != (pass == 1))
				continue;
			set_describe(c, i);
			str_reset(&one);
			c->host = i;
			if (c->set.type == SQL_SQLITE) {
				st = c->driver->connect(c, NULL, &one);
			} else if (sql_host_parse(c->set.type, c->set.hosts.v[i], &host, &one) <
			           0) {
				st = SQL_FAIL;
			} else {
				st = c->driver->connect(c, &host, &one);
				sql_host_free(&host);
			}
			if (st == SQL_OK) {
				c->down_until[i] = 0;
				c->last_used = now;
				if (i > 0) {
					str_reset(&one);
					append_masked(&one, c->set.hosts.v[0]);
					log_info("%s: connected (after failing over from %s)",
					         str_c(&c->describe), str_c(&one));
				}
				str_free(&all);
				str_free(&one);
				free(was_down);
				return SQL_OK;
			}
			c->state = NULL;
			c->down_until[i] = now + (time_t)retry;
			log_warning("%s: cannot connect: %s", str_c(&c->describe), str_c(&one));
			if (all.len > 0)
				str_append(&all, "; ");
			str_appendf(&all, "%s: cannot connect: %s", str_c(&c->describe),
			            str_c(&one));
		}
	}
	/* Why TEMPFAIL even for "access denied" or "unknown database": for a
	 * mail server any connect failure means "try later" (Postfix's
	 * DICT_ERR_RETRY), never "no such user"; the log shows the cause. */
	str_append(error, str_c(&all));
	str_free(&all);
	str_free(&one);
	free(was_down);
	set_describe(c, 0);
	return SQL_TEMPFAIL;
}

/* Close a connection that sat idle longer than idle_interval (Postfix's
 * idle_interval): servers and firewalls drop idle sessions silently. */
static void close_if_idle(struct sql_conn *c)
{
	if (c->state != NULL && c->set.idle_interval != 0 &&
	    time(NULL) - c->last_used >= (time_t)c->set.idle_interval)
		conn_close(c);
}

enum sql_status sql_query(struct sql_conn *c, const char *query, const char *const *params,
                          size_t nparams, size_t max_rows, struct sql_result *res, str_t *error)
{
	struct sql_result scratch = {0, 0, NULL}, *out = res != NULL ? res : &scratch;
	size_t count = sql_scan_placeholders(c->set.type, query, NULL);
	str_t why;

	memset(out, 0, sizeof(*out));
	if (count != nparams) {
		str_appendf(error, "%s: query has %zu '?' placeholder%s but %zu value%s given",
		            str_c(&c->describe), count, count == 1 ? "" : "s", nparams,
		            nparams == 1 ? " was" : "s were");
		return SQL_FAIL;
	}
	str_init(&why);
	close_if_idle(c);
	for (int attempt = 0;; attempt++) {
		bool fresh = c->state == NULL, lost = false;
		enum sql_status st = conn_open(c, error);

		if (st != SQL_OK) {
			str_free(&why);
			return st;
		}
		str_reset(&why);
		st = c->driver->query(c, query, params, nparams, max_rows, out, &lost, &why);
		c->last_used = time(NULL);
		if (st == SQL_OK) {
			if (res == NULL)
				sql_result_free(out);
			str_free(&why);
			return SQL_OK;
		}
		sql_result_free(out);
		if (lost) {
			st = SQL_TEMPFAIL;
			conn_close(c);
			if (!fresh && attempt == 0) {
				/* The connection broke while idle (server restart,
				 * wait_timeout): reconnect and try once more. */
				log_info("%s: connection lost (%s); reconnecting",
				         str_c(&c->describe), str_c(&why));
				continue;
			}
			/* A connection that breaks at once: skip this host. */
			c->down_until[c->host] =
			        time(NULL) + (time_t)(c->set.retry_interval != 0
			                                      ? c->set.retry_interval
			                                      : SQL_HOST_RETRY_SECONDS);
		}
		str_appendf(error, "%s: %s", str_c(&c->describe), str_c(&why));
		str_free(&why);
		return st;
	}
}

/* ---- scripts -------------------------------------------------------- */

/* Run one text statement on the open connection; a lost connection is
 * closed and reported as SQL_TEMPFAIL. Message appended to why. */
static enum sql_status exec_once(struct sql_conn *c, const char *sql, str_t *why)
{
	bool lost = false;
	enum sql_status st;

	if (c->state == NULL) {
		str_append(why, "connection lost");
		return SQL_TEMPFAIL;
	}
	st = c->driver->exec(c, sql, &lost, why);
	c->last_used = time(NULL);
	if (lost) {
		conn_close(c);
		return SQL_TEMPFAIL;
	}
	return st;
}

/* Connect and run the first statement, reconnecting once when a
 * connection left from earlier turns out to be gone. */
static enum sql_status exec_first(struct sql_conn *c, const char *sql, str_t *why, str_t *error)
{
	close_if_idle(c);
	for (int attempt = 0;; attempt++) {
		bool fresh = c->state == NULL;
		enum sql_status st = conn_open(c, error);

		if (st != SQL_OK)
			return st;
		str_reset(why);
		st = exec_once(c, sql, why);
		if (st == SQL_TEMPFAIL && c->state == NULL && !fresh && attempt == 0) {
			log_info("%s: connection lost (%s); reconnecting", str_c(&c->describe),
			         str_c(why));
			continue;
		}
		return st;
	}
}

struct script_stmt {
	char *text;
	unsigned line;
};

/* Cut script into statements at ';' ending a line; skip "--" comment
 * lines and blank lines. */
static size_t split_script(const char *script, struct script_stmt **out_r)
{
	struct script_stmt *v = NULL;
	size_t n = 0, cap = 0;
	unsigned lineno = 0, start_line = 0;
	const char *p = script;
	str_t cur;

	str_init(&cur);
	while (*p != '\0') {
		const char *nl = strchr(p, '\n');
		size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
		size_t a = 0, b = len;

		lineno++;
		while (a < b && (p[a] == ' ' || p[a] == '\t' || p[a] == '\r'))
			a++;
		while (b > a && (p[b - 1] == ' ' || p[b - 1] == '\t' || p[b - 1] == '\r'))
			b--;
		if (!(a == b || (b - a >= 2 && p[a] == '-' && p[a + 1] == '-'))) {
			if (cur.len == 0)
				start_line = lineno;
			str_append_n(&cur, p, b);
			if (p[b - 1] == ';') {
				str_truncate(&cur, cur.len - 1);
				if (n == cap) {
					cap = cap == 0 ? 16 : cap * 2;
					v = xreallocarray(v, cap, sizeof(*v));
				}
				v[n].text = str_steal(&cur);
				v[n].line = start_line;
				n++;
				str_free(&cur);
				str_init(&cur);
			} else {
				str_append_c(&cur, '\n');
			}
		}
		p += len + (nl != NULL);
	}
	if (!str_is_blank(&cur)) {
		if (n == cap) {
			cap = cap == 0 ? 1 : cap + 1;
			v = xreallocarray(v, cap, sizeof(*v));
		}
		v[n].text = str_steal(&cur);
		v[n].line = start_line;
		n++;
	}
	str_free(&cur);
	*out_r = v;
	return n;
}

enum sql_status sql_exec_script(struct sql_conn *c, const char *script, str_t *error)
{
	struct script_stmt *stmts;
	size_t n = split_script(script, &stmts), i = 0;
	/* Why no transaction on MySQL: DDL commits implicitly there, so a
	 * transaction would promise what it cannot keep; migrations are
	 * idempotent instead (sql/README.md rule 2). */
	bool txn = c->set.type != SQL_MYSQL;
	enum sql_status st = SQL_OK;
	str_t why;

	str_init(&why);
	if (n == 0)
		goto done;
	if (txn) {
		st = exec_first(c, c->set.type == SQL_SQLITE ? "BEGIN IMMEDIATE" : "BEGIN", &why,
		                error);
		if (st != SQL_OK) {
			if (why.len > 0)
				str_appendf(error, "%s: cannot begin a transaction: %s",
				            str_c(&c->describe), str_c(&why));
			goto done;
		}
	}
	for (i = 0; i < n; i++) {
		str_reset(&why);
		if (i == 0 && !txn) {
			st = exec_first(c, stmts[i].text, &why, error);
			if (st != SQL_OK && why.len == 0)
				goto done; /* could not connect: error says why */
		} else {
			st = exec_once(c, stmts[i].text, &why);
		}
		if (st != SQL_OK) {
			str_appendf(error, "%s: statement %zu (line %u): %s", str_c(&c->describe),
			            i + 1, stmts[i].line, str_c(&why));
			goto rollback;
		}
	}
	if (txn) {
		str_reset(&why);
		st = exec_once(c, "COMMIT", &why);
		if (st != SQL_OK) {
			str_appendf(error, "%s: commit failed: %s", str_c(&c->describe),
			            str_c(&why));
			goto rollback;
		}
	}
	goto done;
rollback:
	if (txn && c->state != NULL) {
		str_reset(&why);
		if (exec_once(c, "ROLLBACK", &why) != SQL_OK)
			conn_close(c); /* never reuse a connection in an unknown state */
	}
done:
	for (size_t j = 0; j < n; j++)
		free(stmts[j].text);
	free(stmts);
	str_free(&why);
	return st;
}
