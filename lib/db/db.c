/* db.c - open postern's own database from main.cf (see db.h).
 *
 * Reads the `database` DSN and database_password_file, checks that the
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

#include "base/mem.h"
#include "conf/config.h"

int db_read_password_file(const char *path, char **password_r, str_t *error)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	struct stat st;
	char *buf;
	size_t len = 0, line;

	if (fd < 0) {
		str_appendf(error, "database_password_file %s: cannot open: %m", path);
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		str_appendf(error, "database_password_file %s: cannot stat: %m", path);
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		str_appendf(error, "database_password_file %s: not a regular file", path);
		close(fd);
		return -1;
	}
	/* Why refuse instead of warn: a password others can read is a
	 * password everyone on the host has; fixing it takes one chmod. */
	if (st.st_mode & (S_IROTH | S_IWOTH)) {
		str_appendf(error,
		            "database_password_file %s is %s by others (mode %04o): it must be "
		            "readable only by root and mail_owner (chmod 0640, owner root, group "
		            "of mail_owner)",
		            path, (st.st_mode & S_IROTH) ? "readable" : "writable",
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
			str_appendf(error, "database_password_file %s: read error: %m", path);
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > DB_PASSWORD_FILE_MAX) {
			str_appendf(error, "database_password_file %s: larger than %d bytes", path,
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
		str_appendf(error, "database_password_file %s: the first line is empty", path);
		goto fail;
	}
	if (memchr(buf, '\0', line) != NULL) {
		str_appendf(error, "database_password_file %s: the password holds a NUL byte",
		            path);
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

int db_settings(struct config *cfg, struct sql_settings *s, str_t *error)
{
	const char *dsn, *pwfile, *why;
	char *password = NULL;
	str_t msg;
	int ret;

	memset(s, 0, sizeof(*s));
	if (config_expand(cfg, "database", &dsn, &why) < 0) {
		str_append(error, why);
		return -1;
	}
	if (dsn[0] == '\0') {
		str_appendf(error,
		            "%s: database is empty: expected sqlite:/path/file.db, "
		            "mysql://user@host/db or pgsql://user@host/db",
		            config_where(cfg, "database"));
		return -1;
	}
	if (config_expand(cfg, "database_password_file", &pwfile, &why) < 0) {
		str_append(error, why);
		return -1;
	}
	/* SQLite has no password: the file's permissions protect it. */
	if (pwfile[0] != '\0' && strncmp(dsn, "sqlite:", 7) != 0 &&
	    db_read_password_file(pwfile, &password, error) < 0)
		return -1;
	str_init(&msg);
	ret = sql_dsn_parse(dsn, password, s, &msg);
	if (ret < 0)
		str_appendf(error, "%s: %s", config_where(cfg, "database"), str_c(&msg));
	str_free(&msg);
	if (password != NULL) {
		explicit_bzero(password, strlen(password));
		free(password);
	}
	if (ret < 0)
		return -1;
	if (s->type != SQL_SQLITE) {
		s->connect_timeout = DB_CONNECT_TIMEOUT;
		s->query_timeout = DB_QUERY_TIMEOUT;
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

/* Create the SQLite file with mode 0640 (whatever the umask: the daemons
 * of group mail_owner read it; created by root, the file gets that
 * group). *created_r tells whether it was new. */
static int sqlite_create(struct config *cfg, const char *path, bool *created_r, str_t *error)
{
	const struct passwd *pw;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0640);

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
	if (fchmod(fd, 0640) < 0) {
		str_appendf(error, "cannot set the mode of database file %s: %m", path);
		close(fd);
		return -1;
	}
	if (geteuid() == 0 && (pw = getpwnam(config_str(cfg, "mail_owner"))) != NULL &&
	    fchown(fd, (uid_t)-1, pw->pw_gid) < 0) {
		str_appendf(error, "cannot give database file %s to group %s: %m", path,
		            config_str(cfg, "mail_owner"));
		close(fd);
		return -1;
	}
	close(fd);
	*created_r = true;
	return 0;
}

int db_open_flags(struct config *cfg, unsigned flags, struct sql_conn **conn_r, bool *created_r,
                  str_t *error)
{
	struct sql_settings s;
	bool created = false;

	*conn_r = NULL;
	if (created_r != NULL)
		*created_r = false;
	if (db_settings(cfg, &s, error) < 0)
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

int db_open(struct config *cfg, struct sql_conn **conn_r, str_t *error)
{
	return db_open_flags(cfg, 0, conn_r, NULL, error);
}
