/* mime_downgrade.h - 8-bit MIME content to 7-bit, for an SMTP server that
 * does not announce 8BITMIME (RFC 6152), as Postfix's smtp client does
 * unless disable_mime_output_conversion = yes.
 *
 * Used by the smtp client (server/smtp/smtp_xact.c). The message is a
 * whole header + body in memory with LF line ends (the queue file's
 * content). What is converted: each leaf MIME part whose
 * Content-Transfer-Encoding is 8bit or binary, or missing with 8-bit
 * bytes in its body, becomes quoted-printable (RFC 2045 6.7: =XX for
 * bytes >= 128, '=' and trailing white space; soft line breaks keep lines
 * within 76 characters) and its Content-Transfer-Encoding header says
 * so. multipart parts are walked through their boundaries,
 * message/rfc822 parts as messages, down to nesting_limit levels.
 * Headers are left as they are (8-bit header text is the sender's
 * business, as in Postfix). A message without MIME-Version is not MIME:
 * nothing is converted.
 *
 * Bounded: the output is at most 3x the input plus the added headers;
 * malformed MIME (a missing boundary, a bad Content-Type) is copied
 * unchanged from where it went wrong, never an error.
 */
#ifndef POSTERN_MIME_DOWNGRADE_H
#define POSTERN_MIME_DOWNGRADE_H

#include <stdbool.h>
#include <stddef.h>

#include "base/str.h"

/* True when the text holds a byte >= 128. */
bool mime_has_8bit(const char *text, size_t len);

/* Append to out the 7-bit form of the message in[0..len) (see above).
 * Returns true when something was converted (out then differs from the
 * input), false when out is a copy. */
bool mime_downgrade(const char *in, size_t len, unsigned nesting_limit, str_t *out);

#endif
