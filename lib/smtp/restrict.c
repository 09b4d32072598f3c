/* restrict.c - smtpd's restriction lists (restrict.h): parsing the
 * smtpd_*_restrictions parameters, the stages and smtpd_delay_reject,
 * the generic restrictions (permit, reject, defer, warn_if_reject ...),
 * and the asynchronous evaluation loop described in restrict_int.h.
 *
 * Used by smtpd (one engine per process, one session per connection) and
 * by `postern check` (restrict_config_check). Access tables are in
 * restrict_access.c, address classes and relay control in restrict_addr.c,
 * SASL sender ownership and TLS client certificates in restrict_auth.c.
 *
 * Failure: a bad restriction list is an error at engine build naming the
 * parameter; at run time nothing fails: a table that cannot answer gives
 * "451 4.3.0 <...>: Temporary lookup failure" (DEFER), never a 5xx.
 *
 * SECURITY: every string the client chose (HELO name, addresses) is only
 * used as a table key, compared, or quoted into a reply; keys are bounded
 * by table_lookup (TABLE_KEY_MAX) and the number of lookups per check by
 * RESTRICT_MAX_LOOKUPS, so a crafted address cannot make the engine loop.
 * Relay decisions use the address's effective destination
 * (address_resolve), never the text the client showed.
 */
#include "smtp/restrict.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hash.h"
#include "base/log.h"
#include "base/mem.h"
#include "conf/config.h"
#include "dns/dns.h"
#include "conf/params.h"
#include "smtp/restrict_int.h"
#include "table/table.h"
#include "table/table_async.h"

/* ---- The restriction names ---- */

struct rdef {
	const char *name;
	enum rkind kind;
	bool table; /* takes a type:table argument */
};

static const struct rdef rdefs[] = {
        {"check_ccert_access", RK_CHECK_CCERT_ACCESS, true},
        {"check_client_access", RK_CHECK_CLIENT_ACCESS, true},
        {"check_helo_access", RK_CHECK_HELO_ACCESS, true},
        {"check_recipient_access", RK_CHECK_RCPT_ACCESS, true},
        {"check_sender_access", RK_CHECK_SENDER_ACCESS, true},
        {"defer", RK_DEFER, false},
        {"defer_unauth_destination", RK_DEFER_UNAUTH_DEST, false},
        {"permit", RK_PERMIT, false},
        {"permit_auth_destination", RK_PERMIT_AUTH_DEST, false},
        {"permit_mynetworks", RK_PERMIT_MYNETWORKS, false},
        {"permit_sasl_authenticated", RK_PERMIT_SASL, false},
        {"permit_tls_all_clientcerts", RK_PERMIT_TLS_ALL_CLIENTCERTS, false},
        {"permit_tls_clientcerts", RK_PERMIT_TLS_CLIENTCERTS, false},
        {"reject", RK_REJECT, false},
        {"reject_authenticated_sender_login_mismatch", RK_REJECT_AUTH_SENDER_LOGIN_MISMATCH, false},
        {"reject_invalid_helo_hostname", RK_REJECT_INVALID_HELO, false},
        {"reject_invalid_hostname", RK_REJECT_INVALID_HELO, false}, /* Postfix < 2.3 name */
        {"reject_known_sender_login_mismatch", RK_REJECT_KNOWN_SENDER_LOGIN_MISMATCH, false},
        {"reject_non_fqdn_helo_hostname", RK_REJECT_NON_FQDN_HELO, false},
        {"reject_non_fqdn_hostname", RK_REJECT_NON_FQDN_HELO, false}, /* Postfix < 2.3 name */
        {"reject_non_fqdn_recipient", RK_REJECT_NON_FQDN_RCPT, false},
        {"reject_non_fqdn_sender", RK_REJECT_NON_FQDN_SENDER, false},
        {"reject_sender_login_mismatch", RK_REJECT_SENDER_LOGIN_MISMATCH, false},
        {"reject_unauth_destination", RK_REJECT_UNAUTH_DEST, false},
        {"reject_unauthenticated_sender_login_mismatch", RK_REJECT_UNAUTH_SENDER_LOGIN_MISMATCH,
         false},
        {"reject_unknown_recipient_domain", RK_REJECT_UNKNOWN_RCPT_DOMAIN, false},
        {"reject_unknown_sender_domain", RK_REJECT_UNKNOWN_SENDER_DOMAIN, false},
        {"reject_unlisted_recipient", RK_REJECT_UNLISTED_RCPT, false},
        {"reject_unlisted_sender", RK_REJECT_UNLISTED_SENDER, false},
        {"warn_if_reject", RK_WARN_IF_REJECT, false},
};

static const struct rdef *rdef_find(const char *name)
{
	for (size_t i = 0; i < sizeof(rdefs) / sizeof(rdefs[0]); i++)
		if (strcmp(rdefs[i].name, name) == 0)
			return &rdefs[i];
	return NULL;
}

/* Restrictions Postfix has that postern does not implement yet: named
 * in the error so that the administrator knows it is not a typo. */
static const char *const not_yet[] = {
        "reject_unknown_helo_hostname",
        "reject_unknown_client_hostname",
        "reject_unknown_reverse_client_hostname",
        "reject_rbl_client",
        "reject_rhsbl_sender",
        "check_policy_service",
        "reject_unverified_recipient",
        "reject_unverified_sender",
        NULL,
};

static void rlist_free(struct rlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].arg);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* Compile the elements of a list into l. Problems are appended to errors
 * prefixed with where (when errors is not NULL) or make it return -1
 * with the first one in error. */
