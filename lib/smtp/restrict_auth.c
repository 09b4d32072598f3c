/* restrict_auth.c - restrictions on who the client proved to be: the
 * SASL login against the sender address (reject_sender_login_mismatch,
 * reject_authenticated_sender_login_mismatch,
 * reject_unauthenticated_sender_login_mismatch,
 * reject_known_sender_login_mismatch, with smtpd_sender_login_maps) and
 * the TLS client certificate (permit_tls_clientcerts with
 * relay_clientcerts, permit_tls_all_clientcerts). check_ccert_access is
 * an access(5) table and lives in restrict_access.c.
 *
 * Used by restrict.c only (restrict_int.h). Lookups go through
 * ev_lookup(), so they are asynchronous.
 *
 * Failure: a login restriction without a usable smtpd_sender_login_maps
 * is an error when the engine is built, naming the parameter. A lookup
 * that fails at run time gives "451 4.3.0 <sender>: Temporary lookup
 * failure" (Postfix reject_dict_retry()): a sender is never called "not
 * owned" because the table could not answer.
 *
 * SECURITY: the sender address is the client's choice; it is only used
 * as a lookup key (resolved first, as Postfix does, so that routing
 * forms such as user%domain@ourhost look up the address they deliver
 * to) and quoted in the reply. The SASL login and the certificate
 * fingerprints come from smtpd's own AUTH and TLS code, never from the
 * MAIL command: the AUTH= parameter (req->sasl_sender) plays no part,
 * as in Postfix.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/mem.h"
#include "base/str.h"
#include "conf/config.h"
#include "smtp/restrict_int.h"
#include "table/table.h"

#define LOGIN_MAPS "smtpd_sender_login_maps"

/* ---- Setup ---- */

static int list_load(struct config *cfg, const char *param, strv_t *out, str_t *error)
{
	const strv_t *items;
	const char *why;

	if (config_get_list(cfg, param, &items, &why) < 0) {
		str_append(error, why);
		return -1;
	}
	for (size_t i = 0; i < items->n; i++)
		strv_add(out, items->v[i]);
	return 0;
}

/* Every element "type:name" with a table type this build knows. */
static const char *bad_table(const strv_t *specs)
{
	for (size_t i = 0; i < specs->n; i++) {
		const char *spec = specs->v[i];
		const char *colon;
		char *type;
		bool known;

		if (strncmp(spec, "proxy:", 6) == 0)
			spec += 6;
		colon = strchr(spec, ':');
		if (colon == NULL || colon == spec)
			return specs->v[i];
		type = xstrndup(spec, (size_t)(colon - spec));
		known = table_backend_find(type) != NULL;
		free(type);
		if (!known)
			return specs->v[i];
	}
	return NULL;
}

int restrict_auth_setup(struct restrict_engine *e, const char *login_user, str_t *error)
{
	const char *why, *bad;
	bool b;

	if (list_load(e->cfg, LOGIN_MAPS, &e->sender_login_maps, error) < 0 ||
	    list_load(e->cfg, "relay_clientcerts", &e->relay_ccerts, error) < 0)
		return -1;
	if (config_get_bool(e->cfg, "smtpd_sasl_auth_enable", &b, &why) < 0) {
		str_append(error, why);
		return -1;
	}
	e->sasl_enable = b;
	if (config_get_bool(e->cfg, "smtpd_tls_ask_ccert", &b, &why) < 0) {
		str_append(error, why);
		return -1;
	}
	e->tls_ask_ccert = b;
	if (login_user == NULL)
		return 0;
	/* Why an error and not Postfix's silence: with an empty map Postfix
	 * skips these restrictions, so a typo in main.cf quietly lets any
	 * login send as anyone. */
	if (e->sender_login_maps.n == 0) {
		str_appendf(error,
		            "%s: is empty, but %s uses a sender login restriction "
		            "(default: db:sender_login)",
		            LOGIN_MAPS, login_user);
		return -1;
	}
	if ((bad = bad_table(&e->sender_login_maps)) != NULL) {
		str_appendf(error, "%s: \"%s\" is not a type:table of a known table type",
		            LOGIN_MAPS, bad);
		return -1;
	}
	return 0;
}

void restrict_auth_free(struct restrict_engine *e)
{
	strv_free(&e->sender_login_maps);
	strv_free(&e->relay_ccerts);
}

/* ---- Sender login ---- */

static const char *rkind_name(enum rkind kind)
{
	switch (kind) {
	case RK_REJECT_AUTH_SENDER_LOGIN_MISMATCH:
		return "reject_authenticated_sender_login_mismatch";
	case RK_REJECT_UNAUTH_SENDER_LOGIN_MISMATCH:
		return "reject_unauthenticated_sender_login_mismatch";
	case RK_REJECT_KNOWN_SENDER_LOGIN_MISMATCH:
		return "reject_known_sender_login_mismatch";
	default:
		return "reject_sender_login_mismatch";
	}
}

/* Does the list of owners (commas and white space) name login? Postfix
 * compares with strcasecmp_utf8(); logins are ASCII in practice (SASL
 * names of postern's database are mailbox addresses). */
static bool owners_include(const char *owners, const char *login)
{
	static const char seps[] = ", \t\r\n";
	const char *p = owners;

	for (;;) {
		size_t n;

		p += strspn(p, seps);
		if (*p == '\0')
			return false;
		n = strcspn(p, seps);
		if (n == strlen(login) && strncasecmp(p, login, n) == 0)
			return true;
		p += n;
	}
}

