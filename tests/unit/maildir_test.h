/* maildir_test.h - helpers shared by test_maildir.c and
 * test_maildir_quota.c: a temp base directory, an in-memory content
 * source, and counting/reading the files of a Maildir folder. */
#ifndef POSTERN_MAILDIR_TEST_H
#define POSTERN_MAILDIR_TEST_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "base/fs.h"
#include "base/mem.h"
#include "base/str.h"
#include "delivery/maildir.h"
#include "delivery/maildir_quota.h"

/* Content served from memory in pieces of at most step bytes. */
struct mem_source {
	const char *data;
	size_t len, pos, step;
	bool fail; /* return -1 (EIO) after the first piece */
};

static inline ssize_t mem_read(void *context, void *buf, size_t size)
{
	struct mem_source *m = context;
	size_t n = m->len - m->pos;

	if (m->fail && m->pos > 0) {
		errno = EIO;
		return -1;
	}
	if (n > size)
		n = size;
	if (m->step != 0 && n > m->step)
		n = m->step;
	memcpy(buf, m->data + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

static inline char *make_base(void)
{
	/* mkdtemp() fills in the X's; $TMPDIR when set, as the system tests. */
	const char *tmp = getenv("TMPDIR");
	char *dir = xasprintf("%s/postern-maildir-test-XXXXXX",
	                      tmp != NULL && tmp[0] == '/' ? tmp : "/tmp");

	assert_non_null(mkdtemp(dir));
	return dir;
}

static inline void remove_tree(const char *path)
{
	char *cmd = xasprintf("rm -rf '%s'", path);

	assert_int_equal(system(cmd), 0);
	free(cmd);
}

/* Number of entries (other than . and ..) in dir; -1 when it is missing. */
static inline int count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* A request for maildir under base with content m, no quota. */
static inline struct maildir_request make_request(const char *base, const char *maildir,
                                                  struct mem_source *m)
{
	struct maildir_request req = {
	        .base_dir = base,
	        .maildir = maildir,
	        .uid = getuid(),
	        .gid = getgid(),
	        .minimum_uid = 0,
	        .read = mem_read,
	        .read_context = m,
	        .hostname = "mx.example.org",
	};

	return req;
}

#endif
