/* table_lmdb.c - lmdb:, the LMDB files of postmap(1) (Postfix's lmdb_table(5)).
 *
 * "lmdb:/etc/postfix/virtual" is the single file /etc/postfix/virtual.lmdb
 * (MDB_NOSUBDIR), keys and values with a trailing NUL as postmap writes
 * them. Like Postfix, postern opens it with MDB_NOLOCK and serialises
 * readers and writers with flock(2) instead of LMDB's lock file, so no
 * "-lock" file appears beside the table (table_indexed.c takes the
 * locks). This file is the LMDB driver of table_indexed.h and the backend.
 *
 * Writing: records go into write transactions of at most
 * LMDB_TXN_RECORDS records. A transaction that does not fit in the map
 * (MDB_MAP_FULL) is abandoned, the map doubled, and its records written
 * again, so a table of any size is built without a size setting (Postfix
 * has lmdb_map_size for this). Errors name the file and LMDB's reason; a
 * lookup error is a temporary failure.
 */
#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/str.h"
#include "base/strv.h"
#include "table/table_backends.h"
#include "table/table_indexed.h"

/* Postfix's default lmdb_map_size: the first map of a new file. */
#define LMDB_MAP_INITIAL ((size_t)16 * 1024 * 1024)
/* Records per write transaction (kept for a replay after MDB_MAP_FULL). */
#define LMDB_TXN_RECORDS 10000
/* Largest map postern grows to. */
#define LMDB_MAP_MAX ((size_t)64 * 1024 * 1024 * 1024)

/* A record of the open write transaction, kept to write it again. */
struct lmdb_pending {
	str_t key, value;
	bool replace;
	bool del;
};

struct indexed_db {
	MDB_env *env;
	MDB_dbi dbi;
	char *path;
	bool writing;
	/* writer only */
	MDB_txn *txn;
	size_t mapsize;
	struct lmdb_pending *pending;
	size_t npending, cap;
};

static void lmdb_close(struct indexed_db **dp);

static int lmdb_open(const char *path, bool write, bool create, struct indexed_db **db_r,
                     str_t *error)
{
	struct indexed_db *d = xcalloc(1, sizeof(*d));
	unsigned flags = MDB_NOSUBDIR | MDB_NOLOCK | MDB_NOTLS;
	MDB_txn *txn;
	int ret;

	d->path = xstrdup(path);
	d->writing = write;
	ret = mdb_env_create(&d->env);
	if (ret != 0) {
		str_appendf(error, "%s: mdb_env_create: %s", path, mdb_strerror(ret));
		free(d->path);
		free(d);
		return -1;
	}
	if (create) {
		d->mapsize = LMDB_MAP_INITIAL;
		mdb_env_set_mapsize(d->env, d->mapsize);
	}
	if (!write)
		flags |= MDB_RDONLY;
	else
		flags |= MDB_NOSYNC; /* synced once, at commit */
	ret = mdb_env_open(d->env, path, flags, 0644);
	if (ret != 0) {
		str_appendf(error, "open database %s: %s", path, mdb_strerror(ret));
		lmdb_close(&d);
		return -1;
	}
	if (!create) {
		MDB_envinfo info;

		mdb_env_info(d->env, &info);
		d->mapsize = info.me_mapsize;
	}
	ret = mdb_txn_begin(d->env, NULL, write ? 0 : MDB_RDONLY, &txn);
	if (ret == 0)
		ret = mdb_dbi_open(txn, NULL, 0, &d->dbi);
	if (ret == 0)
		ret = mdb_txn_commit(txn);
	else
		mdb_txn_abort(txn);
	if (ret != 0) {
		str_appendf(error, "open database %s: %s", path, mdb_strerror(ret));
		lmdb_close(&d);
		return -1;
	}
	*db_r = d;
	return 0;
}

static int lmdb_open_read(const char *path, struct indexed_db **db_r, str_t *error)
{
	return lmdb_open(path, false, false, db_r, error);
}

static int lmdb_open_write(const char *path, bool create, struct indexed_db **db_r, str_t *error)
{
	return lmdb_open(path, true, create, db_r, error);
}

