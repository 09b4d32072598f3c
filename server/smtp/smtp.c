/* smtp.c - the SMTP/LMTP client delivery agent (Postfix smtp(8) and
 * lmtp(8)): the smtp, relay and lmtp services of master.cf.
 *
 * `smtp -c DIR [-s SERVICE] [-l FD] [-v] [-e]`; the same program run as
 * `lmtp` speaks LMTP. Event-driven (lib/daemon/event_server.h): one
 * process carries many deliveries at once. qmgr opens one connection to
 * private/SERVICE per delivery and sends one request (delivery.h); each
 * becomes a job:
 *   1. the queue file is opened read-only (by validated queue ID);
 *   2. the TLS policy of the nexthop (smtp_tls_policy_maps, async);
 *   3. the nexthop's server addresses (smtp_dest.c: MX, A, AAAA);
 *   4. sessions (smtp_session.c), one address after another, until every
 *      recipient has an outcome, smtp_mx_session_limit servers answered,
 *      or the list (and smtp_fallback_relay) is used up;
 *   5. one reply block per recipient back to qmgr, each outcome logged in
 *      Postfix's form ("to=<a@b>, relay=mx.b[192.0.2.1]:25, delay=...,
 *      dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as X)").
 * A recipient left without an outcome when the addresses run out is
 * deferred with the last failure ("connect to ...: Connection refused").
 * Nothing the remote side does can make a recipient "sent" without its
 * 2xx reply to the end of the message; a lost connection after the
 * content was sent and before that reply is a deferral (the mail may
 * arrive twice: at least once, never lost).
 *
 * SECURITY: runs as mail_owner (master.cf unpriv "-"). Requests come
 * from qmgr over private/, parsed with ATTR_LIMITS_DEFAULT and at most
 * DELIVERY_RCPT_MAX recipients; the queue file is named by validated ID
 * only. Everything from remote servers (replies, DNS answers) is parsed
 * with explicit bounds in smtp_session.c and lib/dns.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/attr.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/parse.h"
#include "conf/config.h"
#include "daemon/daemon.h"
#include "daemon/event_server.h"
#include "delivery/delivery.h"
#include "delivery/delivery_log.h"
#include "queue/queue_dir.h"
#include "queue/queue_id.h"
#include "smtp.h"
#include "table/table_async.h"

/* Seconds qmgr may take to send its request. */
#define SMTP_REQUEST_TIMEOUT 60

/* One connection from qmgr: carries one job at a time. */
struct smtp_qconn {
	struct smtp_agent *agent;
	struct bufferevent *bev;
	struct attr_parser *parser;
	bool versioned;
	struct smtp_job *job;
	bool closing; /* close once the reply is written */
	LIST_ENTRY(smtp_qconn) link; /* in agent->qconns */
};

static struct smtp_agent agent_state;

static void qconn_free(struct smtp_qconn *qc);

/* ---- outcomes ---- */

size_t smtp_job_todo(const struct smtp_job *job)
{
	size_t n = 0;

	for (size_t i = 0; i < job->nrcpts; i++)
		n += job->rcpts[i].state != SMTP_RCPT_DONE;
	return n;
}

void smtp_rcpt_set(struct smtp_job *job, struct smtp_rcpt *r, char action,
                   const struct queue_dsn *dsn, const char *reason)
{
	const struct queue_envelope *env = job->env;
	struct delivery_times t;
	str_t code;

	if (r->state == SMTP_RCPT_DONE)
		return;
	r->state = SMTP_RCPT_DONE;
	r->action = action;
	r->dsn = *dsn;
	free(r->reason);
	r->reason = xstrdup(reason);
	free(r->remote_mta);
	r->remote_mta = job->session != NULL ? xstrdup(smtp_session_host(job->session)) : NULL;
	t.arrival = env != NULL ? (uint64_t)env->arrival.tv_sec * 1000000u +
	                                  (uint64_t)env->arrival.tv_usec
	                        : 0;
	t.active = job->time_active;
	t.agent_start = job->agent_start;
	t.connected = job->connected;
	t.done = delivery_now_usec();
	t.conn_use = job->session != NULL ? smtp_session_uses(job->session) : 0;
	str_init(&code);
	queue_dsn_format(dsn, &code);
	delivery_log(job->queue_id, r->address, r->orig,
	             job->session != NULL ? smtp_session_peer(job->session) : "none", &t,
	             str_c(&code),
	             action == 's'   ? "sent"
	             : action == 'b' ? "bounced"
	                             : "deferred",
	             reason);
	str_free(&code);
}

