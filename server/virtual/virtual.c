/* virtual.c - the virtual delivery agent: Maildir delivery for
 * virtual_mailbox_domains (Postfix virtual(8), Maildir only).
 *
 * `virtual -c DIR [-s virtual] [-l FD] [-v] [-e]`. master hands it the
 * listening socket of private/virtual with -l; started without -l (tests,
 * debugging) it binds queue_directory/private/virtual itself (mode 0600,
 * private/ made 0700 when missing). It serves the protocol of
 * lib/delivery/delivery.h: accept one connection, answer its requests in
 * order until the client closes it, then accept the next. One delivery at
 * a time; several processes may share the socket (master's process
 * limit).
 *
 * Per request: the queue file is opened read-only from the queue named
 * (the queue_id is checked with queue_id_valid(), never a path), every
 * recipient block is delivered by virtual_deliver.c, and one reply block
 * per recipient goes back. A request that cannot be served at all (bad
 * attributes, unreadable queue file) gets error=TEXT, which qmgr turns
 * into a deferral of every recipient. A malformed request or a wrong
 * version also closes the connection (attr.h: the stream position is
 * lost); the agent then accepts the next connection.
 *
 * Signals: SIGTERM, SIGINT and SIGUSR1 end the process with status 0 once
 * the request in hand is answered. Why blocked signals and ppoll(): they
 * are delivered only while the agent waits for a connection or for bytes,
 * so a delivery (write, fsync, link) is never interrupted half way and no
 * system call needs an EINTR retry. SIGHUP is logged: new configuration
 * takes effect in new processes. Every wait for a client is bounded
 * (VIRTUAL_IDLE_TIMEOUT): a silent client is dropped.
 *
 * SECURITY: the request comes from qmgr over a socket only the queue
 * owner can reach (private/, 0600); it is still parsed with bounded
 * limits (ATTR_LIMITS_DEFAULT, DELIVERY_RCPT_MAX recipients), and it names
 * a queue file by validated ID only. Started as root with virtual_uid_maps
 * and virtual_gid_maps both plain `static:N` tables (one owner for every
 * mailbox), it becomes that uid and gid for good before serving
 * (setgroups, setgid, setuid; then it checks that no real, effective or
 * saved id is root any more), provided that identity can read the queue
 * (queue_directory/active, owned by mail_owner): otherwise deliveries
 * would all fail, so it says so and keeps the per-delivery switch below.
 * Otherwise, run as root, the agent keeps root only to change its
 * effective identity to each mailbox owner around a delivery
 * (virtual_deliver.c); run as another user it delivers as that user
 * (test mode).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/attr.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/str.h"
#include "conf/config.h"
#include "daemon/daemon.h"
#include "delivery/delivery.h"
#include "delivery/delivery_log.h"
#include "delivery/mailbox_lookup.h"
#include "queue/queue_dir.h"
#include "queue/queue_file.h"
#include "queue/queue_id.h"
#include "daemon/trigger.h"
#include "sql/sql.h"
#include "table/maps.h"
#include "virtual.h"

/* Seconds a client may stay silent (between or inside requests) or
 * refuse to take a reply before the connection is closed. */
#define VIRTUAL_IDLE_TIMEOUT 60
#define VIRTUAL_READ_SIZE 16384

static volatile sig_atomic_t stop_signal;
static volatile sig_atomic_t hup_signal;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		hup_signal = 1;
	else
		stop_signal = sig;
}

/* The mask that holds the stop signals while the agent works, and the
 * one ppoll() opens while it waits. */
static sigset_t work_mask, wait_mask;

static void setup_signals(void)
{
	static const int sigs[] = {SIGTERM, SIGINT, SIGUSR1, SIGHUP};
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigemptyset(&work_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		sigaction(sigs[i], &sa, NULL);
		sigaddset(&work_mask, sigs[i]);
	}
	signal(SIGPIPE, SIG_IGN);
	if (sigprocmask(SIG_BLOCK, &work_mask, &wait_mask) < 0)
		log_fatal("sigprocmask: %m");
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigdelset(&wait_mask, sigs[i]);
}

