/* db_admin.h - change and list domains, mailboxes and aliases in
 * postern's schema.
 *
 * The one place that writes the schema's domain, mailbox and alias rows,
 * shared by `postern domain|user|alias` and the web admin: names are
 * checked and lower-cased here, limits (max_mailboxes, max_aliases) are
 * enforced here, and every change leaves an admin_log row naming who made
 * it. Every statement is parameterised.
 *
 * Return values: SQL_OK; SQL_FAIL for a refused change (a domain that
 * does not exist, a mailbox that already does, a limit reached, a bad
 * name) or an SQL error, with a message for the user appended to error;
 * SQL_TEMPFAIL when the database cannot be reached. Without transactions
 * over several statements, a change interrupted half way (alias targets)
 * is completed by running the same command again.
 */
#ifndef POSTERN_DB_ADMIN_H
#define POSTERN_DB_ADMIN_H

#include <stdbool.h>
#include <stdint.h>

#include "base/str.h"
#include "sql/sql.h"

/* Who changes what. */
struct db_admin {
	struct sql_conn *conn;
	const char *actor; /* admin_log.admin: "cli:root", a web admin's name */
};

/* Longest local part and address (RFC 5321 4.5.3.1), and domain name. */
#define DB_LOCAL_PART_MAX 64
#define DB_ADDRESS_MAX 254
#define DB_DOMAIN_MAX 253

/* A domain name as stored: lower-cased, one trailing dot removed, LDH
 * labels of 1 to 63 characters (IDNs as "xn--" A-labels). NULL with a
 * message naming the name and the problem. The caller frees. */
char *db_domain_normalise(const char *name, str_t *error);

/* An address as stored: "local@domain", lower-cased, the local part a
 * dot-atom (no quoted local parts), the domain as db_domain_normalise.
 * With allow_catchall "@domain" is accepted too. NULL with a message.
 * The caller frees. */
char *db_address_normalise(const char *address, bool allow_catchall, str_t *error);

/* The value of a boolean column as text ("1", "t", "true" on
 * PostgreSQL) as a C bool. */
bool db_bool(const char *value);

/* A new domain. Numbers are 0 when not given (0 = unlimited). */
struct db_domain_spec {
	const char *description; /* NULL: "" */
	const char *transport; /* NULL: none */
	const char *alias_of; /* not NULL: make an alias domain of this domain */
	uint64_t default_quota_bytes; /* for mailboxes without their own quota */
	uint64_t max_mailboxes, max_aliases;
	bool backup_mx;
	bool has_uid, has_gid;
	uint64_t uid, gid;
};

/* Add domain name (an alias domain when spec->alias_of is set: then
 * only that field counts). Refused when the name exists as a domain or
 * an alias domain, or the alias_of domain does not exist. */
enum sql_status db_domain_add(const struct db_admin *a, const char *name,
                              const struct db_domain_spec *spec, str_t *error);
/* Delete a domain or an alias domain. A domain that still has mailboxes
 * or aliases is refused unless force (they are deleted with it). */
enum sql_status db_domain_del(const struct db_admin *a, const char *name, bool force, str_t *error);
/* Domains in name order, columns: name, active, backup_mx, description,
 * default_quota_bytes, max_mailboxes, max_aliases, mailboxes (count),
 * aliases (count), transport (may be NULL). Booleans are "1" or "0".
 * Then alias domains: columns name, target domain, active. Both results
 * are the caller's (sql_result_free), zeroed on failure. */
enum sql_status db_domain_list(const struct db_admin *a, struct sql_result *domains,
                               struct sql_result *alias_domains, str_t *error);

/* Add mailbox address with a password hash already made (password.h),
 * a display name (NULL: "") and quota (NULL: the domain's default;
 * "0" = unlimited). The maildir is "domain/local/". Refused when the
 * domain does not exist (or is an alias domain), the mailbox exists, or
 * the domain's max_mailboxes is reached. */
enum sql_status db_mailbox_add(const struct db_admin *a, const char *address,
                               const char *password_hash, const char *name,
                               const uint64_t *quota_bytes, str_t *error);
/* The checks of db_mailbox_add (the domain exists, the mailbox does not,
 * the limit is not reached), for asking them before a password is
 * typed. SQL_OK when the mailbox can be added now. */
enum sql_status db_mailbox_check_new(const struct db_admin *a, const char *address, str_t *error);
/* SQL_OK when mailbox address exists, else SQL_FAIL "mailbox ... does
 * not exist" (or the database error). */
enum sql_status db_mailbox_check_exists(const struct db_admin *a, const char *address,
                                        str_t *error);
/* Replace the password hash of an existing mailbox. */
enum sql_status db_mailbox_passwd(const struct db_admin *a, const char *address,
                                  const char *password_hash, str_t *error);
/* Delete a mailbox (its aliases stay: they may forward elsewhere too). */
enum sql_status db_mailbox_del(const struct db_admin *a, const char *address, str_t *error);
/* Mailboxes in address order (of one domain when domain is not NULL),
 * columns: address, name, quota_bytes (NULL: domain default),
 * effective quota bytes, active ("1"/"0"), maildir. */
enum sql_status db_mailbox_list(const struct db_admin *a, const char *domain,
                                struct sql_result *res, str_t *error);

/* Add targets to alias address ("info@example.com" or "@example.com"),
 * creating it when new (subject to the domain's max_aliases). Targets
 * already there are kept once. */
enum sql_status db_alias_add(const struct db_admin *a, const char *address,
                             const char *const *targets, size_t ntargets, str_t *error);
/* Delete an alias, or one of its targets (target not NULL); an alias
 * left without targets is deleted. */
enum sql_status db_alias_del(const struct db_admin *a, const char *address, const char *target,
                             str_t *error);
/* One row per (alias, target) in address then target order (of one
 * domain when domain is not NULL), columns: address, target, active. */
enum sql_status db_alias_list(const struct db_admin *a, const char *domain, struct sql_result *res,
                              str_t *error);

#endif
