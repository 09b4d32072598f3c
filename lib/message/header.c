/* header.c - RFC 5322 header field recognition and parsing (header.h).
 *
 * Used by cleanup for every header line of every message, so everything
 * here runs on outside input: text is (pointer, length), never assumed
 * NUL-terminated; loops are bounded by the length; results go into the
 * caller's str_t or plain offsets. Malformed input is never an error that
 * stops the message: a line that is not a header ends the header section,
 * an address list that does not parse is left alone by the caller.
 *
 * SECURITY: this parses message content from any SMTP client; it is
 * fuzzed by tests/fuzz/fuzz_header.c.
 */
#include "message/header.h"

#include <string.h>
#include <strings.h>

static const char *const header_names[HEADER_ID_COUNT] = {
        [HEADER_OTHER] = NULL,
        [HEADER_BCC] = "Bcc",
        [HEADER_CC] = "Cc",
        [HEADER_CONTENT_LENGTH] = "Content-Length",
        [HEADER_CONTENT_TRANSFER_ENCODING] = "Content-Transfer-Encoding",
        [HEADER_CONTENT_TYPE] = "Content-Type",
        [HEADER_DATE] = "Date",
        [HEADER_FROM] = "From",
        [HEADER_MESSAGE_ID] = "Message-ID",
        [HEADER_MIME_VERSION] = "MIME-Version",
        [HEADER_RECEIVED] = "Received",
        [HEADER_REPLY_TO] = "Reply-To",
        [HEADER_RESENT_BCC] = "Resent-Bcc",
        [HEADER_RESENT_CC] = "Resent-Cc",
        [HEADER_RESENT_DATE] = "Resent-Date",
        [HEADER_RESENT_FROM] = "Resent-From",
        [HEADER_RESENT_MESSAGE_ID] = "Resent-Message-ID",
        [HEADER_RESENT_REPLY_TO] = "Resent-Reply-To",
        [HEADER_RESENT_SENDER] = "Resent-Sender",
        [HEADER_RESENT_TO] = "Resent-To",
        [HEADER_RETURN_PATH] = "Return-Path",
        [HEADER_SENDER] = "Sender",
        [HEADER_TO] = "To",
};

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

size_t header_name_len(const char *line, size_t len)
{
	size_t i = 0;
	while (i < len && (unsigned char)line[i] >= 33 && (unsigned char)line[i] <= 126 &&
	       line[i] != ':')
		i++;
	size_t name_len = i;
	if (name_len == 0)
		return 0;
	while (i < len && is_wsp(line[i]))
		i++;
	return i < len && line[i] == ':' ? name_len : 0;
}

bool header_is_continuation(const char *line, size_t len)
{
	return len > 0 && is_wsp(line[0]);
}

enum header_id header_id_of(const char *name, size_t len)
{
	for (int id = 1; id < HEADER_ID_COUNT; id++) {
		const char *known = header_names[id];
		if (strlen(known) == len && strncasecmp(known, name, len) == 0)
			return (enum header_id)id;
	}
	return HEADER_OTHER;
}

const char *header_id_name(enum header_id id)
{
	return id > HEADER_OTHER && id < HEADER_ID_COUNT ? header_names[id] : NULL;
}

bool header_is_mime(const char *name, size_t len)
{
	return (len > 8 && strncasecmp(name, "Content-", 8) == 0) ||
	       (len == 12 && strncasecmp(name, "MIME-Version", 12) == 0);
}

bool header_is_resent(enum header_id id)
{
	switch (id) {
	case HEADER_RESENT_BCC:
	case HEADER_RESENT_CC:
	case HEADER_RESENT_DATE:
	case HEADER_RESENT_FROM:
	case HEADER_RESENT_MESSAGE_ID:
	case HEADER_RESENT_REPLY_TO:
	case HEADER_RESENT_SENDER:
	case HEADER_RESENT_TO:
		return true;
	default:
		return false;
	}
}

size_t header_value_offset(const char *hdr, size_t len)
{
	const char *colon = memchr(hdr, ':', len);
	return colon == NULL ? len : (size_t)(colon - hdr) + 1;
}

void header_unfold(const char *hdr, size_t len, size_t max, str_t *out)
{
	size_t added = 0;
	for (size_t i = 0; i < len && added < max; i++) {
		if (hdr[i] == '\r' && i + 2 < len && hdr[i + 1] == '\n' && is_wsp(hdr[i + 2])) {
			i++;
			continue;
		}
		if (hdr[i] == '\n' && i + 1 < len && is_wsp(hdr[i + 1]))
			continue;
		str_append_c(out, hdr[i]);
		added++;
	}
}

/* Skip white space and RFC 2045 comments from *i; false on an
 * unterminated comment. */
static bool skip_cfws(const char *v, size_t len, size_t *i)
{
	while (*i < len) {
		if (is_space(v[*i])) {
			(*i)++;
		} else if (v[*i] == '(') {
			int depth = 0;
			for (; *i < len; (*i)++) {
				if (v[*i] == '\\' && *i + 1 < len)
					(*i)++;
				else if (v[*i] == '(')
					depth++;
				else if (v[*i] == ')' && --depth == 0)
					break;
			}
			if (*i >= len)
				return false;
			(*i)++;
		} else {
			return true;
		}
	}
	return true;
}

