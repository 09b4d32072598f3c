/* base64.h - RFC 4648 base64 (the standard alphabet, with padding), as
 * SMTP AUTH (RFC 4954) and Dovecot's auth protocol carry SASL messages.
 *
 * Decoding is strict: only the alphabet, '=' padding only at the end and
 * only as much as the length needs, a length that is a multiple of 4, no
 * white space, and the unused bits of the last character zero (so that
 * one byte string has exactly one encoding). Used by lib/sasl and by
 * smtpd's AUTH command.
 */
#ifndef POSTERN_BASE64_H
#define POSTERN_BASE64_H

#include <stddef.h>

#include "base/str.h"

/* Encoded length of len bytes (without a terminator). */
#define BASE64_ENCODED_LEN(len) ((((len) + 2) / 3) * 4)
/* Most bytes that an encoded text of len characters decodes to. */
#define BASE64_DECODED_MAX(len) (((len) / 4) * 3)

/* Append the encoding of len bytes of data to out. */
void base64_encode(const void *data, size_t len, str_t *out);

/* Decode len characters of text (need not be NUL-terminated; "" decodes
 * to nothing) and append the bytes to out. At most max bytes are
 * decoded: a longer result is an error. Returns 0, or -1 with *error_r
 * set to a static message ("bad base64 character", ...) and out
 * unchanged. */
int base64_decode(const char *text, size_t len, size_t max, str_t *out, const char **error_r);

#endif
