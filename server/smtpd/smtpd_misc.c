/* smtpd_misc.c - the small SMTP verbs: RSET, NOOP, QUIT, HELP, ETRN,
 * and the verbs postern knows but does not offer yet (STARTTLS, AUTH,
 * XCLIENT, XFORWARD).
 *
 * Called from the dispatch table; each sends exactly one reply. Never
 * fails. Replies are Postfix 3.7's, codes and words, for the same case
 * (a Postfix without TLS, SASL, flush domains or XCLIENT/XFORWARD
 * clients); ETRN's replies carry no enhanced status code in Postfix
 * either.
 */
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
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

/* A host name for ETRN: letters, digits, '-', '_' and dots, or an address
 * literal in brackets (Postfix's valid_hostname() or a literal). */
static bool etrn_domain_valid(const char *d, size_t len)
{
	if (len == 0 || len > 255)
		return false;
	if (d[0] == '[')
		return len > 2 && d[len - 1] == ']' && memchr(d + 1, '[', len - 2) == NULL &&
		       memchr(d + 1, ']', len - 2) == NULL && memchr(d, ' ', len) == NULL;
	for (size_t i = 0; i < len; i++) {
		char c = d[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return d[0] != '.' && d[0] != '-';
}

/* ETRN (RFC 1985). postern has no flush service yet (fast_flush_domains
 * warns that it is not implemented), so every domain gets the answer a
 * Postfix gives for a domain outside fast_flush_domains. */
void smtpd_cmd_etrn(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
	const char *d = cmd->arg;
	size_t len = cmd->arg_len;

	if (s->helo == NULL && s->set->helo_required) {
		smtpd_reply_error(s, "503 Error: send HELO/EHLO first");
		return;
	}
	if (s->in_mail) {
		smtpd_reply_error(s, "503 Error: MAIL transaction in progress");
		return;
	}
	if (len == 0 || strcspn(d, " \t\r\v\f") < len) { /* one word, as smtp_cmd splits */
		smtpd_reply_error(s, "500 Syntax: ETRN domain");
		return;
	}
	if (d[0] == '@' || d[0] == '#') {
		d++;
		len--;
	}
	if (!etrn_domain_valid(d, len)) {
		smtpd_reply_error(s, "501 Error: invalid parameter syntax");
		return;
	}
	smtpd_reply_error(s, "459 <%.*s>: service unavailable", (int)len, d);
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

/* XCLIENT and XFORWARD: no client is authorized yet
 * (smtpd_authorized_xclient_hosts / _xforward_hosts warn that they are
 * not implemented). Postfix's checks, in its order. */
void smtpd_cmd_xclient(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
	const char *verb = cmd->verb == SMTP_VERB_XCLIENT ? "XCLIENT" : "XFORWARD";

	if (s->in_mail) {
		smtpd_reply_error(s, "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	if (cmd->arg_len == 0) {
		smtpd_reply_error(s, "501 5.5.4 Syntax: %s attribute=value...", verb);
		return;
	}
	smtpd_reply_error(s, "550 5.7.0 Error: insufficient authorization");
}
