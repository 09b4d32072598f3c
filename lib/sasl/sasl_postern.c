/* sasl_postern.c - smtpd_sasl_type = postern: PLAIN and LOGIN checked
 * against the password hashes of postern's own database.
 *
 * The login is the mailbox address (lower-cased here, as the schema
 * stores it; "@" smtpd_sasl_local_domain appended to a name without
 * one). One fixed, parameterised query reads the mailbox's hash, only
 * while the mailbox and its domain are active and the domain is not a
 * backup MX: the rows mail is delivered to (db:mailboxes) and that
 * Dovecot's recipe (conf/dovecot) lets log in. password_verify checks it
 * (Dovecot's schemes, password_allow_plaintext).
 *
 * Threads: the settings are read at sasl_server_create (event thread);
 * steps run in worker threads and take a connection from a small pool
 * (a connection is used by one thread at a time, sql.h), connecting on
 * first use, through database_readonly (DB_ACCESS_READ: SELECT only).
 *
 * On failure: unknown user, inactive mailbox or domain, wrong password
 * or an unusable stored hash are all SASL_FAIL "authentication failure",
 * after the same work (a user not found is verified against a dummy hash
 * of password_scheme, so the time does not tell whether the user
 * exists). Any database error (server down, missing SQLite file, no
 * schema) is SASL_TEMPFAIL "user database unavailable", logged as a
 * warning with the server's message, never a password. Password buffers
 * are wiped after each check.
 */
#include "sasl/sasl_private.h"

#include <stdlib.h>
#include <string.h>

#include "auth/password.h"
#include "base/log.h"
#include "base/mem.h"
#include "conf/config.h"
#include "db/db.h"
#include "sql/sql.h"

/* Idle connections kept for the next steps; more workers than this
 * still run at once, their extra connections are closed after use. */
#define POOL_MAX 4

/* The hash of a login's mailbox ('1' quoted: INTEGER, TINYINT and BOOLEAN
 * alike, as in table_db.c). */
static const char q_password[] =
        "SELECT m.password FROM mailboxes m JOIN domains d ON d.id = m.domain_id "
        "WHERE m.address = ? AND m.active = '1' AND d.active = '1' AND d.backup_mx = '0'";

struct postern_data {
	struct sql_settings set;
	struct password_config pc;
	pthread_mutex_t lock; /* pool, dummy_hash */
	struct sql_conn *pool[POOL_MAX];
	size_t npool;
	char *dummy_hash; /* made at the first unknown user */
};

static int postern_init(struct sasl_server *srv, struct config *cfg, str_t *error)
{
	struct postern_data *d = xcalloc(1, sizeof(*d));
	struct sasl_mech_list mechs = {0};

	if (password_config_get(cfg, &d->pc, error) < 0 ||
	    db_settings(cfg, DB_ACCESS_READ, &d->set, error) < 0) {
		free(d);
		return -1;
	}
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

static void postern_deinit(struct sasl_server *srv)
{
	struct postern_data *d = srv->backend_data;

	if (d == NULL)
		return;
	for (size_t i = 0; i < d->npool; i++)
		sql_conn_destroy(&d->pool[i]);
	sql_settings_free(&d->set);
	pthread_mutex_destroy(&d->lock);
	free(d->dummy_hash);
	free(d);
	srv->backend_data = NULL;
}

static struct sql_conn *pool_take(struct postern_data *d)
{
	struct sql_conn *c = NULL;

	pthread_mutex_lock(&d->lock);
	if (d->npool > 0)
		c = d->pool[--d->npool];
	pthread_mutex_unlock(&d->lock);
	return c != NULL ? c : sql_conn_new(&d->set);
}

/* Give c back; broken: close it instead (the next step starts afresh). */
static void pool_put(struct postern_data *d, struct sql_conn *c, bool broken)
{
	if (!broken) {
		pthread_mutex_lock(&d->lock);
		if (d->npool < POOL_MAX) {
			d->pool[d->npool++] = c;
			c = NULL;
		}
		pthread_mutex_unlock(&d->lock);
	}
	sql_conn_destroy(&c);
}

/* Verify plain against a hash of password_scheme, for the time it takes
 * (made once, under the lock; the result is thrown away). */
static void dummy_verify(struct postern_data *d, const char *plain)
{
	const char *hash;

	pthread_mutex_lock(&d->lock);
	if (d->dummy_hash == NULL) {
		str_t h, why;

		str_init(&h);
		str_init(&why);
		if (password_hash(d->pc.scheme, "postern-sasl-no-such-user", &h, &why) == 0)
			d->dummy_hash = str_steal(&h);
		else
			log_warning("SASL authentication: cannot make the dummy hash: %s",
			            str_c(&why));
		str_free(&h);
		str_free(&why);
	}
	hash = d->dummy_hash;
	pthread_mutex_unlock(&d->lock);
	if (hash != NULL)
		(void)password_verify(plain, hash, false, NULL);
}

/* The lookup and the check of one login (user is lower-cased and
 * completed in place). */
static enum sasl_result check(struct sasl_session *sess, str_t *user, const char *plain,
                              str_t *reason)
{
	struct postern_data *d = sess->srv->backend_data;
	struct sql_result res = {0};
	struct sql_conn *c;
	enum sql_status st;
	enum sasl_result r = SASL_FAIL;
	str_t why;

	sasl_login_complete(sess, user);
	str_init(&why);
	c = pool_take(d);
	/* Why check the file each time: SQLite would create a missing file,
	 * and an open connection keeps reading a file that was removed. */
	if (db_sqlite_check(&d->set, &why) < 0) {
		st = SQL_TEMPFAIL;
	} else {
		const char *params[1] = {str_c(user)};

		st = sql_query(c, q_password, params, 1, 1, &res, &why);
	}
	pool_put(d, c, st != SQL_OK);
	if (st != SQL_OK) {
		log_warning("SASL authentication: password lookup for %s: %s", str_c(user),
		            str_c(&why));
		str_append(reason, "user database unavailable");
		str_free(&why);
		return SASL_TEMPFAIL;
	}
	str_free(&why);
	if (res.nrows == 1 && res.ncols >= 1 && sql_cell(&res, 0, 0) != NULL) {
		char *stored = res.cells[0];

		if (password_verify(plain, stored, d->pc.allow_plaintext, str_c(user)) ==
		    PASSWORD_MATCH)
			r = SASL_OK;
		explicit_bzero(stored, strlen(stored));
	} else {
		dummy_verify(d, plain);
	}
	sql_result_free(&res);
	if (r == SASL_OK) {
		sess->username = xstrdup(str_c(user));
	} else {
		sasl_login_failed(sess, str_c(user), reason);
	}
	return r;
}

static enum sasl_result postern_step(struct sasl_session *sess, const char *mech,
                                     const unsigned char *response, size_t len, str_t *challenge,
                                     str_t *reason)
{
	return sasl_password_step(sess, mech, response, len, challenge, reason, check);
}

const struct sasl_backend sasl_backend_postern = {
        .name = "postern",
        .init = postern_init,
        .deinit = postern_deinit,
        .refresh = NULL,
        .step = postern_step,
        .session_free = sasl_password_session_free,
};
