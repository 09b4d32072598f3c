/* db_quota.c - write a mailbox's usage into quota_usage (see db_quota.h).
 *
 * Used by the virtual delivery agent after each delivery to a mailbox
 * with a quota. Failure is reported, never fatal: the caller logs a
 * warning and the delivery stands.
 */
#include "db/db_quota.h"

#include <inttypes.h>
#include <stdio.h>

/* The upsert per dialect (enum sql_type order). Why not one text: MariaDB
 * has no ON CONFLICT, SQLite and PostgreSQL no ON DUPLICATE KEY. */
static const char *const q_usage_set[] = {
        [SQL_SQLITE] = "INSERT INTO quota_usage (username, bytes, messages) VALUES (?, ?, ?) "
                       "ON CONFLICT (username) DO UPDATE SET bytes = excluded.bytes, "
                       "messages = excluded.messages",
        [SQL_MYSQL] = "INSERT INTO quota_usage (username, bytes, messages) VALUES (?, ?, ?) "
                      "ON DUPLICATE KEY UPDATE bytes = VALUES(bytes), messages = VALUES(messages)",
        [SQL_PGSQL] = "INSERT INTO quota_usage (username, bytes, messages) VALUES (?, ?, ?) "
                      "ON CONFLICT (username) DO UPDATE SET bytes = EXCLUDED.bytes, "
                      "messages = EXCLUDED.messages",
};

enum sql_status db_quota_usage_set(struct sql_conn *c, const char *username, int64_t bytes,
                                   int64_t messages, str_t *error)
{
	char b[24], m[24];
	const char *params[3] = {username, b, m};
	str_t why;
	enum sql_status st;

	snprintf(b, sizeof(b), "%" PRId64, bytes);
	snprintf(m, sizeof(m), "%" PRId64, messages);
	str_init(&why);
	st = sql_query(c, q_usage_set[sql_conn_type(c)], params, 3, 0, NULL, &why);
	if (st != SQL_OK)
		str_appendf(error, "quota_usage for %s: %s", username, str_c(&why));
	str_free(&why);
	return st;
}
