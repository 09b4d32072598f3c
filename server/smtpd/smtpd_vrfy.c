/* smtpd_vrfy.c - VRFY with disable_vrfy_command = no.
 *
 * Called from the dispatch table. As in Postfix, the address (with or
 * without <>) must parse as a recipient, then the recipient restrictions
 * decide as for RCPT TO (smtpd_relay_restrictions,
 * smtpd_recipient_restrictions, reject_unlisted_recipient), so an unknown
 * mailbox is 550 5.1.1 and a known one "252 2.0.0 ADDRESS". postern's
 * default is disable_vrfy_command = yes: 502 5.5.1 before any of this.
 *
 * SECURITY: the argument is client text; see smtpd_mail.c. The restriction
 * check runs asynchronously and the reply waits, like RCPT's.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "address/address.h"
#include "base/mem.h"
#include "smtpd.h"

static void vrfy_done(const struct restrict_result *r, void *ctx)
{
	struct smtpd_session *s = ctx;

	s->pending = NULL;
	if (r->verdict != RESTRICT_ACCEPT) {
		smtpd_log_reject(s, r->stage_name != NULL ? r->stage_name : "VRFY",
		                 str_c(&r->reply), s->cur_rcpt);
		smtpd_reply_error(s, "%s", str_c(&r->reply));
	} else {
		smtpd_cmd_ok(s, SMTP_VERB_VRFY);
		smtpd_reply(s, "252 2.0.0 %s", s->vrfy_arg);
	}
	free(s->vrfy_arg);
	s->vrfy_arg = NULL;
	free(s->cur_rcpt);
	s->cur_rcpt = NULL;
	smtpd_session_resume(s);
}

void smtpd_cmd_vrfy(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
	struct mail_path *path;
	struct address_error err;
	unsigned flags = ADDRESS_PARSE_SLOPPY;
	const char *arg, *lt;
	size_t len;
	str_t addr;

	if (s->set->disable_vrfy) {
		smtpd_reply_error(s, "502 5.5.1 VRFY command is disabled");
		return;
	}
	if (cmd->arg_len == 0) {
		smtpd_reply_error(s, "501 5.5.4 Syntax: VRFY address");
		return;
	}
	if (s->set->smtputf8)
		flags |= ADDRESS_PARSE_SMTPUTF8;
	/* "Name <address>": Postfix verifies the address in brackets. */
	arg = cmd->arg;
	len = cmd->arg_len;
	lt = memchr(arg, '<', len);
	if (lt != NULL && arg[len - 1] == '>') {
		len -= (size_t)(lt - arg);
		arg = lt;
	}
	if (address_parse_path(arg, len, ADDRESS_RECIPIENT, flags, &path, &err) < 0 ||
	    path->nparams > 0 || (path->addr.domain != NULL && path->addr.domain[0] == '\0')) {
		if (path != NULL)
			mail_path_destroy(&path);
		smtpd_reply_error(s, "501 5.1.3 Bad recipient address syntax");
		return;
	}
	str_init(&addr);
	address_internal_string(&path->addr, &addr);
	mail_path_destroy(&path);
	free(s->cur_rcpt);
	s->cur_rcpt = str_steal(&addr);
	str_free(&addr);
	free(s->vrfy_arg);
	s->vrfy_arg = xstrndup(cmd->arg, cmd->arg_len);
	/* RFC 5321 4.5.1: postmaster without a domain always exists. */
	if (strcasecmp(s->cur_rcpt, "postmaster") == 0) {
		struct restrict_result ok = {.verdict = RESTRICT_ACCEPT};

		smtpd_session_wait(s);
		vrfy_done(&ok, s);
		return;
	}
	smtpd_request_fill(s);
	smtpd_session_wait(s);
	s->pending = restrict_check(s->rs, RESTRICT_RCPT, &s->req, NULL, vrfy_done, s);
}
