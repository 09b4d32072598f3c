/* qmgr_resolve.c - the resolver thread of qmgr.
 *
 * Used by qmgr_message.c. lib/delivery/resolve.c answers "where does this
 * address go" with synchronous table lookups (SQL, LDAP); run in the event
 * loop, a slow database would stop every delivery. So one thread owns a
 * resolve context (its own table handles: nothing is shared with the
 * loop) and works through a queue of jobs; answers come back through a
 * pipe the loop watches, and are handled in the loop, in order.
 *
 * A job holds a pointer to its message: a message is never freed while it
 * has recipients being resolved (qmgr_message.c keeps it until every
 * recipient is settled).
 *
 * Messages received with receive_override_options = no_address_mappings
 * (the re-injection after a content filter that saw the expanded
 * recipients) are resolved without virtual alias expansion: a second
 * context whose configuration has an empty virtual_alias_maps, opened by
 * the thread the first time such a message comes. One that also goes to
 * a content filter is not resolved at all: the filter gets the address as
 * it is, as Postfix's qmgr does (no transport lookup for filtered mail).
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "conf/config.h"
#include "daemon/daemon.h"
#include "qmgr.h"

enum resolve_mode {
	RESOLVE_FULL, /* alias expansion, class, transport */
	RESOLVE_NO_ALIASES, /* no_address_mappings */
	RESOLVE_NONE, /* no_address_mappings and a content filter */
};

struct resolve_job {
	struct qmgr_msg *msg;
	size_t rcpt;
	enum resolve_mode mode;
	char *address;
	struct resolve_result res;
	struct resolve_job *next;
};

struct job_queue {
	struct resolve_job *head, *tail;
};

struct qmgr_resolver {
	struct qmgr *q;
	struct resolve_ctx *ctx;
	/* Without virtual_alias_maps: its own configuration copy, opened in
	 * the thread on first use (noalias_failed: could not, said so). */
	struct config *noalias_cfg;
	struct resolve_ctx *noalias_ctx;
	bool noalias_failed;
	char *config_dir;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct job_queue todo, done;
	bool stop;
	int pipe_r, pipe_w;
	struct event *pipe_ev;
};

static void queue_push(struct job_queue *jq, struct resolve_job *job)
{
	job->next = NULL;
	if (jq->tail != NULL)
		jq->tail->next = job;
	else
		jq->head = job;
	jq->tail = job;
}

static struct resolve_job *queue_take_all(struct job_queue *jq)
{
	struct resolve_job *all = jq->head;

	jq->head = jq->tail = NULL;
	return all;
}

/* The address as its own final, unresolved (RESOLVE_NONE). */
static void unresolved_final(const char *address, struct resolve_result *res)
{
	res->status = RESOLVE_OK;
	res->finals = xcalloc(1, sizeof(*res->finals));
	res->nfinals = 1;
	res->finals[0].address = xstrdup(address);
	res->finals[0].class = RESOLVE_CLASS_DEFAULT;
	res->finals[0].deliverable = true;
	res->finals[0].quota = -1;
}

/* In the thread: answer one job. */
static void resolve_job(struct qmgr_resolver *r, struct resolve_job *job)
{
	struct resolve_ctx *ctx = r->ctx;

	if (job->mode == RESOLVE_NONE) {
		unresolved_final(job->address, &job->res);
		return;
	}
	if (job->mode == RESOLVE_NO_ALIASES) {
		if (r->noalias_ctx == NULL && !r->noalias_failed) {
			str_t error;

			str_init(&error);
			if (resolve_open(r->noalias_cfg, r->config_dir, &r->noalias_ctx, &error) <
			    0) {
				log_warning("no_address_mappings: %s", str_c(&error));
				r->noalias_failed = true;
			}
			str_free(&error);
		}
		if (r->noalias_ctx == NULL) {
			job->res.status = RESOLVE_TEMPFAIL;
			str_append(&job->res.error,
			           "cannot resolve without virtual alias expansion: see the log");
			return;
		}
		ctx = r->noalias_ctx;
	}
	/* msg->sender does not change while the message is in memory. */
	resolve_set_sender(ctx, job->msg->sender);
	(void)resolve_recipient(ctx, job->address, &job->res);
}

