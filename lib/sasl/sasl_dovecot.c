/* sasl_dovecot.c - smtpd_sasl_type = dovecot: Dovecot's authentication
 * server over its auth-client protocol 1.2, as Postfix's
 * xsasl_dovecot_server.c speaks it.
 *
 * Where: smtpd_sasl_path is "inet:host:port", "unix:PATH" or a unix
 * socket PATH, relative to queue_directory unless absolute ("private/auth"
 * as in Postfix, with Dovecot's `service auth { unix_listener
 * QUEUE/private/auth }`; conf/dovecot/10-postern.conf).
 *
 * The protocol, one tab-separated line each way:
 *   we send     VERSION 1 2, CPID <pid>
 *   Dovecot     VERSION 1 x, MECH <name> <flags...>, SPID, CUID, COOKIE, DONE
 *   we send     AUTH <id> <MECH> service=<smtpd_sasl_service> nologin
 *               lip= rip= lport= rport= [secured] [resp=<base64>]
 *   Dovecot     OK <id> user=<login> ...  |  CONT <id> <base64>  |
 *               FAIL <id> [reason=<text>] [temp] ...
 *   we send     CONT <id> <base64>  (after each CONT)
 * The MECH flags (anonymous, plaintext, dictionary, active,
 * forward-secrecy, mutual-auth; "private" ones are never offered) are
 * what the security options filter on.
 *
 * The mechanism list is asked for at sasl_server_create (a 2 s limit);
 * when Dovecot does not answer it is empty (AUTH not announced), with a
 * warning, and sasl_server_refresh asks again at most every
 * DOVECOT_RETRY_SECONDS. A session connects at its first step and keeps
 * its connection until it is freed.
 *
 * On failure: every line read is bounded (DOVECOT_LINE_MAX), so is the
 * number of rounds (DOVECOT_ROUNDS_MAX), and every wait (poll with a
 * timeout); a connection that fails, times out, or says anything
 * malformed or unexpected is SASL_TEMPFAIL with a reason that says what
 * went wrong (never what the client sent). FAIL is SASL_FAIL with
 * Dovecot's reason= (or "authentication failure"), or SASL_TEMPFAIL when
 * it carries "temp".
 */
#include "sasl/sasl_private.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "base/base64.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/strv.h"
#include "conf/config.h"

/* Longest line accepted from Dovecot: a CONT of SASL_MESSAGE_MAX bytes
 * in base64 and some room. */
#define DOVECOT_LINE_MAX 16384
/* Most CONT rounds in one exchange (PLAIN needs 1, LOGIN 2, SCRAM 2). */
#define DOVECOT_ROUNDS_MAX 16
/* Milliseconds allowed to connect and finish the handshake. */
#define DOVECOT_CONNECT_MS 2000
/* Milliseconds allowed for an answer to AUTH or CONT: Dovecot delays a
 * failure by auth_failure_delay (2 s) and may wait for its passdb. */
#define DOVECOT_REPLY_MS 30000
/* Seconds between two tries to get the mechanism list. */
#define DOVECOT_RETRY_SECONDS 5

struct dovecot_data {
	char *socket; /* "inet:host:port" or a unix path, resolved */
	pthread_mutex_t lock; /* last_try, have_mechs */
	time_t last_try;
	bool have_mechs;
};

/* A connection: the socket and what was read past the last line. */
struct dovecot_conn {
	int fd;
	str_t in;
};

struct dovecot_session {
	struct dovecot_conn conn;
	unsigned rounds;
};

static const struct {
	const char *word;
	unsigned flag;
} mech_flags[] = {
        {"anonymous", SASL_MECH_ANONYMOUS},
        {"plaintext", SASL_MECH_PLAINTEXT},
        {"dictionary", SASL_MECH_DICTIONARY},
        {"active", SASL_MECH_ACTIVE},
        {"forward-secrecy", SASL_MECH_FORWARD_SECRECY},
        {"mutual-auth", SASL_MECH_MUTUAL_AUTH},
};

/* ---- the connection ------------------------------------------------------- */

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for events on fd until deadline (now_ms). 0 ready, -1 timeout or
 * error with the reason. */
static int wait_fd(int fd, short events, long deadline, str_t *why)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = events};
		long left = deadline - now_ms();
		int n;

		if (left <= 0) {
			str_append(why, "timed out");
			return -1;
		}
		n = poll(&p, 1, (int)left);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR) {
			str_appendf(why, "poll: %m");
			return -1;
		}
	}
}

