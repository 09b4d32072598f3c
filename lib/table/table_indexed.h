/* table_indexed.h - Postfix's indexed files: hash:, btree:, lmdb:, cdb:.
 *
 * "hash:/etc/postfix/virtual" names the binary file that postmap(1) built
 * from the text file /etc/postfix/virtual: virtual.db (Berkeley DB hash or
 * btree), virtual.lmdb (LMDB) or virtual.cdb (tinycdb). postern reads the
 * files Debian's postmap and postalias build, and builds files they read
 * (table_postmap.h), so an existing install keeps its tables as they are.
 *
 * One driver per file format (table_bdb.c, table_lmdb.c, table_cdb.c)
 * does the raw byte-level work below; this module does what every format
 * shares, the way Postfix's dict_db.c/dict_lmdb.c/dict_cdb.c do:
 *
 *   - Trailing NUL bytes. postmap stores "key\0" -> "value\0" in .db and
 *     .lmdb files and "key" -> "value" in .cdb files (postmap -N / -n
 *     force one way). A lookup tries the key with its NUL, then without,
 *     and remembers which one the file uses once a key is found; a value
 *     ends at its first NUL byte.
 *   - Locking. A reader holds a shared flock(2) on the file while it
 *     reads, a writer an exclusive one while it writes (Postfix on Linux
 *     locks these files with flock). A full build writes a new file
 *     beside the old one and renames it into place.
 *   - Changes. A reader checks, under its lock, that the file it has open
 *     was not modified (postmap -i, -d) and, at most once a second, that
 *     the path still names it (a rebuild renames a new file in place);
 *     either way it re-opens the file before the next lookup, so a
 *     rebuilt table is used without a reload.
 */
#ifndef POSTERN_TABLE_INDEXED_H
#define POSTERN_TABLE_INDEXED_H

#include <stdbool.h>
#include <stddef.h>

#include "base/str.h"
#include "table/table.h"
#include "table/table_file.h"

/* An open database file of one driver. */
struct indexed_db;

typedef void indexed_record_fn(const void *key, size_t klen, const void *value, size_t vlen,
                               void *ctx);

/* One file format. Every function returns -1 with a message naming the
 * file appended to error on failure. */
struct indexed_driver {
	const char *type; /* "hash" */
	const char *suffix; /* ".db", appended to the table name */
	bool nul_default; /* postmap writes a trailing NUL (not for cdb) */
	bool updatable; /* can be changed in place (-i, -d); cdb cannot */
	/* Open path for reading. */
	int (*open_read)(const char *path, struct indexed_db **db_r, str_t *error);
	/* 1 found (value replaced by the stored bytes), 0 not found, -1 error. */
	int (*get)(struct indexed_db *db, const void *key, size_t klen, str_t *value, str_t *error);
	/* Call fn for every record, in the file's order. */
	int (*iterate)(struct indexed_db *db, indexed_record_fn *fn, void *ctx, str_t *error);
	/* Open for writing: create a new empty file at path (create), or
	 * open the existing file at path for an update in place. */
	int (*open_write)(const char *path, bool create, struct indexed_db **db_r, str_t *error);
	/* 1 stored, 0 the key exists and replace is false (nothing stored). */
	int (*put)(struct indexed_db *db, const void *key, size_t klen, const void *value,
	           size_t vlen, bool replace, str_t *error);
	/* 1 deleted, 0 not there. NULL when !updatable. */
	int (*del)(struct indexed_db *db, const void *key, size_t klen, str_t *error);
	/* Write everything out (fsync'd) before the file is renamed or
	 * unlocked. */
	int (*commit)(struct indexed_db *db, str_t *error);
	/* The descriptor that is flock(2)ed, or -1. */
	int (*fd)(struct indexed_db *db);
	/* Close and free; *db_r set to NULL; no-op on NULL. A writer not
	 * committed is abandoned. */
	void (*close)(struct indexed_db **db_r);
};

