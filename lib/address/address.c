/* address.c - SMTP envelope addresses: the MAIL FROM / RCPT TO argument
 * parser, quoting, DSN xtext and ORCPT, and Postfix's address resolution
 * (see address.h for the contracts).
 *
 * Used by smtpd (MAIL, RCPT, the relay check), qmgr (resolving each
 * recipient's destination), the smtp/lmtp clients (quoting on the wire)
 * and `postern trace`.
 *
 * SECURITY: the parser reads text straight from the network. It works on
 * an explicit length, never reads past it, copies nothing into fixed-size
 * buffers, bounds every part (path, local part, domain, labels, parameter
 * count and size), validates UTF-8 strictly, and has exactly one way to
 * fail: -1 with a filled struct address_error and no output. The resolver
 * decides where mail goes; it is written so that every address form that
 * routes elsewhere (percent hack, bang path, source route, quoted @) either
 * resolves to that elsewhere or is flagged `routed`, so that a relay check
 * on the resolved domain cannot be fooled (tests/unit/test_address.c has
 * the open-relay battery). It is fuzzed by tests/fuzz/fuzz_address.c.
 */
#include "address/address.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/parse.h"
#include "conf/config.h"

/* ---- Character classes (ASCII, never the locale) ---- */

static bool is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool is_alnum(unsigned char c)
{
	return is_alpha(c) || is_digit(c);
}

