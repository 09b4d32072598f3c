/* smtpd_helo.c - HELO and EHLO.
 *
 * Called from the dispatch table. Runs smtpd_helo_restrictions
 * (asynchronously: the reply waits for the check) and sends the EHLO
 * keyword list, minus smtpd_discard_ehlo_keywords. A new HELO/EHLO resets
 * the transaction, as RFC 5321 4.1.4 requires.
 *
 * SECURITY: the HELO name is client text that ends up in the Received:
 * header, the queue file and log lines. Like Postfix, every byte that is
 * not printable (controls such as CR, LF and NUL, white space, and 8-bit
 * bytes that are not UTF-8 or when SMTPUTF8 is off) and each of <>()";@\
 * becomes '?' before it is stored (smtpd_helo_clean, XCLIENT's and
 * XFORWARD's HELO too), so a client can never start a header line of its
 * own nor end the field it is in.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/mem.h"
#include "base/strv.h"
#include "base/utf8.h"
#include "smtpd.h"

char *smtpd_helo_clean(const struct smtpd_session *s, char *name)
{
	printable_fix(name, (s->set->smtputf8 ? PRINTABLE_UTF8 : 0) | PRINTABLE_NO_SPACE, '?');
	/* Postfix also takes out what would make a log or header field
	 * ambiguous: helo=<a<b> or Received: from a(b). */
	for (char *p = name; *p != '\0'; p++)
		if (strchr("<>()\";@\\", *p) != NULL)
			*p = '?';
	return name;
}

static bool keyword_discarded(const struct smtpd_session *s, const char *kw)
{
	const strv_t *list = s->set->discard_ehlo;

	for (size_t i = 0; list != NULL && i < list->n; i++)
		if (strcasecmp(list->v[i], kw) == 0)
			return true;
	return false;
}

static void send_ehlo(struct smtpd_session *s)
{
	str_t r;
	const char *kws[16], *xkw;
	size_t n = 0;
	char size_kw[64];

	if (s->set->size_limit > 0)
		snprintf(size_kw, sizeof(size_kw), "SIZE %llu",
		         (unsigned long long)s->set->size_limit);
	else
		snprintf(size_kw, sizeof(size_kw), "SIZE");
	if (!keyword_discarded(s, "PIPELINING"))
		kws[n++] = "PIPELINING";
	if (!keyword_discarded(s, "SIZE"))
		kws[n++] = size_kw;
	if (!s->set->disable_vrfy && !keyword_discarded(s, "VRFY"))
		kws[n++] = "VRFY";
	if (!keyword_discarded(s, "ETRN"))
		kws[n++] = "ETRN";
	if (smtpd_tls_offered(s) && !keyword_discarded(s, "STARTTLS"))
		kws[n++] = "STARTTLS";
	if (!keyword_discarded(s, "AUTH"))
		n = smtpd_auth_ehlo_keywords(s, kws, n);
	/* Only to authorized clients, where Postfix puts them (after ETRN). */
	if ((xkw = smtpd_xclient_ehlo_keyword(s, SMTP_VERB_XCLIENT)) != NULL &&
	    !keyword_discarded(s, "XCLIENT"))
		kws[n++] = xkw;
	if ((xkw = smtpd_xclient_ehlo_keyword(s, SMTP_VERB_XFORWARD)) != NULL &&
	    !keyword_discarded(s, "XFORWARD"))
		kws[n++] = xkw;
	if (!keyword_discarded(s, "ENHANCEDSTATUSCODES"))
		kws[n++] = "ENHANCEDSTATUSCODES";
	if (!keyword_discarded(s, "8BITMIME"))
		kws[n++] = "8BITMIME";
	if (!keyword_discarded(s, "DSN"))
		kws[n++] = "DSN";
	if (s->set->smtputf8 && !keyword_discarded(s, "SMTPUTF8"))
		kws[n++] = "SMTPUTF8";
	if (!keyword_discarded(s, "CHUNKING"))
		kws[n++] = "CHUNKING";
	str_init(&r);
	str_appendf(&r, "250%c%s", n > 0 ? '-' : ' ', s->set->myhostname);
	for (size_t i = 0; i < n; i++)
		str_appendf(&r, "\r\n250%c%s", i + 1 < n ? '-' : ' ', kws[i]);
	smtpd_reply(s, "%s", str_c(&r));
	str_free(&r);
}

static void helo_done(const struct restrict_result *r, void *ctx)
{
	struct smtpd_session *s = ctx;
	enum smtp_verb verb = s->esmtp ? SMTP_VERB_EHLO : SMTP_VERB_HELO;

	s->pending = NULL;
	if (r->verdict != RESTRICT_ACCEPT) {
		smtpd_log_reject(s, r->stage_name != NULL ? r->stage_name : "HELO",
		                 str_c(&r->reply), NULL);
		free(s->helo);
		s->helo = NULL;
		smtpd_reply_error(s, "%s", str_c(&r->reply));
	} else {
		smtpd_cmd_ok(s, verb);
		if (s->esmtp)
			send_ehlo(s);
		else
			smtpd_reply(s, "250 %s", s->set->myhostname);
	}
	smtpd_session_resume(s);
}

static void helo_common(struct smtpd_session *s, const struct smtp_cmd *cmd, bool esmtp)
{
	if (cmd->arg_len == 0) {
		smtpd_reply_error(s, "501 Syntax: %s hostname", esmtp ? "EHLO" : "HELO");
		return;
	}
	smtpd_transaction_reset(s);
	free(s->helo);
	s->helo = xstrndup(cmd->arg, cmd->arg_len);
	smtpd_helo_clean(s, s->helo);
	s->esmtp = esmtp;
	smtpd_request_fill(s);
	smtpd_session_wait(s);
	s->pending = restrict_check(s->rs, RESTRICT_HELO, &s->req, NULL, helo_done, s);
}

void smtpd_cmd_helo(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
	helo_common(s, cmd, false);
}

void smtpd_cmd_ehlo(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
	helo_common(s, cmd, true);
}
