/* smtpd_session.c - one SMTP session: life cycle, line reader, dispatch,
 * replies, timeouts and error limits.
 *
 * smtpd.c calls smtpd_session_start() for every accepted connection; the
 * command files call back into the reply and wait/resume helpers here.
 * A session owns everything it allocates and frees it when the client
 * goes away, after a 421/521 or after QUIT; a pending restriction check
 * or an open queue file is cancelled or removed then.
 *
 * SECURITY: this is where a network client's bytes arrive. Input sits in
 * libevent's buffer, which stops reading at a high-water mark; a command
 * line is taken only up to line_length_limit (the rest of a longer one is
 * read and dropped, as Postfix does), a bare LF is refused before the
 * line is looked at when smtpd_forbid_bare_newline = reject, and
 * while a restriction check runs no more input is read, so pipelined
 * commands cannot pile up without bound. Output is bounded the same way:
 * when the client does not read its replies, we stop reading its
 * commands.
 */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/utf8.h"
#include "smtpd.h"
#include "daemon/daemon.h"
#include "daemon/event_server.h"
#include "dns/dns.h"
#include "table/table_async.h"

/* Read no more from a client while this much input waits (a pipelined
 * batch larger than that waits in the kernel), nor while this much output
 * has not been taken by the client. */
#define SMTPD_INPUT_HIGH (256 * 1024)
#define SMTPD_OUTPUT_HIGH (256 * 1024)
/* Command lines: RFC 5321 allows 512 octets; like Postfix we take up to
 * line_length_limit, but never less than this. */
#define SMTPD_CMD_MIN 512

struct smtpd_verb_entry {
	smtpd_cmd_fn *run;
	bool junk; /* counts against smtpd_junk_command_limit */
	bool allowed_denied; /* allowed after a client reject at connect */
};

/* The dispatch table: verb -> handler. Heavy verbs live in their own
 * files (smtpd_mail.c, smtpd_rcpt.c, smtpd_data.c). */
static const struct smtpd_verb_entry verbs[SMTP_VERB_COUNT] = {
        [SMTP_VERB_HELO] = {smtpd_cmd_helo, true, false},
        [SMTP_VERB_EHLO] = {smtpd_cmd_ehlo, true, false},
        [SMTP_VERB_MAIL] = {smtpd_cmd_mail, false, false},
        [SMTP_VERB_RCPT] = {smtpd_cmd_rcpt, false, false},
        [SMTP_VERB_DATA] = {smtpd_cmd_data, false, false},
        [SMTP_VERB_BDAT] = {smtpd_cmd_bdat, false, false},
        [SMTP_VERB_RSET] = {smtpd_cmd_rset, true, true},
        [SMTP_VERB_NOOP] = {smtpd_cmd_noop, true, true},
        [SMTP_VERB_QUIT] = {smtpd_cmd_quit, false, true},
        [SMTP_VERB_HELP] = {smtpd_cmd_help, true, true},
        [SMTP_VERB_VRFY] = {smtpd_cmd_vrfy, true, false},
        [SMTP_VERB_ETRN] = {smtpd_cmd_etrn, true, false},
        [SMTP_VERB_STARTTLS] = {smtpd_cmd_starttls, false, false},
        [SMTP_VERB_AUTH] = {smtpd_cmd_auth, false, false},
        [SMTP_VERB_XCLIENT] = {smtpd_cmd_xclient, false, false},
        [SMTP_VERB_XFORWARD] = {smtpd_cmd_xclient, false, false},
};

static void session_free(struct smtpd_session *s);
static void session_process(struct smtpd_session *s);

static void session_vreply(struct smtpd_session *s, const char *fmt, va_list ap)
        __attribute__((format(printf, 2, 0)));
/* Postfix's tarpit: once the client has made smtpd_soft_error_limit
 * errors, every reply waits smtpd_error_sleep_time. Why hold the output
 * and pause the input rather than sleep(): one process serves every
 * client; only this one must wait. The sleep timer lets both go. */
