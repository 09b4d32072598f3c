/* table_indexed.c - reading and writing Postfix's indexed files (see
 * table_indexed.h).
 *
 * Used by the hash:, btree:, lmdb: and cdb: backends (table_bdb.c,
 * table_lmdb.c, table_cdb.c) and by the builder of table_postmap.c
 * (`postern map build`, newaliases). The drivers move bytes; this file
 * owns the conventions Postfix's dict_*.c follow: trailing NUL bytes,
 * flock(2) locking, and noticing a rebuilt file.
 *
 * On failure: open fails with a message naming the file (a missing file
 * says which command builds it); a lookup that cannot read the file, or
 * waits too long for a writer's lock, is a temporary failure naming the
 * file, never "not found". A re-open that fails after the file changed
 * keeps the version open before (logged once). A writer never leaves a
 * half-built file in place of a working one: a full build is renamed in
 * only after it was written out and fsync'd.
 */
#include "table/table_indexed.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/log.h"
#include "base/mem.h"
#include "table/table_file.h"

/* Check that the path still names the open file at most this often. */
#define INDEXED_CHECK_INTERVAL_MS 1000
/* Longest wait for a lock held by another process (a writer updating
 * the file in place). A reader then reports a temporary failure. */
#define INDEXED_LOCK_WAIT_MS 10000
#define INDEXED_LOCK_WRITE_WAIT_MS 60000

static const struct indexed_driver *const drivers[] = {
        &indexed_driver_hash,
        &indexed_driver_btree,
        &indexed_driver_lmdb,
        &indexed_driver_cdb,
};

const struct indexed_driver *indexed_driver_find(const char *type)
{
	for (size_t i = 0; i < sizeof(drivers) / sizeof(drivers[0]); i++)
		if (strcmp(drivers[i]->type, type) == 0)
			return drivers[i];
	return NULL;
}

static long ms_since(const struct timespec *then)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long)(now.tv_sec - then->tv_sec) * 1000 +
	       (long)(now.tv_nsec - then->tv_nsec) / 1000000;
}

/* flock(fd, op) waiting at most max_ms. 0, or -1 with errno (EWOULDBLOCK:
 * still locked by another process). */
static int lock_bounded(int fd, int op, long max_ms)
{
	struct timespec start;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		if (flock(fd, op | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK && errno != EINTR)
			return -1;
		if (ms_since(&start) >= max_ms) {
			errno = EWOULDBLOCK;
			return -1;
		}
		nanosleep(&(struct timespec){.tv_sec = 0, .tv_nsec = 10 * 1000 * 1000}, NULL);
	}
}

static void stamp_of(const struct stat *st, struct table_file_stamp *s)
{
	s->dev = st->st_dev;
	s->ino = st->st_ino;
	s->size = st->st_size;
	s->mtime = st->st_mtim;
}

/* ---- reading ------------------------------------------------------------ */

/* Open the file into *db_r and *stamp_r, under a shared lock so that a
 * writer updating it in place is not caught half way. */
static int open_version(struct table_indexed *ti, struct indexed_db **db_r,
                        struct table_file_stamp *stamp_r, str_t *error)
{
	struct indexed_db *db = NULL;
	struct stat st;
	int fd, dbfd;

	fd = open(ti->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			str_appendf(
			        error,
			        "%s: open %s: %m (build it from the text file with `postern map "
			        "build %s`)",
			        ti->t.spec, ti->path, ti->t.spec);
		else
			str_appendf(error, "%s: open %s: %m", ti->t.spec, ti->path);
		return -1;
	}
	if (lock_bounded(fd, LOCK_SH, INDEXED_LOCK_WAIT_MS) < 0) {
		str_appendf(error, "%s: lock %s: %m", ti->t.spec, ti->path);
		close(fd);
		return -1;
	}
	if (ti->drv->open_read(ti->path, &db, error) < 0) {
		close(fd);
		return -1;
	}
	dbfd = ti->drv->fd(db);
	if (fstat(dbfd >= 0 ? dbfd : fd, &st) < 0) {
		str_appendf(error, "%s: fstat %s: %m", ti->t.spec, ti->path);
		ti->drv->close(&db);
		close(fd);
		return -1;
	}
	close(fd); /* releases the lock */
	stamp_of(&st, stamp_r);
	*db_r = db;
	return 0;
}