/* Wait for events on fd with the stop signals open. 1 ready, 0 timeout
 * (timeout_s < 0: none), -1 interrupted by a signal or failed. */
static int wait_fd(int fd, short events, int timeout_s)
{
	struct pollfd p = {.fd = fd, .events = events};
	struct timespec ts = {.tv_sec = timeout_s, .tv_nsec = 0};
	int n;

	if (hup_signal) {
		hup_signal = 0;
		log_info("reload: configuration changes take effect in new virtual processes");
	}
	n = ppoll(&p, 1, timeout_s >= 0 ? &ts : NULL, &wait_mask);
	if (hup_signal) {
		hup_signal = 0;
		log_info("reload: configuration changes take effect in new virtual processes");
	}
	return n > 0 ? 1 : n;
}

/* ---- One connection ---- */

struct conn {
	int fd;
	bool versioned; /* the first request carried a good version= */
	struct attr_parser *parser;
	str_t reply;
};

/* Write the reply in full, each wait bounded. */
static int send_reply(struct conn *c)
{
	size_t off = 0;

	while (off < c->reply.len) {
		ssize_t n = write(c->fd, c->reply.buf + off, c->reply.len - off);

		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			log_warning("write reply: %m");
			return -1;
		}
		if (wait_fd(c->fd, POLLOUT, VIRTUAL_IDLE_TIMEOUT) == 0) {
			log_warning("timeout writing a reply to the client");
			return -1;
		}
	}
	return 0;
}

/* Append an error= reply for request_id. */
static void reply_error(struct conn *c, uint64_t request_id, const char *text)
{
	const char *why;

	log_warning("request %llu: %s", (unsigned long long)request_id, text);
	str_reset(&c->reply);
	attr_put_uint(&c->reply, ATTR_REQUEST_ID, request_id, &why);
	attr_put_str(&c->reply, DELIVERY_ATTR_ERROR, text, &why);
	attr_end(&c->reply);
}

struct rcpt_block {
	const char *id;
	const char *recipient;
	const char *orig;
};

/* Split the request's recipient blocks out; -1 with why set. */
static int parse_blocks(const struct attr_list *req, struct rcpt_block **blocks_r, size_t *n_r,
                        str_t *why)
{
	struct rcpt_block *b = NULL;
	size_t n = 0;

	for (size_t i = 0; i < req->n; i++) {
		const struct attr *a = &req->attrs[i];

		if (strcmp(a->name, DELIVERY_ATTR_RCPT_ID) == 0) {
			if (n == DELIVERY_RCPT_MAX) {
				str_appendf(why, "more than %d recipients", DELIVERY_RCPT_MAX);
				goto fail;
			}
			if (a->value[0] == '\0') {
				str_append(why, "empty rcpt_id");
				goto fail;
			}
			b = xreallocarray(b, n + 1, sizeof(*b));
			b[n++] = (struct rcpt_block){.id = a->value};
		} else if (strcmp(a->name, DELIVERY_ATTR_RECIPIENT) == 0 ||
		           strcmp(a->name, DELIVERY_ATTR_ORIG_RECIPIENT) == 0) {
			bool orig = a->name[0] == 'o';

			if (n == 0) {
				str_appendf(why, "%s before the first rcpt_id", a->name);
				goto fail;
			}
			if ((orig ? b[n - 1].orig : b[n - 1].recipient) != NULL) {
				str_appendf(why, "rcpt_id %s: %s given twice", b[n - 1].id,
				            a->name);
				goto fail;
			}
			if (orig)
				b[n - 1].orig = a->value;
			else
				b[n - 1].recipient = a->value;
		}
	}
	if (n == 0) {
		str_append(why, "no recipients (rcpt_id)");
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		if (b[i].recipient == NULL || b[i].recipient[0] == '\0') {
			str_appendf(why, "rcpt_id %s: no recipient", b[i].id);
			goto fail;
		}
	}
	*blocks_r = b;
	*n_r = n;
	return 0;
fail:
	free(b);
	return -1;
}

