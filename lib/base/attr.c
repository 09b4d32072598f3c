/* attr.c - the "name=value" IPC codec: typed writers, the parsed list and
 * the incremental stream parser (see attr.h).
 *
 * Used by every daemon that talks to another (qmgr, delivery agents,
 * smtpd's policy client, the CLI). A writer either appends one whole,
 * valid line or nothing. The parser holds at most one line of
 * max_line_length (+1 for a CR) bytes beyond the parsed pairs, so a peer
 * cannot make it buffer more than the limits allow; on a malformed request
 * it stops with a message naming the request line and keeps nothing
 * partial for the caller.
 */
#include "base/attr.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/parse.h"

/* How much of a bad name or value is quoted back in an error message. */
#define ATTR_QUOTE_MAX 64

/* ---- writing ------------------------------------------------------------ */

static bool is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == '-';
}

static bool name_valid_n(const char *name, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_name_char(name[i]))
			return false;
	return true;
}

bool attr_name_valid(const char *name)
{
	return name_valid_n(name, strlen(name));
}

static void put_line(str_t *out, const char *name, const char *value)
{
	str_append(out, name);
	str_append_c(out, '=');
	str_append(out, value);
	str_append_c(out, '\n');
}

int attr_put_str(str_t *out, const char *name, const char *value, const char **error_r)
{
	if (!attr_name_valid(name)) {
		*error_r = "bad attribute name: expected letters, digits, '_', '.' or '-'";
		return -1;
	}
	/* A value is a C string, so NUL cannot occur; CR and LF would end or
	 * corrupt the line, and there is no quoting in this format. */
	if (strpbrk(value, "\r\n") != NULL) {
		*error_r = "bad attribute value: it contains CR or LF";
		return -1;
	}
	put_line(out, name, value);
	return 0;
}

int attr_put_int(str_t *out, const char *name, int64_t value, const char **error_r)
{
	if (!attr_name_valid(name)) {
		*error_r = "bad attribute name: expected letters, digits, '_', '.' or '-'";
		return -1;
	}
	str_appendf(out, "%s=%" PRId64 "\n", name, value);
	return 0;
}

int attr_put_uint(str_t *out, const char *name, uint64_t value, const char **error_r)
{
	if (!attr_name_valid(name)) {
		*error_r = "bad attribute name: expected letters, digits, '_', '.' or '-'";
		return -1;
	}
	str_appendf(out, "%s=%" PRIu64 "\n", name, value);
	return 0;
}

void attr_end(str_t *out)
{
	str_append_c(out, '\n');
}

/* ---- the parsed list ------------------------------------------------------ */

struct attr_list *attr_list_new(void)
{
	struct attr_list *list = xcalloc(1, sizeof(*list));

	str_init(&list->error);
	return list;
}

void attr_list_destroy(struct attr_list **listp)
{
	struct attr_list *list = *listp;

	if (list == NULL)
		return;
	for (size_t i = 0; i < list->n; i++) {
		free(list->attrs[i].name);
		free(list->attrs[i].value);
	}
	free(list->attrs);
	str_free(&list->error);
	free(list);
	*listp = NULL;
}

static void list_add_owned(struct attr_list *list, char *name, char *value)
{
	if (list->n == list->cap) {
		list->cap = list->cap != 0 ? list->cap * 2 : 16;
		list->attrs = xreallocarray(list->attrs, list->cap, sizeof(*list->attrs));
	}
	list->attrs[list->n].name = name;
	list->attrs[list->n].value = value;
	list->n++;
}

void attr_list_add(struct attr_list *list, const char *name, const char *value)
{
	list_add_owned(list, xstrdup(name), xstrdup(value));
}

const char *attr_get_next(const struct attr_list *list, const char *name, size_t *iter)
{
	for (size_t i = *iter; i < list->n; i++) {
		if (strcmp(list->attrs[i].name, name) == 0) {
			*iter = i + 1;
			return list->attrs[i].value;
		}
	}
	*iter = list->n;
	return NULL;
}

const char *attr_get(const struct attr_list *list, const char *name)
{
	size_t iter = 0;

	return attr_get_next(list, name, &iter);
}

size_t attr_get_all(const struct attr_list *list, const char *name, strv_t *values_r)
{
	size_t iter = 0, count = 0;
	const char *value;

	while ((value = attr_get_next(list, name, &iter)) != NULL) {
		strv_add(values_r, value);
		count++;
	}
	return count;
}

