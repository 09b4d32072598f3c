/* parse.c - strict bounded parsers for numbers, booleans and times
 * (see parse.h). Used by config.c and protocol code.
 */
#include "base/parse.h"

#include <stddef.h>
#include <stdint.h>

int parse_uint64(const char *s, uint64_t min, uint64_t max, uint64_t *value_r)
{
	uint64_t v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		unsigned d;

		if (*s < '0' || *s > '9')
			return -1;
		d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (v < min || v > max)
		return -1;
	*value_r = v;
	return 0;
}

int parse_int64(const char *s, int64_t min, int64_t max, int64_t *value_r)
{
	uint64_t mag;
	int64_t v;

	if (*s == '-') {
		if (parse_uint64(s + 1, 0, (uint64_t)INT64_MAX + 1, &mag) < 0)
			return -1;
		v = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
	} else {
		if (parse_uint64(s, 0, INT64_MAX, &mag) < 0)
			return -1;
		v = (int64_t)mag;
	}
	if (v < min || v > max)
		return -1;
	*value_r = v;
	return 0;
}

static char ascii_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

bool ascii_casecmp_eq(const char *a, const char *b)
{
	for (; *a != '\0' && *b != '\0'; a++, b++)
		if (ascii_lower(*a) != ascii_lower(*b))
			return false;
	return *a == *b;
}

int parse_bool(const char *s, bool *value_r)
{
	if (ascii_casecmp_eq(s, "yes")) {
		*value_r = true;
		return 0;
	}
	if (ascii_casecmp_eq(s, "no")) {
		*value_r = false;
		return 0;
	}
	return -1;
}

static uint64_t unit_seconds(char unit)
{
	switch (unit) {
	case 's':
		return 1;
	case 'm':
		return 60;
	case 'h':
		return 3600;
	case 'd':
		return 86400;
	case 'w':
		return 604800;
	default:
		return 0;
	}
}

int parse_time(const char *s, char default_unit, uint64_t max_seconds, uint64_t *seconds_r)
{
	uint64_t v = 0, mult;
	size_t i = 0;

	if (s[0] < '0' || s[0] > '9')
		return -1;
	for (; s[i] >= '0' && s[i] <= '9'; i++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (s[i] == '\0') {
		mult = unit_seconds(default_unit);
	} else {
		if (s[i + 1] != '\0')
			return -1;
		mult = unit_seconds(ascii_lower(s[i]));
	}
	if (mult == 0 || (v != 0 && v > UINT64_MAX / mult))
		return -1;
	v *= mult;
	if (v > max_seconds)
		return -1;
	*seconds_r = v;
	return 0;
}

int parse_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}
