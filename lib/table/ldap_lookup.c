/* ldap_lookup.c - the ldap: table lookup and the login search (see
 * ldap_lookup.h). Used by table_ldap.c and sasl_ldap.c.
 */
#include "table/ldap_lookup.h"

#include <ldap.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/hash.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/strv.h"
#include "table/sqlcf_template.h"
#include "table/table_sqlcf.h"

/* Active Directory's LDAP_MATCHING_RULE_IN_CHAIN. */
#define IN_CHAIN_RULE "1.2.840.113556.1.4.1941"

/* One lookup under way. */
struct walk {
	struct ldap_client *c;
	const struct ldap_cf *cf;
	const char *spec, *key;
	const char *base; /* the expanded search_base of the query */
	const struct sqlcf_addr *k;
	struct table_result *r;
	hash_t *seen_dns; /* lower case: each entry expanded once */
	hash_t *values; /* lower case: each value returned once */
	unsigned entries, count;
	bool failed;
};

static void fail(struct walk *w, const char *fmt, const char *detail)
{
	if (w->failed)
		return;
	w->failed = true;
	w->r->status = TABLE_TEMPFAIL;
	str_reset(&w->r->value);
	str_appendf(&w->r->error, "%s: lookup of \"%s\" failed: ", w->spec, w->key);
	str_appendf(&w->r->error, fmt, detail);
}

