/* maps.c - ordered lists of lookup tables and the address lookup order (see maps.h).
 *
 * Used by every daemon for list-valued table parameters, and by `postern
 * map`. Follows Postfix's maps.c (first found wins, a temporary failure
 * stops the search) and mail_addr_find.c (the order of derived keys).
 * Failure: maps_open() returns NULL naming the list and the table; a
 * lookup always ends in found, not found or TEMPFAIL.
 */
#include "table/maps.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "base/mem.h"
#include "table/table_cache.h"
#include "table/table_file.h"

struct maps {
	char *title;
	struct table_cache *cache; /* not owned; NULL: none */
	struct table **tables;
	size_t n;
};

void maps_answer_init(struct maps_answer *a)
{
	a->table = NULL;
	a->key = NULL;
	a->extension = NULL;
}

void maps_answer_free(struct maps_answer *a)
{
	a->table = NULL;
	xfree(&a->key);
	xfree(&a->extension);
}

struct maps *maps_open_list(const char *title, const strv_t *specs,
                            const struct table_open_context *ctx, str_t *error)
{
	struct maps *m = xcalloc(1, sizeof(*m));

	m->title = xstrdup(title);
	m->cache = ctx != NULL ? ctx->cache : NULL;
	m->tables = xcalloc(specs->n + 1, sizeof(*m->tables));
	for (size_t i = 0; i < specs->n; i++) {
		str_t why;

		str_init(&why);
		m->tables[m->n] = table_open(specs->v[i], ctx, &why);
		if (m->tables[m->n] == NULL) {
			if (title[0] != '\0')
				str_appendf(error, "%s: ", title);
			str_append(error, str_c(&why));
			str_free(&why);
			maps_close(&m);
			return NULL;
		}
		str_free(&why);
		m->n++;
	}
	return m;
}

struct maps *maps_open(const char *title, const char *list, const struct table_open_context *ctx,
                       str_t *error)
{
	strv_t specs = STRV_INIT;
	struct maps *m;
	str_t why;

	str_init(&why);
	if (table_list_split(&specs, list, &why) < 0) {
		if (title[0] != '\0')
			str_appendf(error, "%s: ", title);
		str_append(error, str_c(&why));
		str_free(&why);
		strv_free(&specs);
		return NULL;
	}
	str_free(&why);
	m = maps_open_list(title, &specs, ctx, error);
	strv_free(&specs);
	return m;
}

void maps_close(struct maps **mp)
{
	struct maps *m = *mp;

	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n; i++)
		table_close(&m->tables[i]);
	free(m->tables);
	free(m->title);
	free(m);
	*mp = NULL;
}

const char *maps_title(const struct maps *m)
{
	return m->title;
}

size_t maps_count(const struct maps *m)
{
	return m->n;
}

struct table *maps_table(const struct maps *m, size_t i)
{
	return i < m->n ? m->tables[i] : NULL;
}

static void set_answer(struct maps_answer *answer, const struct table *t, const char *key)
{
	if (answer == NULL)
		return;
	answer->table = t;
	free(answer->key);
	answer->key = xstrdup(key);
}

enum table_status maps_lookup(struct maps *m, const char *key, unsigned need_flags,
                              struct table_result *r, struct maps_answer *answer)
{
	table_result_reset(r);
	for (size_t i = 0; i < m->n; i++) {
		struct table *t = m->tables[i];

		if (need_flags != 0 && (t->flags & need_flags) == 0)
			continue;
		table_cache_lookup_fresh(m->cache, t, key, r);
		if (r->status == TABLE_FOUND) {
			set_answer(answer, t, key);
			return r->status;
		}
		if (r->status == TABLE_TEMPFAIL) {
			/* Why stop here: a later table may hold a different
			 * answer than the failed one would have given; going
			 * on could bounce mail for a user that exists. */
			log_warning("%s%s%s lookup error for \"%s\": %s", m->title,
			            m->title[0] != '\0' ? ": " : "", t->spec, key,
			            str_c(&r->error));
			set_answer(answer, t, key);
			return r->status;
		}
	}
	return TABLE_NOTFOUND;
}

