/* maildrop.h - the maildrop file: one locally submitted message waiting
 * for pickup.
 *
 * `sendmail` (run by any local user) writes the message in this format
 * to the setgid helper `postdrop` (server/postdrop), which copies it into
 * queue_directory/maildrop/ (maildrop_relay()) and records the submitting
 * user's real uid; the pickup daemon reads the file, hands it to cleanup
 * and removes it. This is Postfix's postdrop -> maildrop -> pickup path.
 * The maildrop file is NOT a queue file: it has no queue ID of its own in
 * the mail system, no status slots, and its content comes from an
 * untrusted user. The reader therefore checks every length against the
 * file and against fixed bounds before it uses it, and re-checks the
 * content records while streaming them.
 *
 * FORMAT (version 1; integers big-endian)
 *
 *   offset 0   header, 16 bytes: magic "POSTERNM", version u16 = 1,
 *              6 reserved bytes, zero
 *   offset 16  records: type u8, length u32, then length payload bytes
 *
 *   'S' sender, 0..MAILDROP_FIELD_MAX bytes ("" = the null sender <>).
 *       Exactly once, the first record.
 *   'R' recipient, 1..MAILDROP_FIELD_MAX bytes. Any number (sendmail -t
 *       may give none), after 'S' and before the content.
 *   'A' attribute: name (1..MAILDROP_ATTR_NAME_MAX of [a-z0-9_]), NUL,
 *       value (0..MAILDROP_FIELD_MAX). After 'S', before the content.
 *       Known names: MAILDROP_ATTR_*; others are kept and ignored.
 *   'C' content: 1..MAILDROP_CHUNK_MAX bytes of the message, lines ended
 *       by LF. Any number; once the first 'C' is seen only 'C' and 'E'
 *       may follow.
 *   'E' end, 8 bytes: u64 total content length (the sum of the 'C'
 *       lengths). Last: the file must end right after it. A file without
 *       it is incomplete or damaged.
 *
 *   postdrop drops any 'A' submit_uid record of the submitted stream and
 *   writes its own, with the real uid of its caller, right before the
 *   content: pickup trusts that record (see MAILDROP_ATTR_SUBMIT_UID).
 *
 *   Text fields (sender, recipients, attribute names and values) never
 *   hold a NUL, a control character (below 0x20) or DEL: they end up in
 *   log lines and headers. Total envelope bytes are bounded by
 *   MAILDROP_ENVELOPE_MAX.
 *
 * Durability: the writer creates "tmp.<ID>" in the maildrop directory,
 * fsyncs it and renames it to "<ID>" (never replacing), then fsyncs the
 * directory (fs.h). pickup ignores names that start with "tmp.".
 */
#ifndef POSTERN_MAILDROP_H
#define POSTERN_MAILDROP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/str.h"

#define MAILDROP_MAGIC "POSTERNM"
#define MAILDROP_VERSION 1
#define MAILDROP_HEADER_SIZE 16
#define MAILDROP_RECORD_HEADER_SIZE 5
#define MAILDROP_FIELD_MAX 4096
#define MAILDROP_ATTR_NAME_MAX 64
#define MAILDROP_CHUNK_MAX 65536
#define MAILDROP_ENVELOPE_MAX (4u * 1024 * 1024)
/* The maildrop directory: owner mail_owner, group setgid_group
 * ("postdrop"), mode 1730: only the setgid postdrop helper (and
 * mail_owner) may create files in it, nobody else may enter or list it,
 * and the sticky bit keeps group members from removing others' files.
 * As Postfix's maildrop. */
#define MAILDROP_DIR_NAME "maildrop"
#define MAILDROP_DIR_MODE 01730
/* Why readable by all: postdrop is setgid only, so the file belongs to
 * the submitting user; pickup runs as mail_owner and must read it. The
 * 1730 directory keeps everyone else from reaching it. */
#define MAILDROP_FILE_MODE 0644
/* Prefix of the writer's temporary files. */
#define MAILDROP_TEMP_PREFIX "tmp."

/* Attributes sendmail records (informative except extract_rcpt and
 * submit_uid). submit_uid is written by postdrop alone (any one in the
 * submitted stream is dropped): pickup takes it as "who submitted". */
#define MAILDROP_ATTR_FULL_NAME "full_name"
#define MAILDROP_ATTR_SUBMIT_UID "submit_uid"
#define MAILDROP_ATTR_LOGIN "login_name"
#define MAILDROP_ATTR_EXTRACT_RCPT "extract_rcpt" /* "yes" for sendmail -t */
/* "remote" for sendmail -G (gateway submission: a content filter
 * re-injecting mail): pickup then rewrites no header addresses and adds
 * no missing headers, as Postfix's cleanup in the remote context. */
#define MAILDROP_ATTR_REWRITE_CONTEXT "rewrite_context"

