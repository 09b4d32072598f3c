/* mbox.c - Postfix-style message copies and mbox delivery with locking
 * (see mbox.h).
 *
 * Used by server/local for mbox mailboxes, /file/name destinations and
 * command input.
 *
 * Durability (STYLE 18): an append cannot be a rename into place, so the
 * order is: take the locks, remember the length, write everything at the
 * end, fsync, then report success; any failure cuts the file back to the
 * remembered length (ftruncate) before the locks go, so a reader never
 * sees half a message and a retry does not leave a broken one behind.
 *
 * Why both locks by default: mail readers on Linux (mutt, alpine, the
 * c-client, procmail) use fcntl() locks and/or PATH.lock files; Postfix on
 * Linux takes both (mailbox_delivery_lock = fcntl, dotlock). A dot lock
 * older than STALE_LOCK_SECONDS is a crashed writer's and is removed, as
 * Postfix's stale_lock_time (500s).
 *
 * SECURITY: the file is opened with O_NOFOLLOW and checked to be a
 * regular file with one link after the open (fstat on the descriptor, so
 * no race with a rename); the caller runs this as the mailbox owner (or
 * as root for a root-owned spool directory, with chown_to).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/mem.h"
#include "delivery/mbox.h"

#define LOCK_ATTEMPTS 20 /* deliver_lock_attempts */
#define LOCK_DELAY_MS 1000 /* deliver_lock_delay */
#define STALE_LOCK_SECONDS 500 /* stale_lock_time */
#define COPY_BUF 65536

/* ---- the copy ---- */

struct out {
	int fd;
	char buf[COPY_BUF];
	size_t len;
	uint64_t written;
	uint64_t limit;
};

static int out_flush(struct out *o)
{
	if (o->len == 0)
		return 0;
	if (o->limit > 0 && o->written + o->len > o->limit) {
		errno = EFBIG;
		return -1;
	}
	if (fs_write_all(o->fd, o->buf, o->len) < 0)
		return -1;
	o->written += o->len;
	o->len = 0;
	return 0;
}

static int out_put(struct out *o, const char *data, size_t len)
{
	while (len > 0) {
		size_t room = sizeof(o->buf) - o->len, n = len < room ? len : room;

		memcpy(o->buf + o->len, data, n);
		o->len += n;
		data += n;
		len -= n;
		if (o->len == sizeof(o->buf) && out_flush(o) < 0)
			return -1;
	}
	return 0;
}

static int out_str(struct out *o, const char *s)
{
	return out_put(o, s, strlen(s));
}