void smtp_job_settle_rest(struct smtp_job *job, char action, const struct queue_dsn *dsn,
                          const char *reason)
{
	for (size_t i = 0; i < job->nrcpts; i++)
		smtp_rcpt_set(job, &job->rcpts[i], action, dsn, reason);
}

/* ---- jobs ---- */

static void job_free(struct smtp_job *job)
{
	smtp_dest_cancel(&job->lookup);
	queue_file_close(&job->qf);
	for (size_t i = 0; i < job->nrcpts; i++) {
		free(job->rcpts[i].id);
		free(job->rcpts[i].address);
		free(job->rcpts[i].orig);
		free(job->rcpts[i].orcpt);
		free(job->rcpts[i].reason);
		free(job->rcpts[i].remote_mta);
	}
	free(job->rcpts);
	for (size_t i = 0; i < job->naddrs; i++) {
		free(job->addrs[i].host);
		free(job->addrs[i].dest);
	}
	free(job->addrs);
	free(job->nexthop);
	free(job->dest_key);
	str_free(&job->last_error);
	smtp_tls_policy_free(&job->tls);
	table_async_cancel(&job->tls_lookup);
	free(job);
}

static void reply_error(struct smtp_qconn *qc, uint64_t request_id, const char *text)
{
	str_t out;
	const char *err;

	log_warning("request from qmgr refused: %s", text);
	str_init(&out);
	(void)attr_put_uint(&out, ATTR_REQUEST_ID, request_id, &err);
	if (attr_put_str(&out, ATTR_ERROR, text, &err) < 0)
		(void)attr_put_str(&out, ATTR_ERROR, "malformed request", &err);
	attr_end(&out);
	bufferevent_write(qc->bev, out.buf, out.len);
	str_free(&out);
}

static bool smtp_job_deferred(const struct smtp_job *job)
{
	for (size_t i = 0; i < job->nrcpts; i++)
		if (job->rcpts[i].action == 'd')
			return true;
	return false;
}

/* Every recipient has its outcome: reply to qmgr, forget the job. */
static void job_reply(struct smtp_job *job)
{
	struct smtp_qconn *qc = job->qconn;
	struct smtp_agent *agent = job->agent;
	str_t out, code;
	const char *err;

	str_init(&out);
	str_init(&code);
	(void)attr_put_uint(&out, ATTR_REQUEST_ID, job->request_id, &err);
	for (size_t i = 0; i < job->nrcpts; i++) {
		const struct smtp_rcpt *r = &job->rcpts[i];

		str_reset(&code);
		queue_dsn_format(&r->dsn, &code);
		(void)attr_put_str(&out, DELIVERY_ATTR_RCPT_ID, r->id, &err);
		(void)attr_put_str(&out, DELIVERY_ATTR_ACTION,
		                   r->action == 's'   ? DELIVERY_ACTION_SENT
		                   : r->action == 'b' ? DELIVERY_ACTION_BOUNCED
		                                      : DELIVERY_ACTION_DEFERRED,
		                   &err);
		(void)attr_put_str(&out, DELIVERY_ATTR_STATUS, str_c(&code), &err);
		if (attr_put_str(&out, DELIVERY_ATTR_REASON, r->reason, &err) < 0)
			(void)attr_put_str(&out, DELIVERY_ATTR_REASON, "(reason not printable)",
			                   &err);
		/* NOTIFY=SUCCESS: a server that took NOTIFY reports success
		 * itself; otherwise the notice says "relayed" (RFC 3461 5.2.2).
		 * LMTP delivers: the notice says "delivered". */
		if (r->action == 's' && !agent->set.lmtp)
			(void)attr_put_str(&out, DELIVERY_ATTR_DSN_ACTION,
			                   r->dsn_passed ? "none" : "relayed", &err);
		if (r->remote_mta != NULL)
			(void)attr_put_str(&out, DELIVERY_ATTR_REMOTE_MTA, r->remote_mta, &err);
	}
	/* No server answered: qmgr backs off this destination. */
	if (!job->greeted && job->naddrs > 0 && smtp_job_deferred(job))
		(void)attr_put_str(&out, DELIVERY_ATTR_DEST_STATUS, "down", &err);
	attr_end(&out);
	str_free(&code);
	qc->job = NULL;
	bufferevent_write(qc->bev, out.buf, out.len);
	str_free(&out);
	job_free(job);
	agent->njobs--;
	smtp_agent_check_idle(agent);
}

