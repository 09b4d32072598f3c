/* conn_count.h - simultaneous connections per client address, counted
 * across every process of one service (smtpd_client_connection_count_limit;
 * what Postfix's anvil(8) counts for smtpd).
 *
 * Why a shared file and not an anvil-like daemon: the count is needed
 * once per connect and once per disconnect, by processes of one program
 * running as one user; a small file mapped MAP_SHARED by each of them
 * needs no new service in master.cf, no protocol and no process that can
 * itself be down. The file is queue_directory/pid/<program>.<service>.conn;
 * the processes agree on it by name alone. It outlives them: what dead
 * processes left in it is dropped as below.
 *
 * Layout and bounds: a fixed table of CONN_COUNT_ENTRIES (address, owner,
 * count) entries, linear probing on the address, and CONN_COUNT_OWNERS
 * owner slots, one per live process. The count of an address is the sum
 * over its entries. Every change is made under an OFD write lock on byte 0
 * of the file (released by the kernel if the holder dies).
 *
 * Crashes: each process holds an OFD lock on its owner slot's byte for its
 * whole life. A slot whose lock nobody holds belongs to a dead process:
 * its entries are dropped by the next process that takes the slot, and by
 * conn_count_connect() before it would report a count over the caller's
 * limit, so a killed smtpd's connections never deny anybody.
 *
 * Never deny by accident: when the file cannot be used, every owner slot
 * is taken or the table is full, the functions report "not counted"
 * (the caller accepts the connection) and log a warning.
 */
#ifndef POSTERN_CONN_COUNT_H
#define POSTERN_CONN_COUNT_H

#include <stdint.h>
#include <sys/socket.h>

#define CONN_COUNT_OWNERS 256
#define CONN_COUNT_ENTRIES 8192

struct conn_count;

/* Open (creating, mode 0600) the counter file path for this process and
 * take an owner slot. Returns the handle, or NULL after logging a warning
 * (connections are then not counted). Not thread-safe: one thread uses a
 * handle. */
struct conn_count *conn_count_open(const char *path);
/* Release the owner slot (this process's counts are dropped) and unmap;
 * *ccp set to NULL; no-op on NULL. */
void conn_count_close(struct conn_count **ccp);

/* A counted client address (filled by conn_count_connect()). */
struct conn_count_key {
	uint8_t family; /* AF_INET, AF_INET6 */
	uint8_t addr[16];
};

/* One more connection from sa (AF_INET, AF_INET6; an IPv4-mapped IPv6
 * address counts as the IPv4 address). Returns the number of connections
 * from that address across all processes, this one included (>= 1), or
 * 0 when it was not counted (cc NULL, another family, table full: then
 * conn_count_disconnect() must not be called for it). limit > 0: dead
 * processes' entries are dropped and the count taken again before a
 * count above limit is returned. */
unsigned conn_count_connect(struct conn_count *cc, const struct sockaddr *sa, unsigned limit,
                            struct conn_count_key *key_r);
/* The connection counted by conn_count_connect() (which returned > 0 and
 * filled key) has ended. */
void conn_count_disconnect(struct conn_count *cc, const struct conn_count_key *key);

#endif
