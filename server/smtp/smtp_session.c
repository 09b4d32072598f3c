/* smtp_session.c - one connection of the SMTP/LMTP client to a server:
 * connect, greeting, EHLO (LHLO), STARTTLS, AUTH, XFORWARD, the mail
 * transaction with or without PIPELINING (RFC 2920), the content, and
 * QUIT or the connection cache.
 *
 * Used by smtp.c. Everything runs on the event loop; each wait is bound
 * by its smtp_*_timeout. The server's replies are read line by line,
 * each line at most SMTP_REPLY_LINE_MAX bytes and a reply at most
 * SMTP_REPLY_LINES lines: anything longer is a protocol error that ends
 * the session (the recipients are tried elsewhere or deferred).
 *
 * Outcomes, as Postfix's smtp(8) gives them (reason texts, DSN codes):
 *   - 5xx to RCPT: that recipient bounces ("host H[A] said: 550 5.1.1
 *     ... (in reply to RCPT TO command)"); 5xx to MAIL, DATA or the end
 *     of the content: every recipient of the transaction bounces;
 *   - 4xx anywhere, a lost connection or a timeout: the recipients not
 *     done are kept for the next server address and deferred with the
 *     reason when none is left;
 *   - 2xx to the end of the content: sent, with the server's reply as
 *     the reason ("250 2.0.0 Ok: queued as X"); LMTP: one reply per
 *     accepted recipient (RFC 2033).
 *   - Connection lost after the content was sent and before the reply:
 *     deferred ("... -- message may be sent more than once").
 *
 * Content: the queue file holds LF line ends; lines go out with CRLF,
 * dot-stuffed, and lines longer than smtp_line_length_limit are broken
 * with CRLF SPACE, as Postfix does.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "address/xtext.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/parse.h"
#include "daemon/event_server.h"
#include "delivery/delivery_log.h"
#include "smtp.h"
#include "table/table_async.h"
#include "tls/tls.h"

#define SMTP_REPLY_LINE_MAX 2048
#define SMTP_REPLY_LINES 200
#define SMTP_CONTENT_CHUNK 65536

enum sstate {
	S_CONNECTING,
	S_GREETING,
	S_EHLO,
	S_HELO,
	S_STARTTLS,
	S_HANDSHAKE,
	S_AUTH_LOOKUP,
	S_AUTH,
	S_XFORWARD,
	S_RSET,
	S_TRANSACTION, /* replies to MAIL, RCPT..., DATA */
	S_CONTENT,
	S_DOT, /* replies to the end of the content */
	S_DOT_EMPTY, /* 354 with no recipient accepted: "." sent, reply ignored */
	S_QUIT,
	S_IDLE, /* in the connection cache */
};

/* What a state waits for, in Postfix's words for lost connections. */
static const char *state_doing(enum sstate st)
{
	switch (st) {
	case S_CONNECTING:
	case S_GREETING:
		return "receiving the initial server greeting";
	case S_EHLO:
	case S_HELO:
		return "performing the EHLO handshake";
	case S_STARTTLS:
	case S_HANDSHAKE:
		return "performing the TLS handshake";
	case S_AUTH_LOOKUP:
	case S_AUTH:
		return "authenticating";
	case S_XFORWARD:
		return "sending XFORWARD";
	case S_RSET:
		return "sending RSET";
	case S_TRANSACTION:
		return "sending MAIL FROM";
	case S_CONTENT:
		return "sending message body";
	case S_DOT:
	case S_DOT_EMPTY:
		return "sending end of data -- message may be sent more than once";
	case S_QUIT:
	case S_IDLE:
		return "sending QUIT";
	}
	return "talking";
}

/* The command a reply answers, for "(in reply to X command)". */
enum step_kind { STEP_MAIL, STEP_RCPT, STEP_DATA };

struct step {
	enum step_kind kind;
	size_t rcpt; /* STEP_RCPT: index in job->rcpts */
};

struct smtp_session {
	LIST_ENTRY(smtp_session) link; /* in agent->cache when idle */
	struct smtp_agent *agent;
	struct smtp_job *job;
	struct bufferevent *bev;
	char *host;
	char addr[108];
	int family;
	unsigned port;
	char *peer; /* host[addr]:port */
	char *dest_key;
	enum sstate state;
	uint64_t started_usec;
	struct event *idle_ev;
	/* The reply being read. */
	str_t reply; /* "250 first line text second line text ..." */
	strv_t reply_lines; /* each line's text after "NNN-" */
	int code;
	unsigned lines;
	/* What the server offered. */
	bool esmtp, pipelining, dsn, eightbit, smtputf8, starttls, xforward;
	bool size; /* SIZE offered (RFC 1870) */
	uint64_t size_limit; /* 0: no limit announced */
	char *auth_mechs;
	strv_t xforward_names;
	bool tls_active, authenticated;
	bool no_tls; /* a failed handshake at "may": plaintext this time */
	struct smtp_sasl *sasl;
	struct table_async_request *sasl_req;
	strv_t sasl_keys;
	size_t sasl_key, sasl_map;
	strv_t sasl_maps;
	/* The transaction. */
	struct step *steps;
	size_t nsteps, next_send, next_reply;
	bool mail_failed;
	size_t *accepted; /* indices of recipients RCPT accepted, in order */
	size_t naccepted, lmtp_next;
	unsigned xforward_pending;
	/* Content streaming. */
	uint64_t content_pos;
	size_t line_len;
	bool at_line_start;
	bool failed; /* the session must not be cached */
};

static void send_ehlo(struct smtp_session *s);
static void after_ehlo(struct smtp_session *s);
static void start_auth(struct smtp_session *s);
static void start_xforward(struct smtp_session *s);
static void start_transaction(struct smtp_session *s);
static void session_close(struct smtp_session *s);
static void tls_done(struct smtp_session *s);
static void tls_failed(struct smtp_session *s);

const char *smtp_session_peer(const struct smtp_session *s)
{
	return s->peer;
}

/* ---- writing and timeouts ---- */

static void set_timeout(struct smtp_session *s, unsigned seconds)
{
	struct timeval tv = {seconds > 0 ? seconds : 1, 0};

	bufferevent_set_timeouts(s->bev, &tv, &tv);
}

static void send_line(struct smtp_session *s, const char *line)
{
	log_debug(1, "> %s: %s", s->peer, line);
	bufferevent_write(s->bev, line, strlen(line));
	bufferevent_write(s->bev, "\r\n", 2);
}

/* ---- outcomes ---- */

