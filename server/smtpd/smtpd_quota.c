/* smtpd_quota.c - RCPT-time refusal of a recipient whose mailbox is
 * already over quota (smtpd_reject_over_quota).
 *
 * Called by smtpd_rcpt.c once the relay and recipient restrictions (and
 * the implicit reject_unlisted_recipient) have accepted the address, so
 * it never turns a refusal into a different answer. The recipient is
 * resolved with lib/delivery/resolve.c, as qmgr and the virtual delivery
 * agent see it: virtual_alias_maps expansion (aliases, @domain
 * catch-alls, alias domains), then for every final virtual mailbox its
 * quota (virtual_mailbox_limit_maps when set, else db:quota) and its
 * usage from the Maildir's maildirsize. If
 * any of them is full (maildir_quota_full: usage at a limit, or usage +
 * MAIL FROM SIZE= over it) the RCPT gets
 *   552 5.2.2 <addr>: Recipient address rejected: Mailbox full
 * (452 4.2.2 when virtual_overquota_bounce = no, as the agent defers),
 * logged as Postfix logs a RCPT reject.
 *
 * Limits: bytes are the quota table's (0: none), so a quota changed in
 * the database or directory counts for the next RCPT; messages are the "C" part of the
 * maildirsize header when it has one (the database has no message
 * quota; Dovecot may write one). resolve.c asks the database every
 * time, through the process's table cache (table_cache_lookup_fresh):
 * while the database is down, its last known answers stand in.
 *
 * Why a worker thread: resolve.c is synchronous (several queries per
 * address). The check runs as a table_async job in the lookup workers,
 * under the same queue limit, so the event loop never waits. A resolver
 * (struct resolve_ctx: open tables and one database connection on its
 * own config copy) is used by one job at a time: a job takes an idle
 * one from the listener's list, or opens a new one, and gives it back
 * (closes it after a failure); there are never more than
 * table_async_workers of them per listener.
 * The session's request is cancelled when the client goes away; a job
 * already running finishes and its answer is dropped (table_async.h).
 *
 * Failure: a quota that cannot be known (a table that cannot answer and
 * has no cached answer, a resolver that cannot be opened, an alias
 * expansion over its limits, a full lookup queue) is no refusal: the
 * RCPT is accepted, with a warning naming the reason, and the delivery
 * agent decides when the database answers again. Why: this check only
 * gives earlier the answer delivery would give; a 451 for every
 * recipient during a database outage (the restrictions already vouched
 * for the address, from the cache if need be) costs far more than the
 * odd over-quota message that is then deferred or bounced by the agent.
 * Likewise a maildirsize that cannot be read or needs a rebuild is not
 * a refusal: only the delivery agent, which may write
 * into the mailbox, can rebuild it; smtpd never writes there.
 *
 * SECURITY: the address was parsed by address_parse_path(); it reaches
 * the database only as a bound parameter (table_db.c), and the Maildir
 * path comes from the database, not from the client.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "conf/config.h"
#include "delivery/maildir_quota.h"
#include "delivery/resolve.h"
#include "smtpd.h"
#include "table/table_async.h"

/* One resolver, used by one worker at a time. */
struct quota_resolver {
	struct quota_resolver *next;
	struct config *cfg; /* its own copy: a config caches expansions */
	struct resolve_ctx *ctx;
};

struct smtpd_quota {
	pthread_mutex_t lock;
	struct config *cfg; /* copied for each resolver, under lock */
	char *config_dir;
	struct quota_resolver *idle; /* under lock */
	bool bounce; /* virtual_overquota_bounce */
};

enum quota_verdict {
	QUOTA_OK,
	QUOTA_FULL,
	QUOTA_TEMPFAIL,
};

/* One check; owned by its table_async request. */
struct quota_job {
	struct smtpd_quota *q;
	char *address;
	uint64_t size; /* MAIL FROM SIZE=, 0 when not given */
	enum quota_verdict verdict;
	str_t why; /* QUOTA_FULL: the full mailbox; QUOTA_TEMPFAIL: the reason */
};

struct smtpd_quota *smtpd_quota_new(struct config *cfg, const char *config_dir)
{
	const strv_t *mailbox_maps = config_list(cfg, "virtual_mailbox_maps");
	struct smtpd_quota *q;

	/* resolve.c knows quotas from virtual_mailbox_limit_maps, or from
	 * db:quota, which it asks when virtual_mailbox_maps names
	 * db:mailboxes: without either there is nothing to check, and no
	 * reason to resolve every recipient. */
	if (!config_bool(cfg, "smtpd_reject_over_quota") ||
	    (strv_find(mailbox_maps, "db:mailboxes") < 0 &&
	     config_list(cfg, "virtual_mailbox_limit_maps")->n == 0))
		return NULL;
	q = xcalloc(1, sizeof(*q));
	pthread_mutex_init(&q->lock, NULL);
	q->cfg = config_clone(cfg);
	q->config_dir = xstrdup(config_dir);
	q->bounce = config_bool(cfg, "virtual_overquota_bounce");
	return q;
}

static void resolver_free(struct quota_resolver *r)
{
	resolve_close(&r->ctx);
	config_destroy(&r->cfg);
	free(r);
}

void smtpd_quota_destroy(struct smtpd_quota **qp)
{
	struct smtpd_quota *q = *qp;

	if (q == NULL)
		return;
	while (q->idle != NULL) {
		struct quota_resolver *r = q->idle;

		q->idle = r->next;
		resolver_free(r);
	}
	config_destroy(&q->cfg);
	pthread_mutex_destroy(&q->lock);
	free(q->config_dir);
	free(q);
	*qp = NULL;
}

