/* fuzz_maildrop.c - libFuzzer target for the maildrop file reader
 * (lib/queue/maildrop.c), the one parser pickup runs on files any local
 * user can write.
 *
 * The input is put in a memory file and opened with maildrop_open_fd().
 * Whatever the reader accepts must be fully readable: sender, every
 * recipient and attribute, and exactly content-size bytes of content;
 * every text field must pass maildrop_text_valid(). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/str.h"
#include "queue/maildrop.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int mem_fd = -1;

static void check(struct maildrop *m, bool complete)
{
	const char *name, *value;
	char buf[4096];
	uint64_t total = 0;
	size_t pos = 0;
	str_t error;
	ssize_t n;

	if (!maildrop_text_valid(maildrop_sender(m), strlen(maildrop_sender(m))))
		abort();
	for (size_t i = 0; i < maildrop_rcpt_count(m); i++) {
		const char *r = maildrop_rcpt(m, i);

		if (r == NULL || r[0] == '\0' || !maildrop_text_valid(r, strlen(r)))
			abort();
	}
	while (maildrop_attr_next(m, &pos, &name, &value)) {
		if (!maildrop_attr_name_valid(name) || maildrop_attr(m, name) == NULL)
			abort();
	}
	if (!complete)
		return;
	str_init(&error);
	while ((n = maildrop_read_content(m, buf, sizeof(buf), &error)) > 0)
		total += (uint64_t)n;
	if (n != 0 || total != maildrop_content_size(m))
		abort();
	str_free(&error);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct maildrop *m = NULL;
	enum maildrop_status status;
	str_t error;

	if (mem_fd < 0 && (mem_fd = memfd_create("fuzz_maildrop", 0)) < 0)
		abort();
	if (ftruncate(mem_fd, 0) < 0 ||
	    (size > 0 && pwrite(mem_fd, data, size, 0) != (ssize_t)size))
		abort();
	str_init(&error);
	status = maildrop_open_fd(mem_fd, 1 << 20, &m, &error);
	if (status == MAILDROP_OK || status == MAILDROP_TOO_BIG) {
		if (m == NULL)
			abort();
		check(m, status == MAILDROP_OK);
	} else if (m != NULL || error.len == 0) {
		abort();
	}
	maildrop_close(&m);
	str_free(&error);
	return 0;
}
