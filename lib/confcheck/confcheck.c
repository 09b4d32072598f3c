/* confcheck.c - the whole-configuration check (confcheck.h).
 *
 * Used by `postern check` (server/cli/cli_check.c), by master at startup
 * (so `postern start` refuses a configuration its daemons would die on)
 * and by master at reload (a rejected configuration keeps the running
 * one). Parses main.cf and master.cf, expands and type-checks every
 * parameter (main.cf and each master.cf -o override), warns about
 * unknown parameters, and checks the files that hold secrets: the
 * database password file and the .cf files of mysql:, pgsql: and ldap:
 * tables must exist and must not be readable by other users. Every
 * lookup table named by a table-list parameter is opened, so a syntax
 * error in a regexp:, cidr: or .cf file, or a missing table file, is
 * found here, not at the first lookup (no database is contacted:
 * connections open on the first lookup). receive_override_options (main.cf
 * and the smtpd and pickup services) must name options cleanup knows.
 *
 * Run as root it also checks what the daemons will be able to do once
 * they are mail_owner: a child process drops to mail_owner
 * (privilege_drop) and opens every file they read; each one it cannot
 * open is an error naming the file and the fix. Why a child and not
 * access(2) or a look at the mode bits: only the kernel knows the whole
 * answer (supplementary groups, ACLs, a directory on the way that is
 * not searchable), and the child asks it exactly as the daemon will.
 *
 * Failure: every problem is a message in errors or warnings; nothing is
 * fatal, nothing is changed on disk. A fork that fails is an error (the
 * check could not be made).
 */
#include "confcheck.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/mem.h"
#include "base/str.h"
#include "cleanup/cleanup.h"
#include "conf/config.h"
#include "conf/mastercf.h"
#include "conf/params.h"
#include "daemon/privilege.h"
#include "db/db.h"
#include "smtp/restrict.h"
#include "table/table.h"

/* Table types whose .cf file usually holds a password. */
static const char *const secret_table_types[] = {"mysql", "pgsql", "ldap"};

static void check_secret_file(const char *path, const char *where, const char *what, strv_t *errors,
                              strv_t *warnings)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		strv_add_owned(errors,
		               xasprintf("%s: %s %s: %s", where, what, path, strerror(errno)));
		return;
	}
	if (st.st_mode & S_IROTH)
		strv_add_owned(warnings,
		               xasprintf("%s: %s %s is readable by other users; it may hold a "
		                         "password (chmod o-rwx, group mail_owner)",
		                         where, what, path));
}

/* Look at every list element of every list-valued parameter for tables
 * whose files hold secrets: tables also appear in restriction lists
 * (check_sender_access mysql:/etc/...) and domain lists. */
static void check_table_files(struct config *cfg, const char *config_dir, strv_t *errors,
                              strv_t *warnings)
{
	for (size_t i = 0; i < param_count(); i++) {
		const struct param_def *def = param_at(i);
		const strv_t *list;
		const char *error;

		/* Only what main.cf sets: a default that expands to the same
		 * tables ($virtual_alias_maps ...) would report them twice. */
		if ((def->type != PARAM_LIST && def->type != PARAM_TABLES) ||
		    !config_is_set(cfg, def->name))
			continue;
		if (config_get_list(cfg, def->name, &list, &error) < 0)
			continue; /* already reported by config_validate */
		for (size_t j = 0; j < list->n; j++) {
			const char *ref = list->v[j];
			char *path;

			if (strncmp(ref, "proxy:", 6) == 0)
				ref += 6;
			for (size_t t = 0; t < sizeof(secret_table_types) / sizeof(char *); t++) {
				size_t tlen = strlen(secret_table_types[t]);

				if (strncmp(ref, secret_table_types[t], tlen) != 0 ||
				    ref[tlen] != ':')
					continue;
				/* relative table paths are relative to config_directory */
				path = ref[tlen + 1] == '/'
				               ? xstrdup(ref + tlen + 1)
				               : xasprintf("%s/%s", config_dir, ref + tlen + 1);
				check_secret_file(path, config_where(cfg, def->name), "table file",
				                  errors, warnings);
				free(path);
			}
		}
	}
}

