/* smtp_xact.c - the mail transaction of the SMTP/LMTP client: MAIL
 * FROM with SIZE/BODY/SMTPUTF8/RET/ENVID, RCPT TO with NOTIFY/ORCPT,
 * DATA, all in one write with PIPELINING (RFC 2920) or one by one
 * without; the content (LF to CRLF, dot-stuffing, long lines broken);
 * the replies to its end (one per recipient with LMTP); RSET on a reused
 * connection.
 *
 * Used by smtp_session.c and smtp_greet.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "address/xtext.h"
#include "message/mime_downgrade.h"
#include "base/log.h"
#include "base/mem.h"

#include "smtp_session.h"

#define SMTP_CONTENT_CHUNK 65536

/* ---- the transaction ---- */

static bool has_8bit(const char *text)
{
	for (; *text != '\0'; text++)
		if ((unsigned char)*text >= 0x80)
			return true;
	return false;
}

static void command_for(const struct smtp_session *s, const struct step *st, str_t *out)
{
	const struct smtp_job *job = s->job;
	const struct queue_envelope *env = job->env;

	str_reset(out);
	if (st->kind == STEP_MAIL) {
		const char *enc = queue_file_attr(job->qf, QUEUE_ATTR_ENCODING);
		const char *utf8 = queue_file_attr(job->qf, QUEUE_ATTR_SMTPUTF8);

		str_appendf(out, "MAIL FROM:<%s>", env->sender);
		if (s->size)
			str_appendf(out, " SIZE=%llu", (unsigned long long)env->content_length);
		if (s->eightbit && enc != NULL && strcasecmp(enc, "8bitmime") == 0)
			str_append(out, " BODY=8BITMIME");
		if (s->smtputf8 && utf8 != NULL && strcmp(utf8, "yes") == 0)
			str_append(out, " SMTPUTF8");
		if (s->dsn) {
			if (env->ret != QUEUE_RET_NONE)
				str_append(out,
				           env->ret == QUEUE_RET_FULL ? " RET=FULL" : " RET=HDRS");
			if (env->envid != NULL) {
				str_append(out, " ENVID=");
				xtext_encode(env->envid, strlen(env->envid), out);
			}
		}
	} else if (st->kind == STEP_RCPT) {
		const struct smtp_rcpt *r = &job->rcpts[st->rcpt];

		str_appendf(out, "RCPT TO:<%s>", r->address);
		if (s->dsn) {
			if (r->notify != 0) {
				str_append(out, " NOTIFY=");
				if (r->notify & QUEUE_NOTIFY_NEVER) {
					str_append(out, "NEVER");
				} else {
					bool first = true;
					static const struct {
						unsigned bit;
						const char *name;
					} names[] = {{QUEUE_NOTIFY_SUCCESS, "SUCCESS"},
					             {QUEUE_NOTIFY_FAILURE, "FAILURE"},
					             {QUEUE_NOTIFY_DELAY, "DELAY"}};

					for (size_t i = 0; i < 3; i++) {
						if (r->notify & names[i].bit) {
							str_appendf(out, "%s%s", first ? "" : ",",
							            names[i].name);
							first = false;
						}
					}
				}
			}
			if (r->orcpt != NULL) {
				const char *semi = strchr(r->orcpt, ';');

				if (semi != NULL) {
					str_append(out, " ORCPT=");
					str_append_n(out, r->orcpt, (size_t)(semi - r->orcpt) + 1);
					xtext_encode(semi + 1, strlen(semi + 1), out);
				}
			} else if (!has_8bit(r->orig)) {
				str_append(out, " ORCPT=rfc822;");
				xtext_encode(r->orig, strlen(r->orig), out);
			}
		}
	} else {
		str_append(out, "DATA");
	}
}

