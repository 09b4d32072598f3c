/* cleanup_message.c - the content of a message, line by line.
 *
 * Called by cleanup_line() for every content line from smtpd or pickup.
 * Follows the message's structure the way Postfix's mime_state does:
 * the primary header block, then the body; with MIME processing on, the
 * body of a multipart entity is split at its boundaries into parts, each
 * with a header block of its own (MIME part headers), and an attached
 * message/rfc822 starts a nested header block. Each logical header
 * (continuation lines joined, at most header_size_limit bytes: the excess
 * is discarded, as Postfix does) goes through header_checks,
 * mime_header_checks or nested_header_checks by its block; each body line
 * through body_checks until body_checks_size_limit bytes of its part.
 * Nothing is decoded. Missing headers are added at the end of the primary
 * header block for local submissions, addresses rewritten, recipients
 * extracted for sendmail -t, message_drop_headers removed.
 *
 * Stored form: lines end in "\n"; a line that came in pieces (more =
 * true) is stored joined. When the primary header block ends with a line
 * that is not a header, an empty line is inserted (as Postfix does), so
 * the stored message always separates headers from body and a stray body
 * line cannot become part of a header further down the delivery path;
 * part headers are left as they are. "Name : value" headers are stored
 * as "Name: value". MIME boundary lines are body lines to body_checks,
 * as in Postfix.
 *
 * Memory: one logical header (bounded) plus the MIME boundary stack
 * (bounded by mime_nesting_limit entries of HEADER_BOUNDARY_MAX bytes).
 *
 * Failure: see cleanup.c; after a failure or DISCARD lines are ignored.
 *
 * SECURITY: this parses message content from any SMTP client. Lengths
 * are explicit; nothing is copied into fixed-size buffers; the MIME
 * depth and the number of headers per block are bounded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include "base/log.h"
#include "base/mem.h"
#include "cleanup/cleanup_private.h"

/* The tables for a header of this block (Postfix's cleanup: a MIME
 * header anywhere goes to mime_header_checks; other part headers too;
 * other headers of an attached message to nested_header_checks). */
static struct maps *header_maps(const struct cleanup *c, bool is_mime)
{
	const struct cleanup_settings *set = c->set;
	if (set->disable_mime)
		return set->header_checks;
	if (is_mime || c->block == CLEANUP_BLOCK_MULTIPART)
		return set->mime_header_checks;
	if (c->block == CLEANUP_BLOCK_NESTED)
		return set->nested_header_checks;
	return set->header_checks;
}

static bool is_dropped(const struct cleanup_settings *set, const char *name, size_t len)
{
	for (size_t i = 0; i < set->drop_headers.n; i++) {
		const char *d = set->drop_headers.v[i];
		if (strlen(d) == len && strncasecmp(d, name, len) == 0)
			return true;
	}
	return false;
}

static bool is_address_header(enum header_id id)
{
	switch (id) {
	case HEADER_FROM:
	case HEADER_SENDER:
	case HEADER_TO:
	case HEADER_CC:
	case HEADER_BCC:
	case HEADER_REPLY_TO:
	case HEADER_RESENT_FROM:
	case HEADER_RESENT_SENDER:
	case HEADER_RESENT_TO:
	case HEADER_RESENT_CC:
	case HEADER_RESENT_BCC:
	case HEADER_RESENT_REPLY_TO:
		return true;
	default:
		return false;
	}
}

/* Note what a Content-Type header of the current block says. */
static void note_content_type(struct cleanup *c, const str_t *hdr)
{
	size_t off = header_value_offset(hdr->buf, hdr->len);
	str_t *boundary = &c->tmp2;
	if (header_content_type(hdr->buf + off, hdr->len - off, &c->type, &c->subtype, boundary) <
	    0)
		return;
	str_reset(&c->block_boundary);
	c->block_rfc822 = false;
	if (strcmp(str_c(&c->type), "multipart") == 0 && boundary->len > 0)
		str_set(&c->block_boundary, str_c(boundary));
	else if (strcmp(str_c(&c->type), "message") == 0 &&
	         strcmp(str_c(&c->subtype), "rfc822") == 0)
		c->block_rfc822 = true;
}

/* Process the held header: checks, then primary-header handling, then
 * write it. */