void smtp_agent_check_idle(struct smtp_agent *agent)
{
	/* Why the qmgr connections count too: a reply still in a
	 * connection's output buffer would be lost if a draining agent
	 * (max_use, reload) exited now; qmgr closes the connection once it
	 * has read the reply. */
	if (agent->njobs == 0 && agent->ncached == 0 && agent->nqconns == 0)
		event_server_idle(agent->srv);
}

/* Nothing is left to try: each recipient still open is deferred (or
 * bounced after a 5xx that ended the last server) with its own
 * temporary failure, else with the last failure of the delivery. */
static void settle_left(struct smtp_job *job)
{
	static const struct queue_dsn unreachable = {4, 4, 1};

	for (size_t i = 0; i < job->nrcpts; i++) {
		struct smtp_rcpt *r = &job->rcpts[i];

		if (r->state == SMTP_RCPT_DONE)
			continue;
		if (r->soft && r->reason != NULL) {
			char *reason = r->reason;
			struct queue_dsn dsn = r->dsn;

			r->reason = NULL;
			smtp_rcpt_set(job, r, 'd', &dsn, reason);
			free(reason);
		} else {
			smtp_rcpt_set(job, r, job->last_dsn.klass == 5 ? 'b' : 'd',
			              job->last_dsn.klass != 0 ? &job->last_dsn : &unreachable,
			              job->last_error.len > 0 ? str_c(&job->last_error)
			                                      : "no server could be reached");
		}
	}
}

/* Try the next address, or reply when there is nothing left. */
static void job_next(struct smtp_job *job)
{
	const struct smtp_settings *s = &job->agent->set;

	if (smtp_job_todo(job) > 0) {
		if (job->next_addr < job->naddrs &&
		    (s->mx_session_limit == 0 || job->sessions < s->mx_session_limit ||
		     job->fallback_added)) {
			const struct smtp_addr *a = &job->addrs[job->next_addr++];

			smtp_session_start(job, a);
			return;
		}
		if (job->last_dsn.klass != 5 && smtp_dest_fallback(job))
			return; /* smtp_job_addresses_ready() follows */
		settle_left(job);
	}
	job_reply(job);
}

void smtp_job_addresses_ready(struct smtp_job *job)
{
	struct smtp_session *cached;

	if (smtp_job_todo(job) == 0) {
		job_reply(job);
		return;
	}
	/* A connection kept from an earlier delivery to this destination
	 * saves the DNS round, the handshake and the greeting. */
	if (job->sessions == 0 && !job->fallback_added &&
	    (cached = smtp_cache_take(job->agent, job->dest_key)) != NULL) {
		job->sessions++;
		smtp_session_reuse(cached, job);
		return;
	}
	job_next(job);
}

void smtp_job_session_done(struct smtp_job *job)
{
	job->session = NULL;
	job_next(job);
}

static void on_tls_policy(const struct table_result *r, void *ctx)
{
	struct smtp_job *job = ctx;
	str_t why;

	job->tls_lookup = NULL;
	str_init(&why);
	if (r->status == TABLE_TEMPFAIL) {
		str_appendf(&why, "TLS policy lookup for %s: %s", job->nexthop, str_c(&r->error));
		smtp_job_settle_rest(job, 'd', &(struct queue_dsn){4, 3, 0}, str_c(&why));
	} else if (r->status == TABLE_FOUND &&
	           smtp_tls_policy_parse(str_c(&r->value), &job->tls, &why) < 0) {
		/* Postfix: a malformed policy defers, never weakens TLS. */
		log_warning("%s: %s", job->queue_id, str_c(&why));
		smtp_job_settle_rest(job, 'd', &(struct queue_dsn){4, 7, 5},
		                     "mail transport unavailable: malformed TLS policy");
	}
	str_free(&why);
	if (smtp_job_todo(job) == 0) {
		job_reply(job);
		return;
	}
	smtp_dest_start(job, job->nexthop);
}

