/* smtpd_misc.c - the small SMTP verbs: RSET, NOOP, QUIT, HELP.
 *
 * Called from the dispatch table; each sends exactly one reply. Never
 * fails. Replies are Postfix 3.7's, codes and words. ETRN is smtpd_etrn.c, XCLIENT and
 * XFORWARD smtpd_xclient.c, VRFY smtpd_vrfy.c, STARTTLS smtpd_tls.c, AUTH
 * smtpd_auth.c.
 */
#include "smtpd.h"

void smtpd_cmd_rset(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
	if (cmd->arg_len > 0) {
		smtpd_reply_error(s, "501 5.5.4 Syntax: RSET");
		return;
	}
	smtpd_transaction_reset(s);
	smtpd_cmd_ok(s, SMTP_VERB_RSET);
	smtpd_reply(s, "250 2.0.0 Ok");
}

void smtpd_cmd_noop(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
	(void)cmd;
	smtpd_cmd_ok(s, SMTP_VERB_NOOP);
	smtpd_reply(s, "250 2.0.0 Ok");
}

void smtpd_cmd_quit(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
	(void)cmd;
	smtpd_cmd_ok(s, SMTP_VERB_QUIT);
	smtpd_hangup(s, "221 2.0.0 Bye");
}

/* Postfix has no HELP; postern keeps it for people at a telnet prompt
 * (a listed deviation: no client depends on HELP's answer). */
void smtpd_cmd_help(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
	(void)cmd;
	smtpd_cmd_ok(s, SMTP_VERB_HELP);
	smtpd_reply(s, "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP "
	               "QUIT HELP VRFY ETRN");
}
