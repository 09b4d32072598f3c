/* table_static.c - static:VALUE, a table that answers VALUE for every key.
 *
 * Postfix's static: type: `static:OK`, or `static:{ text with spaces }`
 * (Postfix 3.2) where the braces and the white space just inside them are
 * removed. Used wherever a parameter wants a table but the answer is
 * always the same (virtual_uid_maps = static:5000). Opening fails only on
 * unbalanced braces; lookups always find.
 */
#include <stdlib.h>

#include "base/mem.h"
#include "table/table.h"
#include "table/table_backends.h"
#include "table/table_file.h"

struct table_static {
	struct table t;
	char *value;
};

static int static_open(struct table *t, const char *name, const struct table_open_context *ctx,
                       str_t *error)
{
	struct table_static *st = (struct table_static *)t;
	str_t why;

	(void)ctx;
	str_init(&why);
	st->value = table_list_unbrace(name, &why);
	if (st->value == NULL) {
		str_appendf(error, "bad table name \"static:%s\": %s; need \"static:{text}\"", name,
		            str_c(&why));
		str_free(&why);
		return -1;
	}
	str_free(&why);
	return 0;
}

static void static_lookup(struct table *t, const char *key, struct table_result *r)
{
	const struct table_static *st = (const struct table_static *)t;

	(void)key;
	r->status = TABLE_FOUND;
	str_set(&r->value, st->value);
}

static void static_close(struct table *t)
{
	struct table_static *st = (struct table_static *)t;

	xfree(&st->value);
}

const struct table_backend table_backend_static = {
        .type = "static",
        .flags = TABLE_F_FIXED_KEYS,
        .size = sizeof(struct table_static),
        .open = static_open,
        .lookup = static_lookup,
        .close = static_close,
};
