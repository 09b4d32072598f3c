/* cli_alias.c - `postern alias`: add, delete and list aliases.
 *
 *   alias add ADDRESS TARGET...   create the alias or add targets to it
 *   alias del ADDRESS [TARGET]    delete the alias, or one of its targets
 *                                 (an alias left with none is deleted)
 *   alias list [DOMAIN]           one line per alias, tab-separated:
 *       ADDRESS TARGETS STATUS    (TARGETS comma-separated, sorted)
 *
 * ADDRESS is local@domain, or @domain for the domain's catch-all; its
 * domain must be one of ours (postern domain add). Targets are
 * addresses, here or elsewhere (forwarding). An alias may name its own
 * address among its targets to keep a copy in the mailbox of the same
 * name. Everything is checked and stored in lower case.
 *
 * Exit status: 0 done, 1 refused or a database error, 75 the database
 * cannot be reached, 64 usage.
 *
 * SECURITY: runs with the caller's privileges; writes only to the
 * database named by main.cf, with parameterised statements.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/strv.h"
#include "cli.h"
#include "cli_db.h"
#include "db/db_admin.h"

static int usage(void)
{
	fprintf(stderr, "usage: postern alias [-c DIR] [-v] add ADDRESS TARGET...\n"
	                "       postern alias [-c DIR] [-v] del ADDRESS [TARGET]\n"
	                "       postern alias [-c DIR] [-v] list [DOMAIN]\n");
	return CLI_EXIT_USAGE;
}

static int alias_list(struct cli_db *d, const char *domain)
{
	struct sql_result res;
	enum sql_status st;
	str_t error;
	int ret;

	str_init(&error);
	st = db_alias_list(&d->admin, domain, &res, &error);
	ret = cli_db_exit(st, &error);
	str_free(&error);
	if (st != SQL_OK)
		return ret;
	/* Rows come one per target, in address order: join them per alias. */
	for (size_t i = 0; i < res.nrows;) {
		const char *address = sql_cell(&res, i, 0);
		bool active = db_bool(sql_cell(&res, i, 2));
		size_t n = 0;

		printf("%s\t", address);
		for (; i < res.nrows && strcmp(sql_cell(&res, i, 0), address) == 0; i++)
			if (sql_cell(&res, i, 1) != NULL)
				printf("%s%s", n++ > 0 ? "," : "", sql_cell(&res, i, 1));
		printf("\t%s\n", active ? "active" : "inactive");
	}
	sql_result_free(&res);
	return CLI_EXIT_OK;
}

int cli_alias(int argc, char **argv)
{
	strv_t targets = STRV_INIT;
	const char *action;
	char *address = NULL;
	struct cli_db d;
	enum sql_status st;
	str_t error;
	int ret, npos;

	/* optind 0 makes glibc start afresh: postern.c parsed the global
	 * options in "+" (stop at the first argument) mode, and options may
	 * come after the arguments here. */
	optind = 0;
	if (cli_common_options(argc, argv, "c:v") < 0)
		return usage();
	npos = argc - optind;
	if (npos < 1)
		return usage();
	action = argv[optind];
	if ((strcmp(action, "add") == 0 && npos < 3) ||
	    (strcmp(action, "del") == 0 && (npos < 2 || npos > 3)) ||
	    (strcmp(action, "list") == 0 && npos > 2))
		return usage();
	if (strcmp(action, "add") != 0 && strcmp(action, "del") != 0 &&
	    strcmp(action, "list") != 0) {
		fprintf(stderr, "postern alias: unknown action \"%s\"\n", action);
		return usage();
	}

	str_init(&error);
	if (npos >= 2) {
		address = strcmp(action, "list") == 0
		                  ? db_domain_normalise(argv[optind + 1], &error)
		                  : db_address_normalise(argv[optind + 1], true, &error);
		ret = address == NULL ? CLI_EXIT_FAIL : CLI_EXIT_OK;
		for (int i = optind + 2; i < argc && ret == CLI_EXIT_OK; i++) {
			char *t = db_address_normalise(argv[i], false, &error);

			if (t == NULL)
				ret = CLI_EXIT_FAIL;
			else
				strv_add_owned(&targets, t);
		}
		if (ret != CLI_EXIT_OK) {
			log_error("%s", str_c(&error));
			goto out;
		}
	}
	ret = cli_db_open(&d, 0);
	if (ret != CLI_EXIT_OK)
		goto out;
	if (strcmp(action, "list") == 0) {
		ret = alias_list(&d, address);
	} else if (strcmp(action, "add") == 0) {
		st = db_alias_add(&d.admin, address, (const char *const *)targets.v, targets.n,
		                  &error);
		if (st == SQL_OK)
			log_info("alias %s: %zu target%s given, all in place", address, targets.n,
			         targets.n == 1 ? "" : "s");
		ret = cli_db_exit(st, &error);
	} else {
		st = db_alias_del(&d.admin, address, targets.n > 0 ? targets.v[0] : NULL, &error);
		if (st == SQL_OK && targets.n > 0)
			log_info("removed target %s from alias %s", targets.v[0], address);
		else if (st == SQL_OK)
			log_info("deleted alias %s", address);
		ret = cli_db_exit(st, &error);
	}
	cli_db_close(&d);
out:
	free(address);
	strv_free(&targets);
	str_free(&error);
	return ret;
}
