/* master_service.c - the master's services: listeners, children, restarts.
 *
 * Used by master.c. For each master.cf service whose program exists it
 * keeps a number of process slots filled: an inet service gets its
 * listening sockets bound here (before any privilege drop, so ports
 * below 1024 work) and handed to each child as "-l FD"; every child runs
 * "PROGRAM -c DIR [-v...] [-e] -s SERVICE -m FD [-l FD...] [ARGS]"
 * (-m: the liveness pipe, daemon.h).
 *
 * How many processes: an inet service runs min(maxproc, CPUs) processes
 * sharing its sockets (maxproc "-" is default_process_limit, 0 is no
 * limit). Why not maxproc processes as Postfix does: Postfix's smtpd
 * serves one client per process, postern's smtpd is event-driven and
 * serves thousands per process, so more processes than CPUs only cost
 * memory.
 *
 * The event-driven delivery agents (smtp, lmtp) are counted like an
 * inet service: min(maxproc, CPUs).
 *
 * A unix service gets a stream socket bound here at
 * queue_directory/private/NAME (mode 0600), or public/NAME (mode 0666:
 * wake-up sockets such as public/pickup and public/qmgr) when its
 * private column says n, handed over with "-l FD" like an inet
 * listener. It runs maxproc processes when master.cf gives a number, and
 * min(default_process_limit, 4 x CPUs) for "-". Why prefork rather than
 * Postfix's spawn on demand: a delivery agent process is small and serves
 * one delivery at a time, a full pool costs little, and the socket's
 * backlog queues what the pool cannot take yet; deliveries wait on fsync,
 * not CPU, hence several per CPU.
 *
 * Restarts: a child that dies is logged as Postfix's master does
 * ("warning: process PATH pid N exit status S" / "killed by signal S";
 * exit status 0 is not a warning) and restarted after a delay that
 * starts at 1 s and doubles up to 60 s, back to 1 s once a child ran for
 * 60 s: a daemon that cannot start costs one fork a minute, never a
 * crash loop. A child that exits 0 retired (max_use, max_idle) and is
 * replaced at once. A child that exits with an error status within 5 s of its
 * start is a bad startup, as Postfix's master calls it: "warning: PATH:
 * bad command startup -- throttling", logged once per interval, and no
 * process of that service starts again before service_throttle_time.
 * Each child gets PR_SET_PDEATHSIG(SIGTERM), set after the privilege
 * drop, as a second safety besides the liveness pipe.
 *
 * Failure: a listener that cannot be bound fails master_services_load()
 * with the reason (fatal at startup, a warning and the old configuration
 * kept at reload). A fork that fails is retried like a child that died.
 *
 * SECURITY: runs as whoever started master (root in production). Run as
 * root, master gives the unix sockets and their directories to
 * mail_owner, and each child whose master.cf "unpriv" column is y (or -)
 * drops to mail_owner (privilege_drop(): setgroups, setgid, setuid,
 * checked) between fork and exec, after its listeners were bound. Only a
 * service whose unpriv column says n keeps root (virtual, which becomes
 * the mailbox owner itself). pickup is unprivileged like any other: the
 * setgid postdrop helper writes maildrop files it can read
 * (server/postdrop).
 */
#include "master.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "conf/config.h"
#include "daemon/privfiles.h"
#include "daemon/daemon.h"
#include "daemon/listen.h"
#include "daemon/pidfile.h"
#include "daemon/privilege.h"
#include "conf/mastercf.h"
#include "daemon/trigger.h"

#define MASTER_BACKLOG 511
#define MASTER_BACKOFF_MAX 60
#define MASTER_RUN_RESET 60
#define MASTER_AGENTS_PER_CPU 4
#define MASTER_STARTUP_WINDOW 5

static void listener_close(struct master_listener **lp)
{
	struct master_listener *l = *lp;

	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n_fds; i++)
		close(l->fds[i]);
	free(l->fds);
	free(l->key);
	free(l);
	*lp = NULL;
}

/* The socket path of a unix service: queue_directory/private/NAME or
 * public/NAME. Owned by the caller. */
static char *unix_service_path(struct config *cfg, const struct master_service *svc)
{
	return xasprintf("%s/%s/%s", config_str(cfg, "queue_directory"),
	                 svc->private_ ? "private" : "public", svc->name);
}

/* Bind a unix service's socket, creating private/ (0700) or public/
 * (0755) under queue_directory when missing; both owned by owner_uid
 * unless that is -1. */
