/* bounce.h - delivery status notifications (RFC 3464): bounces, delay
 * warnings and success notices, written as new queued messages.
 *
 * qmgr calls bounce_write() when recipients of a queued message failed for
 * good, have waited delay_warning_time, or were delivered with NOTIFY=
 * SUCCESS. The notice is a multipart/report (RFC 6522) with a text part
 * for people, a message/delivery-status part for programs and the
 * original message (or its header), committed durably to incoming/ like
 * any other message. The library opens no socket and logs nothing: the
 * caller logs "ID: sender non-delivery notification: NEWID".
 *
 * Who gets the notice (Postfix's rules):
 *   - the original's envelope sender, from the null sender <>;
 *   - when the original already came from <> (it was itself a bounce) and
 *     recipients failed: a "double bounce", from double_bounce_sender@
 *     $myorigin to 2bounce_notice_recipient (postmaster), saying so;
 *   - nobody when the original came from double_bounce_sender (a failed
 *     double bounce: no loops), and nobody for delay warnings or success
 *     notices about mail from <> (there is no one to tell).
 */
#ifndef POSTERN_BOUNCE_H
#define POSTERN_BOUNCE_H

#include <stdbool.h>
#include <stddef.h>

#include "base/str.h"
#include "queue/queue_dir.h"
#include "queue/queue_file.h"

struct config;

enum bounce_kind {
	BOUNCE_FAILED, /* non-delivery notification: action failed */
	BOUNCE_DELAYED, /* delay warning: action delayed */
	BOUNCE_DELIVERED, /* success notice (NOTIFY=SUCCESS): action delivered */
};

/* One recipient the notice reports on. Strings are the caller's and need
 * only live for the call. reason, orcpt and remote_mta may come from a
 * remote server or a client: they are cleaned of control characters and
 * 8-bit bytes, folded, and cut at BOUNCE_REASON_MAX bytes. */
struct bounce_rcpt {
	const char *final_recipient; /* internal form, as in the queue file */
	const char *original_recipient; /* the queue file's ORCPT "rfc822;addr", or NULL */
	const char *action; /* NULL: "failed", "delayed" or "delivered" from the kind */
	struct queue_dsn dsn; /* 5.1.1, 4.4.1, 2.0.0; class 0: 5.0.0/4.0.0/2.0.0 from the kind */
	const char *reason; /* "unknown user: \"x@y\"", a remote reply; NULL or "" for none */
	const char *remote_mta; /* NULL, or "dns; mx.example.com" */
};

#define BOUNCE_REASON_MAX 4096

/* Settings read once from main.cf: myhostname, mail_name, myorigin,
 * bounce_size_limit, double_bounce_sender, 2bounce_notice_recipient,
 * delay_warning_time, maximal_queue_lifetime. -1 with a message naming
 * the parameter when one is bad. Destroy does nothing on NULL. */
struct bounce_settings;
int bounce_settings_new(struct config *cfg, struct bounce_settings **s_r, str_t *error);
void bounce_settings_destroy(struct bounce_settings **sp);

/* Write one notice of kind about original (an open queue file; only read)
 * for the n recipients in rcpts (n >= 1), as a new message committed to
 * incoming/ of qd: the file and its directory are fsync'd before this
 * returns 0, and the new queue ID is then in id_r. When nobody is to be
 * told (see above) it returns 0 with id_r "" and writes nothing. On error
 * (-1, errno set as by the queue writer: ENOSPC-class means a resource
 * shortage) nothing is left in the queue and error says why, naming the
 * original's ID; qmgr keeps the recipients and tries again later.
 *
 * The original's content is returned whole (message/rfc822) for failures
 * when its RET is FULL or absent and it fits in bounce_size_limit, else
 * only its header (text/rfc822-headers); delay warnings and success
 * notices always carry only the header. */
int bounce_write(const struct bounce_settings *s, struct queue_file *original,
                 const struct queue_dir *qd, enum bounce_kind kind, const struct bounce_rcpt *rcpts,
                 size_t n, char id_r[QUEUE_ID_SIZE], str_t *error);

/* RFC 3461 NOTIFY: whether a recipient with these QUEUE_NOTIFY_* flags
 * (0 = NOTIFY not given) wants a notice of kind. Not given: failures and
 * delays, not successes; NEVER: nothing; otherwise what is listed. */
bool bounce_wanted(unsigned notify, enum bounce_kind kind);

#endif