static void flush_header(struct cleanup *c)
{
	if (!c->have_hdr)
		return;
	c->have_hdr = false;
	if (!cleanup_active(c))
		return;
	str_t *hdr = &c->hdr;
	size_t name_len = header_name_len(hdr->buf, hdr->len);
	bool is_mime = !c->set->disable_mime && header_is_mime(hdr->buf, name_len);
	enum header_id id = header_id_of(hdr->buf, name_len);

	if (!c->set->disable_mime && id == HEADER_CONTENT_TYPE)
		note_content_type(c, hdr);
	if (!c->checks_off) {
		struct maps *m = header_maps(c, is_mime);
		if (m != NULL && cleanup_check(c, m, "header", hdr))
			return;
		if (!cleanup_active(c))
			return;
		/* REPLACE may have changed the name. */
		name_len = header_name_len(hdr->buf, hdr->len);
		id = header_id_of(hdr->buf, name_len);
	}
	if (c->block == CLEANUP_BLOCK_PRIMARY) {
		/* Why >=: Postfix counts the hop limit the same way, so 50
		 * Received headers (with the one smtpd adds) are too many. */
		if (id == HEADER_RECEIVED && ++c->hops >= c->set->hopcount_limit) {
			cleanup_fail(c, CLEANUP_REJECTED, "554 5.4.0 Error: too many hops");
			return;
		}
		c->seen[id]++;
		if (header_is_resent(id))
			c->seen_resent = true;
		if (id == HEADER_MESSAGE_ID || id == HEADER_RESENT_MESSAGE_ID) {
			/* Postfix logs every one it sees, as written. */
			size_t off = header_value_offset(hdr->buf, hdr->len);
			while (off < hdr->len && (hdr->buf[off] == ' ' || hdr->buf[off] == '\t'))
				off++;
			log_info("%s: %smessage-id=%.*s", c->id,
			         id == HEADER_RESENT_MESSAGE_ID ? "resent-" : "",
			         (int)(hdr->len - off), hdr->buf + off);
		}
		if ((c->flags & CLEANUP_F_LOCAL) && is_address_header(id))
			cleanup_rewrite_header(c, hdr);
		if (c->flags & CLEANUP_F_EXTRACT_RCPT) {
			if (id == HEADER_TO || id == HEADER_CC || id == HEADER_BCC)
				cleanup_extract_header(c, hdr, &c->extracted);
			else if (id == HEADER_RESENT_TO || id == HEADER_RESENT_CC ||
			         id == HEADER_RESENT_BCC)
				cleanup_extract_header(c, hdr, &c->extracted_resent);
		}
		if (is_dropped(c->set, hdr->buf, name_len))
			return;
	}
	cleanup_write(c, hdr->buf, hdr->len);
	cleanup_write(c, "\n", 1);
}

static void add_header(struct cleanup *c, const char *text)
{
	cleanup_write(c, text, strlen(text));
	cleanup_write(c, "\n", 1);
}

/* A display name as a quoted string when it holds anything but atoms. */
static void append_phrase(str_t *out, const char *name)
{
	bool plain = true;
	for (const char *p = name; *p != '\0'; p++)
		if (strchr("()<>[]:;@\\,.\"", *p) != NULL || (unsigned char)*p < 32)
			plain = false;
	if (plain) {
		str_append(out, name);
		return;
	}
	str_append_c(out, '"');
	for (const char *p = name; *p != '\0'; p++) {
		if ((unsigned char)*p < 32)
			continue;
		if (*p == '"' || *p == '\\')
			str_append_c(out, '\\');
		str_append_c(out, *p);
	}
	str_append_c(out, '"');
}

/* End of the primary header block: add what a local submission lacks
 * (Postfix's cleanup_header_done_callback). When the message has Resent-
 * headers it is being re-sent, and the Resent- forms are what is missing. */
