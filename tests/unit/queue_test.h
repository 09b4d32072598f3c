/* queue_test.h - helpers shared by the tests/unit/test_queue_*.c tests: a
 * private queue directory tree per test, removed afterwards, and a way to
 * list the names in one of its directories. */
#ifndef POSTERN_QUEUE_TEST_H
#define POSTERN_QUEUE_TEST_H

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
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
#include "base/strv.h"
#include "queue/queue_dir.h"

struct qtest {
	char root[64];
	struct queue_dir *qd;
};

/* A new tree under /tmp with the given hashing. */
static inline struct qtest *qtest_new(unsigned depth, unsigned mask)
{
	struct qtest *t = xcalloc(1, sizeof(*t));
	str_t error;

	snprintf(t->root, sizeof(t->root), "/tmp/postern-queue-XXXXXX");
	if (mkdtemp(t->root) == NULL)
		fail_msg("mkdtemp: %s", strerror(errno));
	t->qd = queue_dir_new(t->root, depth, mask);
	str_init(&error);
	if (queue_dir_create(t->qd, (uid_t)-1, (gid_t)-1, &error) < 0)
		fail_msg("queue_dir_create: %s", str_c(&error));
	str_free(&error);
	return t;
}

static inline int qtest_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static inline void qtest_destroy(struct qtest **tp)
{
	struct qtest *t = *tp;

	if (t == NULL)
		return;
	queue_dir_destroy(&t->qd);
	if (nftw(t->root, qtest_rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
		fail_msg("cannot remove %s: %s", t->root, strerror(errno));
	free(t);
	*tp = NULL;
}

/* Every entry of root/sub (recursively, files only), as paths relative to
 * root/sub, appended to out. */
static inline void qtest_list_files(const char *dir, const char *prefix, strv_t *out)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (d == NULL)
		fail_msg("opendir %s: %s", dir, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		char *path, *rel;
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		path = xasprintf("%s/%s", dir, de->d_name);
		rel = xasprintf("%s%s", prefix, de->d_name);
		if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
			char *sub = xasprintf("%s/", rel);

			qtest_list_files(path, sub, out);
			free(sub);
		} else {
			strv_add(out, rel);
		}
		free(path);
		free(rel);
	}
	closedir(d);
}

/* Number of files under root/queue (any depth). */
static inline size_t qtest_count_files(const struct qtest *t, const char *queue)
{
	strv_t files = STRV_INIT;
	char *dir = xasprintf("%s/%s", t->root, queue);
	size_t n;

	qtest_list_files(dir, "", &files);
	n = files.n;
	strv_free(&files);
	free(dir);
	return n;
}

/* Create an empty file (or with text) at root/rel. */
static inline void qtest_touch(const struct qtest *t, const char *rel, const char *text)
{
	char *path = xasprintf("%s/%s", t->root, rel);
	FILE *fp = fopen(path, "w");

	if (fp == NULL) {
		fail_msg("create %s: %s", path, strerror(errno));
		return;
	}
	fputs(text, fp);
	fclose(fp);
	free(path);
}

#endif
