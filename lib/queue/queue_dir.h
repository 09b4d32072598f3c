/* queue_dir.h - the queue directory tree: where each message file lives.
 *
 * Under queue_directory:
 *
 *   incoming/  committed by smtpd/pickup, not yet seen by qmgr; also the
 *              writers' temporary files "tmp.<ID>" (never a valid ID, so
 *              scans skip them; queue_dir_cleanup() removes stale ones)
 *   active/    messages qmgr is delivering (bounded by
 *              qmgr_message_active_limit)
 *   deferred/  messages waiting for a retry
 *   hold/      messages held by the administrator or an access table HOLD
 *   corrupt/   files that failed validation, kept for inspection
 *   defer/     per-message delivery status logs (queue_log.h): reason text
 *              of deferred and bounced recipients, as Postfix's defer/
 *
 * A message file is named by its queue ID (queue_id.h). In a hashed queue
 * it sits hash_queue_depth levels down, each level one directory named by
 * one ID character: level 1 by the ID's 10th character, level 2 by its 9th
 * (the low microsecond digits, which spread evenly over 52 values), so
 * deferred/K/4Zb2Lk0FqK01Tm. At depth 1 a million messages make 52
 * directories of ~19,000 entries, fast on ext4/xfs hashed directories.
 * Hash directories are made on demand (and their parent fsync'd, so a
 * message committed into a new one survives a crash).
 *
 * Which queues are hashed follows Postfix's hash_queue_names (default
 * "deferred, defer"): the queues that grow without bound while mail cannot
 * be delivered. incoming and active are emptied continuously by qmgr and
 * stay unhashed by default, as in Postfix. Changing the hashing settings
 * never loses a message: lookups and scans find files at any depth.
 *
 * Every message is in exactly one queue. Moves never replace an existing
 * file (a name clash fails with EEXIST).
 */
#ifndef POSTERN_QUEUE_DIR_H
#define POSTERN_QUEUE_DIR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "base/str.h"
#include "queue/queue_id.h"

enum queue_name {
	QUEUE_INCOMING,
	QUEUE_ACTIVE,
	QUEUE_DEFERRED,
	QUEUE_HOLD,
	QUEUE_CORRUPT,
	QUEUE_DEFER_LOG, /* "defer": status logs, not messages */
	QUEUE_NAME_COUNT,
};

/* The queues that hold message files come first. */
#define QUEUE_MESSAGE_QUEUES (QUEUE_CORRUPT + 1)
#define QUEUE_HASH_DEPTH_MAX 2
#define QUEUE_HASH_DEPTH_DEFAULT 1
#define QUEUE_HASH_NAMES_DEFAULT "deferred, defer"
/* Mode of the queue directories and of the files in them. */
/* Why group-readable: the virtual agent, when every mailbox has one owner
 * (virtual_uid_maps = static:N), runs as that owner for good with
 * mail_owner's group as its one supplementary group, and reads the queue
 * files qmgr names through it. Nobody else is in that group: the queue
 * stays closed to local users. */
#define QUEUE_DIR_MODE 0750
#define QUEUE_FILE_MODE 0640

struct queue_dir;

/* The directory name of a queue ("deferred"). */
const char *queue_name_str(enum queue_name queue);
/* A queue by name; -1 for an unknown name. */
int queue_name_parse(const char *name, enum queue_name *queue_r);

/* Parse a hash_queue_names value into a bit mask (1 << queue). Postfix
 * names postern has no directory for (bounce, trace, flush: their logs
 * live in defer/) are accepted; "bounce" hashes defer/ like "defer".
 * -1 with a message naming the bad element. */
int queue_dir_hash_names(const char *value, unsigned *mask_r, str_t *error);

/* A handle on the tree rooted at path (queue_directory). depth is
 * hash_queue_depth, clamped to [1, QUEUE_HASH_DEPTH_MAX]; hashed_mask from
 * queue_dir_hash_names(). Does not touch the file system. */
struct queue_dir *queue_dir_new(const char *path, unsigned depth, unsigned hashed_mask);
void queue_dir_destroy(struct queue_dir **qdp);
const char *queue_dir_root(const struct queue_dir *qd);

/* Free space of the queue file system, Postfix's rule (postconf(5)
 * queue_minfree): new mail is taken in only while the bytes available to
 * unprivileged writers are more than queue_minfree and more than 1.5 x
 * message_size_limit (a limit of 0 leaves out that term). Returns 1 when
 * there is room, 0 when not, -1 when the space cannot be measured (errno
 * set); *free_r gets the free bytes. */
int queue_dir_space_ok(const struct queue_dir *qd, uint64_t minfree, uint64_t size_limit,
                       uint64_t *free_r);

