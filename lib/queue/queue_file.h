/* queue_file.h - the queue file: one message's envelope and content.
 *
 * Written once by smtpd/pickup (and qmgr for bounces) with a
 * queue_writer, then read by qmgr and the `postern queue` commands with a
 * queue_file, which also records per-recipient completion in place.
 *
 * FORMAT (version 1; all integers big-endian)
 *
 *   offset 0   file header, 32 bytes
 *              0..7   magic "POSTERNQ"
 *              8..9   format version, u16 = 1
 *              10..15 reserved, zero
 *              16..23 content offset, u64
 *              24..31 content length, u64
 *   offset 32  records: type u8, length u32, then length payload bytes
 *              head section: envelope records, then 'X'
 *              content: content-length raw bytes (starts at content offset)
 *              tail section: envelope records added after the content
 *                            (recipients found in headers by sendmail -t)
 *              'Z' complete, last; nothing follows it
 *
 *   Record types. Upper-case letters are critical: a reader that meets one
 *   it does not know refuses the file. Lower-case letters are optional: a
 *   reader skips those it does not know (new information that older
 *   readers may ignore). Any other type byte is corruption. No payload is
 *   longer than QUEUE_RECORD_MAX; text never contains NUL.
 *
 *   'T' arrival time, 12 bytes: u64 seconds, u32 microseconds. Once, first.
 *   'S' sender, 0..QUEUE_FIELD_MAX bytes; empty is the null sender <>.
 *       Once, in the head.
 *   'E' DSN envelope ID (ENVID, xtext-decoded), 1..QUEUE_FIELD_MAX bytes.
 *       At most once, in the head.
 *   'N' DSN RET, 1 byte: 'F' (FULL) or 'H' (HDRS). At most once, in the head.
 *   'A' attribute: name (1..64 of [a-z0-9_]), NUL, value (0..QUEUE_FIELD_MAX).
 *       Client attributes: see QUEUE_ATTR_*. Head or tail.
 *   'R' recipient. Head or tail; at least one in the file.
 *         0..31  status slot (below), updated in place
 *         32     DSN NOTIFY flags, u8 (QUEUE_NOTIFY_*; 0 = not given)
 *         33..34 address length, u16 (1..QUEUE_FIELD_MAX), then the address
 *         u16 ORCPT length (0 = none), then ORCPT as "type;address"
 *         The payload is exactly that long.
 *   'X' end of envelope, 0 bytes. Once; the content starts right after it
 *       and the header's content offset must say so.
 *   'Z' complete, 8 bytes: u64 size of the whole file, which must end right
 *       after this record. Written last, before the one fsync; a file
 *       without it, or of another size, is truncated or damaged.
 *
 *   Status slot, 32 bytes:
 *         0      state, u8 (enum queue_rcpt_state)
 *         1      flags, u8 (QUEUE_RCPT_F_*)
 *         2..3   delivery attempts, u16
 *         4..11  next retry, u64 seconds since the epoch (0 = at once)
 *         12..19 last change, u64 seconds since the epoch
 *         20     DSN class, u8 (0 = none, 2, 4 or 5)
 *         21..22 DSN subject, u16 (0..999)
 *         23..24 DSN detail, u16 (0..999)
 *         25..31 reserved, zero
 *
 * Why a status slot inside the queue file rather than a separate log: the
 * one byte that says "this recipient is done" must never disagree with the
 * message it belongs to, and a fixed-size in-place update needs no file
 * creation or rename per delivery (see queue_file_update_rcpt). The free
 * text of the last deferral or bounce reason is variable-length and only
 * informative, so it lives in the message's status log (queue_log.h).
 *
 * Why the content is raw bytes rather than records: it is streamed in at
 * any size and streamed out by offset (pread, sendfile) to delivery
 * agents; its length and offset are patched into the header at commit.
 */
#ifndef POSTERN_QUEUE_FILE_H
#define POSTERN_QUEUE_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>
#include <sys/types.h>

#include "base/str.h"
#include "queue/queue_dir.h"
#include "queue/queue_id.h"

