/* address_resolve.c - Postfix's trivial-rewrite rules: where an envelope
 * address really goes (see address_resolve.h).
 *
 * Used by smtpd's relay check (lib/smtp), qmgr's resolution
 * (lib/delivery/resolve.c) and `postern trace`. SECURITY: every address
 * form that routes elsewhere either resolves to that elsewhere or is
 * flagged, so that a relay check on the result cannot be fooled
 * (tests/unit/test_address.c holds the open-relay battery).
 */
#include "address/address_resolve.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "address/address_syntax.h"
#include "base/mem.h"
#include "conf/config.h"

/* ---- Resolution: Postfix trivial-rewrite ----
 *
 * address_resolve() follows Postfix's smtpd_resolve_addr(): a canonical
 * rewrite in the "local" context (trivial-rewrite rewrite.c, rewrite_tree)
 * and then the resolver loop (resolve.c, resolve_addr), on the internal
 * form. The rules, in the order they are tried, with the parameter that
 * controls each (Postfix defaults in brackets):
 *
 *  rule              parameter                   effect
 *  ----------------- --------------------------- ------------------------------------
 *  source route      (always)                    @a,@b:user@dom -> user@dom; the route
 *                                                is recorded by the parser and ignored
 *  trailing dot      (always)                    user@dom. -> user@dom (one dot only;
 *                                                "dom.." and "@." stay and are bad)
 *  bang path         swap_bangpath [yes]         site!user -> user@site, at the FIRST
 *                                                '!', only when the address has no '@'
 *  percent hack      allow_percent_hack [yes]    user%site -> user@site, at the LAST
 *                                                '%', only when the address has no '@'
 *  myorigin          append_at_myorigin [yes]    user -> user@$myorigin when neither
 *                                                of the two rules above applies
 *  mydomain          append_dot_mydomain [no]    user@host -> user@host.$mydomain
 *  local domain      $mydestination, own IPs     user@LOCAL is stripped to "user" and
 *                    (is_local_domain callback)  the rules above are tried again on
 *                                                what is left; a remote domain ends
 *                                                the loop. This is the only way a
 *                                                bang path or percent hack inside an
 *                                                address with a domain takes effect.
 *  dequoted          resolve_dequoted_address    a local part that needs quoting (it
 *                    [yes]                       holds '@', space, ...) is opened:
 *                                                "user@site" -> user@site at the last
 *                                                '@', else the last '%' (with
 *                                                percent hack), else a bang path
 *  empty local part  empty_address_recipient     "" -> MAILER-DAEMON, re-resolved
 *                    [MAILER-DAEMON]
 *  no domain left    $myhostname                 user -> user@$myhostname, re-resolved
 *  null domain       resolve_null_domain [no]    user@ -> user (then as above);
 *                                                otherwise user@ is bad
 *  numeric domain    resolve_numeric_domain [no] user@1.2.3.4 -> user@[1.2.3.4],
 *                                                local when it is one of our
 *                                                addresses; otherwise it is bad
 *  routed            (always)                    a final local part that still holds
 *                                                '@', '!' or '%' is flagged routed,
 *                                                whatever swap_bangpath and
 *                                                allow_percent_hack say: the next hop
 *                                                may honour them (Postfix:
 *                                                RESOLVE_FLAG_ROUTED)
 *
 * "Operators visible": Postfix tokenises the address after quoting the
 * local part as RFC 822 requires; in a quoted local part '%' and '!' are
 * not operators, so the bang path and percent hack apply only to a local
 * part that is an RFC 822 dot-string (ops_visible below), however the
 * client quoted it. Inside a quoted one only resolve_dequoted_address
 * looks. We work on (local, domain) strings instead of token lists; an
 * address has at most one visible '@' at any step, so the two agree.
 */

/* Postfix's is_822_dot_string() (8-bit clean): true when Postfix would not
 * quote this local part, so that '%' and '!' in it are operators. */
static bool ops_visible(const char *local)
{
	size_t len = strlen(local);

	if (len == 0 || local[0] == '.' || local[len - 1] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)local[i];

		if (c == '.' && local[i + 1] == '.')
			return false;
		if (c == ' ' || c < 32 || c == 127 || strchr("()<>@,;:\\\"[]", c) != NULL)
			return false;
	}
	return true;
}

/* Split "left<op>right" at op: the local part becomes one side and the
 * domain the other. */
static void split_at(char **local, char **domain, char *op, bool domain_first)
{
	char *left = xstrndup(*local, (size_t)(op - *local));
	char *right = xstrdup(op + 1);

	free(*local);
	free(*domain);
	*local = domain_first ? right : left;
	*domain = domain_first ? left : right;
}

/* Strip one trailing dot, but not from "dom.." or a lone ".". */
static void strip_trailing_dot(char *domain, unsigned *rules)
{
	size_t len = strlen(domain);

	if (len > 1 && domain[len - 1] == '.' && domain[len - 2] != '.') {
		domain[len - 1] = '\0';
		*rules |= ADDRESS_RULE_TRAILING_DOT;
	}
}

