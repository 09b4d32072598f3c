/* utf8.c - UTF-8 validation and printable clean-up (see utf8.h).
 *
 * Pure functions over explicit lengths or NUL-terminated strings; no
 * allocation. Used by smtpd and lib/address.
 */
#include "base/utf8.h"

#include <string.h>

size_t utf8_char_len(const unsigned char *s, size_t avail, bool allow_c1)
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
	if (c == 0xc2 && !allow_c1)
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

bool utf8_valid(const char *s, size_t len, bool allow_c1)
{
	const unsigned char *p = (const unsigned char *)s;

	for (size_t i = 0; i < len;) {
		size_t n;

		if (p[i] < 0x80) {
			i++;
			continue;
		}
		n = utf8_char_len(p + i, len - i, allow_c1);
		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

char *printable_fix(char *s, unsigned flags, char repl)
{
	unsigned char *p = (unsigned char *)s;
	size_t len = strlen(s);

	for (size_t i = 0; i < len;) {
		unsigned char c = p[i];

		if (c >= 0x80) {
			size_t n = (flags & PRINTABLE_UTF8) != 0
			                   ? utf8_char_len(p + i, len - i, false)
			                   : 0;
			if (n > 0) {
				i += n;
				continue;
			}
			p[i++] = (unsigned char)repl;
			continue;
		}
		if (c < 32 || c == 127 || ((flags & PRINTABLE_NO_SPACE) != 0 && c == ' '))
			p[i] = (unsigned char)repl;
		i++;
	}
	return s;
}

bool text_has_no_control(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 32 || c == 127)
			return false;
	}
	return true;
}
