/* db_migrate.c - apply postern's embedded schema migrations (see
 * db_migrate.h).
 *
 * The runner reads schema_version, runs each newer migration file as one
 * script (sql_exec_script: one transaction on SQLite and PostgreSQL; on
 * MariaDB the files are idempotent instead, sql/README.md rule 2), then
 * checks that the migration recorded its number. Used by `postern db
 * init|migrate|status|demo`.
 *
 * On failure the migration that failed is named with the server's
 * message; migrations applied before it stay applied (each one is
 * complete in itself), so running the command again continues there.
 */
#include "db/db_migrate.h"

#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/parse.h"

const char *db_dialect_name(enum sql_type type)
{
	switch (type) {
	case SQL_SQLITE:
		return "sqlite";
	case SQL_MYSQL:
		return "mysql";
	case SQL_PGSQL:
		return "pgsql";
	}
	return "unknown";
}

static int compare_version(const void *a, const void *b)
{
	const struct db_sql_file *fa = *(const struct db_sql_file *const *)a;
	const struct db_sql_file *fb = *(const struct db_sql_file *const *)b;

	return fa->version < fb->version ? -1 : fa->version > fb->version;
}

size_t db_migrations(const char *dialect, const struct db_sql_file ***list_r)
{
	const struct db_sql_file **list = NULL;
	size_t n = 0;

	for (size_t i = 0; i < db_sql_file_count; i++) {
		if (strcmp(db_sql_files[i].dialect, dialect) != 0 || db_sql_files[i].version == 0)
			continue;
		list = xreallocarray(list, n + 1, sizeof(*list));
		list[n++] = &db_sql_files[i];
	}
	if (n > 1)
		qsort(list, n, sizeof(*list), compare_version);
	*list_r = list;
	return n;
}

const struct db_sql_file *db_demo_file(const char *dialect)
{
	for (size_t i = 0; i < db_sql_file_count; i++)
		if (strcmp(db_sql_files[i].dialect, dialect) == 0 &&
		    strcmp(db_sql_files[i].name, "demo") == 0)
			return &db_sql_files[i];
	return NULL;
}

void db_schema_state_free(struct db_schema_state *st)
{
	strv_free(&st->pending);
	memset(st, 0, sizeof(*st));
}

/* Whether schema_version exists: the one query whose text differs per
 * database (each has its own catalog). */
static const char *const version_table_query[] = {
        [SQL_SQLITE] = "SELECT name FROM sqlite_master WHERE type = 'table' AND name = "
                       "'schema_version'",
        [SQL_MYSQL] = "SELECT table_name FROM information_schema.tables "
                      "WHERE table_schema = DATABASE() AND table_name = 'schema_version'",
        [SQL_PGSQL] = "SELECT table_name FROM information_schema.tables "
                      "WHERE table_schema = current_schema() AND table_name = 'schema_version'",
};

/* Read whether schema_version exists and its highest version. */
static enum sql_status read_version(struct sql_conn *c, bool *initialised_r, unsigned *current_r,
                                    str_t *error)
{
	struct sql_result res;
	enum sql_status st;
	uint64_t v;

	*initialised_r = false;
	*current_r = 0;
	st = sql_query(c, version_table_query[sql_conn_type(c)], NULL, 0, 0, &res, error);
	if (st != SQL_OK)
		return st;
	*initialised_r = res.nrows > 0;
	sql_result_free(&res);
	if (!*initialised_r)
		return SQL_OK;
	st = sql_query(c, "SELECT MAX(version) FROM schema_version", NULL, 0, 1, &res, error);
	if (st != SQL_OK)
		return st;
	if (res.nrows == 1 && sql_cell(&res, 0, 0) != NULL) {
		if (parse_uint64(sql_cell(&res, 0, 0), 0, 1000000, &v) < 0) {
			str_appendf(error, "%s: schema_version holds a bad version \"%s\"",
			            sql_conn_describe(c), sql_cell(&res, 0, 0));
			sql_result_free(&res);
			return SQL_FAIL;
		}
		*current_r = (unsigned)v;
	}
	sql_result_free(&res);
	return SQL_OK;
}