/* Serve one parsed request; the reply is left in c->reply. Returns -1
 * when the connection must be closed after the reply (version). */
static int handle_request(struct virtual_agent *va, struct conn *c, struct attr_list *req)
{
	uint64_t request_id = 0, active = 0;
	const char *value, *why_c;
	struct rcpt_block *blocks = NULL;
	struct queue_file *qf = NULL;
	enum queue_name queue;
	size_t n = 0;
	str_t why;
	int rc = 0;

	str_init(&why);
	if (attr_get(req, ATTR_REQUEST_ID) != NULL &&
	    attr_get_uint(req, ATTR_REQUEST_ID, 0, UINT64_MAX, &request_id, &why_c) < 0) {
		reply_error(c, 0, why_c);
		rc = -1;
		goto out;
	}
	value = attr_get(req, ATTR_VERSION);
	if (!c->versioned || value != NULL) {
		if (value == NULL || strcmp(value, ATTR_PROTOCOL_VERSION) != 0) {
			str_appendf(&why, "unsupported protocol version \"%s\" (expected %s)",
			            value != NULL ? value : "", ATTR_PROTOCOL_VERSION);
			reply_error(c, request_id, str_c(&why));
			rc = -1;
			goto out;
		}
		c->versioned = true;
	}
	if (attr_get(req, ATTR_REQUEST_ID) == NULL) {
		reply_error(c, 0, "missing request_id");
		rc = -1;
		goto out;
	}
	value = attr_get(req, DELIVERY_ATTR_REQUEST);
	if (value == NULL || strcmp(value, DELIVERY_REQUEST) != 0) {
		str_appendf(&why, "unknown request \"%s\" (expected %s)",
		            value != NULL ? value : "", DELIVERY_REQUEST);
		reply_error(c, request_id, str_c(&why));
		goto out;
	}
	value = attr_get(req, DELIVERY_ATTR_QUEUE_NAME);
	if (value == NULL || queue_name_parse(value, &queue) < 0 ||
	    (int)queue >= QUEUE_MESSAGE_QUEUES || queue == QUEUE_CORRUPT) {
		str_appendf(&why, "bad queue_name \"%s\"", value != NULL ? value : "");
		reply_error(c, request_id, str_c(&why));
		goto out;
	}
	value = attr_get(req, DELIVERY_ATTR_QUEUE_ID);
	if (value == NULL || !queue_id_valid(value)) {
		str_appendf(&why, "bad queue_id \"%s\"", value != NULL ? value : "");
		reply_error(c, request_id, str_c(&why));
		goto out;
	}
	if (attr_get(req, DELIVERY_ATTR_TIME_ACTIVE) != NULL &&
	    attr_get_uint(req, DELIVERY_ATTR_TIME_ACTIVE, 0, INT64_MAX, &active, &why_c) < 0) {
		reply_error(c, request_id, why_c);
		goto out;
	}
	if (parse_blocks(req, &blocks, &n, &why) < 0) {
		reply_error(c, request_id, str_c(&why));
		goto out;
	}
	if (queue_file_open(va->qd, queue, value, 0, &qf, &why) != QUEUE_FILE_OK) {
		reply_error(c, request_id, str_c(&why));
		goto out;
	}

	{
		const struct queue_envelope *env = queue_file_envelope(qf);
		struct virtual_message msg = {
		        .queue_id = value,
		        .sender = env->sender,
		        .fd = queue_file_fd(qf),
		        .content_offset = env->content_offset,
		        .content_length = env->content_length,
		        .arrival_us = (int64_t)env->arrival.tv_sec * 1000000 + env->arrival.tv_usec,
		        .start_us = (int64_t)delivery_now_usec(),
		};
		struct virtual_outcome out;
		const char *e;

		msg.active_us = active > 0 ? (int64_t)active : msg.start_us;
		str_init(&out.reason);
		str_reset(&c->reply);
		attr_put_uint(&c->reply, ATTR_REQUEST_ID, request_id, &e);
		for (size_t i = 0; i < n; i++) {
			virtual_deliver(va, &msg, blocks[i].recipient,
			                blocks[i].orig != NULL ? blocks[i].orig
			                                       : blocks[i].recipient,
			                &out);
			attr_put_str(&c->reply, DELIVERY_ATTR_RCPT_ID, blocks[i].id, &e);
			attr_put_str(&c->reply, DELIVERY_ATTR_ACTION, out.action, &e);
			attr_put_str(&c->reply, DELIVERY_ATTR_STATUS, out.status, &e);
			/* A reason holds no CR/LF (table values and errno texts
			 * do not); if one ever did, say so rather than send
			 * nothing. */
			if (attr_put_str(&c->reply, DELIVERY_ATTR_REASON, str_c(&out.reason), &e) <
			    0)
				attr_put_str(&c->reply, DELIVERY_ATTR_REASON,
				             "(reason not shown: it holds a line break)", &e);
		}
		attr_end(&c->reply);
		str_free(&out.reason);
	}
out:
	queue_file_close(&qf);
	free(blocks);
	str_free(&why);
	return rc;
}

