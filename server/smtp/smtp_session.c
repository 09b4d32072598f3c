/* smtp_session.c - one connection of the SMTP/LMTP client to a server:
 * connect (smtp_bind_address, smtp_connect_timeout), reading the replies,
 * dispatching each to the step that waits for it (smtp_greet.c,
 * smtp_xact.c), failures, QUIT, and the connection cache.
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
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "daemon/event_server.h"
#include "delivery/delivery_log.h"
#include "table/table_async.h"

#include "smtp_session.h"

#define SMTP_REPLY_LINE_MAX 2048
#define SMTP_REPLY_LINES 200

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

const char *smtp_session_peer(const struct smtp_session *s)
{
	return s->peer;
}

unsigned smtp_session_uses(const struct smtp_session *s)
{
	return s->uses;
}

const char *smtp_session_host(const struct smtp_session *s)
{
	return s->host;
}

static void session_close(struct smtp_session *s);

/* ---- writing and timeouts ---- */

void smtp_session_set_timeout(struct smtp_session *s, unsigned seconds)
{
	struct timeval tv = {seconds > 0 ? seconds : 1, 0};

	bufferevent_set_timeouts(s->bev, &tv, &tv);
}

void smtp_session_send(struct smtp_session *s, const char *line)
{
	log_debug(1, "> %s: %s", s->peer, line);
	bufferevent_write(s->bev, line, strlen(line));
	bufferevent_write(s->bev, "\r\n", 2);
}

/* ---- outcomes ---- */

/* The server's enhanced status code, or one made from the reply code. */
struct queue_dsn smtp_reply_dsn(int code, const char *text)
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
void smtp_session_said(const struct smtp_session *s, const char *command, str_t *out)
{
	str_appendf(out, "host %s[%s] said: %s (in reply to %s command)", s->host, s->addr,
	            str_c(&s->reply), command);
}

/* The text after "NNN " of the current reply. */
const char *smtp_session_reply_text(const struct smtp_session *s)
{
	return s->reply.len > 4 ? str_c(&s->reply) + 4 : "";
}

/* A recipient failed at this server: 5xx is final, 4xx waits for the
 * next server (or becomes the deferral's reason). */
void smtp_session_rcpt_fail(struct smtp_session *s, size_t i, const char *command)
{
	struct smtp_job *job = s->job;
	struct smtp_rcpt *r = &job->rcpts[i];
	struct queue_dsn dsn = smtp_reply_dsn(s->code, smtp_session_reply_text(s));
	str_t why;

	str_init(&why);
	smtp_session_said(s, command, &why);
	if (s->code >= 500) {
		smtp_rcpt_set(job, r, 'b', &dsn, str_c(&why));
	} else {
		/* 452 to RCPT: too many recipients in this transaction; the
		 * rest go in the next one (RFC 5321 4.5.3.1.10). */
		if (s->code == 452 && strcmp(command, "RCPT TO") == 0)
			s->too_many = true;
		free(r->reason);
		r->reason = str_steal(&why);
		r->dsn = dsn;
		r->soft = true;
	}
	str_free(&why);
}

/* The session cannot go on: remember why for the recipients that are
 * left, then close. dsn class 5 with final: bounce them now. */
void smtp_session_fail(struct smtp_session *s, const struct queue_dsn *dsn, const char *why,
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
		case STEP_BDAT:
			return "sending message body";
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
	smtp_session_fail(s, &(struct queue_dsn){4, 4, s->state == S_CONNECTING ? 1 : 2},
	                  str_c(&why), false);
	str_free(&why);
}

/* ---- connection ---- */

