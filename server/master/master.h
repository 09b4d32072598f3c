/* master.h - the master process's state, shared by master.c (main,
 * lock, pid file, signals, reload) and master_service.c (listeners,
 * children, restarts).
 */
#ifndef POSTERN_MASTER_H
#define POSTERN_MASTER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "base/str.h"
#include "base/strv.h"

struct config;
struct daemon;
struct event;
struct event_base;
struct master_conf;
struct master_svc;

/* One listening address of an inet service, kept across reloads so the
 * port is never closed while a service still wants it. */
struct master_listener {
	char *key; /* "host:port" ("*:port" for all addresses) */
	int *fds;
	size_t n_fds;
	bool wanted; /* used by the configuration being loaded */
};

/* One process of a service: a slot that is refilled when it dies. */
struct master_slot {
	struct master_svc *svc;
	pid_t pid; /* 0 while waiting for a restart */
	time_t started;
	unsigned backoff; /* seconds before the next restart */
	struct event *restart_ev;
};

struct master_svc {
	struct master *m;
	char *name; /* "smtp", "127.0.0.1:10025" */
	char *type; /* "inet", "unix" */
	char *program; /* full path */
	char *command; /* as master.cf says ("pickup") */
	bool unpriv; /* the unpriv column: drop to mail_owner */
	strv_t args; /* service arguments after the options */
	strv_t priv_files; /* files opened as root for each child (privfiles.h) */
	struct master_listener *listener; /* inet only */
	struct master_slot *slots;
	size_t n_slots;
	time_t throttled_until; /* bad command startup: no restart before this */
};

struct master {
	struct daemon *d;
	struct event_base *base;
	struct config *main_cfg; /* the configuration now running */
	struct master_svc **svcs;
	size_t n_svcs;
	struct master_listener **listeners;
	size_t n_listeners;
	bool privileged; /* running as root: children drop to mail_owner */
	uid_t owner_uid; /* mail_owner, when privileged */
	gid_t owner_gid;
	pid_t *retired; /* children told to drain at a reload, not restarted */
	size_t n_retired;
	bool stopping;
	int alive_fd; /* read end of the liveness pipe, passed as -m FD */
	int alive_wfd; /* write end: held, never written; closes when master dies */
	char *pid_dir; /* queue_directory/pid: master.pid, master.lock, master.reload */
	unsigned long reload_seq; /* reloads so far, in master.reload */
	struct event *tickets_ev; /* the next TLS ticket key rotation */
};

/* Make the services of conf (with main.cf cfg) the running ones: bind
 * new inet listeners, reuse those already open, skip services whose
 * program is missing (one warning each). The services that ran before
 * (a reload) are retired: their children get SIGUSR1 (drain: finish
 * what is in hand, then exit) and are not restarted. Listeners no
 * service wants any more are closed. On error (a listener cannot be
 * bound) returns -1 with the reason in error and changes nothing. */
int master_services_load(struct master *m, struct config *cfg, const struct master_conf *conf,
                         str_t *error);
/* Start every slot that has no process and no pending restart. */
void master_services_start(struct master *m);
/* Reap dead children (SIGCHLD): log why they died, schedule restarts. */
void master_reap(struct master *m);
/* Stop: SIGTERM to every child, wait up to timeout seconds, SIGKILL the
 * rest, reap them all. */
void master_kill_all(struct master *m, unsigned timeout);
/* Free services and listeners. */
void master_services_free(struct master *m);

/* master_tls.c: write the smtpd TLS ticket key file now if it needs a
 * new key (at start, before the children; again after a reload) and
 * schedule the next rotation. */
void master_tls_tickets(struct master *m);
void master_tls_free(struct master *m);

#endif
