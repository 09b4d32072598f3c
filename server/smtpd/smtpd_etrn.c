/* smtpd_etrn.c - ETRN (RFC 1985): a client asks for the deferred mail of
 * a domain to be delivered now, as Postfix 3.7's smtpd and flush(8)
 * answer it.
 *
 *   ETRN [@|#]domain
 *     503 Error: send HELO/EHLO first       smtpd_helo_required, no HELO
 *     503 Error: MAIL transaction in progress
 *     500 Syntax: ETRN domain               no argument, or two
 *     501 Error: invalid parameter syntax   not a host name or [literal]
 *     459 <domain>: service unavailable     not in fast_flush_domains
 *     458 Unable to queue messages          fast_flush_domains could not
 *                                           be looked up, or the flush
 *                                           failed
 *     250 Queuing started                   the domain's deferred mail
 *                                           has been made due now
 * No enhanced status codes: Postfix sends none for ETRN.
 *
 * Who may flush what: fast_flush_domains (default $relay_domains) is a
 * domain list matched as Postfix's match_hostname() does, first element
 * that matches decides, "!" negates: a name matches itself; with the
 * list in parent_domain_matches_subdomains (the default) it also matches
 * its subdomains and a ".name" element matches nothing; otherwise a
 * ".name" element matches the subdomains. A type:table element is looked
 * up with the domain and (for exact-key tables) each parent, "name" or
 * ".name" in the same way. Lookups go through the process's table_async
 * pool, so a remote table (sqlite:, mysql:, pgsql:, db:) never stalls
 * the event loop; in-memory tables answer on the next loop turn. A
 * lookup that fails is 458 (Postfix's FLUSH_STAT_FAIL), never a 459 or
 * a 250; a stale "not found" from the cache during an outage counts as
 * a failure too.
 *
 * What a flush is: lib/queue/queue_flush.c, the code of `postern queue
 * flush DOMAIN`: every deferred message with a recipient not yet done in
 * the domain gets those recipients' next retry set to now and moves to
 * incoming/; then qmgr is woken (public/qmgr). Postfix's flush(8) keeps
 * a per-domain log of queue IDs; postern scans deferred/ instead, which
 * finds the same messages (a message's domains are its recipients').
 *
 * Why the flush runs in a worker and the reply waits for it: scanning
 * deferred/ and rewriting retry times is blocking file I/O with
 * fdatasync, so it runs as a table_async job, off the event loop. The
 * session waits (its input paused) and gets "250 Queuing started" once
 * the flush has been done, as Postfix's smtpd replies once flush(8) has
 * moved the files; a flush that could not run (deferred/ unreadable,
 * the worker queue full) is a 458, never a 250 for nothing. At most one
 * flush per listener runs at a time, so ETRNs cannot take every worker
 * from the restriction lookups; requests arriving meanwhile wait and
 * are done together by the next flush, one scan for all their domains.
 * A client that goes away does not stop a flush it asked for.
 *
 * Session lifetime: smtpd_session.c frees a session without knowing
 * about ETRN, so a request is found again through the session list
 * (the session whose etrn_check points to it) whenever an answer
 * arrives; when none does, the answer is dropped.
 *
 * SECURITY: the argument is checked as Postfix's valid_hostname() or
 * valid_mailhost_literal() before anything else; it reaches a table
 * only as a lookup key and the queue only as a string compared with
 * recipient domains. The flush only sets retry times of mail already
 * queued and moves files between queue directories; it never reads the
 * message content.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "address/domain_list.h"
#include "base/log.h"
#include "base/mem.h"
#include "daemon/trigger.h"
#include "queue/queue_dir.h"
#include "queue/queue_flush.h"
#include "dns/dns.h"
#include "smtpd.h"
#include "table/table.h"
#include "table/table_async.h"

/* One ETRN request, from the command until its reply. */
struct smtpd_etrn_check {
	struct smtpd_etrn_check *next, *prev; /* smtpd_etrn.checks */
	struct smtpd_etrn *e;
	char *domain; /* as sent (after @ or #), for replies and logs */
	char *site; /* lower-case: matched and flushed */
	size_t elem; /* fast_flush_domains element being matched */
	const char *key; /* into site: the name looked up in elem's table */
	struct table_async_request *req; /* lookup in progress */
	struct flush_job *job; /* the flush that serves it; NULL: matching
	                        * or waiting for the next flush */
	bool queued; /* eligible, waiting for the next flush */
};

/* A flush: its domains go in, the result comes out. The worker touches
 * nothing else. */
struct flush_job {
	const struct queue_dir *qd;
	strv_t domains;
	int rc; /* queue_flush()'s */
	struct queue_flush_result r;
	str_t error;
};

