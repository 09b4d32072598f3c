/* request_server.h - the skeleton of a delivery agent: one request at a
 * time per process, requests and replies in the attr protocol
 * (base/attr.h), as qmgr speaks it to virtual today and to smtp, lmtp,
 * pipe and local later (Postfix's single_server.c, in postern's terms).
 *
 * The agent's main() reads its configuration with daemon_init(), opens
 * what it needs, and calls request_server_run() with one callback. The
 * skeleton:
 *   - takes the listening socket master handed over (-l FD), or, run by
 *     hand, binds queue_directory/private/SERVICE itself (0600; private/
 *     made 0700 when missing);
 *   - accepts one connection at a time (several processes may share the
 *     socket) and reads requests with ATTR_LIMITS_DEFAULT;
 *   - checks the protocol: the first request of a connection must carry
 *     version=ATTR_PROTOCOL_VERSION, request_id= is an unsigned number;
 *     a violation is answered with error=TEXT and closes the connection;
 *   - calls handle() for each good request and writes the reply it built;
 *   - bounds every wait for a client by idle_timeout seconds;
 *   - signals: SIGTERM, SIGINT and SIGUSR1 end the loop once the request
 *     in hand is answered; SIGHUP is logged (new configuration takes
 *     effect in new processes); SIGPIPE is ignored. Why blocked signals
 *     and ppoll(): they are delivered only while the agent waits for a
 *     connection or for bytes, so a delivery (write, fsync, link) is never
 *     interrupted half way and no system call needs an EINTR retry.
 *
 * Failure: a socket that cannot be bound is fatal (broken configuration);
 * everything about one connection (a malformed request, a client that
 * goes silent or away) ends that connection only, logged.
 */
#ifndef POSTERN_REQUEST_SERVER_H
#define POSTERN_REQUEST_SERVER_H

#include <stdint.h>

#include "base/str.h"

struct attr_list;
struct daemon;

/* Handle one request (its request_id already checked). Append the whole
 * reply to reply (attribute lines and the closing attr_end(), or use
 * request_server_reply_error()). Return 0 to keep the connection, -1 to
 * close it after the reply is sent. */
typedef int request_handler_fn(void *ctx, struct attr_list *req, uint64_t request_id, str_t *reply);

struct request_server_spec {
	const char *service; /* socket name under private/ when run by hand */
	int idle_timeout; /* seconds a client may stay silent */
	request_handler_fn *handle;
	void *ctx;
};

/* Serve until a stop signal. Returns the exit status for main() (0). */
int request_server_run(struct daemon *d, const struct request_server_spec *spec);

/* Replace reply with an error=TEXT reply for request_id, and log it. */
void request_server_reply_error(str_t *reply, uint64_t request_id, const char *text);

#endif
