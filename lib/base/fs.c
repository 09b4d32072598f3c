/* fs.c - durable file creation and bounded whole-file reads (see fs.h).
 *
 * Used by the queue writer (lib/queue/queue_file.c), Maildir delivery and
 * `postern conf set`. On any failure the temporary file is removed, the
 * target is left as it was, and errno tells the cause.
 *
 * Why the order matters: rename() is atomic but not durable by itself; the
 * file's data must be on disk before the rename makes it visible (fsync
 * the file), and the rename itself must be on disk before we report
 * success (fsync the directory). Skipping either can leave an empty or
 * missing file after a power failure even though we said "done".
 */
#include "base/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/mem.h"

struct fs_durable {
	int fd;
	char *tmp_path;
};

int fs_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0) { /* cannot happen for regular files; do not spin */
			errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int fs_sync_dir(const char *dir, str_t *error)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || fsync(fd) < 0) {
		int saved = errno;

		str_appendf(error, "fsync directory %s: %m", dir);
		if (fd >= 0)
			close(fd);
		errno = saved;
		return -1;
	}
	close(fd);
	return 0;
}

int fs_sync_dir_of(const char *path, str_t *error)
{
	char *copy = xstrdup(path);
	struct stat st;
	const char *dir = stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? path : dirname(copy);
	int ret = fs_sync_dir(dir, error);
	int saved = errno;

	free(copy);
	errno = saved;
	return ret;
}