static void session_free(struct smtp_session *s)
{
	if (s->guard) {
		s->dead = true; /* freed when the callback that holds it returns */
		return;
	}
	if (s->idle_ev != NULL)
		event_free(s->idle_ev);
	if (s->bev != NULL && s->tls_active && s->state == S_QUIT) {
		/* A clean end (QUIT said): OpenSSL must not think the session
		 * broken, or it marks it not resumable and the next
		 * connection cannot resume it. A session that failed keeps
		 * OpenSSL's default: not resumed. */
		SSL *ssl = bufferevent_openssl_get_ssl(s->bev);

		if (ssl != NULL)
			SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	}
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
	free(s->dest);
	str_free(&s->reply);
	str_free(&s->bdat_fail_reply);
	str_destroy(&s->converted);
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
		smtp_session_set_timeout(
		        s, s->agent->set.quit_timeout < 10 ? s->agent->set.quit_timeout : 10);
		bufferevent_setcb(s->bev, NULL, on_quit_written, on_quit_event, s);
		smtp_session_send(s, "QUIT");
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
	smtp_agent_check_idle(s->agent);
	session_free(s);
}

static void on_idle_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;

	(void)fd;
	(void)what;
	LIST_REMOVE(s, link);
	s->agent->ncached--;
	smtp_agent_check_idle(s->agent);
	s->state = S_QUIT;
	bufferevent_setcb(s->bev, NULL, on_quit_written, on_quit_event, s);
	smtp_session_send(s, "QUIT");
}

static bool cache_wanted(const struct smtp_session *s, const struct smtp_job *job)
{
	const struct smtp_settings *set = &s->agent->set;

	if (s->failed || event_server_draining(s->agent->srv))
		return false;
	/* Postfix: per-sender credentials and a shared connection do not
	 * mix (the next sender would go out under this one's login). */
	if (set->sasl_enable && set->sender_dependent_auth && s->authenticated)
		return false;
	/* A server that said more than was asked: its next reply would be
	 * taken for the answer to our next command. */
	if (s->bev != NULL && evbuffer_get_length(bufferevent_get_input(s->bev)) > 0)
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
void smtp_session_done(struct smtp_session *s)
{
	struct smtp_job *job = s->job;
	struct timeval tv = {s->agent->set.cache_time_limit, 0};

	/* Recipients the server took none of because there were too many:
	 * another transaction on this connection, as long as each one
	 * delivers something (so this ends). */
	if (job != NULL && smtp_job_todo(job) > 0 && s->too_many && s->naccepted > 0 &&
	    !s->failed && s->state != S_QUIT) {
		s->too_many = false;
		smtp_xact_start(s);
		return;
	}
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
/* Read the lines in the input buffer into replies and dispatch each.
 * Why the guard: a reply's handler may end the session (a refused EHLO
 * fails it, a 2xx to the dot caches or closes it) while more lines wait
 * in the buffer; the session must then not be freed under the loop, nor
 * read on. session_free() only marks it while s->guard is set. */
void smtp_session_on_read(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	s->guard = true;
	while (!s->dead && s->bev == bev && s->state != S_IDLE && s->state != S_QUIT) {
		struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_CRLF);
		size_t len;
		char *line;
		bool last;

		if (eol.pos < 0) {
			if (evbuffer_get_length(in) > SMTP_REPLY_LINE_MAX) {
				s->state = s->state == S_CONNECTING ? S_GREETING : s->state;
				lost(s, LOST_PROTOCOL, "reply line too long");
			}
			break;
		}
		if ((size_t)eol.pos > SMTP_REPLY_LINE_MAX) {
			lost(s, LOST_PROTOCOL, "reply line too long");
			break;
		}
		line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
		if (line == NULL)
			break;
		log_debug(1, "< %s: %s", s->peer, line);
		if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
		    line[2] < '0' || line[2] > '9' ||
		    (len > 3 && line[3] != ' ' && line[3] != '-')) {
			free(line);
			str_reset(&s->reply);
			lost(s, LOST_PROTOCOL, "malformed reply");
			break;
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
			break;
		}
		if (!last)
			continue;
		s->lines = 0;
		on_reply(s);
	}
	s->guard = false;
	if (s->dead)
		session_free(s);
}

