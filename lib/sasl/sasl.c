/* sasl.c - the SASL server interface of sasl.h: the choice of backend,
 * the parameters every backend shares, the mechanisms offered, and the
 * PLAIN and LOGIN decoders of the postern backend.
 *
 * Called by smtpd (sasl_server_create when a listener starts, the rest
 * per AUTH command) and by tests/tools/sasl_probe. sasl_server_create
 * reads smtpd_sasl_type (postern, cyrus or dovecot),
 * smtpd_sasl_service, smtpd_sasl_path, smtpd_sasl_local_domain,
 * smtpd_sasl_security_options, smtpd_sasl_tls_security_options and
 * smtpd_sasl_mechanism_filter, then lets the backend read its own; the
 * config is not kept, so sasl_session_step never touches it (it runs in
 * a worker thread).
 *
 * The mechanisms offered for a TLS state are the backend's, less those
 * the security options exclude (by the mechanism's flags), less those
 * the mechanism filter excludes; sasl_session_step refuses any other
 * (SASL_BAD_MECH) whatever the client tries.
 *
 * On failure: a bad setting is -1 from sasl_server_create with a message
 * naming the parameter; nothing here exits. SECURITY: responses are
 * bounded (SASL_MESSAGE_MAX, SASL_LOGIN_MAX, PASSWORD_MAX) before they
 * are looked at, and buffers that held a password are wiped.
 */
#include "sasl/sasl_private.h"

#include <stdlib.h>
#include <string.h>

#include "auth/password.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/parse.h"
#include "conf/config.h"

/* ---- mechanism lists ------------------------------------------------------ */

void sasl_mech_list_add(struct sasl_mech_list *l, const char *name, unsigned flags)
{
	char *upper = xstrdup(name);

	for (char *p = upper; *p != '\0'; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
	l->v[l->n].name = upper;
	l->v[l->n].flags = flags;
	l->n++;
}

void sasl_mech_list_free(struct sasl_mech_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].name);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

void sasl_server_set_mechs(struct sasl_server *srv, bool tls, struct sasl_mech_list *list)
{
	pthread_mutex_lock(&srv->lock);
	sasl_mech_list_free(&srv->mechs[tls]);
	srv->mechs[tls] = *list;
	pthread_mutex_unlock(&srv->lock);
	list->v = NULL;
	list->n = 0;
}

/* ---- security options and the mechanism filter ---------------------------- */

static const struct {
	const char *word;
	unsigned option;
} security_words[] = {
        {"noanonymous", SASL_OPT_NOANONYMOUS}, {"noplaintext", SASL_OPT_NOPLAINTEXT},
        {"noactive", SASL_OPT_NOACTIVE},       {"nodictionary", SASL_OPT_NODICTIONARY},
        {"mutual_auth", SASL_OPT_MUTUAL_AUTH}, {"forward_secrecy", SASL_OPT_FORWARD_SECRECY},
};

int sasl_security_parse(const char *param, const char *where, const strv_t *words,
                        unsigned *options_r, str_t *error)
{
	unsigned options = 0;

	for (size_t i = 0; i < words->n; i++) {
		size_t k;

		for (k = 0; k < sizeof(security_words) / sizeof(security_words[0]); k++)
			if (ascii_casecmp_eq(words->v[i], security_words[k].word))
				break;
		if (k == sizeof(security_words) / sizeof(security_words[0])) {
			str_appendf(error,
			            "%s: bad value for %s: \"%s\": expected noanonymous, "
			            "noplaintext, noactive, nodictionary, mutual_auth or "
			            "forward_secrecy",
			            where, param, words->v[i]);
			return -1;
		}
		options |= security_words[k].option;
	}
	*options_r = options;
	return 0;
}

bool sasl_security_allows(unsigned options, unsigned flags)
{
	if (flags & SASL_MECH_PREFILTERED)
		return true;
	if ((options & SASL_OPT_NOANONYMOUS) && (flags & SASL_MECH_ANONYMOUS))
		return false;
	if ((options & SASL_OPT_NOPLAINTEXT) && (flags & SASL_MECH_PLAINTEXT))
		return false;
	if ((options & SASL_OPT_NOACTIVE) && (flags & SASL_MECH_ACTIVE))
		return false;
	if ((options & SASL_OPT_NODICTIONARY) && (flags & SASL_MECH_DICTIONARY))
		return false;
	if ((options & SASL_OPT_MUTUAL_AUTH) && !(flags & SASL_MECH_MUTUAL_AUTH))
		return false;
	if ((options & SASL_OPT_FORWARD_SECRECY) && !(flags & SASL_MECH_FORWARD_SECRECY))
		return false;
	return true;
}