/* smtpd_sasl_type = ldap: smtpd_sasl_path is an ldap .cf file holding
 * the service account's password. */
static void check_sasl_ldap_file(struct config *cfg, const char *config_dir, strv_t *errors,
                                 strv_t *warnings)
{
	const char *type, *path, *why;
	char *full;

	if (config_expand(cfg, "smtpd_sasl_type", &type, &why) < 0 || strcmp(type, "ldap") != 0 ||
	    config_expand(cfg, "smtpd_sasl_path", &path, &why) < 0)
		return;
	full = path[0] == '/' ? xstrdup(path) : xasprintf("%s/%s", config_dir, path);
	check_secret_file(full, config_where(cfg, "smtpd_sasl_path"), "ldap file", errors,
	                  warnings);
	free(full);
}

/* The password files of both database accounts (db.h); the read one only
 * when it is another file (by default it is the same). */
/* Postfix's local(8) refuses to start when mailbox_size_limit (not 0) is
 * below message_size_limit; so does postern's: say it here first, when
 * master.cf runs the local agent. */
static void check_mailbox_size(struct config *cfg, const struct master_conf *mc, strv_t *errors)
{
	int64_t mailbox, message;
	const char *why;
	bool local = false;

	if (config_get_int(cfg, "mailbox_size_limit", &mailbox, &why) < 0 ||
	    config_get_int(cfg, "message_size_limit", &message, &why) < 0)
		return; /* reported with the value itself */
	for (size_t i = 0; mc != NULL && i < mc->n; i++)
		local |= strcmp(mc->services[i].command, "local") == 0;
	if (local && mailbox != 0 && message != 0 && mailbox < message)
		strv_add_owned(
		        errors,
		        xasprintf("%s: mailbox_size_limit (%lld) is smaller than "
		                  "message_size_limit (%lld, %s): the local agent would refuse "
		                  "to start",
		                  config_where(cfg, "mailbox_size_limit"), (long long)mailbox,
		                  (long long)message, config_where(cfg, "message_size_limit")));
}

/* receive_override_options in cfg names only options cleanup knows. */
static void check_overrides_one(struct config *cfg, const char *where, strv_t *errors)
{
	const strv_t *names;
	const char *err;
	unsigned bits;
	str_t why;

	if (config_get_list(cfg, "receive_override_options", &names, &err) < 0) {
		strv_add_owned(errors, xasprintf("%s: %s", where, err));
		return;
	}
	str_init(&why);
	if (cleanup_parse_overrides(names, &bits, &why) < 0)
		strv_add_owned(errors, xasprintf("%s: %s", where, str_c(&why)));
	str_free(&why);
}

/* main.cf and every smtpd or pickup service's -o overrides: smtpd and
 * pickup would refuse to start on a bad value. */
static void check_overrides(struct config *cfg, const struct master_conf *mc, strv_t *errors)
{
	check_overrides_one(cfg, "main.cf", errors);
	for (size_t i = 0; mc != NULL && i < mc->n; i++) {
		const struct master_service *s = &mc->services[i];
		struct config *svc;
		char *label;

		if ((strcmp(s->command, "smtpd") != 0 && strcmp(s->command, "pickup") != 0) ||
		    s->override_names.n == 0)
			continue;
		svc = mastercf_service_config(cfg, s);
		label = xasprintf("%s, line %u: service %s/%s", s->file, s->line, s->name, s->type);
		check_overrides_one(svc, label, errors);
		free(label);
		config_destroy(&svc);
	}
}