/* Connect fd to addr without blocking past deadline. */
static int connect_fd(int fd, const struct sockaddr *addr, socklen_t len, long deadline, str_t *why)
{
	int err = 0;
	socklen_t elen = sizeof(err);

	if (connect(fd, addr, len) == 0)
		return 0;
	if (errno != EINPROGRESS && errno != EAGAIN) {
		str_appendf(why, "%m");
		return -1;
	}
	if (wait_fd(fd, POLLOUT, deadline, why) < 0)
		return -1;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0 || err != 0) {
		errno = err;
		str_appendf(why, "%m");
		return -1;
	}
	return 0;
}

static int conn_open(struct dovecot_conn *c, const char *where, long deadline, str_t *why)
{
	c->fd = -1;
	str_init(&c->in);
	if (strncmp(where, "inet:", 5) == 0) {
		const char *hp = where + 5, *colon = strrchr(hp, ':');
		struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL, *ai;
		char *host;
		int e;

		if (colon == NULL) {
			str_appendf(why, "%s: expected inet:host:port", where);
			return -1;
		}
		host = xstrndup(hp, (size_t)(colon - hp));
		if (host[0] == '[' && host[strlen(host) - 1] == ']') {
			memmove(host, host + 1, strlen(host));
			host[strlen(host) - 1] = '\0';
		}
		e = getaddrinfo(host, colon + 1, &hints, &res);
		free(host);
		if (e != 0) {
			str_appendf(why, "%s: %s", where, gai_strerror(e));
			return -1;
		}
		for (ai = res; ai != NULL; ai = ai->ai_next) {
			c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			               0);
			if (c->fd < 0)
				continue;
			str_reset(why);
			if (connect_fd(c->fd, ai->ai_addr, ai->ai_addrlen, deadline, why) == 0)
				break;
			close(c->fd);
			c->fd = -1;
		}
		freeaddrinfo(res);
	} else {
		struct sockaddr_un sun = {.sun_family = AF_UNIX};

		if (strlen(where) >= sizeof(sun.sun_path)) {
			str_appendf(why, "%s: socket path too long", where);
			return -1;
		}
		memcpy(sun.sun_path, where, strlen(where) + 1);
		c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (c->fd < 0) {
			str_appendf(why, "socket: %m");
			return -1;
		}
		if (connect_fd(c->fd, (struct sockaddr *)&sun, sizeof(sun), deadline, why) < 0) {
			close(c->fd);
			c->fd = -1;
		}
	}
	if (c->fd < 0) {
		char *detail = str_steal(why);

		str_appendf(why, "cannot connect to the Dovecot auth server %s: %s", where,
		            detail[0] != '\0' ? detail : "no address");
		free(detail);
		return -1;
	}
	return 0;
}

static void conn_close(struct dovecot_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	sasl_str_wipe(&c->in);
}

static int conn_write(struct dovecot_conn *c, const str_t *line, long deadline, str_t *why)
{
	size_t done = 0;

	while (done < line->len) {
		ssize_t n = send(c->fd, line->buf + done, line->len - done, MSG_NOSIGNAL);

		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			str_appendf(why, "write to the Dovecot auth server: %m");
			return -1;
		}
		if (wait_fd(c->fd, POLLOUT, deadline, why) < 0) {
			str_append(why, " writing to the Dovecot auth server");
			return -1;
		}
	}
	return 0;
}

/* The next line (without its LF) into line. -1 on timeout, end of
 * stream, or a line longer than DOVECOT_LINE_MAX. */
static int conn_read_line(struct dovecot_conn *c, str_t *line, long deadline, str_t *why)
{
	for (;;) {
		char *lf = memchr(c->in.buf, '\n', c->in.len);
		char buf[4096];
		ssize_t n;

		if (lf != NULL) {
			size_t len = (size_t)(lf - c->in.buf);

			str_reset(line);
			str_append_n(line, c->in.buf, len);
			memmove(c->in.buf, lf + 1, c->in.len - len - 1);
			str_truncate(&c->in, c->in.len - len - 1);
			return 0;
		}
		if (c->in.len > DOVECOT_LINE_MAX) {
			str_appendf(why, "Dovecot auth server sent a line longer than %d bytes",
			            DOVECOT_LINE_MAX);
			return -1;
		}
		n = recv(c->fd, buf, sizeof(buf), 0);
		if (n > 0) {
			str_append_n(&c->in, buf, (size_t)n);
			explicit_bzero(buf, sizeof(buf));
			continue;
		}
		if (n == 0) {
			str_append(why, "Dovecot auth server closed the connection");
			return -1;
		}
		if (errno != EAGAIN && errno != EINTR) {
			str_appendf(why, "read from the Dovecot auth server: %m");
			return -1;
		}
		if (wait_fd(c->fd, POLLIN, deadline, why) < 0) {
			str_append(why, " waiting for the Dovecot auth server");
			return -1;
		}
	}
}

