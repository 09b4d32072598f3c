/* table_socketmap.c - socketmap:, Sendmail's socket map protocol (Postfix
 * socketmap_table(5)), as postsrsd and other lookup daemons speak it.
 *
 * "socketmap:inet:127.0.0.1:10001:forward" or
 * "socketmap:unix:/run/postsrsd/socket:forward": the text after the last
 * colon is the map name sent with every request. A request is the
 * netstring "LEN:name key,"; the reply is one netstring holding
 * "OK value", "NOTFOUND ", "TEMP reason", "TIMEOUT reason" or
 * "PERM reason". OK is found, NOTFOUND not found; every other reply, a
 * malformed one, one over SOCKETMAP_REPLY_MAX bytes, a server that cannot
 * be reached or does not answer within TABLE_NET_TIMEOUT_MS is a
 * temporary failure naming the server and its reason (Postfix treats
 * PERM as a lookup error too, which defers the mail).
 *
 * Keys are sent as given (no case folding: the server decides, as with
 * Postfix, where socketmap is a pattern table). Remote: cached and run
 * on the worker pool; one connection per table object, kept open, and a
 * request that fails on a kept connection (the server closed it while
 * idle) is sent once more on a new one.
 */
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "table/table.h"
#include "table/table_backends.h"
#include "table/table_net.h"

/* Postfix's socketmap_max_reply_size. */
#define SOCKETMAP_REPLY_MAX 100000

struct table_socketmap {
	struct table t;
	struct table_net net;
	char *map; /* the name sent in requests */
};

static int socketmap_open(struct table *t, const char *name, const struct table_open_context *ctx,
                          str_t *error)
{
	struct table_socketmap *s = (struct table_socketmap *)t;
	const char *colon = strrchr(name, ':');
	char *endpoint;
	int rc;

	(void)ctx;
	s->net.fd = -1;
	if (colon == NULL || colon[1] == '\0' || colon == name) {
		str_appendf(
		        error,
		        "bad table name \"socketmap:%s\": need socketmap:inet:host:port:name or "
		        "socketmap:unix:/path:name",
		        name);
		return -1;
	}
	endpoint = xstrndup(name, (size_t)(colon - name));
	rc = table_net_init(&s->net, endpoint, false, error);
	free(endpoint);
	if (rc < 0)
		return -1;
	s->map = xstrdup(colon + 1);
	return 0;
}

/* Parse one netstring from the start of in: 1 with *data_r, *len_r and
 * *used_r, 0 when more bytes are needed, -1 when malformed. */
static int netstring(const str_t *in, const char **data_r, size_t *len_r, size_t *used_r)
{
	size_t i = 0, len = 0;

	while (i < in->len && in->buf[i] >= '0' && in->buf[i] <= '9') {
		if (i >= 6)
			return -1; /* longer than SOCKETMAP_REPLY_MAX can be */
		len = len * 10 + (size_t)(in->buf[i] - '0');
		i++;
	}
	if (i == in->len)
		return 0;
	if (i == 0 || in->buf[i] != ':' || len > SOCKETMAP_REPLY_MAX)
		return -1;
	if (in->len < i + 1 + len + 1)
		return 0;
	if (in->buf[i + 1 + len] != ',')
		return -1;
	*data_r = in->buf + i + 1;
	*len_r = len;
	*used_r = i + 1 + len + 1;
	return 1;
}

/* One request/reply exchange. 0 with the reply in reply, -1 with a
 * message (*got_bytes: whether any reply bytes had arrived). */
static int exchange(struct table_socketmap *s, const str_t *req, str_t *reply, bool *got_bytes,
                    str_t *error)
{
	const char *data;
	size_t len, used;

	*got_bytes = false;
	if (table_net_connect(&s->net, error) < 0)
		return -1;
	if (table_net_write(&s->net, req->buf, req->len, error) < 0)
		return -1;
	for (;;) {
		int rc = netstring(&s->net.in, &data, &len, &used);

		if (rc > 0)
			break;
		if (rc < 0) {
			str_appendf(error, "%s: malformed reply (not a netstring)", s->net.desc);
			table_net_close(&s->net);
			return -1;
		}
		if (table_net_read(&s->net, SOCKETMAP_REPLY_MAX + 16, error) < 0)
			return -1;
		*got_bytes = true;
	}
	str_reset(reply);
	str_append_n(reply, data, len);
	/* keep what follows (nothing, from a well-behaved server) */
	memmove(s->net.in.buf, s->net.in.buf + used, s->net.in.len - used);
	str_truncate(&s->net.in, s->net.in.len - used);
	return 0;
}

static void socketmap_lookup(struct table *t, const char *key, struct table_result *r)
{
	struct table_socketmap *s = (struct table_socketmap *)t;
	str_t req, reply, why;
	bool got_bytes, was_open = s->net.fd >= 0;
	int rc;

	str_init(&req);
	str_init(&reply);
	str_init(&why);
	str_appendf(&req, "%zu:%s %s,", strlen(s->map) + 1 + strlen(key), s->map, key);
	table_net_begin(&s->net);
	rc = exchange(s, &req, &reply, &got_bytes, &why);
	if (rc < 0 && was_open && !got_bytes) {
		/* The server may have closed a connection kept from before:
		 * try once more on a new one (Postfix does the same). */
		str_reset(&why);
		rc = exchange(s, &req, &reply, &got_bytes, &why);
	}
	if (rc < 0) {
		r->status = TABLE_TEMPFAIL;
		str_appendf(&r->error, "%s: %s", t->spec, str_c(&why));
	} else if (strncmp(str_c(&reply), "OK ", 3) == 0 || strcmp(str_c(&reply), "OK") == 0) {
		r->status = TABLE_FOUND;
		str_set(&r->value, reply.len > 3 ? reply.buf + 3 : "");
	} else if (strncmp(str_c(&reply), "NOTFOUND", 8) == 0 &&
	           (reply.len == 8 || reply.buf[8] == ' ')) {
		r->status = TABLE_NOTFOUND;
	} else {
		const char *sp = memchr(reply.buf, ' ', reply.len);
		size_t wlen = sp != NULL ? (size_t)(sp - reply.buf) : reply.len;

		r->status = TABLE_TEMPFAIL;
		if ((wlen == 4 &&
		     (memcmp(reply.buf, "TEMP", 4) == 0 || memcmp(reply.buf, "PERM", 4) == 0)) ||
		    (wlen == 7 && memcmp(reply.buf, "TIMEOUT", 7) == 0))
			str_appendf(&r->error, "%s: %s: server said %.*s: %.200s", t->spec,
			            s->net.desc, (int)wlen, reply.buf, sp != NULL ? sp + 1 : "");
		else
			str_appendf(&r->error, "%s: %s: malformed reply \"%.100s\"", t->spec,
			            s->net.desc, str_c(&reply));
	}
	str_free(&req);
	str_free(&reply);
	str_free(&why);
}

static void socketmap_close(struct table *t)
{
	struct table_socketmap *s = (struct table_socketmap *)t;

	table_net_free(&s->net);
	xfree(&s->map);
}

const struct table_backend table_backend_socketmap = {
        .type = "socketmap",
        .flags = TABLE_F_PATTERN | TABLE_F_REMOTE,
        .size = sizeof(struct table_socketmap),
        .open = socketmap_open,
        .lookup = socketmap_lookup,
        .close = socketmap_close,
};
