/* restrict_addr.c - where an address goes and who the client is:
 * permit_mynetworks (mynetworks: networks, addresses, host names, tables),
 * Postfix's domain lists (mydestination, relay_domains,
 * virtual_alias_domains, virtual_mailbox_domains: plain domains, .domain,
 * !negation and type:table elements, with parent_domain_matches_subdomains),
 * address classes (ADDRESS_CLASS_README: local, virtual alias, virtual
 * mailbox, relay, default), reject/defer/permit_auth_destination and
 * reject_unlisted_recipient / reject_unlisted_sender.
 *
 * Used by restrict.c only (restrict_int.h). Table lookups go through
 * ev_lookup() and are asynchronous.
 *
 * Failure: a bad mynetworks or domain-list element is an error when the
 * engine is built, naming the parameter. A lookup that fails at run time
 * gives "451 4.3.0 <addr>: Temporary lookup failure": a recipient is
 * never called unknown because a table could not answer.
 *
 * SECURITY: relay decisions are taken on the effective destination given
 * by address_resolve() (Postfix's trivial-rewrite), so the percent hack,
 * bang paths, source routes, quoted local parts and address literals
 * cannot be used to relay; an address whose final local part still holds
 * a routing operator is refused from untrusted clients
 * (allow_untrusted_routing = no).
 *
 * Local recipients (delivered by server/local). A recipient in
 * a local domain ($mydestination, [our address]) is valid when
 * virtual_alias_maps or local_recipient_maps knows it (the full address or
 * the bare local part); otherwise it is "User unknown in local recipient
 * table". Unlike Postfix, an empty local_recipient_maps does not turn the
 * check off: that would accept any local part at $myhostname.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/mem.h"
#include "base/str.h"
#include "conf/config.h"
#include "smtp/restrict_int.h"
#include "table/maps.h"
#include "table/table.h"

enum rclass { C_DEFAULT, C_LOCAL, C_ALIAS, C_VIRTUAL, C_RELAY };

static char *lower_dup(const char *s)
{
	char *d = xstrdup(s);

	for (char *c = d; *c != '\0'; c++)
		*c = (char)tolower((unsigned char)*c);
	return d;
}

/* ---- Host names ---- */

/* The address of a literal: "[1.2.3.4]" or "[IPv6:...]" (any case). */
static int parse_literal(const char *lit, int *family_r, uint8_t addr[16])
{
	size_t len = strlen(lit);
	char *inner;
	int ok;

	if (len < 3 || lit[0] != '[' || lit[len - 1] != ']')
		return -1;
	inner = xstrndup(lit + 1, len - 2);
	if (strncasecmp(inner, "ipv6:", 5) == 0) {
		ok = inet_pton(AF_INET6, inner + 5, addr) == 1;
		*family_r = AF_INET6;
	} else {
		ok = inet_pton(AF_INET, inner, addr) == 1;
		*family_r = AF_INET;
	}
	free(inner);
	return ok ? 0 : -1;
}

bool restrict_valid_hostliteral(const char *name)
{
	int family;
	uint8_t addr[16];

	return parse_literal(name, &family, addr) == 0;
}

bool restrict_valid_hostaddr(const char *name)
{
	uint8_t addr[16];

	return name[0] != '[' &&
	       (inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1);
}

/* An address in text (maybe [bracketed], maybe IPv4-mapped IPv6) to
 * binary; IPv4-mapped IPv6 becomes IPv4. */
static int parse_ip(const char *text, int *family_r, uint8_t addr[16])
{
	size_t len = strlen(text);
	char *t;
	int rc = -1;

	if (len >= 2 && text[0] == '[' && text[len - 1] == ']')
		t = xstrndup(text + 1, len - 2);
	else
		t = xstrdup(text);
	if (inet_pton(AF_INET, t, addr) == 1) {
		*family_r = AF_INET;
		rc = 0;
	} else if (inet_pton(AF_INET6, t, addr) == 1) {
		static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

		*family_r = AF_INET6;
		if (memcmp(addr, mapped, 12) == 0) {
			memmove(addr, addr + 12, 4);
			*family_r = AF_INET;
		}
		rc = 0;
	}
	free(t);
	return rc;
}

static void canonical_ip(int family, const uint8_t addr[16], str_t *out)
{
	char buf[INET6_ADDRSTRLEN];

	if (inet_ntop(family, addr, buf, sizeof(buf)) != NULL)
		str_set(out, buf);
	else
		str_reset(out);
}

