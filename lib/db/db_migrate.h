/* db_migrate.h - postern's schema: embedded migrations, init, migrate,
 * status and the demo data.
 *
 * The files sql/<dialect>/migrations/NNNN_name.sql and
 * sql/<dialect>/demo.sql are compiled into the binary at build time
 * (scripts/embed-sql.sh, the Makefile's gen/migrations.c rule), so an
 * installed postern needs no path to find them. The schema_version table
 * records the migrations applied; each migration records its own number
 * (sql/README.md). Used by `postern db` and by the system tests.
 */
#ifndef POSTERN_DB_MIGRATE_H
#define POSTERN_DB_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>

#include "base/str.h"
#include "base/strv.h"
#include "sql/sql.h"

/* One embedded SQL file. */
struct db_sql_file {
	const char *dialect; /* "sqlite", "mysql", "pgsql": the sql/ directory */
	const char *name; /* "0001_initial", or "demo" */
	unsigned version; /* the migration number; 0 for demo.sql */
	const char *text;
};

/* Every embedded file (generated; terminated by an all-zero entry). */
extern const struct db_sql_file db_sql_files[];
extern const size_t db_sql_file_count;

/* The sql/ directory name of a database type ("sqlite", "mysql", "pgsql"). */
const char *db_dialect_name(enum sql_type type);

/* The migrations of dialect in version order, as pointers into
 * db_sql_files (the vector itself is the caller's to free(); NULL when
 * there are none). Returns their number. */
size_t db_migrations(const char *dialect, const struct db_sql_file ***list_r);

/* The embedded demo data of dialect, or NULL. */
const struct db_sql_file *db_demo_file(const char *dialect);

/* Where a database stands. */
struct db_schema_state {
	bool initialised; /* the schema_version table exists */
	unsigned current; /* highest version applied (0 when none) */
	unsigned newest; /* highest version embedded in this postern */
	strv_t pending; /* names of the embedded migrations newer than current */
};

void db_schema_state_free(struct db_schema_state *st);

/* Read the state of the database behind c. SQL_OK, or SQL_TEMPFAIL /
 * SQL_FAIL with the server's message appended to error. */
enum sql_status db_schema_state_get(struct sql_conn *c, struct db_schema_state *st, str_t *error);

/* Apply every embedded migration newer than the highest schema_version
 * row, in order, each in one transaction where the database allows it
 * (SQLite, PostgreSQL); logs "applied migration NNNN_name" for each.
 * With init false, a database without schema_version is refused ("run
 * postern db init"); with init true it is created from nothing. Running
 * it again when nothing is pending changes nothing. *applied_r (may be
 * NULL) counts the migrations applied. A migration that does not record
 * its own version is an SQL_FAIL naming it. */
enum sql_status db_migrate(struct sql_conn *c, bool init, unsigned *applied_r, str_t *error);

/* Load the embedded demo.sql of c's dialect (idempotent: loading it
 * twice changes nothing). The schema must be current: an uninitialised
 * or out-of-date database is refused with what to run. */
enum sql_status db_load_demo(struct sql_conn *c, str_t *error);

#endif
