/* pipe.h - the pipe delivery agent's parts, shared by its files:
 *
 *   pipe.c          main: the master.cf attributes (flags=, user=, argv=
 *                   ...), one request (delivery.h) -> one command run,
 *                   the outcome mapped to sent/deferred/bounced, the log
 *   pipe_expand.c   the command's argument vector: $sender, ${recipient}
 *                   (one argument per recipient) ... with the q, h, u
 *                   flags' quoting and case folding
 *   pipe_command.c  running the command: fork, become user=, feed it the
 *                   message (Return-Path, Delivered-To, From_ ... per
 *                   flags=, eol=), capture its output, enforce the time
 *                   limit, and read its exit status
 */
#ifndef POSTERN_PIPE_H
#define POSTERN_PIPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/str.h"
#include "base/strv.h"

/* flags= letters (Postfix pipe(8)). */
enum {
	PIPE_F_BLANK = 1 << 0, /* B: a blank line after the message */
	PIPE_F_DELIVERED = 1 << 1, /* D: Delivered-To: recipient */
	PIPE_F_FROM = 1 << 2, /* F: the From_ line */
	PIPE_F_ORIG_RCPT = 1 << 3, /* O: X-Original-To: original recipient */
	PIPE_F_RETURN_PATH = 1 << 4, /* R: Return-Path: <sender> */
	PIPE_F_FINAL = 1 << 5, /* X: final delivery (DSN "delivered") */
	PIPE_F_FOLD_HOST = 1 << 6, /* h: lower-case domains and $nexthop */
	PIPE_F_QUOTE = 1 << 7, /* q: RFC 822 quoting of local parts */
	PIPE_F_FOLD_USER = 1 << 8, /* u: lower-case recipient local parts */
	PIPE_F_DOT = 1 << 9, /* .: a leading "." doubled */
	PIPE_F_QUOTE_FROM = 1 << 10, /* >: ">" before "From " at line start */
};

/* The service's master.cf attributes, parsed once at start. */
struct pipe_attr {
	strv_t command; /* argv= and what follows: templates */
	char *user; /* user= name, for messages */
	uid_t uid;
	gid_t gid;
	unsigned flags;
	char *directory; /* directory=, or NULL */
	str_t eol; /* eol=, "\n" by default, escapes decoded */
	char *null_sender; /* null_sender=, "MAILER-DAEMON" by default */
	uint64_t size_limit; /* size=, 0 for none */
};

/* One recipient of the request. */
struct pipe_rcpt {
	const char *address;
	const char *orig; /* original recipient (= address when none) */
};

/* The values of the recipient-independent macros (name -> value). */
struct pipe_var {
	const char *name;
	const char *value;
};

/* Expand the command templates into argv (appended) for the recipients:
 * an argument that names a recipient-dependent macro (recipient,
 * original_recipient, user, extension, mailbox, domain) becomes one
 * argument per recipient (skipped for a recipient whose $user is empty,
 * as Postfix does); the others become one argument each. Forms: $name,
 * ${name}, $(name), ${name?text} (text when the value is not empty),
 * ${name:text} (text when it is empty), $$ for a dollar. flags: PIPE_F_
 * QUOTE, FOLD_HOST, FOLD_USER. delimiters is recipient_delimiter. Returns
 * 0, or -1 with the bad template and why appended to error (an unknown
 * macro name or a malformed $ form): the caller defers with 4.3.5. */
int pipe_expand_argv(const strv_t *templates, const struct pipe_var *vars, size_t nvars,
                     const struct pipe_rcpt *rcpts, size_t nrcpts, unsigned flags,
                     const char *delimiters, strv_t *argv, str_t *error);

/* Check that every template is well formed and names known macros only
 * (the check pipe_expand_argv does); -1 with why appended. */
int pipe_expand_check(const strv_t *templates, str_t *error);

/* Append address with its local part (left of the rightmost '@') in RFC
 * 822 quotes when it is not a dot-atom ('"' and '\' escaped), as
 * Postfix's quote_822_local(). */
void pipe_quote_local(const char *address, str_t *out);

/* What the command did. */
enum pipe_exit {
	PIPE_EXIT_STATUS, /* it exited: status holds the exit status */
	PIPE_EXIT_SIGNAL, /* killed by signal number status */
	PIPE_EXIT_TIMEOUT, /* over the time limit: killed */
	PIPE_EXIT_NOT_RUN, /* fork or pipe failed: error says why */
};

struct pipe_run {
	enum pipe_exit how;
	int status;
	str_t output; /* first PIPE_OUTPUT_MAX bytes of stdout+stderr,
	               * tabs and line breaks turned into spaces, other
	               * unprintable bytes into '_' */
	str_t error; /* PIPE_EXIT_NOT_RUN, or a read error of the queue
	              * file or a write error other than EPIPE */
	bool io_error; /* error holds a read/write problem */
};

/* Command output kept for the log and the bounce (Postfix keeps one
 * VSTREAM buffer, 4096 bytes). */
#define PIPE_OUTPUT_MAX 4096

/* The message the command reads on its standard input. */
struct pipe_message {
	int fd; /* the queue file, read with pread */
	uint64_t offset, length; /* its content */
	const char *sender; /* after null_sender replacement */
	const char *orig_rcpt; /* for O */
	const char *delivered; /* for D */
};

/* Everything about running the command. */
struct pipe_exec {
	char *const *argv; /* NULL-terminated, expanded */
	const struct pipe_attr *attr;
	bool switch_user; /* run as attr->uid/gid (the agent is root) */
	uid_t kill_uid; /* effective uid to return to after kill() */
	const char *directory; /* chdir here (attr's, or queue_directory) */
	bool directory_required; /* directory= given: failing to enter it
	                          * is an error, not a fallback to "/" */
	char *const *envp; /* the command's environment */
	uint64_t time_limit; /* seconds, > 0 */
};

/* Run the command with the message on its standard input; fills run
 * (initialise its strings first: pipe_run_init). Never fails as a
 * function: everything is in run. */
void pipe_command_run(const struct pipe_exec *ex, const struct pipe_message *msg,
                      struct pipe_run *run);
void pipe_run_init(struct pipe_run *run);
void pipe_run_free(struct pipe_run *run);

#endif