static void session_tarpit(struct smtpd_session *s)
{
	struct timeval tv = {(time_t)s->set->error_sleep, 0};

	if (s->set->error_sleep == 0 || s->errors < (unsigned)s->set->soft_error_limit ||
	    evtimer_pending(s->sleep_ev, NULL))
		return;
	smtpd_session_wait(s);
	bufferevent_disable(s->bev, EV_WRITE);
	evtimer_add(s->sleep_ev, &tv);
}

static void session_vreply(struct smtpd_session *s, const char *fmt, va_list ap)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);

	if (s->state == SMTPD_ST_CLOSING)
		return;
	str_reset(&s->scratch);
	str_vappendf(&s->scratch, fmt, ap);
	log_debug(1, "> %s[%s]: %s", s->name, s->addr, str_c(&s->scratch));
	str_append(&s->scratch, "\r\n");
	evbuffer_add(out, s->scratch.buf, s->scratch.len);
	session_tarpit(s);
}

void smtpd_reply(struct smtpd_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	session_vreply(s, fmt, ap);
	va_end(ap);
}

static void session_close_after_flush(struct smtpd_session *s)
{
	s->state = SMTPD_ST_CLOSING;
	smtpd_limit_disconnect(s);
	restrict_cancel(&s->pending);
	table_async_cancel(&s->quota_req);
	smtpd_auth_cancel(s);
	bufferevent_disable(s->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0) {
		/* Freed on the next loop turn, never under the caller's feet. */
		event_active(s->resume_ev, EV_TIMEOUT, 0);
		return;
	}
	/* The write callback frees the session once the reply is out; the
   * write timeout bounds a client that never reads it. */
	bufferevent_enable(s->bev, EV_WRITE);
}

void smtpd_hangup(struct smtpd_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	session_vreply(s, fmt, ap);
	va_end(ap);
	smtpd_log_disconnect(s);
	session_close_after_flush(s);
}

void smtpd_reply_error(struct smtpd_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	session_vreply(s, fmt, ap);
	va_end(ap);
	s->errors++;
	if (s->errors >= (unsigned)s->set->hard_error_limit) {
		log_info("too many errors after %s from %s[%s]", s->last_cmd, s->name, s->addr);
		smtpd_hangup(s, "421 4.7.0 %s Error: too many errors", s->set->myhostname);
		return;
	}
}

void smtpd_session_wait(struct smtpd_session *s)
{
	s->waiting = true;
	bufferevent_disable(s->bev, EV_READ);
}

void smtpd_session_resume(struct smtpd_session *s)
{
	/* An error sleep in progress keeps the session paused; its timer
	 * resumes it. */
	if (s->state == SMTPD_ST_CLOSING || evtimer_pending(s->sleep_ev, NULL))
		return;
	s->waiting = false;
	bufferevent_enable(s->bev, EV_READ);
	/* Why not process at once: we may be deep inside a callback of the
   * command that just finished; the next pipelined command runs on a
   * fresh turn of the loop. */
	event_active(s->resume_ev, EV_TIMEOUT, 0);
}

void smtpd_cmd_ok(struct smtpd_session *s, enum smtp_verb verb)
{
	s->cmd_ok[verb]++;
}

