/* table_pgsql.c - the pgsql: lookup table: a Postfix pgsql_table(5) .cf file.
 *
 * "pgsql:/etc/postern/virtual-aliases.cf" names a file in the format of
 * Postfix's pgsql_table(5); the file's query runs on PostgreSQL through lib/sql
 * with the key as a bound value. Everything but the type lives in
 * table_sqlcf.c, shared with the other SQL tables. Each table object owns
 * one connection, opened on the first lookup.
 *
 * On failure: open fails with a message naming the file (and line) for a
 * bad .cf file; a lookup whose database is unreachable or fails is a
 * temporary failure naming the table and the server, never "not found".
 */
#include "table/table_backends.h"
#include "table/table_sqlcf.h"

static int pgsql_open(struct table *t, const char *name, const struct table_open_context *ctx,
                      str_t *error)
{
	return table_sql_open(t, SQL_PGSQL, name, ctx, error);
}

const struct table_backend table_backend_pgsql = {
        .type = "pgsql",
        .flags = TABLE_F_FIXED_KEYS | TABLE_F_REMOTE,
        .size = sizeof(struct table_sql),
        .open = pgsql_open,
        .lookup = table_sql_lookup,
        .close = table_sql_close,
};