static void check_db_password_files(struct config *cfg, strv_t *errors, strv_t *warnings)
{
	const struct db_params *w = db_access_params(DB_ACCESS_WRITE);
	const struct db_params *r = db_access_params(DB_ACCESS_READ);
	const char *wfile = "", *rfile = "";
	char *wcopy;

	if (config_expand(cfg, w->password_file, &wfile, &(const char *){NULL}) < 0)
		wfile = "";
	/* a copy: the next expansion may reuse the config's buffer */
	wcopy = xstrdup(wfile);
	if (wcopy[0] != '\0')
		check_secret_file(wcopy, config_where(cfg, w->password_file), "password file",
		                  errors, warnings);
	if (config_expand(cfg, r->password_file, &rfile, &(const char *){NULL}) == 0 &&
	    rfile[0] != '\0' && strcmp(rfile, wcopy) != 0) {
		struct stat st;

		check_secret_file(rfile, config_where(cfg, r->password_file), "password file",
		                  errors, warnings);
		/* Why: once lookups have an account of their own, the write
		 * password is for root alone (virtual reads it before it drops
		 * privileges, the CLI runs as root); readable by mail_owner's
		 * group, smtpd could still write (INSTALL section 5). */
		if (wcopy[0] != '\0' && stat(wcopy, &st) == 0 && (st.st_mode & (S_IRGRP | S_IROTH)))
			strv_add_owned(warnings,
			               xasprintf("%s: password file %s of database is readable by "
			                         "its group: with a separate database_readonly "
			                         "password file it should be readable by root only "
			                         "(chown root:root, chmod 0600)",
			                         config_where(cfg, w->password_file), wcopy));
	}
	free(wcopy);
}

/* Open every table of every table-list parameter set in main.cf. */
static void check_tables(struct config *cfg, const char *config_dir, strv_t *errors,
                         strv_t *warnings)
{
	const struct table_open_context ctx = {.cfg = cfg, .config_dir = config_dir};
	str_t why;

	str_init(&why);
	for (size_t i = 0; i < param_count(); i++) {
		const struct param_def *def = param_at(i);
		const strv_t *list;
		const char *error;

		if (def->type != PARAM_TABLES || !config_is_set(cfg, def->name))
			continue;
		if (config_get_list(cfg, def->name, &list, &error) < 0)
			continue; /* already reported by config_validate */
		for (size_t j = 0; j < list->n; j++) {
			struct table *t;

			str_reset(&why);
			t = table_open(list->v[j], &ctx, &why);
			/* Why alias_maps only warns: the local agent defers its
			 * mail until the file exists (newaliases not run yet),
			 * as Postfix's does; nothing else depends on it. */
			if (t == NULL)
				strv_add_owned(
				        strcmp(def->name, "alias_maps") == 0 ? warnings : errors,
				        xasprintf("%s: %s: %s%s", config_where(cfg, def->name),
				                  def->name, str_c(&why),
				                  strcmp(def->name, "alias_maps") == 0
				                          ? "; local mail waits until it can be "
				                            "opened (newaliases)"
				                          : ""));
			table_close(&t);
		}
	}
	str_free(&why);
}

static void check_world_writable(const char *path, strv_t *warnings)
{
	struct stat st;

	if (stat(path, &st) == 0 && (st.st_mode & S_IWOTH))
		strv_add_owned(warnings,
		               xasprintf("%s is writable by other users (chmod o-w)", path));
}

/* Add path (with where: the main.cf line that names it, or NULL) to the
 * files mail_owner must read, once. */
static void owner_file_add(strv_t *paths, strv_t *wheres, const char *path, const char *where)
{
	for (size_t i = 0; i < paths->n; i++)
		if (strcmp(paths->v[i], path) == 0)
			return;
	strv_add(paths, path);
	strv_add(wheres, where != NULL ? where : "");
}

/* The files an unprivileged daemon opens: main.cf, master.cf, every
 * table file that exists (the part after "type:", relative to
 * config_dir; a name that is no file, such as db:domains, is skipped)
 * and the database_readonly password file. */