/* The policy table's key: the nexthop as written ("[mx.example]:587",
 * "example.com"), without the inet: prefix. */
static void job_start(struct smtp_job *job)
{
	const struct smtp_settings *s = &job->agent->set;

	job->tls.level = s->tls_level;
	if (s->tls_policy_maps[0] != '\0') {
		job->tls_lookup = table_async_lookup(s->tables, s->tls_policy_maps, job->dest_key,
		                                     on_tls_policy, job);
		return;
	}
	smtp_dest_start(job, job->nexthop);
}

/* Fill job from the request; -1 with why (the whole request refused). */
static int job_parse(struct smtp_job *job, struct attr_list *req, str_t *why)
{
	struct smtp_agent *agent = job->agent;
	const char *value, *err;
	struct smtp_rcpt *cur = NULL;
	uint64_t active = 0;

	value = attr_get(req, DELIVERY_ATTR_REQUEST);
	if (value == NULL || strcmp(value, DELIVERY_REQUEST) != 0) {
		str_appendf(why, "unknown request \"%s\" (expected %s)", value != NULL ? value : "",
		            DELIVERY_REQUEST);
		return -1;
	}
	value = attr_get(req, DELIVERY_ATTR_QUEUE_ID);
	if (value == NULL || !queue_id_valid(value) || strlen(value) >= sizeof(job->queue_id)) {
		str_appendf(why, "bad queue_id \"%s\"", value != NULL ? value : "");
		return -1;
	}
	(void)snprintf(job->queue_id, sizeof(job->queue_id), "%s", value);
	value = attr_get(req, DELIVERY_ATTR_NEXTHOP);
	job->nexthop = xstrdup(value != NULL ? value : "");
	job->dest_key =
	        xstrdup(strncmp(job->nexthop, "inet:", 5) == 0 ? job->nexthop + 5 : job->nexthop);
	if (attr_get(req, DELIVERY_ATTR_TIME_ACTIVE) != NULL &&
	    attr_get_uint(req, DELIVERY_ATTR_TIME_ACTIVE, 0, INT64_MAX, &active, &err) < 0) {
		str_append(why, err);
		return -1;
	}
	job->time_active = active;
	value = attr_get(req, DELIVERY_ATTR_CACHE);
	job->cache_wanted = value != NULL && strcmp(value, "1") == 0;
	for (size_t i = 0; i < req->n; i++) {
		const struct attr *a = &req->attrs[i];

		if (strcmp(a->name, DELIVERY_ATTR_RCPT_ID) == 0) {
			if (job->nrcpts == DELIVERY_RCPT_MAX) {
				str_appendf(why, "more than %d recipients", DELIVERY_RCPT_MAX);
				return -1;
			}
			job->rcpts =
			        xreallocarray(job->rcpts, job->nrcpts + 1, sizeof(*job->rcpts));
			cur = &job->rcpts[job->nrcpts++];
			memset(cur, 0, sizeof(*cur));
			cur->id = xstrdup(a->value);
		} else if (cur != NULL && strcmp(a->name, DELIVERY_ATTR_RECIPIENT) == 0 &&
		           cur->address == NULL) {
			cur->address = xstrdup(a->value);
		} else if (cur != NULL && strcmp(a->name, DELIVERY_ATTR_ORIG_RECIPIENT) == 0 &&
		           cur->orig == NULL) {
			cur->orig = xstrdup(a->value);
		} else if (cur != NULL && strcmp(a->name, DELIVERY_ATTR_RCPT_INDEX) == 0) {
			uint64_t index;

			if (parse_uint64(a->value, 0, SIZE_MAX, &index) < 0) {
				str_appendf(why, "bad rcpt_index \"%s\"", a->value);
				return -1;
			}
			cur->queue_index = (size_t)index;
			cur->has_index = true;
		}
	}
	if (job->nrcpts == 0) {
		str_append(why, "no recipients (rcpt_id)");
		return -1;
	}
	for (size_t i = 0; i < job->nrcpts; i++) {
		if (job->rcpts[i].address == NULL || job->rcpts[i].address[0] == '\0') {
			str_appendf(why, "rcpt_id %s: no recipient", job->rcpts[i].id);
			return -1;
		}
		if (job->rcpts[i].orig == NULL)
			job->rcpts[i].orig = xstrdup(job->rcpts[i].address);
	}
	if (queue_file_open(agent->set.qd, QUEUE_ACTIVE, job->queue_id, 0, &job->qf, why) !=
	    QUEUE_FILE_OK)
		return -1;
	job->env = queue_file_envelope(job->qf);
	/* DSN parameters of each recipient, from the queue file. */
	for (size_t i = 0; i < job->nrcpts; i++) {
		struct smtp_rcpt *r = &job->rcpts[i];
		struct queue_rcpt qr;

		if (!r->has_index || r->queue_index >= job->env->rcpt_count)
			continue;
		queue_rcpt_init(&qr);
		if (queue_file_read_rcpt(job->qf, r->queue_index, &qr, why) == QUEUE_FILE_OK) {
			r->notify = qr.notify;
			if (qr.orcpt.len > 0)
				r->orcpt = xstrdup(str_c(&qr.orcpt));
		}
		str_reset(why);
		queue_rcpt_free(&qr);
	}
	return 0;
}

