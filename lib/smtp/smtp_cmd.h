/* smtp_cmd.h - split one SMTP command line into verb and argument.
 *
 * smtpd hands every command line (without its CRLF) to smtp_cmd_parse()
 * and dispatches on the verb; the fuzz target fuzz_smtp_cmd.c runs it on
 * arbitrary bytes. The parser holds no state, allocates nothing and
 * reads at most len bytes: the result points into the caller's line.
 *
 * Rules (RFC 5321 4.1.1 with Postfix's tolerance):
 *   - the verb is the first word, matched case-insensitively; a verb
 *     longer than SMTP_CMD_VERB_MAX or with bytes other than letters is
 *     SMTP_VERB_UNKNOWN (smtpd: "500 5.5.2 Error: command not recognized",
 *     or smtpd_forbidden_commands; EXPN is unknown too, as in Postfix);
 *   - the argument is the rest after white space (spaces or tabs),
 *     trailing white space removed;
 *   - MAIL needs "FROM:" and RCPT needs "TO:" (any case; Postfix also
 *     accepts white space after the colon, so do we); the argument is
 *     then what follows the colon. Without it the parse fails with
 *     "501 5.5.4 Syntax: MAIL FROM:<address>" (or RCPT TO:);
 *   - a NUL byte ends the line: what follows is ignored (Postfix reads a
 *     command as a C string);
 *   - white space is space, tab, and a CR, VT or FF inside the line.
 * Bare CR and LF are the line reader's business (smtpd refuses them
 * before a line gets here).
 */
#ifndef POSTERN_SMTP_CMD_H
#define POSTERN_SMTP_CMD_H

#include <stddef.h>

/* Longest verb looked up; longer words are unknown commands. */
#define SMTP_CMD_VERB_MAX 16

enum smtp_verb {
	SMTP_VERB_UNKNOWN = 0,
	SMTP_VERB_HELO,
	SMTP_VERB_EHLO,
	SMTP_VERB_MAIL,
	SMTP_VERB_RCPT,
	SMTP_VERB_DATA,
	SMTP_VERB_BDAT,
	SMTP_VERB_RSET,
	SMTP_VERB_NOOP,
	SMTP_VERB_QUIT,
	SMTP_VERB_HELP,
	SMTP_VERB_VRFY,
	SMTP_VERB_ETRN,
	SMTP_VERB_STARTTLS,
	SMTP_VERB_AUTH,
	SMTP_VERB_XCLIENT,
	SMTP_VERB_XFORWARD,
	SMTP_VERB_COUNT
};

struct smtp_cmd {
	enum smtp_verb verb;
	/* The canonical upper-case name ("MAIL"), or "UNKNOWN" for
	 * SMTP_VERB_UNKNOWN (used for "lost connection after UNKNOWN"). */
	const char *name;
	/* The first word as sent (leading white space skipped), word_len
	 * bytes: what smtpd_forbidden_commands is matched against. */
	const char *word;
	size_t word_len;
	/* The argument (for MAIL/RCPT: after "FROM:"/"TO:"), pointing into
	 * the line, arg_len bytes, not NUL-terminated by the parser. Empty
	 * (arg_len 0, arg at the end of the line) when there is none. */
	const char *arg;
	size_t arg_len;
};

/* Parse line (len bytes, no CRLF). Returns 0 with *cmd filled in (an
 * unrecognised verb is not an error: cmd->verb is SMTP_VERB_UNKNOWN), or
 * -1 with *reply_r (static) set to the complete reply for the client:
 * the MAIL/RCPT syntax errors and NUL bytes above. cmd->verb and
 * cmd->name are set even then. */
int smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *cmd, const char **reply_r);

/* The canonical name of a verb ("EHLO"); "UNKNOWN" for anything else. */
const char *smtp_verb_name(enum smtp_verb verb);

#endif
