/* table_cdb.c - cdb:, the constant databases of postmap(1) (tinycdb).
 *
 * "cdb:/etc/postfix/virtual" is the file /etc/postfix/virtual.cdb, in D. J.
 * Bernstein's cdb format as Postfix writes it with tinycdb: keys and
 * values WITHOUT a trailing NUL (postmap -N adds one). A cdb file cannot
 * be changed, only rebuilt: postmap -i and -d refuse it, and so does
 * `postern map build`. This file is the tinycdb driver of table_indexed.h
 * and the backend; reading maps the file (cdb_init).
 *
 * Errors name the file; a lookup error is a temporary failure.
 */
#include <cdb.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem.h"
#include "table/table_backends.h"
#include "table/table_indexed.h"

struct indexed_db {
	int fd;
	char *path;
	bool writing;
	bool finished; /* cdb_make_finish() was called */
	struct cdb cdb; /* reading */
	struct cdb_make make; /* writing */
};

static void cdb_driver_close(struct indexed_db **dp)
{
	struct indexed_db *d = *dp;

	if (d == NULL)
		return;
	/* tinycdb frees its record lists only in cdb_make_finish(); an
	 * abandoned file (removed by the caller) is finished to free them. */
	if (d->writing && !d->finished)
		(void)cdb_make_finish(&d->make);
	else if (!d->writing)
		cdb_free(&d->cdb);
	if (d->fd >= 0)
		close(d->fd);
	free(d->path);
	free(d);
	*dp = NULL;
}

static int cdb_open_read(const char *path, struct indexed_db **db_r, str_t *error)
{
	struct indexed_db *d;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		str_appendf(error, "open database %s: %m", path);
		return -1;
	}
	d = xcalloc(1, sizeof(*d));
	d->fd = fd;
	d->path = xstrdup(path);
	if (cdb_init(&d->cdb, fd) < 0) {
		str_appendf(error, "open database %s: not a cdb file (%m)", path);
		close(fd);
		free(d->path);
		free(d);
		return -1;
	}
	*db_r = d;
	return 0;
}

static int cdb_driver_get(struct indexed_db *d, const void *key, size_t klen, str_t *value,
                          str_t *error)
{
	const void *data;
	unsigned len;
	int ret;

	if (klen > UINT32_MAX)
		return 0;
	ret = cdb_find(&d->cdb, key, (unsigned)klen);
	if (ret == 0)
		return 0;
	if (ret < 0) {
		str_appendf(error, "read %s: %m", d->path);
		return -1;
	}
	len = cdb_datalen(&d->cdb);
	data = cdb_get(&d->cdb, len, cdb_datapos(&d->cdb));
	if (data == NULL) {
		str_appendf(error, "read %s: record beyond the end of the file", d->path);
		return -1;
	}
	str_reset(value);
	str_append_n(value, data, len);
	return 1;
}

static int cdb_driver_iterate(struct indexed_db *d, indexed_record_fn *fn, void *ctx, str_t *error)
{
	unsigned pos;
	int ret;

	cdb_seqinit(&pos, &d->cdb);
	while ((ret = cdb_seqnext(&pos, &d->cdb)) > 0) {
		const void *k = cdb_get(&d->cdb, cdb_keylen(&d->cdb), cdb_keypos(&d->cdb));
		const void *v = cdb_get(&d->cdb, cdb_datalen(&d->cdb), cdb_datapos(&d->cdb));

		if (k == NULL || v == NULL) {
			ret = -1;
			break;
		}
		fn(k, cdb_keylen(&d->cdb), v, cdb_datalen(&d->cdb), ctx);
	}
	if (ret < 0) {
		str_appendf(error, "read %s: damaged cdb file", d->path);
		return -1;
	}
	return 0;
}

static int cdb_open_write(const char *path, bool create, struct indexed_db **db_r, str_t *error)
{
	struct indexed_db *d;
	int fd;

	if (!create) {
		str_appendf(error, "%s: cdb files cannot be updated in place", path);
		return -1;
	}
	/* O_RDWR: tinycdb reads back what it wrote to find duplicate keys */
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		str_appendf(error, "open database %s: %m", path);
		return -1;
	}
	d = xcalloc(1, sizeof(*d));
	d->fd = fd;
	d->path = xstrdup(path);
	d->writing = true;
	if (cdb_make_start(&d->make, fd) < 0) {
		str_appendf(error, "open database %s: %m", path);
		d->finished = true;
		cdb_driver_close(&d);
		return -1;
	}
	*db_r = d;
	return 0;
}

static int cdb_driver_put(struct indexed_db *d, const void *key, size_t klen, const void *value,
                          size_t vlen, bool replace, str_t *error)
{
	int ret;

	if (klen > UINT32_MAX / 2 || vlen > UINT32_MAX / 2) {
		str_appendf(error, "error writing %s: record too large", d->path);
		return -1;
	}
	ret = cdb_make_put(&d->make, key, (unsigned)klen, value, (unsigned)vlen,
	                   replace ? CDB_PUT_REPLACE : CDB_PUT_INSERT);
	if (ret < 0) {
		str_appendf(error, "error writing %s: %m", d->path);
		return -1;
	}
	if (!replace && ret > 0)
		return 0; /* CDB_PUT_INSERT: the key exists, nothing added */
	return 1;
}

static int cdb_driver_commit(struct indexed_db *d, str_t *error)
{
	d->finished = true;
	if (cdb_make_finish(&d->make) < 0) {
		str_appendf(error, "error writing %s: %m", d->path);
		return -1;
	}
	if (fsync(d->fd) < 0) {
		str_appendf(error, "fsync %s: %m", d->path);
		return -1;
	}
	return 0;
}

static int cdb_driver_fd(struct indexed_db *d)
{
	return d != NULL ? d->fd : -1;
}

const struct indexed_driver indexed_driver_cdb = {
        .type = "cdb",
        .suffix = ".cdb",
        .nul_default = false,
        .updatable = false,
        .open_read = cdb_open_read,
        .get = cdb_driver_get,
        .iterate = cdb_driver_iterate,
        .open_write = cdb_open_write,
        .put = cdb_driver_put,
        .del = NULL,
        .commit = cdb_driver_commit,
        .fd = cdb_driver_fd,
        .close = cdb_driver_close,
};

static int cdb_table_open(struct table *t, const char *name, const struct table_open_context *ctx,
                          str_t *error)
{
	return table_indexed_open(t, &indexed_driver_cdb, name, ctx, error);
}

const struct table_backend table_backend_cdb = {
        .type = "cdb",
        .flags = TABLE_F_FIXED_KEYS | TABLE_F_DUMPABLE,
        .size = sizeof(struct table_indexed),
        .open = cdb_table_open,
        .lookup = table_indexed_lookup,
        .dump = table_indexed_dump,
        .close = table_indexed_close,
};
