/* smtpd_rcpt.c - RCPT TO, its DSN parameters, and the queue file.
 *
 * Called from the dispatch table. The address is parsed by
 * address_parse_path(); NOTIFY and ORCPT are checked here; the relay and
 * recipient restrictions run asynchronously, then the over-quota check
 * (smtpd_quota.c). The first accepted recipient
 * opens the queue file through cleanup (the queue ID exists from then
 * on: "ID: client=name[addr]"); a queue that cannot be written is a 4xx
 * for this recipient, never a 5xx.
 *
 * SECURITY: the argument is client text; see smtpd_mail.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "base/mem.h"
#include "address/address.h"
#include "address/xtext.h"
#include "queue/queue_file.h"
#include "smtpd.h"

/* NOTIFY=NEVER or a comma list of SUCCESS, FAILURE, DELAY (RFC 3461 4.1);
 * empty elements are skipped, as Postfix does. */
static int parse_notify(const char *v, unsigned *notify_r)
{
	unsigned n = 0;
	const char *p = v;

	while (*p != '\0') {
		const char *end = strchr(p, ',');
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);

		if (len == 0)
			; /* "SUCCESS,,FAILURE" */
		else if (len == 5 && strncasecmp(p, "NEVER", 5) == 0)
			n |= QUEUE_NOTIFY_NEVER;
		else if (len == 7 && strncasecmp(p, "SUCCESS", 7) == 0)
			n |= QUEUE_NOTIFY_SUCCESS;
		else if (len == 7 && strncasecmp(p, "FAILURE", 7) == 0)
			n |= QUEUE_NOTIFY_FAILURE;
		else if (len == 5 && strncasecmp(p, "DELAY", 5) == 0)
			n |= QUEUE_NOTIFY_DELAY;
		else
			return -1;
		if (end == NULL)
			break;
		p = end + 1;
	}
	if (n == 0 || ((n & QUEUE_NOTIFY_NEVER) != 0 && n != QUEUE_NOTIFY_NEVER))
		return -1;
	*notify_r = n;
	return 0;
}

static int rcpt_params(struct smtpd_session *s, const struct mail_path *path)
{
	for (size_t i = 0; i < path->nparams; i++) {
		const struct esmtp_param *p = &path->params[i];
		const char *v = p->value != NULL ? p->value : "";

		if (strcmp(p->key, "NOTIFY") == 0) {
			if (s->cur_notify != 0 || parse_notify(v, &s->cur_notify) < 0) {
				smtpd_reply_error(s,
				                  "501 5.5.4 Error: Bad NOTIFY parameter syntax");
				return -1;
			}
		} else if (strcmp(p->key, "ORCPT") == 0) {
			str_t type, addr;
			const char *why;

			str_init(&type);
			str_init(&addr);
			if (s->cur_orcpt != NULL ||
			    address_orcpt_parse(v, s->smtputf8, &type, &addr, &why) < 0) {
				str_free(&type);
				str_free(&addr);
				smtpd_reply_error(s, "501 5.5.4 Bad ORCPT parameter syntax");
				return -1;
			}
			str_append_c(&type, ';');
			str_append(&type, str_c(&addr));
			s->cur_orcpt = str_steal(&type);
			str_free(&type);
			str_free(&addr);
		} else {
			smtpd_reply_error(s, "555 5.5.4 Unsupported option: %s", p->key);
			return -1;
		}
	}
	return 0;
}

static void rcpt_done(const struct restrict_result *r, void *ctx)
{
	struct smtpd_session *s = ctx;

	s->pending = NULL;
	if (r->verdict != RESTRICT_ACCEPT) {
		smtpd_log_reject(s, r->stage_name != NULL ? r->stage_name : "RCPT",
		                 str_c(&r->reply), s->cur_rcpt);
		smtpd_reply_error(s, "%s", str_c(&r->reply));
		smtpd_session_resume(s);
		return;
	}
	smtpd_quota_check(s);
}

