/* maildir_quota.c - Maildir++ quota: read, rebuild and update `maildirsize`.
 *
 * Used by maildir.c (check before a delivery becomes visible, delta after)
 * and by callers that only report usage. Works on an open Maildir
 * directory descriptor so nothing here follows a symlink planted inside a
 * mailbox.
 *
 * On failure every function returns -1 with errno set and a message naming
 * the file appended to error; a failed rebuild leaves the old maildirsize
 * (or none) and no temporary file in tmp/.
 *
 * SECURITY: maildirsize and the Maildir are writable by the mailbox owner,
 * so their content is untrusted: the file is read with a size bound, every
 * line is parsed strictly, sums are overflow-checked, and a malformed file
 * is rebuilt rather than trusted. The owner may also plant links: the
 * Maildir is reached by maildir_open_existing()'s O_NOFOLLOW walk from
 * virtual_mailbox_base, and maildirsize is opened O_NOFOLLOW | O_NONBLOCK
 * and used only when it is a regular file (a symlink or FIFO counts as
 * absent for the delivery agent, which renames a rebuilt file over it,
 * and as unknown usage for the read-only callers).
 */
#include "delivery/maildir_quota.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/mem.h"
#include "delivery/maildir.h"

#define QUOTA_FILE "maildirsize"

/* Parse a signed decimal in [p, end) strictly; advances *pp. */
static int parse_num(const char **pp, const char *end, int64_t *value_r)
{
	const char *p = *pp;
	bool neg = false;
	uint64_t v = 0;

	if (p < end && *p == '-') {
		neg = true;
		p++;
	}
	if (p == end || *p < '0' || *p > '9')
		return -1;
	while (p < end && *p >= '0' && *p <= '9') {
		if (v > (uint64_t)INT64_MAX / 10)
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
		if (v > (uint64_t)INT64_MAX)
			return -1;
		p++;
	}
	*value_r = neg ? -(int64_t)v : (int64_t)v;
	*pp = p;
	return 0;
}

static int parse_header(const char *p, const char *end, struct maildir_quota_limits *limits)
{
	memset(limits, 0, sizeof(*limits));
	if (p == end)
		return -1;
	while (p < end) {
		int64_t v;

		if (parse_num(&p, end, &v) < 0 || v < 0 || p == end)
			return -1;
		if (*p == 'S')
			limits->bytes = (uint64_t)v;
		else if (*p == 'C')
			limits->count = (uint64_t)v;
		else
			return -1;
		p++;
		if (p < end && (*p++ != ',' || p == end))
			return -1;
	}
	return 0;
}

static bool add_overflows(int64_t a, int64_t b)
{
	return (b > 0 && a > INT64_MAX - b) || (b < 0 && a < INT64_MIN - b);
}

int maildir_quota_parse(const char *data, size_t len, struct maildir_quota_usage *usage_r)
{
	const char *p = data, *end = data + len, *nl;

	memset(usage_r, 0, sizeof(*usage_r));
	nl = memchr(p, '\n', len);
	if (nl == NULL || parse_header(p, nl, &usage_r->limits) < 0)
		return -1;
	p = nl + 1;
	while (p < end) {
		int64_t bytes, count;

		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			return -1; /* a delta being written, or garbage */
		while (p < nl && *p == ' ')
			p++;
		if (parse_num(&p, nl, &bytes) < 0 || p == nl || *p != ' ')
			return -1;
		while (p < nl && *p == ' ')
			p++;
		if (parse_num(&p, nl, &count) < 0)
			return -1;
		while (p < nl && *p == ' ')
			p++;
		if (p != nl)
			return -1;
		if (add_overflows(usage_r->bytes, bytes) || add_overflows(usage_r->count, count))
			return -1;
		usage_r->bytes += bytes;
		usage_r->count += count;
		p = nl + 1;
	}
	/* Deltas from removals may overshoot after a race; never report less
	 * than empty. */
	if (usage_r->bytes < 0)
		usage_r->bytes = 0;
	if (usage_r->count < 0)
		usage_r->count = 0;
	return 0;
}