static int lmdb_get(struct indexed_db *d, const void *key, size_t klen, str_t *value, str_t *error)
{
	MDB_val k = {.mv_size = klen, .mv_data = (void *)key}, v;
	MDB_txn *txn;
	int ret;

	if (klen == 0)
		return 0; /* LMDB refuses empty keys; postmap never stores one */
	ret = mdb_txn_begin(d->env, NULL, MDB_RDONLY, &txn);
	if (ret != 0) {
		str_appendf(error, "read %s: %s", d->path, mdb_strerror(ret));
		return -1;
	}
	ret = mdb_get(txn, d->dbi, &k, &v);
	if (ret == 0) {
		str_reset(value);
		str_append_n(value, v.mv_data, v.mv_size);
	}
	mdb_txn_abort(txn);
	if (ret == MDB_NOTFOUND)
		return 0;
	if (ret != 0) {
		str_appendf(error, "read %s: %s", d->path, mdb_strerror(ret));
		return -1;
	}
	return 1;
}

static int lmdb_iterate(struct indexed_db *d, indexed_record_fn *fn, void *ctx, str_t *error)
{
	MDB_cursor *cursor;
	MDB_val k, v;
	MDB_txn *txn;
	int ret;

	ret = mdb_txn_begin(d->env, NULL, MDB_RDONLY, &txn);
	if (ret == 0) {
		ret = mdb_cursor_open(txn, d->dbi, &cursor);
		if (ret != 0)
			mdb_txn_abort(txn);
	}
	if (ret != 0) {
		str_appendf(error, "read %s: %s", d->path, mdb_strerror(ret));
		return -1;
	}
	while ((ret = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) == 0)
		fn(k.mv_data, k.mv_size, v.mv_data, v.mv_size, ctx);
	mdb_cursor_close(cursor);
	mdb_txn_abort(txn);
	if (ret != MDB_NOTFOUND) {
		str_appendf(error, "read %s: %s", d->path, mdb_strerror(ret));
		return -1;
	}
	return 0;
}

static void pending_clear(struct indexed_db *d)
{
	for (size_t i = 0; i < d->npending; i++) {
		str_free(&d->pending[i].key);
		str_free(&d->pending[i].value);
	}
	d->npending = 0;
}

/* Apply one record to the open transaction. Returns LMDB's code (0 when
 * done, also for a put of an existing key or a delete of an absent one);
 * *done_r is 1 when the record changed the table, 0 when not. */
static int apply(struct indexed_db *d, const struct lmdb_pending *p, int *done_r)
{
	MDB_val k = {.mv_size = p->key.len, .mv_data = p->key.buf};
	MDB_val v = {.mv_size = p->value.len, .mv_data = p->value.buf};
	int ret;

	if (p->del)
		ret = mdb_del(d->txn, d->dbi, &k, NULL);
	else
		ret = mdb_put(d->txn, d->dbi, &k, &v, p->replace ? 0 : MDB_NOOVERWRITE);
	*done_r = ret == 0;
	if (ret == MDB_KEYEXIST || ret == MDB_NOTFOUND)
		ret = 0;
	return ret;
}

static int txn_begin(struct indexed_db *d, str_t *error)
{
	int ret;

	if (d->txn != NULL)
		return 0;
	ret = mdb_txn_begin(d->env, NULL, 0, &d->txn);
	if (ret != 0) {
		d->txn = NULL;
		str_appendf(error, "error writing %s: %s", d->path, mdb_strerror(ret));
		return -1;
	}
	return 0;
}

/* The map is full: abandon the transaction, double the map, and write
 * the pending records again. 0, or -1 with a message. */
static int grow_and_replay(struct indexed_db *d, str_t *error)
{
	for (;;) {
		int ret = 0;

		mdb_txn_abort(d->txn);
		d->txn = NULL;
		if (d->mapsize >= LMDB_MAP_MAX) {
			str_appendf(error, "error writing %s: larger than %zu bytes", d->path,
			            (size_t)LMDB_MAP_MAX);
			return -1;
		}
		d->mapsize *= 2;
		ret = mdb_env_set_mapsize(d->env, d->mapsize);
		if (ret != 0) {
			str_appendf(error, "error writing %s: %s", d->path, mdb_strerror(ret));
			return -1;
		}
		if (txn_begin(d, error) < 0)
			return -1;
		for (size_t i = 0; i < d->npending && ret == 0; i++) {
			int done;

			ret = apply(d, &d->pending[i], &done);
		}
		if (ret == 0)
			return 0;
		if (ret != MDB_MAP_FULL) {
			str_appendf(error, "error writing %s: %s", d->path, mdb_strerror(ret));
			return -1;
		}
	}
}

