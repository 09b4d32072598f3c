/* table_postmap.h - build indexed tables from text, as postmap(1) and postalias(1) do.
 *
 * `postern map build hash:/etc/postfix/virtual` reads the text file
 * /etc/postfix/virtual and writes virtual.db; `-A` reads an aliases(5)
 * file as postalias does (newaliases uses that). The source is read the
 * way Postfix reads it: '#' comment lines and blank lines skipped, lines
 * starting with white space continue the previous one, "key whitespace
 * value" (or "name: value" for aliases), keys folded to lower case unless
 * told otherwise. Problems with a line are warnings naming the file and
 * line, and the line is skipped, as in Postfix; a file that cannot be read
 * or written is an error and the old table stays in place.
 *
 * Types: hash, btree, lmdb, cdb (table_indexed.h). texthash: has nothing
 * to build (postern reads the text itself): building it only checks that
 * it parses. A name without "type:" is hash: (Postfix's
 * default_database_type on Debian).
 */
#ifndef POSTERN_TABLE_POSTMAP_H
#define POSTERN_TABLE_POSTMAP_H

#include <stdbool.h>
#include <stdio.h>

#include "base/str.h"
#include "base/strv.h"
#include "table/table_indexed.h"

struct postmap_options {
	bool aliases; /* postalias: aliases(5) entries, then the "@" and YP_ records */
	bool incremental; /* -i: add the entries read to the existing file */
	int nul; /* -N: 1, -n: 0, else -1 (the type's default) */
	bool no_fold; /* -f: keep the case of keys */
	enum indexed_dup dup; /* -r: replace, -w: ignore, else warn */
	const char *hostname; /* aliases: the YP_MASTER_NAME record (myhostname) */
};

/* Build spec ("hash:/etc/aliases") from its text file, or, with
 * o->incremental, add the entries read from in (standard input) to the
 * existing file. Warnings about lines are logged; *entries_r (may be
 * NULL) is the number of entries stored. -1 with a message naming the
 * file on error (nothing replaced). */
int postmap_build(const char *spec, const struct postmap_options *o, FILE *in, size_t *entries_r,
                  str_t *error);

/* Delete each of keys (lower-cased unless o->no_fold) from spec's file
 * in place (postmap -d). Returns how many were deleted (0: none found),
 * or -1 with a message. */
int postmap_delete(const char *spec, const strv_t *keys, const struct postmap_options *o,
                   str_t *error);

/* newaliases (sendmail -bi): rebuild every table of specs (the
 * alias_database list) from its aliases(5) file, as postalias does, with
 * hostname for the YP_MASTER_NAME record. "proxy:" is dropped; texthash:
 * is only checked (postern reads the text itself); another type is an
 * error. Every table is tried; -1 when one failed, its reason logged. */
int postmap_newaliases(const strv_t *specs, const char *hostname);

/* Split spec into its driver and file name (NAME without the suffix);
 * "texthash:" gives *drv_r NULL. -1 with a message for another type. */
int postmap_spec(const char *spec, const struct indexed_driver **drv_r, const char **name_r,
                 str_t *error);

#endif
