/* pipe_command.c - run one pipe(8) command with a message on its standard
 * input (see pipe.h), as Postfix's pipe_command() and mail_copy() do.
 *
 * Used by pipe.c, once per request.
 *
 * The child: its own session (setsid, so that a time-out kills the
 * command and everything it started), standard input from a pipe,
 * standard output and standard error into one pipe the agent reads,
 * every other descriptor closed (the agent's listening socket and queue
 * file never reach the command), signals back to their defaults and
 * unblocked, the identity of user= (setgroups to its group only, setgid,
 * setuid, checked: privilege.h), the working directory, the environment
 * the caller built, then execve(). Everything the child needs (the
 * program's path, the environment) is prepared before fork(): between
 * fork and exec it calls no allocator.
 *
 * The agent: writes the message (prefix headers per flags=, every "\n"
 * as eol=, dot and From_ quoting) and reads the command's output at the
 * same time (one poll loop, so that a command that talks a lot before
 * reading cannot block both sides), keeps the first PIPE_OUTPUT_MAX bytes
 * of output, and waits for the command's exit through a pidfd, all
 * bounded by the time limit. A command that stops reading early (EPIPE)
 * is not an error by itself: its exit status decides, as in Postfix.
 *
 * Failure: nothing here is fatal; fork/pipe failures, a time-out, a read
 * error of the queue file and a write error other than EPIPE are reported
 * in struct pipe_run for pipe.c to turn into a deferral.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/mem.h"
#include "daemon/privilege.h"
#include "pipe.h"

#define CHUNK (64 * 1024)
/* Exit status of a child that could not start the command (Postfix's
 * pipe_child_cleanup: EX_TEMPFAIL, so the delivery is deferred). */
#define CHILD_FAILED 75

void pipe_run_init(struct pipe_run *run)
{
	memset(run, 0, sizeof(*run));
	str_init(&run->output);
	str_init(&run->error);
}

void pipe_run_free(struct pipe_run *run)
{
	str_free(&run->output);
	str_free(&run->error);
}

/* ---- the child ---- */

/* Say why in the command's output (which becomes the deferral's text)
 * and exit. Async-signal-safe enough: a stack buffer and write(2). */
static void child_fail(const char *what, const char *arg, int err)
{
	char buf[512];
	int n = snprintf(buf, sizeof(buf), "pipe: fatal: %s%s%s: %s\n", what, arg[0] ? " " : "",
	                 arg, strerror(err));

	if (n > 0)
		(void)!write(STDERR_FILENO, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf));
	_exit(CHILD_FAILED);
}

static void child_exec(const struct pipe_exec *ex, const char *path, int in_fd, int out_fd)
{
	sigset_t none;

	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			(void)signal(sig, SIG_DFL);
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	if (dup2(in_fd, STDIN_FILENO) < 0 || dup2(out_fd, STDOUT_FILENO) < 0 ||
	    dup2(out_fd, STDERR_FILENO) < 0)
		_exit(CHILD_FAILED);
	/* closefrom(): the listening socket, qmgr's connection, the queue
	 * file and the agent's pipe ends all go. */
	closefrom(3);
	if (ex->switch_user) {
		str_t error;

		/* Back to root (the saved uid) for the identity change. */
		if (geteuid() != 0 && seteuid(0) < 0)
			child_fail("seteuid", "0", errno);
		str_init(&error);
		if (privilege_drop(ex->attr->uid, ex->attr->gid, (gid_t)-1, &error) < 0)
			child_fail("cannot run as", ex->attr->user, errno);
	}
	if (setsid() < 0)
		child_fail("setsid", "", errno);
	if (ex->directory != NULL && chdir(ex->directory) < 0) {
		if (ex->directory_required)
			child_fail("cannot change directory to", ex->directory, errno);
		if (chdir("/") < 0)
			child_fail("cannot change directory to", "/", errno);
	}
	execve(path, ex->argv, ex->envp);
	child_fail("pipe_command: execvp", ex->argv[0], errno);
}

/* The program execve() runs: argv[0] itself when it holds a '/', else the
 * first executable of that name in the command's PATH, as execvp() would
 * (found before fork). Owned by the caller. */
static char *find_program(const char *name, char *const *envp)
{
	const char *path = "/usr/bin:/bin";

	if (strchr(name, '/') != NULL || name[0] == '\0')
		return xstrdup(name);
	for (char *const *e = envp; *e != NULL; e++)
		if (strncmp(*e, "PATH=", 5) == 0)
			path = *e + 5;
	while (*path != '\0') {
		size_t len = strcspn(path, ":");
		char *candidate = len == 0 ? xasprintf("./%s", name)
		                           : xasprintf("%.*s/%s", (int)len, path, name);

		if (access(candidate, X_OK) == 0)
			return candidate;
		free(candidate);
		path += len;
		if (*path == ':')
			path++;
	}
	return xstrdup(name);
}

/* ---- the message ---- */

struct feed {
	const struct pipe_message *msg;
	const struct pipe_attr *attr;
	uint64_t pos; /* next content byte to read */
	bool at_line_start;
	bool last_was_lf;
	bool done; /* everything (trailer included) is in pending */
	str_t pending;
	size_t sent; /* bytes of pending written */
	char *buf;
};