/* ---- Setup ---- */

static bool in_list(const strv_t *list, const char *name)
{
	return list != NULL && strv_find(list, name) >= 0;
}

/* Does name end with ".suffix" (suffix without its dot)? */
static bool is_subdomain(const char *name, const char *suffix)
{
	size_t n = strlen(name), s = strlen(suffix);

	return n > s + 1 && name[n - s - 1] == '.' && strcmp(name + n - s, suffix) == 0;
}

static bool looks_like_table(const char *item)
{
	const char *colon = strchr(item, ':');

	if (colon == NULL || colon == item)
		return false;
	/* An IPv6 address or network is not a table. */
	{
		int family;
		uint8_t addr[16];
		char *head = xstrndup(item, strcspn(item, "/"));
		bool ip = parse_ip(head, &family, addr) == 0;

		free(head);
		if (ip)
			return false;
	}
	for (const char *p = item; p < colon; p++)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
			return false;
	return true;
}

int restrict_parse_mynetworks(struct restrict_engine *e, const strv_t *list, str_t *error)
{
	for (size_t i = 0; i < list->n; i++) {
		const char *item = list->v[i];
		struct rnet n;

		memset(&n, 0, sizeof(n));
		if (*item == '!') {
			n.neg = true;
			item++;
		}
		if (*item == '/') {
			str_appendf(error,
			            "mynetworks: \"%s\": pattern files are not supported; "
			            "use a cidr: table",
			            item);
			return -1;
		}
		if (looks_like_table(item)) {
			n.table = xstrdup(item);
		} else if (strchr(item, '/') != NULL || parse_ip(item, &n.family, n.addr) == 0) {
			const char *slash = strchr(item, '/');
			char *head = xstrndup(item, slash != NULL ? (size_t)(slash - item)
			                                          : strlen(item));
			unsigned max;

			if (parse_ip(head, &n.family, n.addr) < 0) {
				str_appendf(error, "mynetworks: bad network address \"%s\"", item);
				free(head);
				return -1;
			}
			/* "::ffff:1.2.3.4/104" would need prefix arithmetic; rare: refuse. */
			max = n.family == AF_INET ? 32 : 128;
			n.prefix = max;
			if (slash != NULL) {
				char *end;
				unsigned long bits = strtoul(slash + 1, &end, 10);

				if (slash[1] == '\0' || *end != '\0' || bits > max ||
				    (n.family == AF_INET && strchr(head, ':') != NULL)) {
					str_appendf(error, "mynetworks: bad network mask in \"%s\"",
					            item);
					free(head);
					return -1;
				}
				n.prefix = (unsigned)bits;
			}
			free(head);
			for (unsigned b = n.prefix; b < max; b++) {
				if (n.addr[b / 8] & (0x80 >> (b % 8))) {
					str_appendf(
					        error,
					        "mynetworks: non-null host address bits in \"%s\"",
					        item);
					return -1;
				}
			}
		} else {
			char *name = lower_dup(item);
			size_t len = strlen(name);

			if (len > 1 && name[len - 1] == '.')
				name[len - 1] = '\0';
			n.name = name;
		}
		e->nets = xreallocarray(e->nets, e->nnets + 1, sizeof(*e->nets));
		e->nets[e->nnets++] = n;
	}
	return 0;
}

static int maps_load(struct restrict_engine *e, const char *param, strv_t *out, str_t *error)
{
	const strv_t *items;
	const char *why;

	if (config_get_list(e->cfg, param, &items, &why) < 0) {
		str_append(error, why);
		return -1;
	}
	for (size_t i = 0; i < items->n; i++)
		strv_add(out, items->v[i]);
	return 0;
}

static void add_interface(struct restrict_engine *e, int family, const uint8_t addr[16])
{
	str_t s;

	str_init(&s);
	canonical_ip(family, addr, &s);
	if (s.len > 0 && strv_find(&e->interfaces, str_c(&s)) < 0)
		strv_add(&e->interfaces, str_c(&s));
	str_free(&s);
}

/* The addresses of this machine for literals: $inet_interfaces ("all":
 * every interface address) and $proxy_interfaces. */
