/* delivery_request.h - the agent side of the qmgr/agent protocol
 * (delivery.h): a request checked and split into its recipient blocks,
 * and the reply block of one recipient.
 *
 * Used by server/local (and meant for every request-server agent: virtual,
 * pipe ... still parse by hand today), and by local's hand-over to another
 * transport (mailbox_transport, fallback_transport), which speaks the
 * client side with delivery_request_format().
 */
#ifndef POSTERN_DELIVERY_REQUEST_H
#define POSTERN_DELIVERY_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/attr.h"
#include "base/str.h"
#include "queue/queue_dir.h"

/* One recipient block. Strings point into the attr_list parsed. */
struct delivery_rcpt {
	const char *id; /* rcpt_id, echoed in the reply */
	const char *recipient;
	const char *orig; /* orig_recipient; = recipient when absent */
};

/* A checked request. Strings point into the attr_list parsed, which must
 * outlive it. */
struct delivery_request {
	enum queue_name queue; /* a message queue, never corrupt */
	const char *queue_id; /* queue_id_valid() */
	const char *nexthop; /* "" when absent */
	uint64_t time_active; /* microseconds since the epoch; 0 when absent */
	bool redelivery;
	struct delivery_rcpt *rcpts; /* owned */
	size_t n;
};

/* Check req (request_server.h has checked version and request_id) and
 * fill r: request=deliver, a message queue_name, a valid queue_id, a
 * numeric time_active when present, 1..DELIVERY_RCPT_MAX recipient blocks
 * each with a non-empty rcpt_id and recipient and no attribute given
 * twice. 0, or -1 with why appended (r is then empty). */
int delivery_request_parse(const struct attr_list *req, struct delivery_request *r, str_t *why);
/* Free r->rcpts; r is empty afterwards. */
void delivery_request_free(struct delivery_request *r);

/* Append one recipient's reply block (rcpt_id, action, status, reason). A
 * reason with a line break (never expected) is replaced by a note. */
void delivery_reply_rcpt(str_t *reply, const char *rcpt_id, const char *action, const char *status,
                         const char *reason);

/* Append a whole request (version, request_id 1, request=deliver ...) for
 * the recipient blocks of r, as qmgr sends it: for an agent that hands a
 * recipient on to another agent with the same queue file. */
void delivery_request_format(const struct delivery_request *r, str_t *out);

#endif
