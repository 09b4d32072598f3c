/* virtual.h - the virtual delivery agent's state, shared by its two files:
 * virtual.c (process, socket, protocol) and virtual_deliver.c (one
 * recipient: lookups, Maildir delivery, quota mirror, log line).
 */
#ifndef POSTERN_VIRTUAL_H
#define POSTERN_VIRTUAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/str.h"

struct config;
struct maps;
struct mailbox_lookup;
struct queue_dir;
struct sql_conn;

struct virtual_agent {
	struct config *cfg;
	struct queue_dir *qd;
	struct mailbox_lookup *mailbox; /* virtual_mailbox_maps (+ db:quota) */
	struct maps *uid_maps; /* virtual_uid_maps */
	struct maps *gid_maps; /* virtual_gid_maps */
	char *delimiters; /* recipient_delimiter */
	const char *base; /* virtual_mailbox_base */
	uid_t minimum_uid; /* virtual_minimum_uid */
	bool overquota_bounce; /* virtual_overquota_bounce */
	uint64_t mailbox_limit; /* virtual_mailbox_limit: bytes per maildir file; 0 = none */
	bool root; /* started as root: deliver as the mailbox owner */
	gid_t *root_groups; /* root's supplementary groups, restored after each delivery */
	int n_root_groups;
	struct sql_conn *db; /* postern's database for quota_usage; NULL until needed */
};

/* What one delivery request gives a recipient's delivery. */
struct virtual_message {
	const char *queue_id;
	const char *sender; /* "" for the null sender */
	int fd; /* the queue file, read only */
	uint64_t content_offset;
	uint64_t content_length;
	int64_t arrival_us; /* microseconds since the epoch */
	int64_t active_us; /* time_active */
	int64_t start_us; /* when the agent took the request */
	bool redelivery; /* qmgr: an earlier attempt may have delivered it */
};

/* The outcome of one recipient, for the reply. */
struct virtual_outcome {
	const char *action; /* DELIVERY_ACTION_* */
	char status[8]; /* "2.0.0" */
	str_t reason; /* initialised by the caller */
};

/* Deliver msg to recipient (orig_recipient as qmgr gave it), log the
 * Postfix line and fill out. Never fails: every problem is an outcome. */
void virtual_deliver(struct virtual_agent *va, const struct virtual_message *msg,
                     const char *recipient, const char *orig_recipient,
                     struct virtual_outcome *out);

#endif
