/* alias_list.c - split aliases(5), .forward and :include: values into
 * typed destinations (see alias_list.h).
 *
 * Used by server/local. Input comes from files users own (.forward,
 * :include: files) and from tables: every byte is bounded by len, every
 * destination by ALIAS_LIST_ITEM_MAX, the count by max_items. Nothing
 * here runs or opens anything: the caller decides what a command or
 * file destination may do (allow_mail_to_commands, allow_mail_to_files).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/mem.h"
#include "delivery/alias_list.h"

const char *alias_item_type_name(enum alias_item_type type)
{
	switch (type) {
	case ALIAS_ITEM_COMMAND:
		return "command";
	case ALIAS_ITEM_FILE:
		return "file";
	case ALIAS_ITEM_INCLUDE:
		return "include";
	case ALIAS_ITEM_ADDRESS:
		break;
	}
	return "address";
}

void alias_list_free(struct alias_list *list)
{
	for (size_t i = 0; i < list->n; i++)
		free(list->items[i].value);
	free(list->items);
	list->items = NULL;
	list->n = 0;
}

/* Classify one unquoted destination and add it. -1 when over max. */
static int add_item(struct alias_list *list, str_t *d, size_t max_items, str_t *why)
{
	struct alias_item item = {.type = ALIAS_ITEM_ADDRESS};
	const char *v;

	str_trim(d);
	if (d->len == 0)
		return 0;
	if (list->n >= max_items) {
		str_appendf(why, "more than %zu destinations", max_items);
		return -1;
	}
	v = str_c(d);
	if (v[0] == '|') {
		item.type = ALIAS_ITEM_COMMAND;
		v++;
		while (*v == ' ' || *v == '\t')
			v++;
	} else if (v[0] == '/') {
		item.type = ALIAS_ITEM_FILE;
	} else if (strncasecmp(v, ":include:", 9) == 0) {
		item.type = ALIAS_ITEM_INCLUDE;
		v += 9;
		while (*v == ' ' || *v == '\t')
			v++;
	} else if (v[0] == '\\') {
		item.no_alias = true;
		v++;
	}
	if (*v == '\0') {
		str_appendf(why, "empty %s in \"%s\"", alias_item_type_name(item.type), str_c(d));
		return -1;
	}
	item.value = xstrdup(v);
	list->items = xreallocarray(list->items, list->n + 1, sizeof(*list->items));
	list->items[list->n++] = item;
	return 0;
}

int alias_list_parse(const char *text, size_t len, size_t max_items, struct alias_list *list,
                     str_t *why)
{
	size_t first = list->n;
	str_t d, angle;
	bool in_angle = false, had_angle = false;
	int rc = -1;

	str_init(&d);
	str_init(&angle);
	for (size_t i = 0; i <= len; i++) {
		char c = i < len ? text[i] : ',';

		if (i < len && c == '\0') {
			str_append(why, "NUL byte in the list");
			goto out;
		}
		if (c == '"') {
			/* A quoted part: copy it unquoted. */
			for (i++;; i++) {
				if (i >= len) {
					str_append(why, "unterminated quoted string");
					goto out;
				}
				if (text[i] == '"')
					break;
				if (text[i] == '\\' && i + 1 < len)
					i++;
				if (text[i] == '\0') {
					str_append(why, "NUL byte in the list");
					goto out;
				}
				str_append_c(in_angle ? &angle : &d, text[i]);
			}
		} else if (c == '(') {
			/* A comment, possibly nested: dropped. */
			unsigned depth = 1;

			for (i++; depth > 0; i++) {
				if (i >= len) {
					str_append(why, "unterminated (comment)");
					goto out;
				}
				if (text[i] == '\\')
					i++;
				else if (text[i] == '(')
					depth++;
				else if (text[i] == ')')
					depth--;
			}
			i--;
		} else if (c == '<' && !in_angle) {
			in_angle = true;
			had_angle = true;
			str_reset(&angle);
		} else if (c == '>' && in_angle) {
			in_angle = false;
		} else if (c == ',' && !in_angle) {
			/* "Name <addr>": the address alone. */
			if (had_angle)
				str_set(&d, str_c(&angle));
			if (d.len > ALIAS_LIST_ITEM_MAX) {
				str_appendf(why, "destination longer than %d bytes",
				            ALIAS_LIST_ITEM_MAX);
				goto out;
			}
			if (add_item(list, &d, max_items, why) < 0)
				goto out;
			str_reset(&d);
			had_angle = false;
		} else {
			str_append_c(in_angle ? &angle : &d, c);
		}
		if (d.len > ALIAS_LIST_ITEM_MAX || angle.len > ALIAS_LIST_ITEM_MAX) {
			str_appendf(why, "destination longer than %d bytes", ALIAS_LIST_ITEM_MAX);
			goto out;
		}
	}
	if (in_angle) {
		str_append(why, "unterminated <address>");
		goto out;
	}
	rc = 0;
out:
	if (rc < 0) {
		for (size_t i = first; i < list->n; i++)
			free(list->items[i].value);
		list->n = first;
	}
	str_free(&d);
	str_free(&angle);
	return rc;
}

int alias_list_parse_file(const char *text, size_t len, size_t max_items, struct alias_list *list,
                          str_t *why)
{
	size_t first = list->n, pos = 0, lineno = 0, start_line = 0;
	str_t logical;
	int rc = 0;

	str_init(&logical);
	while (rc == 0) {
		const char *nl = pos < len ? memchr(text + pos, '\n', len - pos) : NULL;
		size_t end = nl != NULL ? (size_t)(nl - text) : len;
		bool eof = pos >= len;
		bool cont = !eof && end > pos && (text[pos] == ' ' || text[pos] == '\t');
		bool comment = !eof && end > pos && text[pos] == '#';

		if (!eof)
			lineno++;
		/* A new logical line (or the end) flushes the one before. */
		if (!cont && !comment && logical.len > 0) {
			if (alias_list_parse(str_c(&logical), logical.len, max_items, list, why) <
			    0) {
				/* Prefix the line number to the message. */
				char *msg = xasprintf("line %zu: %s", start_line, str_c(why));

				str_set(why, msg);
				free(msg);
				rc = -1;
				break;
			}
			str_reset(&logical);
		}
		if (eof)
			break;
		if (!comment) {
			if (logical.len == 0)
				start_line = lineno;
			else
				str_append_c(&logical, ' ');
			str_append_n(&logical, text + pos, end - pos);
			if (logical.len > (size_t)ALIAS_LIST_ITEM_MAX * 16) {
				str_appendf(why, "line %zu: logical line too long", start_line);
				rc = -1;
				break;
			}
		}
		pos = end + 1;
	}
	if (rc < 0) {
		for (size_t i = first; i < list->n; i++)
			free(list->items[i].value);
		list->n = first;
	}
	str_free(&logical);
	return rc;
}