/* The server's enhanced status code, or one made from the reply code. */
static struct queue_dsn reply_dsn(int code, const char *text)
{
	struct queue_dsn dsn = {(unsigned char)(code / 100), 0, 0};
	char buf[16];
	size_t len = strcspn(text, " ");

	if (len > 0 && len < sizeof(buf)) {
		struct queue_dsn parsed;

		memcpy(buf, text, len);
		buf[len] = '\0';
		if (queue_dsn_parse(buf, &parsed) == 0 && parsed.klass == dsn.klass)
			return parsed;
	}
	return dsn;
}

/* "host H[A] said: 550 ... (in reply to X command)" */
static void said(const struct smtp_session *s, const char *command, str_t *out)
{
	str_appendf(out, "host %s[%s] said: %s (in reply to %s command)", s->host, s->addr,
	            str_c(&s->reply), command);
}

/* The text after "NNN " of the current reply. */
static const char *reply_text(const struct smtp_session *s)
{
	return s->reply.len > 4 ? str_c(&s->reply) + 4 : "";
}

/* A recipient failed at this server: 5xx is final, 4xx waits for the
 * next server (or becomes the deferral's reason). */
static void rcpt_fail(struct smtp_session *s, size_t i, const char *command)
{
	struct smtp_job *job = s->job;
	struct smtp_rcpt *r = &job->rcpts[i];
	struct queue_dsn dsn = reply_dsn(s->code, reply_text(s));
	str_t why;

	str_init(&why);
	said(s, command, &why);
	if (s->code >= 500) {
		smtp_rcpt_set(job, r, 'b', &dsn, str_c(&why));
	} else {
		free(r->reason);
		r->reason = str_steal(&why);
		r->dsn = dsn;
		r->soft = true;
	}
	str_free(&why);
}

/* The session cannot go on: remember why for the recipients that are
 * left, then close. dsn class 5 with final: bounce them now. */
static void session_fail(struct smtp_session *s, const struct queue_dsn *dsn, const char *why,
                         bool final)
{
	struct smtp_job *job = s->job;

	s->failed = true;
	if (job != NULL) {
		str_set(&job->last_error, why);
		job->last_dsn = *dsn;
		if (final && dsn->klass == 5)
			smtp_job_settle_rest(job, 'b', dsn, why);
	}
	session_close(s);
}

/* What the session was doing, as Postfix says it ("sending RCPT TO"). */
static const char *doing(const struct smtp_session *s)
{
	if (s->state == S_TRANSACTION && s->next_reply < s->nsteps) {
		switch (s->steps[s->next_reply].kind) {
		case STEP_MAIL:
			return "sending MAIL FROM";
		case STEP_RCPT:
			return "sending RCPT TO";
		case STEP_DATA:
			return "sending DATA command";
		}
	}
	return state_doing(s->state);
}

enum lost_kind {
	LOST_CLOSED, /* "lost connection with H[A] while ..." */
	LOST_TIMEOUT, /* "conversation with H[A] timed out while ..." */
	LOST_PROTOCOL, /* "WHAT from H[A] while ..." */
};

/* The connection failed (what: connect's error, or the protocol error):
 * the recipients left are kept for the next server. */
static void lost(struct smtp_session *s, enum lost_kind kind, const char *what)
{
	str_t why;
	struct smtp_job *job = s->job;

	str_init(&why);
	if (s->state == S_CONNECTING)
		str_appendf(&why, "connect to %s[%s]:%u: %s", s->host, s->addr, s->port, what);
	else if (kind == LOST_TIMEOUT)
		str_appendf(&why, "conversation with %s[%s] timed out while %s", s->host, s->addr,
		            doing(s));
	else if (kind == LOST_CLOSED)
		str_appendf(&why, "lost connection with %s[%s] while %s", s->host, s->addr,
		            doing(s));
	else
		str_appendf(&why, "%s from %s[%s] while %s", what, s->host, s->addr, doing(s));
	/* After the content went out, the message may have arrived:
	 * the recipients are still deferred (at least once). */
	if (job != NULL && (s->state == S_DOT || s->state == S_CONTENT)) {
		for (size_t i = 0; i < s->naccepted; i++) {
			struct smtp_rcpt *r = &job->rcpts[s->accepted[i]];

			if (r->state != SMTP_RCPT_DONE) {
				free(r->reason);
				r->reason = xstrdup(str_c(&why));
				r->dsn = (struct queue_dsn){4, 4, 2};
				r->soft = true;
			}
		}
	}
	log_debug(1, "%s", str_c(&why));
	session_fail(s, &(struct queue_dsn){4, 4, s->state == S_CONNECTING ? 1 : 2}, str_c(&why),
	             false);
	str_free(&why);
}

/* ---- connection ---- */

static void session_free(struct smtp_session *s)
{
	if (s->idle_ev != NULL)
		event_free(s->idle_ev);
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	table_async_cancel(&s->sasl_req);
	smtp_sasl_free(&s->sasl);
	strv_free(&s->sasl_keys);
	strv_free(&s->sasl_maps);
	strv_free(&s->xforward_names);
	free(s->auth_mechs);
	free(s->steps);
	free(s->accepted);
	free(s->host);
	free(s->peer);
	free(s->dest_key);
	str_free(&s->reply);
	strv_free(&s->reply_lines);
	free(s);
}

/* Finished with the session (failed or done): tell the job. */
static void session_close(struct smtp_session *s)
{
	struct smtp_job *job = s->job;

	s->job = NULL;
	session_free(s);
	if (job != NULL)
		smtp_job_session_done(job);
}

static void on_quit_written(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;

	(void)bev;
	session_free(s);
}

static void on_quit_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	session_free(arg);
}

/* Say QUIT without waiting for the answer (smtp_skip_quit_response, as
 * Postfix's default), then free the session. */
static void session_quit(struct smtp_session *s)
{
	struct smtp_job *job = s->job;

	s->job = NULL;
	s->state = S_QUIT;
	if (s->bev != NULL) {
		set_timeout(s, s->agent->set.quit_timeout < 10 ? s->agent->set.quit_timeout : 10);
		bufferevent_setcb(s->bev, NULL, on_quit_written, on_quit_event, s);
		send_line(s, "QUIT");
	} else {
		session_free(s);
	}
	if (job != NULL)
		smtp_job_session_done(job);
}

static void on_idle_event(struct bufferevent *bev, short what, void *arg);

static void on_idle_read(struct bufferevent *bev, void *arg)
{
	/* A server that talks while idle (a 421 before closing): drop. */
	on_idle_event(bev, BEV_EVENT_EOF, arg);
}

static void on_idle_event(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_session *s = arg;

	(void)bev;
	(void)what;
	LIST_REMOVE(s, link);
	s->agent->ncached--;
	session_free(s);
}

