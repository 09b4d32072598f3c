/* qmgr_message.c - one message in the queue manager: activation, the
 * outcome of each recipient, and completion.
 *
 * Used by qmgr.c (scans), qmgr_resolve.c (answers) and qmgr_deliver.c
 * (outcomes). One round of a message:
 *
 *   1. activate: move the file into active/ (a rename), read the envelope
 *      and every recipient not yet done, log "from=<>, size=, nrcpt=
 *      (queue active)", close the file, ask the resolver about each
 *      recipient;
 *   2. resolved: each recipient expands to final addresses (virtual
 *      aliases, unless the message was received with
 *      receive_override_options = no_address_mappings); finals already
 *      done in an earlier round (status log) are skipped, unknown ones
 *      bounce, and once every recipient is resolved the rest go to their
 *      transport together (hand_out), or all to the message's content
 *      filter when it has one (content_filter, FILTER);
 *   3. complete, once every recipient is settled: expired recipients
 *      (maximal_queue_lifetime; bounce_queue_lifetime for the null sender)
 *      turn into bounces; bounces, success notices and delay warnings are
 *      written (qmgr_notify.c); the status log gets the reasons and the
 *      finals done of recipients still pending; every recipient's slot is
 *      updated in the queue file and fsync'd ONCE; then the file is
 *      removed ("removed") when every recipient is done, or moved to
 *      deferred/ with its mtime set to the next retry.
 *
 * Order for "never lost": a recipient's slot turns final only after its
 * agent said "sent" (the mailbox file was fsync'd) or after the bounce
 * telling the sender was itself queued (fsync'd). A crash anywhere in
 * between leaves the recipient pending: it is delivered again (at least
 * once).
 *
 * Backoff, as Postfix's qmgr: the next attempt comes after the message's
 * age, but at least minimal_backoff_time and at most maximal_backoff_time.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/log.h"
#include "base/mem.h"
#include "conf/config.h"
#include "delivery/delivery.h"
#include "delivery/delivery_log.h"
#include "queue/queue_log.h"
#include "qmgr.h"

static const struct queue_dsn dsn_tempfail = {4, 3, 0};
static const struct queue_dsn dsn_loop = {5, 4, 6};
static const struct queue_dsn dsn_unknown = {5, 1, 1};

static uint64_t tv_usec(const struct timeval *tv)
{
	return (uint64_t)tv->tv_sec * 1000000u + (uint64_t)tv->tv_usec;
}

void qmgr_message_free(struct qmgr_msg *msg)
{
	for (size_t i = 0; i < msg->nrcpts; i++) {
		struct qmgr_rcpt *r = &msg->rcpts[i];

		for (size_t j = 0; j < r->nfinals; j++) {
			struct qmgr_final *f = r->finals[j];

			free(f->address);
			free(f->transport);
			free(f->nexthop);
			free(f->reason);
			free(f->dsn_action);
			free(f->remote_mta);
			free(f);
		}
		free(r->finals);
		free(r->address);
		free(r->orcpt);
		free(r->own_reason);
	}
	free(msg->rcpts);
	free(msg->sender);
	free(msg->filter_transport);
	free(msg->filter_nexthop);
	queue_log_destroy(&msg->log);
	hash_destroy(&msg->finals_seen);
	free(msg);
}

static void msg_forget(struct qmgr_msg *msg)
{
	struct qmgr *q = msg->q;

	TAILQ_REMOVE(&q->msgs, msg, link);
	q->nmsgs--;
	hash_delete(q->active_ids, msg->id);
	qmgr_message_free(msg);
	if (q->incoming_cut && q->nmsgs < q->active_limit) {
		q->incoming_cut = false;
		qmgr_schedule_incoming_scan(q);
	}
	qmgr_message_gone(q);
}

/* Log an outcome decided here (no agent): relay=none. */
static void log_own(struct qmgr_msg *msg, const char *to, const char *orig_to,
                    enum qmgr_outcome outcome, const struct queue_dsn *dsn, const char *reason)
{
	struct delivery_times t = {
	        tv_usec(&msg->arrival), msg->active_usec, 0, 0, delivery_now_usec(), 0};
	str_t code;

