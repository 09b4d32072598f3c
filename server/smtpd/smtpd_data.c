/* smtpd_data.c - DATA and BDAT: the message content on its way to cleanup.
 *
 * Called from the dispatch table (smtpd_cmd_data, smtpd_cmd_bdat) and from
 * the session's input loop while a message is being received
 * (smtpd_data_input, smtpd_bdat_input). Content goes line by line to
 * cleanup_line(), dot-unstuffed for DATA, split into pieces of at most
 * line_length_limit bytes (more = true on all but the last). Limits
 * (message_size_limit, hopcount_limit) are counted while streaming; once
 * one is exceeded the rest is read and dropped and the error is the reply
 * at the end. Only cleanup's CLEANUP_QUEUED or CLEANUP_DISCARDED gives a
 * 250; everything else removes the queue file.
 *
 * SECURITY: SMTP smuggling (smtpd_forbid_bare_newline, Postfix 3.7.11's
 * values). With normalize (or yes) and reject, DATA ends only at
 * CRLF.CRLF: "\n.\n", "\r\n.\n" and "\n.\r\n" are content, so they can
 * never end one message and start another that a different server would
 * see. With reject (postern's default) a bare LF, and a bare CR too
 * (postern is stricter there than Postfix), makes the whole message a
 * "550 5.5.2 ... Error: bare <LF> received" at its end, nothing queued;
 * the session goes on, as in Postfix. With no, a bare LF ends a line and
 * ".\n" ends DATA, as in Postfix. Memory is bounded: at most
 * line_length_limit bytes of a line are held at once.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/parse.h"
#include "smtpd.h"

/* smtpd_forbid_bare_newline = reject: the message is refused at its end
 * (the first content error is the one reported). */
static void content_bare(struct smtpd_session *s, enum smtpd_content_err err)
{
	if (s->content_err == SMTPD_CONTENT_OK)
		s->content_err = err;
}

/* One line or piece of content (no line ending, dot already removed). */
static void content_line(struct smtpd_session *s, const char *line, size_t len, bool more)
{
	if (!s->in_continued_line && s->in_header) {
		if (len == 0)
			s->in_header = false;
		else if (len >= 9 && strncasecmp(line, "Received:", 9) == 0)
			s->hops++;
	}
	s->data_size += len + (more ? 0 : 2);
	if (s->content_err == SMTPD_CONTENT_OK) {
		if (s->set->size_limit > 0 && s->data_size > s->set->size_limit)
			s->content_err = SMTPD_CONTENT_TOO_BIG;
		else if (s->hops > s->set->hop_limit)
			s->content_err = SMTPD_CONTENT_HOPS;
	}
	if (s->content_err == SMTPD_CONTENT_OK && s->cleanup != NULL)
		cleanup_line(s->cleanup, line, len, more);
	s->in_continued_line = more;
}

static void received_header(struct smtpd_session *s)
{
	char date[80];
	time_t now = time(NULL);
	struct tm tm;
	str_t h;

	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z (%Z)", &tm);
	str_init(&h);
	str_appendf(&h, "Received: from %s (%s [%s])", s->helo != NULL ? s->helo : s->addr, s->name,
	            s->addr);
	/* Postfix's order: the TLS comment, then the login. */
	smtpd_tls_received(s, &h);
	if (s->sasl_username != NULL && s->lis->sasl_auth_header)
		str_appendf(&h, "\n\t(Authenticated sender: %s)", s->sasl_username);
	/* RFC 3848: "S" for TLS, "A" for an authenticated client (AUTH, or
	 * XCLIENT LOGIN=). */
	str_appendf(&h, "\n\tby %s (%s) with %s%s%s id %s", s->set->myhostname, s->set->mail_name,
	            s->smtputf8 ? "UTF8SMTP" : (s->esmtp ? "ESMTP" : "SMTP"),
	            s->tls != NULL ? "S" : "",
	            s->sasl_username != NULL || smtpd_xclient_login(s) != NULL ? "A" : "",
	            cleanup_id(s->cleanup));
	if (s->nrcpt == 1)
		str_appendf(&h, "\n\tfor <%s>; %s", s->first_rcpt, date);
	else
		str_appendf(&h, ";\n\t%s", date);
	cleanup_prepend_header(s->cleanup, str_c(&h));
	str_free(&h);
}

/* Hand the restriction actions to cleanup. Repeatable: every call sets
 * the same flags (PREPEND lines only once, from start_content). */