void sasl_filter_check(const strv_t *filter)
{
	for (size_t i = 0; i < filter->n; i++) {
		const char *w = filter->v[i] + (filter->v[i][0] == '!');
		const char *colon = strchr(w, ':');

		if (colon != NULL && !(colon - w == 6 && strncmp(w, "static", 6) == 0))
			log_warning("smtpd_sasl_mechanism_filter: \"%s\": only static: tables are "
			            "supported here; taken as static:rest",
			            filter->v[i]);
	}
}

bool sasl_filter_allows(const strv_t *filter, const char *mech)
{
	for (size_t i = 0; i < filter->n; i++) {
		const char *w = filter->v[i];
		bool negate = w[0] == '!';

		if (negate)
			w++;
		/* Why every table matches: Postfix's static:rest answers any
		 * key, and other table types are taken as static:rest (above). */
		if (strchr(w, ':') != NULL || ascii_casecmp_eq(w, mech))
			return !negate;
	}
	return false;
}

/* ---- PLAIN and LOGIN ------------------------------------------------------ */

void sasl_str_wipe(str_t *s)
{
	if (s->buf != NULL)
		explicit_bzero(s->buf, s->cap);
	str_free(s);
}

/* 0 when a login name is usable: 1..SASL_LOGIN_MAX bytes, no control
 * characters (it reaches log lines and queries). */
static int login_check(const unsigned char *p, size_t len, const char *mech, str_t *reason)
{
	if (len == 0) {
		str_appendf(reason, "malformed %s response: empty user name", mech);
		return -1;
	}
	if (len > SASL_LOGIN_MAX) {
		str_appendf(reason, "malformed %s response: user name longer than %d bytes", mech,
		            SASL_LOGIN_MAX);
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		if (p[i] < 0x20 || p[i] == 0x7f) {
			str_appendf(reason, "malformed %s response: control character in user name",
			            mech);
			return -1;
		}
	}
	return 0;
}

enum sasl_result sasl_plain_decode(const unsigned char *data, size_t len, str_t *authcid,
                                   str_t *passwd, str_t *reason)
{
	const unsigned char *end = data + len, *nul1, *nul2;
	size_t zlen, clen, plen;

	nul1 = len > 0 ? memchr(data, '\0', len) : NULL;
	nul2 = nul1 != NULL ? memchr(nul1 + 1, '\0', (size_t)(end - nul1 - 1)) : NULL;
	if (nul2 == NULL) {
		str_append(reason, "malformed PLAIN response: expected authzid NUL authcid NUL "
		                   "password");
		return SASL_BAD_MESSAGE;
	}
	if (memchr(nul2 + 1, '\0', (size_t)(end - nul2 - 1)) != NULL) {
		str_append(reason, "malformed PLAIN response: NUL in password");
		return SASL_BAD_MESSAGE;
	}
	zlen = (size_t)(nul1 - data);
	clen = (size_t)(nul2 - nul1 - 1);
	plen = (size_t)(end - nul2 - 1);
	if (login_check(nul1 + 1, clen, "PLAIN", reason) < 0)
		return SASL_BAD_MESSAGE;
	if (zlen > SASL_LOGIN_MAX) {
		str_appendf(reason,
		            "malformed PLAIN response: authorization identity longer "
		            "than %d bytes",
		            SASL_LOGIN_MAX);
		return SASL_BAD_MESSAGE;
	}
	if (plen > PASSWORD_MAX) {
		str_appendf(reason, "malformed PLAIN response: password longer than %d bytes",
		            PASSWORD_MAX);
		return SASL_BAD_MESSAGE;
	}
	/* Why refuse another authzid: acting for someone else is a proxy
	 * login, and postern has no list of who may act for whom. */
	if (zlen > 0 && (zlen != clen || memcmp(data, nul1 + 1, clen) != 0)) {
		str_append(reason, "authorization failure");
		return SASL_FAIL;
	}
	str_reset(authcid);
	str_append_n(authcid, nul1 + 1, clen);
	sasl_str_wipe(passwd);
	str_init(passwd);
	str_append_n(passwd, nul2 + 1, plen);
	return SASL_OK;
}