void maildir_quota_format_limits(const struct maildir_quota_limits *limits, str_t *out)
{
	if (limits->bytes == 0 && limits->count == 0) {
		str_append(out, "0S\n");
		return;
	}
	if (limits->bytes != 0)
		str_appendf(out, "%" PRIu64 "S", limits->bytes);
	if (limits->count != 0)
		str_appendf(out, "%s%" PRIu64 "C", limits->bytes != 0 ? "," : "", limits->count);
	str_append_c(out, '\n');
}

bool maildir_quota_would_exceed(const struct maildir_quota_usage *usage, uint64_t bytes,
                                uint64_t count)
{
	const struct maildir_quota_limits *l = &usage->limits;
	uint64_t used_bytes = (uint64_t)usage->bytes, used_count = (uint64_t)usage->count;

	if (l->bytes != 0 && (bytes > l->bytes || used_bytes > l->bytes - bytes))
		return true;
	if (l->count != 0 && (count > l->count || used_count > l->count - count))
		return true;
	return false;
}

bool maildir_quota_full(const struct maildir_quota_usage *usage, uint64_t size)
{
	const struct maildir_quota_limits *l = &usage->limits;
	uint64_t used_bytes = (uint64_t)usage->bytes, used_count = (uint64_t)usage->count;

	if (l->bytes != 0 && (used_bytes >= l->bytes || size > l->bytes - used_bytes))
		return true;
	return l->count != 0 && used_count >= l->count;
}

/* Open maildirsize in the Maildir open on maildir_fd for reading: never
 * through a symlink (ELOOP), never blocking on a FIFO the owner planted,
 * and only a regular file (else EINVAL). The fd or -1 (errno). */
static int quota_open_read(int maildir_fd)
{
	int fd = openat(maildir_fd, QUOTA_FILE, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		int err = S_ISREG(st.st_mode) ? errno : EINVAL;

		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

int maildir_quota_peek(const char *base_dir, const char *maildir,
                       struct maildir_quota_usage *usage_r, str_t *error)
{
	int dir_fd = maildir_open_existing(base_dir, maildir);
	int fd;
	char buf[2 * MAILDIR_QUOTA_MAX_FILE];
	ssize_t n;

	memset(usage_r, 0, sizeof(*usage_r));
	if (dir_fd < 0) {
		if (errno == ENOENT)
			return 0; /* no Maildir yet: nothing counted */
		str_appendf(error, "maildir %s unreadable: %m", maildir);
		return -1;
	}
	fd = quota_open_read(dir_fd);
	close(dir_fd);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		str_append(error, errno == ELOOP ? QUOTA_FILE " is a symbolic link: not read"
		                                 : QUOTA_FILE " unreadable");
		return -1;
	}
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n < 0) {
		str_append(error, QUOTA_FILE " unreadable");
		return -1;
	}
	/* Why not rebuild a file too big or malformed, as
	 * maildir_quota_read_at() does: the callers hold no write access to
	 * mailboxes; the delivery agent rebuilds it at the next delivery. */
	if ((size_t)n > MAILDIR_QUOTA_MAX_FILE ||
	    maildir_quota_parse(buf, (size_t)n, usage_r) < 0) {
		memset(usage_r, 0, sizeof(*usage_r));
		str_append(error, QUOTA_FILE " needs recalculation");
		return -1;
	}
	return 1;
}

/* The size of a message file: ",S=<n>" in its name (before any ":2,"
 * flags), else the file's size. Files that vanish (moved by an IMAP server
 * between readdir and stat) count as nothing. */
static int message_size(int dir_fd, const char *name, uint64_t *size_r)
{
	const char *s = strstr(name, ",S=");
	struct stat st;

	if (s != NULL) {
		const char *p = s + 3;

		if (*p >= '0' && *p <= '9') {
			uint64_t v = 0;

			while (*p >= '0' && *p <= '9' && v <= UINT64_MAX / 10 - 10)
				v = v * 10 + (uint64_t)(*p++ - '0');
			if (*p == '\0' || *p == ',' || *p == ':') {
				*size_r = v;
				return 0;
			}
		}
	}
	if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT) {
			*size_r = 0;
			return 1;
		}
		return -1;
	}
	*size_r = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
	return 0;
}

/* Add the messages of dir (relative to maildir_fd) to bytes/count; a
 * missing directory counts as empty. */