static int interfaces_load(struct restrict_engine *e, str_t *error)
{
	static const char *const params[] = {"inet_interfaces", "proxy_interfaces"};

	for (size_t k = 0; k < 2; k++) {
		const strv_t *items;
		const char *why;

		if (config_get_list(e->cfg, params[k], &items, &why) < 0) {
			str_append(error, why);
			return -1;
		}
		for (size_t i = 0; i < items->n; i++) {
			int family;
			uint8_t addr[16];

			if (strcmp(items->v[i], "all") == 0) {
				struct ifaddrs *ifa, *p;

				if (getifaddrs(&ifa) == 0) {
					for (p = ifa; p != NULL; p = p->ifa_next) {
						if (p->ifa_addr == NULL)
							continue;
						if (p->ifa_addr->sa_family == AF_INET) {
							const struct sockaddr_in *sin =
							        (const void *)p->ifa_addr;

							memcpy(addr, &sin->sin_addr, 4);
							add_interface(e, AF_INET, addr);
						} else if (p->ifa_addr->sa_family == AF_INET6) {
							const struct sockaddr_in6 *sin6 =
							        (const void *)p->ifa_addr;

							memcpy(addr, &sin6->sin6_addr, 16);
							add_interface(e, AF_INET6, addr);
						}
					}
					freeifaddrs(ifa);
				}
			} else if (strcmp(items->v[i], "loopback-only") == 0) {
				if (parse_ip("127.0.0.1", &family, addr) == 0)
					add_interface(e, family, addr);
				if (parse_ip("::1", &family, addr) == 0)
					add_interface(e, family, addr);
			} else if (parse_ip(items->v[i], &family, addr) == 0) {
				add_interface(e, family, addr);
			}
			/* Host names in inet_interfaces are resolved by the listener. */
		}
	}
	return 0;
}

int restrict_addr_setup(struct restrict_engine *e, str_t *error)
{
	const strv_t *parent, *nets;
	const char *why;

	if (config_get_list(e->cfg, "parent_domain_matches_subdomains", &parent, &why) < 0 ||
	    config_get_list(e->cfg, "mynetworks", &nets, &why) < 0) {
		str_append(error, why);
		return -1;
	}
	e->access_parent_style = in_list(parent, "smtpd_access_maps");
	if (restrict_parse_mynetworks(e, nets, error) < 0 ||
	    domain_list_parse(e->cfg, "mydestination", &e->mydestination, error) < 0 ||
	    domain_list_parse(e->cfg, "relay_domains", &e->relay_domains, error) < 0 ||
	    domain_list_parse(e->cfg, "virtual_alias_domains", &e->alias_domains, error) < 0 ||
	    domain_list_parse(e->cfg, "virtual_mailbox_domains", &e->mailbox_domains, error) < 0 ||
	    maps_load(e, "virtual_alias_maps", &e->alias_maps, error) < 0 ||
	    maps_load(e, "virtual_mailbox_maps", &e->mailbox_maps, error) < 0 ||
	    maps_load(e, "relay_recipient_maps", &e->relay_recipient_maps, error) < 0 ||
	    maps_load(e, "local_recipient_maps", &e->local_recipient_maps, error) < 0 ||
	    interfaces_load(e, error) < 0)
		return -1;
	return 0;
}

void restrict_addr_free(struct restrict_engine *e)
{
	for (size_t i = 0; i < e->nnets; i++) {
		free(e->nets[i].table);
		free(e->nets[i].name);
	}
	free(e->nets);
	e->nets = NULL;
	e->nnets = 0;
	domain_list_free(&e->mydestination);
	domain_list_free(&e->relay_domains);
	domain_list_free(&e->alias_domains);
	domain_list_free(&e->mailbox_domains);
	strv_free(&e->alias_maps);
	strv_free(&e->mailbox_maps);
	strv_free(&e->relay_recipient_maps);
	strv_free(&e->local_recipient_maps);
	strv_free(&e->interfaces);
}

/* ---- Matching ---- */

/* A table lookup as 1 found (*value_r set when value_r is not NULL; the
 * memo owns it), 0 not found, R_TEMPFAIL (why in ev->tempfail_why),
 * R_PENDING. */
static int table_has(struct eval *ev, const char *spec, const char *key, const char **value_r)
{
	const char *error = NULL;
	int st = ev_lookup(ev, spec, key, value_r, &error);

	if (st == EV_PENDING)
		return R_PENDING;
	if (st == TABLE_TEMPFAIL) {
		ev->tempfail_why = error;
		return R_TEMPFAIL;
	}
	return st == TABLE_FOUND ? 1 : 0;
}

