/* qmgr_deliver.c - destinations and the conversations with delivery
 * agents.
 *
 * Used by qmgr_message.c. A destination is (transport, nexthop), the
 * nexthop being the recipient's domain when the lookup gave none, as in
 * Postfix. Each keeps a queue of finals and at most
 * TRANSPORT_destination_concurrency_limit (default_...) deliveries at once;
 * one delivery carries up to TRANSPORT_destination_recipient_limit
 * recipients of the same message.
 *
 * A delivery is one connection to queue_directory/private/TRANSPORT (the
 * agent's socket, bound by master) carrying one request (delivery.h). The
 * agent logs each recipient's outcome; qmgr logs only what it decides
 * itself: the error, retry and discard transports (as Postfix's error(8)
 * and discard(8) would), an agent that is not there, an agent that died
 * before answering. Every such failure is a deferral: never a bounce.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/attr.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/parse.h"
#include "conf/config.h"
#include "delivery/delivery.h"
#include "delivery/delivery_log.h"
#include "qmgr.h"

#define AGENT_TIMEOUT 3600 /* seconds one delivery may take */
#define RETRY_CONNECT_MS 50 /* the agent's backlog was full */

struct agent_conn;
LIST_HEAD(conn_list, agent_conn);

struct qmgr_dest {
	struct qmgr *q;
	struct conn_list conns;
	char *key;
	char *transport;
	char *nexthop;
	struct qmgr_final_list queue;
	unsigned active;
	unsigned limit;
	unsigned rcpt_limit;
	struct event *retry_ev;
	/* Concurrency feedback (Postfix's qmgr: slow start, back off on
	 * failures): deliveries at once may not exceed the window. */
	double window;
	unsigned failed_cohorts, cohort_limit;
	/* A destination that failed cohort_limit times at window 1 is
	 * throttled: what is queued and what comes is deferred with
	 * "delivery temporarily suspended: REASON" until unthrottle_ev. */
	char *throttle_reason;
	struct event *unthrottle_ev;
	/* TRANSPORT_destination_rate_delay: one delivery at a time, this
	 * far apart. */
	uint64_t rate_delay_usec, next_start_usec;
};

struct agent_conn {
	LIST_ENTRY(agent_conn) link;
	struct qmgr_dest *dest;
	struct bufferevent *bev;
	struct attr_parser *parser;
	struct qmgr_final **finals;
	size_t n;
	uint64_t start_usec;
	bool dest_down; /* the agent reached no server (dest_status=down) */
};

static void dispatch(struct qmgr_dest *dest);
static void conn_free(struct agent_conn *c);
static void feedback(struct qmgr_dest *dest, bool down, const char *reason);

/* ---- outcomes ---- */

static void set_outcome(struct qmgr_final *f, enum qmgr_outcome outcome,
                        const struct queue_dsn *dsn, const char *reason)
{
	f->outcome = outcome;
	f->dsn = *dsn;
	free(f->reason);
	f->reason = xstrdup(reason);
}

/* An outcome decided here: logged, then the final is done. */
static void settle(struct qmgr_final *f, const char *relay, enum qmgr_outcome outcome,
                   const struct queue_dsn *dsn, const char *reason)
{
	struct qmgr_msg *msg = f->msg;
	struct delivery_times t = {(uint64_t)msg->arrival.tv_sec * 1000000u +
	                                   (uint64_t)msg->arrival.tv_usec,
	                           msg->active_usec,
	                           0,
	                           0,
	                           delivery_now_usec(),
	                           0};
	str_t code;

	set_outcome(f, outcome, dsn, reason);
	str_init(&code);
	queue_dsn_format(dsn, &code);
	delivery_log(msg->id, f->address, msg->rcpts[f->rcpt].address, relay, &t, str_c(&code),
	             outcome == QMGR_SENT      ? "sent"
	             : outcome == QMGR_BOUNCED ? "bounced"
	                                       : "deferred",
	             reason);
	str_free(&code);
	qmgr_final_done(f);
}