static bool is_hex(unsigned char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static unsigned hex_value(unsigned char c)
{
	if (is_digit(c))
		return (unsigned)(c - '0');
	if (c >= 'a' && c <= 'f')
		return (unsigned)(c - 'a' + 10);
	return (unsigned)(c - 'A' + 10);
}

static char to_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static void lower_ascii(char *s)
{
	for (; *s != '\0'; s++)
		*s = to_lower(*s);
}

/* RFC 5322 atext (ASCII part). */
static bool is_atext(unsigned char c)
{
	return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

static bool is_space(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* Length of the valid UTF-8 sequence (2..4 bytes) of a non-ASCII character
 * at s, with avail bytes available, or 0 when it is not one. Strict: no
 * overlong forms, no surrogates, nothing above U+10FFFF, and no C1
 * controls (U+0080..U+009F), which have no business in an address. */
static size_t utf8_char(const unsigned char *s, size_t avail)
{
	unsigned char c = s[0];
	size_t n;
	unsigned lo = 0x80, hi = 0xbf;

	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	if (avail < n)
		return 0;
	if (c == 0xc2)
		lo = 0xa0; /* U+0080..U+009F are C1 controls */
	else if (c == 0xe0)
		lo = 0xa0; /* overlong */
	else if (c == 0xed)
		hi = 0x9f; /* surrogates */
	else if (c == 0xf0)
		lo = 0x90; /* overlong */
	else if (c == 0xf4)
		hi = 0x8f; /* above U+10FFFF */
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

/* True when the NUL-terminated s is entirely valid UTF-8 (ASCII included). */
static bool utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s);

	for (size_t i = 0; i < len;) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		size_t n = utf8_char(p + i, len - i);
		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

/* ---- Domains and address literals ---- */

/* The inside of an address literal (between the brackets): "192.0.2.1" or
 * "IPv6:2001:db8::1" (tag case-insensitive). General-address-literals with
 * other tags are refused: none is registered, and Postfix refuses them too.
 * Checked with inet_pton on a bounded copy. */
static bool literal_valid(const char *content, size_t len)
{
	unsigned char buf[sizeof(struct in6_addr)];
	bool ok;
	char *copy;

	if (len == 0 || len > 5 + 45) /* "IPv6:" + longest IPv6 text */
		return false;
	for (size_t i = 0; i < len; i++)
		if (content[i] == '\0')
			return false;
	if (len > 5 && (content[0] == 'I' || content[0] == 'i') &&
	    (content[1] == 'P' || content[1] == 'p') && (content[2] == 'v' || content[2] == 'V') &&
	    content[3] == '6' && content[4] == ':') {
		copy = xstrndup(content + 5, len - 5);
		ok = inet_pton(AF_INET6, copy, buf) == 1;
	} else {
		copy = xstrndup(content, len);
		ok = strchr(copy, ':') == NULL && inet_pton(AF_INET, copy, buf) == 1;
	}
	free(copy);
	return ok;
}

/* Scan a domain name at s[*pos..len): LDH labels (letter or digit at both
 * ends) that may hold valid UTF-8 (whether SMTPUTF8 allows it is decided
 * by the caller, from *non_ascii_r), labels of 1..63
 * octets (a label with UTF-8: 1..63 characters), at most 255 octets, one
 * trailing dot accepted and reported. On success *pos is after the domain
 * (and its trailing dot) and 0 is returned; else -1 with *detail_r and
 * *pos at the offending byte. *non_ascii_r is set when UTF-8 was seen. */
static int scan_domain(const char *s, size_t len, size_t *pos, bool *trailing_dot_r,
                       bool *non_ascii_r, bool *too_long_r, const char **detail_r)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t p = *pos, start = *pos;

	*trailing_dot_r = false;
	*too_long_r = false;
	for (;;) {
		size_t label_start = p, chars = 0;
		bool label_utf8 = false;

		while (p < len) {
			if (is_alnum(u[p]) || u[p] == '-') {
				p++;
			} else if (u[p] >= 0x80) {
				size_t n = utf8_char(u + p, len - p);
				if (n == 0) {
					*pos = p;
					*detail_r = "invalid UTF-8 in domain";
					return -1;
				}
				p += n;
				label_utf8 = true;
				*non_ascii_r = true;
			} else {
				break;
			}
			chars++;
		}
		if (p == label_start) {
			*pos = p;
			*detail_r = p == start ? "expected a domain name" : "empty domain label";
			return -1;
		}
		if (u[label_start] == '-' || u[p - 1] == '-') {
			*pos = label_start;
			*detail_r = "domain label starts or ends with '-'";
			return -1;
		}
		if ((label_utf8 ? chars : p - label_start) > ADDRESS_MAX_LABEL) {
			*pos = label_start;
			*too_long_r = true;
			*detail_r = "domain label longer than 63";
			return -1;
		}
		if (p - start > ADDRESS_MAX_DOMAIN) {
			*pos = p;
			*too_long_r = true;
			*detail_r = "domain longer than 255 bytes";
			return -1;
		}
		if (p >= len || s[p] != '.')
			break;
		p++;
		if (p >= len || !(is_alnum(u[p]) || u[p] == '-' || u[p] >= 0x80)) {
			*trailing_dot_r = true;
			break;
		}
	}
	*pos = p;
	return 0;
}

/* Is the whole string a valid domain name for delivery? The resolver's
 * last check (Postfix's valid_hostname): the syntax above, and not purely
 * numeric (1.2.3.4 is an address, not a name: resolve_numeric_domain). */
static bool domain_name_valid(const char *d, bool *numeric_r)
{
	size_t len = strlen(d), pos = 0;
	bool dot, non_ascii = false, too_long;
	const char *detail;

	*numeric_r = false;
	if (len == 0)
		return false;
	if (scan_domain(d, len, &pos, &dot, &non_ascii, &too_long, &detail) < 0 || pos != len ||
	    dot)
		return false;
	if (strspn(d, "0123456789.") == len) {
		*numeric_r = true;
		return false;
	}
	return true;
}

/* ---- The MAIL FROM / RCPT TO parser ---- */

struct parser {
	const char *s;
	size_t len;
	size_t pos;
	enum address_role role;
	unsigned flags;
	struct address_error *err;
	bool utf8_seen;
	size_t utf8_at;
};

static bool parser_fail(struct parser *p, enum address_error_kind kind, const char *detail)
{
	struct address_error *e = p->err;
	bool sender = p->role == ADDRESS_SENDER;

	e->kind = kind;
	e->detail = detail;
	e->offset = p->pos;
	switch (kind) {
	case ADDRESS_ERR_MISSING:
		e->code = 501;
		e->enhanced = "5.5.4";
		e->text = sender ? "Syntax: MAIL FROM:<address>" : "Syntax: RCPT TO:<address>";
		break;
	case ADDRESS_ERR_TOO_LONG:
		e->code = 501;
		e->enhanced = sender ? "5.1.7" : "5.1.3";
		e->text = "Path too long";
		break;
	case ADDRESS_ERR_UTF8:
		e->code = 553;
		e->enhanced = "5.6.7";
		e->text = "Must declare SMTPUTF8 to send unicode address";
		break;
	case ADDRESS_ERR_PARAM:
		e->code = 501;
		e->enhanced = "5.5.4";
		e->text = "Bad parameter syntax";
		break;
	case ADDRESS_ERR_NONE:
	case ADDRESS_ERR_SYNTAX:
	default:
		e->kind = ADDRESS_ERR_SYNTAX;
		e->code = 501;
		e->enhanced = sender ? "5.1.7" : "5.1.3";
		e->text = sender ? "Bad sender address syntax" : "Bad recipient address syntax";
		break;
	}
	return false;
}

/* A non-ASCII byte at p->pos inside the address: must start valid UTF-8.
 * Whether UTF-8 is allowed at all is decided once the parameters are
 * known (a sender's SMTPUTF8 keyword comes after the address). Returns
 * the sequence length, or 0 after recording a syntax error. */
static size_t parser_utf8(struct parser *p, const char *what)
{
	size_t n = utf8_char((const unsigned char *)p->s + p->pos, p->len - p->pos);

	if (n == 0) {
		parser_fail(p, ADDRESS_ERR_SYNTAX, what);
		return 0;
	}
	if (!p->utf8_seen) {
		p->utf8_seen = true;
		p->utf8_at = p->pos;
	}
	return n;
}

/* The end of an unbracketed (sloppy) address: white space or the end. */
static bool at_bare_end(const struct parser *p)
{
	return p->pos >= p->len || is_space((unsigned char)p->s[p->pos]);
}

/* Local-part = Dot-string / Quoted-string. Appends the internal form to
 * out. In sloppy mode a dot-string may have empty atoms (a..b, a.). */
static bool parse_local(struct parser *p, bool bracketed, str_t *out, bool *quoted_r)
{
	const unsigned char *u = (const unsigned char *)p->s;
	size_t start = p->pos;

	*quoted_r = false;
	if (p->pos < p->len && p->s[p->pos] == '"') {
		*quoted_r = true;
		p->pos++;
		for (;;) {
			if (p->pos >= p->len)
				return parser_fail(p, ADDRESS_ERR_SYNTAX,
				                   "unterminated quoted string");
			unsigned char c = u[p->pos];
			if (c == '"') {
				p->pos++;
				break;
			}
			if (c == '\\') {
				p->pos++;
				if (p->pos >= p->len || u[p->pos] < 32 || u[p->pos] > 126)
					return parser_fail(p, ADDRESS_ERR_SYNTAX,
					                   "bad quoted-pair in quoted string");
				str_append_c(out, (char)u[p->pos]);
				p->pos++;
			} else if (c >= 32 && c <= 126) {
				str_append_c(out, (char)c);
				p->pos++;
			} else if (c >= 0x80) {
				size_t n = parser_utf8(p, "invalid UTF-8 in local part");
				if (n == 0)
					return false;
				str_append_n(out, p->s + p->pos, n);
				p->pos += n;
			} else {
				return parser_fail(p, ADDRESS_ERR_SYNTAX,
				                   "control character in quoted string");
			}
			if (p->pos - start > ADDRESS_MAX_LOCAL)
				return parser_fail(p, ADDRESS_ERR_TOO_LONG,
				                   "local part longer than 256 bytes");
		}
	} else {
		bool sloppy = (p->flags & ADDRESS_PARSE_SLOPPY) != 0;
		size_t atom_len = 0;

		while (p->pos < p->len) {
			unsigned char c = u[p->pos];
			if (c == '.') {
				if (atom_len == 0 && !sloppy)
					return parser_fail(p, ADDRESS_ERR_SYNTAX,
					                   p->pos == start
					                           ? "local part starts with '.'"
					                           : "'..' in local part");
				atom_len = 0;
				str_append_c(out, '.');
				p->pos++;
			} else if (is_atext(c)) {
				atom_len++;
				str_append_c(out, (char)c);
				p->pos++;
			} else if (c >= 0x80) {
				size_t n = parser_utf8(p, "invalid UTF-8 in local part");
				if (n == 0)
					return false;
				atom_len++;
				str_append_n(out, p->s + p->pos, n);
				p->pos += n;
			} else {
				break;
			}
			if (p->pos - start > ADDRESS_MAX_LOCAL)
				return parser_fail(p, ADDRESS_ERR_TOO_LONG,
				                   "local part longer than 256 bytes");
		}
		if (p->pos == start)
			return parser_fail(p, ADDRESS_ERR_SYNTAX, "expected a local part");
		if (atom_len == 0 && !sloppy)
			return parser_fail(p, ADDRESS_ERR_SYNTAX, "local part ends with '.'");
	}
	if (p->pos - start > ADDRESS_MAX_LOCAL)
		return parser_fail(p, ADDRESS_ERR_TOO_LONG, "local part longer than 256 bytes");
	if (p->pos < p->len && p->s[p->pos] == '@')
		return true;
	if (bracketed ? p->pos < p->len && p->s[p->pos] == '>' : at_bare_end(p))
		return true;
	return parser_fail(p, ADDRESS_ERR_SYNTAX,
	                   *quoted_r ? "unexpected character after quoted string"
	                             : "invalid character in local part");
}

/* Domain / address-literal after '@'. Sets addr->domain (lower-case). */
static bool parse_domain(struct parser *p, bool literal_ok, struct mail_address *addr)
{
	size_t start = p->pos;

	if (p->pos < p->len && p->s[p->pos] == '[') {
		size_t end = p->pos + 1;

		if (!literal_ok)
			return parser_fail(p, ADDRESS_ERR_SYNTAX,
			                   "address literal in source route");
		/* dcontent = %d33-90 / %d94-126 */
		while (end < p->len && (unsigned char)p->s[end] >= 33 &&
		       (unsigned char)p->s[end] <= 126 && p->s[end] != '[' && p->s[end] != ']' &&
		       p->s[end] != '\\')
			end++;
		if (end >= p->len || p->s[end] != ']') {
			p->pos = end;
			return parser_fail(p, ADDRESS_ERR_SYNTAX,
			                   "bad character in address literal");
		}
		if (!literal_valid(p->s + start + 1, end - start - 1)) {
			p->pos = start + 1;
			return parser_fail(p, ADDRESS_ERR_SYNTAX,
			                   "expected an IPv4 or IPv6: address literal");
		}
		p->pos = end + 1;
		if (addr != NULL) {
			addr->domain = xstrndup(p->s + start, p->pos - start);
			lower_ascii(addr->domain);
			addr->literal = true;
		}
		return true;
	}

	bool dot = false, non_ascii = false, too_long = false;
	const char *detail = NULL;
	size_t pos = p->pos;

	if (scan_domain(p->s, p->len, &pos, &dot, &non_ascii, &too_long, &detail) < 0) {
		p->pos = pos;
		return parser_fail(p, too_long ? ADDRESS_ERR_TOO_LONG : ADDRESS_ERR_SYNTAX, detail);
	}
	if (non_ascii && !p->utf8_seen) {
		p->utf8_seen = true;
		p->utf8_at = start;
	}
	p->pos = pos;
	if (addr != NULL) {
		addr->domain = xstrndup(p->s + start, pos - start - (dot ? 1 : 0));
		lower_ascii(addr->domain);
		addr->trailing_dot = dot;
	}
	return true;
}

/* A-d-l ":" : "@a.example,@b.example:" (RFC 5321: MUST be accepted,
 * SHOULD be ignored). Records the route as written. */
static bool parse_route(struct parser *p, struct mail_address *addr)
{
	size_t start = p->pos;

	for (;;) {
		p->pos++; /* the '@' */
		if (!parse_domain(p, false, NULL))
			return false;
		if (p->pos < p->len && p->s[p->pos] == ',') {
			p->pos++;
			if (p->pos >= p->len || p->s[p->pos] != '@')
				return parser_fail(p, ADDRESS_ERR_SYNTAX,
				                   "expected '@' after ',' in source route");
			continue;
		}
		if (p->pos < p->len && p->s[p->pos] == ':')
			break;
		return parser_fail(p, ADDRESS_ERR_SYNTAX, "expected ',' or ':' in source route");
	}
	addr->route = xstrndup(p->s + start, p->pos - start);
	addr->source_route = true;
	p->pos++; /* the ':' */
	return true;
}

/* esmtp-param = esmtp-keyword ["=" esmtp-value], one token at p->pos. */
static bool parse_param(struct parser *p, struct mail_path *path)
{
	const unsigned char *u = (const unsigned char *)p->s;
	size_t start = p->pos, key_end, end = p->pos;
	struct esmtp_param *param;

	while (end < p->len && !is_space(u[end]))
		end++;
	if (end - start > ADDRESS_MAX_PARAM)
		return parser_fail(p, ADDRESS_ERR_PARAM, "parameter longer than 1000 bytes");
	if (path->nparams >= ADDRESS_MAX_PARAMS)
		return parser_fail(p, ADDRESS_ERR_PARAM, "more than 16 parameters");
	if (u[p->pos] == '<')
		return parser_fail(p, ADDRESS_ERR_SYNTAX, "text before '<' (an RFC 822 phrase?)");
	if (!is_alnum(u[p->pos]))
		return parser_fail(p, ADDRESS_ERR_PARAM,
		                   "parameter keyword must start with a letter "
		                   "or digit");
	while (p->pos < end && (is_alnum(u[p->pos]) || u[p->pos] == '-'))
		p->pos++;
	key_end = p->pos;
	if (p->pos < end) {
		if (u[p->pos] != '=')
			return parser_fail(p, ADDRESS_ERR_PARAM,
			                   "bad character in parameter keyword");
		p->pos++;
		if (p->pos == end)
			return parser_fail(p, ADDRESS_ERR_PARAM, "empty parameter value");
		while (p->pos < end) {
			unsigned char c = u[p->pos];
			if (c >= 33 && c <= 126 && c != '=') {
				p->pos++;
			} else if (c >= 0x80 && (p->flags & ADDRESS_PARSE_SMTPUTF8) != 0) {
				size_t n = utf8_char(u + p->pos, end - p->pos);
				if (n == 0)
					return parser_fail(p, ADDRESS_ERR_PARAM,
					                   "invalid UTF-8 in parameter value");
				p->pos += n;
			} else {
				return parser_fail(p, ADDRESS_ERR_PARAM,
				                   "bad character in parameter value");
			}
		}
	}
	path->params = xreallocarray(path->params, path->nparams + 1, sizeof(*path->params));
	param = &path->params[path->nparams++];
	param->key = xstrndup(p->s + start, key_end - start);
	for (char *k = param->key; *k != '\0'; k++)
		if (*k >= 'a' && *k <= 'z')
			*k = (char)(*k - 'a' + 'A');
	param->value = key_end < end ? xstrndup(p->s + key_end + 1, end - key_end - 1) : NULL;
	return true;
}

static void mail_address_clear(struct mail_address *addr)
{
	free(addr->local);
	free(addr->domain);
	free(addr->route);
	memset(addr, 0, sizeof(*addr));
}

static bool parse_all(struct parser *p, struct mail_path *path)
{
	struct mail_address *addr = &path->addr;
	bool bracketed, sloppy = (p->flags & ADDRESS_PARSE_SLOPPY) != 0;
	size_t path_start;
	str_t local;

	while (p->pos < p->len && is_space((unsigned char)p->s[p->pos]))
		p->pos++;
	if (p->pos >= p->len)
		return parser_fail(p, ADDRESS_ERR_MISSING, "no address");
	path_start = p->pos;
	bracketed = p->s[p->pos] == '<';
	if (!bracketed && !sloppy)
		return parser_fail(p, ADDRESS_ERR_SYNTAX, "expected '<'");
	addr->bracketed = bracketed;
	if (bracketed)
		p->pos++;

	if (bracketed && p->pos < p->len && p->s[p->pos] == '>') {
		if (p->role == ADDRESS_RECIPIENT)
			return parser_fail(p, ADDRESS_ERR_SYNTAX, "null recipient <>");
		addr->null = true;
		addr->local = xstrdup("");
		p->pos++;
	} else {
		if (p->pos < p->len && p->s[p->pos] == '@' && !parse_route(p, addr))
			return false;
		str_init(&local);
		if (!parse_local(p, bracketed, &local, &addr->quoted)) {
			str_free(&local);
			return false;
		}
		addr->local = str_steal(&local);
		str_free(&local);
		if (p->pos < p->len && p->s[p->pos] == '@') {
			p->pos++;
			/* user@ is Postfix's "null domain": kept as "" so that
			 * the resolver applies resolve_null_domain; by default
			 * it resolves as bad and smtpd refuses it. */
			if (bracketed ? p->pos < p->len && p->s[p->pos] == '>' : at_bare_end(p))
				addr->domain = xstrdup("");
			else if (!parse_domain(p, true, addr))
				return false;
		}
		if (bracketed) {
			if (p->pos >= p->len || p->s[p->pos] != '>')
				return parser_fail(p, ADDRESS_ERR_SYNTAX,
				                   "expected '>' after the address");
			p->pos++;
		} else if (!at_bare_end(p)) {
			return parser_fail(p, ADDRESS_ERR_SYNTAX,
			                   "unexpected character after the address");
		}
		/* <""> has the internal form of <>: Postfix treats it as the
		 * null address, so do we. */
		if (addr->local[0] == '\0' && addr->domain == NULL) {
			if (p->role == ADDRESS_RECIPIENT)
				return parser_fail(p, ADDRESS_ERR_SYNTAX,
				                   "empty recipient address");
			addr->null = true;
		}
	}
	if (p->pos - path_start > ADDRESS_MAX_PATH) {
		p->pos = path_start;
		return parser_fail(p, ADDRESS_ERR_TOO_LONG, "path longer than 512 bytes");
	}
	addr->utf8 = p->utf8_seen;

	/* Parameters: separated by white space from the path and each other. */
	if (p->pos < p->len && !is_space((unsigned char)p->s[p->pos]))
		return parser_fail(p, ADDRESS_ERR_SYNTAX, "expected a space after '>'");
	for (;;) {
		while (p->pos < p->len && is_space((unsigned char)p->s[p->pos]))
			p->pos++;
		if (p->pos >= p->len)
			break;
		if (!parse_param(p, path))
			return false;
	}

	/* UTF-8 in the address needs SMTPUTF8 (RFC 6531 3.4): in effect for
	 * the transaction, and for a sender declared on this very command. */
	if (p->utf8_seen &&
	    ((p->flags & ADDRESS_PARSE_SMTPUTF8) == 0 ||
	     (p->role == ADDRESS_SENDER && mail_path_param(path, "SMTPUTF8") == NULL))) {
		p->pos = p->utf8_at;
		return parser_fail(p, ADDRESS_ERR_UTF8, "non-ASCII address without SMTPUTF8");
	}
	return true;
}

int address_parse_path(const char *arg, size_t len, enum address_role role, unsigned flags,
                       struct mail_path **path_r, struct address_error *error_r)
{
	struct parser p = {.s = arg, .len = len, .role = role, .flags = flags, .err = error_r};
	struct mail_path *path = xcalloc(1, sizeof(*path));

	memset(error_r, 0, sizeof(*error_r));
	*path_r = NULL;
	if (!parse_all(&p, path)) {
		mail_path_destroy(&path);
		return -1;
	}
	*path_r = path;
	return 0;
}

void mail_path_destroy(struct mail_path **pathp)
{
	struct mail_path *path = *pathp;

	if (path == NULL)
		return;
	mail_address_clear(&path->addr);
	for (size_t i = 0; i < path->nparams; i++) {
		free(path->params[i].key);
		free(path->params[i].value);
	}
	free(path->params);
	free(path);
	*pathp = NULL;
}

const struct esmtp_param *mail_path_param(const struct mail_path *path, const char *key)
{
	for (size_t i = 0; i < path->nparams; i++)
		if (ascii_casecmp_eq(path->params[i].key, key))
			return &path->params[i];
	return NULL;
}

void address_error_reply(const struct address_error *error, str_t *out)
{
	str_appendf(out, "%d %s %s", error->code, error->enhanced, error->text);
}

/* ---- Internal form, copies, quoting ---- */

struct mail_address *address_from_internal(const char *internal)
{
	struct mail_address *addr = xcalloc(1, sizeof(*addr));
	const char *at = strrchr(internal, '@');
	const unsigned char *u;

	if (*internal == '\0') {
		addr->null = true;
		addr->local = xstrdup("");
		return addr;
	}
	if (at == NULL) {
		addr->local = xstrdup(internal);
	} else {
		size_t dlen = strlen(at + 1);

		addr->local = xstrndup(internal, (size_t)(at - internal));
		if (dlen > 1 && at[dlen] == '.' && at[dlen - 1] != '.') {
			dlen--;
			addr->trailing_dot = true;
		}
		addr->domain = xstrndup(at + 1, dlen);
		lower_ascii(addr->domain);
		addr->literal = addr->domain[0] == '[';
	}
	addr->quoted = address_local_needs_quoting(addr->local);
	for (u = (const unsigned char *)internal; *u != '\0'; u++)
		if (*u >= 0x80)
			addr->utf8 = true;
	addr->bracketed = true;
	return addr;
}

struct mail_address *mail_address_copy(const struct mail_address *addr)
{
	struct mail_address *copy = xmalloc(sizeof(*copy));

	*copy = *addr;
	copy->local = xstrdup(addr->local != NULL ? addr->local : "");
	copy->domain = addr->domain != NULL ? xstrdup(addr->domain) : NULL;
	copy->route = addr->route != NULL ? xstrdup(addr->route) : NULL;
	return copy;
}

void mail_address_destroy(struct mail_address **addrp)
{
	if (*addrp == NULL)
		return;
	mail_address_clear(*addrp);
	free(*addrp);
	*addrp = NULL;
}

bool address_local_needs_quoting(const char *local)
{
	const unsigned char *u = (const unsigned char *)local;
	bool atom_empty = true;

	if (*u == '\0')
		return true;
	for (; *u != '\0'; u++) {
		if (*u == '.') {
			if (atom_empty)
				return true;
			atom_empty = true;
		} else if (is_atext(*u) || *u >= 0x80) {
			atom_empty = false;
		} else {
			return true;
		}
	}
	return atom_empty;
}

static bool has_control(const char *s)
{
	for (const unsigned char *u = (const unsigned char *)s; *u != '\0'; u++)
		if (*u < 32 || *u == 127)
			return true;
	return false;
}

int address_external(const struct mail_address *addr, str_t *out)
{
	const char *local = addr->local != NULL ? addr->local : "";

	if (addr->null || (local[0] == '\0' && addr->domain == NULL))
		return 0;
	if (has_control(local) || (addr->domain != NULL && has_control(addr->domain)))
		return -1;
	if (address_local_needs_quoting(local)) {
		str_append_c(out, '"');
		for (const char *c = local; *c != '\0'; c++) {
			if (*c == '"' || *c == '\\')
				str_append_c(out, '\\');
			str_append_c(out, *c);
		}
		str_append_c(out, '"');
	} else {
		str_append(out, local);
	}
	if (addr->domain != NULL) {
		str_append_c(out, '@');
		str_append(out, addr->domain);
	}
	return 0;
}

void address_internal_string(const struct mail_address *addr, str_t *out)
{
	if (addr->null)
		return;
	str_append(out, addr->local != NULL ? addr->local : "");
	if (addr->domain != NULL) {
		str_append_c(out, '@');
		str_append(out, addr->domain);
	}
}

/* ---- DSN xtext and ORCPT ---- */

int xtext_decode(const char *in, size_t len, str_t *out, const char **error_r)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == '+') {
			if (len - i < 3) {
				*error_r = "incomplete +HH escape in xtext";
				return -1;
			}
			if (!is_hex((unsigned char)in[i + 1]) ||
			    !is_hex((unsigned char)in[i + 2])) {
				*error_r = "bad +HH escape in xtext";
				return -1;
			}
			c = (unsigned char)(hex_value((unsigned char)in[i + 1]) * 16 +
			                    hex_value((unsigned char)in[i + 2]));
			if (c == 0) {
				*error_r = "xtext escape +00 (NUL)";
				return -1;
			}
			i += 2;
		} else if (c < 33 || c > 126 || c == '=') {
			*error_r = "character not allowed in xtext";
			return -1;
		}
		str_append_c(out, (char)c);
	}
	return 0;
}