static void on_idle_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;

	(void)fd;
	(void)what;
	LIST_REMOVE(s, link);
	s->agent->ncached--;
	s->state = S_QUIT;
	bufferevent_setcb(s->bev, NULL, on_quit_written, on_quit_event, s);
	send_line(s, "QUIT");
}

static bool cache_wanted(const struct smtp_session *s, const struct smtp_job *job)
{
	const struct smtp_settings *set = &s->agent->set;

	if (s->failed || event_server_draining(s->agent->srv))
		return false;
	if (delivery_now_usec() - s->started_usec >= (uint64_t)set->reuse_time_limit * 1000000u)
		return false;
	if (set->cache_on_demand && job->cache_wanted)
		return true;
	for (size_t i = 0; i < set->cache_destinations.n; i++)
		if (strcasecmp(set->cache_destinations.v[i], job->dest_key) == 0)
			return true;
	return false;
}

/* The transaction is over: cache the connection for the next delivery
 * to this destination, or QUIT. */
static void session_done(struct smtp_session *s)
{
	struct smtp_job *job = s->job;
	struct timeval tv = {s->agent->set.cache_time_limit, 0};

	if (job == NULL || smtp_job_todo(job) > 0 || !cache_wanted(s, job)) {
		session_quit(s);
		return;
	}
	s->job = NULL;
	s->state = S_IDLE;
	bufferevent_setcb(s->bev, on_idle_read, NULL, on_idle_event, s);
	bufferevent_set_timeouts(s->bev, NULL, NULL);
	if (s->idle_ev == NULL)
		s->idle_ev = evtimer_new(s->agent->base, on_idle_timeout, s);
	evtimer_add(s->idle_ev, &tv);
	LIST_INSERT_HEAD(&s->agent->cache, s, link);
	s->agent->ncached++;
	smtp_job_session_done(job);
}

struct smtp_session *smtp_cache_take(struct smtp_agent *agent, const char *dest_key)
{
	for (struct smtp_session *s = LIST_FIRST(&agent->cache); s != NULL;
	     s = LIST_NEXT(s, link)) {
		if (strcmp(s->dest_key, dest_key) == 0) {
			LIST_REMOVE(s, link);
			agent->ncached--;
			evtimer_del(s->idle_ev);
			return s;
		}
	}
	return NULL;
}

void smtp_cache_flush(struct smtp_agent *agent)
{
	while (!LIST_EMPTY(&agent->cache)) {
		struct smtp_session *s = LIST_FIRST(&agent->cache);

		LIST_REMOVE(s, link);
		agent->ncached--;
		session_free(s);
	}
}

/* ---- replies ---- */

static void on_reply(struct smtp_session *s);

/* Parse the lines in the input buffer into replies. */
static void on_read(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	while (s->bev == bev) {
		struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_CRLF);
		size_t len;
		char *line;
		bool last;

		if (eol.pos < 0) {
			if (evbuffer_get_length(in) > SMTP_REPLY_LINE_MAX) {
				s->state = s->state == S_CONNECTING ? S_GREETING : s->state;
				lost(s, LOST_PROTOCOL, "reply line too long");
			}
			return;
		}
		if ((size_t)eol.pos > SMTP_REPLY_LINE_MAX) {
			lost(s, LOST_PROTOCOL, "reply line too long");
			return;
		}
		line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
		if (line == NULL)
			return;
		log_debug(1, "< %s: %s", s->peer, line);
		if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
		    line[2] < '0' || line[2] > '9' ||
		    (len > 3 && line[3] != ' ' && line[3] != '-')) {
			free(line);
			str_reset(&s->reply);
			lost(s, LOST_PROTOCOL, "malformed reply");
			return;
		}
		if (s->lines == 0) {
			s->code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
			str_reset(&s->reply);
			str_append_n(&s->reply, line, 3);
			strv_free(&s->reply_lines);
		}
		strv_add(&s->reply_lines, len > 4 ? line + 4 : "");
		if (len > 4) {
			str_append_c(&s->reply, ' ');
			str_append_n(&s->reply, line + 4, len - 4);
		}
		last = len == 3 || line[3] == ' ';
		free(line);
		if (++s->lines > SMTP_REPLY_LINES) {
			lost(s, LOST_PROTOCOL, "reply too long");
			return;
		}
		if (!last)
			continue;
		s->lines = 0;
		on_reply(s);
	}
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_session *s = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		if (s->state == S_CONNECTING) {
			s->state = S_GREETING;
			if (s->job != NULL && s->job->connected == 0)
				s->job->connected = delivery_now_usec();
			set_timeout(s, s->agent->set.helo_timeout);
		} else if (s->state == S_HANDSHAKE) {
			tls_done(s);
		}
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if (s->state == S_CONNECTING)
			lost(s, LOST_TIMEOUT, "Connection timed out");
		else
			lost(s, LOST_TIMEOUT, NULL);
		return;
	}
	if (s->state == S_HANDSHAKE) {
		tls_failed(s);
		return;
	}
	if (s->state == S_CONNECTING) {
		int err = EVUTIL_SOCKET_ERROR();

		lost(s, LOST_CLOSED, evutil_socket_error_to_string(err != 0 ? err : ECONNREFUSED));
		return;
	}
	lost(s, LOST_CLOSED, "lost connection");
}

/* ---- EHLO ---- */

static void parse_feature(struct smtp_session *s, const char *line)
{
	char word[32];
	size_t len = strcspn(line, " =");
	const char *args = line + len;

	while (*args == ' ' || *args == '=')
		args++;
	if (len == 0 || len >= sizeof(word))
		return;
	memcpy(word, line, len);
	word[len] = '\0';
	if (strcasecmp(word, "PIPELINING") == 0)
		s->pipelining = true;
	else if (strcasecmp(word, "8BITMIME") == 0)
		s->eightbit = true;
	else if (strcasecmp(word, "SMTPUTF8") == 0)
		s->smtputf8 = true;
	else if (strcasecmp(word, "DSN") == 0)
		s->dsn = true;
	else if (strcasecmp(word, "STARTTLS") == 0)
		s->starttls = true;
	else if (strcasecmp(word, "SIZE") == 0) {
		s->size = true;
		uint64_t n;

		if (*args != '\0' && parse_uint64(args, 0, UINT64_MAX, &n) == 0)
			s->size_limit = n;
	} else if (strcasecmp(word, "AUTH") == 0) {
		/* "AUTH=LOGIN PLAIN" is the old form; the standard one wins. */
		if (s->auth_mechs == NULL || line[len] != '=') {
			free(s->auth_mechs);
			s->auth_mechs = xstrdup(args);
		}
	} else if (strcasecmp(word, "XFORWARD") == 0) {
		const char *err;

		s->xforward = true;
		strv_free(&s->xforward_names);
		(void)strv_split_list(&s->xforward_names, args, &err);
	}
}