int table_indexed_open(struct table *t, const struct indexed_driver *drv, const char *name,
                       const struct table_open_context *ctx, str_t *error)
{
	struct table_indexed *ti = (struct table_indexed *)t;
	char *base = table_file_path(name, ctx);

	ti->drv = drv;
	ti->path = xasprintf("%s%s", base, drv->suffix);
	free(base);
	/* Postfix's default: try both until the file shows which it uses. */
	ti->try_nul = true;
	ti->try_plain = true;
	if (open_version(ti, &ti->db, &ti->stamp, error) < 0)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &ti->last_check);
	return 0;
}

/* Re-open after the file changed; keep the old version when that fails. */
static void reopen(struct table_indexed *ti)
{
	struct indexed_db *fresh = NULL;
	struct table_file_stamp stamp;
	str_t why;

	str_init(&why);
	if (open_version(ti, &fresh, &stamp, &why) < 0) {
		if (!ti->reopen_failed)
			log_error("%s: re-open after a change failed: %s; using the version "
			          "open before",
			          ti->t.spec, str_c(&why));
		ti->reopen_failed = true;
		str_free(&why);
		return;
	}
	str_free(&why);
	ti->drv->close(&ti->db);
	ti->db = fresh;
	ti->stamp = stamp;
	ti->reopen_failed = false;
	ti->try_nul = true;
	ti->try_plain = true;
	log_debug(1, "%s: re-opened %s after it changed", ti->t.spec, ti->path);
}

/* Before reading: re-open when the path names another file (a rebuild
 * renamed a new one in place), checked at most once a second. */
static void check_path(struct table_indexed *ti)
{
	struct table_file_stamp now;

	if (ms_since(&ti->last_check) < INDEXED_CHECK_INTERVAL_MS)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ti->last_check);
	if (table_file_stat(ti->path, &now) < 0)
		return; /* removed: keep answering from the open file */
	if (now.dev != ti->stamp.dev || now.ino != ti->stamp.ino)
		reopen(ti);
}

/* Take the shared lock and make sure the open file was not modified in
 * place since it was opened (the driver may cache its pages). 0 locked,
 * -1 with a message (not locked). */
static int lock_current(struct table_indexed *ti, str_t *error)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		struct table_file_stamp now;
		struct stat st;
		int fd = ti->drv->fd(ti->db);

		if (fd < 0)
			return 0;
		if (lock_bounded(fd, LOCK_SH, INDEXED_LOCK_WAIT_MS) < 0) {
			str_appendf(error, "%s: lock %s: %s", ti->t.spec, ti->path,
			            errno == EWOULDBLOCK ? "still locked by a writer"
			                                 : strerror(errno));
			return -1;
		}
		if (fstat(fd, &st) < 0) {
			str_appendf(error, "%s: fstat %s: %m", ti->t.spec, ti->path);
			flock(fd, LOCK_UN);
			return -1;
		}
		stamp_of(&st, &now);
		if (table_file_stamp_equal(&now, &ti->stamp))
			return 0;
		flock(fd, LOCK_UN);
		if (attempt == 0)
			reopen(ti);
		if (ti->reopen_failed) {
			str_appendf(error, "%s: %s changed and cannot be re-opened", ti->t.spec,
			            ti->path);
			return -1;
		}
	}
	str_appendf(error, "%s: %s keeps changing", ti->t.spec, ti->path);
	return -1;
}

static void unlock_current(struct table_indexed *ti)
{
	int fd = ti->drv->fd(ti->db);

	if (fd >= 0)
		flock(fd, LOCK_UN);
}

/* Set r->value from stored bytes: a value ends at its first NUL. */
static void set_value(str_t *out, const str_t *stored)
{
	size_t n = strnlen(stored->buf != NULL ? stored->buf : "", stored->len);

	str_reset(out);
	if (n > 0)
		str_append_n(out, stored->buf, n);
}

