/* hash.h - a string-keyed hash map with owned keys.
 *
 * Used for configuration entries, in-memory tables (texthash, inline) and
 * lookup caches. Keys are copied; values are opaque pointers the caller
 * owns unless a value destructor is given at creation. Iteration order is
 * unspecified. Not thread-safe: callers that share a map lock it.
 */
#ifndef POSTERN_HASH_H
#define POSTERN_HASH_H

#include <stdbool.h>
#include <stddef.h>

typedef struct hash hash_t;
typedef void hash_free_fn(void *value);

/* New empty map; free_value (may be NULL) is called for values that are
 * replaced, deleted, or left when the map is destroyed. */
hash_t *hash_new(hash_free_fn *free_value);
void hash_destroy(hash_t **hp);
/* Insert or replace. */
void hash_put(hash_t *h, const char *key, void *value);
/* The value, or NULL when the key is absent. */
void *hash_get(const hash_t *h, const char *key);
bool hash_contains(const hash_t *h, const char *key);
/* Remove key; returns true if it was present. */
bool hash_delete(hash_t *h, const char *key);
size_t hash_count(const hash_t *h);

/* Iteration: start with *pos = 0; returns false when done. The map must
 * not change during an iteration. */
bool hash_next(const hash_t *h, size_t *pos, const char **key_r, void **value_r);

#endif
