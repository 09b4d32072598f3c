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

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "address/address_syntax.h"
#include "base/mem.h"
#include "base/parse.h"

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
	size_t n = addr_utf8_char((const unsigned char *)p->s + p->pos, p->len - p->pos);

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

/* The end of an unbracketed (sloppy) address: white space or the end,
 * or a run of '>' up to either ("user@example.com>": Postfix takes it). */
static bool at_bare_end(const struct parser *p)
{
	size_t i = p->pos;

	while (i < p->len && p->s[i] == '>')
		i++;
	return i >= p->len || is_space((unsigned char)p->s[i]);
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
		if (!addr_literal_valid(p->s + start + 1, end - start - 1)) {
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

	if (addr_scan_domain(p->s, p->len, &pos, &dot, &non_ascii, &too_long, &detail) < 0) {
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

/* One word after the path, at p->pos: an esmtp-param KEY[=VALUE]. Like
 * Postfix, any word of printable characters is taken (the key is what
 * precedes the first '=', upper-cased; the value may be empty): smtpd
 * answers a word it does not know "555 5.5.4 Unsupported option", as
 * Postfix does for "<c@d.example>" or "(comment)". A control character,
 * a byte above 126 without SMTPUTF8 or invalid UTF-8 is a syntax error. */
static bool parse_param(struct parser *p, struct mail_path *path)
{
	const unsigned char *u = (const unsigned char *)p->s;
	size_t start = p->pos, key_end = 0, end = p->pos;
	bool have_eq = false;
	struct esmtp_param *param;

	while (end < p->len && !is_space(u[end]))
		end++;
	if (end - start > ADDRESS_MAX_PARAM)
		return parser_fail(p, ADDRESS_ERR_PARAM, "parameter longer than 1000 bytes");
	if (path->nparams >= ADDRESS_MAX_PARAMS)
		return parser_fail(p, ADDRESS_ERR_PARAM, "more than 16 parameters");
	while (p->pos < end) {
		unsigned char c = u[p->pos];

		if (c >= 33 && c <= 126) {
			if (c == '=' && !have_eq) {
				have_eq = true;
				key_end = p->pos;
			}
			p->pos++;
		} else if (c >= 0x80 && (p->flags & ADDRESS_PARSE_SMTPUTF8) != 0) {
			size_t n = addr_utf8_char(u + p->pos, end - p->pos);
			if (n == 0)
				return parser_fail(p, ADDRESS_ERR_PARAM,
				                   "invalid UTF-8 in parameter value");
			p->pos += n;
		} else {
			return parser_fail(p, ADDRESS_ERR_PARAM, "bad character in parameter");
		}
	}
	if (!have_eq)
		key_end = end;
	path->params = xreallocarray(path->params, path->nparams + 1, sizeof(*path->params));
	param = &path->params[path->nparams++];
	param->key = xstrndup(p->s + start, key_end - start);
	for (char *k = param->key; *k != '\0'; k++)
		if (*k >= 'a' && *k <= 'z')
			*k = (char)(*k - 'a' + 'A');
	param->value = have_eq ? xstrndup(p->s + key_end + 1, end - key_end - 1) : NULL;
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
	size_t path_start, extra_brackets = 0;
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
	if (bracketed) {
		p->pos++;
		/* "< user@example.com >": Postfix takes white space inside
		 * the brackets, in either envelope mode. */
		while (p->pos < p->len && is_space((unsigned char)p->s[p->pos]))
			p->pos++;
		/* "<<user@example.com>>": Postfix's tokenizer drops the extra
		 * brackets; with strict_rfc821_envelopes = no so does postern. */
		while (sloppy && p->pos < p->len && p->s[p->pos] == '<') {
			extra_brackets++;
			p->pos++;
		}
	}

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
			while (p->pos < p->len && is_space((unsigned char)p->s[p->pos]))
				p->pos++;
			if (p->pos >= p->len || p->s[p->pos] != '>')
				return parser_fail(p, ADDRESS_ERR_SYNTAX,
				                   "expected '>' after the address");
			p->pos++;
			while (extra_brackets > 0 && p->pos < p->len && p->s[p->pos] == '>') {
				extra_brackets--;
				p->pos++;
			}
		} else if (!at_bare_end(p)) {
			return parser_fail(p, ADDRESS_ERR_SYNTAX,
			                   "unexpected character after the address");
		} else {
			while (p->pos < p->len && p->s[p->pos] == '>')
				p->pos++;
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
	     (p->role == ADDRESS_SENDER && mail_path_param(path, "SMTPUTF8") == NULL &&
	      (p->flags & ADDRESS_PARSE_UTF8_UNDECLARED) == 0))) {
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
