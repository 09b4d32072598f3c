/* table_inline.c - inline:{ key=value, { key = text with spaces }, ... }.
 *
 * Postfix 3.0's inline: type: a small table written in place, in main.cf
 * or on the command line. Elements are separated by commas or white space;
 * an element in braces may hold white space, and white space around "="
 * is removed. Keys are folded to lower case like every exact-key table.
 * As in Postfix, a key given twice takes the last value (with a warning
 * here). Opening fails with a message naming the bad element; lookups
 * never fail.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/hash.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/strv.h"
#include "table/table.h"
#include "table/table_backends.h"
#include "table/table_file.h"

struct table_inline {
	struct table t;
	hash_t *index; /* key -> position + 1 in keys/values */
	strv_t keys; /* in order of the source, for dump */
	strv_t values;
};

/* Split one "name = value" element into a lower-case key and a value. */
static int inline_element(struct table_inline *it, const char *element, str_t *why)
{
	char *nameval = table_list_unbrace(element, why);
	char *eq, *key, *value;
	uintptr_t pos;

	if (nameval == NULL)
		return -1;
	eq = strchr(nameval, '=');
	if (eq == NULL) {
		str_appendf(why, "missing '=' in \"%s\"", nameval);
		free(nameval);
		return -1;
	}
	*eq = '\0';
	{
		str_t k, v;

		str_init(&k);
		str_init(&v);
		str_set(&k, nameval);
		str_set(&v, eq + 1);
		str_trim(&k);
		str_trim(&v);
		str_lower(&k);
		key = str_steal(&k);
		value = str_steal(&v);
		str_free(&k);
		str_free(&v);
	}
	free(nameval);
	if (key[0] == '\0') {
		str_appendf(why, "missing name before '=' in \"%s\"", element);
		free(key);
		free(value);
		return -1;
	}
	pos = (uintptr_t)hash_get(it->index, key);
	if (pos != 0) {
		log_warning("%s: duplicate key \"%s\": the last value wins", it->t.spec, key);
		free(it->values.v[pos - 1]);
		it->values.v[pos - 1] = value;
		free(key);
		return 0;
	}
	strv_add_owned(&it->keys, key);
	strv_add_owned(&it->values, value);
	hash_put(it->index, key, (void *)(uintptr_t)it->keys.n);
	return 0;
}

static int inline_open(struct table *t, const char *name, const struct table_open_context *ctx,
                       str_t *error)
{
	struct table_inline *it = (struct table_inline *)t;
	strv_t elements = STRV_INIT;
	str_t why;
	char *inner = NULL;
	int ret = -1;

	(void)ctx;
	str_init(&why);
	it->index = hash_new(NULL);
	if (name[0] != '{') {
		str_append(&why, "the table must be enclosed in {}");
		goto out;
	}
	inner = table_list_unbrace(name, &why);
	if (inner == NULL || table_list_split(&elements, inner, &why) < 0)
		goto out;
	if (elements.n == 0) {
		str_append(&why, "empty table");
		goto out;
	}
	for (size_t i = 0; i < elements.n; i++)
		if (inline_element(it, elements.v[i], &why) < 0)
			goto out;
	ret = 0;
out:
	if (ret < 0)
		str_appendf(error, "bad table \"inline:%s\": %s; need \"inline:{name=value...}\"",
		            name, str_c(&why));
	free(inner);
	strv_free(&elements);
	str_free(&why);
	return ret;
}

static void inline_lookup(struct table *t, const char *key, struct table_result *r)
{
	const struct table_inline *it = (const struct table_inline *)t;
	uintptr_t pos = (uintptr_t)hash_get(it->index, key);

	if (pos == 0) {
		r->status = TABLE_NOTFOUND;
		return;
	}
	r->status = TABLE_FOUND;
	str_set(&r->value, it->values.v[pos - 1]);
}

static int inline_dump(struct table *t, void (*fn)(const char *key, const char *value, void *ctx),
                       void *ctx, str_t *error)
{
	const struct table_inline *it = (const struct table_inline *)t;

	(void)error;
	for (size_t i = 0; i < it->keys.n; i++)
		fn(it->keys.v[i], it->values.v[i], ctx);
	return 0;
}

static void inline_close(struct table *t)
{
	struct table_inline *it = (struct table_inline *)t;

	hash_destroy(&it->index);
	strv_free(&it->keys);
	strv_free(&it->values);
}

const struct table_backend table_backend_inline = {
        .type = "inline",
        .flags = TABLE_F_FIXED_KEYS | TABLE_F_DUMPABLE,
        .size = sizeof(struct table_inline),
        .open = inline_open,
        .lookup = inline_lookup,
        .dump = inline_dump,
        .close = inline_close,
};
