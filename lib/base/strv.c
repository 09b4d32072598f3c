/* strv.c - string vectors and Postfix list splitting (see strv.h).
 *
 * Used by the configuration layer and every list-valued parameter.
 */
#include "base/strv.h"

#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

void strv_add_owned(strv_t *sv, char *s)
{
	if (sv->n + 2 > sv->cap) {
		sv->cap = sv->cap ? sv->cap * 2 : 8;
		sv->v = xreallocarray(sv->v, sv->cap, sizeof(*sv->v));
	}
	sv->v[sv->n++] = s;
	sv->v[sv->n] = NULL;
}

void strv_add(strv_t *sv, const char *s)
{
	strv_add_owned(sv, xstrdup(s));
}

void strv_add_n(strv_t *sv, const char *s, size_t len)
{
	strv_add_owned(sv, xstrndup(s, len));
}

void strv_free(strv_t *sv)
{
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	sv->v = NULL;
	sv->n = sv->cap = 0;
}

long strv_find(const strv_t *sv, const char *s)
{
	for (size_t i = 0; i < sv->n; i++)
		if (strcmp(sv->v[i], s) == 0)
			return (long)i;
	return -1;
}

static int is_sep(char c)
{
	return c == ',' || c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int strv_split_list(strv_t *out, const char *value, const char **error_r)
{
	const char *p = value;

	while (*p != '\0') {
		const char *start, *end;

		while (is_sep(*p))
			p++;
		if (*p == '\0')
			break;
		if (*p == '{') {
			int depth = 1;

			start = ++p;
			while (*p != '\0' && depth > 0) {
				if (*p == '{')
					depth++;
				else if (*p == '}')
					depth--;
				if (depth > 0)
					p++;
			}
			if (depth != 0) {
				*error_r = "missing '}' in list";
				return -1;
			}
			end = p++; /* skip the closing brace */
			while (start < end && is_space(*start))
				start++;
			while (end > start && is_space(end[-1]))
				end--;
		} else if (*p == '}') {
			*error_r = "unexpected '}' in list";
			return -1;
		} else {
			/* Braces inside an element group too, so that
			 * "inline:{ a=b, c=d }" stays one element (and keeps
			 * its braces for the table parser). */
			int depth = 0;

			start = p;
			for (; *p != '\0' && (depth > 0 || !is_sep(*p)); p++) {
				if (*p == '{') {
					depth++;
				} else if (*p == '}') {
					if (depth == 0) {
						*error_r = "unexpected '}' in list";
						return -1;
					}
					depth--;
				}
			}
			if (depth != 0) {
				*error_r = "missing '}' in list";
				return -1;
			}
			end = p;
		}
		strv_add_n(out, start, (size_t)(end - start));
	}
	return 0;
}
