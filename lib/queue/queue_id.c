/* queue_id.c - queue ID generation, validation and decoding (see
 * queue_id.h for the format and why it is unique and sortable).
 *
 * Used by the queue writer (smtpd, pickup, qmgr's bounces) and by the
 * queue commands to check IDs typed by the administrator. Nothing here
 * fails: generation needs only the clock and the process ID.
 */
#include "queue/queue_id.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BASE 52
#define SEC_DIGITS 6
#define USEC_DIGITS 4
#define PID_DIGITS 4
#define PID_LIMIT (52u * 52u * 52u * 52u) /* 7,311,616 > pid_max's 2^22 */

static const char digits[] = QUEUE_ID_DIGITS;

/* Microseconds since the epoch of the last ID this process made. */
static _Atomic uint64_t last_us;

static void encode(char *out, uint64_t value, int width)
{
	for (int i = width - 1; i >= 0; i--) {
		out[i] = digits[value % BASE];
		value /= BASE;
	}
}

/* Value of one digit, or -1. The alphabet is sorted, but a table is both
 * simpler and exact about what is refused (vowels, punctuation). */
static int digit_value(unsigned char c)
{
	const char *p;

	if (c == '\0')
		return -1;
	p = strchr(digits, c);
	return p == NULL ? -1 : (int)(p - digits);
}

static int decode(const char *in, int width, uint64_t *value_r)
{
	uint64_t value = 0;

	for (int i = 0; i < width; i++) {
		int d = digit_value((unsigned char)in[i]);

		if (d < 0)
			return -1;
		value = value * BASE + (uint64_t)d;
	}
	*value_r = value;
	return 0;
}

void queue_id_make(const struct timeval *tv, pid_t pid, char id[QUEUE_ID_SIZE])
{
	encode(id, (uint64_t)tv->tv_sec, SEC_DIGITS);
	encode(id + SEC_DIGITS, (uint64_t)tv->tv_usec, USEC_DIGITS);
	/* A PID beyond 4 digits (not possible with Linux's pid_max) wraps;
	 * the writer's exclusive create still keeps IDs unique. */
	encode(id + SEC_DIGITS + USEC_DIGITS, (uint64_t)pid % PID_LIMIT, PID_DIGITS);
	id[QUEUE_ID_LEN] = '\0';
}

void queue_id_generate(char id[QUEUE_ID_SIZE], struct timeval *arrival_r)
{
	struct timespec now;
	uint64_t us, prev;
	struct timeval tv;

	clock_gettime(CLOCK_REALTIME, &now);
	us = (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
	/* Why not a counter: bumping the time keeps byte order equal to
	 * creation order inside a process even when the clock stalls, goes
	 * back (NTP step) or many IDs fall into one microsecond. */
	prev = atomic_load(&last_us);
	for (;;) {
		uint64_t next = us > prev ? us : prev + 1;

		if (atomic_compare_exchange_weak(&last_us, &prev, next)) {
			us = next;
			break;
		}
	}
	tv.tv_sec = (time_t)(us / 1000000u);
	tv.tv_usec = (suseconds_t)(us % 1000000u);
	queue_id_make(&tv, getpid(), id);
	if (arrival_r != NULL)
		*arrival_r = tv;
}

bool queue_id_valid(const char *s)
{
	uint64_t value;

	if (strnlen(s, QUEUE_ID_LEN + 1) != QUEUE_ID_LEN)
		return false;
	if (decode(s, SEC_DIGITS, &value) < 0)
		return false;
	if (decode(s + SEC_DIGITS, USEC_DIGITS, &value) < 0 || value >= 1000000u)
		return false;
	return decode(s + SEC_DIGITS + USEC_DIGITS, PID_DIGITS, &value) == 0;
}

int queue_id_time(const char *id, struct timeval *tv_r)
{
	uint64_t sec = 0, usec = 0;

	if (!queue_id_valid(id))
		return -1;
	if (decode(id, SEC_DIGITS, &sec) < 0 || decode(id + SEC_DIGITS, USEC_DIGITS, &usec) < 0)
		return -1;
	tv_r->tv_sec = (time_t)sec;
	tv_r->tv_usec = (suseconds_t)usec;
	return 0;
}