static void *resolver_main(void *arg)
{
	struct qmgr_resolver *r = arg;

	pthread_mutex_lock(&r->lock);
	for (;;) {
		struct resolve_job *job;
		bool was_empty;

		while (!r->stop && r->todo.head == NULL)
			pthread_cond_wait(&r->wake, &r->lock);
		if (r->stop)
			break;
		job = r->todo.head;
		r->todo.head = job->next;
		if (r->todo.head == NULL)
			r->todo.tail = NULL;
		pthread_mutex_unlock(&r->lock);

		resolve_job(r, job);

		pthread_mutex_lock(&r->lock);
		was_empty = r->done.head == NULL;
		queue_push(&r->done, job);
		/* One byte per batch is enough: the loop takes every answer. */
		if (was_empty && write(r->pipe_w, "x", 1) < 0 && errno != EAGAIN)
			log_warning("resolver: cannot wake the queue manager: %m");
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

static void on_answers(evutil_socket_t fd, short what, void *arg)
{
	struct qmgr_resolver *r = arg;
	struct resolve_job *job, *next;
	char buf[64];

	(void)what;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	pthread_mutex_lock(&r->lock);
	job = queue_take_all(&r->done);
	pthread_mutex_unlock(&r->lock);
	for (; job != NULL; job = next) {
		next = job->next;
		qmgr_message_resolved(job->msg, job->rcpt, &job->res);
		resolve_result_free(&job->res);
		free(job->address);
		free(job);
	}
}

int qmgr_resolver_start(struct qmgr *q, str_t *error)
{
	struct qmgr_resolver *r = xcalloc(1, sizeof(*r));
	int fds[2];

	r->q = q;
	if (resolve_open(q->cfg, q->d->config_dir, &r->ctx, error) < 0) {
		free(r);
		return -1;
	}
	r->config_dir = xstrdup(q->d->config_dir);
	r->noalias_cfg = config_clone(q->cfg);
	config_set(r->noalias_cfg, "virtual_alias_maps", "",
	           "receive_override_options = no_address_mappings");
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) {
		str_appendf(error, "pipe: %s", strerror(errno));
		resolve_close(&r->ctx);
		config_destroy(&r->noalias_cfg);
		free(r->config_dir);
		free(r);
		return -1;
	}
	r->pipe_r = fds[0];
	r->pipe_w = fds[1];
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->wake, NULL);
	r->pipe_ev = event_new(q->base, r->pipe_r, EV_READ | EV_PERSIST, on_answers, r);
	event_add(r->pipe_ev, NULL);
	if (pthread_create(&r->thread, NULL, resolver_main, r) != 0) {
		str_append(error, "cannot start the resolver thread");
		event_free(r->pipe_ev);
		close(r->pipe_r);
		close(r->pipe_w);
		resolve_close(&r->ctx);
		config_destroy(&r->noalias_cfg);
		free(r->config_dir);
		free(r);
		return -1;
	}
	q->resolver = r;
	return 0;
}

void qmgr_resolver_submit(struct qmgr_resolver *r, struct qmgr_msg *msg, size_t rcpt)
{
	struct resolve_job *job = xcalloc(1, sizeof(*job));

	job->msg = msg;
	job->rcpt = rcpt;
	job->address = xstrdup(msg->rcpts[rcpt].address);
	job->mode = !msg->no_address_mappings       ? RESOLVE_FULL
	            : msg->filter_transport != NULL ? RESOLVE_NONE
	                                            : RESOLVE_NO_ALIASES;
	resolve_result_init(&job->res);
	pthread_mutex_lock(&r->lock);
	queue_push(&r->todo, job);
	pthread_cond_signal(&r->wake);
	pthread_mutex_unlock(&r->lock);
}

static void free_jobs(struct resolve_job *job)
{
	while (job != NULL) {
		struct resolve_job *next = job->next;

		resolve_result_free(&job->res);
		free(job->address);
		free(job);
		job = next;
	}
}

void qmgr_resolver_stop(struct qmgr_resolver **rp)
{
	struct qmgr_resolver *r = *rp;

	if (r == NULL)
		return;
	pthread_mutex_lock(&r->lock);
	r->stop = true;
	pthread_cond_signal(&r->wake);
	pthread_mutex_unlock(&r->lock);
	pthread_join(r->thread, NULL);
	free_jobs(queue_take_all(&r->todo));
	free_jobs(queue_take_all(&r->done));
	event_free(r->pipe_ev);
	close(r->pipe_r);
	close(r->pipe_w);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->wake);
	resolve_close(&r->ctx);
	resolve_close(&r->noalias_ctx);
	config_destroy(&r->noalias_cfg);
	free(r->config_dir);
	free(r);
	*rp = NULL;
}
