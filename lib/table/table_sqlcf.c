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
#include "table/table_file.h"

/* Rows fetched when expansion_limit is 0: a lookup answering more is a
 * broken query, not a list of addresses. */
#define SQLCF_ROWS_MAX 100000

/* ---- templates -------------------------------------------------------- */

static bool is_ident_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '$';
}

void sqlcf_template_free(struct sqlcf_template *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->pieces[i].text);
	free(t->pieces);
	t->pieces = NULL;
	t->n = 0;
}

static void add_piece(struct sqlcf_template *t, enum sqlcf_piece_kind kind, const char *text,
                      size_t len, unsigned label)
{
	/* Adjacent text is merged into one piece. */
	if (kind == SQLCF_TEXT && t->n > 0 && t->pieces[t->n - 1].kind == SQLCF_TEXT) {
		struct sqlcf_piece *last = &t->pieces[t->n - 1];
		size_t old = strlen(last->text);

		last->text = xrealloc(last->text, old + len + 1);
		memcpy(last->text + old, text, len);
		last->text[old + len] = '\0';
		return;
	}
	t->pieces = xreallocarray(t->pieces, t->n + 1, sizeof(*t->pieces));
	t->pieces[t->n].kind = kind;
	t->pieces[t->n].text = kind == SQLCF_TEXT ? xstrndup(text, len) : NULL;
	t->pieces[t->n].label = label;
	t->n++;
}

/* The meaning of "%c" in a query (result = false) or in result_format.
 * Sets *need and *labels; -1 for an unknown letter. */
static int expansion_kind(char c, bool result, enum sqlcf_piece_kind *kind, unsigned *label,
                          unsigned *need, unsigned *labels)
{
	*label = 0;
	switch (c) {
	case 's':
		*kind = result ? SQLCF_VALUE : SQLCF_KEY;
		return 0;
	case 'S':
		*kind = SQLCF_KEY;
		return 0;
	case 'u':
		*kind = result ? SQLCF_VALUE_USER : SQLCF_KEY_USER;
		*need |= result ? SQLCF_NEED_VALUE_USER : SQLCF_NEED_KEY_USER;
		return 0;
	case 'U':
		*kind = SQLCF_KEY_USER;
		*need |= SQLCF_NEED_KEY_USER;
		return 0;
	case 'd':
		*kind = result ? SQLCF_VALUE_DOMAIN : SQLCF_KEY_DOMAIN;
		*need |= result ? SQLCF_NEED_VALUE_DOMAIN : SQLCF_NEED_KEY_DOMAIN;
		return 0;
	case 'D':
		*kind = SQLCF_KEY_DOMAIN;
		*need |= SQLCF_NEED_KEY_DOMAIN;
		return 0;
	default:
		if (c >= '1' && c <= '9') {
			*kind = SQLCF_KEY_LABEL;
			*label = (unsigned)(c - '0');
			*need |= SQLCF_NEED_KEY_DOMAIN;
			if (*labels < *label)
				*labels = *label;
			return 0;
		}
		return -1;
	}
}

static void bad_expansion(str_t *error, const char *what, const char *p)
{
	if (p[1] == '\0')
		str_appendf(error, "%s: a lone '%%' at the end; write %%%% for a literal %%", what);
	else
		str_appendf(error,
		            "%s: unknown expansion \"%%%c\" (expected %%s, %%u, %%d, %%S, %%U, "
		            "%%D, %%1..%%9, or %%%% for a literal %%)",
		            what, p[1]);
}

