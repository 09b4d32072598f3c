/* fuzz_attr.c - libFuzzer target for the attribute codec's stream parser
 * (lib/base/attr.c). The first input byte chooses a chunk size so that
 * requests split at every boundary are exercised; parsed requests are
 * re-encoded, which must succeed for anything the parser accepted. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/attr.h"
#include "base/log.h"
#include "base/str.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct attr_limits limits = {256, 16, 2048};
	struct attr_parser *p;
	size_t chunk, pos;

	if (size == 0)
		return 0;
	chunk = (size_t)data[0] % 16 + 1;
	data++;
	size--;
	p = attr_parser_new(&limits);
	for (pos = 0; pos < size;) {
		size_t n = size - pos < chunk ? size - pos : chunk, used = 0;
		enum attr_parse_status st = attr_parser_feed(p, data + pos, n, &used);

		pos += used;
		if (st == ATTR_PARSE_DONE) {
			struct attr_list *list = attr_parser_take(p);
			str_t out;
			const char *error;

			str_init(&out);
			for (size_t i = 0; i < list->n; i++)
				if (attr_put_str(&out, list->attrs[i].name, list->attrs[i].value,
				                 &error) < 0)
					log_panic("parsed attribute does not re-encode: %s", error);
			str_free(&out);
			attr_list_destroy(&list);
			attr_parser_reset(p);
		} else if (st == ATTR_PARSE_ERROR) {
			attr_parser_reset(p);
			pos += used == 0; /* skip the byte that was refused */
		}
	}
	attr_parser_destroy(&p);
	return 0;
}
