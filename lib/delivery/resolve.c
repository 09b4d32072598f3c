/* resolve.c - recipient resolution: virtual alias expansion, domain
 * class, mailbox, quota and transport (see resolve.h).
 *
 * Used by `postern trace` (server/cli/cli_trace.c) and, later, qmgr.
 * Every step appends one line to the result, naming the parameter, the
 * table and the key that answered, so that a trace shows exactly why mail
 * goes where it goes.
 *
 * Failure: a table's temporary failure, or an alias expansion that goes
 * over virtual_alias_recursion_limit or virtual_alias_expansion_limit,
 * ends the resolution with RESOLVE_TEMPFAIL and the reason (Postfix
 * defers such mail: "unreasonable virtual_alias_maps map nesting/expansion
 * size"); nothing is decided from a lookup that did not answer. Nothing is
 * written anywhere: the quota usage is read from maildirsize, which is
 * never rebuilt here.
 *
 * Domain lists (mydestination, virtual_*_domains, relay_domains) are
 * parsed by lib/address/domain_list.c, as in the restriction engine; the
 * matching loop is this file's because its lookups are synchronous
 * (smtpd's are asynchronous, lib/smtp/restrict_addr.c).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/mem.h"
#include "base/str.h"
#include "base/strv.h"
#include "conf/config.h"
#include "delivery/maildir.h"
#include "delivery/maildir_quota.h"
#include "address/domain_list.h"
#include "delivery/mailbox_lookup.h"
#include "delivery/resolve.h"
#include "table/maps.h"
#include "table/table.h"
#include "table/table_cache.h"

/* A domain list (domain_list.h) with its tables opened: tables[i] for a
 * table element, NULL for a domain. */
struct dom_list {
	struct domain_list list;
	struct maps **tables;
};

struct resolve_ctx {
	struct config *cfg;
	char *delimiters;
	bool propagate_virtual;
	int64_t recursion_limit;
	int64_t expansion_limit;
	struct maps *alias_maps;
	struct mailbox_lookup *mailbox; /* virtual_mailbox_maps and db:quota */
	struct maps *transport_maps;
	struct maps *sender_relayhost_maps; /* sender_dependent_relayhost_maps */
	struct maps *sender_transport_maps; /* sender_dependent_default_transport_maps */
	char *sender; /* resolve_set_sender(): the envelope sender, or NULL */
	struct maps *local_rcpt_maps; /* local_recipient_maps */
	struct dom_list mydestination, alias_domains, mailbox_domains, relay_domains;
	struct table_cache *cache; /* the process's (table_cache_process()); may be NULL */
};

/* The state of one resolve_recipient() call. */
struct run {
	struct resolve_ctx *ctx;
	struct resolve_result *r;
	strv_t seen; /* lower-cased addresses met so far */
	const char *top; /* the address asked, named in limit messages */
	int64_t pending; /* addresses the expansion holds now (Postfix's argv size) */
};

const char *resolve_class_name(enum resolve_class class)
{
	switch (class) {
	case RESOLVE_CLASS_LOCAL:
		return "local domain";
	case RESOLVE_CLASS_ALIAS:
		return "virtual alias domain";
	case RESOLVE_CLASS_VIRTUAL:
		return "virtual mailbox domain";
	case RESOLVE_CLASS_RELAY:
		return "relay domain";
	case RESOLVE_CLASS_DEFAULT:
		break;
	}
	return "remote domain";
}

void resolve_result_init(struct resolve_result *r)
{
	memset(r, 0, sizeof(*r));
	str_init(&r->error);
}

void resolve_result_free(struct resolve_result *r)
{
	for (size_t i = 0; i < r->nlines; i++)
		free(r->lines[i].text);
	for (size_t i = 0; i < r->nfinals; i++) {
		struct resolve_final *f = &r->finals[i];

		free(f->address);
		free(f->reason);
		free(f->deferred);
		free(f->transport);
		free(f->nexthop);
		free(f->maildir);
		free(f->maildir_value);
	}
	free(r->lines);
	free(r->finals);
	str_free(&r->error);
	memset(r, 0, sizeof(*r));
}

