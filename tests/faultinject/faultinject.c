/* faultinject.c - LD_PRELOAD shim for the durability system tests: traces
 * the file-system calls that make mail durable and injects EIO into fsync.
 *
 * Used only by tests/system/test_durability.py, which preloads it into the
 * postern daemons (smtpd, qmgr, virtual) through master's environment. It
 * injects operating-system faults only; it never changes what postern
 * itself does. Built by the Makefile as $(BUILD)/tests/faultinject.so,
 * always without sanitizers (an ASan program loads the ASan runtime first;
 * the test sets ASAN_OPTIONS=verify_asan_link_order=0 so it accepts this
 * library ahead of it).
 *
 * Environment (each optional; an unset one turns its feature off):
 *   FAULTINJECT_TRACE=file   append one line per traced call:
 *        <monotonic ns> <pid> <op> <path>[ -> <path2>] = <result> [errno]
 *      ops: fsync, fdatasync (with "size=<bytes>" of the file after a
 *      successful sync), rename, renameat, renameat2, link, linkat, and
 *      "mark" for a socket write that contains a marker (below). Paths of
 *      descriptors are resolved through /proc/self/fd. Each line goes out
 *      in one O_APPEND write, so lines of several processes never mix.
 *   FAULTINJECT_MARK=a|b|... a socket write (write, writev, send, sendto,
 *      sendmsg) whose data contains one of these '|'-separated strings is
 *      traced as "mark <string>": the moment a reply left the daemon.
 *   FAULTINJECT_FAIL=glob  fsync/fdatasync of a file or directory whose
 *      path matches this fnmatch(3) pattern may fail with EIO, as armed
 *      by FAULTINJECT_ARM. '*' also matches '/': "*" "/incoming/tmp.*"
 *      (written without the quotes' break) is a queue writer's file,
 *      "*" "/incoming" its directory.
 *   FAULTINJECT_ARM=file   holds a number N: the N-th matching call from
 *      now fails (the file is then removed, or holds -1 where it cannot
 *      be: one failure), 0 makes every matching call fail while the file
 *      exists. No file (or a negative number), no failure. The
 *      count is shared by all processes (flock), so a test arms a fault
 *      whichever daemon process meets it.
 *   FAULTINJECT_DELAY_MS=ms  sleep this long before an injected failure
 *      returns (at most 10 s), to let another process act in the window.
 *
 * Bounded: no allocation, fixed buffers (paths longer than PATH_MAX are
 * cut), one lock held only around a read and write of a small file.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_LEN (2 * PATH_MAX + 128)

typedef int (*fd_fn)(int);
typedef int (*rename_fn)(const char *, const char *);
typedef int (*renameat_fn)(int, const char *, int, const char *);
typedef int (*renameat2_fn)(int, const char *, int, const char *, unsigned int);
typedef int (*linkat_fn)(int, const char *, int, const char *, int);
typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*writev_fn)(int, const struct iovec *, int);
typedef ssize_t (*send_fn)(int, const void *, size_t, int);
typedef ssize_t (*sendto_fn)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
typedef ssize_t (*sendmsg_fn)(int, const struct msghdr *, int);

/* The next definition of name after this library (libc's). */
static void *real(const char *name)
{
	void *p = dlsym(RTLD_NEXT, name);

	if (p == NULL)
		abort();
	return p;
}

#define REAL(type, name) ((type)real(#name))

static ssize_t raw_write(int fd, const void *buf, size_t len)
{
	static write_fn fn;

	if (fn == NULL)
		fn = REAL(write_fn, write);
	return fn(fd, buf, len);
}

static void fd_path(int fd, char *out, size_t size)
{
	char proc[64];
	ssize_t n;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	n = readlink(proc, out, size - 1);
	if (n < 0)
		n = snprintf(out, size, "fd:%d", fd) < 0 ? 0 : (ssize_t)strlen(out);
	out[n] = '\0';
}

/* name relative to dirfd, as an absolute path when dirfd is known. */
static void at_path(int dirfd, const char *name, char *out, size_t size)
{
	char dir[PATH_MAX];

	if (name[0] == '/' || dirfd == AT_FDCWD) {
		if (name[0] != '/' && getcwd(dir, sizeof(dir)) != NULL)
			snprintf(out, size, "%s/%s", dir, name);
		else
			snprintf(out, size, "%s", name);
		return;
	}
	fd_path(dirfd, dir, sizeof(dir));
	snprintf(out, size, "%s/%s", dir, name);
}