enum maildrop_status {
	MAILDROP_OK = 0,
	MAILDROP_ERROR = -1, /* system error (errno set) */
	MAILDROP_CORRUPT = -2, /* not a valid complete maildrop file */
	MAILDROP_TOO_BIG = -3, /* content larger than the limit given */
};

/* True when name is a valid attribute name ([a-z0-9_], 1..64). */
bool maildrop_attr_name_valid(const char *name);
/* True when len bytes at s may be a text field: no NUL, control
 * character or DEL, at most MAILDROP_FIELD_MAX bytes. */
bool maildrop_text_valid(const char *s, size_t len);

/* WRITER (sendmail). Every call returns 0, or -1 with errno set and a
 * message appended to error; errors are sticky (later calls fail too). A
 * destroyed writer that was not committed removes its temporary file. */
struct maildrop_writer;

/* Create dir/tmp.<ID> (MAILDROP_FILE_MODE, the umask applies) and write
 * the file header. */
int maildrop_writer_open(const char *dir, struct maildrop_writer **w_r, str_t *error);
/* A writer onto a stream (sendmail's pipe to postdrop): fd is borrowed
 * and never closed here. The same calls apply; commit writes the end
 * record only (durability is postdrop's job) and the ID is "-". */
int maildrop_writer_open_fd(int fd, struct maildrop_writer **w_r, str_t *error);
/* The ID that will name the committed file. */
const char *maildrop_writer_id(const struct maildrop_writer *w);
/* Envelope, before any content: the sender exactly once and first, then
 * recipients and attributes in any order. EINVAL for a text that
 * maildrop_text_valid() refuses or a call out of order. */
int maildrop_writer_sender(struct maildrop_writer *w, const char *sender, str_t *error);
int maildrop_writer_rcpt(struct maildrop_writer *w, const char *rcpt, str_t *error);
int maildrop_writer_attr(struct maildrop_writer *w, const char *name, const char *value,
                         str_t *error);
/* Append content bytes (buffered into records of MAILDROP_CHUNK_MAX). */
int maildrop_writer_content(struct maildrop_writer *w, const void *data, size_t len, str_t *error);
uint64_t maildrop_writer_content_size(const struct maildrop_writer *w);
/* Write the end record, fsync, rename to dir/<ID> and fsync dir. Only a
 * 0 return means the message is safe. The writer stays to be destroyed. */
int maildrop_writer_commit(struct maildrop_writer *w, str_t *error);
void maildrop_writer_destroy(struct maildrop_writer **wp);

/* POSTDROP. Create queue_root/maildrop when missing and give it owner
 * uid, group gid and MAILDROP_DIR_MODE (a uid of -1 leaves the owner
 * alone). 0, or -1 with "WHAT PATH: why" appended to error. */
int maildrop_dir_create(const char *queue_root, uid_t uid, gid_t gid, str_t *error);

/* Copy a maildrop stream read from in_fd (sendmail's output: header,
 * records, end record, then end of input) into w, checking the framing
 * and every bound as the reader does, dropping submit_uid attributes and
 * adding submit_uid=uid before the content. A content total above
 * max_content (0 = none) stops with MAILDROP_TOO_BIG. MAILDROP_CORRUPT
 * for a malformed stream ("bad input at offset N: WHAT"), MAILDROP_ERROR
 * for a read or write error; w is not committed. */
enum maildrop_status maildrop_relay(int in_fd, struct maildrop_writer *w, uid_t uid,
                                    uint64_t max_content, str_t *error);

/* READER (pickup). */
struct maildrop;

/* Validate the file open on fd (borrowed: never closed here, read with
 * pread from offset 0): header, every envelope record, the framing of
 * every content record and the end record, against the file size. A
 * content total above max_content (0 = no limit) gives MAILDROP_TOO_BIG
 * (the envelope is still available then, for the log). On
 * MAILDROP_CORRUPT the message reads "corrupt maildrop file at offset N:
 * WHAT". *m_r is set on MAILDROP_OK and MAILDROP_TOO_BIG, else NULL. */
enum maildrop_status maildrop_open_fd(int fd, uint64_t max_content, struct maildrop **m_r,
                                      str_t *error);
void maildrop_close(struct maildrop **mp);

const char *maildrop_sender(const struct maildrop *m);
size_t maildrop_rcpt_count(const struct maildrop *m);
const char *maildrop_rcpt(const struct maildrop *m, size_t index);
/* The value of an attribute (the last one when repeated), or NULL. */
const char *maildrop_attr(const struct maildrop *m, const char *name);
/* Iterate attributes: *pos = 0 first; false when done. */
bool maildrop_attr_next(const struct maildrop *m, size_t *pos, const char **name_r,
                        const char **value_r);
uint64_t maildrop_content_size(const struct maildrop *m);

/* Read the next content bytes (sequentially from the start) into buf:
 * the count, 0 at the end, MAILDROP_ERROR (errno) on an I/O error or
 * MAILDROP_CORRUPT when the file changed since it was validated. */
ssize_t maildrop_read_content(struct maildrop *m, void *buf, size_t len, str_t *error);

#endif
