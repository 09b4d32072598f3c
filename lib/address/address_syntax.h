/* address_syntax.h - the character classes, UTF-8 and domain syntax that
 * the address parser (address.c), the xtext/ORCPT decoder (xtext.c) and the
 * resolver (address_resolve.c) share. Private to lib/address: nothing
 * outside this folder includes it.
 *
 * Everything is ASCII and byte based, never the locale.
 */
#ifndef POSTERN_ADDRESS_SYNTAX_H
#define POSTERN_ADDRESS_SYNTAX_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* ---- Character classes (ASCII, never the locale) ---- */

static inline bool is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static inline bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static inline bool is_alnum(unsigned char c)
{
	return is_alpha(c) || is_digit(c);
}

static inline bool is_hex(unsigned char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static inline unsigned hex_value(unsigned char c)
{
	if (is_digit(c))
		return (unsigned)(c - '0');
	if (c >= 'a' && c <= 'f')
		return (unsigned)(c - 'a' + 10);
	return (unsigned)(c - 'A' + 10);
}

static inline char to_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static inline void lower_ascii(char *s)
{
	for (; *s != '\0'; s++)
		*s = to_lower(*s);
}

/* RFC 5322 atext (ASCII part). */
static inline bool is_atext(unsigned char c)
{
	return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

static inline bool is_space(unsigned char c)
{
	return c == ' ' || c == '\t';
}
static inline bool has_control(const char *s)
{
	for (const unsigned char *u = (const unsigned char *)s; *u != '\0'; u++)
		if (*u < 32 || *u == 127)
			return true;
	return false;
}

/* Length of the valid UTF-8 sequence (2..4 bytes) of a non-ASCII character
 * at s, with avail bytes available, or 0 when it is not one. Strict: no
 * overlong forms, no surrogates, nothing above U+10FFFF, and no C1
 * controls (U+0080..U+009F), which have no business in an address. */
size_t addr_utf8_char(const unsigned char *s, size_t avail);
/* True when the NUL-terminated s is valid UTF-8 in the sense above. */
bool addr_utf8_valid(const char *s);
/* The inside of an address literal (between the brackets), "192.0.2.1" or
 * "IPv6:2001:db8::1": true when it is one postern accepts. */
bool addr_literal_valid(const char *content, size_t len);
/* Scan a domain name at s[*pos..len) (see address_syntax.c): 0 with *pos
 * after it, or -1 with *detail_r and *pos at the offending byte. */
int addr_scan_domain(const char *s, size_t len, size_t *pos, bool *trailing_dot_r,
                     bool *non_ascii_r, bool *too_long_r, const char **detail_r);
/* Is the whole string a valid domain name for delivery (and not numeric)? */
bool addr_domain_name_valid(const char *d, bool *numeric_r);

#endif
