/* table_postmap.c - postmap(1) and postalias(1): text file to indexed table
 * (see table_postmap.h).
 *
 * Used by `postern map build` (server/cli/cli_map.c) and newaliases
 * (server/cli/cli_sendmail.c). The source is cut into logical lines by
 * table_file.h, split as Postfix's postmap.c and postalias.c split them,
 * and written through table_indexed.h's writer, which replaces the old
 * file only once the new one is complete and fsync'd.
 *
 * On failure: a line that is not an entry is a warning (log_warning,
 * naming file and line) and is skipped, as in Postfix; a source that
 * cannot be read (or is larger than TABLE_FILE_MAX) and a file that
 * cannot be written are errors returned to the caller, the old table
 * left as it was.
 */
#include "table/table_postmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/log.h"
#include "base/mem.h"
#include "table/table.h"
#include "table/table_aliases.h"
#include "table/table_file.h"

int postmap_spec(const char *spec, const struct indexed_driver **drv_r, const char **name_r,
                 str_t *error)
{
	const char *colon = strchr(spec, ':');
	char *type;

	/* No type: Postfix's default_database_type (hash on Debian). A
	 * colon after a '/' is part of a file name, not a type. */
	if (colon == NULL || memchr(spec, '/', (size_t)(colon - spec)) != NULL) {
		*drv_r = &indexed_driver_hash;
		*name_r = spec;
		return 0;
	}
	*name_r = colon + 1;
	type = xstrndup(spec, (size_t)(colon - spec));
	if (strcmp(type, "texthash") == 0) {
		*drv_r = NULL;
	} else if ((*drv_r = indexed_driver_find(type)) == NULL) {
		str_appendf(error,
		            "%s: cannot build tables of type \"%s\" (postern builds hash, btree, "
		            "lmdb and cdb; texthash needs no building)",
		            spec, type);
		free(type);
		return -1;
	}
	free(type);
	if (**name_r == '\0') {
		str_appendf(error, "%s: no file name after the type", spec);
		return -1;
	}
	return 0;
}

