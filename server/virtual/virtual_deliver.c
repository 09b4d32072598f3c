/* virtual_deliver.c - one recipient of a virtual delivery request:
 * Postfix virtual(8)'s lookups, the Maildir delivery as the mailbox
 * owner, the quota_usage mirror and the log line.
 *
 * Called by virtual.c for each recipient block of a request. Order and
 * words follow Postfix's virtual: virtual_mailbox_maps first (not found:
 * 5.1.1 unknown user: "ADDR"), then virtual_uid_maps and
 * virtual_gid_maps (missing or bad: 4.3.5, an administrator's mistake
 * that mail waits out), then maildir_deliver(). A table that cannot
 * answer is a 4.3.0 deferral naming it, never a bounce.
 *
 * SECURITY: the maildir path and the uid/gid come from tables the
 * administrator controls. When the agent runs as root it delivers with
 * the effective uid and gid (and only that group) of the mailbox owner,
 * as Postfix's virtual does (set_eugid), so every file and directory is
 * created by the owner and the owner's own permissions bound what a
 * planted symlink could reach; maildir.c walks the path without
 * following links in any case. A uid below virtual_minimum_uid (root
 * included) is refused before any identity change.
 */
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/parse.h"
#include "db/db.h"
#include "db/db_quota.h"
#include "conf/config.h"
#include "delivery/delivery.h"
#include "delivery/mailbox_lookup.h"
#include "delivery/maildir.h"
#include "delivery/delivery_log.h"
#include "delivery/maildir_quota.h"
#include "table/maps.h"
#include "virtual.h"

/* The Postfix delivery line (lib/delivery/delivery_log.h); no connection
 * setup for a local agent. */
static void log_outcome(const struct virtual_message *msg, const char *recipient,
                        const char *orig_recipient, const struct virtual_outcome *out)
{
	struct delivery_times t = {(uint64_t)msg->arrival_us, (uint64_t)msg->active_us,
	                           (uint64_t)msg->start_us,   (uint64_t)msg->start_us,
	                           delivery_now_usec(),       0};

	delivery_log(msg->queue_id, recipient, orig_recipient, "virtual", &t, out->status,
	             out->action, str_c(&out->reason));
}

