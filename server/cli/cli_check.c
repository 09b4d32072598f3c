/* cli_check.c - `postern check`: the `postfix check` equivalent.
 *
 * Runs the whole-configuration check of lib/confcheck (confcheck.h):
 * main.cf and master.cf parsed and type-checked, every lookup table
 * opened, the restriction lists, the password files, and, run as root,
 * that mail_owner can read what the daemons read. master runs the same
 * check at start and at reload, so what passes here starts, and what
 * fails here is refused. Every message names the file and line. Exit 0
 * when there is no error (warnings allowed), 1 otherwise. Prints nothing
 * when all is well, like postfix check.
 */
#include <stdio.h>

#include "base/log.h"
#include "base/strv.h"
#include "cli.h"
#include "confcheck/confcheck.h"

int cli_check(int argc, char **argv)
{
	strv_t errors = STRV_INIT, warnings = STRV_INIT;
	int status;

	if (cli_common_options(argc, argv, "c:v") < 0) {
		fprintf(stderr, "usage: postern check [-c DIR] [-v]\n");
		return CLI_EXIT_USAGE;
	}
	status = confcheck_run(cli_globals.config_dir, &errors, &warnings) < 0 ? CLI_EXIT_FAIL
	                                                                       : CLI_EXIT_OK;
	for (size_t i = 0; i < warnings.n; i++)
		log_warning("%s", warnings.v[i]);
	for (size_t i = 0; i < errors.n; i++)
		log_error("%s", errors.v[i]);
	if (status == CLI_EXIT_OK)
		log_debug(1, "configuration in %s is valid (%zu warnings)", cli_globals.config_dir,
		          warnings.n);
	strv_free(&errors);
	strv_free(&warnings);
	return status;
}