static struct master_listener *listener_bind_unix(const struct master_service *svc, const char *key,
                                                  uid_t owner_uid, gid_t owner_gid, str_t *error)
{
	const char *path = key + strlen("unix:");
	char *dir = xstrdup(path);
	struct master_listener *l;
	int fd;

	*strrchr(dir, '/') = '\0';
	if (mkdir(dir, svc->private_ ? 0700 : 0755) < 0 && errno != EEXIST) {
		str_appendf(error, "service %s: mkdir %s: %s", svc->name, dir, strerror(errno));
		free(dir);
		return NULL;
	}
	free(dir);
	fd = unix_listen(path, svc->private_ ? 0600 : 0666, MASTER_BACKLOG, error);
	if (fd < 0)
		return NULL;
	/* Unprivileged clients (qmgr) connect to it. */
	if (owner_uid != (uid_t)-1) {
		char *parent = xstrdup(path);

		*strrchr(parent, '/') = '\0';
		if (chown(parent, owner_uid, owner_gid) < 0 ||
		    chown(path, owner_uid, owner_gid) < 0) {
			str_appendf(error, "service %s: chown %s: %s", svc->name, path,
			            strerror(errno));
			free(parent);
			close(fd);
			return NULL;
		}
		free(parent);
	}
	/* Children block in accept() or use their own event loop: the
	 * socket is shared, so each one sets its own mode. */
	l = xcalloc(1, sizeof(*l));
	l->key = xstrdup(key);
	l->fds = xcalloc(1, sizeof(int));
	l->fds[0] = fd;
	l->n_fds = 1;
	log_debug(1, "service %s: listening on %s", svc->name, path);
	return l;
}

/* Bind host:port (host NULL: every address): listen.h. */
static struct master_listener *listener_bind(const struct master_service *svc, str_t *error)
{
	struct master_listener *l = xcalloc(1, sizeof(*l));

	l->key = xasprintf("%s:%s", svc->host != NULL ? svc->host : "*", svc->port);
	if (listen_inet(svc->name, svc->host, svc->port, MASTER_BACKLOG, &l->fds, &l->n_fds,
	                error) < 0) {
		listener_close(&l);
		return NULL;
	}
	log_debug(1, "service %s: listening on %s", svc->name, l->key);
	return l;
}

static struct master_listener *listener_get(struct master *m, struct config *cfg,
                                            const struct master_service *svc, str_t *error)
{
	char *key, *path = NULL;
	struct master_listener *l;

	if (svc->type_id == MASTER_TYPE_UNIX) {
		path = unix_service_path(cfg, svc);
		key = xasprintf("unix:%s", path);
		free(path);
	} else {
		key = xasprintf("%s:%s", svc->host != NULL ? svc->host : "*", svc->port);
	}

	for (size_t i = 0; i < m->n_listeners; i++) {
		if (strcmp(m->listeners[i]->key, key) == 0) {
			free(key);
			return m->listeners[i];
		}
	}
	l = svc->type_id == MASTER_TYPE_UNIX
	            ? listener_bind_unix(svc, key, m->privileged ? m->owner_uid : (uid_t)-1,
	                                 m->owner_gid, error)
	            : listener_bind(svc, error);
	free(key);
	if (l == NULL)
		return NULL;
	m->listeners = xreallocarray(m->listeners, m->n_listeners + 1, sizeof(l));
	m->listeners[m->n_listeners++] = l;
	return l;
}

/* The smtp client (smtp, lmtp) serves many deliveries per process, like
 * smtpd: one process per CPU is enough, and fewer processes keep more
 * of its connection cache in one place. */
static bool event_driven_agent(const char *command)
{
	const char *base = strrchr(command, '/');

	base = base != NULL ? base + 1 : command;
	return strcmp(base, "smtp") == 0 || strcmp(base, "lmtp") == 0;
}

/* Close listeners that no service in svcs uses. */
static void listeners_gc(struct master *m)
{
	size_t keep = 0;

	for (size_t i = 0; i < m->n_listeners; i++) {
		struct master_listener *l = m->listeners[i];
		bool used = false;

		for (size_t j = 0; j < m->n_svcs && !used; j++)
			used = m->svcs[j]->listener == l;
		if (used)
			m->listeners[keep++] = l;
		else
			listener_close(&l);
	}
	m->n_listeners = keep;
}