void table_indexed_lookup(struct table *t, const char *key, struct table_result *r)
{
	struct table_indexed *ti = (struct table_indexed *)t;
	size_t klen = strlen(key);
	int rc = 0;
	str_t stored;

	check_path(ti);
	if (lock_current(ti, &r->error) < 0) {
		r->status = TABLE_TEMPFAIL;
		return;
	}
	str_init(&stored);
	/* Why both: postmap writes "key\0" by default (hash, btree, lmdb) or
	 * "key" (cdb, or -n), and a file says which only by its contents.
	 * Once a key is found one way, the other is no longer tried (Postfix
	 * dict_db_lookup). */
	if (ti->try_nul) {
		rc = ti->drv->get(ti->db, key, klen + 1, &stored, &r->error);
		if (rc > 0)
			ti->try_plain = false;
	}
	if (rc == 0 && ti->try_plain) {
		rc = ti->drv->get(ti->db, key, klen, &stored, &r->error);
		if (rc > 0)
			ti->try_nul = false;
	}
	unlock_current(ti);
	if (rc < 0) {
		r->status = TABLE_TEMPFAIL;
	} else if (rc == 0) {
		r->status = TABLE_NOTFOUND;
	} else {
		r->status = TABLE_FOUND;
		set_value(&r->value, &stored);
	}
	str_free(&stored);
}

struct dump_ctx {
	void (*fn)(const char *key, const char *value, void *ctx);
	void *ctx;
	str_t key, value;
};

static void dump_record(const void *key, size_t klen, const void *value, size_t vlen, void *ctx)
{
	struct dump_ctx *d = ctx;

	/* A record ends at its first NUL (the trailing one postmap adds). */
	str_reset(&d->key);
	str_append_n(&d->key, key, strnlen(key, klen));
	str_reset(&d->value);
	str_append_n(&d->value, value, strnlen(value, vlen));
	d->fn(str_c(&d->key), str_c(&d->value), d->ctx);
}

int table_indexed_dump(struct table *t, void (*fn)(const char *key, const char *value, void *ctx),
                       void *ctx, str_t *error)
{
	struct table_indexed *ti = (struct table_indexed *)t;
	struct dump_ctx d = {.fn = fn, .ctx = ctx};
	int rc;

	check_path(ti);
	if (lock_current(ti, error) < 0)
		return -1;
	str_init(&d.key);
	str_init(&d.value);
	rc = ti->drv->iterate(ti->db, dump_record, &d, error);
	unlock_current(ti);
	str_free(&d.key);
	str_free(&d.value);
	return rc;
}

void table_indexed_close(struct table *t)
{
	struct table_indexed *ti = (struct table_indexed *)t;

	if (ti->drv != NULL)
		ti->drv->close(&ti->db);
	xfree(&ti->path);
}

/* ---- writing ------------------------------------------------------------ */

struct indexed_writer {
	const struct indexed_driver *drv;
	char *path; /* the file: NAME.suffix */
	char *tmp_path; /* create: the new file, renamed to path at commit */
	struct indexed_db *db;
	int lock_fd; /* update: our descriptor holding the exclusive lock */
	bool nul;
};

int indexed_writer_open(const struct indexed_driver *drv, const char *name, bool create, int nul,
                        struct indexed_writer **w_r, str_t *error)
{
	struct indexed_writer *w = xcalloc(1, sizeof(*w));

