/* db.c - open postern's own database from main.cf (see db.h).
 *
 * Maps the caller's access (read or write) to its pair of parameters
 * (database_readonly or database, each with its password file), reads
 * the DSN and the password file, checks that the
 * password file is private and that an SQLite file exists (or creates it
 * for `postern db init`), and hands the settings to the SQL layer, which
 * connects lazily. Used by table_db.c, db_migrate.c, db_admin.c and the
 * command line.
 *
 * On failure nothing is left open and the message names the parameter
 * (with the main.cf line that set it) or the file, and what to do. The
 * password is wiped from memory once copied into the settings and never
 * appears in a message.
 */
#include "db/db.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "conf/config.h"

/* Why two accounts: the processes that parse network input (smtpd and
 * everything that only looks up) should not be able to change the
 * schema's rows even if they are taken over; only virtual (quota_usage),
 * the command line and the admin get the account that may write. */
static const struct db_params params_read = {
        .dsn = "database_readonly",
        .password_file = "database_readonly_password_file",
};
static const struct db_params params_write = {
        .dsn = "database",
        .password_file = "database_password_file",
};

const struct db_params *db_access_params(enum db_access access)
{
	switch (access) {
	case DB_ACCESS_READ:
		return &params_read;
	case DB_ACCESS_WRITE:
		return &params_write;
	}
	log_panic("%s: unknown access %d", __func__, (int)access);
}

int db_read_password_file(const char *param, const char *path, char **password_r, str_t *error)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	struct stat st;
	char *buf;
	size_t len = 0, line;

	if (fd < 0) {
		str_appendf(error, "%s %s: cannot open: %m", param, path);
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		str_appendf(error, "%s %s: cannot stat: %m", param, path);
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		str_appendf(error, "%s %s: not a regular file", param, path);
		close(fd);
		return -1;
	}
	/* Why refuse instead of warn: a password others can read is a
	 * password everyone on the host has; fixing it takes one chmod. */
	if (st.st_mode & (S_IROTH | S_IWOTH)) {
		str_appendf(error,
		            "%s %s is %s by others (mode %04o): it must be "
		            "readable only by root and mail_owner (chmod 0640, owner root, group "
		            "of mail_owner)",
		            param, path, (st.st_mode & S_IROTH) ? "readable" : "writable",
		            (unsigned)(st.st_mode & 07777));
		close(fd);
		return -1;
	}
	buf = xmalloc(DB_PASSWORD_FILE_MAX + 1);
	for (;;) {
		ssize_t n = read(fd, buf + len, DB_PASSWORD_FILE_MAX + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			str_appendf(error, "%s %s: read error: %m", param, path);
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > DB_PASSWORD_FILE_MAX) {
			str_appendf(error, "%s %s: larger than %d bytes", param, path,
			            DB_PASSWORD_FILE_MAX);
			goto fail;
		}
	}
	close(fd);
	fd = -1;
	line = 0;
	while (line < len && buf[line] != '\n')
		line++;
	if (line > 0 && buf[line - 1] == '\r')
		line--;
	if (line == 0) {
		str_appendf(error, "%s %s: the first line is empty", param, path);
		goto fail;
	}
	if (memchr(buf, '\0', line) != NULL) {
		str_appendf(error, "%s %s: the password holds a NUL byte", param, path);
		goto fail;
	}
	*password_r = xstrndup(buf, line);
	explicit_bzero(buf, DB_PASSWORD_FILE_MAX + 1);
	free(buf);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	explicit_bzero(buf, DB_PASSWORD_FILE_MAX + 1);
	free(buf);
	return -1;
}

/* Where the DSN of p came from, for messages. database_readonly left at
 * its default ($database) is the line that set database: that is the
 * line to fix. */
static void dsn_where(struct config *cfg, const struct db_params *p, str_t *out)
{
	if (p != &params_write && !config_is_set(cfg, p->dsn))
		str_appendf(out, "%s (%s defaults to $%s)", config_where(cfg, params_write.dsn),
		            p->dsn, params_write.dsn);
	else
		str_append(out, config_where(cfg, p->dsn));
}

/* The password file parameter to name in messages: as for dsn_where, the
 * one main.cf sets (database_password_file when the read one is left at
 * its default). */
static const char *pw_param(struct config *cfg, const struct db_params *p)
{
	if (p != &params_write && !config_is_set(cfg, p->password_file))
		return params_write.password_file;
	return p->password_file;
}

