/* smtpd_mail.c - MAIL FROM and its ESMTP parameters.
 *
 * Called from the dispatch table. The address is parsed by
 * address_parse_path() (its replies are sent unchanged); SIZE, BODY,
 * SMTPUTF8, RET, ENVID and AUTH are checked here, then the queue's free
 * space (queue_minfree, 452 4.3.1 like Postfix); then
 * smtpd_sender_restrictions run asynchronously and the reply waits.
 *
 * SECURITY: the argument is client text. The address parser bounds every
 * part; ENVID is xtext-decoded into a growable string and kept only for
 * the queue file and DSNs, so, as Postfix requires, the decoded value must
 * be printable ASCII: "ENVID=x+0D+0AX-Injected:+20y" is a 501 5.5.4.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/parse.h"
#include "base/utf8.h"
#include "address/address.h"
#include "address/xtext.h"
#include "queue/queue_dir.h"
#include "queue/queue_file.h"
#include "smtpd.h"

/* A decoded ENVID: printable ASCII only (RFC 3461 4.4 allows any
 * xtext, but the value goes into DSN headers; Postfix refuses the rest). */
static bool envid_printable(const str_t *id)
{
	for (size_t i = 0; i < id->len; i++)
		if ((unsigned char)id->buf[i] >= 0x80)
			return false;
	return text_has_no_control(id->buf, id->len);
}

/* Check the parameters; -1 after sending the error reply. */
static int mail_params(struct smtpd_session *s, const struct mail_path *path)
{
	for (size_t i = 0; i < path->nparams; i++) {
		const struct esmtp_param *p = &path->params[i];
		const char *v = p->value != NULL ? p->value : "";

		if (strcmp(p->key, "SIZE") == 0 && p->value != NULL) {
			uint64_t size;
			size_t digits = strspn(v, "0123456789");

			if (digits == 0 || v[digits] != '\0') {
				smtpd_reply_error(s, "501 5.5.4 Bad message size syntax");
				return -1;
			}
			/* Postfix: a size too large to count is too large. */
			if (parse_uint64(v, 0, UINT64_MAX, &size) < 0)
				size = UINT64_MAX;
			if (s->set->size_limit > 0 && size > s->set->size_limit) {
				smtpd_reply_error(s, "552 5.3.4 Message size exceeds fixed limit");
				return -1;
			}
			s->size_declared = size;
		} else if (strcmp(p->key, "BODY") == 0 && p->value != NULL &&
		           (strcasecmp(v, "8BITMIME") == 0 || strcasecmp(v, "7BIT") == 0)) {
			/* Postfix does not offer BINARYMIME; neither does postern.
			 * Any other value is an unsupported option (555). The
			 * declaration travels in the queue file: the smtp client
			 * passes it on, or converts to 7 bit for a server without
			 * 8BITMIME. */
			s->body_8bitmime = strcasecmp(v, "8BITMIME") == 0;
		} else if (strcmp(p->key, "SMTPUTF8") == 0 && s->set->smtputf8 &&
		           p->value == NULL) {
			s->smtputf8 = true;
		} else if (strcmp(p->key, "RET") == 0) {
			if (s->ret != 0) {
				smtpd_reply_error(s, "501 5.5.4 Duplicate RET parameter");
				return -1;
			}
			if (strcasecmp(v, "FULL") == 0)
				s->ret = QUEUE_RET_FULL;
			else if (strcasecmp(v, "HDRS") == 0)
				s->ret = QUEUE_RET_HDRS;
			else {
				smtpd_reply_error(s, "501 5.5.4 Bad RET parameter syntax");
				return -1;
			}
		} else if (strcmp(p->key, "ENVID") == 0) {
			str_t id;
			const char *why;

			str_init(&id);
			if (s->envid != NULL || p->value == NULL ||
			    xtext_decode(v, strlen(v), &id, &why) < 0 || id.len == 0 ||
			    !envid_printable(&id)) {
				str_free(&id);
				smtpd_reply_error(s, "501 5.5.4 Bad ENVID parameter syntax");
				return -1;
			}
			s->envid = str_steal(&id);
			str_free(&id);
		} else if (strcmp(p->key, "AUTH") == 0) {
			if (smtpd_auth_mail_param(s, p->value) < 0)
				return -1;
		} else {
			/* Postfix names KEY=VALUE (its text, not its code, differs
			 * from RFC 5321's 555 5.5.4 for a known key with a bad value). */
			if (p->value != NULL)
				smtpd_reply_error(s, "555 5.5.4 Unsupported option: %s=%s", p->key,
				                  v);
			else
				smtpd_reply_error(s, "555 5.5.4 Unsupported option: %s", p->key);
			return -1;
		}
	}
	return 0;
}

