/* fs.h - file-system helpers, above all durable creation of a file.
 *
 * The fs_durable_* functions are the one place that implements postern's
 * durability rule (STYLE 18): write into a temporary file, fsync it, rename
 * (or link) it into place, then fsync the directory, so that after a crash
 * the target holds either the old or the new content, never a mix, and a
 * success reported to a peer survives power loss. fs_write_durable() is the
 * whole-buffer shorthand built on them; the queue writer streams a message
 * through them piece by piece. The queue, Maildir delivery and `postern
 * conf set` all use these and nothing else.
 *
 * Every failing call returns -1 with errno set to the system error that
 * caused it (callers such as smtpd turn ENOSPC into a 452 reply) and a
 * message naming the file appended to error.
 */
#ifndef POSTERN_FS_H
#define POSTERN_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "base/str.h"

/* A file being written durably: created under a temporary name, made
 * visible under its final name only by fs_durable_commit(). */
struct fs_durable;

enum fs_commit_mode {
	FS_COMMIT_REPLACE, /* rename over an existing target (config files) */
	FS_COMMIT_NOREPLACE, /* fail with EEXIST rather than replace (queue files) */
};

/* Create tmp_path exclusively (O_EXCL; EEXIST when it exists) with mode
 * and open it for writing. The caller picks tmp_path in the directory, or
 * at least the file system, of the final name. */
int fs_durable_open(const char *tmp_path, mode_t mode, struct fs_durable **f_r, str_t *error);
/* The descriptor, for pwrite() patches or fstat(); never close it. */
int fs_durable_fd(const struct fs_durable *f);
/* The temporary path given to fs_durable_open(). */
const char *fs_durable_tmp_path(const struct fs_durable *f);
/* Write all len bytes at the current offset (retries short writes and
 * EINTR). On failure the file is left for fs_durable_abort(). */
int fs_durable_write(struct fs_durable *f, const void *data, size_t len, str_t *error);
/* fsync the file, close it, move it to path (see enum fs_commit_mode), and
 * fsync path's directory. Only a 0 return means the file is on disk under
 * its name. On success *fp is freed and set to NULL; on failure the
 * temporary file is removed, *fp is freed and set to NULL, and the target
 * is untouched, with one exception: FS_COMMIT_NOREPLACE whose directory
 * fsync failed after another process had already renamed path away
 * returns -1 with errno EALREADY; the complete, fsync'd file is then
 * wherever that process put it. */
int fs_durable_commit(struct fs_durable **fp, const char *path, enum fs_commit_mode mode,
                      str_t *error);
/* Close and remove the temporary file, free *fp and set it to NULL; does
 * nothing on NULL. errno is preserved. */
void fs_durable_abort(struct fs_durable **fp);

/* rename(from, to) that fails with EEXIST instead of replacing an existing
 * to (renameat2 RENAME_NOREPLACE, or link + unlink where the file system
 * lacks it). -1 with errno on failure; from is then unchanged. */
int fs_rename_noreplace(const char *from, const char *to);

/* Replace path with data (len bytes), mode as given. On failure returns -1
 * with a message naming the file and the system error in error (appended),
 * and leaves neither a temporary file nor a changed target behind. */
int fs_write_durable(const char *path, const void *data, size_t len, mode_t mode, str_t *error);
/* fsync the directory that holds path (or path itself when it is one). */
int fs_sync_dir_of(const char *path, str_t *error);
/* fsync the directory dir itself. */
int fs_sync_dir(const char *dir, str_t *error);
/* Write all len bytes to fd (retries short writes and EINTR); -1 with
 * errno on failure. */
int fs_write_all(int fd, const void *data, size_t len);
/* Read a whole file of at most max_size bytes into out (appended). -1 with
 * a message naming the file on error or when it is larger. */
int fs_read_file(const char *path, size_t max_size, str_t *out, str_t *error);
/* The same from an open descriptor, read to its end (not closed); path
 * only names the file in messages. */
int fs_read_fd(int fd, const char *path, size_t max_size, str_t *out, str_t *error);

/* Files a privileged parent opened for this process (fs_inherit.c):
 * register fd as the open file of path (at start, before threads);
 * fs_open_inherited(path) then returns a duplicate positioned at 0
 * (close it), and opens path normally when it was not registered (-1
 * with errno either way). fs_read_file() reads through it too. */
void fs_inherited_add(const char *path, int fd);
int fs_open_inherited(const char *path);
bool fs_is_inherited(const char *path);

/* Make the regular file fd exactly len bytes long with every block
 * allocated, and map it shared, read-write. Why allocated: a page of a
 * sparse file first touched through a map when the file system is full
 * kills the process with SIGBUS; blocks reserved here cannot run out
 * (ENOSPC is reported now instead). For the small files processes share
 * (conn_count.c, table_shared.c). NULL with errno. */
void *fs_map_allocated(int fd, size_t len);
/* Take (F_RDLCK, F_WRLCK) or release (F_UNLCK) an OFD lock on byte
 * number byte of fd: released by the kernel when the holder dies, but
 * shared by the threads of a process (they need a mutex of their own).
 * wait: block until granted (EINTR retried); else fail at once. -1 with
 * errno. */
int fs_ofd_lock(int fd, short type, off_t byte, bool wait);

#endif