int db_settings(struct config *cfg, enum db_access access, struct sql_settings *s, str_t *error)
{
	const struct db_params *p = db_access_params(access);
	const char *dsn, *pwfile, *why;
	char *password = NULL;
	str_t msg;
	int ret;

	memset(s, 0, sizeof(*s));
	if (config_expand(cfg, p->dsn, &dsn, &why) < 0) {
		str_append(error, why);
		return -1;
	}
	if (dsn[0] == '\0') {
		dsn_where(cfg, p, error);
		str_appendf(error,
		            ": %s is empty: expected sqlite:/path/file.db, "
		            "mysql://user@host/db or pgsql://user@host/db",
		            p->dsn);
		return -1;
	}
	if (config_expand(cfg, p->password_file, &pwfile, &why) < 0) {
		str_append(error, why);
		return -1;
	}
	/* SQLite has no password: the file's permissions protect it. */
	if (pwfile[0] != '\0' && strncmp(dsn, "sqlite:", 7) != 0 &&
	    db_read_password_file(pw_param(cfg, p), pwfile, &password, error) < 0)
		return -1;
	str_init(&msg);
	ret = sql_dsn_parse(dsn, password, s, &msg);
	if (ret < 0) {
		dsn_where(cfg, p, error);
		str_appendf(error, ": %s", str_c(&msg));
	}
	str_free(&msg);
	if (password != NULL) {
		explicit_bzero(password, strlen(password));
		free(password);
	}
	if (ret < 0)
		return -1;
	if (s->type != SQL_SQLITE) {
		uint64_t ct, qt;

		/* Why short: a lookup waits this long when the server hangs
		 * (stopped, network gone); smtpd's RCPT and qmgr wait with
		 * it, while the table cache could answer. */
		if (config_get_time(cfg, "database_connect_timeout", &ct, &why) < 0 ||
		    config_get_time(cfg, "database_query_timeout", &qt, &why) < 0) {
			str_append(error, why);
			return -1;
		}
		s->connect_timeout = ct > 0 && ct < DB_TIMEOUT_MAX ? (unsigned)ct : DB_TIMEOUT_MAX;
		s->query_timeout = qt < DB_TIMEOUT_MAX ? (unsigned)qt : DB_TIMEOUT_MAX;
	} else {
		s->sqlite_wal = true;
		s->readonly = access == DB_ACCESS_READ;
	}
	return 0;
}

int db_sqlite_check(const struct sql_settings *s, str_t *error)
{
	struct stat st;

	if (s->type != SQL_SQLITE)
		return 0;
	if (stat(s->dbname, &st) < 0) {
		if (errno == ENOENT)
			str_appendf(error, "database file %s does not exist (run postern db init)",
			            s->dbname);
		else
			str_appendf(error, "database file %s: %m", s->dbname);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		str_appendf(error, "database file %s is not a regular file", s->dbname);
		return -1;
	}
	return 0;
}

/* Why these permissions (the SQLite permission model). The database
 * runs in WAL mode (sql_sqlite.c): after a process dies holding a write
 * lock, whoever opens the file next repairs the -shm index, and may have
 * to create -wal and -shm when they are missing. That is often smtpd,
 * running as mail_owner, or virtual, running as the static mailbox owner
 * with mail_owner's group. So the file, -wal, -shm and their directory
 * are group mail_owner and group-writable, and the directory is setgid
 * so that files made in it by any of them get that group too. The cost:
 * with SQLite, file permissions no longer keep readers from writing;
 * lookups open the file read-only instead (database_readonly), and only
 * MariaDB/PostgreSQL accounts separate readers from writers for good. */
#define DB_SQLITE_MODE 0660
#define DB_SQLITE_DIR_BITS (S_ISGID | S_IRWXG)

/* mail_owner's gid, or -1 when it cannot be looked up (not root, or no
 * such user: then nothing is given away). */
static gid_t mail_owner_gid(struct config *cfg)
{
	const struct passwd *pw;

	if (geteuid() != 0 || (pw = getpwnam(config_str(cfg, "mail_owner"))) == NULL)
		return (gid_t)-1;
	return pw->pw_gid;
}

/* Give path (when it exists) group gid and mode DB_SQLITE_MODE. */
static int fix_file(const char *path, gid_t gid, str_t *error)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	struct stat st;
	int ret = -1;

	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0) {
		str_appendf(error, "database file %s: %m", path);
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		str_appendf(error, "database file %s: not a regular file", path);
	else if (gid != (gid_t)-1 && st.st_gid != gid && fchown(fd, (uid_t)-1, gid) < 0)
		str_appendf(error, "cannot give database file %s to group of mail_owner: %m", path);
	else if ((st.st_mode & 07777) != DB_SQLITE_MODE && fchmod(fd, DB_SQLITE_MODE) < 0)
		str_appendf(error, "cannot set the mode of database file %s: %m", path);
	else
		ret = 0;
	close(fd);
	return ret;
}

/* The directory of the database file: given group gid, group rwx and
 * setgid, but only when it is data_directory or already mail_owner's
 * (as INSTALL has it made): a directory shared with other files is the
 * administrator's to change, and the returned warning says how. */
