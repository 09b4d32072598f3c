/* request_server.h - the skeleton of a delivery agent: one request at a
 * time per process, requests and replies in the attr protocol
 * (base/attr.h), as qmgr speaks it to virtual today and to smtp, lmtp,
 * pipe and local later (Postfix's single_server.c, in postern's terms).
 *
 * The agent's main() is a declaration: request_server_main() with its
 * callbacks. The skeleton:
 *   - takes the listening socket master handed over (-l FD), or, run by
 *     hand, binds queue_directory/private/SERVICE itself (0600; private/
 *     made 0700 when missing);
 *   - drops privileges (daemon_drop_privileges: mail_owner, unless
 *     needs_root, master.cf's unpriv column n, or -R), writes its pid
 *     file and logs "daemon started"; only then calls init;
 *   - accepts one connection at a time (several processes may share the
 *     socket) and reads requests with ATTR_LIMITS_DEFAULT;
 *   - checks the protocol: the first request of a connection must carry
 *     version=ATTR_PROTOCOL_VERSION, request_id= is an unsigned number;
 *     a violation is answered with error=TEXT and closes the connection;
 *   - calls handle() for each good request and writes the reply it built;
 *   - bounds every wait for a client by idle_timeout seconds;
 *   - signals: SIGTERM, SIGINT and SIGUSR1 end the loop once the request
 *     in hand is answered; SIGHUP is logged (new configuration takes
 *     effect in new processes); SIGPIPE is ignored; when master dies
 *     (its liveness pipe closes) the agent gets SIGTERM. Why blocked signals
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

#include <stdbool.h>
#include <stdint.h>

#include "base/str.h"
#include "daemon/daemon.h"

struct attr_list;

/* Handle one request (its request_id already checked). Append the whole
 * reply to reply (attribute lines and the closing attr_end(), or use
 * request_server_reply_error()). Return 0 to keep the connection, -1 to
 * close it after the reply is sent. */
typedef int request_handler_fn(void *ctx, struct attr_list *req, uint64_t request_id, str_t *reply);

struct request_server_spec {
	struct daemon_spec daemon; /* program, extra options */
	const char *service; /* socket name under private/ when run by hand */
	int idle_timeout; /* seconds a client may stay silent */
	/* Keep root even when master.cf's unpriv column says y or the agent
	 * runs by hand (virtual: it switches to each mailbox owner). */
	bool needs_root;
	/* After the listener is open and privileges are dropped: set the
	 * agent up (fatal on error). */
	void (*init)(struct daemon *d, void *ctx);
	request_handler_fn *handle;
	/* After the loop: free what init made. May be NULL. */
	void (*finish)(struct daemon *d, void *ctx);
	void *ctx;
};

/* The whole life of an agent: daemon_init() (options, configuration,
 * logging, master's liveness pipe), the listener, the privilege drop
 * (daemon_drop_privileges), the pid file, init, "daemon started", the
 * accept loop until a stop signal or master's death, finish. Returns the
 * exit status for main(). */
int request_server_main(const struct request_server_spec *spec, int argc, char **argv);

/* Replace reply with an error=TEXT reply for request_id, and log it. */
void request_server_reply_error(str_t *reply, uint64_t request_id, const char *text);

#endif
