/* pipe.c - the pipe delivery agent: hands a message to a command
 * (Postfix pipe(8)).
 *
 * `pipe -c DIR [-s SERVICE] [-l FD] [-v] [-e] ATTRIBUTE...`, run by master
 * for a master.cf service such as
 *
 *   spamassassin unix - n n - - pipe
 *     user=spamd argv=/usr/bin/spamc -f -e /usr/sbin/sendmail -oi -f ${sender} ${recipient}
 *
 * A request server (lib/daemon/request_server.h) speaking the protocol of
 * lib/delivery/delivery.h. The attributes after the options are the
 * service's (master passes master.cf's arguments after its own options):
 * flags=BDFORXhqu.> user=NAME[:GROUP] directory=DIR eol=TEXT
 * null_sender=TEXT size=BYTES argv=COMMAND ARGS... (argv= last: the rest
 * of the line is the command). A missing user= or argv=, an unknown
 * attribute or flag, or a user= with root, mail_owner's or setgid_group's
 * identity are fatal at start, as in Postfix (master then throttles the
 * service and qmgr defers its mail).
 *
 * Per request: one command run for all its recipients (qmgr sends up to
 * SERVICE_destination_recipient_limit of them; flags D and O need 1), the
 * message on its standard input, bounded by SERVICE_time_limit
 * (command_time_limit, 1000 s). The outcome, the same for every recipient:
 *   exit 0                       sent, "delivered via SERVICE service"
 *                                (and the first 100 bytes of output)
 *   output "X.Y.Z text", exit!=0 that status and text (4: deferred)
 *   a sysexits.h status          its RFC 3463 code and text (EX_NOUSER
 *                                5.1.1 bounced, EX_TEMPFAIL 4.3.0
 *                                deferred ...), ". Command output: ..."
 *   another status               deferred 4.3.0 "Command died with
 *                                status N: "CMD"" (Postfix bounces 5.3.0:
 *                                postern does not return mail because a
 *                                script failed in an unforeseen way)
 *   a signal, the time limit     deferred 4.3.0 (Postfix bounces a time
 *                                limit with 5.3.0; see README)
 * and logged per recipient in Postfix's format with relay=SERVICE.
 *
 * SECURITY: the request comes from qmgr over a socket only the queue
 * owner can reach, and names the queue file by validated ID. The agent
 * runs as root (master.cf unpriv column n) only so that it can start the
 * command as user=; it serves with the effective identity of mail_owner
 * (setgroups, setegid, seteuid after start, as Postfix's pipe) and takes
 * root back only in the child, to become user= for good, and to kill a
 * command that ran out of time. The command gets an argv for execve(),
 * never a shell line (pipe_expand.c), a clean environment (PATH,
 * export_environment and MAIL_CONFIG), no descriptor of the agent's, and
 * its own session.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/attr.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/parse.h"
#include "base/str.h"
#include "conf/config.h"
#include "daemon/daemon.h"
#include "daemon/privilege.h"
#include "daemon/request_server.h"
#include "delivery/delivery.h"
#include "delivery/delivery_log.h"
#include "delivery/delivery_request.h"
#include "queue/queue_dir.h"
#include "queue/queue_file.h"
#include "pipe.h"

/* Seconds qmgr may stay silent between requests. */
#define PIPE_IDLE_TIMEOUT 60
/* Bytes of header read for the Delivered-To loop check (flag D). */
#define PIPE_HEADER_SCAN_MAX (256 * 1024)
/* Command output shown after "delivered via ... service" (Postfix). */
#define PIPE_SENT_OUTPUT_MAX 100

struct pipe_agent {
	struct config *cfg;
	struct queue_dir *qd;
	char *service; /* master.cf service name: relay=, SERVICE_time_limit */
	char *config_dir;
	char *queue_directory;
	char *delimiters;
	struct pipe_attr attr;
	uint64_t time_limit;
	bool root; /* started as root: switch to user= per command */
	uid_t owner_uid;
	gid_t owner_gid;
	strv_t env; /* the command's environment */
	strv_t args; /* the service's attributes, from the command line */
};

/* The outcome of one request, the same for every recipient. */
struct outcome {
	const char *action;
	char status[16];
	str_t reason;
};

static void set_outcome(struct outcome *o, const char *action, const char *status, const char *fmt,
                        ...) __attribute__((format(printf, 4, 5)));