int sqlcf_compile_result(const char *text, struct sqlcf_template *t, unsigned *need,
                         unsigned *labels, str_t *error)
{
	memset(t, 0, sizeof(*t));
	for (const char *p = text; *p != '\0';) {
		enum sqlcf_piece_kind kind;
		unsigned label;

		if (*p != '%') {
			size_t n = strcspn(p, "%");

			add_piece(t, SQLCF_TEXT, p, n, 0);
			p += n;
			continue;
		}
		if (p[1] == '%') {
			add_piece(t, SQLCF_TEXT, "%", 1, 0);
			p += 2;
			continue;
		}
		if (p[1] == '\0' || expansion_kind(p[1], true, &kind, &label, need, labels) < 0) {
			bad_expansion(error, "result_format", p);
			sqlcf_template_free(t);
			return -1;
		}
		add_piece(t, kind, NULL, 0, label);
		p += 2;
	}
	return 0;
}

void sqlcf_query_free(struct sqlcf_query *q)
{
	free(q->sql);
	for (size_t i = 0; i < q->nparams; i++)
		sqlcf_template_free(&q->params[i]);
	free(q->params);
	memset(q, 0, sizeof(*q));
}

static struct sqlcf_template *new_param(struct sqlcf_query *q)
{
	q->params = xreallocarray(q->params, q->nparams + 1, sizeof(*q->params));
	memset(&q->params[q->nparams], 0, sizeof(*q->params));
	return &q->params[q->nparams++];
}

/* True when the quoted text body (len bytes) holds an expansion. */
static bool has_expansion(const char *body, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (body[i] != '%')
			continue;
		if (body[i + 1] != '%')
			return true;
		i++;
	}
	return false;
}

/* A quoted literal whose text holds expansions becomes one bound value:
 * its text with doubled quotes undone and %% made %. */
static int compile_quoted(struct sqlcf_query *q, char quote, const char *body, size_t len,
                          str_t *error)
{
	struct sqlcf_template *t = new_param(q);

	for (size_t i = 0; i < len;) {
		enum sqlcf_piece_kind kind;
		unsigned label;

		if (body[i] == quote) { /* a doubled quote: one quote character */
			add_piece(t, SQLCF_TEXT, &body[i], 1, 0);
			i += 2;
		} else if (body[i] == '%' && i + 1 < len && body[i + 1] == '%') {
			add_piece(t, SQLCF_TEXT, "%", 1, 0);
			i += 2;
		} else if (body[i] == '%') {
			/* At the end of the text, the closing quote follows. */
			char p[3] = {'%', i + 1 < len ? body[i + 1] : quote, '\0'};

			if (expansion_kind(p[1], false, &kind, &label, &q->need, &q->labels) < 0) {
				bad_expansion(error, "query", p);
				return -1;
			}
			add_piece(t, kind, NULL, 0, label);
			i += 2;
		} else {
			size_t n = 1;

			while (i + n < len && body[i + n] != '%' && body[i + n] != quote)
				n++;
			add_piece(t, SQLCF_TEXT, &body[i], n, 0);
			i += n;
		}
	}
	return 0;
}

/* Copy text that holds no expansion, turning %% into %; after is the
 * character that follows text (for the message about a '%' at its end). */
static int copy_plain(str_t *sql, const char *text, size_t len, char after, str_t *error)
{
	for (size_t i = 0; i < len; i++) {
		if (text[i] != '%') {
			str_append_c(sql, text[i]);
			continue;
		}
		if (i + 1 < len && text[i + 1] == '%') {
			str_append_c(sql, '%');
			i++;
			continue;
		}
		{
			char p[3] = {'%', i + 1 < len ? text[i + 1] : after, '\0'};

			bad_expansion(error, "query", p);
		}
		return -1;
	}
	return 0;
}