static int rlist_compile(const char *param, const strv_t *items, struct rlist *l, str_t *error)
{
	l->param = param;
	l->v = NULL;
	l->n = 0;
	for (size_t i = 0; i < items->n; i++) {
		const char *name = items->v[i];
		const struct rdef *d = rdef_find(name);

		if (d == NULL) {
			for (size_t k = 0; not_yet[k] != NULL; k++) {
				if (strcmp(not_yet[k], name) == 0) {
					str_appendf(error,
					            "%s: restriction \"%s\" is not supported yet",
					            param, name);
					goto fail;
				}
			}
			str_appendf(error, "%s: unknown restriction \"%s\"", param, name);
			goto fail;
		}
		l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
		l->v[l->n].kind = d->kind;
		l->v[l->n].arg = NULL;
		if (d->table) {
			if (i + 1 >= items->n || strchr(items->v[i + 1], ':') == NULL) {
				str_appendf(error,
				            "%s: restriction \"%s\" needs a type:table argument",
				            param, name);
				l->n++;
				goto fail;
			}
			l->v[l->n].arg = xstrdup(items->v[++i]);
		}
		l->n++;
	}
	return 0;
fail:
	rlist_free(l);
	return -1;
}

/* Does l hold one of the *_sender_login_mismatch restrictions? */
static bool rlist_uses_login(const struct rlist *l)
{
	for (size_t i = 0; i < l->n; i++) {
		switch (l->v[i].kind) {
		case RK_REJECT_SENDER_LOGIN_MISMATCH:
		case RK_REJECT_AUTH_SENDER_LOGIN_MISMATCH:
		case RK_REJECT_UNAUTH_SENDER_LOGIN_MISMATCH:
		case RK_REJECT_KNOWN_SENDER_LOGIN_MISMATCH:
			return true;
		default:
			break;
		}
	}
	return false;
}

static int rlist_load(struct config *cfg, const char *param, struct rlist *l, str_t *error)
{
	const strv_t *items;
	const char *why;

	if (config_get_list(cfg, param, &items, &why) < 0) {
		str_append(error, why);
		return -1;
	}
	return rlist_compile(param, items, l, error);
}

/* ---- Actions and results ---- */

void restrict_actions_init(struct restrict_actions *a)
{
	memset(a, 0, sizeof(*a));
	str_init(&a->hold_reason);
	str_init(&a->discard_reason);
	str_init(&a->filter);
	str_init(&a->redirect);
}

void restrict_actions_reset(struct restrict_actions *a)
{
	restrict_actions_free(a);
	restrict_actions_init(a);
}

void restrict_actions_free(struct restrict_actions *a)
{
	str_free(&a->hold_reason);
	str_free(&a->discard_reason);
	str_free(&a->filter);
	str_free(&a->redirect);
	strv_free(&a->prepend);
	a->hold = a->discard = false;
}

static void actions_merge(struct restrict_actions *to, const struct restrict_actions *from)
{
	if (from->hold) {
		to->hold = true;
		str_set(&to->hold_reason, str_c(&from->hold_reason));
	}
	if (from->discard) {
		to->discard = true;
		str_set(&to->discard_reason, str_c(&from->discard_reason));
	}
	if (from->filter.len > 0)
		str_set(&to->filter, str_c(&from->filter));
	if (from->redirect.len > 0)
		str_set(&to->redirect, str_c(&from->redirect));
	for (size_t i = 0; i < from->prepend.n; i++)
		strv_add(&to->prepend, from->prepend.v[i]);
}

void restrict_result_init(struct restrict_result *r)
{
	r->verdict = RESTRICT_ACCEPT;
	str_init(&r->reply);
	r->stage_name = "RCPT";
}

void restrict_result_free(struct restrict_result *r)
{
	str_free(&r->reply);
}

/* ---- Engine ---- */

static int get_code(struct config *cfg, const char *name, int *code_r, str_t *error)
{
	int64_t v;
	const char *why;

	if (config_get_int(cfg, name, &v, &why) < 0) {
		str_append(error, why);
		return -1;
	}
	if (v < 400 || v > 599) {
		str_appendf(error, "%s: %s: expected a 4xx or 5xx SMTP reply code",
		            config_where(cfg, name), name);
		return -1;
	}
	*code_r = (int)v;
	return 0;
}

/* unknown_address_tempfail_action: defer or defer_if_permit. */
static int tempfail_action_load(struct config *cfg, bool *defer_r, str_t *error)
{
	const char *v, *why;

	if (config_expand(cfg, "unknown_address_tempfail_action", &v, &why) < 0) {
		str_append(error, why);
		return -1;
	}
	if (strcmp(v, "defer") == 0 || strcmp(v, "defer_if_permit") == 0) {
		*defer_r = strcmp(v, "defer") == 0;
		return 0;
	}
	str_appendf(
	        error,
	        "%s: unknown_address_tempfail_action: \"%s\": expected defer or defer_if_permit",
	        config_where(cfg, "unknown_address_tempfail_action"), v);
	return -1;
}