static void set_outcome(struct outcome *o, const char *action, const char *status, const char *fmt,
                        ...)
{
	va_list ap;

	o->action = action;
	snprintf(o->status, sizeof(o->status), "%s", status);
	str_reset(&o->reason);
	va_start(ap, fmt);
	str_vappendf(&o->reason, fmt, ap);
	va_end(ap);
}

/* ---- the service's attributes ---- */

/* Decode eol='s C escapes (\n, \r, \t, \\, \NNN octal), as Postfix's
 * unescape(). */
static void unescape(const char *s, str_t *out)
{
	str_reset(out);
	for (; *s != '\0'; s++) {
		int c = (unsigned char)*s;

		if (c == '\\' && s[1] != '\0') {
			s++;
			switch (*s) {
			case 'n':
				c = '\n';
				break;
			case 'r':
				c = '\r';
				break;
			case 't':
				c = '\t';
				break;
			case 'a':
				c = '\a';
				break;
			case 'b':
				c = '\b';
				break;
			case 'f':
				c = '\f';
				break;
			case 'v':
				c = '\v';
				break;
			default:
				if (*s >= '0' && *s <= '7') {
					c = 0;
					for (int i = 0; i < 3 && *s >= '0' && *s <= '7'; i++, s++)
						c = c * 8 + (*s - '0');
					s--;
				} else {
					c = (unsigned char)*s;
				}
			}
		}
		str_append_c(out, (char)c);
	}
}

static bool has_prefix(const char *arg, const char *prefix, const char **value_r)
{
	size_t len = strlen(prefix);

	if (strncasecmp(arg, prefix, len) != 0)
		return false;
	*value_r = arg + len;
	return true;
}

/* Postfix's get_service_attr(); every problem is fatal (broken master.cf). */
static void parse_attributes(struct pipe_agent *pa)
{
	struct pipe_attr *a = &pa->attr;
	const char *v, *where = pa->service;
	char *group = NULL;
	bool have_user = false;
	struct privilege_owner owner;
	str_t error;

	str_init(&error);
	str_set(&a->eol, "\n");
	a->null_sender = xstrdup("MAILER-DAEMON");
	for (size_t i = 0; i < pa->args.n; i++) {
		const char *arg = pa->args.v[i];

		if (has_prefix(arg, "flags=", &v)) {
			static const char letters[] = "BDFORXhqu.>";

			for (; *v != '\0'; v++) {
				const char *p = strchr(letters, *v);

				if (p == NULL)
					log_fatal(
					        "service %s: unknown flag: %c (expected one of %s)",
					        where, *v, letters);
				a->flags |= 1u << (p - letters);
			}
		} else if (has_prefix(arg, "user=", &v)) {
			char *colon;

			free(a->user);
			free(group);
			a->user = xstrdup(v);
			group = NULL;
			if ((colon = strchr(a->user, ':')) != NULL) {
				*colon = '\0';
				if (colon[1] != '\0')
					group = xstrdup(colon + 1);
			}
			have_user = true;
		} else if (has_prefix(arg, "directory=", &v)) {
			free(a->directory);
			a->directory = xstrdup(v);
		} else if (has_prefix(arg, "eol=", &v)) {
			unescape(v, &a->eol);
		} else if (has_prefix(arg, "null_sender=", &v)) {
			free(a->null_sender);
			a->null_sender = xstrdup(v);
		} else if (has_prefix(arg, "size=", &v)) {
			if (parse_uint64(v, 0, INT64_MAX, &a->size_limit) < 0)
				log_fatal("service %s: bad size= value: %s (expected bytes)", where,
				          v);
		} else if (has_prefix(arg, "chroot=", &v)) {
			log_fatal("service %s: chroot= is not implemented yet", where);
		} else if (has_prefix(arg, "argv=", &v)) {
			strv_add(&a->command, v);
			for (i++; i < pa->args.n; i++)
				strv_add(&a->command, pa->args.v[i]);
			break;
		} else {
			log_fatal("service %s: unknown attribute name: %s (expected flags=, user=, "
			          "directory=, eol=, null_sender=, size= or argv=)",
			          where, arg);
		}
	}
	if (!have_user)
		log_fatal("service %s: missing user= command-line attribute", where);
	if (a->command.n == 0 || a->command.v[0][0] == '\0')
		log_fatal("service %s: missing argv= command-line attribute", where);
	if (pipe_expand_check(&a->command, &error) < 0)
		log_fatal("service %s: %s", where, str_c(&error));
	{
		struct passwd *pw = getpwnam(a->user);

		if (pw == NULL)
			log_fatal("service %s: user=%s: unknown username", where, a->user);
		a->uid = pw->pw_uid;
		a->gid = pw->pw_gid;
	}
	if (group != NULL) {
		struct group *gr = getgrnam(group);

		if (gr == NULL)
			log_fatal("service %s: user=%s:%s: unknown group: %s", where, a->user,
			          group, group);
		a->gid = gr->gr_gid;
	}
	/* Postfix's checks: the command never runs with the mail system's
	 * own privileges. */
	if (a->uid == 0)
		log_fatal("service %s: user= command-line attribute specifies root privileges",
		          where);
	if (a->gid == 0)
		log_fatal(
		        "service %s: user= command-line attribute specifies privileged group id 0",
		        where);
	if (privilege_owner_lookup(config_str(pa->cfg, "mail_owner"), &owner, &error) == 0) {
		if (a->uid == owner.uid)
			log_fatal("service %s: user= command-line attribute specifies mail system "
			          "owner %s",
			          where, owner.name);
		if (a->gid == owner.gid)
			log_fatal("service %s: user= command-line attribute specifies mail system "
			          "owner %s group id %ld",
			          where, owner.name, (long)a->gid);
		pa->owner_uid = owner.uid;
		pa->owner_gid = owner.gid;
		/* master dropped this process to mail_owner (unpriv column y):
		 * every command would run as the mail system itself. */
		if (!pa->root && geteuid() == owner.uid)
			log_fatal(
			        "service %s: the pipe agent must start as root to run commands as "
			        "user=: set the unpriv column of %s to n in master.cf",
			        where, where);
		privilege_owner_free(&owner);
	} else if (pa->root) {
		log_fatal("%s", str_c(&error));
	}
	{
		struct group *gr = getgrnam(config_str(pa->cfg, "setgid_group"));

		if (gr != NULL && a->gid == gr->gr_gid)
			log_fatal(
			        "service %s: user= command-line attribute specifies mail system %s "
			        "group id %ld",
			        where, gr->gr_name, (long)a->gid);
	}
	free(group);
	str_free(&error);
}