static void send_steps(struct smtp_session *s)
{
	str_t line;

	str_init(&line);
	while (s->next_send < s->nsteps && s->steps[s->next_send].kind != STEP_BDAT &&
	       (s->pipelining || s->next_send == s->next_reply)) {
		command_for(s, &s->steps[s->next_send++], &line);
		smtp_session_send(s, str_c(&line));
	}
	str_free(&line);
}

void smtp_xact_start(struct smtp_session *s)
{
	struct smtp_job *job = s->job;
	const struct queue_envelope *env = job->env;
	const char *utf8 = queue_file_attr(job->qf, QUEUE_ATTR_SMTPUTF8);
	str_t why;

	/* SIZE: never send what the server said it refuses. */
	if (s->size_limit > 0 && env->content_length > s->size_limit) {
		str_init(&why);
		str_appendf(&why, "message size %llu exceeds size limit %llu of server %s[%s]",
		            (unsigned long long)env->content_length,
		            (unsigned long long)s->size_limit, s->host, s->addr);
		smtp_job_settle_rest(job, 'b', &(struct queue_dsn){5, 3, 4}, str_c(&why));
		str_free(&why);
		smtp_session_done(s);
		return;
	}
	/* SMTPUTF8 asked for, and an address needs it, but not offered. */
	if (utf8 != NULL && strcmp(utf8, "yes") == 0 && !s->smtputf8) {
		bool needed = has_8bit(env->sender);

		for (size_t i = 0; i < job->nrcpts && !needed; i++)
			needed = job->rcpts[i].state != SMTP_RCPT_DONE &&
			         has_8bit(job->rcpts[i].address);
		if (needed) {
			str_init(&why);
			str_appendf(&why,
			            "SMTPUTF8 is required, but was not offered by host %s[%s]",
			            s->host, s->addr);
			smtp_job_settle_rest(job, 'b', &(struct queue_dsn){5, 6, 7}, str_c(&why));
			str_free(&why);
			smtp_session_done(s);
			return;
		}
	}
	free(s->steps);
	free(s->accepted);
	s->steps = xcalloc(job->nrcpts + 2, sizeof(*s->steps));
	s->accepted = xcalloc(job->nrcpts, sizeof(*s->accepted));
	s->nsteps = s->next_send = s->next_reply = s->naccepted = s->lmtp_next = 0;
	s->mail_failed = false;
	s->too_many = false;
	s->steps[s->nsteps++] = (struct step){STEP_MAIL, 0};
	for (size_t i = 0; i < job->nrcpts; i++) {
		if (job->rcpts[i].state == SMTP_RCPT_DONE)
			continue;
		job->rcpts[i].soft = false;
		job->rcpts[i].dsn_passed = s->dsn && job->rcpts[i].notify != 0;
		s->steps[s->nsteps++] = (struct step){STEP_RCPT, i};
	}
	/* BDAT (RFC 3030) where offered: no dot-stuffing, and the server
	 * knows each chunk's size. Not with LMTP: its per-recipient replies
	 * then follow BDAT LAST, which Dovecot and Cyrus do, but DATA is
	 * what every LMTP server takes. */
	s->bdat = s->chunking && !s->agent->set.lmtp;
	s->bdat_failed = false;
	s->bdat_pending = 0;
	s->steps[s->nsteps++] = (struct step){s->bdat ? STEP_BDAT : STEP_DATA, 0};
	s->state = S_TRANSACTION;
	smtp_session_set_timeout(s, s->agent->set.mail_timeout);
	send_steps(s);
}

static void send_content(struct smtp_session *s);

static void on_content_written(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;

	(void)bev;
	if (s->state == S_CONTENT)
		send_content(s);
}

/* One content byte: dot-stuffed at a line start (DATA), lines broken
 * at smtp_line_length_limit with CRLF SPACE. */
static void append_byte(struct smtp_session *s, str_t *out, char c, unsigned limit)
{
	if (s->at_line_start && c == '.' && !s->bdat)
		str_append_c(out, '.');
	if (limit > 0 && s->line_len >= limit) {
		str_append(out, "\r\n ");
		s->line_len = 1;
	}
	str_append_c(out, c);
	s->at_line_start = false;
	s->line_len++;
}