	w->drv = drv;
	w->path = xasprintf("%s%s", name, drv->suffix);
	w->lock_fd = -1;
	w->nul = nul < 0 ? drv->nul_default : nul > 0;
	/* postmap -i on a file that is not there yet creates it */
	if (!create && access(w->path, F_OK) < 0 && errno == ENOENT)
		create = true;
	if (create) {
		/* Why a new file and a rename, where postmap truncates the file
		 * in place: a reader (ours or Postfix's) then sees either the
		 * old table or the new one, never an empty or partial one. */
		w->tmp_path = xasprintf("%s.postern-%ld.tmp", w->path, (long)getpid());
		if (unlink(w->tmp_path) < 0 && errno != ENOENT) {
			str_appendf(error, "unlink %s: %m", w->tmp_path);
			indexed_writer_abort(&w);
			return -1;
		}
		if (drv->open_write(w->tmp_path, true, &w->db, error) < 0) {
			indexed_writer_abort(&w);
			return -1;
		}
	} else {
		if (!drv->updatable) {
			str_appendf(error,
			            "%s:%s: %s files cannot be changed in place; rebuild the whole "
			            "file",
			            drv->type, name, drv->type);
			indexed_writer_abort(&w);
			return -1;
		}
		w->lock_fd = open(w->path, O_RDWR | O_CLOEXEC);
		if (w->lock_fd < 0) {
			str_appendf(error, "open %s: %m", w->path);
			indexed_writer_abort(&w);
			return -1;
		}
		if (lock_bounded(w->lock_fd, LOCK_EX, INDEXED_LOCK_WRITE_WAIT_MS) < 0) {
			str_appendf(error, "lock %s: %m", w->path);
			indexed_writer_abort(&w);
			return -1;
		}
		if (drv->open_write(w->path, false, &w->db, error) < 0) {
			indexed_writer_abort(&w);
			return -1;
		}
	}
	*w_r = w;
	return 0;
}

const char *indexed_writer_path(const struct indexed_writer *w)
{
	return w->path;
}

int indexed_writer_put_nul(struct indexed_writer *w, const char *key, const char *value, bool nul,
                           enum indexed_dup dup, str_t *error)
{
	size_t add = nul ? 1 : 0;
	int rc;

	rc = w->drv->put(w->db, key, strlen(key) + add, value, strlen(value) + add,
	                 dup == INDEXED_DUP_REPLACE, error);
	if (rc == 0 && dup == INDEXED_DUP_WARN)
		log_warning("%s: duplicate entry: \"%s\"", w->path, key);
	return rc;
}

int indexed_writer_put(struct indexed_writer *w, const char *key, const char *value,
                       enum indexed_dup dup, str_t *error)
{
	return indexed_writer_put_nul(w, key, value, w->nul, dup, error);
}

int indexed_writer_del(struct indexed_writer *w, const char *key, str_t *error)
{
	size_t klen = strlen(key);
	int rc;

	/* Postfix dict_db_delete: the form with the NUL first, then without. */
	rc = w->drv->del(w->db, key, klen + 1, error);
	if (rc == 0)
		rc = w->drv->del(w->db, key, klen, error);
	return rc;
}

/* Give the new file the mode and owner of the one it replaces. */
static void copy_mode(const char *from, const char *to)
{
	struct stat st;

	if (stat(from, &st) < 0)
		return;
	if (chmod(to, st.st_mode & 07777) < 0)
		log_warning("chmod %s: %m", to);
	if (geteuid() == 0 && chown(to, st.st_uid, st.st_gid) < 0)
		log_warning("chown %s: %m", to);
}

int indexed_writer_commit(struct indexed_writer **w_r, str_t *error)
{
	struct indexed_writer *w = *w_r;
	int rc = 0;

	if (w->drv->commit(w->db, error) < 0)
		rc = -1;
	w->drv->close(&w->db);
	if (rc == 0 && w->tmp_path != NULL) {
		copy_mode(w->path, w->tmp_path);
		if (rename(w->tmp_path, w->path) < 0) {
			str_appendf(error, "rename %s to %s: %m", w->tmp_path, w->path);
			rc = -1;
		} else {
			xfree(&w->tmp_path);
			if (fs_sync_dir_of(w->path, error) < 0)
				rc = -1;
		}
	}
	indexed_writer_abort(&w);
	*w_r = NULL;
	return rc;
}

void indexed_writer_abort(struct indexed_writer **w_r)
{
	struct indexed_writer *w = *w_r;

	if (w == NULL)
		return;
	if (w->db != NULL)
		w->drv->close(&w->db);
	if (w->tmp_path != NULL)
		(void)unlink(w->tmp_path);
	if (w->lock_fd >= 0)
		close(w->lock_fd);
	free(w->tmp_path);
	free(w->path);
	free(w);
	*w_r = NULL;
}