static void features_reset(struct smtp_session *s)
{
	s->esmtp = s->pipelining = s->dsn = s->eightbit = s->smtputf8 = false;
	s->starttls = s->xforward = false;
	s->size = false;
	s->size_limit = 0;
	free(s->auth_mechs);
	s->auth_mechs = NULL;
	strv_free(&s->xforward_names);
}

static void send_ehlo(struct smtp_session *s)
{
	const struct smtp_settings *set = &s->agent->set;
	char *line;

	features_reset(s);
	if (set->never_send_ehlo) {
		s->state = S_HELO;
		line = xasprintf("HELO %s", set->helo_name);
	} else {
		s->state = S_EHLO;
		line = xasprintf("%s %s", set->lmtp ? "LHLO" : "EHLO", set->helo_name);
	}
	set_timeout(s, set->helo_timeout);
	send_line(s, line);
	free(line);
}

/* The greeting: 2xx goes on; anything else ends this server. */
static void on_greeting(struct smtp_session *s)
{
	str_t why;

	if (s->code / 100 == 2) {
		if (s->job != NULL) {
			s->job->sessions++;
			s->job->greeted = true;
		}
		send_ehlo(s);
		return;
	}
	if (s->job != NULL)
		s->job->sessions++;
	str_init(&why);
	str_appendf(&why, "host %s[%s] refused to talk to me: %s", s->host, s->addr,
	            str_c(&s->reply));
	/* smtp_skip_5xx_greeting: a 5xx greeting is a reason to try the
	 * next server, not to bounce, unless it is the last one. */
	session_fail(s, &(struct queue_dsn){s->code >= 500 ? 5 : 4, 0, 0}, str_c(&why),
	             s->code >= 500 && !s->agent->set.skip_5xx_greeting);
	str_free(&why);
}

static void on_ehlo(struct smtp_session *s)
{
	str_t why;

	if (s->code / 100 == 2) {
		s->esmtp = s->state == S_EHLO;
		for (size_t i = 1; s->esmtp && i < s->reply_lines.n; i++)
			parse_feature(s, s->reply_lines.v[i]);
		after_ehlo(s);
		return;
	}
	if (s->state == S_EHLO && !s->agent->set.lmtp && !s->tls_active) {
		/* An old server: fall back to HELO (RFC 5321 4.1.4). */
		char *line = xasprintf("HELO %s", s->agent->set.helo_name);

		s->state = S_HELO;
		send_line(s, line);
		free(line);
		return;
	}
	str_init(&why);
	str_appendf(&why, "host %s[%s] refused to talk to me: %s", s->host, s->addr,
	            str_c(&s->reply));
	session_fail(s, &(struct queue_dsn){s->code >= 500 ? 5 : 4, 0, 0}, str_c(&why), false);
	str_free(&why);
}

/* ---- TLS ---- */

static struct tls_client *tls_context(const struct smtp_session *s, enum smtp_tls_level level)
{
	const struct smtp_settings *set = &s->agent->set;

	return level >= SMTP_TLS_ENCRYPT ? set->tls_mandatory : set->tls_opportunistic;
}

/* The nexthop's domain: "example.com" of "[example.com]:587". */
static void nexthop_domain(const char *key, str_t *out)
{
	const char *p = key;
	size_t len;

	if (*p == '[') {
		p++;
		len = strcspn(p, "]");
	} else {
		len = strcspn(p, ":, ");
	}
	str_append_n(out, p, len);
}

static void start_tls(struct smtp_session *s)
{
	s->state = S_STARTTLS;
	set_timeout(s, s->agent->set.starttls_timeout);
	send_line(s, "STARTTLS");
}

