/* qmgr.c - the queue manager: main, recovery, scans and wake-ups.
 *
 * One process (master.cf: "qmgr unix n - n 300 1 qmgr"), one libevent
 * loop plus the resolver thread (qmgr_resolve.c), on the event-server
 * skeleton (event_server.h: trigger mode, long-lived, runs as
 * mail_owner). It owns the queue:
 *
 *   - at start, every message left in active/ by a crash or kill goes
 *     back to incoming/ (its recipients already done are skipped: the
 *     queue file records them), then incoming/ and deferred/ are scanned;
 *   - incoming/ is scanned when smtpd, pickup or `postern queue` poke
 *     public/qmgr (trigger.h), and every min(wakeup, 60) seconds in case a
 *     poke was lost;
 *   - deferred/ is scanned every queue_run_delay: a file whose mtime (the
 *     next retry, set by qmgr_message.c) has passed goes to active/;
 *   - at most qmgr_message_active_limit messages are in memory; a scan
 *     cut short there resumes when a message completes.
 *
 * hold/ is never touched: the administrator releases held mail.
 *
 * One queue manager per queue: each holds an flock on the active/
 * directory. At `postern reload` master starts a new qmgr and tells the
 * old one to drain (SIGUSR1): it takes no new message, finishes those in
 * memory (at most QMGR_DRAIN_MAX seconds) and exits; the new one waits for
 * the lock before it recovers active/ and scans. Why: without the lock
 * the new qmgr would move the messages the old one is still delivering
 * back to incoming/ and deliver them a second time.
 */
#include <errno.h>
#include <fcntl.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "message/bounce.h"
#include "conf/config.h"
#include "daemon/daemon.h"
#include "daemon/event_server.h"
#include "conf/mastercf.h"
#include "daemon/trigger.h"
#include "qmgr.h"
#include "table/table_cache.h"

#define INCOMING_SCAN_MAX 60 /* seconds between safety scans of incoming */
#define QMGR_DRAIN_MAX 60 /* seconds a draining qmgr may take to finish */

/* May this qmgr take messages now? */
static bool may_take(const struct qmgr *q)
{
	return q->owns_queue && !q->draining && !q->stopping;
}

static void scan_incoming(struct qmgr *q)
{
	struct queue_scan *scan;
	const char *id;
	str_t error;
	int r;

	str_init(&error);
	if (queue_scan_open(q->qd, QUEUE_INCOMING, QUEUE_SCAN_ORDERED, &scan, &error) < 0) {
		log_warning("%s", str_c(&error));
		str_free(&error);
		return;
	}
	while (may_take(q) && (r = queue_scan_next(scan, &id, &error)) != 0) {
		if (r < 0) {
			log_warning("%s", str_c(&error));
			str_reset(&error);
			continue;
		}
		if (q->nmsgs >= q->active_limit) {
			q->incoming_cut = true;
			break;
		}
		qmgr_message_activate(q, id, QUEUE_INCOMING);
	}
	queue_scan_close(&scan);
	str_free(&error);
}

static void scan_deferred(struct qmgr *q)
{
	struct queue_scan *scan;
	const char *id;
	time_t now = time(NULL);
	str_t error, path;
	struct stat st;
	int r;

	str_init(&error);
	str_init(&path);
	if (queue_scan_open(q->qd, QUEUE_DEFERRED, 0, &scan, &error) < 0) {
		log_warning("%s", str_c(&error));
		goto out;
	}
	while (may_take(q) && (r = queue_scan_next(scan, &id, &error)) != 0) {
		if (r < 0) {
			log_warning("%s", str_c(&error));
			str_reset(&error);
			continue;
		}
		if (q->nmsgs >= q->active_limit)
			break; /* the next run takes the rest */
		if (queue_dir_locate(q->qd, QUEUE_DEFERRED, id, &path, &error) != 1 ||
		    stat(str_c(&path), &st) < 0 || st.st_mtime > now) {
			str_reset(&error);
			continue;
		}
		qmgr_message_activate(q, id, QUEUE_DEFERRED);
	}
	queue_scan_close(&scan);
out:
	str_free(&error);
	str_free(&path);
}

static void on_incoming(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	scan_incoming(arg);
}

void qmgr_schedule_lookup_retry(struct qmgr *q, time_t delay)
{
	struct timeval tv = {.tv_sec = delay + 1, .tv_usec = 0};
	time_t due = time(NULL) + delay;

	/* One pending scan at a time; a deferral due after it fires is
	 * remembered in lookup_retry_until and on_lookup_retry() scans
	 * again for it. The extra second: the deferred scan takes files
	 * whose mtime has passed. */
	if (due > q->lookup_retry_until)
		q->lookup_retry_until = due;
	if (!q->stopping && !evtimer_pending(q->lookup_retry_ev, NULL))
		evtimer_add(q->lookup_retry_ev, &tv);
}

