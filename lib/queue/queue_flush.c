/* queue_flush.c - make queued mail due now (see queue_flush.h).
 *
 * Used by `postern queue flush|requeue` (server/cli/cli_queue.c) and by
 * smtpd's ETRN (server/smtpd/smtpd_etrn.c, in a table_async worker), so
 * that both flush the same way.
 *
 * Order of a flush, per message: the recipients' retry times first (in
 * place, fdatasync'd), then the rename into incoming/. A crash between
 * the two leaves a message that is due in deferred/, which the queue
 * manager's next deferred scan delivers: harmless. The other order could
 * leave a message in incoming/ whose recipients are not due, which the
 * queue manager would put straight back.
 *
 * Concurrency: the queue manager may take a deferred message into
 * active/ while we look at it. Every step tolerates that: the file we
 * opened stays valid after its rename (the retry update lands in the
 * file qmgr reads), and the rename then fails with ENOENT, which is
 * "gone meanwhile", not an error. Moves never replace a file.
 *
 * Failure: a message that cannot be read or changed is logged (warning)
 * and counted; the others go on. Only a deferred/ that cannot be opened
 * fails the flush as a whole.
 */
#include "queue/queue_flush.h"

#include <errno.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/log.h"
#include "queue/queue_file.h"

bool queue_flush_rcpt_in(const char *address, const strv_t *domains)
{
	const char *at = strrchr(address, '@');

	if (at == NULL)
		return false;
	for (size_t i = 0; i < domains->n; i++)
		if (strcasecmp(at + 1, domains->v[i]) == 0)
			return true;
	return false;
}

int queue_reschedule(const struct queue_dir *qd, enum queue_name queue, const char *id,
                     const strv_t *domains, str_t *error)
{
	struct queue_file *f = NULL;
	struct queue_rcpt rcpt;
	time_t now = time(NULL);
	bool matched = domains == NULL, dirty = false;
	int ret = 0, saved_errno = 0;

	if (queue_file_open(qd, queue, id, QUEUE_FILE_RDWR, &f, error) != QUEUE_FILE_OK)
		return -1; /* errno from the open (EBADMSG: corrupt) */
	queue_rcpt_init(&rcpt);
	for (size_t i = 0; i < queue_file_envelope(f)->rcpt_count; i++) {
		if (queue_file_read_rcpt(f, i, &rcpt, error) != QUEUE_FILE_OK) {
			saved_errno = errno;
			ret = -1;
			break;
		}
		if (queue_rcpt_state_final(rcpt.status.state))
			continue;
		if (domains != NULL && !queue_flush_rcpt_in(str_c(&rcpt.address), domains))
			continue;
		matched = true;
		if (rcpt.status.next_retry <= now)
			continue;
		/* Only the retry time: the state byte stays qmgr's. */
		if (queue_file_update_retry(f, i, (uint64_t)now, error) < 0) {
			saved_errno = errno;
			ret = -1;
			break;
		}
		dirty = true;
	}
	if (ret == 0 && dirty && queue_file_sync(f, error) < 0) {
		saved_errno = errno;
		ret = -1;
	}
	queue_rcpt_free(&rcpt);
	queue_file_close(&f);
	if (ret < 0) {
		errno = saved_errno;
		return -1;
	}
	return matched ? 1 : 0;
}

/* Reschedule and move one deferred message. */
static void flush_one(const struct queue_dir *qd, const char *id, const strv_t *domains,
                      struct queue_flush_result *r)
{
	str_t error;
	int rc;

	str_init(&error);
	rc = queue_reschedule(qd, QUEUE_DEFERRED, id, domains, &error);
	if (rc < 0) {
		/* Gone meanwhile (delivered, or taken by qmgr): nothing to do. */
		if (errno != ENOENT) {
			log_warning("%s", str_c(&error));
			r->failed++;
		}
	} else if (rc > 0) {
		if (queue_dir_move(qd, id, QUEUE_DEFERRED, QUEUE_INCOMING, &error) == 0) {
			r->moved++;
		} else if (errno != ENOENT) {
			log_warning("%s: %s", id, str_c(&error));
			r->failed++;
		}
	}
	str_free(&error);
}

int queue_flush(const struct queue_dir *qd, const strv_t *domains, struct queue_flush_result *r,
                str_t *error)
{
	struct queue_scan *scan = NULL;
	strv_t ids = STRV_INIT;
	const char *id;
	str_t why;
	int rc;

	memset(r, 0, sizeof(*r));
	if (queue_scan_open(qd, QUEUE_DEFERRED, 0, &scan, error) < 0)
		return -1;
	/* Collect first: renaming files out of a directory being read could
	 * make readdir() skip or repeat entries. An ID is 14 bytes: a
	 * million deferred messages take some 30 MB here, briefly. */
	str_init(&why);
	while ((rc = queue_scan_next(scan, &id, &why)) != 0) {
		if (rc < 0) {
			log_warning("%s", str_c(&why));
			str_reset(&why);
			r->failed++;
			continue;
		}
		strv_add(&ids, id);
	}
	queue_scan_close(&scan);
	str_free(&why);
	for (size_t i = 0; i < ids.n; i++)
		flush_one(qd, ids.v[i], domains, r);
	strv_free(&ids);
	return 0;
}
