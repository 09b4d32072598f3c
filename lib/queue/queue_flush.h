/* queue_flush.h - make queued mail due now: `postern queue flush`
 * (postqueue -f / -s DOMAIN), `postern queue requeue` (postsuper -r) and
 * smtpd's ETRN (RFC 1985, Postfix's flush service).
 *
 * postern keeps a next-retry time per recipient in the queue file; mail
 * is "due now" when every recipient not yet done has a next retry at or
 * before now and the file sits in incoming/, where the queue manager
 * takes it at once. Flushing a domain touches only the recipients in
 * that domain: the others of the same message keep their retry times.
 *
 * The caller wakes the queue manager when something moved (trigger_send
 * to public/qmgr: lib/daemon sits on a higher layer than this one).
 *
 * Blocking: one open and read per deferred message, and for each one
 * changed an fdatasync and a rename with two directory fsyncs. An
 * event-driven daemon runs this in a worker (table_async_job); it is
 * thread-safe: it shares nothing but the queue_dir, which it only reads.
 */
#ifndef POSTERN_QUEUE_FLUSH_H
#define POSTERN_QUEUE_FLUSH_H

#include <stdbool.h>

#include "base/str.h"
#include "base/strv.h"
#include "queue/queue_dir.h"

/* Does address's domain (after its last '@') equal one of domains
 * (case-insensitive)? An address without '@' is in no domain. */
bool queue_flush_rcpt_in(const char *address, const strv_t *domains);

/* Set the next retry of every recipient of id in queue that is not yet
 * done to now, in place, and fdatasync the file. With domains (not NULL)
 * only the recipients in one of them are looked at. Returns 1 when some
 * recipient is now due (always when domains is NULL), 0 when no
 * recipient not yet done is in domains (the file is left alone), -1 with
 * a message in error (appended) and errno set: ENOENT when the file is
 * gone (delivered or moved meanwhile). */
int queue_reschedule(const struct queue_dir *qd, enum queue_name queue, const char *id,
                     const strv_t *domains, str_t *error);

struct queue_flush_result {
	unsigned long moved; /* messages moved deferred/ -> incoming/ */
	unsigned long failed; /* messages that could not be read, changed or
	                       * moved, and scan errors: each logged as a
	                       * warning, the flush goes on */
};

/* Flush the deferred queue: every message in deferred/ with a recipient
 * not yet done (in one of domains, when domains is not NULL) gets those
 * recipients rescheduled (queue_reschedule) and is moved to incoming/.
 * A message gone meanwhile is skipped without a warning. Returns 0 with
 * *r filled, or -1 with a message in error when deferred/ cannot be
 * scanned at all (nothing changed then). */
int queue_flush(const struct queue_dir *qd, const strv_t *domains, struct queue_flush_result *r,
                str_t *error);

#endif
