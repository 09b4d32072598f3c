/* virtual.c - the virtual delivery agent: Maildir delivery for
 * virtual_mailbox_domains (Postfix virtual(8), Maildir only).
 *
 * `virtual -c DIR [-s virtual] [-l FD] [-v] [-e]`. A request server
 * (lib/daemon/request_server.h): master hands it the listening socket of
 * private/virtual with -l, or, started by hand, it binds that socket
 * itself; it answers requests of the protocol of lib/delivery/delivery.h
 * one at a time; signals and timeouts are the skeleton's.
 *
 * Per request: the queue file is opened read-only from the queue named
 * (the queue_id is checked with queue_id_valid(), never a path), every
 * recipient block is delivered by virtual_deliver.c, and one reply block
 * per recipient goes back. A request that cannot be served at all (bad
 * attributes, unreadable queue file) gets error=TEXT, which qmgr turns
 * into a deferral of every recipient.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/attr.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/str.h"
#include "conf/config.h"
#include "daemon/daemon.h"
#include "daemon/privilege.h"
#include "daemon/request_server.h"
#include "db/db.h"
#include "delivery/delivery.h"
#include "delivery/delivery_log.h"
#include "delivery/delivery_request.h"
#include "delivery/mailbox_lookup.h"
#include "queue/queue_dir.h"
#include "queue/queue_file.h"
#include "queue/queue_id.h"
#include "sql/sql.h"
#include "table/maps.h"
#include "virtual.h"

/* Seconds a client may stay silent (between or inside requests) or
 * refuse to take a reply before the connection is closed. */
#define VIRTUAL_IDLE_TIMEOUT 60

/* Serve one request (request_server.h: version and request_id are
 * checked); the reply goes to reply. Returns -1 when the connection must
 * be closed after the reply. */