static int engine_load(struct restrict_engine *e, str_t *error)
{
	struct config *cfg = e->cfg;
	const char *why;
	struct {
		const char *name;
		int *code;
	} codes[] = {
	        {"access_map_reject_code", &e->access_reject_code},
	        {"access_map_defer_code", &e->access_defer_code},
	        {"defer_code", &e->defer_code},
	        {"reject_code", &e->reject_code},
	        {"relay_domains_reject_code", &e->relay_code},
	        {"unknown_local_recipient_reject_code", &e->unknown_local_code},
	        {"unknown_virtual_alias_reject_code", &e->unknown_alias_code},
	        {"unknown_virtual_mailbox_reject_code", &e->unknown_mailbox_code},
	        {"unknown_relay_recipient_reject_code", &e->unknown_relay_code},
	        {"non_fqdn_reject_code", &e->non_fqdn_code},
	        {"invalid_hostname_reject_code", &e->bad_name_code},
	        {"unknown_address_reject_code", &e->unknown_addr_code},
	        {"nullmx_reject_code", &e->nullmx_code},
	};
	bool b;

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (get_code(cfg, codes[i].name, codes[i].code, error) < 0)
			return -1;
#define GETBOOL(name, field) \
	do { \
		if (config_get_bool(cfg, name, &b, &why) < 0) { \
			str_append(error, why); \
			return -1; \
		} \
		field = b; \
	} while (0)
	GETBOOL("smtpd_delay_reject", e->delay_reject);
	GETBOOL("smtpd_reject_unlisted_recipient", e->reject_unlisted_rcpt);
	GETBOOL("smtpd_reject_unlisted_sender", e->reject_unlisted_sender);
	GETBOOL("allow_untrusted_routing", e->allow_untrusted_routing);
#undef GETBOOL
	{
		const strv_t *overrides;

		if (config_get_list(cfg, "receive_override_options", &overrides, &why) < 0) {
			str_append(error, why);
			return -1;
		}
		e->no_unknown_rcpt_checks =
		        strv_find(overrides, "no_unknown_recipient_checks") >= 0;
	}
	if (config_expand(cfg, "smtpd_null_access_lookup_key", &e->null_access_key, &why) < 0 ||
	    config_expand(cfg, "recipient_delimiter", &e->delimiter, &why) < 0) {
		str_append(error, why);
		return -1;
	}
	if (tempfail_action_load(cfg, &e->unknown_addr_tf_defer, error) < 0)
		return -1;
	if (rlist_load(cfg, "smtpd_client_restrictions", &e->client, error) < 0 ||
	    rlist_load(cfg, "smtpd_helo_restrictions", &e->helo, error) < 0 ||
	    rlist_load(cfg, "smtpd_sender_restrictions", &e->sender, error) < 0 ||
	    rlist_load(cfg, "smtpd_relay_restrictions", &e->relay, error) < 0 ||
	    rlist_load(cfg, "smtpd_recipient_restrictions", &e->recipient, error) < 0 ||
	    rlist_load(cfg, "smtpd_etrn_restrictions", &e->etrn, error) < 0 ||
	    rlist_load(cfg, "smtpd_data_restrictions", &e->data, error) < 0 ||
	    rlist_load(cfg, "smtpd_end_of_data_restrictions", &e->eod, error) < 0)
		return -1;
	if (address_resolve_options_from_config(cfg, &e->resolve, &why) < 0) {
		str_append(error, why);
		return -1;
	}
	{
		const struct rlist *lists[] = {&e->client,    &e->helo, &e->sender, &e->relay,
		                               &e->recipient, &e->etrn, &e->data,   &e->eod};
		const char *login_user = NULL;

		for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]) && login_user == NULL; i++)
			if (rlist_uses_login(lists[i]))
				login_user = lists[i]->param;
		if (restrict_auth_setup(e, login_user, error) < 0)
			return -1;
	}
	return restrict_addr_setup(e, error);
}

int restrict_engine_new(struct config *cfg, struct table_async *pool,
                        struct restrict_engine **engine_r, str_t *error)
{
	struct restrict_engine *e = xcalloc(1, sizeof(*e));

	e->cfg = cfg;
	e->pool = pool;
	if (engine_load(e, error) < 0) {
		restrict_engine_destroy(&e);
		*engine_r = NULL;
		return -1;
	}
	*engine_r = e;
	return 0;
}

void restrict_engine_set_dns(struct restrict_engine *engine, struct dns *dns)
{
	engine->dns = dns;
}

void restrict_engine_destroy(struct restrict_engine **enginep)
{
	struct restrict_engine *e = *enginep;

	if (e == NULL)
		return;
	rlist_free(&e->client);
	rlist_free(&e->helo);
	rlist_free(&e->sender);
	rlist_free(&e->relay);
	rlist_free(&e->recipient);
	rlist_free(&e->etrn);
	rlist_free(&e->data);
	rlist_free(&e->eod);
	restrict_addr_free(e);
	restrict_auth_free(e);
	free(e);
	*enginep = NULL;
}

/* error starts with the parameter's name: say where it is set. */
static void add_param_error(struct config *cfg, const str_t *error, strv_t *errors)
{
	size_t n = strcspn(str_c(error), ":");
	char *param = xstrndup(str_c(error), n);

	if (param_find(param) != NULL)
		strv_add_owned(errors, xasprintf("%s: %s", config_where(cfg, param), str_c(error)));
	else
		strv_add(errors, str_c(error));
	free(param);
}