/* The content is all out: the final dot, or BDAT's LAST chunk (with
 * the line end the content lacked, if it lacked one). */
static void content_end(struct smtp_session *s)
{
	if (s->bdat) {
		const char *last = s->at_line_start ? "BDAT 0 LAST\r\n" : "BDAT 2 LAST\r\n\r\n";

		bufferevent_write(s->bev, last, strlen(last));
		s->bdat_pending++;
	} else {
		/* The last line of the content ends with LF (cleanup); if
		 * not, end it here before the dot. */
		bufferevent_write(s->bev, s->at_line_start ? ".\r\n" : "\r\n.\r\n",
		                  s->at_line_start ? 3 : 5);
	}
	s->state = S_DOT;
	smtp_session_set_timeout(s, s->agent->set.data_done_timeout);
}

/* Queue the next part of the content; "." (or BDAT LAST) after the last. */
static void send_content(struct smtp_session *s)
{
	const struct smtp_job *job = s->job;
	const struct queue_envelope *env = job->env;
	unsigned limit = s->agent->set.line_length_limit;
	char in[SMTP_CONTENT_CHUNK];
	str_t out, why;
	ssize_t n;

	uint64_t length = s->converted != NULL ? s->converted->len : env->content_length;

	if (s->content_pos >= length) {
		content_end(s);
		return;
	}
	str_init(&why);
	if (s->converted != NULL) {
		n = (ssize_t)(length - s->content_pos < sizeof(in) ? length - s->content_pos
		                                                   : sizeof(in));
		memcpy(in, s->converted->buf + s->content_pos, (size_t)n);
	} else {
		n = queue_file_read_content(job->qf, s->content_pos, in,
		                            length - s->content_pos < sizeof(in)
		                                    ? (size_t)(length - s->content_pos)
		                                    : sizeof(in),
		                            &why);
	}
	if (n <= 0) {
		str_t msg;

		str_init(&msg);
		str_appendf(&msg, "cannot read the queue file: %s",
		            n < 0 ? str_c(&why) : "unexpected end of content");
		log_warning("%s: %s", job->queue_id, str_c(&msg));
		/* Break the session without the final dot: the server must
		 * not take a truncated message. */
		s->state = S_GREETING;
		smtp_session_fail(s, &(struct queue_dsn){4, 3, 0}, str_c(&msg), false);
		str_free(&msg);
		str_free(&why);
		return;
	}
	str_free(&why);
	str_init(&out);
	str_reserve(&out, (size_t)n + (size_t)n / 8 + 16);
	for (ssize_t i = 0; i < n; i++) {
		char c = in[i];

		/* A CR that ended the last chunk: a line end if an LF follows,
		 * else a byte of the line. */
		if (s->pending_cr) {
			s->pending_cr = false;
			if (c != '\n')
				append_byte(s, &out, '\r', limit);
		}
		if (c == '\n') {
			str_append(&out, "\r\n");
			s->at_line_start = true;
			s->line_len = 0;
			continue;
		}
		if (c == '\r') {
			if (i + 1 < n && in[i + 1] == '\n')
				continue; /* a CRLF in the queue file: one line end */
			if (i + 1 == n) {
				s->pending_cr = true;
				continue;
			}
		}
		append_byte(s, &out, c, limit);
	}
	if (s->pending_cr && s->content_pos + (uint64_t)n >= length) {
		s->pending_cr = false; /* a CR at the very end: content */
		append_byte(s, &out, '\r', limit);
	}
	s->content_pos += (uint64_t)n;
	if (s->bdat) {
		char head[40];

		(void)snprintf(head, sizeof(head), "BDAT %zu\r\n", out.len);
		bufferevent_write(s->bev, head, strlen(head));
		s->bdat_pending++;
	}
	bufferevent_write(s->bev, out.buf, out.len);
	str_free(&out);
}

