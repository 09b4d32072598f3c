/* address_syntax.c - UTF-8, domain-name and address-literal syntax shared
 * by the address parser, the xtext/ORCPT decoder and the resolver (see
 * address_syntax.h). Pure functions over explicit lengths; no allocation
 * but a bounded copy for inet_pton.
 */
#include "address/address_syntax.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "address/address.h"
#include "base/mem.h"
#include "base/utf8.h"

/* See address_syntax.h: base/utf8.c's strict check without C1 controls. */
size_t addr_utf8_char(const unsigned char *s, size_t avail)
{
	return utf8_char_len(s, avail, false);
}

/* True when the NUL-terminated s is valid UTF-8 without C1 controls. */
bool addr_utf8_valid(const char *s)
{
	return utf8_valid(s, strlen(s), false);
}

/* ---- Domains and address literals ---- */

/* The inside of an address literal (between the brackets): "192.0.2.1" or
 * "IPv6:2001:db8::1" (tag case-insensitive). General-address-literals with
 * other tags are refused: none is registered, and Postfix refuses them too.
 * Checked with inet_pton on a bounded copy. */
bool addr_literal_valid(const char *content, size_t len)
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
int addr_scan_domain(const char *s, size_t len, size_t *pos, bool *trailing_dot_r,
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
				size_t n = addr_utf8_char(u + p, len - p);
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
bool addr_domain_name_valid(const char *d, bool *numeric_r)
{
	size_t len = strlen(d), pos = 0;
	bool dot, non_ascii = false, too_long;
	const char *detail;

	*numeric_r = false;
	if (len == 0)
		return false;
	if (addr_scan_domain(d, len, &pos, &dot, &non_ascii, &too_long, &detail) < 0 ||
	    pos != len || dot)
		return false;
	if (strspn(d, "0123456789.") == len) {
		*numeric_r = true;
		return false;
	}
	return true;
}