void restrict_config_check(struct config *cfg, strv_t *errors)
{
	static const char *const params[] = {
	        "smtpd_client_restrictions",      "smtpd_helo_restrictions",
	        "smtpd_sender_restrictions",      "smtpd_relay_restrictions",
	        "smtpd_recipient_restrictions",   "smtpd_data_restrictions",
	        "smtpd_end_of_data_restrictions", "smtpd_etrn_restrictions",
	};
	str_t error;
	struct restrict_engine e;
	const char *login_user = NULL;

	str_init(&error);
	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
		const strv_t *items;
		const char *why;
		struct rlist l;

		if (config_get_list(cfg, params[i], &items, &why) < 0)
			continue; /* config_validate reports it */
		/* The whole list, for smtpd_sender_login_maps below (errors are
		 * reported element by element next). */
		str_reset(&error);
		if (login_user == NULL && rlist_compile(params[i], items, &l, &error) == 0) {
			if (rlist_uses_login(&l))
				login_user = params[i];
			rlist_free(&l);
		}
		/* Each element separately, so that every problem is listed. */
		for (size_t k = 0; k < items->n; k++) {
			strv_t one = STRV_INIT;

			if (rdef_find(items->v[k]) != NULL && rdef_find(items->v[k])->table) {
				strv_add(&one, items->v[k]);
				if (k + 1 < items->n)
					strv_add(&one, items->v[++k]);
			} else if (strchr(items->v[k], ':') != NULL) {
				continue; /* a table argument checked with its restriction */
			} else {
				strv_add(&one, items->v[k]);
			}
			str_reset(&error);
			if (rlist_compile(params[i], &one, &l, &error) < 0)
				strv_add_owned(errors,
				               xasprintf("%s: %s", config_where(cfg, params[i]),
				                         str_c(&error)));
			else
				rlist_free(&l);
			strv_free(&one);
		}
	}
	{
		bool defer;

		str_reset(&error);
		if (tempfail_action_load(cfg, &defer, &error) < 0)
			strv_add(errors, str_c(&error));
	}
	/* smtpd_sender_login_maps, mynetworks and the domain lists. */
	memset(&e, 0, sizeof(e));
	e.cfg = cfg;
	str_reset(&error);
	if (restrict_auth_setup(&e, login_user, &error) < 0)
		add_param_error(cfg, &error, errors);
	str_reset(&error);
	if (restrict_addr_setup(&e, &error) < 0)
		add_param_error(cfg, &error, errors);
	restrict_auth_free(&e);
	restrict_addr_free(&e);
	str_free(&error);
}

/* ---- Sessions ---- */

struct restrict_session *restrict_session_new(struct restrict_engine *engine)
{
	struct restrict_session *s = xcalloc(1, sizeof(*s));

	s->engine = engine;
	return s;
}

void restrict_session_destroy(struct restrict_session **sessp)
{
	if (*sessp == NULL)
		return;
	free(*sessp);
	*sessp = NULL;
}

void restrict_session_reset_transaction(struct restrict_session *sess)
{
	/* Nothing is cached across checks: with smtpd_delay_reject = yes the
	 * client, helo and sender restrictions are evaluated again for each
	 * RCPT, as Postfix's smtpd_check_rcpt() does. */
	(void)sess;
}

/* ---- Evaluation helpers (restrict_int.h) ---- */

static void memo_free(void *v)
{
	struct memo *m = v;

	free(m->value);
	free(m->error);
	free(m);
}

static char *memo_key(const char *spec, const char *key)
{
	return xasprintf("%s\001%s", spec, key);
}

int ev_lookup(struct eval *ev, const char *spec, const char *key, const char **value_r,
              const char **error_r)
{
	char *mk = memo_key(spec, key);
	struct memo *m = hash_get(ev->p->memo, mk);

	free(mk);
	if (m != NULL) {
		if (value_r != NULL)
			*value_r = m->value != NULL ? m->value : "";
		if (error_r != NULL)
			*error_r = m->error != NULL ? m->error : "";
		if (m->status == TABLE_NOTFOUND && m->stale) {
			if (ev->stale_negatives++ == 0)
				ev->stale_why =
				        xasprintf("%s: cached \"not found\" for %s: %s", spec, key,
				                  m->error != NULL ? m->error : "");
		}
		return m->status;
	}
	if (ev->p->want_spec == NULL) {
		ev->p->want_spec = xstrdup(spec);
		ev->p->want_key = xstrdup(key);
	}
	ev->pending = true;
	return EV_PENDING;
}

unsigned restrict_spec_flags(const char *spec)
{
	const char *colon;
	char *type;
	const struct table_backend *b;

	if (strncmp(spec, "proxy:", 6) == 0)
		spec += 6;
	colon = strchr(spec, ':');
	if (colon == NULL)
		return 0;
	type = xstrndup(spec, (size_t)(colon - spec));
	b = table_backend_find(type);
	free(type);
	return b != NULL ? b->flags : 0;
}

/* A reply code's class digit forced onto a DSN "X.Y.Z". */
static void format_reply(str_t *out, int code, const char *dsn, const char *text)
{
	str_reset(out);
	str_appendf(out, "%d %c%s %s", code, '0' + code / 100, dsn + 1, text);
}

enum rr ev_reject(struct eval *ev, int code, const char *dsn, const char *fmt, ...)
{
	str_t text;
	va_list ap;

	str_init(&text);
	va_start(ap, fmt);
	str_vappendf(&text, fmt, ap);
	va_end(ap);
	if (ev->warn_if_reject) {
		/* Postfix logs "reject_warning:" with the reply it would have given. */
		str_t line;

		str_init(&line);
		format_reply(&line, code, dsn, str_c(&text));
		ev_log_whatsup(ev, "reject_warning", str_c(&line));
		str_free(&line);
		str_free(&text);
		ev->warn_if_reject = false;
		return RR_DUNNO;
	}
	if (code >= 500 && ev->stale_negatives > 0) {
		/* Why no 5xx: it rests on a "not found" the database could not
		 * confirm (it is down; the cache's answer may be older than a
		 * mailbox made since). The client retries; the database decides. */
		str_free(&text);
		return ev_tempfail(ev, ev->reply_name != NULL ? ev->reply_name : "", ev->stale_why);
	}
	if (code >= 500 && ev->defer_if_reject) {
		/* DEFER_IF_REJECT: a later reject becomes the deferral recorded. */
		str_set(&ev->reply, str_c(&ev->dir_reply));
		ev->verdict = RESTRICT_DEFER;
	} else {
		format_reply(&ev->reply, code, dsn, str_c(&text));
		ev->verdict = code >= 500 ? RESTRICT_REJECT : RESTRICT_DEFER;
	}
	str_free(&text);
	ev->decided = true;
	return RR_STOP;
}