/* The error transport's nexthop: "5.1.1 text", "text", or empty. */
static void error_nexthop(const char *nexthop, int klass, struct queue_dsn *dsn_r,
                          const char **text_r)
{
	const char *sp = strchr(nexthop, ' ');
	struct queue_dsn dsn;
	char code[16];

	dsn_r->klass = (unsigned char)klass;
	dsn_r->subject = 0;
	dsn_r->detail = 0;
	*text_r = nexthop[0] != '\0' ? nexthop : "delivery not possible";
	if (sp != NULL && (size_t)(sp - nexthop) < sizeof(code)) {
		memcpy(code, nexthop, (size_t)(sp - nexthop));
		code[sp - nexthop] = '\0';
		if (queue_dsn_parse(code, &dsn) == 0 && dsn.klass == klass) {
			*dsn_r = dsn;
			*text_r = sp + 1;
		}
	}
}

/* ---- destinations ---- */

static unsigned transport_limit(struct config *cfg, const char *transport, const char *suffix,
                                unsigned fallback)
{
	char *name = xasprintf("%s%s", transport, suffix);
	const char *value, *err;
	int64_t n;
	unsigned ret = fallback;

	if (config_is_set(cfg, name) && config_expand(cfg, name, &value, &err) == 0) {
		if (parse_int64(value, 0, 1000000, &n) == 0)
			ret = (unsigned)n;
		else
			log_warning("%s: bad value \"%s\": using %u", name, value, fallback);
	}
	free(name);
	return ret == 0 ? (unsigned)-1 : ret; /* 0 = no limit */
}

/* TRANSPORT_destination_rate_delay, else default_destination_rate_delay,
 * in microseconds. */
static uint64_t transport_rate_delay(struct config *cfg, const char *transport)
{
	char *name = xasprintf("%s_destination_rate_delay", transport);
	const char *value, *err;
	uint64_t seconds = config_time(cfg, "default_destination_rate_delay");

	if (config_is_set(cfg, name) && config_expand(cfg, name, &value, &err) == 0 &&
	    parse_time(value, 's', 86400 * 365, &seconds) < 0) {
		log_warning("%s: bad time value \"%s\": using default_destination_rate_delay", name,
		            value);
		seconds = config_time(cfg, "default_destination_rate_delay");
	}
	free(name);
	return seconds * 1000000u;
}

static void on_unthrottle(evutil_socket_t fd, short what, void *arg)
{
	struct qmgr_dest *dest = arg;

	(void)fd;
	(void)what;
	free(dest->throttle_reason);
	dest->throttle_reason = NULL;
	dest->failed_cohorts = 0;
	dest->window = 1;
	dispatch(dest);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	dispatch(arg);
}

static struct qmgr_dest *dest_get(struct qmgr *q, const char *transport, const char *nexthop)
{
	char *key = xasprintf("%s %s", transport, nexthop);
	struct qmgr_dest *dest = hash_get(q->dests, key);

	if (dest != NULL) {
		free(key);
		return dest;
	}
	dest = xcalloc(1, sizeof(*dest));
	dest->q = q;
	dest->key = key;
	dest->transport = xstrdup(transport);
	dest->nexthop = xstrdup(nexthop);
	TAILQ_INIT(&dest->queue);
	LIST_INIT(&dest->conns);
	dest->limit = transport_limit(q->cfg, transport, "_destination_concurrency_limit",
	                              q->default_concurrency);
	dest->rcpt_limit = transport_limit(q->cfg, transport, "_destination_recipient_limit",
	                                   q->default_rcpt_limit);
	if (dest->rcpt_limit > DELIVERY_RCPT_MAX)
		dest->rcpt_limit = DELIVERY_RCPT_MAX;
	dest->retry_ev = evtimer_new(q->base, on_retry, dest);
	dest->unthrottle_ev = evtimer_new(q->base, on_unthrottle, dest);
	/* Slow start: initial_destination_concurrency, grown by each
	 * success up to the limit. */
	dest->window =
	        transport_limit(q->cfg, transport, "_initial_destination_concurrency",
	                        (unsigned)config_int(q->cfg, "initial_destination_concurrency"));
	dest->cohort_limit = transport_limit(
	        q->cfg, transport, "_destination_concurrency_failed_cohort_limit",
	        (unsigned)config_int(q->cfg,
	                             "default_destination_concurrency_failed_cohort_limit"));
	dest->rate_delay_usec = transport_rate_delay(q->cfg, transport);
	hash_put(q->dests, key, dest);
	return dest;
}