void smtpd_transaction_reset(struct smtpd_session *s)
{
	cleanup_abort(&s->cleanup);
	restrict_actions_reset(&s->actions);
	if (s->rs != NULL)
		restrict_session_reset_transaction(s->rs);
	s->in_mail = false;
	free(s->sender);
	s->sender = NULL;
	free(s->envid);
	s->envid = NULL;
	s->ret = 0;
	s->smtputf8 = false;
	s->body_8bitmime = false;
	s->size_declared = 0;
	s->nrcpt = 0;
	free(s->first_rcpt);
	s->first_rcpt = NULL;
	free(s->cur_rcpt);
	s->cur_rcpt = NULL;
	free(s->cur_orcpt);
	s->cur_orcpt = NULL;
	s->bdat_used = false;
	s->bdat_error = false;
	s->bdat_total = 0;
	s->data_size = 0;
	s->hops = 0;
	s->content_err = SMTPD_CONTENT_OK;
	s->in_header = true;
	s->in_continued_line = false;
	s->bdat_remaining = 0;
	s->bdat_last = false;
	s->bdat_discard = false;
	str_reset(&s->bdat_line);
	free(s->sasl_sender); /* MAIL's AUTH=, per transaction */
	s->sasl_sender = NULL;
}

void smtpd_request_fill(struct smtpd_session *s)
{
	struct restrict_request *r = &s->req;

	memset(r, 0, sizeof(*r));
	r->client_address = s->addr;
	r->client_name = s->name;
	r->reverse_client_name = s->reverse_name;
	r->client_port = s->port;
	r->helo_name = s->helo;
	r->protocol = s->esmtp ? "ESMTP" : "SMTP";
	r->sender = s->sender;
	r->recipient = s->cur_rcpt;
	r->recipient_count = s->nrcpt;
	r->message_size = (size_t)(s->data_size > 0 ? s->data_size : s->size_declared);
	r->sasl_username = s->sasl_username;
	r->sasl_method = s->sasl_method;
	/* Postfix: with SASL enabled, XCLIENT LOGIN= counts as a login for
	 * the restrictions (permit_sasl_authenticated ...). */
	if (r->sasl_username == NULL && s->lis->sasl != NULL && smtpd_xclient_login(s) != NULL) {
		r->sasl_username = smtpd_xclient_login(s);
		r->sasl_method = "XCLIENT";
	}
	r->sasl_sender = s->sasl_username != NULL ? s->sasl_sender : NULL;
	smtpd_tls_request_fill(s);
}

/* A command smtpd does not know: an empty line, a web browser or proxy
 * or a header sent as a command (smtpd_forbidden_commands: Postfix's
 * 221 and hang-up), or just a verb we lack. */
static void session_unknown(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
	if (cmd->word_len == 0) {
		smtpd_reply_error(s, "500 5.5.2 Error: bad syntax");
		return;
	}
	if (smtpd_forbidden_match(s->lis->forbidden, cmd->word, cmd->word_len)) {
		log_warning("non-SMTP command from %s[%s]: %.100s", s->name, s->addr,
		            str_c(&s->line));
		smtpd_hangup(s, "221 2.7.0 Error: I can break rules, too. Goodbye.");
		return;
	}
	smtpd_reply_error(s, "500 5.5.2 Error: command not recognized");
}

/* Verbose logging of a client line (-v). An AUTH command's initial
 * response and every line of an AUTH exchange carry credentials: only
 * the verb and mechanism are logged, the rest as "****". */
/* Does the line hold credentials: an AUTH response, or an AUTH command
 * (its verb found as smtp_cmd.c finds it: after any blanks, ended by
 * white space)? */
static bool line_is_secret(const struct smtpd_session *s)
{
	/* The line is NUL-terminated: strncasecmp stops at its end. */
	const char *p = str_c(&s->line) + strspn(str_c(&s->line), " \t");

	if (s->state == SMTPD_ST_AUTH)
		return true;
	return strncasecmp(p, "AUTH", 4) == 0 && (p[4] == '\0' || p[4] == ' ' || p[4] == '\t');
}

static void session_log_input(struct smtpd_session *s, bool secret)
{
	if (log_verbose() < 1)
		return;
	if (secret)
		log_debug(1, "< %s[%s]: %s****", s->name, s->addr,
		          s->state == SMTPD_ST_AUTH ? "" : "AUTH ");
	else
		log_debug(1, "< %s[%s]: %s", s->name, s->addr, str_c(&s->line));
}

