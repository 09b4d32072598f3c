/* qmgr_notify.c - the notices a completed round calls for: bounces
 * (non-delivery), success notices (NOTIFY=SUCCESS) and delay warnings
 * (delay_warning_time), each one RFC 3464 message written by
 * lib/message/bounce.c into incoming/ and delivered like any other mail.
 *
 * Used by qmgr_message.c before it records the round in the queue file:
 * a recipient is marked bounced only after the bounce about it is queued
 * (fsync'd). Who gets a notice (the sender; postmaster for a bounce of a
 * bounce; nobody for mail from the double-bounce sender) is bounce.c's
 * rule; which recipients are reported is RFC 3461 NOTIFY's (bounce_wanted).
 * Log lines as Postfix's bounce daemon writes them:
 *   ID: sender non-delivery notification: NEWID
 *   ID: sender delay notification: NEWID
 *   ID: sender delivery status notification: NEWID
 */
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/strv.h"
#include "message/bounce.h"
#include "qmgr.h"

struct notice {
	struct bounce_rcpt *rcpts;
	size_t n, cap;
	strv_t orcpts; /* storage for made-up Original-Recipient values */
};

/* Original-Recipient: the client's ORCPT, or the queue file's recipient
 * when alias expansion changed the address. */
static const char *original_of(struct notice *nt, const struct qmgr_rcpt *r, const char *final)
{
	if (r->orcpt[0] != '\0')
		return r->orcpt;
	if (strcmp(final, r->address) == 0)
		return NULL;
	strv_add_owned(&nt->orcpts, xasprintf("rfc822;%s", r->address));
	return nt->orcpts.v[nt->orcpts.n - 1];
}

static struct bounce_rcpt *add(struct notice *nt, const struct qmgr_rcpt *r, const char *final,
                               const struct queue_dsn *dsn, const char *reason)
{
	struct bounce_rcpt *b;

	if (nt->n == nt->cap) {
		nt->cap = nt->cap == 0 ? 8 : nt->cap * 2;
		nt->rcpts = xreallocarray(nt->rcpts, nt->cap, sizeof(*nt->rcpts));
	}
	b = &nt->rcpts[nt->n++];
	memset(b, 0, sizeof(*b));
	b->final_recipient = final;
	b->original_recipient = original_of(nt, r, final);
	b->dsn = *dsn;
	b->reason = reason;
	return b;
}

static void collect(struct qmgr_msg *msg, enum bounce_kind kind, struct notice *nt)
{
	enum qmgr_outcome want = kind == BOUNCE_FAILED ? QMGR_BOUNCED : QMGR_SENT;

	for (size_t i = 0; i < msg->nrcpts; i++) {
		const struct qmgr_rcpt *r = &msg->rcpts[i];

		if (!bounce_wanted(r->notify, kind))
			continue;
		if (kind == BOUNCE_DELAYED) {
			const char *reason;
			struct queue_dsn dsn;

			if (!qmgr_rcpt_deferred(r) || (r->status.flags & QUEUE_RCPT_F_DELAY_WARNED))
				continue;
			qmgr_rcpt_defer_reason(r, &reason, &dsn);
			add(nt, r, r->address, &dsn, reason);
			continue;
		}
		if (r->own_outcome == want && r->own_outcome != QMGR_PENDING)
			add(nt, r, r->address, &r->own_dsn, r->own_reason);
		for (size_t j = 0; j < r->nfinals; j++) {
			const struct qmgr_final *f = r->finals[j];
			struct bounce_rcpt *b;

			if (f->outcome != want)
				continue;
			/* Relayed to a server that takes NOTIFY: its success
			 * notice is the next MTA's to send (RFC 3461 5.2.2). */
			if (kind == BOUNCE_DELIVERED && f->dsn_action != NULL &&
			    strcmp(f->dsn_action, "none") == 0)
				continue;
			b = add(nt, r, f->address, &f->dsn, f->reason);
			if (kind == BOUNCE_DELIVERED && f->dsn_action != NULL)
				b->action = f->dsn_action;
			b->remote_mta = f->remote_mta;
		}
	}
}

/* Write the notice; false when it could not be queued. */
static bool send_notice(struct qmgr_msg *msg, struct queue_file *qf, enum bounce_kind kind)
{
	static const char *const what[] = {
	        [BOUNCE_FAILED] = "non-delivery",
	        [BOUNCE_DELAYED] = "delay",
	        [BOUNCE_DELIVERED] = "delivery status",
	};
	struct notice nt;
	char id[QUEUE_ID_SIZE];
	str_t error;
	bool ok = true;

	memset(&nt, 0, sizeof(nt));
	nt.orcpts = (strv_t)STRV_INIT;
	collect(msg, kind, &nt);
	if (nt.n == 0)
		goto out;
	str_init(&error);
	if (bounce_write(msg->q->bounce, qf, msg->q->qd, kind, nt.rcpts, nt.n, id, &error) < 0) {
		log_warning("%s: cannot queue the %s notification: %s", msg->id, what[kind],
		            str_c(&error));
		ok = false;
	} else if (id[0] != '\0') {
		log_info("%s: sender %s notification: %s", msg->id, what[kind], id);
		qmgr_schedule_incoming_scan(msg->q);
	} else {
		log_info("%s: %s notification for the double-bounce sender discarded", msg->id,
		         what[kind]);
	}
	str_free(&error);
out:
	free(nt.rcpts);
	strv_free(&nt.orcpts);
	return ok;
}

bool qmgr_notify_bounces(struct qmgr_msg *msg, struct queue_file *qf)
{
	return send_notice(msg, qf, BOUNCE_FAILED);
}

void qmgr_notify_success(struct qmgr_msg *msg, struct queue_file *qf)
{
	(void)send_notice(msg, qf, BOUNCE_DELIVERED);
}

void qmgr_notify_delays(struct qmgr_msg *msg, struct queue_file *qf)
{
	struct qmgr *q = msg->q;

	if (q->delay_warning <= 0 || time(NULL) - msg->arrival.tv_sec < q->delay_warning)
		return;
	if (!send_notice(msg, qf, BOUNCE_DELAYED))
		return;
	/* Warned once per recipient (the slot's flag is written with the
	 * rest of the round). */
	for (size_t i = 0; i < msg->nrcpts; i++)
		if (qmgr_rcpt_deferred(&msg->rcpts[i]) &&
		    bounce_wanted(msg->rcpts[i].notify, BOUNCE_DELAYED))
			msg->rcpts[i].status.flags |= QUEUE_RCPT_F_DELAY_WARNED;
}
