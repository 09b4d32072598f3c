/* table_texthash.c - texthash:/path, a postmap(1) source file read into memory.
 *
 * The file has Postfix's postmap input format: "key whitespace value",
 * '#' comment lines, blank lines, and lines starting with white space
 * continuing the previous one. Keys are folded to lower case. A key given
 * twice is a warning naming both lines, and the first one wins, as with
 * Postfix's texthash. Unlike Postfix, postern notices when the file
 * changes (mtime, size or inode, checked at most once per second at
 * lookup time) and reloads it, so `postmap` and a reload are not needed
 * after an edit.
 *
 * Failure: open fails (naming file and line) when the file cannot be read
 * or holds a malformed line. Why malformed lines are errors and not, as in
 * Postfix, warnings: a reload must never replace a working table with a
 * partly understood one; a reload that fails keeps the contents loaded
 * before and logs the error (once per version of the file).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/hash.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/strv.h"
#include "table/table.h"
#include "table/table_backends.h"
#include "table/table_file.h"

/* Check the file for changes at most this often. */
#define TEXTHASH_CHECK_INTERVAL_MS 1000

/* One loaded version of the file. */
struct texthash_data {
	hash_t *index; /* key -> position + 1 */
	strv_t keys; /* in file order, for dump */
	strv_t values;
	unsigned *lines; /* line of each key, for duplicate warnings */
	size_t lines_cap;
};

struct table_texthash {
	struct table t;
	char *path;
	char *label; /* "texthash:PATH", names the file in messages */
	struct texthash_data *data;
	struct table_file_stamp stamp; /* version loaded */
	struct table_file_stamp failed_stamp; /* version that failed to load */
	bool failed_valid;
	bool stat_failed; /* stat error already logged */
	struct timespec last_check;
};