/* The value of name for a typed getter, or NULL with the error set. */
static const char *get_for_number(struct attr_list *list, const char *name, const char **error_r)
{
	const char *value = attr_get(list, name);

	if (value == NULL) {
		str_reset(&list->error);
		str_appendf(&list->error, "attribute \"%s\" is missing", name);
		*error_r = str_c(&list->error);
	}
	return value;
}

static void set_number_error(struct attr_list *list, const char *name, const char *value,
                             const char *expected, const char **error_r)
{
	str_reset(&list->error);
	str_appendf(&list->error, "attribute \"%s\": bad value \"%.*s%s\": expected %s", name,
	            ATTR_QUOTE_MAX, value, strlen(value) > ATTR_QUOTE_MAX ? "..." : "", expected);
	*error_r = str_c(&list->error);
}

int attr_get_int(struct attr_list *list, const char *name, int64_t min, int64_t max,
                 int64_t *value_r, const char **error_r)
{
	const char *value = get_for_number(list, name, error_r);

	if (value == NULL)
		return -1;
	if (parse_int64(value, min, max, value_r) < 0) {
		char *expected = xasprintf("a whole number from %" PRId64 " to %" PRId64, min, max);

		set_number_error(list, name, value, expected, error_r);
		free(expected);
		return -1;
	}
	return 0;
}

int attr_get_uint(struct attr_list *list, const char *name, uint64_t min, uint64_t max,
                  uint64_t *value_r, const char **error_r)
{
	const char *value = get_for_number(list, name, error_r);

	if (value == NULL)
		return -1;
	if (parse_uint64(value, min, max, value_r) < 0) {
		char *expected = xasprintf("a whole number from %" PRIu64 " to %" PRIu64, min, max);

		set_number_error(list, name, value, expected, error_r);
		free(expected);
		return -1;
	}
	return 0;
}

/* ---- incremental reading ------------------------------------------------- */

enum parser_state {
	PARSER_READING,
	PARSER_DONE,
	PARSER_ERROR,
};

struct attr_parser {
	struct attr_limits limits;
	enum parser_state state;
	struct attr_list *list; /* pairs of the current request */
	str_t line; /* the current line, without its LF */
	size_t request_bytes; /* bytes of the current request so far */
	unsigned lineno; /* 1-based line number within the request */
	str_t error;
};

struct attr_parser *attr_parser_new(const struct attr_limits *limits)
{
	struct attr_parser *parser;

	if (limits->max_line_length == 0 || limits->max_attributes == 0 ||
	    limits->max_request_size == 0)
		log_panic("%s: every limit must be at least 1", __func__);
	parser = xcalloc(1, sizeof(*parser));
	parser->limits = *limits;
	str_init(&parser->line);
	str_init(&parser->error);
	attr_parser_reset(parser);
	return parser;
}

void attr_parser_destroy(struct attr_parser **parserp)
{
	struct attr_parser *parser = *parserp;

	if (parser == NULL)
		return;
	attr_list_destroy(&parser->list);
	str_free(&parser->line);
	str_free(&parser->error);
	free(parser);
	*parserp = NULL;
}

void attr_parser_reset(struct attr_parser *parser)
{
	attr_list_destroy(&parser->list);
	parser->list = attr_list_new();
	str_reset(&parser->line);
	str_reset(&parser->error);
	parser->request_bytes = 0;
	parser->lineno = 1;
	parser->state = PARSER_READING;
}

struct attr_list *attr_parser_take(struct attr_parser *parser)
{
	struct attr_list *list;

	if (parser->state != PARSER_DONE)
		return NULL;
	list = parser->list;
	parser->list = NULL;
	return list;
}

const char *attr_parser_error(const struct attr_parser *parser)
{
	return parser->state == PARSER_ERROR ? str_c(&parser->error) : NULL;
}

