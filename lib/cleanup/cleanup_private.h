/* cleanup_private.h - state shared by the cleanup modules.
 *
 * cleanup.c (settings, envelope, finish), cleanup_message.c (header and
 * body processing, MIME structure, missing headers), cleanup_checks.c
 * (header_checks/body_checks actions) and cleanup_addr.c (header address
 * rewriting and sendmail -t extraction). Not for use outside lib/cleanup.
 */
#ifndef POSTERN_CLEANUP_PRIVATE_H
#define POSTERN_CLEANUP_PRIVATE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/str.h"
#include "base/strv.h"
#include "cleanup/cleanup.h"
#include "message/header.h"
#include "queue/queue_file.h"
#include "table/maps.h"

/* Headers in one header block (message, part or attached message) beyond
 * which the rest of the block is treated as body. Memory is bounded by
 * header_size_limit anyway (one header is held at a time); this bounds
 * the work done per message on header_checks. */
#define CLEANUP_HEADER_COUNT_MAX 1000
/* Recipients taken from headers by sendmail -t, at most (Postfix's
 * extract_recipient_limit default); more are skipped with a warning. */
#define CLEANUP_EXTRACT_MAX 10240

struct cleanup_settings {
	struct maps *header_checks;
	struct maps *mime_header_checks;
	struct maps *nested_header_checks;
	struct maps *body_checks;
	uint64_t header_size_limit;
	uint64_t body_checks_size_limit;
	uint64_t message_size_limit; /* 0: none */
	int64_t hopcount_limit;
	int64_t mime_nesting_limit;
	bool always_add_missing_headers;
	bool disable_mime;
	bool append_at_myorigin;
	bool append_dot_mydomain;
	char *myhostname;
	char *myorigin;
	char *mydomain;
	char *undisclosed_recipients_header;
	strv_t drop_headers;
	char *content_filter; /* content_filter, NULL when empty */
	unsigned overrides; /* receive_override_options: CLEANUP_NO_* */
};

struct cleanup_rcpt {
	char *address;
	char *orcpt; /* NULL for none */
	unsigned notify;
};

/* Which header block the current header belongs to (Postfix's
 * MIME_HDR_PRIMARY, MIME_HDR_MULTIPART, MIME_HDR_NESTED). */
enum cleanup_block {
	CLEANUP_BLOCK_PRIMARY,
	CLEANUP_BLOCK_MULTIPART,
	CLEANUP_BLOCK_NESTED,
	CLEANUP_BLOCK_BODY, /* not in a header block */
};

struct cleanup {
	const struct cleanup_settings *set;
	unsigned flags;
	struct queue_writer *w;
	const struct queue_dir *qd; /* for the wake-up of qmgr after commit */
	char id[QUEUE_ID_SIZE];

	/* First failure wins; CLEANUP_QUEUED means none so far. */
	enum cleanup_status status;
	str_t reply;
	bool discard; /* DISCARD: nothing is written any more */
	bool hold;
	bool checks_off; /* CLEANUP_F_NO_CHECKS, PASS, or after a final action */

	/* Envelope, for logs and the tail records. */
	char *sender;
	struct cleanup_rcpt *rcpts;
	size_t nrcpt, rcpt_cap;
	strv_t extracted; /* -t: from To/Cc/Bcc */
	strv_t extracted_resent; /* -t: from Resent-To/Cc/Bcc */
	char *client_name, *client_address, *helo_name, *protocol, *full_name;
	char *filter;
	char *redirect;
	strv_t prepend; /* cleanup_prepend_header() lines not yet written */

	/* Content. */
	enum cleanup_block block;
	bool started; /* first content line seen: prepends written */
	bool in_piece; /* the previous piece had more = true */
	bool piece_is_header; /* ...and it belonged to the held header */
	bool piece_written; /* part of the current body line was stored */
	str_t hdr; /* the held logical header, lines joined by "\n" */
	bool have_hdr;
	size_t block_headers; /* headers seen in the current block */
	unsigned seen[HEADER_ID_COUNT]; /* primary headers by id */
	bool seen_resent;
	int64_t hops;
	uint64_t part_bytes; /* body bytes of the current part (body_checks) */
	/* MIME: boundary stack and what the current block's Content-Type said. */
	strv_t boundaries;
	size_t nesting; /* boundaries + attached messages entered */
	str_t block_boundary;
	bool block_rfc822;
	str_t tmp, tmp2, type, subtype;
};

/* Record the first failure (later ones are ignored): status with reply. */
void cleanup_fail(struct cleanup *c, enum cleanup_status status, const char *reply);
/* Record a write failure with errno err. */
void cleanup_fail_write(struct cleanup *c, int err);
/* True while content should still be processed and written. */
bool cleanup_active(const struct cleanup *c);
/* Write content bytes (no-op after a failure or DISCARD); enforces
 * message_size_limit. */
void cleanup_write(struct cleanup *c, const char *data, size_t len);
/* Add a recipient to the envelope (duplicates removed at finish). */
void cleanup_rcpt_add(struct cleanup *c, const char *address, const char *orcpt, unsigned notify);

/* cleanup_message.c */
void cleanup_message_line(struct cleanup *c, const char *line, size_t len, bool more);
/* End of content: the held header and the header block are finished. */
void cleanup_message_end(struct cleanup *c);

/* cleanup_checks.c: run maps on text (a header, lines joined by "\n", or
 * a body line). "what" is "header" or "body" for the log. Returns true
 * when the text is to be dropped (IGNORE, STRIP); text may have been
 * replaced (REPLACE); PREPEND text is written before it at once. */
bool cleanup_check(struct cleanup *c, struct maps *m, const char *what, str_t *text);
/* A log line for an action, in Postfix's format:
 * "ID: action: what TEXT from client; from=<s> to=<r> proto=P helo=<h>: extra" */
void cleanup_act_log(struct cleanup *c, const char *action, const char *what, const char *text,
                     const char *extra);

/* cleanup_addr.c */
/* Rewrite per append_at_myorigin / append_dot_mydomain every address of
 * the address-list header in hdr ("Name: value"), in place. A value that
 * does not parse is left alone. */
void cleanup_rewrite_header(struct cleanup *c, str_t *hdr);
/* Append the addresses of the address-list header hdr to out (internal
 * form, rewritten like local header addresses). */
void cleanup_extract_header(struct cleanup *c, const str_t *hdr, strv_t *out);
/* One address rewritten per append_at_myorigin / append_dot_mydomain,
 * appended to out. */
void cleanup_rewrite_addr(const struct cleanup_settings *set, const char *addr, size_t len,
                          str_t *out);

#endif