static void on_lookup_retry(evutil_socket_t fd, short what, void *arg)
{
	struct qmgr *q = arg;
	time_t now = time(NULL);

	(void)fd;
	(void)what;
	scan_deferred(q);
	if (q->lookup_retry_until >= now && !q->stopping) {
		time_t left = q->lookup_retry_until - now;
		struct timeval tv = {
		        .tv_sec = (left < QMGR_LOOKUP_RETRY ? left : QMGR_LOOKUP_RETRY) + 1,
		        .tv_usec = 0};

		evtimer_add(q->lookup_retry_ev, &tv);
	}
}

void qmgr_schedule_incoming_scan(struct qmgr *q)
{
	if (may_take(q))
		event_active(q->incoming_ev, 0, 0);
}

void qmgr_message_gone(struct qmgr *q)
{
	if (q->draining && q->nmsgs == 0) {
		log_info("drained: every message in progress is done");
		daemon_stop(q->d, 0);
	}
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct qmgr *q = arg;

	(void)fd;
	(void)what;
	log_warning("drain: %zu message%s still in progress after %d s: the next queue "
	            "manager takes them over",
	            q->nmsgs, q->nmsgs == 1 ? "" : "s", QMGR_DRAIN_MAX);
	daemon_stop(q->d, 0);
}

/* SIGUSR1 from master at a reload, or master gone. */
static void on_drain(struct event_server *es, void *ctx)
{
	struct qmgr *q = ctx;
	struct timeval tv = {QMGR_DRAIN_MAX, 0};

	(void)es;
	if (q->draining)
		return;
	q->draining = true;
	log_info("draining: %zu message%s in progress", q->nmsgs, q->nmsgs == 1 ? "" : "s");
	if (q->nmsgs == 0) {
		daemon_stop(q->d, 0);
		return;
	}
	q->drain_timer = evtimer_new(q->base, on_drain_timeout, q);
	evtimer_add(q->drain_timer, &tv);
}

static void on_trigger(struct event_server *es, unsigned mask, void *ctx)
{
	(void)es;
	(void)mask;
	qmgr_schedule_incoming_scan(ctx);
}

static void on_deferred_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	scan_deferred(arg);
}

/* Messages a crash or kill left in active/ start over from incoming/. */
static void recover_active(struct qmgr *q)
{
	struct queue_scan *scan;
	const char *id;
	unsigned long n = 0;
	str_t error;
	int r;

	str_init(&error);
	if (queue_scan_open(q->qd, QUEUE_ACTIVE, 0, &scan, &error) < 0) {
		log_warning("%s", str_c(&error));
		str_free(&error);
		return;
	}
	while ((r = queue_scan_next(scan, &id, &error)) != 0) {
		if (r > 0 && queue_dir_move(q->qd, id, QUEUE_ACTIVE, QUEUE_INCOMING, &error) == 0)
			n++;
		else if (error.len > 0)
			log_warning("%s", str_c(&error));
		str_reset(&error);
	}
	queue_scan_close(&scan);
	if (n > 0)
		log_info("recovered %lu message%s from the active queue", n, n == 1 ? "" : "s");
	str_free(&error);
}

/* Take the queue: the lock first (a draining predecessor may still
 * hold it: try again every second), then recovery and the first scans. */
static void take_queue(struct qmgr *q)
{
	struct timeval tv = {1, 0};

	if (flock(q->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		static bool said;

		if (errno != EWOULDBLOCK)
			log_fatal("lock %s/active: %m", queue_dir_root(q->qd));
		if (!said)
			log_info("waiting for the queue manager before me to finish");
		said = true;
		evtimer_add(q->lock_timer, &tv);
		return;
	}
	q->owns_queue = true;
	recover_active(q);
	scan_incoming(q);
	scan_deferred(q);
}

static void on_lock_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	take_queue(arg);
}

static void on_stop(struct daemon *d, void *ctx)
{
	struct qmgr *q = ctx;

	(void)d;
	q->stopping = true;
}

static void settings(struct qmgr *q)
{
	struct config *cfg = q->cfg;
	unsigned mask = 0;
	str_t error;

	str_init(&error);
	if (queue_dir_hash_names(config_str(cfg, "hash_queue_names"), &mask, &error) < 0)
		log_fatal("hash_queue_names: %s", str_c(&error));
	q->qd = queue_dir_new(config_str(cfg, "queue_directory"),
	                      (unsigned)config_int(cfg, "hash_queue_depth"), mask);
	if (queue_dir_create(q->qd, (uid_t)-1, (gid_t)-1, &error) < 0)
		log_fatal("%s", str_c(&error));
	q->active_limit = (size_t)config_int(cfg, "qmgr_message_active_limit");
	q->min_backoff = (time_t)config_time(cfg, "minimal_backoff_time");
	q->max_backoff = (time_t)config_time(cfg, "maximal_backoff_time");
	q->queue_lifetime = (time_t)config_time(cfg, "maximal_queue_lifetime");
	q->bounce_lifetime = (time_t)config_time(cfg, "bounce_queue_lifetime");
	q->delay_warning = (time_t)config_time(cfg, "delay_warning_time");
	q->default_concurrency = (unsigned)config_int(cfg, "default_destination_concurrency_limit");
	q->default_rcpt_limit = (unsigned)config_int(cfg, "default_destination_recipient_limit");
	if (q->max_backoff < q->min_backoff)
		q->max_backoff = q->min_backoff;
	q->private_dir = xasprintf("%s/private", queue_dir_root(q->qd));
	if (bounce_settings_new(cfg, &q->bounce, &error) < 0)
		log_fatal("%s", str_c(&error));
	str_free(&error);
}

