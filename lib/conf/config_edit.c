/* config_edit.c - in-place main.cf editing (see config_edit.h).
 *
 * Works on physical lines with the same rules as the parser (config.c):
 * an entry starts at a line with no leading white space, continuation
 * lines start with white space, blank and '#' lines are ignored. Blank
 * and comment lines that merely follow an entry are not part of it, so
 * they survive when the entry is replaced or removed.
 */
#include "conf/config_edit.h"

#include <stdbool.h>
#include <string.h>

struct line {
	const char *start;
	size_t len; /* without the newline */
	bool has_newline;
};

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static bool is_blank_or_comment(const struct line *l)
{
	size_t i = 0;

	while (i < l->len && is_space(l->start[i]))
		i++;
	return i == l->len || l->start[i] == '#';
}

static bool starts_entry_for(const struct line *l, const char *name)
{
	size_t nlen = strlen(name), i;

	if (is_blank_or_comment(l) || is_space(l->start[0]) || l->len < nlen ||
	    memcmp(l->start, name, nlen) != 0)
		return false;
	for (i = nlen; i < l->len && is_space(l->start[i]); i++)
		;
	return i < l->len && l->start[i] == '=';
}

/* "name = value", or "name =" for an empty value (no trailing blank). */
static void append_entry(str_t *out, const char *name, const char *value)
{
	str_appendf(out, "%s =%s%s\n", name, value[0] != '\0' ? " " : "", value);
}

int config_edit_text(const char *text, size_t len, const char *name, const char *value, str_t *out)
{
	size_t pos = 0;
	int found = 0;
	bool last_had_newline = true;

	while (pos < len) {
		struct line l = {text + pos, 0, false};
		const char *nl = memchr(l.start, '\n', len - pos);
		size_t next;

		l.len = nl != NULL ? (size_t)(nl - l.start) : len - pos;
		l.has_newline = nl != NULL;
		next = pos + l.len + l.has_newline;
		if (!starts_entry_for(&l, name)) {
			str_append_n(out, l.start, l.len + l.has_newline);
			last_had_newline = l.has_newline;
			pos = next;
			continue;
		}
		/* Find the entry's last continuation line. */
		{
			size_t scan = next, end = next;

			while (scan < len) {
				struct line c = {text + scan, 0, false};
				const char *cnl = memchr(c.start, '\n', len - scan);

				c.len = cnl != NULL ? (size_t)(cnl - c.start) : len - scan;
				c.has_newline = cnl != NULL;
				if (!is_blank_or_comment(&c) && !is_space(c.start[0]))
					break;
				scan += c.len + c.has_newline;
				if (!is_blank_or_comment(&c))
					end = scan;
			}
			next = end;
		}
		if (found++ == 0 && value != NULL) {
			append_entry(out, name, value);
			last_had_newline = true;
		}
		pos = next;
	}
	if (found == 0 && value != NULL) {
		if (!last_had_newline)
			str_append_c(out, '\n');
		append_entry(out, name, value);
	}
	return found;
}
