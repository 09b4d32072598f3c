/* sasl_cyrus.c - smtpd_sasl_type = cyrus: the Cyrus SASL library
 * (libsasl2), used as Postfix uses it, so that an smtpd.conf written for
 * Postfix (pwcheck_method, auxprop_plugin, mech_list, sasldb_path;
 * saslauthd) works unchanged.
 *
 * The library is initialised once per process (sasl_server_init, with
 * smtpd_sasl_path as the application name: it reads NAME.conf) by the
 * first server created; later servers share it, so the first one's
 * smtpd_sasl_path and configuration path hold for the process. Where
 * NAME.conf is searched (the SASL_CB_GETCONFPATH callback):
 * cyrus_sasl_config_path when set, else "$config_directory/sasl" followed
 * by the usual Cyrus places "/etc/sasl2:/etc/sasl:/usr/lib/sasl2" (Debian
 * builds libsasl2 with those and the multiarch plugin directory; a
 * callback replaces the built-in list, so it is written out here).
 *
 * The mechanisms are Cyrus's (sasl_listmech on a throw-away connection
 * made at sasl_server_create, once with the plain and once with the TLS
 * security options, so Cyrus applies them itself), then the
 * mechanism filter (sasl.c). A session's connection is made at its first
 * step with smtpd_sasl_service, no server name (Cyrus finds it), the
 * realm smtpd_sasl_local_domain (or none) and the client and server
 * addresses; max_ssf is 0: no SASL security layers (TLS does that).
 *
 * Threads: Cyrus and its plugins (sasldb above all) are not known to be
 * thread safe, so every call into libsasl2 holds one global mutex; steps
 * of different sessions wait for each other there.
 *
 * On failure: results and reason texts follow Postfix 3.7
 * (xsasl_cyrus_server.c): the reason is sasl_errstring's text, with
 * SASL_NOUSER reported as SASL_BADAUTH ("authentication failure", so a
 * client cannot tell unknown users); SASL_TRYAGAIN and SASL_UNAVAIL are
 * SASL_TEMPFAIL (Postfix says 535 for those too; 454 is the honest
 * answer to a saslauthd that is down), the rest SASL_FAIL. Cyrus's own
 * log messages go to the log (SASL_CB_LOG, as Postfix words them); the
 * password trace level (SASL_LOG_PASS) is never logged.
 */
#include "sasl/sasl_private.h"

/* Cyrus's header defines SASL_OK, SASL_CONTINUE and SASL_FAIL as macros
 * of its own codes (sasl.h says so): keep ours under other names first.
 * Build note: this file is compiled with -iquote for postern's headers
 * (Makefile.in), so that <sasl/sasl.h> below is Cyrus's, not lib/sasl's
 * (built wrong, sasl_conn_t is an unknown type and nothing compiles). */
static const enum sasl_result R_OK = SASL_OK;
static const enum sasl_result R_CONTINUE = SASL_CONTINUE;
static const enum sasl_result R_FAIL = SASL_FAIL;
static const enum sasl_result R_TEMPFAIL = SASL_TEMPFAIL;

#include <sasl/sasl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "conf/config.h"

/* The usual places of NAME.conf after $config_directory/sasl. */
#define CYRUS_CONF_PATH_TAIL "/etc/sasl2:/etc/sasl:/usr/lib/sasl2"

static pthread_mutex_t cyrus_lock = PTHREAD_MUTEX_INITIALIZER;
static bool cyrus_initialised;
static char *cyrus_conf_path; /* for the callback; set once, kept */
/* The application name given to sasl_server_init: libsasl2 keeps the
 * pointer (and reads it at every sasl_server_new), so it must outlive
 * every sasl_server of the process, not just the first one. */
static char *cyrus_app_name;

struct cyrus_session {
	sasl_conn_t *conn;
};

/* SASL_CB_LOG: Cyrus's messages, worded as Postfix logs them. */
static int cyrus_log(void *context, int level, const char *message)
{
	(void)context;
	switch (level) {
	case SASL_LOG_ERR:
	case SASL_LOG_FAIL:
		log_warning("SASL authentication failure: %s", message);
		break;
	case SASL_LOG_WARN:
		log_warning("SASL authentication problem: %s", message);
		break;
	case SASL_LOG_NOTE:
		log_info("SASL authentication info: %s", message);
		break;
	case SASL_LOG_PASS:
		/* Why never: this level carries passwords. */
		break;
	default:
		log_debug(1, "SASL authentication info: %s", message);
		break;
	}
	return SASL_OK;
}

static int cyrus_getconfpath(void *context, const char **path)
{
	(void)context;
	*path = cyrus_conf_path;
	return SASL_OK;
}

/* Why the double cast: sasl_callback_t holds every callback as
 * int (*)(void); going through void (*)(void) says the change of type is
 * meant (-Wcast-function-type). */
