/* address_resolve.h - Postfix's trivial-rewrite rules (source routes,
 * bang paths, the percent hack, quoted local parts with routing operators,
 * trailing dots, null and numeric domains), so that smtpd's
 * reject_unauth_destination and qmgr decide on the EFFECTIVE destination,
 * never on the text the client chose to show (DESIGN.md 9: no open relay
 * for any address form). The rule table is in address_resolve.c.
 */
#ifndef POSTERN_ADDRESS_RESOLVE_H
#define POSTERN_ADDRESS_RESOLVE_H

#include "address/address.h"

struct config;

/* Answer of is_local_domain(). */
enum address_local {
	ADDRESS_LOCAL_NO = 0,
	ADDRESS_LOCAL_YES = 1,
	ADDRESS_LOCAL_TEMPFAIL = -1, /* the lookup failed: decide later, never "no" */
};

/* Parameters of the resolver, by their Postfix names. Strings are borrowed
 * for the duration of the call. address_resolve_options_init() gives
 * Postfix's defaults. */
struct address_resolve_options {
	bool swap_bangpath; /* site!user -> user@site (default yes) */
	bool allow_percent_hack; /* user%site -> user@site (default yes) */
	bool resolve_dequoted_address; /* look inside a quoted local part (yes) */
	bool resolve_null_domain; /* user@ -> user@$myhostname (default no) */
	bool resolve_numeric_domain; /* user@1.2.3.4 -> user@[1.2.3.4] (no) */
	const char *myorigin; /* appended to an address without '@'
	                       * (append_at_myorigin); NULL: left without */
	const char *myhostname; /* for resolve_null_domain and addresses that
	                         * are left without a domain */
	const char *mydomain; /* appended to user@host when not NULL
	                       * (append_dot_mydomain = yes); default NULL */
	const char *empty_address_recipient; /* replaces an empty local part;
	                                      * NULL: "MAILER-DAEMON" */
	/* Is this domain delivered on this machine? This is Postfix's
	 * resolve_local(): $mydestination, and for a literal ("[192.0.2.1]",
	 * "[ipv6:...]") the addresses of $inet_interfaces and
	 * $proxy_interfaces. NOT virtual or relay domains: the percent hack and
	 * the other routing rules strip only these domains. domain is
	 * lower-case without a trailing dot. Required. */
	enum address_local (*is_local_domain)(const char *domain, void *ctx);
	void *ctx;
};

/* Which rules fired, for logs and `postern trace` (address_resolve_rules). */
enum {
	ADDRESS_RULE_SOURCE_ROUTE = 1 << 0, /* @a,@b:user@d -> user@d */
	ADDRESS_RULE_BANGPATH = 1 << 1, /* swap_bangpath */
	ADDRESS_RULE_PERCENT = 1 << 2, /* allow_percent_hack */
	ADDRESS_RULE_DEQUOTED = 1 << 3, /* resolve_dequoted_address */
	ADDRESS_RULE_NULL_DOMAIN = 1 << 4, /* resolve_null_domain */
	ADDRESS_RULE_NUMERIC_DOMAIN = 1 << 5, /* resolve_numeric_domain */
	ADDRESS_RULE_TRAILING_DOT = 1 << 6, /* trailing dot removed */
	ADDRESS_RULE_MYORIGIN = 1 << 7, /* append_at_myorigin */
	ADDRESS_RULE_MYHOSTNAME = 1 << 8, /* no domain left: @$myhostname */
	ADDRESS_RULE_MYDOMAIN = 1 << 9, /* append_dot_mydomain */
	ADDRESS_RULE_EMPTY_LOCAL = 1 << 10, /* empty local part -> empty_address_recipient */
	ADDRESS_RULE_LOCAL_STRIPPED = 1 << 11, /* a local @domain was stripped to look further */
};

/* The effective destination of an address. */
struct address_resolved {
	char *local; /* final local part, internal form, case preserved */
	char *domain; /* final domain, lower-case, no trailing dot; a literal
	               * in brackets. Never NULL after a successful call. */
	bool local_domain; /* domain is delivered here (is_local_domain said
	                    * yes): Postfix's local address class */
	/* The final local part still holds a routing operator (@, ! or %):
	 * Postfix's RESOLVE_FLAG_ROUTED. Sender-specified routing: smtpd's
	 * relay check must refuse it from untrusted clients
	 * (allow_untrusted_routing = no), whatever the domain. */
	bool routed;
	/* The final domain is not a valid domain or literal, or no domain
	 * could be found: Postfix's RESOLVE_FLAG_ERROR. smtpd rejects the
	 * address right after parsing it, with the same reply as a syntax
	 * error (501 5.1.3 / 501 5.1.7; Postfix's smtpd_check_addr), so that
	 * user@, user@1.2.3.4 and the like follow resolve_null_domain and
	 * resolve_numeric_domain; qmgr bounces such a recipient. */
	bool bad;
	unsigned rules; /* ADDRESS_RULE_* that fired */
};

/* Postfix's defaults: swap_bangpath, allow_percent_hack and
 * resolve_dequoted_address on, the rest off, strings NULL. The callback
 * and ctx must still be set. */
void address_resolve_options_init(struct address_resolve_options *opt);
/* Fill opt from main.cf: the five booleans above, myhostname, myorigin
 * (NULL when append_at_myorigin = no), mydomain (NULL unless
 * append_dot_mydomain = yes) and empty_address_recipient. The strings are
 * owned by cfg. The callback is not touched. Returns 0, or -1 with
 * *error_r (owned by cfg) naming the parameter with a bad value. */
int address_resolve_options_from_config(struct config *cfg, struct address_resolve_options *opt,
                                        const char **error_r);
/* Resolve in to its effective destination. Returns 0 with out filled (free
 * it with address_resolved_free), or -1 when is_local_domain() reported a
 * temporary failure: nothing was decided, out is empty, the caller replies
 * 4xx / defers (never "unknown user"). An address that cannot be resolved
 * is not a -1: it comes back with out->bad set. */
int address_resolve(const struct mail_address *in, const struct address_resolve_options *opt,
                    struct address_resolved *out);
/* Release the strings of out and clear it. */
void address_resolved_free(struct address_resolved *out);
/* Append the rule names that fired, comma-separated in a fixed order
 * ("source_route,percent_hack"), or nothing when none did. */
void address_resolve_rules(unsigned rules, str_t *out);

#endif
