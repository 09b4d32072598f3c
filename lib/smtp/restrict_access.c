/* restrict_access.c - check_client_access, check_helo_access,
 * check_sender_access, check_recipient_access and check_ccert_access
 * (TLS client certificate fingerprints): Postfix's access(5)
 * tables, their lookup orders and their actions (OK, REJECT, DEFER,
 * DEFER_IF_REJECT, DEFER_IF_PERMIT, DUNNO, NNN text, all-numeric, HOLD,
 * DISCARD, FILTER, REDIRECT, PREPEND, WARN, and a restriction list as the
 * value).
 *
 * Used by restrict.c only (restrict_int.h). Lookups go through
 * ev_lookup(), so they are asynchronous (see restrict_int.h).
 *
 * Failure: a table that cannot answer gives "451 4.3.0 <name>: Temporary
 * lookup failure"; a value that is no known action nor restriction list
 * gives "451 4.3.5 Server configuration error" with a warning naming the
 * table (Postfix's behaviour), never a silent permit.
 *
 * SECURITY: keys come from the client (names, addresses); they are only
 * used as lookup keys (bounded by table_lookup) and quoted into replies.
 * Partial keys (parent domains, stripped extensions, networks) are only
 * asked of exact-key tables: a regexp or cidr table sees the whole key.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/str.h"
#include "smtp/restrict_int.h"
#include "table/maps.h"
#include "table/table.h"

/* "4.7.1 rest" at the start of text: the DSN is copied to dsn and the
 * rest returned; otherwise text itself. */
static const char *split_dsn(const char *text, char dsn[16])
{
	const char *p = text;
	int parts = 0;

	if (*p != '2' && *p != '4' && *p != '5')
		return text;
	for (;;) {
		size_t digits = 0;

		while (digits < 4 && isdigit((unsigned char)p[digits]))
			digits++;
		if (digits == 0 || digits > 3)
			return text;
		p += digits;
		parts++;
		if (parts == 3)
			break;
		if (*p != '.')
			return text;
		p++;
	}
	if (*p != ' ' && *p != '\0')
		return text;
	if ((size_t)(p - text) >= 16)
		return text;
	memcpy(dsn, text, (size_t)(p - text));
	dsn[p - text] = '\0';
	while (*p == ' ')
		p++;
	return p;
}