/* Postfix match_list() for host names: the first element that matches
 * decides (a negated one: no match). domain is lower-case. */
static int domlist_match(struct eval *ev, const struct domain_list *dl, const char *domain)
{
	for (size_t i = 0; i < dl->n; i++) {
		const struct domain_list_elem *d = &dl->v[i];
		int m = 0;

		if (d->table != NULL) {
			const char *name = domain;

			while (*name != '\0') {
				const char *next;

				m = table_has(ev, d->table, name, NULL);
				if (m != 0)
					break;
				next = strchr(name + 1, '.');
				if (next == NULL)
					break;
				if (dl->parent_style)
					next++;
				name = next;
			}
			if (m < 0)
				return m;
		} else if (strcmp(d->domain, domain) == 0) {
			m = 1;
		} else if (d->domain[0] == '.') {
			size_t n = strlen(domain), s = strlen(d->domain);

			m = n > s && strcmp(domain + n - s, d->domain) == 0;
		} else if (dl->parent_style) {
			m = is_subdomain(domain, d->domain);
		}
		if (m == 1)
			return d->neg ? 0 : 1;
	}
	return 0;
}

static enum address_local is_local_cb(const char *domain, void *ctx)
{
	struct eval *ev = ctx;
	int m;

	if (domain[0] == '[') {
		int family;
		uint8_t addr[16];
		str_t s;
		bool found;

		if (parse_literal(domain, &family, addr) < 0)
			return ADDRESS_LOCAL_NO;
		str_init(&s);
		canonical_ip(family, addr, &s);
		found = strv_find(&ev->e->interfaces, str_c(&s)) >= 0;
		str_free(&s);
		return found ? ADDRESS_LOCAL_YES : ADDRESS_LOCAL_NO;
	}
	m = domlist_match(ev, &ev->e->mydestination, domain);
	if (m < 0)
		return ADDRESS_LOCAL_TEMPFAIL;
	return m ? ADDRESS_LOCAL_YES : ADDRESS_LOCAL_NO;
}

/* 0 with out filled, R_TEMPFAIL or R_PENDING. */
static int ev_resolve(struct eval *ev, const char *addr, struct address_resolved *out)
{
	struct mail_address *a = address_from_internal(addr);
	struct address_resolve_options opt = ev->e->resolve;
	int rc;

	opt.is_local_domain = is_local_cb;
	opt.ctx = ev;
	memset(out, 0, sizeof(*out));
	rc = address_resolve(a, &opt, out);
	mail_address_destroy(&a);
	if (rc == 0)
		return 0;
	return ev->pending ? R_PENDING : R_TEMPFAIL;
}

/* The address class of a resolved address (Postfix resolve_clnt's
 * RESOLVE_CLASS_*), or R_TEMPFAIL / R_PENDING. */
static int classify(struct eval *ev, const struct address_resolved *res)
{
	int m;

	if (res->local_domain)
		return C_LOCAL;
	if (res->domain[0] == '[')
		return C_DEFAULT;
	if ((m = domlist_match(ev, &ev->e->alias_domains, res->domain)) != 0)
		return m < 0 ? m : C_ALIAS;
	if ((m = domlist_match(ev, &ev->e->mailbox_domains, res->domain)) != 0)
		return m < 0 ? m : C_VIRTUAL;
	if ((m = domlist_match(ev, &ev->e->relay_domains, res->domain)) != 0)
		return m < 0 ? m : C_RELAY;
	return C_DEFAULT;
}

int restrict_maps_find_addr(struct eval *ev, const strv_t *specs, const char *address,
                            bool localpart, const char **value_r)
{
	const char *at = strrchr(address, '@');
	size_t local_len = at != NULL ? (size_t)(at - address) : strlen(address);
	const char *delim = ev->e->delimiter != NULL ? ev->e->delimiter : "";
	size_t ext = maps_extension_split(address, local_len, delim);
	strv_t keys = STRV_INIT;
	int rc = 0;

	strv_add(&keys, address);
	if (ext < local_len)
		strv_add_owned(&keys, xasprintf("%.*s%s", (int)ext, address, at != NULL ? at : ""));
	if (at != NULL) {
		if (localpart) {
			strv_add_n(&keys, address, local_len);
			if (ext < local_len)
				strv_add_n(&keys, address, ext);
		}
		strv_add(&keys, at);
	}
	for (size_t k = 0; k < keys.n && rc == 0; k++) {
		for (size_t t = 0; t < specs->n && rc == 0; t++) {
			if (k > 0 && !(restrict_spec_flags(specs->v[t]) & TABLE_F_FIXED_KEYS))
				continue;
			rc = table_has(ev, specs->v[t], keys.v[k], value_r);
		}
	}
	strv_free(&keys);
	return rc;
}