static void on_starttls(struct smtp_session *s)
{
	const struct smtp_job *job = s->job;
	const struct smtp_settings *set = &s->agent->set;
	struct bufferevent *filter;
	const char *sni = NULL;
	str_t name, why;
	SSL *ssl;

	if (s->code != 220) {
		str_init(&why);
		if (job->tls.level >= SMTP_TLS_ENCRYPT) {
			str_appendf(&why,
			            "TLS is required, but host %s[%s] refused to start TLS: %s",
			            s->host, s->addr, str_c(&s->reply));
			session_fail(s, &(struct queue_dsn){4, 7, 5}, str_c(&why), false);
		} else {
			/* may: go on in plaintext, as Postfix does. */
			after_ehlo(s);
		}
		str_free(&why);
		return;
	}
	str_init(&name);
	if (job->tls.servername != NULL) {
		str_append(&name, job->tls.servername);
	} else if (strcasecmp(set->tls_servername, "hostname") == 0) {
		str_append(&name, s->host);
	} else if (strcasecmp(set->tls_servername, "nexthop") == 0) {
		nexthop_domain(job->dest_key, &name);
	} else {
		str_append(&name, set->tls_servername);
	}
	if (name.len > 0 && inet_pton(AF_INET, str_c(&name), (unsigned char[16]){0}) != 1 &&
	    inet_pton(AF_INET6, str_c(&name), (unsigned char[16]){0}) != 1)
		sni = str_c(&name);
	ssl = tls_client_ssl_new(tls_context(s, job->tls.level), s->peer, sni, NULL);
	str_free(&name);
	if (ssl == NULL) {
		session_fail(s, &(struct queue_dsn){4, 7, 5}, "cannot start TLS: out of memory",
		             false);
		return;
	}
	filter = bufferevent_openssl_filter_new(s->agent->base, s->bev, ssl,
	                                        BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (filter == NULL) {
		s->bev = NULL;
		session_fail(s, &(struct queue_dsn){4, 7, 5}, "cannot start TLS", false);
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(filter, 1);
	s->bev = filter;
	s->state = S_HANDSHAKE;
	bufferevent_setcb(filter, on_read, NULL, on_event, s);
	set_timeout(s, set->starttls_timeout);
	bufferevent_enable(filter, EV_READ | EV_WRITE);
}

/* Does the server certificate match one of the names the level asks
 * for ("hostname", "nexthop", "dot-nexthop" or a name)? */
static bool cert_matches(const struct smtp_session *s, SSL *ssl)
{
	const struct smtp_job *job = s->job;
	const struct smtp_settings *set = &s->agent->set;
	const strv_t *match = job->tls.match.n > 0                ? &job->tls.match
	                      : job->tls.level == SMTP_TLS_SECURE ? &set->tls_secure_match
	                                                          : &set->tls_verify_match;
	X509 *cert = SSL_get1_peer_certificate(ssl);
	bool ok = false;
	str_t name;

	if (cert == NULL)
		return false;
	str_init(&name);
	for (size_t i = 0; i < match->n && !ok; i++) {
		str_reset(&name);
		if (strcasecmp(match->v[i], "hostname") == 0) {
			str_append(&name, s->host);
		} else if (strcasecmp(match->v[i], "nexthop") == 0) {
			nexthop_domain(job->dest_key, &name);
		} else if (strcasecmp(match->v[i], "dot-nexthop") == 0) {
			/* OpenSSL: a name with a leading dot matches any
			 * subdomain of it. */
			str_append_c(&name, '.');
			nexthop_domain(job->dest_key, &name);
		} else {
			str_append(&name, match->v[i]);
		}
		ok = X509_check_host(cert, str_c(&name), name.len, 0, NULL) == 1;
	}
	str_free(&name);
	X509_free(cert);
	return ok;
}

static void tls_done(struct smtp_session *s)
{
	const struct smtp_job *job = s->job;
	SSL *ssl = bufferevent_openssl_get_ssl(s->bev);
	struct tls_info info;
	str_t line;

	tls_info_get(ssl, &info);
	if (job->tls.level >= SMTP_TLS_VERIFY) {
		info.peer_name_checked = true;
		info.peer_name_matched = info.peer_verified && cert_matches(s, ssl);
	}
	if (s->agent->set.tls_loglevel >= 1) {
		str_init(&line);
		tls_info_client_log_line(&info, s->peer, &line);
		log_info("%s", str_c(&line));
		str_free(&line);
	}
	s->tls_active = true;
	if (job->tls.level >= SMTP_TLS_VERIFY && !info.peer_name_matched) {
		str_init(&line);
		str_appendf(&line, "Server certificate not verified%s%s",
		            info.verify_error[0] ? ": " : "", info.verify_error);
		log_info("%s: %s: %s", job->queue_id, s->peer, str_c(&line));
		session_fail(s, &(struct queue_dsn){4, 7, 5}, str_c(&line), false);
		str_free(&line);
		return;
	}
	send_ehlo(s);
}

static void tls_failed(struct smtp_session *s)
{
	struct smtp_job *job = s->job;
	str_t why;

	str_init(&why);
	str_appendf(&why, "Cannot start TLS: handshake failure");
	log_info("SSL_connect error to %s: lost connection", s->peer);
	tls_errors_append(&why);
	if (job->tls.level == SMTP_TLS_MAY && job->next_addr > 0) {
		/* Opportunistic TLS that failed: the same server once more,
		 * in plaintext (Postfix's "may" fallback). */
		job->next_addr--;
		job->plaintext_retry = true;
	}
	session_fail(s, &(struct queue_dsn){4, 7, 5}, str_c(&why), false);
	str_free(&why);
}

/* After EHLO (or after TLS, EHLO again): TLS, then AUTH, then mail. */
static void after_ehlo(struct smtp_session *s)
{
	struct smtp_job *job = s->job;
	const struct smtp_settings *set = &s->agent->set;
	enum smtp_tls_level level = job->tls.level;
	str_t why;

	if (!s->tls_active && level != SMTP_TLS_NONE && !s->no_tls) {
		str_init(&why);
		if (!s->starttls || !s->esmtp) {
			if (level >= SMTP_TLS_ENCRYPT) {
				str_appendf(&why,
				            "TLS is required, but was not offered by host %s[%s]",
				            s->host, s->addr);
				session_fail(s, &(struct queue_dsn){4, 7, 4}, str_c(&why), false);
				str_free(&why);
				return;
			}
		} else if (tls_context(s, level) == NULL) {
			if (level >= SMTP_TLS_ENCRYPT) {
				str_appendf(
				        &why,
				        "TLS is required, but our TLS engine is unavailable: %s",
				        set->tls_error != NULL ? set->tls_error : "no context");
				session_fail(s, &(struct queue_dsn){4, 7, 5}, str_c(&why), false);
				str_free(&why);
				return;
			}
		} else {
			str_free(&why);
			start_tls(s);
			return;
		}
		str_free(&why);
	} else if (!s->tls_active && s->starttls && set->tls_note_starttls_offer &&
	           level == SMTP_TLS_NONE) {
		log_info("Host offered STARTTLS: [%s]", s->host);
	}
	start_auth(s);
}

/* ---- AUTH ---- */

static void auth_lookup_next(struct smtp_session *s);

static void on_auth_password(const struct table_result *r, void *ctx)
{
	struct smtp_session *s = ctx;
	const struct smtp_settings *set = &s->agent->set;
	const char *value, *colon;
	char *user;
	str_t why;

	s->sasl_req = NULL;
	if (r->status == TABLE_TEMPFAIL) {
		str_init(&why);
		str_appendf(&why,
		            "SASL authentication failed; cannot look up the password for %s: %s",
		            s->host, str_c(&r->error));
		session_fail(s, &(struct queue_dsn){4, 3, 0}, str_c(&why), false);
		str_free(&why);
		return;
	}
	if (r->status == TABLE_NOTFOUND) {
		auth_lookup_next(s);
		return;
	}
	value = str_c(&r->value);
	colon = strchr(value, ':');
	user = colon != NULL ? xstrndup(value, (size_t)(colon - value)) : xstrdup(value);
	str_init(&why);
	s->sasl = smtp_sasl_new(set, s->auth_mechs, s->tls_active, user,
	                        colon != NULL ? colon + 1 : "", &why);
	free(user);
	if (s->sasl == NULL) {
		str_t msg;

		str_init(&msg);
		str_appendf(&msg,
		            "SASL authentication failed; cannot authenticate to server %s[%s]: %s",
		            s->host, s->addr, str_c(&why));
		session_fail(s, &(struct queue_dsn){4, 7, 0}, str_c(&msg), false);
		str_free(&msg);
		str_free(&why);
		return;
	}
	str_free(&why);
	{
		const char *initial = smtp_sasl_initial(s->sasl);
		char *line = initial != NULL
		                     ? xasprintf("AUTH %s %s", smtp_sasl_mech(s->sasl), initial)
		                     : xasprintf("AUTH %s", smtp_sasl_mech(s->sasl));

		s->state = S_AUTH;
		set_timeout(s, set->helo_timeout);
		log_debug(1, "> %s: AUTH %s ...", s->peer, smtp_sasl_mech(s->sasl));
		bufferevent_write(s->bev, line, strlen(line));
		bufferevent_write(s->bev, "\r\n", 2);
		free(line);
	}
}

/* smtp_sasl_password_maps: each key in order, each table in order. */
static void auth_lookup_next(struct smtp_session *s)
{
	const struct smtp_settings *set = &s->agent->set;

	if (s->sasl_map >= s->sasl_maps.n) {
		s->sasl_map = 0;
		s->sasl_key++;
	}
	if (s->sasl_key >= s->sasl_keys.n) {
		/* No password for this server: deliver without AUTH. */
		start_xforward(s);
		return;
	}
	s->state = S_AUTH_LOOKUP;
	s->sasl_req = table_async_lookup(set->tables, s->sasl_maps.v[s->sasl_map++],
	                                 s->sasl_keys.v[s->sasl_key], on_auth_password, s);
}

static void start_auth(struct smtp_session *s)
{
	const struct smtp_settings *set = &s->agent->set;
	const struct smtp_job *job = s->job;
	const char *err;

	if (!set->sasl_enable || s->authenticated || s->auth_mechs == NULL ||
	    set->sasl_password_maps[0] == '\0') {
		start_xforward(s);
		return;
	}
	strv_free(&s->sasl_keys);
	strv_free(&s->sasl_maps);
	if (strv_split_list(&s->sasl_maps, set->sasl_password_maps, &err) < 0 ||
	    s->sasl_maps.n == 0) {
		start_xforward(s);
		return;
	}
	/* Postfix's order: the sender and its @domain (sender-dependent
	 * authentication), the server's name, the nexthop as written. */
	if (set->sender_dependent_auth && job->env->sender[0] != '\0') {
		const char *at = strrchr(job->env->sender, '@');

		strv_add(&s->sasl_keys, job->env->sender);
		if (at != NULL)
			strv_add(&s->sasl_keys, at);
	}
	strv_add(&s->sasl_keys, s->host);
	if (strcasecmp(job->dest_key, s->host) != 0)
		strv_add(&s->sasl_keys, job->dest_key);
	s->sasl_key = 0;
	s->sasl_map = 0;
	auth_lookup_next(s);
}

static void on_auth(struct smtp_session *s)
{
	const struct smtp_settings *set = &s->agent->set;
	str_t why, out;

	if (s->code == 334) {
		str_init(&why);
		str_init(&out);
		if (smtp_sasl_step(s->sasl, reply_text(s), &out, &why) < 0) {
			/* Cancel the exchange; the server answers 501. */
			send_line(s, "*");
		} else {
			log_debug(1, "> %s: (SASL response)", s->peer);
			bufferevent_write(s->bev, out.buf, out.len);
			bufferevent_write(s->bev, "\r\n", 2);
		}
		str_free(&out);
		str_free(&why);
		return;
	}
	smtp_sasl_free(&s->sasl);
	if (s->code / 100 == 2) {
		s->authenticated = true;
		start_xforward(s);
		return;
	}
	str_init(&why);
	str_appendf(&why, "SASL authentication failed; server %s[%s] said: %s", s->host, s->addr,
	            str_c(&s->reply));
	{
		struct queue_dsn dsn = reply_dsn(s->code, reply_text(s));

		/* smtp_sasl_auth_soft_bounce: a wrong password is a
		 * configuration error to fix, not a reason to bounce. */
		if (dsn.klass == 5 && set->sasl_soft_bounce)
			dsn.klass = 4;
		session_fail(s, &dsn, str_c(&why), dsn.klass == 5);
	}
	str_free(&why);
}

/* ---- XFORWARD ---- */

static bool xforward_offered(const struct smtp_session *s, const char *name)
{
	for (size_t i = 0; i < s->xforward_names.n; i++)
		if (strcasecmp(s->xforward_names.v[i], name) == 0)
			return true;
	return false;
}

/* Append " NAME=xtext(value)" when the server takes NAME. */
static void xforward_attr(const struct smtp_session *s, str_t *line, const char *name,
                          const char *value)
{
	if (!xforward_offered(s, name))
		return;
	str_appendf(line, " %s=", name);
	if (value == NULL || value[0] == '\0')
		str_append(line, "[UNAVAILABLE]");
	else
		xtext_encode(value, strlen(value), line);
}

static const char *qattr(const struct smtp_job *job, const char *log_name, const char *name)
{
	const char *v = queue_file_attr(job->qf, log_name);

	return v != NULL ? v : queue_file_attr(job->qf, name);
}

static void start_xforward(struct smtp_session *s)
{
	const struct smtp_job *job = s->job;
	str_t line;

	if (!s->agent->set.send_xforward || !s->xforward) {
		start_transaction(s);
		return;
	}
	/* Two commands, as Postfix sends them, each well under 512 bytes. */
	s->state = S_XFORWARD;
	s->xforward_pending = 0;
	set_timeout(s, s->agent->set.xforward_timeout);
	str_init(&line);
	str_append(&line, "XFORWARD");
	xforward_attr(s, &line, "NAME",
	              qattr(job, QUEUE_ATTR_LOG_CLIENT_NAME, QUEUE_ATTR_CLIENT_NAME));
	xforward_attr(s, &line, "ADDR",
	              qattr(job, QUEUE_ATTR_LOG_CLIENT_ADDRESS, QUEUE_ATTR_CLIENT_ADDRESS));
	xforward_attr(s, &line, "PORT",
	              qattr(job, QUEUE_ATTR_LOG_CLIENT_PORT, QUEUE_ATTR_CLIENT_PORT));
	xforward_attr(s, &line, "PROTO", qattr(job, QUEUE_ATTR_LOG_PROTOCOL, QUEUE_ATTR_PROTOCOL));
	xforward_attr(s, &line, "HELO", qattr(job, QUEUE_ATTR_LOG_HELO_NAME, QUEUE_ATTR_HELO_NAME));
	if (line.len > strlen("XFORWARD")) {
		send_line(s, str_c(&line));
		s->xforward_pending++;
	}
	str_set(&line, "XFORWARD");
	xforward_attr(s, &line, "IDENT", job->queue_id);
	if (xforward_offered(s, "SOURCE")) {
		const char *ctx = queue_file_attr(job->qf, QUEUE_ATTR_REWRITE_CONTEXT);
		const char *addr = queue_file_attr(job->qf, QUEUE_ATTR_CLIENT_ADDRESS);

		str_appendf(&line, " SOURCE=%s",
		            ctx != NULL ? (strcasecmp(ctx, "local") == 0 ? "LOCAL" : "REMOTE")
		            : addr == NULL || strcmp(addr, "127.0.0.1") == 0 ||
		                            strcmp(addr, "::1") == 0
		                    ? "LOCAL"
		                    : "REMOTE");
	}
	if (line.len > strlen("XFORWARD")) {
		send_line(s, str_c(&line));
		s->xforward_pending++;
	}
	str_free(&line);
	if (s->xforward_pending == 0)
		start_transaction(s);
}

static void on_xforward(struct smtp_session *s)
{
	str_t why;

	if (s->code / 100 != 2) {
		str_init(&why);
		struct queue_dsn dsn = reply_dsn(s->code, reply_text(s));

		said(s, "XFORWARD", &why);
		dsn.klass = 4; /* a filter that refuses XFORWARD: try again */
		session_fail(s, &dsn, str_c(&why), false);
		str_free(&why);
		return;
	}
	if (--s->xforward_pending == 0)
		start_transaction(s);
}

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
	while (s->next_send < s->nsteps && (s->pipelining || s->next_send == s->next_reply)) {
		command_for(s, &s->steps[s->next_send++], &line);
		send_line(s, str_c(&line));
	}
	str_free(&line);
}

static void start_transaction(struct smtp_session *s)
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
		session_done(s);
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
			session_done(s);
			return;
		}
	}
	free(s->steps);
	free(s->accepted);
	s->steps = xcalloc(job->nrcpts + 2, sizeof(*s->steps));
	s->accepted = xcalloc(job->nrcpts, sizeof(*s->accepted));
	s->nsteps = s->next_send = s->next_reply = s->naccepted = s->lmtp_next = 0;
	s->mail_failed = false;
	s->steps[s->nsteps++] = (struct step){STEP_MAIL, 0};
	for (size_t i = 0; i < job->nrcpts; i++) {
		if (job->rcpts[i].state == SMTP_RCPT_DONE)
			continue;
		job->rcpts[i].soft = false;
		s->steps[s->nsteps++] = (struct step){STEP_RCPT, i};
	}
	s->steps[s->nsteps++] = (struct step){STEP_DATA, 0};
	s->state = S_TRANSACTION;
	set_timeout(s, s->agent->set.mail_timeout);
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

