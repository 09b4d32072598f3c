/* table_net.c - the client connection of socketmap: and tcp: (see table_net.h).
 *
 * Non-blocking sockets and poll(2) against one deadline per lookup; names
 * are resolved with getaddrinfo (a blocking call: these tables are remote
 * and run on the worker pool). Every failure closes the connection and
 * returns a message naming the server; nothing here logs.
 */
#include "table/table_net.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "base/mem.h"

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Split "host:port" or "[host]:port". */
static int split_host_port(const char *s, char **host_r, char **port_r)
{
	const char *colon;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL || close[1] != ':' || close[2] == '\0' || close == s + 1)
			return -1;
		*host_r = xstrndup(s + 1, (size_t)(close - s - 1));
		*port_r = xstrdup(close + 2);
		return 0;
	}
	colon = strrchr(s, ':');
	if (colon == NULL || colon == s || colon[1] == '\0')
		return -1;
	*host_r = xstrndup(s, (size_t)(colon - s));
	*port_r = xstrdup(colon + 1);
	return 0;
}

int table_net_init(struct table_net *n, const char *endpoint, bool bare_inet, str_t *error)
{
	memset(n, 0, sizeof(*n));
	n->fd = -1;
	str_init(&n->in);
	if (strncmp(endpoint, "unix:", 5) == 0) {
		if (endpoint[5] == '\0') {
			str_appendf(error, "\"%s\": no socket path after \"unix:\"", endpoint);
			return -1;
		}
		if (strlen(endpoint + 5) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
			str_appendf(error, "\"%s\": socket path too long", endpoint);
			return -1;
		}
		n->path = xstrdup(endpoint + 5);
		n->desc = xstrdup(endpoint);
		return 0;
	}
	if (strncmp(endpoint, "inet:", 5) == 0)
		endpoint += 5;
	else if (!bare_inet) {
		str_appendf(error, "\"%s\": expected inet:host:port or unix:/path", endpoint);
		return -1;
	}
	if (split_host_port(endpoint, &n->host, &n->port) < 0) {
		str_appendf(error, "\"%s\": expected host:port", endpoint);
		return -1;
	}
	n->desc = xasprintf("inet:%s", endpoint);
	return 0;
}

void table_net_free(struct table_net *n)
{
	table_net_close(n);
	xfree(&n->desc);
	xfree(&n->host);
	xfree(&n->port);
	xfree(&n->path);
	str_free(&n->in);
}

void table_net_close(struct table_net *n)
{
	if (n->fd >= 0)
		close(n->fd);
	n->fd = -1;
	n->reused = false;
	str_reset(&n->in);
}

void table_net_begin(struct table_net *n)
{
	n->deadline_ms = now_ms() + TABLE_NET_TIMEOUT_MS;
}

/* Wait for events on fd until the deadline: 1 ready, 0 timeout, -1 error. */
static int wait_fd(const struct table_net *n, short events)
{
	for (;;) {
		struct pollfd pfd = {.fd = n->fd, .events = events};
		long long left = n->deadline_ms - now_ms();
		int rc;

		if (left <= 0)
			return 0;
		rc = poll(&pfd, 1, (int)left);
		if (rc < 0 && errno == EINTR)
			continue;
		return rc < 0 ? -1 : rc;
	}
}

/* Connect fd to addr without blocking past the deadline. */
static int connect_one(struct table_net *n, const struct sockaddr *addr, socklen_t len, int family,
                       str_t *error)
{
	int err = 0, rc;
	socklen_t elen = sizeof(err);

	n->fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (n->fd < 0) {
		str_appendf(error, "%s: socket: %m", n->desc);
		return -1;
	}
	if (connect(n->fd, addr, len) == 0)
		return 0;
	if (errno != EINPROGRESS && errno != EAGAIN) {
		str_appendf(error, "%s: connect: %m", n->desc);
		table_net_close(n);
		return -1;
	}
	rc = wait_fd(n, POLLOUT);
	if (rc <= 0) {
		if (rc == 0)
			str_appendf(error, "%s: connect: timed out", n->desc);
		else
			str_appendf(error, "%s: connect: %m", n->desc);
		table_net_close(n);
		return -1;
	}
	if (getsockopt(n->fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0 || err != 0) {
		str_appendf(error, "%s: connect: %s", n->desc, strerror(err != 0 ? err : errno));
		table_net_close(n);
		return -1;
	}
	return 0;
}

int table_net_connect(struct table_net *n, str_t *error)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai;
	int rc;

	if (n->fd >= 0) {
		n->reused = true;
		return 0;
	}
	n->reused = false;
	str_reset(&n->in);
	if (n->path != NULL) {
		struct sockaddr_un sun = {.sun_family = AF_UNIX};

		memcpy(sun.sun_path, n->path, strlen(n->path) + 1);
		return connect_one(n, (struct sockaddr *)&sun, sizeof(sun), AF_UNIX, error);
	}
	rc = getaddrinfo(n->host, n->port, &hints, &res);
	if (rc != 0) {
		str_appendf(error, "%s: %s", n->desc, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		str_t why;

		str_init(&why);
		if (connect_one(n, ai->ai_addr, ai->ai_addrlen, ai->ai_family, &why) == 0) {
			str_free(&why);
			freeaddrinfo(res);
			return 0;
		}
		if (ai->ai_next == NULL)
			str_append_n(error, why.buf, why.len);
		str_free(&why);
	}
	freeaddrinfo(res);
	return -1;
}

int table_net_write(struct table_net *n, const void *data, size_t len, str_t *error)
{
	const char *p = data;

	while (len > 0) {
		ssize_t w = send(n->fd, p, len, MSG_NOSIGNAL);
		int rc;

		if (w > 0) {
			p += w;
			len -= (size_t)w;
			continue;
		}
		if (w < 0 && errno != EAGAIN && errno != EINTR) {
			str_appendf(error, "%s: write: %m", n->desc);
			table_net_close(n);
			return -1;
		}
		rc = wait_fd(n, POLLOUT);
		if (rc <= 0) {
			str_appendf(error, "%s: write: %s", n->desc,
			            rc == 0 ? "timed out" : strerror(errno));
			table_net_close(n);
			return -1;
		}
	}
	return 0;
}

int table_net_read(struct table_net *n, size_t max, str_t *error)
{
	for (;;) {
		char buf[4096];
		size_t room = max > n->in.len ? max - n->in.len : 0;
		ssize_t r;
		int rc;

		if (room == 0) {
			str_appendf(error, "%s: reply longer than %zu bytes", n->desc, max);
			table_net_close(n);
			return -1;
		}
		r = recv(n->fd, buf, room < sizeof(buf) ? room : sizeof(buf), 0);
		if (r > 0) {
			str_append_n(&n->in, buf, (size_t)r);
			return 0;
		}
		if (r == 0) {
			str_appendf(error, "%s: connection closed by the server", n->desc);
			table_net_close(n);
			return -1;
		}
		if (errno != EAGAIN && errno != EINTR) {
			str_appendf(error, "%s: read: %m", n->desc);
			table_net_close(n);
			return -1;
		}
		rc = wait_fd(n, POLLIN);
		if (rc <= 0) {
			str_appendf(error, "%s: read: %s", n->desc,
			            rc == 0 ? "timed out" : strerror(errno));
			table_net_close(n);
			return -1;
		}
	}
}