static int maps_addr(struct eval *ev, const strv_t *specs, const char *address, bool localpart)
{
	return restrict_maps_find_addr(ev, specs, address, localpart, NULL);
}

int restrict_resolve_key(struct eval *ev, const char *addr, char **key_r, bool *local_r)
{
	struct address_resolved res;
	int rc = ev_resolve(ev, addr, &res);

	*key_r = NULL;
	*local_r = false;
	if (rc != 0)
		return rc;
	if (res.bad) {
		/* smtpd refused it at MAIL/RCPT already; look it up as given. */
		*key_r = xstrdup(addr);
	} else {
		*key_r = xasprintf("%s@%s", res.local, res.domain);
		*local_r = res.local_domain;
	}
	address_resolved_free(&res);
	return 0;
}

/* ---- Restrictions ---- */

enum rr restrict_permit_mynetworks(struct eval *ev)
{
	const struct restrict_request *q = ev->req;
	struct restrict_engine *e = ev->e;
	int family = 0;
	uint8_t addr[16];
	bool have_ip;

	if (q->client_address == NULL)
		return RR_DUNNO;
	have_ip = parse_ip(q->client_address, &family, addr) == 0;
	for (size_t i = 0; i < e->nnets; i++) {
		const struct rnet *n = &e->nets[i];
		int m = 0;

		if (n->table != NULL) {
			m = table_has(ev, n->table, q->client_address, NULL);
			if (m == R_PENDING)
				return RR_STOP;
			if (m == R_TEMPFAIL)
				return ev_tempfail(ev, ev->namaddr, ev->tempfail_why);
		} else if (n->name != NULL) {
			const char *name = q->client_name;

			if (name != NULL && strcmp(name, "unknown") != 0) {
				char *lname = lower_dup(name);

				m = strcmp(lname, n->name) == 0 ||
				    (n->name[0] == '.' && strlen(lname) > strlen(n->name) &&
				     strcmp(lname + strlen(lname) - strlen(n->name), n->name) ==
				             0) ||
				    is_subdomain(lname, n->name);
				free(lname);
			}
		} else if (have_ip && family == n->family) {
			unsigned full = n->prefix / 8, rest = n->prefix % 8;

			m = memcmp(addr, n->addr, full) == 0 &&
			    (rest == 0 ||
			     ((addr[full] ^ n->addr[full]) & (0xff << (8 - rest)) & 0xff) == 0);
		}
		if (m == 1)
			return n->neg ? RR_DUNNO : RR_OK;
	}
	return RR_DUNNO;
}

enum rr restrict_unauth_destination(struct eval *ev, bool defer, bool permit)
{
	const char *rcpt = ev->req->recipient;
	struct address_resolved res;
	bool authorized = false;
	int rc;

	if (rcpt == NULL)
		return RR_DUNNO;
	rc = ev_resolve(ev, rcpt, &res);
	if (rc == R_PENDING)
		return RR_STOP;
	if (rc == R_TEMPFAIL)
		return ev_tempfail(ev, rcpt,
		                   ev->tempfail_why != NULL ? ev->tempfail_why
		                                            : "domain lookup failed");
	/* Why routed addresses are refused whatever their domain: the final
	 * local part still routes ("user%other@relay.example"); the next hop
	 * would relay it on for anyone (Postfix permit_auth_destination). */
	if (!res.bad && !(res.routed && !ev->e->allow_untrusted_routing)) {
		int c = classify(ev, &res);

		if (c == R_PENDING) {
			address_resolved_free(&res);
			return RR_STOP;
		}
		if (c == R_TEMPFAIL) {
			address_resolved_free(&res);
			return ev_tempfail(ev, rcpt, ev->tempfail_why);
		}
		authorized = c != C_DEFAULT;
	}
	address_resolved_free(&res);
	if (permit)
		return authorized ? RR_OK : RR_DUNNO;
	if (authorized)
		return RR_DUNNO;
	/* Postfix: defer_unauth_destination answers relay_domains_reject_code
	 * turned temporary (554 -> 454), not defer_code. */
	if (defer)
		return ev_reject(
		        ev, ev->e->relay_code >= 500 ? ev->e->relay_code - 100 : ev->e->relay_code,
		        "4.7.1", "<%s>: Relay access denied", rcpt);
	return ev_reject(ev, ev->e->relay_code, "5.7.1", "<%s>: Relay access denied", rcpt);
}

