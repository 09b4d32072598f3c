/* mime_downgrade.c - 8-bit MIME parts to quoted-printable (see
 * mime_downgrade.h).
 *
 * The walk is recursive over (pointer, length) ranges of the input; each
 * range is an entity: header lines, an empty line, a body. Every loop is
 * bounded by its range, nesting by the caller's limit.
 */
#include "message/mime_downgrade.h"

#include <string.h>
#include <strings.h>

#include "message/header.h"

#define QP_LINE_MAX 76

bool mime_has_8bit(const char *text, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)text[i] >= 0x80)
			return true;
	return false;
}

/* The end of the line starting at p (the position after its LF, or end). */
static const char *line_end(const char *p, const char *end)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));

	return nl != NULL ? nl + 1 : end;
}

/* What the header section of an entity says. */
struct entity_head {
	const char *header_end; /* where the empty line (or the body) starts */
	const char *body; /* first byte after the empty line (or end) */
	str_t type, subtype, boundary;
	bool has_type;
	const char *cte_start, *cte_end; /* the whole Content-Transfer-Encoding header */
	str_t cte; /* its value, trimmed, lower case */
	bool mime_version;
};

static void head_init(struct entity_head *h)
{
	memset(h, 0, sizeof(*h));
	str_init(&h->type);
	str_init(&h->subtype);
	str_init(&h->boundary);
	str_init(&h->cte);
}

static void head_free(struct entity_head *h)
{
	str_free(&h->type);
	str_free(&h->subtype);
	str_free(&h->boundary);
	str_free(&h->cte);
}

static void head_parse(const char *p, const char *end, struct entity_head *h)
{
	while (p < end) {
		const char *e = line_end(p, end), *q;
		size_t nlen = header_name_len(p, (size_t)(e - p));
		str_t value;

		if (nlen == 0) {
			/* The empty line ends the header (anything else that
			 * is not a header ends it too, as in cleanup). */
			h->header_end = p;
			if (e - p <= 2 && (p[0] == '\n' || (p[0] == '\r' && e - p == 2)))
				p = e;
			h->body = p;
			return;
		}
		/* The logical header: this line and its continuations. */
		for (q = e; q < end && header_is_continuation(q, (size_t)(line_end(q, end) - q));)
			q = line_end(q, end);
		str_init(&value);
		{
			size_t off = header_value_offset(p, (size_t)(q - p));

			header_unfold(p + off, (size_t)(q - p) - off, 4096, &value);
		}
		if (header_id_of(p, nlen) == HEADER_CONTENT_TYPE) {
			h->has_type = header_content_type(value.buf, value.len, &h->type,
			                                  &h->subtype, &h->boundary) == 0;
		} else if (header_id_of(p, nlen) == HEADER_CONTENT_TRANSFER_ENCODING) {
			h->cte_start = p;
			h->cte_end = q;
			str_set(&h->cte, str_c(&value));
			str_trim(&h->cte);
			str_lower(&h->cte);
		} else if (header_id_of(p, nlen) == HEADER_MIME_VERSION) {
			h->mime_version = true;
		}
		str_free(&value);
		p = q;
	}
	h->header_end = p;
	h->body = p;
}

/* Quoted-printable of body[0..len), LF line ends kept (RFC 2045 6.7). */
static void qp_encode(const char *body, size_t len, str_t *out)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t col = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)body[i];
		bool at_eol = i + 1 == len || body[i + 1] == '\n' ||
		              (body[i + 1] == '\r' && i + 2 < len && body[i + 2] == '\n');
		bool literal;

		if (c == '\n') {
			str_append_c(out, '\n');
			col = 0;
			continue;
		}
		if (c == '\r' && i + 1 < len && body[i + 1] == '\n')
			continue;
		/* Printable ASCII other than '=' goes as it is; white space
		 * too, except at the end of a line. */
		literal = (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !at_eol);
		if (col + (literal ? 1 : 3) > QP_LINE_MAX - 1) {
			str_append(out, "=\n");
			col = 0;
		}
		if (literal) {
			str_append_c(out, (char)c);
			col++;
		} else {
			str_append_c(out, '=');
			str_append_c(out, hex[c >> 4]);
			str_append_c(out, hex[c & 15]);
			col += 3;
		}
	}
}

