/* mbox.h - message copies in Postfix's mail_copy() form, and delivery
 * into an mbox file with locking.
 *
 * Used by the local delivery agent (server/local): mbox mailboxes
 * (home_mailbox = Mailbox, mail_spool_directory), /file/name destinations
 * of aliases and .forward files, and the standard input of |command
 * destinations and mailbox_command.
 *
 * The copy, as Postfix writes it (each part per flag): a From_ line
 * "From SENDER  Thu Jan  1 00:00:00 2025" (MAILER-DAEMON for the null
 * sender), "Return-Path: <SENDER>", "X-Original-To: ORIG",
 * "Delivered-To: RCPT", then the content with each line that starts with
 * "From " written as ">From " (MBOX_COPY_QUOTE), a line end added when the
 * last line has none, and one empty line after the message
 * (MBOX_COPY_BLANK) so that the next From_ line is found.
 */
#ifndef POSTERN_MBOX_H
#define POSTERN_MBOX_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/str.h"
#include "delivery/maildir.h"

enum {
	MBOX_COPY_FROM = 1 << 0,
	MBOX_COPY_RETURN_PATH = 1 << 1,
	MBOX_COPY_ORIG_RCPT = 1 << 2,
	MBOX_COPY_DELIVERED = 1 << 3,
	MBOX_COPY_QUOTE = 1 << 4,
	MBOX_COPY_BLANK = 1 << 5,
};
/* An mbox file: everything (Postfix's MAIL_COPY_MBOX). */
#define MBOX_COPY_MBOX \
	(MBOX_COPY_FROM | MBOX_COPY_RETURN_PATH | MBOX_COPY_ORIG_RCPT | MBOX_COPY_DELIVERED | \
	 MBOX_COPY_QUOTE | MBOX_COPY_BLANK)
/* A command's standard input (Postfix's local command delivery). */
#define MBOX_COPY_COMMAND \
	(MBOX_COPY_FROM | MBOX_COPY_RETURN_PATH | MBOX_COPY_ORIG_RCPT | MBOX_COPY_DELIVERED)

struct mbox_copy {
	unsigned flags; /* MBOX_COPY_* */
	const char *sender; /* "" is the null sender */
	const char *orig_rcpt; /* X-Original-To; NULL or "" for none */
	const char *delivered; /* Delivered-To */
	maildir_read_fn *read; /* the content (LF lines, as queued) */
	void *read_context;
	/* 0, or the most bytes the copy may add (mailbox_size_limit less
	 * the file's size): going over fails with EFBIG. */
	uint64_t limit;
};

/* Write the copy to fd (a file or a pipe). 0, or -1 with errno set and
 * *read_error_r telling whether the content source (true) or the write
 * (false) failed. *written_r gets the bytes written either way. */
int mbox_copy_write(int fd, const struct mbox_copy *copy, uint64_t *written_r, bool *read_error_r);

/* Locks taken around an mbox append (mailbox_delivery_lock). */
enum {
	MBOX_LOCK_FCNTL = 1 << 0, /* fcntl() write lock on the whole file */
	MBOX_LOCK_DOTLOCK = 1 << 1, /* PATH.lock made with O_EXCL */
};

/* Parse a mailbox_delivery_lock value ("fcntl, dotlock"; flock is
 * refused: Linux mail readers use fcntl). 0 with *mask_r, or -1 with why
 * appended. */
int mbox_lock_parse(const char *value, unsigned *mask_r, str_t *why);

struct mbox_request {
	const char *path; /* absolute; its directory must exist */
	unsigned locks; /* MBOX_LOCK_* */
	/* A missing file is created mode 0600; when chown_to is set it is
	 * given to uid:gid (a spool file made by root for the user). */
	bool chown_to;
	uid_t uid;
	gid_t gid;
	uint64_t size_limit; /* mailbox_size_limit; 0 = none */
	struct mbox_copy copy; /* its limit is set by mbox_deliver */
};

struct mbox_result {
	char status[8]; /* "2.0.0", "4.2.0", "5.2.2" ... */
	str_t text; /* initialised by the caller; why, when it failed */
};

/* Append the copy to req->path: open it without following a symlink
 * (O_NOFOLLOW; a file that is not a regular file or has several links is
 * refused, 5.2.0 as Postfix), take the locks (bounded retries: 4.2.0
 * "unable to lock for exclusive access" when another holds them), write
 * at the end, fsync, release. On any failure the file is cut back to its
 * old length. 0 only when the copy is on disk; -1 with res set: 4.3.1 a
 * full file system, 5.2.2 the mailbox is full (mailbox_size_limit, user
 * quota, file size limit), 4.3.0 other errors and a failing content
 * source. */
int mbox_deliver(const struct mbox_request *req, struct mbox_result *res);

#endif