/* 8-bit mail for a server without 8BITMIME: the 7-bit form, made in
 * memory (the message is at most message_size_limit). -1 when the queue
 * file cannot be read (the session fails). */
static int convert_8bit(struct smtp_session *s)
{
	const struct smtp_job *job = s->job;
	const char *enc = queue_file_attr(job->qf, QUEUE_ATTR_ENCODING);
	uint64_t len = job->env->content_length;
	str_t raw, why;
	int rc = 0;

	str_destroy(&s->converted);
	if (s->eightbit || !s->agent->set.mime_output_conversion || enc == NULL ||
	    strcasecmp(enc, "8bitmime") != 0 || len > SIZE_MAX / 4)
		return 0;
	str_init(&raw);
	str_init(&why);
	str_reserve(&raw, (size_t)len + 1);
	for (uint64_t pos = 0; pos < len;) {
		ssize_t n = queue_file_read_content(job->qf, pos, raw.buf + pos,
		                                    (size_t)(len - pos), &why);

		if (n <= 0) {
			log_warning("%s: cannot read the queue file: %s", job->queue_id,
			            n < 0 ? str_c(&why) : "unexpected end of content");
			rc = -1;
			goto out;
		}
		pos += (uint64_t)n;
	}
	raw.len = (size_t)len;
	raw.buf[raw.len] = '\0';
	if (mime_has_8bit(raw.buf, raw.len)) {
		s->converted = str_new();
		if (!mime_downgrade(raw.buf, raw.len, s->agent->set.mime_nesting_limit,
		                    s->converted))
			str_destroy(&s->converted); /* not MIME: sent as it is */
	}
out:
	str_free(&why);
	str_free(&raw);
	return rc;
}

static void start_content(struct smtp_session *s)
{
	if (convert_8bit(s) < 0) {
		s->state = S_GREETING; /* no final dot: nothing half sent */
		smtp_session_fail(s, &(struct queue_dsn){4, 3, 0}, "cannot read the queue file",
		                  false);
		return;
	}
	s->state = S_CONTENT;
	s->content_pos = 0;
	s->pending_cr = false;
	s->at_line_start = true;
	s->line_len = 0;
	smtp_session_set_timeout(s, s->agent->set.data_xfer_timeout);
	bufferevent_setcb(s->bev, smtp_session_on_read, on_content_written, smtp_session_on_event,
	                  s);
	send_content(s);
}

/* A reply to MAIL, RCPT or DATA. */
void smtp_xact_on_reply(struct smtp_session *s)
{
	struct smtp_job *job = s->job;
	const struct step *st = &s->steps[s->next_reply++];
	str_t why;

	switch (st->kind) {
	case STEP_MAIL:
		if (s->code / 100 != 2) {
			struct queue_dsn dsn = smtp_reply_dsn(s->code, smtp_session_reply_text(s));

			s->mail_failed = true;
			str_init(&why);
			smtp_session_said(s, "MAIL FROM", &why);
			for (size_t i = 1; i + 1 < s->nsteps; i++)
				smtp_session_rcpt_fail(s, s->steps[i].rcpt, "MAIL FROM");
			if (dsn.klass == 4) {
				str_set(&job->last_error, str_c(&why));
				job->last_dsn = dsn;
			}
			str_free(&why);
		}
		smtp_session_set_timeout(s, s->agent->set.rcpt_timeout);
		break;
	case STEP_RCPT:
		if (s->mail_failed)
			;
		else if (s->code / 100 == 2)
			s->accepted[s->naccepted++] = st->rcpt;
		else
			smtp_session_rcpt_fail(s, st->rcpt, "RCPT TO");
		if (s->next_reply + 1 == s->nsteps)
			smtp_session_set_timeout(s, s->agent->set.data_init_timeout);
		if (s->bdat && s->next_reply + 1 == s->nsteps) {
			/* Every RCPT answered: the chunks go if anyone is
			 * left to receive them. */
			if (s->naccepted == 0 || s->mail_failed)
				smtp_session_done(s);
			else
				start_content(s);
			return;
		}
		break;
	case STEP_BDAT:
		break; /* never sent: no reply comes for it */
	case STEP_DATA:
		if (s->code == 354 && (s->naccepted == 0 || s->mail_failed)) {
			/* Pipelined DATA accepted although nobody can receive
			 * the mail: an empty message closes it. */
			s->state = S_DOT_EMPTY;
			smtp_session_send(s, ".");
			return;
		}
		if (s->naccepted == 0 || s->mail_failed) {
			smtp_session_done(s);
			return;
		}
		if (s->code != 354) {
			for (size_t i = 0; i < s->naccepted; i++)
				smtp_session_rcpt_fail(s, s->accepted[i], "DATA");
			smtp_session_done(s);
			return;
		}
		start_content(s);
		return;
	}
	/* Without PIPELINING, one command per reply; stop early when
	 * nothing can come of the rest. */
	if (!s->pipelining) {
		if (s->mail_failed ||
		    (s->next_reply + 1 == s->nsteps && s->naccepted == 0 && !s->bdat)) {
			smtp_session_done(s);
			return;
		}
		send_steps(s);
	}
}

