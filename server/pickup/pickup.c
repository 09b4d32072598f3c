/* pickup.c - the pickup daemon: moves locally submitted mail from the
 * maildrop directory into the queue (Postfix pickup(8)).
 *
 * `pickup -c DIR [-v] [-e] [-s pickup]`: an event server
 * (lib/daemon/event_server.h) run by master, or by hand for debugging.
 * master (or the skeleton, started by hand as root) creates
 * queue_directory/maildrop (1730 mail_owner:setgid_group, see
 * maildrop.h) and pickup listens on queue_directory/public/pickup: a connection
 * there is a wake-up from sendmail. It also scans maildrop/ at start and
 * every `wakeup` seconds (master.cf pickup line, 60 when absent), so a
 * lost wake-up only delays a message.
 *
 * For each maildrop file: validate it (maildrop.h), hand the envelope and
 * the content to cleanup (cleanup.h, CLEANUP_F_LOCAL unless sendmail -G
 * said the mail is relayed, plus CLEANUP_F_EXTRACT_RCPT for sendmail -t;
 * cleanup applies pickup's content_filter and receive_override_options), log "ID: uid=N from=<sender>"
 * as Postfix's pickup does, and remove the maildrop file only after
 * cleanup_finish() said CLEANUP_QUEUED or CLEANUP_DISCARDED. Why in that
 * order: a crash between the queue commit and the unlink delivers the
 * message twice; the other order could lose it.
 *
 * Failure handling: a file that cannot be read now, or a cleanup
 * TEMPFAIL (disk full, a table down), stays in maildrop/ for the next
 * scan. A corrupt file, one over message_size_limit, or one cleanup
 * REJECTS is moved to corrupt/ with a log line saying why; returning a
 * reject to the sender as a bounce is not done yet: bounce.c quotes a queue
 * file, and a rejected message never became one. A symbolic link, a non-regular file or a file with
 * several hard links is removed with a warning and never read.
 *
 * SECURITY: every maildrop file is written by the setgid postdrop
 * helper (only it, mail_owner and root can create files in maildrop/)
 * with content from an arbitrary local user: pickup opens it without
 * following links (O_NOFOLLOW, O_NONBLOCK), checks it is a regular file
 * with one link, reads everything through the bounded reader, and takes
 * "who submitted it" from the submit_uid record postdrop wrote (postdrop
 * drops any the user supplied; the file's owner says nothing once files
 * may come from root or mail_owner on a user's behalf). A file without
 * one did not come through postdrop and is moved aside. Files are mode
 * 0644, so pickup runs as mail_owner like any other service (master.cf
 * unpriv column; started by hand as root, the skeleton drops to
 * mail_owner before pickup_init runs).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/str.h"
#include "base/strv.h"
#include "cleanup/cleanup.h"
#include "conf/config.h"
#include "daemon/daemon.h"
#include "daemon/event_server.h"
#include "queue/maildrop.h"
#include "conf/mastercf.h"
#include "queue/queue_dir.h"
#include "queue/queue_file.h"
#include "queue/queue_id.h"
#include "daemon/trigger.h"

/* Default scan interval when master.cf has no pickup line. */
#define PICKUP_WAKEUP_DEFAULT 60
/* A writer's temporary file this old belongs to a sendmail that died. */
#define PICKUP_TEMP_MAX_AGE (2 * 86400)
/* Content is read in pieces of this size. */
#define PICKUP_READ_SIZE 65536

struct pickup {
	struct daemon *d;
	struct config *cfg;
	struct queue_dir *qd;
	struct cleanup_settings *cleanup;
	char *maildrop_dir;
	uint64_t size_limit;
	uint64_t queue_minfree;
	size_t line_limit;
	bool append_at_myorigin, append_dot_mydomain;
	const char *myorigin, *mydomain, *myhostname, *mail_name;
	struct event *timer_ev;
};

/* Outcome of one file. */
enum pickup_result {
	PICKUP_DONE, /* queued or discarded: file removed */
	PICKUP_RETRY, /* left for the next scan */
	PICKUP_ASIDE, /* moved to corrupt/ */
};

/* ---- Addresses ---- */

/* Qualify an envelope address the way Postfix's trivial-rewrite does for
 * local submissions: "user" gets @$myorigin (append_at_myorigin), and
 * "user@host" gets .$mydomain (append_dot_mydomain). "" stays the null
 * sender. */
