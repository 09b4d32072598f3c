/* local.c - the local delivery agent: Postfix local(8) for the domains of
 * $mydestination (local_transport = local:$myhostname).
 *
 * `local -c DIR [-s local] [-l FD] [-v] [-e]`. A request server
 * (lib/daemon/request_server.h): master hands it the listening socket of
 * private/local, qmgr sends it requests of the protocol of
 * lib/delivery/delivery.h (parsed by delivery_request.c), one at a time.
 * Per request the queue file is opened read-only by validated ID, the
 * Delivered-To: headers of the message are read once (loop detection),
 * and each recipient block goes through local_deliver.c; one reply block
 * per recipient goes back with the worst outcome of its parts (a
 * deferred part defers the recipient, else a bounced part bounces it).
 *
 * SECURITY: the agent runs as root (master.cf unpriv column n) so that it
 * can deliver as each user. After setup it keeps root only as its real
 * and saved uid: its effective identity is mail_owner (tables, the queue
 * file, re-submission through cleanup, connections to other agents), and
 * around each delivery it becomes the user concerned (effective uid, gid
 * and that one group): the recipient for its mailbox and .forward, the
 * owner of a non-root alias table or :include: file, else default_privs.
 * Nothing is delivered as root: root's own mail is delivered with
 * default_privs, as Postfix does. Commands run in a child that gives up
 * root for good (setgroups, setgid, setuid) before exec. The request
 * comes from qmgr over private/ (0600) and is parsed with bounds; .forward
 * and :include: files are read as their owner, bounded in size.
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
#include "base/str.h"
#include "cleanup/cleanup.h"
#include "conf/config.h"
#include "daemon/daemon.h"
#include "daemon/request_server.h"
#include "delivery/delivery.h"
#include "delivery/delivery_log.h"
#include "delivery/delivery_request.h"
#include "delivery/mbox.h"
#include "delivery/resolve.h"
#include "local.h"
#include "queue/queue_dir.h"
#include "queue/queue_file.h"
#include "table/maps.h"

/* Seconds a client may stay silent (between or inside requests). */
#define LOCAL_IDLE_TIMEOUT 60
/* Header bytes searched for Delivered-To: lines. */
#define LOCAL_HEADER_MAX (1024 * 1024)

/* ---- identities ---- */

int local_become(struct local_agent *la, const struct local_ids *ids)
{
	if (!la->root)
		return 0;
	if (seteuid(0) < 0)
		return -1;
	if (setgroups(1, &ids->gid) < 0 || setegid(ids->gid) < 0 || seteuid(ids->uid) < 0) {
		int saved = errno;

		local_unbecome(la);
		errno = saved;
		return -1;
	}
	return 0;
}

void local_unbecome(struct local_agent *la)
{
	if (!la->root)
		return;
	/* A failure would leave later work with the wrong identity: a broken
	 * invariant (master starts another process). */
	if (seteuid(0) < 0 || setgroups(1, &la->owner.gid) < 0 || setegid(la->owner.gid) < 0 ||
	    seteuid(la->owner.uid) < 0)
		log_panic("cannot switch back to %s: %m", la->owner.name);
}

/* ---- logging a part ---- */

void local_part(struct local_agent *la, const struct local_message *msg, struct local_outcome *out,
                const char *to, const char *orig, enum local_status st, const char *dsn,
                const char *fmt, ...)
{
	struct delivery_times t = {msg->arrival_us, msg->active_us,      msg->start_us,
	                           msg->start_us,   delivery_now_usec(), 0};
	static const char *const names[] = {DELIVERY_ACTION_SENT, DELIVERY_ACTION_BOUNCED,
	                                    DELIVERY_ACTION_DEFERRED};
	str_t reason;
	va_list ap;

	str_init(&reason);
	va_start(ap, fmt);
	str_vappendf(&reason, fmt, ap);
	va_end(ap);
	delivery_log(msg->queue_id, to, orig, la->service, &t, dsn, names[st], str_c(&reason));
	if (!out->any || st > out->status) {
		out->status = st;
		snprintf(out->dsn, sizeof(out->dsn), "%s", dsn);
		str_set(&out->reason, str_c(&reason));
	}
	out->any = true;
	str_free(&reason);
}