#define CYRUS_CB(fn) ((int (*)(void))(void (*)(void))(fn))

static const sasl_callback_t cyrus_callbacks[] = {
        {SASL_CB_LOG, CYRUS_CB(cyrus_log), NULL},
        {SASL_CB_GETCONFPATH, CYRUS_CB(cyrus_getconfpath), NULL},
        {SASL_CB_LIST_END, NULL, NULL},
};

/* The text Postfix gives for a Cyrus result (SASL_NOUSER hidden). */
static const char *cyrus_reason(int status)
{
	if (status == SASL_NOUSER)
		status = SASL_BADAUTH;
	return sasl_errstring(status, NULL, NULL);
}

static unsigned cyrus_security_flags(unsigned options)
{
	unsigned flags = 0;

	if (options & SASL_OPT_NOANONYMOUS)
		flags |= SASL_SEC_NOANONYMOUS;
	if (options & SASL_OPT_NOPLAINTEXT)
		flags |= SASL_SEC_NOPLAINTEXT;
	if (options & SASL_OPT_NOACTIVE)
		flags |= SASL_SEC_NOACTIVE;
	if (options & SASL_OPT_NODICTIONARY)
		flags |= SASL_SEC_NODICTIONARY;
	if (options & SASL_OPT_FORWARD_SECRECY)
		flags |= SASL_SEC_FORWARD_SECRECY;
	if (options & SASL_OPT_MUTUAL_AUTH)
		flags |= SASL_SEC_MUTUAL_AUTH;
	return flags;
}

/* A Cyrus connection for srv with the options of tls and the addresses
 * of peer (may be NULL). Caller holds cyrus_lock. */
static int cyrus_conn_new(struct sasl_server *srv, bool tls, const struct sasl_peer *peer,
                          sasl_conn_t **conn_r, str_t *error)
{
	sasl_security_properties_t props = {0};
	char *local = NULL, *remote = NULL;
	int status;

	if (peer != NULL && peer->server_addr[0] != '\0')
		local = xasprintf("%s;%u", peer->server_addr, peer->server_port);
	if (peer != NULL && peer->client_addr[0] != '\0')
		remote = xasprintf("%s;%u", peer->client_addr, peer->client_port);
	status = sasl_server_new(srv->service, NULL,
	                         srv->local_domain[0] != '\0' ? srv->local_domain : NULL, local,
	                         remote, NULL, 0, conn_r);
	free(local);
	free(remote);
	if (status != SASL_OK) {
		str_appendf(error, "Cyrus SASL: cannot make a connection: %s",
		            sasl_errstring(status, NULL, NULL));
		*conn_r = NULL;
		return -1;
	}
	props.min_ssf = 0;
	props.max_ssf = 0; /* no security layers */
	props.maxbufsize = 0;
	props.security_flags = cyrus_security_flags(srv->options[tls]);
	status = sasl_setprop(*conn_r, SASL_SEC_PROPS, &props);
	if (status != SASL_OK) {
		str_appendf(error, "Cyrus SASL: cannot set the security properties: %s",
		            sasl_errstring(status, NULL, NULL));
		sasl_dispose(conn_r);
		return -1;
	}
	return 0;
}

/* The mechanisms Cyrus offers with the options of tls. Caller holds
 * cyrus_lock. */
static int cyrus_listmech(struct sasl_server *srv, bool tls, str_t *error)
{
	struct sasl_mech_list mechs = {0};
	sasl_conn_t *conn;
	const char *list;
	unsigned len;
	int count, status;

	if (cyrus_conn_new(srv, tls, NULL, &conn, error) < 0)
		return -1;
	status = sasl_listmech(conn, NULL, "", " ", "", &list, &len, &count);
	if (status == SASL_OK) {
		const char *p = list, *end = list + len;

		while (p < end) {
			const char *sp = memchr(p, ' ', (size_t)(end - p));
			size_t n = sp != NULL ? (size_t)(sp - p) : (size_t)(end - p);

			if (n > 0) {
				char *name = xstrndup(p, n);

				sasl_mech_list_add(&mechs, name, SASL_MECH_PREFILTERED);
				free(name);
			}
			p += n + 1;
		}
	} else if (status != SASL_NOMECH) {
		str_appendf(error, "Cyrus SASL: cannot list the mechanisms: %s",
		            sasl_errstring(status, NULL, NULL));
		sasl_dispose(&conn);
		return -1;
	}
	if (mechs.n == 0)
		log_warning("Cyrus SASL offers no mechanism%s (see %s.conf in %s)",
		            tls ? " with TLS" : "", srv->path, cyrus_conf_path);
	sasl_dispose(&conn);
	sasl_server_set_mechs(srv, tls, &mechs);
	return 0;
}

