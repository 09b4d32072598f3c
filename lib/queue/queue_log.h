/* queue_log.h - per-message delivery status logs (queue_directory/defer/).
 *
 * Why a companion file: the authority on whether a recipient is done is
 * the fixed-size status slot in the queue file (queue_file.h); the text of
 * the last deferral or bounce reason ("connect to mx.example.com[192.0.2.1]
 * :25: Connection refused") has no fixed size, so it is appended here,
 * one entry per attempt, and the latest entry of each recipient wins. This
 * is what `postern queue list` prints in parentheses and what qmgr quotes
 * in a bounce or delay warning, like Postfix's defer/ and bounce/ logs.
 *
 * Only qmgr writes logs (one writer per message); the queue commands read
 * them. queue_dir_remove() removes a message's log with its queue file.
 *
 * FORMAT (all integers big-endian)
 *   header, 16 bytes: magic "POSTERNL", u16 version = 1, 6 zero bytes
 *   entries: type 'D', u32 length, payload:
 *     u32 recipient index, u8 state, u8 DSN class, u16 DSN subject,
 *     u16 DSN detail, u64 time, u64 next retry, then the reason text
 *     (0..QUEUE_LOG_REASON_MAX bytes, no NUL)
 *   final entries: type 'F', u32 length, payload:
 *     u32 recipient index, u8 state (delivered or bounced), u64 time,
 *     then the final address (1..QUEUE_FIELD_MAX bytes, no NUL)
 * An entry cut short at the end of the file (a crash during an append) is
 * ignored; anything else malformed makes the log unreadable.
 *
 * Final entries: one queue file recipient may expand (virtual aliases) to
 * several final addresses. When some are done and others deferred, qmgr
 * records each done one here, so the retry skips it; the recipient's slot
 * turns final only when all are.
 *
 * Order for qmgr: append the reason first, then update the queue file's
 * slot (queue_file_update_rcpt). A crash between the two leaves a reason
 * for a recipient that is tried again, never a final state without its
 * reason. Bounce reasons are appended with sync, since the bounce message
 * is built from them; deferral reasons need not be.
 */
#ifndef POSTERN_QUEUE_LOG_H
#define POSTERN_QUEUE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "base/str.h"
#include "queue/queue_dir.h"
#include "queue/queue_file.h"

#define QUEUE_LOG_REASON_MAX 8192
#define QUEUE_LOG_FILE_MAX (64u * 1024 * 1024)

struct queue_log_entry {
	size_t rcpt_index;
	enum queue_rcpt_state state;
	struct queue_dsn dsn;
	time_t when;
	time_t next_retry; /* 0 when none */
	const char *reason; /* text without NUL; cut at QUEUE_LOG_REASON_MAX */
};

/* Append an entry to id's log (created on first use); with sync,
 * fdatasync it and fsync its directory before returning (which makes
 * every earlier unsynced append durable too). */
int queue_log_append(const struct queue_dir *qd, const char *id,
                     const struct queue_log_entry *entry, bool sync, str_t *error);

/* Record that final address (of the queue file's recipient rcpt_index)
 * is done with state (delivered or bounced); sync as for
 * queue_log_append(). qmgr syncs the last final of each recipient, so a
 * power loss cannot make the retry deliver a done final again. */
int queue_log_append_final(const struct queue_dir *qd, const char *id, size_t rcpt_index,
                           enum queue_rcpt_state state, const char *address, bool sync,
                           str_t *error);

struct queue_log;

/* Read id's log: the latest entry of each recipient. A missing log is an
 * empty one. -1 with a message naming the file on a read error, an
 * oversized file (QUEUE_LOG_FILE_MAX) or a malformed entry. */
int queue_log_load(const struct queue_dir *qd, const char *id, struct queue_log **log_r,
                   str_t *error);
/* The latest entry for a recipient, or NULL; valid while log lives. */
const struct queue_log_entry *queue_log_get(const struct queue_log *log, size_t rcpt_index);
/* The recorded state of final address of recipient rcpt_index:
 * QUEUE_RCPT_PENDING when none was recorded. */
enum queue_rcpt_state queue_log_final_state(const struct queue_log *log, size_t rcpt_index,
                                            const char *address);
/* Entries read, including those a later one replaced. */
size_t queue_log_entries(const struct queue_log *log);
void queue_log_destroy(struct queue_log **logp);

#endif
