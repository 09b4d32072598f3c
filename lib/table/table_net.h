/* table_net.h - the client connection of the socketmap: and tcp: tables.
 *
 * One stream connection to a lookup server, inet (host:port, IPv4 or
 * IPv6, names resolved with getaddrinfo) or unix (a socket path), opened
 * on first use and kept for the next lookups. Each lookup has one
 * deadline (table_net_begin): connecting, writing the request and reading
 * the reply together end with an error after TABLE_NET_TIMEOUT_MS, so a
 * server that answers a byte at a time cannot hold a lookup longer, and
 * replies are read into a bounded buffer. Any error closes the connection, so a late answer can never be
 * taken for the reply to the next request.
 *
 * Used from one thread at a time, like every table object (remote tables
 * run on table_async.h's workers). Errors are messages naming the server.
 */
#ifndef POSTERN_TABLE_NET_H
#define POSTERN_TABLE_NET_H

#include <stdbool.h>
#include <stddef.h>

#include "base/str.h"

/* Time limit of one lookup: Postfix's tcp_table default (its socketmap
 * waits 100 s; postern does not wait longer for one than the other). */
#define TABLE_NET_TIMEOUT_MS 10000

struct table_net {
	char *desc; /* "inet:host:port" or "unix:/path", for messages */
	char *host, *port; /* inet */
	char *path; /* unix */
	int fd; /* -1: not connected */
	bool reused; /* the connection served a lookup before */
	long long deadline_ms; /* of the lookup under way (CLOCK_MONOTONIC) */
	str_t in; /* bytes read and not yet used */
};

/* Set n up for "inet:host:port", "unix:/path", or, with bare_inet,
 * "host:port" ([host]:port for an IPv6 address). -1 with a message. */
int table_net_init(struct table_net *n, const char *endpoint, bool bare_inet, str_t *error);
void table_net_free(struct table_net *n);

/* Start a lookup: its deadline is TABLE_NET_TIMEOUT_MS from now. */
void table_net_begin(struct table_net *n);
/* Connect when not connected. -1 with a message. */
int table_net_connect(struct table_net *n, str_t *error);
/* Send all of data[0..len). -1 with a message (connection closed). */
int table_net_write(struct table_net *n, const void *data, size_t len, str_t *error);
/* Read more bytes into n->in, at most max bytes held in total. 0 when
 * some arrived, -1 with a message (timeout, closed by the server, the
 * buffer full, error; the connection closed). */
int table_net_read(struct table_net *n, size_t max, str_t *error);
/* Close the connection (the next lookup connects again). */
void table_net_close(struct table_net *n);

#endif
