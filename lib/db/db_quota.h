/* db_quota.h - the quota_usage table: bytes and messages per mailbox.
 *
 * The virtual delivery agent mirrors a Maildir's Maildir++ usage
 * (maildirsize) here after each delivery, so that the web admin, smtpd's
 * RCPT-time check and Dovecot's dict quota (the layout of sql/README.md)
 * read current numbers without walking the Maildir. maildirsize stays
 * the authority: a row that could not be written is corrected by the next
 * delivery.
 */
#ifndef POSTERN_DB_QUOTA_H
#define POSTERN_DB_QUOTA_H

#include <stdint.h>

#include "base/str.h"
#include "sql/sql.h"

/* Set the row of username (the mailbox address) to bytes and messages,
 * inserting it when missing: one parameterised upsert in the dialect of
 * c (SQLite and PostgreSQL ON CONFLICT, MariaDB ON DUPLICATE KEY), so
 * running it twice, or retried by sql_query after a lost connection,
 * gives the same row. SQL_OK, or SQL_TEMPFAIL / SQL_FAIL with a message
 * naming the mailbox and the server appended to error. */
enum sql_status db_quota_usage_set(struct sql_conn *c, const char *username, int64_t bytes,
                                   int64_t messages, str_t *error);

#endif