/* Split line at tabs into fields (appended). */
static void split_tabs(const str_t *line, strv_t *fields)
{
	const char *p = line->buf, *end = line->buf + line->len;

	for (;;) {
		const char *tab = memchr(p, '\t', (size_t)(end - p));

		if (tab == NULL) {
			strv_add_n(fields, p, (size_t)(end - p));
			return;
		}
		strv_add_n(fields, p, (size_t)(tab - p));
		p = tab + 1;
	}
}

/* Dovecot's str_tabunescape, into out: \001 1 -> \001, \001 t -> tab,
 * \001 r -> CR, \001 n -> LF. */
static void tab_unescape(const char *s, str_t *out)
{
	for (; *s != '\0'; s++) {
		if (*s == '\001' && s[1] != '\0') {
			s++;
			str_append_c(out, *s == 't'   ? '\t'
			                  : *s == 'r' ? '\r'
			                  : *s == 'n' ? '\n'
			                              : '\001');
		} else {
			str_append_c(out, *s);
		}
	}
}

/* Connect and do the handshake; the MECH lines go to mechs (may be NULL). */
static int conn_handshake(struct dovecot_conn *c, const char *where, long deadline,
                          struct sasl_mech_list *mechs, str_t *why)
{
	str_t line;
	bool version = false;

	if (conn_open(c, where, deadline, why) < 0)
		return -1;
	str_init(&line);
	str_appendf(&line, "VERSION\t1\t2\nCPID\t%ld\n", (long)getpid());
	if (conn_write(c, &line, deadline, why) < 0)
		goto fail;
	for (;;) {
		strv_t f = STRV_INIT;

		if (conn_read_line(c, &line, deadline, why) < 0)
			goto fail;
		split_tabs(&line, &f);
		if (strcmp(f.v[0], "VERSION") == 0) {
			if (f.n < 2 || strcmp(f.v[1], "1") != 0) {
				str_appendf(why,
				            "Dovecot auth server %s speaks protocol version %s, "
				            "not 1",
				            where, f.n < 2 ? "?" : f.v[1]);
				strv_free(&f);
				goto fail;
			}
			version = true;
		} else if (strcmp(f.v[0], "MECH") == 0 && f.n >= 2 && mechs != NULL) {
			unsigned flags = 0;
			bool private = false;

			for (size_t i = 2; i < f.n; i++) {
				if (strcmp(f.v[i], "private") == 0)
				private = true;
				for (size_t k = 0; k < sizeof(mech_flags) / sizeof(mech_flags[0]);
				     k++)
					if (strcmp(f.v[i], mech_flags[k].word) == 0)
						flags |= mech_flags[k].flag;
			}
			if (!private && f.v[1][0] != '\0')
				sasl_mech_list_add(mechs, f.v[1], flags);
		} else if (strcmp(f.v[0], "DONE") == 0) {
			strv_free(&f);
			break;
		}
		/* SPID, CUID, COOKIE and anything newer: not needed here. */
		strv_free(&f);
	}
	if (!version) {
		str_appendf(why, "Dovecot auth server %s sent no VERSION line", where);
		goto fail;
	}
	str_free(&line);
	return 0;
fail:
	str_free(&line);
	conn_close(c);
	return -1;
}

/* ---- the mechanism list --------------------------------------------------- */

/* Ask for the mechanisms; on failure keep the list empty and warn. */
static void fetch_mechs(struct sasl_server *srv)
{
	struct dovecot_data *d = srv->backend_data;
	struct sasl_mech_list mechs = {0}, copy = {0};
	struct dovecot_conn c;
	str_t why;
	bool ok;

	str_init(&why);
	ok = conn_handshake(&c, d->socket, now_ms() + DOVECOT_CONNECT_MS, &mechs, &why) == 0;
	conn_close(&c); /* either way: conn_open set up its buffer */
	if (!ok) {
		log_warning("SASL: %s; AUTH is not offered until it answers", str_c(&why));
		sasl_mech_list_free(&mechs);
	}
	str_free(&why);
	for (size_t i = 0; i < mechs.n; i++)
		sasl_mech_list_add(&copy, mechs.v[i].name, mechs.v[i].flags);
	sasl_server_set_mechs(srv, false, &mechs);
	sasl_server_set_mechs(srv, true, &copy);
	pthread_mutex_lock(&d->lock);
	d->last_try = time(NULL);
	d->have_mechs = ok;
	pthread_mutex_unlock(&d->lock);
}