int sqlcf_compile_query(enum sql_type type, const char *text, struct sqlcf_query *q, str_t *error)
{
	const char *p = text;
	str_t sql;

	memset(q, 0, sizeof(*q));
	str_init(&sql);
	while (*p != '\0') {
		char c = *p;

		if (c == '\'' || c == '"' || c == '`') {
			bool backslash =
			        (type == SQL_MYSQL && c != '`') ||
			        (type == SQL_PGSQL && c == '\'' && sql.len > 0 &&
			         (sql.buf[sql.len - 1] == 'E' || sql.buf[sql.len - 1] == 'e') &&
			         (sql.len == 1 || !is_ident_char(sql.buf[sql.len - 2])));
			const char *body = p + 1, *end = body;
			size_t len;

			while (*end != '\0') {
				if (backslash && *end == '\\' && end[1] != '\0')
					end += 2;
				else if (*end == c && end[1] == c)
					end += 2;
				else if (*end == c)
					break;
				else
					end++;
			}
			if (*end == '\0') {
				str_appendf(error, "query: unterminated %c...%c string", c, c);
				goto fail;
			}
			len = (size_t)(end - body);
			if (!has_expansion(body, len)) {
				str_append_c(&sql, c);
				if (copy_plain(&sql, body, len, c, error) < 0)
					goto fail;
				str_append_c(&sql, c);
				p = end + 1;
				continue;
			}
			if (c == '`' || (c == '"' && type == SQL_PGSQL)) {
				str_appendf(
				        error,
				        "query: an expansion inside a %c...%c identifier cannot "
				        "be a bound value",
				        c, c);
				goto fail;
			}
			if (backslash && memchr(body, '\\', len) != NULL) {
				str_append(error,
				           "query: a backslash escape inside a quoted string "
				           "with an expansion is not supported");
				goto fail;
			}
			if (type == SQL_PGSQL && c == '\'' && backslash)
				str_truncate(&sql, sql.len - 1); /* E'%s' is just a value */
			if (compile_quoted(q, c, body, len, error) < 0)
				goto fail;
			str_append_c(&sql, '?');
			p = end + 1;
		} else if ((c == '-' && p[1] == '-') || (c == '#' && type == SQL_MYSQL)) {
			size_t n = strcspn(p, "\n");

			str_append_n(&sql, p, n);
			p += n;
		} else if (c == '/' && p[1] == '*') {
			const char *close = strstr(p + 2, "*/");
			size_t n = close != NULL ? (size_t)(close + 2 - p) : strlen(p);

			str_append_n(&sql, p, n);
			p += n;
		} else if (c == '%' && p[1] == '%') {
			str_append_c(&sql, '%'); /* the modulo operator */
			p += 2;
		} else if (c == '%') {
			enum sqlcf_piece_kind kind;
			unsigned label;

			if (p[1] == '\0' ||
			    expansion_kind(p[1], false, &kind, &label, &q->need, &q->labels) < 0) {
				bad_expansion(error, "query", p);
				goto fail;
			}
			/* Why refuse: "FROM %d_aliases" or "x = %u@%d" would have
			 * pasted text into an identifier or an unquoted string;
			 * a bound value can only stand where a whole value
			 * stands. */
			if ((sql.len > 0 && (is_ident_char(sql.buf[sql.len - 1]) ||
			                     sql.buf[sql.len - 1] == '@')) ||
			    is_ident_char(p[2]) || p[2] == '@' || p[2] == '%' || p[2] == '\'' ||
			    p[2] == '"' || p[2] == '.') {
				str_appendf(
				        error,
				        "query: %%%c is glued to other text outside quotes; it "
				        "becomes a bound value, so it must stand alone or inside "
				        "'...' (e.g. '%%u@%%d')",
				        p[1]);
				goto fail;
			}
			add_piece(new_param(q), kind, NULL, 0, label);
			str_append_c(&sql, '?');
			p += 2;
		} else if (c == '?') {
			str_append(error,
			           "query: a '?' outside quotes is not supported (values are "
			           "bound as '?' parameters)");
			goto fail;
		} else {
			str_append_c(&sql, c);
			p++;
		}
	}
	q->sql = str_steal(&sql);
	str_free(&sql);
	return 0;
fail:
	str_free(&sql);
	sqlcf_query_free(q);
	return -1;
}

/* ---- keys and values -------------------------------------------------- */