/* ---- configuration ---- */

/* SERVICE_time_limit when set, else command_time_limit. */
static uint64_t time_limit(struct pipe_agent *pa)
{
	char *name = xasprintf("%s_time_limit", pa->service);
	const char *value, *err;
	uint64_t secs = config_time(pa->cfg, "command_time_limit");

	if (config_is_set(pa->cfg, name) && config_expand(pa->cfg, name, &value, &err) == 0 &&
	    parse_time(value, 's', INT32_MAX, &secs) < 0)
		log_fatal("%s: bad value \"%s\" (expected a time: a number with an optional unit "
		          "s, m, h, d or w)",
		          name, value);
	free(name);
	return secs > 0 ? secs : 1;
}

/* The command's environment: PATH (Postfix's _PATH_DEFPATH), the
 * variables export_environment names that the agent has, and MAIL_CONFIG,
 * so that `sendmail` run by a filter reaches this instance. */
static void build_env(struct pipe_agent *pa)
{
	const strv_t *names = config_list(pa->cfg, "export_environment");

	strv_add(&pa->env, "PATH=/usr/bin:/bin");
	for (size_t i = 0; names != NULL && i < names->n; i++) {
		const char *value;

		if (strcmp(names->v[i], "PATH") == 0)
			continue;
		if (strcmp(names->v[i], "MAIL_CONFIG") == 0)
			value = pa->config_dir;
		else
			value = getenv(names->v[i]);
		if (value != NULL)
			strv_add_owned(&pa->env, xasprintf("%s=%s", names->v[i], value));
	}
}

/* ---- one request ---- */

/* A header of the message that says Delivered-To: recipient (flag D:
 * Postfix's mail forwarding loop check). */