static int fix_dir(struct config *cfg, const char *path, gid_t gid, str_t *warning)
{
	char *dir = xstrdup(path), *slash = strrchr(dir, '/');
	const char *data_dir = NULL, *why;
	const struct passwd *pw = getpwnam(config_str(cfg, "mail_owner"));
	struct stat st;
	bool ours;

	if (slash == NULL) {
		free(dir);
		return 0;
	}
	*slash = '\0';
	if (dir[0] == '\0')
		strcpy(dir, "/");
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		str_appendf(warning, "database directory %s: %m", dir);
		free(dir);
		return -1;
	}
	(void)config_expand(cfg, "data_directory", &data_dir, &why);
	ours = (data_dir != NULL && strcmp(data_dir, dir) == 0) ||
	       (pw != NULL && st.st_uid == pw->pw_uid && pw->pw_uid != 0);
	if (st.st_gid == gid && (st.st_mode & DB_SQLITE_DIR_BITS) == DB_SQLITE_DIR_BITS) {
		free(dir);
		return 0;
	}
	if (!ours || (chown(dir, (uid_t)-1, gid) < 0 ||
	              chmod(dir, (st.st_mode & 07777) | DB_SQLITE_DIR_BITS) < 0)) {
		str_appendf(warning,
		            "database directory %s must be group %s, mode g+rwxs (chgrp %s %s; "
		            "chmod 2770 %s): otherwise a reader cannot repair the database after "
		            "a writer is killed",
		            dir, config_str(cfg, "mail_owner"), config_str(cfg, "mail_owner"), dir,
		            dir);
		free(dir);
		return -1;
	}
	free(dir);
	return 0;
}

int db_sqlite_setup(struct config *cfg, str_t *error)
{
	struct sql_settings s;
	struct sql_conn *conn;
	gid_t gid = mail_owner_gid(cfg);
	str_t why;
	int ret = 0;

	if (db_settings(cfg, DB_ACCESS_WRITE, &s, error) < 0)
		return -1;
	if (s.type != SQL_SQLITE || s.dbname == NULL || access(s.dbname, F_OK) < 0) {
		sql_settings_free(&s);
		return 0;
	}
	/* A write connection puts the file in WAL mode (sql_sqlite.c) and
	 * makes -wal and -shm, which SQLite gives the file's owner and mode. */
	str_init(&why);
	conn = sql_conn_new(&s);
	if (sql_query(conn, "PRAGMA journal_mode", NULL, 0, 0, NULL, &why) != SQL_OK) {
		str_appendf(error, "database file %s: %s", s.dbname, str_c(&why));
		ret = -1;
	}
	sql_conn_destroy(&conn);
	str_free(&why);
	if (ret == 0 && fix_file(s.dbname, gid, error) < 0)
		ret = -1;
	for (size_t i = 0; ret == 0 && i < 2; i++) {
		char *side = xasprintf("%s%s", s.dbname, i == 0 ? "-wal" : "-shm");

		ret = fix_file(side, gid, error);
		free(side);
	}
	if (ret == 0 && gid != (gid_t)-1)
		ret = fix_dir(cfg, s.dbname, gid, error);
	sql_settings_free(&s);
	return ret;
}

/* Create the SQLite file with mode 0660 (whatever the umask), group
 * mail_owner when created by root (see the permission model above).
 * *created_r tells whether it was new. */
static int sqlite_create(struct config *cfg, const char *path, bool *created_r, str_t *error)
{
	gid_t gid = mail_owner_gid(cfg);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, DB_SQLITE_MODE);

	*created_r = false;
	if (fd < 0 && errno == EEXIST)
		return 0;
	if (fd < 0) {
		if (errno == ENOENT)
			str_appendf(error,
			            "cannot create database file %s: its directory does not exist "
			            "(create it first, owned by mail_owner)",
			            path);
		else
			str_appendf(error, "cannot create database file %s: %m", path);
		return -1;
	}
	if (fchmod(fd, DB_SQLITE_MODE) < 0) {
		str_appendf(error, "cannot set the mode of database file %s: %m", path);
		close(fd);
		return -1;
	}
	if (gid != (gid_t)-1 && fchown(fd, (uid_t)-1, gid) < 0) {
		str_appendf(error, "cannot give database file %s to group %s: %m", path,
		            config_str(cfg, "mail_owner"));
		close(fd);
		return -1;
	}
	close(fd);
	*created_r = true;
	return 0;
}

int db_open_flags(struct config *cfg, enum db_access access, unsigned flags,
                  struct sql_conn **conn_r, bool *created_r, str_t *error)
{
	struct sql_settings s;
	bool created = false;

	*conn_r = NULL;
	if (created_r != NULL)
		*created_r = false;
	if (db_settings(cfg, access, &s, error) < 0)
		return -1;
	if (flags & DB_OPEN_NO_QUERY_TIMEOUT)
		s.query_timeout = 0;
	if (s.type == SQL_SQLITE) {
		if ((flags & DB_OPEN_CREATE) && sqlite_create(cfg, s.dbname, &created, error) < 0) {
			sql_settings_free(&s);
			return -1;
		}
		if (db_sqlite_check(&s, error) < 0) {
			sql_settings_free(&s);
			return -1;
		}
	}
	*conn_r = sql_conn_new(&s);
	sql_settings_free(&s);
	if (created_r != NULL)
		*created_r = created;
	return 0;
}

int db_open(struct config *cfg, enum db_access access, struct sql_conn **conn_r, str_t *error)
{
	return db_open_flags(cfg, access, 0, conn_r, NULL, error);
}