/* The owners of the sender: 1 found (*owners_r, owned by the memo),
 * 0 not found, R_TEMPFAIL, R_PENDING. */
static int sender_owners(struct eval *ev, const char *sender, const char **owners_r)
{
	char *key;
	bool local;
	int rc = restrict_resolve_key(ev, sender, &key, &local);

	if (rc != 0)
		return rc;
	rc = restrict_maps_find_addr(ev, &ev->e->sender_login_maps, key, local, owners_r);
	free(key);
	return rc;
}

enum rr restrict_sender_login(struct eval *ev, enum rkind kind)
{
	const struct restrict_request *q = ev->req;
	const char *sender = q->sender;
	const char *login = q->sasl_username;
	const char *owners = NULL;
	bool authed = login != NULL;
	bool allow_unknown = kind == RK_REJECT_KNOWN_SENDER_LOGIN_MISMATCH;
	int rc;

	/* Postfix: the null sender is never checked, nor a list evaluated
	 * before MAIL (smtpd_client_restrictions without delay). */
	if (sender == NULL || sender[0] == '\0')
		return RR_DUNNO;
	if (!ev->e->sasl_enable) {
		/* Postfix: without SASL nobody can log in, so the "not logged
		 * in" half would refuse every owned sender: it is skipped with
		 * this warning (port 25 in a main.cf whose submission service
		 * turns SASL on in master.cf). */
		str_t w;

		str_init(&w);
		str_appendf(&w, "restriction `%s' ignored: no SASL support", rkind_name(kind));
		ev_log_whatsup(ev, "warning", str_c(&w));
		str_free(&w);
		return RR_DUNNO;
	}
	if (ev->e->sender_login_maps.n == 0) {
		/* Only from an access table's result (the lists were checked
		 * when the engine was built): never a silent permit. */
		ev_log_whatsup(ev, "warning",
		               LOGIN_MAPS " is empty: sender login check impossible");
		str_set(&ev->reply, "451 4.3.5 Server configuration error");
		ev->verdict = RESTRICT_DEFER;
		ev->decided = true;
		return RR_STOP;
	}
	if (authed && kind == RK_REJECT_UNAUTH_SENDER_LOGIN_MISMATCH)
		return RR_DUNNO;
	if (!authed && kind == RK_REJECT_AUTH_SENDER_LOGIN_MISMATCH)
		return RR_DUNNO;

	rc = sender_owners(ev, sender, &owners);
	if (rc == R_PENDING)
		return RR_STOP;
	if (rc == R_TEMPFAIL)
		return ev_tempfail(ev, sender,
		                   ev->tempfail_why != NULL ? ev->tempfail_why : "lookup failed");
	if (authed) {
		/* Postfix reject_auth_sender_login_mismatch(). */
		if (rc == 0 && allow_unknown)
			return RR_DUNNO;
		if (rc == 1 && owners_include(owners, login))
			return RR_DUNNO;
		return ev_reject(ev, 553, "5.7.1",
		                 "<%s>: Sender address rejected: not owned by user %s", sender,
		                 login);
	}
	/* Postfix reject_unauth_sender_login_mismatch(): the address has an
	 * owner, and the client did not log in. */
	if (rc == 1)
		return ev_reject(ev, 553, "5.7.1", "<%s>: Sender address rejected: not logged in",
		                 sender);
	return RR_DUNNO;
}

/* ---- TLS client certificates ---- */

enum rr restrict_permit_tls_clientcerts(struct eval *ev, bool all)
{
	const struct restrict_request *q = ev->req;
	const char *prints[2] = {q->ccert_fingerprint, q->ccert_pubkey_fingerprint};

	if (q->ccert_fingerprint == NULL) {
		/* Postfix warns when the restriction can never match. */
		if (q->tls && !ev->e->tls_ask_ccert)
			ev_log_whatsup(ev, "warning",
			               all ? "permit_tls_all_clientcerts is requested, but "
			                     "\"smtpd_tls_ask_ccert = no\""
			                   : "permit_tls_clientcerts is requested, but "
			                     "\"smtpd_tls_ask_ccert = no\"");
		return RR_DUNNO;
	}
	if (all && q->ccert_verified)
		return RR_OK;
	/* Postfix permit_tls_clientcerts(), for both restrictions (an
	 * unverified certificate listed in relay_clientcerts passes
	 * permit_tls_all_clientcerts too): the fingerprint pins the key
	 * pair, so a certificate no CA verified is fine here. Whole keys, in
	 * every table of relay_clientcerts; the first table that knows a
	 * fingerprint wins, a failing table before that is a 4xx. */
	for (size_t i = 0; i < 2; i++) {
		if (prints[i] == NULL || prints[i][0] == '\0')
			continue;
		for (size_t t = 0; t < ev->e->relay_ccerts.n; t++) {
			const char *error = NULL;
			int st = ev_lookup(ev, ev->e->relay_ccerts.v[t], prints[i], NULL, &error);

			if (st == EV_PENDING)
				return RR_STOP;
			if (st == TABLE_FOUND)
				return RR_OK;
			if (st == TABLE_TEMPFAIL) {
				str_t why;
				enum rr r;

				str_init(&why);
				str_appendf(&why,
				            "relay_clientcerts: lookup error for fingerprint '%s', "
				            "pkey fingerprint %s: %s",
				            prints[0], prints[1] != NULL ? prints[1] : "", error);
				r = ev_tempfail(ev, ev->reply_name != NULL ? ev->reply_name : "",
				                str_c(&why));
				str_free(&why);
				return r;
			}
		}
	}
	return RR_DUNNO;
}