void sasl_login_init(struct sasl_login *l)
{
	l->state = 0;
	str_init(&l->user);
	str_init(&l->passwd);
}

void sasl_login_free(struct sasl_login *l)
{
	str_free(&l->user);
	sasl_str_wipe(&l->passwd);
}

enum sasl_result sasl_login_step(struct sasl_login *l, const unsigned char *response, size_t len,
                                 str_t *challenge, str_t *reason)
{
	switch (l->state) {
	case 0:
		if (response == NULL) {
			l->state = 1;
			str_append(challenge, "Username:");
			return SASL_CONTINUE;
		}
		/* An initial response is the user name (as Cyrus takes it). */
		/* fall through */
	case 1:
		if (login_check(response, len, "LOGIN", reason) < 0)
			return SASL_BAD_MESSAGE;
		str_reset(&l->user);
		str_append_n(&l->user, response, len);
		l->state = 2;
		str_append(challenge, "Password:");
		return SASL_CONTINUE;
	case 2:
		if (len > PASSWORD_MAX) {
			str_appendf(reason,
			            "malformed LOGIN response: password longer than %d bytes",
			            PASSWORD_MAX);
			return SASL_BAD_MESSAGE;
		}
		if (memchr(response, '\0', len) != NULL) {
			str_append(reason, "malformed LOGIN response: NUL in password");
			return SASL_BAD_MESSAGE;
		}
		sasl_str_wipe(&l->passwd);
		str_init(&l->passwd);
		str_append_n(&l->passwd, response, len);
		l->state = 3;
		return SASL_OK;
	default:
		str_append(reason, "LOGIN exchange already finished");
		return SASL_BAD_MESSAGE;
	}
}

/* ---- the server ----------------------------------------------------------- */

static const struct sasl_backend *const backends[] = {
        &sasl_backend_postern,
        &sasl_backend_cyrus,
        &sasl_backend_dovecot,
#if HAVE_LDAP
        &sasl_backend_ldap,
#endif
};

/* config_expand_dup of name, "" allowed. */
static int read_str(struct config *cfg, const char *name, char **value_r, str_t *error)
{
	return config_expand_dup(cfg, name, value_r, error);
}

static int read_options(struct config *cfg, const char *param, unsigned *options_r, str_t *error)
{
	const strv_t *words;
	const char *why;

	if (config_get_list(cfg, param, &words, &why) < 0) {
		str_append(error, why);
		return -1;
	}
	return sasl_security_parse(param, config_where(cfg, param), words, options_r, error);
}

int sasl_server_create(struct config *cfg, struct sasl_server **srv_r, str_t *error)
{
	struct sasl_server *srv;
	const strv_t *filter;
	const char *type, *why;

	*srv_r = NULL;
	if (config_expand(cfg, "smtpd_sasl_type", &type, &why) < 0) {
		str_append(error, why);
		return -1;
	}
	srv = xcalloc(1, sizeof(*srv));
	pthread_mutex_init(&srv->lock, NULL);
	str_init(&srv->offered[0]);
	str_init(&srv->offered[1]);
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (strcmp(type, backends[i]->name) == 0)
			srv->backend = backends[i];
	if (srv->backend == NULL) {
		str_appendf(error,
		            "%s: bad value for smtpd_sasl_type: \"%s\": expected postern, cyrus, "
		            "dovecot%s",
		            config_where(cfg, "smtpd_sasl_type"), type,
		            HAVE_LDAP ? " or ldap" : " (ldap: postern was built without LDAP)");
		goto fail;
	}
	if (read_str(cfg, "smtpd_sasl_service", &srv->service, error) < 0 ||
	    read_str(cfg, "smtpd_sasl_path", &srv->path, error) < 0 ||
	    read_str(cfg, "smtpd_sasl_local_domain", &srv->local_domain, error) < 0 ||
	    read_options(cfg, "smtpd_sasl_security_options", &srv->options[0], error) < 0 ||
	    read_options(cfg, "smtpd_sasl_tls_security_options", &srv->options[1], error) < 0)
		goto fail;
	if (config_get_list(cfg, "smtpd_sasl_mechanism_filter", &filter, &why) < 0) {
		str_append(error, why);
		goto fail;
	}
	for (size_t i = 0; i < filter->n; i++)
		strv_add(&srv->filter, filter->v[i]);
	sasl_filter_check(&srv->filter);
	if (srv->backend->init(srv, cfg, error) < 0) {
		srv->backend = NULL; /* nothing to deinit */
		goto fail;
	}
	*srv_r = srv;
	return 0;
fail:
	sasl_server_free(&srv);
	return -1;
}

