/* maildir_quota.h - Maildir++ quota: the `maildirsize` file.
 *
 * The file sits in the Maildir root. Its first line holds the limits,
 * "<bytes>S,<count>C" (either part may be missing; 0 or missing means no
 * limit); every following line is a delta "<bytes> <count>" (negative when
 * mail was removed). The usage is the sum of the deltas. This is the format
 * Courier's maildirquota and Dovecot's "maildir" quota backend read and
 * write, so Dovecot reports (IMAP GETQUOTAROOT) what postern counts.
 *
 * Used by lib/delivery/maildir.c at delivery, and read-only (maildir_quota_peek)
 * by lib/delivery/resolve.c for `postern trace` and smtpd's RCPT-time quota
 * check. No SQL here: the caller mirrors the usage into quota_usage.
 */
#ifndef POSTERN_MAILDIR_QUOTA_H
#define POSTERN_MAILDIR_QUOTA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/str.h"

/* Recalculate when maildirsize grows beyond this (Maildir++ spec). */
#define MAILDIR_QUOTA_MAX_FILE 5120

/* Limits; 0 means no limit for that part. */
struct maildir_quota_limits {
	uint64_t bytes;
	uint64_t count;
};

struct maildir_quota_usage {
	int64_t bytes; /* sum of the size deltas (never below 0 after a read) */
	int64_t count; /* sum of the message-count deltas */
	struct maildir_quota_limits limits; /* as in the file's first line */
	bool recalculated; /* the file was rebuilt from a directory scan */
};

/* Parse the contents of a maildirsize file (len bytes, need not be
 * NUL-terminated). Returns 0 with the limits and summed usage, or -1 when
 * the file is malformed (no header, a line that is not two integers, an
 * unterminated last line, or a sum that overflows). A last line without
 * its newline is treated as a write in progress and refused, so the caller
 * recalculates. Never reads beyond len. */
int maildir_quota_parse(const char *data, size_t len, struct maildir_quota_usage *usage_r);

/* Format a limits header line "<bytes>S,<count>C\n" (parts that are 0 are
 * left out; "0S\n" when both are), appended to out. */
void maildir_quota_format_limits(const struct maildir_quota_limits *limits, str_t *out);

/* Read the usage of the Maildir open as maildir_fd. When limits is not
 * NULL it is the quota the caller enforces: a file whose header differs is
 * rebuilt with these limits. When limits is NULL the file's own header
 * is used. The file is rebuilt from a scan of new/ and cur/ of the Maildir
 * and of every Maildir++ folder (".name/new", ".name/cur"), using the
 * ",S=<size>" of each file name (stat() when it has none), when it is
 * missing, larger than MAILDIR_QUOTA_MAX_FILE or malformed. The rebuilt
 * file is written to tmp/ and renamed over maildirsize (fsynced). Returns
 * -1 with a message in error (appended) and errno set on I/O errors. */
int maildir_quota_read_at(int maildir_fd, const struct maildir_quota_limits *limits,
                          struct maildir_quota_usage *usage_r, str_t *error);

/* maildir_quota_read_at() for the Maildir maildir below base_dir, opened
 * by maildir_open_existing() (no symlink followed anywhere below
 * base_dir); for the virtual agent after a delivery. */
int maildir_quota_usage(const char *base_dir, const char *maildir,
                        const struct maildir_quota_limits *limits,
                        struct maildir_quota_usage *usage_r, str_t *error);

/* True when adding bytes and count messages to usage would go over
 * usage->limits (a limit of 0 never refuses). Like Courier and Dovecot, a
 * message that brings the usage exactly to the limit is accepted. */
bool maildir_quota_would_exceed(const struct maildir_quota_usage *usage, uint64_t bytes,
                                uint64_t count);

/* "Already over quota", smtpd's RCPT-time test: the usage has reached
 * a limit (bytes or messages; usage == limit counts, since no message
 * fits any more), or a message of size bytes (MAIL FROM SIZE=, 0 when
 * not given) would go over the byte limit. A limit of 0 never refuses. */
bool maildir_quota_full(const struct maildir_quota_usage *usage, uint64_t size);

/* Read the usage and limits of the Maildir maildir below base_dir
 * (opened as maildir_quota_usage() does) from its maildirsize without
 * writing anything (no rebuild: for processes that
 * must not write into mailboxes). 1 with *usage_r filled; 0 when there
 * is no maildirsize (usage_r zeroed: nothing counted yet); -1 when the
 * file cannot be read, is larger than MAILDIR_QUOTA_MAX_FILE or is
 * malformed (the usage is unknown until the delivery agent rebuilds it),
 * with "maildirsize unreadable" or "maildirsize needs recalculation"
 * appended to error. */
int maildir_quota_peek(const char *base_dir, const char *maildir,
                       struct maildir_quota_usage *usage_r, str_t *error);

/* Append the delta line "<bytes> <count>\n" to maildirsize with a single
 * O_APPEND write (atomic with other writers), creating nothing: when the
 * file does not exist, the next read recalculates anyway. -1 with error on
 * an I/O error; 0 when the file is missing. */
int maildir_quota_add_at(int maildir_fd, int64_t bytes, int64_t count, str_t *error);

#endif
