/* local_command.c - delivery to a command: |command destinations of
 * aliases, .forward and :include: files, and mailbox_command (Postfix
 * local(8) command.c with pipe_command()).
 *
 * The command runs as `local_command_shell -c COMMAND` (/bin/sh -c when
 * empty) as the identity of its destination, in
 * command_execution_directory (else the identity's home, else /), with
 * Postfix's environment (HOME, USER, SHELL, LOGNAME, EXTENSION, DOMAIN,
 * LOCAL, RECIPIENT, SENDER, ORIGINAL_RECIPIENT, PATH and TZ). Its standard
 * input is the message with a From_ line, Return-Path, X-Original-To and
 * Delivered-To (mbox.h MBOX_COPY_COMMAND); its output (standard output
 * and error, the first COMMAND_OUTPUT_MAX bytes) goes into the reason.
 *
 * Outcome, as Postfix: exit 0 is delivered; a sysexits code gives its
 * status ("temporary failure" 4.3.0 for EX_TEMPFAIL, "user unknown" 5.1.1
 * ...); any other code bounces: Command died with status N: "COMMAND";
 * a signal defers. Unlike Postfix, a command that outlives
 * command_time_limit is a deferral (4.3.0), not a bounce: mail is never
 * lost to a hung filter; the command and its children are killed.
 *
 * SECURITY: the child gives up root for good (setgroups, setgid, setuid,
 * checked) before anything else, runs with all signals unblocked and
 * SIGPIPE at its default, and inherits no descriptor but the pipes. The
 * message is written by a second child running as mail_owner, so a
 * command that stops reading cannot block the agent: the agent only
 * waits, bounded by command_time_limit.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/strv.h"
#include "delivery/delivery_log.h"
#include "delivery/mbox.h"
#include "local.h"

#define COMMAND_OUTPUT_MAX 2000

/* Postfix sys_exits.c. */
static const struct {
	int code;
	const char *dsn;
	const char *text;
} sys_exits[] = {
        {EX_USAGE, "5.3.0", "command line usage error"},
        {EX_DATAERR, "5.6.0", "data format error"},
        {EX_NOINPUT, "5.3.0", "cannot open input"},
        {EX_NOUSER, "5.1.1", "user unknown"},
        {EX_NOHOST, "5.1.2", "host name unknown"},
        {EX_UNAVAILABLE, "5.3.0", "service unavailable"},
        {EX_SOFTWARE, "5.3.0", "internal software error"},
        {EX_OSERR, "4.3.0", "system resource problem"},
        {EX_OSFILE, "5.3.0", "critical OS file missing"},
        {EX_CANTCREAT, "5.2.0", "can't create user output file"},
        {EX_IOERR, "5.3.0", "input/output error"},
        {EX_TEMPFAIL, "4.3.0", "temporary failure"},
        {EX_PROTOCOL, "5.5.0", "remote error in protocol"},
        {EX_NOPERM, "5.7.0", "permission denied"},
        {EX_CONFIG, "5.3.5", "local configuration error"},
};

static void put_env(strv_t *env, const char *name, const char *value)
{
	if (value != NULL)
		strv_add_owned(env, xasprintf("%s=%s", name, value));
}