/* Queue the next part of the content; "." after the last. */
static void send_content(struct smtp_session *s)
{
	const struct smtp_job *job = s->job;
	const struct queue_envelope *env = job->env;
	unsigned limit = s->agent->set.line_length_limit;
	char in[SMTP_CONTENT_CHUNK];
	str_t out, why;
	ssize_t n;

	if (s->content_pos >= env->content_length) {
		/* The last line of the content ends with LF (cleanup); if not,
		 * end it here before the dot. */
		bufferevent_write(s->bev, s->at_line_start ? ".\r\n" : "\r\n.\r\n",
		                  s->at_line_start ? 3 : 5);
		s->state = S_DOT;
		set_timeout(s, s->agent->set.data_done_timeout);
		return;
	}
	str_init(&why);
	n = queue_file_read_content(job->qf, s->content_pos, in,
	                            env->content_length - s->content_pos < sizeof(in)
	                                    ? (size_t)(env->content_length - s->content_pos)
	                                    : sizeof(in),
	                            &why);
	if (n <= 0) {
		str_t msg;

		str_init(&msg);
		str_appendf(&msg, "cannot read the queue file: %s",
		            n < 0 ? str_c(&why) : "unexpected end of content");
		log_warning("%s: %s", job->queue_id, str_c(&msg));
		/* Break the session without the final dot: the server must
		 * not take a truncated message. */
		s->state = S_GREETING;
		session_fail(s, &(struct queue_dsn){4, 3, 0}, str_c(&msg), false);
		str_free(&msg);
		str_free(&why);
		return;
	}
	str_free(&why);
	str_init(&out);
	str_reserve(&out, (size_t)n + (size_t)n / 8 + 16);
	for (ssize_t i = 0; i < n; i++) {
		char c = in[i];

		if (c == '\n') {
			str_append(&out, "\r\n");
			s->at_line_start = true;
			s->line_len = 0;
			continue;
		}
		if (c == '\r' && i + 1 < n && in[i + 1] == '\n')
			continue; /* a CRLF in the queue file: one line end */
		if (s->at_line_start && c == '.')
			str_append_c(&out, '.');
		if (limit > 0 && s->line_len >= limit) {
			str_append(&out, "\r\n ");
			s->line_len = 1;
		}
		str_append_c(&out, c);
		s->at_line_start = false;
		s->line_len++;
	}
	s->content_pos += (uint64_t)n;
	bufferevent_write(s->bev, out.buf, out.len);
	str_free(&out);
}

