/* local_forward.c - mail an alias, .forward or :include: file sends on is
 * re-submitted as a new message (Postfix local(8) forward.c).
 *
 * Used by local_deliver.c: addresses that are not delivered here (other
 * domains, and local addresses reached through an owner or an include
 * file) are collected per (envelope sender, Delivered-To) while one queue
 * recipient is expanded; at the end each group becomes one new queue file
 * through lib/cleanup (as pickup and smtpd write theirs): the same
 * content with "Delivered-To: ADDRESS" put on top, so that mail coming
 * back to the same address is recognised as a loop, the sender kept (or
 * owner-ALIAS), no header or body checks (Postfix applies none to mail it
 * forwards). cleanup wakes qmgr. Each address is logged as Postfix does:
 *   ID: to=<b@example.org>, orig_to=<a@host>, relay=local, ...,
 *       status=sent (forwarded as NEWID)
 *
 * Failure: a new queue file that cannot be written is a deferral of its
 * addresses (4.x.x from cleanup, e.g. 452 4.3.1 for a full disk); the
 * recipient is then retried whole. DSN parameters (ENVID, RET, ORCPT,
 * NOTIFY) are not carried over yet.
 *
 * SECURITY: runs as mail_owner (the agent's identity between deliveries),
 * so the new queue file belongs to the queue owner like any other.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "cleanup/cleanup.h"
#include "local.h"
#include "queue/queue_file.h"

#define FWD_PIECE 65536 /* longest piece of a line handed to cleanup */

void local_forward_add(struct local_outcome *out, const char *sender, const char *delivered,
                       const char *addr, const char *to_logged)
{
	struct local_fwd *f = NULL;

	for (size_t i = 0; i < out->nfwd && f == NULL; i++)
		if (strcmp(out->fwd[i].sender, sender) == 0 &&
		    strcasecmp(out->fwd[i].delivered, delivered) == 0)
			f = &out->fwd[i];
	if (f == NULL) {
		out->fwd = xreallocarray(out->fwd, out->nfwd + 1, sizeof(*out->fwd));
		f = &out->fwd[out->nfwd++];
		memset(f, 0, sizeof(*f));
		f->sender = xstrdup(sender);
		f->delivered = xstrdup(delivered);
	}
	for (size_t i = 0; i < f->rcpts.n; i++)
		if (strcasecmp(f->rcpts.v[i], addr) == 0)
			return;
	strv_add(&f->rcpts, addr);
	strv_add(&f->logged_as, to_logged);
}

void local_forward_free(struct local_outcome *out)
{
	for (size_t i = 0; i < out->nfwd; i++) {
		free(out->fwd[i].sender);
		free(out->fwd[i].delivered);
		strv_free(&out->fwd[i].rcpts);
		strv_free(&out->fwd[i].logged_as);
	}
	free(out->fwd);
	out->fwd = NULL;
	out->nfwd = 0;
}

/* Feed the queue file's content to c line by line. -1 with errno on a
 * read error. */
static int feed(struct cleanup *c, const struct local_message *msg)
{
	char *buf = xmalloc(FWD_PIECE);
	uint64_t pos = 0;
	size_t have = 0;
	int rc = 0;

	while (pos < msg->content_length || have > 0) {
		char *nl;

		if (pos < msg->content_length && have < FWD_PIECE) {
			uint64_t want = msg->content_length - pos;
			ssize_t n;

			if (want > FWD_PIECE - have)
				want = FWD_PIECE - have;
			n = pread(msg->fd, buf + have, (size_t)want,
			          (off_t)(msg->content_offset + pos));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				if (n == 0)
					errno = EIO; /* shorter than the header says */
				rc = -1;
				break;
			}
			pos += (uint64_t)n;
			have += (size_t)n;
		}
		nl = memchr(buf, '\n', have);
		if (nl != NULL) {
			size_t len = (size_t)(nl - buf);

			cleanup_line(c, buf, len, false);
			memmove(buf, nl + 1, have - len - 1);
			have -= len + 1;
		} else if (have == FWD_PIECE || pos >= msg->content_length) {
			/* A piece of a long line, or the last line without LF. */
			cleanup_line(c, buf, have, have == FWD_PIECE && pos < msg->content_length);
			have = 0;
		}
	}
	free(buf);
	return rc;
}