void xtext_encode(const char *in, size_t len, str_t *out)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c >= 33 && c <= 126 && c != '+' && c != '=')
			str_append_c(out, (char)c);
		else
			str_appendf(out, "+%02X", c);
	}
}

/* Append code point cp as UTF-8. */
static void append_utf8(str_t *out, unsigned long cp)
{
	if (cp < 0x80) {
		str_append_c(out, (char)cp);
	} else if (cp < 0x800) {
		str_append_c(out, (char)(0xc0 | (cp >> 6)));
		str_append_c(out, (char)(0x80 | (cp & 0x3f)));
	} else if (cp < 0x10000) {
		str_append_c(out, (char)(0xe0 | (cp >> 12)));
		str_append_c(out, (char)(0x80 | ((cp >> 6) & 0x3f)));
		str_append_c(out, (char)(0x80 | (cp & 0x3f)));
	} else {
		str_append_c(out, (char)(0xf0 | (cp >> 18)));
		str_append_c(out, (char)(0x80 | ((cp >> 12) & 0x3f)));
		str_append_c(out, (char)(0x80 | ((cp >> 6) & 0x3f)));
		str_append_c(out, (char)(0x80 | (cp & 0x3f)));
	}
}

/* RFC 6533 utf-8-addr-xtext / utf-8-addr-unitext: QCHAR (33..126 but '+',
 * '=' and '\'), "\x{HEX}" (1..6 upper- or lower-case hex digits), and raw
 * UTF-8 when unitext is allowed. */