static int handle_request(void *ctx, struct attr_list *req, uint64_t request_id, str_t *reply)
{
	struct virtual_agent *va = ctx;
	struct delivery_request dr;
	struct queue_file *qf = NULL;
	str_t why;
	int rc = 0;

	str_init(&why);
	memset(&dr, 0, sizeof(dr));
	if (attr_get(req, ATTR_REQUEST_ID) == NULL) {
		request_server_reply_error(reply, 0, "missing request_id");
		rc = -1;
		goto out;
	}
	/* request=deliver, queue_name, queue_id, time_active, the
	 * recipient blocks: checked in one place for every agent. */
	if (delivery_request_parse(req, &dr, &why) < 0) {
		request_server_reply_error(reply, request_id, str_c(&why));
		goto out;
	}
	if (queue_file_open(va->qd, dr.queue, dr.queue_id, 0, &qf, &why) != QUEUE_FILE_OK) {
		request_server_reply_error(reply, request_id, str_c(&why));
		goto out;
	}

	{
		const struct queue_envelope *env = queue_file_envelope(qf);
		struct virtual_message msg = {
		        .queue_id = dr.queue_id,
		        .sender = env->sender,
		        .fd = queue_file_fd(qf),
		        .content_offset = env->content_offset,
		        .content_length = env->content_length,
		        .arrival_us = (int64_t)env->arrival.tv_sec * 1000000 + env->arrival.tv_usec,
		        .start_us = (int64_t)delivery_now_usec(),
		};
		struct virtual_outcome out;
		const char *e;

		msg.active_us = dr.time_active > 0 ? (int64_t)dr.time_active : msg.start_us;
		/* Absent (an older qmgr): a first attempt. */
		msg.redelivery = dr.redelivery;
		str_init(&out.reason);
		str_reset(reply);
		attr_put_uint(reply, ATTR_REQUEST_ID, request_id, &e);
		for (size_t i = 0; i < dr.n; i++) {
			virtual_deliver(va, &msg, dr.rcpts[i].recipient, dr.rcpts[i].orig, &out);
			delivery_reply_rcpt(reply, dr.rcpts[i].id, out.action, out.status,
			                    str_c(&out.reason));
		}
		attr_end(reply);
		str_free(&out.reason);
	}
out:
	queue_file_close(&qf);
	delivery_request_free(&dr);
	str_free(&why);
	return rc;
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
	va->mailbox_limit = (uint64_t)config_int(va->cfg, "virtual_mailbox_limit");
	/* As Postfix's virtual(8): such a limit would bounce mail smtpd took
	 * (postern check reports it too). */
	if (va->mailbox_limit != 0 && config_int(va->cfg, "message_size_limit") != 0 &&
	    va->mailbox_limit < (uint64_t)config_int(va->cfg, "message_size_limit"))
		log_fatal("main.cf configuration error: virtual_mailbox_limit is smaller than "
		          "message_size_limit");
	if (config_expand(va->cfg, "virtual_mailbox_base", &va->base, &why) < 0)
		log_fatal("%s", why);
	/* The quota_usage connection (database, write access; only when the
	 * quotas are postern's db:quota: a directory's mailboxes have no
	 * quota_usage rows), made now while
	 * the agent may still read a password file only root may read; it
	 * connects on first use and reconnects with the settings it keeps,
	 * also after the drop to a static owner. A broken setting is logged
	 * here and again at each delivery (virtual_deliver.c retries). */
	if (strv_find(config_list(va->cfg, "virtual_mailbox_maps"), "db:mailboxes") >= 0 &&
	    config_list(va->cfg, "virtual_mailbox_limit_maps")->n == 0 &&
	    db_open(va->cfg, DB_ACCESS_WRITE, &va->db, &error) < 0) {
		log_warning("quota_usage will not be updated: %s", str_c(&error));
		str_reset(&error);
	}
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

/* With database = sqlite:PATH, the file virtual writes quota_usage to
 * (NULL for a server database, or when the setting is broken: db_open
 * says why later). Owned by the caller. */
static char *sqlite_write_path(struct config *cfg)
{
	struct sql_settings settings;
	char *path = NULL;
	str_t error;

	str_init(&error);
	if (db_settings(cfg, DB_ACCESS_WRITE, &settings, &error) == 0 &&
	    settings.type == SQL_SQLITE && settings.dbname != NULL)
		path = xstrdup(settings.dbname);
	sql_settings_free(&settings);
	str_free(&error);
	return path;
}

/* Can the current effective identity do a static owner's work: read the
 * queue files qmgr names (queue_directory/active) and, with SQLite,
 * write quota_usage: the file, its -wal and -shm when they exist, and
 * its directory (where SQLite makes them when they do not). With the
 * permissions `postern db init` and master set (db.c: group mail_owner,
 * group-writable, directory setgid) the static owner, who keeps
 * mail_owner's group, can. NULL when it can, else what it cannot do (the
 * caller frees it). */
static char *static_owner_cannot(struct virtual_agent *va)
{
	char *active = xasprintf("%s/%s", queue_dir_root(va->qd), queue_name_str(QUEUE_ACTIVE));
	char *db = sqlite_write_path(va->cfg);
	char *why = NULL;

	if (faccessat(AT_FDCWD, active, R_OK | X_OK, AT_EACCESS) < 0) {
		why = xasprintf("read %s (mode 0750, group of mail_owner expected)", active);
	} else if (db != NULL) {
		char *dir = xstrdup(db), *slash = strrchr(dir, '/');
		char *wal = xasprintf("%s-wal", db), *shm = xasprintf("%s-shm", db);
		bool ok = faccessat(AT_FDCWD, db, R_OK | W_OK, AT_EACCESS) == 0;

		if (slash != NULL)
			*slash = '\0';
		for (size_t i = 0; ok && i < 2; i++) {
			const char *side = i == 0 ? wal : shm;

			ok = faccessat(AT_FDCWD, side, R_OK | W_OK, AT_EACCESS) == 0 ||
			     errno == ENOENT;
		}
		if (ok)
			ok = faccessat(AT_FDCWD,
			               slash == NULL    ? "."
			               : dir[0] != '\0' ? dir
			                                : "/",
			               W_OK | X_OK, AT_EACCESS) == 0;
		if (!ok)
			why = xasprintf(
			        "write quota_usage to the SQLite database %s (the file, its "
			        "-wal and -shm, and its directory: run postern db migrate)",
			        db);
		free(wal);
		free(shm);
		free(dir);
	}
	free(active);
	free(db);
	return why;
}

/* Every mailbox has one owner: become it for good (see SECURITY above),
 * keeping mail_owner's group as the one supplementary group so that the
 * queue files qmgr names stay readable (queue_dir.h: group-readable
 * queue) and the SQLite database writable (db.c: group mail_owner, 0660).
 * When that identity could not do the work (an old 0700 queue, a SQLite
 * database whose directory postern could not give to mail_owner's group),
 * keep root and the per-delivery switch, and say why. */
static void drop_to_static_owner(struct virtual_agent *va)
{
	const char *uid_maps, *gid_maps, *why;
	struct privilege_owner owner;
	unsigned long uid, gid;
	gid_t groups[2];
	char *cannot;
	str_t error;

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
	str_init(&error);
	if (privilege_owner_lookup(config_str(va->cfg, "mail_owner"), &owner, &error) < 0)
		log_fatal("%s", str_c(&error));
	groups[0] = (gid_t)gid;
	groups[1] = owner.gid;
	privilege_owner_free(&owner);
	/* Ask the kernel as that identity (effective ids, undone at once). */
	if (setgroups(2, groups) < 0 || setegid((gid_t)gid) < 0 || seteuid((uid_t)uid) < 0)
		log_fatal("cannot switch to uid %lu gid %lu: %m", uid, gid);
	cannot = static_owner_cannot(va);
	if (seteuid(0) < 0 || setegid(0) < 0 ||
	    setgroups((size_t)va->n_root_groups, va->root_groups) < 0)
		log_fatal("cannot switch back to root: %m");
	if (cannot != NULL) {
		log_warning("virtual_uid_maps = %s: uid %lu gid %lu cannot %s: keeping root to "
		            "switch to the mailbox owner per delivery",
		            uid_maps, uid, gid, cannot);
		free(cannot);
		str_free(&error);
		return;
	}
	if (privilege_drop((uid_t)uid, (gid_t)gid, groups[1], &error) < 0)
		log_fatal("cannot become uid %lu gid %lu: %s", uid, gid, str_c(&error));
	str_free(&error);
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

static void agent_init(struct daemon *d, void *ctx)
{
	struct virtual_agent *va = ctx;

	agent_open(va, d);
	drop_to_static_owner(va);
	log_info("starting: virtual_mailbox_base %s%s", va->base,
	         va->root ? ", delivering as each mailbox owner" : ", delivering as this user");
}

static void agent_finish(struct daemon *d, void *ctx)
{
	(void)d;
	agent_close(ctx);
}

int main(int argc, char **argv)
{
	static struct virtual_agent va;
	static const struct request_server_spec spec = {
	        .daemon = {.program = "virtual"},
	        .service = "virtual",
	        .idle_timeout = VIRTUAL_IDLE_TIMEOUT,
	        /* Root switches to each mailbox owner around a delivery. */
	        .needs_root = true,
	        .init = agent_init,
	        .handle = handle_request,
	        .finish = agent_finish,
	        .ctx = &va,
	};

	return request_server_main(&spec, argc, argv);
}