static void add_line(struct resolve_result *r, unsigned depth, char *text)
{
	r->lines = xreallocarray(r->lines, r->nlines + 1, sizeof(*r->lines));
	r->lines[r->nlines].depth = depth;
	r->lines[r->nlines].text = text;
	r->nlines++;
}

static char *lower_dup(const char *s)
{
	char *d = xstrdup(s);

	for (char *p = d; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return d;
}

/* ---- Setup ---- */

static int dom_list_load(struct resolve_ctx *ctx, const char *param,
                         const struct table_open_context *tctx, struct dom_list *dl, str_t *error)
{
	if (domain_list_parse(ctx->cfg, param, &dl->list, error) < 0)
		return -1;
	dl->tables = xcalloc(dl->list.n + 1, sizeof(*dl->tables));
	for (size_t i = 0; i < dl->list.n; i++) {
		if (dl->list.v[i].table == NULL)
			continue;
		dl->tables[i] = maps_open(param, dl->list.v[i].table, tctx, error);
		if (dl->tables[i] == NULL)
			return -1;
	}
	return 0;
}

static void dom_list_free(struct dom_list *dl)
{
	for (size_t i = 0; dl->tables != NULL && i < dl->list.n; i++)
		maps_close(&dl->tables[i]);
	free(dl->tables);
	dl->tables = NULL;
	domain_list_free(&dl->list);
}

static int open_maps(struct resolve_ctx *ctx, const char *param,
                     const struct table_open_context *tctx, struct maps **out, str_t *error)
{
	const char *value, *why;

	if (config_expand(ctx->cfg, param, &value, &why) < 0) {
		str_appendf(error, "%s: %s", param, why);
		return -1;
	}
	*out = maps_open(param, value, tctx, error);
	return *out != NULL ? 0 : -1;
}

int resolve_open(struct config *cfg, const char *config_dir, struct resolve_ctx **ctx_r,
                 str_t *error)
{
	struct resolve_ctx *ctx = xcalloc(1, sizeof(*ctx));
	struct table_open_context tctx = {.cfg = cfg, .config_dir = config_dir};
	const strv_t *propagate_list;
	const char *why, *delim;

	*ctx_r = NULL;
	ctx->cfg = cfg;
	if (config_expand(cfg, "recipient_delimiter", &delim, &why) < 0 ||
	    config_get_list(cfg, "propagate_unmatched_extensions", &propagate_list, &why) < 0 ||
	    config_get_int(cfg, "virtual_alias_recursion_limit", &ctx->recursion_limit, &why) < 0 ||
	    config_get_int(cfg, "virtual_alias_expansion_limit", &ctx->expansion_limit, &why) < 0 ||
	    table_cache_process(cfg, &ctx->cache, &why) < 0) {
		str_append(error, why);
		resolve_close(&ctx);
		return -1;
	}
	ctx->delimiters = xstrdup(delim);
	ctx->propagate_virtual = strv_find(propagate_list, "virtual") >= 0;
	tctx.cache = ctx->cache;
	if (open_maps(ctx, "virtual_alias_maps", &tctx, &ctx->alias_maps, error) < 0 ||
	    mailbox_lookup_open_cached(cfg, config_dir, ctx->cache, &ctx->mailbox, error) < 0 ||
	    open_maps(ctx, "transport_maps", &tctx, &ctx->transport_maps, error) < 0 ||
	    open_maps(ctx, "sender_dependent_relayhost_maps", &tctx, &ctx->sender_relayhost_maps,
	              error) < 0 ||
	    open_maps(ctx, "sender_dependent_default_transport_maps", &tctx,
	              &ctx->sender_transport_maps, error) < 0 ||
	    open_maps(ctx, "local_recipient_maps", &tctx, &ctx->local_rcpt_maps, error) < 0 ||
	    dom_list_load(ctx, "mydestination", &tctx, &ctx->mydestination, error) < 0 ||
	    dom_list_load(ctx, "virtual_alias_domains", &tctx, &ctx->alias_domains, error) < 0 ||
	    dom_list_load(ctx, "virtual_mailbox_domains", &tctx, &ctx->mailbox_domains, error) <
	            0 ||
	    dom_list_load(ctx, "relay_domains", &tctx, &ctx->relay_domains, error) < 0) {
		resolve_close(&ctx);
		return -1;
	}
	*ctx_r = ctx;
	return 0;
}

void resolve_close(struct resolve_ctx **ctxp)
{
	struct resolve_ctx *ctx = *ctxp;

	if (ctx == NULL)
		return;
	maps_close(&ctx->alias_maps);
	mailbox_lookup_close(&ctx->mailbox);
	maps_close(&ctx->transport_maps);
	maps_close(&ctx->sender_relayhost_maps);
	maps_close(&ctx->sender_transport_maps);
	free(ctx->sender);
	maps_close(&ctx->local_rcpt_maps);
	dom_list_free(&ctx->mydestination);
	dom_list_free(&ctx->alias_domains);
	dom_list_free(&ctx->mailbox_domains);
	dom_list_free(&ctx->relay_domains);
	table_cache_release(&ctx->cache);
	free(ctx->delimiters);
	free(ctx);
	*ctxp = NULL;
}

/* ---- Steps ---- */

/* Set the result to TEMPFAIL with why (first failure wins). Returns -1. */
static int tempfail(struct run *run, const char *fmt, const char *a, const char *b)
{
	if (run->r->status != RESOLVE_TEMPFAIL) {
		run->r->status = RESOLVE_TEMPFAIL;
		str_reset(&run->r->error);
		str_appendf(&run->r->error, fmt, a, b);
	}
	return -1;
}

/* Postfix match_list() for domains: the first matching element decides (a
 * negated one: no match). 1 with *how_r set to the element ("db:domains"
 * or the domain) when it matches, 0 when not, -1 on TEMPFAIL. */
static int dom_match(struct run *run, const struct dom_list *dl, const char *domain, char **how_r)
{
	struct table_result tr;
	int result = 0;

	table_result_init(&tr);
	for (size_t i = 0; i < dl->list.n && result == 0; i++) {
		const struct domain_list_elem *d = &dl->list.v[i];
		bool m = false;

		if (d->table != NULL) {
			const char *name = domain;

			while (*name != '\0') {
				const char *next;
				enum table_status st =
				        maps_lookup_domain(dl->tables[i], name, &tr, NULL);

				if (st == TABLE_TEMPFAIL) {
					table_result_free(&tr);
					return tempfail(run, "%s: %s", dl->list.param,
					                str_c(&tr.error));
				}
				if (st == TABLE_FOUND) {
					m = true;
					break;
				}
				next = strchr(name + 1, '.');
				if (next == NULL)
					break;
				if (dl->list.parent_style)
					next++;
				name = next;
			}
		} else if (strcmp(d->domain, domain) == 0) {
			m = true;
		} else if (d->domain[0] == '.') {
			size_t n = strlen(domain), s = strlen(d->domain);

			m = n > s && strcmp(domain + n - s, d->domain) == 0;
		} else if (dl->list.parent_style) {
			size_t n = strlen(domain), s = strlen(d->domain);

			m = n > s + 1 && domain[n - s - 1] == '.' &&
			    strcmp(domain + n - s, d->domain) == 0;
		}
		if (m) {
			if (d->neg)
				break;
			*how_r = xstrdup(d->table != NULL ? d->table : d->domain);
			result = 1;
		}
	}
	table_result_free(&tr);
	return result;
}

/* The lower-cased domain of address ("" when it has none). */
static char *domain_of(const char *address)
{
	const char *at = strrchr(address, '@');

	return lower_dup(at != NULL ? at + 1 : "");
}

/* Split "transport:nexthop" into its parts; either may be empty. */
static void split_transport(const char *value, char **transport_r, char **nexthop_r)
{
	const char *colon = strchr(value, ':');

	if (colon == NULL) {
		*transport_r = xstrdup(value);
		*nexthop_r = xstrdup("");
	} else {
		*transport_r = xstrndup(value, (size_t)(colon - value));
		*nexthop_r = xstrdup(colon + 1);
	}
}

/* transport_maps as transport(5): user+ext@domain, user@domain, domain,
 * then .parent domains, then "*". 1 found (value in tr, key in *key_r),
 * 0 not found, -1 TEMPFAIL. */
static int transport_lookup(struct run *run, const char *address, const char *domain,
                            struct table_result *tr, char **key_r, char **table_r)
{
	struct resolve_ctx *ctx = run->ctx;
	struct maps_answer a;
	enum table_status st;
	int result = 0;

	maps_answer_init(&a);
	if (maps_count(ctx->transport_maps) == 0)
		goto done;
	st = maps_lookup_addr(ctx->transport_maps, address, ctx->delimiters, MAPS_ADDR_NO_AT_DOMAIN,
	                      tr, &a);
	for (const char *name = domain; st == TABLE_NOTFOUND && *name != '\0';) {
		st = maps_lookup(ctx->transport_maps, name, TABLE_F_FIXED_KEYS, tr, &a);
		name = strchr(name + (name[0] == '.'), '.');
		if (name == NULL)
			break;
	}
	if (st == TABLE_NOTFOUND)
		st = maps_lookup(ctx->transport_maps, "*", TABLE_F_FIXED_KEYS, tr, &a);
	if (st == TABLE_TEMPFAIL)
		result = tempfail(run, "transport_maps: %s%s", str_c(&tr->error), "");
	else if (st == TABLE_FOUND) {
		*key_r = xstrdup(a.key);
		*table_r = xstrdup(a.table->spec);
		result = 1;
	}
done:
	maps_answer_free(&a);
	return result;
}

void resolve_set_sender(struct resolve_ctx *ctx, const char *sender)
{
	free(ctx->sender);
	ctx->sender = sender != NULL ? xstrdup(sender) : NULL;
}

/* A sender-dependent table (Postfix: the sender address, then its
 * @domain; the null sender as empty_address_*_lookup_key "<>"). 1 found
 * (value in tr), 0 not, -1 TEMPFAIL. */
static int sender_lookup(struct run *run, struct maps *m, const char *param,
                         struct table_result *tr, char **key_r)
{
	struct resolve_ctx *ctx = run->ctx;
	const char *sender = ctx->sender;
	struct maps_answer a;
	enum table_status st;
	int result = 0;

	if (sender == NULL || maps_count(m) == 0)
		return 0;
	maps_answer_init(&a);
	if (sender[0] == '\0')
		st = maps_lookup(m, "<>", TABLE_F_FIXED_KEYS, tr, &a);
	else
		st = maps_lookup_addr(m, sender, ctx->delimiters, 0, tr, &a);
	if (st == TABLE_TEMPFAIL)
		result = tempfail(run, "%s: %s", param, str_c(&tr->error));
	else if (st == TABLE_FOUND) {
		*key_r = xstrdup(a.key);
		result = 1;
	}
	maps_answer_free(&a);
	return result;
}

/* Read the usage from f's maildirsize without rebuilding it. */
static void quota_usage(const struct resolve_ctx *ctx, struct resolve_final *f, str_t *out)
{
	str_t why;
	int rc;

	str_init(&why);
	rc = maildir_quota_peek(config_str(ctx->cfg, "virtual_mailbox_base"), f->maildir_value,
	                        &f->usage, &why);
	f->usage_known = rc >= 0;
	if (rc < 0)
		str_appendf(out, "usage unknown (%s)", str_c(&why));
	else
		str_appendf(out, "used %lld bytes, %lld messages (%s)", (long long)f->usage.bytes,
		            (long long)f->usage.count,
		            rc == 0 ? "no maildirsize yet" : "maildirsize");
	str_free(&why);
}

/* The mailbox, quota and usage of a virtual mailbox address
 * (mailbox_lookup.h, as the virtual agent looks it up). 1 found, 0
 * unknown user, -1 TEMPFAIL. */
static int mailbox_step(struct run *run, const char *address, unsigned depth,
                        struct resolve_final *f)
{
	struct mailbox_info info;
	int result = 0;

	mailbox_info_init(&info);
	switch (mailbox_lookup(run->ctx->mailbox, address, &info)) {
	case TABLE_TEMPFAIL:
		result = tempfail(run, "%s%s", str_c(&info.error), "");
		break;
	case TABLE_NOTFOUND:
		break;
	case TABLE_FOUND:
		f->maildir = xstrdup(info.path);
		f->maildir_value = xstrdup(info.value);
		add_line(run->r, depth,
		         xasprintf("mailbox: virtual_mailbox_maps %s key %s -> %s (%s %s)%s%s%s",
		                   info.table, info.key, info.value,
		                   info.is_maildir ? "maildir" : "mailbox file", info.path,
		                   info.source != NULL ? " from \"" : "",
		                   info.source != NULL ? info.source : "",
		                   info.source != NULL ? "\"" : ""));
		if (info.quota_table != NULL) {
			str_t line;

			str_init(&line);
			f->quota = info.quota;
			if (info.quota >= 0)
				str_appendf(&line, "quota: %s -> %lld bytes%s; ", info.quota_table,
				            (long long)info.quota,
				            info.quota == 0 ? " (no limit)" : "");
			else
				str_appendf(&line, "quota: %s -> none; ", info.quota_table);
			quota_usage(run->ctx, f, &line);
			add_line(run->r, depth, str_steal(&line));
			str_free(&line);
		}
		result = 1;
		break;
	}
	mailbox_info_free(&info);
	return result;
}

/* local_recipient_maps for a local-domain address (Postfix's
 * check_rcpt_maps: user+ext@domain, user@domain, user+ext, user): 1
 * known (or the list is empty: Postfix then accepts every local part and
 * the local agent answers "unknown user"), 0 unknown, -1 TEMPFAIL. */
static int local_rcpt_step(struct run *run, const char *address, unsigned depth)
{
	struct resolve_ctx *ctx = run->ctx;
	struct table_result tr;
	struct maps_answer a;
	int result = 0;

	if (maps_count(ctx->local_rcpt_maps) == 0)
		return 1;
	table_result_init(&tr);
	maps_answer_init(&a);
	switch (maps_lookup_addr(ctx->local_rcpt_maps, address, ctx->delimiters,
	                         MAPS_ADDR_LOCALPART, &tr, &a)) {
	case TABLE_TEMPFAIL:
		result = tempfail(run, "local_recipient_maps: %s%s", str_c(&tr.error), "");
		break;
	case TABLE_NOTFOUND:
		break;
	case TABLE_FOUND:
		add_line(run->r, depth,
		         xasprintf("local recipient: local_recipient_maps %s key %s", a.table->spec,
		                   a.key));
		result = 1;
		break;
	}
	maps_answer_free(&a);
	table_result_free(&tr);
	return result;
}

/* Decide where the final address goes and record it. 0 or -1 (TEMPFAIL). */
static int final_step(struct run *run, const char *address, unsigned depth)
{
	struct resolve_ctx *ctx = run->ctx;
	struct resolve_result *r = run->r;
	struct resolve_final f;
	char *domain = domain_of(address), *how = NULL;
	const char *param = NULL, *class_param = NULL;
	char *tkey = NULL, *ttable = NULL;
	struct table_result tr;
	int m, rc = 0;

	memset(&f, 0, sizeof(f));
	f.quota = -1;
	f.deliverable = true;
	table_result_init(&tr);
	if ((m = dom_match(run, &ctx->mydestination, domain, &how)) != 0) {
		f.class = RESOLVE_CLASS_LOCAL;
		param = "mydestination";
		class_param = "local_transport";
	} else if ((m = dom_match(run, &ctx->alias_domains, domain, &how)) != 0) {
		f.class = RESOLVE_CLASS_ALIAS;
		param = "virtual_alias_domains";
	} else if ((m = dom_match(run, &ctx->mailbox_domains, domain, &how)) != 0) {
		f.class = RESOLVE_CLASS_VIRTUAL;
		param = "virtual_mailbox_domains";
		class_param = "virtual_transport";
	} else if ((m = dom_match(run, &ctx->relay_domains, domain, &how)) != 0) {
		f.class = RESOLVE_CLASS_RELAY;
		param = "relay_domains";
		class_param = "relay_transport";
	} else {
		f.class = RESOLVE_CLASS_DEFAULT;
		class_param = "default_transport";
	}
	if (m < 0)
		goto fail;
	if (param != NULL)
		add_line(r, depth,
		         xasprintf("class: %s (%s %s)", resolve_class_name(f.class), param, how));
	else
		add_line(r, depth,
		         xasprintf("class: %s (no domain list matches)",
		                   resolve_class_name(f.class)));

	if (f.class == RESOLVE_CLASS_LOCAL) {
		m = local_rcpt_step(run, address, depth);
		if (m < 0)
			goto fail;
		if (m == 0) {
			f.deliverable = false;
			f.reason = xstrdup("User unknown in local recipient table");
		}
	} else if (f.class == RESOLVE_CLASS_ALIAS) {
		f.deliverable = false;
		f.reason = xstrdup("User unknown in virtual alias table");
	} else if (f.class == RESOLVE_CLASS_VIRTUAL) {
		m = mailbox_step(run, address, depth, &f);
		if (m < 0)
			goto fail;
		if (m == 0) {
			f.deliverable = false;
			f.reason = xstrdup("User unknown in virtual mailbox table");
		}
	}
	if (!f.deliverable) {
		f.transport = xstrdup("error");
		f.nexthop = xstrdup(f.reason);
		add_line(r, depth, xasprintf("result: undeliverable: %s", f.reason));
		goto record;
	}

	/* The class's transport and nexthop (default_transport may depend
	 * on the sender), then transport_maps. */
	m = f.class == RESOLVE_CLASS_DEFAULT
	            ? sender_lookup(run, ctx->sender_transport_maps,
	                            "sender_dependent_default_transport_maps", &tr, &tkey)
	            : 0;
	if (m < 0)
		goto fail;
	split_transport(m == 1 ? str_c(&tr.value) : config_str(ctx->cfg, class_param), &f.transport,
	                &f.nexthop);
	if (m == 1) {
		add_line(r, depth,
		         xasprintf("default transport: %s (sender_dependent_default_transport_maps "
		                   "key %s)",
		                   str_c(&tr.value), tkey));
		free(tkey);
		tkey = NULL;
	}
	if (f.nexthop[0] == '\0' &&
	    (f.class == RESOLVE_CLASS_RELAY || f.class == RESOLVE_CLASS_DEFAULT)) {
		const char *relayhost = config_str(ctx->cfg, "relayhost");

		/* sender_dependent_relayhost_maps overrides relayhost. */
		m = sender_lookup(run, ctx->sender_relayhost_maps,
		                  "sender_dependent_relayhost_maps", &tr, &tkey);
		if (m < 0)
			goto fail;
		free(f.nexthop);
		if (m == 1) {
			f.nexthop = xstrdup(str_c(&tr.value));
			add_line(r, depth,
			         xasprintf("relayhost: %s (sender_dependent_relayhost_maps key %s)",
			                   f.nexthop, tkey));
			free(tkey);
			tkey = NULL;
		} else {
			f.nexthop = xstrdup(relayhost[0] != '\0' ? relayhost : domain);
		}
	}
	m = transport_lookup(run, address, domain, &tr, &tkey, &ttable);
	if (m < 0)
		goto fail;
	if (m == 1) {
		char *t, *n;

		split_transport(str_c(&tr.value), &t, &n);
		if (t[0] != '\0') {
			free(f.transport);
			f.transport = t;
		} else {
			free(t);
		}
		if (n[0] != '\0') {
			free(f.nexthop);
			f.nexthop = n;
		} else {
			free(n);
		}
	}
	{
		str_t line;

		str_init(&line);
		str_appendf(&line, "transport: %s", f.transport);
		if (f.nexthop[0] != '\0' && (m == 1 || (f.class != RESOLVE_CLASS_VIRTUAL &&
		                                        f.class != RESOLVE_CLASS_LOCAL)))
			str_appendf(&line, " nexthop %s", f.nexthop);
		if (m == 1)
			str_appendf(&line, " (transport_maps %s key %s)", ttable, tkey);
		else
			str_appendf(&line, " (%s)", class_param);
		add_line(r, depth, str_steal(&line));
		str_free(&line);
	}
	if (strcmp(f.transport, "error") == 0) {
		f.deliverable = false;
		f.reason = xstrdup(f.nexthop[0] != '\0' ? f.nexthop
		                                        : "mail for this domain is refused");
		add_line(r, depth, xasprintf("result: undeliverable: %s", f.reason));
	} else if (strcmp(f.transport, "virtual") == 0 && f.maildir_value != NULL &&
	           f.maildir_value[0] != '\0' &&
	           f.maildir_value[strlen(f.maildir_value) - 1] == '/') {
		/* What virtual would do with the path: the same check, so
		 * trace never calls deliverable what virtual defers. */
		char status[8];
		str_t why;

		str_init(&why);
		if (maildir_path_check(config_str(ctx->cfg, "virtual_mailbox_base"),
		                       f.maildir_value, status, &why) < 0) {
			f.deferred = xasprintf("%s %s", status, str_c(&why));
			add_line(r, depth, xasprintf("result: deferred: %s", f.deferred));
		}
		str_free(&why);
	}
record:
	f.address = xstrdup(address);
	r->finals = xreallocarray(r->finals, r->nfinals + 1, sizeof(*r->finals));
	r->finals[r->nfinals++] = f;
	memset(&f, 0, sizeof(f));
	if (!r->finals[r->nfinals - 1].deliverable && r->status == RESOLVE_OK)
		r->status = RESOLVE_UNDELIVERABLE;
	goto done;
fail:
	rc = -1;
	free(f.transport);
	free(f.nexthop);
	free(f.reason);
	free(f.deferred);
	free(f.maildir);
	free(f.maildir_value);
done:
	free(tkey);
	free(ttable);
	free(how);
	free(domain);
	table_result_free(&tr);
	return rc;
}

/* target with the unmatched extension ext put back before its '@'. */
static char *propagate(const char *target, const char *ext)
{
	const char *at = strrchr(target, '@');

	if (at == NULL)
		return xasprintf("%s%s", target, ext);
	return xasprintf("%.*s%s%s", (int)(at - target), target, ext, at);
}

/* Has this address been met in this expansion? Marks it when not. */
static bool seen_before(struct run *run, const char *address)
{
	char *key = lower_dup(address);

	if (strv_find(&run->seen, key) >= 0) {
		free(key);
		return true;
	}
	strv_add_owned(&run->seen, key);
	return false;
}

static int expand(struct run *run, const char *address, unsigned depth)
{
	struct resolve_ctx *ctx = run->ctx;
	struct table_result tr;
	struct maps_answer a;
	strv_t targets = STRV_INIT;
	enum table_status st;
	const char *why;
	int rc = 0;

	add_line(run->r, depth, xstrdup(address));
	if ((int64_t)depth >= ctx->recursion_limit)
		return tempfail(run, "unreasonable virtual_alias_maps map nesting for %s%s",
		                run->top, "");
	table_result_init(&tr);
	maps_answer_init(&a);
	st = maps_lookup_addr(ctx->alias_maps, address, ctx->delimiters, 0, &tr, &a);
	if (st == TABLE_TEMPFAIL) {
		rc = tempfail(run, "virtual_alias_maps: %s%s", str_c(&tr.error), "");
		goto done;
	}
	if (st == TABLE_NOTFOUND) {
		rc = final_step(run, address, depth + 1);
		goto done;
	}
	if (strv_split_list(&targets, str_c(&tr.value), &why) < 0 || targets.n == 0) {
		rc = tempfail(run, "virtual_alias_maps: %s: bad value for %s", a.table->spec,
		              a.key);
		goto done;
	}
	if (a.extension != NULL && ctx->propagate_virtual) {
		for (size_t i = 0; i < targets.n; i++) {
			char *p = propagate(targets.v[i], a.extension);

			free(targets.v[i]);
			targets.v[i] = p;
		}
	}
	{
		str_t line;

		str_init(&line);
		str_appendf(&line, "alias: virtual_alias_maps %s key %s ->", a.table->spec, a.key);
		for (size_t i = 0; i < targets.n; i++)
			str_appendf(&line, "%s %s", i > 0 ? "," : "", targets.v[i]);
		if (a.extension != NULL && ctx->propagate_virtual)
			str_appendf(&line, " (extension %s propagated)", a.extension);
		if (targets.n == 1 && strcasecmp(targets.v[0], address) == 0)
			str_append(&line, " (itself: final)");
		if (tr.source.len > 0)
			str_appendf(&line, " from \"%s\"", str_c(&tr.source));
		add_line(run->r, depth + 1, str_steal(&line));
		str_free(&line);
	}
	if (targets.n == 1 && strcasecmp(targets.v[0], address) == 0) {
		rc = final_step(run, address, depth + 1);
		goto done;
	}
	run->pending += (int64_t)targets.n - 1;
	if (run->pending > ctx->expansion_limit) {
		rc = tempfail(run, "unreasonable virtual_alias_maps map expansion size for %s%s",
		              run->top, "");
		goto done;
	}
	for (size_t i = 0; i < targets.n && rc == 0; i++) {
		const char *t = targets.v[i];

		if (strcasecmp(t, address) == 0) {
			add_line(run->r, depth + 1, xasprintf("%s (itself: final)", t));
			rc = final_step(run, t, depth + 2);
			continue;
		}
		if (seen_before(run, t)) {
			add_line(run->r, depth + 1, xasprintf("%s (duplicate: dropped)", t));
			run->pending--;
			continue;
		}
		rc = expand(run, t, depth + 1);
	}
done:
	strv_free(&targets);
	maps_answer_free(&a);
	table_result_free(&tr);
	return rc;
}

enum resolve_status resolve_recipient(struct resolve_ctx *ctx, const char *address,
                                      struct resolve_result *r)
{
	struct run run = {.ctx = ctx, .r = r, .seen = STRV_INIT, .top = address, .pending = 1};
	uint64_t stale_before = table_cache_stale_negatives();

	resolve_result_free(r);
	resolve_result_init(r);
	(void)seen_before(&run, address);
	(void)expand(&run, address, 0);
	strv_free(&run.seen);
	/* Why a refusal becomes a deferral here: while the database is down,
	 * the cache stands in with its last answers, "not found" included
	 * (an address that is no alias is still a mailbox). A final address
	 * found undeliverable, or an expansion to nothing, may then rest on
	 * a "not found" older than a mailbox made since: only the database
	 * can say, so the mail waits for it (4.3.0), never bounces. */
	if (r->status != RESOLVE_TEMPFAIL && table_cache_stale_negatives() != stale_before) {
		bool refused = r->nfinals == 0;

		for (size_t i = 0; i < r->nfinals; i++)
			refused = refused || !r->finals[i].deliverable;
		if (refused) {
			r->status = RESOLVE_TEMPFAIL;
			str_reset(&r->error);
			str_appendf(&r->error,
			            "cannot resolve %s: a table is unavailable and its cached "
			            "answer is not found",
			            address);
		}
	}
	return r->status;
}
