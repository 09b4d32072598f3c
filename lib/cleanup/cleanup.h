/* cleanup.h - the message path between a receiver and the queue.
 *
 * smtpd (for every SMTP transaction) and pickup (for every sendmail
 * submission) hand a message to cleanup, which is Postfix's cleanup(8)
 * done in-process (DESIGN.md 2: no extra hop per message):
 *
 *   - the envelope (sender, recipients with DSN data, client attributes)
 *     and the actions restrictions decided (HOLD, DISCARD, FILTER,
 *     REDIRECT, PREPEND headers);
 *   - the content, line by line: header lines are unfolded and bounded
 *     (header_size_limit), checked with header_checks (and
 *     mime_header_checks / nested_header_checks for MIME part headers),
 *     body lines with body_checks (up to body_checks_size_limit);
 *     actions REJECT, DISCARD, HOLD, WARN, IGNORE, PREPEND, REPLACE,
 *     REDIRECT, FILTER, DUNNO, OK as header_checks(5) describes;
 *   - missing headers added (CLEANUP_F_LOCAL: local submission, or
 *     always_add_missing_headers = yes): Message-ID, Date, From; addresses
 *     in From/To/Cc/Sender/Reply-To rewritten per myorigin /
 *     append_dot_mydomain for local submissions;
 *   - sendmail -t: recipients taken from To/Cc/Bcc (and Resent-*), Bcc
 *     removed (CLEANUP_F_EXTRACT_RCPT);
 *   - the receiver's content_filter (main.cf, or the service's -o) and
 *     receive_override_options: the filter is recorded for qmgr unless a
 *     FILTER action names another; no_header_body_checks turns the
 *     checks above off, no_address_mappings is recorded for qmgr (which
 *     then skips virtual alias expansion);
 *   - the queue file written through queue_writer (queue_file.h) and
 *     committed durably: only when cleanup_finish() says
 *     CLEANUP_QUEUED may the receiver answer 250.
 *
 * Memory stays bounded whatever the message size: content streams to the
 * queue file; only one header (<= header_size_limit) is held at a time.
 *
 * Errors: every failure ends in a result with an SMTP reply and an
 * enhanced status code (a 4xx for anything temporary: disk full, I/O
 * error, a table that failed), and no partial queue file is left behind.
 * The receiver keeps feeding the rest of the content after a failure
 * (calls become no-ops) and reports once at the end.
 *
 * Lookups: header/body check tables are looked up synchronously (they are
 * meant to be regexp:/pcre: files in memory); a temporary failure of any
 * table is a 451 4.3.0 for the whole message.
 */
#ifndef POSTERN_CLEANUP_H
#define POSTERN_CLEANUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/str.h"
#include "base/strv.h"
#include "queue/queue_dir.h"
#include "queue/queue_file.h"

struct config;

/* Flags for cleanup_open(). */
enum {
	CLEANUP_F_LOCAL = 1 << 0, /* local submission (pickup, or smtpd from
	                           * local_header_rewrite_clients): add
	                           * missing headers, rewrite header addresses */
	CLEANUP_F_EXTRACT_RCPT = 1 << 1, /* sendmail -t */
	CLEANUP_F_BARE_LF_OK = 1 << 2, /* content lines came without CRLF
	                                * framing (pickup); informative */
	CLEANUP_F_NO_CHECKS = 1 << 3, /* skip header/body checks (a
	                               * receive_override_options style switch for
	                               * re-injection after a content filter) */
};

/* receive_override_options (Postfix's names), from
 * cleanup_settings_overrides(). */
enum {
	CLEANUP_NO_UNKNOWN_RCPT_CHECKS = 1 << 0, /* smtpd: no reject_unlisted_recipient */
	CLEANUP_NO_ADDRESS_MAPPINGS = 1 << 1, /* qmgr: no virtual alias expansion */
	CLEANUP_NO_HEADER_BODY_CHECKS = 1 << 2, /* no header_checks, body_checks ... */
	CLEANUP_NO_MILTERS = 1 << 3, /* accepted: postern runs no milters yet */
};

