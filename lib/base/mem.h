/* mem.h - allocation wrappers that never return NULL.
 *
 * Every allocation in postern goes through these. Running out of memory is
 * not an error a mail server can handle locally: the wrappers log a panic
 * (which names the size asked for) and abort, so callers never test for NULL.
 */
#ifndef POSTERN_MEM_H
#define POSTERN_MEM_H

#include <stddef.h>

/* malloc(size); size 0 gives a valid unique pointer. */
void *xmalloc(size_t size);
/* calloc(count, size) with overflow check. */
void *xcalloc(size_t count, size_t size);
/* realloc(ptr, size); ptr may be NULL. */
void *xrealloc(void *ptr, size_t size);
/* reallocarray-style growth with overflow check. */
void *xreallocarray(void *ptr, size_t count, size_t size);
/* strdup(s); s must not be NULL. */
char *xstrdup(const char *s);
/* Copy of the first len bytes of s, NUL-terminated. */
char *xstrndup(const char *s, size_t len);
/* asprintf into a new string the caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* free(*ptr) and set *ptr to NULL; does nothing when *ptr is NULL. */
#define xfree(pp) \
	do { \
		free(*(pp)); \
		*(pp) = NULL; \
	} while (0)

#endif
