/* maildir.c - deliver one message into a Maildir, with Maildir++ quota.
 *
 * Used by the virtual delivery agent (and bench/maildir, the system test's
 * driver). maildir_deliver() reports success only once the message is
 * durably in new/; on any failure it removes what it wrote, so no partial
 * file stays in tmp/ or new/, and returns an RFC 3463 status and a text in
 * Postfix's words.
 *
 * SECURITY: the maildir path comes from a table (db:mailboxes) and the
 * Maildir tree is writable by its owner, who may plant symlinks. So the
 * path is checked lexically (relative, no "." / ".." / empty components),
 * and then walked with openat(O_NOFOLLOW | O_DIRECTORY) from base_dir, one
 * component at a time; every later operation is relative to the directory
 * descriptors so obtained, never to a path that could be swapped. Files are
 * created with O_EXCL | O_NOFOLLOW. The caller runs this as the mailbox
 * owner: the virtual agent, started as root, switches its effective uid,
 * gid and groups to the owner around the call (as Postfix's virtual does),
 * so geteuid() is then not 0 and the files are the owner's from the
 * start. A caller that stays root (the benchmark, tests) gets created
 * directories and files chowned to uid:gid instead; either way the owner
 * ends up owning everything this function creates.
 *
 * Why not fs_durable_*: those take paths, and a path re-resolved at commit
 * time could follow a symlink swapped in by the mailbox owner. This file
 * applies the same rule (write, fsync the file, link into place, fsync the
 * directory) on directory descriptors.
 */
#include "delivery/maildir.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/log.h"
#include "base/mem.h"

#define COPY_CHUNK 65536

void maildir_result_init(struct maildir_result *res)
{
	memset(res, 0, sizeof(*res));
	str_init(&res->text);
	str_init(&res->path);
}

void maildir_result_free(struct maildir_result *res)
{
	str_free(&res->text);
	str_free(&res->path);
}