/* ---- the message ---- */

static void add_delivered(strv_t *set, const char *value, size_t len)
{
	char *v;

	while (len > 0 && (*value == ' ' || *value == '\t')) {
		value++;
		len--;
	}
	while (len > 0 &&
	       (value[len - 1] == ' ' || value[len - 1] == '\t' || value[len - 1] == '\r'))
		len--;
	if (len == 0)
		return;
	v = xstrndup(value, len);
	for (char *p = v; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	if (strv_find(set, v) < 0)
		strv_add_owned(set, v);
	else
		free(v);
}

/* The Delivered-To: values of the message header (Postfix's
 * delivered_hdr_init): every header line up to the first empty line,
 * unfolded, at most LOCAL_HEADER_MAX bytes. -1 on a read error. */
static int read_delivered(struct local_message *msg)
{
	uint64_t limit = msg->content_length;
	size_t have = 0;
	int rc = 0;
	char *buf;

	if (limit > LOCAL_HEADER_MAX)
		limit = LOCAL_HEADER_MAX;
	buf = xmalloc(limit + 1);

	while (have < limit) {
		ssize_t n = pread(msg->fd, buf + have, limit - have,
		                  (off_t)(msg->content_offset + have));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -1;
			break;
		}
		if (n == 0)
			break;
		have += (size_t)n;
	}
	buf[have] = '\0';
	for (size_t pos = 0; rc == 0 && pos < have;) {
		char *nl = memchr(buf + pos, '\n', have - pos);
		size_t end = nl != NULL ? (size_t)(nl - buf) : have;

		if (end == pos || (end == pos + 1 && buf[pos] == '\r'))
			break; /* the empty line: the body starts */
		if (end - pos > 13 && strncasecmp(buf + pos, "Delivered-To:", 13) == 0) {
			/* A folded value: the continuation lines join it. */
			size_t vend = end;

			while (vend + 1 < have && (buf[vend + 1] == ' ' || buf[vend + 1] == '\t')) {
				char *n2 = memchr(buf + vend + 1, '\n', have - vend - 1);

				buf[vend] = ' ';
				vend = n2 != NULL ? (size_t)(n2 - buf) : have;
			}
			add_delivered(&msg->delivered_to, buf + pos + 13, vend - pos - 13);
			end = vend;
		}
		pos = end + 1;
	}
	free(buf);
	return rc;
}

/* ---- requests ---- */

static int handle_request(void *ctx, struct attr_list *attrs, uint64_t request_id, str_t *reply)
{
	struct local_agent *la = ctx;
	struct delivery_request req;
	struct queue_file *qf = NULL;
	const char *e;
	str_t why;

	str_init(&why);
	if (delivery_request_parse(attrs, &req, &why) < 0) {
		request_server_reply_error(reply, request_id, str_c(&why));
		str_free(&why);
		return 0;
	}
	if (queue_file_open(la->qd, req.queue, req.queue_id, 0, &qf, &why) != QUEUE_FILE_OK) {
		request_server_reply_error(reply, request_id, str_c(&why));
		goto out;
	}
	{
		const struct queue_envelope *env = queue_file_envelope(qf);
		struct local_message msg = {
		        .req = &req,
		        .queue_id = req.queue_id,
		        .sender = env->sender,
		        .fd = queue_file_fd(qf),
		        .content_offset = env->content_offset,
		        .content_length = env->content_length,
		        .arrival_us = (uint64_t)env->arrival.tv_sec * 1000000 +
		                      (uint64_t)env->arrival.tv_usec,
		        .start_us = delivery_now_usec(),
		        .delivered_to = STRV_INIT,
		};

		msg.active_us = req.time_active > 0 ? req.time_active : msg.start_us;
		if (read_delivered(&msg) < 0) {
			str_appendf(&why, "read queue file %s: %s", req.queue_id, strerror(errno));
			request_server_reply_error(reply, request_id, str_c(&why));
			strv_free(&msg.delivered_to);
			goto out;
		}
		str_reset(reply);
		attr_put_uint(reply, ATTR_REQUEST_ID, request_id, &e);
		for (size_t i = 0; i < req.n; i++) {
			struct local_outcome out;
			static const char *const actions[] = {DELIVERY_ACTION_SENT,
			                                      DELIVERY_ACTION_BOUNCED,
			                                      DELIVERY_ACTION_DEFERRED};

			memset(&out, 0, sizeof(out));
			str_init(&out.reason);
			local_deliver(la, &msg, req.rcpts[i].recipient, req.rcpts[i].orig, &out);
			delivery_reply_rcpt(reply, req.rcpts[i].id, actions[out.status], out.dsn,
			                    str_c(&out.reason));
			str_free(&out.reason);
			strv_free(&out.done);
			local_forward_free(&out);
		}
		attr_end(reply);
		strv_free(&msg.delivered_to);
	}
out:
	queue_file_close(&qf);
	delivery_request_free(&req);
	str_free(&why);
	return 0;
}

