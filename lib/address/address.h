/* address.h - SMTP envelope addresses: parsing MAIL FROM / RCPT TO
 * arguments, quoting, DSN xtext, and Postfix's address resolution.
 *
 * Three jobs, one module:
 *
 * 1. address_parse_path() parses the argument of MAIL FROM: / RCPT TO:
 *    (RFC 5321 4.1.2, RFC 6531 SMTPUTF8): "<path> [SP esmtp-params]". Every
 *    failure is one value, struct address_error, which carries the exact
 *    reply smtpd sends ("501 5.1.3 Bad recipient address syntax") and a
 *    detail for the log. Every part of the input is bounded (limits below).
 * 2. struct mail_address holds an address in internal (unquoted) form;
 *    address_external() quotes it again for the wire, and
 *    address_internal_string() gives "local@domain" for table lookups.
 * 3. address_resolve() applies Postfix's trivial-rewrite rules (source
 *    routes, bang paths, the percent hack, quoted local parts with routing
 *    operators, trailing dots, null and numeric domains) so that smtpd's
 *    reject_unauth_destination and qmgr decide on the EFFECTIVE destination,
 *    never on the text the client chose to show (DESIGN.md 9: no open relay
 *    for any address form). The rule table is in address.c.
 *
 * Internal form: the local part without quotes or backslashes, exactly
 * what the client meant ("a b"@example.com has local part `a b`). The
 * queue file stores addresses in this form (as Postfix does);
 * address_from_internal() turns such a string back into a mail_address.
 */
#ifndef POSTERN_ADDRESS_H
#define POSTERN_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

#include "base/str.h"

struct config;

/* Bounds applied by address_parse_path(). RFC 5321 4.5.3.1 allows 64
 * octets of local part and 256 of path; like Postfix we accept more local
 * part (some sites use long VERP and SRS local parts), 256 octets as
 * written on the wire (quotes and backslashes included), and up to 512
 * octets for the whole path from '<' to '>' (source route included). */
#define ADDRESS_MAX_PATH 512
#define ADDRESS_MAX_LOCAL 256
#define ADDRESS_MAX_DOMAIN 255 /* without the trailing dot */
#define ADDRESS_MAX_LABEL 63 /* octets; a label with UTF-8: characters */
#define ADDRESS_MAX_PARAMS 16
#define ADDRESS_MAX_PARAM 1000 /* one KEY=VALUE, in octets */

/* Which command the argument belongs to: picks the error replies (5.1.7 for
 * a sender, 5.1.3 for a recipient) and whether <> is allowed. */
enum address_role {
	ADDRESS_SENDER, /* MAIL FROM: <> is the null sender */
	ADDRESS_RECIPIENT, /* RCPT TO: <> is an error */
};

/* Flags for address_parse_path(). */
enum {
	/* SMTPUTF8 is in effect: UTF-8 is allowed in the local part, in
	 * domain labels and in parameter values. For a recipient, pass it when
	 * the MAIL FROM command carried SMTPUTF8. For a sender, pass it when
	 * the server offers SMTPUTF8: a non-ASCII sender then also needs the
	 * SMTPUTF8 keyword among this command's own parameters (RFC 6531 3.4).
	 * UTF-8 is always validated strictly (no overlong forms, surrogates,
	 * code points above U+10FFFF, or C1 controls). Without the flag any
	 * byte above 127 in the address is an error. */
	ADDRESS_PARSE_SMTPUTF8 = 1 << 0,
	/* strict_rfc821_envelopes = no (Postfix's default): also accept an
	 * address without <>, and a local part with misplaced dots (a..b,
	 * a.@example.com; some mobile carriers issue such addresses). White
	 * space before the path and between parameters is accepted in both
	 * modes, like Postfix. RFC 822 phrases and comments are never
	 * accepted. */
	ADDRESS_PARSE_SLOPPY = 1 << 1,
};

/* An address in internal form. Strings are owned by the struct. */
struct mail_address {
	char *local; /* internal (unquoted) form; "" for <> */
	char *domain; /* lower-case (ASCII only), no trailing dot; a literal
	               * keeps its brackets: "[192.0.2.1]", "[ipv6:2001:db8::1]".
	               * NULL for <> and for an address without '@' (RCPT
	               * TO:<postmaster>, Postfix's domainless addresses);
	               * "" for "user@" (resolve_null_domain decides) */
	char *route; /* source route as written, "@a.example,@b.example";
	              * NULL when there was none */
	bool null; /* <> (and <""> from a sender: the same internal form) */
	bool quoted; /* the client sent the local part as a quoted-string */
	bool trailing_dot; /* the domain had a trailing dot (removed) */
	bool source_route; /* route != NULL: ignored for delivery (RFC 5321
	                    * 4.1.1.3, C), but relay checks may refuse it */
	bool literal; /* domain is an address literal */
	bool utf8; /* local part or domain has non-ASCII (SMTPUTF8 needed) */
	bool bracketed; /* the path had <> (false only with ADDRESS_PARSE_SLOPPY) */
};

/* One ESMTP parameter, KEY[=VALUE]. */
struct esmtp_param {
	char *key; /* upper-cased: compare with strcmp(key, "SIZE") */
	char *value; /* as sent (not xtext-decoded); NULL when there was no '=' */
};

/* A parsed MAIL FROM / RCPT TO argument. */
struct mail_path {
	struct mail_address addr;
	struct esmtp_param *params; /* in the order sent */
	size_t nparams;
};