void smtpd_rcpt_accept(struct smtpd_session *s)
{
	if (s->cleanup == NULL) {
		str_t error, orig;

		str_init(&error);
		if (cleanup_open(s->lis->cleanup, s->lis->server->qd, 0, &s->cleanup, &error) < 0) {
			log_warning("%s[%s]: cannot open a queue file: %s", s->name, s->addr,
			            str_c(&error));
			smtpd_reply(s, "%s",
			            error.len > 0 && error.buf[0] == '4'
			                    ? str_c(&error)
			                    : "451 4.3.0 Error: queue file write error");
			str_free(&error);
			smtpd_session_resume(s);
			return;
		}
		str_free(&error);
		cleanup_sender(s->cleanup, s->sender, s->envid, (enum queue_dsn_ret)s->ret);
		cleanup_attr(s->cleanup, QUEUE_ATTR_CLIENT_ADDRESS, s->addr);
		cleanup_attr(s->cleanup, QUEUE_ATTR_CLIENT_NAME, s->name);
		if (s->helo != NULL)
			cleanup_attr(s->cleanup, QUEUE_ATTR_HELO_NAME, s->helo);
		cleanup_attr(s->cleanup, QUEUE_ATTR_PROTOCOL, s->esmtp ? "ESMTP" : "SMTP");
		if (!s->port_unknown) { /* XCLIENT PORT=[UNAVAILABLE] */
			char port[16];

			snprintf(port, sizeof(port), "%u", s->port);
			cleanup_attr(s->cleanup, QUEUE_ATTR_CLIENT_PORT, port);
		}
		cleanup_attr(s->cleanup, QUEUE_ATTR_SERVICE, s->lis->service);
		if (s->smtputf8)
			cleanup_attr(s->cleanup, QUEUE_ATTR_SMTPUTF8, "yes");
		if (s->body_8bitmime)
			cleanup_attr(s->cleanup, QUEUE_ATTR_ENCODING, "8bitmime");
		/* XCLIENT LOGIN and XFORWARD values (smtpd_xclient.c): their
		 * attributes, and what Postfix adds to this log line. */
		str_init(&orig);
		smtpd_auth_queue(s, &orig);
		smtpd_xclient_queue(s, &orig);
		log_info("%s: client=%s[%s]%s", cleanup_id(s->cleanup), s->name, s->addr,
		         str_c(&orig));
		str_free(&orig);
	}
	cleanup_rcpt(s->cleanup, s->cur_rcpt, s->cur_orcpt, s->cur_notify);
	if (s->nrcpt == 0)
		s->first_rcpt = xstrdup(s->cur_rcpt);
	s->nrcpt++;
	smtpd_cmd_ok(s, SMTP_VERB_RCPT);
	smtpd_reply(s, "250 2.1.5 Ok");
	smtpd_session_resume(s);
}

void smtpd_cmd_rcpt(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
	struct mail_path *path;
	struct address_error err;
	unsigned flags = 0;
	str_t addr;

	if (s->bdat_used) {
		smtpd_reply_error(s, "503 5.5.1 Error: RCPT after BDAT");
		return;
	}
	if (!s->in_mail) {
		smtpd_reply_error(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (s->nrcpt >= (size_t)s->set->rcpt_limit) {
		smtpd_reply_error(s, "452 4.5.3 Error: too many recipients");
		return;
	}
	if (s->smtputf8 || (s->set->smtputf8 && !s->set->strict_smtputf8))
		flags |= ADDRESS_PARSE_SMTPUTF8;
	if (s->set->sloppy_envelopes)
		flags |= ADDRESS_PARSE_SLOPPY;
	if (address_parse_path(cmd->arg, cmd->arg_len, ADDRESS_RECIPIENT, flags, &path, &err) < 0) {
		str_init(&addr);
		address_error_reply(&err, &addr);
		smtpd_reply_error(s, "%s", str_c(&addr));
		str_free(&addr);
		return;
	}
	if (path->addr.domain != NULL && path->addr.domain[0] == '\0') {
		mail_path_destroy(&path); /* "<user@>", as in smtpd_mail.c */
		smtpd_reply_error(s, "501 5.1.3 Bad recipient address syntax");
		return;
	}
	free(s->cur_rcpt);
	s->cur_rcpt = NULL;
	free(s->cur_orcpt);
	s->cur_orcpt = NULL;
	s->cur_notify = 0;
	if (rcpt_params(s, path) < 0) {
		mail_path_destroy(&path);
		return;
	}
	str_init(&addr);
	address_internal_string(&path->addr, &addr);
	s->cur_rcpt = str_steal(&addr);
	str_free(&addr);
	mail_path_destroy(&path);
	smtpd_request_fill(s);
	smtpd_session_wait(s);
	/* RFC 5321 4.5.1: <postmaster> without a domain is always accepted;
	 * Postfix does not run the restrictions for it either. */
	if (strcasecmp(s->cur_rcpt, "postmaster") == 0) {
		smtpd_quota_check(s);
		return;
	}
	s->pending = restrict_check(s->rs, RESTRICT_RCPT, &s->req, &s->actions, rcpt_done, s);
}