/* Outcome of a finished message. */
enum cleanup_status {
	CLEANUP_QUEUED, /* committed to incoming (or hold): answer 250 */
	CLEANUP_DISCARDED, /* DISCARD: answer 250 as if queued, nothing kept */
	CLEANUP_REJECTED, /* REJECT by a check or a limit: 5xx, nothing kept */
	CLEANUP_TEMPFAIL, /* disk full, I/O error, table failure: 4xx */
};

struct cleanup_result {
	enum cleanup_status status;
	/* The complete reply line for the client without CRLF, e.g.
	 * "250 2.0.0 Ok: queued as 4Zb2Lk0FqK01Tm",
	 * "550 5.7.1 message content rejected",
	 * "452 4.3.1 Insufficient system storage". */
	str_t reply;
	/* For the log: the queue the file went to (QUEUE_INCOMING or
	 * QUEUE_HOLD) and the final size in bytes. */
	enum queue_name queue;
	uint64_t size;
	size_t nrcpt;
};
void cleanup_result_init(struct cleanup_result *r);
void cleanup_result_free(struct cleanup_result *r);

/* Settings read once per process from main.cf (and master.cf -o): check
 * tables opened, limits parsed. -1 with a message naming the parameter
 * (and for a table file its line) on error. */
struct cleanup_settings;
int cleanup_settings_new(struct config *cfg, const char *config_dir,
                         struct cleanup_settings **set_r, str_t *error);
void cleanup_settings_destroy(struct cleanup_settings **setp);
/* The receive_override_options bits of set (CLEANUP_NO_*). */
unsigned cleanup_settings_overrides(const struct cleanup_settings *set);
/* Parse a receive_override_options value (a list of the names above)
 * into CLEANUP_NO_* bits: 0, or -1 with the unknown name in error. */
int cleanup_parse_overrides(const strv_t *names, unsigned *bits_r, str_t *error);

struct cleanup;

/* Start a message: reserves the queue ID (known from here on for the
 * "ID: client=..." log line and the Received header) and creates the
 * temporary queue file. -1 with a 4xx reply in *error
 * (queue_error_reply(): "452 4.3.1 Insufficient system storage" or "451
 * 4.3.0 Error: queue file write error") when the queue cannot be written.
 * Log lines (message-id=, reject:/warning:/hold:... from checks) go
 * through log.h under the process's own ident. */
int cleanup_open(const struct cleanup_settings *set, const struct queue_dir *qd, unsigned flags,
                 struct cleanup **c_r, str_t *error);
const char *cleanup_id(const struct cleanup *c);

/* Envelope. Addresses in internal form (address.h); "" is the null
 * sender. envid NULL for none. */
void cleanup_sender(struct cleanup *c, const char *sender, const char *envid,
                    enum queue_dsn_ret ret);
void cleanup_rcpt(struct cleanup *c, const char *address, const char *orcpt, unsigned notify);
void cleanup_attr(struct cleanup *c, const char *name, const char *value);

/* Actions decided before the content (access tables in smtpd): */
void cleanup_hold(struct cleanup *c, const char *reason); /* to the hold queue */
void cleanup_discard(struct cleanup *c, const char *reason); /* accept, keep nothing */
void cleanup_filter(struct cleanup *c, const char *transport_nexthop); /* FILTER */
void cleanup_redirect(struct cleanup *c, const char *address); /* REDIRECT: replaces recipients */
/* A header line (no CRLF) added before the message's own headers, after
 * any earlier prepended ones: smtpd's Received header first, then PREPEND
 * actions. Not subject to header_checks. */
void cleanup_prepend_header(struct cleanup *c, const char *line);

/* One content line, without its line ending, dot-unstuffed. A line
 * longer than the receiver's line_length_limit arrives in pieces: every
 * piece but the last has more = true (Postfix's REC_TYPE_CONT). Lines may
 * hold any bytes but NUL is not expected (smtpd refuses it). */
void cleanup_line(struct cleanup *c, const char *line, size_t len, bool more);

/* End of content: finish headers if the message had no body, add what is
 * missing, write recipients (after REDIRECT), commit the file to
 * incoming (or hold) durably, and fill result. The cleanup object is
 * freed either way; *cp set to NULL. */
void cleanup_finish(struct cleanup **cp, struct cleanup_result *result);

/* Give up (client went away, RSET): remove the temporary file. No-op on
 * NULL; *cp set to NULL. */
void cleanup_abort(struct cleanup **cp);

#endif
