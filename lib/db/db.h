/* db.h - postern's own database: the connections named by `database`
 * and `database_readonly`.
 *
 * main.cf says where postern keeps its domains, mailboxes and aliases:
 *
 *   database = sqlite:/var/lib/postern/postern.db
 *   database = mysql://postern@db1.example.net:3306/postern
 *   database = pgsql://postern@localhost/postern
 *   database_password_file = /etc/postern/database.password
 *
 * and, optionally, a second account that may only read (SELECT):
 *
 *   database_readonly = pgsql://postern_ro@localhost/postern
 *   database_readonly_password_file = /etc/postern/database_readonly.password
 *
 * Both default to the first pair, so SQLite and small sites set nothing.
 * Every caller says which access it needs (enum db_access); this module
 * alone maps that to parameter names, so which process holds which
 * credentials is decided here and nowhere else (DESIGN.md section 10).
 *
 * The password never sits in main.cf (which everyone may read): a DSN
 * holding one is refused, and the password files must not be readable by
 * others. Used by the db:NAME tables (table_db.c, read), virtual's
 * quota_usage writes, `postern db`, the user/domain/alias commands and
 * the web admin (write).
 */
#ifndef POSTERN_DB_H
#define POSTERN_DB_H

#include <stdbool.h>

#include "base/str.h"
#include "sql/sql.h"

struct config;

/* Seconds allowed to connect to a MariaDB/PostgreSQL server, and for one
 * query to answer, before the lookup is a temporary failure: the
 * parameters database_connect_timeout and database_query_timeout, at
 * most DB_TIMEOUT_MAX (0 connect: the most). */
#define DB_TIMEOUT_MAX 3600

/* Largest database_password_file read. */
#define DB_PASSWORD_FILE_MAX 4096

/* What a caller does with postern's database: it selects the account. */
enum db_access {
	/* Lookups only: database_readonly and database_readonly_password_file.
	 * The db:NAME tables, hence smtpd, qmgr, pickup, virtual's lookups,
	 * `postern trace` and `postern map query`. */
	DB_ACCESS_READ,
	/* Reads and writes: database and database_password_file. Only
	 * virtual's quota_usage updates, the command line's write commands
	 * (`postern db`, user, domain, alias) and the web admin. */
	DB_ACCESS_WRITE,
};

/* The main.cf parameter names of one access: static strings, never NULL. */
struct db_params {
	const char *dsn; /* "database" or "database_readonly" */
	const char *password_file; /* the matching *_password_file */
};

/* The parameter names for access (an unknown value panics). */
const struct db_params *db_access_params(enum db_access access);

enum {
	/* sqlite: create the database file (mode 0660) when it is missing;
	 * its directory must exist. Without it a missing file is an error
	 * that says to run `postern db init`. */
	DB_OPEN_CREATE = 1 << 0,
	/* No query timeout: schema migrations may rewrite large tables. */
	DB_OPEN_NO_QUERY_TIMEOUT = 1 << 1,
};

/* The settings of postern's database for access from cfg: the DSN
 * parameter of db_access_params(access) parsed by sql_dsn_parse, the
 * password read from its password file (when set, and not for sqlite),
 * and database_connect_timeout/database_query_timeout. -1 with a message naming the
 * parameter or file on error; s is then empty. The caller frees s with
 * sql_settings_free. */
int db_settings(struct config *cfg, enum db_access access, struct sql_settings *s, str_t *error);

/* Read the first line of a password file (trailing CR/LF removed; at
 * most DB_PASSWORD_FILE_MAX bytes). The file must be a regular file not
 * readable by others (root and mail_owner only) and the line must not
 * be empty. param is the parameter that named the file, for messages.
 * *password_r is the caller's to free (wipe it first). -1 with a message
 * naming param, the file and what to do on error. */
int db_read_password_file(const char *param, const char *path, char **password_r, str_t *error);

/* A connection to postern's database for access (sql.h: it connects on
 * first use). For sqlite the file must exist: a missing file is an error
 * naming it and `postern db init`. -1 with a message on error; *conn_r
 * is the caller's (sql_conn_destroy). */
int db_open(struct config *cfg, enum db_access access, struct sql_conn **conn_r, str_t *error);

/* db_open with DB_OPEN_* flags. *created_r (may be NULL) is set when
 * DB_OPEN_CREATE created the sqlite file. */
int db_open_flags(struct config *cfg, enum db_access access, unsigned flags,
                  struct sql_conn **conn_r, bool *created_r, str_t *error);

/* For sqlite settings: 0 when the database file exists, else -1 with
 * "database file X does not exist (run postern db init)" or the system
 * error. Always 0 for the other databases. */
int db_sqlite_check(const struct sql_settings *s, str_t *error);

/* With database = sqlite:FILE, when FILE exists: put it in WAL mode and,
 * run as root, give FILE, FILE-wal and
 * FILE-shm (those that exist) group mail_owner and mode 0660, and their
 * directory group mail_owner with g+rwxs when it is data_directory or
 * owned by mail_owner (db.c says why). Run as another user, only the
 * modes of that user's files. Used by `postern db init|migrate` and by
 * master at start, so older installs (0640) are fixed. 0 done or nothing
 * to do (another database); -1 with what failed and what to run. */
int db_sqlite_setup(struct config *cfg, str_t *error);

#endif
