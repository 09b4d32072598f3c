/* fs.c - durable file replacement and bounded whole-file reads (see fs.h).
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/mem.h"

static int write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

int fs_sync_dir_of(const char *path, str_t *error)
{
	char *copy = xstrdup(path);
	struct stat st;
	const char *dir = stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? path : dirname(copy);
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret = 0;

	if (fd < 0 || fsync(fd) < 0) {
		str_appendf(error, "fsync directory %s: %m", dir);
		ret = -1;
	}
	if (fd >= 0)
		close(fd);
	free(copy);
	return ret;
}

int fs_write_durable(const char *path, const void *data, size_t len, mode_t mode, str_t *error)
{
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);

	if (fd < 0) {
		str_appendf(error, "create %s: %m", tmp);
		free(tmp);
		return -1;
	}
	if (fchmod(fd, mode) < 0 || write_all(fd, data, len) < 0 || fsync(fd) < 0) {
		str_appendf(error, "write %s: %m", tmp);
		goto fail;
	}
	if (close(fd) < 0) {
		fd = -1;
		str_appendf(error, "close %s: %m", tmp);
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		str_appendf(error, "rename %s to %s: %m", tmp, path);
		goto fail;
	}
	free(tmp);
	return fs_sync_dir_of(path, error);
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	free(tmp);
	return -1;
}

int fs_read_file(const char *path, size_t max_size, str_t *out, str_t *error)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t total = 0;

	if (fd < 0) {
		str_appendf(error, "open %s: %m", path);
		return -1;
	}
	for (;;) {
		ssize_t n;

		str_reserve(out, 65536);
		n = read(fd, out->buf + out->len, 65536);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			str_appendf(error, "read %s: %m", path);
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		total += (size_t)n;
		out->len += (size_t)n;
		out->buf[out->len] = '\0';
		if (total > max_size) {
			str_appendf(error, "%s: larger than %zu bytes", path, max_size);
			close(fd);
			return -1;
		}
	}
	close(fd);
	return 0;
}
