/* smtpd_auth.c - SMTP AUTH (RFC 4954) in smtpd: the AUTH command and its
 * challenge/response exchange, the EHLO keyword, MAIL's AUTH= parameter,
 * the sasl_* queue file attributes and log fields, and the listener's
 * SASL settings.
 *
 * The checking itself is lib/sasl (postern's database, Cyrus SASL or
 * Dovecot's auth server, smtpd_sasl_type). Each step may block (a
 * database query, a deliberately slow password hash, a socket), so it
 * runs in the table_async worker pool; the session waits with its input
 * paused and the event loop serves everyone else. While a step runs in
 * a worker, the job owns the lib/sasl session: a client that goes away
 * meanwhile cannot free it under the worker's feet.
 *
 * Replies and log lines are Postfix 3.7's, so that fail2ban's postfix
 * filter matches postern's failures: "warning: name[addr]: SASL PLAIN
 * authentication failed: REASON".
 *
 * SECURITY: responses are base64 with a bounded length
 * (smtpd_sasl_response_limit), decoded strictly; exchanges are bounded
 * in rounds; nothing a client sends in an AUTH exchange is logged or
 * kept after the step that used it (the buffers are wiped). After a
 * failure the reply waits smtpd_sasl_failure_delay, and after
 * smtpd_sasl_failure_limit failures the session ends.
 */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/base64.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/utf8.h"
#include "address/xtext.h"
#include "conf/config.h"
#include "queue/queue_file.h"
#include "sasl/sasl.h"
#include "smtpd.h"
#include "table/table_async.h"

/* Most challenge/response rounds in one exchange (PLAIN needs 1, LOGIN
 * 2, SCRAM 2-3, DIGEST-MD5 2). */
#define AUTH_ROUNDS_MAX 10

/* One step in a worker. */
struct auth_job {
	struct sasl_session *sasl; /* owned while the job runs */
	char *mech; /* first step only */
	str_t response; /* decoded; wiped */
	bool has_response;
	enum sasl_result result;
	str_t challenge;
	str_t reason;
	unsigned rounds;
};

int smtpd_auth_listener_init(struct smtpd_listener *lis, str_t *error)
{
	struct config *cfg = lis->cfg;

	lis->sasl_broken_clients = config_bool(cfg, "broken_sasl_auth_clients");
	lis->sasl_auth_header = config_bool(cfg, "smtpd_sasl_authenticated_header");
	lis->sasl_response_limit = (size_t)config_int(cfg, "smtpd_sasl_response_limit");
	lis->sasl_failure_delay = config_time(cfg, "smtpd_sasl_failure_delay");
	lis->sasl_failure_limit = (unsigned)config_int(cfg, "smtpd_sasl_failure_limit");
	smtpd_netlist_init(&lis->sasl_exceptions,
	                   config_list(cfg, "smtpd_sasl_exceptions_networks"), lis->service,
	                   "smtpd_sasl_exceptions_networks");
	if (!config_bool(cfg, "smtpd_sasl_auth_enable"))
		return 0;
	if (sasl_server_create(cfg, &lis->sasl, error) < 0)
		return -1;
	return 0;
}

void smtpd_auth_listener_free(struct smtpd_listener *lis)
{
	sasl_server_free(&lis->sasl);
	smtpd_netlist_free(&lis->sasl_exceptions);
}

/* AUTH works in this session: enabled and not waiting for TLS
 * (smtpd_tls_auth_only, or "encrypt": Postfix hides AUTH before STARTTLS
 * then too). */
static bool auth_active(struct smtpd_session *s)
{
	struct smtpd_listener *lis = s->lis;

	if (lis->sasl == NULL)
		return false;
	if (s->tls == NULL && (lis->tls_auth_only || lis->tls_level == TLS_LEVEL_ENCRYPT))
		return false;
	return true;
}

static void refresh_run(void *job)
{
	sasl_server_refresh(job);
}

static void refresh_done(void *job, const char *error, void *ctx)
{
	struct smtpd_listener *lis = ctx;

	(void)job;
	(void)error;
	lis->sasl_refresh = NULL;
}

