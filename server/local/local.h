/* local.h - the local delivery agent's state, shared by its files:
 * local.c (process, settings, protocol), local_deliver.c (one recipient:
 * aliases, .forward, mailbox), local_command.c (|command and
 * mailbox_command), local_forward.c (re-submission through cleanup) and
 * local_pass.c (mailbox_transport, fallback_transport).
 */
#ifndef POSTERN_LOCAL_H
#define POSTERN_LOCAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/str.h"
#include "base/strv.h"
#include "delivery/delivery_request.h"

struct cleanup_settings;
struct config;
struct maps;
struct queue_dir;
struct resolve_ctx;

/* Expansion classes of allow_mail_to_commands / _files. */
enum local_class {
	LOCAL_CLASS_NONE = 0, /* the recipient itself */
	LOCAL_CLASS_ALIAS = 1 << 0,
	LOCAL_CLASS_FORWARD = 1 << 1,
	LOCAL_CLASS_INCLUDE = 1 << 2,
};

/* An identity deliveries run as. */
struct local_ids {
	uid_t uid;
	gid_t gid;
	const char *name; /* for messages */
};

/* alias_maps, opened (again) when it is not: 0, or -1 with la->alias_error
 * set (the deliveries that need it are deferred, as Postfix defers them
 * while /etc/aliases.db is missing). */
struct local_agent;
int local_alias_maps(struct local_agent *la);

struct local_agent {
	struct config *cfg;
	const char *config_dir;
	const char *service; /* master.cf name (relay= in the log): "local" */
	struct queue_dir *qd;
	const char *queue_directory;
	struct maps *alias_maps; /* NULL while a table cannot be opened */
	str_t alias_error; /* why not */
	struct resolve_ctx *resolve; /* is a destination local, or forwarded? */
	struct cleanup_settings *cleanup;
	/* Settings (main.cf, read once). */
	char *delimiters; /* recipient_delimiter */
	const char *myhostname, *myorigin;
	unsigned commands_ok, files_ok; /* allow_mail_to_*: LOCAL_CLASS_* */
	bool propagate_alias, propagate_forward, propagate_include;
	const char *forward_path, *luser_relay, *mailbox_command; /* raw */
	const char *home_mailbox, *spool_dir, *mailbox_transport, *fallback_transport;
	const char *exec_dir, *shell, *filter;
	uint64_t mailbox_size_limit, command_time_limit;
	unsigned locks; /* MBOX_LOCK_* */
	/* Identities. */
	bool root; /* started as root: switch per delivery */
	struct local_ids owner; /* mail_owner: everything but deliveries */
	struct local_ids nobody; /* default_privs */
	char *owner_name, *nobody_name;
};

/* The message of one request. */
struct local_message {
	const struct delivery_request *req;
	const char *queue_id;
	const char *sender; /* "" for the null sender */
	int fd; /* the queue file, read only */
	uint64_t content_offset, content_length;
	uint64_t arrival_us, active_us, start_us;
	strv_t delivered_to; /* Delivered-To: values, lower case */
};

/* Worst-first order of outcomes. */
enum local_status {
	LOCAL_SENT = 0,
	LOCAL_BOUNCED = 1,
	LOCAL_DEFERRED = 2,
};

/* One address waiting for re-submission. */
struct local_fwd {
	char *sender;
	char *delivered; /* Delivered-To of the new message */
	strv_t rcpts; /* the new message's recipients */
	strv_t logged_as; /* per recipient: the to= of its log line */
};

/* The outcome of one recipient block, built up by its parts. */
struct local_outcome {
	enum local_status status;
	char dsn[8];
	str_t reason; /* of the worst part */
	bool any; /* some part reported */
	strv_t done; /* duplicate filter: "kind:key" */
	struct local_fwd *fwd; /* re-submissions, by (sender, delivered) */
	size_t nfwd;
};

/* One recipient block: deliver rcpt (its queue recipient orig), log each
 * part and fill out. Never fails: every problem is an outcome. */
void local_deliver(struct local_agent *la, struct local_message *msg, const char *rcpt,
                   const char *orig, struct local_outcome *out);

/* Record one part's result in out and log it (relay=SERVICE). to is the
 * address logged; dsn "2.0.0"... */
void local_part(struct local_agent *la, const struct local_message *msg, struct local_outcome *out,
                const char *to, const char *orig, enum local_status st, const char *dsn,
                const char *fmt, ...) __attribute__((format(printf, 8, 9)));

/* Become ids (effective uid/gid, one group) from root; back to mail_owner.
 * No-ops when the agent is not root. become() is -1 with errno. */
int local_become(struct local_agent *la, const struct local_ids *ids);
void local_unbecome(struct local_agent *la);

/* ---- local_command.c ---- */

/* What a command gets in its environment. */
struct local_command_env {
	const char *home, *user, *shell, *extension, *domain, *local, *recipient, *sender, *orig;
};

/* Run command as ids with the message (MBOX_COPY_COMMAND form) on its
 * standard input; fills dsn and why (Postfix's texts: "Command died with
 * status N: ...", sysexits). Returns the status. */
enum local_status local_command_run(struct local_agent *la, const struct local_message *msg,
                                    const char *command, const struct local_ids *ids,
                                    const char *cwd, const struct local_command_env *env,
                                    const char *delivered, char dsn[8], str_t *why);

/* ---- local_forward.c ---- */

/* Queue addr for re-submission with sender and a Delivered-To: header;
 * logged later as to_logged. */
void local_forward_add(struct local_outcome *out, const char *sender, const char *delivered,
                       const char *addr, const char *to_logged);
/* Write every queued re-submission as a new message through cleanup,
 * log "forwarded as ID" (or the failure) per address, wake qmgr. */
void local_forward_flush(struct local_agent *la, struct local_message *msg, const char *orig,
                         struct local_outcome *out);
void local_forward_free(struct local_outcome *out);

/* ---- local_pass.c ---- */

/* Hand rcpt (queue recipient orig) to transport ("name[:nexthop]")
 * with the same queue file: the other agent logs its result, which
 * becomes this part's. */
enum local_status local_pass(struct local_agent *la, const struct local_message *msg,
                             const char *transport, const char *rcpt, const char *orig, char dsn[8],
                             str_t *why);

#endif
