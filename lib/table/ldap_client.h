/* ldap_client.h - one connection to the directory of an ldap: table
 * (OpenLDAP's libldap), used by table_ldap.c and sasl_ldap.c.
 *
 * The connection is opened on first use with the .cf file's settings:
 * server_host as libldap's URI list (tried in order at connect: failover),
 * protocol version, timeouts, referrals, alias dereferencing, TLS (ldaps://
 * or start_tls, with the tls_* files and tls_require_cert), then a simple
 * bind as bind_dn when bind = yes. It is kept for the next searches; any
 * error closes it so the next search connects again (a directory that went
 * away is tried again at the next lookup: recovery needs no restart).
 *
 * Every wait is bounded by the .cf file's timeout. Used by one thread at a
 * time (libldap handles are not shared); errors are messages naming the
 * servers and the directory's own diagnostic, never a password.
 */
#ifndef POSTERN_LDAP_CLIENT_H
#define POSTERN_LDAP_CLIENT_H

#include <stdbool.h>

#include "base/str.h"
#include "table/ldap_cf.h"

struct ldapmsg; /* libldap's LDAPMessage */

struct ldap_client {
	const struct ldap_cf *cf; /* not owned */
	void *ld; /* LDAP *, NULL when not connected */
	bool reused; /* the connection served a search before */
};

enum ldap_search_status {
	LDAP_SEARCH_OK, /* *res_r set (possibly without entries) */
	LDAP_SEARCH_NO_OBJECT, /* the search base does not exist: nothing found */
	LDAP_SEARCH_SIZE_LIMIT, /* more entries than size_limit: message in error */
	LDAP_SEARCH_ERROR, /* message in error; the connection was closed */
};

void ldap_client_init(struct ldap_client *c, const struct ldap_cf *cf);
/* Close the connection (unbind); the next search connects again. */
void ldap_client_close(struct ldap_client *c);

/* Search base (scope, filter, the attributes attrs, at most size_limit
 * entries: 0 for no limit) and return every entry in *res_r (caller frees
 * with ldap_msgfree). A connection that a previous search used and that
 * the server has closed meanwhile is reopened once. A size limit
 * exceeded is LDAP_SEARCH_SIZE_LIMIT, with no entries: a partial answer
 * must not pass for the whole. */
enum ldap_search_status ldap_client_search(struct ldap_client *c, const char *base, int scope,
                                           const char *filter, char **attrs, unsigned size_limit,
                                           void **res_r, str_t *error);

/* Check password by binding as dn on a new connection of cf's servers
 * (not c's: its identity stays the service account's). 1 accepted, 0
 * refused (invalid credentials, or an empty password, which LDAP would
 * take as an unauthenticated bind), -1 error with a message. */
int ldap_client_check_password(const struct ldap_cf *cf, const char *dn, const char *password,
                               str_t *error);

#endif
