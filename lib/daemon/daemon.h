/* daemon.h - the skeleton every postern daemon's main() is built on.
 *
 * A daemon's main() declares what it is (struct daemon_spec) and calls
 * daemon_init(); the skeleton does the rest that every daemon shares
 * (Postfix's single_server.c / event_server.c, much smaller):
 *
 *   - options: -c DIR (configuration directory; default $MAIL_CONFIG or
 *     the built-in one), -v (more verbose logging, repeatable), -s SERVICE
 *     (the master.cf service this process runs as: "smtp", "pickup",
 *     "127.0.0.1:10025"; its -o overrides apply), -m FD, -R (below),
 *     -f FD:PATH (a file master opened as root for this daemon,
 *     privfiles.h), -l FD (a listening
 *     socket handed over by master, repeatable; when given, the daemon
 *     serves those instead of binding sockets itself), -e (log to stderr
 *     when maillog_file is not set; for running in the foreground), plus
 *     the daemon's own letters (spec->extra_options);
 *   - configuration: main.cf, then master.cf (a missing master.cf is an
 *     empty one), then the service's -o overrides when -s was given;
 *   - logging: syslog_name, syslog_facility, maillog_file, as
 *     "<syslog_name>/<program>[pid]" (log_config.h);
 *   - signals (daemon_event_base): SIGTERM and SIGINT stop the event loop
 *     (SIGUSR1 too, or a graceful drain: daemon_set_drain)
 *     after the daemon's stop callback, SIGHUP calls the reload callback
 *     (or logs that reload is not supported yet), SIGPIPE is ignored.
 *
 * Failure: broken configuration (unreadable main.cf, a bad master.cf, an
 * unknown -s service, bad options) is fatal: a message on stderr and in
 * the log, exit status 1 (EX_USAGE 64 for a bad command line). Nothing in
 * here fails later on.
 *
 *   - privileges (daemon_drop_privileges, privilege.h): started as root,
 *     a daemon drops to mail_owner (setgroups, setgid, setuid, checked)
 *     before it serves anything, unless its master.cf unpriv column is n,
 *     its program needs root (pickup, for now) or -R (debugging only)
 *     says otherwise; master drops unpriv children itself before exec;
 *   - -m FD: master's liveness pipe. Master keeps the write end and
 *     nobody writes to it: when master dies, however it dies, the pipe
 *     reports end-of-file in every child. The event-server skeleton
 *     drains and exits then; other daemons get SIGTERM from a watcher
 *     thread. Why a pipe and not getppid() or PR_SET_PDEATHSIG alone: no
 *     race with a master that died before the child looked, no polling,
 *     and PDEATHSIG is cleared by the very uid changes daemons make.
 *     master still sets PDEATHSIG(SIGTERM) after its own drop, as a
 *     second safety; a SIGTERM that arrives once master is gone drains
 *     (finish what is in hand) like the pipe does, instead of stopping;
 *   - pid files (daemon_write_pid, pidfile.h).
 *
 * Not yet: chroot (master.cf chroot column is accepted and ignored).
 */
#ifndef POSTERN_DAEMON_H
#define POSTERN_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "base/str.h"

struct config;
struct master_conf;
struct master_service;
struct event;
struct event_base;
struct daemon;

/* Called for each of the daemon's own options (a letter from
 * spec->extra_options; arg is NULL for an option without argument).
 * Return 0, or -1 after printing what was wrong: usage error, exit 64. */
typedef int daemon_option_fn(int opt, const char *arg, void *ctx);

/* Called from the event loop on a signal. */
typedef void daemon_signal_fn(struct daemon *d, void *ctx);

struct daemon_spec {
	const char *program; /* "smtpd": the log name's second half */
	const char *extra_options; /* getopt letters beyond "c:vs:l:em:RV", or NULL */
	const char *extra_usage; /* shown after the common options, or NULL */
	bool watches_master; /* the caller watches -m FD itself (event_server.h);
	                      * otherwise a thread does and sends SIGTERM */
	daemon_option_fn *option; /* for extra_options; may be NULL */
	void *ctx;
};

