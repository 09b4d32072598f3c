/* str.h - the one growable string/buffer type.
 *
 * A str_t always holds a NUL-terminated buffer with an explicit length, so
 * it carries protocol lines and binary data (embedded NULs) alike. Every
 * line or value that comes from outside is read into a str_t, never into a
 * fixed-size array. Growth panics on overflow (mem.h); no call fails.
 */
#ifndef POSTERN_STR_H
#define POSTERN_STR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct str {
	char *buf; /* never NULL after str_init; buf[len] == '\0' */
	size_t len; /* bytes in use, excluding the terminator */
	size_t cap; /* bytes allocated */
} str_t;

/* Initialise an embedded str_t as empty. */
void str_init(str_t *s);
/* Release the buffer of an embedded str_t; it may be str_init'ed again. */
void str_free(str_t *s);
/* Allocate an empty str_t; free it with str_destroy. */
str_t *str_new(void);
/* Free *sp and set it to NULL; no-op on NULL. */
void str_destroy(str_t **sp);
/* Take ownership of the buffer (caller frees); s becomes empty. */
char *str_steal(str_t *s);

/* Make room for at least extra more bytes (plus the terminator). */
void str_reserve(str_t *s, size_t extra);
void str_reset(str_t *s);
/* Shorten to len bytes; len beyond the current length is ignored. */
void str_truncate(str_t *s, size_t len);

void str_append(str_t *s, const char *text);
void str_append_n(str_t *s, const void *data, size_t len);
void str_append_c(str_t *s, char c);
void str_appendf(str_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void str_vappendf(str_t *s, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Replace the contents. */
void str_set(str_t *s, const char *text);

static inline const char *str_c(const str_t *s)
{
	return s->buf;
}

/* Remove white space (space, tab, CR, LF) at both ends, in place. */
void str_trim(str_t *s);
/* Lower-case ASCII letters in place. */
void str_lower(str_t *s);
/* True when s has no bytes other than white space. */
bool str_is_blank(const str_t *s);

#endif
