/* smtpd_misc.c - the small SMTP verbs: RSET, NOOP, QUIT, HELP, VRFY, ETRN,
 * and the verbs postern knows but does not offer yet (STARTTLS, AUTH,
 * EXPN, XCLIENT, XFORWARD).
 *
 * Called from the dispatch table; each sends exactly one reply. Never
 * fails. Replies are Postfix's words for the same case.
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

void smtpd_cmd_help(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
	(void)cmd;
	smtpd_cmd_ok(s, SMTP_VERB_HELP);
	smtpd_reply(s, "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP "
	               "QUIT HELP VRFY");
}

void smtpd_cmd_vrfy(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
	if (s->set->disable_vrfy) {
		smtpd_reply_error(s, "502 5.5.1 VRFY command is disabled");
		return;
	}
	if (cmd->arg_len == 0) {
		smtpd_reply_error(s, "501 5.5.4 Syntax: VRFY address");
		return;
	}
	/* Why 252 and not a lookup: VRFY answers would let anyone harvest
   * addresses; RFC 5321 3.5.3 allows "cannot verify, will accept". */
	smtpd_cmd_ok(s, SMTP_VERB_VRFY);
	smtpd_reply(s, "252 2.0.0 Send mail to find out");
}

void smtpd_cmd_etrn(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
	(void)cmd;
	smtpd_reply_error(s, "502 5.5.1 Error: command not implemented");
}

void smtpd_cmd_unimpl(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
	(void)cmd;
	smtpd_reply_error(s, "502 5.5.2 Error: command not recognized");
}
