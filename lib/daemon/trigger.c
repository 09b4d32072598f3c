/* trigger.c - wake-up sockets (see trigger.h).
 *
 * Used by pickup, qmgr, smtpd, the sendmail and queue commands, master.
 */
#include "daemon/trigger.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int fill_sockaddr(struct sockaddr_un *sun, const char *path)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun->sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sun->sun_path, path, strlen(path) + 1);
	return 0;
}

int unix_listen(const char *path, mode_t mode, int backlog, str_t *error)
{
	struct sockaddr_un sun;
	int fd;

	if (fill_sockaddr(&sun, path) < 0) {
		str_appendf(error, "socket path too long: %s", path);
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		str_appendf(error, "socket %s: %s", path, strerror(errno));
		return -1;
	}
	(void)unlink(path); /* a stale socket from an earlier run */
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		str_appendf(error, "bind %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (chmod(path, mode) < 0 || listen(fd, backlog) < 0) {
		str_appendf(error, "listen %s: %s", path, strerror(errno));
		close(fd);
		(void)unlink(path);
		return -1;
	}
	return fd;
}

int trigger_send(const char *queue_directory, const char *relative, char byte)
{
	struct sockaddr_un sun;
	char path[sizeof(sun.sun_path)];
	int fd, ret = -1;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", queue_directory, relative) >=
	            sizeof(path) ||
	    fill_sockaddr(&sun, path) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* The server may close before reading: MSG_NOSIGNAL, result ignored
	 * beyond success or not. */
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0 &&
	    send(fd, &byte, 1, MSG_NOSIGNAL) == 1)
		ret = 0;
	close(fd);
	return ret;
}

unsigned trigger_accept_all(int listen_fd)
{
	unsigned mask = 0;
	int client;

	while ((client = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		char buf[16];
		ssize_t n = read(client, buf, sizeof(buf));

		mask |= TRIGGER_MASK(0); /* the connection itself wakes up */
		for (ssize_t i = 0; i < n; i++)
			mask |= TRIGGER_MASK(buf[i]);
		close(client);
	}
	return mask;
}
