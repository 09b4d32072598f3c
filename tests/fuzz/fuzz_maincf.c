/* fuzz_maincf.c - libFuzzer target for the main.cf parser and $name
 * expansion (lib/conf/config.c). Parses the input as main.cf, then
 * expands and type-checks every parameter it set, which walks every
 * expansion form, the loop guard and the typed getters. */
#include <stddef.h>
#include <stdint.h>

#include "base/strv.h"
#include "conf/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	strv_t errors = STRV_INIT, warnings = STRV_INIT;
	struct config *cfg;

	(void)config_parse_text((const char *)data, size, "main.cf", "/etc/postern", &cfg, &errors);
	(void)config_validate(cfg, NULL, &errors, &warnings);
	config_destroy(&cfg);
	strv_free(&errors);
	strv_free(&warnings);
	return 0;
}