static void dest_free(void *p)
{
	struct qmgr_dest *dest = p;

	/* At shutdown: deliveries in progress are abandoned (their messages
	 * stay in active/ and are taken up again at the next start). */
	while (!LIST_EMPTY(&dest->conns))
		conn_free(LIST_FIRST(&dest->conns));

	event_free(dest->retry_ev);
	event_free(dest->unthrottle_ev);
	free(dest->throttle_reason);
	free(dest->key);
	free(dest->transport);
	free(dest->nexthop);
	free(dest);
}

/* Forget a destination with nothing queued or in progress. */
static void dest_gc(struct qmgr_dest *dest)
{
	if (dest->active == 0 && TAILQ_EMPTY(&dest->queue) &&
	    !evtimer_pending(dest->retry_ev, NULL) && !evtimer_pending(dest->unthrottle_ev, NULL))
		hash_delete(dest->q->dests, dest->key); /* frees it */
}

/* A transport names a socket file: letters, digits, '-' and '_' only. */
static bool transport_name_ok(const char *name)
{
	size_t len = strlen(name);

	return len > 0 && len <= 64 &&
	       strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") ==
	               len;
}

void qmgr_deliver_final(struct qmgr *q, struct qmgr_final *f)
{
	static const struct queue_dsn sent = {2, 0, 0}, tempfail = {4, 3, 5};
	struct queue_dsn dsn;
	const char *text, *nexthop = f->nexthop;
	struct qmgr_dest *dest;

	if (strcmp(f->transport, "error") == 0) {
		error_nexthop(f->nexthop, 5, &dsn, &text);
		settle(f, "none", QMGR_BOUNCED, &dsn, text);
		return;
	}
	if (strcmp(f->transport, "retry") == 0) {
		error_nexthop(f->nexthop, 4, &dsn, &text);
		settle(f, "none", QMGR_DEFERRED, &dsn, text);
		return;
	}
	if (strcmp(f->transport, "discard") == 0) {
		settle(f, "none", QMGR_SENT, &sent,
		       f->nexthop[0] != '\0' ? f->nexthop : "discarded");
		return;
	}
	if (!transport_name_ok(f->transport)) {
		str_t reason;

		str_init(&reason);
		str_appendf(&reason, "mail transport unavailable: bad transport name \"%s\"",
		            f->transport);
		settle(f, "none", QMGR_DEFERRED, &tempfail, str_c(&reason));
		str_free(&reason);
		return;
	}
	if (nexthop[0] == '\0') {
		const char *at = strrchr(f->address, '@');

		nexthop = at != NULL ? at + 1 : "";
	}
	dest = dest_get(q, f->transport, nexthop);
	TAILQ_INSERT_TAIL(&dest->queue, f, link);
	/* Why not dispatch() now: a message's finals are handed out in one
	 * loop (qmgr_message.c hand_out); dispatching on the next turn of
	 * the event loop lets all of them for this destination share one
	 * delivery (one SMTP transaction) instead of one each. */
	if (!evtimer_pending(dest->retry_ev, NULL)) {
		static const struct timeval next_turn = {0, 0};

		evtimer_add(dest->retry_ev, &next_turn);
	}
}

/* ---- agent conversations ---- */

static void conn_free(struct agent_conn *c)
{
	LIST_REMOVE(c, link);
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	attr_parser_destroy(&c->parser);
	free(c->finals);
	free(c);
}

/* The delivery is over: finals without an outcome are deferred with
 * reason, then everything is reported and the destination goes on. */
static void conn_finish(struct agent_conn *c, const char *reason)
{
	static const struct queue_dsn tempfail = {4, 3, 0};
	struct qmgr_dest *dest = c->dest;
	struct qmgr_final **finals = c->finals;
	size_t n = c->n;
	bool down = c->dest_down;

	c->finals = NULL;
	conn_free(c);
	dest->active--;
	feedback(dest, down, down && n > 0 ? finals[0]->reason : NULL);
	/* Durable before counted: see qmgr_message_record_done(). */
	qmgr_message_record_done(finals, n);
	for (size_t i = 0; i < n; i++) {
		if (finals[i]->outcome == QMGR_PENDING)
			settle(finals[i], dest->transport, QMGR_DEFERRED, &tempfail, reason);
		else
			qmgr_final_done(finals[i]);
	}
	free(finals);
	dispatch(dest);
}