static void data_free(struct texthash_data **dp)
{
	struct texthash_data *d = *dp;

	if (d == NULL)
		return;
	hash_destroy(&d->index);
	strv_free(&d->keys);
	strv_free(&d->values);
	free(d->lines);
	free(d);
	*dp = NULL;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Parse one logical line into d; problems go to errors (fatal) or the log
 * (warnings). */
static void parse_line(struct texthash_data *d, const char *label, unsigned lineno, str_t *line,
                       struct table_file_errors *errors)
{
	char *key = line->buf, *value;
	uintptr_t pos;

	value = key;
	while (*value != '\0' && !is_space(*value))
		value++;
	if (*value != '\0')
		*value++ = '\0';
	while (is_space(*value))
		value++;
	if (*value == '\0') {
		table_file_errors_add(errors, "%s, line %u: expected format: key whitespace value",
		                      label, lineno);
		return;
	}
	if (key[strlen(key) - 1] == ':')
		log_warning("%s, line %u: record is in \"key: value\" format; is this an alias "
		            "file?",
		            label, lineno);
	if (strlen(key) > TABLE_KEY_MAX)
		log_warning("%s, line %u: key longer than %d bytes: no lookup can match it", label,
		            lineno, TABLE_KEY_MAX);
	for (char *p = key; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	pos = (uintptr_t)hash_get(d->index, key);
	if (pos != 0) {
		log_warning("%s, line %u: duplicate entry \"%s\": the first one (line %u) wins",
		            label, lineno, key, d->lines[pos - 1]);
		return;
	}
	if (d->keys.n == d->lines_cap) {
		d->lines_cap = d->lines_cap == 0 ? 64 : d->lines_cap * 2;
		d->lines = xreallocarray(d->lines, d->lines_cap, sizeof(*d->lines));
	}
	d->lines[d->keys.n] = lineno;
	strv_add(&d->keys, key);
	strv_add(&d->values, value);
	hash_put(d->index, key, (void *)(uintptr_t)d->keys.n);
}

/* Read and parse the file. 0 with *data_r and *stamp_r, or -1 with the
 * reasons (naming file and line) appended to error. */
static int load(const struct table_texthash *th, struct texthash_data **data_r,
                struct table_file_stamp *stamp_r, str_t *error)
{
	struct table_file_errors errors;
	struct table_file_lines lines;
	struct texthash_data *d;
	str_t text, line, why;
	unsigned lineno;
	int rc;

	str_init(&text);
	str_init(&why);
	if (table_file_read(th->path, &text, stamp_r, &why) < 0) {
		str_appendf(error, "%s: %s", th->label, str_c(&why));
		str_free(&why);
		str_free(&text);
		return -1;
	}
	d = xcalloc(1, sizeof(*d));
	d->index = hash_new(NULL);
	str_init(&line);
	table_file_errors_init(&errors);
	table_file_lines_init(&lines, th->label, text.buf, text.len);
	while ((rc = table_file_next(&lines, &line, &lineno, &why)) != 0) {
		if (rc < 0) {
			table_file_errors_add(&errors, "%s", str_c(&why));
			str_reset(&why);
			continue;
		}
		parse_line(d, th->label, lineno, &line, &errors);
	}
	str_free(&line);
	str_free(&why);
	str_free(&text);
	if (errors.count > 0) {
		table_file_errors_move(&errors, error);
		table_file_errors_free(&errors);
		data_free(&d);
		return -1;
	}
	table_file_errors_free(&errors);
	*data_r = d;
	return 0;
}

static int texthash_open(struct table *t, const char *name, const struct table_open_context *ctx,
                         str_t *error)
{
	struct table_texthash *th = (struct table_texthash *)t;

	th->path = table_file_path(name, ctx);
	th->label = xasprintf("texthash:%s", th->path);
	if (load(th, &th->data, &th->stamp, error) < 0)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &th->last_check);
	return 0;
}

/* Reload when the file changed and the last check is a second old. */
static void maybe_reload(struct table_texthash *th)
{
	struct table_file_stamp now_stamp, loaded_stamp;
	struct texthash_data *fresh = NULL;
	struct timespec now;
	long ms;
	str_t why;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (long)(now.tv_sec - th->last_check.tv_sec) * 1000 +
	     (long)(now.tv_nsec - th->last_check.tv_nsec) / 1000000;
	if (ms < TEXTHASH_CHECK_INTERVAL_MS)
		return;
	th->last_check = now;
	if (table_file_stat(th->path, &now_stamp) < 0) {
		if (!th->stat_failed)
			log_error("%s: cannot check for changes: stat %s: %m; keeping the %zu "
			          "entries loaded before",
			          th->t.spec, th->path, th->data->keys.n);
		th->stat_failed = true;
		return;
	}
	th->stat_failed = false;
	if (table_file_stamp_equal(&now_stamp, &th->stamp))
		return;
	if (th->failed_valid && table_file_stamp_equal(&now_stamp, &th->failed_stamp))
		return; /* this version was already reported as broken */
	str_init(&why);
	if (load(th, &fresh, &loaded_stamp, &why) < 0) {
		log_error("%s: reload failed: %s; keeping the %zu entries loaded before",
		          th->t.spec, str_c(&why), th->data->keys.n);
		th->failed_stamp = now_stamp;
		th->failed_valid = true;
		str_free(&why);
		return;
	}
	str_free(&why);
	data_free(&th->data);
	th->data = fresh;
	th->stamp = loaded_stamp;
	th->failed_valid = false;
	log_info("%s: reloaded, %zu entries", th->t.spec, th->data->keys.n);
}

static void texthash_lookup(struct table *t, const char *key, struct table_result *r)
{
	struct table_texthash *th = (struct table_texthash *)t;
	uintptr_t pos;

	maybe_reload(th);
	pos = (uintptr_t)hash_get(th->data->index, key);
	if (pos == 0) {
		r->status = TABLE_NOTFOUND;
		return;
	}
	r->status = TABLE_FOUND;
	str_set(&r->value, th->data->values.v[pos - 1]);
}

static int texthash_dump(struct table *t, void (*fn)(const char *key, const char *value, void *ctx),
                         void *ctx, str_t *error)
{
	struct table_texthash *th = (struct table_texthash *)t;

	(void)error;
	maybe_reload(th);
	for (size_t i = 0; i < th->data->keys.n; i++)
		fn(th->data->keys.v[i], th->data->values.v[i], ctx);
	return 0;
}

static void texthash_close(struct table *t)
{
	struct table_texthash *th = (struct table_texthash *)t;

	data_free(&th->data);
	xfree(&th->path);
	xfree(&th->label);
}

const struct table_backend table_backend_texthash = {
        .type = "texthash",
        .flags = TABLE_F_FIXED_KEYS | TABLE_F_DUMPABLE,
        .size = sizeof(struct table_texthash),
        .open = texthash_open,
        .lookup = texthash_lookup,
        .dump = texthash_dump,
        .close = texthash_close,
};
