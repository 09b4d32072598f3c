/* str.c - the growable string type (see str.h).
 *
 * Used everywhere a line, value or message fragment is built or read.
 * Capacity doubles on growth; the terminator is always kept in place so
 * str_c() is safe to hand to C string functions.
 */
#include "base/str.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"

#define STR_MIN_CAP 32

void str_init(str_t *s)
{
	s->cap = STR_MIN_CAP;
	s->buf = xmalloc(s->cap);
	s->buf[0] = '\0';
	s->len = 0;
}

void str_free(str_t *s)
{
	free(s->buf);
	s->buf = NULL;
	s->len = s->cap = 0;
}

str_t *str_new(void)
{
	str_t *s = xmalloc(sizeof(*s));

	str_init(s);
	return s;
}

void str_destroy(str_t **sp)
{
	if (*sp == NULL)
		return;
	str_free(*sp);
	free(*sp);
	*sp = NULL;
}

char *str_steal(str_t *s)
{
	char *p = s->buf;

	str_init(s);
	return p;
}

void str_reserve(str_t *s, size_t extra)
{
	size_t need;

	if (extra > SIZE_MAX - s->len - 1)
		log_panic("string length overflow (%zu + %zu)", s->len, extra);
	need = s->len + extra + 1;
	if (need <= s->cap)
		return;
	while (s->cap < need)
		s->cap = s->cap > SIZE_MAX / 2 ? need : s->cap * 2;
	s->buf = xrealloc(s->buf, s->cap);
}

void str_reset(str_t *s)
{
	s->len = 0;
	s->buf[0] = '\0';
}

void str_truncate(str_t *s, size_t len)
{
	if (len < s->len) {
		s->len = len;
		s->buf[len] = '\0';
	}
}

void str_append_n(str_t *s, const void *data, size_t len)
{
	if (len == 0)
		return;
	str_reserve(s, len);
	memcpy(s->buf + s->len, data, len);
	s->len += len;
	s->buf[s->len] = '\0';
}

void str_append(str_t *s, const char *text)
{
	str_append_n(s, text, strlen(text));
}

void str_append_c(str_t *s, char c)
{
	str_reserve(s, 1);
	s->buf[s->len++] = c;
	s->buf[s->len] = '\0';
}

void str_vappendf(str_t *s, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(s->buf + s->len, s->cap - s->len, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		log_panic("vsnprintf failed for format \"%s\"", fmt);
	if ((size_t)n >= s->cap - s->len) {
		str_reserve(s, (size_t)n);
		n = vsnprintf(s->buf + s->len, s->cap - s->len, fmt, ap);
		if (n < 0)
			log_panic("vsnprintf failed for format \"%s\"", fmt);
	}
	s->len += (size_t)n;
}

void str_appendf(str_t *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	str_vappendf(s, fmt, ap);
	va_end(ap);
}

void str_set(str_t *s, const char *text)
{
	str_reset(s);
	str_append(s, text);
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

void str_trim(str_t *s)
{
	size_t start = 0;

	while (s->len > 0 && is_space(s->buf[s->len - 1]))
		s->len--;
	while (start < s->len && is_space(s->buf[start]))
		start++;
	if (start > 0)
		memmove(s->buf, s->buf + start, s->len - start);
	s->len -= start;
	s->buf[s->len] = '\0';
}

void str_lower(str_t *s)
{
	for (size_t i = 0; i < s->len; i++)
		if (s->buf[i] >= 'A' && s->buf[i] <= 'Z')
			s->buf[i] = (char)(s->buf[i] - 'A' + 'a');
}

bool str_is_blank(const str_t *s)
{
	for (size_t i = 0; i < s->len; i++)
		if (!is_space(s->buf[i]))
			return false;
	return true;
}