#define QUEUE_FILE_MAGIC "POSTERNQ"
#define QUEUE_FILE_VERSION 1
#define QUEUE_FILE_HEADER_SIZE 32
#define QUEUE_RECORD_HEADER_SIZE 5
#define QUEUE_RECORD_MAX 65536
#define QUEUE_FIELD_MAX 4096
#define QUEUE_ATTR_NAME_MAX 64
#define QUEUE_STATUS_SLOT_SIZE 32

/* Client attributes smtpd and pickup record ('A' records). */
#define QUEUE_ATTR_CLIENT_NAME "client_name"
#define QUEUE_ATTR_CLIENT_ADDRESS "client_address"
#define QUEUE_ATTR_CLIENT_PORT "client_port"
#define QUEUE_ATTR_HELO_NAME "helo_name"
#define QUEUE_ATTR_PROTOCOL "protocol" /* SMTP, ESMTP, ESMTPSA, ... */
#define QUEUE_ATTR_SASL_METHOD "sasl_method"
#define QUEUE_ATTR_SASL_USERNAME "sasl_username"
#define QUEUE_ATTR_SASL_SENDER "sasl_sender"
#define QUEUE_ATTR_SERVICE "service" /* master.cf service that received it */
#define QUEUE_ATTR_ENCODING "encoding" /* 7bit, 8bitmime */
#define QUEUE_ATTR_SMTPUTF8 "smtputf8" /* "yes" when requested */
/* What cleanup decided for qmgr: the content filter every recipient goes
 * to ("transport" or "transport:nexthop", from content_filter or a FILTER
 * action), and "yes" when receive_override_options said
 * no_address_mappings (qmgr then skips virtual alias expansion). */
#define QUEUE_ATTR_CONTENT_FILTER "content_filter"
#define QUEUE_ATTR_NO_ADDRESS_MAPPINGS "no_address_mappings"
/* The upstream client and message as a content filter names them with
 * XFORWARD (smtpd; Postfix's names). For logging only, never for policy;
 * absent when there was no XFORWARD: the client_* attributes above then
 * name the client. Each only when known. */
#define QUEUE_ATTR_LOG_CLIENT_NAME "log_client_name"
#define QUEUE_ATTR_LOG_CLIENT_ADDRESS "log_client_address"
#define QUEUE_ATTR_LOG_CLIENT_PORT "log_client_port"
#define QUEUE_ATTR_LOG_ORIGIN "log_message_origin" /* name[addr], or name */
#define QUEUE_ATTR_LOG_HELO_NAME "log_helo_name"
#define QUEUE_ATTR_LOG_PROTOCOL "log_protocol_name" /* any name: SMTP, ESMTP, QMQP... */
#define QUEUE_ATTR_LOG_IDENT "log_ident" /* the upstream queue ID */
#define QUEUE_ATTR_REWRITE_CONTEXT "rewrite_context" /* XFORWARD SOURCE: local, remote */

enum queue_dsn_ret {
	QUEUE_RET_NONE = 0, /* not given */
	QUEUE_RET_FULL,
	QUEUE_RET_HDRS,
};

/* DSN NOTIFY flags (RFC 3461); 0 means NOTIFY was not given. */
#define QUEUE_NOTIFY_NEVER (1u << 0)
#define QUEUE_NOTIFY_SUCCESS (1u << 1)
#define QUEUE_NOTIFY_FAILURE (1u << 2)
#define QUEUE_NOTIFY_DELAY (1u << 3)
#define QUEUE_NOTIFY_ALL 0x0fu

enum queue_rcpt_state {
	QUEUE_RCPT_PENDING = 0, /* not tried yet */
	QUEUE_RCPT_DEFERRED = 1, /* tried, will be retried */
	QUEUE_RCPT_DELIVERED = 2, /* done: delivered (final) */
	QUEUE_RCPT_BOUNCED = 3, /* done: failed for good (final) */
};
#define QUEUE_RCPT_STATE_MAX QUEUE_RCPT_BOUNCED

/* Status slot flags. */
#define QUEUE_RCPT_F_DELAY_WARNED (1u << 0) /* delay warning sent */