void sasl_server_free(struct sasl_server **srvp)
{
	struct sasl_server *srv = *srvp;

	if (srv == NULL)
		return;
	*srvp = NULL;
	if (srv->backend != NULL)
		srv->backend->deinit(srv);
	for (int tls = 0; tls < 2; tls++) {
		sasl_mech_list_free(&srv->mechs[tls]);
		str_free(&srv->offered[tls]);
	}
	strv_free(&srv->filter);
	pthread_mutex_destroy(&srv->lock);
	free(srv->service);
	free(srv->path);
	free(srv->local_domain);
	free(srv);
}

/* Whether m is offered with tls; the caller holds srv->lock. */
static bool offered_locked(struct sasl_server *srv, const struct sasl_mech *m, bool tls)
{
	return sasl_security_allows(srv->options[tls], m->flags) &&
	       sasl_filter_allows(&srv->filter, m->name);
}

const char *sasl_server_mechanisms(struct sasl_server *srv, bool tls)
{
	str_t *out = &srv->offered[tls];

	str_reset(out);
	pthread_mutex_lock(&srv->lock);
	for (size_t i = 0; i < srv->mechs[tls].n; i++) {
		if (!offered_locked(srv, &srv->mechs[tls].v[i], tls))
			continue;
		if (out->len > 0)
			str_append_c(out, ' ');
		str_append(out, srv->mechs[tls].v[i].name);
	}
	pthread_mutex_unlock(&srv->lock);
	return str_c(out);
}

void sasl_server_refresh(struct sasl_server *srv)
{
	if (srv->backend->refresh != NULL)
		srv->backend->refresh(srv);
}

/* ---- sessions ------------------------------------------------------------- */

struct sasl_session *sasl_session_new(struct sasl_server *srv, const struct sasl_peer *peer)
{
	struct sasl_session *sess = xcalloc(1, sizeof(*sess));

	sess->srv = srv;
	sess->peer = *peer;
	sess->peer.client_addr = xstrdup(peer->client_addr != NULL ? peer->client_addr : "");
	sess->peer.server_addr = xstrdup(peer->server_addr != NULL ? peer->server_addr : "");
	return sess;
}

void sasl_session_free(struct sasl_session **sp)
{
	struct sasl_session *sess = *sp;

	if (sess == NULL)
		return;
	*sp = NULL;
	sess->srv->backend->session_free(sess);
	free((char *)sess->peer.client_addr);
	free((char *)sess->peer.server_addr);
	free(sess->mech);
	free(sess->username);
	free(sess->tried);
	free(sess);
}

/* The offered mechanism named mech (any case) for tls, upper case in a
 * copy the caller frees; NULL when it is not offered. */
static char *offered_mech(struct sasl_server *srv, const char *mech, bool tls)
{
	char *found = NULL;

	pthread_mutex_lock(&srv->lock);
	for (size_t i = 0; i < srv->mechs[tls].n && found == NULL; i++) {
		const struct sasl_mech *m = &srv->mechs[tls].v[i];

		if (ascii_casecmp_eq(m->name, mech) && offered_locked(srv, m, tls))
			found = xstrdup(m->name);
	}
	pthread_mutex_unlock(&srv->lock);
	return found;
}