static void primary_done(struct cleanup *c)
{
	const struct cleanup_settings *set = c->set;
	bool add = (c->flags & CLEANUP_F_LOCAL) || set->always_add_missing_headers;
	bool resent = c->seen_resent;
	const char *prefix = resent ? "Resent-" : "";
	str_t *h = &c->tmp;

	if (!cleanup_active(c))
		return;
	if (add && c->seen[resent ? HEADER_RESENT_MESSAGE_ID : HEADER_MESSAGE_ID] == 0) {
		const struct timeval *tv = queue_writer_arrival(c->w);
		struct tm tm;
		char stamp[32];
		time_t sec = tv->tv_sec;
		gmtime_r(&sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm);
		str_reset(h);
		str_appendf(h, "%sMessage-ID: <%s.%s@%s>", prefix, stamp, c->id, set->myhostname);
		add_header(c, str_c(h));
		log_info("%s: %smessage-id=<%s.%s@%s>", c->id, resent ? "resent-" : "", stamp,
		         c->id, set->myhostname);
		c->seen[resent ? HEADER_RESENT_MESSAGE_ID : HEADER_MESSAGE_ID]++;
	}
	if (c->seen[HEADER_MESSAGE_ID] == 0)
		log_info("%s: message-id=<>", c->id);
	if (add && c->seen[resent ? HEADER_RESENT_DATE : HEADER_DATE] == 0) {
		const struct timeval *tv = queue_writer_arrival(c->w);
		struct tm tm;
		char date[128];
		time_t sec = tv->tv_sec;
		localtime_r(&sec, &tm);
		strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z (%Z)", &tm);
		str_reset(h);
		str_appendf(h, "%sDate: %s", prefix, date);
		add_header(c, str_c(h));
	}
	if (add && c->seen[resent ? HEADER_RESENT_FROM : HEADER_FROM] == 0) {
		/* "From: sender", or with a full name (sendmail -F, the
		 * password file) "From: Full Name <sender>" (Postfix 3.3+
		 * hfrom_format = standard); MAILER-DAEMON for the null sender. */
		bool null_sender = c->sender == NULL || *c->sender == '\0';
		str_reset(h);
		str_appendf(h, "%sFrom: ", prefix);
		if (!null_sender && c->full_name != NULL && *c->full_name != '\0') {
			append_phrase(h, c->full_name);
			str_appendf(h, " <%s>", c->sender);
		} else {
			str_append(h, null_sender ? "MAILER-DAEMON" : c->sender);
		}
		add_header(c, str_c(h));
	}
	if (add && c->seen[HEADER_TO] == 0 && c->seen[HEADER_CC] == 0 &&
	    c->seen[HEADER_RESENT_TO] == 0 && c->seen[HEADER_RESENT_CC] == 0 &&
	    *set->undisclosed_recipients_header != '\0') {
		const char *u = set->undisclosed_recipients_header;
		if (header_name_len(u, strlen(u)) == 0)
			log_warning("bad undisclosed_recipients_header header text \"%s\" -- need "
			            "\"headername: headervalue\"",
			            u);
		else
			add_header(c, u);
	}
}

/* A header block ended (empty line, a non-header line, or the end). */
static void block_done(struct cleanup *c)
{
	flush_header(c);
	if (c->block == CLEANUP_BLOCK_PRIMARY)
		primary_done(c);
	enum cleanup_block next = CLEANUP_BLOCK_BODY;
	if (!c->set->disable_mime && (int64_t)c->nesting < c->set->mime_nesting_limit) {
		if (c->block_boundary.len > 0) {
			strv_add(&c->boundaries, str_c(&c->block_boundary));
			c->nesting++;
		} else if (c->block_rfc822) {
			next = CLEANUP_BLOCK_NESTED;
			c->nesting++;
		}
	}
	str_reset(&c->block_boundary);
	c->block_rfc822 = false;
	c->block = next;
	c->block_headers = 0;
	c->part_bytes = 0;
}

/* A MIME boundary line of an enclosing multipart: 1 for a part start, 2
 * for the closing delimiter, 0 for an ordinary line. Unwinds the stack. */
static int boundary_line(struct cleanup *c, const char *line, size_t len)
{
	if (c->set->disable_mime || c->boundaries.n == 0 || len < 3 || line[0] != '-' ||
	    line[1] != '-')
		return 0;
	for (size_t k = c->boundaries.n; k-- > 0;) {
		const char *b = c->boundaries.v[k];
		size_t blen = strlen(b);
		if (len - 2 < blen || memcmp(line + 2, b, blen) != 0)
			continue;
		bool closing =
		        len - 2 - blen >= 2 && line[2 + blen] == '-' && line[3 + blen] == '-';
		size_t keep = closing ? k : k + 1;
		while (c->boundaries.n > keep) {
			free(c->boundaries.v[--c->boundaries.n]);
			c->boundaries.v[c->boundaries.n] = NULL;
		}
		/* Attached messages inside the unwound parts end with them. */
		c->nesting = c->boundaries.n;
		return closing ? 2 : 1;
	}
	return 0;
}

