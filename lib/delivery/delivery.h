/* delivery.h - the request qmgr sends a delivery agent, and the reply.
 *
 * Used by qmgr (server/qmgr, the client) and by every delivery agent
 * (virtual, local, pipe, smtp and lmtp: the servers; the request-server
 * agents parse it with delivery_request.h).
 *
 * TRANSPORT. A delivery agent is a master.cf service of type unix; master
 * binds its stream socket at queue_directory/private/NAME (public/NAME
 * when the private column says n) and hands it to the agent's processes
 * with "-l FD". A request-server agent (virtual, local, pipe) accepts one
 * connection at a time and serves its requests one after another until
 * the client closes it; the event-driven smtp/lmtp client serves many
 * connections at once, one delivery each. qmgr opens one connection per
 * delivery.
 *
 * ENCODING: attr.h ("name=value" lines, an empty line ends a request).
 * The first request on a connection carries version=ATTR_PROTOCOL_VERSION.
 *
 * REQUEST (qmgr -> agent)
 *   version=1                 first request on the connection only
 *   request_id=N              echoed in the reply
 *   request=deliver
 *   queue_name=active         the queue holding the file (always active)
 *   queue_id=ID               queue_id_valid(); the agent opens the file
 *                             itself (read only) for the envelope and
 *                             content, never a path from the request
 *   nexthop=TEXT              the transport's nexthop (may be empty)
 *   time_active=USEC          when qmgr moved the message to active,
 *                             microseconds since the epoch (for delays=)
 *   redelivery=1              optional: an earlier attempt may have
 *                             delivered this message already (a retry, or
 *                             qmgr restarted with it in active/); an agent
 *                             that can tell (virtual: maildir.h once_key)
 *                             reports such a delivery as sent without
 *                             writing a second copy
 *   cache=1                   optional: qmgr has more mail queued for
 *                             this destination; the smtp client keeps
 *                             the connection open for it
 *                             (smtp_connection_cache_on_demand)
 *   then one block per recipient, in order, each starting with rcpt_id=:
 *   rcpt_id=K                 qmgr's handle, echoed in the reply
 *   recipient=ADDR            the final address to deliver to (after
 *                             virtual alias expansion)
 *   orig_recipient=ADDR       the queue file's recipient it came from
 *                             (logged as orig_to= when it differs)
 *   rcpt_index=N              that recipient's index in the queue file
 *                             (its DSN NOTIFY and ORCPT, for agents that
 *                             pass them on: smtp, lmtp)
 *   At most DELIVERY_RCPT_MAX recipient blocks.
 *
 * REPLY (agent -> qmgr)
 *   request_id=N
 *   either error=TEXT         the request could not be handled at all
 *                             (bad request, queue file unreadable): qmgr
 *                             defers every recipient with TEXT
 *   or one block per recipient of the request, in any order:
 *   rcpt_id=K
 *   action=sent|deferred|bounced
 *   status=X.Y.Z              RFC 3463 code (2.x.x with sent, 4.x.x with
 *                             deferred, 5.x.x with bounced)
 *   reason=TEXT               "delivered to maildir", "unknown user: ..."
 *   dsn_action=relayed|none   optional, with sent: the success notice
 *                             (NOTIFY=SUCCESS) says "relayed" (the next
 *                             server takes no DSN), or none is sent (the
 *                             next server took NOTIFY and reports itself)
 *   remote_mta=HOST           optional: the server that answered, for the
 *                             notices' Remote-MTA field (smtp, lmtp)
 *   and, once, optionally:
 *   dest_status=down          the agent reached no server of the
 *                             destination (smtp, lmtp): qmgr narrows its
 *                             concurrency and, after
 *                             TRANSPORT_destination_concurrency_failed_cohort_limit
 *                             such deliveries at concurrency 1, suspends
 *                             it for minimal_backoff_time
 *
 * LOGGING. The agent logs each recipient's outcome itself, in Postfix's
 * format, as its own program ("virtual"):
 *   ID: to=<recipient>, orig_to=<orig>, relay=virtual, delay=1.2,
 *       delays=0.1/0.01/0/1.1, dsn=2.0.0, status=sent (delivered to maildir)
 * (orig_to only when it differs). delays = a/b/c/d: a arrival -> active,
 * b active -> agent start, c connection setup (0 for local agents),
 * d delivery; each with two decimals, as Postfix.
 *
 * DURABILITY. "sent" only after the mailbox file is fsync'd and in place;
 * qmgr records the recipient as done only after the reply. A connection
 * that closes before a recipient's block arrives (the agent crashed) is a
 * deferral for that recipient: mail is delivered at least once, never
 * lost. virtual names each Maildir file after the delivery (queue ID and
 * recipient), so such a retry finds the first copy instead of writing a
 * second one (lib/delivery/maildir.c, "at most once").
 */
#ifndef POSTERN_DELIVERY_H
#define POSTERN_DELIVERY_H

#include "base/attr.h"

#define DELIVERY_REQUEST "deliver"
#define DELIVERY_RCPT_MAX 1000

/* Attribute names. */
#define DELIVERY_ATTR_REQUEST "request"
#define DELIVERY_ATTR_QUEUE_NAME "queue_name"
#define DELIVERY_ATTR_QUEUE_ID "queue_id"
#define DELIVERY_ATTR_NEXTHOP "nexthop"
#define DELIVERY_ATTR_TIME_ACTIVE "time_active"
#define DELIVERY_ATTR_REDELIVERY "redelivery"
#define DELIVERY_ATTR_RCPT_ID "rcpt_id"
#define DELIVERY_ATTR_RECIPIENT "recipient"
#define DELIVERY_ATTR_ORIG_RECIPIENT "orig_recipient"
#define DELIVERY_ATTR_RCPT_INDEX "rcpt_index"
#define DELIVERY_ATTR_CACHE "cache"
#define DELIVERY_ATTR_ERROR ATTR_ERROR
#define DELIVERY_ATTR_ACTION "action"
#define DELIVERY_ATTR_STATUS "status"
#define DELIVERY_ATTR_REASON "reason"
#define DELIVERY_ATTR_DEST_STATUS "dest_status"
#define DELIVERY_ATTR_DSN_ACTION "dsn_action"
#define DELIVERY_ATTR_REMOTE_MTA "remote_mta"

/* Values of action=. */
#define DELIVERY_ACTION_SENT "sent"
#define DELIVERY_ACTION_DEFERRED "deferred"
/* How a deferral's reason starts when a table could not answer (the
 * database is down): qmgr then retries soon (QMGR_LOOKUP_RETRY), not
 * after the usual backoff. Postfix's wording. */
#define DELIVERY_LOOKUP_PROBLEM "table lookup problem"
#define DELIVERY_ACTION_BOUNCED "bounced"

#endif