static int dovecot_init(struct sasl_server *srv, struct config *cfg, str_t *error)
{
	struct dovecot_data *d;
	const char *queue, *why, *path = srv->path;

	if (strncmp(path, "unix:", 5) == 0)
		path += 5;
	if (path[0] == '\0') {
		str_appendf(error,
		            "%s: smtpd_sasl_path is empty: expected the Dovecot auth "
		            "socket (private/auth, /path or inet:host:port)",
		            config_where(cfg, "smtpd_sasl_path"));
		return -1;
	}
	if (config_expand(cfg, "queue_directory", &queue, &why) < 0) {
		str_append(error, why);
		return -1;
	}
	d = xcalloc(1, sizeof(*d));
	pthread_mutex_init(&d->lock, NULL);
	if (strncmp(path, "inet:", 5) == 0 || path[0] == '/')
		d->socket = xstrdup(path);
	else
		d->socket = xasprintf("%s/%s", queue, path);
	srv->backend_data = d;
	fetch_mechs(srv);
	return 0;
}

static void dovecot_deinit(struct sasl_server *srv)
{
	struct dovecot_data *d = srv->backend_data;

	if (d == NULL)
		return;
	pthread_mutex_destroy(&d->lock);
	free(d->socket);
	free(d);
	srv->backend_data = NULL;
}

static void dovecot_refresh(struct sasl_server *srv)
{
	struct dovecot_data *d = srv->backend_data;
	bool again;

	pthread_mutex_lock(&d->lock);
	again = !d->have_mechs && time(NULL) - d->last_try >= DOVECOT_RETRY_SECONDS;
	pthread_mutex_unlock(&d->lock);
	if (again)
		fetch_mechs(srv);
}

/* ---- one exchange ------------------------------------------------------- */

/* What Dovecot answered to AUTH or CONT. */
static enum sasl_result read_reply(struct sasl_session *sess, str_t *challenge, str_t *reason)
{
	struct dovecot_session *ds = sess->backend_data;
	enum sasl_result r = SASL_TEMPFAIL;
	strv_t f = STRV_INIT;
	str_t line, why;

	str_init(&line);
	str_init(&why);
	if (conn_read_line(&ds->conn, &line, now_ms() + DOVECOT_REPLY_MS, &why) < 0) {
		log_warning("SASL authentication: %s", str_c(&why));
		str_append(reason, str_c(&why));
		goto out;
	}
	split_tabs(&line, &f);
	if (f.n < 2 || strcmp(f.v[1], "1") != 0) {
		str_append(reason, "malformed reply from the Dovecot auth server");
		goto out;
	}
	if (strcmp(f.v[0], "OK") == 0) {
		for (size_t i = 2; i < f.n; i++) {
			if (strncmp(f.v[i], "user=", 5) == 0 && sess->username == NULL) {
				str_t u;

				str_init(&u);
				tab_unescape(f.v[i] + 5, &u);
				sess->username = str_steal(&u);
				str_free(&u); /* str_steal leaves an empty buffer */
			}
		}
		if (sess->username == NULL || sess->username[0] == '\0') {
			str_append(reason, "Dovecot auth server answered OK without a user name");
			goto out;
		}
		r = SASL_OK;
	} else if (strcmp(f.v[0], "CONT") == 0) {
		const char *bad;

		if (++ds->rounds > DOVECOT_ROUNDS_MAX) {
			str_appendf(reason, "more than %d rounds with the Dovecot auth server",
			            DOVECOT_ROUNDS_MAX);
			goto out;
		}
		if (f.n < 3 ||
		    base64_decode(f.v[2], strlen(f.v[2]), SASL_MESSAGE_MAX, challenge, &bad) < 0) {
			str_append(reason, "malformed CONT from the Dovecot auth server");
			goto out;
		}
		r = SASL_CONTINUE;
	} else if (strcmp(f.v[0], "FAIL") == 0) {
		str_t text;
		bool temp = false;

		str_init(&text);
		for (size_t i = 2; i < f.n; i++) {
			if (strcmp(f.v[i], "temp") == 0)
				temp = true;
			else if (strncmp(f.v[i], "reason=", 7) == 0 && text.len == 0)
				tab_unescape(f.v[i] + 7, &text);
			else if (strncmp(f.v[i], "user=", 5) == 0 && sess->tried == NULL) {
				str_t u;

				str_init(&u);
				tab_unescape(f.v[i] + 5, &u);
				sess->tried = str_steal(&u);
				str_free(&u);
			}
		}
		str_append(reason, text.len > 0 ? str_c(&text) : "authentication failure");
		str_free(&text);
		r = temp ? SASL_TEMPFAIL : SASL_FAIL;
	} else {
		str_append(reason, "unexpected reply from the Dovecot auth server");
	}
out:
	strv_free(&f);
	sasl_str_wipe(&line);
	str_free(&why);
	return r;
}