static int cyrus_init(struct sasl_server *srv, struct config *cfg, str_t *error)
{
	int status, ret = -1;

	pthread_mutex_lock(&cyrus_lock);
	if (!cyrus_initialised) {
		const char *path, *dir, *why;

		if (config_expand(cfg, "cyrus_sasl_config_path", &path, &why) < 0 ||
		    config_expand(cfg, "config_directory", &dir, &why) < 0) {
			str_append(error, why);
			goto out;
		}
		free(cyrus_conf_path);
		cyrus_conf_path = path[0] != '\0'
		                          ? xstrdup(path)
		                          : xasprintf("%s/sasl:%s", dir, CYRUS_CONF_PATH_TAIL);
		free(cyrus_app_name);
		cyrus_app_name = xstrdup(srv->path);
		status = sasl_server_init(cyrus_callbacks, cyrus_app_name);
		if (status != SASL_OK) {
			str_appendf(error,
			            "Cyrus SASL initialisation failed for %s (smtpd_sasl_path): %s",
			            srv->path, sasl_errstring(status, NULL, NULL));
			goto out;
		}
		cyrus_initialised = true;
	}
	if (cyrus_listmech(srv, false, error) < 0 || cyrus_listmech(srv, true, error) < 0)
		goto out;
	ret = 0;
out:
	pthread_mutex_unlock(&cyrus_lock);
	return ret;
}

static void cyrus_deinit(struct sasl_server *srv)
{
	/* Why not sasl_server_done: other servers of the process may still
	 * use the library, and Cyrus cannot be initialised twice safely. */
	(void)srv;
}

static enum sasl_result cyrus_step(struct sasl_session *sess, const char *mech,
                                   const unsigned char *response, size_t len, str_t *challenge,
                                   str_t *reason)
{
	struct cyrus_session *cs = sess->backend_data;
	const char *out = NULL;
	unsigned outlen = 0;
	int status;
	enum sasl_result r;

	pthread_mutex_lock(&cyrus_lock);
	if (cs == NULL) {
		str_t why;

		cs = sess->backend_data = xcalloc(1, sizeof(*cs));
		str_init(&why);
		if (cyrus_conn_new(sess->srv, sess->peer.tls, &sess->peer, &cs->conn, &why) < 0) {
			pthread_mutex_unlock(&cyrus_lock);
			log_warning("SASL authentication: %s", str_c(&why));
			str_append(reason, str_c(&why));
			str_free(&why);
			return R_TEMPFAIL;
		}
		str_free(&why);
	}
	if (cs->conn == NULL) {
		pthread_mutex_unlock(&cyrus_lock);
		str_append(reason, "Cyrus SASL connection unavailable");
		return R_TEMPFAIL;
	}
	if (mech != NULL)
		status = sasl_server_start(cs->conn, mech, (const char *)response, (unsigned)len,
		                           &out, &outlen);
	else
		status = sasl_server_step(cs->conn, (const char *)response, (unsigned)len, &out,
		                          &outlen);
	switch (status) {
	case SASL_OK: {
		const void *user = NULL;

		if (sasl_getprop(cs->conn, SASL_USERNAME, &user) == SASL_OK && user != NULL) {
			sess->username = xstrdup(user);
			r = R_OK;
		} else {
			str_append(reason, "Cyrus SASL gave no user name");
			r = R_TEMPFAIL;
		}
		break;
	}
	case SASL_CONTINUE:
		if (out != NULL && outlen > 0)
			str_append_n(challenge, out, outlen);
		r = R_CONTINUE;
		break;
	case SASL_TRYAGAIN:
	case SASL_UNAVAIL:
		str_append(reason, cyrus_reason(status));
		r = R_TEMPFAIL;
		break;
	default: {
		const void *user = NULL;

		/* Cyrus knows the name it looked up, for the failure line. */
		if (sasl_getprop(cs->conn, SASL_USERNAME, &user) == SASL_OK && user != NULL) {
			free(sess->tried);
			sess->tried = xstrdup(user);
		}
		str_append(reason, cyrus_reason(status));
		r = R_FAIL;
		break;
	}
	}
	pthread_mutex_unlock(&cyrus_lock);
	return r;
}

static void cyrus_session_free(struct sasl_session *sess)
{
	struct cyrus_session *cs = sess->backend_data;

	if (cs == NULL)
		return;
	if (cs->conn != NULL) {
		pthread_mutex_lock(&cyrus_lock);
		sasl_dispose(&cs->conn);
		pthread_mutex_unlock(&cyrus_lock);
	}
	free(cs);
	sess->backend_data = NULL;
}

const struct sasl_backend sasl_backend_cyrus = {
        .name = "cyrus",
        .init = cyrus_init,
        .deinit = cyrus_deinit,
        .refresh = NULL,
        .step = cyrus_step,
        .session_free = cyrus_session_free,
};