int mbox_copy_write(int fd, const struct mbox_copy *c, uint64_t *written_r, bool *read_error_r)
{
	struct out *o = xcalloc(1, sizeof(*o));
	char *in = xmalloc(COPY_BUF);
	bool line_start = true;
	int rc = -1;
	str_t head;

	o->fd = fd;
	o->limit = c->limit;
	*read_error_r = false;
	str_init(&head);
	if (c->flags & MBOX_COPY_FROM) {
		time_t now = time(NULL);
		struct tm tm;
		char date[64];

		/* asctime() format, as Postfix: "Thu Jan  1 00:00:00 2025". */
		localtime_r(&now, &tm);
		strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y", &tm);
		str_appendf(&head, "From %s  %s\n",
		            c->sender[0] != '\0' ? c->sender : "MAILER-DAEMON", date);
	}
	if (c->flags & MBOX_COPY_RETURN_PATH)
		str_appendf(&head, "Return-Path: <%s>\n", c->sender);
	if ((c->flags & MBOX_COPY_ORIG_RCPT) && c->orig_rcpt != NULL && c->orig_rcpt[0] != '\0')
		str_appendf(&head, "X-Original-To: %s\n", c->orig_rcpt);
	if ((c->flags & MBOX_COPY_DELIVERED) && c->delivered != NULL)
		str_appendf(&head, "Delivered-To: %s\n", c->delivered);
	if (out_put(o, head.buf, head.len) < 0)
		goto out;
	for (;;) {
		ssize_t n = c->read(c->read_context, in, COPY_BUF);

		if (n < 0) {
			*read_error_r = true;
			goto out;
		}
		if (n == 0)
			break;
		for (ssize_t i = 0; i < n;) {
			const char *nl;
			size_t chunk;

			if (line_start && (c->flags & MBOX_COPY_QUOTE) && in[i] == 'F') {
				/* "From " may straddle two reads: peek at what is
				 * here; a split "From " is rare and checked by
				 * keeping line_start until the bytes arrive. */
				size_t have = (size_t)(n - i);

				if (have < 5 && memcmp(in + i, "From ", have) == 0) {
					/* Not enough bytes: move them to the front
					 * and read more behind them. */
					ssize_t m;

					memmove(in, in + i, have);
					m = c->read(c->read_context, in + have, COPY_BUF - have);
					if (m < 0) {
						*read_error_r = true;
						goto out;
					}
					n = (ssize_t)have + m;
					i = 0;
					if (m == 0 || (size_t)n < 5) {
						if (out_put(o, in, (size_t)n) < 0)
							goto out;
						line_start = false;
						i = n;
						continue;
					}
				}
				if (memcmp(in + i, "From ", 5) == 0 && out_str(o, ">") < 0)
					goto out;
			}
			nl = memchr(in + i, '\n', (size_t)(n - i));
			chunk = nl != NULL ? (size_t)(nl - (in + i)) + 1 : (size_t)(n - i);
			if (out_put(o, in + i, chunk) < 0)
				goto out;
			line_start = nl != NULL;
			i += (ssize_t)chunk;
		}
	}
	if (!line_start && out_str(o, "\n") < 0)
		goto out;
	if ((c->flags & MBOX_COPY_BLANK) && out_str(o, "\n") < 0)
		goto out;
	if (out_flush(o) < 0)
		goto out;
	rc = 0;
out:
	*written_r = o->written;
	{
		int saved = errno;

		free(o);
		free(in);
		str_free(&head);
		errno = saved;
	}
	return rc;
}

/* ---- locking ---- */

int mbox_lock_parse(const char *value, unsigned *mask_r, str_t *why)
{
	unsigned mask = 0;
	const char *p = value;

	while (*p != '\0') {
		size_t len;

		p += strspn(p, " \t,");
		len = strcspn(p, " \t,");
		if (len == 0)
			break;
		if (len == 5 && strncmp(p, "fcntl", 5) == 0)
			mask |= MBOX_LOCK_FCNTL;
		else if (len == 7 && strncmp(p, "dotlock", 7) == 0)
			mask |= MBOX_LOCK_DOTLOCK;
		else {
			str_appendf(why,
			            "mailbox_delivery_lock: unknown or unsupported lock \"%.*s\" "
			            "(expected fcntl, dotlock)",
			            (int)len, p);
			return -1;
		}
		p += len;
	}
	*mask_r = mask;
	return 0;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Make PATH.lock; 0, or -1 with errno (EAGAIN: held by another). */
static int dotlock_take(const char *lock)
{
	for (int i = 0; i < LOCK_ATTEMPTS; i++) {
		struct stat st;
		int fd = open(lock, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);

		if (fd >= 0) {
			close(fd);
			return 0;
		}
		if (errno != EEXIST)
			return -1;
		if (lstat(lock, &st) == 0 && time(NULL) > st.st_mtime + STALE_LOCK_SECONDS) {
			(void)unlink(lock);
			continue;
		}
		if (i + 1 < LOCK_ATTEMPTS)
			sleep_ms(LOCK_DELAY_MS);
	}
	errno = EAGAIN;
	return -1;
}

static int fcntl_take(int fd)
{
	for (int i = 0; i < LOCK_ATTEMPTS; i++) {
		struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};

		if (fcntl(fd, F_SETLK, &fl) == 0)
			return 0;
		if (errno != EAGAIN && errno != EACCES && errno != EINTR)
			return -1;
		if (i + 1 < LOCK_ATTEMPTS)
			sleep_ms(LOCK_DELAY_MS);
	}
	errno = EAGAIN;
	return -1;
}

/* ---- delivery ---- */