/* An RFC 3463 enhanced status code; class 0 means none. */
struct queue_dsn {
	unsigned char klass; /* 2, 4 or 5 */
	unsigned short subject; /* 0..999 */
	unsigned short detail; /* 0..999 */
};

struct queue_rcpt_status {
	enum queue_rcpt_state state;
	unsigned flags;
	unsigned attempts; /* saturates at 65535 */
	time_t next_retry;
	time_t changed;
	struct queue_dsn dsn;
};

/* Parse "4.4.1" into dsn; -1 when malformed. */
int queue_dsn_parse(const char *text, struct queue_dsn *dsn_r);
/* Format dsn as "4.4.1" into out (replaced; empty for class 0). */
void queue_dsn_format(const struct queue_dsn *dsn, str_t *out);
/* "deferred", "delivered", ... for logs and `postern queue` output. */
const char *queue_rcpt_state_str(enum queue_rcpt_state state);
static inline bool queue_rcpt_state_final(enum queue_rcpt_state state)
{
	return state == QUEUE_RCPT_DELIVERED || state == QUEUE_RCPT_BOUNCED;
}

/* Errors. Every failing writer or reader call sets errno. A write that
 * fails for lack of space (ENOSPC, EDQUOT, EFBIG: disk full, quota, file
 * size limit) is a resource shortage; every other I/O error too is
 * temporary for the client. Either way smtpd must answer 4xx and the
 * client retries later: the message is not lost. */
bool queue_error_is_resource(int err);
/* The SMTP reply for a failed queue write with errno err:
 * "452 4.3.1 Insufficient system storage" for a resource shortage, else
 * "451 4.3.0 Error: queue file write error" (Postfix's texts). */
const char *queue_error_reply(int err);

/* WRITER
 *
 * Contract for smtpd and pickup: open at MAIL FROM (the ID is then known
 * for the log line "ID: client=..." and the Received header), add the
 * envelope, write the content in pieces of any size (memory stays bounded
 * whatever the message size), then commit. ONLY WHEN queue_writer_commit()
 * RETURNS 0 MAY smtpd ANSWER 250: the file and its directory entry are then
 * fsync'd. On any failure answer queue_error_reply(errno) (4xx) and
 * destroy the writer; no partial file is left behind.
 *
 * Errors are sticky: after a failed call every later call fails the same
 * way, so smtpd can keep reading DATA to its end and report once. */
struct queue_writer;

/* Reserve a new queue ID and create its temporary file (incoming/tmp.ID).
 * The ID is unique among all queues. Records the arrival time (the ID's
 * time). */
int queue_writer_open(const struct queue_dir *qd, struct queue_writer **w_r, str_t *error);
const char *queue_writer_id(const struct queue_writer *w);
const struct timeval *queue_writer_arrival(const struct queue_writer *w);
/* The sender; "" is the null sender. Exactly once, before the content. */
int queue_writer_sender(struct queue_writer *w, const char *sender, str_t *error);
/* DSN ENVID (NULL for none) and RET; at most once, before the content. */
int queue_writer_dsn(struct queue_writer *w, const char *envid, enum queue_dsn_ret ret,
                     str_t *error);
/* A client attribute (QUEUE_ATTR_*), before or after the content. */
int queue_writer_attr(struct queue_writer *w, const char *name, const char *value, str_t *error);
/* A recipient with its DSN ORCPT ("rfc822;addr", NULL for none) and NOTIFY
 * flags, state pending. Before or after the content (after it ends the
 * content). */
int queue_writer_rcpt(struct queue_writer *w, const char *address, const char *orcpt,
                      unsigned notify, str_t *error);
/* Append len bytes of content (headers and body as they go to the
 * recipients, smtpd's Received header first). Buffered in 64 KB. */
int queue_writer_content(struct queue_writer *w, const void *data, size_t len, str_t *error);
/* Bytes of content written so far (for the SIZE limit and "size="). */
uint64_t queue_writer_content_size(const struct queue_writer *w);
/* Finish the file and make it durable under its ID in queue (incoming, or
 * hold for an access-table HOLD): write the complete marker, fsync the
 * file, rename it into place (never over an existing file), fsync the
 * directory. Needs a sender and at least one recipient (EINVAL). */
