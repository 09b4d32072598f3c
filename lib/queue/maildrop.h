/* maildrop.h - the maildrop file: one locally submitted message waiting
 * for pickup.
 *
 * `sendmail` (run by any local user) writes one file per message into
 * queue_directory/maildrop/; the pickup daemon reads it, hands it to
 * cleanup and removes it. This is Postfix's postdrop -> maildrop ->
 * pickup path. The maildrop file is NOT a queue file: it has no queue ID
 * of its own in the mail system, no status slots, and, above all, it is
 * written by an untrusted user. The reader therefore checks every length
 * against the file and against fixed bounds before it uses it, and
 * re-checks the content records while streaming them (the owner may
 * still change the file after it was validated).
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
/* The maildrop directory: world-writable, sticky, not listable (1733),
 * like Postfix's maildrop without the setgid postdrop helper. */
#define MAILDROP_DIR_NAME "maildrop"
#define MAILDROP_DIR_MODE 01733
#define MAILDROP_FILE_MODE 0600
/* Prefix of the writer's temporary files. */
#define MAILDROP_TEMP_PREFIX "tmp."

/* Attributes sendmail records (informative except extract_rcpt; pickup
 * trusts the file's owner uid, never submit_uid). */
#define MAILDROP_ATTR_FULL_NAME "full_name"
#define MAILDROP_ATTR_SUBMIT_UID "submit_uid"
#define MAILDROP_ATTR_LOGIN "login_name"
#define MAILDROP_ATTR_EXTRACT_RCPT "extract_rcpt" /* "yes" for sendmail -t */

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

/* Create dir/tmp.<ID> (mode 0600) and write the file header. */
int maildrop_writer_open(const char *dir, struct maildrop_writer **w_r, str_t *error);
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