static void apply_actions(struct smtpd_session *s)
{
	struct restrict_actions *a = &s->actions;

	if (s->cleanup == NULL)
		return;
	if (a->hold)
		cleanup_hold(s->cleanup, str_c(&a->hold_reason));
	if (a->discard)
		cleanup_discard(s->cleanup, str_c(&a->discard_reason));
	if (a->filter.len > 0)
		cleanup_filter(s->cleanup, str_c(&a->filter));
	if (a->redirect.len > 0)
		cleanup_redirect(s->cleanup, str_c(&a->redirect));
}

static void start_content(struct smtpd_session *s)
{
	received_header(s);
	for (size_t i = 0; i < s->actions.prepend.n; i++)
		cleanup_prepend_header(s->cleanup, s->actions.prepend.v[i]);
	apply_actions(s);
	s->in_header = true;
	s->in_continued_line = false;
	s->prev_line_crlf = true;
	s->data_size = 0;
	s->hops = 0;
	s->content_err = SMTPD_CONTENT_OK;
}

static void eod_done(const struct restrict_result *r, void *ctx)
{
	struct smtpd_session *s = ctx;
	enum smtp_verb verb = s->bdat_used ? SMTP_VERB_BDAT : SMTP_VERB_DATA;
	struct cleanup_result res;

	s->pending = NULL;
	if (r->verdict != RESTRICT_ACCEPT) {
		smtpd_log_reject(s, "END-OF-MESSAGE", str_c(&r->reply), NULL);
		smtpd_transaction_reset(s);
		smtpd_reply_error(s, "%s", str_c(&r->reply));
		smtpd_session_resume(s);
		return;
	}
	apply_actions(s);
	cleanup_result_init(&res);
	cleanup_finish(&s->cleanup, &res);
	if (res.status == CLEANUP_QUEUED || res.status == CLEANUP_DISCARDED) {
		/* Postfix: the error limits count errors made without
		 * delivering mail; a message taken starts the count again. */
		s->errors = 0;
		smtpd_cmd_ok(s, verb);
		smtpd_reply(s, "%s", str_c(&res.reply));
	} else {
		smtpd_reply_error(s, "%s", str_c(&res.reply));
	}
	cleanup_result_free(&res);
	smtpd_transaction_reset(s);
	smtpd_session_resume(s);
}

/* The content is complete: limits, end-of-data restrictions, commit. */
static void end_of_content(struct smtpd_session *s)
{
	char reply[256];

	s->state = SMTPD_ST_CMD;
	reply[0] = '\0';
	if (s->content_err == SMTPD_CONTENT_TOO_BIG)
		snprintf(reply, sizeof(reply), "552 5.3.4 Message size exceeds fixed limit");
	else if (s->content_err == SMTPD_CONTENT_HOPS)
		snprintf(reply, sizeof(reply), "554 5.4.0 Error: too many hops");
	else if (s->content_err == SMTPD_CONTENT_BARE_LF || s->content_err == SMTPD_CONTENT_BARE_CR)
		snprintf(reply, sizeof(reply), "%d 5.5.2 %s Error: bare <%s> received",
		         s->set->bare_newline_code, s->set->myhostname,
		         s->content_err == SMTPD_CONTENT_BARE_LF ? "LF" : "CR");
	if (reply[0] != '\0') {
		smtpd_log_reject(s, "END-OF-MESSAGE", reply, NULL);
		smtpd_transaction_reset(s);
		smtpd_reply_error(s, "%s", reply);
		return;
	}
	smtpd_request_fill(s);
	smtpd_session_wait(s);
	s->pending = restrict_check(s->rs, RESTRICT_END_OF_DATA, &s->req, &s->actions, eod_done, s);
}

/* ---- DATA ---- */

static void data_done(const struct restrict_result *r, void *ctx)
{
	struct smtpd_session *s = ctx;

	s->pending = NULL;
	if (r->verdict != RESTRICT_ACCEPT) {
		smtpd_log_reject(s, "DATA", str_c(&r->reply), NULL);
		smtpd_reply_error(s, "%s", str_c(&r->reply));
		smtpd_session_resume(s);
		return;
	}
	start_content(s);
	s->state = SMTPD_ST_DATA;
	smtpd_reply(s, "354 End data with <CR><LF>.<CR><LF>");
	smtpd_session_resume(s);
}

