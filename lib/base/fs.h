/* fs.h - file-system helpers, above all durable replacement of a file.
 *
 * fs_write_durable() is the one place that implements postern's
 * durability rule (STYLE 18): write into a temporary file in the same
 * directory, fsync it, rename it into place, then fsync the directory, so
 * that after a crash the target holds either the old or the new content,
 * never a mix, and a success reported to a peer survives power loss. The
 * queue, Maildir delivery and `postern conf set` all use it.
 */
#ifndef POSTERN_FS_H
#define POSTERN_FS_H

#include <stddef.h>
#include <sys/types.h>

#include "base/str.h"

/* Replace path with data (len bytes), mode as given. On failure returns -1
 * with a message naming the file and the system error in error (appended),
 * and leaves neither a temporary file nor a changed target behind. */
int fs_write_durable(const char *path, const void *data, size_t len, mode_t mode, str_t *error);
/* fsync the directory that holds path (or path itself when it is one). */
int fs_sync_dir_of(const char *path, str_t *error);
/* Read a whole file of at most max_size bytes into out (appended). -1 with
 * a message naming the file on error or when it is larger. */
int fs_read_file(const char *path, size_t max_size, str_t *out, str_t *error);

#endif
