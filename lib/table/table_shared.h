/* table_shared.h - last-known-good answers of remote tables, shared by the
 * processes of one postern through a mapped file.
 *
 * Why: table_cache.h keeps one cache per process, but master runs many
 * smtpd processes and a client's connection may go to any of them; qmgr
 * resolves what smtpd accepted. During a database outage, a recipient that
 * one process looked up a minute ago must not get 451 from the next
 * process. Every answer a backend gives (found or not found) is also
 * written here; when the backend fails and the process's own cache has no
 * answer for the key, the answer another process saw is used instead,
 * within table_cache_grace_time, marked stale as usual.
 *
 * Why a mapped file and not a daemon: the same reasons as conn_count.h (no
 * service that can itself be down, no protocol). The file is
 * queue_directory/pid/table_cache.N.map, N = its number of slots, so that
 * processes with another table_cache_size use another file and none ever
 * resizes a file another has mapped. It is mail_owner's, mode 0600;
 * smtpd and qmgr open it (table_cache_share_process()).
 *
 * Layout and bounds: a header and N fixed slots of TABLE_SHARED_SLOT
 * bytes in buckets of TABLE_SHARED_WAYS; the bucket is chosen by a hash of
 * (table, key). A slot holds the table spec, the key and the value; an
 * answer that does not fit in one slot is not shared (the process's own
 * cache still has it). A bucket that is full loses its oldest answer.
 *
 * Concurrency: a writer holds the process's mutex and an OFD write lock on
 * its bucket's first byte (freed by the kernel when a writer dies).
 * Readers take no lock: each slot has a sequence counter, odd while it is
 * written; a reader copies the slot and accepts the copy only if the
 * counter was even and unchanged. A writer killed mid-write leaves an odd
 * counter: readers skip the slot, the next writer of the bucket rewrites
 * it.
 *
 * Trust: the file is written only by mail_owner's processes, but it is
 * read as outside input: every length is checked against the slot, the
 * table and key are compared in full (a hash collision is a miss), a
 * header that does not match is reset.
 *
 * Failure: nothing here is fatal. A file that cannot be opened or mapped
 * is a warning and the process goes on with its own cache only.
 */
#ifndef POSTERN_TABLE_SHARED_H
#define POSTERN_TABLE_SHARED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/str.h"
#include "table/table.h"

#define TABLE_SHARED_SLOT 512
#define TABLE_SHARED_WAYS 4
#define TABLE_SHARED_MIN_SLOTS 1024

struct table_shared;

/* The number of slots for a table_cache_size of cache_size: twice it (an
 * address costs a lookup in several tables), rounded up to whole buckets,
 * at least TABLE_SHARED_MIN_SLOTS. */
size_t table_shared_slots(size_t cache_size);

/* Open (creating, mode 0600, O_NOFOLLOW) the file of n slots in directory
 * dir and map it. NULL after a warning naming the file and the error. */
struct table_shared *table_shared_open(const char *dir, size_t n);
/* Unmap and close; *sp set to NULL; no-op on NULL. */
void table_shared_close(struct table_shared **sp);
/* The file's path (for logs and tests). */
const char *table_shared_path(const struct table_shared *s);

/* Record status (TABLE_FOUND with value[0..len), or TABLE_NOTFOUND) for key
 * in table spec, answered at wall-clock second when. An answer that does
 * not fit in a slot replaces nothing and is not stored. Thread-safe. */
void table_shared_store(struct table_shared *s, const char *spec, const char *key,
                        enum table_status status, const char *value, size_t len, uint64_t when);

/* The answer stored for key in spec at most max_age seconds before now
 * (wall-clock seconds): true with *status_r, value (reset, then set for
 * TABLE_FOUND) and *age_r (seconds); false if none. Thread-safe, lock-free. */
bool table_shared_get(struct table_shared *s, const char *spec, const char *key, uint64_t now,
                      uint64_t max_age, enum table_status *status_r, str_t *value, uint64_t *age_r);

/* Outages: a process whose backend failed records until when (wall-clock
 * milliseconds) nobody need ask it again, so that a hung database costs
 * one timeout per interval for all processes together, not one per
 * process (a fresh smtpd would otherwise wait for it first). Records for
 * TABLE_SHARED_OUTAGES backends; when full, the one ending first gives
 * way. backend names it (table_cache.c: "db:" or the table spec). */
#define TABLE_SHARED_OUTAGES 16
/* The recorded end, or 0 when none is recorded. Lock-free. */
uint64_t table_shared_outage_until(struct table_shared *s, const char *backend);
/* Record until (0: the backend answers again). Thread-safe. */
void table_shared_outage_set(struct table_shared *s, const char *backend, uint64_t until);

#endif