/* One command line in s->line (CRLF removed). */
static void session_command(struct smtpd_session *s)
{
	struct smtp_cmd cmd;
	const char *reply;
	const struct smtpd_verb_entry *e;

	char *nul = memchr(s->line.buf, '\0', s->line.len);

	/* As in Postfix, a command ends at a NUL byte (smtp_cmd.h). */
	if (nul != NULL)
		str_truncate(&s->line, (size_t)(nul - s->line.buf));
	if (smtp_cmd_parse(s->line.buf, s->line.len, &cmd, &reply) < 0) {
		s->cmd_total[cmd.verb]++;
		s->last_cmd = cmd.name;
		/* Postfix looks at the session's state before the syntax. */
		if (smtpd_tls_refuse_plaintext(s, cmd.verb))
			return;
		if (cmd.verb == SMTP_VERB_RCPT && !s->in_mail)
			reply = "503 5.5.1 Error: need MAIL command";
		else if (cmd.verb == SMTP_VERB_MAIL && s->helo == NULL && s->set->helo_required)
			reply = "503 5.5.1 Error: send HELO/EHLO first";
		else if (cmd.verb == SMTP_VERB_MAIL && s->in_mail)
			reply = "503 5.5.1 Error: nested MAIL command";
		smtpd_reply_error(s, "%s", reply);
		return;
	}
	s->last_cmd = cmd.name;
	s->cmd_total[cmd.verb]++;
	/* Postfix: with SMTPUTF8 on, a command line must be UTF-8 (its
	 * 8-bit bytes end up in addresses, the HELO name, logs). */
	if (s->set->smtputf8 && !utf8_valid(s->line.buf, s->line.len, true)) {
		smtpd_reply_error(s, "500 5.5.2 Error: bad UTF-8 syntax");
		return;
	}
	if (cmd.verb == SMTP_VERB_UNKNOWN) {
		session_unknown(s, &cmd);
		return;
	}
	e = &verbs[cmd.verb];
	if (s->access_denied && !e->allowed_denied) {
		smtpd_reply_error(s, "503 5.7.0 Error: access denied for %s[%s]", s->name, s->addr);
		return;
	}
	if (smtpd_tls_refuse_plaintext(s, cmd.verb))
		return;
	/* Postfix counts HELO, EHLO, NOOP, RSET, VRFY, ETRN (and HELP) as
	 * errors once more than smtpd_junk_command_limit were sent, so a flood
	 * ends at the hard error limit; the command itself still runs and the
	 * 421 follows its reply (session_error_limit). */
	if (e->junk && s->junk++ > (unsigned)s->set->junk_limit)
		s->errors++;
	e->run(s, &cmd);
}

/* Postfix checks the error count before it reads each command: at the
 * hard limit, 421 and hang up. true then. */
static bool session_error_limit(struct smtpd_session *s)
{
	if (s->errors < (unsigned)s->set->hard_error_limit)
		return false;
	log_info("too many errors after %s from %s[%s]", s->last_cmd, s->name, s->addr);
	smtpd_hangup(s, "421 4.7.0 %s Error: too many errors", s->set->myhostname);
	return true;
}

/* A command line ended in a bare LF: refused (and the session ended)
 * under smtpd_forbid_bare_newline = reject; false then. */
static bool command_bare_lf_ok(struct smtpd_session *s)
{
	if (s->bare_mode != SMTPD_BARE_REJECT)
		return true;
	log_info("disallowed bare <LF> from %s[%s]", s->name, s->addr);
	smtpd_hangup(s, "%d 5.5.2 %s Error: bare <LF> received", s->set->bare_newline_code,
	             s->set->myhostname);
	return false;
}

/* A complete line in s->line: a command, or an AUTH response. */
static void session_line(struct smtpd_session *s)
{
	bool secret = line_is_secret(s);

	session_log_input(s, secret);
	if (s->state == SMTPD_ST_AUTH)
		smtpd_auth_response(s);
	else
		session_command(s);
	/* Whatever the reply was (530, 503, 501...), the credentials do
	 * not stay in the line buffer for the rest of the session. */
	if (secret)
		explicit_bzero(s->line.buf, s->line.len);
}