void smtpd_cmd_data(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
	/* Postfix's order: the transaction first, then the syntax. */
	if (!s->in_mail) {
		smtpd_reply_error(s, "503 5.5.1 Error: need RCPT command");
		return;
	}
	if (s->nrcpt == 0) {
		smtpd_reply_error(s, "554 5.5.1 Error: no valid recipients");
		return;
	}
	if (cmd->arg_len > 0) {
		smtpd_reply_error(s, "501 5.5.4 Syntax: DATA");
		return;
	}
	if (s->bdat_used) {
		smtpd_reply_error(s, "503 5.5.1 Error: DATA after BDAT");
		return;
	}
	/* Why refuse pipelined input after DATA: RFC 2920 3.1 makes DATA the
   * last command of a batch; content sent before the 354 is a client
   * that does not wait (or an attempt to confuse a proxy). Postfix logs
   * "improper command pipelining after DATA" and goes on; we do too. */
	if (evbuffer_get_length(bufferevent_get_input(s->bev)) > 0)
		log_info("improper command pipelining after DATA from %s[%s]", s->name, s->addr);
	smtpd_request_fill(s);
	smtpd_session_wait(s);
	s->pending = restrict_check(s->rs, RESTRICT_DATA, &s->req, &s->actions, data_done, s);
}

bool smtpd_data_input(struct smtpd_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t limit = s->set->line_limit;
	struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
	size_t avail = evbuffer_get_length(in), take;
	bool more = false, crlf = false;
	enum smtpd_bare_newline mode = s->bare_mode;
	char *line;
	size_t len;

	if (eol.pos < 0 || (size_t)eol.pos > limit) {
		if (eol.pos < 0 && avail < limit)
			return false;
		/* A piece of a long line. Leave a final CR for the next round:
		 * it may be the start of CRLF. */
		take = limit;
		str_reset(&s->line);
		str_reserve(&s->line, take);
		evbuffer_copyout(in, s->line.buf, take);
		if (s->line.buf[take - 1] == '\r')
			take--;
		if (take == 0) {
			/* line_length_limit 1 and a CR: take it with what follows. */
			return false;
		}
		more = true;
	} else {
		take = (size_t)eol.pos + 1;
		str_reset(&s->line);
		str_reserve(&s->line, take);
	}
	evbuffer_remove(in, s->line.buf, take);
	s->line.len = take;
	s->line.buf[take] = '\0';
	line = s->line.buf;
	len = take;
	if (!more) {
		len--; /* the LF */
		crlf = len > 0 && line[len - 1] == '\r';
		if (crlf)
			len--;
		else if (mode == SMTPD_BARE_REJECT)
			content_bare(s, SMTPD_CONTENT_BARE_LF);
	}
	if (mode == SMTPD_BARE_REJECT && memchr(line, '\r', len) != NULL)
		content_bare(s, SMTPD_CONTENT_BARE_CR);
	/* The end: ".", and under normalize/reject only as CRLF.CRLF. */
	if (!s->in_continued_line && !more && len == 1 && line[0] == '.' &&
	    (mode == SMTPD_BARE_NO || (crlf && s->prev_line_crlf))) {
		end_of_content(s);
		return true;
	}
	if (!more)
		s->prev_line_crlf = crlf;
	if (!s->in_continued_line && len > 0 && line[0] == '.') {
		line++;
		len--;
	}
	content_line(s, line, len, more);
	return true;
}

/* ---- BDAT (RFC 3030) ---- */

/* Feed chunk bytes to the line splitter: complete lines go to cleanup,
 * the rest waits in s->bdat_line (at most line_length_limit bytes). */
static void bdat_feed(struct smtpd_session *s, const char *p, size_t n)
{
	size_t limit = s->set->line_limit;
	bool reject = s->bare_mode == SMTPD_BARE_REJECT;

	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		str_t *l = &s->bdat_line;

		if (c == '\n') {
			size_t len = l->len;

			if (len > 0 && l->buf[len - 1] == '\r')
				len--;
			else if (reject)
				content_bare(s, SMTPD_CONTENT_BARE_LF);
			if (reject && memchr(l->buf, '\r', len) != NULL)
				content_bare(s, SMTPD_CONTENT_BARE_CR);
			content_line(s, l->buf, len, false);
			str_reset(l);
			continue;
		}
		str_append_c(l, c);
		if (l->len > limit) {
			/* Keep a trailing CR for the next round (maybe CRLF). */
			size_t keep = l->buf[l->len - 1] == '\r' ? 1 : 0;
			size_t out = l->len - keep;

			if (reject && memchr(l->buf, '\r', out) != NULL)
				content_bare(s, SMTPD_CONTENT_BARE_CR);
			content_line(s, l->buf, out, true);
			memmove(l->buf, l->buf + out, keep);
			str_truncate(l, keep);
		}
	}
}

