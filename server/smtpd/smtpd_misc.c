/* smtpd_misc.c - the small SMTP verbs: RSET, NOOP, QUIT, HELP, and the
 * verbs postern knows but does not offer yet (STARTTLS, AUTH).
 *
 * Called from the dispatch table; each sends exactly one reply. Never
 * fails. Replies are Postfix 3.7's, codes and words, for the same case
 * (a Postfix without TLS or SASL). ETRN is smtpd_etrn.c, XCLIENT and
 * XFORWARD smtpd_xclient.c, VRFY smtpd_vrfy.c.
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

/* STARTTLS before the TLS issue: Postfix without smtpd_tls_security_level. */
void smtpd_cmd_starttls(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
	if (cmd->arg_len > 0) {
		smtpd_reply_error(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	smtpd_reply_error(s, "502 5.5.1 Error: command not implemented");
}

/* AUTH before the SASL issue: Postfix with smtpd_sasl_auth_enable = no. */
void smtpd_cmd_auth(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
	(void)cmd;
	smtpd_reply_error(s, "503 5.5.1 Error: authentication not enabled");
}