static void owner_files(struct config *cfg, const char *config_dir, strv_t *paths, strv_t *wheres)
{
	const struct db_params *r = db_access_params(DB_ACCESS_READ);
	const char *rfile = "", *error;
	char *path;

	path = xasprintf("%s/main.cf", config_dir);
	owner_file_add(paths, wheres, path, NULL);
	free(path);
	path = xasprintf("%s/master.cf", config_dir);
	owner_file_add(paths, wheres, path, NULL);
	free(path);
	for (size_t i = 0; i < param_count(); i++) {
		const struct param_def *def = param_at(i);
		const strv_t *list;

		if ((def->type != PARAM_LIST && def->type != PARAM_TABLES) ||
		    !config_is_set(cfg, def->name))
			continue;
		if (config_get_list(cfg, def->name, &list, &error) < 0)
			continue;
		for (size_t j = 0; j < list->n; j++) {
			const char *ref = list->v[j], *colon;
			struct stat st;

			if (strncmp(ref, "proxy:", 6) == 0)
				ref += 6;
			colon = strchr(ref, ':');
			if (colon == NULL || colon[1] == '\0')
				continue;
			path = colon[1] == '/' ? xstrdup(colon + 1)
			                       : xasprintf("%s/%s", config_dir, colon + 1);
			if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
				owner_file_add(paths, wheres, path, config_where(cfg, def->name));
			free(path);
		}
	}
	if (config_expand(cfg, r->password_file, &rfile, &error) == 0 && rfile[0] != '\0') {
		path = xstrdup(rfile);
		const char *pname = config_is_set(cfg, r->password_file)
		                            ? r->password_file
		                            : db_access_params(DB_ACCESS_WRITE)->password_file;

		owner_file_add(paths, wheres, path,
		               config_is_set(cfg, pname) ? config_where(cfg, pname) : NULL);
		free(path);
	}
}

/* In a child that became mail_owner, open each file; report the index
 * and errno of each failure on the pipe as "INDEX ERRNO\n". */