enum sasl_result sasl_session_step(struct sasl_session *sess, const char *mech,
                                   const unsigned char *response, size_t response_len,
                                   str_t *challenge, str_t *reason)
{
	bool first = !sess->started;
	enum sasl_result r;

	if (sess->finished) {
		str_append(reason, "authentication exchange already finished");
		return SASL_BAD_MESSAGE;
	}
	if (first) {
		if (mech == NULL ||
		    (sess->mech = offered_mech(sess->srv, mech, sess->peer.tls)) == NULL) {
			str_append(reason, "unsupported authentication mechanism");
			return SASL_BAD_MECH;
		}
		sess->started = true;
	} else if (response == NULL) {
		/* Only the initial response may be absent. */
		response = (const unsigned char *)"";
		response_len = 0;
	}
	if (response != NULL && response_len > SASL_MESSAGE_MAX) {
		sess->finished = true;
		str_appendf(reason, "response longer than %d bytes", SASL_MESSAGE_MAX);
		return SASL_BAD_MESSAGE;
	}
	r = sess->srv->backend->step(sess, first ? sess->mech : NULL, response, response_len,
	                             challenge, reason);
	if (r == SASL_CONTINUE && challenge->len > SASL_MESSAGE_MAX) {
		str_reset(challenge);
		str_appendf(reason, "server challenge longer than %d bytes", SASL_MESSAGE_MAX);
		r = SASL_TEMPFAIL;
	}
	if (r == SASL_OK && sess->username == NULL) {
		/* A backend that authenticated nobody: never let that pass. */
		str_append(reason, "no user name after authentication");
		r = SASL_TEMPFAIL;
	}
	if (r != SASL_CONTINUE)
		sess->finished = true;
	return r;
}

const char *sasl_session_username(const struct sasl_session *sess)
{
	return sess->username;
}

const char *sasl_session_login(const struct sasl_session *sess)
{
	return sess->username != NULL ? sess->username : sess->tried;
}

const char *sasl_session_mechanism(const struct sasl_session *sess)
{
	return sess->mech;
}

/* ---- PLAIN and LOGIN with a password check ------------------------------- */

struct password_session {
	bool login; /* LOGIN, else PLAIN */
	struct sasl_login lg;
};

enum sasl_result sasl_password_step(struct sasl_session *sess, const char *mech,
                                    const unsigned char *response, size_t len, str_t *challenge,
                                    str_t *reason, sasl_password_check_fn check)
{
	struct password_session *ps = sess->backend_data;
	enum sasl_result r;
	str_t user, passwd;

	if (ps == NULL) {
		ps = sess->backend_data = xcalloc(1, sizeof(*ps));
		sasl_login_init(&ps->lg);
	}
	if (mech != NULL)
		ps->login = strcmp(mech, "LOGIN") == 0;
	if (ps->login) {
		r = sasl_login_step(&ps->lg, response, len, challenge, reason);
		if (r != SASL_OK)
			return r;
		r = check(sess, &ps->lg.user, str_c(&ps->lg.passwd), reason);
		sasl_str_wipe(&ps->lg.passwd);
		return r;
	}
	if (response == NULL) {
		/* PLAIN without an initial response: an empty challenge asks
		 * for it (RFC 4954 section 4). */
		return SASL_CONTINUE;
	}
	str_init(&user);
	str_init(&passwd);
	r = sasl_plain_decode(response, len, &user, &passwd, reason);
	if (r == SASL_OK)
		r = check(sess, &user, str_c(&passwd), reason);
	str_free(&user);
	sasl_str_wipe(&passwd);
	return r;
}

void sasl_login_complete(struct sasl_session *sess, str_t *user)
{
	str_lower(user);
	if (strchr(str_c(user), '@') == NULL && sess->srv->local_domain[0] != '\0') {
		str_append_c(user, '@');
		str_append(user, sess->srv->local_domain);
	}
}

void sasl_login_failed(struct sasl_session *sess, const char *login, str_t *reason)
{
	free(sess->tried);
	sess->tried = xstrdup(login);
	str_append(reason, "authentication failure");
}

void sasl_password_session_free(struct sasl_session *sess)
{
	struct password_session *ps = sess->backend_data;

	if (ps == NULL)
		return;
	sasl_login_free(&ps->lg);
	free(ps);
	sess->backend_data = NULL;
}