static void qualify(const struct pickup *p, const char *addr, str_t *out)
{
	const char *at = strrchr(addr, '@');

	str_set(out, addr);
	if (addr[0] == '\0')
		return;
	if (at == NULL) {
		if (p->append_at_myorigin && p->myorigin[0] != '\0')
			str_appendf(out, "@%s", p->myorigin);
		return;
	}
	if (p->append_dot_mydomain && p->mydomain[0] != '\0' && at[1] != '\0' && at[1] != '[' &&
	    strchr(at + 1, '.') == NULL)
		str_appendf(out, ".%s", p->mydomain);
}

/* ---- Moving files aside ---- */

/* Move a bad maildrop file to corrupt/ under a fresh queue ID (a
 * maildrop name is whatever the user chose; the ID cannot clash and is
 * safe in a path), or remove it when that fails. Logs why. */
static void move_aside(struct pickup *p, const char *name, const char *path, const char *why)
{
	char id[QUEUE_ID_SIZE];
	char *to;

	queue_id_generate(id, NULL);
	to = xasprintf("%s/%s/%s", queue_dir_root(p->qd), queue_name_str(QUEUE_CORRUPT), id);
	if (rename(path, to) == 0) {
		log_warning("maildrop/%s: %s: moved to %s/%s", name, why,
		            queue_name_str(QUEUE_CORRUPT), id);
	} else if (unlink(path) == 0) {
		log_warning("maildrop/%s: %s: removed (cannot move it to %s/: %m)", name, why,
		            queue_name_str(QUEUE_CORRUPT));
	} else {
		log_warning("maildrop/%s: %s: cannot move or remove it: %m", name, why);
	}
	free(to);
}

/* ---- One file ---- */

/* The submitting uid postdrop recorded: 0, or -1 with *why_r set. */
static int submit_uid(const struct maildrop *m, uid_t *uid_r, const char **why_r)
{
	const char *value = maildrop_attr(m, MAILDROP_ATTR_SUBMIT_UID);
	unsigned long long v = 0;

	if (value == NULL) {
		*why_r = "no submit_uid record: not written by postdrop";
		return -1;
	}
	/* At most 10 digits: a 32-bit uid, never (uid_t)-1. */
	if (value[0] == '\0' || strlen(value) > 10 ||
	    strspn(value, "0123456789") != strlen(value)) {
		*why_r = "bad submit_uid record: expected a decimal uid";
		return -1;
	}
	for (const char *d = value; *d != '\0'; d++)
		v = v * 10 + (unsigned long long)(*d - '0');
	if (v >= 0xffffffffULL) {
		*why_r = "bad submit_uid record: uid out of range";
		return -1;
	}
	*uid_r = (uid_t)v;
	return 0;
}

/* Feed the content to cleanup line by line: lines without their LF,
 * pieces of line_length_limit with more = true for longer ones.
 * MAILDROP_OK, or the reader's error status with error filled. */
static enum maildrop_status feed_content(struct pickup *p, struct maildrop *m, struct cleanup *c,
                                         str_t *error)
{
	char *buf = xmalloc(PICKUP_READ_SIZE);
	str_t line;
	ssize_t n;

	str_init(&line);
	while ((n = maildrop_read_content(m, buf, PICKUP_READ_SIZE, error)) > 0) {
		const char *s = buf, *end = buf + n;

		while (s < end) {
			const char *lf = memchr(s, '\n', (size_t)(end - s));
			const char *stop = lf != NULL ? lf : end;
			size_t take = (size_t)(stop - s);

			/* Pieces of a long line: more = true for all but the last. */
			while (line.len + take > p->line_limit) {
				size_t room = p->line_limit - line.len;

				str_append_n(&line, s, room);
				cleanup_line(c, line.buf, line.len, true);
				str_reset(&line);
				s += room;
				take -= room;
			}
			str_append_n(&line, s, take);
			s += take;
			if (lf != NULL) {
				cleanup_line(c, line.buf, line.len, false);
				str_reset(&line);
				s = lf + 1;
			}
		}
	}
	if (n == 0 && line.len > 0) /* a last line without LF */
		cleanup_line(c, line.buf, line.len, false);
	str_free(&line);
	free(buf);
	return n == 0 ? MAILDROP_OK : (enum maildrop_status)n;
}

