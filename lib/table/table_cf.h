/* table_cf.h - reading the .cf files of Postfix's database and directory
 * tables (mysql_table(5), pgsql_table(5), sqlite_table(5), ldap_table(5)).
 *
 * A .cf file has main.cf syntax; values are taken as written (Postfix does
 * not expand $name in table files either). This reads the file with a
 * size bound, warns about parameters the table type does not know, and
 * gives typed getters that collect every bad value into one message naming
 * the file and line, so that opening a table reports all its problems at
 * once. Used by table_sqlcf.c (sql tables) and lib/table/ldap_cf.c.
 */
#ifndef POSTERN_TABLE_CF_H
#define POSTERN_TABLE_CF_H

#include <stdbool.h>
#include <stdint.h>

#include "base/str.h"

struct config;
struct table_open_context;

/* Longest .cf file read. */
#define TABLE_CF_FILE_MAX (1024 * 1024)

struct table_cf {
	struct config *cfg; /* the parsed file */
	char *path; /* resolved against the open context's config_dir */
	str_t *error; /* where problems go ("; "-separated) */
	int errors; /* problems found so far */
};

/* Read and parse the .cf file name for a table of type type_name ("ldap").
 * Every parameter in none of the NULL-terminated lists known[] (itself
 * NULL-terminated) is warned about (log_warning, naming file and line).
 * -1 with the message appended to error (nothing to close then). */
int table_cf_open(struct table_cf *r, const char *type_name, const char *name,
                  const char *const *const *known, const struct table_open_context *ctx,
                  str_t *error);
void table_cf_close(struct table_cf *r);

/* The value of name as written, or NULL when it is not set. */
const char *table_cf_get(struct table_cf *r, const char *name);
/* A copy of a non-empty value, or NULL. Caller frees. */
char *table_cf_dup(struct table_cf *r, const char *name);
/* A whole number from 0 to max; def when not set (or bad: noted). */
unsigned table_cf_uint(struct table_cf *r, const char *name, unsigned def, unsigned max);
/* yes/no (true/false, 1/0); def when not set (or bad: noted). */
bool table_cf_bool(struct table_cf *r, const char *name, bool def);
/* Note "FILE:LINE: bad value for NAME: \"VALUE\": expected EXPECTED". */
void table_cf_bad_value(struct table_cf *r, const char *name, const char *expected);
/* Note "FILE:LINE: WHY" for a value wrong for another reason. */
void table_cf_bad_param(struct table_cf *r, const char *name, const char *why);
/* Note a problem that belongs to no one parameter. */
void table_cf_problem(struct table_cf *r, const char *why);

#endif