/* A reply to MAIL, RCPT or DATA. */
static void on_transaction(struct smtp_session *s)
{
	struct smtp_job *job = s->job;
	const struct step *st = &s->steps[s->next_reply++];
	str_t why;

	switch (st->kind) {
	case STEP_MAIL:
		if (s->code / 100 != 2) {
			struct queue_dsn dsn = reply_dsn(s->code, reply_text(s));

			s->mail_failed = true;
			str_init(&why);
			said(s, "MAIL FROM", &why);
			for (size_t i = 1; i + 1 < s->nsteps; i++)
				rcpt_fail(s, s->steps[i].rcpt, "MAIL FROM");
			if (dsn.klass == 4) {
				str_set(&job->last_error, str_c(&why));
				job->last_dsn = dsn;
			}
			str_free(&why);
		}
		set_timeout(s, s->agent->set.rcpt_timeout);
		break;
	case STEP_RCPT:
		if (s->mail_failed)
			break;
		if (s->code / 100 == 2)
			s->accepted[s->naccepted++] = st->rcpt;
		else
			rcpt_fail(s, st->rcpt, "RCPT TO");
		if (s->next_reply + 1 == s->nsteps)
			set_timeout(s, s->agent->set.data_init_timeout);
		break;
	case STEP_DATA:
		if (s->code == 354 && (s->naccepted == 0 || s->mail_failed)) {
			/* Pipelined DATA accepted although nobody can receive
			 * the mail: an empty message closes it. */
			s->state = S_DOT_EMPTY;
			send_line(s, ".");
			return;
		}
		if (s->naccepted == 0 || s->mail_failed) {
			session_done(s);
			return;
		}
		if (s->code != 354) {
			for (size_t i = 0; i < s->naccepted; i++)
				rcpt_fail(s, s->accepted[i], "DATA");
			session_done(s);
			return;
		}
		s->state = S_CONTENT;
		s->content_pos = 0;
		s->at_line_start = true;
		s->line_len = 0;
		set_timeout(s, s->agent->set.data_xfer_timeout);
		bufferevent_setcb(s->bev, on_read, on_content_written, on_event, s);
		send_content(s);
		return;
	}
	/* Without PIPELINING, one command per reply; stop early when
	 * nothing can come of the rest. */
	if (!s->pipelining) {
		if (s->mail_failed || (s->next_reply + 1 == s->nsteps && s->naccepted == 0)) {
			session_done(s);
			return;
		}
		send_steps(s);
	}
}