static void bdat_chunk_done(struct smtpd_session *s)
{
	s->state = SMTPD_ST_CMD;
	if (s->bdat_discard) {
		/* The sequence stays open after a refused chunk (MAIL, RCPT
		 * and DATA are refused "after BDAT") until its LAST chunk. */
		s->bdat_discard = false;
		if (s->bdat_last)
			smtpd_transaction_reset(s);
		return;
	}
	if (!s->bdat_last) {
		smtpd_cmd_ok(s, SMTP_VERB_BDAT);
		smtpd_reply(s, "250 2.0.0 Ok: %llu bytes", (unsigned long long)s->bdat_chunk);
		return;
	}
	if (s->bdat_line.len > 0) {
		/* A message that does not end in CRLF: its last line. */
		if (s->bare_mode == SMTPD_BARE_REJECT &&
		    memchr(s->bdat_line.buf, '\r', s->bdat_line.len) != NULL)
			content_bare(s, SMTPD_CONTENT_BARE_CR);
		content_line(s, s->bdat_line.buf, s->bdat_line.len, false);
		str_reset(&s->bdat_line);
	}
	end_of_content(s);
}

bool smtpd_bdat_input(struct smtpd_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t avail = evbuffer_get_length(in);

	while (s->bdat_remaining > 0 && avail > 0) {
		size_t n = avail;
		unsigned char *p;

		/* At most 64 KiB per round, and never past the chunk. */
		if (n > 65536)
			n = 65536;
		if ((uint64_t)n > s->bdat_remaining)
			n = (size_t)s->bdat_remaining;
		p = evbuffer_pullup(in, (ev_ssize_t)n);
		if (!s->bdat_discard)
			bdat_feed(s, (const char *)p, n);
		evbuffer_drain(in, n);
		s->bdat_remaining -= n;
		avail -= n;
	}
	if (s->bdat_remaining > 0)
		return false;
	bdat_chunk_done(s);
	return s->state != SMTPD_ST_CLOSING;
}

void smtpd_cmd_bdat(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
	size_t count_len = 0, rest;
	char *count;
	uint64_t n;
	bool last = false;

	/* "BDAT" SP chunk-size [SP "LAST"] (RFC 3030 2). */
	while (count_len < cmd->arg_len && cmd->arg[count_len] != ' ')
		count_len++;
	count = xstrndup(cmd->arg, count_len);
	rest = count_len;
	while (rest < cmd->arg_len && cmd->arg[rest] == ' ')
		rest++;
	if (rest < cmd->arg_len) {
		if (cmd->arg_len - rest == 4 && strncasecmp(cmd->arg + rest, "LAST", 4) == 0)
			last = true;
		else
			count[0] = '\0'; /* junk after the size: a syntax error */
	}
	if (parse_uint64(count, 0, UINT64_MAX, &n) < 0) {
		free(count);
		/* Why hang up: without a valid count the chunk cannot be
     * skipped, and its bytes must never be read as commands. */
		smtpd_hangup(s, "521 5.5.4 Syntax: BDAT count [LAST]");
		return;
	}
	free(count);
	s->bdat_remaining = n;
	s->bdat_chunk = n;
	s->bdat_last = last;
	s->state = SMTPD_ST_BDAT;
	/* A refused chunk is read and dropped; Postfix's replies and order. */
	if (s->bdat_error) {
		s->bdat_discard = true;
		smtpd_reply_error(s, "551 5.0.0 Discarded %llu bytes after earlier error",
		                  (unsigned long long)n);
		return;
	}
	if (!s->in_mail || s->nrcpt == 0) {
		s->bdat_discard = true;
		s->bdat_used = true;
		smtpd_reply_error(s, !s->in_mail ? "503 5.5.1 Error: need RCPT command"
		                                 : "554 5.5.1 Error: no valid recipients");
		return;
	}
	if (n == 0 && !last) {
		s->bdat_discard = true;
		s->bdat_error = true;
		s->bdat_used = true;
		smtpd_reply_error(s, "551 5.7.1 Null BDAT request");
		return;
	}
	if (s->set->size_limit > 0 &&
	    (s->bdat_total + n > s->set->size_limit || n > s->set->size_limit)) {
		s->bdat_discard = true;
		s->bdat_error = true;
		s->bdat_used = true;
		smtpd_reply_error(s, "552 5.3.4 Chunk exceeds message size limit");
		return;
	}
	s->bdat_total += n;
	if (!s->bdat_used) {
		s->bdat_used = true;
		start_content(s);
	}
}
