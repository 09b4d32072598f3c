/* ldap_lookup.h - one ldap: table lookup the way Postfix's ldap_table(5)
 * does it, used by table_ldap.c (every lookup) and sasl_ldap.c (finding
 * the entry of a login).
 *
 * The key passes the `domain` list and the templates' needs (as the SQL
 * tables do: sqlcf_key_eligible), search_base and query_filter are
 * expanded with the key's parts escaped (RFC 4514 and RFC 4515: the key
 * can never change the filter's structure), and each entry found gives:
 *   - only its terminal_result_attribute values, when it has any;
 *   - else its result_attribute values, and
 *       - when it has special_result_attribute values (a group): the
 *         entries they name (DNs, or LDAP URLs), expanded the same way,
 *         at most recursion_limit deep; or with special_result_in_chain,
 *         every entry whose memberOf reaches it through Active
 *         Directory's in-chain rule, in one search;
 *       - when it has none (a leaf): its leaf_result_attribute values.
 * A member entry is expanded only when it matches recursion_filter. An
 * entry reached twice (a member of two nested groups, a group loop) is
 * expanded once, and equal values (ignoring case) are returned once.
 * Values go through result_format and are joined with ","; more than
 * expansion_limit values, more than size_limit entries in one search,
 * recursion deeper than recursion_limit, or any directory error is a
 * temporary failure naming the table, the servers and the key.
 */
#ifndef POSTERN_LDAP_LOOKUP_H
#define POSTERN_LDAP_LOOKUP_H

#include "base/str.h"
#include "table/ldap_client.h"
#include "table/table.h"

/* Longest attribute value taken from the directory; longer values (and
 * values holding a NUL byte) are skipped with a warning. */
#define LDAP_VALUE_MAX 4096
/* Longest joined answer: more is a temporary failure. */
#define LDAP_ANSWER_MAX (1024 * 1024)
/* Most entries one lookup visits, whatever the limits of the .cf file. */
#define LDAP_ENTRIES_MAX 100000

/* Look key up through c (spec names the table in messages). Sets
 * r->status and r->value or r->error; r->source is set to the DN of the
 * first entry the query matched. */
void ldap_lookup(struct ldap_client *c, const char *spec, const char *key, struct table_result *r);

/* The entry a login names, for a password check: query_filter (and
 * search_base) expanded with key as in a lookup, exactly one entry
 * expected. 1 with its DN in dn_r (and, when the .cf file names a
 * result_attribute, that attribute's first value in canonical_r, else
 * nothing appended), 0 when no entry or more than one matches (the
 * number found in why), -1 on a directory error (message in error). */
int ldap_lookup_dn(struct ldap_client *c, const char *key, str_t *dn_r, str_t *canonical_r,
                   str_t *why, str_t *error);

#endif
