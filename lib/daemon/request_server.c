/* request_server.c - the delivery-agent skeleton (see request_server.h):
 * listener, accept loop, bounded attr request reading, protocol checks,
 * replies, signals.
 *
 * Used by server/virtual today and by every later delivery agent.
 *
 * SECURITY: requests come from qmgr over a socket only the queue owner can
 * reach (private/, 0600); they are still parsed with ATTR_LIMITS_DEFAULT,
 * and a malformed one ends the connection (the stream position is lost).
 */
#include "daemon/request_server.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/attr.h"
#include "base/log.h"
#include "base/mem.h"
#include "conf/config.h"
#include "daemon/daemon.h"
#include "daemon/trigger.h"

#include <config.h> /* POSTERN_VERSION */

#define REQUEST_READ_SIZE 16384

static volatile sig_atomic_t stop_signal;
static volatile sig_atomic_t hup_signal;

/* The mask that holds the stop signals while the agent works, and the
 * one ppoll() opens while it waits. */
static sigset_t wait_mask;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		hup_signal = 1;
	else
		stop_signal = sig;
}

static void setup_signals(void)
{
	static const int sigs[] = {SIGTERM, SIGINT, SIGUSR1, SIGHUP};
	struct sigaction sa;
	sigset_t work_mask;

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

static void note_reload(const char *program)
{
	if (hup_signal) {
		hup_signal = 0;
		log_info("reload: configuration changes take effect in new %s processes", program);
	}
}

/* Wait for events on fd with the stop signals open. 1 ready, 0 timeout
 * (timeout_s < 0: none), -1 interrupted by a signal or failed. */
static int wait_fd(const char *program, int fd, short events, int timeout_s)
{
	struct pollfd p = {.fd = fd, .events = events};
	struct timespec ts = {.tv_sec = timeout_s, .tv_nsec = 0};
	int n;

	note_reload(program);
	n = ppoll(&p, 1, timeout_s >= 0 ? &ts : NULL, &wait_mask);
	note_reload(program);
	return n > 0 ? 1 : n;
}

void request_server_reply_error(str_t *reply, uint64_t request_id, const char *text)
{
	const char *why;

	log_warning("request %llu: %s", (unsigned long long)request_id, text);
	str_reset(reply);
	attr_put_uint(reply, ATTR_REQUEST_ID, request_id, &why);
	if (attr_put_str(reply, ATTR_ERROR, text, &why) < 0)
		attr_put_str(reply, ATTR_ERROR, "(error text not shown: it holds a line break)",
		             &why);
	attr_end(reply);
}

/* ---- One connection ---- */

struct conn {
	const struct request_server_spec *spec;
	const char *program;
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
		if (wait_fd(c->program, c->fd, POLLOUT, c->spec->idle_timeout) == 0) {
			log_warning("timeout writing a reply to the client");
			return -1;
		}
	}
	return 0;
}

/* Check request_id and version, then hand the request to the agent.
 * Returns 0 to keep the connection, -1 to close it. */
static int handle_request(struct conn *c, struct attr_list *req)
{
	uint64_t request_id = 0;
	const char *value, *why;

	str_reset(&c->reply);
	if (attr_get(req, ATTR_REQUEST_ID) != NULL &&
	    attr_get_uint(req, ATTR_REQUEST_ID, 0, UINT64_MAX, &request_id, &why) < 0) {
		request_server_reply_error(&c->reply, 0, why);
		return -1;
	}
	value = attr_get(req, ATTR_VERSION);
	if (!c->versioned || value != NULL) {
		if (value == NULL || strcmp(value, ATTR_PROTOCOL_VERSION) != 0) {
			str_t text;

			str_init(&text);
			str_appendf(&text, "unsupported protocol version \"%s\" (expected %s)",
			            value != NULL ? value : "", ATTR_PROTOCOL_VERSION);
			request_server_reply_error(&c->reply, request_id, str_c(&text));
			str_free(&text);
			return -1;
		}
		c->versioned = true;
	}
	return c->spec->handle(c->spec->ctx, req, request_id, &c->reply);
}

/* Read the next bytes into buf. 1 got some, 0 end of connection (EOF,
 * error, idle timeout), -1 a signal or a retryable condition. */
static int read_some(struct conn *c, char *buf, size_t *have_r, bool partial)
{
	int w = wait_fd(c->program, c->fd, POLLIN, c->spec->idle_timeout);
	ssize_t n;

	if (w == 0) {
		log_info("closing an idle connection after %d s", c->spec->idle_timeout);
		return 0;
	}
	if (w < 0)
		return -1;
	n = read(c->fd, buf, REQUEST_READ_SIZE);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return -1;
	if (n < 0) {
		log_warning("read request: %m");
		return 0;
	}
	if (n == 0) {
		if (partial)
			log_warning("client closed the connection inside a request");
		return 0;
	}
	*have_r = (size_t)n;
	return 1;
}

/* Serve one connection until EOF, an error, a timeout or a stop signal
 * between requests. */
static void serve(const struct request_server_spec *spec, const char *program, int fd)
{
	static const struct attr_limits limits = ATTR_LIMITS_DEFAULT;
	struct conn c = {.spec = spec, .program = program, .fd = fd};
	char *buf = xmalloc(REQUEST_READ_SIZE);
	size_t have = 0, pos = 0;
	bool partial = false;

	c.parser = attr_parser_new(&limits);
	str_init(&c.reply);
	while (stop_signal == 0) {
		enum attr_parse_status st;
		size_t used = 0;

		if (pos == have) {
			int r = read_some(&c, buf, &have, partial);

			if (r == 0)
				break;
			if (r < 0)
				continue; /* a signal: the loop condition decides */
			pos = 0;
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
			request_server_reply_error(&c.reply, 0, str_c(&why));
			str_free(&why);
			(void)send_reply(&c);
			break;
		}
		{
			struct attr_list *req = attr_parser_take(c.parser);
			int rc = handle_request(&c, req);

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

/* ---- Setup and the accept loop ---- */

/* master's socket, or private/SERVICE bound here when run by hand. */
static int open_listener(struct daemon *d, const char *service)
{
	const char *qdir = config_str(d->cfg, "queue_directory");
	char *private_dir, *path;
	str_t error;
	int fd;

	if (d->n_listen_fds > 0)
		return d->listen_fds[0];
	private_dir = xasprintf("%s/private", qdir);
	path = xasprintf("%s/%s", private_dir, service);
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

int request_server_main(const struct request_server_spec *spec, int argc, char **argv)
{
	struct daemon *d = daemon_init(&spec->daemon, argc, argv);
	int listen_fd;

	setup_signals();
	listen_fd = open_listener(d, spec->service);
	/* From here on the agent holds what it serves with. */
	daemon_drop_privileges(d, spec->needs_root);
	daemon_write_pid(d);
	if (spec->init != NULL)
		spec->init(d, spec->ctx);
	log_info("daemon started -- version %s, configuration %s", POSTERN_VERSION, d->config_dir);
	while (stop_signal == 0) {
		int fd;

		if (wait_fd(d->program, listen_fd, POLLIN, -1) <= 0)
			continue;
		fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			/* Another process took it, or the client left. */
			if (errno != EAGAIN && errno != ECONNABORTED && errno != EINTR)
				log_warning("accept: %m");
			continue;
		}
		serve(spec, d->program, fd);
		close(fd);
	}
	log_info("terminating on signal %d", (int)stop_signal);
	if (d->n_listen_fds == 0)
		close(listen_fd);
	if (spec->finish != NULL)
		spec->finish(d, spec->ctx);
	daemon_destroy(&d);
	return 0;
}