/* The rest of an overlong command line is dropped up to its LF; then the
 * part kept in s->line is answered (Postfix reads on the same way). */
static bool session_skip_rest(struct smtpd_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
	bool crlf;

	if (eol.pos < 0) {
		/* Keep the last byte: a CR there may start the CRLF. */
		size_t n = evbuffer_get_length(in);

		if (n > 1)
			evbuffer_drain(in, n - 1);
		return false;
	}
	crlf = eol.pos > 0;
	if (crlf) {
		struct evbuffer_ptr at;
		char c = 0;

		evbuffer_ptr_set(in, &at, (size_t)eol.pos - 1, EVBUFFER_PTR_SET);
		evbuffer_copyout_from(in, &at, &c, 1);
		crlf = c == '\r';
	}
	evbuffer_drain(in, (size_t)eol.pos + 1);
	s->skipping_line = false;
	if (!crlf && !command_bare_lf_ok(s))
		return false;
	session_line(s);
	return true;
}

/* Take one command line from the input. Returns false when there is no
 * complete line yet or the session stopped. A line longer than the limit
 * is cut there and the rest skipped (session_skip_rest). */
static bool session_read_command(struct smtpd_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t limit = s->set->line_limit > SMTPD_CMD_MIN ? s->set->line_limit : SMTPD_CMD_MIN;

	/* An AUTH response has its own limit (smtpd_sasl_response_limit). */
	if (s->state == SMTPD_ST_AUTH)
		limit = s->lis->sasl_response_limit < SMTPD_INPUT_HIGH / 2
		                ? s->lis->sasl_response_limit
		                : SMTPD_INPUT_HIGH / 2;
	struct evbuffer_ptr eol;
	size_t len;

	if (session_error_limit(s))
		return false;
	if (s->skipping_line)
		return session_skip_rest(s);
	eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
	if (eol.pos < 0 && evbuffer_get_length(in) <= limit + 1)
		return false;
	if (eol.pos < 0 || (size_t)eol.pos > limit + 1) {
		str_reset(&s->line);
		str_reserve(&s->line, limit + 1);
		evbuffer_remove(in, s->line.buf, limit);
		s->line.len = limit;
		s->line.buf[limit] = '\0';
		s->skipping_line = true;
		s->line_cut = true;
		return true;
	}
	s->line_cut = false;
	len = (size_t)eol.pos;
	str_reset(&s->line);
	str_reserve(&s->line, len + 1);
	evbuffer_remove(in, s->line.buf, len + 1);
	s->line.len = len;
	s->line.buf[len] = '\0';
	if (len == 0 || s->line.buf[len - 1] != '\r') {
		if (!command_bare_lf_ok(s))
			return false;
	} else {
		str_truncate(&s->line, len - 1);
	}
	if (s->line.len > limit) {
		str_truncate(&s->line, limit);
		s->line_cut = true;
	}
	session_line(s);
	return true;
}

static void session_process(struct smtpd_session *s)
{
	for (;;) {
		if (s->waiting || s->state == SMTPD_ST_CLOSING || s->state == SMTPD_ST_CONNECT)
			return;
		if (evbuffer_get_length(bufferevent_get_output(s->bev)) > SMTPD_OUTPUT_HIGH) {
			bufferevent_disable(s->bev, EV_READ);
			return;
		}
		switch (s->state) {
		case SMTPD_ST_CMD:
		case SMTPD_ST_AUTH:
			if (!session_read_command(s))
				return;
			break;
		case SMTPD_ST_DATA:
			if (!smtpd_data_input(s))
				return;
			break;
		case SMTPD_ST_BDAT:
			if (!smtpd_bdat_input(s))
				return;
			break;
		default:
			return;
		}
	}
}

