/* table_file.c - reading table files in Postfix's line syntax (see table_file.h).
 *
 * Used by table_texthash.c, table_cidr.c and table_regexp.c. Reading is
 * bounded: a file larger than TABLE_FILE_MAX or a logical line longer than
 * TABLE_FILE_LINE_MAX is an error, never a truncated table. Failures are
 * reported as messages naming the file (and line); nothing here logs.
 */
#include "table/table_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/mem.h"
#include "table/table.h"

char *table_file_path(const char *name, const struct table_open_context *ctx)
{
	if (name[0] == '/' || ctx == NULL || ctx->config_dir == NULL || ctx->config_dir[0] == '\0')
		return xstrdup(name);
	return xasprintf("%s/%s", ctx->config_dir, name);
}

bool table_file_stamp_equal(const struct table_file_stamp *a, const struct table_file_stamp *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static void stamp_from_stat(const struct stat *st, struct table_file_stamp *stamp)
{
	stamp->dev = st->st_dev;
	stamp->ino = st->st_ino;
	stamp->size = st->st_size;
	stamp->mtime = st->st_mtim;
}

int table_file_stat(const char *path, struct table_file_stamp *stamp_r)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return -1;
	stamp_from_stat(&st, stamp_r);
	return 0;
}

int table_file_read(const char *path, str_t *out, struct table_file_stamp *stamp_r, str_t *error)
{
	struct table_file_stamp before, after;
	struct stat st;
	int fd;

	str_reset(out);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		str_appendf(error, "open %s: %m", path);
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		str_appendf(error, "fstat %s: %m", path);
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		str_appendf(error, "%s: not a regular file", path);
		close(fd);
		return -1;
	}
	if (st.st_size > TABLE_FILE_MAX) {
		str_appendf(error, "%s: larger than %d bytes", path, TABLE_FILE_MAX);
		close(fd);
		return -1;
	}
	stamp_from_stat(&st, &before);
	str_reserve(out, (size_t)st.st_size);
	if (fs_read_fd(fd, path, TABLE_FILE_MAX, out, error) < 0) {
		close(fd);
		return -1;
	}
	/* Why: a file rewritten in place (not by rename) may be caught half
	 * written; loading it would silently drop entries. Refuse it: the
	 * caller keeps what it had and tries again on the next change. */
	if (fstat(fd, &st) < 0) {
		str_appendf(error, "fstat %s: %m", path);
		close(fd);
		return -1;
	}
	close(fd);
	stamp_from_stat(&st, &after);
	if (!table_file_stamp_equal(&before, &after) || (off_t)out->len != after.size) {
		str_appendf(error, "%s: file changed while being read", path);
		return -1;
	}
	*stamp_r = after;
	return 0;
}

void table_file_lines_init(struct table_file_lines *l, const char *label, const char *buf,
                           size_t len)
{
	l->label = label;
	l->buf = buf;
	l->len = len;
	l->pos = 0;
	l->lineno = 0;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

int table_file_next(struct table_file_lines *l, str_t *line, unsigned *lineno_r, str_t *error)
{
	bool have_line = false, has_nul = false, too_long = false;
	unsigned first = 0;

	str_reset(line);
	while (l->pos < l->len) {
		const char *start = l->buf + l->pos;
		const char *nl = memchr(start, '\n', l->len - l->pos);
		size_t plen = nl != NULL ? (size_t)(nl - start) : l->len - l->pos;
		size_t next_pos = l->pos + plen + (nl != NULL ? 1 : 0);
		size_t i;

		if (plen > 0 && start[plen - 1] == '\r')
			plen--;
		/* Blank and comment lines are skipped; they do not end a
		 * logical line (Postfix readlline). */
		for (i = 0; i < plen && is_space(start[i]); i++)
			;
		if (i == plen || start[i] == '#') {
			l->pos = next_pos;
			l->lineno++;
			continue;
		}
		if (!is_space(start[0])) {
			if (have_line)
				break; /* the start of the next logical line */
			have_line = true;
			first = l->lineno + 1;
		} else if (!have_line) {
			l->pos = next_pos;
			l->lineno++;
			str_appendf(error,
			            "%s, line %u: a line that starts with white space continues "
			            "the previous line, but there is none",
			            l->label, l->lineno);
			return -1;
		}
		l->pos = next_pos;
		l->lineno++;
		if (memchr(start, '\0', plen) != NULL)
			has_nul = true;
		if (line->len + plen > TABLE_FILE_LINE_MAX)
			too_long = true;
		else if (!too_long)
			str_append_n(line, start, plen);
	}
	if (!have_line)
		return 0;
	*lineno_r = first;
	if (has_nul) {
		str_reset(line);
		str_appendf(error, "%s, line %u: line holds a NUL byte", l->label, first);
		return -1;
	}
	if (too_long) {
		str_reset(line);
		str_appendf(error, "%s, line %u: line longer than %d bytes", l->label, first,
		            TABLE_FILE_LINE_MAX);
		return -1;
	}
	str_trim(line);
	return 1;
}

void table_file_errors_init(struct table_file_errors *e)
{
	str_init(&e->text);
	e->count = 0;
}

void table_file_errors_free(struct table_file_errors *e)
{
	str_free(&e->text);
	e->count = 0;
}

void table_file_errors_add(struct table_file_errors *e, const char *fmt, ...)
{
	va_list ap;

	e->count++;
	if (e->count > TABLE_FILE_ERRORS_MAX)
		return;
	if (e->text.len > 0)
		str_append(&e->text, "; ");
	va_start(ap, fmt);
	str_vappendf(&e->text, fmt, ap);
	va_end(ap);
}

void table_file_errors_move(struct table_file_errors *e, str_t *error)
{
	if (e->count == 0)
		return;
	str_append_n(error, e->text.buf, e->text.len);
	if (e->count > TABLE_FILE_ERRORS_MAX)
		str_appendf(error, "; and %u more errors", e->count - TABLE_FILE_ERRORS_MAX);
	str_reset(&e->text);
	e->count = 0;
}

static bool is_list_sep(char c)
{
	return c == ',' || is_space(c);
}

int table_list_split(strv_t *out, const char *text, str_t *error)
{
	const char *p = text;

	for (;;) {
		const char *start;
		int depth = 0;

		while (is_list_sep(*p))
			p++;
		if (*p == '\0')
			return 0;
		start = p;
		for (; *p != '\0' && (depth > 0 || !is_list_sep(*p)); p++) {
			if (*p == '{') {
				depth++;
			} else if (*p == '}') {
				if (depth == 0) {
					str_appendf(error, "unexpected '}' in \"%s\"", text);
					return -1;
				}
				depth--;
			}
		}
		if (depth > 0) {
			str_appendf(error, "missing '}' in \"%s\"", text);
			return -1;
		}
		strv_add_n(out, start, (size_t)(p - start));
	}
}

char *table_list_unbrace(const char *element, str_t *error)
{
	const char *p, *start, *end;
	int depth = 0;

	if (element[0] != '{')
		return xstrdup(element);
	for (p = element; *p != '\0'; p++) {
		if (*p == '{')
			depth++;
		else if (*p == '}' && --depth == 0)
			break;
	}
	if (*p == '\0') {
		str_appendf(error, "missing '}' in \"%s\"", element);
		return NULL;
	}
	if (p[1] != '\0') {
		str_appendf(error, "text after '}' in \"%s\"", element);
		return NULL;
	}
	start = element + 1;
	end = p;
	while (start < end && is_space(*start))
		start++;
	while (end > start && is_space(end[-1]))
		end--;
	return xstrndup(start, (size_t)(end - start));
}
