/* pidfile.c - daemon pid files (see pidfile.h).
 *
 * Used by daemon.c (each daemon's own file) and master (cleanup of the
 * files of children that died). Writing reports errors to the caller;
 * removing is best effort: a file that cannot be removed is stale
 * information, never a reason to stop. Leftovers (daemons that outlived
 * a killed master) are found and stopped by PID for master at start and
 * for `postern status|stop`.
 */
#include "daemon/pidfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/mem.h"

static void safe_name(str_t *out, const char *name)
{
	for (const char *p = name; *p != '\0'; p++)
		str_append_c(out, *p == '/' ? '_' : *p);
}

char *pidfile_path(const char *queue_directory, const char *program, const char *service, long pid)
{
	char *result;
	str_t path;

	str_init(&path);
	str_appendf(&path, "%s/pid/", queue_directory);
	safe_name(&path, program);
	if (service != NULL) {
		str_append_c(&path, '.');
		safe_name(&path, service);
	}
	str_appendf(&path, ".%ld.pid", pid);
	result = str_steal(&path);
	str_free(&path); /* str_steal leaves an empty, allocated string */
	return result;
}

int pidfile_dir_create(const char *queue_directory, gid_t gid, str_t *error)
{
	char *dir = xasprintf("%s/pid", queue_directory);
	int rc = 0;

	if (mkdir(queue_directory, 0755) < 0 && errno != EEXIST) {
		str_appendf(error, "mkdir %s: %s", queue_directory, strerror(errno));
		rc = -1;
	} else if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		str_appendf(error, "mkdir %s: %s", dir, strerror(errno));
		rc = -1;
	} else if (gid != (gid_t)-1 && (chown(dir, 0, gid) < 0 || chmod(dir, 01775) < 0)) {
		str_appendf(error, "chown/chmod %s to group %ld, mode 1775: %s", dir, (long)gid,
		            strerror(errno));
		rc = -1;
	}
	free(dir);
	return rc;
}

int pidfile_write(const char *path, str_t *error)
{
	char *text = xasprintf("%10ld\n", (long)getpid()); /* Postfix's format */
	int rc = fs_write_durable(path, text, strlen(text), 0644, error);

	free(text);
	return rc;
}

void pidfile_remove_stale(const char *queue_directory, const char *program, const char *service,
                          long pid)
{
	const char *base = strrchr(program, '/');
	char *path = pidfile_path(queue_directory, base != NULL ? base + 1 : program, service, pid);

	(void)unlink(path);
	free(path);
}

void pidfile_remove_all(const char *queue_directory)
{
	char *dir = xasprintf("%s/pid", queue_directory);
	DIR *dp = opendir(dir);

	if (dp != NULL) {
		for (const struct dirent *e = readdir(dp); e != NULL; e = readdir(dp)) {
			size_t len = strlen(e->d_name);
			char *path;

			if (len < 5 || strcmp(e->d_name + len - 4, ".pid") != 0 ||
			    strcmp(e->d_name, "master.pid") == 0)
				continue;
			path = xasprintf("%s/%s", dir, e->d_name);
			(void)unlink(path);
			free(path);
		}
		closedir(dp);
	}
	free(dir);
}

/* True while pid exists and is not a zombie (an orphan's zombie waits
 * for init, which may be slow to reap it in a container). */
static bool proc_alive(long pid)
{
	char *path = xasprintf("/proc/%ld/stat", pid);
	char buf[512];
	const char *paren;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	free(path);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	paren = strrchr(buf, ')');
	return paren != NULL && paren[1] == ' ' && paren[2] != 'Z';
}

/* Does pid run program (the base name of /proc/PID/exe, " (deleted)"
 * allowed: the binary may have been reinstalled since)? */
static bool proc_runs(long pid, const char *program)
{
	char *path = xasprintf("/proc/%ld/exe", pid);
	char exe[4096];
	const char *base;
	ssize_t n = readlink(path, exe, sizeof(exe) - 1);
	size_t len;

	free(path);
	if (n <= 0)
		return false;
	exe[n] = '\0';
	len = (size_t)n;
	if (len > 10 && strcmp(exe + len - 10, " (deleted)") == 0)
		exe[len - 10] = '\0';
	base = strrchr(exe, '/');
	base = base != NULL ? base + 1 : exe;
	return strcmp(base, program) == 0;
}

