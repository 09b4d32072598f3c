/* resolve.h - where a recipient's mail goes: virtual alias expansion,
 * domain class, mailbox, quota and transport, with every step recorded.
 *
 * Used by `postern trace ADDRESS`, qmgr (qmgr_resolve.c, in a worker
 * thread) and smtpd's RCPT-time quota check (in table_async jobs).
 * Synchronous: every table lookup blocks (table.h).
 *
 * What is done, in Postfix's order (cleanup virtual alias expansion, then
 * trivial-rewrite's resolve and transport lookup):
 *   1. virtual_alias_maps with maps_lookup_addr() (user+ext@domain,
 *      user@domain, @domain); an unmatched extension is propagated to the
 *      targets when propagate_unmatched_extensions names "virtual";
 *      recursively up to virtual_alias_recursion_limit levels and at most
 *      virtual_alias_expansion_limit addresses; an address that expands to
 *      itself is final; an address seen before in the same expansion is
 *      dropped (duplicate suppression, which also breaks loops).
 *   2. For each final address its class: local (mydestination), virtual
 *      alias domain, virtual mailbox domain, relay domain, or default.
 *   3. Mailbox (virtual_mailbox_maps -> maildir below
 *      virtual_mailbox_base), quota (db:quota when virtual_mailbox_maps
 *      names db:mailboxes) and current usage (the Maildir's maildirsize,
 *      read only: nothing is written).
 *   4. Transport: transport_maps (user+ext@domain, user@domain, domain,
 *      .parent domains, *), else the class's transport.
 * A table's temporary failure ends the whole resolution as
 * RESOLVE_TEMPFAIL naming the table; nothing is ever called "unknown"
 * because a table could not be asked.
 */
#ifndef POSTERN_RESOLVE_H
#define POSTERN_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/str.h"
#include "delivery/maildir_quota.h"

struct config;
struct resolve_ctx;

enum resolve_status {
	RESOLVE_OK, /* every final recipient is deliverable */
	RESOLVE_UNDELIVERABLE, /* some final recipient is not (unknown user ...) */
	RESOLVE_TEMPFAIL, /* a table failed or a limit was hit: try later */
};

enum resolve_class {
	RESOLVE_CLASS_LOCAL, /* mydestination */
	RESOLVE_CLASS_ALIAS, /* virtual_alias_domains */
	RESOLVE_CLASS_VIRTUAL, /* virtual_mailbox_domains */
	RESOLVE_CLASS_RELAY, /* relay_domains */
	RESOLVE_CLASS_DEFAULT, /* anything else */
};

/* One line of the trace: depth 0 is the address asked, each alias level
 * adds one; text is an address or "step: detail". */
struct resolve_line {
	unsigned depth;
	char *text;
};

/* One final recipient after alias expansion. */
struct resolve_final {
	char *address;
	enum resolve_class class;
	bool deliverable;
	char *reason; /* !deliverable: Postfix's words ("User unknown in ...") */
	/* Deliverable, but the virtual agent would defer it for now: its
	 * maildir breaks maildir_path_check()'s rules ("../x/", a symlink).
	 * "4.3.5 mail system configuration error: ..." or NULL. The status
	 * stays RESOLVE_OK for it: qmgr hands it to virtual, whose deferral
	 * is the same answer; `postern trace` exits 75 for it. */
	char *deferred;
	char *transport; /* "virtual", "smtp", "error" ... */
	char *nexthop; /* may be "" */
	char *maildir; /* virtual mailbox: full path (base + table value), else NULL */
	char *maildir_value; /* the table value alone, below virtual_mailbox_base */
	int64_t quota; /* bytes from db:quota; -1 when not known */
	/* With a quota (quota >= 0): the maildirsize of the Maildir, read
	 * only (maildir_quota_peek); usage.limits are the file's header.
	 * usage_known is false when the file is unreadable or needs a
	 * rebuild; a missing file is known and empty. */
	bool usage_known;
	struct maildir_quota_usage usage;
};

struct resolve_result {
	enum resolve_status status;
	str_t error; /* RESOLVE_TEMPFAIL: why, naming the table or limit */
	struct resolve_line *lines;
	size_t nlines;
	struct resolve_final *finals;
	size_t nfinals;
};

/* Prepare an empty result (resolve_recipient() reuses it freely). */
void resolve_result_init(struct resolve_result *r);
/* Release everything r holds; init it again before reuse. */
void resolve_result_free(struct resolve_result *r);

/* Open every table the resolution needs from cfg (which must outlive the
 * context); config_dir resolves relative table names. -1 with the
 * parameter and table named in error (appended) when a table cannot be
 * opened or a parameter is bad. */
int resolve_open(struct config *cfg, const char *config_dir, struct resolve_ctx **ctx_r,
                 str_t *error);
/* Close every table; *ctxp set to NULL; no-op on NULL. */
void resolve_close(struct resolve_ctx **ctxp);

/* The envelope sender of the addresses resolved next (NULL: unknown, as
 * for `postern trace` without -f), for sender_dependent_relayhost_maps
 * and sender_dependent_default_transport_maps; "" is the null sender. */
void resolve_set_sender(struct resolve_ctx *ctx, const char *sender);

/* Resolve address (internal form, "user@domain"). r must have been
 * initialised (it is reset first). Returns r->status. */
enum resolve_status resolve_recipient(struct resolve_ctx *ctx, const char *address,
                                      struct resolve_result *r);

/* "virtual mailbox domain" etc., for traces and logs. */
const char *resolve_class_name(enum resolve_class class);

#endif