static void received_header(struct pickup *p, struct cleanup *c, uid_t uid, str_t *out)
{
	char date[64];
	time_t now = time(NULL);
	struct tm tm;

	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z (%Z)", &tm);
	str_reset(out);
	str_appendf(out, "Received: by %s (%s, from userid %lu) id %s; %s", p->myhostname,
	            p->mail_name, (unsigned long)uid, cleanup_id(c), date);
}

static enum pickup_result pickup_file(struct pickup *p, const char *name)
{
	char *path = xasprintf("%s/%s", p->maildrop_dir, name);
	struct maildrop *m = NULL;
	struct cleanup *c = NULL;
	struct cleanup_result res;
	enum pickup_result result = PICKUP_RETRY;
	enum maildrop_status status;
	const char *value, *why;
	uid_t uid = (uid_t)-1;
	struct stat st;
	str_t error, addr;
	unsigned flags = CLEANUP_F_LOCAL | CLEANUP_F_BARE_LF_OK;
	int fd;

	str_init(&error);
	str_init(&addr);
	cleanup_result_init(&res);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ELOOP) {
			log_warning("maildrop/%s: symbolic link: removed", name);
			(void)unlink(path);
			result = PICKUP_ASIDE;
		} else if (errno != ENOENT) {
			log_warning("maildrop/%s: open: %m", name);
		}
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		log_warning("maildrop/%s: fstat: %m", name);
		goto out;
	}
	/* Why these checks: any user can put anything here. A FIFO would
	 * hang us, a hard link to another user's file would submit it under
	 * that user's uid. */
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
		log_warning("maildrop/%s: %s: removed", name,
		            !S_ISREG(st.st_mode) ? "not a regular file"
		                                 : "more than one hard link");
		if (S_ISDIR(st.st_mode) ? rmdir(path) < 0 : unlink(path) < 0)
			log_warning("maildrop/%s: remove: %m", name);
		result = PICKUP_ASIDE;
		goto out;
	}
	status = maildrop_open_fd(fd, p->size_limit, &m, &error);
	if (status == MAILDROP_ERROR) {
		log_warning("maildrop/%s: %s", name, str_c(&error));
		goto out;
	}
	if (status == MAILDROP_CORRUPT) {
		move_aside(p, name, path, str_c(&error));
		result = PICKUP_ASIDE;
		goto out;
	}
	if (status == MAILDROP_TOO_BIG) {
		value = maildrop_attr(m, MAILDROP_ATTR_SUBMIT_UID);
		log_warning("maildrop/%s: reject: message file too big (%llu bytes, "
		            "message_size_limit %llu); from=<%s>, uid=%s",
		            name, (unsigned long long)maildrop_content_size(m),
		            (unsigned long long)p->size_limit, maildrop_sender(m),
		            value != NULL ? value : "unknown");
		move_aside(p, name, path, "message file too big");
		result = PICKUP_ASIDE;
		goto out;
	}
	if (submit_uid(m, &uid, &why) < 0) {
		move_aside(p, name, path, why);
		result = PICKUP_ASIDE;
		goto out;
	}

	value = maildrop_attr(m, MAILDROP_ATTR_EXTRACT_RCPT);
	if (value != NULL && strcmp(value, "yes") == 0)
		flags |= CLEANUP_F_EXTRACT_RCPT;
	/* sendmail -G: mail relayed by a program (a content filter), not
	 * written by a local user: headers are left as they are. */
	value = maildrop_attr(m, MAILDROP_ATTR_REWRITE_CONTEXT);
	if (value != NULL && strcmp(value, "remote") == 0)
		flags &= ~(unsigned)CLEANUP_F_LOCAL;
	if (cleanup_open(p->cleanup, p->qd, flags, &c, &error) < 0) {
		log_warning("maildrop/%s: %s", name, str_c(&error));
		goto out;
	}
	/* Postfix's pickup log line: the uid postdrop vouches for and the
	 * sender as submitted. */
	log_info("%s: uid=%lu from=<%s>", cleanup_id(c), (unsigned long)uid, maildrop_sender(m));
	qualify(p, maildrop_sender(m), &addr);
	cleanup_sender(c, addr.buf, NULL, QUEUE_RET_NONE);
	for (size_t i = 0; i < maildrop_rcpt_count(m); i++) {
		qualify(p, maildrop_rcpt(m, i), &addr);
		cleanup_rcpt(c, addr.buf, NULL, 0);
	}
	str_reset(&addr);
	str_appendf(&addr, "%lu", (unsigned long)uid);
	cleanup_attr(c, MAILDROP_ATTR_SUBMIT_UID, addr.buf);
	cleanup_attr(c, QUEUE_ATTR_SERVICE, "pickup");
	value = maildrop_attr(m, MAILDROP_ATTR_FULL_NAME);
	if (value != NULL)
		cleanup_attr(c, "full_name", value);
	received_header(p, c, uid, &addr);
	cleanup_prepend_header(c, addr.buf);

	status = feed_content(p, m, c, &error);
	if (status != MAILDROP_OK) {
		cleanup_abort(&c);
		if (status == MAILDROP_CORRUPT) {
			move_aside(p, name, path, str_c(&error));
			result = PICKUP_ASIDE;
		} else {
			log_warning("maildrop/%s: %s", name, str_c(&error));
		}
		goto out;
	}
	cleanup_finish(&c, &res);
	switch (res.status) {
	case CLEANUP_QUEUED:
	case CLEANUP_DISCARDED:
		/* Only now: the message is durable in the queue (or meant to
		 * be dropped). Not fsync'd: losing the unlink in a crash means
		 * a duplicate, never a loss. */
		if (unlink(path) < 0 && errno != ENOENT)
			log_warning("maildrop/%s: remove after queueing: %m", name);
		result = PICKUP_DONE;
		break;
	case CLEANUP_REJECTED:
		log_warning("maildrop/%s: reject: %s; from=<%s>, uid=%lu", name, str_c(&res.reply),
		            maildrop_sender(m), (unsigned long)uid);
		move_aside(p, name, path, "rejected by cleanup (no bounce is sent yet)");
		result = PICKUP_ASIDE;
		break;
	case CLEANUP_TEMPFAIL:
		log_warning("maildrop/%s: %s: will retry", name, str_c(&res.reply));
		break;
	}