struct smtpd_etrn {
	struct smtpd_listener *lis;
	struct domain_list domains; /* fast_flush_domains */
	struct smtpd_etrn_check *checks; /* every request not yet answered */
	struct flush_job *running; /* the flush in progress, or NULL */
};

enum etrn_verdict {
	ETRN_PENDING, /* a lookup is in progress */
	ETRN_ELIGIBLE,
	ETRN_DENIED, /* 459 */
	ETRN_FAILED, /* 458 */
};

/* ---- syntax: Postfix's valid_hostname() and valid_mailhost_literal() ---- */

/* Four decimal octets of at most 255; "0.x.y.z" only as 0.0.0.0. */
static bool etrn_valid_ipv4(const char *a)
{
	unsigned count = 0, value = 0;
	bool in_byte = false;

	for (const char *p = a; *p != '\0'; p++) {
		if (isdigit((unsigned char)*p)) {
			if (!in_byte) {
				in_byte = true;
				value = 0;
				count++;
			}
			value = value * 10 + (unsigned)(*p - '0');
			if (value > 255)
				return false;
		} else if (*p == '.') {
			if (!in_byte || p[1] == '\0')
				return false;
			if (count == 1 && value == 0 && a[strspn(a, "0.")] != '\0')
				return false;
			in_byte = false;
		} else {
			return false;
		}
	}
	return count == 4;
}

/* "[1.2.3.4]" or "[IPv6:...]" (any case of "IPv6:"). */
static bool etrn_valid_literal(const char *d)
{
	size_t len = strlen(d);
	char *inner;
	bool ok;

	if (len < 3 || d[0] != '[' || strchr(d, ']') != d + len - 1)
		return false;
	inner = xstrndup(d + 1, len - 2);
	if (strncasecmp(inner, "IPv6:", 5) == 0) {
		unsigned char buf[16];

		ok = inet_pton(AF_INET6, inner + 5, buf) == 1;
	} else {
		ok = etrn_valid_ipv4(inner);
	}
	free(inner);
	return ok;
}

/* ---- the session side ---- */

/* The session that asked, or NULL when it has gone away meanwhile. */
static struct smtpd_session *check_session(const struct smtpd_etrn_check *c)
{
	for (struct smtpd_session *s = c->e->lis->server->sessions; s != NULL; s = s->next)
		if (s->etrn_check == c)
			return s;
	return NULL;
}

static void check_free(struct smtpd_etrn_check *c)
{
	struct smtpd_etrn *e = c->e;

	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		e->checks = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	free(c->domain);
	free(c->site);
	free(c);
}

/* The reply for a final verdict (ELIGIBLE only once the flush is done:
 * 250); why says what failed. */
static void check_reply(struct smtpd_session *s, const struct smtpd_etrn_check *c,
                        enum etrn_verdict v, const char *why)
{
	switch (v) {
	case ETRN_DENIED:
		/* Postfix's words, a warning as in its smtpd. */
		log_warning("reject: ETRN %.100s... from %s[%s]", c->domain, s->name, s->addr);
		smtpd_reply_error(s, "459 <%s>: service unavailable", c->domain);
		break;
	case ETRN_FAILED:
		log_warning("ETRN %.100s from %s[%s]: %s", c->domain, s->name, s->addr, why);
		smtpd_reply_error(s, "458 Unable to queue messages");
		break;
	default:
		smtpd_cmd_ok(s, SMTP_VERB_ETRN);
		smtpd_reply(s, "250 Queuing started");
		break;
	}
}

/* A request is done: answer the session if it is still there (it waits
 * when waited is true), free the request. */
static void check_finish(struct smtpd_etrn_check *c, enum etrn_verdict v, const char *why,
                         bool waited)
{
	struct smtpd_session *s = check_session(c);

	/* A session that is closing (timeout, 421) gets no more replies. */
	if (s != NULL) {
		s->etrn_check = NULL;
		if (s->state != SMTPD_ST_CLOSING) {
			check_reply(s, c, v, why);
			if (waited)
				smtpd_session_resume(s);
		}
	}
	check_free(c);
}

/* ---- the flush ---- */

static void flush_start(struct smtpd_etrn *e);

/* In a worker thread. */
static void flush_run(void *arg)
{
	struct flush_job *j = arg;

	j->rc = queue_flush(j->qd, &j->domains, &j->r, &j->error);
}

static void flush_free(void *arg)
{
	struct flush_job *j = arg;

	strv_free(&j->domains);
	str_free(&j->error);
	free(j);
}