/* A reply to the end of the content (LMTP: one per accepted recipient). */
static void on_dot(struct smtp_session *s)
{
	struct smtp_job *job = s->job;
	size_t first = s->lmtp_next, last = s->naccepted;

	if (s->agent->set.lmtp)
		last = first + 1;
	for (size_t i = first; i < last && i < s->naccepted; i++) {
		size_t k = s->accepted[i];

		if (s->code / 100 == 2) {
			struct queue_dsn dsn = reply_dsn(s->code, reply_text(s));

			smtp_rcpt_set(job, &job->rcpts[k], 's', &dsn, str_c(&s->reply));
		} else
			rcpt_fail(s, k, "end of DATA");
	}
	s->lmtp_next = last;
	if (s->lmtp_next < s->naccepted)
		return;
	bufferevent_setcb(s->bev, on_read, NULL, on_event, s);
	session_done(s);
}

static void on_rset(struct smtp_session *s)
{
	if (s->code / 100 != 2) {
		str_t why;

		str_init(&why);
		said(s, "RSET", &why);
		session_fail(s, &(struct queue_dsn){4, 4, 2}, str_c(&why), false);
		str_free(&why);
		return;
	}
	start_xforward(s);
}

static void on_reply(struct smtp_session *s)
{
	switch (s->state) {
	case S_GREETING:
		on_greeting(s);
		return;
	case S_EHLO:
	case S_HELO:
		on_ehlo(s);
		return;
	case S_STARTTLS:
		on_starttls(s);
		return;
	case S_AUTH:
		on_auth(s);
		return;
	case S_XFORWARD:
		on_xforward(s);
		return;
	case S_RSET:
		on_rset(s);
		return;
	case S_TRANSACTION:
		on_transaction(s);
		return;
	case S_DOT:
		on_dot(s);
		return;
	case S_DOT_EMPTY:
		session_done(s);
		return;
	case S_CONNECTING:
	case S_HANDSHAKE:
	case S_AUTH_LOOKUP:
	case S_CONTENT:
	case S_QUIT:
	case S_IDLE:
		break;
	}
	lost(s, LOST_PROTOCOL, "unexpected reply");
}

/* ---- starting ---- */

static int bind_local(const struct smtp_session *s, int fd)
{
	const struct smtp_settings *set = &s->agent->set;
	const char *local = s->family == AF_INET6 ? set->bind_address6 : set->bind_address;
	struct sockaddr_storage ss;
	socklen_t len;

	if (local[0] == '\0' || s->family == AF_UNIX)
		return 0;
	memset(&ss, 0, sizeof(ss));
	if (s->family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		if (inet_pton(AF_INET, local, &sin->sin_addr) != 1)
			return -1;
		len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		if (inet_pton(AF_INET6, local, &sin6->sin6_addr) != 1)
			return -1;
		len = sizeof(*sin6);
	}
	return bind(fd, (struct sockaddr *)&ss, len);
}

void smtp_session_start(struct smtp_job *job, const struct smtp_addr *a)
{
	struct smtp_agent *agent = job->agent;
	struct smtp_session *s = xcalloc(1, sizeof(*s));
	struct sockaddr_storage ss;
	socklen_t len = 0;
	int fd;

	s->agent = agent;
	s->job = job;
	s->host = xstrdup(a->host);
	(void)snprintf(s->addr, sizeof(s->addr), "%s", a->addr);
	s->family = a->family;
	s->port = a->port;
	s->dest_key = xstrdup(job->dest_key);
	s->started_usec = delivery_now_usec();
	s->no_tls = job->plaintext_retry;
	job->plaintext_retry = false;
	str_init(&s->reply);
	memset(&ss, 0, sizeof(ss));
	if (a->family == AF_UNIX) {
		struct sockaddr_un *sun = (struct sockaddr_un *)&ss;
		const char *rel = a->addr;
		size_t qlen = strlen(agent->set.queue_dir);

		sun->sun_family = AF_UNIX;
		(void)snprintf(sun->sun_path, sizeof(sun->sun_path), "%s", a->addr);
		len = sizeof(*sun);
		/* Postfix logs "relay=myhostname[private/dovecot-lmtp]". */
		if (strncmp(rel, agent->set.queue_dir, qlen) == 0 && rel[qlen] == '/')
			rel += qlen + 1;
		free(s->host);
		s->host = xstrdup(agent->set.myhostname);
		(void)snprintf(s->addr, sizeof(s->addr), "%s", rel);
		s->peer = xasprintf("%s[%s]", s->host, s->addr);
	} else if (a->family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)a->port);
		(void)inet_pton(AF_INET, a->addr, &sin->sin_addr);
		len = sizeof(*sin);
		s->peer = xasprintf("%s[%s]:%u", s->host, s->addr, s->port);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)a->port);
		(void)inet_pton(AF_INET6, a->addr, &sin6->sin6_addr);
		len = sizeof(*sin6);
		s->peer = xasprintf("%s[%s]:%u", s->host, s->addr, s->port);
	}
	job->session = s;
	s->state = S_CONNECTING;
	fd = socket(a->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind_local(s, fd) < 0) {
		char msg[160];

		(void)snprintf(msg, sizeof(msg), "%s", strerror(errno));
		if (fd >= 0)
			close(fd);
		lost(s, LOST_CLOSED, msg);
		return;
	}
	s->bev = bufferevent_socket_new(agent->base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(s->bev, on_read, NULL, on_event, s);
	set_timeout(s, agent->set.connect_timeout);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	/* An immediate failure runs on_event() from within this call (the
	 * session is gone then): the return value adds nothing. */
	(void)bufferevent_socket_connect(s->bev, (struct sockaddr *)&ss, (int)len);
}

void smtp_session_reuse(struct smtp_session *s, struct smtp_job *job)
{
	s->job = job;
	job->session = s;
	job->connected = delivery_now_usec();
	s->failed = false;
	s->state = S_RSET;
	bufferevent_setcb(s->bev, on_read, NULL, on_event, s);
	set_timeout(s, s->agent->set.rset_timeout);
	send_line(s, "RSET");
}