/* Postfix rewrite_tree() in the "local" context, minus the source route
 * (stripped by the parser): for an address without '@', swap a bang path,
 * else apply the percent hack, else append @$myorigin; then append
 * .$mydomain and strip a trailing dot. */
static void canonicalize(char **local, char **domain, const struct address_resolve_options *opt,
                         unsigned *rules)
{
	if (*domain == NULL) {
		char *op;

		if (**local == '\0')
			return; /* the empty address stays empty */
		if (ops_visible(*local) && opt->swap_bangpath &&
		    (op = strchr(*local, '!')) != NULL) {
			split_at(local, domain, op, true);
			*rules |= ADDRESS_RULE_BANGPATH;
		} else if (ops_visible(*local) && opt->allow_percent_hack &&
		           (op = strrchr(*local, '%')) != NULL) {
			split_at(local, domain, op, false);
			*rules |= ADDRESS_RULE_PERCENT;
		} else if (opt->myorigin != NULL && *opt->myorigin != '\0') {
			*domain = xstrdup(opt->myorigin);
			*rules |= ADDRESS_RULE_MYORIGIN;
		} else {
			return;
		}
	}
	if (opt->mydomain != NULL && *opt->mydomain != '\0' && **domain != '\0' &&
	    **domain != '[' && strchr(*domain, '.') == NULL) {
		char *longer = xasprintf("%s.%s", *domain, opt->mydomain);

		free(*domain);
		*domain = longer;
		*rules |= ADDRESS_RULE_MYDOMAIN;
	}
	strip_trailing_dot(*domain, rules);
	lower_ascii(*domain);
}

void address_resolve_options_init(struct address_resolve_options *opt)
{
	memset(opt, 0, sizeof(*opt));
	opt->swap_bangpath = true;
	opt->allow_percent_hack = true;
	opt->resolve_dequoted_address = true;
}

int address_resolve_options_from_config(struct config *cfg, struct address_resolve_options *opt,
                                        const char **error_r)
{
	bool append_origin, append_domain;

	if (config_get_bool(cfg, "swap_bangpath", &opt->swap_bangpath, error_r) < 0 ||
	    config_get_bool(cfg, "allow_percent_hack", &opt->allow_percent_hack, error_r) < 0 ||
	    config_get_bool(cfg, "resolve_dequoted_address", &opt->resolve_dequoted_address,
	                    error_r) < 0 ||
	    config_get_bool(cfg, "resolve_null_domain", &opt->resolve_null_domain, error_r) < 0 ||
	    config_get_bool(cfg, "resolve_numeric_domain", &opt->resolve_numeric_domain, error_r) <
	            0 ||
	    config_get_bool(cfg, "append_at_myorigin", &append_origin, error_r) < 0 ||
	    config_get_bool(cfg, "append_dot_mydomain", &append_domain, error_r) < 0 ||
	    config_expand(cfg, "myhostname", &opt->myhostname, error_r) < 0 ||
	    config_expand(cfg, "myorigin", &opt->myorigin, error_r) < 0 ||
	    config_expand(cfg, "mydomain", &opt->mydomain, error_r) < 0 ||
	    config_expand(cfg, "empty_address_recipient", &opt->empty_address_recipient, error_r) <
	            0)
		return -1;
	if (!append_origin)
		opt->myorigin = NULL;
	if (!append_domain)
		opt->mydomain = NULL;
	return 0;
}

void address_resolved_free(struct address_resolved *out)
{
	free(out->local);
	free(out->domain);
	memset(out, 0, sizeof(*out));
}

int address_resolve(const struct mail_address *in, const struct address_resolve_options *opt,
                    struct address_resolved *out)
{
	char *local = xstrdup(in->local != NULL ? in->local : "");
	char *domain = in->domain != NULL ? xstrdup(in->domain) : NULL;
	char *saved = NULL; /* the last local domain stripped off */
	unsigned rules = 0;
	size_t limit = strlen(local) + (domain != NULL ? strlen(domain) : 0) + 100;
	bool bad = false, local_class, numeric;
	enum address_local answer;

	memset(out, 0, sizeof(*out));
	if (in->source_route)
		rules |= ADDRESS_RULE_SOURCE_ROUTE;
	if (in->trailing_dot)
		rules |= ADDRESS_RULE_TRAILING_DOT;
	if (domain != NULL)
		lower_ascii(domain);
	canonicalize(&local, &domain, opt, &rules);