/* Serve one connection until EOF, an error, a timeout or a stop signal
 * between requests. */
static void serve(struct virtual_agent *va, int fd)
{
	static const struct attr_limits limits = ATTR_LIMITS_DEFAULT;
	struct conn c = {.fd = fd, .parser = attr_parser_new(&limits)};
	char *buf = xmalloc(VIRTUAL_READ_SIZE);
	size_t have = 0, pos = 0;
	bool partial = false;

	str_init(&c.reply);
	while (stop_signal == 0) {
		enum attr_parse_status st;
		size_t used = 0;

		if (pos == have) {
			ssize_t n;
			int w = wait_fd(fd, POLLIN, VIRTUAL_IDLE_TIMEOUT);

			if (w == 0) {
				log_info("closing an idle connection after %d s",
				         VIRTUAL_IDLE_TIMEOUT);
				break;
			}
			if (w < 0)
				continue; /* a signal: the loop condition decides */
			n = read(fd, buf, VIRTUAL_READ_SIZE);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (n < 0) {
				log_warning("read request: %m");
				break;
			}
			if (n == 0) {
				if (partial)
					log_warning(
					        "client closed the connection inside a request");
				break;
			}
			pos = 0;
			have = (size_t)n;
		}
		st = attr_parser_feed(c.parser, buf + pos, have - pos, &used);
		pos += used;
		partial = true;
		if (st == ATTR_PARSE_NEED_MORE)
			continue;
		if (st == ATTR_PARSE_ERROR) {
			str_t why;

			str_init(&why);
			str_appendf(&why, "malformed request: %s", attr_parser_error(c.parser));
			reply_error(&c, 0, str_c(&why));
			str_free(&why);
			(void)send_reply(&c);
			break;
		}
		{
			struct attr_list *req = attr_parser_take(c.parser);
			int rc = handle_request(va, &c, req);

			attr_list_destroy(&req);
			attr_parser_reset(c.parser);
			partial = false;
			if (send_reply(&c) < 0 || rc < 0)
				break;
		}
	}
	attr_parser_destroy(&c.parser);
	str_free(&c.reply);
	free(buf);
}

/* ---- Setup ---- */