static int txn_commit(struct indexed_db *d, str_t *error)
{
	int ret;

	if (d->txn == NULL)
		return 0;
	for (;;) {
		ret = mdb_txn_commit(d->txn);
		d->txn = NULL;
		if (ret != MDB_MAP_FULL)
			break;
		if (txn_begin(d, error) < 0 || grow_and_replay(d, error) < 0)
			return -1;
	}
	pending_clear(d);
	if (ret != 0) {
		str_appendf(error, "error writing %s: %s", d->path, mdb_strerror(ret));
		return -1;
	}
	return 0;
}

static int write_record(struct indexed_db *d, const void *key, size_t klen, const void *value,
                        size_t vlen, bool replace, bool del, str_t *error)
{
	struct lmdb_pending *p;
	int ret, done = 0;

	if (klen == 0)
		return 0;
	if (d->npending >= LMDB_TXN_RECORDS && txn_commit(d, error) < 0)
		return -1;
	if (txn_begin(d, error) < 0)
		return -1;
	if (d->npending == d->cap) {
		d->cap = d->cap == 0 ? 256 : d->cap * 2;
		d->pending = xreallocarray(d->pending, d->cap, sizeof(*d->pending));
	}
	p = &d->pending[d->npending++];
	str_init(&p->key);
	str_init(&p->value);
	str_append_n(&p->key, key, klen);
	str_append_n(&p->value, value, vlen);
	p->replace = replace;
	p->del = del;
	ret = apply(d, p, &done);
	if (ret == MDB_MAP_FULL) {
		d->npending--; /* replayed below, then applied again */
		if (grow_and_replay(d, error) < 0) {
			str_free(&p->key);
			str_free(&p->value);
			return -1;
		}
		d->npending++;
		ret = apply(d, p, &done);
	}
	if (ret == 0)
		return done;
	str_appendf(error, "error writing %s: %s", d->path, mdb_strerror(ret));
	return -1;
}

static int lmdb_put(struct indexed_db *d, const void *key, size_t klen, const void *value,
                    size_t vlen, bool replace, str_t *error)
{
	return write_record(d, key, klen, value, vlen, replace, false, error);
}

static int lmdb_del(struct indexed_db *d, const void *key, size_t klen, str_t *error)
{
	return write_record(d, key, klen, "", 0, false, true, error);
}

static int lmdb_commit(struct indexed_db *d, str_t *error)
{
	int ret;

	if (txn_commit(d, error) < 0)
		return -1;
	ret = mdb_env_sync(d->env, 1);
	if (ret != 0) {
		str_appendf(error, "sync %s: %s", d->path, mdb_strerror(ret));
		return -1;
	}
	return 0;
}

static int lmdb_fd(struct indexed_db *d)
{
	mdb_filehandle_t fd;

	if (d == NULL || mdb_env_get_fd(d->env, &fd) != 0)
		return -1;
	return fd;
}

static void lmdb_close(struct indexed_db **dp)
{
	struct indexed_db *d = *dp;

	if (d == NULL)
		return;
	if (d->txn != NULL)
		mdb_txn_abort(d->txn);
	pending_clear(d);
	free(d->pending);
	mdb_env_close(d->env);
	free(d->path);
	free(d);
	*dp = NULL;
}

const struct indexed_driver indexed_driver_lmdb = {
        .type = "lmdb",
        .suffix = ".lmdb",
        .nul_default = true,
        .updatable = true,
        .open_read = lmdb_open_read,
        .get = lmdb_get,
        .iterate = lmdb_iterate,
        .open_write = lmdb_open_write,
        .put = lmdb_put,
        .del = lmdb_del,
        .commit = lmdb_commit,
        .fd = lmdb_fd,
        .close = lmdb_close,
};

static int lmdb_table_open(struct table *t, const char *name, const struct table_open_context *ctx,
                           str_t *error)
{
	return table_indexed_open(t, &indexed_driver_lmdb, name, ctx, error);
}

const struct table_backend table_backend_lmdb = {
        .type = "lmdb",
        .flags = TABLE_F_FIXED_KEYS | TABLE_F_DUMPABLE,
        .size = sizeof(struct table_indexed),
        .open = lmdb_table_open,
        .lookup = table_indexed_lookup,
        .dump = table_indexed_dump,
        .close = table_indexed_close,
};
