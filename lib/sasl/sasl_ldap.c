/* sasl_ldap.c - smtpd_sasl_type = ldap: PLAIN and LOGIN checked against a
 * directory (OpenLDAP, Active Directory) by binding as the user.
 *
 * smtpd_sasl_path names an ldap_table(5) .cf file (relative names are
 * under config_directory): its service account (bind_dn, bind_pw or
 * bind_pw_file) searches search_base with query_filter, the login
 * expanded into it as %s, %u, %d with RFC 4515 escaping (never a filter
 * pasted from raw input), for exactly one entry; then a new connection
 * binds as that entry's DN with the password given. AD logins work in
 * either style through the filter, e.g.
 *   (&(objectClass=user)(mail=*)
 *     (|(userPrincipalName=%s)(sAMAccountName=%s)(mail=%s))
 *     (!(userAccountControl:1.2.840.113556.1.4.803:=2)))
 * (ldap/ad-auth.cf: sAMAccountName with %s, not %u, so "alice@elsewhere"
 * cannot log in as alice).
 * The authenticated name is the entry's first result_attribute value when
 * the file names one (result_attribute = mail: the mail address, whatever
 * the login style), else the login, lower-cased.
 *
 * Threads: steps run in worker threads; each takes a search connection
 * from a small pool (a libldap handle is used by one thread at a time).
 *
 * On failure: no entry, several entries, a wrong password or a refused
 * bind are SASL_FAIL "authentication failure"; a directory that cannot be
 * reached or fails is SASL_TEMPFAIL "user database unavailable", logged as
 * a warning with the directory's message, never a password. The unknown-
 * user case skips the bind, so its timing differs from a wrong password
 * by one bind round trip on the local network.
 */
#include "sasl/sasl_private.h"

#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "conf/config.h"
#include "table/ldap_cf.h"
#include "table/ldap_client.h"
#include "table/ldap_lookup.h"
#include "table/table.h"

/* Idle search connections kept for the next steps. */
#define POOL_MAX 4

struct ldap_data {
	struct ldap_cf cf;
	pthread_mutex_t lock; /* pool */
	struct ldap_client *pool[POOL_MAX];
	size_t npool;
};

static int ldap_init(struct sasl_server *srv, struct config *cfg, str_t *error)
{
	struct ldap_data *d = xcalloc(1, sizeof(*d));
	struct sasl_mech_list mechs = {0};
	struct table_open_context ctx = {.cfg = cfg};
	const char *dir, *why;
	str_t msg;

	if (config_expand(cfg, "config_directory", &dir, &why) < 0) {
		str_append(error, why);
		free(d);
		return -1;
	}
	ctx.config_dir = dir;
	str_init(&msg);
	if (ldap_cf_open(&d->cf, srv->path, &ctx, &msg) < 0) {
		str_appendf(error, "%s: smtpd_sasl_type = ldap: smtpd_sasl_path: %s",
		            config_where(cfg, "smtpd_sasl_path"), str_c(&msg));
		str_free(&msg);
		ldap_cf_free(&d->cf);
		free(d);
		return -1;
	}
	str_free(&msg);
	pthread_mutex_init(&d->lock, NULL);
	srv->backend_data = d;
	/* Both send the password as it is: noplaintext removes them. */
	for (int tls = 0; tls < 2; tls++) {
		sasl_mech_list_add(&mechs, "PLAIN", SASL_MECH_PLAINTEXT);
		sasl_mech_list_add(&mechs, "LOGIN", SASL_MECH_PLAINTEXT);
		sasl_server_set_mechs(srv, tls, &mechs);
	}
	return 0;
}

static void client_free(struct ldap_client **cp)
{
	if (*cp == NULL)
		return;
	ldap_client_close(*cp);
	free(*cp);
	*cp = NULL;
}

static void ldap_deinit(struct sasl_server *srv)
{
	struct ldap_data *d = srv->backend_data;

	if (d == NULL)
		return;
	for (size_t i = 0; i < d->npool; i++)
		client_free(&d->pool[i]);
	ldap_cf_free(&d->cf);
	pthread_mutex_destroy(&d->lock);
	free(d);
	srv->backend_data = NULL;
}

static struct ldap_client *pool_take(struct ldap_data *d)
{
	struct ldap_client *c = NULL;

	pthread_mutex_lock(&d->lock);
	if (d->npool > 0)
		c = d->pool[--d->npool];
	pthread_mutex_unlock(&d->lock);
	if (c == NULL) {
		c = xcalloc(1, sizeof(*c));
		ldap_client_init(c, &d->cf);
	}
	return c;
}

static void pool_put(struct ldap_data *d, struct ldap_client *c)
{
	pthread_mutex_lock(&d->lock);
	if (d->npool < POOL_MAX) {
		d->pool[d->npool++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&d->lock);
	client_free(&c);
}

static enum sasl_result tempfail(const char *user, const str_t *error, str_t *reason)
{
	log_warning("SASL authentication: directory lookup for %s: %s", user, str_c(error));
	str_append(reason, "user database unavailable");
	return SASL_TEMPFAIL;
}

/* Find the login's entry, then bind as it. */
static enum sasl_result check(struct sasl_session *sess, str_t *user, const char *plain,
                              str_t *reason)
{
	struct ldap_data *d = sess->srv->backend_data;
	struct ldap_client *c;
	enum sasl_result r = SASL_FAIL;
	str_t dn, canonical, why, error;
	int found;

	sasl_login_complete(sess, user);
	str_init(&dn);
	str_init(&canonical);
	str_init(&why);
	str_init(&error);
	/* A login the lookup layer would refuse (over-long, CR/LF) finds
	 * nothing; sasl_plain_decode already bounds it. */
	c = pool_take(d);
	found = ldap_lookup_dn(c, str_c(user), &dn, &canonical, &why, &error);
	pool_put(d, c);
	if (found < 0) {
		r = tempfail(str_c(user), &error, reason);
		goto out;
	}
	if (found > 0) {
		switch (ldap_client_check_password(&d->cf, str_c(&dn), plain, &error)) {
		case 1:
			r = SASL_OK;
			break;
		case 0:
			str_append(&why, "the directory refused the password");
			break;
		default:
			r = tempfail(str_c(user), &error, reason);
			goto out;
		}
	}
	if (r == SASL_OK) {
		str_lower(&canonical);
		sess->username = xstrdup(canonical.len > 0 ? str_c(&canonical) : str_c(user));
	} else {
		log_debug(1, "SASL authentication: %s: %s", str_c(user), str_c(&why));
		sasl_login_failed(sess, str_c(user), reason);
	}
out:
	str_free(&dn);
	str_free(&canonical);
	str_free(&why);
	str_free(&error);
	return r;
}

static enum sasl_result ldap_step(struct sasl_session *sess, const char *mech,
                                  const unsigned char *response, size_t len, str_t *challenge,
                                  str_t *reason)
{
	return sasl_password_step(sess, mech, response, len, challenge, reason, check);
}

const struct sasl_backend sasl_backend_ldap = {
        .name = "ldap",
        .init = ldap_init,
        .deinit = ldap_deinit,
        .refresh = NULL,
        .step = ldap_step,
        .session_free = sasl_password_session_free,
};