int queue_writer_commit(struct queue_writer *w, enum queue_name queue, str_t *error);
/* Free the writer; before a successful commit this removes the temporary
 * file (abort). errno is preserved. Does nothing on NULL. */
void queue_writer_destroy(struct queue_writer **wp);

/* READER */

enum queue_file_status {
	QUEUE_FILE_OK = 0,
	QUEUE_FILE_ERROR = -1, /* system error (errno): ENOENT, EIO, EMFILE... */
	QUEUE_FILE_CORRUPT = -2, /* not a valid complete queue file */
};

/* Open for reading, or for reading and recipient updates (qmgr). */
#define QUEUE_FILE_RDWR (1u << 0)

struct queue_file;

/* The envelope, valid while the file is open. */
struct queue_envelope {
	char id[QUEUE_ID_SIZE]; /* from the file name; "" when it is not an ID */
	struct timeval arrival;
	const char *sender; /* "" for the null sender */
	const char *envid; /* NULL when none */
	enum queue_dsn_ret ret;
	size_t rcpt_count;
	uint64_t content_offset; /* of the content in the file */
	uint64_t content_length; /* the message size */
	uint64_t file_size;
};

/* A recipient read back; the caller owns it (init once, free once). */
struct queue_rcpt {
	size_t index; /* 0-based, in file order */
	str_t address;
	str_t orcpt; /* "" when none */
	unsigned notify;
	struct queue_rcpt_status status;
};
void queue_rcpt_init(struct queue_rcpt *r);
void queue_rcpt_free(struct queue_rcpt *r);

/* Open and validate a queue file: every record is checked against the
 * file's bounds before it is used. QUEUE_FILE_CORRUPT comes with a message
 * "PATH: corrupt queue file at offset N: WHAT" (qmgr moves such a file to
 * corrupt/); QUEUE_FILE_ERROR with "open PATH: ..." and errno. */
enum queue_file_status queue_file_open_path(const char *path, unsigned flags,
                                            struct queue_file **f_r, str_t *error);
/* The same for id in queue (found at any hash depth). */
enum queue_file_status queue_file_open(const struct queue_dir *qd, enum queue_name queue,
                                       const char *id, unsigned flags, struct queue_file **f_r,
                                       str_t *error);
void queue_file_close(struct queue_file **fp);

const struct queue_envelope *queue_file_envelope(const struct queue_file *f);
const char *queue_file_path(const struct queue_file *f);
/* An attribute's value, NULL when absent (the last one when repeated). */
const char *queue_file_attr(const struct queue_file *f, const char *name);
/* Iterate attributes: start with *pos = 0; false when done. */
bool queue_file_attr_next(const struct queue_file *f, size_t *pos, const char **name_r,
                          const char **value_r);
/* Read recipient index (0..rcpt_count-1) with its current status. */
enum queue_file_status queue_file_read_rcpt(struct queue_file *f, size_t index,
                                            struct queue_rcpt *r, str_t *error);
/* Read up to len content bytes from content position pos into buf: the
 * count (0 at the end), or -1 with errno on an I/O error. */
ssize_t queue_file_read_content(struct queue_file *f, uint64_t pos, void *buf, size_t len,
                                str_t *error);
/* The descriptor, for sendfile()/splice() of the content range. */
int queue_file_fd(const struct queue_file *f);

/* Record a recipient's new status in its slot, in place (the file must be
 * open with QUEUE_FILE_RDWR). With sync, fdatasync before returning: qmgr
 * syncs every final state (delivered, bounced), and may batch several
 * updates with sync false followed by queue_file_sync(). A crash before
 * the sync re-delivers the recipient: at least once, never lost. */
int queue_file_update_rcpt(struct queue_file *f, size_t index,
                           const struct queue_rcpt_status *status, bool sync, str_t *error);
int queue_file_sync(struct queue_file *f, str_t *error);
/* Set only the next-retry field (bytes 4..11) of a recipient's slot, in
 * place: a flush (ETRN, postern queue flush) must never write back a
 * state byte that qmgr may have changed meanwhile. No sync. */
int queue_file_update_retry(struct queue_file *f, size_t index, uint64_t next_retry, str_t *error);

#endif
