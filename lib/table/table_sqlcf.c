/* table_sqlcf.c - Postfix SQL table .cf files and lookups (see table_sqlcf.h).
 *
 * Shared by table_sqlite.c, table_mysql.c and table_pgsql.c. The .cf file
 * is read with the main.cf parser (same syntax, values taken as written:
 * Postfix does not expand $name in table files either). The query
 * template is compiled once, at open, into SQL with '?' placeholders and
 * one value template per placeholder, so that lookups bind the key and
 * never paste it (STYLE 12; Postfix's own escaping is what this replaces).
 * The lookup follows Postfix's db_common.c: which keys are skipped without
 * a query, how result values are formatted, counted and joined.
 *
 * On failure: open reports every problem with the file (and line) and
 * leaves nothing allocated once sqlcf_free runs; a lookup ends in exactly
 * one of found, not found or temporary failure, and every database error
 * is a temporary failure naming the table and the server.
 */
#include "table/table_sqlcf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/parse.h"
#include "conf/config.h"
#include "table/table_cf.h"
#include "table/table_file.h"

/* Rows fetched when expansion_limit is 0: a lookup answering more is a
 * broken query, not a list of addresses. */
#define SQLCF_ROWS_MAX 100000

/* ---- the .cf file ------------------------------------------------------ */

/* Parameters of each type's manual, plus postern's connect_timeout and
 * query_timeout. */
static const char *const common_params[] = {
        "query",  "select_field",  "table",           "where_field",     "additional_conditions",
        "domain", "result_format", "expansion_limit", "connect_timeout", "query_timeout",
        NULL,
};
static const char *const sqlite_params[] = {"dbpath", "statement_mode", NULL};
static const char *const mysql_params[] = {
        "hosts",
        "user",
        "password",
        "dbname",
        "charset",
        "idle_interval",
        "retry_interval",
        "option_file",
        "option_group",
        "require_result_set",
        "tls_cert_file",
        "tls_key_file",
        "tls_CAfile",
        "tls_CApath",
        "tls_ciphers",
        "tls_verify_cert",
        NULL,
};
static const char *const pgsql_params[] = {
        "hosts",         "user",           "password",        "dbname", "encoding",
        "idle_interval", "retry_interval", "select_function", NULL,
};

static const char *type_name(enum sql_type type)
{
	return type == SQL_SQLITE ? "sqlite" : type == SQL_MYSQL ? "mysql" : "pgsql";
}

/* Add one element of the domain list; files are read (depth 0 only). */
static int add_domain(struct sqlcf_domain_list *l, const char *elem,
                      const struct table_open_context *ctx, int depth, str_t *error);

static int add_domain_file(struct sqlcf_domain_list *l, const char *path,
                           const struct table_open_context *ctx, str_t *error)
{
	str_t text;
	int ret = 0;

	str_init(&text);
	if (fs_read_file(path, TABLE_CF_FILE_MAX, &text, error) < 0) {
		str_free(&text);
		return -1;
	}
	for (const char *p = str_c(&text); *p != '\0' && ret == 0;) {
		size_t n = strcspn(p, "\n");
		char *line = xstrndup(p, n);
		strv_t words = STRV_INIT;
		const char *why = NULL;

		p += n + (p[n] == '\n');
		if (line[strspn(line, " \t\r")] == '#') {
			free(line);
			continue;
		}
		if (strv_split_list(&words, line, &why) < 0) {
			str_appendf(error, "domain file %s: %s", path, why);
			ret = -1;
		}
		for (size_t i = 0; ret == 0 && i < words.n; i++)
			ret = add_domain(l, words.v[i], ctx, 1, error);
		strv_free(&words);
		free(line);
	}
	str_free(&text);
	return ret;
}