static void put_eol(struct feed *f)
{
	str_append_n(&f->pending, f->attr->eol.buf, f->attr->eol.len);
}

/* The prefix headers of flags= (Postfix's mail_copy order). */
static void feed_start(struct feed *f)
{
	unsigned flags = f->attr->flags;
	const char *sender = f->msg->sender;

	if (flags & PIPE_F_FROM) {
		time_t now = time(NULL);
		struct tm tm;
		char date[32];

		/* asctime() format, without its newline: "Thu Nov 24 18:22:48 1986" */
		if (localtime_r(&now, &tm) == NULL ||
		    strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y", &tm) == 0)
			date[0] = '\0';
		str_append(&f->pending, "From ");
		if (sender[0] == '\0')
			str_append(&f->pending, "MAILER-DAEMON");
		else
			pipe_quote_local(sender, &f->pending);
		str_appendf(&f->pending, "  %s", date);
		put_eol(f);
	}
	if (flags & PIPE_F_RETURN_PATH) {
		str_append(&f->pending, "Return-Path: <");
		if (sender[0] != '\0')
			pipe_quote_local(sender, &f->pending);
		str_append(&f->pending, ">");
		put_eol(f);
	}
	if ((flags & PIPE_F_ORIG_RCPT) && f->msg->orig_rcpt[0] != '\0') {
		str_append(&f->pending, "X-Original-To: ");
		pipe_quote_local(f->msg->orig_rcpt, &f->pending);
		put_eol(f);
	}
	if (flags & PIPE_F_DELIVERED) {
		size_t start;

		str_append(&f->pending, "Delivered-To: ");
		start = f->pending.len;
		pipe_quote_local(f->msg->delivered, &f->pending);
		for (size_t i = start; i < f->pending.len; i++)
			f->pending.buf[i] = (char)tolower((unsigned char)f->pending.buf[i]);
		put_eol(f);
	}
	f->at_line_start = true;
	f->last_was_lf = true;
}

/* Put the next piece of content into pending. Why only up to the last
 * line end of a chunk: the From_ check needs the first five bytes of a
 * line, so a line is never split at a chunk edge unless it is longer
 * than the chunk. -1 with errno on a read error. */
static int feed_more(struct feed *f)
{
	const struct pipe_message *m = f->msg;
	uint64_t left = m->length - f->pos;
	size_t want = left < CHUNK ? (size_t)left : CHUNK, use;
	ssize_t n;

	if (left == 0) {
		/* A last line without its line end still gets one. */
		if (!f->last_was_lf)
			put_eol(f);
		if (f->attr->flags & PIPE_F_BLANK)
			put_eol(f);
		f->done = true;
		return 0;
	}
	n = pread(m->fd, f->buf, want, (off_t)(m->offset + f->pos));
	if (n < 0)
		return -1;
	if (n == 0) {
		errno = EIO; /* the queue file is shorter than its header says */
		return -1;
	}
	use = (size_t)n;
	if ((uint64_t)n < left) {
		const char *lf = memrchr(f->buf, '\n', (size_t)n);

		if (lf != NULL)
			use = (size_t)(lf - f->buf) + 1;
	}
	for (size_t i = 0; i < use; i++) {
		char c = f->buf[i];

		if (f->at_line_start) {
			if ((f->attr->flags & PIPE_F_QUOTE_FROM) && use - i >= 5 &&
			    memcmp(f->buf + i, "From ", 5) == 0)
				str_append_c(&f->pending, '>');
			if ((f->attr->flags & PIPE_F_DOT) && c == '.')
				str_append_c(&f->pending, '.');
		}
		if (c == '\n') {
			put_eol(f);
			f->at_line_start = true;
		} else {
			str_append_c(&f->pending, c);
			f->at_line_start = false;
		}
	}
	f->last_was_lf = f->buf[use - 1] == '\n';
	f->pos += use;
	return 0;
}

/* ---- the agent's side ---- */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Keep output bytes: tabs and line breaks as spaces, other unprintable
 * bytes as '_' (Postfix: translit + printable). */
static void keep_output(struct pipe_run *run, const char *data, size_t n)
{
	for (size_t i = 0; i < n && run->output.len < PIPE_OUTPUT_MAX; i++) {
		unsigned char c = (unsigned char)data[i];

		if (c == '\t' || c == '\n' || c == '\r')
			c = ' ';
		else if (c < 0x20 || c >= 0x7f)
			c = '_';
		str_append_c(&run->output, (char)c);
	}
}

/* Kill the command's session, as root when the agent switched identity
 * (the command runs as another user), then back. */
static void kill_command(const struct pipe_exec *ex, pid_t pid)
{
	bool raise = ex->switch_user && geteuid() != 0 && seteuid(0) == 0;

	if (kill(-pid, SIGKILL) < 0)
		(void)kill(pid, SIGKILL);
	if (raise && seteuid(ex->kill_uid) < 0)
		abort(); /* cannot happen: the saved uid is root */
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void pipe_command_run(const struct pipe_exec *ex, const struct pipe_message *msg,
                      struct pipe_run *run)
{
	struct feed f = {.msg = msg, .attr = ex->attr};
	int in[2] = {-1, -1}, out[2] = {-1, -1}, pidfd = -1, wstatus = 0;
	uint64_t deadline = now_ms() + ex->time_limit * 1000;
	char *path = find_program(ex->argv[0], ex->envp);
	bool exited = false, timed_out = false;
	char obuf[4096];
	pid_t pid;

	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
		str_appendf(&run->error, "Delivery failed: pipe: %s", strerror(errno));
		run->how = PIPE_EXIT_NOT_RUN;
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		str_appendf(&run->error, "Delivery failed: fork: %s", strerror(errno));
		run->how = PIPE_EXIT_NOT_RUN;
		goto out;
	}
	if (pid == 0)
		child_exec(ex, path, in[0], out[1]);
	close_fd(&in[0]);
	close_fd(&out[1]);
	(void)fcntl(in[1], F_SETFL, O_NONBLOCK);
	(void)fcntl(out[0], F_SETFL, O_NONBLOCK);
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);

	str_init(&f.pending);
	f.buf = xmalloc(CHUNK);
	feed_start(&f);
	for (;;) {
		struct pollfd pfd[3];
		nfds_t n = 0;
		int wait_ms, in_i = -1, out_i = -1, pid_i = -1;
		uint64_t now = now_ms();

		/* Keep something to write while the command reads. */
		while (in[1] >= 0 && f.sent == f.pending.len && !f.done) {
			str_reset(&f.pending);
			f.sent = 0;
			if (feed_more(&f) < 0) {
				str_appendf(&run->error, "error reading message: %s",
				            strerror(errno));
				run->io_error = true;
				close_fd(&in[1]);
			}
		}
		if (in[1] >= 0 && f.done && f.sent == f.pending.len)
			close_fd(&in[1]); /* end of message for the command */
		if (!exited && pidfd < 0 &&
		    waitpid(pid, &wstatus, WNOHANG) == pid) /* no pidfd: poll for it */
			exited = true;
		if (exited) {
			/* The command is gone: the rest of the message has no
			 * reader, and output that is not there yet belongs to
			 * something it left behind. */
			close_fd(&in[1]);
			if (out[0] >= 0) {
				ssize_t r;

				while ((r = read(out[0], obuf, sizeof(obuf))) > 0)
					keep_output(run, obuf, (size_t)r);
				close_fd(&out[0]);
			}
			break;
		}
		if (now >= deadline) {
			timed_out = true;
			break;
		}
		wait_ms = deadline - now > 60000 ? 60000 : (int)(deadline - now);
		if (pidfd < 0 && wait_ms > 50)
			wait_ms = 50;
		if (in[1] >= 0) {
			in_i = (int)n;
			pfd[n++] = (struct pollfd){.fd = in[1], .events = POLLOUT};
		}
		if (out[0] >= 0) {
			out_i = (int)n;
			pfd[n++] = (struct pollfd){.fd = out[0], .events = POLLIN};
		}
		if (pidfd >= 0) {
			pid_i = (int)n;
			pfd[n++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
		}
		if (poll(pfd, n, wait_ms) < 0) {
			if (errno == EINTR)
				continue;
			str_appendf(&run->error, "poll: %s", strerror(errno));
			run->io_error = true;
			timed_out = true; /* cannot watch it: stop it */
			break;
		}
		if (in_i >= 0 && pfd[in_i].revents != 0) {
			ssize_t w = write(in[1], f.pending.buf + f.sent, f.pending.len - f.sent);

			if (w > 0) {
				f.sent += (size_t)w;
			} else if (w < 0 && errno != EAGAIN) {
				/* EPIPE: the command does not want the rest; its
				 * exit status decides (Postfix). */
				if (errno != EPIPE) {
					str_appendf(&run->error, "error writing message: %s",
					            strerror(errno));
					run->io_error = true;
				}
				close_fd(&in[1]);
			}
		}
		if (out_i >= 0 && pfd[out_i].revents != 0) {
			ssize_t r = read(out[0], obuf, sizeof(obuf));

			if (r > 0)
				keep_output(run, obuf, (size_t)r);
			else if (r == 0 || errno != EAGAIN)
				close_fd(&out[0]);
		}
		if (pid_i >= 0 && pfd[pid_i].revents != 0 && waitpid(pid, &wstatus, WNOHANG) == pid)
			exited = true;
	}
	if (timed_out) {
		kill_command(ex, pid);
		while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
			;
		run->how = PIPE_EXIT_TIMEOUT;
	} else if (WIFSIGNALED(wstatus)) {
		run->how = PIPE_EXIT_SIGNAL;
		run->status = WTERMSIG(wstatus);
	} else {
		run->how = PIPE_EXIT_STATUS;
		run->status = WEXITSTATUS(wstatus);
	}
	str_free(&f.pending);
	free(f.buf);
out:
	close_fd(&in[0]);
	close_fd(&in[1]);
	close_fd(&out[0]);
	close_fd(&out[1]);
	close_fd(&pidfd);
	free(path);
}