enum rr ev_tempfail(struct eval *ev, const char *name, const char *why)
{
	/* Why no warn_if_reject here: a lookup failure is not a policy
	 * decision; Postfix replies 451 4.3.0 whatever came before. */
	str_t line;

	str_init(&line);
	str_appendf(&line, "%s: %s", name, why);
	ev_log_whatsup(ev, "warning", str_c(&line));
	str_free(&line);
	str_reset(&ev->reply);
	str_appendf(&ev->reply, "451 4.3.0 <%s>: Temporary lookup failure", name);
	ev->verdict = RESTRICT_DEFER;
	ev->decided = true;
	return RR_STOP;
}

static const char *stage_word(enum restrict_stage stage)
{
	switch (stage) {
	case RESTRICT_CONNECT:
		return "CONNECT";
	case RESTRICT_HELO:
		return "HELO";
	case RESTRICT_MAIL:
		return "MAIL";
	case RESTRICT_RCPT:
		return "RCPT";
	case RESTRICT_ETRN:
		return "ETRN";
	case RESTRICT_DATA:
		return "DATA";
	case RESTRICT_END_OF_DATA:
		return "END-OF-MESSAGE";
	}
	return "RCPT";
}

void ev_log_whatsup(struct eval *ev, const char *what, const char *text)
{
	const struct restrict_request *q = ev->req;
	str_t line;

	str_init(&line);
	if (strcmp(what, "warning") == 0) {
		str_appendf(&line, "warning: %s", text);
	} else {
		/* Postfix smtpd_check.c log_whatsup(): NOQUEUE: warn: RCPT from
		 * name[addr]: text; from=<s> to=<r> proto=ESMTP helo=<h> */
		str_appendf(&line, "NOQUEUE: %s: %s from %s[%s]: %s;", what,
		            stage_word(ev->p->stage),
		            q->client_name != NULL ? q->client_name : "unknown",
		            q->client_address != NULL ? q->client_address : "unknown", text);
		if (q->sender != NULL)
			str_appendf(&line, " from=<%s>", q->sender);
		if (q->recipient != NULL)
			str_appendf(&line, " to=<%s>", q->recipient);
		if (q->protocol != NULL)
			str_appendf(&line, " proto=%s", q->protocol);
		if (q->helo_name != NULL)
			str_appendf(&line, " helo=<%s>", q->helo_name);
	}
	strv_add(&ev->logs, str_c(&line));
	str_free(&line);
}

/* ---- Running restrictions ---- */

static enum rr non_fqdn_address(struct eval *ev, const char *addr, const char *reply_class)
{
	const char *at;
	const char *domain;
	char *d;
	size_t len;
	bool ok;

	if (addr == NULL || addr[0] == '\0')
		return RR_DUNNO;
	at = strrchr(addr, '@');
	/* An address without a domain is not fully qualified: Postfix 3.7
	 * answers 504 for MAIL FROM:<user> from a remote client. */
	domain = at != NULL ? at + 1 : "";
	if (domain[0] == '[')
		return RR_DUNNO;
	len = strlen(domain);
	if (len > 0 && domain[len - 1] == '.' && (len < 2 || domain[len - 2] != '.'))
		len--;
	d = xstrndup(domain, len);
	ok = len > 0 && strchr(d, '.') != NULL && dns_hostname_valid(d);
	free(d);
	if (ok)
		return RR_DUNNO;
	return ev_reject(ev, ev->e->non_fqdn_code, "5.5.2",
	                 "<%s>: %s rejected: need fully-qualified address", addr, reply_class);
}

static enum rr helo_checks(struct eval *ev, bool fqdn)
{
	const char *helo = ev->req->helo_name;
	char *name;
	size_t len;
	enum rr r = RR_DUNNO;

	if (helo == NULL)
		return RR_DUNNO;
	/* Postfix: a bare IP address is a valid HELO name for
	 * reject_invalid_helo_hostname (valid_hostaddr), but not fully
	 * qualified for reject_non_fqdn_helo_hostname. */
	if (!fqdn && restrict_valid_hostaddr(helo))
		return RR_DUNNO;
	if (helo[0] == '[') {
		if (!fqdn && !restrict_valid_hostliteral(helo))
			return ev_reject(ev, ev->e->bad_name_code, "5.5.2",
			                 "<%s>: Helo command rejected: Invalid name", helo);
		return RR_DUNNO;
	}
	/* A single trailing dot is accepted ("host.example."). */
	len = strlen(helo);
	if (len > 1 && helo[len - 1] == '.' && helo[len - 2] != '.')
		len--;
	name = xstrndup(helo, len);
	if (!dns_hostname_valid(name)) {
		r = fqdn ? ev_reject(ev, ev->e->non_fqdn_code, "5.5.2",
		                     "<%s>: Helo command rejected: need fully-qualified hostname",
		                     helo)
		         : ev_reject(ev, ev->e->bad_name_code, "5.5.2",
		                     "<%s>: Helo command rejected: Invalid name", helo);
	} else if (fqdn && strchr(name, '.') == NULL) {
		r = ev_reject(ev, ev->e->non_fqdn_code, "5.5.2",
		              "<%s>: Helo command rejected: need fully-qualified hostname", helo);
	}
	free(name);
	return r;
}

static enum rr run_step(struct eval *ev, const struct rstep *s)
{
	const struct restrict_request *q = ev->req;
	struct restrict_engine *e = ev->e;