static bool delivered_to_seen(int fd, const struct queue_envelope *env, const char *recipient)
{
	uint64_t len = env->content_length < PIPE_HEADER_SCAN_MAX ? env->content_length
	                                                          : PIPE_HEADER_SCAN_MAX;
	char *buf = xmalloc(len + 1);
	ssize_t n = pread(fd, buf, len, (off_t)env->content_offset);
	size_t rlen = strlen(recipient);
	bool seen = false;

	if (n <= 0) {
		free(buf);
		return false;
	}
	buf[n] = '\0';
	for (char *line = buf; *line != '\0' && *line != '\n';) {
		char *end = strchr(line, '\n');

		if (strncasecmp(line, "Delivered-To:", 13) == 0) {
			char *v = line + 13;
			size_t vlen;

			while (*v == ' ' || *v == '\t')
				v++;
			vlen = (end != NULL ? (size_t)(end - v) : strlen(v));
			while (vlen > 0 &&
			       (v[vlen - 1] == ' ' || v[vlen - 1] == '\t' || v[vlen - 1] == '\r'))
				vlen--;
			if (vlen == rlen && strncasecmp(v, recipient, rlen) == 0) {
				seen = true;
				break;
			}
		}
		if (end == NULL)
			break;
		line = end + 1;
	}
	free(buf);
	return seen;
}

/* A queue file attribute, or "" (the macros of absent ones are empty). */
static const char *qattr(const struct queue_file *qf, const char *log_name, const char *name)
{
	const char *v = log_name != NULL ? queue_file_attr(qf, log_name) : NULL;

	if (v == NULL)
		v = queue_file_attr(qf, name);
	return v != NULL ? v : "";
}

/* "X.Y.Z text" at the start of the output: Postfix's dsn_valid(), for 4
 * and 5 only. Returns the length of the code, or 0. */
static size_t output_dsn(const char *s)
{
	size_t i = 0, parts = 0;

	if (s[0] != '4' && s[0] != '5')
		return 0;
	for (;;) {
		size_t digits = 0;

		while (s[i] >= '0' && s[i] <= '9' && digits < 4) {
			i++;
			digits++;
		}
		if (digits == 0 || digits > (parts == 0 ? 1u : 3u))
			return 0;
		parts++;
		if (parts == 3)
			break;
		if (s[i] != '.')
			return 0;
		i++;
	}
	return s[i] == ' ' || s[i] == '\0' ? i : 0;
}

/* sysexits.h, as Postfix's sys_exits.c. */
static const struct {
	int code;
	const char *dsn;
	const char *text;
} sys_exits[] = {
        {64, "5.3.0", "command line usage error"},  {65, "5.6.0", "data format error"},
        {66, "5.3.0", "cannot open input"},         {67, "5.1.1", "user unknown"},
        {68, "5.1.2", "host name unknown"},         {69, "5.3.0", "service unavailable"},
        {70, "5.3.0", "internal software error"},   {71, "4.3.0", "system resource problem"},
        {72, "5.3.0", "critical OS file missing"},  {73, "5.2.0", "can't create user output file"},
        {74, "5.3.0", "input/output error"},        {75, "4.3.0", "temporary failure"},
        {76, "5.5.0", "remote error in protocol"},  {77, "5.7.0", "permission denied"},
        {78, "5.3.5", "local configuration error"},
};

static const char *action_of(const char *dsn)
{
	return dsn[0] == '4' ? DELIVERY_ACTION_DEFERRED : DELIVERY_ACTION_BOUNCED;
}

/* Postfix's pipe_command() verdicts, in its words. */
static void judge(struct pipe_agent *pa, const char *command, struct pipe_run *run,
                  struct outcome *o)
{
	const char *out = str_c(&run->output);
	bool has_out = run->output.len > 0;
	const char *sep = has_out ? ". Command output: " : "";
	size_t dlen;