static void owner_probe_child(uid_t uid, gid_t gid, const strv_t *paths, int fd)
{
	str_t out, error;

	str_init(&out);
	str_init(&error);
	if (privilege_drop(uid, gid, (gid_t)-1, &error) < 0) {
		str_appendf(&out, "drop %s\n", str_c(&error));
		(void)fs_write_all(fd, str_c(&out), out.len);
		_exit(1);
	}
	for (size_t i = 0; i < paths->n; i++) {
		int f = open(paths->v[i], O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

		if (f < 0)
			str_appendf(&out, "%zu %d\n", i, errno);
		else
			close(f);
	}
	(void)fs_write_all(fd, str_c(&out), out.len);
	_exit(0);
}

/* Run as root: can mail_owner read what the daemons read? */
static void check_owner_access(struct config *cfg, const char *config_dir, strv_t *errors)
{
	const char *owner_name = config_str(cfg, "mail_owner");
	struct privilege_owner owner;
	strv_t paths = STRV_INIT, wheres = STRV_INIT;
	str_t error, reply;
	struct group *gr;
	char *group, *line, *next;
	int fds[2], status;
	pid_t pid;

	str_init(&error);
	str_init(&reply);
	if (privilege_owner_lookup(owner_name, &owner, &error) < 0) {
		strv_add_owned(errors,
		               xasprintf("%s: %s", config_where(cfg, "mail_owner"), str_c(&error)));
		str_free(&error);
		return;
	}
	gr = getgrgid(owner.gid);
	group = gr != NULL ? xstrdup(gr->gr_name) : xasprintf("%ld", (long)owner.gid);
	owner_files(cfg, config_dir, &paths, &wheres);
	if (pipe2(fds, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
		strv_add_owned(errors, xasprintf("cannot check the files as mail_owner %s: %s",
		                                 owner.name, strerror(errno)));
		goto out;
	}
	if (pid == 0) {
		close(fds[0]);
		owner_probe_child(owner.uid, owner.gid, &paths, fds[1]);
	}
	close(fds[1]);
	for (;;) {
		char buf[512];
		ssize_t n = read(fds[0], buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		str_append_n(&reply, buf, (size_t)n);
	}
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	for (line = reply.len > 0 ? reply.buf : NULL; line != NULL && *line != '\0'; line = next) {
		unsigned long idx;
		int err;

		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		if (strncmp(line, "drop ", 5) == 0) {
			strv_add_owned(errors, xasprintf("cannot check the files as mail_owner "
			                                 "%s: %s",
			                                 owner.name, line + 5));
			continue;
		}
		if (sscanf(line, "%lu %d", &idx, &err) != 2 || idx >= paths.n)
			continue;
		strv_add_owned(
		        errors,
		        xasprintf("%s%s%s: not readable by mail_owner %s (%s), which the daemons "
		                  "run as: make it readable by group %s and not by others "
		                  "(chgrp %s %s; chmod 0640 %s; every directory on the way "
		                  "must be searchable)",
		                  wheres.v[idx], wheres.v[idx][0] != '\0' ? ": " : "", paths.v[idx],
		                  owner.name, strerror(err), group, group, paths.v[idx],
		                  paths.v[idx]));
	}
out:
	free(group);
	privilege_owner_free(&owner);
	strv_free(&paths);
	strv_free(&wheres);
	str_free(&reply);
	str_free(&error);
}

int confcheck_run(const char *config_dir, strv_t *errors, strv_t *warnings)
{
	struct config *cfg = NULL;
	struct master_conf *mc = NULL;
	strv_t services = STRV_INIT;
	size_t n_errors = errors->n;
	char *master_path;

	(void)config_load(config_dir, &cfg, errors);
	for (size_t i = 0; i < config_parse_warnings(cfg)->n; i++)
		strv_add(warnings, config_parse_warnings(cfg)->v[i]);

	master_path = xasprintf("%s/master.cf", config_dir);
	(void)mastercf_load(master_path, &mc, errors);
	for (size_t i = 0; mc != NULL && i < mc->n; i++) {
		const struct master_service *s = &mc->services[i];
		struct config *svc;

		strv_add(&services, s->name);
		if (s->override_names.n == 0)
			continue;
		/* Each service sees main.cf with its own overrides applied. */
		svc = mastercf_service_config(cfg, s);
		for (size_t o = 0; o < s->override_names.n; o++)
			config_note_references(cfg, s->override_values.v[o]);
		for (size_t o = 0; o < s->override_names.n; o++) {
			const char *error, *name = s->override_names.v[o];

			if (param_find(name) == NULL && !config_is_set(cfg, name))
				strv_add_owned(warnings,
				               xasprintf("%s, line %u: service %s/%s: unknown "
				                         "parameter in -o %s=%s",
				                         s->file, s->line, s->name, s->type, name,
				                         s->override_values.v[o]));
			else if (config_check_value(svc, name, &error) < 0)
				strv_add(errors, error);
		}
		config_destroy(&svc);
	}
	config_validate(cfg, &services, errors, warnings);
	config_not_yet_warnings(cfg, warnings);
	mastercf_not_yet_warnings(cfg, mc, warnings);
	check_table_files(cfg, config_dir, errors, warnings);
	check_sasl_ldap_file(cfg, config_dir, errors, warnings);
	check_tables(cfg, config_dir, errors, warnings);
	restrict_config_check(cfg, errors);
	confcheck_tls(cfg, mc, errors, warnings);
	check_overrides(cfg, mc, errors);
	check_mailbox_size(cfg, mc, errors);
	check_db_password_files(cfg, errors, warnings);
	{
		char *main_path = xasprintf("%s/main.cf", config_dir);

		check_world_writable(main_path, warnings);
		check_world_writable(master_path, warnings);
		free(main_path);
	}

	/* Only a configuration that parsed is worth the probe: the files
	 * it names are known then. */
	if (geteuid() == 0 && errors->n == n_errors)
		check_owner_access(cfg, config_dir, errors);
	strv_free(&services);
	mastercf_destroy(&mc);
	config_destroy(&cfg);
	free(master_path);
	return errors->n > n_errors ? -1 : 0;
}