enum rr restrict_unlisted(struct eval *ev, bool sender)
{
	const char *addr = sender ? ev->req->sender : ev->req->recipient;
	const char *reply_class = sender ? "Sender address" : "Recipient address";
	const char *dsn = sender ? "5.1.0" : "5.1.1";
	struct restrict_engine *e = ev->e;
	struct address_resolved res;
	char *resolved;
	int rc, c, found = 0;
	bool alias_failed = false;

	if (addr == NULL || addr[0] == '\0')
		return RR_DUNNO;
	if (!sender && e->no_unknown_rcpt_checks)
		return RR_DUNNO;
	if (sender)
		ev->sender_checked = true;
	else
		ev->rcpt_checked = true;
	rc = ev_resolve(ev, addr, &res);
	if (rc == R_PENDING)
		return RR_STOP;
	if (rc == R_TEMPFAIL)
		return ev_tempfail(ev, addr,
		                   ev->tempfail_why != NULL ? ev->tempfail_why
		                                            : "domain lookup failed");
	if (res.bad) {
		address_resolved_free(&res);
		return RR_DUNNO; /* smtpd refuses it as a syntax error */
	}
	c = classify(ev, &res);
	resolved = xasprintf("%s@%s", res.local, res.domain);
	address_resolved_free(&res);
	if (c == R_PENDING || c == R_TEMPFAIL || c == C_DEFAULT) {
		free(resolved);
		if (c == R_PENDING)
			return RR_STOP;
		if (c == R_TEMPFAIL)
			return ev_tempfail(ev, addr, ev->tempfail_why);
		return RR_DUNNO;
	}
	/* Postfix check_rcpt_maps(): an alias makes any address valid.
	 * Why go on after an alias table's temporary failure: a mailbox
	 * makes the address valid whatever that table would say, and
	 * during a database outage the table cache may answer the mailbox
	 * (a stale "not found" of the alias is never served: it is the
	 * failure). Only when nothing is found does the failure stand. */
	found = maps_addr(ev, &e->alias_maps, resolved, c == C_LOCAL);
	if (found == R_TEMPFAIL) {
		alias_failed = true;
		found = 0;
	}
	if (found == 0 && c == C_LOCAL)
		found = maps_addr(ev, &e->local_recipient_maps, resolved, true);
	if (found == 0 && c == C_VIRTUAL)
		found = maps_addr(ev, &e->mailbox_maps, resolved, false);
	if (found == 0 && c == C_RELAY) {
		if (e->relay_recipient_maps.n == 0)
			found = 1;
		else
			found = maps_addr(ev, &e->relay_recipient_maps, resolved, false);
	}
	free(resolved);
	if (found == R_PENDING)
		return RR_STOP;
	if (found == R_TEMPFAIL || (found == 0 && alias_failed))
		return ev_tempfail(ev, addr, ev->tempfail_why);
	if (found == 1)
		return RR_DUNNO;
	switch (c) {
	case C_LOCAL:
		return ev_reject(ev, e->unknown_local_code, dsn,
		                 "<%s>: %s rejected: User unknown in local recipient table", addr,
		                 reply_class);
	case C_ALIAS:
		return ev_reject(ev, e->unknown_alias_code, dsn,
		                 "<%s>: %s rejected: User unknown in virtual alias table", addr,
		                 reply_class);
	case C_VIRTUAL:
		return ev_reject(ev, e->unknown_mailbox_code, dsn,
		                 "<%s>: %s rejected: User unknown in virtual mailbox table", addr,
		                 reply_class);
	default:
		return ev_reject(ev, e->unknown_relay_code, dsn,
		                 "<%s>: %s rejected: User unknown in relay recipient table", addr,
		                 reply_class);
	}
}

/* One DNS answer through the memo: 1 found (*value_r), 0 not found,
 * R_TEMPFAIL (why in ev->tempfail_why), R_PENDING. */