	switch (run->how) {
	case PIPE_EXIT_NOT_RUN:
		set_outcome(o, DELIVERY_ACTION_DEFERRED, "4.3.0", "%s", str_c(&run->error));
		return;
	case PIPE_EXIT_TIMEOUT:
		set_outcome(o, DELIVERY_ACTION_DEFERRED, "4.3.0",
		            "Command time limit exceeded: \"%s\"%s%s", command, sep, out);
		return;
	case PIPE_EXIT_SIGNAL:
		set_outcome(o, DELIVERY_ACTION_DEFERRED, "4.3.0",
		            "Command died with signal %d: \"%s\"%s%s", run->status, command, sep,
		            out);
		return;
	case PIPE_EXIT_STATUS:
		break;
	}
	if (run->status != 0 && (dlen = output_dsn(out)) > 0) {
		char code[16];

		snprintf(code, sizeof(code), "%.*s", (int)dlen, out);
		set_outcome(o, action_of(code), code, "%s", out[dlen] == ' ' ? out + dlen + 1 : "");
		return;
	}
	if (run->status != 0) {
		for (size_t i = 0; i < sizeof(sys_exits) / sizeof(sys_exits[0]); i++) {
			if (sys_exits[i].code == run->status) {
				set_outcome(o, action_of(sys_exits[i].dsn), sys_exits[i].dsn,
				            "%s%s%s", sys_exits[i].text, sep, out);
				return;
			}
		}
		set_outcome(o, DELIVERY_ACTION_DEFERRED, "4.3.0",
		            "Command died with status %d: \"%s\"%s%s", run->status, command, sep,
		            out);
		return;
	}
	if (run->io_error) {
		/* The message did not reach the command whole. */
		set_outcome(o, DELIVERY_ACTION_DEFERRED, "4.3.0", "Command failed: %s: \"%s\"",
		            str_c(&run->error), command);
		return;
	}
	str_trim(&run->output);
	if (run->output.len > 0)
		set_outcome(o, DELIVERY_ACTION_SENT, "2.0.0", "delivered via %s service (%.*s)",
		            pa->service, PIPE_SENT_OUTPUT_MAX, str_c(&run->output));
	else
		set_outcome(o, DELIVERY_ACTION_SENT, "2.0.0", "delivered via %s service",
		            pa->service);
}

/* Run the command for the request's recipients; o says what happened. */
static void deliver(struct pipe_agent *pa, const struct delivery_request *r, struct queue_file *qf,
                    struct outcome *o)
{
	const struct queue_envelope *env = queue_file_envelope(qf);
	const struct pipe_attr *a = &pa->attr;
	const char *sender = env->sender[0] != '\0' ? env->sender : a->null_sender;
	struct pipe_rcpt *rcpts = xcalloc(r->n, sizeof(*rcpts));
	strv_t argv = STRV_INIT;
	str_t sender_arg, nexthop, size, error;
	struct pipe_run run;