struct daemon {
	const char *program;
	char *config_dir; /* -c DIR */
	char *service_name; /* -s SERVICE, or NULL */
	int verbose; /* number of -v */
	bool log_stderr; /* -e */
	bool stay_root; /* -R: do not drop root (debugging) */
	int master_fd; /* -m FD: master's liveness pipe, or -1 */
	int *listen_fds; /* -l FD..., in order given */
	size_t n_listen_fds;
	struct config *main_cfg; /* main.cf as read */
	struct master_conf *master; /* master.cf (no services when absent) */
	const struct master_service *service; /* the -s entry, or NULL */
	struct config *cfg; /* main.cf with the -s service's overrides (a
	                     * copy of main_cfg when no -s): the daemon's
	                     * configuration */
	struct event_base *base; /* after daemon_event_base() */
	/* private */
	struct event *sig_events[4];
	daemon_signal_fn *on_stop;
	daemon_signal_fn *on_drain;
	daemon_signal_fn *on_reload;
	void *sig_ctx;
	int exit_status;
	char *pid_path; /* daemon_write_pid() */
	pid_t pid_owner; /* the process that wrote it (not a forked child) */
};

/* Parse the command line, read main.cf and master.cf, apply the
 * service's overrides and open logging. Exits on any error (see above).
 * Returns the daemon, never NULL; free with daemon_destroy(). */
struct daemon *daemon_init(const struct daemon_spec *spec, int argc, char **argv);

/* Give up root for good, unless this process must keep it. Nothing
 * happens when it does not run as root (started by a user, or master
 * dropped already). As root it keeps root when needs_root (virtual,
 * which switches to each mailbox owner), when its -s service's unpriv column says n
 * (virtual), or with -R (logged as a warning: debugging only). Otherwise
 * it looks up mail_owner, gives it the queue directory, the pid
 * directory and maillog_file, and drops to it (privilege.h). Exits
 * (log_fatal) when mail_owner is missing or has uid 0, or when any step
 * fails: a daemon never serves as root by accident. */
void daemon_drop_privileges(struct daemon *d, bool needs_root);

/* Write this process's pid file (pidfile.h) under queue_directory/pid;
 * daemon_destroy() removes it. Exits (log_fatal) when it cannot. */
void daemon_write_pid(struct daemon *d);

/* The configuration a given master.cf service runs with: main.cf plus
 * that service's -o overrides (for a daemon that serves several
 * listeners in one process, like smtpd in the foreground). Owned by the
 * caller (config_destroy). */
struct config *daemon_service_config(struct daemon *d, const struct master_service *service);

/* Create the event loop (d->base) and install the signal events: SIGTERM
 * and SIGINT call on_stop (may be NULL) and then leave the loop; SIGHUP
 * calls on_reload, or logs "reload is not supported yet" when NULL.
 * SIGPIPE is ignored. Exits (log_fatal) when libevent cannot start. */
struct event_base *daemon_event_base(struct daemon *d, daemon_signal_fn *on_stop,
                                     daemon_signal_fn *on_reload, void *ctx);

/* Graceful stop (master's reload): on SIGUSR1, call on_drain, which
 * stops accepting new work and calls daemon_stop() once the work in
 * hand is done. A daemon that sets none treats SIGUSR1 like SIGTERM.
 * Call after daemon_event_base(). */
void daemon_set_drain(struct daemon *d, daemon_signal_fn *on_drain);

/* The path of a postern program ("smtpd", "master"): the one next to the
 * running binary (/proc/self/exe) when that exists and is executable
 * (running from the build tree), else $daemon_directory/NAME from cfg
 * (which may not exist: the caller checks). Owned by the caller. */
char *daemon_program_path(struct config *cfg, const char *name);

/* The PID of the master that holds queue_directory/pid/master.lock, read
 * from queue_directory/pid/master.pid; 0 when no master holds the lock
 * (not running), -1 when it is held but the pid file is unreadable. */
long daemon_master_pid(const char *queue_directory);

/* Run the loop until a stop signal or daemon_stop(); returns the exit
 * status for main() (0 unless daemon_stop() said otherwise). */
int daemon_run(struct daemon *d);

/* Leave the loop at its next turn with the given exit status. */
void daemon_stop(struct daemon *d, int exit_status);

/* Free everything; *dp set to NULL; no-op on NULL. */
void daemon_destroy(struct daemon **dp);

#endif
