/* parse.h - strict, bounded parsing of numbers, booleans and sizes.
 *
 * Used by the configuration layer and protocol parsers. Every function
 * rejects leading/trailing garbage, signs where none belong, and values
 * outside [min, max]; none of them reads past the terminating NUL.
 * Failure returns -1 and leaves *value_r untouched.
 */
#ifndef POSTERN_PARSE_H
#define POSTERN_PARSE_H

#include <stdbool.h>
#include <stdint.h>

/* Decimal digits only, within [min, max]. */
int parse_uint64(const char *s, uint64_t min, uint64_t max, uint64_t *value_r);
/* Optional '-' then decimal digits, within [min, max]. */
int parse_int64(const char *s, int64_t min, int64_t max, int64_t *value_r);
/* "yes" or "no", case-insensitive (Postfix accepts only these). */
int parse_bool(const char *s, bool *value_r);
/* A time: digits with an optional unit s, m, h, d or w; without a unit,
 * default_unit applies. Result in seconds, at most max_seconds. */
int parse_time(const char *s, char default_unit, uint64_t max_seconds, uint64_t *seconds_r);
/* The value of a hexadecimal digit (either case), or -1. */
int parse_hex_digit(char c);
/* Case-insensitive ASCII comparison helpers that never use the locale. */
bool ascii_casecmp_eq(const char *a, const char *b);

#endif