	str_init(&sender_arg);
	str_init(&nexthop);
	str_init(&size);
	str_init(&error);
	pipe_run_init(&run);
	for (size_t i = 0; i < r->n; i++)
		rcpts[i] = (struct pipe_rcpt){r->rcpts[i].recipient, r->rcpts[i].orig};
	if ((a->flags & (PIPE_F_DELIVERED | PIPE_F_ORIG_RCPT)) && r->n > 1) {
		log_warning("pipe flag `%c' requires %s_destination_recipient_limit = 1",
		            (a->flags & PIPE_F_DELIVERED) ? 'D' : 'O', pa->service);
		set_outcome(o, DELIVERY_ACTION_DEFERRED, "4.3.5",
		            "mail system configuration error");
		goto out;
	}
	if (a->size_limit != 0 && env->content_length > a->size_limit) {
		set_outcome(o, DELIVERY_ACTION_BOUNCED, "5.2.3", "message too large");
		goto out;
	}
	if ((a->flags & PIPE_F_DELIVERED) &&
	    delivered_to_seen(queue_file_fd(qf), env, r->rcpts[0].recipient)) {
		set_outcome(o, DELIVERY_ACTION_BOUNCED, "5.4.6", "mail forwarding loop for %s",
		            r->rcpts[0].recipient);
		goto out;
	}
	/* A non-empty null sender replacement is subject to q (Postfix). */
	if (sender[0] != '\0' && (a->flags & PIPE_F_QUOTE))
		pipe_quote_local(sender, &sender_arg);
	else
		str_append(&sender_arg, sender);
	str_append(&nexthop, r->nexthop);
	if (a->flags & PIPE_F_FOLD_HOST)
		str_lower(&nexthop);
	str_appendf(&size, "%llu", (unsigned long long)env->content_length);
	{
		const struct pipe_var vars[] = {
		        {"sender", str_c(&sender_arg)},
		        {"nexthop", str_c(&nexthop)},
		        {"size", str_c(&size)},
		        {"queue_id", r->queue_id},
		        {"envid", env->envid != NULL ? env->envid : ""},
		        {"client_address",
		         qattr(qf, QUEUE_ATTR_LOG_CLIENT_ADDRESS, QUEUE_ATTR_CLIENT_ADDRESS)},
		        {"client_hostname",
		         qattr(qf, QUEUE_ATTR_LOG_CLIENT_NAME, QUEUE_ATTR_CLIENT_NAME)},
		        {"client_port",
		         qattr(qf, QUEUE_ATTR_LOG_CLIENT_PORT, QUEUE_ATTR_CLIENT_PORT)},
		        {"client_protocol",
		         qattr(qf, QUEUE_ATTR_LOG_PROTOCOL, QUEUE_ATTR_PROTOCOL)},
		        {"client_helo", qattr(qf, QUEUE_ATTR_LOG_HELO_NAME, QUEUE_ATTR_HELO_NAME)},
		        {"sasl_method", qattr(qf, NULL, QUEUE_ATTR_SASL_METHOD)},
		        {"sasl_username", qattr(qf, NULL, QUEUE_ATTR_SASL_USERNAME)},
		        {"sasl_sender", qattr(qf, NULL, QUEUE_ATTR_SASL_SENDER)},
		};

		if (pipe_expand_argv(&a->command, vars, sizeof(vars) / sizeof(vars[0]), rcpts, r->n,
		                     a->flags, pa->delimiters, &argv, &error) < 0) {
			log_warning("service %s: %s", pa->service, str_c(&error));
			set_outcome(o, DELIVERY_ACTION_DEFERRED, "4.3.5",
			            "mail system configuration error");
			goto out;
		}
	}
	{
		struct pipe_exec ex = {
		        .argv = argv.v,
		        .attr = a,
		        .switch_user = pa->root,
		        .kill_uid = pa->root ? pa->owner_uid : geteuid(),
		        .directory = a->directory != NULL ? a->directory : pa->queue_directory,
		        .directory_required = a->directory != NULL,
		        .envp = pa->env.v,
		        .time_limit = pa->time_limit,
		};
		struct pipe_message msg = {
		        .fd = queue_file_fd(qf),
		        .offset = env->content_offset,
		        .length = env->content_length,
		        .sender = sender,
		        .orig_rcpt = r->rcpts[0].orig,
		        .delivered = r->rcpts[0].recipient,
		};

		log_debug(1, "%s: running %s for %zu recipient(s)", r->queue_id, argv.v[0], r->n);
		pipe_command_run(&ex, &msg, &run);
		judge(pa, argv.v[0], &run, o);
	}
out:
	pipe_run_free(&run);
	strv_free(&argv);
	str_free(&sender_arg);
	str_free(&nexthop);
	str_free(&size);
	str_free(&error);
	free(rcpts);
}

static int handle_request(void *ctx, struct attr_list *req, uint64_t request_id, str_t *reply)
{
	struct pipe_agent *pa = ctx;
	struct delivery_request r;
	struct queue_file *qf = NULL;
	struct outcome o;
	uint64_t start = delivery_now_usec();
	const char *e;
	str_t why;

	str_init(&why);
	if (delivery_request_parse(req, &r, &why) < 0) {
		request_server_reply_error(reply, request_id, str_c(&why));
		str_free(&why);
		return 0;
	}
	if (queue_file_open(pa->qd, r.queue, r.queue_id, 0, &qf, &why) != QUEUE_FILE_OK) {
		request_server_reply_error(reply, request_id, str_c(&why));
		delivery_request_free(&r);
		str_free(&why);
		return 0;
	}
	str_init(&o.reason);
	deliver(pa, &r, qf, &o);
	{
		const struct queue_envelope *env = queue_file_envelope(qf);
		struct delivery_times t = {
		        .arrival = (uint64_t)env->arrival.tv_sec * 1000000u +
		                   (uint64_t)env->arrival.tv_usec,
		        .active = r.time_active > 0 ? r.time_active : start,
		        .agent_start = start,
		        .connected = start,
		        .done = delivery_now_usec(),
		};

		str_reset(reply);
		attr_put_uint(reply, ATTR_REQUEST_ID, request_id, &e);
		for (size_t i = 0; i < r.n; i++) {
			delivery_log(r.queue_id, r.rcpts[i].recipient, r.rcpts[i].orig, pa->service,
			             &t, o.status, o.action, str_c(&o.reason));
			delivery_reply_rcpt(reply, r.rcpts[i].id, o.action, o.status,
			                    str_c(&o.reason));
		}
		attr_end(reply);
	}
	str_free(&o.reason);
	queue_file_close(&qf);
	delivery_request_free(&r);
	str_free(&why);
	return 0;
}