/* One body line or piece of one. Why piece_written: when a check drops
 * the last piece of a line whose earlier pieces were stored, the line
 * must still end, or it would run into the next one. */
static void body_piece(struct cleanup *c, const char *line, size_t len, bool more)
{
	bool kept = true;
	if (!c->checks_off && c->set->body_checks != NULL && maps_count(c->set->body_checks) > 0 &&
	    c->part_bytes < c->set->body_checks_size_limit) {
		str_t *text = &c->tmp;
		str_reset(text);
		str_append_n(text, line, len);
		kept = !cleanup_check(c, c->set->body_checks, "body", text);
		if (kept)
			cleanup_write(c, text->buf, text->len);
	} else {
		cleanup_write(c, line, len);
	}
	if (kept)
		c->piece_written = true;
	if (!more) {
		if (c->piece_written)
			cleanup_write(c, "\n", 1);
		c->piece_written = false;
	}
	c->part_bytes += len + (more ? 0 : 1);
}

static void start_content(struct cleanup *c)
{
	c->started = true;
	for (size_t i = 0; i < c->prepend.n; i++)
		add_header(c, c->prepend.v[i]);
	strv_free(&c->prepend);
	if (c->hops >= c->set->hopcount_limit)
		cleanup_fail(c, CLEANUP_REJECTED, "554 5.4.0 Error: too many hops");
}

static void hdr_append(struct cleanup *c, const char *data, size_t len)
{
	uint64_t room =
	        c->set->header_size_limit > c->hdr.len ? c->set->header_size_limit - c->hdr.len : 0;
	str_append_n(&c->hdr, data, len < room ? len : (size_t)room);
}

void cleanup_message_line(struct cleanup *c, const char *line, size_t len, bool more)
{
	if (!c->started)
		start_content(c);
	if (line == NULL || !cleanup_active(c))
		return;
	if (c->in_piece) {
		/* The rest of an overlong line. */
		c->in_piece = more;
		if (c->piece_is_header)
			hdr_append(c, line, len);
		else
			body_piece(c, line, len, more);
		return;
	}
	c->in_piece = more;
	c->piece_is_header = false;
	if (c->block != CLEANUP_BLOCK_BODY) {
		if (c->have_hdr && header_is_continuation(line, len)) {
			hdr_append(c, "\n", 1);
			hdr_append(c, line, len);
			c->piece_is_header = true;
			return;
		}
		size_t name_len = header_name_len(line, len);
		if (name_len > 0 && c->block_headers < CLEANUP_HEADER_COUNT_MAX) {
			flush_header(c);
			c->block_headers++;
			/* "Name : value" is stored as "Name: value" (Postfix
			 * normalises the obsolete form so checks see one). */
			size_t colon = name_len;
			while (line[colon] != ':')
				colon++;
			str_reset(&c->hdr);
			hdr_append(c, line, name_len);
			hdr_append(c, line + colon, len - colon);
			c->have_hdr = true;
			c->piece_is_header = true;
			return;
		}
		bool primary = c->block == CLEANUP_BLOCK_PRIMARY;
		block_done(c);
		if (len == 0 && !more) {
			cleanup_write(c, "\n", 1);
			return; /* the empty line that ended the block */
		}
		/* A line that is not a header ends the block. Only the primary
		 * headers get the missing empty line, as in Postfix: inserting
		 * one into an attachment would break its signature. */
		if (primary)
			cleanup_write(c, "\n", 1);
	}
	int b = boundary_line(c, line, len);
	body_piece(c, line, len, more);
	if (b != 0) {
		c->part_bytes = 0;
		if (b == 1) {
			c->block = CLEANUP_BLOCK_MULTIPART;
			c->block_headers = 0;
		}
	}
}

void cleanup_message_end(struct cleanup *c)
{
	if (!c->started)
		start_content(c);
	if (c->block == CLEANUP_BLOCK_PRIMARY)
		block_done(c);
	else
		flush_header(c);
}

void cleanup_line(struct cleanup *c, const char *line, size_t len, bool more)
{
	cleanup_message_line(c, line, len, more);
}