static enum attr_parse_status parse_error(struct attr_parser *parser, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static enum attr_parse_status parse_error(struct attr_parser *parser, const char *fmt, ...)
{
	va_list ap;

	str_reset(&parser->error);
	str_appendf(&parser->error, "request line %u: ", parser->lineno);
	va_start(ap, fmt);
	str_vappendf(&parser->error, fmt, ap);
	va_end(ap);
	/* Nothing of a failed request reaches the caller. */
	attr_list_destroy(&parser->list);
	parser->list = attr_list_new();
	str_reset(&parser->line);
	parser->state = PARSER_ERROR;
	return ATTR_PARSE_ERROR;
}

/* One complete line (LF removed) is in parser->line. */
static enum attr_parse_status parse_line(struct attr_parser *parser)
{
	str_t *line = &parser->line;
	const char *eq;
	size_t name_len;

	if (line->len > 0 && line->buf[line->len - 1] == '\r')
		str_truncate(line, line->len - 1);
	if (line->len > parser->limits.max_line_length)
		return parse_error(parser, "line too long (more than %zu bytes)",
		                   parser->limits.max_line_length);
	if (memchr(line->buf, '\0', line->len) != NULL)
		return parse_error(parser, "NUL byte in line");
	/* Why reject a lone CR: the writer never sends one (a value cannot
	 * hold CR), so it can only be a broken peer or an attempt to smuggle
	 * text that some other reader would take as a line end. */
	if (memchr(line->buf, '\r', line->len) != NULL)
		return parse_error(parser, "CR not followed by LF");
	if (line->len == 0) {
		parser->state = PARSER_DONE;
		return ATTR_PARSE_DONE;
	}
	eq = memchr(line->buf, '=', line->len);
	if (eq == NULL)
		return parse_error(parser, "missing '=' in \"%.*s%s\"", ATTR_QUOTE_MAX, line->buf,
		                   line->len > ATTR_QUOTE_MAX ? "..." : "");
	name_len = (size_t)(eq - line->buf);
	if (name_len == 0)
		return parse_error(parser, "empty attribute name before '='");
	if (!name_valid_n(line->buf, name_len))
		return parse_error(parser,
		                   "bad character in attribute name \"%.*s%s\": expected "
		                   "letters, digits, '_', '.' or '-'",
		                   (int)(name_len < ATTR_QUOTE_MAX ? name_len : ATTR_QUOTE_MAX),
		                   line->buf, name_len > ATTR_QUOTE_MAX ? "..." : "");
	if (parser->list->n >= parser->limits.max_attributes)
		return parse_error(parser, "too many attributes (more than %zu)",
		                   parser->limits.max_attributes);
	list_add_owned(parser->list, xstrndup(line->buf, name_len),
	               xstrndup(eq + 1, line->len - name_len - 1));
	str_reset(line);
	parser->lineno++;
	return ATTR_PARSE_NEED_MORE;
}

enum attr_parse_status attr_parser_feed(struct attr_parser *parser, const void *data, size_t len,
                                        size_t *consumed_r)
{
	const char *p = data;
	size_t pos = 0;

	if (parser->state != PARSER_READING)
		log_panic("%s: called after a complete or failed request without a reset",
		          __func__);
	/*
	 * Why chunks and byte positions: the limits are checked at the exact
	 * byte where they are crossed, so the same error comes at the same
	 * stream position however the data is split into calls. A line may
	 * hold max_line_length + 1 bytes while it is read, because the last
	 * one may be the CR of a CRLF line end.
	 */
	while (pos < len) {
		const char *nl = memchr(p + pos, '\n', len - pos);
		size_t chunk = nl != NULL ? (size_t)(nl - (p + pos)) : len - pos;
		size_t room_request = parser->limits.max_request_size - parser->request_bytes;
		size_t room_line = parser->limits.max_line_length + 1 - parser->line.len;
		enum attr_parse_status status;

		if (chunk >= room_request || chunk > room_line) {
			/* A limit is crossed inside this chunk (or by its LF). */
			if (chunk > room_line && room_line < room_request) {
				*consumed_r = pos + room_line + 1;
				return parse_error(parser, "line too long (more than %zu bytes)",
				                   parser->limits.max_line_length);
			}
			if (chunk > room_request || nl != NULL) {
				*consumed_r = pos + room_request + 1;
				return parse_error(parser,
				                   "request too large (more than %zu bytes)",
				                   parser->limits.max_request_size);
			}
		}
		str_append_n(&parser->line, p + pos, chunk);
		parser->request_bytes += chunk;
		pos += chunk;
		if (nl == NULL)
			break;
		pos++; /* the LF */
		parser->request_bytes++;
		status = parse_line(parser);
		if (status != ATTR_PARSE_NEED_MORE) {
			*consumed_r = pos;
			return status;
		}
	}
	*consumed_r = pos;
	return ATTR_PARSE_NEED_MORE;
}