/* ---- start and stop ---- */

static void agent_init(struct daemon *d, void *ctx)
{
	struct pipe_agent *pa = ctx;
	const char *value, *why;
	unsigned mask = 0;
	str_t error;

	str_init(&error);
	pa->cfg = d->cfg;
	pa->service = xstrdup(d->service_name != NULL ? d->service_name : "pipe");
	pa->config_dir = xstrdup(d->config_dir);
	pa->root = geteuid() == 0;
	parse_attributes(pa);
	if (queue_dir_hash_names(config_str(pa->cfg, "hash_queue_names"), &mask, &error) < 0)
		log_fatal("hash_queue_names: %s", str_c(&error));
	pa->queue_directory = xstrdup(config_str(pa->cfg, "queue_directory"));
	pa->qd = queue_dir_new(pa->queue_directory,
	                       (unsigned)config_int(pa->cfg, "hash_queue_depth"), mask);
	if (config_expand(pa->cfg, "recipient_delimiter", &value, &why) < 0)
		log_fatal("%s", why);
	pa->delimiters = xstrdup(value);
	pa->time_limit = time_limit(pa);
	build_env(pa);
	/* Serve as mail_owner; the saved uid stays root for the child's
	 * switch to user= (Postfix's pipe: set_eugid(var_owner_uid, ...)). */
	if (pa->root && (setgroups(1, &pa->owner_gid) < 0 || setegid(pa->owner_gid) < 0 ||
	                 seteuid(pa->owner_uid) < 0))
		log_fatal("cannot switch to the effective identity of mail_owner: %m");
	log_info("starting: service %s, command %s as %s%s, time limit %llus", pa->service,
	         pa->attr.command.v[0], pa->attr.user,
	         pa->root ? "" : " (not root: as this process's user)",
	         (unsigned long long)pa->time_limit);
	str_free(&error);
}

static void agent_finish(struct daemon *d, void *ctx)
{
	struct pipe_agent *pa = ctx;

	(void)d;
	queue_dir_destroy(&pa->qd);
	strv_free(&pa->attr.command);
	str_free(&pa->attr.eol);
	free(pa->attr.user);
	free(pa->attr.directory);
	free(pa->attr.null_sender);
	free(pa->service);
	free(pa->config_dir);
	free(pa->queue_directory);
	free(pa->delimiters);
	strv_free(&pa->env);
	strv_free(&pa->args);
}

/* Why the attributes are split off here: the daemon skeleton's getopt
 * would take "-f" and "-e" of "argv=/usr/bin/spamc -f -e ..." as its own
 * options. master writes its options first and the service's arguments
 * after them, so the first argument that is not an option (or an option's
 * value) starts the attributes, as Postfix's getopt("+...") sees it. */
static int split_attributes(int argc, char **argv, strv_t *args)
{
	static const char with_value[] = "cslmf";
	int i = 1;

	while (i < argc) {
		const char *a = argv[i];

		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (a[0] != '-' || a[1] == '\0')
			break;
		/* "-c DIR" takes the next argument; "-cDIR" and "-v" do not. */
		i += strchr(with_value, a[1]) != NULL && a[2] == '\0' ? 2 : 1;
	}
	if (i > argc)
		i = argc;
	for (int j = i; j < argc; j++)
		strv_add(args, argv[j]);
	return i;
}

int main(int argc, char **argv)
{
	static struct pipe_agent pa;
	static const struct request_server_spec spec = {
	        .daemon = {.program = "pipe"},
	        .service = "pipe",
	        .idle_timeout = PIPE_IDLE_TIMEOUT,
	        /* Root, to run each command as user=. */
	        .needs_root = true,
	        .init = agent_init,
	        .handle = handle_request,
	        .finish = agent_finish,
	        .ctx = &pa,
	};

	str_init(&pa.attr.eol);
	argc = split_attributes(argc, argv, &pa.args);
	return request_server_main(&spec, argc, argv);
}