static int dns_has(struct eval *ev, const char *spec, const char *domain, const char **value_r)
{
	const char *error = NULL;
	int st = ev_lookup(ev, spec, domain, value_r, &error);

	if (st == EV_PENDING)
		return R_PENDING;
	if (st == TABLE_TEMPFAIL) {
		ev->tempfail_why = error;
		return R_TEMPFAIL;
	}
	return st == TABLE_FOUND ? 1 : 0;
}

/* Postfix reject_unknown_mailhost(): MX, then A, then AAAA; the first
 * record found ends the search. A missing name (NXDOMAIN) ends it too:
 * no other type can exist. */
static enum rr unknown_mailhost(struct eval *ev, const char *domain, const char *addr, bool sender)
{
	static const char *const specs[] = {RESTRICT_DNS_MX, RESTRICT_DNS_A, RESTRICT_DNS_AAAA};
	const char *reply_class = sender ? "Sender address" : "Recipient address";
	const char *dsn = sender ? "4.1.8" : "4.1.2";
	struct restrict_engine *e = ev->e;
	bool tempfail = false;

	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
		const char *value = "";
		int m = dns_has(ev, specs[i], domain, &value);

		if (m == R_PENDING)
			return RR_STOP;
		if (m == R_TEMPFAIL) {
			tempfail = true;
			continue;
		}
		if (m == 1 && strcmp(value, "nullmx") == 0)
			return ev_reject(
			        ev, e->nullmx_code, sender ? "5.7.27" : "5.1.10",
			        "<%s>: %s rejected: Domain %s does not accept mail (nullMX)", addr,
			        reply_class, domain);
		if (m == 1 && strcmp(value, "invalid") == 0)
			break; /* malformed MX: "Domain not found" (Postfix DNS_INVAL) */
		if (m == 1)
			return RR_DUNNO;
		if (strcmp(value, "nxdomain") == 0)
			break;
	}
	if (!tempfail)
		return ev_reject(ev, e->unknown_addr_code, dsn,
		                 "<%s>: %s rejected: Domain not found", addr, reply_class);
	/* Postfix DEFER_IF_PERMIT2 with unknown_address_tempfail_action: an
	 * immediate 450 for "defer" (or under warn_if_reject), else a
	 * deferral only if nothing rejects the request later. */
	if (e->unknown_addr_tf_defer || ev->warn_if_reject)
		return ev_reject(ev, 450, dsn, "<%s>: %s rejected: Domain not found", addr,
		                 reply_class);
	if (!ev->defer_if_permit) { /* the first deferral is the one given (Postfix defer_if) */
		str_reset(&ev->dip_reply);
		str_appendf(&ev->dip_reply, "450 %s <%s>: %s rejected: Domain not found", dsn, addr,
		            reply_class);
		ev->defer_if_permit = true;
	}
	return RR_DUNNO;
}

enum rr restrict_unknown_domain(struct eval *ev, bool sender)
{
	const char *addr = sender ? ev->req->sender : ev->req->recipient;
	struct address_resolved res;
	enum rr r;
	int rc, c;

	/* The null sender has no domain to check. */
	if (addr == NULL || addr[0] == '\0')
		return RR_DUNNO;
	rc = ev_resolve(ev, addr, &res);
	if (rc == R_PENDING)
		return RR_STOP;
	if (rc == R_TEMPFAIL)
		return ev_tempfail(ev, addr,
		                   ev->tempfail_why != NULL ? ev->tempfail_why
		                                            : "domain lookup failed");
	/* No domain, an address literal, or a domain this server is the
	 * final destination for (Postfix RESOLVE_CLASS_FINAL: local, virtual
	 * alias, virtual mailbox): nothing to look up. */
	if (res.bad || res.domain[0] == '\0' || res.domain[0] == '[') {
		address_resolved_free(&res);
		return RR_DUNNO;
	}
	c = classify(ev, &res);
	if (c == R_PENDING || c == R_TEMPFAIL) {
		address_resolved_free(&res);
		return c == R_PENDING ? RR_STOP : ev_tempfail(ev, addr, ev->tempfail_why);
	}
	if (c == C_LOCAL || c == C_ALIAS || c == C_VIRTUAL) {
		address_resolved_free(&res);
		return RR_DUNNO;
	}
	r = unknown_mailhost(ev, res.domain, addr, sender);
	address_resolved_free(&res);
	return r;
}
