/* listen.h - binding inet listening sockets, for master and for daemons
 * run by hand.
 *
 * Used by master (master_service.c: every inet service of master.cf,
 * before children are started) and by the event-server skeleton
 * (event_server.c: smtpd started without master). Unix sockets:
 * unix_listen() in trigger.h.
 */
#ifndef POSTERN_LISTEN_H
#define POSTERN_LISTEN_H

#include <stddef.h>

#include "base/str.h"

/* Resolve host:port (host NULL: every local address; port a number or
 * a name from /etc/services) and bind and listen on one close-on-exec
 * socket per address found (IPv6 sockets are V6ONLY; SO_REUSEADDR set).
 * An IPv6 address that the host lacks is skipped when host is NULL.
 * Returns 0 with the descriptors in *fds_r (an array the caller frees)
 * and their number in *n_r (at least 1), or -1 with "service NAME: ..."
 * appended to error and nothing left open. */
int listen_inet(const char *service, const char *host, const char *port, int backlog, int **fds_r,
                size_t *n_r, str_t *error);

#endif