static int open_listener(struct daemon *d)
{
	const char *qdir = config_str(d->cfg, "queue_directory");
	char *private_dir = xasprintf("%s/private", qdir);
	char *path = xasprintf("%s/virtual", private_dir);
	str_t error;
	int fd;

	if (d->n_listen_fds > 0) {
		free(private_dir);
		free(path);
		return d->listen_fds[0];
	}
	str_init(&error);
	if (mkdir(private_dir, 0700) < 0 && errno != EEXIST)
		log_fatal("mkdir %s: %m", private_dir);
	fd = unix_listen(path, 0600, 64, &error);
	if (fd < 0)
		log_fatal("%s", str_c(&error));
	log_info("listening on %s", path);
	str_free(&error);
	free(private_dir);
	free(path);
	return fd;
}

static void agent_open(struct virtual_agent *va, struct daemon *d)
{
	struct table_open_context tctx = {.cfg = d->cfg, .config_dir = d->config_dir};
	const char *value, *why;
	unsigned mask = 0;
	int64_t n;
	str_t error;

	str_init(&error);
	va->cfg = d->cfg;
	if (queue_dir_hash_names(config_str(va->cfg, "hash_queue_names"), &mask, &error) < 0)
		log_fatal("hash_queue_names: %s", str_c(&error));
	va->qd = queue_dir_new(config_str(va->cfg, "queue_directory"),
	                       (unsigned)config_int(va->cfg, "hash_queue_depth"), mask);
	if (mailbox_lookup_open(va->cfg, d->config_dir, &va->mailbox, &error) < 0)
		log_fatal("%s", str_c(&error));
	if (config_expand(va->cfg, "virtual_uid_maps", &value, &why) < 0)
		log_fatal("%s", why);
	if ((va->uid_maps = maps_open("virtual_uid_maps", value, &tctx, &error)) == NULL)
		log_fatal("%s", str_c(&error));
	if (config_expand(va->cfg, "virtual_gid_maps", &value, &why) < 0)
		log_fatal("%s", why);
	if ((va->gid_maps = maps_open("virtual_gid_maps", value, &tctx, &error)) == NULL)
		log_fatal("%s", str_c(&error));
	if (config_expand(va->cfg, "recipient_delimiter", &value, &why) < 0 ||
	    config_get_int(va->cfg, "virtual_minimum_uid", &n, &why) < 0 ||
	    config_get_bool(va->cfg, "virtual_overquota_bounce", &va->overquota_bounce, &why) < 0)
		log_fatal("%s", why);
	va->delimiters = xstrdup(value);
	va->minimum_uid = (uid_t)n;
	if (config_expand(va->cfg, "virtual_mailbox_base", &va->base, &why) < 0)
		log_fatal("%s", why);
	va->root = geteuid() == 0;
	if (va->root) {
		int ng = getgroups(0, NULL);

		va->root_groups = xcalloc((size_t)(ng > 0 ? ng : 1), sizeof(gid_t));
		va->n_root_groups = ng > 0 ? getgroups(ng, va->root_groups) : 0;
		if (va->n_root_groups < 0)
			log_fatal("getgroups: %m");
	}
	str_free(&error);
}

/* N from a maps value that is exactly "static:N" (decimal, 32 bits). */
static bool static_id(const char *value, unsigned long *id_r)
{
	const char *p = value + strlen("static:");
	size_t len;

	if (strncmp(value, "static:", strlen("static:")) != 0)
		return false;
	len = strlen(p);
	if (len == 0 || len > 10 || strspn(p, "0123456789") != len)
		return false;
	*id_r = strtoul(p, NULL, 10);
	return *id_r < 0xffffffffUL;
}

/* Every mailbox has one owner: become it for good (see SECURITY above).
 * A static helper for now; the shared privilege drop of lib/daemon
 * will take it over. */