static void session_on_read(struct bufferevent *bev, void *arg)
{
	(void)bev;
	session_process(arg);
}

static void session_on_socket_written(struct bufferevent *bev, void *arg)
{
	(void)bev;
	session_free(arg);
}

static void session_on_socket_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	session_free(arg);
}

/* The last reply is out of the session's bufferevent. Over TLS that only
 * means it is encrypted into the socket's bufferevent below: wait until
 * that one has written it too, else the client never sees a 221 or 421.
 * true when the session may be freed now. */
static bool session_flushed(struct smtpd_session *s)
{
	struct bufferevent *under = bufferevent_get_underlying(s->bev);
	struct timeval tv = {(time_t)s->set->timeout, 0};

	if (evbuffer_get_length(bufferevent_get_output(s->bev)) > 0)
		return false;
	if (under == NULL || evbuffer_get_length(bufferevent_get_output(under)) == 0)
		return true;
	/* The TLS filter has nothing more to do: the socket's bufferevent
	 * reports to us directly from here on. */
	bufferevent_disable(s->bev, EV_READ | EV_WRITE);
	bufferevent_setcb(under, NULL, session_on_socket_written, session_on_socket_event, s);
	bufferevent_set_timeouts(under, &tv, &tv);
	bufferevent_enable(under, EV_WRITE);
	bufferevent_disable(under, EV_READ);
	return false;
}

static void session_on_write(struct bufferevent *bev, void *arg)
{
	struct smtpd_session *s = arg;

	(void)bev;
	if (s->state == SMTPD_ST_CLOSING) {
		if (session_flushed(s))
			session_free(s);
		return;
	}
	/* Output drained below the mark: read commands again. */
	if (!s->waiting) {
		bufferevent_enable(s->bev, EV_READ);
		session_process(s);
	}
}

static void session_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct smtpd_session *s = arg;

	(void)bev;
	if (s->state == SMTPD_ST_CLOSING) {
		session_free(s);
		return;
	}
	if (s->state == SMTPD_ST_TLS) {
		smtpd_tls_event(s, what);
		return;
	}
	if ((what & BEV_EVENT_TIMEOUT) != 0) {
		log_info("timeout after %s from %s[%s]", s->last_cmd, s->name, s->addr);
		smtpd_hangup(s, "421 4.4.2 %s Error: timeout exceeded", s->set->myhostname);
		return;
	}
	/* EOF or error: the client went away. */
	if (s->last_cmd != NULL && strcmp(s->last_cmd, "QUIT") != 0)
		log_info("lost connection after %s from %s[%s]", s->last_cmd, s->name, s->addr);
	smtpd_log_disconnect(s);
	session_free(s);
}

static void session_on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct smtpd_session *s = arg;

	(void)fd;
	(void)what;
	if (s->state == SMTPD_ST_CLOSING) {
		if (s->bev == NULL || session_flushed(s))
			session_free(s);
		return;
	}
	session_process(s);
}

static void session_on_sleep(evutil_socket_t fd, short what, void *arg)
{
	struct smtpd_session *s = arg;

	(void)fd;
	(void)what;
	if (s->state == SMTPD_ST_CLOSING)
		return;
	bufferevent_enable(s->bev, EV_WRITE);
	smtpd_session_resume(s);
}

/* Bytes the kernel holds for us that libevent has not read yet. */
static bool socket_has_input(evutil_socket_t fd)
{
	char c;

	return fd >= 0 && recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

static void session_banner(struct smtpd_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);

	s->state = SMTPD_ST_CMD;
	/* Pregreet: a client that talks before the banner is a spambot that
   * does not wait for the server (RFC 5321 4.3.1). We look at what has
   * arrived when the banner goes out, read or still in the kernel (no
   * extra greeting delay). */
	if (s->tls == NULL &&
	    (evbuffer_get_length(in) > 0 || socket_has_input(bufferevent_getfd(s->bev)))) {
		log_info("improper command pipelining after CONNECT from %s[%s]", s->name, s->addr);
		s->last_cmd = "CONNECT";
		smtpd_hangup(s, "554 5.5.1 Error: pipelining before the greeting is not allowed");
		return;
	}
	if (s->access_denied)
		smtpd_reply(s, "%s", str_c(&s->denied_reply));
	else
		smtpd_reply(s, "220 %s", s->set->banner);
	bufferevent_enable(s->bev, EV_READ);
}

