/* fuzz_mastercf.c - libFuzzer target for the master.cf parser
 * (lib/conf/mastercf.c): columns, continuation lines, -o overrides,
 * braces and inet service names. */
#include <stddef.h>
#include <stdint.h>

#include "base/strv.h"
#include "conf/mastercf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	strv_t errors = STRV_INIT;
	struct master_conf *mc = NULL;

	(void)mastercf_parse_text((const char *)data, size, "master.cf", &mc, &errors);
	if (mc != NULL && mc->n > 0)
		(void)mastercf_find(mc, mc->services[0].name, NULL);
	mastercf_destroy(&mc);
	strv_free(&errors);
	return 0;
}