static int add_domain(struct sqlcf_domain_list *l, const char *elem,
                      const struct table_open_context *ctx, int depth, str_t *error)
{
	struct sqlcf_domain d = {NULL, NULL, false};

	if (elem[0] == '!') {
		d.negate = true;
		elem++;
	}
	if (elem[0] == '\0') {
		str_append(error, "domain: empty element");
		return -1;
	}
	if (elem[0] == '/') {
		if (depth > 0 || d.negate) {
			str_appendf(error, "domain: file \"%s\" not allowed here", elem);
			return -1;
		}
		return add_domain_file(l, elem, ctx, error);
	}
	if (strchr(elem, ':') != NULL) {
		str_t why;

		str_init(&why);
		d.table = table_open(elem, ctx, &why);
		if (d.table == NULL) {
			str_appendf(error, "domain: %s", str_c(&why));
			str_free(&why);
			return -1;
		}
		str_free(&why);
	} else {
		str_t name;

		str_init(&name);
		str_set(&name, elem);
		str_lower(&name);
		d.name = str_steal(&name);
		str_free(&name);
	}
	l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
	l->v[l->n++] = d;
	return 0;
}

int sqlcf_domains_parse(struct sqlcf_domain_list *l, const char *value,
                        const struct table_open_context *ctx, str_t *error)
{
	strv_t elems = STRV_INIT;
	int ret;

	/* Split like a table list, so "inline:{ a=b, c=d }" is one element. */
	ret = table_list_split(&elems, value, error);
	for (size_t i = 0; ret == 0 && i < elems.n; i++)
		ret = add_domain(l, elems.v[i], ctx, 0, error);
	strv_free(&elems);
	return ret;
}

void sqlcf_domains_free(struct sqlcf_domain_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].name);
		table_close(&l->v[i].table);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* The query text from query, select_function (pgsql) or the legacy
 * fields (Postfix db_common_sql_build_query). Caller frees. */
static char *query_text(struct table_cf *r, enum sql_type type)
{
	const char *table, *select_field, *where_field, *extra;

	if (table_cf_get(r, "query") != NULL)
		return xstrdup(table_cf_get(r, "query"));
	if (type == SQL_PGSQL && table_cf_get(r, "select_function") != NULL)
		return xasprintf("SELECT %s('%%s')", table_cf_get(r, "select_function"));
	table = table_cf_get(r, "table");
	select_field = table_cf_get(r, "select_field");
	where_field = table_cf_get(r, "where_field");
	extra = table_cf_get(r, "additional_conditions");
	if (table == NULL && select_field == NULL && where_field == NULL) {
		table_cf_problem(r, "no query: set query = SELECT ... WHERE ... = '%s'");
		return NULL;
	}
	if (table == NULL || select_field == NULL || where_field == NULL) {
		char *why = xasprintf("without query, table, select_field and where_field are all "
		                      "needed (missing: %s%s%s)",
		                      table == NULL ? "table " : "",
		                      select_field == NULL ? "select_field " : "",
		                      where_field == NULL ? "where_field" : "");

		table_cf_problem(r, why);
		free(why);
		return NULL;
	}
	return xasprintf("SELECT %s FROM %s WHERE %s='%%s' %s", select_field, table, where_field,
	                 extra != NULL ? extra : "");
}

