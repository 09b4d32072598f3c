/* mailbox_lookup.h - a virtual mailbox's maildir and quota, from
 * virtual_mailbox_maps and db:quota.
 *
 * The one place that says how a recipient's mailbox is found, shared by
 * recipient resolution (resolve.c: `postern trace`, later qmgr) and the
 * virtual delivery agent (server/virtual), so that what trace shows is
 * what virtual does:
 *   1. virtual_mailbox_maps with maps_lookup_addr() (user+ext@domain,
 *      user@domain, @domain: Postfix virtual(8)); the value is a path
 *      relative to virtual_mailbox_base, a Maildir when it ends in '/';
 *   2. the quota, when virtual_mailbox_maps names db:mailboxes: db:quota
 *      asked with the key that found the mailbox (the mailbox's own
 *      address, without the extension), lower-cased. A quota of 0 means
 *      no limit; no row means no quota known (-1).
 * Synchronous: every lookup blocks (table.h). A table's temporary failure
 * is TABLE_TEMPFAIL with the parameter or table named, never "not found".
 */
#ifndef POSTERN_MAILBOX_LOOKUP_H
#define POSTERN_MAILBOX_LOOKUP_H

#include <stdbool.h>
#include <stdint.h>

#include "base/str.h"
#include "table/table.h"

struct config;
struct mailbox_lookup;
struct table_cache;

/* The answer for one address; the caller owns it (init once, free once;
 * mailbox_lookup() resets it). */
struct mailbox_info {
	enum table_status status;
	str_t error; /* TABLE_TEMPFAIL: "virtual_mailbox_maps: ..." or "db:quota: ..." */
	/* TABLE_FOUND: */
	char *table; /* spec of the table that found the mailbox ("db:mailboxes") */
	char *key; /* the key it found, lower-cased (user@domain: the mailbox's own address) */
	char *value; /* the table's value ("example.com/alice/") */
	char *source; /* where the value came from (ldap: the DN), or NULL */
	char *path; /* virtual_mailbox_base + "/" + value (value alone when base is "") */
	bool is_maildir; /* value ends in '/' */
	const char *quota_table; /* the quota table's spec, NULL when none is used */
	int64_t quota; /* bytes; 0 = no limit; -1 = no quota table or no row */
};

void mailbox_info_init(struct mailbox_info *info);
void mailbox_info_free(struct mailbox_info *info);

/* Open virtual_mailbox_maps (and db:quota when the list names
 * db:mailboxes) from cfg, which must outlive the handle; relative table
 * names resolve against config_dir. -1 with the parameter and table named
 * in error (appended). */
int mailbox_lookup_open(struct config *cfg, const char *config_dir, struct mailbox_lookup **ml_r,
                        str_t *error);
/* The same, with the remote tables looked up through cache
 * (table_cache_lookup_fresh(): the last known answer stands in while the
 * database fails, stale "not found" included, so the caller must not
 * refuse or bounce on it; see table_cache_stale_negatives()). cache may
 * be NULL; not owned, must outlive the handle. */
int mailbox_lookup_open_cached(struct config *cfg, const char *config_dir,
                               struct table_cache *cache, struct mailbox_lookup **ml_r,
                               str_t *error);
/* Close the tables; *mlp set to NULL; no-op on NULL. */
void mailbox_lookup_close(struct mailbox_lookup **mlp);

/* Look address ("user+ext@domain", internal form) up; returns
 * info->status. A quota value that is not a decimal number of bytes is
 * TABLE_TEMPFAIL naming the table and the key (a data problem that an
 * administrator fixes; mail waits meanwhile). */
enum table_status mailbox_lookup(struct mailbox_lookup *ml, const char *address,
                                 struct mailbox_info *info);

#endif