void sqlcf_addr_init(struct sqlcf_addr *a, const char *s)
{
	const char *at = strrchr(s, '@');

	memset(a, 0, sizeof(*a));
	a->whole = s;
	if (at == NULL)
		return;
	a->user = xstrndup(s, (size_t)(at - s));
	a->domain = xstrdup(at + 1);
	for (const char *p = a->domain;;) {
		size_t n = strcspn(p, ".");

		strv_add_n(&a->labels, p, n);
		if (p[n] == '\0')
			break;
		p += n + 1;
	}
}

void sqlcf_addr_free(struct sqlcf_addr *a)
{
	free(a->user);
	free(a->domain);
	strv_free(&a->labels);
	memset(a, 0, sizeof(*a));
}

/* Label n (1 = rightmost) of a's domain, or NULL when missing or empty. */
static const char *addr_label(const struct sqlcf_addr *a, unsigned n)
{
	const char *l;

	if (a->domain == NULL || n == 0 || a->labels.n < n)
		return NULL;
	l = a->labels.v[a->labels.n - n];
	return l[0] != '\0' ? l : NULL;
}

/* The user part for %u: the local part of user@domain (NULL when empty),
 * or the whole text without '@' (Postfix db_common_expand). */
static const char *addr_user(const struct sqlcf_addr *a)
{
	if (a->user == NULL)
		return a->whole;
	return a->user[0] != '\0' ? a->user : NULL;
}

static const char *addr_domain(const struct sqlcf_addr *a)
{
	return a->domain != NULL && a->domain[0] != '\0' ? a->domain : NULL;
}

bool sqlcf_expand(const struct sqlcf_template *t, const struct sqlcf_addr *key,
                  const struct sqlcf_addr *value, str_t *out)
{
	size_t start = out->len;

	for (size_t i = 0; i < t->n; i++) {
		const struct sqlcf_piece *pc = &t->pieces[i];
		const char *v = NULL;

		switch (pc->kind) {
		case SQLCF_TEXT:
			v = pc->text;
			break;
		case SQLCF_KEY:
			v = key->whole;
			break;
		case SQLCF_KEY_USER:
			v = addr_user(key);
			break;
		case SQLCF_KEY_DOMAIN:
			v = addr_domain(key);
			break;
		case SQLCF_KEY_LABEL:
			v = addr_label(key, pc->label);
			break;
		case SQLCF_VALUE:
			v = value != NULL ? value->whole : NULL;
			break;
		case SQLCF_VALUE_USER:
			v = value != NULL ? addr_user(value) : NULL;
			break;
		case SQLCF_VALUE_DOMAIN:
			v = value != NULL ? addr_domain(value) : NULL;
			break;
		}
		if (v == NULL) {
			str_truncate(out, start);
			return false;
		}
		str_append(out, v);
	}
	return true;
}

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

static bool in_list(const char *const *list, const char *name)
{
	for (; *list != NULL; list++)
		if (strcmp(*list, name) == 0)
			return true;
	return false;
}

static const char *type_name(enum sql_type type)
{
	return type == SQL_SQLITE ? "sqlite" : type == SQL_MYSQL ? "mysql" : "pgsql";
}

/* Reading state: the parsed file and where problems go. */
struct cfread {
	struct config *cfg;
	str_t *error;
	int errors;
};

static const char *get(struct cfread *r, const char *name)
{
	return config_is_set(r->cfg, name) ? config_raw(r->cfg, name) : NULL;
}

static void bad_value(struct cfread *r, const char *name, const char *expected)
{
	if (r->errors++ > 0)
		str_append(r->error, "; ");
	str_appendf(r->error, "%s: bad value for %s: \"%s\": expected %s",
	            config_where(r->cfg, name), name, get(r, name), expected);
}

/* A parameter whose value is wrong for a reason told in why. */
static void bad_param(struct cfread *r, const char *name, const char *why)
{
	if (r->errors++ > 0)
		str_append(r->error, "; ");
	str_appendf(r->error, "%s: %s", config_where(r->cfg, name), why);
}

