/* cli_db.h - what the database commands share: `postern db` (cli_db.c),
 * `postern domain` (cli_domain.c), `postern user` (cli_user.c) and
 * `postern alias` (cli_alias.c).
 */
#ifndef POSTERN_CLI_DB_H
#define POSTERN_CLI_DB_H

#include <stdbool.h>

#include "db/db_admin.h"
#include "sql/sql.h"

struct config;

/* An open database session of one command. */
struct cli_db {
	struct config *cfg;
	struct sql_conn *conn;
	struct db_admin admin; /* conn, and the actor "cli:USER" for admin_log */
	char *actor;
	bool created; /* DB_OPEN_CREATE made a new SQLite file */
};

/* Load main.cf from cli_globals.config_dir (the built-in defaults when
 * there is none) and open postern's database with DB_OPEN_* flags.
 * CLI_EXIT_OK, or the exit status after the error was logged (1 for a
 * broken configuration or setting). */
int cli_db_open(struct cli_db *d, unsigned flags);
/* Close what cli_db_open opened; safe on a zeroed struct. */
void cli_db_close(struct cli_db *d);
/* The exit status for a database result: 0, 75 (temporary: the database
 * cannot be reached) or 1; logs error (when not empty) on failure. */
int cli_db_exit(enum sql_status st, const str_t *error);

#endif