/* Concurrency feedback after a delivery, as Postfix's qmgr: a success
 * widens the window by 1/window (up to the limit); a delivery that
 * reached no server narrows it by 1/window (down to 1), and at window 1
 * each such failure is a failed cohort; cohort_limit of them in a row
 * throttle the destination for minimal_backoff_time. Why not a wider
 * step: a destination that fails under load recovers at a lower
 * concurrency, and one that is down costs one connection attempt per
 * backoff, not one per queued message. */
static void feedback(struct qmgr_dest *dest, bool down, const char *reason)
{
	struct timeval tv = {dest->q->min_backoff > 0 ? dest->q->min_backoff : 1, 0};

	if (!down) {
		dest->failed_cohorts = 0;
		if (dest->window < dest->limit)
			dest->window += 1.0 / dest->window;
		return;
	}
	if (dest->window > 1) {
		dest->window -= 1.0 / dest->window;
		if (dest->window < 1)
			dest->window = 1;
		return;
	}
	if (++dest->failed_cohorts < dest->cohort_limit || dest->throttle_reason != NULL ||
	    dest->cohort_limit == (unsigned)-1)
		return;
	dest->throttle_reason = xstrdup(reason != NULL ? reason : "destination not responding");
	log_info("%s: delivery temporarily suspended for %ld s: %s", dest->key, (long)tv.tv_sec,
	         dest->throttle_reason);
	evtimer_add(dest->unthrottle_ev, &tv);
}

/* Apply one reply; returns NULL or what was wrong with it. */
static const char *apply_reply(struct agent_conn *c, struct attr_list *reply)
{
	struct qmgr_final *cur = NULL;
	const char *error = attr_get(reply, DELIVERY_ATTR_ERROR);

	if (error != NULL)
		return error;
	for (size_t i = 0; i < reply->n; i++) {
		const char *name = reply->attrs[i].name, *value = reply->attrs[i].value;
		uint64_t id;

		if (strcmp(name, DELIVERY_ATTR_RCPT_ID) == 0) {
			cur = parse_uint64(value, 0, c->n - 1, &id) == 0 ? c->finals[id] : NULL;
			if (cur == NULL)
				return "delivery agent replied with an unknown rcpt_id";
		} else if (cur != NULL && strcmp(name, DELIVERY_ATTR_ACTION) == 0) {
			cur->outcome = strcmp(value, DELIVERY_ACTION_SENT) == 0 ? QMGR_SENT
			               : strcmp(value, DELIVERY_ACTION_BOUNCED) == 0
			                       ? QMGR_BOUNCED
			                       : QMGR_DEFERRED;
		} else if (cur != NULL && strcmp(name, DELIVERY_ATTR_STATUS) == 0) {
			if (queue_dsn_parse(value, &cur->dsn) < 0)
				cur->dsn = (struct queue_dsn){4, 0, 0};
		} else if (cur != NULL && strcmp(name, DELIVERY_ATTR_REASON) == 0) {
			free(cur->reason);
			cur->reason = xstrdup(value);
		} else if (cur != NULL && strcmp(name, DELIVERY_ATTR_DSN_ACTION) == 0) {
			free(cur->dsn_action);
			cur->dsn_action =
			        strcmp(value, "relayed") == 0 || strcmp(value, "none") == 0
			                ? xstrdup(value)
			                : NULL;
		} else if (cur != NULL && strcmp(name, DELIVERY_ATTR_REMOTE_MTA) == 0) {
			free(cur->remote_mta);
			cur->remote_mta = xasprintf("dns; %s", value);
		} else if (strcmp(name, DELIVERY_ATTR_DEST_STATUS) == 0) {
			c->dest_down = strcmp(value, "down") == 0;
		}
	}
	/* The code must agree with the action: a 2xx bounce is nonsense
	 * and is treated as a deferral. */
	for (size_t i = 0; i < c->n; i++) {
		struct qmgr_final *f = c->finals[i];

		if ((f->outcome == QMGR_SENT && f->dsn.klass != 2) ||
		    (f->outcome == QMGR_BOUNCED && f->dsn.klass != 5))
			f->outcome = QMGR_DEFERRED;
		if (f->outcome == QMGR_DEFERRED && f->dsn.klass != 4)
			f->dsn = (struct queue_dsn){4, 0, 0};
		if (f->outcome != QMGR_PENDING && f->reason == NULL)
			f->reason = xstrdup("no reason given");
	}
	return NULL;
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct agent_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	str_t why;

	while (evbuffer_get_length(in) > 0) {
		size_t len = evbuffer_get_contiguous_space(in), used = 0;
		unsigned char *data = evbuffer_pullup(in, (ssize_t)len);
		enum attr_parse_status st = attr_parser_feed(c->parser, data, len, &used);
		struct attr_list *reply;
		const char *problem;

		evbuffer_drain(in, used);
		if (st == ATTR_PARSE_NEED_MORE)
			continue;
		str_init(&why);
		if (st == ATTR_PARSE_ERROR) {
			str_appendf(&why, "malformed reply from private/%s: %s", c->dest->transport,
			            attr_parser_error(c->parser));
			conn_finish(c, str_c(&why));
			str_free(&why);
			return;
		}
		reply = attr_parser_take(c->parser);
		problem = apply_reply(c, reply);
		if (problem != NULL)
			str_appendf(&why, "delivery agent private/%s: %s", c->dest->transport,
			            problem);
		else
			str_appendf(&why, "delivery agent private/%s did not report this recipient",
			            c->dest->transport);
		conn_finish(c, str_c(&why));
		attr_list_destroy(&reply);
		str_free(&why);
		return;
	}
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct agent_conn *c = arg;
	str_t why;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED)
		return;
	str_init(&why);
	if (what & BEV_EVENT_TIMEOUT)
		str_appendf(&why, "delivery agent private/%s timed out after %u s",
		            c->dest->transport, AGENT_TIMEOUT);
	else
		str_appendf(&why,
		            "lost connection with delivery agent private/%s before its reply "
		            "(agent crashed?)",
		            c->dest->transport);
	conn_finish(c, str_c(&why));
	str_free(&why);
}