/* Postfix's smtpd_check_queue(): refuse new mail while the queue file
 * system is short of space (queue_dir_space_ok()), so that a full disk
 * defers senders instead of failing half-written queue files. A file
 * system that cannot be measured does not stop mail (cleanup's writes
 * still fail safely). -1 after sending the 452 reply. */
static int queue_space(struct smtpd_session *s)
{
	uint64_t avail;
	const char *reply = "452 4.3.1 Insufficient system storage";

	if (queue_dir_space_ok(s->lis->server->qd, s->set->queue_minfree, s->set->size_limit,
	                       &avail) != 0)
		return 0;
	if (avail <= s->set->queue_minfree)
		log_warning("not enough free space in mail queue: %llu bytes < queue_minfree",
		            (unsigned long long)avail);
	else
		log_warning("not enough free space in mail queue: %llu bytes < 1.5*message "
		            "size limit",
		            (unsigned long long)avail);
	smtpd_log_reject(s, "MAIL", reply, NULL);
	smtpd_reply_error(s, "%s", reply);
	return -1;
}

static void mail_done(const struct restrict_result *r, void *ctx)
{
	struct smtpd_session *s = ctx;

	s->pending = NULL;
	if (r->verdict != RESTRICT_ACCEPT) {
		smtpd_log_reject(s, r->stage_name != NULL ? r->stage_name : "MAIL",
		                 str_c(&r->reply), NULL);
		smtpd_transaction_reset(s);
		smtpd_xforward_reset(s); /* Postfix's mail_reset() */
		smtpd_reply_error(s, "%s", str_c(&r->reply));
	} else {
		smtpd_cmd_ok(s, SMTP_VERB_MAIL);
		smtpd_reply(s, "250 2.1.0 Ok");
	}
	smtpd_session_resume(s);
}

void smtpd_cmd_mail(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
	struct mail_path *path;
	struct address_error err;
	unsigned flags = 0;
	str_t addr;

	if (s->helo == NULL && s->set->helo_required) {
		smtpd_reply_error(s, "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if (s->bdat_used) {
		smtpd_reply_error(s, "503 5.5.1 Error: MAIL after BDAT");
		return;
	}
	if (s->in_mail) {
		smtpd_reply_error(s, "503 5.5.1 Error: nested MAIL command");
		return;
	}
	if (s->set->smtputf8)
		flags |= ADDRESS_PARSE_SMTPUTF8;
	if (s->set->smtputf8 && !s->set->strict_smtputf8)
		flags |= ADDRESS_PARSE_UTF8_UNDECLARED;
	if (s->set->sloppy_envelopes)
		flags |= ADDRESS_PARSE_SLOPPY;
	if (address_parse_path(cmd->arg, cmd->arg_len, ADDRESS_SENDER, flags, &path, &err) < 0) {
		str_init(&addr);
		address_error_reply(&err, &addr);
		smtpd_reply_error(s, "%s", str_c(&addr));
		str_free(&addr);
		return;
	}
	/* "<user@>": the parser keeps Postfix's null domain for the
	 * resolver; on the wire Postfix refuses it. */
	if (path->addr.domain != NULL && path->addr.domain[0] == '\0') {
		mail_path_destroy(&path);
		smtpd_reply_error(s, "501 5.1.7 Bad sender address syntax");
		return;
	}
	smtpd_transaction_reset(s);
	if (mail_params(s, path) < 0) {
		smtpd_transaction_reset(s);
		mail_path_destroy(&path);
		return;
	}
	if (queue_space(s) < 0) {
		smtpd_transaction_reset(s);
		smtpd_xforward_reset(s); /* Postfix's mail_reset() */
		mail_path_destroy(&path);
		return;
	}
	str_init(&addr);
	address_internal_string(&path->addr, &addr);
	s->sender = str_steal(&addr);
	str_free(&addr);
	mail_path_destroy(&path);
	s->in_mail = true;
	smtpd_request_fill(s);
	smtpd_session_wait(s);
	s->pending = restrict_check(s->rs, RESTRICT_MAIL, &s->req, &s->actions, mail_done, s);
}
