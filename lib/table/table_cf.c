/* table_cf.c - the .cf files of database and directory tables (see
 * table_cf.h). Used by table_sqlcf.c and ldap_cf.c.
 */
#include "table/table_cf.h"

#include <stdlib.h>
#include <string.h>

#include "base/fs.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/parse.h"
#include "base/strv.h"
#include "conf/config.h"
#include "table/table.h"
#include "table/table_file.h"

static bool known_name(const char *const *const *known, const char *name)
{
	for (; *known != NULL; known++)
		for (const char *const *p = *known; *p != NULL; p++)
			if (strcmp(*p, name) == 0)
				return true;
	return false;
}

int table_cf_open(struct table_cf *r, const char *type_name, const char *name,
                  const char *const *const *known, const struct table_open_context *ctx,
                  str_t *error)
{
	strv_t errors = STRV_INIT, names = STRV_INIT;
	str_t text;
	int ret = -1;

	memset(r, 0, sizeof(*r));
	r->error = error;
	r->path = table_file_path(name, ctx);
	str_init(&text);
	if (fs_read_file(r->path, TABLE_CF_FILE_MAX, &text, error) < 0)
		goto out;
	if (config_parse_text(str_c(&text), text.len, r->path,
	                      ctx != NULL && ctx->config_dir != NULL ? ctx->config_dir : ".",
	                      &r->cfg, &errors) < 0) {
		for (size_t i = 0; i < errors.n; i++)
			str_appendf(error, "%s%s", i > 0 ? "; " : "", errors.v[i]);
		goto out;
	}
	config_set_names(r->cfg, &names);
	for (size_t i = 0; i < names.n; i++)
		if (!known_name(known, names.v[i]))
			log_warning("%s: unknown %s table parameter \"%s\" (ignored)",
			            config_where(r->cfg, names.v[i]), type_name, names.v[i]);
	ret = 0;
out:
	if (ret < 0)
		table_cf_close(r);
	strv_free(&errors);
	strv_free(&names);
	str_free(&text);
	return ret;
}

void table_cf_close(struct table_cf *r)
{
	config_destroy(&r->cfg);
	xfree(&r->path);
}

const char *table_cf_get(struct table_cf *r, const char *name)
{
	return config_is_set(r->cfg, name) ? config_raw(r->cfg, name) : NULL;
}

char *table_cf_dup(struct table_cf *r, const char *name)
{
	const char *v = table_cf_get(r, name);

	return v != NULL && v[0] != '\0' ? xstrdup(v) : NULL;
}

static void separate(struct table_cf *r)
{
	if (r->errors++ > 0)
		str_append(r->error, "; ");
}

void table_cf_problem(struct table_cf *r, const char *why)
{
	separate(r);
	str_append(r->error, why);
}

void table_cf_bad_value(struct table_cf *r, const char *name, const char *expected)
{
	separate(r);
	str_appendf(r->error, "%s: bad value for %s: \"%s\": expected %s",
	            config_where(r->cfg, name), name, table_cf_get(r, name), expected);
}

void table_cf_bad_param(struct table_cf *r, const char *name, const char *why)
{
	separate(r);
	str_appendf(r->error, "%s: %s", config_where(r->cfg, name), why);
}

unsigned table_cf_uint(struct table_cf *r, const char *name, unsigned def, unsigned max)
{
	const char *v = table_cf_get(r, name);
	uint64_t n;

	if (v == NULL)
		return def;
	if (parse_uint64(v, 0, max, &n) < 0) {
		char *what = xasprintf("a whole number from 0 to %u", max);

		table_cf_bad_value(r, name, what);
		free(what);
		return def;
	}
	return (unsigned)n;
}

bool table_cf_bool(struct table_cf *r, const char *name, bool def)
{
	const char *v = table_cf_get(r, name);
	bool b;

	if (v == NULL)
		return def;
	if (parse_bool(v, &b) < 0) {
		table_cf_bad_value(r, name, "yes or no");
		return def;
	}
	return b;
}