static void set_result(struct maildir_result *res, const char *status, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void set_result(struct maildir_result *res, const char *status, const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	snprintf(res->status, sizeof(res->status), "%s", status);
	str_reset(&res->text);
	va_start(ap, fmt);
	str_vappendf(&res->text, fmt, ap);
	va_end(ap);
	errno = saved;
}

/* Why 4.3.1 for EDQUOT and EFBIG too: all three say "no room here right
 * now" (a file-system quota or RLIMIT_FSIZE), which an administrator can
 * fix; Maildir++ quota, the user's own limit, has its own 5.2.2. */
static const char *errno_status(int err)
{
	if (err == ENOSPC || err == EDQUOT || err == EFBIG)
		return "4.3.1";
	return "4.3.0";
}

/* Report a system error for op on name, with the status errno calls for;
 * ENOSPC-class errors say "insufficient system storage" as RFC 3463 does. */
static void sys_error(struct maildir_result *res, const char *op, const char *name)
{
	int err = errno;
	const char *status = errno_status(err);

	if (strcmp(status, "4.3.1") == 0)
		set_result(res, status, "insufficient system storage: %s %s: %s", op, name,
		           strerror(err));
	else
		set_result(res, status, "%s %s: %s", op, name, strerror(err));
}

/* host as the spec wants it in a name: '/' and ':' become \057 and \072
 * (':' starts the info part of a name in cur/); NULL = gethostname(). */
static void append_host(const char *host, str_t *out)
{
	char hostbuf[256];

	if (host == NULL) {
		if (gethostname(hostbuf, sizeof(hostbuf)) < 0)
			snprintf(hostbuf, sizeof(hostbuf), "localhost");
		hostbuf[sizeof(hostbuf) - 1] = '\0';
		host = hostbuf;
	}
	for (const char *p = host; *p != '\0'; p++) {
		if (*p == '/')
			str_append(out, "\\057");
		else if (*p == ':')
			str_append(out, "\\072");
		else
			str_append_c(out, *p);
	}
}

void maildir_unique_name(const char *host, str_t *out)
{
	static unsigned int counter;
	struct timeval tv;

	gettimeofday(&tv, NULL);
	str_appendf(out, "%lld.M%ldP%ldQ%u.", (long long)tv.tv_sec, (long)tv.tv_usec,
	            (long)getpid(), ++counter);
	append_host(host, out);
}

/* ---- at most once per once_key ----
 *
 * Why: qmgr records a recipient as done only after the agent's "sent"
 * reply has arrived. Two windows are left where the mail is in the
 * mailbox but nobody remembers it: the agent killed after link() into
 * new/ but before its reply went out, and qmgr killed after the reply
 * arrived but before it wrote the outcome (its restart re-offers the
 * message from active/, and an orphaned agent may even still be
 * delivering it). No amount of syncing on either side closes them: the
 * mailbox and the queue are two files, and no write to one is atomic
 * with a write to the other. What closes them is making the delivery
 * itself idempotent: the file name in new/ is a function of the delivery
 * (time of arrival, queue ID, a hash of the recipient), so
 *   - two attempts racing (orphaned agent and the retry) meet at link(),
 *     which never replaces: the second gets EEXIST and reports the first
 *     one's file;
 *   - a retry (once_search: qmgr says the message may have been tried)
 *     looks for the name in new/ and, as Dovecot keeps the base name
 *     when it moves a message to cur/ and appends ":2,<flags>", for a
 *     name starting with it in cur/.
 * The name stays a valid unique Maildir name: the spec asks for one no
 * other delivery uses, which queue ID + recipient is (queue IDs are
 * unique across restarts); ",S=" and ",W=" follow as before. tmp/ names
 * stay random, so racing attempts never share a tmp file.
 *
 * Cost: nothing on a first attempt (the EEXIST check is the link() that
 * was made anyway); on a retry one readdir of new/ and cur/, which is
 * O(mailbox size) but paid only by retries (deferrals and crash
 * recovery). Not closed: a message the user expunged before the retry
 * comes back (at least once, as before), and the quota of a delivery
 * found this way is not counted again (the first attempt counted it, or
 * died before it did: maildirsize is a cache that Dovecot recalculates).
 * A double fault is not covered either: an attempt whose fsync of new/
 * fails removes its file again, and a concurrent attempt of the same
 * delivery (an orphaned agent racing the retry) that saw that file in the
 * meantime has reported it. */

static void once_base(const struct maildir_request *req, str_t *out)
{
	str_appendf(out, "%lld.%s.", (long long)req->once_time, req->once_key);
	append_host(req->hostname, out);
}

/* Look in dir for a name that is base or starts with base followed by
 * ',' or ':'. 1 with its name appended to name_r, 0 when none, -1 with
 * errno. dir_fd stays open and is not moved. */
static int find_base(int dir_fd, const char *base, str_t *name_r)
{
	size_t len = strlen(base);
	int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), ret = 0, saved;
	struct dirent *de;
	DIR *d;

	if (fd < 0)
		return -1;
	d = fdopendir(fd);
	if (d == NULL) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, base, len) == 0 &&
		    (de->d_name[len] == ',' || de->d_name[len] == ':' || de->d_name[len] == '\0')) {
			str_append(name_r, de->d_name);
			ret = 1;
			break;
		}
	}
	if (de == NULL && errno != 0)
		ret = -1;
	saved = errno;
	closedir(d);
	errno = saved;
	return ret;
}

/* An earlier attempt's file sub/name: success, once its directory entry
 * is durable. Why the fsync: that attempt may have been killed between
 * its link() and its fsync of new/; its data was fsync'd before the
 * link, so after this sync the mail is as safe as one delivered now. */
static int report_found(int dir_fd, const char *sub, const char *name,
                        const struct maildir_request *req, struct maildir_result *res)
{
	if (fsync(dir_fd) < 0) {
		sys_error(res, "fsync maildir directory", sub);
		return -1;
	}
	res->found = true;
	str_reset(&res->path);
	str_appendf(&res->path, "%s%s/%s", req->maildir, sub, name);
	set_result(res, "2.0.0", "delivered to maildir (by an earlier attempt)");
	return 0;
}

ssize_t maildir_read_fd(void *context, void *buf, size_t size)
{
	struct maildir_fd_source *src = context;
	ssize_t n;

	if (src->length == 0)
		return 0;
	if (size > src->length)
		size = (size_t)src->length;
	do
		n = pread(src->fd, buf, size, (off_t)src->offset);
	while (n < 0 && errno == EINTR);
	if (n == 0) {
		errno = EIO; /* the queue file is shorter than it says */
		return -1;
	}
	if (n > 0) {
		src->offset += (uint64_t)n;
		src->length -= (uint64_t)n;
	}
	return n;
}

/* Lexical check of the maildir path from the table (maildir_path_check()
 * and maildir_open_existing() share it with maildir_deliver()). */
static bool maildir_path_ok(const char *path)
{
	size_t len = strlen(path);
	const char *p = path;

	if (len == 0 || path[0] == '/' || path[len - 1] != '/')
		return false;
	while (*p != '\0') {
		const char *slash = strchr(p, '/');
		size_t n = (size_t)(slash - p);

		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		p = slash + 1;
	}
	return true;
}