static void read_settings(struct sqlcf *cf, struct table_cf *r, enum sql_type type,
                          const struct table_open_context *ctx)
{
	struct sql_settings *s = &cf->settings;

	s->type = type;
	s->connect_timeout = table_cf_uint(r, "connect_timeout", SQLCF_CONNECT_TIMEOUT, 3600);
	s->query_timeout = table_cf_uint(r, "query_timeout", SQLCF_QUERY_TIMEOUT, 3600);
	if (type == SQL_SQLITE) {
		const char *mode = table_cf_get(r, "statement_mode");
		char *dbpath = table_cf_dup(r, "dbpath");

		/* Both modes give what "prepared" means: postern always binds. */
		if (mode != NULL && strcmp(mode, "legacy") != 0 && strcmp(mode, "prepared") != 0)
			table_cf_bad_value(r, "statement_mode", "legacy or prepared");
		if (dbpath == NULL) {
			table_cf_problem(r, "no dbpath: set dbpath = /path/to/file.db");
			return;
		}
		s->dbname = table_file_path(dbpath, ctx);
		free(dbpath);
		return;
	}
	if (table_cf_get(r, "hosts") != NULL) {
		const char *why = NULL;

		if (strv_split_list(&s->hosts, table_cf_get(r, "hosts"), &why) < 0)
			table_cf_bad_param(r, "hosts", why);
		for (size_t i = 0; i < s->hosts.n; i++) {
			str_t herr;

			str_init(&herr);
			if (sql_host_check(type, s->hosts.v[i], &herr) < 0)
				table_cf_bad_param(r, "hosts", str_c(&herr));
			str_free(&herr);
		}
	}
	if (s->hosts.n == 0)
		strv_add(&s->hosts, "localhost");
	s->user = table_cf_dup(r, "user");
	s->password =
	        table_cf_get(r, "password") != NULL ? xstrdup(table_cf_get(r, "password")) : NULL;
	s->dbname = table_cf_dup(r, "dbname");
	s->idle_interval = table_cf_uint(r, "idle_interval", 60, 86400 * 365);
	s->retry_interval = table_cf_uint(r, "retry_interval", 60, 86400 * 365);
	if (type == SQL_MYSQL) {
		s->charset = table_cf_dup(r, "charset");
		s->option_file = table_cf_dup(r, "option_file");
		/* Postfix 3.2 and later read the [client] group by default;
		 * "option_group =" (empty) turns that off. */
		s->option_group = table_cf_get(r, "option_group") != NULL
		                          ? table_cf_dup(r, "option_group")
		                          : xstrdup("client");
		s->tls_cert_file = table_cf_dup(r, "tls_cert_file");
		s->tls_key_file = table_cf_dup(r, "tls_key_file");
		s->tls_ca_file = table_cf_dup(r, "tls_CAfile");
		s->tls_ca_path = table_cf_dup(r, "tls_CApath");
		s->tls_ciphers = table_cf_dup(r, "tls_ciphers");
		s->tls_verify_cert = table_cf_bool(r, "tls_verify_cert", false);
	} else {
		s->charset = table_cf_dup(r, "encoding");
	}
	if (s->dbname == NULL) {
		bool all_uri = type == SQL_PGSQL;

		for (size_t i = 0; i < s->hosts.n; i++)
			if (strncmp(s->hosts.v[i], "postgres", 8) != 0)
				all_uri = false;
		if (!all_uri) {
			table_cf_problem(r, "no dbname: set dbname = the database name");
		}
	}
}

int sqlcf_open(struct sqlcf *cf, enum sql_type type, const char *name,
               const struct table_open_context *ctx, str_t *error)
{
	const char *const *type_params = type == SQL_SQLITE  ? sqlite_params
	                                 : type == SQL_MYSQL ? mysql_params
	                                                     : pgsql_params;
	const char *const *const known[] = {common_params, type_params, NULL};
	const char *format;
	struct table_cf r;
	str_t why;
	char *query = NULL;
	int ret = -1;

	memset(cf, 0, sizeof(*cf));
	if (table_cf_open(&r, type_name(type), name, known, ctx, error) < 0)
		return -1;
	str_init(&why);
	cf->path = xstrdup(r.path);
	read_settings(cf, &r, type, ctx);
	cf->expansion_limit = table_cf_uint(&r, "expansion_limit", 0, 1000000);
	/* mysql_table(5) only; the other types always want a result set. */
	cf->require_result_set =
	        type == SQL_MYSQL ? table_cf_bool(&r, "require_result_set", true) : true;
	query = query_text(&r, type);
	if (query != NULL && sqlcf_compile_query(type, query, &cf->query, &why) < 0)
		table_cf_bad_param(&r, table_cf_get(&r, "query") != NULL ? "query" : "table",
		                   str_c(&why));
	str_reset(&why);
	format = table_cf_get(&r, "result_format");
	if (sqlcf_compile_result(format != NULL ? format : "%s", &cf->result, &cf->need,
	                         &cf->labels, &why) < 0)
		table_cf_bad_param(&r, "result_format", str_c(&why));
	cf->need |= cf->query.need;
	if (cf->labels < cf->query.labels)
		cf->labels = cf->query.labels;
	if (r.errors == 0 && table_cf_get(&r, "domain") != NULL) {
		str_reset(&why);
		if (sqlcf_domains_parse(&cf->domains, table_cf_get(&r, "domain"), ctx, &why) < 0)
			table_cf_bad_param(&r, "domain", str_c(&why));
	}
	ret = r.errors == 0 ? 0 : -1;
	free(query);
	table_cf_close(&r);
	str_free(&why);
	return ret;
}