out:
	cleanup_result_free(&res);
	maildrop_close(&m);
	if (fd >= 0)
		close(fd);
	str_free(&error);
	str_free(&addr);
	free(path);
	return result;
}

/* ---- Scanning ---- */

static void remove_stale_temp(struct pickup *p, DIR *d, const char *name)
{
	struct stat st;

	if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    st.st_mtime < time(NULL) - PICKUP_TEMP_MAX_AGE) {
		if (unlinkat(dirfd(d), name, 0) == 0)
			log_info("maildrop/%s: removed a stale temporary file", name);
	}
	(void)p;
}

/* The queue's free space (queue_minfree, 1.5 x message_size_limit), as
 * smtpd checks it: while it is short, maildrop files stay where they are
 * and the next scan (wake-up or timer) tries again. */
static bool space_ok(struct pickup *p)
{
	uint64_t avail;

	if (queue_dir_space_ok(p->qd, p->queue_minfree, p->size_limit, &avail) != 0)
		return true;
	log_warning("not enough free space in mail queue: %llu bytes < %s: maildrop files wait "
	            "for the next scan",
	            (unsigned long long)avail,
	            avail <= p->queue_minfree ? "queue_minfree" : "1.5*message size limit");
	return false;
}

/* One pass over maildrop/. Names are collected first so that files
 * renamed into the directory meanwhile do not disturb readdir. */
static void pickup_scan(struct pickup *p)
{
	strv_t names = STRV_INIT;
	struct dirent *e;
	size_t done = 0;
	DIR *d = opendir(p->maildrop_dir);

	if (d == NULL) {
		log_warning("open %s: %m", p->maildrop_dir);
		return;
	}
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (strncmp(e->d_name, MAILDROP_TEMP_PREFIX, strlen(MAILDROP_TEMP_PREFIX)) == 0)
			remove_stale_temp(p, d, e->d_name);
		else
			strv_add(&names, e->d_name);
	}
	closedir(d);
	if (names.n > 0 && !space_ok(p)) {
		strv_free(&names);
		return;
	}
	for (size_t i = 0; i < names.n; i++) {
		if (pickup_file(p, names.v[i]) == PICKUP_DONE)
			done++;
	}
	log_debug(1, "scan: %zu files, %zu queued", names.n, done);
	strv_free(&names);
}

/* ---- Events ---- */

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	pickup_scan(arg);
}