/* ---- setup ---- */

static unsigned class_mask(struct local_agent *la, const char *param)
{
	const strv_t *list;
	const char *why;
	unsigned mask = 0;

	if (config_get_list(la->cfg, param, &list, &why) < 0)
		log_fatal("%s", why);
	for (size_t i = 0; i < list->n; i++) {
		if (strcasecmp(list->v[i], "alias") == 0)
			mask |= LOCAL_CLASS_ALIAS;
		else if (strcasecmp(list->v[i], "forward") == 0)
			mask |= LOCAL_CLASS_FORWARD;
		else if (strcasecmp(list->v[i], "include") == 0)
			mask |= LOCAL_CLASS_INCLUDE;
		else
			log_fatal("%s: unknown class \"%s\" (expected alias, forward, include)",
			          param, list->v[i]);
	}
	return mask;
}

static const char *expand(struct local_agent *la, const char *param)
{
	const char *value, *why;

	if (config_expand(la->cfg, param, &value, &why) < 0)
		log_fatal("%s", why);
	return value;
}

int local_alias_maps(struct local_agent *la)
{
	struct table_open_context tctx = {.cfg = la->cfg, .config_dir = la->config_dir};

	if (la->alias_maps != NULL)
		return 0;
	str_reset(&la->alias_error);
	la->alias_maps = maps_open("alias_maps", expand(la, "alias_maps"), &tctx, &la->alias_error);
	return la->alias_maps != NULL ? 0 : -1;
}

static void lookup_ids(const char *param, const char *name, struct local_ids *ids, char **name_r)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	int err = getpwnam_r(name, &pw, buf, sizeof(buf), &res);

	if (err != 0 || res == NULL)
		log_fatal("%s: unknown user \"%s\"%s%s", param, name, err != 0 ? ": " : "",
		          err != 0 ? strerror(err) : "");
	if (pw.pw_uid == 0)
		log_fatal("%s: user \"%s\" has uid 0 (root's rights are never used for delivery)",
		          param, name);
	*name_r = xstrdup(name);
	ids->uid = pw.pw_uid;
	ids->gid = pw.pw_gid;
	ids->name = *name_r;
}

