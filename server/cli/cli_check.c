/* cli_check.c - `postern check`: the `postfix check` equivalent.
 *
 * Parses main.cf and master.cf, expands and type-checks every parameter
 * (main.cf and each master.cf -o override), warns about unknown
 * parameters, and checks the files that hold secrets: the database
 * password file and the .cf files of mysql:, pgsql: and ldap: tables must
 * exist and must not be readable by other users. Every lookup table named
 * by a table-list parameter is opened, so a syntax error in a regexp:,
 * cidr: or .cf file is found here, not at the first lookup (no database
 * is contacted: connections open on the first lookup). Every message names the
 * file and line. Exit 0 when there is no error (warnings allowed), 1
 * otherwise. Prints nothing when all is well, like postfix check.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/strv.h"
#include "cli.h"
#include "conf/config.h"
#include "conf/mastercf.h"
#include "conf/params.h"
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
static void check_table_files(struct config *cfg, strv_t *errors, strv_t *warnings)
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
				               : xasprintf("%s/%s", cli_globals.config_dir,
				                           ref + tlen + 1);
				check_secret_file(path, config_where(cfg, def->name), "table file",
				                  errors, warnings);
				free(path);
			}
		}
	}
}

/* The password files of both database accounts (db.h); the read one only
 * when it is another file (by default it is the same). */
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
static void check_tables(struct config *cfg, strv_t *errors)
{
	const struct table_open_context ctx = {.cfg = cfg, .config_dir = cli_globals.config_dir};
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
			if (t == NULL)
				strv_add_owned(errors,
				               xasprintf("%s: %s: %s", config_where(cfg, def->name),
				                         def->name, str_c(&why)));
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

int cli_check(int argc, char **argv)
{
	struct config *cfg = NULL;
	struct master_conf *mc = NULL;
	strv_t errors = STRV_INIT, warnings = STRV_INIT, services = STRV_INIT;
	char *master_path;

	if (cli_common_options(argc, argv, "c:v") < 0) {
		fprintf(stderr, "usage: postern check [-c DIR] [-v]\n");
		return CLI_EXIT_USAGE;
	}
	(void)config_load(cli_globals.config_dir, &cfg, &errors);
	for (size_t i = 0; i < config_parse_warnings(cfg)->n; i++)
		strv_add(&warnings, config_parse_warnings(cfg)->v[i]);

	master_path = xasprintf("%s/master.cf", cli_globals.config_dir);
	(void)mastercf_load(master_path, &mc, &errors);
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
				strv_add_owned(&warnings,
				               xasprintf("%s, line %u: service %s/%s: unknown "
				                         "parameter in -o %s=%s",
				                         s->file, s->line, s->name, s->type, name,
				                         s->override_values.v[o]));
			else if (config_check_value(svc, name, &error) < 0)
				strv_add(&errors, error);
		}
		config_destroy(&svc);
	}
	config_validate(cfg, &services, &errors, &warnings);
	config_not_yet_warnings(cfg, &warnings);
	mastercf_not_yet_warnings(cfg, mc, &warnings);
	check_table_files(cfg, &errors, &warnings);
	check_tables(cfg, &errors);
	restrict_config_check(cfg, &errors);
	check_db_password_files(cfg, &errors, &warnings);
	{
		char *main_path = xasprintf("%s/main.cf", cli_globals.config_dir);

		check_world_writable(main_path, &warnings);
		check_world_writable(master_path, &warnings);
		free(main_path);
	}

	for (size_t i = 0; i < warnings.n; i++)
		log_warning("%s", warnings.v[i]);
	for (size_t i = 0; i < errors.n; i++)
		log_error("%s", errors.v[i]);
	if (errors.n == 0)
		log_debug(1, "configuration in %s is valid (%zu warnings)", cli_globals.config_dir,
		          warnings.n);
	{
		int status = errors.n > 0 ? CLI_EXIT_FAIL : CLI_EXIT_OK;

		strv_free(&errors);
		strv_free(&warnings);
		strv_free(&services);
		mastercf_destroy(&mc);
		config_destroy(&cfg);
		free(master_path);
		return status;
	}
}