/* A reply to the end of the content (LMTP: one per accepted recipient). */
void smtp_xact_on_dot(struct smtp_session *s)
{
	struct smtp_job *job = s->job;
	size_t first = s->lmtp_next, last = s->naccepted;

	if (s->agent->set.lmtp)
		last = first + 1;
	for (size_t i = first; i < last && i < s->naccepted; i++) {
		size_t k = s->accepted[i];

		if (s->code / 100 == 2) {
			struct queue_dsn dsn = smtp_reply_dsn(s->code, smtp_session_reply_text(s));

			smtp_rcpt_set(job, &job->rcpts[k], 's', &dsn, str_c(&s->reply));
		} else
			smtp_session_rcpt_fail(s, k, s->bdat ? "BDAT" : "end of DATA");
	}
	s->lmtp_next = last;
	if (s->lmtp_next < s->naccepted)
		return;
	bufferevent_setcb(s->bev, smtp_session_on_read, NULL, smtp_session_on_event, s);
	smtp_session_done(s);
}

void smtp_xact_on_bdat(struct smtp_session *s)
{
	if (s->bdat_pending > 0)
		s->bdat_pending--;
	if (s->code / 100 != 2 && !s->bdat_failed) {
		/* A refused chunk refuses the message: stop sending, wait
		 * for the replies still owed, then report this one. */
		s->bdat_failed = true;
		s->bdat_fail_code = s->code;
		str_set(&s->bdat_fail_reply, str_c(&s->reply));
		if (s->state == S_CONTENT)
			s->state = S_DOT;
	}
	if (s->state != S_DOT || s->bdat_pending > 0)
		return;
	if (s->bdat_failed) {
		s->code = s->bdat_fail_code;
		str_set(&s->reply, str_c(&s->bdat_fail_reply));
		for (size_t i = 0; i < s->naccepted; i++)
			smtp_session_rcpt_fail(s, s->accepted[i], "BDAT");
		s->failed = true; /* the server holds half a message: QUIT */
		bufferevent_setcb(s->bev, smtp_session_on_read, NULL, smtp_session_on_event, s);
		smtp_session_done(s);
		return;
	}
	smtp_xact_on_dot(s);
}

void smtp_xact_on_rset(struct smtp_session *s)
{
	if (s->code / 100 != 2) {
		str_t why;

		str_init(&why);
		smtp_session_said(s, "RSET", &why);
		smtp_session_fail(s, &(struct queue_dsn){4, 4, 2}, str_c(&why), false);
		str_free(&why);
		return;
	}
	smtp_greet_start_xforward(s);
}