static void session_connect_done(const struct restrict_result *r, void *ctx)
{
	struct smtpd_session *s = ctx;

	s->pending = NULL;
	if (r->verdict != RESTRICT_ACCEPT) {
		/* Postfix (smtpd_delay_reject = no): the reject replaces the
     * banner and every command but QUIT gets 503 after it. */
		s->access_denied = true;
		str_set(&s->denied_reply, str_c(&r->reply));
		smtpd_log_reject(s, "CONNECT", str_c(&r->reply), NULL);
	}
	session_banner(s);
}

/* The client's name is known: log the connection, run the client
 * restrictions. Why the banner waits for them: with smtpd_delay_reject =
 * no a reject replaces it. The check answers on a later loop turn. */
static void session_connect(struct smtpd_session *s)
{
	log_info("connect from %s[%s]", s->name, s->addr);
	/* smtps: TLS first, as Postfix does, so that even a refusal (the
	 * connection limit below) reaches the client inside TLS. */
	if (s->lis->tls_wrapper) {
		smtpd_tls_wrapper_start(s);
		return;
	}
	smtpd_session_connected(s);
}

void smtpd_session_connected(struct smtpd_session *s)
{
	if (smtpd_limit_exceeded(s))
		return;
	smtpd_request_fill(s);
	s->pending =
	        restrict_check(s->rs, RESTRICT_CONNECT, &s->req, NULL, session_connect_done, s);
}

static void session_name_done(const char *name, const char *reverse_name, void *ctx)
{
	struct smtpd_session *s = ctx;

	s->dns = NULL;
	s->name_buf = xstrdup(name);
	s->reverse_buf = xstrdup(reverse_name);
	s->name = s->name_buf;
	s->reverse_name = s->reverse_buf;
	session_connect(s);
}

void smtpd_sockaddr_text(const struct sockaddr *sa, char *buf, size_t size, unsigned *port_r)
{
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], buf, (socklen_t)size);
		else
			inet_ntop(AF_INET6, &in6->sin6_addr, buf, (socklen_t)size);
		*port_r = ntohs(in6->sin6_port);
	} else if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in4 = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &in4->sin_addr, buf, (socklen_t)size);
		*port_r = ntohs(in4->sin_port);
	}
}

