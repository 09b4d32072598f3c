/* base64.c - strict RFC 4648 base64 encoding and decoding.
 *
 * Used by lib/sasl (Dovecot's resp= and CONT lines) and by smtpd's AUTH
 * command, on text that comes from the network. Decoding never reads
 * past len, never writes more than max bytes, and on any error leaves the
 * output as it was, so a caller never acts on half a message.
 */
#include "base/base64.h"

#include <stdint.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void base64_encode(const void *data, size_t len, str_t *out)
{
	const unsigned char *p = data;
	size_t i;

	str_reserve(out, BASE64_ENCODED_LEN(len));
	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

		str_append_c(out, alphabet[v >> 18 & 63]);
		str_append_c(out, alphabet[v >> 12 & 63]);
		str_append_c(out, alphabet[v >> 6 & 63]);
		str_append_c(out, alphabet[v & 63]);
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;

		str_append_c(out, alphabet[v >> 18 & 63]);
		str_append_c(out, alphabet[v >> 12 & 63]);
		str_append(out, "==");
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;

		str_append_c(out, alphabet[v >> 18 & 63]);
		str_append_c(out, alphabet[v >> 12 & 63]);
		str_append_c(out, alphabet[v >> 6 & 63]);
		str_append_c(out, '=');
	}
}

/* The value of one alphabet character, or -1. */
static int value_of(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int base64_decode(const char *text, size_t len, size_t max, str_t *out, const char **error_r)
{
	size_t start = out->len, pad = 0;

	if (len % 4 != 0) {
		*error_r = "bad base64 length";
		return -1;
	}
	if (len > 0 && text[len - 1] == '=')
		pad = (len > 1 && text[len - 2] == '=') ? 2 : 1;
	if (BASE64_DECODED_MAX(len) - pad > max) {
		*error_r = "base64 data too long";
		return -1;
	}
	str_reserve(out, BASE64_DECODED_MAX(len));
	for (size_t i = 0; i < len; i += 4) {
		/* '=' counts only in the last two places of the last group. */
		size_t data = (i + 4 == len) ? 4 - pad : 4;
		uint32_t v = 0;

		for (size_t j = 0; j < 4; j++) {
			int d = j < data ? value_of((unsigned char)text[i + j]) : 0;

			if (d < 0) {
				*error_r = "bad base64 character";
				str_truncate(out, start);
				return -1;
			}
			v = v << 6 | (uint32_t)d;
		}
		/* Why refuse nonzero spare bits: they would give one byte string
		 * several encodings, which RFC 4648 section 3.5 lets a decoder
		 * refuse, and nothing legitimate sends. */
		if ((data == 3 && (v & 0xff) != 0) || (data == 2 && (v & 0xffff) != 0)) {
			*error_r = "bad base64 padding";
			str_truncate(out, start);
			return -1;
		}
		str_append_c(out, (char)(v >> 16));
		if (data > 2)
			str_append_c(out, (char)(v >> 8 & 0xff));
		if (data > 3)
			str_append_c(out, (char)(v & 0xff));
	}
	return 0;
}
