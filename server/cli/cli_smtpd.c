/* cli_smtpd.c - `postern smtpd [ARGS]`: run the SMTP server alone in the
 * foreground, for debugging (`postern start` runs it under master). Run
 * as root it drops to mail_owner like any daemon (-R keeps root).
 *
 * Execs the smtpd program with "-c DIR" (postern's -c or $MAIL_CONFIG),
 * "-v" for each of postern's -v, and ARGS unchanged. The program is the
 * smtpd next to the postern binary when there is one (running from the
 * build tree), else $daemon_directory/smtpd. On failure (no such program,
 * exec error) a message on stderr and exit status 1; nothing else here
 * can fail.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/strv.h"
#include "cli.h"
#include "conf/config.h"
#include "daemon/daemon.h"

int cli_smtpd(int argc, char **argv)
{
	strv_t args = STRV_INIT;
	struct config *cfg = NULL;
	strv_t errors = STRV_INIT;
	char *program;

	if (config_load(cli_globals.config_dir, &cfg, &errors) < 0) {
		for (size_t i = 0; i < errors.n; i++)
			fprintf(stderr, "postern: fatal: %s\n", errors.v[i]);
		strv_free(&errors);
		config_destroy(&cfg);
		return CLI_EXIT_FAIL;
	}
	program = daemon_program_path(cfg, "smtpd");
	strv_free(&errors);
	config_destroy(&cfg);
	strv_add(&args, program);
	strv_add(&args, "-c");
	strv_add(&args, cli_globals.config_dir);
	for (int i = 0; i < cli_globals.verbose; i++)
		strv_add(&args, "-v");
	for (int i = 1; i < argc; i++)
		strv_add(&args, argv[i]);
	execv(program, args.v);
	fprintf(stderr, "postern: fatal: cannot run %s: %s\n", program, strerror(errno));
	strv_free(&args);
	free(program);
	return CLI_EXIT_FAIL;
}
