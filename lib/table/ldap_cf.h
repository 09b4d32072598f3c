/* ldap_cf.h - the .cf file of an ldap: table (Postfix's ldap_table(5)),
 * read into settings the LDAP client (ldap_client.h) and the lookup
 * (ldap_search.h) use; also read by smtpd_sasl_type = ldap for its
 * service account and user search.
 *
 * Parameters as in ldap_table(5): server_host (several, with failover;
 * ldap://, ldaps://, ldapi:// URLs or host[:port]), server_port, timeout,
 * search_base, query_filter, result_format (result_filter, its old name),
 * domain, result_attribute, special_result_attribute,
 * terminal_result_attribute, leaf_result_attribute, scope, bind, bind_dn,
 * bind_pw, recursion_limit, expansion_limit, size_limit, dereference,
 * chase_referrals, version, debuglevel, start_tls, tls_ca_cert_file,
 * tls_ca_cert_dir, tls_cert, tls_key, tls_require_cert,
 * tls_random_file, tls_cipher_suite. postern adds:
 *   bind_pw_file             the bind password read from this file (its
 *                            first line), so the .cf can be world-readable
 *   recursion_filter         an entry reached through a special result
 *                            attribute (a group member) is only expanded
 *                            when it matches this filter (default
 *                            (objectClass=*): every entry, as Postfix)
 *   special_result_in_chain  yes: a group's members are found with one
 *                            search for (memberOf:1.2.840.113556.1.4.1941:=
 *                            GROUP), Active Directory's in-chain rule,
 *                            instead of following member DNs one by one
 * bind = sasl and the sasl_* parameters are refused (not implemented);
 * the cache parameters Postfix ignores are ignored with a warning.
 */
#ifndef POSTERN_LDAP_CF_H
#define POSTERN_LDAP_CF_H

#include <stdbool.h>

#include "base/str.h"
#include "base/strv.h"
#include "table/sqlcf_template.h"
#include "table/table_sqlcf.h"

struct table_open_context;

/* Longest bind_pw_file read. */
#define LDAP_CF_PASSWORD_MAX 1024

struct ldap_cf {
	char *path; /* the .cf file, for messages */
	/* Connection */
	char *uris; /* server_host as libldap's space-separated URI list */
	char *servers; /* the same for messages */
	int version; /* 2 or 3 */
	unsigned timeout; /* seconds: connect, bind and each search */
	bool start_tls;
	char *tls_ca_cert_file, *tls_ca_cert_dir, *tls_cert, *tls_key, *tls_cipher_suite;
	bool tls_require_cert;
	bool bind; /* simple bind (with bind_dn, bind_pw; both empty: anonymous) */
	char *bind_dn, *bind_pw;
	int dereference; /* LDAP_DEREF_* */
	bool chase_referrals;
	/* Search */
	struct sqlcf_template search_base; /* RFC 4514 escaping of expansions */
	int scope; /* LDAP_SCOPE_* */
	struct sqlcf_template query_filter; /* RFC 4515 escaping of expansions */
	struct sqlcf_template result_format;
	unsigned need, labels; /* of the three templates */
	struct sqlcf_domain_list domains;
	/* Results */
	strv_t result_attrs, special_attrs, terminal_attrs, leaf_attrs;
	char **attrs; /* all of them, NULL-terminated: what searches ask for */
	unsigned recursion_limit, expansion_limit, size_limit;
	char *recursion_filter; /* NULL: (objectClass=*) */
	bool in_chain;
};

/* Read the .cf file name (relative names resolve against ctx->config_dir).
 * -1 with every problem, naming file and line, appended to error;
 * ldap_cf_free is still to be called. */
int ldap_cf_open(struct ldap_cf *cf, const char *name, const struct table_open_context *ctx,
                 str_t *error);
void ldap_cf_free(struct ldap_cf *cf);

/* RFC 4515: value made safe inside a filter ('*' '(' ')' '\' NUL and
 * bytes outside printable ASCII as \XX). */
void ldap_escape_filter(str_t *out, const char *value);
/* RFC 4514: value made safe as an attribute value of a DN. */
void ldap_escape_dn(str_t *out, const char *value);

#endif