static void svc_free(struct master_svc **sp)
{
	struct master_svc *s = *sp;

	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n_slots; i++)
		if (s->slots[i].restart_ev != NULL)
			event_free(s->slots[i].restart_ev);
	free(s->slots);
	strv_free(&s->args);
	strv_free(&s->priv_files);
	free(s->program);
	free(s->command);
	free(s->name);
	free(s->type);
	free(s);
	*sp = NULL;
}

static void slot_on_restart(evutil_socket_t fd, short what, void *arg);

static struct master_svc *svc_new(struct master *m, struct config *cfg,
                                  const struct master_service *ms, size_t n_slots, char *program)
{
	struct master_svc *s = xcalloc(1, sizeof(*s));
	struct config *svc_cfg = mastercf_service_config(cfg, ms);

	s->m = m;
	s->name = xstrdup(ms->name);
	s->type = xstrdup(ms->type);
	s->command = xstrdup(ms->command);
	s->unpriv = ms->unpriv;
	s->program = program;
	for (size_t i = 0; i < ms->argv.n; i++)
		strv_add(&s->args, ms->argv.v[i]);
	privfiles_collect(svc_cfg, ms->command, &s->priv_files);
	config_destroy(&svc_cfg);
	s->n_slots = n_slots;
	s->slots = xcalloc(n_slots, sizeof(*s->slots));
	for (size_t i = 0; i < n_slots; i++) {
		s->slots[i].svc = s;
		s->slots[i].backoff = 1;
		s->slots[i].restart_ev = evtimer_new(m->base, slot_on_restart, &s->slots[i]);
		if (s->slots[i].restart_ev == NULL)
			log_fatal("cannot create a timer event");
	}
	return s;
}

int master_services_load(struct master *m, struct config *cfg, const struct master_conf *conf,
                         str_t *error)
{
	struct master_svc **svcs = NULL, **old;
	size_t n = 0, n_old;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	long default_limit = config_int(cfg, "default_process_limit");

	if (ncpu < 1)
		ncpu = 1;
	for (size_t i = 0; i < conf->n; i++) {
		const struct master_service *ms = &conf->services[i];
		long limit = mastercf_process_limit(ms, default_limit);
		char *program = ms->command[0] == '/' ? xstrdup(ms->command)
		                                      : daemon_program_path(cfg, ms->command);
		struct master_listener *l = NULL;
		size_t n_slots;

		if (access(program, X_OK) != 0) {
			log_warning("service %s: program %s not found: not started", ms->name,
			            program);
			free(program);
			continue;
		}
		if (ms->type_id == MASTER_TYPE_INET || ms->type_id == MASTER_TYPE_UNIX) {
			l = listener_get(m, cfg, ms, error);
			if (l == NULL) {
				free(program);
				for (size_t j = 0; j < n; j++)
					svc_free(&svcs[j]);
				free(svcs);
				listeners_gc(m);
				return -1;
			}
			if (ms->type_id == MASTER_TYPE_INET || event_driven_agent(ms->command))
				n_slots = (size_t)(limit == 0 || limit > ncpu ? ncpu : limit);
			else if (ms->maxproc > 0)
				n_slots = (size_t)ms->maxproc;
			else
				n_slots =
				        (size_t)(limit == 0 || limit > ncpu * MASTER_AGENTS_PER_CPU
				                         ? ncpu * MASTER_AGENTS_PER_CPU
				                         : limit);
		} else {
			log_warning("service %s: type %s is not supported yet: not started",
			            ms->name, ms->type);
			free(program);
			continue;
		}
		svcs = xreallocarray(svcs, n + 1, sizeof(*svcs));
		svcs[n] = svc_new(m, cfg, ms, n_slots, program);
		svcs[n]->listener = l;
		n++;
	}
	/* Retire the services that ran until now: their children finish
	 * what they hold and exit (smtpd: established sessions go on), the
	 * new children take over the same listening sockets. */
	old = m->svcs;
	n_old = m->n_svcs;
	for (size_t i = 0; i < n_old; i++) {
		for (size_t j = 0; j < old[i]->n_slots; j++) {
			pid_t pid = old[i]->slots[j].pid;

			if (pid <= 0)
				continue;
			(void)kill(pid, SIGUSR1);
			m->retired = xreallocarray(m->retired, m->n_retired + 1, sizeof(pid_t));
			m->retired[m->n_retired++] = pid;
		}
		svc_free(&old[i]);
	}
	free(old);
	m->svcs = svcs;
	m->n_svcs = n;
	listeners_gc(m);
	return 0;
}

/* In the child, between fork and exec: never returns. master is the
 * parent's PID. */