static void refresh_free(void *job)
{
	(void)job; /* the listener's SASL server: not the job's to free */
}

/* At most one refresh at a time, and not more often than every 10 s. */
static void mechanisms_refresh(struct smtpd_listener *lis)
{
	time_t now = time(NULL);

	if (lis->sasl_refresh != NULL || now - lis->sasl_refresh_at < 10)
		return;
	lis->sasl_refresh_at = now;
	lis->sasl_refresh = table_async_job(lis->server->pool, refresh_run, refresh_done,
	                                    refresh_free, lis->sasl, lis);
}

size_t smtpd_auth_ehlo_keywords(struct smtpd_session *s, const char **kws, size_t n)
{
	const char *mechs;

	if (!auth_active(s))
		return n;
	/* smtpd_sasl_exceptions_networks only keeps the keyword from
	 * clients that misbehave when they see it; AUTH itself still works
	 * for them (Postfix 3.7 answers it too). */
	if (s->lis->sasl_exceptions.n > 0 && smtpd_netlist_match(&s->lis->sasl_exceptions, s->addr))
		return n;
	mechs = sasl_server_mechanisms(s->lis->sasl, s->tls != NULL);
	if (mechs[0] == '\0') {
		/* No mechanisms: the auth server (Dovecot) did not answer when
		 * it was last asked. Ask again, in a worker, now and then. */
		mechanisms_refresh(s->lis);
		return n;
	}
	str_reset(&s->auth_reply);
	str_appendf(&s->auth_reply, "AUTH %s", mechs);
	if (s->lis->sasl_broken_clients) {
		/* Both lines live in one buffer: "AUTH m\0AUTH=m". */
		size_t second = s->auth_reply.len + 1;

		str_append_c(&s->auth_reply, '\0');
		str_appendf(&s->auth_reply, "AUTH=%s", mechs);
		kws[n++] = s->auth_reply.buf;
		kws[n++] = s->auth_reply.buf + second;
		return n;
	}
	kws[n++] = s->auth_reply.buf;
	return n;
}

static void job_free(void *arg)
{
	struct auth_job *job = arg;

	sasl_session_free(&job->sasl);
	free(job->mech);
	explicit_bzero(job->response.buf, job->response.len);
	str_free(&job->response);
	explicit_bzero(job->challenge.buf, job->challenge.len);
	str_free(&job->challenge);
	str_free(&job->reason);
	free(job);
}

static void job_run(void *arg)
{
	struct auth_job *job = arg;

	/* No initial response (NULL) is not the empty one (""). */
	job->result = sasl_session_step(
	        job->sasl, job->mech,
	        job->has_response ? (const unsigned char *)str_c(&job->response) : NULL,
	        job->response.len, &job->challenge, &job->reason);
	if (job->has_response) {
		explicit_bzero(job->response.buf, job->response.len);
		str_reset(&job->response);
	}
}

/* The exchange is over (either way): forget its state. */
static void exchange_end(struct smtpd_session *s)
{
	sasl_session_free(&s->sasl);
	free(s->auth_mech);
	s->auth_mech = NULL;
	if (s->state == SMTPD_ST_AUTH)
		s->state = SMTPD_ST_CMD;
}

static void on_delay(evutil_socket_t fd, short what, void *arg)
{
	struct smtpd_session *s = arg;

	(void)fd;
	(void)what;
	if (s->state == SMTPD_ST_CLOSING)
		return;
	smtpd_reply_error(s, "%s", str_c(&s->auth_reply));
	if (s->state == SMTPD_ST_CLOSING)
		return;
	if (s->lis->sasl_failure_limit > 0 && s->auth_failures >= s->lis->sasl_failure_limit) {
		log_info("too many errors after AUTH from %s[%s]", s->name, s->addr);
		smtpd_hangup(s, "421 4.7.0 %s Error: too many errors", s->set->myhostname);
		return;
	}
	smtpd_session_resume(s);
}

