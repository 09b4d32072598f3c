/* delivery_log.c - the Postfix delivery log line (see delivery_log.h).
 *
 * Used by qmgr and the delivery agents.
 */
#include "mail/delivery_log.h"

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

void delivery_format_seconds(double seconds, str_t *out)
{
	char buf[64];
	size_t n;

	if (seconds < 0.005) {
		str_append(out, "0");
		return;
	}
	snprintf(buf, sizeof(buf),
	         seconds >= 10  ? "%.0f"
	         : seconds >= 1 ? "%.1f"
	                        : "%.2f",
	         seconds);
	n = strlen(buf);
	if (strchr(buf, '.') != NULL) {
		while (n > 0 && buf[n - 1] == '0')
			buf[--n] = '\0';
		if (n > 0 && buf[n - 1] == '.')
			buf[--n] = '\0';
	}
	str_append(out, buf);
}

static double span(uint64_t from, uint64_t to)
{
	return to > from ? (double)(to - from) / 1e6 : 0.0;
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
	str_appendf(&line, "relay=%s, delay=", relay);
	delivery_format_seconds(span(t[0], t[4]), &line);
	str_append(&line, ", delays=");
	for (int i = 0; i < 4; i++) {
		if (i > 0)
			str_append(&line, "/");
		delivery_format_seconds(span(t[i], t[i + 1]), &line);
	}
	str_appendf(&line, ", dsn=%s, status=%s", dsn, status);
	if (reason != NULL)
		str_appendf(&line, " (%s)", reason);
	log_info("%s", str_c(&line));
	str_free(&line);
}
