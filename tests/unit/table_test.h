/* table_test.h - helpers shared by the tests/unit/test_table_*.c tests.
 *
 * Golden tests: tests/unit/data/<name>.in is a table file, <name>.keys the
 * probe keys (one per line) and <name>.ref the expected answer for each,
 * one line per key: `KEY -> found "VALUE"`, `KEY -> not found` or
 * `KEY -> temporary failure`. A difference fails the test naming the key,
 * the expected and the actual line. The data directory is taken from
 * $POSTERN_TEST_DATA, else tests/unit/data relative to the source tree
 * (make unit runs from the top of the tree).
 *
 * Also: temporary files in a private directory, and a log hook that keeps
 * every warning and error for assertions.
 */
#ifndef POSTERN_TABLE_TEST_H
#define POSTERN_TABLE_TEST_H

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
#include "base/log.h"
#include "base/mem.h"
#include "base/str.h"
#include "base/strv.h"
#include "table/table.h"

/* The text of s as a new string; s is released. */
static inline char *test_steal(str_t *s)
{
	char *text = str_steal(s);

	str_free(s);
	return text;
}

static inline char *test_data_path(const char *file)
{
	const char *dir = getenv("POSTERN_TEST_DATA");

	if (dir == NULL || dir[0] == '\0')
		dir = "tests/unit/data";
	return xasprintf("%s/%s", dir, file);
}

/* Read a whole file into a new string; fails the test when it cannot. */
static inline char *test_read(const char *path)
{
	str_t text, error;

	str_init(&text);
	str_init(&error);
	if (fs_read_file(path, 16 * 1024 * 1024, &text, &error) < 0)
		fail_msg("%s", str_c(&error));
	str_free(&error);
	return test_steal(&text);
}

/* Describe a lookup result the way the .ref files do. */
static inline void test_describe(const char *key, const struct table_result *r, str_t *out)
{
	str_reset(out);
	switch (r->status) {
	case TABLE_FOUND:
		str_appendf(out, "%s -> found \"%s\"", key, str_c(&r->value));
		break;
	case TABLE_NOTFOUND:
		str_appendf(out, "%s -> not found", key);
		break;
	case TABLE_TEMPFAIL:
		str_appendf(out, "%s -> temporary failure", key);
		break;
	}
}

/* Open TYPE:data/NAME.in, look up every key of NAME.keys and compare
 * with NAME.ref line by line. */
static inline void test_golden(const char *type, const char *name)
{
	char *in_name = xasprintf("%s.in", name), *keys_name = xasprintf("%s.keys", name);
	char *ref_name = xasprintf("%s.ref", name);
	char *in = test_data_path(in_name), *keys_path = test_data_path(keys_name);
	char *ref_path = test_data_path(ref_name);
	char *spec = xasprintf("%s:%s", type, in);
	char *keys = test_read(keys_path), *ref = test_read(ref_path);
	char *kp = keys, *rp = ref;
	struct table_result r;
	struct table *t;
	str_t error, got;
	unsigned line = 0;

	str_init(&error);
	str_init(&got);
	t = table_open(spec, NULL, &error);
	if (t == NULL)
		fail_msg("opening %s: %s", spec, str_c(&error));
	table_result_init(&r);
	while (*kp != '\0') {
		char *knl = strchr(kp, '\n'), *rnl;

		line++;
		if (knl != NULL)
			*knl = '\0';
		if (*rp == '\0')
			fail_msg("%s: no line %u for key \"%s\"", ref_path, line, kp);
		rnl = strchr(rp, '\n');
		if (rnl != NULL)
			*rnl = '\0';
		table_lookup(t, kp, &r);
		test_describe(kp, &r, &got);
		if (strcmp(str_c(&got), rp) != 0)
			fail_msg("%s: key \"%s\" (line %u of %s): expected [%s], got [%s]", spec,
			         kp, line, keys_path, rp, str_c(&got));
		kp = knl != NULL ? knl + 1 : kp + strlen(kp);
		rp = rnl != NULL ? rnl + 1 : rp + strlen(rp);
	}
	if (*rp != '\0')
		fail_msg("%s has more lines than %s", ref_path, keys_path);
	table_result_free(&r);
	table_close(&t);
	str_free(&error);
	str_free(&got);
	free(in_name);
	free(keys_name);
	free(ref_name);
	free(in);
	free(keys_path);
	free(ref_path);
	free(spec);
	free(keys);
	free(ref);
}

