/* xtext.c - DSN xtext (RFC 3461) and the ORCPT parameter (RFC 3461 4.2,
 * RFC 6533 utf-8-addr): decoding what a client sent and encoding what
 * postern writes (see xtext.h).
 *
 * Used by smtpd (ENVID, ORCPT), the queue file writer and the bounce
 * writer. SECURITY: reads client text over an explicit length; a decoded
 * NUL or control character is an error, never output.
 */
#include "address/xtext.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "address/address_syntax.h"

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
			size_t n = addr_utf8_char(u + i, len - i);
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
	if (!addr_utf8_valid(str_c(addr_out))) {
		*error_r = "invalid UTF-8 in ORCPT address";
		goto fail;
	}
	return 0;
fail:
	str_reset(type_out);
	str_reset(addr_out);
	return -1;
}