static unsigned get_uint(struct cfread *r, const char *name, unsigned def, unsigned max)
{
	const char *v = get(r, name);
	uint64_t n;

	if (v == NULL)
		return def;
	if (parse_uint64(v, 0, max, &n) < 0) {
		char *what = xasprintf("a whole number from 0 to %u", max);

		bad_value(r, name, what);
		free(what);
		return def;
	}
	return (unsigned)n;
}

static bool get_bool(struct cfread *r, const char *name, bool def)
{
	const char *v = get(r, name);
	bool b;

	if (v == NULL)
		return def;
	if (parse_bool(v, &b) < 0) {
		bad_value(r, name, "yes or no");
		return def;
	}
	return b;
}

static char *get_dup(struct cfread *r, const char *name)
{
	const char *v = get(r, name);

	return v != NULL && v[0] != '\0' ? xstrdup(v) : NULL;
}

/* Add one element of the domain list; files are read (depth 0 only). */
static int add_domain(struct sqlcf *cf, const char *elem, const struct table_open_context *ctx,
                      int depth, str_t *error);

static int add_domain_file(struct sqlcf *cf, const char *path, const struct table_open_context *ctx,
                           str_t *error)
{
	str_t text;
	int ret = 0;

	str_init(&text);
	if (fs_read_file(path, SQLCF_FILE_MAX, &text, error) < 0) {
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
			ret = add_domain(cf, words.v[i], ctx, 1, error);
		strv_free(&words);
		free(line);
	}
	str_free(&text);
	return ret;
}

static int add_domain(struct sqlcf *cf, const char *elem, const struct table_open_context *ctx,
                      int depth, str_t *error)
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
		return add_domain_file(cf, elem, ctx, error);
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
	cf->domains = xreallocarray(cf->domains, cf->ndomains + 1, sizeof(*cf->domains));
	cf->domains[cf->ndomains++] = d;
	return 0;
}

/* The query text from query, select_function (pgsql) or the legacy
 * fields (Postfix db_common_sql_build_query). Caller frees. */
static char *query_text(struct cfread *r, enum sql_type type)
{
	const char *table, *select_field, *where_field, *extra;

	if (get(r, "query") != NULL)
		return xstrdup(get(r, "query"));
	if (type == SQL_PGSQL && get(r, "select_function") != NULL)
		return xasprintf("SELECT %s('%%s')", get(r, "select_function"));
	table = get(r, "table");
	select_field = get(r, "select_field");
	where_field = get(r, "where_field");
	extra = get(r, "additional_conditions");
	if (table == NULL && select_field == NULL && where_field == NULL) {
		if (r->errors++ > 0)
			str_append(r->error, "; ");
		str_append(r->error, "no query: set query = SELECT ... WHERE ... = '%s'");
		return NULL;
	}
	if (table == NULL || select_field == NULL || where_field == NULL) {
		if (r->errors++ > 0)
			str_append(r->error, "; ");
		str_appendf(r->error,
		            "without query, table, select_field and where_field are all "
		            "needed (missing: %s%s%s)",
		            table == NULL ? "table " : "",
		            select_field == NULL ? "select_field " : "",
		            where_field == NULL ? "where_field" : "");
		return NULL;
	}
	return xasprintf("SELECT %s FROM %s WHERE %s='%%s' %s", select_field, table, where_field,
	                 extra != NULL ? extra : "");
}

