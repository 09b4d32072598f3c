/* cli_domain.c - `postern domain`: add, delete and list hosted domains.
 *
 *   domain add NAME [--description TEXT] [--quota-default BYTES]
 *                   [--max-mailboxes N] [--max-aliases N] [--transport T]
 *                   [--backup-mx] [--uid N] [--gid N]
 *   domain add NAME --alias-of DOMAIN    an alias domain: x@NAME is x@DOMAIN
 *   domain del NAME [--force]            --force: also its mailboxes and aliases
 *   domain list                          one line per domain, tab-separated:
 *       NAME STATUS MAILBOXES ALIASES QUOTA-DEFAULT DESCRIPTION
 *     STATUS is active or inactive, with ",backup-mx" when so; an alias
 *     domain shows STATUS "alias-of=DOMAIN" (",inactive" when so).
 * Names are checked and stored in lower case (IDNs as xn-- A-labels).
 *
 * Exit status: 0 done, 1 refused (exists, does not exist, bad name) or a
 * database error, 75 the database cannot be reached, 64 usage.
 *
 * SECURITY: runs with the caller's privileges; writes only to the
 * database named by main.cf, with parameterised statements.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/parse.h"
#include "cli.h"
#include "cli_db.h"
#include "db/db_admin.h"

static int usage(void)
{
	fprintf(stderr,
	        "usage: postern domain [-c DIR] [-v] add NAME [--description TEXT] "
	        "[--quota-default BYTES]\n"
	        "           [--max-mailboxes N] [--max-aliases N] [--transport T] [--backup-mx]\n"
	        "           [--uid N] [--gid N]\n"
	        "       postern domain [-c DIR] [-v] add NAME --alias-of DOMAIN\n"
	        "       postern domain [-c DIR] [-v] del NAME [--force]\n"
	        "       postern domain [-c DIR] [-v] list\n");
	return CLI_EXIT_USAGE;
}

enum {
	OPT_DESCRIPTION = 256,
	OPT_QUOTA,
	OPT_MAX_MAILBOXES,
	OPT_MAX_ALIASES,
	OPT_TRANSPORT,
	OPT_BACKUP_MX,
	OPT_UID,
	OPT_GID,
	OPT_ALIAS_OF,
	OPT_FORCE,
};

static const struct option long_options[] = {
        {"description", required_argument, NULL, OPT_DESCRIPTION},
        {"quota-default", required_argument, NULL, OPT_QUOTA},
        {"max-mailboxes", required_argument, NULL, OPT_MAX_MAILBOXES},
        {"max-aliases", required_argument, NULL, OPT_MAX_ALIASES},
        {"transport", required_argument, NULL, OPT_TRANSPORT},
        {"backup-mx", no_argument, NULL, OPT_BACKUP_MX},
        {"uid", required_argument, NULL, OPT_UID},
        {"gid", required_argument, NULL, OPT_GID},
        {"alias-of", required_argument, NULL, OPT_ALIAS_OF},
        {"force", no_argument, NULL, OPT_FORCE},
        {NULL, 0, NULL, 0},
};

static int number(const char *option, const char *text, uint64_t max, uint64_t *value_r)
{
	if (parse_uint64(text, 0, max, value_r) < 0) {
		log_error("%s \"%s\": expected a whole number from 0 to %" PRIu64, option, text,
		          max);
		return -1;
	}
	return 0;
}

static int domain_list(struct cli_db *d)
{
	struct sql_result doms, aliases;
	enum sql_status st;
	str_t error;

	str_init(&error);
	st = db_domain_list(&d->admin, &doms, &aliases, &error);
	if (st != SQL_OK) {
		int ret = cli_db_exit(st, &error);

		str_free(&error);
		return ret;
	}
	str_free(&error);
	for (size_t i = 0; i < doms.nrows; i++) {
		const char *desc = sql_cell(&doms, i, 3);

		printf("%s\t%s%s\t%s\t%s\t%s\t%s\n", sql_cell(&doms, i, 0),
		       db_bool(sql_cell(&doms, i, 1)) ? "active" : "inactive",
		       db_bool(sql_cell(&doms, i, 2)) ? ",backup-mx" : "", sql_cell(&doms, i, 7),
		       sql_cell(&doms, i, 8), sql_cell(&doms, i, 4), desc != NULL ? desc : "");
	}
	for (size_t i = 0; i < aliases.nrows; i++)
		printf("%s\talias-of=%s%s\t-\t-\t-\t\n", sql_cell(&aliases, i, 0),
		       sql_cell(&aliases, i, 1),
		       db_bool(sql_cell(&aliases, i, 2)) ? "" : ",inactive");
	sql_result_free(&doms);
	sql_result_free(&aliases);
	return CLI_EXIT_OK;
}

int cli_domain(int argc, char **argv)
{
	struct db_domain_spec spec;
	struct cli_db d;
	enum sql_status st;
	const char *action;
	char *name = NULL, *alias_of = NULL;
	bool force = false, add_only = false;
	str_t error;
	int opt, ret, npos;

	memset(&spec, 0, sizeof(spec));
	/* optind 0 makes glibc start afresh: postern.c parsed the global
	 * options in "+" (stop at the first argument) mode, and options may
	 * come after the arguments here. */
	optind = 0;
	while ((opt = getopt_long(argc, argv, "c:v", long_options, NULL)) != -1) {
		switch (opt) {
		case 'c':
			cli_globals.config_dir = optarg;
			break;
		case 'v':
			log_set_verbose(log_verbose() + 1);
			break;
		case OPT_DESCRIPTION:
			spec.description = optarg;
			add_only = true;
			break;
		case OPT_QUOTA:
			if (number("--quota-default", optarg, INT64_MAX,
			           &spec.default_quota_bytes) < 0)
				return CLI_EXIT_USAGE;
			add_only = true;
			break;
		case OPT_MAX_MAILBOXES:
			if (number("--max-mailboxes", optarg, 2147483647, &spec.max_mailboxes) < 0)
				return CLI_EXIT_USAGE;
			add_only = true;
			break;
		case OPT_MAX_ALIASES:
			if (number("--max-aliases", optarg, 2147483647, &spec.max_aliases) < 0)
				return CLI_EXIT_USAGE;
			add_only = true;
			break;
		case OPT_TRANSPORT:
			spec.transport = optarg;
			add_only = true;
			break;
		case OPT_BACKUP_MX:
			spec.backup_mx = true;
			add_only = true;
			break;
		case OPT_UID:
			if (number("--uid", optarg, 2147483647, &spec.uid) < 0)
				return CLI_EXIT_USAGE;
			spec.has_uid = add_only = true;
			break;
		case OPT_GID:
			if (number("--gid", optarg, 2147483647, &spec.gid) < 0)
				return CLI_EXIT_USAGE;
			spec.has_gid = add_only = true;
			break;
		case OPT_ALIAS_OF:
			spec.alias_of = optarg;
			add_only = true;
			break;
		case OPT_FORCE:
			force = true;
			break;
		default:
			return usage();
		}
	}
	npos = argc - optind;
	if (npos < 1)
		return usage();
	action = argv[optind];
	if (strcmp(action, "add") == 0 || strcmp(action, "del") == 0) {
		if (npos != 2 || (add_only && action[0] != 'a') || (force && action[0] != 'd'))
			return usage();
	} else if (strcmp(action, "list") == 0) {
		if (npos != 1 || add_only || force)
			return usage();
	} else {
		fprintf(stderr, "postern domain: unknown action \"%s\"\n", action);
		return usage();
	}

	str_init(&error);
	if (npos == 2) {
		name = db_domain_normalise(argv[optind + 1], &error);
		if (name == NULL) {
			log_error("%s", str_c(&error));
			str_free(&error);
			return CLI_EXIT_FAIL;
		}
	}
	if (spec.alias_of != NULL) {
		if (spec.description != NULL || spec.transport != NULL || spec.backup_mx ||
		    spec.has_uid || spec.has_gid || spec.max_aliases || spec.max_mailboxes ||
		    spec.default_quota_bytes) {
			log_error("--alias-of makes an alias domain: it takes no other option");
			free(name);
			str_free(&error);
			return CLI_EXIT_USAGE;
		}
		alias_of = db_domain_normalise(spec.alias_of, &error);
		if (alias_of == NULL) {
			log_error("%s", str_c(&error));
			free(name);
			str_free(&error);
			return CLI_EXIT_FAIL;
		}
		spec.alias_of = alias_of;
	}
	ret = cli_db_open(&d, 0);
	if (ret != CLI_EXIT_OK) {
		free(name);
		free(alias_of);
		str_free(&error);
		return ret;
	}
	if (strcmp(action, "list") == 0) {
		ret = domain_list(&d);
	} else if (strcmp(action, "add") == 0) {
		st = db_domain_add(&d.admin, name, &spec, &error);
		if (st == SQL_OK && alias_of != NULL)
			log_info("added alias domain %s of %s", name, alias_of);
		else if (st == SQL_OK)
			log_info("added domain %s", name);
		ret = cli_db_exit(st, &error);
	} else {
		st = db_domain_del(&d.admin, name, force, &error);
		if (st == SQL_OK)
			log_info("deleted domain %s", name);
		ret = cli_db_exit(st, &error);
	}
	cli_db_close(&d);
	free(name);
	free(alias_of);
	str_free(&error);
	return ret;
}
