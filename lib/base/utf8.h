/* utf8.h - UTF-8 validation and the "printable" clean-up of client text.
 *
 * Used by smtpd (the command-line UTF-8 check, the HELO name and any
 * client string that reaches a header, a log line or a queue file) and by
 * lib/address (the address and ORCPT syntax). Byte based, never the
 * locale; every function reads exactly the bytes it is given.
 */
#ifndef POSTERN_UTF8_H
#define POSTERN_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Length (2..4) of the valid UTF-8 sequence of a non-ASCII character at
 * s, with avail bytes available, or 0 when it is not one. Strict: no
 * overlong forms, no surrogates, nothing above U+10FFFF; C1 controls
 * (U+0080..U+009F) only when allow_c1. */
size_t utf8_char_len(const unsigned char *s, size_t avail, bool allow_c1);
/* True when len bytes at s are valid UTF-8 (C1 controls only when
 * allow_c1: smtpd's command-line check allows them, as they are valid
 * characters, and printable_fix() removes them where text is stored). */
bool utf8_valid(const char *s, size_t len, bool allow_c1);

enum printable_flags {
	PRINTABLE_UTF8 = 1 << 0, /* keep valid non-ASCII UTF-8 characters */
	PRINTABLE_NO_SPACE = 1 << 1, /* replace space and tab as well */
};
/* Replace, in place, every byte of the NUL-terminated s that is not
 * printable with repl: ASCII controls (0..31, 127), bytes 128..255 unless
 * they form a valid UTF-8 character (flag PRINTABLE_UTF8; C1 controls are
 * replaced byte by byte), and with PRINTABLE_NO_SPACE spaces and tabs.
 * Postfix does the same to the HELO name ('?'). Returns s. */
char *printable_fix(char *s, unsigned flags, char repl);
/* True when none of the len bytes at s is an ASCII control (0..31, 127). */
bool text_has_no_control(const char *s, size_t len);

#endif