/* maildir_deliver()'s refusals, in one place so that maildir_path_check()
 * (`postern trace`) says exactly what delivery says. */
static const char bad_path_status[] = "4.3.5";

static void bad_path_text(str_t *out, const char *maildir)
{
	str_appendf(out, "mail system configuration error: bad maildir path \"%s\"", maildir);
}

static void bad_component_text(str_t *out, const char *maildir, const char *comp)
{
	str_appendf(out,
	            "mail system configuration error: maildir %s: component \"%s\" is a "
	            "symlink or not a directory",
	            maildir, comp);
}

/* Open directory name under parent without following a symlink, creating
 * it (0700, chowned when root) when missing. Returns the fd or -1. */
static int open_or_make_dir(int parent, const char *name, const struct maildir_request *req,
                            bool *created)
{
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd >= 0 || errno != ENOENT)
		return fd;
	if (mkdirat(parent, name, 0700) < 0 && errno != EEXIST)
		return -1;
	if (geteuid() == 0 && fchownat(parent, name, req->uid, req->gid, AT_SYMLINK_NOFOLLOW) < 0)
		return -1;
	*created = true;
	return openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* Walk req->maildir from base_dir; returns the Maildir's fd or -1 with res
 * set. */
static int open_maildir(const struct maildir_request *req, struct maildir_result *res)
{
	int fd = open(req->base_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	const char *p = req->maildir;
	str_t comp;

	if (fd < 0) {
		sys_error(res, "open mailbox base directory", req->base_dir);
		return -1;
	}
	str_init(&comp);
	while (*p != '\0') {
		const char *slash = strchr(p, '/');
		bool created = false;
		int next;

		str_reset(&comp);
		str_append_n(&comp, p, (size_t)(slash - p));
		next = open_or_make_dir(fd, str_c(&comp), req, &created);
		if (next < 0) {
			if (errno == ELOOP || errno == ENOTDIR) {
				snprintf(res->status, sizeof(res->status), "%s", bad_path_status);
				str_reset(&res->text);
				bad_component_text(&res->text, req->maildir, str_c(&comp));
			} else {
				sys_error(res, "create maildir directory", str_c(&comp));
			}
			close(fd);
			str_free(&comp);
			return -1;
		}
		/* A new directory must survive a crash as well as the file. */
		if (created && fsync(fd) < 0) {
			sys_error(res, "fsync directory of", str_c(&comp));
			close(next);
			close(fd);
			str_free(&comp);
			return -1;
		}
		close(fd);
		fd = next;
		p = slash + 1;
	}
	str_free(&comp);
	return fd;
}

int maildir_open_existing(const char *base_dir, const char *maildir)
{
	const char *p = maildir;
	str_t comp;
	int fd;

	if (base_dir[0] == '\0') {
		base_dir = "/";
		while (*p == '/')
			p++;
	}
	if (!maildir_path_ok(p)) {
		errno = EINVAL;
		return -1;
	}
	fd = open(base_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	str_init(&comp);
	while (fd >= 0 && *p != '\0') {
		const char *slash = strchr(p, '/');
		int next, err;

		str_reset(&comp);
		str_append_n(&comp, p, (size_t)(slash - p));
		next = openat(fd, str_c(&comp), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		err = errno;
		close(fd);
		fd = next;
		errno = err;
		p = slash + 1;
	}
	str_free(&comp);
	return fd;
}

int maildir_path_check(const char *base_dir, const char *maildir, char status[8], str_t *why)
{
	const char *p = maildir;
	str_t comp;
	int fd, ret = 0;

	if (base_dir == NULL || base_dir[0] != '/' || !maildir_path_ok(maildir)) {
		snprintf(status, 8, "%s", bad_path_status);
		bad_path_text(why, maildir);
		return -1;
	}
	/* The walk of open_maildir(), without creating: stops at the first
	 * component that is missing (delivery would make it) or refused. */
	fd = open(base_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	str_init(&comp);
	while (fd >= 0 && *p != '\0') {
		const char *slash = strchr(p, '/');
		int next;

		str_reset(&comp);
		str_append_n(&comp, p, (size_t)(slash - p));
		next = openat(fd, str_c(&comp), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0 && (errno == ELOOP || errno == ENOTDIR)) {
			snprintf(status, 8, "%s", bad_path_status);
			bad_component_text(why, maildir, str_c(&comp));
			ret = -1;
		}
		close(fd);
		fd = next;
		p = slash + 1;
	}
	if (fd >= 0)
		close(fd);
	str_free(&comp);
	return ret;
}

static int open_subdir(int maildir_fd, const char *name, const struct maildir_request *req,
                       struct maildir_result *res)
{
	bool created = false;
	int fd = open_or_make_dir(maildir_fd, name, req, &created);

	if (fd < 0) {
		if (errno == ELOOP || errno == ENOTDIR)
			set_result(
			        res, "4.3.5",
			        "mail system configuration error: maildir %s: %s is a symlink or "
			        "not a directory",
			        req->maildir, name);
		else
			sys_error(res, "create maildir directory", name);
		return -1;
	}
	if (created && fsync(maildir_fd) < 0) {
		sys_error(res, "fsync maildir", req->maildir);
		close(fd);
		return -1;
	}
	return fd;
}

/* One header line, with CR and LF in value turned into spaces so a table
 * value cannot inject a header. */
static void add_header(str_t *out, const char *name, const char *value, bool angle)
{
	str_append(out, name);
	str_append(out, angle ? ": <" : ": ");
	for (const char *p = value; *p != '\0'; p++)
		str_append_c(out, *p == '\r' || *p == '\n' ? ' ' : *p);
	str_append(out, angle ? ">\n" : "\n");
}

static uint64_t count_lf(const char *p, size_t n)
{
	uint64_t c = 0;
	const char *end = p + n;

	while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		c++;
		p++;
	}
	return c;
}

/* Write headers and content to fd; size and line count out. */
static int copy_content(int fd, const struct maildir_request *req, const char *tmp_name,
                        uint64_t *size_r, uint64_t *lines_r, struct maildir_result *res)
{
	str_t head;
	char *buf;
	uint64_t size = 0, lines = 0;
	int ret = -1;

	str_init(&head);
	if (req->return_path != NULL)
		add_header(&head, "Return-Path", req->return_path, true);
	if (req->delivered_to != NULL)
		add_header(&head, "Delivered-To", req->delivered_to, false);
	if (head.len > 0 && fs_write_all(fd, head.buf, head.len) < 0) {
		sys_error(res, "write maildir file", tmp_name);
		str_free(&head);
		return -1;
	}
	size = head.len;
	lines = count_lf(head.buf, head.len);
	str_free(&head);

	buf = xmalloc(COPY_CHUNK);
	for (;;) {
		ssize_t n = req->read(req->read_context, buf, COPY_CHUNK);

		if (n < 0) {
			set_result(res, "4.3.0", "read message content: %s", strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if (fs_write_all(fd, buf, (size_t)n) < 0) {
			sys_error(res, "write maildir file", tmp_name);
			goto out;
		}
		size += (uint64_t)n;
		lines += count_lf(buf, (size_t)n);
	}
	if (fsync(fd) < 0) {
		sys_error(res, "fsync maildir file", tmp_name);
		goto out;
	}
	*size_r = size;
	*lines_r = lines;
	ret = 0;
out:
	free(buf);
	return ret;
}

/* Check the Maildir++ quota for a message of size bytes; -1 with res set
 * when over quota or when maildirsize cannot be read. */
static int check_quota(int maildir_fd, const struct maildir_request *req, uint64_t size,
                       struct maildir_result *res)
{
	struct maildir_quota_usage usage;
	str_t error;

	str_init(&error);
	if (maildir_quota_read_at(maildir_fd, &req->quota, &usage, &error) < 0) {
		set_result(res, errno_status(errno), "maildir quota: %s", str_c(&error));
		str_free(&error);
		return -1;
	}
	str_free(&error);
	if (maildir_quota_would_exceed(&usage, size, 1)) {
		set_result(res, req->quota_soft ? "4.2.2" : "5.2.2",
		           "mailbox full: maildir quota exceeded (%" PRId64 " bytes, %" PRId64
		           " messages in use; limit %" PRIu64 " bytes, %" PRIu64 " messages)",
		           usage.bytes, usage.count, req->quota.bytes, req->quota.count);
		return -1;
	}
	return 0;
}

int maildir_deliver(const struct maildir_request *req, struct maildir_result *res)
{
	int maildir_fd = -1, tmp_fd = -1, new_fd = -1, cur_fd = -1, fd = -1, ret = -1;
	bool tmp_made = false;
	uint64_t size = 0, lines = 0;
	str_t name, final, once;

	str_init(&name);
	str_init(&final);
	str_init(&once);
	str_reset(&res->path);
	res->size = 0;
	res->found = false;
	if (req->uid < req->minimum_uid) {
		set_result(res, "4.3.5",
		           "mail system configuration error: bad uid %ld for maildir %s (below "
		           "virtual_minimum_uid %ld)",
		           (long)req->uid, req->maildir, (long)req->minimum_uid);
		goto out;
	}
	if (req->base_dir == NULL || req->base_dir[0] != '/' || !maildir_path_ok(req->maildir)) {
		snprintf(res->status, sizeof(res->status), "%s", bad_path_status);
		str_reset(&res->text);
		bad_path_text(&res->text, req->maildir);
		goto out;
	}
	if ((maildir_fd = open_maildir(req, res)) < 0 ||
	    (tmp_fd = open_subdir(maildir_fd, "tmp", req, res)) < 0 ||
	    (new_fd = open_subdir(maildir_fd, "new", req, res)) < 0 ||
	    (cur_fd = open_subdir(maildir_fd, "cur", req, res)) < 0)
		goto out;
	if (req->once_key != NULL) {
		once_base(req, &once);
		/* A retry: before anything is written (or the quota checked),
		 * is it there already? */
		if (req->once_search) {
			int dir_fd = new_fd, found = find_base(new_fd, str_c(&once), &final);

			if (found == 0) {
				dir_fd = cur_fd;
				found = find_base(cur_fd, str_c(&once), &final);
			}
			if (found < 0) {
				sys_error(res, "read maildir directory", req->maildir);
				goto out;
			}
			if (found == 1) {
				ret = report_found(dir_fd, dir_fd == new_fd ? "new" : "cur",
				                   str_c(&final), req, res);
				goto out;
			}
		}
	}

	maildir_unique_name(req->hostname, &name);
	fd = openat(tmp_fd, str_c(&name), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	            0600);
	if (fd < 0) {
		sys_error(res, "create maildir file", str_c(&name));
		goto out;
	}
	tmp_made = true;
	if (geteuid() == 0 && fchown(fd, req->uid, req->gid) < 0) {
		sys_error(res, "chown maildir file", str_c(&name));
		goto out;
	}
	if (copy_content(fd, req, str_c(&name), &size, &lines, res) < 0)
		goto out;
	if (close(fd) < 0) {
		fd = -1;
		sys_error(res, "close maildir file", str_c(&name));
		goto out;
	}
	fd = -1;

	/* Why check after writing: only now is the size known exactly (the
	 * prepended headers count), and the file is not visible yet. */
	if (req->quota_enabled && check_quota(maildir_fd, req, size, res) < 0)
		goto out;

	/* ",S=" is the Maildir++ size that quota scans use; ",W=" the size with
	 * CRLF line ends, which Dovecot uses for RFC822.SIZE without reading. */
	str_appendf(&final, "%s,S=%" PRIu64 ",W=%" PRIu64,
	            req->once_key != NULL ? str_c(&once) : str_c(&name), size, size + lines);
	/* link() never replaces an existing file, as the spec asks. */
	if (linkat(tmp_fd, str_c(&name), new_fd, str_c(&final), 0) < 0) {
		if (errno == EEXIST && req->once_key != NULL) {
			/* Another attempt of this very delivery got there first
			 * (see "at most once" above). */
			ret = report_found(new_fd, "new", str_c(&final), req, res);
			goto out;
		}
		sys_error(res, "link maildir file to new/", str_c(&final));
		goto out;
	}
	if (unlinkat(tmp_fd, str_c(&name), 0) < 0)
		log_warning("maildir %s: remove tmp/%s: %m", req->maildir, str_c(&name));
	tmp_made = false;
	if (fsync(new_fd) < 0) {
		sys_error(res, "fsync maildir directory", "new/");
		unlinkat(new_fd, str_c(&final), 0);
		goto out;
	}
	/* Counted even without a limit when maildirsize exists (Dovecot
	 * makes one for a mailbox it reports on): the file never falls
	 * behind. Nothing is created when it does not. */
	{
		str_t error;

		str_init(&error);
		if (maildir_quota_add_at(maildir_fd, (int64_t)size, 1, &error) < 0)
			log_warning("maildir %s: %s", req->maildir, str_c(&error));
		str_free(&error);
	}
	res->size = size;
	str_appendf(&res->path, "%snew/%s", req->maildir, str_c(&final));
	set_result(res, "2.0.0", "delivered to maildir");
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	if (tmp_made) {
		int saved = errno;

		unlinkat(tmp_fd, str_c(&name), 0);
		errno = saved;
	}
	if (new_fd >= 0)
		close(new_fd);
	if (cur_fd >= 0)
		close(cur_fd);
	if (tmp_fd >= 0)
		close(tmp_fd);
	if (maildir_fd >= 0)
		close(maildir_fd);
	str_free(&name);
	str_free(&final);
	str_free(&once);
	return ret;
}
