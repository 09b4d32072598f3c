/* cli_sendmail.c - the Sendmail-compatible submission command:
 * `postern sendmail [options] [recipient...]`, and `sendmail`, `mailq`,
 * `newaliases` when postern is run through a link of that name.
 *
 * What it does (Postfix sendmail(1), adapted): reads one message from
 * standard input (or, with -bs, an SMTP conversation) and streams it in
 * maildrop format (queue/maildrop.h) to the setgid helper postdrop
 * (server/postdrop; the one next to this program, else in
 * $daemon_directory), which writes the maildrop file durably into
 * queue_directory/maildrop/, prints its ID and pokes pickup.
 * pickup hands the file to cleanup, which qualifies addresses
 * (append_at_myorigin), adds missing headers and, for -t, takes the
 * recipients from To/Cc/Bcc and drops Bcc.
 *
 * Modes: -bm (default) message on stdin; -t extract recipients; -bs SMTP
 * on stdin/stdout (a small in-process server whose messages end in the
 * same maildrop files); -G marks the message as relayed, not written by
 * the user (a content filter re-injecting: `sendmail -G -i -f SENDER --
 * RCPT...`), so that pickup leaves its headers alone; -bp list the queue (= mailq, cli_queue_list.c); -bi
 * (= newaliases) rebuilds each alias_database file from its aliases(5)
 * text as postalias does (table_postmap.h; exit 1 when one failed).
 *
 * Exit status (sysexits): 0 only once postdrop said the maildrop file is
 * durable; 64 (EX_USAGE) for bad options or no recipients; 65
 * (EX_DATAERR) for a message over message_size_limit; 75 (EX_TEMPFAIL)
 * when postdrop cannot be run or fails (nothing is left behind then).
 *
 * SECURITY: runs with the invoking user's privileges (no set-uid/gid);
 * only postdrop holds the postdrop group. postdrop, not this program,
 * records the submitting uid that pickup trusts. Input is read in
 * bounded pieces (at most MAILDROP_CHUNK_MAX per line piece, the whole
 * message at most message_size_limit); addresses with control characters
 * are refused; arguments never reach a shell.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/str.h"
#include "base/strv.h"
#include "cli.h"
#include "address/address.h"
#include "conf/config.h"
#include "queue/maildrop.h"
#include "daemon/daemon.h"
#include "table/table_postmap.h"

#define EX_DATAERR_ 65

/* Longest SMTP command line in -bs mode (RFC 5321 allows 512; Postfix
 * line_length_limit style slack for long parameters). */
#define SMTP_LINE_MAX 4096

enum sm_mode {
	SM_MODE_DELIVER, /* -bm */
	SM_MODE_SMTP, /* -bs */
	SM_MODE_LIST, /* -bp */
	SM_MODE_NEWALIASES, /* -bi, -I */
};

struct sm_options {
	enum sm_mode mode;
	bool extract; /* -t */
	bool gateway; /* -G: relayed mail, not a user's submission */
	bool dot_ends; /* false after -i / -oi */
	const char *sender; /* -f / -r, NULL for the login name */
	const char *full_name; /* -F */
	strv_t rcpts;
};

struct sm_context {
	struct config *cfg;
	const char *queue_dir;
	uint64_t size_limit; /* 0 = none */
	char *login;
	uid_t uid;
};

/* ---- Buffered, bounded input from standard input ---- */

struct input {
	int fd;
	char buf[65536]; /* an I/O buffer only: lines are returned in a str_t */
	size_t pos, len;
	bool eof;
};

/* Read the next line, or a piece of at most max bytes of a longer one,
 * into line (replaced) without its LF. *complete_r says whether the LF
 * was seen. 1 with data, 0 at end of input, -1 on a read error. */