	str_init(&code);
	queue_dsn_format(dsn, &code);
	delivery_log(msg->id, to, orig_to, "none", &t, str_c(&code),
	             outcome == QMGR_SENT      ? "sent"
	             : outcome == QMGR_BOUNCED ? "bounced"
	                                       : "deferred",
	             reason);
	str_free(&code);
}

/* ---- 1. activation ---- */

/* The content filter cleanup recorded, as Postfix's qmgr reads it:
 * "transport" or "transport:nexthop"; a filter without a nexthop takes
 * default_filter_nexthop, and when that is empty too the recipient's
 * domain (qmgr_deliver.c does that for an empty nexthop). */
static void read_filter(struct qmgr_msg *msg, const struct queue_file *qf)
{
	const char *value = queue_file_attr(qf, QUEUE_ATTR_CONTENT_FILTER);
	const char *colon;

	if (value == NULL || value[0] == '\0')
		return;
	colon = strchr(value, ':');
	msg->filter_transport =
	        colon != NULL ? xstrndup(value, (size_t)(colon - value)) : xstrdup(value);
	if (colon != NULL && colon[1] != '\0')
		msg->filter_nexthop = xstrdup(colon + 1);
	else
		msg->filter_nexthop = xstrdup(config_str(msg->q->cfg, "default_filter_nexthop"));
}

static void move_corrupt(struct qmgr *q, const char *id, const char *why)
{
	str_t error;

	str_init(&error);
	log_warning("%s: %s: moved to corrupt/", id, why);
	if (queue_dir_move(q->qd, id, QUEUE_ACTIVE, QUEUE_CORRUPT, &error) < 0)
		log_warning("%s: %s", id, str_c(&error));
	str_free(&error);
}

void qmgr_message_activate(struct qmgr *q, const char *id, enum queue_name from)
{
	struct queue_file *qf = NULL;
	const struct queue_envelope *env;
	struct qmgr_msg *msg;
	struct queue_rcpt rcpt;
	enum queue_file_status st;
	str_t error;

	if (hash_get(q->active_ids, id) != NULL)
		return;
	str_init(&error);
	if (from != QUEUE_ACTIVE &&
	    queue_dir_move_flags(q->qd, id, from, QUEUE_ACTIVE, QUEUE_MOVE_NOSYNC, &error) < 0) {
		if (errno != ENOENT && errno != EEXIST)
			log_warning("%s: %s", id, str_c(&error));
		goto out;
	}
	st = queue_file_open(q->qd, QUEUE_ACTIVE, id, 0, &qf, &error);
	if (st == QUEUE_FILE_CORRUPT) {
		move_corrupt(q, id, str_c(&error));
		goto out;
	}
	if (st != QUEUE_FILE_OK) {
		if (errno != ENOENT) {
			log_warning("%s: %s", id, str_c(&error));
			/* Not left in active/ for ever: retry after the backoff. */
			(void)queue_dir_move(q->qd, id, QUEUE_ACTIVE, QUEUE_DEFERRED, &error);
		}
		goto out;
	}
	env = queue_file_envelope(qf);
	msg = xcalloc(1, sizeof(*msg));
	msg->q = q;
	memcpy(msg->id, id, QUEUE_ID_SIZE);
	msg->sender = xstrdup(env->sender);
	msg->size = env->content_length;
	msg->arrival = env->arrival;
	msg->active_usec = delivery_now_usec();
	msg->redelivery = from != QUEUE_INCOMING;
	read_filter(msg, qf);
	{
		const char *v = queue_file_attr(qf, QUEUE_ATTR_NO_ADDRESS_MAPPINGS);

		msg->no_address_mappings = v != NULL && strcmp(v, "yes") == 0;
	}
	msg->rcpts = xcalloc(env->rcpt_count, sizeof(*msg->rcpts));
	msg->finals_seen = hash_new(NULL);
	queue_rcpt_init(&rcpt);
	for (size_t i = 0; i < env->rcpt_count; i++) {
		struct qmgr_rcpt *r;

		if (queue_file_read_rcpt(qf, i, &rcpt, &error) != QUEUE_FILE_OK) {
			queue_rcpt_free(&rcpt);
			queue_file_close(&qf);
			qmgr_message_free(msg);
			move_corrupt(q, id, str_c(&error));
			goto out;
		}
		if (queue_rcpt_state_final(rcpt.status.state))
			continue;
		r = &msg->rcpts[msg->nrcpts++];
		r->index = i;
		r->address = xstrdup(str_c(&rcpt.address));
		r->orcpt = xstrdup(str_c(&rcpt.orcpt));
		r->notify = rcpt.notify;
		r->status = rcpt.status;
	}
	queue_rcpt_free(&rcpt);
	log_info("%s: from=<%s>, size=%llu, nrcpt=%zu (queue active)", id, msg->sender,
	         (unsigned long long)env->file_size, env->rcpt_count);
	queue_file_close(&qf);
	if (queue_log_load(q->qd, id, &msg->log, &error) < 0) {
		/* Only finals done in an earlier round are lost: they are
		 * delivered again (at least once). */
		log_warning("%s: %s", id, str_c(&error));
		msg->log = NULL;
	}
	TAILQ_INSERT_TAIL(&q->msgs, msg, link);
	q->nmsgs++;
	hash_put(q->active_ids, id, msg);
	msg->rcpts_left = msg->nrcpts;
	msg->unresolved = msg->nrcpts;
	if (msg->nrcpts == 0) {
		/* Every recipient was done (a crash before the removal). */
		msg->rcpts_left = 1;
		qmgr_rcpt_settle(msg, 0);
		goto out;
	}
	for (size_t i = 0; i < msg->nrcpts; i++)
		qmgr_resolver_submit(q->resolver, msg, i);
out:
	str_free(&error);
}