/* The child: become ids for good, set up and exec. Never returns. */
static void child(struct local_agent *la, const char *command, const struct local_ids *ids,
                  const char *cwd, const struct local_command_env *e, int in, int out)
{
	strv_t argv = STRV_INIT, env = STRV_INIT;
	sigset_t none;
	const char *tz = getenv("TZ");

	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	(void)signal(SIGPIPE, SIG_DFL);
	(void)setpgid(0, 0);
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		_exit(EX_OSERR);
	(void)close_range(3, ~0U, 0);
	if (la->root) {
		if (seteuid(0) < 0 || setgroups(1, &ids->gid) < 0 || setgid(ids->gid) < 0 ||
		    setuid(ids->uid) < 0 || (ids->uid != 0 && (setuid(0) == 0 || geteuid() == 0))) {
			fprintf(stderr, "cannot switch to uid %ld: %s\n", (long)ids->uid,
			        strerror(errno));
			_exit(EX_OSERR);
		}
	}
	if (chdir(cwd) < 0) {
		fprintf(stderr, "unable to change to directory %s: %s\n", cwd, strerror(errno));
		_exit(EX_TEMPFAIL);
	}
	put_env(&env, "HOME", e->home);
	put_env(&env, "USER", e->user);
	put_env(&env, "LOGNAME", e->user);
	put_env(&env, "SHELL", e->shell);
	put_env(&env, "EXTENSION", e->extension);
	put_env(&env, "DOMAIN", e->domain);
	put_env(&env, "LOCAL", e->local);
	put_env(&env, "RECIPIENT", e->recipient);
	put_env(&env, "SENDER", e->sender);
	put_env(&env, "ORIGINAL_RECIPIENT", e->orig);
	put_env(&env, "PATH", "/usr/bin:/bin");
	put_env(&env, "TZ", tz);
	if (la->shell[0] == '\0') {
		strv_add(&argv, "/bin/sh");
		strv_add(&argv, "-c");
	} else {
		const char *p = la->shell;

		while (*p != '\0') {
			size_t len;

			p += strspn(p, " \t");
			len = strcspn(p, " \t");
			if (len > 0)
				strv_add_n(&argv, p, len);
			p += len;
		}
	}
	strv_add(&argv, command);
	execve(argv.v[0], argv.v, env.v);
	fprintf(stderr, "cannot execute %s: %s\n", argv.v[0], strerror(errno));
	_exit(EX_OSERR);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {0, ms * 1000000L};

	(void)nanosleep(&ts, NULL);
}

/* Wait for pid until deadline (monotonic ms); 0 with *status_r, or -1
 * when the time ran out. */
static int wait_until(pid_t pid, uint64_t deadline_ms, int *status_r)
{
	for (;;) {
		struct timespec now;
		pid_t r = waitpid(pid, status_r, WNOHANG);

		if (r == pid)
			return 0;
		if (r < 0 && errno != EINTR)
			return 0; /* already reaped: treat as done */
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000 >= deadline_ms)
			return -1;
		sleep_ms(10);
	}
}

static uint64_t now_ms(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
}

/* Command output as one printable line. */
static void clean_output(str_t *o)
{
	for (size_t i = 0; i < o->len; i++)
		if ((unsigned char)o->buf[i] < 0x20 || o->buf[i] == 0x7f)
			o->buf[i] = ' ';
	str_trim(o);
}