void smtpd_session_start(struct smtpd_listener *lis, int fd, const struct sockaddr *sa, int salen)
{
	struct smtpd_session *s = xcalloc(1, sizeof(*s));
	struct event_base *base = lis->server->base;

	(void)salen;
	s->lis = lis;
	s->set = &lis->set;
	s->name = "unknown";
	s->reverse_name = "unknown";
	if (sa->sa_family == AF_INET6 || sa->sa_family == AF_INET)
		smtpd_sockaddr_text(sa, s->addr, sizeof(s->addr), &s->port);
	else
		strcpy(s->addr, "127.0.0.1");
	{
		struct sockaddr_storage local;
		socklen_t local_len = sizeof(local);

		if (getsockname(fd, (struct sockaddr *)&local, &local_len) == 0)
			smtpd_sockaddr_text((struct sockaddr *)&local, s->local_addr,
			                    sizeof(s->local_addr), &s->local_port);
	}
	str_init(&s->line);
	str_init(&s->scratch);
	str_init(&s->auth_reply);
	str_init(&s->denied_reply);
	str_init(&s->bdat_line);
	restrict_actions_init(&s->actions);
	s->in_header = true;
	s->last_cmd = "CONNECT";
	s->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL) {
		log_warning("cannot set up a session for %s: out of resources", s->addr);
		evutil_closesocket(fd);
		free(s);
		return;
	}
	s->resume_ev = event_new(base, -1, 0, session_on_resume, s);
	s->sleep_ev = evtimer_new(base, session_on_sleep, s);
	smtpd_session_set_bev(s, s->bev, s->set->timeout);
	lis->server->n_sessions++;
	s->next = lis->server->sessions;
	if (s->next != NULL)
		s->next->prev = s;
	lis->server->sessions = s;
	s->state = SMTPD_ST_CONNECT;
	s->rs = restrict_session_new(lis->engine);
	s->bare_mode = smtpd_netlist_match(&lis->bare_newline_exclusions, s->addr)
	                       ? SMTPD_BARE_NO
	                       : s->set->bare_newline;
	smtpd_limit_connect(s, sa);
	/* Input is read from here on (a pregreet talker's bytes are there to
	 * see when the banner goes out) but not processed before it. */
	bufferevent_enable(s->bev, EV_READ);
	if (s->set->peername_lookup && lis->server->dns != NULL) {
		s->dns = dns_client_name(lis->server->dns, s->addr, session_name_done, s);
		return;
	}
	session_connect(s);
}

void smtpd_session_set_bev(struct smtpd_session *s, struct bufferevent *bev, uint64_t timeout)
{
	struct timeval tv = {(time_t)timeout, 0};

	s->bev = bev;
	bufferevent_setcb(bev, session_on_read, session_on_write, session_on_event, s);
	bufferevent_setwatermark(bev, EV_READ, 0, SMTPD_INPUT_HIGH);
	bufferevent_set_timeouts(bev, &tv, &tv);
}

void smtpd_session_abort(struct smtpd_session *s)
{
	smtpd_log_disconnect(s);
	s->state = SMTPD_ST_CLOSING;
	smtpd_limit_disconnect(s);
	restrict_cancel(&s->pending);
	table_async_cancel(&s->quota_req);
	smtpd_auth_cancel(s);
	if (s->bev != NULL)
		bufferevent_disable(s->bev, EV_READ | EV_WRITE);
	/* Freed on the next loop turn, never under the caller's feet. */
	event_active(s->resume_ev, EV_TIMEOUT, 0);
}

void smtpd_session_drop(struct smtpd_session *s)
{
	smtpd_log_disconnect(s);
	session_free(s);
}

static void session_free(struct smtpd_session *s)
{
	smtpd_limit_disconnect(s);
	restrict_cancel(&s->pending);
	table_async_cancel(&s->quota_req);
	dns_cancel(&s->dns);
	smtpd_transaction_reset(s);
	restrict_session_destroy(&s->rs);
	restrict_actions_free(&s->actions);
	if (s->resume_ev != NULL)
		event_free(s->resume_ev);
	if (s->sleep_ev != NULL)
		event_free(s->sleep_ev);
	if (s->bev != NULL) /* NULL: lost with a TLS filter that could not be made */
		bufferevent_free(s->bev);
	str_free(&s->line);
	str_free(&s->scratch);
	str_free(&s->denied_reply);
	str_free(&s->bdat_line);
	smtpd_xclient_session_free(s);
	smtpd_auth_session_free(s);
	smtpd_tls_session_free(s);
	free(s->helo);
	free(s->vrfy_arg);
	free(s->etrn_domain);
	free(s->name_buf);
	free(s->reverse_buf);
	s->lis->server->n_sessions--;
	if (s->lis->server->n_sessions == 0)
		event_server_idle(s->lis->server->es);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		s->lis->server->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	free(s);
}

void smtpd_session_close_all(struct smtpd_server *srv)
{
	while (srv->sessions != NULL)
		session_free(srv->sessions);
}