/* ---- 2. resolved ---- */

static bool final_done_before(const struct qmgr_msg *msg, const struct qmgr_rcpt *r,
                              const char *address)
{
	return msg->log != NULL &&
	       queue_log_final_state(msg->log, r->index, address) != QUEUE_RCPT_PENDING;
}

/* Duplicate elimination, as Postfix's cleanup does after alias
 * expansion: a final address another recipient of the same message
 * already reaches this round is not delivered twice (alice@ and info@ ->
 * alice@ give one copy). True when address was seen; records it if not. */
static bool final_seen(struct qmgr_msg *msg, const char *address)
{
	char *key = xstrdup(address);
	bool seen;

	for (char *p = key; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	seen = hash_contains(msg->finals_seen, key);
	if (!seen)
		hash_put(msg->finals_seen, key, msg);
	free(key);
	return seen;
}

/* A recipient's own outcome (no finals): logged now, settled in
 * hand_out() with the others. */
static void own_outcome(struct qmgr_msg *msg, size_t rcpt, enum qmgr_outcome outcome,
                        const struct queue_dsn *dsn, const char *reason)
{
	struct qmgr_rcpt *r = &msg->rcpts[rcpt];

	r->own_outcome = outcome;
	r->own_dsn = *dsn;
	free(r->own_reason);
	r->own_reason = xstrdup(reason);
	log_own(msg, r->address, NULL, outcome, dsn, reason);
}

/* Every recipient is resolved: settle the ones without finals and hand
 * the finals to their transports, all in one go. Why all at once and not
 * as each answer comes: recipients of one message for the same
 * destination can then share one delivery (up to
 * TRANSPORT_destination_recipient_limit), as in Postfix, where qmgr
 * resolves a message's recipients before it schedules any; a content
 * filter then runs once per message, not once per recipient.
 *
 * The extra count on rcpts_left (and the one on each recipient's
 * finals_left from qmgr_message_resolved) keeps the message alive while
 * the loop runs: an outcome known at once (error, discard) must not
 * complete and free it half way. */
static void hand_out(struct qmgr_msg *msg)
{
	msg->rcpts_left++;
	for (size_t i = 0; i < msg->nrcpts; i++) {
		struct qmgr_rcpt *r = &msg->rcpts[i];

		if (r->finals == NULL) { /* an own outcome */
			qmgr_rcpt_settle(msg, i);
			continue;
		}
		for (size_t j = 0; j < r->nfinals; j++) {
			struct qmgr_final *f = r->finals[j];

			if (f->outcome == QMGR_BOUNCED) {
				log_own(msg, f->address, r->address, f->outcome, &f->dsn,
				        f->reason);
				qmgr_final_done(f);
			} else {
				qmgr_deliver_final(msg->q, f);
			}
		}
		if (--r->finals_left == 0)
			qmgr_rcpt_settle(msg, i);
	}
	qmgr_rcpt_settle(msg, 0); /* the extra count: may complete msg */
}

/* A final of a filtered message: it goes to the filter, whatever its own
 * transport (or its lookup, unknown recipients included: the mail comes
 * back after filtering and is judged then, as in Postfix). */
static void filter_final(const struct qmgr_msg *msg, struct qmgr_final *f)
{
	free(f->transport);
	free(f->nexthop);
	f->transport = xstrdup(msg->filter_transport);
	f->nexthop = xstrdup(msg->filter_nexthop);
}

void qmgr_message_resolved(struct qmgr_msg *msg, size_t rcpt, struct resolve_result *res)
{
	struct qmgr_rcpt *r = &msg->rcpts[rcpt];
	str_t reason;
	size_t n = 0;

	r->resolved = true;
	if (res->status == RESOLVE_TEMPFAIL) {
		r->lookup_failed = true;
		own_outcome(msg, rcpt, QMGR_DEFERRED, &dsn_tempfail, str_c(&res->error));
	} else if (res->nfinals == 0) {
		str_init(&reason);
		str_appendf(&reason, "mail forwarding loop for %s", r->address);
		own_outcome(msg, rcpt, QMGR_BOUNCED, &dsn_loop, str_c(&reason));
		str_free(&reason);
	} else {
		r->finals = xcalloc(res->nfinals, sizeof(*r->finals));
		for (size_t i = 0; i < res->nfinals; i++) {
			const struct resolve_final *rf = &res->finals[i];
			struct qmgr_final *f;

			if (final_done_before(msg, r, rf->address) || final_seen(msg, rf->address))
				continue;
			f = xcalloc(1, sizeof(*f));
			f->msg = msg;
			f->rcpt = rcpt;
			f->address = xstrdup(rf->address);
			f->transport = xstrdup(rf->transport != NULL ? rf->transport : "");
			f->nexthop = xstrdup(rf->nexthop != NULL ? rf->nexthop : "");
			if (msg->filter_transport != NULL) {
				filter_final(msg, f);
			} else if (!rf->deliverable) {
				f->outcome = QMGR_BOUNCED;
				f->dsn = dsn_unknown;
				f->reason =
				        xstrdup(rf->reason != NULL ? rf->reason : "User unknown");
			}
			r->finals[n++] = f;
		}
		r->nfinals = n;
		/* One extra count until hand_out() has handed them all. */
		r->finals_left = n + 1;
	}
	if (--msg->unresolved == 0)
		hand_out(msg);
}

void qmgr_final_done(struct qmgr_final *f)
{
	struct qmgr_msg *msg = f->msg;
	struct qmgr_rcpt *r = &msg->rcpts[f->rcpt];

	/* A delivery agent's table that could not answer is a lookup
	 * failure like the resolver's: retried soon (complete()). */
	if (f->outcome == QMGR_DEFERRED && f->reason != NULL &&
	    strncmp(f->reason, DELIVERY_LOOKUP_PROBLEM, strlen(DELIVERY_LOOKUP_PROBLEM)) == 0)
		r->lookup_failed = true;
	switch (f->outcome) {
	case QMGR_SENT:
		msg->q->delivered++;
		break;
	case QMGR_BOUNCED:
		msg->q->bounced++;
		break;
	default:
		msg->q->deferred++;
		break;
	}
	if (--r->finals_left == 0)
		qmgr_rcpt_settle(msg, f->rcpt);
}

/* Why record here, per reply, and not only in complete(): a message
 * stays in memory until its last final settles, which for a message with
 * several finals (an alias, recipients in several domains) can be long
 * after the first "sent" came back, e.g. while one destination is slow.
 * A qmgr killed meanwhile forgets those outcomes, and its successor
 * re-offers the message from active/: every final already delivered would
 * be delivered again. The 'F' records are what final_done_before() reads
 * on the next activation, so with them only the finals still out are
 * tried again.
 *
 * Cost, group-commit style: the records of one reply (all the finals of
 * one message one agent took) are written unsynced and the last one is
 * synced, so a reply costs one fdatasync and one fsync of the log's
 * directory (queue_log.c syncs it with every synced append), whatever the
 * number of finals.
 * Paid only while the message has other finals out: the reply that
 * settles its last final costs nothing here, since complete() follows at
 * once and removes the file (or records the round with its own fsync).
 * A single-recipient message, the common case, never pays.
 *
 * Not closed by this: qmgr killed between the agent's reply and this
 * write. For virtual that window is closed at the mailbox instead (the
 * retry finds the file: lib/delivery/maildir.c, "at most once"). */
void qmgr_message_record_done(struct qmgr_final **finals, size_t n)
{
	struct qmgr_msg *msg;
	size_t out = 0, last = n;
	str_t error;

	if (n == 0)
		return;
	msg = finals[0]->msg;
	/* Finals still out for the message; the reply settles n of them. */
	for (size_t i = 0; i < msg->nrcpts; i++)
		out += msg->rcpts[i].resolved ? msg->rcpts[i].finals_left : 1;
	if (out <= n)
		return;
	for (size_t i = 0; i < n; i++)
		if (finals[i]->msg == msg &&
		    (finals[i]->outcome == QMGR_SENT || finals[i]->outcome == QMGR_BOUNCED))
			last = i;
	if (last == n)
		return;
	str_init(&error);
	for (size_t i = 0; i <= last; i++) {
		struct qmgr_final *f = finals[i];

		if (f->msg != msg || (f->outcome != QMGR_SENT && f->outcome != QMGR_BOUNCED))
			continue;
		if (queue_log_append_final(msg->q->qd, msg->id, msg->rcpts[f->rcpt].index,
		                           f->outcome == QMGR_SENT ? QUEUE_RCPT_DELIVERED
		                                                   : QUEUE_RCPT_BOUNCED,
		                           f->address, i == last, &error) < 0) {
			log_warning("%s: %s", msg->id, str_c(&error));
			str_reset(&error);
			continue;
		}
		f->recorded = true;
	}
	str_free(&error);
}

/* ---- 3. completion ---- */

bool qmgr_rcpt_deferred(const struct qmgr_rcpt *r)
{
	if (r->own_outcome == QMGR_DEFERRED)
		return true;
	for (size_t i = 0; i < r->nfinals; i++)
		if (r->finals[i]->outcome != QMGR_SENT && r->finals[i]->outcome != QMGR_BOUNCED)
			return true;
	return false;
}

static bool rcpt_bounced(const struct qmgr_rcpt *r)
{
	if (r->own_outcome == QMGR_BOUNCED)
		return true;
	for (size_t i = 0; i < r->nfinals; i++)
		if (r->finals[i]->outcome == QMGR_BOUNCED)
			return true;
	return false;
}

/* The reason and code of a recipient's first deferral. */
void qmgr_rcpt_defer_reason(const struct qmgr_rcpt *r, const char **reason_r,
                            struct queue_dsn *dsn_r)
{
	*reason_r = "delivery deferred";
	*dsn_r = dsn_tempfail;
	if (r->own_outcome == QMGR_DEFERRED) {
		*reason_r = r->own_reason;
		*dsn_r = r->own_dsn;
		return;
	}
	for (size_t i = 0; i < r->nfinals; i++) {
		const struct qmgr_final *f = r->finals[i];

		if (f->outcome != QMGR_SENT && f->outcome != QMGR_BOUNCED) {
			*reason_r = f->reason != NULL ? f->reason : "delivery deferred";
			*dsn_r = f->dsn.klass != 0 ? f->dsn : dsn_tempfail;
			return;
		}
	}
}

/* Past its lifetime: every deferral of the message becomes a bounce. */
static void expire(struct qmgr_msg *msg)
{
	bool any = false;

	for (size_t i = 0; i < msg->nrcpts; i++) {
		struct qmgr_rcpt *r = &msg->rcpts[i];

		if (r->own_outcome == QMGR_DEFERRED) {
			r->own_outcome = QMGR_BOUNCED;
			any = true;
		}
		for (size_t j = 0; j < r->nfinals; j++) {
			if (r->finals[j]->outcome == QMGR_DEFERRED ||
			    r->finals[j]->outcome == QMGR_PENDING) {
				r->finals[j]->outcome = QMGR_BOUNCED;
				any = true;
			}
		}
	}
	if (any)
		log_info("%s: from=<%s>, status=expired, returned to sender", msg->id, msg->sender);
}

/* A bounce could not be queued: what bounced this round is deferred. */
static void unbounce(struct qmgr_msg *msg)
{
	for (size_t i = 0; i < msg->nrcpts; i++) {
		struct qmgr_rcpt *r = &msg->rcpts[i];

		if (r->own_outcome == QMGR_BOUNCED)
			r->own_outcome = QMGR_DEFERRED;
		for (size_t j = 0; j < r->nfinals; j++)
			if (r->finals[j]->outcome == QMGR_BOUNCED)
				r->finals[j]->outcome = QMGR_DEFERRED;
	}
}

/* Status log entries of a recipient that stays pending. */
static void log_pending(struct qmgr_msg *msg, struct qmgr_rcpt *r, time_t now)
{
	struct queue_log_entry e;
	str_t error;

	str_init(&error);
	for (size_t j = 0; j < r->nfinals; j++) {
		const struct qmgr_final *f = r->finals[j];

		/* Why sync: this record is all that stops the retry from
		 * delivering f->address again; unsynced, a power loss in the
		 * next seconds loses it and re-delivers. The last final of
		 * the recipient syncs the log once for all of them (fdatasync
		 * covers every earlier append), so the cost is one
		 * fdatasync (plus one directory fsync when the log is new)
		 * per deferred alias recipient with finals done, paid only
		 * on that partial-failure path. */
		bool last = true;

		if (f->recorded)
			continue; /* synced when its reply came (qmgr_message_record_done) */
		for (size_t k = j + 1; k < r->nfinals; k++)
			if (!r->finals[k]->recorded && (r->finals[k]->outcome == QMGR_SENT ||
			                                r->finals[k]->outcome == QMGR_BOUNCED))
				last = false;
		if ((f->outcome == QMGR_SENT || f->outcome == QMGR_BOUNCED) &&
		    queue_log_append_final(msg->q->qd, msg->id, r->index,
		                           f->outcome == QMGR_SENT ? QUEUE_RCPT_DELIVERED
		                                                   : QUEUE_RCPT_BOUNCED,
		                           f->address, last, &error) < 0) {
			log_warning("%s: %s", msg->id, str_c(&error));
			str_reset(&error);
		}
	}
	memset(&e, 0, sizeof(e));
	e.rcpt_index = r->index;
	e.state = QUEUE_RCPT_DEFERRED;
	e.when = now;
	e.next_retry = r->status.next_retry;
	qmgr_rcpt_defer_reason(r, &e.reason, &e.dsn);
	if (queue_log_append(msg->q->qd, msg->id, &e, false, &error) < 0)
		log_warning("%s: %s", msg->id, str_c(&error));
	str_free(&error);
}

static time_t backoff(const struct qmgr *q, const struct qmgr_msg *msg, time_t now)
{
	time_t delay = now - msg->arrival.tv_sec;

	if (delay > q->max_backoff)
		delay = q->max_backoff;
	if (delay < q->min_backoff)
		delay = q->min_backoff;
	return now + delay;
}

/* Write every recipient's new slot, then one fsync. */
static int record_round(struct qmgr_msg *msg, struct queue_file *qf, str_t *error)
{
	for (size_t i = 0; i < msg->nrcpts; i++)
		if (queue_file_update_rcpt(qf, msg->rcpts[i].index, &msg->rcpts[i].status, false,
		                           error) < 0)
			return -1;
	return queue_file_sync(qf, error);
}

static void complete(struct qmgr_msg *msg)
{
	struct qmgr *q = msg->q;
	struct queue_file *qf = NULL;
	enum queue_name where;
	time_t now = time(NULL), next = 0, lookup_delay = 0;
	time_t lifetime = msg->sender[0] == '\0' ? q->bounce_lifetime : q->queue_lifetime;
	bool all_final = true;
	str_t path, error;

	str_init(&path);
	str_init(&error);
	/* In active/, almost always; else wherever it is now: an
	 * administrator may have held or requeued it meanwhile; its slots are
	 * updated all the same. */
	where = QUEUE_ACTIVE;
	if (queue_dir_locate(q->qd, QUEUE_ACTIVE, msg->id, &path, &error) != 1 &&
	    queue_dir_find(q->qd, msg->id, &where, &path, &error) != 1) {
		if (error.len > 0)
			log_warning("%s: %s", msg->id, str_c(&error));
		goto out; /* deleted meanwhile */
	}
	if (queue_file_open_path(str_c(&path), QUEUE_FILE_RDWR, &qf, &error) != QUEUE_FILE_OK) {
		log_warning("%s: %s", msg->id, str_c(&error));
		goto out;
	}
	for (size_t i = 0; i < msg->nrcpts && lifetime > 0; i++) {
		if (qmgr_rcpt_deferred(&msg->rcpts[i]) && now - msg->arrival.tv_sec >= lifetime) {
			expire(msg);
			break;
		}
	}
	if (!qmgr_notify_bounces(msg, qf))
		unbounce(msg);
	qmgr_notify_success(msg, qf);
	qmgr_notify_delays(msg, qf);
	for (size_t i = 0; i < msg->nrcpts; i++) {
		struct qmgr_rcpt *r = &msg->rcpts[i];

		r->status.changed = now;
		if (r->status.attempts < 65535)
			r->status.attempts++;
		if (!qmgr_rcpt_deferred(r)) {
			r->status.state =
			        rcpt_bounced(r) ? QUEUE_RCPT_BOUNCED : QUEUE_RCPT_DELIVERED;
			r->status.next_retry = 0;
		} else {
			all_final = false;
			r->status.state = QUEUE_RCPT_DEFERRED;
			r->status.next_retry = backoff(q, msg, now);
			/* Why a lookup failure waits less: the message itself is
			 * fine, only the database did not answer (down, hung,
			 * restarting). Backing off for hours, as for a remote
			 * server that refuses, would hold mail for known users
			 * long after the database is back; retrying soon costs a
			 * resolution that the table cache answers (known keys)
			 * or that fails at once. So: the lesser of
			 * minimal_backoff_time and QMGR_LOOKUP_RETRY, with a
			 * deferred scan scheduled for it. */
			if (r->lookup_failed) {
				lookup_delay = q->min_backoff < QMGR_LOOKUP_RETRY
				                       ? q->min_backoff
				                       : QMGR_LOOKUP_RETRY;
				r->status.next_retry = now + lookup_delay;
			}
			qmgr_rcpt_defer_reason(r, &(const char *){NULL}, &r->status.dsn);
			log_pending(msg, r, now);
			if (next == 0 || r->status.next_retry < next)
				next = r->status.next_retry;
		}
	}
	/* Every recipient done: the file goes at once, with nothing to
	 * record (a removal lost in a crash means the message is delivered
	 * again: at least once). Otherwise the round is recorded in the slots
	 * with one fsync. */
	if (all_final && queue_dir_remove(q->qd, where, msg->id, &error) == 0) {
		queue_file_close(&qf);
		log_info("%s: removed", msg->id);
		goto out;
	}
	if (all_final) {
		log_warning("%s: %s", msg->id, str_c(&error));
		str_reset(&error);
	}
	if (record_round(msg, qf, &error) < 0) {
		/* Nothing is known to be on disk: leave the file as it is;
		 * the next round delivers again what was not recorded. */
		log_warning("%s: %s", msg->id, str_c(&error));
		queue_file_close(&qf);
		goto out;
	}
	queue_file_close(&qf);
	if (!all_final) {
		struct timespec times[2] = {{next, 0}, {next, 0}};

		/* The deferred scan takes files whose mtime has passed. */
		if (utimensat(AT_FDCWD, str_c(&path), times, 0) < 0)
			log_warning("%s: utimensat %s: %m", msg->id, str_c(&path));
		if (where == QUEUE_ACTIVE &&
		    queue_dir_move_flags(q->qd, msg->id, QUEUE_ACTIVE, QUEUE_DEFERRED,
		                         QUEUE_MOVE_NOSYNC, &error) < 0)
			log_warning("%s: %s", msg->id, str_c(&error));
		if (lookup_delay > 0)
			qmgr_schedule_lookup_retry(q, lookup_delay);
	}
out:
	str_free(&path);
	str_free(&error);
	msg_forget(msg);
}

void qmgr_rcpt_settle(struct qmgr_msg *msg, size_t rcpt)
{
	(void)rcpt;
	if (--msg->rcpts_left == 0)
		complete(msg);
}