static int utf8_addr_decode(const char *in, size_t len, bool unitext, str_t *out,
                            const char **error_r)
{
	const unsigned char *u = (const unsigned char *)in;

	for (size_t i = 0; i < len;) {
		unsigned char c = u[i];

		if (c == '\\') {
			unsigned long cp = 0;
			size_t digits = 0;

			if (i + 3 >= len || u[i + 1] != 'x' || u[i + 2] != '{') {
				*error_r = "bad \\x{...} escape in utf-8 address";
				return -1;
			}
			for (i += 3; i < len && is_hex(u[i]) && digits < 6; i++, digits++)
				cp = cp * 16 + hex_value(u[i]);
			if (digits == 0 || i >= len || u[i] != '}' || cp == 0 || cp > 0x10ffff ||
			    (cp >= 0xd800 && cp <= 0xdfff)) {
				*error_r = "bad \\x{...} escape in utf-8 address";
				return -1;
			}
			i++;
			append_utf8(out, cp);
		} else if (c >= 33 && c <= 126 && c != '+' && c != '=') {
			str_append_c(out, (char)c);
			i++;
		} else if (c >= 0x80 && unitext) {
			size_t n = utf8_char(u + i, len - i);
			if (n == 0) {
				*error_r = "invalid UTF-8 in utf-8 address";
				return -1;
			}
			str_append_n(out, in + i, n);
			i += n;
		} else {
			*error_r = "character not allowed in utf-8 address";
			return -1;
		}
	}
	return 0;
}