void sqlcf_free(struct sqlcf *cf)
{
	free(cf->path);
	sql_settings_free(&cf->settings);
	sqlcf_query_free(&cf->query);
	sqlcf_template_free(&cf->result);
	sqlcf_domains_free(&cf->domains);
	memset(cf, 0, sizeof(*cf));
}

/* ---- lookups ------------------------------------------------------------ */

/* 1 when domain is in the domain list, 0 when not, -1 (r set to a
 * temporary failure) when a domain table failed. */
static int domain_match(const struct sqlcf_domain_list *l, const char *spec, const char *domain,
                        struct table_result *r)
{
	for (size_t i = 0; i < l->n; i++) {
		const struct sqlcf_domain *d = &l->v[i];
		bool hit;

		if (d->name != NULL) {
			hit = ascii_casecmp_eq(d->name, domain);
		} else {
			struct table_result tr;

			table_result_init(&tr);
			table_lookup(d->table, domain, &tr);
			if (tr.status == TABLE_TEMPFAIL) {
				r->status = TABLE_TEMPFAIL;
				str_appendf(&r->error, "%s: domain list: %s", spec,
				            str_c(&tr.error));
				table_result_free(&tr);
				return -1;
			}
			hit = tr.status == TABLE_FOUND;
			table_result_free(&tr);
		}
		if (hit)
			return d->negate ? 0 : 1;
	}
	return 0;
}

/* Can key be looked up at all (Postfix db_common_check_domain and the
 * template checks of db_common_expand)? 1 yes, 0 no, -1 r set. */
int sqlcf_key_eligible(const struct sqlcf_domain_list *l, unsigned need, unsigned labels,
                       const char *spec, const struct sqlcf_addr *k, struct table_result *r)
{
	if (k->whole[0] == '\0')
		return 0;
	if (l->n > 0) {
		/* Only user@domain with a non-empty local part: "user",
		 * "@domain" and bare domains are not looked up. */
		if (k->domain == NULL || k->user[0] == '\0')
			return 0;
		int m = domain_match(l, spec, k->domain, r);

		if (m <= 0)
			return m;
	}
	if ((need & SQLCF_NEED_KEY_USER) && sqlcf_addr_user(k) == NULL)
		return 0;
	if ((need & SQLCF_NEED_KEY_DOMAIN) && sqlcf_addr_domain(k) == NULL)
		return 0;
	for (unsigned i = 1; i <= labels; i++)
		if (sqlcf_addr_label(k, i) == NULL)
			return 0;
	return 1;
}

static void tempfail(struct table_result *r, const char *spec, const char *key, const char *why)
{
	r->status = TABLE_TEMPFAIL;
	str_reset(&r->value);
	str_appendf(&r->error, "%s: lookup of \"%s\" failed: %s", spec, key, why);
}

void sqlcf_lookup(struct sqlcf *cf, struct sql_conn *conn, const char *spec, const char *key,
                  struct table_result *r)
{
	const char **params = NULL;
	struct sql_result res;
	struct sqlcf_addr k;
	uint64_t count = 0;
	str_t *values = NULL, error;
	size_t max_rows;
	int ok;