/* A failed exchange: Postfix's warning (fail2ban reads it), then the
 * reply after smtpd_sasl_failure_delay. */
static void exchange_failed(struct smtpd_session *s, const char *mech, const char *reason,
                            bool temporary)
{
	struct timeval tv = {(time_t)s->lis->sasl_failure_delay, 0};
	const char *login = s->sasl != NULL ? sasl_session_login(s->sasl) : NULL;
	char *shown = NULL;

	/* Postfix's line, with the login the client named when known (a
	 * client's text: cleaned of controls and bounded first). */
	if (login != NULL) {
		shown = xstrndup(login, strnlen(login, 255)); /* xstrndup copies n bytes */
		printable_fix(shown, PRINTABLE_UTF8 | PRINTABLE_NO_SPACE, '?');
	}
	log_warning("%s[%s]: SASL %.100s authentication failed: %s%s%s", s->name, s->addr, mech,
	            reason[0] != '\0' ? reason : "(reason unavailable)",
	            shown != NULL ? ", sasl_username=" : "", shown != NULL ? shown : "");
	free(shown);
	str_reset(&s->auth_reply);
	if (temporary)
		str_appendf(&s->auth_reply, "454 4.7.0 Temporary authentication failure: %s",
		            reason);
	else
		str_appendf(&s->auth_reply, "535 5.7.8 Error: authentication failed: %s", reason);
	exchange_end(s);
	s->auth_failures++;
	if (s->lis->sasl_failure_delay == 0) {
		on_delay(-1, 0, s);
		return;
	}
	if (s->auth_delay_ev == NULL)
		s->auth_delay_ev = evtimer_new(s->lis->server->base, on_delay, s);
	smtpd_session_wait(s);
	evtimer_add(s->auth_delay_ev, &tv);
}

/* A protocol error inside the exchange (bad base64, abort, too long):
 * the exchange ends with reply, which counts as an error. */
static void exchange_error(struct smtpd_session *s, const char *reply)
{
	exchange_end(s);
	smtpd_reply_error(s, "%s", reply);
	smtpd_session_resume(s);
}

static void job_done(void *arg, const char *error, void *ctx)
{
	struct auth_job *job = arg;
	struct smtpd_session *s = ctx;
	str_t enc;

	s->auth_req = NULL;
	/* The session takes its SASL state back. */
	s->sasl = job->sasl;
	job->sasl = NULL;
	if (s->state == SMTPD_ST_CLOSING) /* cancelled at close: never here */
		return;
	if (error != NULL) {
		exchange_failed(s, s->auth_mech, "authentication service busy", true);
		return;
	}
	switch (job->result) {
	case SASL_OK:
		s->sasl_username = xstrdup(sasl_session_username(s->sasl));
		s->sasl_method = xstrdup(s->auth_mech);
		exchange_end(s);
		smtpd_cmd_ok(s, SMTP_VERB_AUTH);
		smtpd_reply(s, "235 2.7.0 Authentication successful");
		smtpd_session_resume(s);
		return;
	case SASL_CONTINUE:
		if (job->rounds >= AUTH_ROUNDS_MAX) {
			exchange_failed(s, s->auth_mech, "too many authentication rounds", false);
			return;
		}
		str_init(&enc);
		base64_encode(job->challenge.buf, job->challenge.len, &enc);
		s->state = SMTPD_ST_AUTH;
		s->auth_rounds = job->rounds + 1;
		smtpd_reply(s, "334 %s", str_c(&enc));
		str_free(&enc);
		smtpd_session_resume(s);
		return;
	case SASL_BAD_MESSAGE:
		exchange_failed(s, s->auth_mech, str_c(&job->reason), false);
		return;
	case SASL_BAD_MECH:
		/* Postfix 3.7's words (from Cyrus). */
		exchange_failed(s, s->auth_mech, "no mechanism available", false);
		return;
	case SASL_TEMPFAIL:
		exchange_failed(s, s->auth_mech, str_c(&job->reason), true);
		return;
	case SASL_FAIL:
	default:
		exchange_failed(s, s->auth_mech, str_c(&job->reason), false);
		return;
	}
}

