/* hash.c - string-keyed hash map with separate chaining (see hash.h).
 *
 * FNV-1a hashing, power-of-two bucket arrays, growth at load factor 1.
 * Used by config, in-memory tables and caches.
 */
#include "base/hash.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

struct hash_node {
	struct hash_node *next;
	char *key;
	void *value;
	uint32_t code;
};

struct hash {
	struct hash_node **buckets;
	size_t nbuckets; /* power of two */
	size_t count;
	hash_free_fn *free_value;
};

static uint32_t hash_code(const char *key)
{
	uint32_t h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++) {
		h ^= *p;
		h *= 16777619u;
	}
	return h;
}

hash_t *hash_new(hash_free_fn *free_value)
{
	hash_t *h = xcalloc(1, sizeof(*h));

	h->nbuckets = 16;
	h->buckets = xcalloc(h->nbuckets, sizeof(*h->buckets));
	h->free_value = free_value;
	return h;
}

void hash_destroy(hash_t **hp)
{
	hash_t *h = *hp;

	if (h == NULL)
		return;
	for (size_t i = 0; i < h->nbuckets; i++) {
		struct hash_node *n = h->buckets[i], *next;

		for (; n != NULL; n = next) {
			next = n->next;
			if (h->free_value != NULL)
				h->free_value(n->value);
			free(n->key);
			free(n);
		}
	}
	free(h->buckets);
	free(h);
	*hp = NULL;
}

static struct hash_node **find_slot(const hash_t *h, const char *key, uint32_t code)
{
	struct hash_node **np = &h->buckets[code & (h->nbuckets - 1)];

	for (; *np != NULL; np = &(*np)->next)
		if ((*np)->code == code && strcmp((*np)->key, key) == 0)
			break;
	return np;
}

static void grow(hash_t *h)
{
	size_t nb = h->nbuckets * 2;
	struct hash_node **b = xcalloc(nb, sizeof(*b));

	for (size_t i = 0; i < h->nbuckets; i++) {
		struct hash_node *n = h->buckets[i], *next;

		for (; n != NULL; n = next) {
			next = n->next;
			n->next = b[n->code & (nb - 1)];
			b[n->code & (nb - 1)] = n;
		}
	}
	free(h->buckets);
	h->buckets = b;
	h->nbuckets = nb;
}

void hash_put(hash_t *h, const char *key, void *value)
{
	uint32_t code = hash_code(key);
	struct hash_node **np = find_slot(h, key, code);
	struct hash_node *n;

	if (*np != NULL) {
		if (h->free_value != NULL && (*np)->value != value)
			h->free_value((*np)->value);
		(*np)->value = value;
		return;
	}
	n = xmalloc(sizeof(*n));
	n->key = xstrdup(key);
	n->value = value;
	n->code = code;
	n->next = NULL;
	*np = n;
	if (++h->count > h->nbuckets)
		grow(h);
}

void *hash_get(const hash_t *h, const char *key)
{
	struct hash_node **np = find_slot(h, key, hash_code(key));

	return *np != NULL ? (*np)->value : NULL;
}

bool hash_contains(const hash_t *h, const char *key)
{
	return *find_slot(h, key, hash_code(key)) != NULL;
}

bool hash_delete(hash_t *h, const char *key)
{
	struct hash_node **np = find_slot(h, key, hash_code(key));
	struct hash_node *n = *np;

	if (n == NULL)
		return false;
	*np = n->next;
	if (h->free_value != NULL)
		h->free_value(n->value);
	free(n->key);
	free(n);
	h->count--;
	return true;
}

size_t hash_count(const hash_t *h)
{
	return h->count;
}

bool hash_next(const hash_t *h, size_t *pos, const char **key_r, void **value_r)
{
	/* *pos encodes the bucket index (high bits) and how many nodes of
	 * that bucket's chain were already returned (low 16 bits); at load
	 * factor <= 1 no chain comes near 65535 nodes. */
	size_t bucket = *pos >> 16, index = *pos & 0xffff;

	for (; bucket < h->nbuckets; bucket++, index = 0) {
		struct hash_node *n = h->buckets[bucket];
		size_t i = 0;

		for (; n != NULL && i < index; i++)
			n = n->next;
		if (n != NULL) {
			*key_r = n->key;
			if (value_r != NULL)
				*value_r = n->value;
			*pos = (bucket << 16) | (index + 1);
			return true;
		}
	}
	*pos = bucket << 16;
	return false;
}