	r->status = TABLE_NOTFOUND;
	sqlcf_addr_init(&k, key);
	str_init(&error);
	memset(&res, 0, sizeof(res));
	ok = sqlcf_key_eligible(&cf->domains, cf->need, cf->labels, spec, &k, r);
	if (ok <= 0)
		goto out;
	if (cf->query.nparams > 0) {
		params = xcalloc(cf->query.nparams, sizeof(*params));
		values = xcalloc(cf->query.nparams, sizeof(*values));
	}
	for (size_t i = 0; i < cf->query.nparams; i++) {
		str_init(&values[i]);
		if (!sqlcf_expand(&cf->query.params[i], &k, NULL, &values[i]))
			goto out; /* a part is missing: not looked up */
		params[i] = str_c(&values[i]);
	}
	/* Why limit + 1 rows: with no NULL cells, limit + 1 rows already
	 * exceed the limit; fetching more only costs memory. */
	max_rows = cf->expansion_limit > 0 ? (size_t)cf->expansion_limit + 1 : SQLCF_ROWS_MAX;
	if (sql_query(conn, cf->query.sql, params, cf->query.nparams, max_rows, &res, &error) !=
	    SQL_OK) {
		tempfail(r, spec, key, str_c(&error));
		goto out;
	}
	if (res.ncols == 0) {
		if (cf->require_result_set)
			tempfail(r, spec, key,
			         "the query returned no result set (set require_result_set = no "
			         "to treat that as not found)");
		goto out;
	}
	for (size_t i = 0; i < res.nrows; i++) {
		for (size_t j = 0; j < res.ncols; j++) {
			const char *cell = sql_cell(&res, i, j);
			struct sqlcf_addr v;
			size_t before = r->value.len;

			if (cell == NULL)
				continue; /* NULL values are skipped silently */
			if (cell[0] == '\0') {
				log_warning("table %s: empty lookup result for \"%s\" -- ignored",
				            spec, key);
				continue;
			}
			sqlcf_addr_init(&v, cell);
			if (before > 0)
				str_append_c(&r->value, ',');
			if (!sqlcf_expand(&cf->result, &k, &v, &r->value)) {
				/* result %u/%d and the value lacks that part */
				str_truncate(&r->value, before);
				sqlcf_addr_free(&v);
				continue;
			}
			sqlcf_addr_free(&v);
			if (cf->expansion_limit > 0 && ++count > cf->expansion_limit) {
				char *why = xasprintf("more than expansion_limit = %llu values",
				                      (unsigned long long)cf->expansion_limit);

				tempfail(r, spec, key, why);
				free(why);
				goto out;
			}
		}
	}
	if (r->value.len > 0)
		r->status = TABLE_FOUND;
out:
	if (values != NULL)
		for (size_t i = 0; i < cf->query.nparams; i++)
			str_free(&values[i]);
	free(values);
	free(params);
	sql_result_free(&res);
	sqlcf_addr_free(&k);
	str_free(&error);
}

/* ---- the backend object ------------------------------------------------ */

int table_sql_open(struct table *t, enum sql_type type, const char *name,
                   const struct table_open_context *ctx, str_t *error)
{
	struct table_sql *ts = (struct table_sql *)t;
	str_t why;

	str_init(&why);
	if (sqlcf_open(&ts->cf, type, name, ctx, &why) < 0) {
		str_appendf(error, "%s: %s", t->spec, str_c(&why));
		str_free(&why);
		return -1;
	}
	str_free(&why);
	/* Why check the SQLite file now: SQLite would create a missing file
	 * and every lookup would then fail with "no such table"; a wrong
	 * dbpath is a configuration error to report when the table opens. */
	if (type == SQL_SQLITE && access(ts->cf.settings.dbname, R_OK) < 0) {
		str_appendf(error, "%s: dbpath %s: %s", t->spec, ts->cf.settings.dbname,
		            strerror(errno));
		return -1;
	}
	ts->conn = sql_conn_new(&ts->cf.settings);
	return 0;
}

void table_sql_lookup(struct table *t, const char *key, struct table_result *r)
{
	struct table_sql *ts = (struct table_sql *)t;

	sqlcf_lookup(&ts->cf, ts->conn, t->spec, key, r);
}

void table_sql_close(struct table *t)
{
	struct table_sql *ts = (struct table_sql *)t;

	sql_conn_destroy(&ts->conn);
	sqlcf_free(&ts->cf);
}
