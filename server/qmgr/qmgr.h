/* qmgr.h - the queue manager's state, shared by its files:
 *
 *   qmgr.c          main: configuration, crash recovery, queue scans,
 *                   wake-ups, the event loop
 *   qmgr_message.c  one message: activation (incoming/deferred -> active),
 *                   outcomes per recipient, completion (slots, status log,
 *                   notifications, removal or deferral)
 *   qmgr_resolve.c  the resolver thread: virtual alias expansion and
 *                   transport lookup (lib/delivery/resolve.c is synchronous)
 *   qmgr_deliver.c  destinations, concurrency and recipient limits, the
 *                   conversations with delivery agents (delivery.h), and
 *                   the transports qmgr settles itself (error, retry,
 *                   discard)
 *   qmgr_notify.c   bounces, delay warnings and success notices
 *                   (lib/message/bounce.h)
 */
#ifndef POSTERN_QMGR_H
#define POSTERN_QMGR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <time.h>

#include "base/hash.h"
#include "base/str.h"
#include "queue/queue_dir.h"
#include "queue/queue_file.h"
#include "queue/queue_id.h"
#include "delivery/resolve.h"

struct config;
struct daemon;
struct event;
struct event_base;
struct queue_log;
struct qmgr;
struct qmgr_msg;
struct bounce_settings;

enum qmgr_outcome {
	QMGR_PENDING = 0,
	QMGR_SENT,
	QMGR_DEFERRED,
	QMGR_BOUNCED,
};

/* One final address of a queue file recipient: the unit of delivery. */
struct qmgr_final {
	struct qmgr_msg *msg;
	size_t rcpt; /* index into msg->rcpts */
	char *address;
	char *transport;
	char *nexthop; /* as the lookup said; may be "" */
	enum qmgr_outcome outcome;
	struct queue_dsn dsn;
	char *reason;
	/* From the agent (delivery.h): the success notice's action when not
	 * "delivered" ("relayed"; "none": the next MTA reports it), and the
	 * server that answered, for the notices' Remote-MTA. May be NULL. */
	char *dsn_action;
	char *remote_mta;
	bool recorded; /* its outcome is in the status log already */
	TAILQ_ENTRY(qmgr_final) link; /* in its destination's queue */
};
TAILQ_HEAD(qmgr_final_list, qmgr_final);

/* A queue file recipient worked on in this round. */
struct qmgr_rcpt {
	size_t index; /* in the queue file */
	char *address;
	char *orcpt; /* "" when none */
	unsigned notify;
	struct queue_rcpt_status status;
	bool resolved; /* the resolver answered */
	bool lookup_failed; /* deferred because a table could not answer */
	struct qmgr_final **finals;
	size_t nfinals;
	size_t finals_left; /* finals without an outcome yet */
	/* A failure of the recipient itself (lookup failure, expansion
	 * error), when it has no finals. */
	enum qmgr_outcome own_outcome;
	struct queue_dsn own_dsn;
	char *own_reason;
};

struct qmgr_msg {
	struct qmgr *q;
	char id[QUEUE_ID_SIZE];
	char *sender;
	uint64_t size;
	struct timeval arrival;
	uint64_t active_usec;
	struct qmgr_rcpt *rcpts;
	size_t nrcpts;
	size_t rcpts_left; /* recipients not yet settled this round */
	struct queue_log *log; /* final addresses done in earlier rounds */
	hash_t *finals_seen; /* lower-cased final addresses of this round */
	/* An earlier round may have delivered some final: the message came
	 * from active/ (qmgr restarted), deferred/ or hold/, not incoming/.
	 * Sent to agents as redelivery=1 (delivery.h). */
	bool redelivery;
	/* The queue file's content_filter: every final goes to this
	 * transport (and nexthop, "" for the recipient's domain or
	 * default_filter_nexthop) instead of its own; NULL for none. */
	char *filter_transport;
	char *filter_nexthop;
	/* receive_override_options = no_address_mappings when it was
	 * received: no virtual alias expansion here. */
	bool no_address_mappings;
	/* Recipients the resolver has not answered for yet: finals are
	 * handed to their transports only once every recipient is resolved,
	 * so that recipients of one message for one destination can travel
	 * in one delivery (qmgr_message.c hand_out()). */
	size_t unresolved;
	TAILQ_ENTRY(qmgr_msg) link;
};
TAILQ_HEAD(qmgr_msg_list, qmgr_msg);

