/* header.h - RFC 5322 message header fields: recognition and parsing.
 *
 * Used by cleanup (lib/cleanup) to find where the header section ends, to
 * classify each logical header (message header, MIME header) and to read
 * the few header values it acts on (Content-Type boundaries, address
 * lists). Every function works on (pointer, length) text that came from
 * outside: nothing is assumed NUL-terminated, every loop is bounded by the
 * length, and no function allocates except into a caller's str_t.
 */
#ifndef POSTERN_HEADER_H
#define POSTERN_HEADER_H

#include <stdbool.h>
#include <stddef.h>

#include "base/str.h"

/* Headers cleanup knows by name. HEADER_OTHER for the rest. */
enum header_id {
	HEADER_OTHER = 0,
	HEADER_BCC,
	HEADER_CC,
	HEADER_CONTENT_LENGTH,
	HEADER_CONTENT_TRANSFER_ENCODING,
	HEADER_CONTENT_TYPE,
	HEADER_DATE,
	HEADER_FROM,
	HEADER_MESSAGE_ID,
	HEADER_MIME_VERSION,
	HEADER_RECEIVED,
	HEADER_REPLY_TO,
	HEADER_RESENT_BCC,
	HEADER_RESENT_CC,
	HEADER_RESENT_DATE,
	HEADER_RESENT_FROM,
	HEADER_RESENT_MESSAGE_ID,
	HEADER_RESENT_REPLY_TO,
	HEADER_RESENT_SENDER,
	HEADER_RESENT_TO,
	HEADER_RETURN_PATH,
	HEADER_SENDER,
	HEADER_TO,
	HEADER_ID_COUNT,
};

/* When line (len bytes) starts a header field, the length of its field
 * name: one or more printable ASCII characters other than ':' (33..126),
 * then optional spaces or tabs, then ':'. 0 when it does not start a
 * header (a body line, an empty line, a continuation line). */
size_t header_name_len(const char *line, size_t len);

/* True when line is a continuation of the previous header (starts with
 * a space or a tab). */
bool header_is_continuation(const char *line, size_t len);

/* The id of a header name (case-insensitive), HEADER_OTHER when cleanup
 * has no use for it. */
enum header_id header_id_of(const char *name, size_t len);

/* The canonical spelling of a known header's name ("Message-ID"); NULL
 * for HEADER_OTHER. */
const char *header_id_name(enum header_id id);

/* True for MIME headers (Content-*, MIME-Version), which Postfix checks
 * with mime_header_checks. */
bool header_is_mime(const char *name, size_t len);

/* True for Resent-From/To/Cc/Bcc/Sender/Date/Message-ID/Reply-To. */
bool header_is_resent(enum header_id id);

/* The value of a header "Name: value": the offset of the first byte after
 * the colon (len when there is no colon). */
size_t header_value_offset(const char *hdr, size_t len);

/* Append the header text hdr with every line break (CRLF or LF) that is
 * followed by white space removed (RFC 5322 unfolding) to out, at most
 * max bytes. */
void header_unfold(const char *hdr, size_t len, size_t max, str_t *out);

/* Parse a Content-Type value (after the colon): type and subtype in
 * lower case, and the boundary parameter (quotes removed; empty when
 * absent) into the given strings (replaced). RFC 2045 comments are
 * skipped. -1 when there is no type/subtype. Boundaries longer than
 * HEADER_BOUNDARY_MAX are refused (-1): RFC 2046 allows 70. */
#define HEADER_BOUNDARY_MAX 200
int header_content_type(const char *value, size_t len, str_t *type_r, str_t *subtype_r,
                        str_t *boundary_r);

/* An address in an address-list header value, as found by
 * header_address_next(): the bytes [start, start+len) of the value hold
 * the addr-spec (inside <> when the mailbox has angle brackets). */
struct header_address {
	size_t start;
	size_t len;
};

/* Iterate the addresses of an address-list value (From, To, Cc, ...):
 * start with *pos = 0. Comments, display names and group names are
 * skipped; an empty group ("undisclosed-recipients:;") gives no address.
 * Returns 1 with *addr_r set, 0 at the end, -1 when the value cannot be
 * parsed (unbalanced quote, comment or angle bracket): callers then leave
 * the header alone. */
int header_address_next(const char *value, size_t len, size_t *pos, struct header_address *addr_r);

#endif
