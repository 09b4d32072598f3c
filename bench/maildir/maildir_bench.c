/* maildir_bench.c - deliveries per second through maildir_deliver().
 *
 * Delivers N messages into one Maildir with the library the virtual agent
 * uses (tmp, fsync, link into new/, fsync new/, Maildir++ quota) and prints
 * one result line per delivery with -v, then a summary:
 *
 *   maildir_bench -b BASE -m MAILDIR/ [-u UID] [-g GID] [-n COUNT]
 *                 [-s SIZE | -f FILE] [-q BYTES] [-Q COUNT] [-S]
 *                 [-r RETURN_PATH] [-d DELIVERED_TO] [-v]
 *
 * -f delivers FILE's content (LF lines) each time; otherwise a message of
 * about SIZE bytes (default 2000) with "Subject: bench message I".
 * -q/-Q enable the Maildir++ quota with these limits (-S: over quota is a
 * 4.2.2 deferral). It doubles as the driver of
 * tests/system/test_maildir_dovecot.py, which reads the result lines:
 *
 *   <i> <status> <text> [<path>]
 *   delivered <ok> of <n> in <seconds> s (<rate> msg/s)
 *
 * Failure: bad options exit 64; exit 1 when any delivery failed, 0 when
 * all were delivered. No thresholds: it measures.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/mem.h"
#include "base/parse.h"
#include "base/str.h"
#include "delivery/maildir.h"

struct mem_source {
	const char *data;
	size_t len, pos;
};

static ssize_t mem_read(void *context, void *buf, size_t size)
{
	struct mem_source *m = context;
	size_t n = m->len - m->pos;

	if (n > size)
		n = size;
	memcpy(buf, m->data + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

static void usage(void)
{
	fprintf(stderr, "usage: maildir_bench -b BASE -m MAILDIR/ [-u UID] [-g GID] [-n COUNT]\n"
	                "       [-s SIZE | -f FILE] [-q BYTES] [-Q COUNT] [-S] [-r RETURN_PATH]\n"
	                "       [-d DELIVERED_TO] [-v]\n");
	exit(64);
}

static uint64_t number(const char *s, const char *what)
{
	uint64_t v;

	if (parse_uint64(s, 0, UINT64_MAX, &v) < 0) {
		fprintf(stderr, "maildir_bench: bad %s: %s\n", what, s);
		exit(64);
	}
	return v;
}

static void generated_message(uint64_t i, uint64_t size, str_t *out)
{
	str_reset(out);
	str_appendf(out,
	            "From: bench@example.org\nTo: rcpt@example.com\nSubject: bench message %" PRIu64
	            "\nMessage-ID: <bench-%" PRIu64 "-%ld@example.org>\n\n",
	            i, i, (long)getpid());
	while (out->len < size)
		str_append(out, "The quick brown fox jumps over the lazy dog 0123456789.\n");
}

int main(int argc, char **argv)
{
	struct maildir_request req = {0};
	struct maildir_result res;
	const char *file = NULL;
	uint64_t count = 1, size = 2000, ok = 0;
	bool verbose = false;
	struct timespec t0, t1;
	str_t content, error;
	double secs;
	int opt;

	req.uid = getuid();
	req.gid = getgid();
	while ((opt = getopt(argc, argv, "b:d:f:g:m:n:q:Q:r:s:Su:v")) != -1) {
		switch (opt) {
		case 'b':
			req.base_dir = optarg;
			break;
		case 'd':
			req.delivered_to = optarg;
			break;
		case 'f':
			file = optarg;
			break;
		case 'g':
			req.gid = (gid_t)number(optarg, "gid");
			break;
		case 'm':
			req.maildir = optarg;
			break;
		case 'n':
			count = number(optarg, "count");
			break;
		case 'q':
			req.quota_enabled = true;
			req.quota.bytes = number(optarg, "quota bytes");
			break;
		case 'Q':
			req.quota_enabled = true;
			req.quota.count = number(optarg, "quota count");
			break;
		case 'r':
			req.return_path = optarg;
			break;
		case 's':
			size = number(optarg, "size");
			break;
		case 'S':
			req.quota_soft = true;
			break;
		case 'u':
			req.uid = (uid_t)number(optarg, "uid");
			break;
		case 'v':
			verbose = true;
			break;
		default:
			usage();
		}
	}
	if (req.base_dir == NULL || req.maildir == NULL || optind != argc)
		usage();
	str_init(&content);
	str_init(&error);
	if (file != NULL && fs_read_file(file, 1 << 30, &content, &error) < 0) {
		fprintf(stderr, "maildir_bench: %s\n", str_c(&error));
		return 64;
	}
	maildir_result_init(&res);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (uint64_t i = 1; i <= count; i++) {
		struct mem_source m;

		if (file == NULL)
			generated_message(i, size, &content);
		m = (struct mem_source){content.buf, content.len, 0};
		req.read = mem_read;
		req.read_context = &m;
		if (maildir_deliver(&req, &res) == 0)
			ok++;
		if (verbose)
			printf("%" PRIu64 " %s %s%s%s\n", i, res.status, str_c(&res.text),
			       res.path.len > 0 ? " " : "", str_c(&res.path));
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("delivered %" PRIu64 " of %" PRIu64 " in %.3f s (%.0f msg/s)\n", ok, count, secs,
	       secs > 0 ? (double)ok / secs : 0.0);
	maildir_result_free(&res);
	str_free(&content);
	str_free(&error);
	return ok == count ? 0 : 1;
}