int fs_durable_open(const char *tmp_path, mode_t mode, struct fs_durable **f_r, str_t *error)
{
	int fd = open(tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	struct fs_durable *f;

	*f_r = NULL;
	if (fd < 0) {
		str_appendf(error, "create %s: %m", tmp_path);
		return -1;
	}
	/* The umask may have narrowed mode; the caller's mode is the contract. */
	if (fchmod(fd, mode) < 0) {
		int saved = errno;

		str_appendf(error, "chmod %s: %m", tmp_path);
		close(fd);
		unlink(tmp_path);
		errno = saved;
		return -1;
	}
	f = xmalloc(sizeof(*f));
	f->fd = fd;
	f->tmp_path = xstrdup(tmp_path);
	*f_r = f;
	return 0;
}

int fs_durable_fd(const struct fs_durable *f)
{
	return f->fd;
}

const char *fs_durable_tmp_path(const struct fs_durable *f)
{
	return f->tmp_path;
}

int fs_durable_write(struct fs_durable *f, const void *data, size_t len, str_t *error)
{
	if (fs_write_all(f->fd, data, len) < 0) {
		int saved = errno;

		str_appendf(error, "write %s: %m", f->tmp_path);
		errno = saved;
		return -1;
	}
	return 0;
}

void fs_durable_abort(struct fs_durable **fp)
{
	struct fs_durable *f = *fp;
	int saved = errno;

	if (f == NULL)
		return;
	if (f->fd >= 0)
		close(f->fd);
	unlink(f->tmp_path);
	free(f->tmp_path);
	free(f);
	*fp = NULL;
	errno = saved;
}

/* renameat2() does it in one step; file systems without RENAME_NOREPLACE
 * get link() (which fails with EEXIST just the same) and unlink() of the
 * old name. */
int fs_rename_noreplace(const char *tmp, const char *path)
{
#ifdef RENAME_NOREPLACE
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
		return -1;
#endif
	if (link(tmp, path) < 0)
		return -1;
	/* A failed unlink leaves a second name for a committed file; the
	 * committed name is what counts, so it is not an error. */
	(void)unlink(tmp);
	return 0;
}

int fs_durable_commit(struct fs_durable **fp, const char *path, enum fs_commit_mode mode,
                      str_t *error)
{
	struct fs_durable *f = *fp;
	int rc;

	if (fsync(f->fd) < 0) {
		str_appendf(error, "fsync %s: %m", f->tmp_path);
		goto fail;
	}
	rc = close(f->fd);
	f->fd = -1;
	if (rc < 0) {
		str_appendf(error, "close %s: %m", f->tmp_path);
		goto fail;
	}
	rc = mode == FS_COMMIT_REPLACE ? rename(f->tmp_path, path)
	                               : fs_rename_noreplace(f->tmp_path, path);
	if (rc < 0) {
		str_appendf(error, "rename %s to %s: %m", f->tmp_path, path);
		goto fail;
	}
	/* Why only the target's directory: it holds the entry that must
	 * survive. If the temporary name's removal is lost in a crash, a
	 * second name of a complete file remains, which the owner's cleanup
	 * of temporary names removes (ext4 and xfs journal both halves of a
	 * rename together anyway). */
	if (fs_sync_dir_of(path, error) < 0) {
		int saved = errno;

		/* The file is in place but not known durable: the caller
		 * reports failure. A replaced file keeps its new content, as
		 * the old one is gone either way. A new file (NOREPLACE: a
		 * queue file) is taken back, since the 4xx reply makes the
		 * client send it again.
		 *
		 * Why a rename back and not unlink(path): from the rename on,
		 * a consumer (qmgr) may have taken the file, by renaming it
		 * away. unlink(path) could not tell: it would fail quietly
		 * and the 4xx would make the client send a message that is
		 * being delivered anyway (a duplicate). Renaming path back to
		 * the temporary name either wins (nobody took it: no one ever
		 * will, and it is removed) or fails with ENOENT (taken): then
		 * errno is EALREADY, so the caller can look for the file
		 * where the consumer put it and make that durable instead. */
		if (mode == FS_COMMIT_NOREPLACE) {
			if (rename(path, f->tmp_path) == 0)
				(void)unlink(f->tmp_path);
			else if (errno == ENOENT)
				saved = EALREADY;
		}
		free(f->tmp_path);
		free(f);
		*fp = NULL;
		errno = saved;
		return -1;
	}
	free(f->tmp_path);
	free(f);
	*fp = NULL;
	return 0;
fail:
	fs_durable_abort(fp);
	return -1;
}

int fs_write_durable(const char *path, const void *data, size_t len, mode_t mode, str_t *error)
{
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	struct fs_durable *f;
	int ret = -1;

	if (fs_durable_open(tmp, mode, &f, error) == 0) {
		if (fs_durable_write(f, data, len, error) < 0)
			fs_durable_abort(&f);
		else
			ret = fs_durable_commit(&f, path, FS_COMMIT_REPLACE, error);
	}
	free(tmp);
	return ret;
}

int fs_read_file(const char *path, size_t max_size, str_t *out, str_t *error)
{
	int fd = fs_open_inherited(path);
	int ret;

	if (fd < 0) {
		str_appendf(error, "open %s: %m", path);
		return -1;
	}
	ret = fs_read_fd(fd, path, max_size, out, error);
	close(fd);
	return ret;
}

int fs_read_fd(int fd, const char *path, size_t max_size, str_t *out, str_t *error)
{
	size_t total = 0;

	for (;;) {
		ssize_t n;

		str_reserve(out, 65536);
		n = read(fd, out->buf + out->len, 65536);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			str_appendf(error, "read %s: %m", path);
			return -1;
		}
		if (n == 0)
			break;
		total += (size_t)n;
		out->len += (size_t)n;
		out->buf[out->len] = '\0';
		if (total > max_size) {
			str_appendf(error, "%s: larger than %zu bytes", path, max_size);
			return -1;
		}
	}
	return 0;
}

void *fs_map_allocated(int fd, size_t len)
{
	struct stat st;
	void *map;
	int err;

	if (fstat(fd, &st) < 0)
		return NULL;
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		return NULL;
	}
	if ((uint64_t)st.st_size != (uint64_t)len && ftruncate(fd, (off_t)len) < 0)
		return NULL;
	err = posix_fallocate(fd, 0, (off_t)len);
	if (err != 0) {
		errno = err;
		return NULL;
	}
	map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	return map == MAP_FAILED ? NULL : map;
}

int fs_ofd_lock(int fd, short type, off_t byte, bool wait)
{
	struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1};

	while (fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl) < 0) {
		if (errno != EINTR || !wait)
			return -1;
	}
	return 0;
}
