/* cli_db.c - `postern db`: create, migrate and inspect postern's database.
 *
 *   db init      create the schema from nothing (SQLite: also the file,
 *                group mail_owner, mode 0660, in WAL mode; its directory
 *                must exist); on a database that has it already, the same
 *                as migrate
 *   db migrate   apply every migration newer than the schema's version,
 *                in order, logging "applied migration NNNN_name"; SQLite:
 *                also put the file in WAL mode and fix the permissions of
 *                the file, -wal, -shm and their directory (db.h)
 *   db status    print the database, its schema version, the newest this
 *                postern knows and the migrations pending
 *   db demo      load the demo data (sql/<dialect>/demo.sql) into a
 *                current schema
 * The database is main.cf's `database` (with database_password_file) of
 * -c DIR. Migrations and demo data are compiled into postern: no path to
 * sql/ is needed. Running init, migrate or demo twice changes nothing.
 *
 * Exit status: 0 done (status: the schema is current), 1 failure (status:
 * migrations pending or no schema), 75 the database cannot be reached, 64
 * usage. Also the shared helpers of cli_db.h.
 *
 * SECURITY: runs with the caller's privileges; it reads main.cf and the
 * database password file (which must not be readable by others) and
 * writes only to the database.
 */
#include "cli_db.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "cli.h"
#include "db/db.h"
#include "db/db_migrate.h"
#include "conf/config.h"

/* ---- shared helpers (cli_db.h) ------------------------------------------ */

int cli_db_open(struct cli_db *d, unsigned flags)
{
	const struct passwd *pw = getpwuid(getuid());
	str_t error;

	memset(d, 0, sizeof(*d));
	d->cfg = cli_config_load(cli_globals.config_dir, true);
	if (d->cfg == NULL)
		return CLI_EXIT_FAIL;
	str_init(&error);
	/* The write account: every command built on cli_db_open (db, user,
	 * domain, alias) changes rows or the schema, or reports on them. */
	if (db_open_flags(d->cfg, DB_ACCESS_WRITE, flags, &d->conn, &d->created, &error) < 0) {
		log_error("%s", str_c(&error));
		str_free(&error);
		config_destroy(&d->cfg);
		return CLI_EXIT_FAIL;
	}
	str_free(&error);
	if (pw != NULL)
		d->actor = xasprintf("cli:%s", pw->pw_name);
	else
		d->actor = xasprintf("cli:uid %u", (unsigned)getuid());
	d->admin.conn = d->conn;
	d->admin.actor = d->actor;
	return CLI_EXIT_OK;
}

void cli_db_close(struct cli_db *d)
{
	sql_conn_destroy(&d->conn);
	config_destroy(&d->cfg);
	xfree(&d->actor);
	memset(&d->admin, 0, sizeof(d->admin));
}

int cli_db_exit(enum sql_status st, const str_t *error)
{
	if (st == SQL_OK)
		return CLI_EXIT_OK;
	if (error != NULL && error->len > 0)
		log_error("%s", str_c(error));
	return st == SQL_TEMPFAIL ? CLI_EXIT_TEMPFAIL : CLI_EXIT_FAIL;
}

/* ---- postern db ----------------------------------------------------------- */

static int usage(void)
{
	fprintf(stderr, "usage: postern db [-c DIR] [-v] init|migrate|status|demo\n");
	return CLI_EXIT_USAGE;
}

static int db_status(struct cli_db *d)
{
	struct db_schema_state state;
	enum sql_status st;
	str_t error;
	int ret;

	str_init(&error);
	st = db_schema_state_get(d->conn, &state, &error);
	if (st != SQL_OK) {
		ret = cli_db_exit(st, &error);
		str_free(&error);
		return ret;
	}
	str_free(&error);
	printf("database: %s\n", config_str(d->cfg, "database"));
	if (state.initialised)
		printf("schema version: %u\n", state.current);
	else
		printf("schema version: none (run postern db init)\n");
	printf("newest available: %u\n", state.newest);
	printf("pending:");
	for (size_t i = 0; i < state.pending.n; i++)
		printf("%s%s", i > 0 ? ", " : " ", state.pending.v[i]);
	printf("%s\n", state.pending.n == 0 ? " none" : "");
	ret = state.initialised && state.pending.n == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
	db_schema_state_free(&state);
	return ret;
}

static int db_migrate_cmd(struct cli_db *d, bool init)
{
	struct db_schema_state state;
	enum sql_status st;
	unsigned applied = 0;
	str_t error;

	str_init(&error);
	if (d->created)
		log_info("created database file %s",
		         sql_conn_describe(d->conn) + strlen("sqlite:"));
	st = db_migrate(d->conn, init, &applied, &error);
	if (st == SQL_OK)
		st = db_schema_state_get(d->conn, &state, &error);
	if (st != SQL_OK) {
		int ret = cli_db_exit(st, &error);

		str_free(&error);
		return ret;
	}
	/* After the migrations: the write connection has put the file in WAL
	 * mode, and -wal and -shm exist to be given to mail_owner's group. A
	 * permission left wrong is a warning, not a failure: the schema is
	 * there, and the message says what to run. */
	if (db_sqlite_setup(d->cfg, &error) < 0) {
		log_warning("%s", str_c(&error));
		str_reset(&error);
	}
	if (applied == 0)
		log_info("the schema is up to date (version %u)", state.current);
	else
		log_info("the schema is now at version %u", state.current);
	db_schema_state_free(&state);
	str_free(&error);
	return CLI_EXIT_OK;
}

static int db_demo(struct cli_db *d)
{
	enum sql_status st;
	str_t error;
	int ret;

	str_init(&error);
	st = db_load_demo(d->conn, &error);
	ret = cli_db_exit(st, &error);
	str_free(&error);
	return ret;
}

int cli_db(int argc, char **argv)
{
	struct cli_db d;
	const char *action;
	unsigned flags = DB_OPEN_NO_QUERY_TIMEOUT;
	int ret;

	/* optind 0 makes glibc start afresh: postern.c parsed the global
	 * options in "+" (stop at the first argument) mode, and options may
	 * come after the arguments here. */
	optind = 0;
	if (cli_common_options(argc, argv, "c:v") < 0)
		return usage();
	if (optind != argc - 1)
		return usage();
	action = argv[optind];
	if (strcmp(action, "init") == 0)
		flags |= DB_OPEN_CREATE;
	else if (strcmp(action, "migrate") != 0 && strcmp(action, "status") != 0 &&
	         strcmp(action, "demo") != 0) {
		fprintf(stderr, "postern db: unknown action \"%s\"\n", action);
		return usage();
	}
	ret = cli_db_open(&d, flags);
	if (ret != CLI_EXIT_OK)
		return ret;
	if (strcmp(action, "status") == 0)
		ret = db_status(&d);
	else if (strcmp(action, "demo") == 0)
		ret = db_demo(&d);
	else
		ret = db_migrate_cmd(&d, strcmp(action, "init") == 0);
	cli_db_close(&d);
	return ret;
}