static int input_line(struct input *in, str_t *line, size_t max, bool *complete_r)
{
	str_reset(line);
	*complete_r = false;
	for (;;) {
		if (in->pos == in->len) {
			ssize_t n;

			if (in->eof)
				return line->len > 0 ? 1 : 0;
			n = read(in->fd, in->buf, sizeof(in->buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return -1;
			if (n == 0) {
				in->eof = true;
				continue;
			}
			in->pos = 0;
			in->len = (size_t)n;
		}
		char *start = in->buf + in->pos;
		size_t avail = in->len - in->pos, room = max - line->len;
		size_t take = avail < room ? avail : room;
		char *lf = memchr(start, '\n', take);

		if (lf != NULL) {
			str_append_n(line, start, (size_t)(lf - start));
			in->pos += (size_t)(lf - start) + 1;
			*complete_r = true;
			return 1;
		}
		str_append_n(line, start, take);
		in->pos += take;
		if (line->len >= max)
			return 1;
	}
}

/* ---- Addresses from the command line ---- */

/* Strip white space and one pair of angle brackets: "Name <a@b>" gives
 * "a@b", "<>" gives "". */
static void address_from_arg(const char *arg, size_t len, str_t *out)
{
	const char *lt = memchr(arg, '<', len);

	str_reset(out);
	if (lt != NULL) {
		const char *gt = memchr(lt, '>', len - (size_t)(lt - arg));

		if (gt != NULL) {
			str_append_n(out, lt + 1, (size_t)(gt - lt - 1));
			str_trim(out);
			return;
		}
	}
	str_append_n(out, arg, len);
	str_trim(out);
}

/* A recipient argument may hold a comma-separated list ("a@x, b@y"), as
 * Postfix's sendmail accepts. Commas inside quotes or <> do not split. */
static int add_recipients(strv_t *rcpts, const char *arg)
{
	str_t addr;
	const char *start = arg;
	bool quoted = false;
	int depth = 0;

	str_init(&addr);
	for (const char *p = arg;; p++) {
		if (*p == '"' && (p == arg || p[-1] != '\\'))
			quoted = !quoted;
		else if (!quoted && *p == '<')
			depth++;
		else if (!quoted && *p == '>' && depth > 0)
			depth--;
		if (*p == '\0' || (*p == ',' && !quoted && depth == 0)) {
			address_from_arg(start, (size_t)(p - start), &addr);
			if (addr.len > 0) {
				if (!maildrop_text_valid(addr.buf, addr.len)) {
					log_error("bad recipient address: control character or too "
					          "long");
					str_free(&addr);
					return -1;
				}
				strv_add(rcpts, addr.buf);
			}
			if (*p == '\0')
				break;
			start = p + 1;
		}
	}
	str_free(&addr);
	return 0;
}

/* ---- The submission, through postdrop ---- */

/* One message on its way to postdrop. */
struct sm_drop {
	struct maildrop_writer *w; /* onto in_fd */
	pid_t pid; /* postdrop, -1 once reaped */
	int in_fd; /* postdrop's standard input */
	int out_fd; /* postdrop's standard output: the ID */
	char id[64]; /* from postdrop, once committed */
};

/* Run postdrop with pipes on its standard input and output. -1 after
 * logging. */
static int postdrop_spawn(const struct sm_context *ctx, struct sm_drop *d)
{
	char *path = daemon_program_path(ctx->cfg, "postdrop");
	int in[2], out[2];

	if (pipe2(in, O_CLOEXEC) < 0) {
		log_error("pipe: %m");
		free(path);
		return -1;
	}
	if (pipe2(out, O_CLOEXEC) < 0) {
		log_error("pipe: %m");
		close(in[0]);
		close(in[1]);
		free(path);
		return -1;
	}
	d->pid = fork();
	if (d->pid == 0) {
		char *argv[] = {"postdrop", "-c", (char *)cli_globals.config_dir, NULL};

		if (dup2(in[0], STDIN_FILENO) < 0 || dup2(out[1], STDOUT_FILENO) < 0)
			_exit(CLI_EXIT_TEMPFAIL);
		execv(path, argv);
		log_error("cannot run %s: %m", path);
		_exit(CLI_EXIT_TEMPFAIL);
	}
	close(in[0]);
	close(out[1]);
	if (d->pid < 0) {
		log_error("fork: %m");
		close(in[1]);
		close(out[0]);
		free(path);
		return -1;
	}
	d->in_fd = in[1];
	d->out_fd = out[0];
	free(path);
	return 0;
}

/* Close the pipes and reap postdrop: its exit status, or -1. */
static int postdrop_wait(struct sm_drop *d)
{
	int status;

	if (d->in_fd >= 0)
		close(d->in_fd);
	d->in_fd = -1;
	if (d->out_fd >= 0)
		close(d->out_fd);
	d->out_fd = -1;
	if (d->pid <= 0)
		return -1;
	while (waitpid(d->pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -1;
	}
	d->pid = -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Give up on the message: postdrop removes its file on SIGTERM. */
static void drop_abort(struct sm_drop *d)
{
	if (d->pid > 0)
		(void)kill(d->pid, SIGTERM);
	(void)postdrop_wait(d);
	maildrop_writer_destroy(&d->w);
}

/* Start postdrop and send it the envelope. -1 after logging. */
static int drop_open(const struct sm_context *ctx, const char *sender, const strv_t *rcpts,
                     const struct sm_options *opt, struct sm_drop *d)
{
	str_t error;

	memset(d, 0, sizeof(*d));
	d->pid = -1;
	d->in_fd = d->out_fd = -1;
	if (postdrop_spawn(ctx, d) < 0)
		return -1;
	str_init(&error);
	if (maildrop_writer_open_fd(d->in_fd, &d->w, &error) < 0 ||
	    maildrop_writer_sender(d->w, sender, &error) < 0)
		goto fail;
	for (size_t i = 0; i < rcpts->n; i++) {
		if (maildrop_writer_rcpt(d->w, rcpts->v[i], &error) < 0)
			goto fail;
	}
	if (maildrop_writer_attr(d->w, MAILDROP_ATTR_LOGIN, ctx->login, &error) < 0)
		goto fail;
	if (opt->full_name != NULL &&
	    maildrop_writer_attr(d->w, MAILDROP_ATTR_FULL_NAME, opt->full_name, &error) < 0)
		goto fail;
	if (opt->extract &&
	    maildrop_writer_attr(d->w, MAILDROP_ATTR_EXTRACT_RCPT, "yes", &error) < 0)
		goto fail;
	if (opt->gateway &&
	    maildrop_writer_attr(d->w, MAILDROP_ATTR_REWRITE_CONTEXT, "remote", &error) < 0)
		goto fail;
	str_free(&error);
	return 0;
fail:
	log_error("%s", str_c(&error));
	drop_abort(d);
	str_free(&error);
	return -1;
}

/* Finish the stream and wait for postdrop's verdict: 0 once the file is
 * durable (d->id set), else postdrop's exit status (it said why on
 * standard error), or CLI_EXIT_TEMPFAIL. */
static int drop_commit(struct sm_drop *d)
{
	str_t error;
	size_t len = 0;
	int status;

	str_init(&error);
	if (maildrop_writer_commit(d->w, &error) < 0) {
		/* EPIPE: postdrop stopped reading; its exit status says why. */
		if (errno != EPIPE)
			log_error("%s", str_c(&error));
	}
	close(d->in_fd);
	d->in_fd = -1;
	while (len < sizeof(d->id) - 1) {
		ssize_t n = read(d->out_fd, d->id + len, sizeof(d->id) - 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	d->id[len] = '\0';
	d->id[strcspn(d->id, "\n")] = '\0';
	status = postdrop_wait(d);
	str_free(&error);
	if (status == 0 && d->id[0] == '\0')
		snprintf(d->id, sizeof(d->id), "?");
	return status < 0 ? CLI_EXIT_TEMPFAIL : status;
}

/* Append one content line (LF added when complete). */
static int drop_line(const struct sm_context *ctx, struct sm_drop *d, const char *line, size_t len,
                     bool complete, str_t *error)
{
	if (maildrop_writer_content(d->w, line, len, error) < 0 ||
	    (complete && maildrop_writer_content(d->w, "\n", 1, error) < 0))
		return -1;
	if (ctx->size_limit > 0 && maildrop_writer_content_size(d->w) > ctx->size_limit) {
		errno = EFBIG;
		return -2;
	}
	return 0;
}

/* -bm / -t: the message from standard input. */
static int deliver_stdin(const struct sm_context *ctx, const struct sm_options *opt)
{
	struct sm_drop d = {.pid = -1, .in_fd = -1, .out_fd = -1};
	struct input *in = xcalloc(1, sizeof(*in));
	const char *sender = opt->sender != NULL ? opt->sender : ctx->login;
	str_t line, error;
	bool complete, continued = false;
	int ret = CLI_EXIT_OK, r;

	str_init(&line);
	str_init(&error);
	if (drop_open(ctx, sender, &opt->rcpts, opt, &d) < 0) {
		ret = CLI_EXIT_TEMPFAIL;
		goto out;
	}
	while ((r = input_line(in, &line, MAILDROP_CHUNK_MAX, &complete)) > 0) {
		/* Why only whole lines: "." ends the message (unless -i), but a
		 * piece of a longer line that happens to be "." does not. */
		if (!continued && opt->dot_ends &&
		    (strcmp(line.buf, ".") == 0 || strcmp(line.buf, ".\r") == 0))
			break;
		/* Lines end in LF in the maildrop file: a CRLF from a DOS-style
		 * client loses its CR, as Postfix's sendmail does. */
		if (complete && line.len > 0 && line.buf[line.len - 1] == '\r')
			str_truncate(&line, line.len - 1);
		r = drop_line(ctx, &d, line.buf, line.len, complete, &error);
		if (r == -2) {
			log_error("message file too big (limit %llu bytes)",
			          (unsigned long long)ctx->size_limit);
			ret = EX_DATAERR_;
			goto out;
		}
		if (r < 0) {
			/* EPIPE: postdrop gave up and says why itself. */
			if (errno != EPIPE)
				log_error("%s", str_c(&error));
			ret = CLI_EXIT_TEMPFAIL;
			goto out;
		}
		continued = !complete;
	}
	if (r < 0) {
		log_error("read standard input: %m");
		ret = CLI_EXIT_TEMPFAIL;
		goto out;
	}
	ret = drop_commit(&d);
	if (ret == 0)
		log_debug(1, "maildrop file %s written", d.id);
out:
	drop_abort(&d); /* nothing left to abort after a commit */
	str_free(&line);
	str_free(&error);
	free(in);
	return ret;
}

/* ---- -bs: SMTP on standard input and output ---- */

static void smtp_reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void smtp_reply(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputs("\r\n", stdout);
	fflush(stdout);
}

/* Does line start with verb (case-insensitive) followed by end or space? */
static bool smtp_verb(const char *line, const char *verb, const char **arg_r)
{
	size_t n = strlen(verb);

	if (strncasecmp(line, verb, n) != 0 || (line[n] != '\0' && line[n] != ' '))
		return false;
	*arg_r = line + n + (line[n] == ' ' ? 1 : 0);
	return true;
}

/* Parse "FROM:<addr> params" or "TO:<addr>"; 0 with the internal form in
 * out, -1 after sending the reply. */
static int smtp_path(const char *arg, const char *prefix, enum address_role role, str_t *out)
{
	size_t n = strlen(prefix);
	struct mail_path *path = NULL;
	struct address_error err;

	if (strncasecmp(arg, prefix, n) != 0) {
		smtp_reply("501 5.5.4 Syntax: %s",
		           role == ADDRESS_SENDER ? "MAIL FROM:<address>" : "RCPT TO:<address>");
		return -1;
	}
	arg += n;
	if (address_parse_path(arg, strlen(arg), role, ADDRESS_PARSE_SLOPPY, &path, &err) < 0) {
		str_t reply;

		str_init(&reply);
		address_error_reply(&err, &reply);
		smtp_reply("%s", str_c(&reply));
		str_free(&reply);
		return -1;
	}
	str_reset(out);
	address_internal_string(&path->addr, out);
	mail_path_destroy(&path);
	if (!maildrop_text_valid(out->buf, out->len)) {
		smtp_reply("501 5.1.3 Bad address syntax");
		return -1;
	}
	return 0;
}

/* DATA: read the content up to "." and queue it. Returns -1 when input
 * ended inside DATA (the message is dropped, as Postfix does on a lost
 * connection). */
static int smtp_data(const struct sm_context *ctx, struct input *in, const char *sender,
                     const strv_t *rcpts, const struct sm_options *opt)
{
	struct sm_drop d = {.pid = -1, .in_fd = -1, .out_fd = -1};
	str_t line, error;
	bool complete, continued = false, ended = false;
	int state = 0; /* 0 fine, -1 write error, -2 too big */
	int r;

	str_init(&line);
	str_init(&error);
	if (drop_open(ctx, sender, rcpts, opt, &d) < 0)
		state = -1;
	smtp_reply("354 End data with <CR><LF>.<CR><LF>");
	while ((r = input_line(in, &line, MAILDROP_CHUNK_MAX, &complete)) > 0) {
		const char *p = line.buf;
		size_t len = line.len;

		if (complete && len > 0 && p[len - 1] == '\r')
			len--;
		if (!continued && complete && len == 1 && p[0] == '.') {
			ended = true;
			break;
		}
		if (!continued && p[0] == '.') { /* RFC 5321 4.5.2 dot-stuffing */
			p++;
			len--;
		}
		if (state == 0)
			state = drop_line(ctx, &d, p, len, complete, &error);
		continued = !complete;
	}
	if (!ended) {
		drop_abort(&d);
		str_free(&line);
		str_free(&error);
		return -1;
	}
	if (state == 0) {
		int status = drop_commit(&d);

		state = status == 0 ? 0 : status == EX_DATAERR_ ? -2 : -1;
	}
	if (state == -2) {
		smtp_reply("552 5.3.4 Message size exceeds fixed limit");
	} else if (state < 0) {
		if (error.len > 0)
			log_error("%s", str_c(&error));
		smtp_reply("451 4.3.0 Error: queue file write error");
	} else {
		smtp_reply("250 2.0.0 Ok: queued as %s", d.id);
	}
	drop_abort(&d);
	str_free(&line);
	str_free(&error);
	return 0;
}

static int smtp_session(const struct sm_context *ctx, const struct sm_options *opt)
{
	struct input *in = xcalloc(1, sizeof(*in));
	str_t line, sender, rcpt;
	strv_t rcpts = STRV_INIT;
	bool have_sender = false, complete;
	const char *banner = config_str(ctx->cfg, "smtpd_banner");
	const char *host = config_str(ctx->cfg, "myhostname");
	const char *arg;

	str_init(&line);
	str_init(&sender);
	str_init(&rcpt);
	smtp_reply("220 %s", banner);
	while (input_line(in, &line, SMTP_LINE_MAX, &complete) > 0) {
		if (!complete) { /* too long: skip the rest of it */
			while (input_line(in, &line, SMTP_LINE_MAX, &complete) > 0 && !complete)
				;
			smtp_reply("500 5.5.0 Error: line too long");
			continue;
		}
		if (line.len > 0 && line.buf[line.len - 1] == '\r')
			str_truncate(&line, line.len - 1);
		if (smtp_verb(line.buf, "EHLO", &arg)) {
			smtp_reply("250-%s", host);
			smtp_reply("250-PIPELINING");
			if (ctx->size_limit > 0)
				smtp_reply("250-SIZE %llu", (unsigned long long)ctx->size_limit);
			smtp_reply("250-8BITMIME");
			smtp_reply("250 ENHANCEDSTATUSCODES");
		} else if (smtp_verb(line.buf, "HELO", &arg)) {
			smtp_reply("250 %s", host);
		} else if (smtp_verb(line.buf, "MAIL", &arg)) {
			if (have_sender)
				smtp_reply("503 5.5.1 Error: nested MAIL command");
			else if (smtp_path(arg, "FROM:", ADDRESS_SENDER, &sender) == 0) {
				have_sender = true;
				smtp_reply("250 2.1.0 Ok");
			}
		} else if (smtp_verb(line.buf, "RCPT", &arg)) {
			if (!have_sender)
				smtp_reply("503 5.5.1 Error: need MAIL command");
			else if (smtp_path(arg, "TO:", ADDRESS_RECIPIENT, &rcpt) == 0) {
				strv_add(&rcpts, rcpt.buf);
				smtp_reply("250 2.1.5 Ok");
			}
		} else if (smtp_verb(line.buf, "DATA", &arg)) {
			if (!have_sender)
				smtp_reply("503 5.5.1 Error: need MAIL command");
			else if (rcpts.n == 0)
				smtp_reply("503 5.5.1 Error: need RCPT command");
			else if (smtp_data(ctx, in, sender.buf, &rcpts, opt) < 0)
				break;
			else {
				have_sender = false;
				strv_free(&rcpts);
			}
		} else if (smtp_verb(line.buf, "RSET", &arg)) {
			have_sender = false;
			strv_free(&rcpts);
			smtp_reply("250 2.0.0 Ok");
		} else if (smtp_verb(line.buf, "NOOP", &arg)) {
			smtp_reply("250 2.0.0 Ok");
		} else if (smtp_verb(line.buf, "VRFY", &arg)) {
			smtp_reply("502 5.5.1 VRFY command is disabled");
		} else if (smtp_verb(line.buf, "QUIT", &arg)) {
			smtp_reply("221 2.0.0 Bye");
			break;
		} else if (line.len == 0) {
			smtp_reply("500 5.5.2 Error: bad syntax");
		} else {
			smtp_reply("502 5.5.2 Error: command not recognized");
		}
	}
	strv_free(&rcpts);
	str_free(&line);
	str_free(&sender);
	str_free(&rcpt);
	free(in);
	return CLI_EXIT_OK;
}

/* ---- Options ---- */

static void sendmail_usage(void)
{
	fprintf(stderr, "usage: sendmail [-t] [-i|-oi] [-f sender] [-F name] [-bm|-bs|-bp|-bi] [-C "
	                "dir] [-v]"
	                " [recipient...]\n");
}

/* Parse Postfix sendmail(1) options. -1 for a usage error (reported). */
static int parse_options(int argc, char **argv, struct sm_options *opt)
{
	int c;

	/* Every option letter Postfix's sendmail accepts; the ones that do
	 * not apply here are accepted and ignored, as Postfix does, so that
	 * programs written for Sendmail keep working. */
	while ((c = getopt(argc, argv, "B:C:c:F:GIL:N:O:R:UV:X:b:ef:h:imno:p:q:r:tvx")) != -1) {
		switch (c) {
		case 'C':
		case 'c':
			cli_globals.config_dir = optarg;
			break;
		case 'F':
			opt->full_name = optarg;
			break;
		case 'f':
		case 'r':
			opt->sender = optarg;
			break;
		case 'I':
			opt->mode = SM_MODE_NEWALIASES;
			break;
		case 'i':
			opt->dot_ends = false;
			break;
		case 'o':
			/* -oi is -i; -o7, -o8, -om, -oA..., -odb... are ignored. */
			if (strcmp(optarg, "i") == 0)
				opt->dot_ends = false;
			break;
		case 't':
			opt->extract = true;
			break;
		case 'G':
			opt->gateway = true;
			break;
		case 'v':
			cli_globals.verbose++;
			log_set_verbose(cli_globals.verbose);
			break;
		case 'b':
			if (strcmp(optarg, "m") == 0) {
				opt->mode = SM_MODE_DELIVER;
			} else if (strcmp(optarg, "s") == 0) {
				opt->mode = SM_MODE_SMTP;
			} else if (strcmp(optarg, "p") == 0) {
				opt->mode = SM_MODE_LIST;
			} else if (strcmp(optarg, "i") == 0) {
				opt->mode = SM_MODE_NEWALIASES;
			} else {
				log_error("unsupported: -b%s", optarg);
				return -1;
			}
			break;
		case 'q':
			log_error("unsupported: -q%s (the queue manager runs the queue)", optarg);
			return -1;
		case '?':
			sendmail_usage();
			return -1;
		default: /* B L N O R U V X e h m n p x: accepted, ignored */
			break;
		}
	}
	for (int i = optind; i < argc; i++) {
		if (add_recipients(&opt->rcpts, argv[i]) < 0)
			return -1;
	}
	return 0;
}

static int context_init(struct sm_context *ctx, int *exit_r)
{
	strv_t errors = STRV_INIT;
	struct passwd *pw;
	const char *error;
	int64_t limit;

	if (config_load(cli_globals.config_dir, &ctx->cfg, &errors) < 0) {
		for (size_t i = 0; i < errors.n; i++)
			log_error("%s", errors.v[i]);
		strv_free(&errors);
		*exit_r = CLI_EXIT_TEMPFAIL;
		return -1;
	}
	strv_free(&errors);
	ctx->queue_dir = config_str(ctx->cfg, "queue_directory");
	if (config_get_int(ctx->cfg, "message_size_limit", &limit, &error) < 0) {
		log_error("%s", error);
		*exit_r = CLI_EXIT_TEMPFAIL;
		return -1;
	}
	ctx->size_limit = (uint64_t)limit;
	/* Who submits: the real uid, as Postfix does. The login name is the
	 * default sender (cleanup appends @$myorigin). */
	ctx->uid = getuid();
	pw = getpwuid(ctx->uid);
	if (pw == NULL) {
		log_error("no login name found for user ID %lu", (unsigned long)ctx->uid);
		*exit_r = CLI_EXIT_TEMPFAIL;
		return -1;
	}
	ctx->login = xstrdup(pw->pw_name);
	return 0;
}

/* -bi, newaliases: rebuild alias_database (Postfix: postalias on each). */
static int newaliases(void)
{
	struct config *cfg = cli_config_load(cli_globals.config_dir, false);
	const strv_t *specs = NULL;
	const char *error = NULL;
	int ret = CLI_EXIT_OK;

	if (cfg == NULL)
		return CLI_EXIT_FAIL;
	if (config_get_list(cfg, "alias_database", &specs, &error) < 0) {
		log_error("%s", error);
		ret = CLI_EXIT_FAIL;
	} else if (postmap_newaliases(specs, config_str(cfg, "myhostname")) < 0) {
		ret = CLI_EXIT_FAIL;
	}
	config_destroy(&cfg);
	return ret;
}

int cli_sendmail(int argc, char **argv)
{
	struct sm_options opt = {.mode = SM_MODE_DELIVER, .dot_ends = true};
	struct sm_context ctx;
	char *name = xstrdup(argv[0]);
	const char *base = basename(name);
	int ret = CLI_EXIT_OK;
	str_t sender;

	memset(&ctx, 0, sizeof(ctx));
	str_init(&sender);
	if (strcmp(base, "mailq") == 0)
		opt.mode = SM_MODE_LIST;
	else if (strcmp(base, "newaliases") == 0)
		opt.mode = SM_MODE_NEWALIASES;
	free(name);
	if (parse_options(argc, argv, &opt) < 0) {
		ret = CLI_EXIT_USAGE;
		goto out;
	}
	if (opt.mode == SM_MODE_NEWALIASES) {
		ret = newaliases();
		goto out;
	}
	if (context_init(&ctx, &ret) < 0)
		goto out;
	/* A postdrop that stops reading shows as EPIPE and its exit status. */
	signal(SIGPIPE, SIG_IGN);
	if (opt.sender != NULL) {
		address_from_arg(opt.sender, strlen(opt.sender), &sender);
		if (!maildrop_text_valid(sender.buf, sender.len)) {
			log_error("bad sender address: control character or too long");
			ret = CLI_EXIT_USAGE;
			goto out;
		}
		opt.sender = sender.buf;
	}
	if (opt.full_name != NULL) {
		/* A full name goes into the From: header: no line breaks. */
		char *p;

		for (p = (char *)opt.full_name; *p != '\0'; p++) {
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = ' ';
		}
		if (strlen(opt.full_name) > MAILDROP_FIELD_MAX)
			((char *)opt.full_name)[MAILDROP_FIELD_MAX] = '\0';
	}
	switch (opt.mode) {
	case SM_MODE_LIST:
		ret = cli_mailq_list(ctx.cfg);
		break;
	case SM_MODE_SMTP:
		ret = smtp_session(&ctx, &opt);
		break;
	default:
		if (opt.rcpts.n == 0 && !opt.extract) {
			log_error(
			        "Recipient addresses must be specified on the command line or via "
			        "the -t option");
			ret = CLI_EXIT_USAGE;
			break;
		}
		ret = deliver_stdin(&ctx, &opt);
		break;
	}
out:
	strv_free(&opt.rcpts);
	str_free(&sender);
	free(ctx.login);
	config_destroy(&ctx.cfg);
	return ret;
}