/* The status of a cleanup reply "550 5.7.1 text" (its second word). */
static void reply_status(const char *reply, char dsn[8], const char *fallback)
{
	const char *p = strchr(reply, ' ');
	size_t len = p != NULL ? strcspn(p + 1, " ") : 0;

	if (p != NULL && len >= 5 && len < 8 && (p[1] == '4' || p[1] == '5') && p[2] == '.')
		snprintf(dsn, 8, "%.*s", (int)len, p + 1);
	else
		snprintf(dsn, 8, "%s", fallback);
}

static void flush_one(struct local_agent *la, struct local_message *msg, const char *orig,
                      struct local_outcome *out, const struct local_fwd *f)
{
	struct cleanup_result res;
	struct cleanup *c = NULL;
	char *id = NULL;
	char dsn[8];
	str_t error, line;

	str_init(&error);
	str_init(&line);
	cleanup_result_init(&res);
	if (cleanup_open(la->cleanup, la->qd, CLEANUP_F_NO_CHECKS, &c, &error) < 0) {
		reply_status(str_c(&error), dsn, "4.3.0");
		for (size_t i = 0; i < f->rcpts.n; i++)
			local_part(la, msg, out, f->logged_as.v[i], orig, LOCAL_DEFERRED, dsn,
			           "cannot forward: %s", str_c(&error));
		goto out;
	}
	id = xstrdup(cleanup_id(c));
	cleanup_sender(c, f->sender, NULL, QUEUE_RET_NONE);
	for (size_t i = 0; i < f->rcpts.n; i++)
		cleanup_rcpt(c, f->rcpts.v[i], NULL, 0);
	cleanup_attr(c, QUEUE_ATTR_SERVICE, la->service);
	str_appendf(&line, "Delivered-To: %s", f->delivered);
	cleanup_prepend_header(c, str_c(&line));
	if (feed(c, msg) < 0) {
		int err = errno;

		cleanup_abort(&c);
		for (size_t i = 0; i < f->rcpts.n; i++)
			local_part(la, msg, out, f->logged_as.v[i], orig, LOCAL_DEFERRED, "4.3.0",
			           "cannot forward: error reading queue file %s: %s", msg->queue_id,
			           strerror(err));
		goto out;
	}
	cleanup_finish(&c, &res);
	for (size_t i = 0; i < f->rcpts.n; i++) {
		switch (res.status) {
		case CLEANUP_QUEUED:
		case CLEANUP_DISCARDED:
			local_part(la, msg, out, f->logged_as.v[i], orig, LOCAL_SENT, "2.0.0",
			           "forwarded as %s", id);
			break;
		case CLEANUP_REJECTED:
			reply_status(str_c(&res.reply), dsn, "5.3.0");
			local_part(la, msg, out, f->logged_as.v[i], orig, LOCAL_BOUNCED, dsn,
			           "cannot forward: %s", str_c(&res.reply));
			break;
		case CLEANUP_TEMPFAIL:
			reply_status(str_c(&res.reply), dsn, "4.3.0");
			local_part(la, msg, out, f->logged_as.v[i], orig, LOCAL_DEFERRED, dsn,
			           "cannot forward: %s", str_c(&res.reply));
			break;
		}
	}
out:
	free(id);
	cleanup_result_free(&res);
	str_free(&error);
	str_free(&line);
}

void local_forward_flush(struct local_agent *la, struct local_message *msg, const char *orig,
                         struct local_outcome *out)
{
	for (size_t i = 0; i < out->nfwd; i++)
		flush_one(la, msg, orig, out, &out->fwd[i]);
	if (out->nfwd > 0)
		log_debug(1, "%s: %zu re-submission(s) for %s", msg->queue_id, out->nfwd, orig);
}