enum address_error_kind {
	ADDRESS_ERR_NONE = 0,
	ADDRESS_ERR_MISSING, /* no argument at all: 501 5.5.4 Syntax: MAIL FROM:<address> */
	ADDRESS_ERR_SYNTAX, /* bad path, or <> in RCPT: 501 5.1.7 / 501 5.1.3 */
	ADDRESS_ERR_TOO_LONG, /* a bound above was exceeded: 501 5.1.7 / 5.1.3 Path too long */
	ADDRESS_ERR_UTF8, /* valid UTF-8 without SMTPUTF8: 553 5.6.7 */
	ADDRESS_ERR_PARAM, /* bad esmtp-param syntax, too many, too long: 501 5.5.4 */
};

/* Why a parse failed. All strings are static. */
struct address_error {
	enum address_error_kind kind;
	int code; /* SMTP reply code: 501, 553 */
	const char *enhanced; /* RFC 3463 code: "5.1.3" */
	const char *text; /* reply text: "Bad recipient address syntax" */
	const char *detail; /* for the log: "expected '>' after the address" */
	size_t offset; /* byte offset in the argument where it went wrong */
};

/* Parse the argument of MAIL FROM: (role ADDRESS_SENDER) or RCPT TO:
 * (ADDRESS_RECIPIENT): everything after the colon, without the CRLF. The
 * input is len bytes and may hold any bytes (a NUL is a syntax error).
 * flags: ADDRESS_PARSE_*. Returns 0 with a new *path_r the caller frees
 * with mail_path_destroy(), or -1 with *path_r = NULL and *error_r filled
 * in (the reply smtpd should send, unchanged). ESMTP parameters are only
 * checked for syntax (RFC 5321 esmtp-keyword ["=" esmtp-value]); whether a
 * keyword is supported, and its value, is smtpd's business (555 5.5.4
 * Unsupported option: FOO). */
int address_parse_path(const char *arg, size_t len, enum address_role role, unsigned flags,
                       struct mail_path **path_r, struct address_error *error_r);
/* Free *pathp and set it to NULL; no-op on NULL. */
void mail_path_destroy(struct mail_path **pathp);
/* The first parameter named key (case-insensitive), or NULL. */
const struct esmtp_param *mail_path_param(const struct mail_path *path, const char *key);
/* Append the reply line of an error: "501 5.1.3 Bad recipient address
 * syntax" (no CRLF). */
void address_error_reply(const struct address_error *error, str_t *out);

/* Build an address from its internal string form "local@domain" (split at
 * the last '@'; no '@' means no domain; "" is the null address), as read
 * from a queue file or an alias expansion. The domain is lower-cased and a
 * trailing dot removed (and flagged); nothing else is checked here: the
 * resolver flags what is not a valid domain. Never fails; the caller frees
 * the result with mail_address_destroy(). */
struct mail_address *address_from_internal(const char *internal);
/* A deep copy; free with mail_address_destroy(). */
struct mail_address *mail_address_copy(const struct mail_address *addr);
/* Free *addrp and set it to NULL; no-op on NULL. */
void mail_address_destroy(struct mail_address **addrp);

/* True when a local part (internal form) must be quoted on the wire: it is
 * not an RFC 5321 Dot-string (atoms of atext, UTF-8 counting as atext,
 * separated by single dots). The empty local part needs quoting (""). */
bool address_local_needs_quoting(const char *local);
/* Append the address as it goes into an SMTP command, without the angle
 * brackets: the local part quoted when address_local_needs_quoting() (with
 * '"' and '\' escaped), '@', the domain. Nothing is appended for <>; the
 * source route is never written (RFC 5321: SHOULD NOT be generated).
 * Returns 0, or -1 when the address cannot be written in SMTP at all (a
 * control character or DEL, e.g. from an alias table) and then appends
 * nothing: the caller bounces the recipient instead of sending the bytes. */
int address_external(const struct mail_address *addr, str_t *out);
/* Append the internal form used for table lookups and the queue file:
 * "local@domain", just "local" without a domain, "" for <>. */
void address_internal_string(const struct mail_address *addr, str_t *out);

/* DSN xtext (RFC 3461 4): decode "+HH" escapes (hex digits in either case,
 * as Postfix accepts them) of len bytes at in, appending to out. Returns 0,
 * or -1 with *error_r (static) for a character outside xtext (33..126 but
 * '+' and '='), a bad escape, or an escape that decodes to NUL. */
int xtext_decode(const char *in, size_t len, str_t *out, const char **error_r);
/* Encode len bytes as xtext, appending to out: bytes 33..126 other than
 * '+' and '=' as they are, everything else as "+HH" (upper-case hex). */
void xtext_encode(const char *in, size_t len, str_t *out);
/* Check and decode an ORCPT value "addr-type;xtext" (RFC 3461 4.2). The
 * addr-type is an atom, returned lower-cased in *type_out ("rfc822"). For
 * "utf-8" (RFC 6533) the address part is utf-8-addr-xtext or, with
 * smtputf8, utf-8-addr-unitext: "\x{HEX}" escapes are decoded and raw UTF-8
 * is allowed; for any other type it is xtext. The decoded address must be
 * non-empty, at most 500 octets, printable ASCII or (for utf-8) valid UTF-8
 * without control characters. Both outputs are replaced, not appended.
 * Returns 0, or -1 with *error_r (static); smtpd then replies
 * "501 5.5.4 Bad ORCPT parameter syntax". */
int address_orcpt_parse(const char *value, bool smtputf8, str_t *type_out, str_t *addr_out,
                        const char **error_r);

/* ---- Resolution (Postfix trivial-rewrite) ---- */

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