static char *lower_dup(const char *s)
{
	char *d = xstrdup(s);

	for (char *p = d; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return d;
}

/* Add one directory value through result_format, once. */
static void add_value(struct walk *w, const char *attr, const struct berval *bv)
{
	struct sqlcf_addr v;
	char *text, *lower;
	size_t before = w->r->value.len;

	if (bv->bv_len == 0)
		return;
	if (bv->bv_len > LDAP_VALUE_MAX || memchr(bv->bv_val, '\0', bv->bv_len) != NULL) {
		log_warning("table %s: a value of %s for \"%s\" is longer than %d bytes or holds a "
		            "NUL byte -- ignored",
		            w->spec, attr, w->key, LDAP_VALUE_MAX);
		return;
	}
	text = xstrndup(bv->bv_val, bv->bv_len);
	lower = lower_dup(text);
	if (hash_contains(w->values, lower)) {
		free(text);
		free(lower);
		return;
	}
	hash_put(w->values, lower, NULL);
	free(lower);
	sqlcf_addr_init(&v, text);
	if (before > 0)
		str_append_c(&w->r->value, ',');
	if (!sqlcf_expand(&w->cf->result_format, w->k, &v, &w->r->value))
		str_truncate(&w->r->value, before); /* result %u/%d: the value lacks it */
	else if (w->cf->expansion_limit > 0 && ++w->count > w->cf->expansion_limit) {
		char *limit = xasprintf("%u", w->cf->expansion_limit);

		fail(w, "more than expansion_limit = %s values", limit);
		free(limit);
	} else if (w->r->value.len > LDAP_ANSWER_MAX) {
		fail(w, "%s", "the answer is longer than 1 MB");
	}
	sqlcf_addr_free(&v);
	free(text);
}

/* Add every value of the attributes in list that entry has; true when
 * it had any. */
static bool add_attrs(struct walk *w, LDAPMessage *entry, const strv_t *list, bool add)
{
	bool any = false;

	for (size_t i = 0; i < list->n && !w->failed; i++) {
		struct berval **vals = ldap_get_values_len(w->c->ld, entry, list->v[i]);

		if (vals == NULL)
			continue;
		for (size_t j = 0; vals[j] != NULL && !w->failed; j++) {
			if (vals[j]->bv_len > 0)
				any = true;
			if (add)
				add_value(w, list->v[i], vals[j]);
		}
		ldap_value_free_len(vals);
	}
	return any;
}

static void walk_entries(struct walk *w, LDAPMessage *res, unsigned level, bool recurse);

/* Search and walk what was found; a missing base (a dangling member DN)
 * is nothing found. */
static void search_walk(struct walk *w, const char *base, int scope, const char *filter,
                        char **attrs, unsigned level, bool recurse)
{
	void *res = NULL;
	str_t error;

	str_init(&error);
	switch (ldap_client_search(w->c, base, scope, filter, attrs, w->cf->size_limit, &res,
	                           &error)) {
	case LDAP_SEARCH_OK:
		walk_entries(w, res, level, recurse);
		ldap_msgfree(res);
		break;
	case LDAP_SEARCH_NO_OBJECT:
		break;
	case LDAP_SEARCH_SIZE_LIMIT:
	case LDAP_SEARCH_ERROR:
		fail(w, "%s", str_c(&error));
		break;
	}
	str_free(&error);
}

/* The filter an expanded member must match. */
static const char *member_filter(const struct walk *w)
{
	return w->cf->recursion_filter != NULL ? w->cf->recursion_filter : "(objectClass=*)";
}

/* Follow one special attribute value: a DN, or an LDAP URL. */
static void follow(struct walk *w, const char *value, unsigned level)
{
	LDAPURLDesc *url = NULL;

	if (!ldap_is_ldap_url(value)) {
		search_walk(w, value, LDAP_SCOPE_BASE, member_filter(w), w->cf->attrs, level, true);
		return;
	}
	if (ldap_url_parse(value, &url) != LDAP_URL_SUCCESS) {
		log_warning("table %s: bad LDAP URL \"%s\" in an entry found for \"%s\" -- ignored",
		            w->spec, value, w->key);
		return;
	}
	{
		/* Only the table's own result attributes among those the URL
		 * names (all of them when it names none). */
		strv_t wanted = STRV_INIT;
		char **attrs;

		for (char **a = w->cf->attrs; *a != NULL; a++) {
			bool listed = url->lud_attrs == NULL;

			for (char **u = url->lud_attrs; u != NULL && *u != NULL && !listed; u++)
				listed = strcasecmp(*u, *a) == 0;
			if (listed)
				strv_add(&wanted, *a);
		}
		attrs = xcalloc(wanted.n + 1, sizeof(*attrs));
		for (size_t i = 0; i < wanted.n; i++)
			attrs[i] = wanted.v[i];
		if (wanted.n > 0)
			search_walk(w, url->lud_dn != NULL ? url->lud_dn : "", url->lud_scope,
			            url->lud_filter != NULL ? url->lud_filter : "(objectClass=*)",
			            attrs, level, true);
		free(attrs);
		strv_free(&wanted);
	}
	ldap_free_urldesc(url);
}

/* A group's members in one search with AD's in-chain rule. */
static void expand_in_chain(struct walk *w, const char *dn, unsigned level)
{
	str_t filter;

	str_init(&filter);
	str_append(&filter, "(&(memberOf:" IN_CHAIN_RULE ":=");
	ldap_escape_filter(&filter, dn);
	str_append(&filter, ")");
	if (w->cf->recursion_filter != NULL) {
		const char *f = w->cf->recursion_filter;

		if (f[0] != '(')
			str_appendf(&filter, "(%s)", f);
		else
			str_append(&filter, f);
	}
	str_append(&filter, ")");
	search_walk(w, w->base, LDAP_SCOPE_SUBTREE, str_c(&filter), w->cf->attrs, level, false);
	str_free(&filter);
}

static void walk_entry(struct walk *w, LDAPMessage *e, unsigned level, bool recurse)
{
	char *dn = ldap_get_dn(w->c->ld, e);
	char *lower;
	bool special;

	if (dn == NULL)
		return;
	if (level == 0 && w->r->source.len == 0)
		str_append(&w->r->source, dn);
	lower = lower_dup(dn);
	if (hash_contains(w->seen_dns, lower)) {
		free(lower);
		ldap_memfree(dn);
		return; /* reached before: a loop, or a member of two groups */
	}
	hash_put(w->seen_dns, lower, NULL);
	free(lower);
	if (++w->entries > LDAP_ENTRIES_MAX) {
		fail(w, "%s", "more than 100000 directory entries visited");
		ldap_memfree(dn);
		return;
	}
	/* Terminal entries give their terminal values and nothing else. */
	if (add_attrs(w, e, &w->cf->terminal_attrs, true) || w->failed) {
		ldap_memfree(dn);
		return;
	}
	add_attrs(w, e, &w->cf->result_attrs, true);
	special = add_attrs(w, e, &w->cf->special_attrs, false);
	if (!special) {
		add_attrs(w, e, &w->cf->leaf_attrs, true);
	} else if (recurse && !w->failed) {
		if (level + 1 > w->cf->recursion_limit) {
			char *limit = xasprintf("%u", w->cf->recursion_limit);

			fail(w, "groups nested deeper than recursion_limit = %s", limit);
			free(limit);
		} else if (w->cf->in_chain) {
			expand_in_chain(w, dn, level + 1);
		} else {
			for (size_t i = 0; i < w->cf->special_attrs.n && !w->failed; i++) {
				struct berval **vals =
				        ldap_get_values_len(w->c->ld, e, w->cf->special_attrs.v[i]);

				for (size_t j = 0; vals != NULL && vals[j] != NULL && !w->failed;
				     j++) {
					char *v;

					if (vals[j]->bv_len == 0 ||
					    vals[j]->bv_len > LDAP_VALUE_MAX ||
					    memchr(vals[j]->bv_val, '\0', vals[j]->bv_len) != NULL)
						continue;
					v = xstrndup(vals[j]->bv_val, vals[j]->bv_len);
					follow(w, v, level + 1);
					free(v);
				}
				if (vals != NULL)
					ldap_value_free_len(vals);
			}
		}
	}
	ldap_memfree(dn);
}

static void walk_entries(struct walk *w, LDAPMessage *res, unsigned level, bool recurse)
{
	/* The entries are kept in res, apart from the handle: a member's
	 * search on the same client may reconnect it (a new handle), or
	 * close it after a failure (then the walk stops here). */
	LDAPMessage *e = ldap_first_entry(w->c->ld, res);

	while (e != NULL && !w->failed) {
		walk_entry(w, e, level, recurse);
		if (w->failed || w->c->ld == NULL)
			break;
		e = ldap_next_entry(w->c->ld, e);
	}
}

/* search_base and query_filter for key; false when the key lacks a part
 * they need (not looked up). */
static bool expand_query(const struct ldap_cf *cf, const struct sqlcf_addr *k, str_t *base,
                         str_t *filter)
{
	return sqlcf_expand_escaped(&cf->search_base, k, NULL, ldap_escape_dn, base) &&
	       sqlcf_expand_escaped(&cf->query_filter, k, NULL, ldap_escape_filter, filter);
}

void ldap_lookup(struct ldap_client *c, const char *spec, const char *key, struct table_result *r)
{
	struct walk w;
	struct sqlcf_addr k;
	str_t base, filter;

	memset(&w, 0, sizeof(w));
	w.c = c;
	w.cf = c->cf;
	w.spec = spec;
	w.key = key;
	w.k = &k;
	w.r = r;
	w.seen_dns = hash_new(NULL);
	w.values = hash_new(NULL);
	r->status = TABLE_NOTFOUND;
	sqlcf_addr_init(&k, key);
	str_init(&base);
	str_init(&filter);
	if (sqlcf_key_eligible(&c->cf->domains, c->cf->need, c->cf->labels, spec, &k, r) > 0 &&
	    expand_query(c->cf, &k, &base, &filter)) {
		w.base = str_c(&base);
		search_walk(&w, str_c(&base), c->cf->scope, str_c(&filter), c->cf->attrs, 0, true);
		if (!w.failed && r->value.len > 0)
			r->status = TABLE_FOUND;
	}
	if (r->status != TABLE_FOUND)
		str_reset(&r->source);
	hash_destroy(&w.seen_dns);
	hash_destroy(&w.values);
	str_free(&base);
	str_free(&filter);
	sqlcf_addr_free(&k);
}

int ldap_lookup_dn(struct ldap_client *c, const char *key, str_t *dn_r, str_t *canonical_r,
                   str_t *why, str_t *error)
{
	struct table_result scratch;
	struct sqlcf_addr k;
	str_t base, filter;
	void *res = NULL;
	int ret = 0, n;

	table_result_init(&scratch);
	sqlcf_addr_init(&k, key);
	str_init(&base);
	str_init(&filter);
	switch (sqlcf_key_eligible(&c->cf->domains, c->cf->need, c->cf->labels, c->cf->path, &k,
	                           &scratch)) {
	case -1:
		str_append(error, str_c(&scratch.error));
		ret = -1;
		goto out;
	case 0:
		str_append(why, "the login does not fit the table's domain list or query");
		goto out;
	default:
		break;
	}
	if (!expand_query(c->cf, &k, &base, &filter)) {
		str_append(why, "the login lacks a part the query needs");
		goto out;
	}
	/* Two entries are enough to know the login is ambiguous. */
	switch (ldap_client_search(c, str_c(&base), c->cf->scope, str_c(&filter), c->cf->attrs, 2,
	                           &res, error)) {
	case LDAP_SEARCH_NO_OBJECT:
		str_append(why, "no entry");
		goto out;
	case LDAP_SEARCH_SIZE_LIMIT:
		/* More than 2 entries: ambiguous, not a directory failure. */
		str_reset(error);
		str_append(why, "more than one entry");
		goto out;
	case LDAP_SEARCH_ERROR:
		ret = -1;
		goto out;
	case LDAP_SEARCH_OK:
		break;
	}
	n = ldap_count_entries(c->ld, res);
	if (n != 1) {
		str_append(why, n == 0 ? "no entry" : "more than one entry");
		goto out;
	}
	{
		LDAPMessage *e = ldap_first_entry(c->ld, res);
		char *dn = ldap_get_dn(c->ld, e);

		if (dn == NULL) {
			str_append(why, "an entry without a DN");
			goto out;
		}
		str_append(dn_r, dn);
		ldap_memfree(dn);
		for (size_t i = 0; i < c->cf->result_attrs.n; i++) {
			struct berval **vals =
			        ldap_get_values_len(c->ld, e, c->cf->result_attrs.v[i]);

			if (vals != NULL && vals[0] != NULL && vals[0]->bv_len > 0 &&
			    vals[0]->bv_len <= LDAP_VALUE_MAX &&
			    memchr(vals[0]->bv_val, '\0', vals[0]->bv_len) == NULL) {
				str_append_n(canonical_r, vals[0]->bv_val, vals[0]->bv_len);
				ldap_value_free_len(vals);
				break;
			}
			if (vals != NULL)
				ldap_value_free_len(vals);
		}
		ret = 1;
	}
out:
	if (res != NULL)
		ldap_msgfree(res);
	table_result_free(&scratch);
	sqlcf_addr_free(&k);
	str_free(&base);
	str_free(&filter);
	return ret;
}
