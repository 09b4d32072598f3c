/* delivery_log.c - the Postfix delivery log line (see delivery_log.h).
 *
 * Used by qmgr and the delivery agents.
 */
#include "delivery/delivery_log.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"

uint64_t delivery_now_usec(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

void delivery_format_usec(uint64_t usec, str_t *out)
{
	int decimals;
	uint64_t unit, v, scale = 1;

	/* Two significant digits, at most two decimals, trailing zeros
	 * dropped: "0" below 10 ms, "0.38", "3.4", "42", "124". */
	if (usec < 10000) {
		str_append_c(out, '0');
		return;
	}
	decimals = usec < 1000000 ? 2 : usec < 10000000 ? 1 : 0;
	unit = decimals == 2 ? 10000 : decimals == 1 ? 100000 : 1000000;
	v = (usec + unit / 2) / unit;
	for (int i = 0; i < decimals; i++)
		scale *= 10;
	str_appendf(out, "%" PRIu64, v / scale);
	if (decimals > 0 && v % scale != 0) {
		uint64_t frac = v % scale;
		int digits = decimals;

		while (frac % 10 == 0) {
			frac /= 10;
			digits--;
		}
		str_appendf(out, ".%0*" PRIu64, digits, frac);
	}
}

static uint64_t span(uint64_t from, uint64_t to)
{
	return to > from ? to - from : 0;
}

void delivery_log(const char *queue_id, const char *to, const char *orig_to, const char *relay,
                  const struct delivery_times *times, const char *dsn, const char *status,
                  const char *reason)
{
	uint64_t t[5] = {times->arrival, times->active, times->agent_start, times->connected,
	                 times->done};
	str_t line;

	for (int i = 1; i < 5; i++)
		if (t[i] == 0)
			t[i] = t[i - 1];
	str_init(&line);
	str_appendf(&line, "%s: to=<%s>, ", queue_id, to);
	if (orig_to != NULL && strcasecmp(orig_to, to) != 0)
		str_appendf(&line, "orig_to=<%s>, ", orig_to);
	str_appendf(&line, "relay=%s, ", relay);
	if (times->conn_use > 1)
		str_appendf(&line, "conn_use=%u, ", times->conn_use);
	str_append(&line, "delay=");
	delivery_format_usec(span(t[0], t[4]), &line);
	str_append(&line, ", delays=");
	for (int i = 0; i < 4; i++) {
		if (i > 0)
			str_append(&line, "/");
		delivery_format_usec(span(t[i], t[i + 1]), &line);
	}
	str_appendf(&line, ", dsn=%s, status=%s", dsn, status);
	if (reason != NULL)
		str_appendf(&line, " (%s)", reason);
	log_info("%s", str_c(&line));
	str_free(&line);
}