	switch (s->kind) {
	case RK_PERMIT:
		return RR_OK;
	case RK_REJECT:
		return ev_reject(ev, e->reject_code, "5.7.1", "<%s>: %s rejected: Access denied",
		                 ev->reply_name, ev->reply_class);
	case RK_DEFER:
		return ev_reject(ev, e->defer_code, "4.7.1", "<%s>: %s rejected: Try again later",
		                 ev->reply_name, ev->reply_class);
	case RK_WARN_IF_REJECT:
		ev->warn_if_reject = true;
		return RR_DUNNO;
	case RK_PERMIT_MYNETWORKS:
		return restrict_permit_mynetworks(ev);
	case RK_PERMIT_SASL:
		return q->sasl_username != NULL ? RR_OK : RR_DUNNO;
	case RK_REJECT_UNAUTH_DEST:
		return restrict_unauth_destination(ev, false, false);
	case RK_DEFER_UNAUTH_DEST:
		return restrict_unauth_destination(ev, true, false);
	case RK_PERMIT_AUTH_DEST:
		return restrict_unauth_destination(ev, false, true);
	case RK_REJECT_UNLISTED_RCPT:
		return restrict_unlisted(ev, false);
	case RK_REJECT_UNLISTED_SENDER:
		return restrict_unlisted(ev, true);
	case RK_REJECT_NON_FQDN_HELO:
		return helo_checks(ev, true);
	case RK_REJECT_INVALID_HELO:
		return helo_checks(ev, false);
	case RK_REJECT_NON_FQDN_SENDER:
		return non_fqdn_address(ev, q->sender, "Sender address");
	case RK_REJECT_NON_FQDN_RCPT:
		return non_fqdn_address(ev, q->recipient, "Recipient address");
	case RK_CHECK_CLIENT_ACCESS:
		return restrict_check_client_access(ev, s->arg);
	case RK_CHECK_HELO_ACCESS:
		return restrict_check_helo_access(ev, s->arg);
	case RK_CHECK_SENDER_ACCESS:
		if (q->sender == NULL)
			return RR_DUNNO;
		return restrict_check_addr_access(ev, s->arg, q->sender, "Sender address");
	case RK_CHECK_RCPT_ACCESS:
		if (q->recipient == NULL)
			return RR_DUNNO;
		return restrict_check_addr_access(ev, s->arg, q->recipient, "Recipient address");
	case RK_REJECT_UNKNOWN_SENDER_DOMAIN:
		return restrict_unknown_domain(ev, true);
	case RK_REJECT_UNKNOWN_RCPT_DOMAIN:
		return restrict_unknown_domain(ev, false);
	case RK_REJECT_SENDER_LOGIN_MISMATCH:
	case RK_REJECT_AUTH_SENDER_LOGIN_MISMATCH:
	case RK_REJECT_UNAUTH_SENDER_LOGIN_MISMATCH:
	case RK_REJECT_KNOWN_SENDER_LOGIN_MISMATCH:
		return restrict_sender_login(ev, s->kind);
	case RK_PERMIT_TLS_CLIENTCERTS:
		return restrict_permit_tls_clientcerts(ev, false);
	case RK_PERMIT_TLS_ALL_CLIENTCERTS:
		return restrict_permit_tls_clientcerts(ev, true);
	case RK_CHECK_CCERT_ACCESS:
		return restrict_check_ccert_access(ev, s->arg);
	}
	return RR_DUNNO;
}

/* Run steps; OK ends only this list (Postfix generic_checks()). The
 * restriction after warn_if_reject is the only one it applies to. */
static enum rr run_steps(struct eval *ev, const struct rstep *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		bool wir = ev->warn_if_reject;
		enum rr r = run_step(ev, &v[i]);

		if (wir && v[i].kind != RK_WARN_IF_REJECT)
			ev->warn_if_reject = false;
		if (r != RR_DUNNO)
			return r;
	}
	return RR_DUNNO;
}

enum rr ev_run_text_list(struct eval *ev, const char *text)
{
	strv_t items = STRV_INIT;
	struct rlist l;
	str_t error;
	const char *why;
	enum rr r;

	str_init(&error);
	if (ev->depth >= RESTRICT_MAX_DEPTH || strv_split_list(&items, text, &why) < 0 ||
	    rlist_compile("access table result", &items, &l, &error) < 0) {
		/* Postfix: "451 4.3.5 Server configuration error" and a warning. */
		str_t w;

		str_init(&w);
		str_appendf(&w, "%s: bad access table result \"%s\"%s%s", ev->reply_name, text,
		            error.len > 0 ? ": " : "", str_c(&error));
		ev_log_whatsup(ev, "warning", str_c(&w));
		str_free(&w);
		str_free(&error);
		strv_free(&items);
		str_set(&ev->reply, "451 4.3.5 Server configuration error");
		ev->verdict = RESTRICT_DEFER;
		ev->decided = true;
		return RR_STOP;
	}
	str_free(&error);
	strv_free(&items);
	ev->depth++;
	r = run_steps(ev, l.v, l.n);
	ev->depth--;
	rlist_free(&l);
	return r;
}

static enum rr run_list(struct eval *ev, const struct rlist *l, const char *reply_name,
                        const char *reply_class)
{
	ev->reply_name = reply_name;
	ev->reply_class = reply_class;
	ev->warn_if_reject = false;
	return run_steps(ev, l->v, l->n);
}

/* The lists of a stage in Postfix's order. Returns with ev->decided,
 * ev->pending, or neither (accept). */
