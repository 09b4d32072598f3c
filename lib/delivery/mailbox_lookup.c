/* mailbox_lookup.c - a virtual mailbox's maildir and quota (see
 * mailbox_lookup.h).
 *
 * Used by resolve.c (`postern trace`) and by the virtual delivery agent.
 * Failure: a table that cannot answer, or a quota that is not a number,
 * gives TABLE_TEMPFAIL with the parameter or table named; nothing is
 * decided from a lookup that did not answer.
 */
#include "delivery/mailbox_lookup.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/parse.h"
#include "base/strv.h"
#include "conf/config.h"
#include "table/maps.h"
#include "table/table_cache.h"

struct mailbox_lookup {
	struct config *cfg;
	char *delimiters;
	struct maps *mailbox_maps;
	struct table *quota; /* db:quota, when virtual_mailbox_maps names db:mailboxes */
	struct maps *limit_maps; /* virtual_mailbox_limit_maps, when set (wins over db:quota) */
	struct table_cache *cache; /* not owned; NULL: none */
};

void mailbox_info_init(struct mailbox_info *info)
{
	memset(info, 0, sizeof(*info));
	str_init(&info->error);
	info->status = TABLE_NOTFOUND;
	info->quota = -1;
}

void mailbox_info_free(struct mailbox_info *info)
{
	str_free(&info->error);
	free(info->table);
	free(info->key);
	free(info->value);
	free(info->source);
	free(info->path);
	memset(info, 0, sizeof(*info));
}

int mailbox_lookup_open(struct config *cfg, const char *config_dir, struct mailbox_lookup **ml_r,
                        str_t *error)
{
	return mailbox_lookup_open_cached(cfg, config_dir, NULL, ml_r, error);
}

int mailbox_lookup_open_cached(struct config *cfg, const char *config_dir,
                               struct table_cache *cache, struct mailbox_lookup **ml_r,
                               str_t *error)
{
	struct table_open_context tctx = {.cfg = cfg, .config_dir = config_dir, .cache = cache};
	struct mailbox_lookup *ml = xcalloc(1, sizeof(*ml));
	const strv_t *list;
	const char *delim, *maps, *why;

	*ml_r = NULL;
	ml->cfg = cfg;
	ml->cache = cache;
	if (config_expand(cfg, "recipient_delimiter", &delim, &why) < 0 ||
	    config_expand(cfg, "virtual_mailbox_maps", &maps, &why) < 0 ||
	    config_get_list(cfg, "virtual_mailbox_maps", &list, &why) < 0) {
		str_append(error, why);
		mailbox_lookup_close(&ml);
		return -1;
	}
	ml->delimiters = xstrdup(delim);
	ml->mailbox_maps = maps_open("virtual_mailbox_maps", maps, &tctx, error);
	if (ml->mailbox_maps == NULL) {
		mailbox_lookup_close(&ml);
		return -1;
	}
	/* Why only with db:mailboxes: a quota belongs to a mailbox row of
	 * postern's schema; a texthash or mysql: mailbox table has no quota
	 * column postern knows of, so there is no quota to enforce. */
	if (config_expand(cfg, "virtual_mailbox_limit_maps", &maps, &why) < 0) {
		str_append(error, why);
		mailbox_lookup_close(&ml);
		return -1;
	}
	if (maps[strspn(maps, " \t,")] != '\0') {
		ml->limit_maps = maps_open("virtual_mailbox_limit_maps", maps, &tctx, error);
		if (ml->limit_maps == NULL) {
			mailbox_lookup_close(&ml);
			return -1;
		}
	} else if (strv_find(list, "db:mailboxes") >= 0) {
		ml->quota = table_open("db:quota", &tctx, error);
		if (ml->quota == NULL) {
			mailbox_lookup_close(&ml);
			return -1;
		}
	}
	*ml_r = ml;
	return 0;
}

void mailbox_lookup_close(struct mailbox_lookup **mlp)
{
	struct mailbox_lookup *ml = *mlp;

	if (ml == NULL)
		return;
	maps_close(&ml->mailbox_maps);
	table_close(&ml->quota);
	maps_close(&ml->limit_maps);
	free(ml->delimiters);
	free(ml);
	*mlp = NULL;
}

static void info_reset(struct mailbox_info *info)
{
	mailbox_info_free(info);
	mailbox_info_init(info);
}

enum table_status mailbox_lookup(struct mailbox_lookup *ml, const char *address,
                                 struct mailbox_info *info)
{
	struct table_result tr;
	struct maps_answer a;
	enum table_status st;

	info_reset(info);
	table_result_init(&tr);
	maps_answer_init(&a);
	st = maps_lookup_addr(ml->mailbox_maps, address, ml->delimiters, 0, &tr, &a);
	if (st == TABLE_TEMPFAIL) {
		str_appendf(&info->error, "virtual_mailbox_maps: %s", str_c(&tr.error));
		info->status = TABLE_TEMPFAIL;
		goto out;
	}
	if (st == TABLE_NOTFOUND)
		goto out;

	{
		const char *base = config_str(ml->cfg, "virtual_mailbox_base");
		const char *value = str_c(&tr.value);
		size_t len = strlen(value);

		info->table = xstrdup(a.table->spec);
		info->key = xstrdup(a.key);
		for (char *p = info->key; *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
		info->value = xstrdup(value);
		info->source = tr.source.len > 0 ? xstrdup(str_c(&tr.source)) : NULL;
		info->path = base[0] != '\0' ? xasprintf("%s/%s", base, value) : xstrdup(value);
		info->is_maildir = len > 0 && value[len - 1] == '/';
	}
	info->status = TABLE_FOUND;
	if (ml->quota == NULL && ml->limit_maps == NULL)
		goto out;

	info->quota_table =
	        ml->limit_maps != NULL ? maps_table(ml->limit_maps, 0)->spec : ml->quota->spec;
	table_result_reset(&tr);
	{
		/* The mailbox's own address (no extension), as the quota row's
		 * key. */
		const char *key = info->key;

		if (ml->limit_maps != NULL)
			maps_lookup(ml->limit_maps, key, 0, &tr, NULL);
		else
			table_cache_lookup_fresh(ml->cache, ml->quota, key, &tr);
		if (tr.status == TABLE_TEMPFAIL) {
			str_appendf(&info->error, "%s: %s", info->quota_table, str_c(&tr.error));
			info->status = TABLE_TEMPFAIL;
		} else if (tr.status == TABLE_FOUND && str_c(&tr.value)[0] != '\0') {
			int64_t q;

			if (parse_int64(str_c(&tr.value), 0, INT64_MAX, &q) < 0) {
				str_appendf(&info->error,
				            "%s: bad quota \"%s\" for %s: expected bytes",
				            info->quota_table, str_c(&tr.value), key);
				info->status = TABLE_TEMPFAIL;
			} else {
				info->quota = q;
			}
		}
	}
out:
	maps_answer_free(&a);
	table_result_free(&tr);
	return info->status;
}