static void trace(const char *op, const char *path, const char *path2, int result, int err,
                  const char *extra)
{
	const char *file = getenv("FAULTINJECT_TRACE");
	char line[LINE_MAX_LEN];
	struct timespec ts;
	int fd, n;

	if (file == NULL || file[0] == '\0')
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	n = snprintf(line, sizeof(line), "%lld %ld %s %s%s%s = %d%s%s%s%s\n",
	             (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec, (long)getpid(), op, path,
	             path2 != NULL ? " -> " : "", path2 != NULL ? path2 : "", result,
	             result < 0 ? " " : "", result < 0 ? strerrorname_np(err) : "",
	             extra != NULL ? " " : "", extra != NULL ? extra : "");
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = (int)sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
	if (fd < 0)
		return;
	(void)raw_write(fd, line, (size_t)n);
	close(fd);
}

/* Whether this call on path is to fail, per FAULTINJECT_FAIL/ARM. */
static int should_fail(const char *path)
{
	const char *pat = getenv("FAULTINJECT_FAIL"), *arm = getenv("FAULTINJECT_ARM");
	int fd, fail = 0;

	if (pat == NULL || arm == NULL || pat[0] == '\0' || fnmatch(pat, path, 0) != 0)
		return 0;
	fd = open(arm, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (flock(fd, LOCK_EX) == 0) {
		char buf[32];
		ssize_t len = pread(fd, buf, sizeof(buf) - 1, 0);
		long n;

		buf[len > 0 ? len : 0] = '\0';
		n = strtol(buf, NULL, 10);
		if (n == 0 && buf[0] == '0') {
			fail = 1;
		} else if (buf[0] != '-') {
			/* n - 1 left; "-1" (disarmed) stays where the
			 * directory does not let this process unlink. */
			fail = n == 1;
			len = snprintf(buf, sizeof(buf), "%ld\n", n == 1 ? -1L : n - 1);
			if (ftruncate(fd, 0) == 0)
				(void)pwrite(fd, buf, (size_t)len, 0);
			if (fail)
				(void)unlink(arm);
		}
	}
	close(fd);
	if (fail) {
		const char *d = getenv("FAULTINJECT_DELAY_MS");
		long ms = d != NULL ? strtol(d, NULL, 10) : 0;

		if (ms > 0) {
			struct timespec ts = {(ms > 10000 ? 10000 : ms) / 1000,
			                      (ms % 1000) * 1000000L};
			nanosleep(&ts, NULL);
		}
	}
	return fail;
}

static int sync_common(const char *op, int fd, fd_fn fn)
{
	char path[PATH_MAX], extra[48];
	struct stat st;
	int rc, err;

	fd_path(fd, path, sizeof(path));
	if (should_fail(path)) {
		rc = -1;
		err = EIO;
		trace(op, path, NULL, rc, err, "injected");
		errno = err;
		return rc;
	}
	rc = fn(fd);
	err = errno;
	extra[0] = '\0';
	if (rc == 0 && fstat(fd, &st) == 0)
		snprintf(extra, sizeof(extra), "size=%lld", (long long)st.st_size);
	trace(op, path, NULL, rc, err, extra[0] != '\0' ? extra : NULL);
	errno = err;
	return rc;
}

int fsync(int fd)
{
	return sync_common("fsync", fd, REAL(fd_fn, fsync));
}

int fdatasync(int fd)
{
	return sync_common("fdatasync", fd, REAL(fd_fn, fdatasync));
}

static void trace_2(const char *op, int dfd1, const char *a, int dfd2, const char *b, int rc,
                    int err)
{
	char p1[PATH_MAX], p2[PATH_MAX];

	if (getenv("FAULTINJECT_TRACE") == NULL)
		return;
	at_path(dfd1, a, p1, sizeof(p1));
	at_path(dfd2, b, p2, sizeof(p2));
	trace(op, p1, p2, rc, err, NULL);
}

int rename(const char *a, const char *b)
{
	int rc = REAL(rename_fn, rename)(a, b), err = errno;

	trace_2("rename", AT_FDCWD, a, AT_FDCWD, b, rc, err);
	errno = err;
	return rc;
}

int renameat(int da, const char *a, int db, const char *b)
{
	int rc = REAL(renameat_fn, renameat)(da, a, db, b), err = errno;

	trace_2("renameat", da, a, db, b, rc, err);
	errno = err;
	return rc;
}

int renameat2(int da, const char *a, int db, const char *b, unsigned int flags)
{
	int rc = REAL(renameat2_fn, renameat2)(da, a, db, b, flags), err = errno;

	trace_2("renameat2", da, a, db, b, rc, err);
	errno = err;
	return rc;
}

int link(const char *a, const char *b)
{
	int rc = REAL(rename_fn, link)(a, b), err = errno;

	trace_2("link", AT_FDCWD, a, AT_FDCWD, b, rc, err);
	errno = err;
	return rc;
}

int linkat(int da, const char *a, int db, const char *b, int flags)
{
	int rc = REAL(linkat_fn, linkat)(da, a, db, b, flags), err = errno;

	trace_2("linkat", da, a, db, b, rc, err);
	errno = err;
	return rc;
}

/* Trace "mark" when a socket write carries one of FAULTINJECT_MARK. */
static void check_mark(int fd, const void *data, size_t len)
{
	const char *marks = getenv("FAULTINJECT_MARK");
	char one[256], path[PATH_MAX];
	struct stat st;

	if (marks == NULL || marks[0] == '\0' || len == 0 || fstat(fd, &st) < 0 ||
	    !S_ISSOCK(st.st_mode))
		return;
	while (*marks != '\0') {
		size_t n = strcspn(marks, "|");

		if (n > 0 && n < sizeof(one)) {
			memcpy(one, marks, n);
			one[n] = '\0';
			if (memmem(data, len, one, n) != NULL) {
				fd_path(fd, path, sizeof(path));
				trace("mark", one, path, 0, 0, NULL);
			}
		}
		marks += n;
		if (*marks == '|')
			marks++;
	}
}

ssize_t write(int fd, const void *buf, size_t len)
{
	check_mark(fd, buf, len);
	return raw_write(fd, buf, len);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	for (int i = 0; i < cnt; i++)
		check_mark(fd, iov[i].iov_base, iov[i].iov_len);
	return REAL(writev_fn, writev)(fd, iov, cnt);
}

ssize_t send(int fd, const void *buf, size_t len, int flags)
{
	check_mark(fd, buf, len);
	return REAL(send_fn, send)(fd, buf, len, flags);
}

ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *to,
               socklen_t tolen)
{
	check_mark(fd, buf, len);
	return REAL(sendto_fn, sendto)(fd, buf, len, flags, to, tolen);
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	for (size_t i = 0; i < (size_t)msg->msg_iovlen; i++)
		check_mark(fd, msg->msg_iov[i].iov_base, msg->msg_iov[i].iov_len);
	return REAL(sendmsg_fn, sendmsg)(fd, msg, flags);
}
