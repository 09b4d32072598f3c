/* attr.h - postern's one IPC encoding: "name=value" lines, empty line ends.
 *
 * Every internal request uses it: qmgr <-> delivery agents, CLI <-> daemons,
 * smtpd <-> policy services. It is Postfix's policy delegation format, so a
 * Postfix policy server talks to smtpd unchanged and a person can talk to
 * any postern socket with `nc -U`:
 *
 *     request=smtpd_access_policy
 *     recipient=a@example.org
 *     recipient=b@example.org
 *
 * A request is a sequence of lines "name=value\n" ended by an empty line.
 * Names match [A-Za-z0-9_.-]+ and are case-sensitive; a value holds any
 * byte except NUL, CR and LF (there is no quoting: such values cannot be
 * sent, and the writer refuses them instead of truncating). A name may
 * repeat (one "recipient=" per recipient); order is kept. The reader
 * accepts "\r\n" as a line end, for telnet-style clients.
 *
 * Connection protocol, for every postern service that uses this codec:
 *  - The first request on a connection carries `version=` (the client's
 *    ATTR_PROTOCOL_VERSION); a server answers a version it does not speak
 *    with an error reply and closes the connection. Postfix policy clients
 *    send no version; smtpd's policy client is the only exception to this
 *    rule, because the peer there is a Postfix-compatible policy server.
 *  - Requests may be pipelined. Every request carries `request_id=` (a
 *    decimal number unique on that connection) and every reply carries the
 *    request_id of the request it answers, so a server may reply out of
 *    order (a slow delivery does not hold up a fast one on the same
 *    connection). Use attr_put_uint/attr_get_uint with ATTR_REQUEST_ID.
 *
 * Writing: attr_put_*() append one line to a str_t, attr_end() the empty
 * line; nothing is ever formatted by hand. Reading: an attr_parser takes
 * bytes from a stream socket as they come and returns one attr_list per
 * request; it never reads past the end of the request it returns, so
 * pipelined requests in one buffer come out one at a time.
 */
#ifndef POSTERN_ATTR_H
#define POSTERN_ATTR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/str.h"
#include "base/strv.h"

/* The protocol version sent as version= in the first request. */
#define ATTR_PROTOCOL_VERSION "1"
/* Names of the attributes every postern service understands. */
#define ATTR_VERSION "version"
#define ATTR_REQUEST_ID "request_id"
/* A reply that refuses the whole request: error=TEXT. */
#define ATTR_ERROR "error"

/* ---- writing ------------------------------------------------------------ */

/* Append "name=value\n" to out. Returns 0, or -1 with *error_r (static
 * text) when name is not [A-Za-z0-9_.-]+ or value contains CR or LF; out
 * is then unchanged. */
int attr_put_str(str_t *out, const char *name, const char *value, const char **error_r);
/* Append "name=<decimal>\n"; -1 with *error_r only for a bad name. */
int attr_put_int(str_t *out, const char *name, int64_t value, const char **error_r);
int attr_put_uint(str_t *out, const char *name, uint64_t value, const char **error_r);
/* Append the empty line that ends a request or reply. */
void attr_end(str_t *out);

/* True when name is a valid attribute name ([A-Za-z0-9_.-]+). */
bool attr_name_valid(const char *name);

/* ---- a parsed request ---------------------------------------------------- */

struct attr {
	char *name;
	char *value;
};

/* The pairs of one request, in the order received. Iterate with
 * `for (size_t i = 0; i < list->n; i++) list->attrs[i]...` or with
 * attr_get_next() for one name. */
struct attr_list {
	struct attr *attrs;
	size_t n;
	size_t cap;
	str_t error; /* text behind the last *error_r of a getter */
};

/* An empty list; free it with attr_list_destroy. */
struct attr_list *attr_list_new(void);
/* Free *listp and set it to NULL; no-op on NULL. */
void attr_list_destroy(struct attr_list **listp);
/* Append a pair (copies). No validation: for building lists in memory. */
void attr_list_add(struct attr_list *list, const char *name, const char *value);

/* The first value of name, or NULL when absent. Owned by list. */
const char *attr_get(const struct attr_list *list, const char *name);
/* The next value of name at or after position *iter (start with 0), or
 * NULL at the end; *iter is moved past the returned pair. */
const char *attr_get_next(const struct attr_list *list, const char *name, size_t *iter);
/* Append copies of every value of name to values_r; returns how many. */
size_t attr_get_all(const struct attr_list *list, const char *name, strv_t *values_r);
/* The first value of name as a number within [min, max]. Returns 0, or -1
 * with *error_r (owned by list, valid until the next getter call or the
 * destroy) naming the attribute, when it is missing, not a decimal
 * number, or out of range. *value_r is untouched on error. */
int attr_get_int(struct attr_list *list, const char *name, int64_t min, int64_t max,
                 int64_t *value_r, const char **error_r);
int attr_get_uint(struct attr_list *list, const char *name, uint64_t min, uint64_t max,
                  uint64_t *value_r, const char **error_r);

/* ---- incremental reading ------------------------------------------------- */

/* Limits on one request; every one must be at least 1. Lengths count
 * bytes: max_line_length the bytes of one line without its line end,
 * max_request_size every byte of the request including line ends and the
 * final empty line. */
struct attr_limits {
	size_t max_line_length;
	size_t max_attributes;
	size_t max_request_size;
};

/* Sensible limits for internal traffic: 64 KiB lines (a long recipient
 * list or a header value), 1000 attributes, 1 MiB per request. */
#define ATTR_LIMITS_DEFAULT \
	{ \
		.max_line_length = 65536, .max_attributes = 1000, .max_request_size = 1024 * 1024 \
	}

enum attr_parse_status {
	ATTR_PARSE_NEED_MORE, /* every byte was used; feed the next ones */
	ATTR_PARSE_DONE, /* one complete request; take it */
	ATTR_PARSE_ERROR, /* malformed request; see attr_parser_error() */
};

struct attr_parser;

/* A parser with the given limits (copied). */
struct attr_parser *attr_parser_new(const struct attr_limits *limits);
/* Free *parserp (and any request not taken) and set it to NULL; no-op on
 * NULL. */
void attr_parser_destroy(struct attr_parser **parserp);

/* Feed len bytes of the stream. *consumed_r is set to the bytes used:
 *  - NEED_MORE: all of them (kept in the parser as needed);
 *  - DONE: up to and including the empty line that ended the request;
 *    the rest of data belongs to the next request and must be fed again
 *    after attr_parser_reset();
 *  - ERROR: up to and including the byte where the error was found.
 * The result does not depend on how the stream is split into calls: one
 * byte at a time gives the same requests and errors as one big buffer.
 * Once DONE or ERROR is returned, feeding again without a reset is a
 * program bug (panic). After ERROR the stream position inside the
 * request is lost: a server replies with an error and closes the
 * connection. */
enum attr_parse_status attr_parser_feed(struct attr_parser *parser, const void *data, size_t len,
                                        size_t *consumed_r);
/* After DONE: the request; the caller owns it (attr_list_destroy). Later
 * calls before the next DONE return NULL. */
struct attr_list *attr_parser_take(struct attr_parser *parser);
/* After ERROR: what was wrong and where, e.g. "request line 3: missing '='
 * in \"foo\"". Owned by the parser, valid until the next reset. NULL when
 * no error happened. */
const char *attr_parser_error(const struct attr_parser *parser);
/* Forget the current request (complete, partial or failed) and any error,
 * ready for the next one. */
void attr_parser_reset(struct attr_parser *parser);

#endif
