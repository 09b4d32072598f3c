/* pidfile.c - daemon pid files (see pidfile.h).
 *
 * Used by daemon.c (each daemon's own file) and master (cleanup of the
 * files of children that died). Writing reports errors to the caller;
 * removing is best effort: a file that cannot be removed is stale
 * information, never a reason to stop.
 */
#include "daemon/pidfile.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