struct qmgr {
	struct daemon *d;
	struct config *cfg;
	struct event_base *base;
	struct queue_dir *qd;
	struct qmgr_msg_list msgs; /* in memory (active) */
	size_t nmsgs;
	hash_t *active_ids; /* id -> msg, so a scan never takes one twice */
	hash_t *dests; /* "transport nexthop" -> struct qmgr_dest */
	struct qmgr_resolver *resolver;
	struct bounce_settings *bounce;
	/* settings */
	size_t active_limit;
	time_t min_backoff, max_backoff, queue_lifetime, bounce_lifetime, delay_warning;
	unsigned default_concurrency, default_rcpt_limit;
	char *private_dir; /* queue_directory/private */
	/* scans */
	struct event *incoming_ev; /* scan incoming soon */
	struct event *deferred_timer;
	struct event *lookup_retry_ev; /* a deferred scan for lookup failures */
	time_t lookup_retry_until; /* the latest lookup deferral is due then */
	struct event *incoming_timer;
	bool incoming_cut; /* a scan stopped at the active limit */
	bool stopping;
	bool owns_queue; /* holds the queue lock (see qmgr.c) */
	bool draining; /* reload: finish what is in memory, take nothing new */
	int lock_fd;
	struct event *lock_timer;
	struct event *drain_timer;
	/* counters for tests and the log */
	unsigned long delivered, deferred, bounced;
};

/* qmgr.c */
void qmgr_schedule_incoming_scan(struct qmgr *q);
/* Longest wait before a recipient deferred by a lookup failure (4.3.0)
 * is tried again, whatever its age: see qmgr_message.c complete(). */
#define QMGR_LOOKUP_RETRY 10
/* Scan deferred/ in delay seconds (unless a scan for this is due
 * sooner): messages deferred by a lookup failure are due then. */
void qmgr_schedule_lookup_retry(struct qmgr *q, time_t delay);
/* A message left memory: a draining qmgr exits when none is left. */
void qmgr_message_gone(struct qmgr *q);

/* An agent's reply settled finals[0..n-1] (all of one message): write the
 * sent and bounced ones to the status log with one fdatasync before they
 * are counted, unless they complete the message (complete() records or
 * removes it then). Failures are logged: at least once, never lost. */
void qmgr_message_record_done(struct qmgr_final **finals, size_t n);

/* qmgr_message.c: take id from queue into active and start it. */
void qmgr_message_activate(struct qmgr *q, const char *id, enum queue_name from);
/* Free a message and everything it holds (no queue changes). */
void qmgr_message_free(struct qmgr_msg *msg);
/* The resolver answered for recipient rcpt of msg (res is consumed). */
void qmgr_message_resolved(struct qmgr_msg *msg, size_t rcpt, struct resolve_result *res);
/* A final got its outcome (set in f before the call). */
void qmgr_final_done(struct qmgr_final *f);
/* Whether some part of a recipient was deferred this round, and the
 * reason and code of the first deferral. */
bool qmgr_rcpt_deferred(const struct qmgr_rcpt *r);
void qmgr_rcpt_defer_reason(const struct qmgr_rcpt *r, const char **reason_r,
                            struct queue_dsn *dsn_r);
/* Settle a whole recipient without finals (outcome set in own_*). */
void qmgr_rcpt_settle(struct qmgr_msg *msg, size_t rcpt);

/* qmgr_resolve.c */
struct qmgr_resolver;
int qmgr_resolver_start(struct qmgr *q, str_t *error);
void qmgr_resolver_submit(struct qmgr_resolver *r, struct qmgr_msg *msg, size_t rcpt);
void qmgr_resolver_stop(struct qmgr_resolver **rp);

/* qmgr_deliver.c */
/* Queue f for delivery (or settle it at once for error/discard/retry). */
void qmgr_deliver_final(struct qmgr *q, struct qmgr_final *f);
/* The destination table (q->dests); hash_destroy() abandons deliveries
 * in progress. */
hash_t *qmgr_dests_new(void);

/* qmgr_notify.c: send the notifications a completed round calls for.
 * Returns false when a bounce could not be written (the caller then
 * defers the bounced finals instead of marking them done). */
bool qmgr_notify_bounces(struct qmgr_msg *msg, struct queue_file *qf);
void qmgr_notify_success(struct qmgr_msg *msg, struct queue_file *qf);
void qmgr_notify_delays(struct qmgr_msg *msg, struct queue_file *qf);

#endif
