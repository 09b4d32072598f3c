/* fuzz_maildirsize.c - libFuzzer target for the Maildir++ maildirsize
 * parser (lib/delivery/maildir_quota.c), whose input the mailbox owner writes.
 *
 * For every input it checks, and aborts on a violation:
 *  - the parser never reads outside the buffer (ASan) and returns 0 or -1;
 *  - an accepted file gives a usage of at least zero;
 *  - its limits, formatted back and followed by the usage as one delta,
 *    parse again to the same limits and usage (what a rebuild writes is
 *    what the next read sees).
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/str.h"
#include "delivery/maildir_quota.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct maildir_quota_usage u, back;
	char *copy = malloc(size > 0 ? size : 1);
	int ret;

	/* A copy of exactly size bytes, so ASan sees any over-read. */
	memcpy(copy, data, size);
	ret = maildir_quota_parse(copy, size, &u);
	free(copy);
	if (ret != 0 && ret != -1)
		abort();
	if (ret == 0) {
		str_t s;

		if (u.bytes < 0 || u.count < 0)
			abort();
		str_init(&s);
		maildir_quota_format_limits(&u.limits, &s);
		str_appendf(&s, "%" PRId64 " %" PRId64 "\n", u.bytes, u.count);
		if (maildir_quota_parse(s.buf, s.len, &back) != 0 ||
		    back.limits.bytes != u.limits.bytes || back.limits.count != u.limits.count ||
		    back.bytes != u.bytes || back.count != u.count)
			log_panic("maildirsize round trip failed: %s", str_c(&s));
		str_free(&s);
	}
	return 0;
}