static void build_request(const struct agent_conn *c, str_t *out)
{
	const struct qmgr_msg *msg = c->finals[0]->msg;
	const char *err;

	(void)attr_put_str(out, ATTR_VERSION, ATTR_PROTOCOL_VERSION, &err);
	(void)attr_put_uint(out, ATTR_REQUEST_ID, 1, &err);
	(void)attr_put_str(out, DELIVERY_ATTR_REQUEST, DELIVERY_REQUEST, &err);
	(void)attr_put_str(out, DELIVERY_ATTR_QUEUE_NAME, queue_name_str(QUEUE_ACTIVE), &err);
	(void)attr_put_str(out, DELIVERY_ATTR_QUEUE_ID, msg->id, &err);
	(void)attr_put_str(out, DELIVERY_ATTR_NEXTHOP, c->dest->nexthop, &err);
	(void)attr_put_uint(out, DELIVERY_ATTR_TIME_ACTIVE, msg->active_usec, &err);
	if (msg->redelivery)
		(void)attr_put_str(out, DELIVERY_ATTR_REDELIVERY, "1", &err);
	/* More for this destination behind this delivery: the smtp client
	 * keeps its connection for it (smtp_connection_cache_on_demand). */
	if (!TAILQ_EMPTY(&c->dest->queue))
		(void)attr_put_str(out, DELIVERY_ATTR_CACHE, "1", &err);
	for (size_t i = 0; i < c->n; i++) {
		const struct qmgr_rcpt *r = &msg->rcpts[c->finals[i]->rcpt];

		(void)attr_put_uint(out, DELIVERY_ATTR_RCPT_ID, i, &err);
		(void)attr_put_str(out, DELIVERY_ATTR_RECIPIENT, c->finals[i]->address, &err);
		(void)attr_put_str(out, DELIVERY_ATTR_ORIG_RECIPIENT, r->address, &err);
		(void)attr_put_uint(out, DELIVERY_ATTR_RCPT_INDEX, r->index, &err);
	}
	attr_end(out);
}

/* Start one delivery with the finals at the head of dest's queue.
 * Returns false when the agent's backlog is full (try again soon). */