static void drop_to_static_owner(struct virtual_agent *va)
{
	const char *uid_maps, *gid_maps, *why;
	unsigned long uid, gid;
	uid_t ruid, euid, suid;
	gid_t rgid, egid, sgid, g;
	char *active;
	bool readable;

	if (!va->root)
		return;
	if (config_expand(va->cfg, "virtual_uid_maps", &uid_maps, &why) < 0 ||
	    config_expand(va->cfg, "virtual_gid_maps", &gid_maps, &why) < 0)
		log_fatal("%s", why);
	if (!static_id(uid_maps, &uid) || !static_id(gid_maps, &gid) || uid == 0)
		return;
	/* Below the minimum every delivery is refused (maildir.c): as today. */
	if (uid < (unsigned long)va->minimum_uid)
		return;
	/* Can that identity read the queue files qmgr names? Ask the
	 * kernel as that identity (effective ids, undone at once). */
	active = xasprintf("%s/%s", queue_dir_root(va->qd), queue_name_str(QUEUE_ACTIVE));
	g = (gid_t)gid;
	if (setgroups(1, &g) < 0 || setegid((gid_t)gid) < 0 || seteuid((uid_t)uid) < 0)
		log_fatal("cannot switch to uid %lu gid %lu: %m", uid, gid);
	readable = faccessat(AT_FDCWD, active, R_OK | X_OK, AT_EACCESS) == 0;
	if (seteuid(0) < 0 || setegid(0) < 0 ||
	    setgroups((size_t)va->n_root_groups, va->root_groups) < 0)
		log_fatal("cannot switch back to root: %m");
	if (!readable) {
		log_warning("virtual_uid_maps = %s: uid %lu gid %lu cannot read %s (owned by "
		            "mail_owner): keeping root to switch to the mailbox owner per delivery",
		            uid_maps, uid, gid, active);
		free(active);
		return;
	}
	free(active);
	if (setgroups(1, &g) < 0 || setgid((gid_t)gid) < 0 || setuid((uid_t)uid) < 0)
		log_fatal("cannot become uid %lu gid %lu: %m", uid, gid);
	if (getresuid(&ruid, &euid, &suid) < 0 || getresgid(&rgid, &egid, &sgid) < 0 ||
	    ruid != (uid_t)uid || euid != (uid_t)uid || suid != (uid_t)uid || rgid != (gid_t)gid ||
	    egid != (gid_t)gid || sgid != (gid_t)gid || setuid(0) == 0)
		log_fatal("privilege drop to uid %lu gid %lu did not hold", uid, gid);
	va->root = false;
	free(va->root_groups);
	va->root_groups = NULL;
	va->n_root_groups = 0;
	log_info("running as uid %lu gid %lu for good: virtual_uid_maps and virtual_gid_maps are "
	         "static",
	         uid, gid);
}

static void agent_close(struct virtual_agent *va)
{
	mailbox_lookup_close(&va->mailbox);
	maps_close(&va->uid_maps);
	maps_close(&va->gid_maps);
	queue_dir_destroy(&va->qd);
	sql_conn_destroy(&va->db);
	free(va->delimiters);
	free(va->root_groups);
}

int main(int argc, char **argv)
{
	static const struct daemon_spec spec = {.program = "virtual"};
	struct daemon *d = daemon_init(&spec, argc, argv);
	struct virtual_agent va;
	int listen_fd;

	memset(&va, 0, sizeof(va));
	setup_signals();
	agent_open(&va, d);
	listen_fd = open_listener(d);
	drop_to_static_owner(&va);
	log_info("starting: virtual_mailbox_base %s%s", va.base,
	         va.root ? ", delivering as each mailbox owner" : ", delivering as this user");
	while (stop_signal == 0) {
		int fd;

		if (wait_fd(listen_fd, POLLIN, -1) <= 0)
			continue;
		fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			/* Another process took it, or the client left. */
			if (errno != EAGAIN && errno != ECONNABORTED && errno != EINTR)
				log_warning("accept: %m");
			continue;
		}
		serve(&va, fd);
		close(fd);
	}
	log_info("terminating on signal %d", (int)stop_signal);
	if (d->n_listen_fds == 0)
		close(listen_fd);
	agent_close(&va);
	daemon_destroy(&d);
	return 0;
}