enum local_status local_command_run(struct local_agent *la, const struct local_message *msg,
                                    const char *command, const struct local_ids *ids,
                                    const char *cwd, const struct local_command_env *env,
                                    const char *delivered, char dsn[8], str_t *why)
{
	struct maildir_fd_source src = {
	        .fd = msg->fd, .offset = msg->content_offset, .length = msg->content_length};
	struct mbox_copy copy = {.flags = MBOX_COPY_COMMAND,
	                         .sender = msg->sender,
	                         .orig_rcpt = env->orig,
	                         .delivered = delivered,
	                         .read = maildir_read_fd,
	                         .read_context = &src};
	uint64_t deadline = now_ms() + la->command_time_limit * 1000;
	int in[2] = {-1, -1}, out[2] = {-1, -1}, status = 0, wstatus = 0;
	pid_t pid, writer;
	bool timeout = false;
	str_t output;

	str_init(&output);
	snprintf(dsn, 8, "4.3.0");
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
		str_appendf(why, "cannot create pipe: %s", strerror(errno));
		goto fail;
	}
	if ((pid = fork()) < 0) {
		str_appendf(why, "cannot fork: %s", strerror(errno));
		goto fail;
	}
	if (pid == 0)
		child(la, command, ids, cwd != NULL ? cwd : "/", env, in[0], out[1]);
	close(in[0]);
	close(out[1]);
	in[0] = out[1] = -1;
	if ((writer = fork()) < 0) {
		str_appendf(why, "cannot fork: %s", strerror(errno));
		kill(-pid, SIGKILL);
		(void)waitpid(pid, NULL, 0);
		goto fail;
	}
	if (writer == 0) {
		uint64_t written;
		bool read_error;

		close(out[0]);
		if (mbox_copy_write(in[1], &copy, &written, &read_error) < 0)
			_exit(read_error ? 3 : errno == EPIPE ? 2 : 1);
		_exit(0);
	}
	close(in[1]);
	in[1] = -1;
	/* The output, until every writer of it is gone or time runs out. */
	for (;;) {
		struct pollfd pfd = {.fd = out[0], .events = POLLIN};
		uint64_t now = now_ms();
		char buf[4096];
		ssize_t n;
		int r;

		if (now >= deadline) {
			timeout = true;
			break;
		}
		r = poll(&pfd, 1, (int)(deadline - now > 1000 ? 1000 : deadline - now));
		if (r < 0 && errno != EINTR)
			break;
		if (r <= 0)
			continue;
		n = read(out[0], buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (output.len < COMMAND_OUTPUT_MAX)
			str_append_n(&output, buf,
			             output.len + (size_t)n > COMMAND_OUTPUT_MAX
			                     ? COMMAND_OUTPUT_MAX - output.len
			                     : (size_t)n);
	}
	if (timeout || wait_until(pid, deadline, &status) < 0) {
		timeout = true;
		kill(-pid, SIGKILL);
		(void)waitpid(pid, &status, 0);
	}
	if (wait_until(writer, now_ms() + 5000, &wstatus) < 0) {
		kill(writer, SIGKILL);
		(void)waitpid(writer, &wstatus, 0);
	}
	close(out[0]);
	clean_output(&output);
#define OUTPUT output.len > 0 ? ". Command output: " : "", str_c(&output)
	if (timeout) {
		str_appendf(why, "Command time limit exceeded: \"%s\"%s%s", command, OUTPUT);
		str_free(&output);
		return LOCAL_DEFERRED;
	}
	if (WIFSIGNALED(status)) {
		str_appendf(why, "Command died with signal %d: \"%s\"%s%s", WTERMSIG(status),
		            command, OUTPUT);
		str_free(&output);
		return LOCAL_DEFERRED;
	}
	if (WEXITSTATUS(status) != 0) {
		int code = WEXITSTATUS(status);

		for (size_t i = 0; i < sizeof(sys_exits) / sizeof(sys_exits[0]); i++) {
			if (sys_exits[i].code == code) {
				snprintf(dsn, 8, "%s", sys_exits[i].dsn);
				str_appendf(why, "%s%s%s", sys_exits[i].text, OUTPUT);
				str_free(&output);
				return dsn[0] == '4' ? LOCAL_DEFERRED : LOCAL_BOUNCED;
			}
		}
		snprintf(dsn, 8, "5.3.0");
		str_appendf(why, "Command died with status %d: \"%s\"%s%s", code, command, OUTPUT);
		str_free(&output);
		return LOCAL_BOUNCED;
	}
	/* The command succeeded; a writer that failed other than by the
	 * command not reading everything (EPIPE) did not give it the whole
	 * message. */
	if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) != 0 && WEXITSTATUS(wstatus) != 2) {
		str_appendf(why, "Command failed: %s: \"%s\"",
		            WEXITSTATUS(wstatus) == 3 ? "error reading message"
		                                      : "error writing to command",
		            command);
		str_free(&output);
		return LOCAL_DEFERRED;
	}
#undef OUTPUT
	str_free(&output);
	snprintf(dsn, 8, "2.0.0");
	return LOCAL_SENT;
fail:
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (out[i] >= 0)
			close(out[i]);
	}
	str_free(&output);
	return LOCAL_DEFERRED;
}
