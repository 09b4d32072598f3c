/* sqlcf_template.h - compiled %-templates of Postfix's SQL table files:
 * %s %u %d %[1-9] %S %U %D %% in `query` become bound '?' values (a quoted
 * '%s' loses its quotes: the whole quoted text, expansions included, is
 * one bound value), and result_format is expanded per result value. The
 * key is never pasted into SQL. Used by table_sqlcf.c.
 */
#ifndef POSTERN_SQLCF_TEMPLATE_H
#define POSTERN_SQLCF_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "base/str.h"
#include "base/strv.h"
#include "sql/sql.h"

/* One piece of a compiled template. */
enum sqlcf_piece_kind {
	SQLCF_TEXT, /* literal text */
	SQLCF_KEY, /* %s in query, %S anywhere: the whole key */
	SQLCF_KEY_USER, /* %u in query, %U: local part of the key (or the key) */
	SQLCF_KEY_DOMAIN, /* %d in query, %D: domain of the key */
	SQLCF_KEY_LABEL, /* %1..%9: a label of the key's domain, from the right */
	SQLCF_VALUE, /* %s in result_format: the result value */
	SQLCF_VALUE_USER, /* %u in result_format: local part of the value (or the value) */
	SQLCF_VALUE_DOMAIN, /* %d in result_format: domain of the value */
};

struct sqlcf_piece {
	enum sqlcf_piece_kind kind;
	char *text; /* SQLCF_TEXT */
	unsigned label; /* SQLCF_KEY_LABEL: 1..9 */
};

struct sqlcf_template {
	struct sqlcf_piece *pieces;
	size_t n;
};

/* What a key (and a result value) must have for a lookup to be made. */
enum {
	SQLCF_NEED_KEY_USER = 1 << 0, /* %u/%U: a key "@domain" is skipped */
	SQLCF_NEED_KEY_DOMAIN = 1 << 1, /* %d/%D/%N: a key without a domain is skipped */
	SQLCF_NEED_VALUE_USER = 1 << 2, /* result %u: a value "@domain" is skipped */
	SQLCF_NEED_VALUE_DOMAIN = 1 << 3, /* result %d: a value without a domain is skipped */
};

/* A compiled query: text with '?' placeholders, and one template per
 * placeholder giving its value. */
struct sqlcf_query {
	char *sql;
	struct sqlcf_template *params;
	size_t nparams;
	unsigned need; /* SQLCF_NEED_* */
	unsigned labels; /* highest %N used */
};

/* Compile a Postfix query template for database type. -1 with a message
 * ("query: ...") for an unknown %x, an expansion glued to other text
 * outside quotes, a '?' outside quotes, an unterminated quote, or a
 * backslash in a quoted expansion (MySQL). */
int sqlcf_compile_query(enum sql_type type, const char *text, struct sqlcf_query *q, str_t *error);
void sqlcf_query_free(struct sqlcf_query *q);
/* Compile result_format. -1 with a message for an unknown %x. */
int sqlcf_compile_result(const char *text, struct sqlcf_template *t, unsigned *need,
                         unsigned *labels, str_t *error);
/* Compile a template expanded from the key only (%s %u %d %1..%9 %S %U
 * %D %%), such as the ldap: table's query_filter and search_base; what
 * names it in messages. -1 with a message for an unknown %x. */
int sqlcf_compile_key_template(const char *text, const char *what, struct sqlcf_template *t,
                               unsigned *need, unsigned *labels, str_t *error);
void sqlcf_template_free(struct sqlcf_template *t);

/* The parts of a key or value: local part and domain split at the last
 * '@' (Postfix db_common). */
struct sqlcf_addr {
	const char *whole;
	char *user; /* NULL when there is no '@' */
	char *domain; /* NULL when there is no '@' */
	strv_t labels; /* domain labels, leftmost first */
};

/* Expand t for key (and value, for result templates). Returns false when
 * a part the template needs is missing (nothing appended then). */
bool sqlcf_expand(const struct sqlcf_template *t, const struct sqlcf_addr *key,
                  const struct sqlcf_addr *value, str_t *out);
/* The same, every expanded part (not the template's own text) appended
 * through escape (an LDAP filter's RFC 4515 escaping); NULL: as is. */
bool sqlcf_expand_escaped(const struct sqlcf_template *t, const struct sqlcf_addr *key,
                          const struct sqlcf_addr *value,
                          void (*escape)(str_t *out, const char *text), str_t *out);
void sqlcf_addr_init(struct sqlcf_addr *a, const char *s);
void sqlcf_addr_free(struct sqlcf_addr *a);
/* The n-th label of a's domain from the right (1..9), its local part (or
 * the whole string without '@'), its domain; NULL when a has none. */
const char *sqlcf_addr_label(const struct sqlcf_addr *a, unsigned n);
const char *sqlcf_addr_user(const struct sqlcf_addr *a);
const char *sqlcf_addr_domain(const struct sqlcf_addr *a);

#endif