static void eval_stage(struct eval *ev)
{
	struct restrict_engine *e = ev->e;
	const struct restrict_request *q = ev->req;
	enum restrict_stage st = ev->p->stage;
	bool delay = e->delay_reject;
	str_t namaddr;
	enum rr r;

	str_init(&namaddr);
	str_appendf(&namaddr, "%s[%s]", q->client_name != NULL ? q->client_name : "unknown",
	            q->client_address != NULL ? q->client_address : "unknown");
	ev->namaddr = str_c(&namaddr);

	/* Postfix smtpd_check_etrn(): with delay, the client and HELO lists
	 * run at ETRN as they do at RCPT. */
	if ((st == RESTRICT_CONNECT && !delay) ||
	    ((st == RESTRICT_RCPT || st == RESTRICT_ETRN) && delay)) {
		r = run_list(ev, &e->client, str_c(&namaddr), "Client host");
		if (r == RR_STOP)
			goto out;
	}
	if ((st == RESTRICT_HELO && !delay) ||
	    ((st == RESTRICT_RCPT || st == RESTRICT_ETRN) && delay)) {
		if (q->helo_name != NULL) {
			r = run_list(ev, &e->helo, q->helo_name, "Helo command");
			if (r == RR_STOP)
				goto out;
		}
	}
	if ((st == RESTRICT_MAIL && !delay) || (st == RESTRICT_RCPT && delay)) {
		if (q->sender != NULL) {
			r = run_list(ev, &e->sender, q->sender, "Sender address");
			if (r == RR_STOP)
				goto out;
			if (e->reject_unlisted_sender && !ev->sender_checked &&
			    restrict_unlisted(ev, true) == RR_STOP)
				goto out;
		}
	}
	if (st == RESTRICT_RCPT && q->recipient != NULL) {
		r = run_list(ev, &e->relay, q->recipient, "Recipient address");
		if (r == RR_STOP)
			goto out;
		r = run_list(ev, &e->recipient, q->recipient, "Recipient address");
		if (r == RR_STOP)
			goto out;
		/* smtpd_reject_unlisted_recipient applies whatever the lists
		 * permitted (Postfix smtpd_check_rcpt), unless one of them ran
		 * reject_unlisted_recipient already. */
		if (e->reject_unlisted_rcpt && !ev->rcpt_checked &&
		    restrict_unlisted(ev, false) == RR_STOP)
			goto out;
	}
	if (st == RESTRICT_ETRN) {
		r = run_list(ev, &e->etrn, q->etrn_domain != NULL ? q->etrn_domain : "",
		             "Etrn command");
		if (r == RR_STOP)
			goto out;
	}
	if (st == RESTRICT_DATA) {
		r = run_list(ev, &e->data, "DATA", "Data command");
		if (r == RR_STOP)
			goto out;
	}
	if (st == RESTRICT_END_OF_DATA) {
		r = run_list(ev, &e->eod, "END-OF-MESSAGE", "End-of-data");
		if (r == RR_STOP)
			goto out;
	}
	/* DEFER_IF_PERMIT: the request would be allowed; defer it instead. */
	if (ev->defer_if_permit) {
		str_set(&ev->reply, str_c(&ev->dip_reply));
		ev->verdict = RESTRICT_DEFER;
		ev->decided = true;
	}
out:
	str_free(&namaddr);
}

/* ---- Pending checks ---- */

static void pending_free(struct restrict_pending *p)
{
	table_async_cancel(&p->areq);
	dns_cancel(&p->dreq);
	hash_destroy(&p->memo);
	free(p->want_spec);
	free(p->want_key);
	free((char *)p->req.client_address);
	free((char *)p->req.client_name);
	free((char *)p->req.reverse_client_name);
	free((char *)p->req.helo_name);
	free((char *)p->req.protocol);
	free((char *)p->req.sender);
	free((char *)p->req.recipient);
	free((char *)p->req.sasl_username);
	free((char *)p->req.sasl_method);
	free((char *)p->req.sasl_sender);
	free((char *)p->req.ccert_fingerprint);
	free((char *)p->req.ccert_pubkey_fingerprint);
	free((char *)p->req.ccert_subject);
	free((char *)p->req.ccert_issuer);
	free((char *)p->req.etrn_domain);
	restrict_result_free(&p->result);
	free(p);
}

static char *dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

static void on_answer(const struct table_result *r, void *ctx);
static void on_dns_answer(const struct dns_answer *a, void *ctx);

/* The DNS record type of a RESTRICT_DNS_* spec, 0 for a table. */
static int dns_spec_type(const char *spec)
{
	if (strcmp(spec, RESTRICT_DNS_MX) == 0)
		return DNS_T_MX;
	if (strcmp(spec, RESTRICT_DNS_A) == 0)
		return DNS_T_A;
	if (strcmp(spec, RESTRICT_DNS_AAAA) == 0)
		return DNS_T_AAAA;
	return 0;
}

/* Memoise the answer to the wanted lookup. */
static void memo_put(struct restrict_pending *p, int status, const char *value, const char *error,
                     bool stale)
{
	struct memo *m = xcalloc(1, sizeof(*m));
	char *mk = memo_key(p->want_spec, p->want_key);

	m->stale = stale;
	m->status = status;
	m->value = xstrdup(value);
	m->error = xstrdup(error);
	hash_put(p->memo, mk, m);
	free(mk);
}

