/* table_bdb.c - hash: and btree:, the Berkeley DB files of postmap(1).
 *
 * "hash:/etc/postfix/transport" is the file /etc/postfix/transport.db, a
 * Berkeley DB 5 hash (btree: a B-tree) as Debian's postmap and postalias
 * build it: no environment, keys and values with a trailing NUL unless
 * built with -n. This file is the libdb driver of table_indexed.h (which
 * does NUL handling, locking and re-opening) and the two backends.
 *
 * Created files get the settings Postfix's dict_db.c gives them (a hash
 * table sized for 4096 elements, a 16 MB cache while building). Every
 * libdb error is reported with db_strerror() and the file name; a lookup
 * error is a temporary failure.
 */
#include <db.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "table/table_backends.h"
#include "table/table_indexed.h"

/* Postfix's DICT_DB_NELM and the default of its berkeley_db_create_buffer_size. */
#define BDB_NELEM 4096
#define BDB_CREATE_CACHE (16 * 1024 * 1024)

struct indexed_db {
	DB *db;
	char *path;
	bool writing;
};

/* libdb's own messages (it prints them to standard error by default)
 * go to the debug log; the error codes it returns say what failed. */
static void bdb_errcall(const DB_ENV *env, const char *prefix, const char *msg)
{
	(void)env;
	(void)prefix;
	log_debug(1, "libdb: %s", msg);
}

static int bdb_open(const char *path, DBTYPE type, bool write, bool create,
                    struct indexed_db **db_r, str_t *error)
{
	struct indexed_db *d;
	u_int32_t flags;
	DB *db;
	int ret;

	ret = db_create(&db, NULL, 0);
	if (ret != 0) {
		str_appendf(error, "%s: db_create: %s", path, db_strerror(ret));
		return -1;
	}
	db->set_errcall(db, bdb_errcall);
	if (create) {
		if (type == DB_HASH && (ret = db->set_h_nelem(db, BDB_NELEM)) != 0) {
			str_appendf(error, "%s: set_h_nelem: %s", path, db_strerror(ret));
			db->close(db, 0);
			return -1;
		}
		if ((ret = db->set_cachesize(db, 0, BDB_CREATE_CACHE, 0)) != 0) {
			str_appendf(error, "%s: set_cachesize: %s", path, db_strerror(ret));
			db->close(db, 0);
			return -1;
		}
	}
	flags = !write ? DB_RDONLY : create ? DB_CREATE | DB_EXCL : 0;
	ret = db->open(db, NULL, path, NULL, type, flags, 0644);
	if (ret != 0) {
		/* libdb returns errno values for system errors */
		if (ret == EINVAL && !create)
			str_appendf(error, "open database %s: not a Berkeley DB %s file", path,
			            type == DB_HASH ? "hash" : "btree");
		else if (ret > 0)
			str_appendf(error, "open database %s: %s", path, strerror(ret));
		else
			str_appendf(error, "open database %s: %s", path, db_strerror(ret));
		db->close(db, 0);
		return -1;
	}
	d = xcalloc(1, sizeof(*d));
	d->db = db;
	d->path = xstrdup(path);
	d->writing = write;
	*db_r = d;
	return 0;
}

static int hash_open_read(const char *path, struct indexed_db **db_r, str_t *error)
{
	return bdb_open(path, DB_HASH, false, false, db_r, error);
}

static int btree_open_read(const char *path, struct indexed_db **db_r, str_t *error)
{
	return bdb_open(path, DB_BTREE, false, false, db_r, error);
}

static int hash_open_write(const char *path, bool create, struct indexed_db **db_r, str_t *error)
{
	return bdb_open(path, DB_HASH, true, create, db_r, error);
}

static int btree_open_write(const char *path, bool create, struct indexed_db **db_r, str_t *error)
{
	return bdb_open(path, DB_BTREE, true, create, db_r, error);
}

static void dbt_set(DBT *dbt, const void *data, size_t len)
{
	memset(dbt, 0, sizeof(*dbt));
	dbt->data = (void *)data;
	dbt->size = (u_int32_t)len;
}

static int bdb_get(struct indexed_db *d, const void *key, size_t klen, str_t *value, str_t *error)
{
	DBT k, v;
	int ret;

	dbt_set(&k, key, klen);
	dbt_set(&v, NULL, 0);
	ret = d->db->get(d->db, NULL, &k, &v, 0);
	if (ret == DB_NOTFOUND)
		return 0;
	if (ret != 0) {
		str_appendf(error, "read %s: %s", d->path, db_strerror(ret));
		return -1;
	}
	str_reset(value);
	str_append_n(value, v.data, v.size);
	return 1;
}

