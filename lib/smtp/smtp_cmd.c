/* smtp_cmd.c - SMTP command line splitting (see smtp_cmd.h).
 *
 * Used by smtpd for every command line and by fuzz_smtp_cmd.c. Pure
 * function of its input: no allocation, no state, never reads beyond
 * len bytes, never fails other than by returning the client's reply.
 *
 * SECURITY: the input is a client's command line, any bytes at all. Every
 * loop is bounded by len; the verb is compared against a fixed table
 * only after checking its length, so no byte is copied anywhere.
 */
#include "smtp/smtp_cmd.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

static const char *const verb_names[SMTP_VERB_COUNT] = {
        [SMTP_VERB_UNKNOWN] = "UNKNOWN",   [SMTP_VERB_HELO] = "HELO",
        [SMTP_VERB_EHLO] = "EHLO",         [SMTP_VERB_MAIL] = "MAIL",
        [SMTP_VERB_RCPT] = "RCPT",         [SMTP_VERB_DATA] = "DATA",
        [SMTP_VERB_BDAT] = "BDAT",         [SMTP_VERB_RSET] = "RSET",
        [SMTP_VERB_NOOP] = "NOOP",         [SMTP_VERB_QUIT] = "QUIT",
        [SMTP_VERB_HELP] = "HELP",         [SMTP_VERB_VRFY] = "VRFY",
        [SMTP_VERB_ETRN] = "ETRN",         [SMTP_VERB_STARTTLS] = "STARTTLS",
        [SMTP_VERB_AUTH] = "AUTH",         [SMTP_VERB_XCLIENT] = "XCLIENT",
        [SMTP_VERB_XFORWARD] = "XFORWARD",
};

const char *smtp_verb_name(enum smtp_verb verb)
{
	if ((unsigned)verb >= SMTP_VERB_COUNT)
		return verb_names[SMTP_VERB_UNKNOWN];
	return verb_names[verb];
}

/* Postfix splits commands at any ASCII white space: a CR inside a line
 * (never its end: the reader removed that), VT and FF too. */
static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static enum smtp_verb lookup_verb(const char *word, size_t len)
{
	if (len == 0 || len > SMTP_CMD_VERB_MAX)
		return SMTP_VERB_UNKNOWN;
	for (size_t i = 0; i < len; i++) {
		char c = word[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
			return SMTP_VERB_UNKNOWN;
	}
	for (int v = SMTP_VERB_HELO; v < SMTP_VERB_COUNT; v++)
		if (strlen(verb_names[v]) == len && strncasecmp(verb_names[v], word, len) == 0)
			return (enum smtp_verb)v;
	return SMTP_VERB_UNKNOWN;
}

int smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *cmd, const char **reply_r)
{
	size_t i = 0, word_end, end;
	const char *nul = memchr(line, '\0', len);

	/* Postfix reads a command as a C string: it ends at a NUL byte, and
	 * the rest is never looked at (so never stored either). */
	if (nul != NULL)
		len = (size_t)(nul - line);
	end = len;

	while (i < len && is_space(line[i]))
		i++;
	word_end = i;
	while (word_end < len && !is_space(line[word_end]))
		word_end++;
	cmd->word = line + i;
	cmd->word_len = word_end - i;
	cmd->verb = lookup_verb(line + i, word_end - i);
	cmd->name = smtp_verb_name(cmd->verb);
	i = word_end;
	while (i < len && is_space(line[i]))
		i++;
	while (end > i && is_space(line[end - 1]))
		end--;
	cmd->arg = line + i;
	cmd->arg_len = end - i;

	if (cmd->verb == SMTP_VERB_MAIL || cmd->verb == SMTP_VERB_RCPT) {
		const char *prefix = cmd->verb == SMTP_VERB_MAIL ? "FROM:" : "TO:";
		size_t plen = strlen(prefix);

		if (cmd->arg_len < plen || strncasecmp(cmd->arg, prefix, plen) != 0) {
			*reply_r = cmd->verb == SMTP_VERB_MAIL
			                   ? "501 5.5.4 Syntax: MAIL FROM:<address>"
			                   : "501 5.5.4 Syntax: RCPT TO:<address>";
			return -1;
		}
		cmd->arg += plen;
		cmd->arg_len -= plen;
		/* Why: Postfix accepts "MAIL FROM: <a@b>" (a space after the
		 * colon) even with strict envelopes; so do many clients send. */
		while (cmd->arg_len > 0 && is_space(cmd->arg[0])) {
			cmd->arg++;
			cmd->arg_len--;
		}
	}
	return 0;
}