/* RFC 2045 token characters. */
static bool is_token(char c)
{
	return (unsigned char)c > 32 && (unsigned char)c < 127 &&
	       strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

static size_t scan_token(const char *v, size_t len, size_t i)
{
	while (i < len && is_token(v[i]))
		i++;
	return i;
}

int header_content_type(const char *value, size_t len, str_t *type_r, str_t *subtype_r,
                        str_t *boundary_r)
{
	size_t i = 0;
	str_reset(type_r);
	str_reset(subtype_r);
	str_reset(boundary_r);
	if (!skip_cfws(value, len, &i))
		return -1;
	size_t end = scan_token(value, len, i);
	if (end == i)
		return -1;
	str_append_n(type_r, value + i, end - i);
	i = end;
	if (!skip_cfws(value, len, &i) || i >= len || value[i] != '/')
		return -1;
	i++;
	if (!skip_cfws(value, len, &i))
		return -1;
	end = scan_token(value, len, i);
	if (end == i)
		return -1;
	str_append_n(subtype_r, value + i, end - i);
	str_lower(type_r);
	str_lower(subtype_r);
	i = end;
	/* Parameters: ; name = value, value a token or a quoted string. */
	while (i < len) {
		if (!skip_cfws(value, len, &i) || i >= len || value[i] != ';')
			return 0;
		i++;
		if (!skip_cfws(value, len, &i))
			return 0;
		size_t name = i;
		end = scan_token(value, len, i);
		size_t name_len = end - name;
		i = end;
		if (name_len == 0 || !skip_cfws(value, len, &i) || i >= len || value[i] != '=')
			return 0;
		i++;
		if (!skip_cfws(value, len, &i) || i >= len)
			return 0;
		bool is_boundary = name_len == 8 && strncasecmp(value + name, "boundary", 8) == 0;
		if (is_boundary)
			str_reset(boundary_r);
		if (value[i] == '"') {
			for (i++; i < len && value[i] != '"'; i++) {
				if (value[i] == '\\' && i + 1 < len)
					i++;
				if (is_boundary && value[i] != '\r' && value[i] != '\n')
					str_append_c(boundary_r, value[i]);
			}
			if (i >= len) {
				str_reset(boundary_r);
				return 0;
			}
			i++;
		} else {
			end = scan_token(value, len, i);
			if (is_boundary)
				str_append_n(boundary_r, value + i, end - i);
			i = end;
		}
		if (boundary_r->len > HEADER_BOUNDARY_MAX) {
			str_reset(boundary_r);
			return -1;
		}
	}
	return 0;
}

int header_address_next(const char *value, size_t len, size_t *pos, struct header_address *addr_r)
{
	size_t i = *pos;
	while (i < len) {
		bool in_quote = false, in_angle = false, have_angle = false;
		bool pending = false, inside_gap = false;
		int comment = 0;
		size_t first = len, last = 0, a_start = 0, a_end = 0;
		for (; i < len; i++) {
			char c = value[i];
			if (in_quote) {
				if (c == '\\' && i + 1 < len)
					i++;
				else if (c == '"')
					in_quote = false;
				if (!in_angle)
					last = i + 1;
				continue;
			}
			if (comment > 0) {
				if (c == '\\' && i + 1 < len)
					i++;
				else if (c == '(')
					comment++;
				else if (c == ')')
					comment--;
				continue;
			}
			if (c == '(') {
				comment = 1;
				pending = first < len;
				continue;
			}
			if (c == '"') {
				in_quote = true;
				if (!in_angle) {
					if (pending)
						inside_gap = true;
					if (first == len)
						first = i;
					last = i + 1;
				}
				continue;
			}
			if (in_angle) {
				if (c == '>') {
					in_angle = false;
					a_end = i;
				} else if (c == '<') {
					return -1;
				}
				continue;
			}
			if (c == '<') {
				if (have_angle)
					return -1;
				in_angle = have_angle = true;
				a_start = i + 1;
				continue;
			}
			if (c == '>')
				return -1;
			if (c == ':') { /* a group name ends: start over */
				first = len;
				last = 0;
				pending = inside_gap = have_angle = false;
				continue;
			}
			if (c == ',' || c == ';')
				break;
			if (is_space(c)) {
				pending = first < len;
				continue;
			}
			if (pending)
				inside_gap = true;
			if (first == len)
				first = i;
			last = i + 1;
		}
		if (in_quote || in_angle || comment > 0)
			return -1;
		if (i < len)
			i++; /* the separator */
		*pos = i;
		if (have_angle) {
			size_t s = a_start, e = a_end;
			/* An obsolete source route "<@a,@b:user@c>": skip it. */
			if (s < e && value[s] == '@') {
				const char *colon = memchr(value + s, ':', e - s);
				if (colon == NULL)
					return -1;
				s = (size_t)(colon - value) + 1;
			}
			while (s < e && is_space(value[s]))
				s++;
			while (e > s && is_space(value[e - 1]))
				e--;
			if (e == s)
				continue; /* <> */
			addr_r->start = s;
			addr_r->len = e - s;
			return 1;
		}
		if (first == len)
			continue; /* empty element */
		if (inside_gap)
			return -1; /* a phrase without <address>, or a comment inside */
		addr_r->start = first;
		addr_r->len = last - first;
		return 1;
	}
	*pos = len;
	return 0;
}