	for (size_t iter = 0;; iter++) {
		/* Each step shortens the address or ends the loop, except an
		 * empty_address_recipient that resolves to itself. */
		if (iter > limit) {
			bad = true;
			break;
		}
		if (domain != NULL && *domain == '\0' && opt->resolve_null_domain) {
			xfree(&domain);
			rules |= ADDRESS_RULE_NULL_DOMAIN;
		}
		if (domain != NULL) {
			/* user@ (empty domain) is stripped like a local domain
			 * (Postfix does), so routing in front of it is still
			 * seen; the saved empty domain makes the result bad. */
			if (*domain != '\0') {
				answer = opt->is_local_domain(domain, opt->ctx);
				if (answer == ADDRESS_LOCAL_TEMPFAIL)
					goto tempfail;
				if (answer != ADDRESS_LOCAL_YES)
					break; /* a remote destination: done */
				rules |= ADDRESS_RULE_LOCAL_STRIPPED;
			}
			free(saved);
			saved = domain;
			domain = NULL;
		}
		if (ops_visible(local) &&
		    ((opt->swap_bangpath && strchr(local, '!') != NULL) ||
		     (opt->allow_percent_hack && strchr(local, '%') != NULL))) {
			canonicalize(&local, &domain, opt, &rules);
			continue;
		}
		if (opt->resolve_dequoted_address && !ops_visible(local)) {
			char *op = strrchr(local, '@');

			if (op == NULL && opt->allow_percent_hack)
				op = strrchr(local, '%');
			if (op == NULL && opt->swap_bangpath)
				op = strrchr(local, '!');
			if (op != NULL) {
				rules |= ADDRESS_RULE_DEQUOTED;
				if (*op == '!') {
					/* Postfix re-scans the text with the operators
					 * visible; rewrite_tree then swaps at the first '!'. */
					split_at(&local, &domain, strchr(local, '!'), true);
					rules |= ADDRESS_RULE_BANGPATH;
				} else {
					if (*op == '%')
						rules |= ADDRESS_RULE_PERCENT;
					split_at(&local, &domain, op, false);
				}
				canonicalize(&local, &domain, opt, &rules);
				continue;
			}
		}
		if (*local == '\0') {
			free(local);
			local = xstrdup(opt->empty_address_recipient != NULL
			                        ? opt->empty_address_recipient
			                        : "MAILER-DAEMON");
			rules |= ADDRESS_RULE_EMPTY_LOCAL;
			continue;
		}
		if (saved == NULL && opt->myhostname != NULL && *opt->myhostname != '\0') {
			domain = xstrdup(opt->myhostname);
			lower_ascii(domain);
			rules |= ADDRESS_RULE_MYHOSTNAME;
			continue;
		}
		break;
	}

	if (domain != NULL) {
		free(saved);
		local_class = false;
	} else {
		domain = saved;
		local_class = true;
	}
	if (domain == NULL) {
		domain = xstrdup("");
		bad = true;
	} else if (domain[0] == '[') {
		size_t len = strlen(domain);
		if (len < 2 || domain[len - 1] != ']' || !addr_literal_valid(domain + 1, len - 2))
			bad = true;
	} else if (!addr_domain_name_valid(domain, &numeric)) {
		unsigned char buf[sizeof(struct in_addr)];

		if (numeric && opt->resolve_numeric_domain &&
		    inet_pton(AF_INET, domain, buf) == 1) {
			char *literal = xasprintf("[%s]", domain);

			free(domain);
			domain = literal;
			rules |= ADDRESS_RULE_NUMERIC_DOMAIN;
			answer = opt->is_local_domain(domain, opt->ctx);
			if (answer == ADDRESS_LOCAL_TEMPFAIL)
				goto tempfail;
			local_class = answer == ADDRESS_LOCAL_YES;
		} else {
			bad = true;
		}
	}
	out->local = local;
	out->domain = domain;
	out->bad = bad;
	out->local_domain = local_class && !bad;
	out->routed = strpbrk(local, "@!%") != NULL;
	out->rules = rules;
	return 0;

tempfail:
	free(local);
	free(domain);
	free(saved);
	return -1;
}

void address_resolve_rules(unsigned rules, str_t *out)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {
	        {ADDRESS_RULE_SOURCE_ROUTE, "source_route"},
	        {ADDRESS_RULE_LOCAL_STRIPPED, "local_domain_stripped"},
	        {ADDRESS_RULE_BANGPATH, "swap_bangpath"},
	        {ADDRESS_RULE_PERCENT, "allow_percent_hack"},
	        {ADDRESS_RULE_DEQUOTED, "resolve_dequoted_address"},
	        {ADDRESS_RULE_NULL_DOMAIN, "resolve_null_domain"},
	        {ADDRESS_RULE_NUMERIC_DOMAIN, "resolve_numeric_domain"},
	        {ADDRESS_RULE_TRAILING_DOT, "trailing_dot"},
	        {ADDRESS_RULE_MYORIGIN, "append_at_myorigin"},
	        {ADDRESS_RULE_MYDOMAIN, "append_dot_mydomain"},
	        {ADDRESS_RULE_MYHOSTNAME, "myhostname"},
	        {ADDRESS_RULE_EMPTY_LOCAL, "empty_address_recipient"},
	};
	bool first = true;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if ((rules & names[i].bit) == 0)
			continue;
		if (!first)
			str_append_c(out, ',');
		str_append(out, names[i].name);
		first = false;
	}
}
