/* xtext.h - DSN xtext and the ORCPT parameter (RFC 3461, RFC 6533). */
#ifndef POSTERN_XTEXT_H
#define POSTERN_XTEXT_H

#include <stdbool.h>
#include <stddef.h>

#include "base/str.h"

/* DSN xtext (RFC 3461 4): decode "+HH" escapes (hex digits in either case,
 * as Postfix accepts them) of len bytes at in, appending to out. Returns 0,
 * or -1 with *error_r (static) for a character outside xtext (33..126 but
 * '+' and '='), a bad escape, or an escape that decodes to NUL. */
int xtext_decode(const char *in, size_t len, str_t *out, const char **error_r);
/* Encode len bytes as xtext, appending to out: bytes 33..126 other than
 * '+' and '=' as they are, everything else as "+HH" (upper-case hex). */
void xtext_encode(const char *in, size_t len, str_t *out);
/* Check and decode an ORCPT value "addr-type;xtext" (RFC 3461 4.2). The
 * addr-type is an atom, returned lower-cased in *type_out ("rfc822"). For
 * "utf-8" (RFC 6533) the address part is utf-8-addr-xtext or, with
 * smtputf8, utf-8-addr-unitext: "\x{HEX}" escapes are decoded and raw UTF-8
 * is allowed; for any other type it is xtext. The decoded address must be
 * non-empty, at most 500 octets, printable ASCII or (for utf-8) valid UTF-8
 * without control characters. Both outputs are replaced, not appended.
 * Returns 0, or -1 with *error_r (static); smtpd then replies
 * "501 5.5.4 Bad ORCPT parameter syntax". */
int address_orcpt_parse(const char *value, bool smtputf8, str_t *type_out, str_t *addr_out,
                        const char **error_r);

#endif
