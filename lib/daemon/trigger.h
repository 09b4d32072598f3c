/* trigger.h - wake-up sockets: "there is work" pokes between daemons.
 *
 * Used by pickup (public/pickup, poked by sendmail), qmgr (public/qmgr,
 * poked by smtpd and pickup after each queued message and by `postern
 * queue flush`) and master (which binds every unix service's socket).
 *
 * A trigger is a connection to a unix stream socket carrying one byte
 * (TRIGGER_*) and nothing else. The poker never blocks and ignores every
 * failure: each daemon that takes triggers also scans its directory on a
 * timer, so a lost poke only makes a message late, never lost.
 */
#ifndef POSTERN_TRIGGER_H
#define POSTERN_TRIGGER_H

#include <sys/types.h>

#include "base/str.h"

#define TRIGGER_WAKEUP 'W' /* new work in incoming/ or maildrop/ */
#define TRIGGER_FLUSH 'F' /* qmgr: scan deferred/ now (postqueue -f) */

/* Bind a non-blocking unix stream socket at path with mode (replacing a
 * stale socket file), and listen. The descriptor, or -1 with "bind PATH:
 * ..." appended to error. */
int unix_listen(const char *path, mode_t mode, int backlog, str_t *error);

/* Poke the socket queue_directory/RELATIVE ("public/qmgr") with byte.
 * Returns 0 when the byte was sent, -1 otherwise (errno set); callers may
 * ignore the result. */
int trigger_send(const char *queue_directory, const char *relative, char byte);

/* Read the trigger bytes a poker sent on an accepted, non-blocking
 * connection and close it; the bytes seen are ORed into a mask of
 * TRIGGER_MASK(byte) values (unknown bytes are ignored). For servers that
 * read as soon as the connection is accepted; a byte still in flight is
 * simply not seen (the connection itself is the wake-up). */
#define TRIGGER_MASK(byte) ((byte) == TRIGGER_FLUSH ? 2u : 1u)
unsigned trigger_accept_all(int listen_fd);

#endif