static bool start_delivery(struct qmgr_dest *dest)
{
	static const struct attr_limits limits = ATTR_LIMITS_DEFAULT;
	struct qmgr *q = dest->q;
	struct qmgr_final *f = TAILQ_FIRST(&dest->queue), *next;
	struct agent_conn *c;
	struct sockaddr_un sun;
	struct timeval tv = {AGENT_TIMEOUT, 0};
	str_t req;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	(void)snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/%s", q->private_dir,
	               dest->transport);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int err = errno;

		close(fd);
		if (err == EAGAIN)
			return false;
		str_init(&req);
		str_appendf(&req, "mail transport unavailable: connect to private/%s: %s",
		            dest->transport, strerror(err));
		/* Every final queued here fails the same way. */
		while ((f = TAILQ_FIRST(&dest->queue)) != NULL) {
			TAILQ_REMOVE(&dest->queue, f, link);
			settle(f, "none", QMGR_DEFERRED, &(struct queue_dsn){4, 3, 0}, str_c(&req));
		}
		str_free(&req);
		return true;
	}
	if (fd < 0)
		return false;
	c = xcalloc(1, sizeof(*c));
	c->dest = dest;
	c->parser = attr_parser_new(&limits);
	c->start_usec = delivery_now_usec();
	c->finals = xcalloc(dest->rcpt_limit < 64 ? dest->rcpt_limit : 64, sizeof(*c->finals));
	/* The head final, and the finals of the same message queued right
	 * behind it (one message's recipients are queued together), up to
	 * the limit. Why not search further: with one recipient per message,
	 * a search would walk the whole queue for every delivery. */
	for (size_t cap = dest->rcpt_limit < 64 ? dest->rcpt_limit : 64;
	     f != NULL && c->n < dest->rcpt_limit; f = next) {
		next = TAILQ_NEXT(f, link);
		if (c->n > 0 && f->msg != c->finals[0]->msg)
			break;
		if (c->n == cap) {
			cap *= 2;
			c->finals = xreallocarray(c->finals, cap, sizeof(*c->finals));
		}
		TAILQ_REMOVE(&dest->queue, f, link);
		c->finals[c->n++] = f;
	}
	c->bev = bufferevent_socket_new(q->base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	str_init(&req);
	build_request(c, &req);
	bufferevent_write(c->bev, req.buf, req.len);
	str_free(&req);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	LIST_INSERT_HEAD(&dest->conns, c, link);
	dest->active++;
	return true;
}

/* A throttled destination: everything queued is deferred with the
 * reason of the failure that throttled it. */
static void suspend_queue(struct qmgr_dest *dest)
{
	static const struct queue_dsn tempfail = {4, 4, 1};
	struct qmgr_final *f;
	str_t why;

	str_init(&why);
	str_appendf(&why, "delivery temporarily suspended: %s", dest->throttle_reason);
	while ((f = TAILQ_FIRST(&dest->queue)) != NULL) {
		TAILQ_REMOVE(&dest->queue, f, link);
		settle(f, dest->transport, QMGR_DEFERRED, &tempfail, str_c(&why));
	}
	str_free(&why);
}

static void dispatch(struct qmgr_dest *dest)
{
	struct timeval tv = {0, RETRY_CONNECT_MS * 1000};

	if (dest->q->stopping)
		return;
	if (dest->throttle_reason != NULL) {
		suspend_queue(dest);
		dest_gc(dest);
		return;
	}
	while (dest->active < dest->limit && dest->active < (unsigned)dest->window &&
	       !TAILQ_EMPTY(&dest->queue)) {
		if (dest->rate_delay_usec > 0) {
			uint64_t now = delivery_now_usec();

			/* One at a time, rate_delay apart. */
			if (dest->active > 0)
				break;
			if (now < dest->next_start_usec) {
				struct timeval wait = {
				        (time_t)((dest->next_start_usec - now) / 1000000u),
				        (suseconds_t)((dest->next_start_usec - now) % 1000000u)};

				evtimer_add(dest->retry_ev, &wait);
				return;
			}
			dest->next_start_usec = now + dest->rate_delay_usec;
		}
		if (!start_delivery(dest)) {
			evtimer_add(dest->retry_ev, &tv);
			return;
		}
	}
	dest_gc(dest);
}

hash_t *qmgr_dests_new(void)
{
	return hash_new(dest_free);
}
