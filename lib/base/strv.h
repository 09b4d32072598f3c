/* strv.h - a growable, NULL-terminated vector of owned strings.
 *
 * Used for parsed lists (main.cf list values, master.cf arguments, table
 * results). The vector owns its strings; strv_free releases them all.
 */
#ifndef POSTERN_STRV_H
#define POSTERN_STRV_H

#include <stddef.h>

typedef struct strv {
	char **v; /* v[n] == NULL; NULL only before the first add */
	size_t n;
	size_t cap;
} strv_t;

#define STRV_INIT \
	{ \
		NULL, 0, 0 \
	}

/* Append a copy of s. */
void strv_add(strv_t *sv, const char *s);
/* Append a copy of the first len bytes of s. */
void strv_add_n(strv_t *sv, const char *s, size_t len);
/* Append s itself; the vector takes ownership. */
void strv_add_owned(strv_t *sv, char *s);
/* Free every string and the vector; sv is left empty and reusable. */
void strv_free(strv_t *sv);
/* Index of s (exact match), or -1. */
long strv_find(const strv_t *sv, const char *s);

/* Split a Postfix list value: elements are separated by commas and/or
 * white space; "{ ... }" groups text with separators into one element
 * (braces removed, inner white space at both ends trimmed). Returns 0, or
 * -1 with *error_r set (static text) for an unbalanced brace. Elements are
 * appended to out. */
int strv_split_list(strv_t *out, const char *value, const char **error_r);

#endif
