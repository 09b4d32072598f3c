/* maps.h - a list of lookup tables searched in order (Postfix maps(3)).
 *
 * A parameter such as virtual_alias_maps names several tables; a lookup
 * tries them in order and the first table that finds the key wins. A
 * temporary failure stops the search: when no earlier table found the
 * key, the answer is TEMPFAIL, never "not found", because a later table
 * cannot know what the failed one would have said (Postfix maps_find()).
 *
 * maps_lookup_addr() adds Postfix's address lookup order (mail_addr_find)
 * for address-keyed parameters (virtual_alias_maps, virtual_mailbox_maps,
 * access tables ...); maps_lookup_domain() looks up a bare domain
 * (virtual_mailbox_domains and other domain lists given as tables).
 *
 * Not done: Postfix's parent_domain_matches_subdomains (a table entry
 * "example.com" also matching "sub.example.com" for some parameters such
 * as relay_domains and smtpd_access_maps). Callers that need parent
 * domains look up ".example.com" style keys themselves.
 *
 * When the open context names a cache (table_open_context.cache), remote
 * tables are looked up with table_cache_lookup_fresh(): the database is
 * asked, and while it fails the last known answer within
 * table_cache_grace_time stands in (resolve.c, for qmgr and smtpd's
 * quota check). Without one, every lookup goes to the table.
 *
 * Synchronous and single-threaded like table.h; results are owned by the
 * caller (struct table_result, struct maps_answer).
 */
#ifndef POSTERN_MAPS_H
#define POSTERN_MAPS_H

#include <stddef.h>

#include "base/str.h"
#include "base/strv.h"
#include "table/table.h"

struct maps;

/* Which table answered and for which key, for `postern trace` and logs.
 * Fields are NULL when nothing was found (and no table failed). */
struct maps_answer {
	const struct table *table; /* the table that found the key or failed */
	char *key; /* the key it was asked (as derived from the address) */
	char *extension; /* maps_lookup_addr: the address extension that was
				    * removed to find the key, delimiter included ("+foo") */
};

void maps_answer_init(struct maps_answer *a);
void maps_answer_free(struct maps_answer *a);

/* Open every table of a Postfix table list ("texthash:/a, regexp:/b";
 * elements separated by commas or white space, braces group as in
 * "inline:{ a=b, c=d }"). title names the list in messages (usually the
 * parameter name; "" for none: every table message names its table
 * anyway). An empty list gives a maps that finds nothing. NULL with
 * "title: message" appended to error when a table cannot be opened (the
 * tables opened so far are closed). */
struct maps *maps_open(const char *title, const char *list, const struct table_open_context *ctx,
                       str_t *error);
/* The same for a list already split into table names. */
struct maps *maps_open_list(const char *title, const strv_t *specs,
                            const struct table_open_context *ctx, str_t *error);
/* Close every table and free; *mp set to NULL; no-op on NULL. */
void maps_close(struct maps **mp);

const char *maps_title(const struct maps *m);
size_t maps_count(const struct maps *m);
struct table *maps_table(const struct maps *m, size_t i);

/* Look key up in each table in order (only in tables having one of
 * need_flags when need_flags is not 0, e.g. TABLE_F_FIXED_KEYS); the first
 * table that finds it wins; a temporary failure before that ends the
 * search with TEMPFAIL (r->error names the table; a warning naming the
 * list and key is logged). Returns r->status. answer may be NULL. */
enum table_status maps_lookup(struct maps *m, const char *key, unsigned need_flags,
                              struct table_result *r, struct maps_answer *answer);

/* Options of maps_lookup_addr(). */
enum {
	/* The address's domain is local (mydestination, or the caller's own
	 * notion): also try the local part alone, "user+ext" then "user". */
	MAPS_ADDR_LOCALPART = 1 << 0,
	/* Do not try "@domain" (catch-all) keys. */
	MAPS_ADDR_NO_AT_DOMAIN = 1 << 1,
};

/* Look an address up the way Postfix's mail_addr_find() does. For
 * user+ext@domain with recipient_delimiter "+" the keys are, in order
 * (each one tried in every table before the next key):
 *   1. user+ext@domain   every table, pattern tables included
 *   2. user@domain       exact-key tables only (TABLE_F_FIXED_KEYS)
 *   3. user+ext          exact-key tables, only with MAPS_ADDR_LOCALPART
 *   4. user              exact-key tables, only with MAPS_ADDR_LOCALPART
 *   5. @domain           exact-key tables, unless MAPS_ADDR_NO_AT_DOMAIN
 * Pattern tables (regexp, pcre, cidr) only ever see the full address, so
 * a regexp cannot accidentally match a partial key. Keys without an
 * extension skip 2 and 4; an address without '@' tries 1 and 2 only.
 * delimiters is recipient_delimiter (a set of characters, any one of which
 * starts the extension; NULL or "" disables extensions). As in Postfix,
 * the local parts postmaster, mailer-daemon and double-bounce are never
 * split, nor, when '-' is a delimiter, owner-* and *-request; a local part
 * that would become empty is not split. The first found key wins; a
 * TEMPFAIL ends the search. Returns r->status; answer may be NULL. */
enum table_status maps_lookup_addr(struct maps *m, const char *address, const char *delimiters,
                                   unsigned options, struct table_result *r,
                                   struct maps_answer *answer);

/* Look a bare domain up in every table in order ("example.com"; a
 * trailing dot is removed). No parent-domain matching (see above). */
enum table_status maps_lookup_domain(struct maps *m, const char *domain, struct table_result *r,
                                     struct maps_answer *answer);

/* Split an address's local part at the first recipient delimiter, by
 * Postfix's rules above. Returns the position of the delimiter within
 * localpart (len bytes), or len when it must not be split. */
size_t maps_extension_split(const char *localpart, size_t len, const char *delimiters);

#endif