/* Run one step: the first (mech set) or a later one. decoded is wiped
 * and reset. */
static void step_start(struct smtpd_session *s, bool first, str_t *decoded, bool has_response)
{
	struct auth_job *job = xcalloc(1, sizeof(*job));

	str_init(&job->response);
	str_init(&job->challenge);
	str_init(&job->reason);
	job->sasl = s->sasl;
	s->sasl = NULL;
	job->mech = first ? xstrdup(s->auth_mech) : NULL;
	job->has_response = has_response;
	job->rounds = s->auth_rounds;
	if (has_response)
		str_append_n(&job->response, decoded->buf, decoded->len);
	explicit_bzero(decoded->buf, decoded->len);
	str_reset(decoded);
	smtpd_session_wait(s);
	s->auth_req = table_async_job(s->lis->server->pool, job_run, job_done, job_free, job, s);
}

static void session_peer(struct smtpd_session *s, struct sasl_peer *peer)
{
	memset(peer, 0, sizeof(*peer));
	peer->client_addr = s->addr;
	peer->client_port = s->port;
	peer->server_addr = s->local_addr;
	peer->server_port = s->local_port;
	peer->tls = s->tls != NULL;
}

static bool mech_name_ok(const char *name, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return false;
	}
	return true;
}

void smtpd_cmd_auth(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
	const char *arg = cmd->arg, *end = cmd->arg + cmd->arg_len, *sp;
	struct sasl_peer peer;
	str_t decoded;
	const char *why;
	size_t mech_len;

	if (!auth_active(s)) {
		smtpd_reply_error(s, "503 5.5.1 Error: authentication not enabled");
		return;
	}
	if (s->in_mail) {
		smtpd_reply_error(s, "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	if (s->sasl_username != NULL) {
		smtpd_reply_error(s, "503 5.5.1 Error: already authenticated");
		return;
	}
	/* "AUTH mechanism [initial-response]" and nothing more, words
	 * separated by white space as smtp_cmd.c splits them; a mechanism
	 * name is RFC 4422's [A-Z0-9-_]{1,20} (any case), so nothing else
	 * from the line can reach a log line as a "mechanism". */
	sp = arg;
	while (sp < end && *sp != ' ' && *sp != '\t')
		sp++;
	mech_len = (size_t)(sp - arg);
	if (sp < end) {
		while (sp < end && (*sp == ' ' || *sp == '\t'))
			sp++;
		for (const char *q = sp; q < end; q++)
			if (*q == ' ' || *q == '\t')
				sp = end; /* a third word */
		if (sp >= end)
			mech_len = 0;
	} else {
		sp = NULL;
	}
	if (mech_len == 0 || mech_len > 20 || !mech_name_ok(arg, mech_len)) {
		smtpd_reply_error(s, "501 5.5.4 Syntax: AUTH mechanism");
		return;
	}
	s->auth_mech = xstrndup(arg, mech_len);
	for (char *p = s->auth_mech; *p != '\0'; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 32);
	s->auth_rounds = 0;
	str_init(&decoded);
	if (sp != NULL) {
		const char *ir = sp;
		size_t ir_len = (size_t)(end - ir);

		/* RFC 4954: "=" is an empty initial response. */
		if (!(ir_len == 1 && ir[0] == '=') &&
		    base64_decode(ir, ir_len, SASL_MESSAGE_MAX, &decoded, &why) < 0) {
			explicit_bzero(s->line.buf, s->line.len);
			str_free(&decoded);
			exchange_failed(s, s->auth_mech, "bad protocol / cancel", false);
			return;
		}
	}
	/* The command line held the credentials in base64: gone now. */
	explicit_bzero(s->line.buf, s->line.len);
	session_peer(s, &peer);
	s->sasl = sasl_session_new(s->lis->sasl, &peer);
	step_start(s, true, &decoded, sp != NULL);
	str_free(&decoded);
}

void smtpd_auth_response(struct smtpd_session *s)
{
	str_t decoded;
	const char *why;

	if (s->line_cut) {
		/* Longer than smtpd_sasl_response_limit. */
		exchange_error(s, "500 5.5.6 SASL response limit exceeded");
		return;
	}
	if (s->line.len == 1 && s->line.buf[0] == '*') {
		log_warning("%s[%s]: SASL %s authentication aborted", s->name, s->addr,
		            s->auth_mech);
		exchange_error(s, "501 5.7.0 Authentication aborted");
		return;
	}
	str_init(&decoded);
	if (base64_decode(s->line.buf, s->line.len, SASL_MESSAGE_MAX, &decoded, &why) < 0) {
		explicit_bzero(s->line.buf, s->line.len);
		str_free(&decoded);
		exchange_failed(s, s->auth_mech, "bad protocol / cancel", false);
		return;
	}
	explicit_bzero(s->line.buf, s->line.len);
	step_start(s, false, &decoded, true);
	str_free(&decoded);
}

int smtpd_auth_mail_param(struct smtpd_session *s, const char *value)
{
	str_t addr;
	const char *why;

	/* Postfix 3.7 takes AUTH= whatever the session (RFC 4954 5: a
	 * server that does not trust the client ignores the value); it
	 * refuses only a second one after a non-empty first. */
	if (s->sasl_sender != NULL && strcmp(s->sasl_sender, "<>") != 0) {
		smtpd_reply_error(s, "503 5.5.4 Error: multiple AUTH= options");
		return -1;
	}
	if (value == NULL) {
		smtpd_reply_error(s, "555 5.5.4 Unsupported option: AUTH");
		return -1;
	}
	free(s->sasl_sender);
	s->sasl_sender = NULL;
	/* "<>": the submitter vouches for no one; nothing goes to the queue
	 * file (Postfix keeps nothing either). A decoded control character
	 * becomes '?' before the value reaches the queue file. */
	if (strcmp(value, "<>") == 0) {
		s->sasl_sender = xstrdup("<>");
		return 0;
	}
	str_init(&addr);
	if (xtext_decode(value, strlen(value), &addr, &why) == 0 && addr.len <= 255) {
		printable_fix(addr.buf, PRINTABLE_UTF8 | PRINTABLE_NO_SPACE, '?');
		s->sasl_sender = str_steal(&addr);
	}
	str_free(&addr);
	return 0;
}

void smtpd_auth_queue(struct smtpd_session *s, str_t *log_suffix)
{
	if (s->sasl_username == NULL)
		return;
	cleanup_attr(s->cleanup, QUEUE_ATTR_SASL_METHOD, s->sasl_method);
	cleanup_attr(s->cleanup, QUEUE_ATTR_SASL_USERNAME, s->sasl_username);
	str_appendf(log_suffix, ", sasl_method=%s, sasl_username=%s", s->sasl_method,
	            s->sasl_username);
	/* AUTH= counts only from a client that logged in, and "<>" says
	 * nothing. */
	if (s->sasl_sender != NULL && strcmp(s->sasl_sender, "<>") != 0) {
		cleanup_attr(s->cleanup, QUEUE_ATTR_SASL_SENDER, s->sasl_sender);
		str_appendf(log_suffix, ", sasl_sender=%s", s->sasl_sender);
	}
}

void smtpd_auth_cancel(struct smtpd_session *s)
{
	table_async_cancel(&s->auth_req);
	if (s->auth_delay_ev != NULL)
		evtimer_del(s->auth_delay_ev);
}

void smtpd_auth_reset(struct smtpd_session *s)
{
	smtpd_auth_cancel(s);
	exchange_end(s);
	free(s->sasl_username);
	s->sasl_username = NULL;
	free(s->sasl_method);
	s->sasl_method = NULL;
	free(s->sasl_sender);
	s->sasl_sender = NULL;
}

void smtpd_auth_session_free(struct smtpd_session *s)
{
	smtpd_auth_reset(s);
	if (s->auth_delay_ev != NULL)
		event_free(s->auth_delay_ev);
	s->auth_delay_ev = NULL;
	str_free(&s->auth_reply);
}