static void spawn_exec(struct master_slot *slot, pid_t master)
{
	struct master_svc *s = slot->svc;
	struct daemon *d = s->m->d;
	strv_t argv = STRV_INIT;
	sigset_t none;

	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	strv_add(&argv, s->program);
	strv_add(&argv, "-c");
	strv_add(&argv, d->config_dir);
	for (int i = 0; i < d->verbose; i++)
		strv_add(&argv, "-v");
	if (d->log_stderr)
		strv_add(&argv, "-e");
	strv_add(&argv, "-s");
	strv_add(&argv, s->name);
	if (s->m->alive_fd >= 0) {
		char *num = xasprintf("%d", s->m->alive_fd);

		(void)fcntl(s->m->alive_fd, F_SETFD, 0); /* this program only */
		strv_add(&argv, "-m");
		strv_add(&argv, num);
		free(num);
	}
	if (s->listener != NULL) {
		for (size_t i = 0; i < s->listener->n_fds; i++) {
			int fd = s->listener->fds[i];
			char *num = xasprintf("%d", fd);

			(void)fcntl(fd, F_SETFD, 0); /* inherited by this program only */
			strv_add(&argv, "-l");
			strv_add(&argv, num);
			free(num);
		}
	}
	/* Still root here (when master is): the key files only root may
	 * read, handed over open (privfiles.h). */
	privfiles_open(&s->priv_files, &argv);
	for (size_t i = 0; i < s->args.n; i++)
		strv_add(&argv, s->args.v[i]);
	if (s->m->privileged && s->unpriv) {
		str_t error;

		str_init(&error);
		if (privilege_drop(s->m->owner_uid, s->m->owner_gid, (gid_t)-1, &error) < 0) {
			log_error("cannot drop privileges to mail_owner for %s: %s", s->program,
			          str_c(&error));
			_exit(1);
		}
		str_free(&error);
	}
	/* A second safety besides the liveness pipe: SIGTERM when master
	 * dies (a daemon whose master is gone drains on SIGTERM, daemon.c).
	 * Set after the privilege drop, which clears it, and checked
	 * against a master that died before this line ran. A daemon that
	 * drops privileges itself (unpriv n) loses it then; the pipe stays. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != master)
		_exit(1);
	execv(s->program, argv.v);
	log_error("cannot run %s: %m", s->program);
	_exit(1);
}

/* Restart slot in secs seconds. */
static void slot_schedule_in(struct master_slot *slot, unsigned secs)
{
	struct timeval tv = {(time_t)secs, 0};

	evtimer_add(slot->restart_ev, &tv);
	log_debug(1, "service %s: restart in %us", slot->svc->name, secs);
}

static void slot_schedule(struct master_slot *slot)
{
	struct timeval tv = {(time_t)slot->backoff, 0};

	evtimer_add(slot->restart_ev, &tv);
	log_debug(1, "service %s: restart in %us", slot->svc->name, slot->backoff);
	slot->backoff =
	        slot->backoff * 2 > MASTER_BACKOFF_MAX ? MASTER_BACKOFF_MAX : slot->backoff * 2;
}

static void slot_spawn(struct master_slot *slot)
{
	pid_t master = getpid();
	pid_t pid = fork();

	if (pid < 0) {
		log_warning("service %s: fork: %m", slot->svc->name);
		slot_schedule(slot);
		return;
	}
	if (pid == 0)
		spawn_exec(slot, master);
	slot->pid = pid;
	slot->started = time(NULL);
	log_debug(1, "service %s: started %s pid %ld", slot->svc->name, slot->svc->program,
	          (long)pid);
}

static void slot_on_restart(evutil_socket_t fd, short what, void *arg)
{
	struct master_slot *slot = arg;

	(void)fd;
	(void)what;
	if (slot->svc->m->stopping || slot->pid != 0)
		return;
	log_info("service %s: respawning", slot->svc->name);
	slot_spawn(slot);
}

void master_services_start(struct master *m)
{
	for (size_t i = 0; i < m->n_svcs; i++)
		for (size_t j = 0; j < m->svcs[i]->n_slots; j++) {
			struct master_slot *slot = &m->svcs[i]->slots[j];

			if (slot->pid == 0 && !evtimer_pending(slot->restart_ev, NULL))
				slot_spawn(slot);
		}
}

static void log_status(const char *program, pid_t pid, int status)
{
	if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
		log_warning("process %s pid %ld exit status %d", program, (long)pid,
		            WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		log_warning("process %s pid %ld killed by signal %d", program, (long)pid,
		            WTERMSIG(status));
}

static bool retired_remove(struct master *m, pid_t pid)
{
	for (size_t i = 0; i < m->n_retired; i++) {
		if (m->retired[i] == pid) {
			m->retired[i] = m->retired[--m->n_retired];
			return true;
		}
	}
	return false;
}

/* Why these count as a bad startup: a daemon that exits with an error
 * status within seconds of its start failed before serving anything,
 * almost always for a reason in the configuration or the files it
 * reads (log_fatal exits 1); restarting it at once would only repeat
 * that. Killed by a signal is a crash, not a startup failure: it gets
 * the usual backoff. */
static bool bad_startup(const struct master_slot *slot, int status)
{
	return WIFEXITED(status) && WEXITSTATUS(status) != 0 &&
	       time(NULL) - slot->started < MASTER_STARTUP_WINDOW;
}

/* Postfix's master: "warning: PATH: bad command startup -- throttling",
 * once per service_throttle_time, and no restart of any process of the
 * service before it is over. */
static void throttle(struct master_slot *slot)
{
	struct master_svc *s = slot->svc;
	time_t now = time(NULL);
	uint64_t wait = config_time(s->m->main_cfg, "service_throttle_time");

	if (wait < 1)
		wait = 1;
	if (s->throttled_until <= now) {
		log_warning("%s: bad command startup -- throttling", s->program);
		s->throttled_until = now + (time_t)wait;
	}
	slot_schedule_in(slot, (unsigned)(s->throttled_until - now));
}

static void reaped(struct master *m, pid_t pid, int status)
{
	if (retired_remove(m, pid)) {
		log_status("(retired)", pid, status);
		return;
	}
	for (size_t i = 0; i < m->n_svcs; i++) {
		struct master_svc *s = m->svcs[i];

		for (size_t j = 0; j < s->n_slots; j++) {
			struct master_slot *slot = &s->slots[j];

			if (slot->pid != pid)
				continue;
			log_status(s->program, pid, status);
			pidfile_remove_stale(config_str(m->main_cfg, "queue_directory"), s->command,
			                     s->name, pid);
			slot->pid = 0;
			if (!m->stopping && bad_startup(slot, status)) {
				throttle(slot);
				return;
			}
			if (m->stopping)
				return;
			/* Exit status 0 is a daemon that retired (max_idle,
			 * max_use) after doing its work: replaced at the next
			 * turn of the loop. Why not after the 1 s of a restart:
			 * with a small max_use every slot would serve a burst
			 * at one connection per second. */
			if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
				slot->backoff = 1;
				slot_schedule_in(slot, 0);
				return;
			}
			if (time(NULL) - slot->started >= MASTER_RUN_RESET)
				slot->backoff = 1;
			slot_schedule(slot);
			return;
		}
	}
}

void master_reap(struct master *m)
{
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		reaped(m, pid, status);
}

static size_t signal_all(struct master *m, int sig)
{
	size_t n = 0;

	for (size_t i = 0; i < m->n_svcs; i++)
		for (size_t j = 0; j < m->svcs[i]->n_slots; j++)
			if (m->svcs[i]->slots[j].pid > 0 &&
			    kill(m->svcs[i]->slots[j].pid, sig) == 0)
				n++;
	for (size_t i = 0; i < m->n_retired; i++)
		if (kill(m->retired[i], sig) == 0)
			n++;
	return n;
}

void master_kill_all(struct master *m, unsigned timeout)
{
	m->stopping = true;
	if (signal_all(m, SIGTERM) == 0)
		return;
	for (unsigned i = 0; i < timeout * 10; i++) {
		struct timespec ts = {0, 100 * 1000 * 1000};

		master_reap(m);
		if (signal_all(m, 0) == 0)
			return;
		nanosleep(&ts, NULL);
	}
	log_warning("children still running after %us: killing them", timeout);
	(void)signal_all(m, SIGKILL);
	for (unsigned i = 0; i < 50; i++) {
		struct timespec ts = {0, 100 * 1000 * 1000};

		master_reap(m);
		if (signal_all(m, 0) == 0)
			return;
		nanosleep(&ts, NULL);
	}
}

void master_services_free(struct master *m)
{
	for (size_t i = 0; i < m->n_svcs; i++)
		svc_free(&m->svcs[i]);
	free(m->svcs);
	m->svcs = NULL;
	m->n_svcs = 0;
	listeners_gc(m);
	free(m->listeners);
	m->listeners = NULL;
	free(m->retired);
	m->retired = NULL;
	m->n_retired = 0;
}
