/* listen.c - bind inet listeners (see listen.h).
 *
 * Used by master_service.c and event_server.c. On failure every socket
 * opened so far is closed and the reason names the service, the address
 * and the system error; the caller decides whether that is fatal.
 */
#include "daemon/listen.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/mem.h"

static void close_all(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
	free(fds);
}

int listen_inet(const char *service, const char *host, const char *port, int backlog, int **fds_r,
                size_t *n_r, str_t *error)
{
	struct addrinfo hints, *res, *ai;
	int *fds = NULL;
	size_t n = 0;
	int rc;

	*fds_r = NULL;
	*n_r = 0;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		str_appendf(error, "service %s: cannot resolve %s:%s: %s", service,
		            host != NULL ? host : "*", port, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		int on = 1;

		if (fd < 0)
			continue;
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
		if (ai->ai_family == AF_INET6)
			(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, backlog) < 0) {
			int err = errno;

			close(fd);
			/* Why skip: a host without IPv6 still serves IPv4 on "all". */
			if (host == NULL && ai->ai_family == AF_INET6 && err == EADDRNOTAVAIL)
				continue;
			str_appendf(error, "service %s: bind %s port %s: %s", service,
			            host != NULL ? host : "*", port, strerror(err));
			freeaddrinfo(res);
			close_all(fds, n);
			return -1;
		}
		fds = xreallocarray(fds, n + 1, sizeof(int));
		fds[n++] = fd;
	}
	freeaddrinfo(res);
	if (n == 0) {
		str_appendf(error, "service %s: nothing to listen on for %s:%s", service,
		            host != NULL ? host : "*", port);
		return -1;
	}
	*fds_r = fds;
	*n_r = n;
	return 0;
}