static void set_result(struct mbox_result *res, const char *status, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void set_result(struct mbox_result *res, const char *status, const char *fmt, ...)
{
	va_list ap;

	snprintf(res->status, sizeof(res->status), "%s", status);
	str_reset(&res->text);
	va_start(ap, fmt);
	str_vappendf(&res->text, fmt, ap);
	va_end(ap);
}

/* Postfix's mbox_dsn(): the status of a write error. */
static const char *write_status(int err)
{
	if (err == ENOSPC)
		return "4.3.1";
	if (err == EDQUOT || err == EFBIG)
		return "5.2.2";
	return "4.3.0";
}

int mbox_deliver(const struct mbox_request *req, struct mbox_result *res)
{
	char *lock = req->locks & MBOX_LOCK_DOTLOCK ? xasprintf("%s.lock", req->path) : NULL;
	bool locked_dot = false;
	struct mbox_copy copy = req->copy;
	struct stat st;
	off_t length = 0;
	int fd = -1, rc = -1;

	if (lock != NULL) {
		if (dotlock_take(lock) < 0) {
			if (errno == EAGAIN)
				set_result(res, "4.2.0",
				           "unable to lock for exclusive access: %s is held by "
				           "another process",
				           lock);
			else
				set_result(res, "4.2.0", "unable to create lock file %s: %s", lock,
				           strerror(errno));
			goto out;
		}
		locked_dot = true;
	}
	fd = open(req->path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		fd = open(req->path,
		          O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0 && req->chown_to && fchown(fd, req->uid, req->gid) < 0) {
			set_result(res, "4.3.0", "cannot set owner of %s: %s", req->path,
			           strerror(errno));
			(void)unlink(req->path);
			goto out;
		}
	}
	if (fd < 0) {
		if (errno == ELOOP)
			set_result(res, "5.2.0", "cannot open file %s: it is a symbolic link",
			           req->path);
		else
			set_result(res, errno == EAGAIN ? "4.2.0" : "4.3.0",
			           "cannot open file %s: %s", req->path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		set_result(res, "4.3.0", "cannot examine file %s: %s", req->path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
		/* Postfix: "file is not a regular file" / "has too many hard links". */
		set_result(res, "5.2.0",
		           !S_ISREG(st.st_mode) ? "destination %s is not a regular file"
		                                : "destination %s has too many hard links",
		           req->path);
		goto out;
	}
	if ((req->locks & MBOX_LOCK_FCNTL) && fcntl_take(fd) < 0) {
		set_result(res, "4.2.0", "unable to lock for exclusive access: %s: %s", req->path,
		           strerror(errno));
		goto out;
	}
	/* The length under the lock: where this copy starts. */
	if ((length = lseek(fd, 0, SEEK_END)) < 0) {
		set_result(res, "4.3.0", "cannot seek in %s: %s", req->path, strerror(errno));
		goto out;
	}
	if (req->size_limit > 0) {
		if ((uint64_t)length >= req->size_limit) {
			set_result(res, "5.2.2", "error writing message: %s", strerror(EFBIG));
			goto out;
		}
		copy.limit = req->size_limit - (uint64_t)length;
	}
	{
		uint64_t written = 0;
		bool read_error = false;

		if (mbox_copy_write(fd, &copy, &written, &read_error) < 0 || fsync(fd) < 0) {
			int err = errno;

			if (read_error)
				set_result(res, "4.3.0", "error reading message: %s",
				           strerror(err));
			else
				set_result(res, write_status(err), "error writing message: %s",
				           strerror(err));
			if (ftruncate(fd, length) < 0 || fsync(fd) < 0)
				set_result(res, "4.3.0",
				           "error writing message: %s; and cannot truncate %s back "
				           "to its old size: %s",
				           strerror(err), req->path, strerror(errno));
			goto out;
		}
	}
	set_result(res, "2.0.0", "delivered to mailbox");
	rc = 0;
out:
	if (fd >= 0)
		close(fd); /* releases the fcntl lock */
	if (locked_dot)
		(void)unlink(lock);
	free(lock);
	return rc;
}