static void agent_init(struct daemon *d, void *ctx)
{
	struct local_agent *la = ctx;
	const strv_t *propagate;
	const char *why;
	unsigned mask = 0;
	str_t error;

	str_init(&error);
	la->cfg = d->cfg;
	la->config_dir = d->config_dir;
	la->service = d->service_name != NULL ? d->service_name : "local";
	la->queue_directory = expand(la, "queue_directory");
	if (queue_dir_hash_names(config_str(la->cfg, "hash_queue_names"), &mask, &error) < 0)
		log_fatal("hash_queue_names: %s", str_c(&error));
	la->qd = queue_dir_new(la->queue_directory,
	                       (unsigned)config_int(la->cfg, "hash_queue_depth"), mask);
	str_init(&la->alias_error);
	/* A missing /etc/aliases.db (newaliases never run) is not fatal:
	 * local mail is deferred, and the table is opened again at the next
	 * delivery, as Postfix does. */
	if (local_alias_maps(la) < 0)
		log_warning("%s: local mail waits until it can be opened", str_c(&la->alias_error));
	if (resolve_open(la->cfg, la->config_dir, &la->resolve, &error) < 0)
		log_fatal("%s", str_c(&error));
	if (cleanup_settings_new(la->cfg, la->config_dir, &la->cleanup, &error) < 0)
		log_fatal("%s", str_c(&error));
	la->delimiters = xstrdup(expand(la, "recipient_delimiter"));
	la->myhostname = expand(la, "myhostname");
	la->myorigin = expand(la, "myorigin");
	la->commands_ok = class_mask(la, "allow_mail_to_commands");
	la->files_ok = class_mask(la, "allow_mail_to_files");
	if (config_get_list(la->cfg, "propagate_unmatched_extensions", &propagate, &why) < 0)
		log_fatal("%s", why);
	la->propagate_alias = strv_find(propagate, "alias") >= 0;
	la->propagate_forward = strv_find(propagate, "forward") >= 0;
	la->propagate_include = strv_find(propagate, "include") >= 0;
	/* Postfix's raw parameters: $name here is the recipient's ($home,
	 * $user, $extension ...), expanded per delivery (local_expand.h). */
	la->forward_path = config_raw(la->cfg, "forward_path");
	la->luser_relay = config_raw(la->cfg, "luser_relay");
	la->mailbox_command = config_raw(la->cfg, "mailbox_command");
	la->home_mailbox = expand(la, "home_mailbox");
	la->spool_dir = expand(la, "mail_spool_directory");
	la->mailbox_transport = expand(la, "mailbox_transport");
	la->fallback_transport = expand(la, "fallback_transport");
	la->exec_dir = expand(la, "command_execution_directory");
	la->shell = expand(la, "local_command_shell");
	la->filter = expand(la, "forward_expansion_filter");
	la->mailbox_size_limit = (uint64_t)config_int(la->cfg, "mailbox_size_limit");
	la->command_time_limit = config_time(la->cfg, "command_time_limit");
	if (mbox_lock_parse(expand(la, "mailbox_delivery_lock"), &la->locks, &error) < 0)
		log_fatal("%s", str_c(&error));
	if (la->home_mailbox[0] == '/')
		log_fatal("home_mailbox = %s: must be relative to the home directory",
		          la->home_mailbox);
	/* As Postfix: such a limit would bounce mail smtpd took. */
	if (la->mailbox_size_limit != 0 && config_int(la->cfg, "message_size_limit") != 0 &&
	    la->mailbox_size_limit < (uint64_t)config_int(la->cfg, "message_size_limit"))
		log_fatal("main.cf configuration error: mailbox_size_limit is smaller than "
		          "message_size_limit");
	la->root = geteuid() == 0;
	if (la->root) {
		lookup_ids("mail_owner", expand(la, "mail_owner"), &la->owner, &la->owner_name);
		lookup_ids("default_privs", expand(la, "default_privs"), &la->nobody,
		           &la->nobody_name);
		local_unbecome(la);
	} else {
		la->owner = (struct local_ids){getuid(), getgid(), "this user"};
		la->nobody = la->owner;
	}
	log_info("starting: %s", la->root ? "delivering as each recipient"
	                                  : "not root: delivering as this user (test mode)");
	str_free(&error);
}

static void agent_finish(struct daemon *d, void *ctx)
{
	struct local_agent *la = ctx;

	(void)d;
	maps_close(&la->alias_maps);
	str_free(&la->alias_error);
	resolve_close(&la->resolve);
	cleanup_settings_destroy(&la->cleanup);
	queue_dir_destroy(&la->qd);
	free(la->delimiters);
	free(la->owner_name);
	free(la->nobody_name);
}

int main(int argc, char **argv)
{
	static struct local_agent la;
	static const struct request_server_spec spec = {
	        .daemon = {.program = "local"},
	        .service = "local",
	        .idle_timeout = LOCAL_IDLE_TIMEOUT,
	        /* Root switches to each recipient around a delivery. */
	        .needs_root = true,
	        .init = agent_init,
	        .handle = handle_request,
	        .finish = agent_finish,
	        .ctx = &la,
	};

	return request_server_main(&spec, argc, argv);
}