/* After the privilege drop: the queue, timers, the resolver, the lock. */
static void qmgr_init(struct event_server *es, void *ctx)
{
	struct qmgr *q = ctx;
	struct daemon *d = event_server_daemon(es);
	const struct master_service *svc = d->service;
	struct timeval tv;
	unsigned wakeup = 300;
	str_t error;
	char *share_path;
	const char *why;

	str_init(&error);
	q->d = d;
	q->cfg = d->cfg;
	q->base = d->base;
	TAILQ_INIT(&q->msgs);
	q->active_ids = hash_new(NULL);
	settings(q);
	if (svc == NULL)
		svc = mastercf_find(d->master, "qmgr", NULL);
	if (svc != NULL && svc->wakeup > 0)
		wakeup = svc->wakeup;
	q->dests = qmgr_dests_new();
	/* What smtpd looked up is what qmgr resolves: in a database outage
	 * its answers keep mail moving (table_shared.h). */
	share_path = xasprintf("%s/pid", config_str(q->cfg, "queue_directory"));
	if (table_cache_share_process(q->cfg, share_path, &why) < 0)
		log_fatal("%s", why);
	free(share_path);
	if (qmgr_resolver_start(q, &error) < 0)
		log_fatal("%s", str_c(&error));
	q->incoming_ev = event_new(q->base, -1, 0, on_incoming, q);
	q->incoming_timer = event_new(q->base, -1, EV_PERSIST, on_incoming, q);
	tv.tv_sec = wakeup < INCOMING_SCAN_MAX ? wakeup : INCOMING_SCAN_MAX;
	tv.tv_usec = 0;
	event_add(q->incoming_timer, &tv);
	q->deferred_timer = event_new(q->base, -1, EV_PERSIST, on_deferred_timer, q);
	q->lookup_retry_ev = evtimer_new(q->base, on_lookup_retry, q);
	tv.tv_sec = (time_t)config_time(q->cfg, "queue_run_delay");
	if (tv.tv_sec < 1)
		tv.tv_sec = 1;
	event_add(q->deferred_timer, &tv);
	{
		char *active = xasprintf("%s/active", queue_dir_root(q->qd));

		q->lock_fd = open(active, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (q->lock_fd < 0)
			log_fatal("open %s: %m", active);
		free(active);
	}
	q->lock_timer = evtimer_new(q->base, on_lock_timer, q);
	log_info("starting: queue %s, active limit %zu", queue_dir_root(q->qd), q->active_limit);
	take_queue(q);
	str_free(&error);
}

static void qmgr_finish(struct event_server *es, void *ctx)
{
	struct qmgr *q = ctx;

	(void)es;
	q->stopping = true;
	qmgr_resolver_stop(&q->resolver);
	hash_destroy(&q->dests);
	while (!TAILQ_EMPTY(&q->msgs)) {
		struct qmgr_msg *msg = TAILQ_FIRST(&q->msgs);

		TAILQ_REMOVE(&q->msgs, msg, link);
		qmgr_message_free(msg);
	}
	hash_destroy(&q->active_ids);
	event_free(q->incoming_ev);
	event_free(q->incoming_timer);
	event_free(q->deferred_timer);
	event_free(q->lookup_retry_ev);
	event_free(q->lock_timer);
	if (q->drain_timer != NULL)
		event_free(q->drain_timer);
	close(q->lock_fd);
	bounce_settings_destroy(&q->bounce);
	queue_dir_destroy(&q->qd);
	free(q->private_dir);
}

int main(int argc, char **argv)
{
	static struct qmgr q;
	static const struct event_server_spec spec = {
	        .daemon = {.program = "qmgr"},
	        .mode = EVENT_SERVER_TRIGGER,
	        .default_socket = "public/qmgr",
	        .long_lived = true,
	        .init = qmgr_init,
	        .on_trigger = on_trigger,
	        .on_stop = on_stop,
	        .on_drain = on_drain,
	        .finish = qmgr_finish,
	        .ctx = &q,
	};

	return event_server_main(&spec, argc, argv);
}
