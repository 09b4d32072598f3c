/* table.c - the lookup-table registry and the synchronous lookup path.
 *
 * Implements table.h: finds a backend by type name in one static
 * registry, opens "type:name" (a leading "proxy:" is accepted and ignored:
 * postern has no proxymap, every process opens its own tables), and wraps
 * each lookup with the checks every backend relies on (key bounds,
 * case-folding for exact-key tables) and the one trace line per lookup
 * that `postern trace` and -v -v show. Used by maps.c and every daemon.
 *
 * On failure: table_open returns NULL with a message naming the table; a
 * lookup always ends in exactly one of found, not found or temporary
 * failure, and a backend that reports a temporary failure without saying
 * why still produces a message naming the table.
 */
#include "table/table.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "base/mem.h"
#include "table/table_backends.h"

/* The registry: every table type postern knows. Database and directory
 * backends are added under the guards of table_backends.h. */
static const struct table_backend *const backends[] = {
        &table_backend_static, &table_backend_inline,    &table_backend_texthash,
        &table_backend_cidr,   &table_backend_regexp,    &table_backend_pcre,
        &table_backend_hash,   &table_backend_btree,     &table_backend_lmdb,
        &table_backend_cdb,    &table_backend_unionmap,  &table_backend_pipemap,
        &table_backend_unix,   &table_backend_socketmap, &table_backend_tcp,
#if HAVE_SQLITE
        &table_backend_sqlite,
#endif
#if HAVE_MYSQL
        &table_backend_mysql,
#endif
#if HAVE_PGSQL
        &table_backend_pgsql,
#endif
#if HAVE_LDAP
        &table_backend_ldap,
#endif
        &table_backend_db,
};

/* Postfix table types of binary databases postern does not read (old
 * ndbm/sdbm files): it says which type reads the source file instead. */
static const char *const postmap_types[] = {"dbm", "sdbm"};

void table_result_init(struct table_result *r)
{
	r->status = TABLE_NOTFOUND;
	str_init(&r->value);
	str_init(&r->error);
	str_init(&r->source);
	r->stale = false;
}

void table_result_free(struct table_result *r)
{
	str_free(&r->value);
	str_free(&r->error);
	str_free(&r->source);
	r->status = TABLE_NOTFOUND;
	r->stale = false;
}

void table_result_reset(struct table_result *r)
{
	r->status = TABLE_NOTFOUND;
	str_reset(&r->value);
	str_reset(&r->error);
	str_reset(&r->source);
	r->stale = false;
}

const struct table_backend *table_backend_find(const char *type)
{
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (strcmp(backends[i]->type, type) == 0)
			return backends[i];
	return NULL;
}

static bool valid_type_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

struct table *table_open(const char *spec, const struct table_open_context *ctx, str_t *error)
{
	const struct table_backend *backend;
	const char *colon, *name;
	struct table *t;
	char *type;

	/* Why: Postfix configurations say proxy:mysql:... to share
	 * connections through proxymap(8); postern's worker pool plays
	 * that role, so the prefix carries no meaning here. */
	if (strncmp(spec, "proxy:", 6) == 0)
		spec += 6;
	colon = strchr(spec, ':');
	if (colon == NULL || colon == spec) {
		str_appendf(error, "bad table name \"%s\": expected type:name", spec);
		return NULL;
	}
	for (const char *p = spec; p < colon; p++) {
		if (!valid_type_char(*p)) {
			str_appendf(error, "bad table name \"%s\": expected type:name", spec);
			return NULL;
		}
	}
	type = xstrndup(spec, (size_t)(colon - spec));
	name = colon + 1;
	backend = table_backend_find(type);
	if (backend == NULL) {
		str_appendf(error, "unsupported table type \"%s\" in \"%s\"", type, spec);
		for (size_t i = 0; i < sizeof(postmap_types) / sizeof(postmap_types[0]); i++)
			if (strcmp(type, postmap_types[i]) == 0)
				str_appendf(error,
				            "; use texthash:%s (postern reads the text file "
				            "itself, no postmap needed)",
				            name);
		free(type);
		return NULL;
	}
	free(type);
	if (name[0] == '\0') {
		str_appendf(error, "bad table name \"%s\": nothing after \"%s:\"", spec,
		            backend->type);
		return NULL;
	}
	if (backend->size < sizeof(struct table))
		log_panic("table backend %s: object size %zu is smaller than struct table",
		          backend->type, backend->size);
	t = xcalloc(1, backend->size);
	t->backend = backend;
	t->spec = xstrdup(spec);
	t->name = xstrdup(name);
	t->flags = backend->flags;
	if (backend->open(t, name, ctx, error) < 0) {
		if (backend->close != NULL)
			backend->close(t); /* frees what the failed open set up */
		free(t->spec);
		free(t->name);
		free(t);
		return NULL;
	}
	return t;
}