static void fold(str_t *key, const struct postmap_options *o)
{
	if (!o->no_fold)
		str_lower(key);
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* One postmap line: "key whitespace value". 1 with key/value, 0 skipped
 * (warned). */
static int split_postmap(const char *label, unsigned lineno, const str_t *line, str_t *key,
                         str_t *value)
{
	const char *p = line->buf, *end = line->buf + line->len;
	const char *k_end;

	while (p < end && !is_space(*p))
		p++;
	k_end = p;
	while (p < end && is_space(*p))
		p++;
	str_reset(key);
	str_append_n(key, line->buf, (size_t)(k_end - line->buf));
	str_reset(value);
	str_append_n(value, p, (size_t)(end - p));
	str_trim(value);
	if (key->len == 0 || value->len == 0) {
		log_warning("%s, line %u: expected format: key whitespace value", label, lineno);
		return 0;
	}
	if (key->buf[key->len - 1] == ':')
		log_warning("%s, line %u: record is in \"key: value\" format; is this an alias "
		            "file?",
		            label, lineno);
	return 1;
}

/* Write every entry of text into w. -1 on a write error. */
static int write_entries(struct indexed_writer *w, const char *label, const str_t *text,
                         const struct postmap_options *o, size_t *entries, str_t *error)
{
	struct table_file_lines lines;
	str_t line, key, value, why;
	unsigned lineno;
	int rc, ret = 0;

	str_init(&line);
	str_init(&key);
	str_init(&value);
	str_init(&why);
	table_file_lines_init(&lines, label, text->buf != NULL ? text->buf : "", text->len);
	while ((rc = table_file_next(&lines, &line, &lineno, &why)) != 0) {
		if (rc < 0) {
			log_warning("%s", str_c(&why));
			str_reset(&why);
			continue;
		}
		if (o->aliases) {
			const char *complaint = NULL;

			rc = aliases_parse_line(str_c(&line), &key, &value, &complaint);
			if (rc < 0)
				log_warning("%s, line %u: %s", label, lineno, complaint);
			if (rc <= 0)
				continue;
		} else if (split_postmap(label, lineno, &line, &key, &value) == 0) {
			continue;
		}
		fold(&key, o);
		rc = indexed_writer_put(w, str_c(&key), str_c(&value), o->dup, error);
		if (rc < 0) {
			ret = -1;
			break;
		}
		*entries += (size_t)rc;
	}
	str_free(&line);
	str_free(&key);
	str_free(&value);
	str_free(&why);
	return ret;
}

/* postalias's trailer: "@" -> "@" (sendmail's "the database is complete"
 * mark) and, as Debian's Postfix (built with NIS support) writes them,
 * YP_LAST_MODIFIED and YP_MASTER_NAME without a trailing NUL. */
static int write_alias_trailer(struct indexed_writer *w, const struct postmap_options *o,
                               str_t *error)
{
	char stamp[32];

	if (indexed_writer_put(w, "@", "@", INDEXED_DUP_REPLACE, error) < 0)
		return -1;
	snprintf(stamp, sizeof(stamp), "%010ld", (long)time(NULL));
	if (indexed_writer_put_nul(w, "YP_LAST_MODIFIED", stamp, false, INDEXED_DUP_REPLACE,
	                           error) < 0)
		return -1;
	if (o->hostname != NULL && o->hostname[0] != '\0' &&
	    indexed_writer_put_nul(w, "YP_MASTER_NAME", o->hostname, false, INDEXED_DUP_REPLACE,
	                           error) < 0)
		return -1;
	return 0;
}

/* texthash: nothing to build; open it to report problems. */
static int check_texthash(const char *spec, size_t *entries, str_t *error)
{
	struct table *t = table_open(spec, NULL, error);

	if (t == NULL)
		return -1;
	table_close(&t);
	*entries = 0;
	return 0;
}

int postmap_build(const char *spec, const struct postmap_options *o, FILE *in, size_t *entries_r,
                  str_t *error)
{
	const struct indexed_driver *drv;
	struct table_file_stamp stamp;
	struct indexed_writer *w = NULL;
	size_t entries = 0;
	const char *name;
	str_t text, why;
	int rc = -1;

	if (postmap_spec(spec, &drv, &name, error) < 0)
		return -1;
	if (drv == NULL)
		return check_texthash(spec, entries_r != NULL ? entries_r : &entries, error);
	str_init(&text);
	str_init(&why);
	if (o->incremental) {
		if (fs_read_fd(fileno(in), "standard input", TABLE_FILE_MAX, &text, &why) < 0) {
			str_appendf(error, "%s", str_c(&why));
			goto out;
		}
	} else if (table_file_read(name, &text, &stamp, &why) < 0) {
		str_appendf(error, "%s", str_c(&why));
		goto out;
	}
	if (indexed_writer_open(drv, name, !o->incremental, o->nul, &w, error) < 0)
		goto out;
	if (write_entries(w, o->incremental ? "-" : name, &text, o, &entries, error) < 0)
		goto out;
	if (o->aliases && write_alias_trailer(w, o, error) < 0)
		goto out;
	if (indexed_writer_commit(&w, error) < 0)
		goto out;
	if (entries_r != NULL)
		*entries_r = entries;
	rc = 0;
out:
	indexed_writer_abort(&w);
	str_free(&text);
	str_free(&why);
	return rc;
}

int postmap_delete(const char *spec, const strv_t *keys, const struct postmap_options *o,
                   str_t *error)
{
	const struct indexed_driver *drv;
	struct indexed_writer *w = NULL;
	const char *name;
	int deleted = 0;
	str_t key;

	if (postmap_spec(spec, &drv, &name, error) < 0)
		return -1;
	if (drv == NULL) {
		str_appendf(error, "%s: texthash tables are edited as text files", spec);
		return -1;
	}
	if (indexed_writer_open(drv, name, false, o->nul, &w, error) < 0)
		return -1;
	str_init(&key);
	for (size_t i = 0; i < keys->n; i++) {
		int rc;

		str_set(&key, keys->v[i]);
		fold(&key, o);
		rc = indexed_writer_del(w, str_c(&key), error);
		if (rc < 0) {
			str_free(&key);
			indexed_writer_abort(&w);
			return -1;
		}
		deleted += rc;
	}
	str_free(&key);
	if (indexed_writer_commit(&w, error) < 0)
		return -1;
	return deleted;
}

int postmap_newaliases(const strv_t *specs, const char *hostname)
{
	struct postmap_options o = {
	        .aliases = true, .nul = -1, .dup = INDEXED_DUP_WARN, .hostname = hostname};
	int rc = 0;

	for (size_t i = 0; i < specs->n; i++) {
		const char *spec = specs->v[i];
		size_t entries = 0;
		str_t error;

		if (strncmp(spec, "proxy:", 6) == 0)
			spec += 6;
		str_init(&error);
		if (postmap_build(spec, &o, NULL, &entries, &error) < 0) {
			log_error("%s", str_c(&error));
			rc = -1;
		} else {
			log_debug(1, "%s: %zu aliases", spec, entries);
		}
		str_free(&error);
	}
	return rc;
}