/* Create the root (0755 when missing) and every queue directory (0700),
 * and set their mode; when uid is not (uid_t)-1 also their owner (run as
 * root by `postern start`/master). Idempotent. */
int queue_dir_create(const struct queue_dir *qd, uid_t uid, gid_t gid, str_t *error);

/* The path where id belongs in queue under the current hashing, in out
 * (replaced). */
void queue_dir_path(const struct queue_dir *qd, enum queue_name queue, const char *id, str_t *out);
/* The writer's temporary path for id: incoming/tmp.<id> (replaced). */
void queue_dir_temp_path(const struct queue_dir *qd, const char *id, str_t *out);
/* Make the hash directories id needs in queue (fsyncing each parent of a
 * new one). */
int queue_dir_prepare(const struct queue_dir *qd, enum queue_name queue, const char *id,
                      str_t *error);
/* Find the existing file of id in queue at any hash depth: 1 with its path
 * in path_r (replaced), 0 when absent, -1 on a system error. */
int queue_dir_locate(const struct queue_dir *qd, enum queue_name queue, const char *id,
                     str_t *path_r, str_t *error);
/* Which message queue holds id: 1 with *queue_r (and the path in path_r
 * when not NULL), 0 when no queue holds it, -1 on a system error. */
int queue_dir_find(const struct queue_dir *qd, const char *id, enum queue_name *queue_r,
                   str_t *path_r, str_t *error);
/* Move id from one message queue to another: rename (never replacing),
 * then fsync both directories. -1 with errno ENOENT when id is not in
 * from, EEXIST when to has it already. */
int queue_dir_move(const struct queue_dir *qd, const char *id, enum queue_name from,
                   enum queue_name to, str_t *error);
/* The same; with QUEUE_MOVE_NOSYNC the directories are not fsync'd. For
 * qmgr's own moves between incoming, active and deferred: a move lost in
 * a crash leaves the message in a queue qmgr scans anyway (active/ goes
 * back to incoming/ at start), so durability buys nothing there. */
#define QUEUE_MOVE_NOSYNC (1u << 0)
int queue_dir_move_flags(const struct queue_dir *qd, const char *id, enum queue_name from,
                         enum queue_name to, unsigned flags, str_t *error);
/* Remove id's file from queue and its status log. Not fsync'd: a removal
 * lost in a crash only means a message is delivered again. -1 with errno
 * ENOENT when the file was not there. */
int queue_dir_remove(const struct queue_dir *qd, enum queue_name queue, const char *id,
                     str_t *error);
/* Remove writers' temporary files in incoming/ last changed more than
 * max_age seconds ago (left by a writer that crashed or was killed before
 * commit). Pass max_age well above the longest SMTP session (a live
 * writer's file changes at every piece of content); 0 removes all, for
 * tests and for `postern start` before any writer runs. Counts removals in
 * *removed_r when not NULL. */
int queue_dir_cleanup(const struct queue_dir *qd, time_t max_age, unsigned *removed_r,
                      str_t *error);

struct queue_stats {
	uint64_t count; /* message files */
	uint64_t bytes; /* their total size */
};
/* Count the files of a queue and add up their sizes (stat of each). */
int queue_dir_stats(const struct queue_dir *qd, enum queue_name queue, struct queue_stats *st_r,
                    str_t *error);

/* Scanning a queue: an iterator in bounded memory, whatever the count.
 *
 * Unordered scans return IDs in directory order, holding one open
 * directory per hash level. Ordered scans return them in ascending ID
 * (arrival) order: each pass over the tree keeps the window smallest IDs
 * above the last one returned (a heap of fixed size, 64K IDs = 1 MB by
 * default), so a million files take ~16 passes and no more memory.
 * Files added during a scan may or may not be returned; a file removed
 * during a scan may still be returned (open it and handle ENOENT); no file
 * present throughout is returned twice or missed. */
enum queue_scan_flags {
	QUEUE_SCAN_ORDERED = 1 << 0,
};
#define QUEUE_SCAN_WINDOW_DEFAULT 65536

struct queue_scan;

/* Start a scan of a message queue. -1 when its directory cannot be opened. */
int queue_scan_open(const struct queue_dir *qd, enum queue_name queue, unsigned flags,
                    struct queue_scan **scan_r, str_t *error);
/* Window of an ordered scan (at least 1); call before the first next. */
void queue_scan_set_window(struct queue_scan *scan, size_t window);
/* The next ID: 1 with *id_r (valid until the next call), 0 at the end, -1
 * on a system error (the scan may go on with the next call). */
int queue_scan_next(struct queue_scan *scan, const char **id_r, str_t *error);
void queue_scan_close(struct queue_scan **scanp);

#endif
