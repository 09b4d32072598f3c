/* queue_id.h - queue IDs: unique, fixed length, sorted by arrival time.
 *
 * A queue ID names one message in every log line, in the queue directory
 * and on the command line (`postern queue cat ID`). It is 14 characters:
 *
 *   SSSSSS UUUU PPPP     e.g. 4Zb2Lk 0Fqx 01Tm  -> "4Zb2Lk0Fqx01Tm"
 *   |      |    +- process ID, base 52, 4 digits (covers pid_max 2^22)
 *   |      +------ microseconds, base 52, 4 digits (< 1,000,000)
 *   +------------- seconds since the epoch, base 52, 6 digits (to year 2596)
 *
 * The 52 digits are "0-9", then the upper-case consonants, then the
 * lower-case consonants, in ASCII order, as in Postfix's long queue IDs: no
 * vowels (no words by accident), only letters and digits (what pflogsumm
 * and other log tools accept), and byte-wise comparison of two IDs orders
 * them by arrival time to the microsecond.
 *
 * Uniqueness: within a process the generator never returns the same
 * microsecond twice (a later call takes the last value plus one when the
 * clock has not advanced or went back), and the process ID separates
 * processes. The queue writer also reserves each ID with an exclusive
 * create and never replaces an existing queue file, so even a clock stepped
 * back across a restart with a reused PID cannot overwrite a message.
 */
#ifndef POSTERN_QUEUE_ID_H
#define POSTERN_QUEUE_ID_H

#include <stdbool.h>
#include <sys/time.h>
#include <sys/types.h>

#define QUEUE_ID_LEN 14
#define QUEUE_ID_SIZE (QUEUE_ID_LEN + 1)

/* Digits of the base-52 alphabet (the characters an ID is made of). */
#define QUEUE_ID_DIGITS "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz"

/* A new ID for a message arriving now, NUL-terminated in id. The time it
 * encodes is stored in *arrival_r when not NULL (the queue file's arrival
 * time). Thread-safe; cannot fail. */
void queue_id_generate(char id[QUEUE_ID_SIZE], struct timeval *arrival_r);
/* The ID for a given time and process (tests, tools). tv_usec must be in
 * [0, 999999] and tv_sec in [0, 52^6). */
void queue_id_make(const struct timeval *tv, pid_t pid, char id[QUEUE_ID_SIZE]);
/* True when s is exactly a well-formed ID: 14 alphabet characters and a
 * microsecond part below 1,000,000. For IDs typed on the command line and
 * file names found in the queue. */
bool queue_id_valid(const char *s);
/* The arrival time encoded in a valid id; -1 when id is not valid. */
int queue_id_time(const char *id, struct timeval *tv_r);

#endif
