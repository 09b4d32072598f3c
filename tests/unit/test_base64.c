/* test_base64.c - lib/base/base64: the RFC 4648 section 10 vectors both
 * ways, binary data, and the strict decoder refusing bad characters,
 * lengths, padding in the wrong place, nonzero spare bits and results
 * over the bound (the output then untouched). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "base/base64.h"

static const struct {
	const char *plain, *encoded;
} vectors[] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
};

static void test_vectors(void **state)
{
	str_t s;
	const char *why = NULL;

	(void)state;
	str_init(&s);
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		str_reset(&s);
		base64_encode(vectors[i].plain, strlen(vectors[i].plain), &s);
		assert_string_equal(str_c(&s), vectors[i].encoded);
		str_reset(&s);
		assert_int_equal(base64_decode(vectors[i].encoded, strlen(vectors[i].encoded), 100,
		                               &s, &why),
		                 0);
		assert_string_equal(str_c(&s), vectors[i].plain);
	}
	str_free(&s);
}

static void test_binary(void **state)
{
	unsigned char all[256];
	str_t enc, dec;
	const char *why = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof(all); i++)
		all[i] = (unsigned char)i;
	str_init(&enc);
	str_init(&dec);
	base64_encode(all, sizeof(all), &enc);
	assert_int_equal(enc.len, BASE64_ENCODED_LEN(sizeof(all)));
	assert_int_equal(base64_decode(enc.buf, enc.len, sizeof(all), &dec, &why), 0);
	assert_int_equal(dec.len, sizeof(all));
	assert_memory_equal(dec.buf, all, sizeof(all));
	/* One byte fewer allowed: refused. */
	str_reset(&dec);
	assert_int_equal(base64_decode(enc.buf, enc.len, sizeof(all) - 1, &dec, &why), -1);
	assert_string_equal(why, "base64 data too long");
	assert_int_equal(dec.len, 0);
	str_free(&enc);
	str_free(&dec);
}

static void test_strict(void **state)
{
	static const char *const bad[] = {
	        "Zg",   "Zg=",  "Zm9",  "Z===", "====", "Zg==Zg==", "Zm 9v", "Zm9v\n",
	        "Zh==", "Zm9=", "Zm-v", "Zm_v", "=Zm9", "Zm=v",     "Zg=A",  "Zm9vY",
	};
	const char *why;
	str_t s;

	(void)state;
	str_init(&s);
	str_set(&s, "kept");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		if (base64_decode(bad[i], strlen(bad[i]), 100, &s, &why) != -1)
			fail_msg("\"%s\" decoded", bad[i]);
		assert_non_null(why);
		assert_string_equal(str_c(&s), "kept");
	}
	/* A NUL in the text is a bad character, not an end. */
	assert_int_equal(base64_decode("Zm\0v", 4, 100, &s, &why), -1);
	/* Appends. */
	assert_int_equal(base64_decode("Zm9v", 4, 3, &s, &why), 0);
	assert_string_equal(str_c(&s), "keptfoo");
	str_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_vectors),
	        cmocka_unit_test(test_binary),
	        cmocka_unit_test(test_strict),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