/* Local parts that are never split (Postfix split_addr.c). */
static bool never_split(const char *localpart, size_t len, const char *delimiters)
{
	static const char *const special[] = {"postmaster", "mailer-daemon", "double-bounce"};

	for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); i++)
		if (len == strlen(special[i]) && strncasecmp(localpart, special[i], len) == 0)
			return true;
	/* Backwards compatibility with mailing-list conventions. */
	if (strchr(delimiters, '-') != NULL) {
		if (len >= 6 && strncasecmp(localpart, "owner-", 6) == 0)
			return true;
		if (len > 8 && strncasecmp(localpart + len - 8, "-request", 8) == 0)
			return true;
	}
	return false;
}

size_t maps_extension_split(const char *localpart, size_t len, const char *delimiters)
{
	size_t at;

	if (delimiters == NULL || delimiters[0] == '\0' || never_split(localpart, len, delimiters))
		return len;
	for (at = 0; at < len && strchr(delimiters, localpart[at]) == NULL; at++)
		;
	if (at == 0) /* the local part would become empty */
		return len;
	return at;
}

/* Try key; true when the search is over (found or TEMPFAIL). */
static bool try_key(struct maps *m, const char *key, unsigned need_flags, struct table_result *r,
                    struct maps_answer *answer, const char *extension)
{
	if (maps_lookup(m, key, need_flags, r, answer) == TABLE_NOTFOUND)
		return false;
	if (answer != NULL && r->status == TABLE_FOUND && extension != NULL) {
		free(answer->extension);
		answer->extension = xstrdup(extension);
	}
	return true;
}

enum table_status maps_lookup_addr(struct maps *m, const char *address, const char *delimiters,
                                   unsigned options, struct table_result *r,
                                   struct maps_answer *answer)
{
	const char *at = strrchr(address, '@');
	size_t local_len = at != NULL ? (size_t)(at - address) : strlen(address);
	size_t split = maps_extension_split(address, local_len, delimiters);
	const char *domain = at != NULL ? at : ""; /* "@domain" */
	char *extension = NULL, *key = NULL;
	enum table_status status;

	/* The order below is Postfix's mail_addr_find() (global/
	 * mail_addr_find.c, and the "ADDRESS EXTENSION" sections of
	 * virtual(5) and canonical(5)):
	 *   user+ext@domain  all tables (FULL)
	 *   user@domain      fixed-key tables only (PARTIAL)
	 *   user+ext, user   fixed-key tables, when the domain is local
	 *   @domain          fixed-key tables
	 * Each key is tried in every table before the next key. */
	if (split < local_len)
		extension = xstrndup(address + split, local_len - split);
	if (try_key(m, address, 0, r, answer, NULL))
		goto done;
	if (extension != NULL) {
		key = xasprintf("%.*s%s", (int)split, address, domain);
		if (try_key(m, key, TABLE_F_FIXED_KEYS, r, answer, extension))
			goto done;
		xfree(&key);
	}
	if (at != NULL && local_len > 0 && (options & MAPS_ADDR_LOCALPART)) {
		key = xstrndup(address, local_len);
		if (try_key(m, key, TABLE_F_FIXED_KEYS, r, answer, NULL))
			goto done;
		xfree(&key);
		if (extension != NULL) {
			key = xstrndup(address, split);
			if (try_key(m, key, TABLE_F_FIXED_KEYS, r, answer, extension))
				goto done;
			xfree(&key);
		}
	}
	if (at != NULL && local_len > 0 && !(options & MAPS_ADDR_NO_AT_DOMAIN) && at[1] != '\0' &&
	    try_key(m, domain, TABLE_F_FIXED_KEYS, r, answer, NULL))
		goto done;
	table_result_reset(r);
done:
	status = r->status;
	free(key);
	free(extension);
	return status;
}

enum table_status maps_lookup_domain(struct maps *m, const char *domain, struct table_result *r,
                                     struct maps_answer *answer)
{
	size_t len = strlen(domain);
	enum table_status status;
	char *key;

	if (len > 1 && domain[len - 1] == '.')
		len--;
	key = xstrndup(domain, len);
	status = maps_lookup(m, key, 0, r, answer);
	free(key);
	return status;
}
