/* sqlcf_template.c - the template compiler of Postfix's SQL table files
 * (see sqlcf_template.h): `query` becomes SQL with '?' placeholders and one
 * value template per placeholder; result_format a template of its own;
 * both are expanded per lookup from the key's (and value's) parts.
 *
 * Used by table_sqlcf.c. On failure the compilers report the offending
 * %-expansion and leave nothing allocated once the matching free runs.
 */
#include "table/sqlcf_template.h"

#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

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

static int compile_template(const char *text, bool result, const char *what,
                            struct sqlcf_template *t, unsigned *need, unsigned *labels,
                            str_t *error)
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
		if (p[1] == '\0' || expansion_kind(p[1], result, &kind, &label, need, labels) < 0) {
			bad_expansion(error, what, p);
			sqlcf_template_free(t);
			return -1;
		}
		add_piece(t, kind, NULL, 0, label);
		p += 2;
	}
	return 0;
}

int sqlcf_compile_result(const char *text, struct sqlcf_template *t, unsigned *need,
                         unsigned *labels, str_t *error)
{
	return compile_template(text, true, "result_format", t, need, labels, error);
}

int sqlcf_compile_key_template(const char *text, const char *what, struct sqlcf_template *t,
                               unsigned *need, unsigned *labels, str_t *error)
{
	return compile_template(text, false, what, t, need, labels, error);
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
const char *sqlcf_addr_label(const struct sqlcf_addr *a, unsigned n)
{
	const char *l;

	if (a->domain == NULL || n == 0 || a->labels.n < n)
		return NULL;
	l = a->labels.v[a->labels.n - n];
	return l[0] != '\0' ? l : NULL;
}

/* The user part for %u: the local part of user@domain (NULL when empty),
 * or the whole text without '@' (Postfix db_common_expand). */
const char *sqlcf_addr_user(const struct sqlcf_addr *a)
{
	if (a->user == NULL)
		return a->whole;
	return a->user[0] != '\0' ? a->user : NULL;
}

const char *sqlcf_addr_domain(const struct sqlcf_addr *a)
{
	return a->domain != NULL && a->domain[0] != '\0' ? a->domain : NULL;
}

bool sqlcf_expand_escaped(const struct sqlcf_template *t, const struct sqlcf_addr *key,
                          const struct sqlcf_addr *value,
                          void (*escape)(str_t *out, const char *text), str_t *out)
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
			v = sqlcf_addr_user(key);
			break;
		case SQLCF_KEY_DOMAIN:
			v = sqlcf_addr_domain(key);
			break;
		case SQLCF_KEY_LABEL:
			v = sqlcf_addr_label(key, pc->label);
			break;
		case SQLCF_VALUE:
			v = value != NULL ? value->whole : NULL;
			break;
		case SQLCF_VALUE_USER:
			v = value != NULL ? sqlcf_addr_user(value) : NULL;
			break;
		case SQLCF_VALUE_DOMAIN:
			v = value != NULL ? sqlcf_addr_domain(value) : NULL;
			break;
		}
		if (v == NULL) {
			str_truncate(out, start);
			return false;
		}
		if (pc->kind == SQLCF_TEXT || escape == NULL)
			str_append(out, v);
		else
			escape(out, v);
	}
	return true;
}

bool sqlcf_expand(const struct sqlcf_template *t, const struct sqlcf_addr *key,
                  const struct sqlcf_addr *value, str_t *out)
{
	return sqlcf_expand_escaped(t, key, value, NULL, out);
}