static void on_request(struct smtp_qconn *qc, struct attr_list *req)
{
	struct smtp_agent *agent = qc->agent;
	struct smtp_job *job;
	uint64_t request_id = 0;
	const char *err;
	str_t why;

	if (!qc->versioned) {
		const char *v = attr_get(req, ATTR_VERSION);

		if (v == NULL || strcmp(v, ATTR_PROTOCOL_VERSION) != 0) {
			reply_error(qc, 0, "unsupported or missing protocol version");
			qc->closing = true;
			return;
		}
		qc->versioned = true;
	}
	if (attr_get_uint(req, ATTR_REQUEST_ID, 0, UINT64_MAX, &request_id, &err) < 0) {
		reply_error(qc, 0, err);
		qc->closing = true;
		return;
	}
	if (qc->job != NULL) {
		reply_error(qc, request_id, "a delivery is in progress on this connection");
		return;
	}
	job = xcalloc(1, sizeof(*job));
	job->agent = agent;
	job->qconn = qc;
	job->request_id = request_id;
	job->agent_start = delivery_now_usec();
	str_init(&job->last_error);
	smtp_tls_policy_init(&job->tls);
	str_init(&why);
	if (job_parse(job, req, &why) < 0) {
		reply_error(qc, request_id, str_c(&why));
		str_free(&why);
		job_free(job);
		return;
	}
	str_free(&why);
	if (job->time_active == 0)
		job->time_active = job->agent_start;
	qc->job = job;
	agent->njobs++;
	event_server_busy(agent->srv);
	job_start(job);
}

static void qconn_read(struct bufferevent *bev, void *arg)
{
	struct smtp_qconn *qc = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	while (evbuffer_get_length(in) > 0 && !qc->closing) {
		size_t len = evbuffer_get_contiguous_space(in), used = 0;
		unsigned char *data = evbuffer_pullup(in, (ssize_t)len);
		enum attr_parse_status st = attr_parser_feed(qc->parser, data, len, &used);
		struct attr_list *req;

		evbuffer_drain(in, used);
		if (st == ATTR_PARSE_NEED_MORE)
			continue;
		if (st == ATTR_PARSE_ERROR) {
			reply_error(qc, 0, attr_parser_error(qc->parser));
			qc->closing = true;
			break;
		}
		req = attr_parser_take(qc->parser);
		on_request(qc, req);
		attr_list_destroy(&req);
	}
	if (qc->closing && qc->job == NULL)
		bufferevent_disable(bev, EV_READ);
}

static void qconn_write(struct bufferevent *bev, void *arg)
{
	struct smtp_qconn *qc = arg;

	(void)bev;
	if (qc->closing && qc->job == NULL)
		qconn_free(qc);
}