static void flush_done(void *arg, const char *error, void *cb_ctx)
{
	struct flush_job *j = arg;
	struct smtpd_etrn *e = cb_ctx;
	enum etrn_verdict v = ETRN_ELIGIBLE;
	const char *why = NULL;
	struct smtpd_etrn_check *c, *next;

	e->running = NULL;
	if (error != NULL) {
		why = error; /* the worker queue is full */
		v = ETRN_FAILED;
	} else if (j->rc < 0) {
		why = str_c(&j->error);
		v = ETRN_FAILED;
	} else {
		if (j->r.moved > 0)
			(void)trigger_send(queue_dir_root(j->qd), "public/qmgr", TRIGGER_WAKEUP);
		log_debug(1, "ETRN flush of %zu domain(s): %lu message(s) moved, %lu failed",
		          j->domains.n, j->r.moved, j->r.failed);
	}
	if (v == ETRN_FAILED)
		log_warning("ETRN flush: %s", why);
	for (c = e->checks; c != NULL; c = next) {
		next = c->next;
		if (c->job == j)
			check_finish(c, v, "the flush of the deferred queue failed", true);
	}
	flush_start(e);
}

/* Start a flush for every request waiting, unless one is running. */
static void flush_start(struct smtpd_etrn *e)
{
	struct flush_job *j;

	if (e->running != NULL)
		return;
	j = xcalloc(1, sizeof(*j));
	j->qd = e->lis->server->qd;
	str_init(&j->error);
	for (struct smtpd_etrn_check *c = e->checks; c != NULL; c = c->next) {
		if (!c->queued)
			continue;
		c->queued = false;
		c->job = j;
		if (strv_find(&j->domains, c->site) < 0)
			strv_add(&j->domains, c->site);
	}
	if (j->domains.n == 0) {
		flush_free(j);
		return;
	}
	/* Never cancelled: a flush goes on when its clients have gone. */
	e->running = j;
	(void)table_async_job(e->lis->server->pool, flush_run, flush_done, flush_free, j, e);
}

/* ---- fast_flush_domains ---- */

/* Postfix's match_hostname() for a plain element (both lower-case). */
static bool name_matches(const char *name, const char *pattern, bool parent_style)
{
	size_t n = strlen(name), p = strlen(pattern);
	const char *tail;

	if (strcmp(name, pattern) == 0)
		return true;
	if (n <= p)
		return false;
	tail = name + n - p;
	if (parent_style)
		return tail[-1] == '.' && strcmp(tail, pattern) == 0;
	return pattern[0] == '.' && strcmp(tail, pattern) == 0;
}

/* Exact-key tables are also asked for the parents of the name; pattern
 * tables (regexp, pcre, cidr) only for the name itself. An unknown type
 * fails at its lookup. */
static bool table_fixed_keys(const char *spec)
{
	const char *colon = strchr(spec, ':');
	char *type = xstrndup(spec, colon != NULL ? (size_t)(colon - spec) : strlen(spec));
	const struct table_backend *b = table_backend_find(type);

	free(type);
	return b == NULL || (b->flags & TABLE_F_FIXED_KEYS) != 0;
}

static void lookup_done(const struct table_result *r, void *ctx);

/* Go on matching from c->elem (and c->key within a table element). */
static enum etrn_verdict check_match(struct smtpd_etrn_check *c)
{
	const struct domain_list *dl = &c->e->domains;

	for (; c->elem < dl->n; c->elem++, c->key = NULL) {
		const struct domain_list_elem *d = &dl->v[c->elem];

		if (d->table == NULL) {
			if (name_matches(c->site, d->domain, dl->parent_style))
				return d->neg ? ETRN_DENIED : ETRN_ELIGIBLE;
			continue;
		}
		if (c->key == NULL)
			c->key = c->site;
		c->req = table_async_lookup(c->e->lis->server->pool, d->table, c->key, lookup_done,
		                            c);
		return ETRN_PENDING;
	}
	return ETRN_DENIED;
}

/* Eligible: wait for the next flush (the session stays paused). */
static void check_queue(struct smtpd_etrn_check *c)
{
	c->queued = true;
	flush_start(c->e);
}

