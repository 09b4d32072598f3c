/* table_union.c - unionmap:{...} and pipemap:{...}, tables made of tables.
 *
 * Postfix 3.0's composite types: "unionmap:{ type:name, type:name, ... }"
 * asks every table and joins all values found with commas (in the order
 * of the list); "pipemap:{ type:name, type:name, ... }" asks the first
 * table, looks its value up in the second, and so on: the last table's
 * value is the answer, and a key not found at any step is not found. The
 * elements are opened with table_open() (so they may be any type, proxy:
 * and nested composites included) and looked up with table_lookup(), each
 * folding and bounding its own key.
 *
 * Flags: a composite holding a pattern table (regexp, pcre, cidr) is a
 * pattern table itself, else an exact-key one; it is remote (cached, run
 * on the worker pool) when any element is.
 *
 * On failure: open fails naming the bad element; a temporary failure of
 * any element is a temporary failure of the whole lookup (Postfix: a
 * union cannot know what the failed table would have added).
 */
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/strv.h"
#include "table/table.h"
#include "table/table_backends.h"
#include "table/table_file.h"

struct table_union {
	struct table t;
	struct table **tables;
	size_t n;
	bool pipe; /* pipemap: each value is the next key */
};

static int composite_open(struct table *t, const char *type, const char *name,
                          const struct table_open_context *ctx, str_t *error)
{
	struct table_union *u = (struct table_union *)t;
	bool pattern = false, remote = false;
	strv_t specs = {0};
	char *inner;
	str_t why;

	str_init(&why);
	if (name[0] != '{' || (inner = table_list_unbrace(name, &why)) == NULL) {
		str_appendf(error, "bad table name \"%s:%s\": %s%sneed \"%s:{type:name, ...}\"",
		            type, name, str_c(&why), why.len > 0 ? "; " : "", type);
		str_free(&why);
		return -1;
	}
	str_free(&why);
	if (table_list_split(&specs, inner, error) < 0 || specs.n == 0) {
		if (specs.n == 0)
			str_appendf(error, "bad table name \"%s:%s\": no tables in the braces",
			            type, name);
		strv_free(&specs);
		free(inner);
		return -1;
	}
	free(inner);
	u->tables = xcalloc(specs.n, sizeof(*u->tables));
	for (size_t i = 0; i < specs.n; i++) {
		str_t sub;

		str_init(&sub);
		u->tables[i] = table_open(specs.v[i], ctx, &sub);
		if (u->tables[i] == NULL) {
			str_appendf(error, "%s:%s: %s", type, name, str_c(&sub));
			str_free(&sub);
			strv_free(&specs);
			return -1;
		}
		str_free(&sub);
		u->n++;
		pattern |= (u->tables[i]->flags & TABLE_F_PATTERN) != 0;
		remote |= (u->tables[i]->flags & TABLE_F_REMOTE) != 0;
	}
	strv_free(&specs);
	t->flags = (pattern ? TABLE_F_PATTERN : TABLE_F_FIXED_KEYS) | (remote ? TABLE_F_REMOTE : 0);
	/* Folding the key for an all-exact composite changes nothing (each
	 * element would fold it), and makes maps.c try the partial address
	 * keys (user@domain, @domain) in it as in any exact-key table. */
	u->pipe = strcmp(type, "pipemap") == 0;
	return 0;
}

static int unionmap_open(struct table *t, const char *name, const struct table_open_context *ctx,
                         str_t *error)
{
	return composite_open(t, "unionmap", name, ctx, error);
}

static int pipemap_open(struct table *t, const char *name, const struct table_open_context *ctx,
                        str_t *error)
{
	return composite_open(t, "pipemap", name, ctx, error);
}

static void composite_lookup(struct table *t, const char *key, struct table_result *r)
{
	struct table_union *u = (struct table_union *)t;
	struct table_result sub;
	char *next = NULL;

	table_result_init(&sub);
	r->status = TABLE_NOTFOUND;
	for (size_t i = 0; i < u->n; i++) {
		table_lookup(u->tables[i], u->pipe && next != NULL ? next : key, &sub);
		if (sub.status == TABLE_TEMPFAIL) {
			r->status = TABLE_TEMPFAIL;
			str_reset(&r->value);
			str_appendf(&r->error, "%s: %s", t->spec, str_c(&sub.error));
			break;
		}
		if (u->pipe) {
			if (sub.status == TABLE_NOTFOUND) {
				r->status = TABLE_NOTFOUND;
				break;
			}
			free(next);
			next = xstrdup(str_c(&sub.value));
			r->status = TABLE_FOUND;
		} else if (sub.status == TABLE_FOUND) {
			if (r->status == TABLE_FOUND)
				str_append_c(&r->value, ',');
			str_append_n(&r->value, sub.value.buf, sub.value.len);
			r->status = TABLE_FOUND;
		}
	}
	if (u->pipe && r->status == TABLE_FOUND)
		str_set(&r->value, next);
	free(next);
	table_result_free(&sub);
}

static void composite_close(struct table *t)
{
	struct table_union *u = (struct table_union *)t;

	for (size_t i = 0; i < u->n; i++)
		table_close(&u->tables[i]);
	free(u->tables);
	u->tables = NULL;
	u->n = 0;
}

const struct table_backend table_backend_unionmap = {
        .type = "unionmap",
        .flags = 0, /* set per table by open, from its elements */
        .size = sizeof(struct table_union),
        .open = unionmap_open,
        .lookup = composite_lookup,
        .close = composite_close,
};

const struct table_backend table_backend_pipemap = {
        .type = "pipemap",
        .flags = 0,
        .size = sizeof(struct table_union),
        .open = pipemap_open,
        .lookup = composite_lookup,
        .close = composite_close,
};