/* Evaluate once more; either start the one lookup wanted, or finish. */
static void advance(struct restrict_pending *p)
{
	struct restrict_engine *e = p->sess->engine;
	struct eval ev;
	bool again = false;

	memset(&ev, 0, sizeof(ev));
	ev.p = p;
	ev.e = e;
	ev.req = &p->req;
	ev.verdict = RESTRICT_ACCEPT;
	str_init(&ev.reply);
	str_init(&ev.dip_reply);
	str_init(&ev.dir_reply);
	restrict_actions_init(&ev.acts);
	free(p->want_spec);
	free(p->want_key);
	p->want_spec = p->want_key = NULL;

	eval_stage(&ev);
	if (ev.pending && p->lookups < RESTRICT_MAX_LOOKUPS) {
		int type = dns_spec_type(p->want_spec);

		p->lookups++;
		if (type != 0 && e->dns != NULL) {
			p->dreq = dns_query(e->dns, p->want_key, (enum dns_type)type, on_dns_answer,
			                    p);
			goto out;
		}
		if (type != 0) {
			/* No resolver: the answer is a temporary failure, now. */
			memo_put(p, TABLE_TEMPFAIL, "", "no DNS resolver in this process", false);
			again = true;
			goto out;
		}
		p->areq = table_async_lookup(e->pool, p->want_spec, p->want_key, on_answer, p);
		goto out;
	}
	if (ev.pending) {
		/* Too many lookups for one check: a configuration problem. */
		log_warning("restriction check for <%s> needed more than %d table lookups",
		            p->req.recipient != NULL ? p->req.recipient : "", RESTRICT_MAX_LOOKUPS);
		str_set(&ev.reply, "451 4.3.0 Temporary lookup failure");
		ev.verdict = RESTRICT_DEFER;
		ev.decided = true;
	}
	p->result.verdict = ev.decided ? ev.verdict : RESTRICT_ACCEPT;
	str_set(&p->result.reply, ev.decided ? str_c(&ev.reply) : "");
	p->result.stage_name = stage_word(p->stage);
	for (size_t i = 0; i < ev.logs.n; i++) {
		if (strncmp(ev.logs.v[i], "warning: ", 9) == 0)
			log_warning("%s", ev.logs.v[i] + 9);
		else
			log_info("%s", ev.logs.v[i]);
	}
	if (p->actions != NULL)
		actions_merge(p->actions, &ev.acts);
	p->finished = true;
out:
	str_free(&ev.reply);
	str_free(&ev.dip_reply);
	str_free(&ev.dir_reply);
	restrict_actions_free(&ev.acts);
	strv_free(&ev.logs);
	free(ev.stale_why);
	if (again)
		advance(p);
}

static void deliver(struct restrict_pending *p)
{
	p->done(&p->result, p->ctx);
	pending_free(p);
}

static void on_answer(const struct table_result *r, void *ctx)
{
	struct restrict_pending *p = ctx;

	p->areq = NULL;
	if (p->finished) {
		/* The trampoline lookup of restrict_check(): see there. */
		deliver(p);
		return;
	}
	memo_put(p, r->status, str_c(&r->value), str_c(&r->error), r->stale);
	advance(p);
	if (p->finished)
		deliver(p);
}

static void on_dns_answer(const struct dns_answer *a, void *ctx)
{
	struct restrict_pending *p = ctx;
	const char *value = "";

	p->dreq = NULL;
	/* RFC 7505: a null MX is the single MX record "0 ."; a root name
	 * among other MX records is malformed (Postfix DNS_INVAL). */
	for (size_t i = 0; a->status == DNS_OK && i < a->n; i++)
		if (a->rr[i].data[0] == '\0')
			value = a->n == 1 && a->rr[i].pref == 0 ? "nullmx" : "invalid";
	if (a->status == DNS_OK)
		memo_put(p, TABLE_FOUND, value, "", false);
	else if (a->status == DNS_NOTFOUND)
		memo_put(p, TABLE_NOTFOUND, a->nxdomain ? "nxdomain" : "", "", false);
	else
		memo_put(p, TABLE_TEMPFAIL, "", a->why, false);
	advance(p);
	if (p->finished)
		deliver(p);
}

struct restrict_pending *restrict_check(struct restrict_session *sess, enum restrict_stage stage,
                                        const struct restrict_request *req,
                                        struct restrict_actions *actions, restrict_done_cb *done,
                                        void *ctx)
{
	struct restrict_pending *p = xcalloc(1, sizeof(*p));

	p->sess = sess;
	p->stage = stage;
	p->req = *req;
	p->req.client_address = dup_or_null(req->client_address);
	p->req.client_name = dup_or_null(req->client_name);
	p->req.reverse_client_name = dup_or_null(req->reverse_client_name);
	p->req.helo_name = dup_or_null(req->helo_name);
	p->req.protocol = dup_or_null(req->protocol);
	p->req.sender = dup_or_null(req->sender);
	p->req.recipient = dup_or_null(req->recipient);
	p->req.sasl_username = dup_or_null(req->sasl_username);
	p->req.sasl_method = dup_or_null(req->sasl_method);
	p->req.sasl_sender = dup_or_null(req->sasl_sender);
	p->req.ccert_fingerprint = dup_or_null(req->ccert_fingerprint);
	p->req.ccert_pubkey_fingerprint = dup_or_null(req->ccert_pubkey_fingerprint);
	p->req.ccert_subject = dup_or_null(req->ccert_subject);
	p->req.ccert_issuer = dup_or_null(req->ccert_issuer);
	p->req.etrn_domain = dup_or_null(req->etrn_domain);
	p->actions = actions;
	p->done = done;
	p->ctx = ctx;
	p->memo = hash_new(memo_free);
	restrict_result_init(&p->result);
	advance(p);
	if (p->finished) {
		/* Why a lookup in static: when the answer is already known: the
		 * contract is that done() runs on a later event-loop turn, and
		 * table_async already guarantees exactly that for every table
		 * (an in-memory table is answered on the next turn), with
		 * cancellation; the pool's event_base is not exposed. */
		p->areq = table_async_lookup(sess->engine->pool, "static:done", "x", on_answer, p);
	}
	return p;
}

void restrict_cancel(struct restrict_pending **pp)
{
	if (*pp == NULL)
		return;
	pending_free(*pp);
	*pp = NULL;
}
