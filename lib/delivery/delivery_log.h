/* delivery_log.h - the Postfix delivery log line, one per recipient:
 *
 *   ID: to=<a@example.org>, orig_to=<b@example.org>, relay=virtual,
 *       delay=0.44, delays=0.14/0.01/0/0.29, dsn=2.0.0,
 *       status=sent (delivered to maildir)
 *
 * Used by qmgr (outcomes decided without an agent: unknown recipients,
 * the error and discard transports, lookup failures, an unavailable
 * agent) and by every delivery agent. pflogsumm reads these lines: the
 * field order is fixed.
 */
#ifndef POSTERN_DELIVERY_LOG_H
#define POSTERN_DELIVERY_LOG_H

#include <stdint.h>
#include <sys/time.h>

#include "base/str.h"

/* Microseconds since the epoch. */
uint64_t delivery_now_usec(void);

/* The moments behind delay= and delays=a/b/c/d, in microseconds since the
 * epoch; a moment that is 0 takes the value of the one before it. */
struct delivery_times {
	uint64_t arrival; /* queued by smtpd/pickup */
	uint64_t active; /* moved to active by qmgr */
	uint64_t agent_start; /* the agent started on it (or qmgr decided) */
	uint64_t connected; /* connection set up (local agents: = agent_start) */
	uint64_t done; /* outcome known */
	/* The smtp client: the how-manieth delivery on this connection; from
	 * 2 on it is logged as conn_use=N after relay=, as Postfix does. */
	unsigned conn_use;
};

/* A duration (microseconds) as Postfix writes it: "0", "0.04", "5.5", "12". */
void delivery_format_usec(uint64_t usec, str_t *out);

/* Log the line above with log_info. orig_to is left out when NULL or equal
 * to to; reason may be NULL (then no parenthesis). status is "sent",
 * "deferred", "bounced" (or "expired"). */
void delivery_log(const char *queue_id, const char *to, const char *orig_to, const char *relay,
                  const struct delivery_times *times, const char *dsn, const char *status,
                  const char *reason);

#endif