static int scan_dir(int maildir_fd, const char *dir, int64_t *bytes, int64_t *count, str_t *error)
{
	int fd = openat(maildir_fd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct dirent *de;
	DIR *d;

	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		str_appendf(error, "open maildir folder %s: %m", dir);
		return -1;
	}
	d = fdopendir(fd);
	if (d == NULL) {
		str_appendf(error, "open maildir folder %s: %m", dir);
		close(fd);
		return -1;
	}
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		uint64_t size;
		int ret;

		if (de->d_name[0] == '.')
			continue;
		ret = message_size(dirfd(d), de->d_name, &size);
		if (ret < 0) {
			str_appendf(error, "stat %s/%s: %m", dir, de->d_name);
			closedir(d);
			return -1;
		}
		if (ret == 0) {
			if (size > (uint64_t)INT64_MAX - (uint64_t)*bytes)
				size = (uint64_t)(INT64_MAX - *bytes);
			*bytes += (int64_t)size;
			(*count)++;
		}
		errno = 0;
	}
	if (errno != 0) {
		str_appendf(error, "read maildir folder %s: %m", dir);
		closedir(d);
		return -1;
	}
	closedir(d);
	return 0;
}

/* Sum the whole Maildir: INBOX and every Maildir++ ".folder". */
static int scan_maildir(int maildir_fd, int64_t *bytes_r, int64_t *count_r, str_t *error)
{
	int fd, ret = 0;
	struct dirent *de;
	DIR *d;
	str_t sub;

	*bytes_r = 0;
	*count_r = 0;
	if (scan_dir(maildir_fd, "new", bytes_r, count_r, error) < 0 ||
	    scan_dir(maildir_fd, "cur", bytes_r, count_r, error) < 0)
		return -1;
	fd = openat(maildir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		str_appendf(error, "open maildir: %m");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	str_init(&sub);
	while ((de = readdir(d)) != NULL && ret == 0) {
		const char *n = de->d_name;

		if (n[0] != '.' || strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
			continue;
		str_reset(&sub);
		str_appendf(&sub, "%s/new", n);
		ret = scan_dir(maildir_fd, str_c(&sub), bytes_r, count_r, error);
		if (ret == 0) {
			str_reset(&sub);
			str_appendf(&sub, "%s/cur", n);
			ret = scan_dir(maildir_fd, str_c(&sub), bytes_r, count_r, error);
		}
	}
	str_free(&sub);
	closedir(d);
	return ret;
}

/* Write a fresh maildirsize: tmp/<unique> then rename over the old one, as
 * Courier does, so a reader sees the old file or the new one, whole. */
static int rebuild(int maildir_fd, const struct maildir_quota_limits *limits,
                   struct maildir_quota_usage *usage_r, str_t *error)
{
	int64_t bytes, count;
	int tmp_fd, fd = -1, ret = -1;
	str_t name, data;

	if (scan_maildir(maildir_fd, &bytes, &count, error) < 0)
		return -1;
	memset(usage_r, 0, sizeof(*usage_r));
	usage_r->limits = *limits;
	usage_r->bytes = bytes;
	usage_r->count = count;
	usage_r->recalculated = true;

	str_init(&name);
	str_init(&data);
	maildir_quota_format_limits(limits, &data);
	str_appendf(&data, "%" PRId64 " %" PRId64 "\n", bytes, count);
	maildir_unique_name(NULL, &name);
	tmp_fd = openat(maildir_fd, "tmp", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (tmp_fd < 0) {
		str_appendf(error, "open maildir tmp: %m");
		goto out;
	}
	fd = openat(tmp_fd, str_c(&name), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	            0600);
	if (fd < 0) {
		str_appendf(error, "create tmp/%s: %m", str_c(&name));
		goto out;
	}
	/* Run as root (a test driver, or before the agent drops privileges),
	 * give the file to the Maildir's owner, who must be able to update it
	 * (Dovecot appends deltas as the user). */
	if (geteuid() == 0) {
		struct stat st;

		if (fstat(maildir_fd, &st) < 0 || fchown(fd, st.st_uid, st.st_gid) < 0) {
			str_appendf(error, "chown tmp/%s: %m", str_c(&name));
			goto unlink;
		}
	}
	if (fs_write_all(fd, data.buf, data.len) < 0 || fsync(fd) < 0) {
		str_appendf(error, "write tmp/%s: %m", str_c(&name));
		goto unlink;
	}
	if (renameat(tmp_fd, str_c(&name), maildir_fd, QUOTA_FILE) < 0) {
		str_appendf(error, "rename tmp/%s to " QUOTA_FILE ": %m", str_c(&name));
		goto unlink;
	}
	if (fsync(maildir_fd) < 0) {
		str_appendf(error, "fsync maildir: %m");
		goto out;
	}
	ret = 0;
	goto out;
unlink : {
	int saved = errno;

	unlinkat(tmp_fd, str_c(&name), 0);
	errno = saved;
}
out:
	if (fd >= 0)
		close(fd);
	if (tmp_fd >= 0)
		close(tmp_fd);
	str_free(&name);
	str_free(&data);
	return ret;
}

int maildir_quota_read_at(int maildir_fd, const struct maildir_quota_limits *limits,
                          struct maildir_quota_usage *usage_r, str_t *error)
{
	struct maildir_quota_limits want = {0, 0};
	/* Why a symlink or a non-regular file counts as absent: it is not
	 * read (a link could name any file the agent can read, a FIFO would
	 * hang it); rebuild() renames a fresh file over the name. */
	int fd = quota_open_read(maildir_fd);
	bool need = true;
	str_t data;

	memset(usage_r, 0, sizeof(*usage_r));
	if (fd < 0 && errno != ENOENT && errno != ELOOP && errno != EINVAL) {
		str_appendf(error, "open " QUOTA_FILE ": %m");
		return -1;
	}
	str_init(&data);
	if (fd >= 0) {
		struct stat st;

		if (fstat(fd, &st) < 0) {
			str_appendf(error, "stat " QUOTA_FILE ": %m");
			close(fd);
			str_free(&data);
			return -1;
		}
		if (S_ISREG(st.st_mode) && st.st_size <= MAILDIR_QUOTA_MAX_FILE) {
			str_t ignored;

			/* Appends between fstat and read may push the file
			 * past the bound: that is a recalculation, not an
			 * error. */
			str_init(&ignored);
			if (fs_read_fd(fd, QUOTA_FILE, MAILDIR_QUOTA_MAX_FILE, &data, &ignored) ==
			            0 &&
			    maildir_quota_parse(data.buf, data.len, usage_r) == 0)
				need = false;
			str_free(&ignored);
		}
		close(fd);
	}
	str_free(&data);
	if (!need && limits != NULL &&
	    (usage_r->limits.bytes != limits->bytes || usage_r->limits.count != limits->count))
		need = true;
	if (!need)
		return 0;
	if (limits != NULL)
		want = *limits;
	else if (fd >= 0)
		want = usage_r->limits; /* header parsed even if a delta was bad */
	return rebuild(maildir_fd, &want, usage_r, error);
}

int maildir_quota_usage(const char *base_dir, const char *maildir,
                        const struct maildir_quota_limits *limits,
                        struct maildir_quota_usage *usage_r, str_t *error)
{
	int fd = maildir_open_existing(base_dir, maildir);
	int ret;

	if (fd < 0) {
		str_appendf(error, "open maildir %s below %s: %m", maildir, base_dir);
		return -1;
	}
	ret = maildir_quota_read_at(fd, limits, usage_r, error);
	close(fd);
	return ret;
}

int maildir_quota_add_at(int maildir_fd, int64_t bytes, int64_t count, str_t *error)
{
	/* O_NONBLOCK: a FIFO without a reader fails (ENXIO) instead of
	 * hanging the agent; only a regular file is appended to. */
	int fd = openat(maildir_fd, QUOTA_FILE,
	                O_WRONLY | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	str_t line;
	int ret = 0;

	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		str_appendf(error, "open " QUOTA_FILE ": %m");
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		str_append(error, QUOTA_FILE ": not a regular file: not written");
		close(fd);
		return -1;
	}
	str_init(&line);
	str_appendf(&line, "%" PRId64 " %" PRId64 "\n", bytes, count);
	/* One write() of a short line to an O_APPEND file: concurrent
	 * deliveries and Dovecot's own updates interleave whole lines. */
	if (write(fd, line.buf, line.len) != (ssize_t)line.len) {
		if (errno == 0)
			errno = EIO;
		str_appendf(error, "append to " QUOTA_FILE ": %m");
		ret = -1;
	}
	str_free(&line);
	close(fd);
	return ret;
}
