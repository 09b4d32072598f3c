/* fuzz_smtp_cmd.c - libFuzzer target for the SMTP command splitter
 * (lib/smtp/smtp_cmd.c) and, for MAIL/RCPT lines it accepts, the address
 * parser behind it, as smtpd chains them.
 *
 * Invariants checked (a violation aborts so libFuzzer reports it):
 *  - the argument lies within the input and has no leading or trailing
 *    white space (except after MAIL FROM:/RCPT TO:, where it starts
 *    after the colon and optional blanks);
 *  - nothing at or after a NUL byte is ever part of the argument (a
 *    command ends at a NUL, as Postfix reads it);
 *  - the verb name is never NULL.
 * The input is copied into a buffer of exactly its size so ASan catches
 * any read past it.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "address/address.h"
#include "smtp/smtp_cmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = malloc(size > 0 ? size : 1);
	struct smtp_cmd cmd;
	const char *reply = NULL;
	int rc;

	memcpy(line, data, size);
	rc = smtp_cmd_parse(line, size, &cmd, &reply);
	if (cmd.name == NULL)
		abort();
	{
		const char *nul = memchr(line, '\0', size);

		if (nul != NULL && rc == 0 && cmd.arg + cmd.arg_len > nul)
			abort();
	}
	if (rc < 0 && (reply == NULL || strlen(reply) < 4))
		abort();
	if (rc == 0) {
		if (cmd.arg < line || cmd.arg + cmd.arg_len > line + size)
			abort();
		if (cmd.arg_len > 0 && strchr(" \t\r\v\f", cmd.arg[cmd.arg_len - 1]) != NULL)
			abort();
		if (cmd.verb == SMTP_VERB_MAIL || cmd.verb == SMTP_VERB_RCPT) {
			struct mail_path *path = NULL;
			struct address_error err;

			if (address_parse_path(cmd.arg, cmd.arg_len,
			                       cmd.verb == SMTP_VERB_MAIL ? ADDRESS_SENDER
			                                                  : ADDRESS_RECIPIENT,
			                       ADDRESS_PARSE_SMTPUTF8 | ADDRESS_PARSE_SLOPPY, &path,
			                       &err) == 0)
				mail_path_destroy(&path);
		}
	}
	free(line);
	return 0;
}