extern const struct indexed_driver indexed_driver_hash; /* table_bdb.c */
extern const struct indexed_driver indexed_driver_btree; /* table_bdb.c */
extern const struct indexed_driver indexed_driver_lmdb; /* table_lmdb.c */
extern const struct indexed_driver indexed_driver_cdb; /* table_cdb.c */

/* The driver of a type name ("hash"), or NULL. */
const struct indexed_driver *indexed_driver_find(const char *type);

/* The table object every indexed backend uses, and its functions: the
 * backends differ only in their driver. */
struct table_indexed {
	struct table t;
	const struct indexed_driver *drv;
	char *path; /* name + suffix, resolved against config_dir */
	struct indexed_db *db;
	int lock_fd; /* our own descriptor of the file, for flock */
	struct table_file_stamp stamp; /* the version open (fstat at open) */
	struct timespec last_check; /* last time the path was checked */
	bool try_nul, try_plain; /* Postfix's DICT_FLAG_TRY1NULL / TRY0NULL */
	bool reopen_failed; /* a failed re-open was logged */
};

int table_indexed_open(struct table *t, const struct indexed_driver *drv, const char *name,
                       const struct table_open_context *ctx, str_t *error);
void table_indexed_lookup(struct table *t, const char *key, struct table_result *r);
int table_indexed_dump(struct table *t, void (*fn)(const char *key, const char *value, void *ctx),
                       void *ctx, str_t *error);
void table_indexed_close(struct table *t);

/* ---- writing (postmap, postalias, newaliases) --------------------------- */

/* What to do when a key is stored twice. */
enum indexed_dup {
	INDEXED_DUP_WARN, /* keep the first, warn (postmap's default) */
	INDEXED_DUP_REPLACE, /* the last one wins, quietly (postmap -r) */
	INDEXED_DUP_IGNORE, /* keep the first, quietly (postmap -w) */
};

struct indexed_writer;

/* Open TYPE's file for name (name + the driver's suffix) for writing.
 * create: a new file is built beside the old one (FILE.db.tmp.PID) and
 * replaces it at indexed_writer_commit(); else the existing file is
 * updated in place under an exclusive lock (postmap -i, -d; not cdb),
 * or built new when it does not exist yet.
 * nul: 1 store keys and values with a trailing NUL, 0 without, -1 the
 * driver's default (for an update: what the file holds). -1 with a
 * message on error. */
int indexed_writer_open(const struct indexed_driver *drv, const char *name, bool create, int nul,
                        struct indexed_writer **w_r, str_t *error);
/* The file written (FILE.db), for messages. */
const char *indexed_writer_path(const struct indexed_writer *w);
/* Store key -> value. A duplicate key is handled per dup; with
 * INDEXED_DUP_WARN it is logged as postmap does ("FILE: duplicate entry:
 * \"key\""). 1 stored, 0 not (duplicate), -1 error. */
int indexed_writer_put(struct indexed_writer *w, const char *key, const char *value,
                       enum indexed_dup dup, str_t *error);
/* The same with the trailing-NUL choice given for this record (postalias
 * writes its YP_ records without one). */
int indexed_writer_put_nul(struct indexed_writer *w, const char *key, const char *value, bool nul,
                           enum indexed_dup dup, str_t *error);
/* Delete key (with and without a trailing NUL). 1 deleted, 0 not found. */
int indexed_writer_del(struct indexed_writer *w, const char *key, str_t *error);
/* Write out (fsync), rename a new file into place, unlock, free. -1 with
 * a message (the new file is removed, the old one is left as it was).
 * *w_r set to NULL either way. */
int indexed_writer_commit(struct indexed_writer **w_r, str_t *error);
/* Abandon: a new file is removed; an update in place keeps what was
 * written. *w_r set to NULL; no-op on NULL. */
void indexed_writer_abort(struct indexed_writer **w_r);

#endif