/* ---- worker thread ---------------------------------------------------- */

/* An idle resolver, or a new one; NULL with why appended when its tables
 * cannot be opened (tried again by the next check). */
static struct quota_resolver *resolver_get(struct smtpd_quota *q, str_t *why)
{
	struct quota_resolver *r;

	pthread_mutex_lock(&q->lock);
	r = q->idle;
	if (r != NULL) {
		q->idle = r->next;
		pthread_mutex_unlock(&q->lock);
		return r;
	}
	r = xcalloc(1, sizeof(*r));
	r->cfg = config_clone(q->cfg);
	pthread_mutex_unlock(&q->lock);
	if (resolve_open(r->cfg, q->config_dir, &r->ctx, why) < 0) {
		resolver_free(r);
		return NULL;
	}
	return r;
}

static void resolver_put(struct smtpd_quota *q, struct quota_resolver *r)
{
	pthread_mutex_lock(&q->lock);
	r->next = q->idle;
	q->idle = r;
	pthread_mutex_unlock(&q->lock);
}

/* Is this final recipient a virtual mailbox that is full? */
static bool final_full(const struct resolve_final *f, uint64_t size)
{
	struct maildir_quota_usage u;

	if (f->class != RESOLVE_CLASS_VIRTUAL || !f->deliverable || f->quota < 0 || !f->usage_known)
		return false;
	u = f->usage;
	u.limits.bytes = (uint64_t)f->quota;
	return maildir_quota_full(&u, size);
}

static void job_run(void *arg)
{
	struct quota_job *j = arg;
	struct quota_resolver *r = resolver_get(j->q, &j->why);
	struct resolve_result res;

	if (r == NULL) {
		j->verdict = QUOTA_TEMPFAIL;
		return;
	}
	resolve_result_init(&res);
	/* RESOLVE_UNDELIVERABLE: some final address is unknown; the
	 * restrictions answer for those, the mailboxes among the others are
	 * still checked. */
	if (resolve_recipient(r->ctx, j->address, &res) == RESOLVE_TEMPFAIL) {
		j->verdict = QUOTA_TEMPFAIL;
		str_append(&j->why, str_c(&res.error));
	} else {
		for (size_t i = 0; i < res.nfinals; i++) {
			const struct resolve_final *f = &res.finals[i];

			if (final_full(f, j->size)) {
				j->verdict = QUOTA_FULL;
				str_appendf(&j->why,
				            "mailbox %s: used %lld bytes, %lld messages; limit "
				            "%lld bytes",
				            f->address, (long long)f->usage.bytes,
				            (long long)f->usage.count, (long long)f->quota);
				if (f->usage.limits.count != 0)
					str_appendf(&j->why, ", %llu messages",
					            (unsigned long long)f->usage.limits.count);
				if (j->size > 0)
					str_appendf(&j->why, "; SIZE=%llu",
					            (unsigned long long)j->size);
				break;
			}
		}
	}
	resolve_result_free(&res);
	/* Why close a resolver after a failure: its connection may be to a
	 * database file that was replaced (SQLite) or to a server that is
	 * gone; the next check opens everything afresh. */
	if (j->verdict == QUOTA_TEMPFAIL)
		resolver_free(r);
	else
		resolver_put(j->q, r);
}

/* ---- event thread ------------------------------------------------------ */

static void job_free(void *arg)
{
	struct quota_job *j = arg;

	free(j->address);
	str_free(&j->why);
	free(j);
}

static void job_done(void *arg, const char *error, void *cb_ctx)
{
	struct quota_job *j = arg;
	struct smtpd_session *s = cb_ctx;
	str_t reply;

	s->quota_req = NULL;
	if (error != NULL) {
		j->verdict = QUOTA_TEMPFAIL;
		str_append(&j->why, error);
	}
	if (j->verdict == QUOTA_OK) {
		smtpd_rcpt_accept(s);
		return;
	}
	str_init(&reply);
	if (j->verdict == QUOTA_FULL) {
		/* Why 552 by default: the virtual agent bounces over-quota
		 * mail (5.2.2) unless virtual_overquota_bounce = no, when it
		 * defers (4.2.2); the SMTP answer gives the outcome the
		 * delivery would have, only earlier. */
		str_appendf(&reply, "%s <%s>: Recipient address rejected: Mailbox full",
		            j->q->bounce ? "552 5.2.2" : "452 4.2.2", s->cur_rcpt);
		log_info("%s[%s]: <%s>: over quota: %s", s->name, s->addr, s->cur_rcpt,
		         str_c(&j->why));
	} else {
		/* The quota is unknown: accept (see the header). */
		log_warning("%s[%s]: mailbox quota check for <%s>: %s; quota unknown, accepted",
		            s->name, s->addr, s->cur_rcpt, str_c(&j->why));
		str_free(&reply);
		smtpd_rcpt_accept(s);
		return;
	}
	smtpd_log_reject(s, "RCPT", str_c(&reply), s->cur_rcpt);
	smtpd_reply_error(s, "%s", str_c(&reply));
	str_free(&reply);
	smtpd_session_resume(s);
}

void smtpd_quota_check(struct smtpd_session *s)
{
	struct quota_job *j;

	if (s->lis->quota == NULL) {
		smtpd_rcpt_accept(s);
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->q = s->lis->quota;
	j->address = xstrdup(s->cur_rcpt);
	j->size = s->size_declared;
	j->verdict = QUOTA_OK;
	str_init(&j->why);
	s->quota_req = table_async_job(s->lis->server->pool, job_run, job_done, job_free, j, s);
}