static void lookup_done(const struct table_result *r, void *ctx)
{
	struct smtpd_etrn_check *c = ctx;
	const struct domain_list_elem *d = &c->e->domains.v[c->elem];
	enum etrn_verdict v;

	c->req = NULL;
	if (check_session(c) == NULL) {
		check_free(c); /* the client went away: nothing to answer */
		return;
	}
	if (r->status == TABLE_TEMPFAIL || (r->status == TABLE_NOTFOUND && r->stale)) {
		str_t why;

		/* Why a stale "not found" fails too: it is no proof the
		 * domain is not listed (table_cache.h); 459 would be a
		 * refusal on a guess. */
		str_init(&why);
		str_appendf(&why, "fast_flush_domains: %s: %s", d->table,
		            r->error.len > 0 ? str_c(&r->error) : "lookup failed");
		check_finish(c, ETRN_FAILED, str_c(&why), true);
		str_free(&why);
		return;
	}
	if (r->status == TABLE_FOUND) {
		v = d->neg ? ETRN_DENIED : ETRN_ELIGIBLE;
	} else {
		const char *next = table_fixed_keys(d->table) ? strchr(c->key + 1, '.') : NULL;

		if (next == NULL) {
			c->elem++;
			c->key = NULL;
		} else {
			c->key = c->e->domains.parent_style ? next + 1 : next;
		}
		v = check_match(c);
	}
	if (v == ETRN_PENDING)
		return;
	if (v == ETRN_ELIGIBLE)
		check_queue(c);
	else
		check_finish(c, v, NULL, true);
}

/* ---- the command ---- */

/* The domain passed the restrictions: fast_flush_domains, then the flush. */
static void etrn_start(struct smtpd_session *s, char *arg)
{
	struct smtpd_etrn *e = s->lis->etrn;
	struct smtpd_etrn_check *c;
	enum etrn_verdict v;

	c = xcalloc(1, sizeof(*c));
	c->e = e;
	c->domain = arg;
	c->site = xstrdup(arg);
	for (char *p = c->site; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	c->next = e->checks;
	if (c->next != NULL)
		c->next->prev = c;
	e->checks = c;
	s->etrn_check = c;
	v = check_match(c);
	if (v == ETRN_PENDING || v == ETRN_ELIGIBLE) {
		smtpd_session_wait(s);
		if (v == ETRN_ELIGIBLE)
			check_queue(c);
		return;
	}
	check_finish(c, v, NULL, false);
}

/* Postfix smtpd_check_etrn(): the client and HELO restrictions (with
 * smtpd_delay_reject = yes) and smtpd_etrn_restrictions decide first. */
static void etrn_restrictions_done(const struct restrict_result *r, void *ctx)
{
	struct smtpd_session *s = ctx;
	char *arg = s->etrn_domain;

	s->pending = NULL;
	s->etrn_domain = NULL;
	if (r->verdict != RESTRICT_ACCEPT) {
		smtpd_log_reject(s, "ETRN", str_c(&r->reply), NULL);
		smtpd_reply_error(s, "%s", str_c(&r->reply));
		free(arg);
		smtpd_session_resume(s);
		return;
	}
	s->waiting = false;
	etrn_start(s, arg);
	if (s->etrn_check == NULL)
		smtpd_session_resume(s);
}

void smtpd_cmd_etrn(struct smtpd_session *s, const struct smtp_cmd *cmd)
{
	const char *d = cmd->arg;
	size_t len = cmd->arg_len;
	char *arg;

	if (s->helo == NULL && s->set->helo_required) {
		smtpd_reply_error(s, "503 Error: send HELO/EHLO first");
		return;
	}
	if (s->in_mail) {
		smtpd_reply_error(s, "503 Error: MAIL transaction in progress");
		return;
	}
	if (len == 0 || strcspn(d, " \t\r\v\f") < len) { /* one word, as smtp_cmd splits */
		smtpd_reply_error(s, "500 Syntax: ETRN domain");
		return;
	}
	if (d[0] == '@' || d[0] == '#') {
		d++;
		len--;
	}
	arg = xstrndup(d, len);
	if (memchr(d, '\0', len) != NULL || !(dns_hostname_valid(arg) || etrn_valid_literal(arg))) {
		free(arg);
		smtpd_reply_error(s, "501 Error: invalid parameter syntax");
		return;
	}
	free(s->etrn_domain);
	s->etrn_domain = arg;
	smtpd_request_fill(s);
	s->req.etrn_domain = arg;
	smtpd_session_wait(s);
	s->pending = restrict_check(s->rs, RESTRICT_ETRN, &s->req, NULL, etrn_restrictions_done, s);
}

/* ---- set-up ---- */

int smtpd_etrn_new(struct smtpd_listener *lis, struct smtpd_etrn **ep, str_t *error)
{
	struct smtpd_etrn *e = xcalloc(1, sizeof(*e));

	e->lis = lis;
	*ep = e;
	return domain_list_parse(lis->cfg, "fast_flush_domains", &e->domains, error);
}

void smtpd_etrn_destroy(struct smtpd_etrn **ep)
{
	struct smtpd_etrn *e = *ep;

	if (e == NULL)
		return;
	/* The pool is gone: no callback can come; the running job was
	 * freed with it. */
	while (e->checks != NULL)
		check_free(e->checks);
	domain_list_free(&e->domains);
	free(e);
	*ep = NULL;
}
