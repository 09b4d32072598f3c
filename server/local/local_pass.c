/* local_pass.c - mailbox_transport and fallback_transport: hand one
 * recipient to another delivery agent (Postfix local(8) deliver_pass()).
 *
 * Why the agent talks to the other agent itself rather than asking qmgr
 * to re-route: the queue file is in active/ and stays there until this
 * request is answered, so the other agent can read it by the same queue
 * ID; connecting to private/TRANSPORT and sending the request qmgr would
 * send (delivery.h: one recipient block, nexthop from "transport:nexthop"
 * or $myhostname) needs no change to qmgr or to the protocol, and it is
 * what Postfix's local does. The other agent logs its own line (e.g.
 * relay=lmtp ... status=sent); its action, status and reason become this
 * recipient's.
 *
 * Failure: an agent that cannot be reached, that does not answer within
 * command_time_limit, or whose answer is malformed is a deferral
 * ("mail transport unavailable: ...", 4.3.0), never a bounce.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "base/attr.h"
#include "base/fs.h"
#include "base/mem.h"
#include "delivery/delivery.h"
#include "delivery/delivery_request.h"
#include "local.h"

static enum local_status unavailable(char dsn[8], str_t *why, const char *fmt, const char *a,
                                     const char *b)
{
	snprintf(dsn, 8, "4.3.0");
	str_append(why, "mail transport unavailable: ");
	str_appendf(why, fmt, a, b);
	return LOCAL_DEFERRED;
}

enum local_status local_pass(struct local_agent *la, const struct local_message *msg,
                             const char *transport, const char *rcpt, const char *orig, char dsn[8],
                             str_t *why)
{
	static const struct attr_limits limits = ATTR_LIMITS_DEFAULT;
	const char *colon = strchr(transport, ':');
	char *name = colon != NULL ? xstrndup(transport, (size_t)(colon - transport))
	                           : xstrdup(transport);
	struct delivery_rcpt block = {.id = "0", .recipient = rcpt, .orig = orig};
	struct delivery_request req = *msg->req;
	struct attr_parser *parser = NULL;
	struct attr_list *reply = NULL;
	struct sockaddr_un sun;
	enum local_status st = LOCAL_DEFERRED;
	time_t deadline = time(NULL) + (time_t)la->command_time_limit;
	str_t out;
	int fd = -1;

	str_init(&out);
	req.nexthop = colon != NULL && colon[1] != '\0' ? colon + 1 : la->myhostname;
	req.rcpts = &block;
	req.n = 1;
	if (name[0] == '\0' || strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                                    "0123456789-_") != strlen(name)) {
		st = unavailable(dsn, why, "bad transport name \"%s\"%s", name, "");
		goto out;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/private/%s",
	                     la->queue_directory, name) >= sizeof(sun.sun_path)) {
		st = unavailable(dsn, why, "socket path for %s too long%s", name, "");
		goto out;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		st = unavailable(dsn, why, "connect to private/%s: %s", name, strerror(errno));
		goto out;
	}
	delivery_request_format(&req, &out);
	if (fs_write_all(fd, out.buf, out.len) < 0) {
		st = unavailable(dsn, why, "write to private/%s: %s", name, strerror(errno));
		goto out;
	}
	parser = attr_parser_new(&limits);
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		char buf[4096];
		size_t used = 0, off = 0;
		ssize_t n;
		time_t now = time(NULL);
		int r;

		if (now >= deadline) {
			st = unavailable(dsn, why, "private/%s did not answer in time%s", name, "");
			goto out;
		}
		r = poll(&pfd, 1, (int)(deadline - now) * 1000);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			continue;
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			st = unavailable(dsn, why, "lost connection with private/%s%s", name, "");
			goto out;
		}
		while (off < (size_t)n) {
			enum attr_parse_status ps =
			        attr_parser_feed(parser, buf + off, (size_t)n - off, &used);

			off += used;
			if (ps == ATTR_PARSE_ERROR) {
				st = unavailable(dsn, why, "malformed reply from private/%s: %s",
				                 name, attr_parser_error(parser));
				goto out;
			}
			if (ps == ATTR_PARSE_DONE) {
				reply = attr_parser_take(parser);
				goto answered;
			}
		}
	}
answered : {
	const char *error = attr_get(reply, DELIVERY_ATTR_ERROR);
	const char *action = attr_get(reply, DELIVERY_ATTR_ACTION);
	const char *status = attr_get(reply, DELIVERY_ATTR_STATUS);
	const char *reason = attr_get(reply, DELIVERY_ATTR_REASON);

	if (error != NULL) {
		st = unavailable(dsn, why, "private/%s: %s", name, error);
		goto out;
	}
	if (action == NULL || status == NULL || strlen(status) < 5 || strlen(status) > 7) {
		st = unavailable(dsn, why, "private/%s did not report the recipient%s", name, "");
		goto out;
	}
	st = strcmp(action, DELIVERY_ACTION_SENT) == 0 && status[0] == '2'      ? LOCAL_SENT
	     : strcmp(action, DELIVERY_ACTION_BOUNCED) == 0 && status[0] == '5' ? LOCAL_BOUNCED
	                                                                        : LOCAL_DEFERRED;
	snprintf(dsn, 8, "%s", st == LOCAL_DEFERRED && status[0] != '4' ? "4.0.0" : status);
	str_append(why, reason != NULL ? reason : "no reason given");
}
out:
	attr_list_destroy(&reply);
	attr_parser_destroy(&parser);
	if (fd >= 0)
		close(fd);
	str_free(&out);
	free(name);
	return st;
}