int address_orcpt_parse(const char *value, bool smtputf8, str_t *type_out, str_t *addr_out,
                        const char **error_r)
{
	const char *semi = strchr(value, ';');
	size_t tlen;
	bool utf8_type;

	str_reset(type_out);
	str_reset(addr_out);
	if (semi == NULL) {
		*error_r = "ORCPT without ';' between address type and address";
		return -1;
	}
	tlen = (size_t)(semi - value);
	if (tlen == 0) {
		*error_r = "ORCPT without address type";
		return -1;
	}
	for (size_t i = 0; i < tlen; i++) {
		if (!is_atext((unsigned char)value[i])) {
			*error_r = "bad character in ORCPT address type";
			return -1;
		}
	}
	str_append_n(type_out, value, tlen);
	str_lower(type_out);
	utf8_type = strcmp(str_c(type_out), "utf-8") == 0;
	if ((utf8_type ? utf8_addr_decode(semi + 1, strlen(semi + 1), smtputf8, addr_out, error_r)
	               : xtext_decode(semi + 1, strlen(semi + 1), addr_out, error_r)) < 0)
		goto fail;
	if (addr_out->len == 0) {
		*error_r = "ORCPT with an empty address";
		goto fail;
	}
	if (addr_out->len > 500) {
		*error_r = "ORCPT address longer than 500 bytes";
		goto fail;
	}
	if (has_control(str_c(addr_out)) || strlen(str_c(addr_out)) != addr_out->len) {
		*error_r = "control character in ORCPT address";
		goto fail;
	}
	for (size_t i = 0; i < addr_out->len; i++) {
		if ((unsigned char)addr_out->buf[i] >= 0x80 && !utf8_type) {
			*error_r = "non-ASCII ORCPT address of a type other than utf-8";
			goto fail;
		}
	}
	if (!utf8_valid(str_c(addr_out))) {
		*error_r = "invalid UTF-8 in ORCPT address";
		goto fail;
	}
	return 0;
fail:
	str_reset(type_out);
	str_reset(addr_out);
	return -1;
}

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
		if (len < 2 || domain[len - 1] != ']' || !literal_valid(domain + 1, len - 2))
			bad = true;
	} else if (!domain_name_valid(domain, &numeric)) {
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