static void qconn_event(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_qconn *qc = arg;

	(void)bev;
	if (what & BEV_EVENT_TIMEOUT && qc->job != NULL) {
		/* The request was read; a delivery takes what it takes (each
		 * step has its own smtp_*_timeout). */
		bufferevent_enable(qc->bev, EV_READ);
		return;
	}
	/* qmgr went away (or stayed silent): a delivery in progress goes
	 * on, its outcome only logged; qmgr defers what it did not hear. */
	if (qc->job != NULL) {
		qc->closing = true;
		return;
	}
	qconn_free(qc);
}

/* Close and free qc (no job holds it). */
static void qconn_release(struct smtp_qconn *qc)
{
	bufferevent_free(qc->bev);
	attr_parser_destroy(&qc->parser);
	LIST_REMOVE(qc, link);
	qc->agent->nqconns--;
	free(qc);
}

static void qconn_free(struct smtp_qconn *qc)
{
	struct smtp_agent *agent = qc->agent;

	if (qc->job != NULL) {
		/* Not while a job holds it: job_reply() comes back here. */
		qc->closing = true;
		return;
	}
	qconn_release(qc);
	smtp_agent_check_idle(agent);
}

static void on_accept(struct event_server *srv, void *listener_ctx, int fd, struct sockaddr *sa,
                      int salen)
{
	static const struct attr_limits limits = ATTR_LIMITS_DEFAULT;
	struct smtp_agent *agent = listener_ctx;
	struct smtp_qconn *qc = xcalloc(1, sizeof(*qc));
	struct timeval tv = {SMTP_REQUEST_TIMEOUT, 0};

	(void)srv;
	(void)sa;
	(void)salen;
	qc->agent = agent;
	agent->nqconns++;
	LIST_INSERT_HEAD(&agent->qconns, qc, link);
	qc->parser = attr_parser_new(&limits);
	qc->bev = bufferevent_socket_new(agent->base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(qc->bev, qconn_read, qconn_write, qconn_event, qc);
	bufferevent_set_timeouts(qc->bev, &tv, NULL);
	bufferevent_enable(qc->bev, EV_READ | EV_WRITE);
}

static void *listener_init(struct event_server *srv, const char *service, struct config *cfg,
                           void *ctx)
{
	struct smtp_agent *agent = ctx;

	(void)srv;
	(void)service;
	config_destroy(&cfg); /* the daemon's own configuration is used */
	return agent;
}

static void init(struct event_server *srv, void *ctx)
{
	struct smtp_agent *agent = ctx;
	struct daemon *d = event_server_daemon(srv);

	agent->srv = srv;
	agent->base = d->base;
	agent->cfg = d->cfg;
	LIST_INIT(&agent->cache);
	LIST_INIT(&agent->qconns);
	smtp_settings_read(d->cfg, d->base, agent->lmtp, &agent->set);
}

static void on_drain(struct event_server *srv, void *ctx)
{
	struct smtp_agent *agent = ctx;

	(void)srv;
	smtp_cache_flush(agent);
	smtp_agent_check_idle(agent);
}

static void finish(struct event_server *srv, void *ctx)
{
	struct smtp_agent *agent = ctx;

	(void)srv;
	smtp_cache_flush(agent);
	/* qmgr connections still open at exit (stopped by a signal while
	 * qmgr kept one): closed, so nothing is left behind. One a delivery
	 * still holds stays with it. */
	for (struct smtp_qconn *qc = LIST_FIRST(&agent->qconns), *next; qc != NULL; qc = next) {
		next = LIST_NEXT(qc, link);
		if (qc->job == NULL)
			qconn_release(qc);
	}
	smtp_settings_free(&agent->set);
}

int main(int argc, char **argv)
{
	const char *base = strrchr(argv[0], '/');
	bool lmtp = strcmp(base != NULL ? base + 1 : argv[0], "lmtp") == 0;
	struct event_server_spec spec = {
	        .daemon = {.program = lmtp ? "lmtp" : "smtp"},
	        .mode = EVENT_SERVER_STREAM,
	        .default_socket = lmtp ? "private/lmtp" : "private/smtp",
	        .init = init,
	        .listener_init = listener_init,
	        .on_accept = on_accept,
	        .on_drain = on_drain,
	        .finish = finish,
	        .ctx = &agent_state,
	};

	agent_state.lmtp = lmtp;
	return event_server_main(&spec, argc, argv);
}