/* A wake-up on public/pickup (the skeleton read and closed it). */
static void on_trigger(struct event_server *es, unsigned mask, void *ctx)
{
	(void)es;
	(void)mask;
	pickup_scan(ctx);
}

/* ---- Setup ---- */

static void make_dirs(struct pickup *p)
{
	str_t error;

	str_init(&error);
	if (queue_dir_create(p->qd, (uid_t)-1, (gid_t)-1, &error) < 0)
		log_fatal("%s", str_c(&error));
	/* master (or the skeleton, for a pickup started by hand as root)
	 * made maildrop/ (1730 mail_owner:setgid_group) before the drop. */
	if (access(p->maildrop_dir, R_OK | W_OK | X_OK) < 0)
		log_fatal("%s: %m (master creates it, mode %04o)", p->maildrop_dir,
		          MAILDROP_DIR_MODE);
	str_free(&error);
}

/* After the skeleton dropped to mail_owner: settings, directories, the
 * scan timer. */
static void pickup_init(struct event_server *es, void *ctx)
{
	struct pickup *pp = ctx;
	struct daemon *d = event_server_daemon(es);
	const struct master_service *svc = d->service;
	struct pickup p;
	struct timeval tv;
	unsigned wakeup = PICKUP_WAKEUP_DEFAULT, mask = 0;
	str_t error;
	int64_t limit;
	const char *err;

	memset(&p, 0, sizeof(p));
	str_init(&error);
	p.d = d;
	p.cfg = d->cfg;
	if (queue_dir_hash_names(config_str(p.cfg, "hash_queue_names"), &mask, &error) < 0)
		log_fatal("hash_queue_names: %s", str_c(&error));
	p.qd = queue_dir_new(config_str(p.cfg, "queue_directory"),
	                     (unsigned)config_int(p.cfg, "hash_queue_depth"), mask);
	p.maildrop_dir = xasprintf("%s/%s", queue_dir_root(p.qd), MAILDROP_DIR_NAME);
	if (config_get_int(p.cfg, "message_size_limit", &limit, &err) < 0)
		log_fatal("%s", err);
	p.size_limit = (uint64_t)limit;
	p.queue_minfree = (uint64_t)config_int(p.cfg, "queue_minfree");
	p.line_limit = (size_t)config_int(p.cfg, "line_length_limit");
	p.append_at_myorigin = config_bool(p.cfg, "append_at_myorigin");
	p.append_dot_mydomain = config_bool(p.cfg, "append_dot_mydomain");
	p.myorigin = config_str(p.cfg, "myorigin");
	p.mydomain = config_str(p.cfg, "mydomain");
	p.myhostname = config_str(p.cfg, "myhostname");
	p.mail_name = config_str(p.cfg, "mail_name");
	if (cleanup_settings_new(p.cfg, d->config_dir, &p.cleanup, &error) < 0)
		log_fatal("%s", str_c(&error));
	if (svc == NULL)
		svc = mastercf_find(d->master, "pickup", NULL);
	if (svc != NULL)
		wakeup = svc->wakeup;

	make_dirs(&p);
	if (wakeup > 0) {
		p.timer_ev = event_new(d->base, -1, EV_PERSIST, on_timer, pp); /* *pp = p below */
		tv.tv_sec = wakeup;
		tv.tv_usec = 0;
		event_add(p.timer_ev, &tv);
	}
	log_info("starting: maildrop %s, wakeup %us", p.maildrop_dir, wakeup);
	*pp = p;
	/* Files written while pickup was down come first. */
	pickup_scan(pp);
	str_free(&error);
}

static void pickup_finish(struct event_server *es, void *ctx)
{
	struct pickup *pp = ctx;
	struct pickup p = *pp;

	(void)es;
	if (p.timer_ev != NULL)
		event_free(p.timer_ev);
	cleanup_settings_destroy(&p.cleanup);
	queue_dir_destroy(&p.qd);
	free(p.maildrop_dir);
}

int main(int argc, char **argv)
{
	static struct pickup p;
	static const struct event_server_spec spec = {
	        .daemon = {.program = "pickup"},
	        .mode = EVENT_SERVER_TRIGGER,
	        .default_socket = "public/pickup",
	        .long_lived = true,
	        .init = pickup_init,
	        .on_trigger = on_trigger,
	        .finish = pickup_finish,
	        .ctx = &p,
	};

	return event_server_main(&spec, argc, argv);
}