void smtp_session_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_session *s = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		if (s->state == S_CONNECTING) {
			s->state = S_GREETING;
			if (s->job != NULL && s->job->connected == 0)
				s->job->connected = delivery_now_usec();
			smtp_session_set_timeout(s, s->agent->set.helo_timeout);
		} else if (s->state == S_HANDSHAKE) {
			smtp_greet_tls_done(s);
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
		smtp_greet_tls_failed(s);
		return;
	}
	if (s->state == S_CONNECTING) {
		int err = EVUTIL_SOCKET_ERROR();

		lost(s, LOST_CLOSED, evutil_socket_error_to_string(err != 0 ? err : ECONNREFUSED));
		return;
	}
	lost(s, LOST_CLOSED, "lost connection");
}

static void on_reply(struct smtp_session *s)
{
	switch (s->state) {
	case S_GREETING:
		smtp_greet_on_greeting(s);
		return;
	case S_EHLO:
	case S_HELO:
		smtp_greet_on_ehlo(s);
		return;
	case S_STARTTLS:
		smtp_greet_on_starttls(s);
		return;
	case S_AUTH:
		smtp_greet_on_auth(s);
		return;
	case S_XFORWARD:
		smtp_greet_on_xforward(s);
		return;
	case S_RSET:
		smtp_xact_on_rset(s);
		return;
	case S_TRANSACTION:
		smtp_xact_on_reply(s);
		return;
	case S_DOT:
		if (s->bdat)
			smtp_xact_on_bdat(s);
		else
			smtp_xact_on_dot(s);
		return;
	case S_DOT_EMPTY:
		smtp_session_done(s);
		return;
	case S_CONTENT:
		if (s->bdat) {
			smtp_xact_on_bdat(s);
			return;
		}
		break;
	case S_CONNECTING:
	case S_HANDSHAKE:
	case S_AUTH_LOOKUP:
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
	int fd, rc, err;

	s->agent = agent;
	s->job = job;
	s->host = xstrdup(a->host);
	(void)snprintf(s->addr, sizeof(s->addr), "%s", a->addr);
	s->family = a->family;
	s->port = a->port;
	s->dest_key = xstrdup(job->dest_key);
	s->dest = xstrdup(a->dest != NULL ? a->dest : job->dest_key);
	s->started_usec = delivery_now_usec();
	s->uses = 1;
	s->no_tls = job->plaintext_retry;
	job->plaintext_retry = false;
	str_init(&s->reply);
	str_init(&s->bdat_fail_reply);
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
	/* Why TCP_NODELAY: the end of the content (or a command after a
	 * reply) is a small write behind a larger one; with Nagle's
	 * algorithm it waits for the server's delayed ACK, 40 ms a message. */
	if (a->family != AF_UNIX)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
	s->bev = bufferevent_socket_new(agent->base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(s->bev, smtp_session_on_read, NULL, smtp_session_on_event, s);
	smtp_session_set_timeout(s, agent->set.connect_timeout);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	/* An immediate failure (no such socket, no route) returns -1 with
	 * errno; should a libevent version also call the event callback
	 * from within the call, the guard keeps the session until here. */
	s->guard = true;
	rc = bufferevent_socket_connect(s->bev, (struct sockaddr *)&ss, (int)len);
	err = errno;
	s->guard = false;
	if (s->dead)
		session_free(s);
	else if (rc < 0)
		lost(s, LOST_CLOSED, strerror(err != 0 ? err : ECONNREFUSED));
}

void smtp_session_reuse(struct smtp_session *s, struct smtp_job *job)
{
	s->job = job;
	s->uses++;
	job->session = s;
	job->connected = delivery_now_usec();
	s->failed = false;
	s->state = S_RSET;
	bufferevent_setcb(s->bev, smtp_session_on_read, NULL, smtp_session_on_event, s);
	smtp_session_set_timeout(s, s->agent->set.rset_timeout);
	smtp_session_send(s, "RSET");
}