void table_close(struct table **tp)
{
	struct table *t = *tp;

	if (t == NULL)
		return;
	if (t->backend->close != NULL)
		t->backend->close(t);
	free(t->spec);
	free(t->name);
	free(t);
	*tp = NULL;
}

static long elapsed_ms(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long)(now.tv_sec - start->tv_sec) * 1000 +
	       (long)(now.tv_nsec - start->tv_nsec) / 1000000;
}

/* Why a key is refused without asking the backend, or NULL. */
static const char *refuse_reason(const struct table *t, const char *key, size_t len)
{
	bool pattern = (t->flags & TABLE_F_PATTERN) != 0;

	if (len > (pattern ? (size_t)TABLE_PATTERN_KEY_MAX : (size_t)TABLE_KEY_MAX))
		return "key too long";
	if (memchr(key, '\0', len) != NULL)
		return "key holds a NUL byte";
	if (!pattern && (memchr(key, '\r', len) != NULL || memchr(key, '\n', len) != NULL))
		return "key holds a line break";
	return NULL;
}

void table_lookup_n(struct table *t, const char *key, size_t len, struct table_result *r)
{
	struct timespec start;
	const char *why;
	char *folded = NULL;

	clock_gettime(CLOCK_MONOTONIC, &start);
	table_result_reset(r);
	why = refuse_reason(t, key, len);
	if (why != NULL) {
		/* Show at most 100 bytes of a refused key; it may be huge. */
		log_debug(2, "lookup %.*s%s in %s: not found (%s) (0 ms)",
		          len > 100 ? 100 : (int)len, key, len > 100 ? "..." : "", t->spec, why);
		return;
	}
	if (t->flags & TABLE_F_FIXED_KEYS) {
		folded = xstrndup(key, len);
		for (char *p = folded; *p != '\0'; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		key = folded;
	}
	t->backend->lookup(t, key, r);
	if (r->status == TABLE_TEMPFAIL && r->error.len == 0)
		str_appendf(&r->error, "%s: temporary lookup failure", t->spec);
	if (log_verbose() >= 2) {
		long ms = elapsed_ms(&start);

		switch (r->status) {
		case TABLE_FOUND:
			log_debug(2, "lookup %s in %s: found \"%s\"%s%s%s (%ld ms)", key, t->spec,
			          str_c(&r->value), r->source.len > 0 ? " from \"" : "",
			          str_c(&r->source), r->source.len > 0 ? "\"" : "", ms);
			break;
		case TABLE_NOTFOUND:
			log_debug(2, "lookup %s in %s: not found (%ld ms)", key, t->spec, ms);
			break;
		case TABLE_TEMPFAIL:
			log_debug(2, "lookup %s in %s: temporary failure: %s (%ld ms)", key,
			          t->spec, str_c(&r->error), ms);
			break;
		}
	}
	free(folded);
}

void table_lookup(struct table *t, const char *key, struct table_result *r)
{
	table_lookup_n(t, key, strlen(key), r);
}

int table_dump(struct table *t, void (*fn)(const char *key, const char *value, void *ctx),
               void *ctx, str_t *error)
{
	if (!(t->flags & TABLE_F_DUMPABLE) || t->backend->dump == NULL) {
		str_appendf(error, "%s: %s tables cannot be listed (no fixed keys to show)",
		            t->spec, t->backend->type);
		return -1;
	}
	return t->backend->dump(t, fn, ctx, error);
}
