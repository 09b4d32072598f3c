/* table_sqlcf.h - the Postfix SQL table .cf files, shared by the sqlite:,
 * mysql: and pgsql: tables.
 *
 * Reads a table file in the format of Postfix's sqlite_table(5),
 * mysql_table(5) and pgsql_table(5) (main.cf syntax: hosts, user,
 * password, dbname or dbpath, query or the legacy select_field / table /
 * where_field / additional_conditions (pgsql also select_function),
 * domain, result_format, expansion_limit, and each type's extra
 * settings), compiles the query template into a parameterised statement,
 * and runs one lookup the way Postfix does:
 *
 *   - %s %u %d %[1-9] %S %U %D %% in `query` become bound '?' values (a
 *     quoted '%s' loses its quotes: the whole quoted text, expansions
 *     included, is one bound value). The key is never pasted into SQL.
 *   - a key that lacks what the templates need (a domain for %d or %1,
 *     a non-empty local part for %u, enough domain labels for %N), an
 *     empty key, or a key outside the `domain` list is "not found" with
 *     no query sent.
 *   - every non-NULL cell of every row goes through result_format and the
 *     values are joined with ","; empty cells are skipped (logged); more
 *     values than expansion_limit is a temporary failure naming the table.
 *
 * Any database failure is a temporary failure (TABLE_TEMPFAIL) whose
 * message names the table, the server and the server's error.
 */
#ifndef POSTERN_TABLE_SQLCF_H
#define POSTERN_TABLE_SQLCF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/str.h"
#include "base/strv.h"
#include "sql/sql.h"
#include "table/sqlcf_template.h"
#include "table/table.h"

/* Defaults for what the Postfix manuals leave to the client library. */
#define SQLCF_CONNECT_TIMEOUT 10 /* seconds */
#define SQLCF_QUERY_TIMEOUT 30 /* seconds */
/* One element of the `domain` list. */
struct sqlcf_domain {
	char *name; /* literal domain (lower case), or NULL */
	struct table *table; /* "type:table" element, or NULL */
	bool negate; /* "!element" */
};

/* The `domain` list: only keys in these domains are looked up. */
struct sqlcf_domain_list {
	struct sqlcf_domain *v;
	size_t n;
};

/* Parse a `domain` value (names, "type:table" elements, one /file level,
 * "!negation"). -1 with a message. Shared with the ldap: table. */
int sqlcf_domains_parse(struct sqlcf_domain_list *l, const char *value,
                        const struct table_open_context *ctx, str_t *error);
void sqlcf_domains_free(struct sqlcf_domain_list *l);
/* Can key k be looked up at all (Postfix db_common_check_domain and the
 * template checks of db_common_expand: a domain list, and need/labels of
 * the templates)? 1 yes, 0 no, -1 r set to a temporary failure of a
 * domain table (spec names the table in it). */
int sqlcf_key_eligible(const struct sqlcf_domain_list *l, unsigned need, unsigned labels,
                       const char *spec, const struct sqlcf_addr *k, struct table_result *r);

/* Everything a .cf file says. */
struct sqlcf {
	char *path; /* the .cf file, for messages */
	struct sql_settings settings;
	struct sqlcf_query query;
	struct sqlcf_template result;
	unsigned need; /* of query and result_format together */
	unsigned labels; /* highest %N of both */
	struct sqlcf_domain_list domains;
	uint64_t expansion_limit; /* 0 = none */
	bool require_result_set;
};

/* Read and compile the .cf file `name` (relative names are resolved
 * against ctx->config_dir) for a table of type. -1 with a message naming
 * the file (and line, for a bad value) appended to error. Parameters that
 * are not part of the type's manual are warned about (log_warning). */
int sqlcf_open(struct sqlcf *cf, enum sql_type type, const char *name,
               const struct table_open_context *ctx, str_t *error);
void sqlcf_free(struct sqlcf *cf);

/* The Postfix lookup: domain filter, query expansion, the query on conn,
 * result formatting and expansion_limit. spec ("mysql:/etc/x.cf") names
 * the table in messages. Sets r->status and r->value or r->error. */
void sqlcf_lookup(struct sqlcf *cf, struct sql_conn *conn, const char *spec, const char *key,
                  struct table_result *r);

/* The shared backend object and its functions: the three backends differ
 * only in their type and flags. */
struct table_sql {
	struct table t;
	struct sqlcf cf;
	struct sql_conn *conn;
};

int table_sql_open(struct table *t, enum sql_type type, const char *name,
                   const struct table_open_context *ctx, str_t *error);
void table_sql_lookup(struct table *t, const char *key, struct table_result *r);
void table_sql_close(struct table *t);

#endif
