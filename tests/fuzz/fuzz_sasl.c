/* fuzz_sasl.c - libFuzzer target for what a client sends in SMTP AUTH:
 * the strict base64 decoder (lib/base/base64.c) and the PLAIN and LOGIN
 * decoders behind it (lib/sasl/sasl.c), as smtpd's AUTH command chains
 * them.
 *
 * The first input byte picks the part, the rest is the client's data.
 * Invariants checked (a violation aborts so libFuzzer reports it):
 *  - base64: a text that decodes is the canonical encoding of what it
 *    decodes to (encode(decode(t)) == t), and nothing longer than the
 *    bound is ever produced;
 *  - PLAIN: a response accepted gives a login of 1..SASL_LOGIN_MAX bytes
 *    without control characters, and the login and password are exactly
 *    the second and third NUL-separated fields of the input;
 *  - LOGIN: the exchange ends within two responses; an accepted login
 *    obeys the same rules.
 * Inputs are copied into buffers of exactly their size so ASan catches
 * any read past them.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/base64.h"
#include "base/log.h"
#include "base/str.h"
#include "sasl/sasl.h"
#include "sasl/sasl_private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_login(const str_t *user)
{
	if (user->len == 0 || user->len > SASL_LOGIN_MAX)
		abort();
	for (size_t i = 0; i < user->len; i++)
		if ((unsigned char)user->buf[i] < 0x20 || user->buf[i] == 0x7f)
			abort();
}

static void fuzz_base64(const uint8_t *in, size_t len)
{
	str_t out, back;
	const char *why;
	size_t max = 64;

	str_init(&out);
	str_init(&back);
	if (base64_decode((const char *)in, len, max, &out, &why) == 0) {
		if (out.len > max)
			abort();
		base64_encode(out.buf, out.len, &back);
		if (back.len != len || memcmp(back.buf, in, len) != 0)
			abort();
	}
	str_free(&out);
	str_free(&back);
}

static void fuzz_plain(const uint8_t *in, size_t len)
{
	str_t user, pass, reason;

	str_init(&user);
	str_init(&pass);
	str_init(&reason);
	if (sasl_plain_decode(in, len, &user, &pass, &reason) == SASL_OK) {
		const uint8_t *a = memchr(in, '\0', len), *b;

		check_login(&user);
		if (a == NULL || (b = memchr(a + 1, '\0', len - (size_t)(a + 1 - in))) == NULL)
			abort();
		if ((size_t)(b - a - 1) != user.len || memcmp(a + 1, user.buf, user.len) != 0)
			abort();
		if ((size_t)(in + len - b - 1) != pass.len ||
		    memcmp(b + 1, pass.buf, pass.len) != 0)
			abort();
	}
	sasl_str_wipe(&pass);
	str_free(&user);
	str_free(&reason);
}

static void fuzz_login(const uint8_t *in, size_t len)
{
	struct sasl_login l;
	str_t challenge, reason;
	const uint8_t *nl = memchr(in, '\n', len);
	enum sasl_result r;

	sasl_login_init(&l);
	str_init(&challenge);
	str_init(&reason);
	/* No initial response, then the user name, then the password. */
	r = sasl_login_step(&l, NULL, 0, &challenge, &reason);
	if (r == SASL_CONTINUE)
		r = sasl_login_step(&l, in, nl != NULL ? (size_t)(nl - in) : len, &challenge,
		                    &reason);
	if (r == SASL_CONTINUE && nl != NULL)
		r = sasl_login_step(&l, nl + 1, len - (size_t)(nl + 1 - in), &challenge, &reason);
	if (r == SASL_OK)
		check_login(&l.user);
	else if (r == SASL_CONTINUE && nl != NULL)
		abort(); /* two responses must finish LOGIN */
	sasl_login_free(&l);
	str_free(&challenge);
	str_free(&reason);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy;

	if (size == 0)
		return 0;
	copy = malloc(size - 1 > 0 ? size - 1 : 1);
	memcpy(copy, data + 1, size - 1);
	switch (data[0] % 3) {
	case 0:
		fuzz_base64(copy, size - 1);
		break;
	case 1:
		fuzz_plain(copy, size - 1);
		break;
	default:
		fuzz_login(copy, size - 1);
		break;
	}
	free(copy);
	return 0;
}
