/* fs_inherit.c - files a privileged parent opened for this process.
 *
 * master opens, as root, the few files a daemon must read but may not
 * (smtpd's TLS private keys: mode 0600 root) and hands them over as
 * open descriptors ("-f FD:PATH", daemon.h). The daemon registers them
 * here at start; fs_open_inherited() and fs_read_file() then read PATH
 * through the inherited descriptor instead of opening it, so the code
 * that loads a key (lib/tls) never knows who opened it.
 *
 * The registry is filled before any thread starts and only read after.
 */
#include "base/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem.h"

struct inherited {
	char *path;
	int fd;
};

static struct inherited *inherited;
static size_t n_inherited;

void fs_inherited_add(const char *path, int fd)
{
	(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	for (size_t i = 0; i < n_inherited; i++) {
		if (strcmp(inherited[i].path, path) == 0) {
			/* The same path twice: the newer descriptor wins (and
			 * the same descriptor twice is not closed under itself). */
			if (inherited[i].fd != fd)
				close(inherited[i].fd);
			inherited[i].fd = fd;
			return;
		}
	}
	inherited = xreallocarray(inherited, n_inherited + 1, sizeof(*inherited));
	inherited[n_inherited].path = xstrdup(path);
	inherited[n_inherited].fd = fd;
	n_inherited++;
}

int fs_open_inherited(const char *path)
{
	for (size_t i = 0; i < n_inherited; i++) {
		if (strcmp(inherited[i].path, path) != 0)
			continue;
		/* Not a fresh open through /proc/self/fd: that checks the
		 * file's permissions again, which is what the descriptor is
		 * for. The duplicate shares the offset: readers take turns
		 * (one thread, at start and at reload). */
		int fd = fcntl(inherited[i].fd, F_DUPFD_CLOEXEC, 0);
		if (fd >= 0 && lseek(fd, 0, SEEK_SET) < 0) {
			int saved = errno;
			close(fd);
			errno = saved;
			return -1;
		}
		return fd;
	}
	return open(path, O_RDONLY | O_CLOEXEC);
}

bool fs_is_inherited(const char *path)
{
	for (size_t i = 0; i < n_inherited; i++)
		if (strcmp(inherited[i].path, path) == 0)
			return true;
	return false;
}
