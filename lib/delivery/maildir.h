/* maildir.h - deliver one message into a Maildir (the core of `virtual`).
 *
 * maildir_deliver() follows the Maildir spec (cr.yp.to/proto/maildir.html)
 * and STYLE 18: write tmp/<unique>, fsync it, link it into new/ under its
 * final name (never replacing a file), remove the tmp name, fsync new/;
 * only then does it report success. With a quota it keeps Maildir++
 * `maildirsize` (maildir_quota.h) as Dovecot's maildir quota reads it.
 *
 * Every result carries an RFC 3463 status and a text for the log and the
 * bounce ("status=sent (delivered to maildir)", as Postfix's virtual says).
 */
#ifndef POSTERN_MAILDIR_H
#define POSTERN_MAILDIR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "base/str.h"
#include "delivery/maildir_quota.h"

/* Read up to size bytes of message content into buf. Returns the number of
 * bytes (0 at the end), or -1 with errno set. Content is LF-terminated
 * lines, as the queue file stores it; it is written to the Maildir as is. */
typedef ssize_t maildir_read_fn(void *context, void *buf, size_t size);

/* A content source reading length bytes of fd from offset with pread(),
 * for the queue file's content segment; use with maildir_read_fd. */
struct maildir_fd_source {
	int fd;
	uint64_t offset;
	uint64_t length;
};
ssize_t maildir_read_fd(void *context, void *buf, size_t size);

struct maildir_request {
	const char *base_dir; /* virtual_mailbox_base: absolute, trusted (admin) */
	const char *maildir; /* relative to base_dir, ends with '/' (db:mailboxes) */
	uid_t uid; /* owner of the mailbox */
	gid_t gid;
	uid_t minimum_uid; /* virtual_minimum_uid: uid below it is refused */
	const char *delivered_to; /* NULL, or "Delivered-To: <this>" is prepended */
	const char *return_path; /* NULL, or "Return-Path: <this>" is prepended */
	maildir_read_fn *read;
	void *read_context;
	const char *hostname; /* for the file name; NULL = gethostname() */
	/* Maildir++ quota: enforced when quota_enabled (limits 0 = none).
	 * An existing maildirsize is kept current either way. */
	bool quota_enabled;
	struct maildir_quota_limits quota;
	bool quota_soft; /* over quota -> 4.2.2 deferral instead of 5.2.2 bounce */
	/* Delivery at most once per key (see maildir_deliver()): NULL, or
	 * an identity of this delivery made of [0-9A-Za-z] only, the same on
	 * every attempt (virtual: queue ID and recipient). */
	const char *once_key;
	time_t once_time; /* with once_key: the name's time part (arrival) */
	bool once_search; /* with once_key: an earlier attempt may have
	                   * delivered; look for its file in new/ and cur/ */
};

struct maildir_result {
	char status[8]; /* RFC 3463: "2.0.0", "4.3.1", "5.2.2", ... */
	str_t text; /* "delivered to maildir", or why not (initialised by caller) */
	str_t path; /* final file name relative to base_dir, on success */
	bool found; /* on success: an earlier attempt's file, nothing written */
	uint64_t size; /* bytes written (LF form), the ",S=" value */
};

/* Initialise / release a result (str_t members). */
void maildir_result_init(struct maildir_result *res);
void maildir_result_free(struct maildir_result *res);

/* Deliver the content read from req->read into req->maildir under
 * req->base_dir. Creates the Maildir and its parents, tmp/, new/ and cur/
 * (mode 0700, chowned to uid:gid when running as root); the message file is
 * mode 0600 (chowned likewise). Refuses (5.3.5, nothing written) a maildir
 * that is absolute, has "." or ".." or empty components, does not end in
 * '/', or crosses a symlink under base_dir, and a uid below minimum_uid.
 * Returns 0 only when the message is durably in new/ (status 2.0.0);
 * otherwise -1 with res->status/text set: 4.3.1 for a full disk, user disk
 * quota or file size limit (ENOSPC, EDQUOT, EFBIG), 5.2.2 (4.2.2 with
 * quota_soft) for Maildir++ quota, 4.3.0 for other I/O errors, 4.3.0 when
 * the content source fails. After a failure no file of this delivery is
 * left in tmp/ or new/. A failed maildirsize update after a successful
 * delivery is logged as a warning and does not fail the delivery.
 *
 * With req->once_key, the file in new/ is named "<once_time>.<once_key>.
 * <host>,S=..,W=.." (the same on every attempt), and a file of that base
 * name already in new/ (link() says EEXIST) or, with req->once_search, in
 * new/ or cur/ (as Dovecot renamed it, ":2,<flags>" appended) is this
 * delivery done by an earlier attempt: its directory is fsync'd and 0 is
 * returned with res->found set, nothing written and the quota unchanged.
 * res->path is then that file. */
int maildir_deliver(const struct maildir_request *req, struct maildir_result *res);

/* The path rules maildir_deliver() applies before it writes anything,
 * for callers that must predict its answer (`postern trace`): refused
 * are a base_dir that is not absolute, a maildir that is absolute, has
 * "", "." or ".." components or does not end in '/', and (walking the
 * existing part read only, O_NOFOLLOW, as maildir_deliver() does) a
 * component that is a symlink or not a directory. Returns 0 when the path
 * is acceptable (components that do not exist yet are fine: delivery makes
 * them), -1 when maildir_deliver() would refuse it, with its status
 * ("4.3.5", a deferral: the row is wrong, not the address) in status and
 * its exact text appended to why. Other errors of the walk (EACCES ...)
 * are not judged: 0. */
int maildir_path_check(const char *base_dir, const char *maildir, char status[8], str_t *why);

/* Open the existing Maildir maildir ("example.com/alice/", the table's
 * value) below base_dir with the walk maildir_deliver() uses: every
 * component opened with O_NOFOLLOW | O_DIRECTORY from base_dir, nothing
 * created. base_dir "" takes an absolute maildir from "/". The
 * directory's fd, or -1 with errno: EINVAL for a path with "", "." or
 * ".." components, ELOOP or ENOTDIR when a component is a symlink or
 * not a directory. For the quota readers (maildir_quota.h). */
int maildir_open_existing(const char *base_dir, const char *maildir);

/* A unique Maildir file name "<sec>.M<usec>P<pid>Q<n>.<host>" (the spec's
 * time.MusecPpid plus a per-process counter), with '/' and ':' in host
 * written as \057 and \072; host NULL = gethostname(). Appended to out. */
void maildir_unique_name(const char *host, str_t *out);

#endif