/* Append key=value to line, value tab-escaped as Dovecot expects. */
static void put_arg(str_t *line, const char *key, const char *value)
{
	str_appendf(line, "\t%s=", key);
	for (const char *p = value; *p != '\0'; p++) {
		if (*p == '\001')
			str_append(line, "\0011");
		else if (*p == '\t')
			str_append(line, "\001t");
		else if (*p == '\r')
			str_append(line, "\001r");
		else if (*p == '\n')
			str_append(line, "\001n");
		else
			str_append_c(line, *p);
	}
}

static enum sasl_result dovecot_step(struct sasl_session *sess, const char *mech,
                                     const unsigned char *response, size_t len, str_t *challenge,
                                     str_t *reason)
{
	struct dovecot_data *d = sess->srv->backend_data;
	struct dovecot_session *ds = sess->backend_data;
	enum sasl_result r;
	str_t line, why;

	str_init(&line);
	str_init(&why);
	if (ds == NULL) {
		ds = sess->backend_data = xcalloc(1, sizeof(*ds));
		ds->conn.fd = -1; /* conn_open (in conn_handshake) sets up conn.in */
		if (conn_handshake(&ds->conn, d->socket, now_ms() + DOVECOT_CONNECT_MS, NULL,
		                   &why) < 0) {
			log_warning("SASL authentication: %s", str_c(&why));
			str_append(reason, "Dovecot auth server unavailable");
			str_free(&why);
			str_free(&line);
			return SASL_TEMPFAIL;
		}
	}
	if (ds->conn.fd < 0) {
		str_append(reason, "Dovecot auth server connection lost");
		str_free(&why);
		str_free(&line);
		return SASL_TEMPFAIL;
	}
	if (mech != NULL) {
		char port[16];

		str_appendf(&line, "AUTH\t1\t%s", mech);
		put_arg(&line, "service", sess->srv->service);
		str_append(&line, "\tnologin");
		if (sess->peer.server_addr[0] != '\0') {
			put_arg(&line, "lip", sess->peer.server_addr);
			snprintf(port, sizeof(port), "%u", sess->peer.server_port);
			put_arg(&line, "lport", port);
		}
		if (sess->peer.client_addr[0] != '\0') {
			put_arg(&line, "rip", sess->peer.client_addr);
			snprintf(port, sizeof(port), "%u", sess->peer.client_port);
			put_arg(&line, "rport", port);
		}
		/* Why "secured": Dovecot refuses plaintext mechanisms on an
		 * unsecured connection when disable_plaintext_auth = yes. */
		if (sess->peer.tls)
			str_append(&line, "\tsecured");
		if (response != NULL) {
			str_append(&line, "\tresp=");
			base64_encode(response, len, &line);
		}
	} else {
		str_append(&line, "CONT\t1\t");
		base64_encode(response, len, &line);
	}
	str_append_c(&line, '\n');
	if (conn_write(&ds->conn, &line, now_ms() + DOVECOT_REPLY_MS, &why) < 0) {
		log_warning("SASL authentication: %s", str_c(&why));
		str_append(reason, str_c(&why));
		conn_close(&ds->conn);
		r = SASL_TEMPFAIL;
	} else {
		r = read_reply(sess, challenge, reason);
		if (r == SASL_TEMPFAIL)
			conn_close(&ds->conn);
	}
	sasl_str_wipe(&line);
	str_free(&why);
	return r;
}

static void dovecot_session_free(struct sasl_session *sess)
{
	struct dovecot_session *ds = sess->backend_data;

	if (ds == NULL)
		return;
	conn_close(&ds->conn);
	free(ds);
	sess->backend_data = NULL;
}

const struct sasl_backend sasl_backend_dovecot = {
        .name = "dovecot",
        .init = dovecot_init,
        .deinit = dovecot_deinit,
        .refresh = dovecot_refresh,
        .step = dovecot_step,
        .session_free = dovecot_session_free,
};