/* Parse "PROGRAM[.SERVICE].PID.pid": the program (owned by the caller)
 * and the PID, or NULL. */
static char *leftover_parse(const char *name, long *pid_r)
{
	size_t len = strlen(name);
	char *copy, *dot, *end;
	long pid;

	if (len < 5 || strcmp(name + len - 4, ".pid") != 0 || strcmp(name, "master.pid") == 0)
		return NULL;
	copy = xstrdup(name);
	copy[len - 4] = '\0';
	dot = strrchr(copy, '.');
	if (dot == NULL) {
		free(copy);
		return NULL;
	}
	errno = 0;
	pid = strtol(dot + 1, &end, 10);
	if (errno != 0 || *end != '\0' || pid <= 1) {
		free(copy);
		return NULL;
	}
	*strchr(copy, '.') = '\0';
	*pid_r = pid;
	return copy;
}

/* Each leftover: program, pid and its file, or stale files removed. */
static size_t leftovers_scan(const char *queue_directory, strv_t *programs, strv_t *paths,
                             long **pids_r)
{
	char *dir = xasprintf("%s/pid", queue_directory);
	DIR *dp = opendir(dir);
	size_t n = 0;

	*pids_r = NULL;
	if (dp != NULL) {
		for (const struct dirent *e = readdir(dp); e != NULL; e = readdir(dp)) {
			long pid = 0;
			char *program = leftover_parse(e->d_name, &pid);
			char *path;

			if (program == NULL)
				continue;
			path = xasprintf("%s/%s", dir, e->d_name);
			if (!proc_alive(pid) || !proc_runs(pid, program) || pid == (long)getpid()) {
				(void)unlink(path);
				free(path);
				free(program);
				continue;
			}
			strv_add_owned(programs, program);
			strv_add_owned(paths, path);
			*pids_r = xreallocarray(*pids_r, n + 1, sizeof(long));
			(*pids_r)[n++] = pid;
		}
		closedir(dp);
	}
	free(dir);
	return n;
}

size_t pidfile_leftovers(const char *queue_directory, strv_t *found)
{
	strv_t programs = STRV_INIT, paths = STRV_INIT;
	long *pids;
	size_t n = leftovers_scan(queue_directory, &programs, &paths, &pids);

	for (size_t i = 0; i < n; i++)
		strv_add_owned(found, xasprintf("%s pid %ld", programs.v[i], pids[i]));
	strv_free(&programs);
	strv_free(&paths);
	free(pids);
	return n;
}

/* Wait up to ms milliseconds for every pid to be gone; true if they are. */
static bool leftovers_wait(const long *pids, size_t n, unsigned ms)
{
	for (unsigned waited = 0;; waited += 20) {
		struct timespec ts = {0, 20 * 1000 * 1000};
		bool any = false;

		for (size_t i = 0; i < n && !any; i++)
			any = proc_alive(pids[i]);
		if (!any)
			return true;
		if (waited >= ms)
			return false;
		nanosleep(&ts, NULL);
	}
}

size_t pidfile_stop_leftovers(const char *queue_directory, unsigned grace_ms, strv_t *stopped)
{
	strv_t programs = STRV_INIT, paths = STRV_INIT;
	long *pids;
	size_t n = leftovers_scan(queue_directory, &programs, &paths, &pids);

	for (size_t i = 0; i < n; i++)
		(void)kill((pid_t)pids[i], SIGTERM);
	if (n > 0 && !leftovers_wait(pids, n, grace_ms)) {
		for (size_t i = 0; i < n; i++)
			if (proc_alive(pids[i]))
				(void)kill((pid_t)pids[i], SIGKILL);
		(void)leftovers_wait(pids, n, 2000);
		for (size_t i = 0; i < n; i++)
			if (proc_alive(pids[i]))
				strv_add_owned(stopped, xasprintf("%s pid %ld (still running after "
				                                  "SIGKILL)",
				                                  programs.v[i], pids[i]));
			else
				strv_add_owned(stopped,
				               xasprintf("%s pid %ld", programs.v[i], pids[i]));
	} else {
		for (size_t i = 0; i < n; i++)
			strv_add_owned(stopped, xasprintf("%s pid %ld", programs.v[i], pids[i]));
	}
	for (size_t i = 0; i < n; i++)
		(void)unlink(paths.v[i]);
	strv_free(&programs);
	strv_free(&paths);
	free(pids);
	return n;
}