/* A private temporary directory for one test. */
static inline char *test_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char *tmpl = xasprintf("%s/postern-table-XXXXXX", base != NULL && base[0] ? base : "/tmp");

	if (mkdtemp(tmpl) == NULL)
		fail_msg("mkdtemp %s: %s", tmpl, strerror(errno));
	return tmpl;
}

/* Write dir/name (replacing it atomically) and return its path. */
static inline char *test_write(const char *dir, const char *name, const char *data, size_t len)
{
	char *path = xasprintf("%s/%s", dir, name);
	str_t error;

	str_init(&error);
	if (fs_write_durable(path, data, len, 0644, &error) < 0)
		fail_msg("%s", str_c(&error));
	str_free(&error);
	return path;
}

static inline int test_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* The same for NUL-terminated text. */
static inline char *test_write_text(const char *dir, const char *name, const char *text)
{
	return test_write(dir, name, text, strlen(text));
}

static inline void test_rmtree(char **dirp)
{
	if (*dirp == NULL)
		return;
	if (nftw(*dirp, test_rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
		fail_msg("could not remove %s: %s", *dirp, strerror(errno));
	xfree(dirp);
}

/* Log capture: every line of level >= warning (or every line with
 * all = true) is kept in lines. */
struct test_log {
	strv_t lines;
	bool all;
};

static inline void test_log_hook(enum log_level level, const char *text, void *context)
{
	struct test_log *tl = context;

	if (tl->all || level >= LOG_LEVEL_WARNING)
		strv_add(&tl->lines, text);
}

static inline void test_log_start(struct test_log *tl, bool all)
{
	tl->lines = (strv_t)STRV_INIT;
	tl->all = all;
	log_set_hook(test_log_hook, tl);
}

static inline void test_log_stop(struct test_log *tl)
{
	log_set_hook(NULL, NULL);
	strv_free(&tl->lines);
}

/* The first kept line containing needle, or NULL. */
static inline const char *test_log_find(const struct test_log *tl, const char *needle)
{
	for (size_t i = 0; i < tl->lines.n; i++)
		if (strstr(tl->lines.v[i], needle) != NULL)
			return tl->lines.v[i];
	return NULL;
}

/* Assert that opening spec fails with a message containing each of the
 * needles, a list ended by NEEDLES_END. */
#define NEEDLES_END ((const char *)NULL)
static inline void test_open_fails(const char *spec, ...)
{
	struct table *t;
	const char *needle;
	str_t error;
	va_list ap;

	str_init(&error);
	t = table_open(spec, NULL, &error);
	if (t != NULL)
		fail_msg("opening %s succeeded, expected an error", spec);
	va_start(ap, spec);
	while ((needle = va_arg(ap, const char *)) != NULL)
		if (strstr(str_c(&error), needle) == NULL)
			fail_msg("opening %s: the error does not contain [%s]; it is [%s]", spec,
			         needle, str_c(&error));
	va_end(ap);
	str_free(&error);
}

static inline struct table *test_open(const char *spec)
{
	struct table *t;
	str_t error;

	str_init(&error);
	t = table_open(spec, NULL, &error);
	if (t == NULL)
		fail_msg("opening %s: %s", spec, str_c(&error));
	str_free(&error);
	return t;
}

/* Look key up in t and return the description ("key -> found ...") in a
 * new string. */
static inline char *test_lookup(struct table *t, const char *key)
{
	struct table_result r;
	str_t out;

	table_result_init(&r);
	str_init(&out);
	table_lookup(t, key, &r);
	test_describe(key, &r, &out);
	table_result_free(&r);
	return test_steal(&out);
}

#define assert_lookup(t, key, expected) \
	do { \
		char *got_ = test_lookup((t), (key)); \
		if (strcmp(got_, (expected)) != 0) \
			fail_msg("%s: expected [%s], got [%s]", (t)->spec, (expected), got_); \
		free(got_); \
	} while (0)

#endif
