/* address.h - SMTP envelope addresses: parsing MAIL FROM / RCPT TO
 * arguments and quoting. DSN xtext and ORCPT are in xtext.h, Postfix's
 * address resolution in address_resolve.h.
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
	/* strict_smtputf8 = no (Postfix's default): with ADDRESS_PARSE_SMTPUTF8,
	 * a valid UTF-8 address is taken even when the transaction did not
	 * declare SMTPUTF8 (Postfix then treats the mail as SMTPUTF8 only when
	 * it was declared). */
	ADDRESS_PARSE_UTF8_UNDECLARED = 1 << 2,
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

#endif