static bool all_digits(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

static enum rr config_error(struct eval *ev, const char *spec, const char *value, const char *why)
{
	str_t w;

	str_init(&w);
	str_appendf(&w, "access table %s: %s: \"%s\"", spec, why, value);
	ev_log_whatsup(ev, "warning", str_c(&w));
	str_free(&w);
	str_set(&ev->reply, "451 4.3.5 Server configuration error");
	ev->verdict = RESTRICT_DEFER;
	ev->decided = true;
	return RR_STOP;
}

/* Postfix's check_table_result(): act on an access table's value. */
static enum rr access_result(struct eval *ev, const char *spec, const char *value,
                             const char *reply_name, const char *reply_class)
{
	struct restrict_engine *e = ev->e;
	str_t trimmed, line;
	const char *v, *text;
	char *cmd;
	size_t cmd_len;
	char dsn[16];
	enum rr r = RR_DUNNO;

	str_init(&trimmed);
	str_init(&line);
	str_set(&trimmed, value);
	str_trim(&trimmed);
	v = str_c(&trimmed);
	cmd_len = strcspn(v, " \t");
	cmd = xstrndup(v, cmd_len);
	text = v + cmd_len;
	while (*text == ' ' || *text == '\t')
		text++;

	if (v[0] == '\0') {
		r = config_error(ev, spec, value, "empty access result");
	} else if (strcasecmp(cmd, "OK") == 0 || all_digits(v)) {
		r = RR_OK;
	} else if (strcasecmp(cmd, "DUNNO") == 0) {
		r = RR_DUNNO;
	} else if (strcasecmp(cmd, "REJECT") == 0) {
		const char *t;

		strcpy(dsn, "5.7.1");
		t = split_dsn(text, dsn);
		r = ev_reject(ev, e->access_reject_code, dsn, "<%s>: %s rejected: %s", reply_name,
		              reply_class, *t != '\0' ? t : "Access denied");
	} else if (strcasecmp(cmd, "DEFER") == 0) {
		const char *t;

		strcpy(dsn, "4.7.1");
		t = split_dsn(text, dsn);
		r = ev_reject(ev, e->access_defer_code, dsn, "<%s>: %s rejected: %s", reply_name,
		              reply_class, *t != '\0' ? t : "Access denied");
	} else if (strcasecmp(cmd, "DEFER_IF_REJECT") == 0 ||
	           strcasecmp(cmd, "DEFER_IF_PERMIT") == 0) {
		bool if_reject = strcasecmp(cmd, "DEFER_IF_REJECT") == 0;
		str_t *slot = if_reject ? &ev->dir_reply : &ev->dip_reply;
		const char *t;

		strcpy(dsn, "4.7.1");
		t = split_dsn(text, dsn);
		str_reset(slot);
		str_appendf(slot, "%d %c%s <%s>: %s rejected: %s", e->defer_code, '4', dsn + 1,
		            reply_name, reply_class, *t != '\0' ? t : "Service unavailable");
		if (if_reject)
			ev->defer_if_reject = true;
		else
			ev->defer_if_permit = true;
		r = RR_DUNNO;
	} else if (cmd_len == 3 && isdigit((unsigned char)cmd[0]) &&
	           isdigit((unsigned char)cmd[1]) && isdigit((unsigned char)cmd[2])) {
		/* "NNN text" (all-numeric values were OK above). */
		int code = atoi(cmd);

		if (code < 400 || code > 599) {
			r = config_error(ev, spec, value, "bad SMTP reply code in access result");
		} else {
			const char *t;

			snprintf(dsn, sizeof(dsn), "%d.7.1", code / 100);
			t = split_dsn(text, dsn);
			r = ev_reject(ev, code, dsn, "<%s>: %s rejected: %s", reply_name,
			              reply_class, *t != '\0' ? t : "Access denied");
		}
	} else if (strcasecmp(cmd, "HOLD") == 0) {
		str_appendf(&line, "<%s>: %s %s", reply_name, reply_class,
		            *text != '\0' ? text : "triggers HOLD action");
		ev->acts.hold = true;
		str_set(&ev->acts.hold_reason, str_c(&line));
		ev_log_whatsup(ev, "hold", str_c(&line));
	} else if (strcasecmp(cmd, "DISCARD") == 0) {
		str_appendf(&line, "<%s>: %s %s", reply_name, reply_class,
		            *text != '\0' ? text : "triggers DISCARD action");
		ev->acts.discard = true;
		str_set(&ev->acts.discard_reason, str_c(&line));
		ev_log_whatsup(ev, "discard", str_c(&line));
		/* The message goes nowhere: no later restriction can matter. */
		r = RR_OK;
	} else if (strcasecmp(cmd, "FILTER") == 0) {
		if (strchr(text, ':') == NULL) {
			r = config_error(ev, spec, value, "FILTER needs transport:destination");
		} else {
			str_set(&ev->acts.filter, text);
			str_appendf(&line, "<%s>: %s triggers FILTER %s", reply_name, reply_class,
			            text);
			ev_log_whatsup(ev, "filter", str_c(&line));
		}
	} else if (strcasecmp(cmd, "REDIRECT") == 0) {
		if (*text == '\0' || strpbrk(text, " \t") != NULL) {
			r = config_error(ev, spec, value, "REDIRECT needs one address");
		} else {
			str_set(&ev->acts.redirect, text);
			str_appendf(&line, "<%s>: %s triggers REDIRECT %s", reply_name, reply_class,
			            text);
			ev_log_whatsup(ev, "redirect", str_c(&line));
		}
	} else if (strcasecmp(cmd, "PREPEND") == 0) {
		size_t name_len = strcspn(text, ": \t");

		if (name_len == 0 || text[name_len] != ':') {
			r = config_error(ev, spec, value, "PREPEND needs a header \"Name: value\"");
		} else {
			strv_add(&ev->acts.prepend, text);
		}
	} else if (strcasecmp(cmd, "WARN") == 0) {
		/* Postfix logs the text alone for WARN. */
		ev_log_whatsup(ev, "warn", *text != '\0' ? text : "triggers WARN action");
	} else {
		/* A restriction list as the value ("permit_mynetworks, reject"):
		 * evaluated in place of this restriction. */
		const char *saved_name = ev->reply_name, *saved_class = ev->reply_class;

		ev->reply_name = reply_name;
		ev->reply_class = reply_class;
		r = ev_run_text_list(ev, v);
		ev->reply_name = saved_name;
		ev->reply_class = saved_class;
	}
	free(cmd);
	str_free(&trimmed);
	str_free(&line);
	return r;
}

/* Look key up; true when the search ends here (found, failed, waiting),
 * with the restriction's result in *rr. */
static bool try_key(struct eval *ev, const char *spec, const char *key, const char *reply_name,
                    const char *reply_class, enum rr *rr)
{
	const char *value = NULL, *error = NULL;
	int st = ev_lookup(ev, spec, key, &value, &error);

	switch (st) {
	case EV_PENDING:
		*rr = RR_STOP;
		return true;
	case TABLE_TEMPFAIL:
		*rr = ev_tempfail(ev, reply_name, error);
		return true;
	case TABLE_FOUND:
		*rr = access_result(ev, spec, value, reply_name, reply_class);
		return true;
	default:
		return false;
	}
}

/* A domain and, in exact-key tables, its parent domains: "a.b.example",
 * then "b.example", "example" (parent_domain_matches_subdomains lists
 * smtpd_access_maps, Postfix's default) or ".b.example", ".example". */
static bool try_domain(struct eval *ev, const char *spec, const char *domain, bool fixed,
                       const char *reply_name, const char *reply_class, enum rr *rr)
{
	const char *name = domain;

	while (*name != '\0') {
		const char *next;

		if (try_key(ev, spec, name, reply_name, reply_class, rr))
			return true;
		if (!fixed)
			return false;
		next = strchr(name + 1, '.');
		if (next == NULL)
			return false;
		if (ev->e->access_parent_style)
			next++;
		name = next;
	}
	return false;
}

enum rr restrict_check_client_access(struct eval *ev, const char *spec)
{
	const struct restrict_request *q = ev->req;
	bool fixed = (restrict_spec_flags(spec) & TABLE_F_FIXED_KEYS) != 0;
	const char *reply_name = ev->namaddr;
	enum rr rr = RR_DUNNO;
	char *lower, *net;

	/* Postfix: the client name and its parent domains, then the address
	 * and its networks (octets or IPv6 groups stripped from the end). */
	if (q->client_name != NULL && strcmp(q->client_name, "unknown") != 0) {
		lower = xstrdup(q->client_name);
		for (char *c = lower; *c != '\0'; c++)
			*c = (char)tolower((unsigned char)*c);
		if (try_domain(ev, spec, lower, fixed, reply_name, "Client host", &rr)) {
			free(lower);
			return rr;
		}
		free(lower);
	}
	if (q->client_address == NULL)
		return RR_DUNNO;
	net = xstrdup(q->client_address);
	for (;;) {
		char *cut;

		if (net[0] == '\0')
			break;
		if (try_key(ev, spec, net, reply_name, "Client host", &rr))
			break;
		if (!fixed)
			break;
		cut = strrchr(net, strchr(net, ':') != NULL ? ':' : '.');
		if (cut == NULL)
			break;
		/* "2001:db8::" style ends: strip the empty groups together. */
		while (cut > net && cut[-1] == ':')
			cut--;
		*cut = '\0';
	}
	free(net);
	return rr;
}

enum rr restrict_check_helo_access(struct eval *ev, const char *spec)
{
	const char *helo = ev->req->helo_name;
	bool fixed = (restrict_spec_flags(spec) & TABLE_F_FIXED_KEYS) != 0;
	enum rr rr = RR_DUNNO;
	char *lower;
	size_t len;

	if (helo == NULL)
		return RR_DUNNO;
	lower = xstrdup(helo);
	for (char *c = lower; *c != '\0'; c++)
		*c = (char)tolower((unsigned char)*c);
	len = strlen(lower);
	if (len > 1 && lower[len - 1] == '.')
		lower[len - 1] = '\0';
	(void)try_domain(ev, spec, lower, fixed, helo, "Helo command", &rr);
	free(lower);
	return rr;
}

enum rr restrict_check_addr_access(struct eval *ev, const char *spec, const char *addr,
                                   const char *reply_class)
{
	bool fixed = (restrict_spec_flags(spec) & TABLE_F_FIXED_KEYS) != 0;
	enum rr rr = RR_DUNNO;
	const char *at;
	char *local = NULL, *domain = NULL, *key = NULL;
	size_t local_len, ext;

	if (addr[0] == '\0') {
		/* The null sender: smtpd_null_access_lookup_key ("<>"). */
		(void)try_key(ev, spec, ev->e->null_access_key, addr, reply_class, &rr);
		return rr;
	}
	/* Postfix check_mail_access(): user+ext@domain, user@domain, the
	 * domain and its parents, user+ext@, user@. */
	if (try_key(ev, spec, addr, addr, reply_class, &rr) || !fixed)
		return rr;
	at = strrchr(addr, '@');
	local_len = at != NULL ? (size_t)(at - addr) : strlen(addr);
	local = xstrndup(addr, local_len);
	ext = maps_extension_split(local, local_len,
	                           ev->e->delimiter != NULL ? ev->e->delimiter : "");
	if (ext < local_len) {
		key = xasprintf("%.*s%s", (int)ext, local, at != NULL ? at : "");
		if (try_key(ev, spec, key, addr, reply_class, &rr))
			goto out;
		free(key);
		key = NULL;
	}
	if (at != NULL && at[1] != '\0') {
		domain = xstrdup(at + 1);
		for (char *c = domain; *c != '\0'; c++)
			*c = (char)tolower((unsigned char)*c);
		if (try_domain(ev, spec, domain, true, addr, reply_class, &rr))
			goto out;
	}
	key = xasprintf("%s@", local);
	if (try_key(ev, spec, key, addr, reply_class, &rr))
		goto out;
	if (ext < local_len) {
		free(key);
		key = xasprintf("%.*s@", (int)ext, local);
		(void)try_key(ev, spec, key, addr, reply_class, &rr);
	}
out:
	free(local);
	free(domain);
	free(key);
	return rr;
}

enum rr restrict_check_ccert_access(struct eval *ev, const char *spec)
{
	const struct restrict_request *q = ev->req;
	const char *cn = q->ccert_subject != NULL ? q->ccert_subject : "";
	const char *prints[2] = {q->ccert_fingerprint, q->ccert_pubkey_fingerprint};
	enum rr rr = RR_DUNNO;

	/* Postfix check_ccert_access(): any certificate the client
	 * presented, verified or not (a fingerprint names one key pair and
	 * the handshake proved the client holds it; the CA adds nothing).
	 * Whole keys only, in every table type; the reply names the
	 * subject's CN: "<CN>: Client certificate rejected: ...". Unlike the
	 * other access checks, a DUNNO (or HOLD, WARN ...) for the
	 * certificate goes on to the public key: Postfix stops only on a
	 * result that is not DUNNO. */
	if (q->ccert_fingerprint == NULL)
		return RR_DUNNO;
	for (size_t i = 0; i < 2; i++) {
		if (prints[i] == NULL || prints[i][0] == '\0')
			continue;
		(void)try_key(ev, spec, prints[i], cn, "Client certificate", &rr);
		if (rr != RR_DUNNO)
			break;
	}
	return rr;
}