static bool entity(const char *p, const char *end, unsigned depth, bool top, str_t *out);

/* The parts of a multipart body between "--boundary" lines. */
static bool multipart(const char *body, const char *end, const str_t *boundary, unsigned depth,
                      str_t *out)
{
	const char *p = body, *part = NULL;
	bool changed = false;

	while (p < end) {
		const char *e = line_end(p, end);
		size_t n = (size_t)(e - p);
		bool delim = n >= 2 + boundary->len && p[0] == '-' && p[1] == '-' &&
		             memcmp(p + 2, boundary->buf, boundary->len) == 0;

		bool close;

		if (!delim) {
			if (part == NULL)
				str_append_n(out, p, n); /* preamble */
			p = e;
			continue;
		}
		close = n >= 4 + boundary->len && p[2 + boundary->len] == '-' &&
		        p[3 + boundary->len] == '-';
		if (part != NULL)
			changed |= entity(part, p, depth, false, out);
		str_append_n(out, p, n);
		p = e;
		if (close) {
			str_append_n(out, p, (size_t)(end - p)); /* epilogue */
			return changed;
		}
		part = p;
	}
	if (part != NULL && part < end)
		changed |= entity(part, end, depth, false, out);
	return changed;
}

/* One entity [p, end): copied to out, its 8-bit leaves converted. */
static bool entity(const char *p, const char *end, unsigned depth, bool top, str_t *out)
{
	struct entity_head h;
	size_t body_len;
	bool changed = false, eightbit;

	head_init(&h);
	head_parse(p, end, &h);
	body_len = (size_t)(end - h.body);
	if ((top && !h.mime_version) || depth == 0) {
		str_append_n(out, p, (size_t)(end - p));
		head_free(&h);
		return false;
	}
	if (h.has_type && strcmp(str_c(&h.type), "multipart") == 0 && h.boundary.len > 0) {
		str_append_n(out, p, (size_t)(h.body - p));
		changed = multipart(h.body, end, &h.boundary, depth - 1, out);
	} else if (h.has_type && strcmp(str_c(&h.type), "message") == 0 &&
	           strcmp(str_c(&h.subtype), "rfc822") == 0) {
		str_append_n(out, p, (size_t)(h.body - p));
		changed = entity(h.body, end, depth - 1, false, out);
	} else {
		eightbit = strcmp(str_c(&h.cte), "8bit") == 0 ||
		           strcmp(str_c(&h.cte), "binary") == 0 ||
		           (h.cte.len == 0 || strcmp(str_c(&h.cte), "7bit") == 0);
		eightbit = eightbit && mime_has_8bit(h.body, body_len);
		if (!eightbit) {
			str_append_n(out, p, (size_t)(end - p));
		} else {
			/* The headers, with the encoding replaced (or added at
			 * the end of the header), then the encoded body. */
			if (h.cte_start != NULL) {
				str_append_n(out, p, (size_t)(h.cte_start - p));
				str_append(out, "Content-Transfer-Encoding: quoted-printable\n");
				str_append_n(out, h.cte_end, (size_t)(h.body - h.cte_end));
			} else {
				str_append_n(out, p, (size_t)(h.header_end - p));
				str_append(out, "Content-Transfer-Encoding: quoted-printable\n");
				str_append_n(out, h.header_end, (size_t)(h.body - h.header_end));
			}
			qp_encode(h.body, body_len, out);
			changed = true;
		}
	}
	head_free(&h);
	return changed;
}

bool mime_downgrade(const char *in, size_t len, unsigned nesting_limit, str_t *out)
{
	return entity(in, in + len, nesting_limit > 0 ? nesting_limit : 1, true, out);
}