enum sql_status db_schema_state_get(struct sql_conn *c, struct db_schema_state *st, str_t *error)
{
	const struct db_sql_file **list;
	size_t n;
	enum sql_status status;

	memset(st, 0, sizeof(*st));
	status = read_version(c, &st->initialised, &st->current, error);
	if (status != SQL_OK)
		return status;
	n = db_migrations(db_dialect_name(sql_conn_type(c)), &list);
	for (size_t i = 0; i < n; i++) {
		if (list[i]->version > st->newest)
			st->newest = list[i]->version;
		if (list[i]->version > st->current)
			strv_add(&st->pending, list[i]->name);
	}
	free(list);
	return SQL_OK;
}

enum sql_status db_migrate(struct sql_conn *c, bool init, unsigned *applied_r, str_t *error)
{
	const char *dialect = db_dialect_name(sql_conn_type(c));
	const struct db_sql_file **list;
	enum sql_status st;
	bool initialised;
	unsigned current, after;
	size_t n;

	if (applied_r != NULL)
		*applied_r = 0;
	st = read_version(c, &initialised, &current, error);
	if (st != SQL_OK)
		return st;
	if (!initialised && !init) {
		str_appendf(error,
		            "%s: no postern schema here (no schema_version table): run postern db "
		            "init to create it",
		            sql_conn_describe(c));
		return SQL_FAIL;
	}
	n = db_migrations(dialect, &list);
	if (n == 0) {
		str_appendf(error, "this postern was built without %s migrations", dialect);
		return SQL_FAIL;
	}
	if (current > list[n - 1]->version)
		log_warning("%s: the schema (version %u) is newer than this postern knows (%u); "
		            "nothing to do",
		            sql_conn_describe(c), current, list[n - 1]->version);
	for (size_t i = 0; i < n; i++) {
		if (list[i]->version <= current)
			continue;
		st = sql_exec_script(c, list[i]->text, error);
		if (st != SQL_OK) {
			str_appendf(error, " (migration %s)", list[i]->name);
			break;
		}
		/* Why check: a migration that forgot its schema_version row
		 * would be run again, and again, by every migrate. */
		st = read_version(c, &initialised, &after, error);
		if (st != SQL_OK)
			break;
		if (after < list[i]->version) {
			str_appendf(error,
			            "%s: migration %s ran but did not record version %u in "
			            "schema_version",
			            sql_conn_describe(c), list[i]->name, list[i]->version);
			st = SQL_FAIL;
			break;
		}
		log_info("applied migration %s", list[i]->name);
		current = after;
		if (applied_r != NULL)
			(*applied_r)++;
	}
	free(list);
	return st;
}

enum sql_status db_load_demo(struct sql_conn *c, str_t *error)
{
	const char *dialect = db_dialect_name(sql_conn_type(c));
	const struct db_sql_file *demo = db_demo_file(dialect);
	struct db_schema_state state;
	enum sql_status st;

	if (demo == NULL) {
		str_appendf(error, "this postern was built without %s demo data", dialect);
		return SQL_FAIL;
	}
	st = db_schema_state_get(c, &state, error);
	if (st != SQL_OK)
		return st;
	if (!state.initialised || state.pending.n > 0) {
		str_appendf(error, "%s: the schema is %s: run postern db %s first",
		            sql_conn_describe(c), state.initialised ? "not up to date" : "missing",
		            state.initialised ? "migrate" : "init");
		db_schema_state_free(&state);
		return SQL_FAIL;
	}
	db_schema_state_free(&state);
	st = sql_exec_script(c, demo->text, error);
	if (st == SQL_OK)
		log_info("loaded the demo data (every demo password is \"demo\")");
	return st;
}
