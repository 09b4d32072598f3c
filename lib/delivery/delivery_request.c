/* delivery_request.c - parse a qmgr delivery request and write reply
 * blocks (see delivery_request.h and the protocol in delivery.h).
 *
 * Failure: every malformed request gives -1 with a text naming the
 * attribute and what was expected; the agent answers it with error=TEXT,
 * which qmgr turns into a deferral of every recipient.
 */
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/parse.h"
#include "delivery/delivery.h"
#include "delivery/delivery_request.h"
#include "queue/queue_id.h"

static int parse_blocks(const struct attr_list *req, struct delivery_request *r, str_t *why)
{
	struct delivery_rcpt *b = NULL;
	size_t n = 0;

	for (size_t i = 0; i < req->n; i++) {
		const struct attr *a = &req->attrs[i];
		bool orig;

		if (strcmp(a->name, DELIVERY_ATTR_RCPT_ID) == 0) {
			if (n == DELIVERY_RCPT_MAX) {
				str_appendf(why, "more than %d recipients", DELIVERY_RCPT_MAX);
				goto fail;
			}
			if (a->value[0] == '\0') {
				str_append(why, "empty rcpt_id");
				goto fail;
			}
			b = xreallocarray(b, n + 1, sizeof(*b));
			b[n++] = (struct delivery_rcpt){.id = a->value};
			continue;
		}
		orig = strcmp(a->name, DELIVERY_ATTR_ORIG_RECIPIENT) == 0;
		if (!orig && strcmp(a->name, DELIVERY_ATTR_RECIPIENT) != 0)
			continue;
		if (n == 0) {
			str_appendf(why, "%s before the first rcpt_id", a->name);
			goto fail;
		}
		if ((orig ? b[n - 1].orig : b[n - 1].recipient) != NULL) {
			str_appendf(why, "rcpt_id %s: %s given twice", b[n - 1].id, a->name);
			goto fail;
		}
		if (orig)
			b[n - 1].orig = a->value;
		else
			b[n - 1].recipient = a->value;
	}
	if (n == 0) {
		str_append(why, "no recipients (rcpt_id)");
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		if (b[i].recipient == NULL || b[i].recipient[0] == '\0') {
			str_appendf(why, "rcpt_id %s: no recipient", b[i].id);
			goto fail;
		}
		if (b[i].orig == NULL || b[i].orig[0] == '\0')
			b[i].orig = b[i].recipient;
	}
	r->rcpts = b;
	r->n = n;
	return 0;
fail:
	free(b);
	return -1;
}

int delivery_request_parse(const struct attr_list *req, struct delivery_request *r, str_t *why)
{
	const char *value = attr_get(req, DELIVERY_ATTR_REQUEST);

	memset(r, 0, sizeof(*r));
	if (value == NULL || strcmp(value, DELIVERY_REQUEST) != 0) {
		str_appendf(why, "unknown request \"%s\" (expected %s)", value != NULL ? value : "",
		            DELIVERY_REQUEST);
		return -1;
	}
	value = attr_get(req, DELIVERY_ATTR_QUEUE_NAME);
	if (value == NULL || queue_name_parse(value, &r->queue) < 0 ||
	    (int)r->queue >= QUEUE_MESSAGE_QUEUES || r->queue == QUEUE_CORRUPT) {
		str_appendf(why, "bad queue_name \"%s\"", value != NULL ? value : "");
		return -1;
	}
	value = attr_get(req, DELIVERY_ATTR_QUEUE_ID);
	if (value == NULL || !queue_id_valid(value)) {
		str_appendf(why, "bad queue_id \"%s\"", value != NULL ? value : "");
		return -1;
	}
	r->queue_id = value;
	value = attr_get(req, DELIVERY_ATTR_TIME_ACTIVE);
	if (value != NULL && parse_uint64(value, 0, INT64_MAX, &r->time_active) < 0) {
		str_appendf(why, "bad %s \"%s\"", DELIVERY_ATTR_TIME_ACTIVE, value);
		return -1;
	}
	value = attr_get(req, DELIVERY_ATTR_NEXTHOP);
	r->nexthop = value != NULL ? value : "";
	value = attr_get(req, DELIVERY_ATTR_REDELIVERY);
	r->redelivery = value != NULL && strcmp(value, "1") == 0;
	if (parse_blocks(req, r, why) < 0) {
		memset(r, 0, sizeof(*r));
		return -1;
	}
	return 0;
}

void delivery_request_free(struct delivery_request *r)
{
	free(r->rcpts);
	memset(r, 0, sizeof(*r));
}

void delivery_reply_rcpt(str_t *reply, const char *rcpt_id, const char *action, const char *status,
                         const char *reason)
{
	const char *e;

	attr_put_str(reply, DELIVERY_ATTR_RCPT_ID, rcpt_id, &e);
	attr_put_str(reply, DELIVERY_ATTR_ACTION, action, &e);
	attr_put_str(reply, DELIVERY_ATTR_STATUS, status, &e);
	if (attr_put_str(reply, DELIVERY_ATTR_REASON, reason, &e) < 0)
		attr_put_str(reply, DELIVERY_ATTR_REASON,
		             "(reason not shown: it holds a line break)", &e);
}

void delivery_request_format(const struct delivery_request *r, str_t *out)
{
	const char *e;

	(void)attr_put_str(out, ATTR_VERSION, ATTR_PROTOCOL_VERSION, &e);
	(void)attr_put_uint(out, ATTR_REQUEST_ID, 1, &e);
	(void)attr_put_str(out, DELIVERY_ATTR_REQUEST, DELIVERY_REQUEST, &e);
	(void)attr_put_str(out, DELIVERY_ATTR_QUEUE_NAME, queue_name_str(r->queue), &e);
	(void)attr_put_str(out, DELIVERY_ATTR_QUEUE_ID, r->queue_id, &e);
	(void)attr_put_str(out, DELIVERY_ATTR_NEXTHOP, r->nexthop, &e);
	if (r->time_active > 0)
		(void)attr_put_uint(out, DELIVERY_ATTR_TIME_ACTIVE, r->time_active, &e);
	if (r->redelivery)
		(void)attr_put_str(out, DELIVERY_ATTR_REDELIVERY, "1", &e);
	for (size_t i = 0; i < r->n; i++) {
		(void)attr_put_str(out, DELIVERY_ATTR_RCPT_ID, r->rcpts[i].id, &e);
		(void)attr_put_str(out, DELIVERY_ATTR_RECIPIENT, r->rcpts[i].recipient, &e);
		(void)attr_put_str(out, DELIVERY_ATTR_ORIG_RECIPIENT, r->rcpts[i].orig, &e);
	}
	attr_end(out);
}
