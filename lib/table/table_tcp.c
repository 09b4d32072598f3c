/* table_tcp.c - tcp:host:port, Postfix's tcp_table(5) client.
 *
 * A request is the line "get KEY\n", the key %XX-encoded (every byte that
 * is not printable ASCII, white space and '%' itself, as Postfix's
 * hex_quote()). The server answers one line: "200 VALUE" (found; VALUE
 * %XX-decoded), "500 TEXT" (not found) or "400 TEXT" (temporary error).
 * Anything else, a line over TCP_REPLY_MAX bytes, a server that cannot be
 * reached or does not answer within TABLE_NET_TIMEOUT_MS is a temporary
 * failure naming the server.
 *
 * Keys are sent as given (Postfix's tcp: is a pattern table: the server
 * decides about case). Remote: cached and run on the worker pool; one
 * connection per table object, kept open between lookups; a request that
 * fails on a kept connection before any reply byte is sent once more on
 * a new one.
 */
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/parse.h"
#include "table/table.h"
#include "table/table_backends.h"
#include "table/table_net.h"

/* Longest reply line (Postfix reads at most tcp_table's 100000 bytes too). */
#define TCP_REPLY_MAX 100000

struct table_tcp {
	struct table t;
	struct table_net net;
};

static int tcp_open(struct table *t, const char *name, const struct table_open_context *ctx,
                    str_t *error)
{
	struct table_tcp *tt = (struct table_tcp *)t;

	(void)ctx;
	tt->net.fd = -1;
	if (strncmp(name, "unix:", 5) == 0 || strncmp(name, "inet:", 5) == 0 ||
	    table_net_init(&tt->net, name, true, error) < 0) {
		if (error->len == 0)
			str_appendf(error, "bad table name \"tcp:%s\": need tcp:host:port", name);
		return -1;
	}
	return 0;
}

/* %XX-decode in[0..len) into out; -1 on a bad escape. */
static int unquote(const char *in, size_t len, str_t *out)
{
	str_reset(out);
	for (size_t i = 0; i < len; i++) {
		if (in[i] == '%') {
			int hi, lo;

			if (i + 2 >= len)
				return -1;
			hi = parse_hex_digit(in[i + 1]);
			lo = parse_hex_digit(in[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			str_append_c(out, (char)(hi * 16 + lo));
			i += 2;
		} else {
			str_append_c(out, in[i]);
		}
	}
	return 0;
}

/* "get KEY\n" with Postfix's hex_quote(). */
static void request(const char *key, str_t *req)
{
	str_set(req, "get ");
	for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++) {
		if (*p != '%' && *p > ' ' && *p < 127)
			str_append_c(req, (char)*p);
		else
			str_appendf(req, "%%%02X", *p);
	}
	str_append_c(req, '\n');
}

/* One exchange: 0 with the reply line (without its newline) in line. */
static int exchange(struct table_tcp *tt, const str_t *req, str_t *line, bool *got_bytes,
                    str_t *error)
{
	const char *nl;

	*got_bytes = false;
	if (table_net_connect(&tt->net, error) < 0 ||
	    table_net_write(&tt->net, req->buf, req->len, error) < 0)
		return -1;
	while ((nl = memchr(tt->net.in.buf != NULL ? tt->net.in.buf : "", '\n', tt->net.in.len)) ==
	       NULL) {
		if (table_net_read(&tt->net, TCP_REPLY_MAX + 1, error) < 0)
			return -1;
		*got_bytes = true;
	}
	{
		size_t used = (size_t)(nl - tt->net.in.buf) + 1;
		size_t len = used - 1;

		if (len > 0 && tt->net.in.buf[len - 1] == '\r')
			len--;
		str_reset(line);
		str_append_n(line, tt->net.in.buf, len);
		memmove(tt->net.in.buf, tt->net.in.buf + used, tt->net.in.len - used);
		str_truncate(&tt->net.in, tt->net.in.len - used);
	}
	return 0;
}

static void tcp_lookup(struct table *t, const char *key, struct table_result *r)
{
	struct table_tcp *tt = (struct table_tcp *)t;
	bool got_bytes, was_open = tt->net.fd >= 0;
	str_t req, line, why;
	int rc;

	str_init(&req);
	str_init(&line);
	str_init(&why);
	request(key, &req);
	table_net_begin(&tt->net);
	rc = exchange(tt, &req, &line, &got_bytes, &why);
	if (rc < 0 && was_open && !got_bytes) {
		/* a kept connection the server closed while idle: once more */
		str_reset(&why);
		rc = exchange(tt, &req, &line, &got_bytes, &why);
	}
	if (rc < 0) {
		r->status = TABLE_TEMPFAIL;
		str_appendf(&r->error, "%s: %s", t->spec, str_c(&why));
	} else if (line.len >= 3 && memcmp(line.buf, "200", 3) == 0 &&
	           (line.len == 3 || line.buf[3] == ' ')) {
		const char *v = line.len > 4 ? line.buf + 4 : "";
		size_t vlen = line.len > 4 ? line.len - 4 : 0;

		if (unquote(v, vlen, &r->value) < 0) {
			r->status = TABLE_TEMPFAIL;
			str_appendf(&r->error,
			            "%s: %s: malformed %%XX encoding in reply \"%.100s\"", t->spec,
			            tt->net.desc, str_c(&line));
		} else {
			r->status = TABLE_FOUND;
		}
	} else if (line.len >= 3 && memcmp(line.buf, "500", 3) == 0 &&
	           (line.len == 3 || line.buf[3] == ' ')) {
		r->status = TABLE_NOTFOUND;
	} else if (line.len >= 3 && memcmp(line.buf, "400", 3) == 0 &&
	           (line.len == 3 || line.buf[3] == ' ')) {
		r->status = TABLE_TEMPFAIL;
		str_appendf(&r->error, "%s: %s: server said \"%.200s\"", t->spec, tt->net.desc,
		            str_c(&line));
	} else {
		r->status = TABLE_TEMPFAIL;
		table_net_close(&tt->net);
		str_appendf(&r->error, "%s: %s: malformed reply \"%.100s\"", t->spec, tt->net.desc,
		            str_c(&line));
	}
	str_free(&req);
	str_free(&line);
	str_free(&why);
}

static void tcp_close(struct table *t)
{
	struct table_tcp *tt = (struct table_tcp *)t;

	table_net_free(&tt->net);
}

const struct table_backend table_backend_tcp = {
        .type = "tcp",
        .flags = TABLE_F_PATTERN | TABLE_F_REMOTE,
        .size = sizeof(struct table_tcp),
        .open = tcp_open,
        .lookup = tcp_lookup,
        .close = tcp_close,
};