static void read_settings(struct sqlcf *cf, struct cfread *r, enum sql_type type,
                          const struct table_open_context *ctx)
{
	struct sql_settings *s = &cf->settings;

	s->type = type;
	s->connect_timeout = get_uint(r, "connect_timeout", SQLCF_CONNECT_TIMEOUT, 3600);
	s->query_timeout = get_uint(r, "query_timeout", SQLCF_QUERY_TIMEOUT, 3600);
	if (type == SQL_SQLITE) {
		const char *mode = get(r, "statement_mode");
		char *dbpath = get_dup(r, "dbpath");

		/* Both modes give what "prepared" means: postern always binds. */
		if (mode != NULL && strcmp(mode, "legacy") != 0 && strcmp(mode, "prepared") != 0)
			bad_value(r, "statement_mode", "legacy or prepared");
		if (dbpath == NULL) {
			if (r->errors++ > 0)
				str_append(r->error, "; ");
			str_append(r->error, "no dbpath: set dbpath = /path/to/file.db");
			return;
		}
		s->dbname = table_file_path(dbpath, ctx);
		free(dbpath);
		return;
	}
	if (get(r, "hosts") != NULL) {
		const char *why = NULL;

		if (strv_split_list(&s->hosts, get(r, "hosts"), &why) < 0)
			bad_param(r, "hosts", why);
		for (size_t i = 0; i < s->hosts.n; i++) {
			str_t herr;

			str_init(&herr);
			if (sql_host_check(type, s->hosts.v[i], &herr) < 0)
				bad_param(r, "hosts", str_c(&herr));
			str_free(&herr);
		}
	}
	if (s->hosts.n == 0)
		strv_add(&s->hosts, "localhost");
	s->user = get_dup(r, "user");
	s->password = get(r, "password") != NULL ? xstrdup(get(r, "password")) : NULL;
	s->dbname = get_dup(r, "dbname");
	s->idle_interval = get_uint(r, "idle_interval", 60, 86400 * 365);
	s->retry_interval = get_uint(r, "retry_interval", 60, 86400 * 365);
	if (type == SQL_MYSQL) {
		s->charset = get_dup(r, "charset");
		s->option_file = get_dup(r, "option_file");
		/* Postfix 3.2 and later read the [client] group by default;
		 * "option_group =" (empty) turns that off. */
		s->option_group = get(r, "option_group") != NULL ? get_dup(r, "option_group")
		                                                 : xstrdup("client");
		s->tls_cert_file = get_dup(r, "tls_cert_file");
		s->tls_key_file = get_dup(r, "tls_key_file");
		s->tls_ca_file = get_dup(r, "tls_CAfile");
		s->tls_ca_path = get_dup(r, "tls_CApath");
		s->tls_ciphers = get_dup(r, "tls_ciphers");
		s->tls_verify_cert = get_bool(r, "tls_verify_cert", false);
	} else {
		s->charset = get_dup(r, "encoding");
	}
	if (s->dbname == NULL) {
		bool all_uri = type == SQL_PGSQL;

		for (size_t i = 0; i < s->hosts.n; i++)
			if (strncmp(s->hosts.v[i], "postgres", 8) != 0)
				all_uri = false;
		if (!all_uri) {
			if (r->errors++ > 0)
				str_append(r->error, "; ");
			str_append(r->error, "no dbname: set dbname = the database name");
		}
	}
}

