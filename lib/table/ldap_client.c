/* ldap_client.c - connections to a directory (see ldap_client.h). Used by
 * table_ldap.c (searches) and sasl_ldap.c (searches and password binds).
 *
 * Per-handle options only: nothing here changes libldap's process-wide
 * defaults, so two tables with different TLS files do not interfere
 * (LDAP_OPT_X_TLS_NEWCTX makes each handle's TLS context from its own
 * settings).
 */
#include "table/ldap_client.h"

#include <ldap.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "base/mem.h"

void ldap_client_init(struct ldap_client *c, const struct ldap_cf *cf)
{
	memset(c, 0, sizeof(*c));
	c->cf = cf;
}

void ldap_client_close(struct ldap_client *c)
{
	if (c->ld != NULL)
		ldap_unbind_ext_s(c->ld, NULL, NULL);
	c->ld = NULL;
	c->reused = false;
}

/* "servers: what failed: libldap's message (the server's diagnostic)". */
static void ldap_error(str_t *error, LDAP *ld, const struct ldap_cf *cf, const char *what, int rc)
{
	char *diag = NULL;

	str_appendf(error, "%s: %s: %s", cf->servers, what, ldap_err2string(rc));
	if (ld != NULL &&
	    ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag) == LDAP_OPT_SUCCESS &&
	    diag != NULL) {
		if (diag[0] != '\0')
			str_appendf(error, " (%s)", diag);
		ldap_memfree(diag);
	}
}

static int set_option(LDAP *ld, int option, const void *value, const struct ldap_cf *cf,
                      const char *name, str_t *error)
{
	int rc = ldap_set_option(ld, option, value);

	if (rc != LDAP_OPT_SUCCESS) {
		str_appendf(error, "%s: cannot set %s: %s", cf->servers, name, ldap_err2string(rc));
		return -1;
	}
	return 0;
}

static int set_tls_options(LDAP *ld, const struct ldap_cf *cf, str_t *error)
{
	int require = cf->tls_require_cert ? LDAP_OPT_X_TLS_DEMAND : LDAP_OPT_X_TLS_NEVER;
	int zero = 0;

	if (cf->tls_ca_cert_file != NULL &&
	    set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, cf->tls_ca_cert_file, cf, "tls_ca_cert_file",
	               error) < 0)
		return -1;
	if (cf->tls_ca_cert_dir != NULL &&
	    set_option(ld, LDAP_OPT_X_TLS_CACERTDIR, cf->tls_ca_cert_dir, cf, "tls_ca_cert_dir",
	               error) < 0)
		return -1;
	if (cf->tls_cert != NULL &&
	    set_option(ld, LDAP_OPT_X_TLS_CERTFILE, cf->tls_cert, cf, "tls_cert", error) < 0)
		return -1;
	if (cf->tls_key != NULL &&
	    set_option(ld, LDAP_OPT_X_TLS_KEYFILE, cf->tls_key, cf, "tls_key", error) < 0)
		return -1;
	if (cf->tls_cipher_suite != NULL &&
	    set_option(ld, LDAP_OPT_X_TLS_CIPHER_SUITE, cf->tls_cipher_suite, cf,
	               "tls_cipher_suite", error) < 0)
		return -1;
	if (set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &require, cf, "tls_require_cert", error) <
	    0)
		return -1;
	/* Build this handle's TLS context from the options just set. */
	return set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &zero, cf, "TLS context", error);
}

/* A new handle with every option of cf, connected (and TLS started) but
 * not bound. NULL with a message. */
static LDAP *open_handle(const struct ldap_cf *cf, str_t *error)
{
	struct timeval tv = {.tv_sec = (time_t)cf->timeout, .tv_usec = 0};
	LDAP *ld = NULL;
	int rc, version = cf->version, deref = cf->dereference;

	rc = ldap_initialize(&ld, cf->uris);
	if (rc != LDAP_SUCCESS) {
		ldap_error(error, NULL, cf, "cannot initialise", rc);
		return NULL;
	}
	if (set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &version, cf, "version", error) < 0 ||
	    set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv, cf, "timeout", error) < 0 ||
	    set_option(ld, LDAP_OPT_TIMEOUT, &tv, cf, "timeout", error) < 0 ||
	    set_option(ld, LDAP_OPT_DEREF, &deref, cf, "dereference", error) < 0 ||
	    set_option(ld, LDAP_OPT_REFERRALS, cf->chase_referrals ? LDAP_OPT_ON : LDAP_OPT_OFF, cf,
	               "chase_referrals", error) < 0 ||
	    set_option(ld, LDAP_OPT_RESTART, LDAP_OPT_ON, cf, "restart", error) < 0 ||
	    set_tls_options(ld, cf, error) < 0) {
		ldap_unbind_ext_s(ld, NULL, NULL);
		return NULL;
	}
	if (cf->start_tls) {
		rc = ldap_start_tls_s(ld, NULL, NULL);
		if (rc != LDAP_SUCCESS) {
			ldap_error(error, ld, cf, "start_tls", rc);
			ldap_unbind_ext_s(ld, NULL, NULL);
			return NULL;
		}
	}
	return ld;
}