static void set_outcome(struct virtual_outcome *out, const char *action, const char *status,
                        const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void set_outcome(struct virtual_outcome *out, const char *action, const char *status,
                        const char *fmt, ...)
{
	va_list ap;

	out->action = action;
	snprintf(out->status, sizeof(out->status), "%s", status);
	str_reset(&out->reason);
	va_start(ap, fmt);
	str_vappendf(&out->reason, fmt, ap);
	va_end(ap);
}

/* The uid or gid of recipient from maps (param names it). 0 with *id_r,
 * or -1 with out set: 4.3.0 when the table failed, 4.3.5 when nothing or
 * something that is not a number was found (Postfix's "mail system
 * configuration error"). */
static int lookup_id(struct virtual_agent *va, struct maps *maps, const char *param,
                     const char *recipient, int64_t *id_r, struct virtual_outcome *out)
{
	struct table_result tr;
	int rc = -1;

	table_result_init(&tr);
	switch (maps_lookup_addr(maps, recipient, va->delimiters, 0, &tr, NULL)) {
	case TABLE_TEMPFAIL:
		set_outcome(out, DELIVERY_ACTION_DEFERRED, "4.3.0",
		            DELIVERY_LOOKUP_PROBLEM ": %s: %s", param, str_c(&tr.error));
		break;
	case TABLE_NOTFOUND:
		set_outcome(out, DELIVERY_ACTION_DEFERRED, "4.3.5",
		            "mail system configuration error: recipient %s: no %s in %s", recipient,
		            strcmp(param, "virtual_uid_maps") == 0 ? "uid" : "gid", param);
		break;
	case TABLE_FOUND:
		if (parse_int64(str_c(&tr.value), 0, UINT32_MAX - 1, id_r) < 0) {
			set_outcome(out, DELIVERY_ACTION_DEFERRED, "4.3.5",
			            "mail system configuration error: recipient %s: bad %s value "
			            "\"%s\" in %s",
			            recipient,
			            strcmp(param, "virtual_uid_maps") == 0 ? "uid" : "gid",
			            str_c(&tr.value), param);
			break;
		}
		rc = 0;
		break;
	}
	table_result_free(&tr);
	return rc;
}

/* Become uid:gid (effective ids and the one group), or back to root. */
static int become_owner(struct virtual_agent *va, uid_t uid, gid_t gid)
{
	if (setgroups(1, &gid) < 0 || setegid(gid) < 0 || seteuid(uid) < 0) {
		int saved = errno;

		(void)seteuid(0);
		(void)setegid(0);
		(void)setgroups((size_t)va->n_root_groups, va->root_groups);
		errno = saved;
		return -1;
	}
	return 0;
}

static void become_root(struct virtual_agent *va)
{
	/* A failure here would leave later deliveries with the wrong
	 * identity: a broken invariant, so stop the process (master starts
	 * another). */
	if (seteuid(0) < 0 || setegid(0) < 0 ||
	    setgroups((size_t)va->n_root_groups, va->root_groups) < 0)
		log_panic("cannot switch back to root after a delivery: %m");
}

/* Mirror the Maildir++ usage of the mailbox into quota_usage. Runs after
 * the identity is back to the agent's own (the database connection is
 * the agent's). The one write of a daemon, hence `database` (its lookups
 * go through db: tables on database_readonly). Warnings only. */
static void mirror_usage(struct virtual_agent *va, const struct mailbox_info *info,
                         const struct maildir_quota_usage *usage)
{
	str_t error;

	str_init(&error);
	if (va->db == NULL && db_open(va->cfg, DB_ACCESS_WRITE, &va->db, &error) < 0) {
		log_warning("quota_usage for %s not updated: %s", info->key, str_c(&error));
		str_free(&error);
		return;
	}
	if (db_quota_usage_set(va->db, info->key, usage->bytes, usage->count, &error) != SQL_OK)
		log_warning("%s not updated (maildirsize stays correct): %s", "quota_usage",
		            str_c(&error));
	str_free(&error);
}

/* Size of the maildir file maildir_deliver() writes for this message: its
 * Return-Path and Delivered-To lines (one byte each per character, LF
 * ended) and the content as queued. */
static uint64_t maildir_file_size(const struct virtual_message *msg, const char *rcpt)
{
	uint64_t size = msg->content_length;

	if (msg->sender != NULL)
		size += strlen("Return-Path: <>\n") + strlen(msg->sender);
	size += strlen("Delivered-To: \n") + strlen(rcpt);
	return size;
}

/* The delivery's identity in its Maildir file name (maildir.h once_key):
 * "Q<queue ID>R<FNV-1a 64 of the lower-cased recipient, hex>". Why a hash:
 * an address may hold any character a file name must not, and two finals
 * of one message landing in one Maildir must still get two names. */
static void once_key(const struct virtual_message *msg, const char *rcpt, str_t *out)
{
	uint64_t h = 14695981039346656037u;

	for (const char *p = rcpt; *p != '\0'; p++) {
		h ^= (unsigned char)*p;
		h *= 1099511628211u;
	}
	str_appendf(out, "Q%sR%016" PRIx64, msg->queue_id, h);
}

void virtual_deliver(struct virtual_agent *va, const struct virtual_message *msg,
                     const char *recipient, const char *orig_recipient, struct virtual_outcome *out)
{
	struct maildir_fd_source src = {
	        .fd = msg->fd, .offset = msg->content_offset, .length = msg->content_length};
	struct maildir_quota_usage usage;
	struct maildir_result res;
	struct mailbox_info info;
	int64_t uid, gid;
	bool switched = false, have_usage = false;
	char *rcpt = xstrdup(recipient);
	str_t key;

	/* Postfix's virtual looks up and reports the address lower-cased. */
	for (char *p = rcpt; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	str_init(&key);
	once_key(msg, rcpt, &key);
	mailbox_info_init(&info);
	maildir_result_init(&res);
	switch (mailbox_lookup(va->mailbox, rcpt, &info)) {
	case TABLE_TEMPFAIL:
		set_outcome(out, DELIVERY_ACTION_DEFERRED, "4.3.0", DELIVERY_LOOKUP_PROBLEM ": %s",
		            str_c(&info.error));
		goto done;
	case TABLE_NOTFOUND:
		set_outcome(out, DELIVERY_ACTION_BOUNCED, "5.1.1", "unknown user: \"%s\"", rcpt);
		goto done;
	case TABLE_FOUND:
		break;
	}
	if (lookup_id(va, va->uid_maps, "virtual_uid_maps", rcpt, &uid, out) < 0 ||
	    lookup_id(va, va->gid_maps, "virtual_gid_maps", rcpt, &gid, out) < 0)
		goto done;
	if (!info.is_maildir) {
		/* Why defer: the row is wrong, not the address; an
		 * administrator adds the '/' and the mail goes through. */
		set_outcome(
		        out, DELIVERY_ACTION_DEFERRED, "4.3.5",
		        "mail system configuration error: mailbox \"%s\" of %s is not a maildir "
		        "(postern delivers to Maildir only: the path must end in '/')",
		        info.value, rcpt);
		goto done;
	}

	/* virtual_mailbox_limit: Postfix's virtual(8) caps each maildir file
	 * (a file size limit, EFBIG) and bounces what does not fit as
	 * 5.2.2 with the write error's text. Checked before any file is made. */
	if (va->mailbox_limit > 0 && maildir_file_size(msg, rcpt) > va->mailbox_limit) {
		set_outcome(out, DELIVERY_ACTION_BOUNCED, "5.2.2",
		            "maildir delivery failed: error writing message: %s", strerror(EFBIG));
		goto done;
	}
	{
		struct maildir_request req = {
		        .base_dir = va->base,
		        .maildir = info.value,
		        .uid = (uid_t)uid,
		        .gid = (gid_t)gid,
		        .minimum_uid = va->minimum_uid,
		        .delivered_to = rcpt,
		        .return_path = msg->sender,
		        .read = maildir_read_fd,
		        .read_context = &src,
		        .quota_enabled = info.quota > 0,
		        .quota = {.bytes = info.quota > 0 ? (uint64_t)info.quota : 0, .count = 0},
		        .quota_soft = !va->overquota_bounce,
		        .once_key = str_c(&key),
		        .once_time = (time_t)(msg->arrival_us / 1000000),
		        .once_search = msg->redelivery,
		};

		/* maildir_deliver refuses a uid below the minimum itself; the
		 * identity is only taken for one it will use. */
		if (va->root && req.uid >= va->minimum_uid) {
			if (become_owner(va, req.uid, req.gid) < 0) {
				set_outcome(out, DELIVERY_ACTION_DEFERRED, "4.3.0",
				            "cannot switch to uid %ld gid %ld for %s: %s",
				            (long)uid, (long)gid, rcpt, strerror(errno));
				goto done;
			}
			switched = true;
		}
		if (maildir_deliver(&req, &res) == 0) {
			set_outcome(out, DELIVERY_ACTION_SENT, res.status, "%s", str_c(&res.text));
			/* The usage as the owner reads it (maildirsize belongs to
			 * the owner and may be rebuilt). */
			if (req.quota_enabled && info.quota_table != NULL && !res.found) {
				str_t error;

				str_init(&error);
				if (maildir_quota_usage(va->base, info.value, &req.quota, &usage,
				                        &error) == 0)
					have_usage = true;
				else
					log_warning("quota_usage for %s not updated: %s", info.key,
					            str_c(&error));
				str_free(&error);
			}
		} else {
			set_outcome(out,
			            res.status[0] == '5' ? DELIVERY_ACTION_BOUNCED
			                                 : DELIVERY_ACTION_DEFERRED,
			            res.status, "%s", str_c(&res.text));
		}
		if (switched)
			become_root(va);
	}
	/* quota_usage rows belong to postern's own mailboxes: a quota from
	 * virtual_mailbox_limit_maps (a directory) has no row to mirror to. */
	if (have_usage && strcmp(info.quota_table, "db:quota") == 0)
		mirror_usage(va, &info, &usage);
done:
	log_outcome(msg, recipient, orig_recipient, out);
	maildir_result_free(&res);
	mailbox_info_free(&info);
	str_free(&key);
	free(rcpt);
}
