/* cli_trace.c - `postern trace [-c DIR] ADDRESS`: where mail for ADDRESS
 * goes, step by step (lib/delivery/resolve.h), as an indented tree:
 *
 *   info@example.com
 *     alias: virtual_alias_maps db:aliases key info@example.com -> a@example.com
 *     a@example.com
 *       class: virtual mailbox domain (virtual_mailbox_domains db:domains)
 *       mailbox: virtual_mailbox_maps db:mailboxes key a@example.com -> ...
 *       transport: virtual (virtual_transport)
 *
 * Postfix has no single equivalent: one would chain postmap -q over
 * virtual_alias_maps, virtual_mailbox_maps and transport_maps by hand.
 *
 * Exit status: 0 when every final recipient is deliverable, 1 when some
 * is not (unknown user, error transport), 75 when a table failed
 * temporarily or an alias limit was hit (the answer is unknown) or when
 * the virtual agent would defer a recipient ("result: deferred: 4.3.5
 * ..." for a maildir path it refuses, maildir_path_check()), 64 for
 * usage errors; 1 wins over a deferral (that answer is final). Messages
 * go to standard error.
 *
 * SECURITY: runs with the caller's privileges and only reads: main.cf,
 * the tables it names and the Maildir's maildirsize. The address is only
 * ever a lookup key (bounded by table.c), never reaches a shell.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/str.h"
#include "base/strv.h"
#include "cli.h"
#include "conf/config.h"
#include "delivery/resolve.h"

static int usage(void)
{
	fprintf(stderr, "usage: postern trace [-c DIR] [-v] ADDRESS\n");
	return CLI_EXIT_USAGE;
}

int cli_trace(int argc, char **argv)
{
	struct config *cfg = NULL;
	struct resolve_ctx *ctx = NULL;
	struct resolve_result r;
	strv_t errors = STRV_INIT;
	str_t error;
	int ret;

	optind = 0; /* options may follow the address (see cli_alias.c) */
	if (cli_common_options(argc, argv, "c:v") < 0 || argc - optind != 1)
		return usage();
	if (config_load(cli_globals.config_dir, &cfg, &errors) < 0) {
		for (size_t i = 0; i < errors.n; i++)
			log_error("%s", errors.v[i]);
		strv_free(&errors);
		return CLI_EXIT_FAIL;
	}
	strv_free(&errors);
	str_init(&error);
	if (resolve_open(cfg, cli_globals.config_dir, &ctx, &error) < 0) {
		log_error("%s", str_c(&error));
		str_free(&error);
		config_destroy(&cfg);
		return CLI_EXIT_TEMPFAIL;
	}
	str_free(&error);
	resolve_result_init(&r);
	switch (resolve_recipient(ctx, argv[optind], &r)) {
	case RESOLVE_OK:
		ret = CLI_EXIT_OK;
		for (size_t i = 0; i < r.nfinals; i++)
			if (r.finals[i].deferred != NULL)
				ret = CLI_EXIT_TEMPFAIL;
		break;
	case RESOLVE_UNDELIVERABLE:
		ret = CLI_EXIT_FAIL;
		break;
	case RESOLVE_TEMPFAIL:
	default:
		ret = CLI_EXIT_TEMPFAIL;
		break;
	}
	for (size_t i = 0; i < r.nlines; i++)
		printf("%*s%s\n", (int)(2 * r.lines[i].depth), "", r.lines[i].text);
	if (r.status == RESOLVE_TEMPFAIL)
		printf("temporary failure: %s\n", str_c(&r.error));
	fflush(stdout);
	resolve_result_free(&r);
	resolve_close(&ctx);
	config_destroy(&cfg);
	return ret;
}
