/* event_server.h - the skeleton of postern's event-driven daemons
 * (smtpd, qmgr, pickup; Postfix's event_server.c and trigger_server.c in
 * one).
 *
 * A daemon's main() fills a struct event_server_spec (its name, how it
 * listens, its callbacks) and returns event_server_main(). The skeleton:
 *
 *   1. daemon_init(): options, main.cf, master.cf, logging (daemon.h);
 *   2. the event loop and signals: SIGTERM/SIGINT stop, SIGHUP reload,
 *      SIGUSR1 drain;
 *   3. listeners: the descriptors master handed over (-l FD), else,
 *      run by hand, binds them itself: a stream server every master.cf
 *      inet service whose command is the program (each with its -o
 *      overrides; -s SERVICE picks one), or spec.default_port with main.cf
 *      alone; a trigger server queue_directory/spec.default_socket;
 *   4. the privilege drop (daemon_drop_privileges): after binding (ports
 *      below 1024) and before any callback, so the service never runs
 *      with root it does not need;
 *   5. the pid file, then spec.init and spec.listener_init for each
 *      listener, then "daemon started -- version V, configuration DIR";
 *   6. accepts: a stream server hands each connection to spec.on_accept;
 *      a trigger server reads the wake-up bytes, closes the connection
 *      and calls spec.on_trigger;
 *   7. limits, under master only (listeners handed over; nothing would
 *      restart a daemon run by hand): after max_use connections, or
 *      max_idle seconds with no work, the daemon drains and exits and
 *      master starts a fresh one. spec.long_lived daemons (qmgr, pickup)
 *      ignore both, as Postfix's queue manager does;
 *   8. drain (SIGUSR1 from master at a reload, master gone, max_use):
 *      listeners stop accepting, spec.on_drain is told, and the daemon
 *      exits once the service calls event_server_idle() (or at once when
 *      it has no on_drain);
 *   9. master gone (-m FD closes): drain as above.
 *
 * Failure: everything before the loop runs is fatal with a message
 * naming what was wrong (daemon.h); in the loop, a failing accept pauses
 * that listener for a second (descriptors run out under load) and is
 * logged.
 */
#ifndef POSTERN_EVENT_SERVER_H
#define POSTERN_EVENT_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "daemon/daemon.h"

struct event_server;
struct config;

enum event_server_mode {
	EVENT_SERVER_STREAM, /* each connection is a client: on_accept */
	EVENT_SERVER_TRIGGER, /* each connection is a wake-up: on_trigger */
};

struct event_server_spec {
	struct daemon_spec daemon; /* program, extra options */
	enum event_server_mode mode;
	const char *default_port; /* stream, by hand, no master.cf service: "smtp" */
	const char *default_socket; /* trigger, by hand: "public/qmgr" under the queue;
	                             * stream with no default_port: "private/smtp" */
	bool needs_root; /* keep root even when unpriv says y (no event server does) */
	bool long_lived; /* max_idle and max_use do not apply */
	/* After the privilege drop: set the service up (fatal on error). */
	void (*init)(struct event_server *srv, void *ctx);
	/* Stream: for each listener (a master.cf service), after init; cfg
	 * is that service's configuration (the callee takes ownership).
	 * Returns the listener's context passed to on_accept. */
	void *(*listener_init)(struct event_server *srv, const char *service, struct config *cfg,
	                       void *ctx);
	/* Stream: a new connection (non-blocking, close-on-exec); the
	 * callee owns fd. */
	void (*on_accept)(struct event_server *srv, void *listener_ctx, int fd, struct sockaddr *sa,
	                  int salen);
	/* Trigger: woken up; mask of TRIGGER_MASK() bits seen (trigger.h). */
	void (*on_trigger)(struct event_server *srv, unsigned mask, void *ctx);
	/* SIGTERM/SIGINT, before the loop ends; may be NULL. */
	daemon_signal_fn *on_stop;
	/* SIGHUP; NULL: "reload is not supported yet". */
	daemon_signal_fn *on_reload;
	/* Drain began: take no new work; call event_server_idle() when the
	 * work in hand is done. NULL: exit at once. */
	void (*on_drain)(struct event_server *srv, void *ctx);
	/* After the loop: free what init made. May be NULL. */
	void (*finish)(struct event_server *srv, void *ctx);
	void *ctx;
};

/* Run the daemon (steps above); returns main()'s exit status. */
int event_server_main(const struct event_server_spec *spec, int argc, char **argv);

/* The daemon (configuration, event base: d->base) of a running server. */
struct daemon *event_server_daemon(struct event_server *srv);

/* The service has no work in hand (smtpd: its last session ended).
 * Draining: the daemon exits. Otherwise, under master, the max_idle
 * timer starts. Call as often as convenient. */
void event_server_idle(struct event_server *srv);

/* The service has work in hand again (stops the max_idle timer). A new
 * connection does this by itself. */
void event_server_busy(struct event_server *srv);

/* Is the server draining (no new work may be taken)? */
bool event_server_draining(const struct event_server *srv);

#endif