static int bdb_iterate(struct indexed_db *d, indexed_record_fn *fn, void *ctx, str_t *error)
{
	DBC *cursor;
	DBT k, v;
	int ret;

	ret = d->db->cursor(d->db, NULL, &cursor, 0);
	if (ret != 0) {
		str_appendf(error, "read %s: %s", d->path, db_strerror(ret));
		return -1;
	}
	dbt_set(&k, NULL, 0);
	dbt_set(&v, NULL, 0);
	while ((ret = cursor->get(cursor, &k, &v, DB_NEXT)) == 0)
		fn(k.data, k.size, v.data, v.size, ctx);
	cursor->close(cursor);
	if (ret != DB_NOTFOUND) {
		str_appendf(error, "read %s: %s", d->path, db_strerror(ret));
		return -1;
	}
	return 0;
}

static int bdb_put(struct indexed_db *d, const void *key, size_t klen, const void *value,
                   size_t vlen, bool replace, str_t *error)
{
	DBT k, v;
	int ret;

	dbt_set(&k, key, klen);
	dbt_set(&v, value, vlen);
	ret = d->db->put(d->db, NULL, &k, &v, replace ? 0 : DB_NOOVERWRITE);
	if (ret == DB_KEYEXIST)
		return 0;
	if (ret != 0) {
		str_appendf(error, "error writing %s: %s", d->path, db_strerror(ret));
		return -1;
	}
	return 1;
}

static int bdb_del(struct indexed_db *d, const void *key, size_t klen, str_t *error)
{
	DBT k;
	int ret;

	dbt_set(&k, key, klen);
	ret = d->db->del(d->db, NULL, &k, 0);
	if (ret == DB_NOTFOUND)
		return 0;
	if (ret != 0) {
		str_appendf(error, "error deleting from %s: %s", d->path, db_strerror(ret));
		return -1;
	}
	return 1;
}

static int bdb_fd(struct indexed_db *d)
{
	int fd;

	if (d == NULL || d->db->fd(d->db, &fd) != 0)
		return -1;
	return fd;
}

static int bdb_commit(struct indexed_db *d, str_t *error)
{
	int ret = d->db->sync(d->db, 0);
	int fd = bdb_fd(d);

	if (ret != 0) {
		str_appendf(error, "sync %s: %s", d->path, db_strerror(ret));
		return -1;
	}
	if (fd >= 0 && fsync(fd) < 0) {
		str_appendf(error, "fsync %s: %m", d->path);
		return -1;
	}
	return 0;
}

static void bdb_close(struct indexed_db **dp)
{
	struct indexed_db *d = *dp;

	if (d == NULL)
		return;
	/* DB_NOSYNC for readers: there is nothing to write */
	d->db->close(d->db, d->writing ? 0 : DB_NOSYNC);
	free(d->path);
	free(d);
	*dp = NULL;
}

const struct indexed_driver indexed_driver_hash = {
        .type = "hash",
        .suffix = ".db",
        .nul_default = true,
        .updatable = true,
        .open_read = hash_open_read,
        .get = bdb_get,
        .iterate = bdb_iterate,
        .open_write = hash_open_write,
        .put = bdb_put,
        .del = bdb_del,
        .commit = bdb_commit,
        .fd = bdb_fd,
        .close = bdb_close,
};

const struct indexed_driver indexed_driver_btree = {
        .type = "btree",
        .suffix = ".db",
        .nul_default = true,
        .updatable = true,
        .open_read = btree_open_read,
        .get = bdb_get,
        .iterate = bdb_iterate,
        .open_write = btree_open_write,
        .put = bdb_put,
        .del = bdb_del,
        .commit = bdb_commit,
        .fd = bdb_fd,
        .close = bdb_close,
};

static int hash_table_open(struct table *t, const char *name, const struct table_open_context *ctx,
                           str_t *error)
{
	return table_indexed_open(t, &indexed_driver_hash, name, ctx, error);
}

static int btree_table_open(struct table *t, const char *name, const struct table_open_context *ctx,
                            str_t *error)
{
	return table_indexed_open(t, &indexed_driver_btree, name, ctx, error);
}

const struct table_backend table_backend_hash = {
        .type = "hash",
        .flags = TABLE_F_FIXED_KEYS | TABLE_F_DUMPABLE,
        .size = sizeof(struct table_indexed),
        .open = hash_table_open,
        .lookup = table_indexed_lookup,
        .dump = table_indexed_dump,
        .close = table_indexed_close,
};

const struct table_backend table_backend_btree = {
        .type = "btree",
        .flags = TABLE_F_FIXED_KEYS | TABLE_F_DUMPABLE,
        .size = sizeof(struct table_indexed),
        .open = btree_table_open,
        .lookup = table_indexed_lookup,
        .dump = table_indexed_dump,
        .close = table_indexed_close,
};