int sqlcf_open(struct sqlcf *cf, enum sql_type type, const char *name,
               const struct table_open_context *ctx, str_t *error)
{
	const char *const *type_params = type == SQL_SQLITE  ? sqlite_params
	                                 : type == SQL_MYSQL ? mysql_params
	                                                     : pgsql_params;
	strv_t errors = STRV_INIT, names = STRV_INIT;
	struct cfread r = {NULL, error, 0};
	str_t text, why;
	char *query = NULL;
	int ret = -1;

	memset(cf, 0, sizeof(*cf));
	str_init(&text);
	str_init(&why);
	cf->path = table_file_path(name, ctx);
	if (fs_read_file(cf->path, SQLCF_FILE_MAX, &text, error) < 0)
		goto out;
	if (config_parse_text(str_c(&text), text.len, cf->path,
	                      ctx != NULL && ctx->config_dir != NULL ? ctx->config_dir : ".",
	                      &r.cfg, &errors) < 0) {
		for (size_t i = 0; i < errors.n; i++)
			str_appendf(error, "%s%s", i > 0 ? "; " : "", errors.v[i]);
		goto out;
	}
	config_set_names(r.cfg, &names);
	for (size_t i = 0; i < names.n; i++)
		if (!in_list(common_params, names.v[i]) && !in_list(type_params, names.v[i]))
			log_warning("%s: unknown %s table parameter \"%s\" (ignored)",
			            config_where(r.cfg, names.v[i]), type_name(type), names.v[i]);

	read_settings(cf, &r, type, ctx);
	cf->expansion_limit = get_uint(&r, "expansion_limit", 0, 1000000);
	/* mysql_table(5) only; the other types always want a result set. */
	cf->require_result_set =
	        type == SQL_MYSQL ? get_bool(&r, "require_result_set", true) : true;
	query = query_text(&r, type);
	if (query != NULL && sqlcf_compile_query(type, query, &cf->query, &why) < 0)
		bad_param(&r, get(&r, "query") != NULL ? "query" : "table", str_c(&why));
	str_reset(&why);
	if (sqlcf_compile_result(get(&r, "result_format") != NULL ? get(&r, "result_format") : "%s",
	                         &cf->result, &cf->need, &cf->labels, &why) < 0)
		bad_param(&r, "result_format", str_c(&why));
	cf->need |= cf->query.need;
	if (cf->labels < cf->query.labels)
		cf->labels = cf->query.labels;
	if (r.errors == 0 && get(&r, "domain") != NULL) {
		strv_t elems = STRV_INIT;

		/* Split like a table list, so "inline:{ a=b, c=d }" is one element. */
		str_reset(&why);
		if (table_list_split(&elems, get(&r, "domain"), &why) < 0)
			bad_param(&r, "domain", str_c(&why));
		for (size_t i = 0; r.errors == 0 && i < elems.n; i++)
			if (add_domain(cf, elems.v[i], ctx, 0, &why) < 0)
				bad_param(&r, "domain", str_c(&why));
		strv_free(&elems);
	}
	ret = r.errors == 0 ? 0 : -1;
out:
	free(query);
	strv_free(&errors);
	strv_free(&names);
	config_destroy(&r.cfg);
	str_free(&text);
	str_free(&why);
	return ret;
}

void sqlcf_free(struct sqlcf *cf)
{
	free(cf->path);
	sql_settings_free(&cf->settings);
	sqlcf_query_free(&cf->query);
	sqlcf_template_free(&cf->result);
	for (size_t i = 0; i < cf->ndomains; i++) {
		free(cf->domains[i].name);
		table_close(&cf->domains[i].table);
	}
	free(cf->domains);
	memset(cf, 0, sizeof(*cf));
}

/* ---- lookups ------------------------------------------------------------ */

/* 1 when domain is in the domain list, 0 when not, -1 (r set to a
 * temporary failure) when a domain table failed. */
static int domain_match(struct sqlcf *cf, const char *spec, const char *domain,
                        struct table_result *r)
{
	for (size_t i = 0; i < cf->ndomains; i++) {
		const struct sqlcf_domain *d = &cf->domains[i];
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
static int key_eligible(struct sqlcf *cf, const char *spec, const struct sqlcf_addr *k,
                        struct table_result *r)
{
	if (k->whole[0] == '\0')
		return 0;
	if (cf->ndomains > 0) {
		/* Only user@domain with a non-empty local part: "user",
		 * "@domain" and bare domains are not looked up. */
		if (k->domain == NULL || k->user[0] == '\0')
			return 0;
		int m = domain_match(cf, spec, k->domain, r);

		if (m <= 0)
			return m;
	}
	if ((cf->need & SQLCF_NEED_KEY_USER) && addr_user(k) == NULL)
		return 0;
	if ((cf->need & SQLCF_NEED_KEY_DOMAIN) && addr_domain(k) == NULL)
		return 0;
	for (unsigned i = 1; i <= cf->labels; i++)
		if (addr_label(k, i) == NULL)
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
	ok = key_eligible(cf, spec, &k, r);
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