/* Simple bind as dn with password (both may be NULL: anonymous). */
static int simple_bind(LDAP *ld, const char *dn, const char *password)
{
	struct berval cred = {.bv_len = password != NULL ? strlen(password) : 0,
	                      .bv_val = (char *)(password != NULL ? password : "")};

	return ldap_sasl_bind_s(ld, dn != NULL ? dn : "", LDAP_SASL_SIMPLE, &cred, NULL, NULL,
	                        NULL);
}

static int connect_client(struct ldap_client *c, str_t *error)
{
	LDAP *ld;

	if (c->ld != NULL) {
		c->reused = true;
		return 0;
	}
	ld = open_handle(c->cf, error);
	if (ld == NULL)
		return -1;
	if (c->cf->bind) {
		int rc = simple_bind(ld, c->cf->bind_dn, c->cf->bind_pw);

		if (rc != LDAP_SUCCESS) {
			char *what = xasprintf("bind as \"%s\"",
			                       c->cf->bind_dn != NULL ? c->cf->bind_dn : "");

			ldap_error(error, ld, c->cf, what, rc);
			free(what);
			ldap_unbind_ext_s(ld, NULL, NULL);
			return -1;
		}
	}
	c->ld = ld;
	c->reused = false;
	return 0;
}

/* Errors after which a reused connection is worth one more try: the
 * server closed an idle connection. */
static bool connection_lost(int rc)
{
	return rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR;
}

enum ldap_search_status ldap_client_search(struct ldap_client *c, const char *base, int scope,
                                           const char *filter, char **attrs, unsigned size_limit,
                                           void **res_r, str_t *error)
{
	struct timeval tv = {.tv_sec = (time_t)c->cf->timeout, .tv_usec = 0};

	*res_r = NULL;
	for (int attempt = 0; attempt < 2; attempt++) {
		LDAPMessage *res = NULL;
		int rc;

		if (connect_client(c, error) < 0)
			return LDAP_SEARCH_ERROR;
		/* rc: the search's own result code (or the transport's error). */
		rc = ldap_search_ext_s(c->ld, base, scope, filter, attrs, 0, NULL, NULL, &tv,
		                       (int)size_limit, &res);
		if (rc == LDAP_SUCCESS) {
			*res_r = res;
			return LDAP_SEARCH_OK;
		}
		if (res != NULL)
			ldap_msgfree(res);
		if (rc == LDAP_NO_SUCH_OBJECT)
			return LDAP_SEARCH_NO_OBJECT;
		if (attempt == 0 && c->reused && connection_lost(rc)) {
			ldap_client_close(c);
			continue;
		}
		if (rc == LDAP_SIZELIMIT_EXCEEDED) {
			char *what =
			        xasprintf("search under \"%s\" for %s: more than size_limit = %u "
			                  "entries",
			                  base, filter, size_limit);

			str_appendf(error, "%s: %s", c->cf->servers, what);
			free(what);
			return LDAP_SEARCH_SIZE_LIMIT;
		} else {
			char *what = xasprintf("search under \"%s\" for %s", base, filter);

			ldap_error(error, c->ld, c->cf, what, rc);
			free(what);
		}
		ldap_client_close(c);
		return LDAP_SEARCH_ERROR;
	}
	return LDAP_SEARCH_ERROR; /* not reached */
}

int ldap_client_check_password(const struct ldap_cf *cf, const char *dn, const char *password,
                               str_t *error)
{
	LDAP *ld;
	int rc;

	/* RFC 4513 5.1.2: a DN with an empty password is an unauthenticated
	 * bind, which many servers accept: never a valid login. */
	if (password == NULL || password[0] == '\0' || dn == NULL || dn[0] == '\0')
		return 0;
	ld = open_handle(cf, error);
	if (ld == NULL)
		return -1;
	rc = simple_bind(ld, dn, password);
	ldap_unbind_ext_s(ld, NULL, NULL);
	if (rc == LDAP_SUCCESS)
		return 1;
	if (rc == LDAP_INVALID_CREDENTIALS || rc == LDAP_INAPPROPRIATE_AUTH ||
	    rc == LDAP_UNWILLING_TO_PERFORM || rc == LDAP_INVALID_DN_SYNTAX ||
	    rc == LDAP_NO_SUCH_OBJECT)
		return 0;
	{
		char *what = xasprintf("bind as \"%s\"", dn);

		ldap_error(error, NULL, cf, what, rc);
		free(what);
	}
	return -1;
}
